//! HTTP routes: the client API (`client`) and the calls between banks (`peer`).

pub mod client;
pub mod peer;
pub mod wire;

use crate::error::{Error, ErrorBody};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Largest request body a bank reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Header that carries the consortium key on calls between banks.
pub const PEER_KEY_HEADER: &str = "x-consortium-key";

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(client::routes())
        .nest("/peer", peer::routes(node.clone()))
        .fallback(|| async { Error::not_found("no_route", "no such route (see README for the API)") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(node)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.kind == crate::error::Kind::Internal {
            tracing::error!(code = self.code, "{}", self.message);
        }
        (status, Json(ErrorBody::from(&self))).into_response()
    }
}

/// A JSON body whose every failure (too large, not JSON, wrong shape, unknown field) is an
/// API error in our format, naming what was wrong.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(crate::error::Kind::TooLarge, "body_too_large", format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
            } else {
                Error::bad_request("bad_body", e.body_text())
            }
        })?;
        parse_json(&bytes).map(Body)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { "malformed_json" } else { "bad_field" };
        Error::bad_request(code, format!("invalid request body: {e}"))
    })
}
