//! Where the client talks to and how: server URL, token, account, output
//! mode, retry and stall settings (flags, else `IMGAPI_*` environment
//! variables), and the directory of resumable-transfer state.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::error::{ClientError, Result};

/// Options shared by every client verb.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "IMGAPI_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token (servers with auth = "token").
    #[arg(long, global = true, env = "IMGAPI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Act on behalf of this account uuid (`?account=`).
    #[arg(long, global = true, env = "IMGAPI_ACCOUNT", hide_env_values = true)]
    pub account: Option<String>,
    /// Print JSON for scripts instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Retries of a failed request (connection errors, timeouts, 5xx).
    #[arg(
        long,
        global = true,
        env = "IMGAPI_RETRIES",
        hide_env_values = true,
        default_value_t = 8
    )]
    pub retries: u32,
    /// Seconds without progress after which a transfer is aborted and
    /// resumed from the server's acknowledged offset.
    #[arg(
        long,
        global = true,
        env = "IMGAPI_STALL_TIMEOUT",
        hide_env_values = true,
        default_value_t = 30
    )]
    pub stall_timeout: u64,
}

/// The resolved connection settings.
#[derive(Debug, Clone)]
pub struct Conn {
    pub url: String,
    pub token: Option<String>,
    pub account: Option<String>,
    pub json: bool,
    pub retries: u32,
    pub stall: Duration,
}

impl ConnArgs {
    pub fn resolve(&self) -> Result<Conn> {
        let url = self.url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            ClientError::Usage(format!(
                "invalid --url (IMGAPI_URL) \"{url}\": {e}; give the server's address, \
                     e.g. http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::Usage(format!(
                "invalid --url (IMGAPI_URL) \"{url}\": the scheme must be http or https, \
                 e.g. http://127.0.0.1:8080"
            )));
        }
        if self.stall_timeout == 0 {
            return Err(ClientError::Usage(
                "--stall-timeout must be at least 1 second".into(),
            ));
        }
        Ok(Conn {
            url,
            token: self.token.clone().filter(|t| !t.is_empty()),
            account: self.account.clone().filter(|a| !a.is_empty()),
            json: self.json,
            retries: self.retries,
            stall: Duration::from_secs(self.stall_timeout),
        })
    }
}

/// The directory of resumable-transfer state: `$IMGAPI_STATE_DIR`, else
/// `$XDG_STATE_HOME/imgapi`, else `~/.local/state/imgapi`.
pub fn state_dir() -> Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = nonempty("IMGAPI_STATE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = nonempty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(d).join("imgapi"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(PathBuf::from(h).join(".local/state/imgapi"));
    }
    Err(ClientError::Usage(
        "no state directory: set IMGAPI_STATE_DIR or HOME".into(),
    ))
}
