//! One bank's runtime state and the few primitives every async part shares: storage calls,
//! calls to other banks (with reachability tracking), and counters.

use crate::wire::{Counters, PeerView, StatusView, TokenView};
use crate::clock::WallClock;
use crate::trust::keys::BankKey;
use crate::trust::manifest::Manifest;
use crate::trust::request::{self, Nonces};
use crate::config::{ms, Config, Timing};
use crate::error::Error;
use crate::events::{Events, NodeEvent};
use crate::net::{Call, NetError, Transport};
use crate::peers::Peers;
use crate::ring::driver::RingHandle;
use crate::ring::machine::Event;
use crate::ring::{Ring, RingMachine};
use crate::store::Store;
use hyper::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use std::time::Duration;
use std::collections::BTreeMap;

pub use crate::planted::PlantedBug;

/// Who this bank is and who the others are: its key and the consortium manifest.
#[derive(Clone)]
pub struct Identity {
    pub key: BankKey,
    pub manifest: Arc<Manifest>,
}

/// How the node reaches the world: the seams production and simulation fill differently.
pub struct Env {
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn WallClock>,
    pub events: Arc<dyn Events>,
    pub rng_seed: u64,
    /// Call the store inline (simulation: no threads) or on tokio's blocking pool.
    pub inline_storage: bool,
    pub planted: PlantedBug,
    /// The simulator's stalled disk: while set, every storage call waits. None in production.
    pub disk_stall: Option<Arc<AtomicBool>>,
}

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

pub struct Node {
    pub me: String,
    pub timing: Timing,
    pub key: BankKey,
    pub manifest: Arc<Manifest>,
    /// The keys this bank authenticates its requests with, one pair per other bank.
    pub pairs: request::PairKeys,
    pub clock: Arc<dyn WallClock>,
    /// Nonces of recent requests from other banks (replays are refused).
    pub nonces: Mutex<Nonces>,
    /// Nonces of recent read statements of users and tellers (a replayed read is refused);
    /// apart from the banks', so a flood of reads cannot crowd out the ring's messages.
    pub read_nonces: Mutex<Nonces>,
    /// This bank's clock when it started: its nonces are in memory, so a read statement made
    /// before then could be one it already answered (and forgot).
    pub started_ms: u64,
    /// Users whose key rotations a bank that was down has not received, by bank.
    pub rotations_pending: Mutex<BTreeMap<String, std::collections::BTreeSet<crate::domain::Cpf>>>,
    pub limits: crate::limits::Limits,
    /// This bank's tellers' keys (cash deposits need one's signature).
    pub tellers: Vec<crate::trust::keys::PublicKey>,
    /// Registrations need an operator's (a teller key's) approval.
    pub require_approval: bool,
    pub planted: PlantedBug,
    /// Client requests per address (a token bucket each).
    pub rate: Mutex<crate::limits::RateLimiter>,
    pub store: Store,
    pub inline_storage: bool,
    pub disk_stall: Option<Arc<AtomicBool>>,
    /// Storage calls in progress, by when they started: one that outlasts its bound makes
    /// the bank not ready (see `storage_stuck`).
    storage_calls: Mutex<(u64, BTreeMap<u64, Instant>)>,
    pub transport: Arc<dyn Transport>,
    pub events: Arc<dyn Events>,
    pub rng: Mutex<ChaCha8Rng>,
    /// Nonces of this bank's requests: a stream of its own, so signing draws nothing from
    /// the RNG that times the protocol.
    pub nonce_rng: Mutex<ChaCha8Rng>,
    /// Every bank, in ring order, this one included.
    pub members: Vec<String>,
    /// The ring's owner task: events in, answers and a view out.
    pub ring: RingHandle,
    pub peers: Peers,
    /// Writes waiting for the next group commit.
    pub writer: crate::writer::Writer,
    /// This origin's pending packages.
    pub intake: crate::package::intake::Intake,
    /// Clients waiting for the outcome of a package accepted here, by package id.
    pub waiters: Mutex<BTreeMap<String, Arc<crate::package::intake::Waiter>>>,
    pub counters: Mutex<Counters>,
}

impl Node {
    pub fn new(config: &Config, identity: Identity, store: Store, env: Env) -> Result<Arc<Node>, Error> {
        let me = config.me();
        let bad = |m: String| Error::bad_request("bad_identity", m);
        match identity.manifest.key_of(&me) {
            None => return Err(bad(format!("this bank ({me}) is not in the manifest; its entry comes from `node init`"))),
            Some(k) if *k != identity.key.public() => {
                return Err(bad(format!("the manifest lists another public key for {me} than this bank's key ({:?})", identity.key.public())))
            }
            Some(_) => {}
        }
        let mut timing = config.timing.clone();
        timing.apply_shared(&identity.manifest.timing);
        let pairs = request::PairKeys::new(&me, &identity.key, &identity.manifest);
        let floor = store.epoch_gen()?;
        let members = Ring::new(&me, &identity.manifest.addresses(), floor).members;
        // The ring's jitter has a stream of its own (the shell's pings draw from `rng`).
        let ring = RingMachine::new(&me, &members, floor, crate::ring::driver::timing(&timing), env.rng_seed ^ 0x7269_6e67, env.planted == PlantedBug::AcceptStaleToken);
        let mut store = store;
        store.planted = env.planted;
        let intake = crate::package::intake::Intake::new(store.outbox()?);
        let others: Vec<String> = members.iter().filter(|m| **m != me).cloned().collect();
        let started_ms = env.clock.now_ms();
        Ok(Arc::new(Node {
            me,
            timing,
            pairs,
            key: identity.key,
            manifest: identity.manifest,
            clock: env.clock,
            nonces: Mutex::new(Nonces::default()),
            read_nonces: Mutex::new(Nonces::default()),
            started_ms,
            rotations_pending: Mutex::new(BTreeMap::new()),
            limits: config.limits.clone(),
            tellers: config.teller_keys.iter().filter_map(|k| crate::trust::keys::PublicKey::from_hex(k)).collect(),
            require_approval: config.require_approval,
            planted: env.planted,
            rate: Mutex::new(crate::limits::RateLimiter::new(config.limits.requests_per_ip_per_s)),
            store,
            inline_storage: env.inline_storage,
            disk_stall: env.disk_stall,
            storage_calls: Mutex::new((0, BTreeMap::new())),
            transport: env.transport,
            events: env.events,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(env.rng_seed)),
            nonce_rng: Mutex::new(ChaCha8Rng::seed_from_u64(env.rng_seed ^ 0x6e6f_6e63_6573)),
            members,
            ring: RingHandle::new(ring),
            peers: Peers::new(others),
            writer: Default::default(),
            intake,
            waiters: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(Counters::default()),
        }))
    }

    /// Reports a note: a kind and a line for people.
    pub fn emit(&self, kind: &'static str, detail: String) {
        self.report(NodeEvent::Note { kind, detail });
    }

    pub fn report(&self, event: NodeEvent) {
        self.events.emit(&self.me, event);
    }

    /// A message from the network was refused: it contradicts this bank's records or breaks
    /// the protocol's rules. Counted by reason and logged with its sender; never a reason to
    /// stop (the simulator counts a refusal of an honest member's message as a violation).
    /// `from` is who the message says sent it: until banks sign their messages, a claim.
    pub fn refused(&self, from: &str, e: &Error) {
        self.refused_at(from, None, e, None);
    }

    /// `refused`, for a request that came over a connection from `remote`; `nonce` when it
    /// was the replay of a request already seen.
    pub fn refused_at(&self, from: &str, remote: Option<std::net::SocketAddr>, e: &Error, nonce: Option<String>) {
        self.count_refusal(e.code);
        self.report(NodeEvent::Refused { from: from.to_string(), remote, code: e.code, message: e.message.clone(), nonce });
    }

    /// `refused`, handing the error back for the caller to answer with.
    pub fn refuse(&self, from: &str, e: Error) -> Error {
        self.refused(from, &e);
        e
    }

    /// Counts a refusal by reason without logging it: the limits (connections past a cap,
    /// requests past a rate) turn floods away and must not flood the log too.
    pub fn count_refusal(&self, code: &str) {
        self.count(|c| *c.refused.entry(code.to_string()).or_default() += 1);
    }

    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().unwrap());
    }

    pub fn members(&self) -> Vec<String> {
        self.members.clone()
    }

    pub fn is_member(&self, bank: &str) -> bool {
        self.members.iter().any(|m| m == bank)
    }

    /// Whether a call to `bank` may be tried: this bank, or an online peer.
    pub fn reachable(&self, bank: &str) -> bool {
        bank == self.me || self.peers.is_online(bank)
    }

    /// Runs a store operation: inline in simulation, on a blocking thread in production.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _call = StorageCall::start(self);
        if let Some(stall) = &self.disk_stall {
            while stall.load(Ordering::Relaxed) {
                tokio::time::sleep(ms(1)).await;
            }
        }
        if self.inline_storage {
            return f(&self.store);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| Error::internal(format!("storage task: {e}")))?
    }

    /// How long the oldest storage call in progress has taken, if longer than its bound (the
    /// peer timeout: a caller would have given up by then). Such a bank is not ready: it
    /// answers other banks 503 until the call completes, and they treat it as down. It never
    /// answers "failed" for the call itself: the write may still land.
    pub fn storage_stuck(&self) -> Option<Duration> {
        let calls = self.storage_calls.lock().unwrap();
        let oldest = calls.1.values().min()?;
        let age = Instant::now().saturating_duration_since(*oldest);
        (age > ms(self.timing.peer_timeout_ms)).then_some(age)
    }

    pub fn jitter(&self, max: Duration) -> Duration {
        let m = max.as_millis() as u64;
        if m == 0 {
            return Duration::ZERO;
        }
        ms(self.rng.lock().unwrap().random_range(0..m))
    }

    /// A JSON call to another bank. Refuses at once if the bank is known offline; a failure
    /// to connect or a timeout marks it offline and starts its ping loop.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        self: &Arc<Self>,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<Resp, PeerError> {
        self.call_within(peer, method, path, body, ms(self.timing.peer_timeout_ms)).await
    }

    /// `call` bounded by `timeout` (at most the peer timeout): a probe of the ring, whose wait
    /// the ring measures (`ring::rtt`).
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        self: &Arc<Self>,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        timeout: std::time::Duration,
    ) -> Result<Resp, PeerError> {
        debug_assert_ne!(peer, self.me, "local calls do not go through the network");
        if !self.peers.is_online(peer) {
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

    /// A call that ignores (and does not change) the peer's online mark: pings, and reads a
    /// client asked for.
    pub async fn raw_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> Result<Resp, PeerError> {
        self.send(peer, method, path, body, false, ms(self.timing.peer_timeout_ms)).await
    }

    /// `raw_call` bounded by `timeout` (at most the peer timeout): a token pass, whose wait
    /// the ring measures (`ring::rtt`).
    pub async fn raw_call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        timeout: std::time::Duration,
    ) -> Result<Resp, PeerError> {
        self.send(peer, method, path, body, false, timeout.min(ms(self.timing.peer_timeout_ms))).await
    }

    /// Asks an offline bank whether it is back, on a new connection: the pooled ones may
    /// belong to its previous life (found by fuzzing: after a restart, a bank whose pool held
    /// old connections to it failed every ping on them for the rest of the run).
    pub async fn ping(&self, peer: &str) -> Result<crate::wire::Ping, PeerError> {
        self.send::<(), _>(peer, Method::GET, "/peer/ping", None, true, ms(self.timing.peer_timeout_ms)).await
    }

    async fn send<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &str,
        method: Method,
        path: &str,
        body: Option<&Req>,
        fresh: bool,
        timeout: std::time::Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("wire types serialize"));
        let mut call = Call::new(method, path, bytes, timeout);
        call.fresh_connection = fresh;
        let nonce: [u8; 16] = self.nonce_rng.lock().unwrap().random();
        request::sign_call(&self.pairs, peer, &mut call, self.clock.now_ms(), nonce);
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

    pub fn peer_failed(self: &Arc<Self>, peer: &str, why: &str) {
        self.ring.tell(Event::PeerDown(peer.to_string()));
        if self.peers.mark_offline(peer) {
            self.emit("peer_offline", format!("{peer}: {why}"));
            crate::server::spawn_ping_loop(self.clone(), peer.to_string());
        }
    }

    pub async fn status(&self) -> Result<StatusView, Error> {
        let queued = self.intake.pending_count();
        let in_doubt = self.db(|s| Ok(s.in_doubt()?.len())).await?;
        let ring = self.ring.view();
        Ok(StatusView {
            bank: self.me.clone(),
            peers: self.peers.all().into_iter().map(|(bank, online)| PeerView { bank, online }).collect(),
            token: TokenView { epoch: ring.newest.as_ref().map(|e| e.to_string()), held: ring.holding, hop: ring.last_hop },
            queued,
            in_doubt,
            counters: self.counters.lock().unwrap().clone(),
        })
    }
}

/// A storage call in progress, registered until it ends (or its future is dropped).
struct StorageCall<'a> {
    node: &'a Node,
    id: u64,
}

impl<'a> StorageCall<'a> {
    fn start(node: &'a Node) -> StorageCall<'a> {
        let mut calls = node.storage_calls.lock().unwrap();
        let id = calls.0;
        calls.0 += 1;
        calls.1.insert(id, Instant::now());
        StorageCall { node, id }
    }
}

impl Drop for StorageCall<'_> {
    fn drop(&mut self) {
        self.node.storage_calls.lock().unwrap().1.remove(&self.id);
    }
}
