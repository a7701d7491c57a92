//! The image manifest (v2): the internal image record, its states, and its
//! IMGAPI JSON form. Pure data and rules: no I/O here.

pub mod validate;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use validate::{Ctx, validate_manifest};

use crate::store::StoreName;

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
    pub stor: StoreName,
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
    pub stor: StoreName,
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
    /// The bytes a registration will bring (a file at a path, another
    /// account's upload), counted as the image's while it is `creating`,
    /// so that quotas weigh them from the registration's POST on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_bytes: Option<u64>,
    /// Its downloads, when read with them (admin fields). Kept beside the
    /// manifest (`image_downloads`), never in it.
    #[serde(skip)]
    pub downloads: Option<DownloadStats>,
}

/// An image's downloads: how many, and the last one's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadStats {
    pub count: u64,
    pub last_at: crate::clock::Timestamp,
}

impl DownloadStats {
    /// `self` and `other` together (counts added, the later time kept).
    pub fn merged(self, other: DownloadStats) -> DownloadStats {
        DownloadStats {
            count: self.count.saturating_add(other.count),
            last_at: self.last_at.max(other.last_at),
        }
    }
}

/// How to render an image for a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOpts {
    /// `inclAdminFields=true`: add `files[].stor`.
    pub admin_fields: bool,
    /// Accept-Version >= 2 on a server with channels.
    pub channels: bool,
}

impl RenderOpts {
    /// Is this the rendering the database stores (see
    /// [`Image::listed_json`])? Any other one is rendered per request.
    pub fn is_stored(self) -> bool {
        self == RenderOpts::default()
    }
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

    /// This image as an element of a ListImages body: its wire form
    /// (`to_wire`) pretty-printed one level of indentation in, as
    /// `serde_json::to_vec_pretty` writes it inside the array, appended to
    /// `buf`. The body is `[\n  ` + the elements joined by `,\n  ` +
    /// `\n]`. The database keeps this form for `RenderOpts::default()`
    /// ([`Image::listed_json`]), so that a list needing no other rendering
    /// is built from it without parsing.
    pub fn write_listed(&self, opts: RenderOpts, buf: &mut Vec<u8>) -> serde_json::Result<()> {
        use serde_json::ser::{Formatter, PrettyFormatter};
        // A pretty formatter that has opened the array and its first value:
        // what follows is indented as the array's element.
        let mut f = PrettyFormatter::new();
        f.begin_array(&mut std::io::sink())
            .map_err(serde_json::Error::io)?;
        f.begin_array_value(&mut std::io::sink(), true)
            .map_err(serde_json::Error::io)?;
        self.to_wire(opts)
            .serialize(&mut serde_json::Serializer::with_formatter(buf, f))
    }

    /// [`Image::write_listed`] with the default rendering: what the
    /// database stores beside the manifest (`images.wire`).
    pub fn listed_json(&self) -> serde_json::Result<String> {
        let mut buf = Vec::with_capacity(1024);
        self.write_listed(RenderOpts::default(), &mut buf)?;
        // serde_json writes UTF-8 only.
        String::from_utf8(buf).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
    }

    /// What this image keeps in the stores: its files' and its icon's
    /// bytes, and while it is being created the bytes its registration
    /// will bring (usage and quotas count these).
    pub fn stored_bytes(&self) -> u64 {
        let reserved = match self.placeholder {
            Some(Placeholder::Creating) => self.reserved_bytes,
            _ => None,
        };
        self.files
            .iter()
            .map(|f| f.size)
            .chain(self.icon.iter().map(|i| i.size))
            .chain(reserved)
            .fold(0, u64::saturating_add)
    }

    /// The IMGAPI JSON of this image (see `to_wire`).
    pub fn render(&self, opts: RenderOpts) -> Value {
        serde_json::to_value(self.to_wire(opts)).unwrap_or(Value::Null)
    }

    /// This image as IMGAPI serves it. Like IMGAPI's serializer: optional
    /// strings only when non-empty, `generate_passwords` only when true,
    /// `error` only in state failed, `files[].stor` only for admin fields,
    /// `channels` only with channels on.
    pub fn to_wire(&self, opts: RenderOpts) -> crate::wire::Image {
        use crate::wire;
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let files = self
            .files
            .iter()
            .map(|f| wire::ImageFile {
                sha1: f.sha1.clone(),
                size: f.size,
                compression: f.compression.clone(),
                dataset_guid: f.dataset_guid.clone(),
                stor: opts.admin_fields.then(|| f.stor.to_string()),
            })
            .collect();
        let state = self.state();
        wire::Image {
            v: self.v,
            uuid: self.uuid,
            owner: self.owner,
            name: self.name.clone(),
            version: self.version.clone(),
            state: state.as_str().into(),
            disabled: self.disabled,
            public: self.public,
            published_at: self.published_at.clone(),
            type_: self.type_.clone(),
            os: self.os.clone(),
            files,
            acl: self.acl.clone(),
            description: non_empty(&self.description),
            homepage: non_empty(&self.homepage),
            eula: non_empty(&self.eula),
            icon: self.icon.is_some(),
            urn: non_empty(&self.urn),
            requirements: self.requirements.clone(),
            users: self.users.clone(),
            generate_passwords: (self.generate_passwords == Some(true)).then_some(true),
            inherited_directories: self.inherited_directories.clone(),
            origin: self.origin,
            nic_driver: non_empty(&self.nic_driver),
            disk_driver: non_empty(&self.disk_driver),
            cpu_type: non_empty(&self.cpu_type),
            image_size: self.image_size,
            tags: self.tags.clone(),
            billing_tags: self.billing_tags.clone(),
            traits: self.traits.clone(),
            error: self.error.clone().filter(|_| state == State::Failed),
            channels: opts.channels.then(|| self.channels.clone()),
            downloads: opts
                .admin_fields
                .then(|| self.downloads.map_or(0, |d| d.count)),
            last_downloaded_at: self
                .downloads
                .filter(|_| opts.admin_fields)
                .map(|d| d.last_at.to_string()),
        }
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

/// The system clock's now as `YYYY-MM-DDTHH:MM:SS.mmmZ`, for bookkeeping
/// stamps outside the services (account rows, import jobs). The services
/// read domain time from their injected `crate::clock::Clock`.
pub fn now_iso() -> String {
    crate::clock::Clock::System.timestamp().to_string()
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
