//! `GET /openapi.json`: the hand-written OpenAPI 3 description of every
//! endpoint (`docs/openapi.json`; `tests/openapi.rs` keeps it in sync with
//! the router).

use axum::http::header;
use axum::response::IntoResponse;

/// The document, compiled in.
pub const SPEC: &str = include_str!("../../docs/openapi.json");

/// `GET /openapi.json`.
pub async fn spec() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC)
}
