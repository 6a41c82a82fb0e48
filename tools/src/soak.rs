//! Soak: a small consortium of real `node` processes under a steady load for a while, sampling
//! each bank's database file size and its process's resident memory, to show that both level
//! off once compaction keeps package history bounded (`bench soak`, `make soak`, and a short
//! run in the tests). Only the statements (the journal) keep growing, by one entry per
//! committed leg, as they must.

use crate::bench::setup;
use crate::cluster::{Cluster, TEST_TIMING};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub banks: usize,
    pub seconds: u64,
    pub clients: usize,
    pub sample_ms: u64,
    /// Compaction on (every 200 ms) or off (history grows forever: the comparison).
    pub compact: bool,
    /// How long each package is valid, and the consortium's clock skew: history is
    /// compacted `valid_ms + 2 × skew_ms` after a package is signed.
    pub valid_ms: u64,
    pub skew_ms: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions { banks: 2, seconds: 45, clients: 8, sample_ms: 1_000, compact: true, valid_ms: 1_000, skew_ms: 1_000 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// Database files of every bank, bytes.
    pub db_bytes: u64,
    /// Resident memory of every bank's process, kB.
    pub rss_kb: u64,
    /// Packages answered so far.
    pub packages: u64,
    /// Rows of package history of every bank (origin records, participant legs and rows):
    /// what compaction bounds (`bank_history_rows`).
    pub history_rows: u64,
    /// Statement entries of every bank (kept forever).
    pub journal_rows: u64,
    /// Every bank's rows by table.
    pub tables: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    pub compact: bool,
    pub banks: usize,
    pub seconds: u64,
    pub packages: u64,
    pub committed: u64,
    pub samples: Vec<Sample>,
}

/// Growth of `f` over the first and over the last third of the samples.
pub fn thirds(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> (i64, i64) {
    let n = samples.len();
    if n < 4 {
        return (0, 0);
    }
    let at = |i: usize| f(&samples[i]) as i64;
    (at(n / 3) - at(0), at(n - 1) - at(n - 1 - n / 3))
}

impl SoakReport {
    pub fn db_thirds(&self) -> (i64, i64) {
        thirds(&self.samples, |s| s.db_bytes)
    }
    pub fn rss_thirds(&self) -> (i64, i64) {
        thirds(&self.samples, |s| s.rss_kb)
    }
    pub fn history_thirds(&self) -> (i64, i64) {
        thirds(&self.samples, |s| s.history_rows)
    }

    pub fn summary(&self) -> String {
        let (db1, db3) = self.db_thirds();
        let (r1, r3) = self.rss_thirds();
        let (h1, h3) = self.history_thirds();
        let last = self.samples.last();
        format!(
            "soak: {} banks, {} s, compaction {}: {} packages ({} committed, {:.0}/s)\n  database  {:.1} MB at the end; grew {:.2} MB in the first third, {:.2} MB in the last\n  memory    {:.1} MB resident at the end; grew {:.2} MB in the first third, {:.2} MB in the last\n  history   {} rows of packages at the end (grew {h1} in the first third, {h3} in the last); {} statement entries",
            self.banks,
            self.seconds,
            if self.compact { "on" } else { "off" },
            self.packages,
            self.committed,
            self.packages as f64 / self.seconds.max(1) as f64,
            last.map_or(0.0, |s| s.db_bytes as f64 / 1e6),
            db1 as f64 / 1e6,
            db3 as f64 / 1e6,
            last.map_or(0.0, |s| s.rss_kb as f64 / 1e3),
            r1 as f64 / 1e3,
            r3 as f64 / 1e3,
            last.map_or(0, |s| s.history_rows),
            last.map_or(0, |s| s.journal_rows),
        )
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `bank_history_rows{table="T"} N` lines of a scrape: (T, N).
pub fn history_rows_of(metrics: &str) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("bank_history_rows{table=\""))
        .filter_map(|l| {
            let (table, rest) = l.split_once('"')?;
            Some((table.to_string(), rest.trim_start_matches('}').trim().parse().ok()?))
        })
        .collect()
}

/// Every bank's database size, resident memory and rows of history, now.
async fn sample(c: &Cluster, banks: usize, began: Instant, packages: u64) -> Sample {
    let db_bytes = (0..banks).map(|i| std::fs::metadata(c.data_dir(i).join("bank.redb")).map_or(0, |m| m.len())).sum();
    let rss = (0..banks).filter_map(|i| c.pid(i)).map(rss_kb).sum();
    let (mut history_rows, mut journal_rows) = (0, 0);
    let mut tables = std::collections::BTreeMap::new();
    for i in 0..banks {
        let (_, text) = c.get_text(i, "/metrics").await;
        for (table, rows) in history_rows_of(&text) {
            *tables.entry(table.clone()).or_default() += rows;
            match table.as_str() {
                "journal" => journal_rows += rows,
                _ => history_rows += rows,
            }
        }
    }
    Sample { t_s: began.elapsed().as_secs_f64(), db_bytes, rss_kb: rss, packages, history_rows, journal_rows, tables }
}

/// Runs the soak with the `node` binary at `node_bin`.
pub async fn soak(node_bin: PathBuf, o: &SoakOptions) -> SoakReport {
    let timing = format!(
        "{TEST_TIMING}clock_skew_ms = {}\ncompact_every_ms = {}\ncompact_batch = 512\n",
        o.skew_ms,
        if o.compact { 200 } else { 0 }
    );
    let c = Arc::new(Cluster::start_with(o.banks, node_bin, &timing).await);
    let accounts = setup(&c, 4, 1_000_000_000).await;
    c.signer.valid_ms.store(o.valid_ms, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, committed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let keys = Arc::new(accounts.keys);
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let (c, stop, sent, committed, keys) = (c.clone(), stop.clone(), sent.clone(), committed.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(client as u64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A cent between two accounts at two banks: every package crosses banks.
                let from = rng.random_range(0..keys.len());
                let to = (from + 1 + rng.random_range(0..keys.len() - 1)) % keys.len();
                let (a, b) = (&keys[from][rng.random_range(0..keys[from].len())], &keys[to][rng.random_range(0..keys[to].len())]);
                let body = json!({"id": format!("soak-{client}-{n}"), "operations": [{"kind": "transfer", "from": c.at(from, a), "to": c.at(to, b), "amount": 1}]});
                n += 1;
                let (code, v) = c.submit(from, body).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if code == 200 && v["status"] == "committed" {
                    committed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let began = Instant::now();
    let mut samples = Vec::new();
    let end = began + Duration::from_secs(o.seconds);
    loop {
        samples.push(sample(&c, o.banks, began, sent.load(Ordering::Relaxed)).await);
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(o.sample_ms)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    // One more once the clients are done, so the last sample and the counts agree.
    samples.push(sample(&c, o.banks, began, sent.load(Ordering::Relaxed)).await);
    SoakReport { compact: o.compact, banks: o.banks, seconds: o.seconds, packages: sent.load(Ordering::Relaxed), committed: committed.load(Ordering::Relaxed), samples }
}
