//! The contract suite: the same operations on a temporary SQLite database
//! (the functions of `db::*`) and on a fresh PostgreSQL database (those of
//! `db::pg::*`) give the same results. Each test creates its own database
//! on the server of `IMGAPI_TEST_DATABASE_URL` and drops it after.

use std::time::Duration;

use rusqlite::Connection;
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::{MIGRATIONS, PgConfig, PgConn, PgDb};
use crate::clock::Timestamp;
use crate::db::images::tests::{Rng, filters, image, queries, u, varied_queries};
use crate::db::images::{ListQuery, Select, StateFilter};
use crate::db::{self, DbError};

/// The server's URL, or None (with a loud notice) when it is not set
/// outside CI; in CI a missing server fails the test.
fn server_url() -> Option<String> {
    match std::env::var("IMGAPI_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => panic!(
            "IMGAPI_TEST_DATABASE_URL is not set: the PostgreSQL tests need a server \
             (scripts/pg-server.sh start DIR PORT)"
        ),
        _ => {
            // Straight to stderr, past the harness's capture of passing tests.
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"\n*** PostgreSQL test NOT RUN: set IMGAPI_TEST_DATABASE_URL \
                  (scripts/pg-server.sh start DIR PORT) ***\n",
            );
            None
        }
    }
}

/// `url` naming database `db` instead of its own.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((host, _)) => format!("{scheme}://{host}"),
            None => format!("{scheme}://{rest}"),
        },
        None => panic!("IMGAPI_TEST_DATABASE_URL must be a postgres:// URL"),
    };
    format!("{base}/{db}{query}")
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to IMGAPI_TEST_DATABASE_URL");
    tokio::spawn(conn);
    client
}

/// A fresh database of its own, dropped (even if the test panics) with
/// the value.
struct TestDb {
    server: String,
    name: String,
    url: String,
}

impl TestDb {
    async fn new() -> Option<TestDb> {
        let server = server_url()?;
        let name = format!("imgapi_t_{}", Uuid::new_v4().simple());
        admin(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        Some(TestDb {
            url: with_db(&server, &name),
            server,
            name,
        })
    }

    fn config(&self) -> PgConfig {
        PgConfig::new(self.url.clone())
    }

    async fn open(&self) -> PgDb {
        PgDb::open(&self.config()).await.expect("open")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Its own runtime: drop may run inside the test's.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                admin(&server)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
    }
}

fn sqlite() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    db::migrate(&mut c).unwrap();
    c
}

/// Run `f` with both databases: the SQLite connection and a PostgreSQL
/// write transaction (committed if `f` does not panic).
async fn both<T: Send + 'static>(
    lite: Connection,
    pg: &PgDb,
    f: impl FnOnce(&Connection, &mut PgConn) -> T + Send + 'static,
) -> (Connection, T) {
    pg.write(move |c| -> Result<_, DbError> {
        let out = f(&lite, c);
        Ok((lite, out))
    })
    .await
    .unwrap()
}

/// A result's shape for comparison: its value's Debug form, or which
/// error (the kinds both backends share).
fn shape<T: std::fmt::Debug>(r: db::Result<T>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(DbError::NotFound { entity, id }) => format!("NotFound({entity:?}, {id})"),
        Err(DbError::Conflict { what, .. }) => format!("Conflict({what})"),
        Err(_) => "error".to_string(),
    }
}

macro_rules! same {
    ($lite:expr, $pg:expr, $what:expr) => {{
        let (a, b) = (shape($lite), shape($pg));
        assert_eq!(b, a, "{} differs (left: PostgreSQL, right: SQLite)", $what);
        a
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_apply_each_migration_once() {
    let Some(t) = TestDb::new().await else { return };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let cfg = t.config();
            tokio::spawn(async move {
                let db = PgDb::open(&cfg).await.expect("open");
                // (open applied what it applied; a second pass applies none)
                assert_eq!(db.migrate().await.unwrap(), 0);
            })
        })
        .collect();
    for o in opens {
        o.await.unwrap();
    }
    let c = admin(&t.url).await;
    let rows = c
        .query(
            "SELECT version, count(*) FROM imgapi_migrations GROUP BY version ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(i32, i64)> = MIGRATIONS.iter().map(|(v, _, _)| (*v, 1)).collect();
    assert_eq!(got, want);
    // The schema is there once (a table each migration made).
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'images_name_trgm'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_images_gives_what_sqlite_gives() {
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    let mut r = Rng(13);
    let imgs: Vec<_> = (0..250).map(|i| image(&mut r, i)).collect();
    let (lite, ()) = both(sqlite(), &pg, move |l, c| {
        for i in &imgs {
            db::images::insert(l, i).unwrap();
            super::images::insert(c, i).unwrap();
        }
    })
    .await;
    assert_side_tables_follow(&pg).await;
    let (lite, n) = compare_lists(lite, &pg).await;
    assert!(n > 1500, "only {n} queries found images");

    // Updates (names, tags, acl, billing tags, state, date) and deletes.
    let (lite, ()) = both(lite, &pg, move |l, c| {
        let mut all = db::images::all(l).unwrap();
        for (k, img) in all.iter_mut().enumerate() {
            match k % 4 {
                0 => {
                    let fresh = image(&mut r, k as u32);
                    *img = crate::manifest::Image {
                        uuid: img.uuid,
                        ..fresh
                    };
                }
                1 if k % 8 == 1 => {
                    assert!(db::images::delete(l, img.uuid).unwrap());
                    assert!(super::images::delete(c, img.uuid).unwrap());
                    continue;
                }
                2 => img.disabled = !img.disabled,
                3 => {
                    img.activated = true;
                    img.placeholder = None;
                    img.published_at = Some(format!("2020-01-0{}T12:00:00.000Z", 1 + k % 5));
                }
                _ => continue,
            }
            db::images::update(l, img).unwrap();
            super::images::update(c, img).unwrap();
        }
    })
    .await;
    assert_side_tables_follow(&pg).await;
    let (_, n) = compare_lists(lite, &pg).await;
    assert!(n > 1000, "only {n} queries found images");
}

/// The side tables hold exactly the rows of the images' JSON columns
/// (with each image's state and date for the tags).
async fn assert_side_tables_follow(pg: &PgDb) {
    let diffs = pg
        .read(|c| {
            let mut out = Vec::new();
            for (table, cols, from) in [
                (
                    "image_tags",
                    "tag, uuid, state, published_at",
                    "SELECT t, uuid, state, published_at FROM images, jsonb_array_elements_text(tags_search) t",
                ),
                (
                    "image_billing_tags",
                    "tag, uuid, state, published_at",
                    "SELECT t, uuid, state, published_at FROM images, jsonb_array_elements_text(billing_tags) t",
                ),
                (
                    "image_acl",
                    "account, uuid",
                    "SELECT a::uuid, uuid FROM images, jsonb_array_elements_text(acl) a",
                ),
                (
                    "image_values",
                    "field, value, images",
                    "SELECT * FROM (SELECT 'name', name, count(*) FROM images GROUP BY name \
                     UNION ALL SELECT 'version', version, count(*) FROM images GROUP BY version) v",
                ),
            ] {
                let r = c.query_one(
                    "diff",
                    &format!(
                        "SELECT (SELECT count(*) FROM ((SELECT {cols} FROM {table} EXCEPT {from}) \
                         UNION ALL ({from} EXCEPT SELECT {cols} FROM {table})) d), \
                         (SELECT count(*) FROM {table})"
                    ),
                    &[],
                )?;
                out.push((table, super::count(&r, 0)?, super::count(&r, 1)?));
            }
            Ok::<_, DbError>(out)
        })
        .await
        .unwrap();
    for (table, diff, rows) in diffs {
        assert_eq!(diff, 0, "{table} does not follow the images");
        let least = if table == "image_values" { 1 } else { 50 };
        assert!(rows >= least, "{table} has only {rows} rows");
    }
}

/// Every ListImages query of the SQLite suite (each filter, each pair,
/// with and without the account, both orders, markers; the edge cases in
/// more states and pages) on both, both selects. Returns how many found
/// images.
async fn compare_lists(lite: Connection, pg: &PgDb) -> (Connection, usize) {
    let mut qs: Vec<(String, ListQuery)> = queries();
    qs.extend(varied_queries());
    // The runtime's path too (GetImage and ListImages' own pool, whose
    // statements are planned once, generic plans), twice: the second run
    // uses the prepared statement.
    for (name, q) in &qs {
        for select in [Select::Wire, Select::Manifest] {
            let want = db::images::list_json(&lite, q, select).unwrap();
            for run in 0..2 {
                let got = pg.image_list_json(q, select).await.unwrap();
                assert_eq!(got, want, "{name} {select:?} {q:?} (async, run {run})");
            }
        }
    }
    pg.read(move |c| -> Result<_, DbError> {
        let mut found = 0;
        for (name, q) in &qs {
            for select in [Select::Wire, Select::Manifest] {
                let want = db::images::list_json(&lite, q, select).unwrap();
                let got = super::images::list_json(c, q, select).unwrap();
                assert_eq!(got, want, "{name} {select:?} {q:?}");
                found += usize::from(!want.is_empty() && select == Select::Wire);
            }
        }
        Ok((lite, found))
    })
    .await
    .unwrap()
}

/// Download statistics: batches added (twice to one image, once to a
/// deleted one), read back with GetImage, and ListImages' filters on them
/// with every filter of the suite, with and without the account, on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_statistics_give_what_sqlite_gives() {
    use crate::manifest::DownloadStats;
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    let mut r = Rng(21);
    let imgs: Vec<_> = (0..120).map(|i| image(&mut r, i)).collect();
    let at = |d: u32| Timestamp::parse(&format!("2026-02-{d:02}T00:00:00Z")).unwrap();
    // Every third image downloaded, on days 1 to 20; one image deleted
    // after it was counted.
    let batch: Vec<_> = imgs
        .iter()
        .enumerate()
        .filter(|(k, _)| k % 3 == 0)
        .map(|(k, i)| {
            let s = DownloadStats {
                count: 1 + k as u64 % 4,
                last_at: at(1 + k as u32 % 20),
            };
            (i.uuid, s)
        })
        .collect();
    let gone = imgs[3].uuid;
    let first = imgs[0].uuid;
    let (lite, ()) = both(sqlite(), &pg, move |l, c| {
        for i in &imgs {
            db::images::insert(l, i).unwrap();
            super::images::insert(c, i).unwrap();
        }
        assert!(db::images::delete(l, gone).unwrap());
        assert!(super::images::delete(c, gone).unwrap());
        let again = [(
            first,
            DownloadStats {
                count: 5,
                last_at: at(25),
            },
        )];
        for b in [&batch[..], &again[..]] {
            db::downloads::add(l, b).unwrap();
            super::downloads::add(c, b).unwrap();
        }
    })
    .await;
    let (lite, ()) = both(lite, &pg, move |l, c| {
        let uuids = [first, gone, u(77)];
        let got = db::downloads::of(l, &uuids).unwrap();
        assert_eq!(
            got,
            vec![(
                first,
                DownloadStats {
                    count: 6,
                    last_at: at(25)
                }
            )]
        );
        assert_eq!(super::downloads::of(c, &uuids).unwrap(), got);
    })
    .await;
    let mut qs = Vec::new();
    for (name, q) in filters() {
        for account in [None, Some(u(1))] {
            for (before, since) in [
                (Some(at(10)), None),
                (None, Some(at(10))),
                (Some(at(15)), Some(at(5))),
                (Some(at(1)), None),
            ] {
                qs.push((
                    name,
                    ListQuery {
                        account,
                        state: StateFilter::All,
                        last_downloaded_before: before,
                        last_downloaded_since: since,
                        ..q.clone()
                    },
                ));
            }
        }
    }
    for (name, q) in &qs {
        let want = db::images::list_json(&lite, q, Select::Wire).unwrap();
        let got = pg.image_list_json(q, Select::Wire).await.unwrap();
        assert_eq!(got, want, "{name} {q:?} (async)");
    }
    let found = pg
        .read(move |c| -> Result<_, DbError> {
            let mut found = 0;
            for (name, q) in &qs {
                let want = db::images::list_json(&lite, q, Select::Wire).unwrap();
                let got = super::images::list_json(c, q, Select::Wire).unwrap();
                assert_eq!(got, want, "{name} {q:?}");
                found += usize::from(!want.is_empty());
            }
            Ok(found)
        })
        .await
        .unwrap();
    assert!(found > 40, "only {found} queries found images");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_operations_give_what_sqlite_gives() {
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    both(sqlite(), &pg, |l, c| {
        let mut r = Rng(7);
        let mut imgs: Vec<_> = (0..40).map(|i| image(&mut r, i)).collect();
        // Placeholders that expire at different times.
        for (k, img) in imgs.iter_mut().enumerate().take(10) {
            img.placeholder = Some(serde_json::from_value(serde_json::json!("creating")).unwrap());
            img.expires_at = Some(format!("2026-01-0{}T00:00:00.000Z", 1 + k % 5));
        }
        imgs[12].origin = Some(imgs[11].uuid);
        imgs[13].origin = Some(imgs[11].uuid);
        for i in &imgs {
            same!(
                db::images::insert(l, i),
                super::images::insert(c, i),
                "insert"
            );
        }
        let i = &imgs[3];
        same!(
            db::images::insert(l, i),
            super::images::insert(c, i),
            "insert again"
        );
        for i in &imgs[..5] {
            same!(
                db::images::get(l, i.uuid),
                super::images::get(c, i.uuid),
                "get"
            );
        }
        same!(
            db::images::get(l, u(99)),
            super::images::get(c, u(99)),
            "get none"
        );
        same!(db::images::all(l), super::images::all(c), "all");
        let o = imgs[11].uuid;
        same!(
            db::images::dependents(l, o),
            super::images::dependents(c, o),
            "dependents"
        );
        let now = Timestamp::parse("2026-01-03T12:00:00Z").unwrap();
        let sorted = |v: db::Result<Vec<Uuid>>| {
            v.map(|mut v| {
                v.sort();
                v
            })
        };
        same!(
            sorted(db::images::expired_placeholders(l, now)),
            sorted(super::images::expired_placeholders(c, now)),
            "expired_placeholders"
        );
        let mut gone = image(&mut r, 900);
        gone.uuid = u(98);
        same!(
            db::images::update(l, &gone),
            super::images::update(c, &gone),
            "update none"
        );
        same!(
            db::images::delete(l, o),
            super::images::delete(c, o),
            "delete"
        );
        same!(
            db::images::delete(l, o),
            super::images::delete(c, o),
            "delete again"
        );
        same!(
            db::stats::image_count(l),
            super::stats::image_count(c),
            "image_count"
        );
    })
    .await;
}

fn upload(n: u8, owner: Option<u8>, created: &str) -> db::uploads::Upload {
    let t = Timestamp::parse(created).unwrap();
    db::uploads::Upload {
        id: u(n),
        owner: owner.map(u),
        length: 1000 + n as u64,
        offset: 0,
        state: db::uploads::UploadState::Uploading,
        store: crate::store::StoreName::Manta,
        data_key: format!("uploads/{n}"),
        path: None,
        metadata: [("filename".to_string(), format!("f{n}"))].into(),
        content_md5: None,
        hash: Default::default(),
        md5: None,
        sha1: None,
        error: None,
        image_uuid: None,
        created_at: t,
        updated_at: t,
        expires_at: t.plus(chrono::Duration::hours(1)),
        data_mtime: None,
        multipart: None,
        concat: db::uploads::Concat::None,
        concat_place: None,
        pieces: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_operations_give_what_sqlite_gives() {
    use db::uploads::{self as lu, Concat, ConcatPlace, MultipartState, Part, UploadState};
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    both(sqlite(), &pg, |l, c| {
        use super::uploads as pu;
        let mut ups = vec![
            upload(1, Some(1), "2026-01-01T00:00:01.001Z"),
            upload(2, Some(1), "2026-01-01T00:00:02.000Z"),
            upload(3, None, "2026-01-01T00:00:02.000Z"),
            upload(4, Some(2), "2026-01-01T00:00:03.000Z"),
            upload(5, Some(1), "2026-01-01T00:00:04.000Z"),
            upload(6, Some(1), "2026-01-01T00:00:05.000Z"),
            upload(7, Some(1), "2026-01-01T00:00:06.000Z"),
        ];
        ups[1].multipart = Some(MultipartState {
            key: "k/2".into(),
            upload_id: "mp-2".into(),
            parts: vec![Part {
                n: 1,
                etag: "\"e1\"".into(),
                size: 5 << 20,
            }],
            staged_from: 5 << 20,
        });
        ups[1].path = Some("/p/2".into());
        ups[3].pieces = Some(crate::store::Pieces {
            part_size: 8 << 20,
            parts: vec![crate::store::pieces::Piece {
                key: "a/part-0-3".into(),
                at: 0,
                size: 8 << 20,
                etag: "\"p1\"".into(),
            }],
            tail: Some(crate::store::pieces::Piece {
                key: "a/tail-8388608-3".into(),
                at: 8 << 20,
                size: 12,
                etag: "\"t1\"".into(),
            }),
        });
        ups[1].content_md5 = Some("bWQ1".into());
        ups[4].concat = Concat::Final {
            parts: vec![u(6), u(7)],
        };
        ups[5].concat = Concat::Partial { used_by: None };
        ups[6].concat = Concat::Partial { used_by: None };
        ups[6].concat_place = Some(ConcatPlace {
            at: 10,
            first_part: Some(3),
            parts: vec![],
        });
        for up in &ups {
            same!(lu::insert(l, up), pu::insert(c, up), "insert");
        }
        let all = |l: &Connection, c: &PgConn, what: &str| {
            same!(
                lu::list(l, None),
                pu::list(c, None),
                format!("{what}: list")
            );
            for o in [None, Some(u(1)), Some(u(2))] {
                same!(lu::list(l, o), pu::list(c, o), "list owner");
                same!(
                    lu::bytes_in_flight(l, o),
                    pu::bytes_in_flight(c, o),
                    "bytes"
                );
                same!(lu::open_count(l, o), pu::open_count(c, o), "open_count");
            }
            for id in 1..=8 {
                same!(
                    lu::get(l, u(id)),
                    pu::get(c, u(id)),
                    format!("{what}: get {id}")
                );
            }
            same!(lu::stalled(l), pu::stalled(c), format!("{what}: stalled"));
            same!(
                lu::count_by_state(l),
                pu::count_by_state(c),
                "count_by_state"
            );
            same!(db::stats::counts(l), super::stats::counts(c), "counts");
            for of in [None, Some(u(5))] {
                same!(
                    lu::spent_partials(l, of),
                    pu::spent_partials(c, of),
                    "spent_partials"
                );
            }
            let now = Timestamp::parse("2026-01-01T01:00:03.500Z").unwrap();
            same!(lu::expired(l, now), pu::expired(c, now), "expired");
        };
        all(l, c, "inserted");
        // Pages, newest first, after a (created_at, id).
        let mut after = None;
        loop {
            let a = same!(
                lu::list_page(l, None, after, 2),
                pu::list_page(c, None, after, 2),
                "list_page"
            );
            let page = lu::list_page(l, None, after, 2).unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id));
            assert!(!a.is_empty());
        }
        same!(
            lu::list_page(l, Some(u(1)), None, 100),
            pu::list_page(c, Some(u(1)), None, 100),
            "list_page owner"
        );
        // Progress, completion, claims.
        let mut up = ups[0].clone();
        up.offset = 1001;
        up.hash.size = 1001;
        up.hash.md5 = vec![1, 2, 3];
        up.hash.crc64 = Some(u64::MAX - 5);
        up.state = UploadState::Complete;
        up.md5 = Some("md5".into());
        up.sha1 = Some("sha1".into());
        up.data_mtime = Some("1001:123".into());
        up.updated_at = Timestamp::parse("2026-01-01T00:10:00.123Z").unwrap();
        up.multipart = ups[1].multipart.clone();
        same!(lu::update(l, &up), pu::update(c, &up), "update");
        same!(
            lu::update(l, &upload(9, None, "2026-01-01T00:00:00Z")),
            pu::update(c, &upload(9, None, "2026-01-01T00:00:00Z")),
            "update none"
        );
        let now = Timestamp::parse("2026-01-01T00:20:00Z").unwrap();
        for (id, image) in [(1, 50), (1, 51), (2, 52), (6, 53), (9, 54)] {
            same!(
                lu::mark_registered(l, u(id), u(image), now),
                pu::mark_registered(c, u(id), u(image), now),
                format!("mark_registered {id}")
            );
        }
        let mut failed = ups[3].clone();
        failed.state = UploadState::Failed;
        failed.error = Some("md5 mismatch".into());
        same!(
            lu::update(l, &failed),
            pu::update(c, &failed),
            "update failed"
        );
        same!(
            lu::mark_registered(l, u(4), u(55), now),
            pu::mark_registered(c, u(4), u(55), now),
            "mark_registered failed"
        );
        all(l, c, "claimed");
        same!(
            lu::unmark_registered(l, u(1), u(99)),
            pu::unmark_registered(c, u(1), u(99)),
            "unmark other"
        );
        same!(
            lu::unmark_registered(l, u(1), u(50)),
            pu::unmark_registered(c, u(1), u(50)),
            "unmark"
        );
        // Concatenation: partials used by the final, a place, the final done.
        for id in [6, 7] {
            same!(
                lu::set_used_by(l, u(id), Some(u(5))),
                pu::set_used_by(c, u(id), Some(u(5))),
                "set_used_by"
            );
        }
        let place = ConcatPlace {
            at: 1006,
            first_part: None,
            parts: vec![Part {
                n: 2,
                etag: "x".into(),
                size: 7,
            }],
        };
        same!(
            lu::set_place(l, u(6), Some(&place)),
            pu::set_place(c, u(6), Some(&place)),
            "set_place"
        );
        let mut p6 = lu::get(l, u(6)).unwrap().unwrap();
        p6.offset = 3;
        same!(lu::update(l, &p6), pu::update(c, &p6), "update partial");
        all(l, c, "concat");
        let mut fin = lu::get(l, u(5)).unwrap().unwrap();
        fin.state = UploadState::Complete;
        same!(lu::update(l, &fin), pu::update(c, &fin), "final complete");
        all(l, c, "final done");
        same!(lu::delete(l, u(5)), pu::delete(c, u(5)), "delete final");
        same!(lu::delete(l, u(5)), pu::delete(c, u(5)), "delete again");
        all(l, c, "final deleted");
        same!(
            lu::set_place(l, u(7), None),
            pu::set_place(c, u(7), None),
            "set_place none"
        );
        same!(
            lu::set_used_by(l, u(7), None),
            pu::set_used_by(c, u(7), None),
            "set_used_by none"
        );
        all(l, c, "end");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_operations_give_what_sqlite_gives() {
    use db::registrations::{self as lr, Compression, Job, JobKind, JobSource, JobState};
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    both(sqlite(), &pg, |l, c| {
        use super::registrations as pr;
        let job = |n: u8, at: &str| Job {
            image_uuid: u(n),
            kind: if n.is_multiple_of(2) {
                JobKind::Register
            } else {
                JobKind::Attach
            },
            source: if n.is_multiple_of(3) {
                JobSource::Path
            } else {
                JobSource::Upload
            },
            upload_id: (!n.is_multiple_of(3)).then(|| u(n + 100)),
            store: Some(crate::store::StoreName::Manta),
            source_key: format!("key/{n}"),
            content_md5: "bWQ1".into(),
            sha1: (n.is_multiple_of(2)).then(|| "abc".into()),
            size: (n % 2 == 1).then_some(12345),
            compression: Compression::Gzip,
            dataset_guid: None,
            activate: n.is_multiple_of(2),
            state: JobState::Pending,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: Timestamp::parse(at).unwrap(),
            updated_at: Timestamp::parse(at).unwrap(),
        };
        for (n, at) in [
            (1, "2026-01-01T00:00:03.000Z"),
            (2, "2026-01-01T00:00:01.000Z"),
            (3, "2026-01-01T00:00:02.500Z"),
        ] {
            same!(
                lr::insert(l, &job(n, at)),
                pr::insert(c, &job(n, at)),
                "insert"
            );
        }
        // (SQLite: its own error; PostgreSQL: a Conflict.)
        let again = job(1, "2026-01-01T00:00:00Z");
        assert!(lr::insert(l, &again).is_err() && pr::insert(c, &again).is_err());
        for n in 0..=3 {
            same!(lr::get(l, u(n)), pr::get(c, u(n)), "get");
        }
        same!(lr::pending(l), pr::pending(c), "pending");
        same!(
            lr::bump_attempts(l, u(1)),
            pr::bump_attempts(c, u(1)),
            "bump"
        );
        same!(
            lr::bump_attempts(l, u(1)),
            pr::bump_attempts(c, u(1)),
            "bump again"
        );
        same!(
            lr::bump_attempts(l, u(9)),
            pr::bump_attempts(c, u(9)),
            "bump none"
        );
        let now = Timestamp::parse("2026-01-02T00:00:00.007Z").unwrap();
        same!(
            lr::set_state(l, u(2), JobState::Failed, Some(("Code", "why")), now),
            pr::set_state(c, u(2), JobState::Failed, Some(("Code", "why")), now),
            "set_state"
        );
        same!(
            lr::set_state(l, u(3), JobState::Done, None, now),
            pr::set_state(c, u(3), JobState::Done, None, now),
            "done"
        );
        same!(
            lr::count_by_state(l),
            pr::count_by_state(c),
            "count_by_state"
        );
        same!(lr::pending(l), pr::pending(c), "pending after");
        for n in 1..=3 {
            same!(lr::get(l, u(n)), pr::get(c, u(n)), "get after");
        }
        same!(lr::delete(l, u(2)), pr::delete(c, u(2)), "delete");
        same!(lr::delete(l, u(2)), pr::delete(c, u(2)), "delete again");
        same!(
            lr::count_by_state(l),
            pr::count_by_state(c),
            "count_by_state after"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_operations_give_what_sqlite_gives() {
    use db::imports::{self as li, Execution, ImportJob};
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    both(sqlite(), &pg, |l, c| {
        use super::imports as pi;
        let job = |n: u8, image: u8, at: &str| ImportJob {
            job_uuid: u(n),
            image_uuid: u(image),
            task: "import-remote-image".into(),
            source: "https://images.example.com".into(),
            skip_owner_check: n.is_multiple_of(2),
            channels: vec!["dev".into()],
            plan: vec![u(image + 1), u(image)],
            created: vec![],
            execution: Execution::Queued,
            current_image: None,
            file_offset: 0,
            content_md5: None,
            bytes_received: 0,
            bytes_total: None,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: at.into(),
            started_at: None,
            finished_at: None,
        };
        for (n, image, at) in [
            (1, 50, "2026-01-01T00:00:02.000Z"),
            (2, 50, "2026-01-01T00:00:01.000Z"),
            (3, 60, "2026-01-01T00:00:03.000Z"),
        ] {
            same!(
                li::insert(l, &job(n, image, at)),
                pi::insert(c, &job(n, image, at)),
                "insert"
            );
        }
        let check = |l: &Connection, c: &PgConn| {
            for n in 0..=3 {
                same!(li::get(l, u(n)), pi::get(c, u(n)), "get");
            }
            for image in [50, 60, 70] {
                for e in [
                    None,
                    Some(Execution::Queued),
                    Some(Execution::Running),
                    Some(Execution::Failed),
                ] {
                    same!(
                        li::list_for_image(l, u(image), e),
                        pi::list_for_image(c, u(image), e),
                        "list_for_image"
                    );
                }
                same!(
                    li::active_for_image(l, u(image)),
                    pi::active_for_image(c, u(image)),
                    "active_for_image"
                );
            }
            same!(li::unfinished(l), pi::unfinished(c), "unfinished");
        };
        check(l, c);
        let now = "2026-01-01T00:01:00.000Z";
        same!(li::start(l, u(2), now), pi::start(c, u(2), now), "start");
        same!(
            li::start(l, u(2), "later"),
            pi::start(c, u(2), "later"),
            "start again"
        );
        same!(
            li::start(l, u(9), now),
            pi::start(c, u(9), now),
            "start none"
        );
        for image in [51, 50, 51] {
            same!(
                li::add_created(l, u(2), u(image)),
                pi::add_created(c, u(2), u(image)),
                "add_created"
            );
        }
        same!(
            li::add_created(l, u(9), u(1)),
            pi::add_created(c, u(9), u(1)),
            "add_created none"
        );
        same!(
            li::checkpoint(l, u(2), Some(u(51)), 4096, Some("bWQ1"), 8192),
            pi::checkpoint(c, u(2), Some(u(51)), 4096, Some("bWQ1"), 8192),
            "checkpoint"
        );
        same!(
            li::set_total(l, u(2), 1 << 40),
            pi::set_total(c, u(2), 1 << 40),
            "set_total"
        );
        check(l, c);
        same!(
            li::finish(l, u(2), Execution::Failed, Some(("Code", "why")), now),
            pi::finish(c, u(2), Execution::Failed, Some(("Code", "why")), now),
            "finish"
        );
        same!(
            li::finish(l, u(3), Execution::Succeeded, None, now),
            pi::finish(c, u(3), Execution::Succeeded, None, now),
            "finish ok"
        );
        check(l, c);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_operations_give_what_sqlite_gives() {
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    both(sqlite(), &pg, |l, c| {
        use super::accounts as pa;
        use db::accounts as la;
        let (a1, t1) = la::create(l, "alice", false, Some(u(1))).unwrap();
        let (p1, pt1) = pa::create(c, "alice", false, Some(u(1))).unwrap();
        assert_eq!(p1, a1);
        let (a2, t2) = la::create(l, "root", true, None).unwrap();
        let (p2, pt2) = pa::create(c, "root", true, Some(a2.uuid)).unwrap();
        assert_eq!(p2, a2);
        same!(
            la::create(l, "alice", true, None),
            pa::create(c, "alice", true, None),
            "login taken"
        );
        same!(
            la::create(l, "bob", true, Some(u(1))),
            pa::create(c, "bob", true, Some(u(1))),
            "uuid taken"
        );
        same!(la::by_token(l, &t1), pa::by_token(c, &pt1), "by_token");
        same!(
            la::by_token(l, &t2),
            pa::by_token(c, &pt2),
            "by_token operator"
        );
        same!(
            la::by_token(l, "imgapi_nothing"),
            pa::by_token(c, "imgapi_nothing"),
            "by_token none"
        );
        for id in [u(1), a2.uuid, u(7)] {
            same!(la::by_uuid(l, id), pa::by_uuid(c, id), "by_uuid");
        }
    })
    .await;
}

/// The plan of ListImages' query for `q` (EXPLAIN's text).
async fn plan(pg: &PgDb, q: ListQuery) -> String {
    pg.read(move |c| -> Result<_, DbError> {
        let (sql, args) = super::images::list_sql(&q, Select::Wire);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            args.iter().map(|a| &**a as _).collect();
        let rows = c.query(&format!("EXPLAIN {sql}"), &params)?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n"))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_plans_use_the_trigram_and_tag_indexes() {
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    // 20 000 images of varied names and versions, straight in SQL.
    pg.write(|c| {
        c.batch(
            "INSERT INTO images (uuid, owner, name, version, state, activated, disabled, public, \
             type, os, published_at, manifest) \
             SELECT md5(i::text)::uuid, md5('o' || (i % 50))::uuid, 'img-' || md5(i::text), \
             (i % 97) || '.' || md5((i * 7)::text), \
             CASE WHEN i % 10 = 0 THEN 'disabled' ELSE 'active' END, true, i % 10 = 0, i % 3 = 0, \
             'zone-dataset', 'smartos', \
             to_char(timestamp '2020-01-01' + i * interval '1 minute', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '{}' \
             FROM generate_series(1, 20000) AS i; \
             INSERT INTO image_tags (tag, uuid, state, published_at) \
             SELECT 'role=os', uuid, state, published_at FROM images WHERE state = 'disabled'; \
             ANALYZE images; ANALYZE image_tags",
        )
    })
    .await
    .unwrap();
    for (q, idx) in [
        (
            ListQuery {
                name: Some(crate::db::images::TextMatch::parse("~a3f9e")),
                ..ListQuery::default()
            },
            "images_name_trgm",
        ),
        (
            ListQuery {
                version: Some(crate::db::images::TextMatch::parse("~.c0ffe")),
                state: StateFilter::All,
                ..ListQuery::default()
            },
            "images_version_trgm",
        ),
        (
            ListQuery {
                name: Some(crate::db::images::TextMatch::parse("~a3f9e")),
                account: Some(u(3)),
                desc: true,
                ..ListQuery::default()
            },
            "images_name_trgm",
        ),
    ] {
        let p = plan(&pg, q.clone()).await;
        assert!(p.contains(idx), "{q:?} does not use {idx}:\n{p}");
    }
    // The default list walks the active images' own index.
    let p = plan(
        &pg,
        ListQuery {
            limit: 100,
            ..ListQuery::default()
        },
    )
    .await;
    assert!(p.contains("images_list_active"), "{p}");
    // An owner walks its own index in ListImages' order.
    let p = plan(
        &pg,
        ListQuery {
            owner: Some(u(3)),
            limit: 10,
            ..ListQuery::default()
        },
    )
    .await;
    assert!(p.contains("images_list_owner"), "{p}");
    // A tag whose images are all in another state than the one asked for
    // starts from the tag's rows in that state (none), not from a walk of
    // every image checking the tag.
    let p = plan(
        &pg,
        ListQuery {
            tags: vec!["role=os".into()],
            limit: 100,
            ..ListQuery::default()
        },
    )
    .await;
    assert!(p.contains("image_tags_list"), "{p}");
    // An account's private images: its own (its index, in order) and
    // those shared with it, not a walk of every private image.
    for desc in [false, true] {
        let p = plan(
            &pg,
            ListQuery {
                account: Some(u(3)),
                public: Some(false),
                desc,
                limit: 100,
                ..ListQuery::default()
            },
        )
        .await;
        assert!(
            p.contains("images_list_owner")
                && p.contains("image_acl")
                && !p.contains("images_list_public"),
            "{p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_commits_nothing_and_reads_are_read_only() {
    let Some(t) = TestDb::new().await else { return };
    let pg = t.open().await;
    let img = image(&mut Rng(3), 1);
    let uuid = img.uuid;
    let r: Result<(), DbError> = pg
        .write(move |c| {
            super::images::insert(c, &img)?;
            Err(DbError::Gone)
        })
        .await;
    assert!(matches!(r, Err(DbError::Gone)));
    let got = pg.read(move |c| super::images::get(c, uuid)).await.unwrap();
    assert!(got.is_none(), "a rolled back insert is there");
    let img = image(&mut Rng(3), 1);
    let r = pg.read(move |c| super::images::insert(c, &img)).await;
    assert!(matches!(r, Err(DbError::Postgres(_))), "{r:?}");
    // A panic in a query is an error, and the connection is not reused
    // inside its transaction.
    let r: Result<(), DbError> = pg
        .write(|c| {
            c.batch("CREATE TABLE t_panic (x int)")?;
            panic!("boom")
        })
        .await;
    assert!(matches!(r, Err(DbError::Gone)));
    let n: i64 = pg
        .read(|c| {
            let r = c.query_one(
                "t",
                "SELECT count(*) FROM pg_tables WHERE tablename = 't_panic'",
                &[],
            )?;
            super::col(&r, 0)
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_busy_database_is_unavailable_in_time() {
    // Nothing listens on this port: open fails fast, as Unavailable.
    let cfg = PgConfig {
        connect_timeout: Duration::from_millis(500),
        ..PgConfig::new("postgres://postgres@127.0.0.1:9/postgres")
    };
    let t0 = std::time::Instant::now();
    let r = PgDb::open(&cfg).await;
    assert!(matches!(r, Err(DbError::Unavailable(_))), "{:?}", r.err());
    assert!(t0.elapsed() < Duration::from_secs(3));

    let Some(t) = TestDb::new().await else { return };
    t.open().await; // migrated under the default timeouts
    let pg = PgDb::open(&PgConfig {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(300),
        statement_timeout: Duration::from_millis(300),
        ..t.config()
    })
    .await
    .unwrap();
    // A statement past the timeout is cut.
    let t0 = std::time::Instant::now();
    let r = pg.read(|c| c.batch("SELECT pg_sleep(5)")).await;
    assert!(matches!(r, Err(DbError::Unavailable(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // The pool's one connection held: the next caller waits no longer than
    // the acquire timeout.
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let pg = pg.clone();
        tokio::spawn(async move {
            pg.read(move |_| {
                let _ = held_tx.send(());
                let _ = go_rx.recv_timeout(Duration::from_secs(10));
                Ok::<_, DbError>(())
            })
            .await
        })
    };
    held_rx.await.unwrap();
    let t0 = std::time::Instant::now();
    let r = pg.read(|c| super::stats::image_count(c)).await;
    assert!(matches!(r, Err(DbError::Unavailable(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    go_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(pg.read(|c| super::stats::image_count(c)).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ended_by_the_server_are_replaced_unseen() {
    let Some(t) = TestDb::new().await else { return };
    // Three writers' and three readers' connections.
    let pg = PgDb::open(&PgConfig {
        max_connections: 6,
        ..t.config()
    })
    .await
    .unwrap();
    let busy = |write: bool| {
        let pg = pg.clone();
        tokio::spawn(async move {
            let f = |c: &mut super::PgConn| {
                std::thread::sleep(Duration::from_millis(200));
                super::stats::image_count(c)
            };
            if write {
                pg.write(f).await
            } else {
                pg.read(f).await
            }
        })
    };
    let all: Vec<_> = (0..6).map(|i| busy(i % 2 == 0)).collect();
    for r in all {
        r.await.unwrap().unwrap();
    }
    // Half for writes; of the reads', one for GetImage and ListImages on
    // generic plans.
    assert_eq!(pg.image_get(u(1)).await.unwrap(), None);
    assert_eq!(
        (
            pg.status().size,
            pg.readers_status().size,
            pg.generic_status().size
        ),
        (3, 2, 1)
    );
    // The server ends them (as a restart or a failover does).
    let n: i64 = admin(&t.server)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            &[&t.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 6);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next callers do not see it.
    for _ in 0..4 {
        assert_eq!(pg.read(|c| super::stats::image_count(c)).await.unwrap(), 0);
        assert_eq!(pg.write(|c| super::stats::image_count(c)).await.unwrap(), 0);
        assert_eq!(pg.image_get(u(1)).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_changing_one_row_on_two_nodes_lose_nothing() {
    let Some(t) = TestDb::new().await else { return };
    let nodes = [t.open().await, t.open().await];
    let up = upload(1, None, "2026-01-01T00:00:00Z");
    nodes[0]
        .write(move |c| super::uploads::insert(c, &up))
        .await
        .unwrap();
    // Each reads the upload, takes its time, and saves it one byte further.
    let writers: Vec<_> = (0..4)
        .map(|k| {
            let db = nodes[k % 2].clone();
            tokio::spawn(async move {
                db.write(|c| {
                    let mut up = super::uploads::get(c, u(1))?.expect("upload");
                    std::thread::sleep(Duration::from_millis(100));
                    up.offset += 1;
                    super::uploads::update(c, &up)
                })
                .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    let up = nodes[1]
        .read(|c| super::uploads::get(c, u(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.offset, 4, "a writer's change was lost");
}
