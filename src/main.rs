//! The `imgapi` command: the server and its admin verbs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imgapi::config::{Config, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "imgapi",
    version,
    about = "An image registry for clouds, wire-compatible with Triton IMGAPI"
)]
struct Cli {
    /// TOML configuration file (IMGAPI_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory for the database and local stores (IMGAPI_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (IMGAPI_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Verify every image file and icon against its manifest (exists, size,
    /// sha1, md5); exit 1 on any problem.
    CheckFiles {
        /// Check sizes only, without reading the files.
        #[arg(long)]
        quick: bool,
    },
    /// Remove expired uploads, expired placeholders and objects in the image
    /// areas that no image references. Prints what it would delete unless
    /// --yes is given.
    Gc {
        /// Delete (without it this is a dry run).
        #[arg(long)]
        yes: bool,
    },
    /// Manage accounts (auth = "token").
    Account {
        #[command(subcommand)]
        cmd: AccountCmd,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create an account and print its uuid and token (shown only once).
    Create {
        #[arg(long)]
        login: String,
        /// The account is an operator.
        #[arg(long)]
        operator: bool,
        /// Use this uuid instead of a new one.
        #[arg(long)]
        uuid: Option<uuid::Uuid>,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMGAPI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(imgapi::metrics::CountingLayer);
    match format {
        LogFormat::Json => registry.with(fmt.json()).init(),
        LogFormat::Text => registry.with(fmt).init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    limit_heap_retention();
    let cli = Cli::parse();
    let listen = match &cli.cmd {
        Cmd::Serve { listen } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        config: cli.config.clone(),
        listen,
        data_dir: cli.data_dir.clone(),
    };
    let cfg = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(cfg.log_format);
    let res = match cli.cmd {
        Cmd::Serve { .. } => imgapi::run(cfg, shutdown_signal())
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Migrate => migrate(&cfg).map(|()| ExitCode::SUCCESS),
        Cmd::CheckFiles { quick } => check_files(cfg, quick).await,
        Cmd::Gc { yes } => gc(cfg, yes).await,
        Cmd::Account {
            cmd:
                AccountCmd::Create {
                    login,
                    operator,
                    uuid,
                },
        } => account_create(&cfg, &login, operator, uuid)
            .await
            .map(|()| ExitCode::SUCCESS),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            eprintln!("imgapi: {e}{detail}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(cfg: &Config) -> imgapi::error::Result<()> {
    imgapi::create_data_dir(&cfg.data_dir)?;
    imgapi::db::Db::open(&cfg.db_path())?;
    println!("database {} is up to date", cfg.db_path().display());
    Ok(())
}

async fn check_files(cfg: Config, quick: bool) -> imgapi::error::Result<ExitCode> {
    let state = imgapi::build_state(cfg).await?;
    let sum = imgapi::admin::check_files(&state, quick, &mut std::io::stdout()).await?;
    Ok(if sum.problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn gc(cfg: Config, yes: bool) -> imgapi::error::Result<ExitCode> {
    let state = imgapi::build_state(cfg).await?;
    let sum = imgapi::admin::gc(&state, yes, &mut std::io::stdout()).await?;
    Ok(if sum.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn account_create(
    cfg: &Config,
    login: &str,
    operator: bool,
    uuid: Option<uuid::Uuid>,
) -> imgapi::error::Result<()> {
    imgapi::create_data_dir(&cfg.data_dir)?;
    let db = imgapi::db::Db::open(&cfg.db_path())?;
    imgapi::identity::check_login(login)?;
    let login = login.to_string();
    let (acct, token) = db
        .write(move |c| {
            imgapi::db::accounts::create(c, &login, operator, uuid).map_err(|e| {
                if e.is_conflict() {
                    imgapi::error::Error::invalid_param(
                        "login",
                        imgapi::error::FieldCode::Invalid,
                        format!("account \"{login}\" already exists"),
                    )
                } else {
                    e.into()
                }
            })
        })
        .await?;
    println!("uuid: {}", acct.uuid);
    println!("login: {}", acct.login);
    println!("operator: {}", acct.operator);
    println!("token: {token}");
    Ok(())
}

/// Part buffers (MiBs each) must go back to the system when freed, so RSS
/// stays within part size x parts in flight: a fixed mmap threshold stops
/// glibc from raising it and keeping freed buffers in the heap. Smaller
/// buffers (hyper's ~400 KiB reads) are reused instead: a heap keeps up to
/// 8 MiB free before trimming, so a streaming upload does not hand pages back
/// and fault them in again for every read.
fn limit_heap_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tuning parameters; called once at start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
