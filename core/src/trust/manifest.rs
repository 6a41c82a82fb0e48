//! The consortium manifest: one file, the same at every bank, that says who the banks are
//! (address and public key) and the timings every bank must share. Banks compare its hash on
//! every call between them, so a bank with another manifest is refused rather than half-agreed
//! with.
//!
//! ```toml
//! [[bank]]
//! address = "127.0.0.1:7001"
//! public_key = "3b6a27bc…"   # 64 hex digits, from `node init`
//!
//! [timing]                   # optional; what the consortium shares
//! token_loss_ms = 1000
//! ```

use super::keys::PublicKey;
use super::put;
use crate::ring::order::ring_key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const MANIFEST_DOMAIN: &[u8] = b"bank-consortium/manifest/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankEntry {
    pub address: String,
    pub public_key: String,
}

/// Timings that must agree at every bank: they decide when a token is lost, how long a
/// recovery blocks, and when a participant may presume an abort. Unset ones are the node's
/// defaults (the same everywhere, since they are compiled in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedTiming {
    pub token_loss_ms: Option<u64>,
    pub block_ms: Option<u64>,
    pub resolve_after_ms: Option<u64>,
    pub presume_abort_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    bank: Vec<BankEntry>,
    #[serde(default)]
    timing: SharedTiming,
}

#[derive(Clone, Debug)]
pub struct Manifest {
    /// Address → public key, for every bank.
    keys: BTreeMap<String, PublicKey>,
    pub timing: SharedTiming,
    hash: [u8; 32],
}

impl Manifest {
    pub fn from_toml(text: &str) -> Result<Manifest, String> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Manifest::new(file.bank, file.timing)
    }

    pub fn new(banks: Vec<BankEntry>, timing: SharedTiming) -> Result<Manifest, String> {
        if banks.is_empty() {
            return Err("the manifest lists no bank".into());
        }
        let mut keys = BTreeMap::new();
        for b in &banks {
            let (host, port) = b.address.rsplit_once(':').ok_or_else(|| format!("bank address {:?} is not host:port", b.address))?;
            if host.is_empty() || port.parse::<u16>().is_err() || b.address.contains('/') || b.address.contains(char::is_whitespace) {
                return Err(format!("bank address {:?} is not host:port", b.address));
            }
            let key = PublicKey::from_hex(&b.public_key).ok_or_else(|| format!("bank {}: public_key is not an Ed25519 public key (64 hex digits)", b.address))?;
            if key.0.is_weak() {
                return Err(format!("bank {}: public_key is a weak (small-order) key", b.address));
            }
            if keys.values().any(|k| *k == key) {
                return Err(format!("bank {}: its public key is another bank's too", b.address));
            }
            if keys.insert(b.address.clone(), key).is_some() {
                return Err(format!("bank {} is listed twice", b.address));
            }
        }
        let t = &timing;
        if let (Some(r), Some(p)) = (t.resolve_after_ms, t.presume_abort_ms) {
            if p <= r {
                return Err("timing: presume_abort_ms must be larger than resolve_after_ms".into());
            }
        }
        if t.token_loss_ms == Some(0) {
            return Err("timing: token_loss_ms must be positive".into());
        }
        // The hash covers what the banks must agree on, in one canonical order, not the
        // file's bytes: comments and layout may differ.
        let mut bytes = Vec::new();
        put(&mut bytes, MANIFEST_DOMAIN);
        bytes.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        let mut ordered: Vec<(&String, &PublicKey)> = keys.iter().collect();
        ordered.sort_by_key(|(a, _)| ring_key(a));
        for (addr, key) in ordered {
            put(&mut bytes, addr.as_bytes());
            put(&mut bytes, key.0.as_bytes());
        }
        for v in [t.token_loss_ms, t.block_ms, t.resolve_after_ms, t.presume_abort_ms] {
            bytes.extend_from_slice(&v.map_or(u64::MAX, |v| v).to_be_bytes());
        }
        let hash = Sha256::digest(&bytes).into();
        Ok(Manifest { keys, timing, hash })
    }

    pub fn to_toml(&self) -> String {
        let file = ManifestFile {
            bank: self.keys.iter().map(|(a, k)| BankEntry { address: a.clone(), public_key: k.to_hex() }).collect(),
            timing: self.timing.clone(),
        };
        toml::to_string(&file).expect("a manifest serializes")
    }

    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub fn hash_hex(&self) -> String {
        super::hex(&self.hash)
    }

    pub fn key_of(&self, bank: &str) -> Option<&PublicKey> {
        self.keys.get(bank)
    }

    pub fn addresses(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::keys::BankKey;

    fn entry(addr: &str, seed: u8) -> BankEntry {
        BankEntry { address: addr.into(), public_key: BankKey::from_seed([seed; 32]).public().to_hex() }
    }

    #[test]
    fn the_hash_is_what_banks_agree_on_not_the_file_layout() {
        let m = Manifest::new(vec![entry("127.0.0.1:2", 2), entry("127.0.0.1:1", 1)], SharedTiming::default()).unwrap();
        let again = Manifest::from_toml(&format!("# a comment\n{}", m.to_toml())).unwrap();
        assert_eq!(m.hash(), again.hash());
        let other_key = Manifest::new(vec![entry("127.0.0.1:2", 3), entry("127.0.0.1:1", 1)], SharedTiming::default()).unwrap();
        assert_ne!(m.hash(), other_key.hash());
        let timing = SharedTiming { token_loss_ms: Some(5), ..Default::default() };
        let other_timing = Manifest::new(vec![entry("127.0.0.1:2", 2), entry("127.0.0.1:1", 1)], timing).unwrap();
        assert_ne!(m.hash(), other_timing.hash());
        assert_eq!(m.addresses(), vec!["127.0.0.1:1", "127.0.0.1:2"]);
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let e = |banks: Vec<BankEntry>| Manifest::new(banks, SharedTiming::default()).unwrap_err();
        assert!(e(vec![]).contains("no bank"));
        assert!(e(vec![entry("a:1", 1), entry("a:1", 2)]).contains("twice"));
        assert!(e(vec![entry("a:1", 1), entry("b:1", 1)]).contains("another bank's"));
        assert!(e(vec![entry("nohost", 1)]).contains("host:port"));
        assert!(e(vec![BankEntry { address: "a:1".into(), public_key: "00".into() }]).contains("public_key"));
        let t = SharedTiming { resolve_after_ms: Some(10), presume_abort_ms: Some(5), ..Default::default() };
        assert!(Manifest::new(vec![entry("a:1", 1)], t).unwrap_err().contains("presume_abort_ms"));
        assert!(Manifest::from_toml("[[bank]]\naddress = \"a:1\"\n").is_err(), "a bank needs its key");
    }
}
