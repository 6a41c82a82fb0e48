//! The bank's side of a user's read (the statement itself is the core's `trust::read`): the
//! reader's key from this bank's own registry, or its tellers', and the replay guard.

use crate::context::Context;
use crate::error::Error;
use crate::store::Storage;
pub use consortium_core::trust::read::*;
use super::keys;
use super::request::Nonces;
use std::sync::{Arc, Mutex};

/// What checking reads needs: the handle the read routes hold. Cheap to clone.
#[derive(Clone)]
pub struct Reads {
    ctx: Context,
    storage: Storage,
    /// Nonces of recent read statements of users and tellers (a replayed read is refused);
    /// apart from the banks', so a flood of reads cannot crowd out the ring's messages.
    nonces: Arc<Mutex<Nonces>>,
}

impl Reads {
    pub fn new(ctx: Context, storage: Storage) -> Reads {
        Reads { ctx, storage, nonces: Arc::new(Mutex::new(Nonces::default())) }
    }

    /// Who reads `scope` at this bank, as the statement (the `authorization` header) proves; `audience` is whom the
    /// statement must name (this bank, or for a forwarded lookup the bank that forwarded it).
    /// Refusals are counted by reason.
    pub async fn reader(&self, statement: Option<&str>, scope: &str, audience: &str) -> Result<Reader, Error> {
        let r = self.check(statement, scope, audience).await.and_then(|known| {
            // Whether a CPF is registered here is no secret (registering it again says so);
            // saying it plainly lets a user see they asked the wrong bank.
            known.ok_or_else(|| Error::forbidden("unknown_reader", "the reader's CPF is not a user of this bank"))
        });
        if let Err(e) = &r {
            self.ctx.count_refusal(e.code);
        }
        r
    }

    /// `reader`, for the consortium-wide lookup, where a user this bank does not know is the
    /// usual case and no refusal: `None` then (the statement still checked for its scope,
    /// audience and time, with no key to check its signature against).
    pub async fn reader_if_known(&self, statement: Option<&str>, scope: &str, audience: &str) -> Result<Option<Reader>, Error> {
        let r = self.check(statement, scope, audience).await;
        if let Err(e) = &r {
            self.ctx.count_refusal(e.code);
        }
        r
    }

    /// The reader the statement proves, or None if it names a user this bank does not know.
    async fn check(&self, statement: Option<&str>, scope: &str, audience: &str) -> Result<Option<Reader>, Error> {
        let ctx = &self.ctx;
        let s = ReadStatement::parse(statement)?;
        let now = ctx.clock.now_ms();
        s.check(scope, audience, now)?;
        if s.time_ms < ctx.started_ms {
            return Err(Error::unauthorized("unauthenticated", "the read statement was made before this bank last started; make a new one"));
        }
        let keys = match &s.reader {
            Reader::Teller => ctx.tellers.clone(),
            Reader::User(c) => {
                let cc = c.clone();
                let key = self.storage.db(move |st| st.user(&cc)).await?.map(|u| u.key.as_deref().and_then(keys::PublicKey::from_hex));
                match key {
                    None => return Ok(None),
                    Some(k) => k.into_iter().collect(),
                }
            }
        };
        let planted = ctx.planted == crate::planted::PlantedBug::SkipReadSignatures;
        if !planted && !s.signed_by_one_of(&keys) {
            return Err(Error::forbidden("bad_signature", "the read statement is not signed by the reader's key as this bank holds it"));
        }
        let who = match &s.reader {
            Reader::User(c) => format!("user {}", c.as_str()),
            Reader::Teller => "teller".to_string(),
        };
        self.nonces.lock().unwrap().first(s.time_ms, &who, s.nonce, now)?;
        Ok(Some(s.reader))
    }
}
