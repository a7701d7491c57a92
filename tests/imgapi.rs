//! IMGAPI behaviours over real HTTP against the running server. Numbers in
//! test names refer to the behaviours of `shared/reference/imgapi.md` §8.

use crate::common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn b01_b03_ping() {
    let s = Server::start().await;
    let (st, v) = s.get("/ping").await;
    assert_eq!(st, 200);
    assert_eq!(v["ping"], "pong");
    assert!(v["pid"].is_number() && v["version"].is_string());

    let r = s
        .http
        .get(s.u("/ping?error=ValidationFailed"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("server").is_some());
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert_eq!(v["errors"], json!([]));

    let (st, v) = s.get("/ping?error=NoSuch").await;
    assert_eq!((st, v["code"].as_str()), (422, Some("InvalidParameter")));
    assert_eq!(v["errors"][0], json!({"field": "error", "code": "Missing"}));
}

#[tokio::test]
async fn every_response_has_standard_headers_and_echoes_request_id() {
    let s = Server::start().await;
    let r = s
        .http
        .get(s.u("/images"))
        .header("x-request-id", "my-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-req-42");
    for h in ["server", "x-response-time", "date", "x-server-name"] {
        assert!(r.headers().get(h).is_some(), "{h}");
    }
    assert!(
        r.headers()["server"]
            .to_str()
            .unwrap()
            .starts_with("imgapi/")
    );
    let r = s.http.get(s.u("/images/nope")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a new uuid when the client sent none");
}

#[tokio::test]
async fn b05_b07_list_and_unknown_image() {
    let s = Server::start().await;
    let (st, v) = s.get("/images").await;
    assert_eq!(st, 200);
    assert!(v.is_array());
    let (st, v) = s.get("/images/3560c262-fc65-0242-a446-7c6d1fb482e3").await;
    assert_eq!((st, v["code"].as_str()), (404, Some("ResourceNotFound")));
    assert!(!v["message"].as_str().unwrap().is_empty());
    // a non-uuid path is the same 404
    let (st, v) = s.get("/images/not-a-uuid").await;
    assert_eq!((st, v["code"].as_str()), (404, Some("ResourceNotFound")));
}

/// Behaviours 6, 9–25: the life of one image, as image-basics.dc-test.js.
#[tokio::test]
async fn b09_b25_image_basics() {
    let s = Server::start().await;
    let img = s
        .create(
            Some(LUKE),
            json!({"v": 2, "name": "what-a_piece.of junk", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "public": true,
                "requirements": {"min_platform": {"7.0": "20130308T102805Z"}, "brand": "joyent"},
                "billing_tags": ["tag1"], "traits": {"foo": "bar"}, "tags": {"key": "value"},
                "homepage": "https://example.com/junk", "eula": "http://example.com/eula"}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    assert_eq!(img["state"], "unactivated");
    assert_eq!(img["owner"], LUKE);
    assert!(
        img.get("acl").is_none() && img.get("icon").is_none(),
        "empty fields omitted: {img}"
    );

    // 10: AddImageFile with sha1 and dataset_guid
    let file = data(1_234_567, 1);
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=bzip2&sha1={}&dataset_guid=9080214691143124906&account={LUKE}", sha1_hex(&file)),
            file.clone(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(v["files"][0]["size"], file.len());
    assert_eq!(v["files"][0]["dataset_guid"], "9080214691143124906");
    assert!(v["files"][0].get("stor").is_none());

    // 11
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=activate&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("active")));
    assert!(v["published_at"].is_string());

    // 12
    let (_, v) = s
        .post(
            &format!("/images/{uuid}?action=disable&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!(
        (v["disabled"].as_bool(), v["state"].as_str()),
        (Some(true), Some("disabled"))
    );
    let (_, v) = s
        .post(
            &format!("/images/{uuid}?action=enable&account={LUKE}"),
            json!({}),
        )
        .await;
    assert_eq!(
        (v["disabled"].as_bool(), v["state"].as_str()),
        (Some(false), Some("active"))
    );

    // 13
    let (_, v) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(v["tags"]["key"], "value");

    // 14: update replaces tags wholesale and keeps value types
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=update&account={LUKE}"),
            json!({"version": "1.1.0", "description": "a description",
                   "tags": {"str": "bar", "num": 42, "bool": true, "bool2": false}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], "1.1.0");
    assert_eq!(v["description"], "a description");
    assert_eq!(
        v["tags"],
        json!({"str": "bar", "num": 42, "bool": true, "bool2": false})
    );

    // 15, 16: If-Match
    let r = s
        .http
        .post(s.u(&format!("/images/{uuid}?action=update")))
        .header("if-match", "abcdef")
        .json(&json!({"version": "1.2.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}")))
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = s
        .http
        .post(s.u(&format!("/images/{uuid}?action=update")))
        .header("if-match", &etag)
        .json(&json!({"version": "1.2.0"}))
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["version"].as_str()), (200, Some("1.2.0")));

    // 17: ACL
    let (_, v) = s
        .post(&format!("/images/{uuid}/acl?account={LUKE}"), json!([LUKE]))
        .await;
    assert_eq!(v["acl"][0], LUKE);
    let (_, v) = s
        .post(
            &format!("/images/{uuid}/acl?action=add"),
            json!([LUKE, LUKE]),
        )
        .await;
    assert_eq!(v["acl"], json!([LUKE]), "duplicates ignored");
    let (_, v) = s
        .post(
            &format!("/images/{uuid}/acl?action=remove&account={LUKE}"),
            json!([LUKE]),
        )
        .await;
    assert!(v.get("acl").is_none(), "{v}");

    // 18: icon
    let icon = data(5000, 2);
    let r = s
        .http
        .put(s.u(&format!(
            "/images/{uuid}/icon?sha1={}&account={LUKE}",
            sha1_hex(&icon)
        )))
        .header("content-type", "image/jpeg")
        .body(icon.clone())
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["icon"].as_bool()), (200, Some(true)), "{v}");

    // 19: a public image looks the same to another account
    let (_, as_luke) = s.get(&format!("/images/{uuid}?account={LUKE}")).await;
    let (st, as_vader) = s.get(&format!("/images/{uuid}?account={VADER}")).await;
    assert_eq!(st, 200);
    assert_eq!(as_luke, as_vader);

    // 6, 20: admin fields
    let (_, v) = s.get(&format!("/images/{uuid}?inclAdminFields=true")).await;
    assert_eq!(v["files"][0]["stor"], classic_stor());
    let (_, v) = s.get("/images?inclAdminFields=true").await;
    assert!(v[0]["files"][0]["stor"].is_string());

    // 21: GetImageFile
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-md5"], md5_b64(&file).as_str());
    assert_eq!(
        r.headers()["content-length"],
        file.len().to_string().as_str()
    );
    assert!(r.headers().get("last-modified").is_some());
    let body = r.bytes().await.unwrap();
    assert_eq!(sha1_hex(&body), sha1_hex(&file));

    // 22: GetImageIcon
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/icon")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-md5"], md5_b64(&icon).as_str());
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(sha1_hex(&r.bytes().await.unwrap()), sha1_hex(&icon));

    // 23: DeleteImageIcon
    let (st, v) = s
        .delete(&format!("/images/{uuid}/icon?account={VADER}"))
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotImageOwner")));
    let (st, v) = s
        .delete(&format!("/images/{uuid}/icon?account={LUKE}"))
        .await;
    assert_eq!(st, 200);
    assert!(v.get("icon").is_none());
    let (st, _) = s.get(&format!("/images/{uuid}/icon")).await;
    assert_eq!(st, 404);

    // 24: operator sets state failed
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=update"),
            json!({"state": "failed", "error": {"message": "could not publish"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "failed");
    assert_eq!(v["error"]["message"], "could not publish");

    // 25
    let (st, _) = s.delete(&format!("/images/{uuid}?account={LUKE}")).await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(st, 404);
    let files: Vec<_> = walk(&classic_files_dir(&s.data_dir()));
    assert!(files.is_empty(), "deleted image left files: {files:?}");
}

/// The fixtures of images-as-a-user.dc-test.js. Returns name → uuid.
async fn load_fixtures(s: &Server) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    // (name, version, owner, public, state, acl)
    type Fixture<'a> = (&'a str, &'a str, &'a str, bool, &'a str, &'a [&'a str]);
    let fixtures: &[Fixture] = &[
        ("base", "1.8.1", SDC, true, "active", &[]),
        ("nodejs", "1.0.0", SDC, true, "disabled", &[]),
        ("base", "2.0.0", SDC, true, "unactivated", &[]),
        ("i-am-your-father", "0.0.1", VADER, false, "active", &[LUKE]),
        (
            "come-to-the-dark-side",
            "42.1.2",
            VADER,
            false,
            "disabled",
            &[LUKE],
        ),
        (
            "he-will-join-us-or-die",
            "1.2.3",
            VADER,
            false,
            "unactivated",
            &[EMPEROR],
        ),
    ];
    for (i, (name, version, owner, public, state, acl)) in fixtures.iter().enumerate() {
        let img = s
            .create(
                None,
                json!({"name": name, "version": version, "owner": owner, "public": public,
                       "os": "smartos", "type": "zone-dataset", "acl": acl}),
            )
            .await;
        let u = img["uuid"].as_str().unwrap().to_string();
        if *state != "unactivated" {
            let (st, v) = s
                .put_bytes(
                    &format!("/images/{u}/file?compression=none"),
                    data(1000, i as u32),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            let (st, _) = s
                .post(&format!("/images/{u}?action=activate"), json!({}))
                .await;
            assert_eq!(st, 200);
        }
        if *state == "disabled" {
            let (st, _) = s
                .post(&format!("/images/{u}?action=disable"), json!({}))
                .await;
            assert_eq!(st, 200);
        }
        m.insert(format!("{name}-{version}"), u);
    }
    m
}

/// Behaviours 26–37: ListImages and GetImage as a user.
#[tokio::test]
async fn b26_b37_images_as_a_user() {
    let s = Server::start().await;
    let fx = load_fixtures(&s).await;
    let list = |q: String| {
        let s = &s;
        async move {
            let (st, v) = s.get(&format!("/images?{q}")).await;
            assert_eq!(st, 200, "{q}: {v}");
            names(&v)
        }
    };
    // 26
    let n = list(format!("account={VADER}")).await;
    assert!(n.contains(&"i-am-your-father".into()) && n.contains(&"base".into()));
    // 27
    let n = list(format!("account={VADER}&state=all")).await;
    for x in [
        "i-am-your-father",
        "come-to-the-dark-side",
        "he-will-join-us-or-die",
        "base",
    ] {
        assert!(n.contains(&x.to_string()), "{x} in {n:?}");
    }
    // 28
    assert_eq!(
        list(format!("account={VADER}&state=disabled")).await,
        vec!["come-to-the-dark-side"]
    );
    // 29
    assert_eq!(
        list(format!("account={VADER}&state=unactivated")).await,
        vec!["he-will-join-us-or-die"]
    );
    // 30
    let mut n = list(format!("account={VADER}&state=all&public=false")).await;
    n.sort();
    assert_eq!(
        n,
        vec![
            "come-to-the-dark-side",
            "he-will-join-us-or-die",
            "i-am-your-father"
        ]
    );
    // 31
    let n = list(format!("account={VADER}&state=all&public=true")).await;
    assert!(
        !n.iter()
            .any(|x| x.contains("father") || x.contains("dark") || x.contains("die"))
    );
    // 32
    let n = list(format!("account={LUKE}")).await;
    assert!(n.contains(&"i-am-your-father".into()) && n.contains(&"base".into()));
    assert!(
        !n.contains(&"come-to-the-dark-side".into())
            && !n.contains(&"he-will-join-us-or-die".into())
    );
    // 33
    assert!(!list("type=zone-dataset".into()).await.is_empty());
    assert!(list("type=bogus".into()).await.is_empty());
    assert!(list("type=!zone-dataset".into()).await.is_empty());
    assert!(!list("os=smartos".into()).await.is_empty());
    assert!(list("os=bogus".into()).await.is_empty());
    // 34
    assert_eq!(list("name=i-am-your-father".into()).await.len(), 1);
    assert_eq!(list("name=~father".into()).await.len(), 1);
    assert_eq!(
        list("version=~42".into()).await.len(),
        0,
        "disabled is not active"
    );
    assert_eq!(list("version=~42&state=all".into()).await.len(), 1);
    // 35
    assert_eq!(
        list(format!("account={VADER}&owner={VADER}&state=all"))
            .await
            .len(),
        3
    );
    // 36
    assert_eq!(
        list(format!("account={LUKE}&owner={VADER}")).await,
        vec!["i-am-your-father"]
    );
    let n = list(format!("account={LUKE}&owner={SDC}")).await;
    assert!(n.contains(&"base".into()) && !n.contains(&"i-am-your-father".into()));

    // 37: the visibility matrix, for ListImages (state=all) and GetImage
    let matrix: &[(&str, &[&str])] = &[
        ("base-1.8.1", &[VADER, LUKE, EMPEROR, SDC]),
        ("nodejs-1.0.0", &[VADER, LUKE, EMPEROR, SDC]),
        ("base-2.0.0", &[SDC]),
        ("i-am-your-father-0.0.1", &[VADER, LUKE]),
        ("come-to-the-dark-side-42.1.2", &[VADER, LUKE]),
        ("he-will-join-us-or-die-1.2.3", &[VADER]),
    ];
    for (img, who) in matrix {
        let u = &fx[*img];
        for acct in [VADER, LUKE, EMPEROR, SDC] {
            let visible = who.contains(&acct);
            let (_, v) = s.get(&format!("/images?account={acct}&state=all")).await;
            let listed = v
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["uuid"] == u.as_str());
            assert_eq!(listed, visible, "{img} listed for {acct}");
            let (st, body) = s.get(&format!("/images/{u}?account={acct}")).await;
            assert_eq!(
                st,
                if visible { 200 } else { 404 },
                "{img} GetImage for {acct}"
            );
            if !visible {
                assert_eq!(body["code"], "ResourceNotFound");
                let (st, _) = s.get(&format!("/images/{u}/file?account={acct}")).await;
                assert_eq!(st, 404, "{img} GetImageFile for {acct}");
                let (st, _) = s
                    .post(
                        &format!("/images/{u}?action=disable&account={acct}"),
                        json!({}),
                    )
                    .await;
                assert_eq!(st, 404, "{img} invisible mutation is 404 for {acct}");
            }
        }
    }
    // Visible but foreign: mutation is NotImageOwner.
    let u = &fx["base-1.8.1"];
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=disable&account={VADER}"),
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotImageOwner")));
    let (st, v) = s.delete(&format!("/images/{u}?account={LUKE}")).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotImageOwner")));
    let (st, v) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none&account={LUKE}"),
            vec![1, 2, 3],
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NotImageOwner")));
}

#[tokio::test]
async fn list_limit_marker_sort() {
    let s = Server::start().await;
    let mut uuids = vec![];
    for i in 0..5 {
        let v = s
            .create_active(SDC, &format!("img{i}"), true, &data(10, i))
            .await;
        uuids.push(v["uuid"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (_, v) = s.get("/images").await;
    assert_eq!(
        names(&v),
        vec!["img0", "img1", "img2", "img3", "img4"],
        "published_at ascending"
    );
    let (_, v) = s.get("/images?sort=published_at.desc").await;
    assert_eq!(names(&v), vec!["img4", "img3", "img2", "img1", "img0"]);
    let (_, v) = s.get("/images?limit=2").await;
    assert_eq!(names(&v), vec!["img0", "img1"]);
    // marker is inclusive: the next 2 after img1 is limit=3&marker=img1
    let (_, v) = s.get(&format!("/images?limit=3&marker={}", uuids[1])).await;
    assert_eq!(names(&v), vec!["img1", "img2", "img3"]);
    let (_, v) = s
        .get(&format!(
            "/images?sort=published_at.desc&marker={}",
            uuids[1]
        ))
        .await;
    assert_eq!(names(&v), vec!["img1", "img0"]);
    let (_, img2) = s.get(&format!("/images/{}", uuids[2])).await;
    let (_, v) = s
        .get(&format!(
            "/images?marker={}",
            img2["published_at"].as_str().unwrap()
        ))
        .await;
    assert_eq!(names(&v), vec!["img2", "img3", "img4"]);
    let (st, _) = s
        .get("/images?marker=3560c262-fc65-0242-a446-7c6d1fb482e3")
        .await;
    assert_eq!(st, 404);
    let (_, v) = s.get("/images?limit=0").await;
    assert_eq!(v, json!([]));
    // tags and billing tags
    let img = s
        .create(
            None,
            json!({"name": "tagged", "version": "1", "os": "linux", "type": "other", "owner": SDC,
            "tags": {"role": "db", "n": 7}, "billing_tags": ["gold", "big"]}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    s.put_bytes(&format!("/images/{u}/file?compression=none"), vec![1])
        .await;
    s.post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    let (_, v) = s.get("/images?tag.role=db&tag.n=7").await;
    assert_eq!(names(&v), vec!["tagged"]);
    let (_, v) = s.get("/images?tag.role=web").await;
    assert_eq!(v, json!([]));
    let (_, v) = s.get("/images?tag.role=").await;
    assert_eq!(names(&v), vec!["tagged"], "empty value = key present");
    let (_, v) = s.get("/images?billing_tag=gold&billing_tag=big").await;
    assert_eq!(names(&v), vec!["tagged"]);
    let (_, v) = s.get("/images?billing_tag=gold&billing_tag=silver").await;
    assert_eq!(v, json!([]));
}

/// Behaviour 70: ListImages parameter errors.
#[tokio::test]
async fn b70_list_errors() {
    let s = Server::start().await;
    for (q, field) in [
        ("state=bogus", "state"),
        ("sort=name", "sort"),
        ("marker=notadate", "marker"),
        ("limit=abc", "limit"),
    ] {
        let (st, v) = s.get(&format!("/images?{q}")).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (422, Some("InvalidParameter")),
            "{q}"
        );
        assert_eq!(v["errors"][0]["field"], field, "{q}");
        assert_eq!(v["errors"][0]["code"], "Invalid");
    }
    let (st, v) = s.get("/images?account=nope").await;
    assert_eq!(
        (st, v["errors"][0]["field"].as_str()),
        (422, Some("account"))
    );
}

/// Behaviours 38–42: AdminImportImage.
#[tokio::test]
async fn b38_b42_admin_import() {
    let s = Server::start().await;
    let u = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
    let manifest = json!({
        "v": 2, "uuid": u, "owner": "352971aa-31ba-496c-9ade-a379feaecd52",
        "name": "fauxnodejs", "version": "1.4.0", "state": "active", "disabled": false, "public": true,
        "published_at": "2012-10-11T23:50:24Z", "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": "d0b1a4e6a0b5e3a6c9a1d7c1f5e0a9c2d5b4a3e2", "size": 3, "compression": "bzip2"}],
        "description": "faux node", "urn": "sdc:sdc:fauxnodejs:1.4.0",
        "requirements": {"networks": [{"name": "net0", "description": "public"}]},
        "inherited_directories": ["/opt/local"], "billing_tags": ["sm-nodejs"]
    });
    // 38
    let (st, v) = s
        .post(
            &format!("/images/{u}?action=import&account={LUKE}"),
            manifest.clone(),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("OperatorOnly")));
    assert!(v["message"].is_string());
    // 8: bogus uuid
    let (st, v) = s
        .post("/images/3dae5131?action=import", manifest.clone())
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("ResourceNotFound")));
    // 39
    let (st, v) = s
        .post(
            "/images/3560c262-fc65-0242-a446-7c6d1fb482e3?action=import",
            manifest.clone(),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("InvalidParameter")));
    assert_eq!(v["errors"].as_array().unwrap().len(), 1);
    assert_eq!(v["errors"][0]["field"], "uuid");
    // 41
    let (st, v) = s
        .post(&format!("/images/{u}?action=import"), manifest.clone())
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["uuid"], u);
    assert_eq!(v["published_at"], "2012-10-11T23:50:24Z");
    assert_eq!(v["state"], "unactivated");
    assert_eq!(v["inherited_directories"], json!(["/opt/local"]));
    assert_eq!(v["billing_tags"], json!(["sm-nodejs"]));
    assert_eq!(v["files"], json!([]));
    // 40
    let (st, v) = s
        .post(&format!("/images/{u}?action=import"), manifest.clone())
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("ImageUuidAlreadyExists"))
    );
    let file = data(4096, 9);
    let (st, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=bzip2"), file.clone())
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(v["files"][0]["size"], 4096);
    let (st, v) = s
        .post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("active")));
    assert_eq!(
        v["published_at"], "2012-10-11T23:50:24Z",
        "import keeps published_at"
    );

    // 42: v1 dsmanifests
    let ds = "7b0b4140-6e98-11e2-bdc8-4f8b3b8ee1c9";
    let dsm = json!({
        "name": "fauxubuntu", "version": "1.0.0", "type": "zvol", "os": "linux",
        "uuid": ds, "creator_uuid": "352971aa-31ba-496c-9ade-a379feaecd52",
        "vendor_uuid": "352971aa-31ba-496c-9ade-a379feaecd52", "creator_name": "sdc",
        "platform_type": "smartos", "cloud_name": "sdc", "urn": "sdc:sdc:fauxubuntu:1.0.0",
        "created_at": "2013-01-25T17:27:13.626Z", "updated_at": "2013-01-25T17:27:13.626Z",
        "published_at": "2013-01-25T17:27:13.626Z",
        "files": [{"path": "fauxubuntu-1.0.0.zfs.bz2", "sha1": "ab", "size": 3, "url": "https://x/file"}],
        "requirements": {"networks": [{"name": "net0", "description": "public"}], "ssh_key": true},
        "nic_driver": "virtio", "disk_driver": "virtio", "cpu_type": "host", "image_size": 10240
    });
    let (st, v) = s
        .post(
            &format!("/images/{ds}?action=import&skip_owner_check=true"),
            dsm,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["v"], 2);
    assert_eq!(v["uuid"], ds);
    assert_eq!(v["owner"], "352971aa-31ba-496c-9ade-a379feaecd52");
    assert_eq!(v["published_at"], "2013-01-25T17:27:13.626Z");
    assert_eq!(v["disk_driver"], "virtio");
    assert!(v.get("created_at").is_none() && v.get("creator_uuid").is_none());
}

/// Behaviours 61–65: CreateImage validation.
#[tokio::test]
async fn b61_b65_create_validation() {
    let s = Server::start().await;
    let base = json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset", "owner": LUKE});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    // 61
    let (st, v) = s.post("/images", with("state", json!("active"))).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    assert_eq!(
        v["errors"],
        json!([{"field": "state", "code": "NotAllowed", "message": "Parameter cannot be set"}])
    );
    // 62
    let (st, v) = s.post("/images", with("foo", json!(1))).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("InvalidParameter")));
    assert_eq!(v["message"], "invalid extra parameters: \"foo\"");
    assert_eq!(v["errors"], json!([{"field": "foo", "code": "Invalid"}]));
    // 63
    let mut b = base.clone();
    b.as_object_mut().unwrap().remove("name");
    let (st, v) = s.post("/images", b).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ValidationFailed")));
    assert_eq!(v["message"], "invalid image data: name");
    assert_eq!(v["errors"][0]["field"], "name");
    assert_eq!(v["errors"][0]["code"], "MissingParameter");
    let (_, v) = s.post("/images", with("os", json!("amiga"))).await;
    assert_eq!(
        (
            v["errors"][0]["field"].as_str(),
            v["errors"][0]["code"].as_str()
        ),
        (Some("os"), Some("Invalid"))
    );
    let (_, v) = s.post("/images", with("type", json!("zvol"))).await;
    let errs = v["errors"].as_array().unwrap();
    assert!(
        errs.iter()
            .any(|e| e["field"] == "nic_driver" && e["code"] == "MissingParameter"),
        "{v}"
    );
    let (_, v) = s.post("/images", with("name", json!("bad!name"))).await;
    assert_eq!(v["errors"][0]["field"], "name");
    let (_, v) = s.post("/images", with("homepage", json!("ftp://x"))).await;
    assert_eq!(v["errors"][0]["field"], "homepage");
    let (_, v) = s.post("/images", with("acl", json!(["nope"]))).await;
    assert_eq!(v["errors"][0]["field"], "acl");
    // 64
    let (st, v) = s
        .post(&format!("/images?account={VADER}"), base.clone())
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("InvalidParameter")));
    assert_eq!(v["errors"], json!([{"field": "owner", "code": "Invalid"}]));
    let (_, v) = s.post("/images?account=notauuid", base.clone()).await;
    assert_eq!(
        v["errors"],
        json!([{"field": "account", "code": "Invalid"}])
    );
    // 65
    let (st, v) = s
        .post(
            "/images",
            with("origin", json!("3560c262-fc65-0242-a446-7c6d1fb482e3")),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("OriginDoesNotExist")));
    // name with spaces, _ and . is fine (9); v defaults to 2
    let mut b = base.clone();
    b["name"] = json!("what-a_piece.of junk");
    let (st, v) = s.post("/images", b).await;
    assert_eq!((st, v["v"].as_u64()), (200, Some(2)));
    // bad JSON is a clear 400, InvalidContent like IMGAPI (restify)
    let r = s
        .http
        .post(s.u("/images"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("InvalidContent")));
}

/// Behaviours 66–69, 71, 73: activation, files, actions, deletion.
#[tokio::test]
async fn b66_b73_lifecycle_errors() {
    let s = Server::start().await;
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    // 73: unactivated with no file
    let (st, v) = s.get(&format!("/images/{u}/file")).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("ResourceNotFound")));
    // 66
    let (st, v) = s
        .post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("NoActivationNoFile")));
    // 67: AddImageFile errors
    let (st, v) = s.put_bytes(&format!("/images/{u}/file"), vec![1, 2]).await;
    assert_eq!((st, v["code"].as_str()), (422, Some("InvalidParameter")));
    assert_eq!(
        v["errors"],
        json!([{"field": "compression", "code": "Missing"}])
    );
    let (_, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=zip"), vec![1, 2])
        .await;
    assert_eq!(
        v["errors"][0],
        json!({"field": "compression", "code": "Invalid"})
    );
    let (_, v) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none&storage=local&account={LUKE}"),
            vec![1],
        )
        .await;
    assert_eq!(
        v["errors"][0],
        json!({"field": "storage", "code": "NotAllowed"})
    );
    let (st, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=none"), vec![])
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("Download")));
    let (st, v) = s
        .put_bytes(
            &format!(
                "/images/{u}/file?compression=none&sha1=0000000000000000000000000000000000000000"
            ),
            vec![1, 2, 3],
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("Download")));
    // Nothing was stored by the failed uploads, and the manifest is untouched.
    let (_, v) = s.get(&format!("/images/{u}")).await;
    assert_eq!(v["files"], json!([]));
    assert!(
        walk(&classic_files_dir(&s.data_dir())).is_empty(),
        "failed uploads left files behind"
    );
    // A good file, then a failed replacement keeps the good one.
    let good = data(10_000, 3);
    let (st, _) = s
        .put_bytes(&format!("/images/{u}/file?compression=none"), good.clone())
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .put_bytes(
            &format!("/images/{u}/file?compression=none&sha1=00"),
            data(500, 4),
        )
        .await;
    assert_eq!(st, 400);
    let (_, v) = s.get(&format!("/images/{u}")).await;
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&good));
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), good);
    assert_eq!(walk(&classic_files_dir(&s.data_dir())).len(), 1);
    // 73: If-None-Match: sha1 → 304
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .header("if-none-match", sha1_hex(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // 66: activate twice
    let (st, _) = s
        .post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("ImageAlreadyActivated"))
    );
    // 67: files immutable once active
    let (st, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=none"), vec![1])
        .await;
    assert_eq!((st, v["code"].as_str()), (422, Some("ImageFilesImmutable")));
    // 68
    let (st, v) = s.post(&format!("/images/{u}"), json!({})).await;
    assert_eq!(
        (st, v["errors"][0].clone()),
        (422, json!({"field": "action", "code": "MissingParameter"}))
    );
    let (_, v) = s.post(&format!("/images/{u}?action=frob"), json!({})).await;
    assert_eq!(
        v["errors"][0],
        json!({"field": "action", "code": "Invalid"})
    );
    // 71
    let (st, v) = s
        .post(&format!("/images/{u}?action=update"), json!({}))
        .await;
    assert_eq!(
        (st, v["code"].as_str(), v["errors"].clone()),
        (422, Some("ValidationFailed"), json!([]))
    );
    let (_, v) = s
        .post(
            &format!("/images/{u}?action=update"),
            json!({"uuid": "3560c262-fc65-0242-a446-7c6d1fb482e3"}),
        )
        .await;
    assert_eq!(
        (
            v["errors"][0]["field"].as_str(),
            v["errors"][0]["code"].as_str()
        ),
        (Some("uuid"), Some("NotAllowed"))
    );
    let (_, v) = s
        .post(
            &format!("/images/{u}?action=update&account={LUKE}"),
            json!({"billing_tags": ["a"]}),
        )
        .await;
    assert_eq!(
        v["errors"][0],
        json!({"field": "billing_tags", "code": "NotAllowed", "message": "Can only be updated by operators"})
    );
    let (_, v) = s
        .post(
            &format!("/images/{u}?action=update"),
            json!({"os": "amiga"}),
        )
        .await;
    assert_eq!(
        (v["code"].as_str(), v["errors"][0]["field"].as_str()),
        (Some("ValidationFailed"), Some("os"))
    );
    let (_, v) = s
        .post(
            &format!("/images/{u}?action=update"),
            json!({"description": null, "homepage": "https://h"}),
        )
        .await;
    assert_eq!(v["homepage"], "https://h");
    // 69: dependent images block deletion
    let child = s
        .create(Some(LUKE), json!({"name": "child", "version": "1", "os": "smartos", "type": "zone-dataset", "origin": u}))
        .await;
    let (st, v) = s.delete(&format!("/images/{u}")).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("ImageHasDependentImages"))
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(child["uuid"].as_str().unwrap())
    );
    let (st, _) = s
        .delete(&format!("/images/{}", child["uuid"].as_str().unwrap()))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.delete(&format!("/images/{u}")).await;
    assert_eq!(st, 204);
}

/// Behaviour 72 and icon limits.
#[tokio::test]
async fn b72_icon_errors() {
    let s = Server::start().await;
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    for (ct, len) in [("text/plain", 100), ("image/png", 131_073)] {
        let r = s
            .http
            .put(s.u(&format!("/images/{u}/icon")))
            .header("content-type", ct)
            .body(vec![0u8; len])
            .send()
            .await
            .unwrap();
        let (st, v) = status_json(r).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("Upload")),
            "{ct} {len}"
        );
    }
    let (_, v) = s.get(&format!("/images/{u}")).await;
    assert!(v.get("icon").is_none());
}

#[tokio::test]
async fn ranged_downloads() {
    let s = Server::start().await;
    let file = data(100_000, 5);
    let img = s.create_active(SDC, "ranged", true, &file).await;
    let u = img["uuid"].as_str().unwrap();
    let get = |range: Option<&str>, if_range: Option<&str>| {
        let mut rb = s.http.get(s.u(&format!("/images/{u}/file")));
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        if let Some(r) = if_range {
            rb = rb.header("if-range", r);
        }
        rb.send()
    };
    let r = get(Some("bytes=100-199"), None).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/100000");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().to_vec(), file[100..200].to_vec());
    let r = get(Some("bytes=-10"), None).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), file[99_990..].to_vec());
    let r = get(Some("bytes=99990-"), None).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 10);
    let r = get(Some("bytes=100000-"), None).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    // If-Range with the current Etag honours the range; a stale one gets it all.
    let r = get(Some("bytes=0-9"), Some(&sha1_hex(&file)))
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = get(Some("bytes=0-9"), Some("\"0000\"")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), file.len());
    // If-Match mismatch on the file is 412.
    let r = s
        .http
        .get(s.u(&format!("/images/{u}/file")))
        .header("if-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
}

#[tokio::test]
async fn accept_version_and_not_available() {
    let s = Server::start().await;
    for (v, ok) in [
        ("*", true),
        ("~2", true),
        ("~1", true),
        ("1.0.0", true),
        ("2.0.0", true),
        ("~99", false),
        ("junk!", false),
    ] {
        let r = s
            .http
            .get(s.u("/images"))
            .header("accept-version", v)
            .send()
            .await
            .unwrap();
        let (st, body) = status_json(r).await;
        if ok {
            assert_eq!(st, 200, "{v}");
        } else {
            assert_eq!(
                (st, body["code"].as_str()),
                (400, Some("InvalidVersion")),
                "{v}"
            );
        }
    }
    for (method, path) in [
        (
            "POST",
            "/images?action=create-from-vm&vm_uuid=3560c262-fc65-0242-a446-7c6d1fb482e3"
                .to_string(),
        ),
        // CloneImage is served (tests/clone.rs); import-from-datacenter
        // is refused before 501 (tests/not_available.rs).
        (
            "POST",
            "/images?action=import-lxd-image&alias=images:alpine/3.16".to_string(),
        ),
    ] {
        let r = s
            .http
            .request(method.parse().unwrap(), s.u(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (st, v) = status_json(r).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (501, Some("NotAvailable")),
            "{path}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let r = s.http.patch(s.u("/images")).send().await.unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["code"].as_str()), (405, Some("MethodNotAllowed")));
}

/// ListImages and GetImage are never stale: every write shows at once for
/// every account.
#[tokio::test]
async fn list_is_never_stale() {
    let s = Server::start().await;
    let accounts = [VADER, LUKE, EMPEROR];
    // what each account should see, checked after every write
    async fn check(s: &Server, u: &str, expect: [bool; 3], state: &str) {
        for (i, a) in [VADER, LUKE, EMPEROR].iter().enumerate() {
            let (_, v) = s.get(&format!("/images?account={a}&state=all")).await;
            let found = v
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["uuid"] == u)
                .cloned();
            assert_eq!(found.is_some(), expect[i], "ListImages for {a} at {state}");
            let (st, g) = s.get(&format!("/images/{u}?account={a}")).await;
            assert_eq!(st == 200, expect[i], "GetImage for {a} at {state}");
            if let Some(f) = found {
                assert_eq!(f["state"], state);
                assert_eq!(f, g, "list and get agree");
            }
            same_bytes(s, a, state).await;
        }
    }
    // The list body (built from each image's stored list form) is, byte
    // for byte, the array of the GetImage bodies (rendered from the
    // manifest), and the body of the same list rendered from manifests
    // (inclAdminFields=false is the default rendering asked for).
    async fn same_bytes(s: &Server, a: &str, at: &str) {
        let body = |path: String| async move {
            let r = s.http.get(s.u(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        };
        let list = body(format!("/images?account={a}&state=all")).await;
        let v: Value = serde_json::from_str(&list).unwrap();
        let mut want = Vec::new();
        for img in v.as_array().unwrap() {
            let u = img["uuid"].as_str().unwrap();
            let g = body(format!("/images/{u}?account={a}")).await;
            want.push(g.replace('\n', "\n  "));
        }
        let want = if want.is_empty() {
            "[]".to_string()
        } else {
            format!("[\n  {}\n]", want.join(",\n  "))
        };
        assert_eq!(list, want, "ListImages for {a} at {at}: bytes of GetImage");
    }
    let img = s
        .create(
            Some(VADER),
            json!({"name": "fresh", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap().to_string();
    check(&s, &u, [true, false, false], "unactivated").await;
    s.put_bytes(&format!("/images/{u}/file?compression=none"), vec![7; 100])
        .await;
    s.post(&format!("/images/{u}?action=activate"), json!({}))
        .await;
    check(&s, &u, [true, false, false], "active").await;
    s.post(&format!("/images/{u}/acl"), json!([LUKE])).await;
    check(&s, &u, [true, true, false], "active").await;
    s.post(&format!("/images/{u}?action=disable"), json!({}))
        .await;
    check(&s, &u, [true, true, false], "disabled").await;
    let (_, v) = s.get(&format!("/images?account={LUKE}")).await;
    assert!(
        !v.as_array()
            .unwrap()
            .iter()
            .any(|x| x["uuid"] == u.as_str()),
        "disabled leaves the default list"
    );
    s.post(&format!("/images/{u}?action=enable"), json!({}))
        .await;
    check(&s, &u, [true, true, false], "active").await;
    s.post(
        &format!("/images/{u}?action=update"),
        json!({"public": true}),
    )
    .await;
    check(&s, &u, [true, true, true], "active").await;
    s.post(
        &format!("/images/{u}?action=update"),
        json!({"public": false, "name": "renamed"}),
    )
    .await;
    check(&s, &u, [true, true, false], "active").await;
    let (_, v) = s.get(&format!("/images?account={LUKE}&name=renamed")).await;
    assert_eq!(names(&v), vec!["renamed"]);
    s.post(&format!("/images/{u}/acl?action=remove"), json!([LUKE]))
        .await;
    check(&s, &u, [true, false, false], "active").await;
    let r = s
        .http
        .put(s.u(&format!("/images/{u}/icon")))
        .header("content-type", "image/png")
        .body(vec![1u8; 300])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    check(&s, &u, [true, false, false], "active").await;
    let (_, v) = s.get(&format!("/images/{u}")).await;
    assert_eq!(v["icon"], true);
    s.delete(&format!("/images/{u}/icon")).await;
    check(&s, &u, [true, false, false], "active").await;
    s.delete(&format!("/images/{u}")).await;
    check(&s, &u, [false, false, false], "gone").await;
    let _ = accounts;
}

/// auth = "token": accounts, operators, anonymous readers.
#[tokio::test]
async fn token_auth() {
    let s = Server::start_with_config("auth = \"token\"\n").await;
    let mk = |login: &str, op: bool| s.account(login, op);
    let (alice, alice_tok) = mk("alice", false);
    let (_bob, bob_tok) = mk("bob", false);
    let (_op, op_tok) = mk("root-op", true);
    // Tokens are stored hashed.
    let db = std::fs::read(s.data_dir().join("imgapi.sqlite")).unwrap();
    assert!(
        !db.windows(alice_tok.len())
            .any(|w| w == alice_tok.as_bytes())
    );
    let c = &s.http;
    let body = json!({"name": "mine", "version": "1", "os": "linux", "type": "other"});
    // No token: writes are 401; a bad token is 401.
    let r = c.post(s.u("/images")).json(&body).send().await.unwrap();
    assert_eq!(status_json(r).await.0, 401);
    let r = c
        .get(s.u("/images"))
        .bearer_auth("imgapi_bogus")
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("UnauthorizedError")));
    // Alice creates a private image: owner is alice.
    let r = c
        .post(s.u("/images"))
        .bearer_auth(&alice_tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (st, img) = status_json(r).await;
    assert_eq!((st, img["owner"].as_str()), (200, Some(alice.as_str())));
    let u = img["uuid"].as_str().unwrap();
    let r = c
        .put(s.u(&format!("/images/{u}/file?compression=none")))
        .bearer_auth(&alice_tok)
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(s.u(&format!("/images/{u}?action=activate")))
        .bearer_auth(&alice_tok)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bob cannot see, download or change it; nor can he act as alice.
    for (m, p) in [
        ("GET", format!("/images/{u}")),
        ("GET", format!("/images/{u}/file")),
        ("POST", format!("/images/{u}?action=disable")),
        ("DELETE", format!("/images/{u}")),
    ] {
        let r = c
            .request(m.parse().unwrap(), s.u(&p))
            .bearer_auth(&bob_tok)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "bob {m} {p}");
    }
    let r = c
        .get(s.u(&format!("/images?account={alice}")))
        .bearer_auth(&bob_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = c
        .get(s.u("/images?state=all"))
        .bearer_auth(&bob_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1, json!([]));
    // Anonymous sees nothing private; admin endpoints need an operator.
    let r = c.get(s.u(&format!("/images/{u}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(s.u(&format!("/images/{u}?action=import")))
        .bearer_auth(&alice_tok)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1["code"], "OperatorOnly");
    // Made public, bob sees it but still cannot change it.
    let r = c
        .post(s.u(&format!("/images/{u}?action=update")))
        .bearer_auth(&alice_tok)
        .json(&json!({"public": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(s.u(&format!("/images/{u}"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "anonymous reads public active images");
    let r = c
        .post(s.u(&format!("/images/{u}?action=disable")))
        .bearer_auth(&bob_tok)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1["code"], "NotImageOwner");
    // The operator sees all and may act for alice.
    let r = c
        .get(s.u(&format!("/images?account={alice}&state=all")))
        .bearer_auth(&op_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(status_json(r).await.1.as_array().unwrap().len(), 1);
    let r = c
        .get(s.u("/state"))
        .bearer_auth(&op_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn auth_none_refused_on_network_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_auth_none_on_network"));
    // Unknown config keys are a start-up error.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
}

#[tokio::test]
async fn migrate_and_restart_keep_data() {
    let mut s = Server::spawn().await;
    let img = s
        .create_active(SDC, "persist", true, &data(50_000, 6))
        .await;
    s.restart_hard().await;
    let (st, v) = s
        .get(&format!("/images/{}", img["uuid"].as_str().unwrap()))
        .await;
    assert_eq!((st, v["name"].as_str()), (200, Some("persist")));
    let out = s.admin(&["migrate"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

#[tokio::test]
async fn chunked_upload_without_content_length() {
    let s = Server::start().await;
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    let file = data(3_000_000, 8);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        file.chunks(65_536).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = s
        .http
        .put(s.u(&format!("/images/{u}/file?compression=gzip")))
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&file));
    assert_eq!(v["files"][0]["size"], file.len());
}

/// Files over `max_file_size` are refused: by Content-Length before any byte
/// is read, or while streaming a chunked body; nothing is left behind.
#[tokio::test]
async fn oversized_files_are_refused() {
    let s = Server::start_with_config("[limits]\nmax_file_size = 1000\n").await;
    let img = s
        .create(
            Some(LUKE),
            json!({"name": "x", "version": "1", "os": "smartos", "type": "zone-dataset"}),
        )
        .await;
    let u = img["uuid"].as_str().unwrap();
    let (st, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=none"), vec![1; 2000])
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("Upload")));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..4).map(|_| Ok(vec![2u8; 500])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = s
        .http
        .put(s.u(&format!("/images/{u}/file?compression=none")))
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, v) = status_json(r).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("Upload")));
    let (st, v) = s
        .put_bytes(&format!("/images/{u}/file?compression=none"), vec![3; 1000])
        .await;
    assert_eq!(st, 200, "exactly the limit is fine: {v}");
    assert_eq!(walk(&classic_files_dir(&s.data_dir())).len(), 1);
}

/// SIGTERM: the server stops accepting, finishes, and exits 0.
#[tokio::test]
async fn graceful_shutdown_on_sigterm() {
    let mut s = Server::spawn().await;
    let (st, _) = s.get("/ping").await;
    assert_eq!(st, 200);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = s.child().try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The node's ListImages cache counters: (hits, misses).
async fn list_cache_counts(s: &Server) -> (f64, f64) {
    let m = s.metrics().await;
    (
        metric(&m, "imgapi_list_cache_hits_total"),
        metric(&m, "imgapi_list_cache_misses_total"),
    )
}

#[tokio::test]
async fn a_list_is_kept_until_an_image_changes_and_never_shown_to_another_account() {
    let s = Server::start().await;
    s.create_active(LUKE, "kept-public", true, b"one").await;
    let private = s.create_active(LUKE, "kept-private", false, b"two").await;
    let uuid = private["uuid"].as_str().unwrap().to_string();
    let luke = format!("/images?account={LUKE}&name=~kept-");
    let vader = format!("/images?account={VADER}&name=~kept-");

    // The same list twice: read once, then answered from the cache, the
    // same bytes.
    let before = list_cache_counts(&s).await;
    let first = s.fetch(&luke).await;
    let second = s.fetch(&luke).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body);
    assert_eq!(names(&first.json()), ["kept-public", "kept-private"]);
    let after = list_cache_counts(&s).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1.0, 1.0));
    // Another account's same filter is its own list: the private image
    // is not in it.
    let (_, v) = s.get(&vader).await;
    assert_eq!(names(&v), ["kept-public"], "{v}");
    let (_, v) = s.get("/images?name=~kept-").await;
    assert_eq!(names(&v), ["kept-public", "kept-private"], "{v}");

    // Every kind of change is read at once: an update, a new image, a
    // disable, a deletion.
    let (st, v) = s
        .post(
            &format!("/images/{uuid}?action=update"),
            json!({"name": "kept-renamed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s.get(&luke).await;
    assert_eq!(names(&v), ["kept-public", "kept-renamed"], "{v}");
    s.create_active(LUKE, "kept-third", true, b"three").await;
    let (_, v) = s.get(&vader).await;
    assert_eq!(names(&v), ["kept-public", "kept-third"], "{v}");
    let (st, _) = s
        .post(&format!("/images/{uuid}?action=disable"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get(&luke).await;
    assert_eq!(names(&v), ["kept-public", "kept-third"], "{v}");
    let (_, v) = s.get(&format!("{luke}&state=disabled")).await;
    assert_eq!(names(&v), ["kept-renamed"], "{v}");
    assert_eq!(s.delete(&format!("/images/{uuid}")).await.0, 204);
    let (_, v) = s.get(&format!("{luke}&state=all")).await;
    assert_eq!(names(&v), ["kept-public", "kept-third"], "{v}");
    // Renderings other than the default one are not kept, and are the
    // same images.
    let (_, v) = s.get(&format!("{luke}&inclAdminFields=true")).await;
    assert_eq!(names(&v), ["kept-public", "kept-third"], "{v}");
}

#[tokio::test]
async fn with_no_list_cache_nothing_is_kept() {
    let s = Server::start_with_config("[limits]\nlist_cache_mib = 0\n").await;
    s.create_active(LUKE, "uncached", true, b"one").await;
    for _ in 0..2 {
        let (_, v) = s.get("/images?name=uncached").await;
        assert_eq!(names(&v), ["uncached"], "{v}");
    }
    assert_eq!(list_cache_counts(&s).await, (0.0, 0.0));
}
