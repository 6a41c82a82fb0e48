//! A participant bank's side of a package: the legs it prepared and how they end.
//!
//! Prepare is idempotent by (origin, package id, index, side): a repeated prepare answers what
//! the first one did (`check_prepare` first checks that it is the same package, by digest). A bank that learns the outcome before (or without) a prepare keeps a
//! tombstone, so a prepare that arrives late for an aborted package is refused instead of
//! holding money nobody will release.

use super::record::Outcome;
use super::spec::{Leg, PackageDigest, PackageKey, Side};
use crate::domain::Account;
use crate::error::Error;
use crate::ledger::{self, Refusal};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum LegState {
    Prepared,
    Refused(String),
    Committed,
    Aborted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub package: String,
    pub origin: String,
    pub leg: Leg,
    pub state: LegState,
}

/// The answer to a prepare, per leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegVote {
    pub index: u32,
    pub side: Side,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl LegRecord {
    pub fn key(&self) -> PackageKey {
        PackageKey::new(&self.origin, &self.package)
    }

    pub fn vote(&self) -> LegVote {
        let (ok, reason) = match &self.state {
            LegState::Prepared | LegState::Committed => (true, None),
            LegState::Refused(r) => (false, Some(r.clone())),
            LegState::Aborted => (false, Some("package already aborted".to_string())),
        };
        LegVote { index: self.leg.index, side: self.leg.side, ok, reason }
    }
}

/// Prepares one new leg against its account (None if the account does not exist).
pub fn prepare(package: &str, origin: &str, leg: &Leg, account: Option<&mut Account>) -> LegRecord {
    let state = match account {
        None => LegState::Refused(format!("account {} not found", leg.account)),
        Some(a) => {
            let r = match leg.side {
                Side::Debit => ledger::hold(a, leg.amount),
                Side::Credit => ledger::block(a, leg.amount),
            };
            match r {
                Ok(()) => LegState::Prepared,
                Err(refusal @ Refusal::InsufficientFunds { .. }) => LegState::Refused(refusal.reason()),
                Err(refusal) => LegState::Refused(refusal.reason()),
            }
        }
    };
    LegRecord { package: package.to_string(), origin: origin.to_string(), leg: leg.clone(), state }
}

/// Whether `outcome` may end this leg. A commit of a leg this bank refused, or an outcome
/// against the one already applied, contradicts this bank's records: it can only come from a
/// forged or broken message, so it is refused (and nothing of the package moves), never
/// applied and never a reason to stop.
/// A participant's row for one package: the digest of the package whose legs it prepared
/// (None if the outcome came first) and the outcome once learned (a tombstone when it came
/// first, so a prepare that arrives late holds nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participation {
    pub digest: Option<PackageDigest>,
    pub outcome: Option<Outcome>,
    /// The package's expiry, once prepared here (0: not known, a tombstone or an old row):
    /// what compaction and the resolver's lookups go by (`compact`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expires_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A prepare of `key` with content `digest` meets what this bank recorded about it. Refuses
/// other content under the same identity; otherwise returns the outcome already learned, if
/// any (legs recorded before keep their first vote; a leg new to this bank after an abort is
/// recorded aborted, without touching its account: `late_leg`).
pub fn check_prepare(key: &PackageKey, part: Option<&Participation>, digest: PackageDigest) -> Result<Option<Outcome>, Error> {
    if let Some(known) = part.and_then(|p| p.digest) {
        if known != digest {
            return Err(Error::conflict("package_mismatch", format!("package {key} was prepared here with other content (digest {known:?}, this one {digest:?})")));
        }
    }
    Ok(part.and_then(|p| p.outcome))
}

/// A leg first seen after its package's outcome: only an abort can come without this bank's
/// vote (a commit needs it), so the leg ends aborted and holds nothing.
pub fn late_leg(key: &PackageKey, outcome: Outcome, leg: &Leg) -> LegRecord {
    assert_eq!(outcome, Outcome::Abort, "package {key} committed here without its leg {leg:?}");
    LegRecord { package: key.id.clone(), origin: key.origin.clone(), leg: leg.clone(), state: LegState::Aborted }
}

/// What an outcome of a package does at this bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishAs {
    /// The same outcome was applied already: nothing to do.
    Done,
    /// Nothing was prepared here: the abort is kept as a tombstone.
    Tombstone,
    /// Apply it to the legs (each checked with `check_finish`).
    Apply,
}

/// An outcome of `key`, decided for content `digest`, meets what this bank recorded. Refuses
/// what contradicts it: a decision about other content than was prepared, the other outcome
/// than the one applied, or a commit of a package none of whose legs was prepared here.
pub fn judge_finish(key: &PackageKey, part: Option<&Participation>, outcome: Outcome, digest: PackageDigest) -> Result<FinishAs, Error> {
    if let Some(known) = part.and_then(|p| p.digest) {
        if known != digest {
            return Err(Error::conflict("package_mismatch", format!("package {key}: the decision is about other content (digest {digest:?}) than was prepared here ({known:?})")));
        }
    }
    if let Some(known) = part.and_then(|p| p.outcome) {
        if known != outcome {
            return Err(Error::conflict("outcome_contradicts_legs", format!("package {key}: {outcome:?} refused: it already ended here as {known:?}")));
        }
        return Ok(FinishAs::Done);
    }
    if part.is_none() {
        if outcome == Outcome::Commit {
            return Err(Error::conflict("outcome_contradicts_legs", format!("package {key}: commit refused: none of its legs was prepared here")));
        }
        return Ok(FinishAs::Tombstone);
    }
    Ok(FinishAs::Apply)
}

pub fn check_finish(rec: &LegRecord, outcome: Outcome) -> Result<(), Error> {
    let contradiction = match (&rec.state, outcome) {
        (LegState::Refused(r), Outcome::Commit) => format!("its leg {} was refused here ({r})", rec.leg.index),
        (LegState::Committed, Outcome::Abort) => format!("its leg {} is already committed here", rec.leg.index),
        (LegState::Aborted, Outcome::Commit) => format!("its leg {} is already aborted here", rec.leg.index),
        _ => return Ok(()),
    };
    Err(Error::conflict("outcome_contradicts_legs", format!("package {}: {outcome:?} refused: {contradiction}", rec.key())))
}

/// Ends a leg with the package's outcome (`check_finish` passed). Returns whether the account changed. Only a
/// prepared leg moves money; every other state is final already.
pub fn finish(rec: &mut LegRecord, outcome: Outcome, account: &mut Account, skip_refund: bool) -> bool {
    match (&rec.state, outcome) {
        (LegState::Prepared, Outcome::Commit) => {
            match rec.leg.side {
                Side::Debit => ledger::commit_debit(account, rec.leg.amount),
                Side::Credit => ledger::commit_credit(account, rec.leg.amount),
            }
            rec.state = LegState::Committed;
            true
        }
        (LegState::Prepared, Outcome::Abort) => {
            match rec.leg.side {
                // The planted bug (simulator tests only) forgets the refund but still drops the hold.
                Side::Debit if skip_refund => ledger::commit_debit(account, rec.leg.amount),
                Side::Debit => ledger::refund_debit(account, rec.leg.amount),
                Side::Credit => ledger::drop_credit(account, rec.leg.amount),
            }
            rec.state = LegState::Aborted;
            true
        }
        // The store runs check_finish on every leg first: reaching these is this bank's bug.
        (LegState::Refused(_), Outcome::Commit) => {
            panic!("package {} committed although leg {:?} was refused", rec.key(), rec.leg)
        }
        (LegState::Committed, Outcome::Abort) | (LegState::Aborted, Outcome::Commit) => {
            panic!("package {} decided both ways (leg {:?} is {:?})", rec.key(), rec.leg, rec.state)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountKind, Cents};

    fn acct(balance: u64) -> Account {
        Account { bank: "b".into(), key: "1".into(), kind: AccountKind::Personal, holders: vec![], balance: Cents(balance), blocked: Cents(0), held: Cents(0) }
    }

    fn leg(side: Side, amount: u64) -> Leg {
        Leg { index: 0, side, account: "1".into(), amount: Cents(amount) }
    }

    #[test]
    fn prepare_votes() {
        let mut a = acct(10);
        let r = prepare("p", "o", &leg(Side::Debit, 11), Some(&mut a));
        assert!(!r.vote().ok);
        assert!(r.vote().reason.unwrap().contains("insufficient funds"));
        assert_eq!(a.balance, Cents(10));
        let r = prepare("p", "o", &leg(Side::Debit, 10), Some(&mut a));
        assert!(r.vote().ok);
        assert_eq!((a.balance, a.held), (Cents(0), Cents(10)));
        let r = prepare("p", "o", &leg(Side::Credit, 1), None);
        assert_eq!(r.vote().reason.unwrap(), "account 1 not found");
    }

    #[test]
    fn finish_is_idempotent() {
        let mut a = acct(10);
        let mut r = prepare("p", "o", &leg(Side::Debit, 4), Some(&mut a));
        assert!(finish(&mut r, Outcome::Abort, &mut a, false));
        assert!(!finish(&mut r, Outcome::Abort, &mut a, false), "second abort moves nothing");
        assert_eq!((a.balance, a.held), (Cents(10), Cents(0)));
    }

    #[test]
    fn refused_leg_ends_quietly_on_abort() {
        let mut a = acct(0);
        let mut r = prepare("p", "o", &leg(Side::Debit, 4), Some(&mut a));
        assert!(!finish(&mut r, Outcome::Abort, &mut a, false));
        assert_eq!(a, acct(0));
    }

    #[test]
    fn contradicting_outcomes_are_refused_before_anything_moves() {
        let mut a = acct(0);
        let refused = prepare("p", "o", &leg(Side::Debit, 4), Some(&mut a));
        assert_eq!(check_finish(&refused, Outcome::Commit).unwrap_err().code, "outcome_contradicts_legs");
        assert!(check_finish(&refused, Outcome::Abort).is_ok());
        let mut a = acct(10);
        let mut r = prepare("p", "o", &leg(Side::Credit, 4), Some(&mut a));
        assert!(check_finish(&r, Outcome::Commit).is_ok() && check_finish(&r, Outcome::Abort).is_ok());
        finish(&mut r, Outcome::Abort, &mut a, false);
        assert!(check_finish(&r, Outcome::Commit).is_err());
        assert!(check_finish(&r, Outcome::Abort).is_ok(), "a repeat is fine");
    }

    #[test]
    #[should_panic(expected = "decided both ways")]
    fn commit_after_abort_is_a_bug() {
        let mut a = acct(10);
        let mut r = prepare("p", "o", &leg(Side::Credit, 4), Some(&mut a));
        finish(&mut r, Outcome::Abort, &mut a, false);
        finish(&mut r, Outcome::Commit, &mut a, false);
    }

    #[test]
    fn a_participant_refuses_what_contradicts_its_records() {
        let key = PackageKey::new("o", "p");
        let (d1, d2) = (PackageDigest([1; 32]), PackageDigest([2; 32]));
        let prepared = Participation { digest: Some(d1), outcome: None, expires_ms: 0 };
        assert_eq!(check_prepare(&key, None, d1).unwrap(), None);
        assert_eq!(check_prepare(&key, Some(&prepared), d2).unwrap_err().code, "package_mismatch");
        let tomb = Participation { digest: None, outcome: Some(Outcome::Abort), expires_ms: 0 };
        assert_eq!(check_prepare(&key, Some(&tomb), d1).unwrap(), Some(Outcome::Abort), "a late prepare after an abort");
        assert_eq!(judge_finish(&key, None, Outcome::Abort, d1).unwrap(), FinishAs::Tombstone);
        assert_eq!(judge_finish(&key, None, Outcome::Commit, d1).unwrap_err().code, "outcome_contradicts_legs", "a commit needs this bank's vote");
        assert_eq!(judge_finish(&key, Some(&prepared), Outcome::Commit, d2).unwrap_err().code, "package_mismatch");
        assert_eq!(judge_finish(&key, Some(&prepared), Outcome::Commit, d1).unwrap(), FinishAs::Apply);
        let committed = Participation { digest: Some(d1), outcome: Some(Outcome::Commit), expires_ms: 0 };
        assert_eq!(judge_finish(&key, Some(&committed), Outcome::Commit, d1).unwrap(), FinishAs::Done, "a repeat");
        assert_eq!(judge_finish(&key, Some(&committed), Outcome::Abort, d1).unwrap_err().code, "outcome_contradicts_legs");
        let leg = Leg { index: 0, side: Side::Debit, account: "1".into(), amount: crate::domain::Cents(1) };
        assert_eq!(late_leg(&key, Outcome::Abort, &leg).state, LegState::Aborted);
    }
}
