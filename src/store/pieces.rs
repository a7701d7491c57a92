//! Sessions kept whole in an object store (a cluster's uploads into S3):
//! no byte stays on a node between requests. Each request's whole parts
//! and its tail (the bytes after the last whole part) are objects of their
//! own, at keys that name their first byte and the request's fencing
//! token and are never written twice: a writer whose lease was taken over
//! can leave garbage at worst, never replace bytes the caller's state
//! names. Completion assembles the parts into the object with server-side
//! copies (UploadPartCopy), with part numbers 1..n without gaps.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;

use super::error::{Result, StoreError};
use super::{ByteStream, S3Store};

/// Longest wait for a slot (memory for a request's parts in flight).
const SLOT_WAIT: Duration = Duration::from_secs(30);

/// Most parts an object may be completed from (S3's limit).
pub const MAX_PARTS: u64 = 10_000;

/// Parts copied at once while completing.
const COPIES_IN_FLIGHT: usize = 4;

/// The objects a session's bytes are in, in file order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pieces {
    /// The size of every whole part, fixed when the session begins.
    pub part_size: u64,
    /// Whole parts.
    pub parts: Vec<Piece>,
    /// The bytes after the last whole part, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Piece>,
}

/// One object of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Piece {
    pub key: String,
    /// Offset of its first byte in the session.
    pub at: u64,
    pub size: u64,
    pub etag: String,
}

impl Pieces {
    /// The pieces of a new session of `length` bytes: parts of the store's
    /// part size, grown (in MiB) so that the object is at most
    /// [`MAX_PARTS`] parts.
    pub fn new(s3: &S3Store, length: u64) -> Pieces {
        const MIB: u64 = 1 << 20;
        let need = length.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        Pieces {
            part_size: s3.part_size().max(need),
            parts: vec![],
            tail: None,
        }
    }

    /// Bytes in the pieces.
    pub fn size(&self) -> u64 {
        self.all().map(|p| p.size).sum()
    }

    /// Every piece, in file order.
    pub fn all(&self) -> impl Iterator<Item = &Piece> {
        self.parts.iter().chain(self.tail.iter())
    }
}

/// The key prefix of a session's pieces: beside the area's own key, not
/// below it, because a session without a destination is completed at its
/// area's key, and a store kept in a filesystem (s3s-fs, a NAS gateway)
/// cannot hold an object where a directory of pieces is.
fn dir(area: &str) -> String {
    format!("{area}{PIECES_DIR}/")
}

/// What [`dir`] adds to an area's key.
pub const PIECES_DIR: &str = ".pieces";

/// A request's bytes on their way into a session's pieces: the old tail
/// first (read back), then the request's bytes; each whole part is put as
/// it fills, several at once, and what is left at the end is the new tail.
pub struct PieceWriter {
    s3: Arc<S3Store>,
    area: String,
    fence: i64,
    before: Pieces,
    /// Offset of the first byte in `buf`.
    at: u64,
    buf: BytesMut,
    /// Bytes of this request arrived.
    fresh: bool,
    inflight: JoinSet<Result<Piece>>,
    sent: Vec<Piece>,
    /// Every object this writer put (or began to).
    written: Vec<String>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// What a request added to a session kept in the store.
#[derive(Debug)]
pub struct PiecesAppended {
    /// The session's pieces now.
    pub pieces: Pieces,
    /// Objects the new pieces no longer name (the old tail).
    pub superseded: Vec<String>,
    /// Objects this request wrote.
    pub written: Vec<String>,
}

impl PieceWriter {
    /// Open the session of `area` at the end of `before` for a writer
    /// holding `fence`: waits for a slot (then `Busy`), reads the tail back.
    pub async fn open(s3: &S3Store, area: &str, before: &Pieces, fence: i64) -> Result<Self> {
        let slot = s3.piece_slot(SLOT_WAIT).await?;
        let mut buf = BytesMut::with_capacity(before.part_size as usize);
        if let Some(t) = &before.tail {
            let mut body = s3.get(&t.key, None).await?;
            while let Some(c) = body.next().await {
                buf.extend_from_slice(&c?);
            }
            if buf.len() as u64 != t.size {
                return Err(StoreError::internal(format!(
                    "the tail object has {} bytes where the session says {}",
                    buf.len(),
                    t.size
                )));
            }
        }
        Ok(PieceWriter {
            s3: Arc::new(s3.clone()),
            area: area.to_string(),
            fence,
            at: before.parts.iter().map(|p| p.size).sum(),
            before: before.clone(),
            buf,
            fresh: false,
            inflight: JoinSet::new(),
            sent: vec![],
            written: vec![],
            _slot: slot,
        })
    }

    /// The store the pieces go to.
    pub fn store(&self) -> S3Store {
        (*self.s3).clone()
    }

    /// Add a chunk; each part that fills up is put in the background.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let part = self.before.part_size as usize;
        let mut chunk = &chunk[..];
        self.fresh |= !chunk.is_empty();
        while !chunk.is_empty() {
            let take = (part - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == part {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<()> {
        // The part being filled counts as one of the parts in memory.
        while self.inflight.len() + 1 >= self.s3.parts_in_flight() {
            self.reap_one().await?;
        }
        let part = self.before.part_size as usize;
        let body = std::mem::replace(&mut self.buf, BytesMut::with_capacity(part)).freeze();
        let key = format!("{}part-{}-{}", dir(&self.area), self.at, self.fence);
        self.written.push(key.clone());
        let (s3, at) = (self.s3.clone(), self.at);
        self.at += body.len() as u64;
        self.inflight.spawn(async move {
            let size = body.len() as u64;
            let etag = s3.put(&key, body).await?;
            Ok(Piece {
                key,
                at,
                size,
                etag,
            })
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(r) = self.inflight.join_next().await {
            self.sent.push(r.map_err(StoreError::internal)??);
        }
        Ok(())
    }

    /// Wait for the parts in flight and put the new tail. On error nothing
    /// of this request counts (what it wrote is removed).
    pub async fn finish(mut self) -> Result<PiecesAppended> {
        match self.finish_inner().await {
            Ok(a) => Ok(a),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn finish_inner(&mut self) -> Result<PiecesAppended> {
        while !self.inflight.is_empty() {
            self.reap_one().await?;
        }
        self.sent.sort_by_key(|p| p.at);
        let mut pieces = self.before.clone();
        if !self.fresh {
            return Ok(PiecesAppended {
                pieces,
                superseded: vec![],
                written: vec![],
            });
        }
        let mut superseded: Vec<String> = pieces.tail.take().map(|t| t.key).into_iter().collect();
        pieces.parts.append(&mut self.sent);
        if !self.buf.is_empty() {
            // Its first and last byte and the fence: a tail is never
            // written twice under one key, even by one writer.
            let end = self.at + self.buf.len() as u64;
            let key = format!("{}tail-{}-{end}-{}", dir(&self.area), self.at, self.fence);
            superseded.retain(|k| *k != key);
            self.written.push(key.clone());
            let body = std::mem::take(&mut self.buf).freeze();
            let size = body.len() as u64;
            let etag = self.s3.put(&key, body).await?;
            pieces.tail = Some(Piece {
                key,
                at: self.at,
                size,
                etag,
            });
        }
        Ok(PiecesAppended {
            pieces,
            superseded,
            written: std::mem::take(&mut self.written),
        })
    }

    /// Stop: nothing of this request counts; what it wrote is removed.
    pub async fn abort(&mut self) {
        self.inflight.abort_all();
        while self.inflight.join_next().await.is_some() {}
        remove_keys(&self.s3, &std::mem::take(&mut self.written)).await;
    }
}

/// Remove objects; failures are logged (the session's removal or the
/// bucket's lifecycle rule takes what is left).
pub async fn remove_keys(s3: &S3Store, keys: &[String]) {
    for k in keys {
        if let Err(e) = s3.delete(k).await {
            tracing::warn!(key = %k, error = %e, "could not remove an upload piece");
        }
    }
}

/// Remove every object under the session of `area` (its pieces, and any
/// a writer that lost its lease left).
pub async fn remove_all(s3: &S3Store, area: &str) -> Result<()> {
    let keys: Vec<String> = s3
        .list(&dir(area))
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    remove_keys(s3, &keys).await;
    Ok(())
}

/// Bytes `range` of the session, streamed from its pieces in order.
pub fn read(s3: &S3Store, pieces: &Pieces, range: Range<u64>) -> ByteStream {
    let segments: Vec<(String, Range<u64>)> = pieces
        .all()
        .filter_map(|p| {
            let (s, e) = (range.start.max(p.at), range.end.min(p.at + p.size));
            (s < e).then(|| (p.key.clone(), s - p.at..e - p.at))
        })
        .collect();
    let s3 = s3.clone();
    Box::pin(
        futures_util::stream::iter(segments)
            .then(move |(key, r)| {
                let s3 = s3.clone();
                async move { s3.get(&key, Some(r)).await.map_err(std::io::Error::other) }
            })
            .try_flatten(),
    )
}

/// Put the session's bytes at `dest` in the store: one copy of a single
/// piece, or a multipart upload of every piece as a part, copied by the
/// store. Done again, it writes the same object.
pub async fn assemble(s3: &S3Store, pieces: &Pieces, dest: &str) -> Result<()> {
    let all: Vec<&Piece> = pieces.all().collect();
    match all.as_slice() {
        [] => {
            s3.put(dest, Bytes::new()).await?;
            return Ok(());
        }
        [one] => return s3.copy(&one.key, dest, None).await,
        _ => {}
    }
    if all.len() as u64 > MAX_PARTS {
        return Err(StoreError::internal(format!(
            "{} parts: more than {MAX_PARTS}",
            all.len()
        )));
    }
    let id = s3.create_multipart(dest).await?;
    let res = copy_parts(s3, &all, dest, &id).await;
    let parts = match res {
        Ok(p) => p,
        Err(e) => {
            let _ = s3.abort_multipart(dest, &id).await;
            return Err(e);
        }
    };
    s3.complete_multipart(dest, &id, &parts).await
}

/// UploadPartCopy of each piece as part 1, 2, ..., a few at once; their
/// (number, ETag), in order.
async fn copy_parts(
    s3: &S3Store,
    all: &[&Piece],
    dest: &str,
    id: &str,
) -> Result<Vec<(i32, String)>> {
    let s3 = Arc::new(s3.clone());
    let mut out = Vec::with_capacity(all.len());
    let mut inflight = JoinSet::new();
    for (i, p) in all.iter().enumerate() {
        if inflight.len() >= COPIES_IN_FLIGHT
            && let Some(r) = inflight.join_next().await
        {
            out.push(r.map_err(StoreError::internal)??);
        }
        let (s3, dest, id, from) = (s3.clone(), dest.to_string(), id.to_string(), p.key.clone());
        let n = i as i32 + 1;
        inflight.spawn(async move {
            let etag = s3.upload_part_copy(&dest, &id, n, &from).await?;
            Ok::<_, StoreError>((n, etag))
        });
    }
    while let Some(r) = inflight.join_next().await {
        out.push(r.map_err(StoreError::internal)??);
    }
    out.sort_by_key(|p| p.0);
    Ok(out)
}
