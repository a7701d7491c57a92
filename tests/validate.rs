//! `POST /images?action=validate` in process: for every manifest the
//! registration (or AdminImportImage, with `import=true`) refuses, the same
//! status and body, and for one it takes, 204 with nothing created or
//! reserved.

use crate::common;

use common::app::App;
use common::*;
use serde_json::{Value, json};

/// A finished upload of `data`: its id.
async fn finished_upload(app: &App, data: &[u8]) -> String {
    let loc = app.tus_location(data.len() as u64, None).await;
    let r = app.tus_patch_with(&loc, 0, &[], data.to_vec()).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    upload_id(&loc)
}

fn zone(extra: Value) -> Value {
    let mut m = json!({"v": 2, "name": "base", "version": "1.0.0", "os": "smartos",
                       "type": "zone-dataset", "owner": LUKE});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

/// Every image and upload the server holds.
async fn held(app: &App) -> (Value, Value) {
    let imgs = app.fetch("/images?state=all").await.json();
    let ups = app.fetch("/uploads").await.json();
    (imgs, ups)
}

#[tokio::test]
async fn validate_refuses_with_the_registrations_body_and_stores_nothing() {
    let app = App::new().await;
    let data = b"\x1f\x8b\x08 a small image".to_vec();
    let upload = finished_upload(&app, &data).await;
    let file = json!({"upload": upload, "content_md5": md5_b64(&data), "compression": "gzip"});
    let cases = [
        (
            "a zvol without its four fields",
            json!({"v": 2, "name": "vm", "version": "1", "os": "linux", "type": "zvol",
                   "owner": LUKE}),
            "",
        ),
        ("an unknown key", zone(json!({"colour": "blue"})), ""),
        ("a state", zone(json!({"state": "active"})), ""),
        (
            "an origin that does not exist",
            zone(json!({"origin": "00000000-0000-4000-8000-000000000001"})),
            "",
        ),
        ("another account's owner", zone(json!({})), VADER),
    ]
    .map(|(what, m, a)| {
        (
            what,
            m,
            if a.is_empty() {
                String::new()
            } else {
                format!("&account={a}")
            },
        )
    });
    let before = held(&app).await;
    for (what, m, q) in &cases {
        let mut reg = m.clone();
        reg["files"] = json!([file.clone()]);
        let registered = app.post_json(&format!("/images?wait=5{q}"), &reg).await;
        let mut check = m.clone();
        check["files"] = json!([{"compression": "gzip"}]);
        let validated = app
            .post_json(&format!("/images?action=validate{q}"), &check)
            .await;
        assert_eq!(registered.status, 422, "{what}: {}", registered.json());
        assert_eq!(validated.status, registered.status, "{what}");
        assert_eq!(validated.json(), registered.json(), "{what}");
    }
    // The file reference's own fields, checked as the registration does.
    for (what, f, field) in [
        ("no compression", json!({}), "files[0].compression"),
        (
            "an unknown compression",
            json!({"compression": "zip"}),
            "files[0].compression",
        ),
        (
            "a sha1 that is none",
            json!({"compression": "none", "sha1": "xyz"}),
            "files[0].sha1",
        ),
        (
            "a content_md5 that is none",
            json!({"compression": "none", "content_md5": "abc"}),
            "files[0].content_md5",
        ),
        (
            "an unknown key",
            json!({"compression": "none", "colour": 1}),
            "files[0].colour",
        ),
    ] {
        let r = app
            .post_json("/images?action=validate", &zone(json!({"files": [f]})))
            .await;
        assert_eq!(r.status, 422, "{what}");
        let e = r.error();
        assert_eq!(e.code, "ValidationFailed", "{what}: {e:?}");
        let fields: Vec<_> = e
            .errors
            .iter()
            .flatten()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, [field], "{what}");
    }
    // A query parameter it does not take is named.
    let r = app
        .post_json("/images?action=validate&activte=false", &zone(json!({})))
        .await;
    assert_eq!(r.status, 422);
    let e = r.error();
    assert_eq!(e.code, "InvalidParameter");
    assert_eq!(e.errors.unwrap()[0].field, "activte");
    assert_eq!(held(&app).await, before, "refusals store nothing");

    // Valid: 204, no body, nothing created and the upload not claimed (an
    // upload named is not even looked up).
    for files in [
        json!([{"compression": "gzip"}]),
        json!([]),
        json!([{"upload": "00000000-0000-4000-8000-000000000002", "compression": "gzip",
                "sha1": "0".repeat(40), "size": 3}]),
    ] {
        let r = app
            .post_json("/images?action=validate", &zone(json!({"files": files})))
            .await;
        assert_eq!(
            r.status,
            204,
            "{files}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.body.is_empty());
    }
    assert_eq!(held(&app).await, before, "a validation stores nothing");
    assert_eq!(before.1[0]["state"], "complete");

    // And the registration it vouched for goes through.
    let mut reg = zone(json!({}));
    reg["files"] = json!([file]);
    let r = app.post_json("/images?wait=10", &reg).await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["state"], "active");
}

#[tokio::test]
async fn validate_with_import_checks_as_admin_import_image_does() {
    let app = App::new().await;
    let uuid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let zvol = json!({"v": 2, "uuid": uuid, "name": "vm", "version": "1", "os": "linux",
                      "type": "zvol", "owner": LUKE, "published_at": "2020-01-01T00:00:00Z"});
    let good = json!({"v": 2, "uuid": uuid, "name": "z", "version": "1", "os": "smartos",
                      "type": "zone-dataset", "owner": LUKE,
                      "published_at": "2020-01-01T00:00:00Z",
                      "files": [{"sha1": "0".repeat(40), "size": 3, "compression": "gzip"}]});
    let with_origin = {
        let mut m = good.clone();
        m["origin"] = json!("00000000-0000-4000-8000-000000000003");
        m
    };
    let not_operator = format!("&account={LUKE}");
    for (what, m, q) in [
        ("a zvol without its four fields", &zvol, ""),
        ("an origin that does not exist", &with_origin, ""),
        ("an account", &good, not_operator.as_str()),
    ] {
        let imported = app
            .post_json(&format!("/images/{uuid}?action=import{q}"), m)
            .await;
        let validated = app
            .post_json(&format!("/images?action=validate&import=true{q}"), m)
            .await;
        assert!(imported.status >= 400, "{what}: {}", imported.json());
        assert_eq!(validated.status, imported.status, "{what}");
        assert_eq!(validated.json(), imported.json(), "{what}");
    }
    let r = app
        .post_json("/images?action=validate&import=true", &json!({"v": 2}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error().errors.unwrap()[0].field, "uuid");

    let r = app
        .post_json("/images?action=validate&import=true", &good)
        .await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(app.fetch(&format!("/images/{uuid}")).await.status, 404);
    let r = app
        .post_json(&format!("/images/{uuid}?action=import"), &good)
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
}
