//! SQL for import jobs (AdminImportRemoteImage): the job rows, their
//! progress (staged offset, bytes received) and their outcome.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{DbError, Result};

/// A job's execution state, as a workflow job names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl Execution {
    pub const ALL: &'static [Execution] = &[
        Execution::Queued,
        Execution::Running,
        Execution::Succeeded,
        Execution::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Queued => "queued",
            Execution::Running => "running",
            Execution::Succeeded => "succeeded",
            Execution::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Execution> {
        Execution::ALL.iter().copied().find(|e| e.as_str() == s)
    }
}

impl ToSql for Execution {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Execution {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        Execution::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("bad execution {s:?}").into()))
    }
}

/// One import job.
#[derive(Debug, Clone)]
pub struct ImportJob {
    pub job_uuid: Uuid,
    pub image_uuid: Uuid,
    pub task: String,
    pub source: String,
    pub skip_owner_check: bool,
    /// Channels the imported images start in.
    pub channels: Vec<String>,
    /// Images to import, origins first, the job's image last.
    pub plan: Vec<Uuid>,
    /// Images this job created (removed again if it fails).
    pub created: Vec<Uuid>,
    pub execution: Execution,
    pub current_image: Option<Uuid>,
    pub file_offset: u64,
    pub content_md5: Option<String>,
    pub bytes_received: u64,
    pub bytes_total: Option<u64>,
    pub attempts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

const COLS: &str = "job_uuid, image_uuid, task, source, skip_owner_check, channels, plan, created, execution, \
     current_image, file_offset, content_md5, bytes_received, bytes_total, attempts, error_code, \
     error_message, created_at, started_at, finished_at";

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn parse_uuid(s: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&s).map_err(corrupt)
}

fn parse_list(s: String) -> rusqlite::Result<Vec<Uuid>> {
    serde_json::from_str(&s).map_err(corrupt)
}

fn list_json(l: &[Uuid]) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "[]".into())
}

fn from_row(r: &Row) -> rusqlite::Result<ImportJob> {
    Ok(ImportJob {
        job_uuid: parse_uuid(r.get(0)?)?,
        image_uuid: parse_uuid(r.get(1)?)?,
        task: r.get(2)?,
        source: r.get(3)?,
        skip_owner_check: r.get::<_, i64>(4)? != 0,
        channels: serde_json::from_str(&r.get::<_, String>(5)?).map_err(corrupt)?,
        plan: parse_list(r.get(6)?)?,
        created: parse_list(r.get(7)?)?,
        execution: r.get(8)?,
        current_image: r.get::<_, Option<String>>(9)?.map(parse_uuid).transpose()?,
        file_offset: r.get::<_, i64>(10)? as u64,
        content_md5: r.get(11)?,
        bytes_received: r.get::<_, i64>(12)? as u64,
        bytes_total: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
        attempts: r.get::<_, i64>(14)? as u32,
        error_code: r.get(15)?,
        error_message: r.get(16)?,
        created_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
    })
}

pub fn insert(c: &Connection, j: &ImportJob) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO import_jobs ({COLS}) VALUES \
             (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)"
        ),
        params![
            j.job_uuid.to_string(),
            j.image_uuid.to_string(),
            j.task,
            j.source,
            j.skip_owner_check as i64,
            serde_json::to_string(&j.channels).unwrap_or_else(|_| "[]".into()),
            list_json(&j.plan),
            list_json(&j.created),
            j.execution,
            j.current_image.map(|u| u.to_string()),
            j.file_offset as i64,
            j.content_md5,
            j.bytes_received as i64,
            j.bytes_total.map(|n| n as i64),
            j.attempts as i64,
            j.error_code,
            j.error_message,
            j.created_at,
            j.started_at,
            j.finished_at,
        ],
    )?;
    Ok(())
}

pub fn get(c: &Connection, job: Uuid) -> Result<Option<ImportJob>> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM import_jobs WHERE job_uuid = ?1"),
        params![job.to_string()],
        from_row,
    )
    .optional()?)
}

/// The jobs of one image, newest first, optionally of one execution state.
pub fn list_for_image(
    c: &Connection,
    image: Uuid,
    execution: Option<Execution>,
) -> Result<Vec<ImportJob>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM import_jobs WHERE image_uuid = ?1 \
         AND (?2 IS NULL OR execution = ?2) ORDER BY created_at DESC, job_uuid"
    ))?;
    let rows = st.query_map(params![image.to_string(), execution], from_row)?;
    rows.map(|r| r.map_err(DbError::from)).collect()
}

/// The queued or running job of an image, if any.
pub fn active_for_image(c: &Connection, image: Uuid) -> Result<Option<ImportJob>> {
    Ok(c.query_row(
        &format!(
            "SELECT {COLS} FROM import_jobs WHERE image_uuid = ?1 \
             AND execution IN ('queued', 'running') ORDER BY created_at LIMIT 1"
        ),
        params![image.to_string()],
        from_row,
    )
    .optional()?)
}

/// Jobs not finished (run again at start-up), oldest first.
pub fn unfinished(c: &Connection) -> Result<Vec<ImportJob>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM import_jobs WHERE execution IN ('queued', 'running') \
         ORDER BY created_at"
    ))?;
    let rows = st.query_map([], from_row)?;
    rows.map(|r| r.map_err(DbError::from)).collect()
}

/// A run of the job begins.
pub fn start(c: &Connection, job: Uuid, now: &str) -> Result<u32> {
    c.execute(
        "UPDATE import_jobs SET execution = 'running', attempts = attempts + 1, \
         started_at = coalesce(started_at, ?2) WHERE job_uuid = ?1",
        params![job.to_string(), now],
    )?;
    let n: i64 = c.query_row(
        "SELECT attempts FROM import_jobs WHERE job_uuid = ?1",
        params![job.to_string()],
        |r| r.get(0),
    )?;
    Ok(n as u32)
}

/// Record that the job created `image` (before the image is inserted).
pub fn add_created(c: &Connection, job: Uuid, image: Uuid) -> Result<()> {
    let created: String = c.query_row(
        "SELECT created FROM import_jobs WHERE job_uuid = ?1",
        params![job.to_string()],
        |r| r.get(0),
    )?;
    let mut list = parse_list(created)?;
    if !list.contains(&image) {
        list.push(image);
    }
    c.execute(
        "UPDATE import_jobs SET created = ?2 WHERE job_uuid = ?1",
        params![job.to_string(), list_json(&list)],
    )?;
    Ok(())
}

/// The file being staged: its image, the staged offset, its Content-MD5
/// and the job's byte counter, saved together.
pub fn checkpoint(
    c: &Connection,
    job: Uuid,
    image: Option<Uuid>,
    file_offset: u64,
    content_md5: Option<&str>,
    bytes_received: u64,
) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET current_image = ?2, file_offset = ?3, content_md5 = ?4, \
         bytes_received = ?5 WHERE job_uuid = ?1",
        params![
            job.to_string(),
            image.map(|u| u.to_string()),
            file_offset as i64,
            content_md5,
            bytes_received as i64
        ],
    )?;
    Ok(())
}

pub fn set_total(c: &Connection, job: Uuid, total: u64) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET bytes_total = ?2 WHERE job_uuid = ?1",
        params![job.to_string(), total as i64],
    )?;
    Ok(())
}

/// The outcome of a job.
pub fn finish(
    c: &Connection,
    job: Uuid,
    execution: Execution,
    error: Option<(&str, &str)>,
    now: &str,
) -> Result<()> {
    c.execute(
        "UPDATE import_jobs SET execution = ?2, error_code = ?3, error_message = ?4, \
         finished_at = ?5, current_image = NULL, file_offset = 0 WHERE job_uuid = ?1",
        params![
            job.to_string(),
            execution,
            error.map(|e| e.0),
            error.map(|e| e.1),
            now
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../sql/0006_import_jobs.sql"))
            .unwrap();
        let (job, img, origin) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let j = ImportJob {
            job_uuid: job,
            image_uuid: img,
            task: "import-remote-image".into(),
            source: "https://images.example.org".into(),
            skip_owner_check: false,
            channels: vec![],
            plan: vec![origin, img],
            created: vec![],
            execution: Execution::Queued,
            current_image: None,
            file_offset: 0,
            content_md5: None,
            bytes_received: 0,
            bytes_total: None,
            attempts: 0,
            error_code: None,
            error_message: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            started_at: None,
            finished_at: None,
        };
        insert(&c, &j).unwrap();
        assert_eq!(start(&c, job, "t").unwrap(), 1);
        add_created(&c, job, origin).unwrap();
        add_created(&c, job, origin).unwrap();
        checkpoint(&c, job, Some(origin), 10, Some("md5"), 10).unwrap();
        let got = get(&c, job).unwrap().unwrap();
        assert_eq!(got.plan, vec![origin, img]);
        assert_eq!(got.created, vec![origin]);
        assert_eq!(got.execution, Execution::Running);
        assert_eq!((got.current_image, got.file_offset), (Some(origin), 10));
        assert_eq!(unfinished(&c).unwrap().len(), 1);
        assert!(active_for_image(&c, img).unwrap().is_some());
        finish(&c, job, Execution::Failed, Some(("X", "y")), "t2").unwrap();
        assert!(unfinished(&c).unwrap().is_empty());
        let l = list_for_image(&c, img, Some(Execution::Failed)).unwrap();
        assert_eq!(l.len(), 1);
        assert!(
            list_for_image(&c, img, Some(Execution::Succeeded))
                .unwrap()
                .is_empty()
        );
    }
}
