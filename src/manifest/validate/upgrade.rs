//! Upgrading a v1 manifest (DSAPI "dsmanifest") to v2, as imgmanifest's
//! `upgradeManifest` does.

use serde_json::{Map, Value};

/// Upgrade a v1 (DSAPI "dsmanifest", has `creator_uuid` and no `v`)
/// manifest to v2 in place, as imgmanifest's `upgradeManifest` does.
pub fn upgrade_v1(raw: &mut Map<String, Value>) {
    let has_v = raw
        .get("v")
        .is_some_and(|v| !v.is_null() && v != &Value::from(0));
    if has_v || raw.get("creator_uuid").is_none_or(|c| c.is_null()) {
        return;
    }
    upgrade_owner_and_visibility(raw);
    upgrade_published_at(raw);
    if let Some(Value::Array(files)) = raw.get_mut("files") {
        for f in files.iter_mut() {
            if let Some(f) = f.as_object_mut() {
                upgrade_file(f);
            }
        }
    }
    if let Some(Value::String(s)) = raw.get("image_size")
        && let Ok(n) = s.parse::<u64>()
    {
        raw.insert("image_size".into(), Value::from(n));
    }
    for k in ["platform_type", "updated_at", "_url", "published"] {
        raw.remove(k);
    }
    raw.insert("v".into(), Value::from(2));
}

/// v1 → v2: `creator_uuid` is the owner (the other v1 owner fields go),
/// `restricted_to_uuid` makes a private image with that acl (else it is
/// public), and `disabled` becomes a boolean.
fn upgrade_owner_and_visibility(raw: &mut Map<String, Value>) {
    if let Some(c) = raw.remove("creator_uuid") {
        raw.entry("owner").or_insert(c);
    }
    for k in [
        "vendor_uuid",
        "creator_name",
        "cloud_name",
        "creator_admin",
        "owner_uuid",
    ] {
        raw.remove(k);
    }
    match raw.remove("restricted_to_uuid") {
        Some(r) if !r.is_null() && r != Value::String(String::new()) => {
            raw.insert("public".into(), Value::Bool(false));
            raw.insert("acl".into(), Value::Array(vec![r]));
        }
        _ => {
            raw.insert("public".into(), Value::Bool(true));
        }
    }
    let disabled = match raw.get("disabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty() && s != "false",
        Some(_) => true,
    };
    raw.insert("disabled".into(), Value::Bool(disabled));
}

/// v1 → v2: `created_at` is the `published_at` when there is none, and a
/// date to the minute gains its seconds.
fn upgrade_published_at(raw: &mut Map<String, Value>) {
    let created = raw.remove("created_at");
    if raw
        .get("published_at")
        .is_none_or(|p| p.as_str().is_none_or(|s| s.is_empty()))
        && let Some(c) = created
    {
        raw.insert("published_at".into(), c);
    }
    // "2012-01-01T00:00Z" (minutes only) gains ":00" seconds.
    if let Some(Value::String(p)) = raw.get_mut("published_at")
        && p.len() == 17
        && p.ends_with('Z')
        && p.as_bytes()[13] == b':'
    {
        p.pop();
        p.push_str(":00Z");
    }
}

/// v1 → v2 of a file: its compression (when not given) from its name's
/// extension; no more `path` or `url`.
fn upgrade_file(f: &mut Map<String, Value>) {
    let name = f
        .get("path")
        .or_else(|| f.get("url"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if f.get("compression")
        .is_none_or(|c| c.as_str().is_none_or(|s| s.is_empty()))
    {
        let c = if name.ends_with(".bz2") {
            "bzip2"
        } else if name.ends_with(".gz") {
            "gzip"
        } else if name.ends_with(".xz") {
            "xz"
        } else {
            "none"
        };
        f.insert("compression".into(), Value::String(c.into()));
    }
    f.remove("path");
    f.remove("url");
}
