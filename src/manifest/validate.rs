//! Manifest validation as IMGAPI (node-imgmanifest 3.x) does it: every bad
//! field becomes one `{field, code, message?}` entry.

use serde_json::{Map, Value};

use crate::wire::{FieldCode, FieldFault as FieldError};

mod upgrade;

pub use upgrade::upgrade_v1;

/// Keys CreateImage accepts in its body.
pub const CREATE_KEYS: &[&str] = &[
    "v",
    "owner",
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "icon",
    "type",
    "os",
    "origin",
    "public",
    "disabled",
    "acl",
    "error",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "generate_passwords",
    "inherited_directories",
    "channels",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
    "files",
    "state",
];

/// Keys AdminImportImage accepts on top of CREATE_KEYS.
pub const IMPORT_EXTRA_KEYS: &[&str] = &["uuid", "published_at", "urn"];

/// Fields an account may change with UpdateImage.
pub const MUTABLE: &[&str] = &[
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "public",
    "os",
    "acl",
    "requirements",
    "users",
    "tags",
    "inherited_directories",
    "generate_passwords",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
];

/// Optional fields UpdateImage may delete by giving them as `null`. A
/// `null` for any other field is `{field, Invalid}` (IMGAPI stores the
/// null and its validation refuses it). The zvol fields are deletable only
/// on images that are not zvols (where they are absent anyway).
pub const DELETABLE: &[&str] = &[
    "description",
    "homepage",
    "eula",
    "acl",
    "requirements",
    "users",
    "tags",
    "inherited_directories",
    "generate_passwords",
    "billing_tags",
    "traits",
    "error",
    "origin",
];

/// The fields a zvol requires and any other type must not have.
pub const ZVOL_FIELDS: &[&str] = &["nic_driver", "disk_driver", "cpu_type", "image_size"];

/// Fields only an operator may change with UpdateImage.
pub const ADMIN_MUTABLE: &[&str] = &[
    "state",
    "error",
    "billing_tags",
    "traits",
    "origin",
    "owner",
];

pub const TYPES: &[&str] = &[
    "zone-dataset",
    "lx-dataset",
    "zvol",
    "docker",
    "lxd",
    "other",
];
pub const OSES: &[&str] = &["smartos", "linux", "windows", "bsd", "illumos", "other"];

/// Size limits of a manifest (hardening: every image write happens in the
/// one SQLite writer transaction, so an image record stays small and every
/// check of it cheap). Over a limit is 422 ValidationFailed (CreateImage,
/// AdminImportImage, UpdateImage) or InvalidParameter (AddImageAcl) naming
/// the field. Lengths are in bytes of UTF-8 (or of JSON where said).
///
/// Accounts in `acl`.
pub const MAX_ACL: usize = 1000;
/// Keys in `tags`.
pub const MAX_TAGS: usize = 100;
/// Length of a `tags` key.
pub const MAX_TAG_KEY_LEN: usize = 128;
/// Length of a `tags` value, as JSON.
pub const MAX_TAG_VALUE_LEN: usize = 1024;
/// Items in `billing_tags` (each at most 128 characters, as IMGAPI).
pub const MAX_BILLING_TAGS: usize = 100;
/// Keys in `traits`.
pub const MAX_TRAITS: usize = 100;
/// Length of a `traits` key.
pub const MAX_TRAIT_KEY_LEN: usize = 128;
/// Length of a `traits` value, as JSON.
pub const MAX_TRAIT_VALUE_LEN: usize = 1024;
/// Items in `users`.
pub const MAX_USERS: usize = 100;
/// Length of a `users[].name`.
pub const MAX_USER_NAME_LEN: usize = 128;
/// Size of `requirements`, as JSON.
pub const MAX_REQUIREMENTS_LEN: usize = 16 * 1024;
/// Items in `inherited_directories`.
pub const MAX_INHERITED_DIRECTORIES: usize = 100;
/// Length of an `inherited_directories` item.
pub const MAX_INHERITED_DIRECTORY_LEN: usize = 1024;
/// Size of the whole manifest, as JSON.
pub const MAX_MANIFEST_LEN: usize = 256 * 1024;

/// What the validation needs to know beyond the fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    /// A placeholder (`creating`/`failed`): `type`/`os` may be "null".
    pub placeholder: bool,
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

fn is_iso_date(s: &str) -> bool {
    // ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$
    let b = s.as_bytes();
    let pat = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < pat.len() {
        return false;
    }
    for (i, p) in pat.iter().enumerate() {
        let ok = match p {
            b'd' => b[i].is_ascii_digit(),
            c => b[i] == *c,
        };
        if !ok {
            return false;
        }
    }
    let rest = &b[pat.len()..];
    (rest == b"Z"
        || (rest.len() == 5
            && rest[0] == b'.'
            && rest[1..4].iter().all(u8::is_ascii_digit)
            && rest[4] == b'Z'))
        && crate::manifest::normalize_date(s).is_some()
}

fn is_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > s.find("//").unwrap_or(0) + 2
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ' ' | '-'))
}

fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '-'))
}

fn is_platform_stamp(s: &str) -> bool {
    // YYYYMMDDTHHMMSSZ with year >= 2012
    let b = s.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && s[..4].parse::<u32>().map(|y| y >= 2012).unwrap_or(false)
}

/// Coerce the loose input forms IMGAPI accepts: "true"/"false" for
/// `disabled` and `generate_passwords`, a single `acl` or `billing_tags`
/// string, a numeric-string image_size.
pub fn normalize(raw: &mut Map<String, Value>) {
    for k in ["disabled", "generate_passwords"] {
        if let Some(Value::String(s)) = raw.get(k) {
            let b = match s.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            if let Some(b) = b {
                raw.insert(k.into(), Value::Bool(b));
            }
        }
    }
    for k in ["acl", "billing_tags"] {
        if let Some(Value::String(s)) = raw.get(k) {
            let s = s.clone();
            raw.insert(k.into(), Value::Array(vec![Value::String(s)]));
        }
    }
    if let Some(Value::String(s)) = raw.get("image_size")
        && let Ok(n) = s.parse::<u64>()
    {
        raw.insert("image_size".into(), Value::from(n));
    }
    // `acl` is a set: each account once, first occurrence kept.
    if let Some(Value::Array(items)) = raw.get_mut("acl") {
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        items.retain(|v| match v.as_str() {
            Some(s) => seen.insert(s.to_string()),
            None => true,
        });
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}

/// The limits of an object field (`tags`, `traits`): at most `max` keys,
/// each at most `key_max` bytes, each value at most `value_max` bytes as JSON.
fn check_map(
    errs: &mut Vec<FieldError>,
    field: &str,
    t: &Map<String, Value>,
    max: usize,
    key_max: usize,
    value_max: usize,
) {
    if t.len() > max {
        errs.push(err(
            field,
            FieldCode::Invalid,
            &format!("too many \"{field}\": {}, max {max}", t.len()),
        ));
    } else if t
        .iter()
        .any(|(k, v)| k.len() > key_max || json_len(v) > value_max)
    {
        errs.push(err(
            field,
            FieldCode::Invalid,
            &format!(
                "a \"{field}\" key is longer than {key_max} bytes or a value longer than {value_max} bytes as JSON"
            ),
        ));
    }
}

/// The size limits (`MAX_*`) of the fields present in `raw`, and of `raw`
/// as a whole. Fields of the wrong type are left to `validate_manifest`.
/// Linear in the size of `raw`: callers run it before taking the writer.
pub fn check_limits(raw: &Map<String, Value>) -> Vec<FieldError> {
    use FieldCode::Invalid;
    let mut errs = Vec::new();
    check_acl_and_tag_limits(raw, &mut errs);
    if let Some(Value::Array(a)) = present(raw, "users") {
        check_users_limits(a, &mut errs);
    }
    if let Some(v @ Value::Object(_)) = present(raw, "requirements")
        && json_len(v) > MAX_REQUIREMENTS_LEN
    {
        errs.push(err(
            "requirements",
            Invalid,
            &format!("\"requirements\" is longer than {MAX_REQUIREMENTS_LEN} bytes as JSON"),
        ));
    }
    if let Some(Value::Array(a)) = present(raw, "inherited_directories")
        && (a.len() > MAX_INHERITED_DIRECTORIES
            || a.iter().any(|d| {
                d.as_str()
                    .is_some_and(|d| d.len() > MAX_INHERITED_DIRECTORY_LEN)
            }))
    {
        errs.push(err(
            "inherited_directories",
            Invalid,
            &format!(
                "at most {MAX_INHERITED_DIRECTORIES} \"inherited_directories\" of at most {MAX_INHERITED_DIRECTORY_LEN} bytes each"
            ),
        ));
    }
    let len = serde_json::to_string(raw)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if len > MAX_MANIFEST_LEN {
        errs.push(err(
            "manifest",
            Invalid,
            &format!("the image manifest is {len} bytes as JSON, max {MAX_MANIFEST_LEN}"),
        ));
    }
    errs
}

/// The field `k` of `raw`, unless absent or `null`.
fn present<'a>(raw: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    raw.get(k).filter(|v| !v.is_null())
}

/// [`check_limits`] of `acl`, `tags`, `billing_tags` and `traits`, in
/// that order, onto `errs`.
fn check_acl_and_tag_limits(raw: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    use FieldCode::Invalid;
    if let Some(Value::Array(a)) = present(raw, "acl")
        && a.len() > MAX_ACL
    {
        errs.push(err(
            "acl",
            Invalid,
            &format!("too many accounts in \"acl\": {}, max {MAX_ACL}", a.len()),
        ));
    }
    if let Some(Value::Object(t)) = present(raw, "tags") {
        check_map(
            errs,
            "tags",
            t,
            MAX_TAGS,
            MAX_TAG_KEY_LEN,
            MAX_TAG_VALUE_LEN,
        );
    }
    if let Some(Value::Array(a)) = present(raw, "billing_tags")
        && a.len() > MAX_BILLING_TAGS
    {
        errs.push(err(
            "billing_tags",
            Invalid,
            &format!(
                "too many \"billing_tags\": {}, max {MAX_BILLING_TAGS}",
                a.len()
            ),
        ));
    }
    if let Some(Value::Object(t)) = present(raw, "traits") {
        check_map(
            errs,
            "traits",
            t,
            MAX_TRAITS,
            MAX_TRAIT_KEY_LEN,
            MAX_TRAIT_VALUE_LEN,
        );
    }
}

/// [`check_limits`] of `users` (the array `a`): at most [`MAX_USERS`],
/// each name at most [`MAX_USER_NAME_LEN`] bytes.
fn check_users_limits(a: &[Value], errs: &mut Vec<FieldError>) {
    use FieldCode::Invalid;
    if a.len() > MAX_USERS {
        errs.push(err(
            "users",
            Invalid,
            &format!("too many \"users\": {}, max {MAX_USERS}", a.len()),
        ));
    } else if a.iter().any(|u| {
        u.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.len() > MAX_USER_NAME_LEN)
    }) {
        errs.push(err(
            "users",
            Invalid,
            &format!("a \"users\" name is longer than {MAX_USER_NAME_LEN} bytes"),
        ));
    }
}

fn err(field: &str, code: FieldCode, msg: &str) -> FieldError {
    FieldError::msg(field, code, msg)
}

/// Validate the manifest fields present in `raw` and the required ones.
/// Internal keys (activated, placeholder, files, icon objects) are ignored.
/// A field given as `null` is present and invalid (as in IMGAPI): callers
/// remove the nulls that mean "delete" first. A missing required field is
/// `MissingParameter`.
pub fn validate_manifest(raw: &Map<String, Value>, ctx: Ctx) -> Vec<FieldError> {
    use FieldCode::*;
    let mut errs = Vec::new();
    let get = |k: &str| raw.get(k);
    let is_zvol = get("type").and_then(Value::as_str) == Some("zvol");

    match get("v") {
        None => errs.push(err("v", MissingParameter, "v is required")),
        Some(v) if v.as_u64().is_none() => {
            errs.push(err("v", Invalid, "\"v\" must be a positive integer"))
        }
        _ => {}
    }
    if let Some(v) = get("uuid")
        && !v.as_str().is_some_and(is_uuid)
    {
        errs.push(err("uuid", Invalid, "must be a lowercase UUID"));
    }
    match get("owner") {
        None => errs.push(err("owner", MissingParameter, "owner is required")),
        Some(v) if !v.as_str().is_some_and(is_uuid) => {
            errs.push(err("owner", Invalid, "must be a UUID"))
        }
        _ => {}
    }
    match get("name") {
        None => errs.push(err("name", MissingParameter, "name is required")),
        Some(Value::String(s)) if s.chars().count() > 1024 => {
            errs.push(err("name", Invalid, "image name is too long, max 1024 characters"))
        }
        Some(Value::String(s)) if is_name(s) => {}
        Some(_) => errs.push(err(
            "name",
            Invalid,
            "image name has invalid characters (only alpha-numeric characters and \" \", \".\", \"-\", \"_\" and \"/\" are allowed)",
        )),
    }
    match get("version") {
        None => errs.push(err("version", MissingParameter, "version is required")),
        Some(Value::String(s)) if s.chars().count() > 512 => {
            errs.push(err("version", Invalid, "image version is too long, max 512 characters"))
        }
        Some(Value::String(s)) if is_version(s) => {}
        Some(_) => errs.push(err(
            "version",
            Invalid,
            "image version has invalid characters (only alpha-numeric characters and \".\", \"-\", \"_\", \"+\" and \"/\" are allowed)",
        )),
    }
    match get("description") {
        Some(Value::String(s)) if s.chars().count() > 10240 => errs.push(err(
            "description",
            Invalid,
            "image description is too long, max 10240 characters",
        )),
        Some(Value::String(_)) | None => {}
        Some(_) => errs.push(err("description", Invalid, "must be a string")),
    }
    for k in ["homepage", "eula"] {
        if let Some(v) = get(k)
            && !v.as_str().is_some_and(|s| s.len() <= 1024 && is_url(s))
        {
            errs.push(err(
                k,
                Invalid,
                &format!("invalid image {k} URL (http or https, max 1024 characters)"),
            ));
        }
    }
    for k in ["disabled", "public", "generate_passwords"] {
        if let Some(v) = get(k)
            && !v.is_boolean()
        {
            errs.push(err(k, Invalid, &format!("\"{k}\" must be a boolean")));
        }
    }
    if let Some(v) = get("error")
        && !v.is_object()
    {
        errs.push(err("error", Invalid, "must be an object"));
    }
    if let Some(v) = get("published_at")
        && !v.as_str().is_some_and(is_iso_date)
    {
        errs.push(err(
            "published_at",
            Invalid,
            "published_at date not in \"YYYY-MM-DDTHH:MM:SS(.SSS)Z\" format",
        ));
    }
    let null_ok = |s: &str| ctx.placeholder && s == "null";
    match get("type") {
        None => errs.push(err("type", MissingParameter, "type is required")),
        Some(Value::String(s)) if TYPES.contains(&s.as_str()) || null_ok(s) => {}
        Some(_) => errs.push(err(
            "type",
            Invalid,
            &format!("must be one of: {}", TYPES.join(", ")),
        )),
    }
    match get("os") {
        None => errs.push(err("os", MissingParameter, "os is required")),
        Some(Value::String(s)) if OSES.contains(&s.as_str()) || null_ok(s) => {}
        Some(_) => errs.push(err(
            "os",
            Invalid,
            &format!("must be one of: {}", OSES.join(", ")),
        )),
    }
    if let Some(v) = get("origin")
        && !v.as_str().is_some_and(is_uuid)
    {
        errs.push(err("origin", Invalid, "must be a UUID"));
    }
    if let Some(v) = get("acl") {
        match v.as_array() {
            None => errs.push(err("acl", Invalid, "invalid image \"acl\" (not an array)")),
            Some(items) => {
                if let Some(i) = items.iter().position(|x| !x.as_str().is_some_and(is_uuid)) {
                    errs.push(err(
                        "acl",
                        Invalid,
                        &format!("invalid image \"acl\" (item {i} is not a UUID)"),
                    ));
                }
            }
        }
    }
    if let Some(v) = get("requirements") {
        validate_requirements(v, &mut errs);
    }
    if let Some(v) = get("users") {
        let ok = v.as_array().is_some_and(|a| {
            a.iter().all(|u| {
                u.as_object()
                    .is_some_and(|o| o.len() == 1 && o.get("name").is_some_and(Value::is_string))
            })
        });
        if !ok {
            errs.push(err(
                "users",
                Invalid,
                "must be an array of objects with one key, \"name\"",
            ));
        }
    }
    if let Some(v) = get("billing_tags") {
        let ok = v.as_array().is_some_and(|a| {
            a.iter()
                .all(|t| t.as_str().is_some_and(|s| s.chars().count() <= 128))
        });
        if !ok {
            errs.push(err(
                "billing_tags",
                Invalid,
                "must be an array of strings of at most 128 characters",
            ));
        }
    }
    if let Some(v) = get("traits") {
        let ok = v.as_object().is_some_and(|o| {
            o.values()
                .all(|t| t.is_string() || t.is_boolean() || t.is_array())
        });
        if !ok {
            errs.push(err(
                "traits",
                Invalid,
                "must be an object of string, boolean or array values",
            ));
        }
    }
    if let Some(v) = get("tags") {
        let ok = v.is_object()
            && serde_json::to_string(v)
                .map(|s| s.len() <= 102_400)
                .unwrap_or(false);
        if !ok {
            errs.push(err(
                "tags",
                Invalid,
                "must be an object of at most 102400 characters as JSON",
            ));
        }
    }
    if let Some(v) = get("inherited_directories") {
        if get("type").and_then(Value::as_str) != Some("zone-dataset") {
            errs.push(err(
                "inherited_directories",
                Invalid,
                "only valid for type \"zone-dataset\"",
            ));
        } else if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            errs.push(err(
                "inherited_directories",
                Invalid,
                "must be an array of strings",
            ));
        }
    }
    for k in ["nic_driver", "disk_driver", "cpu_type"] {
        match (get(k), is_zvol) {
            (None, true) => errs.push(err(k, MissingParameter, "required for type \"zvol\"")),
            (Some(v), true) if v.as_str().is_none_or(|s| s.is_empty()) => {
                errs.push(err(k, Invalid, "must be a non-empty string"))
            }
            (Some(_), false) => errs.push(err(k, Invalid, "only valid for type \"zvol\"")),
            _ => {}
        }
    }
    match (get("image_size"), is_zvol) {
        (None, true) => errs.push(err(
            "image_size",
            MissingParameter,
            "required for type \"zvol\"",
        )),
        (Some(v), true) if v.as_u64().is_none_or(|n| n == 0) => errs.push(err(
            "image_size",
            Invalid,
            "must be a positive integer (MiB)",
        )),
        (Some(_), false) => errs.push(err("image_size", Invalid, "only valid for type \"zvol\"")),
        _ => {}
    }
    if let Some(v) = get("channels")
        && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        errs.push(err(
            "channels",
            Invalid,
            "must be an array of channel names",
        ));
    }
    if let Some(v) = get("urn")
        && !v.is_string()
    {
        errs.push(err("urn", Invalid, "must be a string"));
    }
    errs.extend(check_limits(raw));
    errs
}

fn validate_requirements(v: &Value, errs: &mut Vec<FieldError>) {
    use FieldCode::*;
    let Some(o) = v.as_object() else {
        errs.push(err("requirements", Invalid, "must be an object"));
        return;
    };
    for (k, val) in o {
        let field = format!("requirements.{k}");
        let ok = match k.as_str() {
            "networks" => val.as_array().is_some_and(|a| {
                a.iter().all(|n| {
                    n.as_object().is_some_and(|n| {
                        n.len() == 2
                            && n.get("name").is_some_and(Value::is_string)
                            && n.get("description").is_some_and(Value::is_string)
                    })
                })
            }),
            "brand" => val.is_string(),
            "ssh_key" => val.is_boolean(),
            "min_ram" | "max_ram" => val.as_u64().is_some_and(|n| n > 0),
            "min_platform" | "max_platform" => val.as_object().is_some_and(|p| {
                !p.is_empty()
                    && p.values()
                        .all(|s| s.as_str().is_some_and(is_platform_stamp))
            }),
            "bootrom" => {
                matches!(val.as_str(), Some("bios" | "uefi"))
                    && o.get("brand").and_then(Value::as_str) == Some("bhyve")
            }
            _ => {
                errs.push(err(k, Invalid, &format!("unsupported requirement \"{k}\"")));
                continue;
            }
        };
        if !ok {
            errs.push(err(&field, Invalid, &format!("invalid image \"{field}\"")));
        }
    }
    if let (Some(min), Some(max)) = (
        o.get("min_ram").and_then(Value::as_u64),
        o.get("max_ram").and_then(Value::as_u64),
    ) && min > max
    {
        errs.push(err(
            "requirements.max_ram",
            Invalid,
            &format!("min_ram must be <= max_ram, but: min_ram={min}, max_ram={max}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Map<String, Value> {
        json!({"v":2,"owner":"91ba0e64-2547-11e2-a972-df579e5fddb3","name":"what-a_piece.of junk",
               "version":"1.0.0","os":"smartos","type":"zone-dataset"})
        .as_object()
        .unwrap()
        .clone()
    }

    fn fields(m: &Map<String, Value>) -> Vec<(String, FieldCode)> {
        validate_manifest(m, Ctx::default())
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn good_manifest_passes() {
        assert!(fields(&base()).is_empty());
    }

    #[test]
    fn missing_name_and_bad_os() {
        let mut m = base();
        m.remove("name");
        m.insert("os".into(), json!("amiga"));
        let f = fields(&m);
        assert!(f.contains(&("name".into(), FieldCode::MissingParameter)));
        assert!(f.contains(&("os".into(), FieldCode::Invalid)));
    }

    #[test]
    fn zvol_needs_drivers() {
        let mut m = base();
        m.insert("type".into(), json!("zvol"));
        let f = fields(&m);
        for k in ["nic_driver", "disk_driver", "cpu_type", "image_size"] {
            assert!(f.contains(&(k.into(), FieldCode::MissingParameter)), "{k}");
        }
    }

    #[test]
    fn acl_items_must_be_uuids() {
        let mut m = base();
        m.insert(
            "acl".into(),
            json!(["91ba0e64-2547-11e2-a972-df579e5fddb3", "nope"]),
        );
        let e = validate_manifest(&m, Ctx::default());
        assert_eq!(e[0].field, "acl");
        assert!(e[0].message.as_deref().unwrap().contains("item 1"));
    }

    #[test]
    fn requirements_checked_per_key() {
        let mut m = base();
        m.insert(
            "requirements".into(),
            json!({"min_ram": 1024, "max_ram": 512, "frob": 1,
            "min_platform": {"7.0": "20130308T102805Z"}}),
        );
        let f = fields(&m);
        assert!(f.contains(&("requirements.max_ram".into(), FieldCode::Invalid)));
        assert!(f.contains(&("frob".into(), FieldCode::Invalid)));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn acl_is_a_set_and_sizes_are_bounded() {
        let mut m = base();
        let a = "91ba0e64-2547-11e2-a972-df579e5fddb3";
        m.insert("acl".into(), json!([a, a]));
        normalize(&mut m);
        assert_eq!(m["acl"], json!([a]));
        let many: Vec<String> = (0..=MAX_ACL)
            .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
            .collect();
        m.insert("acl".into(), json!(many));
        m.insert(
            "users".into(),
            json!([{"name": "n".repeat(MAX_USER_NAME_LEN + 1)}]),
        );
        let f = fields(&m);
        assert!(f.contains(&("acl".into(), FieldCode::Invalid)), "{f:?}");
        assert!(f.contains(&("users".into(), FieldCode::Invalid)), "{f:?}");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn null_is_invalid_and_missing_is_missing() {
        let mut m = base();
        m.insert("os".into(), Value::Null);
        m.insert("acl".into(), Value::Null);
        m.remove("name");
        let f = fields(&m);
        assert!(f.contains(&("os".into(), FieldCode::Invalid)), "{f:?}");
        assert!(f.contains(&("acl".into(), FieldCode::Invalid)), "{f:?}");
        assert!(f.contains(&("name".into(), FieldCode::MissingParameter)));
        m.remove("v");
        assert!(fields(&m).contains(&("v".into(), FieldCode::MissingParameter)));
    }

    #[test]
    fn single_strings_become_arrays_but_public_stays_strict() {
        let mut m = base();
        m.insert("billing_tags".into(), json!("x"));
        m.insert("public".into(), json!("true"));
        m.insert("disabled".into(), json!("false"));
        normalize(&mut m);
        assert_eq!(m["billing_tags"], json!(["x"]));
        assert_eq!(m["disabled"], json!(false));
        assert_eq!(fields(&m), [("public".to_string(), FieldCode::Invalid)]);
    }

    #[test]
    fn v1_upgrade() {
        let mut m = json!({"name":"fauxnodejs","version":"1.4.0","os":"smartos","type":"zone-dataset",
            "creator_uuid":"352971aa-31ba-496c-9ade-a379feaecd52","created_at":"2012-10-11T23:50:24.000Z",
            "restricted_to_uuid":"91ba0e64-2547-11e2-a972-df579e5fddb3", "cloud_name":"sdc",
            "files":[{"path":"fauxnodejs-1.4.0.zfs.bz2","sha1":"abc","size":3}]})
        .as_object().unwrap().clone();
        upgrade_v1(&mut m);
        assert_eq!(m["v"], json!(2));
        assert_eq!(m["owner"], json!("352971aa-31ba-496c-9ade-a379feaecd52"));
        assert_eq!(m["public"], json!(false));
        assert_eq!(m["published_at"], json!("2012-10-11T23:50:24.000Z"));
        assert_eq!(m["files"][0]["compression"], json!("bzip2"));
        assert!(!m.contains_key("cloud_name"));
        assert!(fields(&m).is_empty());
    }
}
