//! The summary of a run. Everything in it is simulated and deterministic (no wall time), so
//! it can be snapshotted: a change in protocol behaviour shows up as a diff.

use crate::run::{add_counters, fmt_time, CheckCounts, Shared, Violation};
use node::wire::Counters;
use node::node::{Node, PlantedBug};
use node::package::Status;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub banks: usize,
    pub planted: String,
    pub ran: Duration,
    pub submitted: u64,
    pub accepted: u64,
    pub committed: u64,
    pub aborted: u64,
    pub rejected: u64,
    pub unknown: u64,
    pub decided_committed: u64,
    pub decided_aborted: u64,
    pub counters: Counters,
    pub tokens_created: u64,
    pub net: crate::net::ChaosStats,
    pub faults: BTreeMap<&'static str, u64>,
    pub disk_dropped: u64,
    pub disk_torn: u64,
    pub latency_ms: Option<[f64; 4]>,
    pub liveness: crate::liveness::Liveness,
    pub bounds: Option<crate::liveness::Bounds>,
    pub checks: CheckCounts,
    pub violations: Vec<Violation>,
    pub trace_lines: usize,
    pub trace_hash: u64,
    /// What adversarial clients did: (same id, other content, same bank: refused), (same id
    /// at other banks). None when the scenario has none.
    pub adversary: Option<(u64, u64, u64)>,
    /// Honest signed reads answered, and adversaries' reads refused (none answered).
    pub reads: Option<(u64, u64)>,
    /// The rogue host's requests sent and refused; None when the scenario has none.
    pub rogue: Option<(u64, u64)>,
    /// With compaction on: records and participations dropped, in-doubt lookups answered
    /// "maybe compacted", and the records and participations left at the end.
    pub compaction: Option<(u64, u64, u64, u64, u64)>,
    /// Answers to the rogue host's flood by status; None when the scenario has none.
    pub flood: Option<std::collections::BTreeMap<u16, u64>>,
}

/// FNV-1a (64 bit) over the trace lines, each followed by a newline.
pub fn trace_hash(lines: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for b in l.bytes().chain(std::iter::once(b'\n')) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

impl Report {
    pub(crate) fn build(sh: &Shared, nodes: &[Option<Arc<Node>>]) -> Report {
        let st = sh.lock();
        let mut counters = Counters::default();
        for (slot, node) in st.banks.iter().zip(nodes) {
            add_counters(&mut counters, &slot.counters);
            if let Some(n) = node {
                add_counters(&mut counters, &n.ctx.counters.lock().unwrap());
            }
        }
        let mut r = Report {
            scenario: sh.scenario.name.clone(),
            seed: sh.scenario.seed,
            banks: sh.scenario.banks,
            planted: if sh.planted == PlantedBug::None { String::new() } else { format!("{:?}", sh.planted) },
            ran: st.now,
            counters,
            tokens_created: st.tokens_created,
            net: sh.chaos.inner.lock().unwrap().stats,
            faults: st.faults.clone(),
            disk_dropped: sh.disks.iter().map(|d| d.stats().dropped_writes).sum(),
            disk_torn: sh.disks.iter().map(|d| d.stats().torn_writes).sum(),
            checks: st.checks,
            liveness: st.liveness.clone(),
            bounds: Some(crate::liveness::Bounds::of(&sh.scenario)),
            violations: st.violations.clone(),
            trace_lines: st.trace.len(),
            trace_hash: trace_hash(&st.trace),
            adversary: (sh.scenario.workload.malicious_clients > 0).then_some((st.acks.reuses_refused, st.acks.reuses_elsewhere, st.acks.forged_stopped)),
            reads: (sh.scenario.workload.reads > 0.0).then_some((st.acks.reads_ok, st.acks.snoops_refused)),
            rogue: sh.scenario.faults.iter().any(|f| matches!(f, crate::scenario::Fault::Rogue { .. })).then_some((st.acks.rogue_sent, st.acks.rogue_refused)),
            flood: sh.scenario.faults.iter().any(|f| matches!(f, crate::scenario::Fault::Flood { .. })).then(|| st.acks.flood.clone()),
            ..Default::default()
        };
        if sh.scenario.timing.compact_every_ms > 0 {
            let sizes: Vec<node::store::Sizes> = nodes.iter().flatten().filter_map(|n| n.storage.store().sizes().ok()).collect();
            r.compaction = Some((
                r.counters.compacted_records,
                r.counters.compacted_participations,
                r.counters.in_doubt_compacted,
                sizes.iter().map(|z| z.records).sum(),
                sizes.iter().map(|z| z.participations).sum(),
            ));
        }
        for t in st.acks.packages.values() {
            r.submitted += 1;
            r.accepted += t.accepted as u64;
            match (t.decided, &t.rejected) {
                (Some(Status::Committed), _) => r.committed += 1,
                (Some(_), _) => r.aborted += 1,
                (None, Some(_)) => r.rejected += 1,
                (None, None) => r.unknown += 1,
            }
        }
        for (status, _, _) in st.decided.values() {
            if status == "Committed" {
                r.decided_committed += 1;
            } else {
                r.decided_aborted += 1;
            }
        }
        let mut l = st.acks.latencies_us.clone();
        l.sort_unstable();
        if !l.is_empty() {
            r.latency_ms = Some([percentile(&l, 50.0), percentile(&l, 90.0), percentile(&l, 99.0), *l.last().unwrap() as f64 / 1000.0]);
        }
        r
    }

    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let w = &mut s;
        let planted = if self.planted.is_empty() { String::new() } else { format!(", planted bug {}", self.planted) };
        let _ = writeln!(w, "scenario {} (seed {}, {} banks{planted})", self.scenario, self.seed, self.banks);
        let _ = writeln!(w, "  simulated time  {}", fmt_time(self.ran));
        let _ = writeln!(
            w,
            "  packages        {} submitted, {} accepted, {} committed, {} aborted, {} rejected, {} outcome unknown to the client",
            self.submitted, self.accepted, self.committed, self.aborted, self.rejected, self.unknown
        );
        let _ = writeln!(
            w,
            "  decided         {} committed, {} aborted at their origins; {} presumed aborts",
            self.decided_committed, self.decided_aborted, self.counters.presumed_aborts
        );
        let _ = writeln!(
            w,
            "  token           {} created ({} regenerations), {} stale and {} duplicate passes discarded, {} faults detected",
            self.tokens_created,
            self.tokens_created.saturating_sub(1),
            self.counters.stale_dropped,
            self.counters.duplicates_dropped,
            self.counters.faults
        );
        let _ = writeln!(
            w,
            "  network         {} requests, {} lost, {} replies lost, {} duplicated, {} token passes dropped",
            self.net.requests, self.net.lost_requests, self.net.lost_replies, self.net.duplicated, self.net.tokens_dropped
        );
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            w,
            "  faults          {}; disks lost {} and tore {} unsynced writes",
            if faults.is_empty() { "none".to_string() } else { faults.join(", ") },
            self.disk_dropped,
            self.disk_torn
        );
        if let Some((records, parts, doubted, records_left, parts_left)) = self.compaction {
            let _ = writeln!(w, "  compaction      {records} records and {parts} participations dropped ({records_left} and {parts_left} left); {doubted} in-doubt lookups answered compacted");
        }
        if let Some((refused, elsewhere, forged)) = self.adversary {
            let _ = writeln!(w, "  adversary       {refused} reused ids with other content refused by their bank, {elsewhere} reused at other banks");
            let _ = writeln!(w, "                  {forged} packages without the holders' signatures for their bank stopped (none committed)");
        }
        if let Some((ok, snoops)) = self.reads {
            let _ = writeln!(w, "  reads           {ok} holders' signed reads answered; {snoops} reads without the holder's key or replayed refused (none answered)");
        }
        if let Some((sent, refused)) = self.rogue {
            let _ = writeln!(w, "  rogue host      {sent} hostile requests sent, {refused} refusals reported by the banks");
        }
        if let Some(flood) = &self.flood {
            let by: Vec<String> = flood.iter().map(|(code, n)| if *code == 0 { format!("{n} unanswered") } else { format!("{n} × {code}") }).collect();
            let _ = writeln!(w, "  flood answers   {}", if by.is_empty() { "none".to_string() } else { by.join(", ") });
        }
        match self.latency_ms {
            Some([p50, p90, p99, max]) => {
                let _ = writeln!(w, "  latency         p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (simulated)");
            }
            None => {
                let _ = writeln!(w, "  latency         no package decided");
            }
        }
        if let Some(b) = self.bounds {
            let _ = writeln!(
                w,
                "  liveness        longest without a token {} ms during the faults; after them {} ms (bound {} ms), longest wait for a decision {} ms (bound {} ms)",
                self.liveness.gap_during.as_millis(),
                self.liveness.token_gap.as_millis(),
                b.token_gap.as_millis(),
                self.liveness.decide_wait.as_millis(),
                b.decide_wait.as_millis()
            );
        }
        let _ = writeln!(
            w,
            "  checks          {} consortium-wide ({} with a bank down, read from its disk), {} per bank, {} final",
            self.checks.global, self.checks.global_down, self.checks.per_bank, self.checks.final_checks
        );
        if self.violations.is_empty() {
            let _ = writeln!(w, "  violations      none");
        } else {
            let _ = writeln!(w, "  violations      {}", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(w, "    {v}");
            }
        }
        let _ = write!(w, "  trace           {} lines, hash {:016x}", self.trace_lines, self.trace_hash);
        f.write_str(&s)
    }
}
