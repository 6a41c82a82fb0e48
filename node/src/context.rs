//! Who this bank is and how it reports: the handle every async part holds. Its name and the
//! other members, its key and the manifest, its timings and clock, the RNG that times its
//! background loops, and its reports (events and counters). Cheap to clone.

use crate::clock::WallClock;
use crate::config::{ms, Timing};
use crate::error::Error;
use crate::events::{Events, NodeEvent};
use crate::planted::PlantedBug;
use consortium_core::trust::keys::{BankKey, PublicKey};
use consortium_core::trust::manifest::Manifest;
use crate::wire::Counters;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// This bank's context (see the module). Its fields are read through `Deref`.
#[derive(Clone)]
pub struct Context(Arc<ContextParts>);

pub struct ContextParts {
    pub me: String,
    /// Every bank, in ring order, this one included.
    pub members: Vec<String>,
    pub timing: Timing,
    pub key: BankKey,
    pub manifest: Arc<Manifest>,
    pub clock: Arc<dyn WallClock>,
    /// This bank's tellers' keys (cash deposits need one's signature).
    pub tellers: Vec<PublicKey>,
    /// This bank's clock when it started: its nonces are in memory, so a read statement made
    /// before then could be one it already answered (and forgot).
    pub started_ms: u64,
    pub planted: PlantedBug,
    pub events: Arc<dyn Events>,
    pub counters: Mutex<Counters>,
    /// Histograms and the Prometheus registry (`/metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Restored from a backup and still re-learning its decisions from the other banks
    /// (`admin::run`): no package is accepted, prepared or decided here meanwhile. Mirrors
    /// the store's durable flag.
    pub reconciling: std::sync::atomic::AtomicBool,
    /// Times the background loops' pauses (`jitter`). The ring's jitter and the nonces of
    /// requests have streams of their own.
    rng: Mutex<ChaCha8Rng>,
}

impl Deref for Context {
    type Target = ContextParts;

    fn deref(&self) -> &ContextParts {
        &self.0
    }
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: String,
        members: Vec<String>,
        timing: Timing,
        key: BankKey,
        manifest: Arc<Manifest>,
        clock: Arc<dyn WallClock>,
        tellers: Vec<PublicKey>,
        started_ms: u64,
        planted: PlantedBug,
        events: Arc<dyn Events>,
        rng: ChaCha8Rng,
    ) -> Context {
        Context(Arc::new(ContextParts {
            me,
            members,
            timing,
            key,
            manifest,
            clock,
            tellers,
            started_ms,
            planted,
            events,
            counters: Mutex::new(Counters::default()),
            metrics: crate::metrics::Metrics::new(),
            reconciling: std::sync::atomic::AtomicBool::new(false),
            rng: Mutex::new(rng),
        }))
    }

    /// Reports a note: a kind and a line for people.
    pub fn emit(&self, kind: &'static str, detail: String) {
        self.report(NodeEvent::Note { kind, detail });
    }

    pub fn report(&self, event: NodeEvent) {
        if matches!(event, NodeEvent::TokenAccepted { .. } | NodeEvent::TokenCreated { .. }) {
            self.metrics.token_seen();
        }
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

    pub fn is_reconciling(&self) -> bool {
        self.reconciling.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The refusal of what a reconciling bank does not do yet.
    pub fn refuse_while_reconciling(&self, what: &str) -> Result<(), Error> {
        if self.is_reconciling() {
            self.count_refusal("reconciling");
            return Err(Error::unavailable("reconciling", format!("this bank was restored from a backup and is re-learning its decisions from the other banks: it {what} once they have all answered")));
        }
        Ok(())
    }

    pub fn members(&self) -> Vec<String> {
        self.members.clone()
    }

    pub fn is_member(&self, bank: &str) -> bool {
        self.members.iter().any(|m| m == bank)
    }

    /// A random pause below `max`, for the background loops.
    pub fn jitter(&self, max: Duration) -> Duration {
        let m = max.as_millis() as u64;
        if m == 0 {
            return Duration::ZERO;
        }
        ms(self.rng.lock().unwrap().random_range(0..m))
    }
}
