//! The JSON shapes on the wire, shared by the server (which renders through
//! them) and by clients (which parse server responses with them): the error
//! body, an image, an upload's info, a registration's file reference,
//! Ping, and an import job. Pure data: no axum, no database, no I/O.
//! Field order is the order of the keys in the server's responses. Their `ToSchema` derives are the
//! schemas of `docs/openapi.json` (see `api::openapi`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of every error response: `{code, message, errors?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// One of the codes in `docs/errors.md`, e.g. `ResourceNotFound`.
    #[schema(example = "ResourceNotFound")]
    pub code: String,
    pub message: String,
    /// Per-field details (ValidationFailed, InvalidParameter, ChecksumMismatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// One item of an error body's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    /// A [`FieldCode`]; kept as text so that a client reads codes newer
    /// than itself.
    #[schema(value_type = FieldCode, inline)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ping {
    /// Always `pong`.
    #[schema(value_type = Pong, inline)]
    pub ping: String,
    pub version: String,
    pub imgapi: bool,
    /// Only for authenticated callers (or with auth `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// An image as IMGAPI serves it (manifest v2). Empty optional fields are
/// omitted, as IMGAPI's serializer does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub v: u64,
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    /// An [`ImageState`].
    #[schema(value_type = ImageState, inline)]
    pub state: String,
    pub disabled: bool,
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    pub os: String,
    #[serde(default)]
    #[schema(required = true)]
    pub files: Vec<ImageFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    /// `true` when the image has an icon (`GET /images/{uuid}/icon`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub icon: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub requirements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub users: Option<Value>,
    /// Only present when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub billing_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub traits: Option<Value>,
    /// Only in state `failed`: `{code?, message}` (a [`JobError`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// With Accept-Version >= 2 on a server with channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// Admin field: how many times the file was downloaded (served to its
    /// last byte, redirected to, or exported); counts reach the database
    /// within `downloads.stats_flush_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<u64>,
    /// Admin field: when the file was last downloaded; absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_downloaded_at: Option<String>,
}

/// One item of an image's `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageFile {
    pub sha1: String,
    pub size: u64,
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// With `inclAdminFields=true`: `local` or `manta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stor: Option<String>,
}

/// A tus upload session: `GET /uploads/{id}/info`, and each item of
/// `GET /uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Upload)]
pub struct UploadInfo {
    pub id: Uuid,
    /// `null` for an operator's upload.
    #[schema(required = true)]
    pub owner: Option<Uuid>,
    pub offset: u64,
    pub length: u64,
    /// An [`UploadState`].
    #[schema(value_type = UploadState, inline)]
    pub state: String,
    pub expires_at: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// tus concatenation: `partial` or `final` (absent on an ordinary upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<String>,
    /// On a partial upload: the final upload that uses it, once one does.
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_upload: Option<Uuid>,
    /// On a final upload: its partial uploads, in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partials: Option<Vec<Uuid>>,
    /// Progress of the S3 multipart upload behind the session (S3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_upload_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in_parts: Option<u64>,
}

/// A registration's file reference, the one item of `files` in a
/// `POST /images` that registers stored bytes: an upload id or a storage
/// path, and the digests the client states for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FileRef)]
pub struct RegistrationFile {
    /// A complete upload of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Uuid>,
    /// `/{login or account uuid}/stor/...` (manta) or `/assets/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// base64 MD5 of the bytes (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Compression>, inline)]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
}

/// The `error` of an image whose registration failed (state `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// One channel of `GET /channels` (servers with channels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Channel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The channel of requests that name none (only present when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

/// `POST /images/{uuid}?action=export`: where the image was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportResult {
    pub manta_url: String,
    pub image_path: String,
    pub manifest_path: String,
}

/// AdminImportRemoteImage's answer (with a `workflow-api` header)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportStarted {
    pub image_uuid: Uuid,
    pub job_uuid: Uuid,
}

/// An import job (`GET /jobs/{uuid}`, `GET /images/{uuid}/jobs`), in the
/// shape of a workflow job: what sdc-clients' `*AndWait` helpers poll,
/// plus byte counters for progress. Every key is always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub uuid: Uuid,
    /// The workflow's name: `import-remote-image`.
    pub name: String,
    /// `import-remote-image`.
    pub task: String,
    /// A [`JobExecution`].
    #[schema(value_type = JobExecution, inline)]
    pub execution: String,
    /// The image the job imports (its origins are imported first).
    pub image_uuid: Uuid,
    pub params: JobParams,
    /// Empty until the job is finished; then one step, `import_image`.
    pub chain_results: Vec<JobChainResult>,
    /// bytes fetched from the source so far (progress)
    pub bytes_received: u64,
    /// size of every file to import
    #[schema(required = true)]
    pub bytes_total: Option<u64>,
    pub created_at: String,
    #[schema(required = true)]
    pub started_at: Option<String>,
    #[schema(required = true)]
    pub finished_at: Option<String>,
}

/// A job's `params`: what it was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobParams {
    pub task: String,
    pub image_uuid: Uuid,
    /// The source IMGAPI's URL.
    pub source: String,
    /// The origin images imported before `image_uuid` (origins first).
    pub origins: Vec<Uuid>,
    pub skip_owner_check: bool,
}

/// One step of a finished job's `chain_results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobChainResult {
    pub name: String,
    /// `Image <uuid> imported` when the job succeeded, else empty.
    pub result: String,
    pub error: JobChainError,
    #[schema(required = true)]
    pub started_at: Option<String>,
    #[schema(required = true)]
    pub finished_at: Option<String>,
}

/// A step's `error`: the failure, or `""` (workflow's form for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JobChainError {
    /// The failure; `name` and `code` are the same IMGAPI error code.
    Failed {
        name: String,
        code: String,
        message: String,
    },
    /// No failure: `""`.
    None(String),
}

/// A job's execution state (schema only: `Job::execution` is text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum JobExecution {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// The codes of an error body's `errors[].code`. (A client reads the code
/// as text, [`FieldError::code`], so that it reads codes newer than itself;
/// the server writes these.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum FieldCode {
    MissingParameter,
    Invalid,
    NotAllowed,
    Missing,
    Mismatch,
    /// AdminImportLxdImage's malformed `alias` (IMGAPI's own code there).
    InvalidParameter,
}

/// One item of `errors[]` as the server builds it: a field and one of the
/// [`FieldCode`]s (serialised as [`FieldError`] reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldFault {
    pub field: String,
    pub code: FieldCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FieldFault {
    pub fn new(field: impl Into<String>, code: FieldCode) -> Self {
        FieldFault {
            field: field.into(),
            code,
            message: None,
        }
    }
    pub fn msg(field: impl Into<String>, code: FieldCode, message: impl Into<String>) -> Self {
        FieldFault {
            field: field.into(),
            code,
            message: Some(message.into()),
        }
    }
}

/// Ping's answer (schema only).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Pong {
    Pong,
}

/// An image's state (schema only: `Image::state` is text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ImageState {
    Active,
    Unactivated,
    Disabled,
    Creating,
    Failed,
}

/// An upload's state (schema only: `UploadInfo::state` is text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum UploadState {
    Uploading,
    Complete,
    Failed,
    Registered,
}

/// The compressions of an image file (schema only).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Compression {
    Bzip2,
    Gzip,
    Xz,
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_round_trips_and_omits_empty_errors() {
        let b = ErrorBody {
            code: "ResourceNotFound".into(),
            message: "no".into(),
            errors: None,
        };
        let s = serde_json::to_string(&b).unwrap();
        assert_eq!(s, r#"{"code":"ResourceNotFound","message":"no"}"#);
        assert_eq!(serde_json::from_str::<ErrorBody>(&s).unwrap(), b);
    }

    #[test]
    fn image_parses_a_minimal_imgapi_image() {
        let j = r#"{"v":2,"uuid":"00000000-0000-0000-0000-000000000001",
            "owner":"00000000-0000-0000-0000-000000000002","name":"n","version":"1",
            "state":"active","disabled":false,"public":true,"type":"zone-dataset",
            "os":"smartos","files":[{"sha1":"x","size":1,"compression":"none"}],"icon":true}"#;
        let img: Image = serde_json::from_str(j).unwrap();
        assert!(img.icon && img.acl.is_empty() && img.channels.is_none());
        let back = serde_json::to_value(&img).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(j).unwrap());
    }
}

/// A count of things and the bytes they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountBytes {
    pub count: u64,
    pub bytes: u64,
}

/// An account's quotas; `null`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    /// Bytes of its images (files and icons) plus its unfinished uploads.
    #[schema(required = true, nullable = true)]
    pub max_bytes: Option<u64>,
    /// Its images, in any state.
    #[schema(required = true, nullable = true)]
    pub max_images: Option<u64>,
}

/// `GET /usage/{account}`: what one account uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub account: Uuid,
    /// Its login, if it is an account of this server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Its images by state (only the states it has images in).
    pub images: std::collections::BTreeMap<String, CountBytes>,
    /// All its images: how many, and the bytes they keep in the stores
    /// (files and icons, each stored object once).
    pub images_total: CountBytes,
    /// Its uploads not registered to an image, and the bytes they hold or
    /// will hold (their `Upload-Length`).
    pub uploads: CountBytes,
    /// `images_total.bytes + uploads.bytes`: what the bytes quota counts.
    pub bytes: u64,
    /// Downloads of its images in the last 30 days (counts reach the
    /// database within `downloads.stats_flush_secs`).
    pub downloads_30d: u64,
    pub quota: Quota,
}

/// `GET /usage`: one account of the list, largest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountUsage {
    pub account: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    pub images_total: CountBytes,
    pub uploads: CountBytes,
    /// `images_total.bytes + uploads.bytes`.
    pub bytes: u64,
}
