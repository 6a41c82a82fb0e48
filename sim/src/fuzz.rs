//! Fuzzing: every seed generates a random consortium (3 to 8 banks), workload and fault
//! schedule; seeds run in parallel, one simulation per thread (each simulation is
//! single-threaded and deterministic on its own). A failing seed is written out as a scenario
//! file that reproduces it, and its fault schedule is shrunk: faults are dropped one at a time
//! while the run still fails.

use crate::run::{mix, run, RunOutput};
use crate::scenario::{bank_name, Fault, Network, Scenario, Workload};
use node::node::PlantedBug;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Events a crash can be armed on (see `Fault::Crash`).
pub const CRASH_EVENTS: &[&str] = &[
    "package_prepared",
    "package_decided",
    "legs_finished",
    "token_accepted",
    "package_accepted",
    "recovery_start",
    "blocked",
    "token_created",
    "presumed_abort",
];

/// The random scenario of a fuzz seed.
pub fn generate(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0xF0F0));
    let banks = rng.random_range(3..=8usize);
    let duration_ms = rng.random_range(4..=9u64) * 1000;
    let latency_min_ms = rng.random_range(1..=3);
    // Now and then a slow network: latencies near the peer timeout, so many calls time out
    // although they were applied.
    let spread = if rng.random_bool(0.15) { rng.random_range(40..=150) } else { rng.random_range(2..=20) };
    let network = Network {
        latency_min_ms,
        latency_max_ms: latency_min_ms + spread,
        loss: if rng.random_bool(0.5) { 0.0 } else { (rng.random_range(0..=80) as f64) / 1000.0 },
        duplicate: if rng.random_bool(0.5) { 0.0 } else { (rng.random_range(0..=100) as f64) / 1000.0 },
        duplicate_delay_max_ms: rng.random_range(5..=100),
    };
    let pct = |rng: &mut ChaCha8Rng, max: u32| (rng.random_range(0..=max) as f64) / 100.0;
    // Now and then a busy consortium: many clients, big batches, conflicting packages.
    let busy = rng.random_bool(0.15);
    let workload = Workload {
        clients: if busy { rng.random_range(8..=16) } else { rng.random_range(2..=6) },
        ops_per_sec: if busy { rng.random_range(50..=150) } else { rng.random_range(8..=30) } as f64,
        users_per_bank: rng.random_range(2..=4),
        initial_balance: 10_000,
        max_amount: rng.random_range(1_000..=8_000),
        cross_bank: pct(&mut rng, 100),
        multi_leg: pct(&mut rng, 60),
        deposits: pct(&mut rng, 20),
        withdrawals: pct(&mut rng, 20),
        any_origin: pct(&mut rng, 30),
        // A third of the consortia also face clients that reuse other clients' ids. Drawn
        // from a stream of its own, so every other choice of a seed stays what it was.
        malicious_clients: {
            let mut adv = ChaCha8Rng::seed_from_u64(mix(seed, 0xad));
            if adv.random_bool(0.33) { adv.random_range(1..=2) } else { 0 }
        },
        reads: {
            let mut r = ChaCha8Rng::seed_from_u64(mix(seed, 0xead));
            if r.random_bool(0.33) { pct(&mut r, 50) } else { 0.0 }
        },
        package_valid_ms: Workload::default().package_valid_ms,
    };
    let bank = |rng: &mut ChaCha8Rng| bank_name(rng.random_range(0..banks));
    let mut faults = Vec::new();
    let n_faults = rng.random_range(0..=10);
    for _ in 0..n_faults {
        let at_ms = rng.random_range(500..duration_ms - 500);
        let later = |rng: &mut ChaCha8Rng| (at_ms + rng.random_range(200..=2_000)).min(duration_ms - 1);
        match rng.random_range(0..9) {
            0 | 1 => {
                let on_event = rng.random_bool(0.5).then(|| CRASH_EVENTS.choose(&mut rng).unwrap().to_string());
                let b = if on_event.is_some() && rng.random_bool(0.5) { "any".to_string() } else { bank(&mut rng) };
                faults.push(Fault::Crash {
                    at_ms,
                    bank: b,
                    on_event,
                    mid_commit: rng.random_bool(0.3),
                    restart_after_ms: rng.random_bool(0.8).then(|| rng.random_range(100..=2_000)),
                });
            }
            2 => faults.push(Fault::Restart { at_ms, bank: bank(&mut rng) }),
            3 => {
                let mut names: Vec<String> = (0..banks).map(bank_name).collect();
                let cut = rng.random_range(1..banks);
                let mut side = Vec::new();
                for _ in 0..cut {
                    let k = rng.random_range(0..names.len());
                    side.push(names.remove(k));
                }
                side.sort();
                faults.push(Fault::Partition { at_ms, groups: vec![side], oneway: rng.random_bool(0.3) });
                if rng.random_bool(0.7) {
                    faults.push(Fault::Heal { at_ms: later(&mut rng) });
                }
            }
            4 => {
                let a = rng.random_range(0..banks);
                let b = (a + rng.random_range(1..banks)) % banks;
                let (a, b) = (bank_name(a), bank_name(b));
                faults.push(Fault::Hold { at_ms, a: a.clone(), b: b.clone() });
                if rng.random_bool(0.8) {
                    faults.push(Fault::Release { at_ms: later(&mut rng), a, b });
                }
            }
            5 => faults.push(Fault::DropToken { at_ms, from: rng.random_bool(0.3).then(|| bank(&mut rng)) }),
            6 | 7 => faults.push(Fault::DuplicateToken {
                at_ms,
                to: rng.random_bool(0.3).then(|| bank(&mut rng)),
                stale: rng.random_bool(0.5),
            }),
            _ => faults.push(Fault::Pause { at_ms, bank: bank(&mut rng), for_ms: rng.random_range(100..=1_500) }),
        }
    }
    // Adversaries and skewed clocks, from a stream of their own (every other choice of a
    // seed stays what it was): a quarter of the runs meet a rogue host, a quarter a bank
    // whose clock is off by up to 20 s (the banks allow 30).
    let mut adv = ChaCha8Rng::seed_from_u64(mix(seed, 0xad5));
    if adv.random_bool(0.25) {
        for _ in 0..adv.random_range(1..=2) {
            faults.push(Fault::Rogue { at_ms: adv.random_range(200..duration_ms - 500), messages: adv.random_range(20..=300) });
        }
    }
    if adv.random_bool(0.15) {
        let bank = bank_name(adv.random_range(0..banks));
        let at_ms = adv.random_range(200..duration_ms - 1_500);
        faults.push(Fault::Flood { at_ms, bank, requests: adv.random_range(1_000..=8_000), for_ms: 1_000 });
    }
    if adv.random_bool(0.25) {
        let bank = bank_name(adv.random_range(0..banks));
        faults.push(Fault::Skew { at_ms: adv.random_range(0..duration_ms - 500), bank, ms: adv.random_range(-20_000..=20_000) });
    }
    // Partial faults, from a stream of their own: a disk that stalls, a bank whose replies
    // are lost, slow and lossy links.
    let mut part = ChaCha8Rng::seed_from_u64(mix(seed, 0x57a1));
    for _ in 0..part.random_range(0..=2) {
        let bank = bank_name(part.random_range(0..banks));
        let at_ms = part.random_range(300..duration_ms - 500);
        let for_ms = part.random_range(100..=2_500);
        faults.push(match part.random_range(0..3) {
            0 => Fault::Stall { at_ms, bank, for_ms },
            1 => Fault::LoseReplies { at_ms, bank, for_ms },
            _ => Fault::Slow { at_ms, bank, for_ms, latency_ms: part.random_range(20..=300), loss: part.random_range(0..=30) as f64 / 100.0 },
        });
    }
    // A third of the runs compact history as they go, from a stream of their own: packages
    // valid 1.5-3 s and a 1.5 s skew allowance, so records and legs are dropped within the
    // run, under whatever else it does. The allowance must hold the real skew: a skewed
    // clock stays within it.
    let mut cmp = ChaCha8Rng::seed_from_u64(mix(seed, 0xc0c0));
    let mut timing = crate::scenario::TimingSpec::default();
    let mut workload = workload;
    if cmp.random_bool(0.33) {
        timing.clock_skew_ms = 1_500;
        timing.compact_every_ms = cmp.random_range(100..=300);
        timing.compact_batch = cmp.random_range(4..=32);
        workload.package_valid_ms = cmp.random_range(1_500..=3_000);
        for f in &mut faults {
            if let Fault::Skew { ms, .. } = f {
                *ms = (*ms).clamp(-1_000, 1_000);
            }
        }
    }
    faults.sort_by_key(Fault::at_ms);
    let s = Scenario {
        name: format!("fuzz-{seed}"),
        description: format!("generated by `sim fuzz` from seed {seed}"),
        seed,
        banks,
        duration_ms,
        settle_ms: 8_000,
        network,
        workload,
        faults,
        timing,
        ..Scenario::default()
    };
    debug_assert!(s.check().is_ok(), "generated scenario is invalid: {:?}", s.check());
    s
}

/// The first word of a violation ("money", "atomicity", "liveness", ...): what kind of rule
/// broke. Shrinking keeps a candidate only if the same kind still breaks.
pub fn kind_of(what: &str) -> &str {
    what.split(':').next().unwrap_or(what)
}

/// Drops faults one at a time (and the network's loss and duplication) while the run still
/// breaks a rule of the same kind. Returns the smallest failing scenario found.
pub fn shrink(scenario: &Scenario, planted: PlantedBug, first: &RunOutput, budget: usize) -> Scenario {
    let kind = first.violations.first().map(|v| kind_of(&v.what).to_string()).unwrap_or_default();
    let fails = |s: &Scenario| run(s, planted).violations.iter().any(|v| kind_of(&v.what) == kind);
    let mut best = scenario.clone();
    let mut tries = 0;
    loop {
        let mut progress = false;
        let mut i = 0;
        while i < best.faults.len() && tries < budget {
            let mut cand = best.clone();
            cand.faults.remove(i);
            tries += 1;
            if fails(&cand) {
                best = cand;
                progress = true;
            } else {
                i += 1;
            }
        }
        for calm in [0, 1] {
            let mut cand = best.clone();
            if calm == 0 && cand.network.loss > 0.0 {
                cand.network.loss = 0.0;
            } else if calm == 1 && cand.network.duplicate > 0.0 {
                cand.network.duplicate = 0.0;
            } else {
                continue;
            }
            if tries < budget {
                tries += 1;
                if fails(&cand) {
                    best = cand;
                    progress = true;
                }
            }
        }
        if !progress || tries >= budget {
            break;
        }
    }
    best.name = format!("{}-shrunk", scenario.name);
    best
}

pub struct FuzzOptions {
    pub start: u64,
    pub seeds: u64,
    pub jobs: usize,
    pub out_dir: PathBuf,
    pub shrink: bool,
    pub planted: PlantedBug,
}

#[derive(Clone, Debug)]
pub struct FuzzFailure {
    pub seed: u64,
    pub violations: Vec<String>,
    pub file: Option<PathBuf>,
    pub shrunk_file: Option<PathBuf>,
    pub shrunk_faults: Option<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct FuzzSummary {
    pub runs: u64,
    pub failures: Vec<FuzzFailure>,
    pub sim_time: Duration,
    pub wall: Duration,
}

/// Progress as seeds finish: (done, total, failures so far, the seed that just finished).
pub struct Progress<'a> {
    pub done: u64,
    pub total: u64,
    pub failures: usize,
    pub elapsed: Duration,
    pub failure: Option<&'a FuzzFailure>,
}

fn write_scenario(dir: &Path, name: &str, s: &Scenario, violations: &[String], planted: PlantedBug) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{name}.toml"));
    let mut text = String::new();
    text.push_str(&format!("# Found by `sim fuzz` (seed {}). Reproduce: cargo run -p sim -- {}", s.seed, path.display()));
    if planted != PlantedBug::None {
        text.push_str(&format!(" --planted {}", crate::planted_name(planted)));
    }
    text.push_str("\n# Violations:\n");
    for v in violations.iter().take(10) {
        text.push_str(&format!("#   {v}\n"));
    }
    text.push_str(&s.to_toml());
    std::fs::write(&path, text).ok()?;
    Some(path)
}

/// Runs the seeds on `jobs` threads and reports progress after each one.
pub fn fuzz(opts: &FuzzOptions, mut progress: impl FnMut(Progress)) -> FuzzSummary {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<(u64, Duration, Option<FuzzFailure>)>();
    let jobs = opts.jobs.max(1).min(opts.seeds.max(1) as usize);
    let mut handles = Vec::new();
    for _ in 0..jobs {
        let (next, tx) = (next.clone(), tx.clone());
        let (start, seeds, dir, do_shrink, planted) = (opts.start, opts.seeds, opts.out_dir.clone(), opts.shrink, opts.planted);
        handles.push(std::thread::spawn(move || loop {
            let k = next.fetch_add(1, Ordering::SeqCst);
            if k >= seeds {
                return;
            }
            let seed = start + k;
            let scenario = generate(seed);
            // A panic of the harness itself (not of a node: those are violations) must fail
            // the seed, not end this worker and vanish from the count.
            let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&scenario, planted))) {
                Ok(out) => out,
                Err(e) => {
                    let what = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    let violations = vec![format!("harness: the simulator itself panicked: {what}")];
                    let file = write_scenario(&dir, &scenario.name, &scenario, &violations, planted);
                    let failure = FuzzFailure { seed, violations, file, shrunk_file: None, shrunk_faults: None };
                    let _ = tx.send((seed, Duration::ZERO, Some(failure)));
                    continue;
                }
            };
            let failure = (!out.passed()).then(|| {
                let violations: Vec<String> = out.violations.iter().map(|v| v.to_string()).collect();
                let file = write_scenario(&dir, &scenario.name, &scenario, &violations, planted);
                // The picture of the failing run beside its scenario: where the token went,
                // which packages were in flight, what the faults did.
                let _ = std::fs::write(dir.join(format!("{}.html", scenario.name)), out.html(&format!("{} (seed {seed})", scenario.name)));
                let (mut shrunk_file, mut shrunk_faults) = (None, None);
                if do_shrink {
                    let small = shrink(&scenario, planted, &out, 40);
                    let small_out = run(&small, planted);
                    let v: Vec<String> = small_out.violations.iter().map(|v| v.to_string()).collect();
                    shrunk_faults = Some(small.faults.len());
                    shrunk_file = write_scenario(&dir, &small.name, &small, &v, planted);
                    let _ = std::fs::write(dir.join(format!("{}.html", small.name)), small_out.html(&format!("{} (seed {seed}, shrunk)", small.name)));
                }
                FuzzFailure { seed, violations, file, shrunk_file, shrunk_faults }
            });
            let _ = tx.send((seed, out.report.ran, failure));
        }));
    }
    drop(tx);
    let mut summary = FuzzSummary::default();
    for (_, sim, failure) in rx {
        summary.runs += 1;
        summary.sim_time += sim;
        if let Some(f) = &failure {
            summary.failures.push(f.clone());
        }
        progress(Progress {
            done: summary.runs,
            total: opts.seeds,
            failures: summary.failures.len(),
            elapsed: started.elapsed(),
            failure: failure.as_ref(),
        });
    }
    for h in handles {
        let _ = h.join();
    }
    summary.failures.sort_by_key(|f| f.seed);
    summary.wall = started.elapsed();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_scenarios_are_valid_and_reproducible() {
        for seed in 0..200 {
            let s = generate(seed);
            s.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!((3..=8).contains(&s.banks));
            assert_eq!(generate(seed), s);
            assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s, "seed {seed} round-trips through TOML");
        }
    }
}
