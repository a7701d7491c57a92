//! ListImages' answers kept on this node: the body of each list in the
//! default rendering, valid while the database's list generation has not
//! moved (`Meta::image_list_gen`; every change to an image moves it, in
//! its own transaction, on whichever node makes it). A read asks the
//! database for the generation first, so a change committed anywhere is
//! seen by the next list on every node; what is kept only saves reading
//! and copying the page again. Bounded in bytes: kept for one generation
//! at a time (a newer one drops the older entries) and cleared when full.
//! The lists that arrive while the generation is being read share the
//! next read (see [`Generation`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::Images;
use crate::db::images::{ListQuery, Listed, Select};
use crate::error::Error;
use crate::identity::Caller;

/// The kept bodies of one generation.
#[derive(Default)]
struct Kept {
    generation: i64,
    bytes: usize,
    bodies: HashMap<String, Bytes>,
}

/// ListImages' bodies by query, at most `max_bytes` of keys and bodies.
pub struct ListCache {
    max_bytes: usize,
    kept: Mutex<Kept>,
    generation: Generation,
}

/// The list generation as the node's lists read it: each list needs a
/// read *sent after it arrived* (which sees every change committed before
/// it, on any node), and every list waiting while one read is out shares
/// the next one. One read per round trip, however many lists arrive.
#[derive(Default)]
struct Generation {
    /// Reads sent so far (a read's number is its place in them).
    sent: AtomicU64,
    /// One read out at a time; the lists wait here in turn.
    slot: tokio::sync::Mutex<()>,
    /// The last read that answered: (its number, the generation).
    last: Mutex<(u64, i64)>,
}

impl Generation {
    /// The generation for a list arriving now, read by `read` unless a
    /// read sent since is in hand (a failed read is not shared).
    async fn get<E, F>(&self, read: impl FnOnce() -> F) -> Result<i64, E>
    where
        F: std::future::Future<Output = Result<i64, E>>,
    {
        let want = self.sent.load(Ordering::SeqCst) + 1;
        let _slot = self.slot.lock().await;
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.0 >= want {
            return Ok(last.1);
        }
        let number = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let generation = read().await?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (number, generation);
        Ok(generation)
    }
}

impl ListCache {
    /// A cache of at most `max_bytes` (0: nothing is kept, and lists do
    /// not read the generation).
    pub fn new(max_bytes: usize) -> ListCache {
        ListCache {
            max_bytes,
            kept: Mutex::default(),
            generation: Generation::default(),
        }
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        // Inserts and clears are whole: a panic elsewhere while it was
        // held cannot leave it half written.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The body kept for `key` at `generation`.
    fn get(&self, generation: i64, key: &str) -> Option<Bytes> {
        let kept = self.kept();
        (kept.generation == generation)
            .then(|| kept.bodies.get(key).cloned())
            .flatten()
    }

    /// Keep `body` for `key` at `generation`: entries of an older
    /// generation are dropped; a body read at an older one than those kept
    /// (a slow read) is not kept; nor is one larger than an eighth of the
    /// cache. When full, the cache is cleared first.
    fn put(&self, generation: i64, key: String, body: Bytes) {
        let size = key.len() + body.len();
        if size > self.max_bytes / 8 {
            return;
        }
        let mut kept = self.kept();
        if generation < kept.generation {
            return;
        }
        if generation > kept.generation || kept.bytes + size > self.max_bytes {
            kept.bodies.clear();
            kept.bytes = 0;
            kept.generation = generation;
        }
        let len = body.len();
        match kept.bodies.insert(key, body) {
            Some(old) => kept.bytes = kept.bytes - old.len() + len,
            None => kept.bytes += size,
        }
    }
}

impl Images {
    /// Does this node keep `q`'s answer? Not with no cache, nor when it
    /// depends on more than the images' rows (download filters read the
    /// download counts, which change without the generation).
    pub fn keeps_list(&self, q: &ListQuery) -> bool {
        self.list_cache.max_bytes > 0
            && q.last_downloaded_before.is_none()
            && q.last_downloaded_since.is_none()
    }

    /// ListImages in the default rendering, as its whole body, for a query
    /// this node keeps ([`Images::keeps_list`]): the one kept for this
    /// query if no image has changed since (the generation is read first,
    /// so a body kept before a change is never served after it), else the
    /// images read and `render`ed, and kept.
    pub async fn list_body(
        &self,
        caller: &Caller,
        query: ListQuery,
        render: impl FnOnce(Vec<Listed>) -> Result<Bytes, Error>,
    ) -> Result<Bytes, Error> {
        let Some(query) = super::visible_query(caller, query) else {
            return render(vec![]);
        };
        let db = &self.db;
        let generation = self
            .list_cache
            .generation
            .get(|| db.image_list_gen())
            .await?;
        let key = format!("{query:?}");
        if let Some(body) = self.list_cache.get(generation, &key) {
            self.metrics.list_cache(true);
            return Ok(body);
        }
        self.metrics.list_cache(false);
        let body = render(self.db.image_list_json(query, Select::Wire).await?)?;
        self.list_cache.put(generation, key, body.clone());
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_for_one_generation_and_bounded() {
        let c = ListCache::new(800);
        c.put(1, "a".into(), Bytes::from(vec![b'x'; 90]));
        assert_eq!(c.get(1, "a").as_deref(), Some(&[b'x'; 90][..]));
        assert_eq!(c.get(2, "a"), None, "another generation");
        // A read at an older generation is not kept, nor does it drop the
        // newer entries.
        c.put(0, "b".into(), Bytes::from_static(b"old"));
        assert_eq!(c.get(0, "b"), None);
        assert!(c.get(1, "a").is_some());
        // A newer generation drops the older entries.
        c.put(2, "b".into(), Bytes::from_static(b"new"));
        assert_eq!(c.get(1, "a"), None);
        assert_eq!(c.get(2, "b").as_deref(), Some(&b"new"[..]));
        // Larger than an eighth: not kept.
        c.put(2, "big".into(), Bytes::from(vec![0; 101]));
        assert_eq!(c.get(2, "big"), None);
        // Full: cleared, then the new one kept; never over the bound.
        for k in 0..20 {
            c.put(2, format!("k{k}"), Bytes::from(vec![0; 90]));
            assert!(c.kept().bytes <= 800);
        }
        assert!(c.get(2, "k19").is_some());
        // Replacing a key counts its body once.
        let before = c.kept().bytes;
        c.put(2, "k19".into(), Bytes::from(vec![0; 90]));
        assert_eq!(c.kept().bytes, before);
        // Nothing kept at all when the cache has no room.
        let off = ListCache::new(0);
        off.put(1, "a".into(), Bytes::new());
        assert_eq!(off.get(1, "a"), None);
    }

    /// Lists arriving while a read is out share the next read, never one
    /// sent before they arrived.
    #[tokio::test]
    async fn lists_share_a_read_sent_after_they_arrived() {
        use std::sync::Arc;
        use std::time::Duration;
        let g = Arc::new(Generation::default());
        // The "database": each read answers how many reads began before
        // it, after a while.
        let began = Arc::new(AtomicU64::new(0));
        let read = |began: Arc<AtomicU64>| async move {
            let n = began.fetch_add(1, Ordering::SeqCst) as i64 + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(n)
        };
        let first = {
            let (g, b) = (g.clone(), began.clone());
            tokio::spawn(async move { g.get(|| read(b)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Ten lists arrive while the first read is out.
        let late: Vec<_> = (0..10)
            .map(|_| {
                let (g, b) = (g.clone(), began.clone());
                tokio::spawn(async move { g.get(|| read(b)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(1));
        for l in late {
            // Not the first read (sent before they arrived): the second.
            assert_eq!(l.await.unwrap(), Ok(2));
        }
        assert_eq!(
            began.load(Ordering::SeqCst),
            2,
            "two reads for eleven lists"
        );
        // A failed read is not shared: the next list reads again.
        assert_eq!(g.get(|| async { Err::<i64, _>("down") }).await, Err("down"));
        assert_eq!(g.get(|| read(began.clone())).await, Ok(3));
    }
}
