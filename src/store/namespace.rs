//! Storage paths users name: `/{login or uuid}/stor/{rest}` (manta) and
//! `/assets/{rest}` (assets). Parsing and normalisation only: who may use a
//! path is decided by the callers.

/// Which namespace a path is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// `/{owner}/stor/...`: owner is a login or an account uuid.
    Manta { owner: String },
    /// `/assets/...`.
    Assets,
}

/// A validated storage path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoragePath {
    pub ns: Namespace,
    /// The object key in the namespace's store.
    pub key: String,
    /// The path as given (already normal).
    pub path: String,
}

impl StoragePath {
    /// `manta` or `assets`: the store holding the object.
    pub fn store(&self) -> super::StoreName {
        match self.ns {
            Namespace::Manta { .. } => super::StoreName::Manta,
            Namespace::Assets => super::StoreName::Assets,
        }
    }
}

/// The login the service keeps its own objects under in the manta store.
pub const RESERVED_LOGIN: &str = "imgapi";

/// Parse and check a storage path. The error says what is wrong.
pub fn parse(p: &str) -> Result<StoragePath, String> {
    if p.len() > 1024 {
        return Err("path is longer than 1024 bytes".into());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err("path must start with '/'".into());
    };
    let segs: Vec<&str> = rest.split('/').collect();
    for s in &segs {
        if s.is_empty() {
            return Err("path has an empty segment".into());
        }
        if s.len() > super::MAX_SEGMENT_LEN {
            return Err(format!(
                "path segments may not be longer than {} bytes",
                super::MAX_SEGMENT_LEN
            ));
        }
        if *s == "." || *s == ".." {
            return Err("path may not contain '.' or '..' segments".into());
        }
        if s.starts_with('.') {
            return Err("path segments may not start with '.'".into());
        }
        if s.chars().any(|c| c.is_control() || c == '\\') {
            return Err("path has control characters or backslashes".into());
        }
    }
    match segs.as_slice() {
        ["assets", "imgapi-uploads", ..] => {
            // Where older versions kept unfinished uploads to the assets store.
            Err("the path /assets/imgapi-uploads is reserved".into())
        }
        ["assets", rest @ ..] if !rest.is_empty() => Ok(StoragePath {
            ns: Namespace::Assets,
            key: rest.join("/"),
            path: p.to_string(),
        }),
        [owner, "stor", rest @ ..] if !rest.is_empty() => {
            if *owner == RESERVED_LOGIN {
                return Err(format!("the namespace /{RESERVED_LOGIN} is reserved"));
            }
            Ok(StoragePath {
                ns: Namespace::Manta {
                    owner: owner.to_string(),
                },
                key: segs.join("/"),
                path: p.to_string(),
            })
        }
        _ => Err("path must be /{login}/stor/... or /assets/...".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse("/trent/stor/images/a.zfs.bz2").unwrap();
        assert_eq!(p.key, "trent/stor/images/a.zfs.bz2");
        assert_eq!(
            p.ns,
            Namespace::Manta {
                owner: "trent".into()
            }
        );
        let p = parse("/assets/base/x.zfs").unwrap();
        assert_eq!(
            (p.key.as_str(), p.store()),
            ("base/x.zfs", super::super::StoreName::Assets)
        );
        for bad in [
            "trent/stor/x",
            "/trent/stor",
            "/trent/stor/",
            "/trent/public/x",
            "/trent/stor/../x",
            "/trent/stor/./x",
            "/trent//stor/x",
            "/imgapi/stor/x",
            "/assets",
            "/assets/.hidden",
            "/trent/stor/a\u{0}b",
            "/trent/stor/a\\b",
            "/assets/imgapi-uploads/x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&format!("/t/stor/{}", "a".repeat(1100))).is_err());
        assert!(parse(&format!("/t/stor/{}", "a".repeat(256))).is_err());
        assert!(parse(&format!("/t/stor/{}", "a".repeat(255))).is_ok());
        assert!(parse(&format!("/t/stor/{}/x", "é".repeat(128))).is_err());
    }
}
