//! Digests of streamed bytes: md5 and sha1 computed on two other threads
//! while the bytes are written, so hashing overlaps with I/O.

use base64::Engine;
use bytes::Bytes;
use md5::Md5;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

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
            md5: Md5::digest(data).into(),
            sha1: Sha1::digest(data).into(),
            size: data.len() as u64,
        }
    }
}

/// Hashes a stream of chunks with md5 and sha1 on two blocking threads.
pub struct StreamHasher {
    md5_tx: mpsc::Sender<Bytes>,
    sha1_tx: mpsc::Sender<Bytes>,
    md5: tokio::task::JoinHandle<[u8; 16]>,
    sha1: tokio::task::JoinHandle<[u8; 20]>,
    size: u64,
}

fn spawn_hasher<D: Digest + Send + 'static, const N: usize>(
    mut rx: mpsc::Receiver<Bytes>,
) -> tokio::task::JoinHandle<[u8; N]> {
    tokio::task::spawn_blocking(move || {
        let mut d = D::new();
        while let Some(b) = rx.blocking_recv() {
            d.update(&b);
        }
        let out = d.finalize();
        let mut arr = [0u8; N];
        arr.copy_from_slice(&out);
        arr
    })
}

impl Default for StreamHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHasher {
    pub fn new() -> StreamHasher {
        let (md5_tx, md5_rx) = mpsc::channel(32);
        let (sha1_tx, sha1_rx) = mpsc::channel(32);
        StreamHasher {
            md5_tx,
            sha1_tx,
            md5: spawn_hasher::<Md5, 16>(md5_rx),
            sha1: spawn_hasher::<Sha1, 20>(sha1_rx),
            size: 0,
        }
    }

    /// Feed one chunk (a cheap reference-counted clone goes to each thread).
    pub async fn update(&mut self, chunk: &Bytes) -> Result<()> {
        self.size += chunk.len() as u64;
        let gone = || Error::internal("hasher thread ended");
        self.md5_tx.send(chunk.clone()).await.map_err(|_| gone())?;
        self.sha1_tx.send(chunk.clone()).await.map_err(|_| gone())?;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(self) -> Result<Digests> {
        drop(self.md5_tx);
        drop(self.sha1_tx);
        Ok(Digests {
            md5: self.md5.await.map_err(Error::internal)?,
            sha1: self.sha1.await.map_err(Error::internal)?,
            size: self.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_hasher_matches_one_shot() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = StreamHasher::new();
        for c in data.chunks(7777) {
            h.update(&Bytes::copy_from_slice(c)).await.unwrap();
        }
        let d = h.finish().await.unwrap();
        assert_eq!(d, Digests::of(&data));
        assert_eq!(Digests::of(b"").md5_base64(), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
