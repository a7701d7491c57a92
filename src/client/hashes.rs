//! The whole-file MD5 and SHA-1 of a transfer, with their state serialised
//! in md-5 / sha1 0.11's layout (as the server's `digest` module saves its
//! upload states), so a resumed transfer goes on hashing where it stopped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use sha1::digest::common::hazmat::{SerializableState, SerializedState};

/// MD5 and SHA-1 of the first `size` bytes.
#[derive(Clone)]
pub struct Hashes {
    md5: md5::Md5,
    sha1: sha1::Sha1,
    pub size: u64,
}

impl Default for Hashes {
    fn default() -> Self {
        Hashes {
            md5: md5::Md5::new(),
            sha1: sha1::Sha1::new(),
            size: 0,
        }
    }
}

/// Saved [`Hashes`]: base64 states and the byte count.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SavedHashes {
    pub md5_state: String,
    pub sha1_state: String,
    pub size: u64,
}

fn restore<D: SerializableState>(b64: &str) -> Option<D> {
    let raw = B64.decode(b64).ok()?;
    let arr = SerializedState::<D>::try_from(&raw[..]).ok()?;
    D::deserialize(&arr).ok()
}

impl Hashes {
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha1.update(data);
        self.size += data.len() as u64;
    }

    pub fn save(&self) -> SavedHashes {
        SavedHashes {
            md5_state: B64.encode(self.md5.serialize()),
            sha1_state: B64.encode(self.sha1.serialize()),
            size: self.size,
        }
    }

    pub fn restore(s: &SavedHashes) -> Option<Hashes> {
        Some(Hashes {
            md5: restore(&s.md5_state)?,
            sha1: restore(&s.sha1_state)?,
            size: s.size,
        })
    }

    /// (base64 MD5, hex SHA-1).
    pub fn finish(self) -> (String, String) {
        (
            B64.encode(self.md5.finalize()),
            hex::encode(self.sha1.finalize()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_state_ends_at_the_same_digests() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut whole = Hashes::default();
        whole.update(&data);
        for split in [0, 1, 63, 64, 65, 4097, 99_999] {
            let mut a = Hashes::default();
            a.update(&data[..split]);
            let mut b = Hashes::restore(&a.save()).unwrap();
            assert_eq!(b.size, split as u64);
            b.update(&data[split..]);
            assert_eq!(b.finish(), whole.clone().finish(), "split {split}");
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
