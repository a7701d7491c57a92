//! Verified, resumable downloads of image files: bytes go to `OUT.partial`,
//! an interrupted transfer goes on with `Range` from what the partial file
//! holds, and the whole is checked against `Content-MD5` and the manifest's
//! sha1 and size before it is renamed to `OUT`. A mismatch deletes the
//! partial file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use imgapi::digest::StreamHasher;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::error::{ClientError, Result, local};
use super::http::{Attempt, Http, backoff, classify, refused};
use super::types::Image;

/// Bytes read at a time when hashing what the partial file already holds,
/// and bytes gathered from the network before they are hashed and written
/// (one hand-off per MiB to each hashing thread, not one per packet).
const READ: usize = 1 << 20;
/// The partial file's write buffer.
const WRITE_BUF: usize = 8 << 20;

fn hasher() -> Result<StreamHasher> {
    StreamHasher::without_crc().map_err(|e| local("hash", e))
}

fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Hashes the first `len` bytes of `p` (MD5 and SHA-1 on threads of their
/// own, as for the bytes received).
async fn hash_file(p: &Path, len: u64) -> Result<StreamHasher> {
    let f = std::sync::Arc::new(std::fs::File::open(p).map_err(|e| local(p.display(), e))?);
    let mut h = hasher()?;
    while h.size() < len {
        let (f, at) = (f.clone(), h.size());
        let n = (len - at).min(READ as u64) as usize;
        let b = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, at)
                .map(|()| bytes::Bytes::from(buf))
        })
        .await
        .map_err(|e| local("read", e))?
        .map_err(|e| local(p.display(), e))?;
        h.update(&b).await.map_err(|e| local("hash", e))?;
    }
    Ok(h)
}

/// Hash `b` and write it to the partial file.
async fn put(
    f: &mut BufWriter<tokio::fs::File>,
    feed: &mut StreamHasher,
    b: Bytes,
    partial: &Path,
) -> Result<()> {
    feed.update(&b).await.map_err(|e| local("hash", e))?;
    f.write_all(&b)
        .await
        .map_err(|e| local(partial.display(), e))
}

/// What one GET came to.
enum Got {
    /// The partial file now ends at this size (done or cut short).
    Progress(String),
    Restart,
}

/// Downloads image `uuid`'s file to `out`.
pub async fn file_get(http: &Http, uuid: &str, out: &Path) -> Result<Value> {
    let ipath = format!("/images/{uuid}");
    let raw = http
        .json("get image", || {
            http.small(Method::GET, &ipath, Default::default())
        })
        .await?;
    let img: Image = serde_json::from_value(raw)
        .map_err(|e| ClientError::Transport(format!("get image: unexpected answer: {e}")))?;
    let Some(mf) = img.files.first().cloned() else {
        return Err(refused(
            404,
            "ResourceNotFound",
            format!("image {uuid} has no file"),
        ));
    };
    let partial = partial_path(out);
    let mut have = match std::fs::metadata(&partial) {
        Ok(m) if m.len() <= mf.size => m.len(),
        Ok(_) => {
            std::fs::remove_file(&partial).map_err(|e| local(partial.display(), e))?;
            0
        }
        Err(_) => 0,
    };
    let mut feed = match hash_file(&partial, have).await {
        Ok(h) if h.size() == have => h,
        _ => {
            have = 0;
            hasher()?
        }
    };
    let resumed_from = have;
    let f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .map_err(|e| local(partial.display(), e))?;
    f.set_len(have)
        .await
        .map_err(|e| local(partial.display(), e))?;
    let mut f = BufWriter::with_capacity(WRITE_BUF, f);
    // Received bytes not yet hashed and written (at most READ).
    let mut gathered = BytesMut::with_capacity(READ);
    let mut content_md5: Option<String> = None;
    let received = Arc::new(AtomicU64::new(0));
    let pb = super::output::bar(mf.size, http.conn.json, "download");
    let fpath = format!("/images/{uuid}/file");
    let mut failures = 0u32;
    while have < mf.size {
        pb.set_position(have);
        let start = have;
        let res = {
            let mut rb = http.req(Method::GET, &fpath);
            if start > 0 {
                rb = rb.header("range", format!("bytes={start}-"));
            }
            let stall = http.conn.stall;
            let stalled = format!("no progress for {}s (stalled)", stall.as_secs());
            // Only network waits are timed out: a write or a hash update is
            // never cut in half, so the partial file and the hashes agree.
            let step = async {
                let r = match tokio::time::timeout(stall, rb.send()).await {
                    Err(_) => return Ok(Got::Progress(stalled)),
                    Ok(Err(e)) => return Ok(Got::Progress(super::http::chain(&e))),
                    Ok(Ok(r)) => r,
                };
                let range_start = r
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                match r.status() {
                    StatusCode::OK if start > 0 => return Ok(Got::Restart),
                    StatusCode::PARTIAL_CONTENT if range_start != Some(start) => {
                        return Ok(Got::Restart);
                    }
                    StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Got::Restart),
                    _ => {}
                }
                let r = match classify(r).await? {
                    Attempt::Done(r) => r,
                    Attempt::Retry { why, .. } => return Ok(Got::Progress(why)),
                };
                if let Some(m) = r.headers().get("content-md5").and_then(|v| v.to_str().ok()) {
                    content_md5 = Some(m.to_string());
                }
                let mut body = r.bytes_stream();
                loop {
                    let chunk = match tokio::time::timeout(stall, body.next()).await {
                        Err(_) => return Ok(Got::Progress(stalled)),
                        Ok(None) => break,
                        Ok(Some(Err(e))) => return Ok(Got::Progress(super::http::chain(&e))),
                        Ok(Some(Ok(c))) => c,
                    };
                    if have + chunk.len() as u64 > mf.size {
                        return Err(ClientError::Verify(format!(
                            "the server sent more than the manifest's size {}",
                            mf.size
                        )));
                    }
                    gathered.extend_from_slice(&chunk);
                    if gathered.len() >= READ {
                        let b = gathered.split().freeze();
                        put(&mut f, &mut feed, b, &partial).await?;
                    }
                    have += chunk.len() as u64;
                    received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    pb.set_position(have);
                }
                Ok(Got::Progress(String::new()))
            };
            let res = step.await;
            // What was received counts, whatever ended the request.
            if !gathered.is_empty() {
                let b = gathered.split().freeze();
                put(&mut f, &mut feed, b, &partial).await?;
            }
            res
        };
        let why = match res {
            Err(e) => {
                pb.abandon();
                let _ = f.flush().await;
                drop(f);
                if matches!(e, ClientError::Verify(_)) {
                    let _ = std::fs::remove_file(&partial);
                }
                return Err(e);
            }
            Ok(Got::Restart) => {
                f.flush().await.map_err(|e| local(partial.display(), e))?;
                f.get_mut()
                    .set_len(0)
                    .await
                    .map_err(|e| local(partial.display(), e))?;
                have = 0;
                feed = hasher()?;
                "the server ignored the range; starting over".into()
            }
            Ok(Got::Progress(why)) => why,
        };
        f.flush().await.map_err(|e| local(partial.display(), e))?;
        if have >= mf.size {
            break;
        }
        if have > start {
            failures = 0;
        } else {
            if failures >= http.conn.retries {
                pb.abandon();
                return Err(ClientError::Transport(format!(
                    "download of {uuid} failed after {} attempt(s): {why}; \
                     run the same command again to resume",
                    failures + 1
                )));
            }
            let d = backoff(failures);
            failures += 1;
            tokio::time::sleep(d).await;
        }
        if !why.is_empty() && !http.conn.json {
            pb.suspend(|| eprintln!("imgapi: download at {have}: {why}; resuming"));
        }
    }
    pb.finish_and_clear();
    f.flush().await.map_err(|e| local(partial.display(), e))?;
    f.get_mut()
        .sync_all()
        .await
        .map_err(|e| local(partial.display(), e))?;
    drop(f);
    let d = feed.finish().await.map_err(|e| local("hash", e))?;
    let size = d.size;
    let (md5, sha1) = (d.md5_base64(), d.sha1_hex());
    let mut bad = vec![];
    if size != mf.size {
        bad.push(format!("size {size}, manifest says {}", mf.size));
    }
    if sha1 != mf.sha1 {
        bad.push(format!("sha1 {sha1}, manifest says {}", mf.sha1));
    }
    for (what, want) in [
        ("Content-MD5", content_md5.as_deref()),
        ("the manifest's content_md5", mf.content_md5.as_deref()),
    ] {
        if let Some(w) = want
            && w != md5
        {
            bad.push(format!("md5 {md5}, {what} says {w}"));
        }
    }
    if !bad.is_empty() {
        let _ = std::fs::remove_file(&partial);
        return Err(ClientError::Verify(format!(
            "{} failed verification ({}); the partial file was deleted",
            out.display(),
            bad.join("; ")
        )));
    }
    std::fs::rename(&partial, out).map_err(|e| local(out.display(), e))?;
    Ok(json!({
        "uuid": uuid, "path": out, "size": size, "sha1": sha1, "content_md5": md5,
        "resumed_from": resumed_from, "bytes_received": received.load(Ordering::Relaxed),
    }))
}
