//! The parameters of the OpenAPI document that several endpoints share
//! (`params(super::openapi::Account, ...)` in a handler's
//! `#[utoipa::path]`), and the query parameters of the endpoints that take
//! many. The handlers read parameters through `Params`; these types exist
//! only to describe them.

#![allow(dead_code)] // Fields and variants are read by the derives only.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Required, Schema};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// One parameter.
fn param(
    name: &str,
    at: ParameterIn,
    required: bool,
    description: &str,
    schema: Schema,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn uuid() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

/// `p` with named `examples` (utoipa's `Parameter` has no field for them;
/// its extensions are written as they are). scripts/fuzz.sh seeds these.
fn with_examples(mut p: Parameter, examples: Value) -> Parameter {
    p.extensions = Some(Extensions::from_iter([("examples", examples)]));
    p
}

/// Unit types whose `IntoParams` is the one parameter given.
macro_rules! shared_params {
    ($($(#[$doc:meta])* $name:ident => $param:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![$param]
            }
        }
    )*};
}

/// The active public image and the unactivated one scripts/fuzz.sh seeds.
const SEEDED_ACTIVE: &str = "f0f0f0f0-0000-4000-8000-000000000001";
const SEEDED_UNACTIVATED: &str = "f0f0f0f0-0000-4000-8000-000000000002";

shared_params! {
    /// `?account=`.
    Account => param("account", ParameterIn::Query, false,
        "Act for this account (visibility: its own images, active public ones, active private \
         ones whose acl holds it). Not a UUID: 422 InvalidParameter.", uuid());
    /// `?channel=`.
    ChannelParam => param("channel", ParameterIn::Query, false,
        "On a server with channels: the channel to work in (default: the default channel; `*` = \
         any, reads only); unknown: 422 ValidationFailed. Ignored on a server without channels.",
        string().into());
    /// `?inclAdminFields=`.
    InclAdminFields => param("inclAdminFields", ParameterIn::Query, false,
        "Add admin-only fields (files[].stor). Needs authentication (401 in token mode without a \
         token). Not true/false: 422.",
        ObjectBuilder::new().schema_type(Type::Boolean).into());
    /// The `{uuid}` of `/images/{uuid}...`.
    ImageUuid => with_examples(
        param("uuid", ParameterIn::Path, true,
            "The image uuid. Anything else, or an image the caller may not see, is 404.", uuid()),
        json!({
            "active": {"summary": "the active public image scripts/fuzz.sh seeds", "value": SEEDED_ACTIVE},
            "unactivated": {"summary": "the unactivated image scripts/fuzz.sh seeds", "value": SEEDED_UNACTIVATED},
        }));
    /// The `{id}` of `/uploads/{id}...`.
    UploadId => param("id", ParameterIn::Path, true,
        "The upload id (from Location of POST /uploads). Unknown, reaped or foreign: 404 \
         UploadNotFound.", uuid());
    /// The `{uuid}` of `/jobs/{uuid}`.
    JobUuid => ParameterBuilder::new()
        .name("uuid")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(uuid()))
        .build();
    /// The `{uuid}` of `/datasets/{uuid}...`.
    DatasetUuid => with_examples(
        ParameterBuilder::new()
            .name("uuid")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(uuid()))
            .build(),
        json!({"active": {"value": SEEDED_ACTIVE}}));
    /// The `{file}` of `/datasets/{uuid}/{file}`.
    DatasetFile => with_examples(
        param("file", ParameterIn::Path, true,
            "NAME-VERSION.zfs[.bz2|.gz|.xz], as in the dataset's files[0].path", string().into()),
        json!({"active": {"value": "fuzz-1.0.0.zfs"}}));
    /// `Accept-Version`.
    AcceptVersion => param("Accept-Version", ParameterIn::Header, false,
        "A semver range; the server speaks 1.0.0 and 2.0.0. None means ~1. Unsatisfiable: 400 \
         InvalidVersion. Honoured by every endpoint.",
        string().examples([json!("~2")]).into());
    /// `If-Match`.
    IfMatch => param("If-Match", ParameterIn::Header, false,
        "Entity tags (or *); none matching: 412 PreconditionFailed.", string().into());
    /// `If-None-Match`.
    IfNoneMatch => param("If-None-Match", ParameterIn::Header, false,
        "Entity tags (or *); one matching: 304.", string().into());
    /// `Tus-Resumable`.
    TusResumable => param("Tus-Resumable", ParameterIn::Header, true,
        "Must be 1.0.0; missing or other: 412 TusVersionUnsupported (with Tus-Version).",
        string().enum_values(Some(["1.0.0"])).into());
    /// `Upload-Checksum`.
    UploadChecksum => param("Upload-Checksum", ParameterIn::Header, false,
        "`<md5|sha1|sha256> <base64 digest>` of this request's bytes; mismatch: 460 and the chunk \
         is discarded; malformed or other algorithm: 400 InvalidHeader.",
        string().examples([json!("md5 1B2M2Y8AsgTpgAmY7PhCfg==")]).into());
    /// `Range`.
    RangeHeader => param("Range", ParameterIn::Header, false,
        "`bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX`: 206 with Content-Range; outside \
         the data: 416 with `Content-Range: bytes */SIZE`. Several ranges or another unit: the \
         whole body.",
        string().examples([json!("bytes=0-99")]).into());
}

/// ListImages' filters and paging.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListImagesQuery {
    /// Only this owner's images (not a UUID: matches nothing)
    owner: Option<Uuid>,
    /// Other values: 422
    #[param(inline, default = "active")]
    state: Option<StateFilter>,
    /// Exact name, or `~substring`
    name: Option<String>,
    /// Exact version, or `~substring`
    version: Option<String>,
    /// Type, or `!type` for all but it
    r#type: Option<String>,
    os: Option<String>,
    public: Option<bool>,
    /// Not a UUID: 422
    origin: Option<Uuid>,
    #[param(style = Form, explode)]
    billing_tag: Option<Vec<String>>,
    /// At most 1000 (larger values are capped); not an integer: 422
    #[param(default = 1000)]
    limit: Option<u64>,
    /// An image uuid (404 if unknown) or a date: list from its published_at
    /// on (inclusive); neither: 422
    marker: Option<String>,
    /// Other values: 422
    #[param(inline)]
    sort: Option<SortOrder>,
    /// Admin filter (authenticated callers): images never downloaded, or
    /// last downloaded before this date; not a date: 422
    last_downloaded_before: Option<String>,
    /// Admin filter (authenticated callers): images last downloaded at or
    /// after this date; not a date: 422
    last_downloaded_since: Option<String>,
}

/// ListImages' `state`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    Active,
    Unactivated,
    Disabled,
    Creating,
    Failed,
    All,
}

/// ListImages' `sort`.
#[derive(Serialize, ToSchema)]
pub enum SortOrder {
    #[serde(rename = "published_at")]
    Default,
    #[serde(rename = "published_at.asc")]
    Ascending,
    #[serde(rename = "published_at.desc")]
    Descending,
}

/// CreateImage's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateImageQuery {
    /// `validate`: check the request without storing anything (204, or the
    /// error CreateImage or the registration would give); IMGAPI's other
    /// creation actions: 501 NotAvailable; any other value: 422
    #[param(inline)]
    action: Option<CreateAction>,
    /// Registration: activate when verified
    #[param(default = true)]
    activate: Option<bool>,
    /// Registration: seconds to wait for the registrar (default from config,
    /// capped at 3600)
    wait: Option<u64>,
    /// action=validate: check the body as AdminImportImage would (operators;
    /// the body's uuid is the image's)
    #[param(default = false)]
    import: Option<bool>,
}

/// CreateImage's `action`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CreateAction {
    Validate,
    CreateFromVm,
    ImportDockerImage,
    ImportLxdImage,
}

/// The query of `POST /images/{uuid}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageActionQuery {
    #[param(inline)]
    action: ImageActionName,
    /// action=import and action=import-remote: URL of the source IMGAPI
    source: Option<String>,
    /// action=import and import-remote: accepted for compatibility
    skip_owner_check: Option<bool>,
    /// action=export: /{login}/stor/... (a trailing / names a directory)
    manta_path: Option<String>,
    /// action=change-stor: the store to move the file to (else 422)
    #[param(inline)]
    stor: Option<StoreChoice>,
}

/// The actions of `POST /images/{uuid}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageActionName {
    Import,
    Activate,
    Enable,
    Disable,
    Update,
    Export,
    ChangeStor,
    ChannelAdd,
    ImportRemote,
    ImportFromDatacenter,
}

/// A store a client may name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreChoice {
    Local,
    Manta,
}

/// AddImageFile's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AddImageFileQuery {
    /// Missing or other: 422
    #[param(inline)]
    compression: crate::wire::Compression,
    sha1: Option<String>,
    dataset_guid: Option<String>,
    /// Operators only
    #[param(inline)]
    storage: Option<StoreChoice>,
    /// Attach this complete upload (no body)
    upload: Option<Uuid>,
    /// AddImageFileFromSource: URL of the source IMGAPI (422 NotAllowed
    /// unless in `[imports] allowed_sources`; 503 RemoteSourceError)
    source: Option<String>,
}

/// GetImageFile's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetImageFileQuery {
    /// Which file; not an integer: 422
    #[param(default = 0)]
    index: Option<u64>,
    /// true: with [downloads] redirect on and the file in the S3 store, 302
    /// to a presigned URL of its object; else the bytes. Not true/false: 422
    #[param(default = false)]
    redirect: Option<bool>,
}

/// ImageAcl's query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageAclQuery {
    /// Other values: 422
    #[param(inline, default = "add")]
    action: Option<AclAction>,
}

/// ImageAcl's `action`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    Add,
    Remove,
}

/// GetImageJobs' filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetImageJobsQuery {
    #[param(inline)]
    task: Option<JobTask>,
    #[param(inline)]
    execution: Option<JobExecutionFilter>,
}

/// GetImageJobs' `task`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobTask {
    ImportRemoteImage,
    CreateFromVm,
}

/// GetImageJobs' `execution`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobExecutionFilter {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}
