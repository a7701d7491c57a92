//! Channels (IMGAPI's `channels` config): ListChannels, and the `channel`
//! parameter every image endpoint takes on a server with channels.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::Params;
use super::{AppState, json_response};
use crate::error::{Error, FieldCode, FieldError};
use crate::manifest::Image;

/// The channel a request works in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCtx {
    /// The server has no channels.
    Off,
    /// `channel=*` (reads only): any channel.
    All,
    One(String),
}

impl ChannelCtx {
    /// Is `img` in this request's channel? (Invisible images are 404.)
    pub fn contains(&self, img: &Image) -> bool {
        match self {
            ChannelCtx::Off => true,
            ChannelCtx::All => !img.channels.is_empty(),
            ChannelCtx::One(c) => img.channels.contains(c),
        }
    }

    /// ListImages' filter.
    pub fn filter(&self) -> Option<String> {
        match self {
            ChannelCtx::Off => None,
            ChannelCtx::All => Some("*".into()),
            ChannelCtx::One(c) => Some(c.clone()),
        }
    }

    /// The channels a new image starts in.
    pub fn initial(&self) -> Vec<String> {
        match self {
            ChannelCtx::One(c) => vec![c.clone()],
            _ => vec![],
        }
    }

    pub fn is_on(&self) -> bool {
        *self != ChannelCtx::Off
    }
}

fn invalid(message: String, code: FieldCode) -> Error {
    Error::ValidationFailed {
        message,
        errors: vec![FieldError::new("channel", code)],
    }
}

/// Resolve `?channel=`: the default channel if absent; `*` only on reads.
pub fn channel_ctx(st: &AppState, p: &Params, write: bool) -> Result<ChannelCtx, Error> {
    let chans = &st.config.channels;
    if chans.is_empty() {
        return Ok(ChannelCtx::Off);
    }
    match p.get("channel").filter(|c| !c.is_empty()) {
        None => match chans.iter().find(|c| c.default) {
            Some(d) => Ok(ChannelCtx::One(d.name.clone())),
            None => Err(invalid(
                "no channel given and the server has no default channel".into(),
                FieldCode::MissingParameter,
            )),
        },
        Some("*") if write => Err(invalid(
            "channel \"*\" is only allowed on reads".into(),
            FieldCode::Invalid,
        )),
        Some("*") => Ok(ChannelCtx::All),
        Some(c) if chans.iter().any(|x| x.name == c) => Ok(ChannelCtx::One(c.to_string())),
        Some(c) => Err(invalid(format!("unknown channel: {c}"), FieldCode::Invalid)),
    }
}

/// Check a target channel name (ChannelAddImage's body).
pub fn known_channel(st: &AppState, name: Option<&str>) -> Result<String, Error> {
    match name {
        Some(n) if st.config.channels.iter().any(|c| c.name == n) => Ok(n.to_string()),
        Some(n) => Err(invalid(format!("unknown channel: {n}"), FieldCode::Invalid)),
        None => Err(invalid(
            "missing \"channel\"".into(),
            FieldCode::MissingParameter,
        )),
    }
}

/// ListChannels: `GET /channels` (404 on a server without channels).
#[utoipa::path(
    get,
    path = "/channels",
    operation_id = "ListChannels",
    tag = "images",
    summary = "ListChannels (404 on a server without channels)",
    responses(
        (status = 200, description = "The configured channels", body = [crate::wire::Channel]),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 500, response = super::openapi::InternalError),
    ),
)]
pub async fn list(State(st): State<AppState>) -> Result<Response, Error> {
    if st.config.channels.is_empty() {
        return Err(Error::not_found("/channels does not exist"));
    }
    let out: Vec<crate::wire::Channel> = st
        .config
        .channels
        .iter()
        .map(|c| crate::wire::Channel {
            name: c.name.clone(),
            description: c.description.clone(),
            default: c.default,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &out))
}
