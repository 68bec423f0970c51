//! HTTP clients: trusting exactly one local CA (tests, the bench, federation with a LAN hub)
//! or the web PKI.

use std::path::PathBuf;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::{Error, provider};

/// A rustls client configuration (ring provider, safe default protocol
/// versions, no client certificate) that trusts only the certificates in
/// `ca_pem`, typically a hub's `/ca.crt`.
///
/// Used by tests, the bench and hub-to-hub federation. No ALPN is set; the
/// caller may add it.
pub fn client_config_trusting(ca_pem: &str) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::InvalidCaPem(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| Error::InvalidCaPem(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(Error::InvalidCaPem("no certificate found".into()));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP client builder for talking to other hubs and RPC endpoints: trusts the
/// certificates in `$SSL_CERT_FILE` when set (a LAN hub's `/ca.crt`), else the Mozilla root
/// set. Callers add their own timeouts.
pub fn http_client_builder() -> Result<reqwest::ClientBuilder, Error> {
    let tls = match std::env::var_os("SSL_CERT_FILE") {
        Some(f) => {
            let path = PathBuf::from(f);
            let pem = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                action: "read SSL_CERT_FILE",
                path,
                source,
            })?;
            client_config_trusting(&pem)?
        }
        None => client_config_webpki(),
    };
    Ok(reqwest::Client::builder().use_preconfigured_tls(tls))
}

/// A client configuration trusting the Mozilla root set compiled in from `webpki-roots`
/// (no dependence on the system's CA bundle, which a minimal Pi image may lack): for public
/// HTTPS servers such as trustless IPFS gateways.
pub fn client_config_webpki() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
