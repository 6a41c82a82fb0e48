//! Node configuration: command line and TOML file share the same keys.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Protocol timing. Defaults suit a LAN; the simulator and tests shrink or stretch them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// Timeout of every call to another bank.
    pub peer_timeout_ms: u64,
    /// How long `POST /packages` waits for the outcome before answering 202 pending.
    pub package_wait_ms: u64,
    /// How long a bank with nothing to do keeps the token before passing it; doubled at each
    /// idle visit in a row up to `idle_hold_max_ms`, so an idle ring costs almost nothing
    /// and a busy one passes at once.
    pub idle_hold_ms: u64,
    pub idle_hold_max_ms: u64,
    /// Per bank: a bank that has not seen the token for this times the number of banks
    /// suspects it is lost.
    pub token_loss_ms: u64,
    /// When a bank first checks whether a token circulates after starting.
    pub startup_check_ms: u64,
    /// The blocked state of a recovery, in which tokens are discarded.
    pub block_ms: u64,
    /// A prepared leg older than this makes its bank ask the origin for the outcome.
    pub resolve_after_ms: u64,
    /// A leg still pending at the origin after this is aborted (presumed abort).
    pub presume_abort_ms: u64,
    /// Longest pause between pings of an offline bank.
    pub ping_backoff_max_ms: u64,
    /// The shortest wait for a token pass's answer. The wait follows the measured round trips
    /// (`consortium_core::rtt`) up to `peer_timeout_ms`; this floor keeps a slow disk or a busy machine
    /// from looking like a dead bank. Local to this bank, not a shared timing.
    pub pass_floor_ms: u64,
    /// The shortest time without the token before this bank suspects its loss (and asks the
    /// others). The suspicion follows the measured rotation times (`consortium_core::rtt`) up to
    /// `token_loss_ms` per bank. Local to this bank, not a shared timing.
    pub loss_floor_ms: u64,
    /// The shortest wait for a prepare's, decide's or finish's answer. Like a pass's, the wait
    /// follows the measured round trips of that kind of call to that bank (group commit
    /// included) up to `peer_timeout_ms`. Local to this bank, not a shared timing.
    pub call_floor_ms: u64,
    /// The largest clock skew allowed between banks: a package is prepared until its expiry
    /// plus this, and history is compacted only after that (`compact`). Must be the same at
    /// every bank and above the real skew.
    pub clock_skew_ms: u64,
    /// How often the compactor runs a step (0: never; history then grows forever).
    pub compact_every_ms: u64,
    /// Most packages one compaction step examines, per kind of history (the work per step).
    pub compact_batch: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            peer_timeout_ms: 2_000,
            package_wait_ms: 10_000,
            idle_hold_ms: 1,
            idle_hold_max_ms: 25,
            token_loss_ms: 1_000,
            startup_check_ms: 500,
            block_ms: 500,
            resolve_after_ms: 3_000,
            presume_abort_ms: 10_000,
            ping_backoff_max_ms: 2_000,
            pass_floor_ms: 250,
            loss_floor_ms: 500,
            call_floor_ms: 250,
            clock_skew_ms: consortium_core::package::authority::CLOCK_SKEW_MS,
            compact_every_ms: 1_000,
            compact_batch: 256,
        }
    }
}

impl Timing {
    /// The consortium's shared timings (the manifest's `[timing]`) over this bank's own.
    pub fn apply_shared(&mut self, s: &consortium_core::trust::manifest::SharedTiming) {
        self.token_loss_ms = s.token_loss_ms.unwrap_or(self.token_loss_ms);
        self.block_ms = s.block_ms.unwrap_or(self.block_ms);
        self.resolve_after_ms = s.resolve_after_ms.unwrap_or(self.resolve_after_ms);
        self.presume_abort_ms = s.presume_abort_ms.unwrap_or(self.presume_abort_ms);
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// Address the other banks know this one by (default: `listen`); its entry in the
    /// manifest.
    pub advertise: Option<String>,
    /// The consortium manifest: every bank's address and public key, and the shared timings
    /// (`node init` prints this bank's entry).
    pub manifest: Option<PathBuf>,
    /// Where the database and the bank's private key (`bank.key`) live.
    pub data_dir: PathBuf,
    /// What one client may take: connections, header and body time, request rate (`[limits]`).
    pub limits: crate::limits::Limits,
    /// Public keys (hex) of this bank's tellers: a cash deposit into one of its accounts needs
    /// one of their signatures (`node teller-key` makes a teller's key pair).
    pub teller_keys: Vec<String>,
    /// Registrations need an operator's approval (`bank --as-teller user approve`): the
    /// person's identity checked at the counter before their key is bound to the CPF.
    pub require_approval: bool,
    /// PEM: this bank's certificate chain for its address, signed by the consortium's CA
    /// (`node tls-cert` makes it). With `tls_key` and `tls_ca`, the bank serves HTTPS and
    /// calls the other banks over HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM: the private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM: the consortium's CA, which every bank's certificate must be signed by
    /// (`node tls-ca` makes it).
    pub tls_ca: Option<PathBuf>,
    /// Development only: serve and call plain HTTP, without TLS.
    pub plain_http: bool,
    #[serde(flatten)]
    pub timing: Timing,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7001".into(),
            advertise: None,
            manifest: None,
            data_dir: PathBuf::from("data"),
            limits: Default::default(),
            teller_keys: Vec::new(),
            require_approval: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            plain_http: false,
            timing: Timing::default(),
        }
    }
}

/// How a production bank talks: TLS with its certificate and the consortium's CA, or plain
/// HTTP when explicitly asked (development). The simulator never asks: it is always plain.
#[derive(Clone, Debug, PartialEq)]
pub enum Security {
    Tls { cert: PathBuf, key: PathBuf, ca: PathBuf },
    PlainHttp,
}

impl Config {
    /// TLS if its three files are given, plain HTTP if `plain_http` is; anything else is
    /// refused with what to give.
    pub fn security(&self) -> Result<Security, String> {
        let files = [("tls_cert (--tls-cert)", &self.tls_cert), ("tls_key (--tls-key)", &self.tls_key), ("tls_ca (--tls-ca)", &self.tls_ca)];
        let given: Vec<&str> = files.iter().filter(|(_, f)| f.is_some()).map(|(n, _)| *n).collect();
        let missing: Vec<&str> = files.iter().filter(|(_, f)| f.is_none()).map(|(n, _)| *n).collect();
        match (self.plain_http, given.len()) {
            (true, 0) => Ok(Security::PlainHttp),
            (true, _) => Err(format!("plain_http and TLS both asked for ({}): choose one", given.join(", "))),
            (false, 3) => Ok(Security::Tls {
                cert: self.tls_cert.clone().unwrap(),
                key: self.tls_key.clone().unwrap(),
                ca: self.tls_ca.clone().unwrap(),
            }),
            (false, 0) => Err("no TLS configured: give --tls-cert FILE --tls-key FILE --tls-ca FILE (this bank's certificate and key, \
                 and the consortium's CA: `node tls-ca` and `node tls-cert` make them), or --plain-http for development without TLS"
                .into()),
            (false, _) => Err(format!("TLS needs three files; missing: {}", missing.join(", "))),
        }
    }

    pub fn me(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.clone())
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Refuses configurations that cannot work, with the reason.
    pub fn check(&self) -> Result<(), String> {
        for p in [self.listen.clone(), self.me()] {
            let (host, port) = p.rsplit_once(':').ok_or_else(|| format!("address {p:?} is not host:port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("address {p:?} is not host:port"));
            }
        }
        if let Some(k) = self.teller_keys.iter().find(|k| consortium_core::trust::keys::PublicKey::from_hex(k).is_none()) {
            return Err(format!("teller key {k:?} is not an Ed25519 public key (64 hex digits)"));
        }
        let t = &self.timing;
        if t.presume_abort_ms <= t.resolve_after_ms {
            return Err("presume_abort_ms must be larger than resolve_after_ms".into());
        }
        if t.compact_every_ms > 0 && t.compact_batch == 0 {
            return Err("compact_batch must be positive (or compact_every_ms 0 to turn compaction off)".into());
        }
        if t.peer_timeout_ms == 0 || t.token_loss_ms == 0 {
            return Err("timeouts must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_match_flags() {
        let c = Config::from_toml(
            "listen = \"127.0.0.1:7002\"\nmanifest = \"m.toml\"\ndata_dir = \"d\"\nidle_hold_ms = 5\n",
        )
        .unwrap();
        assert_eq!(c.me(), "127.0.0.1:7002");
        assert_eq!(c.timing.idle_hold_ms, 5);
        assert_eq!(c.timing.block_ms, Timing::default().block_ms);
        assert!(c.check().is_ok());
        assert!(Config::from_toml("listen = 3").is_err());
        assert!(Config::from_toml("colour = \"red\"").is_err(), "unknown keys are refused");
        assert!(Config::from_toml("peer_secret = \"x\"").is_err(), "no shared secret: banks have keys");
        let l = Config::from_toml("block_ms = 7\n[limits]\nmax_connections_per_ip = 9\n").unwrap();
        assert_eq!((l.limits.max_connections_per_ip, l.timing.block_ms), (9, 7));
        assert!(Config::from_toml("[limits]\nnope = 1\n").is_err());
        let tls = Config::from_toml("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_ca = \"ca.pem\"\n").unwrap();
        assert_eq!(tls.security(), Ok(Security::Tls { cert: "c.pem".into(), key: "k.pem".into(), ca: "ca.pem".into() }));
        assert_eq!(Config::from_toml("plain_http = true").unwrap().security(), Ok(Security::PlainHttp));
        let none = Config::default().security().unwrap_err();
        assert!(none.contains("--tls-cert") && none.contains("--plain-http"), "{none}");
        let half = Config { tls_cert: Some("c.pem".into()), ..Config::default() }.security().unwrap_err();
        assert!(half.contains("missing: tls_key") && half.contains("tls_ca"), "{half}");
        let both = Config { plain_http: true, tls_ca: Some("ca.pem".into()), ..Config::default() }.security().unwrap_err();
        assert!(both.contains("choose one"), "{both}");
        let bad = Config { advertise: Some("nohost".into()), ..Config::default() };
        assert!(bad.check().is_err());
    }
}
