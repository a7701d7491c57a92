//! Upload sessions on PostgreSQL (same results as `db::uploads`).

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{PgConn, col, count, counts};
use crate::clock::Timestamp;
use crate::db::uploads::{
    ClaimRefused, Concat, ConcatPlace, MultipartState, Upload, UploadState, pieces_json,
};
use crate::db::{DbError, Entity, Result};
use crate::digest::HashState;

const COLS: &str = "id, owner, length, \"offset\", state, store, data_key, path, metadata, content_md5, \
     md5_state, sha1_state, md5, sha1, error, image_uuid, created_at, updated_at, expires_at, data_mtime, \
     multipart_key, multipart_upload_id, parts, staged_from, concat, concat_parts, concat_final, concat_place, crc64, \
     pieces, hash_format";

fn state(s: &str) -> Result<UploadState> {
    [
        UploadState::Uploading,
        UploadState::Complete,
        UploadState::Failed,
        UploadState::Registered,
    ]
    .into_iter()
    .find(|u| u.as_str() == s)
    .ok_or_else(|| DbError::corrupt("upload state")(format!("bad upload state {s:?}")))
}

fn ts(r: &Row, i: usize) -> Result<Timestamp> {
    Ok(Timestamp::from(col::<chrono::DateTime<chrono::Utc>>(r, i)?))
}

fn from_row(r: &Row) -> Result<Upload> {
    let offset = count(r, 3)?;
    let store: String = col(r, 5)?;
    Ok(Upload {
        id: col(r, 0)?,
        owner: col(r, 1)?,
        length: count(r, 2)?,
        offset,
        state: state(&col::<String>(r, 4)?)?,
        store: store.parse().map_err(DbError::corrupt("upload store"))?,
        data_key: col(r, 6)?,
        path: col(r, 7)?,
        metadata: serde_json::from_str(&col::<String>(r, 8)?).unwrap_or_default(),
        content_md5: col(r, 9)?,
        hash: HashState {
            md5: col(r, 10)?,
            sha1: col(r, 11)?,
            crc64: col::<Option<i64>>(r, 28)?.map(|c| c as u64),
            size: offset,
            format: col(r, 30)?,
        },
        md5: col(r, 12)?,
        sha1: col(r, 13)?,
        error: col(r, 14)?,
        image_uuid: col(r, 15)?,
        created_at: ts(r, 16)?,
        updated_at: ts(r, 17)?,
        expires_at: ts(r, 18)?,
        data_mtime: col(r, 19)?,
        multipart: match (col::<Option<String>>(r, 20)?, col::<Option<String>>(r, 21)?) {
            (Some(key), Some(upload_id)) => Some(MultipartState {
                key,
                upload_id,
                parts: serde_json::from_str(&col::<String>(r, 22)?).unwrap_or_default(),
                staged_from: count(r, 23)?,
            }),
            _ => None,
        },
        concat: match col::<Option<String>>(r, 24)?.as_deref() {
            Some("partial") => Concat::Partial {
                used_by: col(r, 26)?,
            },
            Some("final") => Concat::Final {
                parts: serde_json::from_str(&col::<Option<String>>(r, 25)?.unwrap_or_default())
                    .unwrap_or_default(),
            },
            _ => Concat::None,
        },
        concat_place: col::<Option<String>>(r, 27)?.and_then(|p| serde_json::from_str(&p).ok()),
        pieces: col::<Option<String>>(r, 29)?
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(DbError::corrupt("upload pieces"))?,
    })
}

fn rows(v: Vec<Row>) -> Result<Vec<Upload>> {
    v.iter().map(from_row).collect()
}

fn parts_json(u: &Upload) -> Result<String> {
    serde_json::to_string(
        &u.multipart
            .as_ref()
            .map(|m| m.parts.clone())
            .unwrap_or_default(),
    )
    .map_err(DbError::corrupt("upload parts"))
}

pub fn insert(c: &PgConn, u: &Upload) -> Result<()> {
    let metadata =
        serde_json::to_string(&u.metadata).map_err(DbError::corrupt("upload metadata"))?;
    let parts = parts_json(u)?;
    let (concat, concat_parts, concat_final) = match &u.concat {
        Concat::None => (None, None, None),
        Concat::Partial { used_by } => (Some("partial"), None, *used_by),
        Concat::Final { parts } => (
            Some("final"),
            Some(serde_json::to_string(parts).map_err(DbError::corrupt("upload concat"))?),
            None,
        ),
    };
    let place = u
        .concat_place
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(DbError::corrupt("upload concat place"))?;
    let (multipart_key, multipart_id, staged) = multipart_columns(u);
    let pieces = pieces_json(u)?;
    let params: [&(dyn ToSql + Sync); 31] = [
        &u.id,
        &u.owner,
        &(u.length as i64),
        &(u.offset as i64),
        &u.state.as_str(),
        &u.store.as_str(),
        &u.data_key,
        &u.path,
        &metadata,
        &u.content_md5,
        &u.hash.md5,
        &u.hash.sha1,
        &u.md5,
        &u.sha1,
        &u.error,
        &u.image_uuid,
        &u.created_at.datetime(),
        &u.updated_at.datetime(),
        &u.expires_at.datetime(),
        &u.data_mtime,
        &multipart_key,
        &multipart_id,
        &parts,
        &staged,
        &concat,
        &concat_parts,
        &concat_final,
        &place,
        &u.hash.crc64.map(|c| c as i64),
        &pieces,
        &u.hash.format,
    ];
    c.insert_unique(
        "upload",
        &format!(
            "INSERT INTO uploads ({COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,\
             $15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,$30,$31) ON CONFLICT DO NOTHING"
        ),
        &params,
    )?;
    Ok(())
}

/// Record that the partial upload `id` is used by the final `by` (None:
/// no longer used).
pub fn set_used_by(c: &PgConn, id: Uuid, by: Option<Uuid>) -> Result<()> {
    c.execute(
        "UPDATE uploads SET concat_final = $2 WHERE id = $1 AND concat = 'partial'",
        &[&id, &by],
    )?;
    Ok(())
}

/// Record where the partial upload `id` writes its bytes in its final
/// (None: into its own).
pub fn set_place(c: &PgConn, id: Uuid, place: Option<&ConcatPlace>) -> Result<()> {
    let json = place
        .map(serde_json::to_string)
        .transpose()
        .map_err(DbError::corrupt("upload concat place"))?;
    c.execute(
        "UPDATE uploads SET concat_place = $2 WHERE id = $1 AND concat = 'partial'",
        &[&id, &json],
    )?;
    Ok(())
}

/// Partial uploads whose final (`of`, or any) is finished.
pub fn spent_partials(c: &PgConn, of: Option<Uuid>) -> Result<Vec<Upload>> {
    rows(c.query(
        &format!(
            "SELECT {COLS} FROM uploads WHERE concat = 'partial' AND concat_final IN \
             (SELECT id FROM uploads WHERE concat = 'final' AND state <> 'uploading' \
              AND ($1::uuid IS NULL OR id = $1)) ORDER BY id"
        ),
        &[&of],
    )?)
}

/// The multipart upload's columns of `u`: its key, its id, and where its
/// staged bytes start (0 without one).
fn multipart_columns(u: &Upload) -> (Option<String>, Option<String>, i64) {
    match &u.multipart {
        Some(m) => (
            Some(m.key.clone()),
            Some(m.upload_id.clone()),
            m.staged_from as i64,
        ),
        None => (None, None, 0),
    }
}

/// Save the mutable columns of an upload.
pub fn update(c: &PgConn, u: &Upload) -> Result<()> {
    let parts = parts_json(u)?;
    let (multipart_key, multipart_id, staged) = multipart_columns(u);
    let pieces = pieces_json(u)?;
    let n = c.execute(
        "UPDATE uploads SET \"offset\"=$2, state=$3, data_key=$4, md5_state=$5, sha1_state=$6, md5=$7, \
         sha1=$8, error=$9, image_uuid=$10, updated_at=$11, expires_at=$12, data_mtime=$13, store=$14, \
         multipart_key=$15, multipart_upload_id=$16, parts=$17, staged_from=$18, crc64=$19, \
         pieces=$20, hash_format=$21 WHERE id=$1",
        &[
            &u.id,
            &(u.offset as i64),
            &u.state.as_str(),
            &u.data_key,
            &u.hash.md5,
            &u.hash.sha1,
            &u.md5,
            &u.sha1,
            &u.error,
            &u.image_uuid,
            &u.updated_at.datetime(),
            &u.expires_at.datetime(),
            &u.data_mtime,
            &u.store.as_str(),
            &multipart_key,
            &multipart_id,
            &parts,
            &staged,
            &u.hash.crc64.map(|c| c as i64),
            &pieces,
            &u.hash.format,
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

pub fn get(c: &PgConn, id: Uuid) -> Result<Option<Upload>> {
    c.query_opt(
        &format!("SELECT {COLS} FROM uploads WHERE id = $1{}", c.for_update()),
        &[&id],
    )?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Delete an upload's row; partials a deleted final used are free again.
pub fn delete(c: &PgConn, id: Uuid) -> Result<bool> {
    // Partials that wrote in place into it lose their bytes with it (those
    // with none yet are simply free again).
    c.execute(
        "UPDATE uploads SET state = 'failed', concat_place = NULL, \
         error = 'its bytes were written into a final upload that was removed' \
         WHERE concat_final = $1 AND concat_place IS NOT NULL AND \"offset\" > 0 \
         AND state <> 'registered'",
        &[&id],
    )?;
    c.execute(
        "UPDATE uploads SET concat_place = NULL, concat_final = NULL WHERE concat_final = $1",
        &[&id],
    )?;
    Ok(c.execute("DELETE FROM uploads WHERE id = $1", &[&id])? > 0)
}

/// Uploads of `owner` (None: all), newest first.
pub fn list(c: &PgConn, owner: Option<Uuid>) -> Result<Vec<Upload>> {
    rows(c.query(
        &format!(
            "SELECT {COLS} FROM uploads WHERE ($1::uuid IS NULL OR owner = $1) \
             ORDER BY created_at DESC, id"
        ),
        &[&owner],
    )?)
}

/// A page of the uploads of `owner` (None: all), newest first: at most
/// `limit`, after the upload `after` (its created_at and id) if given.
pub fn list_page(
    c: &PgConn,
    owner: Option<Uuid>,
    after: Option<(Timestamp, Uuid)>,
    limit: u32,
) -> Result<Vec<Upload>> {
    let (at, id) = match after {
        Some((at, id)) => (Some(at.datetime()), Some(id)),
        None => (None, None),
    };
    rows(c.query(
        &format!(
            "SELECT {COLS} FROM uploads WHERE ($1::uuid IS NULL OR owner = $1) \
             AND ($2::timestamptz IS NULL OR created_at < $2 OR (created_at = $2 AND id > $3)) \
             ORDER BY created_at DESC, id LIMIT $4"
        ),
        &[&owner, &at, &id, &(limit as i64)],
    )?)
}

/// Bytes `owner` has in unfinished uploads (declared lengths; a final
/// upload's bytes are counted with its partials).
pub fn bytes_in_flight(c: &PgConn, owner: Option<Uuid>) -> Result<u64> {
    owner_sum(
        c,
        "COALESCE(SUM(length), 0)::bigint",
        "state = 'uploading' AND concat IS DISTINCT FROM 'final'",
        owner,
    )
}

/// Uploads `owner` has open (not registered to an image).
pub fn open_count(c: &PgConn, owner: Option<Uuid>) -> Result<u64> {
    owner_sum(c, "count(*)", "state <> 'registered'", owner)
}

fn owner_sum(c: &PgConn, what: &str, filter: &str, owner: Option<Uuid>) -> Result<u64> {
    let r = c.query_one(
        "upload sum",
        &format!("SELECT {what} FROM uploads WHERE owner IS NOT DISTINCT FROM $1 AND {filter}"),
        &[&owner],
    )?;
    count(&r, 0)
}

/// Uploads with every byte in but not completed, and final uploads not
/// yet filled from their partials.
pub fn stalled(c: &PgConn) -> Result<Vec<Upload>> {
    rows(c.query(
        &format!(
            "SELECT {COLS} FROM uploads WHERE state = 'uploading' \
             AND (\"offset\" = length OR concat = 'final') ORDER BY id"
        ),
        &[],
    )?)
}

/// Unfinished uploads idle past their expiry.
pub fn expired(c: &PgConn, now: Timestamp) -> Result<Vec<Upload>> {
    rows(c.query(
        &format!(
            "SELECT {COLS} FROM uploads WHERE state IN ('uploading','complete','failed') \
             AND expires_at < $1 ORDER BY id"
        ),
        &[&now.datetime()],
    )?)
}

/// Claim a complete upload for `image` (atomically: a second claim is
/// refused with `ClaimRefused::Registered`).
pub fn mark_registered(
    c: &PgConn,
    id: Uuid,
    image: Uuid,
    now: Timestamp,
) -> Result<Result<(), ClaimRefused>> {
    let n = c.execute(
        "UPDATE uploads SET state = 'registered', image_uuid = $2, updated_at = $3 \
         WHERE id = $1 AND state = 'complete' AND concat IS DISTINCT FROM 'partial'",
        &[&id, &image, &now.datetime()],
    )?;
    if n == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(ClaimRefused::of(get(c, id)?.as_ref())))
}

/// Give a claimed upload back (its registration failed early).
pub fn unmark_registered(c: &PgConn, id: Uuid, image: Uuid) -> Result<()> {
    c.execute(
        "UPDATE uploads SET state = 'complete', image_uuid = NULL WHERE id = $1 AND image_uuid = $2",
        &[&id, &image],
    )?;
    Ok(())
}

/// Number of uploads in each state.
pub fn count_by_state(c: &PgConn) -> Result<Vec<(String, u64)>> {
    counts(c.query(
        "SELECT state, count(*) FROM uploads GROUP BY state ORDER BY state",
        &[],
    )?)
}
