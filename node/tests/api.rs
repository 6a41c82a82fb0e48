//! The client API on real nodes over loopback: users, accounts, listing across the
//! consortium, bad input, and persistence across kill -9.

mod common;
use common::cpf;
use hyper::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_accounts_and_consortium_listing_with_a_bank_down() {
    let mut c = common::start(3).await;
    for i in 0..3 {
        assert_eq!(c.get(i, "/health/live").await, (200, json!({"live": true})));
        assert_eq!(c.get(i, "/health/ready").await, (200, json!({"ready": true})), "the ring formed: every bank is ready");
    }
    let ana = cpf(111);
    let bia = cpf(222);
    for i in 0..2 {
        for (who, name) in [(&ana, "Ana"), (&bia, "Bia")] {
            let (code, u) = c.register(i, who, name).await;
            assert_eq!(code, 201, "{u}");
        }
    }
    let (code, e) = c.register(0, &ana, "Ana again").await;
    assert_eq!((code, e["error"]["code"].as_str()), (409, Some("user_exists")));
    // Another key for a CPF the other banks know: refused (the easy hijack of a CPF).
    let thief = tools::cluster::random_key();
    let key_hex = thief.public().to_hex();
    let c_ana = node::domain::Cpf::parse(&ana).unwrap();
    let proof = node::trust::user::sign(&thief, &node::trust::user::register_message(&c.addrs[2], &c_ana, &key_hex));
    let (code, e) = c.post(2, "/users", json!({"cpf": ana, "name": "Not Ana", "public_key": key_hex, "proof": proof})).await;
    assert_eq!((code, e["error"]["code"].as_str()), (409, Some("key_conflict")), "{e}");
    let (code, e) = c.post(2, "/users", json!({"cpf": cpf(444), "name": "X", "public_key": key_hex, "proof": proof})).await;
    assert_eq!((code, e["error"]["code"].as_str()), (403, Some("bad_proof")), "a proof is for one CPF: {e}");
    let (code, u) = c.get(0, &format!("/users/{ana}")).await;
    assert_eq!((code, u["name"].as_str()), (200, Some("Ana")));

    // Each kind of account at two banks.
    let mut keys = Vec::new();
    for i in 0..2 {
        for (kind, holders) in [("personal", json!([ana])), ("joint", json!([ana, bia])), ("business", json!([ana]))] {
            let holders: Vec<&str> = holders.as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
            let (code, a) = c.open(i, kind, &holders).await;
            assert_eq!(code, 201, "{kind} at {i}: {a}");
            assert_eq!(a["bank"], c.addrs[i]);
            assert_eq!(a["balance"], 0);
            keys.push((i, a["key"].as_str().unwrap().to_string()));
        }
    }
    let (code, list) = c.get(1, &format!("/users/{ana}/accounts")).await;
    assert_eq!(code, 200);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 3);

    // Listed from the third bank, also with bank 1 stopped.
    let (code, all) = c.get(2, &format!("/consortium/users/{ana}/accounts")).await;
    assert_eq!(code, 200);
    let count = |v: &Value| v["banks"].as_array().unwrap().iter().map(|b| b["accounts"].as_array().unwrap().len()).sum::<usize>();
    assert_eq!(count(&all), 6);
    c.kill(1);
    let (code, all) = c.get(2, &format!("/consortium/users/{ana}/accounts")).await;
    assert_eq!(code, 200, "one bank down never fails the whole call");
    let banks = all["banks"].as_array().unwrap();
    let down = banks.iter().find(|b| b["bank"] == c.addrs[1]).unwrap();
    assert_eq!(down["reachable"], false);
    assert_eq!(count(&all), 3);
    assert!(banks.iter().filter(|b| b["bank"] != c.addrs[1]).all(|b| b["reachable"] == true));

    // Bia's joint accounts show up for her too.
    let (_, all) = c.get(0, &format!("/consortium/users/{bia}/accounts")).await;
    assert_eq!(count(&all), 1, "only bank 0's joint account while bank 1 is down: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let c = common::start(2).await;
    let ana = cpf(333);
    let key = c.account(0, &ana).await;
    let unsigned = |kind: &str, holders: Value| json!({"kind": kind, "holders": holders, "time_ms": 0, "signatures": []});
    let raw = |body: &str| c.raw(0, Method::POST, "/users", Some(body.as_bytes().to_vec()));
    let cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        ("malformed json", raw("{\"cpf\": ").await, 400, "malformed_json"),
        ("wrong type", c.post(0, "/users", json!({"cpf": 123, "name": "X", "public_key": "", "proof": ""})).await, 400, "bad_field"),
        ("unknown field", c.post(0, "/users", json!({"cpf": cpf(5), "name": "X", "public_key": "", "proof": "", "admin": true})).await, 400, "bad_field"),
        ("no key", c.post(0, "/users", json!({"cpf": cpf(5), "name": "X"})).await, 400, "bad_field"),
        ("invalid cpf", c.post(0, "/users", json!({"cpf": "123.456.789-00", "name": "X", "public_key": "", "proof": ""})).await, 400, "invalid_cpf"),
        ("empty name", c.post(0, "/users", json!({"cpf": cpf(6), "name": "  ", "public_key": "", "proof": ""})).await, 400, "empty_name"),
        ("not a key", c.post(0, "/users", json!({"cpf": cpf(6), "name": "X", "public_key": "abc", "proof": ""})).await, 400, "bad_key"),
        ("unknown user", c.get(0, &format!("/users/{}", cpf(7))).await, 404, "user_not_found"),
        ("unknown account", c.get(0, "/accounts/999999").await, 404, "account_not_found"),
        ("personal with two", c.open(0, "personal", &[&ana, &cpf(8)]).await, 422, "personal_one_holder"),
        ("unregistered holder", c.open(0, "joint", &[&ana, &cpf(8)]).await, 404, "user_not_found"),
        ("unknown kind", c.post(0, "/accounts", unsigned("savings", json!([ana]))).await, 400, "bad_field"),
        ("stale opening", c.post(0, "/accounts", unsigned("business", json!([ana]))).await, 422, "stale_signature"),
        ("too large", raw(&format!("{{\"cpf\":\"{}\",\"name\":\"{}\"}}", cpf(9), "x".repeat(70_000))).await, 413, "body_too_large"),
        ("no route", c.get(0, "/nope").await, 404, "no_route"),
    ];
    let dep = |amount: Value| json!({"id": "bad", "operations": [{"kind": "deposit", "to": c.at(0, &key), "amount": amount}]});
    let pkg_cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        ("zero amount", c.post(0, "/packages", dep(json!(0))).await, 400, "bad_amount"),
        ("negative amount", c.post(0, "/packages", dep(json!(-5))).await, 400, "bad_field"),
        (
            "overflowing amount",
            c.raw(0, Method::POST, "/packages", Some(dep(json!(1)).to_string().replace("\"amount\":1", "\"amount\":18446744073709551616").into_bytes())).await,
            400,
            "bad_field",
        ),
        ("fractional amount", c.post(0, "/packages", dep(json!(1.5))).await, 400, "bad_field"),
        (
            "unknown bank",
            c.post(0, "/packages", json!({"id": "b2", "operations": [{"kind": "deposit", "to": {"bank": "10.9.9.9:1", "account": key}, "amount": 1}]})).await,
            422,
            "unknown_bank",
        ),
        ("no operations", c.post(0, "/packages", json!({"id": "b3", "operations": []})).await, 400, "no_operations"),
        ("unsigned", c.post(0, "/packages", dep(json!(1))).await, 422, "unsigned"),
        ("unknown package", c.get(0, "/packages/never").await, 404, "package_not_found"),
    ];
    for (what, (code, body), want_code, want_err) in cases.into_iter().chain(pkg_cases) {
        assert_eq!(code, want_code, "{what}: {body}");
        assert_eq!(body["error"]["code"].as_str(), Some(want_err), "{what}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{what}: a message a person can read");
    }
    // Nothing changed: one user, one account, no money, no package queued.
    for n in [5, 6, 8, 9] {
        assert_eq!(c.get(0, &format!("/users/{}", cpf(n))).await.0, 404);
    }
    let (_, list) = c.get(0, &format!("/users/{ana}/accounts")).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(c.balance(0, &key).await, (0, 0, 0));
    let (_, s) = c.get(0, "/status").await;
    assert_eq!(s["queued"], 0);
    assert_eq!(s["counters"]["submitted"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut c = common::start(2).await;
    let mut keys = Vec::new();
    for n in 0..20 {
        keys.push(c.account(0, &cpf(1000 + n)).await);
    }
    c.deposit(0, &keys[3], 12_345, "dep-before-crash").await;
    c.kill(0);
    c.restart(0).await;
    for (n, key) in keys.iter().enumerate() {
        let (code, u) = c.get(0, &format!("/users/{}", cpf(1000 + n as u32))).await;
        assert_eq!(code, 200, "user {n} lost: {u}");
        let (code, _) = c.get(0, &format!("/accounts/{key}")).await;
        assert_eq!(code, 200, "account {key} lost");
    }
    assert_eq!(c.balance(0, &keys[3]).await, (12_345, 0, 0));
    let (code, p) = c.get(0, "/packages/dep-before-crash").await;
    assert_eq!((code, p["status"].as_str()), (200, Some("committed")));
    // Keys keep counting after a restart: no key is ever reused.
    let next = c.account(0, &cpf(2000)).await;
    assert!(!keys.contains(&next));
}

/// Issue 12: `/metrics` in Prometheus text format, and the counters move with the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_bank_did() {
    let c = common::start(3).await;
    let scrape = |i: usize| {
        let c = &c;
        async move {
            let (code, text) = c.get_text(i, "/metrics").await;
            assert_eq!(code, 200, "{text}");
            text
        }
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' ')).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let before = scrape(0).await;
    assert_eq!(value(&before, "bank_peers_online"), 2.0, "{before}");
    let a = c.account(0, &cpf(71)).await;
    let b = c.account(1, &cpf(72)).await;
    c.deposit(0, &a, 1_000, "m-d").await;
    let (_, v) = c.submit(0, serde_json::json!({"id": "m-t", "operations": [{"kind": "transfer", "from": c.at(0, &a), "to": c.at(1, &b), "amount": 100}]})).await;
    assert_eq!(v["status"], "committed");
    let after = scrape(0).await;
    let committed = "bank_events_total{event=\"committed\"}";
    assert_eq!(value(&after, committed) - value(&before, committed), 2.0, "two packages committed here:\n{after}");
    assert!(value(&after, "bank_package_seconds_count") >= 2.0, "{after}");
    assert!(value(&after, "bank_group_commit_writes_count") > value(&before, "bank_group_commit_writes_count"), "{after}");
    assert!(value(&after, "bank_token_rotation_seconds_count") > 0.0, "{after}");
    // Whichever bank held the token ran the two phases: count them over all banks.
    let mut all = String::new();
    for i in 0..3 {
        all.push_str(&scrape(i).await);
    }
    for phase in ["prepare", "decide", "finish"] {
        let series = format!("bank_phase_seconds_count{{phase=\"{phase}\"}}");
        let n: f64 = all.lines().filter(|l| l.starts_with(&series)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
        assert!(n > 0.0, "{phase}: {all}");
    }
    assert!(after.contains("# TYPE bank_package_seconds histogram") && after.ends_with("# EOF\n"), "Prometheus text: {after}");
    assert!(!after.contains(&cpf(71)), "nothing about customers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_is_for_holders_only_a_bounded_page_at_a_time() {
    let c = common::start(2).await;
    let (ana, bia) = (cpf(501), cpf(502));
    let a = c.account(0, &ana).await;
    let b = c.account(1, &bia).await;
    assert_eq!(c.register(0, &bia, "Bia").await.0, 201, "bia is a user of bank 0 too, holding nothing there");
    c.deposit(0, &a, 1_000, "st-fund").await;
    let out = json!({"id": "st-out", "operations": [{"kind": "transfer", "from": c.at(0, &a), "to": c.at(1, &b), "amount": 300}]});
    let (code, v) = c.submit(0, out).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("committed")), "{v}");

    let path = |from: &str, limit: &str| format!("/accounts/{a}/statement?from={from}&limit={limit}");
    let (code, p1) = c.get_as(0, &path("1", "1"), &ana).await;
    assert_eq!(code, 200, "{p1}");
    assert_eq!(p1["entries"].as_array().unwrap().len(), 1);
    assert_eq!((p1["entries"][0]["n"].as_u64(), p1["entries"][0]["side"].as_str(), p1["entries"][0]["amount"].as_u64()), (Some(1), Some("credit"), Some(1_000)));
    assert_eq!(p1["entries"][0]["package"], "st-fund");
    assert_eq!(p1["next"], 2);
    let (code, p2) = c.get_as(0, &path("2", "500"), &ana).await;
    assert_eq!(code, 200, "{p2}");
    let e = &p2["entries"][0];
    assert_eq!((e["n"].as_u64(), e["side"].as_str(), e["amount"].as_u64(), e["total_after"].as_u64()), (Some(2), Some("debit"), Some(300), Some(700)));
    assert!(p2["next"].is_null() && p2["entries"].as_array().unwrap().len() == 1);
    let (code, whole) = c.get_as(0, &format!("/accounts/{a}/statement"), &ana).await;
    assert_eq!((code, whole["entries"].as_array().unwrap().len()), (200, 2), "defaults: from 1, 100 entries");
    // The money arrived at b's bank, in b's statement.
    let (code, sb) = c.get_as(1, &format!("/accounts/{b}/statement"), &bia).await;
    assert_eq!((code, sb["entries"][0]["amount"].as_u64(), sb["entries"][0]["origin"].as_str()), (200, Some(300), Some(c.addrs[0].as_str())));

    // Holders only: not another user, not a teller's key over the network, not an account
    // that does not exist (answered alike, so keys cannot be probed).
    for (who, p) in [(bia.as_str(), path("1", "10")), (ana.as_str(), "/accounts/999999/statement".to_string())] {
        let (code, e) = c.get_as(0, &p, who).await;
        assert_eq!((code, e["error"]["code"].as_str()), (403, Some("not_yours")), "{who} {p}: {e}");
    }
    let (code, e) = c.get(0, &path("1", "10")).await;
    assert_eq!((code, e["error"]["code"].as_str()), (403, Some("not_yours")), "a teller: {e}");
    let (code, e) = c.raw(0, Method::GET, &path("1", "10"), None).await;
    assert_eq!(code, 401, "unsigned: {e}");
    // Bad paging is a clear 400, before anything is read.
    for bad in [path("0", "10"), path("1", "0"), path("1", "501"), path("x", "10"), path("1", "-1"), format!("/accounts/{a}/statement?from=1&color=red")] {
        let (code, e) = c.get_as(0, &bad, &ana).await;
        assert_eq!((code, e["error"]["code"].as_str()), (400, Some("bad_page")), "{bad}: {e}");
    }
}
