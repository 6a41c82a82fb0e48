//! The signature on every bank-to-bank request. A bank signs, with its own key, who sends the
//! request, to whom, under which manifest, the method and path, the time, a nonce, and the
//! body's length and SHA-256; all of it travels in one header, `x-bank-auth`. The receiver
//! checks the header before reading the body (so only members can make it read a large one),
//! then the body against the signed length and hash. Application-layer, so it runs in the
//! simulator too; TLS, where used, adds confidentiality, not identity.

use super::keys::BankKey;
use super::manifest::Manifest;
use super::{hex, put, unhex};
use crate::error::Error;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const AUTH_HEADER: &str = "x-bank-auth";
const REQUEST_DOMAIN: &[u8] = b"bank-consortium/peer-request/v1";
/// How far a request's time may be from the receiver's clock (both ways).
pub const MAX_SKEW_MS: u64 = 30_000;
/// Most nonces remembered at once; past it, new requests are refused until old ones expire
/// (a member flooding this bank cannot make it forget what it must refuse as a replay).
const MAX_NONCES: usize = 1 << 20;

/// What a request's signature covers.
pub struct Signed<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub manifest: [u8; 32],
    pub method: &'a str,
    pub path: &'a str,
    pub time_ms: u64,
    pub nonce: [u8; 16],
    pub body_len: u64,
    pub body_sha: [u8; 32],
}

impl Signed<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        put(&mut b, REQUEST_DOMAIN);
        put(&mut b, self.from.as_bytes());
        put(&mut b, self.to.as_bytes());
        put(&mut b, &self.manifest);
        put(&mut b, self.method.as_bytes());
        put(&mut b, self.path.as_bytes());
        b.extend_from_slice(&self.time_ms.to_be_bytes());
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.body_len.to_be_bytes());
        b.extend_from_slice(&self.body_sha);
        b
    }
}

/// The `x-bank-auth` header value for a request from `key`'s bank.
pub fn sign(key: &BankKey, s: &Signed) -> String {
    let sig = key.sign(&s.bytes());
    // v1 FROM MANIFEST-HASH TIME NONCE LEN SHA SIG
    format!("v1 {} {} {} {} {} {} {}", s.from, hex(&s.manifest), s.time_ms, hex(&s.nonce), s.body_len, hex(&s.body_sha), hex(&sig))
}

/// Signs `call` (to bank `to`) as bank `from` with `key`: sets its `x-bank-auth` header,
/// replacing any earlier one. The one way requests get signed, by nodes and by the simulator
/// when its network sends a request again (a new request: a new nonce).
pub fn sign_call(key: &BankKey, manifest: [u8; 32], from: &str, to: &str, call: &mut crate::net::Call, time_ms: u64, nonce: [u8; 16]) {
    let body = call.body.as_deref().unwrap_or_default();
    let s = Signed { from, to, manifest, method: call.method.as_str(), path: &call.path, time_ms, nonce, body_len: body.len() as u64, body_sha: body_sha(body) };
    let header = sign(key, &s);
    call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(AUTH_HEADER));
    call.headers.push((AUTH_HEADER.to_string(), header));
}

pub fn body_sha(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// A request whose header checked out: its sender, and what its body must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub from: String,
    pub time_ms: u64,
    pub nonce: [u8; 16],
    pub body_len: u64,
    pub body_sha: [u8; 32],
}

fn bad(m: impl Into<String>) -> Error {
    Error::unauthorized("unauthenticated", m)
}

/// Checks a request's header for bank `me` at `now_ms`: a member other than `me` signed this
/// very request under the same manifest, at a time within `MAX_SKEW_MS`. The body is checked
/// separately (`check_body`), after the header said how long it may be.
pub fn verify(manifest: &Manifest, me: &str, header: Option<&str>, method: &str, path: &str, now_ms: u64) -> Result<Verified, Error> {
    let h = header.ok_or_else(|| bad(format!("a call between banks needs a signed {AUTH_HEADER} header")))?;
    let f: Vec<&str> = h.split(' ').collect();
    let [v, from, mh, time, nonce, len, sha, sig] = f.as_slice() else {
        return Err(bad(format!("malformed {AUTH_HEADER} header")));
    };
    if *v != "v1" {
        return Err(bad(format!("{AUTH_HEADER}: unknown version {v:?}")));
    }
    let key = manifest.key_of(from).filter(|_| *from != me).ok_or_else(|| Error::forbidden("not_a_member", format!("{from:?} is not another bank of this consortium")))?;
    let mh = unhex::<32>(mh).ok_or_else(|| bad("malformed manifest hash"))?;
    if mh != manifest.hash() {
        return Err(Error::forbidden("manifest_differs", format!("{from} runs another manifest ({}…, this bank's is {}…)", &hex(&mh)[..12], &manifest.hash_hex()[..12])));
    }
    let (Ok(time_ms), Some(nonce), Ok(body_len), Some(body_sha), Some(sig)) = (time.parse::<u64>(), unhex::<16>(nonce), len.parse::<u64>(), unhex::<32>(sha), unhex::<64>(sig)) else {
        return Err(bad(format!("malformed {AUTH_HEADER} header")));
    };
    let signed = Signed { from, to: me, manifest: mh, method, path, time_ms, nonce, body_len, body_sha };
    if !key.verify(&signed.bytes(), &sig) {
        return Err(bad(format!("signature of {from} does not verify (for {me}, {method} {path})")));
    }
    if time_ms.abs_diff(now_ms) > MAX_SKEW_MS {
        return Err(bad(format!("request time {time_ms} is {} ms from this bank's clock (at most {MAX_SKEW_MS})", time_ms.abs_diff(now_ms))));
    }
    Ok(Verified { from: from.to_string(), time_ms, nonce, body_len, body_sha })
}

pub fn check_body(v: &Verified, body: &[u8]) -> Result<(), Error> {
    if body.len() as u64 != v.body_len || body_sha(body) != v.body_sha {
        return Err(bad(format!("the body is not the one {} signed", v.from)));
    }
    Ok(())
}

/// Remembers the nonces of recent requests, so a captured request cannot be played again
/// while its time is still acceptable.
#[derive(Default)]
pub struct Nonces {
    seen: BTreeMap<(u64, String, [u8; 16]), ()>,
}

impl Nonces {
    /// True if this is the first time the request is seen; forgets what is too old to pass
    /// the time check anyway.
    pub fn first_time(&mut self, v: &Verified, now_ms: u64) -> Result<(), Error> {
        let oldest = now_ms.saturating_sub(MAX_SKEW_MS);
        while let Some(((t, _, _), _)) = self.seen.first_key_value() {
            if *t >= oldest {
                break;
            }
            self.seen.pop_first();
        }
        if self.seen.len() >= MAX_NONCES {
            return Err(Error::unavailable("busy", "too many recent requests to remember; try again"));
        }
        if self.seen.insert((v.time_ms, v.from.clone(), v.nonce), ()).is_some() {
            return Err(bad(format!("a request of {} played again (nonce {} seen)", v.from, hex(&v.nonce))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::manifest::{BankEntry, SharedTiming};

    fn setup() -> (Manifest, BankKey, BankKey) {
        let (a, b) = (BankKey::from_seed([1; 32]), BankKey::from_seed([2; 32]));
        let m = Manifest::new(
            vec![BankEntry { address: "a:1".into(), public_key: a.public().to_hex() }, BankEntry { address: "b:1".into(), public_key: b.public().to_hex() }],
            SharedTiming::default(),
        )
        .unwrap();
        (m, a, b)
    }

    fn header(m: &Manifest, key: &BankKey, from: &str, to: &str, path: &str, time_ms: u64, body: &[u8]) -> String {
        let s = Signed { from, to, manifest: m.hash(), method: "POST", path, time_ms, nonce: [7; 16], body_len: body.len() as u64, body_sha: body_sha(body) };
        sign(key, &s)
    }

    #[test]
    fn a_signed_request_verifies_once_for_its_recipient_only() {
        let (m, a, b) = setup();
        let h = header(&m, &a, "a:1", "b:1", "/peer/token", 1_000_000, b"{}");
        let v = verify(&m, "b:1", Some(&h), "POST", "/peer/token", 1_000_500).unwrap();
        assert_eq!(v.from, "a:1");
        assert!(check_body(&v, b"{}").is_ok());
        assert!(check_body(&v, b"{ }").is_err(), "another body");
        let mut n = Nonces::default();
        assert!(n.first_time(&v, 1_000_500).is_ok());
        assert!(n.first_time(&v, 1_000_600).is_err(), "a replay");
        let code = |r: Result<Verified, Error>| r.unwrap_err().code;
        assert_eq!(code(verify(&m, "a:1", Some(&h), "POST", "/peer/token", 1_000_000)), "not_a_member", "to itself");
        assert_eq!(code(verify(&m, "c:1", Some(&h), "POST", "/peer/token", 1_000_000)), "unauthenticated", "sent to another bank");
        assert_eq!(code(verify(&m, "b:1", Some(&h), "POST", "/peer/finish", 1_000_000)), "unauthenticated", "another path");
        assert_eq!(code(verify(&m, "b:1", Some(&h), "GET", "/peer/token", 1_000_000)), "unauthenticated", "another method");
        assert_eq!(code(verify(&m, "b:1", Some(&h), "POST", "/peer/token", 1_000_000 + MAX_SKEW_MS + 1)), "unauthenticated", "too old");
        assert_eq!(code(verify(&m, "b:1", None, "POST", "/peer/token", 1_000_000)), "unauthenticated");
        assert_eq!(code(verify(&m, "b:1", Some("v1 a:1"), "POST", "/peer/token", 1_000_000)), "unauthenticated");
        // Signed by b but claiming to be a.
        let forged = header(&m, &b, "a:1", "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&m, "b:1", Some(&forged), "POST", "/peer/token", 1_000_000)), "unauthenticated");
        // An outsider's key.
        let x = BankKey::from_seed([9; 32]);
        let h = header(&m, &x, "x:1", "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&m, "b:1", Some(&h), "POST", "/peer/token", 1_000_000)), "not_a_member");
        // Another manifest.
        let other = Manifest::new(vec![BankEntry { address: "a:1".into(), public_key: a.public().to_hex() }], SharedTiming::default()).unwrap();
        let h = header(&other, &a, "a:1", "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&m, "b:1", Some(&h), "POST", "/peer/token", 1_000_000)), "manifest_differs");
    }

    #[test]
    fn old_nonces_are_forgotten_once_their_time_cannot_pass() {
        let (m, a, _) = setup();
        let mut n = Nonces::default();
        let h = header(&m, &a, "a:1", "b:1", "/p", 1_000, b"");
        let v = verify(&m, "b:1", Some(&h), "POST", "/p", 1_000).unwrap();
        n.first_time(&v, 1_000).unwrap();
        n.first_time(&Verified { time_ms: 2_000_000, ..v.clone() }, 2_000_000).unwrap();
        assert_eq!(n.seen.len(), 1, "the old one is gone");
    }
}
