//! The bank's side of a user's read (the statement itself is the core's `trust::read`): the
//! reader's key from this bank's own registry, or its tellers', and the replay guard.

use crate::error::Error;
use crate::node::Node;
pub use consortium_core::trust::read::*;
use super::keys;
use std::sync::Arc;

/// Who reads `scope` at this bank, as the statement (the `authorization` header) proves; `audience` is whom the
/// statement must name (this bank, or for a forwarded lookup the bank that forwarded it).
/// Refusals are counted by reason.
pub async fn reader(node: &Arc<Node>, statement: Option<&str>, scope: &str, audience: &str) -> Result<Reader, Error> {
    let r = check(node, statement, scope, audience).await;
    if let Err(e) = &r {
        node.count_refusal(e.code);
    }
    r
}

async fn check(node: &Arc<Node>, statement: Option<&str>, scope: &str, audience: &str) -> Result<Reader, Error> {
    let s = ReadStatement::parse(statement)?;
    let now = node.clock.now_ms();
    s.check(scope, audience, now)?;
    if s.time_ms < node.started_ms {
        return Err(Error::unauthorized("unauthenticated", "the read statement was made before this bank last started; make a new one"));
    }
    let keys = match &s.reader {
        Reader::Teller => node.tellers.clone(),
        Reader::User(c) => {
            let cc = c.clone();
            let key = node.db(move |st| st.user(&cc)).await?.map(|u| u.key.as_deref().and_then(keys::PublicKey::from_hex));
            match key {
                // Whether a CPF is registered here is no secret (registering it again says
                // so); saying it plainly lets a user see they asked the wrong bank.
                None => return Err(Error::forbidden("unknown_reader", format!("CPF {} is not a user of this bank", c.formatted()))),
                Some(k) => k.into_iter().collect(),
            }
        }
    };
    let planted = node.planted == crate::planted::PlantedBug::SkipReadSignatures;
    if !planted && !s.signed_by_one_of(&keys) {
        return Err(Error::forbidden("bad_signature", "the read statement is not signed by the reader's key as this bank holds it"));
    }
    let who = match &s.reader {
        Reader::User(c) => format!("user {}", c.as_str()),
        Reader::Teller => "teller".to_string(),
    };
    node.read_nonces.lock().unwrap().first(s.time_ms, &who, s.nonce, now)?;
    Ok(s.reader)
}


