//! A bank's identity: an Ed25519 key pair. The private key lives in the bank's data folder
//! (`bank.key`, 64 hex digits, readable by its owner only) and never leaves it: not in logs,
//! `/status`, the command line or the manifest, which carries only the public key.

use super::{hex, unhex};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::path::Path;

pub const KEY_FILE: &str = "bank.key";

#[derive(Clone)]
pub struct BankKey(SigningKey);

/// Never prints the private key.
impl std::fmt::Debug for BankKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BankKey(public {})", self.public().to_hex())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl BankKey {
    /// From 32 secret bytes (the simulator draws them from its seeded RNG).
    pub fn from_seed(seed: [u8; 32]) -> BankKey {
        BankKey(SigningKey::from_bytes(&seed))
    }

    /// A new key from the operating system's randomness.
    pub fn generate() -> BankKey {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        BankKey::from_seed(seed)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The X25519 scalar of this key (the clamped half of SHA-512 of the seed, as Ed25519
    /// uses it), for the pairwise keys between banks (`request::PairKeys`).
    pub(crate) fn scalar_bytes(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// Reads `dir/bank.key`, or creates it (readable by the owner only) if there is none.
    /// Returns the key and whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(BankKey, bool), String> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let seed = unhex::<32>(text.trim()).ok_or_else(|| format!("{}: not a bank key (64 hex digits)", path.display()))?;
                Ok((BankKey::from_seed(seed), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let key = BankKey::generate();
                write_private(&path, &format!("{}\n", hex(&key.0.to_bytes())))?;
                Ok((key, true))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Writes a secret file: created with mode 0600 (never readable by others, even briefly),
/// synced, under a temporary name renamed into place.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("creating");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
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
    fn a_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = BankKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = BankKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "no access for group or others: {mode:o}");
        }
        assert!(!format!("{k1:?}").contains(&hex(&k1.0.to_bytes())), "Debug never shows the private key");
        std::fs::write(dir.path().join(KEY_FILE), "nonsense").unwrap();
        assert!(BankKey::load_or_create(dir.path()).is_err());
    }

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
    }
}
