//! The client API: the contract in DESIGN.md's table.

use super::ApiError;
use crate::wire::{AccountList, AccountView, BankAccounts, ConsortiumAccounts, ForwardedRead, KeyReset, KeyRotation, NewAccount, NewUser, PackageView, StatusView, UserKeyView, UserView};
use consortium_core::trust::read::{self, Reader};
use axum::http::HeaderMap;
use super::Body;
use crate::domain::{Cpf, User};
use crate::error::Error;
use crate::node::Node;
use crate::peers::PeerError;
use crate::package::intake::Waiter;
use crate::store::Lookup;
use consortium_core::package::compact::Unknown;
use crate::package::{authority, Package, Record};
use crate::trust;
use crate::trust::keys::PublicKey;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use super::openapi::{Bad, Conflict, Forbidden, Internal, Live, Missing, Ready, Refused, TooLarge, TooMany, Unauthorized, Unavailable};
use crate::error::ErrorBody;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use hyper::Method;
use std::sync::Arc;
use std::time::Duration;

type S = State<Arc<Node>>;

/// The client routes with their description: each handler is routed by its `#[utoipa::path]`
/// (method and path come from it), so a route cannot exist without its entry in
/// `/openapi.json`, nor differ from it. Add routes here only with `routes!`.
pub fn routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(super::openapi::ApiDoc::openapi())
        .routes(routes!(register_user))
        .routes(routes!(get_user))
        .routes(routes!(user_accounts))
        .routes(routes!(rotate_key))
        .routes(routes!(reset_key))
        .routes(routes!(open_account))
        .routes(routes!(get_account))
        .routes(routes!(get_statement))
        .routes(routes!(consortium_accounts))
        .routes(routes!(submit_package))
        .routes(routes!(get_package))
        .routes(routes!(status))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(super::openapi::openapi_json))
}

fn cpf(s: &str) -> Result<Cpf, Error> {
    Cpf::parse(s).map_err(|e| Error::bad_request("invalid_cpf", format!("invalid CPF {s:?}: {e}")))
}

/// Registers a user with their public key. The registrant proves they hold the private key
/// (a signature of the registration for this bank), and the reachable banks are asked what
/// key they hold for the CPF: a different one is refused (advisory, not atomic: it stops the
/// easy hijack of a CPF already registered elsewhere).
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser, responses(
    (status = 201, description = "registered", body = UserView),
    (status = 400, response = Bad),
    (status = 403, description = "`bad_proof` (not the key's signature of this registration), `approval_required` (this bank needs an operator's approval)", body = ErrorBody),
    (status = 409, description = "`user_exists` here, or `key_conflict` (another bank holds another key for the CPF)", body = ErrorBody),
    (status = 413, response = TooLarge), (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn register_user(State(node): S, Body(req): Body<NewUser>) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let mut user = User::new(cpf(&req.cpf)?, &req.name)?;
    let key = PublicKey::from_hex(&req.public_key).ok_or_else(|| Error::bad_request("bad_key", "public_key is not an Ed25519 public key (64 hex digits)"))?;
    let key_hex = key.to_hex();
    if !trust::user::verify(&key, &trust::user::register_message(&node.ctx.me, &user.cpf, &key_hex), &req.proof) {
        return Err(Error::forbidden("bad_proof", "the proof is not this key's signature of this registration at this bank").into());
    }
    if node.require_approval {
        let m = trust::user::approve_message(&node.ctx.me, &user.cpf, &key_hex);
        let approved = req.approval.as_deref().is_some_and(|a| node.ctx.tellers.iter().any(|t| trust::user::verify(t, &m, a)));
        if !approved {
            let why = match req.approval {
                None => "this bank registers a user only with an operator's approval (identity checked at the counter: `bank --as-teller user approve`)",
                Some(_) => "the approval is not an operator of this bank's signature of this CPF with this key",
            };
            return Err(Error::forbidden("approval_required", why).into());
        }
    }
    for (bank, theirs) in peer_keys(&node, &user.cpf).await {
        if theirs != key_hex {
            return Err(Error::conflict("key_conflict", format!("CPF {} is registered at {bank} with another key", user.cpf)).into());
        }
    }
    user.key = Some(key_hex);
    let u = user.clone();
    node.storage.db(move |s| s.register_user(&u)).await?;
    // No CPF in the log: logs travel further than the books (to operators, to log stores).
    node.ctx.emit("user_registered", "a user registered".to_string());
    Ok((StatusCode::CREATED, Json(user_view(user))))
}

/// The statement in the `authorization` header, if any.
fn statement(headers: &HeaderMap) -> Option<&str> {
    headers.get(read::HEADER).and_then(|v| v.to_str().ok())
}

/// Who reads `scope` here, as their signed statement proves.
async fn reader(node: &Arc<Node>, headers: &HeaderMap, scope: &str) -> Result<Reader, Error> {
    node.reads.reader(statement(headers), scope, &node.ctx.me).await
}

/// A user as this bank registered them, to that user or a teller.
#[utoipa::path(get, path = "/users/{cpf}", tag = "users", params(("cpf" = String, Path, description = "the user's CPF (11 digits, or `123.456.789-09`)", example = "52998224725")), security(("read_statement" = [])), responses(
    (status = 200, description = "the user as this bank registered them", body = UserView),
    (status = 400, response = Bad), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 404, response = Missing), (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn get_user(State(node): S, headers: HeaderMap, Path(c): Path<String>) -> Result<Json<UserView>, ApiError> {
    let c = cpf(&c)?;
    let who = reader(&node, &headers, &read::scope_user(&c)).await?;
    if !read::may_read_user(&who, &c) {
        return Err(read::not_yours("user").into());
    }
    let shown = c.clone();
    match node.storage.db(move |s| s.user(&c)).await? {
        Some(u) => Ok(Json(user_view(u))),
        None => Err(Error::not_found("user_not_found", format!("CPF {shown} is not a user of this bank")).into()),
    }
}

fn user_view(u: User) -> UserView {
    UserView { cpf: u.cpf, name: u.name, public_key: u.key, key_seq: u.key_seq }
}

/// A user replaces their key, with a statement signed by the current one. The bank applies
/// it and passes it on to the other banks, which check it against their own binding (one
/// that is down gets it when it is back: `rotations`).
#[utoipa::path(post, path = "/users/{cpf}/key", tag = "users", params(("cpf" = String, Path, description = "the user's CPF (11 digits, or `123.456.789-09`)", example = "52998224725")), request_body = KeyRotation, responses(
    (status = 200, description = "the user with the new key (passed on to the other banks)", body = UserView),
    (status = 400, response = Bad),
    (status = 403, description = "`bad_rotation`: not signed by the user's current key", body = ErrorBody),
    (status = 404, response = Missing),
    (status = 409, description = "`stale_rotation` or `rotation_gap`: the number is not the next one", body = ErrorBody),
    (status = 413, response = TooLarge), (status = 422, response = Refused), (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn rotate_key(State(node): S, Path(c): Path<String>, Body(r): Body<KeyRotation>) -> Result<Json<UserView>, ApiError> {
    let c = cpf(&c)?;
    let (cc, rr) = (c.clone(), r.clone());
    let (user, done) = node.storage.db(move |s| s.rotate_key(&cc, &rr.public_key, rr.seq, &rr.sig)).await?;
    if done == trust::user::Rotation::Apply {
        node.ctx.emit("key_rotated", format!("rotation {}", r.seq));
        node.rotations.pass_on(&node.peers, &c);
    }
    Ok(Json(user_view(user)))
}

/// An operator replaces a user's lost key, with their teller key's signature: at this bank
/// only, never passed on (another bank's operator checks the person for itself).
#[utoipa::path(post, path = "/users/{cpf}/reset", tag = "users", params(("cpf" = String, Path, description = "the user's CPF (11 digits, or `123.456.789-09`)", example = "52998224725")), request_body = KeyReset, responses(
    (status = 200, description = "the user with the new key, at this bank only", body = UserView),
    (status = 400, response = Bad),
    (status = 403, description = "`bad_operator_signature`: not an operator of this bank's signature of this reset", body = ErrorBody),
    (status = 404, response = Missing), (status = 413, response = TooLarge), (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn reset_key(State(node): S, Path(c): Path<String>, Body(r): Body<KeyReset>) -> Result<Json<UserView>, ApiError> {
    let c = cpf(&c)?;
    let (me, ops) = (node.ctx.me.clone(), node.ctx.tellers.clone());
    let user = node.storage.db(move |s| s.reset_key(&me, &c, &r.public_key, &r.sig, &ops)).await?;
    node.ctx.emit("key_reset", "an operator reset a user's key".to_string());
    Ok(Json(user_view(user)))
}

/// What every reachable bank holds as `cpf`'s key: (bank, key) for those that know one.
async fn peer_keys(node: &Arc<Node>, cpf: &Cpf) -> Vec<(String, String)> {
    let asks = node.ctx.members().into_iter().filter(|b| *b != node.ctx.me && node.peers.is_online(b)).map(|bank| {
        let n = node.clone();
        let path = format!("/peer/users/{}/key", cpf.as_str());
        tokio::spawn(async move { (bank.clone(), n.peers.raw_call::<(), UserKeyView>(&bank, Method::GET, &path, None).await) })
    });
    let mut out = Vec::new();
    for t in asks.collect::<Vec<_>>() {
        if let Ok((bank, Ok(UserKeyView { key: Some(k) }))) = t.await {
            out.push((bank, k));
        }
    }
    out
}

/// Opens an account: every holder signs the opening (their keys as this bank registered
/// them), within five minutes of this bank's clock.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = NewAccount, responses(
    (status = 201, description = "opened", body = AccountView),
    (status = 400, response = Bad),
    (status = 403, description = "`unsigned`: a holder did not sign this opening", body = ErrorBody),
    (status = 404, response = Missing), (status = 409, response = Conflict), (status = 413, response = TooLarge),
    (status = 422, description = "the holders break a rule (`no_holders`, `personal_one_holder`, ...) or signed more than 5 minutes from this bank's clock (`stale_signature`)", body = ErrorBody),
    (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn open_account(State(node): S, Body(req): Body<NewAccount>) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    // Account numbers after the backup are re-learned first: none is given twice.
    node.ctx.refuse_while_reconciling("opens accounts")?;
    let holders = req.holders.iter().map(|h| cpf(h)).collect::<Result<Vec<_>, _>>()?;
    // The shape first (kind and holders), for a clear error; registration and personal
    // accounts are checked again where the account is written.
    crate::domain::account::check_new_account(req.kind, &holders, |_| true, |_| false)?;
    let now = node.ctx.clock.now_ms();
    if now.abs_diff(req.time_ms) > trust::user::OPEN_ACCOUNT_WINDOW_MS {
        return Err(Error::rule("stale_signature", "the holders signed this opening more than 5 minutes from this bank's clock").into());
    }
    let message = trust::user::open_account_message(&node.ctx.me, req.kind, &holders, req.time_ms);
    for h in &holders {
        let c = h.clone();
        let key = node.storage.db(move |s| s.user(&c)).await?.and_then(|u| u.key).and_then(|k| PublicKey::from_hex(&k));
        let Some(key) = key else {
            return Err(Error::not_found("user_not_found", format!("CPF {h} is not a user of this bank")).into());
        };
        let signed = req.signatures.iter().any(|s| Cpf::parse(&s.cpf).is_ok_and(|c| c == *h) && trust::user::verify(&key, &message, &s.sig));
        if !signed {
            return Err(Error::forbidden("unsigned", format!("holder {h} did not sign this opening")).into());
        }
    }
    let me = node.ctx.me.clone();
    let a = node.storage.db(move |s| s.open_account(&me, req.kind, &holders)).await?;
    node.ctx.emit("account_opened", format!("{} {}", a.key, a.kind));
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// An account, to a holder or a teller. An account that does not exist is answered like one
/// the reader does not hold (to a user), so account keys cannot be probed.
#[utoipa::path(get, path = "/accounts/{key}", tag = "accounts", params(("key" = String, Path, description = "the account's key at this bank", example = "000001")), security(("read_statement" = [])), responses(
    (status = 200, description = "the account", body = AccountView),
    (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 404, response = Missing), (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn get_account(State(node): S, headers: HeaderMap, Path(key): Path<String>) -> Result<Json<AccountView>, ApiError> {
    let who = reader(&node, &headers, &read::scope_account(&key)).await?;
    let k = key.clone();
    match node.storage.db(move |s| s.account(&k)).await? {
        Some(a) if read::may_read_account(&who, &a) => Ok(Json(a.into())),
        None if who == Reader::Teller => Err(Error::not_found("account_not_found", format!("no account {key} at this bank")).into()),
        _ => Err(read::not_yours("account").into()),
    }
}

/// Paging of a statement: `?from=N&limit=M` (entries from N, 1 = the first; at most M). The
/// holder's route and the operator's (`admin`) page alike.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// The first entry of the page (1 = the account's first; default 1).
    #[param(minimum = 1, maximum = 9007199254740991_u64, example = 1)]
    from: Option<u64>,
    /// At most this many entries (1 to 500; default 100).
    #[param(minimum = 1, maximum = 500, example = 100)]
    limit: Option<u32>,
}

impl Page {
    /// The page asked for, with its defaults, within `journal::check_page`'s bounds.
    pub(super) fn of(q: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>) -> Result<(u64, u32), Error> {
        let page = q.map_err(|e| Error::bad_request("bad_page", format!("bad paging: {e}")))?.0;
        let (from, limit) = (page.from.unwrap_or(1), page.limit.unwrap_or(100));
        consortium_core::domain::journal::check_page(from, limit)?;
        Ok((from, limit))
    }
}

/// An account's statement (its journal), to its holders only, a page at a time. Like a
/// balance read, an account that does not exist is answered as one the reader does not hold.
#[utoipa::path(get, path = "/accounts/{key}/statement", tag = "accounts", params(("key" = String, Path, description = "the account's key at this bank", example = "000001"), Page), security(("read_statement" = [])), responses(
    (status = 200, description = "a page of the account's statement: every committed movement of its money, oldest first", body = consortium_core::domain::journal::Statement),
    (status = 400, response = Bad), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn get_statement(
    State(node): S,
    headers: HeaderMap,
    Path(key): Path<String>,
    page: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<consortium_core::domain::journal::Statement>, ApiError> {
    let (from, limit) = Page::of(page)?;
    let who = reader(&node, &headers, &read::scope_statement(&key)).await?;
    let k = key.clone();
    match node.storage.db(move |s| s.account(&k)).await? {
        Some(a) if read::may_read_statement(&who, &a) => {}
        _ => return Err(read::not_yours("statement").into()),
    }
    Ok(Json(node.storage.db(move |s| s.statement(&key, from, limit)).await?))
}

/// A user's accounts at this bank, to that user or a teller.
#[utoipa::path(get, path = "/users/{cpf}/accounts", tag = "accounts", params(("cpf" = String, Path, description = "the user's CPF (11 digits, or `123.456.789-09`)", example = "52998224725")), security(("read_statement" = [])), responses(
    (status = 200, description = "the user's accounts at this bank", body = AccountList),
    (status = 400, response = Bad), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn user_accounts(State(node): S, headers: HeaderMap, Path(c): Path<String>) -> Result<Json<AccountList>, ApiError> {
    let c = cpf(&c)?;
    let who = reader(&node, &headers, &read::scope_accounts_of(&c)).await?;
    if !read::may_read_user(&who, &c) {
        return Err(read::not_yours("user's accounts").into());
    }
    let accounts = node.storage.db(move |s| s.accounts_of(&c)).await?;
    Ok(Json(AccountList { accounts: accounts.into_iter().map(Into::into).collect() }))
}

/// Asks every bank at once, forwarding the user's statement: each bank checks it against its
/// own registry (this one too, when it knows the user; one that does not has no accounts of
/// theirs). A bank that does not answer in time is listed as unreachable; it never makes the
/// whole answer fail.
#[utoipa::path(get, path = "/consortium/users/{cpf}/accounts", tag = "accounts", params(("cpf" = String, Path, description = "the user's CPF (11 digits, or `123.456.789-09`)", example = "52998224725")), security(("read_statement" = [])), responses(
    (status = 200, description = "the user's accounts at every bank; a bank that did not answer is listed with `reachable: false`", body = ConsortiumAccounts),
    (status = 400, response = Bad), (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn consortium_accounts(State(node): S, headers: HeaderMap, Path(c): Path<String>) -> Result<Json<ConsortiumAccounts>, ApiError> {
    let c = cpf(&c)?;
    let scope = read::scope_consortium(&c);
    let stmt = read::ReadStatement::parse(statement(&headers))?;
    if stmt.reader != Reader::User(c.clone()) {
        return Err(read::not_yours("user's accounts (the consortium-wide lookup is the user's own)").into());
    }
    // A user this bank does not know: nothing to check the signature with here, the others
    // check it (the statement is still checked for this lookup, here, now).
    let known_here = node.reads.reader_if_known(statement(&headers), &scope, &node.ctx.me).await?.is_some();
    let forwarded = ForwardedRead { statement: stmt.to_header() };
    let mut tasks = Vec::new();
    for bank in node.ctx.members() {
        let node = node.clone();
        let c = c.clone();
        let forwarded = forwarded.clone();
        tasks.push(tokio::spawn(async move {
            if bank == node.ctx.me {
                let r = node.storage.db(move |s| s.accounts_of(&c)).await;
                return match r {
                    Ok(a) => BankAccounts { bank, reachable: true, accounts: a.into_iter().map(Into::into).collect(), error: None },
                    Err(e) => BankAccounts { bank, reachable: false, accounts: vec![], error: Some(e.message) },
                };
            }
            if !node.peers.is_online(&bank) {
                return BankAccounts { bank, reachable: false, accounts: vec![], error: Some("offline".into()) };
            }
            let path = format!("/peer/users/{}/accounts", c.as_str());
            match node.peers.call::<_, AccountList>(&bank, Method::POST, &path, Some(&forwarded)).await {
                Ok(list) => BankAccounts { bank, reachable: true, accounts: list.accounts, error: None },
                Err(e @ PeerError::Unreachable(_)) => BankAccounts { bank, reachable: false, accounts: vec![], error: Some(e.to_string()) },
                Err(e) => {
                    // This bank checked the statement with its key for the user: a bank that
                    // finds it badly signed holds another one.
                    if known_here && matches!(&e, PeerError::Refused(_, body) if body.contains("\"bad_signature\"")) {
                        crate::rotations::mismatch(&node.ctx, &bank, "it refused a read statement signed with the key this bank holds");
                    }
                    BankAccounts { bank, reachable: true, accounts: vec![], error: Some(e.to_string()) }
                }
            }
        }));
    }
    let mut banks = Vec::new();
    for t in tasks {
        banks.push(t.await.map_err(|e| Error::internal(e.to_string()))?);
    }
    Ok(Json(ConsortiumAccounts { banks }))
}

fn view(r: &Record) -> PackageView {
    PackageView { id: r.package.id.clone(), status: r.status, results: r.results.clone(), decision: None }
}

/// Accepts a package (durably) and waits, bounded, for its outcome. A retry with the same id
/// gets the same package, never a second execution.
#[utoipa::path(post, path = "/packages", tag = "packages", request_body = Package, responses(
    (status = 200, description = "decided: committed or aborted, with each operation's result", body = PackageView),
    (status = 202, description = "accepted, not decided within `package_wait_ms`: ask `GET /packages/{id}`", body = PackageView),
    (status = 400, response = Bad), (status = 409, response = Conflict), (status = 413, response = TooLarge),
    (status = 410, description = "`package_compacted`: the package expired, and this bank has compacted the history of packages that old: if it was accepted before it expired, its accounts' statements show its outcome", body = ErrorBody),
    (status = 422, description = "`unsigned`, `expired`, `unknown_bank`, `same_account`, or a signature that does not hold", body = ErrorBody),
    (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn submit_package(State(node): S, Body(p): Body<Package>) -> Result<(StatusCode, Json<PackageView>), ApiError> {
    node.ctx.refuse_while_reconciling("accepts packages")?;
    p.validate(|b| node.ctx.is_member(b))?;
    if p.signatures.is_empty() {
        return Err(Error::rule("unsigned", "a package needs the signatures of the holders of the accounts it takes money from (and a teller's for a deposit)").into());
    }
    if let Err(why) = authority::check_expiry_within(&p, node.ctx.clock.now_ms(), node.ctx.timing.clock_skew_ms) {
        // A retry of a package recorded before it expired still gets its outcome; one whose
        // record may have been compacted is not told "expired", which would read as "never
        // executed" to a client whose first answer was lost (it could pay twice).
        let (id, expires) = (p.id.clone(), p.expires_ms);
        return match node.storage.db(move |s| s.lookup(&id, Some(expires))).await? {
            Lookup::Found(r) if r.package.same_content(&p) => Ok((StatusCode::OK, Json(view(&r)))),
            Lookup::Unknown(Unknown::MaybeCompacted) => Err(Error::gone(
                "package_compacted",
                format!("{why}, and this bank has since compacted the history of packages that old: if it was accepted here before it expired, its outcome is in its accounts' statements; check them before sending it again under a new id"),
            )
            .into()),
            _ => Err(Error::rule("expired", why).into()),
        };
    }
    let id = p.id.clone();
    // Registered before the package exists, so its decision cannot pass unseen.
    let waiter = Waiting::new(&node, &id);
    let (record, _new) = node.writer.submit(node.ctx.me.clone(), p).await?;
    if record.outcome().is_some() {
        return Ok((StatusCode::OK, Json(view(&record))));
    }
    let r = waiter.wait(Duration::from_millis(node.ctx.timing.package_wait_ms)).await?;
    let code = if r.outcome().is_some() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((code, Json(view(&r))))
}

/// One client's place among those waiting for a package; leaving it (even by the request
/// being dropped) removes the entry once nobody waits.
struct Waiting {
    node: Arc<Node>,
    id: String,
    waiter: Arc<Waiter>,
}

impl Waiting {
    fn new(node: &Arc<Node>, id: &str) -> Waiting {
        let waiter = node.intake.wait_for(id);
        Waiting { node: node.clone(), id: id.to_string(), waiter }
    }

    /// Waits until the package is decided and its executor reports it settled (every
    /// reachable bank applied the outcome, so balances show it), or `max` passes. A decided
    /// package whose settle notice does not come (decided by a presumed abort, or the notice
    /// lost) is answered after `peer_timeout_ms`. Returns the record.
    async fn wait(&self, max: Duration) -> Result<Record, Error> {
        let node = &self.node;
        let deadline = tokio::time::Instant::now() + max;
        let grace = Duration::from_millis(node.ctx.timing.peer_timeout_ms);
        let mut grace_ends = None;
        loop {
            // Registered before looking, so a notice in between is not missed.
            let settled = self.waiter.notify.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let (decided, is_settled) = self.waiter.state();
            if let (Some(r), true) = (&decided, is_settled) {
                return Ok(r.clone());
            }
            let limit = match decided {
                Some(_) => *grace_ends.get_or_insert_with(|| deadline.min(tokio::time::Instant::now() + grace)),
                None => deadline,
            };
            if tokio::time::timeout_at(limit, settled).await.is_err() {
                return match self.waiter.state().0 {
                    Some(r) => Ok(r),
                    None => {
                        let id = self.id.clone();
                        node.storage.db(move |s| s.record(&id)).await?.ok_or_else(|| Error::internal("accepted package vanished"))
                    }
                };
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.node.intake.stop_waiting(&self.id, &self.waiter);
    }
}

/// A package's status, to one who signed it, a holder of one of this bank's accounts it
/// touches, or a teller.
#[utoipa::path(get, path = "/packages/{id}", tag = "packages", params(("id" = String, Path, description = "the package's id (its idempotency key)", example = "deposit-1")), security(("read_statement" = [])), responses(
    (status = 200, description = "the package's status", body = PackageView),
    (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
    (status = 404, response = Missing), (status = 429, response = TooMany), (status = 500, response = Internal), (status = 503, response = Unavailable),
))]
async fn get_package(State(node): S, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<PackageView>, ApiError> {
    let who = reader(&node, &headers, &read::scope_package(&id)).await?;
    let i = id.clone();
    let (record, compacted) = node.storage.db(move |s| Ok((s.record(&i)?, s.compacted_expiry()? > 0))).await?;
    let Some(r) = record else {
        return match who {
            // Once history was compacted, an unknown id may be a settled package's.
            Reader::Teller if compacted => Err(Error::not_found("package_not_found", format!("no record of package {id} here: never submitted, or settled at every bank and compacted (its accounts' statements keep it)")).into()),
            Reader::Teller => Err(Error::not_found("package_not_found", format!("no package {id} was submitted to this bank")).into()),
            Reader::User(_) => Err(read::not_yours("package").into()),
        };
    };
    let holds = holdings(&node, &who, &r.package).await?;
    if !read::may_read_package(&who, &r.package, |_, key| holds.iter().any(|h| h == key), &node.ctx.me) {
        return Err(read::not_yours("package").into());
    }
    Ok(Json(view(&r)))
}

/// Which of this bank's accounts that `p` touches the reader holds.
async fn holdings(node: &Arc<Node>, who: &Reader, p: &Package) -> Result<Vec<String>, Error> {
    let Reader::User(c) = who.clone() else { return Ok(Vec::new()) };
    let me = node.ctx.me.clone();
    let keys: Vec<String> = p.operations.iter().flat_map(|op| [op.from.as_ref(), op.to.as_ref()]).flatten().filter(|r| r.bank == me).map(|r| r.account.clone()).collect();
    node.storage.db(move |s| {
        let mut out = Vec::new();
        for k in keys {
            if s.account(&k)?.is_some_and(|a| a.holders.contains(&c)) {
                out.push(k);
            }
        }
        Ok(out)
    })
    .await
}

/// This bank's view of the consortium: its peers, the token, its queues and counters.
#[utoipa::path(get, path = "/status", tag = "operations", responses(
    (status = 200, description = "this bank's view: peers, token, queues, counters (nothing about customers)", body = StatusView),
    (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn status(State(node): S) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(node.status().await?))
}

/// Prometheus's scrape: what `/status` counts, the live gauges, and the histograms
/// (`metrics`). Nothing about customers.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus/OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
    (status = 429, response = TooMany), (status = 500, response = Internal),
))]
async fn metrics(State(node): S) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String), ApiError> {
    let s = node.status().await?;
    let history = node.storage.db(|s| s.sizes()).await?;
    let gauges = crate::metrics::Gauges { peers_online: s.peers.iter().filter(|p| p.online).count() as i64, queued: s.queued as i64, in_doubt: s.in_doubt as i64, history };
    let text = node.ctx.metrics.render(&s.counters, &gauges);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text))
}

/// The process answers: what a supervisor restarts on.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses(
    (status = 200, description = "the process answers", body = Live),
    (status = 429, response = TooMany),
))]
async fn live() -> Json<Live> {
    Json(Live { live: true })
}

/// Whether this bank can serve: its storage answers, and it has seen a token (or is creating
/// one). What a load balancer sends clients on; 503 with the reason otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "operations", responses(
    (status = 200, description = "this bank can serve", body = Ready),
    (status = 429, response = TooMany),
    (status = 503, description = "`not_ready`: storage does not answer, or no token ring seen yet", body = ErrorBody),
))]
async fn ready(State(node): S) -> Result<Json<Ready>, ApiError> {
    // A stuck call first: a read would only queue behind it.
    if let Some(age) = node.storage.stuck() {
        return Err(Error::unavailable("not_ready", format!("a storage call has taken {} ms", age.as_millis())).into());
    }
    node.storage.db(|s| s.epoch_gen()).await.map_err(|e| Error::unavailable("not_ready", format!("storage does not answer: {}", e.message)))?;
    if !node.ring.view().seen() {
        return Err(Error::unavailable("not_ready", "this bank has not yet seen the token ring").into());
    }
    Ok(Json(Ready { ready: true }))
}
