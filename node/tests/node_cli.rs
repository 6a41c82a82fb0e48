//! What an operator meets first: `node init`, and a node started without a usable identity.
//! Each mistake is a clear error and an exit, never a bank half up.

use node::trust::manifest::Manifest;
use std::process::Command;

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_node"))
}

#[test]
fn init_makes_a_key_once_and_prints_its_manifest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bank");
    let run = || node().args(["init", "--address", "127.0.0.1:7101", "--data-dir"]).arg(&data).output().unwrap();
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("created"));
    let entry = String::from_utf8(first.stdout).unwrap();
    let m = Manifest::from_toml(&entry).expect("the printed entry is a manifest of one bank");
    assert_eq!(m.addresses(), vec!["127.0.0.1:7101"]);
    let second = run();
    assert!(String::from_utf8_lossy(&second.stderr).contains("kept"));
    assert_eq!(String::from_utf8(second.stdout).unwrap(), entry, "the same key, not a new one");
    assert!(!entry.contains(&std::fs::read_to_string(data.join("bank.key")).unwrap().trim().to_string()), "the private key is never printed");

    let bad = node().args(["init", "--address", "nohost", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not host:port"));
}

#[test]
fn a_node_without_a_usable_identity_says_why_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bank");
    // Neither TLS nor the development option: refused before anything is created.
    let out = node().args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no TLS configured") && err.contains("--tls-cert") && err.contains("--plain-http"), "{err}");
    assert!(!data.exists(), "nothing created");
    let out = node().args(["--listen", "127.0.0.1:0", "--tls-cert", "c.pem", "--data-dir"]).arg(&data).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing: tls_key"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = node().args(["--plain-http", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest"), "{}", String::from_utf8_lossy(&out.stderr));

    // A manifest that lists another bank only.
    let other = dir.path().join("other");
    let entry = node().args(["init", "--address", "127.0.0.1:7102", "--data-dir"]).arg(&other).output().unwrap();
    let manifest = dir.path().join("consortium.toml");
    std::fs::write(&manifest, entry.stdout).unwrap();
    let out = node().args(["--plain-http", "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:7103", "--manifest"]).arg(&manifest).arg("--data-dir").arg(&data).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the manifest"), "{}", String::from_utf8_lossy(&out.stderr));

    // This bank's address, but another bank's key.
    let out = node().args(["--plain-http", "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:7102", "--manifest"]).arg(&manifest).arg("--data-dir").arg(&data).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another public key"), "{}", String::from_utf8_lossy(&out.stderr));
}
