//! tus 1.0 endpoints under `/uploads` (core, creation,
//! creation-with-upload, termination, checksum, expiration,
//! concatenation), the
//! `Content-Range` PUT form, and the JSON views of upload sessions.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use uuid::Uuid;

use super::range::ranged;
use super::{AppState, json_response};
use crate::db::uploads::{Concat, Upload};
use crate::digest::CHECKSUM_ALGORITHMS;
use crate::error::Error;
use crate::identity::Caller;

use crate::tus;

mod headers;

use headers::{
    concat_header, encode_metadata, parse_checksum, parse_concat, parse_metadata, parse_u64_header,
    require_tus,
};
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration,concatenation,concatenation-unfinished";

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// `Tus-Resumable` on every response; `Tus-Version` on a 412.
pub async fn tus_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    set(&mut resp, tus::RESUMABLE, tus::VERSION);
    if resp.status() == StatusCode::PRECONDITION_FAILED {
        set(&mut resp, tus::SUPPORTED_VERSIONS, tus::VERSION);
    }
    resp
}

fn http_date(iso: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(iso)
        .map(|t| httpdate::fmt_http_date(std::time::SystemTime::from(t)))
        .unwrap_or_default()
}

fn body_stream(body: Body) -> impl futures_util::Stream<Item = Result<bytes::Bytes, Error>> + Send {
    body.into_data_stream()
        .map_err(|e| Error::Upload(format!("error reading the request body: {e}")))
}

fn parse_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::UploadNotFound(Uuid::nil()))
}

/// The JSON view of an upload (`GET /uploads/{id}/info`, `GET /uploads`).
pub fn upload_json(u: &Upload) -> crate::wire::UploadInfo {
    // Progress of the multipart upload behind it.
    let multipart = u.multipart.as_ref();
    crate::wire::UploadInfo {
        id: u.id,
        owner: u.owner,
        offset: u.offset,
        length: u.length,
        state: u.state.as_str().into(),
        expires_at: u.expires_at.to_string(),
        created_at: u.created_at.to_string(),
        path: u.path.clone(),
        sha1: u.sha1.clone(),
        content_md5: u.md5.clone(),
        image_uuid: u.image_uuid,
        error: u.error.clone(),
        metadata: u.metadata.clone(),
        concat: match &u.concat {
            Concat::None => None,
            Concat::Partial { .. } => Some("partial".into()),
            Concat::Final { .. } => Some("final".into()),
        },
        final_upload: match &u.concat {
            Concat::Partial { used_by } => *used_by,
            _ => None,
        },
        partials: match &u.concat {
            Concat::Final { parts } => Some(parts.clone()),
            _ => None,
        },
        parts_sent: multipart.map(|m| m.parts.len() as u64),
        multipart_upload_id: multipart.map(|m| m.upload_id.clone()),
        bytes_in_parts: multipart.map(crate::uploads::bytes_in_parts),
    }
}

/// `OPTIONS /uploads`: what this tus server supports.
#[utoipa::path(
    options,
    path = "/uploads",
    operation_id = "UploadsOptions",
    tag = "uploads",
    summary = "tus discovery",
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
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub async fn options(State(st): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    set(&mut r, tus::SUPPORTED_VERSIONS, tus::VERSION);
    set(&mut r, tus::EXTENSION, TUS_EXTENSIONS);
    set(
        &mut r,
        tus::MAX_SIZE,
        &st.uploads.max_file_size().to_string(),
    );
    set(
        &mut r,
        "tus-checksum-algorithm",
        &CHECKSUM_ALGORITHMS.join(","),
    );
    r
}

/// The CRC-64/NVME of the upload's bytes up to its offset, when the server
/// has one: not for sessions created before it kept CRCs, nor for a
/// partial written in place into its final (its bytes are hashed as the
/// final's only).
fn crc64_of(u: &Upload) -> Option<u64> {
    u.hash
        .crc64
        .filter(|_| u.concat_place.is_none() && u.hash.size == u.offset)
}

fn offset_response(status: StatusCode, u: &Upload) -> Response {
    let mut r = status.into_response();
    set(&mut r, tus::UPLOAD_OFFSET, &u.offset.to_string());
    if let Some(c) = crc64_of(u) {
        set(
            &mut r,
            tus::UPLOAD_CRC64,
            &crate::digest::crc64::to_base64(c),
        );
    }
    set(
        &mut r,
        tus::UPLOAD_EXPIRES,
        &http_date(&u.expires_at.to_string()),
    );
    r
}

/// `POST /uploads` (creation, creation-with-upload).
#[utoipa::path(
    post,
    path = "/uploads",
    operation_id = "CreateUpload",
    tag = "uploads",
    summary = "tus creation (and creation-with-upload)",
    description = "With `Content-Type: application/offset+octet-stream` and a body, the first \
        bytes are stored at once (a refused body leaves the upload at the offset HEAD reports).",
    params(
        super::openapi::Account,
        super::openapi::TusResumable,
        (
            "Upload-Length" = u64,
            Header,
            description = "Total size; missing or not an integer: 400 InvalidHeader; over \
                max_file_size (Tus-Max-Size) or the account's bytes in flight: 413 QuotaExceeded",
        ),
        (
            "Upload-Metadata" = Option<String>,
            Header,
            description = "`key base64,key2 base64`; keys filename, path (a storage path of the \
                caller), content_md5 (base64 MD5, checked at completion). Malformed: 400.",
        ),
        ("Upload-Defer-Length" = Option<String>, Header, description = "Not supported: 400"),
        (
            "Upload-Concat" = Option<String>,
            Header,
            description = "tus concatenation. `partial`: a partial upload (no `path` metadata: \
                422). `final;/uploads/A /uploads/B` (URLs absolute or as Location gave them, at \
                most 64): the final upload made of the caller's unused partials in that order, \
                complete or not (concatenation-unfinished); no Upload-Length needed (if sent, it \
                must be their sum); its bytes are copied from the partials, its Upload-Offset is \
                the complete prefix, and it completes (the partials removed) when the last of them \
                does. Unknown or foreign partial: 404 UploadNotFound; not a partial, listed twice, \
                malformed: 400 InvalidHeader; used by another final: 409 FileInUse. PATCH/PUT on a \
                final: 403 UploadIsFinal.",
        ),
        super::openapi::UploadChecksum,
    ),
    request_body(
        content = Option<super::openapi::Binary>,
        content_type = "application/offset+octet-stream",
    ),
    responses(
        (
            status = 201,
            description = "Created",
            headers(
                ("Location" = String, description = "/uploads/{id}"),
                ("Tus-Resumable" = String, description = "Always 1.0.0"),
                ("Upload-Offset" = u64, description = "Bytes stored so far"),
                (
                    "Upload-Crc64nvme" = String,
                    description = "CRC-64/NVME of the first Upload-Offset bytes (see HeadUpload)"
                ),
                (
                    "Upload-Expires" = String,
                    description = "When the idle upload expires (HTTP date)"
                ),
            ),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_tus(&headers)?;
    if header_text(&headers, tus::UPLOAD_DEFER_LENGTH).is_some() {
        return Err(Error::InvalidHeader(
            "Upload-Defer-Length is not supported: send Upload-Length".into(),
        ));
    }
    let concat = parse_concat(header_text(&headers, tus::UPLOAD_CONCAT))?;
    let metadata = parse_metadata(header_text(&headers, tus::UPLOAD_METADATA))?;
    if let Concat::Final { parts } = concat {
        let declared = parse_u64_header(&headers, tus::UPLOAD_LENGTH)?;
        let up = st
            .uploads
            .create_final(&caller, parts, declared, metadata)
            .await?;
        let mut r = offset_response(StatusCode::CREATED, &up);
        set(&mut r, "location", &format!("/uploads/{}", up.id));
        return Ok(r);
    }
    let length = parse_u64_header(&headers, tus::UPLOAD_LENGTH)?
        .ok_or_else(|| Error::InvalidHeader("Upload-Length is required".into()))?;
    let mut up = match concat {
        Concat::Partial { .. } => st.uploads.create_partial(&caller, length, metadata).await?,
        _ => st.uploads.create(&caller, length, metadata).await?,
    };
    let with_body = header_text(&headers, "content-type").as_deref()
        == Some(tus::PATCH_CONTENT_TYPE)
        && parse_u64_header(&headers, "content-length")?.unwrap_or(1) > 0
        && up.length > 0;
    if with_body {
        let checksum = parse_checksum(&headers)?;
        let cl = parse_u64_header(&headers, "content-length")?;
        match st
            .uploads
            .append(&caller, up.id, 0, cl, checksum, body_stream(body))
            .await
        {
            Ok(u) => up = u,
            // The upload exists; the client resumes from the offset it reads.
            Err(e) => {
                tracing::info!(upload.id = %up.id, error = %e, "creation-with-upload body refused")
            }
        }
        up = st.uploads.get(&caller, up.id).await.unwrap_or(up);
    }
    let mut r = offset_response(StatusCode::CREATED, &up);
    set(&mut r, "location", &format!("/uploads/{}", up.id));
    Ok(r)
}

/// `HEAD /uploads/{id}`.
#[utoipa::path(
    head,
    path = "/uploads/{id}",
    operation_id = "HeadUpload",
    tag = "uploads",
    summary = "tus offset",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
        super::openapi::TusResumable,
    ),
    responses(
        (
            status = 200,
            description = "Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata; \
                Cache-Control: no-store",
            headers(
                ("Tus-Resumable" = String, description = "Always 1.0.0"),
                ("Upload-Offset" = u64, description = "Bytes stored so far"),
                (
                    "Upload-Crc64nvme" = String,
                    description = "CRC-64/NVME of the first Upload-Offset bytes in file order, \
                        base64 of its 8 big-endian bytes (as S3's x-amz-checksum-crc64nvme); \
                        absent for a partial upload written into its final, and for uploads \
                        created before the server kept CRCs"
                ),
                ("Upload-Length" = u64),
                (
                    "Upload-Expires" = String,
                    description = "When the idle upload expires (HTTP date)"
                ),
                ("Upload-Metadata" = String),
                (
                    "Upload-Concat" = String,
                    description = "`partial`, or `final;/uploads/A /uploads/B` (tus \
                        concatenation); absent for an ordinary upload"
                ),
            ),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 410, response = super::openapi::Gone),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn head(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_tus(&headers)?;
    let up = st.uploads.get(&caller, parse_id(&id)?).await?;
    if up.state == crate::db::uploads::UploadState::Uploading && st.uploads.is_expired(&up) {
        return Err(Error::UploadExpired(up.id));
    }
    let mut r = offset_response(StatusCode::OK, &up);
    set(&mut r, tus::UPLOAD_LENGTH, &up.length.to_string());
    set(&mut r, "cache-control", "no-store");
    if let Some(c) = concat_header(&up.concat) {
        set(&mut r, tus::UPLOAD_CONCAT, &c);
    }
    if !up.metadata.is_empty() {
        set(&mut r, tus::UPLOAD_METADATA, &encode_metadata(&up.metadata));
    }
    Ok(r)
}

/// `PATCH /uploads/{id}`: append at `Upload-Offset`.
#[utoipa::path(
    patch,
    path = "/uploads/{id}",
    operation_id = "PatchUpload",
    tag = "uploads",
    summary = "tus append at Upload-Offset",
    description = "When it answers 204 the bytes, the new offset and the hash state are on stable \
        storage.",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
        super::openapi::TusResumable,
        (
            "Upload-Offset" = u64,
            Header,
            description = "Must equal the server's offset (409 UploadOffsetMismatch); missing or \
                malformed: 400",
        ),
        super::openapi::UploadChecksum,
    ),
    request_body(
        content = super::openapi::Binary,
        content_type = "application/offset+octet-stream",
        description = "Content-Type must be application/offset+octet-stream (else 415)",
    ),
    responses(
        (status = 204, response = super::openapi::TusNoContent),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 410, response = super::openapi::Gone),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 423, response = super::openapi::Locked),
        (status = 460, response = super::openapi::ChecksumMismatch),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    require_tus(&headers)?;
    let ct = header_text(&headers, "content-type").unwrap_or_default();
    if ct.split(';').next().map(str::trim) != Some(tus::PATCH_CONTENT_TYPE) {
        return Err(Error::UnsupportedMediaType(format!(
            "PATCH needs Content-Type: {}",
            tus::PATCH_CONTENT_TYPE
        )));
    }
    let offset = parse_u64_header(&headers, tus::UPLOAD_OFFSET)?
        .ok_or_else(|| Error::InvalidHeader("Upload-Offset is required".into()))?;
    let checksum = parse_checksum(&headers)?;
    let cl = parse_u64_header(&headers, "content-length")?;
    let up = st
        .uploads
        .append(
            &caller,
            parse_id(&id)?,
            offset,
            cl,
            checksum,
            body_stream(body),
        )
        .await?;
    Ok(offset_response(StatusCode::NO_CONTENT, &up))
}

/// `PUT /uploads/{id}` with `Content-Range: bytes START-END/TOTAL`: the same
/// append as a PATCH at START; answers with `Range: bytes=0-LAST`.
#[utoipa::path(
    put,
    path = "/uploads/{id}",
    operation_id = "PutUploadRange",
    tag = "uploads",
    summary = "Append with Content-Range (GCS/OCI/curl -T form of PATCH)",
    description = "`Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL` to query); START \
        must be the current offset (else 416 with `Range: bytes=0-LAST` and Upload-Offset). \
        Answers 204 with Upload-Offset and Range.",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
        (
            "Content-Range" = String,
            Header,
            description = "Missing or malformed, or TOTAL not the Upload-Length: 400 InvalidHeader",
            example = "bytes 0-99/100",
        ),
        super::openapi::UploadChecksum,
    ),
    request_body(
        content = Option<super::openapi::Binary>,
        content_type = "application/octet-stream",
    ),
    responses(
        (
            status = 204,
            description = "Appended",
            headers(
                ("Tus-Resumable" = String, description = "Always 1.0.0"),
                ("Upload-Offset" = u64, description = "Bytes stored so far"),
                ("Range" = String),
            ),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 410, response = super::openapi::Gone),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 423, response = super::openapi::Locked),
        (status = 460, response = super::openapi::ChecksumMismatch),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let id = parse_id(&id)?;
    let cr = header_text(&headers, "content-range").ok_or_else(|| {
        Error::InvalidHeader("PUT needs Content-Range: bytes START-END/TOTAL".into())
    })?;
    let spec = cr
        .strip_prefix("bytes ")
        .ok_or_else(|| Error::InvalidHeader(format!("bad Content-Range \"{cr}\"")))?;
    let (range, total) = spec
        .split_once('/')
        .ok_or_else(|| Error::InvalidHeader(format!("bad Content-Range \"{cr}\"")))?;
    let cur = st.uploads.get(&caller, id).await?;
    if total != "*" && total.parse::<u64>().ok() != Some(cur.length) {
        return Err(Error::InvalidHeader(format!(
            "Content-Range total {total} differs from Upload-Length {}",
            cur.length
        )));
    }
    let (start, len) = if range == "*" {
        (cur.offset, 0)
    } else {
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| Error::InvalidHeader(format!("bad Content-Range \"{cr}\"")))?;
        let (a, b): (u64, u64) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if b >= a => (a, b),
            _ => return Err(Error::InvalidHeader(format!("bad Content-Range \"{cr}\""))),
        };
        let len = (b - a).checked_add(1).filter(|_| b < cur.length);
        let Some(len) = len else {
            let mut r = Error::RangeNotSatisfiable(format!(
                "Content-Range \"{cr}\" goes past Upload-Length {}",
                cur.length
            ))
            .into_response();
            set(&mut r, tus::UPLOAD_OFFSET, &cur.offset.to_string());
            return Ok(r);
        };
        (a, len)
    };
    if let Some(cl) = parse_u64_header(&headers, "content-length")?
        && cl != len
    {
        return Err(Error::InvalidHeader(format!(
            "Content-Length {cl} differs from the {len} bytes of Content-Range \"{cr}\""
        )));
    }
    if start != cur.offset {
        let mut r = Error::RangeNotSatisfiable(format!(
            "Content-Range starts at {start}, the upload is at {}",
            cur.offset
        ))
        .into_response();
        if cur.offset > 0 {
            set(&mut r, "range", &format!("bytes=0-{}", cur.offset - 1));
        }
        set(&mut r, tus::UPLOAD_OFFSET, &cur.offset.to_string());
        return Ok(r);
    }
    let checksum = parse_checksum(&headers)?;
    let up = st
        .uploads
        .append(&caller, id, start, Some(len), checksum, body_stream(body))
        .await?;
    let mut r = offset_response(StatusCode::NO_CONTENT, &up);
    if up.offset > 0 {
        set(&mut r, "range", &format!("bytes=0-{}", up.offset - 1));
    }
    Ok(r)
}

/// `DELETE /uploads/{id}` (termination).
#[utoipa::path(
    delete,
    path = "/uploads/{id}",
    operation_id = "DeleteUpload",
    tag = "uploads",
    summary = "tus termination",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
        super::openapi::TusResumable,
    ),
    responses(
        (
            status = 204,
            description = "Terminated; storage freed",
            headers(("Tus-Resumable" = String, description = "Always 1.0.0")),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 423, response = super::openapi::Locked),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    require_tus(&headers)?;
    st.uploads.terminate(&caller, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /uploads/{id}`: the bytes stored so far, with Range.
#[utoipa::path(
    get,
    path = "/uploads/{id}",
    operation_id = "GetUploadData",
    tag = "uploads",
    summary = "The bytes stored so far",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
        super::openapi::RangeHeader,
    ),
    responses(
        (
            status = 200,
            description = "The bytes",
            body = super::openapi::Binary,
            content_type = "application/octet-stream",
            headers(("Upload-Offset" = u64, description = "Bytes stored so far")),
        ),
        (
            status = 206,
            description = "The requested range",
            body = super::openapi::Binary,
            content_type = "application/octet-stream",
            headers(("Content-Range" = String)),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 503, response = super::openapi::StorageIsDown),
    ),
)]
pub async fn get_data(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let up = st.uploads.get(&caller, parse_id(&id)?).await?;
    let unsatisfiable = || format!("the upload holds {} bytes", up.offset);
    let open = |r| st.uploads.open_data(&up, r);
    let mut r = ranged(&headers, up.offset, None, unsatisfiable, open).await?;
    if r.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(r);
    }
    set(&mut r, tus::UPLOAD_OFFSET, &up.offset.to_string());
    set(&mut r, tus::UPLOAD_LENGTH, &up.length.to_string());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /uploads/{id}/info`.
#[utoipa::path(
    get,
    path = "/uploads/{id}/info",
    operation_id = "GetUploadInfo",
    tag = "uploads",
    summary = "An upload session as JSON",
    params(
        super::openapi::UploadId,
        super::openapi::Account,
    ),
    responses(
        (status = 200, description = "The upload", body = crate::wire::UploadInfo),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn info(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let up = st.uploads.get(&caller, parse_id(&id)?).await?;
    Ok(json_response(StatusCode::OK, &upload_json(&up)))
}

/// `GET /uploads`: the caller's sessions.
#[utoipa::path(
    get,
    path = "/uploads",
    operation_id = "ListUploads",
    tag = "uploads",
    summary = "The caller's upload sessions",
    params(
        super::openapi::Account,
    ),
    responses(
        (
            status = 200,
            description = "Upload sessions",
            body = [crate::wire::UploadInfo],
            headers(("Tus-Resumable" = String, description = "Always 1.0.0")),
            links(
                ("GetUploadData" = (
                    operation_id = "GetUploadData",
                    parameters(("id" = "$response.body#/0/id")),
                )),
                ("HeadUpload" = (
                    operation_id = "HeadUpload",
                    parameters(("id" = "$response.body#/0/id")),
                )),
                ("PatchUpload" = (
                    operation_id = "PatchUpload",
                    parameters(("id" = "$response.body#/0/id")),
                )),
                ("PutUploadRange" = (
                    operation_id = "PutUploadRange",
                    parameters(("id" = "$response.body#/0/id")),
                )),
                ("DeleteUpload" = (
                    operation_id = "DeleteUpload",
                    parameters(("id" = "$response.body#/0/id")),
                )),
                ("GetUploadInfo" = (
                    operation_id = "GetUploadInfo",
                    parameters(("id" = "$response.body#/0/id")),
                )),
            ),
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    p: super::extract::Params,
) -> Result<Response, Error> {
    if let Some((k, _)) =
        p.0.iter()
            .find(|(k, _)| !matches!(k.as_str(), "limit" | "marker" | "account"))
    {
        return Err(Error::invalid_param(
            k,
            crate::error::FieldCode::Invalid,
            format!("unknown parameter \"{k}\" (GET /uploads takes limit, marker and account)"),
        ));
    }
    let limit = match p.get("limit").filter(|s| !s.is_empty()) {
        None => crate::uploads::MAX_LIST,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=crate::uploads::MAX_LIST).contains(n))
            .ok_or_else(|| {
                Error::invalid_param(
                    "limit",
                    crate::error::FieldCode::Invalid,
                    format!(
                        "invalid limit \"{l}\": a number from 1 to {}",
                        crate::uploads::MAX_LIST
                    ),
                )
            })?,
    };
    let marker = match p.get("marker").filter(|s| !s.is_empty()) {
        None => None,
        Some(m) => Some(Uuid::parse_str(m).map_err(|_| {
            Error::invalid_param(
                "marker",
                crate::error::FieldCode::Invalid,
                format!("invalid marker \"{m}\": not an upload id"),
            )
        })?),
    };
    let ups = st.uploads.list(&caller, limit, marker).await?;
    let out: Vec<_> = ups.iter().map(upload_json).collect();
    Ok(json_response(StatusCode::OK, &out))
}
