//! CreateImage: `POST /images`, a manifest alone (the classic flow), a
//! registration of a stored file, or `?action=validate` (nothing stored).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::extract::{ImageCtx, Params, Preamble, json_object, json_object_opt};
use super::images::image_response;
use crate::error::{Error, FieldCode};

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
    image_response(&st, img, ctx.opts).await
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
    let errors = file_ref_errors(files, need_ref);
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
    let r = file_ref_of(&files[0])?;
    body.remove("files");
    Ok(Some(r))
}

/// What is wrong with each item of a registration's `files`: not an
/// object, an unknown key, both `path` and `manta_path`, or (with
/// `need_ref`) no reference at all.
fn file_ref_errors(files: &[Value], need_ref: bool) -> Vec<crate::error::FieldError> {
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
    errors
}

/// The file reference of the (checked) item `f` of `files`: its upload
/// id and size parsed, `manta_path` standing for a missing `path`.
fn file_ref_of(f: &Value) -> Result<crate::registrar::FileRef, Error> {
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
    Ok(crate::registrar::FileRef {
        upload,
        path: s("path").or_else(|| s("manta_path")),
        content_md5: s("content_md5"),
        compression: s("compression"),
        sha1: s("sha1"),
        size,
        dataset_guid: s("dataset_guid"),
    })
}
