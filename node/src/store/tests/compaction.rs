//! The journal (statements) and compaction of package history, against the store.

use super::*;
use consortium_core::domain::journal::check_journal;
use consortium_core::package::compact::{participant_keep_until, origin_ripe_at, Unknown};

fn journal(s: &Store, account: &str) -> Vec<JournalEntry> {
    s.statement(account, 1, journal::MAX_STATEMENT_PAGE).unwrap().entries
}

#[test]
fn the_journal_is_the_statement_and_sums_to_the_money() {
    let s = store();
    let a = funded(&s, 1, 100);
    let out = withdraw("w1", &a.key, 30);
    prep(&s, "o", &out).unwrap();
    fin(&s, "o", &out, Outcome::Commit).unwrap();
    let aborted = withdraw("w2", &a.key, 20);
    prep(&s, "o", &aborted).unwrap();
    fin(&s, "o", &aborted, Outcome::Abort).unwrap();
    // Still held: money of the account, not yet an entry.
    prep(&s, "o", &withdraw("w3", &a.key, 10)).unwrap();
    let acc = s.account(&a.key).unwrap().unwrap();
    assert_eq!((acc.balance, acc.held), (Cents(60), Cents(10)));
    let j = journal(&s, &a.key);
    assert_eq!(j.iter().map(|e| (e.n, e.delta(), e.package.as_str())).collect::<Vec<_>>(), vec![(1, 100, "fund1"), (2, -30, "w1")]);
    assert_eq!(j[1].time_ms, NOW_MS);
    assert_eq!(check_journal(&acc, &j), Ok(()));
    // Paging, bounded.
    let first = s.statement(&a.key, 1, 1).unwrap();
    assert_eq!((first.entries.len(), first.next), (1, Some(2)));
    let rest = s.statement(&a.key, 2, 10).unwrap();
    assert_eq!((rest.entries.len(), rest.next), (1, None));
    assert!(s.statement(&a.key, 3, 10).unwrap().entries.is_empty());
    assert_eq!(s.statement(&a.key, 0, 10).unwrap_err().code, "bad_page");
    assert_eq!(s.statement(&a.key, 1, journal::MAX_STATEMENT_PAGE + 1).unwrap_err().code, "bad_page");
    assert_eq!(s.statement("999999", 1, 10).unwrap_err().code, "account_not_found");
    let audit = s.audit().unwrap();
    assert_eq!(audit.last_entries.iter().find(|(k, _)| *k == a.key).unwrap().1.as_ref().unwrap().total_after, Cents(70));
}

#[test]
fn a_participant_drops_finished_rows_only_once_it_can_no_longer_prepare_them() {
    let s = store();
    let a = funded(&s, 1, 100);
    let done = withdraw("done", &a.key, 30);
    prep(&s, "o", &done).unwrap();
    fin(&s, "o", &done, Outcome::Commit).unwrap();
    let open = withdraw("open", &a.key, 5);
    prep(&s, "o", &open).unwrap();
    // An abort learned before any prepare: a tombstone, without the package's expiry.
    fin(&s, "o", &withdraw("tomb", &a.key, 1), Outcome::Abort).unwrap();
    let before = s.sizes().unwrap();
    let until = participant_keep_until(done.expires_ms, SKEW_MS);
    assert_eq!(s.compact_participant(until, 100).unwrap(), 0, "not before expiry + skew");
    // One at a time: the bound on work per step.
    assert_eq!(s.compact_participant(until + 1, 1).unwrap(), 1);
    assert_eq!(s.compact_participant(until + 1, 1).unwrap(), 1, "fund1, the deposit, expires with it");
    assert_eq!(s.compact_participant(until + 1, 100).unwrap(), 0, "the in-doubt leg and the tombstone stay");
    assert_eq!(s.participation(&done.key("o")).unwrap(), None);
    assert!(s.participation(&open.key("o")).unwrap().is_some(), "an in-doubt leg is never dropped");
    assert_eq!(s.in_doubt().unwrap(), vec![open.key("o")]);
    let after = s.sizes().unwrap();
    assert_eq!((after.participations, after.legs), (before.participations - 2, before.legs - 2));
    // A prepare that arrives now (late, or replayed) is refused and leaves nothing.
    let late = Authority { now_ms: until + 1, ..auth() };
    let legs = done.legs_by_bank().remove("me").unwrap();
    let v = s.prepare(&late, "o", &signed(&s, "o", &done), &legs).unwrap();
    assert!(!v[0].ok && v[0].reason.as_deref().unwrap().contains("expired"), "{v:?}");
    assert_eq!(s.participation(&done.key("o")).unwrap(), None);
    assert_eq!(s.sizes().unwrap(), after);
    // The statement survives compaction.
    let acc = s.account(&a.key).unwrap().unwrap();
    assert_eq!(check_journal(&acc, &journal(&s, &a.key)), Ok(()));
    assert_eq!(journal(&s, &a.key).len(), 2);
    // The tombstone outlives any package accepted before it was learned.
    let t = consortium_core::package::compact::tombstone_keep_until(NOW_MS, SKEW_MS);
    assert_eq!(s.compact_participant(t, 100).unwrap(), 0);
    assert_eq!(s.compact_participant(t + 1, 100).unwrap(), 1);
    assert!(s.audit().unwrap().self_check().is_empty());
}

/// A transfer from this bank ("me", the origin) to an account at bank "b".
fn transfer(s: &Store, id: &str, from: &str) -> Package {
    let p = Package {
        id: id.into(),
        operations: vec![Operation { kind: OpKind::Transfer, from: at(from), to: Some(AccountRef { bank: "b".into(), account: "1".into() }), amount: Cents(1) }],
        expires_ms: NOW_MS + 60_000,
        ..Default::default()
    };
    signed(s, "me", &p)
}

#[test]
fn the_origin_drops_a_record_only_once_acknowledged_and_then_never_answers_never_recorded() {
    let s = store();
    let a = funded(&s, 1, 100);
    let p = transfer(&s, "t", &a.key);
    let pending = transfer(&s, "pending", &a.key);
    s.submit(&p, "me").unwrap();
    s.submit(&pending, "me").unwrap();
    let e = p.expires_ms;
    assert!(matches!(s.lookup("t", Some(e)).unwrap(), Lookup::Found(_)));
    assert!(matches!(s.lookup("x", None).unwrap(), Lookup::Unknown(Unknown::NeverRecorded)), "nothing compacted yet");
    s.decide("t", Outcome::Abort, vec![], "me").unwrap();
    let ripe = origin_ripe_at(e, SKEW_MS);
    assert!(s.settling(None, e - 1, 10).unwrap().is_empty(), "not ripe");
    let list = s.settling(None, e, 10).unwrap();
    assert_eq!(list.len(), 1, "only decided records: {list:?}");
    assert!(list[0].1.is_empty());
    // Acks from banks that hold no leg, or for a pending record, do not count.
    assert_eq!(s.record_acks(&[("t".into(), "zz".into()), ("pending".into(), "me".into()), ("nope".into(), "me".into())]).unwrap(), 0);
    assert_eq!(s.record_acks(&[("t".into(), "me".into()), ("t".into(), "me".into())]).unwrap(), 2, "a duplicate is harmless");
    assert_eq!(s.drop_records(&["t".into(), "pending".into()], at_time(ripe)).unwrap(), 0, "b has not acknowledged");
    assert_eq!(s.record_acks(&[("t".into(), "b".into())]).unwrap(), 1);
    assert_eq!(s.settling(None, e, 10).unwrap()[0].1.len(), 2);
    assert_eq!(s.drop_records(&["t".into()], at_time(ripe - 1)).unwrap(), 0, "a retry could still be accepted before this");
    assert_eq!(s.drop_records(&["t".into(), "pending".into()], at_time(ripe)).unwrap(), 1);
    assert_eq!(s.record("t").unwrap(), None);
    assert!(s.record("pending").unwrap().is_some(), "a pending record is never dropped");
    assert_eq!(s.compacted_expiry().unwrap(), e);
    // The package's own participants name its expiry: never the 404 that aborts legs.
    assert!(matches!(s.lookup("t", Some(e)).unwrap(), Lookup::Unknown(Unknown::MaybeCompacted)));
    assert!(matches!(s.lookup("t", None).unwrap(), Lookup::Unknown(Unknown::MaybeCompacted)));
    assert!(matches!(s.lookup("other", Some(e + 1)).unwrap(), Lookup::Unknown(Unknown::NeverRecorded)));
    assert!(s.settling(None, u64::MAX, 10).unwrap().is_empty());
    assert_eq!(s.sizes().unwrap().records, 1, "only the pending record is left");
}

#[test]
fn a_participant_answers_acks_from_its_rows() {
    let s = store();
    let a = funded(&s, 1, 100);
    let p = withdraw("p", &a.key, 10);
    prep(&s, "o", &p).unwrap();
    let k = p.key("o");
    let ask = |o| s.acks(&[(k.clone(), o), (key("o", "never"), Outcome::Commit)]).unwrap();
    assert_eq!(ask(Outcome::Commit), vec![Ack::NotYet, Ack::Unknown]);
    fin(&s, "o", &p, Outcome::Commit).unwrap();
    assert_eq!(ask(Outcome::Commit), vec![Ack::Applied, Ack::Unknown]);
    assert_eq!(ask(Outcome::Abort), vec![Ack::NotYet, Ack::Unknown], "the other outcome is no ack");
}
