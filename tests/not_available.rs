//! The IMGAPI operations this server never serves: each request is checked
//! as the original checks it, in its order, and only a request the original
//! would have gone on to serve is answered 501 NotAvailable. One table
//! covers every route and action that answers 501 (and the one that no
//! longer does, import-from-datacenter, which has no datacenter here).

use crate::common;
use crate::common::Api;

use axum::http::Method;
use common::app::App;
use common::{LUKE, VADER};
use serde_json::{Value, json};

/// One request and what it must get: status, code, `errors[]` (as
/// `[[field, code], ...]`, None for no check) and, where the original's
/// wording matters, the message.
struct Case {
    what: &'static str,
    path: &'static str,
    /// A JSON body; `None`: no body; `Some(Raw(..))`: bytes as they are.
    body: Body,
    status: u16,
    code: &'static str,
    errors: Option<&'static [[&'static str; 2]]>,
    message: Option<&'static str>,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

const VM: &str = "5c1a0c30-8e5b-4c5a-9d07-0a7a0e0b1b1b";

fn cases() -> Vec<Case> {
    use Body::{Json, Raw};
    let c = |what, path, body, status, code, errors, message| Case {
        what,
        path,
        body,
        status,
        code,
        errors,
        message,
    };
    vec![
        // AdminImportLxdImage: the body, operators, then `alias`.
        c(
            "lxd: a body that is not JSON",
            "/images?action=import-lxd-image&alias=images:alpine/3.16",
            Raw("{"),
            400,
            "InvalidContent",
            None,
            None,
        ),
        c(
            "lxd: called for an account",
            "/images?action=import-lxd-image&alias=images:alpine/3.16&account={VADER}",
            Json(json!({})),
            403,
            "OperatorOnly",
            None,
            None,
        ),
        c(
            "lxd: an account before a missing alias",
            "/images?action=import-lxd-image&account={VADER}",
            Json(json!({})),
            403,
            "OperatorOnly",
            None,
            None,
        ),
        c(
            "lxd: no alias",
            "/images?action=import-lxd-image",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["alias", "MissingParameter"]]),
            Some("missing parameters"),
        ),
        c(
            "lxd: an empty alias",
            "/images?action=import-lxd-image&alias=",
            Body::None,
            422,
            "ValidationFailed",
            Some(&[["alias", "MissingParameter"]]),
            None,
        ),
        c(
            "lxd: an alias without a registry",
            "/images?action=import-lxd-image&alias=alpine",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["alias", "InvalidParameter"]]),
            Some("alias must be in the format \"registry:image\""),
        ),
        c(
            "lxd: an alias starting with ':'",
            "/images?action=import-lxd-image&alias=:alpine",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["alias", "InvalidParameter"]]),
            None,
        ),
        c(
            "lxd: an unknown registry",
            "/images?action=import-lxd-image&alias=nowhere:alpine",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["alias", "Invalid"]]),
            Some("No registry found for \"nowhere\" - valid registries are \"images, ubuntu\""),
        ),
        c(
            "lxd: a request the original would serve",
            "/images?action=import-lxd-image&alias=ubuntu:jammy",
            Json(json!({})),
            501,
            "NotAvailable",
            None,
            None,
        ),
        // AdminImportDockerImage: operators, then repo/tag/digest, then the reference.
        c(
            "docker import: called for an account",
            "/images?action=import-docker-image&repo=busybox&tag=latest&account={VADER}",
            Json(json!({})),
            403,
            "OperatorOnly",
            None,
            None,
        ),
        c(
            "docker import: nothing given",
            "/images?action=import-docker-image",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["repo", "MissingParameter"], ["tag", "MissingParameter"]]),
            Some("missing parameters"),
        ),
        c(
            "docker import: no tag nor digest",
            "/images?action=import-docker-image&repo=busybox",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["tag", "MissingParameter"]]),
            None,
        ),
        c(
            "docker import: both tag and digest",
            "/images?action=import-docker-image&repo=busybox&tag=1&digest=sha256:0123",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["digest", "Invalid"]]),
            None,
        ),
        c(
            "docker import: a bad repository name",
            "/images?action=import-docker-image&repo=BusyBox&tag=latest",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["repo", "Invalid"]]),
            Some("invalid repository name, may only contain [a-z0-9_/.-] characters: BusyBox"),
        ),
        c(
            "docker import: a bad index",
            "/images?action=import-docker-image&repo=ftp://reg.example.com/x&tag=1",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["repo", "Invalid"]]),
            None,
        ),
        c(
            "docker import: a request the original would serve",
            "/images?action=import-docker-image&repo=docker.io/library/busybox&digest=sha256:0123",
            Json(json!({})),
            501,
            "NotAvailable",
            None,
            None,
        ),
        // AdminCreateImageFromVm.
        c(
            "create-from-vm: no vm_uuid",
            "/images?action=create-from-vm",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["vm_uuid", "MissingParameter"]]),
            Some("missing 'vm_uuid' parameter"),
        ),
        c(
            "create-from-vm: vm_uuid not a UUID",
            "/images?action=create-from-vm&vm_uuid=nope",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["vm_uuid", "Invalid"]]),
            Some("invalid 'vm_uuid': not a UUID: 'nope'"),
        ),
        c(
            "create-from-vm: incremental not a boolean",
            "/images?action=create-from-vm&vm_uuid={VM}&incremental=yes",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["incremental", "Invalid"]]),
            None,
        ),
        c(
            "create-from-vm: max_origin_depth not a number",
            "/images?action=create-from-vm&vm_uuid={VM}&max_origin_depth=deep",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["max_origin_depth", "Invalid"]]),
            None,
        ),
        c(
            "create-from-vm: max_origin_depth under 2",
            "/images?action=create-from-vm&vm_uuid={VM}&max_origin_depth=1",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["max_origin_depth", "Invalid"]]),
            Some("max_origin_depth query param, 1, must be greater than 1"),
        ),
        c(
            "create-from-vm: no manifest",
            "/images?action=create-from-vm&vm_uuid={VM}",
            Body::None,
            422,
            "ValidationFailed",
            Some(&[["body", "MissingParameter"]]),
            Some("missing request body (image manifest)"),
        ),
        c(
            "create-from-vm: an owner that is not the account",
            "/images?action=create-from-vm&vm_uuid={VM}&account={VADER}",
            Json(json!({"name": "x", "owner": LUKE})),
            422,
            "InvalidParameter",
            Some(&[["owner", "Invalid"]]),
            None,
        ),
        c(
            "create-from-vm: a request the original would serve",
            "/images?action=create-from-vm&vm_uuid={VM}&account={VADER}&incremental=true&max_origin_depth=3",
            Json(json!({"name": "x", "version": "1"})),
            501,
            "NotAvailable",
            None,
            Some("custom image creation is not currently available"),
        ),
        // ImportImageFromDatacenter: no other datacenter is configured here.
        c(
            "import-from-datacenter: no account",
            "/images/{RANDOM}?action=import-from-datacenter&datacenter=us-west-1",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["account", "Invalid"]]),
            None,
        ),
        c(
            "import-from-datacenter: no datacenter",
            "/images/{RANDOM}?action=import-from-datacenter&account={VADER}",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["datacenter", "MissingParameter"]]),
            Some("missing datacenter parameter"),
        ),
        c(
            "import-from-datacenter: a datacenter not configured",
            "/images/{RANDOM}?action=import-from-datacenter&account={VADER}&datacenter=us-west-1",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["datacenter", "Invalid"]]),
            None,
        ),
        // AddImageFileFromUrl: the image, its owner, then the request.
        c(
            "from-url: no such image",
            "/images/{RANDOM}/file/from-url?compression=gzip",
            Json(json!({"file_url": "https://example.com/f"})),
            404,
            "ResourceNotFound",
            None,
            None,
        ),
        c(
            "from-url: an image the account cannot see",
            "/images/{UNACT}/file/from-url?compression=gzip&account={LUKE}",
            Json(json!({"file_url": "https://example.com/f"})),
            404,
            "ResourceNotFound",
            None,
            None,
        ),
        c(
            "from-url: another account's image",
            "/images/{ACTIVE}/file/from-url?compression=gzip&account={LUKE}",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "NotImageOwner",
            None,
            None,
        ),
        c(
            "from-url: an activated image",
            "/images/{ACTIVE}/file/from-url?compression=gzip",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "ImageFilesImmutable",
            None,
            None,
        ),
        c(
            "from-url: no compression",
            "/images/{UNACT}/file/from-url",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "InvalidParameter",
            Some(&[["compression", "Missing"]]),
            Some("missing \"compression\""),
        ),
        c(
            "from-url: an unknown compression",
            "/images/{UNACT}/file/from-url?compression=zip",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "InvalidParameter",
            Some(&[["compression", "Invalid"]]),
            None,
        ),
        c(
            "from-url: no file_url",
            "/images/{UNACT}/file/from-url?compression=gzip",
            Json(json!({})),
            422,
            "InvalidParameter",
            Some(&[["file_url", "Missing"]]),
            Some("missing \"file_url\" field from request body"),
        ),
        c(
            "from-url: a URL that is not https",
            "/images/{UNACT}/file/from-url?compression=gzip",
            Json(json!({"file_url": "http://example.com/f"})),
            422,
            "InvalidParameter",
            Some(&[["file_url", "Invalid"]]),
            Some("Only URLs using the https: scheme are supported"),
        ),
        c(
            "from-url: storage chosen by an account",
            "/images/{UNACT}/file/from-url?compression=gzip&storage=local&account={VADER}",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "InvalidParameter",
            Some(&[["storage", "NotAllowed"]]),
            None,
        ),
        c(
            "from-url: an unknown storage",
            "/images/{UNACT}/file/from-url?compression=gzip&storage=s3",
            Json(json!({"file_url": "https://example.com/f"})),
            422,
            "InvalidParameter",
            Some(&[["storage", "Invalid"]]),
            None,
        ),
        c(
            "from-url: a request the original would serve",
            "/images/{UNACT}/file/from-url?compression=gzip&storage=manta",
            Json(json!({"file_url": "https://example.com/f"})),
            501,
            "NotAvailable",
            None,
            None,
        ),
        // AdminPushDockerImage: the body, the image, its owner, docker, then the request.
        c(
            "push: a body that is not JSON",
            "/images/{RANDOM}/push?repoAndTag=busybox:1",
            Raw("{"),
            400,
            "InvalidContent",
            None,
            None,
        ),
        c(
            "push: no such image",
            "/images/{RANDOM}/push?repoAndTag=busybox:1",
            Json(json!({"manifest_str": "{}"})),
            404,
            "ResourceNotFound",
            None,
            None,
        ),
        c(
            "push: another account's image",
            "/images/{DOCKER}/push?repoAndTag=busybox:1&account={LUKE}",
            Json(json!({"manifest_str": "{}"})),
            422,
            "NotImageOwner",
            None,
            None,
        ),
        c(
            "push: not a docker image",
            "/images/{ACTIVE}/push?repoAndTag=busybox:1",
            Json(json!({"manifest_str": "{}"})),
            422,
            "ValidationFailed",
            Some(&[["type", "Invalid"]]),
            Some("image is not a docker image"),
        ),
        c(
            "push: no manifest_str",
            "/images/{DOCKER}/push?repoAndTag=busybox:1",
            Json(json!({})),
            422,
            "ValidationFailed",
            Some(&[["manifest_str", "MissingParameter"]]),
            None,
        ),
        c(
            "push: no repoAndTag",
            "/images/{DOCKER}/push",
            Json(json!({"manifest_str": "{}"})),
            422,
            "ValidationFailed",
            Some(&[["repoAndTag", "MissingParameter"]]),
            None,
        ),
        c(
            "push: a bad reference",
            "/images/{DOCKER}/push?repoAndTag=Busy/box:1",
            Json(json!({"manifest_str": "{}"})),
            422,
            "ValidationFailed",
            Some(&[["repoAndTag", "Invalid"]]),
            None,
        ),
        c(
            "push: manifest_str not JSON",
            "/images/{DOCKER}/push?repoAndTag=busybox:1",
            Json(json!({"manifest_str": "{"})),
            422,
            "ValidationFailed",
            Some(&[["manifest_str", "Invalid"]]),
            Some("JSON parse of manifest_str failed"),
        ),
        c(
            "push: a request the original would serve",
            "/images/{DOCKER}/push?repoAndTag=busybox:1",
            Json(json!({"manifest_str": "{}"})),
            501,
            "NotAvailable",
            None,
            None,
        ),
    ]
}

/// An image of VADER's (`type`), activated with a small file if `active`.
async fn image(app: &App, type_: &str, active: bool, public: bool) -> String {
    let r = app
        .post_json(
            "/images",
            &json!({"name": format!("na-{type_}"), "version": "1", "os": "linux", "type": type_,
                "owner": VADER, "public": public}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let u = r.json()["uuid"].as_str().unwrap().to_string();
    if active {
        let r = app
            .request(
                Method::PUT,
                &format!("/images/{u}/file?compression=none"),
                &[("content-type", "application/octet-stream")],
                vec![7u8; 1000],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.json());
        let r = app
            .post_json(&format!("/images/{u}?action=activate"), &json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.json());
    }
    u
}

async fn send(app: &App, path: &str, body: &Body) -> common::Resp {
    match body {
        Body::None => app.request(Method::POST, path, &[], Vec::new()).await,
        Body::Json(v) => app.post_json(path, v).await,
        Body::Raw(s) => {
            app.request(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                s.as_bytes().to_vec(),
            )
            .await
        }
    }
}

#[tokio::test]
async fn every_unserved_operation_checks_its_request_first() {
    let app = App::new().await;
    let active = image(&app, "zone-dataset", true, true).await;
    let unact = image(&app, "zone-dataset", false, false).await;
    let docker = image(&app, "docker", true, true).await;
    let random = uuid::Uuid::new_v4().to_string();
    let mut failures = Vec::new();
    for c in cases() {
        let path = c
            .path
            .replace("{VADER}", VADER)
            .replace("{LUKE}", LUKE)
            .replace("{VM}", VM)
            .replace("{RANDOM}", &random)
            .replace("{ACTIVE}", &active)
            .replace("{UNACT}", &unact)
            .replace("{DOCKER}", &docker);
        let r = send(&app, &path, &c.body).await;
        let e = r.json();
        let mut wrong = Vec::new();
        if r.status != c.status || e["code"] != c.code {
            wrong.push(format!(
                "{} {} (want {} {})",
                r.status, e["code"], c.status, c.code
            ));
        }
        if let Some(want) = c.errors {
            let want: Vec<Value> = want
                .iter()
                .map(|[f, code]| json!({"field": f, "code": code}))
                .collect();
            let got: Vec<Value> = e["errors"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|x| json!({"field": x["field"], "code": x["code"]}))
                .collect();
            if got != want {
                wrong.push(format!("errors {got:?} (want {want:?})"));
            }
        }
        if let Some(m) = c.message
            && e["message"] != m
        {
            wrong.push(format!("message {} (want {m:?})", e["message"]));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: POST {path}: {}", c.what, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Every route or action the table says answers 501 is one the OpenAPI
/// document says may answer 501, and the other way round (but Ping's
/// `?error=` samples and AddImageFile, which documents the code).
#[test]
fn the_table_covers_every_operation_documented_501() {
    let doc = imgapi::api::openapi::document();
    let mut documented: Vec<String> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["responses"].get("501").is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    documented.retain(|o| o != "GET /ping" && o != "PUT /images/{uuid}/file");
    documented.sort();
    let mut served_501: Vec<String> = cases()
        .iter()
        .filter(|c| c.status == 501)
        .map(|c| {
            let p = c.path.split('?').next().unwrap();
            let p = ["{RANDOM}", "{ACTIVE}", "{UNACT}", "{DOCKER}"]
                .iter()
                .fold(p.to_string(), |p, k| p.replace(k, "{uuid}"));
            format!("POST {p}")
        })
        .collect();
    served_501.sort();
    served_501.dedup();
    assert_eq!(served_501, documented);
    // And each action of POST /images that answers 501 has its row.
    for a in ["create-from-vm", "import-docker-image", "import-lxd-image"] {
        assert!(
            cases()
                .iter()
                .any(|c| c.status == 501 && c.path.contains(&format!("action={a}"))),
            "{a}"
        );
    }
}

/// Without a token (token mode), each is 401 first, as IMGAPI's `reqAuth`.
#[tokio::test]
async fn each_needs_authentication_first() {
    let app = App::with_config(|c| c.auth = imgapi::config::AuthMode::Token).await;
    let random = uuid::Uuid::new_v4();
    for path in [
        "/images?action=import-lxd-image".to_string(),
        "/images?action=import-docker-image".to_string(),
        "/images?action=create-from-vm".to_string(),
        format!("/images/{random}?action=import-from-datacenter"),
        format!("/images/{random}/file/from-url"),
        format!("/images/{random}/push"),
    ] {
        let r = app.post_json(&path, &json!({})).await;
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (401, json!("UnauthorizedError")),
            "{path}"
        );
    }
}
