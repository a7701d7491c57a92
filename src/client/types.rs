//! The server's JSON shapes the client reads (images, uploads, errors).
//! Temporary: to be replaced by the shared wire types in `crate::wire` when
//! the branches are merged.

use serde::Deserialize;

/// An IMGAPI error body: `{code, message, errors?}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

/// One item of an error's `errors` list.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
}

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
