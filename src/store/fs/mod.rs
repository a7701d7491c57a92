//! A store in a local directory. Writes go to a temporary sibling name in
//! 1 MiB batches, are fsynced, then renamed into place.
//!
//! Keys never leave the root: every directory between the root and an
//! object must be a real directory (a symbolic link there refuses the key),
//! objects are opened with `O_NOFOLLOW`, and only regular files are
//! objects. Files the store creates are 0600, directories 0700. A key that
//! cannot be a file here (a component is a file or a directory or a link,
//! or a name is too long) is a 4xx, never a 500, and messages never name
//! keys (they are logged).

use std::io::SeekFrom;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::error::{Result, StoreError};
use super::{ByteStream, ObjectMeta, is_sealed_key, valid_key};

pub mod mapped;

/// Mode of the files the store creates.
const FILE_MODE: u32 = 0o600;
/// Mode of the directories the store creates.
const DIR_MODE: u32 = 0o700;

/// The error of a key that cannot name a file in this store.
fn unusable_path(key: &str, why: &dyn std::fmt::Display) -> StoreError {
    StoreError::unusable_path(key, why.to_string())
}

/// Sealed files are never written in place (the invariant `mapped` rests
/// on): appending to one, writing into one or cutting one is refused.
fn refuse_sealed(key: &str) -> Result<()> {
    if is_sealed_key(key) {
        return Err(StoreError::internal(format!(
            "refused to write in place into the sealed file {key:?}"
        )));
    }
    Ok(())
}

fn object_not_found(key: &str) -> StoreError {
    StoreError::not_found(key)
}

/// An I/O error that says the path cannot be a file here (rather than a
/// failure of the store).
fn is_path_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::IsADirectory | K::NotADirectory | K::InvalidFilename | K::DirectoryNotEmpty
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EISDIR | libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP | libc::ENOTEMPTY)
    )
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// The file path of `key` under `root`, checking every directory on the
/// way: each existing one must be a directory and not a symbolic link
/// (ELOOP otherwise, ENOTDIR for a file). With `create`, missing
/// directories are created (0700). Blocking.
fn checked_path(root: &Path, key: &str, create: bool) -> std::io::Result<PathBuf> {
    let mut p = root.to_path_buf();
    let mut segs: Vec<&str> = key.split('/').collect();
    let last = segs.pop().unwrap_or_default();
    for d in segs {
        p.push(d);
        let mut m = std::fs::symlink_metadata(&p);
        if create && m.as_ref().is_err_and(not_found) {
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(&p) {
                Ok(()) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    m = std::fs::symlink_metadata(&p);
                }
                Err(e) => return Err(e),
            }
        }
        let m = m?;
        if m.file_type().is_symlink() {
            return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
        }
        if !m.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
    }
    p.push(last);
    Ok(p)
}

/// Open options that never follow a symbolic link at the last component
/// (nor block on a FIFO).
fn open_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .mode(FILE_MODE);
    o
}

/// The prefix of the temporary names of writes of `name`, short enough that
/// the temporary name fits in 255 bytes whatever `name` is.
fn tmp_prefix(name: &str) -> String {
    if name.len() <= 200 {
        format!(".{name}.tmp.")
    } else {
        use sha1::Digest;
        let digest = hex::encode(sha1::Sha1::digest(name.as_bytes()));
        let mut cut = 160;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(".{}~{}.tmp.", &name[..cut], &digest[..16])
    }
}

/// Map a blocking task's I/O error of `key`: path errors are 4xx.
fn map_io(key: &str, e: std::io::Error) -> StoreError {
    if is_path_error(&e) {
        unusable_path(key, &e)
    } else {
        StoreError::Io(e)
    }
}

/// A directory-backed store.
#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<FsStore> {
        let root = root.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&root)?;
        Ok(FsStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file path of `key`; refuses keys that could escape the root
    /// (4xx: keys of user paths end up here). Directories on the way are
    /// not checked: the operations below use `checked_path`.
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            return Err(unusable_path(key, &"invalid store key"));
        }
        Ok(self.root.join(key))
    }

    pub async fn begin_write(&self, key: &str) -> Result<PendingFsWrite> {
        let dest = self.path(key)?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("obj");
        let tmp_name = format!("{}{}", tmp_prefix(name), uuid::Uuid::new_v4().simple());
        let tmp_key = match key.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{tmp_name}"),
            None => tmp_name,
        };
        let tmp = self.root.join(&tmp_key);
        let appender = self.open_append_new(&tmp_key).await?;
        Ok(PendingFsWrite {
            appender: Some(appender),
            tmp,
            dest,
            root: self.root.clone(),
            key: key.to_string(),
            done: false,
        })
    }

    /// Remove temporary files a killed writer of `key` left behind.
    pub async fn remove_stale_tmp(&self, key: &str) -> Result<()> {
        let dest = self.path(key)?;
        let Some(name) = dest.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let prefix = tmp_prefix(name);
        let (root, key) = (self.root.clone(), key.to_string());
        tokio::task::spawn_blocking(move || {
            let Some(dir) = checked_path(&root, &key, false)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
            else {
                return;
            };
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
        .map_err(StoreError::internal)?;
        Ok(())
    }

    /// Size and mtime of the regular file at `key`; None if there is none
    /// (absent, a directory, a link, or a path that cannot be a file).
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        let m = tokio::task::spawn_blocking(move || {
            checked_path(&root, &k, false).and_then(std::fs::symlink_metadata)
        })
        .await
        .map_err(StoreError::internal)?;
        match m {
            Ok(m) if m.is_file() => Ok(Some(meta_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) || is_path_error(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The regular file at `key`, opened for reading, with its size;
    /// anything else is 404 with a message that does not name the key.
    async fn open_object(&self, key: &str) -> Result<(std::fs::File, u64)> {
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        let f = tokio::task::spawn_blocking(
            move || -> std::io::Result<Option<(std::fs::File, u64)>> {
                let p = checked_path(&root, &k, false)?;
                let f = open_options().read(true).open(p)?;
                let m = f.metadata()?;
                Ok(m.is_file().then_some((f, m.len())))
            },
        )
        .await
        .map_err(StoreError::internal)?;
        match f {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(object_not_found(key)),
            Err(e) if not_found(&e) || is_path_error(&e) => Err(object_not_found(key)),
            Err(e) => Err(e.into()),
        }
    }

    /// Stream the regular file at `key` (or `range` of it); anything else is
    /// 404 with a message that does not name the key.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let mut f = tokio::fs::File::from_std(self.open_object(key).await?.0);
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

    /// As [`FsStore::get`], for a sealed file (an image's file or icon, see
    /// [`is_sealed_key`]): served from memory maps of the page cache
    /// (`mapped`). Other keys are read as by `get`.
    pub async fn get_sealed(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        if !is_sealed_key(key) {
            return self.get(key, range).await;
        }
        let (f, len) = self.open_object(key).await?;
        Ok(mapped::stream(f, len, range))
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let p = match checked_path(&root, &k, false) {
                Ok(p) => p,
                // Nothing of this store can be there.
                Err(e) if not_found(&e) || is_path_error(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
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
        .map_err(StoreError::internal)??;
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
        let start_key = match prefix.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => {
                self.path(dir)?;
                Some(dir.to_string())
            }
            Some(_) => return Err(StoreError::internal(format!("invalid prefix {prefix:?}"))),
            None => None,
        };
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        let out = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            let mut out: Vec<(String, ObjectMeta)> = Vec::new();
            let start = match start_key {
                None => root.clone(),
                // The start directory itself must not be (below) a link.
                Some(k) => match checked_path(&root, &format!("{k}/x"), false) {
                    Ok(p) => match p.parent() {
                        Some(d) => d.to_path_buf(),
                        None => return Ok(out),
                    },
                    Err(e) if gone(&e) || is_path_error(&e) => return Ok(out),
                    Err(e) => return Err(e),
                },
            };
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
        .map_err(StoreError::internal)??;
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
    root: PathBuf,
    key: String,
    done: bool,
}

impl PendingFsWrite {
    pub async fn write(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.appender
            .as_mut()
            .ok_or_else(|| StoreError::internal("write after commit"))?
            .write(chunk)
            .await
    }

    pub async fn commit(mut self) -> Result<()> {
        let a = self
            .appender
            .take()
            .ok_or_else(|| StoreError::internal("commit after failure"))?;
        a.finish().await?;
        let (tmp, root, key) = (self.tmp.clone(), self.root.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // The directories on the way are checked again: the rename
            // must land inside the root.
            let dest = checked_path(&root, &key, false)?;
            std::fs::rename(&tmp, &dest)?;
            if let Some(dir) = dest.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(StoreError::internal)?
        .map_err(|e| map_io(&self.key, e))?;
        debug_assert!(self.dest.ends_with(&self.key));
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
    /// Cut the file back to `start` on abort (false: positional writes into
    /// a file others write other ranges of).
    cut_back: bool,
}

/// Bytes gathered before a batch is handed to a blocking write.
const BATCH_BYTES: usize = 1 << 20;

/// Start writeback every this many bytes.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl FsStore {
    /// Open `key` for appending at `offset`: anything past `offset` (bytes of
    /// a request that was never acknowledged) is cut off first.
    pub async fn open_append(&self, key: &str, offset: u64) -> Result<FsAppender> {
        refuse_sealed(key)?;
        self.appender(key, offset, false).await
    }

    /// Write into the existing file at `key` from `pos` on, leaving the
    /// rest of it as it is (positional writes: other writers own other
    /// byte ranges of it, and a gap before `pos` reads as zeros). Nothing
    /// is cut off, on open or on abort.
    pub async fn open_at(&self, key: &str, pos: u64) -> Result<FsAppender> {
        refuse_sealed(key)?;
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let p = checked_path(&root, &k, false)?;
            let f = open_options().write(true).open(&p)?;
            if !f.metadata()?.is_file() {
                return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
            }
            Ok(f)
        })
        .await
        .map_err(StoreError::internal)?
        .map_err(|e| map_io(key, e))?;
        Ok(FsAppender::new(file, pos, false))
    }

    /// A new file (it must not exist yet) to append to from offset 0.
    async fn open_append_new(&self, key: &str) -> Result<FsAppender> {
        self.appender(key, 0, true).await
    }

    async fn appender(&self, key: &str, offset: u64, new: bool) -> Result<FsAppender> {
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let p = checked_path(&root, &k, true)?;
            let existed = std::fs::symlink_metadata(&p).is_ok();
            let mut o = open_options();
            o.write(true);
            if new {
                o.create_new(true);
            } else {
                o.create(true).truncate(false);
            }
            let mut f = o.open(&p)?;
            if !f.metadata()?.is_file() {
                return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
            }
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
        .map_err(StoreError::internal)?
        .map_err(|e| map_io(key, e))?;
        Ok(FsAppender::new(file, offset, true))
    }

    /// Cut the file at `key` back to `len` bytes (discarding a refused chunk).
    pub async fn truncate(&self, key: &str, len: u64) -> Result<()> {
        refuse_sealed(key)?;
        self.path(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let p = checked_path(&root, &k, false)?;
            let f = open_options().write(true).open(&p)?;
            f.set_len(len)?;
            f.sync_all()
        })
        .await
        .map_err(StoreError::internal)?
        .map_err(|e| map_io(key, e))?;
        Ok(())
    }

    /// Make `to` a copy of the regular file at `from` without reading its
    /// bytes: a reflink (FICLONE: a file of its own that shares the
    /// extents copy-on-write) where the file system has them, else a hard
    /// link. Either outlives a delete of `from`; a hard link is safe here
    /// because no object of the store is ever written in place (every
    /// write is a new file renamed over its key, so a later write of
    /// `from` leaves the linked bytes as they are). `to` must not exist.
    /// A missing `from` is `CopySourceNotFound`.
    pub async fn clone_file(&self, from: &str, to: &str) -> Result<()> {
        self.path(from)?;
        self.path(to)?;
        let (root, f, t) = (self.root.clone(), from.to_string(), to.to_string());
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let a = checked_path(&root, &f, false)?;
            let b = checked_path(&root, &t, true)?;
            let src = open_options().read(true).open(&a)?;
            if !src.metadata()?.is_file() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            if !reflink(&src, &b)? {
                std::fs::hard_link(&a, &b)?;
            }
            if let Some(dir) = b.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(StoreError::internal)?;
        match r {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Err(StoreError::CopySourceNotFound {
                key: from.to_string(),
            }),
            Err(e) => Err(map_io(to, e)),
        }
    }

    /// Atomically move `from` to `to` (same store), replacing `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.path(from)?;
        self.path(to)?;
        let (root, f, t) = (self.root.clone(), from.to_string(), to.to_string());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let a = checked_path(&root, &f, false)?;
            let b = checked_path(&root, &t, true)?;
            std::fs::rename(&a, &b)?;
            if let Some(dir) = b.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(StoreError::internal)?
        .map_err(|e| map_io(to, e))?;
        Ok(())
    }
}

/// Clone `src` into the new file `dest` (FICLONE) and fsync it; false,
/// leaving nothing at `dest`, where the file system cannot. Blocking.
#[cfg(target_os = "linux")]
fn reflink(src: &std::fs::File, dest: &Path) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let out = open_options().write(true).create_new(true).open(dest)?;
    // SAFETY: FICLONE takes the source descriptor as its argument; both
    // descriptors are open for the duration of the call.
    let r = unsafe { libc::ioctl(out.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if r == 0 {
        out.sync_all()?;
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    drop(out);
    std::fs::remove_file(dest)?;
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS) => {
            Ok(false)
        }
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn reflink(_src: &std::fs::File, _dest: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Start the disk's writeback of `len` bytes of `f` from `offset` (`len`
/// 0: to the end) without waiting for it, so that a later fsync finds
/// little left to write: writing and flushing overlap instead of taking
/// turns. A no-op where `sync_file_range` does not exist.
#[cfg(target_os = "linux")]
pub fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
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
pub fn start_writeback(_f: &std::fs::File, _offset: u64, _len: u64) {}

impl FsAppender {
    /// Writes into `file` from `pos` on; `cut_back`: an abort cuts the file
    /// back to `pos`.
    fn new(file: std::fs::File, pos: u64, cut_back: bool) -> FsAppender {
        FsAppender {
            file: std::sync::Arc::new(file),
            pos,
            synced: pos,
            batch: Vec::new(),
            batch_len: 0,
            inflight: None,
            start: pos,
            cut_back,
        }
    }

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
            h.await.map_err(StoreError::internal)??;
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
            .map_err(StoreError::internal)??;
        Ok(())
    }

    /// Stop and cut the file back to where this append started. Returns the
    /// writer's own error, if it failed (e.g. out of space).
    pub async fn abort(mut self) -> Result<Option<StoreError>> {
        let writer_error = self.wait().await.err();
        if !self.cut_back {
            // Bytes past the acknowledged offset are written over later.
            return Ok(writer_error);
        }
        let (file, start) = (self.file.clone(), self.start);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            file.set_len(start)?;
            file.sync_all()
        })
        .await
        .map_err(StoreError::internal)??;
        Ok(writer_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    async fn put(s: &FsStore, key: &str, data: &'static [u8]) -> Result<()> {
        let mut w = s.begin_write(key).await?;
        w.write(bytes::Bytes::from_static(data)).await?;
        w.commit().await
    }

    /// The invariant mapped reads rest on: nothing writes a sealed file
    /// (an image's file or icon) in place. Each way the store has to write
    /// into or cut an existing file refuses it; the file keeps its bytes,
    /// and a mapped read of it matches a plain read.
    #[tokio::test]
    async fn sealed_files_are_never_written_in_place() {
        use futures_util::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_path_buf()).unwrap();
        let uuid = uuid::Uuid::new_v4();
        for key in [
            crate::store::image_file_key("local", &uuid),
            crate::store::image_file_key("manta", &uuid),
            crate::store::image_icon_key("manta", &uuid),
        ] {
            assert!(is_sealed_key(&key), "{key}");
            put(&s, &key, b"sealed bytes").await.unwrap();
            assert!(s.open_append(&key, 3).await.is_err(), "{key}");
            assert!(s.open_at(&key, 3).await.is_err(), "{key}");
            assert!(s.truncate(&key, 3).await.is_err(), "{key}");
            let read = |b: ByteStream| async move {
                let chunks: Vec<bytes::Bytes> = b.try_collect().await?;
                Ok::<_, std::io::Error>(chunks.concat())
            };
            let mapped = read(s.get_sealed(&key, None).await.unwrap()).await.unwrap();
            let plain = read(s.get(&key, None).await.unwrap()).await.unwrap();
            assert!(mapped == plain && plain == b"sealed bytes"[..], "{key}");
            let part = read(s.get_sealed(&key, Some(2..8)).await.unwrap())
                .await
                .unwrap();
            assert_eq!(part, b"aled b"[..]);
        }
        // Upload data and temporary names are not sealed.
        for key in [
            "uploads/ab/x.0",
            "imgapi/images/abc/x/.file0.tmp1",
            "a/stor/file0",
        ] {
            assert!(!is_sealed_key(key), "{key}");
        }
    }

    #[tokio::test]
    async fn links_are_not_followed_and_modes_are_private() {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("f"), b"outside").unwrap();
        let s = FsStore::new(root.path().join("store")).unwrap();
        std::fs::create_dir_all(s.root().join("a")).unwrap();
        std::os::unix::fs::symlink(out.path().join("f"), s.root().join("a/link")).unwrap();
        std::os::unix::fs::symlink(out.path(), s.root().join("a/dir")).unwrap();
        for key in ["a/link", "a/dir/f"] {
            assert!(s.head(key).await.unwrap().is_none(), "{key}");
            assert!(matches!(
                s.get(key, None).await,
                Err(StoreError::NotFound { .. })
            ));
        }
        for key in ["a/dir/new", "a/dir/sub/new"] {
            assert!(matches!(
                put(&s, key, b"x").await,
                Err(StoreError::UnusablePath { .. })
            ));
        }
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
        // Deleting through a link removes nothing outside.
        s.delete("a/dir/f").await.unwrap();
        assert!(out.path().join("f").exists());

        put(&s, "b/c/obj", b"data").await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.root().join("b/c/obj")), 0o600);
        assert_eq!(mode(&s.root().join("b/c")), 0o700);
        assert_eq!(mode(&s.root().join("b")), 0o700);
    }

    #[tokio::test]
    async fn unusable_paths_are_4xx_and_long_names_work() {
        let root = tempfile::tempdir().unwrap();
        let s = FsStore::new(root.path()).unwrap();
        put(&s, "f", b"file").await.unwrap();
        std::fs::create_dir_all(s.root().join("d")).unwrap();
        assert!(s.head("f/below").await.unwrap().is_none());
        assert!(s.head("d").await.unwrap().is_none());
        assert!(matches!(
            s.get("d", None).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.get("f/below", None).await,
            Err(StoreError::NotFound { .. })
        ));
        for key in ["f/below", "d"] {
            assert!(
                matches!(
                    put(&s, key, b"x").await,
                    Err(StoreError::UnusablePath { .. })
                ),
                "{key}"
            );
        }
        assert!(matches!(
            s.open_append("d", 0).await,
            Err(StoreError::UnusablePath { .. })
        ));
        assert!(matches!(
            s.rename("f", "d").await,
            Err(StoreError::UnusablePath { .. })
        ));
        // A 255-byte name: its temporary name still fits.
        let long = "é".repeat(127);
        put(&s, &format!("x/{long}"), b"long").await.unwrap();
        assert_eq!(s.head(&format!("x/{long}")).await.unwrap().unwrap().size, 4);
        s.remove_stale_tmp(&format!("x/{long}")).await.unwrap();
        assert!(tmp_prefix(&long).len() + 32 <= 255);
    }
}
