//! SQLite metadata: the connection handles, migrations from `sql/`, and all
//! SQL of the service (images, accounts). Every call runs on the
//! database's own threads (one writer, a few readers, bounded queues), never
//! the runtime's blocking pool, keeping the caller's tracing span.

pub mod accounts;
pub mod check;
pub mod downloads;
pub mod images;
pub mod imports;
pub mod leases;
pub mod lifecycle;
pub mod meta;
pub mod pg;
pub mod registrations;
pub mod sqlite;
pub mod stats;
pub mod uploads;
pub mod usage;

pub use meta::Meta;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use uuid::Uuid;

/// Results of the database layer.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// What a row that should exist is (for `DbError::NotFound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Image,
    Upload,
}

/// The errors of the database layer. Services map the ones they expect
/// (`Conflict`, `NotFound`); the service error maps the rest to InternalError.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A unique constraint refused the row (an image uuid, a login that exists).
    #[error("{what} already exists: {source}")]
    Conflict {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// PostgreSQL refused a statement (see `Unavailable` for a database
    /// that cannot be reached).
    #[error("postgres: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// The database cannot be reached: no connection could be made or
    /// taken from the pool in time, or the connection was lost.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The row to change does not exist.
    #[error("{entity:?} {id} does not exist")]
    NotFound { entity: Entity, id: Uuid },
    /// A stored value that does not decode (or a value that does not encode).
    #[error("corrupt row data ({what}): {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The query panicked, or the database threads are gone.
    #[error("the database thread did not answer")]
    Gone,
    /// The database directory could not be created.
    #[error("database directory: {0}")]
    Io(#[source] std::io::Error),
}

impl DbError {
    /// For `map_err`: a value of `what` that does not decode or encode.
    pub(crate) fn corrupt<C>(what: &'static str) -> impl FnOnce(C) -> DbError
    where
        C: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        move |source| DbError::Corrupt {
            what,
            source: source.into(),
        }
    }

    /// A unique-constraint violation as `Conflict`, other errors as `Sqlite`.
    pub(crate) fn conflict(what: &'static str, e: rusqlite::Error) -> DbError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                DbError::Conflict {
                    what,
                    source: Box::new(e),
                }
            }
            _ => DbError::Sqlite(e),
        }
    }

    /// Is this a unique-constraint conflict?
    pub fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict { .. })
    }
}

/// Numbered migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../sql/0001_init.sql")),
    ("0002_uploads", include_str!("../../sql/0002_uploads.sql")),
    (
        "0003_registrations",
        include_str!("../../sql/0003_registrations.sql"),
    ),
    (
        "0004_upload_parts",
        include_str!("../../sql/0004_upload_parts.sql"),
    ),
    ("0005_channels", include_str!("../../sql/0005_channels.sql")),
    (
        "0006_import_jobs",
        include_str!("../../sql/0006_import_jobs.sql"),
    ),
    (
        "0007_list_indexes",
        include_str!("../../sql/0007_list_indexes.sql"),
    ),
    (
        "0008_upload_concat",
        include_str!("../../sql/0008_upload_concat.sql"),
    ),
    (
        "0009_upload_concat_place",
        include_str!("../../sql/0009_upload_concat_place.sql"),
    ),
    (
        "0010_upload_crc64",
        include_str!("../../sql/0010_upload_crc64.sql"),
    ),
    (
        "0011_image_wire",
        include_str!("../../sql/0011_image_wire.sql"),
    ),
    (
        "0012_tag_walks",
        include_str!("../../sql/0012_tag_walks.sql"),
    ),
    ("0013_leases", include_str!("../../sql/0013_leases.sql")),
    (
        "0014_upload_pieces",
        include_str!("../../sql/0014_upload_pieces.sql"),
    ),
    ("0015_space", include_str!("../../sql/0015_space.sql")),
    (
        "0016_multipart_names",
        include_str!("../../sql/0016_multipart_names.sql"),
    ),
    ("0017_list_gen", include_str!("../../sql/0017_list_gen.sql")),
];

/// The metadata store: SQLite in the data directory (one writer
/// connection, a small pool of readers) or PostgreSQL (a bounded pool,
/// shared by every node of a cluster). The services see only [`Meta`].
#[derive(Clone)]
pub struct Db {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Inner>),
    Postgres(pg::PgDb),
}

struct Inner {
    /// Queries for the reader threads (each has its own read-only connection).
    readers: tokio::sync::mpsc::Sender<Job>,
    /// Transactions for the one writer thread.
    writer: tokio::sync::mpsc::Sender<Job>,
}

/// A query for a database thread: it gets the thread's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Threads that run read queries. The database has threads of its own, not
/// the runtime's blocking pool: requests that hold blocking threads (file
/// I/O) can never leave database work without one.
const READER_THREADS: usize = 4;

/// Queries waiting for each kind of thread; callers beyond it wait (async)
/// for a place.
const QUEUE: usize = 256;

/// Run the jobs of `rx` on `conn` until every sender is gone. A job that
/// panics drops its answer (its caller gets `DbError::Gone`); the thread
/// goes on.
fn serve(mut conn: Connection, rx: Arc<Mutex<tokio::sync::mpsc::Receiver<Job>>>) {
    loop {
        let job = match rx.lock() {
            Ok(mut r) => r.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else { return };
        let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!("a database query panicked");
        }
    }
}

/// Start `conns.len()` threads named `name` serving one queue.
fn spawn_threads(
    name: &str,
    conns: Vec<Connection>,
) -> Result<tokio::sync::mpsc::Sender<Job>, DbError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for conn in conns {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || serve(conn, rx))
            .map_err(DbError::Io)?;
    }
    Ok(tx)
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // Plans do not depend on bound values. Without this, SQLite marks a
    // statement whose WHERE compares a column with a parameter (`state =
    // ?1`: nearly every query here) to be re-planned when its bindings are
    // cleared, and rusqlite's statement cache clears them each time it
    // takes a statement back: every cached statement was prepared again on
    // every use (for ListImages' `~` merge of a dozen walks, that cost more
    // than running it). Values that matter to a plan (a `LIMIT`) are
    // written into the SQL instead.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    if !read_only {
        c.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on stable storage when it returns (uploads rely on it).
        c.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(c)
}

/// Apply pending migrations; returns how many were applied.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    let mut applied = 0;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied migration");
        applied += 1;
    }
    // Not SQL: the stored list form of images that have none (0011).
    let filled = images::fill_wire(conn)?;
    if filled > 0 {
        tracing::info!(images = filled, "stored the list form of images");
    }
    Ok(applied)
}

impl Db {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(DbError::Io)?;
        }
        // The database is readable by the service's user only (0600,
        // whatever the umask): created so here, tightened if it exists.
        // SQLite gives the -wal and -shm files the mode of the database.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(DbError::Io)?;
        // (A file of another owner cannot be changed: say so, go on.)
        let restrict = |p: &Path| {
            if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "could not make the database file 0600");
            }
        };
        restrict(path);
        let mut writer = open_conn(path, false)?;
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            restrict(Path::new(&p));
        }
        migrate(&mut writer)?;
        // One node: no holder of a lease survives a restart.
        let freed = leases::release_all(&writer)?;
        if freed > 0 {
            tracing::info!(leases = freed, "freed the leases of the previous run");
        }
        let readers = (0..READER_THREADS)
            .map(|_| open_conn(path, true))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Db {
            backend: Backend::Sqlite(Arc::new(Inner {
                readers: spawn_threads("imgapi-db-read", readers)?,
                writer: spawn_threads("imgapi-db-write", vec![writer])?,
            })),
        })
    }

    /// Connect to PostgreSQL (a bounded pool) and apply its pending
    /// migrations (once, however many nodes start together).
    pub async fn connect(cfg: &pg::PgConfig) -> Result<Db> {
        Ok(Db {
            backend: Backend::Postgres(pg::PgDb::open(cfg).await?),
        })
    }

    /// The metadata store `cfg` names: PostgreSQL at `url`, or SQLite at
    /// `sqlite_path`.
    pub async fn open_configured(
        cfg: &crate::config::DatabaseConfig,
        sqlite_path: &Path,
    ) -> Result<Db> {
        match &cfg.url {
            Some(url) => {
                let secs = std::time::Duration::from_secs;
                Db::connect(&pg::PgConfig {
                    url: url.clone(),
                    max_connections: cfg.max_connections,
                    connect_timeout: secs(cfg.connect_timeout_secs),
                    statement_timeout: secs(cfg.statement_timeout_secs),
                    acquire_timeout: secs(cfg.acquire_timeout_secs),
                })
                .await
            }
            None => Db::open(sqlite_path),
        }
    }

    /// Is this a database several nodes may share (PostgreSQL)?
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The image `uuid` (GetImage's read). On PostgreSQL it is awaited on
    /// the runtime, without a blocking thread (the hottest reads are one
    /// statement each).
    pub async fn image_get(&self, uuid: uuid::Uuid) -> Result<Option<crate::manifest::Image>> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(move |c| c.image_get(uuid)).await,
            Backend::Postgres(db) => db.image_get(uuid).await,
        }
    }

    /// ListImages' read (see [`Meta::image_list_json`]), on PostgreSQL
    /// awaited on the runtime.
    pub async fn image_list_json(
        &self,
        q: images::ListQuery,
        select: images::Select,
    ) -> Result<Vec<images::Listed>> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(move |c| c.image_list_json(&q, select)).await,
            Backend::Postgres(db) => db.image_list_json(&q, select).await,
        }
    }

    /// The list generation (see [`Meta::image_list_gen`]), on PostgreSQL
    /// awaited on the runtime.
    pub async fn image_list_gen(&self) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(move |c| c.image_list_gen()).await,
            Backend::Postgres(db) => db.image_list_gen().await,
        }
    }

    /// Run `f` on a read connection, on a database thread. `f` may return
    /// the database's own errors or a service's (any `E: From<DbError>`).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&dyn Meta) -> Result<T, E> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => run(&db.readers, move |c| f(&sqlite::SqliteTx(c))).await,
            Backend::Postgres(db) => db.read(move |c| f(c)).await,
        }
    }

    /// Run `f` in a write transaction, on the writer thread. Writes are
    /// serialised; the transaction commits only if `f` returns Ok.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&dyn Meta) -> Result<T, E> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => {
                run(&db.writer, move |c| {
                    let tx = c.transaction().map_err(DbError::from)?;
                    let out = f(&sqlite::SqliteTx(&tx))?;
                    tx.commit().map_err(DbError::from)?;
                    Ok(out)
                })
                .await
            }
            Backend::Postgres(db) => db.write(move |c| f(c)).await,
        }
    }
}

/// Queue `f` for a thread of `queue` (waiting for a place if it is full)
/// and wait for its answer; `f` keeps the caller's tracing span.
async fn run<T, E, F>(queue: &tokio::sync::mpsc::Sender<Job>, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    let job: Job = Box::new(move |c| {
        let _ = tx.send(span.in_scope(|| f(c)));
    });
    queue.send(job).await.map_err(|_| E::from(DbError::Gone))?;
    rx.await.map_err(|_| E::from(DbError::Gone))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_a_migration() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_type().unwrap().is_dir())
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .trim_end_matches(".sql")
                    .to_string()
            })
            .collect();
        files.sort();
        let names: Vec<String> = MIGRATIONS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(files, names);
    }

    #[test]
    fn migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_conn(&dir.path().join("t.sqlite"), false).unwrap();
        assert_eq!(migrate(&mut c).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut c).unwrap(), 0);
    }
}
