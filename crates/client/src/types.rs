//! The server's JSON shapes the client reads. Error bodies are the shared
//! wire type (`imgapi_protocol::wire::ErrorBody`); `Image` is the lenient subset a
//! download is checked against, so that any IMGAPI's manifest parses.

use serde::Deserialize;

/// An IMGAPI error body, `{code, message, errors?}`: the shared wire type.
pub use imgapi_protocol::wire::ErrorBody;

/// The part of an image manifest the client checks a download against
/// (the raw JSON is what it prints).
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    #[serde(default)]
    pub files: Vec<ImageFile>,
}

/// `files[0]` of an image.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageFile {
    pub sha1: String,
    pub size: u64,
    #[serde(default)]
    pub content_md5: Option<String>,
}
