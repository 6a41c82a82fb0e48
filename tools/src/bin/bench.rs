//! `bench`: measure a consortium of real `node` processes on loopback, or shake it.

use clap::{Parser, Subcommand};
use tools::bench::{self, Level};
use tools::cluster::Cluster;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts N real `node` processes on 127.0.0.1 (data in a temporary folder, real fsync),
/// opens and funds accounts, measures an idle consortium, then drives packages: from C
/// concurrent clients at each level (closed loop: each waits for its answer), then at R
/// packages per second at each rate (open loop: latency includes queueing). Checks at the
/// end that money is conserved and nothing is left held or blocked.
///
/// "cross/s" counts committed packages that touch more than one bank.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(clap::Args, Debug, Clone)]
struct LoadArgs {
    /// Number of banks.
    #[arg(long, default_value_t = 4)]
    banks: usize,
    /// Client concurrency levels to measure, comma-separated (`--clients` alone: none).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1,4,16,64")]
    clients: Vec<usize>,
    /// Open-loop rates to measure, packages per second, comma-separated (`--rates` alone:
    /// none).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "500")]
    rates: Vec<f64>,
    /// Run every level this many times (the machine is shared: runs differ); a summary
    /// gives each level's median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Which packages to send.
    #[arg(long, value_enum, default_value_t = bench::Load::Standard)]
    load: bench::Load,
    /// Seconds of load per level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of idle measurement (CPU of a consortium with nothing to do).
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Accounts per bank.
    #[arg(long, default_value_t = 16)]
    accounts: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The node binary (default: next to this one).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Run the banks over TLS (a CA and certificates made for them, clients on HTTPS), as in
    /// production; without it they run with --plain-http.
    #[arg(long)]
    tls: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Kill -9, restart and SIGSTOP/SIGCONT random banks while a load runs; then check that
    /// every acknowledged package kept its outcome, money is conserved, nothing is left held
    /// or blocked, and the ring circulates.
    Chaos {
        #[arg(long, default_value_t = 4)]
        banks: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Every bank behind a fault-injecting proxy; network faults (isolation, lost
        /// replies, slow and lossy links) join the kills and pauses.
        #[arg(long)]
        network: bool,
        #[arg(long)]
        node_bin: Option<PathBuf>,
        /// The banks over TLS, as in production (default: --plain-http).
        #[arg(long)]
        tls: bool,
        /// Writes the run's picture to FILE (HTML): commits per second and latency
        /// percentiles over time, every fault shaded and named.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Availability under partial faults: 4 banks behind fault-injecting proxies, a closed
    /// loop of clients; per fault kind, a fault-free window, one bank faulted for a window,
    /// recovery. Reports how the packages not naming that bank kept committing and how the
    /// ones naming it ended; then checks the books. See tools/src/availability.rs.
    Availability(AvailabilityArgs),
    /// History that does not grow forever: a steady load of cross-bank packages for a while,
    /// sampling each bank's database file size and resident memory every second. With
    /// compaction on, both level off (only the statements keep growing, one entry per
    /// committed leg); --no-compact shows the growth without it.
    Soak {
        #[arg(long, default_value_t = 2)]
        banks: usize,
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Compaction off (compact_every_ms = 0): history grows forever.
        #[arg(long)]
        no_compact: bool,
        /// How long each package is valid, milliseconds (history goes this plus twice the
        /// skew after a package is signed).
        #[arg(long, default_value_t = 1_000)]
        valid_ms: u64,
        /// The consortium's clock_skew_ms for the run.
        #[arg(long, default_value_t = 1_000)]
        skew_ms: u64,
        /// Also write the samples as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct AvailabilityArgs {
    #[arg(long, default_value_t = 4)]
    banks: usize,
    /// Fault kinds, in order, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "pause,isolate,lose-replies,slow,kill")]
    kinds: Vec<tools::availability::FaultKind>,
    /// The bank faulted (index).
    #[arg(long, default_value_t = 1)]
    victim: usize,
    #[arg(long, default_value_t = 10)]
    fault_free_seconds: u64,
    #[arg(long, default_value_t = 10)]
    fault_seconds: u64,
    #[arg(long, default_value_t = 5)]
    recovery_seconds: u64,
    /// Clients whose packages never name the victim.
    #[arg(long, default_value_t = 8)]
    bystanders: usize,
    /// Clients whose packages always name the victim (origin or leg).
    #[arg(long, default_value_t = 4)]
    involved: usize,
    /// A client's patience for one package, milliseconds.
    #[arg(long, default_value_t = 5000)]
    client_timeout_ms: u64,
    /// `slow`: each chunk's delay is this plus up to --slow-jitter-ms, milliseconds.
    #[arg(long, default_value_t = 50)]
    slow_delay_ms: u64,
    #[arg(long, default_value_t = 250)]
    slow_jitter_ms: u64,
    /// `slow`: percent of chunks lost (each loss kills its connection).
    #[arg(long, default_value_t = 10)]
    slow_loss_pct: u8,
    /// Protocol timings: the production defaults, or the tests' short ones (TEST_TIMING).
    #[arg(long, default_value_t = false)]
    test_timing: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Copy the banks' logs (bankN.log; NODE_LOG sets their level) into this folder at the end.
    #[arg(long)]
    logs: Option<PathBuf>,
    #[arg(long)]
    node_bin: Option<PathBuf>,
}

fn node_bin(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("node"))
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let code = match args.cmd {
        Some(Cmd::Soak { banks, seconds, clients, no_compact, valid_ms, skew_ms, json, node_bin: bin }) => rt.block_on(async {
            let o = tools::soak::SoakOptions { banks, seconds, clients, compact: !no_compact, valid_ms, skew_ms, ..Default::default() };
            let r = tools::soak::soak(node_bin(bin), &o).await;
            for s in &r.samples {
                eprintln!("soak: t {:>6.1} s  packages {:>7}  database {:>8.2} MB  resident {:>7.1} MB  rows {:?}", s.t_s, s.packages, s.db_bytes as f64 / 1e6, s.rss_kb as f64 / 1e3, s.tables);
            }
            println!("{}", r.summary());
            if let Some(f) = &json {
                std::fs::write(f, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
            }
            0
        }),
        Some(Cmd::Chaos { banks, seconds, clients, seed, network, node_bin: bin, tls, html }) => rt.block_on(async {
            let c = if network {
                Cluster::start_proxied(banks, node_bin(bin), tools::cluster::TEST_TIMING).await
            } else {
                Cluster::start_opts(banks, node_bin(bin), tools::cluster::TEST_TIMING, tls).await
            };
            eprintln!("chaos: {banks} banks, {clients} clients, {seconds} s, seed {seed}{}", if tls { ", TLS" } else { "" });
            let addrs = c.addrs.clone();
            let r = bench::chaos(c, Duration::from_secs(seconds), clients, seed, |m| eprintln!("chaos: {m}")).await;
            if let Some(file) = &html {
                let title = format!("chaos: {banks} banks, {clients} clients, {seconds} s, seed {seed}");
                match std::fs::write(file, tools::chaos_picture::html(&title, &r.faults, &r.answers, &addrs)) {
                    Ok(()) => eprintln!("chaos: the picture of the run is in {}", file.display()),
                    Err(e) => eprintln!("chaos: cannot write {}: {e}", file.display()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&r).unwrap());
            if r.problems.is_empty() {
                println!("chaos: OK ({} kills, {} pauses, {} network faults, {} packages, {} acknowledged outcomes verified)", r.kills, r.pauses, r.network_faults, r.packages_sent, r.acknowledged_checked);
                0
            } else {
                println!("chaos: FAILED");
                1
            }
        }),
        Some(Cmd::Availability(a)) => rt.block_on(availability(a)),
        None => rt.block_on(load(args.load)),
    };
    std::process::exit(code);
}

/// One row of the table; `counts` (packages neither committed nor aborted, node CPU%) only
/// for a measured level, not for a median.
fn print_row(l: &Level, counts: Option<(usize, f64)>) {
    let label = match l.rate {
        None => format!("{} cl", l.clients),
        Some(r) => format!("{r}/s"),
    };
    let (other, cpu) = counts.map_or((String::new(), String::new()), |(o, c)| (o.to_string(), format!("{c:.0}")));
    println!(
        "{:>9} {:>11.1} {:>8.1} {:>9.1} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>6.1}",
        label, l.committed_per_s, l.cross_bank_committed_per_s, l.aborted_per_s, other, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, cpu, l.steal_percent
    );
}

async fn load(a: LoadArgs) -> i32 {
    let c = Cluster::start_opts(a.banks, node_bin(a.node_bin.clone()), bench::BENCH_TIMING, a.tls).await;
    eprintln!("bench: {} banks up on {:?} ({})", a.banks, c.addrs, if a.tls { "TLS" } else { "plain HTTP" });
    let t = Instant::now();
    let acc = Arc::new(bench::setup(&c, a.accounts, 1_000_000_000).await);
    eprintln!("bench: {} accounts funded in {:.1} s", a.accounts * a.banks, t.elapsed().as_secs_f64());

    let cpu0 = bench::cpu_seconds(&c);
    tokio::time::sleep(Duration::from_secs(a.idle_seconds)).await;
    let idle_cpu = bench::cpu_seconds(&c) - cpu0;
    eprintln!("bench: idle {} banks used {:.2} CPU-s in {} s ({:.1}% of one core)", a.banks, idle_cpu, a.idle_seconds, 100.0 * idle_cpu / a.idle_seconds as f64);

    let addrs = Arc::new(c.addrs.clone());
    let mut levels: Vec<Level> = Vec::new();
    println!(
        "{:>9} {:>11} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "load", "committed/s", "cross/s", "aborted/s", "other", "p50 ms", "p90 ms", "p99 ms", "max ms", "node CPU%", "steal%"
    );
    let dur = Duration::from_secs(a.seconds);
    let one_pass: Vec<(usize, Option<f64>)> = a.clients.iter().map(|&n| (n, None)).chain(a.rates.iter().map(|&r| (0, Some(r)))).collect();
    let runs = a.repeat.max(1);
    for (run, (clients, rate)) in (0..runs).flat_map(|run| one_pass.iter().map(move |l| (run, *l))) {
        let cpu0 = bench::cpu_seconds(&c);
        let ticks0 = bench::cpu_ticks();
        let t0 = Instant::now();
        let sent = match rate {
            None => bench::drive(c.client_transport(), addrs.clone(), acc.clone(), a.load, clients, dur, &format!("c{clients}-{run}"), (run * 1000 + clients) as u64).await,
            Some(r) => bench::drive_rate(c.client_transport(), addrs.clone(), acc.clone(), a.load, r, dur, &format!("r{r}-{run}"), (run * 1000) as u64 + r as u64).await,
        };
        let secs = match rate {
            None => t0.elapsed().as_secs_f64(),
            Some(_) => dur.as_secs_f64(), // the sending window; late answers count against latency
        };
        let mut l = bench::summarize(clients, rate, secs, &sent, bench::cpu_seconds(&c) - cpu0);
        let ticks1 = bench::cpu_ticks();
        l.steal_percent = 100.0 * (ticks1.0 - ticks0.0) as f64 / (ticks1.1 - ticks0.1).max(1) as f64;
        print_row(&l, Some((l.other, 100.0 * l.node_cpu_s / t0.elapsed().as_secs_f64())));
        levels.push(l);
    }
    if runs > 1 {
        println!("median of {runs} runs:");
        for &(clients, rate) in &one_pass {
            let same: Vec<&Level> = levels.iter().filter(|l| l.clients == clients && l.rate == rate).collect();
            let median = |f: fn(&Level) -> f64| {
                let mut v: Vec<f64> = same.iter().map(|l| f(l)).collect();
                v.sort_by(|x, y| x.total_cmp(y));
                v[v.len() / 2]
            };
            let m = Level {
                committed_per_s: median(|l| l.committed_per_s),
                cross_bank_committed_per_s: median(|l| l.cross_bank_committed_per_s),
                aborted_per_s: median(|l| l.aborted_per_s),
                p50_ms: median(|l| l.p50_ms),
                p90_ms: median(|l| l.p90_ms),
                p99_ms: median(|l| l.p99_ms),
                max_ms: median(|l| l.max_ms),
                steal_percent: median(|l| l.steal_percent),
                ..same[0].clone()
            };
            print_row(&m, None);
        }
    }
    let problems = bench::check_books(&c, &acc, Duration::from_secs(60)).await;
    if problems.is_empty() {
        println!("money conserved: {} cents across {} accounts, nothing held or blocked", acc.funded, a.accounts * a.banks);
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
    }
    if let Some(path) = &a.json {
        let out = serde_json::json!({
            "banks": a.banks,
            "accounts_per_bank": a.accounts,
            "load": a.load,
            "seconds_per_level": a.seconds,
            "repeat": runs,
            "tls": a.tls,
            "idle": {"seconds": a.idle_seconds, "node_cpu_s": idle_cpu, "core_percent": 100.0 * idle_cpu / a.idle_seconds as f64},
            "levels": levels,
            "money_conserved": problems.is_empty(),
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        });
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).expect("write --json file");
        eprintln!("bench: results written to {}", path.display());
    }
    if problems.is_empty() { 0 } else { 1 }
}

async fn availability(a: AvailabilityArgs) -> i32 {
    use tools::availability::{self, Options};
    let timing = if a.test_timing { tools::cluster::TEST_TIMING } else { bench::BENCH_TIMING };
    let o = Options {
        kinds: a.kinds.clone(),
        victim: a.victim,
        fault_free: Duration::from_secs(a.fault_free_seconds),
        fault: Duration::from_secs(a.fault_seconds),
        recovery: Duration::from_secs(a.recovery_seconds),
        bystanders: a.bystanders,
        involved: a.involved,
        client_timeout: Duration::from_millis(a.client_timeout_ms),
        slow: tools::proxy::Mode::Slow { delay_ms: a.slow_delay_ms, jitter_ms: a.slow_jitter_ms, loss_pct: a.slow_loss_pct },
        seed: a.seed,
        ..Options::production()
    };
    assert!(a.victim < a.banks, "--victim is a bank's index (0..{})", a.banks);
    let mut c = Cluster::start_proxied(a.banks, node_bin(a.node_bin.clone()), timing).await;
    eprintln!("availability: {} banks behind proxies on {:?}, victim {}, {} timings", a.banks, c.addrs, c.addrs[a.victim], if a.test_timing { "test" } else { "production" });
    let ticks0 = bench::cpu_ticks();
    let r = availability::run(&mut c, &o, |m| eprintln!("availability: {m}")).await;
    let ticks1 = bench::cpu_ticks();
    let steal = 100.0 * (ticks1.0 - ticks0.0) as f64 / (ticks1.1 - ticks0.1).max(1) as f64;
    println!("Rates: commits/s of packages NOT naming the victim (as origin or leg), as clients saw them.");
    println!("gap s: longest time without such a commit in the fault window; 1st new: first commit of one sent after the fault began (s after it).");
    println!("victim c/a/u: packages naming the victim sent in the fault window: committed/aborted/unanswered; abort p50/max ms.");
    println!("tokens+: tokens created by the healthy banks during the fault window + during recovery.");
    print!("{}", availability::table(&r));
    println!("steal: {steal:.1}% of the machine's CPU during the run");
    if let Some(path) = &a.json {
        let out = serde_json::json!({"options": o, "timing": if a.test_timing { "test" } else { "production" }, "report": r, "steal_percent": steal});
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).expect("write --json file");
        eprintln!("availability: results written to {}", path.display());
    }
    if let Some(dir) = &a.logs {
        std::fs::create_dir_all(dir).expect("create --logs folder");
        for i in 0..a.banks {
            let _ = std::fs::write(dir.join(format!("bank{i}.log")), c.log(i));
        }
        eprintln!("availability: bank logs copied to {}", dir.display());
    }
    if r.problems.is_empty() {
        println!("books: OK ({} packages, {} acknowledged outcomes verified, money conserved, nothing held)", r.packages_sent, r.acknowledged_checked);
        0
    } else {
        for p in &r.problems {
            println!("PROBLEM: {p}");
        }
        1
    }
}
