//! Settles legs prepared at this bank whose outcome never arrived (the executor crashed, or
//! its finish message was lost). Asks the origin; if the record is still pending long after,
//! aborts it there (presumed abort: compare-and-set, so a commit that got there first wins).

use super::executor::Executor;
use super::{Outcome, PackageKey, Status};
use crate::wire::{Decide, Finish, PackageView};
use consortium_core::trust::decision::Decision;
use crate::config::ms;
use crate::peers::PeerError;
use crate::store::Lookup;
use consortium_core::package::compact::Unknown;
use hyper::Method;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The resolver's task: runs until the node is dropped.
pub async fn run(ex: Executor) {
    let ctx = &ex.ctx;
    // When this incarnation first saw each in-doubt package. Not persisted: after a restart
    // every timer starts over, which only delays a presumed abort.
    let mut since: BTreeMap<PackageKey, Instant> = BTreeMap::new();
    let every = ms(ctx.timing.resolve_after_ms / 2).max(ms(10));
    loop {
        tokio::time::sleep(every + ctx.jitter(every / 4)).await;
        if ctx.planted == crate::planted::PlantedBug::NoResolver {
            continue;
        }
        let Ok(doubts) = ex.storage.db(|s| s.in_doubt()).await else { continue };
        let now = Instant::now();
        since.retain(|key, _| doubts.contains(key));
        for key in doubts {
            let first = *since.entry(key.clone()).or_insert(now);
            let age = now - first;
            if age < ms(ctx.timing.resolve_after_ms) {
                continue;
            }
            let presume = age >= ms(ctx.timing.presume_abort_ms);
            let done = match resolve(&ex, &key, presume).await {
                Some(Resolved::Decided(decision)) => {
                    let f = Finish { origin: key.origin.clone(), id: key.id.clone(), decision };
                    let me = ctx.me.clone();
                    ex.finish_here(&me, vec![f]).await.is_ok()
                }
                Some(Resolved::NeverRecorded) => ex.abort_orphan(&key).await.is_ok(),
                Some(Resolved::MaybeCompacted) => {
                    // Never an abort: the origin drops a record only after this bank
                    // acknowledged its outcome, so this is a broken origin or a lost
                    // database. The legs stay held; the operators are told.
                    ctx.count(|c| c.in_doubt_compacted += 1);
                    ctx.emit("in_doubt_compacted", format!("{key}: its origin no longer has a record of it; legs stay held"));
                    false
                }
                None => false,
            };
            if done {
                since.remove(&key);
            }
        }
    }
}

enum Resolved {
    /// The origin's signed decision.
    Decided(Decision),
    /// The origin has no record of it, so nobody can ever commit it. (Until answers between
    /// banks are authenticated too, by TLS, this 404 is taken on the connection's word.)
    NeverRecorded,
    /// The origin has no record of it now but may have had (it compacted records with this
    /// package's expiry or later): not evidence that nobody committed it.
    MaybeCompacted,
}

/// The outcome of a package according to its origin, deciding it as aborted if `presume` and
/// it is still pending. None if it cannot be known now.
async fn resolve(ex: &Executor, key: &PackageKey, presume: bool) -> Option<Resolved> {
    let ctx = &ex.ctx;
    let (id, origin) = (key.id.as_str(), key.origin.as_str());
    // The package's expiry as prepared here: the origin answers a compacted package by it.
    let k = key.clone();
    let expires = ex.storage.db(move |s| s.participation(&k)).await.ok().flatten().map(|p| p.expires_ms).filter(|e| *e > 0);
    let asked: Result<PackageView, PeerError> = if origin == ctx.me {
        let i = id.to_string();
        match ex.storage.db(move |s| s.lookup(&i, expires)).await {
            Ok(Lookup::Found(r)) => Ok(ex.view(&r)),
            Ok(Lookup::Unknown(Unknown::NeverRecorded)) => Err(PeerError::Refused(404, "unknown".into())),
            Ok(Lookup::Unknown(Unknown::MaybeCompacted)) => Err(PeerError::Refused(410, "compacted".into())),
            Err(e) => Err(PeerError::Unreachable(e.message)),
        }
    } else {
        let query = expires.map(|e| format!("?expires_ms={e}")).unwrap_or_default();
        ex.peers.call::<(), _>(origin, Method::GET, &format!("/peer/outcome/{id}{query}"), None).await
    };
    let v = match asked {
        Ok(v) if v.id == id => v,
        Ok(_) => return None, // an answer about another package: not an answer
        Err(PeerError::Refused(404, _)) => return Some(Resolved::NeverRecorded),
        Err(PeerError::Refused(410, _)) => return Some(Resolved::MaybeCompacted),
        Err(_) => return None,
    };
    match v.status {
        Status::Committed | Status::Aborted => v.decision.map(Resolved::Decided),
        Status::Pending if !presume => None,
        Status::Pending => {
            let d = Decide { origin: origin.to_string(), id: id.to_string(), outcome: Outcome::Abort, results: vec![] };
            // The answer comes from the network: only an answer about this package counts.
            let v = ex.decide_at(origin, vec![d]).await.ok()?.into_iter().find(|v| v.id == id)?;
            ctx.count(|c| c.presumed_aborts += 1);
            ctx.emit("presumed_abort", format!("{key} -> {:?}", v.status));
            v.decision.map(Resolved::Decided)
        }
    }
}
