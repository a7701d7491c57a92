//! SQL for upload sessions.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{DbError, Entity, Result};
use crate::clock::Timestamp;
use crate::digest::HashState;

/// The state of an upload session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Uploading,
    Complete,
    Failed,
    Registered,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Complete => "complete",
            UploadState::Failed => "failed",
            UploadState::Registered => "registered",
        }
    }
    fn parse(s: &str) -> Result<UploadState> {
        Ok(match s {
            "uploading" => UploadState::Uploading,
            "complete" => UploadState::Complete,
            "failed" => UploadState::Failed,
            "registered" => UploadState::Registered,
            _ => {
                return Err(DbError::corrupt("upload state")(format!(
                    "bad upload state {s:?}"
                )));
            }
        })
    }
}

/// One upload session row.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    pub length: u64,
    pub offset: u64,
    pub state: UploadState,
    /// `manta` or `assets`.
    pub store: crate::store::StoreName,
    pub data_key: String,
    pub path: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub content_md5: Option<String>,
    pub hash: HashState,
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub error: Option<String>,
    pub image_uuid: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
    /// Size-and-mtime stamp of the object at `path` when the upload completed.
    pub data_mtime: Option<String>,
    /// The multipart upload the bytes go to (stores that have multipart uploads).
    pub multipart: Option<MultipartState>,
    /// Its part in a tus concatenation, if any.
    pub concat: Concat,
    /// A partial written in place into its final's bytes (see `ConcatPlace`).
    pub concat_place: Option<ConcatPlace>,
    /// The objects its bytes are in so far, when they are kept whole in the
    /// object store (a cluster's uploads into S3; `store::pieces`).
    pub pieces: Option<crate::store::Pieces>,
}

/// Where a partial upload claimed by a final before any of its bytes
/// arrived writes them: straight into the final's staged bytes at `at`,
/// and (object stores, `first_part` set) as parts `first_part..` of the
/// final's multipart upload, those sent so far in `parts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConcatPlace {
    pub at: u64,
    pub first_part: Option<i32>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// An upload's part in a tus concatenation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Concat {
    /// An ordinary upload.
    #[default]
    None,
    /// A byte range of a final upload (the final that uses it, once one does).
    Partial { used_by: Option<Uuid> },
    /// The concatenation of these partial uploads, in file order.
    Final { parts: Vec<Uuid> },
}

pub use crate::store::session::{MultipartState, Part};

const COLS: &str = "id, owner, length, offset, state, store, data_key, path, metadata, content_md5, \
     md5_state, sha1_state, md5, sha1, error, image_uuid, created_at, updated_at, expires_at, data_mtime, multipart_key, multipart_upload_id, parts, staged_from, concat, concat_parts, concat_final, concat_place, crc64, pieces, hash_format";

fn uuid_col(s: Option<String>) -> rusqlite::Result<Option<Uuid>> {
    s.map(|s| {
        Uuid::parse_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

fn from_row(r: &Row) -> rusqlite::Result<(Upload, String)> {
    let id: String = r.get(0)?;
    let offset = r.get::<_, i64>(3)? as u64;
    let up = Upload {
        id: uuid_col(Some(id))?.unwrap_or_default(),
        owner: uuid_col(r.get(1)?)?,
        length: r.get::<_, i64>(2)? as u64,
        offset,
        state: UploadState::Uploading,
        store: r.get(5)?,
        data_key: r.get(6)?,
        path: r.get(7)?,
        metadata: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        content_md5: r.get(9)?,
        hash: HashState {
            md5: r.get(10)?,
            sha1: r.get(11)?,
            crc64: r.get::<_, Option<i64>>(28)?.map(|c| c as u64),
            size: offset,
            format: r.get(30)?,
        },
        md5: r.get(12)?,
        sha1: r.get(13)?,
        error: r.get(14)?,
        image_uuid: uuid_col(r.get(15)?)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
        expires_at: r.get(18)?,
        data_mtime: r.get(19)?,
        multipart: match (
            r.get::<_, Option<String>>(20)?,
            r.get::<_, Option<String>>(21)?,
        ) {
            (Some(key), Some(upload_id)) => Some(MultipartState {
                key,
                upload_id,
                parts: serde_json::from_str(&r.get::<_, String>(22)?).unwrap_or_default(),
                staged_from: r.get::<_, i64>(23)? as u64,
            }),
            _ => None,
        },
        concat: match r.get::<_, Option<String>>(24)?.as_deref() {
            Some("partial") => Concat::Partial {
                used_by: uuid_col(r.get(26)?)?,
            },
            Some("final") => Concat::Final {
                parts: serde_json::from_str(&r.get::<_, Option<String>>(25)?.unwrap_or_default())
                    .unwrap_or_default(),
            },
            _ => Concat::None,
        },
        concat_place: r
            .get::<_, Option<String>>(27)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        pieces: r
            .get::<_, Option<String>>(29)?
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    29,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
    };
    Ok((up, r.get(4)?))
}

fn finish(row: (Upload, String)) -> Result<Upload> {
    let (mut up, state) = row;
    up.state = UploadState::parse(&state)?;
    Ok(up)
}

pub fn insert(c: &Connection, u: &Upload) -> Result<()> {
    c.execute(
        &format!("INSERT INTO uploads ({COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31)"),
        params![
            u.id.to_string(),
            u.owner.map(|o| o.to_string()),
            u.length as i64,
            u.offset as i64,
            u.state.as_str(),
            u.store,
            u.data_key,
            u.path,
            serde_json::to_string(&u.metadata).map_err(DbError::corrupt("upload metadata"))?,
            u.content_md5,
            u.hash.md5,
            u.hash.sha1,
            u.md5,
            u.sha1,
            u.error,
            u.image_uuid.map(|i| i.to_string()),
            u.created_at,
            u.updated_at,
            u.expires_at,
            u.data_mtime,
            u.multipart.as_ref().map(|m| m.key.clone()),
            u.multipart.as_ref().map(|m| m.upload_id.clone()),
            serde_json::to_string(&u.multipart.as_ref().map(|m| m.parts.clone()).unwrap_or_default())
                .map_err(DbError::corrupt("upload parts"))?,
            u.multipart.as_ref().map(|m| m.staged_from as i64).unwrap_or(0),
            match &u.concat {
                Concat::None => None,
                Concat::Partial { .. } => Some("partial"),
                Concat::Final { .. } => Some("final"),
            },
            match &u.concat {
                Concat::Final { parts } => Some(
                    serde_json::to_string(parts).map_err(DbError::corrupt("upload concat"))?,
                ),
                _ => None,
            },
            match &u.concat {
                Concat::Partial { used_by } => used_by.map(|f| f.to_string()),
                _ => None,
            },
            u.concat_place
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(DbError::corrupt("upload concat place"))?,
            u.hash.crc64.map(|c| c as i64),
            pieces_json(u)?,
            u.hash.format,
        ],
    )?;
    Ok(())
}

/// The `pieces` column of an upload (JSON; NULL when staged).
pub(crate) fn pieces_json(u: &Upload) -> Result<Option<String>> {
    u.pieces
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(DbError::corrupt("upload pieces"))
}

/// Record that the partial upload `id` is used by the final `by` (None:
/// no longer used).
pub fn set_used_by(c: &Connection, id: Uuid, by: Option<Uuid>) -> Result<()> {
    c.execute(
        "UPDATE uploads SET concat_final = ?2 WHERE id = ?1 AND concat = 'partial'",
        params![id.to_string(), by.map(|b| b.to_string())],
    )?;
    Ok(())
}

/// Record where the partial upload `id` writes its bytes in its final
/// (None: into its own).
pub fn set_place(c: &Connection, id: Uuid, place: Option<&ConcatPlace>) -> Result<()> {
    let json = place
        .map(serde_json::to_string)
        .transpose()
        .map_err(DbError::corrupt("upload concat place"))?;
    c.execute(
        "UPDATE uploads SET concat_place = ?2 WHERE id = ?1 AND concat = 'partial'",
        params![id.to_string(), json],
    )?;
    Ok(())
}

/// Partial uploads whose final (`of`, or any) is finished (complete,
/// registered or failed for good): their bytes are the final's now, so
/// they can go.
pub fn spent_partials(c: &Connection, of: Option<Uuid>) -> Result<Vec<Upload>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM uploads WHERE concat = 'partial' AND concat_final IN \
         (SELECT id FROM uploads WHERE concat = 'final' AND state != 'uploading' \
          AND (?1 IS NULL OR id = ?1))"
    ))?;
    let rows = st.query_map(params![of.map(|o| o.to_string())], from_row)?;
    rows.map(|r| finish(r?)).collect()
}

/// Save the mutable columns of an upload.
pub fn update(c: &Connection, u: &Upload) -> Result<()> {
    let n = c.execute(
        "UPDATE uploads SET offset=?2, state=?3, data_key=?4, md5_state=?5, sha1_state=?6, md5=?7, sha1=?8, \
         error=?9, image_uuid=?10, updated_at=?11, expires_at=?12, data_mtime=?13, store=?14, \
         multipart_key=?15, multipart_upload_id=?16, parts=?17, staged_from=?18, crc64=?19, pieces=?20, \
         hash_format=?21 WHERE id=?1",
        params![
            u.id.to_string(),
            u.offset as i64,
            u.state.as_str(),
            u.data_key,
            u.hash.md5,
            u.hash.sha1,
            u.md5,
            u.sha1,
            u.error,
            u.image_uuid.map(|i| i.to_string()),
            u.updated_at,
            u.expires_at,
            u.data_mtime,
            u.store,
            u.multipart.as_ref().map(|m| m.key.clone()),
            u.multipart.as_ref().map(|m| m.upload_id.clone()),
            serde_json::to_string(&u.multipart.as_ref().map(|m| m.parts.clone()).unwrap_or_default())
                .map_err(DbError::corrupt("upload parts"))?,
            u.multipart.as_ref().map(|m| m.staged_from as i64).unwrap_or(0),
            u.hash.crc64.map(|c| c as i64),
            pieces_json(u)?,
            u.hash.format,
        ],
    )?;
    if n == 0 {
        return Err(DbError::NotFound {
            entity: Entity::Upload,
            id: u.id,
        });
    }
    Ok(())
}

pub fn get(c: &Connection, id: Uuid) -> Result<Option<Upload>> {
    c.query_row(
        &format!("SELECT {COLS} FROM uploads WHERE id = ?1"),
        params![id.to_string()],
        from_row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

/// Delete an upload's row; partials a deleted final used are free again.
pub fn delete(c: &Connection, id: Uuid) -> Result<bool> {
    // Partials that wrote in place into it lose their bytes with it (those
    // with none yet are simply free again).
    c.execute(
        "UPDATE uploads SET state = 'failed', concat_place = NULL, \
         error = 'its bytes were written into a final upload that was removed' \
         WHERE concat_final = ?1 AND concat_place IS NOT NULL AND offset > 0 \
         AND state != 'registered'",
        params![id.to_string()],
    )?;
    c.execute(
        "UPDATE uploads SET concat_place = NULL WHERE concat_final = ?1",
        params![id.to_string()],
    )?;
    c.execute(
        "UPDATE uploads SET concat_final = NULL WHERE concat_final = ?1",
        params![id.to_string()],
    )?;
    Ok(c.execute("DELETE FROM uploads WHERE id = ?1", params![id.to_string()])? > 0)
}

/// Uploads of `owner` (None: all), newest first.
pub fn list(c: &Connection, owner: Option<Uuid>) -> Result<Vec<Upload>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM uploads WHERE (?1 IS NULL OR owner = ?1) ORDER BY created_at DESC, id"
    ))?;
    let rows = st.query_map(params![owner.map(|o| o.to_string())], from_row)?;
    rows.map(|r| finish(r?)).collect()
}

/// A page of the uploads of `owner` (None: all), newest first: at most
/// `limit`, after the upload `after` (its created_at and id) if given.
pub fn list_page(
    c: &Connection,
    owner: Option<Uuid>,
    after: Option<(Timestamp, Uuid)>,
    limit: u32,
) -> Result<Vec<Upload>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM uploads WHERE (?1 IS NULL OR owner = ?1) \
         AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND id > ?3)) \
         ORDER BY created_at DESC, id LIMIT ?4"
    ))?;
    let (at, id) = match after {
        Some((at, id)) => (Some(at), Some(id.to_string())),
        None => (None, None),
    };
    let rows = st.query_map(
        params![owner.map(|o| o.to_string()), at, id, limit as i64],
        from_row,
    )?;
    rows.map(|r| finish(r?)).collect()
}

/// Bytes `owner` has in unfinished uploads (their declared lengths; a
/// final upload of a tus concatenation holds its partials' bytes, counted
/// with them).
pub fn bytes_in_flight(c: &Connection, owner: Option<Uuid>) -> Result<u64> {
    owner_sum(
        c,
        "COALESCE(SUM(length), 0)",
        "state = 'uploading' AND concat IS NOT 'final'",
        owner,
    )
}

/// Uploads `owner` has open (not registered to an image).
pub fn open_count(c: &Connection, owner: Option<Uuid>) -> Result<u64> {
    owner_sum(c, "count(*)", "state != 'registered'", owner)
}

/// An aggregate `what` over the uploads of `owner` that match `filter`.
fn owner_sum(c: &Connection, what: &str, filter: &str, owner: Option<Uuid>) -> Result<u64> {
    let n: i64 = c.query_row(
        &format!("SELECT {what} FROM uploads WHERE owner IS ?1 AND {filter}"),
        params![owner.map(|o| o.to_string())],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Uploads with every byte in but not completed (a crash cut their
/// completion short), and final uploads not yet filled from their partials.
pub fn stalled(c: &Connection) -> Result<Vec<Upload>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM uploads WHERE state = 'uploading' AND (offset = length OR concat = 'final')"
    ))?;
    let rows = st.query_map([], from_row)?;
    rows.map(|r| finish(r?)).collect()
}

/// Unfinished uploads idle past their expiry.
pub fn expired(c: &Connection, now: Timestamp) -> Result<Vec<Upload>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM uploads WHERE state IN ('uploading','complete','failed') AND expires_at < ?1"
    ))?;
    let rows = st.query_map(params![now], from_row)?;
    rows.map(|r| finish(r?)).collect()
}

/// Why an upload could not be claimed for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefused {
    /// No such upload.
    Unknown,
    /// Already claimed by an image (the one recorded, if any).
    Registered(Option<Uuid>),
    /// Its content_md5 check failed.
    Failed,
    /// Not every byte is in yet.
    Incomplete,
}

impl ClaimRefused {
    /// Why an upload that the claim's conditional update did not change
    /// (`None`: there is none) was refused.
    pub fn of(up: Option<&Upload>) -> ClaimRefused {
        match up {
            None => ClaimRefused::Unknown,
            Some(u) if matches!(u.concat, Concat::Partial { .. }) => ClaimRefused::Unknown,
            Some(u) if u.state == UploadState::Registered => ClaimRefused::Registered(u.image_uuid),
            Some(u) if u.state == UploadState::Failed => ClaimRefused::Failed,
            Some(_) => ClaimRefused::Incomplete,
        }
    }
}

/// Claim a complete upload for `image` (atomically: a second claim is
/// refused with `ClaimRefused::Registered`). The caller has checked ownership.
/// A partial upload of a tus concatenation is no file of its own (Unknown).
pub fn mark_registered(
    c: &Connection,
    id: Uuid,
    image: Uuid,
    now: Timestamp,
) -> Result<Result<(), ClaimRefused>> {
    let n = c.execute(
        "UPDATE uploads SET state = 'registered', image_uuid = ?2, updated_at = ?3 \
         WHERE id = ?1 AND state = 'complete' AND concat IS NOT 'partial'",
        params![id.to_string(), image.to_string(), now],
    )?;
    if n == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(ClaimRefused::of(get(c, id)?.as_ref())))
}

/// Give a claimed upload back (its registration failed early).
pub fn unmark_registered(c: &Connection, id: Uuid, image: Uuid) -> Result<()> {
    c.execute(
        "UPDATE uploads SET state = 'complete', image_uuid = NULL WHERE id = ?1 AND image_uuid = ?2",
        params![id.to_string(), image.to_string()],
    )?;
    Ok(())
}

/// Number of uploads in each state.
pub fn count_by_state(c: &Connection) -> Result<Vec<(String, u64)>> {
    let mut st = c.prepare("SELECT state, count(*) FROM uploads GROUP BY state ORDER BY state")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    rows.map(|r| r.map_err(DbError::from)).collect()
}
