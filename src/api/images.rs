//! Image endpoints: ListImages, GetImage, CreateImage, the `?action=`
//! family of POST /images/{uuid}, DeleteImage, Add/RemoveImageAcl.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::channels::{ChannelCtx, channel_ctx, known_channel};
use super::extract::{
    ImageCtx, NoRender, Params, Preamble, json_body, json_object, json_object_opt,
};
use super::{ApiVersion, AppState, json_response};
use crate::db::images::{Listed, Select};
use crate::error::{Error, FieldCode};
use crate::identity::Caller;
use crate::manifest::{Image, RenderOpts};

/// How to render images for this request.
pub(super) fn render_opts(
    st: &AppState,
    p: &Params,
    caller: &Caller,
    v: ApiVersion,
) -> Result<RenderOpts, Error> {
    let admin = p.bool("inclAdminFields")?.unwrap_or(false);
    if admin && !caller.authenticated {
        return Err(Error::Unauthorized(
            "inclAdminFields requires authentication".into(),
        ));
    }
    Ok(RenderOpts {
        admin_fields: admin,
        // `channels` only for Accept-Version >= 2 on a server with channels
        channels: v.0 >= 2 && !st.config.channels.is_empty(),
    })
}

/// Resolve the request's channel and, for an image endpoint, check that the
/// image is in it (an image outside the channel is a 404).
pub(super) async fn channel_gate(
    st: &AppState,
    p: &Params,
    caller: &Caller,
    uuid: Option<Uuid>,
    write: bool,
) -> Result<ChannelCtx, Error> {
    let ctx = channel_ctx(st, p, write)?;
    if let (true, Some(u)) = (ctx.is_on(), uuid) {
        let img = st.images.get(caller, u).await?;
        if !ctx.contains(&img) {
            return Err(Error::not_found(format!("image {u} was not found")));
        }
    }
    Ok(ctx)
}

/// An image response with its `Etag`.
pub(super) fn image_response(img: &Image, opts: RenderOpts) -> Response {
    let mut r = json_response(StatusCode::OK, &img.to_wire(opts));
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{}\"", img.etag())) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

/// `If-Match` (412) and `If-None-Match` (304) against an entity tag.
pub(super) fn check_conditional(h: &HeaderMap, etag: &str) -> Result<Option<Response>, Error> {
    if let Some(m) = h.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && !etag_matches(m, etag)
    {
        return Err(Error::PreconditionFailed(format!(
            "if-match '{m}' didn't match etag '{etag}'"
        )));
    }
    if let Some(m) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(m, etag)
    {
        return Ok(Some(StatusCode::NOT_MODIFIED.into_response()));
    }
    Ok(None)
}

/// ListImages: `GET /images`.
#[utoipa::path(
    get,
    path = "/images",
    operation_id = "ListImages",
    tag = "images",
    summary = "ListImages",
    description = "Filters combine with AND. Tag filters are `tag.KEY=VALUE` query parameters (any \
        number; `tag.KEY=` matches the key with any value). Results are sorted by published_at, at \
        most `limit`.",
    params(
        super::openapi::ListImagesQuery,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, description = "The images", body = [crate::wire::Image]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(State(st): State<AppState>, ctx: ImageCtx) -> Result<Response, Error> {
    let (caller, p) = (&ctx.caller, &ctx.params);
    let Some(mut q) = st.images.list_query(caller, p).await? else {
        return Ok(json_response(StatusCode::OK, &Vec::<Value>::new()));
    };
    q.account = caller.account;
    q.channel = ctx.channel.filter();
    // The default rendering is stored with each image: such a body is
    // built from the stored strings; any other is rendered from manifests.
    let select = if ctx.opts.is_stored() {
        Select::Wire
    } else {
        Select::Manifest
    };
    let imgs = st.images.list_json(caller, q, select).await?;
    let downloads = if ctx.opts.admin_fields {
        st.images.download_stats(listed_uuids(&imgs)?).await?
    } else {
        Downloads::new()
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        list_body(imgs, ctx.opts, downloads),
    )
        .into_response())
}

/// The download statistics of a list's images, by uuid.
type Downloads = std::collections::HashMap<Uuid, crate::manifest::DownloadStats>;

/// The uuids of a list's images (read from the stored JSON, nothing else
/// parsed).
fn listed_uuids(imgs: &[Listed]) -> Result<Vec<Uuid>, Error> {
    #[derive(serde::Deserialize)]
    struct Id {
        uuid: Uuid,
    }
    imgs.iter()
        .map(|l| {
            let (Listed::Manifest(json) | Listed::Wire(json)) = l;
            serde_json::from_str::<Id>(json)
                .map(|i| i.uuid)
                .map_err(Error::internal)
        })
        .collect()
}

/// Images rendered per stream chunk of a ListImages body.
const LIST_CHUNK: usize = 32;

/// ListImages' body, byte for byte what `json_response` writes for the
/// rendered array, produced `LIST_CHUNK` images at a time as the client
/// reads. An image's stored list form is copied as it is; a manifest is
/// parsed and rendered only when its chunk is, so a page of 1 000 is never
/// held parsed or rendered whole.
fn list_body(imgs: Vec<Listed>, opts: RenderOpts, downloads: Downloads) -> Body {
    if imgs.is_empty() {
        return Body::from("[]");
    }
    let n = imgs.len();
    let mut imgs = imgs.into_iter().enumerate();
    let chunks = std::iter::from_fn(move || {
        let mut buf = Vec::new();
        for (k, img) in imgs.by_ref().take(LIST_CHUNK) {
            buf.extend_from_slice(if k == 0 { b"[\n  " } else { b",\n  " });
            if let Err(e) = list_item(img, opts, &downloads, &mut buf) {
                return Some(Err(std::io::Error::other(e)));
            }
            if k + 1 == n {
                buf.extend_from_slice(b"\n]");
            }
        }
        (!buf.is_empty()).then(|| Ok::<_, std::io::Error>(bytes::Bytes::from(buf)))
    });
    Body::from_stream(futures_util::stream::iter(chunks))
}

/// One image of a ListImages body as an element of the array (one level
/// of indentation in), written straight into `buf`: its stored list form,
/// which the database keeps for the default rendering only (the caller
/// asks for it only then), or its manifest rendered with `opts`.
fn list_item(
    img: Listed,
    opts: RenderOpts,
    downloads: &Downloads,
    buf: &mut Vec<u8>,
) -> serde_json::Result<()> {
    match img {
        Listed::Wire(w) => {
            debug_assert!(opts.is_stored());
            buf.extend_from_slice(w.as_bytes());
            Ok(())
        }
        Listed::Manifest(m) => {
            let mut img = serde_json::from_str::<Image>(&m)?;
            img.downloads = downloads.get(&img.uuid).copied();
            img.write_listed(opts, buf)
        }
    }
}

/// GetImage: `GET /images/{uuid}`.
#[utoipa::path(
    get,
    path = "/images/{uuid}",
    operation_id = "GetImage",
    tag = "images",
    summary = "GetImage",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::IfMatch,
        super::openapi::IfNoneMatch,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 304, response = super::openapi::NotModified),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn get_image(
    State(st): State<AppState>,
    ctx: ImageCtx,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let img = st.images.get(&ctx.caller, ctx.uuid).await?;
    if let Some(r) = check_conditional(&headers, &img.etag())? {
        return Ok(r);
    }
    Ok(image_response(&img, ctx.opts))
}

/// CreateImage's preamble: the other actions of `POST /images` are
/// refused first.
pub(super) struct CreateAction;
impl Preamble for CreateAction {
    fn precheck(p: &Params) -> Result<(), Error> {
        match p.get("action").unwrap_or("") {
            "" | "validate" | "create-from-vm" | "import-docker-image" | "import-lxd-image" => {
                Ok(())
            }
            a => Err(Error::invalid_param(
                "action",
                FieldCode::Invalid,
                format!("\"{a}\" is not a valid action"),
            )),
        }
    }
}

/// CreateImage: `POST /images` (other actions of IMGAPI answer 501).
#[utoipa::path(
    post,
    path = "/images",
    operation_id = "CreateImage",
    tag = "images",
    summary = "CreateImage, or register a stored file (phase two)",
    description = "Without a file reference: CreateImage (an unactivated image). With `files: \
        [{upload | path, content_md5, compression, sha1?, size?}]`: registration; the registrar \
        verifies and moves the bytes and activates the image, waiting up to `wait` seconds (a \
        longer job returns the image in state `creating`). \
        `action=validate` (ValidateImage) runs every check of the same request that needs \
        no file and stores nothing: 204 when they pass, else the error CreateImage or the \
        registration would give; a file reference is then optional and not looked up, and \
        `content_md5`, `sha1` and `size` are compared at registration only. With \
        `import=true` it checks the body as AdminImportImage would. \
        `action=create-from-vm|import-docker-image|import-lxd-image` are checked as IMGAPI \
        checks them (create-from-vm: `vm_uuid`, `incremental`, `max_origin_depth`, the body, \
        `owner`; docker: operators, `repo`, `tag` or `digest`, the reference; lxd: operators, \
        `alias=REGISTRY:IMAGE` of a known registry), then 501: this server does not serve them.",
    params(
        super::openapi::CreateImageQuery,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    request_body(content = super::openapi::Manifest),
    responses(
        (
            status = 200,
            description = "The image (a registration that is not done within `wait`: state \
                creating)",
            body = crate::wire::Image,
            headers(("Etag" = String, description = "Entity tag")),
            links(
                ("GetImage" = (
                    operation_id = "GetImage",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("ImageAction" = (
                    operation_id = "ImageAction",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("DeleteImage" = (
                    operation_id = "DeleteImage",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("AddImageFile" = (
                    operation_id = "AddImageFile",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("GetImageFile" = (
                    operation_id = "GetImageFile",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("AddImageIcon" = (
                    operation_id = "AddImageIcon",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("GetImageIcon" = (
                    operation_id = "GetImageIcon",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("DeleteImageIcon" = (
                    operation_id = "DeleteImageIcon",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
                ("ImageAcl" = (
                    operation_id = "ImageAcl",
                    parameters(("uuid" = "$response.body#/uuid")),
                )),
            ),
        ),
        (
            status = 204,
            description = "action=validate: the request passes every check made before its \
                file is looked up; nothing was stored",
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 501, response = super::openapi::NotAvailable),
                (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn create(
    State(st): State<AppState>,
    ctx: ImageCtx<CreateAction>,
    body: Body,
) -> Result<Response, Error> {
    if ctx.params.get("action") == Some("validate") {
        return validate(&st, &ctx, body).await;
    }
    let (caller, p) = (&ctx.caller, &ctx.params);
    // The actions this server never serves: checked as IMGAPI checks them.
    let unavailable = match p.get("action").unwrap_or("") {
        "create-from-vm" => Some(CreateFromVm),
        "import-docker-image" => Some(ImportDocker),
        "import-lxd-image" => Some(ImportLxd),
        _ => None,
    };
    if let Some(u) = unavailable {
        caller.require_auth()?;
        let body = json_object_opt(body).await?;
        return Err(match u {
            CreateFromVm => super::unavailable::create_from_vm(p, caller, body.as_ref()),
            ImportDocker => super::unavailable::import_docker_image(p, caller),
            ImportLxd => super::unavailable::import_lxd_image(p, caller),
        });
    }
    let mut body = json_object(body).await?;
    let img = match take_file_ref(&mut body, true)? {
        None => {
            st.images
                .create(caller, body, ctx.channel.initial())
                .await?
        }
        Some(r) => {
            // Registration: the manifest references a stored object.
            let activate = p.bool("activate")?.unwrap_or(true);
            let wait = wait_param(p, st.config.registrar.wait_secs)?;
            let mut img = st.images.prepare_create(caller, body)?;
            img.channels = ctx.channel.initial();
            st.registrar
                .register(caller, img, r, activate, wait)
                .await?
        }
    };
    Ok(image_response(&img, ctx.opts))
}

/// The actions of `POST /images` this server never serves.
#[derive(Clone, Copy)]
enum Unavailable {
    CreateFromVm,
    ImportDocker,
    ImportLxd,
}
use Unavailable::*;

/// The query parameters of `POST /images?action=validate`.
const VALIDATE_PARAMS: [&str; 7] = [
    "action",
    "account",
    "channel",
    "inclAdminFields",
    "activate",
    "wait",
    "import",
];

/// ValidateImage, `POST /images?action=validate`: every check CreateImage
/// or a registration (with `import=true`, AdminImportImage) makes of the
/// same request before it stores anything, in the same order and with the
/// same error bodies, except those that need the file: the upload or path
/// is not looked up, and `content_md5`, `sha1` and `size` are compared at
/// registration. 204 when they pass; nothing is created or reserved.
async fn validate(
    st: &AppState,
    ctx: &ImageCtx<CreateAction>,
    body: Body,
) -> Result<Response, Error> {
    let (caller, p) = (&ctx.caller, &ctx.params);
    if let Some((k, _)) =
        p.0.iter()
            .find(|(k, _)| !VALIDATE_PARAMS.contains(&k.as_str()))
    {
        return Err(Error::invalid_param(
            k.as_str(),
            FieldCode::NotAllowed,
            format!(
                "unknown parameter \"{k}\" (action=validate takes {})",
                VALIDATE_PARAMS[1..].join(", ")
            ),
        ));
    }
    let import = p.bool("import")?.unwrap_or(false);
    if import {
        caller.require_operator()?;
    }
    let mut body = json_object(body).await?;
    if import {
        // AdminImportImage takes the uuid from its path and requires the
        // body's to match; here the body's is the image's.
        let uuid = body
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(|u| Uuid::parse_str(u).ok())
            .ok_or_else(|| {
                Error::invalid_param("uuid", FieldCode::Invalid, "the manifest needs a uuid")
            })?;
        let img = st.images.prepare_import(caller, uuid, body)?;
        st.images.check_new_origin(caller, &img, true).await?;
    } else {
        let r = take_file_ref(&mut body, false)?;
        if r.is_some() {
            p.bool("activate")?;
            wait_param(p, st.config.registrar.wait_secs)?;
        }
        let img = st.images.prepare_create(caller, body)?;
        if let Some(r) = &r {
            crate::registrar::Registrar::check_ref_fields(r, false)?;
        }
        st.images.check_new_origin(caller, &img, false).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?wait=SECONDS` of a registration (at most an hour).
fn wait_param(p: &Params, default: u64) -> Result<std::time::Duration, Error> {
    let secs = match p.get("wait").filter(|s| !s.is_empty()) {
        None => default,
        Some(w) => w
            .parse::<u64>()
            .map_err(|_| {
                Error::invalid_param("wait", FieldCode::Invalid, format!("invalid wait: \"{w}\""))
            })?
            .min(3600),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// The keys a registration's `files[0]` may hold (`manta_path` is a synonym
/// of `path`, as the seed's example manifests name it).
const FILE_REF_KEYS: [&str; 8] = [
    "upload",
    "path",
    "manta_path",
    "content_md5",
    "compression",
    "sha1",
    "size",
    "dataset_guid",
];

/// A registration's `files`: exactly one item referencing an `upload` or a
/// `path` (or `manta_path`). Returns None for a classic CreateImage (no
/// `files`, or an empty list). A non-empty `files` that cannot be
/// registered (no reference, an unknown key) is a 422: it never quietly
/// becomes a plain CreateImage. Without `need_ref` (a validate-only
/// request, before the file is uploaded) the reference may be absent.
fn take_file_ref(
    body: &mut serde_json::Map<String, Value>,
    need_ref: bool,
) -> Result<Option<crate::registrar::FileRef>, Error> {
    let files = match body.get("files") {
        None => return Ok(None),
        Some(Value::Array(files)) if files.is_empty() => return Ok(None),
        Some(Value::Array(files)) => files,
        Some(_) => {
            return Err(Error::validation(vec![crate::error::FieldError::msg(
                "files",
                FieldCode::Invalid,
                "files must be an array",
            )]));
        }
    };
    let mut errors = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(f) = f.as_object() else {
            errors.push(crate::error::FieldError::msg(
                format!("files[{i}]"),
                FieldCode::Invalid,
                "a file must be an object",
            ));
            continue;
        };
        for k in f.keys().filter(|k| !FILE_REF_KEYS.contains(&k.as_str())) {
            errors.push(crate::error::FieldError::msg(
                format!("files[{i}].{k}"),
                FieldCode::NotAllowed,
                format!("unknown key \"{k}\" in a file to register"),
            ));
        }
        if f.get("path").is_some() && f.get("manta_path").is_some() {
            errors.push(crate::error::FieldError::msg(
                format!("files[{i}].manta_path"),
                FieldCode::Invalid,
                "give path or manta_path, not both",
            ));
        }
        if need_ref
            && !["upload", "path", "manta_path"]
                .iter()
                .any(|k| f.get(*k).is_some_and(|v| !v.is_null()))
        {
            errors.push(crate::error::FieldError::msg(
                format!("files[{i}].path"),
                FieldCode::Missing,
                "a file to register needs an upload or a path (manta_path)",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::validation(errors));
    }
    if files.len() != 1 {
        return Err(Error::validation(vec![crate::error::FieldError::msg(
            "files",
            FieldCode::Invalid,
            "a registration takes exactly one file",
        )]));
    }
    let f = &files[0];
    let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
    let upload = match f.get("upload") {
        None | Some(Value::Null) => None,
        Some(u) => Some(
            u.as_str()
                .and_then(|u| Uuid::parse_str(u).ok())
                .ok_or_else(|| {
                    Error::invalid_param(
                        "files[0].upload",
                        FieldCode::Invalid,
                        "upload must be an upload id",
                    )
                })?,
        ),
    };
    let size = match f.get("size") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().ok_or_else(|| {
            Error::invalid_param(
                "files[0].size",
                FieldCode::Invalid,
                "size must be a non-negative integer",
            )
        })?),
    };
    let r = crate::registrar::FileRef {
        upload,
        path: s("path").or_else(|| s("manta_path")),
        content_md5: s("content_md5"),
        compression: s("compression"),
        sha1: s("sha1"),
        size,
        dataset_guid: s("dataset_guid"),
    };
    body.remove("files");
    Ok(Some(r))
}

/// The preamble of `POST /images/{uuid}?action=…`: every action but the
/// imports works on an existing image of the channel.
pub(super) struct ImageAction;
impl Preamble for ImageAction {
    fn on_image(p: &Params) -> bool {
        !matches!(
            p.get("action").unwrap_or(""),
            "" | "import" | "import-remote" | "import-from-datacenter"
        )
    }
}

/// `POST /images/{uuid}?action=…`: import, activate, enable, disable, update.
#[utoipa::path(
    post,
    path = "/images/{uuid}",
    operation_id = "ImageAction",
    tag = "images",
    summary = "ActivateImage, UpdateImage, DisableImage, EnableImage, AdminImportImage, \
        ExportImage, AdminChangeImageStor",
    description = "`action` selects the operation. import (operators; with `source`, \
        AdminImportImageFromSource: the manifest comes from that IMGAPI), import-remote \
        (AdminImportRemoteImage, operators: answers `{image_uuid, job_uuid}` and a `workflow-api` \
        header; poll `GET {workflow-api}/jobs/{job_uuid}`), activate, enable, disable, update \
        (`If-Match`), export (`manta_path`), change-stor (`stor`), channel-add (servers with \
        channels; body `{\"channel\": NAME}`). import-from-datacenter: 422 (`account`, then \
        `datacenter`: no other datacenter is configured here). A \
        source not in `[imports] allowed_sources` is 422 `{source, NotAllowed}` before any \
        connection; a failing source is 503 RemoteSourceError with its message; an origin not \
        active is 422 OriginIsNotActive. Missing or unknown action: 422.",
    params(
        super::openapi::ImageActionQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::IfMatch,
    ),
    request_body(content = Option<super::openapi::ImageActionBody>),
    responses(
        (
            status = 200,
            description = "The image (export: where it was written)",
            body = inline(super::openapi::ImageActionResult),
            headers(("Etag" = String, description = "Entity tag")),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn action(
    State(st): State<AppState>,
    ctx: ImageCtx<ImageAction>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let (caller, uuid) = (&ctx.caller, ctx.uuid);
    let mut opts = ctx.opts;
    let img = match ctx.params.get("action").unwrap_or("") {
        "" => {
            return Err(Error::invalid_param(
                "action",
                FieldCode::MissingParameter,
                "no image \"action\" was specified",
            ));
        }
        "import" => import(&st, &ctx, body).await?,
        "channel-add" if ctx.channel.is_on() => channel_add(&st, &ctx, body).await?,
        "change-stor" => {
            opts.admin_fields = true;
            let stor = ctx.params.get("stor");
            st.images.change_stor(caller, uuid, stor).await?
        }
        "export" => return export(&st, &ctx).await,
        "import-remote" => return super::jobs::import_remote(&st, &ctx, &headers).await,
        "import-from-datacenter" => {
            caller.require_auth()?;
            json_body(body).await?;
            return Err(super::unavailable::import_from_datacenter(
                &ctx.params,
                caller,
            ));
        }
        "activate" => st.images.activate(caller, uuid).await?,
        "enable" => st.images.set_disabled(caller, uuid, false).await?,
        "disable" => st.images.set_disabled(caller, uuid, true).await?,
        "update" => {
            let if_match = headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = json_object_opt(body).await?;
            st.images.update(caller, uuid, body, if_match).await?
        }
        a => {
            return Err(Error::invalid_param(
                "action",
                FieldCode::Invalid,
                format!("\"{a}\" is not a valid action"),
            ));
        }
    };
    Ok(image_response(&img, opts))
}

/// AdminImportImage: `?action=import` (operators only).
async fn import(st: &AppState, ctx: &ImageCtx<ImageAction>, body: Body) -> Result<Image, Error> {
    ctx.caller.require_operator()?;
    // Accepted for compatibility (owners are not checked here).
    ctx.params.bool("skip_owner_check")?;
    let channels = ctx.channel.initial();
    if ctx.params.get("source").is_some() {
        // AdminImportImageFromSource: the manifest comes from the source.
        let src = st.imports.source(ctx.params.get("source"))?;
        return st
            .imports
            .import_from_source(&ctx.caller, ctx.uuid, &src, channels)
            .await;
    }
    let manifest = json_object(body).await?;
    st.images
        .import(&ctx.caller, ctx.uuid, manifest, channels)
        .await
}

/// ChannelAddImage: `?action=channel-add` with `{"channel": NAME}`.
async fn channel_add(
    st: &AppState,
    ctx: &ImageCtx<ImageAction>,
    body: Body,
) -> Result<Image, Error> {
    let body = json_object(body).await?;
    let target = known_channel(st, body.get("channel").and_then(Value::as_str))?;
    st.images
        .modify(&ctx.caller, ctx.uuid, None, move |img| {
            if !img.channels.contains(&target) {
                img.channels.push(target);
            }
            Ok(())
        })
        .await
}

/// ExportImage: `?action=export&manta_path=…` (a file or a `/` directory).
async fn export(st: &AppState, ctx: &ImageCtx<ImageAction>) -> Result<Response, Error> {
    let path = ctx
        .params
        .get("manta_path")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::ValidationFailed {
            message: "missing \"manta_path\"".into(),
            errors: vec![crate::error::FieldError::new(
                "manta_path",
                FieldCode::MissingParameter,
            )],
        })?;
    let dir = path.ends_with('/');
    let sp = crate::store::namespace::parse(path.trim_end_matches('/'))
        .map_err(|m| Error::invalid_param("manta_path", FieldCode::Invalid, m))?;
    if sp.store() != "manta" {
        return Err(Error::invalid_param(
            "manta_path",
            FieldCode::Invalid,
            "must be a /{login}/stor/... path",
        ));
    }
    st.uploads.check_path_access(&ctx.caller, &sp).await?;
    let (image_key, manifest_key) = st
        .images
        .export(&ctx.caller, ctx.uuid, &sp.key, dir)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::wire::ExportResult {
            manta_url: String::new(),
            image_path: format!("/{image_key}"),
            manifest_path: format!("/{manifest_key}"),
        },
    ))
}

/// DeleteImage: `DELETE /images/{uuid}` → 204.
#[utoipa::path(
    delete,
    path = "/images/{uuid}",
    operation_id = "DeleteImage",
    tag = "images",
    summary = "DeleteImage",
    description = "Images naming it as `origin` block it (422 ImageHasDependentImages).",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        (
            "force_all_channels" = Option<bool>,
            Query,
            description = "On a server with channels, an image in several channels only leaves the \
                request's channel unless this is true",
        ),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    ctx: ImageCtx<NoRender>,
) -> Result<Response, Error> {
    let (caller, uuid) = (&ctx.caller, ctx.uuid);
    // On a channel server an image in several channels leaves only the
    // request's channel, unless force_all_channels=true.
    if let ChannelCtx::One(c) = ctx.channel
        && !ctx.params.bool("force_all_channels")?.unwrap_or(false)
    {
        let img = st.images.get(caller, uuid).await?;
        if img.channels.len() > 1 {
            st.images
                .modify(caller, uuid, None, move |img| {
                    img.channels.retain(|x| *x != c);
                    Ok(())
                })
                .await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    st.images.delete(caller, uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// AddImageAcl / RemoveImageAcl: `POST /images/{uuid}/acl?action=add|remove`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/acl",
    operation_id = "ImageAcl",
    tag = "images",
    summary = "AddImageAcl / RemoveImageAcl",
    params(
        super::openapi::ImageAclQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    request_body(content = [uuid::Uuid]),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn acl(State(st): State<AppState>, ctx: ImageCtx, body: Body) -> Result<Response, Error> {
    let add = match ctx.params.get("action").unwrap_or("add") {
        "" | "add" => true,
        "remove" => false,
        a => {
            return Err(Error::invalid_param(
                "action",
                FieldCode::Invalid,
                format!("\"{a}\" is not a valid action"),
            ));
        }
    };
    let Value::Array(items) = json_body(body).await? else {
        return Err(Error::invalid_param(
            "acl",
            FieldCode::Invalid,
            "invalid image \"acl\" (not an array)",
        ));
    };
    let mut accounts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        match it
            .as_str()
            .filter(|s| crate::manifest::validate::is_uuid(s))
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            Some(u) => accounts.push(u),
            None => {
                return Err(Error::invalid_param(
                    "acl",
                    FieldCode::Invalid,
                    format!("invalid image \"acl\" (item {i} is not a UUID)"),
                ));
            }
        }
    }
    let img = st
        .images
        .change_acl(&ctx.caller, ctx.uuid, add, accounts)
        .await?;
    Ok(image_response(&img, ctx.opts))
}

#[cfg(test)]
mod list_body_tests {
    use super::*;

    /// Images with every optional field, some without, odd characters.
    fn images() -> Vec<Image> {
        (0..100u32)
            .map(|i| {
                let mut v = serde_json::json!({
                    "v": 2,
                    "uuid": Uuid::from_u128(i as u128 * 7919),
                    "owner": Uuid::from_u128(1 + (i % 3) as u128),
                    "name": format!("img-{i} \"quoted\"\n\t\u{e9}\u{1F600}"),
                    "version": format!("1.{i}"),
                    "activated": i % 5 != 0,
                    "disabled": i % 7 == 0,
                    "public": i % 2 == 0,
                    "type": "zone-dataset",
                    "os": "smartos",
                    "published_at": "2020-01-01T00:00:00.000Z",
                    "files": [{"sha1": "ab", "size": i, "compression": "gzip",
                               "stor": "local", "content_md5": "x", "mtime": "m"}],
                });
                let m = v.as_object_mut().unwrap();
                if i % 2 == 0 {
                    m.insert("description".into(), "multi\nline\r\n<>&'".into());
                    m.insert("acl".into(), serde_json::json!([Uuid::from_u128(9)]));
                    m.insert(
                        "tags".into(),
                        serde_json::json!({"a": 1, "b": {"c": [1, "2", null]}}),
                    );
                    m.insert(
                        "requirements".into(),
                        serde_json::json!({"min_ram": 512, "networks": []}),
                    );
                    m.insert("billing_tags".into(), serde_json::json!(["x", ""]));
                    m.insert("channels".into(), serde_json::json!(["dev"]));
                }
                if i % 3 == 0 {
                    m.insert("homepage".into(), "".into());
                    m.insert("users".into(), serde_json::json!([{"name": "root"}]));
                    m.insert("generate_passwords".into(), true.into());
                }
                // Every state: placeholders (with an error, shown only
                // when failed, and an expiry, never shown), unactivated,
                // disabled, active; and the rarer fields.
                match i % 11 {
                    1 => {
                        m.insert("placeholder".into(), "creating".into());
                        m.insert("expires_at".into(), "2020-01-02T00:00:00.000Z".into());
                        m.insert("error".into(), serde_json::json!({"message": "x"}));
                    }
                    2 => {
                        m.insert("placeholder".into(), "failed".into());
                        m.insert("expires_at".into(), "2020-01-02T00:00:00.000Z".into());
                        m.insert(
                            "error".into(),
                            serde_json::json!({"code": "E", "message": "m\u{0}"}),
                        );
                    }
                    3 => {
                        m.insert("generate_passwords".into(), false.into());
                        m.insert("eula".into(), "e".into());
                        m.insert("urn".into(), "".into());
                        m.insert("nic_driver".into(), "virtio".into());
                        m.insert("disk_driver".into(), "".into());
                        m.insert("cpu_type".into(), "host".into());
                        m.insert("image_size".into(), 10240.into());
                        m.insert("origin".into(), Uuid::from_u128(5).to_string().into());
                        m.insert("traits".into(), serde_json::json!({"t": true}));
                        m.insert("inherited_directories".into(), serde_json::json!(["/opt"]));
                        m.insert(
                            "icon".into(),
                            serde_json::json!({"sha1": "s", "size": 1,
                                "content_type": "image/png", "content_md5": "m",
                                "mtime": "t", "stor": "local"}),
                        );
                        m.insert("files".into(), serde_json::json!([]));
                    }
                    4 => {
                        m.insert("published_at".into(), Value::Null);
                        m.insert("description".into(), "".into());
                        m.insert("tags".into(), serde_json::json!({}));
                        m.insert("acl".into(), serde_json::json!([]));
                    }
                    _ => {}
                }
                serde_json::from_value(v).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_streamed_list_is_the_body_json_response_wrote() {
        let all = images();
        for n in [
            0,
            1,
            2,
            LIST_CHUNK - 1,
            LIST_CHUNK,
            LIST_CHUNK + 1,
            all.len(),
        ] {
            for admin_fields in [false, true] {
                for channels in [false, true] {
                    let opts = RenderOpts {
                        admin_fields,
                        channels,
                    };
                    let imgs = all[..n].to_vec();
                    let out: Vec<Value> = imgs.iter().map(|i| i.render(opts)).collect();
                    let want = serde_json::to_vec_pretty(&out).unwrap();
                    // as the database stores them
                    let stored = imgs
                        .iter()
                        .map(|i| Listed::Manifest(serde_json::to_string(i).unwrap()))
                        .collect();
                    assert_listed(stored, opts, &want, &format!("{n} images, {opts:?}")).await;
                }
            }
        }
    }

    /// The body `list_body` streams for `stored` is `want`.
    async fn assert_listed(stored: Vec<Listed>, opts: RenderOpts, want: &[u8], what: &str) {
        let got = axum::body::to_bytes(list_body(stored, opts, Downloads::new()), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{what}"
        );
    }

    /// The body built from the stored list form of each image (what the
    /// database keeps in `images.wire`), from manifests, and from a mix of
    /// both (images stored before the column was filled), is the body
    /// `json_response` wrote for the rendered array: every state, every
    /// optional field, odd characters.
    #[tokio::test]
    async fn the_list_from_stored_json_is_the_rendered_list() {
        let all = images();
        let states: std::collections::BTreeSet<&str> =
            all.iter().map(|i| i.state().as_str()).collect();
        assert_eq!(states.len(), 5, "{states:?}");
        let opts = RenderOpts::default();
        assert!(opts.is_stored());
        for n in [1, 2, LIST_CHUNK, LIST_CHUNK + 1, all.len()] {
            let imgs = &all[..n];
            let out: Vec<Value> = imgs.iter().map(|i| i.render(opts)).collect();
            let want = serde_json::to_vec_pretty(&out).unwrap();
            for mix in [0, 1, 2] {
                let stored: Vec<Listed> = imgs
                    .iter()
                    .enumerate()
                    .map(|(k, i)| {
                        if mix == 0 || (mix == 1 && k % 3 == 1) {
                            Listed::Manifest(serde_json::to_string(i).unwrap())
                        } else {
                            Listed::Wire(i.listed_json().unwrap())
                        }
                    })
                    .collect();
                assert_listed(stored, opts, &want, &format!("{n} images, mix {mix}")).await;
            }
        }
    }

    /// The stored list form is the default rendering only: every other
    /// rendering changes some image's JSON (so a request asking for it
    /// must be rendered from manifests, as `list` does).
    #[test]
    fn other_renderings_differ_from_the_stored_form() {
        let all = images();
        for opts in [
            RenderOpts {
                admin_fields: true,
                channels: false,
            },
            RenderOpts {
                admin_fields: false,
                channels: true,
            },
        ] {
            assert!(!opts.is_stored());
            assert!(all.iter().any(|i| {
                let mut buf = Vec::new();
                i.write_listed(opts, &mut buf).unwrap();
                buf != i.listed_json().unwrap().into_bytes()
            }));
        }
    }
}

/// The query parameters CloneImage understands.
const CLONE_PARAMS: [&str; 3] = ["account", "channel", "inclAdminFields"];

/// CloneImage: `POST /images/{uuid}/clone?account=UUID`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/clone",
    operation_id = "CloneImage",
    tag = "images",
    summary = "CloneImage: the account's own copy of an image shared with it",
    description = "Copies an active image whose `acl` holds `account` (and its chain of origins \
        up to the first operator image, which is kept) for that account: new uuids, `owner` the \
        account, no `acl`, a fresh `published_at`; the cloned origins are disabled. The files \
        are copied by the store (a reflink or hard link on a directory, a server-side copy on \
        S3) with their size and digests. All or nothing. Refusals, in order: `account` not a \
        UUID 422, an image the account cannot see 404, no `account` 422 InvalidParameter, not \
        active 422 ValidationFailed `active`, `account` not in `acl` (the owner's own image \
        too) 422 ImageNotShared, a docker image 422 ValidationFailed `type`. Any other query \
        parameter is 422 InvalidParameter.",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn clone_image(State(st): State<AppState>, ctx: ImageCtx) -> Result<Response, Error> {
    if let Some((k, _)) = ctx
        .params
        .0
        .iter()
        .find(|(k, _)| !CLONE_PARAMS.contains(&k.as_str()))
    {
        return Err(Error::invalid_param(
            k,
            FieldCode::Invalid,
            format!(
                "unknown parameter \"{k}\" (CloneImage takes account, channel and inclAdminFields)"
            ),
        ));
    }
    let img = st.images.clone_image(&ctx.caller, ctx.uuid).await?;
    Ok(image_response(&img, ctx.opts))
}
