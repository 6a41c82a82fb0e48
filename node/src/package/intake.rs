//! Accepting packages at their origin: group commit, and the outbox kept in memory.
//!
//! Every accepted package must be on disk before the client hears of it, and one fsync per
//! package made the origin's store the bottleneck under load: concurrent submissions queued
//! behind each other's commits (8 ms per submission at 64 clients), and the executor's
//! prepares and decides queued behind them. So submissions go through one task that commits
//! whatever has queued up meanwhile in a single transaction.
//!
//! The outbox (pending records of this origin, oldest first) is read at every token visit;
//! it is mirrored here so a visit does not cost a read transaction. The store stays the
//! truth: the mirror is loaded from it at start, grows only after a submission commits, and
//! shrinks only after a decide commits.

use super::record::Record;
use super::Package;
use crate::error::Error;
use crate::node::Node;
use crate::ring::Queued;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most submissions one transaction takes (bounds the transaction and the wait of the first).
const MAX_GROUP: usize = 512;

type Answer = Result<(Record, bool), Error>;

struct Submission {
    package: Package,
    reply: oneshot::Sender<Answer>,
}

pub struct Intake {
    tx: mpsc::UnboundedSender<Submission>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Submission>>>,
    /// Pending records of this origin by acceptance order: a mirror of the store's outbox.
    outbox: Mutex<BTreeMap<u64, Queued>>,
}

impl Intake {
    pub fn new(pending: Vec<Record>) -> Intake {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = pending.into_iter().map(|r| (r.seq, Queued { package: r.package, origin: r.origin })).collect();
        Intake { tx, rx: Mutex::new(Some(rx)), outbox: Mutex::new(outbox) }
    }

    /// Pending packages of this origin, oldest first, at most `max`.
    pub fn pending(&self, max: usize) -> Vec<Queued> {
        self.outbox.lock().unwrap().values().take(max).cloned().collect()
    }

    /// Acceptance numbers of the pending packages (checkers compare them with the store).
    pub fn pending_seqs(&self) -> Vec<u64> {
        self.outbox.lock().unwrap().keys().copied().collect()
    }

    /// Records that now stand decided leave the outbox.
    pub fn decided(&self, records: &[&Record]) {
        let mut outbox = self.outbox.lock().unwrap();
        for r in records {
            debug_assert!(r.outcome().is_some(), "only decided records leave the outbox");
            outbox.remove(&r.seq);
        }
    }

    fn accepted(&self, r: &Record) {
        let old = self.outbox.lock().unwrap().insert(r.seq, Queued { package: r.package.clone(), origin: r.origin.clone() });
        assert!(old.is_none(), "record sequence {} accepted twice", r.seq);
    }
}

/// The clients waiting at this origin for one package: what they learned so far, so that
/// answering them needs no read of the store.
#[derive(Default)]
pub struct Waiter {
    pub notify: tokio::sync::Notify,
    state: Mutex<(Option<Record>, bool)>,
}

impl Waiter {
    /// The record as decided here, and whether its executor reported it settled.
    pub fn state(&self) -> (Option<Record>, bool) {
        self.state.lock().unwrap().clone()
    }
}

/// Records decided here reach the clients waiting for them (the settled notice wakes them).
pub fn tell_decided(node: &Node, records: &[&Record]) {
    let w = node.waiters.lock().unwrap();
    for r in records {
        if let Some(waiter) = w.get(&r.package.id) {
            waiter.state.lock().unwrap().0 = Some((*r).clone());
        }
    }
}

/// The executor reports these packages settled: every reachable bank applied the outcome.
pub fn tell_settled(node: &Node, ids: &[String]) {
    let w = node.waiters.lock().unwrap();
    for id in ids {
        if let Some(waiter) = w.get(id) {
            waiter.state.lock().unwrap().1 = true;
            waiter.notify.notify_waiters();
        }
    }
}

/// Accepts a package durably (with whatever else is being submitted at the same moment).
/// Returns the record and whether it is new.
pub async fn submit(node: &Arc<Node>, package: Package) -> Answer {
    let (reply, answer) = oneshot::channel();
    node.intake.tx.send(Submission { package, reply }).map_err(|_| Error::internal("intake stopped"))?;
    answer.await.map_err(|_| Error::internal("intake stopped before answering"))?
}

/// The one task that commits submissions, a group at a time.
pub async fn run(node: Arc<Node>) {
    let Some(mut rx) = node.intake.rx.lock().unwrap().take() else { return };
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(s) => group.push(s),
                Err(_) => break,
            }
        }
        let packages: Vec<Package> = group.iter().map(|s| s.package.clone()).collect();
        let me = node.me.clone();
        match node.db(move |s| s.submit_many(&packages, &me)).await {
            Ok(answers) => {
                assert_eq!(answers.len(), group.len(), "one answer per submission");
                let mut any_new = false;
                for (s, answer) in group.into_iter().zip(answers) {
                    if let Ok((r, true)) = &answer {
                        node.intake.accepted(r);
                        node.count(|c| c.submitted += 1);
                        node.emit("package_accepted", r.package.id.clone());
                        any_new = true;
                    }
                    let _ = s.reply.send(answer); // the client may have gone; the package stays
                }
                if any_new {
                    node.work_arrived.notify_one();
                }
            }
            Err(e) => {
                for s in group {
                    let _ = s.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
