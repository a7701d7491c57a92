//! tus 1.0 uploads over real HTTP (the header rules are in
//! `inprocess.rs`): ownership, limits,
//! expiry, termination, target paths, crash safety (SIGKILL mid-upload) and
//! running out of disk space.

use crate::common;

use std::time::Duration;

use base64::Engine;
use common::app::App;
use common::*;
use serde_json::Value;

const CT: &str = "application/offset+octet-stream";

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// Create and return the upload's path (`/uploads/<id>`).
async fn new_upload(s: &Server, len: u64, account: Option<&str>) -> String {
    let (st, h) = s.tus_create(len, account, &[("filename", "x.img")]).await;
    assert_eq!(st, 201);
    h["location"].to_str().unwrap().to_string()
}

/// The `Upload-Crc64nvme` the server shows for `d`: its CRC-64/NVME, base64
/// of the 8 big-endian bytes.
fn crc_b64(d: &[u8]) -> String {
    imgapi::digest::crc64::to_base64(imgapi::digest::crc64::Crc64::of(d))
}

async fn head_offset(s: &Server, loc: &str) -> (u16, Option<u64>) {
    let (st, off, _) = s.tus_head(loc).await;
    (st, off)
}

async fn info(s: &Server, loc: &str) -> Value {
    let (st, v) = s.get(&format!("{loc}/info")).await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn options_advertise_the_protocol() {
    let s = Server::start_with_config("[limits]\nmax_file_size = 123456789\n").await;
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.u("/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["tus-version"], "1.0.0");
    assert_eq!(h["tus-resumable"], "1.0.0");
    assert_eq!(h["tus-max-size"], "123456789");
    assert_eq!(
        h["tus-extension"],
        "creation,creation-with-upload,termination,checksum,expiration,concatenation,concatenation-unfinished"
    );
    assert_eq!(h["tus-checksum-algorithm"], "md5,sha1,sha256");
}

#[tokio::test]
async fn chunked_upload_with_digests_and_head() {
    let s = Server::start().await;
    let file = data(3_000_000, 1);
    let (st, h) = s
        .tus_create(file.len() as u64, None, &[("filename", "img.zfs")])
        .await;
    assert_eq!(st, 201);
    assert!(h.get("upload-expires").is_some());
    let loc = h["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/uploads/"));
    let mut off = 0u64;
    for c in file.chunks(700_000) {
        let (st, h, v) = s.tus_patch(&loc, None, off, c.to_vec()).await;
        assert_eq!(st, 204, "{v}");
        off += c.len() as u64;
        assert_eq!(h["upload-offset"], off.to_string().as_str());
        let r = s
            .http
            .head(s.u(&loc))
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["upload-offset"], off.to_string().as_str());
        assert_eq!(
            r.headers()["upload-length"],
            file.len().to_string().as_str()
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(
            r.headers()["upload-metadata"],
            format!("filename {}", b64(b"img.zfs")).as_str()
        );
    }
    let v = info(&s, &loc).await;
    assert_eq!(v["state"], "complete");
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    // GET returns the bytes, with ranges.
    let r = s.http.get(s.u(&loc)).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);
    let r = s
        .http
        .get(s.u(&loc))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), file[10..20].to_vec());
    // It shows in the caller's list.
    let (_, list) = s.get("/uploads").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|u| loc.ends_with(u["id"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn creation_with_upload_and_zero_length() {
    let s = Server::start().await;
    let file = data(100_000, 2);
    let r = s
        .http
        .post(s.u("/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "250000")
        .header("content-type", CT)
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["upload-offset"], "100000");
    let (st, off) = head_offset(&s, r.headers()["location"].to_str().unwrap()).await;
    assert_eq!((st, off), (200, Some(100_000)));
    let (st, h) = s.tus_create(0, None, &[]).await;
    assert_eq!(st, 201);
    let v = info(&s, h["location"].to_str().unwrap()).await;
    assert_eq!(v["state"], "complete");
    assert_eq!(v["sha1"], sha1_hex(b""));
}

#[tokio::test]
async fn put_with_content_range() {
    let s = Server::start().await;
    let file = data(30_000, 3);
    let loc = new_upload(&s, 30_000, None).await;
    let put = |start: usize, end: usize| {
        s.http
            .put(s.u(&loc))
            .header("content-range", format!("bytes {start}-{}/30000", end - 1))
            .body(file[start..end].to_vec())
            .send()
    };
    let r = put(0, 10_000).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "bytes=0-9999");
    assert_eq!(r.headers()["upload-offset"], "10000");
    let r = put(15_000, 20_000).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["range"], "bytes=0-9999");
    let r = put(10_000, 30_000).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(info(&s, &loc).await["sha1"], sha1_hex(&file));
}

#[tokio::test]
async fn uploads_belong_to_their_account() {
    let s = Server::start().await;
    let loc = new_upload(&s, 100, Some(LUKE)).await;
    let (st, _, _) = s.tus_patch(&loc, Some(VADER), 0, vec![1; 10]).await;
    assert_eq!(st, 404, "foreign PATCH");
    let (st, v) = s.get(&format!("{loc}/info?account={VADER}")).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("UploadNotFound")));
    let r = s
        .http
        .delete(s.u(&format!("{loc}?account={VADER}")))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "foreign DELETE");
    let (st, v) = s.get(&format!("/uploads?account={VADER}")).await;
    assert_eq!((st, v), (200, serde_json::json!([])));
    let (st, _, _) = s.tus_patch(&loc, Some(LUKE), 0, vec![1; 10]).await;
    assert_eq!(st, 204);
    let (st, v) = s.get(&format!("{loc}/info?account={LUKE}")).await;
    assert_eq!((st, v["owner"].as_str()), (200, Some(LUKE)));
}

#[tokio::test]
async fn size_and_quota_limits() {
    let s = Server::start_with_config(
        "[limits]\nmax_file_size = 1000\nmax_bytes_in_flight_per_account = 1500\n",
    )
    .await;
    let (st, _) = s.tus_create(1001, Some(LUKE), &[]).await;
    assert_eq!(st, 413);
    let (st, _) = s.tus_create(1000, Some(LUKE), &[]).await;
    assert_eq!(st, 201);
    let (st, _) = s.tus_create(600, Some(LUKE), &[]).await;
    assert_eq!(st, 413, "over the account's bytes in flight");
    let (st, _) = s.tus_create(500, Some(LUKE), &[]).await;
    assert_eq!(st, 201);
    let (st, _) = s.tus_create(600, Some(VADER), &[]).await;
    assert_eq!(st, 201, "quota is per account");
    // nothing was stored for the refused ones
    let (_, v) = s.get(&format!("/uploads?account={LUKE}")).await;
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_patches_never_interleave() {
    let s = Server::start().await;
    let loc = new_upload(&s, 2_000_000, None).await;
    // A slow PATCH: its body trickles in through a channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let slow = s
        .http
        .patch(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", CT)
        .body(body)
        .send();
    let slow = tokio::spawn(slow);
    tx.send(Ok(vec![1u8; 100_000])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (st, _, v) = s.tus_patch(&loc, None, 0, vec![2u8; 100_000]).await;
    assert!(st == 423 || st == 409, "second PATCH refused, got {st} {v}");
    tx.send(Ok(vec![1u8; 100_000])).await.unwrap();
    drop(tx);
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 204);
    let r = s.http.get(s.u(&loc)).send().await.unwrap();
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), 200_000);
    assert!(
        got.iter().all(|b| *b == 1),
        "bytes of the refused PATCH never mixed in"
    );
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn termination_frees_storage() {
    let s = Server::start().await;
    let loc = new_upload(&s, 1_000_000, None).await;
    s.tus_patch(&loc, None, 0, vec![5; 500_000]).await;
    let files_before = walk(&s.data_dir().join("manta"));
    assert_eq!(files_before.len(), 1);
    let r = s
        .http
        .delete(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(head_offset(&s, &loc).await.0, 404);
    assert!(
        walk(&s.data_dir().join("manta")).is_empty(),
        "storage freed at once"
    );
}

/// Expiry in process, on the services' manual clock: each PATCH moves an
/// upload's expiry `expire_after_secs` on; idle past it, the upload is
/// refused (410) and one reaper pass removes its row and its bytes.
#[tokio::test]
async fn idle_uploads_expire_and_are_reaped() {
    let app = App::with_config(|c| c.uploads.expire_after_secs = 60).await;
    let minute = Duration::from_secs(60);
    let loc = app.tus_location(1000, None).await;
    let r = app.tus_patch_with(&loc, 0, &[], vec![1; 10]).await;
    assert_eq!(r.status, 204);
    let expires = app.clock.now() + minute;
    assert_eq!(
        r.header("upload-expires"),
        httpdate::fmt_http_date(expires.into())
    );
    let v = app.fetch(&format!("{loc}/info")).await.json();
    assert_eq!(
        v["expires_at"],
        expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    );
    // 59 s idle: still alive, and the PATCH moves the expiry on.
    app.advance(Duration::from_secs(59));
    assert_eq!(app.reap().await, (0, 0));
    let r = app.tus_patch_with(&loc, 10, &[], vec![1; 10]).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("upload-expires"),
        httpdate::fmt_http_date((app.clock.now() + minute).into())
    );
    // Idle past it: refused, then reaped.
    app.advance(minute + Duration::from_millis(1));
    let r = app.tus_patch_with(&loc, 20, &[], vec![1; 10]).await;
    assert_eq!((r.status, r.error().code.as_str()), (410, "UploadExpired"));
    assert_eq!(app.tus_offset(&loc).await.0, 410);
    assert!(!walk(&app.data_dir().join("manta")).is_empty());
    assert_eq!(app.reap().await, (1, 0));
    assert_eq!(app.tus_offset(&loc).await.0, 404);
    assert!(
        walk(&app.data_dir().join("manta")).is_empty(),
        "reaper freed the bytes"
    );
}

/// The binary runs the upload reaper at start-up (then every 10 minutes):
/// an upload that expired while the server was down is gone, bytes and all.
#[tokio::test]
async fn the_binary_reaps_expired_uploads_at_start_up() {
    // expire_after_secs = 0: expired as soon as the clock ticks on.
    let mut s = Server::spawn_with_config("[uploads]\nexpire_after_secs = 0\n").await;
    let loc = s.tus_location(1000, None).await;
    assert!(!walk(&s.data_dir().join("manta")).is_empty());
    s.restart_hard().await;
    let mut st = 0;
    for _ in 0..100 {
        st = head_offset(&s, &loc).await.0;
        if st == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(st, 404, "reaped at start-up");
    assert!(
        walk(&s.data_dir().join("manta")).is_empty(),
        "reaper freed the bytes"
    );
}

#[tokio::test]
async fn target_paths_and_content_md5() {
    let s = Server::start().await;
    let file = data(50_000, 4);
    // operator: /assets path
    let (st, h) = s
        .tus_create(50_000, None, &[("path", "/assets/base/base-1.0.zfs")])
        .await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    s.tus_patch(&loc, None, 0, file.clone()).await;
    assert_eq!(
        std::fs::read(s.data_dir().join("assets/base/base-1.0.zfs")).unwrap(),
        file
    );
    assert_eq!(info(&s, &loc).await["path"], "/assets/base/base-1.0.zfs");
    // an account may not use /assets unless allowed
    let (st, _) = s.tus_create(10, Some(LUKE), &[("path", "/assets/x")]).await;
    assert_eq!(st, 422);
    // its own manta namespace (by uuid) is fine; another's is not
    let (st, h) = s
        .tus_create(
            10,
            Some(LUKE),
            &[("path", &format!("/{LUKE}/stor/images/a.img"))],
        )
        .await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    s.tus_patch(&loc, Some(LUKE), 0, vec![3; 10]).await;
    assert_eq!(
        std::fs::read(s.data_dir().join(format!("manta/{LUKE}/stor/images/a.img"))).unwrap(),
        vec![3; 10]
    );
    for bad in [
        format!("/{VADER}/stor/a.img"),
        "/imgapi/stor/x".into(),
        format!("/{LUKE}/stor/../../etc/passwd"),
        "relative/x".into(),
    ] {
        let (st, _) = s.tus_create(10, Some(LUKE), &[("path", &bad)]).await;
        assert_eq!(st, 422, "{bad}");
    }
    // content_md5 is checked on completion
    let (st, h) = s
        .tus_create(4, None, &[("content_md5", &md5_b64(b"abcd"))])
        .await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    let (st, _, _) = s.tus_patch(&loc, None, 0, b"abcd".to_vec()).await;
    assert_eq!(st, 204);
    let (_, h) = s
        .tus_create(4, None, &[("content_md5", &md5_b64(b"abcd"))])
        .await;
    let loc = h["location"].to_str().unwrap().to_string();
    let (st, _, v) = s.tus_patch(&loc, None, 0, b"abce".to_vec()).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ChecksumMismatch")));
    assert_eq!(v["errors"][0]["field"], "content_md5");
    assert_eq!(info(&s, &loc).await["state"], "failed");
}

/// SIGKILL at several points of an upload; after each restart HEAD reports
/// an acknowledged offset and the finished file is byte-identical.
#[tokio::test]
async fn survives_sigkill_mid_upload() {
    let mut s = Server::spawn().await;
    const CHUNK: usize = 1 << 20;
    let file = data(12 * CHUNK, 5);
    let loc = new_upload(&s, file.len() as u64, None).await;
    let mut acked = 0usize;
    // kill points: 0 = between requests, n > 0 = after n bytes of a PATCH body
    let plan = [0usize, 300_000, 0, 900_000, 1, 0];
    for kill_after in plan {
        // one acknowledged chunk first
        let (st, h, v) = s
            .tus_patch(
                &loc,
                None,
                acked as u64,
                file[acked..acked + CHUNK].to_vec(),
            )
            .await;
        assert_eq!(st, 204, "{v}");
        acked += CHUNK;
        assert_eq!(h["upload-crc64nvme"], crc_b64(&file[..acked]).as_str());
        if kill_after > 0 {
            // a PATCH whose body stops after `kill_after` bytes, then the kill
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
            let req = s
                .http
                .patch(s.u(&loc))
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", acked.to_string())
                .header("content-type", CT)
                .header("content-length", CHUNK.to_string())
                .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
                .send();
            let pending = tokio::spawn(req);
            tx.send(Ok(file[acked..acked + kill_after].to_vec()))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            s.restart_hard().await;
            drop(tx);
            let _ = pending.await;
        } else {
            s.restart_hard().await;
        }
        let (st, off, h) = s.tus_head(&loc).await;
        assert_eq!(st, 200);
        let off = off.unwrap() as usize;
        assert_eq!(
            off, acked,
            "HEAD after SIGKILL reports the acknowledged offset"
        );
        // The CRC of those bytes was kept with them.
        assert_eq!(h["upload-crc64nvme"], crc_b64(&file[..acked]).as_str());
    }
    // finish
    while acked < file.len() {
        let end = (acked + CHUNK).min(file.len());
        let (st, _, _) = s
            .tus_patch(&loc, None, acked as u64, file[acked..end].to_vec())
            .await;
        assert_eq!(st, 204);
        acked = end;
    }
    let v = info(&s, &loc).await;
    assert_eq!(v["state"], "complete");
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    let (_, _, h) = s.tus_head(&loc).await;
    assert_eq!(h["upload-crc64nvme"], crc_b64(&file).as_str());
    let r = s.http.get(s.u(&loc)).send().await.unwrap();
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
}

/// A dropped connection keeps the bytes that arrived (tus: "store as much
/// as possible"), with correct digests at the end.
#[tokio::test]
async fn dropped_connection_keeps_received_bytes() {
    let s = Server::start().await;
    let file = data(3_000_000, 6);
    let loc = new_upload(&s, file.len() as u64, None).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let req = s
        .http
        .patch(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", CT)
        .header("content-length", file.len().to_string())
        .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
        .send();
    let pending = tokio::spawn(req);
    tx.send(Ok(file[..1_000_000].to_vec())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.send(Err(std::io::Error::other("cable cut")))
        .await
        .unwrap();
    let _ = pending.await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, off, h) = s.tus_head(&loc).await;
    let off = off.unwrap() as usize;
    assert!(off > 0 && off <= 1_000_000, "kept what arrived: {off}");
    assert_eq!(h["upload-crc64nvme"], crc_b64(&file[..off]).as_str());
    let (st, _, _) = s
        .tus_patch(&loc, None, off as u64, file[off..].to_vec())
        .await;
    assert_eq!(st, 204);
    assert_eq!(info(&s, &loc).await["sha1"], sha1_hex(&file));
}

/// Out of disk space: 507, the offset stays at the last durable byte, and
/// the upload resumes once space is freed. Needs root (mounts a small tmpfs).
#[tokio::test]
async fn out_of_space_is_507_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(
        st.success(),
        "this test mounts a tmpfs and must run as root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _u = Unmount(mnt.clone());
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 5 << 20]).unwrap();
    let s = Server::start_with_config(&format!(
        "[storage.manta]\ntype = \"fs\"\ndir = \"{}\"\n",
        mnt.join("manta").display()
    ))
    .await;
    const MIB: usize = 1 << 20;
    let file = data(10 * MIB, 7);
    let loc = new_upload(&s, file.len() as u64, None).await;
    let (st, _, _) = s.tus_patch(&loc, None, 0, file[..4 * MIB].to_vec()).await;
    assert_eq!(st, 204);
    let (st, _, v) = s
        .tus_patch(&loc, None, 4 * MIB as u64, file[4 * MIB..8 * MIB].to_vec())
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (507, Some("InsufficientStorage")),
        "{v}"
    );
    assert_eq!(head_offset(&s, &loc).await.1, Some(4 * MIB as u64));
    std::fs::remove_file(&filler).unwrap();
    let (st, _, v) = s
        .tus_patch(&loc, None, 4 * MIB as u64, file[4 * MIB..].to_vec())
        .await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(info(&s, &loc).await["sha1"], sha1_hex(&file));
}

/// A crash that cuts the completion of an upload short (after its last
/// PATCH was acknowledged) is finished when the server starts again: both
/// before the bytes moved to the target path and after they moved but before
/// the row said so.
#[tokio::test]
async fn completion_cut_short_by_a_crash_is_finished_at_restart() {
    let mut s = Server::spawn().await;
    let db = |d: &std::path::Path| rusqlite::Connection::open(d.join("imgapi.sqlite")).unwrap();

    // (a) crash after the last bytes were committed, before completion ran
    let a = data(50_000, 21);
    let (st, h) = s
        .tus_create(
            a.len() as u64,
            None,
            &[("path", "/assets/base/stalled-a.zfs")],
        )
        .await;
    assert_eq!(st, 201);
    let loc_a = h["location"].to_str().unwrap().to_string();
    let id_a = loc_a.rsplit('/').next().unwrap().to_string();
    let (st, _, _) = s.tus_patch(&loc_a, None, 0, a[..49_999].to_vec()).await;
    assert_eq!(st, 204);

    // (b) crash after the bytes moved to the path, before the row said so
    let b = data(40_000, 22);
    let (st, h) = s
        .tus_create(
            b.len() as u64,
            None,
            &[("path", "/assets/base/stalled-b.zfs")],
        )
        .await;
    assert_eq!(st, 201);
    let loc_b = h["location"].to_str().unwrap().to_string();
    let id_b = loc_b.rsplit('/').next().unwrap().to_string();
    let (st, _, _) = s.tus_patch(&loc_b, None, 0, b.clone()).await;
    assert_eq!(st, 204);
    assert_eq!(info(&s, &loc_b).await["state"], "complete");

    let (md5_a, sha1_a) = Server::hash_state_of(&a).await;
    let (ia, ib) = (id_a.clone(), id_b.clone());
    s.restart_hard_with(move |d| {
        // (a): the last byte durable and committed with the offset
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(format!("assets/.imgapi-uploads/{ia}")))
            .unwrap();
        f.write_all(&a[49_999..]).unwrap();
        f.sync_all().unwrap();
        let c = db(d);
        c.execute(
            "UPDATE uploads SET offset = length, md5_state = ?2, sha1_state = ?3 WHERE id = ?1",
            rusqlite::params![ia, md5_a, sha1_a],
        )
        .unwrap();
        // (b): the row as it was before completion's commit
        let n = c
            .execute(
                "UPDATE uploads SET state = 'uploading', md5 = NULL, sha1 = NULL, \
                 store = 'assets', data_key = '.imgapi-uploads/' || id, data_mtime = NULL WHERE id = ?1",
                rusqlite::params![ib],
            )
            .unwrap();
        assert_eq!(n, 1);
    })
    .await;

    // finished at start-up, before the listener opened
    let mut ok = false;
    for _ in 0..50 {
        let (ia, ib) = (info(&s, &loc_a).await, info(&s, &loc_b).await);
        if ia["state"] == "complete" && ib["state"] == "complete" {
            assert_eq!(ia["sha1"], sha1_hex(&data(50_000, 21)));
            assert_eq!(ib["sha1"], sha1_hex(&b));
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "both uploads finished: {} {}",
        info(&s, &loc_a).await,
        info(&s, &loc_b).await
    );
    assert_eq!(
        std::fs::read(s.data_dir().join("assets/base/stalled-a.zfs")).unwrap(),
        data(50_000, 21)
    );
    assert_eq!(
        std::fs::read(s.data_dir().join("assets/base/stalled-b.zfs")).unwrap(),
        b
    );
    assert!(
        !s.data_dir()
            .join(format!("assets/.imgapi-uploads/{id_a}"))
            .exists()
    );
    // and they register like any finished upload
    for (id, bytes) in [(&id_a, data(50_000, 21)), (&id_b, b.clone())] {
        let (st, img) = s
            .post(
                "/images",
                serde_json::json!({"name": "stalled", "version": "1", "os": "linux", "type": "other",
                    "owner": "00000000-0000-0000-0000-000000000000",
                    "files": [{"upload": id, "compression": "none",
                        "content_md5": md5_b64(&bytes)}]}),
            )
            .await;
        assert_eq!((st, img["state"].as_str()), (200, Some("active")), "{img}");
    }
}
