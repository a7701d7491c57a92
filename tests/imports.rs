//! Imports between two running servers (a source and a destination):
//! AdminImportRemoteImage jobs with an origin chain, a source cut mid-file
//! (resumed with Range), a source whose Content-MD5 or size lies, a
//! source killed mid-file and restarted (resumed with Range), a
//! destination restarted mid-job, the allow-list, AddImageFileFromSource,
//! AdminImportImageFromSource and GetImageJobs.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the source's answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Pass everything through.
    Pass,
    /// Close the first file response after this many body bytes.
    CutOnce(u64),
    /// Send this many bytes of the first file response, then hang.
    HoldOnce(u64),
    /// Replace the file's Content-MD5 with a wrong one.
    WrongMd5,
    /// Give the manifests' files[0].size one byte more.
    WrongSize,
}

/// A one-request-per-connection HTTP proxy in front of a source, counting
/// file bytes and recording request heads.
struct Proxy {
    url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    file_bytes: Arc<AtomicU64>,
    armed: Arc<AtomicBool>,
    mode: Arc<std::sync::Mutex<Mode>>,
    upstream: Arc<std::sync::Mutex<String>>,
}

impl Proxy {
    async fn start(upstream: &str, mode: Mode) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let p = Proxy {
            url,
            heads: Default::default(),
            file_bytes: Default::default(),
            armed: Arc::new(AtomicBool::new(true)),
            mode: Arc::new(std::sync::Mutex::new(mode)),
            upstream: Arc::new(std::sync::Mutex::new(
                upstream.trim_start_matches("http://").to_string(),
            )),
        };
        let (heads, bytes, armed, mode, upstream) = (
            p.heads.clone(),
            p.file_bytes.clone(),
            p.armed.clone(),
            p.mode.clone(),
            p.upstream.clone(),
        );
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let (heads, bytes, armed, mode, up) = (
                    heads.clone(),
                    bytes.clone(),
                    armed.clone(),
                    mode.clone(),
                    upstream.lock().unwrap().clone(),
                );
                tokio::spawn(async move {
                    let m = *mode.lock().unwrap();
                    let _ = serve(c, &up, m, heads, bytes, armed).await;
                });
            }
        });
        p
    }

    fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Forward to another address from now on (a source restarted).
    fn set_upstream(&self, url: &str) {
        *self.upstream.lock().unwrap() = url.trim_start_matches("http://").to_string();
    }

    fn file_heads(&self) -> Vec<String> {
        let h = self.heads.lock().unwrap();
        h.iter().filter(|h| is_file(h)).cloned().collect()
    }
}

fn is_file(head: &str) -> bool {
    head.lines()
        .next()
        .is_some_and(|l| l.contains("/file ") || l.contains("/file?"))
}

async fn read_head(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        let n = s.read(&mut b).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&b[..n]);
    }
}

async fn serve(
    mut c: TcpStream,
    upstream: &str,
    mode: Mode,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    bytes: Arc<AtomicU64>,
    armed: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let (head, _) = read_head(&mut c).await?;
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap().push(head.clone());
    let file = is_file(&head);
    let mut u = TcpStream::connect(upstream).await?;
    // One request per connection.
    let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    u.write_all(head.as_bytes()).await?;
    let (rhead, mut rest) = read_head(&mut u).await?;
    let mut rhead = String::from_utf8_lossy(&rhead).into_owned();
    if mode == Mode::WrongSize && !file && rhead.starts_with("HTTP/1.1 200") {
        u.read_to_end(&mut rest).await?;
        let mut v: Value = serde_json::from_slice(&rest).unwrap();
        if let Some(n) = v["files"][0]["size"].as_u64() {
            v["files"][0]["size"] = json!(n + 1);
        }
        rest = serde_json::to_vec(&v).unwrap();
        rhead = rhead
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
            .collect::<Vec<_>>()
            .join("\r\n");
        rhead = format!(
            "{}\r\ncontent-length: {}\r\n\r\n",
            rhead.trim_end(),
            rest.len()
        );
        c.write_all(rhead.as_bytes()).await?;
        c.write_all(&rest).await?;
        return Ok(());
    }
    if mode == Mode::WrongMd5 && file {
        let wrong = md5_b64(b"not the file");
        rhead = rhead
            .lines()
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("content-md5") {
                    format!("content-md5: {wrong}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        rhead = format!("{}\r\n\r\n", rhead.trim_end());
    }
    c.write_all(rhead.as_bytes()).await?;
    let limit = match mode {
        Mode::CutOnce(n) | Mode::HoldOnce(n) if file && armed.swap(false, Ordering::SeqCst) => {
            Some(n)
        }
        _ => None,
    };
    let mut sent = 0u64;
    let mut chunk = rest;
    let mut b = vec![0u8; 64 << 10];
    loop {
        if let Some(l) = limit {
            let room = (l - sent) as usize;
            chunk.truncate(room);
        }
        if !chunk.is_empty() {
            c.write_all(&chunk).await?;
            sent += chunk.len() as u64;
            if file {
                bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        if limit.is_some_and(|l| sent >= l) {
            if matches!(mode, Mode::HoldOnce(_)) {
                c.flush().await?;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            return Ok(()); // drop both connections mid-body
        }
        let n = u.read(&mut b).await?;
        if n == 0 {
            return Ok(());
        }
        chunk = b[..n].to_vec();
    }
}

/// POST import-remote; returns (job url, body).
async fn import_remote(d: &Server, uuid: &str, source: &str) -> (String, Value) {
    let r = d
        .http
        .post(d.u(&format!(
            "/images/{uuid}?action=import-remote&source={source}"
        )))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let wf = r
        .headers()
        .get("workflow-api")
        .map(|h| h.to_str().unwrap().to_string());
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["image_uuid"], uuid);
    let wf = wf.expect("workflow-api header");
    (format!("{wf}/jobs/{}", v["job_uuid"].as_str().unwrap()), v)
}

/// Poll a job until it ends (at most 60 s).
async fn wait_job(http: &reqwest::Client, url: &str) -> Value {
    for _ in 0..1200 {
        let (st, j) = status_json(http.get(url).send().await.unwrap()).await;
        assert_eq!(st, 200, "{j}");
        match j["execution"].as_str().unwrap() {
            "succeeded" | "failed" => return j,
            "queued" | "running" => {}
            e => panic!("execution {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job did not end");
}

async fn file_of(s: &Server, uuid: &str) -> (Vec<u8>, String) {
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let md5 = r.headers()["content-md5"].to_str().unwrap().to_string();
    (r.bytes().await.unwrap().to_vec(), md5)
}

/// No stored file and no staged download of `uuid` is left on `s`.
fn no_bytes_of(s: &Server, uuid: &str) {
    let left: Vec<_> = walk(&s.data_dir())
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains(uuid) || p.to_string_lossy().contains("staging/imports/")
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn import_remote_with_origin_chain_resumes_a_cut_transfer() {
    let s = Server::start().await;
    let d = Server::start().await;
    let (da, db, dc) = (data(3 << 20, 1), data(1 << 20, 2), data(2 << 20, 3));
    let a = active_image(&s, "base", None, &da).await;
    let b = active_image(&s, "mid", Some(&a), &db).await;
    let c = active_image(&s, "top", Some(&b), &dc).await;
    let proxy = Proxy::start(&s.url, Mode::CutOnce(1 << 20)).await;

    let (job_url, v) = import_remote(&d, &c, &proxy.url).await;
    let job = wait_job(&d.http, &job_url).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let last = job["chain_results"].as_array().unwrap().last().unwrap();
    assert_eq!(last["error"], "");
    assert_eq!(job["params"]["origins"], json!([a, b]));
    let total = (da.len() + db.len() + dc.len()) as u64;
    assert_eq!(job["bytes_total"], total);
    assert!(job["bytes_received"].as_u64().unwrap() >= total);

    for (u, bytes) in [(&a, &da), (&b, &db), (&c, &dc)] {
        let (st, img) = d.get(&format!("/images/{u}")).await;
        assert_eq!(st, 200);
        assert_eq!(img["state"], "active", "{img}");
        assert_eq!(img["files"][0]["sha1"], sha1_hex(bytes));
        assert_eq!(img["files"][0]["size"], bytes.len());
        let (got, md5) = file_of(&d, u).await;
        assert!(got == **bytes, "bytes of {u} differ");
        assert_eq!(md5, md5_b64(bytes));
    }
    let (_, img) = d.get(&format!("/images/{c}")).await;
    assert_eq!(img["origin"], b.as_str());

    // The cut transfer was resumed with Range, not started over.
    let heads = proxy.file_heads();
    assert!(
        heads
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("range: bytes=1048576-")),
        "no resumed request: {heads:?}"
    );
    assert!(proxy.file_bytes.load(Ordering::SeqCst) < 2 * total);

    // GetImageJobs.
    let (st, jobs) = d.get(&format!("/images/{c}/jobs")).await;
    assert_eq!(st, 200);
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["uuid"], v["job_uuid"]);
    let (_, jobs) = d
        .get(&format!(
            "/images/{c}/jobs?task=import-remote-image&execution=succeeded"
        ))
        .await;
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let (_, jobs) = d.get(&format!("/images/{c}/jobs?execution=failed")).await;
    assert_eq!(jobs, json!([]));
    let (st, e) = d.get(&format!("/images/{c}/jobs?bogus=1")).await;
    assert_eq!((st, e["errors"][0]["field"].as_str()), (422, Some("bogus")));
    let (st, _) = d.get("/jobs/00000000-0000-4000-8000-000000000000").await;
    assert_eq!(st, 404);
    let (st, e) = d
        .get(&format!(
            "{}?x=1",
            &job_url[job_url.find("/jobs/").unwrap()..]
        ))
        .await;
    assert_eq!((st, e["errors"][0]["field"].as_str()), (422, Some("x")));
    let (st, e) = d
        .post(
            &format!("/images/{c}?action=import-remote&source={}&sourse=1", s.url),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["errors"][0]["field"].as_str()),
        (422, Some("sourse"))
    );

    // Importing it again conflicts.
    let (st, e) = d
        .post(
            &format!("/images/{c}?action=import-remote&source={}", s.url),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("ImageUuidAlreadyExists"))
    );
}

#[tokio::test]
async fn a_lying_source_fails_the_job_cleanly_and_a_rerun_succeeds() {
    let s = Server::start().await;
    let d = Server::start().await;
    let (da, dc) = (data(300_000, 4), data(500_000, 5));
    let a = active_image(&s, "base", None, &da).await;
    let c = active_image(&s, "top", Some(&a), &dc).await;

    for (mode, what) in [(Mode::WrongMd5, "md5"), (Mode::WrongSize, "size")] {
        let proxy = Proxy::start(&s.url, mode).await;
        let (job_url, _) = import_remote(&d, &c, &proxy.url).await;
        let job = wait_job(&d.http, &job_url).await;
        assert_eq!(job["execution"], "failed", "{job}");
        let err = &job["chain_results"].as_array().unwrap().last().unwrap()["error"];
        assert_eq!(err["name"], "RemoteSourceError", "{job}");
        assert!(
            err["message"].as_str().unwrap().contains(what),
            "{what}: {err}"
        );
        // Nothing half-imported: no image, no bytes, no staged file.
        for u in [&a, &c] {
            let (st, _) = d.get(&format!("/images/{u}")).await;
            assert_eq!(st, 404, "{u} after {what}");
            no_bytes_of(&d, u);
        }
        let (_, jobs) = d.get(&format!("/images/{c}/jobs?execution=failed")).await;
        assert!(!jobs.as_array().unwrap().is_empty());
    }

    let (job_url, _) = import_remote(&d, &c, &s.url).await;
    let job = wait_job(&d.http, &job_url).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let (got, md5) = file_of(&d, &c).await;
    assert!(got == dc);
    assert_eq!(md5, md5_b64(&dc));
    let (_, img) = d.get(&format!("/images/{a}")).await;
    assert_eq!(img["state"], "active");
}

#[tokio::test]
async fn a_restart_mid_job_resumes_from_the_staged_bytes() {
    let s = Server::spawn().await;
    let mut d = Server::spawn().await;
    let big = data(12 << 20, 6);
    let u = active_image(&s, "big", None, &big).await;
    // Hang after 10 MiB: the job saves its offset every 8 MiB.
    let proxy = Proxy::start(&s.url, Mode::HoldOnce(10 << 20)).await;
    let (job_url, v) = import_remote(&d, &u, &proxy.url).await;
    let job_path = job_url[job_url.find("/jobs/").unwrap()..].to_string();
    let mut saved = 0;
    for _ in 0..600 {
        let (_, j) = d.get(&job_path).await;
        saved = j["bytes_received"].as_u64().unwrap_or(0);
        if saved >= 8 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saved >= 8 << 20, "no progress saved");
    // A crash also left the staged file of a cut-short AddImageFileFromSource.
    d.restart_hard_with(|dir| {
        let p = dir.join("staging/imports/file-0-0.part");
        std::fs::write(p, b"orphan").unwrap();
    })
    .await;
    proxy.set_mode(Mode::Pass);
    let job = wait_job(&d.http, &d.u(&job_path)).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    assert_eq!(job["uuid"], v["job_uuid"]);
    let (got, _) = file_of(&d, &u).await;
    assert!(got == big);
    let heads = proxy.file_heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={saved}-")),
        "{heads:?}"
    );
    assert!(proxy.file_bytes.load(Ordering::SeqCst) < 2 * big.len() as u64);
    no_bytes_of(&d, "staging/imports/");
}

#[tokio::test]
async fn a_source_killed_mid_file_and_restarted_is_resumed_with_range() {
    let mut s = Server::spawn().await;
    let d = Server::spawn_with_config("[imports]\nstall_timeout_secs = 2\n").await;
    let big = data(12 << 20, 7);
    let u = active_image(&s, "big", None, &big).await;
    // The source's answer stops 5 MiB in; then the source is killed.
    let proxy = Proxy::start(&s.url, Mode::HoldOnce(5 << 20)).await;
    let (job_url, _) = import_remote(&d, &u, &proxy.url).await;
    for _ in 0..600 {
        if proxy.file_bytes.load(Ordering::SeqCst) >= 5 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        proxy.file_bytes.load(Ordering::SeqCst) >= 5 << 20,
        "no transfer"
    );
    // Killed: the job's resumes find no source (the proxy cannot reach it)
    // until it is back, on a new port the proxy forwards to.
    s.restart_hard_with(|_| {}).await;
    proxy.set_upstream(&s.url);
    proxy.set_mode(Mode::Pass);
    let job = wait_job(&d.http, &job_url).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let (got, md5) = file_of(&d, &u).await;
    assert!(got == big, "bytes differ");
    assert_eq!(md5, md5_b64(&big));
    let heads = proxy.file_heads();
    assert!(
        heads
            .iter()
            .skip(1)
            .all(|h| h.to_ascii_lowercase().contains("range: bytes=5242880-")),
        "{heads:?}"
    );
    assert!(heads.len() >= 2, "{heads:?}");
    assert!(proxy.file_bytes.load(Ordering::SeqCst) < 2 * big.len() as u64);
    no_bytes_of(&d, "imgapi/imports/job-");
}

#[tokio::test]
async fn sources_outside_the_allow_list_are_refused_before_any_connection() {
    let d = Server::start_with_config("[imports]\nallowed_sources = [\"https://\"]\n").await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let src = format!("http://{}", l.local_addr().unwrap());
    let u = "2a3e5b5e-6f2e-4a7b-9c1d-0e6f7a8b9c0d";
    let img = d
        .create(
            None,
            json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset",
                "owner": VADER}),
        )
        .await;
    let mine = img["uuid"].as_str().unwrap();
    for (method, path) in [
        (
            "POST",
            format!("/images/{u}?action=import-remote&source={src}"),
        ),
        ("POST", format!("/images/{u}?action=import&source={src}")),
        ("PUT", format!("/images/{mine}/file?source={src}")),
    ] {
        let r = d
            .http
            .request(method.parse().unwrap(), d.u(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (st, e) = status_json(r).await;
        assert_eq!(st, 422, "{path}: {e}");
        assert_eq!(e["errors"][0]["field"], "source", "{e}");
        assert_eq!(e["errors"][0]["code"], "NotAllowed", "{e}");
    }
    let accepted = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
    assert!(
        accepted.is_err(),
        "the server connected to a refused source"
    );

    let (st, e) = d
        .post(&format!("/images/{u}?action=import-remote"), json!({}))
        .await;
    assert_eq!(st, 422);
    assert_eq!(e["errors"][0]["code"], "MissingParameter");
    let (st, e) = d
        .post(
            &format!("/images/{u}?action=import-remote&source=https://x.example&account={VADER}"),
            json!({}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (403, Some("OperatorOnly")));
}

#[tokio::test]
async fn import_and_add_file_from_source() {
    let s = Server::start().await;
    let d = Server::start().await;
    let bytes = data(700_000, 7);
    let u = active_image(&s, "plain", None, &bytes).await;

    // AdminImportImageFromSource: the manifest, unactivated.
    let (st, img) = d
        .post(
            &format!("/images/{u}?action=import&source={}", s.url),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["uuid"], u.as_str());
    assert_eq!(img["name"], "plain");
    assert_eq!(img["state"], "unactivated");
    let (st, e) = d
        .post(
            &format!("/images/{u}?action=import&source={}", s.url),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("ImageUuidAlreadyExists"))
    );

    // AddImageFileFromSource.
    let (st, img) = d
        .put_bytes(&format!("/images/{u}/file?source={}", s.url), vec![])
        .await;
    assert_eq!(st, 200, "{img}");
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(img["files"][0]["size"], bytes.len());
    assert_eq!(img["files"][0]["compression"], "none");
    let (st, _) = d
        .post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (got, md5) = file_of(&d, &u).await;
    assert!(got == bytes);
    assert_eq!(md5, md5_b64(&bytes));
    let (st, e) = d
        .put_bytes(&format!("/images/{u}/file?source={}", s.url), vec![])
        .await;
    assert_eq!((st, e["code"].as_str()), (422, Some("ImageFilesImmutable")));

    // A source that does not have the image: 503 with the remote's message.
    let missing = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let (st, e) = d
        .post(
            &format!("/images/{missing}?action=import&source={}", s.url),
            json!({}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (503, Some("RemoteSourceError")));
    assert!(
        e["message"].as_str().unwrap().contains("ResourceNotFound"),
        "{e}"
    );
    // An origin that is not active at the source: refused up front.
    let pa = s
        .create(
            None,
            json!({"name": "unready", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": VADER}),
        )
        .await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let pb = active_image(&s, "on-unready", Some(&pa), &bytes).await;
    let (st, e) = d
        .post(
            &format!("/images/{pb}?action=import-remote&source={}", s.url),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (422, Some("OriginIsNotActive")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains(&pa), "{e}");
    let (st, _) = d.get(&format!("/images/{pb}/jobs")).await;
    assert_eq!(st, 404);

    // A source that is down.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let (st, e) = d
        .post(
            &format!("/images/{missing}?action=import-remote&source={down}"),
            json!({}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (503, Some("RemoteSourceError")));
    let (st, _) = d.get(&format!("/images/{missing}")).await;
    assert_eq!(st, 404);
}

/// An import whose image would not fit its owner's quota fails before its
/// transfer, naming the quota, and leaves nothing behind.
#[tokio::test]
async fn import_remote_over_quota_fails_before_the_transfer() {
    let s = Server::start().await;
    let d = Server::start_with_config("[quotas]\nmax_bytes = 100000\n").await;
    let a = active_image(&s, "big", None, &data(300_000, 4)).await;
    let sent = |t: String| metric(&t, "imgapi_http_response_bytes_total");
    let sent_before = sent(s.metrics().await);
    let (job_url, _) = import_remote(&d, &a, &s.url).await;
    let job = wait_job(&d.http, &job_url).await;
    assert_eq!(job["execution"], "failed", "{job}");
    let err = &job["chain_results"].as_array().unwrap().last().unwrap()["error"];
    assert_eq!(err["name"], "QuotaExceeded", "{job}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("quota of 100000 bytes"),
        "{job}"
    );
    assert_eq!(d.get(&format!("/images/{a}")).await.0, 404);
    // The source sent manifests, not the file.
    let sent = sent(s.metrics().await) - sent_before;
    assert!(sent < 300_000.0, "{sent} bytes sent");
}
