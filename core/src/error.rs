//! One error type for everything a client or a peer can be told, with its HTTP status.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    BadRequest,
    /// No valid credentials (a missing or wrong signature).
    Unauthorized,
    /// Valid credentials, but not allowed to do this.
    Forbidden,
    NotFound,
    /// Was here once, may be gone for good (a compacted package: 410).
    Gone,
    Conflict,
    Rule,
    TooLarge,
    /// Too many requests from one address (429).
    TooMany,
    Unavailable,
    Internal,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::Gone => 410,
            Kind::Conflict => 409,
            Kind::Rule => 422,
            Kind::TooLarge => 413,
            Kind::TooMany => 429,
            Kind::Unavailable => 503,
            Kind::Internal => 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub code: &'static str,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Error {
        Error { kind, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::BadRequest, code, m)
    }
    pub fn unauthorized(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Unauthorized, code, m)
    }
    pub fn forbidden(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Forbidden, code, m)
    }
    pub fn not_found(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, code, m)
    }
    pub fn conflict(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, code, m)
    }
    pub fn rule(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Rule, code, m)
    }
    pub fn gone(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Gone, code, m)
    }
    pub fn unavailable(code: &'static str, m: impl Into<String>) -> Error {
        Error::new(Kind::Unavailable, code, m)
    }
    pub fn internal(m: impl Into<String>) -> Error {
        Error::new(Kind::Internal, "internal", m)
    }
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

/// The JSON shape of an error: `{"error":{"code","message"}}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody { error: ErrorDetail { code: e.code.to_string(), message: e.message.clone() } }
    }
}
