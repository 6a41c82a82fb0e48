//! Ed25519 key pairs: a bank's identity, a user's authority over their accounts, a teller's
//! over cash deposits. A bank's The private key lives in the bank's data folder
//! (the node's `trust::keyfile`) and never leaves it: not in logs, `/status`, the command line
//! or the manifest, which carries only the public key.

use super::{hex, unhex};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

#[derive(Clone)]
pub struct KeyPair(SigningKey);

/// A bank's key pair (its identity in the manifest).
pub type BankKey = KeyPair;

/// A user's key pair, made and kept by the client on the user's machine.
pub type UserKey = KeyPair;

/// Never prints the private key.
impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair(public {})", self.public().to_hex())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl KeyPair {
    /// From 32 secret bytes (the simulator draws them from its seeded RNG).
    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair(SigningKey::from_bytes(&seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The X25519 scalar of this key (the clamped half of SHA-512 of the seed, as Ed25519
    /// uses it), for the pairwise keys between banks (`request::PairKeys`).
    pub fn scalar_bytes(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The secret seed, for the key file (`node::trust::keyfile`) only.
    pub fn seed_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }
}

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    pub fn from_hex(s: &str) -> Option<PublicKey> {
        VerifyingKey::from_bytes(&unhex::<32>(s)?).ok().map(PublicKey)
    }

    /// Strict verification: rejects the malleable and small-order forms.
    pub fn verify(&self, message: &[u8], sig: &[u8; 64]) -> bool {
        self.0.verify_strict(message, &Signature::from_bytes(sig)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let a = BankKey::from_seed([1; 32]);
        let b = BankKey::from_seed([2; 32]);
        let sig = a.sign(b"hello");
        assert!(a.public().verify(b"hello", &sig));
        assert!(!a.public().verify(b"hellO", &sig));
        assert!(!b.public().verify(b"hello", &sig));
        assert_eq!(PublicKey::from_hex(&a.public().to_hex()), Some(a.public()));
        assert_eq!(PublicKey::from_hex("zz"), None);
        assert!(!format!("{a:?}").contains(&a.seed_hex()), "Debug never shows the private key");
    }
}
