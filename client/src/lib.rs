//! The client side of the API: a typed HTTP client for one bank, and the parsing of what a
//! person types (account references, amounts, operations, operation files).
//!
//! The client is plain async code over a `Transport`, so the same calls work against a real
//! bank (`Client::new`, hyper over TCP) and inside the simulator (`Client::with_transport`).
//! Everything a bank can answer maps to a `ClientError` that says whose fault it was: the bank
//! refused (an API error), the bank could not be reached or did not answer in time, or the
//! answer was not understood.

pub mod keys;
pub mod tls;

use consortium_core::wire::{AccountList, AccountView, ConsortiumAccounts, NewAccount, NewUser, PackageView, StatusView, UserView};
use consortium_core::domain::{AccountKind, Cents, Cpf};
use consortium_core::trust::keys::{KeyPair, UserKey};
use consortium_core::trust::read::{self, ReadStatement, Reader};
use consortium_core::trust::user;
use consortium_core::wire::HolderSignature;
use consortium_core::error::ErrorBody;
use consortium_net::{tcp_transport, Call, NetError, Transport};
use consortium_core::package::{AccountRef, OpKind, Operation, Package, Status};
use bytes::Bytes;
use hyper::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

// ---- errors ----

/// Why a call to a bank did not give the expected answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The bank answered with an API error (`{"error":{"code","message"}}`).
    Api { bank: String, status: u16, code: String, message: String },
    /// The bank could not be reached (connection refused, reset, name not resolved...).
    Unreachable { bank: String, reason: String },
    /// The bank did not answer in time. The request may still have been applied.
    Timeout { bank: String, after: Duration },
    /// The bank answered something this client does not understand.
    BadAnswer { bank: String, status: u16, problem: String },
}

impl ClientError {
    /// A short machine-readable code: the API's own code, or `unreachable`, `timeout`,
    /// `bad_answer`.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Timeout { .. } => "timeout",
            ClientError::BadAnswer { .. } => "bad_answer",
        }
    }

    /// The human message, without the code.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            ClientError::Unreachable { bank, reason } => format!("cannot reach bank {bank}: {reason}"),
            ClientError::Timeout { bank, after } => format!("bank {bank} did not answer within {}", fmt_duration(*after)),
            ClientError::BadAnswer { bank, status, problem } => {
                format!("bank {bank} gave an answer this client does not understand (HTTP {status}): {problem}")
            }
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::BadAnswer { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the bank (or, for a 503, a bank behind it) could not be reached or did not
    /// answer: trying again later may work.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. } | ClientError::Timeout { .. })
            || matches!(self, ClientError::Api { status: 503, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }

    /// The exit code of the `bank` command line for this error: 3 when a bank is unreachable,
    /// 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_unreachable() {
            3
        } else {
            1
        }
    }

    /// The error in the API's JSON shape (for `--json` output).
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody { error: consortium_core::error::ErrorDetail { code: self.code().to_string(), message: self.message() } }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for ClientError {}

/// `1.5s`, `30s`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

// ---- requests and answers ----

/// A successful answer: the decoded value, the HTTP status and the body as received.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    pub status: u16,
    pub value: T,
    pub raw: Bytes,
}

/// One call of the client API: method, path and JSON body. The constructors are the single
/// place where the routes of the contract are spelled out.
#[derive(Clone, Debug)]
pub struct ApiCall {
    pub method: Method,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// What a read of a user's data reads (`trust::read`): the client signs it as its reader.
    pub scope: Option<String>,
}

impl ApiCall {
    fn get(path: String) -> ApiCall {
        ApiCall { method: Method::GET, path, body: None, scope: None }
    }

    /// A read of a user's data, which its reader signs.
    fn read(path: String, scope: Option<String>) -> ApiCall {
        ApiCall { method: Method::GET, path, body: None, scope }
    }

    fn post(path: &str, body: &impl serde::Serialize) -> ApiCall {
        let body = serde_json::to_vec(body).expect("wire types always serialize");
        ApiCall { method: Method::POST, path: path.to_string(), body: Some(body), scope: None }
    }

    /// `POST /users` at `bank`: the user's public key, and its proof (the key's signature of
    /// this registration at this bank).
    pub fn register_user(bank: &str, cpf: &Cpf, name: &str, key: &UserKey, approval: Option<String>) -> ApiCall {
        let public_key = key.public().to_hex();
        let proof = user::sign(key, &user::register_message(bank, cpf, &public_key));
        ApiCall::post("/users", &NewUser { cpf: cpf.as_str().to_string(), name: name.to_string(), public_key, proof, approval })
    }

    /// `POST /users/{cpf}/reset` at `bank`: an operator replaces the key `old_key_hex` (the
    /// one the bank holds) by `new_key_hex`, signed with their teller key.
    pub fn reset_key(bank: &str, cpf: &Cpf, old_key_hex: &str, new_key_hex: &str, operator: &KeyPair) -> ApiCall {
        let sig = user::sign(operator, &user::reset_message(bank, cpf, old_key_hex, new_key_hex));
        ApiCall::post(&format!("/users/{}/reset", cpf.as_str()), &consortium_core::wire::KeyReset { public_key: new_key_hex.to_string(), sig })
    }

    /// `POST /users/{cpf}/key`: a rotation signed by the current key.
    pub fn rotate_key(cpf: &Cpf, rotation: &consortium_core::wire::KeyRotation) -> ApiCall {
        ApiCall::post(&format!("/users/{}/key", cpf.as_str()), rotation)
    }

    /// `GET /users/{cpf}`
    pub fn user(cpf: &str) -> ApiCall {
        ApiCall::read(format!("/users/{}", encode_segment(cpf)), Cpf::parse(cpf).ok().map(|c| read::scope_user(&c)))
    }

    /// `POST /accounts` at `bank`, signed by every holder (their keys) at `now_ms`.
    pub fn open_account(bank: &str, kind: AccountKind, holders: &[(Cpf, &UserKey)], now_ms: u64) -> ApiCall {
        let cpfs: Vec<Cpf> = holders.iter().map(|(c, _)| c.clone()).collect();
        let message = user::open_account_message(bank, kind, &cpfs, now_ms);
        let signatures = holders.iter().map(|(c, k)| HolderSignature { cpf: c.as_str().to_string(), sig: user::sign(k, &message) }).collect();
        ApiCall::post("/accounts", &NewAccount { kind, holders: cpfs.iter().map(|c| c.as_str().to_string()).collect(), time_ms: now_ms, signatures })
    }

    /// `GET /accounts/{key}`
    pub fn account(key: &str) -> ApiCall {
        ApiCall::read(format!("/accounts/{}", encode_segment(key)), Some(read::scope_account(key)))
    }

    /// `GET /accounts/{key}/statement?from=N&limit=M`: a page of the account's statement
    /// (entries from N, 1 = the first; at most M), for a holder.
    pub fn statement(key: &str, from: u64, limit: u32) -> ApiCall {
        ApiCall::read(format!("/accounts/{}/statement?from={from}&limit={limit}", encode_segment(key)), Some(read::scope_statement(key)))
    }

    /// `GET /users/{cpf}/accounts`
    pub fn accounts_of(cpf: &str) -> ApiCall {
        ApiCall::read(format!("/users/{}/accounts", encode_segment(cpf)), Cpf::parse(cpf).ok().map(|c| read::scope_accounts_of(&c)))
    }

    /// `GET /consortium/users/{cpf}/accounts`
    pub fn consortium_accounts(cpf: &str) -> ApiCall {
        ApiCall::read(format!("/consortium/users/{}/accounts", encode_segment(cpf)), Cpf::parse(cpf).ok().map(|c| read::scope_consortium(&c)))
    }

    /// `POST /packages`
    pub fn submit_package(package: &Package) -> ApiCall {
        ApiCall::post("/packages", package)
    }

    /// `GET /packages/{id}`
    pub fn package(id: &str) -> ApiCall {
        ApiCall::read(format!("/packages/{}", encode_segment(id)), Some(read::scope_package(id)))
    }

    /// An operator's route (`/admin/{what}`: in-doubt, backup, fingerprints, reconcile),
    /// signed by the bank's teller as a read (`trust::read::scope_admin`).
    pub fn admin(what: &str) -> ApiCall {
        ApiCall::read(format!("/admin/{}", encode_segment(what)), Some(read::scope_admin(what)))
    }

    /// `GET /admin/statement/{key}?from=N&limit=M`: a page of any account's statement, for
    /// the bank's operator (scope `admin/statement/{key}`).
    pub fn admin_statement(key: &str, from: u64, limit: u32) -> ApiCall {
        ApiCall::read(format!("/admin/statement/{}?from={from}&limit={limit}", encode_segment(key)), Some(read::scope_admin(&format!("statement/{key}"))))
    }

    /// `GET /status`
    pub fn status() -> ApiCall {
        ApiCall::get("/status".to_string())
    }
}

/// Percent-encodes one path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- the client ----

/// A transport's reason, with what it means for the user where that is not obvious.
fn explain(reason: String) -> String {
    // Plain HTTP to a bank that speaks TLS: its TLS alert is not an HTTP answer.
    if reason.contains("invalid HTTP version") {
        return format!("{reason}: the bank speaks TLS, not plain HTTP (leave out --plain-http; give its CA with --ca or BANK_CA)");
    }
    reason
}

/// A client of one bank. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    bank: String,
    timeout: Duration,
    transport: Arc<dyn Transport>,
    /// Who signs this client's reads (a user, or a teller of the bank read), if anyone.
    reader: Option<Arc<(Reader, KeyPair)>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("bank", &self.bank).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the bank at `bank` (`host:port`) over plain TCP. Every call is bounded by
    /// `timeout`. Calls run on tokio (a runtime with I/O and time enabled).
    pub fn new(bank: impl Into<String>, timeout: Duration) -> Client {
        Client::with_transport(bank, timeout, Arc::new(tcp_transport()))
    }

    /// A client over any transport (the simulator's, a test double).
    pub fn with_transport(bank: impl Into<String>, timeout: Duration, transport: Arc<dyn Transport>) -> Client {
        Client { bank: bank.into(), timeout, transport, reader: None }
    }

    /// The same client, talking to another bank (sharing the connection pool).
    pub fn at(&self, bank: impl Into<String>) -> Client {
        Client { bank: bank.into(), ..self.clone() }
    }

    /// The same client with another timeout per call.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client { timeout, ..self.clone() }
    }

    /// The same client, signing its reads of users' data as `reader` with `key`: a user reads
    /// their own data, a teller (with the teller key of the bank read) that bank's books.
    pub fn reading_as(&self, reader: Reader, key: KeyPair) -> Client {
        Client { reader: Some(Arc::new((reader, key))), ..self.clone() }
    }

    /// Who signs this client's reads.
    pub fn reader(&self) -> Option<&Reader> {
        self.reader.as_deref().map(|(r, _)| r)
    }

    pub fn bank(&self) -> &str {
        &self.bank
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Makes one call and decodes a 2xx answer as `T`. A non-2xx answer becomes
    /// `ClientError::Api` when it carries the API's error body.
    pub async fn call<T: DeserializeOwned>(&self, call: ApiCall) -> Result<Answer<T>, ClientError> {
        let (status, body) = self.call_bytes(call).await?;
        match serde_json::from_slice::<T>(&body) {
            Ok(value) => Ok(Answer { status, value, raw: body }),
            Err(e) => Err(ClientError::BadAnswer { bank: self.bank.clone(), status, problem: format!("{e}; body: {}", snippet(&body)) }),
        }
    }

    /// Makes one call and gives a 2xx answer's body as received (a backup's bytes); errors
    /// as `call`.
    pub async fn call_bytes(&self, call: ApiCall) -> Result<(u16, Bytes), ClientError> {
        let bank = self.bank.clone();
        let mut wire = Call::new(call.method, call.path, call.body, self.timeout);
        if let (Some(scope), Some(r)) = (&call.scope, &self.reader) {
            // A statement per request: fresh, with a nonce of its own (a retry is a new one).
            let s = ReadStatement::sign(r.0.clone(), &r.1, &bank, scope, now_ms(), rand::random());
            wire.headers.push((read::HEADER.to_string(), s.to_header()));
        }
        let reply = self.transport.call(&bank, wire).await.map_err(|e| match e {
            NetError::Unreachable(reason) => ClientError::Unreachable { bank: bank.clone(), reason: explain(reason) },
            NetError::Timeout => ClientError::Timeout { bank: bank.clone(), after: self.timeout },
        })?;
        let status = reply.status.as_u16();
        if !reply.status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&reply.body) {
                Ok(b) => ClientError::Api { bank, status, code: b.error.code, message: b.error.message },
                Err(_) => ClientError::BadAnswer { bank, status, problem: unexpected_body(status, &reply.body) },
            });
        }
        Ok((status, reply.body))
    }

    /// Registers a user at this bank (`201`; `409` if the CPF is already registered).
    pub async fn register_user(&self, cpf: &Cpf, name: &str, key: &UserKey) -> Result<UserView, ClientError> {
        Ok(self.call(ApiCall::register_user(&self.bank, cpf, name, key, None)).await?.value)
    }

    pub async fn user(&self, cpf: &str) -> Result<UserView, ClientError> {
        Ok(self.call(ApiCall::user(cpf)).await?.value)
    }

    /// Opens an account at this bank, signed by every holder; each must be a user of this
    /// bank.
    pub async fn open_account(&self, kind: AccountKind, holders: &[(Cpf, &UserKey)]) -> Result<AccountView, ClientError> {
        Ok(self.call(ApiCall::open_account(&self.bank, kind, holders, now_ms())).await?.value)
    }

    pub async fn account(&self, key: &str) -> Result<AccountView, ClientError> {
        Ok(self.call(ApiCall::account(key)).await?.value)
    }

    /// A page of an account's statement (its holders only).
    pub async fn statement(&self, key: &str, from: u64, limit: u32) -> Result<consortium_core::domain::journal::Statement, ClientError> {
        Ok(self.call(ApiCall::statement(key, from, limit)).await?.value)
    }

    /// This bank's accounts of a user.
    pub async fn accounts_of(&self, cpf: &str) -> Result<Vec<AccountView>, ClientError> {
        Ok(self.call::<AccountList>(ApiCall::accounts_of(cpf)).await?.value.accounts)
    }

    /// A user's accounts at every bank of the consortium, as gathered by this bank.
    pub async fn consortium_accounts(&self, cpf: &str) -> Result<ConsortiumAccounts, ClientError> {
        Ok(self.call(ApiCall::consortium_accounts(cpf)).await?.value)
    }

    /// Submits a package. The bank answers 200 with the outcome once decided, or 202 with
    /// status `pending` if it was not decided within the bank's wait. Submitting the same
    /// package (same id, same content) again is safe: it never executes twice.
    pub async fn submit_package(&self, package: &Package) -> Result<(PackageView, u16), ClientError> {
        let a = self.call::<PackageView>(ApiCall::submit_package(package)).await?;
        Ok((a.value, a.status))
    }

    pub async fn package(&self, id: &str) -> Result<PackageView, ClientError> {
        Ok(self.call(ApiCall::package(id)).await?.value)
    }

    pub async fn status(&self) -> Result<StatusView, ClientError> {
        Ok(self.call(ApiCall::status()).await?.value)
    }

    /// Polls `GET /packages/{id}` until the package is decided or `max` has passed; returns the
    /// last view seen (still `pending` if time ran out). Passing unreachability is retried
    /// until `max`; an API error (such as 404, unknown package) ends the wait at once.
    pub async fn wait_for_package(&self, id: &str, max: Duration) -> Result<PackageView, ClientError> {
        Ok(self.wait_for_package_answer(id, max).await?.value)
    }

    /// `wait_for_package`, keeping the last answer as received.
    pub async fn wait_for_package_answer(&self, id: &str, max: Duration) -> Result<Answer<PackageView>, ClientError> {
        let start = tokio::time::Instant::now();
        let deadline = start + max;
        let mut pause = Duration::from_millis(50);
        let mut last: Option<Answer<PackageView>> = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let probe = self.with_timeout(self.timeout.min(left.max(Duration::from_millis(500))));
            let err = match probe.call::<PackageView>(ApiCall::package(id)).await {
                Ok(a) if a.value.status != Status::Pending => return Ok(a),
                Ok(a) => {
                    last = Some(a);
                    None
                }
                Err(e) if e.is_unreachable() => Some(e),
                Err(e) => return Err(e),
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return match (last, err) {
                    (Some(a), _) => Ok(a),
                    (None, Some(e)) => Err(e),
                    (None, None) => unreachable!("a round either answers or fails"),
                };
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.is_empty() {
        return "(empty)".to_string();
    }
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn unexpected_body(status: u16, body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        let hint = if status == 404 { " (is this address a bank of the consortium, running this version?)" } else { "" };
        format!("no error body{hint}")
    } else {
        format!("not an API error body: {}", snippet(body))
    }
}

// ---- package ids ----

/// A fresh package id: the time in milliseconds and 64 random bits, e.g.
/// `p1718000000000-9f86d081884c7d65`. Only for real clients; the simulator makes its own.
pub fn new_package_id() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    package_id_from(ms, rand::random::<u64>())
}

/// The id `new_package_id` makes from a time and a random number (deterministic).
pub fn package_id_from(unix_ms: u64, random: u64) -> String {
    format!("p{unix_ms}-{random:016x}")
}

// ---- parsing what people type ----

/// Syntax of an account reference, for help texts and error messages.
pub const ACCOUNT_REF_SYNTAX: &str = "BANK/ACCOUNT (BANK is host:port, ACCOUNT the account key)";

/// Checks a bank address: `host:port` (IPv6 as `[::1]:7001`), nothing else.
pub fn parse_bank_addr(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("a bank address is host:port, got nothing".into());
    }
    if s.contains("://") {
        return Err(format!("{s:?}: write a bank as host:port, without a scheme such as http://"));
    }
    if s.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("{s:?} is not a bank address (host:port)"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port: a bank address is host:port, e.g. 127.0.0.1:7001"));
    };
    if host.is_empty() {
        return Err(format!("{s:?} has no host: a bank address is host:port"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("{s:?}: write an IPv6 bank address in brackets, e.g. [::1]:7001"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("{s:?}: {port:?} is not a port (1 to 65535)")),
    }
}

/// Checks an account key as the banks accept it.
pub fn parse_account_key(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the account key is empty".into());
    }
    if s.len() > 64 {
        return Err(format!("account keys are at most 64 bytes long, {s:?} has {}", s.len()));
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(format!("{s:?} is not an account key"));
    }
    Ok(s.to_string())
}

/// Parses `BANK/ACCOUNT`, or a bare `ACCOUNT` meaning an account at `default_bank` (when
/// given).
pub fn parse_account_ref(s: &str, default_bank: Option<&str>) -> Result<AccountRef, String> {
    let s = s.trim();
    match s.split_once('/') {
        Some((bank, account)) => {
            let bank = parse_bank_addr(bank).map_err(|e| format!("in {s:?}: {e}"))?;
            let account = parse_account_key(account).map_err(|e| format!("in {s:?}: {e}"))?;
            Ok(AccountRef { bank, account })
        }
        None => match default_bank {
            Some(bank) if !s.is_empty() => Ok(AccountRef { bank: bank.to_string(), account: parse_account_key(s)? }),
            _ => Err(format!("{s:?} is not an account reference: expected {ACCOUNT_REF_SYNTAX}")),
        },
    }
}

/// Parses an amount a person types (`12`, `12.5`, `12.50`, `12,50`): positive, at most two
/// decimals.
pub fn parse_amount(s: &str) -> Result<Cents, String> {
    let c = Cents::parse_human(s)?;
    if c.0 == 0 {
        return Err("the amount must be more than 0.00".into());
    }
    Ok(c)
}

/// Syntax of one `--op`, for help texts and error messages.
pub const OP_SYNTAX: &str = "\"transfer FROM TO AMOUNT\", \"deposit TO AMOUNT\" or \"withdraw FROM AMOUNT\"";

/// Parses one operation as typed on the command line:
/// `transfer BANK/ACC BANK/ACC 12.50`, `deposit BANK/ACC 5`, `withdraw BANK/ACC 5`.
pub fn parse_op(s: &str, default_bank: Option<&str>) -> Result<Operation, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Err(format!("empty operation: expected {OP_SYNTAX}"));
    };
    let kind = parse_op_kind(first).map_err(|e| format!("{e}: expected {OP_SYNTAX}"))?;
    let (usage, want) = match kind {
        OpKind::Transfer => ("transfer FROM TO AMOUNT", 4),
        OpKind::Deposit => ("deposit TO AMOUNT", 3),
        OpKind::Withdraw => ("withdraw FROM AMOUNT", 3),
    };
    if words.len() != want {
        return Err(format!("{s:?}: expected \"{usage}\" (accounts as {ACCOUNT_REF_SYNTAX})"));
    }
    let r = |w: &str| parse_account_ref(w, default_bank);
    let amount = parse_amount(words[want - 1]).map_err(|e| format!("{s:?}: {e}"))?;
    let (from, to) = match kind {
        OpKind::Transfer => (Some(r(words[1])?), Some(r(words[2])?)),
        OpKind::Deposit => (None, Some(r(words[1])?)),
        OpKind::Withdraw => (Some(r(words[1])?), None),
    };
    Ok(Operation { kind, from, to, amount })
}

fn parse_op_kind(s: &str) -> Result<OpKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "transfer" => Ok(OpKind::Transfer),
        "deposit" => Ok(OpKind::Deposit),
        "withdraw" => Ok(OpKind::Withdraw),
        _ => Err(format!("unknown operation {s:?}")),
    }
}

/// The format of an operations file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsFormat {
    Json,
    Toml,
}

impl OpsFormat {
    /// `.toml` files are TOML; anything else (and `-`, standard input) is JSON.
    pub fn for_path(path: &Path) -> OpsFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => OpsFormat::Toml,
            _ => OpsFormat::Json,
        }
    }
}

/// What an operations file holds: the operations, and maybe the package id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsFile {
    pub id: Option<String>,
    pub operations: Vec<Operation>,
}

/// Parses an operations file: JSON (a list of operations, or `{"id","operations"}`) or TOML
/// (`id` and `[[operations]]`). Operations are in the wire shape, except that an amount may
/// also be a string read like a person types it (`"12.50"`; a number is cents), and an account
/// a string `BANK/ACCOUNT` (or a bare key at `default_bank`).
pub fn parse_ops_file(text: &str, format: OpsFormat, default_bank: Option<&str>) -> Result<OpsFile, String> {
    let file: FilePackage = match format {
        OpsFormat::Json => {
            if text.trim_start().starts_with('[') {
                let operations = serde_json::from_str::<Vec<FileOp>>(text).map_err(|e| format!("not a JSON list of operations: {e}"))?;
                FilePackage { id: None, operations }
            } else {
                serde_json::from_str(text).map_err(|e| format!("not a JSON package: {e}"))?
            }
        }
        OpsFormat::Toml => toml::from_str(text).map_err(|e| format!("not a TOML package: {e}"))?,
    };
    let operations = file
        .operations
        .into_iter()
        .enumerate()
        .map(|(i, op)| op.resolve(default_bank).map_err(|e| format!("operation {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OpsFile { id: file.id, operations })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePackage {
    #[serde(default)]
    id: Option<String>,
    operations: Vec<FileOp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOp {
    kind: OpKind,
    #[serde(default)]
    from: Option<FileRef>,
    #[serde(default)]
    to: Option<FileRef>,
    amount: FileAmount,
}

impl FileOp {
    fn resolve(self, default_bank: Option<&str>) -> Result<Operation, String> {
        let r = |x: Option<FileRef>| x.map(|x| x.resolve(default_bank)).transpose();
        let amount = match self.amount {
            FileAmount::Cents(0) => return Err("the amount must be more than 0.00".into()),
            FileAmount::Cents(c) => Cents(c),
            FileAmount::Human(s) => parse_amount(&s)?,
        };
        Ok(Operation { kind: self.kind, from: r(self.from)?, to: r(self.to)?, amount })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileRef {
    Text(String),
    Wire(AccountRef),
}

impl FileRef {
    fn resolve(self, default_bank: Option<&str>) -> Result<AccountRef, String> {
        match self {
            FileRef::Text(s) => parse_account_ref(&s, default_bank),
            FileRef::Wire(r) => Ok(AccountRef { bank: parse_bank_addr(&r.bank)?, account: parse_account_key(&r.account)? }),
        }
    }
}

/// An amount in a file: an integer is cents (the wire shape), a string is read like a person
/// types it. A number with decimals is refused rather than guessed.
enum FileAmount {
    Cents(u64),
    Human(String),
}

impl<'de> Deserialize<'de> for FileAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FileAmount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount: an integer number of cents (1250) or a string (\"12.50\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileAmount, E> {
                Ok(FileAmount::Cents(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileAmount, E> {
                u64::try_from(v).map(FileAmount::Cents).map_err(|_| E::custom(format!("the amount {v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<FileAmount, E> {
                Err(E::custom(format!(
                    "the amount {v} has decimals: write cents as an integer ({}), or the amount as a string (\"{v}\")",
                    (v * 100.0).round()
                )))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileAmount, E> {
                Ok(FileAmount::Human(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Builds a package and checks it as the banks will (except that the banks are members of
/// the consortium, which only a bank knows).
/// The system clock, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How long a package the client signs stays valid unless told otherwise.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(3600);

/// Who signs a package: the user acting (a holder of the accounts money leaves) and the
/// tellers at hand (by bank address), for cash deposits.
#[derive(Default)]
pub struct Signers<'a> {
    pub holder: Option<(Cpf, &'a UserKey)>,
    pub tellers: Vec<(String, &'a KeyPair)>,
}

/// Sets the package's expiry (`valid_for` from `now_ms`) and signs it for `origin`: as the
/// holder where money leaves an account, as the teller of each bank a deposit goes to. A
/// package that needs a signature nobody here can give is refused with what is missing.
pub fn sign_package(p: &mut Package, origin: &str, signers: &Signers, now_ms: u64, valid_for: Duration) -> Result<(), String> {
    p.expires_ms = now_ms + valid_for.as_millis() as u64;
    p.signatures.clear();
    let holder = |_: &AccountRef| signers.holder.as_ref().map(|(c, k)| (c.as_str().to_string(), (*k).clone()));
    let teller = |bank: &str| signers.tellers.iter().find(|(b, _)| b == bank).map(|(_, k)| (*k).clone());
    p.sign_for(origin, holder, teller).map_err(|e| format!("{e} (sign as a holder with --user CPF or --key-file FILE, deposits with --teller-key FILE)"))
}

pub fn build_package(id: String, operations: Vec<Operation>) -> Result<Package, String> {
    let p = Package { id, operations, ..Default::default() };
    p.validate(|_| true).map_err(|e| e.to_string())?;
    Ok(p)
}

/// One line describing an operation: `transfer 12.50 from A/1 to B/2`.
pub fn describe_op(op: &Operation) -> String {
    let r = |x: &Option<AccountRef>| x.as_ref().map(|r| format!("{}/{}", r.bank, r.account)).unwrap_or_else(|| "?".into());
    match op.kind {
        OpKind::Transfer => format!("transfer {} from {} to {}", op.amount, r(&op.from), r(&op.to)),
        OpKind::Deposit => format!("deposit {} to {}", op.amount, r(&op.to)),
        OpKind::Withdraw => format!("withdraw {} from {}", op.amount, r(&op.from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consortium_net::{BoxFuture, Reply};
    use hyper::StatusCode;
    use std::sync::Mutex;

    fn aref(bank: &str, account: &str) -> AccountRef {
        AccountRef { bank: bank.into(), account: account.into() }
    }

    #[test]
    fn bank_addresses() {
        assert_eq!(parse_bank_addr("127.0.0.1:7001"), Ok("127.0.0.1:7001".into()));
        assert_eq!(parse_bank_addr(" bank2:80 "), Ok("bank2:80".into()));
        assert_eq!(parse_bank_addr("[::1]:7001"), Ok("[::1]:7001".into()));
        for bad in ["", "127.0.0.1", ":7001", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "http://a:1", "a b:1", "::1:7001", "a/b:1"] {
            assert!(parse_bank_addr(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_bank_addr("http://127.0.0.1:7001").unwrap_err().contains("without a scheme"));
    }

    #[test]
    fn account_refs() {
        assert_eq!(parse_account_ref("127.0.0.1:7002/000001", None), Ok(aref("127.0.0.1:7002", "000001")));
        assert_eq!(parse_account_ref("[::1]:9/k-1", None), Ok(aref("[::1]:9", "k-1")));
        assert_eq!(parse_account_ref("000001", Some("10.0.0.1:7001")), Ok(aref("10.0.0.1:7001", "000001")));
        let e = parse_account_ref("000001", None).unwrap_err();
        assert!(e.contains("BANK/ACCOUNT"), "{e}");
        assert!(parse_account_ref("", Some("a:1")).is_err());
        assert!(parse_account_ref("127.0.0.1:7002/", None).is_err());
        assert!(parse_account_ref("127.0.0.1/000001", None).is_err(), "no port");
        assert!(parse_account_ref("a:1/x/y", None).is_err(), "keys have no slash");
        assert!(parse_account_ref(&format!("a:1/{}", "k".repeat(65)), None).is_err());
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("12.50"), Ok(Cents(1250)));
        assert_eq!(parse_amount("5"), Ok(Cents(500)));
        assert_eq!(parse_amount("0,01"), Ok(Cents(1)));
        assert!(parse_amount("0").is_err());
        assert!(parse_amount("0.00").is_err());
        assert!(parse_amount("-1").is_err());
        assert!(parse_amount("1.005").is_err());
        assert!(parse_amount("ten").is_err());
    }

    #[test]
    fn ops_on_the_command_line() {
        let op = parse_op("transfer 127.0.0.1:7001/000001 127.0.0.1:7002/000002 12.50", None).unwrap();
        assert_eq!(
            op,
            Operation {
                kind: OpKind::Transfer,
                from: Some(aref("127.0.0.1:7001", "000001")),
                to: Some(aref("127.0.0.1:7002", "000002")),
                amount: Cents(1250)
            }
        );
        let op = parse_op("  Deposit   a:1/7   5 ", None).unwrap();
        assert_eq!(op, Operation { kind: OpKind::Deposit, from: None, to: Some(aref("a:1", "7")), amount: Cents(500) });
        let op = parse_op("withdraw 000003 0.5", Some("b:2")).unwrap();
        assert_eq!(op, Operation { kind: OpKind::Withdraw, from: Some(aref("b:2", "000003")), to: None, amount: Cents(50) });

        for (bad, why) in [
            ("", "empty"),
            ("pay a:1/1 a:1/2 3", "unknown operation"),
            ("transfer a:1/1 3", "transfer FROM TO AMOUNT"),
            ("deposit a:1/1 a:1/2 3", "deposit TO AMOUNT"),
            ("withdraw a:1/1", "withdraw FROM AMOUNT"),
            ("deposit a:1/1 0", "more than 0.00"),
            ("deposit a:1/1 1.234", "not an amount"),
            ("deposit 000001 5", "BANK/ACCOUNT"),
            ("transfer a:1/1 nobank/2 5", "no port"),
        ] {
            let e = parse_op(bad, None).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn json_files() {
        let list = r#"[
            {"kind":"transfer","from":{"bank":"a:1","account":"1"},"to":{"bank":"b:2","account":"2"},"amount":1250},
            {"kind":"deposit","to":"b:2/3","amount":"7.5"},
            {"kind":"withdraw","from":"4","amount":100}
        ]"#;
        let f = parse_ops_file(list, OpsFormat::Json, Some("c:3")).unwrap();
        assert_eq!(f.id, None);
        assert_eq!(f.operations.len(), 3);
        assert_eq!(f.operations[0].amount, Cents(1250));
        assert_eq!(f.operations[0].to, Some(aref("b:2", "2")));
        assert_eq!(f.operations[1].to, Some(aref("b:2", "3")));
        assert_eq!(f.operations[1].amount, Cents(750));
        assert_eq!(f.operations[2].from, Some(aref("c:3", "4")));

        // The exact shape `POST /packages` takes is accepted as is.
        let pkg = Package {
            id: "p-1".into(),
            operations: vec![Operation { kind: OpKind::Deposit, from: None, to: Some(aref("a:1", "1")), amount: Cents(3) }], ..Default::default()
        };
        let f = parse_ops_file(&serde_json::to_string(&pkg).unwrap(), OpsFormat::Json, None).unwrap();
        assert_eq!(f, OpsFile { id: Some("p-1".into()), operations: pkg.operations.clone() });

        for (bad, why) in [
            (r#"[{"kind":"deposit","to":"a:1/1","amount":12.5}]"#, "has decimals"),
            (r#"[{"kind":"deposit","to":"a:1/1","amount":-3}]"#, "negative"),
            (r#"[{"kind":"deposit","to":"a:1/1","amount":0}]"#, "operation 0"),
            (r#"[{"kind":"deposit","to":"a:1/1","amount":1,"memo":"x"}]"#, "unknown field"),
            (r#"[{"kind":"steal","to":"a:1/1","amount":1}]"#, "unknown variant"),
            (r#"{"operations":[{"kind":"deposit","to":"1","amount":1}]}"#, "BANK/ACCOUNT"),
            (r#"{"ops":[]}"#, "unknown field"),
            ("transfer a b 1", "not a JSON package"),
        ] {
            let e = parse_ops_file(bad, OpsFormat::Json, None).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_files() {
        let text = r#"
            id = "batch-7"

            [[operations]]
            kind = "transfer"
            from = { bank = "127.0.0.1:7001", account = "000001" }
            to = "127.0.0.1:7002/000002"
            amount = "12.50"

            [[operations]]
            kind = "deposit"
            to = { bank = "127.0.0.1:7001", account = "000001" }
            amount = 500
        "#;
        let f = parse_ops_file(text, OpsFormat::Toml, None).unwrap();
        assert_eq!(f.id.as_deref(), Some("batch-7"));
        assert_eq!(f.operations[0].from, Some(aref("127.0.0.1:7001", "000001")));
        assert_eq!(f.operations[0].to, Some(aref("127.0.0.1:7002", "000002")));
        assert_eq!(f.operations[0].amount, Cents(1250));
        assert_eq!(f.operations[1].amount, Cents(500));

        let e = parse_ops_file("[[operations]]\nkind = \"deposit\"\nto = \"a:1/1\"\namount = 1.5\n", OpsFormat::Toml, None).unwrap_err();
        assert!(e.contains("has decimals"), "{e}");
        assert!(parse_ops_file("operations = 3", OpsFormat::Toml, None).is_err());
        assert_eq!(OpsFormat::for_path(Path::new("x/ops.TOML")), OpsFormat::Toml);
        assert_eq!(OpsFormat::for_path(Path::new("ops.json")), OpsFormat::Json);
        assert_eq!(OpsFormat::for_path(Path::new("-")), OpsFormat::Json);
    }

    #[test]
    fn packages_are_checked_before_sending() {
        let op = parse_op("transfer a:1/1 a:1/1 5", None).unwrap();
        assert!(build_package("x".into(), vec![op.clone()]).unwrap_err().contains("same_account"));
        assert!(build_package("bad id".into(), vec![]).unwrap_err().contains("bad_id"));
        assert!(build_package("x".into(), vec![]).unwrap_err().contains("no_operations"));
        let ok = parse_op("deposit a:1/1 5", None).unwrap();
        assert!(build_package(new_package_id(), vec![ok]).is_ok());
    }

    #[test]
    fn package_ids() {
        assert_eq!(package_id_from(1_718_000_000_000, 0xab), "p1718000000000-00000000000000ab");
        let a = new_package_id();
        let b = new_package_id();
        assert_ne!(a, b);
        assert!(a.len() <= consortium_core::package::spec::MAX_ID_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(ApiCall::user("52998224725").path, "/users/52998224725");
        assert_eq!(ApiCall::account("a b/c").path, "/accounts/a%20b%2Fc");
        assert_eq!(ApiCall::consortium_accounts("1").path, "/consortium/users/1/accounts");
        assert_eq!(ApiCall::package("p1-2.3_x~").path, "/packages/p1-2.3_x~");
    }

    /// A transport that answers from a script and records the calls.
    struct Scripted {
        answers: Mutex<Vec<Result<Reply, NetError>>>,
        calls: Mutex<Vec<(String, String)>>,
    }

    impl Transport for Scripted {
        fn call(&self, peer: &str, call: Call) -> BoxFuture<'static, Result<Reply, NetError>> {
            self.calls.lock().unwrap().push((peer.to_string(), format!("{} {}", call.method, call.path)));
            let next = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    fn reply(status: u16, body: &str) -> Result<Reply, NetError> {
        Ok(Reply { status: StatusCode::from_u16(status).unwrap(), body: Bytes::from(body.to_string()) })
    }

    fn scripted(answers: Vec<Result<Reply, NetError>>) -> (Client, Arc<Scripted>) {
        let t = Arc::new(Scripted { answers: Mutex::new(answers), calls: Mutex::new(vec![]) });
        (Client::with_transport("a:1", Duration::from_secs(1), t.clone()), t)
    }

    #[tokio::test]
    async fn errors_say_whose_fault() {
        let (c, _) = scripted(vec![
            reply(404, r#"{"error":{"code":"user_not_found","message":"no such user"}}"#),
            Err(NetError::Unreachable("connection refused".into())),
            Err(NetError::Timeout),
            reply(404, ""),
            reply(200, r#"{"cpf":"1"}"#),
            reply(503, r#"{"error":{"code":"bank_unreachable","message":"b:2 is down"}}"#),
        ]);
        let e = c.user("52998224725").await.unwrap_err();
        assert_eq!(e.to_string(), "no such user (user_not_found)");
        assert_eq!((e.exit_code(), e.status()), (1, Some(404)));
        let e = c.user("x").await.unwrap_err();
        assert_eq!(e.to_string(), "cannot reach bank a:1: connection refused (unreachable)");
        assert_eq!(e.exit_code(), 3);
        let e = c.user("x").await.unwrap_err();
        assert_eq!(e.to_string(), "bank a:1 did not answer within 1s (timeout)");
        assert_eq!(e.exit_code(), 3);
        let e = c.user("x").await.unwrap_err();
        assert!(matches!(e, ClientError::BadAnswer { status: 404, .. }), "{e:?}");
        assert!(e.to_string().contains("bank of the consortium"), "{e}");
        let e = c.user("x").await.unwrap_err();
        assert!(matches!(e, ClientError::BadAnswer { status: 200, .. }), "{e:?}");
        let e = c.status().await.unwrap_err();
        assert_eq!((e.code(), e.exit_code()), ("bank_unreachable", 3));
    }

    #[tokio::test]
    async fn waits_until_decided() {
        let pending = r#"{"id":"p","status":"pending"}"#;
        let (c, t) = scripted(vec![
            reply(202, pending),
            reply(200, pending),
            Err(NetError::Unreachable("reset".into())),
            reply(200, r#"{"id":"p","status":"committed","results":[{"index":0,"ok":true}]}"#),
        ]);
        let pkg = build_package("p".into(), vec![parse_op("deposit a:1/1 5", None).unwrap()]).unwrap();
        let (v, status) = c.submit_package(&pkg).await.unwrap();
        assert_eq!((v.status, status), (Status::Pending, 202));
        let v = c.wait_for_package("p", Duration::from_secs(10)).await.unwrap();
        assert_eq!(v.status, Status::Committed);
        assert_eq!(v.results.len(), 1);
        let calls = t.calls.lock().unwrap().clone();
        assert_eq!(calls[0], ("a:1".to_string(), "POST /packages".to_string()));
        assert!(calls[1..].iter().all(|(_, c)| c == "GET /packages/p"));
    }

    #[tokio::test]
    async fn wait_gives_up_with_the_last_view() {
        let pending = r#"{"id":"p","status":"pending"}"#;
        let (c, _) = scripted((0..100).map(|_| reply(200, pending)).collect());
        let v = c.wait_for_package("p", Duration::from_millis(300)).await.unwrap();
        assert_eq!(v.status, Status::Pending);

        let (c, _) = scripted((0..100).map(|_| Err(NetError::Timeout)).collect());
        assert!(matches!(c.wait_for_package("p", Duration::from_millis(300)).await, Err(ClientError::Timeout { .. })));

        let (c, _) = scripted(vec![reply(404, r#"{"error":{"code":"package_not_found","message":"no"}}"#)]);
        assert!(c.wait_for_package("p", Duration::from_millis(300)).await.unwrap_err().is_not_found());
    }
}
