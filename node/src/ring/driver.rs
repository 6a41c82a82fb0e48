//! The async shell of the ring: receives, holds, executes and passes the token, watches for
//! its loss, and regenerates it. Every decision is delegated to `rules`.

use super::rules::{Arrival, Ring};
use super::token::{Queued, Token, MAX_COUNTER, MAX_QUEUE};
use crate::api::wire::{Alert, Block, PassAnswer, Probe, TokenPass};
use crate::config::ms;
use crate::error::Error;
use crate::node::{Node, PeerError};
use crate::package::executor;
use hyper::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A token arrived from `pass.from`. Called by the HTTP handler; never waits. A token that
/// cannot be one of this ring's is refused before any rule of arrival sees it.
pub fn receive(node: &Arc<Node>, pass: TokenPass) -> Result<PassAnswer, Error> {
    let checked = node.ring.lock().unwrap().check_token(&pass.from, &pass.token);
    if let Err(why) = checked {
        return Err(node.refuse(&pass.from, Error::bad_request("bad_token", format!("token {} hop {}: {why}", pass.token.epoch, pass.token.hop))));
    }
    Ok(arrive(node, pass))
}

fn arrive(node: &Arc<Node>, pass: TokenPass) -> PassAnswer {
    let blocked = node.blocked();
    let t = pass.token;
    let mine = t.passed_by.get(&node.me).copied();
    let arrival = node.ring.lock().unwrap().on_token(&t.epoch, t.hop, mine, blocked);
    match arrival {
        Arrival::Accept => {
            // One line per accepted pass: the simulator checks from these that no hop of an
            // epoch is taken twice (one token) and that no bank goes back to an older epoch.
            node.emit("token_accepted", format!("{} hop {} from {}", t.epoch, t.hop, pass.from));
            *node.last_token_at.lock().unwrap() = Some(Instant::now());
            let old = node.token.lock().unwrap().replace(t.clone());
            if let Some(old) = old {
                node.emit("token_replaced", format!("{} by {}", old.epoch, t.epoch));
            }
            let raised = {
                let mut ring = node.ring.lock().unwrap();
                let r = t.epoch.gen > ring.floor_gen;
                ring.floor_gen = ring.floor_gen.max(t.epoch.gen);
                r
            };
            if raised {
                let gen = t.epoch.gen;
                // Remembered so a restarted bank never regenerates below it; best effort.
                let n = node.clone();
                tokio::spawn(async move { let _ = n.db(move |s| s.raise_epoch_gen(gen)).await; });
            }
            node.token_arrived.notify_one();
            PassAnswer::Accepted
        }
        Arrival::Repeat => {
            node.count(|c| c.duplicates_dropped += 1);
            PassAnswer::Repeat
        }
        Arrival::Stale => {
            node.count(|c| c.stale_dropped += 1);
            node.emit("token_stale", format!("{} hop {} from {}", t.epoch, t.hop, pass.from));
            PassAnswer::Stale
        }
        Arrival::Blocked => {
            node.emit("token_blocked", format!("{} hop {} from {}", t.epoch, t.hop, pass.from));
            PassAnswer::Blocked
        }
        Arrival::Duplicate(why) => {
            node.count(|c| {
                c.duplicates_dropped += 1;
                c.faults += 1;
            });
            node.emit("token_duplicate", why.clone());
            let n = node.clone();
            tokio::spawn(async move { raise_fault(&n, format!("duplicate token: {why}")).await });
            PassAnswer::Duplicate
        }
    }
}

pub fn probe(node: &Node) -> Probe {
    let ring = node.ring.lock().unwrap();
    Probe {
        holding: ring.holding,
        newest_gen: ring.newest.as_ref().map_or(0, |e| e.gen).max(ring.floor_gen),
        seen_ms_ago: node.last_token_at.lock().unwrap().map(|t| (Instant::now() - t).as_millis() as u64),
    }
}

/// The driver: waits for the token or for the time to suspect its loss.
pub async fn run(node: Arc<Node>) {
    let banks = node.members().len();
    let loss = Ring::loss_timeout(ms(node.timing.token_loss_ms), banks);
    let mut next_check = Instant::now() + ms(node.timing.startup_check_ms) + node.jitter(ms(node.timing.startup_check_ms));
    loop {
        // `biased`: branches are polled in order, never at random. tokio picks a random
        // branch otherwise, from an RNG turmoil cannot seed (only under tokio_unstable), and
        // the simulator found two runs of one seed diverging there. The token comes first.
        tokio::select! {
            biased;
            _ = node.token_arrived.notified() => {}
            _ = tokio::time::sleep_until(next_check) => {}
        }
        let held = node.token.lock().unwrap().take();
        if let Some(token) = held {
            hold_and_pass(&node, token).await;
            next_check = Instant::now() + loss;
            continue;
        }
        if Instant::now() >= next_check {
            let seen = *node.last_token_at.lock().unwrap();
            let mut vouched = false;
            if seen.is_none_or(|t| Instant::now() - t >= loss) {
                vouched = check_for_loss(&node, loss).await;
            }
            // Another bank holding the token or having seen it lately only postpones this
            // bank's next check; it is not a sighting of its own (see check_for_loss).
            let base = if vouched { Instant::now() } else { node.last_token_at.lock().unwrap().unwrap_or_else(Instant::now) };
            next_check = (base + loss).max(Instant::now() + loss / 2) + node.jitter(loss / 4);
        }
    }
}

fn still_current(node: &Node, token: &Token) -> bool {
    let ring = node.ring.lock().unwrap();
    ring.still_current(&token.epoch) && !node.blocked()
}

fn drop_token(node: &Node, token: &Token, why: &str) {
    node.ring.lock().unwrap().holding = false;
    node.emit("token_dropped", format!("{} hop {}: {why}", token.epoch, token.hop));
}

/// This bank holds the token: execute if its turn, add its own packages, pass it on.
async fn hold_and_pass(node: &Arc<Node>, mut token: Token) {
    loop {
        if !still_current(node, &token) {
            return drop_token(node, &token, "superseded while held");
        }
        let execute = node.ring.lock().unwrap().visit(&mut token);
        let mut added = 0;
        let mut executed = false;
        if execute {
            // The executor's own packages go in first: added after executing, they would
            // ride a whole rotation before the next execution (a quarter of all packages on
            // four banks, and the worst latencies).
            added += add_outbox(node, &mut token);
            if !token.queue.is_empty() {
                execute_queue(node, &mut token).await;
                executed = true;
            }
        }
        // Whatever arrived meanwhile (or, not executing, everything pending) rides along.
        added += add_outbox(node, &mut token);
        if added > 0 || executed || !token.queue.is_empty() {
            Ring::mark_busy(&mut token);
        }
        let ring_idle = node.ring.lock().unwrap().ring_idle(&token);
        if ring_idle && !execute {
            // Nothing to do: keep the token a moment, longer the longer the ring stays idle
            // (an idle ring must not spin), but hand it on as soon as a client brings work.
            let hold = idle_hold(node, true);
            // `biased` (see `run`): work that arrived as the hold ended still goes in.
            tokio::select! {
                biased;
                _ = node.work_arrived.notified() => { add_outbox(node, &mut token); }
                _ = tokio::time::sleep(hold) => {}
            }
        } else {
            idle_hold(node, false);
        }
        if !still_current(node, &token) {
            return drop_token(node, &token, "superseded while held");
        }
        // Checked on arrival to be at most MAX_COUNTER: adding one never wraps.
        token.hop = token.hop.checked_add(1).expect("hops are checked on arrival");
        token.passed_by.insert(node.me.clone(), token.hop);
        loop {
            let next = node.ring.lock().unwrap().successor(|b| node.peers.is_online(b));
            let Some(next) = next else {
                // Alone: keep it, and take the next visit after a pause.
                tokio::time::sleep(ms(node.timing.idle_hold_ms)).await;
                break;
            };
            node.ring.lock().unwrap().pass_started(token.hop);
            let answer = pass_to(node, &next, &token).await;
            let delivered = matches!(answer, Some(PassAnswer::Accepted) | Some(PassAnswer::Repeat));
            if !node.ring.lock().unwrap().pass_ended(token.hop, delivered) {
                // The token came round while the answer was on its way: this copy is old.
                return;
            }
            match answer {
                Some(PassAnswer::Accepted) | Some(PassAnswer::Repeat) => return,
                Some(answer) => return drop_token(node, &token, &format!("{next} answered {answer:?}")),
                None => continue, // marked offline; try the one after
            }
        }
        *node.last_token_at.lock().unwrap() = Some(Instant::now());
    }
}

/// The idle pause: `idle_hold_ms` doubled per idle visit in a row, up to
/// `idle_hold_max_ms`; any work resets it.
fn idle_hold(node: &Node, idle: bool) -> Duration {
    let mut streak = node.idle_streak.lock().unwrap();
    if !idle {
        *streak = 0;
        return Duration::ZERO;
    }
    let t = &node.timing;
    let hold = t.idle_hold_ms.saturating_mul(1u64 << (*streak).min(16)).min(t.idle_hold_max_ms.max(t.idle_hold_ms));
    *streak = streak.saturating_add(1);
    ms(hold)
}

/// One pass; on a timeout, one retry to the same bank (a repeat is recognized there), so a
/// slow answer does not turn into a second token.
async fn pass_to(node: &Arc<Node>, next: &str, token: &Token) -> Option<PassAnswer> {
    let pass = TokenPass { from: node.me.clone(), token: token.clone() };
    for attempt in 0..2 {
        match node.raw_call::<_, PassAnswer>(next, Method::POST, "/peer/token", Some(&pass)).await {
            Ok(a) => return Some(a),
            // A refusal is an answer: the token was not taken. Retrying cannot change it.
            Err(PeerError::Refused(status, m)) => {
                node.emit("pass_refused", format!("{next} ({status}): {m}"));
                return Some(PassAnswer::Stale);
            }
            Err(e) if attempt == 0 => node.emit("pass_retry", format!("{next}: {e}")),
            Err(e) => node.peer_failed(next, &e.to_string()),
        }
    }
    None
}

fn add_outbox(node: &Node, token: &mut Token) -> usize {
    let room = MAX_QUEUE.saturating_sub(token.queue.len());
    let queued: std::collections::BTreeSet<crate::package::PackageKey> = token.queue.iter().map(|q| q.key()).collect();
    let new = node.intake.pending(|key| queued.contains(key), room);
    let added = new.len();
    token.queue.extend(new);
    added
}


/// Executes the queue in batches of independent packages: packages that share an account
/// run one after the other in queue order, so no package sees another half-done. A package
/// whose origin is offline waits: executing it would hold money until the origin returns.
async fn execute_queue(node: &Arc<Node>, token: &mut Token) {
    let queue = std::mem::take(&mut token.queue);
    // Dropped from the queue: its origin re-queues it when back.
    let ready: Vec<Queued> = queue.into_iter().filter(|q| node.reachable(&q.origin)).collect();
    for batch in executor::plan_batches(&ready, executor::MAX_BATCH) {
        if !still_current(node, token) {
            return;
        }
        let statuses = executor::execute_batch(node, &batch).await;
        for (q, status) in batch.iter().zip(statuses) {
            // Pending here means the decide did not happen; for a package of this bank that
            // is its own disk failing (found by the simulator: power lost inside the decide's
            // commit). Not a logic error: the record stays pending in the outbox and the
            // package runs again, or its participants presume abort.
            node.emit("package_executed", format!("{} {status:?}", q.key()));
        }
    }
}

/// Nobody has seen the token for a while: ask every bank; if none holds it or saw it
/// recently, report the fault to the lowest-address bank. Returns true if some bank vouched
/// for the token.
///
/// A vouch is not recorded as this bank's own sighting (`last_token_at`, which its probe
/// answers report). It used to be, and the simulator found the ring dead for good after a
/// token loss: banks vouched for each other in turn, each passing on the other's "recent"
/// sighting, and no bank ever declared the token lost.
async fn check_for_loss(node: &Arc<Node>, loss: Duration) -> bool {
    let mut max_gen = 0;
    for peer in node.members() {
        if peer == node.me || !node.peers.is_online(&peer) {
            continue;
        }
        if let Some(p) = probe_peer(node, &peer).await {
            max_gen = max_gen.max(p.newest_gen);
            if p.holding || p.seen_ms_ago.is_some_and(|ago| ms(ago) < loss / 2) {
                return true;
            }
        }
    }
    let never = max_gen == 0 && probe(node).newest_gen == 0;
    if never {
        // A consortium starting for the first time: no token ever existed. Not a fault.
        raise_fault(node, "no token yet: starting the ring".to_string()).await;
    } else {
        node.count(|c| c.faults += 1);
        raise_fault(node, format!("token lost: nobody saw it for {} ms (max gen seen {max_gen})", loss.as_millis())).await;
    }
    false
}

/// Asks a peer about the token. An answer with a generation above the ceiling is refused:
/// it would push every new epoch out of range.
async fn probe_peer(node: &Arc<Node>, peer: &str) -> Option<Probe> {
    let p = node.call::<(), Probe>(peer, Method::GET, "/peer/ring/probe", None).await.ok()?;
    if p.newest_gen > MAX_COUNTER {
        node.refused(peer, &Error::bad_request("bad_probe", format!("probe answer with generation {} above {MAX_COUNTER}", p.newest_gen)));
        return None;
    }
    Some(p)
}

/// Reports a fault to the lowest-address online bank (maybe this one).
pub async fn raise_fault(node: &Arc<Node>, reason: String) {
    node.emit("fault", reason.clone());
    let gen = probe(node).newest_gen;
    loop {
        let lowest = node.ring.lock().unwrap().lowest_online(|b| node.peers.is_online(b));
        if lowest == node.me {
            on_alert(node, Alert { from: node.me.clone(), reason, gen });
            return;
        }
        let a = Alert { from: node.me.clone(), reason: reason.clone(), gen };
        match node.call::<_, bool>(&lowest, Method::POST, "/peer/ring/alert", Some(&a)).await {
            Err(PeerError::Unreachable(_)) => continue, // now marked offline: the next one
            _ => return,
        }
    }
}

/// An alert reached this bank. Returns whether it starts a recovery.
pub fn on_alert(node: &Arc<Node>, a: Alert) -> bool {
    let newest = probe(node).newest_gen;
    if a.gen < newest {
        return false; // already regenerated past what the alerting bank knew
    }
    {
        let mut r = node.recovering.lock().unwrap();
        if *r {
            return false;
        }
        *r = true;
    }
    node.emit("recovery_start", format!("alert from {}: {}", a.from, a.reason));
    let n = node.clone();
    tokio::spawn(async move { recover(n).await });
    true
}

/// A block announcement from the network: refused unless it can be one of this ring's.
pub fn receive_block(node: &Arc<Node>, b: Block) -> Result<(), Error> {
    let checked = node.ring.lock().unwrap().check_block(&b.from, b.gen);
    if let Err(why) = checked {
        return Err(node.refuse(&b.from, Error::bad_request("bad_block", format!("block of generation {}: {why}", b.gen))));
    }
    on_block(node, b.gen);
    Ok(())
}

/// An alert from the network: only another member may raise one.
pub fn receive_alert(node: &Arc<Node>, a: Alert) -> Result<bool, Error> {
    let checked = node.ring.lock().unwrap().check_sender(&a.from);
    if let Err(why) = checked {
        return Err(node.refuse(&a.from, Error::bad_request("bad_alert", format!("alert: {why}"))));
    }
    Ok(on_alert(node, a))
}

pub fn on_block(node: &Arc<Node>, gen: u64) {
    if !node.ring.lock().unwrap().block(gen) {
        node.emit("block_ignored", format!("gen {gen} is old news"));
        return;
    }
    *node.blocked_until.lock().unwrap() = Some(Instant::now() + ms(node.timing.block_ms));
    node.emit("blocked", format!("until gen {gen}"));
}

/// The lowest-address bank regenerates the token: everyone discards tokens for a moment,
/// then a token of a newer epoch starts, empty; origins re-queue what was not executed.
async fn recover(node: Arc<Node>) {
    let mut seen = probe(&node).newest_gen;
    for peer in node.members() {
        if peer != node.me && node.peers.is_online(&peer) {
            if let Some(p) = probe_peer(&node, &peer).await {
                seen = seen.max(p.newest_gen);
            }
        }
    }
    let gen = seen + 1;
    on_block(&node, gen);
    for peer in node.members() {
        if peer != node.me && node.peers.is_online(&peer) {
            let b = Block { from: node.me.clone(), gen };
            let _ = node.call::<_, bool>(&peer, Method::POST, "/peer/ring/block", Some(&b)).await;
        }
    }
    tokio::time::sleep(ms(node.timing.block_ms)).await;
    *node.blocked_until.lock().unwrap() = None;
    let epoch = node.ring.lock().unwrap().new_epoch(gen - 1);
    let g = epoch.gen;
    if let Err(e) = node.db(move |s| s.raise_epoch_gen(g)).await {
        node.emit("epoch_persist_failed", e.message);
    }
    node.count(|c| c.tokens_created += 1);
    node.emit("token_created", epoch.to_string());
    *node.last_token_at.lock().unwrap() = Some(Instant::now());
    *node.token.lock().unwrap() = Some(Token::new(epoch));
    *node.recovering.lock().unwrap() = false;
    node.token_arrived.notify_one();
}
