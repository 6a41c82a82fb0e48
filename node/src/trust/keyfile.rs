//! A bank's private key on disk: `bank.key` in its data folder, 64 hex digits, readable by
//! its owner only, made once (by `node init` or the first start) from the operating system's
//! randomness.

use super::keys::BankKey;
use super::unhex;
use std::path::Path;

pub const KEY_FILE: &str = "bank.key";

/// Reads `dir/bank.key`, or creates it (readable by the owner only) if there is none.
/// Returns the key and whether it was created.
pub fn load_or_create(dir: &Path) -> Result<(BankKey, bool), String> {
    load_or_create_at(&dir.join(KEY_FILE))
}

/// Reads the key file at `path`, or creates it (its folder too); the same format for a
/// bank's key and a teller's.
pub fn load_or_create_at(path: &Path) -> Result<(BankKey, bool), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed = unhex::<32>(text.trim()).ok_or_else(|| format!("{}: not a bank key (64 hex digits)", path.display()))?;
            Ok((BankKey::from_seed(seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let mut seed = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut seed);
            let key = BankKey::from_seed(seed);
            write_private(path, &format!("{}\n", key.seed_hex()))?;
            Ok((key, true))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a secret file: created with mode 0600 (never readable by others, even briefly),
/// synced, under a temporary name renamed into place.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.public(), k2.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "no access for group or others: {mode:o}");
        }
        std::fs::write(dir.path().join(KEY_FILE), "nonsense").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
