//! Usage endpoints: `GET /usage` (every account by bytes, operators) and
//! `GET /usage/{account}` (one account's usage and quotas).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::Params;
use super::{AppState, json_response};
use crate::error::{Error, FieldCode};
use crate::identity::Caller;
use crate::space::MAX_ACCOUNTS;

/// Refuse a parameter other than `allowed`.
fn only(p: &Params, allowed: &[&str], route: &str) -> Result<(), Error> {
    match p.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) => Err(Error::invalid_param(
            k,
            FieldCode::Invalid,
            format!(
                "unknown parameter \"{k}\" ({route} takes {})",
                allowed.join(", ")
            ),
        )),
    }
}

/// Every account with images or unfinished uploads, by bytes.
#[utoipa::path(
    get,
    path = "/usage",
    operation_id = "ListUsage",
    tag = "ops",
    summary = "Every account's usage, largest first (operators)",
    description = "Accounts with images or unfinished uploads, sorted by bytes (images' files and \
        icons plus unfinished uploads), at most `limit` (1 to 1000, default 1000).",
    params(
        ("limit" = Option<u32>, Query, description = "At most this many accounts (1 to 1000)"),
        super::openapi::Account,
    ),
    responses(
        (status = 200, description = "The accounts", body = [crate::wire::AccountUsage]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Response, Error> {
    only(&p, &["limit", "account"], "GET /usage")?;
    let limit = match p.get("limit").filter(|s| !s.is_empty()) {
        None => MAX_ACCOUNTS,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_ACCOUNTS).contains(n))
            .ok_or_else(|| {
                Error::invalid_param(
                    "limit",
                    FieldCode::Invalid,
                    format!("invalid limit \"{l}\": a number from 1 to {MAX_ACCOUNTS}"),
                )
            })?,
    };
    let out = st.space.by_account(&caller, limit).await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// One account's usage and quotas.
#[utoipa::path(
    get,
    path = "/usage/{account}",
    operation_id = "GetUsage",
    tag = "ops",
    summary = "One account's usage and quotas (operators, or the account itself)",
    params(
        ("account" = String, Path, description = "The account's uuid or login"),
    ),
    responses(
        (status = 200, description = "The account's usage", body = crate::wire::Usage),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(who): Path<String>,
    p: Params,
) -> Result<Response, Error> {
    only(&p, &["account"], "GET /usage/{account}")?;
    let out = st.space.usage(&caller, &who).await?;
    Ok(json_response(StatusCode::OK, &out))
}
