//! In-process harness: the real router (`imgapi::api::router`) over a real
//! SQLite database and local stores in a temporary data directory, driven
//! with `tower::ServiceExt::oneshot`: no binary, no port. For protocol and
//! validation cases; crashes, restarts and S3 stay with `Server`. Domain
//! time is a manual clock (`App::clock`) that stands still until the test
//! advances it; `reap` then runs one pass of the reapers.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use serde_json::Value;
use tower::ServiceExt;

/// A router on its own data directory.
pub struct App {
    pub router: axum::Router,
    pub dir: tempfile::TempDir,
    /// The services' clock (manual: it moves only when advanced).
    pub clock: imgapi::clock::Clock,
    /// The services behind the router.
    pub state: imgapi::api::AppState,
}

/// A response, read whole.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Resp {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body parsed as a wire type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} does not parse ({e}): {}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as an error body (`{code, message, errors?}`).
    pub fn error(&self) -> imgapi::wire::ErrorBody {
        self.parse()
    }

    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or(""))
            .unwrap_or("")
    }
}

impl App {
    /// The default configuration (auth none) on a fresh data directory.
    pub async fn new() -> App {
        Self::with_config(|_| {}).await
    }

    /// The default configuration changed by `f`.
    pub async fn with_config(f: impl FnOnce(&mut imgapi::config::Config)) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = imgapi::config::Config {
            data_dir: dir.path().join("data"),
            ..Default::default()
        };
        cfg.database.url = super::database_url(dir.path());
        f(&mut cfg);
        let clock = imgapi::clock::Clock::manual(chrono::Utc::now());
        let state = imgapi::build_state_with_clock(cfg, clock.clone())
            .await
            .expect("build_state");
        App {
            router: imgapi::api::router(state.clone()),
            dir,
            clock,
            state,
        }
    }

    /// The data directory (`local/`, `manta/`, the database).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Let `d` of domain time pass (nothing runs by itself: see `reap`).
    pub fn advance(&self, d: std::time::Duration) {
        self.clock.advance(d);
    }

    /// One pass of the background reapers, as the server runs them
    /// periodically: (expired uploads, expired placeholders) removed.
    pub async fn reap(&self) -> (usize, usize) {
        let uploads = self
            .state
            .uploads
            .reap_expired()
            .await
            .expect("upload reaper");
        let images = self
            .state
            .images
            .reap_placeholders()
            .await
            .expect("placeholder reaper");
        (uploads, images)
    }

    /// Send one request.
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("read body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `method path` with `headers` and `body`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body.into()).expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, &[], Body::empty()).await
    }

    /// POST a JSON body.
    pub async fn post_json(&self, path: &str, v: &Value) -> Resp {
        let body = serde_json::to_vec(v).unwrap();
        self.call(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// tus creation of an upload of `len` bytes; returns its location.
    pub async fn tus_create(&self, len: u64) -> String {
        let r = self
            .call(
                Method::POST,
                "/uploads",
                &[
                    ("tus-resumable", "1.0.0"),
                    ("upload-length", &len.to_string()),
                ],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.header("location").to_string()
    }

    /// tus PATCH of `data` at `offset` with extra `headers`.
    pub async fn tus_patch(
        &self,
        loc: &str,
        offset: u64,
        headers: &[(&str, &str)],
        data: Vec<u8>,
    ) -> Resp {
        let off = offset.to_string();
        let mut h = vec![
            ("tus-resumable", "1.0.0"),
            ("upload-offset", off.as_str()),
            ("content-type", "application/offset+octet-stream"),
        ];
        for (k, v) in headers {
            h.retain(|(x, _)| !x.eq_ignore_ascii_case(k));
            h.push((*k, *v));
        }
        self.call(Method::PATCH, loc, &h, data).await
    }

    /// tus HEAD: (status, Upload-Offset).
    pub async fn tus_offset(&self, loc: &str) -> (u16, Option<u64>) {
        let r = self
            .call(
                Method::HEAD,
                loc,
                &[("tus-resumable", "1.0.0")],
                Body::empty(),
            )
            .await;
        let off = r.headers.get("upload-offset").map(|v| {
            v.to_str()
                .unwrap()
                .parse()
                .expect("Upload-Offset is a number")
        });
        (r.status, off)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Its PostgreSQL database, if it has one, goes with it.
        super::drop_database_of(self.dir.path());
    }
}
