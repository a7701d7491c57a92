//! The `?action=` family of `POST /images/{uuid}`: activate, enable,
//! disable, update, import, channel-add, export, change-stor, ...

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::channels::known_channel;
use super::extract::{ImageCtx, Params, Preamble, json_body, json_object, json_object_opt};
use super::images::image_response;
use super::{AppState, json_response};
use crate::error::{Error, FieldCode};
use crate::manifest::Image;

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
    image_response(&st, img, opts).await
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
