//! The shape of a package and the legs it puts on each bank.

use crate::domain::Cents;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    pub bank: String,
    pub account: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Transfer,
    Deposit,
    Withdraw,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub kind: OpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<AccountRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<AccountRef>,
    pub amount: Cents,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub id: String,
    pub operations: Vec<Operation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

impl Package {
    /// Checks everything that can be checked without touching balances. `is_bank` tells
    /// whether an address is a member of the consortium.
    pub fn validate(&self, is_bank: impl Fn(&str) -> bool) -> Result<(), Error> {
        if self.id.is_empty() || self.id.len() > MAX_ID_LEN {
            return Err(Error::bad_request("bad_id", format!("a package id has 1 to {MAX_ID_LEN} characters")));
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
                    return Err(Error::bad_request("bad_account", at("account keys have 1 to 64 characters")));
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

    #[test]
    fn legs_split_by_bank() {
        let p = Package {
            id: "p1".into(),
            operations: vec![
                transfer("a", "b", 5),
                Operation { kind: OpKind::Deposit, from: None, to: r("c", "9"), amount: Cents(7) },
            ],
        };
        let legs = p.legs_by_bank();
        assert_eq!(legs.len(), 3);
        assert_eq!(legs["a"], vec![Leg { index: 0, side: Side::Debit, account: "1".into(), amount: Cents(5) }]);
        assert_eq!(legs["b"][0].side, Side::Credit);
        assert_eq!(legs["c"][0].index, 1);
        assert_eq!(p.banks().into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }

    #[test]
    fn validation() {
        let banks = |b: &str| b == "a" || b == "b";
        let ok = Package { id: "x".into(), operations: vec![transfer("a", "b", 1)] };
        assert!(ok.validate(banks).is_ok());
        let code = |p: Package| p.validate(banks).unwrap_err().code;
        assert_eq!(code(Package { id: "".into(), ..ok.clone() }), "bad_id");
        assert_eq!(code(Package { id: "a b".into(), ..ok.clone() }), "bad_id");
        assert_eq!(code(Package { id: "x".into(), operations: vec![] }), "no_operations");
        assert_eq!(code(Package { id: "x".into(), operations: vec![transfer("a", "b", 0)] }), "bad_amount");
        assert_eq!(code(Package { id: "x".into(), operations: vec![transfer("a", "z", 1)] }), "unknown_bank");
        let mut same = transfer("a", "a", 1);
        same.to = same.from.clone();
        assert_eq!(code(Package { id: "x".into(), operations: vec![same] }), "same_account");
        let dep = Operation { kind: OpKind::Deposit, from: r("a", "1"), to: r("a", "2"), amount: Cents(1) };
        assert_eq!(code(Package { id: "x".into(), operations: vec![dep] }), "bad_operation");
    }
}
