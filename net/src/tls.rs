//! TLS (rustls, ring provider) for production: the client side of calls to a bank, and the
//! configurations a bank's listener and connector need. Never used in the simulator: TLS's
//! randomness and certificate clocks cannot be seeded, and authentication between banks and
//! of users lives in the signatures, which do run there. TLS adds confidentiality and proves
//! to a client that the address it dialled is a bank the consortium's CA certified.
//!
//! Certificates are PEM files: the consortium's CA (`ca.pem`), and per bank a certificate
//! chain and its private key, signed by that CA for the bank's address (an IP address or a
//! DNS name as subject alternative name). `node tls-ca` and `node tls-cert` make them.

use crate::HttpTransport;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The pooled HTTPS client: hyper-util over rustls over TCP.
pub type HttpsTransport = HttpTransport<hyper_rustls::HttpsConnector<HttpConnector>>;

/// The crypto provider every configuration here uses (ring: no cmake or nasm to build).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (a chain: the bank's first, then intermediates).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("certificate file {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("key file {}: no usable PEM private key ({e})", path.display()))
}

/// A client configuration that trusts the certificates in `ca_pem` (the consortium's CA)
/// and nothing else: not the system's roots.
pub fn client_config(ca_pem: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_pem)? {
        roots.add(cert).map_err(|e| format!("CA file {}: {e}", ca_pem.display()))?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A server configuration presenting the chain in `cert_pem` with the key in `key_pem`.
/// Clients are not asked for certificates: a client proves who it is with its signatures,
/// and a bank calling another with its request MAC.
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> Result<ServerConfig, String> {
    let certs = read_certs(cert_pem)?;
    let key = read_key(key_pem)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {} and key {} do not go together: {e}", cert_pem.display(), key_pem.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The production HTTPS transport: calls `https://host:port/...`, checks that the server's
/// certificate is signed by the CA of `config` and names the host dialled (the IP address
/// for `127.0.0.1:7001`). Connections are pooled as over plain TCP, so the handshake is paid
/// once per connection, not per call.
pub fn https_transport(config: ClientConfig) -> HttpsTransport {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(2)));
    c.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().wrap_connector(c);
    HttpTransport::new(https).with_scheme("https")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_pem_say_so() {
        let dir = std::env::temp_dir().join(format!("net-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        assert!(client_config(&junk).unwrap_err().contains("no PEM certificate"));
        assert!(read_key(&junk).unwrap_err().contains("no usable PEM private key"));
        assert!(client_config(&dir.join("missing.pem")).unwrap_err().contains("missing.pem"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
