//! The whole-file MD5 of an upload (the `content_md5` it is registered
//! with), computed on a thread of its own from the very buffers that are
//! sent, and saved as the server saves its upload states (md-5 0.11's
//! serialised layout), so a resumed transfer goes on hashing where it
//! stopped. SHA-1 is the server's to compute: the client needs only the MD5
//! to check that the server holds its bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use imgapi::digest::md5::Md5;
use tokio::sync::{mpsc, oneshot};

use super::error::{Result, local};

/// The MD5 state after the first `size()` bytes.
#[derive(Clone)]
pub struct Hashes {
    md5: Vec<u8>,
    size: u64,
}

impl Default for Hashes {
    fn default() -> Self {
        Hashes {
            md5: Md5::new().serialize(),
            size: 0,
        }
    }
}

/// Saved [`Hashes`]: the base64 state and the byte count. (`sha1_state`
/// was written by earlier versions; it is read and ignored.)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SavedHashes {
    pub md5_state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha1_state: String,
    pub size: u64,
}

impl Hashes {
    pub fn size(&self) -> u64 {
        self.size
    }

    fn md5(&self) -> Result<Md5> {
        Md5::deserialize(&self.md5).ok_or_else(|| local("hash", "bad md5 state"))
    }

    pub fn save(&self) -> SavedHashes {
        SavedHashes {
            md5_state: B64.encode(&self.md5),
            sha1_state: String::new(),
            size: self.size,
        }
    }

    /// The state saved by [`Hashes::save`]; `None` when it is damaged.
    pub fn restore(s: &SavedHashes) -> Option<Hashes> {
        let md5 = B64.decode(&s.md5_state).ok()?;
        Md5::deserialize(&md5)?;
        Some(Hashes { md5, size: s.size })
    }

    /// The base64 MD5 of the bytes hashed.
    pub fn finish(&self) -> Result<String> {
        Ok(B64.encode(self.md5()?.finalize()))
    }
}

enum Msg {
    Data(Bytes),
    Snapshot(oneshot::Sender<Hashes>),
    Reset(Hashes),
}

/// An MD5 on its own thread: bytes go in as they are read (a cheap
/// reference-counted clone of the buffer that is sent), and the state at
/// the bytes fed so far comes back on request.
#[derive(Clone)]
pub struct Md5Feed {
    tx: mpsc::Sender<Msg>,
}

fn ended() -> super::error::ClientError {
    local("hash", "the hashing thread ended")
}

impl Md5Feed {
    /// A feed going on from `from`.
    pub fn start(from: Hashes) -> Result<Md5Feed> {
        let mut md5 = from.md5()?;
        let mut size = from.size;
        // ~16 MiB of 1 MiB reads in flight ahead of the hash.
        let (tx, mut rx) = mpsc::channel::<Msg>(16);
        std::thread::Builder::new()
            .name("imgapi-md5".into())
            .spawn(move || {
                while let Some(m) = rx.blocking_recv() {
                    match m {
                        Msg::Data(b) => {
                            md5.update(&b);
                            size += b.len() as u64;
                        }
                        Msg::Snapshot(reply) => {
                            let _ = reply.send(Hashes {
                                md5: md5.serialize(),
                                size,
                            });
                        }
                        Msg::Reset(h) => match h.md5() {
                            Ok(m) => {
                                md5 = m;
                                size = h.size;
                            }
                            Err(_) => return,
                        },
                    }
                }
            })
            .map_err(|e| local("hash", e))?;
        Ok(Md5Feed { tx })
    }

    pub async fn update(&self, b: Bytes) -> Result<()> {
        self.tx.send(Msg::Data(b)).await.map_err(|_| ended())
    }

    /// The state after every byte fed so far.
    pub async fn snapshot(&self) -> Result<Hashes> {
        let (t, r) = oneshot::channel();
        self.tx.send(Msg::Snapshot(t)).await.map_err(|_| ended())?;
        r.await.map_err(|_| ended())
    }

    /// Go on from `h` instead (bytes fed past an acknowledged offset).
    pub async fn reset(&self, h: Hashes) -> Result<()> {
        self.tx.send(Msg::Reset(h)).await.map_err(|_| ended())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restored_state_ends_at_the_same_digest() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let data = Bytes::from(data);
        let whole = imgapi::digest::Digests::of(&data);
        for split in [0, 1, 63, 64, 65, 4097, 99_999] {
            let f = Md5Feed::start(Hashes::default()).unwrap();
            f.update(data.slice(..split)).await.unwrap();
            let a = f.snapshot().await.unwrap();
            let b = Hashes::restore(&a.save()).unwrap();
            assert_eq!(b.size(), split as u64);
            let g = Md5Feed::start(b).unwrap();
            g.update(data.slice(split..)).await.unwrap();
            // Bytes fed past a point are forgotten by a reset.
            f.update(Bytes::from_static(b"junk")).await.unwrap();
            f.reset(a).await.unwrap();
            f.update(data.slice(split..)).await.unwrap();
            for h in [g.snapshot().await.unwrap(), f.snapshot().await.unwrap()] {
                assert_eq!(h.finish().unwrap(), whole.md5_base64(), "split {split}");
                assert_eq!(h.size(), data.len() as u64);
            }
        }
        assert!(
            Hashes::restore(&SavedHashes {
                md5_state: "AAAA".into(),
                sha1_state: String::new(),
                size: 0
            })
            .is_none()
        );
    }
}
