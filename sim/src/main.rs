//! `sim`: runs a scenario file, or fuzzes random ones.

use clap::{Parser, Subcommand};
use sim::fuzz::{fuzz, FuzzOptions};
use sim::{parse_planted, planted_name, Scenario};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The deterministic simulator: whole consortia of the real bank code (its axum server, hyper
/// client, redb store, token ring and two-phase commit) inside turmoil's simulated network and
/// clock, on simulated disks that lose unsynced writes at a crash.
///
/// `sim SCENARIO.toml` runs one scenario (its faults at simulated times, its workload), checks
/// the invariants every `check_every_ms` and at the end (money conserved, books consistent,
/// packages atomic and decided exactly once, acknowledged writes durable, one token, liveness
/// after the faults stop), prints a report, and exits 1 with a reproduction command if any
/// invariant broke. Same scenario and seed, same trace: the trace hash in the report proves it.
///
/// `sim fuzz --seeds N` generates a random scenario from each seed and runs them in parallel;
/// failing seeds are written to --out as scenario files that reproduce them, shrunk, each with
/// the picture of its run beside it (`--html` for one scenario).
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true, after_help = "Examples:\n  cargo run -p sim -- scenarios/bank_crash.toml\n  cargo run -p sim -- scenarios/partition.toml --seed 9 --trace\n  cargo run -p sim -- fuzz --seeds 200 --jobs 4")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario file (TOML; see README.md for every key).
    scenario: Option<PathBuf>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Prints the event trace (every node event and harness action, with simulated time).
    #[arg(long)]
    trace: bool,
    /// Writes the run's picture to FILE: one self-contained HTML page, a lane per bank on the
    /// simulated time axis (token passes, faults, packages, broken invariants; zoom, pan,
    /// hover for details). Same scenario and seed, same file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Plants a protocol bug in every node, to watch a checker catch it: skip-refund (money),
    /// accept-stale-token (one token), commit-on-abort (atomicity), no-compare-and-set
    /// (exactly once), ack-before-durable (durability), forget-outbox (outbox), no-resolver
    /// (liveness), skip-signatures (trust), skip-read-signatures (trust).
    #[arg(long, value_parser = parse_planted)]
    planted: Option<node::node::PlantedBug>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs random scenarios, one per seed, on all cores.
    Fuzz {
        /// How many seeds.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Parallel simulations (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Where failing scenarios are written.
        #[arg(long, default_value = "fuzz-failures")]
        out: PathBuf,
        /// Do not shrink failing fault schedules.
        #[arg(long)]
        no_shrink: bool,
        /// Only write each seed's generated scenario to --out (nothing runs).
        #[arg(long)]
        dump: bool,
        #[arg(long, value_parser = parse_planted)]
        planted: Option<node::node::PlantedBug>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Debugging determinism: turmoil's own log of every segment sent and delivered.
    if std::env::var("SIM_DEBUG_TURMOIL").is_ok() {
        tracing_subscriber::fmt().with_env_filter("turmoil=trace").without_time().with_ansi(false).with_writer(std::io::stderr).init();
    }
    match cli.command {
        Some(Command::Fuzz { seeds, start, out, dump: true, .. }) => {
            for seed in start..start + seeds {
                let s = sim::fuzz::generate(seed);
                let path = out.join(format!("{}.toml", s.name));
                if let Err(e) = std::fs::create_dir_all(&out).and_then(|_| std::fs::write(&path, s.to_toml())) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Some(Command::Fuzz { seeds, start, jobs, out, no_shrink, planted, .. }) => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = FuzzOptions { start, seeds, jobs, out_dir: out, shrink: !no_shrink, planted: planted.unwrap_or_default() };
            eprintln!("fuzzing seeds {start}..{} on {jobs} threads", start + seeds);
            let summary = fuzz(&opts, |p| {
                let rate = p.done as f64 / p.elapsed.as_secs_f64().max(1e-9) * 60.0;
                if let Some(f) = p.failure {
                    eprintln!("\nseed {} FAILED: {}", f.seed, f.violations.first().map(String::as_str).unwrap_or(""));
                    if let Some(file) = &f.file {
                        eprintln!("  reproduce: cargo run -p sim -- {}", file.display());
                    }
                    if let (Some(file), Some(n)) = (&f.shrunk_file, f.shrunk_faults) {
                        eprintln!("  shrunk to {n} faults: cargo run -p sim -- {}", file.display());
                    }
                }
                eprint!("\r[{}/{}] {} failed, {rate:.0} seeds/min   ", p.done, p.total, p.failures);
                let _ = std::io::stderr().flush();
            });
            eprintln!();
            println!(
                "{} seeds in {:.1} s ({:.0} seeds/min, {:.0} simulated seconds), {} failed",
                summary.runs,
                summary.wall.as_secs_f64(),
                summary.runs as f64 / summary.wall.as_secs_f64().max(1e-9) * 60.0,
                summary.sim_time.as_secs_f64(),
                summary.failures.len()
            );
            for f in &summary.failures {
                println!("  seed {}: {}", f.seed, f.violations.first().map(String::as_str).unwrap_or(""));
            }
            if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            let Some(path) = cli.run.scenario else {
                eprintln!("usage: sim SCENARIO.toml [--seed N] [--trace]  |  sim fuzz --seeds N  (see --help)");
                return ExitCode::from(2);
            };
            let mut scenario = match Scenario::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(seed) = cli.run.seed {
                scenario.seed = seed;
            }
            let planted = cli.run.planted.unwrap_or_default();
            let out = sim::run(&scenario, planted);
            if cli.run.trace {
                for l in &out.trace {
                    println!("{l}");
                }
            }
            println!("{}", out.report);
            if let Some(file) = &cli.run.html {
                let title = format!("{} (seed {})", scenario.name, scenario.seed);
                if let Err(e) = std::fs::write(file, out.html(&title)) {
                    eprintln!("error: cannot write {}: {e}", file.display());
                    return ExitCode::from(2);
                }
                eprintln!("picture of the run: {}", file.display());
            }
            eprintln!(
                "{} simulated seconds in {:.2} wall seconds",
                out.report.ran.as_secs_f64(),
                out.wall.as_secs_f64()
            );
            if out.passed() {
                ExitCode::SUCCESS
            } else {
                let planted = if planted == Default::default() { String::new() } else { format!(" --planted {}", planted_name(planted)) };
                println!("reproduce: cargo run -p sim -- {} --seed {}{planted}", path.display(), scenario.seed);
                ExitCode::FAILURE
            }
        }
    }
}
