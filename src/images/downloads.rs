//! Download statistics: a GetImageFile whose body reaches the file's last
//! byte (a whole file, or the range that ends a ranged series), a redirect
//! to the file, and an export each count one download of the image. A node
//! counts them in memory ([`DownloadLog`]) and adds them to the database in
//! batches every `downloads.stats_flush_secs` and at shutdown, so no
//! download waits on a write. A kill -9 loses at most the counts of one
//! flush interval; a batch the database refuses is kept for the next
//! flush, up to [`MAX_PENDING`] images.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use uuid::Uuid;

use super::Images;
use crate::clock::Timestamp;
use crate::db::downloads::DownloadStats;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::ByteStream;

/// Most images a node keeps counts for between flushes. A count for one
/// more image while the database cannot take the batch is dropped (and
/// counted in `imgapi_download_counts_dropped_total`).
pub const MAX_PENDING: usize = 100_000;

/// Images written per transaction of a flush.
const FLUSH_CHUNK: usize = 1_000;

type Pending = HashMap<Uuid, DownloadStats>;

/// The node's download counts not yet in the database; `None` when
/// recording is off (`downloads.stats = false`).
#[derive(Clone, Default)]
pub struct DownloadLog {
    pending: Option<Arc<Mutex<Pending>>>,
    /// The server's counters (downloads, counts dropped).
    metrics: Arc<Metrics>,
}

impl DownloadLog {
    /// A log that records (`on`) or ignores every download.
    pub fn new(on: bool) -> DownloadLog {
        DownloadLog {
            pending: on.then(Default::default),
            metrics: Arc::default(),
        }
    }

    /// The same, counting downloads in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> DownloadLog {
        DownloadLog { metrics, ..self }
    }

    fn pending(&self) -> Option<std::sync::MutexGuard<'_, Pending>> {
        self.pending
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Add `s` to `uuid`'s pending count, if there is room.
    fn add(&self, uuid: Uuid, s: DownloadStats) {
        let Some(mut p) = self.pending() else { return };
        let room = p.len() < MAX_PENDING;
        match p.get_mut(&uuid) {
            Some(old) => *old = old.merged(s),
            None if room => {
                p.insert(uuid, s);
            }
            None => self.metrics.add_download_counts_dropped(s.count),
        }
    }

    /// One download of `uuid` at `at`.
    pub fn record(&self, uuid: Uuid, at: Timestamp) {
        if self.pending.is_some() {
            self.add(
                uuid,
                DownloadStats {
                    count: 1,
                    last_at: at,
                },
            );
            self.metrics.add_download();
        }
    }

    /// Everything pending, leaving nothing.
    fn take(&self) -> Vec<(Uuid, DownloadStats)> {
        self.pending()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    }

    /// Counts a flush could not write, kept for the next one.
    fn put_back(&self, batch: &[(Uuid, DownloadStats)]) {
        for (uuid, s) in batch {
            self.add(*uuid, *s);
        }
    }
}

impl Images {
    /// Count one download of `uuid`'s file, now.
    pub fn downloaded(&self, uuid: Uuid) {
        self.downloads.record(uuid, self.clock.timestamp());
    }

    /// `stream`, the bytes of `uuid`'s file in `range` (None: all of its
    /// `size`), counting one download when it hands out the file's last
    /// byte. A stream cut short, or never read (HEAD), counts nothing.
    pub(super) fn count_at_end(
        &self,
        uuid: Uuid,
        range: Option<std::ops::Range<u64>>,
        size: u64,
        stream: ByteStream,
    ) -> ByteStream {
        let (start, end) = range.map_or((0, size), |r| (r.start, r.end));
        // (An empty range hands out no byte: nothing to count.)
        if end != size || start == end || self.downloads.pending.is_none() {
            return stream;
        }
        // Only the log and the clock go along (not the whole service).
        let (log, clock) = (self.downloads.clone(), self.clock.clone());
        Box::pin(CountAtEnd {
            inner: stream,
            left: end - start,
            at_end: Some(Box::new(move || log.record(uuid, clock.timestamp()))),
        })
    }

    /// Add the pending download counts to the database, [`FLUSH_CHUNK`]
    /// images a transaction; what could not be written is kept for the
    /// next flush. The number of images written.
    pub async fn flush_downloads(&self) -> Result<usize> {
        let mut batch = self.downloads.take();
        // One order for every node: two flushes lock rows alike.
        batch.sort_unstable_by_key(|(u, _)| *u);
        let mut written = 0;
        for (i, chunk) in batch.chunks(FLUSH_CHUNK).enumerate() {
            let rows = chunk.to_vec();
            if let Err(e) = self.db.write(move |c| c.downloads_add(&rows)).await {
                self.downloads.put_back(&batch[i * FLUSH_CHUNK..]);
                return Err(e.into());
            }
            written += chunk.len();
        }
        Ok(written)
    }

    /// The download statistics of those of `uuids` downloaded at least
    /// once (admin fields).
    pub async fn download_stats(&self, uuids: Vec<Uuid>) -> Result<HashMap<Uuid, DownloadStats>> {
        if uuids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.db.read(move |c| c.downloads_of(&uuids)).await?;
        Ok(rows.into_iter().collect())
    }
}

/// Flush the download counts every `every` (each node its own) until
/// `stop` changes; a flush under way is finished first, never cut.
pub async fn flush_downloads_until(
    images: Images,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = images.flush_downloads().await {
            tracing::warn!(error = %e, "download counts not written yet; kept for the next flush");
        }
    }
}

/// A file's byte stream that runs `at_end` once, when it yields the last of
/// its `left` bytes. (Not at its end: a server that has sent a body's
/// `Content-Length` bytes drops it without waiting for that.)
struct CountAtEnd {
    inner: ByteStream,
    left: u64,
    at_end: Option<Box<dyn FnOnce() + Send>>,
}

impl Stream for CountAtEnd {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(b))) => {
                self.left = self.left.saturating_sub(b.len() as u64);
                if self.left == 0
                    && let Some(f) = self.at_end.take()
                {
                    f();
                }
            }
            Poll::Ready(Some(Err(_))) => self.at_end = None,
            _ => {}
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn counts_merge_and_come_back_after_a_failed_flush() {
        let log = DownloadLog::new(true);
        let u = Uuid::new_v4();
        log.record(u, at("2026-01-01T00:00:00Z"));
        log.record(u, at("2026-01-03T00:00:00Z"));
        log.record(u, at("2026-01-02T00:00:00Z"));
        let batch = log.take();
        assert_eq!(
            batch,
            vec![(
                u,
                DownloadStats {
                    count: 3,
                    last_at: at("2026-01-03T00:00:00Z")
                }
            )]
        );
        assert!(log.take().is_empty());
        log.record(u, at("2026-01-04T00:00:00Z"));
        log.put_back(&batch);
        assert_eq!(log.take()[0].1.count, 4);
    }

    #[test]
    fn off_records_nothing() {
        let log = DownloadLog::new(false);
        log.record(Uuid::new_v4(), at("2026-01-01T00:00:00Z"));
        assert!(log.take().is_empty());
    }

    #[test]
    fn a_full_log_keeps_counting_the_images_it_has() {
        let log = DownloadLog::new(true);
        let t = at("2026-01-01T00:00:00Z");
        let first = Uuid::new_v4();
        log.record(first, t);
        for _ in 1..MAX_PENDING {
            log.record(Uuid::new_v4(), t);
        }
        log.record(Uuid::new_v4(), t); // no room: dropped
        log.record(first, t); // has room: counted
        let batch = log.take();
        assert_eq!(batch.len(), MAX_PENDING);
        let first = batch.iter().find(|(u, _)| *u == first).unwrap();
        assert_eq!(first.1.count, 2);
    }

    #[tokio::test]
    async fn counts_only_a_stream_that_reaches_its_end() {
        use futures_util::StreamExt;
        let hits = Arc::new(Mutex::new(0));
        let mk = |chunks: Vec<std::io::Result<Bytes>>, left: u64| {
            let hits = hits.clone();
            CountAtEnd {
                inner: Box::pin(futures_util::stream::iter(chunks)),
                left,
                at_end: Some(Box::new(move || *hits.lock().unwrap() += 1)),
            }
        };
        let ok = |s: &'static str| Ok(Bytes::from_static(s.as_bytes()));
        // All of it: counted once, as the last byte goes out.
        let mut s = mk(vec![ok("ab"), ok("cd")], 4);
        s.next().await;
        assert_eq!(*hits.lock().unwrap(), 0);
        s.next().await;
        assert_eq!(*hits.lock().unwrap(), 1);
        s.next().await;
        assert_eq!(*hits.lock().unwrap(), 1);
        // Cut short (an error), or fewer bytes than promised: not counted.
        mk(vec![ok("ab"), Err(std::io::Error::other("x"))], 4)
            .collect::<Vec<_>>()
            .await;
        mk(vec![ok("ab")], 4).collect::<Vec<_>>().await;
        // Dropped before the last byte (a client gone): not counted.
        let mut s = mk(vec![ok("ab"), ok("cd")], 4);
        s.next().await;
        drop(s);
        assert_eq!(*hits.lock().unwrap(), 1);
    }
}
