//! The whole-file MD5 and SHA-1 of a transfer, computed as the server
//! computes its own (`imgapi::digest::StreamHasher`: MD5 and SHA-1 on two
//! threads of their own) and saved as the server saves its upload states
//! (`HashState`, md-5/sha1 0.11's serialised layout), so a resumed transfer
//! goes on hashing where it stopped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use imgapi::digest::{HashState, StreamHasher};

use super::error::{Result, local};

/// MD5 and SHA-1 states after the first `size()` bytes.
#[derive(Clone, Default)]
pub struct Hashes(HashState);

/// Saved [`Hashes`]: base64 states and the byte count.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SavedHashes {
    pub md5_state: String,
    pub sha1_state: String,
    pub size: u64,
}

/// Feeds bytes to a [`Hashes`] (the hashing runs on the hasher's threads).
pub struct Feeder(StreamHasher);

impl Feeder {
    pub async fn update(&mut self, data: &Bytes) -> Result<()> {
        self.0.update(data).await.map_err(|e| local("hash", e))
    }

    pub fn size(&self) -> u64 {
        self.0.size()
    }

    pub async fn finish(self) -> Result<Hashes> {
        self.0
            .finish_state()
            .await
            .map(Hashes)
            .map_err(|e| local("hash", e))
    }
}

impl Hashes {
    pub fn size(&self) -> u64 {
        self.0.size
    }

    /// A feeder going on from these states.
    pub fn feeder(&self) -> Result<Feeder> {
        StreamHasher::resume(&self.0)
            .map(Feeder)
            .map_err(|e| local("hash", e))
    }

    /// These states after `data`.
    pub async fn update(self, data: Bytes) -> Result<Hashes> {
        let mut f = self.feeder()?;
        f.update(&data).await?;
        f.finish().await
    }

    pub fn save(&self) -> SavedHashes {
        SavedHashes {
            md5_state: B64.encode(&self.0.md5),
            sha1_state: B64.encode(&self.0.sha1),
            size: self.0.size,
        }
    }

    /// The states saved by [`Hashes::save`]; `None` when they are damaged.
    pub fn restore(s: &SavedHashes) -> Option<Hashes> {
        let st = HashState {
            md5: B64.decode(&s.md5_state).ok()?,
            sha1: B64.decode(&s.sha1_state).ok()?,
            size: s.size,
        };
        st.digests().ok()?;
        Some(Hashes(st))
    }

    /// (base64 MD5, hex SHA-1) of the bytes hashed.
    pub fn finish(&self) -> Result<(String, String)> {
        let d = self.0.digests().map_err(|e| local("hash", e))?;
        Ok((d.md5_base64(), d.sha1_hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restored_state_ends_at_the_same_digests() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let data = Bytes::from(data);
        let whole = imgapi::digest::Digests::of(&data);
        for split in [0, 1, 63, 64, 65, 4097, 99_999] {
            let a = Hashes::default().update(data.slice(..split)).await.unwrap();
            let b = Hashes::restore(&a.save()).unwrap();
            assert_eq!(b.size(), split as u64);
            let b = b.update(data.slice(split..)).await.unwrap();
            assert_eq!(
                b.finish().unwrap(),
                (whole.md5_base64(), whole.sha1_hex()),
                "split {split}"
            );
        }
        assert!(
            Hashes::restore(&SavedHashes {
                md5_state: "AAAA".into(),
                sha1_state: "AAAA".into(),
                size: 0
            })
            .is_none()
        );
    }
}
