//! Counts for AdminGetState and `/metrics` on PostgreSQL (same results as
//! `db::stats`).

use super::{PgConn, count, registrations, uploads};
use crate::db::Result;
use crate::db::stats::Counts;

/// Number of images stored (any state).
pub fn image_count(c: &PgConn) -> Result<u64> {
    count(
        &c.query_one("image count", "SELECT count(*) FROM images", &[])?,
        0,
    )
}

/// Images, uploads by state and registrar jobs by state.
pub fn counts(c: &PgConn) -> Result<Counts> {
    Ok(Counts {
        images: image_count(c)?,
        uploads: uploads::count_by_state(c)?,
        jobs: registrations::count_by_state(c)?,
        image_bytes: count(
            &c.query_one(
                "image bytes",
                "SELECT coalesce(sum(bytes), 0)::bigint FROM images",
                &[],
            )?,
            0,
        )?,
        upload_bytes: count(
            &c.query_one(
                "upload bytes",
                &format!(
                    "SELECT coalesce(sum({}), 0)::bigint FROM uploads WHERE {}",
                    super::usage::UPLOAD_BYTES,
                    super::usage::COUNTED
                ),
                &[],
            )?,
            0,
        )?,
    })
}
