//! A short chaos run on real processes (the long one is `make chaos`): kill -9, restart and
//! SIGSTOP/SIGCONT random banks, and cut their links through their proxies (isolated, losing
//! replies, slow and lossy), under load; then check every promise made to clients.

use std::time::Duration;
use tools::cluster::{node_bin, Cluster, TEST_TIMING};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pause_and_cut_banks_under_load() {
    let c = Cluster::start_proxied(4, node_bin(), TEST_TIMING).await;
    let addrs = c.addrs.clone();
    let r = tools::bench::chaos(c, Duration::from_secs(12), 6, 7, |m| eprintln!("chaos: {m}")).await;
    eprintln!("{r:?}");
    // The picture of the run: both charts, every fault shaded on each.
    let page = tools::chaos_picture::html("chaos test", &r.faults, &r.answers, &addrs);
    assert_eq!(r.faults.len(), r.kills + r.pauses + r.network_faults, "every fault has its span");
    assert_eq!(page.matches("<svg").count(), 2);
    for f in &r.faults {
        assert!(f.to_s > f.from_s && page.contains(&format!("{} b{}", f.kind, f.bank)), "{f:?}");
    }
    assert_eq!(r.answers.len(), r.packages_sent, "every answer is in the picture");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/picture");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chaos.html"), page).unwrap();
    assert!(r.problems.is_empty(), "chaos found problems: {:#?}", r.problems);
    assert!(r.kills + r.pauses + r.network_faults >= 5, "faults were injected: {r:?}");
    assert!(r.committed > 0, "packages went through despite the faults: {r:?}");
    assert!(r.acknowledged_checked > 0);
}
