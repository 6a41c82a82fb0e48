//! Every shipped scenario passes, and its report is a reviewed snapshot in `snapshots/`: a
//! change in protocol behaviour shows up as a snapshot diff. Accept a change with
//! `INSTA_UPDATE=always cargo test -p sim` (or `cargo insta review`), then review the diff.

use crate::scenario;
use node::node::PlantedBug;

fn check(name: &str) {
    let s = scenario(name);
    let out = sim::run(&s, PlantedBug::None);
    let report = out.report.to_string();
    assert!(out.passed(), "{name} broke an invariant:\n{report}");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(s.description.trim().to_string());
    settings.bind(|| insta::assert_snapshot!(format!("scenario_{name}"), report));
}

#[test]
fn bank_crash() {
    check("bank_crash");
}

#[test]
fn token_loss() {
    check("token_loss");
}

#[test]
fn duplicate_token() {
    check("duplicate_token");
}

#[test]
fn partition() {
    check("partition");
}

#[test]
fn flaky_network() {
    check("flaky_network");
}

#[test]
fn crash_restart_storm() {
    check("crash_restart_storm");
}

#[test]
fn compaction() {
    check("compaction");
}

#[test]
fn regressions() {
    // Scenarios kept from bugs the simulator found (scenarios/regressions/): they must pass.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "toml")) {
        let s = sim::Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        let out = sim::run(&s, PlantedBug::None);
        assert!(out.passed(), "{}:\n{}", f.display(), out.report);
    }
}

#[test]
fn partial_faults() {
    check("partial_faults");
}

#[test]
fn malicious_client() {
    check("malicious_client");
}

#[test]
fn rogue_host() {
    check("rogue_host");
}
