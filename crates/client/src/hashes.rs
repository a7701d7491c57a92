//! The client's check that the server holds the file's bytes: the
//! CRC-64/NVME of the bytes in file order (the full-object checksum S3
//! uses), computed inline from the very buffers that are sent (several
//! GB/s: no thread, no second read of the file) and compared with the CRC
//! the server computes of what it received (`Upload-Crc64nvme`). Its state
//! after any prefix is one u64, saved with each acknowledged chunk, so a
//! resumed transfer goes on where it stopped; the CRCs of adjacent ranges
//! combine, so the partial uploads of a parallel upload each keep their own.
//!
//! The client computes no MD5: the image's `content_md5` is the server's
//! MD5 of the upload whose CRC matched. Only against a server (or an upload
//! session) that gives no CRC does the client fall back to reading the file
//! once more for its MD5 and comparing that.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use imgapi_protocol::digest::crc64::Crc64;
use imgapi_protocol::digest::md5::Md5;

use super::error::{Result, local};
use super::tus::read_at;

/// Bytes read at a time when hashing local bytes (what was sent by a run
/// that kept no CRC, the MD5 fallback).
const READ: u64 = 1 << 20;

/// Saved CRC state: the CRC of the first `size` bytes. (`md5_state` and
/// `sha1_state` were written by earlier versions; an entry with only those
/// has no CRC, and the CRC of what was sent is computed again from the
/// local file, not re-sent.)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, Default)]
pub struct SavedHashes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<u64>,
    #[serde(default, skip_serializing)]
    pub md5_state: String,
    #[serde(default, skip_serializing)]
    pub sha1_state: String,
    pub size: u64,
}

/// The state to save after `c`.
pub fn save(c: &Crc64) -> SavedHashes {
    SavedHashes {
        crc64: Some(c.value()),
        size: c.size(),
        ..Default::default()
    }
}

/// The state saved by [`save`]; `None` when the entry has no CRC.
pub fn restore(s: &SavedHashes) -> Option<Crc64> {
    s.crc64.map(|c| Crc64::resume(c, s.size))
}

/// Brings `from` (the CRC of the first `from.size()` bytes of the range of
/// `file` starting at `base`) to `to` bytes of that range, reading only
/// what it lacks (from the start when it is past `to`).
pub async fn crc_to(file: &Arc<std::fs::File>, base: u64, from: Crc64, to: u64) -> Result<Crc64> {
    let mut c = if from.size() > to { Crc64::new() } else { from };
    while c.size() < to {
        let at = c.size();
        c.update(&read_at(file, base + at, (to - at).min(READ)).await?);
    }
    Ok(c)
}

/// The CRC of the first `acked` bytes of the range of `file` at `base`
/// once a PATCH is acknowledged: that of the bytes sent (`sending`, which
/// started at `before`) when the server took them all, else `before`
/// brought to `acked` from the file.
pub async fn acknowledged(
    file: &Arc<std::fs::File>,
    base: u64,
    before: Crc64,
    sending: &Mutex<Crc64>,
    acked: u64,
) -> Result<Crc64> {
    let sent = *sending.lock().map_err(|_| local("crc", "poisoned lock"))?;
    if sent.size() == acked {
        Ok(sent)
    } else {
        crc_to(file, base, before, acked).await
    }
}

/// The base64 MD5 of the whole `file` (one sequential read), for a server
/// that gives no CRC.
pub async fn md5_of(file: &Arc<std::fs::File>, size: u64) -> Result<String> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; READ as usize];
        let mut at = 0;
        while at < size {
            let n = (size - at).min(READ) as usize;
            f.read_exact_at(&mut buf[..n], at)?;
            md5.update(&buf[..n]);
            at += n as u64;
        }
        Ok::<_, std::io::Error>(B64.encode(md5.finalize()))
    })
    .await
    .map_err(|e| local("read", e))?
    .map_err(|e| local("read", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    #[test]
    fn a_saved_state_round_trips_and_goes_on_to_the_same_crc() {
        let d = data();
        for split in [0, 1, 63, 64, 65, 4097, 299_999] {
            let mut c = Crc64::new();
            c.update(&d[..split]);
            let json = serde_json::to_string(&save(&c)).unwrap();
            let back: SavedHashes = serde_json::from_str(&json).unwrap();
            let mut r = restore(&back).unwrap();
            assert_eq!(r.size(), split as u64);
            r.update(&d[split..]);
            assert_eq!(r.value(), Crc64::of(&d), "split {split}");
        }
        // An entry of an earlier version (an MD5 state only) has no CRC.
        let old: SavedHashes =
            serde_json::from_str(r#"{"md5_state": "AAAA", "size": 123}"#).unwrap();
        assert!(restore(&old).is_none());
        assert!(!serde_json::to_string(&old).unwrap().contains("md5_state"));
    }

    #[tokio::test]
    async fn crc_to_reads_only_what_is_missing_and_md5_of_the_file() {
        let d = data();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &d).unwrap();
        let f = Arc::new(std::fs::File::open(tmp.path()).unwrap());
        // A range of the file from byte 1000 (a partial upload's).
        let mut part = Crc64::new();
        part.update(&d[1000..51_000]);
        let c = crc_to(&f, 1000, part, 200_000).await.unwrap();
        assert_eq!(c.value(), Crc64::of(&d[1000..201_000]));
        // Past the target: from the start again.
        let c = crc_to(&f, 0, c, 10).await.unwrap();
        assert_eq!(c.value(), Crc64::of(&d[..10]));
        assert_eq!(
            md5_of(&f, d.len() as u64).await.unwrap(),
            imgapi_protocol::digest::Digests::of(&d).md5_base64()
        );
    }
}
