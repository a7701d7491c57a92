//! Wire compatibility with Triton's real Node.js IMGAPI client.
//!
//! Runs `tests/node/conformance.js`, which drives the server with
//! `sdc-clients` (the version pinned in `tests/node/package-lock.json`).
//! Node.js and npm are required: without them this test fails, it does not
//! skip.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Make sure `tests/node/node_modules` holds the pinned client; run
/// `npm ci` if it does not.
async fn ensure_node_modules(node_dir: &Path) {
    if node_dir
        .join("node_modules/sdc-clients/package.json")
        .is_file()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(node_dir)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run npm (is Node.js/npm installed?): {e}"));
    assert!(
        out.status.success(),
        "`npm ci` in {} failed ({}):\n{}\n{}",
        node_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        node_dir
            .join("node_modules/sdc-clients/package.json")
            .is_file(),
        "`npm ci` succeeded but node_modules/sdc-clients is missing"
    );
}

#[tokio::test]
async fn sdc_clients_imgapi_conformance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node_dir = root.join("tests/node");
    ensure_node_modules(&node_dir).await;

    let s = common::Server::start().await;
    // The source of the import-remote check.
    let source = common::Server::start().await;
    let run = Command::new("node")
        .arg("tests/node/conformance.js")
        .current_dir(root)
        .env("IMGAPI_URL", &s.url)
        .env("IMGAPI_SOURCE_URL", &source.url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // The script has its own 60 s limit; this is a backstop.
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("conformance.js did not finish within 120 s")
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "conformance.js failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
