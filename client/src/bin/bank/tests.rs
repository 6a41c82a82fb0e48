//! The command line, the rendering and the shell, without a bank.

use crate::args::*;
use crate::commands::*;
use crate::render::*;
use crate::shell::*;
use bank_client::Client;
use consortium_core::domain::{AccountKind, Cents, Cpf};
use consortium_core::package::{OpKind, Operation, Package, Status};
use consortium_core::wire::{AccountView, ConsortiumAccounts, PackageView, StatusView};
use std::io;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use consortium_core::wire::{BankAccounts, Counters, PeerView, TokenView};
use consortium_core::package::{AccountRef, OpResult};

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("bank").chain(args.iter().copied()))
}

#[test]
fn global_options_and_defaults() {
    let c = parse(&["status"]).unwrap();
    // BANK_ADDR may be set where the tests run; only check when it is not.
    if std::env::var_os("BANK_ADDR").is_none() {
        assert_eq!(c.bank, "127.0.0.1:7001");
    }
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert!(!c.json);
    let c = parse(&["accounts", "--cpf", "529.982.247-25", "--bank", "10.0.0.2:7002", "--json", "--timeout", "2.5"]).unwrap();
    assert_eq!(c.bank, "10.0.0.2:7002");
    assert!(c.json);
    assert_eq!(c.timeout, Duration::from_millis(2500));
    assert!(matches!(c.cmd, Cmd::Accounts { ref cpf } if cpf.as_str() == "52998224725"));
}

#[test]
fn usage_errors_are_caught_by_the_parser() {
    use clap::error::ErrorKind;
    let kind = |args: &[&str]| parse(args).unwrap_err().kind();
    assert_eq!(kind(&["user", "show", "--cpf", "52998224724"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["deposit", "--to", "a:1/1", "--amount", "0"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["deposit", "--to", "a:1/1", "--amount", "1.001"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["status", "--bank", "localhost"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["status", "--timeout", "0"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["account", "open", "--kind", "savings", "--holder", "52998224725"]), ErrorKind::ValueValidation);
    assert_eq!(kind(&["account", "open", "--kind", "joint"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(kind(&["package"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(kind(&["package", "--op", "deposit a:1/1 5", "--file", "x.json"]), ErrorKind::ArgumentConflict);
    assert_eq!(parse(&["user", "show", "--cpf", "52998224724"]).unwrap_err().exit_code(), 2);
}

#[test]
fn commands_parse() {
    let c = parse(&["account", "open", "--kind", "joint", "--holder", "52998224725", "--holder", "111.444.777-35"]).unwrap();
    match c.cmd {
        Cmd::Account(AccountCmd::Open { kind, holders }) => {
            assert_eq!(kind, AccountKind::Joint);
            assert_eq!(holders.iter().map(Cpf::as_str).collect::<Vec<_>>(), ["52998224725", "11144477735"]);
        }
        other => panic!("{other:?}"),
    }
    let c = parse(&["transfer", "--from", "a:1/1", "--to", "b:2/2", "--amount", "12,50", "--id", "x-1"]).unwrap();
    match c.cmd {
        Cmd::Transfer { from, to, amount, id } => {
            assert_eq!((from.as_str(), to.as_str(), amount, id.id.as_deref()), ("a:1/1", "b:2/2", Cents(1250), Some("x-1")));
        }
        other => panic!("{other:?}"),
    }
    let c = parse(&["package", "--op", "deposit a:1/1 5", "--op", "withdraw a:1/2 1"]).unwrap();
    assert!(matches!(c.cmd, Cmd::Package { ref ops, file: None, .. } if ops.len() == 2));
    let c = parse(&["package-status", "--id", "p1", "--wait"]).unwrap();
    assert!(matches!(c.cmd, Cmd::PackageStatus { ref id, wait: true } if id == "p1"));
    assert!(matches!(parse(&["consortium-accounts", "--cpf", "52998224725"]).unwrap().cmd, Cmd::ConsortiumAccounts { .. }));
    assert!(matches!(parse(&["shell"]).unwrap().cmd, Cmd::Shell));
}

#[test]
fn every_command_explains_itself() {
    fn walk(cmd: &mut clap::Command, path: String) {
        let help = cmd.render_long_help().to_string();
        assert!(cmd.get_about().is_some() || path == "bank", "{path} has no description");
        let movers = ["bank", "bank deposit", "bank withdraw", "bank transfer", "bank package", "bank account show"];
        if movers.contains(&path.as_str()) {
            assert!(help.contains("BANK/ACCOUNT") && help.contains("host:port"), "{path} does not explain BANK/ACCOUNT:\n{help}");
        }
        for sub in cmd.get_subcommands_mut() {
            let name = format!("{path} {}", sub.get_name());
            walk(sub, name);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    walk(&mut cmd, "bank".into());
}

#[test]
fn ids() {
    assert_eq!(choose_id(Some("a".into()), None).unwrap(), ("a".to_string(), false));
    assert_eq!(choose_id(None, Some("f".into())).unwrap(), ("f".to_string(), false));
    assert_eq!(choose_id(Some("f".into()), Some("f".into())).unwrap(), ("f".to_string(), false));
    assert!(choose_id(Some("a".into()), Some("f".into())).is_err());
    assert!(choose_id(None, None).unwrap().1);
}

fn account(bank: &str, key: &str, balance: u64) -> AccountView {
    AccountView {
        bank: bank.into(),
        key: key.into(),
        kind: AccountKind::Personal,
        holders: vec![Cpf::parse("52998224725").unwrap()],
        balance,
        blocked: 0,
        held: 5,
    }
}

#[test]
fn tables_align() {
    let t = render_accounts(&[account("127.0.0.1:7001", "000001", 1250), account("127.0.0.1:7002", "000010", 100_000)]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "ACCOUNT                KIND      HOLDERS         BALANCE  BLOCKED  HELD");
    assert_eq!(lines[1], "127.0.0.1:7001/000001  personal  529.982.247-25    12.50     0.00  0.05");
    assert_eq!(lines[2], "127.0.0.1:7002/000010  personal  529.982.247-25  1000.00     0.00  0.05");
}

#[test]
fn consortium_shows_unreachable_banks() {
    let c = ConsortiumAccounts {
        banks: vec![
            BankAccounts { bank: "a:1".into(), reachable: true, accounts: vec![account("a:1", "1", 700)], error: None },
            BankAccounts { bank: "b:2".into(), reachable: false, accounts: vec![], error: Some("offline".into()) },
        ],
    };
    let t = render_consortium(&c, &Cpf::parse("52998224725").unwrap());
    assert!(t.contains("1 account(s) at 1 of 2 bank(s), total balance 7.00"), "{t}");
    assert!(t.contains("UNREACHABLE  b:2: offline"), "{t}");
}

#[test]
fn package_outcomes() {
    let pkg = Package {
        id: "p".into(),
        operations: vec![
            Operation {
                kind: OpKind::Transfer,
                from: Some(AccountRef { bank: "a:1".into(), account: "1".into() }),
                to: Some(AccountRef { bank: "b:2".into(), account: "2".into() }),
                amount: Cents(1250),
            },
            Operation {
                kind: OpKind::Deposit,
                from: None,
                to: Some(AccountRef { bank: "a:1".into(), account: "1".into() }),
                amount: Cents(5),
            },
        ], ..Default::default()
    };
    let v = PackageView {
        id: "p".into(),
        status: Status::Aborted,
        results: vec![
            OpResult { index: 0, ok: false, reason: Some("insufficient funds".into()) },
            OpResult { index: 1, ok: false, reason: Some("rolled back".into()) },
        ],
        decision: None,
    };
    let t = render_package(&v, Some(&pkg));
    assert_eq!(
        t,
        "package p: aborted, nothing was moved\n  \
         OP  RESULT  OPERATION\n   \
         0  failed  transfer 12.50 from a:1/1 to b:2/2: insufficient funds\n   \
         1  failed  deposit 0.05 to a:1/1: rolled back"
    );
    let pending = PackageView { id: "p".into(), status: Status::Pending, results: vec![], decision: None };
    assert!(render_package(&pending, None).contains("pending"));
    assert!(render_package(&pending, Some(&pkg)).contains("   1  -       deposit 0.05 to a:1/1"));
}

#[test]
fn status_is_readable() {
    let s = StatusView {
        bank: "a:1".into(),
        peers: vec![PeerView { bank: "b:2".into(), online: true }, PeerView { bank: "c:3".into(), online: false }],
        token: TokenView { epoch: Some("2@a:1".into()), held: false, hop: 17 },
        queued: 1,
        in_doubt: 0,
        counters: Counters { committed: 3, ..Default::default() },
    };
    let t = render_status(&s);
    assert!(t.contains("token     elsewhere; epoch 2@a:1, hop 17"), "{t}");
    assert!(t.contains("peers     1 of 2 online"), "{t}");
    assert!(t.contains("  c:3   OFFLINE"), "{t}");
    let committed = t.lines().find(|l| l.trim_start().starts_with("committed")).unwrap();
    assert!(committed.ends_with(" 3") && committed.len() == t.lines().find(|l| l.contains("COUNT")).unwrap().len(), "{t}");
}

/// Runs the shell on scripted input against a bank that is not there.
fn shell(input: &str) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    let client = rt.block_on(async { Client::new("127.0.0.1:9", Duration::from_secs(2)) });
    let mut input = io::Cursor::new(input.as_bytes().to_vec());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut s = Shell {
        rt: &rt,
        client,
        user: None,
        keys: Keys { store: bank_client::keys::KeyStore { dir: std::env::temp_dir().join("bank-shell-test-keys") }, user: None, key_file: None, teller_file: None, as_teller: false, valid_for: Duration::from_secs(60) },
        input: &mut input,
        out: &mut out,
        err: &mut err,
        echo: true,
        budget: Duration::from_secs(2),
    };
    s.run();
    (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn shell_quits_on_zero_q_and_eof() {
    for input in ["0\n", "q\n", "", "7\n"] {
        let (out, _) = shell(input);
        assert!(out.trim_end().ends_with("bye"), "{input:?}: {out}");
    }
}

#[test]
fn shell_reasks_invalid_input() {
    // Logging in loads the user's key (it signs the session's reads): this user has one.
    let store = bank_client::keys::KeyStore { dir: std::env::temp_dir().join("bank-shell-test-keys") };
    store.load_or_create(&Cpf::parse("529.982.247-25").unwrap()).unwrap();
    let (out, err) = shell("42\n5\n2\n123\n529.982.247-24\n\n529.982.247-25\nlocalhost\n127.0.0.1:9\n0\n");
    assert!(err.contains("unknown choice \"42\""), "{err}");
    assert!(err.contains("log in first"), "{err}");
    assert!(err.contains("invalid: invalid CPF \"123\""), "{err}");
    assert!(err.contains("check digits"), "{err}");
    assert!(err.contains("an answer is needed"), "{err}");
    assert!(err.contains("has no port"), "{err}");
    assert!(err.contains("error: cannot reach bank 127.0.0.1:9"), "{err}");
    assert!(out.contains("CPF: 529.982.247-25"), "answers are echoed: {out}");
    assert!(out.contains("[not logged in; bank 127.0.0.1:9]"), "{out}");
}

#[test]
fn shell_back_returns_to_the_menu() {
    let (out, err) = shell("1\n52998224725\nback\n0\n");
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.matches("choice> ").count(), 2, "{out}");
    assert!(out.contains("]\n  1  register a user\n  2  log in"), "the menu is aligned: {out}");
}

#[test]
fn key_files_and_passphrases_parse() {
    let c = parse(&["--key", "/k", "--passphrase-file", "/p", "key", "protect", "--cpf", "52998224725"]).unwrap();
    assert_eq!((c.key.as_deref(), c.passphrase_file.as_deref()), (Some(std::path::Path::new("/k")), Some(std::path::Path::new("/p"))));
    assert!(matches!(c.cmd, Cmd::Key(KeyCmd::Protect { .. })));
    // After the command, --key is still an account's key.
    let c = parse(&["--key", "/k", "account", "show", "--key", "000001"]).unwrap();
    assert!(matches!(c.cmd, Cmd::Account(AccountCmd::Show { ref key }) if key == "000001"));
    assert!(parse(&["--key", "/k", "--key-file", "/j", "status"]).is_err(), "one key file");
    let c = parse(&["user", "register", "--cpf", "52998224725", "--name", "Ana", "--protect"]).unwrap();
    assert!(matches!(c.cmd, Cmd::User(UserCmd::Register { protect: true, .. })));
}
