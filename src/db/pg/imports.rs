//! Import jobs on PostgreSQL (same results as `db::imports`).

use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgConn, col, count};
use crate::db::imports::{Execution, ImportJob};
use crate::db::{DbError, Result};

const COLS: &str = "job_uuid, image_uuid, task, source, skip_owner_check, channels, plan, created, execution, \
     current_image, file_offset, content_md5, bytes_received, bytes_total, attempts, error_code, \
     error_message, created_at, started_at, finished_at";

fn json_col<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Result<T> {
    serde_json::from_str(&col::<String>(r, i)?).map_err(DbError::corrupt("import job column"))
}

fn list_json(l: &[Uuid]) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "[]".into())
}

fn from_row(r: &Row) -> Result<ImportJob> {
    let execution: String = col(r, 8)?;
    Ok(ImportJob {
        job_uuid: col(r, 0)?,
        image_uuid: col(r, 1)?,
        task: col(r, 2)?,
        source: col(r, 3)?,
        skip_owner_check: col(r, 4)?,
        channels: json_col(r, 5)?,
        plan: json_col(r, 6)?,
        created: json_col(r, 7)?,
        execution: Execution::parse(&execution).ok_or_else(|| {
            DbError::corrupt("import job execution")(format!("bad execution {execution:?}"))
        })?,
        current_image: col(r, 9)?,
        file_offset: count(r, 10)?,
        content_md5: col(r, 11)?,
        bytes_received: count(r, 12)?,
        bytes_total: col::<Option<i64>>(r, 13)?.map(|n| n as u64),
        attempts: col::<i32>(r, 14)? as u32,
        error_code: col(r, 15)?,
        error_message: col(r, 16)?,
        created_at: col(r, 17)?,
        started_at: col(r, 18)?,
        finished_at: col(r, 19)?,
    })
}

fn jobs(rows: Vec<Row>) -> Result<Vec<ImportJob>> {
    rows.iter().map(from_row).collect()
}

pub fn insert(c: &PgConn, j: &ImportJob) -> Result<()> {
    c.insert_unique(
        "import job",
        &format!(
            "INSERT INTO import_jobs ({COLS}) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) \
             ON CONFLICT DO NOTHING"
        ),
        &[
            &j.job_uuid,
            &j.image_uuid,
            &j.task,
            &j.source,
            &j.skip_owner_check,
            &serde_json::to_string(&j.channels).unwrap_or_else(|_| "[]".into()),
            &list_json(&j.plan),
            &list_json(&j.created),
            &j.execution.as_str(),
            &j.current_image,
            &(j.file_offset as i64),
            &j.content_md5,
            &(j.bytes_received as i64),
            &j.bytes_total.map(|n| n as i64),
            &(j.attempts as i32),
            &j.error_code,
            &j.error_message,
            &j.created_at,
            &j.started_at,
            &j.finished_at,
        ],
    )?;
    Ok(())
}

pub fn get(c: &PgConn, job: Uuid) -> Result<Option<ImportJob>> {
    c.query_opt(
        &format!(
            "SELECT {COLS} FROM import_jobs WHERE job_uuid = $1{}",
            c.for_update()
        ),
        &[&job],
    )?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// The jobs of one image, newest first, optionally of one execution state.
pub fn list_for_image(
    c: &PgConn,
    image: Uuid,
    execution: Option<Execution>,
) -> Result<Vec<ImportJob>> {
    jobs(c.query(
        &format!(
            "SELECT {COLS} FROM import_jobs WHERE image_uuid = $1 \
             AND ($2::text IS NULL OR execution = $2) ORDER BY created_at DESC, job_uuid"
        ),
        &[&image, &execution.map(Execution::as_str)],
    )?)
}

/// The queued or running job of an image, if any.
pub fn active_for_image(c: &PgConn, image: Uuid) -> Result<Option<ImportJob>> {
    c.query_opt(
        &format!(
            "SELECT {COLS} FROM import_jobs WHERE image_uuid = $1 \
             AND execution IN ('queued', 'running') ORDER BY created_at, job_uuid LIMIT 1"
        ),
        &[&image],
    )?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Jobs not finished (run again at start-up), oldest first.
pub fn unfinished(c: &PgConn) -> Result<Vec<ImportJob>> {
    jobs(c.query(
        &format!(
            "SELECT {COLS} FROM import_jobs WHERE execution IN ('queued', 'running') \
             ORDER BY created_at, job_uuid"
        ),
        &[],
    )?)
}

/// A run of the job begins; the attempts so far.
pub fn start(c: &PgConn, job: Uuid, now: &str) -> Result<u32> {
    let r = c.query_one(
        "import job",
        "UPDATE import_jobs SET execution = 'running', attempts = attempts + 1, \
         started_at = coalesce(started_at, $2) WHERE job_uuid = $1 RETURNING attempts",
        &[&job, &now],
    )?;
    Ok(col::<i32>(&r, 0)? as u32)
}

/// Record that the job created `image` (before the image is inserted).
pub fn add_created(c: &PgConn, job: Uuid, image: Uuid) -> Result<()> {
    let r = c.query_one(
        "import job",
        "SELECT created FROM import_jobs WHERE job_uuid = $1 FOR UPDATE",
        &[&job],
    )?;
    let mut list: Vec<Uuid> = json_col(&r, 0)?;
    if !list.contains(&image) {
        list.push(image);
    }
    c.execute(
        "UPDATE import_jobs SET created = $2 WHERE job_uuid = $1",
        &[&job, &list_json(&list)],
    )?;
    Ok(())
}

/// The file being staged: its image, the staged offset, its Content-MD5
/// and the job's byte counter, saved together.
pub fn checkpoint(
    c: &PgConn,
    job: Uuid,
    image: Option<Uuid>,
    file_offset: u64,
    content_md5: Option<&str>,
    bytes_received: u64,
) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET current_image = $2, file_offset = $3, content_md5 = $4, \
         bytes_received = $5 WHERE job_uuid = $1",
        &[
            &job,
            &image,
            &(file_offset as i64),
            &content_md5,
            &(bytes_received as i64),
        ],
    )?;
    Ok(())
}

pub fn set_total(c: &PgConn, job: Uuid, total: u64) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET bytes_total = $2 WHERE job_uuid = $1",
        &[&job, &(total as i64)],
    )?;
    Ok(())
}

/// The outcome of a job.
pub fn finish(
    c: &PgConn,
    job: Uuid,
    execution: Execution,
    error: Option<(&str, &str)>,
    now: &str,
) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET execution = $2, error_code = $3, error_message = $4, \
         finished_at = $5, current_image = NULL, file_offset = 0 WHERE job_uuid = $1",
        &[
            &job,
            &execution.as_str(),
            &error.map(|e| e.0),
            &error.map(|e| e.1),
            &now,
        ],
    )?;
    Ok(())
}
