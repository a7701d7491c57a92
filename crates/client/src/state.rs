//! The local store of resumable uploads: one small JSON file per upload in
//! progress, keyed by server URL, account, target path and the file's
//! identity (path, size, mtime, a digest of sampled bytes), as tus-js-client's
//! fingerprint store does. Each holds the upload's id, the offset the server
//! acknowledged and the CRC-64/NVME of the bytes before that offset.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Result, local};
use super::hashes::SavedHashes;

/// Bytes sampled at the start, middle and end of a file for its identity.
const SAMPLE: u64 = 64 * 1024;

/// A file's identity as of now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
    pub sample_sha256: String,
}

impl FileId {
    pub fn of(path: &Path) -> Result<FileId> {
        let path = std::fs::canonicalize(path).map_err(|e| local(path.display(), e))?;
        let mut f = std::fs::File::open(&path).map_err(|e| local(path.display(), e))?;
        let md = f.metadata().map_err(|e| local(path.display(), e))?;
        if !md.is_file() {
            return Err(local(path.display(), "not a regular file"));
        }
        let size = md.len();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; SAMPLE as usize];
        for at in [
            0,
            size.saturating_sub(SAMPLE) / 2,
            size.saturating_sub(SAMPLE),
        ] {
            f.seek(SeekFrom::Start(at))
                .map_err(|e| local(path.display(), e))?;
            let n = (&mut f)
                .take(SAMPLE)
                .read(&mut buf)
                .map_err(|e| local(path.display(), e))?;
            h.update(&buf[..n]);
        }
        Ok(FileId {
            path,
            size,
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            sample_sha256: hex::encode(h.finalize()),
        })
    }
}

/// One upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub url: String,
    pub account: Option<String>,
    pub target: Option<String>,
    pub file: FileId,
    pub upload_id: String,
    /// The CRC of the bytes the server acknowledged (and their count). Not
    /// used by a parallel upload: each of its parts keeps its own.
    pub hashes: SavedHashes,
    pub created_at: String,
    /// A parallel upload (`--parallel N`): `upload_id` is its final upload,
    /// made of these partial uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Parallel>,
}

/// The partial uploads of a parallel upload, in file order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parallel {
    pub parts: Vec<PartState>,
}

/// One partial upload: bytes `start..start + len` of the file, of which the
/// server acknowledged `offset`, and the CRC of those bytes saved with it
/// (absent in entries of earlier versions: computed again from the file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartState {
    pub id: String,
    pub start: u64,
    pub len: u64,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc: Option<SavedHashes>,
}

/// The directory of entries.
pub struct StateStore {
    dir: PathBuf,
}

/// The key of an upload of `file` to `target` on `url` as `account`.
pub fn key(url: &str, account: Option<&str>, target: Option<&str>, file: &FileId) -> String {
    let mut h = Sha256::new();
    for part in [
        url,
        account.unwrap_or(""),
        target.unwrap_or(""),
        &file.path.to_string_lossy(),
        &file.size.to_string(),
        &file.mtime_ns.to_string(),
        &file.sample_sha256,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

impl StateStore {
    pub fn open(dir: PathBuf) -> Result<StateStore> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| local(dir.display(), e))?;
        Ok(StateStore { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("upload-{key}.json"))
    }

    /// The entry under `key`; an unreadable one counts as absent.
    pub fn load(&self, key: &str) -> Option<Entry> {
        let s = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&s).ok()
    }

    /// Saves `e` under `key` atomically (written aside, then renamed).
    pub fn save(&self, key: &str, e: &Entry) -> Result<()> {
        let p = self.path(key);
        let tmp = self.dir.join(format!(".upload-{key}.json.tmp"));
        let body = serde_json::to_vec_pretty(e).map_err(|e| local(p.display(), e))?;
        std::fs::write(&tmp, body).map_err(|e| local(tmp.display(), e))?;
        std::fs::rename(&tmp, &p).map_err(|e| local(p.display(), e))
    }

    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
        let _ = std::fs::remove_file(self.dir.join(format!(".upload-{key}.lock")));
    }

    /// Every entry, with its key.
    pub fn list(&self) -> Vec<(String, Entry)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut out: Vec<(String, Entry)> = rd
            .flatten()
            .filter_map(|d| {
                let name = d.file_name().to_string_lossy().into_owned();
                let key = name
                    .strip_prefix("upload-")?
                    .strip_suffix(".json")?
                    .to_string();
                let e = self.load(&key)?;
                Some((key, e))
            })
            .collect();
        out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
        out
    }

    /// Takes the lock of `key` (held until the guard is dropped), so two
    /// runs never send the same upload at once; `None` when another holds it.
    pub fn lock(&self, key: &str) -> Result<Option<std::fs::File>> {
        use std::os::fd::AsRawFd;
        let p = self.dir.join(format!(".upload-{key}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| local(p.display(), e))?;
        // SAFETY: flock on a descriptor we own; released when `f` closes.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((rc == 0).then_some(f))
    }

    /// Entries of earlier versions of the same file for the same server,
    /// account and target (the file changed since): their uploads can never
    /// be resumed.
    pub fn stale(&self, e: &Entry, key: &str) -> Vec<(String, Entry)> {
        self.list()
            .into_iter()
            .filter(|(k, o)| {
                k != key
                    && o.url == e.url
                    && o.account == e.account
                    && o.target == e.target
                    && o.file.path == e.file.path
            })
            .collect()
    }

    /// Forgets every entry of upload `id` on `url`.
    pub fn remove_upload(&self, url: &str, id: &str) {
        for (k, e) in self.list() {
            if e.url == url && e.upload_id == id {
                self.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_changes_with_content_and_entries_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, vec![1u8; 300_000]).unwrap();
        let a = FileId::of(&f).unwrap();
        let mut data = vec![1u8; 300_000];
        data[150_000] = 2; // inside the middle sample
        std::fs::write(&f, &data).unwrap();
        let b = FileId::of(&f).unwrap();
        assert_ne!(a.sample_sha256, b.sample_sha256);
        let ka = key("http://x", None, None, &a);
        assert_ne!(ka, key("http://y", None, None, &a));
        assert_ne!(ka, key("http://x", Some("acct"), None, &a));
        let st = StateStore::open(d.path().join("state")).unwrap();
        let e = Entry {
            url: "http://x".into(),
            account: None,
            target: None,
            file: a,
            upload_id: "u1".into(),
            hashes: crate::hashes::save(&imgapi_protocol::digest::crc64::Crc64::new()),
            created_at: "now".into(),
            parallel: None,
        };
        let held = st.lock(&ka).unwrap().expect("free");
        assert!(st.lock(&ka).unwrap().is_none(), "held by another");
        drop(held);
        assert!(st.lock(&ka).unwrap().is_some());
        st.save(&ka, &e).unwrap();
        let mut newer = e.clone();
        newer.file.mtime_ns += 1;
        assert_eq!(st.stale(&newer, "other-key").len(), 1);
        assert!(st.stale(&e, &ka).is_empty());
        assert_eq!(st.load(&ka).unwrap().upload_id, "u1");
        assert_eq!(st.list().len(), 1);
        st.remove_upload("http://x", "u1");
        assert!(st.load(&ka).is_none());
    }
}
