//! The origin bank's record of a package: the one place where a package is decided.
//!
//! It starts `Pending` and moves once, compare-and-set, to `Committed` or `Aborted`. Whoever
//! decides first (the executor, or a participant presuming abort after a timeout) wins; every
//! later attempt learns that decision instead. That single rule is what makes execution
//! exactly-once even when two tokens briefly exist or messages are duplicated.

use super::spec::{Package, PackageKey};
use crate::error::Error;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Committed,
    Aborted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Commit,
    Abort,
}

impl Status {
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Status::Pending => None,
            Status::Committed => Some(Outcome::Commit),
            Status::Aborted => Some(Outcome::Abort),
        }
    }
}

impl Outcome {
    pub fn status(self) -> Status {
        match self {
            Outcome::Commit => Status::Committed,
            Outcome::Abort => Status::Aborted,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpResult {
    pub index: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub package: Package,
    pub origin: String,
    pub status: Status,
    #[serde(default)]
    pub results: Vec<OpResult>,
    /// Order of acceptance at the origin; the outbox is replayed in this order.
    pub seq: u64,
}

/// What a decide attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// This call moved the record out of pending.
    Now,
    /// It was already decided; the caller must follow the recorded outcome.
    Already,
}

impl Record {
    pub fn new(package: Package, origin: String, seq: u64) -> Record {
        Record { package, origin, status: Status::Pending, results: Vec::new(), seq }
    }

    pub fn key(&self) -> PackageKey {
        self.package.key(&self.origin)
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.status {
            Status::Pending => None,
            Status::Committed => Some(Outcome::Commit),
            Status::Aborted => Some(Outcome::Abort),
        }
    }

    /// Compare-and-set from pending. A commit must come with every operation ok; an abort
    /// with at least one reason (or, for presumed abort, none: the reason is filled in).
    /// Results come from the network (another bank's decide), so a malformed set is refused,
    /// never asserted: it must not stop this bank. `by` is the bank asking: a presumed abort
    /// (no results) may come only from the origin or a bank holding a leg of the package;
    /// an executor's decision (with every result) from any member.
    pub fn decide(&mut self, outcome: Outcome, results: Vec<OpResult>, by: &str) -> Result<Decided, Error> {
        if results.is_empty() && by != self.origin && !self.package.banks().contains(by) {
            return Err(Error::forbidden("not_a_participant", format!("{by} holds no leg of package {}: it cannot presume its abort", self.key())));
        }
        let n = self.package.operations.len();
        let in_order = results.iter().enumerate().all(|(i, r)| r.index as usize == i);
        let bad = |m: &str| Err(Error::bad_request("bad_decision", format!("package {}: {m}", self.key())));
        match outcome {
            Outcome::Commit if results.len() != n || !in_order || !results.iter().all(|r| r.ok) => {
                return bad("a commit needs one ok result per operation, in order");
            }
            Outcome::Abort if !results.is_empty() && (results.len() != n || !in_order || results.iter().all(|r| r.ok)) => {
                return bad("an abort has no results (presumed) or one per operation, in order, naming a failure");
            }
            _ => {}
        }
        if self.status != Status::Pending {
            return Ok(Decided::Already);
        }
        self.results = if results.is_empty() {
            (0..n as u32)
                .map(|index| OpResult { index, ok: false, reason: Some("not decided in time: presumed aborted".into()) })
                .collect()
        } else {
            results
        };
        self.status = outcome.status();
        Ok(Decided::Now)
    }
}

/// Per-operation results from each operation's leg outcomes: an operation is ok only if every
/// one of its legs prepared; the first refusal is its reason. When some operation failed, the
/// others are reported as rolled back so a person reading the result sees why nothing moved.
pub fn results_from_legs(n: usize, failures: &[(u32, String)]) -> (Outcome, Vec<OpResult>) {
    let mut results: Vec<OpResult> = (0..n as u32).map(|index| OpResult { index, ok: true, reason: None }).collect();
    for (index, reason) in failures {
        let r = &mut results[*index as usize];
        if r.ok {
            r.ok = false;
            r.reason = Some(reason.clone());
        }
    }
    if results.iter().all(|r| r.ok) {
        return (Outcome::Commit, results);
    }
    for r in results.iter_mut().filter(|r| r.ok) {
        r.ok = false;
        r.reason = Some("rolled back: another operation of the package failed".into());
    }
    (Outcome::Abort, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cents;
    use crate::package::spec::{AccountRef, OpKind, Operation};

    fn record(n: usize) -> Record {
        let op = Operation {
            kind: OpKind::Deposit,
            from: None,
            to: Some(AccountRef { bank: "a".into(), account: "1".into() }),
            amount: Cents(1),
        };
        Record::new(Package { id: "p".into(), operations: vec![op; n], ..Default::default() }, "a".into(), 1)
    }

    #[test]
    fn first_decision_wins() {
        let mut r = record(2);
        let (o, res) = results_from_legs(2, &[]);
        assert_eq!(o, Outcome::Commit);
        assert_eq!(r.decide(o, res.clone(), "a"), Ok(Decided::Now));
        assert_eq!(r.status, Status::Committed);
        assert_eq!(r.decide(Outcome::Abort, vec![], "a"), Ok(Decided::Already));
        assert_eq!(r.status, Status::Committed, "a later abort never overturns a commit");
        assert_eq!(r.results, res);
    }

    #[test]
    fn presumed_abort_fills_reasons() {
        let mut r = record(2);
        assert_eq!(r.decide(Outcome::Abort, vec![], "a"), Ok(Decided::Now));
        assert_eq!(r.status, Status::Aborted);
        assert!(r.results.iter().all(|x| !x.ok && x.reason.is_some()));
        assert_eq!(r.decide(Outcome::Commit, results_from_legs(2, &[]).1, "a"), Ok(Decided::Already));
        assert_eq!(r.status, Status::Aborted);
    }

    #[test]
    fn one_failed_leg_aborts_all() {
        let (o, res) = results_from_legs(3, &[(1, "insufficient funds".into()), (1, "later".into())]);
        assert_eq!(o, Outcome::Abort);
        assert_eq!(res[1].reason.as_deref(), Some("insufficient funds"));
        assert!(!res[0].ok && !res[2].ok);
        assert!(res[0].reason.as_ref().unwrap().contains("rolled back"));
    }

    #[test]
    fn malformed_decisions_are_refused_and_change_nothing() {
        let ok = |i: u32| OpResult { index: i, ok: true, reason: None };
        let no = |i: u32| OpResult { index: i, ok: false, reason: Some("x".into()) };
        let cases: Vec<(Outcome, Vec<OpResult>)> = vec![
            (Outcome::Commit, vec![no(0), ok(1)]),
            (Outcome::Commit, vec![ok(0)]),
            (Outcome::Commit, vec![]),
            (Outcome::Commit, vec![ok(1), ok(0)]),
            (Outcome::Commit, vec![ok(0), ok(1), ok(2)]),
            (Outcome::Abort, vec![ok(0), ok(1)]),
            (Outcome::Abort, vec![no(0)]),
            (Outcome::Abort, vec![no(0), no(7)]),
        ];
        for (o, res) in cases {
            let mut r = record(2);
            let before = r.clone();
            assert_eq!(r.decide(o, res.clone(), "a").unwrap_err().code, "bad_decision", "{o:?} {res:?}");
            assert_eq!(r, before);
        }
        // Malformed is refused even once decided: the answer never depends on the state.
        let mut r = record(1);
        r.decide(Outcome::Abort, vec![], "a").unwrap();
        assert!(r.decide(Outcome::Commit, vec![no(0)], "a").is_err());
    }

    #[test]
    fn only_a_bank_holding_a_leg_presumes_an_abort() {
        let mut r = record(1);
        assert_eq!(r.decide(Outcome::Abort, vec![], "z").unwrap_err().code, "not_a_participant");
        assert_eq!(r.status, Status::Pending);
        let no = vec![OpResult { index: 0, ok: false, reason: Some("x".into()) }];
        assert_eq!(r.decide(Outcome::Abort, no, "z"), Ok(Decided::Now), "an executor's decision, with its results");
    }
}
