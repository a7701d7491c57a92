//! Hardening of the domain layer (issue 11): bounded manifests and ACLs
//! (set semantics, checked before the writer), `origin` limited to images
//! the caller can see, a store that never leaves its directory nor creates
//! readable files, storage paths that cannot be files answered 4xx, and
//! messages that never name internal keys.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn uuids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

fn base(name: &str) -> Value {
    json!({"name": name, "version": "1.0.0", "os": "smartos", "type": "zone-dataset"})
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

/// The fields named in a 422 body's `errors`.
fn fields(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn acl_req(s: &Server, uuid: &str, action: &str, accounts: &[String]) -> (u16, Value) {
    s.post(
        &format!("/images/{uuid}/acl?action={action}&account={LUKE}"),
        json!(accounts),
    )
    .await
}

#[tokio::test]
async fn acl_is_a_bounded_set_checked_quickly() {
    let s = Server::start().await;
    let img = s.create(Some(LUKE), base("acl")).await;
    let u = img["uuid"].as_str().unwrap().to_string();

    // Large but allowed: the whole limit in one request, fast.
    let first = uuids(1000);
    let t = Instant::now();
    let (st, v) = acl_req(&s, &u, "add", &first).await;
    assert_eq!(st, 200, "{v}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(v["acl"].as_array().unwrap().len(), 1000);

    // One more is over the limit: 422 naming acl, nothing changed.
    let (st, v) = acl_req(&s, &u, "add", &uuids(1)).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "InvalidParameter");
    assert_eq!(fields(&v), ["acl"]);
    let (_, now) = s.get(&format!("/images/{u}")).await;
    assert_eq!(now["acl"].as_array().unwrap().len(), 1000);
    // Re-adding accounts already there is no change, not over the limit.
    let (st, v) = acl_req(&s, &u, "add", &first[..10]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["acl"].as_array().unwrap().len(), 1000);

    // A request over the limit (50,000 accounts) is refused before it is
    // stored, quickly, and changes nothing.
    let img2 = s.create(Some(LUKE), base("acl2")).await;
    let u2 = img2["uuid"].as_str().unwrap().to_string();
    let t = Instant::now();
    let (st, v) = acl_req(&s, &u2, "add", &uuids(50_000)).await;
    assert!(st == 422 || st == 413, "{st} {v}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let (_, now) = s.get(&format!("/images/{u2}")).await;
    assert!(now.get("acl").is_none(), "{now}");

    // Duplicates are stored once.
    let (a, b, c) = (VADER.to_string(), EMPEROR.to_string(), SDC.to_string());
    let (st, v) = acl_req(
        &s,
        &u2,
        "add",
        &[a.clone(), a.clone(), b.clone(), a.clone()],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["acl"], json!([a, b]));
    let (_, v) = acl_req(&s, &u2, "add", &[b.clone(), c.clone()]).await;
    assert_eq!(v["acl"], json!([a, b, c]));
    let (_, v) = acl_req(&s, &u2, "remove", &[a.clone(), a.clone()]).await;
    assert_eq!(v["acl"], json!([b, c]));

    // CreateImage and UpdateImage: duplicates once, over the limit 422.
    let v = s
        .create(Some(LUKE), with(base("dup"), "acl", json!([a, a, b])))
        .await;
    assert_eq!(v["acl"], json!([a, b]));
    let (st, v) = s
        .post(
            &format!("/images?account={LUKE}"),
            with(base("big"), "acl", json!(uuids(1001))),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "ValidationFailed");
    assert_eq!(fields(&v), ["acl"]);
    let (st, v) = s
        .post(
            &format!("/images/{u2}?action=update&account={LUKE}"),
            json!({"acl": uuids(1001)}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(fields(&v), ["acl"]);
    let (_, now) = s.get(&format!("/images/{u2}")).await;
    assert_eq!(now["acl"], json!([b, c]));
}

#[tokio::test]
async fn manifest_fields_and_size_are_bounded() {
    let s = Server::start().await;
    let img = s.create(Some(LUKE), base("caps")).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let many_tags: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let long_key: serde_json::Map<String, Value> =
        [("k".repeat(129), json!(1))].into_iter().collect();
    let users: Vec<Value> = (0..101).map(|i| json!({"name": format!("u{i}")})).collect();
    let cases = [
        ("tags", json!(many_tags)),
        ("tags", json!(long_key)),
        ("tags", json!({"k": "v".repeat(1100)})),
        ("users", json!(users)),
        ("users", json!([{"name": "n".repeat(129)}])),
        (
            "requirements",
            json!({"networks": (0..200).map(|i| json!({"name": format!("net{i}"), "description": "d".repeat(100)})).collect::<Vec<_>>()}),
        ),
    ];
    for (field, value) in &cases {
        // UpdateImage as the owner.
        let (st, v) = s
            .post(
                &format!("/images/{u}?action=update&account={LUKE}"),
                json!({ *field: value }),
            )
            .await;
        assert_eq!(st, 422, "{field}: {v}");
        assert_eq!(fields(&v), [*field], "{v}");
        // CreateImage.
        let (st, v) = s
            .post(
                &format!("/images?account={LUKE}"),
                with(base("c"), field, value.clone()),
            )
            .await;
        assert_eq!(st, 422, "{field}: {v}");
        assert_eq!(fields(&v), [*field], "{v}");
    }
    // Operator fields.
    let traits: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("t{i}"), json!(true))).collect();
    let billing: Vec<String> = (0..101).map(|i| format!("b{i}")).collect();
    for (field, value) in [("traits", json!(traits)), ("billing_tags", json!(billing))] {
        let (st, v) = s
            .post(
                &format!("/images/{u}?action=update"),
                json!({ field: value }),
            )
            .await;
        assert_eq!(st, 422, "{field}: {v}");
        assert_eq!(fields(&v), [field], "{v}");
    }
    // Each field within its limit, the whole over 256 KiB: AdminImportImage.
    let id = uuid::Uuid::new_v4().to_string();
    let tags: serde_json::Map<String, Value> = (0..90)
        .map(|i| (format!("k{i}"), json!("v".repeat(1000))))
        .collect();
    let traits: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("t{i}"), json!("v".repeat(1000))))
        .collect();
    let dirs: Vec<String> = (0..100)
        .map(|i| format!("/d{i}/{}", "x".repeat(1000)))
        .collect();
    let mut m = base("huge");
    m["v"] = json!(2);
    m["uuid"] = json!(id);
    m["owner"] = json!(LUKE);
    m["tags"] = json!(tags);
    m["traits"] = json!(traits);
    m["inherited_directories"] = json!(dirs);
    let (st, v) = s.post(&format!("/images/{id}?action=import"), m).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(fields(&v), ["manifest"], "{v}");
    let (st, _) = s.get(&format!("/images/{id}")).await;
    assert_eq!(st, 404);
    // Import with an ACL over the limit.
    let mut m = base("importacl");
    m["v"] = json!(2);
    m["uuid"] = json!(id);
    m["owner"] = json!(LUKE);
    m["acl"] = json!(uuids(1001));
    let (st, v) = s.post(&format!("/images/{id}?action=import"), m).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(fields(&v), ["acl"]);
}

#[tokio::test]
async fn origin_must_be_an_image_the_caller_can_see() {
    let s = Server::start().await;
    // Luke's private image: Vader may not name it as origin, and hears
    // exactly what he hears for an image that does not exist.
    let private = s.create_active(LUKE, "private", false, b"luke").await;
    let p = private["uuid"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    let (st1, v1) = s
        .post(
            &format!("/images?account={VADER}"),
            with(base("child"), "origin", json!(p)),
        )
        .await;
    let (st2, v2) = s
        .post(
            &format!("/images?account={VADER}"),
            with(base("child"), "origin", json!(missing)),
        )
        .await;
    assert_eq!((st1, st2), (422, 422), "{v1} {v2}");
    assert_eq!(v1["code"], "OriginDoesNotExist");
    assert_eq!(
        v1["message"].as_str().unwrap().replace(&p, "U"),
        v2["message"].as_str().unwrap().replace(&missing, "U")
    );
    // Registration (POST /images with files) checks the same.
    let file = data(10_000, 3);
    let id = upload_id(&s.tus_upload(&file, Some(VADER)).await);
    let m = with(
        with(base("reg"), "origin", json!(p)),
        "files",
        json!([{"upload": id, "content_md5": md5_b64(&file), "compression": "none"}]),
    );
    let (st, v) = s.post(&format!("/images?account={VADER}"), m).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "OriginDoesNotExist");
    // Luke can still delete his image.
    let (st, v) = s.delete(&format!("/images/{p}?account={LUKE}")).await;
    assert_eq!(st, 204, "{v}");

    // A public image may be an origin; its owner then cannot delete it and
    // is not told the uuid of Vader's private image.
    let public = s.create_active(LUKE, "public", true, b"pub").await;
    let pu = public["uuid"].as_str().unwrap().to_string();
    let child = s
        .create(Some(VADER), with(base("child"), "origin", json!(pu)))
        .await;
    let cu = child["uuid"].as_str().unwrap().to_string();
    let (st, v) = s.delete(&format!("/images/{pu}?account={LUKE}")).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "ImageHasDependentImages");
    assert!(!v["message"].as_str().unwrap().contains(&cu), "{v}");
    // The operator sees it.
    let (st, v) = s.delete(&format!("/images/{pu}")).await;
    assert_eq!(st, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&cu), "{v}");

    // UpdateImage of origin (operators, unactivated images) checks it too.
    let (st, v) = s
        .post(
            &format!("/images/{cu}?action=update"),
            json!({"origin": missing}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "OriginDoesNotExist");
    let (st, v) = s
        .post(
            &format!("/images/{cu}?action=update"),
            json!({"origin": cu}),
        )
        .await;
    assert_eq!(st, 422, "{v}");
}

#[tokio::test]
async fn store_never_follows_links_out_and_creates_private_files() {
    let s = Server::start().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = b"outside secret bytes";
    std::fs::write(outside.path().join("secret"), secret).unwrap();
    let stor = s.data_dir().join(format!("manta/{LUKE}/stor"));
    std::fs::create_dir_all(&stor).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), stor.join("file")).unwrap();
    std::os::unix::fs::symlink(outside.path(), stor.join("dir")).unwrap();

    for path in [
        format!("/{LUKE}/stor/file"),
        format!("/{LUKE}/stor/dir/secret"),
    ] {
        let m = with(
            base("link"),
            "files",
            json!([{"path": path, "content_md5": md5_b64(secret), "compression": "none"}]),
        );
        let (st, v) = s.post(&format!("/images?account={LUKE}"), m).await;
        assert!((400..500).contains(&st), "{path}: {st} {v}");
    }
    let (_, list) = s.get("/images?state=all").await;
    assert!(names(&list).iter().all(|n| n != "link"), "{list}");

    // Export into a linked directory writes nothing outside.
    let img = s.create_active(LUKE, "exp", false, b"image bytes").await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=export&manta_path=/{LUKE}/stor/dir/&account={LUKE}"),
            json!({}),
        )
        .await;
    assert!((400..500).contains(&st), "{st} {v}");
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=export&manta_path=/{LUKE}/stor/dir/new&account={LUKE}"),
            json!({}),
        )
        .await;
    assert!((400..500).contains(&st), "{st} {v}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing new outside"
    );
    assert_eq!(
        std::fs::read(outside.path().join("secret")).unwrap(),
        secret
    );

    // A registered upload and the database: files 0600, directories 0700.
    let file = data(5000, 9);
    let id = upload_id(&s.tus_upload(&file, Some(LUKE)).await);
    let m = with(
        base("modes"),
        "files",
        json!([{"upload": id, "content_md5": md5_b64(&file), "compression": "none"}]),
    );
    let (st, v) = s.post(&format!("/images?account={LUKE}"), m).await;
    assert_eq!(st, 200, "{v}");
    let mode =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let dd = s.data_dir();
    let db = dd.join("imgapi.sqlite");
    assert_eq!(mode(&db), 0o600);
    for f in ["imgapi.sqlite-wal", "imgapi.sqlite-shm"] {
        if dd.join(f).exists() {
            assert_eq!(mode(&dd.join(f)), 0o600, "{f}");
        }
    }
    let files: Vec<_> = walk(&dd.join("manta/imgapi"))
        .into_iter()
        .chain(walk(&dd.join("local")))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        let mut d = f.parent();
        while let Some(p) = d.filter(|p| *p != dd.as_path() && p.starts_with(&dd)) {
            assert_eq!(mode(p), 0o700, "{}", p.display());
            d = p.parent();
        }
    }
}

#[tokio::test]
async fn paths_that_cannot_be_files_are_4xx() {
    let s = Server::start().await;
    let stor = s.data_dir().join(format!("manta/{LUKE}/stor"));
    std::fs::create_dir_all(stor.join("adir")).unwrap();
    std::fs::create_dir_all(stor.join("x.zfs")).unwrap();
    std::fs::write(stor.join("afile"), b"a file").unwrap();
    let reg = |path: String| {
        with(
            base("p"),
            "files",
            json!([{"path": path, "content_md5": md5_b64(b"a file"), "compression": "none"}]),
        )
    };
    let long = "a".repeat(256);
    for path in [
        format!("/{LUKE}/stor/adir"),
        format!("/{LUKE}/stor/afile/below"),
        format!("/{LUKE}/stor/{long}"),
    ] {
        for _ in 0..2 {
            let (st, v) = s
                .post(&format!("/images?account={LUKE}"), reg(path.clone()))
                .await;
            assert!((400..500).contains(&st), "{path}: {st} {v}");
        }
    }
    // tus: a path with a segment longer than 255 bytes is refused at creation.
    let (st, _) = s
        .tus_create(10, Some(LUKE), &[("path", &format!("/{LUKE}/stor/{long}"))])
        .await;
    assert!((400..500).contains(&st), "{st}");
    // A tus upload to a path that is a directory does not end in a 5xx.
    let (st, h) = s
        .tus_create(6, Some(LUKE), &[("path", &format!("/{LUKE}/stor/adir"))])
        .await;
    if st == 201 {
        let loc = h["location"].to_str().unwrap().to_string();
        let (st, _, v) = s.tus_patch(&loc, Some(LUKE), 0, b"abcdef".to_vec()).await;
        assert!(st < 500, "{st} {v}");
    } else {
        assert!((400..500).contains(&st), "{st}");
    }

    // ExportImage: a version with "//" exports to one safe name.
    let img = s.create_active(LUKE, "my image", false, b"bytes").await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=update&account={LUKE}"),
            json!({"version": "1.0//x/../y"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let export = |path: String| {
        let s = &s;
        let u = u.clone();
        async move {
            s.post(
                &format!("/images/{u}?action=export&manta_path={path}&account={LUKE}"),
                json!({}),
            )
            .await
        }
    };
    let (st, v) = export(format!("/{LUKE}/stor/exp/")).await;
    assert_eq!(st, 200, "{v}");
    let ip = v["image_path"].as_str().unwrap();
    assert_eq!(ip, format!("/{LUKE}/stor/exp/my_image-1.0__x_.._y.zfs"));
    assert!(s.data_dir().join(format!("manta{ip}")).is_file());
    // Below a file, onto a directory, a name too long with its suffix: 4xx.
    for path in [
        format!("/{LUKE}/stor/afile/sub/"),
        format!("/{LUKE}/stor/afile/sub"),
        format!("/{LUKE}/stor/x"),
        format!("/{LUKE}/stor/{}", "b".repeat(250)),
        format!("/{LUKE}/stor/{}/", "c".repeat(256)),
    ] {
        let (st, v) = export(path.clone()).await;
        assert!((400..500).contains(&st), "{path}: {st} {v}");
    }
}

#[tokio::test]
async fn messages_do_not_name_internal_keys() {
    let s = Server::start().await;
    let file = data(3000, 5);
    let id = upload_id(&s.tus_upload(&file, Some(LUKE)).await);
    let m = with(
        base("msg"),
        "files",
        json!([{"upload": id, "content_md5": md5_b64(&file), "compression": "none"}]),
    );
    let (st, v) = s.post(&format!("/images?account={LUKE}"), m).await;
    assert_eq!(st, 200, "{v}");
    let r = s
        .http
        .get(s.u(&format!("/uploads/{id}?account={LUKE}")))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert!((400..500).contains(&st), "{st} {v}");
    let msg = v["message"].as_str().unwrap_or_default();
    for bad in [
        "imgapi/",
        "uploads/",
        "images/",
        &s.data_dir().display().to_string(),
    ] {
        assert!(!msg.contains(bad), "{msg}");
    }
}
