//! `GET /openapi.json`: the OpenAPI 3 description of every endpoint
//! (`docs/openapi.json`, compiled in). Its `components.schemas` for the wire
//! types are derived from `crate::wire` (utoipa `ToSchema`) by
//! [`with_wire_schemas`]; the paths are still written by hand.
//! `tests/openapi.rs` checks the file is current (`UPDATE_OPENAPI=1`
//! rewrites it) and that its paths are exactly the router's.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use utoipa::OpenApi;

use crate::wire;

/// The document, compiled in.
pub const SPEC: &str = include_str!("../../docs/openapi.json");

/// `GET /openapi.json`.
pub async fn spec() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SPEC)
}

/// The wire types whose schemas the document carries.
#[derive(OpenApi)]
#[openapi(components(schemas(
    wire::ErrorBody,
    wire::FieldError,
    wire::Ping,
    wire::Image,
    wire::ImageFile,
    wire::UploadInfo,
    wire::RegistrationFile,
    wire::Channel,
    wire::ExportResult,
)))]
struct WireDoc;

/// The schemas derived from the wire types, in OpenAPI 3.0 form (the
/// document is 3.0.3; utoipa writes 3.1).
pub fn wire_schemas() -> Map<String, Value> {
    let doc = serde_json::to_value(WireDoc::openapi()).unwrap_or(Value::Null);
    let mut schemas = match doc.pointer("/components/schemas") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for s in schemas.values_mut() {
        to_openapi_30(s);
        optional_means_absent(s);
    }
    schemas
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

/// `document` (OpenAPI JSON) with its wire-type schemas replaced by the
/// derived ones; every other part is kept as it is.
pub fn with_wire_schemas(document: &str) -> Result<Value, serde_json::Error> {
    let mut doc: Value = serde_json::from_str(document)?;
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, schema) in wire_schemas() {
            schemas.insert(name, schema);
        }
    }
    Ok(doc)
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
        let s = wire_schemas();
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
        ] {
            assert!(s.contains_key(name), "{name} in {:?}", s.keys());
        }
    }
}
