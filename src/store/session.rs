//! Resumable writes ("sessions"): bytes that arrive over many requests and
//! become one object at the end. The bytes are staged in a directory store
//! (fsynced before a request is acknowledged); when the object belongs in
//! an object store they also go to a multipart upload as parts fill, and
//! the staged bytes stay until completion so a multipart upload the server
//! lost can be sent again. The state to persist between requests is a
//! plain value (`SessionState`): the caller keeps it (uploads keep it in
//! their SQLite row) and hands it back; nothing here knows about rows.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::error::{Result, StoreError};
use super::fs::FsAppender;
use super::pieces::{self, PieceWriter, Pieces};
use super::s3::PartSender;
use super::{ByteStream, FsStore, ObjectMeta, S3Store, Store, StoreName, Stores};

/// A multipart upload to an object store: its parts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartState {
    /// The object's key in the target store.
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<Part>,
    /// Offset of the first byte still staged locally (the staging file's start).
    pub staged_from: u64,
}

impl MultipartState {
    /// Bytes already sent as parts (the first unsent byte).
    pub fn bytes_in_parts(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The ETag an object store gives the object completed from these
    /// parts: the md5 of their binary md5s, then `-` and their count.
    pub fn multipart_etag(&self) -> Option<String> {
        let mut cat = Vec::with_capacity(self.parts.len() * 16);
        for p in &self.parts {
            cat.extend(hex::decode(p.etag.trim_matches('"')).ok()?);
        }
        Some(format!(
            "{}-{}",
            hex::encode(crate::digest::Digests::of(&cat).md5),
            self.parts.len()
        ))
    }
}

/// One part sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    pub n: i32,
    pub etag: String,
    pub size: u64,
}

/// What a session needs kept between requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The directory store holding the staged bytes, and their key.
    pub staged: StoreName,
    pub staged_key: String,
    /// Bytes acknowledged so far.
    pub offset: u64,
    /// The multipart upload, when the object goes to an object store.
    pub multipart: Option<MultipartState>,
    /// Set when the session is a byte range of another session's bytes
    /// (a tus partial upload written in place into its final).
    pub window: Option<Window>,
    /// Set when the session is kept whole in an object store (`staged` is
    /// that store, `staged_key` the area its pieces are under): nothing
    /// is staged on a node (see `pieces`).
    pub pieces: Option<Pieces>,
}

/// A session that is the byte range from `at` of a staged file other
/// writers write other ranges of: its bytes go there by positional writes
/// (nothing is ever cut off), and, when `multipart` is set, it sends them
/// as the parts numbered from `first_part` of that multipart upload (the
/// parts in `multipart.parts` are its own). It is never completed itself:
/// the session of the whole file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub at: u64,
    pub first_part: i32,
}

/// Where a finished session's object is, and what is left to remove once
/// the caller has recorded that.
#[derive(Debug, Clone)]
pub struct Completed {
    pub store: StoreName,
    pub key: String,
    /// The staged copy, to delete after the caller recorded the object.
    pub leftover: Option<(StoreName, String)>,
}

/// The outcome of `Stores::move_object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Moved (a rename, or a server-side copy then delete).
    Moved,
    /// The source is gone but the destination is there (an earlier move).
    AlreadyThere,
    /// Neither is there.
    SourceGone,
    /// The two stores are not one place: the caller copies by streaming.
    NotHere,
}

/// A request's bytes on their way into a session: staged locally (and
/// teed into parts), or, for a session kept in an object store, into its
/// pieces.
pub enum SessionWriter {
    Staged(StagedWriter),
    Pieces(PieceWriter),
}

/// What a request added to a session, once its writer finished.
#[derive(Debug, Default)]
pub struct Appended {
    /// Parts of the session's multipart upload sent on the way (staged
    /// sessions).
    pub parts: Vec<Part>,
    /// The session's pieces now (sessions kept in an object store), and
    /// the store they are in.
    pub pieces: Option<Pieces>,
    store: Option<S3Store>,
    superseded: Vec<String>,
    written: Vec<String>,
}

impl Appended {
    /// The caller recorded the new state: remove what it no longer names.
    pub async fn recorded(&self) {
        if let Some(s3) = &self.store {
            pieces::remove_keys(s3, &self.superseded).await;
        }
    }

    /// The caller could not record the new state: nothing of the request
    /// counts, remove what it wrote.
    pub async fn discard(&self) {
        if let Some(s3) = &self.store {
            pieces::remove_keys(s3, &self.written).await;
        }
    }

    /// After the caller's attempt to record the new state: what it no
    /// longer names goes if it was recorded ([`Appended::recorded`]), what
    /// this request wrote if not ([`Appended::discard`]).
    pub async fn settle<T, E>(
        &self,
        recorded: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match &recorded {
            Ok(_) => self.recorded().await,
            Err(_) => self.discard().await,
        }
        recorded
    }
}

impl SessionWriter {
    /// Add a chunk.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        match self {
            SessionWriter::Staged(w) => w.write(chunk).await,
            SessionWriter::Pieces(w) => w.write(chunk).await,
        }
    }

    /// Stop; nothing of this request counts. Returns the writer's own
    /// error, if it failed (e.g. out of space).
    pub async fn abort(self) -> Result<Option<StoreError>> {
        match self {
            SessionWriter::Staged(w) => w.abort().await,
            SessionWriter::Pieces(mut w) => {
                w.abort().await;
                Ok(None)
            }
        }
    }

    /// Make what was written durable; what the request added. On error
    /// nothing of this request counts.
    pub async fn finish(self) -> Result<Appended> {
        match self {
            SessionWriter::Staged(w) => Ok(Appended {
                parts: w.finish().await?,
                ..Appended::default()
            }),
            SessionWriter::Pieces(w) => {
                let store = w.store();
                let a = w.finish().await?;
                Ok(Appended {
                    parts: vec![],
                    pieces: Some(a.pieces),
                    store: Some(store),
                    superseded: a.superseded,
                    written: a.written,
                })
            }
        }
    }
}

/// A request's bytes on their way into a staged session: staged locally,
/// and (for an object store with less than a part unsent) teed into parts
/// as they stream in.
pub struct StagedWriter {
    staged: FsStore,
    staged_key: String,
    start: u64,
    appender: FsAppender,
    tee: Option<Tee>,
    /// Cut the staged bytes back to `start` on failure (not in a window).
    cut_back: bool,
}

/// A request's parts on their way to the object store, and the slot that
/// allows it.
struct Tee {
    parts: PartSender,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl StagedWriter {
    /// Add a chunk. A part that cannot be sent is not an error: the bytes
    /// are staged and the parts go later. A staging error is returned.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if let Some(t) = &mut self.tee
            && let Err(e) = t.parts.write(&chunk).await
        {
            tracing::warn!(error = %e, "could not send a part yet");
            self.tee = None;
        }
        self.appender.write(chunk).await
    }

    /// Stop and cut the staged bytes back to where this request started.
    /// Returns the writer's own error, if it failed (e.g. out of space).
    pub async fn abort(self) -> Result<Option<StoreError>> {
        self.appender.abort().await
    }

    /// Make what was written durable, then wait for the parts sent on the
    /// way; returns them (none if any failed: they go again later). On
    /// error nothing of this request counts: the staged bytes are cut back.
    pub async fn finish(self) -> Result<Vec<Part>> {
        if let Err(e) = self.appender.finish().await {
            if self.cut_back {
                let _ = self.staged.truncate(&self.staged_key, self.start).await;
            }
            return Err(e);
        }
        let Some(tee) = self.tee else {
            return Ok(vec![]);
        };
        let size = tee.parts.part_size();
        match tee.parts.finish().await {
            Ok((sent, _rest)) => Ok(sent
                .into_iter()
                .map(|(n, etag)| Part { n, etag, size })
                .collect()),
            Err(e) => {
                tracing::warn!(error = %e, "could not send a part yet");
                Ok(vec![])
            }
        }
    }
}

/// Bytes `range` of `key` in memory, in a buffer with room for `capacity`.
async fn read_range(
    fs: &FsStore,
    key: &str,
    range: std::ops::Range<u64>,
    capacity: u64,
) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(capacity as usize);
    if range.is_empty() {
        return Ok(buf);
    }
    let mut body = fs.get(key, Some(range)).await?;
    while let Some(c) = body.next().await {
        buf.extend_from_slice(&c?);
    }
    Ok(buf)
}

impl Stores {
    /// Where a session bound for `target` stages its bytes: the target
    /// itself when it is a directory, else `staging`.
    pub fn staging_for(&self, target: StoreName) -> StoreName {
        match (self.get(target).is_local(), target) {
            (true, StoreName::Assets) => StoreName::Assets,
            (true, _) => StoreName::Manta,
            (false, _) => StoreName::Staging,
        }
    }

    /// Where an upload bound for `target` keeps its bytes between
    /// requests: in `target` itself when it is an object store and
    /// sessions are kept there (`sessions_in_store`: a cluster), else as
    /// `staging_for` says.
    pub fn upload_home(&self, target: StoreName) -> StoreName {
        if self.sessions_in_store && self.get(target).multipart().is_some() {
            return target;
        }
        self.staging_for(target)
    }

    /// Begin a session of `length` bytes whose object goes to `target` at
    /// `target_key`, staged in `staged` at `staged_key` (from
    /// `staging_for`). The staged file exists (empty) when this returns.
    pub async fn begin_session(
        &self,
        target: StoreName,
        target_key: &str,
        staged: StoreName,
        staged_key: String,
        length: u64,
    ) -> Result<SessionState> {
        if let Some(s3) = self.get(staged).multipart() {
            // Kept in the object store: nothing exists until bytes come.
            return Ok(SessionState {
                staged,
                staged_key,
                offset: 0,
                multipart: None,
                window: None,
                pieces: Some(Pieces::new(s3, length)),
            });
        }
        let multipart = match self.get(target).multipart() {
            Some(s3) if length > 0 => Some(MultipartState {
                key: target_key.to_string(),
                upload_id: s3.create_multipart(target_key).await?,
                parts: vec![],
                staged_from: 0,
            }),
            _ => None,
        };
        // Create the (empty) staged file before the caller records it.
        self.get(staged)
            .fs()?
            .open_append(&staged_key, 0)
            .await?
            .finish()
            .await?;
        Ok(SessionState {
            staged,
            staged_key,
            offset: 0,
            multipart,
            window: None,
            pieces: None,
        })
    }

    /// For a file of `lengths`-byte ranges written at once into one session
    /// bound for `target` (tus partial uploads written in place): if that
    /// session is a multipart upload and each range can be its own run of
    /// parts, the number of each range's first part. Every range but the
    /// last must be a whole number of parts (an object store refuses a
    /// short part that is not the last one); the runs then follow each
    /// other with no gap (some stores refuse gaps in part numbers), at
    /// most 10 000 parts in all. None otherwise: the session then sends
    /// the parts itself, in file order, as its contiguous prefix grows.
    pub fn part_runs(&self, target: StoreName, lengths: &[u64]) -> Option<Vec<i32>> {
        let s3 = self.get(target).multipart()?;
        let part = s3.part_size();
        let mut firsts = Vec::with_capacity(lengths.len());
        let mut at = 0u64;
        for (i, len) in lengths.iter().enumerate() {
            let last = i + 1 == lengths.len();
            if (!last && len % part != 0) || *len == 0 {
                return None;
            }
            firsts.push(i32::try_from(at / part + 1).ok()?);
            at += len;
        }
        (at.div_ceil(part) <= 10_000).then_some(firsts)
    }

    /// Open the session for a request's bytes at `state.offset`; anything
    /// staged past it (bytes never acknowledged) is cut off first.
    /// `content_length`, when known, spares reading staged bytes back for a
    /// request that fills no part. `fence` is the writer's fencing token
    /// (it names the objects a session kept in a store gets).
    pub async fn append(
        &self,
        state: &SessionState,
        target: StoreName,
        content_length: Option<u64>,
        fence: i64,
    ) -> Result<SessionWriter> {
        if let Some(p) = &state.pieces {
            let s3 = self.pieces_store(state)?;
            if p.size() != state.offset {
                return Err(StoreError::internal(format!(
                    "the pieces hold {} bytes where the session says {}",
                    p.size(),
                    state.offset
                )));
            }
            return Ok(SessionWriter::Pieces(
                PieceWriter::open(s3, &state.staged_key, p, fence).await?,
            ));
        }
        let fs = self.get(state.staged).fs()?;
        let (start, appender) = match state.window {
            Some(w) => {
                let start = w.at + state.offset;
                (start, fs.open_at(&state.staged_key, start).await?)
            }
            None => {
                let staged_from = state.multipart.as_ref().map(|m| m.staged_from).unwrap_or(0);
                let start = state.offset - staged_from;
                (start, fs.open_append(&state.staged_key, start).await?)
            }
        };
        let tee = self.part_tee(state, target, content_length).await;
        Ok(SessionWriter::Staged(StagedWriter {
            staged: fs.clone(),
            staged_key: state.staged_key.clone(),
            start,
            appender,
            tee,
            cut_back: state.window.is_none(),
        }))
    }

    /// For a session into an object store with less than a part unsent: a
    /// sender primed with the unsent bytes, so full parts go out while a
    /// request streams in (a part that fails is sent again later from the
    /// staged bytes).
    async fn part_tee(
        &self,
        state: &SessionState,
        target: StoreName,
        content_length: Option<u64>,
    ) -> Option<Tee> {
        let m = state.multipart.as_ref()?;
        let s3 = self.get(target).multipart()?;
        let sent = m.bytes_in_parts();
        let unsent = state.offset - sent;
        if unsent >= s3.part_size() {
            return None; // a backlog from an outage: flush sends it
        }
        if content_length.is_some_and(|l| unsent + l < s3.part_size()) {
            return None; // fills no part: nothing to send, nothing to read back
        }
        let slot = s3.tee_slot()?;
        let fs = self.get(state.staged).fs().ok()?;
        let at = sent.checked_sub(m.staged_from)? + state.window.map_or(0, |w| w.at);
        let filled = read_range(fs, &state.staged_key, at..at + unsent, s3.part_size())
            .await
            .ok()?;
        let first = m.parts.len() as i32 + state.window.map_or(1, |w| w.first_part);
        Some(Tee {
            parts: PartSender::new(Arc::new(s3.clone()), &m.key, &m.upload_id, first, filled),
            _slot: slot,
        })
    }

    /// Send the staged bytes not yet in a part: every full part, or
    /// (`last`) all of them. Returns true if parts were added to `state`
    /// (the caller persists it). The staged bytes stay until completion.
    pub async fn flush_session(
        &self,
        state: &mut SessionState,
        target: StoreName,
        last: bool,
    ) -> Result<bool> {
        let Some(mut m) = state.multipart.clone() else {
            return Ok(false);
        };
        let s3 = self
            .get(target)
            .multipart()
            .ok_or_else(|| StoreError::internal("multipart upload without S3"))?;
        let part = s3.part_size();
        let fs = self.get(state.staged).fs()?;
        let mut sent = m.bytes_in_parts();
        let before = m.parts.len();
        let (base, first) = state.window.map_or((0, 1), |w| (w.at, w.first_part));
        // (An empty object is one empty part; a window never sends one.)
        let whole = state.window.is_none();
        while state.offset - sent >= part
            || (last && (state.offset > sent || (whole && m.parts.is_empty())))
        {
            let size = (state.offset - sent).min(part);
            let at = sent
                .checked_sub(m.staged_from)
                .ok_or_else(|| StoreError::internal("staged bytes start after the parts"))?
                + base;
            let buf = read_range(fs, &state.staged_key, at..at + size, size).await?;
            let n = m.parts.len() as i32 + first;
            let etag = s3
                .upload_part(&m.key, &m.upload_id, n, buf.freeze())
                .await?;
            m.parts.push(Part { n, etag, size });
            sent += size;
            if size == 0 {
                break;
            }
        }
        if m.parts.len() == before {
            return Ok(false);
        }
        state.multipart = Some(m);
        Ok(true)
    }

    /// Complete a session whose bytes are all in (the caller has flushed
    /// and persisted the last parts with `flush_session(.., true)`): the
    /// object is put in `target` at `dest_key` (or, without one, completed
    /// where it is). An unusable `dest_key` is `StoreError::UnusablePath`.
    pub async fn complete_session(
        &self,
        state: &SessionState,
        target: StoreName,
        dest_key: Option<&str>,
    ) -> Result<Completed> {
        if state.window.is_some() {
            return Err(StoreError::internal(
                "a window of a session is not completed",
            ));
        }
        if let Some(p) = &state.pieces {
            let s3 = self.pieces_store(state)?;
            let dest = dest_key.unwrap_or(&state.staged_key);
            if !super::valid_key(dest) {
                return Err(StoreError::unusable_path(dest, "invalid key"));
            }
            pieces::assemble(s3, p, dest).await?;
            return Ok(Completed {
                store: state.staged,
                key: dest.to_string(),
                leftover: Some((state.staged, pieces_area(&state.staged_key))),
            });
        }
        let staged = (state.staged, state.staged_key.clone());
        if let Some(m) = &state.multipart {
            let s3 = self
                .get(target)
                .multipart()
                .ok_or_else(|| StoreError::internal("multipart upload without S3"))?;
            let parts: Vec<(i32, String)> = m.parts.iter().map(|p| (p.n, p.etag.clone())).collect();
            s3.complete_multipart(&m.key, &m.upload_id, &parts).await?;
            return Ok(Completed {
                store: target,
                key: m.key.clone(),
                leftover: Some(staged),
            });
        }
        let Some(dest_key) = dest_key else {
            return Ok(Completed {
                store: state.staged,
                key: state.staged_key.clone(),
                leftover: None,
            });
        };
        let (from, to) = (self.get(state.staged), self.get(target));
        if state.staged == target {
            from.fs()?.rename(&state.staged_key, dest_key).await?;
            return Ok(Completed {
                store: target,
                key: dest_key.to_string(),
                leftover: None,
            });
        }
        // Into another store: stream the staged bytes there.
        let mut body = from.get(&state.staged_key, None).await?;
        let mut w = to.begin_write(dest_key).await?;
        while let Some(c) = body.next().await {
            w.write(c?).await?;
        }
        w.commit().await?;
        Ok(Completed {
            store: target,
            key: dest_key.to_string(),
            leftover: Some(staged),
        })
    }

    /// After a crash cut a completion short: if the session's object is
    /// already where completion puts it (in an object store with the md5
    /// `md5_hex` or the multipart ETag of its parts; renamed to `dest_key`
    /// with nothing left staged), where it is and its metadata.
    pub async fn completed_before(
        &self,
        state: &SessionState,
        target: StoreName,
        dest_key: Option<&str>,
        length: u64,
        md5_hex: &str,
    ) -> Option<(StoreName, String, ObjectMeta)> {
        if state.pieces.is_some() {
            return None; // its pieces stay until recorded: completed again
        }
        if let Some(m) = &state.multipart {
            let meta = self.get(target).head(&m.key).await.ok()??;
            let etag = meta
                .etag
                .as_deref()
                .unwrap_or("")
                .trim_matches('"')
                .to_string();
            let ours = etag == md5_hex || m.multipart_etag().is_some_and(|e| e == etag);
            if meta.size != length || !ours {
                return None;
            }
            return Some((target, m.key.clone(), meta));
        }
        let dest_key = dest_key?;
        let staged = self
            .get(state.staged)
            .fs()
            .ok()?
            .head(&state.staged_key)
            .await
            .ok()?;
        let meta = self.get(target).head(dest_key).await.ok()??;
        if staged.is_some() || meta.size != length {
            return None;
        }
        Some((target, dest_key.to_string(), meta))
    }

    /// A session whose multipart upload the object store lost (a store
    /// whose completion is not atomic, cut short by a crash: neither the
    /// upload nor the object exists any more) starts a new multipart upload
    /// to send its staged bytes again. Returns false if that cannot be done
    /// (not every byte is staged, or the object exists).
    pub async fn restart_session(
        &self,
        state: &mut SessionState,
        target: StoreName,
    ) -> Result<bool> {
        let Some(m) = state.multipart.clone() else {
            return Ok(false);
        };
        let target_store = self.get(target);
        let Some(s3) = target_store.multipart() else {
            return Ok(false);
        };
        let staged = self.get(state.staged).fs()?.head(&state.staged_key).await?;
        let all_staged = m.staged_from == 0 && staged.is_some_and(|s| s.size >= state.offset);
        if !all_staged || target_store.head(&m.key).await?.is_some() {
            return Ok(false);
        }
        let _ = s3.abort_multipart(&m.key, &m.upload_id).await;
        let upload_id = s3.create_multipart(&m.key).await?;
        state.multipart = Some(MultipartState {
            upload_id,
            parts: vec![],
            ..m
        });
        Ok(true)
    }

    /// Give a session up: its multipart upload is aborted and its staged
    /// bytes (or, once complete without a destination, its object) go.
    /// Failures are logged: there is nothing the caller could do.
    pub async fn abort_session(&self, state: &SessionState, target: StoreName) {
        if state.pieces.is_some()
            && let Some(s3) = self.get(state.staged).multipart()
        {
            if let Err(e) = pieces::remove_all(s3, &state.staged_key).await {
                tracing::warn!(error = %e, "could not remove upload data");
            }
            return;
        }
        if let Some(m) = &state.multipart
            && let Some(s3) = self.get(target).multipart()
            && let Err(e) = s3.abort_multipart(&m.key, &m.upload_id).await
        {
            tracing::warn!(error = %e, "could not abort the multipart upload");
        }
        if let Err(e) = self.get(state.staged).delete(&state.staged_key).await {
            tracing::warn!(error = %e, "could not remove upload data");
        }
    }

    /// The session's bytes so far (or `range` of them).
    pub async fn read_session(
        &self,
        state: &SessionState,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        let mut range = range.unwrap_or(0..state.offset);
        if let Some(p) = &state.pieces {
            let s3 = self.pieces_store(state)?;
            return Ok(pieces::read(s3, p, range));
        }
        if let Some(w) = state.window {
            range = w.at + range.start..w.at + range.end;
        }
        self.get(state.staged)
            .get(&state.staged_key, Some(range))
            .await
    }

    /// The object store a session kept as pieces is in.
    fn pieces_store(&self, state: &SessionState) -> Result<&S3Store> {
        self.get(state.staged)
            .multipart()
            .ok_or_else(|| StoreError::internal("pieces outside an object store"))
    }

    /// Remove what a completed session left (`Completed::leftover`): the
    /// staged file, or every piece of a session kept in a store.
    /// Failures are logged.
    pub async fn remove_leftover(&self, store: StoreName, key: &str) {
        let res = match (key.strip_suffix(PIECES_SUFFIX), self.get(store).multipart()) {
            (Some(area), Some(s3)) => pieces::remove_all(s3, area).await,
            _ => self.get(store).delete(key).await,
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "could not remove upload data");
        }
    }

    /// Move an object between two stores that are one place (a rename in a
    /// directory; a server-side copy conditioned on the source's ETag, then
    /// a delete, in an object store). `NotHere` if they are not.
    pub async fn move_object(
        &self,
        from: StoreName,
        from_key: &str,
        to: StoreName,
        to_key: &str,
    ) -> Result<Move> {
        let (src, dst) = (self.get(from), self.get(to));
        if !src.same_place(dst) {
            return Ok(Move::NotHere);
        }
        match src.head(from_key).await? {
            Some(m) => {
                match src {
                    Store::Fs(s) => s.rename(from_key, to_key).await?,
                    Store::S3(s) => {
                        s.copy(from_key, to_key, m.etag.as_deref()).await?;
                        let _ = s.delete(from_key).await;
                    }
                }
                Ok(Move::Moved)
            }
            None if dst.head(to_key).await?.is_some() => Ok(Move::AlreadyThere),
            None => Ok(Move::SourceGone),
        }
    }
}

/// How `Completed::leftover` names the pieces of a session's area.
const PIECES_SUFFIX: &str = "/*";

fn pieces_area(area: &str) -> String {
    format!("{area}{PIECES_SUFFIX}")
}
