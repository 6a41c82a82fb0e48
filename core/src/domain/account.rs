//! Users and accounts, and the rules for opening an account.

use super::{Cents, Cpf};
use crate::error::Error;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub cpf: Cpf,
    pub name: String,
    /// The user's public key (hex) as this bank registered it: what its checks use.
    #[serde(default)]
    pub key: Option<String>,
    /// How many times the key was rotated (a rotation names the next number).
    #[serde(default)]
    pub key_seq: u64,
    /// The rotations this bank applied, the last `MAX_ROTATIONS_KEPT`: passed on to a bank
    /// that missed some, which checks each against the key before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<KeyRotation>,
}

/// A user replaces their key: signed by the current key (`trust::user::rotate_message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub public_key: String,
    pub seq: u64,
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub sig: String,
}

/// How many of a user's rotations a bank keeps to pass on: a bank further behind than this
/// cannot catch up by itself (its operator resets the key).
pub const MAX_ROTATIONS_KEPT: usize = 16;

pub const MAX_NAME_CHARS: usize = 200;

impl User {
    pub fn new(cpf: Cpf, name: &str) -> Result<User, Error> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::bad_request("empty_name", "the name must not be empty"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Error::bad_request("name_too_long", format!("the name has more than {MAX_NAME_CHARS} characters")));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::bad_request("bad_name", "the name must not contain control characters"));
        }
        Ok(User { cpf, name: name.to_string(), key: None, key_seq: 0, rotations: Vec::new() })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Exactly one holder; at most one per user per bank.
    Personal,
    /// Two or more natural persons.
    Joint,
    /// One or more holders.
    Business,
}

impl std::str::FromStr for AccountKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "personal" => Ok(AccountKind::Personal),
            "joint" => Ok(AccountKind::Joint),
            "business" => Ok(AccountKind::Business),
            other => Err(format!("unknown account kind {other:?} (personal, joint or business)")),
        }
    }
}

impl std::fmt::Display for AccountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccountKind::Personal => "personal",
            AccountKind::Joint => "joint",
            AccountKind::Business => "business",
        })
    }
}

/// An account as stored and as shown to clients. `balance` is what can be spent; `blocked`
/// holds credits of packages not yet committed; `held` holds debits prepared, not yet committed
/// (already taken out of `balance`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub bank: String,
    pub key: String,
    pub kind: AccountKind,
    pub holders: Vec<Cpf>,
    pub balance: Cents,
    pub blocked: Cents,
    #[serde(default)]
    pub held: Cents,
}

pub const MAX_HOLDERS: usize = 16;

/// Checks the holder rules of a new account. `registered` tells whether a CPF is a user of this
/// bank; `has_personal` whether it already holds a personal account here.
pub fn check_new_account(
    kind: AccountKind,
    holders: &[Cpf],
    registered: impl Fn(&Cpf) -> bool,
    has_personal: impl Fn(&Cpf) -> bool,
) -> Result<(), Error> {
    if holders.is_empty() {
        return Err(Error::rule("no_holders", "an account needs at least one holder"));
    }
    if holders.len() > MAX_HOLDERS {
        return Err(Error::rule("too_many_holders", format!("an account has at most {MAX_HOLDERS} holders")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in holders {
        if !seen.insert(h) {
            return Err(Error::rule("duplicate_holder", format!("CPF {h} is listed twice")));
        }
    }
    match kind {
        AccountKind::Personal if holders.len() != 1 => {
            return Err(Error::rule("personal_one_holder", "a personal account has exactly one holder"))
        }
        AccountKind::Joint if holders.len() < 2 => {
            return Err(Error::rule("joint_two_holders", "a joint account has two or more holders"))
        }
        _ => {}
    }
    for h in holders {
        if !registered(h) {
            return Err(Error::not_found("user_not_found", format!("CPF {h} is not a user of this bank")));
        }
    }
    if kind == AccountKind::Personal && has_personal(&holders[0]) {
        return Err(Error::conflict(
            "personal_exists",
            format!("CPF {} already has a personal account at this bank", holders[0]),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u32) -> Cpf {
        Cpf::from_base(n)
    }

    #[test]
    fn user_name_rules() {
        assert!(User::new(c(1), "Ana").is_ok());
        assert_eq!(User::new(c(1), "  Ana ").unwrap().name, "Ana");
        assert_eq!(User::new(c(1), "   ").unwrap_err().code, "empty_name");
        assert!(User::new(c(1), &"x".repeat(201)).is_err());
        assert!(User::new(c(1), "a\u{0}b").is_err());
    }

    #[test]
    fn holder_rules() {
        let yes = |_: &Cpf| true;
        let no = |_: &Cpf| false;
        assert!(check_new_account(AccountKind::Personal, &[c(1)], yes, no).is_ok());
        assert_eq!(check_new_account(AccountKind::Personal, &[c(1), c(2)], yes, no).unwrap_err().code, "personal_one_holder");
        assert_eq!(check_new_account(AccountKind::Personal, &[c(1)], yes, yes).unwrap_err().code, "personal_exists");
        assert_eq!(check_new_account(AccountKind::Joint, &[c(1)], yes, no).unwrap_err().code, "joint_two_holders");
        assert!(check_new_account(AccountKind::Joint, &[c(1), c(2)], yes, yes).is_ok());
        assert!(check_new_account(AccountKind::Business, &[c(1)], yes, yes).is_ok());
        assert_eq!(check_new_account(AccountKind::Business, &[], yes, no).unwrap_err().code, "no_holders");
        assert_eq!(check_new_account(AccountKind::Joint, &[c(1), c(1)], yes, no).unwrap_err().code, "duplicate_holder");
        assert_eq!(check_new_account(AccountKind::Business, &[c(1)], no, no).unwrap_err().code, "user_not_found");
    }

    #[test]
    fn kind_parses() {
        assert_eq!("Joint".parse::<AccountKind>(), Ok(AccountKind::Joint));
        assert!("savings".parse::<AccountKind>().is_err());
    }
}
