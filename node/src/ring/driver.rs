//! The ring's task: the one owner of the ring's state machine (`consortium_core::ring::machine`).
//! It feeds the machine what happened (requests from the HTTP handlers, answers of calls,
//! timers) and carries out what the machine says. Calls, executions and writes run as their
//! own tasks and come back as events, so the owner never waits on the network or the disk and
//! one event is handled at a time: no interleaving the simulator cannot see.

use super::machine::{Action, Answer, CallResult, Counter, Event, RingMachine, RingView, Timing};
use super::{Epoch, Probe, Queued};
use crate::config::ms;
use crate::error::Error;
use crate::node::{Node, PeerError};
use crate::package::{executor, round};
use hyper::Method;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

struct Input {
    event: Event,
    reply: Option<oneshot::Sender<Answer>>,
}

/// How the rest of the node talks to the ring: events in, answers back, and a view of its
/// state (published after every event) for reads that need no answer from the owner.
pub struct RingHandle {
    tx: mpsc::UnboundedSender<Input>,
    /// The machine and its inbox until the task takes them.
    parts: Mutex<Option<(RingMachine, mpsc::UnboundedReceiver<Input>)>>,
    view: Mutex<RingView>,
    /// Time zero of the machine's clock.
    start: Instant,
}

impl RingHandle {
    pub fn new(machine: RingMachine) -> RingHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = machine.view();
        RingHandle { tx, parts: Mutex::new(Some((machine, rx))), view: Mutex::new(view), start: Instant::now() }
    }

    pub fn view(&self) -> RingView {
        self.view.lock().unwrap().clone()
    }

    /// Tells the ring something happened; no answer.
    pub fn tell(&self, event: Event) {
        // Closed only when the node is gone.
        let _ = self.tx.send(Input { event, reply: None });
    }

    /// Asks the ring and waits for its answer.
    pub async fn ask(&self, event: Event) -> Result<Answer, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Input { event, reply: Some(reply) }).map_err(|_| Error::unavailable("ring_stopped", "the ring task has stopped"))?;
        rx.await.map_err(|_| Error::unavailable("ring_stopped", "the ring task gave no answer"))
    }
}

pub fn timing(t: &crate::config::Timing) -> Timing {
    Timing {
        idle_hold: ms(t.idle_hold_ms),
        idle_hold_max: ms(t.idle_hold_max_ms),
        token_loss: ms(t.token_loss_ms),
        startup_check: ms(t.startup_check_ms),
        block: ms(t.block_ms),
        peer_timeout: ms(t.peer_timeout_ms),
        pass_floor: ms(t.pass_floor_ms),
        loss_floor: ms(t.loss_floor_ms),
    }
}

/// The ring's owner task: runs until the node is dropped.
pub async fn run(node: Arc<Node>) {
    let Some((mut machine, mut rx)) = node.ring.parts.lock().unwrap().take() else { return };
    let start = node.ring.start;
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
                    Action::Gather { room, queued } => events.push_back(Event::Gathered(node.intake.pending(|k| queued.contains(k), room))),
                    other => perform(&node, other),
                }
            }
        }
        *node.ring.view.lock().unwrap() = machine.view();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out one action; calls, executions and writes as tasks that answer with an event.
fn perform(node: &Arc<Node>, action: Action) {
    match action {
        Action::Answer(_) | Action::Gather { .. } => unreachable!("handled by the owner task"),
        Action::Pass { to, pass, timeout } => {
            let n = node.clone();
            tokio::spawn(async move {
                let hop = pass.token.hop;
                let answer = match n.raw_call_within(&to, Method::POST, "/peer/token", Some(&pass), timeout).await {
                    Ok(a) => CallResult::Answer(a),
                    Err(PeerError::Refused(status, m)) => CallResult::Refused(format!("({status}) {m}")),
                    Err(PeerError::Unreachable(m)) => CallResult::Unreachable(m),
                };
                n.ring.tell(Event::PassAnswered { to, hop, answer });
            });
        }
        Action::Probe { round, to, timeout } => {
            let n = node.clone();
            tokio::spawn(async move {
                let answer = n.call_within::<(), Probe>(&to, Method::GET, "/peer/ring/probe", None, timeout).await.ok();
                n.ring.tell(Event::ProbeAnswered { round, from: to, answer });
            });
        }
        Action::Alert { to, alert } => {
            let n = node.clone();
            tokio::spawn(async move {
                let r = n.call::<_, bool>(&to, Method::POST, "/peer/ring/alert", Some(&alert)).await;
                n.ring.tell(Event::AlertAnswered { to, delivered: !matches!(r, Err(PeerError::Unreachable(_))) });
            });
        }
        Action::Block { round, to, block } => {
            let n = node.clone();
            tokio::spawn(async move {
                let _ = n.call::<_, bool>(&to, Method::POST, "/peer/ring/block", Some(&block)).await;
                n.ring.tell(Event::BlockAnswered { round, to });
            });
        }
        Action::Execute { epoch, queue } => {
            tokio::spawn(execute(node.clone(), epoch, queue));
        }
        Action::Persist { gen, wait } => {
            let n = node.clone();
            tokio::spawn(async move {
                let r = n.db(move |s| s.raise_epoch_gen(gen)).await;
                if let Err(e) = &r {
                    n.emit("epoch_persist_failed", e.message.clone());
                }
                if wait {
                    n.ring.tell(Event::Persisted { gen, ok: r.is_ok() });
                }
            });
        }
        Action::Refuse { from, code, message } => node.refused(&from, &Error::bad_request(code, message)),
        Action::PeerFailed { bank, why } => node.peer_failed(&bank, &why),
        Action::Count(c) => node.count(|k| match c {
            Counter::TokensCreated => k.tokens_created += 1,
            Counter::StaleDropped => k.stale_dropped += 1,
            Counter::DuplicatesDropped => k.duplicates_dropped += 1,
            Counter::Faults => k.faults += 1,
        }),
        Action::Emit(event) => node.report(event),
    }
}

/// Executes the queue in batches of independent packages: packages that share an account
/// run one after the other in queue order, so no package sees another half-done. A package
/// whose origin is offline waits: executing it would hold money until the origin returns (it
/// is dropped from the queue; its origin re-queues it). Between batches, a token superseded
/// meanwhile stops executing.
async fn execute(node: Arc<Node>, epoch: Epoch, queue: Vec<Queued>) {
    let ready: Vec<Queued> = queue.into_iter().filter(|q| node.reachable(&q.origin)).collect();
    for batch in round::plan_batches(&ready, round::MAX_BATCH) {
        if !node.ring.view().still_current(&epoch) {
            break;
        }
        let statuses = executor::execute_batch(&node, &batch).await;
        for (q, status) in batch.iter().zip(statuses) {
            // Pending here means the decide did not happen; for a package of this bank that
            // is its own disk failing (found by the simulator: power lost inside the decide's
            // commit). Not a logic error: the record stays pending in the outbox and the
            // package runs again, or its participants presume abort.
            node.emit("package_executed", format!("{} {status:?}", q.key()));
        }
    }
    node.ring.tell(Event::Executed { epoch });
}

/// A request from another bank about the ring, answered by the owner. A refusal is counted
/// and logged with its sender.
pub async fn ask(node: &Node, from: &str, event: Event) -> Result<Answer, Error> {
    match node.ring.ask(event).await? {
        Answer::Refused { code, message } => Err(node.refuse(from, Error::bad_request(code, message))),
        a => Ok(a),
    }
}
