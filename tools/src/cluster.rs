//! A consortium of real `node` processes on loopback, for end-to-end tests, the benchmark
//! and the chaos test. Every process is killed when the cluster is dropped, so a failing
//! test leaves nothing running.

use hyper::Method;
use consortium_net::{tcp_transport, Call, Transport};
use serde_json::{json, Value};
use consortium_core::domain::{AccountKind, Cpf};
use consortium_core::package::{AccountRef, Package};
use consortium_core::trust::keys::{KeyPair, UserKey};
use consortium_core::trust::read::{self, ReadStatement, Reader};
use consortium_core::trust::user;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub addrs: Vec<String>,
    procs: Vec<Option<Child>>,
    pub dir: tempfile::TempDir,
    transport: Arc<dyn Transport>,
    /// TLS: the consortium CA's certificate (banks serve HTTPS with certificates it signed);
    /// None: the banks run with `--plain-http`.
    tls_ca: Option<PathBuf>,
    node_bin: PathBuf,
    timing: String,
    log_level: String,
    /// The keys that sign what this rig sends, as clients and tellers would.
    pub signer: Arc<Signer>,
    /// Proxied (`start_proxied`): per bank, the private address it listens on and the
    /// fault-injecting proxy on its public one (`addrs`). Empty otherwise.
    pub proxies: Vec<(String, crate::proxy::Proxy)>,
}

/// The keys of a rig's clients: each bank's teller (its public key is given to the bank as
/// `--teller-key`), every user it registered, and the holders of every account it opened.
pub struct Signer {
    addrs: Vec<String>,
    pub tellers: Vec<KeyPair>,
    users: Mutex<BTreeMap<String, UserKey>>,
    holders: Mutex<BTreeMap<(String, String), Vec<String>>>,
    /// How long the packages it signs are valid (an hour unless a test says otherwise).
    pub valid_ms: std::sync::atomic::AtomicU64,
}

/// Short protocol timings so faults are noticed and repaired within a test's patience (the
/// loopback tests and `bench chaos`).
pub const TEST_TIMING: &str = "
peer_timeout_ms = 1000
package_wait_ms = 10000
idle_hold_ms = 5
token_loss_ms = 300
startup_check_ms = 100
block_ms = 100
resolve_after_ms = 500
presume_abort_ms = 2000
ping_backoff_max_ms = 300
";

/// The workspace's `node` binary of this build, beside the running executable (a test's
/// executable lives in `target/<profile>/deps`, a binary's in `target/<profile>`). The
/// workspace's tests build it (`node`'s own tests need it); run alone, a test of another
/// package builds it first.
pub fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("node");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo).args(["build", "-p", "node", "--bin", "node"]).status().is_ok_and(|s| s.success());
        assert!(ok && bin.exists(), "no node binary at {} and `cargo build -p node` did not make one", bin.display());
    }
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Starts `n` banks of the `node` binary at `node_bin` with the given timing keys (TOML)
    /// and waits until the ring has a token. The banks talk plain HTTP (`--plain-http`, the
    /// development option): what these tests check lives in the signatures, not in TLS.
    pub async fn start_with(n: usize, node_bin: PathBuf, timing: &str) -> Cluster {
        Cluster::start_opts(n, node_bin, timing, false).await
    }

    /// `start_with`, the banks logging at `level` (RUST_LOG syntax).
    pub async fn start_logging(n: usize, node_bin: PathBuf, timing: &str, level: &str) -> Cluster {
        Cluster::start_full(n, node_bin, timing, false, level).await
    }

    /// The same over TLS, as in production: a CA made with `node tls-ca`, each bank's
    /// certificate with `node tls-cert`; banks and this rig call each other over HTTPS.
    pub async fn start_tls(n: usize, node_bin: PathBuf, timing: &str) -> Cluster {
        Cluster::start_opts(n, node_bin, timing, true).await
    }

    /// Plain HTTP or TLS, the banks logging at NODE_LOG's level (default warn).
    pub async fn start_opts(n: usize, node_bin: PathBuf, timing: &str, tls: bool) -> Cluster {
        Cluster::start_full(n, node_bin, timing, tls, &std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into())).await
    }

    pub async fn start_full(n: usize, node_bin: PathBuf, timing: &str, tls: bool, level: &str) -> Cluster {
        let addrs: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let dir = tempfile::tempdir().unwrap();
        let tls_ca = tls.then(|| dir.path().join("ca").join("ca.pem"));
        let mut c = Cluster {
            addrs: addrs.clone(),
            procs: (0..n).map(|_| None).collect(),
            dir,
            transport: Arc::new(tcp_transport()),
            tls_ca,
            node_bin,
            timing: timing.to_string(),
            log_level: level.to_string(),
            signer: Arc::new(Signer {
                addrs: addrs.clone(),
                tellers: (0..n).map(|_| random_key()).collect(),
                users: Mutex::new(BTreeMap::new()),
                holders: Mutex::new(BTreeMap::new()),
                valid_ms: std::sync::atomic::AtomicU64::new(3_600_000),
            }),
            proxies: Vec::new(),
        };
        c.write_manifest();
        if tls {
            c.write_certificates();
            c.transport = c.client_transport();
        }
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_ring().await;
        c
    }

    /// `start_with`, every bank behind its own fault-injecting proxy (`crate::proxy`): the
    /// bank listens on a private port and advertises (in the manifest) the proxy's public
    /// one, which `addrs` keep, so the other banks and this rig's clients all go through it.
    /// `proxy(i)` switches bank `i`'s faults.
    pub async fn start_proxied(n: usize, node_bin: PathBuf, timing: &str) -> Cluster {
        let mut proxies = Vec::new();
        for _ in 0..n {
            let private = format!("127.0.0.1:{}", free_port());
            let proxy = crate::proxy::Proxy::start("127.0.0.1:0", &private).await.expect("start a proxy");
            proxies.push((private, proxy));
        }
        let addrs: Vec<String> = proxies.iter().map(|(_, p)| p.listen.to_string()).collect();
        let mut c = Cluster {
            addrs: addrs.clone(),
            procs: (0..n).map(|_| None).collect(),
            dir: tempfile::tempdir().unwrap(),
            transport: Arc::new(tcp_transport()),
            tls_ca: None,
            node_bin,
            timing: timing.to_string(),
            log_level: std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into()),
            signer: Arc::new(Signer {
                addrs,
                tellers: (0..n).map(|_| random_key()).collect(),
                users: Mutex::new(BTreeMap::new()),
                holders: Mutex::new(BTreeMap::new()),
                valid_ms: std::sync::atomic::AtomicU64::new(3_600_000),
            }),
            proxies,
        };
        c.write_manifest();
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_ring().await;
        c
    }

    /// Bank `i`'s proxy (a cluster started with `start_proxied`).
    pub fn proxy(&self, i: usize) -> &crate::proxy::Proxy {
        &self.proxies.get(i).expect("a proxied cluster (Cluster::start_proxied)").1
    }

    /// Every bank's key and the manifest that lists them, made as an operator makes them:
    /// `node init` per bank, its printed entries collected in one file.
    fn write_manifest(&self) {
        let mut text = String::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            let out = Command::new(&self.node_bin)
                .arg("init")
                .arg("--data-dir")
                .arg(self.data_dir(i))
                .args(["--address", addr])
                .output()
                .expect("run node init");
            assert!(out.status.success(), "node init: {}", String::from_utf8_lossy(&out.stderr));
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        std::fs::write(self.manifest_path(), text).unwrap();
    }

    /// The CA (`node tls-ca`) and each bank's certificate for its address (`node tls-cert`,
    /// into its data folder).
    fn write_certificates(&self) {
        let ca_dir = self.dir.path().join("ca");
        let run = |args: Vec<std::ffi::OsString>| {
            let out = Command::new(&self.node_bin).args(&args).output().expect("run node");
            assert!(out.status.success(), "node {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(vec!["tls-ca".into(), "--out-dir".into(), ca_dir.clone().into()]);
        for (i, addr) in self.addrs.iter().enumerate() {
            run(vec!["tls-cert".into(), "--ca-dir".into(), ca_dir.clone().into(), "--address".into(), addr.into(), "--out-dir".into(), self.data_dir(i).into()]);
        }
    }

    /// The CA's certificate, if the banks run TLS.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.tls_ca.as_deref()
    }

    /// A new client transport (its own connection pool) that speaks what the banks speak:
    /// HTTPS trusting the cluster's CA, or plain HTTP.
    pub fn client_transport(&self) -> Arc<dyn Transport> {
        match &self.tls_ca {
            Some(ca) => Arc::new(consortium_net::tls::https_transport(consortium_net::tls::client_config(ca).expect("the cluster's CA"))),
            None => Arc::new(tcp_transport()),
        }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("consortium.toml")
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("bank{i}"))
    }

    /// Starts bank `i` (again) with its data folder, as `restart` does without waiting.
    pub fn spawn(&mut self, i: usize) {
        let cfg = self.dir.path().join(format!("bank{i}.toml"));
        std::fs::write(&cfg, &self.timing).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("bank{i}.log"))).unwrap();
        let (listen, advertise) = match self.proxies.get(i) {
            Some((private, _)) => (private.as_str(), vec!["--advertise", self.addrs[i].as_str()]),
            None => (self.addrs[i].as_str(), vec![]),
        };
        let mut cmd = Command::new(&self.node_bin);
        match &self.tls_ca {
            Some(ca) => {
                cmd.arg("--tls-cert").arg(self.data_dir(i).join("cert.pem"));
                cmd.arg("--tls-key").arg(self.data_dir(i).join("key.pem"));
                cmd.arg("--tls-ca").arg(ca);
            }
            None => {
                cmd.arg("--plain-http");
            }
        }
        let child = cmd
            .args(advertise)
            .args(["--listen", listen, "--manifest"])
            .arg(self.manifest_path())
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["--teller-key", &self.signer.tellers[i].public().to_hex()])
            .env("RUST_LOG", &self.log_level)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node");
        self.procs[i] = Some(child);
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].as_ref().map(|p| p.id())
    }

    pub fn running(&self, i: usize) -> bool {
        self.procs[i].is_some()
    }

    /// How bank `i`'s process ended, if it did (None while it runs or was never started).
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.procs[i].as_mut().and_then(|p| p.try_wait().ok().flatten())
    }

    /// Sends a signal by name (STOP, CONT, ...) with the system's `kill`.
    pub fn signal(&self, i: usize, sig: &str) {
        if let Some(pid) = self.pid(i) {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        }
    }

    /// kill -9: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_up(i).await;
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("bank{i}.log"))).unwrap_or_default()
    }

    pub async fn wait_up(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.get(i, "/status").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("bank {i} did not come up; log:\n{}", self.log(i));
    }

    /// Waits until every running bank sees every other running bank and a token exists.
    pub async fn wait_ring(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<usize> = (0..self.addrs.len()).filter(|i| self.procs[*i].is_some()).collect();
        while Instant::now() < deadline {
            let mut ok = true;
            for &i in &running {
                let (code, s) = self.get(i, "/status").await;
                let peers_ok = code == 200
                    && s["peers"].as_array().unwrap().iter().all(|p| {
                        let idx = self.addrs.iter().position(|a| a == p["bank"].as_str().unwrap()).unwrap();
                        p["online"].as_bool().unwrap() || self.procs[idx].is_none()
                    });
                ok &= peers_ok && !s["token"]["epoch"].is_null();
            }
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ring did not form; logs:\n{}", (0..self.addrs.len()).map(|i| self.log(i)).collect::<Vec<_>>().join("\n---\n"));
    }

    /// A GET at bank `i` whose answer is text, not JSON (`/metrics`).
    pub async fn get_text(&self, i: usize, path: &str) -> (u16, String) {
        match self.transport.call(&self.addrs[i], Call::new(Method::GET, path, None, Duration::from_secs(20))).await {
            Ok(r) => (r.status.as_u16(), String::from_utf8_lossy(&r.body).into_owned()),
            Err(_) => (0, String::new()),
        }
    }

    pub async fn raw(&self, i: usize, method: Method, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        self.raw_with(i, method, path, body, vec![]).await
    }

    /// A request with extra headers (a bank's signature, say).
    pub async fn raw_with(&self, i: usize, method: Method, path: &str, body: Option<Vec<u8>>, headers: Vec<(String, String)>) -> (u16, Value) {
        let mut call = Call::new(method, path, body, Duration::from_secs(20));
        call.headers = headers;
        match self.transport.call(&self.addrs[i], call).await {
            Ok(r) => (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        }
    }

    /// A GET at bank `i`. A read of a user's data is signed as the bank's teller reads its
    /// books; the consortium-wide lookup, which only its user may make, as that user.
    pub async fn get(&self, i: usize, path: &str) -> (u16, Value) {
        match read_scope(path) {
            Some((scope, Some(cpf))) if scope.starts_with("consortium/") => self.read_as(i, path, &scope, Reader::User(cpf.clone()), &self.user_key(cpf.as_str())).await,
            Some((scope, _)) => self.read_as(i, path, &scope, Reader::Teller, &self.signer.tellers[i].clone()).await,
            None => self.raw(i, Method::GET, path, None).await,
        }
    }

    /// A read at bank `i` signed by user `cpf` (their key as this rig made it).
    pub async fn get_as(&self, i: usize, path: &str, cpf: &str) -> (u16, Value) {
        let scope = read_scope(path).expect("a read of a user's data").0;
        let c = Cpf::parse(cpf).expect("a valid CPF");
        self.read_as(i, path, &scope, Reader::User(c), &self.user_key(cpf)).await
    }

    async fn read_as(&self, i: usize, path: &str, scope: &str, reader: Reader, key: &KeyPair) -> (u16, Value) {
        let s = ReadStatement::sign(reader, key, &self.addrs[i], scope, now_ms(), rand::random());
        self.raw_with(i, Method::GET, path, None, vec![(read::HEADER.to_string(), s.to_header())]).await
    }

    pub async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        self.raw(i, Method::POST, path, Some(serde_json::to_vec(&body).unwrap())).await
    }

    pub fn user_key(&self, cpf: &str) -> UserKey {
        self.signer.user_key(cpf)
    }

    /// From now on, user `cpf` signs with `key` (a user who lost theirs and has a new one).
    pub fn set_user_key(&self, cpf: &str, key: UserKey) {
        let c = Cpf::parse(cpf).expect("a valid CPF");
        self.signer.users.lock().unwrap().insert(c.as_str().to_string(), key);
    }

    /// Registers user `cpf` at bank `i` with the user's key and its proof.
    pub async fn register(&self, i: usize, cpf: &str, name: &str) -> (u16, Value) {
        let c = Cpf::parse(cpf).expect("a valid CPF");
        let key = self.user_key(cpf);
        let public_key = key.public().to_hex();
        let proof = user::sign(&key, &user::register_message(&self.addrs[i], &c, &public_key));
        self.post(i, "/users", json!({"cpf": cpf, "name": name, "public_key": public_key, "proof": proof})).await
    }

    /// Opens an account at bank `i`, signed by every holder.
    pub async fn open(&self, i: usize, kind: &str, holders: &[&str]) -> (u16, Value) {
        let cpfs: Vec<Cpf> = holders.iter().map(|h| Cpf::parse(h).expect("a valid CPF")).collect();
        let k: AccountKind = serde_json::from_value(json!(kind)).expect("an account kind");
        let time_ms = now_ms();
        let message = user::open_account_message(&self.addrs[i], k, &cpfs, time_ms);
        let signatures: Vec<Value> = cpfs.iter().map(|c| json!({"cpf": c.as_str(), "sig": user::sign(&self.user_key(c.as_str()), &message)})).collect();
        let (code, a) = self.post(i, "/accounts", json!({"kind": kind, "holders": holders, "time_ms": time_ms, "signatures": signatures})).await;
        if code == 201 {
            let key = a["key"].as_str().unwrap_or_default().to_string();
            self.signer.holders.lock().unwrap().insert((self.addrs[i].clone(), key), cpfs.iter().map(|c| c.as_str().to_string()).collect());
        }
        (code, a)
    }

    /// Registers user `cpf` at bank `i` and opens a business account; returns its key.
    pub async fn account(&self, i: usize, cpf: &str) -> String {
        let (code, _) = self.register(i, cpf, "Test User").await;
        assert!(code == 201 || code == 409, "register at {i}: {code}");
        let (code, a) = self.open(i, "business", &[cpf]).await;
        assert_eq!(code, 201, "open account at {i}: {a}");
        a["key"].as_str().unwrap().to_string()
    }

    pub fn sign(&self, origin: usize, body: Value) -> Value {
        self.signer.sign(origin, body)
    }

    /// Submits a package at bank `i`, signed as a client would (`sign`).
    pub async fn submit(&self, i: usize, body: Value) -> (u16, Value) {
        let signed = self.sign(i, body);
        self.post(i, "/packages", signed).await
    }

    pub fn at(&self, i: usize, key: &str) -> Value {
        json!({"bank": self.addrs[i], "account": key})
    }

    pub async fn deposit(&self, i: usize, key: &str, amount: u64, id: &str) -> Value {
        let (code, v) = self.submit(i, json!({"id": id, "operations": [{"kind": "deposit", "to": self.at(i, key), "amount": amount}]})).await;
        assert_eq!(code, 200, "deposit {id}: {v}");
        assert_eq!(v["status"], "committed", "deposit {id}: {v}");
        v
    }

    pub async fn balance(&self, i: usize, key: &str) -> (u64, u64, u64) {
        let (code, a) = self.get(i, &format!("/accounts/{key}")).await;
        assert_eq!(code, 200, "account {key} at {i}: {a}");
        (a["balance"].as_u64().unwrap(), a["held"].as_u64().unwrap(), a["blocked"].as_u64().unwrap())
    }
}

/// The scope of a read of a user's data at `path` (and the CPF it names), as a client signs
/// it (`trust::read`); `None` for a path that needs no statement.
pub fn read_scope(path: &str) -> Option<(String, Option<Cpf>)> {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let cpf = |s: &str| Cpf::parse(s).ok();
    match parts.as_slice() {
        ["users", c] => cpf(c).map(|c| (read::scope_user(&c), Some(c))),
        ["users", c, "accounts"] => cpf(c).map(|c| (read::scope_accounts_of(&c), Some(c))),
        ["consortium", "users", c, "accounts"] => cpf(c).map(|c| (read::scope_consortium(&c), Some(c))),
        ["accounts", k] => Some((read::scope_account(k), None)),
        ["accounts", k, "statement"] => Some((read::scope_statement(k), None)),
        ["packages", id] => Some((read::scope_package(id), None)),
        _ => None,
    }
}

impl Signer {
    /// The key of user `cpf` (digits or formatted), made the first time, as a client would.
    pub fn user_key(&self, cpf: &str) -> UserKey {
        let c = Cpf::parse(cpf).expect("a valid CPF");
        self.users.lock().unwrap().entry(c.as_str().to_string()).or_insert_with(random_key).clone()
    }

    /// A package (JSON, submitted at bank `origin`) with an expiry and the signatures it
    /// needs: a holder's (a user this rig registered) for each account money leaves, the
    /// teller's of each bank a deposit goes to. Returns it as is if it is not a package.
    pub fn sign(&self, origin: usize, body: Value) -> Value {
        let Ok(mut p) = serde_json::from_value::<Package>(body.clone()) else { return body };
        p.expires_ms = now_ms() + self.valid_ms.load(std::sync::atomic::Ordering::Relaxed);
        p.signatures.clear();
        let holder = |from: &AccountRef| {
            let h = self.holders.lock().unwrap().get(&(from.bank.clone(), from.account.clone())).and_then(|h| h.first().cloned())?;
            Some((h.clone(), self.user_key(&h)))
        };
        let teller = |bank: &str| self.addrs.iter().position(|a| a == bank).map(|i| self.tellers[i].clone());
        // What the rig cannot sign (an account it did not open) goes unsigned: the test sees the refusal.
        let _ = p.sign_for(&self.addrs[origin].clone(), holder, teller);
        serde_json::to_value(&p).expect("packages serialize")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

/// A fresh key pair from the system's randomness (as a client makes one).
pub fn random_key() -> KeyPair {
    let mut seed = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut seed);
    KeyPair::from_seed(seed)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn cpf(n: u32) -> String {
    consortium_core::domain::Cpf::from_base(n).to_string()
}
