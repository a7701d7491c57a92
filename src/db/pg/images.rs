//! Images on PostgreSQL: insert, get, update, delete, and ListImages as
//! one parametrised query (the planner picks the index: the ordered
//! `images_list_*` walks, the tag tables' walks, the trigram indexes for
//! `~` matches). Same results as `db::images`.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{PgConn, col, pg_error};
use crate::db::images::{ListQuery, Listed, Select, StateFilter, TextMatch};
use crate::db::{DbError, Entity, Result};
use crate::manifest::{Image, State, normalize_date};

fn from_json(json: &str) -> Result<Image> {
    serde_json::from_str(json).map_err(DbError::corrupt("image manifest"))
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(DbError::corrupt("image column"))
}

/// The columns of an image's row, in the order of [`COLS`].
struct RowValues {
    uuid: Uuid,
    owner: Uuid,
    name: String,
    version: String,
    state: &'static str,
    activated: bool,
    disabled: bool,
    public: bool,
    type_: String,
    os: String,
    origin: Option<Uuid>,
    published_at: Option<String>,
    acl: String,
    tags_search: String,
    billing_tags: String,
    expires_at: Option<String>,
    manifest: String,
    channels: String,
    wire: String,
    bytes: i64,
}

impl RowValues {
    fn of(img: &Image) -> Result<RowValues> {
        Ok(RowValues {
            uuid: img.uuid,
            owner: img.owner,
            name: img.name.clone(),
            version: img.version.clone(),
            state: img.state().as_str(),
            activated: img.activated,
            disabled: img.disabled,
            public: img.public,
            type_: img.type_.clone(),
            os: img.os.clone(),
            origin: img.origin,
            published_at: img.published_at.as_deref().and_then(normalize_date),
            acl: json_text(&img.acl)?,
            tags_search: json_text(&img.tags_search())?,
            billing_tags: json_text(&img.billing_tags)?,
            expires_at: img.expires_at.clone(),
            manifest: serde_json::to_string(img).map_err(DbError::corrupt("image manifest"))?,
            channels: json_text(&img.channels)?,
            wire: img
                .listed_json()
                .map_err(DbError::corrupt("image list form"))?,
            bytes: img.stored_bytes().min(i64::MAX as u64) as i64,
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 20] {
        [
            &self.uuid,
            &self.owner,
            &self.name,
            &self.version,
            &self.state,
            &self.activated,
            &self.disabled,
            &self.public,
            &self.type_,
            &self.os,
            &self.origin,
            &self.published_at,
            &self.acl,
            &self.tags_search,
            &self.billing_tags,
            &self.expires_at,
            &self.manifest,
            &self.channels,
            &self.wire,
            &self.bytes,
        ]
    }
}

/// `write` (an INSERT or UPDATE of one image `RETURNING` its row) and, in
/// the same statement, its side tables (tags, billing tags, acl) made to
/// follow it: the rows it no longer has deleted, its rows written (with
/// its state and date). One round trip; the deleted and written rows are
/// never the same ones. Returns the rows `write` wrote (0 or 1).
fn write_with_side_tables(c: &PgConn, write: &str, v: &RowValues) -> Result<u64> {
    let sql = format!(
        "WITH w AS ({write} RETURNING uuid, state, published_at, tags_search, billing_tags, acl), \
         tags AS (SELECT DISTINCT t COLLATE \"C\" AS tag, w.uuid, w.state, w.published_at \
                  FROM w, jsonb_array_elements_text(w.tags_search) AS t), \
         bills AS (SELECT DISTINCT t COLLATE \"C\" AS tag, w.uuid, w.state, w.published_at \
                   FROM w, jsonb_array_elements_text(w.billing_tags) AS t), \
         acl AS (SELECT DISTINCT a::uuid AS account, w.uuid FROM w, jsonb_array_elements_text(w.acl) AS a), \
         d1 AS (DELETE FROM image_tags x USING w WHERE x.uuid = w.uuid \
                AND x.tag NOT IN (SELECT tag FROM tags)), \
         d2 AS (DELETE FROM image_billing_tags x USING w WHERE x.uuid = w.uuid \
                AND x.tag NOT IN (SELECT tag FROM bills)), \
         d3 AS (DELETE FROM image_acl x USING w WHERE x.uuid = w.uuid \
                AND x.account NOT IN (SELECT account FROM acl)), \
         i1 AS (INSERT INTO image_tags (tag, uuid, state, published_at) SELECT * FROM tags \
                ON CONFLICT (tag, uuid) DO UPDATE SET state = EXCLUDED.state, \
                published_at = EXCLUDED.published_at), \
         i2 AS (INSERT INTO image_billing_tags (tag, uuid, state, published_at) SELECT * FROM bills \
                ON CONFLICT (tag, uuid) DO UPDATE SET state = EXCLUDED.state, \
                published_at = EXCLUDED.published_at), \
         i3 AS (INSERT INTO image_acl (account, uuid) SELECT * FROM acl ON CONFLICT DO NOTHING) \
         SELECT count(*) FROM w"
    );
    let r = c.query_one("image", &sql, &v.params())?;
    super::count(&r, 0)
}

/// Insert a new image; an existing uuid is `DbError::Conflict`.
pub fn insert(c: &PgConn, img: &Image) -> Result<()> {
    let v = RowValues::of(img)?;
    let n = write_with_side_tables(
        c,
        "INSERT INTO images (uuid, owner, name, version, state, activated, disabled, public, type, os, \
         origin, published_at, acl, tags_search, billing_tags, expires_at, manifest, channels, wire, \
         bytes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::text::jsonb,$14::text::jsonb,\
         $15::text::jsonb,$16,$17,$18::text::jsonb,$19,$20) ON CONFLICT DO NOTHING",
        &v,
    )?;
    if n == 0 {
        return Err(DbError::Conflict {
            what: "image uuid",
            source: "a row with that key exists".into(),
        });
    }
    Ok(())
}

/// Replace the stored image with the same uuid (`DbError::NotFound` if none).
pub fn update(c: &PgConn, img: &Image) -> Result<()> {
    let v = RowValues::of(img)?;
    let n = write_with_side_tables(
        c,
        "UPDATE images SET owner=$2, name=$3, version=$4, state=$5, activated=$6, disabled=$7, \
         public=$8, type=$9, os=$10, origin=$11, published_at=$12, acl=$13::text::jsonb, \
         tags_search=$14::text::jsonb, billing_tags=$15::text::jsonb, expires_at=$16, \
         manifest=$17, channels=$18::text::jsonb, wire=$19, bytes=$20 WHERE uuid=$1",
        &v,
    )?;
    if n == 0 {
        return Err(DbError::NotFound {
            entity: Entity::Image,
            id: img.uuid,
        });
    }
    Ok(())
}

/// GetImage's statement.
const GET: &str = "SELECT manifest FROM images WHERE uuid = $1";

/// The image of a [`GET`] row.
fn got(r: &tokio_postgres::Row) -> Result<Image> {
    from_json(&col::<String>(r, 0)?)
}

pub fn get(c: &PgConn, uuid: Uuid) -> Result<Option<Image>> {
    c.query_opt(&format!("{GET}{}", c.for_update()), &[&uuid])?
        .as_ref()
        .map(got)
        .transpose()
}

/// [`get`] awaited on the runtime, on a read-only connection `c` (the
/// hottest read: no blocking thread, one round trip).
pub async fn get_async(c: &deadpool_postgres::Object, uuid: Uuid) -> Result<Option<Image>> {
    let st = c.prepare_cached(GET).await.map_err(pg_error)?;
    c.query_opt(&st, &[&uuid])
        .await
        .map_err(pg_error)?
        .as_ref()
        .map(got)
        .transpose()
}

/// The list generation (sql/pg/0007).
const LIST_GEN: &str = "SELECT gen FROM list_gen WHERE id = 1";

pub fn list_gen(c: &PgConn) -> Result<i64> {
    col(&c.query_one("list_gen", LIST_GEN, &[])?, 0)
}

/// [`list_gen`], awaited on the runtime.
pub async fn list_gen_async(c: &deadpool_postgres::Object) -> Result<i64> {
    let st = c.prepare_cached(LIST_GEN).await.map_err(pg_error)?;
    let row = c.query_opt(&st, &[]).await.map_err(pg_error)?;
    col(
        &row.ok_or_else(|| DbError::corrupt("list_gen")("no such row"))?,
        0,
    )
}

pub fn delete(c: &PgConn, uuid: Uuid) -> Result<bool> {
    Ok(c.execute("DELETE FROM images WHERE uuid = $1", &[&uuid])? > 0)
}

fn uuids(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Uuid>> {
    rows.iter().map(|r| col(r, 0)).collect()
}

/// Images whose `origin` is `uuid`.
pub fn dependents(c: &PgConn, uuid: Uuid) -> Result<Vec<Uuid>> {
    uuids(c.query(
        "SELECT uuid FROM images WHERE origin = $1 ORDER BY uuid",
        &[&uuid],
    )?)
}

/// Placeholders whose `expires_at` has passed.
pub fn expired_placeholders(c: &PgConn, now: crate::clock::Timestamp) -> Result<Vec<Uuid>> {
    uuids(c.query(
        "SELECT uuid FROM images WHERE state IN ('creating','failed') \
         AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY uuid",
        &[&now.to_string()],
    )?)
}

/// Every image (for check-files and gc).
pub fn all(c: &PgConn) -> Result<Vec<Image>> {
    c.query("SELECT manifest FROM images ORDER BY uuid", &[])?
        .iter()
        .map(|r| from_json(&col::<String>(r, 0)?))
        .collect()
}

/// ListImages: the filters of IMGAPI and its `account` visibility union.
pub fn list(c: &PgConn, q: &ListQuery) -> Result<Vec<Image>> {
    list_json(c, q, Select::Manifest)?
        .into_iter()
        .map(|l| match l {
            Listed::Manifest(m) | Listed::Wire(m) => from_json(&m),
        })
        .collect()
}

/// [`list`], each image as stored: with [`Select::Wire`], its stored list
/// form where it has one, else (and with [`Select::Manifest`]) its
/// manifest.
pub fn list_json(c: &PgConn, q: &ListQuery, select: Select) -> Result<Vec<Listed>> {
    let (sql, args) = list_sql(q, select);
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as _).collect();
    listed(c.query(&sql, &params)?, select)
}

/// [`list_json`] awaited on the runtime, on a read-only connection `c`.
pub async fn list_json_async(
    c: &deadpool_postgres::Object,
    q: &ListQuery,
    select: Select,
) -> Result<Vec<Listed>> {
    let (sql, args) = list_sql(q, select);
    run_list(c, &sql, &args, select).await
}

/// Run a list query of [`list_sql`] on `c` (its statement cached).
async fn run_list(
    c: &deadpool_postgres::Object,
    sql: &str,
    args: &[Box<dyn ToSql + Sync + Send>],
    select: Select,
) -> Result<Vec<Listed>> {
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as _).collect();
    let st = c.prepare_cached(sql).await.map_err(pg_error)?;
    listed(c.query(&st, &params).await.map_err(pg_error)?, select)
}

/// The rows of a list query as stored.
fn listed(rows: Vec<tokio_postgres::Row>, select: Select) -> Result<Vec<Listed>> {
    rows.iter()
        .map(|r| {
            Ok(match select {
                Select::Manifest => Listed::Manifest(col(r, 0)?),
                Select::Wire => match col::<Option<String>>(r, 0)? {
                    Some(w) => Listed::Wire(w),
                    None => Listed::Manifest(col(r, 1)?),
                },
            })
        })
        .collect()
}

/// A query's parameters as it is built.
#[derive(Default)]
struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    fn add(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }
}

/// `s` as a LIKE pattern matching it anywhere (`\` escapes).
fn like_contains(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// Does the best plan of `q` depend on its values, so that it must be
/// planned for them at each run? A plan made once (a generic plan) is
/// kept for the shapes whose best plan is the same whatever the values:
/// at most one equality that has its own index in ListImages' order
/// (owner, name, version, os, type, a tag or a billing tag; a tag is
/// joined, see [`list_sql`]), with or without `account`, `public`, a
/// marker and the order. Measured otherwise (scripts/bench.sh
/// cluster-list): two equalities (which index to walk depends on how many
/// images each matches), a `~` substring (a trigram index for a rare one,
/// a walk for a common or short one), a tag key's range, and an account's
/// private images (two walks) were up to 100 times slower on a generic
/// plan.
pub(crate) fn value_sensitive(q: &ListQuery) -> bool {
    let exact = |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Exact(_)));
    let contains = |m: &Option<TextMatch>| matches!(m, Some(TextMatch::Contains(_)));
    let equalities = [
        q.owner.is_some(),
        exact(&q.name),
        exact(&q.version),
        q.os.is_some(),
        q.type_.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
        + q.tags.len()
        + q.billing_tags.len();
    equalities > 1
        || contains(&q.name)
        || contains(&q.version)
        || !q.tag_keys.is_empty()
        || q.origin.is_some()
        || q.channel.is_some()
        || q.last_downloaded_before.is_some()
        || q.last_downloaded_since.is_some()
        || (q.account.is_some() && q.public == Some(false))
}

/// The shortest substring the trigram indexes can find.
const TRIGRAM: usize = 3;

/// Most values a `name=~` (`version=~`) may match for the list to walk
/// each value's images and merge them; more, and the substring is common
/// enough that a walk in ListImages' order checking it finds the page
/// soon.
const MAX_VALUES: usize = 64;

/// Is `q` an account's private images (two walks merged, see
/// [`list_sql`])?
fn private_union(q: &ListQuery) -> bool {
    q.account.is_some() && q.public == Some(false) && q.owner.is_none()
}

/// The values a list walks one by one: a column and the values of it
/// that contain the list's substring.
struct ByValues {
    col: &'static str,
    values: Vec<String>,
}

/// What a `~` list's conditions name the walked value by (each walk puts
/// its own value in its place).
const WALKED_VALUE: &str = "$walked_value";

/// For a `name=~` (else `version=~`) list that can take them: the
/// column's values that contain its substring (`image_values`,
/// sql/pg/0004), if at most [`MAX_VALUES`].
async fn values_containing(
    c: &deadpool_postgres::Object,
    q: &ListQuery,
) -> Result<Option<ByValues>> {
    let (field, sub) = match (&q.name, &q.version) {
        (Some(TextMatch::Contains(s)), _) => ("name", s),
        (_, Some(TextMatch::Contains(s))) => ("version", s),
        _ => return Ok(None),
    };
    if private_union(q) {
        return Ok(None);
    }
    let limit = MAX_VALUES as i64 + 1;
    let rows = if sub.chars().count() >= TRIGRAM {
        let st = c
            .prepare_cached(
                "SELECT value FROM image_values WHERE field = $1 AND strpos(value, $2) > 0 \
                 AND value LIKE $3 ORDER BY value LIMIT $4",
            )
            .await
            .map_err(pg_error)?;
        c.query(&st, &[&field, sub, &like_contains(sub), &limit])
            .await
    } else {
        let st = c
            .prepare_cached(
                "SELECT value FROM image_values WHERE field = $1 AND strpos(value, $2) > 0 \
                 ORDER BY value LIMIT $3",
            )
            .await
            .map_err(pg_error)?;
        c.query(&st, &[&field, sub, &limit]).await
    }
    .map_err(pg_error)?;
    if rows.len() > MAX_VALUES {
        return Ok(None);
    }
    let values = rows
        .iter()
        .map(|r| col::<String>(r, 0))
        .collect::<Result<_>>()?;
    Ok(Some(ByValues { col: field, values }))
}

/// ListImages for `name=~` or `version=~` through the values that match
/// ([`values_containing`]), if it can go that way; awaited on the
/// runtime, on a connection that may use a generic plan (the walks are
/// the same whatever the values).
pub async fn list_json_by_values(
    c: &deadpool_postgres::Object,
    q: &ListQuery,
    select: Select,
) -> Result<Option<Vec<Listed>>> {
    let Some(by) = values_containing(c, q).await? else {
        return Ok(None);
    };
    if by.values.is_empty() {
        return Ok(Some(vec![]));
    }
    let (sql, args) = list_sql_values(q, select, Some(by));
    Ok(Some(run_list(c, &sql, &args, select).await?))
}

/// The SQL of a ListImages query and its parameters (as `db::images`'
/// `where_sql` defines the filters).
pub(crate) fn list_sql(
    q: &ListQuery,
    select: Select,
) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    list_sql_values(q, select, None)
}

/// [`list_sql`]; with `by` (a `~` list, not an account's private
/// images), each of those values' images walked in ListImages' order up
/// to the limit, and the walks merged.
fn list_sql_values(
    q: &ListQuery,
    select: Select,
    by: Option<ByValues>,
) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut a = Args::default();
    let by_col = by.as_ref().map(|b| b.col);
    let by_values = by.map(|b| {
        let n = b.values.len();
        (a.add(b.values), n)
    });
    let mut wh = column_filters(q, by_col, &mut a);
    let joined = tag_filters(q, &mut a, &mut wh);
    channel_download_marker_filters(q, &mut a, &mut wh);
    let frame = ListFrame::new(q, select, joined, by_values);
    let Some(acct) = q.account else {
        return (frame.plain(&wh), a.0);
    };
    let sql = account_sql(q, acct, wh, &mut a, &frame);
    (sql, a.0)
}

/// The conditions of `q` on the images' own columns (state, origin,
/// owner, name, version, type, os, public), their parameters added to `a`
/// in that order; `by_col`, the column of the `~` values walked, is
/// matched to each value instead.
fn column_filters(q: &ListQuery, by_col: Option<&str>, a: &mut Args) -> Vec<String> {
    let mut wh: Vec<String> = Vec::new();
    // The state is written out (one of a closed set of words): the plan
    // of the default list can then use the partial index of active images
    // (sql/pg/0004), whatever plan mode the connection has.
    if let StateFilter::Only(s) = q.state {
        wh.push(format!("images.state = '{}'", s.as_str()));
    }
    if let Some(o) = q.origin {
        wh.push(format!("origin = {}", a.add(o)));
    }
    if let Some(o) = q.owner {
        wh.push(format!("owner = {}", a.add(o)));
    }
    for (c, m) in [("name", &q.name), ("version", &q.version)] {
        if by_col == Some(c) {
            wh.push(format!("images.{c} = {WALKED_VALUE}"));
            continue;
        }
        match m {
            Some(TextMatch::Exact(s)) => wh.push(format!("{c} = {}", a.add(s.clone()))),
            Some(TextMatch::Contains(s)) => {
                // `strpos` is the definition (case-sensitive, no
                // wildcards); the LIKE lets the trigram index find the
                // candidates.
                wh.push(format!("strpos({c}, {}) > 0", a.add(s.clone())));
                if s.chars().count() >= TRIGRAM {
                    // The trigram index's expression (sql/pg/0004).
                    wh.push(format!("({c} || '') LIKE {}", a.add(like_contains(s))));
                }
            }
            None => {}
        }
    }
    if let Some((neg, t)) = &q.type_ {
        let op = if *neg { "<>" } else { "=" };
        wh.push(format!("type {op} {}", a.add(t.clone())));
    }
    if let Some(os) = &q.os {
        wh.push(format!("os = {}", a.add(os.clone())));
    }
    if let Some(public) = q.public {
        wh.push(format!("public = {public}"));
    }
    wh
}

/// The tag, tag key and billing tag conditions of `q`, pushed onto `wh`;
/// returns the side table joined and its tag's parameter (the first tag,
/// else the first billing tag, of a list that is not an account's
/// private images), which is then not a condition of its own.
fn tag_filters(
    q: &ListQuery,
    a: &mut Args,
    wh: &mut Vec<String>,
) -> Option<(&'static str, String)> {
    // A tag row carries its image's state (`t.state = images.state` always
    // holds): written out, it lets the planner start from the tag's rows in
    // the state asked for (image_tags_list) when they are few.
    let mut tags = q.tags.iter();
    // The first tag (else billing tag) of a plain list is joined, and the list ordered by
    // its rows' (published_at, uuid) (the image's own, copied): the
    // planner can then walk the tag's rows of the state asked for in
    // ListImages' order (image_tags_list) and stop at the limit, or start
    // from another filter's index and sort the few rows it finds.
    let mut bills = q.billing_tags.iter();
    let joined = match (q.account, q.public) {
        (Some(_), Some(false)) if q.owner.is_none() => None,
        _ => match tags.next() {
            Some(t) => Some(("image_tags", a.add(t.clone()))),
            None => bills
                .next()
                .map(|t| ("image_billing_tags", a.add(t.clone()))),
        },
    };
    for t in tags {
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_tags t WHERE t.tag = {} AND t.state = images.state \
             AND t.uuid = images.uuid)",
            a.add(t.clone())
        ));
    }
    for k in &q.tag_keys {
        // "key=" <= tag < "key>" (byte order): every tag starting "key=".
        let lo = a.add(format!("{k}="));
        let hi = a.add(format!("{k}>"));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_tags t WHERE t.tag >= {lo} AND t.tag < {hi} \
             AND t.uuid = images.uuid)"
        ));
    }
    for t in bills {
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_billing_tags t WHERE t.tag = {} \
             AND t.state = images.state AND t.uuid = images.uuid)",
            a.add(t.clone())
        ));
    }
    joined
}

/// The channel, last-download and marker conditions of `q`, pushed onto
/// `wh` in that order.
fn channel_download_marker_filters(q: &ListQuery, a: &mut Args, wh: &mut Vec<String>) {
    match q.channel.as_deref() {
        None => {}
        Some("*") => wh.push("channels <> '[]'::jsonb".into()),
        Some(ch) => wh.push(format!("channels ? {}", a.add(ch.to_string()))),
    }
    if let Some(t) = q.last_downloaded_before {
        wh.push(format!(
            "NOT EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid \
             AND d.last_at >= {})",
            a.add(t.to_string())
        ));
    }
    if let Some(t) = q.last_downloaded_since {
        wh.push(format!(
            "EXISTS (SELECT 1 FROM image_downloads d WHERE d.uuid = images.uuid \
             AND d.last_at >= {})",
            a.add(t.to_string())
        ));
    }
    if let Some(m) = &q.marker {
        let op = if q.desc { "<=" } else { ">=" };
        wh.push(format!("images.published_at {op} {}", a.add(m.clone())));
    }
}

/// What a ListImages statement puts around its conditions: the columns
/// selected, the images (or the joined tag's rows) walked, their order
/// and limit, and the `~` values whose walks are merged.
struct ListFrame {
    cols: &'static str,
    pub_order: &'static str,
    uuid_order: &'static str,
    /// The images' ORDER BY and LIMIT.
    order: String,
    /// `images`, or `images` joined to the tag's side table.
    from: String,
    /// The walk's ORDER BY and LIMIT (the joined rows', else `order`).
    joined_order: String,
    /// The parameter of the `~` values (a text array) and how many there
    /// are: each walked and the walks merged.
    by_values: Option<(String, usize)>,
    limit: u32,
}

impl ListFrame {
    /// The frame of `q` returning `select`, walking the `joined` side
    /// table's tag if any, and merging the walks of `by_values` if any.
    fn new(
        q: &ListQuery,
        select: Select,
        joined: Option<(&'static str, String)>,
        by_values: Option<(String, usize)>,
    ) -> ListFrame {
        let cols = match select {
            Select::Manifest => "manifest",
            Select::Wire => "wire, CASE WHEN wire IS NULL THEN manifest END",
        };
        let (pub_order, uuid_order) = if q.desc {
            ("DESC NULLS LAST", "DESC")
        } else {
            ("ASC NULLS FIRST", "ASC")
        };
        // The limit is written out: a generic plan (see `PgDb::image_list_json`)
        // must know it to choose between walking an index and sorting.
        let order = format!(
            "ORDER BY published_at {pub_order}, uuid {uuid_order} LIMIT {}",
            q.limit
        );
        let (from, joined_order) = match &joined {
            Some((table, tag)) => (
                format!(
                    "images JOIN {table} jt ON jt.uuid = images.uuid AND jt.state = images.state \
                     AND jt.tag = {tag}"
                ),
                format!(
                    "ORDER BY jt.published_at {pub_order}, jt.uuid {uuid_order} LIMIT {}",
                    q.limit
                ),
            ),
            None => ("images".to_string(), order.clone()),
        };
        ListFrame {
            cols,
            pub_order,
            uuid_order,
            order,
            from,
            joined_order,
            by_values,
            limit: q.limit,
        }
    }

    /// A plain list's SQL with the conditions `wh`; with `by_values`,
    /// each value's walk merged.
    fn plain(&self, wh: &[String]) -> String {
        let ListFrame {
            cols,
            pub_order,
            uuid_order,
            order,
            from,
            joined_order,
            ..
        } = self;
        match &self.by_values {
            None => format!(
                "SELECT {cols} FROM {from} {} {joined_order}",
                where_clause(wh)
            ),
            Some((arr, n)) => {
                // One walk of the index in ListImages' order per value, all
                // merged by a Merge Append that reads each walk only as far
                // as the limit needs (not every walk to its limit, then a
                // sort). The statement's text depends on the number of
                // values only, so that its generic plan is reused.
                let wh = where_clause(wh);
                let walks: Vec<String> = (1..=*n)
                    .map(|k| {
                        let value = format!("({arr}::text[])[{k}]");
                        format!(
                            "(SELECT images.uuid AS uuid, images.published_at AS published_at \
                             FROM {from} {} {joined_order})",
                            wh.replace(WALKED_VALUE, &value)
                        )
                    })
                    .collect();
                format!(
                    "SELECT {cols} FROM images WHERE uuid IN (SELECT w.uuid FROM ({}) w \
                     ORDER BY w.published_at {pub_order}, w.uuid {uuid_order} LIMIT {}) {order}",
                    walks.join(" UNION ALL "),
                    self.limit
                )
            }
        }
    }
}

/// `WHERE` and the conditions `wh`, or nothing.
fn where_clause(wh: &[String]) -> String {
    if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    }
}

/// The SQL of `q` for the account `acct`, its conditions `wh` and the
/// `account` union added: (1) own images; (2) activated public; (3)
/// activated private shared via acl. Others' images only when the state
/// asked for is not one only an owner sees (unactivated, disabled).
fn account_sql(
    q: &ListQuery,
    acct: Uuid,
    mut wh: Vec<String>,
    a: &mut Args,
    frame: &ListFrame,
) -> String {
    let p = a.add(acct);
    let acl = format!(
        "EXISTS (SELECT 1 FROM image_acl x WHERE x.account = {p} AND x.uuid = images.uuid)"
    );
    let owner_only = matches!(
        q.state,
        StateFilter::Only(State::Unactivated) | StateFilter::Only(State::Disabled)
    );
    if owner_only {
        wh.push(format!("owner = {p}"));
        frame.plain(&wh)
    } else if private_union(q) {
        // Private images only: the account's own and those shared with it,
        // each walk stopping at the limit, instead of a walk of every
        // private image checking the union (120 ms -> 1 ms at 100 000
        // images for an account that sees a few).
        let own = [wh.clone(), vec![format!("owner = {p}")]].concat();
        let shared = [wh, vec![format!("activated AND {acl}")]].concat();
        let order = &frame.order;
        let cols = frame.cols;
        format!(
            "SELECT {cols} FROM images WHERE uuid IN \
             ((SELECT uuid FROM images {} {order}) UNION ALL (SELECT uuid FROM images {} {order})) \
             {order}",
            where_clause(&own),
            where_clause(&shared)
        )
    } else {
        wh.push(format!(
            "(owner = {p} OR (activated AND (public OR {acl})))"
        ));
        frame.plain(&wh)
    }
}
