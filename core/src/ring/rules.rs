//! Token rules as plain code. The driver feeds in what happened; these functions say what
//! it means. Nothing here touches the network, the clock or the disk.

use super::token::{Epoch, Token, MAX_COUNTER, MAX_QUEUE};
use super::order::ring_key;
use std::time::Duration;

/// How many accepted hops a bank remembers to recognize late repeats.
const RECENT_HOPS: usize = 32;

/// What to do with a token that just arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Take it: it is the token.
    Accept,
    /// An older epoch: a leftover of before a regeneration. Drop it quietly.
    Stale,
    /// The very pass already taken, delivered again (a duplicated message). Drop it quietly.
    Repeat,
    /// A second token of the current epoch. Drop it and report a fault: the ring must
    /// regenerate so that one token remains.
    Duplicate(String),
}

#[derive(Clone, Debug)]
pub struct Ring {
    pub me: String,
    /// Every bank, in ring order, this one included.
    pub members: Vec<String>,
    pub newest: Option<Epoch>,
    /// Tokens of a generation below this are stale (raised by a recovery's block message and
    /// by what a restarted bank remembers).
    pub floor_gen: u64,
    /// Hop of the last token of `newest` this bank accepted.
    pub last_hop: u64,
    /// Whether this bank holds the token now.
    pub holding: bool,
    /// The hop this bank is passing on right now (sent, answer not back yet). The token can
    /// come all the way round before the answer does (found by the simulator: with jittered
    /// latency the reply is slower than the ring), and that is not a second token.
    pub passing: Option<u64>,
    /// Hops of `newest` this bank accepted lately. A pass delivered again after the token
    /// moved on (a duplicated or long-delayed message) is one of them: a repeat to drop
    /// quietly, not a second token (found by the simulator: every late network duplicate
    /// made the ring regenerate).
    pub recent_hops: Vec<u64>,
    /// The hop at which this bank last passed the token of `newest` on. The token records it
    /// too (`Token::passed_by`): a genuine continuation of what this bank passed carries the
    /// same hop; any other copy is a second token, whatever its hop (found by fuzzing: two
    /// tokens a few hops apart leapfrogged each other round the ring, every bank seeing its
    /// hops grow, for as long as the run lasted).
    pub last_passed: Option<u64>,
    /// Planted bug (simulator tests only): accept tokens of older epochs.
    pub accept_stale: bool,
}

impl Ring {
    pub fn new(me: &str, peers: &[String], floor_gen: u64) -> Ring {
        let mut members: Vec<String> = peers.to_vec();
        if !members.iter().any(|m| m == me) {
            members.push(me.to_string());
        }
        members.sort_by_key(|a| ring_key(a));
        members.dedup();
        Ring { me: me.to_string(), members, newest: None, floor_gen, last_hop: 0, holding: false, passing: None, recent_hops: Vec::new(), last_passed: None, accept_stale: false }
    }

    fn is_member(&self, bank: &str) -> bool {
        self.members.iter().any(|m| m == bank)
    }

    /// Whether a message about the ring (a token, a block, an alert) may come from `from`:
    /// another bank of the consortium.
    pub fn check_sender(&self, from: &str) -> Result<(), String> {
        if from == self.me || !self.is_member(from) {
            return Err(format!("sender {from} is not another bank of the consortium"));
        }
        Ok(())
    }

    /// Whether a token from the network can be a token of this ring at all, before any rule
    /// of arrival looks at it: sent by another member, created by a member, counters below
    /// the ceiling, a queue of well-formed packages of member origins, each at most once.
    /// A token that fails is refused (a 4xx, counted), never taken and never persisted.
    pub fn check_token(&self, from: &str, t: &Token) -> Result<(), String> {
        self.check_sender(from)?;
        if !self.is_member(&t.epoch.creator) {
            return Err(format!("epoch creator {} is not a bank of the consortium", t.epoch.creator));
        }
        if t.epoch.gen == 0 || t.epoch.gen > MAX_COUNTER || t.hop > MAX_COUNTER {
            return Err(format!("generation {} or hop {} out of range (1..={MAX_COUNTER})", t.epoch.gen, t.hop));
        }
        if t.busy_hop > t.hop {
            return Err(format!("busy hop {} is ahead of hop {}", t.busy_hop, t.hop));
        }
        for (bank, v) in &t.visits {
            if !self.is_member(bank) || *v > 2 {
                return Err(format!("visit count {v} of {bank}"));
            }
        }
        for (bank, h) in &t.passed_by {
            if !self.is_member(bank) || *h > t.hop {
                return Err(format!("pass record {h} of {bank} (hop {})", t.hop));
            }
        }
        if t.queue.len() > MAX_QUEUE {
            return Err(format!("{} packages queued; at most {MAX_QUEUE}", t.queue.len()));
        }
        let mut keys = std::collections::BTreeSet::new();
        for q in &t.queue {
            if !self.is_member(&q.origin) {
                return Err(format!("package {} from non-member origin", q.key()));
            }
            if let Err(e) = q.package.validate(|b| self.is_member(b)) {
                return Err(format!("package {}: {}", q.key(), e.message));
            }
            if !keys.insert(q.key()) {
                return Err(format!("package {} queued twice", q.key()));
            }
        }
        Ok(())
    }

    /// Whether a block (recovery) announcement from the network can be one of this ring's.
    pub fn check_block(&self, from: &str, gen: u64) -> Result<(), String> {
        self.check_sender(from)?;
        if gen == 0 || gen > MAX_COUNTER {
            return Err(format!("generation {gen} out of range (1..={MAX_COUNTER})"));
        }
        Ok(())
    }

    /// A token of `epoch` at `hop` arrived; `mine` is its record of this bank's last pass
    /// (`Token::passed_by[me]`).
    ///
    /// A recovery's block raises `floor_gen`, which makes every older token stale; a token of
    /// the announced generation or newer is taken even while a recovery runs (it used to be
    /// discarded for the whole blocked window, and two recoveries at once could each discard
    /// the other's new token, leaving the ring without one until the next loss timeout).
    pub fn on_token(&mut self, epoch: &Epoch, hop: u64, mine: Option<u64>) -> Arrival {
        let stale = epoch.gen < self.floor_gen || self.newest.as_ref().is_some_and(|n| epoch < n);
        if stale && !self.accept_stale {
            return Arrival::Stale;
        }
        if self.newest.as_ref() == Some(epoch) {
            if hop == self.last_hop || self.recent_hops.contains(&hop) {
                return Arrival::Repeat;
            }
            if hop < self.last_hop {
                return Arrival::Duplicate(format!("epoch {epoch}: hop {hop} after hop {}", self.last_hop));
            }
            // Not the token this bank passed on last: a second token.
            if let Some(p) = self.last_passed {
                if mine != Some(p) {
                    let had = mine.map_or("no record of this bank".to_string(), |m| format!("this bank's pass of hop {m}"));
                    return Arrival::Duplicate(format!("epoch {epoch}: hop {hop} is not the token this bank passed at hop {p} (it carries {had})"));
                }
            }
            // While this bank passes hop p, the token it passed can come all the way round
            // before the answer does: the pass went through, its answer is just late. Any
            // other arrival while holding is a second token.
            if self.holding && self.passing.is_none() {
                return Arrival::Duplicate(format!("epoch {epoch}: hop {hop} arrived while holding the token"));
            }
        }
        if !stale {
            if self.newest.as_ref() != Some(epoch) {
                self.recent_hops.clear();
                self.last_passed = None;
            }
            self.newest = Some(epoch.clone());
            if self.recent_hops.len() >= RECENT_HOPS {
                self.recent_hops.remove(0);
            }
            self.recent_hops.push(hop);
        }
        self.last_hop = hop;
        self.holding = true;
        self.passing = None;
        Arrival::Accept
    }

    /// This bank sends hop `hop` to its successor (the token records it in `passed_by`).
    pub fn pass_started(&mut self, hop: u64) {
        self.passing = Some(hop);
        self.last_passed = Some(hop);
    }

    /// The pass of `hop` ended; `delivered` if the successor took it. Returns false if the
    /// token came round and was accepted again meanwhile: the pass went through whatever its
    /// answer said, and the copy being passed must be dropped.
    pub fn pass_ended(&mut self, hop: u64, delivered: bool) -> bool {
        if self.passing != Some(hop) {
            return false;
        }
        self.passing = None;
        if delivered {
            self.holding = false;
        }
        true
    }

    /// Whether a token this bank holds is still the newest one (a newer epoch may have been
    /// announced while it was holding it).
    pub fn still_current(&self, epoch: &Epoch) -> bool {
        self.accept_stale || (epoch.gen >= self.floor_gen && self.newest.as_ref().is_none_or(|n| epoch >= n))
    }

    /// Counts this visit; true if this bank must now execute the queue: it is the first bank
    /// the token visits twice in the cycle. Executing starts a new cycle.
    pub fn visit(&self, token: &mut Token) -> bool {
        let v = token.visits.entry(self.me.clone()).or_insert(0);
        *v = v.saturating_add(1);
        if *v >= 2 {
            token.visits.clear();
            token.visits.insert(self.me.clone(), 1);
            return true;
        }
        false
    }

    /// This bank added or executed packages at this visit: the ring is busy.
    pub fn mark_busy(token: &mut Token) {
        token.busy_hop = token.hop;
    }

    /// Whether the token has gone a whole rotation without carrying work (`Token::busy_hop`).
    /// Only then may a bank hold it idle: right after work anywhere, the ring keeps it moving
    /// so the next package does not find it parked (found by the bench: when the executor
    /// ran its own packages at once, the other banks never saw work and a lone client waited
    /// behind their 25 ms holds).
    pub fn ring_idle(&self, token: &Token) -> bool {
        token.hop.saturating_sub(token.busy_hop) >= self.members.len() as u64
    }

    /// The next online bank after this one in ring order; None if this bank is alone.
    pub fn successor(&self, online: impl Fn(&str) -> bool) -> Option<String> {
        let me = self.members.iter().position(|m| *m == self.me).expect("a bank is a member of its ring");
        let n = self.members.len();
        (1..n).map(|i| &self.members[(me + i) % n]).find(|m| online(m)).cloned()
    }

    /// The lowest-address bank that is online (this one counts as online).
    pub fn lowest_online(&self, online: impl Fn(&str) -> bool) -> String {
        self.members.iter().find(|m| **m == self.me || online(m)).cloned().expect("this bank is a member")
    }

    /// A new epoch above every generation this bank knows of (`seen_gen` from asking others),
    /// and at least the floor a recovery announced (tokens of the floor are not stale).
    pub fn new_epoch(&mut self, seen_gen: u64) -> Epoch {
        let gen = self.epoch_after(seen_gen);
        self.start_epoch(gen)
    }

    /// The generation `new_epoch(seen_gen)` would create now.
    pub fn epoch_after(&self, seen_gen: u64) -> u64 {
        // Generations from the network are checked against MAX_COUNTER, far below u64::MAX.
        (self.newest.as_ref().map_or(0, |e| e.gen).max(seen_gen).min(MAX_COUNTER).saturating_add(1)).max(self.floor_gen)
    }

    /// Starts epoch `gen` created by this bank: it holds its first token.
    pub fn start_epoch(&mut self, gen: u64) -> Epoch {
        let e = Epoch { gen, creator: self.me.clone() };
        self.floor_gen = gen;
        self.newest = Some(e.clone());
        self.last_hop = 0;
        self.holding = true;
        self.passing = None;
        self.recent_hops = vec![0];
        self.last_passed = None;
        e
    }

    /// Enter a recovery announced for generation `gen`: anything older is stale from now on.
    /// Returns false if the announcement is old news: a generation this bank already blocked
    /// for or has seen a token of (a duplicated or late block message must not block the
    /// ring again, or the new token is discarded and lost).
    pub fn block(&mut self, gen: u64) -> bool {
        if gen <= self.floor_gen || self.newest.as_ref().is_some_and(|n| n.gen >= gen) {
            return false;
        }
        self.floor_gen = gen;
        if self.newest.is_some() {
            self.holding = false;
            self.passing = None;
        }
        true
    }

    /// How long without seeing the token before a bank suspects it is lost: a full rotation
    /// takes longer with more banks.
    pub fn loss_timeout(base: Duration, banks: usize) -> Duration {
        base * banks.max(1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(gen: u64, creator: &str) -> Epoch {
        Epoch { gen, creator: creator.into() }
    }

    fn ring(me: &str) -> Ring {
        Ring::new(me, &["b:1".into(), "a:1".into(), "c:1".into()], 0)
    }

    #[test]
    fn the_ring_is_idle_only_a_rotation_after_the_last_work() {
        let r = ring("a:1");
        let mut t = Token::new(e(1, "a:1"));
        t.hop = 10;
        Ring::mark_busy(&mut t);
        for hop in 10..13 {
            t.hop = hop;
            assert!(!r.ring_idle(&t), "hop {hop}: work went by within the last rotation of 3 banks");
        }
        t.hop = 13;
        assert!(r.ring_idle(&t));
        Ring::mark_busy(&mut t);
        assert!(!r.ring_idle(&t));
    }

    #[test]
    fn members_sorted_and_self_included() {
        let r = Ring::new("d:1", &["b:1".into(), "a:1".into()], 0);
        assert_eq!(r.members, vec!["a:1", "b:1", "d:1"]);
    }

    #[test]
    fn accepts_then_detects_repeat_duplicate_and_stale() {
        let mut r = ring("b:1");
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Accept);
        r.holding = false;
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Repeat);
        assert_eq!(r.on_token(&e(1, "a:1"), 4, None), Arrival::Accept);
        assert!(matches!(r.on_token(&e(1, "a:1"), 7, None), Arrival::Duplicate(_)), "arrives while holding");
        r.holding = false;
        assert!(matches!(r.on_token(&e(1, "a:1"), 2, None), Arrival::Duplicate(_)), "hop went back");
        assert_eq!(r.on_token(&e(2, "c:1"), 1, None), Arrival::Accept);
        r.holding = false;
        assert_eq!(r.on_token(&e(1, "a:1"), 99, None), Arrival::Stale);
        assert_eq!(r.on_token(&e(2, "a:1"), 99, None), Arrival::Stale, "same gen, lower creator");
        assert_eq!(r.on_token(&e(3, "a:1"), 1, None), Arrival::Accept, "a newer epoch");
    }

    #[test]
    fn token_back_before_the_pass_answer_is_not_a_duplicate() {
        let mut r = ring("b:1");
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Accept);
        r.pass_started(2);
        assert!(matches!(r.on_token(&e(1, "a:1"), 2, None), Arrival::Duplicate(_)), "its own pass, as a copy");
        assert_eq!(r.on_token(&e(1, "a:1"), 4, Some(2)), Arrival::Accept, "came round: c and a took hops 2 and 3");
        assert!(!r.pass_ended(2, true), "the late answer must not touch the new visit");
        assert!(r.holding);
        r.pass_started(5);
        assert!(r.pass_ended(5, true));
        assert!(!r.holding);
    }

    #[test]
    fn planted_bug_accepts_stale() {
        let mut r = ring("b:1");
        r.accept_stale = true;
        r.on_token(&e(5, "a:1"), 1, None);
        r.holding = false;
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Accept);
    }

    #[test]
    fn a_token_is_the_one_this_bank_passed_or_a_second_one() {
        let mut r = ring("b:1");
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Accept);
        r.pass_started(2);
        assert!(r.pass_ended(2, true));
        // Round the ring (c, a) and back: it carries b's pass of hop 2.
        assert_eq!(r.on_token(&e(1, "a:1"), 4, Some(2)), Arrival::Accept);
        r.pass_started(5);
        // A copy made before b's last pass arrives while b passes hop 5, with a higher hop:
        // hops alone cannot tell it from the token come round; its record of b can.
        assert!(matches!(r.on_token(&e(1, "a:1"), 6, Some(2)), Arrival::Duplicate(_)));
        assert_eq!(r.on_token(&e(1, "a:1"), 7, Some(5)), Arrival::Accept, "the token come round");
        // A new epoch starts without history.
        r.holding = false;
        assert_eq!(r.on_token(&e(2, "c:1"), 3, None), Arrival::Accept);
    }

    #[test]
    fn late_copy_of_an_accepted_pass_is_a_repeat() {
        let mut r = ring("b:1");
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Accept);
        r.holding = false;
        assert_eq!(r.on_token(&e(1, "a:1"), 4, None), Arrival::Accept);
        r.holding = false;
        assert_eq!(r.on_token(&e(1, "a:1"), 1, None), Arrival::Repeat, "the network delivered hop 1 again");
        assert!(matches!(r.on_token(&e(1, "a:1"), 2, None), Arrival::Duplicate(_)), "hop 2 was never here: a second token");
    }

    #[test]
    fn old_block_announcements_are_ignored() {
        let mut r = ring("b:1");
        r.on_token(&e(1, "a:1"), 1, None);
        assert!(r.block(2));
        assert!(!r.block(2), "the same announcement again");
        r.on_token(&e(3, "a:1"), 1, None);
        assert!(!r.block(3), "a token of that generation already came");
    }

    #[test]
    fn block_raises_floor() {
        let mut r = ring("b:1");
        r.on_token(&e(1, "a:1"), 1, None);
        r.block(2);
        assert!(!r.holding);
        assert!(!r.still_current(&e(1, "a:1")));
        assert_eq!(r.on_token(&e(1, "a:1"), 5, None), Arrival::Stale);
        let n = r.new_epoch(0);
        assert_eq!(n, e(2, "b:1"), "the announced floor itself is a valid generation");
        assert_eq!(r.new_epoch(10).gen, 11);
    }

    #[test]
    fn successor_skips_offline_and_wraps() {
        let r = ring("c:1");
        assert_eq!(r.successor(|_| true).as_deref(), Some("a:1"));
        assert_eq!(r.successor(|m| m != "a:1").as_deref(), Some("b:1"));
        assert_eq!(r.successor(|_| false), None);
        assert_eq!(r.lowest_online(|m| m != "a:1"), "b:1");
        assert_eq!(ring("a:1").lowest_online(|_| false), "a:1");
    }

    #[test]
    fn first_bank_visited_twice_executes() {
        let a = ring("a:1");
        let b = ring("b:1");
        let mut t = Token::new(e(1, "a:1"));
        assert!(!a.visit(&mut t));
        assert!(!b.visit(&mut t));
        assert!(a.visit(&mut t));
        assert_eq!(t.visits.len(), 1);
        assert!(!b.visit(&mut t), "a new cycle started");
    }

    #[test]
    fn tokens_from_outside_the_ring_or_with_wild_counters_are_refused() {
        use crate::domain::Cents;
        use crate::package::{AccountRef, OpKind, Operation, Package};
        use crate::ring::Queued;
        let r = ring("b:1");
        let good = || {
            let mut t = Token::new(e(3, "a:1"));
            t.hop = 10;
            t.busy_hop = 9;
            t.visits.insert("a:1".into(), 1);
            t.passed_by.insert("a:1".into(), 10);
            let op = Operation { kind: OpKind::Deposit, from: None, to: Some(AccountRef { bank: "c:1".into(), account: "1".into() }), amount: Cents(5) };
            t.queue.push(Queued { package: Package { id: "p".into(), operations: vec![op], ..Default::default() }, origin: "a:1".into() });
            t
        };
        assert_eq!(r.check_token("a:1", &good()), Ok(()));
        assert!(r.check_token("x:1", &good()).is_err(), "not a member");
        assert!(r.check_token("b:1", &good()).is_err(), "from itself");
        let bad: Vec<(&str, Box<dyn Fn(&mut Token)>)> = vec![
            ("creator", Box::new(|t| t.epoch.creator = "x:1".into())),
            ("gen 0", Box::new(|t| t.epoch.gen = 0)),
            ("huge gen", Box::new(|t| t.epoch.gen = u64::MAX)),
            ("huge hop", Box::new(|t| t.hop = MAX_COUNTER + 1)),
            ("busy ahead", Box::new(|t| t.busy_hop = 11)),
            ("visits", Box::new(|t| { t.visits.insert("a:1".into(), u32::MAX); })),
            ("visitor", Box::new(|t| { t.visits.insert("x:1".into(), 1); })),
            ("passed ahead", Box::new(|t| { t.passed_by.insert("c:1".into(), 11); })),
            ("queued twice", Box::new(|t| { let q = t.queue[0].clone(); t.queue.push(q); })),
            ("origin", Box::new(|t| t.queue[0].origin = "x:1".into())),
            ("bad package", Box::new(|t| t.queue[0].package.operations[0].amount = Cents(0))),
            ("unknown bank", Box::new(|t| t.queue[0].package.operations[0].to.as_mut().unwrap().bank = "x:1".into())),
        ];
        for (what, f) in bad {
            let mut t = good();
            f(&mut t);
            assert!(r.check_token("a:1", &t).is_err(), "{what}");
        }
        let mut t = good();
        let q = t.queue[0].clone();
        t.queue.push(Queued { origin: "c:1".into(), ..q });
        assert_eq!(r.check_token("a:1", &t), Ok(()), "the same id at another origin is another package");
        assert!(r.check_block("a:1", MAX_COUNTER).is_ok());
        assert!(r.check_block("a:1", MAX_COUNTER + 1).is_err());
        assert!(r.check_block("x:1", 2).is_err());
    }

    #[test]
    fn new_epochs_never_overflow() {
        let mut r = ring("a:1");
        let e = r.new_epoch(u64::MAX);
        assert_eq!(e.gen, MAX_COUNTER + 1, "capped, not wrapped");
    }

    #[test]
    fn loss_timeout_grows_with_banks() {
        assert!(Ring::loss_timeout(Duration::from_millis(500), 8) > Ring::loss_timeout(Duration::from_millis(500), 3));
    }
}
