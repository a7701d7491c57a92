//! Import endpoints: AdminImportRemoteImage's answer (with the
//! `workflow-api` header), the job endpoint it points to (`GET /jobs/{uuid}`,
//! in the shape of a workflow job), and GetImageJobs.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{ImageCtx, NoRender, Params};
use super::images::ImageAction;
use crate::error::{Error, FieldCode};
use crate::imports::{TASK, job_json, parse_execution};

/// AdminImportRemoteImage: `POST /images/{uuid}?action=import-remote&source=URL`.
pub(super) async fn import_remote(
    st: &AppState,
    ctx: &ImageCtx<ImageAction>,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    ctx.caller.require_operator()?;
    only(
        &ctx.params,
        &["action", "source", "skip_owner_check", "channel", "account"],
    )?;
    let src = st.imports.source(ctx.params.get("source"))?;
    let skip = ctx.params.bool("skip_owner_check")?.unwrap_or(false);
    let job = st
        .imports
        .import_remote(&ctx.caller, ctx.uuid, src, ctx.channel.initial(), skip)
        .await?;
    let base = match st.imports.workflow_api_url() {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    let body = json!({"image_uuid": job.image_uuid, "job_uuid": job.job_uuid});
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        "workflow-api",
        HeaderValue::from_str(&base).map_err(Error::internal)?,
    );
    Ok(resp)
}

/// `GET /jobs/{uuid}`: one import job. The job uuid is the capability
/// (sdc-clients polls it without credentials, as it polls a WFAPI).
pub async fn get_job(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    params: Params,
) -> Result<Response, Error> {
    only(&params, &[])?;
    let uuid = match uuid::Uuid::parse_str(&raw) {
        Ok(u) if raw.len() == 36 => u,
        _ => return Err(Error::not_found(format!("job \"{raw}\" does not exist"))),
    };
    let job = st.imports.job(uuid).await?;
    Ok(axum::Json(job_json(&job)).into_response())
}

/// GetImageJobs: `GET /images/{uuid}/jobs[?task=…][&execution=…]` (404
/// for an image the caller cannot see, as IMGAPI).
pub async fn image_jobs(
    State(st): State<AppState>,
    ctx: ImageCtx<NoRender>,
) -> Result<Response, Error> {
    check_params(&ctx.params)?;
    let task = ctx.params.get("task");
    let execution = ctx.params.get("execution").filter(|e| !e.is_empty());
    let jobs = match (task, execution) {
        (Some(t), _) if !t.is_empty() && t != TASK => vec![],
        (_, Some(e)) => match parse_execution(e)? {
            Some(x) => st.imports.image_jobs(ctx.uuid, Some(x)).await?,
            None => vec![],
        },
        (_, None) => st.imports.image_jobs(ctx.uuid, None).await?,
    };
    // The image must be visible; operators also see the jobs of an image
    // that is gone (a failed import removed it).
    let operator = ctx.caller.require_operator().is_ok();
    if let Err(e) = st.images.get(&ctx.caller, ctx.uuid).await {
        let any = operator && !st.imports.image_jobs(ctx.uuid, None).await?.is_empty();
        if !any {
            return Err(e);
        }
    }
    let list: Vec<Value> = jobs.iter().map(job_json).collect();
    Ok(axum::Json(list).into_response())
}

/// 422 naming the first parameter not in `known`.
fn only(p: &Params, known: &[&str]) -> Result<(), Error> {
    match p.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Error::invalid_param(
            k,
            FieldCode::Invalid,
            format!("unknown parameter \"{k}\""),
        )),
        None => Ok(()),
    }
}

fn check_params(p: &Params) -> Result<(), Error> {
    for (k, v) in &p.0 {
        match k.as_str() {
            "account" | "channel" | "execution" => {}
            "task" => {
                if !matches!(v.as_str(), "" | TASK | "create-from-vm") {
                    return Err(Error::invalid_param(
                        "task",
                        FieldCode::Invalid,
                        format!("invalid \"task\": \"{v}\""),
                    ));
                }
            }
            k => {
                return Err(Error::invalid_param(
                    k,
                    FieldCode::Invalid,
                    format!("unknown parameter \"{k}\""),
                ));
            }
        }
    }
    Ok(())
}
