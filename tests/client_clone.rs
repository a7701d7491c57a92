//! `imgapi images clone UUID`: CloneImage from the command line, for the
//! account of `--account` (or of the token).

use crate::common;
use crate::common::Api;

use common::cli::{imgapi, served, stdout_json};
use common::{LUKE, Server, VADER, data};
use serde_json::json;

#[tokio::test]
async fn images_clone_gives_the_account_its_own_copy() {
    let s = Server::start().await;
    let st = tempfile::tempdir().unwrap();
    let bytes = data(200_000, 21);
    let src = s.create_active(VADER, "cli-clone", false, &bytes).await;
    let uuid = src["uuid"].as_str().unwrap();
    let (code, v) = s
        .post(&format!("/images/{uuid}/acl?action=add"), json!([LUKE]))
        .await;
    assert_eq!(code, 200, "{v}");

    // The owner's own image is not shared with it: the server's refusal,
    // exit 1, its code on stderr.
    let out = imgapi(&s.url, st.path())
        .args(["images", "clone", uuid, "--account", VADER])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ImageNotShared"),
        "{out:?}"
    );
    // Not a uuid: refused before any request (usage, exit 2).
    let out = imgapi(&s.url, st.path())
        .args(["images", "clone", "nope", "--account", LUKE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let v = stdout_json(
        &imgapi(&s.url, st.path())
            .args(["images", "clone", uuid, "--account", LUKE, "--json"])
            .output()
            .unwrap(),
    );
    let clone = v["uuid"].as_str().unwrap();
    assert_ne!(clone, uuid);
    assert_eq!(v["owner"], LUKE);
    assert_eq!(v["state"], "active");
    assert_eq!(v["name"], "cli-clone");
    assert_eq!(v["files"], src["files"]);
    assert!(served(&s.url, clone).await == bytes);
}
