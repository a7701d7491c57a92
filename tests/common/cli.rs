//! Helpers for tests of the client verbs: the `imgapi` binary run as a
//! client against a server, its JSON output, and what the server saw.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The client, run against `url` with its state in `state`.
pub fn imgapi(url: &str, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgapi"));
    c.env("IMGAPI_URL", url)
        .env("IMGAPI_STATE_DIR", state)
        .env("IMGAPI_RETRIES", "8")
        .env_remove("IMGAPI_TOKEN")
        .env_remove("IMGAPI_ACCOUNT")
        .env_remove("IMGAPI_CLIENT_TEST_ABORT_AFTER_BYTES")
        .env_remove("IMGAPI_CLIENT_TEST_PAUSE_AFTER_BYTES");
    c
}

pub fn stdout_json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// The server's count of request body bytes received (`/metrics`).
pub async fn bytes_in(url: &str) -> u64 {
    let t = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix("imgapi_http_request_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("imgapi_http_request_bytes_total") as u64
}

/// The file of image `uuid` as the server serves it.
pub async fn served(url: &str, uuid: &str) -> Vec<u8> {
    let r = reqwest::get(format!("{url}/images/{uuid}/file"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}
