//! Calls to the other banks, and which of them answer. A bank that fails a call is marked
//! offline; a background loop pings it with growing pauses until it answers, and no other
//! message goes to it meanwhile. `Peers` is the handle the rest of the bank calls through;
//! what follows a peer going down or coming back (the ring is told, the rotations it missed
//! are sent) is the composition root's `Watch`.

use crate::config::ms;
use crate::context::Context;
use crate::net::{Call, NetError, Transport};
use crate::trust::request::{self, PairKeys};
use consortium_core::rtt::Rtt;
use hyper::Method;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a call to another bank did not give an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerError {
    /// Known offline, could not connect, or timed out. The request may have been applied.
    Unreachable(String),
    /// The bank answered with an error.
    Refused(u16, String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Unreachable(m) => write!(f, "unreachable ({m})"),
            PeerError::Refused(s, m) => write!(f, "refused with {s}: {m}"),
        }
    }
}

/// The calls of the two-phase commit, whose wait for each peer is measured apart
/// (`call_measured`): a prepare's answer comes after the peer's group commit, a decide's after
/// the origin's, a finish's after the legs are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Prepare,
    Decide,
    Finish,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Decide => "decide",
            Phase::Finish => "finish",
        }
    }
}

/// What the rest of the bank does when a peer fails or comes back (wired by `node.rs`).
pub trait Watch: Send + Sync + 'static {
    /// A call to `peer` failed (before it is marked offline).
    fn failed(&self, peer: &str);
    /// `peer` answered a ping (before it is marked online).
    fn answered(&self, peer: &str);
    /// `peer` is back: marked online, its return reported.
    fn back(&self, peers: &Peers, peer: &str);
}

/// The handle for calls to other banks (see the module). Cheap to clone.
#[derive(Clone)]
pub struct Peers(Arc<PeersParts>);

pub struct PeersParts {
    ctx: Context,
    /// The keys this bank authenticates its requests with, one pair per other bank.
    pub pairs: PairKeys,
    transport: Arc<dyn Transport>,
    /// Nonces of this bank's requests: a stream of its own, so signing draws nothing from
    /// the RNG that times the protocol.
    nonce_rng: Mutex<ChaCha8Rng>,
    table: Table,
    /// The measured round trips of each peer's two-phase-commit answers.
    waits: Mutex<BTreeMap<(String, Phase), Rtt>>,
    watch: Box<dyn Watch>,
}

impl Deref for Peers {
    type Target = PeersParts;

    fn deref(&self) -> &PeersParts {
        &self.0
    }
}

impl Peers {
    /// Every other bank starts offline: it must answer a ping first.
    pub fn new(ctx: Context, pairs: PairKeys, transport: Arc<dyn Transport>, nonce_rng: ChaCha8Rng, watch: impl Watch) -> Peers {
        let others: Vec<String> = ctx.members.iter().filter(|m| **m != ctx.me).cloned().collect();
        Peers(Arc::new(PeersParts { ctx, pairs, transport, nonce_rng: Mutex::new(nonce_rng), table: Table::new(others), waits: Mutex::new(BTreeMap::new()), watch: Box::new(watch) }))
    }

    pub fn is_online(&self, peer: &str) -> bool {
        self.table.is_online(peer)
    }

    /// Every other bank and whether it is online.
    pub fn all(&self) -> Vec<(String, bool)> {
        self.table.all()
    }

    /// Whether a call to `bank` may be tried: this bank, or an online peer.
    pub fn reachable(&self, bank: &str) -> bool {
        bank == self.ctx.me || self.is_online(bank)
    }

    /// Starts the ping loop of every peer that has none (at start-up).
    pub fn start_pinging(&self) {
        for peer in self.table.claim_unpinged() {
            self.spawn_ping_loop(peer);
        }
    }

    fn peer_timeout(&self) -> Duration {
        ms(self.ctx.timing.peer_timeout_ms)
    }

    /// A JSON call to another bank. Refuses at once if the bank is known offline; a failure
    /// to connect or a timeout marks it offline and starts its ping loop.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<Resp, PeerError> {
        self.call_within(peer, method, path, body, self.peer_timeout()).await
    }

    /// `call` bounded by `timeout` (at most the peer timeout): a probe of the ring, whose wait
    /// the ring measures (`consortium_core::rtt`).
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        assert_ne!(peer, self.ctx.me, "local calls do not go through the network");
        if !self.is_online(peer) {
            return Err(PeerError::Unreachable(format!("{peer} is offline")));
        }
        match self.raw_call_within(peer, method, path, body, timeout).await {
            Ok(v) => Ok(v),
            Err(PeerError::Unreachable(m)) => {
                self.peer_failed(peer, &m);
                Err(PeerError::Unreachable(m))
            }
            Err(e) => Err(e),
        }
    }

    /// `call`, waiting as long as `peer`'s answers to this kind of call have taken
    /// (`consortium_core::rtt`, within [`call_floor_ms`, `peer_timeout_ms`]): the token's
    /// holder waits on these calls, and the whole consortium with it, so a peer that stopped
    /// answering must cost about its usual round trip, not the longest wait.
    pub async fn call_measured<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        phase: Phase,
        path: &str,
        body: &Req,
    ) -> Result<Resp, PeerError> {
        let timeout = self.wait_for(peer, phase);
        let began = tokio::time::Instant::now();
        let r = self.call_within(peer, Method::POST, path, Some(body), timeout).await;
        let mut waits = self.waits.lock().unwrap();
        let rtt = waits.entry((peer.to_string(), phase)).or_default();
        match &r {
            // A refusal is an answer too: it measures the round trip as well as a vote.
            Ok(_) | Err(PeerError::Refused(..)) => rtt.sample(began.elapsed()),
            Err(PeerError::Unreachable(_)) => rtt.failed(),
        }
        r
    }

    /// How long the next `phase` call to `peer` waits for its answer.
    pub fn wait_for(&self, peer: &str, phase: Phase) -> Duration {
        let t = &self.ctx.timing;
        let rtt = self.waits.lock().unwrap().get(&(peer.to_string(), phase)).copied().unwrap_or_default();
        rtt.timeout(ms(t.call_floor_ms), ms(t.peer_timeout_ms))
    }

    /// A call that ignores (and does not change) the peer's online mark: pings, and reads a
    /// client asked for.
    pub async fn raw_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<Resp, PeerError> {
        self.send(peer, method, path, body, false, self.peer_timeout()).await
    }

    /// `raw_call` bounded by `timeout` (at most the peer timeout): a token pass, whose wait
    /// the ring measures (`consortium_core::rtt`).
    pub async fn raw_call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        self.send(peer, method, path, body, false, timeout.min(self.peer_timeout())).await
    }

    /// Asks an offline bank whether it is back, on a new connection: the pooled ones may
    /// belong to its previous life (found by fuzzing: after a restart, a bank whose pool held
    /// old connections to it failed every ping on them for the rest of the run).
    pub async fn ping(&self, peer: &str) -> Result<crate::wire::Ping, PeerError> {
        self.send::<(), _>(peer, Method::GET, "/peer/ping", None, true, self.peer_timeout()).await
    }

    async fn send<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        fresh: bool,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("wire types serialize"));
        let mut call = Call::new(method, path, bytes, timeout);
        call.fresh_connection = fresh;
        let nonce: [u8; 16] = self.nonce_rng.lock().unwrap().random();
        request::sign_call(&self.pairs, peer, &mut call, self.ctx.clock.now_ms(), nonce);
        match self.transport.call(peer, call).await {
            Ok(reply) if reply.status.is_success() => serde_json::from_slice(&reply.body)
                .map_err(|e| PeerError::Refused(reply.status.as_u16(), format!("unreadable answer: {e}"))),
            // A bank that is not ready (its storage stuck) is down for its callers.
            Ok(reply) if reply.status == hyper::StatusCode::SERVICE_UNAVAILABLE => {
                Err(PeerError::Unreachable(format!("{peer} is not ready: {}", String::from_utf8_lossy(&reply.body))))
            }
            Ok(reply) => Err(PeerError::Refused(reply.status.as_u16(), String::from_utf8_lossy(&reply.body).into_owned())),
            Err(NetError::Timeout) => Err(PeerError::Unreachable(format!("{peer} timed out"))),
            Err(NetError::Unreachable(m)) => Err(PeerError::Unreachable(format!("{peer}: {m}"))),
        }
    }

    /// A call to `peer` failed: it is offline until it answers a ping.
    pub fn peer_failed(&self, peer: &str, why: &str) {
        self.watch.failed(peer);
        if self.table.mark_offline(peer) {
            self.ctx.emit("peer_offline", format!("{peer}: {why}"));
            self.spawn_ping_loop(peer.to_string());
        }
    }

    /// Pings an offline bank with growing, jittered pauses until it answers.
    fn spawn_ping_loop(&self, peer: String) {
        let peers = self.clone();
        tokio::spawn(async move {
            let ctx = &peers.ctx;
            let max = ms(ctx.timing.ping_backoff_max_ms);
            let mut pause = ms(50).min(max);
            loop {
                match peers.ping(&peer).await {
                    Ok(p) if p.bank == peer => {
                        peers.watch.answered(&peer);
                        if peers.table.mark_online(&peer) {
                            ctx.emit("peer_online", peer.clone());
                        }
                        peers.watch.back(&peers, &peer);
                        return;
                    }
                    Ok(p) => ctx.emit("peer_misconfigured", format!("{peer} says it is {}", p.bank)),
                    Err(_) => {}
                }
                tokio::time::sleep(pause + ctx.jitter(pause / 2)).await;
                pause = (pause * 2).min(max);
            }
        });
    }
}

/// Which other banks are online, and which have a ping loop running.
#[derive(Debug, Default)]
pub struct Table {
    inner: Mutex<BTreeMap<String, PeerState>>,
}

#[derive(Debug, Clone, Default)]
struct PeerState {
    online: bool,
    /// A ping loop is running for this peer.
    pinging: bool,
}

impl Table {
    /// Every other bank starts offline: it must answer a ping first.
    pub fn new(others: impl IntoIterator<Item = String>) -> Table {
        Table { inner: Mutex::new(others.into_iter().map(|p| (p, PeerState::default())).collect()) }
    }

    pub fn is_online(&self, peer: &str) -> bool {
        self.inner.lock().unwrap().get(peer).is_some_and(|s| s.online)
    }

    pub fn all(&self) -> Vec<(String, bool)> {
        self.inner.lock().unwrap().iter().map(|(p, s)| (p.clone(), s.online)).collect()
    }

    /// Marks a peer offline. Returns true if the caller must start its ping loop.
    pub fn mark_offline(&self, peer: &str) -> bool {
        let mut m = self.inner.lock().unwrap();
        let Some(s) = m.get_mut(peer) else { return false };
        s.online = false;
        !std::mem::replace(&mut s.pinging, true)
    }

    /// The ping loop got an answer. Returns true if the peer was offline before.
    pub fn mark_online(&self, peer: &str) -> bool {
        let mut m = self.inner.lock().unwrap();
        let Some(s) = m.get_mut(peer) else { return false };
        s.pinging = false;
        !std::mem::replace(&mut s.online, true)
    }

    /// Claims the ping loop of every peer that has none (at start-up).
    pub fn claim_unpinged(&self) -> Vec<String> {
        let mut m = self.inner.lock().unwrap();
        m.iter_mut().filter(|(_, s)| !s.online && !s.pinging).map(|(p, s)| {
            s.pinging = true;
            p.clone()
        }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_loop_per_offline_peer() {
        let p = Table::new(["a".to_string(), "b".to_string()]);
        assert!(!p.is_online("a"));
        assert_eq!(p.claim_unpinged(), vec!["a", "b"]);
        assert!(p.claim_unpinged().is_empty());
        assert!(p.mark_online("a"));
        assert!(p.is_online("a"));
        assert!(p.mark_offline("a"), "first failure starts a loop");
        assert!(!p.mark_offline("a"), "a second failure does not start another");
        assert!(!p.mark_offline("zzz"), "unknown peers are ignored");
    }
}
