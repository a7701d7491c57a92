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
    let body = crate::wire::Ping {
        ping: "pong".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        imgapi: true,
        pid: (st.config.auth == AuthMode::None || caller.authenticated).then(std::process::id),
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// `?error=X` returns a sample error of that code (IMGAPI's Ping); 5xx
/// samples keep their generic messages.
fn sample_error(code: &str) -> Error {
    let code = code.strip_suffix("Error").unwrap_or(code);
    Error::sample(code, "boom")
        .or_else(|| Error::sample(&format!("{code}Error"), "boom"))
        .unwrap_or_else(|| Error::InvalidParameter {
            message: format!("unknown error code \"{code}\""),
            errors: vec![FieldError::new("error", FieldCode::Missing)],
        })
}

/// AdminGetState: `GET /state` (operators).
pub async fn admin_get_state(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Response, Error> {
    caller.require_operator()?;
    let count = st.db.read(crate::db::stats::image_count).await?;
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
