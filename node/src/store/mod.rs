//! Durable state of one bank, in redb. Every method is one transaction: when it returns Ok
//! the change is on disk (default durability: fsync at commit), so an acknowledged write
//! survives kill -9. Synchronous on purpose: production calls it on a blocking thread, the
//! simulator inline (through `Storage`, the async handle in `storage.rs`); no transaction is
//! ever held across an `.await`.

pub mod simdisk;
mod storage;
pub use storage::Storage;
mod admin;
pub use admin::{InDoubt, Kept, Participated, ReconcileState};

use crate::domain::account::check_new_account;
use crate::domain::{Account, AccountKind, Cents, Cpf, User};
use crate::error::Error;
use consortium_core::domain::journal::{self, JournalEntry, Statement};
use consortium_core::package::authority;
use consortium_core::package::compact::{self, Ack, Verdict};
use std::collections::BTreeSet;
use consortium_core::package::leg::{self, FinishAs, LegRecord, LegState, LegVote, Participation};
use consortium_core::package::record::{Decided, OpResult, Outcome, Record};
use consortium_core::package::spec::{Leg, Package, PackageDigest, PackageKey, Side};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageBackend, TableDefinition, TableHandle};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use std::sync::Arc;

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// "cpf/key" for every holder of every account: lists a user's accounts without a scan.
const HOLDERS: TableDefinition<&str, ()> = TableDefinition::new("holders");
/// Packages this bank is the origin of.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// Origin records still pending, by acceptance order: what this bank must get executed.
const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("outbox");
/// (origin, package id, operation index, side) → leg record, for legs this bank holds as a
/// participant. Every participant table is keyed by (origin, id): the package's identity.
const LEGS: TableDefinition<(&str, &str, u32, u8), &[u8]> = TableDefinition::new("participant_legs");
/// (origin, package id) → what this bank knows of a package it takes part in: the digest of
/// the package it prepared (a prepare of other content under the same key is refused), and
/// the outcome once learned (a tombstone, so a late prepare is refused).
const PARTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("participant_packages");
/// Packages with at least one prepared leg here whose outcome is not known: the in-doubt set.
const IN_DOUBT: TableDefinition<(&str, &str), ()> = TableDefinition::new("participant_in_doubt");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (account, entry number from 1) → journal entry: every committed movement of the account's
/// money, appended in the transaction that moves it. Never compacted: it is the statement.
const JOURNAL: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("journal");
/// (keep until, origin, package id): participant rows whose outcome is applied, by the time
/// (this bank's clock) after which they may be dropped (`compact::participant_keep_until`).
const PARTS_DONE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("participant_done");
/// (expiry, package id): records of this origin decided and not yet dropped, by expiry.
const DECIDED: TableDefinition<(u64, &str), ()> = TableDefinition::new("decided");
/// (package id, bank): banks that acknowledged the outcome of a decided record of this origin.
const ACKS: TableDefinition<(&str, &str), ()> = TableDefinition::new("acks");
/// Tables of the layout before package identity was (origin, id). Such a database cannot be
/// read safely by this version (its legs are filed by the client's id alone).
const LEGACY_TABLES: &[&str] = &["legs", "outcomes", "in_doubt"];

/// redb's page cache. Its default (1 GiB) let a running bank's memory grow with its database,
/// about a kilobyte per package, until the gigabyte: bounded here. The hot pages (accounts,
/// the outbox, recent packages) fit many times over.
const DB_CACHE_BYTES: usize = 32 * 1024 * 1024;

const META_ACCOUNT_SEQ: &str = "account_seq";
const META_RECORD_SEQ: &str = "record_seq";
const META_EPOCH_GEN: &str = "epoch_gen";
/// The latest expiry of any record this origin dropped (`compact::lookup_unknown`).
const META_COMPACTED_EXPIRY: &str = "compacted_expiry";

/// What a prepare's legs are authorized against besides the registry of users' keys: this
/// bank, its clock, its tellers' keys.
#[derive(Clone, Debug)]
pub struct Authority {
    pub me: String,
    pub now_ms: u64,
    pub tellers: Vec<consortium_core::trust::keys::PublicKey>,
    /// The consortium's largest allowed clock skew (`clock_skew_ms`).
    pub skew_ms: u64,
}

/// This bank's clock and allowed skew, for writes that stamp or schedule what they write.
#[derive(Clone, Copy, Debug)]
pub struct When {
    pub now_ms: u64,
    pub skew_ms: u64,
}

/// What a lookup of one of this origin's packages finds.
#[derive(Clone, Debug)]
pub enum Lookup {
    Found(Record),
    /// No record: `compact::lookup_unknown` says whether that means never recorded.
    Unknown(consortium_core::package::compact::Unknown),
}

/// One write of a group commit (`Store::write_group`): what a bank writes for packages.
#[derive(Debug)]
pub enum Write {
    /// Accept a package at its origin.
    Submit { package: Package, origin: String },
    /// Prepare legs held here: (origin, the whole package, this bank's legs of it), in order,
    /// each leg first authorized (`package::authority`) in the light of `Authority`.
    Prepare(Authority, Vec<(String, Package, Vec<Leg>)>),
    /// Decide records of this origin (compare-and-set): (package id, outcome, per-operation
    /// results, the bank asking).
    Decide(Vec<(String, Outcome, Vec<OpResult>, String)>),
    /// Apply outcomes to legs held here: (package, outcome, digest of the package decided).
    Finish(When, Vec<(PackageKey, Outcome, PackageDigest)>),
    /// `Finish` with the origin's signed decisions (verified), kept beside the packages
    /// prepared here: a restored origin re-learns its decisions from them.
    FinishSigned(When, Vec<(PackageKey, consortium_core::trust::decision::Decision)>),
}

/// The answer to each `Write`, in the same slot.
#[derive(Clone, Debug)]
pub enum Written {
    /// The record, and whether it is new (same id, same content: a retry).
    Submit(Result<(Record, bool), Error>),
    /// Per package, its votes, or why the prepare was refused.
    Prepare(Vec<Result<Vec<LegVote>, Error>>),
    /// Per package, the record as it now stands and whether this write decided it.
    Decide(Vec<Result<(Record, Decided), Error>>),
    /// Per package, how many legs moved money, or why the outcome was refused.
    Finish(Vec<Result<usize, Error>>),
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// A bug planted by the simulator's tests (see `crate::planted`); None in production.
    pub planted: crate::planted::PlantedBug,
}

/// Everything a checker needs to audit one bank.
#[derive(Clone, Debug, Default)]
pub struct Audit {
    pub accounts: Vec<Account>,
    pub records: Vec<Record>,
    pub legs: Vec<LegRecord>,
    pub in_doubt: Vec<PackageKey>,
    /// Each account's latest journal entry (None: no movement yet).
    pub last_entries: Vec<(String, Option<JournalEntry>)>,
    /// The latest expiry of a record this origin compacted (0: none).
    pub compacted_expiry: u64,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("storage: {e}"))
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("stored types serialize")
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(b).map_err(|e| internal(format!("corrupt row: {e}")))
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Debit => 0,
        Side::Credit => 1,
    }
}

fn leg_key<'a>(key: &'a PackageKey, leg: &Leg) -> (&'a str, &'a str, u32, u8) {
    (key.origin.as_str(), key.id.as_str(), leg.index, side_byte(leg.side))
}

impl Store {
    /// Opens (or creates) the database file `bank.redb` in `dir`.
    ///
    /// A new database is created under a temporary name and renamed into place once redb has
    /// written and synced it. Power lost while redb creates a file leaves one without redb's
    /// magic number, which redb then refuses to open, so the bank could never start again
    /// (the simulated disk shows it; the simulator wipes such a disk, which is safe only
    /// because it knows no open ever succeeded). Here a cut creation leaves only the
    /// temporary file, removed at the next start.
    pub fn open_dir(dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("bank.redb");
        if !path.exists() {
            let tmp = dir.join("bank.redb.creating");
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(internal(e)),
                _ => {}
            }
            drop(Database::create(&tmp).map_err(internal)?);
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(internal)?;
            std::fs::rename(&tmp, &path).map_err(internal)?;
            // redb syncs the file, not the directory entry that names it.
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(internal)?;
        }
        let db = Database::builder().set_cache_size(DB_CACHE_BYTES).create(&path).map_err(internal)?;
        Store::init(db)
    }

    pub fn open_backend(backend: impl StorageBackend) -> Result<Store, Error> {
        let db = Database::builder().create_with_backend(backend).map_err(internal)?;
        Store::init(db)
    }

    fn init(db: Database) -> Result<Store, Error> {
        let tx = db.begin_write().map_err(internal)?;
        {
            tx.open_table(USERS).map_err(internal)?;
            tx.open_table(ACCOUNTS).map_err(internal)?;
            tx.open_table(HOLDERS).map_err(internal)?;
            tx.open_table(RECORDS).map_err(internal)?;
            tx.open_table(OUTBOX).map_err(internal)?;
            for t in tx.list_tables().map_err(internal)? {
                if LEGACY_TABLES.contains(&t.name()) {
                    return Err(Error::internal(format!(
                        "this database was written by an older version of the bank (table {:?}: packages filed by id alone, not by origin and id); it cannot be opened safely: settle it with the older version, or start with a new data directory",
                        t.name()
                    )));
                }
            }
            tx.open_table(LEGS).map_err(internal)?;
            tx.open_table(PARTS).map_err(internal)?;
            tx.open_table(IN_DOUBT).map_err(internal)?;
            tx.open_table(META).map_err(internal)?;
            tx.open_table(admin::IN_DOUBT_SINCE).map_err(internal)?;
            tx.open_table(admin::KEPT).map_err(internal)?;
            tx.open_table(admin::RECONCILE).map_err(internal)?;
            tx.open_table(JOURNAL).map_err(internal)?;
            tx.open_table(PARTS_DONE).map_err(internal)?;
            tx.open_table(DECIDED).map_err(internal)?;
            tx.open_table(ACKS).map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
        Ok(Store { db: Arc::new(db), planted: Default::default() })
    }

    fn no_cas(&self) -> bool {
        self.planted == crate::planted::PlantedBug::NoCompareAndSet
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T, Error>) -> Result<T, Error> {
        let tx = self.db.begin_read().map_err(internal)?;
        f(&tx)
    }

    /// Runs `f` in a write transaction and commits only if it returned Ok.
    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Error>) -> Result<T, Error> {
        let mut tx = self.db.begin_write().map_err(internal)?;
        if self.planted == crate::planted::PlantedBug::AckBeforeDurable {
            tx.set_durability(redb::Durability::None).map_err(internal)?;
        }
        match f(&tx) {
            Ok(v) => {
                tx.commit().map_err(internal)?;
                Ok(v)
            }
            Err(e) => {
                tx.abort().map_err(internal)?;
                Err(e)
            }
        }
    }

    // ---- users and accounts ----

    pub fn register_user(&self, user: &User) -> Result<(), Error> {
        self.write(|tx| {
            let mut t = tx.open_table(USERS).map_err(internal)?;
            if t.get(user.cpf.as_str()).map_err(internal)?.is_some() {
                return Err(Error::conflict("user_exists", format!("CPF {} is already registered at this bank", user.cpf)));
            }
            t.insert(user.cpf.as_str(), enc(user).as_slice()).map_err(internal)?;
            Ok(())
        })
    }

    /// Replaces a user's key by a rotation signed with the current one (checked here, in the
    /// transaction that writes it). Returns the user and what the rotation did.
    pub fn rotate_key(&self, cpf: &Cpf, new_key_hex: &str, seq: u64, sig: &str) -> Result<(User, consortium_core::trust::user::Rotation), Error> {
        self.write(|tx| {
            let mut t = tx.open_table(USERS).map_err(internal)?;
            let mut u: User = match t.get(cpf.as_str()).map_err(internal)? {
                Some(v) => dec(v.value())?,
                None => return Err(Error::not_found("user_not_found", format!("CPF {cpf} is not a user of this bank"))),
            };
            let done = consortium_core::trust::user::check_rotation_request(&u, new_key_hex, seq, sig)?;
            if done == consortium_core::trust::user::Rotation::Apply {
                apply_rotation(&mut u, crate::domain::KeyRotation { public_key: new_key_hex.to_string(), seq, sig: sig.to_string() });
                t.insert(cpf.as_str(), enc(&u).as_slice()).map_err(internal)?;
            }
            Ok((u, done))
        })
    }

    /// Applies the rotations of another bank's `chain` this bank missed (checked here, each
    /// against the key before it). Returns how many applied; a user unknown here applies none.
    pub fn catch_up_key(&self, cpf: &Cpf, chain: &[crate::domain::KeyRotation]) -> Result<usize, Error> {
        self.write(|tx| {
            let mut t = tx.open_table(USERS).map_err(internal)?;
            let mut u: User = match t.get(cpf.as_str()).map_err(internal)? {
                Some(v) => dec(v.value())?,
                None => return Ok(0),
            };
            let apply = consortium_core::trust::user::catch_up(&u, chain)?;
            let n = apply.len();
            for r in apply {
                apply_rotation(&mut u, r);
            }
            if n > 0 {
                t.insert(cpf.as_str(), enc(&u).as_slice()).map_err(internal)?;
            }
            Ok(n)
        })
    }

    /// An operator's reset of a user's key at this bank (checked here, against the key the
    /// bank holds in the transaction that replaces it). Returns the user.
    pub fn reset_key(&self, me: &str, cpf: &Cpf, new_key_hex: &str, sig: &str, operators: &[consortium_core::trust::keys::PublicKey]) -> Result<User, Error> {
        self.write(|tx| {
            let mut t = tx.open_table(USERS).map_err(internal)?;
            let mut u: User = match t.get(cpf.as_str()).map_err(internal)? {
                Some(v) => dec(v.value())?,
                None => return Err(Error::not_found("user_not_found", format!("CPF {cpf} is not a user of this bank"))),
            };
            u.key = Some(consortium_core::trust::user::check_reset(me, &u, new_key_hex, sig, operators)?);
            t.insert(cpf.as_str(), enc(&u).as_slice()).map_err(internal)?;
            Ok(u)
        })
    }

    pub fn user(&self, cpf: &Cpf) -> Result<Option<User>, Error> {
        self.read(|tx| {
            let t = tx.open_table(USERS).map_err(internal)?;
            t.get(cpf.as_str()).map_err(internal)?.map(|v| dec(v.value())).transpose()
        })
    }

    pub fn open_account(&self, bank: &str, kind: AccountKind, holders: &[Cpf]) -> Result<Account, Error> {
        self.write(|tx| {
            let users = tx.open_table(USERS).map_err(internal)?;
            let mut accounts = tx.open_table(ACCOUNTS).map_err(internal)?;
            let mut index = tx.open_table(HOLDERS).map_err(internal)?;
            let mut meta = tx.open_table(META).map_err(internal)?;
            let mut existing = Vec::new();
            for h in holders {
                let (lo, hi) = (format!("{h}/"), format!("{h}0"));
                for row in index.range(lo.as_str()..hi.as_str()).map_err(internal)? {
                    let (k, _) = row.map_err(internal)?;
                    let key = k.value().split_once('/').map(|x| x.1.to_string()).unwrap_or_default();
                    existing.push((h.clone(), key));
                }
            }
            let mut personal = std::collections::BTreeSet::new();
            for (h, key) in &existing {
                if let Some(v) = accounts.get(key.as_str()).map_err(internal)? {
                    let a: Account = dec(v.value())?;
                    if a.kind == AccountKind::Personal {
                        personal.insert(h.clone());
                    }
                }
            }
            let mut registered = std::collections::BTreeSet::new();
            for h in holders {
                if users.get(h.as_str()).map_err(internal)?.is_some() {
                    registered.insert(h.clone());
                }
            }
            check_new_account(kind, holders, |c| registered.contains(c), |c| personal.contains(c))?;
            let seq = meta.get(META_ACCOUNT_SEQ).map_err(internal)?.map(|v| v.value()).unwrap_or(0) + 1;
            meta.insert(META_ACCOUNT_SEQ, seq).map_err(internal)?;
            let account = Account {
                bank: bank.to_string(),
                key: format!("{seq:06}"),
                kind,
                holders: holders.to_vec(),
                balance: Cents::ZERO,
                blocked: Cents::ZERO,
                held: Cents::ZERO,
            };
            accounts.insert(account.key.as_str(), enc(&account).as_slice()).map_err(internal)?;
            for h in holders {
                index.insert(format!("{h}/{}", account.key).as_str(), ()).map_err(internal)?;
            }
            Ok(account)
        })
    }

    pub fn account(&self, key: &str) -> Result<Option<Account>, Error> {
        self.read(|tx| {
            let t = tx.open_table(ACCOUNTS).map_err(internal)?;
            t.get(key).map_err(internal)?.map(|v| dec(v.value())).transpose()
        })
    }

    pub fn accounts_of(&self, cpf: &Cpf) -> Result<Vec<Account>, Error> {
        self.read(|tx| {
            let index = tx.open_table(HOLDERS).map_err(internal)?;
            let accounts = tx.open_table(ACCOUNTS).map_err(internal)?;
            let (lo, hi) = (format!("{cpf}/"), format!("{cpf}0"));
            let mut out = Vec::new();
            for row in index.range(lo.as_str()..hi.as_str()).map_err(internal)? {
                let (k, _) = row.map_err(internal)?;
                let key = k.value()[lo.len()..].to_string();
                if let Some(v) = accounts.get(key.as_str()).map_err(internal)? {
                    out.push(dec(v.value())?);
                }
            }
            Ok(out)
        })
    }

    // ---- origin records ----

    /// Accepts a package at its origin. Returns the record and whether it is new. The same id
    /// with the same content is the same package (a retry); with other content, a conflict.
    pub fn submit(&self, package: &Package, origin: &str) -> Result<(Record, bool), Error> {
        self.write(|tx| submit_in(tx, package, origin))
    }

    pub fn record(&self, id: &str) -> Result<Option<Record>, Error> {
        self.read(|tx| {
            let t = tx.open_table(RECORDS).map_err(internal)?;
            t.get(id).map_err(internal)?.map(|v| dec(v.value())).transpose()
        })
    }

    /// Pending records of this origin, oldest first.
    pub fn outbox(&self) -> Result<Vec<Record>, Error> {
        self.read(|tx| {
            let outbox = tx.open_table(OUTBOX).map_err(internal)?;
            let records = tx.open_table(RECORDS).map_err(internal)?;
            let mut out = Vec::new();
            for row in outbox.iter().map_err(internal)? {
                let (_, id) = row.map_err(internal)?;
                if let Some(v) = records.get(id.value()).map_err(internal)? {
                    out.push(dec(v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Compare-and-set the record from pending. Returns the record as it now stands and
    /// whether this call decided it. Unknown ids are a NotFound: nobody can commit them.
    pub fn decide(&self, id: &str, outcome: Outcome, results: Vec<OpResult>, by: &str) -> Result<(Record, Decided), Error> {
        self.write(|tx| decide_in(tx, id, outcome, results, by, self.no_cas()))
    }

    // ---- participant legs ----

    /// Prepares this bank's legs of a package, all in one transaction. Idempotent.
    pub fn prepare(&self, auth: &Authority, origin: &str, package: &Package, legs: &[Leg]) -> Result<Vec<LegVote>, Error> {
        self.write(|tx| prepare_in(tx, auth, origin, package, legs, self.planted))
    }

    /// Applies the package's outcome to this bank's legs. Idempotent; returns how many legs
    /// moved money.
    pub fn finish(&self, when: When, key: &PackageKey, outcome: Outcome, digest: PackageDigest) -> Result<usize, Error> {
        self.write(|tx| finish_in(tx, &when, key, outcome, digest, self.planted))
    }

    pub fn participation(&self, key: &PackageKey) -> Result<Option<Participation>, Error> {
        self.read(|tx| part_of(&tx.open_table(PARTS).map_err(internal)?, key))
    }

    // ---- group commit ----

    /// Applies several writes in one transaction (one fsync for all), in order: the same
    /// outcome as applying them one after the other. A write refused for its content (a
    /// reused package id, a decide for an unknown package) is answered in its slot and
    /// changes nothing; a storage failure fails them all.
    pub fn write_group(&self, writes: Vec<Write>) -> Result<Vec<Written>, Error> {
        self.write(|tx| {
            let mut out = Vec::with_capacity(writes.len());
            for w in writes {
                out.push(match w {
                    Write::Submit { package, origin } => Written::Submit(slot(submit_in(tx, &package, &origin))?),
                    Write::Prepare(auth, items) => Written::Prepare(
                        items.iter().map(|(o, p, legs)| slot(prepare_in(tx, &auth, o, p, legs, self.planted))).collect::<Result<_, _>>()?,
                    ),
                    Write::Decide(items) => Written::Decide(
                        items.into_iter().map(|(id, o, r, by)| slot(decide_in(tx, &id, o, r, &by, self.no_cas()))).collect::<Result<_, _>>()?,
                    ),
                    Write::Finish(when, items) => Written::Finish(
                        items.iter().map(|(k, o, d)| slot(finish_in(tx, &when, k, *o, *d, self.planted))).collect::<Result<_, _>>()?,
                    ),
                    Write::FinishSigned(when, items) => Written::Finish(
                        items
                            .iter()
                            .map(|(k, d)| {
                                let r = slot(finish_in(tx, &when, k, d.outcome, d.digest, self.planted))?;
                                if r.is_ok() {
                                    admin::keep_decision(tx, k, d)?;
                                }
                                Ok(r)
                            })
                            .collect::<Result<_, Error>>()?,
                    ),
                });
            }
            Ok(out)
        })
    }


    /// Packages with legs prepared here whose outcome this bank has not learned.
    pub fn in_doubt(&self) -> Result<Vec<PackageKey>, Error> {
        self.read(|tx| {
            let t = tx.open_table(IN_DOUBT).map_err(internal)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(internal)? {
                let (k, _) = row.map_err(internal)?;
                let (origin, id) = k.value();
                out.push(PackageKey::new(origin, id));
            }
            Ok(out)
        })
    }

    // ---- ring ----

    pub fn epoch_gen(&self) -> Result<u64, Error> {
        self.read(|tx| Ok(tx.open_table(META).map_err(internal)?.get(META_EPOCH_GEN).map_err(internal)?.map(|v| v.value()).unwrap_or(0)))
    }

    /// Remembers the newest token generation seen, so a restarted bank never creates or
    /// accepts an older one.
    pub fn raise_epoch_gen(&self, gen: u64) -> Result<(), Error> {
        self.write(|tx| {
            let mut meta = tx.open_table(META).map_err(internal)?;
            let cur = meta.get(META_EPOCH_GEN).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
            if gen > cur {
                meta.insert(META_EPOCH_GEN, gen).map_err(internal)?;
            }
            Ok(())
        })
    }

    // ---- statements ----

    /// One page of an account's statement: its journal from entry `from` (1 = the first), at
    /// most `limit` entries (`journal::check_page`). An unknown account is a NotFound.
    pub fn statement(&self, account: &str, from: u64, limit: u32) -> Result<Statement, Error> {
        journal::check_page(from, limit)?;
        self.read(|tx| {
            if tx.open_table(ACCOUNTS).map_err(internal)?.get(account).map_err(internal)?.is_none() {
                return Err(Error::not_found("account_not_found", format!("account {account} not found")));
            }
            let t = tx.open_table(JOURNAL).map_err(internal)?;
            let mut entries = Vec::new();
            let mut next = None;
            for row in t.range((account, from)..=(account, u64::MAX)).map_err(internal)? {
                let (k, v) = row.map_err(internal)?;
                if entries.len() == limit as usize {
                    next = Some(k.value().1);
                    break;
                }
                entries.push(dec(v.value())?);
            }
            Ok(Statement { account: account.to_string(), entries, next })
        })
    }

    // ---- compaction (`consortium_core::package::compact`) ----

    /// A lookup of one of this origin's packages by id; `expires_ms` is the package's expiry
    /// as the asker knows it (a participant that prepared it), if it says.
    pub fn lookup(&self, id: &str, expires_ms: Option<u64>) -> Result<Lookup, Error> {
        self.read(|tx| {
            if let Some(v) = tx.open_table(RECORDS).map_err(internal)?.get(id).map_err(internal)? {
                return Ok(Lookup::Found(dec(v.value())?));
            }
            let mark = tx.open_table(META).map_err(internal)?.get(META_COMPACTED_EXPIRY).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
            Ok(Lookup::Unknown(compact::lookup_unknown(mark, expires_ms)))
        })
    }

    /// Decided records of this origin whose expiry is at most `max_expiry`, after `after` in
    /// (expiry, id) order, at most `max`, each with the banks that acknowledged its outcome.
    pub fn settling(&self, after: Option<(u64, String)>, max_expiry: u64, max: usize) -> Result<Vec<(Record, BTreeSet<String>)>, Error> {
        self.read(|tx| {
            let decided = tx.open_table(DECIDED).map_err(internal)?;
            let records = tx.open_table(RECORDS).map_err(internal)?;
            let acks = tx.open_table(ACKS).map_err(internal)?;
            let mut out = Vec::new();
            let rows = match &after {
                Some((e, id)) => decided.range((*e, id.as_str())..(max_expiry.saturating_add(1), "")).map_err(internal)?,
                None => decided.range((0, "")..(max_expiry.saturating_add(1), "")).map_err(internal)?,
            };
            for row in rows {
                let (k, _) = row.map_err(internal)?;
                let (e, id) = k.value();
                if after.as_ref().is_some_and(|(ae, aid)| (*ae, aid.as_str()) == (e, id)) {
                    continue;
                }
                if out.len() == max {
                    break;
                }
                let Some(v) = records.get(id).map_err(internal)? else { continue };
                out.push((dec(v.value())?, acked_of(&acks, id)?));
            }
            Ok(out)
        })
    }

    /// Records banks' acknowledgements of outcomes of this origin's records: (id, bank). Only
    /// a decided record's own participants count; anything else is ignored.
    pub fn record_acks(&self, acks: &[(String, String)]) -> Result<usize, Error> {
        self.write(|tx| {
            let records = tx.open_table(RECORDS).map_err(internal)?;
            let mut t = tx.open_table(ACKS).map_err(internal)?;
            let mut n = 0;
            for (id, bank) in acks {
                let Some(v) = records.get(id.as_str()).map_err(internal)? else { continue };
                let r: Record = dec(v.value())?;
                if r.outcome().is_some() && r.package.banks().contains(bank) {
                    t.insert((id.as_str(), bank.as_str()), ()).map_err(internal)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Drops the records among `ids` that `compact::origin_verdict` says may go now (checked
    /// again here, in the transaction that drops them), with their acks, and raises the
    /// watermark. Returns how many went.
    pub fn drop_records(&self, ids: &[String], when: When) -> Result<usize, Error> {
        self.write(|tx| {
            let mut records = tx.open_table(RECORDS).map_err(internal)?;
            let mut decided = tx.open_table(DECIDED).map_err(internal)?;
            let mut acks = tx.open_table(ACKS).map_err(internal)?;
            let mut meta = tx.open_table(META).map_err(internal)?;
            let mut mark = meta.get(META_COMPACTED_EXPIRY).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
            let mut n = 0;
            for id in ids {
                let r: Record = match records.get(id.as_str()).map_err(internal)? {
                    Some(v) => dec(v.value())?,
                    None => continue,
                };
                let acked = acked_of(&acks, id)?;
                let unacked = self.planted == crate::planted::PlantedBug::CompactUnacked;
                match compact::origin_verdict(&r, &acked, when.now_ms, when.skew_ms) {
                    Verdict::Drop => {}
                    Verdict::Ask(_) if unacked => {}
                    _ => continue,
                }
                // The watermark covers every dropped record: its lookup is never a 404.
                if !unacked {
                    mark = mark.max(r.package.expires_ms);
                }
                records.remove(id.as_str()).map_err(internal)?;
                decided.remove((r.package.expires_ms, id.as_str())).map_err(internal)?;
                for bank in &acked {
                    acks.remove((id.as_str(), bank.as_str())).map_err(internal)?;
                }
                n += 1;
            }
            meta.insert(META_COMPACTED_EXPIRY, mark).map_err(internal)?;
            Ok(n)
        })
    }

    /// The origin's compaction watermark: the latest expiry of a dropped record (0: none).
    pub fn compacted_expiry(&self) -> Result<u64, Error> {
        self.read(|tx| Ok(tx.open_table(META).map_err(internal)?.get(META_COMPACTED_EXPIRY).map_err(internal)?.map(|v| v.value()).unwrap_or(0)))
    }

    /// What this bank answers its origin about packages it takes part in: (key, outcome) →
    /// `compact::ack_of` its row, as it stands.
    pub fn acks(&self, items: &[(PackageKey, Outcome)]) -> Result<Vec<Ack>, Error> {
        self.read(|tx| {
            let t = tx.open_table(PARTS).map_err(internal)?;
            items.iter().map(|(k, o)| Ok(compact::ack_of(part_of(&t, k)?.as_ref(), *o))).collect()
        })
    }

    /// Drops participant rows (and their legs) whose outcome is applied and whose time has
    /// come (`compact::participant_may_drop`), at most `max`. Returns how many went.
    pub fn compact_participant(&self, now_ms: u64, max: usize) -> Result<usize, Error> {
        self.write(|tx| {
            let mut done = tx.open_table(PARTS_DONE).map_err(internal)?;
            let mut parts = tx.open_table(PARTS).map_err(internal)?;
            let mut legs = tx.open_table(LEGS).map_err(internal)?;
            let mut due = Vec::new();
            for row in done.range((0, "", "")..(now_ms, "", "")).map_err(internal)? {
                if due.len() == max {
                    break;
                }
                let (k, _) = row.map_err(internal)?;
                let (until, o, id) = k.value();
                due.push((until, o.to_string(), id.to_string()));
            }
            let mut n = 0;
            for (until, o, id) in due {
                done.remove((until, o.as_str(), id.as_str())).map_err(internal)?;
                let key = PackageKey::new(&o, &id);
                let Some(p) = part_of(&parts, &key)? else { continue };
                if !compact::participant_may_drop(&p, until, now_ms) {
                    continue;
                }
                parts.remove((o.as_str(), id.as_str())).map_err(internal)?;
                admin::forget_kept(tx, &key)?;
                let ks: Vec<_> = legs_of(&legs, &key)?.iter().map(|r| (r.leg.index, side_byte(r.leg.side))).collect();
                for (i, side) in ks {
                    legs.remove((o.as_str(), id.as_str(), i, side)).map_err(internal)?;
                }
                n += 1;
            }
            Ok(n)
        })
    }

    /// Row counts of the package tables (what compaction keeps bounded).
    pub fn sizes(&self) -> Result<Sizes, Error> {
        self.read(|tx| {
            Ok(Sizes {
                records: tx.open_table(RECORDS).map_err(internal)?.len().map_err(internal)?,
                legs: tx.open_table(LEGS).map_err(internal)?.len().map_err(internal)?,
                participations: tx.open_table(PARTS).map_err(internal)?.len().map_err(internal)?,
                journal: tx.open_table(JOURNAL).map_err(internal)?.len().map_err(internal)?,
            })
        })
    }

    // ---- audit ----

    pub fn audit(&self) -> Result<Audit, Error> {
        self.read(|tx| {
            let mut a = Audit::default();
            for row in tx.open_table(ACCOUNTS).map_err(internal)?.iter().map_err(internal)? {
                a.accounts.push(dec(row.map_err(internal)?.1.value())?);
            }
            for row in tx.open_table(RECORDS).map_err(internal)?.iter().map_err(internal)? {
                a.records.push(dec(row.map_err(internal)?.1.value())?);
            }
            for row in tx.open_table(LEGS).map_err(internal)?.iter().map_err(internal)? {
                a.legs.push(dec(row.map_err(internal)?.1.value())?);
            }
            for row in tx.open_table(IN_DOUBT).map_err(internal)?.iter().map_err(internal)? {
                let (k, _) = row.map_err(internal)?;
                let (origin, id) = k.value();
                a.in_doubt.push(PackageKey::new(origin, id));
            }
            let j = tx.open_table(JOURNAL).map_err(internal)?;
            for acc in &a.accounts {
                a.last_entries.push((acc.key.clone(), last_entry(&j, &acc.key)?));
            }
            a.compacted_expiry = tx.open_table(META).map_err(internal)?.get(META_COMPACTED_EXPIRY).map_err(internal)?.map(|v| v.value()).unwrap_or(0);
            Ok(a)
        })
    }
}

/// Row counts of the package tables and the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sizes {
    pub records: u64,
    pub legs: u64,
    pub participations: u64,
    pub journal: u64,
}

fn acked_of(t: &impl ReadableTable<(&'static str, &'static str), ()>, id: &str) -> Result<BTreeSet<String>, Error> {
    let mut out = BTreeSet::new();
    for row in t.range((id, "")..=(id, "\u{10ffff}")).map_err(internal)? {
        out.insert(row.map_err(internal)?.0.value().1.to_string());
    }
    Ok(out)
}

fn last_entry(t: &impl ReadableTable<(&'static str, u64), &'static [u8]>, account: &str) -> Result<Option<JournalEntry>, Error> {
    match t.range((account, 0)..=(account, u64::MAX)).map_err(internal)?.next_back() {
        Some(row) => Ok(Some(dec(row.map_err(internal)?.1.value())?)),
        None => Ok(None),
    }
}

/// Appends the committed leg `rec` to its account's journal; `a` is the account after it.
fn append_entry(tx: &redb::WriteTransaction, when: &When, a: &Account, rec: &LegRecord) -> Result<(), Error> {
    let mut t = tx.open_table(JOURNAL).map_err(internal)?;
    let n = last_entry(&t, &a.key)?.map_or(0, |e| e.n) + 1;
    let total = a.balance.checked_add(a.held).expect("balance + held fits: the ledger keeps it exact");
    let e = JournalEntry {
        n,
        time_ms: when.now_ms,
        side: rec.leg.side,
        amount: rec.leg.amount,
        origin: rec.origin.clone(),
        package: rec.package.clone(),
        index: rec.leg.index,
        total_after: total,
    };
    t.insert((a.key.as_str(), n), enc(&e).as_slice()).map_err(internal)?;
    Ok(())
}

/// Files a participant row whose outcome is applied for compaction after `keep_until`.
fn schedule_drop(tx: &redb::WriteTransaction, keep_until: u64, key: &PackageKey) -> Result<(), Error> {
    tx.open_table(PARTS_DONE).map_err(internal)?.insert((keep_until, key.origin.as_str(), key.id.as_str()), ()).map_err(internal)?;
    Ok(())
}

/// The legs of `key` this bank holds, in key order.
fn legs_of(legs_t: &impl ReadableTable<(&'static str, &'static str, u32, u8), &'static [u8]>, key: &PackageKey) -> Result<Vec<LegRecord>, Error> {
    let (o, id) = (key.origin.as_str(), key.id.as_str());
    let mut out = Vec::new();
    for row in legs_t.range((o, id, 0u32, 0u8)..=(o, id, u32::MAX, u8::MAX)).map_err(internal)? {
        out.push(dec(row.map_err(internal)?.1.value())?);
    }
    Ok(out)
}

/// What this bank knows of a package it takes part in (read or write transaction).
fn part_of(t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>, key: &PackageKey) -> Result<Option<Participation>, Error> {
    t.get((key.origin.as_str(), key.id.as_str())).map_err(internal)?.map(|v| dec(v.value())).transpose()
}

fn put_part(tx: &redb::WriteTransaction, key: &PackageKey, p: &Participation) -> Result<(), Error> {
    let mut t = tx.open_table(PARTS).map_err(internal)?;
    t.insert((key.origin.as_str(), key.id.as_str()), enc(p).as_slice()).map_err(internal)?;
    Ok(())
}

/// Prepares `legs` (this bank's legs of `package` accepted at `origin`). Refuses, before
/// writing anything, a package whose key this bank already knows with other content: a
/// repeated prepare is answered with the first one's votes only if it is the same package.
/// A refusal answers its own slot of a group (every *_in function refuses before writing, so
/// the transaction stays usable); a storage failure fails the whole group.
fn slot<T>(r: Result<T, Error>) -> Result<Result<T, Error>, Error> {
    match r {
        Err(e) if e.kind == crate::error::Kind::Internal => Err(e),
        other => Ok(other),
    }
}

fn prepare_in(tx: &redb::WriteTransaction, auth: &Authority, origin: &str, package: &Package, legs: &[Leg], planted: crate::planted::PlantedBug) -> Result<Vec<LegVote>, Error> {
    let skip_signatures = planted == crate::planted::PlantedBug::SkipSignatures;
    let key = package.key(origin);
    let digest = package.digest(origin);
    let part = part_of(&tx.open_table(PARTS).map_err(internal)?, &key)?;
    let outcome = leg::check_prepare(&key, part.as_ref(), digest)?;
    let mut legs_t = tx.open_table(LEGS).map_err(internal)?;
    let mut accounts = tx.open_table(ACCOUNTS).map_err(internal)?;
    let users = tx.open_table(USERS).map_err(internal)?;
    let key_of = |c: &Cpf| -> Option<consortium_core::trust::keys::PublicKey> {
        let u: User = dec(users.get(c.as_str()).ok()??.value()).ok()?;
        consortium_core::trust::keys::PublicKey::from_hex(u.key.as_deref()?)
    };
    let expiry = authority::check_expiry_within(package, auth.now_ms, auth.skew_ms);
    if part.is_none() {
        if let Err(why) = &expiry {
            // Expired and unknown here: refused without a trace, so a prepare that arrives
            // after this bank compacted the package (or a forged one) leaves nothing behind.
            return Ok(legs.iter().map(|l| LegVote { index: l.index, side: l.side, ok: false, reason: Some(why.clone()) }).collect());
        }
    }
    let mut votes = Vec::with_capacity(legs.len());
    let mut any_prepared = false;
    for l in legs {
        let k = leg_key(&key, l);
        if let Some(v) = legs_t.get(k).map_err(internal)? {
            // Same key, same digest: the same leg. Its first vote stands.
            let rec: LegRecord = dec(v.value())?;
            assert_eq!(rec.leg, *l, "leg {key}/{}/{:?} differs under one digest", l.index, l.side);
            any_prepared |= rec.state == LegState::Prepared;
            votes.push(rec.vote());
            continue;
        }
        let rec = match outcome {
            Some(o) => leg::late_leg(&key, o, l),
            None => {
                let mut account: Option<Account> = accounts.get(l.account.as_str()).map_err(internal)?.map(|v| dec(v.value())).transpose()?;
                let authorized = match skip_signatures {
                    true => Ok(()),
                    false => expiry.clone().and_then(|()| authority::authorize_leg(package, origin, &auth.me, l, account.as_ref(), key_of, &auth.tellers)),
                };
                let rec = match authorized {
                    Ok(()) => leg::prepare(&key.id, &key.origin, l, account.as_mut()),
                    // Not authorized: voted down with the reason, the account untouched.
                    Err(why) => LegRecord { package: key.id.clone(), origin: key.origin.clone(), leg: l.clone(), state: LegState::Refused(why) },
                };
                if rec.state == LegState::Prepared {
                    let a = account.expect("prepared legs have an account");
                    accounts.insert(a.key.as_str(), enc(&a).as_slice()).map_err(internal)?;
                    any_prepared = true;
                }
                rec
            }
        };
        legs_t.insert(k, enc(&rec).as_slice()).map_err(internal)?;
        votes.push(rec.vote());
    }
    if part.as_ref().and_then(|p| p.digest).is_none() {
        put_part(tx, &key, &Participation { digest: Some(digest), outcome, expires_ms: package.expires_ms })?;
    }
    if any_prepared && outcome.is_none() {
        tx.open_table(IN_DOUBT).map_err(internal)?.insert((key.origin.as_str(), key.id.as_str()), ()).map_err(internal)?;
        admin::mark_in_doubt_since(tx, &key, auth.now_ms)?;
        admin::keep_package(tx, &key, package)?;
    }
    Ok(votes)
}

/// Refuses before writing anything, so a refusal leaves the transaction usable.
fn submit_in(tx: &redb::WriteTransaction, package: &Package, origin: &str) -> Result<(Record, bool), Error> {
    if let Some(why) = admin::lost_in(tx, &package.id)? {
        return Err(Error::conflict("id_reused", format!("package id {} was this bank's before a restore, and its outcome is unknown here ({why})", package.id)));
    }
    let mut records = tx.open_table(RECORDS).map_err(internal)?;
    if let Some(v) = records.get(package.id.as_str()).map_err(internal)? {
        let r: Record = dec(v.value())?;
        if !r.package.same_content(package) {
            return Err(Error::conflict("id_reused", format!("package id {} was used for a different package", package.id)));
        }
        return Ok((r, false));
    }
    let mut meta = tx.open_table(META).map_err(internal)?;
    let seq = meta.get(META_RECORD_SEQ).map_err(internal)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(META_RECORD_SEQ, seq).map_err(internal)?;
    let r = Record::new(package.clone(), origin.to_string(), seq);
    records.insert(package.id.as_str(), enc(&r).as_slice()).map_err(internal)?;
    tx.open_table(OUTBOX).map_err(internal)?.insert(seq, package.id.as_str()).map_err(internal)?;
    Ok((r, true))
}

fn decide_in(tx: &redb::WriteTransaction, id: &str, outcome: Outcome, results: Vec<OpResult>, by: &str, no_cas: bool) -> Result<(Record, Decided), Error> {
    let mut records = tx.open_table(RECORDS).map_err(internal)?;
    let mut r: Record = match records.get(id).map_err(internal)? {
        Some(v) => dec(v.value())?,
        None => return Err(Error::not_found("package_not_found", format!("no package {id} at this origin"))),
    };
    if no_cas {
        r.status = consortium_core::package::Status::Pending; // the planted bug: no compare-and-set
    }
    if r.outcome().is_none() {
        if let Some(why) = admin::lost_in(tx, id)? {
            return Err(Error::conflict("lost_in_restore", format!("package {id}: this bank cannot know its outcome since a restore ({why}); its operator settles it")));
        }
    }
    let d = r.decide(outcome, results, by)?;
    if d == Decided::Now {
        records.insert(id, enc(&r).as_slice()).map_err(internal)?;
        tx.open_table(OUTBOX).map_err(internal)?.remove(r.seq).map_err(internal)?;
        tx.open_table(DECIDED).map_err(internal)?.insert((r.package.expires_ms, id), ()).map_err(internal)?;
    }
    Ok((r, d))
}

/// Applies `outcome` (decided for the package with `digest`) to this bank's legs of `key`.
/// Refuses, before writing anything, an outcome that contradicts what this bank recorded: a
/// decision about other content than it prepared, a commit of a package it never prepared or
/// of a leg it refused, or the other outcome than the one already applied. Those can only
/// come from a forged or broken message.
fn finish_in(tx: &redb::WriteTransaction, when: &When, key: &PackageKey, outcome: Outcome, digest: PackageDigest, planted: crate::planted::PlantedBug) -> Result<usize, Error> {
    use crate::planted::PlantedBug;
    let skip_refund = planted == PlantedBug::SkipRefund;
    // The planted atomicity bug moves prepared legs of an aborted package as if committed.
    let apply = if planted == PlantedBug::CommitOnAbort { Outcome::Commit } else { outcome };
    let part = part_of(&tx.open_table(PARTS).map_err(internal)?, key)?;
    let part = match (leg::judge_finish(key, part.as_ref(), outcome, digest)?, part) {
        (FinishAs::Done, _) => return Ok(0),
        (FinishAs::Tombstone, _) => {
            put_part(tx, key, &Participation { digest: Some(digest), outcome: Some(outcome), expires_ms: 0 })?;
            schedule_drop(tx, compact::tombstone_keep_until(when.now_ms, when.skew_ms), key)?;
            return Ok(0);
        }
        (FinishAs::Apply, Some(part)) => part,
        (FinishAs::Apply, None) => unreachable!("an outcome is applied only to legs prepared here"),
    };
    let mut legs_t = tx.open_table(LEGS).map_err(internal)?;
    let recs = legs_of(&legs_t, key)?;
    for rec in &recs {
        leg::check_finish(rec, outcome)?;
    }
    let mut accounts = tx.open_table(ACCOUNTS).map_err(internal)?;
    let mut moved = 0;
    for mut rec in recs {
        if rec.state != LegState::Prepared {
            continue;
        }
        let mut a: Account = match accounts.get(rec.leg.account.as_str()).map_err(internal)? {
            Some(v) => dec(v.value())?,
            None => panic!("prepared leg {:?} of {key} has no account", rec.leg),
        };
        if leg::finish(&mut rec, apply, &mut a, skip_refund) {
            moved += 1;
            if rec.state == LegState::Committed {
                append_entry(tx, when, &a, &rec)?;
            }
        }
        accounts.insert(a.key.as_str(), enc(&a).as_slice()).map_err(internal)?;
        legs_t.insert(leg_key(key, &rec.leg), enc(&rec).as_slice()).map_err(internal)?;
    }
    put_part(tx, key, &Participation { digest: part.digest, outcome: Some(outcome), expires_ms: part.expires_ms })?;
    let keep = match part.expires_ms {
        0 => compact::tombstone_keep_until(when.now_ms, when.skew_ms),
        e => compact::participant_keep_until(e, when.skew_ms),
    };
    schedule_drop(tx, keep, key)?;
    tx.open_table(IN_DOUBT).map_err(internal)?.remove((key.origin.as_str(), key.id.as_str())).map_err(internal)?;
    admin::clear_in_doubt_since(tx, key)?;
    Ok(moved)
}

impl Audit {
    /// Checks this bank's books against its own leg records: what is held and blocked on each
    /// account is exactly what its prepared legs say. Returns the broken rules.
    pub fn self_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut held = std::collections::BTreeMap::<&str, u64>::new();
        let mut blocked = std::collections::BTreeMap::<&str, u64>::new();
        for l in self.legs.iter().filter(|l| l.state == LegState::Prepared) {
            let m = if l.leg.side == Side::Debit { &mut held } else { &mut blocked };
            *m.entry(l.leg.account.as_str()).or_default() += l.leg.amount.0;
        }
        for a in &self.accounts {
            let h = held.get(a.key.as_str()).copied().unwrap_or(0);
            let b = blocked.get(a.key.as_str()).copied().unwrap_or(0);
            if a.held.0 != h {
                problems.push(format!("account {}/{}: held {} but prepared debits sum to {h}", a.bank, a.key, a.held.0));
            }
            if a.blocked.0 != b {
                problems.push(format!("account {}/{}: blocked {} but prepared credits sum to {b}", a.bank, a.key, a.blocked.0));
            }
        }
        problems
    }

    /// Checks each account's statement against its books: the journal's last running total
    /// (each entry appended in the transaction that moved the money) is balance + held.
    pub fn journal_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, last) in &self.last_entries {
            let Some(a) = self.accounts.iter().find(|a| a.key == *key) else { continue };
            let total = last.as_ref().map_or(0, |e| e.total_after.0);
            if total != a.balance.0 + a.held.0 {
                problems.push(format!("account {}/{}: balance {} + held {} but its journal's running total is {total}", a.bank, a.key, a.balance.0, a.held.0));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests;

/// A checked rotation, applied to the user as this bank keeps them (with the last few kept to
/// pass on).
fn apply_rotation(u: &mut User, r: crate::domain::KeyRotation) {
    u.key = consortium_core::trust::keys::PublicKey::from_hex(&r.public_key).map(|k| k.to_hex());
    u.key_seq = r.seq;
    u.rotations.push(r);
    let extra = u.rotations.len().saturating_sub(crate::domain::account::MAX_ROTATIONS_KEPT);
    u.rotations.drain(..extra);
}
