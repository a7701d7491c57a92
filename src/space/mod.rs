//! Space: who uses what, and what they may keep. An account's usage (its
//! images by state with their bytes, its unfinished uploads, downloads of
//! its images in the last 30 days, its quotas), every account by bytes for
//! operators, and quotas: `[quotas]`, overridden per account, checked by
//! every entry of bytes or images inside the write transaction that adds
//! them, so that two requests cannot both slip under one quota.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::clock::Clock;
use crate::config::QuotasConfig;
use crate::db::usage::{QuotaOverride, Usage};
use crate::db::{Db, Meta};
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::wire;

/// Days of downloads an account's usage counts.
pub const DOWNLOAD_DAYS: i64 = 30;

/// Most accounts `GET /usage` lists at once (and its default).
pub const MAX_ACCOUNTS: u32 = 1000;

/// The quotas every entry of bytes or images checks.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    cfg: QuotasConfig,
}

/// What an entry adds to its account.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The account the bytes and images count for (the image's or
    /// upload's owner).
    pub owner: Uuid,
    /// Bytes it adds (a file that replaces another: the growth).
    pub bytes: u64,
    /// Images it adds.
    pub images: u64,
    /// What it is, for the error: "an upload of 5 bytes".
    pub what: String,
}

impl Quotas {
    pub fn new(cfg: QuotasConfig) -> Quotas {
        Quotas { cfg }
    }

    /// The quotas that hold for an account with its own `o`: its own where
    /// set, else the configuration's; 0 is unlimited (`None`).
    pub fn effective(&self, o: QuotaOverride) -> wire::Quota {
        let limit = |v: u64| (v > 0).then_some(v);
        wire::Quota {
            max_bytes: limit(o.max_bytes.unwrap_or(self.cfg.max_bytes)),
            max_images: limit(o.max_images.unwrap_or(self.cfg.max_images)),
        }
    }

    /// May `e` be added, in the write transaction `c`? Locks the account's
    /// usage until `c` ends, so a second entry for it waits and then sees
    /// this one. Over a quota: 413 `QuotaExceeded` naming the quota, the
    /// usage and the entry. An operator's own request (not acting for an
    /// account) passes when `exempt_operators` is set.
    pub fn admit(&self, c: &dyn Meta, caller: &Caller, e: &Entry) -> Result<()> {
        let exempt = self.cfg.exempt_operators && caller.operator && caller.account.is_none();
        if (e.bytes == 0 && e.images == 0) || exempt {
            return Ok(());
        }
        let q = self.effective(c.quota_get(e.owner)?);
        if q.max_bytes.is_none() && q.max_images.is_none() {
            return Ok(());
        }
        c.quota_lock(e.owner)?;
        // (Downloads do not matter here: none are counted after the year 9999.)
        let u = c.usage_of(e.owner, "9999-12-31")?;
        if let Some(max) = q.max_bytes
            && e.bytes > 0
        {
            let (images, uploads) = (u.image_bytes(), u.upload_bytes);
            let used = images.saturating_add(uploads);
            if used.saturating_add(e.bytes) > max {
                return Err(Error::QuotaExceeded(format!(
                    "{} would put account {} over its quota of {max} bytes \
                     ({used} in use: {images} in images, {uploads} in unfinished uploads)",
                    e.what, e.owner
                )));
            }
        }
        if let Some(max) = q.max_images
            && e.images > 0
        {
            let used = u.image_count();
            if used.saturating_add(e.images) > max {
                return Err(Error::QuotaExceeded(format!(
                    "{} would put account {} over its quota of {max} images ({used} in use)",
                    e.what, e.owner
                )));
            }
        }
        Ok(())
    }
}

/// The usage service.
#[derive(Clone)]
pub struct Space {
    db: Db,
    quotas: Quotas,
    clock: Clock,
}

impl Space {
    pub fn new(db: Db, quotas: Quotas, clock: Clock) -> Space {
        Space { db, quotas, clock }
    }

    /// The account `who` names: a uuid, or the login of an account of this
    /// server's (404 if none).
    async fn resolve(&self, who: &str) -> Result<(Uuid, Option<String>)> {
        if let Ok(u) = Uuid::parse_str(who) {
            let acct = self.db.read(move |c| c.account_by_uuid(u)).await?;
            return Ok((u, acct.map(|a| a.login)));
        }
        let login = who.to_string();
        match self.db.read(move |c| c.account_by_login(&login)).await? {
            Some(a) => Ok((a.uuid, Some(a.login))),
            None => Err(Error::not_found(format!("account \"{who}\" was not found"))),
        }
    }

    /// `GET /usage/{account}`: an operator may read any account's usage,
    /// an account its own.
    pub async fn usage(&self, caller: &Caller, who: &str) -> Result<wire::Usage> {
        caller.require_auth()?;
        let (account, login) = self.resolve(who).await?;
        let may = match caller.account {
            Some(a) => a == account,
            None => caller.operator,
        };
        if !may {
            return Err(Error::OperatorOnly);
        }
        let since = crate::db::downloads::day(
            self.clock
                .timestamp()
                .plus(chrono::Duration::days(-(DOWNLOAD_DAYS - 1))),
        );
        let (u, own): (Usage, QuotaOverride) = self
            .db
            .read(move |c| Ok::<_, Error>((c.usage_of(account, &since)?, c.quota_get(account)?)))
            .await?;
        let images: BTreeMap<String, wire::CountBytes> = u
            .images
            .iter()
            .map(|(s, n, b)| {
                (
                    s.clone(),
                    wire::CountBytes {
                        count: *n,
                        bytes: *b,
                    },
                )
            })
            .collect();
        let images_total = wire::CountBytes {
            count: u.image_count(),
            bytes: u.image_bytes(),
        };
        Ok(wire::Usage {
            account,
            login,
            images,
            images_total,
            uploads: wire::CountBytes {
                count: u.uploads,
                bytes: u.upload_bytes,
            },
            bytes: images_total.bytes.saturating_add(u.upload_bytes),
            downloads_30d: u.downloads,
            quota: self.quotas.effective(own),
        })
    }

    /// Images, uploads and jobs by state, and the bytes they keep (for
    /// `/metrics`).
    pub async fn counts(&self) -> Result<crate::db::stats::Counts> {
        Ok(self.db.read(|c| c.counts()).await?)
    }

    /// Number of images stored (AdminGetState).
    pub async fn image_count(&self) -> Result<u64> {
        Ok(self.db.read(|c| c.image_count()).await?)
    }

    /// `GET /usage`: every account with images or unfinished uploads,
    /// largest first (operators only).
    pub async fn by_account(&self, caller: &Caller, limit: u32) -> Result<Vec<wire::AccountUsage>> {
        caller.require_operator()?;
        let rows = self.db.read(move |c| c.usage_by_account(limit)).await?;
        Ok(rows
            .into_iter()
            .map(|t| wire::AccountUsage {
                account: t.account,
                login: t.login,
                images_total: wire::CountBytes {
                    count: t.images,
                    bytes: t.image_bytes,
                },
                uploads: wire::CountBytes {
                    count: t.uploads,
                    bytes: t.upload_bytes,
                },
                bytes: t.image_bytes.saturating_add(t.upload_bytes),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_quotas_override_the_configuration_and_zero_is_unlimited() {
        let q = Quotas::new(QuotasConfig {
            max_bytes: 100,
            max_images: 0,
            exempt_operators: false,
        });
        assert_eq!(
            q.effective(QuotaOverride::default()),
            wire::Quota {
                max_bytes: Some(100),
                max_images: None
            }
        );
        let own = QuotaOverride {
            max_bytes: Some(0),
            max_images: Some(3),
        };
        assert_eq!(
            q.effective(own),
            wire::Quota {
                max_bytes: None,
                max_images: Some(3)
            }
        );
    }
}
