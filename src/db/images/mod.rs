//! SQL for images: insert, get, update, delete, the query model of
//! ListImages, and each image's stored list form (`images.wire`, what
//! ListImages copies into its body when it needs no other rendering).
//! ListImages' planner is `list`.

mod list;

#[cfg(test)]
pub(crate) use list::tests;
pub use list::{
    Dense, Listed, MERGE_MAX, Select, list, list_json, list_sql, list_sql_dense, list_sql_select,
    merge_values,
};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{DbError, Entity, Result};
use crate::clock::Timestamp;
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
        SqlValue::Text(json_text(&img.acl)?),
        SqlValue::Text(json_text(&img.tags_search())?),
        SqlValue::Text(json_text(&img.billing_tags)?),
        img.expires_at
            .clone()
            .map(SqlValue::Text)
            .unwrap_or(SqlValue::Null),
        SqlValue::Text(serde_json::to_string(img).map_err(DbError::corrupt("image manifest"))?),
        SqlValue::Text(json_text(&img.channels)?),
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

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(DbError::corrupt("image column"))
}

/// The list generation (sql/0017).
pub fn list_gen(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT gen FROM list_gen WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
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
