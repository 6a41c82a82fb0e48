use super::*;
use consortium_core::package::spec::{AccountRef, OpKind, Operation};
use crate::store::simdisk::SimDisk;

fn store() -> Store {
    Store::open_backend(SimDisk::new(1).backend()).unwrap()
}

fn cpf(n: u32) -> Cpf {
    Cpf::from_base(n)
}

/// Every test user's key, derived from their CPF.
fn user_key(c: &Cpf) -> consortium_core::trust::keys::UserKey {
    let mut seed = [7u8; 32];
    seed[..11].copy_from_slice(c.as_str().as_bytes());
    consortium_core::trust::keys::KeyPair::from_seed(seed)
}

fn teller() -> consortium_core::trust::keys::KeyPair {
    consortium_core::trust::keys::KeyPair::from_seed([42; 32])
}

const NOW_MS: u64 = 1_800_000_000_000;

/// What this test bank ("me") authorizes legs against: its teller, a fixed clock.
fn auth() -> Authority {
    Authority { me: "me".into(), now_ms: NOW_MS, tellers: vec![teller().public()], skew_ms: SKEW_MS }
}

const SKEW_MS: u64 = 30_000;

/// This test bank's clock at `now_ms`.
fn at_time(now_ms: u64) -> When {
    When { now_ms, skew_ms: SKEW_MS }
}

/// `p` as its client signs it for `origin`: valid for a minute, by a holder of each account
/// money leaves (read from the store) and by the teller of each deposit.
fn signed(s: &Store, origin: &str, p: &Package) -> Package {
    let mut p = p.clone();

    for op in p.operations.clone() {
        if let Some(holder) = op.from.as_ref().and_then(|f| s.account(&f.account).ok().flatten()).and_then(|a| a.holders.first().cloned()) {
            p.sign_as_holder(origin, holder.as_str(), &user_key(&holder));
        }
        if op.kind == OpKind::Deposit {
            p.sign_as_teller(origin, "me", &teller());
        }
    }
    p
}

fn user(s: &Store, n: u32) {
    let mut u = User::new(cpf(n), "Someone").unwrap();
    u.key = Some(user_key(&u.cpf).public().to_hex());
    s.register_user(&u).unwrap();
}

fn at(account: &str) -> Option<AccountRef> {
    Some(AccountRef { bank: "me".into(), account: account.into() })
}

fn deposit(id: &str, to: &str, cents: u64) -> Package {
    Package { id: id.into(), operations: vec![Operation { kind: OpKind::Deposit, from: None, to: at(to), amount: Cents(cents) }], expires_ms: NOW_MS + 60_000, ..Default::default() }
}

fn withdraw(id: &str, from: &str, cents: u64) -> Package {
    Package { id: id.into(), operations: vec![Operation { kind: OpKind::Withdraw, from: at(from), to: None, amount: Cents(cents) }], expires_ms: NOW_MS + 60_000, ..Default::default() }
}

/// Prepares this bank's ("me") legs of `p` accepted at `origin`, as a participant does.
fn prep(s: &Store, origin: &str, p: &Package) -> Result<Vec<LegVote>, Error> {
    let legs = p.legs_by_bank().remove("me").unwrap_or_default();
    s.prepare(&auth(), origin, &signed(s, origin, p), &legs)
}

fn key(origin: &str, id: &str) -> PackageKey {
    PackageKey::new(origin, id)
}

/// Applies `outcome` of `p` accepted at `origin`, as its origin decided it.
fn fin(s: &Store, origin: &str, p: &Package, outcome: Outcome) -> Result<usize, Error> {
    s.finish(at_time(NOW_MS), &p.key(origin), outcome, p.digest(origin))
}

fn funded(s: &Store, n: u32, cents: u64) -> Account {
    user(s, n);
    let a = s.open_account("me", AccountKind::Business, &[cpf(n)]).unwrap();
    let id = format!("fund{n}");
    assert!(prep(s, "me", &deposit(&id, &a.key, cents)).unwrap()[0].ok);
    fin(s, "me", &deposit(&id, &a.key, cents), Outcome::Commit).unwrap();
    s.account(&a.key).unwrap().unwrap()
}

#[test]
fn users_unique_and_accounts_follow_rules() {
    let s = store();
    user(&s, 1);
    assert_eq!(s.register_user(&User::new(cpf(1), "Again").unwrap()).unwrap_err().code, "user_exists");
    let a = s.open_account("me", AccountKind::Personal, &[cpf(1)]).unwrap();
    assert_eq!(a.key, "000001");
    assert_eq!(s.open_account("me", AccountKind::Personal, &[cpf(1)]).unwrap_err().code, "personal_exists");
    assert_eq!(s.open_account("me", AccountKind::Joint, &[cpf(1), cpf(2)]).unwrap_err().code, "user_not_found");
    user(&s, 2);
    let j = s.open_account("me", AccountKind::Joint, &[cpf(1), cpf(2)]).unwrap();
    assert_eq!(s.accounts_of(&cpf(1)).unwrap().iter().map(|a| a.key.clone()).collect::<Vec<_>>(), vec![a.key, j.key.clone()]);
    assert_eq!(s.accounts_of(&cpf(2)).unwrap().len(), 1);
    assert!(s.accounts_of(&cpf(3)).unwrap().is_empty());
}

#[test]
fn prepare_is_idempotent_and_finish_moves_money_once() {
    let s = store();
    let a = funded(&s, 1, 100);
    let p = withdraw("p", &a.key, 60);
    let v1 = prep(&s, "o", &p).unwrap();
    let v2 = prep(&s, "o", &p).unwrap();
    assert_eq!(v1, v2);
    assert!(v1[0].ok);
    let after = s.account(&a.key).unwrap().unwrap();
    assert_eq!((after.balance, after.held), (Cents(40), Cents(60)), "the hold is taken once");
    assert_eq!(s.in_doubt().unwrap(), vec![key("o", "p")]);
    assert_eq!(fin(&s, "o", &p, Outcome::Abort).unwrap(), 1);
    assert_eq!(fin(&s, "o", &p, Outcome::Abort).unwrap(), 0);
    let after = s.account(&a.key).unwrap().unwrap();
    assert_eq!((after.balance, after.held), (Cents(100), Cents(0)));
    assert!(s.in_doubt().unwrap().is_empty());
    assert!(s.audit().unwrap().self_check().is_empty());
}

/// Issue 9's reproduction, at the participant: one client id at two origins is two packages,
/// and the second one's prepare is decided on its own merits, never by the first one's vote.
#[test]
fn the_same_id_at_two_origins_is_two_packages() {
    let s = store();
    let a = funded(&s, 1, 100);
    let x = withdraw("X", &a.key, 100);
    assert!(prep(&s, "A", &x).unwrap()[0].ok);
    fin(&s, "A", &x, Outcome::Commit).unwrap();
    let v = prep(&s, "B", &x).unwrap();
    assert!(!v[0].ok, "(B, X) is a package of its own: no funds left for it");
    assert!(v[0].reason.as_ref().unwrap().contains("insufficient funds"), "{v:?}");
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(0));
    assert!(s.audit().unwrap().self_check().is_empty());
}

#[test]
fn a_prepare_with_other_content_under_a_known_key_is_refused() {
    let s = store();
    let a = funded(&s, 1, 100);
    assert!(prep(&s, "o", &withdraw("p", &a.key, 10)).unwrap()[0].ok);
    for other in [withdraw("p", &a.key, 90), deposit("p", &a.key, 10)] {
        let e = prep(&s, "o", &other).unwrap_err();
        assert_eq!(e.code, "package_mismatch", "{e}");
    }
    // Also after the outcome: a committed package's key never takes other content.
    assert_eq!(fin(&s, "o", &withdraw("p", &a.key, 90), Outcome::Commit).unwrap_err().code, "package_mismatch", "a decision about other content");
    fin(&s, "o", &withdraw("p", &a.key, 10), Outcome::Commit).unwrap();
    assert_eq!(prep(&s, "o", &withdraw("p", &a.key, 90)).unwrap_err().code, "package_mismatch");
    assert!(prep(&s, "o", &withdraw("p", &a.key, 10)).unwrap()[0].ok, "the same package again: its old vote");
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(90));
    assert!(s.audit().unwrap().self_check().is_empty());
}

#[test]
fn outcomes_that_contradict_the_legs_are_refused_and_move_nothing() {
    let s = store();
    let a = funded(&s, 1, 10);
    // A commit of a package never prepared here.
    assert_eq!(fin(&s, "o", &deposit("ghost", &a.key, 1), Outcome::Commit).unwrap_err().code, "outcome_contradicts_legs");
    assert!(s.participation(&key("o", "ghost")).unwrap().is_none(), "no tombstone from a refusal");
    // A commit of a refused leg (insufficient funds).
    assert!(!prep(&s, "o", &withdraw("big", &a.key, 11)).unwrap()[0].ok);
    assert_eq!(fin(&s, "o", &withdraw("big", &a.key, 11), Outcome::Commit).unwrap_err().code, "outcome_contradicts_legs");
    // A package ended one way, then told the other.
    assert!(prep(&s, "o", &deposit("d", &a.key, 5)).unwrap()[0].ok);
    fin(&s, "o", &deposit("d", &a.key, 5), Outcome::Abort).unwrap();
    assert_eq!(fin(&s, "o", &deposit("d", &a.key, 5), Outcome::Commit).unwrap_err().code, "outcome_contradicts_legs");
    assert!(prep(&s, "o", &withdraw("w", &a.key, 5)).unwrap()[0].ok);
    fin(&s, "o", &withdraw("w", &a.key, 5), Outcome::Commit).unwrap();
    assert_eq!(fin(&s, "o", &withdraw("w", &a.key, 5), Outcome::Abort).unwrap_err().code, "outcome_contradicts_legs");
    let after = s.account(&a.key).unwrap().unwrap();
    assert_eq!((after.balance, after.held, after.blocked), (Cents(5), Cents(0), Cents(0)));
    assert!(s.audit().unwrap().self_check().is_empty());
}

#[test]
fn late_prepare_after_abort_is_refused() {
    let s = store();
    let a = funded(&s, 1, 100);
    fin(&s, "o", &withdraw("late", &a.key, 5), Outcome::Abort).unwrap();
    let v = prep(&s, "o", &withdraw("late", &a.key, 5)).unwrap();
    assert!(!v[0].ok);
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(100), "nothing held for a dead package");
    assert!(s.in_doubt().unwrap().is_empty());
    // The same id at another origin is not dead.
    assert!(prep(&s, "o2", &withdraw("late", &a.key, 5)).unwrap()[0].ok);
}

#[test]
fn insufficient_funds_and_missing_account_are_votes_not_errors() {
    let s = store();
    let a = funded(&s, 1, 10);
    let p = Package {
        id: "p".into(),
        operations: vec![
            Operation { kind: OpKind::Withdraw, from: at(&a.key), to: None, amount: Cents(11) },
            Operation { kind: OpKind::Deposit, from: None, to: at("999999"), amount: Cents(1) },
        ], expires_ms: NOW_MS + 60_000, ..Default::default()
    };
    let v = prep(&s, "o", &p).unwrap();
    assert!(!v[0].ok && !v[1].ok);
    assert!(s.in_doubt().unwrap().is_empty(), "nothing was prepared");
}

fn package(id: &str, amount: u64) -> Package {
    Package {
        id: id.into(),
        operations: vec![Operation { kind: OpKind::Deposit, from: None, to: Some(AccountRef { bank: "me".into(), account: "000001".into() }), amount: Cents(amount) }],
        expires_ms: NOW_MS + 60_000, ..Default::default()
    }
}

#[test]
fn submit_is_idempotent_and_decide_is_compare_and_set() {
    let s = store();
    let (r, new) = s.submit(&package("x", 5), "me").unwrap();
    assert!(new);
    let (r2, new2) = s.submit(&package("x", 5), "me").unwrap();
    assert!(!new2);
    assert_eq!(r, r2);
    assert_eq!(s.submit(&package("x", 6), "me").unwrap_err().code, "id_reused");
    assert_eq!(s.outbox().unwrap().len(), 1);
    let ok = vec![OpResult { index: 0, ok: true, reason: None }];
    let (r, d) = s.decide("x", Outcome::Commit, ok, "exec").unwrap();
    assert_eq!((r.status, d), (consortium_core::package::Status::Committed, Decided::Now));
    let (r, d) = s.decide("x", Outcome::Abort, vec![], "me").unwrap();
    assert_eq!((r.status, d), (consortium_core::package::Status::Committed, Decided::Already));
    assert!(s.outbox().unwrap().is_empty());
    assert_eq!(s.decide("nope", Outcome::Abort, vec![], "me").unwrap_err().code, "package_not_found");
}

#[test]
fn state_survives_reopen_on_the_same_disk() {
    let disk = SimDisk::new(7);
    {
        let s = Store::open_backend(disk.backend()).unwrap();
        user(&s, 1);
        s.open_account("me", AccountKind::Personal, &[cpf(1)]).unwrap();
        s.submit(&package("k", 3), "me").unwrap();
        s.raise_epoch_gen(4).unwrap();
    }
    disk.crash();
    let s = Store::open_backend(disk.backend()).unwrap();
    assert!(s.user(&cpf(1)).unwrap().is_some());
    assert_eq!(s.accounts_of(&cpf(1)).unwrap().len(), 1);
    assert_eq!(s.outbox().unwrap().len(), 1);
    assert_eq!(s.epoch_gen().unwrap(), 4);
}

#[test]
fn a_creation_cut_by_a_crash_does_not_keep_the_bank_down() {
    let dir = tempfile::tempdir().unwrap();
    // What power loss during redb's creation leaves: a sized file without the magic number.
    std::fs::write(dir.path().join("bank.redb.creating"), vec![0u8; 4096]).unwrap();
    let s = Store::open_dir(dir.path()).expect("the half-created file is discarded");
    user(&s, 1);
    drop(s);
    assert!(!dir.path().join("bank.redb.creating").exists());
    let s = Store::open_dir(dir.path()).unwrap();
    assert!(s.user(&cpf(1)).unwrap().is_some(), "the real database is kept");
    // A damaged database under the real name is never wiped silently.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("bank.redb"), vec![0u8; 4096]).unwrap();
    assert!(Store::open_dir(other.path()).is_err());
}

#[test]
fn a_group_commit_applies_writes_in_order_and_answers_each_in_its_slot() {
    let s = store();
    let a = funded(&s, 1, 100);
    let pkg = |id: &str, cents: u64| Package {
        id: id.into(),
        operations: vec![Operation { kind: OpKind::Withdraw, from: Some(AccountRef { bank: "me".into(), account: a.key.clone() }), to: None, amount: Cents(cents) }], expires_ms: NOW_MS + 60_000, ..Default::default()
    };
    let sub = |id: &str, cents: u64| Write::Submit { package: pkg(id, cents), origin: "me".into() };
    let debit = |id: &str, cents: u64| {
        let p = signed(&s, "me", &pkg(id, cents));
        let legs = p.legs_by_bank().remove("me").unwrap();
        Write::Prepare(auth(), vec![("me".to_string(), p, legs)])
    };
    s.submit(&pkg("old", 5), "me").unwrap();
    let answers = s
        .write_group(vec![
            sub("a", 70),
            sub("old", 6),
            (debit("a", 70)),
            sub("a", 70),
            Write::Decide(vec![("a".into(), Outcome::Commit, vec![OpResult { index: 0, ok: true, reason: None }], "me".into()), ("nobody".into(), Outcome::Abort, vec![], "me".into())]),
            Write::Finish(at_time(NOW_MS), vec![(key("me", "a"), Outcome::Commit, pkg("a", 70).digest("me")), (key("me", "never"), Outcome::Commit, pkg("never", 1).digest("me"))]),
            // After the finish in the same group: sees the balance the finish left.
            (debit("b", 40)),
            (debit("a", 71)),
        ])
        .unwrap();
    assert_eq!(answers.len(), 8);
    let Written::Submit(Ok((ra, true))) = &answers[0] else { panic!("{:?}", answers[0]) };
    let Written::Submit(Err(e)) = &answers[1] else { panic!("{:?}", answers[1]) };
    assert_eq!(e.code, "id_reused", "other content under a used id is refused, and the group goes on");
    let Written::Prepare(v) = &answers[2] else { panic!() };
    assert!(v[0].as_ref().unwrap()[0].ok);
    let Written::Submit(Ok((again, false))) = &answers[3] else { panic!("{:?}", answers[3]) };
    assert_eq!(again.seq, ra.seq, "the same id twice in one group is a retry of the first");
    let Written::Decide(d) = &answers[4] else { panic!() };
    assert_eq!(d[0].as_ref().unwrap().1, Decided::Now);
    assert_eq!(d[1].as_ref().unwrap_err().kind, crate::error::Kind::NotFound, "an unknown id is answered in its slot");
    let Written::Finish(f) = &answers[5] else { panic!() };
    assert_eq!(f[0], Ok(1));
    assert_eq!(f[1].as_ref().unwrap_err().code, "outcome_contradicts_legs", "refused in its slot; the group goes on");
    let Written::Prepare(v) = &answers[6] else { panic!() };
    assert!(!v[0].as_ref().unwrap()[0].ok, "30 left after the committed 70: a debit of 40 is refused");
    let Written::Prepare(v) = &answers[7] else { panic!() };
    assert_eq!(v[0].as_ref().unwrap_err().code, "package_mismatch");
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(30));
    let outbox: Vec<String> = s.outbox().unwrap().into_iter().map(|r| r.package.id).collect();
    assert_eq!(outbox, vec!["old"], "a was accepted once and decided");
    assert!(s.audit().unwrap().self_check().is_empty());
}

#[test]
fn a_database_of_the_layout_before_scoped_ids_is_refused_with_a_reason() {
    let disk = SimDisk::new(3);
    {
        let db = redb::Database::builder().create_with_backend(disk.backend()).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<&str, &[u8]>::new("legs")).unwrap();
        tx.commit().unwrap();
    }
    let e = Store::open_backend(disk.backend()).err().expect("refused");
    assert!(e.message.contains("older version"), "{e}");
}

/// The operator tools' storage (`store/admin.rs`).
mod admin;
/// Compaction of package history and the journal (`store/mod.rs`).
mod compaction;
