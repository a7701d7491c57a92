//! Resumable uploads (phase one of the pipeline): tus 1.0 sessions kept in
//! SQLite. Each PATCH appends bytes while md5 and sha1 run on other threads;
//! the bytes are fsynced and the new offset and hasher state committed
//! together before the PATCH is acknowledged, so a crash loses at most the
//! unacknowledged chunk and resuming never re-reads stored bytes. Once the
//! last byte is acknowledged the upload is complete for every reader: a
//! completion a crash cut short is finished before anything reads it. The
//! bytes go through the store's session API (store/session.rs); this
//! module keeps the rows, the rules and the locks.

mod caps;
mod concat;
mod expiry;
mod locks;
mod session;
mod settle;

use std::sync::Arc;

use uuid::Uuid;

use crate::db::Db;
use crate::db::uploads::{Concat, MultipartState, Upload, UploadState};
use crate::store::namespace;
use crate::store::{SessionState, StoreName, Stores};

use caps::Streaming;
pub use expiry::reap_forever;
use locks::UploadLocks;
pub use session::Checksum;

/// Upload limits and settings.
#[derive(Debug, Clone)]
pub struct UploadsConfig {
    pub max_file_size: u64,
    pub max_bytes_in_flight_per_account: u64,
    pub expire_after_secs: u64,
    pub max_open_per_account: u64,
    pub max_streaming_per_account: usize,
    pub assets_allowed: Vec<Uuid>,
    /// The accounts' quotas, checked as each upload is created.
    pub quotas: crate::space::Quotas,
}

/// The upload service.
#[derive(Clone)]
pub struct Uploads {
    db: Db,
    stores: Stores,
    cfg: Arc<UploadsConfig>,
    locks: UploadLocks,
    streaming: Streaming,
    clock: crate::clock::Clock,
    /// The server's counters (bytes copied by concatenation).
    metrics: Arc<crate::metrics::Metrics>,
}

/// Where unfinished uploads to the assets store keep their bytes. Its
/// leading dot keeps it out of every `/assets/...` path.
pub const ASSETS_UPLOAD_AREA: &str = ".imgapi-uploads/";

/// Most uploads `GET /uploads` answers with at once (and its default).
pub const MAX_LIST: u32 = 1000;

impl Uploads {
    pub fn new(db: Db, stores: Stores, cfg: UploadsConfig, clock: crate::clock::Clock) -> Uploads {
        let max_streaming = cfg.max_streaming_per_account;
        Uploads {
            locks: UploadLocks::new(db.clone()),
            db,
            stores,
            cfg: Arc::new(cfg),
            streaming: Streaming::new(max_streaming),
            clock,
            metrics: Arc::default(),
        }
    }

    /// The same, counting in `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Uploads {
        Uploads { metrics, ..self }
    }

    pub fn max_file_size(&self) -> u64 {
        self.cfg.max_file_size
    }

    /// The store the finished object belongs in.
    fn target_store(&self, up: &Upload) -> StoreName {
        match up.path.as_deref().map(namespace::parse) {
            Some(Ok(sp)) => sp.store(),
            _ => StoreName::Manta,
        }
    }
}

/// Every byte acknowledged, the completion not recorded: a crash cut it
/// short. (A final upload still uploading is being filled from its
/// partials, or a crash cut that short: settling finishes it.)
fn is_stalled(up: &Upload) -> bool {
    up.state == UploadState::Uploading
        && (up.offset == up.length || matches!(up.concat, Concat::Final { .. }))
}

/// A stamp that changes when an object is rewritten: its size and ETag
/// (object stores) or mtime (directories).
pub fn stamp(m: &crate::store::ObjectMeta) -> String {
    match &m.etag {
        Some(e) => format!("{}@{e}", m.size),
        None => format!("{}@{}", m.size, m.mtime_ns),
    }
}

/// Bytes of an upload already sent as S3 parts (the first unsent byte).
pub fn bytes_in_parts(m: &MultipartState) -> u64 {
    m.bytes_in_parts()
}

/// The store session of an upload's row.
fn session_of(up: &Upload) -> SessionState {
    SessionState {
        staged: up.store,
        staged_key: up.data_key.clone(),
        offset: up.offset,
        multipart: up.multipart.clone(),
        window: None,
        pieces: up.pieces.clone(),
    }
}

/// Put a session's state back into the upload's row.
fn set_session(up: &mut Upload, s: SessionState) {
    up.store = s.staged;
    up.data_key = s.staged_key;
    up.offset = s.offset;
    up.multipart = s.multipart;
    up.pieces = s.pieces;
}

/// The staging file of an upload area whose first byte is at `from`.
fn staging_key(area: &str, from: u64) -> String {
    format!("{area}.{from}")
}
