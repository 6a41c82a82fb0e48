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

/// Exactly `2 * N` hex digits (either case), nothing else. Not `u8::from_str_radix`, which
/// takes a sign too: `+f` would pass for a digit pair.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
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
mod tests {
    use super::*;

    #[test]
    fn unhex_takes_hex_digits_only() {
        assert_eq!(unhex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(unhex::<2>(&hex(&[0xde, 0xad])), Some([0xde, 0xad]));
        // A sign is no digit (from_str_radix would read "+a" as 10), nor is a space.
        for bad in ["+a0b", "0a+b", "-a0b", " a0b", "0a0g", "0a0", "0a0bc", "é0b"] {
            assert_eq!(unhex::<2>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_fingerprint_is_16_hex_digits_and_differs_with_the_bytes() {
        let a = fingerprint(b"key a");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, fingerprint(b"key a"));
        assert_ne!(a, fingerprint(b"key b"));
    }
}
