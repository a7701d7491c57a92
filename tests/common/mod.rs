//! Test harness: runs the real `imgapi` binary on a free loopback port with
//! its own temporary data directory, and talks to it over HTTP.
#![allow(dead_code)]

pub mod app;
pub mod cli;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const VADER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
pub const LUKE: &str = "91ba0e64-2547-11e2-a972-df579e5fddb3";
pub const EMPEROR: &str = "a0b6b534-2547-11e2-b758-63a2afd747d1";
pub const SDC: &str = "ba28f844-8cb4-f141-882d-46d6251e6a9f";

/// A running server.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    config: Option<PathBuf>,
}

impl Server {
    /// Start with the embedded defaults (auth none) on a free port.
    pub async fn start() -> Server {
        Self::start_with_config("").await
    }

    /// Start with extra TOML configuration.
    pub async fn start_with_config(toml: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = if toml.is_empty() {
            None
        } else {
            let p = dir.path().join("imgapi.toml");
            std::fs::write(&p, toml).expect("write config");
            Some(p)
        };
        let mut s = Server {
            child: spawn(dir.path(), config.as_deref()).0,
            url: String::new(),
            dir,
            http: reqwest::Client::new(),
            config,
        };
        s.url = wait_listening(&mut s.child);
        s
    }

    /// Kill (SIGKILL) and start again on a new port with the same data.
    pub async fn restart_hard(&mut self) {
        self.restart_hard_with(|_| {}).await;
    }

    /// Kill (SIGKILL), let `f` change the stopped server's data directory
    /// (as a crash at some exact point would have left it), start again.
    pub async fn restart_hard_with(&mut self, f: impl FnOnce(&Path)) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        f(&self.data_dir());
        self.child = spawn(self.dir.path(), self.config.as_deref()).0;
        self.url = wait_listening(&mut self.child);
    }

    /// Replace the configuration the next restart reads.
    pub fn set_config(&mut self, toml: &str) {
        let p = self.dir.path().join("imgapi.toml");
        std::fs::write(&p, toml).expect("write config");
        self.config = Some(p);
    }

    /// Stop with SIGTERM (a clean shutdown: what the server writes on its
    /// way out is written), wait for it to exit, start again.
    pub async fn restart_graceful(&mut self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(st.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                assert!(st.success(), "the server exited with {st} after SIGTERM");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit after SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.child = spawn(self.dir.path(), self.config.as_deref()).0;
        self.url = wait_listening(&mut self.child);
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

    /// `GET /metrics` as text (the server's default auth: no token).
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

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.u(path)).send().await.expect("GET");
        status_json(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.u(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        status_json(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.u(path)).send().await.expect("DELETE");
        status_json(r).await
    }

    pub async fn put_bytes(&self, path: &str, data: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .put(self.u(path))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .expect("PUT");
        status_json(r).await
    }

    /// tus creation: POST /uploads as `account` with `Upload-Metadata`
    /// pairs; returns (status, headers).
    pub async fn tus_create(
        &self,
        len: u64,
        account: Option<&str>,
        meta: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap) {
        use base64::Engine;
        let q = account.map(|a| format!("?account={a}")).unwrap_or_default();
        let meta: Vec<String> = meta
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            })
            .collect();
        let mut rb = self
            .http
            .post(self.u(&format!("/uploads{q}")))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", len.to_string());
        if !meta.is_empty() {
            rb = rb.header("upload-metadata", meta.join(","));
        }
        let r = rb.send().await.expect("POST /uploads");
        (r.status().as_u16(), r.headers().clone())
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

    /// tus PATCH of `body` at `offset` (as `account`); returns (status,
    /// headers, body).
    pub async fn tus_patch(
        &self,
        loc: &str,
        account: Option<&str>,
        offset: u64,
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .tus_patch_request(loc, account, offset)
            .body(body)
            .send()
            .await
            .expect("PATCH");
        let h = r.headers().clone();
        let (st, v) = status_json(r).await;
        (st, h, v)
    }

    /// Create an image as `account` (or operator with `owner` in the body).
    pub async fn create(&self, account: Option<&str>, body: Value) -> Value {
        let path = match account {
            Some(a) => format!("/images?account={a}"),
            None => "/images".to_string(),
        };
        let (st, v) = self.post(&path, body).await;
        assert_eq!(st, 200, "create: {v}");
        v
    }

    /// Create, add a file and activate; returns the image.
    pub async fn create_active(&self, owner: &str, name: &str, public: bool, data: &[u8]) -> Value {
        let img = self
            .create(
                None,
                serde_json::json!({"name": name, "version": "1.0.0", "os": "smartos",
                    "type": "zone-dataset", "owner": owner, "public": public}),
            )
            .await;
        let uuid = img["uuid"].as_str().unwrap().to_string();
        self.add_file_and_activate(&uuid, data).await
    }

    /// AddImageFile of `data`, then ActivateImage; returns the image.
    pub async fn add_file_and_activate(&self, uuid: &str, data: &[u8]) -> Value {
        let (st, v) = self
            .put_bytes(
                &format!("/images/{uuid}/file?compression=none"),
                data.to_vec(),
            )
            .await;
        assert_eq!(st, 200, "add file: {v}");
        let (st, v) = self
            .post(
                &format!("/images/{uuid}?action=activate"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(st, 200, "activate: {v}");
        v
    }

    /// Peak resident set size of the server so far, in KiB (Linux VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its PostgreSQL database goes with it (a suite starts hundreds).
        drop_database_of(self.dir.path());
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

impl Server {
    /// tus HEAD of `loc`: (status, Upload-Offset, headers).
    pub async fn tus_head(&self, loc: &str) -> (u16, Option<u64>, reqwest::header::HeaderMap) {
        let r = self
            .http
            .head(self.u(loc))
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let off = r
            .headers()
            .get("upload-offset")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (r.status().as_u16(), off, r.headers().clone())
    }
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
