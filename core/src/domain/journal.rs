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

/// An export of a statement a page at a time: which page to ask for next, and the pages
/// joined. `node admin statement` reads the pages from the store, `bank admin statement` from
/// the bank; the walk is this one piece of plain code.
#[derive(Clone, Debug)]
pub struct Export {
    pub statement: Statement,
    limit: Option<u64>,
}

impl Export {
    /// Entries from `from` on: `limit` of them, or with `None` every one to the end.
    pub fn new(account: &str, from: u64, limit: Option<u64>) -> Export {
        Export { statement: Statement { account: account.to_string(), entries: Vec::new(), next: Some(from) }, limit }
    }

    /// The next page to ask for (from, at most this many), or `None`: done.
    pub fn next(&self) -> Option<(u64, u32)> {
        let at = self.statement.next?;
        let left = self.limit.map_or(u64::MAX, |l| l.saturating_sub(self.statement.entries.len() as u64));
        (left > 0).then(|| (at, left.min(MAX_STATEMENT_PAGE as u64) as u32))
    }

    /// The page asked for. An empty page ends the walk, whatever it says comes next.
    pub fn add(&mut self, page: Statement) {
        self.statement.next = page.next.filter(|_| !page.entries.is_empty());
        self.statement.entries.extend(page.entries);
    }
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
    fn an_export_asks_page_after_page_until_the_end_or_the_limit() {
        let entry = |n: u64| JournalEntry { n, time_ms: n, side: crate::package::Side::Credit, amount: Cents(1), origin: "o".into(), package: format!("p{n}"), index: 0, total_after: Cents(n) };
        // A journal of 1,200 entries, served as the store serves it.
        let serve = |from: u64, limit: u32| {
            let entries: Vec<_> = (from..=1_200).take(limit as usize).map(entry).collect();
            let next = entries.last().map(|e| e.n + 1).filter(|n| *n <= 1_200);
            Statement { account: "a".into(), entries, next }
        };
        let walk = |from, limit| {
            let mut ex = Export::new("a", from, limit);
            let mut asked = Vec::new();
            while let Some((at, n)) = ex.next() {
                asked.push((at, n));
                ex.add(serve(at, n));
            }
            (ex.statement, asked)
        };
        let (all, asked) = walk(1, None);
        assert_eq!(asked, vec![(1, MAX_STATEMENT_PAGE), (501, MAX_STATEMENT_PAGE), (1_001, MAX_STATEMENT_PAGE)]);
        assert_eq!((all.entries.len(), all.next), (1_200, None));
        let (some, asked) = walk(700, Some(600));
        assert_eq!(asked, vec![(700, MAX_STATEMENT_PAGE), (1_200, 100)]);
        assert_eq!((some.entries.len(), some.entries[0].n, some.next), (501, 700, None));
        let (cut, _) = walk(2, Some(3));
        assert_eq!((cut.entries.len(), cut.next), (3, Some(5)), "where the next page would start");
        let mut ex = Export::new("a", 1, None);
        ex.add(Statement { account: "a".into(), entries: vec![], next: Some(9) });
        assert_eq!(ex.next(), None, "an empty page ends the walk");
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
