//! The operator's tools, shared by `node admin ...` (a stopped bank: the database opened
//! directly) and the `/admin/...` routes (a running one, which holds redb's lock): what is in
//! doubt, a consistent backup, a restore into reconciliation, and the fingerprints operators
//! compare across banks, and any account's statement, exported from its journal.
//!
//! Each operation has one name, shared by the route (`/admin/{name}`), the teller's signed
//! statement's scope (`admin/{name}`), `node admin {name}` and `bank admin {name}`:
//! `in-doubt`, `backup`, `fingerprints`, `reconcile`, `statement` (route and scope name the
//! account: `/admin/statement/{key}`, `admin/statement/{key}`), and `restore` (stopped bank
//! only).
//!
//! - `cli`: `node admin`;
//! - `reconcile`: the rules of a restored bank's reconciliation (plain code);
//! - `run`: the task that asks the other banks and applies those rules.

pub mod cli;
pub mod reconcile;
pub mod run;

use crate::error::Error;
use crate::store::Store;
use crate::wire::{Fingerprints, InDoubtList, InDoubtView, KeyFingerprint, ReconcileView};
use consortium_core::domain::journal::{Export, Statement};
use consortium_core::trust::fingerprint;
use consortium_core::trust::keys::PublicKey;
use consortium_core::trust::manifest::Manifest;
use std::path::Path;

/// An account's statement from entry `from`: `limit` entries, or with `None` every one to the
/// end (an export), read a page at a time so no read transaction holds more than a page.
pub fn statement(store: &Store, account: &str, from: u64, limit: Option<u64>) -> Result<Statement, Error> {
    let mut export = Export::new(account, from, limit);
    while let Some((at, n)) = export.next() {
        export.add(store.statement(account, at, n)?);
    }
    Ok(export.statement)
}

/// The in-doubt packages, oldest first, with their age on this bank's clock `now_ms`.
pub fn in_doubt(store: &Store, me: &str, now_ms: u64) -> Result<InDoubtList, Error> {
    let mut in_doubt: Vec<InDoubtView> = store
        .in_doubt_report()?
        .into_iter()
        .map(|d| InDoubtView { origin: d.key.origin, id: d.key.id, prepared_ms: d.prepared_ms, age_ms: d.prepared_ms.map(|t| now_ms.saturating_sub(t)), legs: d.legs })
        .collect();
    in_doubt.sort_by_key(|d| (d.prepared_ms.is_some(), d.prepared_ms, d.origin.clone(), d.id.clone()));
    Ok(InDoubtList { bank: me.to_string(), now_ms, in_doubt, reconciling: store.reconciling()? })
}

/// The manifest's hash and every key's fingerprint (`trust::fingerprint` of its bytes).
pub fn fingerprints(me: &str, manifest: &Manifest, tellers: &[PublicKey]) -> Fingerprints {
    let banks = manifest
        .addresses()
        .into_iter()
        .map(|b| KeyFingerprint { fingerprint: manifest.key_of(&b).map(|k| fingerprint(k.to_hex().as_bytes())).unwrap_or_default(), bank: b })
        .collect();
    Fingerprints {
        bank: me.to_string(),
        manifest_hash: manifest.hash_hex(),
        manifest: fingerprint(&manifest.hash()),
        banks,
        tellers: tellers.iter().map(|k| fingerprint(k.to_hex().as_bytes())).collect(),
    }
}

pub fn reconcile_view(store: &Store) -> Result<ReconcileView, Error> {
    let s = store.reconcile_state()?;
    Ok(ReconcileView { reconciling: s.reconciling, answered: s.answered, lost: s.lost, problems: s.problems })
}

/// `node admin restore`: puts the backup `from` in place as `data/bank.redb`, marked
/// reconciling. The database it replaces is kept beside it (`bank.redb.before-restore-N`),
/// never deleted. Refuses while a bank runs on `data`, and a file that is not a bank's
/// database.
pub fn restore(from: &Path, data: &Path) -> Result<std::path::PathBuf, Error> {
    let target = data.join("bank.redb");
    if target.exists() {
        // Opening it checks that no bank holds it (redb's lock); closed again at once.
        drop(Store::open_existing(data)?);
    }
    std::fs::create_dir_all(data).map_err(|e| Error::internal(format!("cannot create {}: {e}", data.display())))?;
    let staging = data.join("bank.redb.restoring");
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(from, &staging).map_err(|e| Error::bad_request("bad_backup", format!("cannot copy {}: {e}", from.display())))?;
    {
        let s = Store::open_file(&staging).map_err(|e| Error::bad_request("bad_backup", format!("{} is not a bank's database: {}", from.display(), e.message)))?;
        s.begin_reconciliation()?;
    }
    std::fs::File::open(&staging).and_then(|f| f.sync_all()).map_err(|e| Error::internal(e.to_string()))?;
    if target.exists() {
        let mut n = 1;
        while data.join(format!("bank.redb.before-restore-{n}")).exists() {
            n += 1;
        }
        std::fs::rename(&target, data.join(format!("bank.redb.before-restore-{n}"))).map_err(|e| Error::internal(e.to_string()))?;
    }
    std::fs::rename(&staging, &target).map_err(|e| Error::internal(e.to_string()))?;
    std::fs::File::open(data).and_then(|d| d.sync_all()).map_err(|e| Error::internal(e.to_string()))?;
    Ok(target)
}

#[cfg(test)]
mod tests;
