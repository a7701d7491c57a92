//! ListImages' planner: the SQL of each query (the driver index that walks
//! it, the filters checked on the rows it yields, merges of a few `~`
//! values, an account's private images), the `~` values cache, and the
//! reads themselves. Its plan and oracle tests are in `tests.rs`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

mod filters;

use self::filters::*;
use super::{ListQuery, StateFilter, TextMatch, from_row};
use crate::db::Result;
use crate::manifest::{Image, State};

/// The SQL of a ListImages query and its parameters (see [`list`]).
///
/// Every filter is served from an index: one filter, the most selective
/// one present ("the driver"), picks the rows through its index; the others
/// are checked on those rows only, their columns written `+col` so that the
/// planner cannot choose a worse index for them. A column driver's index
/// ends in (state, published_at, uuid), ListImages' order, so the rows come
/// sorted and the walk stops at `limit`. A tag or billing tag in one
/// state walks its side table's index `(tag, state, published_at, uuid)`
/// the same way (see [`walk_sql`]). A tag key, a tag in every state, or
/// several values of a column (`~` matches: the distinct names or versions
/// holding the substring, found through their trigram index) yield rows
/// that are then sorted by their keys (or, for a `~` match over a few
/// values, merged: see [`merge_sql`]). With no filter, `state` (or, for
/// `state=all`, `published_at`) is the walk.
pub fn list_sql(q: &ListQuery) -> (String, Vec<SqlValue>) {
    list_sql_dense(q, Dense::default())
}

/// Side-table filters (tags, billing tags, tag keys) that hold so many
/// images that walking an ordered index and checking each row beats
/// sorting them all: not drivers where they would be sorted. In one state,
/// a dense tag or billing tag still drives its own ordered walk, but after
/// the `~` matches and tag keys (see [`Driver::pick`]). [`list`] asks the
/// database; [`list_sql`] assumes none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dense {
    pub tag: bool,
    pub billing_tag: bool,
    pub tag_key: bool,
}

/// From this many images on, a side-table filter is [`Dense`].
const DENSE: i64 = 2000;

impl Dense {
    /// Count (up to [`DENSE`]) the images of the first tag, billing tag
    /// and tag key of `q`: a bounded read of each side table's index.
    /// In one state, a tag or billing tag is counted only where its density
    /// changes the plan (against a `~` match or a tag key, which a sparse
    /// tag beats and a dense one does not, and for the account's
    /// `public=false` union): else it drives an ordered walk either way.
    fn probe(conn: &Connection, q: &ListQuery) -> Result<Dense> {
        let count = |sql: &str, args: Vec<SqlValue>| -> Result<bool> {
            let sql = format!("SELECT count(*) FROM ({sql} LIMIT {DENSE})");
            let n: i64 = conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
            Ok(n >= DENSE)
        };
        let contains = |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Contains(_)));
        let matters = q.state == StateFilter::All
            || contains(&q.name)
            || contains(&q.version)
            || !q.tag_keys.is_empty()
            || (q.account.is_some() && q.public == Some(false));
        let mut d = Dense::default();
        if let Some(t) = q.tags.first().filter(|_| matters) {
            d.tag = count("SELECT 1 FROM image_tags WHERE tag = ?1", vec![text(t)])?;
        }
        if let Some(t) = q.billing_tags.first().filter(|_| matters) {
            d.billing_tag = count(
                "SELECT 1 FROM image_billing_tags WHERE tag = ?1",
                vec![text(t)],
            )?;
        }
        if let Some(k) = q.tag_keys.first() {
            d.tag_key = count(
                "SELECT 1 FROM image_tags WHERE tag >= ?1 AND tag < ?2",
                vec![text(&format!("{k}=")), text(&format!("{k}>"))],
            )?;
        }
        Ok(d)
    }
}

/// [`list_sql`], with the filters in `dense` not used as drivers.
///
/// An account that asks for `public=false` sees only its own images and
/// the private ones shared with it: when no selective filter drives, such
/// a query is the union of two sparse walks, the account's own images
/// (`images_list_owner`) and its `image_acl` rows, each stopping at
/// `limit`, instead of a walk of every private image checking the union
/// per row.
pub fn list_sql_dense(q: &ListQuery, dense: Dense) -> (String, Vec<SqlValue>) {
    list_sql_select(q, dense, None, Select::Manifest)
}

/// What a ListImages query returns of each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Its manifest (one column).
    Manifest,
    /// Whether its stored list form is there, then that form, or its
    /// manifest when it is not (two columns; the manifest is only read
    /// for images without one).
    Wire,
}

impl Select {
    fn columns(self) -> &'static str {
        match self {
            Select::Manifest => "manifest",
            Select::Wire => "wire IS NOT NULL, ifnull(wire, manifest)",
        }
    }
}

/// [`list_sql_dense`], returning `select` of each image. With `merge` (see
/// [`merge_values`]), a `~` match is served by merging the walks of the
/// matching values' images.
pub fn list_sql_select(
    q: &ListQuery,
    dense: Dense,
    merge: Option<&[String]>,
    select: Select,
) -> (String, Vec<SqlValue>) {
    let cols = select.columns();
    let mut b = Sql::default();
    let order = if q.desc { "DESC" } else { "ASC" };
    let order_by = format!("ORDER BY published_at {order}, uuid {order}");
    if let (Some(values), Driver::Text(c), StateFilter::Only(state)) =
        (merge, Driver::pick(q, dense, false), q.state)
        && !values.is_empty()
        && sparse_account(q, dense).is_none()
    {
        return merge_sql(q, dense, c, state, values, cols, &mut b);
    }
    if let (d @ (Driver::Tag | Driver::BillingTag), StateFilter::Only(state)) =
        (Driver::pick(q, dense, false), q.state)
        && sparse_account(q, dense).is_none()
    {
        return walk_sql(q, d, state, cols, &mut b);
    }
    if let Some(a) = sparse_account(q, dense) {
        let own = ListQuery {
            owner: Some(a),
            account: None,
            ..q.clone()
        };
        let own_where = where_sql(&own, dense, None, &mut b).all();
        let shared = ListQuery {
            account: None,
            ..q.clone()
        };
        let shared_where = where_sql(&shared, dense, Some(a), &mut b).all();
        let lim = limit(q);
        let sql = format!(
            "SELECT {cols} FROM images WHERE rowid IN \
             (SELECT rowid FROM (SELECT rowid FROM images {own_where} {order_by} LIMIT {lim}) \
             UNION ALL \
             SELECT rowid FROM (SELECT rowid FROM images {shared_where} {order_by} LIMIT {lim})) \
             {order_by} LIMIT {lim}"
        );
        return (sql, b.args);
    }
    let w = where_sql(q, dense, None, &mut b);
    let lim = limit(q);
    let sql = if w.driver.sorted() {
        format!(
            "SELECT {cols} FROM images {} {order_by} LIMIT {lim}",
            w.all()
        )
    } else if let (Driver::Text(_), Some(acc)) = (w.driver, &w.account) {
        // `~` matches: the candidates' keys are sorted from the column's
        // index alone (it holds state, published_at and uuid), then the
        // account union, which needs the image's row, is checked in that
        // order (the co-routine `c` is the outer loop), stopping at
        // `limit`: a few rows read, not every candidate's.
        format!(
            "SELECT {cols} FROM \
             (SELECT rowid AS r FROM images {} {order_by} LIMIT -1) AS c \
             CROSS JOIN images ON images.rowid = c.r WHERE {acc} LIMIT {lim}",
            w.filters()
        )
    } else {
        // The driver's rows are sorted: only their keys, not their
        // manifests, then the page's manifests are read.
        format!(
            "SELECT {cols} FROM images WHERE rowid IN \
             (SELECT rowid FROM images {} {order_by} LIMIT {lim}) {order_by}",
            w.all()
        )
    };
    (sql, b.args)
}

/// Most distinct values of a `~` match whose walks are merged (see
/// [`merge_sql`]); a substring matching more values is served by sorting
/// its images' keys.
pub const MERGE_MAX: usize = 32;

/// The distinct values of `q`'s `~` match when it is the driver, the
/// state is one, and they are at most [`MERGE_MAX`] (else None: the sorted
/// plan of [`list_sql_dense`] serves it). Empty when no value holds the
/// substring (the page is empty). Cached (see [`VALUES`]).
pub fn merge_values(conn: &Connection, q: &ListQuery, dense: Dense) -> Result<Option<Vec<String>>> {
    let Driver::Text(c) = Driver::pick(q, dense, false) else {
        return Ok(None);
    };
    let m = if c == "name" { &q.name } else { &q.version };
    let (Some(TextMatch::Contains(sub)), StateFilter::Only(_), None) =
        (m, q.state, sparse_account(q, dense))
    else {
        return Ok(None);
    };
    let generation = || -> Result<(i64, i64)> {
        Ok(conn
            .prepare_cached("SELECT db, gen FROM image_values_gen WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
    };
    let (db, seen) = generation()?;
    let key = (
        db,
        conn.path().unwrap_or_default().to_string(),
        c,
        sub.clone(),
    );
    if let Some((g, v)) = values_cache().get(&key)
        && *g == seen
    {
        return Ok(v.clone());
    }
    let (sql, args) = values_sql(c, sub);
    let mut st = conn.prepare_cached(sql)?;
    let values: Vec<String> = st
        .query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let values = (values.len() <= MERGE_MAX).then_some(values);
    // Kept only if no value appeared or went while they were read.
    if generation()? == (db, seen) {
        let mut cache = values_cache();
        if cache.len() >= VALUES_CACHED {
            cache.clear();
        }
        cache.insert(key, (seen, values.clone()));
    }
    Ok(values)
}

/// The values of `~` matches already looked up by [`merge_values`], per
/// database (`image_values_gen.db`, random, and the file's path: copies
/// of one file stay apart), column and substring, with the
/// `image_values_gen.gen` they were read at: valid while it has not moved,
/// that is until a distinct name or version appears or goes (sql/0012). A
/// `~` query then reads one row instead of the trigram index or every
/// distinct value. At most [`VALUES_CACHED`] entries (cleared when full),
/// each at most [`MERGE_MAX`] + 1 values.
type ValuesCache = HashMap<(i64, String, &'static str, String), (i64, Option<Vec<String>>)>;
static VALUES: LazyLock<Mutex<ValuesCache>> = LazyLock::new(Mutex::default);

/// Most substrings whose values [`VALUES`] holds.
const VALUES_CACHED: usize = 1024;

fn values_cache() -> MutexGuard<'static, ValuesCache> {
    // A panic while it was held cannot leave an entry half written
    // (inserts and clears are whole): the map is still good.
    VALUES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The query of [`merge_values`]: the first [`MERGE_MAX`] + 1 distinct
/// values of column `c` holding `sub`, in order.
fn values_sql(c: &str, sub: &str) -> (&'static str, Vec<SqlValue>) {
    // `instr` is the definition (as in `where_sql`); the trigram index,
    // when the substring is long enough, finds the candidates: its few
    // hits are read by rowid (`+col`: not a walk of every value of the
    // column in order, reading each one's row). Without it, the column's
    // values in order from the unique index (col, value), which holds all
    // this reads. (A value whose count falls to 0 is deleted by the
    // trigger that decrements it, so every value listed has images.)
    let limit = SqlValue::Integer(MERGE_MAX as i64 + 1);
    if sub.chars().count() >= TRIGRAM {
        (
            "SELECT value FROM image_values WHERE +col = ?1 \
             AND id IN (SELECT rowid FROM image_text WHERE image_text MATCH ?3) \
             AND instr(value, ?2) > 0 ORDER BY value LIMIT ?4",
            vec![text(c), text(sub), text(&fts_phrase(sub)), limit],
        )
    } else {
        (
            "SELECT value FROM image_values WHERE col = ?1 AND instr(value, ?2) > 0 \
             ORDER BY value LIMIT ?3",
            vec![text(c), text(sub), limit],
        )
    }
}

/// A `~` match over a few distinct values (`values`, of column `c`): each
/// value's images in state `state` come from `c`'s index already in
/// ListImages' order (index-only, a `marker` bounding the walk); SQLite
/// merges those walks (a compound `UNION ALL … ORDER BY`, no sort) in the
/// co-routine `m`, and the other filters and the account union are checked
/// on each image's row in that order, stopping at `limit`. Reads about
/// `limit` rows and sorts nothing, where the sorted plan sorts every
/// candidate's keys first (2 200 for `name=~img12` at 100 000 images).
fn merge_sql(
    q: &ListQuery,
    dense: Dense,
    c: &'static str,
    state: State,
    values: &[String],
    cols: &str,
    b: &mut Sql,
) -> (String, Vec<SqlValue>) {
    let order = if q.desc { "DESC" } else { "ASC" };
    let st = b.arg(text(state.as_str()));
    let marker = q.marker.as_ref().map(|m| {
        let p = b.arg(text(m));
        format!(" AND published_at {} {p}", if q.desc { "<=" } else { ">=" })
    });
    let marker = marker.unwrap_or_default();
    let arms: Vec<String> = values
        .iter()
        .map(|v| {
            let p = b.arg(text(v));
            format!(
                "SELECT rowid AS r, published_at AS p, uuid AS u FROM images \
                 WHERE {c} = {p} AND state = {st}{marker}"
            )
        })
        .collect();
    // The other conditions, on the row: `q` without the match, the state
    // and the marker, which the walks applied.
    let mut rest = ListQuery {
        state: StateFilter::All,
        marker: None,
        ..q.clone()
    };
    if c == "name" {
        rest.name = None;
    } else {
        rest.version = None;
    }
    let w = where_sql(&rest, dense, None, b);
    let lim = limit(q);
    let sql = format!(
        "SELECT {cols} FROM ({} ORDER BY p {order}, u {order} LIMIT -1) AS m \
         CROSS JOIN images ON images.rowid = m.r {} LIMIT {lim}",
        arms.join(" UNION ALL "),
        w.all()
    );
    (sql, std::mem::take(&mut b.args))
}

/// A tag or billing tag that drives, in one state: its images come from
/// its side table's index `(tag, state, published_at, uuid)` (sql/0012)
/// already in ListImages' order (index-only, a `marker` bounding the
/// walk), in the co-routine `m`; the other filters and the account union
/// are checked on each image's row in that order, stopping at `limit`.
/// Reads about `limit` rows and sorts nothing, where the sorted plan sorts
/// every tagged image's keys first (10 000 for `tag.role=os` at 100 000
/// images), and a walk of `images_list_state` checking the tag per row
/// reads ten rows for each one it keeps.
fn walk_sql(
    q: &ListQuery,
    driver: Driver,
    state: State,
    cols: &str,
    b: &mut Sql,
) -> (String, Vec<SqlValue>) {
    let order = if q.desc { "DESC" } else { "ASC" };
    // The other conditions, on the row: `q` without the driving tag, the
    // state and the marker, which the walk applies.
    let mut rest = ListQuery {
        state: StateFilter::All,
        marker: None,
        ..q.clone()
    };
    let (table, tag) = match driver {
        Driver::Tag => ("image_tags", rest.tags.remove(0)),
        _ => ("image_billing_tags", rest.billing_tags.remove(0)),
    };
    let t = b.arg(text(&tag));
    let st = b.arg(text(state.as_str()));
    let marker = q.marker.as_ref().map(|m| {
        let p = b.arg(text(m));
        format!(" AND published_at {} {p}", if q.desc { "<=" } else { ">=" })
    });
    let marker = marker.unwrap_or_default();
    // The other tags, tag keys and billing tags are checked per row (a
    // primary-key probe, or the row's tags for a key), not driven.
    let per_row = Dense {
        tag: true,
        billing_tag: true,
        tag_key: true,
    };
    let w = where_sql(&rest, per_row, None, b);
    let lim = limit(q);
    let sql = format!(
        "SELECT {cols} FROM (SELECT uuid AS u, published_at AS p FROM {table} \
         WHERE tag = {t} AND state = {st}{marker} ORDER BY p {order}, u {order} LIMIT -1) AS m \
         CROSS JOIN images ON images.uuid = m.u {} LIMIT {lim}",
        w.all()
    );
    (sql, std::mem::take(&mut b.args))
}

/// ListImages: the filters of IMGAPI and its `account` visibility union.
pub fn list(conn: &Connection, q: &ListQuery) -> Result<Vec<Image>> {
    list_json(conn, q, Select::Manifest)?
        .into_iter()
        .map(|l| match l {
            Listed::Manifest(m) | Listed::Wire(m) => from_row(m),
        })
        .collect()
}

/// One image of a ListImages page as the database holds it, not parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Its stored list form (`manifest::Image::listed_json`): the image
    /// as a ListImages body element with the default rendering.
    Wire(String),
    /// Its manifest (the internal JSON), to be parsed and rendered.
    Manifest(String),
}

/// [`list`], each image as stored: with [`Select::Wire`], its stored list
/// form where it has one, else (and with [`Select::Manifest`]) its
/// manifest.
pub fn list_json(conn: &Connection, q: &ListQuery, select: Select) -> Result<Vec<Listed>> {
    let dense = Dense::probe(conn, q)?;
    let merge = merge_values(conn, q, dense)?;
    if merge.as_ref().is_some_and(Vec::is_empty) {
        return Ok(vec![]);
    }
    let (sql, args) = list_sql_select(q, dense, merge.as_deref(), select);
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| match select {
        Select::Manifest => Ok(Listed::Manifest(r.get(0)?)),
        Select::Wire => Ok(if r.get::<_, bool>(0)? {
            Listed::Wire(r.get(1)?)
        } else {
            Listed::Manifest(r.get(1)?)
        }),
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
pub(crate) mod tests;
