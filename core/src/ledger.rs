//! Balance movements of one account, as the package protocol uses them. Pure functions over
//! `Account`; the store makes them durable. Every movement keeps
//! `balance + held` (money the bank owes the holder) and `blocked` (money it may come to owe)
//! exact, and refuses rather than wraps.

use crate::domain::{Account, Cents};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    InsufficientFunds { available: Cents, wanted: Cents },
    Overflow,
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::InsufficientFunds { available, wanted } => {
                format!("insufficient funds: available {available}, wanted {wanted}")
            }
            Refusal::Overflow => "the credit would overflow the account".to_string(),
        }
    }
}

/// Prepare a debit: move `amount` from the spendable balance into a hold.
pub fn hold(a: &mut Account, amount: Cents) -> Result<(), Refusal> {
    let balance = a
        .balance
        .checked_sub(amount)
        .ok_or(Refusal::InsufficientFunds { available: a.balance, wanted: amount })?;
    let held = a.held.checked_add(amount).ok_or(Refusal::Overflow)?;
    a.balance = balance;
    a.held = held;
    Ok(())
}

/// Prepare a credit: it waits in `blocked` until the package commits. Refused if the account
/// could not absorb it, so that committing can never fail.
pub fn block(a: &mut Account, amount: Cents) -> Result<(), Refusal> {
    let blocked = a.blocked.checked_add(amount).ok_or(Refusal::Overflow)?;
    a.balance.checked_add(blocked).and_then(|x| x.checked_add(a.held)).ok_or(Refusal::Overflow)?;
    a.blocked = blocked;
    Ok(())
}

/// Commit a prepared debit: the held money leaves the account.
pub fn commit_debit(a: &mut Account, amount: Cents) {
    a.held = a.held.checked_sub(amount).expect("commit of a debit larger than the holds");
}

/// Commit a prepared credit: blocked money becomes spendable.
pub fn commit_credit(a: &mut Account, amount: Cents) {
    a.blocked = a.blocked.checked_sub(amount).expect("commit of a credit larger than blocked");
    a.balance = a.balance.checked_add(amount).expect("block() guaranteed room for the credit");
}

/// Abort a prepared debit: the hold goes back to the balance.
pub fn refund_debit(a: &mut Account, amount: Cents) {
    a.held = a.held.checked_sub(amount).expect("refund of a debit larger than the holds");
    a.balance = a.balance.checked_add(amount).expect("a refund restores what was there");
}

/// Abort a prepared credit: it never happened.
pub fn drop_credit(a: &mut Account, amount: Cents) {
    a.blocked = a.blocked.checked_sub(amount).expect("drop of a credit larger than blocked");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountKind;

    fn acct(balance: u64) -> Account {
        Account {
            bank: "b".into(),
            key: "1".into(),
            kind: AccountKind::Business,
            holders: vec![],
            balance: Cents(balance),
            blocked: Cents(0),
            held: Cents(0),
        }
    }

    #[test]
    fn debit_holds_then_commits_or_refunds() {
        let mut a = acct(100);
        hold(&mut a, Cents(60)).unwrap();
        assert_eq!((a.balance, a.held), (Cents(40), Cents(60)));
        assert_eq!(hold(&mut a, Cents(41)), Err(Refusal::InsufficientFunds { available: Cents(40), wanted: Cents(41) }));
        assert_eq!((a.balance, a.held), (Cents(40), Cents(60)), "a refused hold changes nothing");
        let mut b = a.clone();
        commit_debit(&mut a, Cents(60));
        assert_eq!((a.balance, a.held), (Cents(40), Cents(0)));
        refund_debit(&mut b, Cents(60));
        assert_eq!((b.balance, b.held), (Cents(100), Cents(0)));
    }

    #[test]
    fn credit_blocks_then_commits_or_drops() {
        let mut a = acct(5);
        block(&mut a, Cents(10)).unwrap();
        assert_eq!((a.balance, a.blocked), (Cents(5), Cents(10)));
        let mut b = a.clone();
        commit_credit(&mut a, Cents(10));
        assert_eq!((a.balance, a.blocked), (Cents(15), Cents(0)));
        drop_credit(&mut b, Cents(10));
        assert_eq!((b.balance, b.blocked), (Cents(5), Cents(0)));
    }

    #[test]
    fn credit_that_could_overflow_is_refused() {
        let mut a = acct(u64::MAX - 5);
        assert_eq!(block(&mut a, Cents(6)), Err(Refusal::Overflow));
        assert_eq!(a.blocked, Cents(0));
        block(&mut a, Cents(5)).unwrap();
        assert_eq!(block(&mut a, Cents(1)), Err(Refusal::Overflow));
    }
}
