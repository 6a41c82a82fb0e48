//! The operator's tools on real nodes over loopback: the teller-signed admin routes, a
//! backup taken while packages move, and a bank restored from an old backup that re-learns
//! its decisions from the others before it accepts packages again.

mod common;
use common::{cpf, Cluster};
use consortium_core::trust::read::{self, ReadStatement, Reader};
use consortium_net::{Call, Transport};
use hyper::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The `authorization` header of bank `i`'s teller for `/admin/{what}`.
fn teller_header(c: &Cluster, i: usize, what: &str) -> (String, String) {
    let s = ReadStatement::sign(Reader::Teller, &c.signer.tellers[i], &c.addrs[i], &read::scope_admin(what), now_ms(), rand::random());
    (read::HEADER.to_string(), s.to_header())
}

async fn admin(c: &Cluster, i: usize, what: &str) -> (u16, Value) {
    c.raw_with(i, Method::GET, &format!("/admin/{what}"), None, vec![teller_header(c, i, what)]).await
}

/// The backup's bytes, as `bank admin backup` receives them.
async fn backup(c: &Cluster, i: usize, to: &Path) {
    let mut call = Call::new(Method::GET, "/admin/backup", None, Duration::from_secs(30));
    call.headers = vec![teller_header(c, i, "backup")];
    let r = consortium_net::tcp_transport().call(&c.addrs[i], call).await.expect("the bank answers");
    assert_eq!(r.status.as_u16(), 200, "{}", String::from_utf8_lossy(&r.body));
    std::fs::write(to, &r.body).unwrap();
}

/// A GET between banks, signed as bank `from` signs it for bank `to`.
async fn peer_get(c: &Cluster, from: usize, to: usize, path: &str) -> (u16, Value) {
    use node::clock::WallClock;
    let (key, _) = node::trust::keyfile::load_or_create(&c.data_dir(from)).unwrap();
    let manifest = node::trust::manifest::Manifest::from_toml(&std::fs::read_to_string(c.manifest_path()).unwrap()).unwrap();
    let keys = node::trust::request::PairKeys::new(&c.addrs[from], &key, &manifest);
    let mut call = Call::new(Method::GET, path, None, Duration::from_secs(5));
    node::trust::request::sign_call(&keys, &c.addrs[to], &mut call, node::clock::SystemClock.now_ms(), rand::random());
    c.raw_with(to, Method::GET, path, None, call.headers).await
}

fn transfer(c: &Cluster, id: &str, from: (usize, &str), to: (usize, &str), amount: u64) -> Value {
    json!({"id": id, "operations": [{"kind": "transfer", "from": c.at(from.0, from.1), "to": c.at(to.0, to.1), "amount": amount}]})
}

async fn wait_quiet(c: &Cluster, banks: &[usize]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut busy = false;
        for &i in banks {
            let (_, s) = c.get(i, "/status").await;
            busy |= s["queued"] != 0 || s["in_doubt"] != 0;
        }
        if !busy {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the banks did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_the_teller_s_and_a_backup_under_load_is_consistent() {
    let c = common::start(2).await;
    let a = c.account(0, &cpf(1)).await;
    let b = c.account(1, &cpf(2)).await;
    c.deposit(0, &a, 100_000, "fund-a").await;
    c.deposit(1, &b, 100_000, "fund-b").await;

    // Who may: no statement, a user's, a teller's for another operation, a teller's of another bank.
    let (code, v) = c.get(0, "/admin/in-doubt").await;
    assert_eq!((code, v["error"]["code"].as_str()), (401, Some("unauthenticated")));
    let user = ReadStatement::sign(Reader::User(consortium_core::domain::Cpf::parse(&cpf(1)).unwrap()), &c.user_key(&cpf(1)), &c.addrs[0], &read::scope_admin("in-doubt"), now_ms(), rand::random());
    let (code, v) = c.raw_with(0, Method::GET, "/admin/in-doubt", None, vec![(read::HEADER.into(), user.to_header())]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("not_operator")), "{v}");
    let (code, v) = c.raw_with(0, Method::GET, "/admin/in-doubt", None, vec![teller_header(&c, 0, "backup")]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("wrong_scope")), "{v}");
    let other = ReadStatement::sign(Reader::Teller, &c.signer.tellers[1], &c.addrs[0], &read::scope_admin("in-doubt"), now_ms(), rand::random());
    let (code, v) = c.raw_with(0, Method::GET, "/admin/in-doubt", None, vec![(read::HEADER.into(), other.to_header())]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("bad_signature")), "another bank's teller: {v}");

    let (code, v) = admin(&c, 0, "in-doubt").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["bank"], c.addrs[0]);
    assert_eq!(v["reconciling"], false);
    let (f0, f1) = (admin(&c, 0, "fingerprints").await.1, admin(&c, 1, "fingerprints").await.1);
    assert_eq!(f0["manifest"], f1["manifest"], "one manifest");
    assert_eq!(f0["banks"], f1["banks"], "every bank's key, as each holds it");
    assert_eq!(f0["banks"].as_array().unwrap().len(), 2);
    assert_eq!(f0["tellers"].as_array().unwrap().len(), 1);
    assert_ne!(f0["tellers"], f1["tellers"]);

    // Any account's statement, to the teller only, for the account its statement names.
    let (code, v) = admin(&c, 0, &format!("statement/{a}")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["entries"][0]["package"], "fund-a", "{v}");
    assert_eq!(v["entries"][0]["total_after"], 100_000, "{v}");
    let (code, v) = c.raw_with(0, Method::GET, &format!("/admin/statement/{a}"), None, vec![teller_header(&c, 0, "statement/other")]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("wrong_scope")), "a statement for another account: {v}");
    let holder = ReadStatement::sign(Reader::User(consortium_core::domain::Cpf::parse(&cpf(1)).unwrap()), &c.user_key(&cpf(1)), &c.addrs[0], &read::scope_admin(&format!("statement/{a}")), now_ms(), rand::random());
    let (code, v) = c.raw_with(0, Method::GET, &format!("/admin/statement/{a}"), None, vec![(read::HEADER.into(), holder.to_header())]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("not_operator")), "even the holder: {v}");
    let (code, v) = c.raw_with(0, Method::GET, &format!("/admin/statement/{a}?limit=501"), None, vec![teller_header(&c, 0, &format!("statement/{a}"))]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (400, Some("bad_page")), "{v}");
    let (code, v) = admin(&c, 0, "statement/nope").await;
    assert_eq!((code, v["error"]["code"].as_str()), (404, Some("account_not_found")), "{v}");

    // Backups while packages move both ways.
    let mover = {
        let (addrs, signer) = (c.addrs.clone(), c.signer.clone());
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            let t = consortium_net::tcp_transport();
            let mut n = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(4);
            while std::time::Instant::now() < deadline {
                let (from, to) = if n % 2 == 0 { ((0, &a), (1, &b)) } else { ((1, &b), (0, &a)) };
                let body = json!({"id": format!("m{n}"), "operations": [{"kind": "transfer", "from": {"bank": addrs[from.0], "account": from.1}, "to": {"bank": addrs[to.0], "account": to.1}, "amount": 10}]});
                let signed = signer.sign(from.0, body);
                let _ = t.call(&addrs[from.0], Call::new(Method::POST, "/packages", Some(serde_json::to_vec(&signed).unwrap()), Duration::from_secs(20))).await;
                n += 1;
            }
            n
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for k in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let to = dir.path().join(format!("copy{k}.redb"));
        backup(&c, 0, &to).await;
        copies.push(to);
    }
    let moved = mover.await.unwrap();
    assert!(moved > 3, "packages moved during the backups: {moved}");
    wait_quiet(&c, &[0, 1]).await;
    for copy in &copies {
        let s = node::store::Store::open_file(copy).unwrap();
        let audit = s.audit().unwrap();
        assert!(audit.self_check().is_empty(), "{:?}", audit.self_check());
        // Every record the copy holds decided, the bank still holds decided the same way.
        for r in audit.records.iter().filter(|r| r.outcome().is_some()) {
            let (code, v) = c.get(0, &format!("/packages/{}", r.package.id)).await;
            assert_eq!(code, 200);
            assert_eq!(v["status"], serde_json::to_value(r.status).unwrap(), "{}", r.package.id);
        }
        let acc = audit.accounts.iter().find(|x| x.key == a).unwrap();
        assert!(acc.balance.0 + acc.held.0 <= 100_000 + 10 * moved as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_bank_reconciles_before_it_accepts_packages_and_no_money_is_made_or_lost() {
    let mut c = common::start(3).await;
    let x = c.account(0, &cpf(1)).await;
    let y = c.account(1, &cpf(2)).await;
    let z = c.account(2, &cpf(3)).await;
    for (i, k) in [(0, &x), (1, &y), (2, &z)] {
        c.deposit(i, k, 10_000, &format!("fund-{i}")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bank0.redb");
    backup(&c, 0, &copy).await;

    // After the backup: packages of bank 0 (as origin) and of the others, touching bank 0.
    let moves = [
        ("a1", 0, (0, &x), (1, &y), 700),
        ("a2", 0, (0, &x), (2, &z), 300),
        ("b1", 1, (1, &y), (0, &x), 1_100),
        ("c1", 2, (2, &z), (0, &x), 50),
        ("a3", 0, (2, &z), (0, &x), 25), // bank 0 accepted it, the money comes from bank 2
    ];
    for (id, origin, from, to, amount) in moves {
        let (code, v) = c.submit(origin, transfer(&c, id, (from.0, from.1), (to.0, to.1), amount)).await;
        assert_eq!((code, v["status"].as_str()), (200, Some("committed")), "{id}: {v}");
    }
    wait_quiet(&c, &[0, 1, 2]).await;
    let before: Vec<u64> = vec![c.balance(0, &x).await.0, c.balance(1, &y).await.0, c.balance(2, &z).await.0];
    assert_eq!(before, vec![10_000 - 700 - 300 + 1_100 + 50 + 25, 10_000 + 700 - 1_100, 10_000 + 300 - 50 - 25]);

    // The tools refuse the database of a running bank.
    let node_bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_node"));
    let out = std::process::Command::new(&node_bin).args(["admin", "in-doubt", "--data"]).arg(c.data_dir(0)).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running bank"), "{}", String::from_utf8_lossy(&out.stderr));

    // Bank 0 is lost and restored from the backup, while bank 2 is down.
    c.kill(0);
    c.kill(2);
    let out = std::process::Command::new(&node_bin).args(["admin", "restore", "--from"]).arg(&copy).arg("--data").arg(c.data_dir(0)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(&node_bin).args(["admin", "reconcile", "--data"]).arg(c.data_dir(0)).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reconciling"], true, "{v}");
    c.spawn(0);
    c.wait_up(0).await;
    // Not every bank has answered: reads work, packages and new accounts wait.
    let (code, _) = c.get(0, &format!("/accounts/{x}")).await;
    assert_eq!(code, 200);
    let (code, v) = c.submit(0, transfer(&c, "early", (0, &x), (1, &y), 1)).await;
    assert_eq!((code, v["error"]["code"].as_str()), (503, Some("reconciling")), "{v}");
    let (code, v) = c.open(0, "business", &[&cpf(1)]).await;
    assert_eq!((code, v["error"]["code"].as_str()), (503, Some("reconciling")), "{v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = admin(&c, 0, "reconcile").await;
    assert_eq!(v["reconciling"], true, "bank 2 has not answered: {v}");
    // An id it does not know may be one it lost: "not yet", never the 404 that lets a
    // participant abort its legs.
    let (code, v) = peer_get(&c, 1, 0, "/peer/outcome/never-seen").await;
    assert_eq!((code, v["error"]["code"].as_str()), (503, Some("reconciling")), "{v}");
    // What names a bank is told only to that bank, signed.
    let (code, _) = c.get(1, "/peer/reconcile").await;
    assert_eq!(code, 401);
    let (code, v) = peer_get(&c, 0, 1, "/peer/reconcile").await;
    assert_eq!(code, 200, "{v}");
    let ids: Vec<&str> = v["participated"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"a1") && !ids.contains(&"b1"), "bank 0's packages bank 1 took part in: {ids:?}");
    assert!(v["participated"].as_array().unwrap().iter().all(|p| p["kept"]["decision"].is_object()), "kept with their decisions: {v}");

    // Bank 2 is back: bank 0 re-learns and opens.
    c.spawn(2);
    c.wait_up(2).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v) = admin(&c, 0, "reconcile").await;
        if v["reconciling"] == false {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "bank 0 did not finish reconciling: {v}\n{}", c.log(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["answered"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["lost"], json!([]), "{v}");
    assert_eq!(v["problems"], json!([]), "{v}");
    let after: Vec<u64> = vec![c.balance(0, &x).await.0, c.balance(1, &y).await.0, c.balance(2, &z).await.0];
    assert_eq!(after, before, "every leg another bank knows of is back; nothing made or lost");
    // Its own packages are known again, as decided (and their ids stay taken).
    let (code, v) = c.get(0, "/packages/a1").await;
    assert_eq!((code, v["status"].as_str()), (200, Some("committed")), "{v}");
    let (code, v) = c.submit(0, transfer(&c, "a1", (0, &x), (1, &y), 999)).await;
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("id_reused")), "{v}");
    let (code, _) = peer_get(&c, 1, 0, "/peer/outcome/never-seen").await;
    assert_eq!(code, 404, "reconciled: an unknown id is one nobody can commit");
    // And it takes packages again.
    c.wait_ring().await;
    let (code, v) = c.submit(0, transfer(&c, "after", (0, &x), (1, &y), 5)).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("committed")), "{v}");
    wait_quiet(&c, &[0, 1, 2]).await;
    assert_eq!(c.balance(0, &x).await.0 + c.balance(1, &y).await.0 + c.balance(2, &z).await.0, 30_000);
    let (_, v) = admin(&c, 0, "in-doubt").await;
    assert_eq!(v["in_doubt"], json!([]), "{v}");

    // The restored bank's statement of x holds every movement again, re-applied ones
    // included, and adds up to its balance: from the route, and from `node admin` once stopped.
    let (code, v) = admin(&c, 0, &format!("statement/{x}")).await;
    assert_eq!(code, 200, "{v}");
    let entries = v["entries"].as_array().unwrap().clone();
    let packages: Vec<&str> = entries.iter().map(|e| e["package"].as_str().unwrap()).collect();
    for id in ["fund-0", "a1", "a2", "b1", "c1", "a3", "after"] {
        assert!(packages.contains(&id), "{id} in x's statement: {packages:?}");
    }
    let last = entries.last().unwrap()["total_after"].as_u64().unwrap();
    assert_eq!(last, c.balance(0, &x).await.0, "the statement adds up to the balance");
    c.kill(0);
    let out = std::process::Command::new(&node_bin).args(["admin", "statement", "--account", &x, "--data"]).arg(c.data_dir(0)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["entries"], json!(entries), "the stopped bank exports the same statement");
    let out = std::process::Command::new(&node_bin).args(["admin", "statement", "--account", &x, "--from", "2", "--limit", "1", "--data"]).arg(c.data_dir(0)).output().unwrap();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["entries"], json!([entries[1]]), "{page}");
    assert_eq!(page["next"], 3);
    let out = std::process::Command::new(&node_bin).args(["admin", "statement", "--account", "no-such", "--data"]).arg(c.data_dir(0)).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not found"), "{}", String::from_utf8_lossy(&out.stderr));
}
