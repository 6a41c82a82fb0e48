//! A batch of random scenarios must pass. SIM_FUZZ_SEEDS and SIM_FUZZ_START choose the batch
//! (default 200: about a minute on two cores; `make fuzz` and `cargo run -p sim -- fuzz` run more).

use node::node::PlantedBug;
use sim::fuzz::{fuzz, FuzzOptions};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_scenarios_pass() {
    let opts = FuzzOptions {
        start: env("SIM_FUZZ_START", 1_000),
        seeds: env("SIM_FUZZ_SEEDS", 200),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        out_dir: std::env::temp_dir().join("sim-fuzz-test"),
        shrink: false,
        planted: PlantedBug::None,
    };
    let summary = fuzz(&opts, |_| {});
    let report: Vec<String> = summary
        .failures
        .iter()
        .map(|f| format!("seed {}: {} (cargo run -p sim -- fuzz --seeds 1 --start {})", f.seed, f.violations.join(" | "), f.seed))
        .collect();
    assert!(report.is_empty(), "{} of {} seeds failed:\n{}", report.len(), summary.runs, report.join("\n"));
    assert_eq!(summary.runs, opts.seeds);
}
