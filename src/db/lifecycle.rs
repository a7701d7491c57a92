//! What the lifecycle policy reads and writes (`lifecycle_state`,
//! sql/0015): every image as the policy weighs it (its filters' columns,
//! bytes, last download, and whether the policy disabled it), and the
//! marks of the images it disabled or someone enabled again.

use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use super::{DbError, Result};
use crate::clock::Timestamp;

/// An image as the lifecycle policy weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyImage {
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    /// `active`, `disabled`, `unactivated`, `creating` or `failed`.
    pub state: String,
    pub type_: String,
    pub os: String,
    pub public: bool,
    pub channels: Vec<String>,
    /// Its tags as `key=value`.
    pub tags: Vec<String>,
    /// Normalised (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub published_at: Option<Timestamp>,
    pub origin: Option<Uuid>,
    pub bytes: u64,
    pub last_download: Option<Timestamp>,
    /// Set when the policy disabled it.
    pub mark: Option<PolicyMark>,
}

/// The policy disabled an image: by which rule, when, and from when it may
/// delete it; and when someone enabled it again, if they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMark {
    pub rule: String,
    pub disabled_at: Timestamp,
    pub delete_after: Timestamp,
    pub reenabled_at: Option<Timestamp>,
}

/// The columns [`images`] reads, in its order.
pub const COLUMNS: &str = "i.uuid, i.owner, i.name, i.version, i.state, i.type, i.os, i.public, \
    i.channels, i.tags_search, i.published_at, i.origin, i.bytes, d.last_at, \
    l.rule, l.disabled_at, l.delete_after, l.reenabled_at";

/// The joins behind [`COLUMNS`].
pub const FROM: &str = "images i LEFT JOIN image_downloads d ON d.uuid = i.uuid \
    LEFT JOIN lifecycle_state l ON l.uuid = i.uuid";

/// A stored timestamp that must parse.
pub fn time(s: Option<String>) -> Result<Option<Timestamp>> {
    s.map(|s| Timestamp::parse(&s).ok_or_else(|| DbError::corrupt("timestamp")(s)))
        .transpose()
}

/// A JSON array of strings as stored.
pub fn strings(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(DbError::corrupt("string list"))
}

/// Every image, as the policy weighs it.
pub fn images(c: &Connection) -> Result<Vec<PolicyImage>> {
    let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM {FROM}"))?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let uuid = |i: usize| -> Result<Option<Uuid>> {
            r.get::<_, Option<String>>(i)?
                .map(|s| Uuid::parse_str(&s).map_err(DbError::corrupt("uuid")))
                .transpose()
        };
        let mark = match r.get::<_, Option<String>>(14)? {
            None => None,
            Some(rule) => Some(PolicyMark {
                rule,
                disabled_at: time(r.get(15)?)?.unwrap_or_else(epoch),
                delete_after: time(r.get(16)?)?.unwrap_or_else(epoch),
                reenabled_at: time(r.get(17)?)?,
            }),
        };
        out.push(PolicyImage {
            uuid: uuid(0)?.ok_or_else(|| DbError::corrupt("uuid")("none"))?,
            owner: uuid(1)?.ok_or_else(|| DbError::corrupt("owner")("none"))?,
            name: r.get(2)?,
            version: r.get(3)?,
            state: r.get(4)?,
            type_: r.get(5)?,
            os: r.get(6)?,
            public: r.get::<_, i64>(7)? != 0,
            channels: strings(&r.get::<_, String>(8)?)?,
            tags: strings(&r.get::<_, String>(9)?)?,
            published_at: time(r.get(10)?)?,
            origin: uuid(11)?,
            bytes: r.get::<_, i64>(12)?.max(0) as u64,
            last_download: time(r.get(13)?)?,
            mark,
        });
    }
    Ok(out)
}

/// The earliest time (a missing stamp of a row that must have one).
pub fn epoch() -> Timestamp {
    Timestamp::from(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

/// The policy disabled `uuid` by `rule` at `at`; it may delete it from
/// `delete_after` on.
pub fn mark_disabled(
    c: &Connection,
    uuid: Uuid,
    rule: &str,
    at: Timestamp,
    delete_after: Timestamp,
) -> Result<()> {
    c.execute(
        "INSERT INTO lifecycle_state (uuid, rule, disabled_at, delete_after) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (uuid) DO UPDATE SET rule = excluded.rule, disabled_at = excluded.disabled_at, \
         delete_after = excluded.delete_after, reenabled_at = NULL",
        rusqlite::params![uuid.to_string(), rule, at, delete_after],
    )?;
    Ok(())
}

/// Someone enabled `uuid` again at `at` (if the policy had disabled it).
pub fn reenabled(c: &Connection, uuid: Uuid, at: Timestamp) -> Result<()> {
    c.execute(
        "UPDATE lifecycle_state SET reenabled_at = ?2 WHERE uuid = ?1 AND reenabled_at IS NULL",
        rusqlite::params![uuid.to_string(), at],
    )?;
    Ok(())
}

/// The policy's mark on `uuid`, if it disabled it.
pub fn mark_of(c: &Connection, uuid: Uuid) -> Result<Option<PolicyMark>> {
    let row = c
        .query_row(
            "SELECT rule, disabled_at, delete_after, reenabled_at FROM lifecycle_state WHERE uuid = ?1",
            [uuid.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(rule, d, a, re)| {
        Ok(PolicyMark {
            rule,
            disabled_at: time(Some(d))?.unwrap_or_else(epoch),
            delete_after: time(Some(a))?.unwrap_or_else(epoch),
            reenabled_at: time(re)?,
        })
    })
    .transpose()
}
