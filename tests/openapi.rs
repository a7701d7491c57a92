//! `docs/openapi.json` describes exactly the routes of `src/api/mod.rs`
//! (every routed (path, method) documented, nothing documented that is not
//! routed), is internally consistent, and is what `GET /openapi.json` serves.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn spec() -> Value {
    serde_json::from_str(&read("docs/openapi.json")).expect("docs/openapi.json is not JSON")
}

/// Source text without `//` comments (no route path contains `//`).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index just past the `)` that closes the `(` before `open`,
/// skipping string literals.
fn close_paren(s: &[u8], open: usize) -> usize {
    let (mut depth, mut i, mut in_str) = (1usize, open, false);
    while i < s.len() {
        match (in_str, s[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_str = false,
            (true, _) => {}
            (false, b'"') => in_str = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses in a .route(...)")
}

/// The method names called in a method-router expression such as
/// `get(a::b).post(c::d)`: an identifier from METHODS directly followed by
/// `(` and not part of a path (`x::get`) or a longer name (`get_file`).
fn methods_in(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    for m in METHODS {
        let mut from = 0;
        while let Some(i) = expr[from..].find(m).map(|i| i + from) {
            from = i + m.len();
            let before_ok = i == 0 || {
                let c = b[i - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            };
            if before_ok && b.get(i + m.len()) == Some(&b'(') {
                out.push(m.to_string());
            }
        }
    }
    out
}

/// (path, method) of every `.route("PATH", METHODS...)` in src/api/mod.rs.
fn routed() -> BTreeSet<(String, String)> {
    let src = strip_comments(&read("src/api/mod.rs"));
    let b = src.as_bytes();
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(i) = src[from..].find(".route(").map(|i| i + from) {
        let open = i + ".route(".len();
        let end = close_paren(b, open);
        from = end;
        let args = &src[open..end - 1];
        let args = args.trim_start();
        let path_start = args
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("route without a literal path: {args}"));
        let q = path_start.find('"').expect("unterminated route path");
        let path = &path_start[..q];
        let methods = methods_in(&path_start[q + 1..]);
        assert!(
            !methods.is_empty(),
            "no method found for route {path}: {args}"
        );
        for m in methods {
            assert!(
                out.insert((path.to_string(), m.clone())),
                "route {m} {path} registered twice"
            );
        }
    }
    assert!(out.len() > 20, "found only {} routes: {out:?}", out.len());
    out
}

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
    out
}

#[test]
fn route_parser_reads_chained_methods() {
    assert_eq!(
        methods_in("get(uploads::get_data)\n.head(uploads::head).delete(x::delete)"),
        vec!["get", "delete", "head"]
    );
    assert!(methods_in("get_file(x)").is_empty());
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let routed = routed();
    let documented = documented(&spec());
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.json and src/api/mod.rs disagree\n\
         routed but not documented: {missing:?}\n\
         documented but not routed: {extra:?}"
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
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for code in responses.keys() {
                assert!(
                    code.len() == 3 && code.parse::<u16>().is_ok(),
                    "{method} {path}: response key {code} is not a status code"
                );
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

#[tokio::test]
async fn server_serves_the_file() {
    let s = Server::start().await;
    let r = s.http.get(s.u("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body = r.text().await.unwrap();
    assert_eq!(body, read("docs/openapi.json"), "served text differs");
    let (st, v) = s.get("/openapi.json").await;
    assert_eq!(st, 200);
    assert_eq!(v, spec());
}

/// The wire-type schemas of `docs/openapi.json` are the ones derived from
/// `imgapi::wire`; `UPDATE_OPENAPI=1 cargo test --test openapi` rewrites
/// the file with them.
#[test]
fn wire_schemas_are_derived_and_current() {
    let text = read("docs/openapi.json");
    let derived = imgapi::api::openapi::with_wire_schemas(&text).expect("docs/openapi.json");
    let want = serde_json::to_string_pretty(&derived).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() && text != want {
        std::fs::write(
            format!("{}/docs/openapi.json", env!("CARGO_MANIFEST_DIR")),
            &want,
        )
        .unwrap();
        return;
    }
    assert!(
        text == want,
        "docs/openapi.json is not current: run UPDATE_OPENAPI=1 cargo test --test openapi"
    );
}
