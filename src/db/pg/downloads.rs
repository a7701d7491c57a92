//! Download statistics per image on PostgreSQL (as `db::downloads`;
//! sql/pg/0005).

use uuid::Uuid;

use super::{PgConn, col, count};
use crate::clock::Timestamp;
use crate::db::downloads::{DownloadStats, day, first_day_kept};
use crate::db::{DbError, Result};

/// Add a batch of counts; an image deleted since it was counted is
/// skipped. One statement, rows taken in (owner, day) and uuid order, so
/// that two nodes adding at once lock them alike. Days of `download_days`
/// older than `DAYS_KEPT` go.
pub fn add(c: &PgConn, batch: &[(Uuid, DownloadStats)]) -> Result<()> {
    let Some(newest) = batch.iter().map(|(_, s)| s.last_at).max() else {
        return Ok(());
    };
    let uuids: Vec<Uuid> = batch.iter().map(|(u, _)| *u).collect();
    let counts: Vec<i64> = batch
        .iter()
        .map(|(_, s)| s.count.min(i64::MAX as u64) as i64)
        .collect();
    let lasts: Vec<String> = batch.iter().map(|(_, s)| s.last_at.to_string()).collect();
    let days: Vec<String> = batch.iter().map(|(_, s)| day(s.last_at)).collect();
    c.execute(
        "WITH b AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]) \
                    AS b(uuid, count, last_at, day)), \
         d AS (INSERT INTO download_days (owner, day, count) \
               SELECT i.owner, b.day, sum(b.count) FROM b JOIN images i ON i.uuid = b.uuid \
               GROUP BY i.owner, b.day ORDER BY i.owner, b.day \
               ON CONFLICT (owner, day) DO UPDATE SET count = download_days.count + excluded.count) \
         INSERT INTO image_downloads (uuid, count, last_at) \
         SELECT b.uuid, b.count, b.last_at FROM b \
         WHERE EXISTS (SELECT 1 FROM images i WHERE i.uuid = b.uuid) ORDER BY b.uuid \
         ON CONFLICT (uuid) DO UPDATE SET count = image_downloads.count + excluded.count, \
         last_at = greatest(image_downloads.last_at, excluded.last_at)",
        &[&uuids, &counts, &lasts, &days],
    )?;
    c.execute(
        "DELETE FROM download_days WHERE day < $1",
        &[&first_day_kept(newest)],
    )?;
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
