//! Leases with a fencing token (`sql/0013_leases.sql`): the SQLite backend's
//! statements. Times are the database's clock, in milliseconds.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// The database's clock, in milliseconds since the epoch (SQLite).
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Claim `name` for `owner` for `ttl_ms` if it is free, its holder's
/// lease has expired, or `owner` holds it already (a process that
/// serialises its own requests: a release still on its way); the new
/// fence, or None if another holds it.
pub fn claim(c: &Connection, name: &str, owner: &str, ttl_ms: u64) -> Result<Option<i64>> {
    let sql = format!(
        "INSERT INTO leases (name, owner, fence, expires_ms) VALUES (?1, ?2, 1, {NOW_MS} + ?3) \
         ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, fence = leases.fence + 1, \
         expires_ms = excluded.expires_ms \
         WHERE leases.owner IS NULL OR leases.owner = ?2 OR leases.expires_ms < {NOW_MS} \
         RETURNING fence"
    );
    let mut st = c.prepare_cached(&sql)?;
    Ok(st
        .query_row(params![name, owner, ttl_ms as i64], |r| r.get(0))
        .optional()?)
}

/// Extend a held lease; false if `fence` no longer holds it.
pub fn renew(c: &Connection, name: &str, fence: i64, ttl_ms: u64) -> Result<bool> {
    let sql = format!(
        "UPDATE leases SET expires_ms = {NOW_MS} + ?3 \
         WHERE name = ?1 AND fence = ?2 AND owner IS NOT NULL"
    );
    Ok(c.prepare_cached(&sql)?
        .execute(params![name, fence, ttl_ms as i64])?
        == 1)
}

/// Does `fence` still hold `name`? (A write that must be fenced checks it
/// in its own transaction.)
pub fn holds(c: &Connection, name: &str, fence: i64) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM leases WHERE name = ?1 AND fence = ?2 AND owner IS NOT NULL",
    )?
    .query_row(params![name, fence], |_| Ok(()))
    .optional()?
    .is_some())
}

/// Give a lease back (if `fence` still holds it).
pub fn release(c: &Connection, name: &str, fence: i64) -> Result<()> {
    c.prepare_cached("UPDATE leases SET owner = NULL WHERE name = ?1 AND fence = ?2")?
        .execute(params![name, fence])?;
    Ok(())
}

/// Free every lease (SQLite is one node: at start-up, no holder survives).
pub fn release_all(c: &Connection) -> Result<usize> {
    Ok(c.execute("UPDATE leases SET owner = NULL WHERE owner IS NOT NULL", [])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let d = tempfile::tempdir().unwrap();
        let mut c = Connection::open(d.path().join("t.sqlite")).unwrap();
        crate::db::migrate(&mut c).unwrap();
        (d, c)
    }

    #[test]
    fn a_lease_is_held_by_one_fence_at_a_time() {
        let (_d, c) = db();
        let a = claim(&c, "upload:x", "node-a", 60_000).unwrap().unwrap();
        assert_eq!(claim(&c, "upload:x", "node-b", 60_000).unwrap(), None);
        assert!(holds(&c, "upload:x", a).unwrap());
        assert!(renew(&c, "upload:x", a, 60_000).unwrap());
        release(&c, "upload:x", a).unwrap();
        assert!(!holds(&c, "upload:x", a).unwrap());
        let b = claim(&c, "upload:x", "node-b", 60_000).unwrap().unwrap();
        assert!(b > a, "the fence grows: {a} then {b}");
        // The old holder can no longer renew, release or write.
        assert!(!renew(&c, "upload:x", a, 60_000).unwrap());
        release(&c, "upload:x", a).unwrap();
        assert!(holds(&c, "upload:x", b).unwrap());
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_fences_its_holder_out() {
        let (_d, c) = db();
        let a = claim(&c, "upload:y", "frozen", 0).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = claim(&c, "upload:y", "awake", 60_000).unwrap().unwrap();
        assert_eq!(b, a + 1);
        assert!(!holds(&c, "upload:y", a).unwrap());
        assert!(!renew(&c, "upload:y", a, 60_000).unwrap());
        assert_eq!(release_all(&c).unwrap(), 1);
        assert_eq!(claim(&c, "upload:y", "next", 1).unwrap(), Some(b + 1));
    }
}
