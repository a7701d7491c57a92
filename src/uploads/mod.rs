//! Resumable uploads (phase one of the pipeline): tus 1.0 sessions kept in
//! SQLite. Each PATCH appends bytes while md5 and sha1 run on other threads;
//! the bytes are fsynced and the new offset and hasher state committed
//! together before the PATCH is acknowledged, so a crash loses at most the
//! unacknowledged chunk and resuming never re-reads stored bytes. Once the
//! last byte is acknowledged the upload is complete for every reader: a
//! completion a crash cut short is finished before anything reads it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::db::Db;
use crate::db::uploads::{self as q, Upload, UploadState};
use crate::digest::{ChunkChecksum, HashState, StreamHasher};
use crate::error::{Error, FieldCode, FieldError, Result};
use crate::identity::Caller;
use crate::manifest::now_iso;
use crate::store::namespace::{self, Namespace};
use crate::store::s3::PartSender;
use crate::store::{ByteStream, FsStore, StoreError, Stores};

/// Upload limits and settings.
#[derive(Debug, Clone)]
pub struct UploadsConfig {
    pub max_file_size: u64,
    pub max_bytes_in_flight_per_account: u64,
    pub expire_after_secs: u64,
    pub max_open_per_account: u64,
    pub max_streaming_per_account: usize,
    pub assets_allowed: Vec<Uuid>,
}

/// The upload service.
#[derive(Clone)]
pub struct Uploads {
    db: Db,
    stores: Stores,
    cfg: Arc<UploadsConfig>,
    locks: UploadLocks,
    streaming: Streaming,
    tee_slots: Arc<tokio::sync::Semaphore>,
}

/// PATCHes that may send S3 parts while their body streams in, at once.
/// Each holds up to `parts_in_flight` parts in memory; other PATCHes stage
/// their bytes and send them afterwards, one part at a time.
const TEE_SLOTS: usize = 2;

/// A PATCH's parts on their way to S3, and the slot that allows it.
struct Tee {
    parts: PartSender,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// A request's per-chunk checksum: algorithm and expected digest.
pub struct Checksum {
    pub algo: String,
    pub digest: Vec<u8>,
}

/// One async lock per upload in use: a request that changes an upload
/// holds it (a second PATCH is refused with 423 at once), and a reader that
/// finds a completion in progress waits for it.
#[derive(Clone, Default)]
struct UploadLocks(Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>);

/// Holds an upload busy; released on drop.
struct BusyGuard {
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
    fn try_lock(&self, id: Uuid) -> Result<BusyGuard> {
        let g = self
            .entry(id)?
            .try_lock_owned()
            .map_err(|_| Error::UploadLocked(id))?;
        Ok(self.guard(id, g))
    }

    /// The upload's lock, waiting up to `wait` for the request holding it.
    async fn lock(&self, id: Uuid, wait: Duration) -> Result<BusyGuard> {
        let l = self.entry(id)?;
        match tokio::time::timeout(wait, l.lock_owned()).await {
            Ok(g) => Ok(self.guard(id, g)),
            Err(_) => Err(Error::UploadLocked(id)),
        }
    }
}

/// Where unfinished uploads to the assets store keep their bytes. Its
/// leading dot keeps it out of every `/assets/...` path.
pub const ASSETS_UPLOAD_AREA: &str = ".imgapi-uploads/";

/// Most uploads `GET /uploads` answers with at once (and its default).
pub const MAX_LIST: u32 = 1000;

/// Counts the upload requests each account is streaming.
#[derive(Clone)]
struct Streaming {
    counts: Arc<Mutex<HashMap<Option<Uuid>, usize>>>,
    max: usize,
}

/// One streaming request of an account; counted until dropped.
struct StreamSlot {
    streaming: Streaming,
    owner: Option<Uuid>,
}

impl Streaming {
    fn enter(&self, owner: Option<Uuid>) -> Result<StreamSlot> {
        let mut m = self
            .counts
            .lock()
            .map_err(|_| Error::internal("poisoned"))?;
        let n = m.entry(owner).or_default();
        if *n >= self.max {
            return Err(Error::TooManyRequests(format!(
                "the account is streaming {n} upload requests at once (at most {}); \
                 retry when one ends",
                self.max
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            streaming: self.clone(),
            owner,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.streaming.counts.lock()
            && let Some(n) = m.get_mut(&self.owner)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.owner);
            }
        }
    }
}

/// How long a request that needs an upload's completion waits for another
/// request that is completing it.
const SETTLE_WAIT: Duration = Duration::from_secs(60);

fn expiry_from_now(secs: u64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs as i64))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Uploads {
    pub fn new(db: Db, stores: Stores, cfg: UploadsConfig) -> Uploads {
        let max_streaming = cfg.max_streaming_per_account;
        Uploads {
            db,
            stores,
            cfg: Arc::new(cfg),
            locks: UploadLocks::default(),
            streaming: Streaming {
                counts: Arc::default(),
                max: max_streaming,
            },
            tee_slots: Arc::new(tokio::sync::Semaphore::new(TEE_SLOTS)),
        }
    }

    pub fn max_file_size(&self) -> u64 {
        self.cfg.max_file_size
    }

    fn fs(&self, store: &str) -> Result<&FsStore> {
        self.stores
            .by_name(store)?
            .as_fs()
            .ok_or_else(|| Error::internal("upload data needs a file-system store"))
    }

    /// Where the bytes of an upload to `target` (a store name) accumulate:
    /// the target store itself when it is a directory, else staging.
    fn data_store(&self, target: &str) -> &'static str {
        match self.stores.by_name(target).map(|s| s.as_fs().is_some()) {
            Ok(true) if target == "assets" => "assets",
            Ok(true) => "manta",
            _ => "staging",
        }
    }

    fn lock(&self, id: Uuid) -> Result<BusyGuard> {
        self.locks.try_lock(id)
    }

    /// May `caller` write to the storage path `p`?
    pub async fn check_path_access(
        &self,
        caller: &Caller,
        p: &namespace::StoragePath,
    ) -> Result<()> {
        if caller.operator && caller.account.is_none() {
            return Ok(());
        }
        let Some(account) = caller.account else {
            return Err(Error::Unauthorized("authentication required".into()));
        };
        match &p.ns {
            Namespace::Assets => {
                if self.cfg.assets_allowed.contains(&account) {
                    Ok(())
                } else {
                    Err(Error::invalid_param(
                        "path",
                        FieldCode::NotAllowed,
                        "only operators and allowed accounts may use /assets paths",
                    ))
                }
            }
            Namespace::Manta { owner } => {
                // A UUID-shaped owner names an account uuid, never a login.
                if let Ok(u) = Uuid::parse_str(owner) {
                    if u == account {
                        return Ok(());
                    }
                    return Err(Error::NotMantaPathOwner(format!(
                        "account {account} may not use {} (namespace of \"{owner}\")",
                        p.path
                    )));
                }
                let acct = self
                    .db
                    .read(move |c| crate::db::accounts::by_uuid(c, account))
                    .await?;
                if acct.is_some_and(|a| a.login == *owner) {
                    Ok(())
                } else {
                    Err(Error::NotMantaPathOwner(format!(
                        "account {account} may not use {} (namespace of \"{owner}\")",
                        p.path
                    )))
                }
            }
        }
    }

    /// Create an upload session (tus `creation`).
    pub async fn create(
        &self,
        caller: &Caller,
        length: u64,
        metadata: BTreeMap<String, String>,
    ) -> Result<Upload> {
        caller.require_auth()?;
        if length > self.cfg.max_file_size {
            return Err(Error::QuotaExceeded(format!(
                "Upload-Length {length} is larger than the maximum file size, {}",
                self.cfg.max_file_size
            )));
        }
        let path = match metadata.get("path").filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => {
                let sp = namespace::parse(p)
                    .map_err(|m| Error::invalid_param("path", FieldCode::Invalid, m))?;
                self.check_path_access(caller, &sp).await?;
                Some(sp)
            }
        };
        let content_md5 = match metadata.get("content_md5").filter(|s| !s.is_empty()) {
            None => None,
            Some(m) => {
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
                Some(m.clone())
            }
        };
        let id = Uuid::new_v4();
        // Held until created (and, when empty, completed): not yet "stalled".
        let _busy = self.lock(id)?;
        let store = self
            .data_store(path.as_ref().map(|p| p.store()).unwrap_or("manta"))
            .to_string();
        let area = format!(
            "{}/uploads/{}/{id}",
            namespace::RESERVED_LOGIN,
            &id.to_string()[..3]
        );
        let data_key = match store.as_str() {
            // A dot segment: no /assets path can name it.
            "assets" => format!("{ASSETS_UPLOAD_AREA}{id}"),
            "staging" => staging_key(&area, 0),
            _ => area.clone(),
        };
        // Bytes bound for an object store go to one S3 multipart upload.
        let target_name = path.as_ref().map(|p| p.store()).unwrap_or("manta");
        let s3 = match self.stores.by_name(target_name)?.as_s3() {
            Some(s3store) if length > 0 => {
                let key = path.as_ref().map(|p| p.key.clone()).unwrap_or(area);
                let upload_id = s3store.create_multipart(&key).await?;
                Some(q::MultipartState {
                    key,
                    upload_id,
                    parts: vec![],
                    staged_from: 0,
                })
            }
            _ => None,
        };
        let now = now_iso();
        let up = Upload {
            id,
            owner: caller.account,
            length,
            offset: 0,
            state: UploadState::Uploading,
            store,
            data_key,
            path: path.map(|p| p.path),
            metadata,
            content_md5,
            hash: HashState::default(),
            md5: None,
            sha1: None,
            error: None,
            image_uuid: None,
            created_at: now.clone(),
            updated_at: now,
            expires_at: expiry_from_now(self.cfg.expire_after_secs),
            data_mtime: None,
            s3,
        };
        // Create the (empty) data file before the row, so a row always has one.
        self.fs(&up.store)?
            .open_append(&up.data_key, 0)
            .await?
            .finish()
            .await?;
        let quota = self.cfg.max_bytes_in_flight_per_account;
        let max_open = self.cfg.max_open_per_account;
        let owner = up.owner;
        let row = up.clone();
        let res = self
            .db
            .write(move |c| {
                if owner.is_some() {
                    let open = q::open_count(c, owner)?;
                    if open >= max_open {
                        return Err(Error::TooManyRequests(format!(
                            "the account has {open} uploads open (at most {max_open}): \
                             register or terminate some first"
                        )));
                    }
                    let used = q::bytes_in_flight(c, owner)?;
                    if used + row.length > quota {
                        return Err(Error::QuotaExceeded(format!(
                            "this upload of {} bytes would put the account over its quota of {quota} \
                             bytes in unfinished uploads ({used} in use)",
                            row.length
                        )));
                    }
                }
                Ok(q::insert(c, &row)?)
            })
            .await;
        if let Err(e) = res {
            let _ = self.fs(&up.store)?.delete(&up.data_key).await;
            return Err(e);
        }
        if length == 0 {
            return self.complete(up).await;
        }
        Ok(up)
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
    async fn owned(&self, caller: &Caller, id: Uuid) -> Result<Upload> {
        caller.require_auth()?;
        let up = self.db.read(move |c| q::get(c, id)).await?;
        match up {
            Some(u) if caller.account.is_none() && caller.operator => Ok(u),
            Some(u) if u.owner.is_some() && u.owner == caller.account => Ok(u),
            _ => Err(Error::UploadNotFound(id)),
        }
    }

    /// Complete a stalled upload under its lock (waiting for a request that
    /// is completing it right now); the upload as it is then.
    async fn settle(&self, id: Uuid) -> Result<Upload> {
        let _busy = self.locks.lock(id, SETTLE_WAIT).await?;
        let up = self
            .db
            .read(move |c| q::get(c, id))
            .await?
            .ok_or(Error::UploadNotFound(id))?;
        if !is_stalled(&up) {
            return Ok(up);
        }
        self.finish_one(up).await
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
            .read(move |c| q::list_page(c, owner, after, limit))
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
        let _busy = self.lock(id)?;
        // Read under the lock: another request may have just finished.
        let mut up = self.owned(caller, id).await?;
        let _slot = self.streaming.enter(up.owner)?;
        if up.state != UploadState::Uploading {
            if offset == up.offset && content_length.unwrap_or(0) == 0 {
                return Ok(up); // an empty PATCH at the end: nothing to do
            }
            return Err(Error::UploadLengthExceeded(format!(
                "upload {id} is already complete"
            )));
        }
        if up.expires_at < now_iso() {
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
        let chunk_sum = match &checksum {
            None => None,
            Some(c) => Some(ChunkChecksum::new(&c.algo)?.ok_or_else(|| {
                Error::InvalidHeader(format!("unsupported checksum algorithm \"{}\"", c.algo))
            })?),
        };
        let fs = self.fs(&up.store)?;
        let staged_from = up.s3.as_ref().map(|m| m.staged_from).unwrap_or(0);
        let mut writer = fs
            .open_append(&up.data_key, up.offset - staged_from)
            .await?;
        let mut hasher = StreamHasher::resume(&up.hash)?;
        let mut tee = self.part_tee(&up, content_length).await;
        let mut received = 0u64;
        let mut body = std::pin::pin!(body);
        let mut failure: Option<Error> = None;
        let mut dropped = false;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(_) => {
                    dropped = true; // the client went away: keep what arrived
                    break;
                }
            };
            if content_length.is_some_and(|l| received + chunk.len() as u64 > l) {
                failure = Some(Error::InvalidHeader(
                    "the body is longer than the request declared".into(),
                ));
                break;
            }
            if received + chunk.len() as u64 > remaining {
                failure = Some(Error::UploadLengthExceeded(format!(
                    "the body goes past Upload-Length {}",
                    up.length
                )));
                break;
            }
            received += chunk.len() as u64;
            if let Some(c) = &chunk_sum {
                c.update(&chunk).await?;
            }
            hasher.update(&chunk).await?;
            if let Some(t) = &mut tee
                && let Err(e) = t.parts.write(&chunk).await
            {
                // The bytes are staged locally too: the parts go later.
                tracing::warn!(upload.id = %id, error = %e, "could not send a part yet");
                tee = None;
            }
            if let Err(e) = writer.write(chunk).await {
                failure = Some(e.into());
                break;
            }
        }
        if failure.is_none()
            && let (Some(c), Some(sum)) = (&checksum, chunk_sum)
        {
            let got = sum.finish().await?;
            if dropped || got != c.digest {
                failure = Some(Error::UploadChecksumMismatch(format!(
                    "the {} checksum of the request body does not match Upload-Checksum; the chunk was discarded",
                    c.algo
                )));
            }
        }
        if let Some(e) = failure {
            let writer_error = writer.abort().await?;
            return Err(writer_error.map(Error::from).unwrap_or(e));
        }
        // The fsync and the hash threads' last chunks run at the same time.
        let (written, hashed) = tokio::join!(writer.finish(), hasher.finish_state());
        if let Err(e) = written {
            // e.g. ENOSPC: nothing of this request counts; cut it back.
            let _ = fs.truncate(&up.data_key, up.offset - staged_from).await;
            return Err(e.into());
        }
        up.hash = hashed?;
        up.offset += received;
        up.updated_at = now_iso();
        up.expires_at = expiry_from_now(self.cfg.expire_after_secs);
        if let Some(t) = tee {
            self.record_sent_parts(&mut up, t).await;
        }
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        if up.offset == up.length {
            return self.complete(up).await;
        }
        if up.s3.is_some() {
            // The bytes are durable here; full parts go to S3 now, or at a
            // later PATCH if the store is unreachable.
            if let Err(e) = self.flush_parts(&mut up, false).await {
                tracing::warn!(upload.id = %up.id, error = %e, "could not send parts yet");
            }
        }
        Ok(up)
    }

    /// For an upload into S3 with less than a part unsent: a sender primed
    /// with the unsent bytes, so full parts go out while a PATCH streams in
    /// (the bytes are staged locally as well; a part that fails is sent
    /// again from there later).
    async fn part_tee(&self, up: &Upload, content_length: Option<u64>) -> Option<Tee> {
        let m = up.s3.as_ref()?;
        let s3 = self.stores.by_name(self.target_store(up)).ok()?.as_s3()?;
        let sent = bytes_in_parts(m);
        let unsent = up.offset - sent;
        if unsent >= s3.part_size() {
            return None; // a backlog from an outage: flush_parts sends it
        }
        if content_length.is_some_and(|l| unsent + l < s3.part_size()) {
            return None; // fills no part: nothing to send, nothing to read back
        }
        let slot = self.tee_slots.clone().try_acquire_owned().ok()?;
        let fs = self.fs(&up.store).ok()?;
        let at = sent.checked_sub(m.staged_from)?;
        let filled = read_range(fs, &up.data_key, at..at + unsent, s3.part_size())
            .await
            .ok()?;
        let first = m.parts.len() as i32 + 1;
        Some(Tee {
            parts: PartSender::new(Arc::new(s3.clone()), &m.key, &m.upload_id, first, filled),
            _slot: slot,
        })
    }

    /// After a PATCH whose bytes are durable locally: record the parts the
    /// tee sent (committed with the PATCH's row). On any failure nothing is
    /// recorded: the staged bytes stay and the parts go again later.
    async fn record_sent_parts(&self, up: &mut Upload, tee: Tee) {
        let part = tee.parts.part_size();
        let sent = match tee.parts.finish().await {
            Ok((sent, _rest)) => sent,
            Err(e) => {
                tracing::warn!(upload.id = %up.id, error = %e, "could not send a part yet");
                return;
            }
        };
        if let Some(m) = up.s3.as_mut() {
            m.parts.extend(sent.into_iter().map(|(n, etag)| q::Part {
                n,
                etag,
                size: part,
            }));
        }
    }

    /// Send the staged bytes not yet in a part as S3 parts: every full part,
    /// or (`last`) all of them; then record the parts. The staged bytes stay
    /// until the upload is complete: should the store lose an unfinished
    /// multipart upload, they are sent again from here.
    async fn flush_parts(&self, up: &mut Upload, last: bool) -> Result<()> {
        let Some(mut m) = up.s3.clone() else {
            return Ok(());
        };
        let target = self.stores.by_name(self.target_store(up))?;
        let s3 = target
            .as_s3()
            .ok_or_else(|| Error::internal("multipart upload without S3"))?;
        let part = s3.part_size();
        let fs = self.fs(&up.store)?;
        let mut sent = bytes_in_parts(&m);
        let before = m.parts.len();
        while up.offset - sent >= part || (last && (up.offset > sent || m.parts.is_empty())) {
            let size = (up.offset - sent).min(part);
            let at = sent
                .checked_sub(m.staged_from)
                .ok_or_else(|| Error::internal("staged bytes start after the parts"))?;
            let buf = read_range(fs, &up.data_key, at..at + size, size).await?;
            let n = m.parts.len() as i32 + 1;
            let etag = s3
                .upload_part(&m.key, &m.upload_id, n, buf.freeze())
                .await?;
            m.parts.push(q::Part { n, etag, size });
            sent += size;
            if size == 0 {
                break;
            }
        }
        if m.parts.len() == before {
            return Ok(());
        }
        up.s3 = Some(m);
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        Ok(())
    }

    /// An S3 upload whose multipart upload the store lost (a store whose
    /// completion is not atomic, cut short by a crash: neither the upload
    /// nor the object exists any more) is sent again from its staged bytes,
    /// in a new multipart upload. Returns false if that cannot be done.
    async fn restart_multipart(&self, up: &mut Upload) -> Result<bool> {
        let Some(m) = up.s3.clone() else {
            return Ok(false);
        };
        let target = self.stores.by_name(self.target_store(up))?;
        let Some(s3) = target.as_s3() else {
            return Ok(false);
        };
        let staged = self.fs(&up.store)?.head(&up.data_key).await?;
        let all_staged = m.staged_from == 0 && staged.is_some_and(|s| s.size >= up.offset);
        if !all_staged || target.head(&m.key).await?.is_some() {
            return Ok(false);
        }
        let _ = s3.abort_multipart(&m.key, &m.upload_id).await;
        let upload_id = s3.create_multipart(&m.key).await?;
        tracing::warn!(upload.id = %up.id, "the store lost the multipart upload; sending the staged bytes again");
        up.s3 = Some(q::MultipartState {
            upload_id,
            parts: vec![],
            ..m
        });
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        Ok(true)
    }

    /// The store the finished object belongs in.
    fn target_store(&self, up: &Upload) -> &'static str {
        match up.path.as_deref().map(namespace::parse) {
            Some(Ok(sp)) => sp.store(),
            _ => "manta",
        }
    }

    /// All bytes are in: record the digests, check `content_md5`, move the
    /// bytes to the target path if one was given.
    async fn complete(&self, mut up: Upload) -> Result<Upload> {
        let d = up.hash.digests()?;
        let mut leftover: Option<(String, String)> = None;
        up.md5 = Some(d.md5_base64());
        up.sha1 = Some(d.sha1_hex());
        up.updated_at = now_iso();
        let mismatch = up
            .content_md5
            .as_ref()
            .is_some_and(|m| *m != d.md5_base64());
        if mismatch {
            up.state = UploadState::Failed;
            up.error = Some("content_md5 does not match the uploaded bytes".into());
        } else if let Some(m) = up.s3.clone() {
            self.flush_parts(&mut up, true).await?;
            let m2 = up.s3.clone().unwrap_or(m);
            let target_name = self.target_store(&up);
            let target = self.stores.by_name(target_name)?;
            let s3 = target
                .as_s3()
                .ok_or_else(|| Error::internal("multipart upload without S3"))?;
            let parts: Vec<(i32, String)> =
                m2.parts.iter().map(|p| (p.n, p.etag.clone())).collect();
            s3.complete_multipart(&m2.key, &m2.upload_id, &parts)
                .await?;
            leftover = Some((up.store.clone(), up.data_key.clone()));
            up.state = UploadState::Complete;
            up.store = target_name.to_string();
            up.data_key = m2.key.clone();
            if up.path.is_some() {
                up.data_mtime = target.head(&m2.key).await?.map(|m| stamp(&m));
            }
            up.s3 = None;
        } else {
            up.state = UploadState::Complete;
            if let Some(p) = &up.path {
                let sp = namespace::parse(p).map_err(Error::internal)?;
                let target = self.stores.by_name(sp.store())?;
                if up.store == sp.store() {
                    let moved = self.fs(&up.store)?.rename(&up.data_key, &sp.key).await;
                    if let Err(e) = moved {
                        return self.fail_at_path(up, e).await;
                    }
                } else {
                    // Into the object store: stream the staged bytes there.
                    let body = self.fs(&up.store)?.get(&up.data_key, None).await?;
                    let mut w = target.begin_write(&sp.key).await?;
                    let mut body = body;
                    while let Some(c) = body.next().await {
                        w.write(c?).await?;
                    }
                    w.commit().await?;
                    leftover = Some((up.store.clone(), up.data_key.clone()));
                    up.store = sp.store().to_string();
                }
                up.data_mtime = target.head(&sp.key).await?.map(|m| stamp(&m));
                up.data_key = sp.key;
            }
        }
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        // The staged copy goes only once the row names the object.
        if let Some((store, key)) = leftover
            && let Ok(fs) = self.fs(&store)
        {
            let _ = fs.delete(&key).await;
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

    /// The bytes cannot be put at the upload's path (a directory stands
    /// there, a file stands where a directory must be, a name too long for
    /// the file system): the upload fails for good, with a reason its owner
    /// sees (`/info`), and can be terminated; other errors are returned as
    /// they are (the completion is tried again later).
    async fn fail_at_path(&self, mut up: Upload, e: StoreError) -> Result<Upload> {
        if !e.is_unusable_path() {
            return Err(e.into());
        }
        let why = e.to_string();
        let path = up.path.clone().unwrap_or_default();
        let msg = format!("the upload cannot be stored at {path}: {why}");
        up.state = UploadState::Failed;
        up.error = Some(msg.clone());
        up.updated_at = now_iso();
        let row = up.clone();
        self.db.write(move |c| q::update(c, &row)).await?;
        Err(Error::invalid_param("path", FieldCode::Invalid, msg))
    }

    /// Terminate an upload: its row and bytes go at once. A completed upload
    /// with a target path keeps the object at that path.
    pub async fn terminate(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let up = self.get(caller, id).await?;
        let _busy = self.lock(id)?;
        if up.state == UploadState::Registered {
            return Err(Error::FileInUse(format!(
                "upload {id} is registered to an image"
            )));
        }
        self.db.write(move |c| q::delete(c, id).map(|_| ())).await?;
        self.remove_data(&up).await;
        Ok(())
    }

    async fn remove_data(&self, up: &Upload) {
        let at_path = up.path.is_some() && up.state == UploadState::Complete;
        if at_path {
            return;
        }
        if let Some(m) = &up.s3
            && let Ok(target) = self.stores.by_name(self.target_store(up))
            && let Some(s3) = target.as_s3()
            && let Err(e) = s3.abort_multipart(&m.key, &m.upload_id).await
        {
            tracing::warn!(upload.id = %up.id, error = %e, "could not abort the multipart upload");
        }
        // In a directory, or (a finished upload without a path) in S3.
        if let Ok(store) = self.stores.by_name(&up.store)
            && let Err(e) = store.delete(&up.data_key).await
        {
            tracing::warn!(upload.id = %up.id, error = %e, "could not remove upload data");
        }
    }

    /// The bytes stored so far (or a range of them).
    pub async fn open_data(
        &self,
        up: &Upload,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        let range = range.unwrap_or(0..up.offset);
        Ok(self
            .stores
            .by_name(&up.store)?
            .get(&up.data_key, Some(range))
            .await?)
    }

    /// Finish uploads whose last bytes were acknowledged but whose
    /// completion a crash cut short (before it started, or after the object
    /// was in place but before the row said so). Returns how many were
    /// finished. Runs at start-up before the listener opens, and
    /// periodically; readers settle such an upload themselves on access.
    pub async fn finish_stalled(&self) -> Result<usize> {
        let stalled = self.db.read(q::stalled).await?;
        let mut finished = 0;
        for up in stalled {
            let id = up.id;
            let Ok(_busy) = self.lock(id) else {
                continue; // a request is completing it right now
            };
            let Some(up) = self.db.read(move |c| q::get(c, id)).await? else {
                continue;
            };
            if !is_stalled(&up) {
                continue;
            }
            match self.finish_one(up).await {
                Ok(_) => finished += 1,
                Err(e) => {
                    tracing::warn!(upload.id = %id, error = %e, "could not finish a stalled upload yet")
                }
            }
        }
        Ok(finished)
    }

    /// Complete a stalled upload (its lock held): complete it now, or
    /// recognise that an interrupted completion already put the bytes in
    /// place. The upload as it is then; the error if neither can be done
    /// now (e.g. 503 while the store is down).
    async fn finish_one(&self, up: Upload) -> Result<Upload> {
        let id = up.id;
        let err = match self.complete(up.clone()).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if let Some(now) = self.db.read(move |c| q::get(c, id)).await?
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
        self.db.write(move |c| q::update(c, &row)).await?;
        if up.store != done.store
            && let Ok(fs) = self.fs(&up.store)
        {
            let _ = fs.delete(&up.data_key).await;
        }
        tracing::info!(upload.id = %id, "finished an upload whose completion was cut short");
        Ok(done)
    }

    /// If `up`'s bytes are already where completion puts them (the object
    /// in S3 with this upload's md5 or multipart ETag; the file renamed to
    /// its path), the row completion would have written.
    async fn completed_before(&self, up: &Upload) -> Option<Upload> {
        let d = up.hash.digests().ok()?;
        let mut done = up.clone();
        done.state = UploadState::Complete;
        done.md5 = Some(d.md5_base64());
        done.sha1 = Some(d.sha1_hex());
        done.updated_at = now_iso();
        if let Some(m) = &up.s3 {
            let name = self.target_store(up);
            let target = self.stores.by_name(name).ok()?;
            let meta = target.head(&m.key).await.ok()??;
            let etag = meta
                .etag
                .as_deref()
                .unwrap_or("")
                .trim_matches('"')
                .to_string();
            let ours =
                etag == hex::encode(d.md5) || multipart_etag(&m.parts).is_some_and(|e| e == etag);
            if meta.size != up.length || !ours {
                return None;
            }
            done.store = name.to_string();
            done.data_key = m.key.clone();
            done.s3 = None;
            if up.path.is_some() {
                done.data_mtime = Some(stamp(&meta));
            }
            return Some(done);
        }
        let sp = namespace::parse(up.path.as_deref()?).ok()?;
        let staged = self.fs(&up.store).ok()?.head(&up.data_key).await.ok()?;
        let meta = self
            .stores
            .by_name(sp.store())
            .ok()?
            .head(&sp.key)
            .await
            .ok()??;
        if staged.is_some() || meta.size != up.length {
            return None;
        }
        done.store = sp.store().to_string();
        done.data_key = sp.key.clone();
        done.data_mtime = Some(stamp(&meta));
        Some(done)
    }

    /// Remove uploads idle past their expiry; returns how many.
    pub async fn reap_expired(&self) -> Result<usize> {
        let now = now_iso();
        let gone = self
            .db
            .write(move |c| {
                let ups = q::expired(c, &now)?;
                for u in &ups {
                    q::delete(c, u.id)?;
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
}

/// Reap expired uploads and finish stalled ones, at start-up and every 10
/// minutes.
pub async fn reap_forever(uploads: Uploads) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(e) = uploads.finish_stalled().await {
            tracing::warn!(error = %e, "finishing stalled uploads failed");
        }
        if let Err(e) = uploads.reap_expired().await {
            tracing::warn!(error = %e, "upload reaper failed");
        }
    }
}

/// Every byte acknowledged, the completion not recorded: a crash cut it short.
fn is_stalled(up: &Upload) -> bool {
    up.state == UploadState::Uploading && up.offset == up.length
}

/// A stamp that changes when an object is rewritten: its size and ETag
/// (object stores) or mtime (directories).
pub fn stamp(m: &crate::store::ObjectMeta) -> String {
    match &m.etag {
        Some(e) => format!("{}@{e}", m.size),
        None => format!("{}@{}", m.size, m.mtime_ns),
    }
}

/// The ETag S3 gives an object completed from `parts`: the md5 of their
/// binary md5s, then `-` and their count.
fn multipart_etag(parts: &[q::Part]) -> Option<String> {
    let mut cat = Vec::with_capacity(parts.len() * 16);
    for p in parts {
        cat.extend(hex::decode(p.etag.trim_matches('"')).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(crate::digest::Digests::of(&cat).md5),
        parts.len()
    ))
}

/// Bytes of an upload already sent as S3 parts (the first unsent byte).
pub fn bytes_in_parts(m: &q::MultipartState) -> u64 {
    m.parts.iter().map(|p| p.size).sum()
}

/// Bytes `range` of `key` in memory, in a buffer with room for `capacity`.
async fn read_range(
    fs: &FsStore,
    key: &str,
    range: std::ops::Range<u64>,
    capacity: u64,
) -> Result<bytes::BytesMut> {
    let mut buf = bytes::BytesMut::with_capacity(capacity as usize);
    if range.is_empty() {
        return Ok(buf);
    }
    let mut body = fs.get(key, Some(range)).await?;
    while let Some(c) = body.next().await {
        buf.extend_from_slice(&c?);
    }
    Ok(buf)
}

/// The staging file of an upload area whose first byte is at `from`.
fn staging_key(area: &str, from: u64) -> String {
    format!("{area}.{from}")
}
