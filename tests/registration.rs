//! Registration (phase two) over real HTTP: the EC2-style flow (tus upload,
//! then POST a manifest that references it), registration of objects put in
//! the store by other tools, every refusal, a restart mid-verification, and
//! races with DeleteImage and a second registration.

use crate::common;

use std::time::Duration;

use common::app::App;
use common::*;
use serde_json::{Value, json};

/// Upload `file` with tus as `account`; returns the upload id.
async fn upload(s: &Server, file: &[u8], account: Option<&str>, complete: bool) -> String {
    let loc = s.tus_location(file.len() as u64, account).await;
    let n = if complete { file.len() } else { file.len() / 2 };
    let (st, _, v) = s.tus_patch(&loc, account, 0, file[..n].to_vec()).await;
    assert_eq!(st, 204, "{v}");
    upload_id(&loc)
}

fn manifest(name: &str, file: Value) -> Value {
    json!({"v": 2, "name": name, "version": "1.2.8", "os": "smartos", "type": "zone-dataset",
           "files": [file]})
}

async fn register(s: &Server, account: &str, body: Value, q: &str) -> (u16, Value) {
    s.post(&format!("/images?account={account}{q}"), body).await
}

/// Files under the image area of the manta store.
fn image_files(s: &Server) -> Vec<std::path::PathBuf> {
    walk(&s.data_dir().join("manta/imgapi/images"))
}

#[tokio::test]
async fn ec2_style_flow_upload_then_register() {
    let s = Server::start().await;
    let file = data(2_500_000, 1);
    let id = upload(&s, &file, Some(LUKE), true).await;
    let (st, img) = register(
        &s,
        LUKE,
        manifest(
            "nodejs",
            json!({"upload": id, "content_md5": md5_b64(&file), "compression": "bzip2"}),
        ),
        "",
    )
    .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["state"], "active");
    assert_eq!(img["owner"], LUKE);
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(img["files"][0]["size"], file.len());
    assert_eq!(img["files"][0]["compression"], "bzip2");
    assert!(img["published_at"].is_string());
    let u = img["uuid"].as_str().unwrap();
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file?account={LUKE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
    assert_eq!(r.bytes().await.unwrap().to_vec(), file, "byte-identical");
    let (_, v) = s.get(&format!("/images/{u}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], "manta");
    let (_, info) = s.get(&format!("/uploads/{id}/info?account={LUKE}")).await;
    assert_eq!(
        (info["state"].as_str(), info["image_uuid"].as_str()),
        (Some("registered"), Some(u))
    );
    // activate=false leaves it unactivated
    let file2 = data(10_000, 2);
    let id2 = upload(&s, &file2, Some(LUKE), true).await;
    let (st, img) = register(
        &s,
        LUKE,
        manifest(
            "later",
            json!({"upload": id2, "content_md5": md5_b64(&file2), "compression": "none",
                                 "sha1": sha1_hex(&file2), "size": file2.len()}),
        ),
        "&activate=false",
    )
    .await;
    assert_eq!((st, img["state"].as_str()), (200, Some("unactivated")));
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&file2));
}

#[tokio::test]
async fn objects_put_by_other_tools_are_verified_by_streaming() {
    let s = Server::start().await;
    let file = data(3_000_000, 3);
    // "any S3 client": the object appears under the account's manta path
    let p = s
        .data_dir()
        .join(format!("manta/{VADER}/stor/images/x.zfs.bz2"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let path = format!("/{VADER}/stor/images/x.zfs.bz2");
    let (st, img) = register(
        &s,
        VADER,
        manifest(
            "from-path",
            json!({"path": path, "content_md5": md5_b64(&file), "compression": "bzip2"}),
        ),
        "",
    )
    .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["state"], "active");
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&file));
    let u = img["uuid"].as_str().unwrap().to_string();
    // The image is immutable through the user's path: overwrite and delete it.
    std::fs::write(&p, b"something else entirely").unwrap();
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);
    std::fs::remove_file(&p).unwrap();
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
    // Operators may register /assets paths.
    let a = s.data_dir().join("assets/base/base.zfs");
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::write(&a, &file[..1000]).unwrap();
    let (st, img) = s
        .post(
            "/images",
            json!({"name": "base", "version": "1", "os": "smartos", "type": "zone-dataset", "owner": SDC,
                   "files": [{"path": "/assets/base/base.zfs", "content_md5": md5_b64(&file[..1000]), "compression": "none"}]}),
        )
        .await;
    assert_eq!((st, img["state"].as_str()), (200, Some("active")), "{img}");
}

#[tokio::test]
async fn bad_registrations_are_refused_and_leave_nothing() {
    let s = Server::start().await;
    let file = data(100_000, 4);
    let good_md5 = md5_b64(&file);
    let count_images = || async {
        let (_, v) = s.get("/images?state=all").await;
        v.as_array().unwrap().len()
    };
    // unknown upload: 404
    let (st, v) = register(&s, LUKE, manifest("x", json!({"upload": "3560c262-fc65-0242-a446-7c6d1fb482e3", "content_md5": good_md5, "compression": "none"})), "").await;
    assert_eq!((st, v["code"].as_str()), (404, Some("UploadNotFound")));
    // foreign upload: 404
    let vader_up = upload(&s, &file, Some(VADER), true).await;
    let (st, v) = register(
        &s,
        LUKE,
        manifest(
            "x",
            json!({"upload": vader_up, "content_md5": good_md5, "compression": "none"}),
        ),
        "",
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("UploadNotFound")));
    // incomplete upload: 422 UploadIncomplete
    let half = upload(&s, &file, Some(LUKE), false).await;
    let (st, v) = register(
        &s,
        LUKE,
        manifest(
            "x",
            json!({"upload": half, "content_md5": good_md5, "compression": "none"}),
        ),
        "",
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("UploadIncomplete")));
    // path outside the caller's namespace: 422 NotMantaPathOwner
    let (st, v) = register(&s, LUKE, manifest("x", json!({"path": format!("/{VADER}/stor/a"), "content_md5": good_md5, "compression": "none"})), "").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotMantaPathOwner")));
    // assets path by an account not on the allow-list: NotAllowed
    let (st, v) = register(
        &s,
        LUKE,
        manifest(
            "x",
            json!({"path": "/assets/a", "content_md5": good_md5, "compression": "none"}),
        ),
        "",
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(v["errors"][0]["code"], "NotAllowed");
    // missing object: 422 FileNotFound
    let (st, v) = register(&s, LUKE, manifest("x", json!({"path": format!("/{LUKE}/stor/nope"), "content_md5": good_md5, "compression": "none"})), "").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("FileNotFound")));
    // digest mismatch on a fast-path upload: 422 ChecksumMismatch naming the field
    let mine = upload(&s, &file, Some(LUKE), true).await;
    for (f, field) in [
        (
            json!({"upload": mine, "content_md5": md5_b64(b"nope"), "compression": "none"}),
            "content_md5",
        ),
        (
            json!({"upload": mine, "content_md5": good_md5, "compression": "none", "sha1": sha1_hex(b"x")}),
            "sha1",
        ),
        (
            json!({"upload": mine, "content_md5": good_md5, "compression": "none", "size": 5}),
            "size",
        ),
    ] {
        let (st, v) = register(&s, LUKE, manifest("x", f), "").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (422, Some("ChecksumMismatch")),
            "{field}: {v}"
        );
        assert_eq!(
            v["errors"][0],
            json!({"field": field, "code": "Mismatch", "message": v["errors"][0]["message"]})
        );
    }
    // digest mismatch on the slow path (streamed object): nothing is left
    let p = s.data_dir().join(format!("manta/{LUKE}/stor/obj"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let (st, v) = register(&s, LUKE, manifest("x", json!({"path": format!("/{LUKE}/stor/obj"), "content_md5": md5_b64(b"nope"), "compression": "none"})), "").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ChecksumMismatch")));
    assert_eq!(v["errors"][0]["field"], "content_md5");
    // more than one file; missing content_md5 or compression
    let (st, v) = register(&s, LUKE, json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset",
        "files": [{"upload": mine, "content_md5": good_md5, "compression": "none"}, {"upload": mine, "content_md5": good_md5, "compression": "none"}]}), "").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    let (st, v) = register(&s, LUKE, manifest("x", json!({"upload": mine})), "").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"files[0].content_md5") && fields.contains(&"files[0].compression"),
        "{v}"
    );
    // a bad manifest is refused before anything is claimed
    let (st, v) = register(
        &s,
        LUKE,
        json!({"name": "x", "version": "1", "os": "amiga", "type": "zone-dataset",
        "files": [{"upload": mine, "content_md5": good_md5, "compression": "none"}]}),
        "",
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    // nothing of all that left an image or an object behind
    assert_eq!(count_images().await, 0);
    assert!(image_files(&s).is_empty(), "{:?}", image_files(&s));
    // and the upload is still registrable
    let (st, v) = register(
        &s,
        LUKE,
        manifest(
            "ok",
            json!({"upload": mine, "content_md5": good_md5, "compression": "none"}),
        ),
        "",
    )
    .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("active")), "{v}");
    // ...once: a second registration of it is 409 FileInUse
    let (st, v) = register(
        &s,
        LUKE,
        manifest(
            "again",
            json!({"upload": mine, "content_md5": good_md5, "compression": "none"}),
        ),
        "",
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (409, Some("FileInUse")));
    assert_eq!(count_images().await, 1);
}

#[tokio::test]
async fn wait_zero_returns_creating_then_active_or_failed() {
    let s = Server::start().await;
    let file = data(20_000_000, 5);
    let p = s.data_dir().join(format!("manta/{LUKE}/stor/big"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let (st, img) = register(&s, LUKE, manifest("slow", json!({"path": format!("/{LUKE}/stor/big"), "content_md5": md5_b64(&file), "compression": "none"})), "&wait=0").await;
    assert_eq!(st, 200);
    let u = img["uuid"].as_str().unwrap().to_string();
    assert!(
        img["state"] == "creating" || img["state"] == "active",
        "{img}"
    );
    let mut state = String::new();
    for _ in 0..200 {
        let (_, v) = s.get(&format!("/images/{u}?account={LUKE}")).await;
        state = v["state"].as_str().unwrap().to_string();
        if state != "creating" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "active");
    // a mismatch reported after the POST returned: failed with error{code,message}
    let (st, img) = register(&s, LUKE, manifest("bad", json!({"path": format!("/{LUKE}/stor/big"), "content_md5": md5_b64(b"x"), "compression": "none"})), "&wait=0").await;
    assert_eq!(st, 200);
    let u = img["uuid"].as_str().unwrap().to_string();
    let mut v = Value::Null;
    for _ in 0..200 {
        v = s.get(&format!("/images/{u}?account={LUKE}")).await.1;
        if v["state"] != "creating" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "ChecksumMismatch");
    assert!(v["error"]["message"].is_string());
    assert_eq!(image_files(&s).len(), 1, "only the good image has bytes");
    // a failed placeholder shows in state=failed listings
    let (_, l) = s.get(&format!("/images?account={LUKE}&state=failed")).await;
    assert_eq!(names(&l), vec!["bad"]);
}

#[tokio::test]
async fn restart_during_slow_verification_resumes_the_job() {
    let mut s = Server::spawn().await;
    let file = data(150_000_000, 6);
    let p = s.data_dir().join(format!("manta/{LUKE}/stor/huge"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let (st, img) = register(&s, LUKE, manifest("huge", json!({"path": format!("/{LUKE}/stor/huge"), "content_md5": md5_b64(&file), "compression": "none"})), "&wait=0").await;
    assert_eq!(st, 200);
    let u = img["uuid"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    s.restart_hard().await; // kill -9 mid-verification (or right after)
    let mut v = Value::Null;
    for _ in 0..600 {
        v = s.get(&format!("/images/{u}?account={LUKE}")).await.1;
        if v["state"] != "creating" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v["state"], "active", "{v}");
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
    // no temporary leftovers of the killed attempt
    let files = image_files(&s);
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test]
async fn races_with_delete_and_double_registration() {
    let s = Server::start().await;
    // Two registrations of one upload at once: exactly one wins.
    let file = data(1_000_000, 7);
    let id = upload(&s, &file, Some(LUKE), true).await;
    let body = manifest(
        "race",
        json!({"upload": id, "content_md5": md5_b64(&file), "compression": "none"}),
    );
    let (a, b) = tokio::join!(
        register(&s, LUKE, body.clone(), ""),
        register(&s, LUKE, body.clone(), "")
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 409], "{a:?} {b:?}");
    let (_, l) = s.get(&format!("/images?account={LUKE}&state=all")).await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    // Registration racing DeleteImage: the image ends up deleted with no bytes left, or active.
    let big = data(60_000_000, 8);
    let p = s.data_dir().join(format!("manta/{LUKE}/stor/big"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &big).unwrap();
    let (st, img) = register(&s, LUKE, manifest("doomed", json!({"path": format!("/{LUKE}/stor/big"), "content_md5": md5_b64(&big), "compression": "none"})), "&wait=0").await;
    assert_eq!(st, 200);
    let u = img["uuid"].as_str().unwrap().to_string();
    let (st, _) = s.delete(&format!("/images/{u}?account={LUKE}")).await;
    assert_eq!(st, 204);
    // The job notices when it finishes; wait for it (bounded).
    let mut left = vec![];
    for _ in 0..300 {
        left = image_files(&s)
            .into_iter()
            .filter(|f| f.to_string_lossy().contains(&u))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "no orphan bytes: {left:?}");
    let (st, _) = s.get(&format!("/images/{u}")).await;
    assert_eq!(st, 404, "stays deleted");
}

#[tokio::test]
async fn add_image_file_attaches_an_upload() {
    let s = Server::start().await;
    let file = data(500_000, 9);
    let (_, img) = s
        .post(
            &format!("/images?account={LUKE}"),
            json!({"name": "classic", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let id = upload(&s, &file, Some(LUKE), true).await;
    // sha1 is checked like AddImageFile's
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{u}/file?account={LUKE}&compression=gzip&upload={id}&sha1={}",
            sha1_hex(b"x")
        )))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("ChecksumMismatch")),
        "{v}"
    );
    let r = s
        .http
        .put(s.u(&format!("/images/{u}/file?account={LUKE}&upload={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1["errors"][0]["field"], "compression");
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{u}/file?account={LUKE}&compression=gzip&upload={id}&sha1={}",
            sha1_hex(&file)
        )))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "unactivated");
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(v["files"][0]["compression"], "gzip");
    // moved, not copied: the upload area no longer holds the bytes
    assert!(walk(&s.data_dir().join("manta/imgapi/uploads")).is_empty());
    let (st, _) = s
        .post(
            &format!("/images/{u}?action=activate&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);
    // an activated image's file is immutable; a used upload cannot be reused
    let id2 = upload(&s, &file, Some(LUKE), true).await;
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{u}/file?account={LUKE}&compression=gzip&upload={id2}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1["code"], "ImageFilesImmutable");
}

/// The seed's example manifests name the stored object `manta_path`: it
/// registers like `path`. Any other key in a file to register, or a file
/// with no reference, is a 422 that creates nothing (it never quietly
/// becomes a plain CreateImage with `files: []`).
#[tokio::test]
async fn manta_path_registers_and_unknown_file_keys_are_refused() {
    let s = Server::start().await;
    let file = data(1_000_000, 7);
    let p = s
        .data_dir()
        .join(format!("manta/{VADER}/stor/images/nodejs-1.2.8.zfs.bz2"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let path = format!("/{VADER}/stor/images/nodejs-1.2.8.zfs.bz2");
    let (st, img) = register(
        &s,
        VADER,
        manifest(
            "seeded",
            json!({"manta_path": path, "content_md5": md5_b64(&file), "compression": "bzip2"}),
        ),
        "",
    )
    .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["state"], "active");
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(img["files"][0]["size"], file.len());
    assert_eq!(img["files"][0]["compression"], "bzip2");

    let before = s.get(&format!("/images?account={VADER}")).await.1;
    let n = before.as_array().unwrap().len();
    let cases = [
        (
            json!({"manta_path": path, "content_md5": md5_b64(&file), "mtime": "x"}),
            "files[0].mtime",
        ),
        (
            json!({"sha1": sha1_hex(&file), "size": 1_000_000}),
            "files[0].path",
        ),
        (
            json!({"path": path, "manta_path": path, "content_md5": md5_b64(&file)}),
            "files[0].manta_path",
        ),
    ];
    for (f, field) in cases {
        let (st, e) = register(&s, VADER, manifest("refused", f), "").await;
        assert_eq!(st, 422, "{e}");
        assert_eq!(e["code"], "ValidationFailed", "{e}");
        assert!(
            e["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["field"] == field),
            "{field} named in {e}"
        );
    }
    let after = s.get(&format!("/images?account={VADER}")).await.1;
    assert_eq!(after.as_array().unwrap().len(), n, "nothing created");
}

/// In process, on the services' manual clock: a registration that fails
/// after the POST returned leaves a failed placeholder, which lives
/// `placeholder_lifespan_days` by that clock and is then reaped.
#[tokio::test]
async fn failed_registration_placeholder_expires_by_the_clock() {
    let app = App::with_config(|c| c.registrar.placeholder_lifespan_days = 1).await;
    let p = app.data_dir().join(format!("manta/{LUKE}/stor/x"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"abc").unwrap();
    let body = manifest(
        "bad",
        json!({"path": format!("/{LUKE}/stor/x"), "content_md5": md5_b64(b"x"), "compression": "none"}),
    );
    let r = app
        .post_json(&format!("/images?account={LUKE}&wait=0"), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let u = r.json()["uuid"].as_str().unwrap().to_string();
    // The job runs in the background: wait (bounded) until it has failed.
    let mut v = Value::Null;
    for _ in 0..500 {
        v = app
            .fetch(&format!("/images/{u}?account={LUKE}"))
            .await
            .json();
        if v["state"] != "creating" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(v["state"], "failed", "{v}");
    app.advance(Duration::from_secs(24 * 3600));
    assert_eq!(app.reap().await, (0, 0), "kept for its whole lifespan");
    app.advance(Duration::from_millis(1));
    assert_eq!(app.reap().await, (0, 1));
    assert_eq!(
        app.fetch(&format!("/images/{u}?account={LUKE}"))
            .await
            .status,
        404
    );
}
