//! The rules of a restored bank's reconciliation, as plain code: from what every other bank
//! answered (`ReconcileAnswer`) and what the restored bank holds (`Local`), the steps that
//! bring it back to what it acknowledged, as far as anyone can know it.
//!
//! What a restored bank can know is what the other banks hold: its own packages' legs there
//! (with its own signed decisions, kept beside the packages), and their packages' legs here
//! (their records, with their signed decisions). It cannot know what touched only itself
//! after the backup: those operations are gone, and it says so.
//!
//! - Its own package that a bank holds a decision for, signed by this bank's key: adopted
//!   (the record is re-made or decided as signed; its legs here are re-applied). A commit
//!   signed here is never presumed aborted.
//! - Its own package that banks hold in doubt, or decided without a signature to show, and
//!   that no bank refused: this bank cannot know whether it decided it after the backup. It
//!   is *lost*: its id stays taken, nobody may decide it here, and its operators settle it
//!   with the other banks'. (A package some bank voted no on cannot have committed: the
//!   ordinary paths abort it.)
//! - Another bank's decided package with legs here, signed by that bank: re-applied here
//!   (the ordinary finish if the legs were prepared before the backup; else the money is
//!   moved as the finish did, or nothing if the debit cannot be covered: a problem note).
//! - The highest account number any bank names here: the next account opened gets a higher
//!   one, so no number is used twice.
//!
//! Everything a bank sends is checked: a decision must be signed by its origin over the
//! package sent with it, a package must be valid and name this bank; what fails is a
//! problem note, never a step.

use crate::wire::{Participated, ReconcileAnswer};
use consortium_core::package::spec::MAX_ID_LEN;
use consortium_core::package::{Outcome, Package, PackageKey, Record};
use consortium_core::trust::keys::PublicKey;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make (or decide) this bank's record of its own package as its signed decision says.
    AdoptRecord { package: Package, outcome: Outcome },
    /// Apply `outcome` to this bank's legs of `key` (its own package or another bank's).
    ApplyLegs { key: PackageKey, package: Package, outcome: Outcome },
    /// This bank's package whose outcome it cannot know.
    Lost { id: String, why: String },
    /// Something the operators must look at.
    Problem(String),
    /// The account sequence is at least this.
    RaiseAccountSeq(u64),
}

/// What the restored bank holds of what the answers name.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// Its records of the ids of its own packages the answers name.
    pub records: BTreeMap<String, Record>,
    /// The outcomes it applied to its legs of the other banks' packages the answers name.
    pub applied: BTreeMap<PackageKey, Outcome>,
}

/// What the answers say of one of this bank's own packages.
#[derive(Default)]
struct Seen {
    package: Option<Package>,
    signed: Vec<(Outcome, String)>,
    unsigned: Vec<(Outcome, String)>,
    in_doubt: Vec<String>,
    refused: bool,
}

/// The steps, in order. `me` is the restored bank, `key_of` a member's public key (this
/// bank's own included), `answers` every other bank's answer by bank.
pub fn plan(me: &str, key_of: &dyn Fn(&str) -> Option<PublicKey>, answers: &BTreeMap<String, ReconcileAnswer>, local: &Local) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut problems = Vec::new();
    let is_member = |b: &str| key_of(b).is_some();
    let mut max_account = 0u64;
    let mut note_accounts = |p: &Package| {
        for op in &p.operations {
            for r in [op.from.as_ref(), op.to.as_ref()].into_iter().flatten() {
                if r.bank == me {
                    if let Ok(n) = r.account.parse::<u64>() {
                        max_account = max_account.max(n);
                    }
                }
            }
        }
    };
    let my_key = key_of(me);
    // This bank's own packages, gathered across the answers.
    let mut mine: BTreeMap<String, Seen> = BTreeMap::new();
    for (bank, a) in answers {
        for p in &a.participated {
            if p.id.is_empty() || p.id.len() > MAX_ID_LEN {
                problems.push(format!("{bank} named a package id that is not one (length {})", p.id.len()));
                continue;
            }
            match seen_of(me, my_key.as_ref(), bank, p) {
                Ok(s) => {
                    let e = mine.entry(p.id.clone()).or_default();
                    if let Some(pk) = s.package {
                        note_accounts(&pk);
                        e.package.get_or_insert(pk);
                    }
                    e.signed.extend(s.signed);
                    e.unsigned.extend(s.unsigned);
                    e.in_doubt.extend(s.in_doubt);
                    e.refused |= s.refused;
                }
                Err(why) => problems.push(why),
            }
        }
    }
    for (id, s) in mine {
        let key = PackageKey::new(me, &id);
        let mut outcomes: Vec<Outcome> = s.signed.iter().map(|(o, _)| *o).collect();
        outcomes.dedup();
        if outcomes.iter().any(|o| *o != outcomes[0]) {
            problems.push(format!("{key}: banks hold both a commit and an abort signed by this bank ({:?})", s.signed));
            continue;
        }
        let signed = outcomes.into_iter().next();
        let record = local.records.get(&id);
        if let Some(decided) = record.and_then(|r| r.outcome()) {
            for (o, bank) in s.signed.iter().chain(&s.unsigned) {
                if *o != decided {
                    problems.push(format!("{key}: this bank's record says {decided:?}, {bank} holds {o:?}"));
                }
            }
            continue;
        }
        match signed {
            Some(outcome) => {
                let package = match (record, &s.package) {
                    (Some(r), Some(p)) if r.package.digest(me) != p.digest(me) => {
                        problems.push(format!("{key}: the package the banks kept is not the one this bank recorded"));
                        continue;
                    }
                    (Some(r), _) => r.package.clone(),
                    (None, Some(p)) => p.clone(),
                    (None, None) => continue, // no decision without its package (seen_of)
                };
                steps.push(Step::AdoptRecord { package: package.clone(), outcome });
                if package.legs_by_bank().contains_key(me) {
                    steps.push(Step::ApplyLegs { key, package, outcome });
                }
            }
            None if s.refused => {} // cannot have committed: the ordinary paths abort it
            None if !s.in_doubt.is_empty() || !s.unsigned.is_empty() => {
                let mut who: Vec<String> = s.in_doubt.iter().map(|b| format!("{b} in doubt")).collect();
                who.extend(s.unsigned.iter().map(|(o, b)| format!("{b} says {o:?} without this bank's signature")));
                steps.push(Step::Lost { id, why: format!("no bank holds this bank's signed decision ({}); it may have been decided after the backup", who.join(", ")) });
            }
            None => {}
        }
    }
    // The other banks' packages with legs here.
    for (bank, a) in answers {
        let Some(their_key) = key_of(bank) else {
            problems.push(format!("an answer from {bank}, not a member"));
            continue;
        };
        for r in &a.records {
            let key = r.package.key(bank);
            if r.package.validate(is_member).is_err() || r.package.digest(bank) != r.decision.digest || !r.decision.verify(&their_key, &key) {
                problems.push(format!("{bank} sent a decision of {key} that is not its signature over that package"));
                continue;
            }
            if !r.package.legs_by_bank().contains_key(me) {
                continue;
            }
            note_accounts(&r.package);
            match local.applied.get(&key) {
                Some(o) if *o == r.decision.outcome => {}
                Some(o) => problems.push(format!("{key}: this bank applied {o:?}, its origin signed {:?}", r.decision.outcome)),
                None => steps.push(Step::ApplyLegs { key, package: r.package.clone(), outcome: r.decision.outcome }),
            }
        }
    }
    if max_account > 0 {
        steps.push(Step::RaiseAccountSeq(max_account));
    }
    steps.extend(problems.into_iter().map(Step::Problem));
    steps
}

/// One bank's word on one of this bank's packages, checked: a kept package must be the one
/// the bank prepared (same id and digest), a decision this bank's signature over it.
fn seen_of(me: &str, my_key: Option<&PublicKey>, bank: &str, p: &Participated) -> Result<Seen, String> {
    let key = PackageKey::new(me, &p.id);
    let mut s = Seen { refused: p.refused, ..Default::default() };
    let mut verified = None;
    if let Some(k) = &p.kept {
        if k.package.id != p.id || p.digest.is_some_and(|d| d != k.package.digest(me)) {
            return Err(format!("{bank} kept a package under {key} that is not the one it prepared"));
        }
        if let Some(d) = &k.decision {
            if d.digest != k.package.digest(me) || !my_key.is_some_and(|mk| d.verify(mk, &key)) {
                return Err(format!("{bank} holds a decision of {key} that is not this bank's signature"));
            }
            verified = Some(d.outcome);
        }
        s.package = Some(k.package.clone());
    }
    match (verified, p.outcome) {
        (Some(o), Some(applied)) if o != applied => return Err(format!("{bank} applied {applied:?} to {key}, against the decision it kept ({o:?})")),
        (Some(o), _) => s.signed.push((o, bank.to_string())),
        (None, Some(o)) => s.unsigned.push((o, bank.to_string())),
        (None, None) if !p.refused && p.digest.is_some() => s.in_doubt.push(bank.to_string()),
        (None, None) => {}
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DecidedRecord, KeptPackage};
    use consortium_core::domain::Cents;
    use consortium_core::package::{AccountRef, OpKind, Operation};
    use consortium_core::trust::decision::Decision;
    use consortium_core::trust::keys::BankKey;

    fn keys() -> BTreeMap<String, BankKey> {
        [("a:1", 1u8), ("b:1", 2), ("c:1", 3)].into_iter().map(|(b, s)| (b.to_string(), BankKey::from_seed([s; 32]))).collect()
    }

    fn transfer(id: &str, from: (&str, &str), to: (&str, &str), amount: u64) -> Package {
        let r = |(b, a): (&str, &str)| AccountRef { bank: b.into(), account: a.into() };
        Package { id: id.into(), operations: vec![Operation { kind: OpKind::Transfer, from: Some(r(from)), to: Some(r(to)), amount: Cents(amount) }], ..Default::default() }
    }

    fn plan_with(answers: &BTreeMap<String, ReconcileAnswer>, local: &Local) -> Vec<Step> {
        let k = keys();
        plan("a:1", &|b: &str| k.get(b).map(|x| x.public()), answers, local)
    }

    /// b's word on a's package `p`: kept, with a's decision if `outcome`.
    fn kept_at_b(p: &Package, outcome: Option<Outcome>, signer: &BankKey) -> Participated {
        let decision = outcome.map(|o| Decision::sign(signer, &p.key("a:1"), p.digest("a:1"), o));
        Participated { id: p.id.clone(), digest: Some(p.digest("a:1")), outcome, refused: false, kept: Some(KeptPackage { package: p.clone(), decision }) }
    }

    fn answers(b: ReconcileAnswer) -> BTreeMap<String, ReconcileAnswer> {
        [("b:1".to_string(), b), ("c:1".to_string(), ReconcileAnswer::default())].into_iter().collect()
    }

    #[test]
    fn an_own_package_another_bank_holds_a_signed_commit_for_is_adopted_never_presumed_aborted() {
        let k = keys();
        let p = transfer("p1", ("a:1", "000007"), ("b:1", "000001"), 50);
        let a = answers(ReconcileAnswer { participated: vec![kept_at_b(&p, Some(Outcome::Commit), &k["a:1"])], records: vec![] });
        let steps = plan_with(&a, &Local::default());
        assert_eq!(
            steps,
            vec![
                Step::AdoptRecord { package: p.clone(), outcome: Outcome::Commit },
                Step::ApplyLegs { key: p.key("a:1"), package: p.clone(), outcome: Outcome::Commit },
                Step::RaiseAccountSeq(7),
            ]
        );
    }

    #[test]
    fn a_decision_not_signed_by_the_restored_bank_is_a_problem_not_a_step() {
        let k = keys();
        let p = transfer("p1", ("a:1", "000001"), ("b:1", "000001"), 50);
        // b forges a's commit with its own key.
        let a = answers(ReconcileAnswer { participated: vec![kept_at_b(&p, Some(Outcome::Commit), &k["b:1"])], records: vec![] });
        let steps = plan_with(&a, &Local::default());
        assert!(matches!(steps.as_slice(), [Step::Problem(m)] if m.contains("not this bank's signature")), "{steps:?}");
        // A kept package that is not the one prepared (other content under the digest b names).
        let mut other = kept_at_b(&p, None, &k["a:1"]);
        other.kept.as_mut().unwrap().package.operations[0].amount = Cents(51);
        let steps = plan_with(&answers(ReconcileAnswer { participated: vec![other], records: vec![] }), &Local::default());
        assert!(matches!(steps.as_slice(), [Step::Problem(m)] if m.contains("not the one it prepared")), "{steps:?}");
    }

    #[test]
    fn an_own_package_held_in_doubt_with_no_decision_anywhere_is_lost_unless_someone_refused_it() {
        let k = keys();
        let p = transfer("p2", ("a:1", "000001"), ("b:1", "000001"), 50);
        let a = answers(ReconcileAnswer { participated: vec![kept_at_b(&p, None, &k["a:1"])], records: vec![] });
        let steps = plan_with(&a, &Local::default());
        assert!(matches!(&steps[0], Step::Lost { id, why } if id == "p2" && why.contains("b:1 in doubt")), "{steps:?}");
        // The same, but c voted no: it cannot have committed; nothing to do.
        let mut a2 = a.clone();
        a2.get_mut("c:1").unwrap().participated.push(Participated { id: "p2".into(), digest: Some(p.digest("a:1")), outcome: None, refused: true, kept: None });
        let steps = plan_with(&a2, &Local::default());
        assert!(!steps.iter().any(|s| matches!(s, Step::Lost { .. } | Step::AdoptRecord { .. })), "{steps:?}");
        // An outcome claimed without the signature to show for it: lost too (a claim is no proof).
        let claimed = Participated { id: "p3".into(), digest: Some(consortium_core::package::PackageDigest([1; 32])), outcome: Some(Outcome::Commit), refused: false, kept: None };
        let steps = plan_with(&answers(ReconcileAnswer { participated: vec![claimed], records: vec![] }), &Local::default());
        assert!(matches!(&steps[0], Step::Lost { id, .. } if id == "p3"), "{steps:?}");
    }

    #[test]
    fn a_decided_record_here_is_kept_and_a_contradiction_is_reported() {
        let k = keys();
        let p = transfer("p4", ("a:1", "000001"), ("b:1", "000001"), 50);
        let mut r = Record::new(p.clone(), "a:1".into(), 1);
        r.decide(Outcome::Abort, vec![], "a:1").unwrap();
        let local = Local { records: [("p4".to_string(), r)].into_iter().collect(), ..Default::default() };
        let agree = answers(ReconcileAnswer { participated: vec![kept_at_b(&p, Some(Outcome::Abort), &k["a:1"])], records: vec![] });
        assert_eq!(plan_with(&agree, &local), vec![Step::RaiseAccountSeq(1)]);
        let disagree = answers(ReconcileAnswer { participated: vec![kept_at_b(&p, Some(Outcome::Commit), &k["a:1"])], records: vec![] });
        let steps = plan_with(&disagree, &local);
        assert!(steps.iter().any(|s| matches!(s, Step::Problem(m) if m.contains("record says Abort"))), "{steps:?}");
        assert!(!steps.iter().any(|s| matches!(s, Step::AdoptRecord { .. } | Step::ApplyLegs { .. })));
    }

    #[test]
    fn another_bank_s_signed_decision_with_legs_here_is_reapplied_once() {
        let k = keys();
        let p = transfer("q1", ("b:1", "000001"), ("a:1", "000012"), 30);
        let rec = DecidedRecord { decision: Decision::sign(&k["b:1"], &p.key("b:1"), p.digest("b:1"), Outcome::Commit), package: p.clone() };
        let a = answers(ReconcileAnswer { participated: vec![], records: vec![rec.clone()] });
        assert_eq!(
            plan_with(&a, &Local::default()),
            vec![Step::ApplyLegs { key: p.key("b:1"), package: p.clone(), outcome: Outcome::Commit }, Step::RaiseAccountSeq(12)]
        );
        // Already applied here: nothing but the account number.
        let done = Local { applied: [(p.key("b:1"), Outcome::Commit)].into_iter().collect(), ..Default::default() };
        assert_eq!(plan_with(&a, &done), vec![Step::RaiseAccountSeq(12)]);
        // Signed by another bank (c lying about b's package): refused.
        let forged = DecidedRecord { decision: Decision::sign(&k["c:1"], &p.key("b:1"), p.digest("b:1"), Outcome::Commit), package: p.clone() };
        let steps = plan_with(&answers(ReconcileAnswer { participated: vec![], records: vec![forged] }), &Local::default());
        assert!(matches!(steps.as_slice(), [Step::Problem(_)]), "{steps:?}");
        // A signed decision sent with other content than it signs: refused.
        let mut swapped = rec;
        swapped.package.operations[0].amount = Cents(3000);
        let steps = plan_with(&answers(ReconcileAnswer { participated: vec![], records: vec![swapped] }), &Local::default());
        assert!(matches!(steps.as_slice(), [Step::Problem(_)]), "{steps:?}");
    }
}
