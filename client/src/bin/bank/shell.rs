//! The interactive menu (`bank shell`).

use crate::args::*;
use crate::commands::*;
use crate::render::*;
use crate::commands::Keys;
use consortium_core::trust::keys::UserKey;
use consortium_core::trust::read::Reader;
use consortium_core::domain::Cpf;
use bank_client::{
    build_package, fmt_duration, new_package_id, parse_account_ref, parse_amount, parse_bank_addr, Client, ClientError,
};
use consortium_core::domain::AccountKind;
use consortium_core::package::{OpKind, Operation, Status};
use consortium_core::wire::UserView;
use std::io::{BufRead, Write};
use std::time::Duration;


/// Why the shell stops reading.
pub(crate) enum Stop {
    Eof,
    Io,
}

pub(crate) type Step<T> = Result<Option<T>, Stop>;

pub(crate) struct Shell<'a> {
    pub(crate) rt: &'a tokio::runtime::Runtime,
    /// The client of the current bank (the logged-in user's, or the one to log in to).
    pub(crate) client: Client,
    pub(crate) user: Option<UserView>,
    /// Where keys come from; `keys.user` is the logged-in user.
    pub(crate) keys: Keys,
    pub(crate) input: &'a mut dyn BufRead,
    pub(crate) out: &'a mut dyn Write,
    pub(crate) err: &'a mut dyn Write,
    /// Writes each answer after its prompt (when input is not a terminal), so a scripted
    /// session reads like a typed one.
    pub(crate) echo: bool,
    pub(crate) budget: Duration,
}

pub(crate) const MENU: &str = concat!(
    "  1  register a user\n",
    "  2  log in (CPF and bank)\n",
    "  3  open an account\n",
    "  4  my accounts in the consortium\n",
    "  5  deposit\n",
    "  6  withdraw\n",
    "  7  transfer package\n",
    "  8  package status\n",
    "  9  bank status\n",
    "  0  quit",
);

impl Shell<'_> {
    pub(crate) fn run(&mut self) {
        let _ = writeln!(self.out, "bank consortium: interactive client (0 or q quits; `back` returns to this menu)");
        loop {
            let who = match &self.user {
                Some(u) => format!("logged in as {} ({}) at bank {}", u.name, u.cpf.formatted(), self.client.bank()),
                None => format!("not logged in; bank {}", self.client.bank()),
            };
            let _ = writeln!(self.out, "\n[{who}]\n{MENU}");
            let choice = match self.read("choice> ") {
                Ok(c) => c,
                Err(_) => break,
            };
            let r = match choice.trim().to_ascii_lowercase().as_str() {
                "0" | "q" | "quit" | "exit" => break,
                "1" => self.register(),
                "2" => self.login(),
                "3" => self.logged_in(Self::open_account),
                "4" => self.logged_in(Self::consortium_accounts),
                "5" => self.logged_in(|s| s.single(OpKind::Deposit)),
                "6" => self.logged_in(|s| s.single(OpKind::Withdraw)),
                "7" => self.logged_in(Self::transfer_package),
                "8" => self.package_status(),
                "9" => self.bank_status(),
                "" => Ok(()),
                other => {
                    let _ = writeln!(self.err, "unknown choice {other:?}: type a number from the menu");
                    Ok(())
                }
            };
            if r.is_err() {
                break;
            }
        }
        let _ = writeln!(self.out, "bye");
        let _ = self.out.flush();
    }

    /// Prints a prompt and reads one line (without its newline).
    pub(crate) fn read(&mut self, prompt: &str) -> Result<String, Stop> {
        let _ = write!(self.out, "{prompt}");
        let _ = self.out.flush();
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) => {
                let _ = writeln!(self.out);
                Err(Stop::Eof)
            }
            Ok(_) => {
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if self.echo {
                    let _ = writeln!(self.out, "{line}");
                }
                Ok(line)
            }
            Err(_) => Err(Stop::Io),
        }
    }

    /// Asks until the answer parses. An empty answer takes `default` if there is one;
    /// `back` gives `None` (return to the menu).
    pub(crate) fn ask<T>(&mut self, question: &str, default: Option<&str>, parse: impl Fn(&str) -> Result<T, String>) -> Step<T> {
        let prompt = match default {
            Some(d) => format!("{question} [{d}]: "),
            None => format!("{question}: "),
        };
        loop {
            let line = self.read(&prompt)?;
            let answer = line.trim();
            if answer.eq_ignore_ascii_case("back") {
                return Ok(None);
            }
            let answer = match (answer.is_empty(), default) {
                (true, Some(d)) => d.to_string(),
                (true, None) => {
                    let _ = writeln!(self.err, "an answer is needed (or `back` for the menu)");
                    continue;
                }
                (false, _) => answer.to_string(),
            };
            match parse(&answer) {
                Ok(v) => return Ok(Some(v)),
                Err(e) => {
                    let _ = writeln!(self.err, "invalid: {e}. Try again (or `back` for the menu).");
                }
            }
        }
    }

    pub(crate) fn logged_in(&mut self, action: impl FnOnce(&mut Self) -> Result<(), Stop>) -> Result<(), Stop> {
        if self.user.is_none() {
            let _ = writeln!(self.err, "log in first (option 2), or register (option 1)");
            return Ok(());
        }
        action(self)
    }

    pub(crate) fn me(&self) -> &UserView {
        self.user.as_ref().expect("logged in")
    }

    pub(crate) fn fail(&mut self, e: &ClientError) {
        let _ = writeln!(self.err, "error: {e}");
    }

    pub(crate) fn register(&mut self) -> Result<(), Stop> {
        let Some(cpf) = self.ask("CPF", None, parse_cpf)? else { return Ok(()) };
        let Some(name) = self.ask("name", None, |s| Ok(s.to_string()))? else { return Ok(()) };
        let here = self.client.bank().to_string();
        let Some(bank) = self.ask("bank (host:port)", Some(&here), parse_bank_addr)? else { return Ok(()) };
        let client = self.client.at(&bank);
        let key = match self.keys.store.load_or_create(&cpf) {
            Ok((k, _)) => k,
            Err(e) => {
                let _ = writeln!(self.err, "error: {e}");
                return Ok(());
            }
        };
        match self.rt.block_on(client.register_user(&cpf, &name, &key)) {
            Ok(u) => {
                let kept = self.keys.store.path(&cpf);
                let _ = writeln!(self.out, "registered {} ({}) at bank {bank}; your key is {}; log in with option 2", u.name, u.cpf.formatted(), kept.display());
            }
            Err(e) => {
                self.fail(&e);
                if e.status() == Some(409) {
                    let _ = writeln!(self.err, "that CPF is already registered at {bank}: log in with option 2");
                }
            }
        }
        Ok(())
    }

    pub(crate) fn login(&mut self) -> Result<(), Stop> {
        let Some(cpf) = self.ask("CPF", None, parse_cpf)? else { return Ok(()) };
        let here = self.client.bank().to_string();
        let Some(bank) = self.ask("bank (host:port)", Some(&here), parse_bank_addr)? else { return Ok(()) };
        let key = match self.keys.of(&cpf) {
            Ok(k) => k,
            Err(e) => {
                let _ = writeln!(self.err, "error: {e}");
                return Ok(());
            }
        };
        // From here on, this user signs the session's reads.
        let client = self.client.at(&bank).reading_as(Reader::User(cpf.clone()), key);
        match self.rt.block_on(client.user(cpf.as_str())) {
            Ok(u) => {
                let _ = writeln!(self.out, "welcome, {} ({}) at bank {bank}", u.name, u.cpf.formatted());
                self.keys.user = Some(u.cpf.clone());
                self.user = Some(u);
                self.client = client;
            }
            Err(e) if e.is_not_found() || e.code() == "unknown_reader" => {
                let _ = writeln!(self.err, "CPF {} is not a user of bank {bank}: register first (option 1)", cpf.formatted());
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    pub(crate) fn open_account(&mut self) -> Result<(), Stop> {
        let kind_of = |s: &str| match s.trim() {
            "1" => Ok(AccountKind::Personal),
            "2" => Ok(AccountKind::Joint),
            "3" => Ok(AccountKind::Business),
            other => other.parse::<AccountKind>(),
        };
        let Some(kind) = self.ask("kind (1 personal, 2 joint, 3 business)", None, kind_of)? else { return Ok(()) };
        let mut holders = vec![self.me().cpf.clone()];
        let others = match kind {
            AccountKind::Personal => 0,
            AccountKind::Joint => {
                let Some(n) = self.ask("how many holders besides you (1 or more)", None, |s| count(s, 1, 15))? else {
                    return Ok(());
                };
                n
            }
            AccountKind::Business => {
                let Some(n) = self.ask("how many holders besides you (0 or more)", Some("0"), |s| count(s, 0, 15))? else {
                    return Ok(());
                };
                n
            }
        };
        for i in 0..others {
            let taken = holders.clone();
            let q = format!("CPF of holder {}", i + 2);
            let Some(cpf) = self.ask(&q, None, |s| {
                let c = parse_cpf(s)?;
                if taken.contains(&c) {
                    return Err(format!("{} is already a holder", c.formatted()));
                }
                Ok(c)
            })?
            else {
                return Ok(());
            };
            holders.push(cpf);
        }
        let keys = match holders.iter().map(|h| self.keys.of(h)).collect::<Result<Vec<_>, _>>() {
            Ok(k) => k,
            Err(e) => {
                let _ = writeln!(self.err, "error: every holder signs the opening, with a key on this machine: {e}");
                return Ok(());
            }
        };
        let signed: Vec<(Cpf, &UserKey)> = holders.iter().cloned().zip(keys.iter()).collect();
        let client = self.client.clone();
        match self.rt.block_on(client.open_account(kind, &signed)) {
            Ok(v) => {
                let _ =
                    writeln!(self.out, "opened {} account {}: refer to it as {}/{}\n{}", v.kind, v.key, v.bank, v.key, render_account(&v));
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    pub(crate) fn consortium_accounts(&mut self) -> Result<(), Stop> {
        let cpf = self.me().cpf.clone();
        let client = self.client.clone();
        match self.rt.block_on(client.consortium_accounts(cpf.as_str())) {
            Ok(c) => {
                let _ = writeln!(self.out, "{}", render_consortium(&c, &cpf));
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    pub(crate) fn ask_account(&mut self, question: &str, not: Option<&consortium_core::package::AccountRef>) -> Step<consortium_core::package::AccountRef> {
        let here = self.client.bank().to_string();
        let q = format!("{question} (key at {here}, or BANK/ACCOUNT)");
        self.ask(&q, None, |s| {
            let r = parse_account_ref(s, Some(&here))?;
            if Some(&r) == not {
                return Err("that is the account the money comes from".into());
            }
            Ok(r)
        })
    }

    pub(crate) fn single(&mut self, kind: OpKind) -> Result<(), Stop> {
        let q = if kind == OpKind::Deposit { "account to deposit into" } else { "account to withdraw from" };
        let Some(r) = self.ask_account(q, None)? else { return Ok(()) };
        let Some(amount) = self.ask("amount (e.g. 12.50)", None, parse_amount)? else { return Ok(()) };
        let op = match kind {
            OpKind::Deposit => Operation { kind, from: None, to: Some(r), amount },
            _ => Operation { kind, from: Some(r), to: None, amount },
        };
        self.send(vec![op]);
        Ok(())
    }

    pub(crate) fn transfer_package(&mut self) -> Result<(), Stop> {
        let max = consortium_core::package::spec::MAX_OPERATIONS;
        let q = format!("how many transfers (1 to {max})");
        let Some(n) = self.ask(&q, None, |s| count(s, 1, max))? else { return Ok(()) };
        let mut ops = Vec::new();
        for i in 0..n {
            let _ = writeln!(self.out, "transfer {} of {n}", i + 1);
            let Some(from) = self.ask_account("  from account", None)? else { return Ok(()) };
            let Some(to) = self.ask_account("  to account", Some(&from))? else { return Ok(()) };
            let Some(amount) = self.ask("  amount (e.g. 12.50)", None, parse_amount)? else { return Ok(()) };
            ops.push(Operation { kind: OpKind::Transfer, from: Some(from), to: Some(to), amount });
        }
        self.send(ops);
        Ok(())
    }

    /// Submits a package of these operations to the current bank and prints the outcome.
    pub(crate) fn send(&mut self, ops: Vec<Operation>) {
        let bank = self.client.bank().to_string();
        let package = match build_package(new_package_id(), ops).and_then(|mut p| self.keys.sign(&mut p, &bank).map(|()| p)) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(self.err, "error: {e}");
                return;
            }
        };
        let id = package.id.clone();
        let _ = writeln!(self.out, "sending package {id} to {} ...", self.client.bank());
        let client = self.client.clone();
        match self.rt.block_on(submit_and_wait(&client, &package, self.budget)) {
            Ok(a) => {
                let _ = writeln!(self.out, "{}", render_package(&a.value, Some(&package)));
                if a.value.status == Status::Pending {
                    let _ = writeln!(self.out, "still pending after {}: check later with option 8, id {id}", fmt_duration(self.budget));
                }
            }
            Err(e) => {
                self.fail(&e);
                if matches!(e, ClientError::Timeout { .. } | ClientError::Unreachable { .. }) {
                    let _ = writeln!(
                        self.err,
                        "the package may or may not have been accepted: check with option 8, id {id}, before sending it again"
                    );
                }
            }
        }
    }

    pub(crate) fn package_status(&mut self) -> Result<(), Stop> {
        let Some(id) = self.ask("package id", None, |s| Ok(s.to_string()))? else { return Ok(()) };
        let client = self.client.clone();
        match self.rt.block_on(client.package(&id)) {
            Ok(v) => {
                let _ = writeln!(self.out, "{}", render_package(&v, None));
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    pub(crate) fn bank_status(&mut self) -> Result<(), Stop> {
        let client = self.client.clone();
        match self.rt.block_on(client.status()) {
            Ok(s) => {
                let _ = writeln!(self.out, "{}", render_status(&s));
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }
}

pub(crate) fn count(s: &str, min: usize, max: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from {min} to {max}")),
    }
}
