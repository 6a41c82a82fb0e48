//! The task of a restored bank: asks every other bank what it holds that names this one
//! (`GET /peer/reconcile`), until all have answered; then applies `reconcile::plan` in one
//! transaction, which clears the durable flag, and opens the intake. A restart meanwhile
//! starts over (the flag is on disk; the answers are asked again).

use super::reconcile::{self, Local};
use crate::config::ms;
use crate::context::Context;
use crate::package::intake::Intake;
use crate::peers::Peers;
use crate::store::Storage;
use crate::wire::ReconcileAnswer;
use hyper::Method;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub async fn run(ctx: Context, storage: Storage, peers: Peers, intake: Intake) {
    let others: Vec<String> = ctx.members().into_iter().filter(|m| *m != ctx.me).collect();
    let mut answers: BTreeMap<String, ReconcileAnswer> = BTreeMap::new();
    let mut pause = ms(100);
    ctx.emit("reconciling", format!("restored from a backup: asking {} banks for what names this one", others.len()));
    while ctx.reconciling.load(Ordering::Relaxed) {
        for b in &others {
            if answers.contains_key(b) {
                continue;
            }
            match peers.call::<(), ReconcileAnswer>(b, Method::GET, "/peer/reconcile", None).await {
                Ok(a) => {
                    answers.insert(b.clone(), a);
                }
                Err(e) => tracing::info!(bank = %b, "reconciliation: no answer yet ({e:?})"),
            }
        }
        if answers.len() == others.len() {
            match apply(&ctx, &storage, &answers).await {
                Ok(true) => {
                    let pending = storage.db(|s| s.outbox()).await;
                    if let Ok(pending) = pending {
                        intake.resync(pending);
                    }
                    ctx.reconciling.store(false, Ordering::Relaxed);
                    ctx.emit("reconciled", "every bank answered: accepting packages again".to_string());
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::error!("reconciliation: {e}"),
            }
        }
        tokio::time::sleep(pause + ctx.jitter(pause / 4)).await;
        pause = (pause * 2).min(ms(2_000));
    }
}

/// Looks up what the answers name here, plans, applies. True once done.
async fn apply(ctx: &Context, storage: &Storage, answers: &BTreeMap<String, ReconcileAnswer>) -> Result<bool, crate::error::Error> {
    let me = ctx.me.clone();
    let mine: Vec<String> = answers.values().flat_map(|a| a.participated.iter().map(|p| p.id.clone())).collect();
    let theirs: Vec<_> = answers.iter().flat_map(|(b, a)| a.records.iter().map(move |r| r.package.key(b))).collect();
    let local = storage
        .db(move |s| {
            let mut l = Local::default();
            for id in mine {
                if let Some(r) = s.record(&id)? {
                    l.records.insert(id, r);
                }
            }
            for key in theirs {
                if let (_, Some(p)) = s.legs_of_package(&key)? {
                    if let Some(o) = p.outcome {
                        l.applied.insert(key, o);
                    }
                }
            }
            Ok(l)
        })
        .await?;
    let manifest = ctx.manifest.clone();
    let steps = reconcile::plan(&me, &|b: &str| manifest.key_of(b).cloned(), answers, &local);
    for s in &steps {
        ctx.emit("reconcile_step", format!("{s:?}").chars().take(300).collect());
    }
    let answered: Vec<String> = answers.keys().cloned().collect();
    let all = answered.clone();
    let when = crate::store::When { now_ms: ctx.clock.now_ms(), skew_ms: ctx.timing.clock_skew_ms };
    storage.db(move |s| s.reconcile_apply(&me, when, &answered, &steps, &all)).await
}
