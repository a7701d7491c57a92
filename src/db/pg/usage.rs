//! Usage per account on PostgreSQL (same results as `db::usage`).

use uuid::Uuid;

use super::{PgConn, col, count};
use crate::db::Result;
use crate::db::usage::{AccountTotals, QuotaOverride, Usage};

/// The uploads whose bytes count (as `db::usage::COUNTED`).
pub const COUNTED: &str = "(state <> 'registered' OR EXISTS (SELECT 1 FROM images i \
    WHERE i.uuid = uploads.image_uuid AND i.state = 'creating'))";
/// The unfinished ones among them.
const UNFINISHED: &str = "CASE WHEN state <> 'registered' THEN 1 ELSE 0 END";
/// The bytes an upload holds or will hold (as `db::usage::UPLOAD_BYTES`).
pub const UPLOAD_BYTES: &str = "CASE \
    WHEN concat IS NOT DISTINCT FROM 'final' AND state = 'uploading' THEN 0 \
    WHEN concat IS NOT DISTINCT FROM 'partial' AND EXISTS (SELECT 1 FROM uploads f \
      WHERE f.id = uploads.concat_final AND f.state <> 'uploading') THEN 0 \
    ELSE length END";

/// `owner`'s usage, with its downloads since `since_day` (YYYY-MM-DD).
pub fn of(c: &PgConn, owner: Uuid, since_day: &str) -> Result<Usage> {
    let images = c
        .query(
            "SELECT state, count(*), coalesce(sum(bytes), 0)::bigint FROM images \
             WHERE owner = $1 GROUP BY state ORDER BY state",
            &[&owner],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, count(r, 1)?, count(r, 2)?)))
        .collect::<Result<_>>()?;
    let r = c.query_one(
        "uploads usage",
        &format!(
            "SELECT coalesce(sum({UNFINISHED}), 0)::bigint, coalesce(sum({UPLOAD_BYTES}), 0)::bigint \
             FROM uploads WHERE owner = $1 AND {COUNTED}"
        ),
        &[&owner],
    )?;
    let (uploads, upload_bytes) = (count(&r, 0)?, count(&r, 1)?);
    let r = c.query_one(
        "downloads usage",
        "SELECT coalesce(sum(count), 0)::bigint FROM download_days WHERE owner = $1 AND day >= $2",
        &[&owner, &since_day],
    )?;
    Ok(Usage {
        images,
        uploads,
        upload_bytes,
        downloads: count(&r, 0)?,
    })
}

/// Every account with images or unfinished uploads, by bytes (images'
/// plus uploads'), largest first; at most `limit`.
pub fn by_account(c: &PgConn, limit: u32) -> Result<Vec<AccountTotals>> {
    c.query(
        &format!(
            "SELECT u.owner, a.login, u.n, u.b, u.un, u.ub FROM ( \
               SELECT owner, sum(n)::bigint AS n, sum(b)::bigint AS b, sum(un)::bigint AS un, \
                      sum(ub)::bigint AS ub FROM ( \
                 SELECT owner, count(*) AS n, sum(bytes) AS b, 0 AS un, 0 AS ub FROM images \
                 GROUP BY owner \
                 UNION ALL \
                 SELECT owner, 0, 0, sum({UNFINISHED}), sum({UPLOAD_BYTES}) FROM uploads \
                 WHERE owner IS NOT NULL AND {COUNTED} GROUP BY owner) t \
               GROUP BY owner) u \
             LEFT JOIN accounts a ON a.uuid = u.owner \
             ORDER BY u.b + u.ub DESC, u.owner LIMIT $1"
        ),
        &[&i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        Ok(AccountTotals {
            account: col(r, 0)?,
            login: col(r, 1)?,
            images: count(r, 2)?,
            image_bytes: count(r, 3)?,
            uploads: count(r, 4)?,
            upload_bytes: count(r, 5)?,
        })
    })
    .collect()
}

/// `account`'s own quotas (all `None` if it has none).
pub fn quota_get(c: &PgConn, account: Uuid) -> Result<QuotaOverride> {
    Ok(c.query_opt(
        "SELECT max_bytes, max_images FROM account_quotas WHERE account = $1",
        &[&account],
    )?
    .map(|r| -> Result<QuotaOverride> {
        Ok(QuotaOverride {
            max_bytes: col::<Option<i64>>(&r, 0)?.map(|v| v.max(0) as u64),
            max_images: col::<Option<i64>>(&r, 1)?.map(|v| v.max(0) as u64),
        })
    })
    .transpose()?
    .unwrap_or_default())
}

/// Set `account`'s own quotas (all `None`: back to the configuration's).
pub fn quota_set(c: &PgConn, account: Uuid, q: QuotaOverride) -> Result<()> {
    if q == QuotaOverride::default() {
        c.execute("DELETE FROM account_quotas WHERE account = $1", &[&account])?;
        return Ok(());
    }
    let v = |x: Option<u64>| x.map(|v| v.min(i64::MAX as u64) as i64);
    c.execute(
        "INSERT INTO account_quotas (account, max_bytes, max_images) VALUES ($1, $2, $3) \
         ON CONFLICT (account) DO UPDATE SET max_bytes = excluded.max_bytes, \
         max_images = excluded.max_images",
        &[&account, &v(q.max_bytes), &v(q.max_images)],
    )?;
    Ok(())
}

/// Lock `account`'s row of `account_locks` until the transaction ends.
pub fn quota_lock(c: &PgConn, account: Uuid) -> Result<()> {
    c.execute(
        "INSERT INTO account_locks (account) VALUES ($1) \
         ON CONFLICT (account) DO UPDATE SET account = excluded.account",
        &[&account],
    )?;
    Ok(())
}
