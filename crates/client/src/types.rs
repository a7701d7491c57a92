//! The server's JSON shapes the client reads: the shared wire types of
//! `imgapi_protocol::wire` (one definition of an image, an upload, a job,
//! a usage, an error body for server and client), and [`Parsed`], which
//! keeps the JSON a typed answer came in so that `--json` prints every key
//! the server sent (Triton's IMGAPI has keys of its own; the wire types
//! ignore keys they do not know).

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use imgapi_protocol::wire::{
    AccountUsage, ErrorBody, Image, ImageFile, ImportStarted, Job, JobChainError, UploadInfo, Usage,
};

/// An answer parsed as its wire type `T`, and the JSON it came in.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// What the client reads.
    pub typed: T,
    /// What `--json` prints: every key, in the server's order.
    pub raw: Value,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let typed = T::deserialize(&raw).map_err(D::Error::custom)?;
        Ok(Parsed { typed, raw })
    }
}

impl<T> Serialize for Parsed<T> {
    /// As the server sent it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<T> std::ops::Deref for Parsed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.typed
    }
}

/// The error of an image in state `failed`, as an error body (IMGAPI's
/// `{code?, message}`; a stand-in when it has none).
pub fn image_failure(img: &Image) -> ErrorBody {
    img.error
        .as_ref()
        .and_then(|e| serde_json::from_value::<ErrorBody>(e.clone()).ok())
        .unwrap_or_else(|| ErrorBody {
            code: "ImageFailed".into(),
            message: format!("image {} failed", img.uuid),
            errors: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_keeps_keys_the_wire_type_does_not_know() {
        let j = r#"{"v":2,"uuid":"00000000-0000-0000-0000-000000000001",
            "owner":"00000000-0000-0000-0000-000000000002","name":"n","version":"1",
            "state":"active","disabled":false,"public":true,"type":"zone-dataset",
            "os":"smartos","files":[{"sha1":"x","size":1,"compression":"none"}],
            "triton_only":{"a":1}}"#;
        let p: Parsed<Image> = serde_json::from_str(j).unwrap();
        assert_eq!(p.name, "n");
        assert_eq!(p.files[0].size, 1);
        assert_eq!(p.raw["triton_only"]["a"], 1);
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out, serde_json::from_str::<Value>(j).unwrap());
    }

    #[test]
    fn parsed_refuses_what_is_not_its_type() {
        let e = serde_json::from_str::<Parsed<Image>>(r#"{"name":"n"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        assert!(e.is_data());
    }

    #[test]
    fn a_failed_image_gives_its_error() {
        let mut img: Image = serde_json::from_str(
            r#"{"v":2,"uuid":"00000000-0000-0000-0000-000000000001",
            "owner":"00000000-0000-0000-0000-000000000002","name":"n","version":"1",
            "state":"failed","disabled":false,"public":false,"type":"zvol","os":"linux",
            "files":[],"error":{"code":"ChecksumMismatch","message":"bad"}}"#,
        )
        .unwrap();
        assert_eq!(image_failure(&img).code, "ChecksumMismatch");
        img.error = None;
        assert_eq!(image_failure(&img).code, "ImageFailed");
    }
}
