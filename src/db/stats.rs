//! Counts for AdminGetState and `/metrics`.

use rusqlite::Connection;

use super::{Result, registrations, uploads};

/// Row counts of the service's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Images stored (any state).
    pub images: u64,
    /// Upload sessions by state.
    pub uploads: Vec<(String, u64)>,
    /// Registrar jobs by state (pending, done, failed).
    pub jobs: Vec<(String, u64)>,
    /// Bytes the images keep in the stores (files and icons).
    pub image_bytes: u64,
    /// Bytes of unfinished uploads (see `usage::Usage::upload_bytes`).
    pub upload_bytes: u64,
}

/// Number of images stored (any state).
pub fn image_count(c: &Connection) -> Result<u64> {
    let n: i64 = c.query_row("SELECT count(*) FROM images", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Images, uploads by state and registrar jobs by state.
pub fn counts(c: &Connection) -> Result<Counts> {
    Ok(Counts {
        images: image_count(c)?,
        uploads: uploads::count_by_state(c)?,
        jobs: registrations::count_by_state(c)?,
        image_bytes: c.query_row("SELECT coalesce(sum(bytes), 0) FROM images", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
        upload_bytes: c.query_row(
            &format!(
                "SELECT coalesce(sum({}), 0) FROM uploads WHERE {}",
                super::usage::UPLOAD_BYTES,
                super::usage::COUNTED
            ),
            [],
            |r| r.get::<_, i64>(0),
        )? as u64,
    })
}
