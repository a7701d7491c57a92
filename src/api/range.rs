//! Ranged responses (`Range`, `If-Range`, 206, 416) for image files and
//! upload data.

use std::future::Future;
use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::header_or_dash;
use crate::error::Error;
use crate::store::ByteStream;

/// The validators an `If-Range` is compared with; without them `If-Range`
/// is ignored and a `Range` always applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfRange<'a> {
    /// The entity tag, unquoted.
    pub etag: &'a str,
    /// `Last-Modified` as an HTTP date.
    pub last_modified: Option<&'a str>,
}

/// The body of `size` bytes as 200, or the requested range as 206 with
/// `Content-Range`, or 416 (`Content-Range: bytes */SIZE`, the error
/// `unsatisfiable`) for a range outside it. Sets `Content-Type`,
/// `Accept-Ranges` and `Content-Length`; `open` opens the bytes of the range
/// (`None`: all of them).
pub(crate) async fn ranged<F, Fut>(
    headers: &HeaderMap,
    size: u64,
    if_range: Option<IfRange<'_>>,
    unsatisfiable: impl FnOnce() -> String,
    open: F,
) -> Result<Response, Error>
where
    F: FnOnce(Option<Range<u64>>) -> Fut,
    Fut: Future<Output = Result<ByteStream, Error>>,
{
    let range = match requested(headers, size, if_range) {
        Ok(r) => r,
        Err(()) => {
            let mut resp = Error::RangeNotSatisfiable(unsatisfiable()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                header_or_dash(&format!("bytes */{size}")),
            );
            return Ok(resp);
        }
    };
    let stream = open(range.clone()).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match range {
        Some(r) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_or_dash(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        None => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
    }
    Ok(resp)
}

/// The range to serve: `Ok(None)` for the whole body (no or an ignored
/// `Range`, or an `If-Range` that does not match), `Err` for 416.
fn requested(
    headers: &HeaderMap,
    size: u64,
    if_range: Option<IfRange<'_>>,
) -> Result<Option<Range<u64>>, ()> {
    let Some(r) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let if_range_ok = match (
        if_range,
        headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()),
    ) {
        (Some(v), Some(ir)) => {
            ir.trim().trim_matches('"') == v.etag || Some(ir.trim()) == v.last_modified
        }
        _ => true,
    };
    if !if_range_ok {
        return Ok(None);
    }
    parse_range(r, size)
}

/// Parse a single `bytes=` range against `size`. `Ok(None)`: serve it all.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole file
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .saturating_add(1)
                .min(size)
        };
        if start >= size || start >= end {
            return Err(());
        }
        start..end
    };
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

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
