//! The admin verbs `imgapi check-files` and `imgapi gc`, run as the real
//! binary against a running server's data: corrupted, truncated and missing
//! files; orphaned objects, stale temporary files, expired uploads and
//! expired placeholders, on the directory stores and on S3.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use imgapi::store::{FsStore, Store};
use serde_json::json;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run an admin verb; its exit code and stdout (stderr shown on failure).
fn run(s: &Server, args: &[&str]) -> (i32, String) {
    let o = s.admin(args);
    let out = stdout(&o);
    eprintln!(
        "$ imgapi {}\n{out}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), out)
}

fn local_file(s: &Server, uuid: &str, name: &str) -> PathBuf {
    s.data_dir()
        .join(format!("local/images/{}/{uuid}/{name}", &uuid[..3]))
}

fn write_file(p: &Path, data: &[u8], age: Duration) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

async fn file_bytes(s: &Server, uuid: &str) -> (u16, Vec<u8>) {
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn check_files_finds_corrupt_truncated_and_missing_files() {
    let s = Server::start().await;
    let file = data(200_000, 1);
    let img = s.create_active(SDC, "good", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let other = s.create_active(SDC, "other", true, &data(1000, 2)).await;
    let o = other["uuid"].as_str().unwrap().to_string();
    // an icon is checked too
    let r = s
        .http
        .put(s.u(&format!("/images/{o}/icon")))
        .header("content-type", "image/png")
        .body(data(500, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (code, out) = run(&s, &["check-files"]);
    assert_eq!(code, 0);
    assert!(out.contains("3 objects checked"), "{out}");
    assert!(out.contains(" 0 problems"), "{out}");
    assert_eq!(run(&s, &["check-files", "--quick"]).0, 0);

    // one byte flipped: same size, other digests
    let p = local_file(&s, &u, "file0");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[100_000] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    let (code, out) = run(&s, &["check-files"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&u)).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("sha1") && lines[0].contains("md5"),
        "{out}"
    );
    assert!(!lines[0].contains("size is"), "{out}");
    assert!(!out.contains(&o), "only the bad image is named: {out}");
    assert!(out.contains("1 problem"), "{out}");
    let (code, out) = run(&s, &["check-files", "--quick"]);
    assert_eq!(code, 0, "--quick checks sizes only: {out}");

    // truncated: --quick sees it
    std::fs::write(&p, &bytes[..150_000]).unwrap();
    let (code, out) = run(&s, &["check-files", "--quick"]);
    assert_eq!(code, 1);
    assert!(out.contains(&u) && out.contains("size is 150000"), "{out}");

    // the icon corrupted
    let icon = local_file(&s, &o, "icon");
    std::fs::write(&icon, data(500, 4)).unwrap();
    let (code, out) = run(&s, &["check-files"]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("{o} icon")), "{out}");
    assert!(out.contains("2 problems"), "{out}");

    // missing
    std::fs::remove_file(&p).unwrap();
    let (code, out) = run(&s, &["check-files", "--quick"]);
    assert_eq!(code, 1);
    assert!(
        out.lines().any(|l| l.contains(&u) && l.contains("missing")),
        "{out}"
    );
    std::fs::write(&p, &file).unwrap();
    std::fs::write(&icon, data(500, 3)).unwrap();
    assert_eq!(run(&s, &["check-files"]).0, 0);
}

#[tokio::test]
async fn gc_is_a_dry_run_unless_yes() {
    // Expiry 0 and lifespan 0: the upload and the placeholder below have
    // expired by the time `gc` (a later process) reads the clock.
    let s = Server::start_with_config(
        "[uploads]\nexpire_after_secs = 0\n[registrar]\nplaceholder_lifespan_days = 0\n",
    )
    .await;
    let file = data(100_000, 5);
    let img = s.create_active(SDC, "kept", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();

    // an object of no image
    let orphan_uuid = uuid::Uuid::new_v4().to_string();
    let orphan = local_file(&s, &orphan_uuid, "file0");
    write_file(&orphan, b"orphan", Duration::ZERO);
    // a file0 of an image in a stor it does not use: old, then recent
    let manta_file = s
        .data_dir()
        .join(format!("manta/imgapi/images/{}/{u}/file0", &u[..3]));
    write_file(&manta_file, b"stray", Duration::from_secs(7200));
    // temporary files of killed writers: a stale one and a fresh one
    let stale_tmp = local_file(&s, &u, ".file0.tmp.0123abcd");
    write_file(&stale_tmp, b"tmp", Duration::from_secs(7200));
    let fresh_tmp = local_file(&s, &u, ".file0.tmp.4567cdef");
    write_file(&fresh_tmp, b"tmp", Duration::ZERO);
    // something outside the image areas is not gc's business
    let elsewhere = s.data_dir().join("local/other/file0");
    write_file(&elsewhere, b"x", Duration::from_secs(7200));

    // an expired upload
    let loc = s.tus_location(10, None).await;
    let upload_id = upload_id(&loc);
    // an expired placeholder (lifespan 0) with a file
    let ph = s
        .create(
            None,
            json!({"name": "ph", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "owner": SDC}),
        )
        .await;
    let ph = ph["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .put_bytes(&format!("/images/{ph}/file?compression=none"), data(300, 6))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .post(
            &format!("/images/{ph}?action=update"),
            json!({"state": "failed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let ph_file = local_file(&s, &ph, "file0");
    assert!(ph_file.exists());

    let (code, out) = run(&s, &["gc"]);
    assert_eq!(code, 0);
    let would = |what: &str| {
        out.lines()
            .any(|l| l.starts_with("would delete") && l.contains(what))
    };
    assert!(would(&format!("upload {upload_id}")), "{out}");
    assert!(would(&format!("placeholder {ph}")), "{out}");
    assert!(would(&orphan_uuid), "{out}");
    assert!(
        would(&format!("imgapi/images/{}/{u}/file0", &u[..3])),
        "{out}"
    );
    assert!(would(".file0.tmp.0123abcd"), "{out}");
    assert!(!out.contains(".file0.tmp.4567cdef"), "{out}");
    assert!(!out.contains("other/file0"), "{out}");
    assert!(
        !out.contains(&format!("local images/{}/{u}/file0 ", &u[..3])),
        "the live file is kept: {out}"
    );
    assert!(
        !out.contains(&format!("images/{}/{ph}/file0", &ph[..3])),
        "the placeholder's file goes with it, not as an orphan: {out}"
    );
    assert!(
        out.lines().last().unwrap().contains(
            "would delete 1 expired upload(s), 1 expired placeholder(s), 3 orphaned object(s)"
        ),
        "{out}"
    );
    // nothing was deleted
    for p in [&orphan, &manta_file, &stale_tmp, &fresh_tmp, &ph_file] {
        assert!(p.exists(), "{} still there", p.display());
    }
    assert_eq!(s.tus_offset(&loc).await.0, 410, "expired but present");
    assert_eq!(s.get(&format!("/images/{ph}")).await.0, 200);

    let (code, out) = run(&s, &["gc", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("delete") && l.contains(&orphan_uuid)),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().contains(
            "deleted 1 expired upload(s), 1 expired placeholder(s), 3 orphaned object(s)"
        ),
        "{out}"
    );
    for p in [&orphan, &manta_file, &stale_tmp, &ph_file] {
        assert!(!p.exists(), "{} deleted", p.display());
    }
    assert!(
        !orphan.parent().unwrap().exists(),
        "empty directories pruned"
    );
    assert!(fresh_tmp.exists() && elsewhere.exists());
    assert_eq!(s.tus_offset(&loc).await.0, 404);
    assert_eq!(s.get(&format!("/images/{ph}")).await.0, 404);
    // the images' files are untouched
    assert_eq!(file_bytes(&s, &u).await, (200, file.clone()));
    assert_eq!(run(&s, &["check-files"]).0, 0);

    // nothing left to do
    let (code, out) = run(&s, &["gc"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(
        "would delete 0 expired upload(s), 0 expired placeholder(s), 0 orphaned object(s)"
    ));
}

/// Upload data no upload row names (a staging file superseded by a crash
/// between restaging and commit, bytes whose row is gone) goes after the
/// grace period; the data of a live upload stays, and it still completes.
#[tokio::test]
async fn gc_sweeps_upload_data_no_upload_names() {
    let s = Server::start().await;
    let file = data(50_000, 9);
    let loc = s.tus_location(file.len() as u64, None).await;
    let id = upload_id(&loc);
    let (st, _, _) = s.tus_patch(&loc, None, 0, file[..20_000].to_vec()).await;
    assert_eq!(st, 204);
    let area = s
        .data_dir()
        .join(format!("manta/imgapi/uploads/{}", &id[..3]));
    let live = area.join(&id);
    assert!(
        live.exists(),
        "the upload's bytes are at {}",
        live.display()
    );
    // idle for two hours: still its upload's data
    std::fs::File::options()
        .write(true)
        .open(&live)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let superseded = area.join(format!("{id}.12345"));
    write_file(&superseded, b"old staging", Duration::from_secs(7200));
    let gone = uuid::Uuid::new_v4().to_string();
    let rowless = s
        .data_dir()
        .join(format!("manta/imgapi/uploads/{}/{gone}", &gone[..3]));
    write_file(&rowless, b"no row", Duration::from_secs(7200));
    let assets_gone = uuid::Uuid::new_v4().to_string();
    let in_assets = s
        .data_dir()
        .join(format!("assets/imgapi-uploads/{assets_gone}"));
    write_file(&in_assets, b"no row", Duration::from_secs(7200));
    let fresh = uuid::Uuid::new_v4().to_string();
    let fresh_file = s
        .data_dir()
        .join(format!("manta/imgapi/uploads/{}/{fresh}", &fresh[..3]));
    write_file(&fresh_file, b"being created", Duration::ZERO);

    let (code, out) = run(&s, &["gc"]);
    assert_eq!(code, 0);
    let would = |what: &str, why: &str| {
        out.lines()
            .any(|l| l.starts_with("would delete") && l.contains(what) && l.contains(why))
    };
    assert!(
        would(
            &format!("{id}.12345"),
            &format!("staging file of upload {id}, which no longer stages")
        ),
        "{out}"
    );
    assert!(would(&gone, &format!("no upload {gone}")), "{out}");
    assert!(would(&assets_gone, "no upload"), "{out}");
    assert!(!out.contains(&fresh), "within the grace period: {out}");
    assert!(
        !out.lines().any(
            |l| l.ends_with(&format!("/{id} (20000 bytes)")) || l.contains(&format!("/{id} ("))
        ),
        "the live upload's data is kept: {out}"
    );
    assert!(out.contains("3 orphaned object(s)"), "{out}");

    let (code, out) = run(&s, &["gc", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deleted 0 expired upload(s), 0 expired placeholder(s), 3 orphaned object(s)"),
        "{out}"
    );
    for p in [&superseded, &rowless, &in_assets] {
        assert!(!p.exists(), "{} deleted", p.display());
    }
    assert!(live.exists() && fresh_file.exists());
    let (st, _, _) = s
        .tus_patch(&loc, None, 20_000, file[20_000..].to_vec())
        .await;
    assert_eq!(st, 204);
    let (_, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(info["state"], "complete");
    assert_eq!(
        info["sha1"],
        hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&file))
    );
}

#[tokio::test]
async fn gc_keeps_what_a_registration_in_progress_writes() {
    let s = Server::start().await;
    // A pending registrar job for an image (as after a crash mid-registration).
    let img = s
        .create(
            None,
            json!({"name": "reg", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "owner": SDC}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let db = rusqlite::Connection::open(s.data_dir().join("imgapi.sqlite")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO registrations (image_uuid, kind, source, store, source_key, content_md5, \
         compression, activate, state, created_at, updated_at) \
         VALUES (?1, 'attach', 'path', 'nowhere', 'x', 'AAAAAAAAAAAAAAAAAAAAAA==', 'none', 0, \
         'pending', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')",
        [&u],
    )
    .unwrap();
    let p = s
        .data_dir()
        .join(format!("manta/imgapi/images/{}/{u}/file0", &u[..3]));
    write_file(&p, b"being registered", Duration::from_secs(7200));
    let (code, out) = run(&s, &["gc", "--yes"]);
    assert_eq!(code, 0);
    assert!(!out.contains(&u), "{out}");
    assert!(p.exists());
}

#[tokio::test]
async fn fs_store_lists_by_key_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStore::new(dir.path()).unwrap();
    for k in [
        "images/abc/x/file0",
        "images/abd/y/.file0.tmp.1",
        "imagesX/z",
        "top",
    ] {
        write_file(&fs.root().join(k), k.as_bytes(), Duration::ZERO);
    }
    let store = Store::Fs(fs);
    let keys = |prefix: &'static str| {
        let store = store.clone();
        async move {
            store
                .list(prefix)
                .await
                .unwrap()
                .into_iter()
                .map(|(k, m)| {
                    assert_eq!(m.size, k.len() as u64);
                    k
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        keys("images/").await,
        ["images/abc/x/file0", "images/abd/y/.file0.tmp.1"]
    );
    assert_eq!(keys("images/abc").await, ["images/abc/x/file0"]);
    assert_eq!(
        keys("images").await,
        [
            "images/abc/x/file0",
            "images/abd/y/.file0.tmp.1",
            "imagesX/z"
        ]
    );
    assert_eq!(keys("").await.len(), 4);
    assert!(keys("nothing/here/").await.is_empty());
}

#[tokio::test]
async fn gc_and_check_files_on_s3() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let client = s3.client();
    let file = data(300_000, 7);
    let img = s.create_active(SDC, "s3img", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let key = format!("p/imgapi/images/{}/{u}/file0", &u[..3]);
    let put = |k: String, body: Vec<u8>| {
        let (client, bucket) = (client.clone(), s3.bucket.clone());
        async move {
            client
                .put_object()
                .bucket(bucket)
                .key(k)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    let exists = |k: String| {
        let (client, bucket) = (client.clone(), s3.bucket.clone());
        async move {
            client
                .head_object()
                .bucket(bucket)
                .key(k)
                .send()
                .await
                .is_ok()
        }
    };
    assert_eq!(run(&s, &["check-files"]).0, 0);

    let orphan_uuid = uuid::Uuid::new_v4().to_string();
    let orphan = format!("p/imgapi/images/{}/{orphan_uuid}/file0", &orphan_uuid[..3]);
    put(orphan.clone(), b"orphan".to_vec()).await;
    put("p/someone/stor/x".into(), b"user".to_vec()).await;
    // a local staging file of an upload that is gone (S3 uploads stage there)
    let gone = uuid::Uuid::new_v4().to_string();
    let staged = s
        .data_dir()
        .join(format!("staging/imgapi/uploads/{}/{gone}.0", &gone[..3]));
    write_file(&staged, b"staged", Duration::from_secs(7200));
    // a live upload into S3, one 5 MiB part sent, all 7 MiB staged from
    // its first byte (kept until the upload completes); a staging file of a
    // restage that an older server version left after that offset
    const MIB: usize = 1 << 20;
    let loc = s.tus_location(10 * MIB as u64, None).await;
    let up = upload_id(&loc);
    let body = data(10 * MIB, 8);
    let (st, _, _) = s.tus_patch(&loc, None, 0, body[..7 * MIB].to_vec()).await;
    assert_eq!(st, 204);
    let up_area = s
        .data_dir()
        .join(format!("staging/imgapi/uploads/{}", &up[..3]));
    let current = up_area.join(format!("{up}.0"));
    let ahead = up_area.join(format!("{up}.{}", 9 * MIB));
    // With PostgreSQL (a cluster), the upload's bytes are pieces in the
    // bucket, none on the node: a whole part and the tail.
    let pieces_prefix = format!("p/imgapi/uploads/{}/{up}.pieces/", &up[..3]);
    let pieces = || s3.keys(&pieces_prefix);
    let in_store = common::backend_is_postgres();
    if in_store {
        assert!(!current.exists(), "nothing staged on the node");
        assert_eq!(pieces().await.len(), 2, "a part and the tail");
    } else {
        assert_eq!(
            std::fs::metadata(&current).unwrap().len(),
            7 * MIB as u64,
            "staged from the first byte until complete"
        );
        write_file(&ahead, b"a crashed restage", Duration::from_secs(7200));
    }
    let (code, out) = run(&s, &["gc"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("would delete manta") && l.contains(&orphan_uuid)),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("would delete staging") && l.contains(&gone)),
        "{out}"
    );
    assert!(!out.contains("someone"), "{out}");
    assert!(exists(orphan.clone()).await);
    assert!(
        !out.contains(&up),
        "the live upload's data is not garbage: {out}"
    );
    let (code, out) = run(&s, &["gc", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 orphaned object(s)"), "{out}");
    assert!(!exists(orphan).await);
    assert!(!staged.exists());
    if in_store {
        assert_eq!(pieces().await.len(), 2, "the live upload's pieces stay");
    } else {
        assert!(
            current.exists() && ahead.exists(),
            "the live upload's files stay"
        );
    }
    let (st, _, _) = s
        .tus_patch(&loc, None, 7 * MIB as u64, body[7 * MIB..].to_vec())
        .await;
    assert_eq!(st, 204);
    let (_, info) = s.get(&format!("{loc}/info")).await;
    assert_eq!(info["state"], "complete", "{info}");
    assert_eq!(
        info["sha1"],
        hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&body))
    );
    assert!(exists(key.clone()).await && exists("p/someone/stor/x".into()).await);
    assert_eq!(file_bytes(&s, &u).await, (200, file.clone()));

    // same-size corruption in the bucket
    let mut bad = file.clone();
    bad[5] ^= 1;
    put(key.clone(), bad).await;
    let (code, out) = run(&s, &["check-files"]);
    assert_eq!(code, 1);
    assert!(out.contains(&u) && out.contains("sha1"), "{out}");
    assert_eq!(run(&s, &["check-files", "--quick"]).0, 0);
}
