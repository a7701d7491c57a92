//! Channels (behaviours 53–60 of the reference): ListChannels, the `channel`
//! parameter, channels in image JSON by Accept-Version, ChannelAddImage and
//! per-channel DeleteImage.

use crate::common;

use common::*;
use serde_json::{Value, json};

const CHANNELS: &str = "[[channels]]\nname = \"dev\"\ndescription = \"all development builds\"\ndefault = true\n\
[[channels]]\nname = \"staging\"\ndescription = \"builds for testing in staging\"\n\
[[channels]]\nname = \"release\"\ndescription = \"release gold bits\"\n";

async fn create_in(s: &Server, name: &str, channel: Option<&str>) -> String {
    let q = channel.map(|c| format!("?channel={c}")).unwrap_or_default();
    let (st, v) = s
        .post(&format!("/images{q}"), json!({"name": name, "version": "1", "os": "smartos", "type": "zone-dataset", "owner": SDC, "public": true}))
        .await;
    assert_eq!(st, 200, "{v}");
    let u = v["uuid"].as_str().unwrap().to_string();
    let q = channel.map(|c| format!("&channel={c}")).unwrap_or_default();
    let (st, _) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none{q}"),
            vec![1, 2, 3],
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post(&format!("/images/{u}?action=activate{q}"), json!({}))
        .await;
    assert_eq!(st, 200);
    u
}

async fn get_v(s: &Server, path: &str, version: &str) -> (u16, Value) {
    let r = s
        .http
        .get(s.u(path))
        .header("accept-version", version)
        .send()
        .await
        .unwrap();
    status_json(r).await
}

#[tokio::test]
async fn channels_behaviours_53_to_60() {
    let s = Server::start_with_config(CHANNELS).await;
    // 54
    let (st, v) = s.get("/channels").await;
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(
        v[0],
        json!({"name": "dev", "description": "all development builds", "default": true})
    );
    // 58: created in the default channel, or the given one
    let indev = create_in(&s, "indevchan", None).await;
    let instaging = create_in(&s, "instagingchan", Some("staging")).await;
    let inmulti = create_in(&s, "inmultichan", Some("dev")).await;
    for c in ["staging", "release"] {
        let (st, v) = s
            .post(
                &format!("/images/{inmulti}?action=channel-add"),
                json!({"channel": c}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    // 53: channels only for Accept-Version >= 2
    let (_, v) = get_v(&s, &format!("/images/{indev}"), "~2").await;
    assert_eq!(v["channels"], json!(["dev"]));
    let (_, v) = get_v(&s, &format!("/images/{indev}"), "*").await;
    assert_eq!(v["channels"], json!(["dev"]));
    let (_, v) = get_v(&s, &format!("/images/{indev}"), "~1").await;
    assert!(v.get("channels").is_none());
    let (_, v) = s.get(&format!("/images/{indev}")).await;
    assert!(v.get("channels").is_none(), "no Accept-Version means ~1");
    let (_, v) = get_v(&s, &format!("/images/{instaging}?channel=staging"), "~2").await;
    assert_eq!(v["channels"], json!(["staging"]));
    // 55
    let (_, v) = s.get("/images").await;
    let n = names(&v);
    assert!(
        n.contains(&"indevchan".into())
            && n.contains(&"inmultichan".into())
            && !n.contains(&"instagingchan".into())
    );
    let (_, v) = s.get("/images?channel=staging").await;
    let mut n = names(&v);
    n.sort();
    assert_eq!(n, vec!["inmultichan", "instagingchan"]);
    let (_, v) = s.get("/images?channel=*").await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    // 56
    for path in [
        "/images?channel=bogus".to_string(),
        format!("/images/{indev}?channel=bogus"),
        format!("/images/{indev}/file?channel=bogus"),
    ] {
        let (st, v) = s.get(&path).await;
        assert_eq!(
            (st, v["code"].as_str(), v["errors"][0]["field"].as_str()),
            (422, Some("ValidationFailed"), Some("channel")),
            "{path}"
        );
    }
    // 57: an image outside the request's channel is 404 everywhere
    let (st, _) = s.get(&format!("/images/{instaging}")).await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&format!("/images/{instaging}/file")).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .post(
            &format!("/images/{instaging}?action=update"),
            json!({"description": "x"}),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .post(&format!("/images/{instaging}/acl"), json!([LUKE]))
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.delete(&format!("/images/{instaging}")).await;
    assert_eq!(st, 404);
    let (st, _) = s.get(&format!("/images/{instaging}?channel=*")).await;
    assert_eq!(st, 200, "* reads every channel");
    let (st, _) = s
        .post(
            &format!("/images/{instaging}?action=update&channel=*"),
            json!({"description": "x"}),
        )
        .await;
    assert_eq!(st, 422, "* is not allowed on writes");
    // 59
    let (st, v) = s
        .post(
            &format!("/images/{indev}?action=channel-add"),
            json!({"channel": "bogus"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    let (st, _) = s
        .post(
            &format!("/images/{instaging}?action=channel-add"),
            json!({"channel": "release"}),
        )
        .await;
    assert_eq!(st, 404, "not in the query channel");
    let (_, v) = get_v(&s, &format!("/images/{inmulti}"), "~2").await;
    assert_eq!(v["channels"], json!(["dev", "staging", "release"]));
    // 60: per-channel delete
    let (st, _) = s
        .delete(&format!("/images/{inmulti}?channel=release"))
        .await;
    assert_eq!(st, 204);
    let (_, v) = s.get("/images?channel=release").await;
    assert!(!names(&v).contains(&"inmultichan".into()));
    let (_, v) = s.get("/images?channel=staging").await;
    assert!(
        names(&v).contains(&"inmultichan".into()),
        "still in staging"
    );
    let (st, _) = s
        .delete(&format!("/images/{instaging}?channel=staging"))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/images/{instaging}?channel=*")).await;
    assert_eq!(st, 404, "its last channel: really gone");
    let (st, _) = s
        .delete(&format!("/images/{inmulti}?force_all_channels=true"))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/images/{inmulti}?channel=*")).await;
    assert_eq!(st, 404, "force_all_channels deletes it");
}

#[tokio::test]
async fn servers_without_channels_ignore_them() {
    let s = Server::start().await;
    let (st, _) = s.get("/channels").await;
    assert_eq!(st, 404);
    let (st, v) = s.post("/images", json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset", "owner": SDC})).await;
    assert_eq!(st, 200);
    let u = v["uuid"].as_str().unwrap();
    let (_, v) = get_v(&s, &format!("/images/{u}?channel=whatever"), "~2").await;
    assert!(v.get("channels").is_none());
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=channel-add"),
            json!({"channel": "dev"}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("InvalidParameter")),
        "no such action without channels"
    );
}
