//! The composition root: builds one bank's handles and holds them for the HTTP layer (`api`,
//! `server`). Nothing below it imports it: each async part holds only the handles it uses.
//!
//! - `Context` (`context.rs`): who this bank is, its timings and clock, its reports.
//! - `Storage` (`store/storage.rs`): storage calls, and the bookkeeping of stuck ones.
//! - `Peers` (`peers.rs`): calls to other banks, which answer, and their ping loops.
//! - `RingHandle` (`ring/handle.rs`): events to the ring's owner task, and its view.
//! - `Writer` (`package/writer.rs`): group-committed package writes.
//! - `Intake` (`package/intake.rs`): the origin's outbox and the clients waiting on it.
//! - `Executor` (`package/executor.rs`): the two-phase commit, for the ring, the resolver
//!   and the peer routes.
//! - `Reads` (`trust/read.rs`): users' signed reads and their replay guard.
//! - `Rotations` (`rotations.rs`): passing users' key rotations on to the other banks.

use crate::clock::WallClock;
use crate::config::{ms, Config};
use crate::context::Context;
use crate::error::Error;
use crate::events::Events;
use crate::net::Transport;
use crate::package::executor::Executor;
use crate::package::intake::Intake;
use crate::package::writer::{Committer, Writer};
use crate::peers::{Peers, Watch};
use crate::ring::driver::Driver;
use crate::ring::handle::timing as ring_timing;
use crate::ring::machine::Event;
use crate::ring::{Ring, RingHandle, RingMachine};
use crate::store::{Storage, Store};
use crate::trust::keys::BankKey;
use crate::trust::manifest::Manifest;
use crate::trust::read::Reads;
use crate::trust::request::{self, Nonces};
use crate::rotations::Rotations;
use crate::wire::{PeerView, StatusView, TokenView};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

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

/// One bank: its handles, and what only the HTTP layer uses.
pub struct Node {
    pub ctx: Context,
    pub storage: Storage,
    pub peers: Peers,
    /// The ring's owner task: events in, answers and a view out.
    pub ring: RingHandle,
    /// Writes waiting for the next group commit.
    pub writer: Writer,
    /// This origin's pending packages and the clients waiting for them.
    pub intake: Intake,
    /// The two-phase commit, for the peer routes (the ring's driver and the resolver hold
    /// their own clones).
    pub executor: Executor,
    /// Checks users' and tellers' signed reads.
    pub reads: Reads,
    /// Users' key rotations, passed on to the other banks.
    pub rotations: Rotations,
    /// Nonces of recent requests from other banks (replays are refused).
    pub nonces: Mutex<Nonces>,
    pub limits: crate::limits::Limits,
    /// Registrations need an operator's (a teller key's) approval.
    pub require_approval: bool,
    /// Client requests per address (a token bucket each).
    pub rate: Mutex<crate::limits::RateLimiter>,
}

/// What follows a peer failing or coming back: the ring is told, and a bank that is back
/// gets the key rotations it missed.
struct PeerWatch {
    ring: RingHandle,
    rotations: Rotations,
}

impl Watch for PeerWatch {
    fn failed(&self, peer: &str) {
        self.ring.tell(Event::PeerDown(peer.to_string()));
    }

    fn answered(&self, peer: &str) {
        self.ring.tell(Event::PeerUp(peer.to_string()));
    }

    fn back(&self, peers: &Peers, peer: &str) {
        self.rotations.flush(peers, peer);
    }
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
        // The ring's jitter has a stream of its own (the shell's pings draw from the context's).
        let machine = RingMachine::new(&me, &members, floor, ring_timing(&timing), env.rng_seed ^ 0x7269_6e67, env.planted == PlantedBug::AcceptStaleToken);
        let mut store = store;
        store.planted = env.planted;
        // A restored bank executes nothing of its own until it has re-learned its decisions.
        let reconciling = store.reconciling()?;
        let intake = Intake::new(if reconciling { vec![] } else { store.outbox()? });
        let started_ms = env.clock.now_ms();
        let tellers = config.teller_keys.iter().filter_map(|k| crate::trust::keys::PublicKey::from_hex(k)).collect();
        let storage = Storage::new(store, env.inline_storage, env.disk_stall, ms(timing.peer_timeout_ms));
        let ctx = Context::new(
            me,
            members,
            timing,
            identity.key,
            identity.manifest,
            env.clock,
            tellers,
            started_ms,
            env.planted,
            env.events,
            ChaCha8Rng::seed_from_u64(env.rng_seed),
        );
        let ring = RingHandle::new(machine);
        let rotations = Rotations::new(ctx.clone(), storage.clone());
        let watch = PeerWatch { ring: ring.clone(), rotations: rotations.clone() };
        let nonce_rng = ChaCha8Rng::seed_from_u64(env.rng_seed ^ 0x6e6f_6e63_6573);
        let peers = Peers::new(ctx.clone(), pairs, env.transport, nonce_rng, watch);
        let writer = Writer::default();
        let executor = Executor { ctx: ctx.clone(), storage: storage.clone(), peers: peers.clone(), writer: writer.clone(), intake: intake.clone() };
        ctx.reconciling.store(reconciling, std::sync::atomic::Ordering::Relaxed);
        Ok(Arc::new(Node {
            reads: Reads::new(ctx.clone(), storage.clone()),
            nonces: Mutex::new(Nonces::default()),
            limits: config.limits.clone(),
            require_approval: config.require_approval,
            rate: Mutex::new(crate::limits::RateLimiter::new(config.limits.requests_per_ip_per_s)),
            ctx,
            storage,
            peers,
            ring,
            writer,
            intake,
            executor,
            rotations,
        }))
    }

    /// What the writer's task updates after each commit.
    pub fn committer(&self) -> Committer {
        let ring = self.ring.clone();
        Committer {
            ctx: self.ctx.clone(),
            storage: self.storage.clone(),
            intake: self.intake.clone(),
            work_arrived: Box::new(move || ring.tell(Event::WorkArrived)),
        }
    }

    /// What the ring's owner task works with.
    pub fn driver(&self) -> Driver {
        Driver { ring: self.ring.clone(), ex: self.executor.clone() }
    }

    pub async fn status(&self) -> Result<StatusView, Error> {
        let queued = self.intake.pending_count();
        let in_doubt = self.storage.db(|s| Ok(s.in_doubt()?.len())).await?;
        let ring = self.ring.view();
        Ok(StatusView {
            bank: self.ctx.me.clone(),
            peers: self.peers.all().into_iter().map(|(bank, online)| PeerView { bank, online }).collect(),
            token: TokenView { epoch: ring.newest.as_ref().map(|e| e.to_string()), held: ring.holding, hop: ring.last_hop },
            queued,
            in_doubt,
            counters: self.ctx.counters.lock().unwrap().clone(),
        })
    }
}
