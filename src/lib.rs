//! imgapi: an image registry for clouds, wire-compatible with Triton's
//! IMGAPI. This crate root wires the modules together and runs the server.

pub mod admin;
pub mod api;
pub mod config;
pub mod db;
pub mod digest;
pub mod error;
pub mod identity;
pub mod images;
pub mod locks;
pub mod manifest;
pub mod metrics;
pub mod registrar;
pub mod store;
pub mod uploads;

use std::future::Future;
use std::sync::Arc;

use config::{Config, MantaConfig};
use error::{Error, Result};
use store::{FsStore, Store, Stores};

/// Open the database and stores named by `cfg`.
pub async fn build_state(cfg: Config) -> Result<api::AppState> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let db = db::Db::open(&cfg.db_path())?;
    let manta = match &cfg.storage.manta {
        MantaConfig::Fs { .. } => {
            let dir = cfg
                .manta_fs_dir()
                .ok_or_else(|| Error::internal("no manta dir"))?;
            Store::Fs(FsStore::new(dir)?)
        }
        MantaConfig::S3(s3) => Store::S3(store::S3Store::new(s3).await?),
    };
    let staging = match manta {
        Store::Fs(_) => manta.clone(),
        Store::S3(_) => Store::Fs(FsStore::new(cfg.data_dir.join("staging"))?),
    };
    let stores = Stores {
        local: Store::Fs(FsStore::new(cfg.data_dir.join("local"))?),
        manta,
        assets: Store::Fs(FsStore::new(cfg.assets_dir())?),
        staging,
    };
    let default_stor = match cfg.storage.manta {
        MantaConfig::S3(_) => "manta",
        MantaConfig::Fs { .. } => "local",
    };
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
        },
    );
    let locks = locks::ImageLocks::default();
    let registrar = registrar::Registrar::new(
        db.clone(),
        stores.clone(),
        uploads.clone(),
        locks.clone(),
        cfg.limits.max_file_size,
        cfg.registrar.placeholder_lifespan_days,
    );
    let images = images::Images::new(
        db.clone(),
        stores,
        default_stor,
        cfg.limits.max_file_size,
        cfg.registrar.placeholder_lifespan_days,
        locks,
    );
    Ok(api::AppState {
        config: Arc::new(cfg),
        db,
        images,
        uploads,
        registrar,
        server_name: Arc::from(format!("imgapi/{}", env!("CARGO_PKG_VERSION"))),
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

/// Serve until `shutdown` resolves; in-flight requests finish first.
/// Prints `imgapi listening on http://ADDR` on stdout once bound.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let listen = cfg.listen;
    let state = build_state(cfg).await?;
    finish_stalled_uploads(&state.uploads).await;
    let reaper = tokio::spawn(images::reap_placeholders_forever(state.images.clone()));
    let upload_reaper = tokio::spawn(uploads::reap_forever(state.uploads.clone()));
    let registrar = tokio::spawn(state.registrar.clone().work_forever());
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("imgapi listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    reaper.abort();
    upload_reaper.abort();
    registrar.abort();
    Ok(())
}
