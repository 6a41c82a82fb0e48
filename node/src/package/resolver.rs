//! Settles legs prepared at this bank whose outcome never arrived (the executor crashed, or
//! its finish message was lost). Asks the origin; if the record is still pending long after,
//! aborts it there (presumed abort: compare-and-set, so a commit that got there first wins).

use super::executor::{decide_at, finish_here};
use super::{Outcome, Status};
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
    let mut since: BTreeMap<String, Instant> = BTreeMap::new();
    let every = ms(node.timing.resolve_after_ms / 2).max(ms(10));
    loop {
        tokio::time::sleep(every + node.jitter(every / 4)).await;
        let Ok(doubts) = node.db(|s| s.in_doubt()).await else { continue };
        let now = Instant::now();
        since.retain(|id, _| doubts.iter().any(|(d, _)| d == id));
        for (id, origin) in doubts {
            let first = *since.entry(id.clone()).or_insert(now);
            let age = now - first;
            if age < ms(node.timing.resolve_after_ms) {
                continue;
            }
            let presume = age >= ms(node.timing.presume_abort_ms);
            if let Some(outcome) = resolve(&node, &id, &origin, presume).await {
                if finish_here(&node, vec![Finish { package: id.clone(), outcome }]).await.is_ok() {
                    since.remove(&id);
                }
            }
        }
    }
}

/// The outcome of `id` according to its origin, deciding it as aborted if `presume` and it is
/// still pending. None if it cannot be known now.
async fn resolve(node: &Arc<Node>, id: &str, origin: &str, presume: bool) -> Option<Outcome> {
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
        Ok(v) => v.status,
        // The origin never recorded it, so nobody can ever commit it.
        Err(PeerError::Refused(404, _)) => return Some(Outcome::Abort),
        Err(_) => return None,
    };
    match status {
        Status::Committed => Some(Outcome::Commit),
        Status::Aborted => Some(Outcome::Abort),
        Status::Pending if !presume => None,
        Status::Pending => {
            let d = Decide { package: id.to_string(), outcome: Outcome::Abort, results: vec![] };
            let v = decide_at(node, origin, vec![d]).await.ok()?.pop()?;
            node.count(|c| c.presumed_aborts += 1);
            node.emit("presumed_abort", format!("{id} -> {:?}", v.status));
            match v.status {
                Status::Committed => Some(Outcome::Commit),
                Status::Aborted => Some(Outcome::Abort),
                Status::Pending => None,
            }
        }
    }
}
