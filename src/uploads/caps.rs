//! Per-account caps on uploads: who may write where (paths, assets), how
//! many requests an account streams at once, and (checked in the same
//! transaction as the insert) how many uploads and bytes it has open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{Uploads, UploadsConfig};
use crate::db::Meta;
use crate::db::uploads::Upload;
use crate::error::{Error, FieldCode, Result};
use crate::identity::Caller;
use crate::store::namespace::{self, Namespace};

/// Counts the upload requests each account is streaming.
#[derive(Clone)]
pub(super) struct Streaming {
    counts: Arc<Mutex<HashMap<Option<Uuid>, usize>>>,
    max: usize,
}

/// One streaming request of an account; counted until dropped.
pub(super) struct StreamSlot {
    streaming: Streaming,
    owner: Option<Uuid>,
}

impl Streaming {
    pub(super) fn new(max: usize) -> Streaming {
        Streaming {
            counts: Arc::default(),
            max,
        }
    }

    pub(super) fn enter(&self, owner: Option<Uuid>) -> Result<StreamSlot> {
        let mut m = self
            .counts
            .lock()
            .map_err(|_| Error::internal("poisoned"))?;
        let n = m.entry(owner).or_default();
        if *n >= self.max {
            return Err(Error::TooManyRequests(format!(
                "the account is streaming {n} upload requests at once (at most {}); \
                 retry when one ends",
                self.max
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            streaming: self.clone(),
            owner,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.streaming.counts.lock()
            && let Some(n) = m.get_mut(&self.owner)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.owner);
            }
        }
    }
}

impl Uploads {
    /// May `caller` write to the storage path `p`?
    pub async fn check_path_access(
        &self,
        caller: &Caller,
        p: &namespace::StoragePath,
    ) -> Result<()> {
        if caller.operator && caller.account.is_none() {
            return Ok(());
        }
        let Some(account) = caller.account else {
            return Err(Error::Unauthorized("authentication required".into()));
        };
        match &p.ns {
            Namespace::Assets => {
                if self.cfg.assets_allowed.contains(&account) {
                    Ok(())
                } else {
                    Err(Error::invalid_param(
                        "path",
                        FieldCode::NotAllowed,
                        "only operators and allowed accounts may use /assets paths",
                    ))
                }
            }
            Namespace::Manta { owner } => {
                // A UUID-shaped owner names an account uuid, never a login.
                if let Ok(u) = Uuid::parse_str(owner) {
                    if u == account {
                        return Ok(());
                    }
                    return Err(Error::NotMantaPathOwner(format!(
                        "account {account} may not use {} (namespace of \"{owner}\")",
                        p.path
                    )));
                }
                let acct = self.db.read(move |c| c.account_by_uuid(account)).await?;
                if acct.is_some_and(|a| a.login == *owner) {
                    Ok(())
                } else {
                    Err(Error::NotMantaPathOwner(format!(
                        "account {account} may not use {} (namespace of \"{owner}\")",
                        p.path
                    )))
                }
            }
        }
    }
}

/// The caps an upload is admitted under, checked in the transaction that
/// inserts it.
pub(super) struct Caps {
    quota: u64,
    max_open: u64,
}

impl Caps {
    pub(super) fn of(cfg: &UploadsConfig) -> Caps {
        Caps {
            quota: cfg.max_bytes_in_flight_per_account,
            max_open: cfg.max_open_per_account,
        }
    }

    /// May the owner of `row` open it: fewer than `max_open` uploads open,
    /// and its bytes within the quota of bytes in unfinished uploads?
    /// Operators' own uploads (no owner) are not capped.
    pub(super) fn admit(&self, c: &dyn Meta, row: &Upload) -> Result<()> {
        let (owner, max_open) = (row.owner, self.max_open);
        // (A final upload of a tus concatenation is not admitted here: its
        // bytes are its partials', admitted with them.)
        if owner.is_none() {
            return Ok(());
        }
        let open = c.upload_open_count(owner)?;
        if open >= max_open {
            return Err(Error::TooManyRequests(format!(
                "the account has {open} uploads open (at most {max_open}): \
                 register or terminate some first"
            )));
        }
        let quota = self.quota;
        let used = c.upload_bytes_in_flight(owner)?;
        if used + row.length > quota {
            return Err(Error::QuotaExceeded(format!(
                "this upload of {} bytes would put the account over its quota of {quota} \
                 bytes in unfinished uploads ({used} in use)",
                row.length
            )));
        }
        Ok(())
    }
}
