//! The client's errors and the process exit code each maps to: 1 the server
//! refused (its error code is printed), 2 usage, 3 transport failure after
//! retries, 4 downloaded or uploaded bytes failed verification.

use std::process::ExitCode;

use super::types::ErrorBody;

/// Why a client verb failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments or input files (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server answered with an IMGAPI error (exit 1).
    #[error("{}: {} (HTTP {status})", body.code, body.message)]
    Server { status: u16, body: ErrorBody },
    /// The server could not be reached, or kept failing, after the retries
    /// (exit 3).
    #[error("{0}")]
    Transport(String),
    /// Bytes did not match their digests (exit 4).
    #[error("{0}")]
    Verify(String),
    /// A local file could not be read or written (exit 2).
    #[error("{0}")]
    Local(String),
    /// An error and what to do next (printed on a line of its own; the
    /// exit code is the error's).
    #[error("{err}")]
    Hinted { err: Box<ClientError>, hint: String },
    /// Errors already shown one by one (import-dir's images): a summary,
    /// and the exit code of the first.
    #[error("{summary}")]
    Several {
        first: Box<ClientError>,
        summary: String,
    },
}

pub type Result<T> = std::result::Result<T, ClientError>;

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Server { .. } => 1,
            ClientError::Usage(_) | ClientError::Local(_) => 2,
            ClientError::Transport(_) => 3,
            ClientError::Verify(_) => 4,
            ClientError::Hinted { err, .. } => err.exit_code(),
            ClientError::Several { first, .. } => first.exit_code(),
        }
    }

    /// This error with what to do next (an error that has one keeps it: the
    /// nearer the failure, the more precise).
    pub fn hint(self, hint: impl Into<String>) -> ClientError {
        match self {
            e @ ClientError::Hinted { .. } => e,
            e => ClientError::Hinted {
                err: Box::new(e),
                hint: hint.into(),
            },
        }
    }

    /// The error without its hint.
    pub fn inner(&self) -> &ClientError {
        match self {
            ClientError::Hinted { err, .. } => err,
            e => e,
        }
    }

    /// The server's refusal, if this is one.
    pub fn server(&self) -> Option<(u16, &ErrorBody)> {
        match self.inner() {
            ClientError::Server { status, body } => Some((*status, body)),
            _ => None,
        }
    }

    fn hint_text(&self) -> Option<&str> {
        match self {
            ClientError::Hinted { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// Print to stderr (with the error's field details) and give the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            let mut v = match self.inner() {
                ClientError::Server { status, body } => serde_json::json!({
                    "error": {"status": status, "code": body.code, "message": body.message,
                              "errors": body.errors.iter().flatten().map(|e| serde_json::json!({
                                  "field": e.field, "code": e.code, "message": e.message,
                              })).collect::<Vec<_>>()}
                }),
                other => serde_json::json!({"error": {"message": other.to_string()}}),
            };
            if let Some(h) = self.hint_text() {
                v["error"]["hint"] = h.into();
            }
            eprintln!("{v}");
        } else {
            eprint!("{}", self.text("imgapi: "));
        }
        ExitCode::from(self.exit_code())
    }

    /// The error as printed: `prefix` and the error, the server's field
    /// details, and the hint (each line ends with a newline).
    pub fn text(&self, prefix: &str) -> String {
        use std::fmt::Write;
        let mut s = format!("{prefix}{self}\n");
        if let ClientError::Server { body, .. } = self.inner() {
            for e in body.errors.iter().flatten() {
                let _ = match e.message.as_deref() {
                    Some(m) => writeln!(s, "  {}: {} {m}", e.field, e.code),
                    None => writeln!(s, "  {}: {}", e.field, e.code),
                };
            }
        }
        if let Some(h) = self.hint_text() {
            let _ = writeln!(s, "imgapi: {h}");
        }
        s
    }
}

pub fn local(what: impl std::fmt::Display, e: impl std::fmt::Display) -> ClientError {
    ClientError::Local(format!("{what}: {e}"))
}
