//! Trust as plain code over bytes and keys: a bank's Ed25519 key pair (`keys`), the
//! consortium manifest and its hash (`manifest`), the origin's signed decision of a package
//! (`decision`). What touches files or the network (the key file, request authentication) is
//! the node's.

pub mod decision;
pub mod keys;
pub mod manifest;
pub mod read;
pub mod user;

/// Length-prefixed field, the one encoding of every signed or hashed message here, so two
/// different messages never share bytes.
pub fn put(out: &mut Vec<u8>, field: &[u8]) {
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

/// A short, comparable name for a key or a manifest: the first 8 bytes of the SHA-256 of its
/// bytes, in hex. Operators compare them across banks (`node admin fingerprints`); two
/// different keys share one only by a 2^-64 accident.
pub fn fingerprint(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod fingerprint_tests {
    #[test]
    fn a_fingerprint_is_16_hex_digits_and_differs_with_the_bytes() {
        let a = super::fingerprint(b"key a");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, super::fingerprint(b"key a"));
        assert_ne!(a, super::fingerprint(b"key b"));
    }
}
