//! The S3 ("manta") store against a real S3-compatible server: the store
//! and session contract suites on both backends (local directory and S3),
//! then the whole pipeline through a server whose manta store is the S3
//! bucket.

use crate::common;

use base64::Engine;
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use imgapi::config::S3Config;
use imgapi::store::{
    ByteStream, Completed, FsStore, S3Store, SessionState, Store, StoreName, Stores,
};
use serde_json::json;
use sha1::Digest;

async fn s3_store(s3: &S3Server) -> Store {
    let cfg = S3Config {
        endpoint: s3.endpoint.clone(),
        region: "us-east-1".into(),
        bucket: s3.bucket.clone(),
        prefix: "pfx/".into(),
        force_path_style: true,
        access_key_id: s3.access_key.clone(),
        secret_access_key: Some(s3.secret_key.clone()),
        secret_access_key_file: None,
        part_size_mib: 5,
        parts_in_flight: 2,
        connect_timeout_secs: 5,
        request_timeout_secs: 60,
    };
    Store::S3(S3Store::new(&cfg).await.expect("connect to S3"))
}

async fn read_all(store: &Store, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    read_all_stream(store.get(key, range).await.expect("get")).await
}

async fn read_all_stream(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

async fn put(store: &Store, key: &str, data: &[u8]) {
    let mut w = store.begin_write(key).await.unwrap();
    for c in data.chunks(300_000) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit().await.unwrap();
}

/// What every store must do, whatever its backend.
async fn store_contract(store: Store) {
    let key = "imgapi/images/abc/abc-1/file0";
    assert!(store.head(key).await.unwrap().is_none());
    assert!(matches!(
        store.get(key, None).await,
        Err(imgapi::store::StoreError::NotFound { .. })
    ));
    // A multi-part object (12 MiB > the 5 MiB part size of the S3 store).
    let data = data(12 << 20, 11);
    put(&store, key, &data).await;
    let m = store.head(key).await.unwrap().unwrap();
    assert_eq!(m.size, data.len() as u64);
    assert_eq!(
        sha1_hex(&read_all(&store, key, None).await),
        sha1_hex(&data)
    );
    assert_eq!(
        read_all(&store, key, Some(100..200)).await,
        data[100..200].to_vec()
    );
    assert_eq!(
        read_all(&store, key, Some(data.len() as u64 - 7..data.len() as u64)).await,
        data[data.len() - 7..].to_vec()
    );
    // A write dropped before commit leaves the old object and nothing else.
    {
        let mut w = store.begin_write(key).await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        store.head(key).await.unwrap().unwrap().size,
        data.len() as u64
    );
    // Overwrite, small and empty objects.
    put(&store, key, b"small").await;
    assert_eq!(read_all(&store, key, None).await, b"small".to_vec());
    put(&store, "a/empty", b"").await;
    assert_eq!(store.head("a/empty").await.unwrap().unwrap().size, 0);
    // Delete; deleting what is absent is fine.
    store.delete(key).await.unwrap();
    assert!(store.head(key).await.unwrap().is_none());
    store.delete(key).await.unwrap();
    // Keys that could escape are refused.
    assert!(store.begin_write("../escape").await.is_err());
    assert!(store.head("a/../../b").await.is_err());
}

#[tokio::test]
async fn store_contract_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    store_contract(Store::Fs(FsStore::new(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn store_contract_s3() {
    let s3 = S3Server::start();
    store_contract(s3_store(&s3).await).await;
}

/// The stores of a server whose manta store is `manta` (staging is manta
/// itself when that is a directory, as `imgapi::open` sets it up).
fn stores_with(manta: Store, dir: &std::path::Path) -> Stores {
    let staging = match &manta {
        Store::Fs(_) => manta.clone(),
        Store::S3(_) => Store::Fs(FsStore::new(dir.join("staging")).unwrap()),
    };
    Stores {
        local: Store::Fs(FsStore::new(dir.join("local")).unwrap()),
        manta,
        assets: Store::Fs(FsStore::new(dir.join("assets")).unwrap()),
        staging,
        sessions_in_store: false,
    }
}

/// A new fencing token, as each request's lease claim gives one.
fn next_fence() -> i64 {
    static FENCE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    FENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One request's bytes appended to a session; the state as the caller
/// records it afterwards.
async fn append(stores: &Stores, state: &mut SessionState, bytes: &[u8]) {
    let mut w = stores
        .append(
            state,
            StoreName::Manta,
            Some(bytes.len() as u64),
            next_fence(),
        )
        .await
        .unwrap();
    for c in bytes.chunks(300_000) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    let sent = w.finish().await.unwrap();
    state.offset += bytes.len() as u64;
    if let Some(m) = state.multipart.as_mut() {
        m.parts.extend(sent.parts.iter().cloned());
    }
    if sent.pieces.is_some() {
        state.pieces = sent.pieces.clone();
    }
    sent.recorded().await;
    stores
        .flush_session(state, StoreName::Manta, false)
        .await
        .unwrap();
}

async fn begin(stores: &Stores, key: &str, staged_key: &str, length: u64) -> SessionState {
    let staged = stores.upload_home(StoreName::Manta);
    stores
        .begin_session(StoreName::Manta, key, staged, staged_key.into(), length)
        .await
        .unwrap()
}

async fn complete(stores: &Stores, state: &mut SessionState, key: &str) -> Completed {
    stores
        .flush_session(state, StoreName::Manta, true)
        .await
        .unwrap();
    stores
        .complete_session(state, StoreName::Manta, Some(key))
        .await
        .unwrap()
}

/// What every store must do with resumable writes (sessions), whatever
/// its backend: begin / append / complete, abort, resume after a crash.
async fn session_contract(stores: Stores) {
    let manta = stores.get(StoreName::Manta).clone();
    // Begin, append over several requests (12 MiB: parts on S3), complete.
    let data = data(12 << 20, 7);
    let key = "u/stor/session/obj";
    let mut st = begin(&stores, key, "imgapi/uploads/abc/s1", data.len() as u64).await;
    append(&stores, &mut st, &data[..7 << 20]).await;
    append(&stores, &mut st, &data[7 << 20..]).await;
    assert_eq!(
        read_all_stream(stores.read_session(&st, Some(100..200)).await.unwrap()).await,
        data[100..200].to_vec()
    );
    assert!(
        manta.head(key).await.unwrap().is_none(),
        "not visible before complete"
    );
    let done = complete(&stores, &mut st, key).await;
    assert_eq!((done.store, done.key.as_str()), (StoreName::Manta, key));
    assert_eq!(
        sha1_hex(&read_all(&manta, key, None).await),
        sha1_hex(&data)
    );
    // A crash after the object was put in place but before the caller
    // recorded it: the store recognises its own object.
    let md5 = hex::encode(md5::Md5::digest(&data));
    let before = stores
        .completed_before(&st, StoreName::Manta, Some(key), data.len() as u64, &md5)
        .await;
    if st.pieces.is_some() {
        // Kept in the store: its pieces stay until the caller recorded
        // the completion, so it is simply completed again.
        assert!(before.is_none());
        let again = complete(&stores, &mut st, key).await;
        assert_eq!(again.key, key);
        assert_eq!(
            sha1_hex(&read_all(&manta, key, None).await),
            sha1_hex(&data)
        );
    } else {
        let (name, k, meta) = before.expect("completed before");
        assert_eq!(
            (name, k.as_str(), meta.size),
            (StoreName::Manta, key, data.len() as u64)
        );
    }
    if let Some((s, k)) = done.leftover {
        stores.remove_leftover(s, &k).await;
    }

    // Resume after a crash: a request dropped before it was acknowledged
    // counts for nothing; the next one starts at the recorded offset.
    let key2 = "u/stor/session/resumed";
    let mut st = begin(&stores, key2, "imgapi/uploads/abc/s2", 11).await;
    append(&stores, &mut st, b"hello").await;
    {
        let mut w = stores
            .append(&st, StoreName::Manta, None, next_fence())
            .await
            .unwrap();
        w.write(Bytes::from(vec![b'!'; 2 << 20])).await.unwrap();
        // dropped: the process died before the request was acknowledged
    }
    append(&stores, &mut st, b" world").await;
    let done = complete(&stores, &mut st, key2).await;
    assert_eq!(read_all(&manta, key2, None).await, b"hello world".to_vec());
    if let Some((s, k)) = done.leftover {
        stores.remove_leftover(s, &k).await;
    }

    // Abort: nothing is left, neither staged bytes nor an object.
    let key3 = "u/stor/session/aborted";
    let mut st = begin(&stores, key3, "imgapi/uploads/abc/s3", 6 << 20).await;
    append(&stores, &mut st, &data[..6 << 20]).await;
    stores.abort_session(&st, StoreName::Manta).await;
    let staged = stores.get(st.staged);
    if st.pieces.is_none() {
        assert!(staged.head(&st.staged_key).await.unwrap().is_none());
    }
    if let Some(p) = &st.pieces {
        assert!(p.parts.len() + p.tail.iter().count() >= 2, "{p:?}");
        for piece in p.all() {
            assert!(
                staged.head(&piece.key).await.unwrap().is_none(),
                "{piece:?} left"
            );
        }
    }
    assert!(manta.head(key3).await.unwrap().is_none());
    // Aborting again is harmless.
    stores.abort_session(&st, StoreName::Manta).await;

    // A key that cannot be an object here is an unusable path.
    if let Store::Fs(_) = manta {
        let mut w = manta.begin_write("u/stor/file").await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        w.commit().await.unwrap();
        let mut st = begin(&stores, "u/stor/file/below", "imgapi/uploads/abc/s4", 1).await;
        append(&stores, &mut st, b"y").await;
        let e = stores
            .complete_session(&st, StoreName::Manta, Some("u/stor/file/below"))
            .await
            .unwrap_err();
        assert!(e.is_unusable_path(), "{e:?}");
    }
}

#[tokio::test]
async fn session_contract_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let manta = Store::Fs(FsStore::new(dir.path().join("manta")).unwrap());
    let stores = stores_with(manta, dir.path());
    assert!(!stores.get(StoreName::Manta).supports_server_side_copy());
    session_contract(stores).await;
}

#[tokio::test]
async fn session_contract_s3() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let stores = stores_with(s3_store(&s3).await, dir.path());
    assert!(stores.get(StoreName::Manta).supports_server_side_copy());
    assert_eq!(stores.staging_for(StoreName::Manta), StoreName::Staging);
    session_contract(stores).await;
}

/// A cluster's sessions (PostgreSQL database): kept whole in the bucket,
/// as pieces, nothing staged on the node.
#[tokio::test]
async fn session_contract_s3_kept_in_the_store() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut stores = stores_with(s3_store(&s3).await, dir.path());
    stores.sessions_in_store = true;
    assert_eq!(stores.upload_home(StoreName::Manta), StoreName::Manta);
    session_contract(stores).await;
    let staged = common::walk(&dir.path().join("staging"));
    assert!(staged.is_empty(), "nothing staged on the node: {staged:?}");
}

/// The S3 server lost the multipart upload (its completion is not atomic
/// and a crash cut it short): completing fails, the session restarts from
/// its staged bytes in a new multipart upload, and completes.
#[tokio::test]
async fn session_survives_a_lost_multipart_upload() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let stores = stores_with(s3_store(&s3).await, dir.path());
    let data = data(11 << 20, 5);
    let key = "u/stor/session/lost";
    let mut st = begin(&stores, key, "imgapi/uploads/abc/l1", data.len() as u64).await;
    append(&stores, &mut st, &data).await;
    stores
        .flush_session(&mut st, StoreName::Manta, true)
        .await
        .unwrap();
    let m = st.multipart.clone().expect("a multipart upload");
    assert!(m.parts.len() >= 2);
    let Store::S3(s) = stores.get(StoreName::Manta) else {
        panic!("an S3 store")
    };
    s.abort_multipart(&m.key, &m.upload_id).await.unwrap();
    assert!(
        stores
            .complete_session(&st, StoreName::Manta, Some(key))
            .await
            .is_err()
    );
    assert!(
        stores
            .restart_session(&mut st, StoreName::Manta)
            .await
            .unwrap()
    );
    let again = st.multipart.clone().unwrap();
    assert_ne!(again.upload_id, m.upload_id);
    assert!(again.parts.is_empty());
    let done = complete(&stores, &mut st, key).await;
    let manta = stores.get(StoreName::Manta);
    assert_eq!(sha1_hex(&read_all(manta, key, None).await), sha1_hex(&data));
    // Once the object exists, there is nothing to restart.
    assert!(
        !stores
            .restart_session(&mut st, StoreName::Manta)
            .await
            .unwrap()
    );
    if let Some((s, k)) = done.leftover {
        stores.get(s).delete(&k).await.unwrap();
        assert!(stores.get(s).head(&k).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn s3_server_side_copy_is_conditioned_on_the_etag() {
    let s3 = S3Server::start();
    let store = s3_store(&s3).await;
    put(&store, "u/stor/x", b"verified bytes").await;
    let etag = store.head("u/stor/x").await.unwrap().unwrap().etag.unwrap();
    assert!(
        store
            .copy_within("u/stor/x", "imgapi/images/c", Some(&etag))
            .await
            .unwrap()
    );
    assert_eq!(
        read_all(&store, "imgapi/images/c", None).await,
        b"verified bytes".to_vec()
    );
    put(&store, "u/stor/x", b"changed after verification").await;
    assert!(
        store
            .copy_within("u/stor/x", "imgapi/images/d", Some(&etag))
            .await
            .is_err()
    );
    assert!(store.head("imgapi/images/d").await.unwrap().is_none());
}

/// The pipeline with the manta store on S3: AddImageFile, tus upload then
/// registration, registration of an object written by another S3 client,
/// an upload to a manta path, ranged downloads.
#[tokio::test]
async fn pipeline_on_s3() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let client = s3.client();
    // classic AddImageFile goes to the object store (stor=manta)
    let file = data(11 << 20, 12);
    let img = s.create_active(SDC, "classic", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let (_, v) = s.get(&format!("/images/{u}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], "manta");
    let key = format!("p/imgapi/images/{}/{u}/file0", &u[..3]);
    let o = client
        .head_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .expect("object in the bucket");
    assert_eq!(o.content_length(), Some(file.len() as i64));
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), file[1000..2000].to_vec());

    // tus upload, then registration by id
    let up = data(7 << 20, 13);
    let loc = s.tus_location(up.len() as u64, Some(LUKE)).await;
    for (i, c) in up.chunks(3 << 20).enumerate() {
        let (st, _, v) = s
            .tus_patch(&loc, Some(LUKE), (i * (3 << 20)) as u64, c.to_vec())
            .await;
        assert_eq!(st, 204, "{v}");
    }
    let id = loc.rsplit('/').next().unwrap();
    let (st, img) = s
        .post(
            &format!("/images?account={LUKE}"),
            json!({"name": "reg", "version": "1", "os": "linux", "type": "other",
            "files": [{"upload": id, "content_md5": md5_b64(&up), "compression": "gzip"}]}),
        )
        .await;
    assert_eq!((st, img["state"].as_str()), (200, Some("active")), "{img}");
    let r = s
        .http
        .get(s.u(&format!(
            "/images/{}/file?account={LUKE}",
            img["uuid"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&up));

    // an object put by another S3 client under the account's manta path
    let obj = data(6 << 20, 14);
    client
        .put_object()
        .bucket(&s3.bucket)
        .key(format!("p/{VADER}/stor/images/vm.img"))
        .body(obj.clone().into())
        .send()
        .await
        .unwrap();
    let (st, img) = s
        .post(&format!("/images?account={VADER}"), json!({"name": "byo", "version": "1", "os": "linux", "type": "other",
            "files": [{"path": format!("/{VADER}/stor/images/vm.img"), "content_md5": md5_b64(&obj), "compression": "none"}]}))
        .await;
    assert_eq!((st, img["state"].as_str()), (200, Some("active")), "{img}");
    let vu = img["uuid"].as_str().unwrap().to_string();
    // overwriting the user's object does not touch the image
    client
        .put_object()
        .bucket(&s3.bucket)
        .key(format!("p/{VADER}/stor/images/vm.img"))
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let r = s
        .http
        .get(s.u(&format!("/images/{vu}/file?account={VADER}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&obj));
    // a wrong md5 on an S3 object: ChecksumMismatch, nothing left
    let (st, v) = s
        .post(&format!("/images?account={VADER}"), json!({"name": "bad", "version": "1", "os": "linux", "type": "other",
            "files": [{"path": format!("/{VADER}/stor/images/vm.img"), "content_md5": md5_b64(b"nope"), "compression": "none"}]}))
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ChecksumMismatch")));
    // missing object
    let (st, v) = s
        .post(&format!("/images?account={VADER}"), json!({"name": "bad", "version": "1", "os": "linux", "type": "other",
            "files": [{"path": format!("/{VADER}/stor/nope"), "content_md5": md5_b64(b"nope"), "compression": "none"}]}))
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("FileNotFound")));

    // a tus upload with a target manta path lands in the bucket
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "11")
        .header(
            "upload-metadata",
            format!(
                "path {}",
                base64::engine::general_purpose::STANDARD.encode(format!("/{LUKE}/stor/hello.txt"))
            ),
        )
        .header("content-type", "application/offset+octet-stream")
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let o = client
        .get_object()
        .bucket(&s3.bucket)
        .key(format!("p/{LUKE}/stor/hello.txt"))
        .send()
        .await
        .expect("uploaded to its path");
    assert_eq!(
        o.body.collect().await.unwrap().into_bytes().to_vec(),
        b"hello world".to_vec()
    );
}

/// The store down: 503 StorageIsDown, nothing lost; back up, all works.
#[tokio::test]
async fn s3_down_is_503_and_recovers() {
    let mut s3 = S3Server::start_own();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let file = data(100_000, 15);
    let img = s.create_active(SDC, "resilient", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    assert!(s3.stop(), "stops its own S3 server");
    let (st, v) = s.get(&format!("/images/{u}/file")).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (503, Some("StorageIsDown")),
        "{v}"
    );
    assert!(
        !v["message"].as_str().unwrap().contains("127.0.0.1"),
        "no internals in a 5xx"
    );
    let other = s
        .create(
            None,
            json!({"name": "later", "version": "1", "os": "linux", "type": "other", "owner": SDC}),
        )
        .await;
    let ou = other["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .put_bytes(&format!("/images/{ou}/file?compression=none"), file.clone())
        .await;
    assert_eq!((st, v["code"].as_str()), (503, Some("StorageIsDown")));
    let (_, v) = s.get(&format!("/images/{ou}")).await;
    assert_eq!(v["files"], json!([]), "manifest untouched");
    s3.restart();
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);
    let (st, _) = s
        .put_bytes(&format!("/images/{ou}/file?compression=none"), file.clone())
        .await;
    assert_eq!(st, 200);
}

/// A store that accepts connections but never answers: requests fail with
/// 503 StorageIsDown after `request_timeout_secs` (and the SDK's retries)
/// instead of hanging, and the server keeps serving everything else.
#[tokio::test]
async fn slow_s3_is_503_not_a_hang() {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming() {
            held.push(c); // accept, read nothing, answer nothing
        }
    });
    let toml = format!(
        "[storage.manta]\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"b\"\n\
         access_key_id = \"k\"\nsecret_access_key = \"s\"\nrequest_timeout_secs = 1\n"
    );
    let s = Server::start_with_config(&toml).await;
    let (st, _) = s.get("/ping").await;
    assert_eq!(st, 200, "up while the store hangs");
    let img = s
        .create(
            None,
            json!({"name": "slow", "version": "1", "os": "linux", "type": "other", "owner": SDC}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    // A request into the hanging store: 503 StorageIsDown, in time.
    let down_in_time = |t: std::time::Instant, st: u16, v: &serde_json::Value| {
        assert_eq!(
            (st, v["code"].as_str()),
            (503, Some("StorageIsDown")),
            "{v}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            t.elapsed()
        );
    };
    let t = std::time::Instant::now();
    let (st, v) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none"),
            vec![7u8; 1000],
        )
        .await;
    down_in_time(t, st, &v);
    let (_, v) = s.get(&format!("/images/{u}")).await;
    assert_eq!(v["files"], json!([]), "manifest untouched");
    let (st, h) = s.tus_create(1000, None, &[]).await;
    if !common::backend_is_postgres() {
        assert_eq!(st, 503, "a tus upload into the hanging store cannot start");
        return;
    }
    // A cluster's upload (kept in the store as pieces) begins with nothing
    // in the store: its first PATCH is what reaches it, and fails in time.
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    let t = std::time::Instant::now();
    let (st, _, v) = s.tus_patch(&loc, None, 0, vec![7u8; 1000]).await;
    down_in_time(t, st, &v);
    let (st, off, _) = s.tus_head(&loc).await;
    assert_eq!((st, off), (200, Some(0)), "nothing acknowledged");
}

/// Terminating a finished upload (no target path) removes its object from
/// the bucket, not only its row.
#[tokio::test]
async fn terminating_a_finished_s3_upload_deletes_its_object() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let file = data(70_000, 18);
    let loc = s.tus_location(file.len() as u64, None).await;
    let id = upload_id(&loc);
    let (st, _, _) = s.tus_patch(&loc, None, 0, file.clone()).await;
    assert_eq!(st, 204);
    let key = format!("p/imgapi/uploads/{}/{id}", &id[..3]);
    let head = |k: String| {
        let (client, bucket) = (s3.client(), s3.bucket.clone());
        async move {
            client
                .head_object()
                .bucket(bucket)
                .key(k)
                .send()
                .await
                .is_ok()
        }
    };
    assert!(head(key.clone()).await, "the finished upload is an object");
    let r = s
        .http
        .delete(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!head(key).await, "terminated: the object is gone");
}

/// A tus upload while the S3 store goes down: PATCHes still succeed (the
/// bytes are staged and fsynced locally), the parts wait, and once the store
/// is back the backlog goes out and the upload completes intact.
#[tokio::test]
async fn tus_upload_rides_out_an_s3_outage() {
    const MIB: usize = 1 << 20;
    let mut s3 = S3Server::start_own();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let file = data(23 * MIB + 777, 17);
    let loc = s.tus_location(file.len() as u64, None).await;
    let info_path = format!("{loc}/info");
    let (st, _, _) = s.tus_patch(&loc, None, 0, file[..7 * MIB].to_vec()).await;
    assert_eq!(st, 204);
    assert_eq!(
        s.get(&info_path).await.1["parts_sent"],
        1,
        "one 5 MiB part out, 2 MiB staged"
    );

    assert!(s3.stop(), "stops its own S3 server");
    let (st, h, v) = s
        .tus_patch(&loc, None, 7 * MIB as u64, file[7 * MIB..18 * MIB].to_vec())
        .await;
    assert_eq!(st, 204, "staged locally while the store is down: {v}");
    assert_eq!(h["upload-offset"], (18 * MIB).to_string().as_str());
    let i = s.get(&info_path).await.1;
    assert_eq!(
        (i["parts_sent"].as_u64(), i["offset"].as_u64()),
        (Some(1), Some(18 * MIB as u64)),
        "no part went out: {i}"
    );

    s3.restart();
    let (st, _, _) = s
        .tus_patch(
            &loc,
            None,
            18 * MIB as u64,
            file[18 * MIB..20 * MIB].to_vec(),
        )
        .await;
    assert_eq!(st, 204);
    let i = s.get(&info_path).await.1;
    assert_eq!(
        (i["parts_sent"].as_u64(), i["bytes_in_parts"].as_u64()),
        (Some(4), Some(20 * MIB as u64)),
        "the backlog went out: {i}"
    );
    let (st, _, _) = s
        .tus_patch(&loc, None, 20 * MIB as u64, file[20 * MIB..].to_vec())
        .await;
    assert_eq!(st, 204);
    let i = s.get(&info_path).await.1;
    assert_eq!(i["state"], "complete", "{i}");
    assert_eq!(i["sha1"], sha1_hex(&file));
    let r = s.http.get(s.u(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sha1_hex(&r.bytes().await.unwrap()),
        sha1_hex(&file),
        "the object in S3"
    );
}

/// A tus upload to an S3 store is one multipart upload: full parts go out
/// as they fill, the rest waits in a local staging file; a SIGKILL loses
/// nothing; completion completes the multipart upload; termination aborts it.
#[tokio::test]
async fn tus_upload_is_one_multipart_upload() {
    let s3 = S3Server::start();
    let mut s = Server::spawn_with_config(&s3.manta_toml(5)).await;
    let client = s3.client();
    const MIB: usize = 1 << 20;
    let file = data(17 * MIB + 12345, 16);
    let r = s
        .http
        .post(s.u("/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", file.len().to_string())
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = upload_id(&loc);
    async fn patch(
        s: &Server,
        loc: &str,
        file: &[u8],
        off: usize,
        end: usize,
    ) -> reqwest::Response {
        s.http
            .patch(s.u(loc))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", off.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(file[off..end].to_vec())
            .send()
            .await
            .unwrap()
    }
    assert_eq!(patch(&s, &loc, &file, 0, 3 * MIB).await.status(), 204);
    let (_, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(
        info["parts_sent"], 0,
        "3 MiB < one 5 MiB part: staged locally"
    );
    assert_eq!(
        patch(&s, &loc, &file, 3 * MIB, 12 * MIB).await.status(),
        204
    );
    let (_, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(
        (info["parts_sent"].as_u64(), info["bytes_in_parts"].as_u64()),
        (Some(2), Some(10 * MIB as u64))
    );
    let key = format!("p/imgapi/uploads/{}/{id}", &id[..3]);
    let mp = info["multipart_upload_id"].as_str().unwrap().to_string();
    let parts = client
        .list_parts()
        .bucket(&s3.bucket)
        .key(&key)
        .upload_id(&mp)
        .send()
        .await
        .expect("the multipart upload in the bucket");
    assert_eq!(parts.parts().len(), 2);
    assert!(
        parts
            .parts()
            .iter()
            .all(|p| p.size() == Some(5 * MIB as i64))
    );
    // kill -9 and resume
    s.restart_hard().await;
    let r = s
        .http
        .head(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["upload-offset"],
        (12 * MIB).to_string().as_str()
    );
    assert_eq!(
        patch(&s, &loc, &file, 12 * MIB, file.len()).await.status(),
        204
    );
    let (_, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(info["state"], "complete");
    assert_eq!(info["sha1"], sha1_hex(&file));
    let o = client
        .head_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .expect("the completed object");
    assert_eq!(o.content_length(), Some(file.len() as i64));
    // registration: a server-side copy into the image's place
    let (st, img) = s
        .post(
            "/images",
            json!({"name": "mp", "version": "1", "os": "linux", "type": "other", "owner": SDC,
            "files": [{"upload": id, "content_md5": md5_b64(&file), "compression": "none"}]}),
        )
        .await;
    assert_eq!((st, img["state"].as_str()), (200, Some("active")), "{img}");
    let r = s
        .http
        .get(s.u(&format!("/images/{}/file", img["uuid"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
    // termination of an unfinished upload aborts its multipart upload
    let r = s
        .http
        .post(s.u("/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", (20 * MIB).to_string())
        .send()
        .await
        .unwrap();
    let loc2 = r.headers()["location"].to_str().unwrap().to_string();
    let id2 = loc2.rsplit('/').next().unwrap().to_string();
    let r = s
        .http
        .patch(s.u(&loc2))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(file[..6 * MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, info2) = s.get(&format!("{loc2}/info")).await;
    let mp2 = info2["multipart_upload_id"].as_str().unwrap().to_string();
    let key2 = format!("p/imgapi/uploads/{}/{id2}", &id2[..3]);
    let before = client
        .list_parts()
        .bucket(&s3.bucket)
        .key(&key2)
        .upload_id(&mp2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        before.parts().len(),
        1,
        "one full part sent before termination"
    );
    let r = s
        .http
        .delete(s.u(&loc2))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = client
        .list_parts()
        .bucket(&s3.bucket)
        .key(&key2)
        .upload_id(&mp2)
        .send()
        .await;
    assert!(
        after.as_ref().map(|p| p.parts().is_empty()).unwrap_or(true),
        "aborted: {after:?}"
    );
    assert!(
        walk(&s.data_dir().join("staging")).is_empty(),
        "staging freed"
    );
}

/// A crash that cuts the completion of a tus upload into S3 short is
/// finished when the server starts again: (a) before completion ran (the
/// last part still staged), (b) after the multipart upload was completed in
/// the bucket but before the row said so.
#[tokio::test]
async fn s3_completion_cut_short_by_a_crash_is_finished_at_restart() {
    const MIB: usize = 1 << 20;
    let s3 = S3Server::start();
    let mut s = Server::spawn_with_config(&s3.manta_toml(5)).await;
    let db = |d: &std::path::Path| rusqlite::Connection::open(d.join("imgapi.sqlite")).unwrap();

    // (a) all but the last byte in: parts 1 and 2 sent, 2 MiB + 4 staged
    let a = data(12 * MIB + 5, 31);
    let (_, h) = s.tus_create(a.len() as u64, None, &[]).await;
    let loc_a = h["location"].to_str().unwrap().to_string();
    let (st, _, _) = s
        .tus_patch(&loc_a, None, 0, a[..a.len() - 1].to_vec())
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.get(&format!("{loc_a}/info")).await.1["parts_sent"], 2);

    // (b) 7 MiB: the row as the last PATCH left it before completing (part 1
    // sent; the last 2 MiB went as part 2 and its commit named both parts)
    let b = data(7 * MIB, 32);
    let (_, h) = s.tus_create(b.len() as u64, None, &[]).await;
    let loc_b = h["location"].to_str().unwrap().to_string();
    let (st, _, _) = s.tus_patch(&loc_b, None, 0, b[..6 * MIB].to_vec()).await;
    assert_eq!(st, 204);
    let id_b = upload_id(&loc_b);
    let (data_key, parts, mp_id): (String, String, String) = db(&s.data_dir())
        .query_row(
            "SELECT data_key, parts, multipart_upload_id FROM uploads WHERE id = ?1",
            [&id_b],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut parts: Vec<serde_json::Value> = serde_json::from_str(&parts).unwrap();
    assert_eq!(parts.len(), 1);
    let (st, _, _) = s
        .tus_patch(&loc_b, None, 6 * MIB as u64, b[6 * MIB..].to_vec())
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.get(&format!("{loc_b}/info")).await.1["state"], "complete");
    parts.push(json!({"n": 2, "size": 2 * MIB,
        "etag": format!("\"{}\"", hex::encode(md5::Md5::digest(&b[5 * MIB..])))}));
    let last_staging = data_key.replace(&format!(".{}", 5 * MIB), &format!(".{}", 7 * MIB));

    let (md5_a, sha1_a) = Server::hash_state_of(&a).await;
    let (id_a, a_last) = (upload_id(&loc_a), a[a.len() - 1]);
    let parts = serde_json::to_string(&parts).unwrap();
    let (ib, key_b) = (
        id_b.clone(),
        format!("imgapi/uploads/{}/{id_b}", &id_b[..3]),
    );
    s.restart_hard_with(move |d| {
        use std::io::Write;
        let c = db(d);
        let staged: String = c
            .query_row("SELECT data_key FROM uploads WHERE id = ?1", [&id_a], |r| r.get(0))
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("staging").join(&staged))
            .unwrap();
        f.write_all(&[a_last]).unwrap();
        f.sync_all().unwrap();
        c.execute(
            "UPDATE uploads SET offset = length, md5_state = ?2, sha1_state = ?3 WHERE id = ?1",
            rusqlite::params![id_a, md5_a, sha1_a],
        )
        .unwrap();
        let p = d.join("staging").join(&last_staging);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        let n = c
            .execute(
                "UPDATE uploads SET state = 'uploading', md5 = NULL, sha1 = NULL, store = 'staging', \
                 data_key = ?2, multipart_key = ?3, multipart_upload_id = ?6, parts = ?4, \
                 staged_from = ?5, data_mtime = NULL WHERE id = ?1",
                rusqlite::params![ib, last_staging, key_b, parts, 7 * MIB as i64, mp_id],
            )
            .unwrap();
        assert_eq!(n, 1);
    })
    .await;

    let mut done = (json!(null), json!(null));
    for _ in 0..100 {
        done = (
            s.get(&format!("{loc_a}/info")).await.1,
            s.get(&format!("{loc_b}/info")).await.1,
        );
        if done.0["state"] == "complete" && done.1["state"] == "complete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (&done.0["state"], &done.1["state"]),
        (&json!("complete"), &json!("complete")),
        "{done:?}"
    );
    assert_eq!(done.0["sha1"], sha1_hex(&data(12 * MIB + 5, 31)));
    assert_eq!(done.1["sha1"], sha1_hex(&b));
    for (loc, want) in [(&loc_a, data(12 * MIB + 5, 31)), (&loc_b, b.clone())] {
        let r = s.http.get(s.u(loc)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            sha1_hex(&r.bytes().await.unwrap()),
            sha1_hex(&want),
            "the object in S3"
        );
    }
}
