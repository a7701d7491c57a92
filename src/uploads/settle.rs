//! Settling: an upload whose every byte was acknowledged but whose
//! completion a crash cut short is completed before anything reads it
//! (at start-up, periodically, and by readers on access), or recognised as
//! completed already; a multipart upload the store lost is sent again.

use uuid::Uuid;

use super::locks::SETTLE_WAIT;
use super::{Uploads, is_stalled, session_of, set_session, stamp};
use crate::db::uploads::{Upload, UploadState};
use crate::error::{Error, Result};
use crate::store::namespace;

impl Uploads {
    /// Complete a stalled upload under its lock (waiting for a request that
    /// is completing it right now); the upload as it is then.
    pub(super) async fn settle(&self, id: Uuid) -> Result<Upload> {
        let busy = self.locks.lock(id, SETTLE_WAIT).await?;
        let up = self
            .db
            .read(move |c| c.upload_get(id))
            .await?
            .ok_or(Error::UploadNotFound(id))?;
        if !is_stalled(&up) {
            return Ok(up);
        }
        self.finish_one(up, busy.fence()).await
    }

    /// Finish uploads whose last bytes were acknowledged but whose
    /// completion a crash cut short (before it started, or after the object
    /// was in place but before the row said so). Returns how many were
    /// finished. Runs at start-up before the listener opens, and
    /// periodically; readers settle such an upload themselves on access.
    pub async fn finish_stalled(&self) -> Result<usize> {
        let stalled = self.db.read(|c| c.upload_stalled()).await?;
        let mut finished = 0;
        for up in stalled {
            let id = up.id;
            let Ok(busy) = self.lock(id).await else {
                continue; // a request is completing it right now
            };
            let Some(up) = self.db.read(move |c| c.upload_get(id)).await? else {
                continue;
            };
            if !is_stalled(&up) {
                continue;
            }
            match self.finish_one(up, busy.fence()).await {
                // (A final whose next partial is not complete stays open.)
                Ok(u) if u.state == UploadState::Uploading => {}
                Ok(_) => finished += 1,
                Err(e) => {
                    tracing::warn!(upload.id = %id, error = %e, "could not finish a stalled upload yet")
                }
            }
        }
        if let Err(e) = self.remove_spent_partials(None).await {
            tracing::warn!(error = %e, "could not remove spent partial uploads");
        }
        Ok(finished)
    }

    /// Complete a stalled upload (its lock held): complete it now, or
    /// recognise that an interrupted completion already put the bytes in
    /// place. The upload as it is then; the error if neither can be done
    /// now (e.g. 503 while the store is down).
    /// `fence` is the upload's lease, which the caller holds.
    pub(super) async fn finish_one(&self, up: Upload, fence: i64) -> Result<Upload> {
        let id = up.id;
        // A final upload is filled from its partials first.
        let up = self.fill(up, fence).await?;
        if up.offset < up.length {
            return Ok(up); // a final whose next partial is not complete yet
        }
        let err = match self.complete(up.clone()).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if let Some(now) = self.db.read(move |c| c.upload_get(id)).await?
            && now.state != UploadState::Uploading
        {
            return Ok(now); // e.g. failed on content_md5: finished all the same
        }
        let Some(done) = self.completed_before(&up).await else {
            let mut again = up.clone();
            if self.restart_multipart(&mut again).await.unwrap_or(false) {
                return self.complete(again).await;
            }
            return Err(err);
        };
        let row = done.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        if up.store != done.store {
            let _ = self.stores.get(up.store).delete(&up.data_key).await;
        }
        tracing::info!(upload.id = %id, "finished an upload whose completion was cut short");
        Ok(done)
    }

    /// If `up`'s bytes are already where completion puts them (the object
    /// in S3 with this upload's md5 or multipart ETag; the file renamed to
    /// its path), the row completion would have written.
    pub(super) async fn completed_before(&self, up: &Upload) -> Option<Upload> {
        let d = up.hash.digests().ok()?;
        let dest_key = match &up.multipart {
            Some(_) => None,
            None => Some(namespace::parse(up.path.as_deref()?).ok()?.key),
        };
        let (store, key, meta) = self
            .stores
            .completed_before(
                &session_of(up),
                self.target_store(up),
                dest_key.as_deref(),
                up.length,
                &hex::encode(d.md5),
            )
            .await?;
        let mut done = up.clone();
        done.state = UploadState::Complete;
        done.md5 = Some(d.md5_base64());
        done.sha1 = Some(d.sha1_hex());
        done.updated_at = self.now();
        done.store = store;
        done.data_key = key;
        done.multipart = None;
        if up.path.is_some() {
            done.data_mtime = Some(stamp(&meta));
        }
        Some(done)
    }

    /// An S3 upload whose multipart upload the store lost (a store whose
    /// completion is not atomic, cut short by a crash: neither the upload
    /// nor the object exists any more) is sent again from its staged bytes,
    /// in a new multipart upload. Returns false if that cannot be done.
    pub(super) async fn restart_multipart(&self, up: &mut Upload) -> Result<bool> {
        let mut state = session_of(up);
        if !self
            .stores
            .restart_session(&mut state, self.target_store(up))
            .await?
        {
            return Ok(false);
        }
        tracing::warn!(upload.id = %up.id, "the store lost the multipart upload; sending the staged bytes again");
        set_session(up, state);
        let row = up.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        Ok(true)
    }
}
