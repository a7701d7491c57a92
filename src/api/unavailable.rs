//! The IMGAPI operations this server never serves (they need compute
//! nodes, a workflow, a Docker or LXD registry, or another datacenter).
//! Each checks its request as the original does, in its order, and answers
//! 501 NotAvailable only to a request the original would have gone on to
//! serve.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::extract::{ImageCtx, ImageUuid, NoRender, Params, json_body, uuid_param};
use crate::error::{Error, FieldCode, FieldError};
use crate::identity::Caller;
use crate::manifest::COMPRESSIONS;

/// IMGAPI's `VALID_STORAGES`.
const STORAGES: [&str; 2] = ["local", "manta"];

/// IMGAPI's default LXD registries (`lxdclient.DEFAULT_REGISTRIES`).
const LXD_REGISTRIES: [&str; 2] = ["images", "ubuntu"];

fn not_available(what: &str) -> Error {
    Error::NotAvailable(format!(
        "{what} is not available on this server (no compute nodes, workflow, registries or \
         other datacenters here)"
    ))
}

fn missing(field: &str, message: &str) -> Error {
    Error::ValidationFailed {
        message: message.into(),
        errors: vec![FieldError::new(field, FieldCode::MissingParameter)],
    }
}

/// AdminCreateImageFromVm: `POST /images?action=create-from-vm` (the
/// request body is the manifest of the image to create).
/// `body` is None when there is none, or it is not a JSON object.
pub(super) fn create_from_vm(
    p: &Params,
    caller: &Caller,
    body: Option<&serde_json::Map<String, Value>>,
) -> Error {
    let check = || -> Result<(), Error> {
        let vm = p
            .get("vm_uuid")
            .ok_or_else(|| missing("vm_uuid", "missing 'vm_uuid' parameter"))?;
        if uuid_param("vm_uuid", vm).is_err() {
            return Err(Error::invalid_param(
                "vm_uuid",
                FieldCode::Invalid,
                format!("invalid 'vm_uuid': not a UUID: '{vm}'"),
            ));
        }
        if let Some(v) = p.get("incremental")
            && !matches!(v, "true" | "false")
        {
            return Err(Error::invalid_param(
                "incremental",
                FieldCode::Invalid,
                format!("invalid value for \"incremental\" param: \"{v}\" is not a boolean"),
            ));
        }
        if let Some(d) = p.get("max_origin_depth") {
            // JavaScript's Number(): blank is 0.
            let t = d.trim();
            let n = if t.is_empty() {
                Some(0.0)
            } else {
                t.parse::<f64>().ok().filter(|n| !n.is_nan())
            };
            match n {
                None => {
                    return Err(Error::invalid_param(
                        "max_origin_depth",
                        FieldCode::Invalid,
                        format!("max_origin_depth query param, \"{d}\", is not a number"),
                    ));
                }
                Some(n) if n < 2.0 => {
                    return Err(Error::invalid_param(
                        "max_origin_depth",
                        FieldCode::Invalid,
                        format!("max_origin_depth query param, {d}, must be greater than 1"),
                    ));
                }
                Some(_) => {}
            }
        }
        let Some(body) = body else {
            return Err(missing("body", "missing request body (image manifest)"));
        };
        if let (Some(a), Some(owner)) = (caller.account, body.get("owner"))
            && owner.as_str() != Some(a.to_string().as_str())
        {
            return Err(Error::invalid_param(
                "owner",
                FieldCode::Invalid,
                format!("invalid owner: given owner, {owner}, does not match account, \"{a}\""),
            ));
        }
        Ok(())
    };
    match check() {
        Err(e) => e,
        Ok(()) => Error::NotAvailable("custom image creation is not currently available".into()),
    }
}

/// AdminImportDockerImage: `POST /images?action=import-docker-image`
/// (operators; `repo` and one of `tag` or `digest`).
pub(super) fn import_docker_image(p: &Params, caller: &Caller) -> Error {
    let check = || -> Result<(), Error> {
        caller.require_operator()?;
        let repo = p.get("repo");
        let tag = p.get("tag").filter(|t| !t.is_empty());
        let digest = p.get("digest").filter(|d| !d.is_empty());
        let mut errs = Vec::new();
        if repo.is_none() {
            errs.push(FieldError::new("repo", FieldCode::MissingParameter));
        }
        match (tag, digest) {
            (None, None) => errs.push(FieldError::msg(
                "tag",
                FieldCode::MissingParameter,
                "one of \"tag\" or \"digest\" is required",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::msg(
                "digest",
                FieldCode::Invalid,
                "cannot specify both \"tag\" and \"digest\"",
            )),
            _ => {}
        }
        if !errs.is_empty() {
            return Err(Error::ValidationFailed {
                message: "missing parameters".into(),
                errors: errs,
            });
        }
        let reference = match (tag, digest) {
            (Some(t), _) => format!("{}:{t}", repo.unwrap_or_default()),
            (None, d) => format!("{}@{}", repo.unwrap_or_default(), d.unwrap_or_default()),
        };
        docker_reference(&reference).map_err(|m| Error::ValidationFailed {
            message: m,
            errors: vec![FieldError::new("repo", FieldCode::Invalid)],
        })
    };
    match check() {
        Err(e) => e,
        Ok(()) => not_available("action \"import-docker-image\""),
    }
}

/// AdminImportLxdImage: `POST /images?action=import-lxd-image` (operators;
/// `alias=REGISTRY:IMAGE`).
pub(super) fn import_lxd_image(p: &Params, caller: &Caller) -> Error {
    let check = || -> Result<(), Error> {
        caller.require_operator()?;
        let alias = p
            .get("alias")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| missing("alias", "missing parameters"))?;
        let repo = match alias.find(':') {
            Some(i) if i >= 1 => &alias[..i],
            _ => {
                return Err(Error::InvalidParameter {
                    message: "alias must be in the format \"registry:image\"".into(),
                    errors: vec![FieldError::new("alias", FieldCode::InvalidParameter)],
                });
            }
        };
        if !LXD_REGISTRIES.contains(&repo) {
            return Err(Error::invalid_param(
                "alias",
                FieldCode::Invalid,
                format!(
                    "No registry found for \"{repo}\" - valid registries are \"{}\"",
                    LXD_REGISTRIES.join(", ")
                ),
            ));
        }
        Ok(())
    };
    match check() {
        Err(e) => e,
        Ok(()) => not_available("action \"import-lxd-image\""),
    }
}

/// ImportImageFromDatacenter: `POST /images/{uuid}?action=import-from-datacenter`
/// (`account`, `datacenter`). No other datacenter is configured here, so
/// every datacenter is refused, as the original refuses one it has no
/// IMGAPI URL for: this action never reaches 501.
pub(super) fn import_from_datacenter(p: &Params, caller: &Caller) -> Error {
    let Some(_) = caller.account else {
        return Error::ValidationFailed {
            message: "invalid image \"account\" (not a UUID): undefined".into(),
            errors: vec![FieldError::new("account", FieldCode::Invalid)],
        };
    };
    let Some(dc) = p.get("datacenter") else {
        return missing("datacenter", "missing datacenter parameter");
    };
    Error::ValidationFailed {
        message: format!("datacenter \"{dc}\" is not supported, valid datacenters names are: "),
        errors: vec![FieldError::new("datacenter", FieldCode::Invalid)],
    }
}

/// AddImageFileFromUrl: `POST /images/{uuid}/file/from-url`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/file/from-url",
    operation_id = "AddImageFileFromUrl",
    tag = "not-available",
    summary = "AddImageFileFromUrl (checked, then 501: not provided)",
    description = "Checked as IMGAPI does, in its order: the image (404), its owner (422 \
        NotImageOwner), not activated (422 ImageFilesImmutable), `compression` (422), the \
        body's `file_url` (422; https only), `storage` (422). A request that passes is 501 \
        NotAvailable: this server does not download files from URLs.",
    params(
        super::openapi::ImageUuid,
        ("compression" = Option<String>, Query, description = "gzip, bzip2, xz or none"),
        ("sha1" = Option<String>, Query),
        ("storage" = Option<String>, Query, description = "local or manta (operators)"),
        super::openapi::Account,
        super::openapi::ChannelParam,
    ),
    request_body(content = Object, description = "`{\"file_url\": \"https://...\"}`"),
    responses(
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 501, response = super::openapi::NotAvailable),
    ),
)]
pub async fn add_image_file_from_url(
    State(st): State<AppState>,
    ctx: ImageCtx<NoRender>,
    body: Body,
) -> Result<Response, Error> {
    let (caller, p) = (&ctx.caller, &ctx.params);
    caller.require_auth()?;
    let img = st.images.get(caller, ctx.uuid).await?;
    caller.check_owner(&img)?;
    let body = json_body(body).await?;
    if img.activated {
        return Err(Error::ImageFilesImmutable(img.uuid));
    }
    match p.get("compression").filter(|c| !c.is_empty()) {
        None => {
            return Err(Error::invalid_param(
                "compression",
                FieldCode::Missing,
                "missing \"compression\"",
            ));
        }
        Some(c) if !COMPRESSIONS.contains(&c) => {
            return Err(Error::invalid_param(
                "compression",
                FieldCode::Invalid,
                format!(
                    "invalid compression \"{c}\" (must be one of {})",
                    COMPRESSIONS.join(", ")
                ),
            ));
        }
        Some(_) => {}
    }
    match body.get("file_url") {
        None => {
            return Err(Error::invalid_param(
                "file_url",
                FieldCode::Missing,
                "missing \"file_url\" field from request body",
            ));
        }
        Some(u) if !u.as_str().is_some_and(|u| u.starts_with("https:")) => {
            return Err(Error::invalid_param(
                "file_url",
                FieldCode::Invalid,
                "Only URLs using the https: scheme are supported",
            ));
        }
        Some(_) => {}
    }
    if let Some(s) = p.get("storage").filter(|s| !s.is_empty()) {
        if caller.account.is_some() {
            return Err(Error::InvalidParameter {
                message: format!("invalid storage \"{s}\""),
                errors: vec![FieldError::msg(
                    "storage",
                    FieldCode::NotAllowed,
                    "Parameter cannot be specified by non-operators",
                )],
            });
        }
        if !STORAGES.contains(&s) {
            return Err(Error::invalid_param(
                "storage",
                FieldCode::Invalid,
                format!(
                    "invalid storage \"{s}\" (must be one of {})",
                    STORAGES.join(", ")
                ),
            ));
        }
    }
    Err(not_available("AddImageFileFromUrl"))
}

/// AdminPushDockerImage: `POST /images/{uuid}/push`.
#[utoipa::path(
    post,
    path = "/images/{uuid}/push",
    operation_id = "AdminPushDockerImage",
    tag = "not-available",
    summary = "AdminPushDockerImage (checked, then 501: not provided)",
    description = "Checked as IMGAPI does, in its order: the body (400), the image (404), its \
        owner (422 NotImageOwner), a docker image (422 ValidationFailed `type`), the body's \
        `manifest_str` and `repoAndTag` (422). A request that passes is 501 NotAvailable: \
        this server pushes to no Docker registry.",
    params(
        super::openapi::ImageUuid,
        ("repoAndTag" = Option<String>, Query, description = "[INDEX/]REPO[:TAG|@DIGEST]"),
        super::openapi::Account,
    ),
    request_body(content = Object, description = "`{\"manifest_str\": \"...\"}`"),
    responses(
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 404, response = super::openapi::NotFound),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::Unprocessable),
        (status = 500, response = super::openapi::InternalError),
        (status = 501, response = super::openapi::NotAvailable),
    ),
)]
pub async fn push_docker_image(
    State(st): State<AppState>,
    caller: Caller,
    ImageUuid(uuid): ImageUuid,
    p: Params,
    body: Body,
) -> Result<Response, Error> {
    caller.require_auth()?;
    let body = json_body(body).await?;
    let img = st.images.get(&caller, uuid).await?;
    caller.check_owner(&img)?;
    if img.type_ != "docker" {
        return Err(Error::ValidationFailed {
            message: "image is not a docker image".into(),
            errors: vec![FieldError::new("type", FieldCode::Invalid)],
        });
    }
    let Some(manifest) = body.get("manifest_str").and_then(Value::as_str) else {
        return Err(missing(
            "manifest_str",
            "missing \"manifest_str\" in the request body",
        ));
    };
    let Some(reference) = p.get("repoAndTag") else {
        return Err(missing("repoAndTag", "missing \"repoAndTag\" parameter"));
    };
    docker_reference(reference).map_err(|m| Error::ValidationFailed {
        message: m,
        errors: vec![FieldError::new("repoAndTag", FieldCode::Invalid)],
    })?;
    if serde_json::from_str::<Value>(manifest).is_err() {
        return Err(Error::ValidationFailed {
            message: "JSON parse of manifest_str failed".into(),
            errors: vec![FieldError::new("manifest_str", FieldCode::Invalid)],
        });
    }
    Err(not_available("AdminPushDockerImage"))
}

/// Check a Docker reference, `[INDEX/]REPO[:TAG|@DIGEST]`, with the rules of
/// the registry client the original uses (node-docker-registry-client's
/// `parseRepoAndRef`); the error is its message.
fn docker_reference(arg: &str) -> Result<(), String> {
    // The tag or digest: after the last `@`, else after a last `:` that
    // follows the last `/`.
    let repo = match arg.rfind('@') {
        Some(i) => &arg[..i],
        None => match (arg.rfind(':'), arg.rfind('/')) {
            (Some(c), s) if s.is_none_or(|s| c > s) => &arg[..c],
            _ => arg,
        },
    };
    let looks_like_host = |s: &str| s.contains('.') || s.contains(':') || s == "localhost";
    let remote = if let Some(p) = repo.find("://") {
        let Some(slash) = repo[p + 3..].find('/').map(|i| i + p + 3) else {
            return Err(format!(
                "invalid repository name, no \"/REPO\" after hostame: {repo}"
            ));
        };
        docker_index(&repo[..slash])?;
        &repo[slash + 1..]
    } else {
        match repo.split_once('/') {
            Some((host, rest)) if looks_like_host(host) => {
                docker_index(host)?;
                rest
            }
            _ => repo,
        }
    };
    let name = match remote.split_once('/') {
        Some((ns, name)) => {
            if ns.len() < 2 || ns.len() > 255 {
                return Err(format!(
                    "invalid repository namespace, must be between 2 and 255 characters: {ns}"
                ));
            }
            if !ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            {
                return Err(format!(
                    "invalid repository namespace, may only contain [a-z0-9._-] characters: {ns}"
                ));
            }
            if ns.starts_with('-') && ns.ends_with('-') {
                return Err(format!(
                    "invalid repository namespace, cannot start or end with a hypen: {ns}"
                ));
            }
            if ns.contains("--") {
                return Err(format!(
                    "invalid repository namespace, cannot contain consecutive hyphens: {ns}"
                ));
            }
            name
        }
        None => remote,
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_/.-".contains(c))
    {
        return Err(format!(
            "invalid repository name, may only contain [a-z0-9_/.-] characters: {name}"
        ));
    }
    Ok(())
}

/// Check a Docker index name or URL (`parseIndex`).
fn docker_index(arg: &str) -> Result<(), String> {
    let (scheme, mut name) = match arg.find("://") {
        Some(i) => {
            let scheme = &arg[..i];
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "invalid index scheme, must be \"http\" or \"https\": {arg}"
                ));
            }
            (Some(scheme), &arg[i + 3..])
        }
        None => (None, arg),
    };
    if name.is_empty() {
        return Err(format!("invalid index, empty host: {arg}"));
    }
    if !(name.contains('.') || name.contains(':') || name == "localhost") {
        return Err(format!(
            "invalid index, \"{name}\" does not look like a valid host: {arg}"
        ));
    }
    name = name.strip_suffix('/').unwrap_or(name);
    if name.contains('/') {
        return Err(format!("invalid index, trailing repo: {arg}"));
    }
    let official = name == "docker.io" || name == "index.docker.io";
    if official && scheme == Some("http") {
        return Err(format!(
            "invalid index, HTTP to official index is disallowed: {arg}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::docker_reference;

    #[test]
    fn docker_references() {
        for ok in [
            "busybox",
            "busybox:latest",
            "google/python:3.3",
            "docker.io/ubuntu",
            "localhost:5000/blarg",
            "http://localhost:5000/blarg:latest",
            "alpine@sha256:fb9f16730ac6316afa4d97caa5130219927bfcecf0b0",
        ] {
            assert_eq!(docker_reference(ok), Ok(()), "{ok}");
        }
        for (bad, msg) in [
            ("BusyBox", "invalid repository name"),
            ("a/busybox", "invalid repository namespace, must be between"),
            ("Ab/busybox", "may only contain [a-z0-9._-]"),
            ("ab--c/busybox", "consecutive hyphens"),
            ("ftp://host.x/r", "invalid index scheme"),
            ("http://docker.io/r", "HTTP to official index"),
            ("https://host.x", "no \"/REPO\""),
        ] {
            let e = docker_reference(bad).unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
