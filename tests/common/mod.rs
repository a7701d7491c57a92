//! Test harness: runs the real server on a free loopback port with its own
//! temporary data directory, in this process (or, for crash, signal and
//! memory tests, as the `imgapi` binary), and talks to it over HTTP.
#![allow(dead_code)]

pub mod api;
pub mod app;
pub mod cli;

pub use api::{Api, Resp, upload_id};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const VADER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
pub const LUKE: &str = "91ba0e64-2547-11e2-a972-df579e5fddb3";
pub const EMPEROR: &str = "a0b6b534-2547-11e2-b758-63a2afd747d1";
pub const SDC: &str = "ba28f844-8cb4-f141-882d-46d6251e6a9f";

/// A running server: in this process (the real `imgapi::run_on`, on a
/// runtime and thread of its own and a free loopback port), or, for the
/// tests that kill it, signal it or measure it, the `imgapi` binary as a
/// child process ([`Server::spawn`]).
pub struct Server {
    run: Running,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    config: Option<PathBuf>,
}

impl Api for Server {
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut rb = self.http.request(method, self.u(path)).body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }
}

/// How a [`Server`] runs.
enum Running {
    InProcess(InProcess),
    Process(Child),
}

impl Server {
    /// Start in process with the embedded defaults (auth none).
    pub async fn start() -> Server {
        Self::start_with_config("").await
    }

    /// Start in process with extra TOML configuration.
    pub async fn start_with_config(toml: &str) -> Server {
        Self::boot(toml, false).await
    }

    /// Start the binary as a child process (for kill -9, signals, RSS).
    pub async fn spawn() -> Server {
        Self::spawn_with_config("").await
    }

    /// [`Server::spawn`] with extra TOML configuration.
    pub async fn spawn_with_config(toml: &str) -> Server {
        Self::boot(toml, true).await
    }

    async fn boot(toml: &str, process: bool) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = if toml.is_empty() {
            None
        } else {
            let p = dir.path().join("imgapi.toml");
            std::fs::write(&p, toml).expect("write config");
            Some(p)
        };
        let (run, url) = start_running(dir.path(), config.as_deref(), process).await;
        Server {
            run,
            url,
            dir,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// The server's process (a [`Server::spawn`]ed one).
    pub fn child(&mut self) -> &mut Child {
        match &mut self.run {
            Running::Process(c) => c,
            Running::InProcess(_) => panic!(
                "this server runs in the test's process: start it with Server::spawn() \
                 to kill, signal or measure it"
            ),
        }
    }

    /// The server's process id (a [`Server::spawn`]ed one).
    pub fn pid(&self) -> u32 {
        match &self.run {
            Running::Process(c) => c.id(),
            Running::InProcess(_) => panic!(
                "this server runs in the test's process: start it with Server::spawn() \
                 to kill, signal or measure it"
            ),
        }
    }

    /// Kill (SIGKILL) and start again on a new port with the same data.
    pub async fn restart_hard(&mut self) {
        self.restart_hard_with(|_| {}).await;
    }

    /// Kill (SIGKILL), let `f` change the stopped server's data directory
    /// (as a crash at some exact point would have left it), start again.
    pub async fn restart_hard_with(&mut self, f: impl FnOnce(&Path)) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
        f(&self.data_dir());
        let (run, url) = start_running(self.dir.path(), self.config.as_deref(), true).await;
        self.run = run;
        self.url = url;
    }

    /// Replace the configuration the next restart reads.
    pub fn set_config(&mut self, toml: &str) {
        let p = self.dir.path().join("imgapi.toml");
        std::fs::write(&p, toml).expect("write config");
        self.config = Some(p);
    }

    /// Stop cleanly (a process: SIGTERM; in process: the same shutdown
    /// future resolved), wait until it has stopped, start again the same
    /// way with the same data.
    pub async fn restart_graceful(&mut self) {
        let process = match &mut self.run {
            Running::Process(child) => {
                stop_with_sigterm(child).await;
                true
            }
            Running::InProcess(ip) => {
                let stopped = ip.stop(std::time::Duration::from_secs(30));
                assert!(stopped, "the in-process server did not stop within 30 s");
                false
            }
        };
        let (run, url) = start_running(self.dir.path(), self.config.as_deref(), process).await;
        self.run = run;
        self.url = url;
    }

    /// The full-file hasher state an upload row holds once every byte of
    /// `data` is in (md5_state, sha1_state).
    pub async fn hash_state_of(data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut h = imgapi::digest::StreamHasher::new().unwrap();
        h.update(&bytes::Bytes::copy_from_slice(data))
            .await
            .unwrap();
        let st = h.finish_state().await.unwrap();
        (st.md5, st.sha1)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run `imgapi` with args against this server's data dir (admin verbs).
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        let mut c = imgapi_command(self.dir.path());
        if let Some(cfg) = &self.config {
            c.arg("--config").arg(cfg);
        }
        c.arg("--data-dir").arg(self.data_dir()).args(args);
        c.output().expect("run imgapi")
    }

    /// `GET /metrics` as text (the server's default auth: no token). Its
    /// log-event counters are the process's: a server in the test's
    /// process counts none (the binary's logger counts them).
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(self.u("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), 200, "GET /metrics");
        r.text().await.expect("metrics text")
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// A tus PATCH at `offset` (as `account`), all but its body.
    pub fn tus_patch_request(
        &self,
        loc: &str,
        account: Option<&str>,
        offset: u64,
    ) -> reqwest::RequestBuilder {
        let q = account.map(|a| format!("?account={a}")).unwrap_or_default();
        self.http
            .patch(self.u(&format!("{loc}{q}")))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
    }

    /// Peak resident set size of the server so far, in KiB (Linux VmHWM;
    /// a [`Server::spawn`]ed one).
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.pid();
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.run {
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess(ip) => {
                ip.stop(std::time::Duration::from_secs(5));
            }
        }
        // Its PostgreSQL database goes with it (a suite starts hundreds).
        drop_database_of(self.dir.path());
    }
}

/// SIGTERM to `child`, then wait (at most 30 s) for it to exit 0.
async fn stop_with_sigterm(child: &mut Child) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "the server exited with {st} after SIGTERM");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A server of the data directory `dir` with `config`, in this process or
/// as a child process: how it runs, and its URL once it answers.
async fn start_running(dir: &Path, config: Option<&Path>, process: bool) -> (Running, String) {
    if process {
        let mut child = spawn(dir, config).0;
        let url = wait_listening(&mut child);
        return (Running::Process(child), url);
    }
    let (ip, url) = InProcess::start(dir, config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ping = reqwest::Client::new();
    loop {
        assert!(
            !ip.ended(),
            "the in-process server of {} ended before it answered (see its error above)",
            dir.display()
        );
        let r = ping
            .get(format!("{url}/ping"))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await;
        if r.is_ok() {
            return (Running::InProcess(ip), url);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the in-process server did not answer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The log of the servers in the test's process, as the spawned binary's:
/// `IMGAPI_TEST_LOG` (a filter, as `IMGAPI_LOG`; default `warn`), written
/// through the test harness's capture, so a failing test shows its
/// server's lines.
fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("IMGAPI_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// `imgapi::run_on` on a runtime of its own, in a thread of its own, so
/// that a test may block (run the CLI, sleep) while it serves.
struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Loads the configuration as `imgapi serve --config CONFIG --data-dir
    /// DIR/data` would (the test backend's database), binds a free
    /// loopback port, and serves on it.
    fn start(dir: &Path, config: Option<&Path>) -> (InProcess, String) {
        init_test_log();
        let o = imgapi::config::Overrides {
            config: config.map(Path::to_path_buf),
            listen: None,
            data_dir: Some(dir.join("data")),
            database_url: None,
        };
        let mut cfg = imgapi::config::Config::load(&o).expect("the server's configuration");
        cfg.database.url = database_url(dir);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(e) = imgapi::run_on(async { Ok(listener) }, cfg, shutdown).await {
                    eprintln!("in-process server: {e:#}");
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        });
        let ip = InProcess {
            stop: Some(stop),
            thread: Some(thread),
        };
        (ip, url)
    }

    /// Its thread has ended (the server stopped or could not start).
    fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Resolve its shutdown and wait up to `wait` for in-flight requests to
    /// finish and the server to return (then leave it to finish alone);
    /// whether it returned in time.
    fn stop(&mut self, wait: std::time::Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = std::time::Instant::now() + wait;
        while !self.ended() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stopped = self.ended();
        if let Some(t) = self.thread.take()
            && stopped
        {
            let _ = t.join();
        }
        stopped
    }
}

/// Drop the database [`database_url`] made for `dir`, if it made one.
pub fn drop_database_of(dir: &Path) {
    if let Ok(url) = std::fs::read_to_string(dir.join("database-url")) {
        drop_pg_database(&url);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Drop the test database at `url` (best effort: the test server goes
/// away at the end of scripts/test.sh anyway).
pub fn drop_pg_database(url: &str) {
    let (Ok(base), Some((_, name))) = (
        std::env::var("IMGAPI_TEST_DATABASE_URL"),
        url.rsplit_once('/'),
    ) else {
        return;
    };
    let _ = Command::new("psql")
        .args(["-X", "-q", &base, "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .output();
}

/// The metadata backend the suites run against: SQLite (the default), or
/// PostgreSQL with `IMGAPI_TEST_BACKEND=postgres` (then each server gets a
/// database of its own on the server of `IMGAPI_TEST_DATABASE_URL`).
pub fn backend_is_postgres() -> bool {
    match std::env::var("IMGAPI_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("IMGAPI_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

/// A new, empty PostgreSQL database on the test server
/// (`IMGAPI_TEST_DATABASE_URL`); its URL.
pub fn new_pg_database() -> String {
    let base = std::env::var("IMGAPI_TEST_DATABASE_URL").expect(
        "IMGAPI_TEST_DATABASE_URL must name the test PostgreSQL server \
         (scripts/pg-server.sh start DIR PORT; scripts/test.sh does it)",
    );
    let name = format!("imgapi_t_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &base, "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (server, _) = base
        .rsplit_once('/')
        .expect("a postgres:// URL with a database");
    format!("{server}/{name}")
}

/// The database URL of the server whose directory is `dir`, made on first
/// use and kept beside it (a restarted server finds its database again);
/// None with the SQLite backend.
pub fn database_url(dir: &Path) -> Option<String> {
    if !backend_is_postgres() {
        return None;
    }
    let f = dir.join("database-url");
    if let Ok(u) = std::fs::read_to_string(&f) {
        return Some(u);
    }
    let u = new_pg_database();
    std::fs::write(&f, &u).expect("write database-url");
    Some(u)
}

/// `imgapi` with the test backend's database (the environment a command
/// of a server in `dir` needs besides its flags).
pub fn imgapi_command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgapi"));
    match database_url(dir) {
        Some(u) => c.env("IMGAPI_DATABASE_URL", u),
        None => c.env_remove("IMGAPI_DATABASE_URL"),
    };
    c
}

fn spawn(dir: &Path, config: Option<&Path>) -> (Child, ()) {
    let mut c = imgapi_command(dir);
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"))
        // IMGAPI_TEST_LOG: the servers' log filter when debugging a test.
        .env(
            "IMGAPI_LOG",
            std::env::var("IMGAPI_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    (c.spawn().expect("spawn imgapi"), ())
}

fn wait_listening(child: &mut Child) -> String {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let line = lines
        .next()
        .expect("server printed nothing")
        .expect("read stdout");
    let url = line
        .strip_prefix("imgapi listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    url
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (st, v)
}

/// Names of the images in a list response.
pub fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A real S3-compatible server for tests: the one `scripts/test.sh` started
/// (IMGAPI_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY), else an s3s-fs
/// process of our own from `target/tools/bin/s3s-fs`. Each test uses its
/// own bucket. There is no fallback: without a server the test fails.
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl S3Server {
    pub fn start() -> S3Server {
        let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
        if let Ok(endpoint) = std::env::var("IMGAPI_TEST_S3_ENDPOINT") {
            return S3Server {
                endpoint,
                access_key: std::env::var("IMGAPI_TEST_S3_ACCESS_KEY")
                    .expect("IMGAPI_TEST_S3_ACCESS_KEY"),
                secret_key: std::env::var("IMGAPI_TEST_S3_SECRET_KEY")
                    .expect("IMGAPI_TEST_S3_SECRET_KEY"),
                bucket,
                child: None,
                _dir: None,
            };
        }
        Self::start_own()
    }

    /// Always a server of our own (tests that stop and restart it).
    pub fn start_own() -> S3Server {
        let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
        let (child, endpoint, dir) = spawn_s3s_fs(None);
        S3Server {
            endpoint,
            access_key: "imgapi-test".into(),
            secret_key: "imgapi-test-secret".into(),
            bucket,
            child: Some(child),
            _dir: Some(dir),
        }
    }

    /// TOML for `[storage.manta]` pointing at this server.
    pub fn manta_toml(&self, part_size_mib: u64) -> String {
        format!(
            "[storage.manta]\ntype = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\n\
             prefix = \"p/\"\nforce_path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
             part_size_mib = {part_size_mib}\nparts_in_flight = 2\n",
            self.endpoint, self.bucket, self.access_key, self.secret_key
        )
    }

    /// The keys in the bucket that start with `prefix` (the first 1 000).
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let r = self
            .client()
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        r.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// A client for checking what is in the bucket.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "test",
        );
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Stop our own server (to test an unreachable store); false if external.
    pub fn stop(&mut self) -> bool {
        match &mut self.child {
            Some(c) => {
                let _ = c.kill();
                let _ = c.wait();
                true
            }
            None => false,
        }
    }

    /// Start our own server again on the same port and data.
    pub fn restart(&mut self) {
        let port: u16 = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let dir = self._dir.as_ref().expect("own server").path().to_path_buf();
        let (child, _, _) = spawn_s3s_fs(Some((port, dir)));
        self.child = Some(child);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn s3s_fs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("IMGAPI_TEST_S3S_FS") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/s3s-fs");
    assert!(
        p.exists(),
        "no S3 server for the S3 tests: run scripts/test.sh (it installs s3s-fs) or set IMGAPI_TEST_S3_ENDPOINT"
    );
    p
}

fn spawn_s3s_fs(reuse: Option<(u16, PathBuf)>) -> (Child, String, tempfile::TempDir) {
    let (port, dir, tmp) = match reuse {
        Some((port, dir)) => (port, dir, tempfile::tempdir().unwrap()),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            (port, tmp.path().to_path_buf(), tmp)
        }
    };
    let mut child = Command::new(s3s_fs_bin())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            "imgapi-test",
            "--secret-key",
            "imgapi-test-secret",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, format!("http://127.0.0.1:{port}"), tmp);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("s3s-fs did not start on port {port}");
}

/// Every file below `p` (none if it does not exist).
pub fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Hex SHA-1 of `d` (the `sha1` of image files).
pub fn sha1_hex(d: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(d))
}

/// Base64 MD5 of `d` (`content_md5`).
pub fn md5_b64(d: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(d))
}

impl Server {
    /// `imgapi account create --login LOGIN [--operator]`: (uuid, token).
    pub fn account(&self, login: &str, operator: bool) -> (String, String) {
        let mut args = vec!["account", "create", "--login", login];
        if operator {
            args.push("--operator");
        }
        let out = self.admin(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .trim()
                .to_string()
        };
        (get("uuid:"), get("token:"))
    }

    /// The server's `host:port`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Send `req` as is on a new connection and read until the server
    /// closes it (send `Connection: close`); at most 20 s.
    pub async fn raw(&self, req: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        c.write_all(req).await.unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(20), c.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// An active public image of VADER on `s` with `data` and an optional origin.
pub async fn active_image(s: &Server, name: &str, origin: Option<&str>, data: &[u8]) -> String {
    let mut body = serde_json::json!({"name": name, "version": "1.0.0", "os": "smartos",
        "type": "zone-dataset", "owner": VADER, "public": true});
    if let Some(o) = origin {
        body["origin"] = serde_json::json!(o);
    }
    let uuid = s.create(None, body).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            data.to_vec(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=activate"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    uuid
}

/// Where a server keeps the image files and icons of the classic flow
/// (AddImageFile): `local` with SQLite, the manta store every node reads
/// with PostgreSQL (docs/cluster.md).
pub fn classic_stor() -> &'static str {
    if backend_is_postgres() {
        "manta"
    } else {
        "local"
    }
}

/// The directory of `classic_stor()`'s image files under `data_dir`.
pub fn classic_files_dir(data_dir: &Path) -> PathBuf {
    if backend_is_postgres() {
        data_dir.join("manta/imgapi/images")
    } else {
        data_dir.join("local")
    }
}

/// `POST /uploads` with `Upload-Concat: partial` as `account`; the Location.
pub async fn partial(s: &Server, len: usize, account: &str) -> String {
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={account}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", len.to_string())
        .header("upload-concat", "partial")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.headers()["location"].to_str().unwrap().to_string()
}

/// `POST /uploads` with `Upload-Concat: final;<urls>` as `account`.
pub async fn final_of(s: &Server, urls: &[String], account: &str) -> (u16, Option<String>, Value) {
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={account}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{}", urls.join(" ")))
        .send()
        .await
        .unwrap();
    let loc = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let (st, v) = status_json(r).await;
    (st, loc, v)
}

/// The value of the sample `name` (with its labels, if any) in a
/// Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}
