//! The invariants, as plain functions over the banks' books (`Store::audit()`) read at one
//! simulated instant. Each message names the bank, the account and the package involved.

use crate::run::{fmt_time, EpochId};
use std::time::Duration;
use crate::workload::Acks;
use node::package::leg::{LegRecord, LegState};
use node::package::{OpKind, PackageKey, Record, Side, Status};
use node::store::Audit;
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
pub struct BankAudit<'a> {
    pub name: &'a str,
    pub addr: &'a str,
    pub audit: &'a Audit,
}

fn short(addr: &str) -> &str {
    addr.split(':').next().unwrap_or(addr)
}

fn leg_desc(l: &LegRecord) -> String {
    let side = if l.leg.side == Side::Debit { "debit" } else { "credit" };
    format!("{side} leg {} of package {} ({} cents)", l.leg.index, l.key(), l.leg.amount.0)
}

/// One bank's books agree with its own leg records: held and blocked money on each account
/// is exactly what its prepared legs say (`Audit::self_check`).
pub fn per_bank(b: &BankAudit) -> Vec<String> {
    b.audit.self_check().into_iter().map(|p| format!("books: {}: {}", b.name, p.replace(&format!("{}/", b.addr), ""))).collect()
}

/// Each account's statement (its journal) adds up to its money (`Audit::journal_check`).
pub fn journals(b: &BankAudit) -> Vec<String> {
    b.audit.journal_check().into_iter().map(|p| format!("statement: {}: {}", b.name, p.replace(&format!("{}/", b.addr), ""))).collect()
}

/// The outbox a bank keeps in memory (what its token visits queue) is exactly its pending
/// records: one missing would never be executed, one extra would run again.
pub fn outbox_mirror(b: &BankAudit, in_memory: &[u64]) -> Vec<String> {
    let on_disk: Vec<u64> = {
        let mut v: Vec<u64> = b.audit.records.iter().filter(|r| r.status == Status::Pending).map(|r| r.seq).collect();
        v.sort();
        v
    };
    if on_disk == in_memory {
        return vec![];
    }
    vec![format!("outbox: {}: pending records {on_disk:?} but the in-memory outbox holds {in_memory:?}", b.name)]
}

/// What the checks remember across audits when banks compact their history: every decided
/// record and every finished leg they saw. Compaction may drop them from the books, never
/// from the checks: money, atomicity and "decided once" are still checked against them.
#[derive(Default)]
pub struct History {
    records: BTreeMap<PackageKey, Record>,
    legs: Vec<BTreeMap<(PackageKey, u32, Side), LegRecord>>,
}

impl History {
    /// Checks bank `i`'s audit against what was seen before, then fills in what it compacted
    /// (so the other checks see the whole history): a decided record must never change or
    /// come back pending, and may vanish only under its origin's watermark.
    pub fn remember(&mut self, i: usize, name: &str, addr: &str, audit: &mut Audit) -> Vec<String> {
        let mut problems = Vec::new();
        if self.legs.len() <= i {
            self.legs.resize_with(i + 1, BTreeMap::new);
        }
        let mut present = std::collections::BTreeSet::new();
        for r in &audit.records {
            let key = r.key();
            present.insert(key.clone());
            if let Some(old) = self.records.get(&key) {
                if old.package.same_content(&r.package) && old.status != r.status {
                    problems.push(format!("exactly once: {name} decided package {key} {:?}, and later it stands {:?}", old.status, r.status));
                }
            }
            if r.status != Status::Pending {
                self.records.insert(key, r.clone());
            }
        }
        for (key, r) in self.records.iter().filter(|(k, _)| k.origin == addr && !present.contains(*k)) {
            if r.package.expires_ms > audit.compacted_expiry {
                problems.push(format!(
                    "compaction: {name} no longer has decided package {key} (expires {}) but its watermark is {}: a lookup would answer \"never recorded\"",
                    r.package.expires_ms, audit.compacted_expiry
                ));
            }
            audit.records.push(r.clone());
        }
        let seen = &mut self.legs[i];
        let mut here = std::collections::BTreeSet::new();
        for l in &audit.legs {
            let k = (l.key(), l.leg.index, l.leg.side);
            here.insert(k.clone());
            if l.state == LegState::Prepared {
                seen.remove(&k);
            } else {
                seen.insert(k, l.clone());
            }
        }
        for (k, l) in seen.iter() {
            if !here.contains(k) {
                audit.legs.push(l.clone());
            }
        }
        problems
    }
}

/// Every record of every bank, by package identity (origin, id).
fn records<'a>(banks: &[BankAudit<'a>]) -> BTreeMap<PackageKey, &'a Record> {
    let mut m = BTreeMap::new();
    for b in banks {
        for r in &b.audit.records {
            m.insert(r.key(), r);
        }
    }
    m
}

/// Money is conserved and packages are atomic, across the whole consortium at one instant.
///
/// Per account: balance + held − (prepared debits of committed packages) + (prepared credits
/// of committed packages) must equal what the committed packages move into it. Summed over
/// every account that is: Σ(balance + held) − Σ committed-but-unfinished debits + Σ
/// committed-but-unfinished credits == Σ committed deposits − Σ committed withdrawals.
pub fn global(banks: &[BankAudit]) -> Vec<String> {
    let mut problems = Vec::new();
    let recs = records(banks);
    let status = |l: &LegRecord| recs.get(&l.key()).map(|r| r.status);

    // What committed packages move into each (bank, account).
    let mut expected: BTreeMap<(String, String), i128> = BTreeMap::new();
    let (mut deposits, mut withdrawals) = (0i128, 0i128);
    for r in recs.values().filter(|r| r.status == Status::Committed) {
        for (bank, legs) in r.package.legs_by_bank() {
            for l in legs {
                let e = expected.entry((bank.clone(), l.account.clone())).or_default();
                match l.side {
                    Side::Debit => *e -= l.amount.0 as i128,
                    Side::Credit => *e += l.amount.0 as i128,
                }
            }
        }
        for op in &r.package.operations {
            match op.kind {
                OpKind::Deposit => deposits += op.amount.0 as i128,
                OpKind::Withdraw => withdrawals += op.amount.0 as i128,
                OpKind::Transfer => {}
            }
        }
    }

    let mut total = 0i128;
    for b in banks {
        let mut adjust: BTreeMap<&str, i128> = BTreeMap::new();
        for l in b.audit.legs.iter().filter(|l| l.state == LegState::Prepared) {
            if status(l) == Some(Status::Committed) {
                let a = adjust.entry(l.leg.account.as_str()).or_default();
                match l.leg.side {
                    Side::Debit => *a -= l.leg.amount.0 as i128,
                    Side::Credit => *a += l.leg.amount.0 as i128,
                }
            }
        }
        for a in &b.audit.accounts {
            let actual = a.balance.0 as i128 + a.held.0 as i128 + adjust.get(a.key.as_str()).copied().unwrap_or(0);
            total += actual;
            let want = expected.remove(&(b.addr.to_string(), a.key.clone())).unwrap_or(0);
            if actual != want {
                // Packages whose legs on this account move exactly the difference (all their
                // debits, all their credits, or the net) first: the likely culprits.
                let off = (actual - want).unsigned_abs();
                let legs: Vec<&LegRecord> = b.audit.legs.iter().filter(|l| l.leg.account == a.key).collect();
                let culprit = |key: &PackageKey| {
                    let mine = legs.iter().filter(|l| l.key() == *key);
                    let (mut debits, mut credits) = (0u128, 0u128);
                    for l in mine {
                        match l.leg.side {
                            Side::Debit => debits += l.leg.amount.0 as u128,
                            Side::Credit => credits += l.leg.amount.0 as u128,
                        }
                    }
                    off == debits || off == credits || off == debits.abs_diff(credits)
                };
                let mut shown: Vec<(bool, String)> = legs
                    .iter()
                    .map(|l| {
                        let c = culprit(&l.key());
                        let mark = if c { " (moves exactly the difference)" } else { "" };
                        let side = if l.leg.side == Side::Debit { "debit" } else { "credit" };
                        (c, format!("{} {:?}/{} {side}{mark}", l.key(), status(l).unwrap_or(Status::Pending), leg_state(&l.state)))
                    })
                    .collect();
                shown.sort_by_key(|x| !x.0);
                let mut touching: Vec<String> = shown.into_iter().map(|x| x.1).collect();
                let more = touching.len().saturating_sub(8);
                touching.truncate(8);
                problems.push(format!(
                    "money: {} account {}: balance {} + held {} (adjusted for committed, unfinished legs: {actual}) \
                     but committed packages move {want} cents into it (off by {}); packages on it (record/leg): {}{}",
                    b.name,
                    a.key,
                    a.balance.0,
                    a.held.0,
                    actual - want,
                    touching.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ));
            }
        }
    }
    for ((bank, account), want) in expected {
        if want != 0 {
            problems.push(format!("money: committed packages move {want} cents into {} account {account}, which does not exist", short(&bank)));
        }
    }
    if total != deposits - withdrawals {
        problems.push(format!(
            "money: the consortium holds {total} cents (balances + holds, adjusted) but committed deposits − withdrawals = {}",
            deposits - withdrawals
        ));
    }

    // Atomicity: a leg's final state follows its package's record.
    for b in banks {
        for l in &b.audit.legs {
            let st = status(l);
            let bad = match (&l.state, st) {
                (_, None) => Some("its origin has no record of it".to_string()),
                (LegState::Committed, Some(s)) if s != Status::Committed => Some(format!("it is committed but the record at its origin is {s:?}")),
                (LegState::Aborted, Some(s)) if s != Status::Aborted => Some(format!("it is aborted but the record at its origin is {s:?}")),
                (LegState::Refused(r), Some(Status::Committed)) => Some(format!("it was refused ({r}) yet the package committed")),
                _ => None,
            };
            if let Some(why) = bad {
                problems.push(format!(
                    "atomicity: {} account {}: {} (origin {}): {why}",
                    b.name,
                    l.leg.account,
                    leg_desc(l),
                    short(&l.origin)
                ));
            }
        }
    }
    problems
}

fn leg_state(s: &LegState) -> &'static str {
    match s {
        LegState::Prepared => "prepared",
        LegState::Refused(_) => "refused",
        LegState::Committed => "committed",
        LegState::Aborted => "aborted",
    }
}

/// What the workload was told still holds: acknowledged accounts exist, accepted packages
/// have a record at their origin, and a reported outcome is the recorded one.
pub fn acknowledged(banks: &[Option<BankAudit>], acks: &Acks, addrs: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, key) in &acks.accounts {
        if let Some(b) = &banks[*i] {
            if !b.audit.accounts.iter().any(|a| a.key == *key) {
                problems.push(format!("durability: {} lost acknowledged account {key}", b.name));
            }
        }
    }
    let mut by_bank: Vec<BTreeMap<&str, &Record>> = vec![BTreeMap::new(); banks.len()];
    for (i, b) in banks.iter().enumerate() {
        if let Some(b) = b {
            by_bank[i] = b.audit.records.iter().map(|r| (r.package.id.as_str(), r)).collect();
        }
    }
    for ((_, id), t) in &acks.packages {
        let Some(b) = &banks[t.origin] else { continue };
        if let (Some(why), Some(r)) = (&t.rejected, by_bank[t.origin].get(id.as_str())) {
            if r.status == Status::Committed {
                problems.push(format!("exactly once: package {id} was refused to its client ({why}) but {} committed it: a client told so would send it again", b.name));
            }
        }
        if !t.accepted {
            continue;
        }
        match by_bank[t.origin].get(id.as_str()) {
            None => problems.push(format!(
                "durability: package {id} was accepted by {} (client got a 2xx) but {} has no record of it",
                short(&addrs[t.origin]),
                b.name
            )),
            Some(r) => {
                if let Some(told) = t.decided {
                    if r.status != told {
                        problems.push(format!(
                            "exactly once: package {id} was reported {told:?} to its client but its record at {} says {:?}",
                            b.name, r.status
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Once faults stop and the run settled: nothing pending, nothing in doubt, no money held or
/// blocked, and every committed package has every leg committed.
/// `compacted(r)`: the legs of `r` may have been compacted by now (then a missing leg is
/// no evidence of anything).
pub fn settled(banks: &[BankAudit], compacted: impl Fn(&Record) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let recs = records(banks);
    for b in banks {
        for r in b.audit.records.iter().filter(|r| r.status == Status::Pending) {
            problems.push(format!("liveness: package {} is still pending at its origin {} after the settle period", r.key(), b.name));
        }
        for id in &b.audit.in_doubt {
            problems.push(format!("liveness: {} still has package {id} in doubt after the settle period", b.name));
        }
        for l in b.audit.legs.iter().filter(|l| l.state == LegState::Prepared) {
            problems.push(format!("liveness: {} account {}: {} is still prepared after the settle period", b.name, l.leg.account, leg_desc(l)));
        }
        for a in &b.audit.accounts {
            if a.held.0 != 0 || a.blocked.0 != 0 {
                problems.push(format!(
                    "liveness: {} account {} still has {} held and {} blocked after the settle period",
                    b.name, a.key, a.held.0, a.blocked.0
                ));
            }
        }
    }
    for r in recs.values().filter(|r| r.status == Status::Committed) {
        for (bank, legs) in r.package.legs_by_bank() {
            let Some(b) = banks.iter().find(|b| b.addr == bank) else { continue };
            for l in legs {
                let found = b.audit.legs.iter().find(|x| x.key() == r.key() && x.leg.index == l.index && x.leg.side == l.side);
                match found {
                    Some(x) if x.state == LegState::Committed => {}
                    Some(x) => problems.push(format!(
                        "atomicity: committed package {} has its leg {} at {} account {} in state {}",
                        r.key(),
                        l.index,
                        b.name,
                        l.account,
                        leg_state(&x.state)
                    )),
                    None if compacted(r) => {}
                    None => problems.push(format!(
                        "atomicity: committed package {} never prepared its leg {} at {} account {}",
                        r.key(), l.index, b.name, l.account
                    )),
                }
            }
        }
    }
    problems
}

/// One token after recovery settles: once the faults are over (and half the settle period
/// passed), the passes accepted in the newest epoch, in the order they happened, carry
/// ever-growing hops. Two tokens of one epoch interleave and a hop goes back. (A duplicate
/// that died before, e.g. with a crashed bank, is not a second token any more.)
pub fn one_token(accepts: &[(Duration, EpochId, u64, usize)], names: &[String]) -> Vec<String> {
    let Some(last) = accepts.iter().map(|a| &a.1).max() else { return Vec::new() };
    let mine: Vec<&(Duration, EpochId, u64, usize)> = accepts.iter().filter(|a| a.1 == *last).collect();
    let breaks: Vec<String> = mine
        .windows(2)
        .filter(|w| w[1].2 <= w[0].2)
        .map(|w| {
            format!(
                "{} accepted hop {} at {} after {} accepted hop {} at {}",
                names[w[1].3],
                w[1].2,
                fmt_time(w[1].0),
                names[w[0].3],
                w[0].2,
                fmt_time(w[0].0)
            )
        })
        .collect();
    match breaks.first() {
        None => Vec::new(),
        Some(first) => vec![format!(
            "one token: in the final epoch {}, after the faults stopped, the hops go back {} times: two tokens circulate ({first})",
            last.text,
            breaks.len()
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(gen: u64) -> EpochId {
        EpochId::parse(&format!("{gen}@bank1:7000")).unwrap()
    }

    #[test]
    fn one_token_sees_interleaved_hops_of_the_final_epoch() {
        let names: Vec<String> = (1..=3).map(|i| format!("bank{i}")).collect();
        let ms = Duration::from_millis;
        let one = vec![(ms(1), e(2), 7, 0), (ms(2), e(2), 8, 1), (ms(3), e(2), 9, 2), (ms(4), e(2), 11, 0)];
        assert!(one_token(&one, &names).is_empty(), "a skipped hop (an offline bank passed over) is fine");
        let two = vec![(ms(1), e(2), 40, 0), (ms(2), e(2), 7, 1), (ms(3), e(2), 41, 2), (ms(4), e(2), 8, 0)];
        let v = one_token(&two, &names);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("go back 2 times") && v[0].contains("bank2 accepted hop 7"), "{v:?}");
        let older_epoch_first = vec![(ms(1), e(1), 90, 0), (ms(2), e(2), 1, 1), (ms(3), e(2), 2, 2)];
        assert!(one_token(&older_epoch_first, &names).is_empty(), "only the final epoch counts");
    }
}
