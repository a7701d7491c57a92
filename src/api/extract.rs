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
pub use crate::params::{Params, uuid_param};

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
                    Some(authorization) => {
                        // The scheme is case-insensitive (RFC 9110 11.1).
                        let token = authorization
                            .trim_start()
                            .split_once(' ')
                            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                            .map(|(_, t)| t.trim())
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| Error::Unauthorized("expected a Bearer token".into()))?
                            .to_string();
                        let acct = crate::identity::account_of_token(&st.db, token)
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

/// Read a JSON body; `None` for an empty (or all-blank) body.
async fn read_json(body: Body) -> Result<Option<Value>, Error> {
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
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::InvalidContent(format!("Invalid JSON: {e}")))
}

/// Read a JSON body; an empty body is `{}`.
pub async fn json_body(body: Body) -> Result<Value, Error> {
    Ok(read_json(body)
        .await?
        .unwrap_or_else(|| Value::Object(Default::default())))
}

/// A JSON body that should be an object; `None` when there is no body or
/// it is not an object (UpdateImage answers that `{body, MissingParameter}`).
pub async fn json_object_opt(body: Body) -> Result<Option<serde_json::Map<String, Value>>, Error> {
    match read_json(body).await? {
        Some(Value::Object(m)) => Ok(Some(m)),
        _ => Ok(None),
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

/// What an endpoint's preamble does besides extracting the caller and the
/// query (see [`ImageCtx`]).
pub(super) trait Preamble: Send + Sync + 'static {
    /// Whether the endpoint renders images (and so checks `inclAdminFields`).
    const RENDER: bool = true;
    /// Checks of the query that come before the others.
    fn precheck(_p: &Params) -> Result<(), Error> {
        Ok(())
    }
    /// Whether the endpoint works on the existing image of the path, which
    /// must then be in the request's channel.
    fn on_image(_p: &Params) -> bool {
        true
    }
}

/// The preamble of an endpoint that renders images.
pub(super) struct Render;
impl Preamble for Render {}

/// The preamble of an endpoint that renders no image (files, icons, delete).
pub(super) struct NoRender;
impl Preamble for NoRender {
    const RENDER: bool = false;
}

/// The common preamble of the image endpoints, in this order: the caller,
/// the image uuid of the path (if the route has one), the query, the
/// checks of `K`, the render options (`inclAdminFields`, Accept-Version)
/// and the request's channel (`?channel=`; `*` only on GET and HEAD), with
/// the image of the path checked to be in it.
pub(super) struct ImageCtx<K = Render> {
    pub caller: Caller,
    /// The image uuid of the path (nil on routes without one).
    pub uuid: Uuid,
    pub params: Params,
    /// Default when `K` renders no image.
    pub opts: crate::manifest::RenderOpts,
    pub channel: super::channels::ChannelCtx,
    _kind: std::marker::PhantomData<K>,
}

impl<K: Preamble> FromRequestParts<AppState> for ImageCtx<K> {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, st).await?;
        let has_uuid = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|m| m.as_str().contains("{uuid}"));
        let uuid = match has_uuid {
            true => Some(ImageUuid::from_request_parts(parts, st).await?.0),
            false => None,
        };
        let params = Params::parse(parts.uri.query());
        K::precheck(&params)?;
        let opts = match K::RENDER {
            true => {
                let v = parts.extensions.get::<super::ApiVersion>().copied();
                let v = v.ok_or_else(|| Error::internal("no negotiated API version"))?;
                super::images::render_opts(st, &params, &caller, v)?
            }
            false => Default::default(),
        };
        let write = !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        let image = uuid.filter(|_| K::on_image(&params));
        let channel = super::images::channel_gate(st, &params, &caller, image, write).await?;
        Ok(ImageCtx {
            caller,
            uuid: uuid.unwrap_or_default(),
            params,
            opts,
            channel,
            _kind: std::marker::PhantomData,
        })
    }
}
