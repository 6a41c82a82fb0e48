//! Availability under partial faults, short (the measurement is `make availability`): 4
//! banks behind fault-injecting proxies with the tests' timings; one bank isolated, then
//! losing its replies, then paused, 7 s each under load. Asserts progress within bounds,
//! never rates: packages that do not name the faulted bank commit again within a bound after
//! the fault begins, the ones that name it end with a reason, and the books check out.
//!
//! The bound: every wait on another bank follows measured round trips and rotations
//! (`consortium_core::rtt`), so a silent bank costs the others a pass's floor and its retry
//! (0.75 s) plus one prepare, decide or finish to it that waits about its measured round trip
//! (at least `call_floor_ms`, 0.25 s) while the token is held; two and a half peer timeouts
//! leave room for a noisy machine. (With fixed waits the others lost 1–4.6 s and the bound was
//! six peer timeouts; with adaptive passes but a fixed prepare wait, 0.8–1 s and four.)

use tools::availability::{self, Options};
use tools::cluster::{node_bin, Cluster, TEST_TIMING};

/// `peer_timeout_ms` of TEST_TIMING, in seconds.
const PEER_TIMEOUT: f64 = 1.0;
/// Within this many seconds of the fault's start, packages not naming the victim commit
/// again (and never stall longer during the fault window).
const BOUND: f64 = 2.5 * PEER_TIMEOUT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_others_keep_committing_while_one_bank_is_isolated_loses_replies_or_pauses() {
    assert!(TEST_TIMING.contains("peer_timeout_ms = 1000"), "the bounds below are in TEST_TIMING's peer timeouts");
    let t = std::time::Instant::now();
    let mut c = Cluster::start_proxied(4, node_bin(), TEST_TIMING).await;
    let o = Options::test();
    let r = availability::run(&mut c, &o, |m| eprintln!("availability: {m}")).await;
    eprintln!("{}", availability::table(&r));
    eprintln!("whole run: {:.1} s", t.elapsed().as_secs_f64());
    assert!(r.problems.is_empty(), "problems after the faults: {:#?}", r.problems);
    assert_eq!(r.kinds.len(), 3);
    for k in &r.kinds {
        // Progress within a bound: a package not naming the victim, sent after the fault
        // began, commits within a few peer timeouts of it, and the rest never stall longer.
        let first = k.first_new_commit_s.unwrap_or(f64::INFINITY);
        assert!(first <= BOUND, "{}: first commit of a new package not naming the victim {first:.1} s after the fault began: {k:#?}", k.kind);
        assert!(k.max_gap_s <= BOUND, "{}: {:.1} s without any commit of a package not naming the victim: {k:#?}", k.kind, k.max_gap_s);
        assert!(k.bystanders.committed > 0 && k.recovery_rate > 0.0, "{}: {k:#?}", k.kind);
        // The packages naming the victim were tried, and every abort says why.
        assert!(k.involved.sent > 0, "{}: {k:#?}", k.kind);
        assert!(!k.involved.reasons.contains_key("(no reason given)"), "{}: {:?}", k.kind, k.involved.reasons);
        // Token regenerations stay few.
        assert!(k.tokens_created_fault + k.tokens_created_recovery <= 3, "{}: tokens created {} + {}", k.kind, k.tokens_created_fault, k.tokens_created_recovery);
    }
    assert!(r.acknowledged_checked > 0);
}
