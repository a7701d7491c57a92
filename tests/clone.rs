//! CloneImage (`POST /images/{uuid}/clone?account=`) against the real
//! binary, on a directory store and on S3 (s3s-fs): IMGAPI's refusals in
//! its order, the clone of an image and of its chain of origins, files that
//! are the source's bytes and outlive it, and all or nothing.

use crate::common;
use crate::common::Api;

use common::{LUKE, S3Server, Server, VADER, data, md5_b64, sha1_hex};
use serde_json::{Value, json};

/// Where the test can look at the stored image files of a server.
enum Objects<'a> {
    Dir(&'a Server),
    S3(&'a S3Server),
}

impl Objects<'_> {
    /// The keys of every stored image file (`.../images/xxx/UUID/file0`).
    async fn files(&self) -> Vec<String> {
        match self {
            Objects::Dir(s) => common::walk(&s.data_dir())
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.contains("/images/") && p.ends_with("/file0"))
                .collect(),
            Objects::S3(s3) => s3
                .keys("")
                .await
                .into_iter()
                .filter(|k| k.contains("/images/") && k.ends_with("/file0"))
                .collect(),
        }
    }

    /// Remove the stored file of image `uuid` behind the server's back.
    async fn remove(&self, uuid: &str) {
        let mut n = 0;
        for k in self.files().await {
            if !k.contains(uuid) {
                continue;
            }
            n += 1;
            match self {
                Objects::Dir(_) => std::fs::remove_file(&k).unwrap(),
                Objects::S3(s3) => {
                    s3.client()
                        .delete_object()
                        .bucket(&s3.bucket)
                        .key(&k)
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        assert_eq!(n, 1, "one stored file of {uuid}");
    }
}

/// An image owned by `owner` with `data` as its file, activated, shared
/// with `acl`; more manifest fields in `extra`.
async fn image(s: &Server, owner: &str, acl: &[&str], data: &[u8], extra: Value) -> Value {
    let mut body = json!({"name": "clone-src", "version": "1.0.0", "os": "smartos",
        "type": "zone-dataset", "owner": owner, "public": false, "acl": acl,
        "description": "the source", "tags": {"role": "db"}, "requirements": {"min_ram": 512}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let img = s.create(None, body).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=gzip"),
            data.to_vec(),
        )
        .await;
    assert_eq!(st, 200, "add file: {v}");
    let (st, v) = s
        .post(&format!("/images/{uuid}?action=activate"), json!({}))
        .await;
    assert_eq!(st, 200, "activate: {v}");
    v
}

fn id(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_string()
}

async fn clone(s: &Server, uuid: &str, query: &str) -> (u16, Value) {
    s.post(&format!("/images/{uuid}/clone{query}"), json!({}))
        .await
}

/// The error body: (status, code, errors[]).
fn refusal(r: &(u16, Value)) -> (u16, &str, Value) {
    (
        r.0,
        r.1["code"].as_str().unwrap_or(""),
        r.1.get("errors").cloned().unwrap_or(Value::Null),
    )
}

async fn file_bytes(s: &Server, uuid: &str, account: &str) -> Vec<u8> {
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file?account={account}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET file of {uuid}");
    r.bytes().await.unwrap().to_vec()
}

/// Every refusal of the original, in its order.
async fn refusals(s: &Server) {
    let bytes = data(70_000, 1);
    let shared = image(s, VADER, &[LUKE], &bytes, json!({})).await;
    let u = id(&shared);
    let stranger = uuid::Uuid::new_v4().to_string();

    // `account` not a UUID: before the image is even looked up.
    let r = clone(s, &uuid::Uuid::new_v4().to_string(), "?account=nope").await;
    assert_eq!(
        refusal(&r),
        (
            422,
            "InvalidParameter",
            json!([{"field": "account", "code": "Invalid"}])
        ),
        "{}",
        r.1
    );
    assert_eq!(r.1["message"], "invalid \"account\": not a UUID: \"nope\"");
    // An image that does not exist, or that the account cannot see.
    let r = clone(
        s,
        &uuid::Uuid::new_v4().to_string(),
        &format!("?account={LUKE}"),
    )
    .await;
    assert_eq!(refusal(&r).0, 404, "{}", r.1);
    assert_eq!(refusal(&r).1, "ResourceNotFound");
    let r = clone(s, &u, &format!("?account={stranger}")).await;
    assert_eq!(refusal(&r).1, "ResourceNotFound", "{}", r.1);
    // No account at all.
    let r = clone(s, &u, "").await;
    assert_eq!(
        refusal(&r),
        (
            422,
            "InvalidParameter",
            json!([{"field": "account", "code": "Invalid"}])
        ),
        "{}",
        r.1
    );
    assert_eq!(
        r.1["message"],
        "invalid \"account\": not a UUID: \"undefined\""
    );
    // Not activated (the owner's own: it can see it).
    let unact = s
        .create(
            None,
            json!({"name": "u", "version": "1", "os": "smartos", "type": "zone-dataset",
                "owner": LUKE, "acl": [LUKE]}),
        )
        .await;
    let r = clone(s, &id(&unact), &format!("?account={LUKE}")).await;
    assert_eq!(
        refusal(&r),
        (
            422,
            "ValidationFailed",
            json!([{"field": "active", "code": "Invalid"}])
        ),
        "{}",
        r.1
    );
    assert_eq!(r.1["message"], "image is not active");
    // Not shared: the owner's own image, and a public image not in acl.
    let r = clone(s, &u, &format!("?account={VADER}")).await;
    assert_eq!(refusal(&r).0, 422, "{}", r.1);
    assert_eq!(refusal(&r).1, "ImageNotShared");
    let public = image(s, VADER, &[], &bytes, json!({"public": true})).await;
    let r = clone(s, &id(&public), &format!("?account={stranger}")).await;
    assert_eq!(refusal(&r).1, "ImageNotShared", "{}", r.1);
    // A docker image, shared or not.
    let docker = image(
        s,
        VADER,
        &[LUKE],
        &bytes,
        json!({"type": "docker", "os": "linux"}),
    )
    .await;
    let r = clone(s, &id(&docker), &format!("?account={LUKE}")).await;
    assert_eq!(
        refusal(&r),
        (
            422,
            "ValidationFailed",
            json!([{"field": "type", "code": "Invalid"}])
        ),
        "{}",
        r.1
    );
    // A parameter CloneImage does not take.
    let r = clone(s, &u, &format!("?account={LUKE}&bogus=1")).await;
    assert_eq!(
        refusal(&r),
        (
            422,
            "InvalidParameter",
            json!([{"field": "bogus", "code": "Invalid"}])
        ),
        "{}",
        r.1
    );
    // None of these left a clone behind.
    let (st, mine) = s.get(&format!("/images?owner={LUKE}&state=all")).await;
    assert_eq!(st, 200);
    assert_eq!(common::names(&mine), vec!["u".to_string()], "{mine}");
}

/// A chain: an operator base, VADER's middle image on it, VADER's top
/// image on that, shared with LUKE. The clone of the top copies the middle
/// too (disabled) and keeps the operator base.
async fn chain(s: &Server, objects: Objects<'_>) {
    let (operator, _) = s.account("clone-ops", true);
    let (base_bytes, mid_bytes, top_bytes) =
        (data(50_000, 2), data(300_000, 3), data(1_234_567, 4));
    let base = image(s, &operator, &[], &base_bytes, json!({"public": true})).await;
    let mid = image(
        s,
        VADER,
        &[],
        &mid_bytes,
        json!({"origin": id(&base), "name": "mid"}),
    )
    .await;
    let top = image(
        s,
        VADER,
        &[LUKE],
        &top_bytes,
        json!({"origin": id(&mid), "name": "top"}),
    )
    .await;
    let before = objects.files().await.len();

    let (st, c) = clone(s, &id(&top), &format!("?account={LUKE}")).await;
    assert_eq!(st, 200, "{c}");
    // The clone: a new image of LUKE's, active, no acl, published now.
    assert_ne!(id(&c), id(&top));
    assert_eq!(c["owner"], LUKE);
    assert_eq!(c["state"], "active");
    assert_eq!(c["disabled"], false);
    assert!(c.get("acl").is_none_or(|a| a == &json!([])), "{c}");
    assert!(
        c["published_at"].as_str().unwrap() >= top["published_at"].as_str().unwrap(),
        "{c}"
    );
    // Every other field is the source's.
    for k in [
        "name",
        "version",
        "description",
        "os",
        "type",
        "tags",
        "requirements",
        "public",
        "v",
    ] {
        assert_eq!(c[k], top[k], "{k}");
    }
    // The file: the same size and digests, carried over.
    assert_eq!(c["files"], top["files"], "{c}");
    assert_eq!(c["files"][0]["sha1"], sha1_hex(&top_bytes));
    // The middle image was cloned too, disabled, and the base was kept.
    let mid_clone = c["origin"].as_str().unwrap().to_string();
    assert_ne!(mid_clone, id(&mid));
    let (st, m) = s.get(&format!("/images/{mid_clone}?account={LUKE}")).await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["owner"], LUKE);
    assert_eq!(m["state"], "disabled");
    assert_eq!(m["name"], "mid");
    assert_eq!(m["origin"], base["uuid"]);
    assert_eq!(m["files"], mid["files"]);
    assert_eq!(objects.files().await.len(), before + 2, "two files copied");

    // The bytes are the source's, and stay after the sources are gone.
    let (st, v) = s.delete(&format!("/images/{}", id(&top))).await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = s.delete(&format!("/images/{}", id(&mid))).await;
    assert_eq!(st, 204, "{v}");
    let got = file_bytes(s, &id(&c), LUKE).await;
    assert_eq!(got.len(), top_bytes.len());
    assert!(got == top_bytes, "the clone's bytes changed");
    assert!(file_bytes(s, &mid_clone, LUKE).await == mid_bytes);
    let r = s
        .http
        .head(s.u(&format!("/images/{}/file", id(&c))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-md5"].to_str().unwrap(),
        md5_b64(&top_bytes)
    );
    // check-files finds every file as its row says.
    let out = s.admin(&["check-files"]);
    assert!(out.status.success(), "{out:?}");

    // LUKE sees its clones; cloning a clone is refused (not shared).
    let (_, mine) = s.get(&format!("/images?account={LUKE}&state=all")).await;
    let listed: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["uuid"].as_str())
        .collect();
    assert!(listed.contains(&id(&c).as_str()) && listed.contains(&mid_clone.as_str()));
    let r = clone(s, &id(&c), &format!("?account={LUKE}")).await;
    assert_eq!(refusal(&r).1, "ImageNotShared", "{}", r.1);
    // The clones can be deleted by their new owner, top first.
    let (st, _) = s
        .delete(&format!("/images/{}?account={LUKE}", id(&c)))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .delete(&format!("/images/{mid_clone}?account={LUKE}"))
        .await;
    assert_eq!(st, 204);
}

/// A copy that fails half-way through the chain leaves no clone: no row,
/// no copied file.
async fn all_or_nothing(s: &Server, objects: Objects<'_>) {
    let mid = image(s, VADER, &[], &data(40_000, 5), json!({"name": "mid2"})).await;
    let top = image(
        s,
        VADER,
        &[LUKE],
        &data(60_000, 6),
        json!({"name": "top2", "origin": id(&mid)}),
    )
    .await;
    // The top's file disappears behind the server's back: the base (mid)
    // is copied first, then the top's copy fails.
    objects.remove(&id(&top)).await;
    let before = objects.files().await;
    let (_, luke_before) = s.get(&format!("/images?owner={LUKE}&state=all")).await;
    let (st, v) = clone(s, &id(&top), &format!("?account={LUKE}")).await;
    assert_eq!(st, 500, "{v}");
    assert_eq!(v["code"], "InternalError");
    assert!(
        !v.to_string().contains("file0"),
        "a 5xx names no internals: {v}"
    );
    assert_eq!(objects.files().await, before, "a copied file remained");
    let (_, luke_after) = s.get(&format!("/images?owner={LUKE}&state=all")).await;
    assert_eq!(luke_after, luke_before, "a cloned row remained");
}

/// Two clones of one image are two images.
async fn twice(s: &Server) {
    let bytes = data(10_000, 8);
    let src = image(s, VADER, &[LUKE], &bytes, json!({})).await;
    let (st, a) = clone(s, &id(&src), &format!("?account={LUKE}")).await;
    assert_eq!(st, 200, "{a}");
    let (st, b) = clone(s, &id(&src), &format!("?account={LUKE}")).await;
    assert_eq!(st, 200, "{b}");
    assert_ne!(id(&a), id(&b));
    assert!(a.get("origin").is_none(), "no origin: {a}");
    // The first clone's deletion leaves the second's bytes.
    let (st, _) = s
        .delete(&format!("/images/{}?account={LUKE}", id(&a)))
        .await;
    assert_eq!(st, 204);
    assert!(file_bytes(s, &id(&b), LUKE).await == bytes);
}

#[tokio::test]
async fn clone_on_a_directory_store() {
    let s = Server::start().await;
    refusals(&s).await;
    chain(&s, Objects::Dir(&s)).await;
    twice(&s).await;
    all_or_nothing(&s, Objects::Dir(&s)).await;
}

#[tokio::test]
async fn clone_on_s3() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    refusals(&s).await;
    chain(&s, Objects::S3(&s3)).await;
    twice(&s).await;
    all_or_nothing(&s, Objects::S3(&s3)).await;
}

/// An origin owned by nobody (the nil owner) is kept like an operator's.
#[tokio::test]
async fn an_unowned_origin_is_kept() {
    let s = Server::start().await;
    let base = image(
        &s,
        "00000000-0000-0000-0000-000000000000",
        &[],
        &data(1000, 9),
        json!({"public": true}),
    )
    .await;
    let top = image(
        &s,
        VADER,
        &[LUKE],
        &data(2000, 10),
        json!({"origin": id(&base)}),
    )
    .await;
    let (st, c) = clone(&s, &id(&top), &format!("?account={LUKE}")).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["origin"], base["uuid"]);
    assert_eq!(c["owner"], LUKE);
}

/// With tokens: an account's token clones for its own account without
/// `?account=`; without a token it is 401.
#[tokio::test]
async fn clone_with_tokens() {
    let s = Server::start_with_config("auth = \"token\"\n").await;
    let (_, op_token) = s.account("clone-operator", true);
    let (luke, luke_token) = s.account("clone-luke", false);
    let post = |path: String, token: Option<String>| {
        let s = &s;
        async move {
            let mut r = s.http.post(s.u(&path)).json(&json!({}));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            common::status_json(r.send().await.unwrap()).await
        }
    };
    let r = s
        .http
        .post(s.u("/images"))
        .bearer_auth(&op_token)
        .json(
            &json!({"name": "t", "version": "1", "os": "smartos", "type": "zone-dataset",
            "owner": VADER, "acl": [luke]}),
        )
        .send()
        .await
        .unwrap();
    let (st, img) = common::status_json(r).await;
    assert_eq!(st, 200, "{img}");
    let u = id(&img);
    let r = s
        .http
        .put(s.u(&format!("/images/{u}/file?compression=none")))
        .bearer_auth(&op_token)
        .header("content-type", "application/octet-stream")
        .body(data(5000, 11))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = post(
        format!("/images/{u}?action=activate"),
        Some(op_token.clone()),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    let (st, v) = post(format!("/images/{u}/clone"), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("UnauthorizedError")),
        "{v}"
    );
    let (st, c) = post(format!("/images/{u}/clone"), Some(luke_token)).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["owner"], luke.as_str());
}

/// The directory store's copy (a reflink, else a hard link) keeps its bytes
/// when its source is rewritten (a new file renamed over the key, as every
/// write of the store is) and when the source is deleted; a missing
/// source leaves nothing at the destination.
#[tokio::test]
async fn a_directory_copy_outlives_a_rewrite_and_a_delete_of_its_source() {
    use imgapi::store::{FsStore, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::new(dir.path()).unwrap();
    let put = |key: &'static str, bytes: &'static [u8]| {
        let s = s.clone();
        async move {
            let mut w = s.begin_write(key).await.unwrap();
            w.write(bytes::Bytes::from_static(bytes)).await.unwrap();
            w.commit().await.unwrap();
        }
    };
    let read = |key: &str| std::fs::read(s.path(key).unwrap()).unwrap();
    put("images/aaa/a/file0", b"the source's bytes").await;
    s.clone_file("images/aaa/a/file0", "images/bbb/b/file0")
        .await
        .unwrap();
    assert_eq!(read("images/bbb/b/file0"), b"the source's bytes");
    put("images/aaa/a/file0", b"rewritten").await;
    assert_eq!(read("images/bbb/b/file0"), b"the source's bytes");
    s.delete("images/aaa/a/file0").await.unwrap();
    assert_eq!(read("images/bbb/b/file0"), b"the source's bytes");

    let r = s
        .clone_file("images/aaa/none/file0", "images/ccc/c/file0")
        .await;
    assert!(
        matches!(r, Err(StoreError::CopySourceNotFound { .. })),
        "{r:?}"
    );
    assert!(s.head("images/ccc/c/file0").await.unwrap().is_none());
    // An existing destination is never overwritten.
    put("images/ddd/d/file0", b"other").await;
    assert!(
        s.clone_file("images/bbb/b/file0", "images/ddd/d/file0")
            .await
            .is_err()
    );
    assert_eq!(read("images/ddd/d/file0"), b"other");
}

/// The chain is bounded as IMGAPI bounds it: 100 images (the one asked
/// for and 99 origins) are cloned; one more origin is refused (500, as the
/// original's InternalError), leaving no clone.
#[tokio::test]
async fn the_chain_is_bounded() {
    use axum::http::Method;
    let app = common::app::App::new().await;
    let mut chain: Vec<String> = Vec::new();
    for i in 0..101 {
        let mut m = json!({"name": format!("deep-{i}"), "version": "1", "os": "smartos",
            "type": "zone-dataset", "owner": VADER, "acl": [LUKE]});
        if let Some(o) = chain.last() {
            m["origin"] = json!(o);
        }
        let r = app.post_json("/images", &m).await;
        assert_eq!(r.status, 200, "{}", r.json());
        let u = r.json()["uuid"].as_str().unwrap().to_string();
        let r = app
            .request(
                Method::PUT,
                &format!("/images/{u}/file?compression=none"),
                &[("content-type", "application/octet-stream")],
                vec![i as u8; 100],
            )
            .await;
        assert_eq!(r.status, 200);
        let r = app
            .post_json(&format!("/images/{u}?action=activate"), &json!({}))
            .await;
        assert_eq!(r.status, 200);
        chain.push(u);
    }
    let r = app
        .post_json(
            &format!("/images/{}/clone?account={LUKE}", chain[100]),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.json());
    assert_eq!(luke_images(&app).await, 0);
    let r = app
        .post_json(
            &format!("/images/{}/clone?account={LUKE}", chain[99]),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(luke_images(&app).await, 100);
    assert_eq!(r.json()["name"], "deep-99");
}

/// How many images LUKE owns, in any state.
async fn luke_images(app: &common::app::App) -> usize {
    let r = app
        .fetch(&format!("/images?owner={LUKE}&state=all&limit=1000"))
        .await;
    r.json().as_array().unwrap().len()
}

/// A chain is weighed whole against the account's quota: an account with
/// room for one image cannot clone a chain of two.
#[tokio::test]
async fn a_chain_is_weighed_whole_against_the_quota() {
    let s = Server::start().await;
    let base = image(&s, VADER, &[LUKE], &data(3000, 1), json!({})).await;
    let top = image(
        &s,
        VADER,
        &[LUKE],
        &data(2000, 2),
        json!({"origin": id(&base)}),
    )
    .await;
    let out = s.admin(&["account", "set-quota", LUKE, "--max-images", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = clone(&s, &id(&top), &format!("?account={LUKE}")).await;
    assert_eq!(refusal(&r).0, 413, "{}", r.1);
    assert_eq!(refusal(&r).1, "QuotaExceeded");
    assert!(
        r.1["message"].as_str().unwrap().contains("2 images"),
        "{}",
        r.1
    );
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(u["images_total"]["count"], 0, "nothing half-made: {u}");
    // With room for both, it goes.
    let out = s.admin(&["account", "set-quota", LUKE, "--max-images", "2"]);
    assert!(out.status.success());
    let r = clone(&s, &id(&top), &format!("?account={LUKE}")).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(u["images_total"], json!({"count": 2, "bytes": 5000}), "{u}");
}
