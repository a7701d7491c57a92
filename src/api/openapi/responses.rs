//! The responses of the OpenAPI document that many endpoints share
//! (`(status = 404, response = super::openapi::NotFound)` in a handler's
//! `#[utoipa::path]`): one per error status, each naming the error codes it
//! carries (`docs/errors.md`), plus an image with its Etag, 304 and tus'
//! 204.

use utoipa::ToResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};

fn json_of(schema: &str) -> Content {
    Content::new(Some(Ref::from_schema_name(schema)))
}

fn header(schema: Type, description: Option<&str>) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(schema))
        .description(description)
        .build()
}

/// Unit types whose `ToResponse` is the response built by the expression,
/// under the given component name.
macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident as $component:literal => $response:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                ($component, RefOr::T($response))
            }
        }
    )*};
}

/// An error response: `{code, message, errors?}` with these codes.
fn error(codes: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(codes)
        .content("application/json", json_of("Error"))
}

responses! {
    /// 200 with an image.
    ImageResponse as "Image" => ResponseBuilder::new()
        .description("The image")
        .header("Etag", header(Type::String, Some("Entity tag")))
        .content("application/json", json_of("Image"))
        .build();
    /// 304.
    NotModified as "NotModified" => Response::new("Not modified (If-None-Match or If-Modified-Since)");
    /// 400.
    BadRequest as "BadRequest" => error("InvalidVersion (Accept-Version), InvalidHeader, \
        BadRequestError (body not JSON or too large), Upload, Download, NotImplemented").build();
    /// 401.
    Unauthorized as "Unauthorized" => error("UnauthorizedError (auth = token: missing token on a write, bad token)").build();
    /// 403.
    Forbidden as "Forbidden" => error("OperatorOnly").build();
    /// 404.
    NotFound as "NotFound" => error("ResourceNotFound or UploadNotFound").build();
    /// 405.
    MethodNotAllowed as "MethodNotAllowed" => error("MethodNotAllowed").build();
    /// 409.
    Conflict as "Conflict" => error("ImageUuidAlreadyExists, FileInUse or UploadOffsetMismatch").build();
    /// 410.
    Gone as "Gone" => error("UploadExpired").build();
    /// 412.
    PreconditionFailed as "PreconditionFailed" => error("PreconditionFailed (If-Match) or \
        TusVersionUnsupported (Tus-Resumable; the response names Tus-Version)").build();
    /// 413.
    PayloadTooLarge as "PayloadTooLarge" => error("QuotaExceeded or UploadLengthExceeded").build();
    /// 415.
    UnsupportedMediaType as "UnsupportedMediaType" => error("UnsupportedMediaType").build();
    /// 416.
    RangeNotSatisfiable as "RangeNotSatisfiable" => error("RequestedRangeNotSatisfiable; Content-Range: bytes */SIZE")
        .header("Content-Range", header(Type::String, None))
        .build();
    /// 422.
    Unprocessable as "Unprocessable" => error("ValidationFailed, InvalidParameter (e.g. a bad \
        `account`), NotImageOwner, ImageFilesImmutable, ImageAlreadyActivated, \
        NoActivationNoFile, OriginDoesNotExist, ImageHasDependentImages, UploadIncomplete, \
        FileNotFound, NotMantaPathOwner, ChecksumMismatch").build();
    /// 423.
    Locked as "Locked" => error("UploadLocked: another PATCH/PUT on this upload is in progress").build();
    /// 460.
    ChecksumMismatch as "ChecksumMismatch" => error("UploadChecksumMismatch: the chunk is discarded").build();
    /// 500.
    InternalError as "InternalError" => error("InternalError; details only in the log").build();
    /// 501.
    NotAvailable as "NotAvailable" => error("NotAvailable: not provided by this server").build();
    /// 503.
    StorageIsDown as "StorageIsDown" => error("StorageIsDown: the store is unreachable; retry later").build();
    /// 507.
    InsufficientStorage as "InsufficientStorage" => error("InsufficientStorage: the store is out of space; uploads stay resumable").build();
    /// tus' 204.
    TusNoContent as "TusNoContent" => ResponseBuilder::new()
        .description("Done")
        .header("Tus-Resumable", header(Type::String, Some("Always 1.0.0")))
        .header("Upload-Offset", header(Type::Integer, Some("Bytes stored so far")))
        .header("Upload-Crc64nvme", header(Type::String, Some("CRC-64/NVME of the first Upload-Offset bytes (see HeadUpload)")))
        .header("Upload-Expires", header(Type::String, Some("When the idle upload expires (HTTP date)")))
        .build();
}
