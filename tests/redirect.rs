//! Downloads served by the object store: GetImageFile `?redirect=true`
//! answered `302 Found` to a presigned URL of the file's S3 object, against
//! the real s3s-fs server (these tests fail, not skip, without one).

use crate::common;

use common::*;
use reqwest::redirect::Policy;

/// A client that does not follow redirects (what a test must see).
fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn redirect_toml(s3: &S3Server, extra: &str) -> String {
    format!("{}\n[downloads]\n{extra}\n", s3.manta_toml(5))
}

async fn get(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url).send().await.unwrap()
}

/// With redirect on: 302 to a presigned URL that serves the exact bytes to
/// a client without credentials, then expires; `?redirect=false` and
/// requests that do not opt in stream the bytes as before.
#[tokio::test]
async fn redirect_to_presigned_url() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&redirect_toml(&s3, "redirect = true\npresign_ttl_secs = 2"))
        .await;
    // 6 MiB: a multipart object (5 MiB parts).
    let file = data(6 << 20, 71);
    let img = s.create_active(SDC, "redir", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let sha1 = img["files"][0]["sha1"].as_str().unwrap().to_string();
    assert_eq!(sha1, sha1_hex(&file));
    let c = no_follow();

    let r = get(&c, &s.u(&format!("/images/{u}/file?redirect=true"))).await;
    assert_eq!(r.status(), 302);
    let h = r.headers().clone();
    assert_eq!(h["content-md5"], md5_b64(&file).as_str());
    assert_eq!(h["etag"], format!("\"{sha1}\"").as_str());
    assert!(h.contains_key("last-modified"));
    assert_eq!(h["cache-control"], "no-store");
    let loc = h["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&s3.endpoint), "{loc}");
    assert!(loc.contains("X-Amz-Signature="), "{loc}");

    // HEAD is redirected the same way.
    let r = c
        .head(s.u(&format!("/images/{u}/file?redirect=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers().contains_key("location"));

    // Following with no credentials: the exact bytes, from the store.
    let r = get(&c, &loc).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(!r.headers().contains_key("content-md5"));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), file.len());
    assert_eq!(sha1_hex(&body), sha1);
    // Range against the URL.
    let r = c
        .get(&loc)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), file[100..200].to_vec());

    // A following client (reqwest's default policy) gets the bytes too.
    let r = get(
        &reqwest::Client::new(),
        &s.u(&format!("/images/{u}/file?redirect=true")),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1);

    // curl -L follows it.
    if let Ok(out) = std::process::Command::new("curl")
        .args(["-sSL", "--fail"])
        .arg(s.u(&format!("/images/{u}/file?redirect=true")))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sha1_hex(&out.stdout), sha1);
    }

    // Not asked for, or refused: the bytes as before, with Content-MD5.
    for q in ["", "?redirect=false"] {
        let r = get(&c, &s.u(&format!("/images/{u}/file{q}"))).await;
        assert_eq!(r.status(), 200, "{q}");
        assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
        assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1);
    }
    // A cached copy is still answered 304 first.
    let r = c
        .get(s.u(&format!("/images/{u}/file?redirect=true")))
        .header("if-none-match", format!("\"{sha1}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Unknown values are 422 naming the parameter.
    for bad in ["yes", "", "1"] {
        let r = get(&c, &s.u(&format!("/images/{u}/file?redirect={bad}"))).await;
        let (st, v) = status_json(r).await;
        assert_eq!(st, 422, "{bad:?}: {v}");
        assert_eq!(v["code"], "InvalidParameter");
        assert_eq!(v["errors"][0]["field"], "redirect");
    }

    // The URL expires: the store refuses it afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = get(&c, &loc).await;
    assert_eq!(r.status(), 403);
}

/// Files that live in the local store are never redirected.
#[tokio::test]
async fn local_files_are_not_redirected() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&redirect_toml(&s3, "redirect = true")).await;
    let img = s
        .create(
            None,
            serde_json::json!({"name": "loc", "version": "1", "os": "smartos",
                "type": "zone-dataset", "owner": SDC, "public": true}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let file = data(100_000, 72);
    let (st, v) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none&storage=local"),
            file.clone(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s.get(&format!("/images/{u}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], "local");
    let r = get(
        &no_follow(),
        &s.u(&format!("/images/{u}/file?redirect=true")),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
}

/// With redirect off (the default), `?redirect=true` changes nothing.
#[tokio::test]
async fn redirect_off_by_default() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let file = data(200_000, 73);
    let img = s.create_active(SDC, "noredir", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    for q in ["", "?redirect=true", "?redirect=false"] {
        let r = get(&no_follow(), &s.u(&format!("/images/{u}/file{q}"))).await;
        assert_eq!(r.status(), 200, "{q}");
        assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
        assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&file));
    }
    // The parameter is still checked.
    let (st, v) =
        status_json(get(&no_follow(), &s.u(&format!("/images/{u}/file?redirect=no"))).await).await;
    assert_eq!(st, 422, "{v}");
}

/// What sdc-clients (which never follows redirects nor sends `redirect`)
/// sees from a server with redirect on: the bytes, with the Content-MD5 its
/// `getImageFile` requires. Node.js and tests/node/node_modules are needed.
#[tokio::test]
async fn sdc_clients_get_the_bytes_with_redirect_on() {
    let s3 = S3Server::start();
    let s = Server::start_with_config(&redirect_toml(&s3, "redirect = true")).await;
    let file = data(3 << 20, 74);
    let img = s.create_active(SDC, "node", true, &file).await;
    let u = img["uuid"].as_str().unwrap().to_string();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("file.bin");
    let script = r#"
        var IMGAPI = require('sdc-clients/lib/imgapi');
        var c = IMGAPI.createClient({url: process.env.IMGAPI_URL, agent: false});
        c.getImageFile(process.env.UUID, process.env.OUT, function (err, res) {
            if (err) {
                console.log('error ' + err.name + ': ' + err.message);
                process.exit(2);
            }
            console.log('status ' + res.statusCode + ' md5 ' + res.headers['content-md5']);
            c.close();
        });
    "#;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let node_dir = root.join("tests/node");
    assert!(
        node_dir
            .join("node_modules/sdc-clients/package.json")
            .is_file(),
        "tests/node/node_modules is missing (run npm ci there)"
    );
    let run = tokio::process::Command::new("node")
        .args(["-e", script])
        .current_dir(&node_dir)
        .env("IMGAPI_URL", &s.url)
        .env("UUID", &u)
        .env("OUT", &out)
        .kill_on_drop(true)
        .output();
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("node did not finish in 60 s")
        .expect("cannot run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(stdout.trim(), format!("status 200 md5 {}", md5_b64(&file)));
    assert_eq!(sha1_hex(&std::fs::read(&out).unwrap()), sha1_hex(&file));
}
