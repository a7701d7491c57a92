//! Manifest validation parity with IMGAPI 4.13 (issue 14): what the
//! original refuses is refused here with the same codes, and what it
//! normalises is normalised. Table-driven: every case names the request,
//! the expected status, top-level code and (for 422s) the `errors[]` item.

use crate::common;

use common::*;
use serde_json::{Map, Value, json};

/// A valid CreateImage body (zone-dataset).
fn zone() -> Map<String, Value> {
    json!({"owner": LUKE, "name": "parity", "version": "1.0.0", "os": "smartos",
           "type": "zone-dataset"})
    .as_object()
    .unwrap()
    .clone()
}

/// A valid CreateImage body (zvol).
fn zvol() -> Map<String, Value> {
    let mut m = zone();
    m.insert("type".into(), json!("zvol"));
    m.insert("nic_driver".into(), json!("virtio"));
    m.insert("disk_driver".into(), json!("virtio"));
    m.insert("cpu_type".into(), json!("host"));
    m.insert("image_size".into(), json!(10240));
    m
}

fn with(mut m: Map<String, Value>, k: &str, v: Value) -> Value {
    m.insert(k.into(), v);
    Value::Object(m)
}

fn without(mut m: Map<String, Value>, k: &str) -> Value {
    m.remove(k);
    Value::Object(m)
}

/// The optional manifest fields CreateImage takes, each with a value
/// valid on a zone-dataset.
const OPTIONAL: &[&str] = &[
    "description",
    "homepage",
    "eula",
    "origin",
    "public",
    "disabled",
    "acl",
    "error",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "generate_passwords",
    "inherited_directories",
];

/// The required manifest fields.
const REQUIRED: &[&str] = &["owner", "name", "version", "os", "type"];
const ZVOL_REQUIRED: &[&str] = &["nic_driver", "disk_driver", "cpu_type", "image_size"];

/// (case, body, status, code, expected `errors[]` item).
type Case = (
    String,
    Value,
    u16,
    &'static str,
    Option<(String, &'static str)>,
);
/// (case, path, body, status, code, expected `errors[]` item).
type UpdateCase = (
    String,
    String,
    Value,
    u16,
    &'static str,
    Option<(String, &'static str)>,
);

/// Check a refusal: status, top-level code and, when given, that
/// `errors[]` holds `{field, code}`; the message never carries a
/// deserializer's words.
#[track_caller]
fn refused(case: &str, got: &(u16, Value), status: u16, code: &str, item: Option<(&str, &str)>) {
    let (st, v) = got;
    assert_eq!(*st, status, "{case}: {v}");
    assert_eq!(v["code"], code, "{case}: {v}");
    if let Some((field, fcode)) = item {
        let errs = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {v}"));
        assert!(
            errs.iter()
                .any(|e| e["field"] == field && e["code"] == fcode),
            "{case}: want {{{field}, {fcode}}} in {v}"
        );
        for e in errs {
            let f = e["field"].as_str().unwrap_or("");
            assert!(f != "body" || field == "body", "{case}: {v}");
        }
    }
    let msg = v["message"].as_str().unwrap_or("");
    assert!(
        !msg.contains("missing field") && !msg.contains("invalid type"),
        "{case}: {v}"
    );
}

#[tokio::test]
async fn create_refusals_match_imgapi() {
    let s = Server::start().await;
    let mut cases: Vec<Case> = Vec::new();
    // `null` is a value of the wrong type for every field, never "not given".
    for k in OPTIONAL.iter().chain(REQUIRED) {
        cases.push((
            format!("{k}: null"),
            with(zone(), k, Value::Null),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    // (A zvol without a valid type is not a zvol: its zvol fields are then
    // extra parameters, as in IMGAPI, so `type` is left out here.)
    for k in ZVOL_REQUIRED.iter().chain(&REQUIRED[..4]) {
        cases.push((
            format!("zvol {k}: null"),
            with(zvol(), k, Value::Null),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    cases.push((
        "v: null".into(),
        with(zone(), "v", Value::Null),
        422,
        "ValidationFailed",
        Some(("v".into(), "Invalid")),
    ));
    // Missing entirely stays MissingParameter.
    for k in ["name", "version", "os", "type"] {
        cases.push((
            format!("no {k}"),
            without(zone(), k),
            422,
            "ValidationFailed",
            Some((k.to_string(), "MissingParameter")),
        ));
    }
    for k in ZVOL_REQUIRED {
        cases.push((
            format!("zvol without {k}"),
            without(zvol(), k),
            422,
            "ValidationFailed",
            Some((k.to_string(), "MissingParameter")),
        ));
    }
    // An icon is never part of a manifest.
    for v in [
        json!(true),
        json!(false),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        Value::Null,
    ] {
        cases.push((
            format!("icon: {v}"),
            with(zone(), "icon", v),
            422,
            "ValidationFailed",
            Some(("icon".into(), "Invalid")),
        ));
    }
    // The zvol fields on another type are bad parameters.
    for (k, v) in [
        ("nic_driver", json!("virtio")),
        ("disk_driver", json!("virtio")),
        ("cpu_type", json!("host")),
        ("image_size", json!(10240)),
        ("nic_driver", Value::Null),
    ] {
        cases.push((
            format!("zone-dataset {k}: {v}"),
            with(zone(), k, v),
            422,
            "InvalidParameter",
            Some((k.to_string(), "Invalid")),
        ));
    }
    // Wrong JSON types.
    for (k, v) in [
        ("public", json!("true")),
        ("public", json!(1)),
        ("disabled", json!("yes")),
        ("generate_passwords", json!(0)),
        ("acl", json!(5)),
        ("acl", json!(["notauuid"])),
        ("billing_tags", json!(5)),
        ("billing_tags", json!([1])),
        ("users", json!("x")),
        ("requirements", json!([])),
        ("traits", json!([])),
        ("tags", json!([])),
        ("inherited_directories", json!("x")),
        ("error", json!("x")),
        ("homepage", json!(1)),
        ("origin", json!(5)),
        // Stricter than IMGAPI on purpose (docs/errors.md).
        ("name", json!(5)),
        ("version", json!(["1"])),
        ("description", json!(5)),
    ] {
        cases.push((
            format!("{k}: {v}"),
            with(zone(), k, v),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    cases.push((
        "requirements.min_ram: -1".into(),
        with(zone(), "requirements", json!({"min_ram": -1})),
        422,
        "ValidationFailed",
        Some(("requirements.min_ram".into(), "Invalid")),
    ));
    for v in [json!(-1), json!("big"), json!(0)] {
        cases.push((
            format!("zvol image_size: {v}"),
            with(zvol(), "image_size", v),
            422,
            "ValidationFailed",
            Some(("image_size".into(), "Invalid")),
        ));
    }
    cases.push((
        "origin: notauuid".into(),
        with(zone(), "origin", json!("notauuid")),
        422,
        "OriginDoesNotExist",
        None,
    ));
    cases.push((
        "origin unknown".into(),
        with(zone(), "origin", json!(EMPEROR)),
        422,
        "OriginDoesNotExist",
        None,
    ));
    cases.push((
        "state".into(),
        with(zone(), "state", json!("active")),
        422,
        "ValidationFailed",
        Some(("state".into(), "NotAllowed")),
    ));
    cases.push((
        "uuid on create".into(),
        with(zone(), "uuid", json!(EMPEROR)),
        422,
        "InvalidParameter",
        Some(("uuid".into(), "Invalid")),
    ));
    for (case, body, st, code, item) in &cases {
        let got = s.post("/images", body.clone()).await;
        refused(
            case,
            &got,
            *st,
            code,
            item.as_ref().map(|(f, c)| (f.as_str(), *c)),
        );
    }
    // With ?account, a null owner is not "the account".
    let got = s
        .post(
            &format!("/images?account={LUKE}"),
            with(zone(), "owner", Value::Null),
        )
        .await;
    refused(
        "account, owner: null",
        &got,
        422,
        "InvalidParameter",
        Some(("owner", "Invalid")),
    );
    // Nothing was created.
    let (st, v) = s.get("/images?state=all").await;
    assert_eq!((st, v), (200, json!([])));
}

#[tokio::test]
async fn create_normalises_like_imgapi() {
    let s = Server::start().await;
    let (st, v) = s
        .post(
            "/images",
            Value::Object(
                json!({"billing_tags": "x", "acl": VADER, "disabled": "true",
                       "generate_passwords": "false", "description": ""})
                .as_object()
                .unwrap()
                .iter()
                .fold(zone(), |mut m, (k, v)| {
                    m.insert(k.clone(), v.clone());
                    m
                }),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["billing_tags"], json!(["x"]));
    assert_eq!(v["acl"], json!([VADER]));
    assert_eq!(v["disabled"], json!(true));
    // The serializer emits generate_passwords only when true, and drops an
    // empty description.
    assert!(v.get("generate_passwords").is_none(), "{v}");
    assert!(v.get("description").is_none(), "{v}");
    let (st, v) = s
        .post("/images", with(zone(), "generate_passwords", json!("true")))
        .await;
    assert_eq!((st, &v["generate_passwords"]), (200, &json!(true)), "{v}");
}

#[tokio::test]
async fn import_refusals_match_imgapi() {
    let s = Server::start().await;
    let imp = |u: &str| {
        let mut m = zone();
        m.insert("v".into(), json!(2));
        m.insert("uuid".into(), json!(u));
        m
    };
    let mut cases: Vec<Case> = Vec::new();
    let u = uuid::Uuid::new_v4().to_string();
    for k in OPTIONAL.iter().chain(REQUIRED).chain(["v"].iter()) {
        cases.push((
            format!("import {k}: null"),
            with(imp(&u), k, Value::Null),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    cases.push((
        "import published_at: null".into(),
        with(imp(&u), "published_at", Value::Null),
        422,
        "InvalidParameter",
        Some(("published_at".into(), "Invalid")),
    ));
    cases.push((
        "import published_at: 5".into(),
        with(imp(&u), "published_at", json!(5)),
        422,
        "InvalidParameter",
        Some(("published_at".into(), "Invalid")),
    ));
    cases.push((
        "import without v".into(),
        without(imp(&u), "v"),
        422,
        "ValidationFailed",
        Some(("v".into(), "MissingParameter")),
    ));
    cases.push((
        "import without uuid".into(),
        without(imp(&u), "uuid"),
        422,
        "InvalidParameter",
        Some(("uuid".into(), "Invalid")),
    ));
    cases.push((
        "import uuid: null".into(),
        with(imp(&u), "uuid", Value::Null),
        422,
        "InvalidParameter",
        Some(("uuid".into(), "Invalid")),
    ));
    for v in [json!(true), json!(1), json!("x"), json!([]), json!({})] {
        cases.push((
            format!("import icon: {v}"),
            with(imp(&u), "icon", v),
            422,
            "ValidationFailed",
            Some(("icon".into(), "Invalid")),
        ));
    }
    cases.push((
        "import nic_driver on zone-dataset".into(),
        with(imp(&u), "nic_driver", json!("virtio")),
        422,
        "InvalidParameter",
        Some(("nic_driver".into(), "Invalid")),
    ));
    cases.push((
        "import origin: notauuid".into(),
        with(imp(&u), "origin", json!("notauuid")),
        422,
        "OriginDoesNotExist",
        None,
    ));
    let path = format!("/images/{u}?action=import");
    for (case, body, st, code, item) in &cases {
        let got = s.post(&path, body.clone()).await;
        refused(
            case,
            &got,
            *st,
            code,
            item.as_ref().map(|(f, c)| (f.as_str(), *c)),
        );
    }
    for bogus in ["bogus", "1", "", "TRUE"] {
        let got = s
            .post(
                &format!("{path}&skip_owner_check={bogus}"),
                Value::Object(imp(&u)),
            )
            .await;
        refused(
            &format!("skip_owner_check={bogus}"),
            &got,
            422,
            "InvalidParameter",
            Some(("skip_owner_check", "Invalid")),
        );
    }
    let (st, v) = s.get("/images?state=all").await;
    assert_eq!((st, v), (200, json!([])));
    // The good one, with skip_owner_check=true, still imports.
    let (st, v) = s
        .post(
            &format!("{path}&skip_owner_check=true"),
            Value::Object(imp(&u)),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["uuid"], json!(u));
}

#[tokio::test]
async fn update_refusals_match_imgapi() {
    let s = Server::start().await;
    let img = s.create(None, Value::Object(zone())).await;
    let zv = s.create(None, Value::Object(zvol())).await;
    let up = |i: &Value| format!("/images/{}?action=update", i["uuid"].as_str().unwrap());
    let mut cases: Vec<UpdateCase> = Vec::new();
    // Immutable fields.
    for (k, v) in [
        ("type", json!("lx-dataset")),
        ("uuid", json!(EMPEROR)),
        ("published_at", json!("2020-01-01T00:00:00Z")),
        ("files", json!([])),
        ("v", json!(2)),
        ("disabled", json!(true)),
        ("icon", json!(true)),
        ("activated", json!(true)),
    ] {
        cases.push((
            format!("update {k}"),
            up(&img),
            json!({ k: v }),
            422,
            "ValidationFailed",
            Some((k.to_string(), "NotAllowed")),
        ));
    }
    cases.push((
        "update channels".into(),
        up(&img),
        json!({"channels": ["dev"]}),
        422,
        "ValidationFailed",
        Some(("channels".into(), "Invalid")),
    ));
    // null deletes only the optional fields; for the others it is Invalid.
    for k in ["name", "version", "os", "public", "owner"] {
        cases.push((
            format!("update {k}: null"),
            up(&img),
            json!({ k: null }),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    for k in ZVOL_REQUIRED {
        cases.push((
            format!("update zvol {k}: null"),
            up(&zv),
            json!({ *k: null }),
            422,
            "ValidationFailed",
            Some((k.to_string(), "Invalid")),
        ));
    }
    cases.push((
        "update state: null".into(),
        up(&img),
        json!({"state": null}),
        422,
        "ValidationFailed",
        Some(("state".into(), "Invalid")),
    ));
    cases.push((
        "update public: \"true\"".into(),
        up(&img),
        json!({"public": "true"}),
        422,
        "ValidationFailed",
        Some(("public".into(), "Invalid")),
    ));
    cases.push((
        "update nic_driver on zone-dataset".into(),
        up(&img),
        json!({"nic_driver": "virtio"}),
        422,
        "ValidationFailed",
        Some(("nic_driver".into(), "Invalid")),
    ));
    cases.push((
        "update state active without a file".into(),
        up(&img),
        json!({"state": "active"}),
        422,
        "NoActivationNoFile",
        None,
    ));
    cases.push((
        "update {} ".into(),
        up(&img),
        json!({}),
        422,
        "ValidationFailed",
        None,
    ));
    cases.push((
        "update billing_tags with account".into(),
        format!("{}&account={LUKE}", up(&img)),
        json!({"billing_tags": ["x"]}),
        422,
        "ValidationFailed",
        Some(("billing_tags".into(), "NotAllowed")),
    ));
    for (case, path, body, st, code, item) in &cases {
        let got = s.post(path, body.clone()).await;
        refused(
            case,
            &got,
            *st,
            code,
            item.as_ref().map(|(f, c)| (f.as_str(), *c)),
        );
    }
    // No body at all.
    let r = s.http.post(s.u(&up(&img))).send().await.unwrap();
    let got = status_json(r).await;
    refused(
        "update without body",
        &got,
        422,
        "ValidationFailed",
        Some(("body", "MissingParameter")),
    );
    // The image is unchanged.
    let (st, v) = s
        .get(&format!("/images/{}", img["uuid"].as_str().unwrap()))
        .await;
    assert_eq!((st, &v), (200, &img));

    // What the reference allows still works: null deletes optional fields,
    // generate_passwords false is stored and not emitted.
    let (st, v) = s
        .post(
            &up(&img),
            json!({"description": "d", "generate_passwords": false, "acl": VADER,
                   "billing_tags": "y", "os": "linux", "name": "renamed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("generate_passwords").is_none(), "{v}");
    assert_eq!(v["acl"], json!([VADER]));
    assert_eq!(v["billing_tags"], json!(["y"]));
    assert_eq!((&v["os"], &v["name"]), (&json!("linux"), &json!("renamed")));
    let (st, v) = s
        .post(&up(&img), json!({"description": null, "acl": null}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v.get("description").is_none() && v.get("acl").is_none(),
        "{v}"
    );
    let (st, v) = s.post(&up(&img), json!({"generate_passwords": true})).await;
    assert_eq!((st, &v["generate_passwords"]), (200, &json!(true)), "{v}");
}

#[tokio::test]
async fn bodies_and_query_parameters() {
    let s = Server::start().await;
    let img = s.create(None, Value::Object(zone())).await;
    let u = img["uuid"].as_str().unwrap();
    for (path, body) in [
        ("/images".to_string(), "{not json"),
        (format!("/images/{u}?action=update"), "{\"name\": "),
        (format!("/images/{u}?action=import"), "[1,"),
        (format!("/images/{u}/acl"), "nope"),
    ] {
        let r = s
            .http
            .post(s.u(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = status_json(r).await;
        refused(&format!("{path} {body}"), &got, 400, "InvalidContent", None);
    }
    for q in [
        "inclAdminFields=bogus",
        "inclAdminFields=",
        "public=yes",
        "state=bogus",
        "limit=abc",
        "limit=-1",
        "sort=name",
        "marker=notadate",
    ] {
        let (st, v) = s.get(&format!("/images?{q}")).await;
        assert_eq!(st, 422, "{q}: {v}");
        assert_eq!(v["code"], "InvalidParameter", "{q}: {v}");
    }
}
