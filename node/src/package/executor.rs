//! Two-phase commit over the network, a batch at a time: the executor prepares every bank's
//! legs, decides at each origin's record, then tells every bank to finish. Each phase is one
//! message (and one fsync) per bank for the whole batch, and all banks are asked at once.
//! The `*_here` functions are what one bank does when asked (by the network, or by itself
//! without a network hop).

use super::intake;
use super::record::{results_from_legs, Decided};
use super::{Outcome, Status};
use crate::api::wire::{Decide, Finish, PackageView, Prepare, Votes};
use crate::error::Error;
use crate::node::{Node, PeerError};
use crate::ring::Queued;
use crate::store::{Write, Written};
use crate::writer;
use hyper::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Prepares this bank's legs of several packages, in one group commit (participant side).
pub async fn prepare_here(node: &Arc<Node>, items: Vec<Prepare>) -> Result<Vec<Votes>, Error> {
    let write = Write::Prepare(items.into_iter().map(|p| (p.package, p.origin, p.legs)).collect());
    match writer::write(node, write).await? {
        Written::Prepare(votes) => Ok(votes.into_iter().map(|votes| Votes { votes }).collect()),
        other => unreachable!("a prepare answered {other:?}"),
    }
}

/// Applies outcomes to this bank's legs (participant side). Returns how many legs moved money.
pub async fn finish_here(node: &Arc<Node>, items: Vec<Finish>) -> Result<usize, Error> {
    let shown: Vec<String> = items.iter().map(|f| format!("{} {:?}", f.package, f.outcome)).collect();
    let moved = match writer::write(node, Write::Finish(items.into_iter().map(|f| (f.package, f.outcome)).collect())).await? {
        Written::Finish(moved) => moved,
        other => unreachable!("a finish answered {other:?}"),
    };
    if moved > 0 {
        node.emit("legs_finished", format!("{} legs: {}", moved, shown.join(", ")));
    }
    Ok(moved)
}

/// Decides packages at their origin (compare-and-set); answers the decisions that stand.
pub async fn decide_here(node: &Arc<Node>, items: Vec<Decide>) -> Result<Vec<PackageView>, Error> {
    let done = match writer::write(node, Write::Decide(items.into_iter().map(|d| (d.package, d.outcome, d.results)).collect())).await? {
        Written::Decide(done) => done,
        other => unreachable!("a decide answered {other:?}"),
    };
    let mut out = Vec::new();
    for d in done {
        let (r, how) = d?;
        if how == Decided::Now {
            node.count(|c| match r.status {
                Status::Committed => c.committed += 1,
                _ => c.aborted += 1,
            });
            node.emit("package_decided", format!("{} {:?}", r.package.id, r.status));
        }
        out.push(PackageView { id: r.package.id, status: r.status, results: r.results });
    }
    Ok(out)
}

async fn prepare_at(node: Arc<Node>, bank: String, items: Vec<Prepare>) -> Result<Vec<Votes>, String> {
    if bank == node.me {
        return prepare_here(&node, items).await.map_err(|e| e.message);
    }
    node.call(&bank, Method::POST, "/peer/prepare", Some(&items)).await.map_err(|e| match e {
        PeerError::Unreachable(_) => format!("bank {bank} unreachable"),
        PeerError::Refused(s, m) => format!("bank {bank} refused ({s}): {m}"),
    })
}

pub async fn decide_at(node: &Arc<Node>, origin: &str, items: Vec<Decide>) -> Result<Vec<PackageView>, PeerError> {
    if origin == node.me {
        return decide_here(node, items).await.map_err(|e| PeerError::Refused(e.status(), e.message));
    }
    node.call(origin, Method::POST, "/peer/decide", Some(&items)).await
}

/// Tells one bank the outcomes; a failure is left to that bank's resolver.
pub async fn finish_at(node: Arc<Node>, bank: String, items: Vec<Finish>) -> bool {
    if bank == node.me {
        return finish_here(&node, items).await.is_ok();
    }
    node.call::<_, usize>(&bank, Method::POST, "/peer/finish", Some(&items)).await.is_ok()
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
    // Phase 1: prepare everywhere at once, one message per bank.
    let mut prepares: BTreeMap<String, Vec<Prepare>> = BTreeMap::new();
    let mut banks_of: Vec<Vec<String>> = Vec::new();
    for q in batch {
        let by_bank = q.package.legs_by_bank();
        banks_of.push(by_bank.keys().cloned().collect());
        for (bank, legs) in by_bank {
            prepares.entry(bank).or_default().push(Prepare { package: q.package.id.clone(), origin: q.origin.clone(), legs });
        }
    }
    let tasks: Vec<_> = prepares
        .into_iter()
        .map(|(bank, items)| {
            let expect: Vec<(String, Vec<u32>)> = items.iter().map(|p| (p.package.clone(), p.legs.iter().map(|l| l.index).collect())).collect();
            (bank.clone(), expect, tokio::spawn(prepare_at(node.clone(), bank, items)))
        })
        .collect();
    let mut failures: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for (bank, expect, t) in tasks {
        match t.await.unwrap_or_else(|e| Err(format!("prepare task at {bank}: {e}"))) {
            Ok(all) => {
                assert_eq!(all.len(), expect.len(), "bank {bank} answered {} of {} prepares", all.len(), expect.len());
                for ((id, legs), v) in expect.into_iter().zip(all) {
                    assert_eq!(v.votes.len(), legs.len(), "bank {bank} voted on {} of {} legs of {id}", v.votes.len(), legs.len());
                    let f = failures.entry(id).or_default();
                    f.extend(v.votes.into_iter().filter(|v| !v.ok).map(|v| (v.index, v.reason.unwrap_or_default())));
                }
            }
            Err(reason) => {
                for (id, legs) in expect {
                    failures.entry(id).or_default().extend(legs.into_iter().map(|i| (i, reason.clone())));
                }
            }
        }
    }

    // Phase 2: each origin's records decide; whoever got there first wins.
    let mut decides: BTreeMap<String, Vec<Decide>> = BTreeMap::new();
    for q in batch {
        let mut f = failures.remove(&q.package.id).unwrap_or_default();
        f.sort_by_key(|x| x.0);
        let (outcome, results) = results_from_legs(q.package.operations.len(), &f);
        // Between the two phases: every vote is in, nothing is decided yet (the simulator
        // crashes executors here).
        node.emit("package_prepared", format!("{} {outcome:?}", q.package.id));
        decides.entry(q.origin.clone()).or_default().push(Decide { package: q.package.id.clone(), outcome, results });
    }
    let tasks: Vec<_> = decides
        .into_iter()
        .map(|(origin, items)| {
            let n = node.clone();
            (origin.clone(), tokio::spawn(async move { decide_at(&n, &origin, items).await }))
        })
        .collect();
    let mut decided: BTreeMap<String, Status> = BTreeMap::new();
    for (origin, t) in tasks {
        match t.await {
            Ok(Ok(views)) => decided.extend(views.into_iter().map(|v| (v.id, v.status))),
            Ok(Err(e)) => node.emit("decide_failed", format!("origin {origin}: {e}")),
            Err(e) => node.emit("decide_failed", format!("origin {origin}: {e}")),
        }
    }

    // Phase 3: finish everywhere at once; a bank that misses it asks the origin later.
    let mut finishes: BTreeMap<String, Vec<Finish>> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(batch.len());
    for (q, banks) in batch.iter().zip(&banks_of) {
        let status = decided.get(&q.package.id).copied().unwrap_or(Status::Pending);
        statuses.push(status);
        let outcome = match status {
            Status::Committed => Outcome::Commit,
            Status::Aborted => Outcome::Abort,
            Status::Pending => continue,
        };
        for b in banks {
            finishes.entry(b.clone()).or_default().push(Finish { package: q.package.id.clone(), outcome });
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
    fn same_account_at_different_banks_does_not_conflict() {
        let queue = vec![q("p1", &[("a", "1"), ("b", "1")]), q("p2", &[("c", "1"), ("d", "1")])];
        assert_eq!(plan_batches(&queue, 10).len(), 1);
    }
}
