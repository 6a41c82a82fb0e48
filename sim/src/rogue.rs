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

pub(crate) async fn rogue_main(sh: Arc<Shared>, mut bursts: UnboundedReceiver<u32>) -> turmoil::Result {
    let t: Arc<dyn Transport> = Arc::new(sim_http());
    let mut rng = ChaCha8Rng::seed_from_u64(mix(sh.scenario.seed, 700));
    let own = BankKey::from_seed(rng.random());
    let mut sent = 0u64;
    while let Some(n) = bursts.recv().await {
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
        1 => request::sign_call(own, sh.manifest.hash(), &member, &dest, &mut call, sim_wall_ms(), counter_nonce(0x66, n)),
        _ => {
            // A member's name and manifest, garbage for a signature.
            let h = format!("v1 {member} {} {} {} 0 {} {}", sh.manifest.hash_hex(), sim_wall_ms(), "11".repeat(16), "22".repeat(32), "33".repeat(64));
            call.headers.push((request::AUTH_HEADER.to_string(), h));
        }
    }
    Some((dest, call))
}
