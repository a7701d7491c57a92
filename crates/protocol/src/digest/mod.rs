//! Digests of streamed bytes: md5 and sha1 computed on two other threads
//! while the bytes are written, so hashing overlaps with I/O, and a
//! CRC-64/NVME computed inline (it is fast enough); and the hashers'
//! serialisable state, so an upload resumed after a restart goes on hashing
//! without re-reading what it already stored.

pub mod crc64;
pub mod md5;

use base64::Engine;
use bytes::Bytes;
use sha1::digest::common::hazmat::{SerializableState, SerializedState};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::sync::mpsc;

use self::crc64::Crc64;
use self::md5::Md5;

/// What can go wrong while hashing: a hasher thread gone, a stored state
/// that does not decode, counts that disagree. Each layer above maps it to
/// its own error (the services: an internal error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DigestError(String);

impl DigestError {
    fn new(m: impl std::fmt::Display) -> DigestError {
        DigestError(m.to_string())
    }
}

type Result<T, E = DigestError> = std::result::Result<T, E>;

/// The digests of a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: [u8; 16],
    pub sha1: [u8; 20],
    pub size: u64,
}

impl Digests {
    /// base64 MD5 (`Content-MD5`, `content_md5`).
    pub fn md5_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5)
    }
    /// hex SHA-1 (`files[0].sha1`, `Etag`).
    pub fn sha1_hex(&self) -> String {
        hex::encode(self.sha1)
    }
    /// Digests of an in-memory buffer (icons, tests).
    pub fn of(data: &[u8]) -> Digests {
        Digests {
            md5: Md5::digest(data),
            sha1: Sha1::digest(data).into(),
            size: data.len() as u64,
        }
    }
}

/// The serialised md5 and sha1 states after `size` bytes, and the
/// CRC-64/NVME of those bytes (none for a state saved before the CRC was
/// kept: it is never computed for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashState {
    pub md5: Vec<u8>,
    pub sha1: Vec<u8>,
    pub crc64: Option<u64>,
    pub size: u64,
    /// The format of the serialised states ([`HASH_STATE_FORMAT`] for
    /// those this build writes). A state of another format cannot be
    /// resumed: its bytes are hashed again from where they are stored.
    pub format: i32,
}

/// The format of the hash states this build writes and resumes: md5 as
/// `digest::md5` serialises it, sha1 as RustCrypto's sha1 0.11
/// `SerializableState`, the CRC-64/NVME as its value.
pub const HASH_STATE_FORMAT: i32 = 1;

impl Default for HashState {
    fn default() -> Self {
        HashState {
            md5: Md5::new().serialize().to_vec(),
            sha1: Sha1::new().serialize().to_vec(),
            crc64: Some(Crc64::new().value()),
            size: 0,
            format: HASH_STATE_FORMAT,
        }
    }
}

fn restore_md5(bytes: &[u8]) -> Result<Md5> {
    Md5::deserialize(bytes).ok_or_else(|| DigestError::new("bad md5 state"))
}

fn restore<D: SerializableState>(bytes: &[u8]) -> Result<D> {
    let arr = SerializedState::<D>::try_from(bytes)
        .map_err(|_| DigestError::new("bad hash state size"))?;
    D::deserialize(&arr).map_err(|_| DigestError::new("bad hash state"))
}

impl HashState {
    /// True if this build can go on from the state (its format is
    /// [`HASH_STATE_FORMAT`]).
    pub fn resumable(&self) -> bool {
        self.format == HASH_STATE_FORMAT
    }

    /// The digests of the bytes hashed so far.
    pub fn digests(&self) -> Result<Digests> {
        if !self.resumable() {
            return Err(DigestError::new(format!(
                "hash state format {} cannot be read",
                self.format
            )));
        }
        let md5 = restore_md5(&self.md5)?;
        let sha1: Sha1 = restore(&self.sha1)?;
        Ok(Digests {
            md5: md5.finalize(),
            sha1: sha1.finalize().into(),
            size: self.size,
        })
    }
}

/// What a [`HashThread`] runs: a hash function's update.
trait Update: Send + 'static {
    fn feed(&mut self, data: &[u8]);
}

impl Update for Md5 {
    fn feed(&mut self, data: &[u8]) {
        self.update(data)
    }
}

impl Update for Sha1 {
    fn feed(&mut self, data: &[u8]) {
        Digest::update(self, data)
    }
}

impl Update for Sha256 {
    fn feed(&mut self, data: &[u8]) {
        Digest::update(self, data)
    }
}

/// One hash function on its own thread, fed by a bounded channel.
struct HashThread<D> {
    tx: mpsc::Sender<Bytes>,
    done: tokio::sync::oneshot::Receiver<D>,
}

/// The niceness of a SHA-1 thread next to an upload's MD5 thread. MD5 is
/// the critical path (one core at ~770 MiB/s, and it cannot be split);
/// SHA-1 is 2.4 × faster and catches up in the gaps. At equal priority the
/// scheduler shares a core between them and the receive path, and MD5 runs
/// only part of the time: yielding gave tus uploads 8–10 % more here.
const SHA1_NICE: i32 = 10;

impl<D: Update> HashThread<D> {
    /// A dedicated thread (not the blocking pool: its priority may be
    /// lowered, and a pooled thread would keep that for later work).
    fn spawn(mut d: D, nice: i32) -> Result<Self> {
        // A short queue (8 reads, ~3 MiB): md5 is the slowest stage, and a
        // deeper queue only lengthens the wait for it at the end of each
        // request and adds to RSS.
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("imgapi-hash".into())
            .spawn(move || {
                lower_priority(nice);
                while let Some(b) = rx.blocking_recv() {
                    d.feed(&b);
                }
                let _ = done_tx.send(d);
            })
            .map_err(DigestError::new)?;
        Ok(HashThread { tx, done })
    }

    async fn update(&self, chunk: &Bytes) -> Result<()> {
        self.tx
            .send(chunk.clone())
            .await
            .map_err(|_| DigestError::new("hasher thread ended"))
    }

    async fn finish(self) -> Result<D> {
        drop(self.tx);
        self.done
            .await
            .map_err(|_| DigestError::new("hasher thread ended"))
    }
}

/// Lower the calling thread's priority by `nice` (no-op for 0, and where
/// threads cannot be reniced one by one).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: gettid and setpriority take and return plain integers;
        // PRIO_PROCESS with a thread id renices only that thread on Linux.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Hashes a stream of chunks with md5 and sha1 on two threads of their
/// own, and a CRC-64/NVME inline.
pub struct StreamHasher {
    md5: HashThread<Md5>,
    sha1: HashThread<Sha1>,
    crc64: Option<Crc64>,
    size: u64,
}

impl StreamHasher {
    pub fn new() -> Result<StreamHasher> {
        Self::resume(&HashState::default())
    }

    /// md5 and sha1 only (a download checks no CRC).
    pub fn without_crc() -> Result<StreamHasher> {
        Self::resume(&HashState {
            crc64: None,
            ..HashState::default()
        })
    }

    /// Go on from a saved state.
    pub fn resume(state: &HashState) -> Result<StreamHasher> {
        if !state.resumable() {
            return Err(DigestError::new(format!(
                "hash state format {} cannot be resumed",
                state.format
            )));
        }
        Ok(StreamHasher {
            md5: HashThread::spawn(restore_md5(&state.md5)?, 0)?,
            sha1: HashThread::spawn(restore::<Sha1>(&state.sha1)?, SHA1_NICE)?,
            crc64: state.crc64.map(|c| Crc64::resume(c, state.size)),
            size: state.size,
        })
    }

    /// Feed one chunk (a cheap reference-counted clone goes to each thread).
    pub async fn update(&mut self, chunk: &Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        if let Some(c) = self.crc64.as_mut() {
            c.update(chunk);
        }
        self.md5.update(chunk).await?;
        self.sha1.update(chunk).await
    }

    /// Hash every chunk of `body` (bytes read back from where they are
    /// stored), which must bring the bytes hashed to `size` in all: a
    /// state is rebuilt from the stored bytes. A read error is `on_err`'s;
    /// another count is an internal error.
    pub async fn update_to<S, E>(
        &mut self,
        mut body: S,
        size: u64,
        on_err: fn(std::io::Error) -> E,
    ) -> Result<(), E>
    where
        S: futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin,
        E: From<DigestError>,
    {
        use futures_util::StreamExt;
        while let Some(c) = body.next().await {
            self.update(&c.map_err(on_err)?).await?;
        }
        if self.size != size {
            return Err(DigestError::new(format!(
                "{} bytes stored where {size} were acknowledged",
                self.size
            ))
            .into());
        }
        Ok(())
    }

    /// Bytes hashed so far (including those before a resume).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(self) -> Result<Digests> {
        self.finish_state().await?.digests()
    }

    /// The state to save, to resume later.
    pub async fn finish_state(self) -> Result<HashState> {
        let md5 = self.md5.finish().await?;
        let sha1 = self.sha1.finish().await?;
        Ok(HashState {
            md5: md5.serialize().to_vec(),
            sha1: sha1.serialize().to_vec(),
            crc64: self.crc64.map(|c| c.value()),
            size: self.size,
            format: HASH_STATE_FORMAT,
        })
    }
}

/// A per-request checksum (tus `Upload-Checksum`): md5, sha1 or sha256.
pub struct ChunkChecksum(ChunkHasher);

enum ChunkHasher {
    Md5(HashThread<Md5>),
    Sha1(HashThread<Sha1>),
    Sha256(HashThread<Sha256>),
}

/// The algorithms `Upload-Checksum` accepts.
pub const CHECKSUM_ALGORITHMS: &[&str] = &["md5", "sha1", "sha256"];

impl ChunkChecksum {
    /// None for an algorithm not in [`CHECKSUM_ALGORITHMS`].
    pub fn new(algo: &str) -> Result<Option<ChunkChecksum>> {
        Ok(Some(ChunkChecksum(match algo {
            "md5" => ChunkHasher::Md5(HashThread::spawn(Md5::new(), 0)?),
            "sha1" => ChunkHasher::Sha1(HashThread::spawn(Sha1::new(), 0)?),
            "sha256" => ChunkHasher::Sha256(HashThread::spawn(Sha256::new(), 0)?),
            _ => return Ok(None),
        })))
    }
    pub async fn update(&self, chunk: &Bytes) -> Result<()> {
        match &self.0 {
            ChunkHasher::Md5(h) => h.update(chunk).await,
            ChunkHasher::Sha1(h) => h.update(chunk).await,
            ChunkHasher::Sha256(h) => h.update(chunk).await,
        }
    }
    pub async fn finish(self) -> Result<Vec<u8>> {
        Ok(match self.0 {
            ChunkHasher::Md5(h) => h.finish().await?.finalize().to_vec(),
            ChunkHasher::Sha1(h) => h.finish().await?.finalize().to_vec(),
            ChunkHasher::Sha256(h) => h.finish().await?.finalize().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_hasher_matches_one_shot() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = StreamHasher::new().unwrap();
        for c in data.chunks(7777) {
            h.update(&Bytes::copy_from_slice(c)).await.unwrap();
        }
        let d = h.finish().await.unwrap();
        assert_eq!(d, Digests::of(&data));
        assert_eq!(Digests::of(b"").md5_base64(), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[tokio::test]
    async fn resumed_hashing_matches_one_shot() {
        let data: Vec<u8> = (0..200_001u32).map(|i| (i * 7 % 253) as u8).collect();
        let (a, b) = data.split_at(77_777);
        let mut h = StreamHasher::new().unwrap();
        h.update(&Bytes::copy_from_slice(a)).await.unwrap();
        let state = h.finish_state().await.unwrap();
        assert_eq!(state.size, a.len() as u64);
        assert_eq!(state.crc64, Some(Crc64::of(a)));
        let mut h = StreamHasher::resume(&state).unwrap();
        h.update(&Bytes::copy_from_slice(b)).await.unwrap();
        let end = h.finish_state().await.unwrap();
        assert_eq!(end.crc64, Some(Crc64::of(&data)));
        assert_eq!(end.digests().unwrap(), Digests::of(&data));
        // A state saved before CRCs were kept goes on without one.
        let old = HashState {
            crc64: None,
            ..state
        };
        let mut h = StreamHasher::resume(&old).unwrap();
        h.update(&Bytes::copy_from_slice(b)).await.unwrap();
        assert_eq!(h.finish_state().await.unwrap().crc64, None);
        assert_eq!(HashState::default().digests().unwrap(), Digests::of(b""));
    }

    #[tokio::test]
    async fn chunk_checksums() {
        let c = ChunkChecksum::new("sha256").unwrap().unwrap();
        c.update(&Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(
            hex::encode(c.finish().await.unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ChunkChecksum::new("crc32").unwrap().is_none());
    }
}
