//! Scenario files: a consortium, its network, its workload and a fault schedule, in TOML.
//! Every table refuses unknown keys and every key has a default, so a scenario says only
//! what it cares about. README.md documents each key; `Scenario::example()` shows them all.

use node::config::Timing;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report; defaults to the file name.
    pub name: String,
    pub description: String,
    /// Seeds everything: turmoil's network, the nodes' RNGs, the disks, the workload, chaos.
    pub seed: u64,
    /// Number of banks (hosts `bank1`..`bankN`, listening on port 7000).
    pub banks: usize,
    /// Simulated milliseconds of workload and faults. Then every fault is healed (partitions,
    /// holds, crashed banks restarted), clients stop sending new packages, and the run goes on
    /// for `settle_ms` before the final checks.
    pub duration_ms: u64,
    pub settle_ms: u64,
    /// Invariants are checked every this many simulated milliseconds.
    pub check_every_ms: u64,
    /// Within this long before the end some bank must have accepted the token.
    pub token_recent_ms: u64,
    pub timing: TimingSpec,
    pub network: Network,
    pub workload: Workload,
    pub faults: Vec<Fault>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: String::new(),
            description: String::new(),
            seed: 1,
            banks: 3,
            duration_ms: 6_000,
            settle_ms: 6_000,
            check_every_ms: 100,
            token_recent_ms: 1_000,
            timing: TimingSpec::default(),
            network: Network::default(),
            workload: Workload::default(),
            faults: Vec::new(),
        }
    }
}

/// The node's protocol timing (`node::config::Timing`), with short simulation defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimingSpec {
    pub peer_timeout_ms: u64,
    pub package_wait_ms: u64,
    pub idle_hold_ms: u64,
    pub idle_hold_max_ms: u64,
    pub token_loss_ms: u64,
    pub startup_check_ms: u64,
    pub block_ms: u64,
    pub resolve_after_ms: u64,
    pub presume_abort_ms: u64,
    pub ping_backoff_max_ms: u64,
    pub pass_floor_ms: u64,
    pub loss_floor_ms: u64,
    pub call_floor_ms: u64,
    /// The largest clock skew allowed between banks (compaction waits for it).
    pub clock_skew_ms: u64,
    /// The compactor's period; 0 (the default here) turns it off, so runs without it stay
    /// as they were. With it on, the checks remember every decided record and finished leg
    /// they saw, so that compaction cannot hide a broken rule.
    pub compact_every_ms: u64,
    pub compact_batch: usize,
}

impl Default for TimingSpec {
    fn default() -> Self {
        TimingSpec {
            peer_timeout_ms: 200,
            package_wait_ms: 1_000,
            idle_hold_ms: 1,
            idle_hold_max_ms: 10,
            token_loss_ms: 150,
            startup_check_ms: 100,
            block_ms: 100,
            resolve_after_ms: 400,
            presume_abort_ms: 1_500,
            ping_backoff_max_ms: 300,
            pass_floor_ms: 25,
            loss_floor_ms: 60,
            call_floor_ms: 25,
            clock_skew_ms: 30_000,
            compact_every_ms: 0,
            compact_batch: 64,
        }
    }
}

impl TimingSpec {
    pub fn to_timing(&self) -> Timing {
        Timing {
            peer_timeout_ms: self.peer_timeout_ms,
            package_wait_ms: self.package_wait_ms,
            idle_hold_ms: self.idle_hold_ms,
            idle_hold_max_ms: self.idle_hold_max_ms,
            token_loss_ms: self.token_loss_ms,
            startup_check_ms: self.startup_check_ms,
            block_ms: self.block_ms,
            resolve_after_ms: self.resolve_after_ms,
            presume_abort_ms: self.presume_abort_ms,
            ping_backoff_max_ms: self.ping_backoff_max_ms,
            pass_floor_ms: self.pass_floor_ms,
            loss_floor_ms: self.loss_floor_ms,
            call_floor_ms: self.call_floor_ms,
            clock_skew_ms: self.clock_skew_ms,
            compact_every_ms: self.compact_every_ms,
            compact_batch: self.compact_batch,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Per message latency range (turmoil; exponentially distributed within it). Different
    /// delays on different connections reorder requests.
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Probability that a request between banks (or a client's package request) is lost:
    /// half of the losses drop the request, half drop the reply after it was applied.
    pub loss: f64,
    /// Probability that a request is delivered a second time, up to `duplicate_delay_max_ms`
    /// later.
    pub duplicate: f64,
    pub duplicate_delay_max_ms: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network { latency_min_ms: 1, latency_max_ms: 5, loss: 0.0, duplicate: 0.0, duplicate_delay_max_ms: 50 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Concurrent clients; each has one package in flight at a time.
    pub clients: usize,
    /// New packages per simulated second, over all clients.
    pub ops_per_sec: f64,
    /// Users per bank, each with one personal account.
    pub users_per_bank: usize,
    /// Every account starts with this many cents, deposited by one package per bank.
    pub initial_balance: u64,
    /// Amounts are drawn from 1..=max_amount cents (larger than a balance: some packages abort).
    pub max_amount: u64,
    /// Share of transfers whose two accounts are at different banks.
    pub cross_bank: f64,
    /// Share of packages with 2 to 4 operations.
    pub multi_leg: f64,
    /// Share of operations that are deposits / withdrawals (the rest are transfers).
    pub deposits: f64,
    pub withdrawals: f64,
    /// Share of packages sent to a random bank rather than the bank of their first account.
    pub any_origin: f64,
    /// Adversarial clients besides the honest ones: they take ids other clients used and
    /// send them with other content to other banks (a package of its own there) and to the
    /// same bank (which must refuse it), and send the same package again at other banks.
    pub malicious_clients: usize,
    /// Share of packages after which their client reads the account the money left (signed
    /// by its holder). The adversaries replay what they saw of those reads, and try reads of
    /// their own without the holder's key: none may be answered.
    pub reads: f64,
    /// How long each package is valid (its signed expiry, from when it is signed).
    pub package_valid_ms: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 4,
            ops_per_sec: 20.0,
            users_per_bank: 3,
            initial_balance: 10_000,
            max_amount: 4_000,
            cross_bank: 0.5,
            multi_leg: 0.3,
            deposits: 0.1,
            withdrawals: 0.1,
            any_origin: 0.2,
            malicious_clients: 0,
            reads: 0.0,
            package_valid_ms: 3_600_000,
        }
    }
}

/// One fault at a simulated time (`at_ms`). Banks are named `bank1`..`bankN`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Power loss: the bank's disk loses or tears its unsynced writes, then the host dies.
    /// With `on_event`, the crash is armed at `at_ms` and strikes at the first event of that
    /// kind emitted by `bank` (or by any bank if `bank = "any"`), inside the node's code:
    /// `package_prepared` is an executor between its prepares and its decision.
    /// `restart_after_ms` restarts it that long after the crash. With `mid_commit`, power
    /// fails inside one of the bank's next few disk writes instead (a commit in progress:
    /// it may be dropped, applied or torn), and the host dies at the end of that step.
    Crash {
        at_ms: u64,
        bank: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_event: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mid_commit: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restart_after_ms: Option<u64>,
    },
    /// Starts a crashed bank again on its disk (a running bank is power-cycled).
    Restart { at_ms: u64, bank: String },
    /// No traffic between banks of different groups (banks not listed form one more group).
    /// `oneway`: only traffic from an earlier group to a later one is cut.
    Partition {
        at_ms: u64,
        groups: Vec<Vec<String>>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        oneway: bool,
    },
    /// Ends every partition.
    Heal { at_ms: u64 },
    /// Messages between `a` and `b` are held (not lost) until released.
    Hold { at_ms: u64, a: String, b: String },
    Release { at_ms: u64, a: String, b: String },
    /// The next token pass (sent by `from`, or by any bank) vanishes in flight; its sender is
    /// told it was accepted. The ring must notice the loss and regenerate.
    DropToken {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Injects a copy of a token pass seen earlier: the last one, or with `stale` the last one
    /// of an older epoch than the newest seen (if any). Sent to its original receiver, or `to`.
    DuplicateToken {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stale: bool,
    },
    /// Holds every link of `bank` for `for_ms`: it is frozen, then everything arrives at once.
    Pause { at_ms: u64, bank: String, for_ms: u64 },
    /// `bank`'s wall clock runs `ms` milliseconds ahead (negative: behind) until the faults
    /// end. Banks accept each other's signed requests within 30 s of their own clock.
    Skew { at_ms: u64, bank: String, ms: i64 },
    /// A host outside the consortium (`rogue`) sends `messages` hostile requests to the banks
    /// over the next second: forged tokens (huge counters), blocks, alerts, prepares, finishes
    /// and decides, unsigned or signed with its own key in a member's name, and replays of
    /// real token passes it overheard. Every one must be refused, and nothing may change.
    Rogue { at_ms: u64, messages: u32 },
    /// The `rogue` host floods `bank` with `requests` client requests over `for_ms`: status
    /// reads, consortium-wide lookups (each fans out to every bank) and malformed packages.
    /// The bank must slow it down (429 past its per-address rate) and keep serving the others.
    Flood { at_ms: u64, bank: String, requests: u32, for_ms: u64 },
    /// `bank`'s disk stalls for `for_ms`: every storage call waits (a failing device, a full
    /// queue). Once a call outlasts the peer timeout the bank is not ready: it answers other
    /// banks 503 and they route around it.
    Stall { at_ms: u64, bank: String, for_ms: u64 },
    /// For `for_ms`, every reply `bank` sends is lost after its request was applied: callers
    /// time out although it acted, while its own calls go through.
    LoseReplies { at_ms: u64, bank: String, for_ms: u64 },
    /// For `for_ms`, `bank`'s links are slow (latency up to `latency_ms`) and lossy (each
    /// request to or from it lost with probability `loss`, half of them after delivery).
    Slow { at_ms: u64, bank: String, for_ms: u64, latency_ms: u64, loss: f64 },
}

impl Fault {
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::Crash { at_ms, .. }
            | Fault::Restart { at_ms, .. }
            | Fault::Partition { at_ms, .. }
            | Fault::Heal { at_ms }
            | Fault::Hold { at_ms, .. }
            | Fault::Release { at_ms, .. }
            | Fault::DropToken { at_ms, .. }
            | Fault::DuplicateToken { at_ms, .. }
            | Fault::Pause { at_ms, .. }
            | Fault::Skew { at_ms, .. }
            | Fault::Rogue { at_ms, .. }
            | Fault::Flood { at_ms, .. }
            | Fault::Stall { at_ms, .. }
            | Fault::LoseReplies { at_ms, .. }
            | Fault::Slow { at_ms, .. } => *at_ms,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Restart { .. } => "restart",
            Fault::Partition { .. } => "partition",
            Fault::Heal { .. } => "heal",
            Fault::Hold { .. } => "hold",
            Fault::Release { .. } => "release",
            Fault::DropToken { .. } => "drop_token",
            Fault::DuplicateToken { .. } => "duplicate_token",
            Fault::Pause { .. } => "pause",
            Fault::Skew { .. } => "skew",
            Fault::Rogue { .. } => "rogue",
            Fault::Flood { .. } => "flood",
            Fault::Stall { .. } => "stall",
            Fault::LoseReplies { .. } => "lose_replies",
            Fault::Slow { .. } => "slow",
        }
    }

    fn banks_named(&self) -> Vec<&str> {
        match self {
            Fault::Crash { bank, on_event: Some(_), .. } if bank == "any" => vec![],
            Fault::Crash { bank, .. } | Fault::Restart { bank, .. } | Fault::Pause { bank, .. } | Fault::Skew { bank, .. } => vec![bank],
            Fault::Rogue { .. } => vec![],
            Fault::Flood { bank, .. } | Fault::Stall { bank, .. } | Fault::LoseReplies { bank, .. } | Fault::Slow { bank, .. } => vec![bank],
            Fault::Partition { groups, .. } => groups.iter().flatten().map(String::as_str).collect(),
            Fault::Heal { .. } => vec![],
            Fault::Hold { a, b, .. } | Fault::Release { a, b, .. } => vec![a, b],
            Fault::DropToken { from, .. } => from.iter().map(String::as_str).collect(),
            Fault::DuplicateToken { to, .. } => to.iter().map(String::as_str).collect(),
        }
    }
}

pub fn bank_name(i: usize) -> String {
    format!("bank{}", i + 1)
}

/// "bank3" → 2.
pub fn bank_index(name: &str, banks: usize) -> Option<usize> {
    let n: usize = name.strip_prefix("bank")?.parse().ok()?;
    (1..=banks).contains(&n).then(|| n - 1)
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut s = Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if s.name.is_empty() {
            s.name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        }
        Ok(s)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("scenarios serialize")
    }

    pub fn bank_names(&self) -> Vec<String> {
        (0..self.banks).map(bank_name).collect()
    }

    pub fn check(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.banks) {
            return Err(format!("banks must be 1 to 9 (got {})", self.banks));
        }
        if self.duration_ms == 0 || self.check_every_ms == 0 {
            return Err("duration_ms and check_every_ms must be positive".into());
        }
        let n = &self.network;
        if n.latency_min_ms > n.latency_max_ms {
            return Err("network.latency_min_ms is larger than latency_max_ms".into());
        }
        for (what, p) in [("network.loss", n.loss), ("network.duplicate", n.duplicate)] {
            if !(0.0..=0.5).contains(&p) {
                return Err(format!("{what} must be between 0 and 0.5 (got {p})"));
            }
        }
        let w = &self.workload;
        for (what, p) in [
            ("workload.cross_bank", w.cross_bank),
            ("workload.multi_leg", w.multi_leg),
            ("workload.deposits", w.deposits),
            ("workload.withdrawals", w.withdrawals),
            ("workload.any_origin", w.any_origin),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{what} must be between 0 and 1 (got {p})"));
            }
        }
        if w.deposits + w.withdrawals > 1.0 {
            return Err("workload.deposits + workload.withdrawals must be at most 1".into());
        }
        if w.users_per_bank == 0 || w.users_per_bank > 60 {
            return Err("workload.users_per_bank must be 1 to 60".into());
        }
        if w.max_amount == 0 || w.ops_per_sec < 0.0 {
            return Err("workload.max_amount must be positive and ops_per_sec not negative".into());
        }
        self.timing.to_timing();
        let config = node::config::Config {
            listen: "bank1:7000".into(),
            timing: self.timing.to_timing(),
            ..Default::default()
        };
        config.check().map_err(|e| format!("timing: {e}"))?;
        for f in &self.faults {
            for b in f.banks_named() {
                if bank_index(b, self.banks).is_none() {
                    return Err(format!("fault {} at {} ms names {b:?}, not one of bank1..bank{}", f.kind(), f.at_ms(), self.banks));
                }
            }
            if f.at_ms() >= self.duration_ms {
                return Err(format!("fault {} at {} ms is not before duration_ms ({})", f.kind(), f.at_ms(), self.duration_ms));
            }
            if let Fault::Partition { groups, .. } = f {
                if groups.is_empty() {
                    return Err(format!("partition at {} ms has no groups", f.at_ms()));
                }
            }
            if let Fault::Hold { a, b, .. } | Fault::Release { a, b, .. } = f {
                if a == b {
                    return Err(format!("{} at {} ms names the same bank twice", f.kind(), f.at_ms()));
                }
            }
        }
        Ok(())
    }

    /// Faults in the order they happen (stable for equal times).
    pub fn schedule(&self) -> Vec<Fault> {
        let mut f = self.faults.clone();
        f.sort_by_key(Fault::at_ms);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_refuses_unknown_keys() {
        let s = Scenario::from_toml(
            r#"
            banks = 4
            [timing]
            block_ms = 50
            [[faults]]
            kind = "crash"
            at_ms = 100
            bank = "bank2"
            restart_after_ms = 500
            [[faults]]
            kind = "partition"
            at_ms = 200
            groups = [["bank1"], ["bank3", "bank4"]]
            oneway = true
            "#,
        )
        .unwrap();
        assert_eq!(s.banks, 4);
        assert_eq!(s.timing.block_ms, 50);
        assert_eq!(s.timing.idle_hold_ms, TimingSpec::default().idle_hold_ms);
        assert_eq!(s.faults.len(), 2);
        assert!(Scenario::from_toml("colour = 1").is_err());
        assert!(Scenario::from_toml("[network]\nlos = 0.1").is_err());
        assert!(Scenario::from_toml("[[faults]]\nkind = \"heal\"\nat_ms = 1\nbank = \"bank1\"").is_err());
        assert!(Scenario::from_toml("[[faults]]\nkind = \"crash\"\nat_ms = 1\nbank = \"bank9\"").is_err());
        let again = Scenario::from_toml(&s.to_toml()).unwrap();
        assert_eq!(again, s, "a scenario survives a round trip through TOML");
    }

    #[test]
    fn bank_names() {
        assert_eq!(bank_index("bank3", 4), Some(2));
        assert_eq!(bank_index("bank5", 4), None);
        assert_eq!(bank_index("bank0", 4), None);
        assert_eq!(bank_name(0), "bank1");
    }
}
