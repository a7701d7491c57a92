//! The names of the stores: `local`, `manta`, `assets` and `staging`, as a
//! type (parsed once, stored in rows as their lowercase text).

/// One of the service's stores.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StoreName {
    /// Image files of `stor = local` images, and icons.
    Local,
    /// The `manta` store: a directory or an S3 bucket.
    Manta,
    /// The operator's assets directory.
    Assets,
    /// Where unfinished uploads to an object store keep their bytes (with a
    /// directory manta store, that same directory).
    Staging,
}

impl StoreName {
    /// Every store, in declaration order.
    pub const ALL: [StoreName; 4] = [
        StoreName::Local,
        StoreName::Manta,
        StoreName::Assets,
        StoreName::Staging,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Local => "local",
            StoreName::Manta => "manta",
            StoreName::Assets => "assets",
            StoreName::Staging => "staging",
        }
    }

    /// An IMGAPI `stor` (only `local` and `manta` hold image files).
    pub fn stor(s: &str) -> Option<StoreName> {
        match s.parse() {
            Ok(n @ (StoreName::Local | StoreName::Manta)) => Some(n),
            _ => None,
        }
    }
}

/// A string that names no store.
#[derive(Debug, thiserror::Error)]
#[error("unknown store {0:?}")]
pub struct UnknownStore(pub String);

impl std::str::FromStr for StoreName {
    type Err = UnknownStore;
    fn from_str(s: &str) -> Result<Self, UnknownStore> {
        StoreName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| UnknownStore(s.to_string()))
    }
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for StoreName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for StoreName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AsRef<str> for StoreName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<StoreName> for String {
    fn eq(&self, other: &StoreName) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in StoreName::ALL {
            assert_eq!(n.to_string().parse::<StoreName>().unwrap(), n);
            assert_eq!(
                serde_json::to_string(&n).unwrap(),
                format!("\"{}\"", n.as_str())
            );
        }
        assert!("Local".parse::<StoreName>().is_err());
        assert_eq!(StoreName::stor("manta"), Some(StoreName::Manta));
        assert_eq!(StoreName::stor("assets"), None);
    }
}
