//! Who may change an upload right now: a lease with a fencing token in the
//! database (`db::Meta::lease_*`), so that a request on any node excludes
//! every other, and a holder that froze or lost its lease can commit
//! nothing (its commits check the fence in their own transaction). A
//! process-local lock in front of it refuses a second request of the same
//! process without a database round trip, and lets a reader that finds a
//! completion in progress wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::Uploads;
use crate::db::{Db, Meta};
use crate::error::{Error, Result};
use crate::lease::Lease;

/// The lease name of an upload.
pub(super) fn lease_name(id: Uuid) -> String {
    format!("upload:{id}")
}

/// One async lock per upload in use in this process, and the database's
/// lease behind it.
#[derive(Clone)]
pub(super) struct UploadLocks {
    local: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
    db: Db,
}

/// Holds an upload busy; released on drop (the lease is given back by a
/// task, or expires).
pub(super) struct BusyGuard {
    lease: Lease,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    locks: UploadLocks,
    id: Uuid,
}

impl BusyGuard {
    /// The fencing token of this holder: a commit that must not outlive the
    /// lease checks it with [`check_fence`] in its own transaction.
    pub(super) fn fence(&self) -> i64 {
        self.lease.fence()
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut m) = self.locks.local.lock()
            && m.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1)
        {
            m.remove(&self.id);
        }
    }
}

/// In a write transaction: refuse (423) if `fence` no longer holds the
/// upload's lease, so a holder that was taken over writes nothing.
pub(super) fn check_fence(c: &dyn Meta, id: Uuid, fence: i64) -> Result<()> {
    if c.lease_holds(&lease_name(id), fence)? {
        Ok(())
    } else {
        tracing::warn!(upload.id = %id, fence, "lost the upload's lease: nothing committed");
        Err(Error::UploadLocked(id))
    }
}

impl UploadLocks {
    pub(super) fn new(db: Db) -> UploadLocks {
        UploadLocks {
            local: Arc::default(),
            db,
        }
    }

    fn entry(&self, id: Uuid) -> Result<Arc<tokio::sync::Mutex<()>>> {
        let mut m = self.local.lock().map_err(|_| Error::internal("poisoned"))?;
        Ok(m.entry(id).or_default().clone())
    }

    fn guard(&self, id: Uuid, g: tokio::sync::OwnedMutexGuard<()>, lease: Lease) -> BusyGuard {
        BusyGuard {
            lease,
            guard: Some(g),
            locks: self.clone(),
            id,
        }
    }

    /// The upload's lock, or 423 if a request (of any node) holds it.
    pub(super) async fn try_lock(&self, id: Uuid) -> Result<BusyGuard> {
        let g = self
            .entry(id)?
            .try_lock_owned()
            .map_err(|_| Error::UploadLocked(id))?;
        match Lease::claim(&self.db, lease_name(id)).await? {
            Some(lease) => Ok(self.guard(id, g, lease)),
            None => Err(Error::UploadLocked(id)),
        }
    }

    /// The upload's lock, waiting up to `wait` for the request holding it.
    pub(super) async fn lock(&self, id: Uuid, wait: Duration) -> Result<BusyGuard> {
        let deadline = tokio::time::Instant::now() + wait;
        let l = self.entry(id)?;
        let g = match tokio::time::timeout_at(deadline, l.lock_owned()).await {
            Ok(g) => g,
            Err(_) => return Err(Error::UploadLocked(id)),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match Lease::claim_within(&self.db, lease_name(id), left).await? {
            Some(lease) => Ok(self.guard(id, g, lease)),
            None => Err(Error::UploadLocked(id)),
        }
    }
}

/// How long a request that needs an upload's completion waits for another
/// request that is completing it.
pub(super) const SETTLE_WAIT: Duration = Duration::from_secs(60);

impl Uploads {
    /// The upload's lock, or 423 if a request holds it.
    pub(super) async fn lock(&self, id: Uuid) -> Result<BusyGuard> {
        self.locks.try_lock(id).await
    }
}
