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
                Action::Disable => self.disable(&op, s).await,
                Action::Delete => self.images.delete(&op, s.uuid).await,
            };
            match res {
                Ok(()) => {
                    let m = crate::metrics::global();
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

    /// Mark, then disable (a crash between leaves an enabled image with a
    /// mark: taken as enabled again, so never deleted unseen).
    async fn disable(&self, op: &Caller, s: &Step) -> Result<()> {
        let at = self.images.clock.timestamp();
        let after = s
            .delete_after
            .as_deref()
            .and_then(crate::clock::Timestamp::parse)
            .unwrap_or(at);
        let (uuid, rule) = (s.uuid, s.rule.clone());
        self.images
            .db
            .write(move |c| c.policy_mark_disabled(uuid, &rule, at, after))
            .await?;
        self.images.set_disabled(op, uuid, true).await?;
        Ok(())
    }

    /// Plan and apply.
    pub async fn run(&self) -> Result<(Plan, Applied)> {
        let p = self.plan().await?;
        let done = self.apply(&p).await;
        Ok((p, done))
    }
}

/// Run the policy every `every`, on one node of a cluster at a time.
pub async fn run_forever(l: Lifecycle, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
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
