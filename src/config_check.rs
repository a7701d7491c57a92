//! `imgapi config check`: the effective configuration as TOML (secrets
//! redacted) on stdout, then what can be checked without serving, one line
//! each on stderr: the directories writable, the database openable, the S3
//! bucket reachable. Creates nothing, migrates nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use imgapi::config::{Config, MantaConfig};

/// How long the HEAD of the S3 bucket, or the look at PostgreSQL, may take.
const REMOTE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Print `cfg` (loaded as `serve` loads it) and check it: exit 0 when every
/// check passed, 1 otherwise.
pub async fn run(cfg: Config) -> ExitCode {
    let cfg = resolved(cfg);
    match toml::to_string(&cfg) {
        Ok(t) => print!("{t}"),
        Err(e) => {
            eprintln!("imgapi: cannot print the configuration: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut failed = 0;
    let mut report = |what: &str, r: Result<String, String>| match r {
        Ok(m) => eprintln!("ok: {what}: {m}"),
        Err(m) => {
            failed += 1;
            eprintln!("imgapi: {what}: {m}");
        }
    };
    for (what, dir) in directories(&cfg) {
        report(&format!("{what} {}", dir.display()), writable(&dir));
    }
    match cfg.database.url.as_deref() {
        Some(url) => report(
            &format!("database {}", imgapi::config::redact_url_password(url)),
            postgres(url).await,
        ),
        None => {
            let db = cfg.db_path();
            report(&format!("database {}", db.display()), database(&db).await);
        }
    }
    if let MantaConfig::S3(s3) = &cfg.storage.manta {
        let r = match imgapi::store::s3::check_bucket(s3, REMOTE_CHECK_TIMEOUT).await {
            Ok(imgapi::store::s3::BucketCheck::Reachable) => Ok("reachable".to_string()),
            Ok(imgapi::store::s3::BucketCheck::Missing) => {
                Ok("reachable; the bucket does not exist yet, serve creates it".to_string())
            }
            Err(e) => Err(e),
        };
        report(
            &format!("storage.manta bucket {} at {}", s3.bucket, s3.endpoint),
            r,
        );
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `cfg` with the directories it leaves to defaults written out.
fn resolved(mut cfg: Config) -> Config {
    cfg.storage.assets.dir = Some(cfg.assets_dir());
    if let Some(d) = cfg.manta_fs_dir() {
        cfg.storage.manta = MantaConfig::Fs { dir: Some(d) };
    }
    cfg
}

/// The directories the server writes, with the key that names each.
fn directories(cfg: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![
        ("data_dir", cfg.data_dir.clone()),
        ("data_dir/local", cfg.data_dir.join("local")),
        ("data_dir/staging", cfg.data_dir.join("staging")),
        ("storage.assets.dir", cfg.assets_dir()),
    ];
    if let Some(d) = cfg.manta_fs_dir() {
        v.push(("storage.manta.dir", d));
    }
    v
}

/// Whether the server can write in `dir`: a file is created there and
/// removed; a directory that does not exist yet must be creatable in its
/// nearest existing ancestor.
fn writable(dir: &Path) -> Result<String, String> {
    let mut at = dir.to_path_buf();
    let mut missing = false;
    loop {
        match std::fs::metadata(&at) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing = true;
                at = match at.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    tempfile::Builder::new()
        .prefix(".imgapi-config-check")
        .tempfile_in(&at)
        .map_err(|e| {
            // (Without tempfile's note of the random name it tried.)
            let e = e
                .raw_os_error()
                .map_or(e, std::io::Error::from_raw_os_error);
            format!(
                "not writable: cannot create a file in {}: {e}",
                at.display()
            )
        })?;
    Ok(if missing {
        format!(
            "does not exist yet; serve creates it ({} is writable)",
            at.display()
        )
    } else {
        "writable".to_string()
    })
}

/// Whether PostgreSQL answers, with a schema this binary knows.
async fn postgres(url: &str) -> Result<String, String> {
    let (applied, latest) = imgapi::db::pg::check(url, REMOTE_CHECK_TIMEOUT)
        .await
        .map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("cannot connect: {e}{cause}")
        })?;
    if applied > latest {
        return Err(format!(
            "{applied} migrations applied, more than this imgapi's {latest}: it was written by a later version"
        ));
    }
    Ok(format!(
        "connects; {applied} of {latest} migrations applied{}",
        if applied < latest {
            " (serve applies the rest)"
        } else {
            ""
        }
    ))
}

/// Whether the database opens for writing with a schema this binary knows.
async fn database(path: &Path) -> Result<String, String> {
    if !path.exists() {
        return Ok("does not exist yet; serve creates it".to_string());
    }
    let p = path.to_path_buf();
    let s = tokio::task::spawn_blocking(move || imgapi::db::check::check(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot open: {e}"))?;
    if s.version > s.latest {
        return Err(format!(
            "schema version {} is newer than this imgapi's ({}): it was written by a later version",
            s.version, s.latest
        ));
    }
    Ok(if s.version < s.latest {
        format!(
            "opens; schema version {} (serve applies migrations {} to {})",
            s.version,
            s.version + 1,
            s.latest
        )
    } else {
        format!("opens; schema version {} (current)", s.version)
    })
}
