//! Same scenario and seed ⇒ byte-identical trace: in sequence, in parallel threads of one
//! process, and with other simulations running around it.

use crate::scenario;
use node::node::PlantedBug;
use sim::run;

fn trace_of(name: &str, seed: Option<u64>) -> (Vec<String>, String) {
    let mut s = scenario(name);
    if let Some(seed) = seed {
        s.seed = seed;
    }
    let out = run(&s, PlantedBug::None);
    assert!(out.passed(), "{name}: {:?}", out.violations);
    (out.trace, out.report.to_string())
}

fn assert_same(a: &(Vec<String>, String), b: &(Vec<String>, String), what: &str) {
    if a.0 != b.0 {
        let i = a.0.iter().zip(&b.0).position(|(x, y)| x != y).unwrap_or(a.0.len().min(b.0.len()));
        panic!(
            "{what}: traces differ at line {i} ({} vs {} lines):\n  {}\n  {}",
            a.0.len(),
            b.0.len(),
            a.0.get(i).map(String::as_str).unwrap_or("<end>"),
            b.0.get(i).map(String::as_str).unwrap_or("<end>")
        );
    }
    assert_eq!(a.1, b.1, "{what}: reports differ");
}

#[test]
fn same_seed_same_trace_in_sequence_and_in_parallel() {
    // Crashes (disk + host, links cut around them), retries and token regeneration: the
    // parts most likely to leak process state into a run.
    let name = "crash_restart_storm";
    let first = trace_of(name, None);
    let second = trace_of(name, None);
    assert_same(&first, &second, "two runs in sequence");

    let threads: Vec<_> = (0..2).map(|_| std::thread::spawn(move || trace_of(name, None))).collect();
    // Something else runs in this thread meanwhile: the process is busy with other worlds.
    let other = trace_of("flaky_network", None);
    for t in threads {
        assert_same(&first, &t.join().unwrap(), "two runs in parallel threads");
    }
    assert_same(&other, &trace_of("flaky_network", None), "a run that shared the process");

    // Its client host finishes its workload while the banks settle (a pool dropped then
    // once closed connections in a different order in every process).
    assert_same(&trace_of("duplicate_token", None), &trace_of("duplicate_token", None), "duplicate_token twice");

    // The adversaries (a rogue host's forged and replayed requests, a flood, a skewed clock,
    // malicious clients) are seeded like everything else: same run, also beside another.
    let rogue = trace_of("rogue_host", None);
    let beside = std::thread::spawn(|| trace_of("malicious_client", None));
    assert_same(&rogue, &trace_of("rogue_host", None), "rogue_host twice");
    assert_same(&beside.join().unwrap(), &trace_of("malicious_client", None), "malicious_client in a thread and alone");

    let different = trace_of(name, Some(first_seed_other_than(name)));
    assert_ne!(first.0, different.0, "another seed gives another run");
}

fn first_seed_other_than(name: &str) -> u64 {
    scenario(name).seed + 1
}
