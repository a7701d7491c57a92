//! Verified, resumable downloads of image files: bytes go to `OUT.partial`,
//! an interrupted transfer goes on with `Range` from what the partial file
//! holds, and the whole is checked against `Content-MD5` and the manifest's
//! sha1 and size before it is renamed to `OUT`. A mismatch deletes the
//! partial file.
//!
//! Received bytes are gathered into 1 MiB buffers, and each buffer goes,
//! without another copy, to three threads: MD5, SHA-1 (`StreamHasher`) and
//! the partial file's writer. Receiving waits for none of them unless one
//! falls a few buffers behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use imgapi_protocol::digest::StreamHasher;
use imgapi_protocol::tus as protocol;
use indicatif::ProgressBar;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::error::{ClientError, Result, local};
use super::http::{Attempt, Http, backoff, classify, refused};
use super::types::{Image, ImageFile};

/// Bytes read at a time when hashing what the partial file already holds,
/// and bytes gathered from the network before they are hashed and written
/// (one hand-off per MiB to each thread, not one per packet).
const READ: usize = 1 << 20;
/// Buffers the writer may fall behind before receiving waits for it.
const WRITE_QUEUE: usize = 8;

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

enum ToWriter {
    Data(Bytes),
    /// Answered once everything before it is written: the first write
    /// error since the last answer, if any.
    Flush(oneshot::Sender<std::io::Result<()>>),
}

/// Bytes written between two starts of the disk's writeback.
const WRITEBACK_EVERY: usize = 8 << 20;

/// The partial file's writer: a thread of its own that writes the very
/// buffers the hashing threads get (no copy into a buffer of its own: they
/// are 1 MiB each), so receiving does not wait for the disk. A write error
/// is kept, later bytes are dropped, and the next [`FileWriter::flush`]
/// returns it.
struct FileWriter {
    tx: mpsc::Sender<ToWriter>,
    file: Arc<std::fs::File>,
    path: PathBuf,
}

impl FileWriter {
    /// Appends to `file` (opened in append mode).
    fn start(file: std::fs::File, path: &Path) -> Result<FileWriter> {
        let file = Arc::new(file);
        let (tx, mut rx) = mpsc::channel::<ToWriter>(WRITE_QUEUE);
        let f = file.clone();
        std::thread::Builder::new()
            .name("imgapi-write".into())
            .spawn(move || {
                let mut failed: Option<std::io::Error> = None;
                let mut unflushed = 0;
                while let Some(m) = rx.blocking_recv() {
                    match m {
                        ToWriter::Data(b) if failed.is_none() => {
                            failed = (&*f).write_all(&b).err();
                            // The fsync before the rename then finds little
                            // left: the disk writes while bytes arrive.
                            unflushed += b.len();
                            if unflushed >= WRITEBACK_EVERY {
                                start_writeback(&f);
                                unflushed = 0;
                            }
                        }
                        ToWriter::Data(_) => {}
                        ToWriter::Flush(reply) => {
                            let _ = reply.send(failed.take().map_or(Ok(()), Err));
                        }
                    }
                }
            })
            .map_err(|e| local("write", e))?;
        Ok(FileWriter {
            tx,
            file,
            path: path.to_path_buf(),
        })
    }

    fn ended(&self) -> ClientError {
        local(self.path.display(), "the writing thread ended")
    }

    async fn write(&self, b: Bytes) -> Result<()> {
        self.tx
            .send(ToWriter::Data(b))
            .await
            .map_err(|_| self.ended())
    }

    /// Waits until every byte handed over is written.
    async fn flush(&self) -> Result<()> {
        let (t, r) = oneshot::channel();
        self.tx
            .send(ToWriter::Flush(t))
            .await
            .map_err(|_| self.ended())?;
        r.await
            .map_err(|_| self.ended())?
            .map_err(|e| local(self.path.display(), e))
    }

    /// Flushes, then runs `op` on the file on a blocking thread.
    async fn with_file(
        &self,
        op: impl FnOnce(&std::fs::File) -> std::io::Result<()> + Send + 'static,
    ) -> Result<()> {
        self.flush().await?;
        let f = self.file.clone();
        tokio::task::spawn_blocking(move || op(&f))
            .await
            .map_err(|e| local("write", e))?
            .map_err(|e| local(self.path.display(), e))
    }
}

/// Hash `b` and write it to the partial file.
async fn put(w: &FileWriter, feed: &mut StreamHasher, b: Bytes) -> Result<()> {
    feed.update(&b).await.map_err(|e| local("hash", e))?;
    w.write(b).await
}

/// Adds `chunk` to `gathered`; every full buffer (exactly [`READ`] bytes:
/// it is never grown) goes to the hashes and the file.
async fn gather(
    gathered: &mut BytesMut,
    chunk: &[u8],
    w: &FileWriter,
    feed: &mut StreamHasher,
) -> Result<()> {
    let mut rest = chunk;
    while !rest.is_empty() {
        let n = (READ - gathered.len()).min(rest.len());
        gathered.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if gathered.len() == READ {
            let full = std::mem::replace(gathered, BytesMut::with_capacity(READ));
            put(w, feed, full.freeze()).await?;
        }
    }
    Ok(())
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
    let img: Image = http
        .json("get image", || {
            http.small(Method::GET, &ipath, Default::default())
        })
        .await?;
    let Some(mf) = img.files.first().cloned() else {
        return Err(refused(
            404,
            "ResourceNotFound",
            format!("image {uuid} has no file"),
        ));
    };
    let partial = partial_path(out);
    let (have, feed) = resume_partial(&partial, mf.size).await?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .map_err(|e| local(partial.display(), e))?;
    f.set_len(have).map_err(|e| local(partial.display(), e))?;
    let mut run = Fetching {
        http,
        fpath: format!("/images/{uuid}/file"),
        size: mf.size,
        f: FileWriter::start(f, &partial)?,
        feed,
        gathered: BytesMut::with_capacity(READ),
        have,
        content_md5: None,
        received: Arc::new(AtomicU64::new(0)),
        pb: super::output::bar(mf.size, http.conn.json, "download"),
    };
    let resumed_from = have;
    if let Err(e) = run.all(uuid).await {
        run.pb.abandon();
        let _ = run.f.flush().await;
        drop(run.f);
        if matches!(e, ClientError::Verify(_)) {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e);
    }
    run.pb.finish_and_clear();
    run.f.with_file(|f| f.sync_all()).await?;
    drop(run.f);
    let d = run.feed.finish().await.map_err(|e| local("hash", e))?;
    let (size, md5, sha1) = (d.size, d.md5_base64(), d.sha1_hex());
    let bad = mismatches((size, &md5, &sha1), &mf, run.content_md5.as_deref());
    if !bad.is_empty() {
        let _ = std::fs::remove_file(&partial);
        return Err(ClientError::Verify(format!(
            "{} failed verification ({}); the partial file was deleted: run the same \
             command again to download it anew",
            out.display(),
            bad.join("; ")
        )));
    }
    std::fs::rename(&partial, out).map_err(|e| local(out.display(), e))?;
    Ok(json!({
        "uuid": uuid, "path": out, "size": size, "sha1": sha1, "content_md5": md5,
        "resumed_from": resumed_from, "bytes_received": run.received.load(Ordering::Relaxed),
    }))
}

/// The bytes of an earlier run's `.partial` file to resume from (none if
/// it is longer than the file, or cannot be read), and their hashes.
async fn resume_partial(partial: &Path, size: u64) -> Result<(u64, StreamHasher)> {
    let have = match std::fs::metadata(partial) {
        Ok(m) if m.len() <= size => m.len(),
        Ok(_) => {
            std::fs::remove_file(partial).map_err(|e| local(partial.display(), e))?;
            0
        }
        Err(_) => 0,
    };
    match hash_file(partial, have).await {
        Ok(h) if h.size() == have => Ok((have, h)),
        _ => Ok((0, hasher()?)),
    }
}

/// What of (size, md5, sha1) the manifest's file or the server's
/// Content-MD5 disagree with. (IMGAPI keeps a file's MD5 beside it and
/// states it only as `Content-MD5`, never in the manifest.)
fn mismatches(
    (size, md5, sha1): (u64, &str, &str),
    mf: &ImageFile,
    content_md5: Option<&str>,
) -> Vec<String> {
    let mut bad = vec![];
    if size != mf.size {
        bad.push(format!("size {size}, manifest says {}", mf.size));
    }
    if sha1 != mf.sha1 {
        bad.push(format!("sha1 {sha1}, manifest says {}", mf.sha1));
    }
    if let Some(w) = content_md5
        && w != md5
    {
        bad.push(format!("md5 {md5}, Content-MD5 says {w}"));
    }
    bad
}

/// A download in progress into the `.partial` file: what it has, hashed
/// and written as it arrives.
struct Fetching<'a> {
    http: &'a Http,
    fpath: String,
    /// The manifest's size of the file.
    size: u64,
    f: FileWriter,
    feed: StreamHasher,
    /// Received bytes not yet hashed and written (at most READ).
    gathered: BytesMut,
    have: u64,
    content_md5: Option<String>,
    received: Arc<AtomicU64>,
    pb: ProgressBar,
}

impl Fetching<'_> {
    /// GET (with `Range` from what it has) until it has the whole file,
    /// retrying a request that brought nothing up to the configured times.
    async fn all(&mut self, uuid: &str) -> Result<()> {
        let mut failures = 0u32;
        while self.have < self.size {
            self.pb.set_position(self.have);
            let start = self.have;
            let res = self.request(start).await;
            // What was received counts, whatever ended the request.
            if !self.gathered.is_empty() {
                let b = std::mem::replace(&mut self.gathered, BytesMut::with_capacity(READ));
                put(&self.f, &mut self.feed, b.freeze()).await?;
            }
            let why = match res? {
                Got::Restart => {
                    self.f.with_file(|f| f.set_len(0)).await?;
                    self.have = 0;
                    self.feed = hasher()?;
                    "the server ignored the range; starting over".into()
                }
                Got::Progress(why) => why,
            };
            self.f.flush().await?;
            if self.have >= self.size {
                break;
            }
            if self.have > start {
                failures = 0;
            } else {
                if failures >= self.http.conn.retries {
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
            if !why.is_empty() && !self.http.conn.json {
                let have = self.have;
                self.pb
                    .suspend(|| eprintln!("imgapi: download at {have}: {why}; resuming"));
            }
        }
        Ok(())
    }

    /// One GET from `start`: what ended it (`Progress` with why, empty
    /// when the body ended; `Restart` when the server did not answer the
    /// range). Only network waits are timed out: a write or a hash update
    /// is never cut in half, so the partial file and the hashes agree.
    async fn request(&mut self, start: u64) -> Result<Got> {
        let http = self.http;
        let mut rb = http.req(Method::GET, &self.fpath);
        if start > 0 {
            rb = rb.header("range", format!("bytes={start}-"));
        }
        let stall = http.conn.stall;
        let stalled = format!("no progress for {}s (stalled)", stall.as_secs());
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
        if let Some(m) = r
            .headers()
            .get(protocol::CONTENT_MD5)
            .and_then(|v| v.to_str().ok())
        {
            self.content_md5 = Some(m.to_string());
        }
        let mut body = r.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(stall, body.next()).await {
                Err(_) => return Ok(Got::Progress(stalled)),
                Ok(None) => return Ok(Got::Progress(String::new())),
                Ok(Some(Err(e))) => return Ok(Got::Progress(super::http::chain(&e))),
                Ok(Some(Ok(c))) => c,
            };
            if self.have + chunk.len() as u64 > self.size {
                return Err(ClientError::Verify(format!(
                    "the server sent more than the manifest's size {}",
                    self.size
                )));
            }
            gather(&mut self.gathered, &chunk, &self.f, &mut self.feed).await?;
            self.have += chunk.len() as u64;
            self.received
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.pb.set_position(self.have);
        }
    }
}

/// Start the disk's writeback of what `f` holds without waiting for it, so
/// that the fsync before the rename finds little left to write. A no-op
/// where `sync_file_range` does not exist.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open file descriptor; the call only schedules writeback.
    unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File) {}
