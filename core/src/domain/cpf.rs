//! CPF: the Brazilian taxpayer number that identifies a person at a bank.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A CPF with valid check digits, stored as its 11 bare digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "52998224725")]
pub struct Cpf(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpfError {
    Length(usize),
    Character(char),
    AllSameDigit,
    CheckDigits,
}

impl fmt::Display for CpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpfError::Length(n) => write!(f, "a CPF has 11 digits, got {n}"),
            CpfError::Character(c) => write!(f, "unexpected character {c:?} in CPF"),
            CpfError::AllSameDigit => write!(f, "a CPF cannot repeat one digit 11 times"),
            CpfError::CheckDigits => write!(f, "CPF check digits do not match"),
        }
    }
}

impl Cpf {
    /// Accepts `12345678909` or `123.456.789-09`. Dots and the dash are only allowed where the
    /// formatted form puts them, so typos like `1234.5678909` are refused rather than guessed.
    pub fn parse(input: &str) -> Result<Cpf, CpfError> {
        let s = input.trim();
        let bare: String = if s.len() == 14 {
            let b = s.as_bytes();
            if b[3] != b'.' || b[7] != b'.' || b[11] != b'-' {
                return Err(first_bad_char(s).map_or(CpfError::Length(s.len()), CpfError::Character));
            }
            [&s[0..3], &s[4..7], &s[8..11], &s[12..14]].concat()
        } else {
            s.to_string()
        };
        if let Some(c) = first_bad_char(&bare) {
            return Err(CpfError::Character(c));
        }
        if bare.len() != 11 {
            return Err(CpfError::Length(bare.len()));
        }
        let d: Vec<u32> = bare.bytes().map(|b| (b - b'0') as u32).collect();
        if d.iter().all(|&x| x == d[0]) {
            return Err(CpfError::AllSameDigit);
        }
        if check_digit(&d[..9]) != d[9] || check_digit(&d[..10]) != d[10] {
            return Err(CpfError::CheckDigits);
        }
        Ok(Cpf(bare))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds a valid CPF from any 9-digit base (used by tests, the simulator and benchmarks).
    pub fn from_base(base: u32) -> Cpf {
        let mut d: Vec<u32> = format!("{:09}", base % 1_000_000_000).bytes().map(|b| (b - b'0') as u32).collect();
        if d.iter().all(|&x| x == d[0]) {
            d[8] = (d[8] + 1) % 10;
        }
        let d9 = check_digit(&d);
        d.push(d9);
        let d10 = check_digit(&d);
        d.push(d10);
        Cpf(d.iter().map(|x| char::from(b'0' + *x as u8)).collect())
    }

    pub fn formatted(&self) -> String {
        let s = &self.0;
        format!("{}.{}.{}-{}", &s[0..3], &s[3..6], &s[6..9], &s[9..11])
    }
}

fn first_bad_char(s: &str) -> Option<char> {
    s.chars().find(|c| !c.is_ascii_digit() && *c != '.' && *c != '-').or_else(|| {
        // Punctuation outside the formatted positions is also a bad character.
        s.chars().find(|c| !c.is_ascii_digit())
    })
}

/// Modulo-11 check digit over `digits` with weights counting down to 2.
fn check_digit(digits: &[u32]) -> u32 {
    let n = digits.len() as u32 + 1;
    let sum: u32 = digits.iter().enumerate().map(|(i, &x)| x * (n - i as u32)).sum();
    let r = (sum * 10) % 11;
    if r == 10 { 0 } else { r }
}

impl TryFrom<String> for Cpf {
    type Error = CpfError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Cpf::parse(&s)
    }
}

impl From<Cpf> for String {
    fn from(c: Cpf) -> String {
        c.0
    }
}

impl fmt::Display for Cpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bare_and_formatted() {
        assert_eq!(Cpf::parse("52998224725").unwrap().as_str(), "52998224725");
        assert_eq!(Cpf::parse("529.982.247-25").unwrap().as_str(), "52998224725");
        assert_eq!(Cpf::parse(" 529.982.247-25 ").unwrap().formatted(), "529.982.247-25");
    }

    #[test]
    fn refuses_bad_check_digits_and_shapes() {
        assert_eq!(Cpf::parse("52998224724"), Err(CpfError::CheckDigits));
        assert_eq!(Cpf::parse("52998224715"), Err(CpfError::CheckDigits));
        assert_eq!(Cpf::parse("11111111111"), Err(CpfError::AllSameDigit));
        assert_eq!(Cpf::parse("5299822472"), Err(CpfError::Length(10)));
        assert_eq!(Cpf::parse(""), Err(CpfError::Length(0)));
        assert_eq!(Cpf::parse("5299822472a"), Err(CpfError::Character('a')));
        assert!(Cpf::parse("5299.82247-25").is_err());
        assert!(Cpf::parse("529-982-247.25").is_err());
    }

    #[test]
    fn from_base_always_valid() {
        for base in [0, 1, 111_111_111, 123_456_789, 999_999_999, 42] {
            let c = Cpf::from_base(base);
            assert_eq!(Cpf::parse(c.as_str()).as_ref(), Ok(&c), "base {base}");
        }
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Cpf>("\"52998224725\"").is_ok());
        assert!(serde_json::from_str::<Cpf>("\"52998224724\"").is_err());
    }
}
