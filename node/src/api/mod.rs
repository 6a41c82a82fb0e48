//! HTTP routes: the client API (`client`) and the calls between banks (`peer`).

pub mod admin;
pub mod client;
pub mod openapi;
pub mod peer;

use crate::error::{Error, ErrorBody};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Longest a bank waits for a request's body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest request body a bank reads from a client.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest request body between banks: a token carries up to `ring::driver::MAX_QUEUE`
/// packages and a prepare up to a batch of them, each up to a client body in size.
pub const MAX_PEER_BODY_BYTES: usize = 32 << 20;

/// The address a connection came from (set on every request by `server::serve`, in
/// production and in the simulator). A refused request is logged with it: until the
/// signature is checked, it is all that is known of the sender.
#[derive(Clone, Copy, Debug)]
pub struct Remote(pub std::net::SocketAddr);

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(Router::from(client::routes()).merge(admin::routes()).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).layer(axum::middleware::from_fn_with_state(node.clone(), rate_limit)))
        .nest("/peer", peer::routes(node.clone()).layer(DefaultBodyLimit::max(MAX_PEER_BODY_BYTES)))
        .fallback(|| async { ApiError(Error::not_found("no_route", "no such route (see README for the API)")) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(node)
}

/// Client requests beyond the per-address rate get 429 (calls between banks are signed by
/// members and not limited).
async fn rate_limit(axum::extract::State(node): axum::extract::State<Arc<Node>>, req: Request, next: axum::middleware::Next) -> Response {
    let ip = req.extensions().get::<axum::extract::ConnectInfo<Remote>>().map(|c| c.0 .0.ip());
    if let Some(ip) = ip {
        let allowed = node.rate.lock().unwrap().allow(ip, tokio::time::Instant::now());
        if !allowed {
            node.ctx.count_refusal("rate_limited");
            let e = Error::new(crate::error::Kind::TooMany, "rate_limited", format!("too many requests from {ip}; slow down"));
            return answer(e);
        }
    }
    next.run(req).await
}

/// An error as the API answers it: `{"error":{"code","message"}}` with its HTTP status. The
/// error type lives in the core crate, which cannot see axum; this is its face on the wire.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if e.kind == crate::error::Kind::Internal {
            tracing::error!(code = e.code, "{}", e.message);
        }
        (status, Json(ErrorBody::from(&e))).into_response()
    }
}

/// Answers an error (for middleware, which builds responses itself).
pub fn answer(e: Error) -> Response {
    ApiError(e).into_response()
}

/// A JSON body whose every failure (too large, not JSON, wrong shape, unknown field) is an
/// API error in our format, naming what was wrong.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let read = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state));
        let bytes = read.await.map_err(|_| Error::new(crate::error::Kind::BadRequest, "body_timeout", "the request body did not arrive in time"))?.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(crate::error::Kind::TooLarge, "body_too_large", format!("the request body is over the limit ({MAX_BODY_BYTES} bytes for clients)"))
            } else {
                Error::bad_request("bad_body", e.body_text())
            }
        })?;
        Ok(parse_json(&bytes).map(Body)?)
    }
}

/// A JSON body of a call between banks: like `Body`, and a body that does not parse is a
/// refused message (counted and logged), since no honest member sends one.
pub struct PeerBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Node>> for PeerBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let path = req.uri().path().to_string();
        let from = req.extensions().get::<peer::Sender>().map_or_else(|| "unknown".to_string(), |s| s.0.clone());
        match Body::<T>::from_request(req, node).await {
            Ok(Body(v)) => Ok(PeerBody(v)),
            Err(ApiError(e)) => {
                node.ctx.refused(&from, &Error::new(e.kind, e.code, format!("{path}: {}", e.message)));
                Err(ApiError(e))
            }
        }
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { "malformed_json" } else { "bad_field" };
        Error::bad_request(code, format!("invalid request body: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::domain::Cents;
    use crate::node::Env;
    use crate::package::{AccountRef, OpKind, Operation, Package};
    use crate::ring::{Epoch, Queued, Token};
    use crate::store::{simdisk::SimDisk, Store};
    use axum::body::Body as AxBody;
    use tower::ServiceExt;

    async fn post(router: Router, path: &str, body: Vec<u8>) -> u16 {
        let req = axum::http::Request::post(path).header("content-type", "application/json").body(AxBody::from(body)).unwrap();
        router.oneshot(req).await.unwrap().status().as_u16()
    }

    /// A bank `a:1` of a two-bank consortium (with `b:1`, keys from seeds 1 and 2), on simulated
    /// storage and a fixed clock, not serving: for requests through `router`.
    pub(crate) fn test_node() -> Arc<Node> {
        use crate::trust::keys::BankKey;
        use crate::trust::manifest::{BankEntry, Manifest};
        let (a, b) = (BankKey::from_seed([1; 32]), BankKey::from_seed([2; 32]));
        let entry = |addr: &str, k: &BankKey| BankEntry { address: addr.into(), public_key: k.public().to_hex() };
        let manifest = Manifest::new(vec![entry("a:1", &a), entry("b:1", &b)], Default::default()).unwrap();
        let identity = crate::node::Identity { key: a, manifest: std::sync::Arc::new(manifest) };
        let config = Config { listen: "a:1".into(), ..Config::default() };
        let env = Env {
            disk_stall: None,
            clock: std::sync::Arc::new(crate::clock::FixedClock(1_000_000)),
            transport: std::sync::Arc::new(crate::net::tcp_transport()),
            events: std::sync::Arc::new(crate::events::LogEvents),
            rng_seed: 1,
            inline_storage: true,
            planted: Default::default(),
        };
        crate::node::Node::new(&config, identity, Store::open_backend(SimDisk::new(1).backend()).unwrap(), env).unwrap()
    }

    #[tokio::test]
    async fn big_tokens_pass_but_big_client_bodies_do_not() {
        let b = crate::trust::keys::BankKey::from_seed([2; 32]);
        let node = test_node();
        // The ring's owner answers token passes (no ping loop: b never answers, and stays offline).
        tokio::spawn(crate::ring::driver::run(node.driver()));
        let op = Operation { kind: OpKind::Deposit, from: None, to: Some(AccountRef { bank: "a:1".into(), account: "000001".into() }), amount: Cents(1) };
        let mut token = Token::new(Epoch { gen: 1, creator: "b:1".into() });
        token.hop = 1;
        for i in 0..1000 {
            token.queue.push(Queued { package: Package { id: format!("package-{i}"), operations: vec![op.clone()], ..Default::default() }, origin: "b:1".into() });
        }
        let pass = serde_json::to_vec(&crate::wire::TokenPass { from: "b:1".into(), token }).unwrap();
        assert!(pass.len() > 2 * MAX_BODY_BYTES, "the test token is big: {}", pass.len());
        assert_eq!(post(router(node.clone()), "/peer/token", pass.clone()).await, 401, "unsigned");
        // Signed by b (as b's node would sign it) for a.
        let s = crate::trust::request::Signed {
            from: "b:1",
            to: "a:1",
            manifest: node.ctx.manifest.hash(),
            method: "POST",
            path: "/peer/token",
            time_ms: 1_000_000,
            nonce: [3; 16],
            body_len: pass.len() as u64,
            body_sha: crate::trust::request::body_sha(&pass),
        };
        let b_keys = crate::trust::request::PairKeys::new("b:1", &b, &node.ctx.manifest);
        let auth = crate::trust::request::sign(&b_keys, &s).unwrap();
        let req = axum::http::Request::post("/peer/token").header("content-type", "application/json").header("x-bank-auth", &auth).body(AxBody::from(pass.clone())).unwrap();
        let resp = router(node.clone()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert_eq!(status, 200, "a member may send a big token: {}", String::from_utf8_lossy(&body));
        let req = axum::http::Request::post("/peer/token").header("content-type", "application/json").header("x-bank-auth", &auth).body(AxBody::from(pass)).unwrap();
        assert_eq!(router(node.clone()).oneshot(req).await.unwrap().status().as_u16(), 401, "the same request again is a replay");
        let user = format!("{{\"cpf\":\"52998224725\",\"name\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(post(router(node), "/users", user.into_bytes()).await, 413);
    }
}
