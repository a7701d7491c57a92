//! Resumable uploads (tus 1.0): create a session, send the file in chunks,
//! and after any interruption (the client killed, the network or the server
//! gone) go on from the offset the server acknowledged (`HEAD`), never
//! re-sending those bytes. Each PATCH body is read from the file as it is
//! sent (memory stays flat whatever the chunk), and every buffer read is
//! added to the upload's CRC-64/NVME on the way (one read of the file). The
//! CRC is saved with each acknowledged chunk in the state store, so a
//! resume does not re-read what was sent, and compared with the server's
//! (`Upload-Crc64nvme`) on every acknowledgement and at the end: a mismatch
//! ends the upload (see hashes.rs).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use reqwest::Method;
use serde_json::Value;

use super::config::state_dir;
use super::error::{ClientError, Result, local};
use super::hashes::{self, crc_to};
use super::http::{Attempt, Http, backoff, classify, watch};
use super::state::{self, Entry, FileId, StateStore};
use super::types::UploadInfo;
use imgapi_protocol::digest::crc64::{self, Crc64};
use imgapi_protocol::tus as protocol;

/// Bytes read, hashed and handed to the connection at a time (the unit of
/// progress).
const SLICE: u64 = 1 << 20;
/// Slices read ahead of the connection.
const READ_AHEAD: usize = 4;

/// A finished upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub id: String,
    pub size: u64,
    pub sha1: String,
    pub content_md5: String,
    /// The offset the server already had when this run started.
    pub resumed_from: u64,
    /// Bytes this run sent.
    pub bytes_sent: u64,
    /// Requests this run gave up on and resumed from the server's offset
    /// (each re-sends at most one chunk).
    pub retries: u32,
    /// The state entry (removed by the caller once the upload is used).
    pub key: String,
    /// The server's view of the upload (`GET /uploads/{id}/info`).
    pub info: UploadInfo,
}

impl Uploaded {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id, "size": self.size, "sha1": self.sha1,
            "content_md5": self.content_md5, "resumed_from": self.resumed_from,
            "bytes_sent": self.bytes_sent, "retries": self.retries,
        })
    }
}

pub(crate) fn tus(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header(protocol::RESUMABLE, protocol::VERSION)
}

fn header_u64(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

pub(crate) fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok()?.parse().ok()
}

/// `HEAD /uploads/{id}`: (offset, length).
pub async fn head(http: &Http, id: &str) -> Result<(u64, u64)> {
    let (o, l, _) = head_crc(http, id).await?;
    Ok((o, l))
}

/// The server's CRC-64/NVME of an upload's first Upload-Offset bytes, if
/// it sent one.
fn crc_header(r: &reqwest::Response) -> Option<u64> {
    crc64::from_base64(r.headers().get(protocol::UPLOAD_CRC64)?.to_str().ok()?)
}

/// `HEAD /uploads/{id}`: (offset, length, the server's CRC-64/NVME of the
/// bytes up to the offset if it gives one).
pub async fn head_crc(http: &Http, id: &str) -> Result<(u64, u64, Option<u64>)> {
    let path = format!("/uploads/{id}");
    let r = http
        .send("HEAD upload", || {
            tus(http.small(Method::HEAD, &path, Default::default()))
        })
        .await?;
    match (
        header_u64(&r, protocol::UPLOAD_OFFSET),
        header_u64(&r, protocol::UPLOAD_LENGTH),
    ) {
        (Some(o), Some(l)) => Ok((o, l, crc_header(&r))),
        _ => Err(ClientError::Transport(
            "HEAD upload: no Upload-Offset/Upload-Length in the answer".into(),
        )),
    }
}

/// `POST /uploads`: a new session; its id.
async fn create(http: &Http, size: u64, file: &Path, target: Option<&str>) -> Result<String> {
    create_with(http, size, Some(file), target, None).await
}

/// `POST /uploads` with `Upload-Concat: concat` when given (`partial`, or
/// `final;URL ...`); the new upload's id.
pub(crate) async fn create_with(
    http: &Http,
    size: u64,
    file: Option<&Path>,
    target: Option<&str>,
    concat: Option<&str>,
) -> Result<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut meta = vec![];
    if let Some(name) = file.and_then(Path::file_name) {
        meta.push(format!("filename {}", b64(&name.to_string_lossy())));
    }
    if let Some(t) = target {
        meta.push(format!("path {}", b64(t)));
    }
    let meta = meta.join(",");
    let r = http
        .send("create upload", || {
            let mut rb = tus(http.small(Method::POST, "/uploads", Default::default()))
                .header(protocol::UPLOAD_LENGTH, size.to_string());
            if !meta.is_empty() {
                rb = rb.header(protocol::UPLOAD_METADATA, meta.as_str());
            }
            if let Some(c) = concat {
                rb = rb.header(protocol::UPLOAD_CONCAT, c);
            }
            rb
        })
        .await?;
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let id = loc
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if id.is_empty() {
        return Err(ClientError::Transport(
            "create upload: no Location in the answer".into(),
        ));
    }
    Ok(id.to_string())
}

/// Read buffers given back by the connection once it has sent them, reused
/// by the next reads. A fresh 1 MiB buffer is memory the kernel must map,
/// fault in and zero page by page, and unmap again when it is freed: that
/// cost more CPU than the reading and sending of the bytes together.
static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Buffers kept for reuse at most (the reads in flight of every stream).
const KEEP: usize = 64;

/// A slice's bytes; back to [`FREE`] when the body no longer holds them.
struct Slice(Vec<u8>);

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Slice {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if let Ok(mut free) = FREE.lock()
            && free.len() < KEEP
        {
            free.push(buf);
        }
    }
}

/// Reads `len` bytes of `file` at `at`.
pub(crate) async fn read_at(file: &Arc<std::fs::File>, at: u64, len: u64) -> Result<Bytes> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = FREE
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default();
        // Zeroes only what this buffer never held (a new one, or a longer slice).
        buf.resize(len as usize, 0);
        f.read_exact_at(&mut buf, at)
            .map(|()| Bytes::from_owner(Slice(buf)))
    })
    .await
    .map_err(|e| local("read", e))?
    .map_err(|e| local("read", e))
}

/// What a PATCH came to.
pub(crate) enum Patched {
    /// The new offset, and the server's CRC of the bytes up to it.
    Offset(u64, Option<u64>),
    Retry(String, Option<std::time::Duration>),
}

/// The bytes `offset..offset + len` of `file` as a request body, read a
/// slice at a time (a few ahead), each slice added to `crc` as it is handed
/// to the connection, and counted in `progress` and `sent`.
pub(crate) fn body_of(
    file: &Arc<std::fs::File>,
    crc: Arc<Mutex<Crc64>>,
    offset: u64,
    len: u64,
    progress: &Arc<AtomicU64>,
    sent: &Arc<AtomicU64>,
    pb: &ProgressBar,
) -> reqwest::Body {
    let end = offset + len;
    let f = file.clone();
    let reads = futures_util::stream::iter((offset..end).step_by(SLICE as usize))
        .map(move |at| {
            let f = f.clone();
            async move { read_at(&f, at, (end - at).min(SLICE)).await }
        })
        .buffered(READ_AHEAD);
    let (p2, s2, pb2) = (progress.clone(), sent.clone(), pb.clone());
    let stream = reads.then(move |r| {
        let (crc, p2, s2, pb2) = (crc.clone(), p2.clone(), s2.clone(), pb2.clone());
        async move {
            let b = r.map_err(|e| std::io::Error::other(e.to_string()))?;
            crc.lock()
                .map_err(|_| std::io::Error::other("poisoned lock"))?
                .update(&b);
            let n = b.len() as u64;
            let now = p2.fetch_add(n, Ordering::Relaxed) + n;
            s2.fetch_add(n, Ordering::Relaxed);
            pb2.set_position(offset + now);
            Ok::<_, std::io::Error>(b)
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// One PATCH of `len` bytes of `file` (from `file_at`) at upload offset
/// `offset`, dropped when it stalls; the bytes sent are added to `crc`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn patch(
    http: &Http,
    id: &str,
    file: &Arc<std::fs::File>,
    crc: Arc<Mutex<Crc64>>,
    file_at: u64,
    offset: u64,
    len: u64,
    sent: &Arc<AtomicU64>,
    pb: &ProgressBar,
) -> Result<Patched> {
    let progress = Arc::new(AtomicU64::new(0));
    let body = body_of(file, crc, file_at, len, &progress, sent, pb);
    let rb = tus(http.req(Method::PATCH, &format!("/uploads/{id}")))
        .header(protocol::UPLOAD_OFFSET, offset.to_string())
        .header("content-type", protocol::PATCH_CONTENT_TYPE)
        .header("content-length", len.to_string())
        .body(body);
    let Some(res) = watch(rb.send(), &progress, http.conn.stall).await else {
        return Ok(Patched::Retry(
            format!("no progress for {}s (stalled)", http.conn.stall.as_secs()),
            None,
        ));
    };
    let r = match res {
        Err(e) => return Ok(Patched::Retry(super::http::why(&e), None)),
        Ok(r) => r,
    };
    if matches!(r.status().as_u16(), 409 | 423 | 460) {
        // Offset conflict, another request of ours (one we gave up on) still
        // holding the upload, or a damaged chunk: find out where the server is.
        let st = r.status().as_u16();
        return Ok(Patched::Retry(format!("PATCH answered {st}"), None));
    }
    match classify(r).await? {
        Attempt::Retry { why, after } => Ok(Patched::Retry(why, after)),
        Attempt::Done(r) => match header_u64(&r, protocol::UPLOAD_OFFSET) {
            Some(o) => Ok(Patched::Offset(o, crc_header(&r))),
            None => Ok(Patched::Retry("PATCH: no Upload-Offset".into(), None)),
        },
    }
}

/// Uploads `path` (to storage path `target` if given), resuming a previous
/// run's session when the state store has one for this file and server.
/// With `parallel` > 1 a new upload is sent as that many partial uploads at
/// once (tus concatenation); an interrupted upload resumes as it began.
pub async fn upload(
    http: &Http,
    path: &Path,
    target: Option<&str>,
    chunk: u64,
    parallel: usize,
) -> Result<Uploaded> {
    let fid = FileId::of(path)?;
    let size = fid.size;
    let key = state::key(&http.conn.url, http.conn.account.as_deref(), target, &fid);
    let store = StateStore::open(state_dir()?)?;
    let Some(_lock) = store.lock(&key)? else {
        return Err(ClientError::Usage(format!(
            "another imgapi is uploading {} to {} now: let it finish (or stop it), then run \
             this command again",
            path.display(),
            http.conn.url
        )));
    };
    let file = Arc::new(std::fs::File::open(&fid.path).map_err(|e| local(path.display(), e))?);
    let loaded = store.load(&key);
    let resume_parallel = loaded.as_ref().is_some_and(|e| e.parallel.is_some());
    if resume_parallel || (loaded.is_none() && parallel > 1 && size > 1) {
        let job = super::parallel::Job {
            http,
            path,
            target,
            chunk,
            fid: &fid,
            key: &key,
            store: &store,
            file,
        };
        return job.run(parallel, loaded).await;
    }
    let (mut entry, server_offset) = session(http, &store, &key, &fid, path, target).await?;
    let id = entry.upload_id.clone();
    // The CRC of what the server has (read from the file only for bytes
    // the saved state lacks: those a kill kept from being recorded, or all
    // of them for an entry of a version that kept no CRC).
    let saved = hashes::restore(&entry.hashes).unwrap_or_default();
    let crc = crc_to(&file, 0, saved, server_offset).await?;
    let pb = super::output::bar(size, http.conn.json, "upload");
    pb.set_position(server_offset);
    let mut run = Sending::new(http, (&store, &key), &id, &file, &pb, (server_offset, crc));
    if let Err(e) = run.all(&mut entry, size, chunk).await {
        pb.abandon();
        return Err(e);
    }
    let (crc, retries, sent) = (run.crc, run.retries, run.sent.load(Ordering::Relaxed));
    pb.finish_and_clear();
    let now = FileId::of(path)?;
    if now.size != fid.size || now.mtime_ns != fid.mtime_ns {
        store.remove(&key);
        return Err(changed_while_uploaded(path));
    }
    let (info, content_md5) = verify(http, &store, &key, &[&id], &file, size, &crc).await?;
    let sha1 = info.sha1.clone().unwrap_or_default();
    Ok(Uploaded {
        id,
        size,
        sha1,
        content_md5,
        resumed_from: server_offset,
        bytes_sent: sent,
        retries,
        key,
        info,
    })
}

/// The session to send `fid` to: the saved one if the server still has it
/// for this file (with the offset the server has), else a new one, saved.
async fn session(
    http: &Http,
    store: &StateStore,
    key: &str,
    fid: &FileId,
    path: &Path,
    target: Option<&str>,
) -> Result<(Entry, u64)> {
    if let Some(e) = store.load(key) {
        match head(http, &e.upload_id).await {
            Ok((o, l)) if l == fid.size => return Ok((e, o)),
            // Gone (expired, aborted, another server) or not this file.
            Ok(_)
            | Err(ClientError::Server {
                status: 404 | 410, ..
            }) => store.remove(key),
            Err(e) => return Err(e),
        }
    }
    let id = create(http, fid.size, path, target).await?;
    let e = Entry {
        url: http.conn.url.clone(),
        account: http.conn.account.clone(),
        target: target.map(String::from),
        file: fid.clone(),
        upload_id: id,
        hashes: hashes::save(&Crc64::new()),
        created_at: chrono::Utc::now().to_rfc3339(),
        parallel: None,
    };
    store.save(key, &e)?;
    end_stale(http, store, &e, key).await;
    Ok((e, 0))
}

/// One upload's PATCHes from `offset` to the end of the file, with the CRC
/// of what the server has acknowledged, and the retries.
struct Sending<'a> {
    http: &'a Http,
    store: &'a StateStore,
    key: &'a str,
    id: &'a str,
    file: &'a Arc<std::fs::File>,
    pb: &'a ProgressBar,
    sent: Arc<AtomicU64>,
    offset: u64,
    crc: Crc64,
    /// Failures in a row (reset by a PATCH that gets all its bytes in).
    failures: u32,
    retries: u32,
}

impl<'a> Sending<'a> {
    /// From `offset`, where the server has bytes whose CRC is `crc`.
    fn new(
        http: &'a Http,
        (store, key): (&'a StateStore, &'a str),
        id: &'a str,
        file: &'a Arc<std::fs::File>,
        pb: &'a ProgressBar,
        (offset, crc): (u64, Crc64),
    ) -> Sending<'a> {
        Sending {
            http,
            store,
            key,
            id,
            file,
            pb,
            sent: Arc::new(AtomicU64::new(0)),
            offset,
            crc,
            failures: 0,
            retries: 0,
        }
    }

    /// PATCH `chunk` bytes at a time until the server has `size`, saving
    /// the acknowledged CRC in `entry` after each.
    async fn all(&mut self, entry: &mut Entry, size: u64, chunk: u64) -> Result<()> {
        let abort_after = env_u64("IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES");
        let pause_after = env_u64("IMGAPI_CLIENT_TEST_PAUSE_AFTER_BYTES");
        let mut paused = false;
        let trace = std::env::var_os("IMGAPI_CLIENT_TRACE").is_some();
        while self.offset < size {
            let len = chunk.min(size - self.offset);
            let t0 = std::time::Instant::now();
            if !self.one(len).await? {
                continue;
            }
            let t1 = std::time::Instant::now();
            if abort_after.is_some_and(|n| self.offset >= n) {
                // Test hook: die as `kill -9` would, after the server
                // acknowledged bytes and before the state file says so.
                // SAFETY: kill(2) on our own pid.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
            entry.hashes = hashes::save(&self.crc);
            self.store.save(self.key, entry)?;
            if trace {
                let t2 = std::time::Instant::now();
                eprintln!(
                    "imgapi: PATCH {len} bytes at {}: {:.3}s sent and acknowledged, {:.3}s state save",
                    self.offset - len.min(self.offset),
                    (t1 - t0).as_secs_f64(),
                    (t2 - t1).as_secs_f64()
                );
            }
            if !paused && pause_after.is_some_and(|n| self.offset >= n) {
                paused = true;
                test_pause().await;
            }
        }
        Ok(())
    }

    /// One PATCH of `len` bytes at the offset: true when the server took
    /// bytes, false after a failure it recovered from (the offset then is
    /// what the server says it has).
    async fn one(&mut self, len: u64) -> Result<bool> {
        let offset = self.offset;
        let sending = Arc::new(Mutex::new(self.crc));
        let res = patch(
            self.http,
            self.id,
            self.file,
            sending.clone(),
            offset,
            offset,
            len,
            &self.sent,
            self.pb,
        )
        .await;
        match res {
            Ok(Patched::Offset(o, _)) if o <= offset => {
                let why = format!("PATCH acknowledged no new bytes (offset {o})");
                self.recover(why, None).await?;
                Ok(false)
            }
            Err(e) => Err(self.forget_if_gone(e)),
            Ok(Patched::Offset(o, theirs)) => {
                self.crc = hashes::acknowledged(self.file, 0, self.crc, &sending, o).await?;
                if o == offset + len {
                    self.failures = 0;
                }
                self.offset = o;
                if let Some(t) = theirs
                    && t != self.crc.value()
                {
                    let (http, store, key, id) = (self.http, self.store, self.key, self.id);
                    return Err(crc_mismatch(http, store, key, &[id], &self.crc, t).await);
                }
                Ok(true)
            }
            Ok(Patched::Retry(why, after)) => {
                self.recover(why, after).await?;
                Ok(false)
            }
        }
    }

    /// After a failed PATCH: give up after the configured retries, else
    /// wait (`after`, or a backoff) and take the offset the server has.
    async fn recover(&mut self, why: String, after: Option<std::time::Duration>) -> Result<()> {
        let http = self.http;
        if self.failures >= http.conn.retries {
            let e = ClientError::Transport(format!(
                "upload {} failed after {} attempt(s): {why}; \
                 run the same command again to resume",
                self.id,
                self.failures + 1
            ));
            return Err(match why.starts_with(super::http::CANNOT_CONNECT) {
                true => e.hint(http.unreachable_hint()),
                false => e,
            });
        }
        let d = after.unwrap_or_else(|| backoff(self.failures));
        if !http.conn.json {
            let offset = self.offset;
            self.pb.suspend(|| {
                eprintln!(
                    "imgapi: upload at {offset}: {why}; resuming in {:.1}s",
                    d.as_secs_f64()
                )
            });
        }
        tokio::time::sleep(d).await;
        self.failures += 1;
        self.retries += 1;
        let o = match head(http, self.id).await {
            Ok((o, _)) => o,
            Err(e) => return Err(self.forget_if_gone(e)),
        };
        self.crc = crc_to(self.file, 0, self.crc, o).await?;
        self.offset = o;
        self.pb.set_position(o);
        Ok(())
    }

    /// `e`, forgetting the saved session if the server no longer has it.
    fn forget_if_gone(&self, e: ClientError) -> ClientError {
        if let ClientError::Server {
            status: 404 | 410, ..
        } = e
        {
            self.store.remove(self.key);
        }
        e
    }
}

/// The file changed between the start and the end of its upload.
pub(crate) fn changed_while_uploaded(path: &Path) -> ClientError {
    ClientError::Verify(format!(
        "{} changed while it was uploaded (its size or modification time differ); \
         nothing was registered",
        path.display()
    ))
    .hint(
        "let whatever writes the file finish, then run the same command again: \
         the file is sent anew",
    )
}

/// Test hook: create `IMGAPI_CLIENT_TEST_PAUSE_FILE` and wait until it is
/// removed (the test restarts the server meanwhile).
pub(crate) async fn test_pause() {
    let Some(p) = std::env::var_os("IMGAPI_CLIENT_TEST_PAUSE_FILE") else {
        return;
    };
    let p = std::path::PathBuf::from(p);
    if std::fs::write(&p, b"paused").is_err() {
        return;
    }
    while p.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The finished upload `ids[0]` (its partials after it) holds the file:
/// the server's CRC of it must be `crc`, the CRC of the bytes sent (or,
/// from a server that gives none, its MD5 the file's MD5). On a mismatch
/// the upload is ended and its state entry forgotten. Returns the server's
/// view of the upload and its base64 MD5 (the image's `content_md5`).
pub(crate) async fn verify(
    http: &Http,
    store: &StateStore,
    key: &str,
    ids: &[&str],
    file: &Arc<std::fs::File>,
    size: u64,
    crc: &Crc64,
) -> Result<(UploadInfo, String)> {
    let id = ids[0];
    let (o, _, theirs) = head_crc(http, id).await?;
    let md5 = match theirs {
        Some(t) if o == size && t == crc.value() => None,
        Some(t) if o == size => return Err(crc_mismatch(http, store, key, ids, crc, t).await),
        _ => Some(hashes::md5_of(file, size).await?),
    };
    let info = check_server_digests(http, id, md5.as_deref()).await?;
    let content_md5 = info.content_md5.clone().unwrap_or_default();
    Ok((info, content_md5))
}

/// The server does not hold the bytes sent (its CRC of the first
/// `ours.size()` bytes is `theirs`): end the upload (`ids`: the upload,
/// then any partial uploads of it), forget its state, say so.
pub(crate) async fn crc_mismatch(
    http: &Http,
    store: &StateStore,
    key: &str,
    ids: &[&str],
    ours: &Crc64,
    theirs: u64,
) -> ClientError {
    for id in ids {
        let p = format!("/uploads/{id}");
        let _ = tus(http.small(Method::DELETE, &p, Default::default()))
            .send()
            .await;
    }
    store.remove(key);
    ClientError::Verify(format!(
        "upload {}: the server's CRC-64/NVME of the first {} bytes is {}, the file's is {}: \
         the server does not hold the bytes sent; the upload was ended and nothing was \
         registered (run the command again to send the file anew)",
        ids[0],
        ours.size(),
        crc64::to_base64(theirs),
        crc64::to_base64(ours.value())
    ))
}

/// The server's view of the finished upload (`GET /uploads/{id}/info`),
/// with its MD5 and SHA-1; its MD5 must be `md5` when given (against a
/// server that gives no CRC).
pub(crate) async fn check_server_digests(
    http: &Http,
    id: &str,
    md5: Option<&str>,
) -> Result<UploadInfo> {
    let path = format!("/uploads/{id}/info");
    let info: UploadInfo = http
        .json("upload info", || {
            http.small(Method::GET, &path, Default::default())
        })
        .await?;
    match (info.content_md5.as_deref(), md5) {
        (Some(theirs), None) if theirs.len() == 24 => {}
        (Some(theirs), Some(ours)) if theirs == ours => {}
        (theirs, ours) => {
            return Err(ClientError::Verify(format!(
                "upload {id}: the server's content_md5 {} differs from the file's {}",
                theirs.unwrap_or("(none)"),
                ours.unwrap_or("(unknown)")
            )));
        }
    }
    if info.sha1.as_deref().is_none_or(|s| s.len() != 40) {
        return Err(ClientError::Verify(format!(
            "upload {id}: the server gave no sha1 of the finished upload"
        )));
    }
    Ok(info)
}

/// Uploads of the file as it was before it changed (state entries of
/// other versions of it for the same server): end them and forget them.
pub(crate) async fn end_stale(http: &Http, store: &StateStore, e: &Entry, key: &str) {
    for (k, old) in store.stale(e, key) {
        if !http.conn.json {
            eprintln!(
                "imgapi: {} changed since its upload {} was interrupted (its size or \
                 modification time differ): that upload is ended and the file is sent \
                 anew from byte 0",
                e.file.path.display(),
                old.upload_id
            );
        }
        let parts = old.parallel.iter().flat_map(|p| p.parts.iter());
        for id in std::iter::once(&old.upload_id).chain(parts.map(|p| &p.id)) {
            let p = format!("/uploads/{id}");
            let _ = tus(http.small(Method::DELETE, &p, Default::default()))
                .send()
                .await;
        }
        store.remove(&k);
    }
}

/// Forgets the state entry of a finished upload.
pub fn forget(key: &str) {
    if let Ok(d) = state_dir()
        && let Ok(s) = StateStore::open(d)
    {
        s.remove(key);
    }
}
