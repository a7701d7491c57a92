//! imgapi: an image registry for clouds, wire-compatible with Triton's
//! IMGAPI. This crate root wires the modules together and runs the server.

pub mod admin;
pub mod api;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod identity;
pub mod images;
pub mod imports;
pub mod lease;
pub mod lifecycle;
pub mod locks;
pub mod manifest;
pub mod metrics;
pub mod params;
pub mod registrar;
pub mod space;
pub mod store;
pub mod uploads;
/// The wire types and the digests live in `imgapi-protocol`, shared with
/// the client crate; they keep their paths here.
pub use imgapi_protocol::{digest, tus, wire};

mod layering;

use std::future::Future;
use std::sync::Arc;

use config::Config;
use error::Result;
use store::Stores;

/// Create the data directory (and its parents) readable by the service's
/// user only (0700, whatever the umask); an existing one is left as it is.
pub fn create_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Open the database and stores named by `cfg`.
pub async fn build_state(cfg: Config) -> Result<api::AppState> {
    build_state_with_clock(cfg, clock::Clock::System).await
}

/// `build_state` with the services reading domain time from `clock`.
pub async fn build_state_with_clock(cfg: Config, clock: clock::Clock) -> Result<api::AppState> {
    create_data_dir(&cfg.data_dir)?;
    lease::set_node(lease::node_id_in(&cfg.data_dir)?);
    let db = db::Db::open_configured(&cfg.database, &cfg.db_path()).await?;
    // A cluster keeps no upload bytes on a node between requests.
    let stores = Stores::open(&cfg, db.is_shared()).await?;
    let default_stor = stores.classic_stor();
    let quotas = space::Quotas::new(cfg.quotas.clone());
    let metrics = Arc::new(metrics::Metrics::default());
    let uploads = uploads::Uploads::new(
        db.clone(),
        stores.clone(),
        uploads::UploadsConfig {
            max_file_size: cfg.limits.max_file_size,
            max_bytes_in_flight_per_account: cfg.limits.max_bytes_in_flight_per_account,
            expire_after_secs: cfg.uploads.expire_after_secs,
            max_open_per_account: cfg.uploads.max_open_per_account,
            max_streaming_per_account: cfg.uploads.max_streaming_per_account,
            assets_allowed: cfg.storage.assets.allowed_accounts.clone(),
            quotas: quotas.clone(),
        },
        clock.clone(),
    )
    .with_metrics(metrics.clone());
    let locks = locks::ImageLocks::new(&db);
    let registrar = registrar::Registrar::new(
        db.clone(),
        stores.clone(),
        uploads.clone(),
        locks.clone(),
        cfg.limits.max_file_size,
        cfg.registrar.placeholder_lifespan_days,
        clock.clone(),
    )
    .with_quotas(quotas.clone());
    let images = images::Images {
        db: db.clone(),
        stores,
        default_stor,
        max_file_size: cfg.limits.max_file_size,
        placeholder_lifespan_days: cfg.registrar.placeholder_lifespan_days,
        locks,
        clock: clock.clone(),
        downloads: images::DownloadLog::new(cfg.downloads.stats).with_metrics(metrics.clone()),
        quotas: quotas.clone(),
        metrics: metrics.clone(),
        list_cache: std::sync::Arc::new(images::ListCache::new(
            usize::try_from(cfg.limits.list_cache_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
        )),
    };
    let space = space::Space::new(db.clone(), quotas, clock);
    let imports = imports::Imports::new(
        db.clone(),
        images.clone(),
        cfg.imports.clone(),
        cfg.limits.max_file_size,
        cfg.data_dir.join("staging").join("imports"),
    )?;
    Ok(api::AppState {
        config: Arc::new(cfg),
        db,
        images,
        imports,
        uploads,
        registrar,
        space,
        server_name: Arc::from(format!("imgapi/{}", env!("CARGO_PKG_VERSION"))),
        metrics,
    })
}

/// How long start-up spends finishing uploads whose completion a crash cut
/// short before it opens the listener; what is left (the store is down) is
/// finished on first access or by the reaper.
const STARTUP_FINISH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Finish, before serving, the uploads whose last byte was acknowledged
/// but whose completion a crash cut short.
async fn finish_stalled_uploads(uploads: &uploads::Uploads) {
    match tokio::time::timeout(STARTUP_FINISH_LIMIT, uploads.finish_stalled()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(uploads = n, "finished uploads cut short by a crash"),
        Ok(Err(e)) => tracing::warn!(error = %e, "finishing stalled uploads failed"),
        Err(_) => {
            tracing::warn!("finishing stalled uploads takes long; going on in the background")
        }
    }
}

/// How long shutdown waits to write the last download counts.
const SHUTDOWN_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Tell systemd (`Type=notify`: the socket named by `NOTIFY_SOCKET`) how
/// the service stands; nothing happens without that variable.
fn notify_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Serve until `shutdown` resolves; in-flight requests finish first.
/// Prints `imgapi listening on http://ADDR` on stdout once bound, and then
/// sends systemd `READY=1` (the listener is open and the uploads a crash
/// cut short are finished); `STOPPING=1` once `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let listen = cfg.listen;
    run_on(tokio::net::TcpListener::bind(listen), cfg, shutdown).await
}

/// [`run`] on the listener `listener` gives once the services are built
/// and the uploads a crash cut short are finished (`cfg.listen` is not
/// used): the test harness gives one it bound already.
pub async fn run_on(
    listener: impl Future<Output = std::io::Result<tokio::net::TcpListener>>,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let server_cfg = cfg.server.clone();
    let state = build_state(cfg).await?;
    finish_stalled_uploads(&state.uploads).await;
    let reaper = tokio::spawn(images::reap_placeholders_forever(state.images.clone()));
    let upload_reaper = tokio::spawn(uploads::reap_forever(state.uploads.clone()));
    let registrar = tokio::spawn(state.registrar.clone().work_forever());
    let importer = tokio::spawn(state.imports.clone().work_forever());
    let (stop_flushing, stop) = tokio::sync::watch::channel(false);
    let downloads = tokio::spawn(images::flush_downloads_until(
        state.images.clone(),
        std::time::Duration::from_secs(state.config.downloads.stats_flush_secs),
        stop,
    ));
    let images = state.images.clone();
    let policy = state.config.lifecycle.clone();
    let lifecycle = (policy.every_hours > 0).then(|| {
        let every = std::time::Duration::from_secs(policy.every_hours * 3600);
        tokio::spawn(lifecycle::run_forever(
            lifecycle::Lifecycle::new(images.clone(), policy),
            every,
        ))
    });
    let app = api::router(state);
    let listener = listener.await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("imgapi listening on http://{addr}");
    notify_service_manager(sd_notify::NotifyState::Ready);
    let shutdown = async move {
        shutdown.await;
        notify_service_manager(sd_notify::NotifyState::Stopping);
    };
    serve::serve(listener, app, &server_cfg, shutdown).await;
    reaper.abort();
    upload_reaper.abort();
    registrar.abort();
    importer.abort();
    if let Some(l) = lifecycle {
        l.abort();
    }
    // A flush under way finishes; then the counts of the last interval
    // (bounded: the database may be down).
    let _ = stop_flushing.send(true);
    let last = async {
        let _ = downloads.await;
        images.flush_downloads().await
    };
    match tokio::time::timeout(SHUTDOWN_FLUSH_LIMIT, last).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "download counts lost at shutdown"),
        Err(_) => tracing::warn!("download counts lost at shutdown: the database took too long"),
    }
    Ok(())
}

/// The accept loop: HTTP/1.1 connections with a header-read timeout, an
/// idle timeout, a body-stall timeout and a connection limit (`[server]`),
/// none of which `axum::serve` has.
mod serve {
    use std::convert::Infallible;
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use bytes::Bytes;
    use http_body::{Frame, SizeHint};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
    use tokio::time::{Instant, Sleep};
    use tower::ServiceExt;

    use std::os::fd::{AsRawFd, RawFd};

    use tokio::io::Interest;

    use crate::config::ServerConfig;
    use crate::store;

    #[derive(Clone, Copy)]
    struct Timeouts {
        header: Duration,
        idle: Duration,
        stall: Duration,
    }

    /// Accept and serve until `shutdown` resolves; then stop accepting, let
    /// every connection finish its in-flight request, and return.
    pub async fn serve(
        listener: TcpListener,
        app: Router,
        cfg: &ServerConfig,
        shutdown: impl Future<Output = ()>,
    ) {
        let t = Timeouts {
            header: Duration::from_secs(cfg.header_read_timeout_secs),
            idle: Duration::from_secs(cfg.idle_timeout_secs),
            stall: Duration::from_secs(cfg.body_stall_timeout_secs),
        };
        let max = max_connections(cfg.max_connections);
        let permits = Arc::new(Semaphore::new(max));
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            // Beyond the limit, connections wait in the kernel's backlog.
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                _ = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: wait for
                        // connections to end instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream, app.clone(), t, stop_rx.clone(), permit));
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // Every connection holds a permit until it ends.
        let _ = permits.acquire_many(max as u32).await;
    }

    /// `want`, after raising the soft open-file limit to the hard one; at
    /// most what fits in the limit with room for files and the database.
    fn max_connections(want: usize) -> usize {
        let want = want.min(u32::MAX as usize);
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a pointer to a valid rlimit.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return want;
            }
            if r.rlim_cur < r.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    r = raised;
                }
            }
        }
        let room = usize::try_from(r.rlim_cur)
            .unwrap_or(usize::MAX)
            .saturating_sub(256)
            .max(16);
        if want > room {
            tracing::warn!(
                max_connections = want,
                open_file_limit = r.rlim_cur,
                using = room,
                "server.max_connections does not fit in the open-file limit"
            );
            return room;
        }
        want
    }

    async fn connection(
        stream: TcpStream,
        app: Router,
        t: Timeouts,
        mut stop: watch::Receiver<bool>,
        _permit: OwnedSemaphorePermit,
    ) {
        let watch = Arc::new(Watch::new());
        let io = TokioIo::new(WatchedIo {
            inner: stream,
            watch: watch.clone(),
        });
        let w = watch.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = Active::new(w.clone());
            let req = req.map(|b| StallBody {
                inner: b,
                limit: t.stall,
                sleep: None,
                waiting: false,
            });
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(e) => match e {},
                };
                Ok::<_, Infallible>(resp.map(|b| {
                    Body::new(GuardedBody {
                        inner: b,
                        _active: guard,
                    })
                }))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
        tokio::pin!(conn);
        let mut stopping = *stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        let expired = watchdog(watch, t);
        tokio::pin!(expired);
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                // No request in progress (or a client that reads nothing):
                // dropping the connection closes it.
                _ = &mut expired => {
                    tracing::debug!("connection timed out");
                    return;
                }
            }
        }
    }

    /// Resolves when the connection has been idle, sending a request head,
    /// or refusing to read a response for too long.
    async fn watchdog(w: Arc<Watch>, t: Timeouts) {
        while let Some(d) = w.check(t, Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(d) => {}
                // A request head began: its (shorter) deadline applies.
                _ = w.head_began.notified() => {}
            }
        }
    }

    /// What one connection is doing, for its timeouts.
    struct Watch {
        /// Requests between their head and the end of their response.
        active: AtomicUsize,
        write_blocked: AtomicBool,
        head_began: tokio::sync::Notify,
        st: Mutex<WatchState>,
    }

    struct WatchState {
        /// When the connection became idle, or the next head began.
        since: Instant,
        /// Bytes of the next request head have arrived.
        head_started: bool,
        write_blocked_since: Option<Instant>,
    }

    impl Watch {
        fn new() -> Watch {
            Watch {
                active: AtomicUsize::new(0),
                write_blocked: AtomicBool::new(false),
                head_began: tokio::sync::Notify::new(),
                st: Mutex::new(WatchState {
                    since: Instant::now(),
                    head_started: false,
                    write_blocked_since: None,
                }),
            }
        }

        fn lock(&self) -> MutexGuard<'_, WatchState> {
            self.st.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn read_some(&self) {
            if self.active.load(Ordering::Acquire) == 0 {
                let mut s = self.lock();
                if !s.head_started {
                    s.head_started = true;
                    s.since = Instant::now();
                    self.head_began.notify_one();
                }
            }
        }

        fn write_pending(&self) {
            if !self.write_blocked.swap(true, Ordering::AcqRel) {
                self.lock().write_blocked_since = Some(Instant::now());
            }
        }

        fn write_ready(&self) {
            if self.write_blocked.swap(false, Ordering::AcqRel) {
                self.lock().write_blocked_since = None;
            }
        }

        /// None: a timeout expired. Else when to check again.
        fn check(&self, t: Timeouts, now: Instant) -> Option<Instant> {
            let s = self.lock();
            let deadline = if let Some(b) = s.write_blocked_since {
                b + t.stall
            } else if self.active.load(Ordering::Acquire) == 0 {
                s.since + if s.head_started { t.header } else { t.idle }
            } else {
                return Some(now + t.stall);
            };
            (now < deadline).then_some(deadline)
        }
    }

    /// A request in progress: from its head until its response body is
    /// sent or dropped.
    struct Active(Arc<Watch>);

    impl Active {
        fn new(w: Arc<Watch>) -> Active {
            {
                let mut s = w.lock();
                s.head_started = false;
                w.active.fetch_add(1, Ordering::AcqRel);
            }
            Active(w)
        }
    }

    impl Drop for Active {
        fn drop(&mut self) {
            let mut s = self.0.lock();
            if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
                s.since = Instant::now();
                s.head_started = false;
            }
        }
    }

    /// The socket, noting reads and blocked writes.
    struct WatchedIo {
        inner: TcpStream,
        watch: Arc<Watch>,
    }

    impl WatchedIo {
        fn note<T>(&self, r: &Poll<T>) {
            if r.is_pending() {
                self.watch.write_pending();
            } else {
                self.watch.write_ready();
            }
        }
    }

    impl AsyncRead for WatchedIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.inner).poll_read(cx, buf);
            if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                self.watch.read_some();
            }
            r
        }
    }

    impl WatchedIo {
        /// Send the `len` bytes of a mapped body chunk by file and offset
        /// (sendfile) rather than copying them from the mapping; None
        /// where the file cannot be sent so (the caller writes them).
        fn poll_send_mapped(
            &mut self,
            cx: &mut Context<'_>,
            (fd, offset): (RawFd, u64),
            len: usize,
        ) -> Option<Poll<io::Result<usize>>> {
            let sock = self.inner.as_raw_fd();
            loop {
                if let Poll::Ready(Err(e)) = self.inner.poll_write_ready(cx) {
                    return Some(Poll::Ready(Err(e)));
                }
                match self.inner.try_io(Interest::WRITABLE, || {
                    store::fs::mapped::send(sock, fd, offset, len)
                }) {
                    Ok(n) => return Some(Poll::Ready(Ok(n))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // try_io cleared the readiness: pending until writable.
                        if self.inner.poll_write_ready(cx).is_pending() {
                            return Some(Poll::Pending);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Unsupported => return None,
                    Err(e) => return Some(Poll::Ready(Err(e))),
                }
            }
        }
    }

    impl AsyncWrite for WatchedIo {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            let sent = store::fs::mapped::region(b.as_ptr(), b.len())
                .and_then(|region| self.poll_send_mapped(cx, region, b.len()));
            let r = sent.unwrap_or_else(|| Pin::new(&mut self.inner).poll_write(cx, b));
            self.note(&r);
            r
        }

        /// Bytes of a mapped body chunk go by sendfile, one slice per
        /// call; the slices before one go by writev.
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            b: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mapped = b.iter().enumerate().find_map(|(i, s)| {
                store::fs::mapped::region(s.as_ptr(), s.len()).map(|region| (i, region))
            });
            let (first, plain) = match mapped {
                Some((0, region)) => (Some(region), b),
                Some((i, _)) => (None, &b[..i]),
                None => (None, b),
            };
            let sent = first.and_then(|region| self.poll_send_mapped(cx, region, b[0].len()));
            let r =
                sent.unwrap_or_else(|| Pin::new(&mut self.inner).poll_write_vectored(cx, plain));
            self.note(&r);
            r
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let r = Pin::new(&mut self.inner).poll_flush(cx);
            self.note(&r);
            r
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A request body that fails when the client sends nothing for the
    /// stall timeout while the handler waits for bytes: the handler sees
    /// the same error as for a dropped connection.
    struct StallBody {
        inner: Incoming,
        limit: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
        waiting: bool,
    }

    impl http_body::Body for StallBody {
        type Data = Bytes;
        type Error = Box<dyn std::error::Error + Send + Sync>;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = &mut *self;
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(r) => {
                    this.waiting = false;
                    Poll::Ready(r.map(|r| r.map_err(Into::into)))
                }
                Poll::Pending => {
                    let deadline = Instant::now() + this.limit;
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if !this.waiting {
                        this.waiting = true;
                        sleep.as_mut().reset(deadline);
                    }
                    match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                            "the client sent no request body bytes for {} s",
                            this.limit.as_secs()
                        )
                        .into()))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }

    /// A response body that ends its request's [`Active`] when dropped.
    struct GuardedBody {
        inner: Body,
        _active: Active,
    }

    impl http_body::Body for GuardedBody {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Pin::new(&mut self.inner).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> SizeHint {
            self.inner.size_hint()
        }
    }
}
