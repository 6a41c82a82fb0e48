//! The deterministic simulator: whole consortia of the real node code (axum server, hyper
//! client, redb store, token ring, 2PC) inside turmoil, with seeded faults and invariants.
//!
//! - `net`: the turmoil seams (listener, connector) and the chaos transport.
//! - `scenario`: scenario files.
//! - `run`: one run — the harness, the fault injection, the trace.
//! - `workload`: the clients.
//! - `rogue`: a host outside the consortium that sends hostile requests.
//! - `check`: the invariants.
//! - `report`: the summary and the trace hash.
//! - `fuzz`: random scenarios, run in parallel, shrunk on failure.

pub mod check;
pub mod liveness;
pub mod net;
pub mod panics;
pub mod report;
pub mod rogue;
pub mod run;
pub mod scenario;
pub mod timeline;
pub mod workload;

pub use run::{run, RunOutput, Violation};
pub use scenario::Scenario;
pub mod fuzz;

use node::node::PlantedBug;

/// Every bug that can be planted, by its command-line name.
pub const PLANTED: &[(&str, PlantedBug)] = &[
    ("none", PlantedBug::None),
    ("skip-refund", PlantedBug::SkipRefund),
    ("accept-stale-token", PlantedBug::AcceptStaleToken),
    ("commit-on-abort", PlantedBug::CommitOnAbort),
    ("no-compare-and-set", PlantedBug::NoCompareAndSet),
    ("ack-before-durable", PlantedBug::AckBeforeDurable),
    ("forget-outbox", PlantedBug::ForgetOutbox),
    ("no-resolver", PlantedBug::NoResolver),
    ("skip-signatures", PlantedBug::SkipSignatures),
    ("skip-read-signatures", PlantedBug::SkipReadSignatures),
    ("compact-unacked", PlantedBug::CompactUnacked),
];

/// A planted bug by name (command line and fuzz files).
pub fn parse_planted(s: &str) -> Result<PlantedBug, String> {
    PLANTED.iter().find(|(n, _)| *n == s).map(|(_, b)| *b).ok_or_else(|| {
        let names: Vec<&str> = PLANTED.iter().map(|(n, _)| *n).collect();
        format!("unknown planted bug {s:?} ({})", names.join(", "))
    })
}

pub fn planted_name(p: PlantedBug) -> &'static str {
    PLANTED.iter().find(|(_, b)| *b == p).map(|(n, _)| *n).expect("every planted bug has a name")
}
