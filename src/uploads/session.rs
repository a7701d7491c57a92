//! Upload sessions (tus `creation`, PATCH, HEAD, termination): create,
//! append a request body at an offset, complete once every byte is in
//! (digests, `content_md5`, the object put at its path), terminate. The
//! bytes themselves go through the store's session API.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::caps::Caps;
use super::concat::{claim_partials, places_in};
use super::locks::check_fence;
use super::{ASSETS_UPLOAD_AREA, Uploads, is_stalled, session_of, set_session, staging_key, stamp};
use crate::clock::Timestamp;
use crate::db::uploads::{Concat, ConcatPlace, Upload, UploadState};
use crate::digest::{ChunkChecksum, HashState, StreamHasher};
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::store::namespace;
use crate::store::{Appended, ByteStream, SessionState, SessionWriter, StoreError, StoreName};

/// A request's per-chunk checksum: algorithm and expected digest.
pub struct Checksum {
    pub algo: String,
    pub digest: Vec<u8>,
}

/// What a PATCH asks of its body besides the bytes: its declared length,
/// its per-chunk checksum, and the fencing token of the lock it holds.
struct AppendRequest {
    content_length: Option<u64>,
    checksum: Option<Checksum>,
    fence: i64,
}

impl Uploads {
    /// Create an upload session (tus `creation`).
    pub async fn create(
        &self,
        caller: &Caller,
        length: u64,
        metadata: BTreeMap<String, String>,
    ) -> Result<Upload> {
        self.create_with(caller, length, metadata, Concat::None, None)
            .await
    }

    /// Create an upload session of any kind: ordinary, a partial upload,
    /// or a final upload (whose partials are claimed in the transaction
    /// that inserts it, and whose bytes are then copied from them, or,
    /// given `in_place` (their lengths: none of them has bytes yet, and
    /// their locks are held), written in place by them).
    pub(super) async fn create_with(
        &self,
        caller: &Caller,
        length: u64,
        metadata: BTreeMap<String, String>,
        concat: Concat,
        in_place: Option<Vec<u64>>,
    ) -> Result<Upload> {
        self.check_create(caller, length, &metadata, &concat)?;
        let path = self.target_path(caller, &metadata).await?;
        let content_md5 = content_md5_of(&metadata)?;
        let id = Uuid::new_v4();
        // Held until created (and, when empty, completed): not yet "stalled".
        let _busy = self.lock(id).await?;
        let (session, places) = self
            .begin_upload_session(id, path.as_ref(), &concat, length, in_place)
            .await?;
        let now = self.now();
        let up = Upload {
            id,
            owner: caller.account,
            length,
            offset: 0,
            state: UploadState::Uploading,
            store: session.staged,
            data_key: session.staged_key,
            path: path.map(|p| p.path),
            metadata,
            content_md5,
            hash: HashState::default(),
            md5: None,
            sha1: None,
            error: None,
            image_uuid: None,
            created_at: now,
            updated_at: now,
            expires_at: self.expiry_from_now(),
            data_mtime: None,
            multipart: session.multipart,
            concat,
            concat_place: None,
            pieces: session.pieces,
        };
        self.insert_upload(caller, &up, places).await?;
        if matches!(up.concat, Concat::Final { .. }) {
            return self.fill_and_complete(up, _busy.fence()).await;
        }
        if length == 0 {
            return self.complete(up).await;
        }
        Ok(up)
    }

    /// The checks of a new upload before anything is written: the caller
    /// is authenticated, a partial upload has no path, and `length` is
    /// within the maximum file size.
    fn check_create(
        &self,
        caller: &Caller,
        length: u64,
        metadata: &BTreeMap<String, String>,
        concat: &Concat,
    ) -> Result<()> {
        caller.require_auth()?;
        if matches!(concat, Concat::Partial { .. })
            && metadata.get("path").is_some_and(|p| !p.is_empty())
        {
            return Err(Error::invalid_param(
                "path",
                FieldCode::NotAllowed,
                "a partial upload (Upload-Concat: partial) has no path of its own; \
                 give it to the final upload",
            ));
        }
        if length > self.cfg.max_file_size {
            return Err(Error::QuotaExceeded(format!(
                "Upload-Length {length} is larger than the maximum file size, {}",
                self.cfg.max_file_size
            )));
        }
        Ok(())
    }

    /// Begin the session of the new upload `id` bound for `path` (none:
    /// the manta store), staged in its store's upload home; and, given
    /// `in_place` (a final's partials' lengths), where each partial writes
    /// its bytes into it.
    async fn begin_upload_session(
        &self,
        id: Uuid,
        path: Option<&namespace::StoragePath>,
        concat: &Concat,
        length: u64,
        in_place: Option<Vec<u64>>,
    ) -> Result<(SessionState, Option<Vec<ConcatPlace>>)> {
        let target = path.map(|p| p.store()).unwrap_or(StoreName::Manta);
        let staged = self.stores.upload_home(target);
        let area = format!(
            "{}/uploads/{}/{id}",
            namespace::RESERVED_LOGIN,
            &id.to_string()[..3]
        );
        let staged_key = match staged {
            // A dot segment: no /assets path can name it.
            StoreName::Assets if self.stores.get(staged).is_local() => {
                format!("{ASSETS_UPLOAD_AREA}{id}")
            }
            StoreName::Staging => staging_key(&area, 0),
            _ => area.clone(),
        };
        // Bytes bound for an object store go to one multipart upload; the
        // (empty) staged file exists before the row, so a row always has one.
        let target_key = path.map(|p| p.key.clone()).unwrap_or(area);
        // A partial is never an object of its own: its bytes stay staged
        // (or go into its final's), with no multipart upload.
        let session_target = match concat {
            Concat::Partial { .. } => staged,
            _ => target,
        };
        let session = self
            .stores
            .begin_session(session_target, &target_key, staged, staged_key, length)
            .await?;
        // (A session kept in the store has no staged file to write into.)
        let places = in_place
            .filter(|_| session.pieces.is_none())
            .map(|lens| places_in(&lens, self.stores.part_runs(target, &lens)));
        Ok((session, places))
    }

    /// Insert the new upload's row, admitted by the upload caps and the
    /// owner's quota, or (a final upload) claiming its partials at
    /// `places`; on failure its staged bytes are removed.
    async fn insert_upload(
        &self,
        caller: &Caller,
        up: &Upload,
        places: Option<Vec<ConcatPlace>>,
    ) -> Result<()> {
        let caps = Caps::of(&self.cfg);
        let quotas = self.cfg.quotas.clone();
        let who = caller.clone();
        let row = up.clone();
        let res = self
            .db
            .write(move |c| {
                if let Concat::Final { parts } = &row.concat {
                    // Its bytes are its partials', admitted with them; they
                    // must still be free.
                    claim_partials(c, row.id, parts, places.as_deref())?;
                } else {
                    caps.admit(c, &row)?;
                    if let Some(owner) = row.owner {
                        let entry = crate::space::Entry {
                            owner,
                            bytes: row.length,
                            images: 0,
                            what: format!("an upload of {} bytes", row.length),
                        };
                        quotas.admit(c, &who, &entry)?;
                    }
                }
                Ok(c.upload_insert(&row)?)
            })
            .await;
        if let Err(e) = res {
            let _ = self.stores.get(up.store).delete(&up.data_key).await;
            return Err(e);
        }
        Ok(())
    }

    /// The upload's target path (metadata `path`), if it has one the caller
    /// may write to.
    async fn target_path(
        &self,
        caller: &Caller,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Option<namespace::StoragePath>> {
        let Some(p) = metadata.get("path").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let sp =
            namespace::parse(p).map_err(|m| Error::invalid_param("path", FieldCode::Invalid, m))?;
        self.check_path_access(caller, &sp).await?;
        Ok(Some(sp))
    }

    /// The caller's upload (404 for unknown or foreign ids), settled: an
    /// upload whose every byte is acknowledged but whose completion a crash
    /// cut short is completed first, so every reader (HEAD, `/info`, the
    /// registrar) sees it complete. If that cannot be done now (the store
    /// is down) the error says so (503), rather than the row's `uploading`.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<Upload> {
        let up = self.owned(caller, id).await?;
        if is_stalled(&up) {
            return self.settle(id).await;
        }
        Ok(up)
    }

    /// The caller's upload as the row has it (404 for unknown or foreign ids).
    pub(super) async fn owned(&self, caller: &Caller, id: Uuid) -> Result<Upload> {
        caller.require_auth()?;
        let up = self.db.read(move |c| c.upload_get(id)).await?;
        match up {
            Some(u) if caller.account.is_none() && caller.operator => Ok(u),
            Some(u) if u.owner.is_some() && u.owner == caller.account => Ok(u),
            _ => Err(Error::UploadNotFound(id)),
        }
    }

    /// The caller's uploads, newest first, at most `limit` of them, after
    /// the upload `marker` (one of the caller's own) if given. Stalled ones
    /// are settled where that can be done now.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: u32,
        marker: Option<Uuid>,
    ) -> Result<Vec<Upload>> {
        caller.require_auth()?;
        let owner = caller.account;
        if owner.is_none() && !caller.operator {
            return Ok(vec![]);
        }
        let after = match marker {
            None => None,
            Some(m) => {
                let up = self.owned(caller, m).await.map_err(|_| {
                    Error::invalid_param(
                        "marker",
                        FieldCode::Invalid,
                        format!("invalid marker \"{m}\": no such upload of yours"),
                    )
                })?;
                Some((up.created_at, up.id))
            }
        };
        let mut ups = self
            .db
            .read(move |c| c.upload_list_page(owner, after, limit))
            .await?;
        for up in ups.iter_mut().filter(|u| is_stalled(u)) {
            if let Ok(done) = self.settle(up.id).await {
                *up = done;
            }
        }
        Ok(ups)
    }

    /// Append a request body at `offset` (tus PATCH, or PUT with Content-Range).
    /// Returns the upload with its new offset. Bytes received before a dropped
    /// connection are kept (unless a checksum was asked for).
    pub async fn append<S>(
        &self,
        caller: &Caller,
        id: Uuid,
        offset: u64,
        content_length: Option<u64>,
        checksum: Option<Checksum>,
        body: S,
    ) -> Result<Upload>
    where
        S: Stream<Item = std::result::Result<Bytes, Error>> + Send,
    {
        self.get(caller, id).await?; // 404 before 423 for foreign ids
        let busy = self.lock(id).await?;
        // Read under the lock: another request may have just finished.
        let mut up = self.owned(caller, id).await?;
        if matches!(up.concat, Concat::Final { .. }) {
            return Err(Error::UploadIsFinal(id));
        }
        let _slot = self.streaming.enter(up.owner)?;
        if !may_append(&up, offset, content_length, self.now())? {
            return Ok(up); // an empty PATCH at the end: nothing to do
        }
        let fence = busy.fence();
        let request = AppendRequest {
            content_length,
            checksum,
            fence,
        };
        let (received, added, hashed) = self.write_body(&up, request, body).await?;
        self.record_appended(&mut up, received, hashed, &added);
        let row = up.clone();
        let committed = self
            .db
            .write(move |c| {
                // A holder whose lease was taken over commits nothing.
                check_fence(c, row.id, fence)?;
                c.upload_update(&row)?;
                if row.concat_place.is_some() {
                    c.upload_set_place(row.id, row.concat_place.as_ref())?;
                }
                Ok::<_, Error>(())
            })
            .await;
        added.settle(committed).await?;
        if up.offset == up.length {
            return self.complete(up).await;
        }
        if up.multipart.is_some()
            || up
                .concat_place
                .as_ref()
                .is_some_and(|p| p.first_part.is_some())
        {
            // The bytes are durable here; full parts go to S3 now, or at a
            // later PATCH if the store is unreachable.
            if let Err(e) = self.flush_parts(&mut up, false).await {
                tracing::warn!(upload.id = %up.id, error = %e, "could not send parts yet");
            }
        }
        Ok(up)
    }

    /// Write a request's `body` into the session of `up` (and its hasher,
    /// unless it is a partial written in place): the bytes received, what
    /// the writer appended (made durable), and the hash state after them.
    /// A failed request's bytes are cut back.
    async fn write_body<S>(
        &self,
        up: &Upload,
        request: AppendRequest,
        body: S,
    ) -> Result<(u64, Appended, Option<HashState>)>
    where
        S: Stream<Item = std::result::Result<Bytes, Error>> + Send,
    {
        let AppendRequest {
            content_length,
            checksum,
            fence,
        } = request;
        let remaining = up.length - up.offset;
        let chunk_sum = chunk_checksum(checksum.as_ref())?;
        let (state, target) = self.session_for(up).await?;
        // A partial written in place is hashed as its final's bytes only.
        let mut hasher = match up.concat_place {
            Some(_) => None,
            None => Some(self.resume_hashing(up).await?),
        };
        let mut writer = self
            .stores
            .append(&state, target, content_length, fence)
            .await?;
        let limits = (content_length, remaining, up.length);
        let received = match receive(body, &mut writer, &mut hasher, chunk_sum, limits).await? {
            Ok(n) => n,
            Err(failure) => {
                let writer_error = writer.abort().await?;
                return Err(writer_error.map(Error::from).unwrap_or(failure));
            }
        };
        // The fsync and the hash threads' last chunks run at the same time.
        // (On error, e.g. ENOSPC, nothing of this request counts: the
        // writer cut it back.) The parts sent on the way are recorded with
        // the new offset.
        let hashed = async {
            match hasher {
                Some(h) => h.finish_state().await.map(Some),
                None => Ok(None),
            }
        };
        let (written, hashed) = tokio::join!(writer.finish(), hashed);
        let added = written?;
        let hashed = match hashed {
            Ok(h) => h,
            Err(e) => {
                added.discard().await;
                return Err(e.into());
            }
        };
        Ok((received, added, hashed))
    }

    /// Record on `up` (not yet in its row) the `received` bytes of a
    /// request, the hash state after them, and the parts or pieces its
    /// writer `added`; its expiry starts again.
    fn record_appended(
        &self,
        up: &mut Upload,
        received: u64,
        hashed: Option<HashState>,
        added: &Appended,
    ) {
        if let Some(h) = hashed {
            up.hash = h;
        }
        up.offset += received;
        up.updated_at = self.now();
        up.expires_at = self.expiry_from_now();
        if let Some(p) = up.concat_place.as_mut() {
            p.parts.extend(added.parts.iter().cloned());
        } else if let Some(m) = up.multipart.as_mut() {
            m.parts.extend(added.parts.iter().cloned());
        }
        if added.pieces.is_some() {
            up.pieces = added.pieces.clone();
        }
    }

    /// A hasher that goes on from the upload's saved state; a state this
    /// build cannot resume (written in another format) is rebuilt by
    /// hashing the bytes stored so far.
    pub(super) async fn resume_hashing(&self, up: &Upload) -> Result<StreamHasher> {
        if up.hash.resumable() {
            return Ok(StreamHasher::resume(&up.hash)?);
        }
        tracing::info!(upload.id = %up.id, format = up.hash.format, "hashing the stored bytes again: their saved hash state has another format");
        let mut h = match up.hash.crc64 {
            Some(_) => StreamHasher::new()?,
            None => StreamHasher::without_crc()?,
        };
        if up.offset > 0 {
            let body = self.open_data(up, Some(0..up.offset)).await?;
            h.update_to(body, up.offset, |e| Error::from(StoreError::from(e)))
                .await?;
        }
        Ok(h)
    }

    /// Send the staged bytes not yet in a part: every full part, or
    /// (`last`) all of them; then record the parts. The staged bytes stay
    /// until the upload is complete (should the store lose an unfinished
    /// multipart upload, they are sent again from there).
    pub(super) async fn flush_parts(&self, up: &mut Upload, last: bool) -> Result<()> {
        let (mut state, target) = self.session_for(up).await?;
        if !self.stores.flush_session(&mut state, target, last).await? {
            return Ok(());
        }
        if let Some(p) = up.concat_place.as_mut() {
            // A partial in place: its parts of its final's multipart upload.
            p.parts = state.multipart.map(|m| m.parts).unwrap_or_default();
            let (id, place) = (up.id, p.clone());
            return Ok(self
                .db
                .write(move |c| c.upload_set_place(id, Some(&place)))
                .await?);
        }
        set_session(up, state);
        let row = up.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        Ok(())
    }

    /// All bytes are in: record the digests, check `content_md5`, move the
    /// bytes to the target path if one was given.
    pub(super) async fn complete(&self, mut up: Upload) -> Result<Upload> {
        if up.concat_place.is_some() {
            return self.complete_in_place(up).await;
        }
        if !up.hash.resumable() {
            up.hash = self.resume_hashing(&up).await?.finish_state().await?;
        }
        let d = up.hash.digests()?;
        let mut leftover: Option<(StoreName, String)> = None;
        up.md5 = Some(d.md5_base64());
        up.sha1 = Some(d.sha1_hex());
        up.updated_at = self.now();
        let mismatch = up
            .content_md5
            .as_ref()
            .is_some_and(|m| *m != d.md5_base64());
        if mismatch {
            up.state = UploadState::Failed;
            up.error = Some("content_md5 does not match the uploaded bytes".into());
        } else {
            self.flush_parts(&mut up, true).await?;
            let target = self.target_store(&up);
            let dest_key = match (&up.multipart, &up.path) {
                (None, Some(p)) => Some(namespace::parse(p).map_err(Error::internal)?.key),
                _ => None,
            };
            let done = match self
                .stores
                .complete_session(&session_of(&up), target, dest_key.as_deref())
                .await
            {
                Ok(done) => done,
                Err(e) => return self.fail_at_path(up, e).await,
            };
            leftover = done.leftover;
            up.state = UploadState::Complete;
            up.store = done.store;
            up.data_key = done.key;
            up.multipart = None;
            up.pieces = None;
            if up.path.is_some() {
                let meta = self.stores.get(up.store).head(&up.data_key).await?;
                up.data_mtime = meta.map(|m| stamp(&m));
            }
        }
        let row = up.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        // The staged copy goes only once the row names the object.
        if let Some((store, key)) = leftover {
            self.stores.remove_leftover(store, &key).await;
        }
        if up.state == UploadState::Complete {
            self.partial_completed(&up);
        }
        if matches!(up.concat, Concat::Final { .. })
            && let Err(e) = self.remove_spent_partials(Some(up.id)).await
        {
            tracing::warn!(upload.id = %up.id, error = %e, "could not remove the partial uploads yet");
        }
        if mismatch {
            return Err(Error::ChecksumMismatch {
                message: format!(
                    "content_md5 {} does not match the md5 of the uploaded bytes, {}",
                    up.content_md5.as_deref().unwrap_or(""),
                    d.md5_base64()
                ),
                errors: vec![FieldError::msg(
                    "content_md5",
                    FieldCode::Mismatch,
                    d.md5_base64(),
                )],
            });
        }
        Ok(up)
    }

    /// A partial written in place has every byte in: the last of the parts
    /// it sends (if it sends its own) go, and it is complete. Its bytes are
    /// its final's, hashed as the final's only: it has no digests of its
    /// own, and its own (empty) staged file stays until it is removed.
    async fn complete_in_place(&self, mut up: Upload) -> Result<Upload> {
        self.flush_parts(&mut up, true).await?;
        up.state = UploadState::Complete;
        up.updated_at = self.now();
        let row = up.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        self.partial_completed(&up);
        Ok(up)
    }

    /// The bytes cannot be put at the upload's path (a directory stands
    /// there, a file stands where a directory must be, a name too long for
    /// the file system): the upload fails for good, with a reason its owner
    /// sees (`/info`), and can be terminated; other errors are returned as
    /// they are (the completion is tried again later).
    pub(super) async fn fail_at_path(&self, mut up: Upload, e: StoreError) -> Result<Upload> {
        if !e.is_unusable_path() {
            return Err(e.into());
        }
        let why = e.to_string();
        let path = up.path.clone().unwrap_or_default();
        let msg = format!("the upload cannot be stored at {path}: {why}");
        up.state = UploadState::Failed;
        up.error = Some(msg.clone());
        up.updated_at = self.now();
        let row = up.clone();
        self.db.write(move |c| c.upload_update(&row)).await?;
        Err(Error::invalid_param("path", FieldCode::Invalid, msg))
    }

    /// Terminate an upload: its row and bytes go at once. A completed upload
    /// with a target path keeps the object at that path.
    pub async fn terminate(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let up = self.get(caller, id).await?;
        let _busy = self.lock(id).await?;
        if up.state == UploadState::Registered {
            return Err(Error::FileInUse(format!(
                "upload {id} is registered to an image"
            )));
        }
        if let Concat::Partial { used_by: Some(f) } = up.concat {
            return Err(Error::FileInUse(format!(
                "upload {id} is a partial of the final upload {f}"
            )));
        }
        self.db
            .write(move |c| c.upload_delete(id).map(|_| ()))
            .await?;
        self.remove_data(&up).await;
        Ok(())
    }

    /// The bytes stored so far (or a range of them).
    pub async fn open_data(
        &self,
        up: &Upload,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        let (state, _) = self.session_for(up).await?;
        Ok(self.stores.read_session(&state, range).await?)
    }
}

/// The `content_md5` of an upload's metadata, checked (a base64 MD5).
fn content_md5_of(metadata: &BTreeMap<String, String>) -> Result<Option<String>> {
    let Some(m) = metadata.get("content_md5").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    use base64::Engine;
    let ok = base64::engine::general_purpose::STANDARD
        .decode(m)
        .is_ok_and(|d| d.len() == 16);
    if !ok {
        return Err(Error::invalid_param(
            "content_md5",
            FieldCode::Invalid,
            "content_md5 must be a base64 MD5 digest",
        ));
    }
    Ok(Some(m.clone()))
}

/// May `up` take a request of `content_length` bytes at `offset`? False
/// for an empty request at the end of a finished upload (nothing to do).
fn may_append(
    up: &Upload,
    offset: u64,
    content_length: Option<u64>,
    now: Timestamp,
) -> Result<bool> {
    let id = up.id;
    if up.state != UploadState::Uploading {
        if offset == up.offset && content_length.unwrap_or(0) == 0 {
            return Ok(false);
        }
        return Err(Error::UploadLengthExceeded(format!(
            "upload {id} is already complete"
        )));
    }
    if up.expires_at < now {
        return Err(Error::UploadExpired(id));
    }
    if offset != up.offset {
        return Err(Error::UploadOffsetMismatch {
            given: offset,
            current: up.offset,
        });
    }
    let remaining = up.length - up.offset;
    if let Some(l) = content_length
        && l > remaining
    {
        return Err(Error::UploadLengthExceeded(format!(
            "{l} bytes at offset {offset} would go past Upload-Length {}",
            up.length
        )));
    }
    Ok(true)
}

/// The running per-request checksum a request asked for, with what it
/// must come to.
fn chunk_checksum(checksum: Option<&Checksum>) -> Result<Option<(ChunkChecksum, &Checksum)>> {
    let Some(c) = checksum else {
        return Ok(None);
    };
    let sum = ChunkChecksum::new(&c.algo)?.ok_or_else(|| {
        Error::InvalidHeader(format!("unsupported checksum algorithm \"{}\"", c.algo))
    })?;
    Ok(Some((sum, c)))
}

/// Stream a request body into the session and the hashers, within
/// `(content_length, remaining, upload length)`. Returns the bytes
/// received, or (inner error) why the request's bytes must be discarded: a
/// body longer than declared or past Upload-Length, a writer error, a
/// checksum that does not match. A client that went away keeps what
/// arrived (unless a checksum was asked for).
async fn receive<S>(
    body: S,
    writer: &mut SessionWriter,
    hasher: &mut Option<StreamHasher>,
    chunk_sum: Option<(ChunkChecksum, &Checksum)>,
    (content_length, remaining, length): (Option<u64>, u64, u64),
) -> Result<std::result::Result<u64, Error>>
where
    S: Stream<Item = std::result::Result<Bytes, Error>> + Send,
{
    let mut received = 0u64;
    let mut body = std::pin::pin!(body);
    let mut dropped = false;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            dropped = true; // the client went away: keep what arrived
            break;
        };
        if content_length.is_some_and(|l| received + chunk.len() as u64 > l) {
            return Ok(Err(Error::InvalidHeader(
                "the body is longer than the request declared".into(),
            )));
        }
        if received + chunk.len() as u64 > remaining {
            return Ok(Err(Error::UploadLengthExceeded(format!(
                "the body goes past Upload-Length {length}"
            ))));
        }
        received += chunk.len() as u64;
        if let Some((sum, _)) = &chunk_sum {
            sum.update(&chunk).await?;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk).await?;
        }
        // A part that cannot be sent yet goes later from the staged bytes.
        if let Err(e) = writer.write(chunk).await {
            return Ok(Err(e.into()));
        }
    }
    if let Some((sum, c)) = chunk_sum {
        let got = sum.finish().await?;
        if dropped || got != c.digest {
            return Ok(Err(Error::UploadChecksumMismatch(format!(
                "the {} checksum of the request body does not match Upload-Checksum; the chunk was discarded",
                c.algo
            ))));
        }
    }
    Ok(Ok(received))
}
