//! The store's own errors: what went wrong with a key or a backend, with
//! the cause kept as `source`. The services decide what a failure means;
//! `crate::error` maps these to IMGAPI's wire errors in one place.

/// A boxed cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The message of a key that cannot name an object here. It never names
/// the key (keys go to the log only).
pub const UNUSABLE_PATH: &str = "the storage path cannot be used: a component of it is a file, a directory or a link, or a name is too long";

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key cannot name an object in this store (a component is a file,
    /// a directory or a link, a name is too long, an invalid key).
    #[error("{UNUSABLE_PATH}")]
    UnusablePath {
        key: String,
        #[source]
        source: Cause,
    },
    /// There is no object at the key (or not a regular file).
    #[error("the stored object does not exist")]
    NotFound { key: String },
    /// The source of a copy does not exist.
    #[error("the source object does not exist")]
    CopySourceNotFound { key: String },
    /// The backend cannot be reached or fails (S3 5xx, timeouts).
    #[error("the storage backend is unavailable")]
    Unavailable(#[source] Cause),
    /// The stream was longer than the caller allows.
    #[error("file size exceeds the maximum allowed size, {max} bytes")]
    TooLarge { max: u64 },
    /// The backend no longer knows a resumable write's server-side state
    /// (S3 `NoSuchUpload`: the multipart upload was aborted or lost); the
    /// session can be restarted from its staged bytes (`restart_session`).
    #[error("the store lost the resumable write")]
    SessionLost,
    /// Every slot for bytes on their way to the store is taken (a memory
    /// bound); the client may retry shortly.
    #[error("the server is sending as many uploads to the object store as it can; retry shortly")]
    Busy,
    /// A file-system error (ENOSPC is the store being full).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Anything unexpected.
    #[error("store: {0}")]
    Internal(#[source] Cause),
}

impl StoreError {
    pub fn internal(e: impl Into<Cause>) -> Self {
        StoreError::Internal(e.into())
    }

    /// The error of a key that cannot name a file in this store; the key
    /// goes to the log only.
    pub fn unusable_path(key: &str, why: impl Into<Cause>) -> Self {
        let source = why.into();
        tracing::debug!(key, error = %source, "storage path cannot be used");
        StoreError::UnusablePath {
            key: key.to_string(),
            source,
        }
    }

    /// A stored object that is not there (or is not a regular file).
    pub fn not_found(key: &str) -> Self {
        tracing::debug!(key, "stored object not found");
        StoreError::NotFound {
            key: key.to_string(),
        }
    }

    /// True if the key can never name an object here.
    pub fn is_unusable_path(&self) -> bool {
        matches!(self, StoreError::UnusablePath { .. })
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::internal(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
