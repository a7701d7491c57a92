//! tus `concatenation` (parallel uploads) against the real binary: partial
//! uploads PATCHed in an interleaving, the final upload made of them, its
//! digests, registration and download; the errors; a kill -9 in the middle
//! of a partial; and tus-js-client's `parallelUploads`
//! (`tests/tus/tus_parallel.js`).

use crate::common;
use crate::common::Api;

use std::time::Duration;

use common::{LUKE, Server, VADER, data, final_of, md5_b64, partial, sha1_hex, status_json};
use serde_json::{Value, json};

const KIB: usize = 1024;

async fn patch_ok(s: &Server, loc: &str, offset: usize, body: &[u8]) {
    let (st, h, v) = s
        .tus_patch(loc, Some(LUKE), offset as u64, body.to_vec())
        .await;
    assert_eq!(st, 204, "PATCH {loc} at {offset}: {v}");
    assert_eq!(h["upload-offset"], (offset + body.len()).to_string());
}

async fn info(s: &Server, loc: &str) -> (u16, Value) {
    s.get(&format!("{loc}/info?account={LUKE}")).await
}

#[tokio::test]
async fn interleaved_partials_make_a_final_that_registers() {
    let s = Server::start().await;
    interleave_final_register(&s, 3 * 1024 * KIB + 123, 1024 * KIB + 5).await;
}

#[tokio::test]
async fn s3_interleaved_partials_make_a_final_that_registers() {
    let s3 = common::S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    // The final spans three 5 MiB parts; the cut is not on a part boundary.
    interleave_final_register(&s, 11 * 1024 * KIB + 77, 3 * 1024 * KIB + 1).await;
}

/// Two partials of a `size`-byte file cut at `cut`, PATCHed alternately;
/// the final made of them; its HEAD, digests, registration and bytes.
async fn interleave_final_register(s: &Server, size: usize, cut: usize) {
    let file = data(size, 7);
    let (a, b) = (&file[..cut], &file[cut..]);
    let pa = partial(s, a.len(), LUKE).await;
    let pb = partial(s, b.len(), LUKE).await;
    // Two partials PATCHed alternately, 256 KiB at a time.
    let chunk = 256 * KIB;
    let (mut oa, mut ob) = (0, 0);
    while oa < a.len() || ob < b.len() {
        if ob < b.len() {
            let end = (ob + chunk).min(b.len());
            patch_ok(s, &pb, ob, &b[ob..end]).await;
            ob = end;
        }
        if oa < a.len() {
            let end = (oa + chunk).min(a.len());
            patch_ok(s, &pa, oa, &a[oa..end]).await;
            oa = end;
        }
    }
    let (st, _, h) = s.tus_head(&format!("{pa}?account={LUKE}")).await;
    assert_eq!(st, 200);
    assert_eq!(h["upload-concat"], "partial");
    // A partial is no file of its own.
    let (_, v) = info(s, &pa).await;
    assert_eq!(v["concat"], "partial");

    // One URL absolute, one as Location gave it.
    let urls = vec![s.u(&pa), pb.clone()];
    let (st, loc, v) = final_of(s, &urls, LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = loc.unwrap();
    let (st, off, h) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!(st, 200);
    assert_eq!(off, Some(file.len() as u64));
    assert_eq!(h["upload-length"], file.len().to_string());
    assert_eq!(h["upload-concat"], format!("final;{pa} {pb}"));
    // Its CRC, in file order, computed as it was filled by copy.
    assert_eq!(h["upload-crc64nvme"], crc_b64(&file).as_str());
    let (st, v) = info(s, &fin).await;
    assert_eq!(st, 200);
    assert_eq!(v["state"], "complete");
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    assert_eq!(v["concat"], "final");
    // The partials went once the final was complete.
    assert_eq!(info(s, &pa).await.0, 404);
    assert_eq!(info(s, &pb).await.0, 404);
    // PATCH on a final: 403.
    let (st, _, v) = s
        .tus_patch(&fin, Some(LUKE), file.len() as u64, b"x".to_vec())
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("UploadIsFinal")),
        "{v}"
    );

    // Registration's fast path, then the bytes back.
    register_and_fetch(s, &fin, &file).await;
}

#[tokio::test]
async fn concatenation_errors() {
    let s = Server::start().await;
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.u("/uploads"))
        .send()
        .await
        .unwrap();
    let ext = r.headers()["tus-extension"].to_str().unwrap().to_string();
    assert!(ext.split(',').any(|e| e == "concatenation"), "{ext}");

    let done = partial(&s, 10, LUKE).await;
    patch_ok(&s, &done, 0, b"0123456789").await;
    let foreign = partial(&s, 10, VADER).await;
    let (_, h) = s.tus_create(10, Some(LUKE), &[]).await;
    let plain = h["location"].to_str().unwrap().to_string();
    let unknown = format!("/uploads/{}", uuid::Uuid::new_v4());

    let code = |v: &Value| v["code"].as_str().unwrap_or("").to_string();
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (vec![unknown], 404, "UploadNotFound"),
        (vec![foreign], 404, "UploadNotFound"),
        (vec![plain], 400, "InvalidHeader"),
        (vec![done.clone(), done.clone()], 400, "InvalidHeader"),
        (vec!["/images/nope".into()], 400, "InvalidHeader"),
        (vec![], 400, "InvalidHeader"),
    ];
    for (urls, want, want_code) in cases {
        let (st, loc, v) = final_of(&s, &urls, LUKE).await;
        assert_eq!((st, code(&v).as_str()), (want, want_code), "{urls:?}: {v}");
        assert!(loc.is_none());
    }
    // A bad Upload-Concat value.
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1")
        .header("upload-concat", "partially")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A partial has no path of its own.
    let r = s
        .http
        .post(s.u(&format!("/uploads?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1")
        .header("upload-concat", "partial")
        .header("upload-metadata", "path L2x1a2Uvc3Rvci94")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(
        (st, v["errors"][0]["field"].as_str()),
        (422, Some("path")),
        "{v}"
    );
    // A complete partial cannot be registered as an image file.
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "p", "version": "1", "os": "other", "type": "other"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    let pid = done.trim_start_matches("/uploads/");
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{u}/file?account={LUKE}&compression=none&upload={pid}"
        )))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    assert!((400..500).contains(&st), "registering a partial: {st}");

    // Used once: its bytes are the final's, the partial is gone after.
    let (st, _, v) = final_of(&s, std::slice::from_ref(&done), LUKE).await;
    assert_eq!(st, 201, "{v}");
    let (st, _, v) = final_of(&s, std::slice::from_ref(&done), LUKE).await;
    assert_eq!(
        st, 404,
        "a used partial is gone once its final completed: {v}"
    );
}

/// `concatenation-unfinished`: a final created while a partial is still
/// uploading holds the complete prefix, and completes when that partial does.
#[tokio::test]
async fn final_before_its_partials_are_done() {
    let s = Server::start().await;
    final_before_partials(&s, 1024 * KIB + 999, 300 * KIB + 1, 700 * KIB + 3).await;
}

#[tokio::test]
async fn s3_final_before_its_partials_are_done() {
    let s3 = common::S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    final_before_partials(
        &s,
        12 * 1024 * KIB + 5,
        3 * 1024 * KIB + 1,
        8 * 1024 * KIB + 3,
    )
    .await;
}

/// Partials a, b, c of a `size`-byte file cut at `c1` and `c2`; the final
/// created while b is still uploading.
async fn final_before_partials(s: &Server, size: usize, c1: usize, c2: usize) {
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.u("/uploads"))
        .send()
        .await
        .unwrap();
    let ext = r.headers()["tus-extension"].to_str().unwrap().to_string();
    assert!(
        ext.split(',').any(|e| e == "concatenation-unfinished"),
        "{ext}"
    );
    let file = data(size, 21);
    let pa = partial(s, c1, LUKE).await;
    let pb = partial(s, c2 - c1, LUKE).await;
    let pc = partial(s, file.len() - c2, LUKE).await;
    patch_ok(s, &pa, 0, &file[..c1]).await;
    patch_ok(s, &pc, 0, &file[c2..]).await;
    patch_ok(s, &pb, 0, &file[c1..c1 + 100 * KIB]).await;
    let (st, loc, v) = final_of(s, &[pa.clone(), pb.clone(), pc.clone()], LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = loc.unwrap();
    // Its offset is the complete prefix: partial a only.
    let (st, off, h) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!((st, off), (200, Some(c1 as u64)));
    assert_eq!(h["upload-length"], file.len().to_string());
    let (_, v) = info(s, &fin).await;
    assert_eq!(v["state"], "uploading");
    let (_, v) = info(s, &pb).await;
    assert_eq!(v["final"], fin.trim_start_matches("/uploads/"));
    // A partial a final uses: no other final, no termination.
    let (st, _, v) = final_of(s, std::slice::from_ref(&pb), LUKE).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("FileInUse")), "{v}");
    let r = s
        .http
        .delete(s.u(&format!("{pb}?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // The rest of b: the final completes.
    patch_ok(s, &pb, 100 * KIB, &file[c1 + 100 * KIB..c2]).await;
    let (st, v) = info(s, &fin).await;
    assert_eq!(st, 200);
    assert_eq!(v["state"], "complete", "{v}");
    assert_eq!(v["offset"], file.len());
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    for p in [&pa, &pb, &pc] {
        assert_eq!(info(s, p).await.0, 404);
    }
    let got = s
        .http
        .get(s.u(&format!("{fin}?account={LUKE}")))
        .send()
        .await
        .unwrap();
    assert!(got.bytes().await.unwrap() == file);
}

#[tokio::test]
async fn kill_mid_partial_then_resume_and_finish() {
    let mut s = Server::spawn().await;
    let file = data(2 * 1024 * KIB, 11);
    let half = file.len() / 2;
    let pa = partial(&s, half, LUKE).await;
    let pb = partial(&s, file.len() - half, LUKE).await;
    patch_ok(&s, &pa, 0, &file[..half / 2]).await;
    patch_ok(&s, &pb, 0, &file[half..half + 100 * KIB]).await;
    s.restart_hard().await;
    // Each partial resumes from its acknowledged offset.
    let (st, off, h) = s.tus_head(&format!("{pa}?account={LUKE}")).await;
    assert_eq!((st, off), (200, Some((half / 2) as u64)));
    assert_eq!(h["upload-concat"], "partial");
    let (_, off, _) = s.tus_head(&format!("{pb}?account={LUKE}")).await;
    assert_eq!(off, Some(100 * KIB as u64));
    patch_ok(&s, &pa, half / 2, &file[half / 2..half]).await;
    patch_ok(&s, &pb, 100 * KIB, &file[half + 100 * KIB..]).await;
    let (st, loc, v) = final_of(&s, &[pa, pb], LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = loc.unwrap();
    s.restart_hard().await;
    let (st, v) = info(&s, &fin).await;
    assert_eq!(st, 200);
    assert_eq!(v["state"], "complete");
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    let got = s
        .http
        .get(s.u(&format!("{fin}?account={LUKE}")))
        .send()
        .await
        .unwrap();
    assert!(got.bytes().await.unwrap() == file);
}

/// The server killed (SIGKILL) while it fills a final upload from its
/// partials: whatever the moment, after the restart either the final is
/// complete with the file's digests (finished at start-up) and the
/// partials are gone, or there is no final and the partials are free.
#[tokio::test]
async fn kill_during_final_fill_finishes_or_frees() {
    let mut s = Server::spawn().await;
    let file = data(24 * 1024 * KIB, 13);
    let cut = 10 * 1024 * KIB;
    let pa = partial(&s, cut, LUKE).await;
    let pb = partial(&s, file.len() - cut, LUKE).await;
    patch_ok(&s, &pa, 0, &file[..cut]).await;
    patch_ok(&s, &pb, 0, &file[cut..]).await;
    let req = s
        .http
        .post(s.u(&format!("/uploads?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{pa} {pb}"))
        .send();
    let req = tokio::spawn(req);
    // The kill lands while the final is filled, or around it.
    tokio::time::sleep(Duration::from_millis(40)).await;
    s.restart_hard().await;
    let answered = matches!(req.await, Ok(Ok(r)) if r.status().is_success());
    println!("POST final answered before the kill: {answered}");
    let (st, list) = s.get(&format!("/uploads?account={LUKE}")).await;
    assert_eq!(st, 200);
    let finals: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["concat"] == "final")
        .collect();
    let fin = match finals.as_slice() {
        [] => {
            println!("killed before the final was recorded");
            let (st, loc, v) = final_of(&s, &[pa.clone(), pb.clone()], LUKE).await;
            assert_eq!(st, 201, "{v}");
            loc.unwrap()
        }
        [f] => {
            println!("killed with the final recorded: {}", f["state"]);
            format!("/uploads/{}", f["id"].as_str().unwrap())
        }
        _ => panic!("two finals: {list}"),
    };
    let (st, v) = info(&s, &fin).await;
    assert_eq!(st, 200);
    assert_eq!(v["state"], "complete", "{v}");
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    assert_eq!(info(&s, &pa).await.0, 404);
    assert_eq!(info(&s, &pb).await.0, 404);
}

#[tokio::test]
async fn tus_js_client_parallel_uploads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/tus/node_modules/tus-js-client/package.json")
            .is_file(),
        "tests/tus/node_modules is missing: run `npm ci` in tests/tus"
    );
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, data(3 * 1024 * KIB + 777, 5)).unwrap();
    let child = tokio::process::Command::new("node")
        .arg("tests/tus/tus_parallel.js")
        .current_dir(root)
        .env("IMGAPI_URL", &s.url)
        .env("FILE", &file)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("tus_parallel.js timed out")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tus_parallel.js failed:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ok ")));
    // Its partials were done before the final: their bytes were copied.
    assert!(bytes_copied(&s).await > 0);
}

/// `imgapi_concat_bytes_copied_total` from `/metrics`.
async fn bytes_copied(s: &Server) -> u64 {
    let m = s.metrics().await;
    m.lines()
        .find_map(|l| l.strip_prefix("imgapi_concat_bytes_copied_total "))
        .expect("imgapi_concat_bytes_copied_total in /metrics")
        .trim()
        .parse()
        .unwrap()
}

/// The `Upload-Crc64nvme` the server shows for `d`: its CRC-64/NVME, base64
/// of the 8 big-endian bytes.
fn crc_b64(d: &[u8]) -> String {
    imgapi::digest::crc64::to_base64(imgapi::digest::crc64::Crc64::of(d))
}

/// Sizes of the files named `name` (or `name.<offset>`, a staging file)
/// anywhere under `dir`.
fn file_sizes(dir: &std::path::Path, name: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(file_sizes(&e.path(), name));
        } else if e
            .file_name()
            .to_str()
            .is_some_and(|n| n == name || n.starts_with(&format!("{name}.")))
        {
            out.push(e.metadata().unwrap().len());
        }
    }
    out
}

/// The staged file of upload `loc` holds no bytes (a partial written in
/// place into its final).
fn assert_own_file_empty(s: &Server, loc: &str) {
    let id = loc.trim_start_matches("/uploads/");
    let sizes = file_sizes(&s.data_dir(), id);
    assert_eq!(sizes, vec![0], "the staged file of partial {id}");
}

/// Register `fin` as an image's file through the fast path; its size, its
/// bytes and their Content-MD5 back.
async fn register_and_fetch(s: &Server, fin: &str, file: &[u8]) {
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "inplace", "version": "1", "os": "other", "type": "other"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    let id = fin.trim_start_matches("/uploads/");
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{u}/file?account={LUKE}&compression=none&upload={id}&sha1={}",
            sha1_hex(file)
        )))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["files"][0]["sha1"], sha1_hex(file));
    let (st, v) = s.get(&format!("/images/{u}?account={LUKE}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["files"][0]["size"], file.len());
    let got = s
        .http
        .get(s.u(&format!("/images/{u}/file?account={LUKE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(
        got.headers()["content-md5"].to_str().unwrap(),
        md5_b64(file)
    );
    assert!(got.bytes().await.unwrap() == file, "GetImageFile differs");
}

/// PATCH the partials `locs` (of `file` cut at `cuts`) round-robin, `chunk`
/// bytes at a time, until each has `upto[i]` bytes in; `offs` holds their
/// offsets.
async fn patch_round_robin(
    s: &Server,
    file: &[u8],
    locs: &[String],
    bounds: &[(usize, usize)],
    offs: &mut [usize],
    upto: &[usize],
    chunk: usize,
) {
    loop {
        let mut any = false;
        // Last partial first: its bytes arrive before the ones before it.
        for i in (0..locs.len()).rev() {
            let (start, _) = bounds[i];
            if offs[i] < upto[i] {
                let end = (offs[i] + chunk).min(upto[i]);
                patch_ok(s, &locs[i], offs[i], &file[start + offs[i]..start + end]).await;
                offs[i] = end;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
}

/// Partials of `file` cut at `cuts`, all created before the final that
/// lists them (concatenation-unfinished, as `imgapi publish --parallel`
/// does), then PATCHed round-robin: written in place, nothing copied; a
/// kill -9 in the middle (with `kill`) then every partial resumes from
/// its acknowledged offset; the final completes with the file's digests
/// and registers.
async fn in_place(mut s: Server, file: Vec<u8>, cuts: &[usize], kill: bool) {
    let mut bounds = Vec::new();
    let mut prev = 0;
    for c in cuts.iter().copied().chain([file.len()]) {
        bounds.push((prev, c));
        prev = c;
    }
    let mut locs = Vec::new();
    for (a, b) in &bounds {
        locs.push(partial(&s, b - a, LUKE).await);
    }
    let (st, loc, v) = final_of(&s, &locs, LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = loc.unwrap();
    let (_, off, _) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!(off, Some(0));
    let lens: Vec<usize> = bounds.iter().map(|(a, b)| b - a).collect();
    let mut offs = vec![0; locs.len()];
    // About half of each partial, round-robin.
    let half: Vec<usize> = lens.iter().map(|l| l / 2 + 1).collect();
    patch_round_robin(&s, &file, &locs, &bounds, &mut offs, &half, 512 * KIB).await;
    for l in &locs {
        assert_own_file_empty(&s, l);
    }
    // Nothing complete: the final's offset is still 0. A partial written
    // in place shows no CRC (its bytes are hashed as the final's only).
    let (_, off, h) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!(off, Some(0));
    assert_eq!(h["upload-crc64nvme"], crc_b64(b"").as_str());
    let (_, _, h) = s.tus_head(&format!("{}?account={LUKE}", locs[0])).await;
    assert!(h.get("upload-crc64nvme").is_none(), "{h:?}");
    if kill {
        s.restart_hard().await;
        for (l, o) in locs.iter().zip(&offs) {
            let (st, off, h) = s.tus_head(&format!("{l}?account={LUKE}")).await;
            assert_eq!((st, off), (200, Some(*o as u64)), "{l} after kill -9");
            assert_eq!(h["upload-concat"], "partial");
        }
    }
    // The first partial done: the final's offset is its length.
    let first = vec![lens[0]; 1];
    patch_round_robin(
        &s,
        &file,
        &locs[..1],
        &bounds[..1],
        &mut offs[..1],
        &first,
        512 * KIB,
    )
    .await;
    let (_, v) = info(&s, &fin).await;
    assert_eq!(v["offset"], lens[0], "{v}");
    assert_eq!(v["state"], "uploading");
    let (_, _, h) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!(h["upload-crc64nvme"], crc_b64(&file[..lens[0]]).as_str());
    patch_round_robin(&s, &file, &locs, &bounds, &mut offs, &lens, 512 * KIB).await;
    let (st, v) = info(&s, &fin).await;
    assert_eq!(st, 200);
    assert_eq!(v["state"], "complete", "{v}");
    assert_eq!(v["offset"], file.len());
    assert_eq!(v["sha1"], sha1_hex(&file));
    assert_eq!(v["content_md5"], md5_b64(&file));
    let (_, _, h) = s.tus_head(&format!("{fin}?account={LUKE}")).await;
    assert_eq!(h["upload-crc64nvme"], crc_b64(&file).as_str());
    for l in &locs {
        assert_eq!(info(&s, l).await.0, 404);
    }
    assert_eq!(bytes_copied(&s).await, 0, "bytes copied from partials");
    register_and_fetch(&s, &fin, &file).await;
}

#[tokio::test]
async fn final_first_partials_write_in_place() {
    let s = Server::start().await;
    let file = data(3 * 1024 * KIB + 333, 31);
    in_place(s, file, &[1024 * KIB + 7, 2 * 1024 * KIB + 100], false).await;
}

#[tokio::test]
async fn final_first_kill_mid_partials_then_resume() {
    let s = Server::spawn().await;
    let file = data(3 * 1024 * KIB + 333, 32);
    in_place(s, file, &[1024 * KIB + 7, 2 * 1024 * KIB + 100], true).await;
}

/// On S3, partials whose lengths are whole 5 MiB parts (but the last):
/// each sends its own run of parts of the final's multipart upload.
#[tokio::test]
async fn s3_final_first_part_runs_with_kill() {
    let s3 = common::S3Server::start();
    let s = Server::spawn_with_config(&s3.manta_toml(5)).await;
    let mib = 1024 * KIB;
    let file = data(12 * mib + 4321, 33);
    in_place(s, file, &[5 * mib, 10 * mib], true).await;
}

/// On S3, partials cut anywhere: their bytes still go in place into the
/// final's staged bytes, and the final sends the parts in file order as
/// its prefix grows.
#[tokio::test]
async fn s3_final_first_unaligned_partials() {
    let s3 = common::S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let mib = 1024 * KIB;
    let file = data(11 * mib + 77, 34);
    in_place(s, file, &[3 * mib + 1, 7 * mib + 5], false).await;
}

/// Terminating a final whose partials write in place: a partial that had
/// written bytes into it fails (they went with it); one with none is free
/// again for another final.
#[tokio::test]
async fn terminating_an_in_place_final_fails_its_written_partials() {
    let s = Server::start().await;
    let pa = partial(&s, 1000, LUKE).await;
    let pb = partial(&s, 1000, LUKE).await;
    let (st, loc, v) = final_of(&s, &[pa.clone(), pb.clone()], LUKE).await;
    assert_eq!(st, 201, "{v}");
    let fin = loc.unwrap();
    patch_ok(&s, &pa, 0, &[7u8; 500]).await;
    assert_own_file_empty(&s, &pa);
    let r = s
        .http
        .delete(s.u(&format!("{fin}?account={LUKE}")))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, v) = info(&s, &pa).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("failed")), "{v}");
    let (st, _, v) = final_of(&s, std::slice::from_ref(&pb), LUKE).await;
    assert_eq!(st, 201, "a partial with no bytes is free again: {v}");
}
