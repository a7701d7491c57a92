//! tus `concatenation`: partial uploads (ordinary resumable uploads with no
//! path of their own) and final uploads made of them. A final is created
//! once its partials are complete; its bytes are then copied from them in
//! one sequential pass that also hashes them in file order (md5 and sha1
//! computed once for the whole file), and it completes like any upload.
//! A crash during that pass leaves a final that settling fills again; the
//! partials go once their final is finished.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use uuid::Uuid;

use super::{Uploads, is_stalled, session_of};
use crate::db::uploads::{self as q, Concat, Upload, UploadState};
use crate::digest::StreamHasher;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::manifest::now_iso;
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
    /// complete, unused partial uploads `parts`, in file order, and fill it
    /// from them. `declared_length`, if the client sent one, must be the
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

    /// Fill a just-created final upload (its lock held) and complete it.
    /// If it cannot be filled now, it is removed again (its partials are
    /// free for another final) and the error returned.
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
        self.complete(filled).await
    }

    /// Copy the bytes of a final upload's partials not yet in it (from its
    /// offset) into it, hashing them in file order; the upload with every
    /// byte in (not yet completed).
    pub(super) async fn fill(&self, mut up: Upload) -> Result<Upload> {
        let Concat::Final { parts } = up.concat.clone() else {
            return Ok(up);
        };
        if up.offset == up.length {
            return Ok(up);
        }
        let mut partials = Vec::with_capacity(parts.len());
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
            if !ours || p.state != UploadState::Complete {
                return Err(Error::internal(format!(
                    "partial upload {id} of final upload {} is not complete",
                    up.id
                )));
            }
            partials.push(p);
        }
        let mut writer = self
            .stores
            .append(&session_of(&up), self.target_store(&up), None)
            .await?;
        let mut hasher = StreamHasher::resume(&up.hash)?;
        if let Err(e) = self
            .copy_partials(up.offset, &partials, &mut writer, &mut hasher)
            .await
        {
            let writer_error = writer.abort().await?;
            return Err(writer_error.map(Error::from).unwrap_or(e));
        }
        let (written, hashed) = tokio::join!(writer.finish(), hasher.finish_state());
        let sent = written?;
        up.hash = hashed?;
        up.offset = up.length;
        up.updated_at = now_iso();
        if let Some(m) = up.s3.as_mut() {
            m.parts.extend(sent);
        }
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        Ok(up)
    }

    /// Stream the partials' bytes from file offset `from` on into `writer`
    /// and `hasher`: one sequential read of each, nothing buffered.
    async fn copy_partials(
        &self,
        from: u64,
        partials: &[Upload],
        writer: &mut SessionWriter,
        hasher: &mut StreamHasher,
    ) -> Result<()> {
        let mut pos = 0u64;
        for p in partials {
            let end = pos + p.length;
            if end > from {
                let start = from.max(pos) - pos;
                let mut body = self
                    .stores
                    .read_session(&session_of(p), Some(start..p.length))
                    .await?;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(StoreError::from)?;
                    hasher.update(&chunk).await?;
                    writer.write(chunk).await?;
                }
            }
            pos = end;
        }
        Ok(())
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

/// May `p` go into a new final upload: a complete partial no final uses?
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
        UploadState::Complete => Ok(()),
        UploadState::Uploading => Err(Error::UploadIncomplete(id)),
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
