//! End to end: the `bank` command line against a consortium of real `node` processes.

use tools::cluster::{cpf, node_bin, Cluster, TEST_TIMING};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.out, self.err))
    }
}

/// The environment every `bank` run gets: the user's key folder, the acting user, the
/// teller's key (as a person at the counter would have them).
static ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Runs `bank --bank ADDR args...`, feeding `stdin`.
fn bank(addr: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank"))
        .arg("--bank")
        .arg(addr)
        .args(["--timeout", "20"])
        .args(args)
        .env_remove("BANK_ADDR")
        // The rig's banks run with --plain-http (the TLS path has its own test, node/tests/tls.rs).
        .env_remove("BANK_CA")
        .env("BANK_PLAIN_HTTP", "1")
        .envs(ENV.get().cloned().unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bank");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

async fn cli(addr: &str, args: &[&str]) -> Run {
    cli_in(addr, args, "").await
}

async fn cli_in(addr: &str, args: &[&str], stdin: &str) -> Run {
    let (addr, args, stdin) = (addr.to_string(), args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), stdin.to_string());
    tokio::task::spawn_blocking(move || bank(&addr, &args.iter().map(String::as_str).collect::<Vec<_>>(), &stdin)).await.unwrap()
}

/// Waits until `account show` gives this balance with nothing blocked or held: a committed
/// package's credits are released just after the decision, not before the answer.
fn r_export_seed(seed: &[u8; 32]) -> String {
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

async fn settles(bank: &str, account: &str, balance: u64) {
    let mut last = Value::Null;
    for _ in 0..100 {
        let r = cli(bank, &["--json", "account", "show", "--key", account]).await;
        assert_eq!(r.code, 0, "{}", r.err);
        last = r.json();
        if last["balance"] == balance && last["blocked"] == 0 && last["held"] == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{account} at {bank} never settled at {balance}: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_against_real_banks() {
    let mut c = Cluster::start_with(2, node_bin(), TEST_TIMING).await;
    let (a, b) = (c.addrs[0].clone(), c.addrs[1].clone());
    let ana = cpf(11);
    let home = tempfile::tempdir().unwrap();
    let teller = home.path().join("teller.key");
    std::fs::write(&teller, c.signer.tellers[0].seed_hex()).unwrap();
    let keys = home.path().join("keys");
    ENV.set(vec![
        ("BANK_KEYS".into(), keys.display().to_string()),
        ("BANK_USER".into(), ana.clone()),
        ("BANK_TELLER_KEY".into(), teller.display().to_string()),
    ])
    .unwrap();

    // Users.
    let r = cli(&a, &["user", "register", "--cpf", &ana, "--name", "Ana"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("registered Ana"), "{}", r.out);
    let r = cli(&a, &["user", "register", "--cpf", &ana, "--name", "Ana"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.starts_with("error: ") && r.err.contains('('), "{}", r.err);
    let r = cli(&b, &["user", "register", "--cpf", &ana, "--name", "Ana"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = cli(&a, &["--json", "user", "show", "--cpf", &ana]).await;
    assert_eq!(r.json()["name"], "Ana");
    let r = cli(&a, &["user", "show", "--cpf", &cpf(12)]).await;
    assert_eq!(r.code, 2, "only the user reads their record, with their key: {}", r.err);
    assert!(r.err.contains("no key for CPF"), "{}", r.err);
    let r = cli(&a, &["--as-teller", "user", "show", "--cpf", &cpf(12)]).await;
    assert_eq!(r.code, 1, "the teller reads the bank's books: an unknown user: {}", r.err);
    assert!(r.err.contains("not a user of this bank"), "{}", r.err);

    // The user's key: made by `user register`, private to the user, exported as is.
    let r = cli(&a, &["--json", "key", "show", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let shown = r.json();
    let file = std::path::PathBuf::from(shown["file"].as_str().unwrap());
    assert!(file.starts_with(&keys), "in the key folder: {shown}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o077, 0, "readable by the user only");
    }
    let r = cli(&a, &["key", "export", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let seed = consortium_core::trust::unhex::<32>(r.out.trim()).expect("64 hex digits");
    assert_eq!(consortium_core::trust::keys::KeyPair::from_seed(seed).public().to_hex(), shown["public_key"].as_str().unwrap());
    assert!(r.err.contains("can move this user's money"), "a warning: {}", r.err);
    let r = cli(&a, &["key", "show", "--cpf", &cpf(12)]).await;
    assert_eq!(r.code, 2, "no key for that CPF here: {}", r.err);

    // Accounts.
    let r = cli(&a, &["--json", "account", "open", "--kind", "personal", "--holder", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let ka = r.json()["key"].as_str().unwrap().to_string();
    let r = cli(&b, &["--json", "account", "open", "--kind", "business", "--holder", &ana]).await;
    let kb = r.json()["key"].as_str().unwrap().to_string();
    let (ra, rb) = (format!("{a}/{ka}"), format!("{b}/{kb}"));

    // Money: a deposit, a transfer across banks, a refused one, a retry with the same id.
    let r = cli(&a, &["deposit", "--to", &ka, "--amount", "100"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert!(r.out.contains("committed"), "{}", r.out);
    let r = cli(&a, &["--json", "transfer", "--from", &ra, "--to", &rb, "--amount", "12.50", "--id", "t-1"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.json()["status"], "committed");
    let r = cli(&a, &["--json", "transfer", "--from", &ra, "--to", &rb, "--amount", "12.50", "--id", "t-1"]).await;
    assert_eq!((r.code, r.json()["status"].clone()), (0, Value::from("committed")), "a retry gives the same outcome");
    let r = cli(&a, &["transfer", "--from", &ra, "--to", &rb, "--amount", "1000", "--id", "t-2"]).await;
    assert_eq!(r.code, 1, "an aborted package exits 1: {}", r.out);
    assert!(r.out.contains("aborted") && r.out.contains("failed"), "{}", r.out);
    let r = cli(&a, &["transfer", "--from", &ra, "--to", &rb, "--amount", "1", "--id", "t-1"]).await;
    assert_eq!(r.code, 1, "same id, other content: {}", r.err);
    let r = cli(&a, &["package", "--op", &format!("withdraw {ka} 7.5"), "--op", &format!("transfer {rb} {ra} 2.50")]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let r = cli(&a, &["--json", "package-status", "--id", "t-2"]).await;
    assert_eq!((r.code, r.json()["status"].clone()), (1, Value::from("aborted")));

    settles(&a, &ka, 10000 - 1250 - 750 + 250).await;
    settles(&a, &rb, 1250 - 250).await; // BANK/ACCOUNT talks to that bank
    let r = cli(&a, &["accounts", "--cpf", &ana]).await;
    assert!(r.out.contains(&ra) && r.out.contains("82.50"), "{}", r.out);

    // Another user, with a key of their own, can neither read Ana's money nor move it.
    let bia = cpf(13);
    let bia_keys = home.path().join("bia-keys");
    let bia_keys = bia_keys.to_str().unwrap().to_string();
    let r = cli(&a, &["--keys", &bia_keys, "user", "register", "--cpf", &bia, "--name", "Bia"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    for args in [
        vec!["account", "show", "--key", ka.as_str()],
        vec!["package-status", "--id", "t-1"],
        vec!["accounts", "--cpf", ana.as_str()],
        vec!["consortium-accounts", "--cpf", ana.as_str()],
        vec!["user", "show", "--cpf", ana.as_str()],
        vec!["withdraw", "--from", ka.as_str(), "--amount", "1"],
    ] {
        // Her own key folder: Ana's keys are on Ana's machine.
        let mut argv = vec!["--user", bia.as_str(), "--keys", bia_keys.as_str()];
        argv.extend(args.iter().copied());
        let r = cli(&a, &argv).await;
        assert_ne!(r.code, 0, "Bia: {args:?}: {}", r.out);
        assert!(!r.out.contains("82.50") && !r.out.contains("Ana"), "Bia read Ana's data with {args:?}: {}", r.out);
    }
    settles(&a, &ka, 10000 - 1250 - 750 + 250).await;

    // Bia loses her key: a new one on her machine, the operator resets it at the counter.
    let bia_new = home.path().join("bia-new");
    let bia_new = bia_new.to_str().unwrap().to_string();
    let r = cli(&a, &["--keys", &bia_new, "key", "new", "--cpf", &bia]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let new_public = r.out.trim().to_string();
    let r = cli(&a, &["--keys", &bia_new, "--user", &bia, "user", "show", "--cpf", &bia]).await;
    assert_eq!(r.code, 1, "not yet her key at the bank: {}", r.err);
    let r = cli(&a, &["user", "reset", "--cpf", &bia, "--public-key", &new_public]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    let r = cli(&a, &["--json", "--keys", &bia_new, "--user", &bia, "user", "show", "--cpf", &bia]).await;
    assert_eq!((r.code, r.json()["public_key"].as_str()), (0, Some(new_public.as_str())), "{}", r.err);
    let r = cli(&a, &["user", "approve", "--cpf", &bia, "--public-key", &new_public]).await;
    assert_eq!((r.code, r.out.trim().len()), (0, 128), "an approval is a signature: {}\n{}", r.out, r.err);

    // The interactive shell, scripted.
    let script = format!("2\n{ana}\n\n5\n{ka}\n1\n4\n0\n");
    let r = cli_in(&a, &["shell"], &script).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("welcome, Ana"), "{}", r.out);
    assert!(r.out.contains("committed"), "{}", r.out);
    assert!(r.out.contains(&ra) && r.out.contains(&rb) && r.out.contains("2 account(s) at 2 of 2 bank(s)"), "{}", r.out);
    settles(&a, &ka, 8350).await;

    // Rotation: announced at one bank, passed on to the other; the old key moves nothing.
    let old_key = home.path().join("old.key");
    std::fs::write(&old_key, r_export_seed(&seed)).unwrap();
    let r = cli(&a, &["key", "rotate", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert!(r.out.contains("rotation 1"), "{}", r.out);
    let mut seq = Value::Null;
    for _ in 0..100 {
        seq = cli(&b, &["--json", "user", "show", "--cpf", &ana]).await.json()["key_seq"].clone();
        if seq == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seq, 1, "the other bank learned the rotation");
    let r = cli(&b, &["--key-file", old_key.to_str().unwrap(), "withdraw", "--from", &kb, "--amount", "0.50"]).await;
    assert_eq!(r.code, 1, "the old key no longer moves money: {}", r.out);
    assert!(r.out.contains("no valid signature"), "{}", r.out);
    let r = cli(&b, &["withdraw", "--from", &kb, "--amount", "0.50"]).await;
    assert_eq!(r.code, 0, "the new key does, at the other bank too: {}\n{}", r.out, r.err);

    // The key file protected by a passphrase: sealed in place; signing needs the passphrase.
    let (pass, wrong) = (home.path().join("pass"), home.path().join("wrong"));
    std::fs::write(&pass, "correct horse\n").unwrap();
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let (pass, wrong) = (pass.to_str().unwrap(), wrong.to_str().unwrap());
    let r = cli(&a, &["--passphrase-file", pass, "key", "protect", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let sealed = std::fs::read_to_string(&file).unwrap();
    assert!(sealed.starts_with("bank-key v1 argon2id"), "{sealed}");
    let r = cli(&b, &["withdraw", "--from", &kb, "--amount", "0.50"]).await;
    assert_eq!(r.code, 2, "no passphrase: {}", r.err);
    assert!(r.err.contains("protected by a passphrase: give --passphrase-file FILE or BANK_PASSPHRASE"), "{}", r.err);
    let r = cli(&b, &["--passphrase-file", wrong, "withdraw", "--from", &kb, "--amount", "0.50"]).await;
    assert_eq!(r.code, 2, "a wrong passphrase: {}", r.err);
    assert!(r.err.contains("wrong passphrase, or the file was altered") && !r.err.contains("battery"), "{}", r.err);
    let r = cli(&b, &["--passphrase-file", pass, "withdraw", "--from", &kb, "--amount", "0.50"]).await;
    assert_eq!(r.code, 0, "with the passphrase: {}\n{}", r.out, r.err);
    let r = cli(&a, &["--passphrase-file", pass, "key", "unprotect", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim().len(), 64, "plain hex again");

    let r = cli(&a, &["status"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("1 of 1 online"), "{}", r.out);

    // A bank down: listed as unreachable by the others; talking to it exits 3.
    c.kill(1);
    let r = cli(&a, &["consortium-accounts", "--cpf", &ana]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains(&format!("UNREACHABLE  {b}")), "{}", r.out);
    let r = cli(&b, &["status"]).await;
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(r.err.contains("(unreachable)"), "{}", r.err);

    // Usage errors exit 2 and never reach a bank.
    assert_eq!(cli(&a, &["deposit", "--to", &ka, "--amount", "-1"]).await.code, 2);
    assert_eq!(cli(&a, &["package", "--op", "pay 1 2 3"]).await.code, 2);
}
