//! The lifecycle policy's decisions: from every image, the rules and a
//! time, which images to disable and which to delete, and why. No I/O.
//!
//! An active image is disabled by the first rule whose selector and
//! condition hold; an image the policy disabled is deleted once its grace
//! has passed, unless someone enabled it again. Never retired: an image
//! downloaded within `protect_downloaded_days`, the newest version of a
//! name a keep-newest rule applies to, and the origin of an image that
//! stays (whatever its state).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::config::{LifecycleConfig, LifecycleRule};
use crate::db::lifecycle::PolicyImage;

/// What the policy does to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Disable it now; delete it after the rule's grace.
    Disable,
    /// Delete it (its grace has passed): its stored bytes are freed.
    Delete,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub uuid: Uuid,
    pub name: String,
    pub version: String,
    pub owner: Uuid,
    /// Bytes it keeps in the stores (files and icon).
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_downloaded_at: Option<String>,
    pub action: Action,
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// A disabled image is deleted from then on, unless enabled again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<String>,
}

/// What a run would do, at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub at: String,
    /// Deletions first, each image before its origin; then disables.
    pub steps: Vec<Step>,
    /// Bytes the deletions free now.
    pub bytes_reclaimed: u64,
    /// Bytes the disabled images free when their grace has passed.
    pub bytes_after_grace: u64,
    /// Images the protections kept from a rule that held for them.
    pub protected: u64,
}

/// Days as a duration.
fn days(n: u64) -> chrono::Duration {
    chrono::Duration::days(n.min(crate::config::MAX_LIFECYCLE_DAYS) as i64)
}

/// When `img` was enabled again after the policy disabled it, if it was.
/// An active image whose mark is still open (the disabling did not land,
/// or someone enabled it without the mark seeing it) counts as enabled
/// again when the policy disabled it.
fn reenabled_at(img: &PolicyImage) -> Option<Timestamp> {
    let m = img.mark.as_ref()?;
    m.reenabled_at
        .or_else(|| (img.state == "active").then_some(m.disabled_at))
}

/// Does `r`'s selector hold for `img`?
fn selects(r: &LifecycleRule, img: &PolicyImage) -> bool {
    r.owner.is_none_or(|o| o == img.owner)
        && r.name.as_deref().is_none_or(|n| match n.strip_prefix('~') {
            Some(sub) => img.name.contains(sub),
            None => img.name == n,
        })
        && r.type_.as_deref().is_none_or(|t| t == img.type_)
        && r.os.as_deref().is_none_or(|o| o == img.os)
        && r.public.is_none_or(|p| p == img.public)
        && r.channel
            .as_deref()
            .is_none_or(|c| img.channels.iter().any(|x| x == c))
        && r.tag
            .as_deref()
            .is_none_or(|t| img.tags.iter().any(|x| x == t))
}

/// The images each keep-newest rule retires (by rule index), and the
/// newest of every name such a rule applies to (never retired).
fn keep_newest(
    images: &[PolicyImage],
    cfg: &LifecycleConfig,
) -> (Vec<HashSet<Uuid>>, HashSet<Uuid>) {
    let mut retire = vec![HashSet::new(); cfg.rules.len()];
    let mut newest = HashSet::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        let Some(n) = r.keep_newest else { continue };
        let mut groups: HashMap<(Uuid, &str), Vec<&PolicyImage>> = HashMap::new();
        for img in images
            .iter()
            .filter(|img| matches!(img.state.as_str(), "active" | "disabled") && selects(r, img))
        {
            groups.entry((img.owner, &img.name)).or_default().push(img);
        }
        for group in groups.values_mut() {
            // Newest first.
            group.sort_by_key(|g| std::cmp::Reverse((g.published_at, g.uuid)));
            newest.insert(group[0].uuid);
            for (rank, img) in group.iter().enumerate().skip(n as usize) {
                // Enabled again at T: only versions published after T count.
                let newer_since = match reenabled_at(img) {
                    Some(t) => group[..rank]
                        .iter()
                        .filter(|g| g.published_at.is_some_and(|p| p > t))
                        .count(),
                    None => rank,
                };
                if newer_since as u64 >= n {
                    retire[i].insert(img.uuid);
                }
            }
        }
    }
    (retire, newest)
}

/// Does rule `i`'s condition hold for `img` at `now`? Why, if so.
fn holds(
    i: usize,
    r: &LifecycleRule,
    img: &PolicyImage,
    now: Timestamp,
    kept_newest: &[HashSet<Uuid>],
) -> Option<String> {
    let reenabled = reenabled_at(img);
    let since = |times: &[Option<Timestamp>]| times.iter().flatten().max().copied();
    if let Some(n) = r.not_downloaded_days {
        let last = since(&[img.last_download, img.published_at, reenabled]);
        return last
            .is_none_or(|t| t.plus(days(n)) <= now)
            .then(|| match img.last_download {
                Some(d) => format!("not downloaded for {n} days (last: {d})"),
                None => format!("never downloaded, and {n} days old"),
            });
    }
    if let Some(n) = r.published_days {
        let from = since(&[img.published_at, reenabled]);
        return from
            .is_none_or(|t| t.plus(days(n)) <= now)
            .then(|| format!("published more than {n} days ago"));
    }
    if let Some(n) = r.keep_newest {
        return kept_newest[i]
            .contains(&img.uuid)
            .then(|| format!("{n} newer versions of \"{}\"", img.name));
    }
    None
}

/// What a rule (or the grace) would do to an image: the action, the
/// rule, why, and the delete date of a disable.
type Choice = (Action, String, String, Option<Timestamp>);

/// The first rule that holds for each active image, and the deletions
/// whose grace has passed; with how many the download window and the
/// newest-of-a-name rule kept.
fn choose(
    images: &[PolicyImage],
    cfg: &LifecycleConfig,
    now: Timestamp,
) -> (HashMap<Uuid, Choice>, u64) {
    let (kept_newest, newest) = keep_newest(images, cfg);
    let mut chosen = HashMap::new();
    let mut protected = 0u64;
    let recent = |img: &PolicyImage| {
        img.last_download
            .is_some_and(|d| d.plus(days(cfg.protect_downloaded_days)) > now)
    };
    for img in images {
        let pending = img.mark.as_ref().filter(|m| m.reenabled_at.is_none());
        let choice = match (img.state.as_str(), pending) {
            ("active", _) => cfg.rules.iter().enumerate().find_map(|(i, r)| {
                if !selects(r, img) {
                    return None;
                }
                holds(i, r, img, now, &kept_newest).map(|why| {
                    let after = now.plus(days(r.grace_days));
                    (Action::Disable, r.rule.clone(), why, Some(after))
                })
            }),
            ("disabled", Some(m)) if m.delete_after <= now => Some((
                Action::Delete,
                m.rule.clone(),
                format!(
                    "disabled on {}, grace ended {}",
                    m.disabled_at, m.delete_after
                ),
                None,
            )),
            _ => None,
        };
        if let Some(c) = choice {
            if recent(img) || newest.contains(&img.uuid) {
                protected += 1;
            } else {
                chosen.insert(img.uuid, c);
            }
        }
    }
    (chosen, protected)
}

/// Drop from `chosen` (counting them) the origins of the images that stay,
/// up their chains, and the deletion of an origin whose child is not
/// deleted too (a disabled image still is one).
fn keep_origins(
    images: &[PolicyImage],
    by_uuid: &HashMap<Uuid, &PolicyImage>,
    chosen: &mut HashMap<Uuid, Choice>,
) -> u64 {
    let mut kept = 0;
    for deleting_only in [false, true] {
        // The images an origin must stay for: those not chosen at all;
        // then those not deleted.
        let stays = |c: Option<&Choice>| match c {
            None => true,
            Some(c) => deleting_only && c.0 != Action::Delete,
        };
        let mut todo: Vec<Uuid> = images
            .iter()
            .filter(|i| stays(chosen.get(&i.uuid)))
            .map(|i| i.uuid)
            .collect();
        while let Some(u) = todo.pop() {
            let Some(o) = by_uuid.get(&u).and_then(|i| i.origin) else {
                continue;
            };
            let drop = match chosen.get(&o) {
                Some(c) => !deleting_only || c.0 == Action::Delete,
                None => false,
            };
            if drop {
                chosen.remove(&o);
                kept += 1;
                todo.push(o);
            }
        }
    }
    kept
}

/// The chosen images as steps: deletions first, deepest (a child before
/// its origin) first, then disables.
fn ordered_steps(
    by_uuid: &HashMap<Uuid, &PolicyImage>,
    chosen: HashMap<Uuid, Choice>,
) -> Vec<Step> {
    let depth = |mut u: Uuid| {
        let mut d = 0usize;
        while let Some(o) = by_uuid.get(&u).and_then(|i| i.origin) {
            d += 1;
            if d > by_uuid.len() {
                break; // a cycle (corrupt data): stop counting
            }
            u = o;
        }
        d
    };
    let mut steps: Vec<(usize, Step)> = chosen
        .into_iter()
        .filter_map(|(u, (action, rule, reason, after))| {
            let img = by_uuid.get(&u)?;
            let step = Step {
                uuid: u,
                name: img.name.clone(),
                version: img.version.clone(),
                owner: img.owner,
                bytes: img.bytes,
                last_downloaded_at: img.last_download.map(|t| t.to_string()),
                action,
                rule,
                reason,
                delete_after: after.map(|t| t.to_string()),
            };
            Some((depth(u), step))
        })
        .collect();
    steps.sort_by_key(|(d, s)| (s.action != Action::Delete, std::cmp::Reverse(*d), s.uuid));
    steps.into_iter().map(|(_, s)| s).collect()
}

/// The plan at `now`.
pub fn plan(images: &[PolicyImage], cfg: &LifecycleConfig, now: Timestamp) -> Plan {
    let (mut chosen, mut protected) = choose(images, cfg, now);
    let by_uuid: HashMap<Uuid, &PolicyImage> = images.iter().map(|i| (i.uuid, i)).collect();
    protected += keep_origins(images, &by_uuid, &mut chosen);
    let steps = ordered_steps(&by_uuid, chosen);
    let sum = |a: Action| {
        steps
            .iter()
            .filter(|s| s.action == a)
            .map(|s| s.bytes)
            .sum()
    };
    Plan {
        at: now.to_string(),
        bytes_reclaimed: sum(Action::Delete),
        bytes_after_grace: sum(Action::Disable),
        steps,
        protected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::lifecycle::PolicyMark;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn img(n: u8, name: &str, published: &str) -> PolicyImage {
        PolicyImage {
            uuid: Uuid::from_u128(n as u128),
            owner: Uuid::from_u128(1000),
            name: name.into(),
            version: format!("1.{n}"),
            state: "active".into(),
            type_: "zone-dataset".into(),
            os: "smartos".into(),
            public: true,
            channels: vec![],
            tags: vec!["role=dev".into()],
            published_at: Some(t(published)),
            origin: None,
            bytes: 100 * n as u64,
            last_download: None,
            mark: None,
        }
    }

    fn rule(name: &str) -> LifecycleRule {
        LifecycleRule {
            rule: name.into(),
            ..Default::default()
        }
    }

    fn cfg(rules: Vec<LifecycleRule>) -> LifecycleConfig {
        LifecycleConfig {
            rules,
            ..Default::default()
        }
    }

    fn acted(p: &Plan) -> Vec<(u128, Action)> {
        p.steps
            .iter()
            .map(|s| (s.uuid.as_u128(), s.action))
            .collect()
    }

    #[test]
    fn not_downloaded_for_n_days_with_the_download_window_protected() {
        let now = t("2026-06-01T00:00:00Z");
        let mut old = img(1, "a", "2025-01-01T00:00:00Z");
        old.last_download = Some(t("2026-01-01T00:00:00Z"));
        let never = img(2, "b", "2025-01-01T00:00:00Z");
        let young = img(3, "c", "2026-05-20T00:00:00Z");
        let mut recent = img(4, "d", "2025-01-01T00:00:00Z");
        recent.last_download = Some(t("2026-05-25T00:00:00Z"));
        let r = LifecycleRule {
            not_downloaded_days: Some(90),
            ..rule("cold")
        };
        let p = plan(&[old, never, young, recent], &cfg(vec![r]), now);
        assert_eq!(acted(&p), vec![(1, Action::Disable), (2, Action::Disable)]);
        assert_eq!(
            p.steps[0].delete_after.as_deref(),
            Some("2026-07-01T00:00:00.000Z")
        );
        assert_eq!(p.bytes_after_grace, 300);
        assert_eq!(p.bytes_reclaimed, 0);
        // A published-age rule is held back by a recent download too.
        let mut hot = img(5, "e", "2020-01-01T00:00:00Z");
        hot.last_download = Some(t("2026-05-30T00:00:00Z"));
        let r = LifecycleRule {
            published_days: Some(365),
            ..rule("old")
        };
        let p = plan(&[hot], &cfg(vec![r]), now);
        assert!(p.steps.is_empty());
        assert_eq!(p.protected, 1);
    }

    #[test]
    fn keep_newest_keeps_the_newest_of_each_name_whatever_the_rule() {
        let now = t("2026-06-01T00:00:00Z");
        let imgs: Vec<_> = (1..=4)
            .map(|n| img(n, "base", &format!("2026-0{n}-01T00:00:00Z")))
            .chain([img(9, "other", "2020-01-01T00:00:00Z")])
            .collect();
        let keep = LifecycleRule {
            name: Some("base".into()),
            keep_newest: Some(2),
            ..rule("keep2")
        };
        let p = plan(&imgs, &cfg(vec![keep.clone()]), now);
        assert_eq!(acted(&p), vec![(1, Action::Disable), (2, Action::Disable)]);
        assert!(
            p.steps[0].reason.contains("2 newer versions"),
            "{}",
            p.steps[0].reason
        );
        // An age rule after it never takes the newest of "base" (4), but
        // takes "other" (no keep-newest rule for it) and base's 3.
        let age = LifecycleRule {
            published_days: Some(30),
            ..rule("age")
        };
        let p = plan(&imgs, &cfg(vec![keep, age]), now);
        assert_eq!(
            acted(&p),
            vec![
                (1, Action::Disable),
                (2, Action::Disable),
                (3, Action::Disable),
                (9, Action::Disable)
            ]
        );
        assert_eq!(p.steps[2].rule, "age");
    }

    #[test]
    fn origins_of_images_that_stay_stay_and_deletes_go_child_first() {
        let now = t("2026-06-01T00:00:00Z");
        let base = img(1, "base", "2020-01-01T00:00:00Z");
        let mut child = img(2, "child", "2020-01-01T00:00:00Z");
        child.origin = Some(base.uuid);
        let mut kept = img(3, "kept", "2026-05-31T00:00:00Z");
        kept.origin = Some(child.uuid);
        let r = LifecycleRule {
            published_days: Some(365),
            ..rule("old")
        };
        // `kept` is young: its whole chain stays.
        let p = plan(
            &[base.clone(), child.clone(), kept.clone()],
            &cfg(vec![r.clone()]),
            now,
        );
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(p.protected, 2);
        // Without it, both are disabled; once their grace ends, both are
        // deleted, the child first.
        let mark = |m: &mut PolicyImage| {
            m.state = "disabled".into();
            m.mark = Some(PolicyMark {
                rule: "old".into(),
                disabled_at: t("2026-04-01T00:00:00Z"),
                delete_after: t("2026-05-01T00:00:00Z"),
                reenabled_at: None,
            });
        };
        let p = plan(&[base.clone(), child.clone()], &cfg(vec![r.clone()]), now);
        assert_eq!(acted(&p), vec![(2, Action::Disable), (1, Action::Disable)]);
        let (mut b, mut c) = (base, child);
        mark(&mut b);
        mark(&mut c);
        let p = plan(&[b.clone(), c.clone()], &cfg(vec![r.clone()]), now);
        assert_eq!(acted(&p), vec![(2, Action::Delete), (1, Action::Delete)]);
        assert_eq!(p.bytes_reclaimed, 300);
        // Before the grace ends: nothing.
        let p = plan(
            &[b.clone(), c.clone()],
            &cfg(vec![r.clone()]),
            t("2026-04-15T00:00:00Z"),
        );
        assert!(p.steps.is_empty());
        // Enabled again: not deleted; retired again only when it
        // qualifies counting from then.
        c.state = "active".into();
        c.mark.as_mut().unwrap().reenabled_at = Some(t("2026-05-15T00:00:00Z"));
        let p = plan(&[b.clone(), c.clone()], &cfg(vec![r.clone()]), now);
        assert_eq!(
            acted(&p),
            Vec::<(u128, Action)>::new(),
            "the child stays, so does its origin"
        );
        // A year on, the child qualifies again and is disabled; its origin
        // waits until the child is gone.
        let p = plan(&[b, c], &cfg(vec![r]), t("2027-05-16T00:00:00Z"));
        assert_eq!(acted(&p), vec![(2, Action::Disable)]);
    }

    #[test]
    fn selectors_all_hold() {
        let now = t("2026-06-01T00:00:00Z");
        let mut a = img(1, "dev-build", "2020-01-01T00:00:00Z");
        a.channels = vec!["dev".into()];
        let b = img(2, "release", "2020-01-01T00:00:00Z");
        let r = LifecycleRule {
            name: Some("~dev".into()),
            channel: Some("dev".into()),
            tag: Some("role=dev".into()),
            os: Some("smartos".into()),
            type_: Some("zone-dataset".into()),
            public: Some(true),
            owner: Some(Uuid::from_u128(1000)),
            published_days: Some(1),
            ..rule("dev")
        };
        let p = plan(&[a.clone(), b], &cfg(vec![r.clone()]), now);
        assert_eq!(acted(&p), vec![(1, Action::Disable)]);
        let other_owner = LifecycleRule {
            owner: Some(Uuid::from_u128(7)),
            ..r
        };
        assert!(plan(&[a], &cfg(vec![other_owner]), now).steps.is_empty());
    }
}
