//! Space (issue 24): download statistics per image. What counts as a
//! download (a file served to its last byte, in one request or at the end
//! of a ranged series), what does not (a range short of the end, HEAD,
//! 304), the admin fields that show them, the ListImages filters on them,
//! and how counts survive a clean stop and a kill -9 (at most one flush
//! interval lost).

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;

/// A server whose nodes write their download counts every second.
async fn server(flush_secs: u64) -> Server {
    Server::start_with_config(&format!("[downloads]\nstats_flush_secs = {flush_secs}\n")).await
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
    let m = s
        .http
        .get(s.u("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let n: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("imgapi_image_downloads_total "))
        .expect("imgapi_image_downloads_total")
        .parse()
        .unwrap();
    assert_eq!(n, 11.0);
}

#[tokio::test]
async fn counts_are_written_at_a_clean_stop_and_a_kill_loses_at_most_one_interval() {
    // An hour between flushes: only the shutdown writes them.
    let mut s = server(3600).await;
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
    let mut s = server(1).await;
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
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={account}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", len.to_string())
        .send()
        .await
        .unwrap();
    status_json(r).await
}

/// An image of `owner` with a file of `size` bytes, not activated.
async fn unactivated_with_file(s: &Server, owner: &str, size: usize) -> String {
    let img = s
        .create(
            None,
            serde_json::json!({"name": "u", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": owner}),
        )
        .await;
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

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
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
    let m = s
        .http
        .get(s.u("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
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
    let img = s
        .create(
            None,
            serde_json::json!({"name": "q", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, e) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            data(2000, 1),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
    let (_, v) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(v["files"], serde_json::json!([]), "{v}");
    let (_, u) = s.get(&format!("/usage/{LUKE}")).await;
    assert_eq!(u["bytes"], 9000, "{u}");

    // Images: CreateImage, by an operator too (not exempt by default),
    // and AdminImportImage.
    for n in 0..2 {
        let (st, v) = s
            .post(
                "/images",
                serde_json::json!({"name": format!("n{n}"), "version": "1", "os": "smartos",
                    "type": "zone-dataset", "owner": LUKE}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, e) = s
        .post(
            "/images",
            serde_json::json!({"name": "four", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("quota of 3 images (3 in use)"),
        "{e}"
    );
    let import = uuid::Uuid::new_v4().to_string();
    let (st, e) = s
        .post(
            &format!("/images/{import}?action=import"),
            serde_json::json!({"uuid": import, "name": "imported", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE, "v": 2}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
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
    assert_eq!(u["bytes"], 11000, "{u}");
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

#[tokio::test]
async fn operators_can_be_exempt() {
    let s = Server::start_with_config("[quotas]\nmax_images = 1\nexempt_operators = true\n").await;
    for n in 0..2 {
        let (st, v) = s
            .post(
                "/images",
                serde_json::json!({"name": format!("op{n}"), "version": "1", "os": "smartos",
                    "type": "zone-dataset", "owner": LUKE}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    // The account itself is held to it.
    let (st, e) = s
        .post(
            &format!("/images?account={LUKE}"),
            serde_json::json!({"name": "mine", "version": "1", "os": "smartos",
                "type": "zone-dataset"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (413, Some("QuotaExceeded")),
        "{e}"
    );
}
