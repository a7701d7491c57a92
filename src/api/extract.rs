//! Extractors: the caller's identity, query parameters (repeatable,
//! percent-decoded), JSON bodies with IMGAPI errors, image uuids in paths.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use crate::config::AuthMode;
use crate::error::{Error, FieldCode};
use crate::identity::Caller;

/// The request id (echoed client `x-request-id` or a new UUID).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where the caller extractor records who called, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<String>>);

impl CallerSlot {
    pub fn get(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn set(&self, v: String) {
        if let Ok(mut s) = self.0.lock() {
            *s = v;
        }
    }
}

/// Query parameters in order; names may repeat.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    /// The last value of `name` (non-empty values only).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A boolean parameter: exactly "true" or "false"; anything else
    /// (the empty string too) is 422 InvalidParameter `{name, Invalid}`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(Error::invalid_param(
                name,
                FieldCode::Invalid,
                format!("invalid \"{name}\": not a boolean: \"{v}\""),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query()))
    }
}

/// An image uuid from the path; anything else is 404 like IMGAPI.
pub struct ImageUuid(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ImageUuid {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, s)
            .await
            .map_err(|_| Error::not_found(format!("{} does not exist", parts.uri.path())))?;
        match Uuid::parse_str(&raw) {
            Ok(u) if raw.len() == 36 => Ok(ImageUuid(u)),
            _ => Err(Error::not_found(format!(
                "{} does not exist",
                parts.uri.path()
            ))),
        }
    }
}

/// Parse an `account`-like uuid parameter.
pub fn uuid_param(name: &str, v: &str) -> Result<Uuid, Error> {
    match Uuid::parse_str(v) {
        Ok(u) if v.len() == 36 => Ok(u),
        _ => Err(Error::invalid_param(
            name,
            FieldCode::Invalid,
            format!("invalid \"{name}\": not a UUID: \"{v}\""),
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let params = Params::parse(parts.uri.query());
        let account = match params.get("account").filter(|a| !a.is_empty()) {
            Some(a) => Some(uuid_param("account", a)?),
            None => None,
        };
        let caller = match st.config.auth {
            AuthMode::None => Caller {
                account,
                operator: true,
                authenticated: true,
            },
            AuthMode::Token => {
                let auth = parts
                    .headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                match auth {
                    None => Caller::anonymous(),
                    Some(h) => {
                        // The scheme is case-insensitive (RFC 9110 11.1).
                        let token = h
                            .trim_start()
                            .split_once(' ')
                            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                            .map(|(_, t)| t.trim())
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| Error::Unauthorized("expected a Bearer token".into()))?
                            .to_string();
                        let acct = st
                            .db
                            .read(move |c| crate::db::accounts::by_token(c, &token))
                            .await?
                            .ok_or_else(|| Error::Unauthorized("invalid token".into()))?;
                        if acct.operator {
                            Caller {
                                account,
                                operator: true,
                                authenticated: true,
                            }
                        } else {
                            if account.is_some_and(|a| a != acct.uuid) {
                                return Err(Error::invalid_param(
                                    "account",
                                    FieldCode::NotAllowed,
                                    "an account token can only act for its own account",
                                ));
                            }
                            Caller::account(acct.uuid)
                        }
                    }
                }
            }
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set(match (caller.operator, caller.account) {
                (_, Some(a)) => a.to_string(),
                (true, None) => "operator".into(),
                (false, None) => "anonymous".into(),
            });
        }
        Ok(caller)
    }
}

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 2 << 20;

/// Read a JSON body; an empty body is `{}`.
pub async fn json_body(body: Body) -> Result<Value, Error> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Error::BadRequest(format!(
                "request body is larger than {MAX_JSON_BODY} bytes or unreadable"
            ))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidContent(format!("Invalid JSON: {e}")))
}

/// A JSON body that should be an object; `None` when there is no body or
/// it is not an object (UpdateImage answers that `{body, MissingParameter}`).
pub async fn json_object_opt(body: Body) -> Result<Option<serde_json::Map<String, Value>>, Error> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Error::BadRequest(format!(
                "request body is larger than {MAX_JSON_BODY} bytes or unreadable"
            ))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => Err(Error::InvalidContent(format!("Invalid JSON: {e}"))),
    }
}

/// A JSON body that must be an object.
pub async fn json_object(body: Body) -> Result<serde_json::Map<String, Value>, Error> {
    match json_body(body).await? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::ValidationFailed {
            message: "missing request body".into(),
            errors: vec![crate::error::FieldError::new(
                "body",
                FieldCode::MissingParameter,
            )],
        }),
    }
}
