//! A short chaos run on real processes (the long one is `make chaos`): kill -9, restart and
//! SIGSTOP/SIGCONT random banks, and cut their links through their proxies (isolated, losing
//! replies, slow and lossy), under load; then check every promise made to clients.

use std::time::Duration;
use tools::cluster::{node_bin, Cluster, TEST_TIMING};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pause_and_cut_banks_under_load() {
    let c = Cluster::start_proxied(4, node_bin(), TEST_TIMING).await;
    let r = tools::bench::chaos(c, Duration::from_secs(12), 6, 7, |m| eprintln!("chaos: {m}")).await;
    eprintln!("{r:?}");
    assert!(r.problems.is_empty(), "chaos found problems: {:#?}", r.problems);
    assert!(r.kills + r.pauses + r.network_faults >= 5, "faults were injected: {r:?}");
    assert!(r.committed > 0, "packages went through despite the faults: {r:?}");
    assert!(r.acknowledged_checked > 0);
}
