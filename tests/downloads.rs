//! GetImageFile from the local store (issue 26): image files are served
//! from memory maps and sent with sendfile, upload data still by reads.
//! The two paths answer every range alike, byte for byte and header for
//! header, and a download survives the file's deletion.

use crate::common::Api;
use futures_util::StreamExt;

use crate::common::{S3Server, SDC, Server, data, metric, sha1_hex};

/// 1 MiB chunks: a file over two chunks and an odd tail.
const LEN: usize = (2 << 20) + 12_345;

/// An active image of `file` and a finished upload of the same bytes: the
/// image's file is served by the mapped path, the upload's data by reads.
async fn image_and_upload(s: &Server, file: &[u8]) -> (String, String) {
    let img = s.create_active(SDC, "mapped", true, file).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    (uuid, s.tus_upload(file, None).await)
}

/// Status, the headers both paths set, and the body's length and SHA-1.
async fn answer(r: reqwest::Response) -> (u16, Vec<(String, String)>, (usize, String)) {
    let st = r.status().as_u16();
    let h = [
        "content-length",
        "content-range",
        "accept-ranges",
        "content-type",
    ]
    .iter()
    .map(|k| {
        let v = r.headers().get(*k).map(|v| v.to_str().unwrap().to_string());
        (k.to_string(), v.unwrap_or_default())
    })
    .collect();
    let body = r.bytes().await.unwrap();
    (st, h, (body.len(), sha1_hex(&body)))
}

#[tokio::test]
async fn mapped_files_answer_every_range_as_reads_do() {
    let s = Server::start().await;
    let file = data(LEN, 26);
    let (uuid, loc) = image_and_upload(&s, &file).await;
    let image = s.u(&format!("/images/{uuid}/file"));
    let upload = s.u(&loc);
    let mib = 1 << 20;
    let ranges = [
        None,
        Some("bytes=0-0".to_string()),
        Some("bytes=100-199".to_string()),
        Some(format!("bytes={}-{}", mib - 1, mib)),
        Some(format!("bytes={mib}-{}", 2 * mib - 1)),
        Some(format!("bytes=10-{}", 2 * mib + 5)),
        Some(format!("bytes={}-", LEN - 7)),
        Some("bytes=-10".to_string()),
        Some(format!("bytes=5-{}", LEN + 1000)),
        Some(format!("bytes={LEN}-")),
        Some("bytes=oops".to_string()),
    ];
    for range in &ranges {
        let get = |url: &str| {
            let mut rb = s.http.get(url);
            if let Some(r) = range {
                rb = rb.header("range", r.as_str());
            }
            rb.send()
        };
        let new = answer(get(&image).await.unwrap()).await;
        let old = answer(get(&upload).await.unwrap()).await;
        // 416 bodies name what was asked of (a file or an upload).
        if new.0 != 416 {
            assert_eq!(new, old, "{range:?}");
        } else {
            assert_eq!((new.0, &new.1[1]), (old.0, &old.1[1]), "{range:?}");
        }
        // And both are the file's bytes.
        if new.0 == 206 {
            let cr = &new.1[1].1;
            let (a, b) = cr["bytes ".len()..]
                .split_once('/')
                .unwrap()
                .0
                .split_once('-')
                .unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(new.2, (b + 1 - a, sha1_hex(&file[a..=b])), "{range:?}");
        } else if new.0 == 200 {
            assert_eq!(new.2, (LEN, sha1_hex(&file)), "{range:?}");
        }
    }

    // The image's own headers and conditionals, unchanged.
    let r = s.http.get(&image).send().await.unwrap();
    let etag = format!("\"{}\"", sha1_hex(&file));
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(
        r.headers()["content-md5"],
        crate::common::md5_b64(&file).as_str()
    );
    let lm = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().len(), LEN);
    let cond = |k: &'static str, v: String, range: Option<&'static str>| {
        let mut rb = s.http.get(&image).header(k, v);
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        rb.send()
    };
    let r = cond("if-none-match", etag.clone(), None).await.unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = cond("if-modified-since", lm.clone(), None).await.unwrap();
    assert_eq!(r.status(), 304);
    let r = cond("if-range", etag.clone(), Some("bytes=3-5"))
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), file[3..=5]);
    let whole = |b: bytes::Bytes| (b.len(), sha1_hex(&b));
    let r = cond("if-range", "\"stale\"".into(), Some("bytes=3-5"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(whole(r.bytes().await.unwrap()), (LEN, sha1_hex(&file)));
    let r = s.http.head(&image).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], LEN.to_string().as_str());
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn interrupted_and_deleted_downloads() {
    let s = Server::start().await;
    let file = data(LEN, 27);
    let img = s.create_active(SDC, "cut", true, &file).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let url = s.u(&format!("/images/{uuid}/file"));
    let out = |text: &str| metric(text, "imgapi_http_response_bytes_total");

    // A client that goes away after the first bytes: the bytes counted
    // are at most the file's, and the next download is whole.
    let before = out(&s.metrics().await);
    let r = s.http.get(&url).send().await.unwrap();
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first == file[..first.len()]);
    drop(body);
    let r = s.http.get(&url).send().await.unwrap();
    assert!(r.bytes().await.unwrap() == file);
    // (the first chunks may be in the sockets when the client goes; the
    // metrics text itself counts too)
    let counted = out(&s.metrics().await) - before;
    assert!(
        counted >= (LEN + first.len()) as f64 && counted <= (2 * LEN + (64 << 10)) as f64,
        "{counted}"
    );

    // A download under way keeps its bytes when the image is deleted
    // (its file unlinked) before the server has sent them: the file is
    // larger than what the sockets between hold.
    let file = data(24 << 20, 28);
    let img = s.create_active(SDC, "deleted", true, &file).await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().to_vec();
    let (st, v) = s.delete(&format!("/images/{uuid}")).await;
    assert_eq!(st, 204, "{v}");
    let path = crate::common::walk(&s.data_dir())
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&uuid));
    assert!(path.is_none(), "the file is still there: {path:?}");
    while let Some(c) = body.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert!(got == file, "{} bytes of {}", got.len(), file.len());
    let (st, _) = s.get(&format!("/images/{uuid}")).await;
    assert_eq!(st, 404);
}

/// From S3, a file of several parts is read in parts fetched ahead; every
/// range answers the file's bytes, and an object replaced while it is
/// read fails the download instead of mixing two objects.
#[tokio::test]
async fn s3_files_read_in_parts() {
    let s3 = S3Server::start();
    // 5 MiB parts, one fetched ahead (parts_in_flight = 2).
    let s = Server::start_with_config(&s3.manta_toml(5)).await;
    let len = (64 << 20) + 777;
    let file = data(len, 29);
    let img = s
        .create(
            None,
            serde_json::json!({"name": "s3parts", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "owner": SDC, "public": true}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none&storage=manta"),
            file.clone(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let key = format!("p/imgapi/images/{}/{uuid}/file0", &uuid[..3]);
    assert_eq!(
        s3.keys(&key).await,
        std::slice::from_ref(&key),
        "the file is in S3"
    );
    let url = s.u(&format!("/images/{uuid}/file"));
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], len.to_string().as_str());
    let body = r.bytes().await.unwrap();
    assert!(body.len() == len && body == file, "{} bytes", body.len());
    let mib = 1 << 20;
    for (a, b) in [
        (0, 10),
        (5 * mib - 3, 5 * mib + 2),
        (mib, 17 * mib + 5),
        (3, len - 1),
        (11 * mib, len - 1),
        (len - 12 * mib, len - 1),
    ] {
        let r = s
            .http
            .get(&url)
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{a}-{b}");
        let got = r.bytes().await.unwrap();
        assert!(got == file[a..=b], "{a}-{b}: {} bytes", got.len());
    }

    // The object replaced behind the server's back after the first bytes:
    // the parts fetched later are refused (If-Match, and their ETag, which
    // s3s-fs answers although it ignores If-Match), and the client sees a
    // cut download, never bytes of both.
    let r = s.http.get(&url).send().await.unwrap();
    let mut body = r.bytes_stream();
    let mut got = body.next().await.unwrap().unwrap().to_vec();
    s3.client()
        .put_object()
        .bucket(&s3.bucket)
        .key(&key)
        .body(data(len, 30).into())
        .send()
        .await
        .unwrap();
    let mut cut = false;
    while let Some(c) = body.next().await {
        match c {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "a download of a replaced object ended whole ({} bytes, the original: {})",
        got.len(),
        got == file
    );
    assert!(got.len() < len && got == file[..got.len()]);
}
