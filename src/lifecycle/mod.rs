//! The lifecycle policy (`[lifecycle]`): retires images no one uses.
//! `plan` decides (no I/O); this service reads every image, plans at the
//! clock's now, and applies a plan: it disables images (recording why and
//! until when in `lifecycle_state`) and deletes those whose grace has
//! passed, freeing their bytes. Every action is an audit log line. The
//! server runs it every `every_hours` on one node at a time; `imgapi
//! lifecycle plan` and `run --yes` run it by hand.

mod plan;

pub use plan::{Action, Plan, Step, plan};

use serde::Serialize;

use crate::config::LifecycleConfig;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::images::Images;

/// The lifecycle service.
#[derive(Clone)]
pub struct Lifecycle {
    images: Images,
    cfg: std::sync::Arc<LifecycleConfig>,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub disabled: u64,
    pub deleted: u64,
    /// Steps left undone: the image changed since the plan.
    pub skipped: u64,
    /// Bytes the deletions freed.
    pub bytes_reclaimed: u64,
    /// Steps that failed (the image changed since the plan, the store is
    /// down...): "uuid: why". They are tried again at the next run.
    pub errors: Vec<String>,
}

impl Lifecycle {
    pub fn new(images: Images, cfg: LifecycleConfig) -> Lifecycle {
        Lifecycle {
            images,
            cfg: std::sync::Arc::new(cfg),
        }
    }

    /// What a run would do now (changes nothing).
    pub async fn plan(&self) -> Result<Plan> {
        let now = self.images.clock.timestamp();
        let images = self.images.db.read(|c| c.policy_images()).await?;
        let cfg = self.cfg.clone();
        // The decisions are CPU work over every image: off the runtime.
        tokio::task::spawn_blocking(move || plan(&images, &cfg, now))
            .await
            .map_err(Error::internal)
    }

    /// Apply `p`: each step is tried on its own, and a step that fails is
    /// reported and left for the next run.
    pub async fn apply(&self, p: &Plan) -> Applied {
        let op = Caller::operator();
        let mut done = Applied::default();
        for s in &p.steps {
            let res = match s.action {
                Action::Disable => self.disable(s).await,
                Action::Delete => self.delete(&op, s).await,
            };
            match res {
                // Changed since the plan (enabled or disabled by someone):
                // left as it is.
                Ok(false) => {
                    done.skipped += 1;
                    tracing::info!(action = ?s.action, image = %s.uuid, rule = %s.rule,
                        "lifecycle step skipped: the image changed since the plan");
                }
                Ok(true) => {
                    let m = &self.images.metrics;
                    match s.action {
                        Action::Disable => {
                            done.disabled += 1;
                            m.add_lifecycle_disabled();
                        }
                        Action::Delete => {
                            done.deleted += 1;
                            done.bytes_reclaimed += s.bytes;
                            m.add_lifecycle_deleted(s.bytes);
                        }
                    }
                    tracing::info!(target: "imgapi::audit", action = ?s.action, image = %s.uuid,
                        name = %s.name, version = %s.version, owner = %s.owner, bytes = s.bytes,
                        rule = %s.rule, reason = %s.reason, "lifecycle");
                }
                Err(e) => {
                    tracing::warn!(action = ?s.action, image = %s.uuid, rule = %s.rule, error = %e,
                        "lifecycle step failed");
                    done.errors.push(format!("{}: {e}", s.uuid));
                }
            }
        }
        done
    }

    /// Disable and mark in one transaction, if the image is still active.
    async fn disable(&self, s: &Step) -> Result<bool> {
        let after = s
            .delete_after
            .as_deref()
            .and_then(crate::clock::Timestamp::parse)
            .unwrap_or_else(|| self.images.clock.timestamp());
        self.images
            .disable_by_policy(s.uuid, s.rule.clone(), after)
            .await
    }

    /// Delete, if in the deleting transaction the image is still disabled
    /// by the policy, its grace has passed and no one enabled it since the
    /// plan.
    async fn delete(&self, op: &Caller, s: &Step) -> Result<bool> {
        let now = self.images.clock.timestamp();
        let uuid = s.uuid;
        self.images
            .delete_if(op, uuid, move |c, img| {
                let mark = c.policy_mark(uuid)?;
                Ok(img.disabled
                    && mark.is_some_and(|m| m.reenabled_at.is_none() && m.delete_after <= now))
            })
            .await
    }

    /// Plan and apply.
    pub async fn run(&self) -> Result<(Plan, Applied)> {
        let p = self.plan().await?;
        let done = self.apply(&p).await;
        Ok((p, done))
    }
}

/// How often a node looks whether a run is due.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Run the policy once every `every` for the whole cluster, whichever node
/// (and across restarts): a run is due when the `lifecycle-period` lease,
/// claimed for `every` by the last run and never given back, has expired.
/// The run itself holds the `lifecycle` lease.
pub async fn run_forever(l: Lifecycle, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every.min(LOOK_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ttl = every.as_millis() as u64;
        // A new claimant each time: the claim succeeds only once the last
        // run's period is over.
        let claimant = uuid::Uuid::new_v4().to_string();
        let due = l
            .images
            .db
            .write(move |c| c.lease_claim("lifecycle-period", &claimant, ttl))
            .await;
        match due {
            Ok(Some(_)) => {}
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether a lifecycle run is due");
                continue;
            }
        }
        let round = async {
            match l.run().await {
                Ok((p, done)) => tracing::info!(
                    planned = p.steps.len(),
                    disabled = done.disabled,
                    deleted = done.deleted,
                    bytes_reclaimed = done.bytes_reclaimed,
                    failed = done.errors.len(),
                    "lifecycle run"
                ),
                Err(e) => tracing::warn!(error = %e, "lifecycle run failed"),
            }
        };
        crate::lease::alone(&l.images.db, "lifecycle", round).await;
    }
}
