//! tus `concatenation` and `concatenation-unfinished`: partial uploads
//! (resumable uploads with no path of their own, staged only) and final
//! uploads made of them. Two ways to fill a final, chosen when it is
//! created:
//! - in place, when none of its partials has bytes yet (the client created
//!   them all, then the final): each partial's PATCHes go straight into the
//!   final's staged file at the partial's byte range (positional writes,
//!   fsynced before the PATCH is acknowledged) and, on an object store
//!   where the lengths allow it, as the partial's own run of parts of the
//!   final's multipart upload. Nothing is copied.
//! - by copy, otherwise: the bytes of each complete partial are copied
//!   into the final in one sequential pass.
//!
//! Either way md5 and sha1 are computed once for the whole file, in file
//! order: the final's offset is the contiguous prefix of complete
//! partials, hashed (read back from the final's own staged bytes when in
//! place) as it grows; once it is the whole length the final completes
//! like any upload. A crash during a pass leaves a final that settling
//! fills again; the partials go once their final is finished.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use uuid::Uuid;

use super::locks::check_fence;
use super::{Uploads, is_stalled, session_of};
use crate::db::Meta;
use crate::db::uploads::{Concat, ConcatPlace, Upload, UploadState};
use crate::digest::StreamHasher;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::store::session::Window;
use crate::store::{MultipartState, SessionState, SessionWriter, StoreError, StoreName};

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
        self.create_with(
            caller,
            length,
            metadata,
            Concat::Partial { used_by: None },
            None,
        )
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
        // In place if no partial has bytes yet; their locks keep it so
        // until the claim is recorded (a PATCH meanwhile gets 423).
        let mut guards = Vec::with_capacity(parts.len());
        let mut lengths = Vec::with_capacity(parts.len());
        for id in &parts {
            let Ok(g) = self.lock(*id).await else { break };
            guards.push(g);
            let id = *id;
            match self.db.read(move |c| c.upload_get(id)).await? {
                Some(p) if may_write_in_place(&p) => lengths.push(p.length),
                _ => break,
            }
        }
        let in_place = (lengths.len() == parts.len()).then_some(lengths);
        if in_place.is_none() {
            drop(guards); // filling by copy settles the partials: no locks held
            return self
                .create_with(caller, length, metadata, Concat::Final { parts }, None)
                .await;
        }
        let up = self
            .create_with(caller, length, metadata, Concat::Final { parts }, in_place)
            .await;
        drop(guards);
        up
    }

    /// The store session a request's bytes for `up` go to, and the store
    /// its object belongs in: its own, or, for a partial written in place,
    /// its byte range of its final's (and its run of the final's parts).
    pub(super) async fn session_for(&self, up: &Upload) -> Result<(SessionState, StoreName)> {
        let (Some(place), Concat::Partial { used_by: Some(f) }) = (&up.concat_place, &up.concat)
        else {
            return Ok((session_of(up), self.target_store(up)));
        };
        let f = *f;
        let fin = self
            .db
            .read(move |c| c.upload_get(f))
            .await?
            .ok_or(Error::UploadNotFound(f))?;
        let multipart = match (place.first_part, &fin.multipart) {
            (Some(_), Some(m)) => Some(MultipartState {
                key: m.key.clone(),
                upload_id: m.upload_id.clone(),
                parts: place.parts.clone(),
                staged_from: 0,
            }),
            _ => None,
        };
        let state = SessionState {
            staged: fin.store,
            staged_key: fin.data_key.clone(),
            offset: up.offset,
            multipart,
            window: Some(Window {
                at: place.at,
                first_part: place.first_part.unwrap_or(1),
            }),
            pieces: None,
        };
        Ok((state, self.target_store(&fin)))
    }

    /// Fill a just-created final upload (its lock held) from its complete
    /// partials and complete it if they all are. If it cannot be filled
    /// now, it is removed again (its partials are free for another final)
    /// and the error returned.
    pub(super) async fn fill_and_complete(&self, up: Upload, fence: i64) -> Result<Upload> {
        let filled = match self.fill(up.clone(), fence).await {
            Ok(f) => f,
            Err(e) => {
                let id = up.id;
                let _ = self.db.write(move |c| c.upload_delete(id)).await;
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
    /// `fence` is the final's lease, which the caller holds.
    pub(super) async fn fill(&self, mut up: Upload, fence: i64) -> Result<Upload> {
        let Concat::Final { parts } = up.concat.clone() else {
            return Ok(up);
        };
        // The partials of the contiguous complete prefix.
        let mut ready = Vec::with_capacity(parts.len());
        for id in parts {
            let p = self
                .db
                .read(move |c| c.upload_get(id))
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
        // pass resumes from the last partial recorded.
        let mut pos = 0u64;
        for p in &ready {
            let end = pos + p.length;
            if end > up.offset {
                let start = up.offset.saturating_sub(pos);
                up = if p.concat_place.is_some() {
                    self.hash_in_place(up, p, pos + start..end, fence).await?
                } else {
                    self.copy_partial(up, p, start, fence).await?
                };
            }
            pos = end;
        }
        Ok(up)
    }

    /// Partial `p` wrote its bytes in place, at `range` of the final `up`:
    /// hash them from the final's own staged bytes (nothing is copied) and
    /// record the new offset with the hash state, and the parts `p` sent
    /// of the final's multipart upload, if it sent them.
    async fn hash_in_place(
        &self,
        mut up: Upload,
        p: &Upload,
        range: std::ops::Range<u64>,
        fence: i64,
    ) -> Result<Upload> {
        let mut hasher = self.resume_hashing(&up).await?;
        let mut body = self
            .stores
            .read_session(&session_of(&up), Some(range.clone()))
            .await?;
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StoreError::from)?;
            n += chunk.len() as u64;
            hasher.update(&chunk).await?;
        }
        if n != range.end - range.start {
            return Err(Error::internal(format!(
                "final upload {}: {n} bytes where partial {} wrote {}",
                up.id,
                p.id,
                range.end - range.start
            )));
        }
        let place = p.concat_place.as_ref();
        if let (Some(m), Some(place)) = (up.multipart.as_mut(), place)
            && place.first_part.is_some()
        {
            let in_parts: u64 = place.parts.iter().map(|x| x.size).sum();
            if in_parts != p.length {
                return Err(Error::internal(format!(
                    "partial upload {} sent {in_parts} of its {} bytes as parts",
                    p.id, p.length
                )));
            }
            m.parts.extend(place.parts.iter().cloned());
        }
        up.hash = hasher.finish_state().await?;
        up.offset = range.end;
        self.record_growth(up, fence).await
    }

    /// Append the bytes of partial `p` from `start` on to the final `up`,
    /// hashing them, in one sequential read (nothing buffered); record the
    /// new offset with the hash state.
    async fn copy_partial(
        &self,
        mut up: Upload,
        p: &Upload,
        start: u64,
        fence: i64,
    ) -> Result<Upload> {
        let mut hasher = self.resume_hashing(&up).await?;
        let mut writer = self
            .stores
            .append(&session_of(&up), self.target_store(&up), None, fence)
            .await?;
        if let Err(e) = stream_into(self, p, start, &mut writer, &mut hasher).await {
            let writer_error = writer.abort().await?;
            return Err(writer_error.map(Error::from).unwrap_or(e));
        }
        let (written, hashed) = tokio::join!(writer.finish(), hasher.finish_state());
        let added = written?;
        up.hash = match hashed {
            Ok(h) => h,
            Err(e) => {
                added.discard().await;
                return Err(e.into());
            }
        };
        self.metrics.add_concat_bytes_copied(p.length - start);
        up.offset += p.length - start;
        if let Some(m) = up.multipart.as_mut() {
            m.parts.extend(added.parts.iter().cloned());
        }
        if added.pieces.is_some() {
            up.pieces = added.pieces.clone();
        }
        added.settle(self.record_growth(up, fence).await).await
    }

    /// Record a final whose completed prefix just grew (offset and hash
    /// state), then send the whole parts it now has to its multipart upload
    /// (a failure there is only logged; the parts stay staged for a later
    /// flush).
    async fn record_growth(&self, mut up: Upload, fence: i64) -> Result<Upload> {
        up.updated_at = self.now();
        let row = up.clone();
        self.db
            .write(move |c| {
                check_fence(c, row.id, fence)?;
                Ok::<_, Error>(c.upload_update(&row)?)
            })
            .await?;
        if up.offset < up.length
            && up.multipart.is_some()
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
            let Ok(Some(p)) = me.db.read(move |c| c.upload_get(id)).await else {
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
                let ups = c.upload_spent_partials(of)?;
                for u in &ups {
                    c.upload_delete(u.id)?;
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

/// May partial `p` write in place into a final: no byte of it in yet (and
/// no content_md5 of its own to check: its bytes are hashed as the
/// final's only).
fn may_write_in_place(p: &Upload) -> bool {
    p.state == UploadState::Uploading
        && p.offset == 0
        && p.length > 0
        && p.content_md5.is_none()
        && matches!(p.concat, Concat::Partial { used_by: None })
}

/// Where partials of `lengths` bytes write in place into their final:
/// their offsets in it, and their first part numbers (`runs`, from
/// `Stores::part_runs`) when each sends its own parts.
pub(super) fn places_in(lengths: &[u64], runs: Option<Vec<i32>>) -> Vec<ConcatPlace> {
    let mut at = 0;
    lengths
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let place = ConcatPlace {
                at,
                first_part: runs.as_ref().map(|r| r[i]),
                parts: vec![],
            };
            at += len;
            place
        })
        .collect()
}

/// Claim the partials `parts` for the final `id`, in the transaction that
/// inserts it: each must still be a partial no final uses. With `places`
/// (and every partial still without bytes), each writes in place there.
pub(super) fn claim_partials(
    c: &dyn Meta,
    id: Uuid,
    parts: &[Uuid],
    places: Option<&[ConcatPlace]>,
) -> Result<()> {
    let mut ups = Vec::with_capacity(parts.len());
    for p in parts {
        let up = c.upload_get(*p)?.ok_or(Error::UploadNotFound(*p))?;
        check_partial(&up)?;
        ups.push(up);
    }
    let places = places.filter(|_| ups.iter().all(may_write_in_place));
    for (i, p) in parts.iter().enumerate() {
        c.upload_set_used_by(*p, Some(id))?;
        if let Some(pl) = places.and_then(|pl| pl.get(i)) {
            c.upload_set_place(*p, Some(pl))?;
        }
    }
    Ok(())
}
