//! The command line: every command and option, with the help texts.

use bank_client::{
    parse_amount, parse_bank_addr,
};
use consortium_core::domain::{AccountKind, Cents, Cpf};
use std::path::PathBuf;
use std::time::Duration;
use clap::{Args, Parser, Subcommand};

/// Client of the bank consortium: users, accounts, deposits, withdrawals, transfers and atomic
/// packages of operations across banks.
///
/// Talk to any bank of the consortium with --bank (or BANK_ADDR); it answers for itself and, for
/// packages and consortium-wide lists, coordinates with the others.
#[derive(Parser, Debug)]
#[command(name = "bank", version, after_help = concat!(ref_help!(), "\n\n", exit_help!()))]
pub(crate) struct Cli {
    /// The bank to talk to, host:port. Packages sent to it have it as their origin.
    #[arg(long, global = true, env = "BANK_ADDR", default_value = "127.0.0.1:7001", value_name = "HOST:PORT", value_parser = parse_bank_addr)]
    pub(crate) bank: String,

    /// The consortium's CA (PEM): the bank's certificate must be signed by it. Default: the
    /// data/ca.pem that `make run` writes, if it is in the current folder.
    #[arg(long, global = true, env = "BANK_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// Talk plain HTTP, without TLS, to a bank started with --plain-http (development only).
    #[arg(long, global = true, env = "BANK_PLAIN_HTTP", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) plain_http: bool,

    /// Print the bank's JSON answer as is, for scripts (errors too, as {"error":{"code","message"}}).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Longest wait for a bank's answer, and for a package's outcome, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub(crate) timeout: Duration,

    /// The user acting: packages that take money out of an account are signed with this
    /// user's key (from the key folder), as one of the account's holders.
    #[arg(long, global = true, env = "BANK_USER", value_name = "CPF", value_parser = parse_cpf)]
    pub(crate) user: Option<Cpf>,

    /// The user's key file, instead of the key folder's file for --user.
    #[arg(long = "key-file", global = true, env = "BANK_KEY_FILE", value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,

    /// As --key-file, before the command only (after it, `account show --key` is an account).
    #[arg(long = "key", value_name = "FILE", conflicts_with = "key_file")]
    pub(crate) key: Option<PathBuf>,

    /// The passphrase of a protected key file, in the first line of FILE (else
    /// BANK_PASSPHRASE, else it is asked on the terminal).
    #[arg(long, global = true, env = "BANK_PASSPHRASE_FILE", value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,

    /// The folder of the users' keys (one file per CPF, made by `user register`). Default:
    /// $XDG_DATA_HOME/bank/keys, else ~/.local/share/bank/keys.
    #[arg(long, global = true, env = "BANK_KEYS", value_name = "DIR")]
    pub(crate) keys: Option<PathBuf>,

    /// A teller's key file (from `node teller-key`), to sign cash deposits. Default: the
    /// file `make run` leaves for the deposit's bank, data/tellers/HOST_PORT.key.
    #[arg(long, global = true, env = "BANK_TELLER_KEY", value_name = "FILE")]
    pub(crate) teller_key: Option<PathBuf>,

    /// Read as the bank's teller (with the key --teller-key names, or the file `make run`
    /// leaves): a bank's operator reads its own books. Otherwise reads are signed by the user
    /// read (--cpf) or acting (--user): only a user, or a holder, reads their data.
    #[arg(long, global = true)]
    pub(crate) as_teller: bool,

    /// How long a package stays valid once signed, in seconds (at most a day).
    #[arg(long, global = true, value_name = "SECS", default_value = "3600", value_parser = parse_secs)]
    pub(crate) valid_for: Duration,

    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Register a user at the bank, or show one
    #[command(subcommand)]
    User(UserCmd),

    /// A user's key on this machine: show where it is and its public key, or export it
    ///
    /// `user register` makes the key (one file per CPF in the key folder, readable by the
    /// user only). Money leaves an account only with a holder's signature, so keep the key
    /// file safe; to use it on another machine, copy it there with `key export`.
    #[command(subcommand)]
    Key(KeyCmd),

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

    /// (operator) The bank's operator tools, signed with its teller key (--as-teller)
    ///
    /// The same operations as `node admin` on a stopped bank, on a running one.
    #[command(subcommand)]
    Admin(AdminCmd),

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
pub(crate) enum AdminCmd {
    /// Packages with legs prepared at the bank whose outcome it has not learned: origin,
    /// package id, age (the bank's clock), the legs
    InDoubt,
    /// Download a consistent copy of the bank's database, made now while it runs
    Backup {
        /// Where the copy goes (a new file; never over an existing one).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The manifest's hash and the fingerprints of every bank's key and of the bank's
    /// tellers' keys: compare them across banks
    Fingerprints,
    /// A restored bank's reconciliation: done or not, who answered, what it cannot know
    Reconcile,
    /// Export any account's statement at the bank (every committed movement of its money,
    /// from --from on; all of them unless --limit), as JSON
    Statement {
        /// The account's key at the bank.
        #[arg(long, value_name = "KEY")]
        account: String,
        /// The first entry (1 = the account's first).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        from: u64,
        /// At most this many entries (default: all).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCmd {
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
        /// An operator's approval (from `user approve`), where the bank requires one.
        #[arg(long, value_name = "HEX")]
        approval: Option<String>,
        /// Protect the new key file with a passphrase (asked twice; implied by
        /// --passphrase-file or BANK_PASSPHRASE).
        #[arg(long)]
        protect: bool,
    },
    /// Show a user registered at the bank
    Show {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// (operator) Approve a person's registration at the bank, after checking their
    /// identity at the counter: prints the approval for their `user register --approval`.
    /// Signed with the bank's teller key (--teller-key).
    Approve {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
        /// The person's public key, as `bank key show` (or `key new`) prints it.
        #[arg(long, value_name = "HEX")]
        public_key: String,
    },
    /// (operator) Replace a user's lost key at this bank only, after checking their identity
    /// at the counter. Signed with the bank's teller key (--teller-key); other banks keep the
    /// key they hold until their own operator resets it.
    Reset {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
        /// The user's new public key, as `bank key new` printed it.
        #[arg(long, value_name = "HEX")]
        public_key: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeyCmd {
    /// The key file and the public key of a user (what the banks registered)
    Show {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// Make a key for a user whose key file was lost (or a new user), and print its public
    /// key: for the operator's `user reset` (or `user approve`). Keeps an existing key.
    New {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// Replace the user's key: a new key, announced to the bank (--bank) with a statement
    /// signed by the current one; the bank passes it on to the others it reaches. The
    /// previous key file is kept as CPF.key.before-N.
    Rotate {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// Protect the user's key file with a passphrase (asked twice, or --passphrase-file,
    /// or BANK_PASSPHRASE): the file then holds the key sealed under it (Argon2id,
    /// ChaCha20-Poly1305), and every command that signs needs the passphrase.
    Protect {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// Write the user's protected key file back without a passphrase.
    Unprotect {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
    /// Print the private key (64 hex digits) to standard output, to copy it to another
    /// machine's key folder as CPF.key. Whoever has it can move the user's money.
    Export {
        /// The CPF (12345678909 or 123.456.789-09).
        #[arg(long, value_parser = parse_cpf)]
        cpf: Cpf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AccountCmd {
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
    /// Show an account's statement: every committed movement of its money, oldest first
    ///
    /// Entries are numbered from 1; each shows when the bank applied it, the amount in or
    /// out, the package and operation that moved it, and the total (balance + held) after.
    /// A page at a time: --from and --limit (at most 500); the answer says where the next
    /// page starts. For a holder of the account (--as).
    #[command(after_help = ref_help!())]
    Statement {
        /// The account key at --bank (or BANK/ACCOUNT, which then talks to that bank).
        #[arg(long, value_name = "ACCOUNT")]
        key: String,
        /// The first entry to show (1 = the first ever).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most entries to show (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Args, Debug, Clone)]
pub(crate) struct IdArg {
    /// Package id (idempotency key): letters, digits and - _ . : (at most 128). Generated if
    /// absent. Re-running with the same id never executes the package twice.
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
}

pub(crate) fn parse_cpf(s: &str) -> Result<Cpf, String> {
    Cpf::parse(s).map_err(|e| format!("invalid CPF {:?}: {e}", s.trim()))
}

pub(crate) fn parse_amount_arg(s: &str) -> Result<Cents, String> {
    parse_amount(s)
}

pub(crate) fn parse_kind(s: &str) -> Result<AccountKind, String> {
    s.trim().parse()
}

pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("{s:?} is not a number of seconds (more than 0, at most 86400)")),
    }
}
