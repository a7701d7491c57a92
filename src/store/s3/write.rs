//! Writing to S3 with bounded memory: `PartSender` sends a multipart
//! upload's parts as they fill, several at once; `PendingS3Write` is a
//! whole-object write, one PutObject or a multipart upload once more than a
//! part has come, completed on commit and aborted when dropped.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::S3Store;
use crate::store::error::{Result, StoreError};

/// Sends the parts of a multipart upload as they fill, several at once. At
/// most `parts_in_flight` parts of `part_size` bytes are in memory, the one
/// being filled included.
pub struct PartSender {
    store: Arc<S3Store>,
    /// The store key (without the prefix).
    key: String,
    /// Empty until the first part is sent (then created).
    upload_id: String,
    buf: BytesMut,
    next_part: i32,
    inflight: JoinSet<Result<(i32, String)>>,
    sent: Vec<(i32, String)>,
}

impl PartSender {
    /// Parts of `upload_id` (empty: create one when the first part is full)
    /// from number `first_part` on; `filled` holds bytes already in it.
    pub fn new(
        store: Arc<S3Store>,
        key: &str,
        upload_id: &str,
        first_part: i32,
        filled: BytesMut,
    ) -> PartSender {
        let mut buf = filled;
        buf.reserve(store.part_size.saturating_sub(buf.len()));
        PartSender {
            store,
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            buf,
            next_part: first_part,
            inflight: JoinSet::new(),
            sent: Vec::new(),
        }
    }

    /// Add bytes; each part that fills up is sent in the background.
    pub async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            let take = (self.store.part_size - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == self.store.part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<()> {
        // The part being filled counts as one of the parts in flight.
        while self.inflight.len() + 1 >= self.store.parts_in_flight.max(2) {
            self.reap_one().await?;
        }
        if self.upload_id.is_empty() {
            self.upload_id = self.store.create_multipart(&self.key).await?;
        }
        let body = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.store.part_size))
            .freeze();
        let n = self.next_part;
        self.next_part += 1;
        let (s, key, id) = (self.store.clone(), self.key.clone(), self.upload_id.clone());
        self.inflight
            .spawn(async move { Ok((n, s.upload_part(&key, &id, n, body).await?)) });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(r) = self.inflight.join_next().await {
            self.sent.push(r.map_err(StoreError::internal)??);
        }
        Ok(())
    }

    /// The size of every part but the last, in bytes.
    pub fn part_size(&self) -> u64 {
        self.store.part_size()
    }

    /// Wait for the parts in flight; then `sent` holds them all, in order.
    async fn drain(&mut self) -> Result<()> {
        while !self.inflight.is_empty() {
            self.reap_one().await?;
        }
        self.sent.sort_by_key(|p| p.0);
        Ok(())
    }

    /// Wait for the parts in flight. Returns the parts sent, in order, and
    /// the bytes not yet in a part.
    pub async fn finish(mut self) -> Result<(Vec<(i32, String)>, BytesMut)> {
        self.drain().await?;
        Ok((
            std::mem::take(&mut self.sent),
            std::mem::take(&mut self.buf),
        ))
    }
}

/// A whole-object write in progress: one PutObject, or a multipart upload
/// once more than a part has come.
pub struct PendingS3Write {
    pub(super) parts: PartSender,
    pub(super) done: bool,
}

impl PendingS3Write {
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.parts.write(&chunk).await
    }

    pub async fn commit(mut self) -> Result<()> {
        let p = &mut self.parts;
        if p.upload_id.is_empty() {
            // Smaller than one part (or empty): a single PutObject.
            let body = std::mem::take(&mut p.buf).freeze();
            p.store.put(&p.key, body).await?;
            self.done = true;
            return Ok(());
        }
        if !p.buf.is_empty() {
            p.send_part().await?;
        }
        p.drain().await?;
        p.store
            .complete_multipart(&p.key, &p.upload_id, &p.sent)
            .await?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PendingS3Write {
    fn drop(&mut self) {
        let p = &mut self.parts;
        if self.done || p.upload_id.is_empty() {
            return;
        }
        p.inflight.abort_all();
        let (s, key, id) = (p.store.clone(), p.key.clone(), p.upload_id.clone());
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = s.abort_multipart(&key, &id).await;
            });
        }
    }
}
