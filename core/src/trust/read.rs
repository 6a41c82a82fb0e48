//! A user's reads. Balances, accounts and packages are the user's business only: a read of
//! them carries a **read statement**, signed by the reader's key, naming what is read (the
//! scope), at which bank (the audience), when, and a nonce. The bank checks it against its
//! own registry of keys and its own clock; a statement for the consortium-wide lookup is
//! forwarded as is, and every bank checks it itself, so no bank has to vouch for a reader to
//! another. A teller (the bank's operator at the counter) may read that bank's books, never
//! another bank's.
//!
//! The statement travels in the `authorization` header:
//! `Consortium-Read v1 <reader> <audience> <time_ms> <nonce> <sig> <scope>`, where the
//! reader is a CPF's eleven digits or `teller`. The purpose is in the signed domain
//! (`read/v1`): a read statement can never pass for a package, a registration or a rotation.

use super::keys::{KeyPair, PublicKey};
use super::{hex, put, unhex};
use crate::domain::{Account, Cpf};
use crate::error::Error;
use crate::package::Package;

const READ_DOMAIN: &[u8] = b"bank-consortium/read/v1";
pub const HEADER: &str = "authorization";
const SCHEME: &str = "Consortium-Read";
const VERSION: &str = "v1";
/// How far from the reading bank's clock a statement's time may be, both ways. Short: a
/// statement is made for one request, and the nonces of this window are remembered.
pub const WINDOW_MS: u64 = 30_000;
/// The longest scope accepted (a package id or account key, with its prefix).
const MAX_SCOPE: usize = 256;

/// Who reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reader {
    User(Cpf),
    /// A teller of the audience bank: its books, at that bank only.
    Teller,
}

impl Reader {
    fn as_field(&self) -> String {
        match self {
            Reader::User(c) => c.as_str().to_string(),
            Reader::Teller => "teller".to_string(),
        }
    }
}

// The scopes: one function per readable thing, used by the client that signs and the bank
// that checks, so the two cannot disagree about spelling.

/// `GET /users/{cpf}`
pub fn scope_user(cpf: &Cpf) -> String {
    format!("user/{}", cpf.as_str())
}

/// `GET /users/{cpf}/accounts`
pub fn scope_accounts_of(cpf: &Cpf) -> String {
    format!("accounts-of/{}", cpf.as_str())
}

/// `GET /accounts/{key}`
pub fn scope_account(key: &str) -> String {
    format!("account/{key}")
}

/// `GET /accounts/{key}/statement` (every page: paging is not what is read, and the nonce
/// already makes each statement good for one request).
pub fn scope_statement(key: &str) -> String {
    format!("statement/{key}")
}

/// `GET /packages/{id}`
pub fn scope_package(id: &str) -> String {
    format!("package/{id}")
}

/// `GET /consortium/users/{cpf}/accounts`: the one scope that is forwarded to other banks.
pub fn scope_consortium(cpf: &Cpf) -> String {
    format!("consortium/{}", cpf.as_str())
}

/// The operator's routes (`/admin/{what}`: `in-doubt`, `backup`, `fingerprints`, and later
/// `statement`): the same signed statement as a read, with the bank's teller as its reader.
pub fn scope_admin(what: &str) -> String {
    format!("admin/{what}")
}

/// Whether `reader` may use the operator's routes: a teller of the bank, never a user.
pub fn may_administer(reader: &Reader) -> bool {
    *reader == Reader::Teller
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadStatement {
    pub reader: Reader,
    pub audience: String,
    pub time_ms: u64,
    pub nonce: [u8; 16],
    pub sig: [u8; 64],
    pub scope: String,
}

fn message(reader: &Reader, audience: &str, time_ms: u64, nonce: &[u8; 16], scope: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    put(&mut m, READ_DOMAIN);
    put(&mut m, reader.as_field().as_bytes());
    put(&mut m, audience.as_bytes());
    m.extend_from_slice(&time_ms.to_be_bytes());
    put(&mut m, nonce);
    put(&mut m, scope.as_bytes());
    m
}

fn unauthenticated(why: impl Into<String>) -> Error {
    Error::unauthorized("unauthenticated", why)
}

impl ReadStatement {
    /// `reader`'s statement, signed with `key`, that it reads `scope` at `audience` now.
    pub fn sign(reader: Reader, key: &KeyPair, audience: &str, scope: &str, time_ms: u64, nonce: [u8; 16]) -> ReadStatement {
        let sig = key.sign(&message(&reader, audience, time_ms, &nonce, scope));
        ReadStatement { reader, audience: audience.to_string(), time_ms, nonce, sig, scope: scope.to_string() }
    }

    pub fn to_header(&self) -> String {
        format!("{SCHEME} {VERSION} {} {} {} {} {} {}", self.reader.as_field(), self.audience, self.time_ms, hex(&self.nonce), hex(&self.sig), self.scope)
    }

    /// Parses the header; `None` (no header) and every malformed one are refused with what is
    /// expected, never with what the attacker sent echoed back at length.
    pub fn parse(header: Option<&str>) -> Result<ReadStatement, Error> {
        let Some(h) = header else {
            return Err(unauthenticated(format!(
                "this read needs the reader's signed statement (header `authorization: {SCHEME} ...`): only a user reads their own data"
            )));
        };
        let f: Vec<&str> = h.split(' ').collect();
        let malformed = |what: &str| unauthenticated(format!("malformed read statement: {what}"));
        if f.len() != 8 || f[0] != SCHEME {
            return Err(malformed(&format!("expected `{SCHEME} {VERSION} reader audience time nonce signature scope`")));
        }
        if f[1] != VERSION {
            return Err(malformed("unknown version (this bank reads v1)"));
        }
        let reader = match f[2] {
            "teller" => Reader::Teller,
            c => Reader::User(Cpf::parse(c).map_err(|_| malformed("the reader is neither a CPF nor `teller`"))?),
        };
        let time_ms = f[4].parse().map_err(|_| malformed("the time is not a number of milliseconds"))?;
        let nonce = unhex::<16>(f[5]).ok_or_else(|| malformed("the nonce is not 32 hex digits"))?;
        let sig = unhex::<64>(f[6]).ok_or_else(|| malformed("the signature is not 128 hex digits"))?;
        if f[7].len() > MAX_SCOPE || f[3].len() > MAX_SCOPE {
            return Err(malformed("the scope or audience is too long"));
        }
        Ok(ReadStatement { reader, audience: f[3].to_string(), time_ms, nonce, sig, scope: f[7].to_string() })
    }

    /// The checks that need no key: the statement reads `scope`, is meant for `audience`, and
    /// is fresh on this bank's clock.
    pub fn check(&self, scope: &str, audience: &str, now_ms: u64) -> Result<(), Error> {
        if self.scope != scope {
            return Err(Error::forbidden("wrong_scope", format!("the read statement is for {:?}, not {scope:?}", self.scope)));
        }
        if self.audience != audience {
            return Err(Error::forbidden("wrong_audience", format!("the read statement is meant for bank {:?}, not {audience}", self.audience)));
        }
        if now_ms.abs_diff(self.time_ms) > WINDOW_MS {
            return Err(unauthenticated(format!("the read statement was made {} s from this bank's clock; make a new one", now_ms.abs_diff(self.time_ms) / 1000)));
        }
        Ok(())
    }

    /// Whether one of `keys` (the reader's registered key, or this bank's tellers') signed it.
    pub fn signed_by_one_of(&self, keys: &[PublicKey]) -> bool {
        let m = message(&self.reader, &self.audience, self.time_ms, &self.nonce, &self.scope);
        keys.iter().any(|k| k.verify(&m, &self.sig))
    }
}

/// Whether `reader` may read `cpf`'s user record or account list: that user, or a teller.
pub fn may_read_user(reader: &Reader, cpf: &Cpf) -> bool {
    match reader {
        Reader::User(c) => c == cpf,
        Reader::Teller => true,
    }
}

/// Whether `reader` may read `account`: a holder, or a teller.
pub fn may_read_account(reader: &Reader, account: &Account) -> bool {
    match reader {
        Reader::User(c) => account.holders.contains(c),
        Reader::Teller => true,
    }
}

/// Whether `reader` may read `account`'s statement over the client API: its holders only. (An
/// operator reads statements at the bank itself, not with a teller's key over the network.)
pub fn may_read_statement(reader: &Reader, account: &Account) -> bool {
    match reader {
        Reader::User(c) => account.holders.contains(c),
        Reader::Teller => false,
    }
}

/// Whether `reader` may read package `p`: one of its signers, a holder of one of this bank's
/// accounts it touches (`holds`), or a teller.
pub fn may_read_package(reader: &Reader, p: &Package, holds: impl Fn(&Cpf, &str) -> bool, me: &str) -> bool {
    let c = match reader {
        Reader::Teller => return true,
        Reader::User(c) => c,
    };
    let signed = p.signatures.iter().any(|s| s.cpf.as_deref().and_then(|x| Cpf::parse(x).ok()).is_some_and(|x| x == *c));
    let touches = p.operations.iter().flat_map(|op| [op.from.as_ref(), op.to.as_ref()]).flatten().any(|r| r.bank == me && holds(c, &r.account));
    signed || touches
}

/// The answer to a read its reader may not make. The same for "not yours" and "does not
/// exist", so a reader cannot learn which accounts or users exist by trying.
pub fn not_yours(what: &str) -> Error {
    Error::forbidden("not_yours", format!("the reader may not read this {what} (only its user, a holder, or this bank's teller)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountKind, Cents};

    const NOW: u64 = 1_800_000_000_000;

    fn ana() -> (Cpf, KeyPair) {
        (Cpf::from_base(123_456_789), KeyPair::from_seed([1; 32]))
    }

    /// The exact bytes: the API fuzz run's hook (scripts/api_fuzz_hook.py, in Python) signs
    /// this same statement in its self-test and expects this same header. If the statement's
    /// format changes, both change together.
    #[test]
    fn a_statement_signed_by_another_implementation_is_the_same() {
        let key = KeyPair::from_seed([7; 32]);
        let cpf = Cpf::parse("52998224725").unwrap();
        let s = ReadStatement::sign(Reader::User(cpf.clone()), &key, "127.0.0.1:7001", &scope_user(&cpf), 1_700_000_000_000, [1; 16]);
        let header = "Consortium-Read v1 52998224725 127.0.0.1:7001 1700000000000 01010101010101010101010101010101 \
            e9f63f0ecfe2fd402010a73236f86fa0ccf3611e33347b318953a8ad67cc35d0dbeca32f7517526de465859cc0de3fc9c818aef2e74ce6035e61cfdcf45fcc0f user/52998224725";
        assert_eq!(s.to_header(), header);
        let parsed = ReadStatement::parse(Some(header)).unwrap();
        assert!(parsed.signed_by_one_of(&[key.public()]));
    }

    #[test]
    fn a_statement_round_trips_and_reads_one_thing_at_one_bank_for_a_short_while() {
        let (c, k) = ana();
        let s = ReadStatement::sign(Reader::User(c.clone()), &k, "a:1", &scope_accounts_of(&c), NOW, [9; 16]);
        let parsed = ReadStatement::parse(Some(&s.to_header())).unwrap();
        assert_eq!(parsed, s);
        assert!(parsed.signed_by_one_of(&[k.public()]));
        assert!(!parsed.signed_by_one_of(&[KeyPair::from_seed([2; 32]).public()]), "another key");
        parsed.check(&scope_accounts_of(&c), "a:1", NOW + WINDOW_MS).unwrap();
        assert_eq!(parsed.check(&scope_user(&c), "a:1", NOW).unwrap_err().code, "wrong_scope");
        assert_eq!(parsed.check(&scope_accounts_of(&c), "b:1", NOW).unwrap_err().code, "wrong_audience");
        assert_eq!(parsed.check(&scope_accounts_of(&c), "a:1", NOW + WINDOW_MS + 1).unwrap_err().code, "unauthenticated", "stale");
        assert_eq!(parsed.check(&scope_accounts_of(&c), "a:1", NOW - WINDOW_MS - 1).unwrap_err().code, "unauthenticated", "from the future");
        // Any field changed after signing breaks the signature.
        for tampered in [
            ReadStatement { reader: Reader::Teller, ..s.clone() },
            ReadStatement { reader: Reader::User(Cpf::from_base(987_654_321)), ..s.clone() },
            ReadStatement { audience: "b:1".into(), ..s.clone() },
            ReadStatement { time_ms: NOW + 1, ..s.clone() },
            ReadStatement { nonce: [8; 16], ..s.clone() },
            ReadStatement { scope: scope_user(&c), ..s.clone() },
        ] {
            assert!(!tampered.signed_by_one_of(&[k.public()]), "{tampered:?}");
        }
    }

    #[test]
    fn malformed_headers_are_refused_as_unauthenticated() {
        let (c, k) = ana();
        let good = ReadStatement::sign(Reader::User(c), &k, "a:1", "user/1", NOW, [9; 16]).to_header();
        let long = format!("{} {}", &good[..good.rfind(' ').unwrap()], "x".repeat(MAX_SCOPE + 1));
        for h in [None, Some(""), Some("Bearer abc"), Some(&good.replace(" v1 ", " v2 ")), Some(&good.replace("Consortium-Read", "Basic")), Some(&format!("{good} extra")), Some(long.as_str())] {
            assert_eq!(ReadStatement::parse(h).unwrap_err().code, "unauthenticated", "{h:?}");
        }
        assert!(ReadStatement::parse(Some(&good)).is_ok());
    }

    #[test]
    fn only_a_teller_administers_and_an_admin_statement_is_for_one_operation() {
        let k = KeyPair::from_seed([3; 32]);
        assert!(may_administer(&Reader::Teller));
        assert!(!may_administer(&Reader::User(Cpf::from_base(123_456_789))));
        let s = ReadStatement::sign(Reader::Teller, &k, "a:1", &scope_admin("in-doubt"), NOW, [1; 16]);
        s.check(&scope_admin("in-doubt"), "a:1", NOW).unwrap();
        assert_eq!(s.check(&scope_admin("backup"), "a:1", NOW).unwrap_err().code, "wrong_scope", "an in-doubt listing is no backup");
        assert_ne!(scope_admin("in-doubt"), scope_package("in-doubt"));
    }

    #[test]
    fn who_may_read_what() {
        let (a, b) = (Cpf::from_base(111_111_111), Cpf::from_base(222_222_222));
        assert!(may_read_user(&Reader::User(a.clone()), &a));
        assert!(!may_read_user(&Reader::User(b.clone()), &a));
        assert!(may_read_user(&Reader::Teller, &a));
        let acc = Account { bank: "a:1".into(), key: "1".into(), kind: AccountKind::Joint, holders: vec![a.clone(), b.clone()], balance: Cents(0), blocked: Cents(0), held: Cents(0) };
        assert!(may_read_account(&Reader::User(b.clone()), &acc), "a joint holder");
        assert!(!may_read_account(&Reader::User(Cpf::from_base(333_333_333)), &acc));
        assert!(may_read_statement(&Reader::User(a.clone()), &acc) && may_read_statement(&Reader::User(b.clone()), &acc), "every holder");
        assert!(!may_read_statement(&Reader::User(Cpf::from_base(333_333_333)), &acc));
        assert!(!may_read_statement(&Reader::Teller, &acc), "holders only: an operator reads it at the bank");
        assert_ne!(scope_statement("1"), scope_account("1"), "a balance read cannot pass for a statement read");
        use crate::package::{AccountRef, OpKind, Operation};
        let p = Package {
            id: "p".into(),
            operations: vec![Operation { kind: OpKind::Deposit, from: None, to: Some(AccountRef { bank: "a:1".into(), account: "1".into() }), amount: Cents(5) }],
            expires_ms: NOW,
            signatures: vec![],
        };
        let holds = |c: &Cpf, key: &str| key == "1" && *c == a;
        assert!(may_read_package(&Reader::User(a.clone()), &p, holds, "a:1"), "its account is credited here");
        assert!(!may_read_package(&Reader::User(a.clone()), &p, holds, "b:1"), "the account is another bank's");
        assert!(!may_read_package(&Reader::User(b.clone()), &p, holds, "a:1"));
        let mut signed = p.clone();
        signed.signatures.push(crate::package::PackageSignature { cpf: Some(b.as_str().to_string()), teller: None, sig: String::new() });
        assert!(may_read_package(&Reader::User(b), &signed, holds, "a:1"), "a signer");
    }
}
