//! Uploads a hostile client cannot turn against others: stalled PATCHes do
//! not starve other accounts, per-account caps on open and streaming
//! uploads, bounded Upload-Metadata, a paginated GET /uploads, checked
//! Content-Range arithmetic, staging no user path can name, UUID-shaped
//! namespace owners that name only that account, and a completion that can
//! never succeed becoming a failed upload its owner sees and can end.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const CT: &str = "application/offset+octet-stream";

/// A PATCH that sends the head and 2 of its 1000 body bytes, then holds the
/// connection open (returned, so it stays open).
async fn stalled_patch(s: &Server, loc: &str, account: &str) -> tokio::net::TcpStream {
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "PATCH {loc}?account={account} HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: {CT}\r\nContent-Length: 1000\r\n\r\nab"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    c
}

/// More stalled PATCHes than the runtime has blocking threads (512), from
/// many accounts: other accounts' reads, writes and uploads go on. One
/// account past its streaming cap gets 429.
#[tokio::test]
async fn stalled_patches_do_not_starve_other_accounts() {
    let s = Server::start_with_config("[uploads]\nmax_streaming_per_account = 16\n").await;
    let accounts: Vec<String> = (0..34).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut held = Vec::new();
    for a in &accounts {
        for _ in 0..16 {
            let loc = s.tus_location(1000, Some(a)).await;
            held.push(stalled_patch(&s, &loc, a).await);
        }
    }
    // The 17th streaming request of one account is refused at once.
    let loc = s.tus_location(10, Some(&accounts[0])).await;
    let (st, _, v) = s
        .tus_patch(&loc, Some(&accounts[0]), 0, b"0123456789".to_vec())
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (429, Some("TooManyRequests")),
        "{v}"
    );
    // Everyone else is served promptly.
    let other = uuid::Uuid::new_v4().to_string();
    let t0 = Instant::now();
    let (st, _) = s.get(&format!("/images?account={other}")).await;
    assert_eq!(st, 200);
    let img = s
        .create(
            Some(&other),
            json!({"name": "busy", "version": "1", "os": "other", "type": "other"}),
        )
        .await;
    assert!(img["uuid"].is_string());
    let loc = s.tus_location(10, Some(&other)).await;
    let (st, _, _) = s
        .tus_patch(&loc, Some(&other), 0, b"0123456789".to_vec())
        .await;
    assert_eq!(st, 204);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "other accounts waited {:?}",
        t0.elapsed()
    );
    drop(held);
}

#[tokio::test]
async fn open_uploads_per_account_are_capped() {
    let s = Server::start_with_config("[uploads]\nmax_open_per_account = 3\n").await;
    let a = uuid::Uuid::new_v4().to_string();
    let mut locs = Vec::new();
    for _ in 0..3 {
        locs.push(s.tus_location(0, Some(&a)).await); // zero-length ones count too
    }
    let (st, _) = s.tus_create(10, Some(&a), &[]).await;
    assert_eq!(st, 429);
    // Another account is not affected; ending one frees a place.
    let (st, _) = s
        .tus_create(10, Some(&uuid::Uuid::new_v4().to_string()), &[])
        .await;
    assert_eq!(st, 201);
    let r = s
        .http
        .delete(s.u(&format!("{}?account={a}", locs[0])))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (st, _) = s.tus_create(10, Some(&a), &[]).await;
    assert_eq!(st, 201);
}

#[tokio::test]
async fn upload_metadata_is_bounded() {
    let s = Server::start().await;
    let big = "x".repeat(5000);
    let (st, _) = s.tus_create(10, None, &[("filename", big.as_str())]).await;
    assert_eq!(st, 400, "5000 bytes of metadata");
    let keys: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    let (st, _) = s.tus_create(10, None, &pairs).await;
    assert_eq!(st, 400, "33 keys");
    let (st, _) = s.tus_create(10, None, &pairs[..32]).await;
    assert_eq!(st, 201, "32 keys");
}

#[tokio::test]
async fn get_uploads_is_paginated() {
    let s = Server::start().await;
    let a = uuid::Uuid::new_v4().to_string();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let loc = s.tus_location(10, Some(&a)).await;
        ids.push(upload_id(&loc));
        tokio::time::sleep(Duration::from_millis(2)).await; // distinct created_at
    }
    ids.reverse(); // newest first
    async fn page(s: &Server, a: &str, q: &str) -> Vec<String> {
        let (st, v) = s.get(&format!("/uploads?account={a}{q}")).await;
        assert_eq!(st, 200, "{v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    }
    assert_eq!(page(&s, &a, "").await, ids);
    assert_eq!(page(&s, &a, "&limit=2").await, ids[..2].to_vec());
    assert_eq!(
        page(&s, &a, &format!("&limit=2&marker={}", ids[1])).await,
        ids[2..4].to_vec()
    );
    assert_eq!(
        page(&s, &a, &format!("&marker={}", ids[4])).await,
        Vec::<String>::new()
    );
    for bad in [
        "&limit=0",
        "&limit=1001",
        "&limit=x",
        "&marker=nope",
        "&frob=1",
    ] {
        let (st, v) = s.get(&format!("/uploads?account={a}{bad}")).await;
        assert_eq!(st, 422, "{bad}: {v}");
    }
    // Another account's upload is no marker (the same answer as a missing one).
    let (st, _) = s
        .get(&format!(
            "/uploads?account={}&marker={}",
            uuid::Uuid::new_v4(),
            ids[0]
        ))
        .await;
    assert_eq!(st, 422);
}

#[tokio::test]
async fn content_range_is_checked() {
    let s = Server::start().await;
    let loc = s.tus_location(10, None).await;
    let put = |range: &'static str, body: &'static [u8]| {
        let (s, loc) = (&s, loc.clone());
        async move {
            s.http
                .put(s.u(&loc))
                .header("content-range", range)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let st = put("bytes 0-18446744073709551615/*", b"0123456789").await;
    assert!(st == 416 || st == 400, "{st}");
    assert_eq!(s.tus_offset(&loc).await, (200, Some(0)));
    let st = put("bytes 0-1/10", b"0123456789").await;
    assert_eq!(st, 400, "range of 2 bytes, body of 10");
    assert_eq!(s.tus_offset(&loc).await, (200, Some(0)));
    assert_eq!(put("bytes 0-9/10", b"0123456789").await, 204);
    assert_eq!(s.tus_offset(&loc).await, (200, Some(10)));
}

/// Unfinished uploads to the assets store keep their bytes where no
/// `/assets/...` path reaches: an allowed account cannot register someone
/// else's partial bytes.
#[tokio::test]
async fn assets_staging_is_not_addressable() {
    let mallory = uuid::Uuid::new_v4().to_string();
    let s = Server::start_with_config(&format!(
        "[storage.assets]\nallowed_accounts = [\"{mallory}\"]\n"
    ))
    .await;
    let (st, h) = s
        .tus_create(100, None, &[("path", "/assets/base/secret.img")])
        .await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    let id = upload_id(&loc);
    let (st, _, _) = s.tus_patch(&loc, None, 0, vec![7u8; 50]).await;
    assert_eq!(st, 204);
    for path in [
        format!("/assets/imgapi-uploads/{id}"),
        format!("/assets/.imgapi-uploads/{id}"),
    ] {
        let (st, v) = s
            .post(
                &format!("/images?account={mallory}"),
                json!({"name": "stolen", "version": "1", "os": "other", "type": "other",
                       "files": [{"path": path, "content_md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                                  "compression": "none"}]}),
            )
            .await;
        assert_eq!(st, 422, "{path}: {v}");
    }
}

/// A namespace owner that looks like a UUID names that account only, never
/// an account whose login happens to be that string.
#[tokio::test]
async fn uuid_shaped_owners_name_only_that_account() {
    let mut s = Server::spawn().await;
    let (alice, bob) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let (a2, b2) = (alice.clone(), bob.clone());
    // An account from before logins were checked: its login is Alice's uuid.
    s.restart_hard_with(move |d| {
        let c = rusqlite::Connection::open(d.join("imgapi.sqlite")).unwrap();
        c.execute(
            "INSERT INTO accounts (uuid, login, operator, created_at) VALUES (?1, ?2, 0, '2026-01-01T00:00:00.000Z')",
            [&b2, &a2],
        )
        .unwrap();
    })
    .await;
    let path = format!("/{alice}/stor/x.img");
    let (st, _) = s
        .tus_create(10, Some(&bob), &[("path", path.as_str())])
        .await;
    assert_eq!(st, 422, "Bob may not write into Alice's namespace");
    let (st, _) = s
        .tus_create(10, Some(&alice), &[("path", path.as_str())])
        .await;
    assert_eq!(st, 201, "Alice may");
}

/// The bytes cannot be put at the upload's path (a directory stands
/// there): the upload fails for good with a reason its owner sees, a clear
/// 4xx, and can be terminated; no 500 on every retry.
#[tokio::test]
async fn an_impossible_path_fails_the_upload_visibly() {
    let s = Server::start().await;
    let dir = s.data_dir().join(format!("manta/{SDC}/stor/taken"));
    std::fs::create_dir_all(dir.join("inside")).unwrap();
    let path = format!("/{SDC}/stor/taken");
    let (st, h) = s.tus_create(10, None, &[("path", path.as_str())]).await;
    assert_eq!(st, 201);
    let loc = h["location"].to_str().unwrap().to_string();
    let (st, _, v) = s.tus_patch(&loc, None, 0, b"0123456789".to_vec()).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["code"], "InvalidParameter");
    let (st, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(st, 200);
    assert_eq!(info["state"], "failed", "{info}");
    let (st, v) = s
        .post(
            "/images",
            json!({"name": "x", "version": "1", "os": "other", "type": "other", "owner": SDC,
                   "files": [{"upload": loc.rsplit('/').next().unwrap(),
                              "content_md5": "eB5eJF1ptWaXm4bijSPyxw==", "compression": "none"}]}),
        )
        .await;
    assert!((400..500).contains(&st), "registering it: {st} {v}");
    let r = s
        .http
        .delete(s.u(&loc))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.tus_offset(&loc).await.0, 404);
    assert!(dir.join("inside").is_dir(), "the directory is untouched");
}

/// The data directory the server creates is private to its user.
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start().await;
    let mode = std::fs::metadata(s.data_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
