//! The ring's task: the one owner of the ring's state machine (`consortium_core::ring::machine`).
//! It feeds the machine what happened (requests from the HTTP handlers, answers of calls,
//! timers) and carries out what the machine says. Calls, executions and writes run as their
//! own tasks and come back as events, so the owner never waits on the network or the disk and
//! one event is handled at a time: no interleaving the simulator cannot see.

use super::handle::{Input, RingHandle};
use super::machine::{Action, Answer, CallResult, Counter, Event};
use super::{Epoch, Probe, Queued};
use crate::context::Context;
use crate::error::Error;
use crate::package::executor::Executor;
use crate::package::round;
use crate::peers::PeerError;
use hyper::Method;
use std::collections::VecDeque;
use tokio::time::Instant;

/// What the ring's task carries out the machine's actions with. Cheap to clone.
#[derive(Clone)]
pub struct Driver {
    pub ring: RingHandle,
    /// Runs the packages of a token this bank holds (and holds the bank's other handles).
    pub ex: Executor,
}

/// The ring's owner task: runs until the node is dropped.
pub async fn run(d: Driver) {
    let Some((mut machine, mut rx)) = d.ring.parts.lock().unwrap().take() else { return };
    let start = d.ring.start;
    loop {
        let deadline = machine.next_timer().map(|d| start + d);
        // `biased`: branches are polled in order, never at random. tokio picks a random
        // branch otherwise, from an RNG turmoil cannot seed (only under tokio_unstable), and
        // the simulator found two runs of one seed diverging there.
        let input = tokio::select! {
            biased;
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = sleep_until(deadline) => Input { event: Event::Tick, reply: None },
        };
        let now = Instant::now() - start;
        let mut reply = input.reply;
        let mut events = VecDeque::from([input.event]);
        while let Some(event) = events.pop_front() {
            for action in machine.handle(now, event) {
                match action {
                    Action::Answer(a) => {
                        if let Some(r) = reply.take() {
                            let _ = r.send(a);
                        }
                    }
                    Action::Gather { room, queued } => events.push_back(Event::Gathered(d.ex.intake.pending(|k| queued.contains(k), room))),
                    other => perform(&d, other),
                }
            }
        }
        *d.ring.view.lock().unwrap() = machine.view();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out one action; calls, executions and writes as tasks that answer with an event.
fn perform(d: &Driver, action: Action) {
    let ctx = &d.ex.ctx;
    match action {
        Action::Answer(_) | Action::Gather { .. } => unreachable!("handled by the owner task"),
        Action::Pass { to, pass, timeout } => {
            let n = d.clone();
            tokio::spawn(async move {
                let hop = pass.token.hop;
                let answer = match n.ex.peers.raw_call_within(&to, Method::POST, "/peer/token", Some(&pass), timeout).await {
                    Ok(a) => CallResult::Answer(a),
                    Err(PeerError::Refused(status, m)) => CallResult::Refused(format!("({status}) {m}")),
                    Err(PeerError::Unreachable(m)) => CallResult::Unreachable(m),
                };
                n.ring.tell(Event::PassAnswered { to, hop, answer });
            });
        }
        Action::Probe { round, to, timeout } => {
            let n = d.clone();
            tokio::spawn(async move {
                let answer = n.ex.peers.call_within::<(), Probe>(&to, Method::GET, "/peer/ring/probe", None, timeout).await.ok();
                n.ring.tell(Event::ProbeAnswered { round, from: to, answer });
            });
        }
        Action::Alert { to, alert } => {
            let n = d.clone();
            tokio::spawn(async move {
                let r = n.ex.peers.call::<_, bool>(&to, Method::POST, "/peer/ring/alert", Some(&alert)).await;
                n.ring.tell(Event::AlertAnswered { to, delivered: !matches!(r, Err(PeerError::Unreachable(_))) });
            });
        }
        Action::Block { round, to, block } => {
            let n = d.clone();
            tokio::spawn(async move {
                let _ = n.ex.peers.call::<_, bool>(&to, Method::POST, "/peer/ring/block", Some(&block)).await;
                n.ring.tell(Event::BlockAnswered { round, to });
            });
        }
        Action::Execute { epoch, queue } => {
            tokio::spawn(execute(d.clone(), epoch, queue));
        }
        Action::Persist { gen, wait } => {
            let n = d.clone();
            tokio::spawn(async move {
                let r = n.ex.storage.db(move |s| s.raise_epoch_gen(gen)).await;
                if let Err(e) = &r {
                    n.ex.ctx.emit("epoch_persist_failed", e.message.clone());
                }
                if wait {
                    n.ring.tell(Event::Persisted { gen, ok: r.is_ok() });
                }
            });
        }
        Action::Refuse { from, code, message } => ctx.refused(&from, &Error::bad_request(code, message)),
        Action::PeerFailed { bank, why } => d.ex.peers.peer_failed(&bank, &why),
        Action::Count(c) => ctx.count(|k| match c {
            Counter::TokensCreated => k.tokens_created += 1,
            Counter::StaleDropped => k.stale_dropped += 1,
            Counter::DuplicatesDropped => k.duplicates_dropped += 1,
            Counter::Faults => k.faults += 1,
        }),
        Action::Emit(event) => ctx.report(event),
    }
}

/// Executes the queue in batches of independent packages: packages that share an account
/// run one after the other in queue order, so no package sees another half-done. A package
/// whose origin is offline waits: executing it would hold money until the origin returns (it
/// is dropped from the queue; its origin re-queues it). Between batches, a token superseded
/// meanwhile stops executing.
async fn execute(d: Driver, epoch: Epoch, queue: Vec<Queued>) {
    let ready: Vec<Queued> = queue.into_iter().filter(|q| d.ex.peers.reachable(&q.origin)).collect();
    for batch in round::plan_batches(&ready, round::MAX_BATCH) {
        if !d.ring.view().still_current(&epoch) {
            break;
        }
        let statuses = d.ex.execute_batch(&batch).await;
        for (q, status) in batch.iter().zip(statuses) {
            // Pending here means the decide did not happen; for a package of this bank that
            // is its own disk failing (found by the simulator: power lost inside the decide's
            // commit). Not a logic error: the record stays pending in the outbox and the
            // package runs again, or its participants presume abort.
            d.ex.ctx.emit("package_executed", format!("{} {status:?}", q.key()));
        }
    }
    d.ring.tell(Event::Executed { epoch });
}

/// A request from another bank about the ring, answered by the owner. A refusal is counted
/// and logged with its sender.
pub async fn ask(ring: &RingHandle, ctx: &Context, from: &str, event: Event) -> Result<Answer, Error> {
    match ring.ask(event).await? {
        Answer::Refused { code, message } => Err(ctx.refuse(from, Error::bad_request(code, message))),
        a => Ok(a),
    }
}
