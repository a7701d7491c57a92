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
    })
}
