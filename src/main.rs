//! The `imgapi` command: the server and its admin verbs, and the client
//! verbs (in `client/`) that talk to a server over HTTP.

use imgapi_client as client;
mod config_check;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use imgapi::config::{Config, ConfigError, LogFormat, Overrides};

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
    /// PostgreSQL URL for the metadata, postgres://USER@HOST:PORT/DB
    /// (IMGAPI_DATABASE_URL); without it, SQLite in the data directory.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: boxing the client verbs would gain nothing.
#[allow(clippy::large_enum_variant)]
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
    /// The lifecycle policy (`[lifecycle]` rules): what it would retire and
    /// why, or apply it.
    Lifecycle {
        #[command(subcommand)]
        cmd: LifecycleCmd,
    },
    /// Manage accounts (auth = "token").
    Account {
        #[command(subcommand)]
        cmd: AccountCmd,
    },
    /// Check a configuration as `serve` would load it.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, ...) on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(client::ClientCmd),
    /// Write the man pages (imgapi.1 and one per verb) into a directory.
    #[command(hide = true)]
    Man {
        /// The directory to write into (docs/man in the source tree).
        #[arg(long)]
        out: PathBuf,
    },
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  imgapi completions bash > /etc/bash_completion.d/imgapi
  imgapi completions zsh > \"${fpath[1]}/_imgapi\"
  imgapi completions fish > ~/.config/fish/completions/imgapi.fish
  # the same scripts are in contrib/completions/ of the source tree";

#[derive(Subcommand)]
enum LifecycleCmd {
    /// Print what a run would do now and why (uuid, name, version, owner,
    /// size, last download, action, rule) and the bytes it would free.
    /// Changes nothing.
    Plan {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply the plan: disable what qualifies, delete what the policy
    /// disabled once its grace has passed. Without --yes, only the plan.
    Run {
        /// Apply it (without it this is `plan`).
        #[arg(long)]
        yes: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load the configuration exactly as `serve` would (flags, environment,
    /// file), print it as TOML with secrets redacted, and check what can be
    /// checked without serving: directories writable, the database
    /// openable, the S3 bucket reachable. Exits 2 with serve's message on a
    /// configuration error, 1 when a check fails.
    Check {
        /// Address to listen on, as `serve --listen` (IMGAPI_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

/// Verbs that act neither on a data directory nor on a server.
const OTHER_VERBS: &[&str] = &["completions"];

/// The command line, with `--help` listing the server verbs, the client
/// verbs and the others in three groups.
fn command() -> clap::Command {
    let cmd = Cli::command();
    let subs: Vec<(String, String)> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| {
            let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
            (c.get_name().to_string(), about)
        })
        .collect();
    let w = subs.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(4);
    let kind = |n: &str| {
        if client::VERBS.contains(&n) {
            1
        } else if OTHER_VERBS.contains(&n) {
            2
        } else {
            0
        }
    };
    let group = |k: u8| -> String {
        subs.iter()
            .filter(|(n, _)| kind(n) == k)
            .map(|(n, a)| format!("  {n:<w$}  {a}\n"))
            .collect()
    };
    let template = format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n\
         Server commands (act on a data directory):\n{}\n\
         Client commands (act on a server: --url or IMGAPI_URL):\n{}\n\
         Other commands:\n{}  {:<w$}  \
         Print this message or the help of the given command\n\n\
         Options:\n{{options}}{{after-help}}",
        group(0),
        group(1),
        group(2),
        "help",
    );
    cmd.help_template(template).after_help(
        "Client verbs exit 0 when done, 1 when the server refused (its error code is printed), \
         2 on a usage error, 3 when the server could not be reached after retries, \
         4 when transferred bytes failed verification, 130 when interrupted.",
    )
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
    /// Set an account's own quotas, overriding `[quotas]`: a number (0:
    /// unlimited) or `default` (the configuration's again).
    SetQuota {
        /// The account: a uuid (any image owner) or a login.
        #[arg(value_name = "UUID|LOGIN")]
        account: String,
        /// Bytes of its images plus its unfinished uploads.
        #[arg(long, value_name = "BYTES|default")]
        max_bytes: Option<QuotaArg>,
        /// Its images, in any state.
        #[arg(long, value_name = "COUNT|default")]
        max_images: Option<QuotaArg>,
    },
}

/// A quota on the command line: a number, or `default`.
#[derive(Debug, Clone, Copy)]
enum QuotaArg {
    Default,
    Value(u64),
}

impl std::str::FromStr for QuotaArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "default" {
            return Ok(QuotaArg::Default);
        }
        match s.parse::<u64>() {
            Ok(v) if v <= i64::MAX as u64 => Ok(QuotaArg::Value(v)),
            _ => Err(format!(
                "\"{s}\" is not a quota: a number from 0 (unlimited) to {} or \"default\"",
                i64::MAX
            )),
        }
    }
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

/// Resolves on SIGTERM or SIGINT. The handlers are installed now, before
/// the server tells systemd it is ready, so a stop signal from then on is a
/// graceful stop, never the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = wait(term) => {}, _ = wait(int) => {} }
        tracing::info!("shutting down");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    limit_heap_retention();
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let cli = match cli.cmd {
        Cmd::Client(c) => return client::run(c).await,
        Cmd::Man { out } => return write_man(&out),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "imgapi", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        cmd => Cli { cmd, ..cli },
    };
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi: {e}");
            return ExitCode::from(2);
        }
    };
    if let Cmd::Config { .. } = cli.cmd {
        return config_check::run(cfg).await;
    }
    init_tracing(cfg.log_format);
    match run_server_verb(cli.cmd, cfg).await {
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

/// The configuration of a server verb: the file and environment, with the
/// command line's overrides (`--listen` of `serve` and `config check`).
fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let listen = match &cli.cmd {
        Cmd::Serve { listen }
        | Cmd::Config {
            cmd: ConfigCmd::Check { listen },
        } => *listen,
        _ => None,
    };
    let overrides = Overrides {
        config: cli.config.clone(),
        listen,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
    };
    Config::load(&overrides)
}

/// Run the server verb `cmd` (any but the client's, `man`, `completions`
/// and `config`, dispatched before the configuration is used).
async fn run_server_verb(cmd: Cmd, cfg: Config) -> imgapi::error::Result<ExitCode> {
    match cmd {
        Cmd::Serve { .. } => imgapi::run(cfg, shutdown_signal())
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Migrate => migrate(&cfg).await.map(|()| ExitCode::SUCCESS),
        Cmd::CheckFiles { quick } => check_files(cfg, quick).await,
        Cmd::Gc { yes } => gc(cfg, yes).await,
        Cmd::Lifecycle { cmd } => match cmd {
            LifecycleCmd::Plan { json } => lifecycle(cfg, false, json).await,
            LifecycleCmd::Run { yes, json } => lifecycle(cfg, yes, json).await,
        },
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
        Cmd::Account {
            cmd:
                AccountCmd::SetQuota {
                    account,
                    max_bytes,
                    max_images,
                },
        } => account_set_quota(&cfg, &account, max_bytes, max_images)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Client(_) | Cmd::Man { .. } | Cmd::Completions { .. } | Cmd::Config { .. } => {
            unreachable!("dispatched above")
        }
    }
}

/// `imgapi man --out DIR`: the man pages of the same clap definition.
fn write_man(out: &std::path::Path) -> ExitCode {
    let res = std::fs::create_dir_all(out).and_then(|()| clap_mangen::generate_to(command(), out));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgapi: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

async fn migrate(cfg: &Config) -> imgapi::error::Result<()> {
    imgapi::create_data_dir(&cfg.data_dir)?;
    imgapi::db::Db::open_configured(&cfg.database, &cfg.db_path()).await?;
    match cfg.database.redacted_url() {
        Some(url) => println!("database {url} is up to date"),
        None => println!("database {} is up to date", cfg.db_path().display()),
    }
    Ok(())
}

async fn check_files(cfg: Config, quick: bool) -> imgapi::error::Result<ExitCode> {
    let state = imgapi::build_state(cfg).await?;
    let sum =
        imgapi::admin::check_files(&admin_services(&state), quick, &mut std::io::stdout()).await?;
    Ok(if sum.problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn gc(cfg: Config, yes: bool) -> imgapi::error::Result<ExitCode> {
    let state = imgapi::build_state(cfg).await?;
    let sum = imgapi::admin::gc(&admin_services(&state), yes, &mut std::io::stdout()).await?;
    Ok(if sum.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The services the admin verbs work on.
fn admin_services(state: &imgapi::api::AppState) -> imgapi::admin::Services<'_> {
    imgapi::admin::Services {
        db: &state.db,
        images: &state.images,
        uploads: &state.uploads,
    }
}

/// `imgapi lifecycle plan` / `run [--yes]`: exit 1 if a step failed.
async fn lifecycle(cfg: Config, yes: bool, json: bool) -> imgapi::error::Result<ExitCode> {
    let policy = cfg.lifecycle.clone();
    let state = imgapi::build_state(cfg).await?;
    let l = imgapi::lifecycle::Lifecycle::new(state.images.clone(), policy);
    let plan = l.plan().await?;
    let applied = if yes {
        Some(l.apply(&plan).await)
    } else {
        None
    };
    if json {
        // Written as it is serialised: a plan of 100 000 steps is never
        // held as a JSON tree.
        #[derive(serde::Serialize)]
        struct Ran<'a> {
            plan: &'a imgapi::lifecycle::Plan,
            applied: &'a imgapi::lifecycle::Applied,
        }
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match &applied {
            None => serde_json::to_writer_pretty(&mut out, &plan),
            Some(a) => serde_json::to_writer_pretty(
                &mut out,
                &Ran {
                    plan: &plan,
                    applied: a,
                },
            ),
        }
        .map_err(imgapi::error::Error::internal)?;
        use std::io::Write;
        writeln!(out).and_then(|()| out.flush())?;
    } else {
        print!("{}", lifecycle_table(&plan));
        match &applied {
            None => println!("(nothing changed: `imgapi lifecycle run --yes` applies it)"),
            Some(a) => {
                println!(
                    "done: {} disabled, {} deleted, {} freed",
                    a.disabled,
                    a.deleted,
                    client::output::human_bytes(a.bytes_reclaimed)
                );
                for e in &a.errors {
                    println!("failed: {e}");
                }
            }
        }
    }
    Ok(match applied {
        Some(a) if !a.errors.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// A lifecycle plan for people.
fn lifecycle_table(p: &imgapi::lifecycle::Plan) -> String {
    use imgapi::lifecycle::Action;
    let rows: Vec<Vec<String>> = p
        .steps
        .iter()
        .map(|s| {
            vec![
                s.uuid.to_string(),
                s.name.clone(),
                s.version.clone(),
                s.owner.to_string(),
                client::output::human_bytes(s.bytes),
                s.last_downloaded_at
                    .clone()
                    .unwrap_or_else(|| "never".into()),
                match s.action {
                    Action::Disable => format!(
                        "disable (delete after {})",
                        s.delete_after.as_deref().unwrap_or("-")
                    ),
                    Action::Delete => "delete".into(),
                },
                s.rule.clone(),
                s.reason.clone(),
            ]
        })
        .collect();
    let count = |a: Action| p.steps.iter().filter(|s| s.action == a).count();
    format!(
        "{}at {}: {} to delete now, freeing {}; {} to disable, freeing {} after their grace; {} kept by the protections\n",
        client::output::table(
            &[
                "UUID",
                "NAME",
                "VERSION",
                "OWNER",
                "SIZE",
                "LAST DOWNLOAD",
                "ACTION",
                "RULE",
                "WHY"
            ],
            &rows
        ),
        p.at,
        count(Action::Delete),
        client::output::human_bytes(p.bytes_reclaimed),
        count(Action::Disable),
        client::output::human_bytes(p.bytes_after_grace),
        p.protected
    )
}

/// `imgapi account set-quota`: change the flags given, keep the others,
/// print the account's own quotas and those that hold.
async fn account_set_quota(
    cfg: &Config,
    who: &str,
    max_bytes: Option<QuotaArg>,
    max_images: Option<QuotaArg>,
) -> imgapi::error::Result<()> {
    use imgapi::error::{Error, FieldCode};
    if max_bytes.is_none() && max_images.is_none() {
        return Err(Error::invalid_param(
            "max_bytes",
            FieldCode::Missing,
            "give --max-bytes, --max-images or both",
        ));
    }
    imgapi::create_data_dir(&cfg.data_dir)?;
    let db = imgapi::db::Db::open_configured(&cfg.database, &cfg.db_path()).await?;
    let who = who.to_string();
    let own = db
        .write(move |c| {
            let account = match uuid::Uuid::parse_str(&who) {
                Ok(u) => u,
                Err(_) => {
                    c.account_by_login(&who)?
                        .ok_or_else(|| {
                            Error::not_found(format!("account \"{who}\" was not found"))
                        })?
                        .uuid
                }
            };
            let mut q = c.quota_get(account)?;
            let pick = |a: Option<QuotaArg>, old: Option<u64>| match a {
                None => old,
                Some(QuotaArg::Default) => None,
                Some(QuotaArg::Value(v)) => Some(v),
            };
            q.max_bytes = pick(max_bytes, q.max_bytes);
            q.max_images = pick(max_images, q.max_images);
            c.quota_set(account, q)?;
            Ok::<_, Error>((account, q))
        })
        .await?;
    let (account, q) = own;
    let holds = imgapi::space::Quotas::new(cfg.quotas.clone()).effective(q);
    let show = |own: Option<u64>, holds: Option<u64>| {
        let holds = holds.map_or("unlimited".to_string(), |v| v.to_string());
        match own {
            None => format!("{holds} (default)"),
            Some(_) => holds,
        }
    };
    println!("account: {account}");
    println!("max_bytes: {}", show(q.max_bytes, holds.max_bytes));
    println!("max_images: {}", show(q.max_images, holds.max_images));
    Ok(())
}

async fn account_create(
    cfg: &Config,
    login: &str,
    operator: bool,
    uuid: Option<uuid::Uuid>,
) -> imgapi::error::Result<()> {
    imgapi::create_data_dir(&cfg.data_dir)?;
    let db = imgapi::db::Db::open_configured(&cfg.database, &cfg.db_path()).await?;
    imgapi::identity::check_login(login)?;
    let login = login.to_string();
    let (acct, token) = db
        .write(move |c| {
            c.account_create(&login, operator, uuid).map_err(|e| {
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
