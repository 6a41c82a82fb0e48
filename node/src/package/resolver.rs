//! Settles legs prepared at this bank whose outcome never arrived (the executor crashed, or
//! its finish message was lost). Asks the origin; if the record is still pending long after,
//! aborts it there (presumed abort: compare-and-set, so a commit that got there first wins).

use super::executor::{decide_at, finish_here};
use super::{Outcome, PackageKey, Status};
use crate::api::wire::{Decide, Finish, PackageView};
use crate::config::ms;
use crate::node::{Node, PeerError};
use hyper::Method;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

pub async fn run(node: Arc<Node>) {
    // When this incarnation first saw each in-doubt package. Not persisted: after a restart
    // every timer starts over, which only delays a presumed abort.
    let mut since: BTreeMap<PackageKey, Instant> = BTreeMap::new();
    let every = ms(node.timing.resolve_after_ms / 2).max(ms(10));
    loop {
        tokio::time::sleep(every + node.jitter(every / 4)).await;
        let Ok(doubts) = node.db(|s| s.in_doubt()).await else { continue };
        let now = Instant::now();
        since.retain(|key, _| doubts.contains(key));
        for key in doubts {
            let first = *since.entry(key.clone()).or_insert(now);
            let age = now - first;
            if age < ms(node.timing.resolve_after_ms) {
                continue;
            }
            let presume = age >= ms(node.timing.presume_abort_ms);
            if let Some(outcome) = resolve(&node, &key, presume).await {
                let f = Finish { origin: key.origin.clone(), id: key.id.clone(), outcome };
                let me = node.me.clone();
                if finish_here(&node, &me, vec![f]).await.is_ok() {
                    since.remove(&key);
                }
            }
        }
    }
}

/// The outcome of a package according to its origin, deciding it as aborted if `presume` and
/// it is still pending. None if it cannot be known now.
async fn resolve(node: &Arc<Node>, key: &PackageKey, presume: bool) -> Option<Outcome> {
    let (id, origin) = (key.id.as_str(), key.origin.as_str());
    let asked: Result<PackageView, PeerError> = if origin == node.me {
        let i = id.to_string();
        match node.db(move |s| s.record(&i)).await {
            Ok(Some(r)) => Ok(PackageView { id: id.into(), status: r.status, results: r.results }),
            Ok(None) => Err(PeerError::Refused(404, "unknown".into())),
            Err(e) => Err(PeerError::Unreachable(e.message)),
        }
    } else {
        node.call::<(), _>(origin, Method::GET, &format!("/peer/outcome/{id}"), None).await
    };
    let status = match asked {
        Ok(v) if v.id == id => v.status,
        Ok(_) => return None, // an answer about another package: not an answer
        // The origin never recorded it, so nobody can ever commit it.
        Err(PeerError::Refused(404, _)) => return Some(Outcome::Abort),
        Err(_) => return None,
    };
    match status {
        Status::Committed => Some(Outcome::Commit),
        Status::Aborted => Some(Outcome::Abort),
        Status::Pending if !presume => None,
        Status::Pending => {
            let d = Decide { origin: origin.to_string(), id: id.to_string(), outcome: Outcome::Abort, results: vec![] };
            // The answer comes from the network: only an answer about this package counts.
            let v = decide_at(node, origin, vec![d]).await.ok()?.into_iter().find(|v| v.id == id)?;
            node.count(|c| c.presumed_aborts += 1);
            node.emit("presumed_abort", format!("{key} -> {:?}", v.status));
            match v.status {
                Status::Committed => Some(Outcome::Commit),
                Status::Aborted => Some(Outcome::Abort),
                Status::Pending => None,
            }
        }
    }
}
