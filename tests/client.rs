//! The client verbs of the `imgapi` binary against the real server: publish
//! end to end, resumed after the client is SIGKILLed and after the server is
//! restarted mid-upload (sending only the missing bytes), verified resumable
//! downloads, the image verbs, exit codes, `--json`, and the man pages.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::cli::*;
use common::*;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

fn run(url: &str, state: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Output {
    imgapi(url, state).args(args).output().expect("run imgapi")
}

/// `publish -m M -f FILE --account LUKE --json`, then `extra`.
fn publish_args(m: &Path, file: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["publish", "-m"].map(String::from).to_vec();
    a.push(m.to_str().unwrap().into());
    a.push("-f".into());
    a.push(file.to_str().unwrap().into());
    a.extend(["--account", LUKE, "--json"].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A gzip-looking file of `n` bytes (the client guesses its compression).
fn gz_file(dir: &Path, n: usize, seed: u32) -> (PathBuf, Vec<u8>) {
    let mut d = data(n, seed);
    d[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
    let p = dir.join(format!("image-{seed}.zfs.gz"));
    std::fs::write(&p, &d).unwrap();
    (p, d)
}

fn manifest(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    let m = json!({"v": 2, "name": name, "version": "1.0.0", "os": "smartos",
                   "type": "zone-dataset"});
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

/// Upload sessions of `account` on the server.
async fn server_uploads(url: &str, account: &str) -> Vec<Value> {
    let r = reqwest::get(format!("{url}/uploads?account={account}"))
        .await
        .unwrap();
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

fn state_entries(state: &Path) -> usize {
    std::fs::read_dir(state)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("upload-"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn publish_registers_an_active_image_and_file_get_downloads_it() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 3 * MIB + 123, 1);
    let m = manifest(tmp.path(), "e2e");
    let out = run(
        &s.url,
        &state,
        &[
            "publish",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
            "--account",
            LUKE,
            "--json",
        ],
    );
    let v = stdout_json(&out);
    let img = &v["image"];
    assert_eq!(img["state"], "active", "{v}");
    assert_eq!(img["owner"], LUKE);
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(img["files"][0]["size"], bytes.len());
    assert_eq!(img["files"][0]["compression"], "gzip");
    assert_eq!(v["upload"]["content_md5"], md5_b64(&bytes));
    assert_eq!(v["upload"]["resumed_from"], 0);
    assert_eq!(
        state_entries(&state),
        0,
        "a finished publish forgets its state"
    );
    let uuid = img["uuid"].as_str().unwrap();
    assert_eq!(served(&s.url, uuid).await, bytes);

    // Human output names the image.
    let out = run(&s.url, &state, &["images", "get", uuid]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(uuid) && text.contains("e2e"), "{text}");

    // file get: verified, renamed into place.
    let dest = tmp.path().join("down.zfs.gz");
    let out = run(
        &s.url,
        &state,
        &["file", "get", uuid, "-o", dest.to_str().unwrap(), "--json"],
    );
    let v = stdout_json(&out);
    assert_eq!(v["sha1"], sha1_hex(&bytes));
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert!(!tmp.path().join("down.zfs.gz.partial").exists());
}

#[tokio::test]
async fn publish_killed_mid_upload_resumes_without_resending_acknowledged_bytes() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 64 * MIB + 7, 2);
    let m = manifest(tmp.path(), "killed");
    let args = publish_args(&m, &file, &["--chunk-mib", "2", "--parallel", "1"]);
    // The client SIGKILLs itself once the server acknowledged >= 20 MiB
    // (~30 %), before its state file records that chunk (the harshest moment).
    let out = imgapi(&s.url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (20 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let ups = server_uploads(&s.url, LUKE).await;
    assert_eq!(ups.len(), 1, "{ups:?}");
    let at_kill = ups[0]["offset"].as_u64().unwrap();
    assert!(
        at_kill >= 20 * MIB as u64 && at_kill < bytes.len() as u64,
        "{at_kill}"
    );
    assert_eq!(state_entries(&state), 1);

    let before = bytes_in(&s.url).await;
    let v = stdout_json(&imgapi(&s.url, &state).args(&args).output().unwrap());
    let after = bytes_in(&s.url).await;
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], at_kill);
    let missing = bytes.len() as u64 - at_kill;
    // Only the missing bytes went (plus a chunk again per request given up
    // on, none on a quiet machine).
    let slack = v["upload"]["retries"].as_u64().unwrap() * 2 * MIB as u64;
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    assert!(sent >= missing && sent <= missing + slack, "sent {sent}");
    // The server received them plus the manifest, no more.
    assert!(
        after - before >= missing && after - before < missing + slack + 4096,
        "received {} for {missing} missing bytes",
        after - before
    );
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(
        served(&s.url, v["image"]["uuid"].as_str().unwrap()).await,
        bytes
    );
    assert_eq!(state_entries(&state), 0);
}

#[tokio::test]
async fn publish_in_parallel_killed_mid_way_resumes_every_partial() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 30 * MIB + 5, 11);
    let m = manifest(tmp.path(), "parallel");
    let args = publish_args(&m, &file, &["--parallel", "3", "--chunk-mib", "2"]);
    // SIGKILL once the server acknowledged >= 12 MiB over the three
    // partials, before the state file records the last chunk.
    let out = imgapi(&s.url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (12 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    // Three partials and their final (created before any byte was sent).
    // The requests the kill cut short may still be ending on the server:
    // wait until the partials' offsets settle.
    let offsets = |ups: &[Value]| -> Vec<u64> {
        ups.iter()
            .filter(|u| u["concat"] == "partial")
            .map(|u| u["offset"].as_u64().unwrap())
            .collect()
    };
    let mut ups = server_uploads(&s.url, LUKE).await;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = server_uploads(&s.url, LUKE).await;
        let same = offsets(&again) == offsets(&ups);
        ups = again;
        if same {
            break;
        }
    }
    assert_eq!(ups.len(), 4, "{ups:?}");
    assert_eq!(offsets(&ups).len(), 3, "{ups:?}");
    let at_kill: u64 = offsets(&ups).iter().sum();
    assert!(
        at_kill >= 12 * MIB as u64 && at_kill < bytes.len() as u64,
        "{at_kill}"
    );
    assert_eq!(state_entries(&state), 1);

    // The re-run (without --parallel: it resumes as it began).
    let before = bytes_in(&s.url).await;
    let v = stdout_json(
        &imgapi(&s.url, &state)
            .args(&args[..args.len() - 4])
            .args(["--chunk-mib", "2"])
            .output()
            .unwrap(),
    );
    let after = bytes_in(&s.url).await;
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], at_kill);
    let missing = bytes.len() as u64 - at_kill;
    let slack = v["upload"]["retries"].as_u64().unwrap() * 2 * MIB as u64;
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    assert!(sent >= missing && sent <= missing + slack, "sent {sent}");
    assert!(
        after - before >= missing && after - before < missing + slack + 4096,
        "received {} for {missing} missing bytes",
        after - before
    );
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(v["upload"]["content_md5"], md5_b64(&bytes));
    assert!(
        served(&s.url, v["image"]["uuid"].as_str().unwrap()).await == bytes,
        "served bytes differ"
    );
    assert_eq!(state_entries(&state), 0);
}

/// A state file written by an earlier version (an MD5 state, no CRC) still
/// resumes: the CRC of what the server has is computed again from the local
/// file, and only the missing bytes are sent.
#[tokio::test]
async fn publish_resumes_a_state_file_of_an_earlier_version() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 12 * MIB + 3, 22);
    let m = manifest(tmp.path(), "legacy");
    let args = publish_args(&m, &file, &["--chunk-mib", "1"]);
    let out = imgapi(&s.url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (5 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let at_kill = server_uploads(&s.url, LUKE).await[0]["offset"]
        .as_u64()
        .unwrap();
    // The entry as an earlier version wrote it: an md5 state, no CRC.
    let entry = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("upload-")
        })
        .unwrap();
    let mut e: Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    let size = e["hashes"]["size"].clone();
    assert!(e["hashes"]["crc64"].is_u64(), "{e}");
    e["hashes"] = json!({"md5_state": "A".repeat(116) + "==", "size": size});
    std::fs::write(&entry, e.to_string()).unwrap();

    let v = stdout_json(&imgapi(&s.url, &state).args(&args).output().unwrap());
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], at_kill);
    let missing = bytes.len() as u64 - at_kill;
    let slack = v["upload"]["retries"].as_u64().unwrap() * MIB as u64;
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    assert!(sent >= missing && sent <= missing + slack, "sent {sent}");
    assert_eq!(v["upload"]["content_md5"], md5_b64(&bytes));
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(state_entries(&state), 0);
}

/// The server holds other bytes than those sent: between two runs of an
/// interrupted parallel publish, a byte the server acknowledged changes in
/// its staged file (its disk), before the server hashes it into the final
/// upload. The client's CRC-64/NVME of what it sent differs from the
/// server's CRC of the final: the run fails loudly (exit 4), ends the
/// upload, forgets its state, and registers no image.
#[tokio::test]
async fn publish_refuses_an_upload_whose_server_bytes_differ_from_those_sent() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, _) = gz_file(tmp.path(), 16 * MIB, 21);
    let m = manifest(tmp.path(), "corrupted");
    let args = publish_args(&m, &file, &["--parallel", "2", "--chunk-mib", "1"]);
    // Killed once 3 MiB are acknowledged: neither 8 MiB partial is complete,
    // so the final has hashed nothing yet.
    let out = imgapi(&s.url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (3 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let mut ups = server_uploads(&s.url, LUKE).await;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = server_uploads(&s.url, LUKE).await;
        let same = again == ups;
        ups = again;
        if same {
            break;
        }
    }
    let fin = ups.iter().find(|u| u["concat"] == "final").expect("final");
    assert_eq!(fin["offset"], 0, "{ups:?}");
    // A byte inside what a partial already wrote into the final's bytes.
    let mut start = 0;
    let mut at = None;
    for id in fin["partials"].as_array().unwrap() {
        let p = ups.iter().find(|u| u["id"] == *id).unwrap();
        let (len, off) = (p["length"].as_u64().unwrap(), p["offset"].as_u64().unwrap());
        if off > 0 && at.is_none() {
            at = Some(start + off / 2);
        }
        start += len;
    }
    let at = at.expect("a partial with acknowledged bytes") as usize;
    let fin_id = fin["id"].as_str().unwrap().to_string();
    let staged: Vec<_> = walk(&s.data_dir())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| *n == *fin_id))
        .collect();
    assert_eq!(staged.len(), 1, "{staged:?}");
    let mut held = std::fs::read(&staged[0]).unwrap();
    held[at] ^= 0xff;
    std::fs::write(&staged[0], &held).unwrap();

    let out = imgapi(&s.url, &state).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("CRC-64/NVME") && err.contains("does not hold the bytes sent"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // Nothing registered, the upload ended, its state forgotten.
    let imgs: Value = reqwest::get(format!("{}/images?account={LUKE}&state=all", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !imgs
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "corrupted"),
        "{imgs}"
    );
    assert_eq!(server_uploads(&s.url, LUKE).await, Vec::<Value>::new());
    assert_eq!(state_entries(&state), 0);
}

/// A server on a fixed port (so the client's URL stays valid across a
/// restart), started again with the same data after SIGKILL.
struct FixedServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl FixedServer {
    fn start() -> FixedServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(dir.path(), port);
        FixedServer { child, port, dir }
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgapi"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("IMGAPI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("server printed nothing").unwrap();
        assert!(first.starts_with("imgapi listening on "), "{first}");
        std::thread::spawn(move || for _ in lines {});
        child
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn restart_hard(&mut self) {
        self.restart_hard_with(|_| {});
    }

    /// Kill, let `f` change the stopped server's data directory, start again.
    fn restart_hard_with(&mut self, f: impl FnOnce(&Path)) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        f(&self.dir.path().join("data"));
        self.child = Self::spawn(self.dir.path(), self.port);
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn publish_goes_on_after_the_server_is_killed_and_restarted_mid_upload() {
    let mut s = FixedServer::start();
    let url = s.url();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 64 * MIB + 5, 3);
    let m = manifest(tmp.path(), "restarted");
    let pause = tmp.path().join("paused");
    // The client stops after 20 MiB (~30 %) are acknowledged, until `pause`
    // is gone.
    let child = imgapi(&url, &state)
        .args([
            "publish",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
            "--account",
            LUKE,
            "--json",
            "--chunk-mib",
            "2",
            "--parallel",
            "1",
        ])
        .env(
            "IMGAPI_CLIENT_TEST_PAUSE_AFTER_BYTES",
            (20 * MIB).to_string(),
        )
        .env("IMGAPI_CLIENT_TEST_PAUSE_FILE", &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pause.exists() {
        assert!(std::time::Instant::now() < deadline, "client never paused");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.restart_hard();
    let offset = server_uploads(&url, LUKE).await[0]["offset"]
        .as_u64()
        .unwrap();
    assert_eq!(offset, 20 * MIB as u64, "the acknowledged bytes survived");
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], 0);
    // Each request given up on re-sends at most its chunk: the client went
    // on from the server's offset.
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    let retries = v["upload"]["retries"].as_u64().unwrap();
    assert!(
        sent >= bytes.len() as u64 && sent <= bytes.len() as u64 + retries * 2 * MIB as u64,
        "sent {sent} in {retries} retries"
    );
    assert_eq!(
        served(&url, v["image"]["uuid"].as_str().unwrap()).await,
        bytes
    );
}

/// An upload session the server keeps no CRC for (created before the
/// server kept them): the client checks the server's MD5 against the
/// file's (one more read of the file) instead, and publishes.
#[tokio::test]
async fn publish_of_a_session_without_a_crc_checks_the_md5_instead() {
    let mut s = FixedServer::start();
    let url = s.url();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 10 * MIB + 9, 23);
    let m = manifest(tmp.path(), "no-crc");
    let args = publish_args(&m, &file, &["--chunk-mib", "1"]);
    let out = imgapi(&url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (4 * MIB).to_string(),
        )
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    s.restart_hard_with(|d| {
        let c = rusqlite::Connection::open(d.join("imgapi.sqlite")).unwrap();
        assert_eq!(c.execute("UPDATE uploads SET crc64 = NULL", []).unwrap(), 1);
    });
    let up = server_uploads(&url, LUKE).await[0].clone();
    let r = reqwest::Client::new()
        .head(format!(
            "{url}/uploads/{}?account={LUKE}",
            up["id"].as_str().unwrap()
        ))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("upload-crc64nvme").is_none(), "{r:?}");

    let v = stdout_json(&imgapi(&url, &state).args(&args).output().unwrap());
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], up["offset"]);
    assert_eq!(v["upload"]["content_md5"], md5_b64(&bytes));
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&bytes));
    assert_eq!(
        served(&url, v["image"]["uuid"].as_str().unwrap()).await,
        bytes
    );
}

#[tokio::test]
async fn file_get_resumes_a_partial_file_and_refuses_a_corrupt_one() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let bytes = data(3 * MIB + 99, 4);
    let img = s.create_active(LUKE, "dl", true, &bytes).await;
    let uuid = img["uuid"].as_str().unwrap();
    let dest = tmp.path().join("out.img");
    let partial = tmp.path().join("out.img.partial");

    // An interrupted download left the first 1 MiB + 17 bytes.
    std::fs::write(&partial, &bytes[..MIB + 17]).unwrap();
    let out = run(
        &s.url,
        &state,
        &["file", "get", uuid, "-o", dest.to_str().unwrap(), "--json"],
    );
    let v = stdout_json(&out);
    assert_eq!(v["resumed_from"], MIB + 17);
    assert_eq!(v["bytes_received"], bytes.len() - MIB - 17);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert!(!partial.exists());

    // A partial file whose bytes were damaged: the result does not verify,
    // the partial file is deleted and nothing lands at OUT.
    let dest2 = tmp.path().join("out2.img");
    let partial2 = tmp.path().join("out2.img.partial");
    let mut bad = bytes[..2 * MIB].to_vec();
    bad[1000] ^= 0xff;
    std::fs::write(&partial2, &bad).unwrap();
    let out = run(
        &s.url,
        &state,
        &["file", "get", uuid, "-o", dest2.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed verification"), "{err}");
    assert!(!partial2.exists());
    assert!(!dest2.exists());
}

#[tokio::test]
async fn image_verbs_change_what_the_server_shows() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let img = s.create_active(LUKE, "verbs", false, b"hello").await;
    let uuid = img["uuid"].as_str().unwrap();
    let url = &s.url;

    let v = stdout_json(&run(
        url,
        &st,
        &["images", "list", "--name", "~erb", "--json"],
    ));
    assert_eq!(names(&v), vec!["verbs"]);
    let out = run(url, &st, &["images", "list", "--name", "~erb"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("UUID") && table.contains(uuid), "{table}");

    let v = stdout_json(&run(
        url,
        &st,
        &[
            "images",
            "update",
            uuid,
            "description=a test image",
            "tags={\"role\":\"db\"}",
            "--json",
        ],
    ));
    assert_eq!(v["description"], "a test image");
    assert_eq!(v["tags"]["role"], "db");
    let v = stdout_json(&run(
        url,
        &st,
        &["images", "list", "--tag", "role=db", "--json"],
    ));
    assert_eq!(names(&v), vec!["verbs"]);

    let v = stdout_json(&run(url, &st, &["images", "disable", uuid, "--json"]));
    assert_eq!(v["state"], "disabled");
    let v = stdout_json(&run(url, &st, &["images", "enable", uuid, "--json"]));
    assert_eq!(v["state"], "active");
    let v = stdout_json(&run(
        url,
        &st,
        &["images", "acl", "add", uuid, VADER, "--json"],
    ));
    assert_eq!(v["acl"], json!([VADER]));
    let v = stdout_json(&run(
        url,
        &st,
        &["images", "acl", "remove", uuid, VADER, "--json"],
    ));
    assert!(v["acl"].as_array().is_none_or(|a| a.is_empty()), "{v}");
    let out = run(url, &st, &["images", "delete", uuid]);
    assert!(out.status.success(), "{out:?}");
    let (code, _) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn upload_prints_digests_and_uploads_list_and_abort_end_sessions() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), MIB + 3, 5);
    let v = stdout_json(&run(
        &s.url,
        &st,
        &[
            "upload",
            file.to_str().unwrap(),
            "--account",
            LUKE,
            "--json",
        ],
    ));
    assert_eq!(v["size"], bytes.len());
    assert_eq!(v["sha1"], sha1_hex(&bytes));
    assert_eq!(v["content_md5"], md5_b64(&bytes));
    let id = v["id"].as_str().unwrap().to_string();

    let v = stdout_json(&run(
        &s.url,
        &st,
        &["uploads", "list", "--account", LUKE, "--json"],
    ));
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["state"], "complete");
    let out = run(&s.url, &st, &["uploads", "abort", &id, "--account", LUKE]);
    assert!(out.status.success(), "{out:?}");
    assert!(server_uploads(&s.url, LUKE).await.is_empty());
}

#[tokio::test]
async fn exit_codes_tell_refusals_usage_and_transport_apart() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    // 1: the server refused; its code is printed.
    let out = run(
        &s.url,
        &st,
        &["images", "get", "00000000-0000-4000-8000-000000000000"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFound"));
    let out = run(
        &s.url,
        &st,
        &["images", "list", "--state", "bogus", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stderr).expect("--json errors are JSON");
    assert!(err["error"]["code"].is_string(), "{err}");
    // 2: usage.
    let out = run(&s.url, &st, &["images", "list", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&s.url, &st, &["images", "get", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(2));
    let missing = tmp.path().join("missing.json");
    let out = run(
        &s.url,
        &st,
        &[
            "publish",
            "-m",
            missing.to_str().unwrap(),
            "-f",
            "/dev/null",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    // 3: nobody listens there (after the retries).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = imgapi(&format!("http://127.0.0.1:{port}"), &st)
        .args(["images", "list", "--retries", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn help_groups_server_and_client_verbs_and_shows_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let server = text.find("Server commands").expect("server group");
    let client = text.find("Client commands").expect("client group");
    let serve = text.find("  serve ").unwrap();
    let publish = text.find("  publish ").unwrap();
    assert!(
        server < serve && serve < client && client < publish,
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(["help", "publish"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}

/// docs/man holds what `imgapi man` writes from the clap definition.
/// `UPDATE_MAN=1 cargo test --test suite client::man_pages` rewrites it.
#[test]
fn man_pages_are_current() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(["man", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = |d: &Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want = read(tmp.path());
    assert!(want.contains_key("imgapi.1") && want.contains_key("imgapi-publish.1"));
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&docs).unwrap();
        for name in read(&docs).keys() {
            std::fs::remove_file(docs.join(name)).unwrap();
        }
        for (name, body) in &want {
            std::fs::write(docs.join(name), body).unwrap();
        }
        return;
    }
    let have = read(&docs);
    let stale: std::collections::BTreeSet<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|k| want.get(*k) != have.get(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/man is stale ({stale:?}); run UPDATE_MAN=1 cargo test --test suite client::man_pages"
    );
}

/// Which way a [`Relay`] goes silent.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Up,
    Down,
}

/// A TCP relay to the server that, once `after` bytes went `dir`, goes
/// silent on that connection as a lost network does: it keeps the client's
/// socket open but forwards nothing more, and drops its side towards the
/// server. Later connections are relayed normally.
struct Relay {
    url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn relay(target: String, dir: Dir, after: u64) -> Relay {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let cut = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let cut_ = cut.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            let Ok(s) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (cut, total) = (cut_.clone(), total.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = c.into_split();
                let (mut sr, sw) = s.into_split();
                let dead = Arc::new(AtomicBool::new(false));
                // Counts bytes going `d`; true when they cross `after` now.
                let crosses = |d: Dir, n: usize| {
                    d == dir
                        && !cut.load(SeqCst)
                        && total.fetch_add(n as u64, SeqCst) + n as u64 > after
                        && !cut.swap(true, SeqCst)
                };
                let up = async {
                    let mut sw = Some(sw);
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if dead.load(SeqCst) || crosses(Dir::Up, n) {
                            dead.store(true, SeqCst);
                            sw = None;
                            continue;
                        }
                        if let Some(w) = sw.as_mut()
                            && w.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if dead.load(SeqCst) || crosses(Dir::Down, n) {
                            dead.store(true, SeqCst);
                            continue;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    if dead.load(SeqCst) {
                        // Silent, not closed: the client must notice the stall.
                        std::future::pending::<()>().await;
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    Relay { url, cut }
}

async fn run_async(url: &str, state: &Path, args: &[&str]) -> Output {
    tokio::process::Command::from(imgapi(url, state))
        .args(args)
        .output()
        .await
        .expect("run imgapi")
}

#[tokio::test]
async fn publish_and_file_get_get_past_a_network_that_goes_silent() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 8 * MIB + 11, 6);
    let m = manifest(tmp.path(), "silent");

    // Upload: the network goes silent 3 MiB in (in the second chunk).
    let r = relay(s.addr(), Dir::Up, 3 * MIB as u64).await;
    let out = run_async(
        &r.url,
        &state,
        &[
            "publish",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
            "--account",
            LUKE,
            "--json",
            "--chunk-mib",
            "2",
            "--stall-timeout",
            "2",
        ],
    )
    .await;
    assert!(r.cut.load(std::sync::atomic::Ordering::SeqCst));
    let v = stdout_json(&out);
    assert_eq!(v["image"]["state"], "active", "{v}");
    // The stalled chunk went again (each request given up on re-sends at
    // most its chunk).
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    let retries = v["upload"]["retries"].as_u64().unwrap();
    assert!(retries >= 1);
    assert!(
        sent > bytes.len() as u64 && sent <= bytes.len() as u64 + retries * 2 * MIB as u64,
        "sent {sent} in {retries} retries"
    );
    let uuid = v["image"]["uuid"].as_str().unwrap().to_string();
    assert_eq!(served(&s.url, &uuid).await, bytes);

    // Download: the network goes silent 2 MiB in; the client resumes with
    // Range from what it wrote.
    let r = relay(s.addr(), Dir::Down, 2 * MIB as u64).await;
    let dest = tmp.path().join("got.gz");
    let out = run_async(
        &r.url,
        &state,
        &[
            "file",
            "get",
            &uuid,
            "-o",
            dest.to_str().unwrap(),
            "--json",
            "--stall-timeout",
            "1",
        ],
    )
    .await;
    assert!(r.cut.load(std::sync::atomic::Ordering::SeqCst));
    let v = stdout_json(&out);
    assert_eq!(v["bytes_received"], bytes.len(), "{v}");
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
}

#[tokio::test]
async fn client_verbs_work_with_a_token_and_print_the_refusal_of_a_bad_one() {
    let s = Server::start_with_config("auth = \"token\"\n").await;
    let (uuid, token) = s.account("jdoe", false);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), MIB / 2, 7);
    let m = manifest(tmp.path(), "tokened");
    let out = imgapi(&s.url, &state)
        .env("IMGAPI_TOKEN", &token)
        .args(["publish", "-m", m.to_str().unwrap(), "-f"])
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["image"]["owner"], uuid.as_str());
    assert_eq!(v["image"]["files"][0]["size"], bytes.len());

    let out = imgapi(&s.url, &state)
        .env("IMGAPI_TOKEN", &token)
        .args(["upload", "--path", "/jdoe/stor/images/x.zfs.gz", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let v = stdout_json(&out);
    assert_eq!(v["path"], "/jdoe/stor/images/x.zfs.gz");

    let out = imgapi(&s.url, &state)
        .env("IMGAPI_TOKEN", "imgapi_wrong")
        .args(["images", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

#[tokio::test]
async fn a_changed_file_starts_a_new_upload_and_ends_the_old_one() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, _) = gz_file(tmp.path(), 3 * MIB, 8);
    let args = [
        "upload",
        file.to_str().unwrap(),
        "--account",
        LUKE,
        "--json",
        "--chunk-mib",
        "1",
    ];
    let out = imgapi(&s.url, &state)
        .args(args)
        .env("IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES", MIB.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let old = server_uploads(&s.url, LUKE).await;
    assert_eq!(old.len(), 1);
    // The file changes (content and mtime): nothing of the old upload applies.
    let (_, bytes) = gz_file(tmp.path(), 3 * MIB, 8);
    let mut changed = bytes.clone();
    changed[10] ^= 1;
    std::fs::write(&file, &changed).unwrap();
    let v = stdout_json(&imgapi(&s.url, &state).args(args).output().unwrap());
    assert_eq!(v["resumed_from"], 0);
    assert_eq!(v["sha1"], sha1_hex(&changed));
    assert_ne!(v["id"], old[0]["id"]);
    let now = server_uploads(&s.url, LUKE).await;
    assert_eq!(now.len(), 1, "the old upload was ended: {now:?}");
    assert_eq!(now[0]["id"], v["id"]);
    assert_eq!(state_entries(&state), 0);
}

#[tokio::test]
async fn a_refused_registration_keeps_the_upload_for_the_corrected_rerun() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), MIB + 1, 9);
    let m = tmp.path().join("m.json");
    // A manifest stating a wrong sha1: the server refuses the registration.
    let mut manifest = json!({"v": 2, "name": "fixme", "version": "1.0.0", "os": "smartos",
        "type": "zone-dataset", "files": [{"sha1": "0".repeat(40)}]});
    std::fs::write(&m, manifest.to_string()).unwrap();
    let args = publish_args(&m, &file, &[]);
    let out = run(&s.url, &state, &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["code"], "ChecksumMismatch", "{err}");
    assert_eq!(
        err["error"]["hint"],
        format!(
            "the upload is kept: correct {} and run the same command again (the file is not \
             sent again)",
            m.display()
        ),
        "{err}"
    );
    assert_eq!(state_entries(&state), 1, "the upload is kept for a re-run");

    manifest["files"][0]["sha1"] = json!(sha1_hex(&bytes));
    std::fs::write(&m, manifest.to_string()).unwrap();
    let v = stdout_json(&run(&s.url, &state, &args));
    assert_eq!(v["image"]["state"], "active");
    assert_eq!(v["upload"]["bytes_sent"], 0, "nothing uploaded again");
    assert_eq!(v["upload"]["resumed_from"], bytes.len());
    assert_eq!(state_entries(&state), 0);
}

#[tokio::test]
async fn publish_refuses_an_invalid_manifest_before_sending_a_byte() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 64 * MIB, 12);
    // A zvol without nic_driver, disk_driver, cpu_type and image_size.
    let m = tmp.path().join("vm.json");
    let mut manifest = json!({"v": 2, "name": "vm", "version": "1.0.0", "os": "linux",
                              "type": "zvol"});
    std::fs::write(&m, manifest.to_string()).unwrap();
    let args = [
        "publish",
        "-m",
        m.to_str().unwrap(),
        "-f",
        file.to_str().unwrap(),
        "--account",
        LUKE,
    ];
    let before = bytes_in(&s.url).await;
    let out = run(&s.url, &state, &args);
    let received = bytes_in(&s.url).await - before;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "imgapi: ValidationFailed: invalid image data: nic_driver, disk_driver, cpu_type, \
             image_size (HTTP 422)\n\
             \x20 nic_driver: MissingParameter required for type \"zvol\"\n\
             \x20 disk_driver: MissingParameter required for type \"zvol\"\n\
             \x20 cpu_type: MissingParameter required for type \"zvol\"\n\
             \x20 image_size: MissingParameter required for type \"zvol\"\n\
             imgapi: nothing was uploaded: correct {} and run the same command again\n",
            m.display()
        )
    );
    assert!(out.stdout.is_empty());
    // The server holds no upload, no image, and received the manifest only.
    assert!(server_uploads(&s.url, LUKE).await.is_empty());
    let (_, imgs) = s.get(&format!("/images?state=all&account={LUKE}")).await;
    assert_eq!(imgs, json!([]));
    assert!(received < 4096, "received {received} bytes");
    let staged: u64 = walk(&s.data_dir())
        .iter()
        .filter(|p| !p.to_string_lossy().contains("imgapi.sqlite"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .filter(|&n| n >= MIB as u64)
        .sum();
    assert_eq!(
        staged, 0,
        "no file of the image's size on the server's disk"
    );
    assert_eq!(state_entries(&state), 0, "no upload to resume");

    // Corrected, it is published (from byte 0: nothing was sent before).
    for (k, v) in [
        ("nic_driver", json!("virtio")),
        ("disk_driver", json!("virtio")),
        ("cpu_type", json!("host")),
        ("image_size", json!(10240)),
    ] {
        manifest[k] = v;
    }
    std::fs::write(&m, manifest.to_string()).unwrap();
    let mut args = args.to_vec();
    args.push("--json");
    let v = stdout_json(&run(&s.url, &state, &args));
    assert_eq!(v["image"]["state"], "active", "{v}");
    assert_eq!(v["upload"]["resumed_from"], 0);
    assert_eq!(v["image"]["files"][0]["sha1"], sha1_hex(&bytes));
}

#[tokio::test]
async fn publish_interrupted_with_ctrl_c_resumes_on_the_next_run() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (file, bytes) = gz_file(tmp.path(), 6 * MIB + 3, 10);
    let m = manifest(tmp.path(), "ctrlc");
    let pause = tmp.path().join("paused");
    let args = publish_args(&m, &file, &["--chunk-mib", "2"]);
    let child = imgapi(&s.url, &state)
        .args(&args)
        .env(
            "IMGAPI_CLIENT_TEST_PAUSE_AFTER_BYTES",
            (2 * MIB).to_string(),
        )
        .env("IMGAPI_CLIENT_TEST_PAUSE_FILE", &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pause.exists() {
        assert!(std::time::Instant::now() < deadline, "client never paused");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) of the child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("run the same command again"));
    let _ = std::fs::remove_file(&pause);

    let v = stdout_json(&run(&s.url, &state, &args));
    assert_eq!(v["image"]["state"], "active");
    assert_eq!(v["upload"]["resumed_from"], 2 * MIB);
    let sent = v["upload"]["bytes_sent"].as_u64().unwrap();
    let slack = v["upload"]["retries"].as_u64().unwrap() * 2 * MIB as u64;
    let missing = (bytes.len() - 2 * MIB) as u64;
    assert!(sent >= missing && sent <= missing + slack, "sent {sent}");
    assert_eq!(
        served(&s.url, v["image"]["uuid"].as_str().unwrap()).await,
        bytes
    );
}
