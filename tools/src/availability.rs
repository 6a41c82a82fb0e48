//! Availability under partial faults (`bench availability`, `make availability`, and a short
//! version in `tests/availability.rs`): a consortium whose banks sit behind fault-injecting
//! proxies ([`crate::proxy`]), a closed-loop load, and one bank (the victim) faulted for a
//! window at a time, one fault kind after another:
//!
//! * `pause`: SIGSTOP, then SIGCONT;
//! * `isolate`: its proxy blackholes inbound traffic (it can still call out);
//! * `lose-replies`: its proxy delivers requests to it and drops its answers;
//! * `slow`: its proxy delays every chunk and loses some (see [`Options::slow`]);
//! * `kill`: kill -9, restarted when the window ends.
//!
//! Each kind runs a fault-free window, the fault window and a recovery window under one
//! continuous load. Two kinds of test clients share it. *Bystanders* only send packages
//! among the other banks (never naming the victim, as origin or leg): their commits measure
//! whether the rest of the consortium keeps working. *Involved* clients only send packages
//! that name the victim (as origin, or as a leg of a package at another origin): they
//! measure how those end, and how fast. Every client waits for each answer (closed loop) up
//! to a client timeout; when the origin does not answer in time and does not answer a quick
//! `/status` probe either, the client gives up on that bank for a while and sends NEW
//! packages, with fresh ids, at other banks: never the same id at another origin. The
//! package left unanswered is looked up at its origin after everything settled.
//!
//! At the end the books are checked as `bench chaos` does: money conserved, nothing held or
//! blocked, every outcome a client saw still the outcome at its origin.

use crate::bench::{check_acknowledged, check_books, percentile, setup, Accounts, Sent};
use crate::cluster::Cluster;
use crate::proxy::Mode;
use consortium_net::{tcp_transport, Call, HttpTransport, Transport};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Pause,
    Isolate,
    LoseReplies,
    Slow,
    Kill,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::LoseReplies => "lose-replies",
            FaultKind::Slow => "slow",
            FaultKind::Kill => "kill",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub kinds: Vec<FaultKind>,
    /// The bank faulted.
    pub victim: usize,
    pub fault_free: Duration,
    pub fault: Duration,
    pub recovery: Duration,
    /// Clients whose packages never name the victim.
    pub bystanders: usize,
    /// Clients whose packages always name the victim.
    pub involved: usize,
    /// How long a client waits for a package's answer.
    pub client_timeout: Duration,
    /// After a timeout, how long a client waits for the origin's `/status` before giving up
    /// on that bank.
    pub probe_timeout: Duration,
    /// How long a client sends nothing to a bank it gave up on.
    pub avoid_for: Duration,
    /// The proxy's mode for `slow`.
    pub slow: Mode,
    pub accounts_per_bank: usize,
    pub seed: u64,
}

impl Options {
    /// For the production timings (`peer_timeout_ms` 2 s, `package_wait_ms` 10 s): 10-second
    /// windows, as the goal states.
    pub fn production() -> Options {
        Options {
            kinds: vec![FaultKind::Pause, FaultKind::Isolate, FaultKind::LoseReplies, FaultKind::Slow, FaultKind::Kill],
            victim: 1,
            fault_free: Duration::from_secs(10),
            fault: Duration::from_secs(10),
            recovery: Duration::from_secs(5),
            bystanders: 8,
            involved: 4,
            client_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(1),
            avoid_for: Duration::from_secs(5),
            slow: Mode::Slow { delay_ms: 50, jitter_ms: 250, loss_pct: 10 },
            accounts_per_bank: 16,
            seed: 1,
        }
    }

    /// For `cluster::TEST_TIMING` (`peer_timeout_ms` 1 s): short windows, for CI.
    pub fn test() -> Options {
        Options {
            kinds: vec![FaultKind::Isolate, FaultKind::LoseReplies, FaultKind::Pause],
            fault_free: Duration::from_secs(2),
            fault: Duration::from_secs(7),
            recovery: Duration::from_secs(2),
            bystanders: 4,
            involved: 2,
            client_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_millis(500),
            avoid_for: Duration::from_secs(2),
            accounts_per_bank: 4,
            ..Options::production()
        }
    }
}

/// One package as its client saw it. Times in seconds since the start of its fault kind's run.
#[derive(Clone, Debug, Serialize)]
pub struct Shot {
    pub id: String,
    pub origin: usize,
    /// Sent by an involved client: names the victim.
    pub names_victim: bool,
    pub cross: bool,
    pub sent_s: f64,
    pub answered_s: Option<f64>,
    /// committed, aborted, pending (202), no-answer (client timeout, refused connection), or
    /// `http N`.
    pub status: String,
    pub reason: Option<String>,
    /// For a package without an outcome when its client stopped waiting: its status at its
    /// origin once everything settled.
    pub final_status: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcomes {
    pub sent: usize,
    pub committed: usize,
    pub aborted: usize,
    /// No outcome within the client's patience (timeout, refused, 202 pending).
    pub unanswered: usize,
    /// Of those, how they ended once everything settled: status → count.
    pub unanswered_later: BTreeMap<String, usize>,
    /// Abort reasons → count.
    pub reasons: BTreeMap<String, usize>,
    /// From sending to the answer, for the aborted ones.
    pub abort_p50_ms: f64,
    pub abort_max_ms: f64,
    pub commit_p50_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct KindReport {
    pub kind: String,
    /// Window lengths actually run, seconds.
    pub fault_free_s: f64,
    pub fault_s: f64,
    pub recovery_s: f64,
    /// Commits per second of packages not naming the victim, as their clients saw them.
    pub fault_free_rate: f64,
    pub fault_rate: f64,
    pub recovery_rate: f64,
    /// fault_rate / fault_free_rate.
    pub ratio: f64,
    /// The longest time without any commit of a package not naming the victim, within the
    /// fault window (its edges count).
    pub max_gap_s: f64,
    /// From the fault's start to the first commit of a package not naming the victim that
    /// was sent after the fault started.
    pub first_new_commit_s: Option<f64>,
    pub fault_free_p50_ms: f64,
    pub fault_free_p99_ms: f64,
    pub fault_p50_ms: f64,
    pub fault_p99_ms: f64,
    /// Packages not naming the victim sent during the fault window.
    pub bystanders: Outcomes,
    /// Packages naming the victim sent during the fault window.
    pub involved: Outcomes,
    /// Summed over the healthy banks: tokens they created, and faults they counted, during
    /// the fault window and during the recovery window.
    pub tokens_created_fault: u64,
    pub tokens_created_recovery: u64,
    pub faults_fault: u64,
    pub faults_recovery: u64,
    #[serde(skip)]
    pub shots: Vec<Shot>,
    #[serde(skip)]
    fault_start_s: f64,
    #[serde(skip)]
    fault_end_s: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub kinds: Vec<KindReport>,
    pub packages_sent: usize,
    pub acknowledged_checked: usize,
    pub problems: Vec<String>,
}

/// Runs every fault kind of `o` in turn on a proxied cluster (`Cluster::start_proxied`),
/// then settles and checks the books. Accounts are set up here.
pub async fn run(c: &mut Cluster, o: &Options, log: impl Fn(&str)) -> Report {
    let acc = Arc::new(setup(c, o.accounts_per_bank, 1_000_000_000).await);
    let mut report = Report::default();
    for (k, &kind) in o.kinds.iter().enumerate() {
        log(&format!("{}: {} s fault-free, {} s with bank {} faulted, {} s recovery", kind.name(), o.fault_free.as_secs_f64(), o.fault.as_secs_f64(), c.addrs[o.victim], o.recovery.as_secs_f64()));
        let r = run_kind(c, &acc, o, kind, k, log_prefix(&log, kind)).await;
        log(&format!("{}: {:.1}/s fault-free, {:.1}/s faulted (x{:.2}), longest gap {:.1} s; naming the victim: {} committed, {} aborted, {} unanswered", kind.name(), r.fault_free_rate, r.fault_rate, r.ratio, r.max_gap_s, r.involved.committed, r.involved.aborted, r.involved.unanswered));
        report.kinds.push(r);
        // The next kind starts from a whole ring.
        c.wait_ring().await;
    }
    log("settling: waiting for every package to be decided and every leg finished");
    report.problems.extend(check_books(c, &acc, Duration::from_secs(90)).await);
    // What clients stopped waiting for, as it ended.
    for r in report.kinds.iter_mut() {
        for s in r.shots.iter_mut().filter(|s| s.status != "committed" && s.status != "aborted") {
            let (code, v) = c.get(s.origin, &format!("/packages/{}", s.id)).await;
            s.final_status = Some(match code {
                200 => v["status"].as_str().unwrap_or("?").to_string(),
                404 => "never recorded".to_string(),
                _ => format!("http {code}"),
            });
        }
        let (fs, fe) = (r.fault_start_s, r.fault_end_s);
        let during = |s: &&Shot| s.sent_s >= fs && s.sent_s < fe;
        r.bystanders = outcomes(r.shots.iter().filter(|s| !s.names_victim).filter(during));
        r.involved = outcomes(r.shots.iter().filter(|s| s.names_victim).filter(during));
    }
    let sent: Vec<Sent> = report
        .kinds
        .iter()
        .flat_map(|r| r.shots.iter())
        .map(|s| Sent { origin: s.origin, cross: s.cross, id: s.id.clone(), status: s.status.clone(), latency: Duration::ZERO, answered: None })
        .collect();
    report.packages_sent = sent.len();
    // A client that gave up on a bank sent new packages elsewhere, never an id again.
    let mut ids = std::collections::BTreeSet::new();
    for s in &sent {
        if !ids.insert(s.id.as_str()) {
            report.problems.push(format!("package id {} was sent twice", s.id));
        }
    }
    report.acknowledged_checked = sent.iter().filter(|s| s.status == "committed" || s.status == "aborted").count();
    report.problems.extend(check_acknowledged(c, &sent).await);
    report
}

fn log_prefix<'a>(log: &'a impl Fn(&str), kind: FaultKind) -> impl Fn(&str) + 'a {
    move |m: &str| log(&format!("{}: {m}", kind.name()))
}

async fn counters(c: &Cluster, banks: &[usize]) -> (u64, u64) {
    let mut t = (0, 0);
    for &i in banks {
        let (_, s) = c.get(i, "/status").await;
        t.0 += s["counters"]["tokens_created"].as_u64().unwrap_or(0);
        t.1 += s["counters"]["faults"].as_u64().unwrap_or(0);
    }
    t
}

async fn inject(c: &mut Cluster, kind: FaultKind, v: usize, o: &Options) {
    match kind {
        FaultKind::Pause => c.signal(v, "STOP"),
        FaultKind::Isolate => c.proxy(v).set(Mode::Blackhole),
        FaultKind::LoseReplies => c.proxy(v).set(Mode::LoseReplies),
        FaultKind::Slow => c.proxy(v).set(o.slow),
        FaultKind::Kill => c.kill(v),
    }
}

async fn heal(c: &mut Cluster, kind: FaultKind, v: usize) {
    match kind {
        FaultKind::Pause => c.signal(v, "CONT"),
        FaultKind::Isolate | FaultKind::LoseReplies | FaultKind::Slow => c.proxy(v).set(Mode::Pass),
        FaultKind::Kill => c.restart(v).await,
    }
}

/// The `k`th kind of the run (ids and seeds differ per kind run, so a kind may be repeated).
async fn run_kind(c: &mut Cluster, acc: &Arc<Accounts>, o: &Options, kind: FaultKind, k: usize, log: impl Fn(&str)) -> KindReport {
    let seed = o.seed.wrapping_mul(1000) + k as u64;
    let run = k;
    let v = o.victim;
    let healthy: Vec<usize> = (0..c.addrs.len()).filter(|&i| i != v).collect();
    let t0 = Instant::now();
    let stop = t0 + o.fault_free + o.fault + o.recovery;
    let addrs = Arc::new(c.addrs.clone());
    let transport = Arc::new(tcp_transport());
    let mut clients = Vec::new();
    for k in 0..o.bystanders + o.involved {
        let involved = k >= o.bystanders;
        let tag = format!("{}{run}-{}{k}", kind.name(), if involved { "i" } else { "b" });
        let ctx = Client { addrs: addrs.clone(), acc: acc.clone(), transport: transport.clone(), victim: v, involved, t0, stop, o: o.clone(), tag };
        clients.push(tokio::spawn(ctx.run(seed ^ ((k as u64) << 24))));
    }
    tokio::time::sleep_until((t0 + o.fault_free).into()).await;
    let before = counters(c, &healthy).await;
    let fault_start = t0.elapsed().as_secs_f64();
    inject(c, kind, v, o).await;
    log(&format!("injected at {fault_start:.1} s"));
    tokio::time::sleep_until((t0 + o.fault_free + o.fault).into()).await;
    let fault_end = t0.elapsed().as_secs_f64();
    let during = counters(c, &healthy).await;
    heal(c, kind, v).await;
    log(&format!("healed at {fault_end:.1} s (bank answering again at {:.1} s)", t0.elapsed().as_secs_f64()));
    let mut shots = Vec::new();
    for t in clients {
        shots.extend(t.await.unwrap());
    }
    let end = t0.elapsed().as_secs_f64();
    let after = counters(c, &healthy).await;

    let commits = |from: f64, to: f64| -> Vec<&Shot> { shots.iter().filter(|s| !s.names_victim && s.status == "committed" && s.answered_s.is_some_and(|a| a >= from && a < to)).collect() };
    let lat = |v: &[&Shot]| {
        let mut l: Vec<Duration> = v.iter().map(|s| Duration::from_secs_f64(s.answered_s.unwrap() - s.sent_s)).collect();
        l.sort();
        (percentile(&l, 0.5), percentile(&l, 0.99))
    };
    let base = commits(0.0, fault_start);
    let faulted = commits(fault_start, fault_end);
    let recovered = commits(fault_end, end);
    let mut times: Vec<f64> = faulted.iter().map(|s| s.answered_s.unwrap()).collect();
    times.sort_by(f64::total_cmp);
    let mut edges = vec![fault_start];
    edges.extend(&times);
    edges.push(fault_end);
    let max_gap_s = edges.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let first_new_commit_s = shots
        .iter()
        .filter(|s| !s.names_victim && s.status == "committed" && s.sent_s >= fault_start)
        .filter_map(|s| s.answered_s)
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.min(a))))
        .map(|a| a - fault_start);
    let rate = |n: usize, secs: f64| n as f64 / secs.max(1e-9);
    let (fault_free_rate, fault_rate) = (rate(base.len(), fault_start), rate(faulted.len(), fault_end - fault_start));
    let ((b50, b99), (f50, f99)) = (lat(&base), lat(&faulted));
    KindReport {
        kind: kind.name().to_string(),
        fault_free_s: fault_start,
        fault_s: fault_end - fault_start,
        recovery_s: end - fault_end,
        fault_free_rate,
        fault_rate,
        recovery_rate: rate(recovered.len(), end - fault_end),
        ratio: if fault_free_rate > 0.0 { fault_rate / fault_free_rate } else { 0.0 },
        max_gap_s,
        first_new_commit_s,
        fault_free_p50_ms: b50,
        fault_free_p99_ms: b99,
        fault_p50_ms: f50,
        fault_p99_ms: f99,
        tokens_created_fault: during.0.saturating_sub(before.0),
        tokens_created_recovery: after.0.saturating_sub(during.0),
        faults_fault: during.1.saturating_sub(before.1),
        faults_recovery: after.1.saturating_sub(during.1),
        bystanders: Outcomes::default(),
        involved: Outcomes::default(),
        fault_start_s: fault_start,
        fault_end_s: fault_end,
        shots,
    }
}

fn outcomes<'a>(shots: impl Iterator<Item = &'a Shot>) -> Outcomes {
    let mut o = Outcomes::default();
    let mut aborts = Vec::new();
    let mut commits = Vec::new();
    for s in shots {
        o.sent += 1;
        let took = s.answered_s.map(|a| Duration::from_secs_f64(a - s.sent_s));
        match s.status.as_str() {
            "committed" => {
                o.committed += 1;
                commits.extend(took);
            }
            "aborted" => {
                o.aborted += 1;
                aborts.extend(took);
                *o.reasons.entry(s.reason.clone().unwrap_or_else(|| "(no reason given)".into())).or_default() += 1;
            }
            _ => {
                o.unanswered += 1;
                *o.unanswered_later.entry(s.final_status.clone().unwrap_or_else(|| "?".into())).or_default() += 1;
            }
        }
    }
    aborts.sort();
    commits.sort();
    o.abort_p50_ms = percentile(&aborts, 0.5);
    o.abort_max_ms = aborts.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    o.commit_p50_ms = percentile(&commits, 0.5);
    o
}

struct Client {
    addrs: Arc<Vec<String>>,
    acc: Arc<Accounts>,
    transport: Arc<HttpTransport<HttpConnector>>,
    victim: usize,
    involved: bool,
    t0: Instant,
    stop: Instant,
    o: Options,
    tag: String,
}

impl Client {
    async fn run(self, seed: u64) -> Vec<Shot> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = self.addrs.len();
        let mut avoid: Vec<Option<Instant>> = vec![None; n];
        let mut shots = Vec::new();
        let mut count = 0;
        while Instant::now() < self.stop {
            let now = Instant::now();
            let usable: Vec<usize> = (0..n).filter(|&b| (self.involved || b != self.victim) && avoid[b].is_none_or(|t| t <= now)).collect();
            if usable.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let origin = usable[rng.random_range(0..usable.len())];
            // A fresh id for every package, wherever it goes.
            let id = format!("{}-{count}", self.tag);
            count += 1;
            let (body, cross) = self.package(origin, &id, &mut rng);
            let sent = Instant::now();
            let call = Call::new(Method::POST, "/packages", Some(serde_json::to_vec(&body).unwrap()), self.o.client_timeout);
            let answer = self.transport.call(&self.addrs[origin], call).await;
            let answered = Instant::now();
            let (status, reason) = match answer {
                Ok(r) => {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    match r.status.as_u16() {
                        200 | 202 => (v["status"].as_str().unwrap_or("?").to_string(), reason(&v)),
                        code => (format!("http {code}"), v["error"].as_str().or(v["message"].as_str()).map(str::to_string)),
                    }
                }
                Err(_) => ("no-answer".to_string(), None),
            };
            let decided = status == "committed" || status == "aborted";
            if status == "no-answer" && !self.alive(origin).await {
                // Gives up on that bank for a while; the package sent stays where it is.
                avoid[origin] = Some(Instant::now() + self.o.avoid_for);
            }
            shots.push(Shot {
                id,
                origin,
                names_victim: self.involved,
                cross,
                sent_s: (sent - self.t0).as_secs_f64(),
                answered_s: decided.then(|| (answered - self.t0).as_secs_f64()),
                status,
                reason,
                final_status: None,
            });
        }
        shots
    }

    /// Whether `bank` answers `/status` within the probe timeout.
    async fn alive(&self, bank: usize) -> bool {
        let call = Call::new(Method::GET, "/status", None, self.o.probe_timeout);
        matches!(self.transport.call(&self.addrs[bank], call).await, Ok(r) if r.status.is_success())
    }

    /// A signed package at `origin`: a bystander's among the banks other than the victim; an
    /// involved client's names the victim (it is the origin, or a leg). Returns it and whether
    /// it crosses banks.
    fn package(&self, origin: usize, id: &str, rng: &mut ChaCha8Rng) -> (Value, bool) {
        let n = self.addrs.len();
        let v = self.victim;
        let acct = |bank: usize, rng: &mut ChaCha8Rng| {
            let keys = &self.acc.keys[bank];
            json!({"bank": self.addrs[bank], "account": keys[rng.random_range(0..keys.len())]})
        };
        let t = |from: Value, to: Value, rng: &mut ChaCha8Rng| json!({"kind": "transfer", "from": from, "to": to, "amount": rng.random_range(1..500u64)});
        // Another bank than `origin` (and than the victim for a bystander, or the victim itself
        // for an involved client at another origin).
        let other = |rng: &mut ChaCha8Rng, not: &[usize]| loop {
            let b = rng.random_range(0..n);
            if !not.contains(&b) {
                return b;
            }
        };
        let dice = rng.random_range(0..10);
        let mut banks = vec![origin];
        if self.involved && origin != v {
            banks.push(v);
            if dice >= 7 {
                banks.push(other(rng, &[origin, v]));
            }
        } else {
            let not_v: Vec<usize> = if self.involved { vec![] } else { vec![v] };
            if dice >= 3 {
                let mut not = not_v.clone();
                not.push(origin);
                banks.push(other(rng, &not));
            }
            if dice >= 8 {
                let mut not = not_v;
                not.extend(&banks);
                banks.push(other(rng, &not));
            }
        }
        let ops = match banks.as_slice() {
            [b] => {
                let keys = &self.acc.keys[*b];
                let i = rng.random_range(0..keys.len());
                let j = (i + 1 + rng.random_range(0..keys.len() - 1)) % keys.len();
                vec![t(json!({"bank": self.addrs[*b], "account": keys[i]}), json!({"bank": self.addrs[*b], "account": keys[j]}), rng)]
            }
            [a, b] => {
                // Either way: money leaves the origin or arrives there.
                let (x, y) = (acct(*a, rng), acct(*b, rng));
                if rng.random_bool(0.5) { vec![t(x, y, rng)] } else { vec![t(y, x, rng)] }
            }
            [a, b, c] => {
                let (x, y, z) = (acct(*a, rng), acct(*b, rng), acct(*c, rng));
                vec![t(x.clone(), y.clone(), rng), t(y, z.clone(), rng), t(z, x, rng)]
            }
            _ => unreachable!(),
        };
        (self.acc.signer.sign(origin, json!({"id": id, "operations": ops})), banks.len() > 1)
    }
}

/// The first reason a package's results give (an aborted package's), shortened.
fn reason(v: &Value) -> Option<String> {
    let r = v["results"].as_array()?.iter().find_map(|r| r["reason"].as_str())?;
    Some(if r.len() > 90 { format!("{}…", &r[..r.char_indices().nth(90).map_or(r.len(), |(i, _)| i)]) } else { r.to_string() })
}

/// The report as a table, one row per fault kind, then the abort reasons.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<13} {:>7} {:>7} {:>6} {:>7} {:>8} {:>7} {:>15} {:>15} {:>17} {:>15} {:>9}\n",
        "fault", "free/s", "fault/s", "ratio", "gap s", "1st new", "recov/s", "free p50/p99", "fault p50/p99", "victim c/a/u", "abort p50/max", "tokens+"
    ));
    for k in &r.kinds {
        out.push_str(&format!(
            "{:<13} {:>7.1} {:>7.1} {:>6.2} {:>7.1} {:>8} {:>7.1} {:>15} {:>15} {:>17} {:>15} {:>9}\n",
            k.kind,
            k.fault_free_rate,
            k.fault_rate,
            k.ratio,
            k.max_gap_s,
            k.first_new_commit_s.map_or("none".into(), |s| format!("{s:.1}")),
            k.recovery_rate,
            format!("{:.0}/{:.0}", k.fault_free_p50_ms, k.fault_free_p99_ms),
            format!("{:.0}/{:.0}", k.fault_p50_ms, k.fault_p99_ms),
            format!("{}/{}/{}", k.involved.committed, k.involved.aborted, k.involved.unanswered),
            format!("{:.0}/{:.0}", k.involved.abort_p50_ms, k.involved.abort_max_ms),
            format!("{}+{}", k.tokens_created_fault, k.tokens_created_recovery),
        ));
    }
    for k in &r.kinds {
        let reasons: Vec<String> = k.involved.reasons.iter().map(|(r, n)| format!("{n}× {r}")).collect();
        let later: Vec<String> = k.involved.unanswered_later.iter().map(|(r, n)| format!("{n}× {r}")).collect();
        out.push_str(&format!("{}: naming the victim, aborted: [{}]; unanswered, later: [{}]", k.kind, reasons.join("; "), later.join("; ")));
        if k.bystanders.unanswered > 0 || k.bystanders.aborted > 0 {
            let by: Vec<String> = k.bystanders.reasons.iter().map(|(r, n)| format!("{n}× {r}")).collect();
            out.push_str(&format!("; not naming it: {} aborted [{}], {} unanswered", k.bystanders.aborted, by.join("; "), k.bystanders.unanswered));
        }
        out.push('\n');
    }
    out
}
