//! The operator's routes (`/admin/...`) on a running bank: the same operations as `node admin`
//! on a stopped one (`crate::admin`). Each needs the bank's teller's signed statement, as a
//! read does (`authorization: Consortium-Read v1 teller ...`), with the scope `admin/{name}`:
//! one way to sign, not a second scheme. A user's statement is refused, whatever it reads.

use super::ApiError;
use crate::error::Error;
use crate::node::Node;
use crate::wire::{Fingerprints, InDoubtList, ReconcileView};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use super::client::Page;
use consortium_core::domain::journal::Statement;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use consortium_core::trust::read;
use std::sync::Arc;

type S = State<Arc<Node>>;

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/admin/in-doubt", get(in_doubt))
        .route("/admin/statement/{key}", get(statement))
        .route("/admin/fingerprints", get(fingerprints))
        .route("/admin/reconcile", get(reconcile))
        .route("/admin/backup", get(backup))
}

/// Only this bank's teller, with a fresh statement for exactly this operation.
async fn operator(node: &Arc<Node>, headers: &HeaderMap, what: &str) -> Result<(), Error> {
    let statement = headers.get(read::HEADER).and_then(|v| v.to_str().ok());
    let who = node.reads.reader(statement, &read::scope_admin(what), &node.ctx.me).await?;
    if !read::may_administer(&who) {
        node.ctx.count_refusal("not_operator");
        return Err(Error::forbidden("not_operator", "only this bank's operator (its teller key) uses the admin routes"));
    }
    Ok(())
}

async fn in_doubt(State(node): S, headers: HeaderMap) -> Result<Json<InDoubtList>, ApiError> {
    operator(&node, &headers, "in-doubt").await?;
    let (me, now) = (node.ctx.me.clone(), node.ctx.clock.now_ms());
    Ok(Json(node.storage.db(move |s| crate::admin::in_doubt(s, &me, now)).await?))
}

/// Any account's statement, a page at a time (the operator's export; a holder reads their own
/// at `/accounts/{key}/statement`). The scope names the account: a statement signed for one
/// account reads no other.
async fn statement(
    State(node): S,
    headers: HeaderMap,
    Path(key): Path<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Statement>, ApiError> {
    let (from, limit) = Page::of(page)?;
    operator(&node, &headers, &format!("statement/{key}")).await?;
    Ok(Json(node.storage.db(move |s| s.statement(&key, from, limit)).await?))
}

async fn fingerprints(State(node): S, headers: HeaderMap) -> Result<Json<Fingerprints>, ApiError> {
    operator(&node, &headers, "fingerprints").await?;
    Ok(Json(crate::admin::fingerprints(&node.ctx.me, &node.ctx.manifest, &node.ctx.tellers)))
}

async fn reconcile(State(node): S, headers: HeaderMap) -> Result<Json<ReconcileView>, ApiError> {
    operator(&node, &headers, "reconcile").await?;
    Ok(Json(node.storage.db(|s| crate::admin::reconcile_view(s)).await?))
}

/// A consistent copy of the whole database, made now (one read transaction: packages keep
/// moving meanwhile) into a private temporary folder of the server's choosing, sent as the
/// body, and removed. The caller chooses no server path.
async fn backup(State(node): S, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    operator(&node, &headers, "backup").await?;
    let bytes = node
        .storage
        .db(|s| {
            let dir = tempfile::tempdir().map_err(|e| Error::internal(format!("backup: no temporary folder: {e}")))?;
            let path = dir.path().join("backup.redb");
            s.backup_to(&path)?;
            std::fs::read(&path).map_err(|e| Error::internal(format!("backup: {e}")))
        })
        .await?;
    node.ctx.emit("backup", format!("{} bytes sent to the operator", bytes.len()));
    let name = format!("attachment; filename=\"{}.redb\"", node.ctx.me.replace(':', "_"));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_DISPOSITION, name)], bytes))
}
