//! Who may do what, and how a bank knows: every check here is plain code over bytes and keys.
//!
//! - `keys`: a bank's Ed25519 key pair (its private key in its data folder) and hex forms.
//! - `manifest`: the consortium manifest (every bank's address and public key, the timings
//!   that must agree) and its hash, which banks compare on every call.
//! - `request`: the signature every bank-to-bank request carries, its check (before the body
//!   is read), and the replay guard.
//! - `decision`: the origin's signed decision of a package, the only thing a participant
//!   applies as an outcome.

pub mod decision;
pub mod keys;
pub mod manifest;
pub mod request;

/// Length-prefixed field, the one encoding of every signed or hashed message here, so two
/// different messages never share bytes.
pub(crate) fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
