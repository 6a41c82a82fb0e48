//! The simulated network seams: the node's real axum server and hyper client over turmoil's
//! TCP, plus a chaos layer that loses and duplicates messages (turmoil only delays, holds and
//! partitions).
//!
//! - `SimListener`: `axum::serve::Listener` over `turmoil::net::TcpListener`.
//! - `SimConnector`: a hyper-util connector (`tower::Service<Uri>`) over
//!   `turmoil::net::TcpStream`, for `node::net::HttpTransport`.
//! - `ChaosTransport`: wraps any `Transport`; with seeded probabilities it loses the request,
//!   loses the reply ("timed out but applied"), or sends the request a second time a little
//!   later. It also carries the harness's token hooks (lose the next token pass; remember
//!   passes so a copy can be injected later).

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use node::wire::TokenPass;
use node::events::{Events, NodeEvent};
use node::net::{BoxFuture, Call, HttpTransport, NetError, Reply, Transport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The port every simulated bank listens on.
pub const PORT: u16 = 7000;

/// axum's listener over turmoil's.
pub struct SimListener(pub turmoil::net::TcpListener);

impl SimListener {
    pub async fn bind() -> io::Result<SimListener> {
        Ok(SimListener(turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                // Like axum's own listener: a failed accept is retried after a pause.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A turmoil TCP stream that hyper-util accepts as a connection.
pub struct SimStream(pub turmoil::net::TcpStream);

impl Connection for SimStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// hyper-util connector over turmoil TCP: `http://bank3:7000/...` connects to host `bank3`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimConnector;

impl tower::Service<Uri> for SimConnector {
    type Response = TokioIo<SimStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<SimStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in uri"))?.to_string();
            let port = uri.port_u16().unwrap_or(80);
            let s = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(TokioIo::new(SimStream(s)))
        })
    }
}

/// The node's own HTTP transport over turmoil. Idle connections never expire (see
/// `HttpTransport::with_idle_timeout`: hyper's idle sweep would make runs differ).
pub fn sim_http() -> HttpTransport<SimConnector> {
    HttpTransport::with_idle_timeout(SimConnector, None)
}

/// Network misbehaviour on top of turmoil's latency.
#[derive(Clone, Debug, Default)]
pub struct ChaosConfig {
    /// Probability a request is lost (half before it is delivered, half after: the reply).
    pub loss: f64,
    /// Probability a request is delivered a second time, a little later.
    pub duplicate: f64,
    /// Longest delay of a duplicate.
    pub duplicate_delay_max_ms: u64,
}

/// A token pass seen on the network, kept so a copy can be injected later.
#[derive(Clone, Debug)]
pub struct SeenPass {
    pub to: String,
    pub call: Call,
    pub epoch_gen: u64,
    pub epoch: String,
    pub hop: u64,
}

/// State shared by every bank's chaos layer in one simulation (one thread).
#[derive(Debug, Default)]
pub struct ChaosShared {
    pub inner: Mutex<ChaosState>,
}

#[derive(Debug, Default)]
pub struct ChaosState {
    /// Lose the next token pass sent by this bank (None: by any bank).
    pub drop_next_token: Option<Option<String>>,
    /// Recent token passes, oldest first.
    pub passes: Vec<SeenPass>,
    /// The last pass seen of each epoch generation (for stale copies after a regeneration).
    pub last_of_gen: std::collections::BTreeMap<u64, SeenPass>,
    /// Banks whose power is off (disk crashed; the host goes down at the end of the step):
    /// nothing they send leaves.
    pub dead: std::collections::BTreeSet<String>,
    pub stats: ChaosStats,
    /// Faults are over: no more losses or duplicates (the draws still happen).
    pub calm: bool,
    /// Banks (addresses) whose replies are lost (`lose_replies`).
    pub mute: std::collections::BTreeSet<String>,
    /// Banks (addresses) whose requests, sent or received, are lost with this probability
    /// (`slow`).
    pub lossy: std::collections::BTreeMap<String, f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChaosStats {
    pub requests: u64,
    pub lost_requests: u64,
    pub lost_replies: u64,
    pub duplicated: u64,
    pub tokens_dropped: u64,
}

const PASSES_KEPT: usize = 64;

/// One bank's (or one client's) chaos layer.
pub struct ChaosTransport {
    me: String,
    inner: Arc<dyn Transport>,
    config: ChaosConfig,
    rng: Mutex<ChaCha8Rng>,
    shared: Arc<ChaosShared>,
    /// Where the layer reports what it did (the run's trace).
    events: Option<Arc<dyn Events>>,
    power: Option<(node::store::simdisk::SimDisk, u64)>,
    /// The sending bank's key and manifest hash: a request the network sends again is a new
    /// request, signed anew (the receiver refuses a replayed nonce, as it must).
    signer: Option<node::trust::request::PairKeys>,
    resent: std::sync::atomic::AtomicU64,
}

impl ChaosTransport {
    pub fn new(
        me: &str,
        inner: Arc<dyn Transport>,
        config: ChaosConfig,
        seed: u64,
        shared: Arc<ChaosShared>,
        events: Option<Arc<dyn Events>>,
    ) -> Self {
        ChaosTransport {
            me: me.to_string(),
            inner,
            config,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            shared,
            events,
            power: None,
            signer: None,
            resent: Default::default(),
        }
    }

    /// Authenticates the requests this layer sends again with the sending bank's keys.
    pub fn with_signer(mut self, keys: node::trust::request::PairKeys) -> Self {
        self.signer = Some(keys);
        self
    }

    /// Ties the layer to a simulated disk: once that disk loses power (more crashes than
    /// now), nothing more leaves this bank.
    pub fn with_power(mut self, disk: node::store::simdisk::SimDisk) -> Self {
        let base = disk.stats().crashes;
        self.power = Some((disk, base));
        self
    }

    fn emit(&self, kind: &'static str, detail: String) {
        if let Some(e) = &self.events {
            e.emit(&self.me, NodeEvent::Note { kind, detail });
        }
    }
}

/// A nonce for a request the simulator itself (re)sends: `tag` and a counter, never equal to
/// a node's random nonces in practice, and drawing nothing from any RNG.
pub(crate) fn counter_nonce(tag: u8, n: u64) -> [u8; 16] {
    let mut nonce = [tag; 16];
    nonce[8..].copy_from_slice(&n.to_be_bytes());
    nonce
}

fn timeout_after(d: Duration) -> BoxFuture<'static, Result<Reply, NetError>> {
    Box::pin(async move {
        tokio::time::sleep(d).await;
        Err(NetError::Timeout)
    })
}

impl Transport for ChaosTransport {
    fn call(&self, peer: &str, call: Call) -> BoxFuture<'static, Result<Reply, NetError>> {
        // Always the same number of draws per call, so one decision never shifts the others.
        let (r_loss, r_side, r_dup, dup_delay) = {
            let mut rng = self.rng.lock().unwrap();
            let a: f64 = rng.random();
            let b: bool = rng.random();
            let c: f64 = rng.random();
            let d: u64 = rng.random_range(1..=self.config.duplicate_delay_max_ms.max(1));
            (a, b, c, d)
        };
        let mut st = self.shared.inner.lock().unwrap();
        let power_off = self.power.as_ref().is_some_and(|(d, base)| d.stats().crashes > *base);
        if power_off || st.dead.contains(&self.me) {
            return Box::pin(async { Err(NetError::Unreachable("simulated power loss".into())) });
        }
        st.stats.requests += 1;
        let mut note: Option<(&'static str, String)> = None;
        if call.path == "/peer/token" {
            if let Some(pass) = call.body.as_deref().and_then(|b| serde_json::from_slice::<TokenPass>(b).ok()) {
                let armed = st.drop_next_token.as_ref().is_some_and(|who| who.as_ref().is_none_or(|b| *b == self.me));
                if armed {
                    st.drop_next_token = None;
                    st.stats.tokens_dropped += 1;
                    drop(st);
                    self.emit(
                        "net_token_lost",
                        format!("{} hop {} to {peer} vanishes; the sender is told it was accepted", pass.token.epoch, pass.token.hop),
                    );
                    // The sender believes the pass went through: the token is gone.
                    return Box::pin(async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok(Reply { status: hyper::StatusCode::OK, body: bytes::Bytes::from_static(b"\"accepted\"") })
                    });
                }
                if st.passes.len() >= PASSES_KEPT {
                    st.passes.remove(0);
                }
                let seen = SeenPass {
                    to: peer.to_string(),
                    call: call.clone(),
                    epoch_gen: pass.token.epoch.gen,
                    epoch: pass.token.epoch.to_string(),
                    hop: pass.token.hop,
                };
                st.last_of_gen.insert(seen.epoch_gen, seen.clone());
                st.passes.push(seen);
            }
        }
        let calm = st.calm;
        let duplicate = !calm && r_dup < self.config.duplicate;
        let link_loss = st.lossy.get(peer).copied().unwrap_or(0.0).max(st.lossy.get(&self.me).copied().unwrap_or(0.0));
        let lose = !calm && (r_loss < self.config.loss || r_loss < link_loss);
        let mute = st.mute.contains(peer);
        if mute && !lose {
            st.stats.lost_replies += 1;
        }
        if duplicate {
            st.stats.duplicated += 1;
        }
        if lose {
            if r_side {
                st.stats.lost_requests += 1;
            } else {
                st.stats.lost_replies += 1;
            }
        }
        drop(st);
        if duplicate {
            note = Some(("net_duplicate", format!("{} {peer}{} again in {dup_delay} ms", call.method, call.path)));
            let inner = self.inner.clone();
            let (peer, mut copy) = (peer.to_string(), call.clone());
            let signer = self.signer.clone();
            let n = self.resent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(dup_delay)).await;
                if let Some(keys) = signer {
                    node::trust::request::sign_call(&keys, &peer, &mut copy, crate::run::sim_wall_ms(), counter_nonce(0xd0, n));
                }
                let _ = inner.call(&peer, copy).await;
            });
        }
        if let Some((kind, what)) = note {
            self.emit(kind, what);
        }
        if lose || mute {
            let timeout = call.timeout;
            if lose && r_side {
                self.emit("net_lost_request", format!("{} {peer}{}", call.method, call.path));
                return timeout_after(timeout);
            }
            self.emit("net_lost_reply", format!("{} {peer}{}", call.method, call.path));
            let sent = self.inner.call(peer, call);
            return Box::pin(async move {
                let start = tokio::time::Instant::now();
                let _ = sent.await;
                tokio::time::sleep_until(start + timeout).await;
                Err(NetError::Timeout)
            });
        }
        self.inner.call(peer, call)
    }
}
