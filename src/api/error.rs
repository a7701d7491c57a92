//! How an `Error` goes on the wire: the HTTP status and the JSON body
//! `{code, message, errors?}`. 5xx bodies never carry the internal cause:
//! it goes into a `LoggedError` response extension for the logging
//! middleware instead.

use crate::error::{Error, FieldError};
use crate::wire::{self, ErrorBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `errors[]` on the wire.
fn wire_field_errors(errors: &[FieldError]) -> Vec<wire::FieldError> {
    errors
        .iter()
        .map(|e| wire::FieldError {
            field: e.field.clone(),
            // The variant name, as `FieldCode` serializes.
            code: format!("{:?}", e.code),
            message: e.message.clone(),
        })
        .collect()
}

/// Marker put in response extensions so the logging middleware can log the
/// full cause of an error response.
#[derive(Clone)]
pub struct LoggedError {
    pub code: &'static str,
    pub detail: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let errors = match &self {
            Error::ValidationFailed { errors, .. }
            | Error::InvalidParameter { errors, .. }
            | Error::ChecksumMismatch { errors, .. } => Some(wire_field_errors(errors)),
            _ => None,
        };
        let body = ErrorBody {
            code: self.code().into(),
            message: self.to_string(),
            errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
        if matches!(
            self,
            Error::StorageIsDown(_) | Error::DatabaseUnavailable(_) | Error::TooManyRequests(_)
        ) {
            // The store is expected back, or a slot free: tell clients
            // when to try again.
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(crate::error::RETRY_AFTER_SECS),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_a_valid_http_status() {
        for e in Error::catalog() {
            assert!(StatusCode::from_u16(e.status()).is_ok(), "{}", e.code());
        }
    }

    #[test]
    fn field_codes_go_on_the_wire_as_they_serialize() {
        use crate::error::FieldCode::*;
        for c in [MissingParameter, Invalid, NotAllowed, Missing, Mismatch] {
            let fe = FieldError::new("f", c);
            let w = &wire_field_errors(std::slice::from_ref(&fe))[0];
            assert_eq!(
                serde_json::to_value(&fe).unwrap(),
                serde_json::to_value(w).unwrap()
            );
        }
    }
}
