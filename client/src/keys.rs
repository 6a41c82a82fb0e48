//! The user's keys, on the user's machine: one Ed25519 key file per CPF in a key folder
//! (`--keys DIR`, else `BANK_KEYS`, else `$XDG_DATA_HOME/bank/keys`, else
//! `~/.local/share/bank/keys`), readable by the user only. A file holds the key's 32 secret
//! bytes in hex. `register` makes the key; every command that signs loads it.

use consortium_core::domain::Cpf;
use consortium_core::trust::keys::{KeyPair, UserKey};
use consortium_core::trust::unhex;
use std::path::{Path, PathBuf};

/// The folder of the user's keys.
#[derive(Clone, Debug)]
pub struct KeyStore {
    pub dir: PathBuf,
}

impl KeyStore {
    /// `given`, else `BANK_KEYS`, else the user's data folder.
    pub fn locate(given: Option<PathBuf>) -> KeyStore {
        let dir = given
            .or_else(|| std::env::var_os("BANK_KEYS").map(PathBuf::from))
            .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("bank/keys")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/bank/keys")))
            .unwrap_or_else(|| PathBuf::from(".bank-keys"));
        KeyStore { dir }
    }

    pub fn path(&self, cpf: &Cpf) -> PathBuf {
        self.dir.join(format!("{}.key", cpf.as_str()))
    }

    /// The key of `cpf`, made now if it has none. Returns it and whether it is new.
    pub fn load_or_create(&self, cpf: &Cpf) -> Result<(UserKey, bool), String> {
        let path = self.path(cpf);
        if path.exists() {
            return Ok((load(&path)?, false));
        }
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        let key = KeyPair::from_seed(seed);
        write_private(&path, &format!("{}\n", key.seed_hex()))?;
        Ok((key, true))
    }

    /// A fresh key for `cpf`'s next rotation (not yet the user's key).
    pub fn fresh() -> UserKey {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        KeyPair::from_seed(seed)
    }

    /// Keeps the key of `cpf`'s next rotation on disk (`CPF.key.next`) before it is
    /// announced: once a bank has its public key, losing the private one would lock the user
    /// out.
    pub fn stage(&self, cpf: &Cpf, key: &UserKey) -> Result<PathBuf, String> {
        let next = self.dir.join(format!("{}.key.next", cpf.as_str()));
        write_private(&next, &format!("{}\n", key.seed_hex()))?;
        Ok(next)
    }

    /// The key staged for `cpf`'s next rotation, if a rotation did not finish.
    pub fn staged(&self, cpf: &Cpf) -> Option<UserKey> {
        load(&self.dir.join(format!("{}.key.next", cpf.as_str()))).ok()
    }

    /// The staged key becomes `cpf`'s key after rotation `seq`; the previous file is kept
    /// beside it as `CPF.key.before-SEQ`. Returns the path of the previous key.
    pub fn commit(&self, cpf: &Cpf, seq: u64) -> Result<PathBuf, String> {
        let (path, next) = (self.path(cpf), self.dir.join(format!("{}.key.next", cpf.as_str())));
        let before = self.dir.join(format!("{}.key.before-{seq}", cpf.as_str()));
        std::fs::rename(&path, &before).map_err(|e| format!("cannot keep the previous key as {}: {e}", before.display()))?;
        std::fs::rename(&next, &path).map_err(|e| format!("the new key is in {} (cannot move it: {e})", next.display()))?;
        Ok(before)
    }

    /// The key of `cpf`; an error that says how to get one if there is none.
    pub fn load(&self, cpf: &Cpf) -> Result<UserKey, String> {
        let path = self.path(cpf);
        if !path.exists() {
            return Err(format!("no key for CPF {} in {} (register with `bank user register` first, or give --key-file FILE)", cpf.formatted(), self.dir.display()));
        }
        load(&path)
    }
}

/// A key file (a user's, or a teller's made by `node teller-key`).
pub fn load(path: &Path) -> Result<KeyPair, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the key {}: {e}", path.display()))?;
    let seed = unhex::<32>(text.trim()).ok_or_else(|| format!("{}: not a key file (64 hex digits)", path.display()))?;
    Ok(KeyPair::from_seed(seed))
}

/// Creates a secret file readable by its owner only (never readable by others, even
/// briefly), synced, under a temporary name renamed into place.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("creating");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_private_key_per_cpf() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore { dir: dir.path().join("keys") };
        let c = Cpf::from_base(123_456_789);
        assert!(ks.load(&c).unwrap_err().contains("register"));
        let (k1, new) = ks.load_or_create(&c).unwrap();
        assert!(new);
        let (k2, new) = ks.load_or_create(&c).unwrap();
        assert!(!new);
        assert_eq!(k1.public(), k2.public());
        assert_eq!(ks.load(&c).unwrap().public(), k1.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ks.path(&c)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by the user only: {mode:o}");
        }
    }
}
