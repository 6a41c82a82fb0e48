//! Passing a user's key rotations on to the other banks. Each bank checks every rotation
//! against its own binding, so passing one on vouches for nothing; it only spares the user
//! announcing it at every bank. A bank that was down when a rotation was announced gets the
//! kept chain when it is back (remembered in memory per bank: a restart of this bank forgets
//! it, and the user's next rotation carries the chain again). A bank that answers with a key
//! that does not follow from this bank's raises the `key_mismatch` alert.

use crate::context::Context;
use crate::domain::Cpf;
use crate::peers::{PeerError, Peers};
use crate::store::Storage;
use crate::wire::RotationChain;
use hyper::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The rotations other banks have yet to get: the handle that passes them on. Cheap to clone.
/// Built before the peers' handle (whose return it is told of), so each call names `peers`.
#[derive(Clone)]
pub struct Rotations {
    ctx: Context,
    storage: Storage,
    /// Users whose key rotations a bank that was down has not received, by bank.
    pending: Arc<Mutex<BTreeMap<String, BTreeSet<Cpf>>>>,
}

impl Rotations {
    pub fn new(ctx: Context, storage: Storage) -> Rotations {
        Rotations { ctx, storage, pending: Arc::new(Mutex::new(BTreeMap::new())) }
    }

    /// Sends `cpf`'s rotations to every other bank: now to those online, when they are back to
    /// the others.
    pub fn pass_on(&self, peers: &Peers, cpf: &Cpf) {
        for bank in self.ctx.members().into_iter().filter(|b| *b != self.ctx.me) {
            if peers.is_online(&bank) {
                tokio::spawn(self.clone().send(peers.clone(), bank, cpf.clone()));
            } else {
                self.pending.lock().unwrap().entry(bank).or_default().insert(cpf.clone());
            }
        }
    }

    /// `peer` is back: the rotations it missed.
    pub fn flush(&self, peers: &Peers, peer: &str) {
        let missed = self.pending.lock().unwrap().remove(peer).unwrap_or_default();
        for cpf in missed {
            tokio::spawn(self.clone().send(peers.clone(), peer.to_string(), cpf));
        }
    }

    async fn send(self, peers: Peers, peer: String, cpf: Cpf) {
        let c = cpf.clone();
        let Ok(Some(user)) = self.storage.db(move |s| s.user(&c)).await else { return };
        if user.rotations.is_empty() {
            return;
        }
        let path = format!("/peer/users/{}/key", cpf.as_str());
        match peers.call::<_, usize>(&peer, Method::POST, &path, Some(&RotationChain { rotations: user.rotations })).await {
            Ok(_) => {}
            Err(PeerError::Unreachable(_)) => {
                self.pending.lock().unwrap().entry(peer).or_default().insert(cpf);
            }
            Err(PeerError::Refused(_, body)) if body.contains("\"key_mismatch\"") || body.contains("\"rotation_gap\"") => {
                mismatch(&self.ctx, &peer, "it holds a key the rotations this bank passed on do not follow from");
            }
            Err(_) => {}
        }
    }
}

/// Another bank holds a key for one of this bank's users that does not agree with this
/// bank's: counted, and logged as a warning without the CPF (the operators compare their
/// records for the user through their admin tools, not through logs).
pub fn mismatch(ctx: &Context, peer: &str, why: &str) {
    ctx.count(|c| c.key_mismatches += 1);
    ctx.emit("key_mismatch", format!("{peer} and this bank hold different keys for a user: {why}; check the person and reset the wrong key"));
}
