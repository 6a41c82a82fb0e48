//! The operator tools' storage: in-doubt ages, the backup, a restore's reconciliation.

use super::*;
use crate::admin::reconcile::Step;

fn transfer(id: &str, from: &str, to: &str, cents: u64) -> Package {
    Package { id: id.into(), operations: vec![Operation { kind: OpKind::Transfer, from: at(from), to: at(to), amount: Cents(cents) }], expires_ms: NOW_MS + 60_000, ..Default::default() }
}

/// What a bank's books sum to that no transfer between its accounts changes.
fn total(a: &Audit) -> u64 {
    a.accounts.iter().map(|x| x.balance.0 + x.held.0).sum()
}

#[test]
fn an_in_doubt_package_shows_when_it_was_prepared_and_its_legs_until_it_finishes() {
    let s = store();
    let a = funded(&s, 1, 100);
    let p = withdraw("w1", &a.key, 30);
    assert!(prep(&s, "o:1", &p).unwrap()[0].ok);
    let d = s.in_doubt_report().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].key.clone(), d[0].prepared_ms), (key("o:1", "w1"), Some(NOW_MS)));
    assert_eq!(d[0].legs.len(), 1);
    assert_eq!(d[0].legs[0].amount, Cents(30));
    let listed = crate::admin::in_doubt(&s, "me", NOW_MS + 5_000).unwrap();
    assert_eq!(listed.in_doubt[0].age_ms, Some(5_000));
    assert_eq!(listed.in_doubt[0].origin, "o:1");
    fin(&s, "o:1", &p, Outcome::Commit).unwrap();
    assert!(s.in_doubt_report().unwrap().is_empty());
    assert!(crate::admin::in_doubt(&s, "me", NOW_MS).unwrap().in_doubt.is_empty());
}

#[test]
fn a_participant_keeps_the_package_and_the_signed_decision_that_finished_it() {
    let s = store();
    let a = funded(&s, 1, 100);
    let p = withdraw("w2", &a.key, 30);
    prep(&s, "o:1", &p).unwrap();
    let origin = consortium_core::trust::keys::BankKey::from_seed([9; 32]);
    let d = consortium_core::trust::decision::Decision::sign(&origin, &p.key("o:1"), p.digest("o:1"), Outcome::Commit);
    let w = s.write_group(vec![Write::FinishSigned(crate::store::When { now_ms: 1, skew_ms: 1_000 }, vec![(p.key("o:1"), d.clone())])]).unwrap();
    assert!(matches!(&w[0], Written::Finish(r) if r[0] == Ok(1)), "{w:?}");
    let seen = s.participated_of("o:1").unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].outcome, Some(Outcome::Commit));
    let kept = seen[0].kept.clone().expect("kept");
    assert_eq!(kept.package.digest("o:1"), p.digest("o:1"));
    assert_eq!(kept.decision, Some(d));
    assert!(s.participated_of("other:1").unwrap().is_empty(), "only the asking origin's packages");
}

#[test]
fn a_backup_under_moving_packages_is_one_consistent_snapshot_of_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_dir(dir.path()).unwrap();
    let a = funded(&s, 1, 1_000);
    let b = funded(&s, 2, 1_000);
    let before = total(&s.audit().unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (s, stop, a, b) = (s.clone(), stop.clone(), a.key.clone(), b.key.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = if n % 2 == 0 { transfer(&format!("t{n}"), &a, &b, 7) } else { transfer(&format!("t{n}"), &b, &a, 5) };
                prep(&s, "me", &p).unwrap();
                // Every third one stays in doubt a while: the copy must hold it as prepared.
                if n % 3 != 0 {
                    fin(&s, "me", &p, Outcome::Commit).unwrap();
                }
                n += 1;
            }
            n
        })
    };
    let mut copies = Vec::new();
    for i in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let to = dir.path().join(format!("copy{i}.redb"));
        assert!(s.backup_to(&to).unwrap() > 0);
        copies.push(to);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let moved = mover.join().unwrap();
    assert!(moved > 5, "packages kept moving during the backups ({moved})");
    assert_eq!(s.backup_to(&copies[0]).unwrap_err().code, "backup_exists", "never over an existing file");
    for c in &copies {
        let copy = Store::open_file(c).unwrap();
        let audit = copy.audit().unwrap();
        assert_eq!(total(&audit), before, "{}: money neither made nor lost", c.display());
        assert!(audit.self_check().is_empty(), "{}: {:?}", c.display(), audit.self_check());
        // The in-doubt set, its ages and the kept packages agree with the legs.
        let prepared: std::collections::BTreeSet<PackageKey> = audit.legs.iter().filter(|l| l.state == LegState::Prepared).map(|l| l.key()).collect();
        let in_doubt: std::collections::BTreeSet<PackageKey> = audit.in_doubt.iter().cloned().collect();
        assert_eq!(prepared, in_doubt);
        assert!(copy.in_doubt_report().unwrap().iter().all(|d| d.prepared_ms == Some(NOW_MS)));
    }
    // The last copy, reopened, is a working bank: it takes a new account after the old ones.
    let last = Store::open_file(copies.last().unwrap()).unwrap();
    last.register_user(&User { key: None, ..User::new(cpf(3), "New").unwrap() }).unwrap();
    assert_eq!(last.open_account("me", AccountKind::Business, &[cpf(3)]).unwrap().key, "000003");
}

#[test]
fn every_table_is_in_the_backup_s_list_and_a_stray_one_stops_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_dir(dir.path()).unwrap();
    let names = super::super::admin::all_table_names();
    let tx = s.db.begin_read().unwrap();
    for t in tx.list_tables().unwrap() {
        assert!(names.iter().any(|n| n == t.name()), "table {} is missing from the backup's list", t.name());
    }
    drop(tx);
    let stray: TableDefinition<&str, u64> = TableDefinition::new("stray");
    let w = s.db.begin_write().unwrap();
    w.open_table(stray).unwrap().insert("x", 1).unwrap();
    w.commit().unwrap();
    let e = s.backup_to(&dir.path().join("copy.redb")).unwrap_err();
    assert!(e.message.contains("stray"), "{e:?}");
    assert!(!dir.path().join("copy.redb").exists());
}

#[test]
fn the_tools_refuse_the_database_of_a_running_bank_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let running = Store::open_dir(dir.path()).unwrap();
    let e = Store::open_existing(dir.path()).err().expect("locked");
    assert_eq!(e.code, "bank_running", "{e:?}");
    drop(running);
    Store::open_existing(dir.path()).unwrap();
    let e = Store::open_existing(&dir.path().join("nothing")).err().expect("no database");
    assert_eq!(e.code, "no_database");
}

#[test]
fn reconciliation_adopts_records_reapplies_legs_marks_lost_ids_and_clears_only_when_all_answered() {
    let s = store();
    let a = funded(&s, 1, 100);
    s.begin_reconciliation().unwrap();
    assert!(s.reconciling().unwrap());
    // Its own package, decided after the backup (a commit another bank holds signed).
    let mine = transfer("p-mine", &a.key, &a.key, 1);
    let mut mine = mine;
    mine.operations[0].to = Some(AccountRef { bank: "b:1".into(), account: "000001".into() });
    mine.operations[0].amount = Cents(40);
    // Another bank's package crediting an account here, committed after the backup.
    let theirs = Package { id: "q".into(), operations: vec![Operation { kind: OpKind::Deposit, from: None, to: at(&a.key), amount: Cents(5) }], ..Default::default() };
    // One that would debit more than the restored balance: refused, a problem note.
    let too_much = Package { id: "r".into(), operations: vec![Operation { kind: OpKind::Withdraw, from: at(&a.key), to: None, amount: Cents(1_000) }], ..Default::default() };
    let steps = vec![
        Step::AdoptRecord { package: mine.clone(), outcome: Outcome::Commit },
        Step::ApplyLegs { key: mine.key("me"), package: mine.clone(), outcome: Outcome::Commit },
        Step::ApplyLegs { key: theirs.key("b:1"), package: theirs.clone(), outcome: Outcome::Commit },
        Step::ApplyLegs { key: too_much.key("b:1"), package: too_much.clone(), outcome: Outcome::Commit },
        Step::Lost { id: "gone".into(), why: "b:1 in doubt".into() },
        Step::RaiseAccountSeq(9),
    ];
    let all = vec!["b:1".to_string(), "c:1".to_string()];
    assert!(!s.reconcile_apply("me", crate::store::When { now_ms: 1, skew_ms: 1_000 }, &all[..1], &steps, &all).unwrap(), "c has not answered");
    assert!(s.reconciling().unwrap());
    assert_eq!(s.record("p-mine").unwrap().unwrap().status, consortium_core::package::Status::Committed);
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(100 - 40 + 5), "each committed leg moved once");
    // Applying the same steps again (a restart mid-way) moves nothing twice.
    assert!(s.reconcile_apply("me", crate::store::When { now_ms: 1, skew_ms: 1_000 }, &all[1..], &steps, &all).unwrap(), "everyone has answered");
    assert!(!s.reconciling().unwrap());
    assert_eq!(s.account(&a.key).unwrap().unwrap().balance, Cents(65));
    let state = s.reconcile_state().unwrap();
    assert_eq!(state.answered, all);
    assert_eq!(state.lost, vec![("gone".to_string(), "b:1 in doubt".to_string())]);
    assert_eq!(state.problems.len(), 1, "{:?}", state.problems);
    assert!(state.problems[0].contains("exceeds its restored balance"));
    // A lost id stays taken; the next account number is past the highest one seen.
    assert_eq!(s.submit(&deposit("gone", &a.key, 1), "me").unwrap_err().code, "id_reused");
    user(&s, 2);
    assert_eq!(s.open_account("me", AccountKind::Business, &[cpf(2)]).unwrap().key, "000010");
    assert!(s.audit().unwrap().self_check().is_empty());
}
