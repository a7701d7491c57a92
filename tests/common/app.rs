//! In-process harness: the real router (`imgapi::api::router`) over a real
//! SQLite database and local stores in a temporary data directory, driven
//! with `tower::ServiceExt::oneshot`: no binary, no port. For protocol and
//! validation cases; crashes, restarts and S3 stay with `Server`. Domain
//! time is a manual clock (`App::clock`) that stands still until the test
//! advances it; `reap` then runs one pass of the reapers.

use axum::body::Body;
use axum::http::{Method, Request};

use super::{Api, Resp};
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
}

impl Api for App {
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).expect("request")).await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Its PostgreSQL database, if it has one, goes with it.
        super::drop_database_of(self.dir.path());
    }
}
