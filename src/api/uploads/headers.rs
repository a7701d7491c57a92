//! Parsing and writing the tus request headers: `Tus-Resumable`, the
//! numeric headers, `Upload-Metadata` (bounded), `Upload-Concat` and
//! `Upload-Checksum`.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use base64::Engine;

use super::header_text;
use crate::db::uploads::Concat;
use crate::digest::CHECKSUM_ALGORITHMS;
use crate::error::Error;
use crate::tus;
use crate::uploads::Checksum;
use uuid::Uuid;

pub(super) fn require_tus(headers: &HeaderMap) -> Result<(), Error> {
    match header_text(headers, tus::RESUMABLE).as_deref() {
        Some(tus::VERSION) => Ok(()),
        Some(v) => Err(Error::TusVersionUnsupported(format!(
            "Tus-Resumable {v} is not supported; this server speaks {}",
            tus::VERSION
        ))),
        None => Err(Error::TusVersionUnsupported(
            "the Tus-Resumable header is required".into(),
        )),
    }
}

pub(super) fn parse_u64_header(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Error> {
    match header_text(headers, name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            Error::InvalidHeader(format!(
                "{name} must be a non-negative integer, got \"{v}\""
            ))
        }),
    }
}

/// `Upload-Metadata: key base64,key2 base64`.
/// Largest `Upload-Metadata` header accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Most `Upload-Metadata` keys accepted.
pub const MAX_METADATA_KEYS: usize = 32;

pub(super) fn parse_metadata(v: Option<String>) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    if v.len() > MAX_METADATA_BYTES {
        return Err(Error::InvalidHeader(format!(
            "Upload-Metadata is {} bytes; at most {MAX_METADATA_BYTES} are accepted",
            v.len()
        )));
    }
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if out.len() == MAX_METADATA_KEYS {
            return Err(Error::InvalidHeader(format!(
                "Upload-Metadata has more than {MAX_METADATA_KEYS} keys"
            )));
        }
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or("").to_string();
        let val = match it.next().map(str::trim) {
            None | Some("") => String::new(),
            Some(b) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| {
                        Error::InvalidHeader(format!(
                            "Upload-Metadata value of \"{key}\" is not base64"
                        ))
                    })?;
                String::from_utf8(raw).map_err(|_| {
                    Error::InvalidHeader(format!("Upload-Metadata value of \"{key}\" is not UTF-8"))
                })?
            }
        };
        if key.is_empty() || out.insert(key.clone(), val).is_some() {
            return Err(Error::InvalidHeader(format!(
                "Upload-Metadata has an empty or repeated key \"{key}\""
            )));
        }
    }
    Ok(out)
}

/// `Upload-Concat`: `partial`, or `final;` then the partials' upload URLs
/// (absolute or `/uploads/{id}`), space-separated.
pub(super) fn parse_concat(v: Option<String>) -> Result<Concat, Error> {
    let Some(v) = v else {
        return Ok(Concat::None);
    };
    if v == "partial" {
        return Ok(Concat::Partial { used_by: None });
    }
    let Some(list) = v.strip_prefix("final;") else {
        return Err(Error::InvalidHeader(format!(
            "Upload-Concat must be \"partial\" or \"final;<upload URLs>\", got \"{v}\""
        )));
    };
    let parts = list
        .split_whitespace()
        .map(|url| {
            let id = url
                .rsplit_once("/uploads/")
                .map(|(_, id)| id.trim_end_matches('/'))
                .and_then(|id| Uuid::parse_str(id).ok());
            id.ok_or_else(|| {
                Error::InvalidHeader(format!(
                    "Upload-Concat: \"{url}\" is not an upload URL (/uploads/<id>)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Concat::Final { parts })
}

/// The `Upload-Concat` a HEAD answers for an upload, if it has one.
pub(super) fn concat_header(c: &Concat) -> Option<String> {
    match c {
        Concat::None => None,
        Concat::Partial { .. } => Some("partial".into()),
        Concat::Final { parts } => Some(format!(
            "final;{}",
            parts
                .iter()
                .map(|p| format!("/uploads/{p}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

pub(super) fn encode_metadata(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn parse_checksum(headers: &HeaderMap) -> Result<Option<Checksum>, Error> {
    let Some(v) = header_text(headers, tus::UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let (algo, b64) = v.split_once(' ').ok_or_else(|| {
        Error::InvalidHeader("Upload-Checksum must be \"<algorithm> <base64 digest>\"".into())
    })?;
    if !CHECKSUM_ALGORITHMS.contains(&algo) {
        return Err(Error::InvalidHeader(format!(
            "unsupported checksum algorithm \"{algo}\" (supported: {})",
            CHECKSUM_ALGORITHMS.join(",")
        )));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Error::InvalidHeader("Upload-Checksum digest is not base64".into()))?;
    Ok(Some(Checksum {
        algo: algo.to_string(),
        digest,
    }))
}
