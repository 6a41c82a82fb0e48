//! The shape of a package and the legs it puts on each bank.

use crate::domain::Cents;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A package's identity: the id its client chose, scoped by the bank that accepted it (its
/// origin). The same id at two origins is two packages: a participant that filed legs by the
/// client's id alone let one client's package answer for another's (issue 9: 1.00 deposited
/// became 2.00). Every table, message, map and log line names a package by this key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackageKey {
    pub origin: String,
    pub id: String,
}

impl PackageKey {
    pub fn new(origin: &str, id: &str) -> PackageKey {
        PackageKey { origin: origin.to_string(), id: id.to_string() }
    }
}

/// `id@origin`: how logs and the simulator's trace name a package.
impl std::fmt::Display for PackageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.origin)
    }
}

/// SHA-256 of a package's canonical bytes (`Package::canonical_bytes`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageDigest(pub [u8; 32]);

impl PackageDigest {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for PackageDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex()[..16])
    }
}

impl Serialize for PackageDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for PackageDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::trust::unhex::<32>(&s).map(PackageDigest).ok_or_else(|| serde::de::Error::custom("a package digest is 64 hex digits"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    /// The bank's address, as the consortium's manifest lists it.
    pub bank: String,
    /// The account's key at that bank (1 to 64 bytes).
    #[schema(min_length = 1, max_length = 64)]
    pub account: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Transfer,
    Deposit,
    Withdraw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub kind: OpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<AccountRef>,
    /// Cents, more than zero.
    #[schema(value_type = u64, minimum = 1)]
    pub amount: Cents,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The idempotency key: 1 to 128 of the ASCII letters, digits and `-_.:`.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub id: String,
    #[schema(min_items = 1, max_items = 64)]
    pub operations: Vec<Operation>,
    /// Unix milliseconds after which no bank prepares it (at most `MAX_EXPIRY_MS` ahead of
    /// the time it was signed). Covered by the signatures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expires_ms: u64,
    /// Signatures over the package's canonical bytes: a holder's for each account money
    /// leaves, the bank's teller's for each cash deposit (`authority`). Not part of the
    /// content: a retry signed again is the same package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16)]
    pub signatures: Vec<PackageSignature>,
}

/// Who signed a package, and the Ed25519 signature (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// A user, by CPF (digits), signing for accounts they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpf: Option<String>,
    /// A bank's teller, by the bank's address, signing for cash handed over at that bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teller: Option<String>,
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub sig: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Longest a package may be valid: a day.
pub const MAX_EXPIRY_MS: u64 = 24 * 3600 * 1000;

/// Most signatures a package carries.
pub const MAX_SIGNATURES: usize = 16;

const HOLDER_SIGNATURE_DOMAIN: &[u8] = b"bank-consortium/holder-signature/v1";
const TELLER_SIGNATURE_DOMAIN: &[u8] = b"bank-consortium/teller-signature/v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Debit,
    Credit,
}

/// One bank's part of one operation. Identified within the package by (index, side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub index: u32,
    pub side: Side,
    pub account: String,
    pub amount: Cents,
}

pub const MAX_OPERATIONS: usize = 64;
pub const MAX_ID_LEN: usize = 128;

impl Operation {
    pub fn debit(&self) -> Option<&AccountRef> {
        self.from.as_ref()
    }
    pub fn credit(&self) -> Option<&AccountRef> {
        self.to.as_ref()
    }
}

/// Domain separation of a package's canonical bytes: no other signed or hashed thing of the
/// consortium starts with these bytes, and a new layout gets a new version.
const PACKAGE_DOMAIN: &[u8] = b"bank-consortium/package/v2";

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_ref(out: &mut Vec<u8>, r: Option<&AccountRef>) {
    match r {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            put_str(out, &r.bank);
            put_str(out, &r.account);
        }
    }
}

impl Package {
    /// The package as accepted at `origin`, in bytes that do not depend on a JSON encoder:
    /// versioned, domain-separated, every field length-prefixed, so two different packages
    /// never have the same bytes. What a participant compares (and, later, what holders sign).
    pub fn canonical_bytes(&self, origin: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 96 * self.operations.len());
        put_str(&mut out, std::str::from_utf8(PACKAGE_DOMAIN).expect("ascii"));
        put_str(&mut out, origin);
        put_str(&mut out, &self.id);
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out.extend_from_slice(&(self.operations.len() as u32).to_be_bytes());
        for op in &self.operations {
            out.push(match op.kind {
                OpKind::Transfer => 1,
                OpKind::Deposit => 2,
                OpKind::Withdraw => 3,
            });
            put_ref(&mut out, op.from.as_ref());
            put_ref(&mut out, op.to.as_ref());
            out.extend_from_slice(&op.amount.0.to_be_bytes());
        }
        out
    }

    pub fn digest(&self, origin: &str) -> PackageDigest {
        PackageDigest(Sha256::digest(self.canonical_bytes(origin)).into())
    }

    pub fn key(&self, origin: &str) -> PackageKey {
        PackageKey::new(origin, &self.id)
    }

    /// What a holder signs (domain-separated from every other signed thing).
    pub fn holder_message(&self, origin: &str) -> Vec<u8> {
        let mut m = HOLDER_SIGNATURE_DOMAIN.to_vec();
        m.extend_from_slice(&self.canonical_bytes(origin));
        m
    }

    /// What a teller signs.
    pub fn teller_message(&self, origin: &str) -> Vec<u8> {
        let mut m = TELLER_SIGNATURE_DOMAIN.to_vec();
        m.extend_from_slice(&self.canonical_bytes(origin));
        m
    }

    /// Adds the signature of the holder `cpf` (their key) for the package as accepted at
    /// `origin`.
    pub fn sign_as_holder(&mut self, origin: &str, cpf: &str, key: &crate::trust::keys::UserKey) {
        let sig = crate::trust::hex(&key.sign(&self.holder_message(origin)));
        self.signatures.retain(|s| s.cpf.as_deref() != Some(cpf));
        self.signatures.push(PackageSignature { cpf: Some(cpf.to_string()), teller: None, sig });
    }

    /// Adds the signature of `bank`'s teller (the teller's key).
    pub fn sign_as_teller(&mut self, origin: &str, bank: &str, key: &crate::trust::keys::KeyPair) {
        let sig = crate::trust::hex(&key.sign(&self.teller_message(origin)));
        self.signatures.retain(|s| s.teller.as_deref() != Some(bank));
        self.signatures.push(PackageSignature { cpf: None, teller: Some(bank.to_string()), sig });
    }

    /// Signs the package for `origin` as everyone it needs: `holder` gives, for an account
    /// money leaves, the CPF and key that sign for it; `teller` the key of a bank's teller.
    /// Signs what it can; returns what nobody here could sign.
    pub fn sign_for(
        &mut self,
        origin: &str,
        holder: impl Fn(&AccountRef) -> Option<(String, crate::trust::keys::UserKey)>,
        teller: impl Fn(&str) -> Option<crate::trust::keys::KeyPair>,
    ) -> Result<(), String> {
        let mut missing = None;
        for op in self.operations.clone() {
            if let Some(from) = &op.from {
                match holder(from) {
                    Some((cpf, key)) => self.sign_as_holder(origin, &cpf, &key),
                    None => missing = missing.or(Some(format!("money leaves {}/{}: no key of a holder to sign with", from.bank, from.account))),
                }
            }
            if let (OpKind::Deposit, Some(to)) = (op.kind, &op.to) {
                match teller(&to.bank) {
                    Some(key) => self.sign_as_teller(origin, &to.bank, &key),
                    None => missing = missing.or(Some(format!("a deposit at {} needs that bank's teller key", to.bank))),
                }
            }
        }
        missing.map_or(Ok(()), Err)
    }

    /// The same request under one id: the same operations. A retry signed again (a later
    /// expiry, new signatures) is the same package; the origin keeps the first it recorded.
    pub fn same_content(&self, other: &Package) -> bool {
        self.id == other.id && self.operations == other.operations
    }

    /// Checks everything that can be checked without touching balances. `is_bank` tells
    /// whether an address is a member of the consortium.
    pub fn validate(&self, is_bank: impl Fn(&str) -> bool) -> Result<(), Error> {
        if self.id.is_empty() || self.id.len() > MAX_ID_LEN {
            return Err(Error::bad_request("bad_id", format!("a package id is 1 to {MAX_ID_LEN} bytes long")));
        }
        if !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
            return Err(Error::bad_request("bad_id", "a package id uses letters, digits and - _ . : only"));
        }
        if self.operations.is_empty() {
            return Err(Error::bad_request("no_operations", "a package needs at least one operation"));
        }
        if self.operations.len() > MAX_OPERATIONS {
            return Err(Error::bad_request("too_many_operations", format!("a package has at most {MAX_OPERATIONS} operations")));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(Error::bad_request("too_many_signatures", format!("a package carries at most {MAX_SIGNATURES} signatures")));
        }
        for s in &self.signatures {
            let who_ok = match (&s.cpf, &s.teller) {
                (Some(c), None) => !c.is_empty() && c.len() <= 14,
                (None, Some(b)) => is_bank(b),
                _ => false,
            };
            if !who_ok || crate::trust::unhex::<64>(&s.sig).is_none() {
                return Err(Error::bad_request("bad_signature", "a signature names one CPF or one bank's teller, and has 128 hex digits"));
            }
        }
        for (i, op) in self.operations.iter().enumerate() {
            let at = |m: &str| format!("operation {i}: {m}");
            if op.amount.0 == 0 {
                return Err(Error::bad_request("bad_amount", at("the amount must be positive")));
            }
            let (need_from, need_to) = match op.kind {
                OpKind::Transfer => (true, true),
                OpKind::Deposit => (false, true),
                OpKind::Withdraw => (true, false),
            };
            if need_from != op.from.is_some() || need_to != op.to.is_some() {
                let want = match op.kind {
                    OpKind::Transfer => "a transfer has `from` and `to`",
                    OpKind::Deposit => "a deposit has `to` only",
                    OpKind::Withdraw => "a withdrawal has `from` only",
                };
                return Err(Error::bad_request("bad_operation", at(want)));
            }
            for r in op.from.iter().chain(op.to.iter()) {
                if !is_bank(&r.bank) {
                    return Err(Error::rule("unknown_bank", at(&format!("{} is not a bank of the consortium", r.bank))));
                }
                if r.account.is_empty() || r.account.len() > 64 {
                    return Err(Error::bad_request("bad_account", at("account keys are 1 to 64 bytes long")));
                }
            }
            if let (Some(f), Some(t)) = (&op.from, &op.to) {
                if f == t {
                    return Err(Error::rule("same_account", at("a transfer needs two different accounts")));
                }
            }
        }
        Ok(())
    }

    /// Every bank this package touches, in address order of the map.
    pub fn banks(&self) -> BTreeSet<String> {
        self.operations.iter().flat_map(|op| op.from.iter().chain(op.to.iter())).map(|r| r.bank.clone()).collect()
    }

    /// The legs each bank must prepare.
    pub fn legs_by_bank(&self) -> BTreeMap<String, Vec<Leg>> {
        let mut out: BTreeMap<String, Vec<Leg>> = BTreeMap::new();
        for (i, op) in self.operations.iter().enumerate() {
            let i = i as u32;
            if let Some(f) = op.debit() {
                out.entry(f.bank.clone()).or_default().push(Leg { index: i, side: Side::Debit, account: f.account.clone(), amount: op.amount });
            }
            if let Some(t) = op.credit() {
                out.entry(t.bank.clone()).or_default().push(Leg { index: i, side: Side::Credit, account: t.account.clone(), amount: op.amount });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(bank: &str, account: &str) -> Option<AccountRef> {
        Some(AccountRef { bank: bank.into(), account: account.into() })
    }

    fn transfer(from: &str, to: &str, amount: u64) -> Operation {
        Operation { kind: OpKind::Transfer, from: r(from, "1"), to: r(to, "2"), amount: Cents(amount) }
    }

    /// The length limits count bytes (what is stored and signed), and their messages say so:
    /// 70 two-byte characters are 140 bytes, over an id's 128 though under 128 characters.
    #[test]
    fn length_limits_count_bytes_and_say_so() {
        let ok = |p: &Package| p.validate(|b| b == "a" || b == "b");
        let mut p = Package { id: "é".repeat(70), operations: vec![transfer("a", "b", 5)], ..Default::default() };
        let e = ok(&p).unwrap_err();
        assert_eq!(e.code, "bad_id");
        assert_eq!(e.message, "a package id is 1 to 128 bytes long");
        p.id = "p".repeat(MAX_ID_LEN);
        assert!(ok(&p).is_ok());
        p.operations[0].from = r("a", &"é".repeat(40));
        let e = ok(&p).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), ("bad_account", "operation 0: account keys are 1 to 64 bytes long"));
        p.operations[0].from = r("a", &"k".repeat(64));
        assert!(ok(&p).is_ok());
    }

    #[test]
    fn a_signature_is_128_hex_digits() {
        let mut p = Package { id: "p".into(), operations: vec![transfer("a", "b", 5)], ..Default::default() };
        let sig = |s: String| PackageSignature { cpf: Some("52998224725".into()), teller: None, sig: s };
        p.signatures = vec![sig("ab".repeat(64))];
        assert!(p.validate(|b| b == "a" || b == "b").is_ok());
        for bad in ["zz".repeat(64), "+a".repeat(64), "ab".repeat(63), "é".repeat(64)] {
            p.signatures = vec![sig(bad.clone())];
            assert_eq!(p.validate(|b| b == "a" || b == "b").unwrap_err().code, "bad_signature", "{bad}");
        }
    }

    #[test]
    fn legs_split_by_bank() {
        let p = Package {
            id: "p1".into(),
            operations: vec![
                transfer("a", "b", 5),
                Operation { kind: OpKind::Deposit, from: None, to: r("c", "9"), amount: Cents(7) },
            ], ..Default::default()
        };
        let legs = p.legs_by_bank();
        assert_eq!(legs.len(), 3);
        assert_eq!(legs["a"], vec![Leg { index: 0, side: Side::Debit, account: "1".into(), amount: Cents(5) }]);
        assert_eq!(legs["b"][0].side, Side::Credit);
        assert_eq!(legs["c"][0].index, 1);
        assert_eq!(p.banks().into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }

    #[test]
    fn the_digest_covers_origin_id_and_every_field() {
        let p = Package { id: "p1".into(), operations: vec![transfer("a", "b", 5)], ..Default::default() };
        let d = p.digest("a");
        assert_eq!(d, p.clone().digest("a"), "deterministic");
        assert_ne!(d, p.digest("b"), "the same package at another origin is another package");
        let mut q = p.clone();
        q.operations[0].amount = Cents(6);
        assert_ne!(d, q.digest("a"));
        let mut q = p.clone();
        q.operations[0].to.as_mut().unwrap().account = "3".into();
        assert_ne!(d, q.digest("a"));
        // Length prefixes: moving a byte from one field to the next changes the bytes.
        let a = Package { id: "x".into(), operations: vec![Operation { kind: OpKind::Deposit, from: None, to: r("ab", "c"), amount: Cents(1) }], ..Default::default() };
        let b = Package { id: "x".into(), operations: vec![Operation { kind: OpKind::Deposit, from: None, to: r("a", "bc"), amount: Cents(1) }], ..Default::default() };
        assert_ne!(a.canonical_bytes("o"), b.canonical_bytes("o"));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<PackageDigest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<PackageDigest>("\"zz\"").is_err());
        let signed = format!("\"+{}\"", &d.hex()[1..]);
        assert!(serde_json::from_str::<PackageDigest>(&signed).is_err(), "a sign is no hex digit");
    }

    #[test]
    fn validation() {
        let banks = |b: &str| b == "a" || b == "b";
        let ok = Package { id: "x".into(), operations: vec![transfer("a", "b", 1)], ..Default::default() };
        assert!(ok.validate(banks).is_ok());
        let code = |p: Package| p.validate(banks).unwrap_err().code;
        assert_eq!(code(Package { id: "".into(), ..ok.clone() }), "bad_id");
        assert_eq!(code(Package { id: "a b".into(), ..ok.clone() }), "bad_id");
        assert_eq!(code(Package { id: "x".into(), operations: vec![], ..Default::default() }), "no_operations");
        assert_eq!(code(Package { id: "x".into(), operations: vec![transfer("a", "b", 0)], ..Default::default() }), "bad_amount");
        assert_eq!(code(Package { id: "x".into(), operations: vec![transfer("a", "z", 1)], ..Default::default() }), "unknown_bank");
        let mut same = transfer("a", "a", 1);
        same.to = same.from.clone();
        assert_eq!(code(Package { id: "x".into(), operations: vec![same], ..Default::default() }), "same_account");
        let dep = Operation { kind: OpKind::Deposit, from: r("a", "1"), to: r("a", "2"), amount: Cents(1) };
        assert_eq!(code(Package { id: "x".into(), operations: vec![dep], ..Default::default() }), "bad_operation");
    }
}
