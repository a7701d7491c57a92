//! Hardening of the HTTP layer: connection timeouts and the connection
//! limit, closed sets of metrics labels, JSON-only bodies and the Host and
//! Origin checks of `auth = "none"`, the Bearer scheme, `/metrics` in token
//! mode, bounded ListImages filters, and the `marker` lookup's visibility.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read until EOF or error; how long it took (panics after `max`).
async fn wait_closed(c: &mut TcpStream, max: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(max.saturating_sub(start.elapsed()), c.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {max:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

fn server_toml(header: u64, idle: u64, stall: u64, max: usize) -> String {
    format!(
        "[server]\nheader_read_timeout_secs = {header}\nidle_timeout_secs = {idle}\n\
         body_stall_timeout_secs = {stall}\nmax_connections = {max}\n"
    )
}

#[tokio::test]
async fn half_sent_request_head_is_closed() {
    let s = Server::start_with_config(&server_toml(1, 30, 30, 64)).await;
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    c.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let took = wait_closed(&mut c, Duration::from_secs(8)).await;
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    // The server still answers.
    assert_eq!(s.get("/ping").await.0, 200);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let s = Server::start_with_config(&server_toml(30, 1, 30, 64)).await;
    // A connection that never sends anything.
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    wait_closed(&mut c, Duration::from_secs(8)).await;
    // A keep-alive connection after one answered request.
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    c.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    wait_closed(&mut c, Duration::from_secs(8)).await;
}

#[tokio::test]
async fn stalled_body_ends_the_request_and_the_upload_resumes() {
    let s = Server::start_with_config(&server_toml(30, 30, 1, 64)).await;
    let loc = s.tus_location(1000, None).await;
    let path = loc.strip_prefix(&s.url).unwrap_or(&loc).to_string();
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n\
         Content-Length: 1000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(b"ab").await.unwrap();
    // The request ends within the stall timeout (an error answer, or the
    // connection closed), although the client keeps the connection open.
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let r = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await;
    assert!(r.is_ok(), "the stalled PATCH did not end");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The two bytes are kept, the upload is not locked, and it resumes.
    let r = s
        .http
        .head(s.u(&path))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["upload-offset"], "2");
    let (st, h, v) = s.tus_patch(&path, None, 2, vec![7u8; 998]).await;
    assert_eq!(st, 204, "{v}");
    assert_eq!(h["upload-offset"], "1000");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_ping_answers_after() {
    let s = Server::start_with_config(&server_toml(30, 2, 30, 8)).await;
    let mut idle = Vec::new();
    for _ in 0..24 {
        idle.push(TcpStream::connect(s.addr()).await.unwrap());
    }
    // All 8 slots are taken by idle connections: /ping waits...
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert!(quick.get(s.u("/ping")).send().await.is_err());
    // ...and answers once the idle ones are closed by the idle timeout.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = patient.get(s.u("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
}

#[tokio::test]
async fn garbage_methods_do_not_grow_metrics() {
    let s = Server::start().await;
    for i in 0..200 {
        let garbage = format!("G{i}{}", "ARBAGE".repeat(300));
        let m = reqwest::Method::from_bytes(garbage.as_bytes()).unwrap();
        let r = s.http.request(m, s.u("/images")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        let r = s
            .http
            .post(s.u("/images"))
            .header("x-http-method-override", &garbage)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (st, v) = status_json(r).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("BadRequestError")));
    }
    let m = s.metrics().await;
    assert!(!m.contains("ARBAGE"));
    assert!(m.len() < 32 << 10, "metrics are {} bytes", m.len());
    assert!(m.contains("method=\"other\""));
}

#[tokio::test]
async fn json_endpoints_take_only_json() {
    let s = Server::start().await;
    let body = r#"{"name": "x", "version": "1", "os": "linux", "type": "other", "owner": "86055c40-2547-11e2-8a6b-4bb37edc84ba"}"#;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut rb = s.http.post(s.u("/images")).body(body);
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let (st, v) = status_json(rb.send().await.unwrap()).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (415, Some("UnsupportedMediaType")),
            "{ct:?}"
        );
    }
    let (st, v) = status_json(
        s.http
            .post(s.u("/images"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let uuid = v["uuid"].as_str().unwrap();
    // The other JSON endpoints too.
    for p in [
        format!("/images/{uuid}?action=update"),
        format!("/images/{uuid}/acl?action=add"),
        format!("/images/{uuid}?action=import"),
    ] {
        let r = s
            .http
            .post(s.u(&p))
            .header("content-type", "text/plain")
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{p}");
    }
    // An empty body without Content-Type is fine.
    s.put_bytes(&format!("/images/{uuid}/file?compression=none"), vec![1; 4])
        .await;
    let r = s
        .http
        .post(s.u(&format!("/images/{uuid}?action=activate")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn auth_none_serves_only_local_hosts_and_origins() {
    let s = Server::start_with_config("allowed_hosts = [\"imgapi.internal\"]\n").await;
    let req = |host: &str, extra: &str| {
        format!("GET /ping HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
    };
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1",
        "127.1.2.3:99",
        "[::1]:8080",
        "imgapi.internal",
        "IMGAPI.internal:80",
    ] {
        let r = s.raw(req(host, "").as_bytes()).await;
        assert_eq!(raw_status(&r), 200, "{host}: {r}");
    }
    for host in [
        "evil.example",
        "evil.example:8080",
        "10.1.2.3",
        "localhost.evil.example",
    ] {
        let r = s.raw(req(host, "").as_bytes()).await;
        assert_eq!(raw_status(&r), 400, "{host}: {r}");
        assert!(r.contains("InvalidHeader"), "{r}");
    }
    // A page of another origin may not post to it.
    let r = s
        .raw(req("127.0.0.1", "Origin: http://evil.example\r\n").as_bytes())
        .await;
    assert_eq!(raw_status(&r), 400, "{r}");
    let r = s
        .raw(req("127.0.0.1", "Origin: http://localhost:3000\r\n").as_bytes())
        .await;
    assert_eq!(raw_status(&r), 200, "{r}");
    // Token mode does not check Host.
    let t = Server::start_with_config("auth = \"token\"\n").await;
    let r = t.raw(req("evil.example", "").as_bytes()).await;
    assert_eq!(raw_status(&r), 200, "{r}");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_metrics_need_an_operator() {
    let s = Server::start_with_config("auth = \"token\"\n").await;
    let (_alice, alice_tok) = s.account("alice", false);
    let (_op, op_tok) = s.account("root-op", true);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = s
            .http
            .get(s.u("/ping"))
            .header("authorization", format!("{scheme} {alice_tok}"))
            .send()
            .await
            .unwrap();
        let (st, v) = status_json(r).await;
        assert_eq!(st, 200, "{scheme}: {v}");
        assert!(v.get("pid").is_some(), "{scheme}: not authenticated: {v}");
    }
    let r = s
        .http
        .get(s.u("/ping"))
        .header("authorization", format!("Basic {alice_tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // /metrics: operators only.
    let r = s.http.get(s.u("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(s.u("/metrics"))
        .bearer_auth(&alice_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .get(s.u("/metrics"))
        .bearer_auth(&op_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("imgapi_http_requests_total")
    );
    // ...unless metrics_public.
    let p = Server::start_with_config("auth = \"token\"\nmetrics_public = true\n").await;
    let r = p.http.get(p.u("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn list_filters_are_bounded() {
    let s = Server::start().await;
    let tags: Vec<String> = (0..1000).map(|i| format!("tag.k{i}=v")).collect();
    let (st, v) = s.get(&format!("/images?{}", tags.join("&"))).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("InvalidParameter")),
        "{v}"
    );
    assert_eq!(v["errors"][0]["field"], "tag");
    let bt: Vec<String> = (0..100).map(|i| format!("billing_tag=b{i}")).collect();
    let (st, v) = s.get(&format!("/images?{}", bt.join("&"))).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("InvalidParameter")),
        "{v}"
    );
    assert_eq!(v["errors"][0]["field"], "billing_tag");
    let many: Vec<String> = (0..500).map(|i| format!("name=n{i}")).collect();
    let (st, v) = s.get(&format!("/images?{}", many.join("&"))).await;
    assert_eq!(st, 422, "{v}");
    // Up to the bounds is fine (and no 5xx).
    let (st, v) = s
        .get(&format!(
            "/images?{}&{}",
            tags[..32].join("&"),
            bt[..32].join("&")
        ))
        .await;
    assert_eq!(st, 200, "{v}");
    // The whole query string is bounded.
    let (st, v) = s.get(&format!("/images?name={}", "x".repeat(20_000))).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("BadRequestError")),
        "{v}"
    );
}

#[tokio::test]
async fn marker_of_an_invisible_image_is_like_a_missing_one() {
    let s = Server::start().await;
    let private = s.create_active(VADER, "private", false, b"data").await;
    let u = private["uuid"].as_str().unwrap();
    // The owner may use it as a marker.
    let (st, _) = s.get(&format!("/images?account={VADER}&marker={u}")).await;
    assert_eq!(st, 200);
    // Another account gets exactly the answer of a random uuid.
    let (st1, v1) = s.get(&format!("/images?account={LUKE}&marker={u}")).await;
    let random = uuid::Uuid::new_v4();
    let (st2, v2) = s
        .get(&format!("/images?account={LUKE}&marker={random}"))
        .await;
    assert_eq!(st1, 404, "{v1}");
    assert_eq!((st1, &v1["code"]), (st2, &v2["code"]));
    // Anonymous callers of a token server too.
    let t = Server::start_with_config("auth = \"token\"\n").await;
    let (_a, tok) = t.account("alice", false);
    let img = t
        .http
        .post(t.u("/images"))
        .bearer_auth(&tok)
        .json(&json!({"name": "p", "version": "1", "os": "linux", "type": "other"}))
        .send()
        .await
        .unwrap();
    let (_, img) = status_json(img).await;
    let u = img["uuid"].as_str().unwrap();
    let (st1, _) = t.get(&format!("/images?marker={u}")).await;
    let (st2, _) = t.get(&format!("/images?marker={random}")).await;
    assert_eq!((st1, st2), (404, 404));
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let mut s = Server::spawn().await;
    let loc = s.tus_location(1000, None).await;
    let path = loc.strip_prefix(&s.url).unwrap_or(&loc).to_string();
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n\
         Content-Length: 1000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&[1u8; 500]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections are served...
    assert!(
        tokio::time::timeout(Duration::from_secs(2), s.http.get(s.u("/ping")).send())
            .await
            .map_or(true, |r| r.is_err())
    );
    // ...but the request in flight finishes.
    c.write_all(&[2u8; 500]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(raw_status(&resp), 204, "{resp}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = s.child().try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_disconnected() {
    let s = Server::start_with_config(&server_toml(30, 30, 1, 64)).await;
    let size = 48 << 20;
    let img = s.create_active(VADER, "big", true, &vec![5u8; size]).await;
    let u = img["uuid"].as_str().unwrap();
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    c.write_all(format!("GET /images/{u}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Read nothing for a while: the server's writes stall and it gives up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Err(_) => panic!("the stalled download was not closed"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    assert!(got < size, "the whole file arrived: {got}");
    assert_eq!(s.get("/ping").await.0, 200);
}
