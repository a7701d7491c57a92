//! Space (issue 24): download statistics per image. What counts as a
//! download (a file served to its last byte, in one request or at the end
//! of a ranged series), what does not (a range short of the end, HEAD,
//! 304), the admin fields that show them, the ListImages filters on them,
//! and how counts survive a clean stop and a kill -9 (at most one flush
//! interval lost).

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;

/// A server whose nodes write their download counts every second.
async fn server(flush_secs: u64) -> Server {
    Server::start_with_config(&format!("[downloads]\nstats_flush_secs = {flush_secs}\n")).await
}

/// [`server`] as a child process: for the tests that read its metrics
/// (process-wide) or kill it.
async fn spawned_server(flush_secs: u64) -> Server {
    Server::spawn_with_config(&format!("[downloads]\nstats_flush_secs = {flush_secs}\n")).await
}

async fn admin_view(s: &Server, uuid: &str) -> Value {
    let (st, v) = s.get(&format!("/images/{uuid}?inclAdminFields=true")).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// The image's admin view once its `downloads` is `n` (counts reach the
/// database within a flush interval); fails if it passes `n` or takes
/// longer than `within`.
async fn downloads_reach(s: &Server, uuid: &str, n: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = admin_view(s, uuid).await;
        let got = v["downloads"]
            .as_u64()
            .expect("downloads is an admin field");
        assert!(got <= n, "{got} downloads counted, only {n} made: {v}");
        if got == n {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "downloads stayed at {got}, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET the file with an optional `Range`; (status, body).
async fn fetch(s: &Server, uuid: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = s.http.get(s.u(&format!("/images/{uuid}/file")));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let r = req.send().await.expect("GET file");
    let st = r.status().as_u16();
    (st, r.bytes().await.expect("body").to_vec())
}

fn time_of(v: &Value) -> DateTime<Utc> {
    let t = v["last_downloaded_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_downloaded_at: {v}"));
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

fn uuids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|i| i["uuid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_download_counts_when_the_file_is_served_to_its_last_byte() {
    let s = server(1).await;
    let data = data(64 * 1024, 7);
    let img = s.create_active(SDC, "counted", true, &data).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let never = s.create_active(SDC, "never", true, &data[..100]).await;
    let never = never["uuid"].as_str().unwrap().to_string();

    // Nothing yet: 0 and no time for an admin, neither field for others.
    let v = admin_view(&s, &uuid).await;
    assert_eq!(v["downloads"], 0, "{v}");
    assert!(v.get("last_downloaded_at").is_none(), "{v}");
    let (_, plain) = s.get(&format!("/images/{uuid}")).await;
    assert!(plain.get("downloads").is_none() && plain.get("last_downloaded_at").is_none());

    let before = Utc::now() - chrono::Duration::milliseconds(5);
    // Counted: two whole files, and a ranged series whose last request
    // reaches the end.
    for _ in 0..2 {
        assert_eq!(fetch(&s, &uuid, None).await, (200, data.clone()));
    }
    assert_eq!(
        fetch(&s, &uuid, Some("bytes=0-9")).await,
        (206, data[..10].to_vec())
    );
    assert_eq!(
        fetch(&s, &uuid, Some("bytes=10-")).await,
        (206, data[10..].to_vec())
    );
    // Not counted: a range short of the end, HEAD, a 304.
    assert_eq!(fetch(&s, &uuid, Some("bytes=100-200")).await.0, 206);
    let head = s
        .http
        .head(s.u(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let sha1 = img["files"][0]["sha1"].as_str().unwrap();
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file")))
        .header("if-none-match", format!("\"{sha1}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Counted: 8 at once.
    let all = futures_util::future::join_all((0..8).map(|_| fetch(&s, &uuid, None))).await;
    assert!(all.iter().all(|r| *r == (200, data.clone())));

    let v = downloads_reach(&s, &uuid, 11, Duration::from_secs(15)).await;
    let last = time_of(&v);
    assert!(
        last >= before && last <= Utc::now(),
        "last download at {last}"
    );
    // Nothing more arrives later (each download counted once).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(admin_view(&s, &uuid).await["downloads"], 11);

    // ListImages with admin fields shows them too.
    let (st, list) = s.get("/images?inclAdminFields=true").await;
    assert_eq!(st, 200, "{list}");
    let of = |u: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["uuid"] == u)
            .cloned()
            .unwrap()
    };
    assert_eq!(of(&uuid)["downloads"], 11);
    assert_eq!(of(&uuid)["last_downloaded_at"], v["last_downloaded_at"]);
    assert_eq!(of(&never)["downloads"], 0);
    assert!(of(&never).get("last_downloaded_at").is_none());
    let (_, plain) = s.get("/images").await;
    assert!(
        plain
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("downloads").is_none())
    );

    // The filters: not downloaded since a date (or never), downloaded since.
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (st, l) = s
        .get(&format!("/images?last_downloaded_before={}", at(before)))
        .await;
    assert_eq!(st, 200, "{l}");
    assert_eq!(uuids(&l), vec![never.clone()]);
    let (_, l) = s
        .get(&format!("/images?last_downloaded_since={}", at(before)))
        .await;
    assert_eq!(uuids(&l), vec![uuid.clone()]);
    let after = last + chrono::Duration::milliseconds(1);
    let (_, l) = s
        .get(&format!("/images?last_downloaded_since={}", at(after)))
        .await;
    assert_eq!(uuids(&l), Vec::<String>::new());
    let (_, l) = s
        .get(&format!("/images?last_downloaded_before={}", at(after)))
        .await;
    let mut both = uuids(&l);
    both.sort();
    let mut want = vec![uuid.clone(), never.clone()];
    want.sort();
    assert_eq!(both, want);
    // A day alone is a date too; a word is not.
    let (st, _) = s.get("/images?last_downloaded_before=2000-01-02").await;
    assert_eq!(st, 200);
    for field in ["last_downloaded_before", "last_downloaded_since"] {
        let (st, e) = s.get(&format!("/images?{field}=yesterday")).await;
        assert_eq!(st, 422, "{e}");
        assert_eq!(e["code"], "InvalidParameter", "{e}");
        assert_eq!(e["errors"][0]["field"], field, "{e}");
    }

    // Prometheus counts the downloads (no per-image label).
    let m = s.metrics().await;
    assert_eq!(metric(&m, "imgapi_image_downloads_total"), 11.0);
}

#[tokio::test]
async fn counts_are_written_at_a_clean_stop_and_a_kill_loses_at_most_one_interval() {
    // An hour between flushes: only the shutdown writes them.
    let mut s = spawned_server(3600).await;
    let data = data(4096, 3);
    let uuid = s.create_active(SDC, "kept", true, &data).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        assert_eq!(fetch(&s, &uuid, None).await.0, 200);
    }
    s.restart_graceful().await;
    assert_eq!(admin_view(&s, &uuid).await["downloads"], 3);
    // What an operator sees with the client.
    let state = tempfile::tempdir().unwrap();
    let out = common::cli::imgapi(&s.url, state.path())
        .args(["images", "get", &uuid, "--admin-fields", "--json"])
        .output()
        .unwrap();
    let v = common::cli::stdout_json(&out);
    assert_eq!(v["downloads"], 3, "{v}");
    assert!(v["last_downloaded_at"].is_string(), "{v}");
    let out = common::cli::imgapi(&s.url, state.path())
        .args([
            "images",
            "list",
            "--last-downloaded-since",
            "2000-01-01",
            "--admin-fields",
            "--json",
        ])
        .output()
        .unwrap();
    let v = common::cli::stdout_json(&out);
    assert_eq!(uuids(&v), vec![uuid.clone()], "{v}");
    assert_eq!(v[0]["downloads"], 3, "{v}");
    // A kill -9 loses what the last interval counted, never more.
    for _ in 0..2 {
        assert_eq!(fetch(&s, &uuid, None).await.0, 200);
    }
    s.restart_hard().await;
    assert_eq!(admin_view(&s, &uuid).await["downloads"], 3);

    // Flushed every second: a kill -9 after an interval loses nothing.
    let mut s = spawned_server(1).await;
    let uuid = s.create_active(SDC, "flushed", true, &data).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..4 {
        assert_eq!(fetch(&s, &uuid, None).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.restart_hard().await;
    assert_eq!(admin_view(&s, &uuid).await["downloads"], 4);
}

#[tokio::test]
async fn a_deleted_image_counted_before_the_flush_holds_up_no_other_count() {
    let s = server(3600).await;
    let data = data(1000, 5);
    let gone = s.create_active(SDC, "gone", true, &data).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = s.create_active(SDC, "stays", true, &data).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(&s, &gone, None).await.0, 200);
    assert_eq!(fetch(&s, &kept, None).await.0, 200);
    let (st, v) = s.delete(&format!("/images/{gone}")).await;
    assert_eq!(st, 204, "{v}");
    // The stop's flush writes the count of the image that stays.
    let mut s = s;
    s.restart_graceful().await;
    assert_eq!(admin_view(&s, &kept).await["downloads"], 1);
    assert_eq!(s.get(&format!("/images/{gone}")).await.0, 404);
}

#[tokio::test]
async fn recording_off_counts_nothing() {
    let mut s = Server::start_with_config("[downloads]\nstats = false\n").await;
    let data = data(1000, 9);
    let uuid = s.create_active(SDC, "uncounted", true, &data).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fetch(&s, &uuid, None).await.0, 200);
    s.restart_graceful().await;
    let v = admin_view(&s, &uuid).await;
    assert_eq!(v["downloads"], 0, "{v}");
}

/// POST /uploads of `len` bytes as `account`: (status, body).
async fn tus_create(s: &Server, len: u64, account: &str) -> (u16, Value) {
    let r = s.tus_creation(len, Some(account), &[]).await;
    (r.status, r.value())
}

/// A minimal manifest named `name` (of `owner`, if given).
fn manifest(name: &str, owner: Option<&str>) -> Value {
    let mut m = serde_json::json!({"name": name, "version": "1", "os": "smartos",
        "type": "zone-dataset"});
    if let Some(o) = owner {
        m["owner"] = o.into();
    }
    m
}

/// A 413 QuotaExceeded.
fn assert_over_quota(st: u16, e: &Value) {
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
}

/// LUKE's image imported as published in 2020, with a file of `size`
/// bytes (`seed`), activated.
async fn ancient_image(s: &Server, size: usize, seed: u32) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut m = manifest("ancient", Some(LUKE));
    m["uuid"] = uuid.clone().into();
    m["v"] = 2.into();
    m["published_at"] = "2020-01-01T00:00:00Z".into();
    let (st, v) = s.post(&format!("/images/{uuid}?action=import"), m).await;
    assert_eq!(st, 200, "{v}");
    s.add_file_and_activate(&uuid, &data(size, seed)).await;
    uuid
}

/// An image of `owner` with a file of `size` bytes, not activated.
async fn unactivated_with_file(s: &Server, owner: &str, size: usize) -> String {
    let img = s.create(None, manifest("u", Some(owner))).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            data(size, 2),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    uuid
}

#[tokio::test]
async fn usage_adds_up_what_each_account_keeps() {
    let s = server(1).await;
    let a = s.create_active(LUKE, "one", true, &data(1000, 1)).await;
    let a = a["uuid"].as_str().unwrap().to_string();
    s.create_active(LUKE, "two", false, &data(3000, 2)).await;
    unactivated_with_file(&s, LUKE, 500).await;
    s.create_active(VADER, "small", true, &data(700, 3)).await;
    let (st, _) = tus_create(&s, 10_000, LUKE).await;
    assert_eq!(st, 201);
    let (st, _) = tus_create(&s, 2_000, LUKE).await;
    assert_eq!(st, 201);
    for _ in 0..2 {
        assert_eq!(fetch(&s, &a, None).await.0, 200);
    }
    // The downloads reach the database within a flush.
    let deadline = Instant::now() + Duration::from_secs(15);
    let u = loop {
        let (st, u) = s.get(&format!("/usage/{LUKE}")).await;
        assert_eq!(st, 200, "{u}");
        if u["downloads_30d"] == 2 || Instant::now() > deadline {
            break u;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(u["account"], LUKE);
    assert_eq!(
        u["images"]["active"],
        serde_json::json!({"count": 2, "bytes": 4000}),
        "{u}"
    );
    assert_eq!(
        u["images"]["unactivated"],
        serde_json::json!({"count": 1, "bytes": 500}),
        "{u}"
    );
    assert_eq!(
        u["images_total"],
        serde_json::json!({"count": 3, "bytes": 4500}),
        "{u}"
    );
    assert_eq!(
        u["uploads"],
        serde_json::json!({"count": 2, "bytes": 12000}),
        "{u}"
    );
    assert_eq!(u["bytes"], 16500, "{u}");
    assert_eq!(u["downloads_30d"], 2, "{u}");
    assert_eq!(
        u["quota"],
        serde_json::json!({"max_bytes": null, "max_images": null}),
        "{u}"
    );

    // Every account, largest first.
    let (st, all) = s.get("/usage").await;
    assert_eq!(st, 200, "{all}");
    let order: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].clone())
        .collect();
    assert_eq!(
        order,
        vec![serde_json::json!(LUKE), serde_json::json!(VADER)],
        "{all}"
    );
    assert_eq!(all[0]["bytes"], 16500);
    assert_eq!(
        all[1]["images_total"],
        serde_json::json!({"count": 1, "bytes": 700})
    );
    let (_, one) = s.get("/usage?limit=1").await;
    assert_eq!(one.as_array().unwrap().len(), 1);

    // Totals for Prometheus, no per-account label.
    let m = s.metrics().await;
    assert_eq!(metric(&m, "imgapi_image_bytes"), 5200.0);
    assert_eq!(metric(&m, "imgapi_upload_bytes"), 12000.0);
    assert!(!m.contains(LUKE), "a metric names an account");

    // An account sees its own usage, not another's; bad input is named.
    let (st, e) = s.get(&format!("/usage/{VADER}?account={LUKE}")).await;
    assert_eq!((st, e["code"].as_str()), (403, Some("OperatorOnly")), "{e}");
    let (st, _) = s.get(&format!("/usage/{LUKE}?account={LUKE}")).await;
    assert_eq!(st, 200);
    let (st, e) = s.get("/usage/nosuchlogin").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("ResourceNotFound")),
        "{e}"
    );
    let (st, e) = s.get("/usage?sort=bytes").await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "sort");
    let (st, e) = s.get("/usage?limit=0").await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "limit");

    // The client: --json for tools, a table for people.
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        common::cli::imgapi(&s.url, state.path())
            .args(args)
            .output()
            .unwrap()
    };
    let v = common::cli::stdout_json(&run(&["usage", "--account", LUKE, "--json"]));
    assert_eq!(v["bytes"], 16500, "{v}");
    let v = common::cli::stdout_json(&run(&["usage", "--json"]));
    assert_eq!(v[0]["account"], LUKE, "{v}");
    let out = run(&["usage"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("ACCOUNT"), "{table}");
    assert!(table.contains("16.1 KiB"), "{table}");
}

#[tokio::test]
async fn quotas_hold_at_every_entry_and_two_uploads_cannot_both_slip_under() {
    let s = Server::start_with_config("[quotas]\nmax_bytes = 10000\nmax_images = 3\n").await;
    // Uploads: by Upload-Length, counting the unfinished ones.
    let (st, _) = tus_create(&s, 6000, LUKE).await;
    assert_eq!(st, 201);
    let (st, e) = tus_create(&s, 5000, LUKE).await;
    assert_over_quota(st, &e);
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("5000 bytes")
            && msg.contains("quota of 10000 bytes")
            && msg.contains("6000 in use"),
        "{msg}"
    );
    // Two at once with room for one: exactly one gets in (on PostgreSQL,
    // without the account's lock, about one round in two let both in).
    let (a, b) = tokio::join!(tus_create(&s, 3000, LUKE), tus_create(&s, 3000, LUKE));
    let mut got = [a.0, b.0];
    got.sort();
    assert_eq!(got, [201, 413], "{a:?} {b:?}");
    for round in 0..10 {
        let acct = uuid::Uuid::new_v4().to_string();
        assert_eq!(tus_create(&s, 6000, &acct).await.0, 201);
        let (a, b) = tokio::join!(tus_create(&s, 3000, &acct), tus_create(&s, 3000, &acct));
        let mut got = [a.0, b.0];
        got.sort();
        assert_eq!(got, [201, 413], "round {round}: {a:?} {b:?}");
    }
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(
        u["uploads"],
        serde_json::json!({"count": 2, "bytes": 9000}),
        "{u}"
    );
    assert_eq!(
        u["quota"],
        serde_json::json!({"max_bytes": 10000, "max_images": 3})
    );

    // AddImageFile: the announced size, before a byte is stored; nothing
    // half-made (the image keeps no file).
    let img = s.create(None, manifest("q", Some(LUKE))).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, e) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            data(2000, 1),
        )
        .await;
    assert_over_quota(st, &e);
    let (_, v) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(v["files"], serde_json::json!([]), "{v}");
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(u["bytes"], 9000, "{u}");

    // Images: CreateImage, by an operator too (not exempt by default),
    // and AdminImportImage.
    for n in 0..2 {
        s.create(None, manifest(&format!("n{n}"), Some(LUKE))).await;
    }
    let (st, e) = s.post("/images", manifest("four", Some(LUKE))).await;
    assert_over_quota(st, &e);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("quota of 3 images (3 in use)"),
        "{e}"
    );
    // Registration adds an image (an upload's bytes were counted when it
    // was created): refused, and the upload stays, to register later.
    let file = data(1000, 9);
    let loc = s.tus_location(1000, Some(LUKE)).await;
    let (st, _, v) = s.tus_patch(&loc, Some(LUKE), 0, file.clone()).await;
    assert_eq!(st, 204, "{v}");
    let id = upload_id(&loc);
    let (st, e) = s
        .post(
            &format!("/images?account={LUKE}"),
            serde_json::json!({"v": 2, "name": "reg", "version": "1", "os": "smartos",
                "type": "zone-dataset", "files": [{"upload": id, "content_md5": md5_b64(&file),
                "compression": "none"}]}),
        )
        .await;
    assert_over_quota(st, &e);
    let (st, info) = s.get(&format!("/uploads/{id}/info?account={LUKE}")).await;
    assert_eq!(
        (st, info["state"].as_str()),
        (200, Some("complete")),
        "{info}"
    );
    let import = uuid::Uuid::new_v4().to_string();
    let (st, e) = s
        .post(
            &format!("/images/{import}?action=import"),
            serde_json::json!({"uuid": import, "name": "imported", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE, "v": 2}),
        )
        .await;
    assert_over_quota(st, &e);
    assert_eq!(s.get(&format!("/images/{import}")).await.0, 404);
    // Another account is not held to LUKE's usage.
    let (st, _) = tus_create(&s, 6000, VADER).await;
    assert_eq!(st, 201);

    // An operator lifts LUKE's bytes quota: the file goes in.
    let out = s.admin(&["account", "set-quota", LUKE, "--max-bytes", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("max_bytes: unlimited") && text.contains("max_images: 3 (default)"),
        "{text}"
    );
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            data(2000, 1),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(
        u["quota"],
        serde_json::json!({"max_bytes": null, "max_images": 3}),
        "{u}"
    );
    assert_eq!(u["bytes"], 12000, "{u}");
    // ... and back to the configuration's.
    let out = s.admin(&["account", "set-quota", LUKE, "--max-bytes", "default"]);
    assert!(out.status.success());
    let (st, _) = tus_create(&s, 1, LUKE).await;
    assert_eq!(st, 413);
    // Quotas that cannot be are refused, naming what is wrong.
    for bad in [
        &["--max-bytes", "-5"][..],
        &["--max-images", "lots"],
        &["--max-bytes", "99999999999999999999"],
        &[],
    ] {
        let mut args = vec!["account", "set-quota", LUKE];
        args.extend_from_slice(bad);
        let out = s.admin(&args);
        assert!(!out.status.success(), "{bad:?} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("quota") || err.contains("max-bytes") || err.contains("max_bytes"),
            "{bad:?}: {err}"
        );
    }
}

/// POST /images of a manifest whose file is the object at `/{owner}/stor/{name}`
/// (written there first, `len` bytes), as `owner`: (status, body).
async fn register_path(s: &Server, owner: &str, name: &str, len: usize) -> (u16, Value) {
    let bytes = data(len, len as u32);
    let stor = s.data_dir().join(format!("manta/{owner}/stor"));
    std::fs::create_dir_all(&stor).unwrap();
    std::fs::write(stor.join(name), &bytes).unwrap();
    s.post(
        &format!("/images?account={owner}"),
        serde_json::json!({"v": 2, "name": name, "version": "1", "os": "smartos",
            "type": "zone-dataset", "files": [{"path": format!("/{owner}/stor/{name}"),
            "content_md5": md5_b64(&bytes), "compression": "none"}]}),
    )
    .await
}

#[tokio::test]
async fn two_registrations_from_paths_cannot_both_slip_under_the_quota() {
    let s = Server::start_with_config("[quotas]\nmax_bytes = 10000\n").await;
    // A file already in the store counts from its registration's POST on,
    // before its job has verified it: with room for one of two, exactly
    // one is taken, every round.
    for round in 0..10 {
        let acct = uuid::Uuid::new_v4().to_string();
        let (a, b) = tokio::join!(
            register_path(&s, &acct, "a", 6000),
            register_path(&s, &acct, "b", 6000)
        );
        let mut got = [a.0, b.0];
        got.sort();
        assert_eq!(got, [200, 413], "round {round}: {a:?} {b:?}");
        let refused = if a.0 == 413 { &a.1 } else { &b.1 };
        assert_over_quota(413, refused);
        let (_, u) = s.get(&format!("/usage/{acct}")).await;
        assert_eq!(
            u["images_total"],
            serde_json::json!({"count": 1, "bytes": 6000}),
            "round {round}: {u}"
        );
        let (_, list) = s.get(&format!("/images?owner={acct}&state=all")).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "round {round}: {list}");
    }
    // A registration that fails gives its bytes back: the next one fits.
    let acct = uuid::Uuid::new_v4().to_string();
    let stor = s.data_dir().join(format!("manta/{acct}/stor"));
    std::fs::create_dir_all(&stor).unwrap();
    std::fs::write(stor.join("bad"), data(6000, 1)).unwrap();
    let (st, e) = s
        .post(
            &format!("/images?account={acct}"),
            serde_json::json!({"v": 2, "name": "bad", "version": "1", "os": "smartos",
                "type": "zone-dataset", "files": [{"path": format!("/{acct}/stor/bad"),
                "content_md5": md5_b64(b"other bytes"), "compression": "none"}]}),
        )
        .await;
    assert!((400..500).contains(&st), "{st} {e}");
    let (_, u) = s.get(&format!("/usage/{acct}")).await;
    assert_eq!(u["bytes"], 0, "{u}");
    assert_eq!(register_path(&s, &acct, "good", 6000).await.0, 200);
}

#[tokio::test]
async fn operators_can_be_exempt() {
    let s = Server::start_with_config("[quotas]\nmax_images = 1\nexempt_operators = true\n").await;
    for n in 0..2 {
        s.create(None, manifest(&format!("op{n}"), Some(LUKE)))
            .await;
    }
    // The account itself is held to it.
    let (st, e) = s
        .post(&format!("/images?account={LUKE}"), manifest("mine", None))
        .await;
    assert_over_quota(st, &e);
}

// ---- the lifecycle policy ----

use axum::http::Method;
use common::app::App;

/// An active image made in-process at the clock's now (published then).
async fn app_image(app: &App, name: &str, version: &str, origin: Option<&str>) -> String {
    let mut m = manifest(name, Some(LUKE));
    m["version"] = version.into();
    m["public"] = true.into();
    if let Some(o) = origin {
        m["origin"] = o.into();
    }
    let r = app.post_json("/images", &m).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let uuid = r.json()["uuid"].as_str().unwrap().to_string();
    let r = app
        .request(
            Method::PUT,
            &format!("/images/{uuid}/file?compression=none"),
            &[("content-type", "application/octet-stream")],
            data(1000 + version.len(), 4),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = app
        .post_json(
            &format!("/images/{uuid}?action=activate"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    uuid
}

const DAY: Duration = Duration::from_secs(86_400);

fn lifecycle_of(app: &App) -> imgapi::lifecycle::Lifecycle {
    imgapi::lifecycle::Lifecycle::new(app.state.images.clone(), app.state.config.lifecycle.clone())
}

fn steps(p: &imgapi::lifecycle::Plan) -> Vec<(String, &'static str, String)> {
    p.steps
        .iter()
        .map(|s| {
            let a = match s.action {
                imgapi::lifecycle::Action::Disable => "disable",
                imgapi::lifecycle::Action::Delete => "delete",
            };
            (s.uuid.to_string(), a, s.rule.clone())
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_retires_what_no_one_uses_and_protects_the_rest() {
    let app = App::with_config(|c| {
        c.lifecycle.rules = vec![
            imgapi::config::LifecycleRule {
                rule: "cold".into(),
                name: Some("~cold".into()),
                not_downloaded_days: Some(90),
                grace_days: 10,
                ..Default::default()
            },
            imgapi::config::LifecycleRule {
                rule: "keep2".into(),
                name: Some("series".into()),
                keep_newest: Some(2),
                grace_days: 10,
                ..Default::default()
            },
        ];
    })
    .await;
    let l = lifecycle_of(&app);
    let cold = app_image(&app, "cold-a", "1", None).await;
    let base = app_image(&app, "cold-base", "1", None).await;
    let used = app_image(&app, "cold-used", "1", None).await;
    let mut series = Vec::new();
    for v in 1..=3 {
        app.advance(DAY);
        series.push(app_image(&app, "series", &v.to_string(), None).await);
    }
    app.advance(100 * DAY);
    // Young, made from cold-base: its origin stays.
    let young = app_image(&app, "young", "1", Some(&base)).await;
    // Downloaded 20 days ago: within the 30-day window.
    app.advance(80 * DAY);
    let r = app.fetch(&format!("/images/{used}/file")).await;
    assert_eq!(r.status, 200);
    app.state.images.flush_downloads().await.unwrap();
    app.advance(20 * DAY);

    let p = l.plan().await.unwrap();
    let mut want = vec![
        (cold.clone(), "disable", "cold".to_string()),
        (series[0].clone(), "disable", "keep2".to_string()),
    ];
    want.sort();
    let mut got = steps(&p);
    got.sort();
    assert_eq!(got, want, "{p:#?}");
    // cold-base qualifies but is the origin of young; cold-used was
    // downloaded within 90 days (its rule does not hold at all).
    assert_eq!(p.protected, 1, "{p:#?}");
    assert_eq!(p.bytes_reclaimed, 0);
    assert_eq!(p.bytes_after_grace, 1001 + 1001);
    // A plan changes nothing.
    assert_eq!(
        app.fetch(&format!("/images/{cold}")).await.json()["state"],
        "active"
    );

    let (_, done) = l.run().await.unwrap();
    assert_eq!(
        (done.disabled, done.deleted, done.errors.len()),
        (2, 0, 0),
        "{done:?}"
    );
    for u in [&cold, &series[0]] {
        assert_eq!(
            app.fetch(&format!("/images/{u}")).await.json()["state"],
            "disabled"
        );
    }
    // Within the grace, an owner enables one again; nothing else happens.
    let r = app
        .post_json(
            &format!("/images/{}?action=enable", series[0]),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(l.plan().await.unwrap().steps.is_empty());

    // Once the grace has passed: the disabled one is deleted and its bytes
    // freed; the enabled one is not taken again (no newer version since).
    app.advance(11 * DAY);
    let file = |u: &str| {
        walk(&app.data_dir())
            .into_iter()
            .any(|p| p.to_string_lossy().contains(u))
    };
    assert!(file(&cold));
    let (p, done) = l.run().await.unwrap();
    assert_eq!(
        steps(&p),
        vec![(cold.clone(), "delete", "cold".to_string())]
    );
    assert_eq!((done.deleted, done.bytes_reclaimed), (1, 1001));
    assert_eq!(app.fetch(&format!("/images/{cold}")).await.status, 404);
    assert!(!file(&cold), "the file of a deleted image is gone");
    assert_eq!(
        app.fetch(&format!("/images/{}", series[0])).await.json()["state"],
        "active"
    );
    // Two newer versions published since it was enabled: it qualifies anew
    // (and so do 2 and 3; the newest two stay).
    for v in 4..=5 {
        app.advance(DAY);
        series.push(app_image(&app, "series", &v.to_string(), None).await);
    }
    let mut got: Vec<String> = l
        .plan()
        .await
        .unwrap()
        .steps
        .iter()
        .map(|s| s.uuid.to_string())
        .collect();
    got.sort();
    let mut want = series[..3].to_vec();
    want.sort();
    assert_eq!(got, want);
    // The origin of a young image stays whatever happens to the rest.
    let _ = young;
    let m = app.fetch("/metrics").await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(metric(&text, "imgapi_lifecycle_bytes_reclaimed_total") >= 1001.0);
}

#[tokio::test]
async fn lifecycle_cli_plans_and_runs_and_frees_the_bytes_in_s3() {
    let s3 = S3Server::start();
    let cfg = format!(
        "{}[lifecycle]\n[[lifecycle.rules]]\nrule = \"old\"\npublished_days = 365\ngrace_days = 0\n",
        s3.manta_toml(5)
    );
    let s = Server::start_with_config(&cfg).await;
    // Imported with an old publication date, then given a file in S3.
    let uuid = ancient_image(&s, 3000, 8).await;
    let fresh = s.create_active(LUKE, "fresh", true, &data(10, 1)).await;
    let in_bucket = || async {
        s3.keys("p/")
            .await
            .into_iter()
            .filter(|k| k.contains(&uuid))
            .count()
    };
    assert_eq!(in_bucket().await, 1);

    let plan = common::cli::stdout_json(&s.admin(&["lifecycle", "plan", "--json"]));
    assert_eq!(plan["steps"].as_array().unwrap().len(), 1, "{plan}");
    let step = &plan["steps"][0];
    assert_eq!(step["uuid"], uuid.as_str());
    assert_eq!(step["action"], "disable");
    assert_eq!(step["rule"], "old");
    assert_eq!(step["name"], "ancient");
    assert_eq!(step["bytes"], 3000);
    assert!(
        step["reason"].as_str().unwrap().contains("365 days"),
        "{step}"
    );
    assert_eq!(plan["bytes_after_grace"], 3000);
    // `run` without --yes is the plan; nothing changes.
    let again = common::cli::stdout_json(&s.admin(&["lifecycle", "run", "--json"]));
    assert_eq!(again["steps"][0]["uuid"], plan["steps"][0]["uuid"]);
    assert_eq!(again["steps"][0]["action"], "disable");
    assert_eq!(s.get(&format!("/images/{uuid}")).await.1["state"], "active");

    let ran = common::cli::stdout_json(&s.admin(&["lifecycle", "run", "--yes", "--json"]));
    assert_eq!(ran["applied"]["disabled"], 1, "{ran}");
    assert_eq!(
        s.get(&format!("/images/{uuid}")).await.1["state"],
        "disabled"
    );
    // No grace: the next run deletes it, and its object leaves the bucket.
    let ran = common::cli::stdout_json(&s.admin(&["lifecycle", "run", "--yes", "--json"]));
    assert_eq!(ran["plan"]["steps"][0]["action"], "delete", "{ran}");
    assert_eq!(ran["applied"]["deleted"], 1, "{ran}");
    assert_eq!(ran["applied"]["bytes_reclaimed"], 3000, "{ran}");
    assert_eq!(s.get(&format!("/images/{uuid}")).await.0, 404);
    assert_eq!(in_bucket().await, 0);
    assert_eq!(
        s.get(&format!("/images/{}", fresh["uuid"].as_str().unwrap()))
            .await
            .0,
        200
    );
    // The table for people.
    let out = s.admin(&["lifecycle", "plan"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("0 to delete now") && text.contains("0 to disable"),
        "{text}"
    );
}

#[tokio::test]
async fn lifecycle_rules_that_cannot_be_stop_the_server_naming_the_fault() {
    for (toml, says) in [
        (
            "[[lifecycle.rules]]\nrule = \"x\"\n",
            "exactly one condition",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\npublished_days = 1\nkeep_newest = 2\n",
            "exactly one condition",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\nkeep_newest = 0\n",
            "keep_newest must be 1",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\npublished_days = -3\n",
            "published_days",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\npublished_days = 3\ncolour = \"red\"\n",
            "colour",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\npublished_days = 3\ntag = \"nokey\"\n",
            "key=value",
        ),
        (
            "[[lifecycle.rules]]\nrule = \"x\"\npublished_days = 3\n[[lifecycle.rules]]\nrule = \"x\"\npublished_days = 4\n",
            "two rules",
        ),
        ("[quotas]\nmax_bytes = -1\n", "max_bytes"),
        (
            "[downloads]\nstats = false\n[[lifecycle.rules]]\nrule = \"x\"\nnot_downloaded_days = 3\n",
            "needs download statistics",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("imgapi.toml");
        std::fs::write(&cfg, toml).unwrap();
        let out = imgapi_command(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(["config", "check"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{toml}: {err}");
    }
}

#[tokio::test]
async fn the_server_runs_the_policy_on_its_schedule() {
    let mut s = Server::start().await;
    let uuid = ancient_image(&s, 100, 3).await;
    // A schedule: the first run is due at once (none ran before).
    s.set_config(
        "[lifecycle]\nevery_hours = 1\n[[lifecycle.rules]]\nrule = \"old\"\npublished_days = 365\n",
    );
    s.restart_graceful().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.get(&format!("/images/{uuid}")).await;
        if v["state"] == "disabled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not disabled by the schedule: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = s.metrics().await;
    assert_eq!(metric(&m, "imgapi_lifecycle_images_disabled_total"), 1.0);
    // Its period holds across a restart: enabled again, it is not taken
    // again before the hour is over.
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=enable"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    s.restart_graceful().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.get(&format!("/images/{uuid}")).await.1["state"], "active");
}

#[tokio::test]
async fn a_concatenation_counts_its_bytes_once_until_it_is_an_image() {
    let s = Server::start().await;
    let bytes = |s: &Server| {
        let url = s.u(&format!("/usage/{LUKE}"));
        let http = s.http.clone();
        async move {
            let u = status_json(http.get(url).send().await.unwrap()).await.1;
            (
                u["uploads"]["count"].as_u64().unwrap(),
                u["uploads"]["bytes"].as_u64().unwrap(),
            )
        }
    };
    let (a, b) = (partial(&s, 3000, LUKE).await, partial(&s, 2000, LUKE).await);
    assert_eq!(bytes(&s).await, (2, 5000));
    // The final, while its partials are filled: their bytes, once.
    let (st, fin, v) = final_of(&s, &[a.clone(), b.clone()], LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = fin.unwrap();
    assert_eq!(bytes(&s).await.1, 5000);
    for (loc, len, seed) in [(&a, 3000, 1), (&b, 2000, 2)] {
        let (st, _, v) = s.tus_patch(loc, Some(LUKE), 0, data(len, seed)).await;
        assert_eq!(st, 204, "{v}");
    }
    // Filled (its partials are gone): the final's own bytes, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, _, _) = s.tus_head(&fin).await;
        let (_, info) = s.get(&format!("{fin}/info?account={LUKE}")).await;
        if st == 200 && info["state"] == "complete" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the final never completed: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bytes(&s).await, (1, 5000));
}

#[tokio::test]
async fn a_lifecycle_step_is_checked_again_when_it_is_applied() {
    let app = App::with_config(|c| {
        c.lifecycle.rules = vec![imgapi::config::LifecycleRule {
            rule: "old".into(),
            published_days: Some(30),
            grace_days: 5,
            ..Default::default()
        }];
    })
    .await;
    let l = lifecycle_of(&app);
    let a = app_image(&app, "a", "1", None).await;
    let b = app_image(&app, "b", "1", None).await;
    app.advance(40 * DAY);
    // Planned, then the owner disables `b` by hand before the run: the
    // policy does not take over the owner's disable.
    let p = l.plan().await.unwrap();
    assert_eq!(p.steps.len(), 2);
    let r = app
        .post_json(
            &format!("/images/{b}?action=disable"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let done = l.apply(&p).await;
    assert_eq!((done.disabled, done.skipped), (1, 1), "{done:?}");
    // `a` is due for deletion; enabled again through UpdateImage's state
    // (an operator's) between the plan and the run, it stays.
    app.advance(6 * DAY);
    let p = l.plan().await.unwrap();
    assert_eq!(steps(&p), vec![(a.clone(), "delete", "old".to_string())]);
    let r = app
        .post_json(
            &format!("/images/{a}?action=update"),
            &serde_json::json!({"state": "active"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = l.apply(&p).await;
    assert_eq!((done.deleted, done.skipped), (0, 1), "{done:?}");
    assert_eq!(
        app.fetch(&format!("/images/{a}")).await.json()["state"],
        "active"
    );
    // ... and is not planned again until it qualifies anew.
    assert!(l.plan().await.unwrap().steps.is_empty());
    // `b`, disabled by its owner, is never deleted by the policy.
    app.advance(400 * DAY);
    let p = l.plan().await.unwrap();
    assert!(p.steps.iter().all(|s| s.uuid.to_string() != b), "{p:?}");
}
