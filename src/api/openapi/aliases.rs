//! Routes whose handler serves several routes (one `#[utoipa::path]`
//! per handler fn): `files::add_icon` (PUT and POST) and
//! `uploads::options` (`/uploads` and `/uploads/{id}`). Each stub here
//! documents one more route of such a handler; it is never called.

#![allow(dead_code)]

#[utoipa::path(
    post,
    path = "/images/{uuid}/icon",
    operation_id = "AddImageIconPost",
    tag = "files",
    summary = "AddImageIcon (POST form)",
    description = "The same as PUT.",
    params(
        super::ImageUuid,
        ("sha1" = Option<String>, Query),
        super::Account,
        super::ChannelParam,
        super::InclAdminFields,
    ),
    request_body(
        content(
            (super::Binary = "image/png"),
            (super::Binary = "image/jpeg"),
            (super::Binary = "image/gif"),
        ),
        description = "The icon: PNG, JPEG or GIF, at most 128 KiB",
    ),
    responses(
        (status = 200, response = super::ImageResponse),
        (status = 400, response = super::BadRequest),
        (status = 401, response = super::Unauthorized),
        (status = 404, response = super::NotFound),
        (status = 422, response = super::Unprocessable),
        (status = 500, response = super::InternalError),
        (status = 503, response = super::StorageIsDown),
        (status = 507, response = super::InsufficientStorage),
    ),
)]
pub fn add_image_icon_post() {}

#[utoipa::path(
    options,
    path = "/uploads/{id}",
    operation_id = "UploadOptions",
    tag = "uploads",
    summary = "tus discovery",
    params(
        super::UploadId,
    ),
    responses(
        (
            status = 204,
            description = "What this tus server supports",
            headers(
                ("Tus-Resumable" = String, description = "Always 1.0.0"),
                ("Tus-Version" = String),
                ("Tus-Extension" = String),
                ("Tus-Max-Size" = u64),
                ("Tus-Checksum-Algorithm" = String),
            ),
        ),
        (status = 400, response = super::BadRequest),
    ),
)]
pub fn upload_options() {}
