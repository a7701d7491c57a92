//! A store in a local directory. Writes go to a temporary sibling name in
//! 1 MiB batches, are fsynced, then renamed into place.

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{ByteStream, ObjectMeta, valid_key};
use crate::error::{Error, Result};

/// A directory-backed store.
#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<FsStore> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FsStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of `key`; refuses keys that could escape the root.
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            return Err(Error::internal(format!("invalid store key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    pub async fn begin_write(&self, key: &str) -> Result<PendingFsWrite> {
        let dest = self.path(key)?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("obj");
        let tmp_key = match key.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/.{name}.tmp.{}", uuid::Uuid::new_v4().simple()),
            None => format!(".{name}.tmp.{}", uuid::Uuid::new_v4().simple()),
        };
        let tmp = self.root.join(&tmp_key);
        let appender = self.open_append_new(&tmp_key).await?;
        Ok(PendingFsWrite {
            appender: Some(appender),
            tmp,
            dest,
            done: false,
        })
    }

    /// Remove temporary files a killed writer of `key` left behind.
    pub async fn remove_stale_tmp(&self, key: &str) -> Result<()> {
        let dest = self.path(key)?;
        let (Some(dir), Some(name)) = (
            dest.parent().map(Path::to_path_buf),
            dest.file_name().and_then(|n| n.to_str()),
        ) else {
            return Ok(());
        };
        let prefix = format!(".{name}.tmp.");
        tokio::task::spawn_blocking(move || {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&prefix))
                    {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        })
        .await
        .map_err(Error::internal)?;
        Ok(())
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let p = self.path(key)?;
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Ok(Some(meta_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let p = self.path(key)?;
        let mut f = match tokio::fs::File::open(&p).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found(format!("object {key} does not exist")));
            }
            Err(e) => return Err(e.into()),
        };
        let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match range {
            Some(r) => {
                use tokio::io::AsyncSeekExt;
                f.seek(SeekFrom::Start(r.start)).await?;
                Box::new(f.take(r.end - r.start))
            }
            None => Box::new(f),
        };
        Ok(Box::pin(ReaderStream::with_capacity(reader, 256 << 10)))
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            // Prune now-empty parent directories, never the root.
            let mut dir = p.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)??;
        Ok(())
    }
}

impl FsStore {
    /// Every file whose key starts with `prefix`, sorted by key (keys are
    /// relative to the root). The walk starts at the directory `prefix`
    /// names up to its last `/` and enters only directories that can hold
    /// such keys; symbolic links are not followed; names that are not UTF-8
    /// are skipped. Files or directories removed meanwhile are left out.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => self.path(dir)?,
            Some(_) => return Err(Error::internal(format!("invalid prefix {prefix:?}"))),
            None => self.root.clone(),
        };
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        let out = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            let mut out: Vec<(String, ObjectMeta)> = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if gone(&e) || e.kind() == std::io::ErrorKind::NotADirectory => {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for e in rd {
                    let e = e?;
                    let path = e.path();
                    let Some(key) = path.strip_prefix(&root).ok().and_then(|k| k.to_str()) else {
                        tracing::warn!(path = %path.display(), "skipping a name that is not UTF-8");
                        continue;
                    };
                    let ft = match e.file_type() {
                        Ok(ft) => ft,
                        Err(e) if gone(&e) => continue,
                        Err(e) => return Err(e),
                    };
                    if ft.is_dir() {
                        let as_dir = format!("{key}/");
                        if as_dir.starts_with(&prefix) || prefix.starts_with(&as_dir) {
                            stack.push(path);
                        }
                    } else if ft.is_file() && key.starts_with(&prefix) {
                        match e.metadata() {
                            Ok(m) => out.push((key.to_string(), meta_of(&m))),
                            Err(e) if gone(&e) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
        .map_err(Error::internal)??;
        Ok(out)
    }
}

fn meta_of(m: &std::fs::Metadata) -> ObjectMeta {
    let modified = m
        .modified()
        .unwrap_or_else(|_| std::time::SystemTime::now());
    let mtime = chrono::DateTime::<chrono::Utc>::from(modified);
    ObjectMeta {
        size: m.len(),
        mtime: mtime.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        mtime_ns: modified
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        etag: None,
    }
}

/// A write to a temporary file that becomes the object on `commit`. The
/// bytes go through an `FsAppender`, so writing overlaps with the caller's
/// reading and hashing.
pub struct PendingFsWrite {
    appender: Option<FsAppender>,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl PendingFsWrite {
    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.appender
            .as_mut()
            .ok_or_else(|| Error::internal("write after commit"))?
            .write(chunk)
            .await
    }

    pub async fn commit(mut self) -> Result<()> {
        let a = self
            .appender
            .take()
            .ok_or_else(|| Error::internal("commit after failure"))?;
        a.finish().await?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::rename(&tmp, &dest)?;
            if let Some(dir) = dest.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)??;
        self.done = true;
        Ok(())
    }
}

impl Drop for PendingFsWrite {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Appends a stream of chunks to a file at a given offset. Chunks are
/// gathered into batches, each written by a blocking-pool task while the
/// next batch is received; a blocking thread is held only while bytes are
/// written, never while the request body waits on the network (a stalled
/// client holds no thread). Writeback of what was written starts as it goes
/// so the final fsync is short.
pub struct FsAppender {
    file: std::sync::Arc<std::fs::File>,
    /// Where the next batch goes.
    pos: u64,
    /// Writeback started up to here.
    synced: u64,
    batch: Vec<bytes::Bytes>,
    batch_len: usize,
    /// The batch being written.
    inflight: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    start: u64,
}

/// Bytes gathered before a batch is handed to a blocking write.
const BATCH_BYTES: usize = 1 << 20;

/// Start writeback every this many bytes.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl FsStore {
    /// Open `key` for appending at `offset`: anything past `offset` (bytes of
    /// a request that was never acknowledged) is cut off first.
    pub async fn open_append(&self, key: &str, offset: u64) -> Result<FsAppender> {
        self.appender(key, offset, false).await
    }

    /// A new file (it must not exist yet) to append to from offset 0.
    async fn open_append_new(&self, key: &str) -> Result<FsAppender> {
        self.appender(key, 0, true).await
    }

    async fn appender(&self, key: &str, offset: u64, new: bool) -> Result<FsAppender> {
        let path = self.path(key)?;
        let p = path.clone();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let existed = p.exists();
            let mut o = std::fs::OpenOptions::new();
            o.write(true);
            if new {
                o.create_new(true);
            } else {
                o.create(true).truncate(false);
            }
            let mut f = o.open(&p)?;
            if !existed && let Some(dir) = p.parent() {
                // The new name is durable before any row names it.
                std::fs::File::open(dir)?.sync_all()?;
            }
            let len = f.metadata()?.len();
            if len < offset {
                return Err(std::io::Error::other(format!(
                    "upload data is {len} bytes, shorter than its offset {offset}"
                )));
            }
            if len > offset {
                f.set_len(offset)?;
            }
            use std::io::Seek;
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await
        .map_err(Error::internal)??;
        Ok(FsAppender {
            file: std::sync::Arc::new(file),
            pos: offset,
            synced: offset,
            batch: Vec::new(),
            batch_len: 0,
            inflight: None,
            start: offset,
        })
    }

    /// Cut the file at `key` back to `len` bytes (discarding a refused chunk).
    pub async fn truncate(&self, key: &str, len: u64) -> Result<()> {
        let p = self.path(key)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let f = std::fs::OpenOptions::new().write(true).open(&p)?;
            f.set_len(len)?;
            f.sync_all()
        })
        .await
        .map_err(Error::internal)??;
        Ok(())
    }

    /// Atomically move `from` to `to` (same store), replacing `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (a, b) = (self.path(from)?, self.path(to)?);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = b.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&a, &b)?;
            if let Some(dir) = b.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)??;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open file descriptor; the call only schedules writeback.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File, _offset: u64, _len: u64) {}

impl FsAppender {
    /// Add a chunk; a full batch is handed to a blocking write once the
    /// previous one is done. An error is the writer's own (e.g. out of space).
    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.batch_len += chunk.len();
        self.batch.push(chunk);
        if self.batch_len >= BATCH_BYTES {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Wait for the batch in flight, then start writing the gathered one.
    async fn write_batch(&mut self) -> Result<()> {
        self.wait().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let bufs = std::mem::take(&mut self.batch);
        let at = self.pos;
        self.pos += std::mem::take(&mut self.batch_len) as u64;
        let writeback = (self.pos - self.synced >= WRITEBACK_EVERY).then(|| {
            let r = (self.synced, self.pos - self.synced);
            self.synced = self.pos;
            r
        });
        let file = self.file.clone();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut off = at;
            for b in &bufs {
                file.write_all_at(b, off)?;
                off += b.len() as u64;
            }
            if let Some((from, len)) = writeback {
                start_writeback(&file, from, len);
            }
            Ok(())
        }));
        Ok(())
    }

    /// Wait for the batch in flight, if any.
    async fn wait(&mut self) -> Result<()> {
        if let Some(h) = self.inflight.take() {
            h.await.map_err(Error::internal)??;
        }
        Ok(())
    }

    /// Write what is left and make everything written durable.
    pub async fn finish(mut self) -> Result<()> {
        self.write_batch().await?;
        self.wait().await?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(Error::internal)??;
        Ok(())
    }

    /// Stop and cut the file back to where this append started. Returns the
    /// writer's own error, if it failed (e.g. out of space).
    pub async fn abort(mut self) -> Result<Option<Error>> {
        let writer_error = self.wait().await.err();
        let (file, start) = (self.file.clone(), self.start);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            file.set_len(start)?;
            file.sync_all()
        })
        .await
        .map_err(Error::internal)??;
        Ok(writer_error)
    }
}
