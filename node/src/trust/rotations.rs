//! Passing a user's key rotations on to the other banks. Each bank checks every rotation
//! against its own binding, so passing one on vouches for nothing; it only spares the user
//! announcing it at every bank. A bank that was down when a rotation was announced gets the
//! kept chain when it is back (remembered in memory per bank: a restart of this bank forgets
//! it, and the user's next rotation carries the chain again). A bank that answers with a key
//! that does not follow from this bank's raises the `key_mismatch` alert.

use crate::domain::Cpf;
use crate::node::{Node, PeerError};
use crate::wire::RotationChain;
use hyper::Method;
use std::sync::Arc;

/// Sends `cpf`'s rotations to every other bank: now to those online, when they are back to
/// the others.
pub fn pass_on(node: &Arc<Node>, cpf: &Cpf) {
    for bank in node.members().into_iter().filter(|b| *b != node.me) {
        if node.peers.is_online(&bank) {
            tokio::spawn(send(node.clone(), bank, cpf.clone()));
        } else {
            node.rotations_pending.lock().unwrap().entry(bank).or_default().insert(cpf.clone());
        }
    }
}

/// `peer` is back: the rotations it missed.
pub fn flush(node: &Arc<Node>, peer: &str) {
    let missed = node.rotations_pending.lock().unwrap().remove(peer).unwrap_or_default();
    for cpf in missed {
        tokio::spawn(send(node.clone(), peer.to_string(), cpf));
    }
}

async fn send(node: Arc<Node>, peer: String, cpf: Cpf) {
    let c = cpf.clone();
    let Ok(Some(user)) = node.db(move |s| s.user(&c)).await else { return };
    if user.rotations.is_empty() {
        return;
    }
    let path = format!("/peer/users/{}/key", cpf.as_str());
    match node.call::<_, usize>(&peer, Method::POST, &path, Some(&RotationChain { rotations: user.rotations })).await {
        Ok(_) => {}
        Err(PeerError::Unreachable(_)) => {
            node.rotations_pending.lock().unwrap().entry(peer).or_default().insert(cpf);
        }
        Err(PeerError::Refused(_, body)) if body.contains("\"key_mismatch\"") || body.contains("\"rotation_gap\"") => {
            mismatch(&node, &peer, "it holds a key the rotations this bank passed on do not follow from");
        }
        Err(_) => {}
    }
}

/// Another bank holds a key for one of this bank's users that does not agree with this
/// bank's: counted, and logged as a warning without the CPF (the operators compare their
/// records for the user through their admin tools, not through logs).
pub fn mismatch(node: &Node, peer: &str, why: &str) {
    node.count(|c| c.key_mismatches += 1);
    node.emit("key_mismatch", format!("{peer} and this bank hold different keys for a user: {why}; check the person and reset the wrong key"));
}
