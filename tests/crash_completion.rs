//! An upload acknowledged in full always registers, even when a crash cut
//! its completion short: the server is killed (SIGKILL) at moments around
//! the end of the final PATCH, on the local and the S3 store, and after
//! each restart what a client sees must agree: `Upload-Offset` = length
//! means `/info` says complete and registration succeeds at once. And the
//! S3 store down while such an upload is recovered: 503 with Retry-After,
//! then success once it is back.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

/// A random fraction in [0, 1).
fn rand01() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

/// Register upload `id` as a new image; the response.
async fn register(s: &Server, id: &str, file: &[u8], name: &str) -> (u16, Value) {
    s.post(
        "/images",
        json!({"name": name, "version": "1.0.0", "os": "other", "type": "other", "owner": SDC,
               "files": [{"upload": id, "content_md5": md5_b64(file), "compression": "none"}]}),
    )
    .await
}

/// How one trial ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Killed before every byte was acknowledged.
    Early,
    /// Killed after every byte was acknowledged, before the PATCH answered:
    /// the window where completion can be cut short.
    Window,
    /// The PATCH was answered before the kill.
    Late,
}

/// Upload `file` in one PATCH, SIGKILL the server `delay` into it, restart,
/// and check what a client sees; finish the upload if needed, register it
/// and check the image's bytes.
async fn trial(
    s: &mut Server,
    file: &[u8],
    delay: Duration,
    path: Option<&str>,
    n: usize,
) -> Outcome {
    let meta: Vec<(&str, &str)> = path.map(|p| vec![("path", p)]).unwrap_or_default();
    let (st, h) = s.tus_create(file.len() as u64, None, &meta).await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    let id = upload_id(&loc);
    let patch = {
        let (http, url, body) = (s.http.clone(), s.u(&loc), file.to_vec());
        tokio::spawn(async move {
            http.patch(url)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(delay).await;
    s.restart_hard().await;
    let answered = matches!(patch.await.unwrap(), Ok(204));
    let (st, off, _) = s.tus_head(&loc).await;
    assert_eq!(st, 200, "HEAD after the restart");
    let off = off.unwrap();
    let len = file.len() as u64;
    let outcome = match (answered, off == len) {
        (true, _) => Outcome::Late,
        (false, true) => Outcome::Window,
        (false, false) => Outcome::Early,
    };
    if off == len {
        // Every byte acknowledged: complete as far as any client can tell.
        let (st, info) = s.get(&format!("{loc}/info")).await;
        assert_eq!(st, 200, "{info}");
        assert_eq!(info["state"], "complete", "{outcome:?}: {info}");
        assert_eq!(info["offset"], json!(len));
    } else {
        let (st, _, v) = s
            .tus_patch(&loc, None, off, file[off as usize..].to_vec())
            .await;
        assert_eq!(st, 204, "resume from {off}: {v}");
    }
    // Registration succeeds at once, with the right bytes.
    let (st, img) = register(s, &id, file, &format!("crash-{n}")).await;
    assert_eq!(
        st, 200,
        "{outcome:?}: registration after the restart: {img}"
    );
    assert_eq!(img["state"], "active", "{img}");
    let r = s
        .http
        .get(s.u(&format!("/images/{}/file", img["uuid"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), file, "the image's bytes");
    outcome
}

/// Kill the server at moments that close in on the end of the final PATCH
/// (bisecting between "killed before the last byte was acknowledged" and
/// "answered before the kill"), until the completion window has been hit
/// `want` times or `max` trials ran. Returns the number of hits.
async fn kill_loop(
    s: &mut Server,
    size: usize,
    path: Option<&str>,
    want: usize,
    max: usize,
) -> usize {
    // How long one PATCH of this size takes here, answered.
    let file = data(size, 7);
    let (_, h) = s.tus_create(size as u64, None, &[]).await;
    let loc = h["location"].to_str().unwrap().to_string();
    let t0 = Instant::now();
    let (st, _, _) = s.tus_patch(&loc, None, 0, file.clone()).await;
    assert_eq!(st, 204);
    let full = t0.elapsed();
    let (mut lo, mut hi) = (full / 2, full + Duration::from_millis(50));
    let mut hits = 0;
    let (mut seen_early, mut seen_late) = (false, false);
    let mut outcomes = Vec::new();
    for n in 0..max {
        let delay = if hits > 0 && n % 2 == 1 {
            lo + (hi - lo).mul_f64(rand01())
        } else {
            (lo + hi) / 2
        };
        let file = data(size, 100 + n as u32);
        let path = path.map(|p| format!("{p}/{n}.img"));
        let o = trial(s, &file, delay, path.as_deref(), n).await;
        // Until both sides have been seen, the other bound is only the
        // first PATCH's timing (taken cold, or on a busier machine): it
        // moves away as far again, so the search reaches the boundary
        // wherever it is now.
        match o {
            Outcome::Early => {
                (lo, seen_early) = (delay, true);
                if !seen_late {
                    hi = hi.max(delay * 2);
                }
            }
            Outcome::Late => {
                (hi, seen_late) = (delay, true);
                if !seen_early {
                    lo = lo.min(delay / 2);
                }
            }
            Outcome::Window => hits += 1,
        }
        if hi.saturating_sub(lo) < Duration::from_millis(2) {
            // Converged: widen again around the boundary.
            lo = lo.saturating_sub(Duration::from_millis(20));
            hi += Duration::from_millis(20);
        }
        outcomes.push((delay.as_millis(), o));
        if hits >= want {
            break;
        }
    }
    eprintln!("PATCH of {size} bytes took {full:?}; trials: {outcomes:?}");
    hits
}

#[tokio::test]
async fn s3_kill_during_final_patch_always_registers() {
    let s3 = S3Server::start();
    let mut s = Server::spawn_with_config(&s3.manta_toml(5)).await;
    let hits = kill_loop(&mut s, 6 * MIB, None, 1, 20).await;
    assert!(hits >= 1, "no trial hit the completion window");
}

#[tokio::test]
async fn local_kill_during_final_patch_always_registers() {
    let mut s = Server::spawn().await;
    let path = format!("/{SDC}/stor/crash");
    kill_loop(&mut s, 6 * MIB, Some(&path), 1, 6).await;
}

/// A stalled S3 upload (every byte acknowledged, completion cut short) while
/// the store is down: HEAD, `/info` and registration answer 503
/// StorageIsDown with Retry-After (never 422 UploadIncomplete); once the
/// store is back the same requests succeed at once.
#[tokio::test]
async fn s3_down_during_recovery_is_503_then_completes() {
    let mut s3 = S3Server::start_own();
    let mut s = Server::spawn_with_config(&s3.manta_toml(5)).await;
    let file = data(7 * MIB, 41);
    let (_, h) = s.tus_create(file.len() as u64, None, &[]).await;
    let loc = h["location"].to_str().unwrap().to_string();
    let id = upload_id(&loc);
    let (st, _, _) = s
        .tus_patch(&loc, None, 0, file[..file.len() - 1].to_vec())
        .await;
    assert_eq!(st, 204);
    // The crash: the last byte was staged and acknowledged (offset =
    // length, hash state of the whole file), its completion never ran.
    let (md5_state, sha1_state) = Server::hash_state_of(&file).await;
    let last = file[file.len() - 1];
    assert!(s3.stop());
    let id2 = id.clone();
    s.restart_hard_with(move |d| {
        use std::io::Write;
        let c = rusqlite::Connection::open(d.join("imgapi.sqlite")).unwrap();
        let staged: String = c
            .query_row("SELECT data_key FROM uploads WHERE id = ?1", [&id2], |r| {
                r.get(0)
            })
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("staging").join(&staged))
            .unwrap();
        f.write_all(&[last]).unwrap();
        f.sync_all().unwrap();
        c.execute(
            "UPDATE uploads SET offset = length, md5_state = ?2, sha1_state = ?3 WHERE id = ?1",
            rusqlite::params![id2, md5_state, sha1_state],
        )
        .unwrap();
    })
    .await;
    let (st, _, h) = s.tus_head(&loc).await;
    assert_eq!(st, 503, "HEAD while the store is down");
    assert!(h.get("retry-after").is_some(), "503 has Retry-After");
    let (st, v) = s.get(&format!("{loc}/info")).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (503, Some("StorageIsDown")),
        "{v}"
    );
    let (st, v) = register(&s, &id, &file, "down").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (503, Some("StorageIsDown")),
        "{v}"
    );
    s3.restart();
    let (st, off, _) = s.tus_head(&loc).await;
    assert_eq!((st, off), (200, Some(file.len() as u64)));
    let (_, v) = s.get(&format!("{loc}/info")).await;
    assert_eq!(v["state"], "complete", "{v}");
    let (st, img) = register(&s, &id, &file, "back").await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["state"], "active");
    let r = s
        .http
        .get(s.u(&format!("/images/{}/file", img["uuid"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &file[..]);
}
