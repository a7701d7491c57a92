//! One lock per upload in use: a request that changes an upload holds it
//! (a second one is refused with 423 at once); a reader that finds a
//! completion in progress waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::Uploads;
use crate::error::{Error, Result};

/// One async lock per upload in use: a request that changes an upload
/// holds it (a second PATCH is refused with 423 at once), and a reader that
/// finds a completion in progress waits for it.
#[derive(Clone, Default)]
pub(super) struct UploadLocks(Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>);

/// Holds an upload busy; released on drop.
pub(super) struct BusyGuard {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    locks: UploadLocks,
    id: Uuid,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut m) = self.locks.0.lock()
            && m.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1)
        {
            m.remove(&self.id);
        }
    }
}

impl UploadLocks {
    fn entry(&self, id: Uuid) -> Result<Arc<tokio::sync::Mutex<()>>> {
        let mut m = self.0.lock().map_err(|_| Error::internal("poisoned"))?;
        Ok(m.entry(id).or_default().clone())
    }

    fn guard(&self, id: Uuid, g: tokio::sync::OwnedMutexGuard<()>) -> BusyGuard {
        BusyGuard {
            guard: Some(g),
            locks: self.clone(),
            id,
        }
    }

    /// The upload's lock, or 423 if a request holds it.
    pub(super) fn try_lock(&self, id: Uuid) -> Result<BusyGuard> {
        let g = self
            .entry(id)?
            .try_lock_owned()
            .map_err(|_| Error::UploadLocked(id))?;
        Ok(self.guard(id, g))
    }

    /// The upload's lock, waiting up to `wait` for the request holding it.
    pub(super) async fn lock(&self, id: Uuid, wait: Duration) -> Result<BusyGuard> {
        let l = self.entry(id)?;
        match tokio::time::timeout(wait, l.lock_owned()).await {
            Ok(g) => Ok(self.guard(id, g)),
            Err(_) => Err(Error::UploadLocked(id)),
        }
    }
}

/// How long a request that needs an upload's completion waits for another
/// request that is completing it.
pub(super) const SETTLE_WAIT: Duration = Duration::from_secs(60);

impl Uploads {
    /// The upload's lock, or 423 if a request holds it.
    pub(super) fn lock(&self, id: Uuid) -> Result<BusyGuard> {
        self.locks.try_lock(id)
    }
}
