//! An account's statement: an append-only, time-stamped journal of every movement of its
//! money, written in the same transaction as the balance it changes. Entries are numbered
//! from 1 per account; compaction of package history never touches them.

use super::{Account, Cents};
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// Most entries one statement page returns.
pub const MAX_STATEMENT_PAGE: u32 = 500;

/// One committed movement of an account's money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JournalEntry {
    /// Position in this account's journal, from 1, without gaps.
    pub n: u64,
    /// When this bank applied it (its clock, Unix ms).
    pub time_ms: u64,
    /// Money in (credit) or out (debit).
    pub side: super::super::package::Side,
    pub amount: Cents,
    /// The package and operation that moved it.
    pub origin: String,
    pub package: String,
    pub index: u32,
    /// The account's balance plus held money right after it.
    pub total_after: Cents,
}

impl JournalEntry {
    /// Signed change of the account's money.
    pub fn delta(&self) -> i128 {
        match self.side {
            super::super::package::Side::Credit => self.amount.0 as i128,
            super::super::package::Side::Debit => -(self.amount.0 as i128),
        }
    }
}

/// One page of a statement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Statement {
    pub account: String,
    pub entries: Vec<JournalEntry>,
    /// Where the next page starts (`from`), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// The highest entry number a page may start from: 2^53 - 1, the largest integer every JSON
/// reader holds exactly (no account comes near it; a larger `from` is a malformed request,
/// as the published API document says).
pub const MAX_FROM: u64 = (1 << 53) - 1;

/// A page request: entries from `from` (1 = the first), at most `limit`.
pub fn check_page(from: u64, limit: u32) -> Result<(), Error> {
    if from == 0 || from > MAX_FROM {
        return Err(Error::bad_request("bad_page", format!("entries are numbered from 1 to {MAX_FROM}")));
    }
    if limit == 0 || limit > MAX_STATEMENT_PAGE {
        return Err(Error::bad_request("bad_page", format!("limit is 1 to {MAX_STATEMENT_PAGE}")));
    }
    Ok(())
}

/// The journal's invariant: its entries are numbered 1..=n without gaps, each running total
/// follows from the one before, and their sum is the account's money (balance plus held).
/// `entries` is the whole journal. Returns what is broken.
pub fn check_journal(account: &Account, entries: &[JournalEntry]) -> Result<(), String> {
    let mut total: i128 = 0;
    for (i, e) in entries.iter().enumerate() {
        if e.n != i as u64 + 1 {
            return Err(format!("account {}: entry {} is numbered {}", account.key, i + 1, e.n));
        }
        total += e.delta();
        if total != e.total_after.0 as i128 {
            return Err(format!("account {}: entry {} says total {} but the entries sum to {total}", account.key, e.n, e.total_after.0));
        }
    }
    let money = account.balance.0 as i128 + account.held.0 as i128;
    if total != money {
        return Err(format!("account {}: the journal sums to {total} but balance + held is {money}", account.key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountKind;
    use crate::package::Side;

    fn entry(n: u64, side: Side, amount: u64, total_after: u64) -> JournalEntry {
        JournalEntry { n, time_ms: n, side, amount: Cents(amount), origin: "o".into(), package: format!("p{n}"), index: 0, total_after: Cents(total_after) }
    }

    #[test]
    fn the_journal_sums_to_the_money() {
        let mut a = Account { bank: "b".into(), key: "1".into(), kind: AccountKind::Personal, holders: vec![], balance: Cents(3), blocked: Cents(9), held: Cents(4) };
        let j = vec![entry(1, Side::Credit, 10, 10), entry(2, Side::Debit, 3, 7)];
        assert_eq!(check_journal(&a, &j), Ok(()), "blocked credits are not money yet; held debits still are");
        a.balance = Cents(4);
        assert!(check_journal(&a, &j).unwrap_err().contains("sums to 7"));
        a.balance = Cents(3);
        let gap = vec![entry(1, Side::Credit, 10, 10), entry(3, Side::Debit, 3, 7)];
        assert!(check_journal(&a, &gap).unwrap_err().contains("numbered 3"));
        let wrong_total = vec![entry(1, Side::Credit, 10, 10), entry(2, Side::Debit, 3, 8)];
        assert!(check_journal(&a, &wrong_total).is_err());
    }

    #[test]
    fn pages_are_bounded() {
        assert!(check_page(1, 1).is_ok() && check_page(7, MAX_STATEMENT_PAGE).is_ok());
        assert_eq!(check_page(0, 10).unwrap_err().code, "bad_page");
        assert_eq!(check_page(1, 0).unwrap_err().code, "bad_page");
        assert_eq!(check_page(1, MAX_STATEMENT_PAGE + 1).unwrap_err().code, "bad_page");
        assert!(check_page(MAX_FROM, 1).is_ok());
        assert_eq!(check_page(MAX_FROM + 1, 1).unwrap_err().code, "bad_page", "past what the document allows");
    }
}
