//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::config::AuthMode;
use crate::error::Error;
use crate::identity::Caller;

/// Metrics: request counters and latencies, bytes, uploads by state,
/// registrar jobs by outcome, log events by level.
/// In `auth = "token"` mode only operators may read them, unless
/// `metrics_public = true`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "Metrics",
    tag = "ops",
    summary = "Prometheus metrics",
    description = "Requests by route and status, latencies, bytes in and out, uploads by state, \
        registrar jobs by outcome, images, log events by level.",
    responses(
        (
            status = 200,
            description = "Prometheus text exposition",
            body = String,
            content_type = "text/plain",
        ),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn metrics(State(st): State<AppState>, caller: Caller) -> Result<Response, Error> {
    if st.config.auth == AuthMode::Token && !st.config.metrics_public {
        if !caller.authenticated {
            return Err(Error::Unauthorized(
                "metrics require an operator token (or metrics_public = true)".into(),
            ));
        }
        caller.require_operator()?;
    }
    let crate::db::stats::Counts {
        images,
        uploads,
        jobs,
        image_bytes,
        upload_bytes,
    } = st.space.counts().await?;
    let mut up_samples: Vec<(String, f64)> = ["uploading", "complete", "failed", "registered"]
        .iter()
        .map(|s| (format!("state=\"{s}\""), 0.0))
        .collect();
    for (state, n) in uploads {
        if let Some(x) = up_samples
            .iter_mut()
            .find(|(l, _)| *l == format!("state=\"{state}\""))
        {
            x.1 = n as f64;
        }
    }
    let mut job_samples: Vec<(String, f64)> = ["pending", "done", "failed"]
        .iter()
        .map(|s| (format!("outcome=\"{s}\""), 0.0))
        .collect();
    for (state, n) in jobs {
        if let Some(x) = job_samples
            .iter_mut()
            .find(|(l, _)| *l == format!("outcome=\"{state}\""))
        {
            x.1 = n as f64;
        }
    }
    let text = st.metrics.render(&[
        (
            "imgapi_uploads",
            "Upload sessions by state (uploading = in progress).",
            "gauge",
            up_samples,
        ),
        (
            "imgapi_registrar_jobs",
            "Registrar jobs by outcome.",
            "gauge",
            job_samples,
        ),
        (
            "imgapi_images",
            "Images stored.",
            "gauge",
            vec![(String::new(), images as f64)],
        ),
        (
            "imgapi_image_bytes",
            "Bytes the images keep in the stores (files and icons; no per-account label: see GET /usage).",
            "gauge",
            vec![(String::new(), image_bytes as f64)],
        ),
        (
            "imgapi_upload_bytes",
            "Bytes of unfinished uploads (their Upload-Length).",
            "gauge",
            vec![(String::new(), upload_bytes as f64)],
        ),
    ]);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response())
}
