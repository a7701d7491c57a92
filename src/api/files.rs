//! File and icon endpoints: AddImageFile, GetImageFile (with Range,
//! If-Range and conditional requests), Add/Get/DeleteImageIcon.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};

use super::AppState;
use super::extract::{ImageCtx, NoRender, Params, Preamble};
use super::images::{check_conditional, image_response};
use super::range::{IfRange, ranged};
use crate::error::{Error, FieldCode};
use crate::images::{AddFileParams, AddIconParams};

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// Bytes of a refused upload we still read so the connection stays usable.
const DRAIN_LIMIT: u64 = 64 << 20;

/// AddImageFile's preamble.
pub(super) struct AddFile;
impl Preamble for AddFile {}

/// AddImageFile: `PUT /images/{uuid}/file?compression=…[&sha1=…]`.
#[utoipa::path(
    put,
    path = "/images/{uuid}/file",
    operation_id = "AddImageFile",
    tag = "files",
    summary = "AddImageFile",
    description = "Streams the body to the store computing sha1, md5 and size; `sha1` and \
        Content-Length are checked (400 Download). With `upload` a complete upload is attached \
        instead of a body. With `source` (AddImageFileFromSource) the file of the same image at \
        that IMGAPI is fetched (resumed with Range), verified against its manifest and \
        Content-MD5, and stored; no body.",
    params(
        super::openapi::AddImageFileQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    request_body(
        content = Option<super::openapi::Binary>,
        content_type = "application/octet-stream",
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
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
pub async fn add_file(
    State(st): State<AppState>,
    ctx: ImageCtx<AddFile>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let (caller, uuid, p) = (&ctx.caller, ctx.uuid, &ctx.params);
    if let Some(upload) = p.get("upload").filter(|s| !s.is_empty()) {
        return attach_upload(&st, &ctx, upload).await;
    }
    if p.get("source").is_some() {
        // AddImageFileFromSource: the file of the same image at the source.
        let src = st.imports.source(p.get("source"))?;
        let storage = p.get("storage").map(str::to_string);
        let img = st
            .imports
            .add_file_from_source(caller, uuid, &src, storage)
            .await?;
        return image_response(&st, img, ctx.opts).await;
    }
    let params = AddFileParams {
        compression: p.get("compression").map(str::to_string),
        sha1: p.get("sha1").map(str::to_string),
        dataset_guid: p.get("dataset_guid").map(str::to_string),
        storage: p.get("storage").map(str::to_string),
        content_length: content_length(&headers),
    };
    let mut stream = body
        .into_data_stream()
        .map_err(|e| Error::Upload(format!("error reading the request body: {e}")));
    let declared = params.content_length;
    let res = st
        .images
        .add_file(caller, uuid, params, stream.by_ref())
        .await;
    match res {
        Ok(img) => image_response(&st, img, ctx.opts).await,
        Err(e) => {
            drain(stream, declared).await;
            Err(e)
        }
    }
}

/// AddImageFile with `?upload=ID`: attach a finished upload, moved in
/// place, not re-uploaded.
async fn attach_upload(
    st: &AppState,
    ctx: &ImageCtx<AddFile>,
    upload: &str,
) -> Result<Response, Error> {
    let (caller, p) = (&ctx.caller, &ctx.params);
    let upload =
        uuid::Uuid::parse_str(upload).map_err(|_| Error::UploadNotFound(uuid::Uuid::nil()))?;
    let img = st.images.get(caller, ctx.uuid).await?;
    let r = crate::registrar::FileRef {
        upload: Some(upload),
        compression: Some(p.get("compression").unwrap_or("").to_string()).filter(|c| !c.is_empty()),
        sha1: p.get("sha1").filter(|s| !s.is_empty()).map(str::to_string),
        dataset_guid: p.get("dataset_guid").map(str::to_string),
        ..Default::default()
    };
    if r.compression.is_none() {
        return Err(Error::invalid_param(
            "compression",
            FieldCode::Missing,
            "missing \"compression\"",
        ));
    }
    let img = st.registrar.attach(caller, &img, r).await?;
    image_response(st, img, ctx.opts).await
}

/// Read what is left of a refused body (bounded in bytes and time), so
/// keep-alive clients get the error instead of a reset connection. Larger
/// bodies are not read: the connection is closed after the response.
async fn drain<S>(mut s: S, declared: Option<u64>)
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
{
    if declared.is_some_and(|l| l > DRAIN_LIMIT) {
        return;
    }
    let read_rest = async {
        let mut n = 0u64;
        while let Some(Ok(c)) = s.next().await {
            n += c.len() as u64;
            if n > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read_rest).await;
}

fn http_date(iso: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(iso).ok()?;
    Some(httpdate::fmt_http_date(std::time::SystemTime::from(t)))
}

/// GetImageFile's preamble: a bad `index` or `redirect` is refused first.
pub(super) struct GetFile;
impl Preamble for GetFile {
    const RENDER: bool = false;
    fn precheck(p: &Params) -> Result<(), Error> {
        file_index(p)?;
        p.bool("redirect").map(drop)
    }
}

/// `?index=N` of GetImageFile (default 0).
fn file_index(p: &Params) -> Result<usize, Error> {
    match p.get("index").filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(i) => i.parse::<usize>().map_err(|_| {
            Error::invalid_param(
                "index",
                FieldCode::Invalid,
                format!("invalid index: \"{i}\""),
            )
        }),
    }
}

/// `If-Modified-Since` (when no `If-None-Match` is sent) at or after
/// `last_modified`.
fn not_modified_since(headers: &HeaderMap, last_modified: Option<&str>) -> bool {
    if let (Some(ims), Some(lm)) = (
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok()),
        last_modified,
    ) && headers.get(header::IF_NONE_MATCH).is_none()
        && let (Ok(since), Ok(modified)) = (
            httpdate::parse_http_date(ims),
            httpdate::parse_http_date(lm),
        )
    {
        return modified <= since;
    }
    false
}

/// GetImageFile: `GET /images/{uuid}/file[?index=N][&redirect=true]`, with
/// `Content-MD5`, `Etag` (sha1), `Last-Modified`, Range/206/416 and
/// If-Range. With `[downloads] redirect` on and `?redirect=true`, a file in
/// an S3 store is answered `302 Found` to a presigned URL of its object.
#[utoipa::path(
    get,
    path = "/images/{uuid}/file",
    operation_id = "GetImageFile",
    tag = "files",
    summary = "GetImageFile",
    params(
        super::openapi::GetImageFileQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::RangeHeader,
        (
            "If-Range" = Option<String>,
            Header,
            description = "Etag (sha1) or Last-Modified; else the whole file",
        ),
        super::openapi::IfMatch,
        super::openapi::IfNoneMatch,
        ("If-Modified-Since" = Option<String>, Header),
    ),
    responses(
        (
            status = 200,
            description = "The file",
            body = super::openapi::Binary,
            content_type = "application/octet-stream",
            headers(
                ("Content-MD5" = String),
                ("Etag" = String, description = "Entity tag"),
                ("Accept-Ranges" = String),
                ("Last-Modified" = String),
            ),
        ),
        (
            status = 206,
            description = "The requested range",
            body = super::openapi::Binary,
            content_type = "application/octet-stream",
            headers(("Content-Range" = String)),
        ),
        (
            status = 302,
            description = "?redirect=true with [downloads] redirect on: the file is at Location, a \
                presigned URL of the S3 object valid for downloads.presign_ttl_secs (no \
                credentials needed). Following it, the store answers with its own ETag and no \
                Content-MD5: keep the Content-MD5 of this response",
            headers(
                ("Location" = inline(super::openapi::UriString)),
                ("Content-MD5" = String),
                ("Etag" = String, description = "Entity tag"),
                ("Last-Modified" = String),
                ("Cache-Control" = inline(super::openapi::NoStore)),
            ),
        ),
        (status = 304, response = super::openapi::NotModified),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn get_file(
    State(st): State<AppState>,
    ctx: ImageCtx<GetFile>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let index = file_index(&ctx.params)?;
    let (img, f) = st.images.file(&ctx.caller, ctx.uuid, index).await?;
    if let Some(r) = check_conditional(&headers, &f.sha1)? {
        return Ok(r);
    }
    let last_modified = http_date(&f.mtime);
    if not_modified_since(&headers, last_modified.as_deref()) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    if st.config.downloads.redirect
        && ctx.params.bool("redirect")? == Some(true)
        && let Some(resp) = redirect(&st, &img, &f, last_modified.as_deref(), method).await?
    {
        return Ok(resp);
    }
    let if_range = IfRange {
        etag: &f.sha1,
        last_modified: last_modified.as_deref(),
    };
    let unsatisfiable = || format!("range not satisfiable for a file of {} bytes", f.size);
    let open = |r| st.images.open_file(&img, &f, r);
    let mut resp = ranged(&headers, f.size, Some(if_range), unsatisfiable, open).await?;
    if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(resp);
    }
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, header_value(&format!("\"{}\"", f.sha1))?);
    if let Some(lm) = &last_modified {
        headers.insert(header::LAST_MODIFIED, header_value(lm)?);
    }
    if resp.status() == StatusCode::OK {
        let md5 = header_value(&f.content_md5)?;
        resp.headers_mut()
            .insert(header::HeaderName::from_static("content-md5"), md5);
    }
    Ok(resp)
}

/// `302 Found` to a presigned URL of the file's object, with the file's
/// `Content-MD5`, `ETag` and `Last-Modified` (the object store answers the
/// URL with its own ETag and no Content-MD5); None if its store cannot
/// presign (local files), then the bytes are served as usual.
async fn redirect(
    st: &AppState,
    img: &crate::manifest::Image,
    f: &crate::manifest::ImageFile,
    last_modified: Option<&str>,
    method: axum::http::Method,
) -> Result<Option<Response>, Error> {
    let ttl = std::time::Duration::from_secs(st.config.downloads.presign_ttl_secs);
    let count = method != axum::http::Method::HEAD;
    let Some(url) = st.images.file_url(img, f, ttl, count).await? else {
        return Ok(None);
    };
    let mut resp = StatusCode::FOUND.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::LOCATION, header_value(&url)?);
    // The URL expires: no cache may keep the redirect.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::ETAG, header_value(&format!("\"{}\"", f.sha1))?);
    headers.insert(
        header::HeaderName::from_static("content-md5"),
        header_value(&f.content_md5)?,
    );
    if let Some(lm) = last_modified {
        headers.insert(header::LAST_MODIFIED, header_value(lm)?);
    }
    Ok(Some(resp))
}

/// A header value; one that cannot be is a server error.
fn header_value(v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(Error::internal)
}

/// AddImageIcon: `PUT /images/{uuid}/icon` with an image/png|jpeg|gif body.
#[utoipa::path(
    put,
    path = "/images/{uuid}/icon",
    operation_id = "AddImageIcon",
    tag = "files",
    summary = "AddImageIcon",
    description = "PNG, JPEG or GIF, at most 128 KiB; another type or a larger body: 400 Upload.",
    params(
        super::openapi::ImageUuid,
        ("sha1" = Option<String>, Query),
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    request_body(
        content(
            (super::openapi::Binary = "image/png"),
            (super::openapi::Binary = "image/jpeg"),
            (super::openapi::Binary = "image/gif"),
        ),
        description = "The icon: PNG, JPEG or GIF, at most 128 KiB",
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn add_icon(
    State(st): State<AppState>,
    ctx: ImageCtx,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let params = AddIconParams {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string()),
        sha1: ctx.params.get("sha1").map(str::to_string),
        content_length: content_length(&headers),
    };
    let declared = params.content_length;
    let mut stream = body
        .into_data_stream()
        .map_err(|e| Error::Upload(format!("error reading the request body: {e}")));
    match st
        .images
        .add_icon(&ctx.caller, ctx.uuid, params, stream.by_ref())
        .await
    {
        Ok(img) => image_response(&st, img, ctx.opts).await,
        Err(e) => {
            drain(stream, declared).await;
            Err(e)
        }
    }
}

/// GetImageIcon: `GET /images/{uuid}/icon`.
#[utoipa::path(
    get,
    path = "/images/{uuid}/icon",
    operation_id = "GetImageIcon",
    tag = "files",
    summary = "GetImageIcon",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::IfMatch,
        super::openapi::IfNoneMatch,
    ),
    responses(
        (
            status = 200,
            description = "The icon",
            content(
                (super::openapi::Binary = "image/png"),
                (super::openapi::Binary = "image/jpeg"),
                (super::openapi::Binary = "image/gif"),
            ),
            headers(("Etag" = String, description = "Entity tag"), ("Content-MD5" = String)),
        ),
        (status = 304, response = super::openapi::NotModified),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn get_icon(
    State(st): State<AppState>,
    ctx: ImageCtx<NoRender>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let (_img, icon, stream) = st.images.icon(&ctx.caller, ctx.uuid).await?;
    if let Some(r) = check_conditional(&headers, &icon.sha1)? {
        return Ok(r);
    }
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    let pairs = [
        (header::CONTENT_TYPE, icon.content_type.clone()),
        (header::CONTENT_LENGTH, icon.size.to_string()),
        (header::ETAG, format!("\"{}\"", icon.sha1)),
        (
            header::HeaderName::from_static("content-md5"),
            icon.content_md5.clone(),
        ),
    ];
    for (k, v) in pairs {
        headers.insert(k, HeaderValue::from_str(&v).map_err(Error::internal)?);
    }
    if let Some(lm) = http_date(&icon.mtime) {
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&lm).map_err(Error::internal)?,
        );
    }
    Ok(resp)
}

/// DeleteImageIcon: `DELETE /images/{uuid}/icon` → 200 image.
#[utoipa::path(
    delete,
    path = "/images/{uuid}/icon",
    operation_id = "DeleteImageIcon",
    tag = "files",
    summary = "DeleteImageIcon",
    params(
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
        super::openapi::InclAdminFields,
    ),
    responses(
        (status = 200, response = super::openapi::ImageResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn delete_icon(State(st): State<AppState>, ctx: ImageCtx) -> Result<Response, Error> {
    let img = st.images.delete_icon(&ctx.caller, ctx.uuid).await?;
    image_response(&st, img, ctx.opts).await
}
