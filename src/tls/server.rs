//! The https side: the rustls server configuration from the hub's files (the accept loop,
//! shared with plain http, is `crate::server::accept`).

use std::sync::Arc;

use super::{Error, TlsPaths, provider, read_certs, read_key};

/// Loads `server.crt` (with the CA certificate appended to the chain) and
/// `server.key` into a rustls server configuration using the `ring` provider,
/// safe default protocol versions (TLS 1.2 and 1.3) and ALPN `http/1.1`.
///
/// Errors name the offending file and tell the user to run `musehub init`.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut chain = read_certs(&paths.cert)?;
    for ca in read_certs(&paths.ca_cert)? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = read_key(&paths.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::InvalidFile {
            path: paths.key.clone(),
            reason: format!("rejected together with {}: {e}", paths.cert.display()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
