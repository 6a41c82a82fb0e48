//! The consortium's TLS certificates (production only): a certificate authority the banks
//! share (`node tls-ca`), and each bank's certificate for its address, signed by it
//! (`node tls-cert`). rcgen, ECDSA P-256. Private keys are written readable by their owner
//! only. TLS proves to a client that the address it dialled is a bank the CA certified;
//! who may do what is still decided by signatures, as in the simulator, which has no TLS.

use crate::trust::keyfile::write_private;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use std::path::{Path, PathBuf};

/// The CA's certificate (what banks and clients trust: `tls_ca`, `bank --ca`).
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key: it signs the banks' certificates; keep it off the servers.
pub const CA_KEY: &str = "ca.key";
/// A bank's certificate and key (`tls_cert`, `tls_key`).
pub const CERT: &str = "cert.pem";
pub const KEY: &str = "key.pem";

const CA_NAME: &str = "Bank consortium CA";
const CA_DAYS: i64 = 3650;
const CERT_DAYS: i64 = 825;

/// The CA's parameters. The same every time, so a bank's certificate can be issued from
/// the CA's key alone: its issuer name and key identifier follow from these and the key.
fn ca_params(days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut p, days);
    p
}

/// From a day ago (clocks differ a little) to `days` from now.
fn validity(p: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(days);
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn write_public(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Makes the consortium's CA in `dir` (`ca.pem`, `ca.key`) unless it is there already
/// (a new CA would invalidate every certificate it signed). Returns whether it was created.
pub fn make_ca(dir: &Path) -> Result<bool, String> {
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (false, false) => {}
        _ => return Err(format!("{} has one of {CA_CERT} and {CA_KEY} without the other: remove it or restore both", dir.display())),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key_pair = KeyPair::generate().map_err(err("CA key"))?;
    let ca = ca_params(CA_DAYS).self_signed(&key_pair).map_err(err("CA certificate"))?;
    write_private(&key, &key_pair.serialize_pem())?;
    write_public(&cert, &ca.pem())?;
    Ok(true)
}

/// The host part of `host:port` (`[::1]:7001` gives `::1`).
fn host_of(address: &str) -> Result<&str, String> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("address {address:?} is not host:port"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("address {address:?} is not host:port"));
    }
    Ok(host)
}

/// Issues a bank's certificate for `address` (its host as the subject alternative name: an
/// IP address or a DNS name), signed by the CA in `ca_dir`, with a new key; writes
/// `cert.pem` and `key.pem` into `out_dir` (replacing earlier ones). Returns their paths.
pub fn make_cert(ca_dir: &Path, address: &str, out_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let host = host_of(address)?;
    let ca_key_path = ca_dir.join(CA_KEY);
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(|e| format!("the CA's key {}: {e} (`node tls-ca` makes it)", ca_key_path.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(err("the CA's key"))?;
    let issuer = Issuer::new(ca_params(CA_DAYS), ca_key);
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, address);
    p.subject_alt_names = vec![match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(host.try_into().map_err(|e| format!("{host:?} is not a DNS name: {e}"))?),
    }];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, CERT_DAYS);
    let key_pair = KeyPair::generate().map_err(err("key"))?;
    let cert = p.signed_by(&key_pair, &issuer).map_err(err("certificate"))?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let (cert_path, key_path) = (out_dir.join(CERT), out_dir.join(KEY));
    write_private(&key_path, &key_pair.serialize_pem())?;
    write_public(&cert_path, &cert.pem())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_is_made_once_and_signs_certificates_rustls_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        assert!(make_ca(&ca_dir).unwrap());
        let ca_pem = std::fs::read(ca_dir.join(CA_CERT)).unwrap();
        assert!(!make_ca(&ca_dir).unwrap(), "kept, not replaced");
        assert_eq!(std::fs::read(ca_dir.join(CA_CERT)).unwrap(), ca_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ca_dir.join(CA_KEY)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the CA's key is private: {mode:o}");
        }
        let (cert, key) = make_cert(&ca_dir, "127.0.0.1:7001", &dir.path().join("b1")).unwrap();
        // rustls takes the pair as a server, and a client trusting the CA verifies it for the
        // address's IP (and not for another name).
        consortium_net::tls::server_config(&cert, &key).unwrap();
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            r.add_parsable_certificates(consortium_net::tls::read_certs(&ca_dir.join(CA_CERT)).unwrap());
            std::sync::Arc::new(r)
        };
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, consortium_net::tls::provider()).build().unwrap();
        let leaf = consortium_net::tls::read_certs(&cert).unwrap().remove(0);
        use rustls::client::danger::ServerCertVerifier;
        let now = rustls::pki_types::UnixTime::now();
        let ip = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &ip, &[], now).is_ok());
        let other = rustls::pki_types::ServerName::try_from("127.0.0.2").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the bank's key is private: {mode:o}");
        }
        assert!(make_cert(&ca_dir, "nohost", &dir.path().join("b2")).unwrap_err().contains("not host:port"));
        assert!(make_cert(&dir.path().join("none"), "127.0.0.1:7002", &dir.path().join("b2")).unwrap_err().contains("tls-ca"));
        // A DNS name works as well.
        let (cert, _) = make_cert(&ca_dir, "bank.example:7001", &dir.path().join("b3")).unwrap();
        let leaf = consortium_net::tls::read_certs(&cert).unwrap().remove(0);
        let name = rustls::pki_types::ServerName::try_from("bank.example").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &name, &[], now).is_ok());
    }
}
