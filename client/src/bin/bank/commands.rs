//! What each command does, and how it ends (exit codes).

use crate::args::*;
use crate::render::*;
use bank_client::keys::{self, KeyStore};
use consortium_core::domain::Cpf;
use bank_client::{now_ms, sign_package, Signers};
use consortium_core::trust::keys::{KeyPair, UserKey};
use consortium_core::trust::keys::PublicKey;
use consortium_core::trust::read::Reader;
use std::path::PathBuf;
use bank_client::{
    build_package, fmt_duration, new_package_id, parse_account_ref, parse_op, parse_ops_file,
    Answer, ApiCall, Client, ClientError, OpsFormat,
};
use consortium_core::package::{OpKind, Operation, Package, Status};
use consortium_core::wire::{AccountList, AccountView, ConsortiumAccounts, PackageView, StatusView, UserView};
use std::io::{self, Write};
use std::time::Duration;


/// How a command ended, when not plainly well.
pub(crate) enum Fail {
    /// The command line asked for something impossible (exit 2).
    Usage(String),
    /// A bank refused or could not be reached; `hint` says what to do next.
    Client(ClientError, Option<String>),
    /// The outcome was printed and it is an aborted package (exit 1).
    Aborted,
    /// The outcome was printed and the package is still pending (exit 4).
    Pending,
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        Fail::Client(e, None)
    }
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) timeout: Duration,
    pub(crate) keys: Keys,
}

/// Where the keys that sign come from.
pub(crate) struct Keys {
    pub(crate) store: KeyStore,
    pub(crate) user: Option<Cpf>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) teller_file: Option<PathBuf>,
    pub(crate) as_teller: bool,
    pub(crate) valid_for: Duration,
}

impl Keys {
    pub(crate) fn from_cli(cli: &Cli) -> Keys {
        Keys { store: KeyStore::locate(cli.keys.clone()), user: cli.user.clone(), key_file: cli.key_file.clone().or_else(|| cli.key.clone()), teller_file: cli.teller_key.clone(), as_teller: cli.as_teller, valid_for: cli.valid_for }
    }

    /// `client`, signing its reads: as the teller of its bank (--as-teller), else as `cpf`
    /// (the user whose data is read), else as the acting user (--user).
    pub(crate) fn reader(&self, client: &Client, cpf: Option<&Cpf>) -> Result<Client, String> {
        if self.as_teller {
            return Ok(client.reading_as(Reader::Teller, self.teller(client.bank())?));
        }
        match cpf.or(self.user.as_ref()) {
            Some(c) => Ok(client.reading_as(Reader::User(c.clone()), self.of(c)?)),
            None => Err("only a holder reads an account or a package: say who reads with --user CPF (or --as-teller, a bank's operator at the counter)".into()),
        }
    }

    /// The key of `cpf`: the --key file when it is the acting user's, else the key folder's.
    pub(crate) fn of(&self, cpf: &Cpf) -> Result<UserKey, String> {
        match &self.key_file {
            Some(f) if self.user.as_ref().is_none_or(|u| u == cpf) => keys::load(f),
            _ => self.store.load(cpf),
        }
    }

    /// The teller key for deposits at `bank`.
    pub(crate) fn teller(&self, bank: &str) -> Result<KeyPair, String> {
        let path = self.teller_file.clone().unwrap_or_else(|| PathBuf::from(format!("data/tellers/{}.key", bank.replace(':', "_"))));
        keys::load(&path).map_err(|e| format!("{e}\n(a deposit needs the teller key of {bank}: --teller-key FILE)"))
    }

    /// Expiry and signatures for `package` submitted at `origin`.
    pub(crate) fn sign(&self, package: &mut Package, origin: &str) -> Result<(), String> {
        let holder_key = match &self.user {
            Some(u) if package.operations.iter().any(|op| op.from.is_some()) => Some((u.clone(), self.of(u)?)),
            _ => None,
        };
        let deposit_banks: std::collections::BTreeSet<String> =
            package.operations.iter().filter(|op| op.kind == OpKind::Deposit).filter_map(|op| op.to.as_ref()).map(|r| r.bank.clone()).collect();
        let tellers = deposit_banks.into_iter().map(|b| self.teller(&b).map(|k| (b, k))).collect::<Result<Vec<_>, _>>()?;
        let signers = Signers { holder: holder_key.as_ref().map(|(c, k)| (c.clone(), k)), tellers: tellers.iter().map(|(b, k)| (b.clone(), k)).collect() };
        sign_package(package, origin, &signers, now_ms(), self.valid_for)
    }
}

/// Prints a failure and gives the exit code.
pub(crate) fn report(ctx: &Ctx, f: Fail) -> i32 {
    match f {
        Fail::Usage(m) => {
            eprintln!("error: {m}");
            eprintln!("(see `bank <command> --help` for the syntax)");
            2
        }
        Fail::Client(e, hint) => {
            if ctx.json {
                say(&serde_json::to_string(&e.to_body()).expect("error bodies serialize"));
            }
            eprintln!("error: {e}");
            if let Some(h) = hint {
                eprintln!("{h}");
            }
            e.exit_code()
        }
        Fail::Aborted => 1,
        Fail::Pending => 4,
    }
}

/// Prints to stdout; a closed pipe (`bank status | head -1`) is not an error.
pub(crate) fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
}

pub(crate) fn print_answer<T>(ctx: &Ctx, a: &Answer<T>, human: impl FnOnce(&T) -> String) {
    if ctx.json {
        say(&String::from_utf8_lossy(&a.raw));
    } else {
        say(&human(&a.value));
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Fail> {
    let c = &ctx.client;
    let here = c.bank().to_string();
    match cmd {
        Cmd::User(UserCmd::Register { cpf, name, approval, protect }) => {
            let (key, new) = match &ctx.keys.key_file {
                Some(f) => (keys::load(f).map_err(Fail::Usage)?, false),
                None => ctx.keys.store.load_or_create_with(&cpf, protect || keys::passphrase_given()).map_err(Fail::Usage)?,
            };
            let kept = ctx.keys.key_file.clone().unwrap_or_else(|| ctx.keys.store.path(&cpf));
            let a = c.call::<UserView>(ApiCall::register_user(&here, &cpf, &name, &key, approval)).await?;
            print_answer(ctx, &a, |u| {
                let made = if new { "made" } else { "used" };
                format!("registered {} ({}) at bank {here}; {made} the key {}", u.name, u.cpf.formatted(), kept.display())
            });
        }
        Cmd::User(UserCmd::Approve { cpf, public_key }) => {
            let key = PublicKey::from_hex(&public_key).ok_or_else(|| Fail::Usage("--public-key is not an Ed25519 public key (64 hex digits)".into()))?;
            let op = ctx.keys.teller(&here).map_err(Fail::Usage)?;
            let approval = consortium_core::trust::user::sign(&op, &consortium_core::trust::user::approve_message(&here, &cpf, &key.to_hex()));
            eprintln!("approval of {} with key {} at {here}: the person registers with --approval", cpf.formatted(), key.to_hex());
            say(&approval);
        }
        Cmd::User(UserCmd::Reset { cpf, public_key }) => {
            let new = PublicKey::from_hex(&public_key).ok_or_else(|| Fail::Usage("--public-key is not an Ed25519 public key (64 hex digits)".into()))?;
            let op = ctx.keys.teller(&here).map_err(Fail::Usage)?;
            // The statement names the key it replaces: read it as the operator.
            let u = c.reading_as(Reader::Teller, op.clone()).call::<UserView>(ApiCall::user(cpf.as_str())).await?.value;
            let old = u.public_key.unwrap_or_default();
            let a = c.call::<UserView>(ApiCall::reset_key(&here, &cpf, &old, &new.to_hex(), &op)).await?;
            print_answer(ctx, &a, |u| format!("reset the key of {} at {here} to {}; other banks keep theirs until their operator resets it", u.cpf.formatted(), new.to_hex()));
        }
        Cmd::Key(KeyCmd::New { cpf }) => {
            let (key, made) = ctx.keys.store.load_or_create_with(&cpf, keys::passphrase_given()).map_err(Fail::Usage)?;
            let path = ctx.keys.store.path(&cpf);
            eprintln!("{} the key of {} in {}", if made { "made" } else { "kept" }, cpf.formatted(), path.display());
            say(&key.public().to_hex());
        }
        Cmd::Key(KeyCmd::Show { cpf }) => {
            let key = ctx.keys.of(&cpf).map_err(Fail::Usage)?;
            let path = ctx.keys.key_file.clone().filter(|_| ctx.keys.user.as_ref().is_none_or(|u| *u == cpf)).unwrap_or_else(|| ctx.keys.store.path(&cpf));
            if ctx.json {
                say(&serde_json::json!({"cpf": cpf.as_str(), "file": path.display().to_string(), "public_key": key.public().to_hex()}).to_string());
            } else {
                say(&format!("CPF         {}\nkey file    {}\npublic key  {}", cpf.formatted(), path.display(), key.public().to_hex()));
            }
        }
        Cmd::Key(KeyCmd::Rotate { cpf }) => {
            if ctx.keys.key_file.is_some() {
                return Err(Fail::Usage("key rotate works on the key folder (--keys), not on --key-file".into()));
            }
            let old = ctx.keys.store.load(&cpf).map_err(Fail::Usage)?;
            let u = c.reading_as(Reader::User(cpf.clone()), old.clone()).call::<UserView>(ApiCall::user(cpf.as_str())).await?.value;
            let staged = ctx.keys.store.staged(&cpf);
            if let Some(s) = staged.as_ref().filter(|s| u.public_key.as_deref() == Some(s.public().to_hex().as_str())) {
                // An earlier rotation went through but its answer was lost: finish it here.
                let before = ctx.keys.store.commit(&cpf, u.key_seq).map_err(Fail::Usage)?;
                say(&format!("the rotation to {} had gone through; the previous key is kept in {}", s.public().to_hex(), before.display()));
                return Ok(());
            }
            if u.public_key.as_deref() != Some(old.public().to_hex().as_str()) {
                return Err(Fail::Usage(format!("the key on this machine is not the one {here} holds for {}", cpf.formatted())));
            }
            let new = staged.unwrap_or_else(KeyStore::fresh);
            let seq = u.key_seq + 1;
            let new_hex = new.public().to_hex();
            let sig = consortium_core::trust::user::sign(&old, &consortium_core::trust::user::rotate_message(&cpf, &new_hex, seq));
            let body = consortium_core::wire::KeyRotation { public_key: new_hex.clone(), seq, sig };
            let staged = ctx.keys.store.stage(&cpf, &new).map_err(Fail::Usage)?;
            let a = match c.call::<UserView>(ApiCall::rotate_key(&cpf, &body)).await {
                Ok(a) => a,
                Err(e) => {
                    let hint = format!("the new key is kept in {} until a rotation goes through; run the command again", staged.display());
                    return Err(Fail::Client(e, Some(hint)));
                }
            };
            let before = ctx.keys.store.commit(&cpf, seq).map_err(Fail::Usage)?;
            print_answer(ctx, &a, |_| format!("rotated the key of {} (rotation {seq}) at {here}; new public key {new_hex}; the previous key is kept in {}", cpf.formatted(), before.display()));
        }
        Cmd::Key(KeyCmd::Protect { cpf }) => {
            let path = key_file_of(ctx, &cpf)?;
            keys::protect(&path).map_err(Fail::Usage)?;
            say(&format!("the key file {} of {} is protected by a passphrase: every command that signs will need it", path.display(), cpf.formatted()));
        }
        Cmd::Key(KeyCmd::Unprotect { cpf }) => {
            let path = key_file_of(ctx, &cpf)?;
            keys::unprotect(&path).map_err(Fail::Usage)?;
            say(&format!("the key file {} of {} is no longer protected by a passphrase", path.display(), cpf.formatted()));
        }
        Cmd::Key(KeyCmd::Export { cpf }) => {
            let key = ctx.keys.of(&cpf).map_err(Fail::Usage)?;
            eprintln!("the private key of {}: whoever has it can move this user's money", cpf.formatted());
            say(&key.seed_hex());
        }
        Cmd::User(UserCmd::Show { cpf }) => {
            let c = ctx.keys.reader(c, Some(&cpf)).map_err(Fail::Usage)?;
            let a = c.call::<UserView>(ApiCall::user(cpf.as_str())).await?;
            print_answer(ctx, &a, |u| render_user(u, &here));
        }
        Cmd::Account(AccountCmd::Open { kind, holders }) => {
            let keys = holders.iter().map(|h| ctx.keys.of(h)).collect::<Result<Vec<_>, _>>().map_err(Fail::Usage)?;
            let signed: Vec<(Cpf, &UserKey)> = holders.iter().cloned().zip(keys.iter()).collect();
            let a = c.call::<AccountView>(ApiCall::open_account(&here, kind, &signed, now_ms())).await?;
            print_answer(ctx, &a, |v| {
                format!(
                    "opened {} account {} at bank {}: refer to it as {}/{}\n{}",
                    v.kind,
                    v.key,
                    v.bank,
                    v.bank,
                    v.key,
                    render_account(v)
                )
            });
        }
        Cmd::Account(AccountCmd::Show { key }) => {
            let r = parse_account_ref(&key, Some(&here)).map_err(Fail::Usage)?;
            let c = ctx.keys.reader(&c.at(r.bank), None).map_err(Fail::Usage)?;
            let a = c.call::<AccountView>(ApiCall::account(&r.account)).await?;
            print_answer(ctx, &a, render_account);
        }
        Cmd::Account(AccountCmd::Statement { key, from, limit }) => {
            let r = parse_account_ref(&key, Some(&here)).map_err(Fail::Usage)?;
            let c = ctx.keys.reader(&c.at(r.bank), None).map_err(Fail::Usage)?;
            let a = c.call::<consortium_core::domain::journal::Statement>(ApiCall::statement(&r.account, from, limit)).await?;
            print_answer(ctx, &a, render_statement);
        }
        Cmd::Accounts { cpf } => {
            let c = ctx.keys.reader(c, Some(&cpf)).map_err(Fail::Usage)?;
            let a = c.call::<AccountList>(ApiCall::accounts_of(cpf.as_str())).await?;
            print_answer(ctx, &a, |l| {
                if l.accounts.is_empty() {
                    format!("CPF {} has no account at bank {here}", cpf.formatted())
                } else {
                    render_accounts(&l.accounts)
                }
            });
        }
        Cmd::ConsortiumAccounts { cpf } => {
            let c = ctx.keys.reader(c, Some(&cpf)).map_err(Fail::Usage)?;
            let a = c.call::<ConsortiumAccounts>(ApiCall::consortium_accounts(cpf.as_str())).await?;
            print_answer(ctx, &a, |v| render_consortium(v, &cpf));
            let missing: Vec<&str> = a.value.banks.iter().filter(|b| !b.reachable).map(|b| b.bank.as_str()).collect();
            if ctx.json && !missing.is_empty() {
                eprintln!("warning: unreachable banks, their accounts are not listed: {}", missing.join(", "));
            }
        }
        Cmd::Deposit { to, amount, id } => {
            let to = parse_account_ref(&to, Some(&here)).map_err(Fail::Usage)?;
            let op = Operation { kind: OpKind::Deposit, from: None, to: Some(to), amount };
            return package_command(ctx, vec![op], id.id, None).await;
        }
        Cmd::Withdraw { from, amount, id } => {
            let from = parse_account_ref(&from, Some(&here)).map_err(Fail::Usage)?;
            let op = Operation { kind: OpKind::Withdraw, from: Some(from), to: None, amount };
            return package_command(ctx, vec![op], id.id, None).await;
        }
        Cmd::Transfer { from, to, amount, id } => {
            let from = parse_account_ref(&from, Some(&here)).map_err(Fail::Usage)?;
            let to = parse_account_ref(&to, Some(&here)).map_err(Fail::Usage)?;
            let op = Operation { kind: OpKind::Transfer, from: Some(from), to: Some(to), amount };
            return package_command(ctx, vec![op], id.id, None).await;
        }
        Cmd::Package { ops, file, id } => {
            let (operations, file_id) = match file {
                Some(path) => {
                    let text = if path.as_os_str() == "-" {
                        io::read_to_string(io::stdin()).map_err(|e| Fail::Usage(format!("cannot read standard input: {e}")))?
                    } else {
                        std::fs::read_to_string(&path).map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?
                    };
                    let f = parse_ops_file(&text, OpsFormat::for_path(&path), Some(&here))
                        .map_err(|e| Fail::Usage(format!("{}: {e}", path.display())))?;
                    (f.operations, f.id)
                }
                None => {
                    let ops = ops
                        .iter()
                        .enumerate()
                        .map(|(i, s)| parse_op(s, Some(&here)).map_err(|e| format!("--op number {}: {e}", i + 1)))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(Fail::Usage)?;
                    (ops, None)
                }
            };
            return package_command(ctx, operations, id.id, file_id).await;
        }
        Cmd::PackageStatus { id, wait } => {
            let c = &ctx.keys.reader(c, None).map_err(Fail::Usage)?;
            let a = if wait {
                c.wait_for_package_answer(&id, ctx.timeout).await?
            } else {
                c.call::<PackageView>(ApiCall::package(&id)).await?
            };
            print_answer(ctx, &a, |v| render_package(v, None));
            if a.value.status == Status::Aborted {
                return Err(Fail::Aborted);
            }
            if a.value.status == Status::Pending && wait {
                eprintln!("package {id} is still pending after {}", fmt_duration(ctx.timeout));
                return Err(Fail::Pending);
            }
        }
        Cmd::Status => {
            let a = c.call::<StatusView>(ApiCall::status()).await?;
            print_answer(ctx, &a, render_status);
        }
        Cmd::Admin(cmd) => admin(ctx, cmd).await?,
        Cmd::Shell => unreachable!("the shell is run by main"),
    }
    Ok(())
}

/// `bank admin ...`: the bank's operator, with its teller key.
async fn admin(ctx: &Ctx, cmd: AdminCmd) -> Result<(), Fail> {
    if !ctx.keys.as_teller {
        return Err(Fail::Usage("the admin commands are the bank's operator's: sign them with its teller key (--as-teller, and --teller-key FILE)".into()));
    }
    let c = ctx.keys.reader(&ctx.client, None).map_err(Fail::Usage)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match cmd {
        AdminCmd::InDoubt => print_answer(ctx, &c.call::<serde_json::Value>(ApiCall::admin("in-doubt")).await?, pretty),
        AdminCmd::Fingerprints => print_answer(ctx, &c.call::<serde_json::Value>(ApiCall::admin("fingerprints")).await?, pretty),
        AdminCmd::Reconcile => print_answer(ctx, &c.call::<serde_json::Value>(ApiCall::admin("reconcile")).await?, pretty),
        AdminCmd::Statement { account, from, limit } => {
            // Page by page (the bank answers at most 500 entries at once) into one export.
            let mut export = consortium_core::domain::journal::Export::new(&account, from, limit);
            while let Some((at, n)) = export.next() {
                export.add(c.call(ApiCall::admin_statement(&account, at, n)).await?.value);
            }
            println!("{}", serde_json::to_string_pretty(&export.statement).unwrap_or_default());
        }
        AdminCmd::Backup { out } => {
            if out.exists() {
                return Err(Fail::Usage(format!("{} exists already; the backup writes a new file", out.display())));
            }
            let (_, bytes) = c.call_bytes(ApiCall::admin("backup")).await?;
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, &bytes)
                .and_then(|_| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
                .and_then(|_| std::fs::rename(&tmp, &out))
                .map_err(|e| Fail::Usage(format!("cannot write {}: {e}", out.display())))?;
            say(&format!("wrote {} ({} bytes): a consistent copy of {}'s database", out.display(), bytes.len(), c.bank()));
        }
    }
    Ok(())
}

/// The key file of `cpf` (the --key-file when it is the acting user's), which must exist.
fn key_file_of(ctx: &Ctx, cpf: &Cpf) -> Result<PathBuf, Fail> {
    let path = ctx.keys.key_file.clone().filter(|_| ctx.keys.user.as_ref().is_none_or(|u| u == cpf)).unwrap_or_else(|| ctx.keys.store.path(cpf));
    match path.exists() {
        true => Ok(path),
        false if ctx.keys.key_file.is_none() => Err(Fail::Usage(ctx.keys.store.load(cpf).err().unwrap_or_default())),
        false => Err(Fail::Usage(format!("no key file {}", path.display()))),
    }
}

/// Chooses the package id: `--id`, else the file's, else a new one (and says so).
pub(crate) fn choose_id(flag: Option<String>, from_file: Option<String>) -> Result<(String, bool), String> {
    match (flag, from_file) {
        (Some(a), Some(b)) if a != b => Err(format!("--id {a} differs from the id {b} in the file: give one of them")),
        (Some(a), _) | (None, Some(a)) => Ok((a, false)),
        (None, None) => Ok((new_package_id(), true)),
    }
}

pub(crate) async fn package_command(ctx: &Ctx, operations: Vec<Operation>, id: Option<String>, file_id: Option<String>) -> Result<(), Fail> {
    let (id, generated) = choose_id(id, file_id).map_err(Fail::Usage)?;
    let mut package = build_package(id.clone(), operations).map_err(Fail::Usage)?;
    let bank = ctx.client.bank().to_string();
    ctx.keys.sign(&mut package, &bank).map_err(Fail::Usage)?;
    if !ctx.json {
        let note = if generated { format!(" (new id; to retry safely, re-run with --id {id})") } else { String::new() };
        eprintln!("sending package {id} to {bank}{note}");
    }
    // Whoever signed it reads its outcome: the acting user, else (a deposit) the teller.
    let client = match &ctx.keys.user {
        Some(_) => ctx.keys.reader(&ctx.client, None),
        None => ctx.keys.teller(&bank).map(|k| ctx.client.reading_as(Reader::Teller, k)),
    }
    .unwrap_or_else(|_| ctx.client.clone());
    let who = match client.reader() {
        Some(Reader::User(u)) => format!(" --user {}", u.as_str()),
        Some(Reader::Teller) => " --as-teller".to_string(),
        None => String::new(),
    };
    let check = format!("bank --bank {bank}{who} package-status --id {id}");
    match submit_and_wait(&client, &package, ctx.timeout).await {
        Ok(a) => {
            print_answer(ctx, &a, |v| render_package(v, Some(&package)));
            match a.value.status {
                Status::Committed => Ok(()),
                Status::Aborted => Err(Fail::Aborted),
                Status::Pending => {
                    eprintln!(
                        "package {id} is still pending after {}: {bank} has it and will execute it when the token comes.\ncheck it with: {check}",
                        fmt_duration(ctx.timeout)
                    );
                    Err(Fail::Pending)
                }
            }
        }
        Err(e) => {
            let hint = match &e {
                ClientError::Timeout { .. } => Some(format!(
                    "the package may still be executed. Check with: {check}\nor re-run with --id {id}: the same id never executes twice"
                )),
                ClientError::Unreachable { .. } => {
                    Some(format!("re-run with --id {id} when the bank answers: the same id never executes twice"))
                }
                _ => None,
            };
            Err(Fail::Client(e, hint))
        }
    }
}

/// Submits a package and waits, up to `budget` in all, for its outcome. Returns the last
/// answer: decided, or still pending.
pub(crate) async fn submit_and_wait(client: &Client, package: &Package, budget: Duration) -> Result<Answer<PackageView>, ClientError> {
    let start = tokio::time::Instant::now();
    let a = client.with_timeout(budget).call::<PackageView>(ApiCall::submit_package(package)).await?;
    if a.value.status != Status::Pending {
        return Ok(a);
    }
    let left = budget.saturating_sub(start.elapsed());
    if left.is_zero() {
        return Ok(a);
    }
    match client.wait_for_package_answer(&package.id, left).await {
        // Accepted but the bank stopped answering: as far as we know, still pending.
        Err(e) if e.is_unreachable() => Ok(a),
        r => r,
    }
}
