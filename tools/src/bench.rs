//! Load and chaos against a consortium of real `node` processes on loopback: what `make
//! bench` and `make chaos` run (and a short chaos run in the tests).

use crate::cluster::{cpf, Cluster};
use consortium_net::{Call, Transport};
use hyper::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timing for benchmarks: the production defaults.
pub const BENCH_TIMING: &str = "";

/// What one client sees of one package.
#[derive(Clone, Debug)]
pub struct Sent {
    pub origin: usize,
    /// The package touches more than one bank.
    pub cross: bool,
    pub id: String,
    pub status: String,
    pub latency: Duration,
    /// When the answer came (None: a summary made without one).
    pub answered: Option<Instant>,
}

pub struct Accounts {
    /// Per bank, the account keys opened there.
    pub keys: Vec<Vec<String>>,
    pub funded: u64,
    /// Signs packages as their holders (every account has one holder of the rig's).
    pub signer: std::sync::Arc<crate::cluster::Signer>,
}

/// Opens `per_bank` funded accounts at every bank (funded by packages of many deposits, so
/// setting up does not wait for the token once per account).
pub async fn setup(c: &Cluster, per_bank: usize, funds: u64) -> Accounts {
    let mut keys = vec![Vec::new(); c.addrs.len()];
    let mut funded = 0;
    for (i, bank_keys) in keys.iter_mut().enumerate() {
        for u in 0..per_bank {
            bank_keys.push(c.account(i, &cpf(700_000 + (i * 1000 + u) as u32)).await);
        }
        for (n, chunk) in bank_keys.chunks(consortium_core::package::spec::MAX_OPERATIONS).enumerate() {
            let ops: Vec<Value> = chunk.iter().map(|k| json!({"kind": "deposit", "to": c.at(i, k), "amount": funds})).collect();
            let (code, v) = c.submit(i, json!({"id": format!("fund-{i}-{n}"), "operations": ops})).await;
            assert!(code == 200 && v["status"] == "committed", "funding bank {i}: {code} {v}");
            funded += funds * chunk.len() as u64;
        }
    }
    Accounts { keys, funded, signer: c.signer.clone() }
}

#[derive(Clone, Copy, Debug)]
pub enum Mix {
    SameBank,
    CrossBank,
    ThreeLeg,
}

/// Which packages a load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// 30% same-bank transfers, 50% cross-bank transfers, 20% three-leg packages.
    Standard,
    /// Only packages across banks: 70% cross-bank transfers, 30% three-leg packages.
    CrossBank,
}

fn pick_mix(load: Load, rng: &mut ChaCha8Rng) -> Mix {
    match (load, rng.random_range(0..10)) {
        (Load::Standard, 0..=2) => Mix::SameBank,
        (Load::Standard, 3..=7) | (Load::CrossBank, 0..=6) => Mix::CrossBank,
        _ => Mix::ThreeLeg,
    }
}

/// A random package of the given mix; returns (origin bank, body).
pub fn make_package(addrs: &[String], acc: &Accounts, mix: Mix, id: &str, rng: &mut ChaCha8Rng) -> (usize, Value) {
    let n = addrs.len();
    let r = |bank: usize, rng: &mut ChaCha8Rng| {
        let keys = &acc.keys[bank];
        json!({"bank": addrs[bank], "account": keys[rng.random_range(0..keys.len())]})
    };
    let t = |from: Value, to: Value, rng: &mut ChaCha8Rng| json!({"kind": "transfer", "from": from, "to": to, "amount": rng.random_range(1..500u64)});
    let b0 = rng.random_range(0..n);
    let ops = match mix {
        Mix::SameBank => {
            let keys = &acc.keys[b0];
            let i = rng.random_range(0..keys.len());
            let j = (i + 1 + rng.random_range(0..keys.len() - 1)) % keys.len();
            vec![t(json!({"bank": addrs[b0], "account": keys[i]}), json!({"bank": addrs[b0], "account": keys[j]}), rng)]
        }
        Mix::CrossBank => {
            let b1 = (b0 + 1 + rng.random_range(0..n - 1)) % n;
            let (f, to) = (r(b0, rng), r(b1, rng));
            vec![t(f, to, rng)]
        }
        Mix::ThreeLeg => {
            let (b1, b2) = ((b0 + 1) % n, (b0 + 2) % n);
            let (x, y, z) = (r(b0, rng), r(b1, rng), r(b2, rng));
            vec![t(x.clone(), y.clone(), rng), t(y, z.clone(), rng), t(z, x, rng)]
        }
    };
    (b0, acc.signer.sign(b0, json!({"id": id, "operations": ops})))
}

pub async fn post(t: &dyn Transport, addr: &str, path: &str, body: &Value, timeout: Duration) -> (u16, Value) {
    let call = Call::new(Method::POST, path, Some(serde_json::to_vec(body).unwrap()), timeout);
    match t.call(addr, call).await {
        Ok(r) => (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// Sends one package and waits for its answer; latency counts from `since`.
async fn send_one(transport: &dyn Transport, addrs: &[String], origin: usize, id: String, mix: Mix, body: &Value, since: Instant) -> Sent {
    let (code, v) = post(transport, &addrs[origin], "/packages", body, Duration::from_secs(15)).await;
    let status = match code {
        200 | 202 => v["status"].as_str().unwrap_or("?").to_string(),
        0 => "unreachable".to_string(),
        _ => format!("http {code}"),
    };
    Sent { origin, cross: !matches!(mix, Mix::SameBank), id, status, latency: since.elapsed(), answered: Some(Instant::now()) }
}

/// Open loop: packages are sent at a fixed `rate` per second for `dur`, whether or not the
/// earlier ones were answered, so a slow consortium shows as latency (measured from when
/// each package was due, not when it went out) rather than as fewer packages sent.
/// `transport`: the clients' (one connection pool shared by all, as `Cluster::client_transport`
/// makes: HTTPS if the banks run TLS).
pub async fn drive_rate(transport: Arc<dyn Transport>, addrs: Arc<Vec<String>>, acc: Arc<Accounts>, load: Load, rate: f64, dur: Duration, tag: &str, seed: u64) -> Vec<Sent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let total = (rate * dur.as_secs_f64()) as usize;
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let id = format!("{tag}-{n}");
        let mix = pick_mix(load, &mut rng);
        let (origin, body) = make_package(&addrs, &acc, mix, &id, &mut rng);
        let (addrs, transport) = (addrs.clone(), transport.clone());
        tasks.push(tokio::spawn(async move { send_one(transport.as_ref(), &addrs, origin, id, mix, &body, due).await }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.push(t.await.unwrap());
    }
    all
}

/// `clients` concurrent clients send packages for `dur`; each waits for its answer.
pub async fn drive(transport: Arc<dyn Transport>, addrs: Arc<Vec<String>>, acc: Arc<Accounts>, load: Load, clients: usize, dur: Duration, tag: &str, seed: u64) -> Vec<Sent> {
    let stop = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addrs, acc, transport) = (addrs.clone(), acc.clone(), transport.clone());
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (c as u64) << 20);
            let mut sent = Vec::new();
            let mut n = 0;
            while Instant::now() < stop {
                let id = format!("{tag}-{c}-{n}");
                n += 1;
                let mix = pick_mix(load, &mut rng);
                let (origin, body) = make_package(&addrs, &acc, mix, &id, &mut rng);
                let s = send_one(transport.as_ref(), &addrs, origin, id, mix, &body, Instant::now()).await;
                let unreachable = s.status == "unreachable";
                sent.push(s);
                if unreachable {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            sent
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// CPU seconds (user + system) used so far by each running bank process.
pub fn cpu_seconds(c: &Cluster) -> f64 {
    let tck = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    (0..c.addrs.len())
        .filter_map(|i| c.pid(i))
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|s| {
            // Fields after the parenthesized command name; utime and stime are 14 and 15.
            let rest = &s[s.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / tck
        })
        .sum()
}

/// The machine's (steal, total) CPU ticks so far: time the hypervisor gave to other guests
/// while this one wanted to run. On a shared virtual machine it is what makes one run differ
/// from the next, so every level reports it.
pub fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user and nice)
    (f.get(7).copied().unwrap_or(0), f.iter().take(8).sum())
}

#[derive(Clone, Debug, Serialize)]
pub struct Level {
    /// Closed loop: this many clients, each waiting for its answer. Open loop: 0.
    pub clients: usize,
    /// Open loop: packages sent per second.
    pub rate: Option<f64>,
    pub seconds: f64,
    pub committed_per_s: f64,
    /// Committed packages that touch more than one bank, per second.
    pub cross_bank_committed_per_s: f64,
    pub aborted_per_s: f64,
    pub other: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub node_cpu_s: f64,
    /// Share of the machine's CPU time stolen by the hypervisor during the level.
    pub steal_percent: f64,
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub fn summarize(clients: usize, rate: Option<f64>, secs: f64, sent: &[Sent], cpu: f64) -> Level {
    let mut lat: Vec<Duration> = sent.iter().filter(|s| s.status == "committed" || s.status == "aborted").map(|s| s.latency).collect();
    lat.sort();
    let count = |st: &str| sent.iter().filter(|s| s.status == st).count();
    Level {
        clients,
        rate,
        seconds: secs,
        committed_per_s: count("committed") as f64 / secs,
        cross_bank_committed_per_s: sent.iter().filter(|s| s.cross && s.status == "committed").count() as f64 / secs,
        aborted_per_s: count("aborted") as f64 / secs,
        other: sent.len() - count("committed") - count("aborted"),
        p50_ms: percentile(&lat, 0.5),
        p90_ms: percentile(&lat, 0.9),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        node_cpu_s: cpu,
        steal_percent: 0.0,
    }
}

/// Waits until no bank has a pending package or an in-doubt leg, then checks the books:
/// total money equals what was funded, nothing held or blocked, every account non-negative
/// (balances are unsigned; a negative one could not even be stored). Returns problems found.
pub async fn check_books(c: &Cluster, acc: &Accounts, settle: Duration) -> Vec<String> {
    let deadline = Instant::now() + settle;
    loop {
        let mut busy = Vec::new();
        for i in 0..c.addrs.len() {
            let (code, s) = c.get(i, "/status").await;
            if code != 200 {
                busy.push(format!("bank {} does not answer /status", c.addrs[i]));
            } else if s["queued"] != 0 || s["in_doubt"] != 0 {
                busy.push(format!("bank {}: {} queued, {} in doubt", c.addrs[i], s["queued"], s["in_doubt"]));
            }
        }
        if busy.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return busy;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut problems = Vec::new();
    let mut total: u64 = 0;
    for (i, keys) in acc.keys.iter().enumerate() {
        for k in keys {
            let (code, a) = c.get(i, &format!("/accounts/{k}")).await;
            if code != 200 {
                problems.push(format!("account {k} at {} unreadable ({code})", c.addrs[i]));
                continue;
            }
            if a["held"] != 0 || a["blocked"] != 0 {
                problems.push(format!("account {k} at {}: held {} blocked {} after settling", c.addrs[i], a["held"], a["blocked"]));
            }
            total += a["balance"].as_u64().unwrap_or(0);
        }
    }
    if total != acc.funded {
        problems.push(format!("money not conserved: {total} in accounts, {} funded", acc.funded));
    }
    problems
}

/// Every package a client saw decided must still have that outcome at its origin.
pub async fn check_acknowledged(c: &Cluster, sent: &[Sent]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in sent.iter().filter(|s| s.status == "committed" || s.status == "aborted") {
        let (code, v) = c.get(s.origin, &format!("/packages/{}", s.id)).await;
        if code != 200 || v["status"].as_str() != Some(s.status.as_str()) {
            problems.push(format!("package {} was acknowledged {} but is now {code} {}", s.id, s.status, v["status"]));
        }
    }
    problems
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ChaosReport {
    pub kills: usize,
    pub pauses: usize,
    /// A proxied cluster's (`Cluster::start_proxied`): a bank isolated, losing its replies,
    /// or slowed and lossy for a while (`crate::proxy::Mode`).
    pub network_faults: usize,
    pub packages_sent: usize,
    pub committed: usize,
    pub aborted: usize,
    pub unanswered: usize,
    pub acknowledged_checked: usize,
    pub problems: Vec<String>,
    /// What the picture draws (`chaos_html`): every fault, and every answer.
    #[serde(skip)]
    pub faults: Vec<crate::chaos_picture::FaultSpan>,
    #[serde(skip)]
    pub answers: Vec<crate::chaos_picture::Answer>,
}

/// Runs a load while repeatedly killing (-9) and restarting a random bank and pausing
/// (SIGSTOP/SIGCONT) another, and, if the cluster is proxied, cutting a bank's links through
/// its proxy (isolated, losing its replies, or slow and lossy) for 0.2-1.5 s; then lets
/// things settle and checks every promise.
pub async fn chaos(mut c: Cluster, dur: Duration, clients: usize, seed: u64, log: impl Fn(&str)) -> ChaosReport {
    let acc = Arc::new(setup(&c, 4, 1_000_000).await);
    let addrs = Arc::new(c.addrs.clone());
    let load = tokio::spawn(drive(c.client_transport(), addrs, acc.clone(), Load::Standard, clients, dur, "chaos", seed));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut report = ChaosReport::default();
    let t0 = Instant::now();
    let stop = t0 + dur;
    let span = |report: &mut ChaosReport, kind: &str, bank: usize, from: Instant| {
        report.faults.push(crate::chaos_picture::FaultSpan { kind: kind.to_string(), bank, from_s: (from - t0).as_secs_f64(), to_s: t0.elapsed().as_secs_f64() });
    };
    while Instant::now() + Duration::from_secs(1) < stop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
        let n = c.addrs.len();
        let victim = rng.random_range(0..n);
        if !c.proxies.is_empty() && rng.random_bool(0.5) {
            let ms = rng.random_range(200..1500);
            let mode = match rng.random_range(0..3) {
                0 => crate::proxy::Mode::Blackhole,
                1 => crate::proxy::Mode::LoseReplies,
                _ => crate::proxy::Mode::Slow { delay_ms: 50, jitter_ms: 250, loss_pct: 10 },
            };
            log(&format!("{mode:?} at bank {} for {ms} ms", c.addrs[victim]));
            let kind = match mode {
                crate::proxy::Mode::Blackhole => "isolate",
                crate::proxy::Mode::LoseReplies => "lose-replies",
                _ => "slow",
            };
            let from = Instant::now();
            c.proxy(victim).set(mode);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            c.proxy(victim).set(crate::proxy::Mode::Pass);
            span(&mut report, kind, victim, from);
            report.network_faults += 1;
        } else if rng.random_bool(0.5) {
            log(&format!("kill -9 bank {}", c.addrs[victim]));
            let from = Instant::now();
            c.kill(victim);
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
            c.restart(victim).await;
            span(&mut report, "kill", victim, from);
            log(&format!("restarted bank {}", c.addrs[victim]));
            report.kills += 1;
        } else {
            let ms = rng.random_range(200..1500);
            log(&format!("SIGSTOP bank {} for {ms} ms", c.addrs[victim]));
            let from = Instant::now();
            c.signal(victim, "STOP");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            c.signal(victim, "CONT");
            span(&mut report, "pause", victim, from);
            report.pauses += 1;
        }
    }
    let sent = load.await.unwrap();
    report.answers = sent
        .iter()
        .filter_map(|s| s.answered.map(|a| crate::chaos_picture::Answer { at_s: a.saturating_duration_since(t0).as_secs_f64(), latency_ms: s.latency.as_secs_f64() * 1000.0, status: s.status.clone() }))
        .collect();
    report.packages_sent = sent.len();
    report.committed = sent.iter().filter(|s| s.status == "committed").count();
    report.aborted = sent.iter().filter(|s| s.status == "aborted").count();
    report.unanswered = sent.len() - report.committed - report.aborted;
    log("quiet period: waiting for every package to be decided and every leg finished");
    c.wait_ring().await;
    report.problems.extend(check_books(&c, &acc, Duration::from_secs(60)).await);
    let acked = check_acknowledged(&c, &sent).await;
    report.acknowledged_checked = report.committed + report.aborted;
    report.problems.extend(acked);
    // The ring still circulates: a fresh cross-bank package commits.
    let body = json!({"id": "chaos-final", "operations": [{"kind": "transfer",
        "from": {"bank": c.addrs[0], "account": acc.keys[0][0]}, "to": {"bank": c.addrs[1], "account": acc.keys[1][0]}, "amount": 1}]});
    let (_, v) = c.submit(0, body).await;
    if v["status"] != "committed" {
        report.problems.push(format!("the ring did not resume: final package answered {v}"));
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        *by_status.entry(s.status.clone()).or_default() += 1;
    }
    log(&format!("outcomes seen by clients: {by_status:?}"));
    report
}
