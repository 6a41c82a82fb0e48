//! Packages on real nodes over loopback: atomic commit and abort across banks, exactly-once
//! retries, a bank killed under load, and many conflicting clients at once.

mod common;
use common::{cpf, Cluster};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn transfer(c: &Cluster, from: (usize, &str), to: (usize, &str), amount: u64) -> Value {
    json!({"kind": "transfer", "from": c.at(from.0, from.1), "to": c.at(to.0, to.1), "amount": amount})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_across_three_banks_commits_or_aborts_whole() {
    let c = common::start(3).await;
    let a = c.account(0, &cpf(1)).await;
    let b = c.account(1, &cpf(2)).await;
    let d = c.account(2, &cpf(3)).await;
    c.deposit(0, &a, 10_000, "fund-a").await;
    c.deposit(1, &b, 5_000, "fund-b").await;

    let ok = json!({"id": "p-ok", "operations": [
        transfer(&c, (0, &a), (1, &b), 3_000),
        transfer(&c, (1, &b), (2, &d), 5_000),
        {"kind": "withdraw", "from": c.at(0, &a), "amount": 1_000},
    ]});
    let (code, v) = c.submit(2, ok).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "committed", "{v}");
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["ok"] == true));
    assert_eq!(c.balance(0, &a).await, (6_000, 0, 0));
    assert_eq!(c.balance(1, &b).await, (3_000, 0, 0));
    assert_eq!(c.balance(2, &d).await, (5_000, 0, 0));

    // Credits are spendable only after commit, so b could not have paid 8,000 above.
    // One leg lacks funds: every other leg is rolled back, and the result says why.
    let bad = json!({"id": "p-bad", "operations": [
        transfer(&c, (0, &a), (2, &d), 2_000),
        transfer(&c, (1, &b), (0, &a), 3_001),
        {"kind": "deposit", "to": c.at(1, &b), "amount": 50},
    ]});
    let (code, v) = c.submit(0, bad).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "aborted", "{v}");
    let r = v["results"].as_array().unwrap();
    assert!(r[1]["reason"].as_str().unwrap().contains("insufficient funds"), "{v}");
    assert!(r[0]["reason"].as_str().unwrap().contains("rolled back"), "{v}");
    assert_eq!(c.balance(0, &a).await, (6_000, 0, 0));
    assert_eq!(c.balance(1, &b).await, (3_000, 0, 0));
    assert_eq!(c.balance(2, &d).await, (5_000, 0, 0));

    // An unknown account aborts with its own reason.
    let (_, v) = c.submit(1, json!({"id": "p-404", "operations": [transfer(&c, (1, &b), (2, "999999"), 1)]})).await;
    assert_eq!(v["status"], "aborted");
    assert!(v["results"][0]["reason"].as_str().unwrap().contains("not found"), "{v}");

    let (_, s) = c.get(2, "/status").await;
    assert_eq!(s["counters"]["committed"], 1, "{s}");
    assert!(!s["token"]["epoch"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_returns_the_first_outcome_and_never_executes_twice() {
    let c = common::start(2).await;
    let a = c.account(0, &cpf(10)).await;
    let b = c.account(1, &cpf(11)).await;
    c.deposit(0, &a, 1_000, "fund").await;
    let p = json!({"id": "once", "operations": [transfer(&c, (0, &a), (1, &b), 400)]});
    let (_, first) = c.submit(0, p.clone()).await;
    assert_eq!(first["status"], "committed");
    for _ in 0..3 {
        let (code, again) = c.submit(0, p.clone()).await;
        assert_eq!(code, 200);
        assert_eq!(again, first, "a retry answers the first outcome");
    }
    assert_eq!(c.balance(0, &a).await, (600, 0, 0), "executed once");
    assert_eq!(c.balance(1, &b).await, (400, 0, 0));
    let changed = json!({"id": "once", "operations": [transfer(&c, (0, &a), (1, &b), 1)]});
    let (code, e) = c.submit(0, changed).await;
    assert_eq!((code, e["error"]["code"].as_str()), (409, Some("id_reused")));
    let (code, v) = c.get(0, "/packages/once").await;
    assert_eq!((code, &v), (200, &first));
}

/// Sums every account's balance, and checks no money is held or blocked.
async fn settled_total(c: &Cluster, accounts: &[(usize, String)]) -> u64 {
    let mut total = 0;
    for (i, key) in accounts {
        let (bal, held, blocked) = c.balance(*i, key).await;
        assert_eq!((held, blocked), (0, 0), "account {key} at bank {i} still has money in flight");
        total += bal;
    }
    total
}

async fn wait_settled(c: &Cluster, accounts: &[(usize, String)]) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut busy = false;
        for i in 0..c.addrs.len() {
            let (_, s) = c.get(i, "/status").await;
            busy |= s["queued"] != 0 || s["in_doubt"] != 0;
        }
        if !busy || std::time::Instant::now() > deadline {
            return settled_total(c, accounts).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_bank_under_load_loses_nothing() {
    let c = common::start(3).await;
    let mut accounts = Vec::new();
    for i in 0..3 {
        let k = c.account(i, &cpf(100 + i as u32)).await;
        c.deposit(i, &k, 100_000, &format!("fund{i}")).await;
        accounts.push((i, k));
    }
    let c = Arc::new(tokio::sync::Mutex::new(c));
    // Clients at banks 0 and 2 move money around all three; bank 1 dies and comes back.
    let mut clients = Vec::new();
    for origin in [0usize, 2] {
        let c = c.clone();
        let accounts = accounts.clone();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..30 {
                let (from, to) = (&accounts[n % 3], &accounts[(n + 1) % 3]);
                let id = format!("load-{origin}-{n}");
                let body = {
                    let c = c.lock().await;
                    c.sign(origin, json!({"id": id, "operations": [transfer(&c, (from.0, &from.1), (to.0, &to.1), 100 + n as u64)]}))
                };
                let addr = c.lock().await.addrs[origin].clone();
                let (code, v) = post_unlocked(&addr, body).await;
                if code == 200 {
                    acked.push((id, v["status"].as_str().unwrap().to_string()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.lock().await.kill(1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    c.lock().await.restart(1).await;
    let mut acked = Vec::new();
    for (origin, t) in [0usize, 2].into_iter().zip(clients) {
        for (id, status) in t.await.unwrap() {
            acked.push((origin, id, status));
        }
    }
    let c = Arc::try_unwrap(c).ok().unwrap().into_inner();
    c.wait_ring().await;
    let total = wait_settled(&c, &accounts).await;
    assert_eq!(total, 300_000, "money conserved across the crash");
    assert!(acked.iter().any(|a| a.2 == "committed"), "some packages went through");
    for (origin, id, status) in &acked {
        let (code, v) = c.get(*origin, &format!("/packages/{id}")).await;
        assert_eq!(code, 200);
        assert_eq!(v["status"].as_str(), Some(status.as_str()), "{id} changed after it was acknowledged");
    }
    // The ring resumes: a new cross-bank transfer through the restarted bank commits.
    let (_, v) = c.submit(0, json!({"id": "after", "operations": [transfer(&c, (0, &accounts[0].1), (1, &accounts[1].1), 1)]})).await;
    assert_eq!(v["status"], "committed", "{v}");
}

async fn post_unlocked(addr: &str, body: Value) -> (u16, Value) {
    use node::net::{tcp_transport, Call, Transport};
    let call = Call::new(hyper::Method::POST, "/packages", Some(serde_json::to_vec(&body).unwrap()), Duration::from_secs(20));
    match tcp_transport().call(addr, call).await {
        Ok(r) => (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_clients_with_conflicting_transfers() {
    let c = common::start(3).await;
    let mut accounts = Vec::new();
    for i in 0..3 {
        for u in 0..2 {
            let k = c.account(i, &cpf(500 + (i * 2 + u) as u32)).await;
            c.deposit(i, &k, 1_000, &format!("f{i}-{u}")).await;
            accounts.push((i, k));
        }
    }
    let addrs = c.addrs.clone();
    let mut tasks = Vec::new();
    for client in 0..20usize {
        let accounts = accounts.clone();
        let addrs = addrs.clone();
        let signer = c.signer.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..5usize {
                // Everyone fights over the same six accounts; amounts large enough to fail.
                let from = &accounts[(client + n) % 6];
                let to = &accounts[(client * 7 + n + 1) % 6];
                if from == to {
                    continue;
                }
                let body = json!({"id": format!("c{client}-{n}"), "operations": [{
                    "kind": "transfer",
                    "from": {"bank": addrs[from.0], "account": from.1},
                    "to": {"bank": addrs[to.0], "account": to.1},
                    "amount": 150 + (client * 37 % 400) as u64,
                }]});
                let (code, v) = post_unlocked(&addrs[client % 3], signer.sign(client % 3, body)).await;
                statuses.push((code, v["status"].as_str().unwrap_or("").to_string()));
            }
            statuses
        }));
    }
    let mut committed = 0;
    let mut aborted = 0;
    for t in tasks {
        for (code, s) in t.await.unwrap() {
            assert!(code == 200 || code == 202, "{code}");
            committed += (s == "committed") as u32;
            aborted += (s == "aborted") as u32;
        }
    }
    let total = wait_settled(&c, &accounts).await;
    assert_eq!(total, 6_000, "money conserved");
    assert!(committed > 0, "some transfers committed ({aborted} aborted)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_naming_a_down_bank_aborts_with_a_clear_reason_and_the_ring_goes_on() {
    let mut c = common::start(3).await;
    let a = c.account(0, &cpf(40)).await;
    let b = c.account(1, &cpf(41)).await;
    let d = c.account(2, &cpf(42)).await;
    c.deposit(0, &a, 1_000, "fund").await;
    c.kill(2);
    let (code, v) = c.submit(0, json!({"id": "to-down", "operations": [
        transfer(&c, (0, &a), (1, &b), 10),
        transfer(&c, (0, &a), (2, &d), 10),
    ]})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "aborted", "{v}");
    let reason = v["results"][1]["reason"].as_str().unwrap();
    assert!(reason.contains("unreachable") && reason.contains(&c.addrs[2]), "names the bank: {reason}");
    assert_eq!(c.balance(0, &a).await, (1_000, 0, 0), "the other leg was rolled back");
    // The two remaining banks keep working.
    let (_, v) = c.submit(1, json!({"id": "after", "operations": [transfer(&c, (0, &a), (1, &b), 10)]})).await;
    assert_eq!(v["status"], "committed", "{v}");
    // The bank before bank 2 in ring order learns it is down at its next token pass (which
    // bank that is depends on the ports the test got: asking bank 0 made the test flaky).
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by_key(|&i| node::ring::order::ring_key(&c.addrs[i]));
    let at = order.iter().position(|&i| i == 2).unwrap();
    let before = order[(at + 2) % 3];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, s) = c.get(before, "/status").await;
        let offline = s["peers"].as_array().unwrap().iter().any(|p| p["bank"] == c.addrs[2] && p["online"] == false);
        if offline || std::time::Instant::now() > deadline {
            assert!(offline, "{s}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
