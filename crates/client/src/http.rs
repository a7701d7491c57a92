//! HTTP to the server: the request builder (URL, token, `?account=`), and
//! retries with exponential backoff and jitter on connection errors,
//! timeouts and 5xx (honouring `Retry-After`), never on 4xx.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::config::Conn;
use super::error::{ClientError, Result};
use super::types::ErrorBody;

/// First retry delay; doubled each attempt up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts (also caps `Retry-After`).
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one server.
#[derive(Clone)]
pub struct Http {
    pub conn: Conn,
    client: reqwest::Client,
}

/// What one attempt produced: done, or worth another try.
pub enum Attempt<T> {
    Done(T),
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

impl Http {
    pub fn new(conn: Conn) -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("imgapi-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        Ok(Http { conn, client })
    }

    /// The full URL of `path` (which may carry a query), with `?account=`.
    pub fn url(&self, path: &str) -> String {
        let mut u = format!("{}{path}", self.conn.url);
        if let Some(a) = &self.conn.account {
            let sep = if path.contains('?') { '&' } else { '?' };
            u.push(sep);
            u.push_str("account=");
            u.extend(form_urlencoded::byte_serialize(a.as_bytes()));
        }
        u
    }

    /// A request to `path` with the token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = &self.conn.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    /// Short requests time out after the stall timeout (plus `extra`).
    pub fn small(&self, method: Method, path: &str, extra: Duration) -> RequestBuilder {
        self.req(method, path).timeout(self.conn.stall + extra)
    }

    /// Runs `attempt` until it is done, fails for good, or the retries are
    /// used up (then a transport error naming the last reason).
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>>>,
    {
        let mut n = 0u32;
        loop {
            match attempt().await? {
                Attempt::Done(t) => return Ok(t),
                Attempt::Retry { why, after } => {
                    if n >= self.conn.retries {
                        let e = ClientError::Transport(format!(
                            "{what} failed after {} attempt(s): {why}",
                            n + 1
                        ));
                        return Err(match why.starts_with(CANNOT_CONNECT) {
                            true => e.hint(self.unreachable_hint()),
                            false => e,
                        });
                    }
                    let d = after.unwrap_or_else(|| backoff(n)).min(MAX_DELAY);
                    if !self.conn.json {
                        eprintln!("imgapi: {what}: {why}; retrying in {:.1}s", d.as_secs_f64());
                    }
                    tokio::time::sleep(d).await;
                    n += 1;
                }
            }
        }
    }

    /// What to do when the server cannot be reached at all.
    pub fn unreachable_hint(&self) -> String {
        format!(
            "is the imgapi server running at {}? Start it with `imgapi serve`, or give its \
             address with --url or IMGAPI_URL",
            self.conn.url
        )
    }

    /// Sends a request (rebuilt by `build` for each attempt) and returns the
    /// successful response; 4xx and other refusals are errors at once.
    pub async fn send(&self, what: &str, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        self.retrying(what, || async {
            match build().send().await {
                Err(e) => Ok(Attempt::Retry {
                    why: why(&e),
                    after: None,
                }),
                Ok(r) => classify(r).await,
            }
        })
        .await
    }

    /// Sends a request and reads its JSON body as a `T` (a body cut short is
    /// retried too; an empty body is JSON `null`).
    pub async fn json<T: DeserializeOwned>(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T> {
        self.retrying(what, || async {
            let r = match build().send().await {
                Err(e) => {
                    return Ok(Attempt::Retry {
                        why: why(&e),
                        after: None,
                    });
                }
                Ok(r) => r,
            };
            let r = match classify(r).await? {
                Attempt::Done(r) => r,
                Attempt::Retry { why, after } => return Ok(Attempt::Retry { why, after }),
            };
            let body = match r.status() {
                StatusCode::NO_CONTENT => bytes::Bytes::new(),
                _ => match r.bytes().await {
                    Err(e) => {
                        return Ok(Attempt::Retry {
                            why: chain(&e),
                            after: None,
                        });
                    }
                    Ok(b) => b,
                },
            };
            let parsed = match body.is_empty() {
                true => T::deserialize(serde_json::Value::Null),
                false => serde_json::from_slice(&body),
            };
            parsed
                .map(Attempt::Done)
                .map_err(|e| self.not_understood(what, &e))
        })
        .await
    }
}

impl Http {
    /// A 2xx answer that is not JSON (not an imgapi server?), or not the
    /// shape `what` answers with.
    fn not_understood(&self, what: &str, e: &serde_json::Error) -> ClientError {
        if e.is_data() {
            return ClientError::Transport(format!(
                "{what}: the server's answer is not what an IMGAPI sends: {e}"
            ));
        }
        ClientError::Transport(format!("{what}: the server sent invalid JSON: {e}")).hint(format!(
            "is {} an imgapi server? Give the server's address (scheme, host and port, e.g. \
             http://127.0.0.1:8080) with --url or IMGAPI_URL",
            self.conn.url
        ))
    }
}

/// A response's fate: success, a retryable 5xx, or the server's refusal.
pub async fn classify(r: Response) -> Result<Attempt<Response>> {
    let st = r.status();
    if st.is_success() || st.is_redirection() {
        return Ok(Attempt::Done(r));
    }
    let retryable = matches!(st.as_u16(), 500 | 502 | 503 | 504);
    let after = retry_after(&r);
    let body = error_body(r).await;
    if retryable {
        return Ok(Attempt::Retry {
            why: format!("{} {}: {}", st.as_u16(), body.code, body.message),
            after,
        });
    }
    Err(ClientError::Server {
        status: st.as_u16(),
        body,
    })
}

/// The error body of a refused request (or a stand-in when it is not
/// IMGAPI's JSON).
pub async fn error_body(r: Response) -> ErrorBody {
    let st = r.status();
    let text = r.text().await.unwrap_or_default();
    serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
        code: format!("HTTP{}", st.as_u16()),
        message: text.chars().take(200).collect(),
        errors: None,
    })
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(r: &Response) -> Option<Duration> {
    let v = r.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = httpdate::parse_http_date(v).ok()?;
    Some(
        t.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Delay before retry `n` (0-based): exponential, with jitter in [d/2, d].
pub fn backoff(n: u32) -> Duration {
    let d = BASE_DELAY.saturating_mul(1u32 << n.min(16)).min(MAX_DELAY);
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))
}

/// How a failure to reach the server begins (see [`why`]).
pub const CANNOT_CONNECT: &str = "cannot connect to ";

/// Why a request failed, on one line: a connection that could not be made
/// says so and names the address and the root cause (connection refused,
/// no such host, ...); anything else is the error and its causes.
pub fn why(e: &reqwest::Error) -> String {
    if !e.is_connect() {
        return chain(e);
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(c) = root.source() {
        root = c;
    }
    let at = e
        .url()
        .map(|u| {
            let host = u.host_str().unwrap_or("");
            match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            }
        })
        .unwrap_or_else(|| "the server".into());
    format!("{CANNOT_CONNECT}{at}: {root}")
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// Runs `fut` while `progress` keeps moving; `None` when it stood still for
/// `stall` (the transfer is then dropped and resumed by the caller).
pub async fn watch<F: std::future::Future>(
    fut: F,
    progress: &std::sync::atomic::AtomicU64,
    stall: Duration,
) -> Option<F::Output> {
    use std::sync::atomic::Ordering;
    tokio::pin!(fut);
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(stall));
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tick.tick() => {
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = tokio::time::Instant::now();
                } else if since.elapsed() >= stall {
                    return None;
                }
            }
        }
    }
}

/// A refusal built by the client itself, shaped like a server error.
pub fn refused(status: u16, code: &str, message: String) -> ClientError {
    ClientError::Server {
        status,
        body: ErrorBody {
            code: code.into(),
            message,
            errors: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for n in 0..40 {
            let d = backoff(n);
            let full = BASE_DELAY.saturating_mul(1u32 << n.min(16)).min(MAX_DELAY);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
        assert!(backoff(30) <= MAX_DELAY);
    }

    fn response(status: u16, retry_after: Option<&str>) -> Response {
        let mut b = http::Response::builder().status(status);
        if let Some(v) = retry_after {
            b = b.header("retry-after", v);
        }
        Response::from(
            b.body(r#"{"code":"StorageIsDown","message":"later"}"#)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn five_hundreds_are_retried_after_retry_after_and_four_hundreds_are_not() {
        match classify(response(503, Some("7"))).await.unwrap() {
            Attempt::Retry { why, after } => {
                assert_eq!(after, Some(Duration::from_secs(7)));
                assert!(why.contains("StorageIsDown"), "{why}");
            }
            Attempt::Done(_) => panic!("503 is not done"),
        }
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        match classify(response(502, Some(&date))).await.unwrap() {
            Attempt::Retry { after, .. } => {
                let a = after.unwrap();
                assert!(
                    a > Duration::from_secs(50) && a <= Duration::from_secs(60),
                    "{a:?}"
                );
            }
            Attempt::Done(_) => panic!("502 is not done"),
        }
        for st in [400, 404, 409, 422, 429, 501, 507] {
            match classify(response(st, None)).await {
                Err(ClientError::Server { status, body }) => {
                    assert_eq!(status, st);
                    assert_eq!(body.code, "StorageIsDown");
                }
                _ => panic!("{st} must be a refusal"),
            }
        }
    }
}
