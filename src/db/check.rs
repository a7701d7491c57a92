//! `imgapi config check`'s look at the SQLite database: it can be opened
//! for writing and holds a schema this binary knows. Creates, migrates and
//! changes nothing.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{DbError, MIGRATIONS};

/// What the database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Migrations applied to it.
    pub version: usize,
    /// Migrations this binary has (`serve` applies the missing ones).
    pub latest: usize,
}

/// Open the existing database at `path` for writing (no create, no
/// migration), read its schema version and take the write lock for a
/// moment, as the server's writer will.
pub fn check(path: &Path) -> Result<Schema, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(2))?;
    // Reading the schema fails on a file that is not a database.
    c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let version = c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
    c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
    Ok(Schema {
        version: usize::try_from(version).unwrap_or(0),
        latest: MIGRATIONS.len(),
    })
}
