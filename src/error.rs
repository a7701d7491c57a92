//! The one error type of the service, its IMGAPI wire code and HTTP status,
//! and its JSON body `{code, message, errors?}`. 5xx bodies never carry the
//! internal cause: it is logged with the request id instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The code of one entry of `errors[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FieldCode {
    MissingParameter,
    Invalid,
    NotAllowed,
    Missing,
    Mismatch,
}

/// One item of `errors[]` in a ValidationFailed / InvalidParameter body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: FieldCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: FieldCode) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: None,
        }
    }
    pub fn msg(field: impl Into<String>, code: FieldCode, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: Some(message.into()),
        }
    }
}

/// Every error the server can answer with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    ValidationFailed {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("{message}")]
    InvalidParameter {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("cannot modify files on activated image {0}")]
    ImageFilesImmutable(Uuid),
    #[error("image \"{0}\" is already activated")]
    ImageAlreadyActivated(Uuid),
    #[error("image \"{0}\" cannot be activated: it has no file")]
    NoActivationNoFile(Uuid),
    #[error("this endpoint may only be called by an operator")]
    OperatorOnly,
    #[error("image uuid \"{0}\" already exists")]
    ImageUuidAlreadyExists(Uuid),
    #[error("{0}")]
    Upload(String),
    #[error("{0}")]
    Download(String),
    #[error("account {account} is not the owner of image {image}")]
    NotImageOwner { account: Uuid, image: Uuid },
    #[error("origin image \"{0}\" does not exist")]
    OriginDoesNotExist(Uuid),
    #[error("{0}")]
    ImageHasDependentImages(String),
    #[error("{0}")]
    NotAvailable(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    InvalidVersion(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    InvalidHeader(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    #[error("upload {0} was not found")]
    UploadNotFound(Uuid),
    #[error("upload {0} has expired")]
    UploadExpired(Uuid),
    #[error("Upload-Offset {given} does not match the current offset {current}")]
    UploadOffsetMismatch { given: u64, current: u64 },
    #[error("upload {0} is busy with another request; retry after it ends")]
    UploadLocked(Uuid),
    #[error("{0}")]
    UploadChecksumMismatch(String),
    #[error("{0}")]
    UploadLengthExceeded(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TusVersionUnsupported(String),
    #[error("upload {0} is not complete")]
    UploadIncomplete(Uuid),
    #[error("{0}")]
    FileNotFound(String),
    #[error("{0}")]
    NotMantaPathOwner(String),
    #[error("{message}")]
    ChecksumMismatch {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    FileInUse(String),
    #[error("the storage backend is unavailable, retry later")]
    StorageIsDown(#[source] anyhow_lite::Cause),
    #[error("the store is out of space")]
    InsufficientStorage(#[source] anyhow_lite::Cause),
    /// Anything unexpected. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow_lite::Cause),
}

/// A boxed cause for internal errors (kept out of response bodies).
pub mod anyhow_lite {
    pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;
}

impl Error {
    pub fn internal(e: impl Into<anyhow_lite::Cause>) -> Self {
        Error::Internal(e.into())
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        Error::ValidationFailed {
            message: format!("invalid image data: {}", fields.join(", ")),
            errors,
        }
    }

    pub fn invalid_param(field: &str, code: FieldCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::InvalidParameter {
            errors: vec![FieldError::new(field, code)],
            message,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::ResourceNotFound(message.into())
    }

    /// The IMGAPI wire code (`body.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::ValidationFailed { .. } => "ValidationFailed",
            Error::InvalidParameter { .. } => "InvalidParameter",
            Error::ResourceNotFound(_) => "ResourceNotFound",
            Error::ImageFilesImmutable(_) => "ImageFilesImmutable",
            Error::ImageAlreadyActivated(_) => "ImageAlreadyActivated",
            Error::NoActivationNoFile(_) => "NoActivationNoFile",
            Error::OperatorOnly => "OperatorOnly",
            Error::ImageUuidAlreadyExists(_) => "ImageUuidAlreadyExists",
            Error::Upload(_) => "Upload",
            Error::Download(_) => "Download",
            Error::NotImageOwner { .. } => "NotImageOwner",
            Error::OriginDoesNotExist(_) => "OriginDoesNotExist",
            Error::ImageHasDependentImages(_) => "ImageHasDependentImages",
            Error::NotAvailable(_) => "NotAvailable",
            Error::NotImplemented(_) => "NotImplemented",
            Error::InvalidVersion(_) => "InvalidVersion",
            Error::PreconditionFailed(_) => "PreconditionFailed",
            Error::Unauthorized(_) => "UnauthorizedError",
            Error::InvalidHeader(_) => "InvalidHeader",
            Error::BadRequest(_) => "BadRequestError",
            Error::MethodNotAllowed(_) => "MethodNotAllowed",
            Error::QuotaExceeded(_) => "QuotaExceeded",
            Error::TooManyRequests(_) => "TooManyRequests",
            Error::RangeNotSatisfiable(_) => "RequestedRangeNotSatisfiable",
            Error::UploadNotFound(_) => "UploadNotFound",
            Error::UploadExpired(_) => "UploadExpired",
            Error::UploadOffsetMismatch { .. } => "UploadOffsetMismatch",
            Error::UploadLocked(_) => "UploadLocked",
            Error::UploadChecksumMismatch(_) => "UploadChecksumMismatch",
            Error::UploadLengthExceeded(_) => "UploadLengthExceeded",
            Error::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Error::TusVersionUnsupported(_) => "TusVersionUnsupported",
            Error::UploadIncomplete(_) => "UploadIncomplete",
            Error::FileNotFound(_) => "FileNotFound",
            Error::NotMantaPathOwner(_) => "NotMantaPathOwner",
            Error::ChecksumMismatch { .. } => "ChecksumMismatch",
            Error::FileInUse(_) => "FileInUse",
            Error::StorageIsDown(_) => "StorageIsDown",
            Error::InsufficientStorage(_) => "InsufficientStorage",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::ValidationFailed { .. }
            | Error::InvalidParameter { .. }
            | Error::ImageFilesImmutable(_)
            | Error::ImageAlreadyActivated(_)
            | Error::NoActivationNoFile(_)
            | Error::NotImageOwner { .. }
            | Error::OriginDoesNotExist(_)
            | Error::ImageHasDependentImages(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            Error::OperatorOnly => StatusCode::FORBIDDEN,
            Error::ImageUuidAlreadyExists(_) => StatusCode::CONFLICT,
            Error::Upload(_)
            | Error::Download(_)
            | Error::NotImplemented(_)
            | Error::InvalidVersion(_)
            | Error::InvalidHeader(_)
            | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotAvailable(_) => StatusCode::NOT_IMPLEMENTED,
            Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::UploadNotFound(_) => StatusCode::NOT_FOUND,
            Error::UploadExpired(_) => StatusCode::GONE,
            Error::UploadOffsetMismatch { .. } => StatusCode::CONFLICT,
            Error::UploadLocked(_) => StatusCode::LOCKED,
            Error::UploadChecksumMismatch(_) => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Error::UploadLengthExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TusVersionUnsupported(_) => StatusCode::PRECONDITION_FAILED,
            Error::UploadIncomplete(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::FileNotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotMantaPathOwner(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::ChecksumMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::FileInUse(_) => StatusCode::CONFLICT,
            Error::StorageIsDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// One instance of every variant: the list `docs/errors.md` must match.
    /// Adding a variant without adding it here fails to compile (see `exhaustive`).
    pub fn catalog() -> Vec<Error> {
        let u = Uuid::nil();
        let c = || -> anyhow_lite::Cause { "x".into() };
        let all = vec![
            Error::validation(vec![]),
            Error::invalid_param("x", FieldCode::Invalid, "x"),
            Error::not_found("x"),
            Error::ImageFilesImmutable(u),
            Error::ImageAlreadyActivated(u),
            Error::NoActivationNoFile(u),
            Error::OperatorOnly,
            Error::ImageUuidAlreadyExists(u),
            Error::Upload("x".into()),
            Error::Download("x".into()),
            Error::NotImageOwner {
                account: u,
                image: u,
            },
            Error::OriginDoesNotExist(u),
            Error::ImageHasDependentImages("x".into()),
            Error::NotAvailable("x".into()),
            Error::NotImplemented("x".into()),
            Error::InvalidVersion("x".into()),
            Error::PreconditionFailed("x".into()),
            Error::Unauthorized("x".into()),
            Error::InvalidHeader("x".into()),
            Error::BadRequest("x".into()),
            Error::MethodNotAllowed("x".into()),
            Error::QuotaExceeded("x".into()),
            Error::TooManyRequests("x".into()),
            Error::RangeNotSatisfiable("x".into()),
            Error::UploadNotFound(u),
            Error::UploadExpired(u),
            Error::UploadOffsetMismatch {
                given: 0,
                current: 0,
            },
            Error::UploadLocked(u),
            Error::UploadChecksumMismatch("x".into()),
            Error::UploadLengthExceeded("x".into()),
            Error::UnsupportedMediaType("x".into()),
            Error::TusVersionUnsupported("x".into()),
            Error::UploadIncomplete(u),
            Error::FileNotFound("x".into()),
            Error::NotMantaPathOwner("x".into()),
            Error::ChecksumMismatch {
                message: "x".into(),
                errors: vec![],
            },
            Error::FileInUse("x".into()),
            Error::StorageIsDown(c()),
            Error::InsufficientStorage(c()),
            Error::Internal(c()),
        ];
        for e in &all {
            exhaustive(e);
        }
        all
    }
}

/// A match without a wildcard: a new variant must be added to `catalog`.
fn exhaustive(e: &Error) {
    match e {
        Error::ValidationFailed { .. }
        | Error::InvalidParameter { .. }
        | Error::ResourceNotFound(_)
        | Error::ImageFilesImmutable(_)
        | Error::ImageAlreadyActivated(_)
        | Error::NoActivationNoFile(_)
        | Error::OperatorOnly
        | Error::ImageUuidAlreadyExists(_)
        | Error::Upload(_)
        | Error::Download(_)
        | Error::NotImageOwner { .. }
        | Error::OriginDoesNotExist(_)
        | Error::ImageHasDependentImages(_)
        | Error::NotAvailable(_)
        | Error::NotImplemented(_)
        | Error::InvalidVersion(_)
        | Error::PreconditionFailed(_)
        | Error::Unauthorized(_)
        | Error::InvalidHeader(_)
        | Error::BadRequest(_)
        | Error::MethodNotAllowed(_)
        | Error::QuotaExceeded(_)
        | Error::TooManyRequests(_)
        | Error::RangeNotSatisfiable(_)
        | Error::UploadNotFound(_)
        | Error::UploadExpired(_)
        | Error::UploadOffsetMismatch { .. }
        | Error::UploadLocked(_)
        | Error::UploadChecksumMismatch(_)
        | Error::UploadLengthExceeded(_)
        | Error::UnsupportedMediaType(_)
        | Error::TusVersionUnsupported(_)
        | Error::UploadIncomplete(_)
        | Error::FileNotFound(_)
        | Error::NotMantaPathOwner(_)
        | Error::ChecksumMismatch { .. }
        | Error::FileInUse(_)
        | Error::StorageIsDown(_)
        | Error::InsufficientStorage(_)
        | Error::Internal(_) => {}
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

/// Marker put in response extensions so the logging middleware can log the
/// full cause of an error response.
#[derive(Clone)]
pub struct LoggedError {
    pub code: &'static str,
    pub detail: String,
}

/// `Retry-After` of a 503 StorageIsDown, in seconds.
pub const RETRY_AFTER_SECS: &str = "5";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let errors = match &self {
            Error::ValidationFailed { errors, .. }
            | Error::InvalidParameter { errors, .. }
            | Error::ChecksumMismatch { errors, .. } => Some(errors.as_slice()),
            _ => None,
        };
        let message = self.to_string();
        let body = Body {
            code: self.code(),
            message,
            errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response();
        if matches!(self, Error::StorageIsDown(_)) {
            // The store is expected back: tell clients when to try again.
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        let detail = match std::error::Error::source(&self) {
            Some(src) => format!("{self}: {src}"),
            None => self.to_string(),
        };
        resp.extensions_mut().insert(LoggedError {
            code: self.code(),
            detail,
        });
        resp
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // ENOSPC / EDQUOT: the store is full; the caller may retry later.
        if matches!(e.raw_os_error(), Some(28) | Some(122)) {
            return Error::InsufficientStorage(e.into());
        }
        Error::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hundreds_do_not_leak() {
        let e = Error::internal("SELECT * FROM secret_table");
        assert_eq!(e.to_string(), "internal error");
        let e = Error::StorageIsDown("connection refused to 10.0.0.1".into());
        assert!(!e.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn catalog_codes_are_unique() {
        let mut codes: Vec<_> = Error::catalog().iter().map(|e| e.code()).collect();
        let n = codes.len();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}
