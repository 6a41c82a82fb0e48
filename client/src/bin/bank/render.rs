//! What people read: tables, outcomes, status.

use bank_client::describe_op;
use consortium_core::domain::{Cents, Cpf};
use consortium_core::package::{Package, Status};
use consortium_core::wire::{AccountView, ConsortiumAccounts, PackageView, StatusView, UserView};


/// Aligns columns; `right[i]` right-aligns column i (amounts).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let n = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            let last = i + 1 == n;
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                if !last {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

pub(crate) fn holders(v: &AccountView) -> String {
    v.holders.iter().map(Cpf::formatted).collect::<Vec<_>>().join(", ")
}

pub(crate) fn account_row(v: &AccountView) -> Vec<String> {
    vec![
        format!("{}/{}", v.bank, v.key),
        v.kind.to_string(),
        holders(v),
        Cents(v.balance).to_string(),
        Cents(v.blocked).to_string(),
        Cents(v.held).to_string(),
    ]
}

pub(crate) const ACCOUNT_HEADERS: [&str; 6] = ["ACCOUNT", "KIND", "HOLDERS", "BALANCE", "BLOCKED", "HELD"];
pub(crate) const ACCOUNT_RIGHT: [bool; 6] = [false, false, false, true, true, true];

pub(crate) fn render_accounts(accounts: &[AccountView]) -> String {
    let rows: Vec<Vec<String>> = accounts.iter().map(account_row).collect();
    table(&ACCOUNT_HEADERS, &rows, &ACCOUNT_RIGHT)
}

pub(crate) fn render_account(v: &AccountView) -> String {
    let rows: [[String; 2]; 6] = [
        ["account".into(), format!("{}/{}", v.bank, v.key)],
        ["kind".into(), v.kind.to_string()],
        ["holders".into(), holders(v)],
        ["balance".into(), Cents(v.balance).to_string()],
        ["blocked".into(), format!("{} (arriving, not yet committed)", Cents(v.blocked))],
        ["held".into(), format!("{} (leaving, not yet committed)", Cents(v.held))],
    ];
    rows.iter().map(|r| format!("{:<8} {}", r[0], r[1])).collect::<Vec<_>>().join("\n")
}

pub(crate) fn render_statement(s: &consortium_core::domain::journal::Statement) -> String {
    if s.entries.is_empty() {
        return format!("account {}: no entries here", s.account);
    }
    let mut out = vec![format!("{:>5}  {:<24} {:>14}  {:>14}  package", "#", "applied (UTC)", "amount", "total after")];
    for e in &s.entries {
        let sign = if e.side == consortium_core::package::Side::Credit { "+" } else { "-" };
        let when = time_of(e.time_ms);
        out.push(format!("{:>5}  {:<24} {:>14}  {:>14}  {}@{} op {}", e.n, when, format!("{sign}{}", e.amount), e.total_after.to_string(), e.package, e.origin, e.index));
    }
    if let Some(n) = s.next {
        out.push(format!("more: --from {n}"));
    }
    out.join("\n")
}

/// Unix milliseconds as a UTC date and time.
fn time_of(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

pub(crate) fn render_user(u: &UserView, bank: &str) -> String {
    format!("cpf   {}\nname  {}\nbank  {bank}", u.cpf.formatted(), u.name)
}

pub(crate) fn render_consortium(c: &ConsortiumAccounts, cpf: &Cpf) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut total: u128 = 0;
    let mut count = 0;
    for b in &c.banks {
        if !b.reachable {
            let why = b.error.as_deref().unwrap_or("no answer");
            notes.push(format!("UNREACHABLE  {}: {why}; its accounts are not listed", b.bank));
            continue;
        }
        if let Some(e) = &b.error {
            notes.push(format!("ERROR        {}: {e}; its accounts are not listed", b.bank));
        }
        for a in &b.accounts {
            total += a.balance as u128;
            count += 1;
            rows.push(account_row(a));
        }
    }
    let mut out = if rows.is_empty() {
        format!("CPF {} has no account at the banks that answered", cpf.formatted())
    } else {
        let total = u64::try_from(total).map(|t| Cents(t).to_string()).unwrap_or_else(|_| "(too large)".into());
        let reached = c.banks.iter().filter(|b| b.reachable && b.error.is_none()).count();
        format!(
            "{}\n{count} account(s) at {reached} of {} bank(s), total balance {total}",
            table(&ACCOUNT_HEADERS, &rows, &ACCOUNT_RIGHT),
            c.banks.len()
        )
    };
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
    }
    out
}

pub(crate) fn render_package(v: &PackageView, package: Option<&Package>) -> String {
    let head = match v.status {
        Status::Committed => format!("package {}: committed", v.id),
        Status::Aborted => format!("package {}: aborted, nothing was moved", v.id),
        Status::Pending => format!("package {}: pending (waiting for the token)", v.id),
    };
    let mut rows = Vec::new();
    if v.results.is_empty() {
        for (i, op) in package.map(|p| p.operations.as_slice()).unwrap_or(&[]).iter().enumerate() {
            rows.push(vec![i.to_string(), "-".into(), describe_op(op)]);
        }
    }
    for r in &v.results {
        let op = package.and_then(|p| p.operations.get(r.index as usize)).map(describe_op);
        let what = match (op, &r.reason) {
            (Some(op), Some(why)) => format!("{op}: {why}"),
            (Some(op), None) => op,
            (None, Some(why)) => why.clone(),
            (None, None) => String::new(),
        };
        rows.push(vec![r.index.to_string(), if r.ok { "ok".into() } else { "failed".into() }, what]);
    }
    if rows.is_empty() {
        return head;
    }
    let body = table(&["OP", "RESULT", "OPERATION"], &rows, &[true, false, false]);
    format!("{head}\n{}", indent(&body))
}

pub(crate) fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

pub(crate) fn render_status(s: &StatusView) -> String {
    let token = match &s.token.epoch {
        None => "no token seen yet".to_string(),
        Some(e) => format!("{}; epoch {e}, hop {}", if s.token.held { "held here" } else { "elsewhere" }, s.token.hop),
    };
    let online = s.peers.iter().filter(|p| p.online).count();
    let mut out = vec![
        format!("bank      {}", s.bank),
        format!("token     {token}"),
        format!("queued    {} package(s) accepted here, not yet decided", s.queued),
        format!("in doubt  {} prepared leg(s) waiting for an outcome", s.in_doubt),
        format!("peers     {online} of {} online", s.peers.len()),
    ];
    let rows: Vec<Vec<String>> =
        s.peers.iter().map(|p| vec![p.bank.clone(), if p.online { "online".into() } else { "OFFLINE".into() }]).collect();
    if !rows.is_empty() {
        out.push(indent(&table(&["BANK", "STATE"], &rows, &[false, false])));
    }
    let k = &s.counters;
    let counters = [
        ("submitted", k.submitted),
        ("committed", k.committed),
        ("aborted", k.aborted),
        ("executed", k.executed),
        ("tokens created", k.tokens_created),
        ("stale tokens dropped", k.stale_dropped),
        ("duplicate tokens dropped", k.duplicates_dropped),
        ("faults", k.faults),
        ("presumed aborts", k.presumed_aborts),
    ];
    out.push("counters".into());
    let mut rows: Vec<Vec<String>> = counters.iter().map(|(n, v)| vec![n.to_string(), v.to_string()]).collect();
    rows.extend(k.refused.iter().map(|(why, n)| vec![format!("refused: {why}"), n.to_string()]));
    out.push(indent(&table(&["EVENT", "COUNT"], &rows, &[false, true])));
    out.join("\n")
}
