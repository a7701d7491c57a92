//! In-process harness without a port: the real router (`imgapi::api::router`)
//! driven with `tower::ServiceExt::oneshot`, over the real services on a
//! temporary data directory. `App::builder()` adds S3 as the manta store
//! (`with_s3`), PostgreSQL (`with_postgres`), accounts (`with_account`) and
//! configuration; domain time is a manual clock (`App::clock`) that stands
//! still until the test advances it, and `reap` then runs one pass of the
//! reapers. Requests go through [`Api`], as with `Server`.

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
    /// The accounts the builder made: (login, uuid, token).
    accounts: Vec<(String, String, String)>,
}

/// A change the builder makes to the configuration.
type ConfigEdit = Box<dyn FnOnce(&mut imgapi::config::Config)>;

/// How to make an [`App`]: `App::builder().with_s3(&s3).with_postgres()
/// .with_account("luke", false).build()`.
#[derive(Default)]
pub struct AppBuilder {
    toml: String,
    postgres: bool,
    accounts: Vec<(String, bool)>,
    edits: Vec<ConfigEdit>,
}

impl AppBuilder {
    /// The manta store in `s3`'s bucket (5 MiB parts).
    pub fn with_s3(self, s3: &super::S3Server) -> Self {
        let with: imgapi::config::Config =
            toml::from_str(&s3.manta_toml(5)).expect("S3Server::manta_toml");
        self.with_config(move |cfg| cfg.storage.manta = with.storage.manta)
    }

    /// Metadata in a database of its own on the test PostgreSQL server,
    /// whatever `IMGAPI_TEST_BACKEND` says.
    pub fn with_postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// An account `login` (an operator if `operator`), made before the
    /// first request: its uuid and token are [`App::accounts`].
    pub fn with_account(mut self, login: &str, operator: bool) -> Self {
        self.accounts.push((login.to_string(), operator));
        self
    }

    /// More configuration, in `imgapi.toml`'s form.
    pub fn with_toml(mut self, toml: &str) -> Self {
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }

    /// The configuration changed by `f` (after the TOML).
    pub fn with_config(mut self, f: impl FnOnce(&mut imgapi::config::Config) + 'static) -> Self {
        self.edits.push(Box::new(f));
        self
    }

    /// The router and its services on a fresh data directory, with a
    /// manual clock.
    pub async fn build(self) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg: imgapi::config::Config = toml::from_str(&self.toml).expect("the test's TOML");
        cfg.data_dir = dir.path().join("data");
        cfg.database.url = match self.postgres {
            true => {
                let url = super::new_pg_database();
                std::fs::write(dir.path().join("database-url"), &url).expect("database-url");
                Some(url)
            }
            false => super::database_url(dir.path()),
        };
        for edit in self.edits {
            edit(&mut cfg);
        }
        let clock = imgapi::clock::Clock::manual(chrono::Utc::now());
        let state = imgapi::build_state_with_clock(cfg, clock.clone())
            .await
            .expect("build_state");
        let mut accounts = Vec::new();
        for (login, operator) in self.accounts {
            let made = state
                .db
                .write(move |m| m.account_create(&login, operator, None))
                .await;
            let (account, token): (imgapi::db::accounts::Account, String) =
                made.unwrap_or_else(|e: imgapi::db::DbError| panic!("account: {e}"));
            accounts.push((account.login, account.uuid.to_string(), token));
        }
        App {
            router: imgapi::api::router(state.clone()),
            dir,
            clock,
            state,
            accounts,
        }
    }
}

impl App {
    /// How to make one with S3, PostgreSQL, accounts.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The default configuration (auth none) on a fresh data directory.
    pub async fn new() -> App {
        Self::builder().build().await
    }

    /// The default configuration changed by `f`.
    pub async fn with_config(f: impl FnOnce(&mut imgapi::config::Config) + 'static) -> App {
        Self::builder().with_config(f).build().await
    }

    /// The (uuid, token) of account `login` made by the builder.
    pub fn account(&self, login: &str) -> (&str, &str) {
        self.accounts
            .iter()
            .find(|(l, _, _)| l == login)
            .map(|(_, u, t)| (u.as_str(), t.as_str()))
            .unwrap_or_else(|| panic!("no account {login}: add it with with_account"))
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
