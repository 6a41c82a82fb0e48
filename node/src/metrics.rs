//! `/metrics`: what a bank did, in Prometheus text format (prometheus-client), from a registry
//! of its own (the simulator runs many banks in one process; nothing is global).
//!
//! The counters the bank already keeps (`Counters`, also in `/status`) are carried over at
//! each scrape, so there is one place that counts; the histograms are observed where things
//! happen: a package from acceptance to decision at its origin, a group commit's size and
//! duration, the time between this bank's sightings of the token (a rotation).

use consortium_core::wire::Counters;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::time::Instant;

type Labels = Vec<(String, String)>;

/// The live state a scrape reads besides the counters.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub peers_online: i64,
    pub queued: i64,
    pub in_doubt: i64,
    /// Rows of package history and statements (`Store::sizes`): what compaction bounds.
    pub history: crate::store::Sizes,
}

pub struct Metrics {
    registry: Registry,
    counters: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    /// What `counters` already carried, per name (they only go up).
    carried: Mutex<BTreeMap<String, u64>>,
    peers_online: Gauge,
    queued: Gauge,
    in_doubt: Gauge,
    history: Family<Labels, Gauge>,
    package_seconds: Histogram,
    group_size: Histogram,
    commit_seconds: Histogram,
    rotation_seconds: Histogram,
    /// A two-phase-commit call's round trip, by phase (prepare, decide, finish).
    phase_seconds: Family<Labels, Histogram>,
    /// Packages accepted and not yet decided here, by acceptance order: when they came.
    accepted: Mutex<BTreeMap<u64, Instant>>,
    last_sighting: Mutex<Option<Instant>>,
}

fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("bank");
        let counters = Family::<Labels, Counter>::default();
        registry.register("events", "What this bank did since it started: packages accepted (submitted), committed, aborted, executed, presumed aborts; tokens created, stale and duplicate tokens dropped, ring faults; key mismatches seen", counters.clone());
        let refused = Family::<Labels, Counter>::default();
        registry.register("refused", "Messages and requests refused, by reason", refused.clone());
        let (peers_online, queued, in_doubt) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("peers_online", "Other banks this bank reaches now", peers_online.clone());
        registry.register("queued_packages", "Packages accepted here and not yet decided", queued.clone());
        registry.register("in_doubt_legs", "Legs prepared here whose outcome is not yet known", in_doubt.clone());
        let history = Family::<Labels, Gauge>::default();
        registry.register("history_rows", "Rows of package history this bank keeps (origin records, participant legs and rows; compaction bounds them) and of statements (journal entries, kept forever)", history.clone());
        let package_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("package_seconds", "A package from its acceptance to its decision, at its origin", package_seconds.clone());
        let group_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register("group_commit_writes", "Writes per group commit", group_size.clone());
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register("group_commit_seconds", "How long a group commit took (the disk's fsync included)", commit_seconds.clone());
        let rotation_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("token_rotation_seconds", "Time between this bank's sightings of the token", rotation_seconds.clone());
        let phase_seconds = Family::<Labels, Histogram>::new_with_constructor(phase_histogram as fn() -> Histogram);
        registry.register("phase_seconds", "A two-phase-commit call's round trip from this bank, by phase (prepare, decide, finish; to itself included)", phase_seconds.clone());
        Metrics {
            registry,
            counters,
            refused,
            carried: Mutex::new(BTreeMap::new()),
            peers_online,
            queued,
            in_doubt,
            history,
            package_seconds,
            group_size,
            commit_seconds,
            rotation_seconds,
            phase_seconds,
            accepted: Mutex::new(BTreeMap::new()),
            last_sighting: Mutex::new(None),
        }
    }

    /// A package was accepted at this origin (its acceptance order).
    pub fn accepted(&self, seq: u64) {
        self.accepted.lock().unwrap().insert(seq, Instant::now());
    }

    /// A package accepted here was decided.
    pub fn decided(&self, seq: u64) {
        if let Some(at) = self.accepted.lock().unwrap().remove(&seq) {
            self.package_seconds.observe(at.elapsed().as_secs_f64());
        }
    }

    pub fn group_committed(&self, writes: usize, took: std::time::Duration) {
        self.group_size.observe(writes as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A two-phase-commit call of `phase` took `took`.
    pub fn phase(&self, phase: &str, took: std::time::Duration) {
        self.phase_seconds.get_or_create(&vec![("phase".to_string(), phase.to_string())]).observe(took.as_secs_f64());
    }

    /// This bank took the token.
    pub fn token_seen(&self) {
        let now = Instant::now();
        if let Some(before) = self.last_sighting.lock().unwrap().replace(now) {
            self.rotation_seconds.observe(now.duration_since(before).as_secs_f64());
        }
    }

    /// The text a scrape gets: `counters` carried over, `gauges` set, every histogram.
    pub fn render(&self, counters: &Counters, gauges: &Gauges) -> String {
        let events = [
            ("submitted", counters.submitted),
            ("committed", counters.committed),
            ("aborted", counters.aborted),
            ("executed", counters.executed),
            ("presumed_aborts", counters.presumed_aborts),
            ("tokens_created", counters.tokens_created),
            ("stale_tokens_dropped", counters.stale_dropped),
            ("duplicate_tokens_dropped", counters.duplicates_dropped),
            ("ring_faults", counters.faults),
            ("key_mismatches", counters.key_mismatches),
            ("compacted_records", counters.compacted_records),
            ("compacted_participations", counters.compacted_participations),
            ("in_doubt_compacted", counters.in_doubt_compacted),
        ];
        {
            let mut carried = self.carried.lock().unwrap();
            for (name, value) in events {
                let was = carried.entry(format!("event/{name}")).or_default();
                self.counters.get_or_create(&vec![("event".to_string(), name.to_string())]).inc_by(value.saturating_sub(*was));
                *was = (*was).max(value);
            }
            for (reason, value) in &counters.refused {
                let was = carried.entry(format!("refused/{reason}")).or_default();
                self.refused.get_or_create(&vec![("reason".to_string(), reason.clone())]).inc_by(value.saturating_sub(*was));
                *was = (*was).max(*value);
            }
        }
        self.peers_online.set(gauges.peers_online);
        self.queued.set(gauges.queued);
        self.in_doubt.set(gauges.in_doubt);
        let h = gauges.history;
        for (table, rows) in [("records", h.records), ("legs", h.legs), ("participations", h.participations), ("journal", h.journal)] {
            self.history.get_or_create(&vec![("table".to_string(), table.to_string())]).set(rows as i64);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding into a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_over_once_and_histograms_observe() {
        let m = Metrics::new();
        let mut c = Counters { committed: 3, ..Default::default() };
        c.refused.insert("bad_signature".into(), 2);
        let history = crate::store::Sizes { records: 4, legs: 5, participations: 6, journal: 7 };
        let first = m.render(&c, &Gauges { peers_online: 3, queued: 1, in_doubt: 0, history });
        assert!(first.contains("bank_history_rows{table=\"legs\"} 5") && first.contains("bank_history_rows{table=\"journal\"} 7"), "{first}");
        assert!(first.contains("bank_events_total{event=\"committed\"} 3"), "{first}");
        assert!(first.contains("bank_refused_total{reason=\"bad_signature\"} 2"), "{first}");
        assert!(first.contains("bank_peers_online 3"), "{first}");
        c.committed = 5;
        let second = m.render(&c, &Gauges::default());
        assert!(second.contains("bank_events_total{event=\"committed\"} 5"), "not 8: carried once: {second}");
        m.accepted(7);
        m.decided(7);
        m.decided(8); // never accepted here (before a restart): not observed
        m.group_committed(4, std::time::Duration::from_millis(3));
        m.phase("prepare", std::time::Duration::from_millis(2));
        let third = m.render(&c, &Gauges::default());
        assert!(third.contains("bank_package_seconds_count 1"), "{third}");
        assert!(third.contains("bank_group_commit_writes_count 1"), "{third}");
        assert!(third.contains("bank_group_commit_writes_sum 4.0"), "{third}");
        assert!(third.contains("bank_phase_seconds_count{phase=\"prepare\"} 1"), "{third}");
    }
}
