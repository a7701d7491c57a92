//! The one error type of the service, its IMGAPI wire code and HTTP status.
//! The variant list is written once, in the `errors!` table below; the JSON
//! body `{code, message, errors?}` is rendered by `api::error`. 5xx messages
//! never carry the internal cause: it is logged with the request id instead.

use uuid::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The field codes and the server's field errors are the wire's (one
/// definition, which manifest/ uses too without depending on this module).
pub use crate::wire::{FieldCode, FieldFault as FieldError};

/// The error table: one row per variant, giving its fields and `Display`
/// message, its wire code, its HTTP status and a sample built from a message
/// (`catalog`, Ping's `?error=CODE`). The enum, `code()`, `status()` and
/// `samples()` are generated from these rows, so they cannot drift apart.
macro_rules! errors {
    ($(
        $(#[$meta:meta])*
        $variant:ident $( { $($fname:ident : $fty:ty),* $(,)? } )? $( ( $( $(#[$fattr:meta])* $tty:ty ),* ) )?
            => $code:literal, $status:literal, |$m:ident| $sample:expr;
    )*) => {
        /// Every error the server can answer with.
        #[derive(Debug, thiserror::Error)]
        pub enum Error {
            $(
                $(#[$meta])*
                $variant $( { $($fname : $fty),* } )? $( ( $( $(#[$fattr])* $tty ),* ) )?,
            )*
        }

        impl Error {
            /// The IMGAPI wire code (`body.code`).
            pub fn code(&self) -> &'static str {
                match self {
                    $( Error::$variant { .. } => $code, )*
                }
            }

            /// The HTTP status code.
            pub fn status(&self) -> u16 {
                match self {
                    $( Error::$variant { .. } => $status, )*
                }
            }

            /// One sample of every variant, carrying `message` where the
            /// variant has a free-text message (5xx keep their generic ones).
            pub fn samples(message: &str) -> Vec<Error> {
                use Error::*;
                vec![ $( { let $m: &str = message; $sample }, )* ]
            }
        }
    };
}

errors! {
    #[error("{message}")]
    ValidationFailed { message: String, errors: Vec<FieldError> }
        => "ValidationFailed", 422, |m| ValidationFailed { message: m.into(), errors: vec![] };
    #[error("{message}")]
    InvalidParameter { message: String, errors: Vec<FieldError> }
        => "InvalidParameter", 422, |m| InvalidParameter { message: m.into(), errors: vec![] };
    #[error("{0}")]
    ResourceNotFound(String) => "ResourceNotFound", 404, |m| ResourceNotFound(m.into());
    #[error("cannot modify files on activated image {0}")]
    ImageFilesImmutable(Uuid) => "ImageFilesImmutable", 422, |_m| ImageFilesImmutable(Uuid::nil());
    #[error("image \"{0}\" is already activated")]
    ImageAlreadyActivated(Uuid) => "ImageAlreadyActivated", 422, |_m| ImageAlreadyActivated(Uuid::nil());
    #[error("image \"{0}\" cannot be activated: it has no file")]
    NoActivationNoFile(Uuid) => "NoActivationNoFile", 422, |_m| NoActivationNoFile(Uuid::nil());
    #[error("this endpoint may only be called by an operator")]
    OperatorOnly => "OperatorOnly", 403, |_m| OperatorOnly;
    #[error("image uuid \"{0}\" already exists")]
    ImageUuidAlreadyExists(Uuid) => "ImageUuidAlreadyExists", 409, |_m| ImageUuidAlreadyExists(Uuid::nil());
    #[error("{0}")]
    Upload(String) => "Upload", 400, |m| Upload(m.into());
    #[error("{0}")]
    Download(String) => "Download", 400, |m| Download(m.into());
    #[error("account {account} is not the owner of image {image}")]
    NotImageOwner { account: Uuid, image: Uuid }
        => "NotImageOwner", 422, |_m| NotImageOwner { account: Uuid::nil(), image: Uuid::nil() };
    #[error("image {image} is not shared with account {account}")]
    ImageNotShared { account: Uuid, image: Uuid }
        => "ImageNotShared", 422, |_m| ImageNotShared { account: Uuid::nil(), image: Uuid::nil() };
    #[error("origin image \"{0}\" does not exist")]
    OriginDoesNotExist(Uuid) => "OriginDoesNotExist", 422, |_m| OriginDoesNotExist(Uuid::nil());
    #[error("{0}")]
    ImageHasDependentImages(String) => "ImageHasDependentImages", 422, |m| ImageHasDependentImages(m.into());
    #[error("{0}")]
    NotAvailable(String) => "NotAvailable", 501, |m| NotAvailable(m.into());
    #[error("{0}")]
    NotImplemented(String) => "NotImplemented", 400, |m| NotImplemented(m.into());
    #[error("{0}")]
    InvalidVersion(String) => "InvalidVersion", 400, |m| InvalidVersion(m.into());
    #[error("{0}")]
    PreconditionFailed(String) => "PreconditionFailed", 412, |m| PreconditionFailed(m.into());
    #[error("{0}")]
    Unauthorized(String) => "UnauthorizedError", 401, |m| Unauthorized(m.into());
    #[error("{0}")]
    InvalidHeader(String) => "InvalidHeader", 400, |m| InvalidHeader(m.into());
    #[error("{0}")]
    BadRequest(String) => "BadRequestError", 400, |m| BadRequest(m.into());
    #[error("{0}")]
    InvalidContent(String) => "InvalidContent", 400, |m| InvalidContent(m.into());
    #[error("{0}")]
    MethodNotAllowed(String) => "MethodNotAllowed", 405, |m| MethodNotAllowed(m.into());
    #[error("{0}")]
    QuotaExceeded(String) => "QuotaExceeded", 413, |m| QuotaExceeded(m.into());
    #[error("{0}")]
    TooManyRequests(String) => "TooManyRequests", 429, |m| TooManyRequests(m.into());
    #[error("{0}")]
    RangeNotSatisfiable(String) => "RequestedRangeNotSatisfiable", 416, |m| RangeNotSatisfiable(m.into());
    #[error("upload {0} was not found")]
    UploadNotFound(Uuid) => "UploadNotFound", 404, |_m| UploadNotFound(Uuid::nil());
    #[error("upload {0} has expired")]
    UploadExpired(Uuid) => "UploadExpired", 410, |_m| UploadExpired(Uuid::nil());
    #[error("Upload-Offset {given} does not match the current offset {current}")]
    UploadOffsetMismatch { given: u64, current: u64 }
        => "UploadOffsetMismatch", 409, |_m| UploadOffsetMismatch { given: 0, current: 0 };
    #[error("upload {0} is busy with another request; retry after it ends")]
    UploadLocked(Uuid) => "UploadLocked", 423, |_m| UploadLocked(Uuid::nil());
    #[error("upload {0} is a final concatenation: its bytes come from its partial uploads")]
    UploadIsFinal(Uuid) => "UploadIsFinal", 403, |_m| UploadIsFinal(Uuid::nil());
    #[error("{0}")]
    UploadChecksumMismatch(String) => "UploadChecksumMismatch", 460, |m| UploadChecksumMismatch(m.into());
    #[error("{0}")]
    UploadLengthExceeded(String) => "UploadLengthExceeded", 413, |m| UploadLengthExceeded(m.into());
    #[error("{0}")]
    UnsupportedMediaType(String) => "UnsupportedMediaType", 415, |m| UnsupportedMediaType(m.into());
    #[error("{0}")]
    TusVersionUnsupported(String) => "TusVersionUnsupported", 412, |m| TusVersionUnsupported(m.into());
    #[error("upload {0} is not complete")]
    UploadIncomplete(Uuid) => "UploadIncomplete", 422, |_m| UploadIncomplete(Uuid::nil());
    #[error("{0}")]
    FileNotFound(String) => "FileNotFound", 422, |m| FileNotFound(m.into());
    #[error("{0}")]
    NotMantaPathOwner(String) => "NotMantaPathOwner", 422, |m| NotMantaPathOwner(m.into());
    #[error("{message}")]
    ChecksumMismatch { message: String, errors: Vec<FieldError> }
        => "ChecksumMismatch", 422, |m| ChecksumMismatch { message: m.into(), errors: vec![] };
    #[error("{0}")]
    FileInUse(String) => "FileInUse", 409, |m| FileInUse(m.into());
    #[error("origin image \"{0}\" is not active")]
    OriginIsNotActive(Uuid) => "OriginIsNotActive", 422, |_m| OriginIsNotActive(Uuid::nil());
    /// A source IMGAPI failed or answered an error; the message is the remote's.
    #[error("{0}")]
    RemoteSourceError(String) => "RemoteSourceError", 503, |m| RemoteSourceError(m.into());
    #[error("the storage backend is unavailable, retry later")]
    StorageIsDown(#[source] Cause) => "StorageIsDown", 503, |m| StorageIsDown(m.into());
    #[error("the metadata database is unavailable, retry later")]
    DatabaseUnavailable(#[source] Cause) => "DatabaseUnavailable", 503, |m| DatabaseUnavailable(m.into());
    #[error("the store is out of space")]
    InsufficientStorage(#[source] Cause) => "InsufficientStorage", 507, |m| InsufficientStorage(m.into());
    /// Anything unexpected. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Cause) => "InternalError", 500, |m| Internal(m.into());
}

/// `Retry-After` of a 503 StorageIsDown or DatabaseUnavailable, in seconds.
pub const RETRY_AFTER_SECS: &str = "5";

/// A boxed cause for internal errors (kept out of response bodies).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    pub fn internal(e: impl Into<Cause>) -> Self {
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

    /// For `map_err` on an image insert: a uuid that exists (a conflict) is
    /// `ImageUuidAlreadyExists`, any other database error is internal.
    pub fn uuid_taken(uuid: Uuid) -> impl FnOnce(crate::db::DbError) -> Error {
        move |e| {
            if e.is_conflict() {
                Error::ImageUuidAlreadyExists(uuid)
            } else {
                e.into()
            }
        }
    }

    /// One instance of every variant: the list `docs/errors.md` must match.
    pub fn catalog() -> Vec<Error> {
        Error::samples("x")
    }

    /// A sample of the error whose wire code is `code`, carrying `message`
    /// where the variant has a free-text message.
    pub fn sample(code: &str, message: &str) -> Option<Error> {
        Error::samples(message)
            .into_iter()
            .find(|e| e.code() == code)
    }
}

/// The database layer's errors on the wire: a row that vanished under an
/// update keeps its IMGAPI answer; everything else a service did not map
/// itself (a conflict it did not expect, SQLite, corrupt rows, a failed
/// task) is an InternalError whose cause is logged.
impl From<crate::db::DbError> for Error {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::{DbError, Entity};
        match e {
            DbError::NotFound {
                entity: Entity::Image,
                id,
            } => Error::not_found(format!("image {id} does not exist")),
            DbError::NotFound {
                entity: Entity::Upload,
                id,
            } => Error::UploadNotFound(id),
            DbError::Io(e) => Error::from(e),
            DbError::Unavailable(cause) => Error::DatabaseUnavailable(cause),
            e => Error::internal(e),
        }
    }
}

/// The store's errors on the wire: a key that cannot be a file is 422
/// InvalidParameter `path` (callers with another field rename it), an
/// unreachable backend 503 StorageIsDown, a full one 507; what a service
/// did not map itself is an InternalError whose cause is logged.
impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        match e {
            e @ S::UnusablePath { .. } => {
                Error::invalid_param("path", FieldCode::Invalid, e.to_string())
            }
            e @ S::NotFound { .. } => Error::not_found(e.to_string()),
            e @ S::CopySourceNotFound { .. } => Error::FileNotFound(e.to_string()),
            S::Unavailable(cause) => Error::StorageIsDown(cause),
            e @ S::TooLarge { .. } => Error::Upload(e.to_string()),
            S::Io(e) => Error::from(e),
            e @ S::SessionLost => Error::internal(e),
            e @ S::Busy => Error::TooManyRequests(e.to_string()),
            S::Internal(cause) => Error::Internal(cause),
        }
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

impl From<crate::digest::DigestError> for Error {
    fn from(e: crate::digest::DigestError) -> Error {
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
