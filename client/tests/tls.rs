//! TLS on loopback, as in production: a consortium CA and each bank's certificate made with
//! `node tls-ca` / `node tls-cert`, banks serving and calling each other over HTTPS, and the
//! `bank` command line finding the CA by --ca, BANK_CA or the file `make run` writes. A
//! client trusting another CA is refused, and so is plain HTTP; a bank whose certificate is
//! not the consortium CA's is not reached by the others.

use consortium_net::{tcp_transport, Call, NetError, Transport};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tools::cluster::{cpf, node_bin, Cluster, TEST_TIMING};

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs `bank` in `cwd` with exactly the environment given (no BANK_* from outside).
async fn bank(cwd: &Path, env: Vec<(&'static str, String)>, args: Vec<String>) -> Run {
    let cwd = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bank"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BANK_")) {
            cmd.env_remove(k);
        }
        let o = cmd.current_dir(&cwd).envs(env).args(["--timeout", "20"]).args(&args).output().expect("run bank");
        Run { code: o.status.code().unwrap_or(-1), out: String::from_utf8_lossy(&o.stdout).into_owned(), err: String::from_utf8_lossy(&o.stderr).into_owned() }
    })
    .await
    .unwrap()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

async fn get(t: &dyn Transport, addr: &str, path: &str) -> Result<(u16, Value), NetError> {
    let r = t.call(addr, Call::new(hyper::Method::GET, path, None, Duration::from_secs(5))).await?;
    Ok((r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)))
}

/// Another CA, as an outsider could make one, and a certificate it signed for `addr`.
fn other_ca(dir: &Path, addr: &str) -> (PathBuf, PathBuf) {
    let ok = |o: std::process::Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(Command::new(node_bin()).arg("tls-ca").arg("--out-dir").arg(dir).output().unwrap());
    let out = dir.join("cert");
    ok(Command::new(node_bin()).arg("tls-cert").arg("--ca-dir").arg(dir).args(["--address", addr]).arg("--out-dir").arg(&out).output().unwrap());
    (dir.join("ca.pem"), out)
}

#[tokio::test(flavor = "multi_thread")]
async fn banks_and_clients_over_tls() {
    // The ring forms: the banks call each other over HTTPS, each checking the others'
    // certificates against the consortium's CA (and this rig, as a client, too).
    let timing = format!("{TEST_TIMING}\n[limits]\nheader_read_timeout_ms = 500\n");
    let c = Cluster::start_tls(3, node_bin(), &timing).await;
    let ca = c.tls_ca().expect("a TLS cluster").to_path_buf();
    let (a, b) = (c.addrs[0].clone(), c.addrs[1].clone());

    // The command line: users, accounts, a deposit and a transfer across banks over HTTPS.
    let home = tempfile::tempdir().unwrap();
    let teller = home.path().join("teller.key");
    std::fs::write(&teller, c.signer.tellers[0].seed_hex()).unwrap();
    let ana = cpf(21);
    let env = |ca: Option<&Path>| {
        let mut e = vec![("BANK_KEYS", home.path().join("keys").display().to_string()), ("BANK_USER", ana.clone()), ("BANK_TELLER_KEY", teller.display().to_string())];
        if let Some(ca) = ca {
            e.push(("BANK_CA", ca.display().to_string()));
        }
        e
    };
    let here = home.path();
    for addr in [&a, &b] {
        let r = bank(here, env(Some(&ca)), args(&["--bank", addr, "user", "register", "--cpf", &ana, "--name", "Ana"])).await;
        assert_eq!(r.code, 0, "register at {addr}: {}", r.err);
    }
    let r = bank(here, env(None), args(&["--ca", ca.to_str().unwrap(), "--bank", &a, "--json", "account", "open", "--kind", "personal", "--holder", &ana])).await;
    assert_eq!(r.code, 0, "--ca: {}", r.err);
    let ka = serde_json::from_str::<Value>(&r.out).unwrap()["key"].as_str().unwrap().to_string();
    let r = bank(here, env(Some(&ca)), args(&["--bank", &b, "--json", "account", "open", "--kind", "business", "--holder", &ana])).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let kb = serde_json::from_str::<Value>(&r.out).unwrap()["key"].as_str().unwrap().to_string();
    let r = bank(here, env(Some(&ca)), args(&["--bank", &a, "deposit", "--to", &ka, "--amount", "100"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    // Without --ca or BANK_CA, from a folder where `make run` left data/ca.pem.
    std::fs::create_dir_all(here.join("data")).unwrap();
    std::fs::copy(&ca, here.join("data/ca.pem")).unwrap();
    let (ra, rb) = (format!("{a}/{ka}"), format!("{b}/{kb}"));
    let r = bank(here, env(None), args(&["--bank", &a, "--json", "transfer", "--from", &ra, "--to", &rb, "--amount", "25", "--id", "tls-1"])).await;
    assert_eq!(r.code, 0, "data/ca.pem: {}\n{}", r.out, r.err);
    assert_eq!(serde_json::from_str::<Value>(&r.out).unwrap()["status"], "committed", "{}", r.out);
    assert_eq!(c.balance(0, &ka).await.0, 7_500);
    assert_eq!(c.balance(1, &kb).await.0, 2_500);

    // A client that trusts another CA does not talk to the banks: `bank` and the transport.
    let other = tempfile::tempdir().unwrap();
    let (wrong_ca, _) = other_ca(other.path(), &a);
    let r = bank(here, env(Some(&wrong_ca)), args(&["--bank", &a, "--json", "account", "show", "--key", &ka])).await;
    assert_eq!(r.code, 3, "unreachable, not answered: {}\n{}", r.out, r.err);
    assert!(r.err.contains("certificate") || r.out.contains("certificate"), "says why: {}\n{}", r.out, r.err);
    let wrong = consortium_net::tls::https_transport(consortium_net::tls::client_config(&wrong_ca).unwrap());
    match get(&wrong, &a, "/status").await {
        Err(NetError::Unreachable(why)) => assert!(why.contains("UnknownIssuer") || why.contains("certificate"), "{why}"),
        other => panic!("a client trusting another CA got {other:?}"),
    }
    // No CA anywhere and no --plain-http: a usage error saying what to give.
    let empty = tempfile::tempdir().unwrap();
    let r = bank(empty.path(), env(None), args(&["--bank", &a, "status"])).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("--ca") && r.err.contains("BANK_CA") && r.err.contains("--plain-http"), "{}", r.err);

    // Plain HTTP to a TLS bank: no answer, and the bank counts the failed handshake.
    match get(&tcp_transport(), &a, "/status").await {
        Err(NetError::Unreachable(_)) | Err(NetError::Timeout) => {}
        Ok(r) => panic!("plain HTTP was answered: {r:?}"),
    }
    let r = bank(empty.path(), env(None), args(&["--plain-http", "--bank", &a, "status"])).await;
    assert_eq!(r.code, 3, "plain HTTP to a TLS bank: {}", r.err);
    assert!(r.err.contains("cannot reach bank") && r.err.contains("speaks TLS") && r.err.contains("--plain-http"), "say why: {}", r.err);
    let (code, s) = get(c.client_transport().as_ref(), &a, "/status").await.unwrap();
    assert_eq!(code, 200);
    assert!(s["counters"]["refused"]["tls_handshake"].as_u64().unwrap_or(0) >= 1, "{s}");

    // A client that connects and never says hello is closed after the header-read timeout
    // (the handshake runs in the connection's task: the bank goes on accepting meanwhile).
    let t0 = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&a).await.unwrap();
    let (code, _) = get(c.client_transport().as_ref(), &a, "/health/live").await.unwrap();
    assert_eq!(code, 200, "answers others while one client stalls its handshake");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed, not left open: {n:?}");
    assert!(t0.elapsed() >= Duration::from_millis(400), "not before the timeout: {:?}", t0.elapsed());
    let (_, s) = get(c.client_transport().as_ref(), &a, "/status").await.unwrap();
    assert!(s["counters"]["refused"]["tls_handshake_timeout"].as_u64().unwrap_or(0) >= 1, "{s}");

    // A bank serving a certificate of another CA (for its own address) is not reached by the
    // others: the consortium's banks check their peers' certificates too.
    let third = c.addrs[2].clone();
    let bank3 = c.data_dir(2);
    let mut c = c;
    c.kill(2);
    let ok = Command::new(node_bin()).arg("tls-cert").arg("--ca-dir").arg(other.path()).args(["--address", &third]).arg("--out-dir").arg(&bank3).output().unwrap();
    assert!(ok.status.success());
    c.spawn(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = get(&wrong, &third, "/status").await {
            break; // it is up, serving the outsider's certificate
        }
        assert!(Instant::now() < deadline, "the third bank did not come up: {}", c.log(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let online = |s: &Value, bank: &str| s["peers"].as_array().unwrap().iter().any(|p| p["bank"] == bank && p["online"] == true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Nobody can call the bank serving the outsider's certificate (the handshake fails), so
    // the bank that passes the token to it marks it offline and keeps it so. (It can still
    // call out: authentication is the bank's signature, not TLS, like an isolated bank. A
    // member that never calls it need not notice until its first call.)
    let (_, sa) = get(c.client_transport().as_ref(), &a, "/status").await.unwrap();
    let (_, sb) = get(c.client_transport().as_ref(), &b, "/status").await.unwrap();
    assert!(!online(&sa, &third) || !online(&sb, &third), "neither member noticed the bank with another CA's certificate: {sa}\n{sb}");
    // The other two still work together over TLS.
    let r = bank(here, env(Some(&ca)), args(&["--bank", &b, "--json", "transfer", "--from", &rb, "--to", &ra, "--amount", "5", "--id", "tls-2"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert_eq!(c.balance(0, &ka).await.0, 8_000);
}
