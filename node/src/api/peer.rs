//! Routes between banks. Every request is authenticated before anything else (`authenticate`:
//! the sender's signature over the request, checked before the body is read), and every
//! handler knows which member sent it. Every message is idempotent: a repeat (a retry, or a
//! duplicate the network made) answers what the first one did and changes nothing more.

use super::ApiError;
use crate::wire::{Alert, Block, Decide, Finish, PackageView, PassAnswer, Ping, Prepare, Probe, TokenPass, Votes};
use super::{PeerBody as Body, MAX_PEER_BODY_BYTES};
use crate::error::Error;
use crate::node::Node;
use crate::ring::driver;
use crate::ring::machine::{Answer, Event};
use crate::trust::request::{self, AUTH_HEADER};
use crate::store::Lookup;
use consortium_core::package::compact::{Ack, Unknown};
use super::Remote;
use axum::extract::{ConnectInfo, Extension, OriginalUri, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

type S = State<Arc<Node>>;

/// The member that sent a request, as its signature proved.
#[derive(Clone, Debug)]
pub struct Sender(pub String);

type From = Extension<Sender>;

pub fn routes(node: Arc<Node>) -> Router<Arc<Node>> {
    Router::new()
        .route("/ping", get(ping))
        .route("/token", post(token))
        .route("/ring/probe", get(probe))
        .route("/ring/alert", post(alert))
        .route("/ring/block", post(block))
        .route("/prepare", post(prepare))
        .route("/finish", post(finish))
        .route("/decide", post(decide))
        .route("/outcome/{id}", get(outcome))
        .route("/reconcile", get(reconcile))
        .route("/settled", post(settled))
        .route("/acks", post(acks))
        .route("/users/{cpf}/key", get(user_key).post(rotated_key))
        .route("/users/{cpf}/accounts", post(forwarded_accounts))
        .layer(middleware::from_fn_with_state(node, authenticate))
}

/// Who sent a refused request, for the log: where it came from, and who it claims to be (an
/// attacker chooses that: shortened, no control characters).
fn claimed(remote: &str, header: Option<&str>) -> String {
    let who = header.and_then(|h| h.split(' ').nth(1)).unwrap_or("(no signature)");
    let who: String = who.chars().filter(|c| !c.is_control()).take(64).collect();
    format!("{remote} (unauthenticated, claims {who})")
}

/// Lets through only requests a member of this consortium signed for this bank, now, once;
/// reads the body only after the header said who sent it and how long it is.
async fn authenticate(State(node): S, req: Request, next: Next) -> Response {
    // A bank whose storage is stuck is down for the others until it is not: they route
    // around it rather than wait on it (and its ping answers say so too).
    if let Some(age) = node.storage.stuck() {
        let e = Error::unavailable("not_ready", format!("this bank's storage has not answered for {} ms", age.as_millis()));
        return axum::response::IntoResponse::into_response(ApiError::from(e));
    }
    let (parts, body) = req.into_parts();
    let header = parts.headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok());
    // The path as sent (this router is nested under /peer, which axum strips from `uri`).
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_string();
    let path = path.as_str();
    let now = node.ctx.clock.now_ms();
    let addr = parts.extensions.get::<ConnectInfo<Remote>>().map(|c| c.0 .0);
    let remote = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let refuse_replay = |who: String, e: Error, nonce: Option<String>| {
        node.ctx.refused_at(&who, addr, &e, nonce);
        super::answer(e)
    };
    let refuse = |who: String, e: Error| refuse_replay(who, e, None);
    let v = match request::verify(&node.peers.pairs, header, parts.method.as_str(), path, now) {
        Ok(v) => v,
        Err(e) => return refuse(claimed(&remote, header), e),
    };
    // Authenticated by a member, but the body or the nonce may still be an outsider's replay.
    let signer = format!("{remote} (authenticated as {})", v.from);
    if v.body_len > MAX_PEER_BODY_BYTES as u64 {
        let e = Error::new(crate::error::Kind::TooLarge, "body_too_large", format!("{} bytes; at most {MAX_PEER_BODY_BYTES}", v.body_len));
        return refuse(signer, e);
    }
    let bytes = match tokio::time::timeout(super::BODY_TIMEOUT, axum::body::to_bytes(body, v.body_len as usize)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return refuse(signer, Error::unauthorized("unauthenticated", format!("the body is longer than {} signed", v.from))),
        Err(_) => return refuse(signer, Error::bad_request("body_timeout", "the request body did not arrive in time")),
    };
    if let Err(e) = request::check_body(&v, &bytes) {
        return refuse(signer, e);
    }
    let first = node.nonces.lock().unwrap().first_time(&v, now);
    if let Err(e) = first {
        return refuse_replay(signer, e, Some(crate::trust::hex(&v.nonce)));
    }
    let mut req = Request::from_parts(parts, axum::body::Body::from(bytes));
    req.extensions_mut().insert(Sender(v.from));
    next.run(req).await
}

/// A message that names a sender other than the one who signed it.
fn impersonation(node: &Node, signer: &str, named: &str, what: &str) -> Error {
    node.ctx.refuse(signer, Error::forbidden("sender_mismatch", format!("{what} names {named} as its sender, but {signer} signed it")))
}

async fn ping(State(node): S) -> Json<Ping> {
    Json(Ping { bank: node.ctx.me.clone() })
}

async fn token(State(node): S, Extension(Sender(from)): From, Body(pass): Body<TokenPass>) -> Result<Json<PassAnswer>, ApiError> {
    if pass.from != from {
        return Err(impersonation(&node, &from, &pass.from, "a token pass").into());
    }
    match driver::ask(&node.ring, &node.ctx, &from, Event::TokenArrived(pass)).await? {
        Answer::Pass(a) => Ok(Json(a)),
        other => unreachable!("a token pass answered {other:?}"),
    }
}

async fn probe(State(node): S, Extension(Sender(from)): From) -> Result<Json<Probe>, ApiError> {
    match driver::ask(&node.ring, &node.ctx, &from, Event::ProbeAsked).await? {
        Answer::Probe(p) => Ok(Json(p)),
        other => unreachable!("a probe answered {other:?}"),
    }
}

async fn alert(State(node): S, Extension(Sender(from)): From, Body(a): Body<Alert>) -> Result<Json<bool>, ApiError> {
    if a.from != from {
        return Err(impersonation(&node, &from, &a.from, "an alert").into());
    }
    match driver::ask(&node.ring, &node.ctx, &from, Event::AlertArrived(a)).await? {
        Answer::Alert(started) => Ok(Json(started)),
        other => unreachable!("an alert answered {other:?}"),
    }
}

async fn block(State(node): S, Extension(Sender(from)): From, Body(b): Body<Block>) -> Result<Json<bool>, ApiError> {
    if b.from != from {
        return Err(impersonation(&node, &from, &b.from, "a block").into());
    }
    match driver::ask(&node.ring, &node.ctx, &from, Event::BlockArrived(b)).await? {
        Answer::Block => Ok(Json(true)),
        other => unreachable!("a block answered {other:?}"),
    }
}

async fn prepare(State(node): S, Extension(Sender(from)): From, Body(p): Body<Vec<Prepare>>) -> Result<Json<Vec<Votes>>, ApiError> {
    Ok(Json(node.executor.prepare_here(&from, p).await?))
}

async fn finish(State(node): S, Extension(Sender(from)): From, Body(f): Body<Vec<Finish>>) -> Result<Json<usize>, ApiError> {
    Ok(Json(node.executor.finish_here(&from, f).await?))
}

async fn decide(State(node): S, Extension(Sender(from)): From, Body(d): Body<Vec<Decide>>) -> Result<Json<Vec<PackageView>>, ApiError> {
    Ok(Json(node.executor.decide_here(&from, d).await?))
}

/// The key this bank registered for a CPF (another bank registering the same CPF compares).
async fn user_key(State(node): S, Path(cpf): Path<String>) -> Result<Json<crate::wire::UserKeyView>, ApiError> {
    let c = crate::domain::Cpf::parse(&cpf).map_err(|e| Error::bad_request("invalid_cpf", format!("invalid CPF: {e}")))?;
    let key = node.storage.db(move |s| s.user(&c)).await?.and_then(|u| u.key);
    Ok(Json(crate::wire::UserKeyView { key }))
}

/// A user's consortium-wide lookup, forwarded by the bank they asked (`from`): their statement
/// must name this lookup and that bank, and be signed by the key this bank holds for them.
/// A user this bank does not know has no accounts here.
async fn forwarded_accounts(
    State(node): S,
    Extension(Sender(from)): From,
    Path(cpf): Path<String>,
    Body(f): Body<crate::wire::ForwardedRead>,
) -> Result<Json<crate::wire::AccountList>, ApiError> {
    use consortium_core::trust::read::{self, Reader};
    let c = crate::domain::Cpf::parse(&cpf).map_err(|e| Error::bad_request("invalid_cpf", format!("invalid CPF: {e}")))?;
    let Some(who) = node.reads.reader_if_known(Some(&f.statement), &read::scope_consortium(&c), &from).await? else {
        return Ok(Json(crate::wire::AccountList { accounts: vec![] }));
    };
    if who != Reader::User(c.clone()) {
        return Err(read::not_yours("user's accounts").into());
    }
    let accounts = node.storage.db(move |s| s.accounts_of(&c)).await?;
    Ok(Json(crate::wire::AccountList { accounts: accounts.into_iter().map(Into::into).collect() }))
}

/// Rotations another bank applied and passes on (the ones it keeps, oldest first): each
/// checked against this bank's own binding, the missed ones applied. How many applied (a CPF
/// unknown here applies none); a chain that does not follow from this bank's key is refused
/// as `key_mismatch`, and the sender raises the alert.
async fn rotated_key(State(node): S, Path(cpf): Path<String>, Body(r): Body<crate::wire::RotationChain>) -> Result<Json<usize>, ApiError> {
    let c = crate::domain::Cpf::parse(&cpf).map_err(|e| Error::bad_request("invalid_cpf", format!("invalid CPF: {e}")))?;
    if r.rotations.len() > crate::domain::account::MAX_ROTATIONS_KEPT {
        return Err(Error::bad_request("too_many_rotations", format!("at most {} rotations", crate::domain::account::MAX_ROTATIONS_KEPT)).into());
    }
    Ok(Json(node.storage.db(move |s| s.catch_up_key(&c, &r.rotations)).await?))
}

async fn settled(State(node): S, Body(ids): Body<Vec<String>>) -> Json<bool> {
    node.intake.tell_settled(&ids);
    Json(true)
}

/// What a participant asking about a package knows of it: its expiry (`compact::lookup_unknown`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeQuery {
    expires_ms: Option<u64>,
}

/// A package's outcome at its origin. A 404 tells the asker nobody can ever commit it (it
/// aborts its legs), so it means "never recorded here": a package that may have been recorded
/// and compacted since gets 410, and a restored bank never says it of a package it may have
/// lost: while it reconciles, an unknown id is "not yet"; after, one it knows it lost is a
/// conflict.
async fn outcome(
    State(node): S,
    Path(id): Path<String>,
    q: Result<axum::extract::Query<OutcomeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PackageView>, ApiError> {
    let expires = q.map_err(|e| Error::bad_request("bad_query", format!("bad query: {e}")))?.0.expires_ms;
    let i = id.clone();
    let (lookup, lost) = node.storage.db(move |s| Ok((s.lookup(&i, expires)?, s.lost_package(&i)?))).await?;
    match (lookup, lost) {
        (_, Some(why)) => Err(Error::conflict("lost_in_restore", format!("package {id}: this bank cannot know its outcome since a restore ({why}); its operator settles it")).into()),
        (Lookup::Found(r), None) => Ok(Json(node.executor.view(&r))),
        (Lookup::Unknown(Unknown::MaybeCompacted), None) => {
            Err(Error::gone("package_compacted", format!("no record of {id} here now: it may have been decided, settled everywhere and compacted")).into())
        }
        (Lookup::Unknown(Unknown::NeverRecorded), None) if node.ctx.is_reconciling() => {
            Err(Error::unavailable("reconciling", format!("package {id}: this bank is re-learning its decisions after a restore; ask again later")).into())
        }
        (Lookup::Unknown(Unknown::NeverRecorded), None) => Err(Error::not_found("package_not_found", format!("no package {id} was ever recorded at this origin")).into()),
    }
}

/// A restored bank (the sender) re-learns what names it: the packages it originated that
/// this bank took part in (with its decisions as kept here), and this bank's decided packages
/// with legs at it (with this bank's signed decision). Only about the sender: a member
/// learns nothing here it did not take part in.
async fn reconcile(State(node): S, Extension(Sender(from)): From) -> Result<Json<crate::wire::ReconcileAnswer>, ApiError> {
    let f = from.clone();
    let (participated, records) = node.storage.db(move |s| Ok((s.participated_of(&f)?, s.records_touching(&f)?))).await?;
    let records = records
        .into_iter()
        .filter_map(|r| {
            let v = node.executor.view(&r);
            v.decision.map(|decision| crate::wire::DecidedRecord { package: r.package, decision })
        })
        .collect();
    node.ctx.emit("reconcile_asked", format!("{from} asked what names it"));
    Ok(Json(crate::wire::ReconcileAnswer { participated, records }))
}

/// The origin of these packages asks whether this bank has their outcomes: each is applied
/// here first (like a finish, with the origin's signed decision), then answered from this
/// bank's row (`compact::ack_of`). Only the package's origin may ask.
async fn acks(State(node): S, Extension(Sender(from)): From, Body(items): Body<Vec<Finish>>) -> Result<Json<Vec<Ack>>, ApiError> {
    if let Some(f) = items.iter().find(|f| f.origin != from) {
        return Err(impersonation(&node, &from, &f.origin, "an ack request").into());
    }
    Ok(Json(node.executor.acks_here(&from, items).await?))
}
