//! `GET /openapi.json`: the OpenAPI 3 description of every endpoint,
//! derived from the code. Each path comes from its handler's
//! `#[utoipa::path]` (in the handler's file; routes whose handler serves
//! several live in `openapi/aliases.rs`), listed in [`ApiDoc`]; schemas come
//! from `crate::wire` (utoipa `ToSchema`) and `openapi/schemas.rs`; shared
//! parameters and responses from `openapi/params.rs` and
//! `openapi/responses.rs`. utoipa writes OpenAPI 3.1; [`document`] serves
//! it in 3.0.3 form. `docs/openapi.json` is a snapshot that
//! `tests/openapi.rs` checks (`UPDATE_OPENAPI=1` rewrites it).

mod aliases;
mod params;
mod responses;
mod schemas;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub(crate) use params::*;
pub(crate) use responses::*;
pub(crate) use schemas::*;

use super::{
    actions, channels, create, datasets, files, images, jobs, metrics, ping, unavailable, uploads,
    usage,
};
use crate::wire;

/// The document as served: pretty JSON, with a final newline.
pub static SPEC: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&document()).expect("the document serializes") + "\n"
});

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "OpenApi",
    tag = "ops",
    summary = "This document",
    responses(
        (status = 200, description = "OpenAPI 3 description of every endpoint", body = Object),
        (status = 400, response = BadRequest),
    ),
)]
pub async fn spec() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC.as_str())
}

/// The whole API: every operation, the schemas and the shared responses.
#[derive(OpenApi)]
#[openapi(
    info(title = "imgapi", description = include_str!("openapi/intro.md")),
    servers((url = "/")),
    tags(
        (name = "ops", description = "Ping, metrics, admin state, this document"),
        (name = "images", description = "IMGAPI images: manifests, actions, ACLs"),
        (name = "files", description = "Image files and icons"),
        (name = "uploads", description = "tus 1.0.0 resumable uploads (phase one of the pipeline)"),
        (name = "datasets", description = "SDC 6.5 DSAPI read endpoints"),
        (name = "imports", description = "Import jobs (AdminImportRemoteImage) and their workflow-shaped job endpoint"),
        (name = "not-available", description = "IMGAPI endpoints this server does not provide: 501 NotAvailable"),
    ),
    paths(
        ping::ping,
        metrics::metrics,
        ping::admin_get_state,
        ping::reload_auth_keys,
        spec,
        channels::list,
        images::list,
        create::create,
        images::get_image,
        actions::action,
        images::delete,
        files::add_file,
        files::get_file,
        unavailable::add_image_file_from_url,
        files::add_icon,
        aliases::add_image_icon_post,
        files::get_icon,
        files::delete_icon,
        images::acl,
        images::clone_image,
        jobs::image_jobs,
        jobs::get_job,
        unavailable::push_docker_image,
        uploads::list,
        uploads::create,
        uploads::options,
        uploads::get_data,
        uploads::head,
        uploads::patch,
        uploads::put,
        uploads::delete,
        aliases::upload_options,
        uploads::info,
        datasets::list,
        datasets::get,
        datasets::file,
        usage::list,
        usage::get,
    ),
    components(
        schemas(
            wire::ErrorBody,
            wire::FieldError,
            wire::Ping,
            AdminState,
            wire::ImageFile,
            wire::Image,
            wire::Usage,
            wire::AccountUsage,
            wire::CountBytes,
            wire::Quota,
            wire::RegistrationFile,
            Manifest,
            ImageActionBody,
            wire::ExportResult,
            wire::UploadInfo,
            Dataset,
            wire::Channel,
            Binary,
            wire::Job,
            wire::ImportStarted,
        ),
        responses(
            ImageResponse,
            NotModified,
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            Gone,
            PreconditionFailed,
            PayloadTooLarge,
            UnsupportedMediaType,
            RangeNotSatisfiable,
            Unprocessable,
            Locked,
            ChecksumMismatch,
            InternalError,
            NotAvailable,
            StorageIsDown,
            InsufficientStorage,
            TusNoContent,
        ),
    ),
    modifiers(&BearerToken),
)]
pub struct ApiDoc;

/// The `bearer` security scheme (auth = "token").
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "Only with `auth = \"token\"`: a token from `imgapi account create`. Without a \
                 token a caller sees only active public images and may not write.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document in OpenAPI 3.0.3 form (utoipa writes 3.1): nullability as
/// `nullable`, single examples as `example`; an optional property or a
/// parameter is absent rather than `null`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    doc["openapi"] = Value::from("3.0.3");
    to_openapi_30(&mut doc);
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.values_mut().for_each(optional_means_absent);
    }
    let ops = doc
        .pointer_mut("/paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in ops {
        absent_not_null(op);
        camel_case_links(op);
    }
    doc
}

/// A parameter or an optional request body is absent, never `null`: no
/// `nullable` on their schemas (utoipa writes one for an `Option`).
fn absent_not_null(op: &mut Value) {
    for p in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(Value::Object(s)) = p.get_mut("schema") {
            s.remove("nullable");
        }
    }
    let bodies = op
        .pointer_mut("/requestBody/content")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|c| c.values_mut());
    for media in bodies {
        if let Some(s) = media.get_mut("schema") {
            unwrap_nullable(s);
        }
    }
}

/// `{nullable: true, allOf: [X]}` → `X`.
fn unwrap_nullable(s: &mut Value) {
    let one = match s.as_object() {
        Some(m) if m.len() == 2 && m.get("nullable") == Some(&Value::Bool(true)) => {
            match m.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([one]) => one.clone(),
                _ => return,
            }
        }
        _ => return,
    };
    *s = one;
}

/// utoipa 5 writes a response link's fields in snake case
/// (`operation_id`); OpenAPI names them `operationId`, `operationRef`,
/// `requestBody`.
fn camel_case_links(op: &mut Value) {
    let links = op
        .get_mut("responses")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|r| r.values_mut())
        .filter_map(|r| r.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|l| l.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.into(), v);
            }
        }
    }
}

/// The wire types omit an optional field rather than send `null`
/// (`skip_serializing_if`): an optional property is not nullable.
fn optional_means_absent(schema: &mut Value) {
    let required: Vec<Value> = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (name, p) in props.iter_mut() {
            if !required.iter().any(|r| r.as_str() == Some(name.as_str()))
                && let Some(p) = p.as_object_mut()
            {
                p.remove("nullable");
                if let Some(Value::Array(one)) = p.get("allOf").cloned()
                    && one.len() == 1
                    && p.len() == 1
                {
                    *p = one[0].as_object().cloned().unwrap_or_default();
                }
            }
        }
    }
}

/// Rewrite 3.1 nullability (`type: [T, "null"]`, `oneOf: [{type: null}, X]`)
/// as 3.0's `nullable: true`, and drop `propertyNames` (not in 3.0).
fn to_openapi_30(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(types)) = m.get("type") {
                let non_null: Vec<Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() < types.len() {
                    m.insert("nullable".into(), Value::Bool(true));
                }
                match non_null.as_slice() {
                    [one] => {
                        m.insert("type".into(), one.clone());
                    }
                    [] => {
                        m.remove("type");
                    }
                    _ => {
                        m.insert("type".into(), Value::Array(non_null));
                    }
                }
            }
            for key in ["oneOf", "anyOf"] {
                let Some(Value::Array(alts)) = m.get(key) else {
                    continue;
                };
                let is_null = |a: &Value| a.get("type").and_then(Value::as_str) == Some("null");
                if !alts.iter().any(is_null) {
                    continue;
                }
                let rest: Vec<Value> = alts.iter().filter(|a| !is_null(a)).cloned().collect();
                m.remove(key);
                m.insert("nullable".into(), Value::Bool(true));
                match rest.as_slice() {
                    [one] => {
                        m.insert("allOf".into(), Value::Array(vec![one.clone()]));
                    }
                    _ => {
                        m.insert(key.into(), Value::Array(rest));
                    }
                }
            }
            m.remove("propertyNames");
            // A schema's `examples: [x]` (3.1) is 3.0's `example: x`; the
            // named `examples` of a parameter or a content are a map.
            if let Some(Value::Array(ex)) = m.get("examples") {
                let first = ex.first().cloned();
                m.remove("examples");
                if let Some(x) = first {
                    m.insert("example".into(), x);
                }
            }
            // An inline schema wrapped alone in oneOf/allOf (utoipa's form
            // for `inline` fields) is merged into its property.
            for key in ["oneOf", "allOf"] {
                if let Some(Value::Array(one)) = m.get(key)
                    && let [Value::Object(inner)] = one.as_slice()
                    && !inner.contains_key("$ref")
                {
                    let inner = inner.clone();
                    m.remove(key);
                    for (k, v) in inner {
                        if k != "description" {
                            m.insert(k, v);
                        }
                    }
                }
            }
            m.values_mut().for_each(to_openapi_30);
        }
        Value::Array(a) => a.iter_mut().for_each(to_openapi_30),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullability_is_written_the_30_way() {
        let mut v = serde_json::json!({"properties": {
            "a": {"type": ["string", "null"]},
            "b": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/X"}]}}});
        to_openapi_30(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"nullable": true, "allOf": [{"$ref": "#/components/schemas/X"}]}}})
        );
    }

    #[test]
    fn the_wire_schemas_are_named_as_the_document_names_them() {
        let doc = document();
        let s = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "Error",
            "FieldError",
            "Ping",
            "Image",
            "ImageFile",
            "Upload",
            "FileRef",
            "Channel",
            "ExportResult",
            "Job",
            "ImportStarted",
        ] {
            assert!(s.contains_key(name), "{name} in {:?}", s.keys());
        }
    }
}
