//! Object storage for image files and icons: a key → bytes store with
//! atomic writes (temporary name, fsync, rename) and ranged streaming reads.
//! `fs` is a local directory; the S3 backend plugs in beside it.

pub mod error;
pub mod fs;
pub mod name;
pub mod namespace;
pub mod pieces;
pub mod s3;
pub mod session;

use std::ops::Range;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::digest::{Digests, StreamHasher};

pub use error::{Result, StoreError};

pub use fs::FsStore;
pub use name::StoreName;
pub use pieces::Pieces;
pub use s3::S3Store;
pub use session::{Appended, Completed, Move, MultipartState, Part, SessionState, SessionWriter};

/// A stream of object bytes.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Metadata of a stored object.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub size: u64,
    /// Last modification, RFC 3339.
    pub mtime: String,
    /// Last modification in nanoseconds (to detect rewrites).
    pub mtime_ns: u128,
    /// The object's ETag, where the backend has one (S3).
    pub etag: Option<String>,
}

/// A store backend. (An enum rather than a trait object: native async fns.)
#[derive(Clone, Debug)]
pub enum Store {
    Fs(FsStore),
    S3(S3Store),
}

/// What a backend can do, as sessions and moves ask it.
impl Store {
    /// True if `other` is the very same place (one directory, one bucket
    /// and prefix), so objects move between them without copying bytes.
    pub fn same_place(&self, other: &Store) -> bool {
        match (self, other) {
            (Store::Fs(a), Store::Fs(b)) => a.root() == b.root(),
            (Store::S3(a), Store::S3(b)) => a.same_place(b),
            _ => false,
        }
    }

    /// True if the store copies objects itself (no bytes through us).
    pub fn supports_server_side_copy(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// True if the store is a local directory (sessions stage here).
    pub fn is_local(&self) -> bool {
        matches!(self, Store::Fs(_))
    }

    fn fs(&self) -> Result<&FsStore> {
        match self {
            Store::Fs(s) => Ok(s),
            Store::S3(_) => Err(StoreError::internal("staged bytes need a directory store")),
        }
    }

    /// The store's multipart uploads, where it has them (sessions ask
    /// this, not which backend a store is).
    fn multipart(&self) -> Option<&S3Store> {
        match self {
            Store::S3(s) => Some(s),
            Store::Fs(_) => None,
        }
    }
}

/// A write in progress: invisible under its key until `commit`; dropped
/// uncommitted, it leaves nothing behind.
pub enum PendingWrite {
    Fs(fs::PendingFsWrite),
    S3(s3::PendingS3Write),
}

impl PendingWrite {
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        match self {
            PendingWrite::Fs(w) => w.write(chunk).await,
            PendingWrite::S3(w) => w.write(chunk).await,
        }
    }
    /// Make the bytes durable and visible under the key.
    pub async fn commit(self) -> Result<()> {
        match self {
            PendingWrite::Fs(w) => w.commit().await,
            PendingWrite::S3(w) => w.commit().await,
        }
    }
}

impl Store {
    /// Start an atomic write of `key`.
    pub async fn begin_write(&self, key: &str) -> Result<PendingWrite> {
        match self {
            Store::Fs(s) => Ok(PendingWrite::Fs(s.begin_write(key).await?)),
            Store::S3(s) => Ok(PendingWrite::S3(s.begin_write(key).await?)),
        }
    }

    /// Remove what killed writers of `key` left behind (crash recovery).
    pub async fn remove_stale(&self, key: &str) -> Result<()> {
        match self {
            Store::Fs(s) => s.remove_stale_tmp(key).await,
            Store::S3(_) => Ok(()), // unfinished multipart uploads are aborted on drop
        }
    }

    /// Size and mtime, or None if absent.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        match self {
            Store::Fs(s) => s.head(key).await,
            Store::S3(s) => s.head(key).await,
        }
    }

    /// Stream the object (or `range` of it).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        match self {
            Store::Fs(s) => s.get(key, range).await,
            Store::S3(s) => s.get(key, range).await,
        }
    }

    /// A URL a client may GET the object from directly for `ttl`, without
    /// other credentials (S3: presigned), answered with `content_type` if
    /// set; None if the backend cannot (a directory).
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
        content_type: Option<&str>,
    ) -> Result<Option<String>> {
        match self {
            Store::Fs(_) => Ok(None),
            Store::S3(s) => s.presigned_get(key, ttl, content_type).await.map(Some),
        }
    }

    /// Copy `from` to `to` inside this store (S3: server-side, only if
    /// `from` still has `etag`). Returns false if the backend cannot.
    pub async fn copy_within(&self, from: &str, to: &str, etag: Option<&str>) -> Result<bool> {
        match self {
            Store::Fs(_) => Ok(false),
            Store::S3(s) => s.copy(from, to, etag).await.map(|_| true),
        }
    }

    /// Make `to` an independent copy of `from` inside this store without
    /// the bytes passing through us: a reflink or hard link in a directory,
    /// a server-side copy in a bucket. The copy outlives any later delete
    /// or rewrite of `from`. A missing `from` is `CopySourceNotFound`.
    pub async fn clone_object(&self, from: &str, to: &str) -> Result<()> {
        match self {
            Store::Fs(s) => s.clone_file(from, to).await,
            Store::S3(s) => s.copy(from, to, None).await,
        }
    }

    /// Stream a sealed object (an image's file or icon, [`is_sealed_key`]),
    /// or `range` of it: a local store serves it from memory maps of the
    /// page cache; other stores, and other keys, as [`Store::get`].
    pub async fn get_sealed(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        match self {
            Store::Fs(s) => s.get_sealed(key, range).await,
            Store::S3(s) => s.get(key, range).await,
        }
    }

    /// Remove the object; absent is fine.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Store::Fs(s) => s.delete(key).await,
            Store::S3(s) => s.delete(key).await,
        }
    }

    /// Every object whose key starts with `prefix` (a key prefix, as in S3:
    /// `images/` lists that "directory"), with its metadata, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        match self {
            Store::Fs(s) => s.list(prefix).await,
            Store::S3(s) => s.list(prefix).await,
        }
    }
}

/// Stream `body` into `pending` while hashing it; more than `max` bytes is
/// `StoreError::TooLarge` (the pending write is dropped by the caller,
/// leaving nothing). The body's own errors come back as they are.
pub async fn ingest<S, E>(pending: &mut PendingWrite, body: S, max: u64) -> Result<Digests, E>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: From<StoreError>,
{
    digest_stream(Some(pending), body, max).await
}

/// The digests of a stream, read once (verification without a copy); more
/// than `max` bytes is `StoreError::TooLarge`.
pub async fn hash_stream<S, E>(body: S, max: u64) -> Result<Digests, E>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: From<StoreError>,
{
    digest_stream(None, body, max).await
}

async fn digest_stream<S, E>(
    mut pending: Option<&mut PendingWrite>,
    body: S,
    max: u64,
) -> Result<Digests, E>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: From<StoreError>,
{
    let mut hasher = StreamHasher::new().map_err(StoreError::internal)?;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if hasher.size() + chunk.len() as u64 > max {
            return Err(StoreError::TooLarge { max }.into());
        }
        hasher.update(&chunk).await.map_err(StoreError::internal)?;
        if let Some(p) = pending.as_deref_mut() {
            p.write(chunk).await?;
        }
    }
    Ok(hasher.finish().await.map_err(StoreError::internal)?)
}

/// Longest segment of a key or storage path, in bytes (NAME_MAX of common
/// file systems).
pub const MAX_SEGMENT_LEN: usize = 255;

/// Check a relative object key: non-empty segments of at most
/// `MAX_SEGMENT_LEN` bytes, no `.`/`..`, no control characters, no
/// backslashes, bounded length.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg.len() <= MAX_SEGMENT_LEN
                && seg != "."
                && seg != ".."
                && !seg.chars().any(|c| c.is_control() || c == '\\')
        })
}

/// The key of an image's file in the store named by `stor`. In the manta
/// store the service's own objects live under `imgapi/`, which no account
/// path can reach.
pub fn image_file_key(stor: impl AsRef<str>, uuid: &uuid::Uuid) -> String {
    format!("{}/file0", image_dir_key(stor, uuid))
}

/// The key of an image's icon in the store named by `stor`.
pub fn image_icon_key(stor: impl AsRef<str>, uuid: &uuid::Uuid) -> String {
    format!("{}/icon", image_dir_key(stor, uuid))
}

/// Whether `key` names a sealed object, one of an image's (its file or
/// icon, below [`image_dir_key`]): written once under a temporary name and
/// renamed into place, then never changed in place until it is deleted or
/// replaced by another rename. The local store maps such files to serve
/// them and refuses to append to, write into or cut them.
pub fn is_sealed_key(key: &str) -> bool {
    let rest = key.strip_prefix("imgapi/").unwrap_or(key);
    rest.starts_with("images/") && (key.ends_with("/file0") || key.ends_with("/icon"))
}

/// The key prefix ("directory") of an image's objects.
pub fn image_dir_key(stor: impl AsRef<str>, uuid: &uuid::Uuid) -> String {
    let u = uuid.to_string();
    let manta = stor.as_ref() == StoreName::Manta.as_str();
    let prefix = if manta { "imgapi/" } else { "" };
    format!("{prefix}images/{}/{u}", &u[..3])
}

/// The set of stores: `local` (stor=local image files), `manta`, `assets`,
/// and `staging`, the local directory that holds unfinished uploads when
/// `manta` is not a directory (with an `fs` manta it is the manta store).
/// With `sessions_in_store` (a cluster), uploads bound for an object store
/// keep their unfinished bytes there instead (`store::pieces`).
#[derive(Clone, Debug)]
pub struct Stores {
    pub local: Store,
    pub manta: Store,
    pub assets: Store,
    pub staging: Store,
    pub sessions_in_store: bool,
}

impl Stores {
    /// The stores `cfg` names: `manta` a directory or an S3 bucket,
    /// `staging` the manta directory or `<data_dir>/staging`, `local` and
    /// `assets` directories. `shared` (a cluster database): uploads into an
    /// object store keep their bytes there (`sessions_in_store`), and the
    /// directories every node must share are named in a warning.
    pub async fn open(cfg: &crate::config::Config, shared: bool) -> Result<Stores> {
        use crate::config::MantaConfig;
        let manta = match &cfg.storage.manta {
            MantaConfig::Fs { .. } => {
                let dir = cfg
                    .manta_fs_dir()
                    .ok_or_else(|| StoreError::internal("no manta dir"))?;
                Store::Fs(FsStore::new(dir)?)
            }
            MantaConfig::S3(s3) => Store::S3(S3Store::new(s3).await?),
        };
        let staging = match manta {
            Store::Fs(_) => manta.clone(),
            Store::S3(_) => Store::Fs(FsStore::new(cfg.data_dir.join("staging"))?),
        };
        if shared {
            if manta.is_local() {
                tracing::warn!(
                    dir = %cfg.manta_fs_dir().unwrap_or_default().display(),
                    "a cluster database with a directory manta store: every node must see the same directory (a shared filesystem)"
                );
            }
            tracing::warn!(
                dir = %cfg.assets_dir().display(),
                "a cluster database: storage.assets.dir must be the same shared directory on every node"
            );
        }
        Ok(Stores {
            local: Store::Fs(FsStore::new(cfg.data_dir.join("local"))?),
            manta,
            assets: Store::Fs(FsStore::new(cfg.assets_dir())?),
            staging,
            sessions_in_store: shared,
        })
    }

    /// Where image files and icons of the classic flow (AddImageFile,
    /// AddImageIcon) go: the manta store when it is an object store, or in
    /// a cluster (which must share it when it is a directory), else `local`.
    pub fn classic_stor(&self) -> StoreName {
        if self.sessions_in_store || !self.manta.is_local() {
            StoreName::Manta
        } else {
            StoreName::Local
        }
    }

    /// The store named `name`.
    pub fn get(&self, name: StoreName) -> &Store {
        match name {
            StoreName::Local => &self.local,
            StoreName::Manta => &self.manta,
            StoreName::Assets => &self.assets,
            StoreName::Staging => &self.staging,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(valid_key("images/abc/file0"));
        for bad in [
            "", "/abs", "a/../b", "a//b", "a/./b", "a/\u{7}b", "a\\b", "..",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
