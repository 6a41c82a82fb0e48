//! Who may move money. Money leaves an account only with the signature of one of its holders;
//! cash enters only with the signature of the teller of the bank it was handed to (a
//! customer's own signature cannot create money). Every participant checks, for its own legs
//! only, against its own registry of users' keys and its own clock, so neither the origin
//! nor any other bank can move a customer's money without the customer.
//!
//! A leg that fails these checks is voted down with the reason (the package aborts, nothing
//! moves); it is not a refusal of the message: an honest origin forwards what its client
//! signed, and the client may have signed badly.

use super::spec::{Leg, OpKind, Package, Side};
use crate::domain::{Account, Cpf};
use crate::trust::keys::PublicKey;
use crate::trust::unhex;

/// How far two banks' clocks may disagree (also the window of authenticated requests).
pub const CLOCK_SKEW_MS: u64 = 30_000;

/// The package's validity on this bank's clock (`now_ms`): not expired, and not valid for
/// longer than `MAX_EXPIRY_MS` from now (a signature meant to live forever).
pub fn check_expiry(p: &Package, now_ms: u64) -> Result<(), String> {
    check_expiry_within(p, now_ms, CLOCK_SKEW_MS)
}

/// `check_expiry` with the consortium's configured clock skew (`clock_skew_ms`): compaction
/// relies on a bank refusing every package past `expires_ms + skew_ms` on its clock.
pub fn check_expiry_within(p: &Package, now_ms: u64, skew_ms: u64) -> Result<(), String> {
    if p.expires_ms == 0 {
        return Err("the package has no expiry: its holders must sign it with one".into());
    }
    if now_ms > p.expires_ms.saturating_add(skew_ms) {
        return Err(format!("the package expired {} s ago", (now_ms - p.expires_ms) / 1000));
    }
    if p.expires_ms > now_ms.saturating_add(super::spec::MAX_EXPIRY_MS + skew_ms) {
        return Err("the package claims to be valid for more than 24 hours".into());
    }
    Ok(())
}

/// Whether `p`, accepted at `origin`, authorizes leg `leg` at bank `me`. `account` is the
/// leg's account here (None: the leg fails anyway, for want of an account), `key_of` this
/// bank's registered key of a user, `tellers` the keys of this bank's tellers.
pub fn authorize_leg(
    p: &Package,
    origin: &str,
    me: &str,
    leg: &Leg,
    account: Option<&Account>,
    key_of: impl Fn(&Cpf) -> Option<PublicKey>,
    tellers: &[PublicKey],
) -> Result<(), String> {
    let Some(op) = p.operations.get(leg.index as usize) else {
        return Err(format!("leg {} has no operation", leg.index));
    };
    match (leg.side, op.kind) {
        (Side::Credit, OpKind::Deposit) => {
            let msg = p.teller_message(origin);
            let signed = p.signatures.iter().filter(|s| s.teller.as_deref() == Some(me)).any(|s| verifies(&s.sig, &msg, tellers));
            if signed {
                Ok(())
            } else {
                Err(format!("a deposit needs the signature of a teller of {me}"))
            }
        }
        (Side::Credit, _) => Ok(()),
        (Side::Debit, _) => {
            let Some(account) = account else { return Ok(()) };
            let msg = p.holder_message(origin);
            let signed = p.signatures.iter().any(|s| {
                let Some(cpf) = s.cpf.as_deref().and_then(|c| Cpf::parse(c).ok()) else { return false };
                account.holders.contains(&cpf) && key_of(&cpf).is_some_and(|k| verifies(&s.sig, &msg, &[k]))
            });
            if signed {
                Ok(())
            } else {
                Err(format!("no valid signature of a holder of account {}", leg.account))
            }
        }
    }
}

fn verifies(sig_hex: &str, msg: &[u8], keys: &[PublicKey]) -> bool {
    let Some(sig) = unhex::<64>(sig_hex) else { return false };
    keys.iter().any(|k| k.verify(msg, &sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountKind, Cents};
    use crate::package::spec::{AccountRef, Operation};
    use crate::trust::keys::KeyPair;

    const NOW: u64 = 1_800_000_000_000;

    fn cpf(n: u32) -> Cpf {
        Cpf::from_base(n)
    }

    fn account(key: &str, holders: &[Cpf]) -> Account {
        Account { bank: "b:1".into(), key: key.into(), kind: AccountKind::Personal, holders: holders.to_vec(), balance: Cents(100), blocked: Cents(0), held: Cents(0) }
    }

    fn package(ops: Vec<Operation>) -> Package {
        Package { id: "p".into(), operations: ops, expires_ms: NOW + 60_000, signatures: Vec::new() }
    }

    fn at(bank: &str, a: &str) -> Option<AccountRef> {
        Some(AccountRef { bank: bank.into(), account: a.into() })
    }

    fn debit() -> Leg {
        Leg { index: 0, side: Side::Debit, account: "1".into(), amount: Cents(5) }
    }

    #[test]
    fn money_leaves_only_with_a_holders_signature_for_this_package_at_this_origin() {
        let (alice, mallory) = (KeyPair::from_seed([1; 32]), KeyPair::from_seed([2; 32]));
        let (a, m) = (cpf(111_111_111), cpf(222_222_222));
        let keys = |c: &Cpf| if *c == a { Some(alice.public()) } else if *c == m { Some(mallory.public()) } else { None };
        let acc = account("1", &[a.clone()]);
        let op = Operation { kind: OpKind::Withdraw, from: at("b:1", "1"), to: None, amount: Cents(5) };
        let mut p = package(vec![op]);
        let check = |p: &Package, origin: &str| authorize_leg(p, origin, "b:1", &debit(), Some(&acc), keys, &[]);
        assert!(check(&p, "a:1").unwrap_err().contains("no valid signature"), "unsigned");
        p.sign_as_holder("a:1", &m.to_string(), &mallory);
        assert!(check(&p, "a:1").is_err(), "signed by someone who is not a holder");
        p.signatures[0].cpf = Some(a.to_string());
        assert!(check(&p, "a:1").is_err(), "the holder's name on another key's signature");
        p.sign_as_holder("a:1", &a.to_string(), &alice);
        assert_eq!(check(&p, "a:1"), Ok(()));
        assert!(check(&p, "c:1").is_err(), "signed for another origin");
        let mut more = p.clone();
        more.operations[0].amount = Cents(500);
        assert!(check(&more, "a:1").is_err(), "the amount changed after signing");
        let mut later = p.clone();
        later.expires_ms += 1;
        assert!(check(&later, "a:1").is_err(), "the expiry is signed too");
    }

    #[test]
    fn cash_enters_only_with_this_banks_teller_signature() {
        let (teller, other) = (KeyPair::from_seed([3; 32]), KeyPair::from_seed([4; 32]));
        let op = Operation { kind: OpKind::Deposit, from: None, to: at("b:1", "1"), amount: Cents(5) };
        let credit = Leg { index: 0, side: Side::Credit, account: "1".into(), amount: Cents(5) };
        let mut p = package(vec![op]);
        let check = |p: &Package| authorize_leg(p, "a:1", "b:1", &credit, None, |_| None, &[teller.public()]);
        assert!(check(&p).is_err());
        p.sign_as_teller("a:1", "b:1", &other);
        assert!(check(&p).is_err(), "another key than this bank's teller");
        p.sign_as_teller("a:1", "c:1", &teller);
        assert!(check(&p).is_err(), "signed as the teller of another bank");
        p.sign_as_teller("a:1", "b:1", &teller);
        assert_eq!(check(&p), Ok(()));
        let transfer_credit = package(vec![Operation { kind: OpKind::Transfer, from: at("c:1", "9"), to: at("b:1", "1"), amount: Cents(5) }]);
        assert_eq!(authorize_leg(&transfer_credit, "a:1", "b:1", &credit, None, |_| None, &[]), Ok(()), "receiving a transfer needs nothing here");
    }

    #[test]
    fn expiry_is_a_window_on_this_banks_clock() {
        let mut p = package(Vec::new());
        assert_eq!(check_expiry(&p, NOW), Ok(()));
        assert_eq!(check_expiry(&p, NOW + 60_000 + CLOCK_SKEW_MS), Ok(()), "within the skew allowance");
        assert!(check_expiry(&p, NOW + 60_001 + CLOCK_SKEW_MS).unwrap_err().contains("expired"));
        p.expires_ms = NOW + crate::package::spec::MAX_EXPIRY_MS + CLOCK_SKEW_MS + 1;
        assert!(check_expiry(&p, NOW).unwrap_err().contains("24 hours"));
        p.expires_ms = 0;
        assert!(check_expiry(&p, NOW).is_err());
    }
}
