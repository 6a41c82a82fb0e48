//! The user's keys, on the user's machine: one Ed25519 key file per CPF in a key folder
//! (`--keys DIR`, else `BANK_KEYS`, else `$XDG_DATA_HOME/bank/keys`, else
//! `~/.local/share/bank/keys`), readable by the user only. `register` makes the key; every
//! command that signs loads it.
//!
//! A key file holds the key's 32 secret bytes, either in plain hex (64 digits, as `node
//! teller-key` writes a teller's) or sealed under a passphrase:
//!
//! ```text
//! bank-key v1 argon2id m=65536 t=3 p=1
//! salt 0f1e...   (16 bytes, hex)
//! nonce 9a8b...  (12 bytes, hex)
//! sealed 5c4d... (48 bytes, hex: the seed under ChaCha20-Poly1305, with its tag)
//! ```
//!
//! The key of the AEAD is Argon2id of the passphrase and the salt, with the parameters of the
//! first line (kept in the file, so a file opens whatever the build's defaults); the first
//! line is also the AEAD's associated data. A wrong passphrase and an altered file are one
//! and the same failure: the tag does not verify.
//!
//! The passphrase is the process's (a command line has one user at a keyboard): from
//! `--passphrase-file FILE`, else `BANK_PASSPHRASE`, else asked on the terminal without echo
//! if `use_passphrase` allowed it and standard input is a terminal. It is asked once and kept
//! (wiped on exit) for the other files of the same command.

use consortium_core::domain::Cpf;
use consortium_core::trust::keys::{KeyPair, UserKey};
use consortium_core::trust::unhex;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

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

    fn next_path(&self, cpf: &Cpf) -> PathBuf {
        self.dir.join(format!("{}.key.next", cpf.as_str()))
    }

    /// The key of `cpf`, made now (in plain hex) if it has none. Returns it and whether it is
    /// new.
    pub fn load_or_create(&self, cpf: &Cpf) -> Result<(UserKey, bool), String> {
        self.load_or_create_with(cpf, false)
    }

    /// The key of `cpf`, made now if it has none, sealed under the passphrase if `protect`
    /// (asked twice on a terminal). An existing file is used as it is.
    pub fn load_or_create_with(&self, cpf: &Cpf, protect: bool) -> Result<(UserKey, bool), String> {
        let path = self.path(cpf);
        if path.exists() {
            return Ok((load(&path)?, false));
        }
        let key = KeyStore::fresh();
        match protect {
            true => {
                let pass = passphrase(&path, true)?;
                write_private(&path, &seal(&key, pass.as_bytes(), Kdf::NEW))?;
            }
            false => write_private(&path, &Zeroizing::new(format!("{}\n", *Zeroizing::new(key.seed_hex()))))?,
        }
        Ok((key, true))
    }

    /// A fresh key for `cpf`'s next rotation (not yet the user's key).
    pub fn fresh() -> UserKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rng(), &mut seed[..]);
        KeyPair::from_seed(*seed)
    }

    /// Keeps the key of `cpf`'s next rotation on disk (`CPF.key.next`) before it is
    /// announced: once a bank has its public key, losing the private one would lock the user
    /// out. The new key is protected as the current one is: sealed under the same passphrase
    /// (and the same KDF costs) if the current file is sealed.
    pub fn stage(&self, cpf: &Cpf, key: &UserKey) -> Result<PathBuf, String> {
        let next = self.next_path(cpf);
        let current = self.path(cpf);
        match sealed_kdf(&current)? {
            Some(kdf) => {
                self.load(cpf)?; // the passphrase is the one of the current key (checked here)
                let pass = passphrase(&current, false)?;
                write_private(&next, &seal(key, pass.as_bytes(), kdf))?;
            }
            None => write_private(&next, &Zeroizing::new(format!("{}\n", *Zeroizing::new(key.seed_hex()))))?,
        }
        Ok(next)
    }

    /// The key staged for `cpf`'s next rotation, if a rotation did not finish.
    pub fn staged(&self, cpf: &Cpf) -> Option<UserKey> {
        load(&self.next_path(cpf)).ok()
    }

    /// The staged key becomes `cpf`'s key after rotation `seq`; the previous file is kept
    /// beside it as `CPF.key.before-SEQ`. Returns the path of the previous key.
    pub fn commit(&self, cpf: &Cpf, seq: u64) -> Result<PathBuf, String> {
        let (path, next) = (self.path(cpf), self.next_path(cpf));
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

/// A key file (a user's, plain or sealed; or a teller's made by `node teller-key`).
pub fn load(path: &Path) -> Result<KeyPair, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("cannot read the key {}: {e}", path.display()))?);
    if !text.starts_with(MAGIC) {
        let seed = Zeroizing::new(unhex::<32>(text.trim()).ok_or_else(|| format!("{}: not a key file (64 hex digits, or a sealed `{MAGIC}` file)", path.display()))?);
        return Ok(KeyPair::from_seed(*seed));
    }
    let file = Sealed::parse(&text).map_err(|e| format!("{}: not a key file ({e})", path.display()))?;
    let mut opened = opened().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, key)) = opened.iter().find(|(t, _)| *t == *text) {
        return Ok(key.clone());
    }
    // Asked again on a terminal after a typing mistake; refused at once otherwise.
    for attempt in 1.. {
        let pass = passphrase(path, false)?;
        match file.open(pass.as_bytes()) {
            Ok(key) => {
                opened.push((text.to_string(), key.clone()));
                return Ok(key);
            }
            Err(Open::Kdf(e)) => return Err(format!("{}: {e}", path.display())),
            Err(Open::Refused) => {
                forget_passphrase();
                if !prompting() || attempt >= 3 {
                    return Err(format!("{}: wrong passphrase, or the file was altered", path.display()));
                }
                eprintln!("wrong passphrase, try again");
            }
        }
    }
    unreachable!()
}

/// Whether the key file at `path` is sealed under a passphrase.
pub fn is_protected(path: &Path) -> Result<bool, String> {
    Ok(sealed_kdf(path)?.is_some())
}

/// Seals the plain key file at `path` under the passphrase (asked twice on a terminal), in
/// place: a new file readable by the user only, renamed over the old one.
pub fn protect(path: &Path) -> Result<(), String> {
    if is_protected(path)? {
        return Err(format!("{} is already protected by a passphrase", path.display()));
    }
    let key = load(path)?;
    let pass = passphrase(path, true)?;
    write_private(path, &seal(&key, pass.as_bytes(), Kdf::NEW))
}

/// Writes the sealed key file at `path` back in plain hex (after its passphrase), in place.
pub fn unprotect(path: &Path) -> Result<(), String> {
    if !is_protected(path)? {
        return Err(format!("{} is not protected by a passphrase", path.display()));
    }
    let key = load(path)?;
    write_private(path, &Zeroizing::new(format!("{}\n", *Zeroizing::new(key.seed_hex()))))
}

// ---- the passphrase ----

/// Where the passphrase of a sealed key file comes from, for this process.
#[derive(Clone, Debug, Default)]
pub struct PassphraseSource {
    /// `--passphrase-file`: the passphrase is the file's first line.
    pub file: Option<PathBuf>,
    /// Ask on the terminal (without echo) when there is no file and no `BANK_PASSPHRASE`,
    /// if standard input is a terminal.
    pub prompt: bool,
}

static SOURCE: OnceLock<PassphraseSource> = OnceLock::new();
static PASSPHRASE: Mutex<Option<Zeroizing<String>>> = Mutex::new(None);

/// Says where this process's passphrase comes from (once, at the start; the default is
/// `BANK_PASSPHRASE` only).
pub fn use_passphrase(source: PassphraseSource) {
    let _ = SOURCE.set(source);
}

/// Whether a passphrase was given without asking (`--passphrase-file` or `BANK_PASSPHRASE`).
pub fn passphrase_given() -> bool {
    source().file.is_some() || std::env::var_os("BANK_PASSPHRASE").is_some()
}

fn source() -> &'static PassphraseSource {
    SOURCE.get_or_init(PassphraseSource::default)
}

fn prompting() -> bool {
    use std::io::IsTerminal;
    let s = source();
    s.file.is_none() && std::env::var_os("BANK_PASSPHRASE").is_none() && s.prompt && std::io::stdin().is_terminal()
}

fn forget_passphrase() {
    *PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The passphrase for the key file `path`: the one already given, else from the source
/// (asked twice on a terminal if `new`, for a file about to be sealed).
fn passphrase(path: &Path, new: bool) -> Result<Zeroizing<String>, String> {
    let mut kept = PASSPHRASE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = kept.as_ref() {
        return Ok(p.clone());
    }
    let s = source();
    let pass = if let Some(f) = &s.file {
        let text = Zeroizing::new(std::fs::read_to_string(f).map_err(|e| format!("cannot read the passphrase file {}: {e}", f.display()))?);
        Zeroizing::new(text.lines().next().unwrap_or("").to_string())
    } else if let Some(p) = std::env::var_os("BANK_PASSPHRASE") {
        Zeroizing::new(p.into_string().map_err(|_| "BANK_PASSPHRASE is not valid UTF-8".to_string())?)
    } else if prompting() {
        let ask = |q: String| rpassword::prompt_password(q).map(Zeroizing::new).map_err(|e| format!("cannot read the passphrase: {e}"));
        let first = ask(format!("passphrase of {}: ", path.display()))?;
        if new && *ask("the same passphrase again: ".to_string())? != *first {
            return Err("the two passphrases differ: nothing was written".into());
        }
        first
    } else if new {
        return Err(format!("{}: a passphrase is needed to protect the key: give --passphrase-file FILE or BANK_PASSPHRASE, or run interactively", path.display()));
    } else {
        return Err(format!("{}: this key file is protected by a passphrase: give --passphrase-file FILE or BANK_PASSPHRASE, or run interactively", path.display()));
    };
    if pass.is_empty() {
        return Err("the passphrase is empty".into());
    }
    *kept = Some(pass.clone());
    Ok(pass)
}

/// The keys opened by this process, by file content: a command that loads a sealed key twice
/// (to sign a package, then to read its outcome) derives the AEAD key once.
fn opened() -> &'static Mutex<Vec<(String, KeyPair)>> {
    static OPENED: OnceLock<Mutex<Vec<(String, KeyPair)>>> = OnceLock::new();
    OPENED.get_or_init(|| Mutex::new(Vec::new()))
}

// ---- the sealed format ----

const MAGIC: &str = "bank-key ";

/// The costs of Argon2id, kept in each sealed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kdf {
    /// Memory, in KiB.
    pub m: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Kdf {
    /// For the files `bank` writes: 64 MiB and 3 passes (RFC 9106's second recommendation,
    /// with one lane), a few tenths of a second.
    pub const DEFAULT: Kdf = Kdf { m: 64 * 1024, t: 3, p: 1 };
    /// The least Argon2 accepts, for tests.
    pub const CHEAPEST: Kdf = Kdf { m: 8, t: 1, p: 1 };
    /// For the files this build seals (cheap in this crate's unit tests; the costs are in
    /// each file, so any build opens any file).
    pub const NEW: Kdf = if cfg!(test) { Kdf { m: 256, t: 1, p: 1 } } else { Kdf::DEFAULT };

    fn header(&self) -> String {
        format!("bank-key v1 argon2id m={} t={} p={}", self.m, self.t, self.p)
    }

    fn parse_header(line: &str) -> Result<Kdf, String> {
        let mut w = line.split(' ');
        if (w.next(), w.next(), w.next()) != (Some("bank-key"), Some("v1"), Some("argon2id")) {
            return Err(format!("unknown format {line:?}: made by a newer `bank`?"));
        }
        let mut num = |name: &str, max: u32| -> Result<u32, String> {
            w.next()
                .and_then(|x| x.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| (1..=max).contains(v))
                .ok_or_else(|| format!("bad Argon2 parameter {name} in {line:?}"))
        };
        // Bounds a file cannot exceed, so an altered one cannot ask for all the memory.
        let kdf = Kdf { m: num("m", 4 * 1024 * 1024)?, t: num("t", 64)?, p: num("p", 16)? };
        if w.next().is_some() {
            return Err(format!("unknown format {line:?}"));
        }
        Ok(kdf)
    }

    fn derive(&self, pass: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
        use argon2::{Algorithm, Argon2, Params, Version};
        let params = Params::new(self.m, self.t, self.p, Some(32)).map_err(|e| format!("bad Argon2 parameters: {e}"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(pass, salt, &mut key[..])
            .map_err(|e| format!("Argon2 failed: {e}"))?;
        Ok(key)
    }
}

/// A sealed key file, parsed.
struct Sealed {
    header: String,
    kdf: Kdf,
    salt: [u8; 16],
    nonce: [u8; 12],
    sealed: [u8; 48],
}

enum Open {
    Kdf(String),
    /// The tag does not verify: a wrong passphrase, or an altered file.
    Refused,
}

impl Sealed {
    fn parse(text: &str) -> Result<Sealed, String> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("").trim_end().to_string();
        let kdf = Kdf::parse_header(&header)?;
        let mut field = |name: &str| -> Result<&str, String> {
            lines.next().and_then(|l| l.trim_end().strip_prefix(name)?.strip_prefix(' ')).ok_or_else(|| format!("no `{name}` line"))
        };
        let bad = |name: &str| format!("bad `{name}` line");
        let salt = unhex::<16>(field("salt")?).ok_or_else(|| bad("salt"))?;
        let nonce = unhex::<12>(field("nonce")?).ok_or_else(|| bad("nonce"))?;
        let sealed = unhex::<48>(field("sealed")?).ok_or_else(|| bad("sealed"))?;
        Ok(Sealed { header, kdf, salt, nonce, sealed })
    }

    fn open(&self, pass: &[u8]) -> Result<KeyPair, Open> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let key = self.kdf.derive(pass, &self.salt).map_err(Open::Kdf)?;
        let aead = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
        let plain = Zeroizing::new(
            aead.decrypt((&self.nonce).into(), Payload { msg: &self.sealed, aad: self.header.as_bytes() }).map_err(|_| Open::Refused)?,
        );
        let seed = Zeroizing::new(<[u8; 32]>::try_from(&plain[..]).map_err(|_| Open::Refused)?);
        Ok(KeyPair::from_seed(*seed))
    }
}

/// `key`'s seed sealed under `pass`, as the text of a key file (a fresh salt and nonce).
pub fn seal(key: &KeyPair, pass: &[u8], kdf: Kdf) -> String {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    rand::Rng::fill(&mut rand::rng(), &mut salt[..]);
    rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
    let header = kdf.header();
    let aead_key = kdf.derive(pass, &salt).expect("the costs bank writes are valid");
    let seed = Zeroizing::new(unhex::<32>(&Zeroizing::new(key.seed_hex())).expect("a seed is 64 hex digits"));
    let aead = chacha20poly1305::ChaCha20Poly1305::new((&*aead_key).into());
    let sealed = aead.encrypt((&nonce).into(), Payload { msg: &seed[..], aad: header.as_bytes() }).expect("sealing 32 bytes");
    format!("{header}\nsalt {}\nnonce {}\nsealed {}\n", hex(&salt), hex(&nonce), hex(&sealed))
}

/// The KDF costs of the key file at `path` if it is sealed; `None` if plain or absent.
fn sealed_kdf(path: &Path) -> Result<Option<Kdf>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the key {}: {e}", path.display())),
    };
    if !text.starts_with(MAGIC) {
        return Ok(None);
    }
    Kdf::parse_header(text.lines().next().unwrap_or("").trim_end()).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a secret file readable by its owner only (never readable by others, even
/// briefly), synced, under a temporary name renamed into place.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("creating");
    // Made new, so it never keeps the mode of a file left there before.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
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

    /// The tests share the process's passphrase (one, never forgotten: the refusals are
    /// tested on `Sealed::open`, which does not touch it).
    const PASS: &str = "correct horse battery staple";
    fn given() {
        *PASSPHRASE.lock().unwrap() = Some(Zeroizing::new(PASS.to_string()));
    }

    #[test]
    fn a_sealed_file_opens_with_its_passphrase_only() {
        let key = KeyStore::fresh();
        let text = seal(&key, PASS.as_bytes(), Kdf::CHEAPEST);
        assert!(text.starts_with("bank-key v1 argon2id m=8 t=1 p=1\nsalt "), "{text}");
        assert!(!text.contains(&key.seed_hex()), "no seed in the clear: {text}");
        let file = Sealed::parse(&text).unwrap();
        assert_eq!(file.open(PASS.as_bytes()).ok().unwrap().public(), key.public());
        assert!(matches!(file.open(b"correct horse battery stapler"), Err(Open::Refused)));
        // Two seals of one key differ (fresh salt and nonce).
        assert_ne!(seal(&key, PASS.as_bytes(), Kdf::CHEAPEST), text);
    }

    #[test]
    fn an_altered_file_is_refused() {
        let key = KeyStore::fresh();
        let text = seal(&key, PASS.as_bytes(), Kdf::CHEAPEST);
        let lines: Vec<&str> = text.lines().collect();
        let flip = |line: &str| -> String {
            // Change the last hex digit of the line.
            let (head, last) = line.split_at(line.len() - 1);
            format!("{head}{}", if last == "0" { "1" } else { "0" })
        };
        for i in 1..4 {
            let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            l[i] = flip(&l[i]);
            let altered = l.join("\n");
            assert!(matches!(Sealed::parse(&altered).unwrap().open(PASS.as_bytes()), Err(Open::Refused)), "line {i} altered");
        }
        // Other costs in the header: another key, and the header is authenticated anyway.
        let altered = text.replacen("t=1", "t=2", 1);
        assert!(matches!(Sealed::parse(&altered).unwrap().open(PASS.as_bytes()), Err(Open::Refused)));
        // Costs no file may ask for, and unknown versions, are not key files.
        assert!(Sealed::parse(&text.replacen("m=8", "m=99999999", 1)).is_err());
        assert!(Sealed::parse(&text.replacen("v1", "v2", 1)).err().unwrap().contains("newer"));
        assert!(Sealed::parse(&text.replacen("sealed ", "sealed 00", 1)).is_err());
    }

    #[test]
    fn protect_and_unprotect_in_place() {
        given();
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore { dir: dir.path().join("keys") };
        let c = Cpf::from_base(223_456_789);
        let (key, _) = ks.load_or_create(&c).unwrap();
        let path = ks.path(&c);
        assert!(!is_protected(&path).unwrap());
        protect(&path).unwrap();
        assert!(is_protected(&path).unwrap());
        assert!(protect(&path).unwrap_err().contains("already protected"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("bank-key v1 argon2id") && !text.contains(&key.seed_hex()), "{text}");
        assert!(!ks.dir.join(format!("{}.creating", c.as_str())).exists(), "no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by the user only: {mode:o}");
        }
        assert_eq!(ks.load(&c).unwrap().public(), key.public());
        unprotect(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key.seed_hex());
        assert!(unprotect(&path).unwrap_err().contains("not protected"));
    }

    #[test]
    fn a_rotation_keeps_the_protection() {
        given();
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore { dir: dir.path().join("keys") };
        let (sealed, plain) = (Cpf::from_base(323_456_789), Cpf::from_base(423_456_789));
        let (_, new) = ks.load_or_create_with(&sealed, true).unwrap();
        assert!(new && is_protected(&ks.path(&sealed)).unwrap());
        ks.load_or_create(&plain).unwrap();
        for (c, protected) in [(&sealed, true), (&plain, false)] {
            let next = KeyStore::fresh();
            let staged = ks.stage(c, &next).unwrap();
            assert_eq!(is_protected(&staged).unwrap(), protected, "{}", staged.display());
            assert_eq!(ks.staged(c).unwrap().public(), next.public());
            ks.commit(c, 1).unwrap();
            assert_eq!(ks.load(c).unwrap().public(), next.public());
            assert_eq!(is_protected(&ks.path(c)).unwrap(), protected);
        }
    }

    #[test]
    fn plain_and_teller_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyStore::fresh();
        // `node teller-key` writes the hex without a newline; `bank` with one.
        for (name, text) in [("teller.key", key.seed_hex()), ("user.key", format!("{}\n", key.seed_hex()))] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            assert_eq!(load(&path).unwrap().public(), key.public());
            assert!(!is_protected(&path).unwrap());
        }
        let junk = dir.path().join("junk.key");
        std::fs::write(&junk, "hello").unwrap();
        assert!(load(&junk).unwrap_err().contains("not a key file"));
    }

    #[test]
    fn the_default_costs_are_valid() {
        assert!(argon2::Params::new(Kdf::DEFAULT.m, Kdf::DEFAULT.t, Kdf::DEFAULT.p, Some(32)).is_ok());
        assert_eq!(Kdf::parse_header(&Kdf::DEFAULT.header()).unwrap(), Kdf::DEFAULT);
    }
}
