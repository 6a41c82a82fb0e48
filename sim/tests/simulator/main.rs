//! The simulator's own tests: determinism, the shipped scenarios (snapshotted), a fuzz
//! batch, and planted bugs the checker must catch. One test binary (they share one link).

mod determinism;
mod fuzz;
mod picture;
mod planted;
mod scenarios;

use sim::Scenario;
use std::path::PathBuf;

pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"))
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"))
}
