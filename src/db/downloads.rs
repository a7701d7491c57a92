//! Download statistics per image (`image_downloads`, sql/0015): a node's
//! batch of counts added (to the image's row and to its owner's day in
//! `download_days`), and the statistics read back for admin fields.
//! ListImages' filters on them are in `images::where_sql`.

use rusqlite::Connection;
use uuid::Uuid;

use super::Result;
use crate::clock::Timestamp;

pub use crate::manifest::DownloadStats;

/// Days of downloads per account kept (usage shows the last 30).
pub const DAYS_KEPT: i64 = 31;

/// The first day kept when the newest count is at `t` (YYYY-MM-DD).
pub fn first_day_kept(t: Timestamp) -> String {
    day(t.plus(chrono::Duration::days(-DAYS_KEPT)))
}

/// The day of `t`, as `download_days` holds it.
pub fn day(t: Timestamp) -> String {
    t.to_string()[..10].to_string()
}

/// Add a batch of counts; an image deleted since it was counted is
/// skipped. Days of `download_days` older than [`DAYS_KEPT`] go.
pub fn add(c: &Connection, batch: &[(Uuid, DownloadStats)]) -> Result<()> {
    let mut days = c.prepare_cached(
        "INSERT INTO download_days (owner, day, count) \
         SELECT owner, ?2, ?3 FROM images WHERE uuid = ?1 \
         ON CONFLICT (owner, day) DO UPDATE SET count = count + excluded.count",
    )?;
    for (uuid, s) in batch {
        days.execute(rusqlite::params![
            uuid.to_string(),
            day(s.last_at),
            s.count.min(i64::MAX as u64) as i64
        ])?;
    }
    if let Some(newest) = batch.iter().map(|(_, s)| s.last_at).max() {
        c.prepare_cached("DELETE FROM download_days WHERE day < ?1")?
            .execute([first_day_kept(newest)])?;
    }
    let mut st = c.prepare_cached(
        "INSERT INTO image_downloads (uuid, count, last_at) \
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM images WHERE uuid = ?1) \
         ON CONFLICT (uuid) DO UPDATE SET count = count + excluded.count, \
         last_at = max(last_at, excluded.last_at)",
    )?;
    for (uuid, s) in batch {
        st.execute(rusqlite::params![
            uuid.to_string(),
            s.count.min(i64::MAX as u64) as i64,
            s.last_at
        ])?;
    }
    Ok(())
}

/// The statistics of those of `uuids` downloaded at least once.
pub fn of(c: &Connection, uuids: &[Uuid]) -> Result<Vec<(Uuid, DownloadStats)>> {
    let list = serde_json::to_string(&uuids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    let mut st = c.prepare_cached(
        "SELECT uuid, count, last_at FROM image_downloads \
         WHERE uuid IN (SELECT value FROM json_each(?1))",
    )?;
    let rows = st.query_map([list], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Timestamp>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (uuid, count, last_at) = row?;
        let uuid = Uuid::parse_str(&uuid).map_err(super::DbError::corrupt("download uuid"))?;
        out.push((
            uuid,
            DownloadStats {
                count: count.max(0) as u64,
                last_at,
            },
        ));
    }
    Ok(out)
}
