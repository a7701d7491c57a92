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
use crate::db::{DbError, Result as DbResult};
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
    /// The last read that ended: its number, and the generation (None:
    /// it failed).
    last: Mutex<(u64, Option<i64>)>,
}

impl Generation {
    fn last(&self) -> (u64, Option<i64>) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation for a list arriving now: from a read sent since, or
    /// read by `read`. A read that failed fails the lists that waited for
    /// it, so that a database that does not answer holds a list for at
    /// most two reads' time, however many wait.
    async fn get<F>(&self, read: impl FnOnce() -> F) -> DbResult<i64>
    where
        F: std::future::Future<Output = DbResult<i64>>,
    {
        let want = self.sent.load(Ordering::SeqCst) + 1;
        let _slot = self.slot.lock().await;
        let (number, generation) = self.last();
        if number >= want {
            return generation.ok_or_else(|| {
                DbError::Unavailable("the read of the list generation failed".into())
            });
        }
        let number = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let got = read().await;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (number, got.as_ref().ok().copied());
        got
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

    /// Keep `body` for `key` at `generation`, if that is still the last
    /// generation read (a slow list's body is not kept): the entries of
    /// another generation are dropped (a database restored from a backup,
    /// or a replica promoted, may go back). Nor is a body kept that is
    /// larger than an eighth of the cache. When full, the cache is cleared
    /// first.
    fn put(&self, generation: i64, key: String, body: Bytes) {
        let size = key.len() + body.len();
        if size > self.max_bytes / 8 || self.generation.last().1 != Some(generation) {
            return;
        }
        let mut kept = self.kept();
        if generation != kept.generation || kept.bytes + size > self.max_bytes {
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

    /// `c` as if its last read of the generation gave `g`.
    fn read_at(c: &ListCache, g: i64) {
        let mut last = c.generation.last.lock().unwrap();
        *last = (last.0 + 1, Some(g));
    }

    #[test]
    fn kept_for_one_generation_and_bounded() {
        let c = ListCache::new(800);
        read_at(&c, 1);
        c.put(1, "a".into(), Bytes::from(vec![b'x'; 90]));
        assert_eq!(c.get(1, "a").as_deref(), Some(&[b'x'; 90][..]));
        assert_eq!(c.get(2, "a"), None, "another generation");
        // A body read at a generation that is no longer the last read is
        // not kept, nor does it drop the entries kept.
        c.put(0, "b".into(), Bytes::from_static(b"old"));
        assert_eq!(c.get(0, "b"), None);
        assert!(c.get(1, "a").is_some());
        // A newer generation drops the older entries.
        read_at(&c, 2);
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
        // A database that went back (restored, a replica promoted): the
        // generation read now is kept, the other entries dropped.
        read_at(&c, 1);
        c.put(1, "back".into(), Bytes::from_static(b"b"));
        assert_eq!(c.get(1, "back").as_deref(), Some(&b"b"[..]));
        assert_eq!(c.get(2, "k19"), None);
        assert_eq!(c.kept().bytes, 5);
        let off = ListCache::new(0);
        read_at(&off, 1);
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
            Ok(n)
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
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for l in late {
            // Not the first read (sent before they arrived): the second.
            assert_eq!(l.await.unwrap().unwrap(), 2);
        }
        assert_eq!(
            began.load(Ordering::SeqCst),
            2,
            "two reads for eleven lists"
        );
        // The database stops answering while a read is out: the five
        // lists that arrived meanwhile send one read, and its failure is
        // theirs, at once (not five reads' time for the last of them).
        let downs = Arc::new(AtomicU64::new(0));
        let down = |downs: Arc<AtomicU64>| async move {
            downs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(DbError::Unavailable("down".into()))
        };
        let out = {
            let (g, b) = (g.clone(), began.clone());
            tokio::spawn(async move { g.get(|| read(b)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let (g, d) = (g.clone(), downs.clone());
                tokio::spawn(async move { g.get(|| down(d)).await })
            })
            .collect();
        assert_eq!(out.await.unwrap().unwrap(), 3);
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Err(DbError::Unavailable(_))));
        }
        assert_eq!(
            downs.load(Ordering::SeqCst),
            1,
            "one failed read for five lists"
        );
        // A list arriving after the failure reads again.
        assert_eq!(g.get(|| read(began.clone())).await.unwrap(), 4);
    }
}
