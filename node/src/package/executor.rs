//! Two-phase commit over the network, a batch at a time: the executor prepares every bank's
//! legs, decides at each origin's record, then tells every bank to finish. Each phase is one
//! message (and one fsync) per bank for the whole batch, and all banks are asked at once.
//! The `*_here` functions are what one bank does when asked (by the network, or by itself
//! without a network hop).

use super::intake;
use super::writer::Writer;
use super::record::Record;
use super::round::{Round, MAX_BATCH};
use super::spec::{Leg, PackageKey, MAX_ID_LEN};
use super::{Outcome, Status};
use crate::wire::{Decide, Finish, PackageView, Prepare, Votes};
use crate::context::Context;
use crate::error::Error;
use crate::peers::{PeerError, Peers, Phase};
use crate::store::{Authority, Storage, When, Write, Written};
use consortium_core::trust::decision::Decision;
use consortium_core::package::compact::Ack;
use consortium_core::ring::Queued;
use hyper::Method;

/// What running packages needs: the handle the ring's driver, the resolver and the peer
/// routes run the protocol through. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    pub ctx: Context,
    pub storage: Storage,
    pub peers: Peers,
    pub writer: Writer,
    pub intake: intake::Intake,
}

fn too_many(n: usize) -> Result<(), Error> {
    if n > MAX_BATCH {
        return Err(Error::bad_request("batch_too_large", format!("{n} items in one message; at most {MAX_BATCH}")));
    }
    Ok(())
}

/// This bank's legs of a prepared package, derived here from the whole package: an executor
/// cannot hand a participant legs of its choosing.
fn legs_here(node: &Context, p: &Prepare) -> Result<Vec<Leg>, Error> {
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

impl Executor {
/// Prepares this bank's legs of several packages, in one group commit (participant side).
/// `from` is the bank that asked.
pub async fn prepare_here(&self, from: &str, items: Vec<Prepare>) -> Result<Vec<Votes>, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(self.ctx.refuse(from, e));
    }
    // Its balances are not final until its reconciliation re-applies what it lost.
    self.ctx.refuse_while_reconciling("prepares legs")?;
    let mut writes = Vec::with_capacity(items.len());
    for p in items {
        match legs_here(&self.ctx, &p) {
            Ok(legs) => writes.push((p.origin, p.package, legs)),
            Err(e) => return Err(self.ctx.refuse(from, e)),
        }
    }
    let auth = Authority { me: self.ctx.me.clone(), now_ms: self.ctx.clock.now_ms(), tellers: self.ctx.tellers.clone(), skew_ms: self.ctx.timing.clock_skew_ms };
    match self.writer.write(Write::Prepare(auth, writes)).await? {
        Written::Prepare(each) => Ok(each
            .into_iter()
            .map(|r| match r {
                Ok(votes) => Votes { votes, refused: None },
                Err(e) => {
                    self.ctx.refused(from, &e);
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
pub async fn finish_here(&self, from: &str, items: Vec<Finish>) -> Result<usize, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(self.ctx.refuse(from, e));
    }
    let mut writes = Vec::with_capacity(items.len());
    for f in items {
        let key = PackageKey { origin: f.origin, id: f.id };
        let signed = key.id.len() <= MAX_ID_LEN && self.ctx.manifest.key_of(&key.origin).is_some_and(|k| f.decision.verify(k, &key));
        if !signed {
            self.ctx.refused(from, &Error::forbidden("unsigned_decision", format!("finish of {key}: no valid decision signed by its origin")));
            continue;
        }
        writes.push((key, f.decision));
    }
    self.apply_signed(from, writes).await
}

/// `apply_outcomes`, keeping each (verified) decision beside the package prepared here.
async fn apply_signed(&self, from: &str, writes: Vec<(PackageKey, Decision)>) -> Result<usize, Error> {
    if writes.is_empty() {
        return Ok(0);
    }
    let shown: Vec<(PackageKey, Outcome)> = writes.iter().map(|(k, d)| (k.clone(), d.outcome)).collect();
    let when = When { now_ms: self.ctx.clock.now_ms(), skew_ms: self.ctx.timing.clock_skew_ms };
    let each = match self.writer.write(Write::FinishSigned(when, writes)).await? {
        Written::Finish(each) => each,
        other => unreachable!("a finish answered {other:?}"),
    };
    self.count_finished(from, shown, each)
}

/// The origin of `items` asks whether this bank has their outcomes (`compact::Ack`). Those
/// with a row here and no outcome yet are finished first (signature checked, like any
/// finish); then each is answered from its row as it stands.
pub async fn acks_here(&self, from: &str, items: Vec<Finish>) -> Result<Vec<Ack>, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(self.ctx.refuse(from, e));
    }
    let keys: Vec<(PackageKey, Outcome)> = items.iter().map(|f| (PackageKey::new(&f.origin, &f.id), f.decision.outcome)).collect();
    let k = keys.clone();
    let before = self.storage.db(move |s| s.acks(&k)).await?;
    let open: Vec<Finish> = items.into_iter().zip(&before).filter(|(_, a)| **a == Ack::NotYet).map(|(f, _)| f).collect();
    if open.is_empty() {
        return Ok(before);
    }
    self.finish_here(from, open).await?;
    self.storage.db(move |s| s.acks(&keys)).await
}

/// Aborts this bank's legs of a package its origin says it never recorded (so nobody can
/// commit it), under the digest this bank prepared.
pub async fn abort_orphan(&self, key: &PackageKey) -> Result<usize, Error> {
    let k = key.clone();
    let Some(digest) = self.storage.db(move |s| s.participation(&k)).await?.and_then(|p| p.digest) else { return Ok(0) };
    let me = self.ctx.me.clone();
    self.apply_outcomes(&me, vec![(key.clone(), Outcome::Abort, digest)]).await
}

async fn apply_outcomes(&self, from: &str, writes: Vec<(PackageKey, Outcome, super::PackageDigest)>) -> Result<usize, Error> {
    if writes.is_empty() {
        return Ok(0);
    }
    let shown: Vec<(PackageKey, Outcome)> = writes.iter().map(|(k, o, _)| (k.clone(), *o)).collect();
    let when = When { now_ms: self.ctx.clock.now_ms(), skew_ms: self.ctx.timing.clock_skew_ms };
    let each = match self.writer.write(Write::Finish(when, writes)).await? {
        Written::Finish(each) => each,
        other => unreachable!("a finish answered {other:?}"),
    };
    self.count_finished(from, shown, each)
}

fn count_finished(&self, from: &str, shown: Vec<(PackageKey, Outcome)>, each: Vec<Result<usize, Error>>) -> Result<usize, Error> {
    let mut moved = 0;
    for r in each {
        match r {
            Ok(n) => moved += n,
            Err(e) => self.ctx.refused(from, &e),
        }
    }
    if moved > 0 {
        self.ctx.report(crate::events::NodeEvent::LegsFinished { moved, items: shown });
    }
    Ok(moved)
}

/// How an origin shows one of its records to another bank: with its signed decision once
/// decided.
pub fn view(&self, r: &Record) -> PackageView {
    let decision = r.outcome().map(|o| Decision::sign(&self.ctx.key, &r.key(), r.package.digest(&r.origin), o));
    PackageView { id: r.package.id.clone(), status: r.status, results: r.results.clone(), decision }
}

/// Decides packages at their origin, this bank (compare-and-set); answers the decisions that
/// stand. A decide this bank refuses (an unknown package, malformed results) has no answer.
pub async fn decide_here(&self, from: &str, items: Vec<Decide>) -> Result<Vec<PackageView>, Error> {
    if let Err(e) = too_many(items.len()) {
        return Err(self.ctx.refuse(from, e));
    }
    // A record restored from a backup may have been decided after it: not again, until
    // reconciliation has learned how.
    self.ctx.refuse_while_reconciling("decides its packages")?;
    if let Some(d) = items.iter().find(|d| d.origin != self.ctx.me) {
        return Err(self.ctx.refuse(from, Error::rule("not_the_origin", format!("decide of {}@{} sent to {}: only a package's origin decides it", d.id, d.origin, self.ctx.me))));
    }
    let done = match self.writer.write(Write::Decide(items.into_iter().map(|d| (d.id, d.outcome, d.results, from.to_string())).collect())).await? {
        Written::Decide(done) => done,
        other => unreachable!("a decide answered {other:?}"),
    };
    let mut out = Vec::new();
    for d in done {
        // Counted and reported by the writer, right after the commit: a decide whose asker
        // gave up (a stalled disk) still lands, and must still be told.
        let (r, _) = match d {
            Ok(x) => x,
            Err(e) => {
                self.ctx.refused(from, &e);
                continue;
            }
        };
        out.push(self.view(&r));
    }
    Ok(out)
}

async fn prepare_at(self, bank: String, items: Vec<Prepare>) -> Result<Vec<Votes>, String> {
    let began = tokio::time::Instant::now();
    let r = if bank == self.ctx.me {
        let me = self.ctx.me.clone();
        self.prepare_here(&me, items).await.map_err(|e| e.message)
    } else {
        self.peers.call_measured(&bank, Phase::Prepare, "/peer/prepare", &items).await.map_err(|e| match e {
            PeerError::Unreachable(_) => format!("bank {bank} unreachable"),
            PeerError::Refused(s, m) => format!("bank {bank} refused ({s}): {m}"),
        })
    };
    self.ctx.metrics.phase(Phase::Prepare.name(), began.elapsed());
    r
}

pub async fn decide_at(&self, origin: &str, items: Vec<Decide>) -> Result<Vec<PackageView>, PeerError> {
    let began = tokio::time::Instant::now();
    let r = if origin == self.ctx.me {
        self.decide_here(origin, items).await.map_err(|e| PeerError::Refused(e.status(), e.message))
    } else {
        self.peers.call_measured(origin, Phase::Decide, "/peer/decide", &items).await
    };
    self.ctx.metrics.phase(Phase::Decide.name(), began.elapsed());
    r
}

/// Tells one bank the outcomes; a failure is left to that bank's resolver.
pub async fn finish_at(self, bank: String, items: Vec<Finish>) -> bool {
    let began = tokio::time::Instant::now();
    let ok = if bank == self.ctx.me {
        let me = self.ctx.me.clone();
        self.finish_here(&me, items).await.is_ok()
    } else {
        self.peers.call_measured::<_, usize>(&bank, Phase::Finish, "/peer/finish", &items).await.is_ok()
    };
    self.ctx.metrics.phase(Phase::Finish.name(), began.elapsed());
    ok
}

/// Runs one batch of independent packages to their end, as far as the network allows
/// (`Round` says what to send and what the answers mean). Returns each package's decided
/// status, or Pending if its origin could not be reached (its outbox will bring the package
/// back).
pub async fn execute_batch(&self, batch: &[Queued]) -> Vec<Status> {
    // Phase 1: prepare everywhere at once.
    let (mut round, prepares) = Round::new(batch);
    let tasks: Vec<_> = prepares.into_iter().map(|(bank, items)| (bank.clone(), tokio::spawn(self.clone().prepare_at(bank, items)))).collect();
    for (bank, t) in tasks {
        let answer = t.await.unwrap_or_else(|e| Err(format!("prepare task at {bank}: {e}")));
        if let Err(malformed) = round.on_votes(&bank, answer) {
            self.ctx.refused(&bank, &malformed);
        }
    }

    // Phase 2: each origin's record decides; whoever got there first wins.
    let (decides, outcomes) = round.decides();
    for (key, outcome) in outcomes {
        // Between the two phases: every vote is in, nothing is decided yet (the simulator
        // crashes executors here).
        self.ctx.emit("package_prepared", format!("{key} {outcome:?}"));
    }
    let tasks: Vec<_> = decides
        .into_iter()
        .map(|(origin, items)| {
            let n = self.clone();
            (origin.clone(), tokio::spawn(async move { n.decide_at(&origin, items).await }))
        })
        .collect();
    for (origin, t) in tasks {
        match t.await {
            Ok(Ok(views)) => round.on_decided(&origin, views),
            Ok(Err(e)) => self.ctx.emit("decide_failed", format!("origin {origin}: {e}")),
            Err(e) => self.ctx.emit("decide_failed", format!("origin {origin}: {e}")),
        }
    }

    // Phase 3: finish everywhere at once; a bank that misses it asks the origin later.
    let done = round.finish();
    let tasks: Vec<_> = done.finishes.into_iter().map(|(bank, items)| tokio::spawn(self.clone().finish_at(bank, items))).collect();
    for t in tasks {
        let _ = t.await;
    }
    // Tell each origin its packages are settled, so the waiting client is answered once
    // the balances show the outcome. Best effort: without it the client is answered a
    // moment later anyway.
    for (origin, ids) in done.settled {
        if origin == self.ctx.me {
            self.intake.tell_settled(&ids);
        } else {
            let n = self.clone();
            tokio::spawn(async move { n.peers.call::<_, bool>(&origin, Method::POST, "/peer/settled", Some(&ids)).await });
        }
    }
    self.ctx.count(|c| c.executed += done.statuses.iter().filter(|s| **s != Status::Pending).count() as u64);
    done.statuses
}
}
