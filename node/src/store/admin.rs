//! What the operator's tools (`crate::admin`) need of the store: when each in-doubt package
//! was prepared, the packages and decisions a participant keeps so a restored origin can
//! re-learn them, a consistent copy of the whole database while the bank runs, and the
//! durable state of a restore's reconciliation.

use super::*;
use consortium_core::trust::decision::Decision;

/// (origin, id) → this bank's clock when it prepared the package (ms): an in-doubt
/// package's age survives a restart.
pub(super) const IN_DOUBT_SINCE: TableDefinition<(&str, &str), u64> = TableDefinition::new("participant_in_doubt_since");
/// (origin, id) → `Kept`: the package as this bank prepared it, and its origin's signed
/// decision once it arrived. What a restored origin re-learns its own packages from.
pub(super) const KEPT: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("participant_kept");
/// A restore's reconciliation (`crate::admin::reconcile`): `answered/BANK` for each bank that
/// answered, `lost/ID` for this bank's packages it cannot know the outcome of, `problem/N`
/// for what it could not re-apply. Empty outside a restore.
pub(super) const RECONCILE: TableDefinition<&str, &[u8]> = TableDefinition::new("reconcile");
/// 1 while the bank is reconciling after a restore: it accepts no new package.
const META_RECONCILING: &str = "reconciling";
/// The restored backup's clock when it was made (ms): for the report.
const META_BACKUP_MS: &str = "backup_ms";

pub use crate::wire::{KeptPackage as Kept, Participated};

/// Every table of the database, with its types: the backup copies each of them, and refuses
/// a database that holds a table not listed here (a copy must never silently miss one).
/// A new table goes here too (`every_table_is_copied` checks it).
macro_rules! each_table {
    ($f:ident, $($arg:expr),*) => {{
        $f($($arg,)* USERS)?;
        $f($($arg,)* ACCOUNTS)?;
        $f($($arg,)* HOLDERS)?;
        $f($($arg,)* RECORDS)?;
        $f($($arg,)* OUTBOX)?;
        $f($($arg,)* LEGS)?;
        $f($($arg,)* PARTS)?;
        $f($($arg,)* IN_DOUBT)?;
        $f($($arg,)* META)?;
        $f($($arg,)* IN_DOUBT_SINCE)?;
        $f($($arg,)* KEPT)?;
        $f($($arg,)* RECONCILE)?;
        $f($($arg,)* JOURNAL)?;
        $f($($arg,)* PARTS_DONE)?;
        $f($($arg,)* DECIDED)?;
        $f($($arg,)* ACKS)?;
    }};
}

fn table_names() -> Vec<String> {
    let mut names = Vec::new();
    fn name<K: redb::Key + 'static, V: redb::Value + 'static>(names: &mut Vec<String>, t: TableDefinition<K, V>) -> Result<(), Error> {
        names.push(t.name().to_string());
        Ok(())
    }
    let r: Result<(), Error> = (|| {
        each_table!(name, &mut names);
        Ok(())
    })();
    r.expect("naming tables cannot fail");
    names
}

/// Copies one table of the snapshot `from` into `to`; a table the snapshot lacks is created
/// empty. Returns nothing: the rows are counted by the caller's check.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(from: &redb::ReadTransaction, to: &redb::WriteTransaction, t: TableDefinition<K, V>) -> Result<(), Error> {
    let mut dst = to.open_table(t).map_err(internal)?;
    let src = match from.open_table(t) {
        Ok(src) => src,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(internal(e)),
    };
    for row in src.iter().map_err(internal)? {
        let (k, v) = row.map_err(internal)?;
        dst.insert(k.value(), v.value()).map_err(internal)?;
    }
    Ok(())
}

/// A package's row in `IN_DOUBT_SINCE` (called where the package enters the in-doubt set).
pub(super) fn mark_in_doubt_since(tx: &redb::WriteTransaction, key: &PackageKey, now_ms: u64) -> Result<(), Error> {
    let mut t = tx.open_table(IN_DOUBT_SINCE).map_err(internal)?;
    if t.get((key.origin.as_str(), key.id.as_str())).map_err(internal)?.is_none() {
        t.insert((key.origin.as_str(), key.id.as_str()), now_ms).map_err(internal)?;
    }
    Ok(())
}

/// The package leaves the in-doubt set (its outcome applied).
pub(super) fn clear_in_doubt_since(tx: &redb::WriteTransaction, key: &PackageKey) -> Result<(), Error> {
    tx.open_table(IN_DOUBT_SINCE).map_err(internal)?.remove((key.origin.as_str(), key.id.as_str())).map_err(internal)?;
    Ok(())
}

/// Keeps the package this bank prepared (the first prepare's: same key, same digest after).
pub(super) fn keep_package(tx: &redb::WriteTransaction, key: &PackageKey, package: &Package) -> Result<(), Error> {
    let mut t = tx.open_table(KEPT).map_err(internal)?;
    if t.get((key.origin.as_str(), key.id.as_str())).map_err(internal)?.is_none() {
        let k = Kept { package: package.clone(), decision: None };
        t.insert((key.origin.as_str(), key.id.as_str()), enc(&k).as_slice()).map_err(internal)?;
    }
    Ok(())
}

/// Keeps the origin's signed decision (already verified) beside the package it decides, if
/// this bank kept that package.
pub(super) fn keep_decision(tx: &redb::WriteTransaction, key: &PackageKey, decision: &Decision) -> Result<(), Error> {
    let mut t = tx.open_table(KEPT).map_err(internal)?;
    let kept: Option<Kept> = t.get((key.origin.as_str(), key.id.as_str())).map_err(internal)?.map(|v| dec(v.value())).transpose()?;
    if let Some(mut k) = kept {
        if k.decision.is_none() && k.package.digest(&key.origin) == decision.digest {
            k.decision = Some(decision.clone());
            t.insert((key.origin.as_str(), key.id.as_str()), enc(&k).as_slice()).map_err(internal)?;
        }
    }
    Ok(())
}

/// Forgets the package kept here and its decision: compaction drops them with the leg's row
/// (a restored origin cannot re-learn a package every bank settled and compacted).
pub(super) fn forget_kept(tx: &redb::WriteTransaction, key: &PackageKey) -> Result<(), Error> {
    tx.open_table(KEPT).map_err(internal)?.remove((key.origin.as_str(), key.id.as_str())).map_err(internal)?;
    Ok(())
}

/// One in-doubt package as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InDoubt {
    pub key: PackageKey,
    pub prepared_ms: Option<u64>,
    pub legs: Vec<Leg>,
}

/// A durable note of a reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileState {
    pub reconciling: bool,
    pub backup_ms: Option<u64>,
    pub answered: Vec<String>,
    /// This bank's packages whose outcome it cannot know (id, why).
    pub lost: Vec<(String, String)>,
    /// What it could not re-apply.
    pub problems: Vec<String>,
}

impl Store {
    /// Opens the database file `bank.redb` in `dir` for the operator's tools, on a stopped
    /// bank: never creates one, and says so plainly when a running bank holds it.
    pub fn open_existing(dir: &Path) -> Result<Store, Error> {
        let path = dir.join("bank.redb");
        if !path.exists() {
            return Err(Error::not_found("no_database", format!("no database at {} (is --data the bank's data folder?)", path.display())));
        }
        Store::open_file(&path)
    }

    /// Opens an existing database file (a bank's, or a backup), never creating one.
    pub fn open_file(path: &Path) -> Result<Store, Error> {
        match Database::open(path) {
            Ok(db) => Store::init(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(Error::conflict(
                "bank_running",
                format!("{} is open by a running bank (redb locks its file): stop the bank, or use the operator's routes (`bank admin ... --as-teller`)", path.display()),
            )),
            Err(e) => Err(internal(format!("cannot open {}: {e}", path.display()))),
        }
    }

    /// The in-doubt packages with when each was prepared and this bank's prepared legs.
    pub fn in_doubt_report(&self) -> Result<Vec<InDoubt>, Error> {
        self.read(|tx| {
            let since = tx.open_table(IN_DOUBT_SINCE).map_err(internal)?;
            let legs_t = tx.open_table(LEGS).map_err(internal)?;
            let mut out = Vec::new();
            for row in tx.open_table(IN_DOUBT).map_err(internal)?.iter().map_err(internal)? {
                let (k, _) = row.map_err(internal)?;
                let (origin, id) = k.value();
                let key = PackageKey::new(origin, id);
                let prepared_ms = since.get((origin, id)).map_err(internal)?.map(|v| v.value());
                let legs = legs_of(&legs_t, &key)?.into_iter().filter(|l| l.state == LegState::Prepared).map(|l| l.leg).collect();
                out.push(InDoubt { key, prepared_ms, legs });
            }
            Ok(out)
        })
    }

    /// Writes a consistent copy of the whole database to a new file `to` (which must not
    /// exist): every table read in one read transaction (one snapshot: redb's MVCC lets
    /// writes go on meanwhile), written into a fresh database, synced, then renamed into place.
    /// Returns the copy's size in bytes.
    pub fn backup_to(&self, to: &Path) -> Result<u64, Error> {
        if to.exists() {
            return Err(Error::conflict("backup_exists", format!("{} exists already; the backup writes a new file", to.display())));
        }
        let tmp = to.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let known = table_names();
        let snapshot = self.db.begin_read().map_err(internal)?;
        for t in snapshot.list_tables().map_err(internal)? {
            if !known.iter().any(|k| k == t.name()) {
                return Err(internal(format!("table {:?} is not in the backup's list (store/admin.rs): a copy would miss it", t.name())));
            }
        }
        {
            let copy = Database::create(&tmp).map_err(|e| internal(format!("cannot create {}: {e}", tmp.display())))?;
            let w = copy.begin_write().map_err(internal)?;
            each_table!(copy_table, &snapshot, &w);
            {
                // The copy remembers when it was made (the backup's clock), for a restore's report.
                let mut meta = w.open_table(META).map_err(internal)?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                meta.insert(META_BACKUP_MS, now).map_err(internal)?;
            }
            w.commit().map_err(internal)?;
        }
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(internal)?;
        std::fs::rename(&tmp, to).map_err(internal)?;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        std::fs::metadata(to).map(|m| m.len()).map_err(internal)
    }

    /// Marks this database as restored from a backup: reconciling, with no bank answered yet.
    pub fn begin_reconciliation(&self) -> Result<(), Error> {
        self.write(|tx| {
            tx.open_table(META).map_err(internal)?.insert(META_RECONCILING, 1).map_err(internal)?;
            let mut r = tx.open_table(RECONCILE).map_err(internal)?;
            let old: Vec<String> = r.iter().map_err(internal)?.filter_map(|row| row.ok().map(|(k, _)| k.value().to_string())).collect();
            // A backup of a bank that was itself reconciling starts over: its notes were of another restore.
            for k in old.iter().filter(|k| k.starts_with("answered/")) {
                r.remove(k.as_str()).map_err(internal)?;
            }
            Ok(())
        })
    }

    pub fn reconciling(&self) -> Result<bool, Error> {
        self.read(|tx| Ok(tx.open_table(META).map_err(internal)?.get(META_RECONCILING).map_err(internal)?.is_some_and(|v| v.value() == 1)))
    }

    pub fn reconcile_state(&self) -> Result<ReconcileState, Error> {
        self.read(|tx| {
            let meta = tx.open_table(META).map_err(internal)?;
            let mut s = ReconcileState {
                reconciling: meta.get(META_RECONCILING).map_err(internal)?.is_some_and(|v| v.value() == 1),
                backup_ms: meta.get(META_BACKUP_MS).map_err(internal)?.map(|v| v.value()),
                ..Default::default()
            };
            for row in tx.open_table(RECONCILE).map_err(internal)?.iter().map_err(internal)? {
                let (k, v) = row.map_err(internal)?;
                let text = String::from_utf8_lossy(v.value()).into_owned();
                match k.value().split_once('/') {
                    Some(("answered", b)) => s.answered.push(b.to_string()),
                    Some(("lost", id)) => s.lost.push((id.to_string(), text)),
                    Some(("problem", _)) => s.problems.push(text),
                    _ => {}
                }
            }
            Ok(s)
        })
    }

    /// Whether `id` is one of this bank's packages a restore could not re-learn: its id stays
    /// taken, and nobody may decide it here.
    pub fn lost_package(&self, id: &str) -> Result<Option<String>, Error> {
        self.read(|tx| Ok(tx.open_table(RECONCILE).map_err(internal)?.get(format!("lost/{id}").as_str()).map_err(internal)?.map(|v| String::from_utf8_lossy(v.value()).into_owned())))
    }

    /// What this bank knows of the packages of `origin` it took part in (reconciliation).
    pub fn participated_of(&self, origin: &str) -> Result<Vec<Participated>, Error> {
        self.read(|tx| {
            let kept = tx.open_table(KEPT).map_err(internal)?;
            let legs_t = tx.open_table(LEGS).map_err(internal)?;
            let mut out = Vec::new();
            let (lo, hi) = ((origin, ""), (origin, "\u{10ffff}"));
            for row in tx.open_table(PARTS).map_err(internal)?.range(lo..=hi).map_err(internal)? {
                let (k, v) = row.map_err(internal)?;
                let (o, id) = k.value();
                if o != origin {
                    continue;
                }
                let p: Participation = dec(v.value())?;
                let kept: Option<Kept> = kept.get((o, id)).map_err(internal)?.map(|v| dec(v.value())).transpose()?;
                let refused = legs_of(&legs_t, &PackageKey::new(o, id))?.iter().any(|l| matches!(l.state, LegState::Refused(_)));
                out.push(Participated { id: id.to_string(), digest: p.digest, outcome: p.outcome, refused, kept });
            }
            Ok(out)
        })
    }

    /// This origin's records with an operation at `bank` (reconciliation of that bank).
    pub fn records_touching(&self, bank: &str) -> Result<Vec<Record>, Error> {
        self.read(|tx| {
            let mut out = Vec::new();
            for row in tx.open_table(RECORDS).map_err(internal)?.iter().map_err(internal)? {
                let r: Record = dec(row.map_err(internal)?.1.value())?;
                if r.package.operations.iter().flat_map(|op| [op.from.as_ref(), op.to.as_ref()]).flatten().any(|a| a.bank == bank) {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Applies the steps of a reconciliation (`crate::admin::reconcile` decides them), in one
    /// transaction: records re-learned, legs re-applied, ids marked lost, the account number
    /// raised, and the banks that answered noted. The flag clears (and this returns true) once
    /// every bank of `done_after` has answered.
    pub fn reconcile_apply(&self, me: &str, when: When, answered_now: &[String], steps: &[crate::admin::reconcile::Step], done_after: &[String]) -> Result<bool, Error> {
        use crate::admin::reconcile::Step;
        self.write(|tx| {
            for s in steps {
                match s {
                    Step::AdoptRecord { package, outcome } => {
                        // Refused before writing (a content conflict): a note, and the rest goes on.
                        let r = match submit_in(tx, package, me) {
                            Ok((r, _)) => r,
                            Err(e) if e.kind != crate::error::Kind::Internal => {
                                problem(tx, &format!("{}: its signed {outcome:?} could not be recorded here: {}", package.key(me), e.message))?;
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        if r.outcome().is_none() {
                            // A commit had every operation's votes; the per-operation reasons
                            // of an abort are not kept by the others, and not re-invented.
                            let results = match outcome {
                                Outcome::Commit => (0..package.operations.len() as u32).map(|index| OpResult { index, ok: true, reason: None }).collect(),
                                Outcome::Abort => vec![],
                            };
                            decide_in(tx, &package.id, *outcome, results, me, false)?;
                        }
                    }
                    Step::ApplyLegs { key, package, outcome } => {
                        reapply_in(tx, me, &when, key, package, *outcome, self.planted)?;
                    }
                    Step::Lost { id, why } => {
                        note(tx, &format!("lost/{id}"), why)?;
                        // A pending record of it leaves the outbox: nobody may decide it here now.
                        let seq = tx.open_table(RECORDS).map_err(internal)?.get(id.as_str()).map_err(internal)?.map(|v| dec::<Record>(v.value())).transpose()?.map(|r| r.seq);
                        if let Some(seq) = seq {
                            tx.open_table(OUTBOX).map_err(internal)?.remove(seq).map_err(internal)?;
                        }
                    }
                    Step::Problem(why) => problem(tx, why)?,
                    Step::RaiseAccountSeq(n) => {
                        let mut meta = tx.open_table(META).map_err(internal)?;
                        let cur = meta.get(META_ACCOUNT_SEQ).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
                        if *n > cur {
                            meta.insert(META_ACCOUNT_SEQ, *n).map_err(internal)?;
                        }
                    }
                }
            }
            for bank in answered_now {
                note(tx, &format!("answered/{bank}"), "")?;
            }
            let answered: Vec<String> = tx
                .open_table(RECONCILE)
                .map_err(internal)?
                .iter()
                .map_err(internal)?
                .filter_map(|r| r.ok().and_then(|(k, _)| k.value().strip_prefix("answered/").map(str::to_string)))
                .collect();
            let done = done_after.iter().all(|b| answered.contains(b));
            if done {
                tx.open_table(META).map_err(internal)?.remove(META_RECONCILING).map_err(internal)?;
            }
            Ok(done)
        })
    }

    /// The legs this bank holds of `key` and whether it knows the outcome (reconciliation).
    pub fn legs_of_package(&self, key: &PackageKey) -> Result<(Vec<LegRecord>, Option<Participation>), Error> {
        self.read(|tx| Ok((legs_of(&tx.open_table(LEGS).map_err(internal)?, key)?, part_of(&tx.open_table(PARTS).map_err(internal)?, key)?)))
    }
}

/// Why `id` is lost (see `lost_package`), in a write transaction.
pub(super) fn lost_in(tx: &redb::WriteTransaction, id: &str) -> Result<Option<String>, Error> {
    Ok(tx.open_table(RECONCILE).map_err(internal)?.get(format!("lost/{id}").as_str()).map_err(internal)?.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
}

fn note(tx: &redb::WriteTransaction, k: &str, text: &str) -> Result<(), Error> {
    tx.open_table(RECONCILE).map_err(internal)?.insert(k, text.as_bytes()).map_err(internal)?;
    Ok(())
}

/// Re-applies this bank's legs of a decided package that it has no leg record of (they were
/// prepared after the backup): a commit moves the money as the finish did, an abort leaves
/// a tombstone. Refuses (a problem note, nothing moved) a leg whose account is missing or
/// whose debit the balance cannot cover: the backup lacks what made it possible, and the
/// bank does not guess.
fn reapply_in(tx: &redb::WriteTransaction, me: &str, when: &When, key: &PackageKey, package: &Package, outcome: Outcome, planted: crate::planted::PlantedBug) -> Result<(), Error> {
    let digest = package.digest(&key.origin);
    let legs = package.legs_by_bank().remove(me).unwrap_or_default();
    if part_of(&tx.open_table(PARTS).map_err(internal)?, key)?.is_some_and(|p| p.outcome.is_some()) {
        return Ok(()); // applied here already (a contradiction was found by the rules)
    }
    if !legs_of(&tx.open_table(LEGS).map_err(internal)?, key)?.is_empty() {
        // Prepared before the backup: the ordinary finish, with its checks.
        return match finish_in(tx, when, key, outcome, digest, planted) {
            Err(e) if e.kind != crate::error::Kind::Internal => problem(tx, &format!("{key}: its {outcome:?} did not apply here: {}", e.message)),
            other => other.map(|_| ()),
        };
    }
    let mut legs_t = tx.open_table(LEGS).map_err(internal)?;
    let state = if outcome == Outcome::Commit { LegState::Committed } else { LegState::Aborted };
    if outcome == Outcome::Commit {
        let mut accounts = tx.open_table(ACCOUNTS).map_err(internal)?;
        let mut changed = Vec::new();
        // Each leg with its account right after it: the statement's entries, written only
        // once every leg is known to apply (a problem moves nothing).
        let mut entries = Vec::new();
        for l in &legs {
            let mut a: Account = match accounts.get(l.account.as_str()).map_err(internal)? {
                Some(v) => dec(v.value())?,
                None => return problem(tx, &format!("{key}: committed leg {} {:?} {} on account {} that this backup does not have (opened after it)", l.index, l.side, l.amount.0, l.account)),
            };
            if let Some(prior) = changed.iter().position(|x: &Account| x.key == a.key) {
                a = changed.remove(prior);
            }
            match l.side {
                Side::Debit if a.balance.0 < l.amount.0 => {
                    return problem(tx, &format!("{key}: committed debit of {} on account {} exceeds its restored balance {}", l.amount.0, l.account, a.balance.0));
                }
                Side::Debit => a.balance = Cents(a.balance.0 - l.amount.0),
                Side::Credit => a.balance = Cents(a.balance.0 + l.amount.0),
            }
            let rec = LegRecord { package: key.id.clone(), origin: key.origin.clone(), leg: l.clone(), state: state.clone() };
            entries.push((a.clone(), rec));
            changed.push(a);
        }
        for a in changed {
            accounts.insert(a.key.as_str(), enc(&a).as_slice()).map_err(internal)?;
        }
        for (a, rec) in &entries {
            append_entry(tx, when, a, rec)?;
        }
    }
    if outcome == Outcome::Commit {
        for l in &legs {
            let rec = LegRecord { package: key.id.clone(), origin: key.origin.clone(), leg: l.clone(), state: state.clone() };
            legs_t.insert(leg_key(key, l), enc(&rec).as_slice()).map_err(internal)?;
        }
    }
    put_part(tx, key, &Participation { digest: Some(digest), outcome: Some(outcome), expires_ms: package.expires_ms })?;
    schedule_drop(tx, compact::participant_keep_until(package.expires_ms, when.skew_ms), key)
}

fn problem(tx: &redb::WriteTransaction, why: &str) -> Result<(), Error> {
    // Keyed by its text: the same problem found again (a reconciliation restarted) is one note.
    note(tx, &format!("problem/{}", consortium_core::trust::fingerprint(why.as_bytes())), why)
}

#[cfg(test)]
pub(super) fn all_table_names() -> Vec<String> {
    table_names()
}
