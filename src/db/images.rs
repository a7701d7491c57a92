//! SQL for images: insert, get, update, delete, ListImages' filters, and
//! each image's stored list form (`images.wire`, what ListImages copies
//! into its body when it needs no other rendering).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{DbError, Entity, Result};
use crate::clock::Timestamp;
use crate::manifest::{DownloadStats, Image, State, normalize_date};

/// A `name`/`version` filter: exact, or substring with a leading `~`.
#[derive(Debug, Clone)]
pub enum TextMatch {
    Exact(String),
    Contains(String),
}

impl TextMatch {
    pub fn parse(s: &str) -> TextMatch {
        match s.strip_prefix('~') {
            Some(rest) => TextMatch::Contains(rest.to_string()),
            None => TextMatch::Exact(s.to_string()),
        }
    }
}

/// Which states ListImages returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    All,
    Only(State),
}

/// ListImages' query, already validated.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// `?account=`: the visibility union; None = operator (everything).
    pub account: Option<Uuid>,
    pub owner: Option<Uuid>,
    pub state: StateFilter,
    pub name: Option<TextMatch>,
    pub version: Option<TextMatch>,
    /// (excluded?, type)
    pub type_: Option<(bool, String)>,
    pub os: Option<String>,
    pub public: Option<bool>,
    pub origin: Option<Uuid>,
    /// "key=value" strings, all required.
    pub tags: Vec<String>,
    /// tag keys that must be present (`tag.key=` with an empty value).
    pub tag_keys: Vec<String>,
    pub billing_tags: Vec<String>,
    /// Only images in this channel (`Some("*")`: in any channel).
    pub channel: Option<String>,
    /// Normalised date: published_at >= (asc) or <= (desc) this.
    pub marker: Option<String>,
    /// Only images never downloaded or last downloaded before this
    /// (`image_downloads`).
    pub last_downloaded_before: Option<Timestamp>,
    /// Only images last downloaded at or after this.
    pub last_downloaded_since: Option<Timestamp>,
    pub desc: bool,
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            account: None,
            owner: None,
            state: StateFilter::Only(State::Active),
            name: None,
            version: None,
            type_: None,
            os: None,
            public: None,
            origin: None,
            tags: vec![],
            tag_keys: vec![],
            billing_tags: vec![],
            channel: None,
            marker: None,
            last_downloaded_before: None,
            last_downloaded_since: None,
            desc: false,
            limit: 1000,
        }
    }
}

fn from_row(json: String) -> Result<Image> {
    serde_json::from_str(&json).map_err(DbError::corrupt("image manifest"))
}

/// Insert a new image; an existing uuid is `DbError::Conflict`.
pub fn insert(conn: &Connection, img: &Image) -> Result<()> {
    let r = conn.execute(
        "INSERT INTO images (uuid, owner, name, version, state, activated, disabled, public, type, os, \
         origin, published_at, acl, tags_search, billing_tags, expires_at, manifest, channels, wire, \
         bytes) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
        rusqlite::params_from_iter(row_params(img)?),
    );
    r.map(|_| ())
        .map_err(|e| DbError::conflict("image uuid", e))
}

/// Replace the stored image with the same uuid (`DbError::NotFound` if none).
pub fn update(conn: &Connection, img: &Image) -> Result<()> {
    let p = row_params(img)?;
    let n = conn.execute(
        "UPDATE images SET owner=?2, name=?3, version=?4, state=?5, activated=?6, disabled=?7, \
         public=?8, type=?9, os=?10, origin=?11, published_at=?12, acl=?13, tags_search=?14, \
         billing_tags=?15, expires_at=?16, manifest=?17, channels=?18, wire=?19, bytes=?20 \
         WHERE uuid=?1",
        rusqlite::params_from_iter(&p),
    )?;
    if n == 0 {
        return Err(DbError::NotFound {
            entity: Entity::Image,
            id: img.uuid,
        });
    }
    // A new manifest with the same list form: `images_wire_stale`
    // (sql/0011) has just cleared it; write it again.
    conn.execute(
        "UPDATE images SET wire = ?2 WHERE uuid = ?1 AND wire IS NULL",
        params![&p[0], &p[18]],
    )?;
    Ok(())
}

fn row_params(img: &Image) -> Result<Vec<SqlValue>> {
    Ok(vec![
        SqlValue::Text(img.uuid.to_string()),
        SqlValue::Text(img.owner.to_string()),
        SqlValue::Text(img.name.clone()),
        SqlValue::Text(img.version.clone()),
        SqlValue::Text(img.state().as_str().into()),
        SqlValue::Integer(img.activated as i64),
        SqlValue::Integer(img.disabled as i64),
        SqlValue::Integer(img.public as i64),
        SqlValue::Text(img.type_.clone()),
        SqlValue::Text(img.os.clone()),
        img.origin
            .map(|o| SqlValue::Text(o.to_string()))
            .unwrap_or(SqlValue::Null),
        img.published_at
            .as_deref()
            .and_then(normalize_date)
            .map(SqlValue::Text)
            .unwrap_or(SqlValue::Null),
        SqlValue::Text(j(&img.acl)?),
        SqlValue::Text(j(&img.tags_search())?),
        SqlValue::Text(j(&img.billing_tags)?),
        img.expires_at
            .clone()
            .map(SqlValue::Text)
            .unwrap_or(SqlValue::Null),
        SqlValue::Text(serde_json::to_string(img).map_err(DbError::corrupt("image manifest"))?),
        SqlValue::Text(j(&img.channels)?),
        SqlValue::Text(
            img.listed_json()
                .map_err(DbError::corrupt("image list form"))?,
        ),
        SqlValue::Integer(img.stored_bytes().min(i64::MAX as u64) as i64),
    ])
}

/// Images whose stored list form is written per transaction by [`fill_wire`].
const FILL_BATCH: usize = 500;

/// Write the stored list form (`images.wire`, see `sql/0011_image_wire.sql`)
/// of every image that has none: the images stored before the column
/// existed, or by a writer that does not know it. Found through the partial
/// index of the NULL rows (nothing to read once all are filled), in
/// transactions of [`FILL_BATCH`] images. A manifest that does not parse
/// is left as it is (ListImages renders it from the manifest, and fails
/// on it as it did before). Returns how many were filled.
pub fn fill_wire(conn: &mut Connection) -> rusqlite::Result<usize> {
    let mut filled = 0;
    let mut after = String::new();
    loop {
        let tx = conn.transaction()?;
        let rows: Vec<(String, String)> = {
            let mut st = tx.prepare(
                "SELECT uuid, manifest FROM images INDEXED BY images_wire_missing \
                 WHERE wire IS NULL AND uuid > ?1 ORDER BY uuid LIMIT ?2",
            )?;
            st.query_map(params![after, FILL_BATCH as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let Some((last, _)) = rows.last() else {
            return Ok(filled);
        };
        after = last.clone();
        {
            let mut st = tx.prepare("UPDATE images SET wire = ?2 WHERE uuid = ?1")?;
            for (uuid, manifest) in &rows {
                let wire = serde_json::from_str::<Image>(manifest)
                    .ok()
                    .and_then(|img| img.listed_json().ok());
                if let Some(wire) = wire {
                    st.execute(params![uuid, wire])?;
                    filled += 1;
                }
            }
        }
        tx.commit()?;
    }
}

fn j<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(DbError::corrupt("image column"))
}

/// The image, with its download statistics.
pub fn get(conn: &Connection, uuid: Uuid) -> Result<Option<Image>> {
    let Some((json, count, last_at)) = conn
        .query_row(
            "SELECT manifest, d.count, d.last_at FROM images \
             LEFT JOIN image_downloads d ON d.uuid = images.uuid WHERE images.uuid = ?1",
            params![uuid.to_string()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<Timestamp>>(2)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut img = from_row(json)?;
    img.downloads = count.zip(last_at).map(|(count, last_at)| DownloadStats {
        count: count.max(0) as u64,
        last_at,
    });
    Ok(Some(img))
}

pub fn delete(conn: &Connection, uuid: Uuid) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM images WHERE uuid = ?1",
        params![uuid.to_string()],
    )? > 0)
}

/// Images whose `origin` is `uuid`.
pub fn dependents(conn: &Connection, uuid: Uuid) -> Result<Vec<Uuid>> {
    let mut st = conn.prepare("SELECT uuid FROM images WHERE origin = ?1 ORDER BY uuid")?;
    let rows = st.query_map(params![uuid.to_string()], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.parse().map_err(DbError::corrupt("image uuid"))?);
    }
    Ok(out)
}

/// Placeholders whose `expires_at` has passed.
pub fn expired_placeholders(conn: &Connection, now: crate::clock::Timestamp) -> Result<Vec<Uuid>> {
    let mut st = conn.prepare(
        "SELECT uuid FROM images WHERE state IN ('creating','failed') \
         AND expires_at IS NOT NULL AND expires_at < ?1",
    )?;
    let rows = st.query_map(params![now], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r?.parse().map_err(DbError::corrupt("image uuid"))?);
    }
    Ok(out)
}

/// Every image (for check-files and gc).
pub fn all(conn: &Connection) -> Result<Vec<Image>> {
    let mut st = conn.prepare("SELECT manifest FROM images ORDER BY uuid")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| from_row(r?)).collect()
}

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

/// The conditions of a ListImages query.
struct Where {
    /// The filters (and the owner-only form of the account union).
    filters: Vec<String>,
    /// The `account` visibility union, checked on the image's row.
    account: Option<String>,
    driver: Driver,
}

impl Where {
    /// `WHERE` and every condition, or nothing.
    fn all(&self) -> String {
        let all: Vec<&str> = self
            .filters
            .iter()
            .chain(&self.account)
            .map(String::as_str)
            .collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    }

    /// `WHERE` and the filters without the account union, or nothing.
    fn filters(&self) -> String {
        if self.filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.filters.join(" AND "))
        }
    }
}

/// The account of a `public=false` query better served as the union of
/// its own images and those shared with it (see [`list_sql_dense`]).
fn sparse_account(q: &ListQuery, dense: Dense) -> Option<Uuid> {
    let a = q.account?;
    let weak = match Driver::pick(q, dense, false) {
        Driver::Column("os" | "type" | "public" | "state")
        | Driver::Text(_)
        | Driver::TagKey
        | Driver::None => true,
        // A dense tag's ordered walk is no better than a column's.
        Driver::Tag => dense.tag,
        Driver::BillingTag => dense.billing_tag,
        _ => false,
    };
    (q.public == Some(false) && q.owner.is_none() && !owner_only(q) && weak).then_some(a)
}

/// Does the `account` union reduce to the account's own images (the
/// state asked for is one only an owner sees)?
fn owner_only(q: &ListQuery) -> bool {
    q.account.is_some()
        && matches!(
            q.state,
            StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
        )
}

/// The conditions of `q` and the driver it picked; with `shared_with`,
/// only the activated images whose acl holds that account, driven by its
/// `image_acl` rows unless a more selective filter is present.
fn where_sql(q: &ListQuery, dense: Dense, shared_with: Option<Uuid>, b: &mut Sql) -> Where {
    let driver = Driver::pick(q, dense, shared_with.is_some());
    // Columns of the driver's index get their plain name (usable by the
    // index); every other column is written `+col` (checked per row).
    let col_driver = driver.column();
    let col = |c: &str| -> String {
        if col_driver == Some(c) || (c == "state" && driver.index_has_state()) {
            c.to_string()
        } else {
            format!("+{c}")
        }
    };
    let mut wh: Vec<String> = Vec::new();
    let mut account = None;

    match q.state {
        StateFilter::All => {}
        StateFilter::Only(s) => {
            let p = b.arg(text(s.as_str()));
            wh.push(format!("{} = {p}", col("state")));
        }
    }
    if let Some(o) = q.origin {
        let p = b.arg(text(&o.to_string()));
        wh.push(format!("{} = {p}", col("origin")));
    }
    if let Some(o) = q.owner {
        let p = b.arg(text(&o.to_string()));
        wh.push(format!("{} = {p}", col("owner")));
    }
    for (c, m) in [("name", &q.name), ("version", &q.version)] {
        match m {
            Some(TextMatch::Exact(s)) => {
                let p = b.arg(text(s));
                wh.push(format!("{} = {p}", col(c)));
            }
            Some(TextMatch::Contains(s)) => {
                // Checked on every row even when the trigram index drives:
                // `instr` is the definition (case-sensitive, no wildcards).
                let p = b.arg(text(s));
                wh.push(format!("instr({c}, {p}) > 0"));
                if driver == Driver::Text(c) {
                    // The distinct values holding `s`, then their images.
                    // (With the trigram index: its hits by rowid, `+col`.)
                    let hit = if s.chars().count() >= TRIGRAM {
                        let p = b.arg(text(&fts_phrase(s)));
                        format!(
                            "+col = '{c}' AND id IN \
                             (SELECT rowid FROM image_text WHERE image_text MATCH {p})"
                        )
                    } else {
                        format!("col = '{c}' AND instr(value, {p}) > 0")
                    };
                    wh.push(format!(
                        "{c} IN (SELECT value FROM image_values WHERE {hit})"
                    ));
                }
            }
            None => {}
        }
    }
    if let Some((neg, t)) = &q.type_ {
        let p = b.arg(text(t));
        wh.push(format!(
            "{} {} {p}",
            col("type"),
            if *neg { "!=" } else { "=" }
        ));
    }
    if let Some(os) = &q.os {
        let p = b.arg(text(os));
        wh.push(format!("{} = {p}", col("os")));
    }
    if let Some(public) = q.public {
        // A literal, not a parameter: the planner sees it (see [`limit`]).
        wh.push(format!("{} = {}", col("public"), public as i64));
    }
    for (i, t) in q.tags.iter().enumerate() {
        let p = b.arg(text(t));
        if i == 0 && driver == Driver::Tag {
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_tags WHERE tag = {p})"
            ));
        } else {
            // Checked through `image_tags`' primary key (tag, uuid): the
            // uuid is in every list index, so a walk decides from its index
            // entry, reading the rows of the matching images only.
            wh.push(format!(
                "EXISTS (SELECT 1 FROM image_tags WHERE tag = {p} AND image_tags.uuid = images.uuid)"
            ));
        }
    }
    for (i, k) in q.tag_keys.iter().enumerate() {
        let p = b.arg(text(&format!("{k}=")));
        if i == 0 && driver == Driver::TagKey {
            // "key=" <= tag < "key>": every tag starting with "key=".
            let hi = b.arg(text(&format!("{k}>")));
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_tags WHERE tag >= {p} AND tag < {hi})"
            ));
        } else {
            wh.push(format!(
                "EXISTS (SELECT 1 FROM json_each(images.tags_search) WHERE substr(value, 1, length({p})) = {p})"
            ));
        }
    }
    for (i, t) in q.billing_tags.iter().enumerate() {
        let p = b.arg(text(t));
        if i == 0 && driver == Driver::BillingTag {
            wh.push(format!(
                "uuid IN (SELECT uuid FROM image_billing_tags WHERE tag = {p})"
            ));
        } else {
            wh.push(format!(
                "EXISTS (SELECT 1 FROM image_billing_tags \
                 WHERE tag = {p} AND image_billing_tags.uuid = images.uuid)"
            ));
        }
    }
    match q.channel.as_deref() {
        None => {}
        Some("*") => wh.push("channels != '[]'".to_string()),
        Some(c) => {
            let p = b.arg(text(c));
            wh.push(format!(
                "EXISTS (SELECT 1 FROM json_each(images.channels) WHERE value = {p})"
            ));
        }
    }
    // Checked through `image_downloads`' primary key, like a tag.
    if let Some(t) = q.last_downloaded_before {
        let p = b.arg(text(&t.to_string()));
        wh.push(format!(
            "NOT EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid AND d.last_at >= {p})"
        ));
    }
    if let Some(t) = q.last_downloaded_since {
        let p = b.arg(text(&t.to_string()));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid AND d.last_at >= {p})"
        ));
    }
    if let Some(m) = &q.marker {
        let p = b.arg(text(m));
        wh.push(format!(
            "{} {} {p}",
            if driver.sorted() && (driver == Driver::None || q.state != StateFilter::All) {
                "published_at"
            } else {
                "+published_at"
            },
            if q.desc { "<=" } else { ">=" }
        ));
    }
    if let Some(a) = q.account {
        // (1) own images; (2) activated public; (3) activated private shared via acl.
        // Others' images only when the state filter is not unactivated/disabled.
        let p = b.arg(text(&a.to_string()));
        let others = !matches!(
            q.state,
            StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
        );
        if others {
            account = Some(format!(
                "(+owner = {p} OR (+activated = 1 AND (+public = 1 OR \
                 uuid IN (SELECT uuid FROM image_acl WHERE account = {p}))))"
            ));
        } else {
            wh.push(format!("{} = {p}", col("owner")));
        }
    }
    if let Some(a) = shared_with {
        let p = b.arg(text(&a.to_string()));
        wh.push(format!(
            "{} = 1 AND {} IN (SELECT uuid FROM image_acl WHERE account = {p})",
            col("activated"),
            if driver == Driver::Acl {
                "uuid"
            } else {
                "+uuid"
            }
        ));
    }
    Where {
        filters: wh,
        account,
        driver,
    }
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

/// `q.limit`, written into the SQL as a literal, not bound: the
/// connections plan without bound values (QPSG, see `db::open_conn`), and the
/// planner uses a known limit (a number of at most 1 000; a few distinct
/// limits mean a few cached statements).
fn limit(q: &ListQuery) -> u32 {
    q.limit
}

/// Positional parameters of a query being built.
#[derive(Default)]
struct Sql {
    args: Vec<SqlValue>,
}

impl Sql {
    fn arg(&mut self, v: SqlValue) -> String {
        self.args.push(v);
        format!("?{}", self.args.len())
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

/// The FTS5 query matching `s` as a substring (a trigram phrase: every
/// trigram of `s`, in order).
fn fts_phrase(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The shortest substring the trigram index can find (shorter ones are
/// looked for in each distinct value).
const TRIGRAM: usize = 3;

/// The filter whose index picks a ListImages query's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// A column with an index ending in (…, published_at, uuid) or, for
    /// `origin`, its own index.
    Column(&'static str),
    /// The distinct values (and their trigram index), for `~` on this
    /// column; then the column's index.
    Text(&'static str),
    Tag,
    TagKey,
    BillingTag,
    /// The images shared with an account (its `image_acl` rows).
    Acl,
    /// No filter: the walk of `images_published_at`.
    None,
}

impl Driver {
    /// The most selective filter present, in an order fixed by what each
    /// filter usually selects (an image, a name's versions, an owner's
    /// images, … down to the few values of os, type, public and state).
    fn pick(q: &ListQuery, dense: Dense, shared: bool) -> Driver {
        let exact = |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Exact(_)));
        let text =
            |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Contains(s)) if !s.is_empty());
        let ordered = matches!(q.state, StateFilter::Only(_));
        if q.origin.is_some() {
            Driver::Column("origin")
        } else if exact(&q.name) {
            Driver::Column("name")
        } else if q.owner.is_some() || owner_only(q) {
            Driver::Column("owner")
        } else if exact(&q.version) {
            Driver::Column("version")
        } else if shared {
            Driver::Acl
        } else if !q.tags.is_empty() && !dense.tag {
            Driver::Tag
        } else if !q.billing_tags.is_empty() && !dense.billing_tag {
            Driver::BillingTag
        } else if text(&q.name) {
            Driver::Text("name")
        } else if text(&q.version) {
            Driver::Text("version")
        } else if !q.tag_keys.is_empty() && !dense.tag_key {
            Driver::TagKey
        } else if !q.tags.is_empty() && ordered {
            // Dense, but its walk is in ListImages' order (see
            // `walk_sql`): as good as a column's, and fewer rows.
            Driver::Tag
        } else if !q.billing_tags.is_empty() && ordered {
            Driver::BillingTag
        } else if q.os.is_some() {
            Driver::Column("os")
        } else if matches!(q.type_, Some((false, _))) {
            Driver::Column("type")
        } else if q.public.is_some() {
            Driver::Column("public")
        } else if matches!(q.state, StateFilter::Only(_)) {
            Driver::Column("state")
        } else {
            Driver::None
        }
    }

    fn column(self) -> Option<&'static str> {
        match self {
            Driver::Column(c) | Driver::Text(c) => Some(c),
            _ => None,
        }
    }

    /// Is `state` the second column of the driver's index, used as such?
    /// (Not for `~` matches: offered `state = ?`, the planner would rather
    /// walk images_list_state in order than sort the values' images.)
    fn index_has_state(self) -> bool {
        matches!(self, Driver::Column(c) if c != "origin")
    }

    /// Does the driver's walk come in ListImages' order (so a `marker`
    /// bounds it)?
    fn sorted(self) -> bool {
        matches!(self, Driver::Column(c) if c != "origin") || self == Driver::None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
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
        assert_eq!(super::super::migrate(&mut c).unwrap(), 0);
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

    fn compare_all(c: &Connection) -> usize {
        let mut n = 0;
        // Every pair, with and without the account, both orders, a marker.
        for (name, q) in queries() {
            let want = uuids(old_list(c, &q).unwrap());
            assert_eq!(uuids(list(c, &q).unwrap()), want, "{name} {q:?}");
            n += usize::from(!want.is_empty());
        }
        // Each filter alone and the edge cases, in more states and pages.
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
        for (name, q) in qs {
            // State variants, pages and the anonymous caller's form ride along.
            let date = Some("2020-01-03T00:00:00.000Z".to_string());
            for (state, public, limit, marker) in [
                (q.state, q.public, 1000, q.marker.clone()),
                (StateFilter::All, q.public, 7, date.clone()),
                (StateFilter::Only(State::Unactivated), q.public, 1000, None),
                (StateFilter::Only(State::Active), Some(true), 7, date),
            ] {
                let q = ListQuery {
                    state,
                    public,
                    limit,
                    marker,
                    ..q.clone()
                };
                let want = uuids(old_list(c, &q).unwrap());
                let got = uuids(list(c, &q).unwrap());
                assert_eq!(got, want, "{name} {q:?}");
                n += usize::from(!want.is_empty());
            }
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
        for (_, sql) in super::super::MIGRATIONS
            .iter()
            .take_while(|(n, _)| *n < "0007")
        {
            c.execute_batch(sql).unwrap();
        }
        let before = super::super::MIGRATIONS
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
        super::super::migrate(&mut c).unwrap();
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
        let mut c = super::super::open_conn(&dir.path().join("db.sqlite"), false).unwrap();
        super::super::migrate(&mut c).unwrap();
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
}
