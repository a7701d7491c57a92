//! File and icon endpoints: AddImageFile, GetImageFile (with Range,
//! If-Range and conditional requests), Add/Get/DeleteImageIcon.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};

use super::extract::{ImageUuid, Params};
use super::images::{channel_gate, check_conditional, image_response, render_opts};
use super::{ApiVersion, AppState, parse_range};
use crate::error::{Error, FieldCode};
use crate::identity::Caller;
use crate::images::{AddFileParams, AddIconParams};

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// Bytes of a refused upload we still read so the connection stays usable.
const DRAIN_LIMIT: u64 = 64 << 20;

/// AddImageFile: `PUT /images/{uuid}/file?compression=…[&sha1=…]`.
pub async fn add_file(
    State(st): State<AppState>,
    caller: Caller,
    v: axum::Extension<ApiVersion>,
    ImageUuid(uuid): ImageUuid,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    if p.get("source").is_some_and(|s| !s.is_empty()) {
        return Err(Error::NotAvailable(
            "adding a file from a source IMGAPI is not available yet".into(),
        ));
    }
    let opts = render_opts(&st, &p, &caller, v.0)?;
    channel_gate(&st, &p, &caller, Some(uuid), true).await?;
    if let Some(upload) = p.get("upload").filter(|s| !s.is_empty()) {
        // Attach a finished upload: moved in place, not re-uploaded.
        let upload =
            uuid::Uuid::parse_str(upload).map_err(|_| Error::UploadNotFound(uuid::Uuid::nil()))?;
        let img = st.images.get(&caller, uuid).await?;
        let r = crate::registrar::FileRef {
            upload: Some(upload),
            compression: Some(p.get("compression").unwrap_or("").to_string())
                .filter(|c| !c.is_empty()),
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
        let img = st.registrar.attach(&caller, &img, r).await?;
        return Ok(image_response(&img, opts));
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
        .add_file(&caller, uuid, params, stream.by_ref())
        .await;
    match res {
        Ok(img) => Ok(image_response(&img, opts)),
        Err(e) => {
            drain(stream, declared).await;
            Err(e)
        }
    }
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

/// GetImageFile: `GET /images/{uuid}/file[?index=N]`, with `Content-MD5`,
/// `Etag` (sha1), `Last-Modified`, Range/206/416 and If-Range.
pub async fn get_file(
    State(st): State<AppState>,
    caller: Caller,
    ImageUuid(uuid): ImageUuid,
    p: Params,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let index = match p.get("index").filter(|s| !s.is_empty()) {
        None => 0,
        Some(i) => i.parse::<usize>().map_err(|_| {
            Error::invalid_param(
                "index",
                FieldCode::Invalid,
                format!("invalid index: \"{i}\""),
            )
        })?,
    };
    channel_gate(&st, &p, &caller, Some(uuid), false).await?;
    let (img, f) = st.images.file(&caller, uuid, index).await?;
    if let Some(r) = check_conditional(&headers, &f.sha1)? {
        return Ok(r);
    }
    let last_modified = http_date(&f.mtime);
    if let (Some(ims), Some(lm)) = (
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok()),
        last_modified.as_deref(),
    ) && headers.get(header::IF_NONE_MATCH).is_none()
        && let (Ok(since), Ok(modified)) = (
            httpdate::parse_http_date(ims),
            httpdate::parse_http_date(lm),
        )
        && modified <= since
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut range = None;
    if let Some(r) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        let if_range_ok = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(ir) => {
                let t = ir.trim().trim_matches('"');
                t == f.sha1 || Some(ir.trim()) == last_modified.as_deref()
            }
        };
        if if_range_ok {
            match parse_range(r, f.size) {
                Ok(r) => range = r,
                Err(()) => {
                    let mut resp = Error::RangeNotSatisfiable(format!(
                        "range not satisfiable for a file of {} bytes",
                        f.size
                    ))
                    .into_response();
                    resp.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("bytes */{}", f.size))
                            .map_err(Error::internal)?,
                    );
                    return Ok(resp);
                }
            }
        }
    }
    let stream = st.images.open_file(&img, &f, range.clone()).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &str| -> Result<(), Error> {
        h.insert(k, HeaderValue::from_str(v).map_err(Error::internal)?);
        Ok(())
    };
    set(h, header::CONTENT_TYPE, "application/octet-stream")?;
    set(h, header::ETAG, &format!("\"{}\"", f.sha1))?;
    set(h, header::ACCEPT_RANGES, "bytes")?;
    if let Some(lm) = &last_modified {
        set(h, header::LAST_MODIFIED, lm)?;
    }
    match range {
        Some(r) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            set(
                h,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{}", r.start, r.end - 1, f.size),
            )?;
            set(h, header::CONTENT_LENGTH, &(r.end - r.start).to_string())?;
        }
        None => {
            set(h, header::CONTENT_LENGTH, &f.size.to_string())?;
            set(
                h,
                header::HeaderName::from_static("content-md5"),
                &f.content_md5,
            )?;
        }
    }
    Ok(resp)
}

/// AddImageIcon: `PUT /images/{uuid}/icon` with an image/png|jpeg|gif body.
pub async fn add_icon(
    State(st): State<AppState>,
    caller: Caller,
    v: axum::Extension<ApiVersion>,
    ImageUuid(uuid): ImageUuid,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let opts = render_opts(&st, &p, &caller, v.0)?;
    channel_gate(&st, &p, &caller, Some(uuid), true).await?;
    let params = AddIconParams {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string()),
        sha1: p.get("sha1").map(str::to_string),
        content_length: content_length(&headers),
    };
    let declared = params.content_length;
    let mut stream = body
        .into_data_stream()
        .map_err(|e| Error::Upload(format!("error reading the request body: {e}")));
    match st
        .images
        .add_icon(&caller, uuid, params, stream.by_ref())
        .await
    {
        Ok(img) => Ok(image_response(&img, opts)),
        Err(e) => {
            drain(stream, declared).await;
            Err(e)
        }
    }
}

/// GetImageIcon: `GET /images/{uuid}/icon`.
pub async fn get_icon(
    State(st): State<AppState>,
    caller: Caller,
    ImageUuid(uuid): ImageUuid,
    p: Params,
    headers: HeaderMap,
) -> Result<Response, Error> {
    channel_gate(&st, &p, &caller, Some(uuid), false).await?;
    let (_img, icon, stream) = st.images.icon(&caller, uuid).await?;
    if let Some(r) = check_conditional(&headers, &icon.sha1)? {
        return Ok(r);
    }
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
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
        h.insert(k, HeaderValue::from_str(&v).map_err(Error::internal)?);
    }
    if let Some(lm) = http_date(&icon.mtime) {
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&lm).map_err(Error::internal)?,
        );
    }
    Ok(resp)
}

/// DeleteImageIcon: `DELETE /images/{uuid}/icon` → 200 image.
pub async fn delete_icon(
    State(st): State<AppState>,
    caller: Caller,
    v: axum::Extension<ApiVersion>,
    ImageUuid(uuid): ImageUuid,
    p: Params,
) -> Result<Response, Error> {
    let opts = render_opts(&st, &p, &caller, v.0)?;
    channel_gate(&st, &p, &caller, Some(uuid), true).await?;
    let img = st.images.delete_icon(&caller, uuid).await?;
    Ok(image_response(&img, opts))
}

#[cfg(test)]
mod tests {
    use crate::api::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some(50..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-2", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
