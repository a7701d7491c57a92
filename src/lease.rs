//! A held lease with a fencing token (`db::Meta::lease_*`): claimed in the
//! database, renewed by a task while held, given back on drop. What a
//! process may do alone across a cluster (change an upload, run a
//! registrar job) it does under one; a commit that must not outlive it
//! checks [`Lease::fence`] in its own transaction.

use std::sync::OnceLock;
use std::time::Duration;

use uuid::Uuid;

use crate::db::{Db, DbError};

/// How long a lease lasts without renewal: a holder that died or froze
/// loses it within this time (the database's clock).
pub const TTL: Duration = Duration::from_secs(20);

/// How often a holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// This node, as the owner of the leases it holds: the id kept in its data
/// directory (`node-id`, see [`node_id_in`]), so that a node restarted
/// after a crash takes its own leases back at once instead of waiting for
/// them to expire; a process that set none gets a new one.
static NODE: OnceLock<String> = OnceLock::new();

fn node() -> &'static str {
    NODE.get_or_init(|| Uuid::new_v4().to_string())
}

/// This node's id: the one in `data_dir/node-id`, made there on first use.
/// Two processes must never share a data directory (SQLite's rule too).
pub fn node_id_in(data_dir: &std::path::Path) -> std::io::Result<String> {
    let f = data_dir.join("node-id");
    match std::fs::read_to_string(&f) {
        Ok(s) if Uuid::parse_str(s.trim()).is_ok() => Ok(s.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = Uuid::new_v4().to_string();
            let tmp = data_dir.join(".node-id.tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::rename(&tmp, &f)?;
            Ok(id)
        }
    }
}

/// Use `id` as this node's lease owner (once, before any lease is claimed;
/// later calls keep the first id).
pub fn set_node(id: String) {
    if NODE.set(id).is_err() {
        tracing::debug!("the node id was set already");
    }
}

/// A lease this process holds.
pub struct Lease {
    db: Db,
    name: String,
    fence: i64,
    renew: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Claim `name` for this process: None while another process holds it.
    /// A lease this process holds already is taken anew (callers serialise
    /// their own requests: it is one whose release has not landed yet).
    pub async fn claim(db: &Db, name: String) -> Result<Option<Lease>, DbError> {
        let ttl = TTL.as_millis() as u64;
        let n = name.clone();
        let Some(fence) = db.write(move |c| c.lease_claim(&n, node(), ttl)).await? else {
            return Ok(None);
        };
        let (db2, n) = (db.clone(), name.clone());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let n2 = n.clone();
                match db2.write(move |c| c.lease_renew(&n2, fence, ttl)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lease = %n, fence, "a lease was taken over");
                        return;
                    }
                    // The database is down: try again; the lease may expire.
                    Err(e) => tracing::warn!(lease = %n, error = %e, "could not renew a lease"),
                }
            }
        });
        Ok(Some(Lease {
            db: db.clone(),
            name,
            fence,
            renew,
        }))
    }

    /// [`Lease::claim`], asking again every 100 ms while another process
    /// holds it, for up to `wait`: None if it was never free.
    pub async fn claim_within(
        db: &Db,
        name: String,
        wait: Duration,
    ) -> Result<Option<Lease>, DbError> {
        const POLL: Duration = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lease) = Lease::claim(db, name.clone()).await? {
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The fencing token: grows with every claim of this name.
    pub fn fence(&self) -> i64 {
        self.fence
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Run `task` unless another process runs the task `name` now (a reaper
/// or a sweep that one node of a cluster does at a time): false if it did
/// not run.
pub async fn alone<F: std::future::Future<Output = ()>>(db: &Db, name: &str, task: F) -> bool {
    match Lease::claim(db, format!("task:{name}")).await {
        Ok(Some(_lease)) => {
            task.await;
            true
        }
        Ok(None) => {
            tracing::debug!(task = name, "runs on another node");
            false
        }
        Err(e) => {
            tracing::warn!(task = name, error = %e, "could not claim a task");
            false
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let (db, name, fence) = (self.db.clone(), std::mem::take(&mut self.name), self.fence);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = db.write(move |c| c.lease_release(&name, fence)).await {
                    // It expires by itself.
                    tracing::warn!(error = %e, "could not give a lease back");
                }
            });
        }
    }
}
