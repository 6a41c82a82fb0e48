//! End to end: `bank admin ...` (the operator's tools on a running bank) against real nodes.

use std::process::Command;
use tools::cluster::{node_bin, Cluster, TEST_TIMING};

struct Run {
    code: i32,
    out: String,
    err: String,
}

async fn bank(addr: &str, teller: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bank"));
    cmd.arg("--bank").arg(addr).arg("--teller-key").arg(teller).args(args).env_remove("BANK_ADDR").env_remove("BANK_CA").env("BANK_PLAIN_HTTP", "1");
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    Run { code: o.status.code().unwrap_or(-1), out: String::from_utf8_lossy(&o.stdout).into_owned(), err: String::from_utf8_lossy(&o.stderr).into_owned() }
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_admin_needs_the_teller_and_shows_in_doubt_fingerprints_and_downloads_a_backup() {
    let c = Cluster::start_with(2, node_bin(), TEST_TIMING).await;
    let home = tempfile::tempdir().unwrap();
    let (t0, t1) = (home.path().join("t0.key"), home.path().join("t1.key"));
    std::fs::write(&t0, c.signer.tellers[0].seed_hex()).unwrap();
    std::fs::write(&t1, c.signer.tellers[1].seed_hex()).unwrap();
    let a = &c.addrs[0];

    let r = bank(a, &t0, &["admin", "in-doubt"]).await;
    assert_eq!(r.code, 2, "without --as-teller: {}", r.err);
    assert!(r.err.contains("--as-teller"), "{}", r.err);
    let r = bank(a, &t1, &["--as-teller", "admin", "in-doubt"]).await;
    assert_eq!(r.code, 1, "another bank's teller key: {}", r.err);
    assert!(r.err.contains("bad_signature") || r.err.contains("not signed"), "{}", r.err);

    let r = bank(a, &t0, &["--as-teller", "admin", "in-doubt"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["bank"], *a);
    assert_eq!(v["in_doubt"], serde_json::json!([]));

    let r0 = bank(a, &t0, &["--as-teller", "--json", "admin", "fingerprints"]).await;
    let r1 = bank(&c.addrs[1], &t1, &["--as-teller", "--json", "admin", "fingerprints"]).await;
    assert_eq!((r0.code, r1.code), (0, 0), "{} {}", r0.err, r1.err);
    let (f0, f1): (serde_json::Value, serde_json::Value) = (serde_json::from_str(&r0.out).unwrap(), serde_json::from_str(&r1.out).unwrap());
    assert_eq!(f0["manifest"], f1["manifest"]);
    assert_eq!(f0["banks"], f1["banks"]);
    assert_eq!(f0["manifest"].as_str().unwrap().len(), 16);

    // Any account's statement, exported whole or from an entry on.
    let k = c.account(0, &tools::cluster::cpf(1)).await;
    for (n, amount) in [(1, 500), (2, 250), (3, 125)] {
        c.deposit(0, &k, amount, &format!("dep-{n}")).await;
    }
    let r = bank(a, &t0, &["--as-teller", "admin", "statement", "--account", &k]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    let totals: Vec<u64> = v["entries"].as_array().unwrap().iter().map(|e| e["total_after"].as_u64().unwrap()).collect();
    assert_eq!(totals, vec![500, 750, 875], "{v}");
    let r = bank(a, &t0, &["--as-teller", "admin", "statement", "--account", &k, "--from", "2", "--limit", "1"]).await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!((v["entries"].as_array().unwrap().len(), &v["entries"][0]["package"]), (1, &serde_json::json!("dep-2")), "{v}");
    let r = bank(a, &t0, &["--as-teller", "admin", "statement", "--account", "nope"]).await;
    assert_ne!(r.code, 0);
    assert!(r.err.contains("account_not_found"), "{}", r.err);

    let out = home.path().join("a.redb");
    let r = bank(a, &t0, &["--as-teller", "admin", "backup", "--out", out.to_str().unwrap()]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("consistent copy"), "{}", r.out);
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"redb"), "a redb file ({} bytes)", bytes.len());
    let r = bank(a, &t0, &["--as-teller", "admin", "backup", "--out", out.to_str().unwrap()]).await;
    assert_eq!(r.code, 2, "never over an existing file: {}", r.err);
}
