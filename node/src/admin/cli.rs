//! `node admin ...`: the operator's tools on a stopped bank (the database opened directly;
//! a running bank holds redb's lock, and the tools say so: use `bank admin` then).

use crate::store::Store;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// List the packages with legs prepared here whose outcome this bank has not learned:
    /// origin, package id, when prepared and how long ago (this machine's clock), the legs.
    InDoubt {
        /// The bank's data folder.
        #[arg(long)]
        data: PathBuf,
    },
    /// Write a consistent copy of the bank's database to a new file (never over one).
    Backup {
        /// The bank's data folder.
        #[arg(long)]
        data: PathBuf,
        /// The copy to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Put a backup in place as the bank's database, marked "reconciling": at its next start
    /// the bank accepts no package until every other bank has told it what names it (see
    /// README, "Operating a bank"). The database it replaces is kept as bank.redb.before-restore-N.
    Restore {
        /// The backup (from `node admin backup` or `bank admin backup`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The bank's data folder.
        #[arg(long)]
        data: PathBuf,
    },
    /// Show a restored bank's reconciliation: whether it is done, which banks answered, the
    /// packages it cannot know the outcome of, and what it could not re-apply.
    Reconcile {
        /// The bank's data folder.
        #[arg(long)]
        data: PathBuf,
    },
    /// Show the manifest's hash and the fingerprints of every bank's key and of this bank's
    /// tellers' keys, to compare across banks.
    Fingerprints {
        /// The bank's data folder (its key, bank.key).
        #[arg(long)]
        data: PathBuf,
        /// The consortium manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// A teller's public key (hex), as the bank is started with; repeat for several.
        #[arg(long = "teller-key", value_name = "HEX")]
        teller_keys: Vec<String>,
    },
    /// Export an account's statement from its journal: every committed movement of its
    /// money, numbered from 1, with when, in or out, the package and the total after (JSON).
    Statement {
        /// The bank's data folder.
        #[arg(long)]
        data: PathBuf,
        /// The account's key at this bank.
        #[arg(long, value_name = "KEY")]
        account: String,
        /// The first entry (1 = the account's first).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
        /// At most this many entries (default: all from --from on).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
}

fn print(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("views serialize"));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn open(data: &Path) -> Result<Store, String> {
    Store::open_existing(data).map_err(|e| e.message)
}

pub fn run(cmd: &AdminCmd) -> Result<(), String> {
    match cmd {
        AdminCmd::InDoubt { data } => print(&super::in_doubt(&open(data)?, &data.display().to_string(), now_ms()).map_err(|e| e.message)?),
        AdminCmd::Backup { data, to } => {
            let n = open(data)?.backup_to(to).map_err(|e| e.message)?;
            eprintln!("wrote {} ({n} bytes)", to.display());
        }
        AdminCmd::Restore { from, data } => {
            let at = super::restore(from, data).map_err(|e| e.message)?;
            eprintln!("restored {} as {}: the bank reconciles with the other banks at its next start, and accepts packages once all have answered", from.display(), at.display());
        }
        AdminCmd::Statement { data, account, from, limit } => print(&super::statement(&open(data)?, account, *from, *limit).map_err(|e| e.message)?),
        AdminCmd::Reconcile { data } => print(&super::reconcile_view(&open(data)?).map_err(|e| e.message)?),
        AdminCmd::Fingerprints { data, manifest, teller_keys } => {
            let text = std::fs::read_to_string(manifest).map_err(|e| format!("manifest {}: {e}", manifest.display()))?;
            let m = crate::trust::manifest::Manifest::from_toml(&text).map_err(|e| format!("manifest {}: {e}", manifest.display()))?;
            let key_file = data.join(crate::trust::keyfile::KEY_FILE);
            if !key_file.exists() {
                return Err(format!("no bank key at {} (is --data the bank's data folder?)", key_file.display()));
            }
            let (key, _) = crate::trust::keyfile::load_or_create(data)?;
            let me = m.addresses().into_iter().find(|a| m.key_of(a) == Some(&key.public())).ok_or("this bank's key is not in the manifest")?;
            let tellers = teller_keys
                .iter()
                .map(|h| crate::trust::keys::PublicKey::from_hex(h).ok_or_else(|| format!("teller key {h:?} is not 64 hex digits")))
                .collect::<Result<Vec<_>, _>>()?;
            print(&super::fingerprints(&me, &m, &tellers));
        }
    }
    Ok(())
}
