//! Ping, AdminGetState and AdminReloadAuthKeys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::extract::Params;
use super::{AppState, json_response};
use crate::config::AuthMode;
use crate::error::{Error, FieldCode, FieldError};
use crate::identity::Caller;

/// Ping: `GET /ping[?error=CODE]`.
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "Ping",
    tag = "ops",
    summary = "Ping",
    params(
        (
            "error" = Option<String>,
            Query,
            description = "Answer with a sample error of this code (any code of docs/errors.md, \
                with or without an `Error` suffix, so any of the statuses below); an unknown code \
                is 422 InvalidParameter.",
        ),
        super::openapi::Account,
        super::openapi::AcceptVersion,
    ),
    responses(
        (status = 200, description = "pong", body = crate::wire::Ping),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 405, response = super::openapi::MethodNotAllowed),
        (status = 409, response = super::openapi::Conflict),
        (status = 410, response = super::openapi::Gone),
        (status = 412, response = super::openapi::PreconditionFailed),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 416, response = super::openapi::RangeNotSatisfiable),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 423, response = super::openapi::Locked),
        (status = 460, response = super::openapi::ChecksumMismatch),
        (status = 500, response = super::openapi::InternalError),
        (status = 501, response = super::openapi::NotAvailable),
        (status = 503, response = super::openapi::StorageIsDown),
        (status = 507, response = super::openapi::InsufficientStorage),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/state",
    operation_id = "AdminGetState",
    tag = "ops",
    summary = "AdminGetState (operators)",
    params(
        super::openapi::Account,
    ),
    responses(
        (status = 200, description = "Server state", body = super::openapi::AdminState),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn admin_get_state(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Response, Error> {
    caller.require_operator()?;
    let count = st.space.image_count().await?;
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
#[utoipa::path(
    post,
    path = "/authkeys/reload",
    operation_id = "AdminReloadAuthKeys",
    tag = "ops",
    summary = "AdminReloadAuthKeys (operators; a no-op: tokens are read per request)",
    params(
        super::openapi::Account,
    ),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn reload_auth_keys(caller: Caller) -> Result<Response, Error> {
    caller.require_operator()?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
