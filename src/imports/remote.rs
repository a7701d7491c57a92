//! The client side of an import: a source URL checked against the
//! allow-list, and the two calls made to it (GetImage, GetImageFile with
//! `Range`), bounded in time and size, never following redirects.

use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::ImportsConfig;
use crate::error::{Error, FieldCode, FieldError, Result};

/// Largest manifest (or error body) read from a source.
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A source IMGAPI, allowed by `[imports] allowed_sources`.
#[derive(Debug, Clone)]
pub struct Source {
    url: reqwest::Url,
}

impl Source {
    /// Parse and check `?source=` (nothing is contacted).
    pub fn check(raw: Option<&str>, allowed: &[String]) -> Result<Source> {
        let raw = match raw {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(Error::ValidationFailed {
                    message: "missing source parameter".into(),
                    errors: vec![FieldError::new("source", FieldCode::MissingParameter)],
                });
            }
        };
        let invalid = |why: &str| Error::ValidationFailed {
            message: format!("invalid source \"{raw}\": {why}"),
            errors: vec![FieldError::msg("source", FieldCode::Invalid, why)],
        };
        let url = reqwest::Url::parse(raw).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("not an http or https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not accepted"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not accepted"));
        }
        let s = url.as_str();
        if !allowed.iter().any(|p| prefix_allows(p, s)) {
            return Err(Error::ValidationFailed {
                message: format!("source \"{raw}\" is not an allowed source"),
                errors: vec![FieldError::msg(
                    "source",
                    FieldCode::NotAllowed,
                    "not in [imports] allowed_sources",
                )],
            });
        }
        Ok(Source { url })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url.as_str().trim_end_matches('/'))
    }
}

/// `prefix` allows `url` when `url` starts with it at a boundary: the
/// prefix ends with `/` or `:`, or the URL goes on with `/`, `:` or `?`
/// (so `http://127.0.0.1` does not allow `http://127.0.0.1.example.com`).
fn prefix_allows(prefix: &str, url: &str) -> bool {
    if prefix.is_empty() || !url.starts_with(prefix) {
        return false;
    }
    prefix.ends_with(['/', ':'])
        || matches!(
            url.as_bytes().get(prefix.len()),
            None | Some(b'/' | b':' | b'?')
        )
}

/// Why a call failed: for good, or worth another try (a resume).
pub enum Fail {
    Permanent(Error),
    Transient(Error),
}

/// A file response, positioned where it was asked for.
pub struct RemoteFile {
    pub resp: reqwest::Response,
    /// The source answered 200 to a ranged request: bytes start at 0.
    pub restart: bool,
    /// The source's `Content-MD5` of the whole file (a 200 response).
    pub content_md5: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    request_timeout: Duration,
}

fn transport(what: &str, e: &reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Error::RemoteSourceError(format!("{what}: {why}"))
}

impl Client {
    pub fn new(cfg: &ImportsConfig) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .read_timeout(Duration::from_secs(cfg.stall_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("imgapi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(Client {
            http,
            request_timeout: Duration::from_secs(cfg.request_timeout_secs),
        })
    }

    /// GetImage at the source.
    pub async fn manifest(&self, src: &Source, uuid: Uuid) -> Result<Map<String, Value>> {
        let what = format!("Unable to get manifest for image {uuid}");
        let call = async {
            let resp = self
                .http
                .get(src.at(&format!("/images/{uuid}")))
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| transport(&what, &e))?;
            let status = resp.status();
            let body = read_capped(resp).await.map_err(|e| transport(&what, &e))?;
            if !status.is_success() {
                return Err(remote_error(&what, status, &body));
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(Error::RemoteSourceError(format!(
                    "{what}: the source's answer is not a manifest"
                ))),
            }
        };
        let m = tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| Error::RemoteSourceError(format!("{what}: timed out")))??;
        if m.get("uuid").and_then(Value::as_str) != Some(uuid.to_string().as_str()) {
            return Err(Error::RemoteSourceError(format!(
                "{what}: the source answered with another image"
            )));
        }
        Ok(m)
    }

    /// GetImageFile at the source from byte `from` of a file of `size` bytes.
    pub async fn file(
        &self,
        src: &Source,
        uuid: Uuid,
        from: u64,
        size: u64,
    ) -> std::result::Result<RemoteFile, Fail> {
        let what = format!("Unable to get the file of image {uuid}");
        let mut req = self.http.get(src.at(&format!("/images/{uuid}/file")));
        if from > 0 {
            req = req.header("range", format!("bytes={from}-"));
        }
        let resp = match tokio::time::timeout(self.request_timeout, req.send()).await {
            Err(_) => {
                return Err(Fail::Transient(Error::RemoteSourceError(format!(
                    "{what}: timed out"
                ))));
            }
            Ok(Err(e)) => return Err(Fail::Transient(transport(&what, &e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let bad = |why: String| Fail::Permanent(Error::RemoteSourceError(format!("{what}: {why}")));
        match status.as_u16() {
            200 => {
                if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok())
                    && len != size
                {
                    return Err(bad(format!(
                        "the source sends {len} bytes, its manifest gives size {size}"
                    )));
                }
                let content_md5 = header("content-md5");
                Ok(RemoteFile {
                    resp,
                    restart: from > 0,
                    content_md5,
                })
            }
            206 if from > 0 => {
                let cr = header("content-range").unwrap_or_default();
                let expect = format!("bytes {from}-{}/{size}", size - 1);
                if cr != expect {
                    return Err(bad(format!(
                        "unexpected Content-Range \"{cr}\" (asked for {expect})"
                    )));
                }
                Ok(RemoteFile {
                    resp,
                    restart: false,
                    content_md5: None,
                })
            }
            s => {
                let body = read_capped(resp).await.unwrap_or_default();
                let e = remote_error(&what, status, &body);
                if s >= 500 || s == 429 {
                    Err(Fail::Transient(e))
                } else {
                    Err(Fail::Permanent(e))
                }
            }
        }
    }
}

/// A source's error answer as 503 RemoteSourceError with its message.
fn remote_error(what: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v.get("code").and_then(Value::as_str);
    let msg = v.get("message").and_then(Value::as_str);
    let remote = match (code, msg) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => format!("HTTP {}", status.as_u16()),
    };
    let remote: String = remote.chars().take(1024).collect();
    Error::RemoteSourceError(format!("{what}. Error from remote: {remote}"))
}

async fn read_capped(mut resp: reqwest::Response) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await? {
        if out.len() + c.len() > MAX_MANIFEST_BYTES {
            out.extend_from_slice(&c[..MAX_MANIFEST_BYTES - out.len()]);
            break;
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ImportsConfig::default().allowed_sources
    }

    #[test]
    fn default_allows_https_and_loopback_http_only() {
        for ok in [
            "https://images.smartos.org",
            "https://10.0.0.1:8443/imgapi/",
            "http://127.0.0.1:8080",
            "http://localhost/",
            "http://[::1]:9000",
        ] {
            assert!(Source::check(Some(ok), &allowed()).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://127.0.0.1.example.com/",
            "http://localhost.example.com",
            "http://169.254.169.254/",
        ] {
            let e = Source::check(Some(bad), &allowed()).unwrap_err();
            match e {
                Error::ValidationFailed { errors, .. } => {
                    assert_eq!(errors[0].code, FieldCode::NotAllowed, "{bad}")
                }
                e => panic!("{bad}: {e:?}"),
            }
        }
    }

    #[test]
    fn malformed_sources_are_invalid_and_missing_is_missing() {
        for bad in [
            "ftp://x",
            "not a url",
            "https://u:p@host/",
            "https://host/?a=1",
        ] {
            match Source::check(Some(bad), &allowed()).unwrap_err() {
                Error::ValidationFailed { errors, .. } => {
                    assert_eq!(errors[0].code, FieldCode::Invalid, "{bad}")
                }
                e => panic!("{bad}: {e:?}"),
            }
        }
        match Source::check(None, &allowed()).unwrap_err() {
            Error::ValidationFailed { errors, .. } => {
                assert_eq!(errors[0].code, FieldCode::MissingParameter)
            }
            e => panic!("{e:?}"),
        }
    }
}
