//! Two-phase commit over the network: the executor prepares every bank's legs, decides at
//! the origin's record, then tells every bank to finish. The three `*_here` functions are
//! what one bank does when asked (by the network, or by itself without a network hop).

use super::record::{results_from_legs, Decided};
use super::{Outcome, Status};
use crate::api::wire::{Decide, Finish, PackageView, Prepare, Votes};
use crate::error::Error;
use crate::node::{Node, PeerError};
use crate::ring::Queued;
use hyper::Method;
use std::sync::Arc;

/// Prepares this bank's legs (participant side).
pub async fn prepare_here(node: &Arc<Node>, p: Prepare) -> Result<Votes, Error> {
    let (id, origin, legs) = (p.package.clone(), p.origin.clone(), p.legs.clone());
    let votes = node.db(move |s| s.prepare(&id, &origin, &legs)).await?;
    Ok(Votes { votes })
}

/// Applies an outcome to this bank's legs (participant side).
pub async fn finish_here(node: &Arc<Node>, package: String, outcome: Outcome) -> Result<usize, Error> {
    let id = package.clone();
    let moved = node.db(move |s| s.finish(&id, outcome)).await?;
    if moved > 0 {
        node.emit("legs_finished", format!("{package} {outcome:?} {moved}"));
    }
    Ok(moved)
}

/// Decides a package at its origin (compare-and-set); answers the decision that stands.
pub async fn decide_here(node: &Arc<Node>, d: Decide) -> Result<PackageView, Error> {
    let (id, outcome, results) = (d.package.clone(), d.outcome, d.results);
    let (r, how) = node.db(move |s| s.decide(&id, outcome, results)).await?;
    if how == Decided::Now {
        node.count(|c| match r.status {
            Status::Committed => c.committed += 1,
            _ => c.aborted += 1,
        });
        node.emit("package_decided", format!("{} {:?}", r.package.id, r.status));
        node.decided.send_modify(|n| *n += 1);
    }
    Ok(PackageView { id: r.package.id, status: r.status, results: r.results })
}

async fn prepare_at(node: Arc<Node>, bank: String, p: Prepare) -> Result<Votes, String> {
    if bank == node.me {
        return prepare_here(&node, p).await.map_err(|e| e.message);
    }
    node.call(&bank, Method::POST, "/peer/prepare", Some(&p)).await.map_err(|e| match e {
        PeerError::Unreachable(_) => format!("bank {bank} unreachable"),
        PeerError::Refused(s, m) => format!("bank {bank} refused ({s}): {m}"),
    })
}

async fn decide_at(node: &Arc<Node>, origin: &str, d: Decide) -> Result<PackageView, PeerError> {
    if origin == node.me {
        return decide_here(node, d).await.map_err(|e| PeerError::Refused(e.status(), e.message));
    }
    node.call(origin, Method::POST, "/peer/decide", Some(&d)).await
}

/// Tells one bank the outcome; a failure is left to that bank's resolver.
pub async fn finish_at(node: Arc<Node>, bank: String, f: Finish) -> bool {
    if bank == node.me {
        return finish_here(&node, f.package, f.outcome).await.is_ok();
    }
    node.call::<_, usize>(&bank, Method::POST, "/peer/finish", Some(&f)).await.is_ok()
}

/// Runs one package to its end, as far as the network allows. Returns the decided status,
/// or Pending if the origin could not be reached (its outbox will bring the package back).
pub async fn execute(node: &Arc<Node>, q: &Queued) -> Status {
    let id = q.package.id.clone();
    let by_bank = q.package.legs_by_bank();

    // Phase 1: prepare everywhere at once.
    let mut tasks = Vec::new();
    for (bank, legs) in &by_bank {
        let p = Prepare { package: id.clone(), origin: q.origin.clone(), legs: legs.clone() };
        tasks.push((bank.clone(), legs.clone(), tokio::spawn(prepare_at(node.clone(), bank.clone(), p))));
    }
    let mut failures: Vec<(u32, String)> = Vec::new();
    for (bank, legs, t) in tasks {
        match t.await.unwrap_or_else(|e| Err(format!("prepare task at {bank}: {e}"))) {
            Ok(v) => {
                assert_eq!(v.votes.len(), legs.len(), "bank {bank} voted on {} of {} legs", v.votes.len(), legs.len());
                failures.extend(v.votes.into_iter().filter(|v| !v.ok).map(|v| (v.index, v.reason.unwrap_or_default())));
            }
            Err(reason) => failures.extend(legs.iter().map(|l| (l.index, reason.clone()))),
        }
    }
    failures.sort_by_key(|f| f.0);
    let (outcome, results) = results_from_legs(q.package.operations.len(), &failures);

    // Phase 2: the origin's record decides; whoever got there first wins.
    let decided = match decide_at(node, &q.origin, Decide { package: id.clone(), outcome, results }).await {
        Ok(v) => v,
        Err(e) => {
            node.emit("decide_failed", format!("{id}: origin {} {e}", q.origin));
            return Status::Pending;
        }
    };
    let final_outcome = match decided.status {
        Status::Committed => Outcome::Commit,
        Status::Aborted => Outcome::Abort,
        Status::Pending => unreachable!("a decide call never leaves the record pending"),
    };

    // Phase 3: finish everywhere at once; a bank that misses it asks the origin later.
    let mut tasks = Vec::new();
    for bank in by_bank.keys() {
        let f = Finish { package: id.clone(), outcome: final_outcome };
        tasks.push(tokio::spawn(finish_at(node.clone(), bank.clone(), f)));
    }
    for t in tasks {
        let _ = t.await;
    }
    node.count(|c| c.executed += 1);
    decided.status
}
