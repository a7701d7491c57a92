//! The image manifest (v2): the internal image record, its states, and its
//! IMGAPI JSON form. Pure data and rules: no I/O here.

pub mod validate;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use validate::{Ctx, validate_manifest};

/// Compression values accepted for image files.
pub const COMPRESSIONS: &[&str] = &["gzip", "bzip2", "xz", "none"];

/// An image's file as stored (admin fields included).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageFile {
    pub sha1: String,
    pub size: u64,
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// `local` or `manta` (IMGAPI's store names).
    pub stor: String,
    /// base64 MD5 of the bytes, served as `Content-MD5`.
    pub content_md5: String,
    /// When the file was stored (RFC 3339), served as `Last-Modified`.
    pub mtime: String,
}

/// An image's icon as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Icon {
    pub sha1: String,
    pub size: u64,
    pub content_type: String,
    pub content_md5: String,
    pub mtime: String,
    pub stor: String,
}

/// Placeholder states (IMGAPI's `creating` / `failed`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placeholder {
    Creating,
    Failed,
}

/// The computed state of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Disabled,
    Unactivated,
    Creating,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Disabled => "disabled",
            State::Unactivated => "unactivated",
            State::Creating => "creating",
            State::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "active" => State::Active,
            "disabled" => State::Disabled,
            "unactivated" => State::Unactivated,
            "creating" => State::Creating,
            "failed" => State::Failed,
            _ => return None,
        })
    }
}

/// The internal image record (what the database keeps as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    pub v: u64,
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<Icon>,
    pub activated: bool,
    pub disabled: bool,
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    #[serde(default)]
    pub files: Vec<ImageFile>,
    #[serde(default)]
    pub acl: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Value>,
    #[serde(default)]
    pub billing_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Placeholders are reaped after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// How to render an image for a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOpts {
    /// `inclAdminFields=true`: add `files[].stor`.
    pub admin_fields: bool,
    /// Accept-Version >= 2 on a server with channels.
    pub channels: bool,
}

impl Image {
    pub fn state(&self) -> State {
        match self.placeholder {
            Some(Placeholder::Creating) => State::Creating,
            Some(Placeholder::Failed) => State::Failed,
            None if !self.activated => State::Unactivated,
            None if self.disabled => State::Disabled,
            None => State::Active,
        }
    }

    /// May `account` see this image (IMGAPI visibility rules)?
    /// `None` is the operator, who sees everything.
    pub fn visible_to(&self, account: Option<Uuid>) -> bool {
        match account {
            None => true,
            Some(a) => {
                self.owner == a || (self.activated && (self.public || self.acl.contains(&a)))
            }
        }
    }

    /// The `Etag` of the image: sha1 of its stored JSON.
    pub fn etag(&self) -> String {
        use sha1::Digest;
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(sha1::Sha1::digest(&json))
    }

    /// The "k=v" strings ListImages' `tag.K=V` filter matches against.
    pub fn tags_search(&self) -> Vec<String> {
        let Some(tags) = &self.tags else {
            return vec![];
        };
        tags.iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                if s.chars().count() > 100 {
                    format!("{k}=")
                } else {
                    format!("{k}={s}")
                }
            })
            .collect()
    }

    /// The IMGAPI JSON of this image. Empty optional fields are omitted.
    pub fn render(&self, opts: RenderOpts) -> Value {
        let mut m = Map::new();
        m.insert("v".into(), json!(self.v));
        m.insert("uuid".into(), json!(self.uuid));
        m.insert("owner".into(), json!(self.owner));
        m.insert("name".into(), json!(self.name));
        m.insert("version".into(), json!(self.version));
        m.insert("state".into(), json!(self.state().as_str()));
        m.insert("disabled".into(), json!(self.disabled));
        m.insert("public".into(), json!(self.public));
        if let Some(p) = &self.published_at {
            m.insert("published_at".into(), json!(p));
        }
        m.insert("type".into(), json!(self.type_));
        m.insert("os".into(), json!(self.os));
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                let mut o = Map::new();
                o.insert("sha1".into(), json!(f.sha1));
                o.insert("size".into(), json!(f.size));
                o.insert("compression".into(), json!(f.compression));
                if let Some(g) = &f.dataset_guid {
                    o.insert("dataset_guid".into(), json!(g));
                }
                if opts.admin_fields {
                    o.insert("stor".into(), json!(f.stor));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("files".into(), Value::Array(files));
        if !self.acl.is_empty() {
            m.insert("acl".into(), json!(self.acl));
        }
        // Like IMGAPI's serializer: optional strings only when non-empty.
        let opt_str = |m: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                m.insert(k.into(), json!(v));
            }
        };
        opt_str(&mut m, "description", &self.description);
        opt_str(&mut m, "homepage", &self.homepage);
        opt_str(&mut m, "eula", &self.eula);
        if self.icon.is_some() {
            m.insert("icon".into(), json!(true));
        }
        opt_str(&mut m, "urn", &self.urn);
        if let Some(r) = &self.requirements {
            m.insert("requirements".into(), r.clone());
        }
        if let Some(u) = &self.users {
            m.insert("users".into(), u.clone());
        }
        // Emitted only when true (IMGAPI: "only if raw value truthy").
        if self.generate_passwords == Some(true) {
            m.insert("generate_passwords".into(), json!(true));
        }
        if let Some(d) = &self.inherited_directories {
            m.insert("inherited_directories".into(), json!(d));
        }
        if let Some(o) = &self.origin {
            m.insert("origin".into(), json!(o));
        }
        opt_str(&mut m, "nic_driver", &self.nic_driver);
        opt_str(&mut m, "disk_driver", &self.disk_driver);
        opt_str(&mut m, "cpu_type", &self.cpu_type);
        if let Some(s) = self.image_size {
            m.insert("image_size".into(), json!(s));
        }
        if let Some(t) = &self.tags {
            m.insert("tags".into(), Value::Object(t.clone()));
        }
        if !self.billing_tags.is_empty() {
            m.insert("billing_tags".into(), json!(self.billing_tags));
        }
        if let Some(t) = &self.traits {
            m.insert("traits".into(), t.clone());
        }
        if self.state() == State::Failed
            && let Some(e) = &self.error
        {
            m.insert("error".into(), e.clone());
        }
        if opts.channels {
            m.insert("channels".into(), json!(self.channels));
        }
        Value::Object(m)
    }
}

/// Normalise an ISO date to `YYYY-MM-DDTHH:MM:SS.mmmZ` (sortable as text).
pub fn normalize_date(s: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDate, Utc};
    let dt: DateTime<Utc> = if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        d.with_timezone(&Utc)
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)?.and_utc()
    } else if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        d.and_utc()
    } else if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        d.with_timezone(&Utc)
    } else {
        return None;
    };
    Some(dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_normalise_and_sort() {
        assert_eq!(
            normalize_date("2013-03-08T10:28:05Z").unwrap(),
            "2013-03-08T10:28:05.000Z"
        );
        assert_eq!(
            normalize_date("2013-03-08").unwrap(),
            "2013-03-08T00:00:00.000Z"
        );
        assert!(normalize_date("notadate").is_none());
        assert!(
            normalize_date("2013-03-08T10:28:05.5Z").unwrap()
                > normalize_date("2013-03-08T10:28:05Z").unwrap()
        );
    }
}
