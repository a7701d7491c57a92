//! What the lifecycle policy reads and writes, on PostgreSQL (same results
//! as `db::lifecycle`).

use uuid::Uuid;

use super::{PgConn, col};
use crate::clock::Timestamp;
use crate::db::Result;
use crate::db::lifecycle::{COLUMNS, FROM, PolicyImage, PolicyMark, epoch, time};

/// Every image, as the policy weighs it.
pub fn images(c: &PgConn) -> Result<Vec<PolicyImage>> {
    c.query(
        &format!(
            "SELECT {} FROM {FROM}",
            COLUMNS
                .replace("i.channels", "i.channels::text")
                .replace("i.tags_search", "i.tags_search::text")
        ),
        &[],
    )?
    .iter()
    .map(|r| {
        let mark = match col::<Option<String>>(r, 14)? {
            None => None,
            Some(rule) => Some(PolicyMark {
                rule,
                disabled_at: time(col(r, 15)?)?.unwrap_or_else(epoch),
                delete_after: time(col(r, 16)?)?.unwrap_or_else(epoch),
                reenabled_at: time(col(r, 17)?)?,
            }),
        };
        Ok(PolicyImage {
            uuid: col(r, 0)?,
            owner: col(r, 1)?,
            name: col(r, 2)?,
            version: col(r, 3)?,
            state: col(r, 4)?,
            type_: col(r, 5)?,
            os: col(r, 6)?,
            public: col(r, 7)?,
            channels: crate::db::lifecycle::strings(&col::<String>(r, 8)?)?,
            tags: crate::db::lifecycle::strings(&col::<String>(r, 9)?)?,
            published_at: time(col(r, 10)?)?,
            origin: col(r, 11)?,
            bytes: col::<i64>(r, 12)?.max(0) as u64,
            last_download: time(col(r, 13)?)?,
            mark,
        })
    })
    .collect()
}

/// The policy disabled `uuid` by `rule` at `at`; it may delete it from
/// `delete_after` on.
pub fn mark_disabled(
    c: &PgConn,
    uuid: Uuid,
    rule: &str,
    at: Timestamp,
    delete_after: Timestamp,
) -> Result<()> {
    c.execute(
        "INSERT INTO lifecycle_state (uuid, rule, disabled_at, delete_after) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (uuid) DO UPDATE SET rule = excluded.rule, disabled_at = excluded.disabled_at, \
         delete_after = excluded.delete_after, reenabled_at = NULL",
        &[&uuid, &rule, &at.to_string(), &delete_after.to_string()],
    )?;
    Ok(())
}

/// Someone enabled `uuid` again at `at` (if the policy had disabled it).
pub fn reenabled(c: &PgConn, uuid: Uuid, at: Timestamp) -> Result<()> {
    c.execute(
        "UPDATE lifecycle_state SET reenabled_at = $2 WHERE uuid = $1 AND reenabled_at IS NULL",
        &[&uuid, &at.to_string()],
    )?;
    Ok(())
}

/// The policy's mark on `uuid`, if it disabled it.
pub fn mark_of(c: &PgConn, uuid: Uuid) -> Result<Option<PolicyMark>> {
    c.query_opt(
        "SELECT rule, disabled_at, delete_after, reenabled_at FROM lifecycle_state WHERE uuid = $1",
        &[&uuid],
    )?
    .map(|r| {
        Ok(PolicyMark {
            rule: col(&r, 0)?,
            disabled_at: time(col(&r, 1)?)?.unwrap_or_else(epoch),
            delete_after: time(col(&r, 2)?)?.unwrap_or_else(epoch),
            reenabled_at: time(col(&r, 3)?)?,
        })
    })
    .transpose()
}
