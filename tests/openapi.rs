//! The OpenAPI document is derived from the code (`imgapi::api::openapi`:
//! utoipa, from the handlers' `#[utoipa::path]` and the wire types). Here:
//! `docs/openapi.json` is a current snapshot of it and is what
//! `GET /openapi.json` serves; it is internally consistent; and the router
//! itself, driven in process, serves exactly the documented operations.

use crate::common;
use crate::common::Api;

use std::collections::BTreeSet;

use axum::http::Method;
use common::app::App;
use serde_json::Value;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

fn snapshot_path() -> String {
    format!("{}/docs/openapi.json", env!("CARGO_MANIFEST_DIR"))
}

fn spec() -> Value {
    imgapi::api::openapi::document()
}

/// (path, method) of every documented operation.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (k, _) in item.as_object().expect("path item") {
            if METHODS.contains(&k.as_str()) {
                out.insert((path.clone(), k.clone()));
            } else {
                assert!(
                    ["parameters", "summary", "description"].contains(&k.as_str()),
                    "unexpected key {k} under {path}"
                );
            }
        }
    }
    assert!(out.len() > 30, "only {} operations: {out:?}", out.len());
    out
}

/// `docs/openapi.json` is what the code derives;
/// `UPDATE_OPENAPI=1 cargo test --test suite openapi::` rewrites it.
#[test]
fn snapshot_is_current() {
    let text = std::fs::read_to_string(snapshot_path()).unwrap_or_default();
    let want = imgapi::api::openapi::SPEC.as_str();
    if std::env::var_os("UPDATE_OPENAPI").is_some() && text != want {
        std::fs::write(snapshot_path(), want).unwrap();
        return;
    }
    assert!(
        text == want,
        "docs/openapi.json is not current: run UPDATE_OPENAPI=1 cargo test --test suite openapi::"
    );
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let app = App::new().await;
    let r = app.fetch("/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(&r.body[..], imgapi::api::openapi::SPEC.as_bytes());
    assert_eq!(r.json(), spec());
}

/// A concrete path for a documented template.
fn concrete(template: &str) -> String {
    template
        .replace("{uuid}", "f0f0f0f0-0000-4000-8000-000000000001")
        .replace("{id}", "0b5f2c8e-6d2a-4b8e-9a51-3f3c2a1d7e90")
        .replace("{file}", "fuzz-1.0.0.zfs")
}

/// Whether the router would take `path` for `template` (a `{param}`
/// segment matches any one segment).
fn matches_template(path: &str, template: &str) -> bool {
    let (p, t): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), template.split('/').collect());
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(a, b)| a == b || (b.starts_with('{') && !a.is_empty()))
}

/// The status of `method path` in process (tus' header set, no body).
async fn status(app: &App, method: &str, path: &str) -> u16 {
    let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    app.request(m, path, &[("tus-resumable", "1.0.0")], Vec::new())
        .await
        .status
}

/// Every documented operation is routed and nothing else is, asked of the
/// router itself. A path the router matches answers 405 to a method it
/// does not route (an unmatched path is 404 to every method), so for each
/// documented path: some method is 405 (the path is routed), every
/// documented method is not 405 (it may be 404 for an unknown uuid), and
/// every undocumented method is 405 (HEAD is served wherever GET is).
/// Paths next to the documented ones (their prefixes, a child, IMGAPI
/// endpoints this server does not have) are 404 to every method.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = App::new().await;
    let spec = spec();
    let ops = documented(&spec);
    let paths: BTreeSet<&str> = ops.iter().map(|(p, _)| p.as_str()).collect();
    let mut problems = Vec::new();
    for path in &paths {
        let url = concrete(path);
        let mut refused = 0;
        for m in METHODS {
            let doc = ops.contains(&(path.to_string(), m.to_string()))
                || (*m == "head" && ops.contains(&(path.to_string(), "get".into())));
            let st = status(&app, m, &url).await;
            if st == 405 {
                refused += 1;
            }
            match (doc, st) {
                (true, 405) => problems.push(format!("{m} {path}: documented, answers 405")),
                (false, s) if s != 405 => {
                    problems.push(format!("{m} {path}: not documented, answers {s}"))
                }
                _ => {}
            }
        }
        if refused == 0 {
            problems.push(format!("{path}: no method is refused with 405"));
        }
    }
    // Neighbours: every proper prefix and a child of each documented path,
    // and IMGAPI endpoints this server does not provide.
    let mut others: BTreeSet<String> = BTreeSet::new();
    for path in &paths {
        let segs: Vec<&str> = path.split('/').collect();
        for n in 1..segs.len() {
            others.insert(format!("{}/", segs[..n].join("/")));
            if n > 1 {
                others.insert(segs[..n].join("/"));
            }
        }
        others.insert(format!("{path}/more"));
    }
    for p in [
        "/images/{uuid}/import",
        "/images/{uuid}/export",
        "/state/snapshot",
        "/jobs",
        "/uploads/{id}/data",
    ] {
        others.insert(p.into());
    }
    let routed = |p: &str| paths.iter().any(|t| matches_template(p, t));
    for path in others.iter().filter(|p| !routed(p)) {
        for m in METHODS {
            let st = status(&app, m, &concrete(path)).await;
            if st != 404 {
                problems.push(format!("{m} {path}: not documented, answers {st}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the router and the document disagree:\n{}",
        problems.join("\n")
    );
}

/// Every `$ref` in `v` (recursively).
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => spec
            .pointer(r.strip_prefix('#').expect("local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

#[test]
fn spec_is_consistent() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.0.3");
    let mut all = Vec::new();
    refs(&spec, &mut all);
    for r in all {
        let ptr = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(spec.pointer(ptr).is_some(), "dangling $ref {r}");
    }
    let mut op_ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let shared: Vec<&Value> = item["parameters"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId");
            assert!(op_ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for code in responses.keys() {
                assert!(
                    code.len() == 3 && code.parse::<u16>().is_ok(),
                    "{method} {path}: response key {code} is not a status code"
                );
            }
            // Every error response carries the IMGAPI error body.
            for (code, r) in responses {
                let r = resolve(&spec, r);
                if code.starts_with(['4', '5']) {
                    assert_eq!(
                        r.pointer("/content/application~1json/schema/$ref"),
                        Some(&Value::from("#/components/schemas/Error")),
                        "{method} {path} {code}: not the error body"
                    );
                }
            }
            // Path template parameters are exactly the declared path params.
            let params: Vec<&Value> = shared
                .iter()
                .copied()
                .chain(op["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(&spec, p))
                .collect();
            let declared: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let templated: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(
                declared, templated,
                "{method} {path}: path parameters differ"
            );
        }
    }
}
