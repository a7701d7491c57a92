//! PostgreSQL metadata: a bounded pool of tokio-postgres connections
//! (deadpool-postgres), the migrations of `sql/pg/` (applied once however
//! many nodes start together, without advisory locks), and the same named
//! operations as the SQLite modules of `db/` with the same results. Each
//! `read`/`write` runs its closure on the runtime's blocking pool, in one
//! transaction on one pooled connection, through the synchronous [`PgConn`].

pub mod accounts;
pub mod downloads;
pub mod images;
pub mod imports;
pub mod leases;
pub mod lifecycle;
mod meta;
pub mod registrations;
pub mod stats;
pub mod uploads;
pub mod usage;

#[cfg(test)]
mod tests;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use super::{DbError, Result};

/// How to reach the database and how long to wait for it.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://USER@HOST:PORT/DB` (libpq URL or key=value form).
    pub url: String,
    /// Most connections this process holds.
    pub max_connections: usize,
    /// Longest wait for a new connection to be made.
    pub connect_timeout: Duration,
    /// Longest run of one statement (the server cancels it past this).
    pub statement_timeout: Duration,
    /// Longest wait for a connection of the pool (all busy).
    pub acquire_timeout: Duration,
}

impl PgConfig {
    /// `url` with the default limits.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Numbered migrations of `sql/pg/`, applied in order; the table
/// `imgapi_migrations` records each one applied.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../sql/pg/0001_init.sql"),
    ),
    (
        2,
        "0002_leases",
        include_str!("../../../sql/pg/0002_leases.sql"),
    ),
    (
        3,
        "0003_upload_pieces",
        include_str!("../../../sql/pg/0003_upload_pieces.sql"),
    ),
    (
        4,
        "0004_list_indexes",
        include_str!("../../../sql/pg/0004_list_indexes.sql"),
    ),
    (
        5,
        "0005_space",
        include_str!("../../../sql/pg/0005_space.sql"),
    ),
    (
        6,
        "0006_multipart_names",
        include_str!("../../../sql/pg/0006_multipart_names.sql"),
    ),
    (
        7,
        "0007_list_gen",
        include_str!("../../../sql/pg/0007_list_gen.sql"),
    ),
];

/// The PostgreSQL database: a bounded connection pool.
#[derive(Clone)]
pub struct PgDb {
    /// Connections for write transactions.
    pool: Pool,
    /// Read-only connections (`default_transaction_read_only`) for reads.
    readers: Pool,
    /// Read-only connections whose cached statements may use a generic
    /// plan (planned once, not at each run): for the reads whose best plan
    /// does not depend on their values (GetImage, ListImages without `~`
    /// or tag filters).
    generic: Pool,
    /// How long a statement's answer may take on this side:
    /// `statement_timeout` (after which the server cancels it) and
    /// `connect_timeout` more for the network. A connection whose answer
    /// does not come by then (a server or network that stopped answering
    /// without closing anything) is thrown away, and the caller gets
    /// `Unavailable`.
    deadline: Duration,
}

/// Most statements a connection of the `generic` pool keeps prepared;
/// past it, its cache is emptied (ListImages' statements differ by their
/// filters and limit).
const GENERIC_STATEMENTS: usize = 256;

/// A pooled connection inside a transaction, used synchronously from a
/// blocking thread: each call waits (`Handle::block_on`) for its answer.
pub struct PgConn {
    client: deadpool_postgres::Object,
    rt: tokio::runtime::Handle,
    /// In a write transaction: the `get`s lock the row they read.
    write: bool,
    /// [`PgDb::deadline`].
    deadline: Duration,
    /// A statement's answer did not come in time: the connection is
    /// thrown away, never put back into the pool.
    lost: std::sync::atomic::AtomicBool,
}

/// The error of a statement whose answer did not come within `deadline`.
fn no_answer(deadline: Duration) -> DbError {
    DbError::Unavailable(
        format!(
            "the database did not answer within {} s",
            deadline.as_secs_f64()
        )
        .into(),
    )
}

/// A statement's parameters.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A database error as `DbError`: a server that cannot be reached, a
/// connection lost, the server shutting down or cancelling a statement
/// past its timeout are `Unavailable`; a unique violation is `Conflict`
/// (the inserts here avoid raising one: see [`PgConn::insert_unique`]).
pub(crate) fn pg_error(e: tokio_postgres::Error) -> DbError {
    const UNAVAILABLE: [SqlState; 5] = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::QUERY_CANCELED,
        SqlState::TOO_MANY_CONNECTIONS,
    ];
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => DbError::Conflict {
            what: "row",
            source: Box::new(e),
        },
        Some(c) if UNAVAILABLE.contains(c) => DbError::Unavailable(Box::new(e)),
        None if e.is_closed() || is_io(&e) => DbError::Unavailable(Box::new(e)),
        _ => DbError::Postgres(e),
    }
}

/// Does `e` come from the connection's socket (not from the server)?
fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn pool_error(e: PoolError) -> DbError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        e => DbError::Unavailable(Box::new(e)),
    }
}

/// `imgapi config check`'s look at the database at `url`: it answers
/// within `timeout`, and the migrations it has (applied, this binary's).
/// Creates, migrates and changes nothing.
pub async fn check(url: &str, timeout: Duration) -> Result<(usize, usize)> {
    let mut pg: tokio_postgres::Config =
        url.parse().map_err(|e| DbError::Unavailable(Box::new(e)))?;
    pg.connect_timeout(timeout);
    let look = async {
        let (client, conn) = pg.connect(NoTls).await.map_err(pg_error)?;
        let driver = tokio::spawn(conn);
        let known = client
            .query_one("SELECT to_regclass('imgapi_migrations') IS NOT NULL", &[])
            .await
            .map_err(pg_error)?;
        let applied = if col::<bool>(&known, 0)? {
            let n = client
                .query_one("SELECT count(*) FROM imgapi_migrations", &[])
                .await
                .map_err(pg_error)?;
            count(&n, 0)? as usize
        } else {
            0
        };
        driver.abort();
        Ok::<_, DbError>(applied)
    };
    match tokio::time::timeout(timeout, look).await {
        Ok(r) => Ok((r?, MIGRATIONS.len())),
        Err(_) => Err(DbError::Unavailable("no answer in time".into())),
    }
}

impl PgDb {
    /// Connect (a bounded pool) and apply the pending migrations.
    pub async fn open(cfg: &PgConfig) -> Result<PgDb> {
        let mut pg: tokio_postgres::Config = cfg
            .url
            .parse()
            .map_err(|e| DbError::Unavailable(Box::new(e)))?;
        pg.connect_timeout(cfg.connect_timeout);
        // Every session's statements are cut at the timeout (the server's
        // own setting, sent at connection start-up: no round trip). Cached
        // statements are planned for their values each time: a generic
        // plan of ListImages' query cannot know a `~` substring or a tag.
        let base = format!(
            "{} -c statement_timeout={}",
            pg.get_options().unwrap_or(""),
            cfg.statement_timeout.as_millis()
        );
        let opts = format!("{base} -c plan_cache_mode=force_custom_plan");
        // Two pools sharing `max_connections`: writers (transactions), and
        // readers whose sessions are read-only from their start, so a read
        // runs its statements without BEGIN and COMMIT (one round trip a
        // statement, where a READ ONLY transaction costs three) and still
        // cannot write. (SQLite's readers too run each statement alone on
        // read-only connections.)
        let total = cfg.max_connections.max(3);
        let writers = (total / 2).max(1);
        let generic = ((total - writers) / 2).max(1);
        let pool = |options: String, size: usize| {
            let mut pg = pg.clone();
            pg.options(options.trim());
            let mgr = Manager::from_config(
                pg,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(mgr)
                .max_size(size)
                .wait_timeout(Some(cfg.acquire_timeout))
                .create_timeout(Some(cfg.connect_timeout))
                .recycle_timeout(Some(cfg.connect_timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| DbError::Unavailable(Box::new(e)))
        };
        let db = PgDb {
            deadline: cfg.statement_timeout + cfg.connect_timeout,
            pool: pool(opts.clone(), writers)?,
            readers: pool(
                format!("{opts} -c default_transaction_read_only=on"),
                total - writers - generic,
            )?,
            generic: pool(
                format!(
                    "{base} -c plan_cache_mode=force_generic_plan \
                     -c default_transaction_read_only=on"
                ),
                generic,
            )?,
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Apply the migrations not yet applied; returns how many this call
    /// applied. Each runs in a transaction that first inserts its row in
    /// `imgapi_migrations`: a node starting at the same moment blocks on
    /// that row's key until the first commits, then finds the row and
    /// skips (or applies it, if the first rolled back). No advisory lock:
    /// the same works on CockroachDB or YugabyteDB.
    pub async fn migrate(&self) -> Result<usize> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        // Two nodes creating the table at once: one of them may fail on
        // the catalog's keys; the table is there then.
        let create = "CREATE TABLE IF NOT EXISTS imgapi_migrations (\
             version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())";
        for attempt in 0.. {
            match client.batch_execute(create).await {
                Ok(()) => break,
                Err(e) if attempt < 3 && e.code().is_some() => {
                    tracing::debug!(error = %e, "creating imgapi_migrations raced; again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(pg_error(e)),
            }
        }
        let mut applied = 0;
        for (version, name, sql) in MIGRATIONS {
            let tx = client.transaction().await.map_err(pg_error)?;
            let n = tx
                .execute(
                    "INSERT INTO imgapi_migrations (version, name) VALUES ($1, $2) \
                     ON CONFLICT (version) DO NOTHING",
                    &[version, name],
                )
                .await
                .map_err(pg_error)?;
            if n == 0 {
                tx.rollback().await.map_err(pg_error)?;
                continue;
            }
            tx.batch_execute(sql).await.map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            tracing::info!(migration = name, "applied migration");
            applied += 1;
        }
        Ok(applied)
    }

    /// Run `f` on a read-only pooled connection, on a blocking thread,
    /// each statement on its own (no transaction: as SQLite's readers).
    /// `f` may return the database's own errors or a service's (any
    /// `E: From<DbError>`).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut PgConn) -> Result<T, E> + Send + 'static,
    {
        let client = self.readers.get().await.map_err(pool_error)?;
        let deadline = self.deadline;
        let span = tracing::Span::current();
        let rt = tokio::runtime::Handle::current();
        let job = tokio::task::spawn_blocking(move || {
            let mut conn = PgConn::new(client, rt, false, deadline);
            let run = std::panic::AssertUnwindSafe(|| span.in_scope(|| f(&mut conn)));
            match std::panic::catch_unwind(run) {
                Ok(out) => {
                    conn.discard_if_lost();
                    out
                }
                Err(_) => {
                    let _ = deadpool_postgres::Object::take(conn.client);
                    tracing::error!("a database query panicked");
                    Err(E::from(DbError::Gone))
                }
            }
        });
        job.await.map_err(|_| E::from(DbError::Gone))?
    }

    /// GetImage's read, awaited on the runtime (see [`images::get_async`]).
    pub async fn image_get(&self, uuid: uuid::Uuid) -> Result<Option<crate::manifest::Image>> {
        let c = self.generic().await?;
        let out = self.timed(images::get_async(&c, uuid)).await;
        self.in_time(c, out)
    }

    /// The list generation, awaited on the runtime (see
    /// [`images::list_gen_async`]).
    pub async fn image_list_gen(&self) -> Result<i64> {
        let c = self.generic().await?;
        let out = self.timed(images::list_gen_async(&c)).await;
        self.in_time(c, out)
    }

    /// ListImages' read, awaited on the runtime: on a connection that may
    /// plan it once (generic plan) unless its plan depends on its values
    /// ([`images::value_sensitive`]).
    pub async fn image_list_json(
        &self,
        q: &super::images::ListQuery,
        select: super::images::Select,
    ) -> Result<Vec<super::images::Listed>> {
        let contains = |m: &Option<super::images::TextMatch>| {
            matches!(m, Some(super::images::TextMatch::Contains(_)))
        };
        if contains(&q.name) || contains(&q.version) {
            let c = self.generic().await?;
            let out = self.timed(images::list_json_by_values(&c, q, select)).await;
            if let Some(l) = self.in_time(c, out)? {
                return Ok(l);
            }
        }
        let c = if images::value_sensitive(q) {
            self.readers.get().await.map_err(pool_error)?
        } else {
            self.generic().await?
        };
        let out = self.timed(images::list_json_async(&c, q, select)).await;
        self.in_time(c, out)
    }

    /// A connection of the `generic` pool, its statement cache bounded.
    async fn generic(&self) -> Result<deadpool_postgres::Object> {
        let c = self.generic.get().await.map_err(pool_error)?;
        if c.statement_cache.size() > GENERIC_STATEMENTS {
            c.statement_cache.clear();
        }
        Ok(c)
    }

    /// Run `f` in a read-write transaction on a pooled connection, on a
    /// blocking thread; it commits only if `f` returns Ok.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut PgConn) -> Result<T, E> + Send + 'static,
    {
        self.run("BEGIN", f).await
    }

    async fn run<T, E, F>(&self, begin: &'static str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut PgConn) -> Result<T, E> + Send + 'static,
    {
        let client = self.begin(begin).await?;
        let deadline = self.deadline;
        let span = tracing::Span::current();
        let rt = tokio::runtime::Handle::current();
        let job = tokio::task::spawn_blocking(move || {
            let write = begin == "BEGIN";
            let mut conn = PgConn::new(client, rt, write, deadline);
            let run = std::panic::AssertUnwindSafe(|| span.in_scope(|| f(&mut conn)));
            let out = std::panic::catch_unwind(run);
            let end = match &out {
                Ok(Ok(_)) => "COMMIT",
                _ => "ROLLBACK",
            };
            // (A connection that stopped answering is not asked to end the
            // transaction: the server rolls it back when it is closed.)
            let ended = match conn.is_lost() {
                true => Err(no_answer(deadline)),
                false => conn.batch(end),
            };
            if ended.is_err() || out.is_err() {
                // Never back into the pool inside a transaction.
                let _ = deadpool_postgres::Object::take(conn.client);
            }
            match out {
                Ok(Ok(v)) => ended.map(|_| v).map_err(E::from),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    tracing::error!("a database query panicked");
                    Err(E::from(DbError::Gone))
                }
            }
        });
        job.await.map_err(|_| E::from(DbError::Gone))?
    }

    /// A pooled connection inside a new transaction. A pooled connection
    /// that turns out to be dead (the server restarted or ended it while
    /// it was idle) is thrown away and a new one taken: nothing has run on
    /// it yet, so the caller does not see it.
    async fn begin(&self, begin: &'static str) -> Result<deadpool_postgres::Object> {
        // (Each try after a dead one takes another connection; the last
        // one's error is the caller's.)
        let mut tries = self.pool.status().max_size;
        loop {
            let client = self.pool.get().await.map_err(pool_error)?;
            let out = self
                .timed(async { client.batch_execute(begin).await.map_err(pg_error) })
                .await;
            match out {
                Ok(Ok(())) => return Ok(client),
                Ok(Err(DbError::Unavailable(e))) if tries > 0 => {
                    tries -= 1;
                    tracing::debug!(error = %e, "a pooled database connection is gone");
                    let _ = deadpool_postgres::Object::take(client);
                }
                Ok(Err(e)) => return Err(e),
                Err(()) => return self.in_time(client, Err(())),
            }
        }
    }

    /// The answer `out` of a statement run on `c` with
    /// [`PgDb::deadline`] (`Err(())`: none came in time, and `c` is
    /// thrown away).
    fn in_time<T>(
        &self,
        c: deadpool_postgres::Object,
        out: std::result::Result<Result<T>, ()>,
    ) -> Result<T> {
        match out {
            Ok(answer) => answer,
            Err(()) => {
                let _ = deadpool_postgres::Object::take(c);
                Err(no_answer(self.deadline))
            }
        }
    }

    /// `fut`, a statement on a connection of one of the pools, within
    /// [`PgDb::deadline`] (`Err(())` if it did not answer in time).
    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> std::result::Result<Result<T>, ()> {
        tokio::time::timeout(self.deadline, fut)
            .await
            .map_err(|_| ())
    }

    /// The writers' pool's size and idle connections (for metrics and tests).
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// The readers' pool's.
    pub fn readers_status(&self) -> deadpool_postgres::Status {
        self.readers.status()
    }

    /// The generic-plan readers' pool's.
    pub fn generic_status(&self) -> deadpool_postgres::Status {
        self.generic.status()
    }
}

impl PgConn {
    fn new(
        client: deadpool_postgres::Object,
        rt: tokio::runtime::Handle,
        write: bool,
        deadline: Duration,
    ) -> PgConn {
        PgConn {
            client,
            rt,
            write,
            deadline,
            lost: Default::default(),
        }
    }

    fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Throw the connection away if a statement's answer did not come in
    /// time (it may still come, on a connection put back in the pool).
    fn discard_if_lost(self) {
        if self.is_lost() {
            let _ = deadpool_postgres::Object::take(self.client);
        }
    }

    /// ` FOR UPDATE` in a write transaction, else nothing: a row read to be
    /// changed stays locked until the transaction ends, so two writers
    /// that read, change and save one row (on one node or two) run one
    /// after the other, as SQLite's one writer runs them, and neither
    /// loses the other's change. (A READ ONLY transaction may not lock.)
    pub fn for_update(&self) -> &'static str {
        if self.write { " FOR UPDATE" } else { "" }
    }

    /// Wait for a statement's answer, at most [`PgDb::deadline`]; a
    /// connection that did not answer is lost (every later statement on
    /// it fails at once).
    fn wait<T>(
        &self,
        fut: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        if self.is_lost() {
            return Err(no_answer(self.deadline));
        }
        match self.rt.block_on(tokio::time::timeout(self.deadline, fut)) {
            Ok(answer) => answer.map_err(pg_error),
            Err(_) => {
                self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(no_answer(self.deadline))
            }
        }
    }

    /// Run `sql` (statements without parameters; several allowed).
    pub fn batch(&self, sql: &str) -> Result<()> {
        self.wait(self.client.batch_execute(sql))
    }

    /// Run a statement; the rows it changed.
    pub fn execute(&self, sql: &str, params: Params) -> Result<u64> {
        self.wait(async {
            let st = self.client.prepare_cached(sql).await?;
            self.client.execute(&st, params).await
        })
    }

    /// Run an `INSERT … ON CONFLICT DO NOTHING`: no row inserted is a
    /// `Conflict` about `what`. (Not the unique violation itself: an error
    /// would abort the whole transaction, where SQLite's caller may go on.)
    pub fn insert_unique(&self, what: &'static str, sql: &str, params: Params) -> Result<()> {
        match self.execute(sql, params)? {
            0 => Err(DbError::Conflict {
                what,
                source: "a row with that key exists".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The rows of a query.
    pub fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>> {
        self.wait(async {
            let st = self.client.prepare_cached(sql).await?;
            self.client.query(&st, params).await
        })
    }

    /// The row of a query returning at most one.
    pub fn query_opt(&self, sql: &str, params: Params) -> Result<Option<Row>> {
        self.wait(async {
            let st = self.client.prepare_cached(sql).await?;
            self.client.query_opt(&st, params).await
        })
    }

    /// The row of a query returning exactly one (none is `Corrupt`: the
    /// row to read is not there).
    pub fn query_one(&self, what: &'static str, sql: &str, params: Params) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| DbError::corrupt(what)("no such row"))
    }
}

/// Column `i` of `r` as a `T` (a value of another type is `Corrupt`).
pub(crate) fn col<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T> {
    r.try_get(i).map_err(DbError::corrupt("row column"))
}

/// A stored count (never negative) as u64.
pub(crate) fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(col::<i64>(r, i)? as u64)
}

/// `(text, count)` rows, as the `count_by_state` functions return them.
pub(crate) fn counts(rows: Vec<Row>) -> Result<Vec<(String, u64)>> {
    rows.iter()
        .map(|r| Ok((col(r, 0)?, count(r, 1)?)))
        .collect()
}
