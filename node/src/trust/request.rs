//! The authentication of every bank-to-bank request. It covers who sends the request, to whom,
//! under which manifest, the method and path, the time, a nonce, and the body's length and
//! SHA-256; all of it travels in one header, `x-bank-auth`. The receiver checks the header
//! before reading the body (so only members can make it read a large one), then the body
//! against the authenticated length and hash. Application-layer, so it runs in the simulator
//! too; TLS, where used, adds confidentiality, not identity.
//!
//! The tag is an HMAC-SHA256 under a key only the two banks can compute: an X25519 agreement
//! between their Ed25519 keys (converted to Montgomery form, as for X25519; see
//! eprint 2021/509 on using one key for both), hashed with the manifest and the direction.
//! An Ed25519 signature per request cost ~70 µs of CPU for it and its check; the MAC costs
//! about a microsecond (BENCHMARKS.md, "the cost of trust"). What must be provable to a third
//! party (an origin's decision) is still signed with Ed25519.

use super::keys::BankKey;
use super::manifest::Manifest;
use super::{hex, put, unhex};
use crate::error::Error;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

type HmacSha256 = Hmac<Sha256>;
const PAIR_DOMAIN: &[u8] = b"bank-consortium/pair-key/v1";

pub const AUTH_HEADER: &str = "x-bank-auth";
const REQUEST_DOMAIN: &[u8] = b"bank-consortium/peer-request/v2";
/// How far a request's time may be from the receiver's clock (both ways).
pub const MAX_SKEW_MS: u64 = 30_000;
/// Most nonces remembered at once; past it, new requests are refused until old ones expire
/// (a member flooding this bank cannot make it forget what it must refuse as a replay).
const MAX_NONCES: usize = 1 << 20;

/// The keys one bank authenticates its requests with: per other member, the key of each
/// direction. Computed once, from this bank's key and the manifest.
#[derive(Clone)]
pub struct PairKeys {
    me: String,
    manifest: [u8; 32],
    /// Other bank → (key of requests to it, key of requests from it).
    keys: BTreeMap<String, ([u8; 32], [u8; 32])>,
}

/// Never prints a key.
impl std::fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PairKeys({} with {} banks)", self.me, self.keys.len())
    }
}

fn direction_key(manifest: &[u8; 32], from: &str, to: &str, shared: &[u8; 32]) -> [u8; 32] {
    let mut b = Vec::with_capacity(160);
    put(&mut b, PAIR_DOMAIN);
    put(&mut b, manifest);
    put(&mut b, from.as_bytes());
    put(&mut b, to.as_bytes());
    put(&mut b, shared);
    Sha256::digest(&b).into()
}

impl PairKeys {
    /// The keys of bank `me` (whose private key is `key`) with every other bank of `manifest`.
    /// A bank whose public key agrees on no secret (a small-order key) gets none: nothing
    /// from or to it authenticates.
    pub fn new(me: &str, key: &BankKey, manifest: &Manifest) -> PairKeys {
        let mut keys = BTreeMap::new();
        for other in manifest.addresses().into_iter().filter(|a| a != me) {
            let Some(public) = manifest.key_of(&other) else { continue };
            let shared = public.0.to_montgomery().mul_clamped(key.scalar_bytes()).to_bytes();
            if shared == [0u8; 32] {
                continue;
            }
            let h = manifest.hash();
            keys.insert(other.clone(), (direction_key(&h, me, &other, &shared), direction_key(&h, &other, me, &shared)));
        }
        PairKeys { me: me.to_string(), manifest: manifest.hash(), keys }
    }

    fn tag(key: &[u8; 32], s: &Signed) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&s.bytes());
        mac
    }
}

/// What a request's authentication covers.
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

/// The `x-bank-auth` header value for a request from `keys`' bank to `s.to` (None if this bank
/// shares no key with it: it is not a member).
pub fn sign(keys: &PairKeys, s: &Signed) -> Option<String> {
    let (send, _) = keys.keys.get(s.to)?;
    let tag = PairKeys::tag(send, s).finalize().into_bytes();
    // v2 FROM MANIFEST-HASH TIME NONCE LEN SHA TAG
    Some(format!("v2 {} {} {} {} {} {} {}", s.from, hex(&s.manifest), s.time_ms, hex(&s.nonce), s.body_len, hex(&s.body_sha), hex(&tag)))
}

/// Authenticates `call` (to bank `to`) as `keys`' bank: sets its `x-bank-auth` header,
/// replacing any earlier one. The one way requests get authenticated, by nodes and by the
/// simulator when its network sends a request again (a new request: a new nonce). A call to a
/// bank this one shares no key with goes without, and is refused there.
pub fn sign_call(keys: &PairKeys, to: &str, call: &mut crate::net::Call, time_ms: u64, nonce: [u8; 16]) {
    let body = call.body.as_deref().unwrap_or_default();
    let s = Signed {
        from: &keys.me,
        to,
        manifest: keys.manifest,
        method: call.method.as_str(),
        path: &call.path,
        time_ms,
        nonce,
        body_len: body.len() as u64,
        body_sha: body_sha(body),
    };
    call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(AUTH_HEADER));
    if let Some(header) = sign(keys, &s) {
        call.headers.push((AUTH_HEADER.to_string(), header));
    }
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

/// Checks a request's header for `keys`' bank at `now_ms`: another member of the same
/// manifest authenticated this very request, at a time within `MAX_SKEW_MS`. The body is
/// checked separately (`check_body`), after the header said how long it may be.
pub fn verify(keys: &PairKeys, header: Option<&str>, method: &str, path: &str, now_ms: u64) -> Result<Verified, Error> {
    let me = keys.me.as_str();
    let h = header.ok_or_else(|| bad(format!("a call between banks needs an authenticated {AUTH_HEADER} header")))?;
    let f: Vec<&str> = h.split(' ').collect();
    let [v, from, mh, time, nonce, len, sha, tag] = f.as_slice() else {
        return Err(bad(format!("malformed {AUTH_HEADER} header")));
    };
    if *v != "v2" {
        return Err(bad(format!("{AUTH_HEADER}: unknown version {v:?}")));
    }
    let (_, recv) = keys.keys.get(*from).ok_or_else(|| Error::forbidden("not_a_member", format!("{from:?} is not another bank of this consortium")))?;
    let mh = unhex::<32>(mh).ok_or_else(|| bad("malformed manifest hash"))?;
    if mh != keys.manifest {
        return Err(Error::forbidden("manifest_differs", format!("{from} runs another manifest ({}…, this bank's is {}…)", &hex(&mh)[..12], &hex(&keys.manifest)[..12])));
    }
    let (Ok(time_ms), Some(nonce), Ok(body_len), Some(body_sha), Some(tag)) = (time.parse::<u64>(), unhex::<16>(nonce), len.parse::<u64>(), unhex::<32>(sha), unhex::<32>(tag)) else {
        return Err(bad(format!("malformed {AUTH_HEADER} header")));
    };
    let signed = Signed { from, to: me, manifest: mh, method, path, time_ms, nonce, body_len, body_sha };
    // Constant-time comparison (hmac's verify).
    if PairKeys::tag(recv, &signed).verify_slice(&tag).is_err() {
        return Err(bad(format!("authentication of {from} does not verify (for {me}, {method} {path})")));
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
        self.first(v.time_ms, &v.from, v.nonce, now_ms).map_err(|e| match e.code {
            "replayed" => bad(format!("a request of {} played again (nonce {} seen)", v.from, hex(&v.nonce))),
            _ => e,
        })
    }

    /// True if `from` has not used `nonce` at `time_ms` before (a user's read statement, or a
    /// bank's request); forgets what is older than the window, which the time check refuses
    /// anyway. The error is `replayed`, or `busy` when the memory is full.
    pub fn first(&mut self, time_ms: u64, from: &str, nonce: [u8; 16], now_ms: u64) -> Result<(), Error> {
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
        if self.seen.insert((time_ms, from.to_string(), nonce), ()).is_some() {
            return Err(Error::unauthorized("replayed", format!("played again (nonce {} seen)", hex(&nonce))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::manifest::{BankEntry, SharedTiming};

    fn manifest(keys: &[(&str, &BankKey)]) -> Manifest {
        let banks = keys.iter().map(|(a, k)| BankEntry { address: a.to_string(), public_key: k.public().to_hex() }).collect();
        Manifest::new(banks, SharedTiming::default()).unwrap()
    }

    fn setup() -> (Manifest, BankKey, BankKey) {
        let (a, b) = (BankKey::from_seed([1; 32]), BankKey::from_seed([2; 32]));
        (manifest(&[("a:1", &a), ("b:1", &b)]), a, b)
    }

    fn header(keys: &PairKeys, to: &str, path: &str, time_ms: u64, body: &[u8]) -> String {
        let s = Signed { from: &keys.me, to, manifest: keys.manifest, method: "POST", path, time_ms, nonce: [7; 16], body_len: body.len() as u64, body_sha: body_sha(body) };
        sign(keys, &s).unwrap()
    }

    #[test]
    fn both_banks_compute_the_same_keys_and_nobody_else_does() {
        let (m, a, b) = setup();
        let (ka, kb) = (PairKeys::new("a:1", &a, &m), PairKeys::new("b:1", &b, &m));
        assert_eq!(ka.keys["b:1"].0, kb.keys["a:1"].1, "a's sending key is b's receiving key");
        assert_eq!(ka.keys["b:1"].1, kb.keys["a:1"].0);
        assert_ne!(ka.keys["b:1"].0, ka.keys["b:1"].1, "each direction has its own key");
        let x = BankKey::from_seed([9; 32]);
        let kx = PairKeys::new("a:1", &x, &m);
        assert_ne!(kx.keys["b:1"].0, ka.keys["b:1"].0, "an outsider claiming to be a cannot compute a's key");
        assert!(!format!("{ka:?}").contains(&hex(&ka.keys["b:1"].0)), "Debug never shows a key");
    }

    #[test]
    fn an_authenticated_request_verifies_once_for_its_recipient_only() {
        let (m, a, b) = setup();
        let (ka, kb) = (PairKeys::new("a:1", &a, &m), PairKeys::new("b:1", &b, &m));
        let h = header(&ka, "b:1", "/peer/token", 1_000_000, b"{}");
        let v = verify(&kb, Some(&h), "POST", "/peer/token", 1_000_500).unwrap();
        assert_eq!(v.from, "a:1");
        assert!(check_body(&v, b"{}").is_ok());
        assert!(check_body(&v, b"{ }").is_err(), "another body");
        let mut n = Nonces::default();
        assert!(n.first_time(&v, 1_000_500).is_ok());
        assert!(n.first_time(&v, 1_000_600).is_err(), "a replay");
        let code = |r: Result<Verified, Error>| r.unwrap_err().code;
        assert_eq!(code(verify(&ka, Some(&h), "POST", "/peer/token", 1_000_000)), "not_a_member", "to itself");
        assert_eq!(code(verify(&kb, Some(&h), "POST", "/peer/finish", 1_000_000)), "unauthenticated", "another path");
        assert_eq!(code(verify(&kb, Some(&h), "GET", "/peer/token", 1_000_000)), "unauthenticated", "another method");
        assert_eq!(code(verify(&kb, Some(&h), "POST", "/peer/token", 1_000_000 + MAX_SKEW_MS + 1)), "unauthenticated", "too old");
        assert_eq!(code(verify(&kb, None, "POST", "/peer/token", 1_000_000)), "unauthenticated");
        assert_eq!(code(verify(&kb, Some("v2 a:1"), "POST", "/peer/token", 1_000_000)), "unauthenticated");
        // For a third bank c, a's request to b does not verify (another recipient).
        let c = BankKey::from_seed([3; 32]);
        let m3 = manifest(&[("a:1", &a), ("b:1", &b), ("c:1", &c)]);
        let (ka3, kc3) = (PairKeys::new("a:1", &a, &m3), PairKeys::new("c:1", &c, &m3));
        let to_b = header(&ka3, "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&kc3, Some(&to_b), "POST", "/peer/token", 1_000_000)), "unauthenticated", "sent to another bank");
        // An outsider's key in a's name.
        let x = BankKey::from_seed([9; 32]);
        let forged = header(&PairKeys::new("a:1", &x, &m), "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&kb, Some(&forged), "POST", "/peer/token", 1_000_000)), "unauthenticated");
        // A non-member.
        let mx = manifest(&[("x:1", &x), ("b:1", &b)]);
        let h = header(&PairKeys::new("x:1", &x, &mx), "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&kb, Some(&h), "POST", "/peer/token", 1_000_000)), "not_a_member");
        // Another manifest.
        let other = manifest(&[("a:1", &a), ("b:1", &b), ("c:1", &c)]);
        let h = header(&PairKeys::new("a:1", &a, &other), "b:1", "/peer/token", 1_000_000, b"{}");
        assert_eq!(code(verify(&kb, Some(&h), "POST", "/peer/token", 1_000_000)), "manifest_differs");
    }

    #[test]
    fn old_nonces_are_forgotten_once_their_time_cannot_pass() {
        let (m, a, b) = setup();
        let (ka, kb) = (PairKeys::new("a:1", &a, &m), PairKeys::new("b:1", &b, &m));
        let mut n = Nonces::default();
        let h = header(&ka, "b:1", "/p", 1_000, b"");
        let v = verify(&kb, Some(&h), "POST", "/p", 1_000).unwrap();
        n.first_time(&v, 1_000).unwrap();
        n.first_time(&Verified { time_ms: 2_000_000, ..v.clone() }, 2_000_000).unwrap();
        assert_eq!(n.seen.len(), 1, "the old one is gone");
    }
}
