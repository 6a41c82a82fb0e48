//! How `bank` reaches a bank: HTTPS, checking the bank's certificate against the consortium's
//! CA, or plain HTTP when explicitly asked (a bank started with `--plain-http`, for
//! development). The CA is found by `--ca`, then `BANK_CA`, then the file `make run` writes
//! (`data/ca.pem`, from the folder `bank` runs in).

use consortium_net::{tcp_transport, Transport};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `make run` leaves the consortium's CA, relative to the repository's folder.
pub const MAKE_RUN_CA: &str = "data/ca.pem";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// HTTPS, trusting the CA in this file (and nothing else).
    Https(PathBuf),
    /// Plain HTTP (development).
    PlainHttp,
}

/// Which: `plain_http` if asked; else the CA given (`--ca` or `BANK_CA`); else `fallback`
/// (the file `make run` writes) if it exists; else an error saying how to name the CA.
pub fn choose(ca: Option<PathBuf>, plain_http: bool, fallback: &Path) -> Result<Reach, String> {
    if plain_http {
        return Ok(Reach::PlainHttp);
    }
    match ca {
        Some(ca) => Ok(Reach::Https(ca)),
        None if fallback.is_file() => Ok(Reach::Https(fallback.to_path_buf())),
        None => Err(format!(
            "no consortium CA to check the bank's certificate with: give --ca FILE or set BANK_CA \
             (the ca.pem of `node tls-ca`; run from the repository's folder, the {MAKE_RUN_CA} that `make run` \
             writes is found by itself), or --plain-http for a bank started without TLS"
        )),
    }
}

/// The transport for `reach` (one connection pool for every call of the client).
pub fn transport(reach: &Reach) -> Result<Arc<dyn Transport>, String> {
    Ok(match reach {
        Reach::Https(ca) => Arc::new(consortium_net::tls::https_transport(consortium_net::tls::client_config(ca)?)),
        Reach::PlainHttp => Arc::new(tcp_transport()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_the_flag_or_variable_then_make_runs_file_and_plain_http_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let fallback = dir.path().join("ca.pem");
        let given = PathBuf::from("/etc/consortium/ca.pem");
        assert_eq!(choose(Some(given.clone()), false, &fallback), Ok(Reach::Https(given.clone())));
        let none = choose(None, false, &fallback).unwrap_err();
        assert!(none.contains("--ca FILE") && none.contains("BANK_CA") && none.contains("--plain-http"), "{none}");
        std::fs::write(&fallback, "x").unwrap();
        assert_eq!(choose(None, false, &fallback), Ok(Reach::Https(fallback.clone())));
        assert_eq!(choose(Some(given.clone()), false, &fallback), Ok(Reach::Https(given)), "the one given wins");
        assert_eq!(choose(None, true, &fallback), Ok(Reach::PlainHttp));
        assert!(transport(&Reach::Https(fallback)).is_err(), "a CA file that is not PEM is refused at once");
    }
}
