//! Reading a large range of an object in parts, fetched ahead: one GET per
//! part, the first streamed as it arrives, the next `parts_in_flight - 1`
//! fetched into memory at the same time by tasks of their own. An object
//! store serves one connection at its per-connection rate (S3's is about
//! 100 MB/s, s3s-fs's one core); several at once go as fast as the store
//! and the network allow.
//!
//! Memory: a download holds at most `parts_in_flight - 1` parts, and a
//! node at most [`NODE_PARTS`] over all downloads; a part that finds no
//! free slot is fetched when it is reached, streamed like the first. A
//! client that stops reading keeps its parts until the body-stall timeout
//! drops its connection, and takes no slot from anyone else's current
//! part. Every part after the first is asked for with `If-Match` on the
//! first one's ETag, so an object replaced meanwhile fails the download
//! rather than mixing two objects' bytes.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::AbortOnDropHandle;

use super::S3Store;
use crate::store::ByteStream;
use crate::store::error::{Result, StoreError};

/// Parts held in memory by downloads reading ahead, over a node.
pub(super) const NODE_PARTS: usize = 16;

/// A part after the one being sent.
enum Ahead {
    /// Being fetched into memory, holding one of the node's slots.
    Fetching(AbortOnDropHandle<Result<(Vec<Bytes>, OwnedSemaphorePermit)>>),
    /// Fetched when it is reached (no slot was free).
    Later(Range<u64>),
}

struct Reader {
    store: S3Store,
    key: String,
    /// The ETag of the object the first part came from.
    etag: Option<String>,
    /// The first byte not yet given to a part.
    next: u64,
    end: u64,
    ahead: VecDeque<Ahead>,
    current: Option<ByteStream>,
}

/// The bytes of `range` (more than one part) of the object at `key`.
pub(super) async fn stream(store: &S3Store, key: &str, range: Range<u64>) -> Result<ByteStream> {
    let part = store.part_size as u64;
    let first = range.start..(range.start + part).min(range.end);
    let (body, etag) = store
        .get_object_etag(key, Some(first.clone()), None)
        .await?
        .ok_or_else(|| StoreError::internal("an empty first part"))?;
    let mut reader = Reader {
        store: store.clone(),
        key: key.to_string(),
        etag,
        next: first.end,
        end: range.end,
        ahead: VecDeque::new(),
        current: Some(body),
    };
    reader.fill();
    Ok(Box::pin(futures_util::stream::unfold(
        reader,
        |mut reader| async move { reader.next_chunk().await.map(|c| (c, reader)) },
    )))
}

impl Reader {
    /// Queue the parts after the current one, up to `parts_in_flight - 1`:
    /// fetched now where a node slot is free, else when reached.
    fn fill(&mut self) {
        let part = self.store.part_size as u64;
        while self.ahead.len() + 1 < self.store.parts_in_flight && self.next < self.end {
            let r = self.next..(self.next + part).min(self.end);
            self.next = r.end;
            let Ok(permit) = self.store.ahead_slots.clone().try_acquire_owned() else {
                self.ahead.push_back(Ahead::Later(r));
                continue;
            };
            let (store, key, etag) = (self.store.clone(), self.key.clone(), self.etag.clone());
            let task = tokio::spawn(async move {
                let mut chunks = Vec::new();
                if let Some(mut body) = store.get_object(&key, Some(r), etag.as_deref()).await? {
                    while let Some(c) = body.next().await {
                        chunks.push(c.map_err(StoreError::from)?);
                    }
                }
                Ok((chunks, permit))
            });
            self.ahead
                .push_back(Ahead::Fetching(AbortOnDropHandle::new(task)));
        }
    }

    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if let Some(body) = &mut self.current {
                if let Some(c) = body.next().await {
                    return Some(c);
                }
                self.current = None;
            }
            let part = self.ahead.pop_front()?;
            self.fill();
            let body: ByteStream = match part {
                Ahead::Fetching(task) => match task.await {
                    Ok(Ok((chunks, permit))) => {
                        // The slot is given back when the part is sent.
                        Box::pin(futures_util::stream::iter(chunks).map(move |c| {
                            let _held = &permit;
                            Ok(c)
                        }))
                    }
                    Ok(Err(e)) => return Some(Err(std::io::Error::other(e))),
                    Err(e) => return Some(Err(std::io::Error::other(e))),
                },
                Ahead::Later(r) => {
                    let etag = self.etag.clone();
                    match self
                        .store
                        .get_object(&self.key, Some(r), etag.as_deref())
                        .await
                    {
                        Ok(Some(body)) => body,
                        Ok(None) => continue,
                        Err(e) => return Some(Err(std::io::Error::other(e))),
                    }
                }
            };
            self.current = Some(body);
        }
    }
}
