//! Routes between banks. Every message is idempotent: a repeat (a retry, or a duplicate the
//! network made) answers what the first one did and changes nothing more.

use super::wire::{Alert, Block, Decide, Finish, PackageView, PassAnswer, Ping, Prepare, Probe, TokenPass, Votes};
use super::{PeerBody as Body, PEER_KEY_HEADER};
use crate::error::Error;
use crate::node::Node;
use crate::package::executor;
use crate::ring::driver;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

type S = State<Arc<Node>>;

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
        .route("/settled", post(settled))
        .layer(middleware::from_fn_with_state(node, require_key))
}

/// With a consortium key configured, only banks that know it may use these routes.
async fn require_key(State(node): S, req: Request, next: Next) -> Response {
    if let Some(secret) = &node.secret {
        let given = req.headers().get(PEER_KEY_HEADER).and_then(|v| v.to_str().ok());
        if given != Some(secret.as_str()) {
            return Error::new(crate::error::Kind::Rule, "forbidden", "bank-to-bank route: missing or wrong consortium key")
                .into_response();
        }
    }
    next.run(req).await
}

async fn ping(State(node): S) -> Json<Ping> {
    Json(Ping { bank: node.me.clone() })
}

async fn token(State(node): S, Body(pass): Body<TokenPass>) -> Result<Json<PassAnswer>, Error> {
    Ok(Json(driver::receive(&node, pass)?))
}

async fn probe(State(node): S) -> Json<Probe> {
    Json(driver::probe(&node))
}

async fn alert(State(node): S, Body(a): Body<Alert>) -> Result<Json<bool>, Error> {
    Ok(Json(driver::receive_alert(&node, a)?))
}

async fn block(State(node): S, Body(b): Body<Block>) -> Result<Json<bool>, Error> {
    driver::receive_block(&node, b)?;
    Ok(Json(true))
}

/// Until banks sign their messages, nothing says who sent a 2PC message: it is reported as
/// coming from the network.
pub(crate) const UNKNOWN_SENDER: &str = "unauthenticated peer";

async fn prepare(State(node): S, Body(p): Body<Vec<Prepare>>) -> Result<Json<Vec<Votes>>, Error> {
    Ok(Json(executor::prepare_here(&node, UNKNOWN_SENDER, p).await?))
}

async fn finish(State(node): S, Body(f): Body<Vec<Finish>>) -> Result<Json<usize>, Error> {
    Ok(Json(executor::finish_here(&node, UNKNOWN_SENDER, f).await?))
}

async fn decide(State(node): S, Body(d): Body<Vec<Decide>>) -> Result<Json<Vec<PackageView>>, Error> {
    Ok(Json(executor::decide_here(&node, UNKNOWN_SENDER, d).await?))
}

async fn settled(State(node): S, Body(ids): Body<Vec<String>>) -> Json<bool> {
    crate::package::intake::tell_settled(&node, &ids);
    Json(true)
}

async fn outcome(State(node): S, Path(id): Path<String>) -> Result<Json<PackageView>, Error> {
    let i = id.clone();
    match node.db(move |s| s.record(&i)).await? {
        Some(r) => Ok(Json(PackageView { id, status: r.status, results: r.results })),
        None => Err(Error::not_found("package_not_found", format!("no package {id} at this origin"))),
    }
}
