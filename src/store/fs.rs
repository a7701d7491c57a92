//! A store in a local directory. Writes go to a temporary sibling name in
//! 1 MiB batches, are fsynced, then renamed into place.

use std::io::{SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{ByteStream, ObjectMeta, valid_key};
use crate::error::{Error, Result};

const BATCH: usize = 1 << 20;

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
        let dir = dest
            .parent()
            .ok_or_else(|| Error::internal("key without parent"))?
            .to_path_buf();
        let tmp = dir.join(format!(
            ".{}.tmp.{}",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("obj"),
            uuid::Uuid::new_v4().simple()
        ));
        let tmp2 = tmp.clone();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp2)
        })
        .await
        .map_err(Error::internal)??;
        Ok(PendingFsWrite {
            file: Some(file),
            buf: BytesMut::with_capacity(BATCH),
            tmp,
            dest,
            done: false,
        })
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

fn meta_of(m: &std::fs::Metadata) -> ObjectMeta {
    let mtime = m
        .modified()
        .map(chrono::DateTime::<chrono::Utc>::from)
        .unwrap_or_else(|_| chrono::Utc::now());
    ObjectMeta {
        size: m.len(),
        mtime: mtime.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    }
}

/// A write to a temporary file that becomes the object on `commit`.
pub struct PendingFsWrite {
    file: Option<std::fs::File>,
    buf: BytesMut,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl PendingFsWrite {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::internal("write after failure"))?;
        let buf = std::mem::replace(&mut self.buf, BytesMut::with_capacity(BATCH));
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            file.write_all(&buf)?;
            Ok(file)
        })
        .await
        .map_err(Error::internal)??;
        self.file = Some(file);
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.flush().await?;
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::internal("commit after failure"))?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            file.sync_all()?;
            drop(file);
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
