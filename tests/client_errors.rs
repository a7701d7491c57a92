//! What the client says when something is wrong, as a user reads it: the
//! exact stderr of each error path a first hour meets (an address nobody
//! listens on, a URL that is no server's or has a path, no account in the
//! default mode, a token of another server or none, a file changed since
//! its interrupted upload), each naming what was wrong and what to do next.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;

use common::cli::*;
use common::*;
use serde_json::json;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A web server that is not imgapi: every request gets a plain-text 404.
fn other_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n\
                  content-length: 9\r\nconnection: close\r\n\r\nnot found",
            );
        }
    });
    url
}

fn zone_manifest(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("m.json");
    let m = json!({"v": 2, "name": "first", "version": "1.0.0", "os": "smartos",
                   "type": "zone-dataset"});
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

fn gz(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut d = data(n, 3);
    d[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
    let p = dir.join("image.zfs.gz");
    std::fs::write(&p, &d).unwrap();
    p
}

#[tokio::test]
async fn addresses_that_are_no_imgapi_server_are_named_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");

    // Nobody listens there.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = imgapi(&url, &st)
        .args(["images", "list", "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: list images failed after 1 attempt(s): cannot connect to \
             127.0.0.1:{port}: Connection refused (os error 111)\n\
             imgapi: is the imgapi server running at {url}? Start it with `imgapi serve`, \
             or give its address with --url or IMGAPI_URL\n"
        )
    );

    // Not a URL at all.
    let out = imgapi("127.0.0.1:8080", &st)
        .args(["images", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "imgapi: invalid --url (IMGAPI_URL) \"127.0.0.1:8080\": relative URL without a base; \
         give the server's address, e.g. http://127.0.0.1:8080\n"
    );

    // Another web server.
    let other = other_server();
    let out = imgapi(&other, &st)
        .args(["images", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: HTTP404: not found (HTTP 404)\n\
             imgapi: {other} answered HTTP 404 without an IMGAPI error: is it the imgapi \
             server? Give the server's address (scheme, host and port, e.g. \
             http://127.0.0.1:8080) with --url or IMGAPI_URL\n"
        )
    );

    // The server's address with a path.
    let s = Server::start().await;
    let out = imgapi(&format!("{}/imgapi", s.url), &st)
        .args(["images", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: ResourceNotFound: /imgapi/images does not exist (HTTP 404)\n\
             imgapi: --url (IMGAPI_URL) {}/imgapi has a path: the server answers at its \
             root; give scheme, host and port only, e.g. http://127.0.0.1:8080\n",
            s.url
        )
    );
}

#[tokio::test]
async fn publish_without_an_account_in_the_default_mode_says_whose_image_to_name() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let m = zone_manifest(tmp.path());
    let f = gz(tmp.path(), 1 << 20);
    let out = imgapi(&s.url, &st)
        .args(["publish", "-m"])
        .arg(&m)
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "imgapi: ValidationFailed: invalid image data: owner (HTTP 422)\n\
         \x20 owner: MissingParameter owner is required\n\
         imgapi: say whose image it is: --account UUID (or IMGAPI_ACCOUNT), or an \"owner\" \
         in the manifest (without an account, a server with auth = \"none\" takes a request \
         as the operator's, who owns no images)\n"
    );
    let (_, ups) = s.get("/uploads").await;
    assert_eq!(ups, json!([]), "refused before the upload");

    let out = imgapi(&s.url, &st)
        .args(["images", "list", "--account", "luke"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "imgapi: InvalidParameter: invalid \"account\": not a UUID: \"luke\" (HTTP 422)\n\
         \x20 account: Invalid\n\
         imgapi: --account (IMGAPI_ACCOUNT) must be an account's uuid\n"
    );
}

#[tokio::test]
async fn a_token_of_another_server_or_none_is_named() {
    let s = Server::start_with_config("auth = \"token\"\n").await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let m = zone_manifest(tmp.path());
    let f = gz(tmp.path(), 1 << 20);
    let out = imgapi(&s.url, &st)
        .env("IMGAPI_TOKEN", "imgapi_of_another_server")
        .args(["images", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: UnauthorizedError: invalid token (HTTP 401)\n\
             imgapi: {} does not know this token (--token or IMGAPI_TOKEN): a token works \
             only on the server that made it; an operator makes one there with \
             `imgapi account create --login NAME`\n",
            s.url
        )
    );
    let out = imgapi(&s.url, &st)
        .args(["publish", "-m"])
        .arg(&m)
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: UnauthorizedError: authentication required (HTTP 401)\n\
             imgapi: {} requires a token (its auth = \"token\"): give it with --token or \
             IMGAPI_TOKEN\n",
            s.url
        )
    );
    let (_, token) = s.account("jdoe", false);
    let seed = json!({"v": 2, "uuid": "5a0e5b8e-0f21-4a3c-9c0e-2d4b1a7f3e61", "name": "first",
                      "version": "1.0.0", "os": "smartos", "type": "zone-dataset",
                      "owner": "930896af-bf8c-48d4-885c-6573a94b1853"});
    std::fs::write(tmp.path().join("first.imgmanifest"), seed.to_string()).unwrap();
    let out = imgapi(&s.url, &st)
        .env("IMGAPI_TOKEN", &token)
        .arg("import-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "imgapi: OperatorOnly: this endpoint may only be called by an operator (HTTP 403)\n\
         imgapi: only the operator may do this: use an operator's token (an operator makes \
         one with `imgapi account create --login NAME --operator`)\n"
    );
}

#[tokio::test]
async fn a_file_changed_since_its_interrupted_upload_is_said_to_be_sent_anew() {
    let s = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("state");
    let f = gz(tmp.path(), 3 << 20);
    let args = [
        "upload",
        f.to_str().unwrap(),
        "--account",
        LUKE,
        "--chunk-mib",
        "1",
    ];
    let out = imgapi(&s.url, &st)
        .args(args)
        .env(
            "IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES",
            (1 << 20).to_string(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, old) = s.get(&format!("/uploads?account={LUKE}")).await;
    let old = old[0]["id"].as_str().unwrap().to_string();
    let mut d = std::fs::read(&f).unwrap();
    d[10] ^= 1;
    std::fs::write(&f, &d).unwrap();
    let out = imgapi(&s.url, &st).args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "imgapi: {} changed since its upload {old} was interrupted (its size or \
             modification time differ): that upload is ended and the file is sent anew \
             from byte 0\n",
            std::fs::canonicalize(&f).unwrap().display()
        )
    );
    let (_, now) = s.get(&format!("/uploads?account={LUKE}")).await;
    assert_eq!(now.as_array().unwrap().len(), 1, "{now}");
    assert_ne!(now[0]["id"], old.as_str());
}
