//! Per-image async locks (striped): serialise file replacement, activation,
//! registration and deletion of one image across services.

use std::sync::Arc;

use uuid::Uuid;

/// A fixed set of async mutexes; an image maps to one by its uuid.
#[derive(Clone)]
pub struct ImageLocks(Arc<Vec<tokio::sync::Mutex<()>>>);

impl Default for ImageLocks {
    fn default() -> Self {
        ImageLocks(Arc::new(
            (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        ))
    }
}

impl ImageLocks {
    pub async fn lock(&self, uuid: Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        let i = (uuid.as_u128() % self.0.len() as u128) as usize;
        self.0[i].lock().await
    }
}
