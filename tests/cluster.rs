//! Three `imgapi serve` processes over one PostgreSQL database and one
//! shared store directory, each request of a client on the next node: an
//! upload whose PATCHes each land on another node, racing PATCHes, a node
//! killed mid-PATCH, a node restarted with an empty data directory, the
//! classic flow across nodes, and a write read at once on another node.
//! Needs `IMGAPI_TEST_DATABASE_URL` (scripts/test.sh starts PostgreSQL).

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

/// The shared parts (one database, one store directory or S3 bucket) and
/// the nodes.
struct Cluster {
    nodes: Vec<Server>,
    /// The store directories every node shares (removed at the end).
    _shared: tempfile::TempDir,
    db_url: String,
    /// The S3 server whose bucket is the manta store, if it is one.
    s3: Option<S3Server>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear(); // each killed
        drop_pg_database(&self.db_url);
    }
}

/// A database for the cluster, or None (with a notice) outside CI when no
/// PostgreSQL is configured.
fn cluster_database() -> Option<String> {
    if std::env::var_os("IMGAPI_TEST_DATABASE_URL").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "IMGAPI_TEST_DATABASE_URL must be set in CI (scripts/test.sh starts PostgreSQL)"
        );
        eprintln!("*** NOT RUN: the cluster tests need IMGAPI_TEST_DATABASE_URL");
        return None;
    }
    Some(new_pg_database())
}

impl Cluster {
    async fn start(n: usize) -> Option<Cluster> {
        let url = cluster_database()?;
        let shared = tempfile::tempdir().unwrap();
        let toml = format!(
            "[database]\nurl = \"{url}\"\n\
             [storage.manta]\ntype = \"fs\"\ndir = \"{}\"\n\
             [storage.assets]\ndir = \"{}\"\n",
            shared.path().join("manta").display(),
            shared.path().join("assets").display(),
        );
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Server::spawn_with_config(&toml).await);
        }
        Some(Cluster {
            nodes,
            _shared: shared,
            db_url: url,
            s3: None,
        })
    }

    /// `n` nodes whose manta store is one S3 bucket (parts of 5 MiB).
    async fn start_s3(n: usize) -> Option<Cluster> {
        let url = cluster_database()?;
        let s3 = S3Server::start();
        let shared = tempfile::tempdir().unwrap();
        let toml = format!(
            "[database]\nurl = \"{url}\"\n[storage.assets]\ndir = \"{}\"\n{}",
            shared.path().join("assets").display(),
            s3.manta_toml(5),
        );
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Server::spawn_with_config(&toml).await);
        }
        Some(Cluster {
            nodes,
            _shared: shared,
            db_url: url,
            s3: Some(s3),
        })
    }

    /// Keys in the bucket under `prefix` (below the store's own `p/`).
    async fn bucket_keys(&self, prefix: &str) -> Vec<String> {
        let s3 = self.s3.as_ref().expect("an S3 cluster");
        s3.keys(&format!("p/{prefix}")).await
    }

    /// No node keeps a byte of an upload on its disk between requests.
    fn nothing_staged_on_any_node(&self) {
        for n in &self.nodes {
            let left = walk(&n.data_dir().join("staging"));
            assert!(left.is_empty(), "node {} keeps {left:?}", n.url);
        }
    }

    fn node(&self, i: usize) -> &Server {
        &self.nodes[i % self.nodes.len()]
    }

    /// HEAD of an upload on every node: each one's Upload-Offset.
    async fn offsets(&self, loc: &str) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let (st, off, _) = n.tus_head(&format!("{loc}?account={LUKE}")).await;
            assert_eq!(st, 200, "HEAD on {}", n.url);
            out.push(off);
        }
        out
    }
}

fn manifest(name: &str, upload: &str, file: &[u8]) -> Value {
    json!({"name": name, "version": "1.0.0", "os": "other", "type": "other",
        "files": [{"upload": upload, "content_md5": md5_b64(file), "compression": "none"}]})
}

/// GetImageFile of `uuid` on `s`: the bytes and the Content-MD5.
async fn fetch(s: &Server, uuid: &str) -> (Vec<u8>, String) {
    let r = s
        .http
        .get(s.u(&format!("/images/{uuid}/file?account={LUKE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GetImageFile on {}", s.url);
    let md5 = r.headers()["content-md5"].to_str().unwrap().to_string();
    (r.bytes().await.unwrap().to_vec(), md5)
}

/// Register `upload` on `s` and check every node serves the same bytes.
async fn register_everywhere(c: &Cluster, on: usize, name: &str, id: &str, file: &[u8]) -> String {
    let (st, img) = c
        .node(on)
        .post(&format!("/images?account={LUKE}"), manifest(name, id, file))
        .await;
    assert_eq!(st, 200, "register: {img}");
    assert_eq!(img["state"], "active", "{img}");
    let uuid = img["uuid"].as_str().unwrap().to_string();
    for n in &c.nodes {
        let (bytes, md5) = fetch(n, &uuid).await;
        assert_eq!(md5, md5_b64(file));
        assert!(bytes == file, "node {} serves other bytes", n.url);
    }
    uuid
}

fn location(h: &reqwest::header::HeaderMap) -> String {
    h["location"].to_str().unwrap().to_string()
}

/// PATCH `file[off..off + n]` on node `i + 1` (the next one each time):
/// 204, its offset, and every node's HEAD agreeing with it. The new offset.
async fn patch_on_next_node(
    c: &Cluster,
    i: usize,
    loc: &str,
    file: &[u8],
    off: usize,
    n: usize,
) -> usize {
    let node = c.node(i + 1);
    let (st, h, v) = node
        .tus_patch(loc, Some(LUKE), off as u64, file[off..off + n].to_vec())
        .await;
    assert_eq!(st, 204, "PATCH {i} on {}: {v}", node.url);
    let off = off + n;
    assert_eq!(h["upload-offset"], off.to_string().as_str());
    let offs = c.offsets(loc).await;
    assert!(
        offs.iter().all(|o| *o == Some(off as u64)),
        "after PATCH {i}: {offs:?}, want {off}"
    );
    off
}

#[tokio::test]
async fn every_patch_on_the_next_node_and_every_head_agrees() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    // Uneven chunks, 100 KiB to 20 MiB.
    let sizes = [100 << 10, 3 * MIB + 7, 20 * MIB, 777_777, MIB];
    let file = data(sizes.iter().sum(), 21);
    let (st, h) = c
        .node(0)
        .tus_create(file.len() as u64, Some(LUKE), &[])
        .await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let mut off = 0usize;
    for (i, n) in sizes.iter().enumerate() {
        off = patch_on_next_node(&c, i, &loc, &file, off, *n).await;
    }
    let id = upload_id(&loc);
    register_everywhere(&c, 2, "round-robin", &id, &file).await;
}

#[tokio::test]
async fn racing_patches_at_one_offset_on_two_nodes_one_wins_whole() {
    let Some(c) = Cluster::start(2).await else {
        return;
    };
    let len = 16 * MIB;
    let (a, b) = (data(len, 31), data(len, 32));
    let (st, h) = c.node(0).tus_create(len as u64, Some(LUKE), &[]).await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let (ra, rb) = tokio::join!(
        c.node(0).tus_patch(&loc, Some(LUKE), 0, a.clone()),
        c.node(1).tus_patch(&loc, Some(LUKE), 0, b.clone()),
    );
    let codes = [ra.0, rb.0];
    let winners = codes.iter().filter(|&&s| s == 204).count();
    assert_eq!(
        winners, 1,
        "exactly one PATCH wins: {codes:?} ({} / {})",
        ra.2, rb.2
    );
    assert!(
        codes.iter().all(|s| [204, 409, 423].contains(s)),
        "the loser is 409 or 423: {codes:?}"
    );
    let file = if ra.0 == 204 { &a } else { &b };
    assert_eq!(c.offsets(&loc).await, vec![Some(len as u64); 2]);
    let id = upload_id(&loc);
    register_everywhere(&c, 1, "race", &id, file).await;
}

#[tokio::test]
async fn a_write_on_one_node_is_read_at_once_on_the_others() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let img = c
        .node(0)
        .create_active(LUKE, "cluster-visible-one", true, b"x")
        .await;
    let uuid = img["uuid"].as_str().unwrap();
    for (i, n) in c.nodes.iter().enumerate() {
        let (st, v) = n.get(&format!("/images/{uuid}")).await;
        assert_eq!(
            (st, v["name"].as_str()),
            (200, Some("cluster-visible-one")),
            "node {i}"
        );
        let (st, v) = n.get("/images?name=~visible-o").await;
        assert_eq!(st, 200);
        assert_eq!(
            names(&v),
            vec!["cluster-visible-one".to_string()],
            "node {i}"
        );
    }
    // Each node keeps that list (asked again, it is answered from its
    // cache), and still ...
    for (i, n) in c.nodes.iter().enumerate() {
        let hits = || async { metric(&n.metrics().await, "imgapi_list_cache_hits_total") };
        let before = hits().await;
        let (_, v) = n.get("/images?name=~visible-o").await;
        assert_eq!(names(&v), vec!["cluster-visible-one".to_string()]);
        assert_eq!(hits().await, before + 1.0, "node {i}");
    }
    // ... a change on node 2 is seen by node 0 and 1 at once.
    let (st, v) = c
        .node(2)
        .post(
            &format!("/images/{uuid}?action=update"),
            json!({"name": "cluster-renamed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    for n in &c.nodes[..2] {
        let (_, v) = n.get("/images?name=~visible-o").await;
        assert!(names(&v).is_empty(), "{v}");
        let (_, v) = n.get("/images?name=~renamed").await;
        assert_eq!(names(&v), vec!["cluster-renamed".to_string()]);
    }
}

#[tokio::test]
async fn the_classic_flow_with_each_step_on_another_node() {
    let Some(c) = Cluster::start(3).await else {
        return;
    };
    let file = data(3 * MIB + 11, 41);
    let img = c
        .node(0)
        .create(
            None,
            json!({"name": "classic", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE, "public": false}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let (st, v) = c
        .node(1)
        .put_bytes(
            &format!("/images/{uuid}/file?compression=none"),
            file.clone(),
        )
        .await;
    assert_eq!(st, 200, "AddImageFile on node 1: {v}");
    let (st, v) = c
        .node(2)
        .post(&format!("/images/{uuid}?action=activate"), json!({}))
        .await;
    assert_eq!(st, 200, "ActivateImage on node 2: {v}");
    assert_eq!(v["state"], "active");
    for n in &c.nodes {
        let (bytes, md5) = fetch(n, &uuid).await;
        assert_eq!((bytes == file, md5), (true, md5_b64(&file)));
    }
    // check-files from any node finds nothing wrong.
    for n in &c.nodes {
        let out = n.admin(&["check-files"]);
        assert!(
            out.status.success(),
            "check-files on {}: {}{}",
            n.url,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A PATCH of upload `loc` at `offset` on `node` whose body sends `first`
/// and then nothing more, ever (a client gone quiet mid-body), started
/// in the background.
fn stalled_patch(
    node: &Server,
    loc: &str,
    offset: usize,
    first: &[u8],
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let first = first.to_vec();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
        .chain(futures_util::stream::pending());
    let req = node
        .tus_patch_request(loc, Some(LUKE), offset as u64)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    tokio::spawn(req)
}

#[tokio::test]
async fn a_node_killed_mid_patch_costs_nothing_acknowledged() {
    let Some(mut c) = Cluster::start(3).await else {
        return;
    };
    let file = data(12 * MIB, 51);
    let (st, h) = c
        .node(0)
        .tus_create(file.len() as u64, Some(LUKE), &[])
        .await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let (st, _, v) = c
        .node(0)
        .tus_patch(&loc, Some(LUKE), 0, file[..4 * MIB].to_vec())
        .await;
    assert_eq!(st, 204, "{v}");
    // Node 1 takes a PATCH whose body stops half-way, and is killed.
    let pending = stalled_patch(c.node(1), &loc, 4 * MIB, &file[4 * MIB..6 * MIB]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = c.nodes[1].child().kill();
    let _ = c.nodes[1].child().wait();
    let _ = pending.await;
    // Nothing of the cut PATCH counts: every node that is up says 4 MiB.
    for i in [0, 2] {
        let (st, off, _) = c.node(i).tus_head(&format!("{loc}?account={LUKE}")).await;
        assert_eq!((st, off), (200, Some(4 * MIB as u64)), "node {i}");
    }
    // The upload goes on on node 2 once the dead node's lease has expired
    // (a client retries 423 with backoff, as imgapi's client does).
    let t0 = Instant::now();
    loop {
        let (st, _, v) = c
            .node(2)
            .tus_patch(&loc, Some(LUKE), 4 * MIB as u64, file[4 * MIB..].to_vec())
            .await;
        if st == 204 {
            break;
        }
        assert_eq!(st, 423, "{v}");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ... and registers on node 0, byte-identical everywhere that is up.
    let id = upload_id(&loc);
    c.nodes.remove(1);
    register_everywhere(&c, 0, "survivor", &id, &file).await;
}

#[tokio::test]
async fn a_node_restarted_with_an_empty_data_directory_serves_every_image() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    let mut images = Vec::new();
    for i in 0..3 {
        let file = data(MIB + i, 60 + i as u32);
        let (st, h) = c
            .node(i)
            .tus_create(file.len() as u64, Some(LUKE), &[])
            .await;
        assert_eq!(st, 201);
        let loc = location(&h);
        let (st, _, v) = c
            .node(i + 1)
            .tus_patch(&loc, Some(LUKE), 0, file.clone())
            .await;
        assert_eq!(st, 204, "{v}");
        let id = upload_id(&loc);
        let uuid = register_everywhere(&c, i, &format!("kept-{i}"), &id, &file).await;
        images.push((uuid, file));
    }
    // Node 1 loses its disk: killed, its data directory deleted, started anew.
    let n1 = &mut c.nodes[1];
    n1.restart_hard_with(|d: &Path| std::fs::remove_dir_all(d).unwrap())
        .await;
    for (uuid, file) in &images {
        let (bytes, md5) = fetch(&c.nodes[1], uuid).await;
        assert_eq!((bytes == *file, md5), (true, md5_b64(file)));
    }
}

#[tokio::test]
async fn a_registration_whose_node_dies_is_finished_by_another() {
    let Some(mut c) = Cluster::start(2).await else {
        return;
    };
    // An object already in the store: registration verifies it by
    // streaming it (seconds), so the node can die mid-job.
    let file = data(80 * MIB, 71);
    let p = c._shared.path().join(format!("manta/{LUKE}/stor/big"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &file).unwrap();
    let body = json!({"name": "orphaned-job", "version": "1.0.0", "os": "other", "type": "other",
        "files": [{"path": format!("/{LUKE}/stor/big"), "content_md5": md5_b64(&file),
                   "compression": "none"}]});
    let (st, img) = c
        .node(1)
        .post(&format!("/images?account={LUKE}&wait=0"), body)
        .await;
    assert_eq!(st, 200, "{img}");
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let _ = c.nodes[1].child().kill();
    let _ = c.nodes[1].child().wait();
    if img["state"] == "active" {
        eprintln!("the job finished before the kill; the takeover was not exercised");
    }
    // Node 0's worker takes the job over once the dead node's lease has
    // expired (20 s), within a minute.
    let t0 = Instant::now();
    let state = loop {
        let (st, v) = c
            .node(0)
            .get(&format!("/images/{uuid}?account={LUKE}"))
            .await;
        assert_eq!(st, 200, "{v}");
        if v["state"] != "creating" || t0.elapsed() > Duration::from_secs(60) {
            break v["state"].clone();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(state, "active", "after {:?}", t0.elapsed());
    let (bytes, md5) = fetch(c.node(0), &uuid).await;
    assert_eq!((bytes == file, md5), (true, md5_b64(&file)));
}

#[tokio::test]
async fn add_image_file_and_delete_image_on_two_nodes_leave_no_orphan_bytes() {
    let Some(c) = Cluster::start(2).await else {
        return;
    };
    let file = data(30 * MIB, 81);
    let img = c
        .node(0)
        .create(
            None,
            json!({"name": "contended", "version": "1.0.0", "os": "smartos",
                "type": "zone-dataset", "owner": LUKE}),
        )
        .await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let path = format!("/images/{uuid}/file?compression=none");
    let add = c.node(0).put_bytes(&path, file.clone());
    let del = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.node(1).delete(&format!("/images/{uuid}")).await
    };
    let ((add_st, add_v), (del_st, del_v)) = tokio::join!(add, del);
    assert_eq!(del_st, 204, "DeleteImage: {del_v}");
    assert!(
        [200, 404].contains(&add_st),
        "AddImageFile either ran first or found no image: {add_st} {add_v}"
    );
    for n in &c.nodes {
        assert_eq!(n.get(&format!("/images/{uuid}")).await.0, 404);
    }
    // (The image's key in the shared store is imgapi/images/<3>/<uuid>/.)
    let left: Vec<_> = walk(&c._shared.path().join("manta/imgapi/images"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&uuid))
        .collect();
    assert!(left.is_empty(), "orphan bytes: {left:?}");
}

/// The upload area of an upload in the manta store.
fn upload_area(id: &str) -> String {
    format!("imgapi/uploads/{}/{id}.pieces/", &id[..3])
}

/// PATCH until it is not 423 (a client retrying while a dead or frozen
/// node's lease runs out), at most 40 s.
async fn patch_when_free(s: &Server, loc: &str, off: usize, body: &[u8]) -> (u16, String) {
    let t0 = Instant::now();
    loop {
        let (st, _, v) = s
            .tus_patch(loc, Some(LUKE), off as u64, body.to_vec())
            .await;
        if st != 423 || t0.elapsed() > Duration::from_secs(40) {
            return (st, v.to_string());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn on_s3_every_patch_on_the_next_node_and_no_node_keeps_a_byte() {
    let Some(c) = Cluster::start_s3(3).await else {
        return;
    };
    // Uneven chunks, 100 KiB to 20 MiB, across 5 MiB parts.
    let sizes = [100 << 10, 3 * MIB + 7, 20 * MIB, 777_777, 6 * MIB, MIB];
    let file = data(sizes.iter().sum(), 91);
    let (st, h) = c
        .node(0)
        .tus_create(file.len() as u64, Some(LUKE), &[])
        .await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let id = upload_id(&loc);
    let mut off = 0usize;
    for (i, n) in sizes.iter().enumerate() {
        off = patch_on_next_node(&c, i, &loc, &file, off, *n).await;
        c.nothing_staged_on_any_node();
        if off < file.len() {
            // The bytes so far are in the bucket, in the upload's area.
            assert!(!c.bucket_keys(&upload_area(&id)).await.is_empty());
        }
    }
    register_everywhere(&c, 2, "round-robin-s3", &id, &file).await;
    // Completion removed every piece.
    assert_eq!(c.bucket_keys(&upload_area(&id)).await, Vec::<String>::new());
    for n in &c.nodes {
        let out = n.admin(&["check-files"]);
        assert!(out.status.success(), "check-files on {}", n.url);
    }
}

#[tokio::test]
async fn on_s3_a_node_killed_with_its_disk_gone_mid_patch_costs_nothing() {
    let Some(mut c) = Cluster::start_s3(3).await else {
        return;
    };
    let file = data(17 * MIB + 5, 92);
    let (st, h) = c
        .node(0)
        .tus_create(file.len() as u64, Some(LUKE), &[])
        .await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let first = 7 * MIB + 3; // a whole part and a tail
    let (st, _, v) = c
        .node(0)
        .tus_patch(&loc, Some(LUKE), 0, file[..first].to_vec())
        .await;
    assert_eq!(st, 204, "{v}");
    // Node 1 takes a PATCH whose body stops after more than a part, and
    // dies with its disk.
    let pending = stalled_patch(c.node(1), &loc, first, &file[first..first + 6 * MIB]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = c.nodes[1].child().kill();
    let _ = c.nodes[1].child().wait();
    std::fs::remove_dir_all(c.nodes[1].data_dir()).unwrap();
    let _ = pending.await;
    for i in [0, 2] {
        let (st, off, _) = c.node(i).tus_head(&format!("{loc}?account={LUKE}")).await;
        assert_eq!((st, off), (200, Some(first as u64)), "node {i}");
    }
    let (st, v) = patch_when_free(c.node(2), &loc, first, &file[first..]).await;
    assert_eq!(st, 204, "{v}");
    let id = upload_id(&loc);
    c.nodes.remove(1);
    register_everywhere(&c, 0, "survivor-s3", &id, &file).await;
}

/// Send `sig` (STOP, CONT) to a node.
fn signal(s: &Server, sig: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", &format!("kill -{sig} {}", s.pid())])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig}");
}

#[tokio::test]
async fn on_s3_a_frozen_node_is_fenced_out_and_its_late_bytes_never_land() {
    let Some(c) = Cluster::start_s3(3).await else {
        return;
    };
    let len = 16 * MIB;
    let (mine, theirs) = (data(len, 93), data(len, 94));
    let (st, h) = c.node(0).tus_create(len as u64, Some(LUKE), &[]).await;
    assert_eq!(st, 201);
    let loc = location(&h);
    let head = 2 * MIB;
    let (st, _, v) = c
        .node(0)
        .tus_patch(&loc, Some(LUKE), 0, mine[..head].to_vec())
        .await;
    assert_eq!(st, 204, "{v}");
    // Node 1 takes a PATCH, sends parts of it (more than a part: one goes
    // to the store), and is frozen mid-body.
    let frozen_patch = stalled_patch(c.node(1), &loc, head, &theirs[head..head + 9 * MIB]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&c.nodes[1], "STOP");
    // Its lease runs out; node 2 takes the upload over from the last
    // acknowledged byte and finishes it with other bytes.
    let (st, v) = patch_when_free(c.node(2), &loc, head, &mine[head..]).await;
    assert_eq!(st, 204, "{v}");
    // The frozen node wakes, its client goes away: it must commit nothing.
    signal(&c.nodes[1], "CONT");
    frozen_patch.abort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in &c.nodes {
        let (st, off, _) = n.tus_head(&format!("{loc}?account={LUKE}")).await;
        assert_eq!((st, off), (200, Some(len as u64)), "HEAD on {}", n.url);
    }
    let id = upload_id(&loc);
    register_everywhere(&c, 1, "fenced", &id, &mine).await;
    assert_eq!(c.bucket_keys(&upload_area(&id)).await, Vec::<String>::new());
}

#[tokio::test]
async fn on_s3_a_parallel_upload_across_nodes_is_one_file() {
    let Some(c) = Cluster::start_s3(3).await else {
        return;
    };
    let lens = [6 * MIB + 1, 3 * MIB, 5 * MIB + 77];
    let file = data(lens.iter().sum(), 95);
    let mut parts = Vec::new();
    let mut at = 0;
    for (i, l) in lens.iter().enumerate() {
        let loc = partial(c.node(i), *l, LUKE).await;
        let (st, _, v) = c
            .node(i + 1)
            .tus_patch(&loc, Some(LUKE), 0, file[at..at + l].to_vec())
            .await;
        assert_eq!(st, 204, "{v}");
        at += l;
        parts.push(loc);
    }
    let (st, loc, v) = final_of(c.node(2), &parts, LUKE).await;
    assert_eq!(st, 201, "{v}");
    let loc = loc.expect("a Location");
    for n in &c.nodes {
        let (st, off, _) = n.tus_head(&format!("{loc}?account={LUKE}")).await;
        assert_eq!(
            (st, off),
            (200, Some(file.len() as u64)),
            "HEAD on {}",
            n.url
        );
    }
    c.nothing_staged_on_any_node();
    let id = upload_id(&loc);
    register_everywhere(&c, 0, "parallel-s3", &id, &file).await;
}

/// A TCP relay to PostgreSQL that the test can stall: while stalled it
/// passes nothing on, either way, on the connections it has and on those
/// it accepts meanwhile (a database, or the network to it, that stopped
/// answering without closing anything); once it goes on, what it held
/// goes through.
struct Relay {
    port: u16,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stalled, _) = tokio::sync::watch::channel(false);
        let gate = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, gate) = (target.clone(), gate.subscribe());
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = relay(client, server, gate).await;
                    }
                });
            }
        });
        Relay { port, stalled }
    }

    fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }
}

/// Pass bytes both ways between `a` and `b`, each chunk once `gate` is
/// open.
async fn relay(
    mut a: tokio::net::TcpStream,
    mut b: tokio::net::TcpStream,
    mut gate: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        tokio::select! {
            n = ar.read(&mut up) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                let _ = gate.wait_for(|s| !*s).await;
                bw.write_all(&up[..n]).await?;
            }
            n = br.read(&mut down) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                let _ = gate.wait_for(|s| !*s).await;
                aw.write_all(&down[..n]).await?;
            }
        }
    }
}

/// `url` with its `host:port` replaced by `127.0.0.1:port`; and the
/// original `host:port`.
fn through_port(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let at = if auth.is_empty() { "" } else { "@" };
    (
        format!("{scheme}://{auth}{at}127.0.0.1:{port}/{path}"),
        host.to_string(),
    )
}

/// A request against a database that does not answer: 503
/// DatabaseUnavailable with Retry-After, within the configured timeouts.
async fn assert_unavailable_in_time(s: &Server, method: &str, path: &str, body: Vec<u8>) {
    let t0 = Instant::now();
    let mut headers = vec![("tus-resumable", "1.0.0")];
    if method == "PATCH" {
        headers.push(("content-type", "application/offset+octet-stream"));
        headers.push(("upload-offset", "1048576"));
    }
    let r = s
        .request(method.parse().unwrap(), path, &headers, body)
        .await;
    let took = t0.elapsed();
    assert_eq!(
        r.status,
        503,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        !r.header("retry-after").is_empty(),
        "{method} {path}: no Retry-After"
    );
    if method != "HEAD" {
        assert_eq!(r.error().code, "DatabaseUnavailable", "{method} {path}");
    }
    assert!(
        took < Duration::from_secs(15),
        "{method} {path} took {took:?}"
    );
}

// (Threads of its own: the relay runs while the test waits for the node.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_is_503_in_time_and_the_node_recovers_by_itself() {
    let Some(url) = cluster_database() else {
        return;
    };
    let relay = {
        let (_, target) = through_port(&url, 0);
        Relay::start(target).await
    };
    let (via, _) = through_port(&url, relay.port);
    let s = Server::spawn_with_config(&format!(
        "[database]\nurl = \"{via}\"\nconnect_timeout_secs = 1\n\
         statement_timeout_secs = 2\nacquire_timeout_secs = 2\n"
    ))
    .await;
    let img = s.create_active(LUKE, "before-the-outage", true, b"x").await;
    let uuid = img["uuid"].as_str().unwrap().to_string();
    let file = data(2 * MIB, 77);
    let loc = s.tus_location(file.len() as u64, Some(LUKE)).await;
    let (st, _, v) = s.tus_patch(&loc, Some(LUKE), 0, file[..MIB].to_vec()).await;
    assert_eq!(st, 204, "{v}");

    relay.stall(true);
    let acct = format!("?account={LUKE}");
    assert_unavailable_in_time(&s, "GET", &format!("/images/{uuid}"), vec![]).await;
    assert_unavailable_in_time(&s, "GET", "/images?name=before-the-outage", vec![]).await;
    assert_unavailable_in_time(&s, "HEAD", &format!("{loc}{acct}"), vec![]).await;
    assert_unavailable_in_time(&s, "PATCH", &format!("{loc}{acct}"), file[MIB..].to_vec()).await;

    // The database answers again: the node serves again by itself, and
    // the upload resumes from its last acknowledged byte.
    relay.stall(false);
    let t0 = Instant::now();
    loop {
        let (st, v) = s.get(&format!("/images/{uuid}")).await;
        if st == 200 {
            assert_eq!(v["name"], "before-the-outage");
            break;
        }
        assert_eq!(st, 503, "{v}");
        assert!(t0.elapsed() < Duration::from_secs(30), "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, off, _) = s.tus_head(&format!("{loc}{acct}")).await;
    assert_eq!((st, off), (200, Some(MIB as u64)));
    // (The cut PATCH's lease may still be held for a while.)
    let (st, v) = patch_when_free(&s, &loc, MIB, &file[MIB..]).await;
    assert_eq!(st, 204, "{v}");
    let id = upload_id(&loc);
    let (st, v) = s
        .post(
            &format!("/images{acct}"),
            manifest("after-the-outage", &id, &file),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (bytes, _) = fetch(&s, v["uuid"].as_str().unwrap()).await;
    assert!(bytes == file, "the file differs");
    drop(s);
    drop_pg_database(&url);
}
