//! History that does not grow forever, without breaking atomicity: when a bank may forget a
//! package, and what it answers about one it forgot. Plain rules; the node's store and its
//! compactor task apply them.
//!
//! Package ids are chosen by clients: they are not ordered, so no watermark over ids can say
//! "below this, records were compacted". Time can, through the package's signed expiry:
//!
//! - A participant refuses to prepare a package once its own clock is past
//!   `expires_ms + skew` (`authority::check_expiry_within`). So once that has passed, and the
//!   outcome of its legs is known here, nothing can make this bank hold money for the package
//!   again: it drops its legs and its row (`participant_keep_until`). A tombstone (an abort
//!   learned before any prepare) does not know the expiry; it is kept for the longest a
//!   package can be valid past the moment it was learned (`tombstone_keep_until`).
//! - The origin drops a decided record only when (1) every bank holding a leg acknowledged
//!   the outcome (`Ack`: applied, or the package is unknown there and can no longer be
//!   prepared there), so no bank can ever be in doubt about it and ask again; and (2) its
//!   clock is past `expires_ms + 2 × skew` (`origin_verdict`): a retried submission is then
//!   refused as expired instead of being accepted anew, and every participant's clock is
//!   past `expires_ms + skew`, so an "unknown here" answer is final.
//! - The origin remembers the latest expiry of any record it dropped: the watermark. A lookup
//!   of an id it has no record of, from a bank that names the package's expiry, is answered
//!   `NeverRecorded` (404) only if that expiry is above the watermark, else `MaybeCompacted`
//!   (410): a compacted package never gets the 404 that makes a participant abort its legs
//!   (`lookup_unknown`). A lookup that names no expiry is `MaybeCompacted` once anything was
//!   compacted.

use super::leg::Participation;
use super::record::{Outcome, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Until when (this bank's clock, ms) a participant keeps its row and legs of a package it
/// prepared, whose expiry is `expires_ms`: after this it refuses any prepare of it.
pub fn participant_keep_until(expires_ms: u64, skew_ms: u64) -> u64 {
    expires_ms.saturating_add(skew_ms).saturating_add(1)
}

/// Until when a tombstone learned at `now_ms` (without the package, so without its expiry)
/// is kept: the package was accepted before now, so it expires at most `MAX_EXPIRY_MS` (plus
/// the skew of the clock that accepted it) after now.
pub fn tombstone_keep_until(now_ms: u64, skew_ms: u64) -> u64 {
    participant_keep_until(now_ms.saturating_add(super::spec::MAX_EXPIRY_MS).saturating_add(skew_ms), skew_ms)
}

/// Whether a participant may drop its row of a package now.
pub fn participant_may_drop(part: &Participation, keep_until_ms: u64, now_ms: u64) -> bool {
    part.outcome.is_some() && keep_until_ms > 0 && now_ms > keep_until_ms
}

/// A participant's answer when its package's origin asks whether it has the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// The outcome is applied here (or was, and the row is gone: see `Unknown`).
    Applied,
    /// No row here: never prepared, or compacted after the outcome was applied. The origin
    /// asks only once every clock is past the package's expiry plus the skew, so it can no
    /// longer be prepared here: as good as applied.
    Unknown,
    /// Not applied (a refused signature, a contradiction, a storage failure): ask again later.
    NotYet,
}

impl Ack {
    pub fn counts(self) -> bool {
        matches!(self, Ack::Applied | Ack::Unknown)
    }
}

/// What a participant answers for a package, from its row after the outcome was applied.
pub fn ack_of(part: Option<&Participation>, outcome: Outcome) -> Ack {
    match part {
        None => Ack::Unknown,
        Some(p) if p.outcome == Some(outcome) => Ack::Applied,
        Some(_) => Ack::NotYet,
    }
}

/// What the origin's compactor does with one decided record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not yet: still pending, or not expired long enough (a retry could still be accepted).
    Keep,
    /// Ask these banks to acknowledge the outcome first.
    Ask(BTreeSet<String>),
    /// Every bank acknowledged and it expired long ago: drop it.
    Drop,
}

/// The earliest origin time at which a record may be dropped (and acks are asked for).
pub fn origin_ripe_at(expires_ms: u64, skew_ms: u64) -> u64 {
    expires_ms.saturating_add(skew_ms.saturating_mul(2)).saturating_add(1)
}

pub fn origin_verdict(r: &Record, acked: &BTreeSet<String>, now_ms: u64, skew_ms: u64) -> Verdict {
    if r.outcome().is_none() || now_ms < origin_ripe_at(r.package.expires_ms, skew_ms) {
        return Verdict::Keep;
    }
    let missing: BTreeSet<String> = r.package.banks().difference(acked).cloned().collect();
    if missing.is_empty() {
        Verdict::Drop
    } else {
        Verdict::Ask(missing)
    }
}

/// What the origin answers about an id it holds no record of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Never recorded here: nobody can ever commit it (a participant aborts its legs).
    NeverRecorded,
    /// It may have been recorded, decided and compacted: not evidence of anything.
    MaybeCompacted,
}

/// `watermark`: the latest expiry of any record dropped here (0: none ever was). `expires_ms`:
/// the package's expiry as the asker knows it, if it says.
pub fn lookup_unknown(watermark: u64, expires_ms: Option<u64>) -> Unknown {
    match expires_ms {
        _ if watermark == 0 => Unknown::NeverRecorded,
        Some(e) if e > watermark => Unknown::NeverRecorded,
        _ => Unknown::MaybeCompacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Cents;
    use crate::package::spec::{AccountRef, OpKind, Operation, Package};
    use crate::package::{authority, OpResult};

    const SKEW: u64 = 30_000;

    fn transfer(expires_ms: u64) -> Record {
        let at = |b: &str| Some(AccountRef { bank: b.into(), account: "1".into() });
        let op = Operation { kind: OpKind::Transfer, from: at("a"), to: at("b"), amount: Cents(5) };
        Record::new(Package { id: "p".into(), operations: vec![op], expires_ms, signatures: vec![] }, "a".into(), 1)
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_participant_forgets_only_what_it_can_no_longer_prepare() {
        let e = 1_000_000;
        let until = participant_keep_until(e, SKEW);
        let p = Package { id: "p".into(), operations: vec![], expires_ms: e, signatures: vec![] };
        // The last moment a prepare is still accepted is kept; after it, refused and droppable.
        assert!(authority::check_expiry_within(&p, until - 1, SKEW).is_ok());
        assert!(authority::check_expiry_within(&p, until, SKEW).is_err());
        let done = Participation { outcome: Some(Outcome::Commit), ..Default::default() };
        assert!(!participant_may_drop(&done, until, until), "not before its time");
        assert!(participant_may_drop(&done, until, until + 1));
        let in_doubt = Participation { outcome: None, ..Default::default() };
        assert!(!participant_may_drop(&in_doubt, until, u64::MAX), "an in-doubt leg is never dropped");
        assert!(!participant_may_drop(&done, 0, u64::MAX), "an unknown expiry (an old row) is kept");
        // A tombstone outlives any package accepted before it was learned.
        let t = tombstone_keep_until(e, SKEW);
        let latest = Package { expires_ms: e + crate::package::spec::MAX_EXPIRY_MS + SKEW, ..p };
        assert!(authority::check_expiry_within(&latest, t - 1, SKEW).is_ok());
        assert!(authority::check_expiry_within(&latest, t, SKEW).is_err());
    }

    #[test]
    fn the_origin_drops_only_acknowledged_expired_decisions() {
        let mut r = transfer(1_000);
        let ripe = origin_ripe_at(1_000, SKEW);
        assert_eq!(origin_verdict(&r, &set(&["a", "b"]), ripe, SKEW), Verdict::Keep, "pending");
        r.decide(Outcome::Commit, vec![OpResult { index: 0, ok: true, reason: None }], "a").unwrap();
        assert_eq!(origin_verdict(&r, &set(&["a", "b"]), ripe - 1, SKEW), Verdict::Keep, "a retry could still be accepted");
        assert_eq!(origin_verdict(&r, &set(&["a"]), ripe, SKEW), Verdict::Ask(set(&["b"])));
        assert_eq!(origin_verdict(&r, &set(&[]), ripe, SKEW), Verdict::Ask(set(&["a", "b"])));
        assert_eq!(origin_verdict(&r, &set(&["a", "b", "z"]), ripe, SKEW), Verdict::Drop);
        // Ripe at the origin means past expiry + skew at every bank within the skew.
        assert!(ripe - SKEW > participant_keep_until(1_000, SKEW) - 1);
    }

    #[test]
    fn acks() {
        let applied = Participation { outcome: Some(Outcome::Abort), ..Default::default() };
        assert_eq!(ack_of(Some(&applied), Outcome::Abort), Ack::Applied);
        assert_eq!(ack_of(Some(&applied), Outcome::Commit), Ack::NotYet, "a contradiction is no ack");
        assert_eq!(ack_of(Some(&Participation::default()), Outcome::Commit), Ack::NotYet);
        assert_eq!(ack_of(None, Outcome::Commit), Ack::Unknown);
        assert!(Ack::Applied.counts() && Ack::Unknown.counts() && !Ack::NotYet.counts());
    }

    #[test]
    fn a_compacted_package_never_looks_never_recorded() {
        assert_eq!(lookup_unknown(0, None), Unknown::NeverRecorded, "nothing compacted: 404 means never recorded");
        assert_eq!(lookup_unknown(0, Some(5)), Unknown::NeverRecorded);
        // Every dropped record's expiry is at most the watermark.
        assert_eq!(lookup_unknown(1_000, Some(1_000)), Unknown::MaybeCompacted);
        assert_eq!(lookup_unknown(1_000, Some(999)), Unknown::MaybeCompacted);
        assert_eq!(lookup_unknown(1_000, Some(1_001)), Unknown::NeverRecorded, "expires after anything dropped");
        assert_eq!(lookup_unknown(1_000, None), Unknown::MaybeCompacted, "an asker that names no expiry");
    }
}
