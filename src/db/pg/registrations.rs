//! Registrar jobs on PostgreSQL (same results as `db::registrations`).

use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgConn, col, counts};
use crate::clock::Timestamp;
use crate::db::registrations::{Compression, Job, JobKind, JobSource, JobState};
use crate::db::{DbError, Result};

const COLS: &str = "image_uuid, kind, source, upload_id, store, source_key, content_md5, sha1, size, compression, \
     dataset_guid, activate, state, attempts, error_code, error_message, created_at, updated_at";

/// A text column holding one of an enum's values.
fn text_enum<T>(r: &Row, i: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: String = col(r, i)?;
    parse(&s).ok_or_else(|| DbError::corrupt("registration column")(format!("bad value {s:?}")))
}

fn from_row(r: &Row) -> Result<Job> {
    Ok(Job {
        image_uuid: col(r, 0)?,
        kind: text_enum(r, 1, JobKind::parse)?,
        source: text_enum(r, 2, JobSource::parse)?,
        upload_id: col(r, 3)?,
        store: col::<String>(r, 4)?.parse().ok(),
        source_key: col(r, 5)?,
        content_md5: col(r, 6)?,
        sha1: col(r, 7)?,
        size: col::<Option<i64>>(r, 8)?.map(|n| n as u64),
        compression: text_enum(r, 9, Compression::parse)?,
        dataset_guid: col(r, 10)?,
        activate: col(r, 11)?,
        state: text_enum(r, 12, JobState::parse)?,
        attempts: col::<i32>(r, 13)? as u32,
        error_code: col(r, 14)?,
        error_message: col(r, 15)?,
        created_at: Timestamp::from(col::<chrono::DateTime<chrono::Utc>>(r, 16)?),
        updated_at: Timestamp::from(col::<chrono::DateTime<chrono::Utc>>(r, 17)?),
    })
}

pub fn insert(c: &PgConn, j: &Job) -> Result<()> {
    c.insert_unique(
        "registration",
        &format!(
            "INSERT INTO registrations ({COLS}) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) \
             ON CONFLICT DO NOTHING"
        ),
        &[
            &j.image_uuid,
            &j.kind.as_str(),
            &j.source.as_str(),
            &j.upload_id,
            &j.store.map(|s| s.as_str()),
            &j.source_key,
            &j.content_md5,
            &j.sha1,
            &j.size.map(|n| n as i64),
            &j.compression.as_str(),
            &j.dataset_guid,
            &j.activate,
            &j.state.as_str(),
            &(j.attempts as i32),
            &j.error_code,
            &j.error_message,
            &j.created_at.datetime(),
            &j.updated_at.datetime(),
        ],
    )?;
    Ok(())
}

pub fn get(c: &PgConn, image: Uuid) -> Result<Option<Job>> {
    c.query_opt(
        &format!(
            "SELECT {COLS} FROM registrations WHERE image_uuid = $1{}",
            c.for_update()
        ),
        &[&image],
    )?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Record the outcome (or a new attempt) of a job.
pub fn set_state(
    c: &PgConn,
    image: Uuid,
    state: JobState,
    error: Option<(&str, &str)>,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        "UPDATE registrations SET state = $2, error_code = $3, error_message = $4, updated_at = $5 \
         WHERE image_uuid = $1",
        &[
            &image,
            &state.as_str(),
            &error.map(|e| e.0),
            &error.map(|e| e.1),
            &now.datetime(),
        ],
    )?;
    Ok(())
}

/// One more attempt of the job; the attempts so far (a job that is not
/// there is an error).
pub fn bump_attempts(c: &PgConn, image: Uuid) -> Result<u32> {
    let r = c.query_one(
        "registration",
        "UPDATE registrations SET attempts = attempts + 1 WHERE image_uuid = $1 RETURNING attempts",
        &[&image],
    )?;
    Ok(col::<i32>(&r, 0)? as u32)
}

pub fn delete(c: &PgConn, image: Uuid) -> Result<()> {
    c.execute("DELETE FROM registrations WHERE image_uuid = $1", &[&image])?;
    Ok(())
}

/// Jobs not yet finished (run again at start-up).
pub fn pending(c: &PgConn) -> Result<Vec<Job>> {
    c.query(
        &format!(
            "SELECT {COLS} FROM registrations WHERE state = 'pending' ORDER BY created_at, image_uuid"
        ),
        &[],
    )?
    .iter()
    .map(from_row)
    .collect()
}

/// Number of registrar jobs by outcome (pending, done, failed).
pub fn count_by_state(c: &PgConn) -> Result<Vec<(String, u64)>> {
    counts(c.query(
        "SELECT state, count(*) FROM registrations GROUP BY state ORDER BY state",
        &[],
    )?)
}
