//! The `rogue` host: a machine on the network that is not a member of the consortium. On the
//! harness's word (a `rogue` fault) it sends hostile requests to the banks: forged tokens with
//! counters past any ceiling, blocks and alerts, prepares that would credit money, finishes
//! and decides that would commit it, unsigned, with a broken signature, or signed with its own
//! key in a member's name; and replays of real token passes it overheard. Every bank must
//! refuse them all at the door (logged with this host's address), stay up, and move nothing.

use crate::net::{counter_nonce, sim_http};
use crate::run::{mix, sim_wall_ms, Shared};
use node::net::{Call, Transport};
use node::trust::keys::BankKey;
use node::trust::request;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

pub const ROGUE_HOST: &str = "rogue";

/// What the harness asks of the rogue host.
pub(crate) enum Order {
    /// Hostile requests between banks, this many, over a second.
    Forge(u32),
    /// Client requests to one bank (index), this many, over this many milliseconds.
    Flood { bank: usize, requests: u32, for_ms: u64 },
}

pub(crate) async fn rogue_main(sh: Arc<Shared>, mut orders: UnboundedReceiver<Order>) -> turmoil::Result {
    let t: Arc<dyn Transport> = Arc::new(sim_http());
    let mut rng = ChaCha8Rng::seed_from_u64(mix(sh.scenario.seed, 700));
    let own = BankKey::from_seed(rng.random());
    let mut sent = 0u64;
    while let Some(order) = orders.recv().await {
        let n = match order {
            Order::Forge(n) => n,
            Order::Flood { bank, requests, for_ms } => {
                let flood = flood(sh.clone(), t.clone(), mix(sh.scenario.seed, 800 + sent), bank, requests, for_ms);
                sent += 1;
                tokio::spawn(flood);
                continue;
            }
        };
        let gap = 1000 / u64::from(n.max(1));
        for _ in 0..n {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..=gap))).await;
            let Some((dest, call)) = forge(&sh, &mut rng, &own, sent) else { continue };
            sent += 1;
            sh.lock().acks.rogue_sent += 1;
            let t = t.clone();
            tokio::spawn(async move {
                let _ = t.call(&dest, call).await;
            });
        }
    }
    // Keep the HTTP client to the end (see workload::client_main).
    let _keep = t;
    std::future::pending::<()>().await;
    Ok(())
}

/// Client requests at a rate no client should send; each answer is counted by status.
async fn flood(sh: Arc<Shared>, t: Arc<dyn Transport>, seed: u64, bank: usize, requests: u32, for_ms: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dest = sh.addrs[bank].clone();
    let per_ms = (f64::from(requests) / for_ms.max(1) as f64).max(0.001);
    let mut due = 0.0f64;
    let start = tokio::time::Instant::now();
    // At most this many requests in flight (connections open at once): turmoil's listening
    // sockets hold 64 pending connections, and overflowing one stops the whole simulation.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(48));
    for k in 0..requests {
        due += 1.0 / per_ms;
        tokio::time::sleep_until(start + Duration::from_micros((due * 1000.0) as u64)).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let call = match rng.random_range(0..4) {
            0 | 1 => Call::new(hyper::Method::GET, "/status", None, Duration::from_millis(500)),
            2 => Call::new(hyper::Method::GET, "/consortium/users/52998224725/accounts", None, Duration::from_millis(500)),
            _ => Call::new(hyper::Method::POST, "/packages", Some(format!("{{\"id\":\"flood-{k}\",\"operations\":[").into_bytes()), Duration::from_millis(500)),
        };
        let t = t.clone();
        let (sh, dest) = (sh.clone(), dest.clone());
        tokio::spawn(async move {
            let code = t.call(&dest, call).await.map_or(0, |r| r.status.as_u16());
            *sh.lock().acks.flood.entry(code).or_default() += 1;
            drop(permit);
        });
    }
}

/// One hostile request and the bank it goes to.
fn forge(sh: &Shared, rng: &mut ChaCha8Rng, own: &BankKey, n: u64) -> Option<(String, Call)> {
    let banks = &sh.addrs;
    let dest = banks[rng.random_range(0..banks.len())].clone();
    let member = banks[rng.random_range(0..banks.len())].clone();
    let huge = [u64::MAX, (1 << 62) + 1, 1 << 62, 1_000_000];
    let gen = huge[rng.random_range(0..huge.len())];
    let deposit = json!({"id": format!("rogue-{n}"), "operations": [
        {"kind": "deposit", "to": {"bank": dest, "account": "000001"}, "amount": 1_000_000}]});
    let (path, body) = match rng.random_range(0..7) {
        0 => ("/peer/token", json!({"from": member, "token": {"epoch": {"gen": gen, "creator": member}, "hop": gen,
            "visits": {}, "passed_by": {}, "busy_hop": 0, "queue": [{"package": deposit, "origin": member}]}})),
        1 => ("/peer/ring/block", json!({"from": member, "gen": gen})),
        2 => ("/peer/ring/alert", json!({"from": member, "reason": "token lost", "gen": gen})),
        3 => ("/peer/prepare", json!([{"origin": member, "package": deposit}])),
        4 => ("/peer/finish", json!([{"origin": member, "id": format!("rogue-{n}"),
            "decision": {"digest": "00".repeat(32), "outcome": "commit", "sig": "00".repeat(64)}}])),
        5 => ("/peer/decide", json!([{"origin": dest, "id": "c1-1", "outcome": "commit", "results": [{"index": 0, "ok": true}]}])),
        _ => {
            // A real token pass it overheard, played again: to its receiver, or to another.
            let seen = sh.chaos.inner.lock().unwrap().passes.last().cloned()?;
            let to = if rng.random_bool(0.5) { seen.to } else { dest };
            // Overheard as it was sent, this copy may arrive first: then the bank refuses the
            // genuine one as the replay. The harness knows the nonce, so that refusal is not
            // counted against the honest sender.
            if let Some(nonce) = seen.call.headers.iter().find(|(k, _)| k == request::AUTH_HEADER).and_then(|(_, v)| v.split(' ').nth(4)) {
                sh.lock().rogue_replayed.insert(nonce.to_string());
            }
            return Some((to, seen.call));
        }
    };
    let mut call = Call::new(hyper::Method::POST, path, Some(serde_json::to_vec(&body).unwrap()), Duration::from_millis(500));
    match rng.random_range(0..3) {
        0 => {} // unsigned
        // Its own key in a member's name: keys no member shares with it.
        1 => request::sign_call(&request::PairKeys::new(&member, own, &sh.manifest), &dest, &mut call, sim_wall_ms(), counter_nonce(0x66, n)),
        _ => {
            // A member's name and manifest, garbage for a signature.
            let h = format!("v2 {member} {} {} {} 0 {} {}", sh.manifest.hash_hex(), sim_wall_ms(), "11".repeat(16), "22".repeat(32), "33".repeat(32));
            call.headers.push((request::AUTH_HEADER.to_string(), h));
        }
    }
    Some((dest, call))
}
