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
pub mod net;
pub mod panics;
pub mod report;
pub mod rogue;
pub mod run;
pub mod scenario;
pub mod workload;

pub use run::{run, RunOutput, Violation};
pub use scenario::Scenario;
pub mod fuzz;

use node::node::PlantedBug;

/// `skip-refund` / `accept-stale-token` (command line and fuzz files).
pub fn parse_planted(s: &str) -> Result<PlantedBug, String> {
    match s {
        "none" => Ok(PlantedBug::None),
        "skip-refund" => Ok(PlantedBug::SkipRefund),
        "accept-stale-token" => Ok(PlantedBug::AcceptStaleToken),
        other => Err(format!("unknown planted bug {other:?} (skip-refund, accept-stale-token)")),
    }
}

pub fn planted_name(p: PlantedBug) -> &'static str {
    match p {
        PlantedBug::None => "none",
        PlantedBug::SkipRefund => "skip-refund",
        PlantedBug::AcceptStaleToken => "accept-stale-token",
    }
}
