//! Two-phase commit over the network, a batch at a time: the executor prepares every bank's
//! legs, decides at each origin's record, then tells every bank to finish. Each phase is one
//! message (and one fsync) per bank for the whole batch, and all banks are asked at once.
//! The `*_here` functions are what one bank does when asked (by the network, or by itself
//! without a network hop).

use super::intake;
use super::record::{results_from_legs, Decided, Record};
use super::spec::{Leg, PackageKey, MAX_ID_LEN};
use super::{Outcome, Status};
use crate::wire::{Decide, Finish, PackageView, Prepare, Votes};
use crate::error::Error;
use crate::node::{Node, PeerError};
use crate::ring::Queued;
use crate::store::{Write, Written};
use crate::trust::decision::Decision;
use crate::writer;
use hyper::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Most packages one 2PC round carries (one prepare, decide and finish message per bank);
/// also the most items a bank takes in one such message.
pub const MAX_BATCH: usize = 256;

fn too_many(n: usize) -> Result<(), Error> {
    if n > MAX_BATCH {
        return Err(Error::bad_request("batch_too_large", format!("{n} items in one message; at most {MAX_BATCH}")));
    }
    Ok(())
}

/// This bank's legs of a prepared package, derived here from the whole package: an executor
/// cannot hand a participant legs of its choosing.
fn legs_here(node: &Node, p: &Prepare) -> Result<Vec<Leg>, Error> {
    if !node.is_member(&p.origin) {
        return Err(Error::rule("unknown_origin", format!("origin {} is not a bank of the consortium", p.origin)));
    }
    p.package.validate(|b| node.is_member(b))?;
    let legs = p.package.legs_by_bank().remove(&node.me).unwrap_or_default();
    if legs.is_empty() {
        return Err(Error::rule("no_legs_here", format!("package {} has no leg at {}", p.package.key(&p.origin), node.me)));
    }
    Ok(legs)
}

/// Prepares this bank's legs of several packages, in one group commit (participant side).
/// `from` is the bank that asked.
pub async fn prepare_here(node: &Arc<Node>, from: &str, items: Vec<Prepare>) -> Result<Vec<Votes>, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(node.refuse(from, e));
    }
    let mut writes = Vec::with_capacity(items.len());
    for p in items {
        match legs_here(node, &p) {
            Ok(legs) => writes.push((p.origin, p.package, legs)),
            Err(e) => return Err(node.refuse(from, e)),
        }
    }
    match writer::write(node, Write::Prepare(writes)).await? {
        Written::Prepare(each) => Ok(each
            .into_iter()
            .map(|r| match r {
                Ok(votes) => Votes { votes, refused: None },
                Err(e) => {
                    node.refused(from, &e);
                    Votes { votes: Vec::new(), refused: Some(e.to_string()) }
                }
            })
            .collect()),
        other => unreachable!("a prepare answered {other:?}"),
    }
}

/// Applies outcomes to this bank's legs (participant side). Returns how many legs moved
/// money. Each outcome must come with its origin's signed decision about the package this
/// bank prepared; one that does not, or that contradicts this bank's legs, is refused in its
/// slot, and the others still apply.
pub async fn finish_here(node: &Arc<Node>, from: &str, items: Vec<Finish>) -> Result<usize, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(node.refuse(from, e));
    }
    let mut writes = Vec::with_capacity(items.len());
    for f in items {
        let key = PackageKey { origin: f.origin, id: f.id };
        let signed = key.id.len() <= MAX_ID_LEN && node.manifest.key_of(&key.origin).is_some_and(|k| f.decision.verify(k, &key));
        if !signed {
            node.refused(from, &Error::forbidden("unsigned_decision", format!("finish of {key}: no valid decision signed by its origin")));
            continue;
        }
        writes.push((key, f.decision.outcome, f.decision.digest));
    }
    apply_outcomes(node, from, writes).await
}

/// Aborts this bank's legs of a package its origin says it never recorded (so nobody can
/// commit it), under the digest this bank prepared.
pub async fn abort_orphan(node: &Arc<Node>, key: &PackageKey) -> Result<usize, Error> {
    let k = key.clone();
    let Some(digest) = node.db(move |s| s.participation(&k)).await?.and_then(|p| p.digest) else { return Ok(0) };
    let me = node.me.clone();
    apply_outcomes(node, &me, vec![(key.clone(), Outcome::Abort, digest)]).await
}

async fn apply_outcomes(node: &Arc<Node>, from: &str, writes: Vec<(PackageKey, Outcome, super::PackageDigest)>) -> Result<usize, Error> {
    if writes.is_empty() {
        return Ok(0);
    }
    let shown: Vec<(PackageKey, Outcome)> = writes.iter().map(|(k, o, _)| (k.clone(), *o)).collect();
    let each = match writer::write(node, Write::Finish(writes)).await? {
        Written::Finish(each) => each,
        other => unreachable!("a finish answered {other:?}"),
    };
    let mut moved = 0;
    for r in each {
        match r {
            Ok(n) => moved += n,
            Err(e) => node.refused(from, &e),
        }
    }
    if moved > 0 {
        node.report(crate::events::NodeEvent::LegsFinished { moved, items: shown });
    }
    Ok(moved)
}

/// How an origin shows one of its records to another bank: with its signed decision once
/// decided.
pub fn view(node: &Node, r: &Record) -> PackageView {
    let decision = r.outcome().map(|o| Decision::sign(&node.key, &r.key(), r.package.digest(&r.origin), o));
    PackageView { id: r.package.id.clone(), status: r.status, results: r.results.clone(), decision }
}

/// Decides packages at their origin, this bank (compare-and-set); answers the decisions that
/// stand. A decide this bank refuses (an unknown package, malformed results) has no answer.
pub async fn decide_here(node: &Arc<Node>, from: &str, items: Vec<Decide>) -> Result<Vec<PackageView>, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(node.refuse(from, e));
    }
    if let Some(d) = items.iter().find(|d| d.origin != node.me) {
        return Err(node.refuse(from, Error::rule("not_the_origin", format!("decide of {}@{} sent to {}: only a package's origin decides it", d.id, d.origin, node.me))));
    }
    let done = match writer::write(node, Write::Decide(items.into_iter().map(|d| (d.id, d.outcome, d.results, from.to_string())).collect())).await? {
        Written::Decide(done) => done,
        other => unreachable!("a decide answered {other:?}"),
    };
    let mut out = Vec::new();
    for d in done {
        let (r, how) = match d {
            Ok(x) => x,
            Err(e) => {
                node.refused(from, &e);
                continue;
            }
        };
        if how == Decided::Now {
            node.count(|c| match r.status {
                Status::Committed => c.committed += 1,
                _ => c.aborted += 1,
            });
            node.report(crate::events::NodeEvent::PackageDecided { key: r.key(), status: r.status });
        }
        out.push(view(node, &r));
    }
    Ok(out)
}

async fn prepare_at(node: Arc<Node>, bank: String, items: Vec<Prepare>) -> Result<Vec<Votes>, String> {
    if bank == node.me {
        let me = node.me.clone();
        return prepare_here(&node, &me, items).await.map_err(|e| e.message);
    }
    node.call(&bank, Method::POST, "/peer/prepare", Some(&items)).await.map_err(|e| match e {
        PeerError::Unreachable(_) => format!("bank {bank} unreachable"),
        PeerError::Refused(s, m) => format!("bank {bank} refused ({s}): {m}"),
    })
}

pub async fn decide_at(node: &Arc<Node>, origin: &str, items: Vec<Decide>) -> Result<Vec<PackageView>, PeerError> {
    if origin == node.me {
        return decide_here(node, origin, items).await.map_err(|e| PeerError::Refused(e.status(), e.message));
    }
    node.call(origin, Method::POST, "/peer/decide", Some(&items)).await
}

/// Tells one bank the outcomes; a failure is left to that bank's resolver.
pub async fn finish_at(node: Arc<Node>, bank: String, items: Vec<Finish>) -> bool {
    if bank == node.me {
        let me = node.me.clone();
        return finish_here(&node, &me, items).await.is_ok();
    }
    node.call::<_, usize>(&bank, Method::POST, "/peer/finish", Some(&items)).await.is_ok()
}

/// Checks a participant's answer to a prepare against what was asked: one answer per
/// package, one vote per leg in order. The answer comes from the network: a malformed one
/// counts as that bank refusing every leg, never as a reason to stop.
fn check_votes(bank: &str, asked: &[(PackageKey, Vec<Leg>)], answer: &[Votes]) -> Result<(), Error> {
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

/// Runs one batch of independent packages to their end, as far as the network allows.
/// Returns each package's decided status, or Pending if its origin could not be reached (its
/// outbox will bring the package back).
pub async fn execute_batch(node: &Arc<Node>, batch: &[Queued]) -> Vec<Status> {
    // Phase 1: prepare everywhere at once, one message per bank, each carrying the whole
    // packages (every participant derives its own legs).
    let mut prepares: BTreeMap<String, (Vec<Prepare>, Vec<(PackageKey, Vec<Leg>)>)> = BTreeMap::new();
    let mut banks_of: Vec<Vec<String>> = Vec::new();
    for q in batch {
        let by_bank = q.package.legs_by_bank();
        banks_of.push(by_bank.keys().cloned().collect());
        for (bank, legs) in by_bank {
            let (items, asked) = prepares.entry(bank).or_default();
            items.push(Prepare { origin: q.origin.clone(), package: q.package.clone() });
            asked.push((q.key(), legs));
        }
    }
    let tasks: Vec<_> = prepares
        .into_iter()
        .map(|(bank, (items, asked))| (bank.clone(), asked, tokio::spawn(prepare_at(node.clone(), bank, items))))
        .collect();
    let mut failures: BTreeMap<PackageKey, Vec<(u32, String)>> = BTreeMap::new();
    for (bank, asked, t) in tasks {
        let answer = t.await.unwrap_or_else(|e| Err(format!("prepare task at {bank}: {e}")));
        let answer = answer.and_then(|all| match check_votes(&bank, &asked, &all) {
            Ok(()) => Ok(all),
            Err(e) => {
                node.refused(&bank, &e);
                Err(e.message)
            }
        });
        match answer {
            Ok(all) => {
                for ((key, legs), v) in asked.into_iter().zip(all) {
                    let f = failures.entry(key).or_default();
                    match v.refused {
                        Some(why) => f.extend(legs.iter().map(|l| (l.index, format!("bank {bank} refused: {why}")))),
                        None => f.extend(v.votes.into_iter().filter(|v| !v.ok).map(|v| (v.index, v.reason.unwrap_or_default()))),
                    }
                }
            }
            Err(reason) => {
                for (key, legs) in asked {
                    failures.entry(key).or_default().extend(legs.into_iter().map(|l| (l.index, reason.clone())));
                }
            }
        }
    }

    // Phase 2: each origin's records decide; whoever got there first wins.
    let mut decides: BTreeMap<String, Vec<Decide>> = BTreeMap::new();
    for q in batch {
        let mut f = failures.remove(&q.key()).unwrap_or_default();
        f.sort_by_key(|x| x.0);
        let (outcome, results) = results_from_legs(q.package.operations.len(), &f);
        // Between the two phases: every vote is in, nothing is decided yet (the simulator
        // crashes executors here).
        node.emit("package_prepared", format!("{} {outcome:?}", q.key()));
        decides.entry(q.origin.clone()).or_default().push(Decide { origin: q.origin.clone(), id: q.package.id.clone(), outcome, results });
    }
    let tasks: Vec<_> = decides
        .into_iter()
        .map(|(origin, items)| {
            let n = node.clone();
            let asked: BTreeSet<String> = items.iter().map(|d| d.id.clone()).collect();
            (origin.clone(), asked, tokio::spawn(async move { decide_at(&n, &origin, items).await }))
        })
        .collect();
    let mut decided: BTreeMap<PackageKey, Decision> = BTreeMap::new();
    for (origin, asked, t) in tasks {
        match t.await {
            Ok(Ok(views)) => {
                // Only answers about what was asked, and only signed decisions, count (each
                // participant checks the signature).
                for v in views.into_iter().filter(|v| asked.contains(&v.id)) {
                    if let Some(d) = v.decision.filter(|d| Some(d.outcome) == v.status.outcome()) {
                        decided.insert(PackageKey { origin: origin.clone(), id: v.id }, d);
                    }
                }
            }
            Ok(Err(e)) => node.emit("decide_failed", format!("origin {origin}: {e}")),
            Err(e) => node.emit("decide_failed", format!("origin {origin}: {e}")),
        }
    }

    // Phase 3: finish everywhere at once; a bank that misses it asks the origin later.
    let mut finishes: BTreeMap<String, Vec<Finish>> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(batch.len());
    for (q, banks) in batch.iter().zip(&banks_of) {
        let Some(decision) = decided.get(&q.key()) else {
            statuses.push(Status::Pending);
            continue;
        };
        statuses.push(decision.outcome.status());
        for b in banks {
            finishes.entry(b.clone()).or_default().push(Finish { origin: q.origin.clone(), id: q.package.id.clone(), decision: decision.clone() });
        }
    }
    let tasks: Vec<_> = finishes.into_iter().map(|(bank, items)| tokio::spawn(finish_at(node.clone(), bank, items))).collect();
    for t in tasks {
        let _ = t.await;
    }

    // Tell each origin its packages are settled, so the waiting client is answered once
    // the balances show the outcome. Best effort: without it the client is answered a
    // moment later anyway.
    let mut settled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (q, st) in batch.iter().zip(&statuses) {
        if *st != Status::Pending {
            settled.entry(q.origin.clone()).or_default().push(q.package.id.clone());
        }
    }
    for (origin, ids) in settled {
        if origin == node.me {
            intake::tell_settled(node, &ids);
        } else {
            let n = node.clone();
            tokio::spawn(async move { n.call::<_, bool>(&origin, Method::POST, "/peer/settled", Some(&ids)).await });
        }
    }
    node.count(|c| c.executed += statuses.iter().filter(|s| **s != Status::Pending).count() as u64);
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cents;
    use crate::package::{AccountRef, OpKind, Operation, Package};

    fn q(id: &str, accounts: &[(&str, &str)]) -> Queued {
        let r = |(b, a): (&str, &str)| Some(AccountRef { bank: b.into(), account: a.into() });
        let op = Operation { kind: OpKind::Transfer, from: r(accounts[0]), to: r(accounts[1]), amount: Cents(1) };
        Queued { package: Package { id: id.into(), operations: vec![op] }, origin: "o".into() }
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
    fn answers_to_a_prepare_must_match_what_was_asked() {
        use crate::package::leg::LegVote;
        use crate::package::Side;
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

    #[test]
    fn same_account_at_different_banks_does_not_conflict() {
        let queue = vec![q("p1", &[("a", "1"), ("b", "1")]), q("p2", &[("c", "1"), ("d", "1")])];
        assert_eq!(plan_batches(&queue, 10).len(), 1);
    }
}
