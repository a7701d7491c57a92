//! Operations and compatibility: Prometheus metrics, the audit log, and the
//! SDC 6.5 DSAPI dataset endpoints.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn metrics_count_requests_bytes_uploads_jobs_and_log_events() {
    let s = Server::spawn().await;
    let file = data(300_000, 1);
    let img = s.create_active(SDC, "m", true, &file).await;
    let u = img["uuid"].as_str().unwrap();
    let (st, _) = s.get("/images/3560c262-fc65-0242-a446-7c6d1fb482e3").await;
    assert_eq!(st, 404);
    s.http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let r = s
        .http
        .post(s.u("/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // a failing registration is a job outcome and a warn log event
    let p = s.data_dir().join(format!("manta/{LUKE}/stor/x"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"abc").unwrap();
    let (_, img) = s.post(&format!("/images?account={LUKE}&wait=0"), json!({"name": "x", "version": "1", "os": "linux", "type": "other",
        "files": [{"path": format!("/{LUKE}/stor/x"), "content_md5": "AAAAAAAAAAAAAAAAAAAAAA==", "compression": "none"}]}))
        .await;
    // The job runs in the background: wait (bounded) until it has failed.
    let x = format!("/images/{}?account={LUKE}", img["uuid"].as_str().unwrap());
    for _ in 0..100 {
        if s.get(&x).await.1["state"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = s.http.get(s.u("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let t = r.text().await.unwrap();
    assert_eq!(
        metric(
            &t,
            "imgapi_http_requests_total{route=\"/images/{uuid}\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &t,
            "imgapi_http_requests_total{route=\"/images/{uuid}/file\",method=\"PUT\",status=\"200\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &t,
            "imgapi_http_request_duration_seconds_count{route=\"/images/{uuid}/file\"}"
        ) >= 2.0
    );
    assert!(metric(&t, "imgapi_http_request_bytes_total") >= 300_000.0);
    assert!(metric(&t, "imgapi_http_response_bytes_total") >= 300_000.0);
    assert_eq!(metric(&t, "imgapi_uploads{state=\"uploading\"}"), 1.0);
    assert_eq!(metric(&t, "imgapi_registrar_jobs{outcome=\"failed\"}"), 1.0);
    assert!(
        metric(&t, "imgapi_log_events_total{level=\"warn\"}") >= 1.0,
        "the failed job logged a warning"
    );
    assert_eq!(
        metric(&t, "imgapi_log_events_total{level=\"error\"}"),
        0.0,
        "nothing went wrong"
    );
}

#[tokio::test]
async fn datasets_for_sdc_6_5() {
    let s = Server::start().await;
    let file = data(50_000, 2);
    let public = s.create_active(SDC, "base", true, &file).await;
    let _private = s.create_active(VADER, "secret", false, &data(10, 3)).await;
    let u = public["uuid"].as_str().unwrap();
    let (st, list) = s.get("/datasets").await;
    assert_eq!(st, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "only active public images: {list:?}");
    let ds = &list[0];
    assert_eq!(ds["uuid"], u);
    assert_eq!(ds["creator_uuid"], SDC);
    assert_eq!(ds["urn"], "sdc:sdc:base:1.0.0");
    assert_eq!(ds["files"][0]["sha1"], sha1_hex(&file));
    let url = ds["files"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        file,
        "dataset_url downloads the file"
    );
    let (st, one) = s.get(&format!("/datasets/{u}")).await;
    assert_eq!((st, one["name"].as_str()), (200, Some("base")));
    let (st, _) = s
        .get(&format!("/datasets/{}", _private["uuid"].as_str().unwrap()))
        .await;
    assert_eq!(st, 404);
    s.post(&format!("/images/{u}?action=disable"), json!({}))
        .await;
    let (st, _) = s.get(&format!("/datasets/{u}")).await;
    assert_eq!(st, 404, "disabled images are not datasets");
}

/// One structured audit event per mutating request, with the error body of
/// failed ones; JSON log lines when configured.
#[tokio::test]
async fn audit_log_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("imgapi.toml");
    std::fs::write(&cfg, "log_format = \"json\"\n").unwrap();
    let log = dir.path().join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("imgapi listening on ")
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/images?account={LUKE}"))
        .header("x-request-id", "audit-1")
        .json(&json!({"name": "a", "version": "1", "os": "smartos", "type": "zone-dataset"}))
        .send()
        .await
        .unwrap();
    let img: serde_json::Value = r.json().await.unwrap();
    let u = img["uuid"].as_str().unwrap();
    let r = http
        .post(format!("{url}/images/{u}?action=activate&account={VADER}"))
        .header("x-request-id", "audit-2")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    http.get(format!("{url}/images")).send().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let audit: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["target"] == "imgapi::audit")
        .collect();
    assert_eq!(
        audit.len(),
        2,
        "one event per mutating request, none for reads: {text}"
    );
    let ok = audit
        .iter()
        .find(|e| e["fields"]["request_id"] == "audit-1")
        .unwrap();
    assert_eq!(ok["fields"]["caller"], LUKE);
    assert_eq!(ok["fields"]["status"], 200);
    let bad = audit
        .iter()
        .find(|e| e["fields"]["request_id"] == "audit-2")
        .unwrap();
    assert_eq!(bad["fields"]["status"], 404);
    assert_eq!(bad["fields"]["error_code"], "ResourceNotFound");
    assert!(bad["fields"]["path"].as_str().unwrap().contains(u));
    assert!(!bad["fields"]["error"].as_str().unwrap().is_empty());
}

/// AdminChangeImageStor moves the file between stores, verified; ExportImage
/// writes manifest and file to the owner's manta path.
#[tokio::test]
async fn change_stor_and_export() {
    let s = Server::start().await;
    let file = data(200_000, 4);
    let img = s.create_active(LUKE, "movable", false, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let (_, v) = s.get(&format!("/images/{u}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], "local");
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=change-stor&stor=manta&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OperatorOnly")));
    let (st, v) = s
        .post(&format!("/images/{u}?action=change-stor"), json!({}))
        .await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (422, Some("stor")));
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=change-stor&stor=tape"),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["errors"][0]["code"].as_str()),
        (422, Some("Invalid"))
    );
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=change-stor&stor=manta"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["files"][0]["stor"], "manta");
    assert!(
        s.data_dir()
            .join(format!("manta/imgapi/images/{}/{u}/file0", &u[..3]))
            .exists()
    );
    assert!(
        !s.data_dir()
            .join(format!("local/images/{}/{u}/file0", &u[..3]))
            .exists(),
        "old copy removed"
    );
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), file);
    // a corrupted source is refused and nothing changes
    let p = s
        .data_dir()
        .join(format!("manta/imgapi/images/{}/{u}/file0", &u[..3]));
    let mut bad = file.clone();
    bad[10] ^= 1;
    std::fs::write(&p, &bad).unwrap();
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=change-stor&stor=local"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("Download")));
    let (_, v) = s.get(&format!("/images/{u}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], "manta");
    std::fs::write(&p, &file).unwrap();
    // export to the owner's manta directory
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=export&manta_path=/{VADER}/stor/x/&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotMantaPathOwner")));
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=export&manta_path=/{LUKE}/stor/exports/&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["image_path"],
        format!("/{LUKE}/stor/exports/movable-1.0.0.zfs")
    );
    assert_eq!(
        v["manifest_path"],
        format!("/{LUKE}/stor/exports/movable-1.0.0.imgmanifest")
    );
    let exported = std::fs::read(
        s.data_dir()
            .join(format!("manta/{LUKE}/stor/exports/movable-1.0.0.zfs")),
    )
    .unwrap();
    assert_eq!(exported, file);
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir().join(format!(
            "manta/{LUKE}/stor/exports/movable-1.0.0.imgmanifest"
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(m["uuid"], u.as_str());
    assert_eq!(m["files"][0]["sha1"], sha1_hex(&file));
}
