//! Usage per account (the owner of images and uploads): its images by
//! state with their bytes, its unfinished uploads, its downloads since a
//! day; every account's totals, largest first; and the quotas that
//! override the configuration's for one account (`account_quotas`).

use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use super::{DbError, Result};

/// One account's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// (state, images, bytes) of each state the account has images in, by
    /// state name.
    pub images: Vec<(String, u64, u64)>,
    /// Uploads not registered to an image (in progress, complete, failed).
    pub uploads: u64,
    /// The bytes uploads hold or will hold (their `Upload-Length`), until
    /// they are an image's file: those unfinished, and those registered to
    /// an image still being made. A concatenation's bytes count once: in
    /// its partials while its final is filled, then in the final.
    pub upload_bytes: u64,
    /// Downloads of the account's images since the day asked for.
    pub downloads: u64,
}

impl Usage {
    /// Images in any state.
    pub fn image_count(&self) -> u64 {
        self.images.iter().map(|(_, n, _)| n).sum()
    }

    /// Bytes the account's images keep in the stores.
    pub fn image_bytes(&self) -> u64 {
        self.images.iter().map(|(_, _, b)| b).sum()
    }
}

/// An account's totals in the list of every account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTotals {
    pub account: Uuid,
    /// Its login, if it is an account of this server's.
    pub login: Option<String>,
    pub images: u64,
    pub image_bytes: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
}

/// The uploads whose bytes count: not registered, or registered to an
/// image its registration is still making (the image has no file yet).
pub const COUNTED: &str = "(state != 'registered' OR EXISTS (SELECT 1 FROM images i \
    WHERE i.uuid = uploads.image_uuid AND i.state = 'creating'))";
/// The unfinished ones among them (the usage's count).
const UNFINISHED: &str = "CASE WHEN state != 'registered' THEN 1 ELSE 0 END";
/// The bytes an upload holds or will hold: its `Upload-Length`, but for a
/// final upload still being filled (its bytes are its partials') and a
/// partial whose final is filled (the final's are).
pub const UPLOAD_BYTES: &str = "CASE \
    WHEN concat IS 'final' AND state = 'uploading' THEN 0 \
    WHEN concat IS 'partial' AND EXISTS (SELECT 1 FROM uploads f \
      WHERE f.id = uploads.concat_final AND f.state != 'uploading') THEN 0 \
    ELSE length END";

/// `owner`'s usage, with its downloads since `since_day` (YYYY-MM-DD).
pub fn of(c: &Connection, owner: Uuid, since_day: &str) -> Result<Usage> {
    let o = owner.to_string();
    let mut st = c.prepare_cached(
        "SELECT state, count(*), coalesce(sum(bytes), 0) FROM images \
         WHERE owner = ?1 GROUP BY state ORDER BY state",
    )?;
    let images = st
        .query_map([&o], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (uploads, upload_bytes) = c.query_row(
        &format!(
            "SELECT coalesce(sum({UNFINISHED}), 0), coalesce(sum({UPLOAD_BYTES}), 0) FROM uploads \
             WHERE owner = ?1 AND {COUNTED}"
        ),
        [&o],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?;
    let downloads = c.query_row(
        "SELECT coalesce(sum(count), 0) FROM download_days WHERE owner = ?1 AND day >= ?2",
        [&o, since_day],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(Usage {
        images,
        uploads,
        upload_bytes,
        downloads,
    })
}

/// Every account with images or unfinished uploads, by bytes (images'
/// plus uploads'), largest first; at most `limit`.
pub fn by_account(c: &Connection, limit: u32) -> Result<Vec<AccountTotals>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT u.owner, a.login, u.n, u.b, u.un, u.ub FROM ( \
           SELECT owner, sum(n) AS n, sum(b) AS b, sum(un) AS un, sum(ub) AS ub FROM ( \
             SELECT owner, count(*) AS n, sum(bytes) AS b, 0 AS un, 0 AS ub FROM images \
             GROUP BY owner \
             UNION ALL \
             SELECT owner, 0, 0, sum({UNFINISHED}), sum({UPLOAD_BYTES}) FROM uploads \
             WHERE owner IS NOT NULL AND {COUNTED} GROUP BY owner) \
           GROUP BY owner) u \
         LEFT JOIN accounts a ON a.uuid = u.owner \
         ORDER BY u.b + u.ub DESC, u.owner LIMIT ?1"
    ))?;
    let rows = st.query_map([limit], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            [2, 3, 4, 5].map(|i| r.get::<_, i64>(i).map(|v| v.max(0) as u64)),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (account, login, [n, b, un, ub]) = row?;
        out.push(AccountTotals {
            account: Uuid::parse_str(&account).map_err(DbError::corrupt("account uuid"))?,
            login,
            images: n?,
            image_bytes: b?,
            uploads: un?,
            upload_bytes: ub?,
        });
    }
    Ok(out)
}

/// One account's own quotas (`None`: the configuration's; 0: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaOverride {
    pub max_bytes: Option<u64>,
    pub max_images: Option<u64>,
}

/// `account`'s own quotas (all `None` if it has none).
pub fn quota_get(c: &Connection, account: Uuid) -> Result<QuotaOverride> {
    Ok(c.query_row(
        "SELECT max_bytes, max_images FROM account_quotas WHERE account = ?1",
        [account.to_string()],
        |r| {
            Ok(QuotaOverride {
                max_bytes: r.get::<_, Option<i64>>(0)?.map(|v| v.max(0) as u64),
                max_images: r.get::<_, Option<i64>>(1)?.map(|v| v.max(0) as u64),
            })
        },
    )
    .optional()?
    .unwrap_or_default())
}

/// Set `account`'s own quotas (all `None`: back to the configuration's).
pub fn quota_set(c: &Connection, account: Uuid, q: QuotaOverride) -> Result<()> {
    if q == QuotaOverride::default() {
        c.execute(
            "DELETE FROM account_quotas WHERE account = ?1",
            [account.to_string()],
        )?;
        return Ok(());
    }
    let v = |x: Option<u64>| x.map(|v| v.min(i64::MAX as u64) as i64);
    c.execute(
        "INSERT INTO account_quotas (account, max_bytes, max_images) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account) DO UPDATE SET max_bytes = excluded.max_bytes, \
         max_images = excluded.max_images",
        rusqlite::params![account.to_string(), v(q.max_bytes), v(q.max_images)],
    )?;
    Ok(())
}
