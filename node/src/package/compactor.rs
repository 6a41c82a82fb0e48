//! The compactor: keeps package history from growing forever, in the background, a bounded
//! batch at a time (`compact_batch` of each kind per step, every `compact_every_ms`). The
//! rules, and why they keep atomicity, are in `consortium_core::package::compact`; this task
//! only moves time, messages and bytes:
//!
//! 1. As a participant: drop rows and legs whose outcome is applied and whose package can no
//!    longer be prepared here (`Store::compact_participant`).
//! 2. As an origin: walk the decided records that expired long enough ago (a cursor over
//!    them, so records waiting on a bank that is down do not starve the rest); ask the banks
//!    that have not acknowledged an outcome for it (`POST /peer/acks`, a signed request from
//!    this origin, carrying its signed decision, which the participant applies if it had not:
//!    a lost finish is repaired here too); record the acks; drop the records every bank
//!    acknowledged (`Store::drop_records`, which checks the rule again in its transaction).
//!
//! Lost or duplicated messages cost only a later retry: asking is idempotent, acks are a set,
//! and a record is dropped only when the store itself sees every ack.

use super::executor::Executor;
use crate::config::ms;
use crate::store::When;
use crate::wire::Finish;
use consortium_core::package::compact::{self, Ack, Verdict};
use hyper::Method;
use std::collections::BTreeMap;

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stepped {
    pub participations: usize,
    pub asked: usize,
    pub acked: usize,
    pub records: usize,
}

/// The compactor's task: runs until the node is dropped (never, with `compact_every_ms` 0).
pub async fn run(ex: Executor) {
    let every = ex.ctx.timing.compact_every_ms;
    if every == 0 {
        return;
    }
    let mut cursor = None;
    loop {
        tokio::time::sleep(ms(every) + ex.ctx.jitter(ms(every) / 4)).await;
        step(&ex, &mut cursor).await;
    }
}

/// One bounded step. `cursor` is where the walk over this origin's decided records resumes.
pub async fn step(ex: &Executor, cursor: &mut Option<(u64, String)>) -> Stepped {
    let ctx = &ex.ctx;
    let when = When { now_ms: ctx.clock.now_ms(), skew_ms: ctx.timing.clock_skew_ms };
    let batch = ctx.timing.compact_batch.max(1);
    let mut done = Stepped::default();
    match ex.storage.db(move |s| s.compact_participant(when.now_ms, batch)).await {
        Ok(n) => done.participations = n,
        Err(e) => ctx.emit("compact_failed", format!("participant rows: {e}")),
    }
    // Ripe records expired at least 2 × skew ago: E + 2·skew + 1 <= now.
    let Some(max_expiry) = when.now_ms.checked_sub(compact::origin_ripe_at(0, when.skew_ms)) else { return done.counted(ex) };
    let after = cursor.clone();
    let list = match ex.storage.db(move |s| s.settling(after, max_expiry, batch)).await {
        Ok(l) => l,
        Err(e) => {
            ctx.emit("compact_failed", format!("decided records: {e}"));
            return done.counted(ex);
        }
    };
    *cursor = match list.last() {
        Some((r, _)) if list.len() == batch => Some((r.package.expires_ms, r.package.id.clone())),
        _ => None, // the end of the walk: start over next step
    };
    let mut ask: BTreeMap<String, Vec<Finish>> = BTreeMap::new();
    for (r, acked) in &list {
        if let Verdict::Ask(missing) = compact::origin_verdict(r, acked, when.now_ms, when.skew_ms) {
            let Some(decision) = ex.view(r).decision else { continue };
            for bank in missing {
                ask.entry(bank).or_default().push(Finish { origin: ctx.me.clone(), id: r.package.id.clone(), decision: decision.clone() });
            }
        }
    }
    let mut acks = Vec::new();
    let tasks: Vec<_> = ask
        .into_iter()
        .map(|(bank, items)| {
            let ex = ex.clone();
            done.asked += items.len();
            tokio::spawn(async move {
                let ids: Vec<String> = items.iter().map(|f| f.id.clone()).collect();
                let answer = if bank == ex.ctx.me {
                    let me = ex.ctx.me.clone();
                    ex.acks_here(&me, items).await.ok()
                } else {
                    ex.peers.call::<_, Vec<Ack>>(&bank, Method::POST, "/peer/acks", Some(&items)).await.ok()
                };
                // An answer of another length is not an answer (it comes from the network).
                match answer {
                    Some(a) if a.len() == ids.len() => ids.into_iter().zip(a).filter(|(_, a)| a.counts()).map(|(id, _)| (id, bank.clone())).collect(),
                    _ => Vec::new(),
                }
            })
        })
        .collect();
    for t in tasks {
        acks.extend(t.await.unwrap_or_default());
    }
    if !acks.is_empty() {
        match ex.storage.db(move |s| s.record_acks(&acks)).await {
            Ok(n) => done.acked = n,
            Err(e) => ctx.emit("compact_failed", format!("acks: {e}")),
        }
    }
    let ids: Vec<String> = list.into_iter().map(|(r, _)| r.package.id).collect();
    if !ids.is_empty() {
        match ex.storage.db(move |s| s.drop_records(&ids, when)).await {
            Ok(n) => done.records = n,
            Err(e) => ctx.emit("compact_failed", format!("records: {e}")),
        }
    }
    done.counted(ex)
}

impl Stepped {
    fn counted(self, ex: &Executor) -> Stepped {
        if self.records + self.participations > 0 {
            ex.ctx.count(|c| {
                c.compacted_records += self.records as u64;
                c.compacted_participations += self.participations as u64;
            });
            ex.ctx.emit("compacted", format!("{} records, {} participations", self.records, self.participations));
        }
        self
    }
}
