//! Protocol and validation cases driven in process (`common::app`): the
//! real router, SQLite and local stores, without a binary or a port.
//! Bodies are parsed with the shared wire types, as a client would.

use crate::common;

use axum::http::Method;
use base64::Engine;
use common::app::App;
use common::*;
use imgapi::wire;
use serde_json::json;

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

#[tokio::test]
async fn tus_options_advertises_the_server() {
    let app = App::new().await;
    let r = app
        .request(Method::OPTIONS, "/uploads", &[], Vec::new())
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("tus-version"), "1.0.0");
    assert_eq!(r.header("tus-resumable"), "1.0.0");
    let ext: Vec<&str> = r.header("tus-extension").split(',').collect();
    for e in ["creation", "termination", "checksum", "expiration"] {
        assert!(ext.contains(&e), "{e} in {ext:?}");
    }
    assert!(r.header("tus-max-size").parse::<u64>().unwrap() > 0);
    assert!(r.header("tus-checksum-algorithm").contains("sha1"));
}

#[tokio::test]
async fn tus_head_reports_offset_length_and_no_store() {
    let app = App::new().await;
    let loc = app.tus_location(1000, None).await;
    let r = app
        .request(
            Method::HEAD,
            &loc,
            &[("tus-resumable", "1.0.0")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("upload-offset"), "0");
    assert_eq!(r.header("upload-length"), "1000");
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(!r.header("upload-expires").is_empty());
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn tus_patch_header_rules() {
    let app = App::new().await;
    let loc = app.tus_location(1000, None).await;
    let r = app.tus_patch_with(&loc, 0, &[], vec![1; 100]).await;
    assert_eq!((r.status, r.header("upload-offset")), (204, "100"));

    // Wrong offset: 409, nothing written.
    let r = app.tus_patch_with(&loc, 50, &[], vec![2; 10]).await;
    assert_eq!(
        (r.status, r.error().code.as_str()),
        (409, "UploadOffsetMismatch")
    );
    assert_eq!(app.tus_offset(&loc).await, (200, Some(100)));

    // Wrong content type: 415.
    let r = app
        .tus_patch_with(
            &loc,
            100,
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);

    // Missing or wrong Tus-Resumable: 412 with Tus-Version.
    let r = app
        .request(
            Method::PATCH,
            &loc,
            &[
                ("upload-offset", "100"),
                ("content-type", "application/offset+octet-stream"),
            ],
            vec![1u8],
        )
        .await;
    assert_eq!((r.status, r.header("tus-version")), (412, "1.0.0"));
    let r = app
        .request(
            Method::POST,
            "/uploads",
            &[("tus-resumable", "0.2.2"), ("upload-length", "1")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 412);

    // Bad checksum: 460 and the chunk is discarded; a good one is kept.
    let chunk = vec![7u8; 200];
    let bad = format!("sha1 {}", b64(&hex::decode(sha1_hex(b"other")).unwrap()));
    let good = format!("sha1 {}", b64(&hex::decode(sha1_hex(&chunk)).unwrap()));
    let r = app
        .tus_patch_with(&loc, 100, &[("upload-checksum", &bad)], chunk.clone())
        .await;
    assert_eq!(r.status, 460);
    assert_eq!(app.tus_offset(&loc).await.1, Some(100));
    let r = app
        .tus_patch_with(&loc, 100, &[("upload-checksum", &good)], chunk)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.tus_offset(&loc).await.1, Some(300));

    // sha256 is accepted too.
    use sha2::Digest;
    let sum = format!("sha256 {}", b64(&sha2::Sha256::digest([1u8; 10])));
    let r = app
        .tus_patch_with(&loc, 300, &[("upload-checksum", &sum)], vec![1; 10])
        .await;
    assert_eq!(r.status, 204, "sha256 checksum");

    // An unsupported algorithm: 400.
    let r = app
        .tus_patch_with(&loc, 310, &[("upload-checksum", "crc32 AAAA")], vec![1; 10])
        .await;
    assert_eq!(r.status, 400);

    // Past Upload-Length: 413, nothing written.
    let r = app.tus_patch_with(&loc, 310, &[], vec![0; 800]).await;
    assert_eq!(
        (r.status, r.error().code.as_str()),
        (413, "UploadLengthExceeded")
    );
    assert_eq!(app.tus_offset(&loc).await.1, Some(310));

    // An unknown upload: 404 UploadNotFound.
    let r = app
        .tus_patch_with(
            "/uploads/3560c262-fc65-0242-a446-7c6d1fb482e3",
            0,
            &[],
            vec![1],
        )
        .await;
    assert_eq!((r.status, r.error().code.as_str()), (404, "UploadNotFound"));
    assert_eq!(app.tus_offset("/uploads/nope").await.0, 404);

    // Creation without Upload-Length: 400.
    let r = app
        .request(
            Method::POST,
            "/uploads",
            &[("tus-resumable", "1.0.0")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 400);

    // X-HTTP-Method-Override: a POST carrying a PATCH.
    let r = app
        .request(
            Method::POST,
            &loc,
            &[
                ("x-http-method-override", "PATCH"),
                ("tus-resumable", "1.0.0"),
                ("upload-offset", "310"),
                ("content-type", "application/offset+octet-stream"),
            ],
            vec![9u8; 690],
        )
        .await;
    assert_eq!(r.status, 204);
    let info: wire::UploadInfo = app.fetch(&format!("{loc}/info")).await.parse();
    assert_eq!(info.state, "complete");
}

#[tokio::test]
async fn upload_info_parses_as_the_wire_type() {
    let app = App::new().await;
    let loc = app.tus_location(4, None).await;
    let r = app.tus_patch_with(&loc, 0, &[], b"abcd".to_vec()).await;
    assert_eq!(r.status, 204);
    let r = app.fetch(&format!("{loc}/info")).await;
    assert_eq!(r.status, 200);
    let info: wire::UploadInfo = r.parse();
    assert_eq!(format!("/uploads/{}", info.id), loc);
    assert_eq!((info.offset, info.length), (4, 4));
    assert_eq!(info.state, "complete");
    assert_eq!(info.sha1.as_deref(), Some(sha1_hex(b"abcd").as_str()));
    assert_eq!(info.content_md5.as_deref(), Some(md5_b64(b"abcd").as_str()));
    // What the server sent is exactly what the wire type writes back.
    assert_eq!(serde_json::to_value(&info).unwrap(), r.json());

    let r = app.fetch("/uploads").await;
    let list: Vec<wire::UploadInfo> = r.parse();
    assert_eq!(list, vec![info]);
}

#[tokio::test]
async fn unknown_and_invalid_parameters_are_422_naming_them() {
    let app = App::new().await;
    let r = app.fetch("/uploads?bogus=1").await;
    assert_eq!(r.status, 422);
    let e = r.error();
    assert_eq!(e.code, "InvalidParameter");
    assert!(e.message.contains("bogus"), "{}", e.message);
    assert_eq!(e.errors.unwrap()[0].field, "bogus");

    // Invalid values are named the same way.
    let r = app.fetch("/images?state=bogus").await;
    assert_eq!(r.status, 422);
    let e = r.error();
    assert_eq!(e.code, "InvalidParameter");
    assert!(e.errors.unwrap().iter().any(|f| f.field == "state"));
}

#[tokio::test]
async fn manifest_validation_errors_name_each_field() {
    let app = App::new().await;
    let r = app
        .post_json(
            "/images",
            &json!({"name": "", "version": "1.0.0", "os": "nope", "type": "zone-dataset",
                    "owner": VADER, "public": "yes"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let e = r.error();
    assert_eq!(e.code, "ValidationFailed");
    let errors = e.errors.expect("errors[]");
    let fields: Vec<&str> = errors.iter().map(|f| f.field.as_str()).collect();
    for f in ["name", "os", "public"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    assert!(
        errors
            .iter()
            .all(|f| f.code == "Invalid" || f.code == "MissingParameter")
    );

    // A body that is not a JSON object.
    let r = app
        .request(
            Method::POST,
            "/images",
            &[("content-type", "application/json")],
            b"[1]".to_vec(),
        )
        .await;
    assert_eq!(r.status / 100, 4);
    assert!(!r.error().code.is_empty());
}

#[tokio::test]
async fn error_bodies_parse_as_the_wire_type() {
    let app = App::new().await;
    let r = app
        .fetch("/images/3560c262-fc65-0242-a446-7c6d1fb482e3")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), "application/json");
    let e = r.error();
    assert_eq!(e.code, "ResourceNotFound");
    assert!(e.errors.is_none());
    assert_eq!(serde_json::to_value(&e).unwrap(), r.json());

    let r = app.fetch("/no/such/path").await;
    assert_eq!(
        (r.status, r.error().code.as_str()),
        (404, "ResourceNotFound")
    );

    // Ping's sample errors, with and without errors[].
    let r = app.fetch("/ping?error=ValidationFailed").await;
    let e = r.error();
    assert_eq!((r.status, e.code.as_str()), (422, "ValidationFailed"));
    assert_eq!(e.errors, Some(vec![]));
    let r = app.fetch("/ping?error=NoSuch").await;
    assert_eq!(
        r.error().errors.unwrap(),
        vec![wire::FieldError {
            field: "error".into(),
            code: "Missing".into(),
            message: None
        }]
    );
    // A 5xx sample keeps its generic message.
    let r = app.fetch("/ping?error=InternalError").await;
    assert_eq!(r.status, 500);
    assert!(!r.error().message.contains("boom"));
}

#[tokio::test]
async fn ping_and_images_parse_as_the_wire_types() {
    let app = App::new().await;
    let r = app.fetch("/ping").await;
    let p: wire::Ping = r.parse();
    assert_eq!((p.ping.as_str(), p.imgapi), ("pong", true));
    assert!(p.pid.is_some(), "auth none shows the pid");

    let r = app
        .post_json(
            "/images",
            &json!({"name": "wire", "version": "1.0.0", "os": "smartos",
                    "type": "zone-dataset", "owner": VADER, "description": "",
                    "tags": {"a": 1}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let img: wire::Image = r.parse();
    assert_eq!(img.state, "unactivated");
    assert!(img.description.is_none(), "empty strings are omitted");
    assert!(img.files.is_empty() && !img.icon);
    assert_eq!(serde_json::to_value(&img).unwrap(), r.json());

    let r = app
        .request(
            Method::PUT,
            &format!("/images/{}/file?compression=none", img.uuid),
            &[("content-type", "application/octet-stream")],
            b"file bytes".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .fetch(&format!("/images/{}?inclAdminFields=true", img.uuid))
        .await;
    let img: wire::Image = r.parse();
    assert_eq!(img.files[0].sha1, sha1_hex(b"file bytes"));
    assert_eq!(img.files[0].size, 10);
    assert!(img.files[0].stor.is_some(), "admin fields show stor");
    assert_eq!(serde_json::to_value(&img).unwrap(), r.json());
}

/// Placeholders expire on the services' clock: a failed image lives
/// `placeholder_lifespan_days`, then one reaper pass removes it and its file.
#[tokio::test]
async fn failed_placeholders_expire_and_are_reaped() {
    let app = App::with_config(|c| c.registrar.placeholder_lifespan_days = 2).await;
    let r = app
        .post_json(
            "/images",
            &json!({"name": "ph", "version": "1.0.0", "os": "smartos",
                    "type": "zone-dataset", "owner": VADER}),
        )
        .await;
    assert_eq!(r.status, 200);
    let uuid = r.parse::<wire::Image>().uuid;
    let r = app
        .request(
            Method::PUT,
            &format!("/images/{uuid}/file?compression=none"),
            &[("content-type", "application/octet-stream")],
            b"placeholder bytes".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"state": "failed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.parse::<wire::Image>().state, "failed");
    assert!(!walk(&classic_files_dir(&app.data_dir())).is_empty());

    app.advance(std::time::Duration::from_secs(2 * 24 * 3600));
    assert_eq!(app.reap().await, (0, 0), "kept for its whole lifespan");
    assert_eq!(app.fetch(&format!("/images/{uuid}")).await.status, 200);
    app.advance(std::time::Duration::from_millis(1));
    assert_eq!(app.reap().await, (0, 1));
    assert_eq!(app.fetch(&format!("/images/{uuid}")).await.status, 404);
    assert!(
        walk(&classic_files_dir(&app.data_dir())).is_empty(),
        "its file went with it"
    );
}

/// The builder's parts together: `auth = "token"` and an account, S3 as
/// the manta store, PostgreSQL for the metadata, a manual clock. The
/// account's upload is refused without its token, read back as the wire
/// type with it, keeps its bytes in the bucket, and expires when the clock
/// passes its time.
#[tokio::test]
async fn an_accounts_s3_upload_on_postgres_expires_by_the_clock() {
    let s3 = S3Server::start();
    let app = App::builder()
        .with_s3(&s3)
        .with_postgres()
        .with_toml("auth = \"token\"")
        .with_account("luke", false)
        .build()
        .await;
    let (luke, token) = app.account("luke");
    let bearer = format!("Bearer {token}");
    let tus = [("tus-resumable", "1.0.0"), ("upload-length", "20")];
    let r = app
        .request(Method::POST, "/uploads", &tus, Vec::new())
        .await;
    assert_eq!(
        (r.status, r.error().code.as_str()),
        (401, "UnauthorizedError")
    );
    let with_token = [tus[0], tus[1], ("authorization", bearer.as_str())];
    let r = app
        .request(Method::POST, "/uploads", &with_token, Vec::new())
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let loc = r.header("location").to_string();
    let auth = [("authorization", bearer.as_str())];
    let r = app.tus_patch_with(&loc, 0, &auth, vec![7; 10]).await;
    assert_eq!((r.status, r.header("upload-offset")), (204, "10"));

    let info: wire::UploadInfo = app
        .request(Method::GET, &format!("{loc}/info"), &auth, Vec::new())
        .await
        .parse();
    assert_eq!(info.owner.map(|o| o.to_string()).as_deref(), Some(luke));
    assert_eq!(
        (info.offset, info.length, info.state.as_str()),
        (10, 20, "uploading")
    );
    assert!(
        !s3.keys("p/").await.is_empty(),
        "its bytes are in the bucket"
    );

    // A day short of the expiry nothing goes; past it, one reaper pass
    // ends it.
    app.advance(std::time::Duration::from_secs(6 * 24 * 3600));
    assert_eq!(app.reap().await.0, 0);
    app.advance(std::time::Duration::from_secs(2 * 24 * 3600));
    assert_eq!(app.reap().await.0, 1);
    let head = [tus[0], ("authorization", bearer.as_str())];
    let r = app.request(Method::HEAD, &loc, &head, Vec::new()).await;
    assert!(matches!(r.status, 404 | 410), "{}", r.status);
    assert!(s3.keys("p/").await.is_empty(), "its bytes left the bucket");
}
