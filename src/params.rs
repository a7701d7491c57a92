//! A request's query parameters, in order (names may repeat), as the
//! services read them: the last value of a name, every value of it, a
//! boolean. (`api::extract` takes them from the request.)

use uuid::Uuid;

use crate::error::{Error, FieldCode};

/// Query parameters in order; names may repeat.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    /// The last value of `name` (non-empty values only).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A boolean parameter: exactly "true" or "false"; anything else
    /// (the empty string too) is 422 InvalidParameter `{name, Invalid}`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(Error::invalid_param(
                name,
                FieldCode::Invalid,
                format!("invalid \"{name}\": not a boolean: \"{v}\""),
            )),
        }
    }
}

/// Parse an `account`-like uuid parameter.
pub fn uuid_param(name: &str, v: &str) -> Result<Uuid, Error> {
    match Uuid::parse_str(v) {
        Ok(u) if v.len() == 36 => Ok(u),
        _ => Err(Error::invalid_param(
            name,
            FieldCode::Invalid,
            format!("invalid \"{name}\": not a UUID: \"{v}\""),
        )),
    }
}
