//! One simulation run: builds the consortium inside turmoil, drives it step by step, injects
//! the scheduled faults between steps, checks the invariants, and builds the report.
//!
//! Everything runs on the calling thread: turmoil's hosts are tokio current-thread runtimes
//! stepped one after the other, the nodes call redb inline on their simulated disks, and every
//! random choice comes from the scenario seed. The same scenario and seed give the same trace.

use crate::check::{self, BankAudit};
use crate::net::{sim_http, ChaosConfig, ChaosShared, ChaosTransport, PORT};
use crate::panics;
use crate::report::Report;
use crate::scenario::{bank_index, Fault, Scenario};
use crate::workload::{self, Acks};
use node::wire::Counters;
use node::config::Config;
use node::events::{Events, NodeEvent};
use node::net::Call;
use node::ring::order::ring_key;
use node::clock::WallClock;
use node::node::{Env, Identity, Node, PlantedBug};
use node::trust::keys::BankKey;
use node::trust::manifest::{BankEntry, Manifest};
use node::store::simdisk::SimDisk;
use node::store::{Audit, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Host names of the two non-bank hosts.
pub const CLIENT_HOST: &str = "client";
pub const CHAOS_HOST: &str = "chaos";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub at: Duration,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[t={}] {}", fmt_time(self.at), self.what)
    }
}

/// `12.345s`: simulated time as the trace and the messages show it.
pub fn fmt_time(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
}

/// splitmix64: derives independent seeds from the scenario seed.
/// An Ed25519 key pair from a seed (deterministic).
pub(crate) fn seeded_key(seed: u64) -> node::trust::keys::KeyPair {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed), &mut bytes);
    node::trust::keys::KeyPair::from_seed(bytes)
}

pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A token epoch as the checks order it: by generation, then the creator's ring position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochId {
    pub gen: u64,
    pub key: (u8, u128, String, u16),
    pub text: String,
}

impl EpochId {
    pub fn of(e: &node::ring::Epoch) -> EpochId {
        EpochId { gen: e.gen, key: ring_key(&e.creator), text: e.to_string() }
    }

    pub fn parse(text: &str) -> Option<EpochId> {
        let (gen, creator) = text.split_once('@')?;
        Some(EpochId { gen: gen.parse().ok()?, key: ring_key(creator), text: text.to_string() })
    }
}

/// One bank as the harness sees it across its incarnations.
#[derive(Default)]
pub(crate) struct Slot {
    pub incarnation: u64,
    /// An open of its database succeeded once (so redb's header is durable).
    pub created: bool,
    /// Software started (turmoil host running).
    pub up: bool,
    /// The node of the current incarnation, once started.
    pub node: Option<Arc<Node>>,
    /// Newest epoch this incarnation created or accepted.
    pub newest_epoch: Option<EpochId>,
    /// Acknowledged users must be re-checked (after a restart).
    pub recheck_users: bool,
    /// Counters of past incarnations.
    pub counters: Counters,
}

pub(crate) struct Trigger {
    pub bank: Option<usize>,
    pub kind: String,
    pub restart_after_ms: Option<u64>,
    pub mid_commit: bool,
}

/// A disk armed to lose power inside a coming write: (bank, disk crashes so far, restart).
pub(crate) struct ArmedDisk {
    pub bank: usize,
    pub crashes: u64,
    pub restart_after_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CheckCounts {
    pub per_bank: u64,
    pub global: u64,
    /// Consortium-wide checks made while some bank was down (its books read from its disk).
    pub global_down: u64,
    pub final_checks: u64,
}

pub(crate) struct State {
    /// Simulated time as the harness last saw it (between steps).
    pub now: Duration,
    /// Nonces of real requests the rogue host played again (hex).
    pub rogue_replayed: BTreeSet<String>,
    pub trace: Vec<String>,
    pub banks: Vec<Slot>,
    pub triggers: Vec<Trigger>,
    pub armed_disks: Vec<ArmedDisk>,
    /// Disk crashes of each bank when its current incarnation started: more means its power
    /// is off and what it still does in this step does not count.
    pub power_base: Vec<u64>,
    pub rng: rand_chacha::ChaCha8Rng,
    /// Banks whose power went off inside a step: (bank, reason, restart after ms).
    pub host_crashes: Vec<(usize, String, Option<u64>)>,
    /// Package (`id@origin`) → (status, time, bank) of its `package_decided` event.
    pub decided: BTreeMap<String, (String, Duration, usize)>,
    /// Token passes accepted once the faults are over and half the settle period passed:
    /// (time, epoch, hop, bank), in the order they happened.
    pub accepts: Vec<(Duration, EpochId, u64, usize)>,
    /// From when `accepts` are recorded.
    pub accepts_from: Duration,
    pub tokens_created: u64,
    pub last_accept: Option<Duration>,
    pub violations: Vec<Violation>,
    pub acks: Acks,
    pub faults: BTreeMap<&'static str, u64>,
    pub checks: CheckCounts,
    pub liveness: crate::liveness::Liveness,
    /// What the checks saw before banks compacted it (used only when they compact).
    pub history: check::History,
    /// What the run's picture draws (`timeline`).
    pub timeline: crate::timeline::Timeline,
}

pub(crate) struct Shared {
    pub scenario: Scenario,
    pub names: Vec<String>,
    pub addrs: Vec<String>,
    pub planted: PlantedBug,
    pub chaos: Arc<ChaosShared>,
    pub chaos_config: ChaosConfig,
    pub disks: Vec<SimDisk>,
    /// Every bank's key, drawn from the scenario's seed, and the manifest that lists them.
    pub keys: Vec<BankKey>,
    /// Each bank's teller (deposits need its signature), drawn from the seed.
    pub tellers: Vec<node::trust::keys::KeyPair>,
    pub manifest: Arc<Manifest>,
    /// Each bank's clock offset in ms (the `skew` fault).
    pub skews: Arc<Vec<AtomicI64>>,
    /// Each bank's disk stalled (the `stall` fault).
    pub stalls: Vec<Arc<std::sync::atomic::AtomicBool>>,
    pub st: Mutex<State>,
}

impl Shared {
    /// A user's key, as their client made it: drawn from the seed and the CPF, so every run
    /// of a seed has the same keys.
    pub fn user_key(&self, cpf: &str) -> node::trust::keys::UserKey {
        let h = cpf.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        seeded_key(mix(self.scenario.seed, h))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current simulated time: the host's clock inside a step, else the harness's.
    pub fn now(&self) -> Duration {
        turmoil::sim_elapsed().unwrap_or_else(|| self.lock().now)
    }

    pub fn short(&self, addr: &str) -> String {
        addr.strip_suffix(&format!(":{PORT}")).unwrap_or(addr).to_string()
    }

    fn index_of(&self, addr: &str) -> Option<usize> {
        self.addrs.iter().position(|a| a == addr)
    }

    /// A harness line in the trace.
    pub fn note(&self, what: impl AsRef<str>) {
        let t = self.now();
        self.lock().trace.push(line(t, "sim", "harness", what.as_ref()));
    }

    pub fn violation(&self, what: String) {
        let at = self.now();
        let mut st = self.lock();
        st.trace.push(line(at, "sim", "VIOLATION", &what));
        st.timeline.mark(crate::timeline::Mark::Violation { t: at, what: what.clone() });
        st.violations.push(Violation { at, what });
    }

    pub fn violation_locked(st: &mut State, at: Duration, what: String) {
        st.trace.push(line(at, "sim", "VIOLATION", &what));
        st.timeline.mark(crate::timeline::Mark::Violation { t: at, what: what.clone() });
        st.violations.push(Violation { at, what });
    }
}

/// The simulated world's wall clock starts at 2026-01-01T00:00:00Z.
const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

/// A bank's wall clock in the simulator: the epoch plus simulated elapsed time, plus its skew.
struct SimClock {
    skews: Arc<Vec<AtomicI64>>,
    bank: usize,
}

impl WallClock for SimClock {
    fn now_ms(&self) -> u64 {
        sim_wall_ms().saturating_add_signed(self.skews[self.bank].load(Ordering::Relaxed))
    }
}

/// The simulated world's true wall-clock time now.
pub(crate) fn sim_wall_ms() -> u64 {
    SIM_EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

fn line(t: Duration, who: &str, kind: &str, detail: &str) -> String {
    let us = t.as_micros();
    format!("{:>6}.{:03} {who:<7} {kind} {detail}", us / 1000, us % 1000)
}

/// The nodes' `Events`: every event becomes a trace line, and a few feed the checks.
pub(crate) struct Recorder(pub Arc<Shared>);

impl Recorder {
    fn newest(st: &mut State, i: usize, epoch: EpochId) {
        let slot = &mut st.banks[i];
        if slot.newest_epoch.as_ref().is_none_or(|n| epoch > *n) {
            slot.newest_epoch = Some(epoch);
        }
    }
}

impl Events for Recorder {
    fn emit(&self, bank: &str, event: NodeEvent) {
        let sh = &self.0;
        if sh.chaos.inner.lock().unwrap().dead.contains(bank) {
            return; // a node whose power is off in this very step: nothing it does counts
        }
        let t = sh.now();
        let i = sh.index_of(bank);
        let who = sh.short(bank);
        let kind = event.kind();
        let mut st = sh.lock();
        if i.is_some_and(|i| sh.disks[i].stats().crashes > st.power_base[i]) {
            return;
        }
        let detail = event.detail();
        st.trace.push(line(t, &who, kind, &detail));
        let Some(i) = i else { return };
        {
            use crate::timeline::Mark;
            let mark = match &event {
                NodeEvent::TokenAccepted { epoch, hop, from } => Some(Mark::Pass { t, from: sh.index_of(from), to: i, gen: epoch.gen, epoch: epoch.to_string(), hop: *hop }),
                NodeEvent::TokenCreated { epoch } => Some(Mark::Created { t, bank: i, gen: epoch.gen, epoch: epoch.to_string() }),
                NodeEvent::PackageAccepted { key } => Some(Mark::Accepted { t, bank: i, key: key.to_string() }),
                NodeEvent::PackageDecided { key, status } => Some(Mark::Decided { t, bank: i, key: key.to_string(), status: format!("{status:?}").to_lowercase() }),
                NodeEvent::LegsFinished { .. } => Some(Mark::Legs { t, bank: i, detail: detail.clone() }),
                NodeEvent::Note { kind: k @ ("token_stale" | "token_duplicate" | "token_dropped" | "token_replaced"), .. } => {
                    Some(Mark::Dropped { t, bank: i, kind: k.trim_start_matches("token_").to_string(), detail: detail.clone() })
                }
                _ => None,
            };
            if let Some(m) = mark {
                st.timeline.mark(m);
            }
        }
        match event {
            // Every message in this consortium comes from an honest member (adversaries'
            // messages are told apart by their sender): a refusal means the protocol broke
            // its own rules, or a new check is wrong. Either is a bug to see, not to hide.
            NodeEvent::Refused { remote, nonce, .. } => {
                let rogue = remote.and_then(|a| turmoil::reverse_lookup(a.ip())).is_some_and(|h| h == crate::rogue::ROGUE_HOST);
                let replayed = nonce.is_some_and(|n| st.rogue_replayed.contains(&n));
                if rogue || replayed {
                    st.acks.rogue_refused += 1;
                } else {
                    let what = format!("trust: {who} refused a message of an honest member: {detail}");
                    Shared::violation_locked(&mut st, t, what);
                }
            }
            NodeEvent::PackageAccepted { key } => st.liveness.accepted(&key.to_string(), i, t),
            // A leg finishes only after its package was decided: evidence of the decision
            // when its origin lost power in the very step it decided (and said nothing).
            NodeEvent::LegsFinished { items, .. } => {
                for (key, _) in items {
                    st.liveness.decided(&key.to_string(), t);
                }
            }
            NodeEvent::PackageDecided { key, status } => {
                let id = key.to_string();
                let status = format!("{status:?}");
                st.liveness.decided(&id, t);
                if let Some((first, at, by)) = st.decided.get(&id).cloned() {
                    let what = format!(
                        "exactly once: package {id} decided twice: {first} at {} by {}, then {status} by {who}",
                        fmt_time(at),
                        sh.names[by]
                    );
                    Shared::violation_locked(&mut st, t, what);
                } else {
                    st.decided.insert(id, (status, t, i));
                }
            }
            NodeEvent::TokenCreated { epoch } => {
                st.liveness.token(t);
                st.tokens_created += 1;
                Self::newest(&mut st, i, EpochId::of(&epoch));
            }
            NodeEvent::TokenAccepted { epoch, hop, .. } => {
                st.liveness.token(t);
                let epoch = EpochId::of(&epoch);
                if t >= st.accepts_from {
                    st.accepts.push((t, epoch.clone(), hop, i));
                }
                st.last_accept = Some(t);
                if let Some(newest) = st.banks[i].newest_epoch.clone() {
                    if epoch < newest {
                        let what = format!(
                            "one token: {who} accepted a stale token (epoch {} hop {hop}) after already holding epoch {}",
                            epoch.text, newest.text
                        );
                        Shared::violation_locked(&mut st, t, what);
                    }
                }
                Self::newest(&mut st, i, epoch);
            }
            _ => {}
        }
        // A crash armed to strike at this event: power goes off right here, inside the node.
        if let Some(k) = st.triggers.iter().position(|tr| tr.kind == kind && tr.bank.is_none_or(|b| b == i)) {
            let tr = st.triggers.remove(k);
            if tr.mid_commit {
                use rand::Rng;
                let n = st.rng.random_range(1..=6);
                sh.disks[i].crash_after_writes(n);
                let crashes = sh.disks[i].stats().crashes;
                st.armed_disks.push(ArmedDisk { bank: i, crashes, restart_after_ms: tr.restart_after_ms });
                st.trace.push(line(t, "sim", "crash", &format!("{} at {kind}: power will fail inside its disk write #{n} from now", sh.names[i])));
                return;
            }
            let report = sh.disks[i].crash();
            let what = format!(
                "power lost at {} inside {kind} (disk: {} unsynced writes dropped, {} applied, {} torn)",
                sh.names[i], report.dropped, report.applied, report.torn
            );
            st.trace.push(line(t, "sim", "crash", &what));
            st.host_crashes.push((i, format!("on {kind}"), tr.restart_after_ms));
            drop(st);
            sh.chaos.inner.lock().unwrap().dead.insert(bank.to_string());
            for h in hosts(&sh.names) {
                if h != sh.names[i] {
                    turmoil::partition_oneway(sh.names[i].as_str(), h.as_str());
                }
            }
        }
    }
}

fn hosts(names: &[String]) -> Vec<String> {
    names.iter().cloned().chain([CLIENT_HOST.to_string(), CHAOS_HOST.to_string()]).collect()
}

/// What one bank's host runs, in every incarnation.
async fn bank_main(sh: Arc<Shared>, i: usize) -> turmoil::Result {
    let incarnation = {
        let mut st = sh.lock();
        st.banks[i].incarnation += 1;
        st.power_base[i] = sh.disks[i].stats().crashes;
        st.banks[i].incarnation
    };
    let crashes = sh.disks[i].stats().crashes;
    let store = match open_store(&sh, i) {
        Ok(s) => s,
        // Power failed while it was opening its database (an armed mid-commit crash): it is
        // dead; the harness takes the host down at the end of this step.
        Err(_) if sh.disks[i].stats().crashes > crashes => return std::future::pending().await,
        Err(e) => return Err(e.into()),
    };
    let seed = mix(mix(sh.scenario.seed, 100 + i as u64), incarnation);
    let recorder: Arc<dyn Events> = Arc::new(Recorder(sh.clone()));
    let transport = ChaosTransport::new(
        &sh.addrs[i],
        Arc::new(sim_http()),
        sh.chaos_config.clone(),
        mix(seed, 1),
        sh.chaos.clone(),
        Some(recorder.clone()),
    )
    .with_power(sh.disks[i].clone())
    .with_signer(node::trust::request::PairKeys::new(&sh.addrs[i], &sh.keys[i], &sh.manifest));
    let clock = Arc::new(SimClock { skews: sh.skews.clone(), bank: i });
    let env = Env { transport: Arc::new(transport), clock, events: recorder, rng_seed: mix(seed, 2), inline_storage: true, planted: sh.planted, disk_stall: Some(sh.stalls[i].clone()) };
    let config = Config {
        listen: sh.addrs[i].clone(),
        advertise: None,
        manifest: None,
        data_dir: std::path::PathBuf::from("/nonexistent"),
        // A fixed cap: the simulator's own file limit is not a simulated bank's, and a run must
        // not depend on the machine it runs on.
        limits: node::limits::Limits { max_connections: 4_096, ..Default::default() },
        teller_keys: vec![sh.tellers[i].public().to_hex()],
        require_approval: false,
        // TLS stays out of the simulator (its randomness and certificate clocks cannot be
        // seeded): banks here talk plain HTTP over turmoil, as `serve` and the transport do.
        tls_cert: None,
        tls_key: None,
        tls_ca: None,
        plain_http: true,
        timing: sh.scenario.timing.to_timing(),
    };
    let identity = Identity { key: sh.keys[i].clone(), manifest: sh.manifest.clone() };
    let listener = crate::net::SimListener::bind().await?;
    let node = node::server::start(&config, identity, store, env).map_err(|e| e.to_string())?;
    {
        let mut st = sh.lock();
        st.banks[i].node = Some(node.clone());
        st.banks[i].recheck_users = incarnation > 1;
    }
    node::server::serve(listener, node, std::future::pending()).await?;
    Ok(())
}

/// Opens the bank's database on its simulated disk. A crash while redb was still creating the
/// database leaves a file redb refuses; as long as no open ever succeeded it holds no commit,
/// so it is wiped and created again. Any other failure to open is a violation.
fn open_store(sh: &Arc<Shared>, i: usize) -> Result<Store, String> {
    let disk = &sh.disks[i];
    let created = sh.lock().banks[i].created;
    let crashes = disk.stats().crashes;
    let store = match Store::open_backend(disk.backend()) {
        Err(e) if disk.stats().crashes > crashes => Err(e),
        Ok(s) => Ok(s),
        Err(e) if !created => {
            sh.note(format!("{}: database creation was cut by a crash ({}); wiping it", sh.names[i], e.message));
            disk.wipe();
            Store::open_backend(disk.backend())
        }
        Err(e) => Err(e),
    };
    match store {
        Ok(s) => {
            sh.lock().banks[i].created = true;
            Ok(s)
        }
        Err(e) if disk.stats().crashes > crashes => {
            sh.note(format!("{}: power lost while opening its database ({})", sh.names[i], e.message));
            Err(e.message)
        }
        Err(e) => {
            let what = format!("durability: {} cannot open its database after a crash: {}", sh.names[i], e.message);
            sh.violation(what.clone());
            Err(what)
        }
    }
}

/// Timed harness actions that faults leave behind.
#[derive(Clone, Debug)]
enum Action {
    Restart(usize),
    Unpause(usize),
    Unstall(usize),
    Unmute(usize),
    Unslow(usize),
}

#[derive(Default)]
struct Links {
    /// Directed pairs whose traffic is dropped.
    blocked: BTreeSet<(String, String)>,
    /// Unordered pairs (sorted) whose traffic is held.
    held: BTreeSet<(String, String)>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// What a run produced.
pub struct RunOutput {
    pub report: Report,
    pub trace: Vec<String>,
    /// What the run's picture draws: `timeline.html(...)`, or `RunOutput::html`.
    pub timeline: crate::timeline::Timeline,
    pub names: Vec<String>,
    pub end: Duration,
    pub violations: Vec<Violation>,
    /// Real time the run took (not part of the report: it differs between machines).
    pub wall: Duration,
}

impl RunOutput {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The run's picture (`timeline`): one self-contained HTML page.
    pub fn html(&self, title: &str) -> String {
        self.timeline.html(title, &self.names, self.end)
    }
}

struct Harness<'a> {
    sim: turmoil::Sim<'a>,
    sh: Arc<Shared>,
    links: Links,
    timers: Vec<(Duration, u64, Action)>,
    timer_seq: u64,
    inject: UnboundedSender<(String, Call)>,
    /// Token copies injected so far (their nonces).
    injected: u64,
    /// Orders for the rogue host (present only if the scenario has `rogue` or `flood` faults).
    rogue: Option<UnboundedSender<crate::rogue::Order>>,
    hosts: Vec<String>,
}

/// Runs a scenario to its end (or its first violation).
pub fn run(scenario: &Scenario, planted: PlantedBug) -> RunOutput {
    let _active = panics::Active::enter();
    let wall = std::time::Instant::now();
    let sc = scenario.clone();
    let n = sc.banks;
    let names = sc.bank_names();
    let addrs: Vec<String> = names.iter().map(|b| format!("{b}:{PORT}")).collect();
    let chaos_config = ChaosConfig {
        loss: sc.network.loss,
        duplicate: sc.network.duplicate,
        duplicate_delay_max_ms: sc.network.duplicate_delay_max_ms,
    };
    let st = State {
        rogue_replayed: BTreeSet::new(),
        now: Duration::ZERO,
        trace: Vec::new(),
        banks: (0..n).map(|_| Slot { up: true, ..Default::default() }).collect(),
        triggers: Vec::new(),
        armed_disks: Vec::new(),
        power_base: vec![0; n],
        rng: rand::SeedableRng::seed_from_u64(mix(sc.seed, 300)),
        host_crashes: Vec::new(),
        decided: BTreeMap::new(),
        accepts: Vec::new(),
        accepts_from: Duration::from_millis(sc.duration_ms + sc.settle_ms / 2),
        tokens_created: 0,
        last_accept: None,
        violations: Vec::new(),
        acks: Acks::default(),
        faults: BTreeMap::new(),
        checks: CheckCounts::default(),
        timeline: Default::default(),
        liveness: crate::liveness::Liveness::new(Duration::from_millis(sc.duration_ms)),
        history: Default::default(),
    };
    let keys: Vec<BankKey> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            rand::Rng::fill(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(mix(sc.seed, 400 + i as u64)), &mut seed);
            BankKey::from_seed(seed)
        })
        .collect();
    let tellers: Vec<node::trust::keys::KeyPair> = (0..n).map(|i| seeded_key(mix(sc.seed, 450 + i as u64))).collect();
    let entries = addrs.iter().zip(&keys).map(|(a, k)| BankEntry { address: a.clone(), public_key: k.public().to_hex() }).collect();
    let manifest = Arc::new(Manifest::new(entries, Default::default()).expect("the simulator's manifest is valid"));
    let sh = Arc::new(Shared {
        keys,
        tellers,
        manifest,
        skews: Arc::new((0..n).map(|_| AtomicI64::new(0)).collect()),
        stalls: (0..n).map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false))).collect(),
        disks: (0..n).map(|i| SimDisk::new(mix(sc.seed, 200 + i as u64))).collect(),
        scenario: sc.clone(),
        names: names.clone(),
        addrs,
        planted,
        chaos: Arc::new(ChaosShared::default()),
        chaos_config,
        st: Mutex::new(st),
    });

    let sim = turmoil::Builder::new()
        .rng_seed(sc.seed)
        .simulation_duration(Duration::from_secs(1_000_000))
        .tick_duration(Duration::from_millis(1))
        // Pending connections a listening socket holds (64 by default). Overflowing it stops
        // the whole simulation with a panic; a released hold or a flood can bring hundreds at
        // once. Nothing changes below the capacity, so runs stay as they were.
        .tcp_capacity(4096)
        .min_message_latency(Duration::from_millis(sc.network.latency_min_ms))
        .max_message_latency(Duration::from_millis(sc.network.latency_max_ms))
        .build();
    let (inject, inject_rx) = unbounded_channel();
    let has_rogue = sc.faults.iter().any(|f| matches!(f, Fault::Rogue { .. } | Fault::Flood { .. }));
    let mut hosts = hosts(&names);
    if has_rogue {
        hosts.push(crate::rogue::ROGUE_HOST.to_string());
    }
    let mut h = Harness { sim, sh: sh.clone(), links: Links::default(), timers: Vec::new(), timer_seq: 0, inject, injected: 0, rogue: None, hosts };
    for (i, name) in names.iter().enumerate() {
        let s = sh.clone();
        h.sim.host(name.as_str(), move || bank_main(s.clone(), i));
    }
    h.sim.client(CLIENT_HOST, workload::client_main(sh.clone()));
    h.sim.client(CHAOS_HOST, workload::chaos_main(inject_rx));
    if has_rogue {
        let (tx, rx) = unbounded_channel();
        h.rogue = Some(tx);
        h.sim.client(crate::rogue::ROGUE_HOST, crate::rogue::rogue_main(sh.clone(), rx));
    }
    sh.note(format!(
        "scenario {} seed {}: {n} banks, {} ms of faults and workload, then {} ms to settle{}",
        sc.name,
        sc.seed,
        sc.duration_ms,
        sc.settle_ms,
        if planted == PlantedBug::None { String::new() } else { format!(" (planted bug {planted:?})") }
    ));

    h.drive();

    let wall = wall.elapsed();
    // Break the reference cycle nodes → recorder → shared → nodes, then drop the world.
    let nodes: Vec<Option<Arc<Node>>> = sh.lock().banks.iter_mut().map(|b| b.node.take()).collect();
    let report = Report::build(&sh, &nodes);
    drop(nodes);
    drop(h);
    let mut st = sh.lock();
    let trace = std::mem::take(&mut st.trace);
    let violations = st.violations.clone();
    let timeline = std::mem::take(&mut st.timeline);
    // A run stops at its first broken invariant: its picture ends there, not at the schedule's end.
    let end = if violations.is_empty() { Duration::from_millis(sc.duration_ms + sc.settle_ms).max(st.now) } else { st.now };
    RunOutput { report, trace, violations, wall, timeline, names, end }
}

impl Harness<'_> {
    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn drive(&mut self) {
        let sc = self.sh.scenario.clone();
        let end = Duration::from_millis(sc.duration_ms + sc.settle_ms);
        let faults_end = Duration::from_millis(sc.duration_ms);
        let every = Duration::from_millis(sc.check_every_ms);
        let mut schedule: std::collections::VecDeque<Fault> = sc.schedule().into();
        let mut next_check = every;
        let mut healed = false;
        loop {
            let now = self.now();
            self.sh.lock().now = now;
            if now >= end {
                break;
            }
            if !healed && now >= faults_end {
                healed = true;
                schedule.clear();
                self.end_faults();
            }
            while schedule.front().is_some_and(|f| Duration::from_millis(f.at_ms()) <= now) {
                let f = schedule.pop_front().unwrap();
                self.apply(&f);
            }
            self.run_timers(now);
            if let Err(e) = self.sim.step() {
                self.sh.violation(format!("simulation error (a host's software failed): {e}"));
            }
            for p in panics::take() {
                self.sh.violation(format!("panic: {p}"));
            }
            // Disks that lost power inside a write during this step: their hosts go down now.
            {
                let mut st = self.sh.lock();
                let mut k = 0;
                while k < st.armed_disks.len() {
                    let a = &st.armed_disks[k];
                    if self.sh.disks[a.bank].stats().crashes > a.crashes {
                        let a = st.armed_disks.remove(k);
                        let s = self.sh.disks[a.bank].stats();
                        let line = line(self.sim.elapsed(), "sim", "crash", &format!(
                            "power lost at {} inside a disk write (disk lifetime: {} dropped, {} torn unsynced writes)",
                            self.sh.names[a.bank], s.dropped_writes, s.torn_writes
                        ));
                        st.trace.push(line);
                        st.host_crashes.push((a.bank, "mid-commit".into(), a.restart_after_ms));
                    } else {
                        k += 1;
                    }
                }
            }
            let crashes = std::mem::take(&mut self.sh.lock().host_crashes);
            for (i, why, restart) in crashes {
                self.crash_host(i, &why, true);
                if let Some(ms) = restart {
                    self.add_timer(self.now() + Duration::from_millis(ms), Action::Restart(i));
                }
            }
            if self.now() >= next_check {
                next_check += every;
                self.check(false);
            }
            if !self.sh.lock().violations.is_empty() {
                return;
            }
        }
        self.sh.lock().now = self.now();
        self.check(true);
    }

    fn add_timer(&mut self, at: Duration, a: Action) {
        self.timer_seq += 1;
        self.timers.push((at, self.timer_seq, a));
        self.timers.sort_by_key(|t| (t.0, t.1));
    }

    fn run_timers(&mut self, now: Duration) {
        while self.timers.first().is_some_and(|t| t.0 <= now) {
            let (_, _, a) = self.timers.remove(0);
            self.act(a);
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Restart(i) => self.restart_host(i),
            Action::Unpause(i) => {
                let name = self.sh.names[i].clone();
                for other in self.hosts.clone() {
                    if other != name {
                        self.links.held.remove(&pair(&name, &other));
                        self.sim.release(name.as_str(), other.as_str());
                        self.apply_link(&name, &other);
                    }
                }
                self.sh.note(format!("unpause {name}: its held messages are delivered"));
            }
            Action::Unstall(i) => {
                self.sh.stalls[i].store(false, Ordering::Relaxed);
                self.sh.note(format!("{}: its disk answers again", self.sh.names[i]));
            }
            Action::Unmute(i) => {
                self.sh.chaos.inner.lock().unwrap().mute.remove(&self.sh.addrs[i]);
                self.sh.note(format!("{}: its replies arrive again", self.sh.names[i]));
            }
            Action::Unslow(i) => {
                self.sh.chaos.inner.lock().unwrap().lossy.remove(&self.sh.addrs[i]);
                let name = self.sh.names[i].clone();
                let max = Duration::from_millis(self.sh.scenario.network.latency_max_ms);
                for other in self.hosts.clone() {
                    if other != name {
                        self.sim.set_link_max_message_latency(name.as_str(), other.as_str(), max);
                    }
                }
                self.sh.note(format!("{name}: its links are fast again"));
            }
        }
    }

    fn count_fault(&self, kind: &'static str) {
        *self.sh.lock().faults.entry(kind).or_default() += 1;
    }

    fn apply_link(&mut self, a: &str, b: &str) {
        if self.links.held.contains(&pair(a, b)) {
            self.sim.hold(a, b);
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            if self.links.blocked.contains(&(x.to_string(), y.to_string())) {
                self.sim.partition_oneway(x, y);
            } else {
                self.sim.repair_oneway(x, y);
            }
        }
    }

    fn apply_all_links(&mut self) {
        let hosts = self.hosts.clone();
        for (k, a) in hosts.iter().enumerate() {
            for b in &hosts[k + 1..] {
                self.apply_link(a, b);
            }
        }
    }

    /// Cuts everything the host sends (messages its dying tasks would emit in a
    /// process-dependent order), runs `f`, then restores the links as the faults say.
    fn with_outbound_cut(&mut self, i: usize, f: impl FnOnce(&mut turmoil::Sim)) {
        let name = self.sh.names[i].clone();
        for other in self.hosts.clone() {
            if other != name {
                self.sim.partition_oneway(name.as_str(), other.as_str());
            }
        }
        f(&mut self.sim);
        for other in self.hosts.clone() {
            if other != name {
                self.apply_link(&name, &other);
            }
        }
    }

    /// Power loss: the disk first (unsynced writes dropped or torn), then the host.
    fn crash_host(&mut self, i: usize, why: &str, disk_done: bool) {
        let name = self.sh.names[i].clone();
        if !self.sh.lock().banks[i].up {
            return;
        }
        self.sh.lock().armed_disks.retain(|a| a.bank != i);
        let now = self.now();
        self.sh.lock().liveness.power_lost(i, now);
        self.sh.lock().timeline.begin(now, Some(i), "crash", format!("{name} down ({why})"), None);
        if !disk_done {
            let r = self.sh.disks[i].crash();
            self.sh.note(format!(
                "crash {name} ({why}; disk: {} unsynced writes dropped, {} applied, {} torn)",
                r.dropped, r.applied, r.torn
            ));
        }
        self.sh.chaos.inner.lock().unwrap().dead.insert(self.sh.addrs[i].clone());
        self.with_outbound_cut(i, |sim| sim.crash(name.as_str()));
        let node = {
            let mut st = self.sh.lock();
            let slot = &mut st.banks[i];
            slot.up = false;
            slot.newest_epoch = None;
            slot.node.take()
        };
        if let Some(node) = &node {
            let c = node.ctx.counters.lock().unwrap().clone();
            add_counters(&mut self.sh.lock().banks[i].counters, &c);
        }
        drop(node);
        self.sh.chaos.inner.lock().unwrap().dead.remove(&self.sh.addrs[i]);
    }

    fn restart_host(&mut self, i: usize) {
        let name = self.sh.names[i].clone();
        if self.sh.lock().banks[i].up {
            self.crash_host(i, "power cycle", false);
        }
        self.sh.note(format!("restart {name}"));
        let now = self.now();
        self.sh.lock().timeline.end(now, Some(i), "crash");
        self.with_outbound_cut(i, |sim| sim.bounce(name.as_str()));
        self.sh.lock().banks[i].up = true;
    }

    fn bank(&self, name: &str) -> usize {
        bank_index(name, self.sh.names.len()).expect("scenario checked bank names")
    }

    fn apply(&mut self, f: &Fault) {
        self.count_fault(f.kind());
        match f {
            Fault::Crash { bank, on_event: Some(kind), restart_after_ms, mid_commit, .. } => {
                let b = (bank != "any").then(|| self.bank(bank));
                self.sh.lock().triggers.push(Trigger {
                    bank: b,
                    kind: kind.clone(),
                    restart_after_ms: *restart_after_ms,
                    mid_commit: *mid_commit,
                });
                self.sh.note(format!("armed: crash {bank} at its next {kind} event"));
            }
            Fault::Crash { bank, on_event: None, restart_after_ms, mid_commit: true, .. } => {
                use rand::Rng;
                let i = self.bank(bank);
                let mut st = self.sh.lock();
                let n = st.rng.random_range(1..=6);
                self.sh.disks[i].crash_after_writes(n);
                let crashes = self.sh.disks[i].stats().crashes;
                st.armed_disks.push(ArmedDisk { bank: i, crashes, restart_after_ms: *restart_after_ms });
                drop(st);
                self.sh.note(format!("armed: {bank} loses power inside its disk write #{n} from now"));
            }
            Fault::Crash { bank, on_event: None, restart_after_ms, .. } => {
                let i = self.bank(bank);
                if self.sh.lock().banks[i].up {
                    self.crash_host(i, "scheduled", false);
                } else {
                    self.sh.note(format!("crash {bank}: already down"));
                }
                if let Some(ms) = restart_after_ms {
                    self.add_timer(self.now() + Duration::from_millis(*ms), Action::Restart(i));
                }
            }
            Fault::Restart { bank, .. } => {
                let i = self.bank(bank);
                self.restart_host(i);
            }
            Fault::Partition { groups, oneway, .. } => {
                let names = self.sh.names.clone();
                let mut group_of: BTreeMap<String, usize> = BTreeMap::new();
                for (g, members) in groups.iter().enumerate() {
                    for m in members {
                        group_of.insert(m.clone(), g);
                    }
                }
                let rest = groups.len();
                let g = |b: &String| group_of.get(b).copied().unwrap_or(rest);
                for x in &names {
                    for y in &names {
                        if g(x) < g(y) {
                            self.links.blocked.insert((x.clone(), y.clone()));
                            if !oneway {
                                self.links.blocked.insert((y.clone(), x.clone()));
                            }
                        }
                    }
                }
                self.apply_all_links();
                self.sh.note(format!("partition {groups:?}{}", if *oneway { " one-way" } else { "" }));
                let now = self.now();
                self.sh.lock().timeline.begin(now, None, "partition", format!("partition {groups:?}{}", if *oneway { " one-way" } else { "" }), None);
            }
            Fault::Heal { .. } => {
                self.links.blocked.clear();
                self.apply_all_links();
                self.sh.note("heal: partitions end");
                let now = self.now();
                self.sh.lock().timeline.end(now, None, "partition");
            }
            Fault::Hold { a, b, .. } => {
                self.links.held.insert(pair(a, b));
                self.apply_link(a, b);
                self.sh.note(format!("hold {a} <-> {b}"));
                let (now, ia, ib) = (self.now(), self.bank(a), self.bank(b));
                let mut st = self.sh.lock();
                st.timeline.begin(now, Some(ia), "hold", format!("messages between {a} and {b} held"), None);
                st.timeline.begin(now, Some(ib), "hold", format!("messages between {a} and {b} held"), None);
            }
            Fault::Release { a, b, .. } => {
                self.links.held.remove(&pair(a, b));
                self.sim.release(a.as_str(), b.as_str());
                self.apply_link(a, b);
                self.sh.note(format!("release {a} <-> {b}"));
                let (now, ia, ib) = (self.now(), self.bank(a), self.bank(b));
                let mut st = self.sh.lock();
                st.timeline.end(now, Some(ia), "hold");
                st.timeline.end(now, Some(ib), "hold");
            }
            Fault::DropToken { from, .. } => {
                let who = from.as_ref().map(|b| self.sh.addrs[self.bank(b)].clone());
                self.sh.chaos.inner.lock().unwrap().drop_next_token = Some(who);
                self.sh.note(format!("armed: lose the next token pass from {}", from.as_deref().unwrap_or("any bank")));
                let now = self.now();
                self.sh.lock().timeline.instant(now, None, "drop_token", format!("the next token pass from {} is lost", from.as_deref().unwrap_or("any bank")));
            }
            Fault::DuplicateToken { to, stale, .. } => {
                let pick = {
                    let c = self.sh.chaos.inner.lock().unwrap();
                    let newest = c.last_of_gen.keys().next_back().copied();
                    let older = c.last_of_gen.range(..newest.unwrap_or(0)).next_back().map(|(_, p)| p);
                    if *stale { older.or(c.passes.last()) } else { c.passes.last() }.cloned()
                };
                match pick {
                    Some(p) => {
                        let dest = to.as_ref().map(|b| self.sh.addrs[self.bank(b)].clone()).unwrap_or(p.to.clone());
                        self.sh.note(format!("inject a copy of token {} hop {} into {}", p.epoch, p.hop, self.sh.short(&dest)));
                        let (now, b) = (self.now(), self.sh.index_of(&dest));
                        self.sh.lock().timeline.instant(now, b, "duplicate_token", format!("a copy of token {} hop {} injected", p.epoch, p.hop));
                        let call = self.as_sent_by_member(p.call, &dest);
                        let _ = self.inject.send((dest, call));
                    }
                    None => self.sh.note("duplicate_token: no token pass seen yet"),
                }
            }
            Fault::Skew { bank, ms, .. } => {
                let i = self.bank(bank);
                self.sh.skews[i].store(*ms, Ordering::Relaxed);
                self.sh.note(format!("{}'s clock now runs {ms} ms off", self.sh.names[i]));
                let now = self.now();
                self.sh.lock().timeline.instant(now, Some(i), "skew", format!("clock {ms} ms off"));
            }
            Fault::Rogue { messages, .. } => {
                if let Some(r) = &self.rogue {
                    let _ = r.send(crate::rogue::Order::Forge(*messages));
                }
                self.sh.note(format!("the rogue host sends {messages} hostile requests"));
                let now = self.now();
                self.sh.lock().timeline.instant(now, None, "rogue", format!("the rogue host sends {messages} hostile requests"));
            }
            Fault::Flood { bank, requests, for_ms, .. } => {
                let i = self.bank(bank);
                if let Some(r) = &self.rogue {
                    let _ = r.send(crate::rogue::Order::Flood { bank: i, requests: *requests, for_ms: *for_ms });
                }
                self.sh.note(format!("the rogue host floods {} with {requests} client requests in {for_ms} ms", self.sh.names[i]));
                let now = self.now();
                self.sh.lock().timeline.begin(now, Some(i), "flood", format!("{requests} client requests from the rogue host"), Some(Duration::from_millis(*for_ms)));
            }
            Fault::Pause { bank, for_ms, .. } => {
                let i = self.bank(bank);
                let name = self.sh.names[i].clone();
                for other in self.hosts.clone() {
                    if other != name {
                        self.links.held.insert(pair(&name, &other));
                        self.apply_link(&name, &other);
                    }
                }
                self.add_timer(self.now() + Duration::from_millis(*for_ms), Action::Unpause(i));
                self.sh.note(format!("pause {name} for {for_ms} ms"));
                let now = self.now();
                self.sh.lock().timeline.begin(now, Some(i), "pause", format!("{name} paused"), Some(Duration::from_millis(*for_ms)));
            }
            Fault::Stall { bank, for_ms, .. } => {
                let i = self.bank(bank);
                self.sh.stalls[i].store(true, Ordering::Relaxed);
                self.add_timer(self.now() + Duration::from_millis(*for_ms), Action::Unstall(i));
                self.sh.note(format!("{bank}: its disk stalls for {for_ms} ms"));
                let now = self.now();
                self.sh.lock().timeline.begin(now, Some(i), "stall", format!("{bank}'s disk stalls"), Some(Duration::from_millis(*for_ms)));
            }
            Fault::LoseReplies { bank, for_ms, .. } => {
                let i = self.bank(bank);
                self.sh.chaos.inner.lock().unwrap().mute.insert(self.sh.addrs[i].clone());
                self.add_timer(self.now() + Duration::from_millis(*for_ms), Action::Unmute(i));
                self.sh.note(format!("{bank}: its replies are lost for {for_ms} ms"));
                let now = self.now();
                self.sh.lock().timeline.begin(now, Some(i), "lose_replies", format!("{bank}'s replies are lost"), Some(Duration::from_millis(*for_ms)));
            }
            Fault::Slow { bank, for_ms, latency_ms, loss, .. } => {
                let i = self.bank(bank);
                self.sh.chaos.inner.lock().unwrap().lossy.insert(self.sh.addrs[i].clone(), *loss);
                let name = self.sh.names[i].clone();
                for other in self.hosts.clone() {
                    if other != name {
                        self.sim.set_link_max_message_latency(name.as_str(), other.as_str(), Duration::from_millis(*latency_ms));
                    }
                }
                self.add_timer(self.now() + Duration::from_millis(*for_ms), Action::Unslow(i));
                self.sh.note(format!("{bank}: its links are slow (up to {latency_ms} ms) and lose {:.0} % for {for_ms} ms", loss * 100.0));
                let now = self.now();
                self.sh.lock().timeline.begin(now, Some(i), "slow", format!("{bank}'s links slow (up to {latency_ms} ms), {:.0} % lost", loss * 100.0), Some(Duration::from_millis(*for_ms)));
            }
        }
    }

    /// A copy of a token pass as a member sends it to `dest`: from `dest`'s ring predecessor
    /// if the original came from `dest` itself (a bank never passes to itself, and refuses a
    /// token that says so), signed anew by the bank it names (a bank that kept a copy of the
    /// token and passes it again; a replayed request would be refused before the ring rules
    /// see it). The copy is still a second token.
    fn as_sent_by_member(&mut self, mut call: Call, dest: &str) -> Call {
        let Some(body) = &call.body else { return call };
        let Ok(mut pass) = serde_json::from_slice::<node::wire::TokenPass>(body) else { return call };
        if pass.from == dest {
            let mut ring: Vec<&String> = self.sh.addrs.iter().collect();
            ring.sort_by_key(|a| ring_key(a));
            let at = ring.iter().position(|a| *a == dest).unwrap_or(0);
            pass.from = ring[(at + ring.len() - 1) % ring.len()].clone();
            call.body = Some(serde_json::to_vec(&pass).expect("wire types serialize"));
        }
        if let Some(i) = self.sh.index_of(&pass.from) {
            self.injected += 1;
            let nonce = crate::net::counter_nonce(0x1e, self.injected);
            let keys = node::trust::request::PairKeys::new(&pass.from, &self.sh.keys[i], &self.sh.manifest);
            node::trust::request::sign_call(&keys, dest, &mut call, SIM_EPOCH_MS + self.now().as_millis() as u64, nonce);
        }
        call
    }

    /// Faults stop: pending restarts and unpauses happen now, partitions and holds end,
    /// every crashed bank restarts, the network stops losing and duplicating.
    fn end_faults(&mut self) {
        {
            let mut st = self.sh.lock();
            st.triggers.clear();
            for a in std::mem::take(&mut st.armed_disks) {
                // Disarm: a crash_after_writes trigger is replaced by one far away.
                self.sh.disks[a.bank].crash_after_writes(u64::MAX);
            }
        }
        {
            let mut c = self.sh.chaos.inner.lock().unwrap();
            c.drop_next_token = None;
            c.calm = true;
        }
        for (_, _, a) in std::mem::take(&mut self.timers) {
            self.act(a);
        }
        for skew in self.sh.skews.iter() {
            skew.store(0, Ordering::Relaxed);
        }
        self.links.blocked.clear();
        for (a, b) in std::mem::take(&mut self.links.held) {
            self.sim.release(a.as_str(), b.as_str());
        }
        self.apply_all_links();
        for i in 0..self.sh.names.len() {
            if !self.sh.lock().banks[i].up {
                self.restart_host(i);
            }
        }
        self.sh.note("faults end: network healed, every bank up, no new packages; settling");
    }

    /// Reads every live bank's books at this simulated instant and checks the invariants.
    fn check(&mut self, last: bool) {
        let now = self.now();
        let nodes: Vec<Option<Arc<Node>>> =
            self.sh.lock().banks.iter().map(|b| if b.up { b.node.clone() } else { None }).collect();
        // A bank that is down is audited too, from what its disk kept (what it will restart
        // on), so money is checked across the consortium also while banks are down.
        let mut audits: Vec<Option<Audit>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n {
                Some(n) => n.storage.store().audit().ok(),
                None if self.sh.disks[i].durable_len() > 0 => {
                    Store::open_backend(self.sh.disks[i].durable_copy().backend()).ok().and_then(|s| s.audit().ok())
                }
                None => None,
            })
            .collect();
        let mut problems = Vec::new();
        let compacting = self.sh.scenario.timing.compact_every_ms > 0;
        if compacting {
            let mut st = self.sh.lock();
            for (i, a) in audits.iter_mut().enumerate() {
                if let Some(a) = a {
                    problems.extend(st.history.remember(i, &self.sh.names[i], &self.sh.addrs[i], a));
                }
            }
        }
        let banks: Vec<Option<BankAudit>> = audits
            .iter()
            .enumerate()
            .map(|(i, a)| a.as_ref().map(|audit| BankAudit { name: &self.sh.names[i], addr: &self.sh.addrs[i], audit }))
            .collect();
        let mut counts = CheckCounts::default();
        for (b, n) in banks.iter().zip(&nodes) {
            let Some(b) = b else { continue };
            counts.per_bank += 1;
            problems.extend(check::per_bank(b));
            if let Some(n) = n {
                problems.extend(check::outbox_mirror(b, &n.intake.pending_seqs()));
            }
        }
        let all: Option<Vec<BankAudit>> = banks.iter().cloned().collect();
        if let Some(all) = &all {
            counts.global += 1;
            if nodes.iter().any(Option::is_none) {
                counts.global_down += 1;
            }
            problems.extend(check::global(all));
        }
        for b in banks.iter().flatten() {
            problems.extend(check::journals(b));
        }
        {
            let st = self.sh.lock();
            problems.extend(check::acknowledged(&banks, &st.acks, &self.sh.addrs));
        }
        // Acknowledged users, once a restarted bank is back.
        for (i, n) in nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            let recheck = std::mem::take(&mut self.sh.lock().banks[i].recheck_users);
            if recheck || last {
                let users: Vec<String> = self.sh.lock().acks.users.iter().filter(|u| u.0 == i).map(|u| u.1.clone()).collect();
                for cpf in users {
                    let c = node::domain::Cpf::parse(&cpf).expect("the workload makes valid CPFs");
                    match n.storage.store().user(&c) {
                        Ok(Some(_)) => {}
                        Ok(None) => problems.push(format!("durability: {} lost acknowledged user {cpf}", self.sh.names[i])),
                        Err(e) => problems.push(format!("{}: cannot read user {cpf}: {}", self.sh.names[i], e.message)),
                    }
                }
            }
        }
        if last {
            counts.final_checks += 1;
            match &all {
                Some(all) if nodes.iter().all(Option::is_some) => {
                    // A participant may drop a finished leg once its clock is past expiry +
                    // skew, and a skew fault may set its clock ahead of the simulated wall.
                    let skew = self.sh.scenario.timing.clock_skew_ms;
                    let ahead = self.sh.scenario.faults.iter().filter_map(|f| if let Fault::Skew { ms, .. } = f { Some((*ms).max(0) as u64) } else { None }).max().unwrap_or(0);
                    // (The checks run outside every simulated host: the time is the run's.)
                    let wall = SIM_EPOCH_MS + now.as_millis() as u64;
                    problems.extend(check::settled(all, |r| compacting && wall + ahead > r.package.expires_ms + skew))
                }
                _ => {
                    for (i, n) in nodes.iter().enumerate() {
                        if n.is_none() {
                            problems.push(format!("liveness: {} is not up at the end of the run", self.sh.names[i]));
                        } else if banks[i].is_none() {
                            problems.push(format!("{}: its books cannot be read at the end of the run", self.sh.names[i]));
                        }
                    }
                }
            }
            let mut st = self.sh.lock();
            let decided: BTreeSet<String> = banks
                .iter()
                .flatten()
                .flat_map(|b| b.audit.records.iter().filter(|r| r.status != node::package::Status::Pending).map(|r| r.key().to_string()))
                .collect();
            st.liveness.finish(now, |k| decided.contains(k));
            problems.extend(crate::liveness::Bounds::of(&self.sh.scenario).check(&st.liveness));
            problems.extend(check::one_token(&st.accepts, &self.sh.names));
            let recent = Duration::from_millis(self.sh.scenario.token_recent_ms);
            match st.last_accept {
                Some(t) if now.saturating_sub(t) <= recent => {}
                Some(t) => problems.push(format!("liveness: the token stopped circulating: last accepted at {}", fmt_time(t))),
                None => problems.push("liveness: no bank ever accepted a token".to_string()),
            }
        }
        let mut st = self.sh.lock();
        st.checks.per_bank += counts.per_bank;
        st.checks.global += counts.global;
        st.checks.global_down += counts.global_down;
        st.checks.final_checks += counts.final_checks;
        for p in problems {
            Shared::violation_locked(&mut st, now, p);
        }
    }
}

pub(crate) fn add_counters(total: &mut Counters, c: &Counters) {
    total.submitted += c.submitted;
    total.committed += c.committed;
    total.aborted += c.aborted;
    total.executed += c.executed;
    total.tokens_created += c.tokens_created;
    total.stale_dropped += c.stale_dropped;
    total.duplicates_dropped += c.duplicates_dropped;
    total.faults += c.faults;
    total.presumed_aborts += c.presumed_aborts;
    total.compacted_records += c.compacted_records;
    total.compacted_participations += c.compacted_participations;
    total.in_doubt_compacted += c.in_doubt_compacted;
}
