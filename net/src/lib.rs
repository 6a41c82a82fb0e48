//! Calls to other banks. The node only sees `Transport`; production plugs in hyper over
//! real TCP, the simulator the same hyper client over turmoil's TCP (plus a chaos layer).
//! One HTTP client in both worlds, so pooling and timeouts behave the same.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod tls;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Largest answer a bank accepts from another bank or from a server it queries.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Extra headers (the signature of a call between banks).
    pub headers: Vec<(String, String)>,
    /// Open a new connection rather than reuse a pooled one.
    pub fresh_connection: bool,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>, body: Option<Vec<u8>>, timeout: Duration) -> Call {
        Call { method, path: path.into(), body, timeout, headers: Vec::new(), fresh_connection: false }
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Could not connect, or the connection broke: the peer may be down.
    Unreachable(String),
    /// No answer in time. The request may still have been applied.
    Timeout,
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Unreachable(e) => write!(f, "unreachable: {e}"),
            NetError::Timeout => f.write_str("timed out"),
        }
    }
}

pub trait Transport: Send + Sync + 'static {
    /// One HTTP request to `peer` (`host:port`), bounded by `call.timeout`.
    fn call(&self, peer: &str, call: Call) -> BoxFuture<'static, Result<Reply, NetError>>;
}

/// hyper-util's pooled HTTP/1 client over any connector.
pub struct HttpTransport<C> {
    client: Client<C, Full<Bytes>>,
    /// The same without a pool: a new connection per call (`Call::fresh_connection`).
    unpooled: Client<C, Full<Bytes>>,
    /// `http`, or `https` over a TLS connector (`tls::https_transport`).
    scheme: &'static str,
}

/// Idle connections kept per bank. Calls between banks are few and batched (one message per
/// bank per phase, the token pass), so a few suffice; every pooled connection is one that may
/// have to fail before a restarted peer is reached again.
const POOL_IDLE_PER_HOST: usize = 8;

impl<C: Connect + Clone + Send + Sync + 'static> HttpTransport<C> {
    pub fn new(connector: C) -> Self {
        Self::with_idle_timeout(connector, Some(Duration::from_secs(30)))
    }

    /// `None` keeps idle pooled connections until they break. The simulator uses it: hyper's
    /// idle sweep walks a randomly-seeded `HashMap`, so the order in which it closes
    /// connections (and so the simulated network traffic) would differ from run to run.
    pub fn with_idle_timeout(connector: C, idle: Option<Duration>) -> Self {
        let build = |max_idle: usize| {
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(idle)
                .pool_max_idle_per_host(max_idle)
                .build(connector.clone())
        };
        HttpTransport { client: build(POOL_IDLE_PER_HOST), unpooled: build(0), scheme: "http" }
    }

    /// The same transport, calling `scheme://peer/path` (the connector must speak it).
    pub fn with_scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = scheme;
        self
    }
}

/// The production transport: plain TCP.
pub fn tcp_transport() -> HttpTransport<hyper_util::client::legacy::connect::HttpConnector> {
    let mut c = hyper_util::client::legacy::connect::HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(2)));
    HttpTransport::new(c)
}

impl<C: Connect + Clone + Send + Sync + 'static> Transport for HttpTransport<C> {
    fn call(&self, peer: &str, call: Call) -> BoxFuture<'static, Result<Reply, NetError>> {
        let client = if call.fresh_connection { self.unpooled.clone() } else { self.client.clone() };
        let uri = format!("{}://{peer}{}", self.scheme, call.path);
        Box::pin(async move {
            let has_body = call.body.is_some();
            let mut req = Request::builder().method(call.method).uri(uri);
            if has_body {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            for (k, v) in &call.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let req = req
                .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
                .map_err(|e| NetError::Unreachable(format!("bad request: {e}")))?;
            let work = async {
                let resp = client.request(req).await.map_err(|e| NetError::Unreachable(error_chain(&e)))?;
                let status = resp.status();
                let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| NetError::Unreachable(format!("reading body: {e}")))?
                    .to_bytes();
                Ok(Reply { status, body })
            };
            tokio::time::timeout(call.timeout, work).await.map_err(|_| NetError::Timeout)?
        })
    }
}

/// "client error (Connect): tcp connect error: Connection refused" rather than only the
/// outermost layer, so a person can tell a refused connection from a reset.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

