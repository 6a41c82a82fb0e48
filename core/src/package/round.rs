//! One round of two-phase commit over a batch of independent packages, as plain data: what
//! to send in each phase, and what the answers mean. The executor (`node::package::executor`)
//! only carries the messages and feeds the answers back.
//!
//! 1. `Round::new` says which prepares go to which bank: one message per bank, each carrying
//!    the whole packages (every participant derives its own legs).
//! 2. `on_votes` takes each bank's answer (or why there was none); a malformed answer counts
//!    as that bank refusing every leg it was asked about.
//! 3. `decides` gives each origin's decide message, the outcome following from the votes.
//! 4. `on_decided` takes each origin's answer: only signed decisions about what was asked,
//!    agreeing with the status, count.
//! 5. `finish` gives each package's status (Pending where no decision came back: its
//!    origin's outbox brings it back), the finish messages, and which origins to tell.

use super::record::{results_from_legs, Status};
use super::spec::{Leg, PackageKey};
use super::Outcome;
use crate::error::Error;
use crate::ring::Queued;
use crate::trust::decision::Decision;
use crate::wire::{Decide, Finish, PackageView, Prepare, Votes};
use std::collections::{BTreeMap, BTreeSet};

/// Most packages one 2PC round carries (one prepare, decide and finish message per bank);
/// also the most items a bank takes in one such message.
pub const MAX_BATCH: usize = 256;

pub struct Round {
    batch: Vec<Queued>,
    /// Per bank: the packages it was asked to prepare, with the legs it holds of each.
    asked: BTreeMap<String, Vec<(PackageKey, Vec<Leg>)>>,
    /// Banks whose answer to the prepare has not been fed in yet.
    waiting: BTreeSet<String>,
    /// Per package: its legs that did not prepare, (operation index, reason).
    failures: BTreeMap<PackageKey, Vec<(u32, String)>>,
    decided: BTreeMap<PackageKey, Decision>,
}

/// What ends a round: each package's status in batch order, the finish messages per bank,
/// and the ids to report settled per origin.
pub struct Finished {
    pub statuses: Vec<Status>,
    pub finishes: BTreeMap<String, Vec<Finish>>,
    pub settled: BTreeMap<String, Vec<String>>,
}

impl Round {
    /// A round over `batch`; returns it and the prepare message of each bank.
    pub fn new(batch: &[Queued]) -> (Round, BTreeMap<String, Vec<Prepare>>) {
        let mut prepares: BTreeMap<String, Vec<Prepare>> = BTreeMap::new();
        let mut asked: BTreeMap<String, Vec<(PackageKey, Vec<Leg>)>> = BTreeMap::new();
        for q in batch {
            for (bank, legs) in q.package.legs_by_bank() {
                prepares.entry(bank.clone()).or_default().push(Prepare { origin: q.origin.clone(), package: q.package.clone() });
                asked.entry(bank).or_default().push((q.key(), legs));
            }
        }
        let waiting = asked.keys().cloned().collect();
        (Round { batch: batch.to_vec(), asked, waiting, failures: BTreeMap::new(), decided: BTreeMap::new() }, prepares)
    }

    /// `bank`'s answer to its prepare: its votes, or why there are none (unreachable, refused).
    /// Returns the refusal to report when the answer itself was malformed.
    pub fn on_votes(&mut self, bank: &str, answer: Result<Vec<Votes>, String>) -> Result<(), Error> {
        assert!(self.waiting.remove(bank), "one answer per bank asked, and only from a bank asked ({bank})");
        let asked = self.asked.get(bank).expect("a bank asked");
        let (answer, malformed) = match answer.map(|all| check_votes(bank, asked, &all).map(|()| all)) {
            Ok(Ok(all)) => (Ok(all), None),
            Ok(Err(e)) => (Err(e.message.clone()), Some(e)),
            Err(reason) => (Err(reason), None),
        };
        match answer {
            Ok(all) => {
                for ((key, legs), v) in asked.iter().zip(all) {
                    let f = self.failures.entry(key.clone()).or_default();
                    match v.refused {
                        Some(why) => f.extend(legs.iter().map(|l| (l.index, format!("bank {bank} refused: {why}")))),
                        None => f.extend(v.votes.into_iter().filter(|v| !v.ok).map(|v| (v.index, v.reason.unwrap_or_default()))),
                    }
                }
            }
            Err(reason) => {
                for (key, legs) in asked {
                    self.failures.entry(key.clone()).or_default().extend(legs.iter().map(|l| (l.index, reason.clone())));
                }
            }
        }
        malformed.map_or(Ok(()), Err)
    }

    /// Phase 2, once every bank answered: each origin's decide message, and each package's
    /// outcome as the votes make it (in batch order).
    pub fn decides(&mut self) -> (BTreeMap<String, Vec<Decide>>, Vec<(PackageKey, Outcome)>) {
        assert!(self.waiting.is_empty(), "decides only once every prepare is answered");
        let mut decides: BTreeMap<String, Vec<Decide>> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(self.batch.len());
        for q in &self.batch {
            let mut f = self.failures.remove(&q.key()).unwrap_or_default();
            f.sort_by_key(|x| x.0);
            let (outcome, results) = results_from_legs(q.package.operations.len(), &f);
            outcomes.push((q.key(), outcome));
            decides.entry(q.origin.clone()).or_default().push(Decide { origin: q.origin.clone(), id: q.package.id.clone(), outcome, results });
        }
        (decides, outcomes)
    }

    /// `origin`'s answer to its decides. Only answers about packages of this round from that
    /// origin, carrying a decision that agrees with their status, count (each participant
    /// checks the signature itself).
    pub fn on_decided(&mut self, origin: &str, views: Vec<PackageView>) {
        let asked: BTreeSet<&str> = self.batch.iter().filter(|q| q.origin == origin).map(|q| q.package.id.as_str()).collect();
        for v in views.into_iter().filter(|v| asked.contains(v.id.as_str())) {
            if let Some(d) = v.decision.filter(|d| Some(d.outcome) == v.status.outcome()) {
                self.decided.insert(PackageKey { origin: origin.to_string(), id: v.id }, d);
            }
        }
    }

    /// Phase 3: what to tell every bank, and how each package stands.
    pub fn finish(self) -> Finished {
        let mut out = Finished { statuses: Vec::with_capacity(self.batch.len()), finishes: BTreeMap::new(), settled: BTreeMap::new() };
        for q in &self.batch {
            let Some(decision) = self.decided.get(&q.key()) else {
                out.statuses.push(Status::Pending);
                continue;
            };
            out.statuses.push(decision.outcome.status());
            for bank in q.package.legs_by_bank().into_keys() {
                out.finishes.entry(bank).or_default().push(Finish { origin: q.origin.clone(), id: q.package.id.clone(), decision: decision.clone() });
            }
            out.settled.entry(q.origin.clone()).or_default().push(q.package.id.clone());
        }
        out
    }
}

/// Splits a queue into batches that can each run as one 2PC round without changing any
/// outcome: a package goes in the batch after the last one holding a package it conflicts
/// with. Two packages conflict when they touch the same account and one of them debits it
/// (credits only add to `blocked`, so credits to one account commute). Conflicting packages
/// keep their queue order; independent ones may share a batch.
pub fn plan_batches(queue: &[Queued], max_batch: usize) -> Vec<Vec<Queued>> {
    type Accounts = BTreeSet<(String, String)>;
    let mut batches: Vec<Vec<Queued>> = Vec::new();
    // Per batch: accounts debited, accounts credited.
    let mut touched: Vec<(Accounts, Accounts)> = Vec::new();
    for q in queue {
        let key = |r: &crate::package::AccountRef| (r.bank.clone(), r.account.clone());
        let debits: Accounts = q.package.operations.iter().filter_map(|op| op.from.as_ref()).map(key).collect();
        let credits: Accounts = q.package.operations.iter().filter_map(|op| op.to.as_ref()).map(key).collect();
        let conflicts = |(d, c): &(Accounts, Accounts)| {
            !debits.is_disjoint(d) || !debits.is_disjoint(c) || !credits.is_disjoint(d)
        };
        let after = touched.iter().rposition(conflicts).map_or(0, |i| i + 1);
        let slot = (after..batches.len()).find(|&i| batches[i].len() < max_batch).unwrap_or(batches.len());
        if slot == batches.len() {
            batches.push(Vec::new());
            touched.push(Default::default());
        }
        batches[slot].push(q.clone());
        touched[slot].0.extend(debits);
        touched[slot].1.extend(credits);
    }
    batches
}

/// Checks a participant's answer to a prepare against what was asked: one answer per
/// package, one vote per leg in order. The answer comes from the network: a malformed one
/// counts as that bank refusing every leg, never as a reason to stop.
pub fn check_votes(bank: &str, asked: &[(PackageKey, Vec<Leg>)], answer: &[Votes]) -> Result<(), Error> {
    let bad = |m: String| Err(Error::bad_request("malformed_votes", format!("bank {bank}: {m}")));
    if answer.len() != asked.len() {
        return bad(format!("answered {} of {} prepares", answer.len(), asked.len()));
    }
    for ((key, legs), v) in asked.iter().zip(answer) {
        if v.refused.is_some() {
            if !v.votes.is_empty() {
                return bad(format!("refused {key} and voted on it"));
            }
            continue;
        }
        if v.votes.len() != legs.len() || v.votes.iter().zip(legs).any(|(v, l)| (v.index, v.side) != (l.index, l.side)) {
            return bad(format!("votes on {key} do not match its legs"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cents;
    use crate::package::leg::LegVote;
    use crate::package::{AccountRef, OpKind, Operation, Package, Side};
    use crate::trust::keys::BankKey;

    fn at(bank: &str, account: &str) -> Option<AccountRef> {
        Some(AccountRef { bank: bank.into(), account: account.into() })
    }

    /// p: a:1 → b:1 (origin a), q: deposit at b:2 (origin b).
    fn batch() -> Vec<Queued> {
        let p = Package { id: "p".into(), operations: vec![Operation { kind: OpKind::Transfer, from: at("a", "1"), to: at("b", "1"), amount: Cents(5) }], ..Default::default() };
        let q = Package { id: "q".into(), operations: vec![Operation { kind: OpKind::Deposit, from: None, to: at("b", "2"), amount: Cents(7) }], ..Default::default() };
        vec![Queued { package: p, origin: "a".into() }, Queued { package: q, origin: "b".into() }]
    }

    fn yes(legs: &[(u32, Side)]) -> Votes {
        Votes { votes: legs.iter().map(|&(index, side)| LegVote { index, side, ok: true, reason: None }).collect(), refused: None }
    }

    fn signed(key: &BankKey, q: &Queued, outcome: Outcome) -> PackageView {
        let d = Decision::sign(key, &q.key(), q.package.digest(&q.origin), outcome);
        PackageView { id: q.package.id.clone(), status: outcome.status(), results: Vec::new(), decision: Some(d) }
    }

    #[test]
    fn one_prepare_per_bank_then_decides_per_origin_then_finishes_per_bank() {
        let b = batch();
        let (mut r, prepares) = Round::new(&b);
        assert_eq!(prepares.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(prepares["b"].len(), 2, "b holds legs of both packages: one message");
        r.on_votes("a", Ok(vec![yes(&[(0, Side::Debit)])])).unwrap();
        r.on_votes("b", Ok(vec![yes(&[(0, Side::Credit)]), yes(&[(0, Side::Credit)])])).unwrap();
        let (decides, outcomes) = r.decides();
        assert_eq!(outcomes.iter().map(|(_, o)| *o).collect::<Vec<_>>(), [Outcome::Commit, Outcome::Commit]);
        assert_eq!((decides["a"].len(), decides["b"].len()), (1, 1));
        let (ka, kb) = (BankKey::from_seed([1; 32]), BankKey::from_seed([2; 32]));
        r.on_decided("a", vec![signed(&ka, &b[0], Outcome::Commit)]);
        r.on_decided("b", vec![signed(&kb, &b[1], Outcome::Commit)]);
        let f = r.finish();
        assert_eq!(f.statuses, [Status::Committed, Status::Committed]);
        assert_eq!(f.finishes["b"].len(), 2);
        assert_eq!(f.settled["a"], ["p"]);
    }

    #[test]
    fn a_silent_or_lying_bank_aborts_what_it_holds_and_nothing_else() {
        let b = batch();
        let (mut r, _) = Round::new(&b);
        r.on_votes("a", Err("bank a unreachable".into())).unwrap();
        // b answers for one package only: malformed, so it refuses both.
        let e = r.on_votes("b", Ok(vec![yes(&[(0, Side::Credit)])])).unwrap_err();
        assert_eq!(e.code, "malformed_votes");
        let (decides, outcomes) = r.decides();
        assert!(outcomes.iter().all(|(_, o)| *o == Outcome::Abort));
        let reason = decides["a"][0].results[0].reason.clone().unwrap();
        assert!(reason.contains("unreachable"), "the first failure of the operation is its reason: {reason}");
    }

    #[test]
    fn only_decisions_asked_for_and_agreeing_with_their_status_count() {
        let b = batch();
        let (mut r, _) = Round::new(&b);
        r.on_votes("a", Ok(vec![yes(&[(0, Side::Debit)])])).unwrap();
        r.on_votes("b", Ok(vec![yes(&[(0, Side::Credit)]), yes(&[(0, Side::Credit)])])).unwrap();
        r.decides();
        let ka = BankKey::from_seed([1; 32]);
        let mut lying = signed(&ka, &b[0], Outcome::Commit);
        lying.status = Status::Aborted;
        r.on_decided("a", vec![lying, signed(&ka, &b[1], Outcome::Commit)]);
        let f = r.finish();
        assert_eq!(f.statuses, [Status::Pending, Status::Pending], "a status the decision contradicts, and a package of b answered by a");
        assert!(f.finishes.is_empty() && f.settled.is_empty());
    }

    #[test]
    fn answers_to_a_prepare_must_match_what_was_asked() {
        let leg = |index: u32, side: Side| Leg { index, side, account: "1".into(), amount: Cents(1) };
        let vote = |index: u32, side: Side| LegVote { index, side, ok: true, reason: None };
        let asked = vec![(PackageKey::new("o", "p"), vec![leg(0, Side::Debit), leg(1, Side::Credit)]), (PackageKey::new("o2", "p"), vec![leg(0, Side::Credit)])];
        let good = vec![
            Votes { votes: vec![vote(0, Side::Debit), vote(1, Side::Credit)], refused: None },
            Votes { votes: vec![], refused: Some("package_mismatch".into()) },
        ];
        assert!(check_votes("b", &asked, &good).is_ok());
        let mut short = good.clone();
        short.pop();
        assert!(check_votes("b", &asked, &short).is_err(), "one answer missing");
        let mut swapped = good.clone();
        swapped[0].votes.reverse();
        assert!(check_votes("b", &asked, &swapped).is_err(), "votes out of order");
        let mut extra = good.clone();
        extra[0].votes.push(vote(2, Side::Debit));
        assert!(check_votes("b", &asked, &extra).is_err(), "a vote on a leg never asked");
        let mut both = good;
        both[1].votes.push(vote(0, Side::Credit));
        assert_eq!(check_votes("b", &asked, &both).unwrap_err().code, "malformed_votes", "refused and voted");
    }

    fn q(id: &str, accounts: &[(&str, &str)]) -> Queued {
        let r = |(b, a): (&str, &str)| Some(AccountRef { bank: b.into(), account: a.into() });
        let op = Operation { kind: OpKind::Transfer, from: r(accounts[0]), to: r(accounts[1]), amount: Cents(1) };
        Queued { package: Package { id: id.into(), operations: vec![op], ..Default::default() }, origin: "o".into() }
    }

    fn ids(b: &[Vec<Queued>]) -> Vec<Vec<&str>> {
        b.iter().map(|x| x.iter().map(|q| q.package.id.as_str()).collect()).collect()
    }

    #[test]
    fn conflicting_packages_keep_their_order_independent_ones_share_a_batch() {
        let queue = vec![
            q("p1", &[("a", "1"), ("b", "1")]),
            q("p2", &[("a", "2"), ("b", "2")]),
            q("p3", &[("b", "1"), ("c", "1")]), // conflicts with p1
            q("p4", &[("c", "9"), ("d", "9")]), // independent: joins the first batch
            q("p5", &[("c", "1"), ("a", "2")]), // conflicts with p3 (and p2)
        ];
        assert_eq!(ids(&plan_batches(&queue, 10)), vec![vec!["p1", "p2", "p4"], vec!["p3"], vec!["p5"]]);
        assert_eq!(ids(&plan_batches(&queue, 2)), vec![vec!["p1", "p2"], vec!["p3", "p4"], vec!["p5"]]);
    }

    #[test]
    fn credits_to_one_account_commute() {
        let queue = vec![q("p1", &[("a", "1"), ("z", "1")]), q("p2", &[("b", "1"), ("z", "1")]), q("p3", &[("z", "1"), ("c", "1")])];
        assert_eq!(ids(&plan_batches(&queue, 10)), vec![vec!["p1", "p2"], vec!["p3"]], "a debit waits for the credits before it");
    }

    #[test]
    fn same_account_at_different_banks_does_not_conflict() {
        let queue = vec![q("p1", &[("a", "1"), ("b", "1")]), q("p2", &[("c", "1"), ("d", "1")])];
        assert_eq!(plan_batches(&queue, 10).len(), 1);
    }
}
