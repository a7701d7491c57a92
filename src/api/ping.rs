//! Ping, AdminGetState, AdminReloadAuthKeys, and the IMGAPI endpoints this
//! server does not provide (501 NotAvailable).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::json;

use super::extract::Params;
use super::{AppState, json_response};
use crate::config::AuthMode;
use crate::error::{Error, FieldCode, FieldError};
use crate::identity::Caller;

/// Ping: `GET /ping[?error=CODE]`.
pub async fn ping(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Response, Error> {
    if let Some(code) = p.get("error").filter(|s| !s.is_empty()) {
        return Err(sample_error(code));
    }
    let mut body = json!({"ping": "pong", "version": env!("CARGO_PKG_VERSION"), "imgapi": true});
    if st.config.auth == AuthMode::None || caller.authenticated {
        body["pid"] = json!(std::process::id());
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `?error=X` returns a sample error of that code (IMGAPI's Ping).
fn sample_error(code: &str) -> Error {
    let code = code.strip_suffix("Error").unwrap_or(code);
    let found = Error::catalog().into_iter().find(|e| {
        let c = e.code();
        c == code || c.strip_suffix("Error") == Some(code)
    });
    match found {
        Some(Error::ValidationFailed { .. }) => Error::ValidationFailed {
            message: "boom".into(),
            errors: vec![],
        },
        Some(Error::InvalidParameter { .. }) => Error::InvalidParameter {
            message: "boom".into(),
            errors: vec![],
        },
        // 5xx samples keep their generic messages.
        Some(e) if e.status().is_server_error() => e,
        Some(e) => with_message(e, "boom"),
        None => Error::InvalidParameter {
            message: format!("unknown error code \"{code}\""),
            errors: vec![FieldError::new("error", FieldCode::Missing)],
        },
    }
}

fn with_message(e: Error, m: &str) -> Error {
    let m = m.to_string();
    match e {
        Error::ResourceNotFound(_) => Error::ResourceNotFound(m),
        Error::Upload(_) => Error::Upload(m),
        Error::Download(_) => Error::Download(m),
        Error::ImageHasDependentImages(_) => Error::ImageHasDependentImages(m),
        Error::NotAvailable(_) => Error::NotAvailable(m),
        Error::NotImplemented(_) => Error::NotImplemented(m),
        Error::InvalidVersion(_) => Error::InvalidVersion(m),
        Error::PreconditionFailed(_) => Error::PreconditionFailed(m),
        Error::Unauthorized(_) => Error::Unauthorized(m),
        Error::InvalidHeader(_) => Error::InvalidHeader(m),
        Error::BadRequest(_) => Error::BadRequest(m),
        Error::MethodNotAllowed(_) => Error::MethodNotAllowed(m),
        Error::QuotaExceeded(_) => Error::QuotaExceeded(m),
        Error::TooManyRequests(_) => Error::TooManyRequests(m),
        Error::RangeNotSatisfiable(_) => Error::RangeNotSatisfiable(m),
        e => e,
    }
}

/// AdminGetState: `GET /state` (operators).
pub async fn admin_get_state(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Response, Error> {
    caller.require_operator()?;
    let count = st
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM images", [], |r| r.get::<_, i64>(0))?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "cache": {},
            "log": {"level": "info"},
            "storageTypes": ["local", "manta"],
            "db": {"type": "sqlite", "images": count},
        }),
    ))
}

/// AdminReloadAuthKeys: `POST /authkeys/reload`. Tokens live in SQLite and
/// are read on every request, so there is nothing to reload.
pub async fn reload_auth_keys(caller: Caller) -> Result<Response, Error> {
    caller.require_operator()?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// Endpoints of IMGAPI this server does not provide.
pub async fn not_available(uri: Uri) -> Error {
    Error::NotAvailable(format!(
        "{} is not available on this server (no compute nodes, workflow or remote sources here)",
        uri.path()
    ))
}
