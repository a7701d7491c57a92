//! The import verbs of the client against real servers: `import-dir` seeds
//! a directory of manifests and files (origins first), a second run changes
//! nothing, a run killed mid-upload is completed by the next one without
//! re-sending what the server has, every manifest is validated before any
//! file is sent and an invalid one is reported while the others are
//! imported; `import-remote` between two servers ends
//! with the same active image, and a refused source exits 1 with NotAllowed.

use crate::common;

use std::path::Path;

use common::cli::*;
use common::*;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;
const BASE: &str = "3f6a5b84-0c1e-4e5a-9d2b-7a1c2e3f4a50";
const CHILD: &str = "3f6a5b84-0c1e-4e5a-9d2b-7a1c2e3f4a51";

/// A seed directory as a headnode's usbkey has it: `z-base.imgmanifest`
/// with `z-base.zfs.gz` beside it, and `a-child.imgmanifest` (sorted first,
/// built on the base) whose file is named by its `files[0].manta_path`.
fn seed_dir(dir: &Path, base_len: usize, child_len: usize) -> (Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut base = data(base_len, 11);
    base[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
    let mut child = data(child_len, 12);
    child[..3].copy_from_slice(b"BZh");
    std::fs::write(dir.join("z-base.zfs.gz"), &base).unwrap();
    std::fs::write(dir.join("child-1.2.8.zfs.bz2"), &child).unwrap();
    let manifest = |uuid: &str, name: &str, origin: Option<&str>, d: &[u8], file: Value| {
        let mut m = json!({"v": 2, "uuid": uuid, "owner": SDC, "name": name,
            "version": "1.2.8", "state": "active", "disabled": false, "public": true,
            "published_at": "2024-03-01T10:00:00Z", "type": "zone-dataset", "os": "smartos",
            "files": [file]});
        m["files"][0]["sha1"] = json!(sha1_hex(d));
        m["files"][0]["size"] = json!(d.len());
        if let Some(o) = origin {
            m["origin"] = json!(o);
        }
        m
    };
    let b = manifest(BASE, "base", None, &base, json!({"compression": "gzip"}));
    let c = manifest(
        CHILD,
        "child",
        Some(BASE),
        &child,
        json!({"manta_path": "/trent/stor/images/child-1.2.8.zfs.bz2"}),
    );
    std::fs::write(dir.join("z-base.imgmanifest"), b.to_string()).unwrap();
    std::fs::write(dir.join("a-child.imgmanifest"), c.to_string()).unwrap();
    (base, child)
}

fn results(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["uuid"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn assert_active(url: &str, uuid: &str, bytes: &[u8]) {
    let img: Value = reqwest::get(format!("{url}/images/{uuid}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(img["state"], "active", "{img}");
    assert_eq!(img["files"][0]["sha1"], sha1_hex(bytes), "{img}");
    assert_eq!(img["published_at"], "2024-03-01T10:00:00Z", "{img}");
    assert_eq!(served(url, uuid).await, bytes);
}

#[tokio::test]
async fn import_dir_seeds_origins_first_and_a_second_run_changes_nothing() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dir = tmp.path().join("datasets");
    let (base, child) = seed_dir(&dir, 3 * MIB + 5, 2 * MIB + 9);
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(
        results(&v),
        [
            (BASE.to_string(), "imported".to_string()),
            (CHILD.to_string(), "imported".to_string())
        ],
        "{v}"
    );
    assert_active(&s.url, BASE, &base).await;
    assert_active(&s.url, CHILD, &child).await;
    let (_, img) = s.get(&format!("/images/{CHILD}")).await;
    assert_eq!(img["origin"], BASE);
    assert_eq!(img["files"][0]["compression"], "bzip2", "guessed: {img}");

    // Again: everything skipped, nothing sent, no new upload.
    let (_, ups_before) = s.get("/uploads").await;
    let before = bytes_in(&s.url).await;
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("skipped").count(), 2, "{text}");
    assert!(text.contains("RESULT") && text.contains("child"), "{text}");
    assert_eq!(bytes_in(&s.url).await, before, "the second run sent bytes");
    let (_, ups) = s.get("/uploads").await;
    assert_eq!(ups, ups_before);
    let ups = ups.as_array().unwrap();
    assert_eq!(ups.len(), 2, "one upload per image: {ups:?}");
    assert!(ups.iter().all(|u| u["state"] == "registered"), "{ups:?}");
}

#[tokio::test]
async fn import_dir_killed_mid_upload_is_completed_by_the_next_run() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dir = tmp.path().join("datasets");
    let (base, child) = seed_dir(&dir, MIB + 1, 12 * MIB + 3);
    // The base (1 MiB) goes through; the child's upload is SIGKILLed once
    // the server acknowledged >= 5 MiB of it.
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap(), "--chunk-mib", "1"])
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (5 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let (_, img) = s.get(&format!("/images/{CHILD}")).await;
    assert_eq!(img["state"], "unactivated", "{img}");
    assert_eq!(img["files"], json!([]), "{img}");

    let before = bytes_in(&s.url).await;
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(
        results(&v),
        [
            (BASE.to_string(), "skipped".to_string()),
            (CHILD.to_string(), "completed".to_string())
        ],
        "{v}"
    );
    assert_active(&s.url, BASE, &base).await;
    assert_active(&s.url, CHILD, &child).await;
    let sent = bytes_in(&s.url).await - before;
    assert!(
        sent < (child.len() - 4 * MIB) as u64,
        "the re-run sent {sent} bytes of a {} byte file",
        child.len()
    );
}

/// `imgapi_http_requests_total` of `POST /images` with `status`.
async fn posts_to_images(url: &str, status: u16) -> u64 {
    let t = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = format!(
        "imgapi_http_requests_total{{route=\"/images\",method=\"POST\",status=\"{status}\"}} "
    );
    t.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn import_dir_validates_every_manifest_first_and_imports_the_valid_ones() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dir = tmp.path().join("datasets");
    let (base, child) = seed_dir(&dir, 3 * MIB + 1, MIB + 3);
    // A zvol without nic_driver, disk_driver, cpu_type and image_size,
    // sorted (and so imported) last.
    const VM: &str = "3f6a5b84-0c1e-4e5a-9d2b-7a1c2e3f4a52";
    let vm_len = 2 * MIB + 77;
    std::fs::write(dir.join("zz-vm.zfs.gz"), data(vm_len, 13)).unwrap();
    let vm = json!({"v": 2, "uuid": VM, "owner": SDC, "name": "vm", "version": "1.0.0",
        "published_at": "2024-03-01T10:00:00Z", "type": "zvol", "os": "linux",
        "files": [{"compression": "gzip", "size": vm_len}]});
    std::fs::write(dir.join("zz-vm.imgmanifest"), vm.to_string()).unwrap();

    // Killed during the first upload (the base's): by then every manifest
    // was validated, the last one refused.
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap(), "--chunk-mib", "1"])
        .env("IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES", MIB.to_string())
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    // The base valid (204); the child refused for its origin (422, not yet
    // imported, and valid in the directory) and the zvol refused.
    assert_eq!(posts_to_images(&s.url, 204).await, 1);
    assert_eq!(posts_to_images(&s.url, 422).await, 2);

    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let table: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(
        table,
        [
            ["UUID", "NAME", "VERSION", "RESULT"].map(String::from),
            [BASE, "base", "1.2.8", "completed"].map(String::from),
            [CHILD, "child", "1.2.8", "imported"].map(String::from),
            [VM, "vm", "1.0.0", "invalid"].map(String::from),
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "imgapi: {VM} vm: ValidationFailed: invalid image data: nic_driver, \
             disk_driver, cpu_type, image_size (HTTP 422)\n\
             \x20 nic_driver: MissingParameter required for type \"zvol\"\n\
             \x20 disk_driver: MissingParameter required for type \"zvol\"\n\
             \x20 cpu_type: MissingParameter required for type \"zvol\"\n\
             \x20 image_size: MissingParameter required for type \"zvol\"\n\
             imgapi: 1 of 3 images not imported (above): correct what is named and run the \
             same command again (the imported ones are skipped)\n"
        )
    );
    assert_active(&s.url, BASE, &base).await;
    assert_active(&s.url, CHILD, &child).await;
    let (st, _) = s.get(&format!("/images/{VM}")).await;
    assert_eq!(st, 404);
    let (_, ups) = s.get("/uploads").await;
    let ups = ups.as_array().unwrap();
    assert_eq!(ups.len(), 2, "no upload of the zvol's file: {ups:?}");
    assert!(ups.iter().all(|u| u["length"] != vm_len), "{ups:?}");
}

#[tokio::test]
async fn import_dir_reports_a_file_that_does_not_match_its_manifest() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let dir = tmp.path().join("datasets");
    let (_, child) = seed_dir(&dir, MIB, MIB);
    let mut bad = child.clone();
    bad[MIB / 2] ^= 1;
    std::fs::write(dir.join("child-1.2.8.zfs.bz2"), &bad).unwrap();
    let out = imgapi(&s.url, &state)
        .args(["import-dir", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        results(&v),
        [
            (BASE.to_string(), "imported".to_string()),
            (CHILD.to_string(), "failed".to_string())
        ],
        "{v}"
    );
    assert!(v[1]["error"].as_str().unwrap().contains("sha1"), "{v}");
    let (_, img) = s.get(&format!("/images/{CHILD}")).await;
    assert_ne!(img["state"], "active", "{img}");
}

#[tokio::test]
async fn import_remote_copies_an_image_and_its_origin_between_two_servers() {
    let src = Server::start().await;
    let dst = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (a, b) = (data(2 * MIB + 3, 21), data(3 * MIB + 1, 22));
    let origin = active_image(&src, "origin", None, &a).await;
    let uuid = active_image(&src, "leaf", Some(&origin), &b).await;
    let out = imgapi(&dst.url, &state)
        .args(["import-remote", &uuid, "--source", &src.url, "--json"])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&b), "{v}");
    assert_eq!(v["jobs"][0]["execution"], "succeeded", "{v}");
    assert_eq!(served(&dst.url, &uuid).await, b);
    assert_eq!(served(&dst.url, &origin).await, a);

    // --all-origins: the origin is its own job, first.
    let dst2 = Server::start().await;
    let out = imgapi(&dst2.url, &state)
        .args([
            "import-remote",
            &uuid,
            "--source",
            &src.url,
            "--all-origins",
            "--json",
        ])
        .output()
        .unwrap();
    let v = stdout_json(&out);
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{v}");
    assert_eq!(jobs[0]["image_uuid"], origin.as_str(), "{v}");
    assert_eq!(jobs[1]["image_uuid"], uuid.as_str(), "{v}");
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&b), "{v}");

    // Human output.
    let dst3 = Server::start().await;
    let out = imgapi(&dst3.url, &state)
        .args(["import-remote", &origin, "--source", &src.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&origin) && text.contains("active") && text.contains(&sha1_hex(&a)),
        "{text}"
    );
}

#[tokio::test]
async fn import_remote_from_a_refused_source_exits_1_with_not_allowed() {
    let src = Server::start().await;
    let dst = Server::start_with_config("[imports]\nallowed_sources = [\"https://\"]\n").await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let uuid = active_image(&src, "x", None, &data(1000, 3)).await;
    let out = imgapi(&dst.url, &state)
        .args(["import-remote", &uuid, "--source", &src.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NotAllowed") && err.contains("source"),
        "{err}"
    );
    let out = imgapi(&dst.url, &state)
        .args(["import-remote", &uuid, "--source", &src.url, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["errors"][0]["code"], "NotAllowed", "{e}");
    let (st, _) = dst.get(&format!("/images/{uuid}")).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn import_remote_exits_1_with_the_job_error_or_the_source_refusal() {
    let src = Server::start().await;
    let dst = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    // An image with no file at the source: the job fails, with its reason.
    let img = src
        .create(
            None,
            json!({"name": "nofile", "version": "1", "os": "smartos", "type": "zone-dataset",
                "owner": VADER}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap();
    let out = imgapi(&dst.url, &state)
        .args(["import-remote", uuid, "--source", &src.url, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "RemoteSourceError", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("no file"),
        "{e}"
    );
    let (_, got) = dst.get(&format!("/images/{uuid}")).await;
    assert_ne!(got["state"], "active", "{got}");

    // An image the source does not have: refused, not retried for long.
    let missing = "5e3c1b9a-7d2f-4c6e-8a1b-2f3e4d5c6b7a";
    let out = imgapi(&dst.url, &state)
        .args(["import-remote", missing, "--source", &src.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RemoteSourceError") && err.contains("ResourceNotFound"),
        "{err}"
    );
}
