//! tus `concatenation` and `concatenation-unfinished`: partial uploads
//! (ordinary resumable uploads with no path of their own) and final
//! uploads made of them. A final's bytes are copied from its partials in
//! file order, each partial's in one sequential pass that also hashes them
//! (md5 and sha1 computed once for the whole file): at creation from the
//! complete prefix of its partials, then as each next partial completes.
//! Its offset is that contiguous prefix; once it is the whole length the
//! final completes like any upload. A crash during a pass leaves a final
//! that settling fills again; the partials go once their final is finished.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use uuid::Uuid;

use super::{Uploads, is_stalled, session_of};
use crate::db::uploads::{self as q, Concat, Upload, UploadState};
use crate::digest::StreamHasher;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::store::{SessionWriter, StoreError};

/// Most partial uploads one final upload may list.
pub const MAX_CONCAT_PARTS: usize = 64;

impl Uploads {
    /// Create a partial upload (`Upload-Concat: partial`): an ordinary
    /// resumable upload, counted in the caller's caps, that only a final
    /// upload can use.
    pub async fn create_partial(
        &self,
        caller: &Caller,
        length: u64,
        metadata: BTreeMap<String, String>,
    ) -> Result<Upload> {
        self.create_with(caller, length, metadata, Concat::Partial { used_by: None })
            .await
    }

    /// Create a final upload (`Upload-Concat: final;...`) from the caller's
    /// unused partial uploads `parts`, in file order, and fill it from those
    /// complete (`concatenation-unfinished`: the others fill it as they
    /// complete). `declared_length`, if the client sent one, must be the
    /// sum of theirs.
    pub async fn create_final(
        &self,
        caller: &Caller,
        parts: Vec<Uuid>,
        declared_length: Option<u64>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Upload> {
        caller.require_auth()?;
        if parts.is_empty() {
            return Err(Error::InvalidHeader(
                "Upload-Concat: final; must list at least one partial upload".into(),
            ));
        }
        if parts.len() > MAX_CONCAT_PARTS {
            return Err(Error::InvalidHeader(format!(
                "Upload-Concat lists {} partial uploads; at most {MAX_CONCAT_PARTS} are accepted",
                parts.len()
            )));
        }
        let mut seen = HashSet::new();
        if let Some(dup) = parts.iter().find(|p| !seen.insert(**p)) {
            return Err(Error::InvalidHeader(format!(
                "Upload-Concat lists the partial upload {dup} more than once"
            )));
        }
        let mut length = 0u64;
        for id in &parts {
            let p = self.get(caller, *id).await?; // 404 for unknown or foreign ids
            check_partial(&p)?;
            length = length
                .checked_add(p.length)
                .ok_or_else(|| Error::InvalidHeader("the partial uploads are too long".into()))?;
        }
        if let Some(l) = declared_length
            && l != length
        {
            return Err(Error::InvalidHeader(format!(
                "Upload-Length {l} differs from the {length} bytes of the partial uploads"
            )));
        }
        self.create_with(caller, length, metadata, Concat::Final { parts })
            .await
    }

    /// Fill a just-created final upload (its lock held) from its complete
    /// partials and complete it if they all are. If it cannot be filled
    /// now, it is removed again (its partials are free for another final)
    /// and the error returned.
    pub(super) async fn fill_and_complete(&self, up: Upload) -> Result<Upload> {
        let filled = match self.fill(up.clone()).await {
            Ok(f) => f,
            Err(e) => {
                let id = up.id;
                let _ = self.db.write(move |c| q::delete(c, id)).await;
                self.remove_data(&up).await;
                return Err(e);
            }
        };
        if filled.offset < filled.length {
            return Ok(filled); // concatenation-unfinished: partials to come
        }
        self.complete(filled).await
    }

    /// Copy the bytes of a final upload's partials not yet in it (from its
    /// offset up to the first partial not complete) into it, hashing them
    /// in file order, and record the new offset (the contiguous prefix of
    /// complete partials) with the hash state; the upload as it is then
    /// (every byte in, not yet completed, once all its partials are).
    pub(super) async fn fill(&self, mut up: Upload) -> Result<Upload> {
        let Concat::Final { parts } = up.concat.clone() else {
            return Ok(up);
        };
        // The partials of the contiguous complete prefix.
        let mut ready = Vec::with_capacity(parts.len());
        for id in parts {
            let p = self
                .db
                .read(move |c| q::get(c, id))
                .await?
                .ok_or(Error::UploadNotFound(id))?;
            let p = if is_stalled(&p) {
                Box::pin(self.settle(id)).await?
            } else {
                p
            };
            let ours = matches!(p.concat, Concat::Partial { used_by: Some(f) } if f == up.id);
            if !ours {
                return Err(Error::internal(format!(
                    "partial upload {id} is not one of final upload {}",
                    up.id
                )));
            }
            if p.state != UploadState::Complete {
                break;
            }
            ready.push(p);
        }
        // One pass per partial, recorded on its own: after a crash the
        // copy resumes from the last partial recorded.
        let mut pos = 0u64;
        for p in &ready {
            let end = pos + p.length;
            if end > up.offset {
                let start = up.offset.saturating_sub(pos);
                up = self.copy_partial(up, p, start).await?;
            }
            pos = end;
        }
        Ok(up)
    }

    /// Append the bytes of partial `p` from `start` on to the final `up`,
    /// hashing them, in one sequential read (nothing buffered); record the
    /// new offset with the hash state.
    async fn copy_partial(&self, mut up: Upload, p: &Upload, start: u64) -> Result<Upload> {
        let mut writer = self
            .stores
            .append(&session_of(&up), self.target_store(&up), None)
            .await?;
        let mut hasher = StreamHasher::resume(&up.hash)?;
        if let Err(e) = stream_into(self, p, start, &mut writer, &mut hasher).await {
            let writer_error = writer.abort().await?;
            return Err(writer_error.map(Error::from).unwrap_or(e));
        }
        let (written, hashed) = tokio::join!(writer.finish(), hasher.finish_state());
        let sent = written?;
        up.hash = hashed?;
        up.offset += p.length - start;
        up.updated_at = self.now();
        if let Some(m) = up.s3.as_mut() {
            m.parts.extend(sent);
        }
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        if up.offset < up.length
            && up.s3.is_some()
            && let Err(e) = self.flush_parts(&mut up, false).await
        {
            tracing::warn!(upload.id = %up.id, error = %e, "could not send parts yet");
        }
        Ok(up)
    }

    /// A partial upload `up` just completed: fill its final upload (if it
    /// has one) with it now, in the background, and complete the final if
    /// it was the last. (Should that fail, the final is filled on access
    /// or by the periodic settling.)
    pub(super) fn partial_completed(&self, up: &Upload) {
        if !matches!(up.concat, Concat::Partial { .. }) {
            return;
        }
        let (me, id) = (self.clone(), up.id);
        tokio::spawn(async move {
            // Read again: a final may have claimed it while it streamed.
            let Ok(Some(p)) = me.db.read(move |c| q::get(c, id)).await else {
                return;
            };
            let Concat::Partial { used_by: Some(f) } = p.concat else {
                return;
            };
            if let Err(e) = me.settle(f).await {
                tracing::warn!(upload.id = %f, error = %e, "could not fill the final upload yet");
            }
        });
    }

    /// Remove partial uploads whose final is finished (of `of`, or of every
    /// final): their bytes are the final's now. Returns how many went.
    pub(super) async fn remove_spent_partials(&self, of: Option<Uuid>) -> Result<usize> {
        let spent = self
            .db
            .write(move |c| {
                let ups = q::spent_partials(c, of)?;
                for u in &ups {
                    q::delete(c, u.id)?;
                }
                Ok::<_, Error>(ups)
            })
            .await?;
        for up in &spent {
            self.remove_data(up).await;
        }
        Ok(spent.len())
    }
}

/// Stream the bytes of partial `p` from `start` on into `writer` and
/// `hasher`.
async fn stream_into(
    uploads: &Uploads,
    p: &Upload,
    start: u64,
    writer: &mut SessionWriter,
    hasher: &mut StreamHasher,
) -> Result<()> {
    if start >= p.length {
        return Ok(());
    }
    let mut body = uploads
        .stores
        .read_session(&session_of(p), Some(start..p.length))
        .await?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(StoreError::from)?;
        hasher.update(&chunk).await?;
        writer.write(chunk).await?;
    }
    Ok(())
}

/// May `p` go into a new final upload: a partial (complete or still
/// uploading) no final uses?
fn check_partial(p: &Upload) -> Result<()> {
    let id = p.id;
    match p.concat {
        Concat::Partial { used_by: None } => {}
        Concat::Partial { used_by: Some(f) } => {
            return Err(Error::FileInUse(format!(
                "partial upload {id} is already used by the final upload {f}"
            )));
        }
        _ => {
            return Err(Error::InvalidHeader(format!(
                "upload {id} is not a partial upload (created with Upload-Concat: partial)"
            )));
        }
    }
    match p.state {
        UploadState::Complete | UploadState::Uploading => Ok(()),
        _ => Err(Error::InvalidHeader(format!(
            "partial upload {id} failed: {}",
            p.error.as_deref().unwrap_or("it cannot be used")
        ))),
    }
}

/// Claim the partials `parts` for the final `id`, in the transaction that
/// inserts it: each must still be a complete partial no final uses.
pub(super) fn claim_partials(c: &rusqlite::Connection, id: Uuid, parts: &[Uuid]) -> Result<()> {
    for p in parts {
        let up = q::get(c, *p)?.ok_or(Error::UploadNotFound(*p))?;
        check_partial(&up)?;
        q::set_used_by(c, *p, Some(id))?;
    }
    Ok(())
}
