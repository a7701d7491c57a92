//! `[lifecycle]`: the lifecycle policy's rules and their checks at start-up.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[lifecycle]`: the policy that retires images no one uses (see
/// `lifecycle::`): rules tried in order, the first whose selector and
/// condition hold disables an image, and deletes it after its grace.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Hours between two runs on the server (one node of a cluster at a
    /// time); 0 (the default): only `imgapi lifecycle run --yes`.
    pub every_hours: u64,
    /// No rule retires an image downloaded within this many days.
    pub protect_downloaded_days: u64,
    pub rules: Vec<LifecycleRule>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            every_hours: 0,
            protect_downloaded_days: 30,
            rules: Vec::new(),
        }
    }
}

/// One rule of the lifecycle policy: which images (every selector given
/// must hold), when (exactly one condition), and the grace between
/// disabling and deleting.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRule {
    /// The rule's name, in plans and audit lines.
    pub rule: String,
    /// Selector: images of this owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<uuid::Uuid>,
    /// Selector: a name, or `~substring` (as ListImages' `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Selector: type, e.g. zone-dataset.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Selector: images in this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Selector: a tag, `key=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Condition: not downloaded for this many days (nor published or
    /// enabled again within them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_downloaded_days: Option<u64>,
    /// Condition: published more than this many days ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_days: Option<u64>,
    /// Condition: all but the newest this many versions of a name (per
    /// owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_newest: Option<u64>,
    /// Days an image stays disabled (and can be enabled again) before it
    /// is deleted.
    #[serde(default = "default_grace_days")]
    pub grace_days: u64,
}

fn default_grace_days() -> u64 {
    30
}

impl Default for LifecycleRule {
    /// No name, no selector, no condition (not a rule yet); 30 days' grace.
    fn default() -> Self {
        LifecycleRule {
            rule: String::new(),
            owner: None,
            name: None,
            type_: None,
            os: None,
            public: None,
            channel: None,
            tag: None,
            not_downloaded_days: None,
            published_days: None,
            keep_newest: None,
            grace_days: default_grace_days(),
        }
    }
}

/// Longest span of days a lifecycle rule may name (100 years).
pub const MAX_LIFECYCLE_DAYS: u64 = 36_500;

impl LifecycleConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad =
            |rule: &str, m: String| ConfigError::Invalid(format!("lifecycle rule \"{rule}\": {m}"));
        if self.protect_downloaded_days > MAX_LIFECYCLE_DAYS {
            return Err(ConfigError::Invalid(format!(
                "lifecycle: protect_downloaded_days must be at most {MAX_LIFECYCLE_DAYS}"
            )));
        }
        if self.every_hours > 24 * 366 {
            return Err(ConfigError::Invalid(
                "lifecycle: every_hours must be at most 8784 (a year)".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            if r.rule.is_empty() || r.rule.len() > 100 || r.rule.chars().any(char::is_control) {
                return Err(ConfigError::Invalid(
                    "lifecycle: every rule needs a `rule` name (1 to 100 printable characters)"
                        .into(),
                ));
            }
            if !seen.insert(r.rule.as_str()) {
                return Err(bad(&r.rule, "two rules have this name".into()));
            }
            let conds = [
                ("not_downloaded_days", r.not_downloaded_days),
                ("published_days", r.published_days),
                ("keep_newest", r.keep_newest),
            ];
            let given: Vec<_> = conds.iter().filter(|(_, v)| v.is_some()).collect();
            if given.len() != 1 {
                return Err(bad(
                    &r.rule,
                    "give exactly one condition: not_downloaded_days, published_days or keep_newest".into(),
                ));
            }
            let (cond, n) = (given[0].0, given[0].1.unwrap_or(0));
            if n == 0 || n > MAX_LIFECYCLE_DAYS {
                return Err(bad(
                    &r.rule,
                    format!("{cond} must be 1 to {MAX_LIFECYCLE_DAYS}"),
                ));
            }
            if r.grace_days > MAX_LIFECYCLE_DAYS {
                return Err(bad(
                    &r.rule,
                    format!("grace_days must be at most {MAX_LIFECYCLE_DAYS}"),
                ));
            }
            if r.tag.as_deref().is_some_and(|t| !t.contains('=')) {
                return Err(bad(&r.rule, "tag must be key=value".into()));
            }
            if r.name.as_deref().is_some_and(|n| n.is_empty() || n == "~") {
                return Err(bad(&r.rule, "name must be a name or ~substring".into()));
            }
        }
        Ok(())
    }
}
