//! `bank`: the command-line client of the consortium. One command per action of the client
//! API, plus `shell`, an interactive menu like the original application's.

use clap::{Args, Parser, Subcommand};
use node::api::wire::{AccountList, AccountView, ConsortiumAccounts, PackageView, StatusView, UserView};
use node::client::{
    build_package, describe_op, fmt_duration, new_package_id, parse_account_ref, parse_amount, parse_bank_addr, parse_op, parse_ops_file,
    Answer, ApiCall, Client, ClientError, OpsFormat,
};
use node::domain::{AccountKind, Cents, Cpf};
use node::package::{OpKind, Operation, Package, Status};
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

macro_rules! ref_help {
    () => {
        "Accounts are written BANK/ACCOUNT: BANK is a bank's address (host:port), ACCOUNT the account
key at that bank, e.g. 127.0.0.1:7002/000001. A bare ACCOUNT means an account at the bank given
by --bank. Amounts are written 12.50 (also 12,50 or 12); they travel as integer cents."
    };
}

macro_rules! id_help {
    () => {
        "Every movement of money is a package with an id (idempotency key). Without --id one is
generated and printed. Re-running with the same --id is a safe retry: the bank never executes a
package twice and answers with the outcome it already has. The command waits for the outcome up
to --timeout; if the package is still pending then, check it later with
`bank package-status --id ID`."
    };
}

macro_rules! exit_help {
    () => {
        "Exit codes: 0 done; 1 the bank refused (API error) or the package was aborted; 2 usage error;
3 a bank is unreachable or did not answer; 4 the package is still pending after --timeout.
Errors are printed to stderr as `error: <message> (<code>)`."
    };
}

macro_rules! ops_file_help {
    () => {
        "An operations file holds operations in the API's wire shape:
  JSON: [{\"kind\":\"transfer\",\"from\":{\"bank\":\"127.0.0.1:7001\",\"account\":\"000001\"},
          \"to\":{\"bank\":\"127.0.0.1:7002\",\"account\":\"000003\"},\"amount\":1250}]
        or {\"id\":\"...\",\"operations\":[...]} (the id is optional; --id, if given, must match it)
  TOML: id = \"...\"            # optional
        [[operations]]
        kind = \"deposit\"
        to = { bank = \"127.0.0.1:7001\", account = \"000001\" }
        amount = 500
kind is transfer (from and to), deposit (to) or withdraw (from). A number amount is in cents,
as on the wire (1250 = 12.50); a string amount is read like --amount (\"12.50\"). An account may
also be a string \"BANK/ACCOUNT\". A file named *.toml is TOML; any other is JSON."
    };
}

/// Client of the bank consortium: users, accounts, deposits, withdrawals, transfers and atomic
/// packages of operations across banks.
///
/// Talk to any bank of the consortium with --bank (or BANK_ADDR); it answers for itself and, for
/// packages and consortium-wide lists, coordinates with the others.
#[derive(Parser, Debug)]
#[command(name = "bank", version, after_help = concat!(ref_help!(), "\n\n", exit_help!()))]
struct Cli {
    /// The bank to talk to, host:port. Packages sent to it have it as their origin.
    #[arg(long, global = true, env = "BANK_ADDR", default_value = "127.0.0.1:7001", value_name = "HOST:PORT", value_parser = parse_bank_addr)]
    bank: String,

    /// Print the bank's JSON answer as is, for scripts (errors too, as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    json: bool,

    /// Longest wait for a bank's answer, and for a package's outcome, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    timeout: Duration,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Register a user at the bank, or show one
    #[command(subcommand)]
    User(UserCmd),

    /// Open an account at the bank, or show one
    #[command(subcommand)]
    Account(AccountCmd),

    /// List a user's accounts at this bank (--bank)
    #[command(after_help = ref_help!())]
    Accounts {
        /// The user's CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },

    /// List a user's accounts at every bank of the consortium
    ///
    /// The bank given by --bank asks every other bank; banks that cannot be reached are listed
    /// as such (their accounts are missing from the answer, not zero).
    #[command(after_help = ref_help!())]
    ConsortiumAccounts {
        /// The user's CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },

    /// Deposit money into an account (a package of one operation)
    ///
    /// Example: bank deposit --to 127.0.0.1:7002/000001 --amount 12.50
    #[command(after_help = concat!(ref_help!(), "\n\n", id_help!()))]
    Deposit {
        /// The account that receives the money: BANK/ACCOUNT.
        #[arg(long, value_name = "BANK/ACCOUNT")]
        to: String,
        /// How much, e.g. 12.50.
        #[arg(long, value_parser = parse_amount_arg)]
        amount: Cents,
        #[command(flatten)]
        id: IdArg,
    },

    /// Withdraw money from an account (a package of one operation)
    ///
    /// Example: bank withdraw --from 127.0.0.1:7001/000001 --amount 5
    #[command(after_help = concat!(ref_help!(), "\n\n", id_help!()))]
    Withdraw {
        /// The account the money leaves: BANK/ACCOUNT.
        #[arg(long, value_name = "BANK/ACCOUNT")]
        from: String,
        /// How much, e.g. 12.50.
        #[arg(long, value_parser = parse_amount_arg)]
        amount: Cents,
        #[command(flatten)]
        id: IdArg,
    },

    /// Transfer money between two accounts, at the same bank or at two banks
    ///
    /// Example: bank transfer --from 127.0.0.1:7001/000001 --to 127.0.0.1:7002/000004 --amount 12.50
    #[command(after_help = concat!(ref_help!(), "\n\n", id_help!()))]
    Transfer {
        /// The account the money leaves: BANK/ACCOUNT.
        #[arg(long, value_name = "BANK/ACCOUNT")]
        from: String,
        /// The account that receives it: BANK/ACCOUNT.
        #[arg(long, value_name = "BANK/ACCOUNT")]
        to: String,
        /// How much, e.g. 12.50.
        #[arg(long, value_parser = parse_amount_arg)]
        amount: Cents,
        #[command(flatten)]
        id: IdArg,
    },

    /// Submit an atomic package of operations: all of them happen, or none does
    ///
    /// Operations come from repeated --op, or from --file. Examples:
    ///
    ///   bank package --op "transfer 127.0.0.1:7001/000001 127.0.0.1:7002/000002 12.50" --op "withdraw 127.0.0.1:7003/000001 5"
    ///
    ///   bank package --file ops.toml --id rent-2024-06
    ///
    /// If one operation fails (e.g. insufficient funds), the package is aborted, nothing moves,
    /// and the answer says, per operation, why.
    #[command(after_help = concat!(ref_help!(), "\n\n", id_help!(), "\n\n", ops_file_help!()))]
    Package {
        /// One operation: "transfer FROM TO AMOUNT", "deposit TO AMOUNT" or "withdraw FROM AMOUNT",
        /// accounts as BANK/ACCOUNT. Repeat for more operations (in order).
        #[arg(long = "op", value_name = "OP", required_unless_present = "file", conflicts_with = "file")]
        ops: Vec<String>,
        /// Read the operations from a JSON or TOML file (- for JSON on standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        id: IdArg,
    },

    /// Show a package's status (pending, committed, aborted) and its per-operation results
    ///
    /// Ask the bank the package was submitted to (its origin): only it keeps the record.
    PackageStatus {
        /// The package id.
        #[arg(long)]
        id: String,
        /// Wait, up to --timeout, until the package is decided.
        #[arg(long)]
        wait: bool,
    },

    /// Show the bank's state: peers online, token, queue, counters
    Status,

    /// Interactive menu: register, log in with CPF and bank, open accounts, list them, deposit,
    /// withdraw, transfer
    ///
    /// Reads one answer per line from standard input, so it can also be scripted:
    ///
    ///   printf '2\n529.982.247-25\n\n4\n0\n' | bank shell
    ///
    /// Invalid answers (bad CPF, bad amount) are asked again; `back` returns to the menu;
    /// `0`, `q` or end of input quits. --json does not apply here.
    #[command(after_help = ref_help!())]
    Shell,
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Register a user (a person, by CPF) at the bank
    ///
    /// A user must be registered at a bank before holding an account there.
    Register {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
        /// The person's name.
        #[arg(long)]
        name: String,
    },
    /// Show a user registered at the bank
    Show {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// Open an account at the bank
    ///
    /// personal: exactly one holder (at most one personal account per user and bank);
    /// joint: two or more holders; business: one or more. Every holder must be a registered
    /// user of this bank. The answer gives the account key: refer to the account as BANK/KEY.
    ///
    /// Example: bank account open --kind joint --holder 52998224725 --holder 11144477735
    Open {
        /// personal, joint or business.
        #[arg(long, value_parser = parse_kind)]
        kind: AccountKind,
        /// A holder's CPF; repeat for more holders.
        #[arg(long = "holder", value_name = "CPF", required = true, value_parser = parse_cpf)]
        holders: Vec<Cpf>,
    },
    /// Show an account of the bank: holders, balance, blocked and held money
    ///
    /// balance is what can be spent; blocked is money arriving from packages not yet committed;
    /// held is money leaving in packages not yet committed (already out of balance).
    #[command(after_help = ref_help!())]
    Show {
        /// The account key at --bank (or BANK/ACCOUNT, which then talks to that bank).
        #[arg(long, value_name = "ACCOUNT")]
        key: String,
    },
}

#[derive(Args, Debug, Clone)]
struct IdArg {
    /// Package id (idempotency key): letters, digits and - _ . : (at most 128). Generated if
    /// absent. Re-running with the same id never executes the package twice.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

fn parse_cpf(s: &str) -> Result<Cpf, String> {
    Cpf::parse(s).map_err(|e| format!("invalid CPF {:?}: {e}", s.trim()))
}

fn parse_amount_arg(s: &str) -> Result<Cents, String> {
    parse_amount(s)
}

fn parse_kind(s: &str) -> Result<AccountKind, String> {
    s.trim().parse()
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("{s:?} is not a number of seconds (more than 0, at most 86400)")),
    }
}

// ---- running commands ----

/// How a command ended, when not plainly well.
enum Fail {
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

struct Ctx {
    client: Client,
    json: bool,
    timeout: Duration,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let code = match cli.cmd {
        Cmd::Shell => {
            let client = rt.block_on(async { Client::new(cli.bank.clone(), cli.timeout) });
            let stdin = io::stdin();
            let echo = !stdin.is_terminal();
            let mut input = stdin.lock();
            let (mut out, mut err) = (io::stdout(), io::stderr());
            let mut shell =
                Shell { rt: &rt, client, user: None, input: &mut input, out: &mut out, err: &mut err, echo, budget: cli.timeout };
            shell.run();
            0
        }
        cmd => {
            let ctx =
                Ctx { client: rt.block_on(async { Client::new(cli.bank.clone(), cli.timeout) }), json: cli.json, timeout: cli.timeout };
            match rt.block_on(run(&ctx, cmd)) {
                Ok(()) => 0,
                Err(f) => report(&ctx, f),
            }
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code);
}

/// Prints a failure and gives the exit code.
fn report(ctx: &Ctx, f: Fail) -> i32 {
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
fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
}

fn print_answer<T>(ctx: &Ctx, a: &Answer<T>, human: impl FnOnce(&T) -> String) {
    if ctx.json {
        say(&String::from_utf8_lossy(&a.raw));
    } else {
        say(&human(&a.value));
    }
}

async fn run(ctx: &Ctx, cmd: Cmd) -> Result<(), Fail> {
    let c = &ctx.client;
    let here = c.bank().to_string();
    match cmd {
        Cmd::User(UserCmd::Register { cpf, name }) => {
            let a = c.call::<UserView>(ApiCall::register_user(cpf.as_str(), &name)).await?;
            print_answer(ctx, &a, |u| format!("registered {} ({}) at bank {here}", u.name, u.cpf.formatted()));
        }
        Cmd::User(UserCmd::Show { cpf }) => {
            let a = c.call::<UserView>(ApiCall::user(cpf.as_str())).await?;
            print_answer(ctx, &a, |u| render_user(u, &here));
        }
        Cmd::Account(AccountCmd::Open { kind, holders }) => {
            let holders = holders.iter().map(|h| h.to_string()).collect();
            let a = c.call::<AccountView>(ApiCall::open_account(kind, holders)).await?;
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
            let a = c.at(r.bank).call::<AccountView>(ApiCall::account(&r.account)).await?;
            print_answer(ctx, &a, render_account);
        }
        Cmd::Accounts { cpf } => {
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
        Cmd::Shell => unreachable!("the shell is run by main"),
    }
    Ok(())
}

/// Chooses the package id: `--id`, else the file's, else a new one (and says so).
fn choose_id(flag: Option<String>, from_file: Option<String>) -> Result<(String, bool), String> {
    match (flag, from_file) {
        (Some(a), Some(b)) if a != b => Err(format!("--id {a} differs from the id {b} in the file: give one of them")),
        (Some(a), _) | (None, Some(a)) => Ok((a, false)),
        (None, None) => Ok((new_package_id(), true)),
    }
}

async fn package_command(ctx: &Ctx, operations: Vec<Operation>, id: Option<String>, file_id: Option<String>) -> Result<(), Fail> {
    let (id, generated) = choose_id(id, file_id).map_err(Fail::Usage)?;
    let package = build_package(id.clone(), operations).map_err(Fail::Usage)?;
    let bank = ctx.client.bank().to_string();
    if !ctx.json {
        let note = if generated { format!(" (new id; to retry safely, re-run with --id {id})") } else { String::new() };
        eprintln!("sending package {id} to {bank}{note}");
    }
    let check = format!("bank --bank {bank} package-status --id {id}");
    match submit_and_wait(&ctx.client, &package, ctx.timeout).await {
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
async fn submit_and_wait(client: &Client, package: &Package, budget: Duration) -> Result<Answer<PackageView>, ClientError> {
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

// ---- human output ----

/// Aligns columns; `right[i]` right-aligns column i (amounts).
fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let n = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            let last = i + 1 == n;
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if !last {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn holders(v: &AccountView) -> String {
    v.holders.iter().map(Cpf::formatted).collect::<Vec<_>>().join(", ")
}

fn account_row(v: &AccountView) -> Vec<String> {
    vec![
        format!("{}/{}", v.bank, v.key),
        v.kind.to_string(),
        holders(v),
        Cents(v.balance).to_string(),
        Cents(v.blocked).to_string(),
        Cents(v.held).to_string(),
    ]
}

const ACCOUNT_HEADERS: [&str; 6] = ["ACCOUNT", "KIND", "HOLDERS", "BALANCE", "BLOCKED", "HELD"];
const ACCOUNT_RIGHT: [bool; 6] = [false, false, false, true, true, true];

fn render_accounts(accounts: &[AccountView]) -> String {
    let rows: Vec<Vec<String>> = accounts.iter().map(account_row).collect();
    table(&ACCOUNT_HEADERS, &rows, &ACCOUNT_RIGHT)
}

fn render_account(v: &AccountView) -> String {
    let rows: [[String; 2]; 6] = [
        ["account".into(), format!("{}/{}", v.bank, v.key)],
        ["kind".into(), v.kind.to_string()],
        ["holders".into(), holders(v)],
        ["balance".into(), Cents(v.balance).to_string()],
        ["blocked".into(), format!("{} (arriving, not yet committed)", Cents(v.blocked))],
        ["held".into(), format!("{} (leaving, not yet committed)", Cents(v.held))],
    ];
    rows.iter().map(|r| format!("{:<8} {}", r[0], r[1])).collect::<Vec<_>>().join("\n")
}

fn render_user(u: &UserView, bank: &str) -> String {
    format!("cpf   {}\nname  {}\nbank  {bank}", u.cpf.formatted(), u.name)
}

fn render_consortium(c: &ConsortiumAccounts, cpf: &Cpf) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut total: u128 = 0;
    let mut count = 0;
    for b in &c.banks {
        if !b.reachable {
            let why = b.error.as_deref().unwrap_or("no answer");
            notes.push(format!("UNREACHABLE  {}: {why}; its accounts are not listed", b.bank));
            continue;
        }
        if let Some(e) = &b.error {
            notes.push(format!("ERROR        {}: {e}; its accounts are not listed", b.bank));
        }
        for a in &b.accounts {
            total += a.balance as u128;
            count += 1;
            rows.push(account_row(a));
        }
    }
    let mut out = if rows.is_empty() {
        format!("CPF {} has no account at the banks that answered", cpf.formatted())
    } else {
        let total = u64::try_from(total).map(|t| Cents(t).to_string()).unwrap_or_else(|_| "(too large)".into());
        let reached = c.banks.iter().filter(|b| b.reachable && b.error.is_none()).count();
        format!(
            "{}\n{count} account(s) at {reached} of {} bank(s), total balance {total}",
            table(&ACCOUNT_HEADERS, &rows, &ACCOUNT_RIGHT),
            c.banks.len()
        )
    };
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
    }
    out
}

fn render_package(v: &PackageView, package: Option<&Package>) -> String {
    let head = match v.status {
        Status::Committed => format!("package {}: committed", v.id),
        Status::Aborted => format!("package {}: aborted, nothing was moved", v.id),
        Status::Pending => format!("package {}: pending (waiting for the token)", v.id),
    };
    let mut rows = Vec::new();
    if v.results.is_empty() {
        for (i, op) in package.map(|p| p.operations.as_slice()).unwrap_or(&[]).iter().enumerate() {
            rows.push(vec![i.to_string(), "-".into(), describe_op(op)]);
        }
    }
    for r in &v.results {
        let op = package.and_then(|p| p.operations.get(r.index as usize)).map(describe_op);
        let what = match (op, &r.reason) {
            (Some(op), Some(why)) => format!("{op}: {why}"),
            (Some(op), None) => op,
            (None, Some(why)) => why.clone(),
            (None, None) => String::new(),
        };
        rows.push(vec![r.index.to_string(), if r.ok { "ok".into() } else { "failed".into() }, what]);
    }
    if rows.is_empty() {
        return head;
    }
    let body = table(&["OP", "RESULT", "OPERATION"], &rows, &[true, false, false]);
    format!("{head}\n{}", indent(&body))
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

fn render_status(s: &StatusView) -> String {
    let token = match &s.token.epoch {
        None => "no token seen yet".to_string(),
        Some(e) => format!("{}; epoch {e}, hop {}", if s.token.held { "held here" } else { "elsewhere" }, s.token.hop),
    };
    let online = s.peers.iter().filter(|p| p.online).count();
    let mut out = vec![
        format!("bank      {}", s.bank),
        format!("token     {token}"),
        format!("queued    {} package(s) accepted here, not yet decided", s.queued),
        format!("in doubt  {} prepared leg(s) waiting for an outcome", s.in_doubt),
        format!("peers     {online} of {} online", s.peers.len()),
    ];
    let rows: Vec<Vec<String>> =
        s.peers.iter().map(|p| vec![p.bank.clone(), if p.online { "online".into() } else { "OFFLINE".into() }]).collect();
    if !rows.is_empty() {
        out.push(indent(&table(&["BANK", "STATE"], &rows, &[false, false])));
    }
    let k = &s.counters;
    let counters = [
        ("submitted", k.submitted),
        ("committed", k.committed),
        ("aborted", k.aborted),
        ("executed", k.executed),
        ("tokens created", k.tokens_created),
        ("stale tokens dropped", k.stale_dropped),
        ("duplicate tokens dropped", k.duplicates_dropped),
        ("faults", k.faults),
        ("presumed aborts", k.presumed_aborts),
    ];
    out.push("counters".into());
    let mut rows: Vec<Vec<String>> = counters.iter().map(|(n, v)| vec![n.to_string(), v.to_string()]).collect();
    rows.extend(k.refused.iter().map(|(why, n)| vec![format!("refused: {why}"), n.to_string()]));
    out.push(indent(&table(&["EVENT", "COUNT"], &rows, &[false, true])));
    out.join("\n")
}

// ---- the interactive shell ----

/// Why the shell stops reading.
enum Stop {
    Eof,
    Io,
}

type Step<T> = Result<Option<T>, Stop>;

struct Shell<'a> {
    rt: &'a tokio::runtime::Runtime,
    /// The client of the current bank (the logged-in user's, or the one to log in to).
    client: Client,
    user: Option<UserView>,
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// Writes each answer after its prompt (when input is not a terminal), so a scripted
    /// session reads like a typed one.
    echo: bool,
    budget: Duration,
}

const MENU: &str = concat!(
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
    fn run(&mut self) {
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
    fn read(&mut self, prompt: &str) -> Result<String, Stop> {
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
    fn ask<T>(&mut self, question: &str, default: Option<&str>, parse: impl Fn(&str) -> Result<T, String>) -> Step<T> {
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

    fn logged_in(&mut self, action: impl FnOnce(&mut Self) -> Result<(), Stop>) -> Result<(), Stop> {
        if self.user.is_none() {
            let _ = writeln!(self.err, "log in first (option 2), or register (option 1)");
            return Ok(());
        }
        action(self)
    }

    fn me(&self) -> &UserView {
        self.user.as_ref().expect("logged in")
    }

    fn fail(&mut self, e: &ClientError) {
        let _ = writeln!(self.err, "error: {e}");
    }

    fn register(&mut self) -> Result<(), Stop> {
        let Some(cpf) = self.ask("CPF", None, parse_cpf)? else { return Ok(()) };
        let Some(name) = self.ask("name", None, |s| Ok(s.to_string()))? else { return Ok(()) };
        let here = self.client.bank().to_string();
        let Some(bank) = self.ask("bank (host:port)", Some(&here), parse_bank_addr)? else { return Ok(()) };
        let client = self.client.at(&bank);
        match self.rt.block_on(client.register_user(cpf.as_str(), &name)) {
            Ok(u) => {
                let _ = writeln!(self.out, "registered {} ({}) at bank {bank}; log in with option 2", u.name, u.cpf.formatted());
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

    fn login(&mut self) -> Result<(), Stop> {
        let Some(cpf) = self.ask("CPF", None, parse_cpf)? else { return Ok(()) };
        let here = self.client.bank().to_string();
        let Some(bank) = self.ask("bank (host:port)", Some(&here), parse_bank_addr)? else { return Ok(()) };
        let client = self.client.at(&bank);
        match self.rt.block_on(client.user(cpf.as_str())) {
            Ok(u) => {
                let _ = writeln!(self.out, "welcome, {} ({}) at bank {bank}", u.name, u.cpf.formatted());
                self.user = Some(u);
                self.client = client;
            }
            Err(e) if e.is_not_found() => {
                let _ = writeln!(self.err, "CPF {} is not a user of bank {bank}: register first (option 1)", cpf.formatted());
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    fn open_account(&mut self) -> Result<(), Stop> {
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
        let client = self.client.clone();
        match self.rt.block_on(client.open_account(kind, &holders)) {
            Ok(v) => {
                let _ =
                    writeln!(self.out, "opened {} account {}: refer to it as {}/{}\n{}", v.kind, v.key, v.bank, v.key, render_account(&v));
            }
            Err(e) => self.fail(&e),
        }
        Ok(())
    }

    fn consortium_accounts(&mut self) -> Result<(), Stop> {
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

    fn ask_account(&mut self, question: &str, not: Option<&node::package::AccountRef>) -> Step<node::package::AccountRef> {
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

    fn single(&mut self, kind: OpKind) -> Result<(), Stop> {
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

    fn transfer_package(&mut self) -> Result<(), Stop> {
        let max = node::package::spec::MAX_OPERATIONS;
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
    fn send(&mut self, ops: Vec<Operation>) {
        let package = match build_package(new_package_id(), ops) {
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

    fn package_status(&mut self) -> Result<(), Stop> {
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

    fn bank_status(&mut self) -> Result<(), Stop> {
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

fn count(s: &str, min: usize, max: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use node::api::wire::{BankAccounts, Counters, PeerView, TokenView};
    use node::package::{AccountRef, OpResult};

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
            ],
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
}
