//! SQL for registrar jobs.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{DbError, Result};
use crate::clock::Timestamp;
use crate::store::StoreName;

/// An enum stored as one of a fixed set of lowercase strings: `as_str`,
/// `parse`, `Display`, and rusqlite `ToSql`/`FromSql` (an unknown string in
/// a row is a `FromSqlError`).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored (and wire) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// The value stored as `s`.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| {
                    FromSqlError::Other(format!("bad {} {s:?}", stringify!($name)).into())
                })
            }
        }
    };
}

text_enum! {
    /// What a job does.
    JobKind {
        /// A new image (`POST /images` with a file reference).
        Register = "register",
        /// A file for an existing image (AddImageFile `?upload=`).
        Attach = "attach",
    }
}

text_enum! {
    /// Where a job's bytes come from.
    JobSource {
        /// A finished upload.
        Upload = "upload",
        /// An object at a storage path.
        Path = "path",
    }
}

text_enum! {
    /// A job's progress.
    JobState {
        Pending = "pending",
        Done = "done",
        Failed = "failed",
    }
}

text_enum! {
    /// An image file's compression (the manifest's `COMPRESSIONS`).
    Compression {
        Gzip = "gzip",
        Bzip2 = "bzip2",
        Xz = "xz",
        None = "none",
    }
}

/// A registrar job.
#[derive(Debug, Clone)]
pub struct Job {
    pub image_uuid: Uuid,
    pub kind: JobKind,
    pub source: JobSource,
    pub upload_id: Option<Uuid>,
    /// Store holding the source object: `manta` or `assets`. None when the
    /// row names no store this server has: that job fails when it runs (and
    /// only that job; the other rows still read).
    pub store: Option<StoreName>,
    pub source_key: String,
    pub content_md5: String,
    pub sha1: Option<String>,
    pub size: Option<u64>,
    pub compression: Compression,
    pub dataset_guid: Option<String>,
    pub activate: bool,
    pub state: JobState,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLS: &str = "image_uuid, kind, source, upload_id, store, source_key, content_md5, sha1, size, compression, \
     dataset_guid, activate, state, attempts, error_code, error_message, created_at, updated_at";

fn parse_uuid(s: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn from_row(r: &Row) -> rusqlite::Result<Job> {
    Ok(Job {
        image_uuid: parse_uuid(r.get(0)?)?,
        kind: r.get(1)?,
        source: r.get(2)?,
        upload_id: r.get::<_, Option<String>>(3)?.map(parse_uuid).transpose()?,
        store: r.get::<_, String>(4)?.parse().ok(),
        source_key: r.get(5)?,
        content_md5: r.get(6)?,
        sha1: r.get(7)?,
        size: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        compression: r.get(9)?,
        dataset_guid: r.get(10)?,
        activate: r.get::<_, i64>(11)? != 0,
        state: r.get(12)?,
        attempts: r.get::<_, i64>(13)? as u32,
        error_code: r.get(14)?,
        error_message: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

pub fn insert(c: &Connection, j: &Job) -> Result<()> {
    c.execute(
        &format!("INSERT INTO registrations ({COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)"),
        params![
            j.image_uuid.to_string(),
            j.kind,
            j.source,
            j.upload_id.map(|u| u.to_string()),
            j.store,
            j.source_key,
            j.content_md5,
            j.sha1,
            j.size.map(|n| n as i64),
            j.compression,
            j.dataset_guid,
            j.activate as i64,
            j.state,
            j.attempts as i64,
            j.error_code,
            j.error_message,
            j.created_at,
            j.updated_at,
        ],
    )?;
    Ok(())
}

pub fn get(c: &Connection, image: Uuid) -> Result<Option<Job>> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM registrations WHERE image_uuid = ?1"),
        params![image.to_string()],
        from_row,
    )
    .optional()?)
}

/// Record the outcome (or a new attempt) of a job.
pub fn set_state(
    c: &Connection,
    image: Uuid,
    state: JobState,
    error: Option<(&str, &str)>,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        "UPDATE registrations SET state = ?2, error_code = ?3, error_message = ?4, updated_at = ?5 \
         WHERE image_uuid = ?1",
        params![
            image.to_string(),
            state,
            error.map(|e| e.0),
            error.map(|e| e.1),
            now
        ],
    )?;
    Ok(())
}

pub fn bump_attempts(c: &Connection, image: Uuid) -> Result<u32> {
    c.execute(
        "UPDATE registrations SET attempts = attempts + 1 WHERE image_uuid = ?1",
        params![image.to_string()],
    )?;
    let n: i64 = c
        .query_row(
            "SELECT attempts FROM registrations WHERE image_uuid = ?1",
            params![image.to_string()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(n as u32)
}

pub fn delete(c: &Connection, image: Uuid) -> Result<()> {
    c.execute(
        "DELETE FROM registrations WHERE image_uuid = ?1",
        params![image.to_string()],
    )?;
    Ok(())
}

/// Jobs not yet finished (run again at start-up).
pub fn pending(c: &Connection) -> Result<Vec<Job>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM registrations WHERE state = 'pending' ORDER BY created_at"
    ))?;
    let rows = st.query_map([], from_row)?;
    rows.map(|r| r.map_err(DbError::from)).collect()
}

/// Number of registrar jobs by outcome (pending, done, failed).
pub fn count_by_state(c: &Connection) -> Result<Vec<(String, u64)>> {
    let mut st =
        c.prepare("SELECT state, count(*) FROM registrations GROUP BY state ORDER BY state")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    rows.map(|r| r.map_err(DbError::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressions_are_the_manifests() {
        let ours: Vec<&str> = Compression::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(ours, crate::manifest::COMPRESSIONS);
    }

    #[test]
    fn text_round_trips_and_unknown_is_an_error() {
        let c = Connection::open_in_memory().unwrap();
        for s in JobState::ALL {
            let back: JobState = c.query_row("SELECT ?1", params![s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
        }
        let bad: rusqlite::Result<JobKind> = c.query_row("SELECT 'other'", [], |r| r.get(0));
        assert!(bad.is_err());
    }

    #[test]
    fn a_job_round_trips_and_an_unknown_store_spoils_only_its_row() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut c).unwrap();
        let t = Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap();
        let job = Job {
            image_uuid: Uuid::new_v4(),
            kind: JobKind::Register,
            source: JobSource::Path,
            upload_id: None,
            store: Some(StoreName::Assets),
            source_key: "base/x.zfs".into(),
            content_md5: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
            sha1: None,
            size: Some(3),
            compression: Compression::None,
            dataset_guid: None,
            activate: true,
            state: JobState::Pending,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: t,
            updated_at: t,
        };
        insert(&c, &job).unwrap();
        let (store, at): (String, String) = c
            .query_row("SELECT store, created_at FROM registrations", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (store.as_str(), at.as_str()),
            ("assets", "2026-01-02T03:04:05.678Z")
        );
        let back = get(&c, job.image_uuid).unwrap().unwrap();
        assert_eq!((back.store, back.created_at), (job.store, t));

        let other = Uuid::new_v4();
        insert(
            &c,
            &Job {
                image_uuid: other,
                ..job.clone()
            },
        )
        .unwrap();
        c.execute(
            "UPDATE registrations SET store = 'nowhere' WHERE image_uuid = ?1",
            params![other.to_string()],
        )
        .unwrap();
        let jobs = pending(&c).unwrap();
        assert_eq!(jobs.len(), 2);
        let bad = jobs.iter().find(|j| j.image_uuid == other).unwrap();
        assert_eq!(bad.store, None);
    }
}
