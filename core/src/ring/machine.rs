//! The ring as one state machine: `handle(now, event) -> actions`. Everything a bank decides
//! about the token happens here, as plain code: taking a token, holding it, executing its
//! queue, passing it on, noticing its loss, alerting, recovering. The node's ring task owns
//! the machine, feeds it what happened (a token arrived, a pass was answered, a timer fired)
//! and carries out what it returns (send this, persist that, execute the queue). Nothing here
//! waits, reads a clock or touches the network: time comes in as `now`, randomness from a
//! seeded generator, so every decision is unit-tested below and replays exactly.
//!
//! The shell promises one answer event for every call action it carries out (`Pass` →
//! `PassAnswered`, `Probe` → `ProbeAnswered`, ...), each call bounded by the peer timeout.
//! The machine still bounds every wait of its own (a recovery that outlasts its deadline is
//! abandoned), so a lost answer can delay the ring but never stop it.

use super::messages::{Alert, Block, PassAnswer, Probe, TokenPass};
use super::rules::{Arrival, Ring};
use super::token::{Epoch, Queued, Token, MAX_COUNTER, MAX_QUEUE};
use crate::events::NodeEvent;
use crate::package::PackageKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use crate::rtt::Rtt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The ring's timing (a subset of the node's configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// Per bank: the loss timeout is this times the number of banks.
    pub token_loss: Duration,
    pub startup_check: Duration,
    /// The recovering bank's pause between announcing a generation and creating its token.
    pub block: Duration,
    /// The bound of every call to another bank (the shell's transport enforces it).
    pub peer_timeout: Duration,
    /// The shortest wait for a pass's answer (`rtt`): a local setting, not a shared timing.
    pub pass_floor: Duration,
    /// The shortest time without the token before this bank suspects its loss; the suspicion
    /// follows the measured rotation times up to the shared loss timeout. Local, like
    /// `pass_floor`.
    pub loss_floor: Duration,
}

/// What happened. Events that are requests from another bank are answered by an
/// `Action::Answer` among the actions they return.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A token pass, already authenticated as sent by `from` (checked here against the ring).
    TokenArrived(TokenPass),
    /// Another bank asks where the token is.
    ProbeAsked,
    AlertArrived(Alert),
    BlockArrived(Block),
    /// The answer to `Action::Pass`.
    PassAnswered { to: String, hop: u64, answer: CallResult<PassAnswer> },
    /// The answer to `Action::Probe` (None: unreachable, refused, or out of range).
    ProbeAnswered { round: u64, from: String, answer: Option<Probe> },
    /// The answer to `Action::Alert`: whether it reached the bank.
    AlertAnswered { to: String, delivered: bool },
    /// The answer to `Action::Block` (delivered or not: the recovery goes on either way).
    BlockAnswered { round: u64, to: String },
    /// The answer to `Action::Gather`: this origin's pending packages.
    Gathered(Vec<Queued>),
    /// The answer to `Action::Execute`.
    Executed { epoch: Epoch },
    /// The answer to `Action::Persist` with `wait`.
    Persisted { gen: u64, ok: bool },
    /// A client's package was accepted here.
    WorkArrived,
    PeerUp(String),
    PeerDown(String),
    /// Time passed (the shell sends it at `next_timer()`; any time is fine).
    Tick,
}

/// How a call to another bank ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult<T> {
    Answer(T),
    /// The bank answered with an error.
    Refused(String),
    /// No answer within the peer timeout (it may have been applied).
    Unreachable(String),
}

/// The answer to a request event.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Pass(PassAnswer),
    Probe(Probe),
    Alert(bool),
    Block,
    /// The message cannot be one of this ring's: refused (a 4xx, counted, logged).
    Refused { code: &'static str, message: String },
}

/// Counters the machine moves (the node's `/status` counters of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    TokensCreated,
    StaleDropped,
    DuplicatesDropped,
    Faults,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Answer(Answer),
    /// Send the token, waiting at most `timeout` for the answer (`rtt`). Answer:
    /// `PassAnswered { to, hop: pass.token.hop, .. }`.
    Pass { to: String, pass: TokenPass, timeout: Duration },
    /// Ask `to` where the token is, waiting at most `timeout` (`rtt`). Answer:
    /// `ProbeAnswered { round, from: to, .. }`.
    Probe { round: u64, to: String, timeout: Duration },
    /// Report a fault to `to`, the lowest online bank. Answer: `AlertAnswered`.
    Alert { to: String, alert: Alert },
    /// Announce a recovery's generation. Answer: `BlockAnswered`.
    Block { round: u64, to: String, block: Block },
    /// Hand over this origin's pending packages, at most `room`, none of `queued`. Answer
    /// (at once, before any other event): `Gathered`.
    Gather { room: usize, queued: BTreeSet<PackageKey> },
    /// Run the two-phase commit of these packages, stopping between batches if the epoch
    /// stops being current (`RingView::still_current`). Answer: `Executed`.
    Execute { epoch: Epoch, queue: Vec<Queued> },
    /// Make `gen` durable (a restarted bank never creates a generation at or below it).
    /// Answer, if `wait`: `Persisted`.
    Persist { gen: u64, wait: bool },
    /// A message from `from` broke the ring's rules: count and log the refusal.
    Refuse { from: String, code: &'static str, message: String },
    /// A bank did not answer: mark it offline until it answers a ping.
    PeerFailed { bank: String, why: String },
    Count(Counter),
    /// Something to report (the log, the simulator's trace).
    Emit(NodeEvent),
}

/// What the rest of the node may read about the ring (published after every event).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingView {
    pub newest: Option<Epoch>,
    pub floor_gen: u64,
    pub last_hop: u64,
    pub holding: bool,
    pub recovering: bool,
    pub accept_stale: bool,
}

impl RingView {
    /// Whether a token of `epoch` may still execute (no newer epoch or recovery is known).
    pub fn still_current(&self, epoch: &Epoch) -> bool {
        self.accept_stale || (epoch.gen >= self.floor_gen && self.newest.as_ref().is_none_or(|n| epoch >= n))
    }

    /// Whether this bank has seen a ring: a token, or its own recovery creating one.
    pub fn seen(&self) -> bool {
        self.newest.is_some() || self.recovering
    }
}

/// Where the token is in this bank's visit.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// Waiting for `Gathered`.
    Gathering(Phase),
    /// Waiting for `Executed`.
    Executing,
    /// Taken while this bank still executes an older token's queue (one execution at a time):
    /// visited once `Executed` comes.
    Waiting,
    /// Nothing to do: kept until `until`, or until a client brings work.
    Idle { until: Duration },
    /// No other bank answers: kept, and visited again at `until`.
    Alone { until: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// This bank executes at this visit: its own packages go in first.
    BeforeExecute,
    /// Everything pending rides along.
    Ride,
    /// Work that ended an idle hold.
    AfterIdle,
}

#[derive(Clone, Debug)]
struct Hold {
    token: Token,
    step: Step,
    /// This visit executes the queue.
    execute: bool,
    added: usize,
    executed: bool,
}

/// A pass sent and not yet answered. The token can come all the way round before the
/// answer does; then a new `Hold` exists beside it.
#[derive(Clone, Debug)]
struct Passing {
    to: String,
    attempt: u8,
    token: Token,
    sent_at: Duration,
    timeout: Duration,
}

/// A loss check: probes out, waiting for a vouch or for every answer.
#[derive(Clone, Debug)]
struct Check {
    round: u64,
    waiting: BTreeSet<String>,
    max_gen: u64,
}

#[derive(Clone, Debug)]
enum Recovery {
    /// Asking every online bank for the newest generation it knows.
    Probing { round: u64, waiting: BTreeSet<String>, seen: u64 },
    /// Announcing generation `gen` (older tokens are stale from now on).
    Blocking { round: u64, waiting: BTreeSet<String>, gen: u64 },
    /// Giving the announcement time to reach executions in progress.
    Pausing { gen: u64, until: Duration },
    /// Making `gen` durable before creating its token.
    Persisting { gen: u64 },
}

/// One bank's ring.
pub struct RingMachine {
    rules: Ring,
    timing: Timing,
    rng: ChaCha8Rng,
    online: BTreeSet<String>,
    /// When this bank last accepted or created a token (its own sighting; a vouch from
    /// another bank is not one).
    seen_at: Option<Duration>,
    /// When the current hold began.
    held_since: Option<Duration>,
    hold: Option<Hold>,
    passing: Option<Passing>,
    /// The epoch whose queue the shell is executing (at most one execution at a time).
    executing: Option<Epoch>,
    next_check: Duration,
    check: Option<Check>,
    /// An alert on its way to the lowest online bank: (reason, generation).
    alerting: Option<(String, u64)>,
    recovery: Option<(Recovery, Duration)>,
    idle_streak: u32,
    round: u64,
    /// Round trips of passes and probes, per bank.
    rtt: BTreeMap<String, Rtt>,
    /// Times between this bank's sightings of the token (the rotation, as seen from here).
    rotation: Rtt,
    /// When the current loss check's probes went out.
    probed_at: Duration,
}

impl RingMachine {
    /// A bank starting at time zero: `members` in any order (itself included or not),
    /// `floor_gen` what its disk remembers, `seed` for its jitter.
    pub fn new(me: &str, members: &[String], floor_gen: u64, timing: Timing, seed: u64, accept_stale: bool) -> RingMachine {
        let mut rules = Ring::new(me, members, floor_gen);
        rules.accept_stale = accept_stale;
        let mut m = RingMachine {
            rules,
            timing,
            rng: ChaCha8Rng::seed_from_u64(seed),
            online: BTreeSet::new(),
            seen_at: None,
            held_since: None,
            hold: None,
            passing: None,
            executing: None,
            next_check: Duration::ZERO,
            check: None,
            alerting: None,
            recovery: None,
            idle_streak: 0,
            round: 0,
            rtt: BTreeMap::new(),
            rotation: Rtt::default(),
            probed_at: Duration::ZERO,
        };
        let first = m.timing.startup_check;
        m.next_check = first + m.jitter(first);
        m
    }

    pub fn members(&self) -> &[String] {
        &self.rules.members
    }

    pub fn view(&self) -> RingView {
        RingView {
            newest: self.rules.newest.clone(),
            floor_gen: self.rules.floor_gen,
            last_hop: self.rules.last_hop,
            holding: self.rules.holding,
            recovering: self.recovery.is_some(),
            accept_stale: self.rules.accept_stale,
        }
    }

    /// How long without seeing the token before this bank suspects it is lost: a few measured
    /// rotations (`rtt`, over the times between this bank's sightings), at least `loss_floor`,
    /// at most the shared loss timeout. A suspicion only sends probes: a holder, or a bank that
    /// saw the token lately, vouches for it.
    pub fn loss_timeout(&self) -> Duration {
        self.rotation.timeout(self.timing.loss_floor, self.max_loss_timeout())
    }

    /// The shared loss timeout (`token_loss` per bank): the longest a bank waits before it
    /// suspects a loss, and how long a hold vouches for the token (a bank executing a long
    /// batch is busy, not lost).
    pub fn max_loss_timeout(&self) -> Duration {
        Ring::loss_timeout(self.timing.token_loss, self.rules.members.len())
    }

    /// How long to wait for `to`'s answer to a probe.
    fn probe_timeout(&self, to: &str) -> Duration {
        self.rtt.get(to).copied().unwrap_or_default().timeout(self.timing.pass_floor, self.timing.peer_timeout)
    }

    /// Longest a recovery may take: a round of probes, a round of blocks, the pause, and a
    /// write. Past it the recovery is abandoned (a later alert starts another).
    pub fn recovery_deadline(&self) -> Duration {
        self.timing.peer_timeout * 3 + self.timing.block * 2 + self.loss_timeout()
    }

    /// When the machine next wants a `Tick`.
    pub fn next_timer(&self) -> Option<Duration> {
        let mut t: Option<Duration> = None;
        let mut at = |d: Duration| t = Some(t.map_or(d, |x| x.min(d)));
        if self.hold.is_none() && self.passing.is_none() && self.check.is_none() {
            at(self.next_check);
        }
        if let Some(h) = &self.hold {
            if let Step::Idle { until } | Step::Alone { until } = h.step {
                at(until);
            }
        }
        if let Some((r, deadline)) = &self.recovery {
            at(*deadline);
            if let Recovery::Pausing { until, .. } = r {
                at(*until);
            }
        }
        t
    }

    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::TokenArrived(pass) => self.on_token(now, pass, &mut out),
            Event::ProbeAsked => out.push(Action::Answer(Answer::Probe(self.probe(now)))),
            Event::AlertArrived(a) => match self.rules.check_sender(&a.from) {
                Err(why) => out.push(refused("bad_alert", format!("alert: {why}"))),
                Ok(()) => {
                    let started = self.on_alert(now, a, &mut out);
                    out.push(Action::Answer(Answer::Alert(started)));
                }
            },
            Event::BlockArrived(b) => match self.rules.check_block(&b.from, b.gen) {
                Err(why) => out.push(refused("bad_block", format!("block of generation {}: {why}", b.gen))),
                Ok(()) => {
                    self.on_block(b.gen, &mut out);
                    out.push(Action::Answer(Answer::Block));
                }
            },
            Event::PassAnswered { to, hop, answer } => self.on_pass_answered(now, to, hop, answer, &mut out),
            Event::ProbeAnswered { round, from, answer } => self.on_probe_answered(now, round, from, answer, &mut out),
            Event::AlertAnswered { to, delivered } => {
                if self.alerting.is_some() && !delivered {
                    self.peer_failed(&to, "did not take an alert", &mut out);
                    self.send_alert(now, &mut out);
                } else {
                    self.alerting = None;
                }
            }
            Event::BlockAnswered { round, to } => {
                if let Some((Recovery::Blocking { round: r, waiting, gen }, _)) = &mut self.recovery {
                    if *r == round {
                        waiting.remove(&to);
                        if waiting.is_empty() {
                            let gen = *gen;
                            self.set_recovery(Recovery::Pausing { gen, until: now + self.timing.block });
                        }
                    }
                }
            }
            Event::Gathered(items) => self.on_gathered(now, items, &mut out),
            Event::Executed { epoch } => {
                if self.executing.as_ref() == Some(&epoch) {
                    self.executing = None;
                }
                match self.hold.as_mut().map(|h| (h.step.clone(), h)) {
                    Some((Step::Executing, h)) if h.token.epoch == epoch => {
                        h.executed = true;
                        self.gather(Phase::Ride, &mut out);
                    }
                    // A newer token came while this bank executed the old one's queue.
                    Some((Step::Waiting, _)) => self.visit(&mut out),
                    _ => {}
                }
            }
            Event::Persisted { gen, ok } => self.on_persisted(now, gen, ok, &mut out),
            Event::WorkArrived => {
                if let Some(h) = &self.hold {
                    if matches!(h.step, Step::Idle { .. }) {
                        self.gather(Phase::AfterIdle, &mut out);
                    }
                }
            }
            Event::PeerUp(b) => {
                if self.rules.members.contains(&b) && b != self.rules.me {
                    self.online.insert(b);
                }
            }
            Event::PeerDown(b) => {
                self.online.remove(&b);
            }
            Event::Tick => self.on_tick(now, &mut out),
        }
        self.assert_invariants();
        out
    }

    /// What must always hold between events (checked after each one; a violation is a bug
    /// in this file, never remote input).
    fn assert_invariants(&self) {
        if let Some(h) = &self.hold {
            assert!(self.rules.holding || !self.rules.still_current(&h.token.epoch), "a current token is held but the rules say not holding");
            assert!(h.token.queue.len() <= MAX_QUEUE, "the queue outgrew its bound");
            assert!((h.step == Step::Executing) == (self.executing.as_ref() == Some(&h.token.epoch)), "a held token is executing exactly when its queue is out");
            assert!(h.step != Step::Waiting || self.executing.is_some(), "a token waits only for an execution in progress");
        }
        if let Some(p) = &self.passing {
            assert!(p.token.hop <= MAX_COUNTER + 1, "hops stay in range");
        }
        assert!(!self.online.contains(&self.rules.me), "a bank is never its own peer");
        assert!(self.rules.newest.as_ref().is_none_or(|n| n.gen <= MAX_COUNTER + 1), "generations stay in range");
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        let m = max.as_millis() as u64;
        if m == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.random_range(0..m))
    }

    fn online(&self) -> impl Fn(&str) -> bool + '_ {
        |b: &str| self.online.contains(b)
    }

    fn probe(&self, now: Duration) -> Probe {
        let ago = |t: Duration| now.saturating_sub(t).as_millis() as u64;
        Probe {
            holding: self.rules.holding,
            newest_gen: self.rules.newest.as_ref().map_or(0, |e| e.gen).max(self.rules.floor_gen),
            seen_ms_ago: self.seen_at.map(ago),
            epoch: self.rules.newest.clone(),
            hop: self.rules.last_hop,
            held_ms: if self.rules.holding { self.held_since.map(ago) } else { None },
            recovering: self.recovery.is_some(),
        }
    }

    /// Whether a probe answer shows the token making progress. A holder vouches only while
    /// its hold is younger than the loss timeout: one that keeps the token longer (its disk
    /// or its outbound links stuck) used to vouch for it forever, and nobody replaced it.
    fn vouches(&self, p: &Probe) -> bool {
        let loss = self.loss_timeout();
        let ms = |d: Duration| d.as_millis() as u64;
        if p.recovering {
            return true;
        }
        if p.holding {
            return p.held_ms.is_some_and(|h| h < ms(self.max_loss_timeout()));
        }
        p.seen_ms_ago.is_some_and(|ago| ago < ms(loss / 2))
    }

    fn peer_failed(&mut self, bank: &str, why: &str, out: &mut Vec<Action>) {
        self.online.remove(bank);
        out.push(Action::PeerFailed { bank: bank.to_string(), why: why.to_string() });
    }

    fn set_recovery(&mut self, r: Recovery) {
        if let Some((cur, _)) = &mut self.recovery {
            *cur = r;
        }
    }

    // ---- the token arrives, is held, executed and passed ----

    fn on_token(&mut self, now: Duration, pass: TokenPass, out: &mut Vec<Action>) {
        let TokenPass { from, token: t } = pass;
        if let Err(why) = self.rules.check_token(&from, &t) {
            return out.push(refused("bad_token", format!("token {} hop {}: {why}", t.epoch, t.hop)));
        }
        let mine = t.passed_by.get(&self.rules.me).copied();
        let answer = match self.rules.on_token(&t.epoch, t.hop, mine) {
            Arrival::Accept => {
                // One line per accepted pass: the simulator checks from these that no hop of
                // an epoch is taken twice (one token) and no bank goes back to an older epoch.
                out.push(Action::Emit(NodeEvent::TokenAccepted { epoch: t.epoch.clone(), hop: t.hop, from: from.clone() }));
                if t.epoch.gen > self.rules.floor_gen {
                    self.rules.floor_gen = t.epoch.gen;
                    // Remembered so a restarted bank never regenerates below it; best effort.
                    out.push(Action::Persist { gen: t.epoch.gen, wait: false });
                }
                self.take(now, t, out);
                PassAnswer::Accepted
            }
            Arrival::Repeat => {
                out.push(Action::Count(Counter::DuplicatesDropped));
                PassAnswer::Repeat
            }
            Arrival::Stale => {
                out.push(Action::Count(Counter::StaleDropped));
                out.push(note("token_stale", format!("{} hop {} from {from}", t.epoch, t.hop)));
                PassAnswer::Stale
            }
            Arrival::Duplicate(why) => {
                out.push(Action::Count(Counter::DuplicatesDropped));
                out.push(Action::Count(Counter::Faults));
                out.push(note("token_duplicate", why.clone()));
                self.raise_fault(now, format!("duplicate token: {why}"), out);
                PassAnswer::Duplicate
            }
        };
        out.push(Action::Answer(Answer::Pass(answer)));
    }

    /// This bank holds `token` now (accepted or created): start a visit.
    fn take(&mut self, now: Duration, token: Token, out: &mut Vec<Action>) {
        if let Some(before) = self.seen_at {
            self.rotation.sample(now.saturating_sub(before));
        }
        self.seen_at = Some(now);
        self.held_since = Some(now);
        // A token in hand makes any loss check in progress moot.
        self.check = None;
        let waiting = self.executing.is_some();
        let step = if waiting { Step::Waiting } else { Step::Gathering(Phase::Ride) };
        let fresh = Hold { token, step, execute: false, added: 0, executed: false };
        if let Some(old) = self.hold.replace(fresh) {
            let new = &self.hold.as_ref().expect("just set").token.epoch;
            out.push(note("token_replaced", format!("{} by {}", old.token.epoch, new)));
        }
        if !waiting {
            self.visit(out);
        }
    }

    fn drop_hold(&mut self, why: &str, out: &mut Vec<Action>) {
        if let Some(h) = self.hold.take() {
            self.dropped(&h.token, why, out);
        }
    }

    fn dropped(&mut self, token: &Token, why: &str, out: &mut Vec<Action>) {
        self.rules.holding = false;
        out.push(note("token_dropped", format!("{} hop {}: {why}", token.epoch, token.hop)));
    }

    /// One visit: execute if this bank is the first the token visits twice, add this origin's
    /// packages, then hold a moment if the ring is idle, then pass.
    fn visit(&mut self, out: &mut Vec<Action>) {
        let current = self.hold.as_ref().is_some_and(|h| self.rules.still_current(&h.token.epoch));
        if !current {
            return self.drop_hold("superseded while held", out);
        }
        let h = self.hold.as_mut().expect("checked above");
        h.execute = self.rules.visit(&mut h.token);
        h.added = 0;
        h.executed = false;
        // The executor's own packages go in first: added after executing, they would ride a
        // whole rotation before the next execution (a quarter of all packages on four banks,
        // and the worst latencies).
        let phase = if h.execute { Phase::BeforeExecute } else { Phase::Ride };
        self.gather(phase, out);
    }

    fn gather(&mut self, phase: Phase, out: &mut Vec<Action>) {
        let h = self.hold.as_mut().expect("gathering needs a token");
        h.step = Step::Gathering(phase);
        let room = MAX_QUEUE.saturating_sub(h.token.queue.len());
        out.push(Action::Gather { room, queued: h.token.queue.iter().map(|q| q.key()).collect() });
    }

    fn on_gathered(&mut self, now: Duration, items: Vec<Queued>, out: &mut Vec<Action>) {
        let Some(h) = &mut self.hold else { return };
        let Step::Gathering(phase) = h.step else { return };
        let room = MAX_QUEUE.saturating_sub(h.token.queue.len());
        let queued: BTreeSet<PackageKey> = h.token.queue.iter().map(|q| q.key()).collect();
        let mut n = 0;
        for q in items {
            // The shell was told what fits; a package already queued never rides twice.
            if n < room && !queued.contains(&q.key()) {
                h.token.queue.push(q);
                n += 1;
            }
        }
        h.added += n;
        match phase {
            Phase::BeforeExecute if !h.token.queue.is_empty() => {
                h.step = Step::Executing;
                self.executing = Some(h.token.epoch.clone());
                let queue = std::mem::take(&mut h.token.queue);
                out.push(Action::Execute { epoch: h.token.epoch.clone(), queue });
            }
            Phase::BeforeExecute => self.gather(Phase::Ride, out),
            Phase::Ride => {
                if h.added > 0 || h.executed || !h.token.queue.is_empty() {
                    Ring::mark_busy(&mut h.token);
                }
                let idle = self.rules.ring_idle(&h.token) && !h.execute;
                if idle {
                    // Nothing to do: keep the token a moment, longer the longer the ring stays
                    // idle (an idle ring must not spin), but hand it on as soon as a client
                    // brings work.
                    let hold = self.idle_hold(true);
                    self.hold.as_mut().expect("held").step = Step::Idle { until: now + hold };
                } else {
                    self.idle_hold(false);
                    self.pass(now, out);
                }
            }
            Phase::AfterIdle => {
                if n > 0 {
                    Ring::mark_busy(&mut h.token);
                }
                self.pass(now, out)
            }
        }
    }

    /// The idle pause: `idle_hold` doubled per idle visit in a row, up to `idle_hold_max`;
    /// any work resets it.
    fn idle_hold(&mut self, idle: bool) -> Duration {
        if !idle {
            self.idle_streak = 0;
            return Duration::ZERO;
        }
        let t = &self.timing;
        let hold = t.idle_hold.saturating_mul(1u32 << self.idle_streak.min(16)).min(t.idle_hold_max.max(t.idle_hold));
        self.idle_streak = self.idle_streak.saturating_add(1);
        hold
    }

    fn pass(&mut self, now: Duration, out: &mut Vec<Action>) {
        let current = self.hold.as_ref().is_some_and(|h| self.rules.still_current(&h.token.epoch));
        if !current {
            return self.drop_hold("superseded while held", out);
        }
        let h = self.hold.as_mut().expect("checked above");
        // Checked on arrival to be at most MAX_COUNTER: adding one never wraps.
        h.token.hop = h.token.hop.checked_add(1).expect("hops are checked on arrival");
        h.token.passed_by.insert(self.rules.me.clone(), h.token.hop);
        self.send(now, out);
    }

    /// Sends the held token to the next online bank; alone, keeps it for a pause.
    fn send(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some(next) = self.rules.successor(self.online()) else {
            let until = now + self.timing.idle_hold.max(Duration::from_millis(1));
            self.hold.as_mut().expect("sending needs a token").step = Step::Alone { until };
            return;
        };
        let h = self.hold.take().expect("sending needs a token");
        self.rules.pass_started(h.token.hop);
        let pass = TokenPass { from: self.rules.me.clone(), token: h.token.clone() };
        let timeout = self.rtt.get(&next).copied().unwrap_or_default().timeout(self.timing.pass_floor, self.timing.peer_timeout);
        self.passing = Some(Passing { to: next.clone(), attempt: 0, token: h.token, sent_at: now, timeout });
        out.push(Action::Pass { to: next, pass, timeout });
    }

    fn on_pass_answered(&mut self, now: Duration, to: String, hop: u64, answer: CallResult<PassAnswer>, out: &mut Vec<Action>) {
        let Some(p) = &mut self.passing else { return };
        if p.to != to || p.token.hop != hop {
            return;
        }
        let rtt = self.rtt.entry(to.clone()).or_default();
        let answered = match answer {
            CallResult::Answer(a) => {
                rtt.sample(now.saturating_sub(p.sent_at));
                Some(a)
            }
            // A refusal is an answer: the token was not taken. Retrying cannot change it.
            CallResult::Refused(m) => {
                rtt.sample(now.saturating_sub(p.sent_at));
                out.push(note("pass_refused", format!("{to}: {m}")));
                Some(PassAnswer::Stale)
            }
            // On a timeout, one retry to the same bank (a repeat is recognized there), so a
            // slow answer does not turn into a second token; it waits twice as long.
            CallResult::Unreachable(m) if p.attempt == 0 && self.rules.passing == Some(hop) => {
                out.push(note("pass_retry", format!("{to}: {m}")));
                p.attempt = 1;
                p.sent_at = now;
                p.timeout = (p.timeout * 2).min(self.timing.peer_timeout.max(p.timeout));
                let pass = TokenPass { from: self.rules.me.clone(), token: p.token.clone() };
                return out.push(Action::Pass { to, pass, timeout: p.timeout });
            }
            CallResult::Unreachable(m) => {
                rtt.failed();
                self.peer_failed(&to, &m, out);
                None
            }
        };
        let delivered = matches!(answered, Some(PassAnswer::Accepted | PassAnswer::Repeat));
        let p = self.passing.take().expect("checked above");
        if !self.rules.pass_ended(hop, delivered) {
            return; // the token came round while the answer was on its way: this copy is old
        }
        match answered {
            Some(PassAnswer::Accepted | PassAnswer::Repeat) => self.passed(now),
            Some(a) => {
                self.dropped(&p.token, &format!("{to} answered {a:?}"), out);
                self.passed(now);
            }
            None => {
                // Marked offline: the one after it.
                self.hold = Some(Hold { token: p.token, step: Step::Gathering(Phase::Ride), execute: false, added: 0, executed: false });
                self.send(now, out);
            }
        }
    }

    /// The token left this bank (delivered or dropped): watch for its loss from now.
    fn passed(&mut self, now: Duration) {
        if self.hold.is_none() {
            self.held_since = None;
        }
        self.next_check = now + self.loss_timeout();
    }

    // ---- loss, alerts, recovery ----

    fn on_tick(&mut self, now: Duration, out: &mut Vec<Action>) {
        if let Some((_, deadline)) = &self.recovery {
            if now >= *deadline {
                self.recovery = None;
                out.push(note("recovery_abandoned", format!("not done within {} ms", self.recovery_deadline().as_millis())));
            }
        }
        if let Some((Recovery::Pausing { gen, until }, _)) = &self.recovery {
            let gen = *gen;
            if now >= *until {
                if self.superseded(gen) {
                    self.recovery = None;
                    out.push(note("recovery_abandoned", format!("gen {gen}: a newer token or recovery exists")));
                } else {
                    let gen = self.rules.epoch_after(gen - 1);
                    self.set_recovery(Recovery::Persisting { gen });
                    out.push(Action::Persist { gen, wait: true });
                }
            }
        }
        if let Some(h) = &self.hold {
            match h.step {
                Step::Idle { until } if now >= until => self.pass(now, out),
                Step::Alone { until } if now >= until => {
                    // Alone: take the next visit (this bank has the token, so it does not
                    // suspect its loss; others stop trusting its hold after a loss timeout).
                    self.seen_at = Some(now);
                    self.visit(out);
                }
                _ => {}
            }
        }
        if self.hold.is_none() && self.passing.is_none() && self.check.is_none() && now >= self.next_check {
            let loss = self.loss_timeout();
            // A bank running a recovery is about to create the token: no check meanwhile.
            if self.recovery.is_none() && self.seen_at.is_none_or(|t| now.saturating_sub(t) >= loss) {
                self.start_check(now, out);
            } else {
                self.schedule_check(now, false);
            }
        }
    }

    fn schedule_check(&mut self, now: Duration, vouched: bool) {
        let loss = self.loss_timeout();
        // Another bank vouching only postpones this bank's next check; it is not a sighting
        // of its own (the simulator found the ring dead for good when banks vouched for each
        // other in turn, each passing on the other's "recent" sighting).
        let base = if vouched { now } else { self.seen_at.unwrap_or(now) };
        self.next_check = (base + loss).max(now + loss / 2) + self.jitter(loss / 4);
    }

    /// Nobody has seen the token for a while: ask every online bank at once.
    fn start_check(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.round += 1;
        let waiting: BTreeSet<String> = self.online.clone();
        self.probed_at = now;
        for to in &waiting {
            out.push(Action::Probe { round: self.round, to: to.clone(), timeout: self.probe_timeout(to) });
        }
        self.check = Some(Check { round: self.round, waiting, max_gen: 0 });
        if self.online.is_empty() {
            self.conclude_check(now, out);
        }
    }

    fn on_probe_answered(&mut self, now: Duration, round: u64, from: String, answer: Option<Probe>, out: &mut Vec<Action>) {
        // An answer with a generation above the ceiling is refused: it would push every new
        // epoch out of range.
        let answer = match answer {
            Some(p) if p.newest_gen > MAX_COUNTER || p.epoch.as_ref().is_some_and(|e| e.gen > MAX_COUNTER) => {
                let message = format!("probe answer with generation {} above {MAX_COUNTER}", p.newest_gen);
                out.push(Action::Refuse { from: from.clone(), code: "bad_probe", message });
                None
            }
            a => a,
        };
        if let Some(c) = &mut self.check {
            if c.round == round {
                c.waiting.remove(&from);
                if answer.is_some() {
                    self.rtt.entry(from.clone()).or_default().sample(now.saturating_sub(self.probed_at));
                }
                let Some(c) = &mut self.check else { unreachable!("checked above") };
                if let Some(p) = &answer {
                    c.max_gen = c.max_gen.max(p.newest_gen);
                    if self.vouches(p) {
                        self.check = None;
                        return self.schedule_check(now, true);
                    }
                }
                if self.check.as_ref().is_some_and(|c| c.waiting.is_empty()) {
                    self.conclude_check(now, out);
                }
                return;
            }
        }
        if let Some((Recovery::Probing { round: r, waiting, seen }, _)) = &mut self.recovery {
            if *r == round {
                waiting.remove(&from);
                if let Some(p) = &answer {
                    *seen = (*seen).max(p.newest_gen);
                }
                if waiting.is_empty() {
                    let seen = *seen;
                    self.announce(now, seen, out);
                }
            }
        }
    }

    /// No bank vouched for the token: report the fault.
    fn conclude_check(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some(c) = self.check.take() else { return };
        let never = c.max_gen == 0 && self.probe(now).newest_gen == 0;
        if never {
            // A consortium starting for the first time: no token ever existed. Not a fault.
            self.raise_fault(now, "no token yet: starting the ring".to_string(), out);
        } else {
            out.push(Action::Count(Counter::Faults));
            let loss = self.loss_timeout().as_millis();
            self.raise_fault(now, format!("token lost: nobody saw it for {loss} ms (max gen seen {})", c.max_gen), out);
        }
        self.schedule_check(now, false);
    }

    /// Reports a fault to the lowest-address online bank (maybe this one).
    fn raise_fault(&mut self, now: Duration, reason: String, out: &mut Vec<Action>) {
        out.push(note("fault", reason.clone()));
        let gen = self.probe(now).newest_gen;
        self.alerting = Some((reason, gen));
        self.send_alert(now, out);
    }

    fn send_alert(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some((reason, gen)) = self.alerting.clone() else { return };
        let lowest = self.rules.lowest_online(self.online());
        if lowest == self.rules.me {
            self.alerting = None;
            let me = self.rules.me.clone();
            self.on_alert(now, Alert { from: me, reason, gen }, out);
        } else {
            out.push(Action::Alert { to: lowest, alert: Alert { from: self.rules.me.clone(), reason, gen } });
        }
    }

    /// An alert reached this bank. Returns whether it starts a recovery.
    fn on_alert(&mut self, now: Duration, a: Alert, out: &mut Vec<Action>) -> bool {
        if a.gen < self.probe(now).newest_gen || self.recovery.is_some() {
            return false; // already regenerated past what the alerting bank knew, or doing it
        }
        out.push(note("recovery_start", format!("alert from {}: {}", a.from, a.reason)));
        self.round += 1;
        let waiting = self.online.clone();
        let seen = self.probe(now).newest_gen;
        for to in &waiting {
            // The recovery's own probes wait the longest: a bank missed here may hold a newer
            // generation.
            out.push(Action::Probe { round: self.round, to: to.clone(), timeout: self.timing.peer_timeout });
        }
        self.recovery = Some((Recovery::Probing { round: self.round, waiting, seen }, now + self.recovery_deadline()));
        if self.online.is_empty() {
            self.announce(now, seen, out);
        }
        true
    }

    /// The lowest-address bank regenerates the token: it announces a generation above every
    /// one it heard of (older tokens are stale from then on), pauses, then starts a token of
    /// that generation, empty; origins re-queue what was not executed.
    fn announce(&mut self, now: Duration, seen: u64, out: &mut Vec<Action>) {
        let gen = seen.min(MAX_COUNTER) + 1;
        self.on_block(gen, out);
        self.round += 1;
        let waiting = self.online.clone();
        for to in &waiting {
            out.push(Action::Block { round: self.round, to: to.clone(), block: Block { from: self.rules.me.clone(), gen } });
        }
        let next = if waiting.is_empty() { Recovery::Pausing { gen, until: now + self.timing.block } } else { Recovery::Blocking { round: self.round, waiting, gen } };
        self.set_recovery(next);
    }

    fn on_block(&mut self, gen: u64, out: &mut Vec<Action>) {
        if !self.rules.block(gen) {
            return out.push(note("block_ignored", format!("gen {gen} is old news")));
        }
        out.push(note("blocked", format!("until gen {gen}")));
        // A token held idle or alone is superseded now; one being executed stops at the
        // executor's next batch (it reads the view) and is dropped when it reports back.
        if self.hold.as_ref().is_some_and(|h| h.step != Step::Executing) {
            self.drop_hold("superseded while held", out);
        }
    }

    fn on_persisted(&mut self, now: Duration, gen: u64, ok: bool, out: &mut Vec<Action>) {
        let Some((Recovery::Persisting { gen: g }, _)) = &self.recovery else { return };
        if *g != gen {
            return;
        }
        self.recovery = None;
        if !ok {
            out.push(note("epoch_persist_failed", format!("gen {gen}")));
        }
        if self.superseded(gen) {
            return out.push(note("recovery_abandoned", format!("gen {gen}: a newer token or recovery exists")));
        }
        let epoch = self.rules.start_epoch(gen);
        out.push(Action::Count(Counter::TokensCreated));
        out.push(Action::Emit(NodeEvent::TokenCreated { epoch: epoch.clone() }));
        self.take(now, Token::new(epoch), out);
    }
}

impl RingMachine {
    /// Whether a recovery of generation `gen` must give way: another recovery's token of this
    /// generation or newer got here first, or a newer generation was announced. That one is
    /// the ring's token; a second would only be found and regenerated again.
    fn superseded(&self, gen: u64) -> bool {
        self.rules.newest.as_ref().is_some_and(|n| n.gen >= gen) || self.rules.floor_gen > gen
    }
}

fn note(kind: &'static str, detail: String) -> Action {
    Action::Emit(NodeEvent::Note { kind, detail })
}

fn refused(code: &'static str, message: String) -> Action {
    Action::Answer(Answer::Refused { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing { idle_hold: MS, idle_hold_max: 10 * MS, token_loss: 100 * MS, startup_check: 50 * MS, block: 20 * MS, peer_timeout: 200 * MS, pass_floor: 20 * MS, loss_floor: 300 * MS }
    }

    fn members() -> Vec<String> {
        vec!["a:1".into(), "b:1".into(), "c:1".into()]
    }

    /// A bank with every other bank online.
    fn bank(me: &str) -> RingMachine {
        let mut m = RingMachine::new(me, &members(), 0, timing(), 7, false);
        for b in members() {
            m.handle(Duration::ZERO, Event::PeerUp(b));
        }
        m
    }

    /// Handles an event as the shell does: a `Gather` is answered at once (nothing pending).
    fn step(m: &mut RingMachine, now: Duration, ev: Event) -> Vec<Action> {
        let mut all = Vec::new();
        let mut events = vec![ev];
        while let Some(ev) = events.pop() {
            for a in m.handle(now, ev) {
                if let Action::Gather { .. } = a {
                    events.push(Event::Gathered(Vec::new()));
                }
                all.push(a);
            }
        }
        all
    }

    fn emitted(actions: &[Action], kind: &str) -> Vec<String> {
        actions.iter().filter_map(|a| match a { Action::Emit(e) if e.kind() == kind => Some(e.detail()), _ => None }).collect()
    }

    fn passes(actions: &[Action]) -> Vec<(String, Token)> {
        actions.iter().filter_map(|a| match a { Action::Pass { to, pass, .. } => Some((to.clone(), pass.token.clone())), _ => None }).collect()
    }

    fn probes(actions: &[Action]) -> Vec<(u64, String)> {
        actions.iter().filter_map(|a| match a { Action::Probe { round, to, .. } => Some((*round, to.clone())), _ => None }).collect()
    }

    fn answer(actions: &[Action]) -> Option<Answer> {
        actions.iter().find_map(|a| match a { Action::Answer(x) => Some(x.clone()), _ => None })
    }

    fn quiet(gen: u64) -> Probe {
        Probe { holding: false, newest_gen: gen, seen_ms_ago: None, epoch: None, hop: 0, held_ms: None, recovering: false }
    }

    fn token(gen: u64, creator: &str, hop: u64) -> Token {
        let mut t = Token::new(Epoch { gen, creator: creator.into() });
        t.hop = hop;
        t
    }

    fn arrive(m: &mut RingMachine, now: Duration, from: &str, t: Token) -> Vec<Action> {
        step(m, now, Event::TokenArrived(TokenPass { from: from.into(), token: t }))
    }

    /// Runs `a:1` from start-up to its first token, every peer answering at once.
    fn first_token(m: &mut RingMachine) -> (Duration, Vec<Action>) {
        let t = m.next_timer().expect("a start-up check is due");
        let out = step(m, t, Event::Tick);
        let asked = probes(&out);
        assert_eq!(asked.len(), 2, "every online bank is asked at once");
        let mut out = Vec::new();
        for (round, to) in asked {
            out = step(m, t, Event::ProbeAnswered { round, from: to, answer: Some(quiet(0)) });
        }
        assert_eq!(emitted(&out, "fault"), vec!["no token yet: starting the ring"]);
        assert_eq!(emitted(&out, "recovery_start").len(), 1, "the lowest bank recovers itself");
        assert!(m.view().recovering && m.view().seen(), "ready: it is creating the token");
        for (round, to) in probes(&out) {
            out = step(m, t, Event::ProbeAnswered { round, from: to, answer: Some(quiet(0)) });
        }
        let blocks: Vec<(u64, String)> = out.iter().filter_map(|a| match a { Action::Block { round, to, block } => { assert_eq!(block.gen, 1); Some((*round, to.clone())) } _ => None }).collect();
        assert_eq!(blocks.len(), 2);
        for (round, to) in blocks {
            step(m, t, Event::BlockAnswered { round, to });
        }
        let t = m.next_timer().expect("the pause ends");
        let out = step(m, t, Event::Tick);
        assert!(out.contains(&Action::Persist { gen: 1, wait: true }), "the generation is durable before its token exists: {out:?}");
        assert!(passes(&out).is_empty());
        (t, step(m, t, Event::Persisted { gen: 1, ok: true }))
    }

    #[test]
    fn the_lowest_bank_creates_the_first_token_after_asking_everyone() {
        let mut a = bank("a:1");
        let (_, out) = first_token(&mut a);
        assert_eq!(emitted(&out, "token_created"), vec!["1@a:1"]);
        assert!(out.contains(&Action::Count(Counter::TokensCreated)));
        let p = passes(&out);
        assert_eq!(p.len(), 1, "{out:?}");
        assert_eq!((p[0].0.as_str(), p[0].1.hop), ("b:1", 1));
        assert_eq!(p[0].1.passed_by.get("a:1"), Some(&1), "the token records this bank's pass");
        assert!(!a.view().recovering);
    }

    fn pass_timeouts(actions: &[Action]) -> Vec<(String, Duration)> {
        actions.iter().filter_map(|a| match a { Action::Pass { to, timeout, .. } => Some((to.clone(), *timeout)), _ => None }).collect()
    }

    #[test]
    fn a_pass_waits_what_the_round_trips_say_then_twice_that_and_the_longest_after_a_failure() {
        let mut a = bank("a:1");
        let (mut t, out) = first_token(&mut a);
        assert_eq!(pass_timeouts(&out), vec![("b:1".to_string(), 20 * MS)], "measured by the start-up probes: the floor");
        let mut sent = passes(&out)[0].1.clone();
        // The token goes round a few times; b answers in 2 ms each time.
        for _ in 0..6 {
            step(&mut a, t + 2 * MS, Event::PassAnswered { to: "b:1".into(), hop: sent.hop, answer: CallResult::Answer(PassAnswer::Accepted) });
            let mut back = sent.clone();
            for b in ["b:1", "c:1"] {
                back.hop += 1;
                back.passed_by.insert(b.into(), back.hop);
            }
            t += 10 * MS;
            let mut out = arrive(&mut a, t, "c:1", back);
            while pass_timeouts(&out).is_empty() {
                t = a.next_timer().expect("the hold ends");
                out = step(&mut a, t, Event::Tick);
            }
            assert_eq!(pass_timeouts(&out), vec![("b:1".to_string(), 20 * MS)], "measured: the floor");
            sent = passes(&out)[0].1.clone();
        }
        let hop = sent.hop;
        let out = step(&mut a, t + 20 * MS, Event::PassAnswered { to: "b:1".into(), hop, answer: CallResult::Unreachable("timed out".into()) });
        assert_eq!(pass_timeouts(&out), vec![("b:1".to_string(), 40 * MS)], "the retry waits twice as long");
        let out = step(&mut a, t + 60 * MS, Event::PassAnswered { to: "b:1".into(), hop, answer: CallResult::Unreachable("timed out".into()) });
        assert_eq!(pass_timeouts(&out), vec![("c:1".to_string(), 20 * MS)], "the bank after, measured by the start-up probes");
        assert_eq!(a.rtt.get("b:1").copied().unwrap_or_default().timeout(20 * MS, 200 * MS), 200 * MS, "b failed: the longest wait when it is back");
    }

    #[test]
    fn the_loss_is_suspected_after_a_few_measured_rotations_but_a_long_hold_still_vouches() {
        let timing = Timing { token_loss: 1000 * MS, loss_floor: 50 * MS, ..timing() };
        let mut b = RingMachine::new("b:1", &members(), 0, timing, 7, false);
        for m in members() {
            b.handle(Duration::ZERO, Event::PeerUp(m));
        }
        assert_eq!(b.loss_timeout(), 3000 * MS, "nothing measured: the shared loss timeout");
        // The token comes by every 20 ms.
        let mut t = Duration::ZERO;
        for hop in 0..12u64 {
            t += 20 * MS;
            let mut tok = token(1, "a:1", 3 * hop + 1);
            tok.passed_by.insert("a:1".into(), 3 * hop + 1);
            if hop > 0 {
                tok.passed_by.insert("b:1".into(), 3 * hop - 1);
                tok.passed_by.insert("c:1".into(), 3 * hop);
            }
            let out = arrive(&mut b, t, "a:1", tok);
            assert!(matches!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted))), "hop {hop}: {out:?}");
            let hop_out = b.passing.as_ref().map(|p| p.token.hop);
            while b.passing.is_none() {
                let n = b.next_timer().unwrap();
                step(&mut b, n, Event::Tick);
            }
            let h = hop_out.unwrap_or_else(|| b.passing.as_ref().unwrap().token.hop);
            step(&mut b, t + MS, Event::PassAnswered { to: "c:1".into(), hop: h, answer: CallResult::Answer(PassAnswer::Accepted) });
        }
        let loss = b.loss_timeout();
        assert!(loss >= 50 * MS && loss < 200 * MS, "a few rotations, not seconds: {loss:?}");
        // A holder answering a probe vouches for as long as the shared loss timeout.
        let long_hold = Probe { holding: true, held_ms: Some(2_000), epoch: Some(Epoch { gen: 1, creator: "a:1".into() }), ..quiet(1) };
        assert!(b.vouches(&long_hold), "a bank executing a long batch is busy, not lost");
        assert!(!b.vouches(&Probe { held_ms: Some(3_000), ..long_hold.clone() }), "a hold past the shared timeout no longer vouches");
        let saw = Probe { seen_ms_ago: Some(loss.as_millis() as u64), ..quiet(1) };
        assert!(!b.vouches(&saw), "a sighting older than half the measured timeout does not vouch");
    }

    #[test]
    fn a_slow_pass_is_retried_once_then_the_next_bank_gets_it() {
        let mut a = bank("a:1");
        let (t, _) = first_token(&mut a);
        let out = step(&mut a, t, Event::PassAnswered { to: "b:1".into(), hop: 1, answer: CallResult::Unreachable("timed out".into()) });
        assert_eq!(passes(&out).len(), 1, "one retry to the same bank");
        assert_eq!(passes(&out)[0].0, "b:1");
        let out = step(&mut a, t, Event::PassAnswered { to: "b:1".into(), hop: 1, answer: CallResult::Unreachable("timed out".into()) });
        assert!(out.iter().any(|a| matches!(a, Action::PeerFailed { bank, .. } if bank == "b:1")));
        let p = passes(&out);
        assert_eq!((p[0].0.as_str(), p[0].1.hop), ("c:1", 1), "the same hop goes to the one after");
        let out = step(&mut a, t, Event::PassAnswered { to: "c:1".into(), hop: 1, answer: CallResult::Answer(PassAnswer::Accepted) });
        assert!(out.is_empty(), "{out:?}");
        assert!(!a.view().holding);
        assert!(a.next_timer().is_some_and(|n| n > t), "it watches for the token's loss");
    }

    #[test]
    fn a_refused_pass_drops_the_token() {
        let mut a = bank("a:1");
        let (t, _) = first_token(&mut a);
        let out = step(&mut a, t, Event::PassAnswered { to: "b:1".into(), hop: 1, answer: CallResult::Refused("(400) no".into()) });
        assert_eq!(emitted(&out, "pass_refused").len(), 1);
        assert_eq!(emitted(&out, "token_dropped").len(), 1);
        assert!(!a.view().holding);
    }

    #[test]
    fn the_token_coming_round_before_the_pass_answer_is_taken_and_the_late_answer_ignored() {
        let mut b = bank("b:1");
        let out = arrive(&mut b, MS, "a:1", token(1, "a:1", 1));
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted)));
        let (_, sent) = passes(&out).pop().expect("passed on at once: the ring is busy");
        assert_eq!(sent.hop, 2);
        // c and a took hops 2 and 3; the token is back before c's answer.
        let mut back = sent.clone();
        back.hop = 4;
        let out = arrive(&mut b, 2 * MS, "a:1", back);
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted)));
        assert_eq!(passes(&out)[0].1.hop, 5);
        let out = step(&mut b, 3 * MS, Event::PassAnswered { to: "c:1".into(), hop: 2, answer: CallResult::Unreachable("late".into()) });
        assert!(out.is_empty(), "the copy of hop 2 is old: no retry, no drop: {out:?}");
        assert!(b.view().holding, "hop 5 is still on its way");
    }

    #[test]
    fn an_idle_ring_holds_the_token_until_work_arrives() {
        let mut b = bank("b:1");
        let mut t = token(1, "a:1", 10);
        t.busy_hop = 2;
        let out = arrive(&mut b, MS, "a:1", t);
        assert!(passes(&out).is_empty(), "idle: kept a moment");
        let until = b.next_timer().expect("the idle hold ends");
        assert!(until > MS);
        let out = step(&mut b, MS, Event::WorkArrived);
        assert_eq!(passes(&out).len(), 1, "work ends the hold at once");
    }

    #[test]
    fn a_holder_that_keeps_the_token_too_long_does_not_vouch_for_it() {
        let loss = Ring::loss_timeout(timing().token_loss, 3);
        let held = |ms: u64| Probe { holding: true, newest_gen: 1, seen_ms_ago: Some(ms), epoch: Some(Epoch { gen: 1, creator: "a:1".into() }), hop: 9, held_ms: Some(ms), recovering: false };
        for (held_ms, vouched) in [(10, true), (loss.as_millis() as u64 + 1, false)] {
            let mut b = bank("b:1");
            let t = b.next_timer().unwrap();
            let out = step(&mut b, t, Event::Tick);
            let asked = probes(&out);
            let out = step(&mut b, t, Event::ProbeAnswered { round: asked[0].0, from: "a:1".into(), answer: Some(held(held_ms)) });
            let out2 = step(&mut b, t, Event::ProbeAnswered { round: asked[1].0, from: "c:1".into(), answer: Some(quiet(1)) });
            let alerts: Vec<&Action> = out.iter().chain(&out2).filter(|a| matches!(a, Action::Alert { .. })).collect();
            if vouched {
                assert!(alerts.is_empty(), "a fresh hold is progress");
            } else {
                assert_eq!(alerts.len(), 1, "a hold older than the loss timeout is not progress");
                assert!(matches!(alerts[0], Action::Alert { to, .. } if to == "a:1"));
                assert!(out2.contains(&Action::Count(Counter::Faults)));
            }
        }
    }

    #[test]
    fn holding_alone_is_not_seeing_the_token() {
        let mut b = bank("b:1");
        arrive(&mut b, MS, "a:1", token(1, "a:1", 1));
        let mut now = MS;
        // Every other bank stops answering: b keeps the token alone.
        for peer in ["a:1", "c:1"] {
            b.handle(now, Event::PeerDown(peer.into()));
        }
        let out = step(&mut b, now, Event::PassAnswered { to: "c:1".into(), hop: 2, answer: CallResult::Unreachable("x".into()) });
        let out2 = step(&mut b, now, Event::PassAnswered { to: "c:1".into(), hop: 2, answer: CallResult::Unreachable("x".into()) });
        assert!(passes(&out).len() + passes(&out2).len() <= 1, "only the retry");
        while now < 2000 * MS {
            now = b.next_timer().unwrap().max(now + MS);
            step(&mut b, now, Event::Tick);
        }
        let Some(Answer::Probe(p)) = answer(&b.handle(now, Event::ProbeAsked)) else { panic!() };
        assert!(p.holding);
        assert!(p.held_ms.unwrap() >= 1900, "held since it was accepted: {p:?}");
    }

    #[test]
    fn a_token_of_the_announced_generation_is_taken_during_the_block() {
        let mut b = bank("b:1");
        arrive(&mut b, MS, "a:1", token(1, "a:1", 1));
        let out = step(&mut b, 2 * MS, Event::BlockArrived(Block { from: "a:1".into(), gen: 2 }));
        assert_eq!(answer(&out), Some(Answer::Block));
        assert_eq!(arrive(&mut b, 3 * MS, "a:1", token(1, "a:1", 4)).iter().filter_map(|a| if let Action::Answer(x) = a { Some(x.clone()) } else { None }).next(), Some(Answer::Pass(PassAnswer::Stale)));
        let out = arrive(&mut b, 3 * MS, "c:1", token(2, "c:1", 1));
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted)), "the recovery's own token");
    }

    #[test]
    fn a_recovery_gives_way_to_a_token_of_its_generation() {
        let mut a = bank("a:1");
        let out = step(&mut a, MS, Event::AlertArrived(Alert { from: "c:1".into(), reason: "lost".into(), gen: 0 }));
        assert_eq!(answer(&out), Some(Answer::Alert(true)));
        for (round, to) in probes(&out) {
            step(&mut a, MS, Event::ProbeAnswered { round, from: to, answer: Some(quiet(3)) });
        }
        let out = step(&mut a, MS, Event::BlockAnswered { round: 0, to: "b:1".into() });
        assert!(out.is_empty());
        // Meanwhile c recovered too (it thought a was down) and its token of generation 4 got here.
        let out = arrive(&mut a, 2 * MS, "b:1", token(4, "c:1", 2));
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted)));
        let mut now = 2 * MS;
        let mut all = Vec::new();
        for _ in 0..20 {
            now = a.next_timer().unwrap().max(now);
            all.extend(step(&mut a, now, Event::Tick));
            if !a.view().recovering {
                break;
            }
        }
        assert!(!a.view().recovering);
        assert!(emitted(&all, "token_created").is_empty(), "a second token of generation 4 would only be regenerated again");
    }

    #[test]
    fn a_recovery_that_never_finishes_is_abandoned_at_its_deadline() {
        let mut a = bank("a:1");
        let out = step(&mut a, MS, Event::AlertArrived(Alert { from: "c:1".into(), reason: "lost".into(), gen: 0 }));
        // The probes are never answered (a shell that lost them).
        assert_eq!(probes(&out).len(), 2);
        assert!(a.view().recovering);
        let deadline = MS + a.recovery_deadline();
        let mut out = Vec::new();
        while a.view().recovering {
            let t = a.next_timer().expect("a recovery always has a deadline");
            assert!(t <= deadline, "nothing waits past the deadline");
            out = step(&mut a, t, Event::Tick);
        }
        assert_eq!(emitted(&out, "recovery_abandoned").len(), 1);
        assert!(!a.view().recovering, "never left recovering");
        let out = step(&mut a, deadline, Event::AlertArrived(Alert { from: "c:1".into(), reason: "lost".into(), gen: 0 }));
        assert_eq!(answer(&out), Some(Answer::Alert(true)), "the next alert starts a recovery again");
    }

    #[test]
    fn one_execution_at_a_time() {
        let mut b = bank("b:1");
        let mut t = token(1, "a:1", 5);
        t.visits.insert("b:1".into(), 1);
        let mut pkg = crate::package::Package { id: "p".into(), operations: Vec::new(), ..Default::default() };
        pkg.operations.push(crate::package::Operation { kind: crate::package::OpKind::Deposit, from: None, to: Some(crate::package::AccountRef { bank: "a:1".into(), account: "1".into() }), amount: crate::domain::Cents(1) });
        t.queue.push(Queued { package: pkg, origin: "a:1".into() });
        let out = arrive(&mut b, MS, "a:1", t);
        assert!(out.iter().any(|a| matches!(a, Action::Execute { queue, .. } if queue.len() == 1)), "second visit: b executes");
        // A recovery supersedes it, and the new generation's token arrives mid-execution.
        step(&mut b, 2 * MS, Event::BlockArrived(Block { from: "a:1".into(), gen: 2 }));
        let out = arrive(&mut b, 3 * MS, "c:1", token(2, "c:1", 1));
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Accepted)));
        assert!(passes(&out).is_empty() && !out.iter().any(|a| matches!(a, Action::Execute { .. })), "waits for the old execution: {out:?}");
        let out = step(&mut b, 4 * MS, Event::Executed { epoch: Epoch { gen: 1, creator: "a:1".into() } });
        assert_eq!(passes(&out).len(), 1, "then goes on with the new token: {out:?}");
        assert_eq!(passes(&out)[0].1.epoch.gen, 2);
    }

    #[test]
    fn a_second_token_raises_a_fault_at_the_lowest_bank() {
        let mut c = bank("c:1");
        arrive(&mut c, MS, "b:1", token(1, "a:1", 5));
        let out = arrive(&mut c, 2 * MS, "b:1", token(1, "a:1", 3));
        assert_eq!(answer(&out), Some(Answer::Pass(PassAnswer::Duplicate)));
        assert!(out.iter().any(|a| matches!(a, Action::Alert { to, .. } if to == "a:1")));
        let out = step(&mut c, 2 * MS, Event::AlertAnswered { to: "a:1".into(), delivered: false });
        assert!(out.iter().any(|a| matches!(a, Action::Alert { to, .. } if to == "b:1")), "a down: the next lowest");
    }

    #[test]
    fn messages_from_outside_the_ring_are_refused() {
        let mut b = bank("b:1");
        let out = arrive(&mut b, MS, "x:1", token(1, "a:1", 1));
        assert!(matches!(answer(&out), Some(Answer::Refused { code: "bad_token", .. })));
        let out = step(&mut b, MS, Event::AlertArrived(Alert { from: "x:1".into(), reason: "r".into(), gen: 0 }));
        assert!(matches!(answer(&out), Some(Answer::Refused { code: "bad_alert", .. })));
        let out = step(&mut b, MS, Event::BlockArrived(Block { from: "a:1".into(), gen: MAX_COUNTER + 1 }));
        assert!(matches!(answer(&out), Some(Answer::Refused { code: "bad_block", .. })));
        let out = step(&mut b, MS, Event::ProbeAnswered { round: 1, from: "a:1".into(), answer: Some(quiet(MAX_COUNTER + 1)) });
        assert!(out.iter().any(|a| matches!(a, Action::Refuse { code: "bad_probe", .. })));
        assert!(b.view().newest.is_none());
    }

    /// Random events in random order (answers to calls never made, tokens from anywhere,
    /// late timers): the machine's own assertions hold, and its timer never asks for a
    /// moment already handled (a busy loop).
    #[test]
    fn random_events_keep_the_invariants_and_never_spin() {
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let me = ["a:1", "b:1", "c:1"][(seed % 3) as usize];
            let mut m = bank(me);
            let mut now = Duration::ZERO;
            let mut sent: Vec<Token> = Vec::new();
            for _ in 0..400 {
                now += Duration::from_millis(rng.random_range(0..30));
                let peer = ["a:1", "b:1", "c:1"][rng.random_range(0..3)].to_string();
                let gen = rng.random_range(1..4);
                let ev = match rng.random_range(0..12) {
                    0 => Event::TokenArrived(TokenPass { from: peer, token: sent.last().cloned().unwrap_or_else(|| token(gen, "a:1", rng.random_range(0..9))) }),
                    1 => Event::TokenArrived(TokenPass { from: peer, token: token(gen, "c:1", rng.random_range(0..9)) }),
                    2 => Event::PassAnswered { to: peer, hop: sent.last().map_or(1, |t| t.hop), answer: [CallResult::Answer(PassAnswer::Accepted), CallResult::Unreachable("x".into()), CallResult::Answer(PassAnswer::Stale)][rng.random_range(0..3)].clone() },
                    3 => Event::ProbeAnswered { round: m.round, from: peer, answer: if rng.random() { Some(quiet(gen)) } else { None } },
                    4 => Event::BlockArrived(Block { from: peer, gen }),
                    5 => Event::AlertArrived(Alert { from: peer, reason: "r".into(), gen: 0 }),
                    6 => Event::BlockAnswered { round: m.round, to: peer },
                    7 => Event::Persisted { gen, ok: rng.random() },
                    8 => Event::Executed { epoch: Epoch { gen, creator: "a:1".into() } },
                    9 => if rng.random() { Event::PeerDown(peer) } else { Event::PeerUp(peer) },
                    10 => Event::WorkArrived,
                    _ => Event::AlertAnswered { to: peer, delivered: rng.random() },
                };
                for a in step(&mut m, now, ev) {
                    if let Action::Pass { pass, .. } = a {
                        sent.push(pass.token);
                    }
                }
                if let Some(t) = m.next_timer() {
                    if t <= now {
                        step(&mut m, now, Event::Tick);
                        assert!(m.next_timer().is_none_or(|t| t > now), "seed {seed}: a Tick at {now:?} left a timer due at once");
                    }
                }
            }
        }
    }
}
