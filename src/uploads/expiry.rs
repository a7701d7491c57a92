//! Expiry: uploads idle past their time are reaped (row and bytes), and
//! a background task does that, and finishes stalled uploads, periodically.
//! Domain time (timestamps, expiry) comes from the service's `Clock`.

use super::{Uploads, session_of};
use crate::clock::{Clock, Timestamp};
use crate::db::uploads::{Upload, UploadState};
use crate::error::{Error, Result};

impl Uploads {
    /// The clock uploads are stamped and expired by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, by the service's clock.
    pub(super) fn now(&self) -> Timestamp {
        self.clock.timestamp()
    }

    /// When an upload touched now expires.
    pub(super) fn expiry_from_now(&self) -> Timestamp {
        let secs = i64::try_from(self.cfg.expire_after_secs).unwrap_or(i64::MAX);
        self.now()
            .plus(chrono::Duration::try_seconds(secs).unwrap_or(chrono::Duration::MAX))
    }

    /// Whether an upload is past its expiry (idle too long).
    pub fn is_expired(&self, up: &Upload) -> bool {
        up.expires_at < self.now()
    }

    /// Remove uploads idle past their expiry; returns how many.
    pub async fn reap_expired(&self) -> Result<usize> {
        let now = self.now();
        let gone = self
            .db
            .write(move |c| {
                let ups = c.upload_expired(now)?;
                for u in &ups {
                    c.upload_delete(u.id)?;
                }
                Ok::<_, Error>(ups)
            })
            .await?;
        for up in &gone {
            tracing::info!(upload.id = %up.id, "reaped expired upload");
            self.remove_data(up).await;
        }
        Ok(gone.len())
    }

    /// Remove an upload's bytes (a completed upload with a target path
    /// keeps the object at that path).
    pub(super) async fn remove_data(&self, up: &Upload) {
        use tracing::Instrument;
        let at_path = up.path.is_some() && up.state == UploadState::Complete;
        if at_path {
            return;
        }
        self.stores
            .abort_session(&session_of(up), self.target_store(up))
            .instrument(tracing::warn_span!("upload", upload.id = %up.id))
            .await;
    }
}

/// Reap expired uploads and finish stalled ones, at start-up and every 10
/// minutes.
pub async fn reap_forever(uploads: Uploads) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let round = async {
            if let Err(e) = uploads.finish_stalled().await {
                tracing::warn!(error = %e, "finishing stalled uploads failed");
            }
            if let Err(e) = uploads.reap_expired().await {
                tracing::warn!(error = %e, "upload reaper failed");
            }
        };
        crate::lease::alone(&uploads.db, "upload-reaper", round).await;
    }
}
