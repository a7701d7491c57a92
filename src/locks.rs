//! Per-image locks: serialise file replacement, activation, registration
//! and deletion of one image across services. In process: striped async
//! mutexes. With a database several nodes share, each is backed by the
//! image's lease (`lease::Lease`, `image:<uuid>`), so the same steps on
//! two nodes run one after the other too.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::lease::Lease;

/// How long a step waits for the same image's step on another node.
const WAIT: Duration = Duration::from_secs(60);

/// A fixed set of async mutexes (an image maps to one by its uuid), and
/// the shared database's leases behind them.
#[derive(Clone)]
pub struct ImageLocks {
    local: Arc<Vec<tokio::sync::Mutex<()>>>,
    /// Set when several nodes may share the database.
    db: Option<Db>,
}

/// One image held; released on drop.
pub struct ImageGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _lease: Option<Lease>,
}

impl ImageLocks {
    pub fn new(db: &Db) -> ImageLocks {
        ImageLocks {
            local: Arc::new((0..64).map(|_| tokio::sync::Mutex::new(())).collect()),
            db: db.is_shared().then(|| db.clone()),
        }
    }

    /// The image's lock; with a shared database, also its lease (waiting
    /// up to a minute for another node's step: then 409 FileInUse).
    pub async fn lock(&self, uuid: Uuid) -> Result<ImageGuard<'_>> {
        let i = (uuid.as_u128() % self.local.len() as u128) as usize;
        let local = self.local[i].lock().await;
        let Some(db) = &self.db else {
            return Ok(ImageGuard {
                _local: local,
                _lease: None,
            });
        };
        match Lease::claim_within(db, format!("image:{uuid}"), WAIT).await? {
            Some(lease) => Ok(ImageGuard {
                _local: local,
                _lease: Some(lease),
            }),
            None => Err(Error::FileInUse(format!(
                "image {uuid} is being changed by another request; retry"
            ))),
        }
    }
}
