//! The origin's side of a package in memory: its pending outbox and the clients waiting for
//! outcomes. Accepting a package is a group-committed write (`writer`), which updates this
//! handle right after the commit. Cheap to clone.
//!
//! The outbox (pending records of this origin, oldest first) is read at every token visit;
//! it is mirrored here so a visit does not cost a read transaction. The store stays the
//! truth: the mirror is loaded from it at start, grows only after a submission commits, and
//! shrinks only after a decide commits.

use super::record::Record;
use consortium_core::ring::Queued;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Intake {
    /// Pending records of this origin by acceptance order: a mirror of the store's outbox.
    outbox: Arc<Mutex<BTreeMap<u64, Queued>>>,
    /// Clients waiting for the outcome of a package accepted here, by package id.
    waiters: Arc<Mutex<BTreeMap<String, Arc<Waiter>>>>,
}

impl Intake {
    pub fn new(pending: Vec<Record>) -> Intake {
        let outbox = pending.into_iter().map(|r| (r.seq, Queued { package: r.package, origin: r.origin })).collect();
        Intake { outbox: Arc::new(Mutex::new(outbox)), waiters: Arc::new(Mutex::new(BTreeMap::new())) }
    }

    /// Pending packages of this origin that `queued` does not already hold, oldest first, at
    /// most `max`.
    pub fn pending(&self, queued: impl Fn(&super::PackageKey) -> bool, max: usize) -> Vec<Queued> {
        self.outbox.lock().unwrap().values().filter(|q| !queued(&q.key())).take(max).cloned().collect()
    }

    pub fn pending_count(&self) -> usize {
        self.outbox.lock().unwrap().len()
    }

    /// Acceptance numbers of the pending packages (checkers compare them with the store).
    pub fn pending_seqs(&self) -> Vec<u64> {
        self.outbox.lock().unwrap().keys().copied().collect()
    }

    /// Records that now stand decided leave the outbox.
    pub fn decided(&self, records: &[&Record]) {
        let mut outbox = self.outbox.lock().unwrap();
        for r in records {
            assert!(r.outcome().is_some(), "only decided records leave the outbox");
            outbox.remove(&r.seq);
        }
    }

    /// The outbox as the store now holds it (after a restore's reconciliation, which decides
    /// or sets aside records without the writer).
    pub fn resync(&self, pending: Vec<Record>) {
        *self.outbox.lock().unwrap() = pending.into_iter().map(|r| (r.seq, Queued { package: r.package, origin: r.origin })).collect();
    }

    /// A new record committed: it joins the outbox.
    pub fn accepted(&self, r: &Record, planted: crate::planted::PlantedBug) {
        if planted == crate::planted::PlantedBug::ForgetOutbox && r.seq % 5 == 0 {
            return;
        }
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

impl Intake {
    /// A client starts waiting for package `id` (with any others waiting for it).
    pub fn wait_for(&self, id: &str) -> Arc<Waiter> {
        self.waiters.lock().unwrap().entry(id.to_string()).or_default().clone()
    }

    /// A client stops waiting for package `id`; the last one removes the entry.
    pub fn stop_waiting(&self, id: &str, waiter: &Arc<Waiter>) {
        let mut w = self.waiters.lock().unwrap();
        // The map holds one reference, this client another: the last client removes it.
        if Arc::strong_count(waiter) == 2 {
            w.remove(id);
        }
    }

    /// Records decided here reach the clients waiting for them (the settled notice wakes them).
    pub fn tell_decided(&self, records: &[&Record]) {
        let w = self.waiters.lock().unwrap();
        for r in records {
            if let Some(waiter) = w.get(&r.package.id) {
                waiter.state.lock().unwrap().0 = Some((*r).clone());
            }
        }
    }

    /// The executor reports these packages settled: every reachable bank applied the outcome.
    pub fn tell_settled(&self, ids: &[String]) {
        let w = self.waiters.lock().unwrap();
        for id in ids {
            if let Some(waiter) = w.get(id) {
                waiter.state.lock().unwrap().1 = true;
                waiter.notify.notify_waiters();
            }
        }
    }
}
