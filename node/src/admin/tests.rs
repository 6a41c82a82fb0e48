use super::*;
use crate::trust::keys::BankKey;
use crate::trust::manifest::{BankEntry, Manifest};

#[test]
fn fingerprints_name_the_manifest_every_bank_key_and_the_tellers() {
    let (a, b) = (BankKey::from_seed([1; 32]), BankKey::from_seed([2; 32]));
    let entry = |addr: &str, k: &BankKey| BankEntry { address: addr.into(), public_key: k.public().to_hex() };
    let m = Manifest::new(vec![entry("a:1", &a), entry("b:1", &b)], Default::default()).unwrap();
    let teller = crate::trust::keys::KeyPair::from_seed([3; 32]).public();
    let f = fingerprints("a:1", &m, &[teller]);
    assert_eq!(f.bank, "a:1");
    assert_eq!(f.manifest_hash, m.hash_hex());
    assert_eq!(f.manifest, fingerprint(&m.hash()));
    assert_eq!(f.banks.iter().map(|k| k.bank.as_str()).collect::<Vec<_>>(), ["a:1", "b:1"]);
    assert_eq!(f.banks[1].fingerprint, fingerprint(b.public().to_hex().as_bytes()));
    assert_ne!(f.banks[0].fingerprint, f.banks[1].fingerprint);
    assert_eq!(f.tellers, vec![fingerprint(teller.to_hex().as_bytes())]);
    // Another manifest (one key changed) has another fingerprint.
    let other = Manifest::new(vec![entry("a:1", &a), entry("b:1", &BankKey::from_seed([4; 32]))], Default::default()).unwrap();
    assert_ne!(fingerprints("a:1", &other, &[]).manifest, f.manifest);
}

#[test]
fn a_restore_puts_the_backup_in_place_reconciling_and_keeps_what_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bank");
    let s = Store::open_dir(&data).unwrap();
    let mut u = crate::domain::User::new(crate::domain::Cpf::from_base(1), "One").unwrap();
    s.register_user(&u).unwrap();
    let backup = dir.path().join("b.redb");
    s.backup_to(&backup).unwrap();
    u.cpf = crate::domain::Cpf::from_base(2);
    s.register_user(&u).unwrap(); // after the backup
    // Not while the bank holds its database.
    assert_eq!(restore(&backup, &data).unwrap_err().code, "bank_running");
    drop(s);
    // Not from a file that is no bank's database.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not redb").unwrap();
    assert_eq!(restore(&junk, &data).unwrap_err().code, "bad_backup");
    restore(&backup, &data).unwrap();
    assert!(data.join("bank.redb.before-restore-1").exists(), "the replaced database is kept");
    let s = Store::open_dir(&data).unwrap();
    assert!(s.reconciling().unwrap());
    assert!(s.user(&crate::domain::Cpf::from_base(1)).unwrap().is_some());
    assert!(s.user(&crate::domain::Cpf::from_base(2)).unwrap().is_none(), "what came after the backup is gone until re-learned");
    let v = reconcile_view(&s).unwrap();
    assert!(v.reconciling && v.answered.is_empty() && v.lost.is_empty());
    drop(s);
    // Restoring again keeps both earlier databases.
    restore(&backup, &data).unwrap();
    assert!(data.join("bank.redb.before-restore-2").exists());
}
