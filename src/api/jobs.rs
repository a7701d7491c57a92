//! Import endpoints: AdminImportRemoteImage's answer (with the
//! `workflow-api` header), the job endpoint it points to (`GET /jobs/{uuid}`,
//! in the shape of a workflow job), and GetImageJobs. Jobs are rendered
//! through `wire::Job` ([`wire_job`]), the answer through
//! `wire::ImportStarted`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::actions::ImageAction;
use super::extract::{ImageCtx, NoRender, Params};
use crate::db::imports::{Execution, ImportJob};
use crate::error::{Error, FieldCode};
use crate::imports::{TASK, parse_execution};
use crate::wire;

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
                .and_then(|value| value.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    let body = wire::ImportStarted {
        image_uuid: job.image_uuid,
        job_uuid: job.job_uuid,
    };
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        "workflow-api",
        HeaderValue::from_str(&base).map_err(Error::internal)?,
    );
    Ok(resp)
}

/// `GET /jobs/{uuid}`: one import job. The job uuid is the capability
/// (sdc-clients polls it without credentials, as it polls a WFAPI).
#[utoipa::path(
    get,
    path = "/jobs/{uuid}",
    operation_id = "GetJob",
    tag = "imports",
    summary = "An import job, in the shape of a workflow job (what sdc-clients' *AndWait helpers \
        poll)",
    description = "The job uuid is the capability: no credentials are needed, as with a WFAPI.",
    params(
        super::openapi::JobUuid,
    ),
    responses(
        (status = 200, description = "The job", body = crate::wire::Job),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
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
    Ok(axum::Json(wire_job(&job)).into_response())
}

/// GetImageJobs: `GET /images/{uuid}/jobs[?task=…][&execution=…]` (404
/// for an image the caller cannot see, as IMGAPI).
#[utoipa::path(
    get,
    path = "/images/{uuid}/jobs",
    operation_id = "GetImageJobs",
    tag = "imports",
    summary = "GetImageJobs (ListImageJobs)",
    description = "The import jobs of a visible image, newest first. Other parameters: 422 naming \
        them.",
    params(
        super::openapi::GetImageJobsQuery,
        super::openapi::ImageUuid,
        super::openapi::Account,
        super::openapi::ChannelParam,
    ),
    responses(
        (status = 200, description = "Jobs", body = [crate::wire::Job]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
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
    let list: Vec<wire::Job> = jobs.iter().map(wire_job).collect();
    Ok(axum::Json(list).into_response())
}

/// A job as the wire shows it: a workflow job (what sdc-clients polls),
/// with the bytes counter for progress.
fn wire_job(j: &ImportJob) -> wire::Job {
    let finished = matches!(j.execution, Execution::Succeeded | Execution::Failed);
    let chain_results = if finished {
        let error = match &j.error_code {
            Some(code) => wire::JobChainError::Failed {
                name: code.clone(),
                code: code.clone(),
                message: j.error_message.clone().unwrap_or_default(),
            },
            None => wire::JobChainError::None(String::new()),
        };
        let result = match j.execution {
            Execution::Succeeded => format!("Image {} imported", j.image_uuid),
            _ => String::new(),
        };
        vec![wire::JobChainResult {
            name: "import_image".into(),
            result,
            error,
            started_at: j.started_at.clone(),
            finished_at: j.finished_at.clone(),
        }]
    } else {
        vec![]
    };
    wire::Job {
        uuid: j.job_uuid,
        name: TASK.into(),
        task: TASK.into(),
        execution: j.execution.as_str().into(),
        image_uuid: j.image_uuid,
        params: wire::JobParams {
            task: TASK.into(),
            image_uuid: j.image_uuid,
            source: j.source.clone(),
            origins: j
                .plan
                .iter()
                .copied()
                .filter(|u| *u != j.image_uuid)
                .collect(),
            skip_owner_check: j.skip_owner_check,
        },
        chain_results,
        bytes_received: j.bytes_received,
        bytes_total: j.bytes_total,
        created_at: j.created_at.clone(),
        started_at: j.started_at.clone(),
        finished_at: j.finished_at.clone(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use uuid::Uuid;

    fn job(execution: Execution, error: Option<&str>) -> ImportJob {
        let image = Uuid::new_v4();
        ImportJob {
            job_uuid: Uuid::new_v4(),
            image_uuid: image,
            task: TASK.into(),
            source: "https://images.example.com".into(),
            skip_owner_check: true,
            channels: vec![],
            plan: vec![Uuid::new_v4(), image],
            created: vec![],
            execution,
            current_image: None,
            file_offset: 0,
            content_md5: None,
            bytes_received: 10,
            bytes_total: (execution != Execution::Queued).then_some(100),
            attempts: 0,
            error_code: error.map(Into::into),
            error_message: error.map(|e| format!("{e} happened")),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            started_at: (execution != Execution::Queued).then(|| "2026-01-01T00:00:01.000Z".into()),
            finished_at: matches!(execution, Execution::Succeeded | Execution::Failed)
                .then(|| "2026-01-01T00:00:02.000Z".into()),
        }
    }

    /// The wire type renders exactly the JSON the job had before it was a
    /// type ([`job_json`]), key order included.
    #[test]
    fn the_wire_job_is_the_workflow_shaped_json() {
        for j in [
            job(Execution::Queued, None),
            job(Execution::Running, None),
            job(Execution::Succeeded, None),
            job(Execution::Failed, Some("RemoteSourceError")),
        ] {
            let ours = serde_json::to_string(&wire_job(&j)).unwrap();
            let before = serde_json::to_string(&job_json(&j)).unwrap();
            assert_eq!(ours, before);
            let back: wire::Job = serde_json::from_str(&ours).unwrap();
            assert_eq!(back, wire_job(&j));
        }
    }

    /// The job JSON as `imports` built it by hand before `wire::Job`: the
    /// reference the wire type is held to.
    fn job_json(j: &ImportJob) -> Value {
        let origins: Vec<String> = j
            .plan
            .iter()
            .filter(|u| **u != j.image_uuid)
            .map(Uuid::to_string)
            .collect();
        let finished = matches!(j.execution, Execution::Succeeded | Execution::Failed);
        let chain_results = if finished {
            let error = match (&j.error_code, &j.error_message) {
                (Some(code), msg) => json!({
                    "name": code,
                    "code": code,
                    "message": msg.clone().unwrap_or_default(),
                }),
                _ => json!(""),
            };
            let result = match j.execution {
                Execution::Succeeded => format!("Image {} imported", j.image_uuid),
                _ => String::new(),
            };
            vec![json!({
                "name": "import_image",
                "result": result,
                "error": error,
                "started_at": j.started_at,
                "finished_at": j.finished_at,
            })]
        } else {
            vec![]
        };
        json!({
            "uuid": j.job_uuid,
            "name": TASK,
            "task": TASK,
            "execution": j.execution.as_str(),
            "image_uuid": j.image_uuid,
            "params": {
                "task": TASK,
                "image_uuid": j.image_uuid,
                "source": j.source,
                "origins": origins,
                "skip_owner_check": j.skip_owner_check,
            },
            "chain_results": chain_results,
            "bytes_received": j.bytes_received,
            "bytes_total": j.bytes_total,
            "created_at": j.created_at,
            "started_at": j.started_at,
            "finished_at": j.finished_at,
        })
    }
}
