//! Liveness, measured: once the faults end, how long the ring goes without a token and how
//! long an accepted package waits for its decision at its origin, each against a bound
//! derived from the scenario's timing. Safety checks say nothing bad happened; these say the
//! consortium came back, and how fast.

use crate::scenario::Scenario;
use node::ring::Ring;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Liveness {
    faults_end: Duration,
    last_token: Option<Duration>,
    /// Longest time without a token accepted or created anywhere, after the faults ended.
    pub token_gap: Duration,
    /// The same while the faults lasted (from the first token on): what availability under
    /// faults looks like. Reported, not bounded: a fault may last as long as it likes.
    pub gap_during: Duration,
    /// Packages accepted and not yet decided: key (`id@origin`) → (when accepted, origin).
    accepted: BTreeMap<String, (Duration, usize)>,
    /// When each bank lost power: (bank, time).
    power_losses: Vec<(usize, Duration)>,
    /// Packages decided at an origin that lost power in the step it decided them, so the
    /// decision was never reported: not measured.
    pub unseen: u64,
    /// Longest wait of a package for its decision, counted from when the faults ended (or
    /// from its acceptance, if later), and which package.
    pub decide_wait: Duration,
    pub slowest: Option<String>,
}

impl Liveness {
    pub fn new(faults_end: Duration) -> Liveness {
        Liveness { faults_end, ..Default::default() }
    }

    /// A bank accepted or created a token at `t`.
    pub fn token(&mut self, t: Duration) {
        if t >= self.faults_end {
            let from = self.last_token.map_or(self.faults_end, |l| l.max(self.faults_end));
            self.token_gap = self.token_gap.max(t - from);
        } else if let Some(l) = self.last_token {
            self.gap_during = self.gap_during.max(t - l);
        }
        self.last_token = Some(t);
    }

    pub fn accepted(&mut self, key: &str, origin: usize, t: Duration) {
        self.accepted.entry(key.to_string()).or_insert((t, origin));
    }

    pub fn decided(&mut self, key: &str, t: Duration) {
        if let Some((at, _)) = self.accepted.remove(key) {
            self.waited(key, at, t);
        }
    }

    /// `bank` lost power at `t`: whatever it did in that step went unreported.
    pub fn power_lost(&mut self, bank: usize, t: Duration) {
        self.power_losses.push((bank, t));
    }

    fn waited(&mut self, key: &str, accepted: Duration, t: Duration) {
        if t < self.faults_end {
            return;
        }
        let w = t - accepted.max(self.faults_end);
        if w > self.decide_wait || self.slowest.is_none() {
            self.decide_wait = w;
            self.slowest = Some(key.to_string());
        }
    }

    /// The run ends at `end`: the time since the last token and the waits of packages still
    /// undecided count too, except those `decided_at_origin` says are decided although no
    /// decision was seen, when their origin lost power after accepting them (the decision
    /// landed in the very step the power went: its report died with the step).
    pub fn finish(&mut self, end: Duration, decided_at_origin: impl Fn(&str) -> bool) {
        self.token(end);
        for (key, (at, origin)) in std::mem::take(&mut self.accepted) {
            let lost = self.power_losses.iter().any(|&(b, t)| b == origin && t >= at);
            if lost && decided_at_origin(&key) {
                self.unseen += 1;
                continue;
            }
            self.waited(&key, at, end);
        }
    }
}

/// What the timing promises once every bank is up and every link works again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub token_gap: Duration,
    pub decide_wait: Duration,
}

impl Bounds {
    /// The token: the banks find each other again (pings back off up to `ping_backoff_max`,
    /// with up to half of it as jitter); a token that died with the faults keeps a vouch for at
    /// most one loss timeout (a hold younger than it, a sighting younger than half of it); a
    /// bank checks at most 1.25 loss timeouts after its last sighting or vouch; then a round of
    /// probes, an alert, a recovery's round of probes and of blocks (each within the peer
    /// timeout) and the recovery's pause. A package: the token, then at most two rotations
    /// (to its origin, then to the bank that executes) and its prepare, decide and finish.
    pub fn of(s: &Scenario) -> Bounds {
        let t = &s.timing;
        let ms = Duration::from_millis;
        let loss = Ring::loss_timeout(ms(t.token_loss_ms), s.banks);
        let peer = ms(t.peer_timeout_ms);
        let token_gap = ms(t.ping_backoff_max_ms) * 3 / 2 + loss * 9 / 4 + peer * 4 + ms(t.block_ms);
        let hop = ms(s.network.latency_max_ms * 2 + t.idle_hold_max_ms);
        let rotation = hop * s.banks as u32;
        let decide_wait = token_gap + rotation * 2 + peer * 3;
        Bounds { token_gap, decide_wait }
    }

    /// What the measurements break of these bounds.
    pub fn check(&self, l: &Liveness) -> Vec<String> {
        let mut problems = Vec::new();
        if l.token_gap > self.token_gap {
            problems.push(format!(
                "liveness: the ring went {} ms without a token after the faults ended (bound {} ms, from the timing)",
                l.token_gap.as_millis(),
                self.token_gap.as_millis()
            ));
        }
        if l.decide_wait > self.decide_wait {
            problems.push(format!(
                "liveness: package {} waited {} ms for its decision after the faults ended (bound {} ms, from the timing)",
                l.slowest.as_deref().unwrap_or("?"),
                l.decide_wait.as_millis(),
                self.decide_wait.as_millis()
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_waits_count_only_after_the_faults() {
        let s = |ms| Duration::from_millis(ms);
        let mut l = Liveness::new(s(1000));
        l.token(s(100));
        l.token(s(900)); // 800 ms without a token, during the faults: not counted
        l.accepted("p@a", 0, s(500));
        l.accepted("q@a", 0, s(1100));
        l.accepted("r@b", 1, s(1100));
        l.power_lost(1, s(1150));
        l.token(s(1300)); // 300 ms after the faults ended
        l.decided("p@a", s(1200)); // waited 200 ms since the faults ended
        l.token(s(1400));
        // q never decided: 400 ms; r decided unseen (its origin lost power after accepting it)
        l.finish(s(1500), |k| k == "r@b");
        assert_eq!(l.unseen, 1);
        assert_eq!(l.token_gap, s(300));
        assert_eq!((l.decide_wait, l.slowest.as_deref()), (s(400), Some("q@a")));
        let b = Bounds { token_gap: s(299), decide_wait: s(400) };
        assert_eq!(b.check(&l).len(), 1, "{:?}", b.check(&l));
    }
}
