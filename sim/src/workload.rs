//! The clients: a turmoil host that registers users and accounts at every bank, funds them
//! with one deposit package per bank, then runs `clients` concurrent clients that submit
//! random packages over the real client API. Everything a bank acknowledges is recorded, so
//! the checks can hold the consortium to it. Also the `chaos` host, which injects copies of
//! token passes.

use crate::net::{sim_http, ChaosTransport};
use crate::run::{fmt_time, mix, Recorder, Shared};
use node::trust::user;
use node::trust::read::{self, ReadStatement, Reader};
use node::wire::{AccountList, AccountView, HolderSignature, NewAccount, NewUser, PackageView};
use node::domain::{AccountKind, Cents, Cpf};
use node::events::Events;
use node::net::{Call, Transport};
use node::package::{AccountRef, OpKind, OpResult, Operation, Package, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// One package as its client saw it.
#[derive(Clone, Debug)]
pub struct Track {
    pub origin: usize,
    pub submitted_at: Duration,
    /// The origin answered 2xx at least once: it has the package durably.
    pub accepted: bool,
    /// The outcome the client was told (200), and when.
    pub decided: Option<Status>,
    pub results: Vec<OpResult>,
    pub decided_at: Option<Duration>,
    /// Refused by validation (4xx), with the code.
    pub rejected: Option<String>,
    /// What was submitted (a malicious client reuses it).
    pub package: Package,
    /// Not authorized by the holders (or tellers) for this origin: a thief's, or a replay at
    /// another origin. It must never commit.
    pub forged: bool,
}

/// Everything the banks acknowledged to the workload.
#[derive(Clone, Debug, Default)]
pub struct Acks {
    pub users: Vec<(usize, String)>,
    pub accounts: Vec<(usize, String)>,
    /// Each account's holder (CPF digits), by (bank, account key).
    pub holders: BTreeMap<(usize, String), String>,
    /// Forged packages the banks aborted or refused (none may commit).
    pub forged_stopped: u64,
    /// By package identity: (origin bank, id).
    pub packages: BTreeMap<(usize, String), Track>,
    /// Adversarial clients' reused ids: refused by the bank that holds them (409), and sent to
    /// other banks (packages of their own there).
    pub reuses_refused: u64,
    pub reuses_elsewhere: u64,
    /// Requests the rogue host sent, and refusals of them the banks reported.
    pub rogue_sent: u64,
    pub rogue_refused: u64,
    /// Honest reads answered, and what the adversaries saw of them on the wire (bank, path,
    /// statement), the last few.
    pub reads_ok: u64,
    pub reads_seen: std::collections::VecDeque<(usize, String, String)>,
    /// Adversaries' reads (replayed, unsigned, or signed with the wrong key), all refused.
    pub snoops_refused: u64,
    /// Answers to the rogue host's flood, by HTTP status (0: no answer).
    pub flood: BTreeMap<u16, u64>,
    /// Simulated latency from first submission to a known outcome, in microseconds.
    pub latencies_us: Vec<u64>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// One HTTP call with a JSON answer: Ok((status, body)) or Err(why it got no answer).
async fn http(t: &dyn Transport, bank: &str, method: hyper::Method, path: &str, body: Option<Vec<u8>>, timeout: Duration) -> Result<(u16, bytes::Bytes), String> {
    let call = Call::new(method, path, body, timeout);
    t.call(bank, call).await.map(|r| (r.status.as_u16(), r.body)).map_err(|e| e.to_string())
}

pub(crate) async fn client_main(sh: Arc<Shared>) -> turmoil::Result {
    let sc = sh.scenario.clone();
    let plain: Arc<dyn Transport> = Arc::new(sim_http());
    let recorder: Arc<dyn Events> = Arc::new(Recorder(sh.clone()));
    let chaotic: Arc<dyn Transport> =
        Arc::new(ChaosTransport::new("client", plain.clone(), sh.chaos_config.clone(), mix(sc.seed, 7), sh.chaos.clone(), Some(recorder)));

    // Users and accounts, every bank at once.
    let mut setups = Vec::new();
    for b in 0..sc.banks {
        setups.push(tokio::spawn(setup_bank(sh.clone(), plain.clone(), b)));
    }
    let mut accounts: Vec<(usize, String)> = Vec::new();
    for s in setups {
        accounts.extend(s.await.map_err(|e| e.to_string())?);
    }
    // Initial balances: one deposit package per bank.
    let mut funds = Vec::new();
    for b in 0..sc.banks {
        let ops: Vec<Operation> = accounts
            .iter()
            .filter(|a| a.0 == b)
            .map(|(_, key)| Operation {
                kind: OpKind::Deposit,
                from: None,
                to: Some(AccountRef { bank: sh.addrs[b].clone(), account: key.clone() }),
                amount: Cents(sc.workload.initial_balance),
            })
            .collect();
        let mut p = Package { id: format!("init-{}", sh.names[b]), operations: ops, ..Default::default() };
        sign(&sh, b, &mut p);
        funds.push(tokio::spawn(submit(sh.clone(), plain.clone(), b, p, false)));
    }
    for f in funds {
        f.await.map_err(|e| e.to_string())?;
    }
    sh.note(format!("setup done: {} accounts funded; {} clients start", accounts.len(), sc.workload.clients));

    let accounts = Arc::new(accounts);
    let mut clients = Vec::new();
    for c in 0..sc.workload.clients {
        clients.push(tokio::spawn(client_loop(sh.clone(), chaotic.clone(), accounts.clone(), c)));
    }
    for m in 0..sc.workload.malicious_clients {
        clients.push(tokio::spawn(malicious_loop(sh.clone(), chaotic.clone(), accounts.clone(), m)));
    }
    for c in clients {
        c.await.map_err(|e| e.to_string())?;
    }
    // Stay up until the simulation ends, holding the HTTP clients. A finished host drops
    // its connection pool, which closes connections in the order of hyper's randomly-seeded
    // HashMap: the FIN segments (and the latencies turmoil draws for them) would differ
    // from process to process. Found by the determinism test.
    let _keep = (plain, chaotic);
    std::future::pending::<()>().await;
    Ok(())
}

/// Registers the bank's users and opens one personal account each. Retries until it works;
/// returns (bank, account key) of every account.
async fn setup_bank(sh: Arc<Shared>, t: Arc<dyn Transport>, b: usize) -> Vec<(usize, String)> {
    let bank = sh.addrs[b].clone();
    let timeout = ms(sh.scenario.timing.peer_timeout_ms * 5);
    let mut out = Vec::new();
    for u in 0..sh.scenario.workload.users_per_bank {
        let c = Cpf::from_base(((b + 1) * 100 + u) as u32);
        let cpf = c.to_string();
        let key = sh.user_key(c.as_str());
        let public_key = key.public().to_hex();
        let proof = user::sign(&key, &user::register_message(&bank, &c, &public_key));
        let user = serde_json::to_vec(&NewUser { cpf: cpf.clone(), name: format!("User {} of {}", u + 1, sh.names[b]), public_key, proof, approval: None }).unwrap();
        loop {
            match http(&*t, &bank, hyper::Method::POST, "/users", Some(user.clone()), timeout).await {
                Ok((201, _)) | Ok((409, _)) => break,
                _ => tokio::time::sleep(ms(50)).await,
            }
        }
        sh.lock().acks.users.push((b, cpf.clone()));
        let key = loop {
            // Signed anew at each attempt: the bank takes an opening signed within 5 minutes.
            let time_ms = crate::run::sim_wall_ms();
            let message = user::open_account_message(&bank, AccountKind::Personal, std::slice::from_ref(&c), time_ms);
            let signatures = vec![HolderSignature { cpf: c.as_str().to_string(), sig: user::sign(&key, &message) }];
            let req = serde_json::to_vec(&NewAccount { kind: AccountKind::Personal, holders: vec![cpf.clone()], time_ms, signatures }).unwrap();
            match http(&*t, &bank, hyper::Method::POST, "/accounts", Some(req.clone()), timeout).await {
                Ok((201, body)) => {
                    if let Ok(a) = serde_json::from_slice::<AccountView>(&body) {
                        break a.key;
                    }
                }
                Ok((422, _)) => {
                    // An earlier attempt opened it; its answer was lost.
                    if let Ok((200, body)) = http(&*t, &bank, hyper::Method::GET, &format!("/users/{cpf}/accounts"), None, timeout).await {
                        if let Some(a) = serde_json::from_slice::<AccountList>(&body).ok().and_then(|l| l.accounts.into_iter().next()) {
                            break a.key;
                        }
                    }
                }
                _ => {}
            }
            tokio::time::sleep(ms(50)).await;
        };
        sh.lock().acks.accounts.push((b, key.clone()));
        sh.lock().acks.holders.insert((b, key.clone()), c.as_str().to_string());
        out.push((b, key));
    }
    out
}

/// Submits a package to its origin until the client knows the outcome (or the run ends).
/// A lost answer or a 202 is followed by the same request again: the id makes it the same
/// package, never a second one.
async fn submit(sh: Arc<Shared>, t: Arc<dyn Transport>, origin: usize, p: Package, forged: bool) -> Option<Status> {
    let sc = &sh.scenario;
    let end = ms(sc.duration_ms + sc.settle_ms);
    let start = sh.now();
    let id = p.id.clone();
    let key = (origin, id.clone());
    {
        let mut st = sh.lock();
        assert!(!st.acks.packages.contains_key(&key), "the workload submits package {id}@{origin} once");
        let track = Track { origin, submitted_at: start, accepted: false, decided: None, results: Vec::new(), decided_at: None, rejected: None, package: p.clone(), forged };
        st.acks.packages.insert(key.clone(), track);
    }
    let body = serde_json::to_vec(&p).unwrap();
    let timeout = ms(sc.timing.package_wait_ms + 2 * sc.timing.peer_timeout_ms + 500);
    let mut backoff = 50;
    loop {
        if sh.now() >= end {
            return None;
        }
        match http(&*t, &sh.addrs[origin], hyper::Method::POST, "/packages", Some(body.clone()), timeout).await {
            Ok((code @ (200 | 202), answer)) => {
                let Ok(v) = serde_json::from_slice::<PackageView>(&answer) else {
                    sh.violation(format!("api: {} answered {code} to package {id} with an unreadable body", sh.names[origin]));
                    return None;
                };
                let now = sh.now();
                let mut st = sh.lock();
                let st = &mut *st;
                let track = st.acks.packages.get_mut(&key).expect("registered above");
                track.accepted = true;
                if v.status == Status::Pending {
                    backoff = 50;
                    continue;
                }
                match track.decided {
                    Some(before) if before != v.status || track.results != v.results => {
                        let what = format!(
                            "exactly once: package {id} was reported {before:?} at {}, now {:?} (acknowledged results changed)",
                            fmt_time(track.decided_at.unwrap_or_default()),
                            v.status
                        );
                        Shared::violation_locked(st, now, what);
                    }
                    Some(_) => {}
                    None => {
                        track.decided = Some(v.status);
                        track.results = v.results.clone();
                        track.decided_at = Some(now);
                        let forged = track.forged;
                        st.acks.latencies_us.push((now - start).as_micros() as u64);
                        if forged && v.status == Status::Committed {
                            let what = format!("trust: package {id} at {} committed without its holders' or tellers' signatures for that bank", sh.names[origin]);
                            Shared::violation_locked(st, now, what);
                        } else if forged {
                            st.acks.forged_stopped += 1;
                        }
                    }
                }
                return Some(v.status);
            }
            Ok((409, _)) => {
                sh.violation(format!("api: package {id} refused as a reused id by {}: the client never reused it", sh.names[origin]));
                return None;
            }
            // The package's record may have been compacted: its outcome is unknown to the
            // client (the checks know it), not refused.
            Ok((410, _)) => return None,
            Ok((code @ 400..=499, answer)) if code != 429 => {
                let why = String::from_utf8_lossy(&answer).into_owned();
                if forged {
                    sh.lock().acks.forged_stopped += 1;
                }
                sh.lock().acks.packages.get_mut(&key).expect("registered").rejected = Some(format!("{code} {why}"));
                return None;
            }
            _ => {
                tokio::time::sleep(ms(backoff)).await;
                backoff = (backoff * 2).min(400);
            }
        }
    }
}

async fn client_loop(sh: Arc<Shared>, t: Arc<dyn Transport>, accounts: Arc<Vec<(usize, String)>>, c: usize) {
    let sc = sh.scenario.clone();
    let w = &sc.workload;
    if w.ops_per_sec <= 0.0 || accounts.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(sc.seed, 1_000 + c as u64));
    let mut reads = ChaCha8Rng::seed_from_u64(mix(sc.seed, 3_000 + c as u64));
    let mean_ms = w.clients as f64 * 1000.0 / w.ops_per_sec;
    let stop = ms(sc.duration_ms);
    for n in 1.. {
        let u: f64 = rng.random();
        let think = (-(1.0 - u).ln() * mean_ms).min(mean_ms * 10.0) as u64;
        tokio::time::sleep(ms(think)).await;
        if sh.now() >= stop {
            return;
        }
        let (origin, mut p) = random_package(&sh, &mut rng, &accounts, format!("c{}-{n}", c + 1));
        sign(&sh, origin, &mut p);
        let from = p.operations.iter().find_map(|op| op.from.clone());
        submit(sh.clone(), t.clone(), origin, p, false).await;
        // Drawn from a stream of its own, so the packages stay what they were without reads.
        if let Some(from) = from.filter(|_| reads.random_bool(w.reads)) {
            read_balance(&sh, &*t, &from, mix(c as u64, n)).await;
        }
    }
}

/// The holder of `from` reads it, signed. Answered, the read is what an eavesdropper saw.
async fn read_balance(sh: &Shared, t: &dyn Transport, from: &AccountRef, nonce: u64) {
    let b = sh.addrs.iter().position(|a| *a == from.bank).expect("a bank of the run");
    let Some(holder) = sh.lock().acks.holders.get(&(b, from.account.clone())).cloned() else { return };
    let c = Cpf::parse(&holder).expect("holders are CPFs");
    let path = format!("/accounts/{}", from.account);
    let s = ReadStatement::sign(Reader::User(c), &sh.user_key(&holder), &from.bank, &read::scope_account(&from.account), crate::run::sim_wall_ms(), nonce_bytes(nonce));
    let header = s.to_header();
    let mut call = Call::new(hyper::Method::GET, path.clone(), None, ms(sh.scenario.timing.peer_timeout_ms * 2));
    call.headers.push((read::HEADER.to_string(), header.clone()));
    match t.call(&from.bank, call).await.map(|r| r.status.as_u16()) {
        Ok(200) => {
            let mut st = sh.lock();
            st.acks.reads_ok += 1;
            st.acks.reads_seen.push_back((b, path, header));
            if st.acks.reads_seen.len() > 32 {
                st.acks.reads_seen.pop_front();
            }
        }
        // The holder's own read, refused as not theirs or not their key: a check is wrong.
        Ok(code @ 403) => sh.violation(format!("api: {} refused ({code}) a holder's signed read of {}", sh.names[b], from.account)),
        _ => {} // unanswered, stale on a skewed clock, or the bank not ready
    }
}

fn nonce_bytes(n: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8..].copy_from_slice(&(!n).to_be_bytes());
    b
}

/// An adversary reads an account it does not hold: a read it saw on the wire, played again;
/// no statement at all; or a statement in the holder's name signed with its own key. An
/// answer with the account is a violation.
async fn snoop(sh: &Shared, t: &dyn Transport, rng: &mut ChaCha8Rng, accounts: &[(usize, String)], m: usize) {
    let seen = sh.lock().acks.reads_seen.clone();
    let (b, path, header) = match rng.random_range(0..3) {
        0 if !seen.is_empty() => seen[rng.random_range(0..seen.len())].clone(),
        kind => {
            let (b, key) = accounts[rng.random_range(0..accounts.len())].clone();
            let path = format!("/accounts/{key}");
            let header = match (kind, sh.lock().acks.holders.get(&(b, key.clone())).cloned()) {
                (2, Some(holder)) => {
                    let own = crate::run::seeded_key(mix(sh.scenario.seed, 0x7417 + m as u64));
                    let c = Cpf::parse(&holder).expect("holders are CPFs");
                    ReadStatement::sign(Reader::User(c), &own, &sh.addrs[b], &read::scope_account(&key), crate::run::sim_wall_ms(), rng.random()).to_header()
                }
                _ => String::new(),
            };
            (b, path, header)
        }
    };
    let mut call = Call::new(hyper::Method::GET, path.clone(), None, ms(sh.scenario.timing.peer_timeout_ms * 2));
    if !header.is_empty() {
        call.headers.push((read::HEADER.to_string(), header));
    }
    match t.call(&sh.addrs[b], call).await.map(|r| r.status.as_u16()) {
        Ok(200) => sh.violation(format!("trust: {} answered an adversary's read of {path}", sh.names[b])),
        Ok(401 | 403) => sh.lock().acks.snoops_refused += 1,
        _ => {}
    }
}

/// An adversarial client. It plays with other clients' ids: each must stay the package of
/// its (origin, id), whatever is sent elsewhere under the same id.
async fn malicious_loop(sh: Arc<Shared>, t: Arc<dyn Transport>, accounts: Arc<Vec<(usize, String)>>, m: usize) {
    let sc = sh.scenario.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(sc.seed, 5_000 + m as u64));
    let mut snoops = ChaCha8Rng::seed_from_u64(mix(sc.seed, 6_000 + m as u64));
    let stop = ms(sc.duration_ms);
    let mean_ms = 1000.0 * sc.workload.clients.max(1) as f64 / sc.workload.ops_per_sec.max(1.0);
    loop {
        tokio::time::sleep(ms(rng.random_range(1..=(2.0 * mean_ms) as u64 + 1))).await;
        if sh.now() >= stop || accounts.is_empty() {
            return;
        }
        if sc.workload.reads > 0.0 && snoops.random_bool(0.5) {
            snoop(&sh, &*t, &mut snoops, &accounts, m).await;
            continue;
        }
        // A package another client sent, as the adversary saw it on the wire.
        // An origin keeps a package's id only while it keeps its record: once every bank
        // acknowledged the outcome and `expires_ms + 2 × clock_skew_ms` passed, compaction
        // frees it, and a package of other content under it is a new package (the checks
        // name packages by origin and id, so the adversary leaves those ids alone). A bank's
        // clock may run ahead by up to the allowance: the margin is one allowance.
        let held_until = |t: &Track| t.package.expires_ms + sc.timing.clock_skew_ms;
        let now_ms = crate::run::sim_wall_ms();
        let victim = {
            let st = sh.lock();
            let seen: Vec<&Track> = st.acks.packages.values().filter(|t| t.accepted && (sc.timing.compact_every_ms == 0 || now_ms + 500 < held_until(t))).collect();
            if seen.is_empty() {
                continue;
            }
            seen[rng.random_range(0..seen.len())].clone()
        };
        let id = victim.package.id.clone();
        let others: Vec<usize> = (0..sh.addrs.len()).filter(|b| *b != victim.origin && !sh.lock().acks.packages.contains_key(&(*b, id.clone()))).collect();
        match rng.random_range(0..3) {
            // The same id with other content at the same bank: must be refused, never run.
            0 => {
                let (_, mut p) = random_package(&sh, &mut rng, &accounts, id.clone());
                if p.same_content(&victim.package) {
                    p.operations.push(Operation { kind: OpKind::Deposit, from: None, to: p.operations[0].to.clone().or(p.operations[0].from.clone()), amount: Cents(1) });
                }
                // Signed as a client would: only the id gives it away.
                sign(&sh, victim.origin, &mut p);
                reuse_refused(&sh, &*t, victim.origin, &p).await;
            }
            // The same id with other content at another bank: a package of its own there.
            1 if !others.is_empty() => {
                let origin = others[rng.random_range(0..others.len())];
                let (_, mut p) = random_package(&sh, &mut rng, &accounts, id);
                sh.lock().acks.reuses_elsewhere += 1;
                // The adversary holds no customer's key: it signs with its own.
                let forged = steals(&p);
                sign_as_thief(&sh, m, origin, &mut p);
                submit(sh.clone(), t.clone(), origin, p, forged).await;
            }
            // The very same package again at another bank: also a package of its own.
            _ if !others.is_empty() => {
                let origin = others[rng.random_range(0..others.len())];
                sh.lock().acks.reuses_elsewhere += 1;
                // Signed for the victim's origin: a replay at another bank must not move money.
                let forged = steals(&victim.package);
                submit(sh.clone(), t.clone(), origin, victim.package.clone(), forged).await;
            }
            _ => {}
        }
    }
}

/// Whether a package moves money that needs someone's signature (every package does: money
/// leaves an account, or cash arrives).
fn steals(p: &Package) -> bool {
    !p.operations.is_empty()
}

/// Signs `p` for `origin` as its honest client: valid for an hour, by the holder of each
/// account money leaves, by the teller of each bank a deposit goes to.
fn sign(sh: &Shared, origin: usize, p: &mut Package) {
    let bank = |addr: &str| sh.addrs.iter().position(|a| a == addr).expect("a bank of the run");
    let holder = |from: &AccountRef| {
        let h = sh.lock().acks.holders.get(&(bank(&from.bank), from.account.clone())).cloned()?;
        Some((h.clone(), sh.user_key(&h)))
    };
    sign_with(sh, origin, p, holder, |b| Some(sh.tellers[bank(b)].clone()));
}

/// Signs `p` as adversary `m` can: with its own key, as every holder and every teller.
fn sign_as_thief(sh: &Shared, m: usize, origin: usize, p: &mut Package) {
    let own = crate::run::seeded_key(mix(sh.scenario.seed, 0x7417 + m as u64));
    let holder = |from: &AccountRef| {
        let b = sh.addrs.iter().position(|a| *a == from.bank).expect("a bank of the run");
        let h = sh.lock().acks.holders.get(&(b, from.account.clone())).cloned()?;
        Some((h, own.clone()))
    };
    sign_with(sh, origin, p, holder, |_| Some(own.clone()));
}

/// Valid for `package_valid_ms` (an hour by default), signed by whom `holder` and `teller` say (what they cannot sign stays
/// unsigned: the banks refuse it, which is what the run checks).
fn sign_with(
    sh: &Shared,
    origin: usize,
    p: &mut Package,
    holder: impl Fn(&AccountRef) -> Option<(String, node::trust::keys::UserKey)>,
    teller: impl Fn(&str) -> Option<node::trust::keys::KeyPair>,
) {
    p.expires_ms = crate::run::sim_wall_ms() + sh.scenario.workload.package_valid_ms;
    p.signatures.clear();
    let _ = p.sign_for(&sh.addrs[origin], holder, teller);
}

/// Sends `p`, whose id `origin` already holds with other content: the bank must answer 409
/// and keep the package it has.
async fn reuse_refused(sh: &Shared, t: &dyn Transport, origin: usize, p: &Package) {
    let timeout = ms(sh.scenario.timing.package_wait_ms + 2 * sh.scenario.timing.peer_timeout_ms + 500);
    let body = serde_json::to_vec(p).unwrap();
    match http(t, &sh.addrs[origin], hyper::Method::POST, "/packages", Some(body), timeout).await {
        Ok((code @ (200 | 202), _)) => {
            sh.violation(format!("api: {} answered {code} to other content under its package id {}", sh.names[origin], p.id));
        }
        Ok((409, _)) => sh.lock().acks.reuses_refused += 1,
        _ => {} // no answer: the same question may come again
    }
}

fn random_package(sh: &Shared, rng: &mut ChaCha8Rng, accounts: &[(usize, String)], id: String) -> (usize, Package) {
    let w = &sh.scenario.workload;
    let r = |a: &(usize, String)| AccountRef { bank: sh.addrs[a.0].clone(), account: a.1.clone() };
    let n_ops = if rng.random_bool(w.multi_leg) { rng.random_range(2..=4) } else { 1 };
    let mut ops = Vec::new();
    let mut first_bank = None;
    for _ in 0..n_ops {
        let amount = Cents(rng.random_range(1..=w.max_amount));
        let kind: f64 = rng.random();
        let a = &accounts[rng.random_range(0..accounts.len())];
        first_bank.get_or_insert(a.0);
        let op = if kind < w.deposits {
            Operation { kind: OpKind::Deposit, from: None, to: Some(r(a)), amount }
        } else if kind < w.deposits + w.withdrawals {
            Operation { kind: OpKind::Withdraw, from: Some(r(a)), to: None, amount }
        } else {
            let cross = rng.random_bool(w.cross_bank);
            let candidates: Vec<&(usize, String)> =
                accounts.iter().filter(|b| if cross { b.0 != a.0 } else { b.0 == a.0 && b.1 != a.1 }).collect();
            let candidates = if candidates.is_empty() { accounts.iter().filter(|b| *b != a).collect() } else { candidates };
            let Some(to) = candidates.get(rng.random_range(0..candidates.len().max(1))) else { continue };
            Operation { kind: OpKind::Transfer, from: Some(r(a)), to: Some(r(to)), amount }
        };
        ops.push(op);
    }
    if ops.is_empty() {
        let a = &accounts[0];
        ops.push(Operation { kind: OpKind::Deposit, from: None, to: Some(r(a)), amount: Cents(1) });
    }
    let origin = if rng.random_bool(w.any_origin) { rng.random_range(0..sh.addrs.len()) } else { first_bank.unwrap_or(0) };
    (origin, Package { id, operations: ops, ..Default::default() })
}

/// The `chaos` host: sends the token copies the harness asks for (duplicate_token).
pub(crate) async fn chaos_main(mut rx: UnboundedReceiver<(String, Call)>) -> turmoil::Result {
    let t = Arc::new(sim_http());
    while let Some((peer, call)) = rx.recv().await {
        let t = t.clone();
        tokio::spawn(async move {
            let _ = t.call(&peer, call).await;
        });
    }
    Ok(())
}
