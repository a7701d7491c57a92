//! The tus 1.0 header names and values both sides use, and imgapi's
//! checksum header (`Upload-CRC64NVME`, the whole upload's CRC-64/NVME).

/// The protocol version (`Tus-Resumable`, `Tus-Version`).
pub const VERSION: &str = "1.0.0";
pub const RESUMABLE: &str = "tus-resumable";
/// The versions a server speaks (OPTIONS).
pub const SUPPORTED_VERSIONS: &str = "tus-version";
pub const EXTENSION: &str = "tus-extension";
pub const MAX_SIZE: &str = "tus-max-size";
pub const UPLOAD_OFFSET: &str = "upload-offset";
pub const UPLOAD_LENGTH: &str = "upload-length";
pub const UPLOAD_METADATA: &str = "upload-metadata";
pub const UPLOAD_CONCAT: &str = "upload-concat";
pub const UPLOAD_EXPIRES: &str = "upload-expires";
pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";
pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
/// The CRC-64/NVME of the upload's bytes so far, base64 of 8 big-endian
/// bytes, on every HEAD and PATCH answer.
pub const UPLOAD_CRC64: &str = "upload-crc64nvme";
/// The file's MD5 on GetImageFile (base64), which Triton's client requires.
pub const CONTENT_MD5: &str = "content-md5";
/// The media type of a PATCH body.
pub const PATCH_CONTENT_TYPE: &str = "application/offset+octet-stream";
