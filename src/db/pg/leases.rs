//! Leases with a fencing token: the PostgreSQL backend's statements (as
//! `db::leases` for SQLite). Times are the database's clock, in
//! milliseconds (`clock_timestamp()`, never a node's).

use super::{PgConn, col};
use crate::db::Result;

/// The database's clock, in milliseconds since the epoch.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

pub fn claim(c: &PgConn, name: &str, owner: &str, ttl_ms: u64) -> Result<Option<i64>> {
    let row = c.query_opt(
        concat!(
            "INSERT INTO leases (name, owner, fence, expires_ms) VALUES ($1, $2, 1, ",
            now_ms!(),
            " + $3) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             fence = leases.fence + 1, expires_ms = excluded.expires_ms \
             WHERE leases.owner IS NULL OR leases.owner = $2 OR leases.expires_ms < ",
            now_ms!(),
            " RETURNING fence"
        ),
        &[&name, &owner, &(ttl_ms as i64)],
    )?;
    row.map(|r| col(&r, 0)).transpose()
}

pub fn renew(c: &PgConn, name: &str, fence: i64, ttl_ms: u64) -> Result<bool> {
    Ok(c.execute(
        concat!(
            "UPDATE leases SET expires_ms = ",
            now_ms!(),
            " + $3 WHERE name = $1 AND fence = $2 AND owner IS NOT NULL"
        ),
        &[&name, &fence, &(ttl_ms as i64)],
    )? == 1)
}

/// Does `fence` hold `name`? The row is locked until the transaction ends,
/// so no claim can slip in between this check and the write it guards.
pub fn holds(c: &PgConn, name: &str, fence: i64) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM leases WHERE name = $1 AND fence = $2 AND owner IS NOT NULL FOR UPDATE",
        &[&name, &fence],
    )?
    .is_some())
}

pub fn release(c: &PgConn, name: &str, fence: i64) -> Result<()> {
    c.execute(
        "UPDATE leases SET owner = NULL WHERE name = $1 AND fence = $2",
        &[&name, &fence],
    )?;
    Ok(())
}
