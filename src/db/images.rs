//! SQL for images: insert, get, update, delete, and ListImages' filters.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{DbError, Entity, Result};
use crate::manifest::{Image, State, normalize_date};

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
         origin, published_at, acl, tags_search, billing_tags, expires_at, manifest, channels) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)",
        rusqlite::params_from_iter(row_params(img)?),
    );
    r.map(|_| ())
        .map_err(|e| DbError::conflict("image uuid", e))
}

/// Replace the stored image with the same uuid (`DbError::NotFound` if none).
pub fn update(conn: &Connection, img: &Image) -> Result<()> {
    let n = conn.execute(
        "UPDATE images SET owner=?2, name=?3, version=?4, state=?5, activated=?6, disabled=?7, \
         public=?8, type=?9, os=?10, origin=?11, published_at=?12, acl=?13, tags_search=?14, \
         billing_tags=?15, expires_at=?16, manifest=?17, channels=?18 WHERE uuid=?1",
        rusqlite::params_from_iter(row_params(img)?),
    )?;
    if n == 0 {
        return Err(DbError::NotFound {
            entity: Entity::Image,
            id: img.uuid,
        });
    }
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
    ])
}

fn j<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(DbError::corrupt("image column"))
}

pub fn get(conn: &Connection, uuid: Uuid) -> Result<Option<Image>> {
    conn.query_row(
        "SELECT manifest FROM images WHERE uuid = ?1",
        params![uuid.to_string()],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .map(from_row)
    .transpose()
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
pub fn expired_placeholders(conn: &Connection, now: &str) -> Result<Vec<Uuid>> {
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

/// ListImages: the filters of IMGAPI and its `account` visibility union.
pub fn list(conn: &Connection, q: &ListQuery) -> Result<Vec<Image>> {
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
