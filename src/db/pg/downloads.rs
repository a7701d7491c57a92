//! Download statistics per image on PostgreSQL (as `db::downloads`;
//! sql/pg/0005).

use uuid::Uuid;

use super::{PgConn, col, count};
use crate::clock::Timestamp;
use crate::db::downloads::{DownloadStats, day, first_day_kept};
use crate::db::{DbError, Result};

/// Add a batch of counts; an image deleted since it was counted is
/// skipped.
pub fn add(c: &PgConn, batch: &[(Uuid, DownloadStats)]) -> Result<()> {
    for (uuid, s) in batch {
        c.execute(
            "INSERT INTO download_days (owner, day, count) \
             SELECT owner, $2::text, $3::bigint FROM images WHERE uuid = $1 \
             ON CONFLICT (owner, day) DO UPDATE SET count = download_days.count + excluded.count",
            &[
                uuid,
                &day(s.last_at),
                &(s.count.min(i64::MAX as u64) as i64),
            ],
        )?;
    }
    if let Some(newest) = batch.iter().map(|(_, s)| s.last_at).max() {
        c.execute(
            "DELETE FROM download_days WHERE day < $1",
            &[&first_day_kept(newest)],
        )?;
    }
    for (uuid, s) in batch {
        c.execute(
            "INSERT INTO image_downloads (uuid, count, last_at) \
             SELECT $1::uuid, $2::bigint, $3::text WHERE EXISTS (SELECT 1 FROM images WHERE uuid = $1::uuid) \
             ON CONFLICT (uuid) DO UPDATE SET count = image_downloads.count + excluded.count, \
             last_at = greatest(image_downloads.last_at, excluded.last_at)",
            &[
                uuid,
                &(s.count.min(i64::MAX as u64) as i64),
                &s.last_at.to_string(),
            ],
        )?;
    }
    Ok(())
}

/// The statistics of those of `uuids` downloaded at least once.
pub fn of(c: &PgConn, uuids: &[Uuid]) -> Result<Vec<(Uuid, DownloadStats)>> {
    let uuids = uuids.to_vec();
    c.query(
        "SELECT uuid, count, last_at FROM image_downloads WHERE uuid = ANY($1)",
        &[&uuids],
    )?
    .iter()
    .map(|r| {
        let last_at: String = col(r, 2)?;
        Ok((
            col(r, 0)?,
            DownloadStats {
                count: count(r, 1)?,
                last_at: Timestamp::parse(&last_at)
                    .ok_or_else(|| DbError::corrupt("download time")(last_at))?,
            },
        ))
    })
    .collect()
}
