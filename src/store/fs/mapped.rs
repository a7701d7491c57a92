//! Reading sealed files (image files and icons) through memory maps, so
//! that a response body is the page cache itself, with no read into a
//! buffer and no blocking-pool hop per chunk while the file is cached.
//!
//! Each chunk of a body is a mapping registered with its file and offset
//! ([`region`]), so that the connection, handed a slice of a chunk to
//! write, can send those bytes with sendfile(2) by file and offset instead
//! of copying them from the mapping ([`send`]): the kernel then passes page
//! cache pages to the socket, as nginx's `sendfile on` does. The mapping is
//! only touched where sendfile cannot be used.
//!
//! **The invariant this rests on: a sealed file is never truncated nor
//! written in place.** Image files and icons are written once under a
//! temporary name, fsynced and renamed into place (`PendingFsWrite`), or
//! renamed from a completed upload; replacing one renames a new file over
//! it and deleting one unlinks it, and a mapping keeps the old file's pages
//! either way. A file cut shorter than a live mapping would make the next
//! access to the lost pages fault (SIGBUS), so [`super::FsStore`] refuses to
//! truncate or append to a sealed key (`is_sealed_key`), and a mapping never
//! reaches past the size the file had when it was opened.

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions};

use crate::store::ByteStream;

/// Bytes of one chunk (one mapping) of a body. A chunk is unmapped when
/// the connection has written it, so a stream holds about one chunk of
/// the file mapped: small enough to keep a node's mapped memory bounded
/// with hundreds of streams, large enough that mapping costs nothing next
/// to copying the bytes.
pub(super) const CHUNK: u64 = 1 << 20;

/// The bytes of `range` (clamped to `len`, the file's size when it was
/// opened) as a stream of mapped chunks aligned to [`CHUNK`]. A chunk whose
/// pages are not all in the page cache is read in on the blocking pool
/// before it is handed out, so a cold file never stalls a runtime thread.
pub(super) fn stream(file: std::fs::File, len: u64, range: Option<Range<u64>>) -> ByteStream {
    let r = range.unwrap_or(0..len);
    let (start, end) = (r.start.min(len), r.end.min(len));
    let file = Arc::new(file);
    Box::pin(futures_util::stream::try_unfold(start, move |pos| {
        let file = file.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            let next = ((pos / CHUNK + 1) * CHUNK).min(end);
            let map = map_chunk(&file, pos, next - pos)?;
            let map = if resident(&map) {
                map
            } else {
                tokio::task::spawn_blocking(move || {
                    populate(&map);
                    map
                })
                .await
                .map_err(std::io::Error::other)?
            };
            Ok(Some((Bytes::from_owner(Chunk::new(map, file, pos)), next)))
        }
    }))
}

/// A chunk of a body: a mapping of a sealed file's bytes from `offset`,
/// registered in [`REGIONS`] while it lives.
struct Chunk {
    map: Mmap,
    _file: Arc<std::fs::File>,
}

/// Where a live chunk's bytes come from.
struct Region {
    len: usize,
    fd: RawFd,
    offset: u64,
}

/// Live chunks by start address. A mapping's addresses are its own until
/// it is unmapped, and a chunk leaves the table before its mapping goes.
static REGIONS: Mutex<BTreeMap<usize, Region>> = Mutex::new(BTreeMap::new());
/// Entries in `REGIONS`: with none, a lookup takes no lock.
static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Chunk {
    fn new(map: Mmap, file: Arc<std::fs::File>, offset: u64) -> Chunk {
        let region = Region {
            len: map.len(),
            fd: file.as_raw_fd(),
            offset,
        };
        let mut regions = REGIONS.lock().unwrap_or_else(|e| e.into_inner());
        regions.insert(map.as_ptr() as usize, region);
        LIVE.fetch_add(1, Ordering::Release);
        Chunk { map, _file: file }
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut regions = REGIONS.lock().unwrap_or_else(|e| e.into_inner());
        if regions.remove(&(self.map.as_ptr() as usize)).is_some() {
            LIVE.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The file (descriptor) and offset the `len` bytes at `ptr` are mapped
/// from, if they lie within one live chunk of a body. The descriptor stays
/// open while the caller holds a slice of the chunk.
pub fn region(ptr: *const u8, len: usize) -> Option<(RawFd, u64)> {
    if LIVE.load(Ordering::Acquire) == 0 || len == 0 {
        return None;
    }
    let addr = ptr as usize;
    let regions = REGIONS.lock().unwrap_or_else(|e| e.into_inner());
    let (&start, r) = regions.range(..=addr).next_back()?;
    let within = addr.checked_add(len)? <= start + r.len;
    within.then(|| (r.fd, r.offset + (addr - start) as u64))
}

/// Send up to `len` bytes of the file `fd` from `offset` to the socket
/// `sock` with sendfile(2): the bytes a [`region`] lookup found. Returns
/// the bytes sent; `WouldBlock` when the socket is full; `Unsupported`
/// where the file cannot be sent this way (the caller then writes the
/// mapped bytes).
pub fn send(sock: RawFd, fd: RawFd, offset: u64, len: usize) -> std::io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(std::io::Error::other)?;
    // SAFETY: both descriptors are open (the caller holds the chunk that
    // keeps `fd` open and owns `sock`); `off` is a valid off_t.
    let n = unsafe { libc::sendfile(sock, fd, &mut off, len) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            Err(std::io::Error::new(std::io::ErrorKind::Unsupported, e))
        }
        _ => Err(e),
    }
}

/// A read-only mapping of `len` (> 0) bytes of `file` from `offset`.
fn map_chunk(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Mmap> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: the file is sealed (see the module's invariant): it is never
    // truncated nor written while mapped, and the mapping stays within the
    // size it had when opened, so every mapped page stays readable and
    // its bytes never change under the `&[u8]` the mapping hands out.
    unsafe { MmapOptions::new().offset(offset).len(len).map(file) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Pages apart that [`resident`] samples: 64 KiB, half the kernel's
/// smallest readahead window.
const SAMPLE_STRIDE: usize = 64 << 10;

/// Whether the mapping's pages are in the page cache (mincore(2)), judged
/// from one page in every [`SAMPLE_STRIDE`] and the last: checking every
/// page cost 6 % of a download's CPU, and since the kernel reads a file in
/// runs of readahead, a hole shorter than the stride is rare (the cost of
/// missing one is a short wait for the disk in the send). False if it
/// cannot be told, so that the caller reads the pages in off the runtime.
fn resident(map: &Mmap) -> bool {
    let page = page_size();
    let addr = map.as_ptr() as usize;
    let base = addr - addr % page;
    let end = addr + map.len();
    let mut at = base;
    let mut last_checked = false;
    while !last_checked {
        if at + page >= end {
            at = (end - 1) - (end - 1) % page;
            last_checked = true;
        }
        let mut v = 0u8;
        // SAFETY: the page at `at` lies within the mapping (memmap2 mapped
        // from `base`, aligned down); `v` holds the one page's byte.
        let rc = unsafe { libc::mincore(at as *mut libc::c_void, page, &mut v) };
        if rc != 0 || v & 1 == 0 {
            return false;
        }
        at += SAMPLE_STRIDE.max(page);
    }
    true
}

/// Bring every page of the mapping into the page cache (blocking: it waits
/// for the disk), so that sending it does not wait.
fn populate(map: &Mmap) {
    let _ = map.advise(Advice::WillNeed);
    let page = page_size();
    for i in (0..map.len()).step_by(page) {
        // SAFETY: `i` is within the mapping.
        unsafe { std::ptr::read_volatile(map.as_ptr().add(i)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use std::io::Write;

    async fn collect(s: ByteStream) -> (Vec<u8>, usize) {
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        (chunks.concat(), chunks.len())
    }

    #[tokio::test]
    async fn chunks_cover_ranges_and_clamp_to_the_opened_size() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(2 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        f.write_all(&data).unwrap();
        let len = data.len() as u64;
        let open = || f.try_clone().unwrap();
        let (all, n) = collect(stream(open(), len, None)).await;
        assert!(all == data && n == 3);
        for r in [
            0..1,
            5..CHUNK + 3,
            CHUNK..CHUNK + 1,
            CHUNK - 1..2 * CHUNK + 1,
            len - 1..len,
        ] {
            let (got, _) = collect(stream(open(), len, Some(r.clone()))).await;
            assert_eq!(got, data[r.start as usize..r.end as usize]);
        }
        // Past the size the file had when opened: nothing is mapped there.
        let (tail, _) = collect(stream(open(), len, Some(len - 3..len + 100))).await;
        assert_eq!(tail, data[data.len() - 3..]);
        let (none, n) = collect(stream(open(), 0, None)).await;
        assert!(none.is_empty() && n == 0);
    }

    #[tokio::test]
    async fn a_mapping_keeps_the_bytes_of_a_file_replaced_or_unlinked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("file0");
        std::fs::write(&p, vec![1u8; (CHUNK * 2) as usize]).unwrap();
        let s = stream(std::fs::File::open(&p).unwrap(), CHUNK * 2, None);
        // Replaced the way the store replaces a sealed file, then unlinked.
        let tmp = dir.path().join("file0.tmp");
        std::fs::write(&tmp, vec![2u8; 10]).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let (got, _) = collect(s).await;
        assert!(got.len() == (CHUNK * 2) as usize && got.iter().all(|&b| b == 1));
    }

    /// A file dropped from the page cache is read in off the runtime
    /// (the current-thread runtime here would stall otherwise) and sent
    /// whole.
    #[tokio::test]
    async fn a_cold_file_is_read_in_first() {
        use std::os::fd::AsRawFd;
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(CHUNK + 4097)).map(|i| (i % 253) as u8).collect();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a valid descriptor; advice only.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let cold = map_chunk(&f, 0, CHUNK).unwrap();
        // (on tmpfs nothing leaves memory: then there is nothing to read in)
        let evicted = !resident(&cold);
        drop(cold);
        let (got, n) = collect(stream(f, data.len() as u64, None)).await;
        assert!(got == data && n == 2, "evicted: {evicted}");
    }

    #[test]
    fn residency_is_told_for_a_cached_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![3u8; 3 * 4096 + 17]).unwrap();
        let map = map_chunk(&f, 4096 + 5, 2 * 4096).unwrap();
        populate(&map);
        assert!(resident(&map));
        assert!(map.iter().all(|&b| b == 3));
    }
}
