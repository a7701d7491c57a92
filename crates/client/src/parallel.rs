//! Parallel uploads (`imgapi publish --parallel N`, tus concatenation):
//! the file is cut into N contiguous ranges, each sent as a partial upload
//! (`Upload-Concat: partial`) on its own connection. The final upload
//! (`Upload-Concat: final;...`) is created right after the partials, before
//! any byte is sent, so the server knows from the start where each partial
//! belongs. The state file keeps the final's and the partials' ids and each
//! partial's acknowledged offset; a run after any interruption asks the
//! server (`HEAD`) where every partial is and sends only what it lacks.
//!
//! Each partial's CRC-64/NVME is computed from the buffers it sends and
//! saved with its offset; once every byte is in, the partials' CRCs,
//! combined in file order, are the whole file's, and the server's CRC of
//! the final upload (which it computes in file order as the final fills)
//! must equal it; the image is registered with the server's MD5 of that
//! verified final (see hashes.rs).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::error::{ClientError, Result, local};
use super::hashes::{self, crc_to};
use super::http::{Http, backoff};
use super::state::{Entry, FileId, Parallel, PartState, StateStore};
use super::tus::{self, Patched, Uploaded};
use imgapi_protocol::digest::crc64::Crc64;

/// Most partial uploads (the server takes up to 64 per final upload).
pub const MAX_PARALLEL: usize = 16;

/// `--parallel`'s default: one stream for small files, up to four.
pub fn default_parallel(size: u64) -> usize {
    match size {
        s if s < 64 << 20 => 1,
        s if s < 256 << 20 => 2,
        _ => 4,
    }
}

/// One parallel upload of a file whose state entry is `key`.
pub struct Job<'a> {
    pub http: &'a Http,
    pub path: &'a Path,
    pub target: Option<&'a str>,
    pub chunk: u64,
    pub fid: &'a FileId,
    pub key: &'a str,
    pub store: &'a StateStore,
    pub file: Arc<std::fs::File>,
}

/// What the sends share: the entry (saved after each acknowledged chunk),
/// the counters.
struct Shared {
    entry: Mutex<Entry>,
    sent: Arc<AtomicU64>,
    acked: AtomicU64,
    retries: AtomicU64,
}

fn gone(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Server {
            status: 404 | 410,
            ..
        }
    )
}

impl Job<'_> {
    /// Resume `loaded` (a parallel entry) or start a new upload in `n` parts.
    pub async fn run(self, n: usize, loaded: Option<Entry>) -> Result<Uploaded> {
        let http = self.http;
        let size = self.fid.size;
        let mut entry = self.resume_or_create(n, loaded).await?;
        let final_id = entry.upload_id.clone();
        let parts = self.server_offsets(&entry).await?;
        let resumed_from: u64 = parts.iter().map(|p| p.offset).sum();
        if let Some(par) = &mut entry.parallel {
            par.parts = parts.clone();
        }
        let sh = Arc::new(Shared {
            entry: Mutex::new(entry),
            sent: Arc::new(AtomicU64::new(0)),
            acked: AtomicU64::new(resumed_from),
            retries: AtomicU64::new(0),
        });
        let pb = super::output::bar(size, http.conn.json, "upload");
        pb.set_position(resumed_from);
        let whole = match self.send_all(&parts, &sh, &pb).await {
            Ok(whole) => whole,
            Err(e) => {
                pb.abandon();
                return Err(e);
            }
        };
        self.wait_final(&final_id).await?;
        pb.finish_and_clear();
        let now = FileId::of(self.path)?;
        if now.size != self.fid.size || now.mtime_ns != self.fid.mtime_ns {
            self.store.remove(self.key);
            return Err(tus::changed_while_uploaded(self.path));
        }
        let mut ids = vec![final_id.as_str()];
        ids.extend(parts.iter().map(|p| p.id.as_str()));
        let (info, content_md5) =
            tus::verify(http, self.store, self.key, &ids, &self.file, size, &whole).await?;
        let sha1 = info.sha1.clone().unwrap_or_default();
        Ok(Uploaded {
            id: final_id,
            size,
            sha1,
            content_md5,
            resumed_from,
            bytes_sent: sh.sent.load(Ordering::Relaxed),
            retries: sh.retries.load(Ordering::Relaxed) as u32,
            key: self.key.to_string(),
            info,
        })
    }

    /// The saved parallel upload `loaded` if the server still has it for a
    /// file of this size, else a new one in `n` parts.
    async fn resume_or_create(&self, n: usize, loaded: Option<Entry>) -> Result<Entry> {
        if let Some(e) = loaded {
            match tus::head(self.http, &e.upload_id).await {
                Ok((_, l)) if l == self.fid.size && e.parallel.is_some() => return Ok(e),
                Ok(_) => self.store.remove(self.key),
                Err(e) if gone(&e) => self.store.remove(self.key),
                Err(e) => return Err(e),
            }
        }
        self.create(n).await
    }

    /// The entry's partials with the offsets the server has for them (all
    /// complete once the final upload is).
    async fn server_offsets(&self, entry: &Entry) -> Result<Vec<PartState>> {
        let http = self.http;
        let final_id = &entry.upload_id;
        let mut parts = entry.parallel.clone().map(|p| p.parts).unwrap_or_default();
        let (final_offset, _) = tus::head(http, final_id).await?;
        if final_offset >= self.fid.size {
            for p in &mut parts {
                p.offset = p.len;
            }
            return Ok(parts);
        }
        for p in parts.iter_mut().filter(|p| p.offset < p.len) {
            match tus::head(http, &p.id).await {
                Ok((o, _)) => p.offset = o,
                Err(e) if gone(&e) => {
                    // Used up into the final already, or lost.
                    let (fo, _) = tus::head(http, final_id).await?;
                    if fo < p.start + p.len {
                        self.store.remove(self.key);
                        return Err(ClientError::Transport(format!(
                            "partial upload {} of upload {final_id} is gone; \
                             run the same command again to start over",
                            p.id
                        )));
                    }
                    p.offset = p.len;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parts)
    }

    /// Sends every partial at once; the CRC of the whole file.
    async fn send_all(
        &self,
        parts: &[PartState],
        sh: &Arc<Shared>,
        pb: &ProgressBar,
    ) -> Result<Crc64> {
        // Each partial's CRC: of what it sends, or (complete already) from
        // its saved state and, for what that lacks, the file.
        let mut crcs = futures_util::future::join_all(
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| self.part_crc(i, p.clone(), sh, pb)),
        )
        .await;
        // A CRC mismatch ends the whole upload, and the other partials'
        // sends then fail too: report the mismatch, not what followed it.
        if let Some(i) = crcs
            .iter()
            .position(|r| matches!(r, Err(ClientError::Verify(_))))
            && let Err(e) = crcs.swap_remove(i)
        {
            return Err(e);
        }
        let mut whole = (0u64, 0u64);
        for c in crcs {
            let c = c?;
            whole = (
                Crc64::combine(whole.0, c.value(), c.size()),
                whole.1 + c.size(),
            );
        }
        Ok(Crc64::resume(whole.0, whole.1))
    }

    /// Create the partials and then, at once, the final upload; save them.
    async fn create(&self, n: usize) -> Result<Entry> {
        let size = self.fid.size;
        let mut parts = Vec::with_capacity(n);
        for (start, len) in cuts(size, n) {
            let id = tus::create_with(self.http, len, None, None, Some("partial")).await?;
            parts.push(PartState {
                id,
                start,
                len,
                offset: 0,
                crc: None,
            });
        }
        let urls: Vec<String> = parts.iter().map(|p| format!("/uploads/{}", p.id)).collect();
        let concat = format!("final;{}", urls.join(" "));
        let final_id =
            tus::create_with(self.http, size, Some(self.path), self.target, Some(&concat)).await?;
        let e = Entry {
            url: self.http.conn.url.clone(),
            account: self.http.conn.account.clone(),
            target: self.target.map(String::from),
            file: self.fid.clone(),
            upload_id: final_id,
            hashes: hashes::save(&Crc64::new()),
            created_at: chrono::Utc::now().to_rfc3339(),
            parallel: Some(Parallel { parts }),
        };
        self.store.save(self.key, &e)?;
        tus::end_stale(self.http, self.store, &e, self.key).await;
        Ok(e)
    }

    /// The CRC of partial `i`, `p`: its saved CRC brought to its offset
    /// (reading from the file only what the saved state lacks), then on
    /// with the bytes it still has to send.
    async fn part_crc(
        &self,
        i: usize,
        p: PartState,
        sh: &Shared,
        pb: &ProgressBar,
    ) -> Result<Crc64> {
        let saved = p.crc.as_ref().and_then(hashes::restore);
        let crc = crc_to(&self.file, p.start, saved.unwrap_or_default(), p.offset).await?;
        if p.offset >= p.len {
            return Ok(crc);
        }
        self.send_part(i, p, crc, sh, pb).await
    }

    /// Send partial `i` from its offset to its end, resuming from the
    /// server's offset after a failed request; its offset and `crc` (of
    /// its bytes up to the offset) are saved after each acknowledged chunk.
    /// Returns its CRC.
    async fn send_part(
        &self,
        i: usize,
        mut p: PartState,
        mut crc: Crc64,
        sh: &Shared,
        pb: &ProgressBar,
    ) -> Result<Crc64> {
        let http = self.http;
        let hidden = ProgressBar::hidden();
        let abort_after = tus::env_u64("IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES");
        let mut failures = 0u32;
        while p.offset < p.len {
            let len = self.chunk.min(p.len - p.offset);
            let sending = Arc::new(Mutex::new(crc));
            let res = tus::patch(
                http,
                &p.id,
                &self.file,
                sending.clone(),
                p.start + p.offset,
                p.offset,
                len,
                &sh.sent,
                &hidden,
            )
            .await;
            let before = p.offset;
            match res {
                Err(e) => return Err(e),
                Ok(Patched::Offset(o, theirs)) if o > p.offset && o <= p.len => {
                    crc = hashes::acknowledged(&self.file, p.start, crc, &sending, o).await?;
                    p.offset = o;
                    failures = 0;
                    // A partial with hashes of its own (not written in
                    // place into its final) shows its CRC.
                    if let Some(t) = theirs
                        && t != crc.value()
                    {
                        return Err(self.mismatch(sh, &crc, t).await);
                    }
                }
                Ok(Patched::Offset(o, _)) => {
                    self.retry(
                        &mut p,
                        &mut failures,
                        sh,
                        format!("PATCH answered offset {o}"),
                        None,
                    )
                    .await?
                }
                Ok(Patched::Retry(why, after)) => {
                    self.retry(&mut p, &mut failures, sh, why, after).await?
                }
            }
            if crc.size() != p.offset {
                crc = crc_to(&self.file, p.start, crc, p.offset).await?;
            }
            self.acknowledged(i, &p, before, &crc, (sh, pb), abort_after)?;
        }
        Ok(crc)
    }

    /// After a chunk of partial `i`: the progress moved from `before` to
    /// its offset, and the state entry saved with its offset and CRC.
    fn acknowledged(
        &self,
        i: usize,
        p: &PartState,
        before: u64,
        crc: &Crc64,
        (sh, pb): (&Shared, &ProgressBar),
        abort_after: Option<u64>,
    ) -> Result<()> {
        let acked = if p.offset >= before {
            sh.acked.fetch_add(p.offset - before, Ordering::Relaxed) + (p.offset - before)
        } else {
            sh.acked.fetch_sub(before - p.offset, Ordering::Relaxed) - (before - p.offset)
        };
        pb.set_position(acked);
        if abort_after.is_some_and(|n| acked >= n) {
            // Test hook: die as `kill -9` would, after the server
            // acknowledged bytes and before the state file says so.
            // SAFETY: kill(2) on our own pid.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        let mut e = sh
            .entry
            .lock()
            .map_err(|_| local("state", "poisoned lock"))?;
        if let Some(par) = &mut e.parallel {
            par.parts[i].offset = p.offset;
            par.parts[i].crc = Some(hashes::save(crc));
        }
        self.store.save(self.key, &e)
    }

    /// A partial's CRC differs from ours: end the whole upload.
    async fn mismatch(&self, sh: &Shared, ours: &Crc64, theirs: u64) -> ClientError {
        let mut ids = vec![];
        if let Ok(e) = sh.entry.lock() {
            ids.push(e.upload_id.clone());
            ids.extend(
                e.parallel
                    .iter()
                    .flat_map(|p| p.parts.iter().map(|p| p.id.clone())),
            );
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        tus::crc_mismatch(self.http, self.store, self.key, &ids, ours, theirs).await
    }

    /// After a request given up on: wait, then take the server's offset.
    async fn retry(
        &self,
        p: &mut PartState,
        failures: &mut u32,
        sh: &Shared,
        why: String,
        after: Option<Duration>,
    ) -> Result<()> {
        let http = self.http;
        if *failures >= http.conn.retries {
            let e = ClientError::Transport(format!(
                "partial upload {} failed after {} attempt(s): {why}; \
                 run the same command again to resume",
                p.id,
                *failures + 1
            ));
            return Err(match why.starts_with(super::http::CANNOT_CONNECT) {
                true => e.hint(http.unreachable_hint()),
                false => e,
            });
        }
        let d = after.unwrap_or_else(|| backoff(*failures));
        if !http.conn.json {
            eprintln!(
                "imgapi: partial upload {} at {}: {why}; resuming in {:.1}s",
                p.id,
                p.offset,
                d.as_secs_f64()
            );
        }
        tokio::time::sleep(d).await;
        *failures += 1;
        sh.retries.fetch_add(1, Ordering::Relaxed);
        let (o, _) = tus::head(http, &p.id).await?;
        p.offset = o.min(p.len);
        Ok(())
    }

    /// Wait until the final upload holds every byte (the server fills it
    /// from the partials as they complete).
    async fn wait_final(&self, id: &str) -> Result<()> {
        let size = self.fid.size;
        let mut last = (u64::MAX, Instant::now());
        let mut delay = Duration::from_millis(20);
        loop {
            let (o, _) = tus::head(self.http, id).await?;
            if o >= size {
                return Ok(());
            }
            if o != last.0 {
                last = (o, Instant::now());
            } else if last.1.elapsed() >= self.http.conn.stall {
                return Err(ClientError::Transport(format!(
                    "the final upload {id} stopped at byte {o} of {size}; \
                     run the same command again to resume"
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

/// Partials but the last are cut at a multiple of this when each is at
/// least that long: on an S3 store with the default part size (16 MiB), or
/// any power of two below it, every partial is then a whole number of
/// parts and sends its bytes as its own run of parts of the final's
/// multipart upload, instead of staging them (README, concatenation).
const ALIGN: u64 = 16 << 20;

/// The `(start, length)` of each of the (at most `n`, at most
/// [`MAX_PARALLEL`]) partials of a file of `size` bytes, in file order:
/// equal lengths, rounded down to [`ALIGN`] when they are at least that, the
/// rest in the last.
fn cuts(size: u64, n: usize) -> Vec<(u64, u64)> {
    let n = (n.clamp(1, MAX_PARALLEL) as u64).min(size.max(1));
    let even = size / n;
    let base = if even >= ALIGN {
        even / ALIGN * ALIGN
    } else {
        even
    };
    (0..n)
        .map(|i| {
            let start = i * base;
            (start, if i == n - 1 { size - start } else { base })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_but_the_last_are_whole_16_mib_parts_when_long_enough() {
        const MIB: u64 = 1 << 20;
        for (size, n) in [
            (1024 * MIB + 7, 4),
            (100 * MIB, 2),
            (70 * MIB + 1, 3),
            (4 * 17 * MIB, 4),
        ] {
            let c = cuts(size, n);
            assert_eq!(c.len(), n);
            assert_eq!(c.iter().map(|p| p.1).sum::<u64>(), size);
            for w in c.windows(2) {
                assert_eq!(w[0].0 + w[0].1, w[1].0, "contiguous");
            }
            for p in &c[..n - 1] {
                assert_eq!(p.1 % ALIGN, 0, "{size} in {n}: {c:?}");
            }
            assert!(c[n - 1].1 < c[0].1 + n as u64 * ALIGN, "{c:?}");
        }
        // Shorter than 16 MiB each: cut evenly, as before.
        assert_eq!(
            cuts(30 * MIB + 5, 3)[..2],
            [(0, 10 * MIB + 1), (10 * MIB + 1, 10 * MIB + 1)]
        );
        assert_eq!(cuts(3, 8).len(), 3);
        assert_eq!(cuts(0, 4), [(0, 0)]);
    }
}
