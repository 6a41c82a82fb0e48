//! Money is integer cents. Every sum is checked: an overflow is an error, never a wrap.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Cents(pub u64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    pub fn checked_sub(self, other: Cents) -> Option<Cents> {
        self.0.checked_sub(other.0).map(Cents)
    }

    /// Parses what a person types: `12`, `12.5`, `12.50`, `1234,56`. At most two decimals.
    pub fn parse_human(s: &str) -> Result<Cents, String> {
        let s = s.trim().replace(',', ".");
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w.to_string(), f.to_string()),
            None => (s.clone(), String::new()),
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(&whole) || (!frac.is_empty() && !digits(&frac)) || frac.len() > 2 {
            return Err(format!("{s:?} is not an amount (use e.g. 12.50)"));
        }
        let w: u64 = whole.parse().map_err(|_| format!("{s:?} is too large"))?;
        let f: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().unwrap() };
        w.checked_mul(100)
            .and_then(|c| c.checked_add(f))
            .map(Cents)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Cents(5).checked_add(Cents(7)), Some(Cents(12)));
        assert_eq!(Cents(u64::MAX).checked_add(Cents(1)), None);
        assert_eq!(Cents(5).checked_sub(Cents(6)), None);
    }

    #[test]
    fn human_amounts() {
        assert_eq!(Cents::parse_human("12"), Ok(Cents(1200)));
        assert_eq!(Cents::parse_human("12.5"), Ok(Cents(1250)));
        assert_eq!(Cents::parse_human("0,07"), Ok(Cents(7)));
        assert!(Cents::parse_human("1.234").is_err());
        assert!(Cents::parse_human("-3").is_err());
        assert!(Cents::parse_human("abc").is_err());
        assert!(Cents::parse_human("999999999999999999999").is_err());
        assert_eq!(Cents(123456).to_string(), "1234.56");
    }
}
