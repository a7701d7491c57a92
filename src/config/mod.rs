//! Configuration: defaults, then the TOML file, then `IMGAPI_*` environment,
//! then command-line flags. Unknown keys are an error. Secrets never appear
//! in `Debug` output nor when serialized (`imgapi config check` prints the
//! effective configuration as TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// IMGAPI's "dc" mode: every caller is an operator, or acts for `?account=`.
    #[default]
    None,
    /// `Authorization: Bearer <token>`; tokens belong to accounts in SQLite.
    Token,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

mod lifecycle;

pub use lifecycle::{LifecycleConfig, LifecycleRule, MAX_LIFECYCLE_DAYS};

/// The whole configuration (`imgapi.example.toml` documents every key).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the local stores.
    pub data_dir: PathBuf,
    /// `none` or `token`.
    pub auth: AuthMode,
    /// Allow `auth = "none"` on a non-loopback listen address.
    pub allow_auth_none_on_network: bool,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// With `auth = "none"`: `Host` names accepted besides loopback names
    /// and addresses (a browser page elsewhere cannot then reach the API
    /// through DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// `GET /metrics` without an operator token in `auth = "token"` mode.
    pub metrics_public: bool,
    pub server: ServerConfig,
    /// Where the metadata lives: SQLite in `data_dir` (the default) or
    /// PostgreSQL (`url`), shared by every node of a cluster.
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub limits: Limits,
    pub uploads: UploadsConfig,
    pub registrar: RegistrarConfig,
    pub imports: ImportsConfig,
    pub downloads: DownloadsConfig,
    pub quotas: QuotasConfig,
    pub lifecycle: LifecycleConfig,
    /// Image channels (IMGAPI's `channels`); empty: the server has none.
    pub channels: Vec<ChannelConfig>,
}

/// One channel.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            auth: AuthMode::None,
            allow_auth_none_on_network: false,
            log_format: LogFormat::Text,
            allowed_hosts: Vec::new(),
            metrics_public: false,
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            limits: Limits::default(),
            uploads: UploadsConfig::default(),
            registrar: RegistrarConfig::default(),
            imports: ImportsConfig::default(),
            downloads: DownloadsConfig::default(),
            quotas: QuotasConfig::default(),
            lifecycle: LifecycleConfig::default(),
            channels: Vec::new(),
        }
    }
}

/// `[quotas]`: what one account may keep (0: unlimited, the default).
/// `imgapi account set-quota` overrides them for one account.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Bytes of an account's images (files and icons) plus its unfinished
    /// uploads.
    pub max_bytes: u64,
    /// An account's images, in any state.
    pub max_images: u64,
    /// What an operator's own request adds (not acting for an account) is
    /// not checked (default false: held to the account's quotas like
    /// anyone's).
    pub exempt_operators: bool,
}

/// `[database]`: the metadata store.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB`: the metadata in
    /// PostgreSQL (IMGAPI_DATABASE_URL, `--database-url`). Unset: SQLite
    /// at `data_dir/imgapi.sqlite`. (`config check` shows it with its
    /// password redacted.)
    #[serde(serialize_with = "redact_url")]
    pub url: Option<String>,
    /// PostgreSQL connections this node opens at most (its pool).
    pub max_connections: usize,
    /// Seconds to open a connection to PostgreSQL.
    pub connect_timeout_secs: u64,
    /// Seconds one statement may run before PostgreSQL cancels it.
    pub statement_timeout_secs: u64,
    /// Seconds a request waits for a free connection of the pool; then it
    /// is answered 503 DatabaseUnavailable with Retry-After.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 16,
            connect_timeout_secs: 5,
            statement_timeout_secs: 30,
            acquire_timeout_secs: 10,
        }
    }
}

impl DatabaseConfig {
    /// `url` with its password replaced by `***` (for logs and `Debug`).
    pub fn redacted_url(&self) -> Option<String> {
        self.url.as_deref().map(redact_url_password)
    }
}

/// `scheme://user:secret@host/...` as `scheme://user:***@host/...`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("statement_timeout_secs", &self.statement_timeout_secs)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

/// Connection handling: timeouts and the connection limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Seconds a client may take to send a whole request head once it
    /// started one; then the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress.
    pub idle_timeout_secs: u64,
    /// Seconds a request body may deliver no byte while the server waits
    /// for one (the request then fails like a dropped connection; a tus
    /// upload keeps what it received), and seconds a response may wait
    /// for a client that reads nothing.
    pub body_stall_timeout_secs: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            body_stall_timeout_secs: 60,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub assets: AssetsConfig,
    pub manta: MantaConfig,
}

/// The local "assets" store (also holds images stored with `stor = local`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AssetsConfig {
    /// Directory; default `<data_dir>/assets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Accounts (besides operators) allowed to use `/assets/...` paths.
    pub allowed_accounts: Vec<Uuid>,
}

/// The "manta" object store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum MantaConfig {
    /// A local directory; default `<data_dir>/manta`.
    Fs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
    },
    /// An S3-compatible bucket.
    S3(S3Config),
}

impl Default for MantaConfig {
    fn default() -> Self {
        MantaConfig::Fs { dir: None }
    }
}

/// S3 settings for the manta store. Serialized, the secret key reads
/// `<redacted>`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "yes")]
    pub force_path_style: bool,
    pub access_key_id: String,
    #[serde(
        default,
        serialize_with = "redact",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(default = "default_part_size")]
    pub part_size_mib: u64,
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
    /// Seconds to open a connection to the store.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds one attempt of one S3 request may take (a part upload, a
    /// HEAD, the start of a download); a slow store then fails the request
    /// with 503 StorageIsDown after the SDK's retries instead of hanging.
    /// Server-side copies and multipart completions, whose time grows with
    /// the object, get an hour.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

/// What a serialized secret reads.
pub const REDACTED: &str = "<redacted>";

/// Serialize a secret as [`REDACTED`] (`serialize_with` of every secret
/// field, so no serialization of a configuration holds one).
/// A URL serialised with its password redacted.
fn redact_url<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(u) => s.serialize_some(&redact_url_password(u)),
        None => s.serialize_none(),
    }
}

pub fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some(REDACTED),
        None => s.serialize_none(),
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn yes() -> bool {
    true
}
fn default_part_size() -> u64 {
    16
}
fn default_parts_in_flight() -> usize {
    4
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_request_timeout() -> u64 {
    60
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("part_size_mib", &self.part_size_mib)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest image file accepted, in bytes (default 100 GiB).
    pub max_file_size: u64,
    /// Bytes an account may have in unfinished uploads (default 200 GiB).
    pub max_bytes_in_flight_per_account: u64,
    /// MiB of ListImages bodies a node keeps, valid until an image changes
    /// (default 64; 0: none kept).
    pub list_cache_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 100 << 30,
            max_bytes_in_flight_per_account: 200 << 30,
            list_cache_mib: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Idle uploads expire after this many seconds (default 7 days).
    pub expire_after_secs: u64,
    /// Uploads an account may have open (not registered) at once; beyond
    /// it, creation is 429 TooManyRequests (default 1000).
    pub max_open_per_account: u64,
    /// Upload requests (PATCH/PUT bodies) an account may stream at once;
    /// beyond it, 429 TooManyRequests (default 16).
    pub max_streaming_per_account: usize,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            expire_after_secs: 7 * 24 * 3600,
            max_open_per_account: 1000,
            max_streaming_per_account: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Default `?wait=` of a registration POST, in seconds.
    pub wait_secs: u64,
    /// Failed placeholders are reaped after this many days.
    pub placeholder_lifespan_days: u64,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            wait_secs: 30,
            placeholder_lifespan_days: 7,
        }
    }
}

/// Imports from another IMGAPI (AdminImportRemoteImage, `?source=`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportsConfig {
    /// URL prefixes a source must start with (`https://`, `http://10.1.2.3:8080/`,
    /// ...); a prefix ends at a `/`, `:` or `?` of the URL. Others are
    /// refused with 422 before any connection is made. Redirects are
    /// never followed.
    pub allowed_sources: Vec<String>,
    /// Seconds to open a connection to a source.
    pub connect_timeout_secs: u64,
    /// Seconds a source may take to answer a request's head (and to send
    /// a whole manifest).
    pub request_timeout_secs: u64,
    /// Seconds a file download may deliver no byte; then it is resumed
    /// with `Range` from the bytes already received.
    pub stall_timeout_secs: u64,
    /// Reconnections to a source, per file, that bring no new byte before
    /// the import fails (503 RemoteSourceError).
    pub max_resumes: u32,
    /// AddImageFileFromSource transfers at once; one more is 429
    /// TooManyRequests (import jobs run one at a time besides).
    pub max_file_transfers: usize,
    /// Base URL sent in the `workflow-api` header (where `GET /jobs/{uuid}`
    /// is served); default: this server as the request named it (`Host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_api_url: Option<String>,
}

impl Default for ImportsConfig {
    fn default() -> Self {
        ImportsConfig {
            allowed_sources: vec![
                "https://".into(),
                "http://127.0.0.1".into(),
                "http://localhost".into(),
                "http://[::1]".into(),
            ],
            connect_timeout_secs: 10,
            request_timeout_secs: 60,
            stall_timeout_secs: 60,
            max_resumes: 5,
            max_file_transfers: 4,
            workflow_api_url: None,
        }
    }
}

/// GetImageFile: served by the object store, and counted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadsConfig {
    /// Count each image's downloads and its last download time (default
    /// true; see `images::downloads`).
    pub stats: bool,
    /// Seconds between two writes of a node's download counts to the
    /// database (1 to 3600, default 10): what a kill -9 may lose.
    pub stats_flush_secs: u64,
    /// With an S3 manta store: a GetImageFile of a file in it that asks for
    /// it with `?redirect=true` is answered `302 Found` to a presigned URL
    /// of the object (default false: the bytes always come through imgapi).
    pub redirect: bool,
    /// Seconds a presigned URL stays valid (1 to 3600, default 300).
    pub presign_ttl_secs: u64,
}

/// Longest life of a presigned download URL, in seconds.
pub const MAX_PRESIGN_TTL_SECS: u64 = 3600;

/// Longest interval between two writes of a node's download counts.
pub const MAX_STATS_FLUSH_SECS: u64 = 3600;

impl Default for DownloadsConfig {
    fn default() -> Self {
        DownloadsConfig {
            stats: true,
            stats_flush_secs: 10,
            redirect: false,
            presign_ttl_secs: 300,
        }
    }
}

/// Command-line overrides (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid environment variable {0}: {1}")]
    Env(&'static str, String),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Load: defaults < file < environment < flags.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let path = o
            .config
            .clone()
            .or_else(|| std::env::var_os("IMGAPI_CONFIG").map(PathBuf::from));
        let mut cfg = match &path {
            Some(p) => Self::from_file(p)?,
            None => Config::default(),
        };
        if let Ok(v) = std::env::var("IMGAPI_LISTEN") {
            cfg.listen = v.parse().map_err(|e: std::net::AddrParseError| {
                ConfigError::Env("IMGAPI_LISTEN", e.to_string())
            })?;
        }
        if let Some(v) = std::env::var_os("IMGAPI_DATA_DIR") {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Ok(v) = std::env::var("IMGAPI_DATABASE_URL") {
            cfg.database.url = Some(v);
        }
        if let Some(u) = &o.database_url {
            cfg.database.url = Some(u.clone());
        }
        if cfg.database.url.as_deref() == Some("") {
            cfg.database.url = None; // an empty value: the embedded SQLite
        }
        if let Some(l) = o.listen {
            cfg.listen = l;
        }
        if let Some(d) = &o.data_dir {
            cfg.data_dir = d.clone();
        }
        cfg.check()?;
        Ok(cfg)
    }

    pub fn from_file(p: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: p.to_path_buf(),
            source,
        })
    }

    /// Refuse a configuration that cannot work: each section's checks, in turn.
    fn check(&self) -> Result<(), ConfigError> {
        self.check_channels()?;
        self.check_auth_none()?;
        self.check_server()?;
        self.check_downloads_and_lifecycle()?;
        self.check_database()?;
        self.check_imports()?;
        self.check_manta()?;
        Ok(())
    }

    /// Channel names are `^[a-z][a-z0-9_-]*$`; at most one channel is the default.
    fn check_channels(&self) -> Result<(), ConfigError> {
        let valid_name = |n: &str| {
            n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        if let Some(c) = self.channels.iter().find(|c| !valid_name(&c.name)) {
            return Err(ConfigError::Invalid(format!(
                "channel name \"{}\" must match ^[a-z][a-z0-9_-]*$",
                c.name
            )));
        }
        if self.channels.iter().filter(|c| c.default).count() > 1 {
            return Err(ConfigError::Invalid(
                "at most one channel may be the default".into(),
            ));
        }
        Ok(())
    }

    /// `auth = "none"` listens on a loopback address only, unless insisted on.
    fn check_auth_none(&self) -> Result<(), ConfigError> {
        if self.auth == AuthMode::None
            && !self.listen.ip().is_loopback()
            && !self.allow_auth_none_on_network
        {
            return Err(ConfigError::Invalid(format!(
                "auth = \"none\" gives every caller operator rights; refusing to listen on \
                 non-loopback address {} (set allow_auth_none_on_network = true to insist)",
                self.listen
            )));
        }
        Ok(())
    }

    /// The server's timeouts and connection limit are at least 1.
    fn check_server(&self) -> Result<(), ConfigError> {
        let sv = &self.server;
        if sv.header_read_timeout_secs == 0
            || sv.idle_timeout_secs == 0
            || sv.body_stall_timeout_secs == 0
            || sv.max_connections == 0
        {
            return Err(ConfigError::Invalid(
                "server: timeouts and max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The presigned URLs' lifetime and the download statistics' flush interval
    /// are within bounds; the lifecycle rules are valid, and those on downloads
    /// have download statistics.
    fn check_downloads_and_lifecycle(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_PRESIGN_TTL_SECS).contains(&self.downloads.presign_ttl_secs) {
            return Err(ConfigError::Invalid(format!(
                "downloads: presign_ttl_secs must be 1 to {MAX_PRESIGN_TTL_SECS}"
            )));
        }
        self.lifecycle.check()?;
        if !self.downloads.stats
            && let Some(r) = self
                .lifecycle
                .rules
                .iter()
                .find(|r| r.not_downloaded_days.is_some())
        {
            return Err(ConfigError::Invalid(format!(
                "lifecycle rule \"{}\": not_downloaded_days needs download statistics \
                 ([downloads] stats = true): without them every image looks never downloaded",
                r.rule
            )));
        }
        if !(1..=MAX_STATS_FLUSH_SECS).contains(&self.downloads.stats_flush_secs) {
            return Err(ConfigError::Invalid(format!(
                "downloads: stats_flush_secs must be 1 to {MAX_STATS_FLUSH_SECS}"
            )));
        }
        Ok(())
    }

    /// The database URL is a PostgreSQL one (if any); its timeouts and
    /// connection limit are at least 1.
    fn check_database(&self) -> Result<(), ConfigError> {
        let db = &self.database;
        if let Some(url) = &db.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(format!(
                "database.url must be a postgres:// URL (unset for SQLite in data_dir), not {}",
                redact_url_password(url)
            )));
        }
        if db.max_connections == 0
            || db.connect_timeout_secs == 0
            || db.statement_timeout_secs == 0
            || db.acquire_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "database: timeouts and max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The imports' timeouts and transfer limit are at least 1.
    fn check_imports(&self) -> Result<(), ConfigError> {
        let im = &self.imports;
        if im.connect_timeout_secs == 0
            || im.request_timeout_secs == 0
            || im.stall_timeout_secs == 0
            || im.max_file_transfers == 0
        {
            return Err(ConfigError::Invalid(
                "imports: timeouts and max_file_transfers must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// An S3 manta store has parts of at least 5 MiB and a secret key.
    fn check_manta(&self) -> Result<(), ConfigError> {
        if let MantaConfig::S3(s3) = &self.storage.manta {
            if s3.part_size_mib < 5 {
                return Err(ConfigError::Invalid(
                    "storage.manta.part_size_mib must be at least 5".into(),
                ));
            }
            if s3.secret_access_key.is_none() && s3.secret_access_key_file.is_none() {
                return Err(ConfigError::Invalid(
                    "storage.manta needs secret_access_key or secret_access_key_file".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("imgapi.sqlite")
    }

    pub fn assets_dir(&self) -> PathBuf {
        self.storage
            .assets
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("assets"))
    }

    pub fn manta_fs_dir(&self) -> Option<PathBuf> {
        match &self.storage.manta {
            MantaConfig::Fs { dir } => {
                Some(dir.clone().unwrap_or_else(|| self.data_dir.join("manta")))
            }
            MantaConfig::S3(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let e = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nfrobnicate = 1\n").unwrap_err();
        assert!(e.to_string().contains("frobnicate"));
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../imgapi.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.listen.port(), 8080);
    }

    #[test]
    fn database_table_and_url_redaction() {
        let c: Config = toml::from_str(
            "[database]\nurl = \"postgres://imgapi:hunter2@db1:5432/imgapi\"\nmax_connections = 4\n",
        )
        .unwrap();
        assert_eq!(c.database.max_connections, 4);
        c.check().unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(
            dbg.contains("postgres://imgapi:***@db1:5432/imgapi"),
            "{dbg}"
        );
        assert_eq!(
            redact_url_password("postgres://u@h/d"),
            "postgres://u@h/d",
            "no password: unchanged"
        );
        let bad: Config = toml::from_str("[database]\nurl = \"mysql://x@y/z\"\n").unwrap();
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("postgres://"), "{e}");
        assert!(toml::from_str::<Config>("[database]\nurll = \"x\"\n").is_err());
    }

    #[test]
    fn secrets_not_in_debug() {
        let c: Config = toml::from_str(
            "[storage.manta]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SUPERSECRET\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("SUPERSECRET"));
    }

    #[test]
    fn serialized_config_loads_back_without_its_secret() {
        let c: Config = toml::from_str(
            "listen = \"127.0.0.1:9\"\n[[channels]]\nname = \"dev\"\ndefault = true\n\
             [storage.manta]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SUPERSECRET\"\n",
        )
        .unwrap();
        let text = toml::to_string(&c).unwrap();
        assert!(!text.contains("SUPERSECRET"), "{text}");
        assert!(
            text.contains("secret_access_key = \"<redacted>\""),
            "{text}"
        );
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.listen, c.listen);
        assert_eq!(back.channels, c.channels);
        let MantaConfig::S3(s3) = back.storage.manta else {
            panic!("not s3")
        };
        assert_eq!(s3.secret_access_key.as_deref(), Some(REDACTED));
        assert_eq!(s3.access_key_id, "AK");
        // Defaults load back as defaults.
        let d: Config = toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
        assert_eq!(format!("{d:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn downloads_table() {
        let c = Config::default();
        assert!(!c.downloads.redirect);
        assert_eq!(c.downloads.presign_ttl_secs, 300);
        let c: Config =
            toml::from_str("[downloads]\nredirect = true\npresign_ttl_secs = 60\n").unwrap();
        assert!(c.downloads.redirect && c.check().is_ok());
        for bad in [0, MAX_PRESIGN_TTL_SECS + 1] {
            let mut z = Config::default();
            z.downloads.presign_ttl_secs = bad;
            assert!(z.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<Config>("[downloads]\nfrobnicate = 1\n").is_err());
    }

    #[test]
    fn server_table_and_new_keys() {
        let c: Config = toml::from_str(
            "allowed_hosts = [\"imgapi.internal\"]\nmetrics_public = true\n\
             [server]\nidle_timeout_secs = 5\nmax_connections = 10\n",
        )
        .unwrap();
        assert_eq!(c.allowed_hosts, vec!["imgapi.internal".to_string()]);
        assert!(c.metrics_public);
        assert_eq!(c.server.idle_timeout_secs, 5);
        assert_eq!(c.server.header_read_timeout_secs, 30);
        assert_eq!(c.server.max_connections, 10);
        assert!(c.check().is_ok());
        assert!(toml::from_str::<Config>("[server]\nfrobnicate = 1\n").is_err());
        let mut z = Config::default();
        z.server.body_stall_timeout_secs = 0;
        assert!(z.check().is_err());
    }

    #[test]
    fn auth_none_refused_off_loopback() {
        let c = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(c.check().is_err());
        let c = Config {
            allow_auth_none_on_network: true,
            ..c
        };
        assert!(c.check().is_ok());
    }
}
