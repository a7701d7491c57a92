//! ListImages' plans (EXPLAIN QUERY PLAN of every shape) and its oracle
//! (every query against the pre-index implementation), and the stored list
//! form's upkeep.

use super::*;
use crate::db::images::*;

fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrate(&mut c).unwrap();
    c
}

/// The plan's lines (EXPLAIN QUERY PLAN's `detail` column).
fn plan(c: &Connection, q: &ListQuery) -> Vec<String> {
    plan_dense(c, q, Dense::default())
}

fn plan_dense(c: &Connection, q: &ListQuery, dense: Dense) -> Vec<String> {
    let (sql, args) = list_sql_dense(q, dense);
    plan_of(c, &sql, args)
}

/// The plan of `sql` with `args` bound.
fn plan_of(c: &Connection, sql: &str, args: Vec<SqlValue>) -> Vec<String> {
    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

pub(crate) fn u(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

/// Each documented filter alone, as ListImages builds it.
pub(crate) fn filters() -> Vec<(&'static str, ListQuery)> {
    let d = ListQuery::default;
    vec![
        ("none", d()),
        (
            "state=all",
            ListQuery {
                state: StateFilter::All,
                ..d()
            },
        ),
        (
            "state=disabled",
            ListQuery {
                state: StateFilter::Only(State::Disabled),
                ..d()
            },
        ),
        (
            "owner",
            ListQuery {
                owner: Some(u(1)),
                ..d()
            },
        ),
        (
            "name",
            ListQuery {
                name: Some(TextMatch::parse("base")),
                ..d()
            },
        ),
        (
            "name~",
            ListQuery {
                name: Some(TextMatch::parse("~bas")),
                ..d()
            },
        ),
        (
            "name~short",
            ListQuery {
                name: Some(TextMatch::parse("~ba")),
                ..d()
            },
        ),
        (
            "version",
            ListQuery {
                version: Some(TextMatch::parse("1.0.0")),
                ..d()
            },
        ),
        (
            "version~",
            ListQuery {
                version: Some(TextMatch::parse("~1.0")),
                ..d()
            },
        ),
        (
            "type",
            ListQuery {
                type_: Some((false, "zone-dataset".into())),
                ..d()
            },
        ),
        (
            "type!",
            ListQuery {
                type_: Some((true, "zone-dataset".into())),
                ..d()
            },
        ),
        (
            "os",
            ListQuery {
                os: Some("smartos".into()),
                ..d()
            },
        ),
        (
            "public",
            ListQuery {
                public: Some(true),
                ..d()
            },
        ),
        (
            "public=false",
            ListQuery {
                public: Some(false),
                ..d()
            },
        ),
        (
            "origin",
            ListQuery {
                origin: Some(u(2)),
                ..d()
            },
        ),
        (
            "tag",
            ListQuery {
                tags: vec!["role=os".into()],
                ..d()
            },
        ),
        (
            "tag2",
            ListQuery {
                tags: vec!["role=os".into(), "k=v".into()],
                ..d()
            },
        ),
        (
            "tagkey",
            ListQuery {
                tag_keys: vec!["role".into()],
                ..d()
            },
        ),
        (
            "billing_tag",
            ListQuery {
                billing_tags: vec!["b".into()],
                ..d()
            },
        ),
        (
            "channel",
            ListQuery {
                channel: Some("dev".into()),
                ..d()
            },
        ),
    ]
}

/// Every filter alone and every pair of them, with and without the
/// account union, both orders, with and without a marker, and the
/// anonymous caller's form (public=true, state=active).
pub(crate) fn queries() -> Vec<(String, ListQuery)> {
    let fs = filters();
    let mut out = Vec::new();
    let merge = |a: &ListQuery, b: &ListQuery| {
        let mut m = a.clone();
        if !matches!(b.state, StateFilter::Only(State::Active)) {
            m.state = b.state;
        }
        m.owner = m.owner.or(b.owner);
        m.name = m.name.clone().or(b.name.clone());
        m.version = m.version.clone().or(b.version.clone());
        m.type_ = m.type_.clone().or(b.type_.clone());
        m.os = m.os.clone().or(b.os.clone());
        m.public = m.public.or(b.public);
        m.origin = m.origin.or(b.origin);
        m.tags.extend(b.tags.iter().cloned());
        m.tag_keys.extend(b.tag_keys.iter().cloned());
        m.billing_tags.extend(b.billing_tags.iter().cloned());
        m.channel = m.channel.clone().or(b.channel.clone());
        m
    };
    let mut base: Vec<(String, ListQuery)> = Vec::new();
    for (i, (na, a)) in fs.iter().enumerate() {
        base.push((na.to_string(), a.clone()));
        for (nb, b) in &fs[i + 1..] {
            base.push((format!("{na}&{nb}"), merge(a, b)));
        }
    }
    for (n, q) in base {
        for account in [None, Some(u(9))] {
            for desc in [false, true] {
                for marker in [None, Some("2020-01-01T00:00:00.000Z".to_string())] {
                    let q = ListQuery {
                        account,
                        desc,
                        marker: marker.clone(),
                        ..q.clone()
                    };
                    let name = format!(
                        "{n} account={} desc={desc} marker={}",
                        account.is_some(),
                        marker.is_some()
                    );
                    out.push((name, q));
                }
            }
        }
    }
    out
}

#[test]
fn no_list_query_scans_the_images_table() {
    let c = conn();
    let qs = queries();
    assert!(qs.len() > 800, "{}", qs.len());
    let mut bad = Vec::new();
    let all_dense = Dense {
        tag: true,
        billing_tag: true,
        tag_key: true,
    };
    for (name, q, dense) in qs
        .iter()
        .flat_map(|(n, q)| [(n, q, Dense::default()), (n, q, all_dense)])
    {
        let p = plan_dense(&c, q, dense);
        // A SCAN of images is a full scan, unless it walks an index in
        // ListImages' order (no filter at all: state=all, every row).
        let scans = p.iter().any(|l| {
            l.starts_with("SCAN images")
                && !(matches!(q.state, StateFilter::All)
                    && l.contains("USING INDEX images_published_at"))
        });
        // Nor a side table read whole (the trigram index answers a
        // MATCH: "INDEX 0:M…").
        let side = p.iter().any(|l| {
            l.starts_with("SCAN image_")
                && !l.starts_with("SCAN image_text VIRTUAL TABLE INDEX 0:M")
        });
        let scans = scans || side;
        if scans {
            bad.push(format!("{name}:\n    {}", p.join("\n    ")));
        }
    }
    assert!(
        bad.is_empty(),
        "{} full scans:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn selective_filters_walk_their_own_index() {
    let c = conn();
    let expect = [
        ("name", "images_list_name"),
        ("owner", "images_list_owner"),
        ("version", "images_list_version"),
        ("os", "images_list_os"),
        ("type", "images_list_type"),
        ("public", "images_list_public"),
        ("none", "images_list_state"),
        ("origin", "images_origin"),
        ("tag", "image_tags"),
        ("tagkey", "image_tags"),
        ("billing_tag", "image_billing_tags"),
        ("name~", "image_text"),
        ("name~", "images_list_name"),
        ("name~short", "image_values"),
        ("name~short", "images_list_name"),
        ("version~", "image_text"),
        ("version~", "images_list_version"),
    ];
    let fs = filters();
    for (f, idx) in expect {
        let q = &fs.iter().find(|(n, _)| *n == f).unwrap().1;
        for account in [None, Some(u(9))] {
            let q = ListQuery {
                account,
                ..q.clone()
            };
            let p = plan(&c, &q);
            assert!(
                p.iter().any(|l| l.contains(idx)),
                "{f} (account {account:?}) does not use {idx}:\n{}",
                p.join("\n")
            );
        }
    }
}

#[test]
fn an_account_asking_for_private_images_walks_its_own_and_its_acl() {
    let c = conn();
    let fs = filters();
    let f = |n: &str| fs.iter().find(|(m, _)| *m == n).unwrap().1.clone();
    for (name, extra) in [
        ("public=false", None),
        ("public=false", Some("os")),
        ("public=false", Some("name~")),
        ("public=false", Some("tagkey")),
    ] {
        let mut q = ListQuery {
            account: Some(u(9)),
            ..f(name)
        };
        if let Some(e) = extra {
            let e = f(e);
            q.os = q.os.or(e.os);
            q.name = q.name.or(e.name);
            q.tag_keys.extend(e.tag_keys);
        }
        for desc in [false, true] {
            let q = ListQuery { desc, ..q.clone() };
            let p = plan(&c, &q);
            let uses = |idx: &str| p.iter().any(|l| l.contains(idx));
            assert!(
                uses("images_list_owner") && uses("image_acl") && !uses("images_list_public"),
                "{name} + {extra:?} desc={desc}:\n{}",
                p.join("\n")
            );
        }
    }
    // `~` with the account: the candidates' keys from the name index
    // alone, then the union checked in order (a co-routine).
    let q = ListQuery {
        account: Some(u(9)),
        ..f("name~")
    };
    let p = plan(&c, &q);
    assert!(
        p.iter().any(|l| l.contains("CO-ROUTINE"))
            && p.iter()
                .any(|l| l.contains("COVERING INDEX images_list_name")),
        "{}",
        p.join("\n")
    );
}

/// A `~` match over a few distinct values merges the values' walks of
/// the column's index (no sort of the candidates, no scan), with and
/// without the account, both orders, with a marker; over many values,
/// or in every state, it keeps the sorted plan.
#[test]
fn a_few_matching_values_are_merged_not_sorted() {
    let c = conn();
    for i in 0..40 {
        let mut r = Rng(i);
        let mut img = image(&mut r, i as u32);
        img.name = format!("img{i}");
        img.version = format!("1.{i}");
        insert(&c, &img).unwrap();
    }
    for (m, few) in [
        (TextMatch::Contains("img1".into()), true), // img1, img10..img19
        (TextMatch::Contains("g3".into()), true),   // 2 characters: instr
        (TextMatch::Contains("img".into()), false), // 40 names
        (TextMatch::Contains("nothing".into()), true), // none: empty page
    ] {
        for (account, desc, marker) in [
            (None, false, None),
            (Some(u(1)), false, None),
            (
                Some(u(1)),
                true,
                Some("2020-01-03T00:00:00.000Z".to_string()),
            ),
        ] {
            let q = ListQuery {
                name: Some(m.clone()),
                account,
                desc,
                marker,
                ..ListQuery::default()
            };
            let values = merge_values(&c, &q, Dense::default()).unwrap();
            assert_eq!(values.is_some(), few, "{q:?}");
            let want = uuids(old_list(&c, &q).unwrap());
            assert_eq!(uuids(list(&c, &q).unwrap()), want, "{q:?}");
            let Some(values) = values.filter(|v| !v.is_empty()) else {
                continue;
            };
            let (sql, args) =
                list_sql_select(&q, Dense::default(), Some(&values), Select::Manifest);
            let p = plan_of(&c, &sql, args);
            let has = |s: &str| p.iter().any(|l| l.contains(s));
            assert!(
                has("MERGE (UNION ALL)")
                    && has("COVERING INDEX images_list_name")
                    && !has("TEMP B-TREE")
                    && !has("SCAN images"),
                "{q:?}:\n{}",
                p.join("\n")
            );
        }
    }
    // The values: by the trigram index's hits (rowid), or from the
    // covering unique index for 1–2 characters; never a read of each
    // value's row.
    for (sub, want) in [
        (
            "img1",
            "SEARCH image_values USING INTEGER PRIMARY KEY (rowid=?)",
        ),
        (
            "g3",
            "SEARCH image_values USING COVERING INDEX sqlite_autoindex_image_values_1 (col=?)",
        ),
    ] {
        let (sql, args) = values_sql("name", sub);
        let p = plan_of(&c, sql, args);
        assert!(p.iter().any(|l| l == want), "{sub}:\n{}", p.join("\n"));
    }
    // In every state the index walks are not in ListImages' order.
    let q = ListQuery {
        name: Some(TextMatch::Contains("img1".into())),
        state: StateFilter::All,
        ..ListQuery::default()
    };
    assert_eq!(merge_values(&c, &q, Dense::default()).unwrap(), None);
}

/// The cached values of a `~` match follow the names that appear and
/// go (insert, rename, delete), each database its own; a count that
/// changes alone does not invalidate them.
#[test]
fn the_values_of_a_match_follow_new_and_removed_names() {
    let c = conn();
    let other = conn();
    let mut r = Rng(3);
    let mut imgs = Vec::new();
    for i in 0..6 {
        let mut img = image(&mut r, i);
        img.name = format!("cache{}", i % 3);
        img.disabled = false;
        img.activated = true;
        img.placeholder = None;
        insert(&c, &img).unwrap();
        imgs.push(img);
    }
    let q = ListQuery {
        name: Some(TextMatch::parse("~cache")),
        ..ListQuery::default()
    };
    let values = |c: &Connection| merge_values(c, &q, Dense::default()).unwrap();
    let generation = |c: &Connection| -> i64 {
        c.query_row("SELECT gen FROM image_values_gen", [], |r| r.get(0))
            .unwrap()
    };
    let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(values(&c), names(&["cache0", "cache1", "cache2"]));
    assert_eq!(values(&c), names(&["cache0", "cache1", "cache2"]));
    // Another database, the same substring: its own values.
    assert_eq!(values(&other), Some(vec![]));
    // One more image of an existing name: the same values, the same
    // generation.
    let g = generation(&c);
    let mut more = image(&mut r, 10);
    more.name = "cache1".into();
    insert(&c, &more).unwrap();
    assert_eq!(generation(&c), g);
    assert_eq!(values(&c), names(&["cache0", "cache1", "cache2"]));
    // A new name, a rename, a delete of a name's last image.
    let mut new = image(&mut r, 11);
    new.name = "cache9".into();
    insert(&c, &new).unwrap();
    assert_eq!(values(&c), names(&["cache0", "cache1", "cache2", "cache9"]));
    imgs[2].name = "cache-ë".into();
    update(&c, &imgs[2]).unwrap();
    assert!(delete(&c, imgs[5].uuid).unwrap());
    assert_eq!(
        values(&c),
        names(&["cache-ë", "cache0", "cache1", "cache9"])
    );
    assert!(delete(&c, new.uuid).unwrap());
    assert_eq!(values(&c), names(&["cache-ë", "cache0", "cache1"]));
    assert_eq!(values(&other), Some(vec![]));
    // Every page agrees with the old full-scan SQL.
    assert_eq!(
        uuids(list(&c, &q).unwrap()),
        uuids(old_list(&c, &q).unwrap())
    );
}

/// A tag or billing tag that does not drive (dense in every state, or
/// not the first) is checked by one probe of its side table's primary
/// key per image walked, not by reading the image's JSON arrays.
#[test]
fn dense_tags_are_checked_through_their_side_tables() {
    let c = conn();
    let q = ListQuery {
        tags: vec!["role=os".into()],
        billing_tags: vec!["b3".into()],
        ..ListQuery::default()
    };
    let dense = Dense {
        tag: true,
        billing_tag: true,
        tag_key: false,
    };
    for (account, state) in [
        (None, StateFilter::All),
        (Some(u(1)), StateFilter::All),
        (None, StateFilter::Only(State::Active)),
        (Some(u(1)), StateFilter::Only(State::Active)),
    ] {
        let q = ListQuery {
            account,
            state,
            ..q.clone()
        };
        let p = plan_dense(&c, &q, dense).join("\n");
        // In one state the tag drives its ordered walk (see
        // `a_tag_drives_an_ordered_walk`); the billing tag is probed.
        let probed: &[&str] = if state == StateFilter::All {
            &["image_tags", "image_billing_tags"]
        } else {
            &["image_billing_tags"]
        };
        for t in probed {
            assert!(
                p.lines().any(|l| l.starts_with(&format!("SEARCH {t} "))
                    && l.ends_with("USING PRIMARY KEY (tag=? AND uuid=?)")),
                "{t} {state:?}:\n{p}"
            );
        }
        assert!(!p.contains("json_each"), "{p}");
    }
}

/// A tag or billing tag in one state drives a walk of its side table's
/// index (tag, state, published_at, uuid), already in ListImages'
/// order: a co-routine, no sort, no scan of images; dense or not, with
/// the other filters, the account, both orders, a marker. In every
/// state, or for the account's `public=false` union when the tag is
/// dense, it does not.
#[test]
fn a_tag_drives_an_ordered_walk() {
    let c = conn();
    let fs = filters();
    let f = |n: &str| fs.iter().find(|(m, _)| *m == n).unwrap().1.clone();
    let all_dense = Dense {
        tag: true,
        billing_tag: true,
        tag_key: true,
    };
    let mut checked = 0;
    for (driver, index) in [
        ("tag", "image_tags_list"),
        ("tag2", "image_tags_list"),
        ("billing_tag", "image_billing_tags_list"),
    ] {
        for other in [
            None,
            Some("os"),
            Some("public"),
            Some("type!"),
            Some("tagkey"),
            Some("billing_tag"),
            Some("channel"),
            Some("state=disabled"),
        ] {
            let mut q = f(driver);
            if let Some(o) = other {
                let o = f(o);
                q.os = q.os.or(o.os);
                q.public = q.public.or(o.public);
                q.type_ = q.type_.or(o.type_);
                q.tag_keys.extend(o.tag_keys);
                q.channel = q.channel.or(o.channel);
                q.state = o.state;
                if driver != "billing_tag" {
                    q.billing_tags.extend(o.billing_tags);
                }
            }
            for (account, desc, marker, dense) in [
                (None, false, None, Dense::default()),
                (None, true, None, all_dense),
                (
                    Some(u(9)),
                    false,
                    Some("2020-01-01T00:00:00.000Z".to_string()),
                    all_dense,
                ),
                (
                    Some(u(9)),
                    true,
                    Some("2020-01-01T00:00:00.000Z".to_string()),
                    Dense::default(),
                ),
            ] {
                let q = ListQuery {
                    account,
                    desc,
                    marker: marker.clone(),
                    ..q.clone()
                };
                // An account asking for its state=disabled images asks
                // for its own: the owner's index drives.
                let owner = account.is_some() && other == Some("state=disabled");
                let sparse = dense.tag && account.is_some() && q.public == Some(false);
                let p = plan_dense(&c, &q, dense);
                let has = |s: &str| p.iter().any(|l| l.contains(s));
                let walk = has(&format!("COVERING INDEX {index} (tag=? AND state=?"));
                let ok = if owner {
                    has("images_list_owner") && !walk
                } else if sparse {
                    has("images_list_owner") && has("image_acl") && !walk
                } else {
                    walk && has("CO-ROUTINE")
                        && !has("TEMP B-TREE")
                        && !p.iter().any(|l| l.starts_with("SCAN images"))
                };
                assert!(
                    ok,
                    "{driver} + {other:?} {q:?} {dense:?}:\n{}",
                    p.join("\n")
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 8 * 4);
    // In every state the index is not in ListImages' order.
    for dense in [Dense::default(), all_dense] {
        let q = ListQuery {
            state: StateFilter::All,
            ..f("tag")
        };
        let p = plan_dense(&c, &q, dense);
        assert!(
            !p.iter().any(|l| l.contains("(tag=? AND state=?")),
            "{}",
            p.join("\n")
        );
    }
}

/// The side tables hold every image's tags, billing tags and acl, and
/// the tag tables each image's state and publication date.
fn assert_side_tables_follow(c: &Connection) {
    type Row = (String, String, Option<String>, Option<String>);
    let q = |sql: &str| -> Vec<Row> {
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    for (table, col, cols) in [
        ("image_tags", "tags_search", "state, published_at"),
        ("image_billing_tags", "billing_tags", "state, published_at"),
        ("image_acl", "acl", "NULL, NULL"),
    ] {
        let key = if table == "image_acl" {
            "account"
        } else {
            "tag"
        };
        let got = q(&format!(
            "SELECT {key}, uuid, {cols} FROM {table} ORDER BY 1, 2"
        ));
        let want = q(&format!(
            "SELECT DISTINCT j.value, i.uuid, {} FROM images i, json_each(i.{col}) j \
             ORDER BY 1, 2",
            if table == "image_acl" {
                "NULL, NULL"
            } else {
                "i.state, i.published_at"
            }
        ));
        assert!(!want.is_empty(), "{table}");
        assert_eq!(got, want, "{table}");
    }
}

/// Every insert and update stores the image's list form beside its
/// manifest (what ListImages copies into its body), and the images
/// without one (stored before the column, or by another writer) get
/// it when the database is opened.
#[test]
fn every_write_stores_the_list_form() {
    let mut c = conn();
    let check = |c: &Connection| {
        let mut st = c
            .prepare("SELECT manifest, wire FROM images ORDER BY uuid")
            .unwrap();
        let rows: Vec<(String, Option<String>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(!rows.is_empty());
        for (m, w) in rows {
            let img: Image = serde_json::from_str(&m).unwrap();
            assert_eq!(w, Some(img.listed_json().unwrap()), "{m}");
        }
    };
    let mut r = Rng(5);
    let mut imgs: Vec<Image> = (0..100).map(|i| image(&mut r, i)).collect();
    for i in &imgs {
        insert(&c, i).unwrap();
    }
    check(&c);
    for (k, img) in imgs.iter_mut().enumerate() {
        match k % 4 {
            0 => img.disabled = !img.disabled,
            1 => img.acl.push(u(7)),
            2 => {
                img.activated = true;
                img.placeholder = None;
            }
            _ => img.description = Some(format!("changed {k}")),
        }
        update(&c, img).unwrap();
    }
    check(&c);
    // Changes of the manifest that leave the list form as it was
    // (the stored files' store, an expiry) keep it.
    for img in imgs.iter_mut().step_by(5) {
        img.expires_at = Some("2030-01-01T00:00:00.000Z".into());
        for f in &mut img.files {
            f.mtime = "2030-01-01T00:00:00.000Z".into();
        }
        update(&c, img).unwrap();
    }
    check(&c);
    // A writer that does not know the list form leaves it NULL, not
    // stale (`images_wire_stale`): ListImages renders those images
    // from their manifests.
    let stale = &mut imgs[1];
    stale.description = Some("written by another writer".into());
    c.execute(
        "UPDATE images SET manifest = ?2 WHERE uuid = ?1",
        params![
            stale.uuid.to_string(),
            serde_json::to_string(&*stale).unwrap()
        ],
    )
    .unwrap();
    let q = ListQuery {
        state: StateFilter::All,
        ..ListQuery::default()
    };
    let listed = list_json(&c, &q, Select::Wire).unwrap();
    let uuid = stale.uuid.to_string();
    let got: Vec<&String> = listed
        .iter()
        .filter_map(|l| match l {
            Listed::Manifest(m) if m.contains(&uuid) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "{listed:?}");
    assert!(got[0].contains("written by another writer"));
    assert_eq!(
        listed
            .iter()
            .filter(|l| matches!(l, Listed::Wire(_)))
            .count(),
        listed.len() - 1
    );
    c.execute("UPDATE images SET wire = NULL WHERE rowid % 3 = 0", [])
        .unwrap();
    assert_eq!(crate::db::migrate(&mut c).unwrap(), 0);
    check(&c);
    let missing: i64 = c
        .query_row("SELECT count(*) FROM images WHERE wire IS NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(missing, 0);
}

/// ListImages before its indexes (issue 13): the reference results.
fn old_list(conn: &Connection, q: &ListQuery) -> Result<Vec<Image>> {
    let mut wh: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let arg = |args: &mut Vec<SqlValue>, v: SqlValue| -> String {
        args.push(v);
        format!("?{}", args.len())
    };
    let text = |s: &str| SqlValue::Text(s.to_string());

    match q.state {
        StateFilter::All => {}
        StateFilter::Only(s) => {
            let p = arg(&mut args, text(s.as_str()));
            wh.push(format!("state = {p}"));
        }
    }
    if let Some(o) = q.owner {
        let p = arg(&mut args, text(&o.to_string()));
        wh.push(format!("owner = {p}"));
    }
    for (col, m) in [("name", &q.name), ("version", &q.version)] {
        match m {
            Some(TextMatch::Exact(s)) => {
                let p = arg(&mut args, text(s));
                wh.push(format!("{col} = {p}"));
            }
            Some(TextMatch::Contains(s)) => {
                let p = arg(&mut args, text(s));
                wh.push(format!("instr({col}, {p}) > 0"));
            }
            None => {}
        }
    }
    if let Some((neg, t)) = &q.type_ {
        let p = arg(&mut args, text(t));
        wh.push(format!("type {} {p}", if *neg { "!=" } else { "=" }));
    }
    if let Some(os) = &q.os {
        let p = arg(&mut args, text(os));
        wh.push(format!("os = {p}"));
    }
    if let Some(public) = q.public {
        let p = arg(&mut args, SqlValue::Integer(public as i64));
        wh.push(format!("public = {p}"));
    }
    if let Some(o) = q.origin {
        let p = arg(&mut args, text(&o.to_string()));
        wh.push(format!("origin = {p}"));
    }
    for t in &q.tags {
        let p = arg(&mut args, text(t));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM json_each(images.tags_search) WHERE value = {p})"
        ));
    }
    for k in &q.tag_keys {
        let p = arg(&mut args, text(&format!("{k}=")));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM json_each(images.tags_search) WHERE substr(value, 1, length({p})) = {p})"
        ));
    }
    for t in &q.billing_tags {
        let p = arg(&mut args, text(t));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM json_each(images.billing_tags) WHERE value = {p})"
        ));
    }
    match q.channel.as_deref() {
        None => {}
        Some("*") => wh.push("channels != '[]'".to_string()),
        Some(c) => {
            let p = arg(&mut args, text(c));
            wh.push(format!(
                "EXISTS (SELECT 1 FROM json_each(images.channels) WHERE value = {p})"
            ));
        }
    }
    if let Some(m) = &q.marker {
        let p = arg(&mut args, text(m));
        wh.push(format!(
            "published_at {} {p}",
            if q.desc { "<=" } else { ">=" }
        ));
    }
    if let Some(a) = q.account {
        // (1) own images; (2) activated public; (3) activated private shared via acl.
        // Others' images only when the state filter is not unactivated/disabled.
        let p = arg(&mut args, text(&a.to_string()));
        let others = !matches!(
            q.state,
            StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
        );
        if others {
            wh.push(format!(
                "(owner = {p} OR (activated = 1 AND (public = 1 OR \
                 EXISTS (SELECT 1 FROM json_each(images.acl) WHERE value = {p}))))"
            ));
        } else {
            wh.push(format!("owner = {p}"));
        }
    }
    let where_sql = if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    };
    let order = if q.desc { "DESC" } else { "ASC" };
    let lim = arg(&mut args, SqlValue::Integer(q.limit as i64));
    let sql = format!(
        "SELECT manifest FROM images {where_sql} ORDER BY published_at {order}, uuid {order} LIMIT {lim}"
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))?;
    rows.map(|r| from_row(r?)).collect()
}

/// A deterministic pseudo-random sequence.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next(xs.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "base",
    "base-64",
    "Base",
    "BASE-64-lts",
    "minimal",
    "a",
    "ab",
    "abc",
    "100%_pure",
    "100_x",
    "50%",
    "under_score",
    "ünïcödé-img",
    "quote\"name",
    "x*y?[z]",
];
const VERSIONS: &[&str] = &[
    "1.0.0", "1.0.1", "2.0", "20.4.0", "v1", "1%0", "1_0", "1.", "A",
];
const TAGS: &[&str] = &[
    "role=os", "role=app", "k=v", "k=", "kk=v", "ke=y", "role=OS",
];

pub(crate) fn image(r: &mut Rng, i: u32) -> Image {
    let owners: Vec<String> = (1..=4).map(|n| u(n).to_string()).collect();
    let tags: serde_json::Map<String, serde_json::Value> = (0..r.next(3))
        .map(|_| {
            let (k, v) = r.pick(TAGS).split_once('=').unwrap();
            (k.to_string(), serde_json::Value::String(v.to_string()))
        })
        .collect();
    let acl: Vec<String> = (0..r.next(3))
        .map(|_| owners[r.next(4) as usize].clone())
        .collect();
    let billing: Vec<&str> = (0..r.next(3)).map(|_| r.pick(&["b", "c", "b%"])).collect();
    let activated = r.next(5) != 0;
    let published = if activated || r.next(2) == 0 {
        // Few distinct dates: ties are ordered by uuid.
        Some(format!("2020-01-0{}T00:00:00.000Z", 1 + r.next(5)))
    } else {
        None
    };
    let placeholder = match r.next(12) {
        0 => Some("creating"),
        1 => Some("failed"),
        _ => None,
    };
    let mut uuid = [0u8; 16];
    uuid[..4].copy_from_slice(&i.to_be_bytes());
    uuid[4] = r.next(256) as u8;
    let v = serde_json::json!({
        "v": 2,
        "uuid": Uuid::from_bytes(uuid),
        "owner": owners[r.next(4) as usize],
        "name": r.pick(NAMES),
        "version": r.pick(VERSIONS),
        "activated": activated,
        "disabled": r.next(5) == 0,
        "public": r.next(2) == 0,
        "placeholder": placeholder,
        "published_at": published,
        "type": r.pick(&["zone-dataset", "zvol", "docker"]),
        "os": r.pick(&["smartos", "linux", "other"]),
        "origin": if r.next(4) == 0 { Some(u(2 + r.next(2) as u8)) } else { None },
        "acl": acl,
        "billing_tags": billing,
        "tags": if tags.is_empty() { None } else { Some(tags) },
        "channels": if r.next(3) == 0 { vec!["dev"] } else { vec![] },
    });
    serde_json::from_value(v).unwrap()
}

/// Queries of the text and tag edge cases, with every caller.
pub(crate) fn edge_queries() -> Vec<(String, ListQuery)> {
    let mut out = Vec::new();
    let texts = [
        "~a",
        "~A",
        "~ab",
        "~abc",
        "~bas",
        "~Bas",
        "~ase",
        "~-64",
        "~%",
        "~_",
        "~%_",
        "~0%",
        "~100%",
        "~_sc",
        "~ünï",
        "~cödé",
        "~\"na",
        "~e\"n",
        "~*y?",
        "~[z]",
        "~x*y",
        "~1.0",
        "~.0.",
        "~1%0",
        "~1_",
        "~",
        "~zzzz",
        "abc",
        "100%_pure",
        "A",
    ];
    for t in texts {
        for account in [None, Some(u(1)), Some(u(3))] {
            for (n, q) in [
                (
                    "name",
                    ListQuery {
                        name: Some(TextMatch::parse(t)),
                        ..ListQuery::default()
                    },
                ),
                (
                    "version",
                    ListQuery {
                        version: Some(TextMatch::parse(t)),
                        ..ListQuery::default()
                    },
                ),
            ] {
                for state in [StateFilter::All, StateFilter::Only(State::Active)] {
                    out.push((
                        format!("{n}={t} account={account:?} state={state:?}"),
                        ListQuery {
                            account,
                            state,
                            ..q.clone()
                        },
                    ));
                }
            }
        }
    }
    for k in ["role", "k", "kk", "r", "ro"] {
        out.push((
            format!("tag.{k}="),
            ListQuery {
                tag_keys: vec![k.into()],
                ..ListQuery::default()
            },
        ));
    }
    for t in TAGS {
        for state in [StateFilter::All, StateFilter::Only(State::Active)] {
            for account in [None, Some(u(1))] {
                out.push((
                    format!("tag {t} {state:?} account={account:?}"),
                    ListQuery {
                        tags: vec![t.to_string()],
                        state,
                        account,
                        ..ListQuery::default()
                    },
                ));
            }
        }
    }
    for b in ["b", "c", "b%", "%"] {
        out.push((
            format!("billing {b}"),
            ListQuery {
                billing_tags: vec![b.into()],
                ..ListQuery::default()
            },
        ));
    }
    out
}

pub(crate) fn uuids(v: Vec<Image>) -> Vec<Uuid> {
    v.into_iter().map(|i| i.uuid).collect()
}

/// Each filter alone (with and without the account) and the edge cases,
/// each in more states and pages: ListImages' default state and the
/// filter's own, every state with a page of 7 from a date, unactivated,
/// the anonymous caller's form (active public images), disabled in pages
/// of 3.
pub(crate) fn varied_queries() -> Vec<(String, ListQuery)> {
    let mut qs: Vec<(String, ListQuery)> = filters()
        .into_iter()
        .flat_map(|(n, q)| {
            [None, Some(u(1))].map(|account| {
                (
                    n.to_string(),
                    ListQuery {
                        account,
                        ..q.clone()
                    },
                )
            })
        })
        .collect();
    qs.extend(edge_queries());
    let date = Some("2020-01-03T00:00:00.000Z".to_string());
    let mut out = Vec::new();
    for (name, q) in qs {
        for (state, public, limit, marker) in [
            (q.state, q.public, 1000, q.marker.clone()),
            (StateFilter::All, q.public, 7, date.clone()),
            (StateFilter::Only(State::Unactivated), q.public, 1000, None),
            (
                StateFilter::Only(State::Active),
                Some(true),
                7,
                date.clone(),
            ),
            (StateFilter::Only(State::Disabled), None, 3, None),
        ] {
            out.push((
                name.clone(),
                ListQuery {
                    state,
                    public,
                    limit,
                    marker,
                    ..q.clone()
                },
            ));
        }
    }
    out
}

fn compare_all(c: &Connection) -> usize {
    let mut n = 0;
    // Every pair, with and without the account, both orders, a marker;
    // then each filter alone and the edge cases, in more states and pages.
    for (name, q) in queries().into_iter().chain(varied_queries()) {
        let want = uuids(old_list(c, &q).unwrap());
        assert_eq!(uuids(list(c, &q).unwrap()), want, "{name} {q:?}");
        n += usize::from(!want.is_empty());
    }
    n
}

#[test]
fn every_filter_returns_what_it_returned_before_the_indexes() {
    let mut c = conn();
    let mut r = Rng(13);
    let mut imgs: Vec<Image> = (0..250).map(|i| image(&mut r, i)).collect();
    let tx = c.transaction().unwrap();
    for i in &imgs {
        insert(&tx, i).unwrap();
    }
    tx.commit().unwrap();
    let nonempty = compare_all(&c);
    assert!(nonempty > 800, "only {nonempty} queries found images");
    assert_side_tables_follow(&c);

    // The side tables follow updates (names, tags, acl, billing tags
    // change) and deletes.
    let tx = c.transaction().unwrap();
    for (k, img) in imgs.iter_mut().enumerate() {
        match k % 4 {
            0 => {
                let fresh = image(&mut r, k as u32);
                let uuid = img.uuid;
                *img = Image { uuid, ..fresh };
                update(&tx, img).unwrap();
            }
            1 if k % 8 == 1 => {
                assert!(delete(&tx, img.uuid).unwrap());
            }
            // The state and the publication date change alone (the
            // tag tables carry both, sql/0012).
            2 => {
                img.disabled = !img.disabled;
                update(&tx, img).unwrap();
            }
            3 => {
                img.activated = true;
                img.placeholder = None;
                img.published_at = Some(format!("2020-01-0{}T12:00:00.000Z", 1 + k % 5));
                update(&tx, img).unwrap();
            }
            _ => {}
        }
    }
    tx.commit().unwrap();
    assert_side_tables_follow(&c);
    compare_all(&c);
    let q = |sql: &str| -> Vec<(String, String, i64)> {
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        q("SELECT col, value, n FROM image_values ORDER BY col, value"),
        q(
            "SELECT 'name' c, name v, count(*) FROM images GROUP BY name \
           UNION ALL SELECT 'version', version, count(*) FROM images GROUP BY version \
           ORDER BY c, v"
        )
    );
    assert_eq!(
        q("SELECT 'x', value, rowid FROM image_text ORDER BY rowid"),
        q("SELECT 'x', value, id FROM image_values ORDER BY id")
    );
}

#[test]
fn the_migration_backfills_images_stored_before_it() {
    let mut c = Connection::open_in_memory().unwrap();
    // Migrate up to 0005, store images, then apply the rest.
    for (_, sql) in crate::db::MIGRATIONS
        .iter()
        .take_while(|(n, _)| *n < "0007")
    {
        c.execute_batch(sql).unwrap();
    }
    let before = crate::db::MIGRATIONS
        .iter()
        .take_while(|(n, _)| *n < "0007")
        .count();
    c.pragma_update(None, "user_version", before as i64)
        .unwrap();
    // Stored without the triggers of 0007 (and without the list form
    // of 0011: the columns of then).
    let mut r = Rng(7);
    for i in 0..200 {
        let p = row_params(&image(&mut r, i)).unwrap();
        c.execute(
            "INSERT INTO images (uuid, owner, name, version, state, activated, disabled, \
             public, type, os, origin, published_at, acl, tags_search, billing_tags, \
             expires_at, manifest, channels) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)",
            rusqlite::params_from_iter(&p[..18]),
        )
        .unwrap();
    }
    crate::db::migrate(&mut c).unwrap();
    compare_all(&c);
    assert_side_tables_follow(&c);
    // 0011's list form, filled by the migration for every image.
    let filled: i64 = c
        .query_row(
            "SELECT count(*) FROM images WHERE wire IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(filled, 200);
}

/// A ListImages statement taken from the connection's statement cache
/// again is not prepared again (the connections plan without bound
/// values, and rusqlite clears every statement's bindings when it
/// takes it back): each query is planned once per connection.
#[test]
fn list_statements_are_planned_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::db::open_conn(&dir.path().join("db.sqlite"), false).unwrap();
    crate::db::migrate(&mut c).unwrap();
    for i in 0..40 {
        let mut r = Rng(i);
        let mut img = image(&mut r, i as u32);
        img.name = format!("img{i}");
        insert(&c, &img).unwrap();
    }
    let name = |s: &str| Some(TextMatch::parse(s));
    for q in [
        ListQuery::default(),
        ListQuery {
            name: name("~img1"),
            ..ListQuery::default()
        },
        ListQuery {
            name: name("~img1"),
            account: Some(u(1)),
            limit: 100,
            ..ListQuery::default()
        },
        ListQuery {
            name: name("img3"),
            account: Some(u(1)),
            ..ListQuery::default()
        },
        ListQuery {
            public: Some(true),
            ..ListQuery::default()
        },
    ] {
        for _ in 0..3 {
            list_json(&c, &q, Select::Wire).unwrap();
        }
        let values = merge_values(&c, &q, Dense::default()).unwrap();
        let (sql, _) = list_sql_select(&q, Dense::default(), values.as_deref(), Select::Wire);
        let st = c.prepare_cached(&sql).unwrap();
        assert_eq!(
            st.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{q:?}"
        );
    }
}
