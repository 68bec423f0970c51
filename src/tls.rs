//! HTTPS for a hub on the local network.
//!
//! The Muse CLI only sends a bearer token over plain http to loopback, so a band
//! pushing to a hub on a Raspberry Pi in the rehearsal room needs https. There is
//! no public CA that will certify `raspberrypi.local` or `192.168.1.20`, so the hub
//! runs its own small one:
//!
//! * [`ensure_certificates`] (called by `musehub init`) creates a local CA once and
//!   then (re)issues a server certificate signed by it for every name and address
//!   the machine answers to. The CA is never replaced, so clients that trust it
//!   keep working when the server certificate is renewed for new addresses.
//! * [`server_config`] loads that material into a rustls [`rustls::ServerConfig`],
//!   and [`serve`] (used by `musehub serve --tls`) serves an axum router over it.
//! * [`ca_pem`] returns the CA certificate, which the hub hands out at `/ca.crt`
//!   so users can run `SSL_CERT_FILE=ca.crt muse push`.
//! * [`client_config_trusting`] builds a rustls client configuration that trusts
//!   exactly one such CA (tests, the bench, hub-to-hub federation).
//!
//! The CA and certificates are in [`ca`], the https side in [`server`], the clients in
//! [`client`]; this file holds what they share (errors, reading and writing the files).
//!
//! Everything lives in `<data dir>/tls/` (see [`TlsPaths`]). Private keys are
//! written with mode 0600 through a temporary file and a rename, the directory
//! has mode 0700.
//!
//! The CA is only as trustworthy as the machine holding `ca.key`: whoever has it
//! can issue certificates for any name, which is why it is meant to be trusted
//! per command (`SSL_CERT_FILE`) rather than installed system-wide.
//!
//! Left to others: command-line parsing and printing (`musehub init`, `serve`),
//! the `/ca.crt` route itself, the plain-http server, and routing/auth inside the
//! [`axum::Router`] handed to [`serve`]. All crypto uses the `ring` provider
//! explicitly; nothing here installs a process-wide default provider.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors from creating, loading or serving the hub's TLS material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "create", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A TLS file the server needs does not exist.
    #[error(
        "{} does not exist; run `musehub init` to create the hub's TLS certificates",
        path.display()
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A TLS file exists but cannot be used.
    #[error(
        "{} is not usable: {reason}; run `musehub init` to recreate the server certificate",
        path.display()
    )]
    InvalidFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Only one half of the CA (certificate or key) exists.
    #[error(
        "the hub CA is incomplete: {} exists but {} does not; refusing to replace it. \
         Restore the missing file, or remove {} to create a new CA with `musehub init` \
         (clients will then have to download the new /ca.crt)",
        present.display(),
        missing.display(),
        present.display()
    )]
    IncompleteCa {
        /// The half that exists.
        present: PathBuf,
        /// The half that is missing.
        missing: PathBuf,
    },
    /// The existing CA cannot sign a certificate that verifies against it.
    #[error(
        "the hub CA ({}) cannot be used: {reason}. Move {} and {} aside and run \
         `musehub init` to create a new CA (clients will then have to download the new /ca.crt)",
        ca_cert.display(),
        ca_cert.display(),
        ca_key.display()
    )]
    UnusableCa {
        /// The CA certificate file.
        ca_cert: PathBuf,
        /// The CA key file.
        ca_key: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra certificate name is neither an IP address nor a valid DNS name.
    #[error("cannot put {name:?} in the certificate: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// PEM text given as a trusted CA holds no usable certificate.
    #[error("the CA certificate is not usable: {0}")]
    InvalidCaPem(String),
    /// The system clock is so far off that certificate dates cannot be computed.
    #[error("the system clock is out of range; cannot compute certificate validity dates")]
    Clock,
    /// Key or certificate generation failed.
    #[error("cannot generate a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

pub use crate::config::TlsPaths;

mod ca;
mod client;
mod server;
pub use ca::{ca_fingerprint, ca_pem, ensure_certificates};
pub use client::{client_config_trusting, client_config_webpki, http_client_builder};
pub use server::server_config;

/// The crypto provider used everywhere in this module.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------
// Certificate names

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::Missing {
                path: path.to_owned(),
            }
        } else {
            Error::Io {
                action: "read",
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn pem_error(path: &Path, e: pem::Error) -> Error {
    Error::InvalidFile {
        path: path.to_owned(),
        reason: format!("bad PEM: {e}"),
    }
}

fn parse_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(Error::InvalidFile {
            path: path.to_owned(),
            reason: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    parse_certs(path, &read_file(path)?)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::InvalidFile {
            path: path.to_owned(),
            reason: "holds no private key".into(),
        },
        e => pem_error(path, e),
    })
}

/// Creates `dir` (and parents) and restricts it to its owner.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            Error::Io {
                action: "set permissions on",
                path: dir.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Atomically replaces `path` with `contents` ([`crate::fsutil::write_atomic`]).
fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    crate::fsutil::write_atomic(path, contents, mode).map_err(|source| Error::Io {
        action: "replace",
        path: path.to_owned(),
        source,
    })
}

/// Atomically creates `path` with `contents`, failing if it already exists
/// ([`crate::fsutil::write_new`]).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    crate::fsutil::write_new(path, contents, mode).map_err(|source| Error::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use tokio_util::sync::CancellationToken;

    use super::ca::*;
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ensure_certificates_creates_then_keeps_ca() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        assert!(!paths.exists());

        let names =
            ensure_certificates(&paths, &["hub.example.org".into(), "[10.9.8.7]".into()]).unwrap();
        assert!(paths.exists());
        for expected in [
            "musehub.local",
            "localhost",
            "127.0.0.1",
            "::1",
            "hub.example.org",
            "10.9.8.7",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        #[cfg(unix)]
        {
            assert_eq!(mode(&paths.ca_key), 0o600);
            assert_eq!(mode(&paths.key), 0o600);
            assert_eq!(mode(&dir.path().join("tls")), 0o700);
        }

        let ca_before = fs::read(&paths.ca_cert).unwrap();
        let ca_key_before = fs::read(&paths.ca_key).unwrap();
        let cert_before = fs::read(&paths.cert).unwrap();
        ensure_certificates(&paths, &[]).unwrap();
        assert_eq!(fs::read(&paths.ca_cert).unwrap(), ca_before);
        assert_eq!(fs::read(&paths.ca_key).unwrap(), ca_key_before);
        assert_ne!(fs::read(&paths.cert).unwrap(), cert_before);
        #[cfg(unix)]
        assert_eq!(mode(&paths.key), 0o600);

        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("tls"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        assert!(ca_pem(&paths).unwrap().contains("BEGIN CERTIFICATE"));
        server_config(&paths).unwrap();
    }

    #[test]
    fn incomplete_ca_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        ensure_certificates(&paths, &[]).unwrap();
        fs::remove_file(&paths.ca_key).unwrap();
        let err = ensure_certificates(&paths, &[]).unwrap_err();
        assert!(matches!(err, Error::IncompleteCa { .. }), "{err}");

        // A CA key that does not belong to the CA certificate is refused, and
        // the existing server certificate is left alone.
        let other_dir = tempfile::tempdir().unwrap();
        let other = TlsPaths::in_dir(other_dir.path());
        ensure_certificates(&other, &[]).unwrap();
        fs::copy(&other.ca_key, &paths.ca_key).unwrap();
        let cert_before = fs::read(&paths.cert).unwrap();
        let err = ensure_certificates(&paths, &[]).unwrap_err();
        assert!(matches!(err, Error::UnusableCa { .. }), "{err}");
        assert_eq!(fs::read(&paths.cert).unwrap(), cert_before);

        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        for bad in ["*.example.org", "", "not a name"] {
            let err = ensure_certificates(&paths, &[bad.to_owned()]).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn missing_files_tell_the_user_to_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        let err = server_config(&paths).unwrap_err().to_string();
        assert!(
            err.contains("server.crt") && err.contains("musehub init"),
            "{err}"
        );
        let err = ca_pem(&paths).unwrap_err().to_string();
        assert!(
            err.contains("ca.crt") && err.contains("musehub init"),
            "{err}"
        );
    }

    #[test]
    fn a_loaded_ca_signs_with_the_subject_it_was_made_with() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        ensure_certificates(&paths, &[]).unwrap();
        let made = fs::read(&paths.ca_cert).unwrap();
        let ca = load_ca(&paths).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&ca.der).unwrap();
        let subject = parsed.subject().to_string();
        assert!(subject.contains("musehub local CA"), "{subject}");
        // A server certificate issued from the loaded CA names it as its issuer.
        fs::remove_file(&paths.cert).unwrap();
        ensure_certificates(&paths, &[]).unwrap();
        let leaf = read_certs(&paths.cert).unwrap().remove(0);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        assert_eq!(leaf.issuer().to_string(), subject);
        assert_eq!(fs::read(&paths.ca_cert).unwrap(), made, "the CA is kept");
    }

    async fn get(client: &reqwest::Client, url: &str) -> reqwest::Result<String> {
        client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    #[tokio::test]
    async fn serves_https_to_clients_trusting_the_ca() {
        use axum::routing::get as route;

        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        ensure_certificates(&paths, &[]).unwrap();
        let config = server_config(&paths).unwrap();

        let app =
            axum::Router::new()
                .route("/hello", route(|| async { "hi" }))
                .route(
                    "/peer",
                    route(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = CancellationToken::new();
        let listen = crate::server::accept::Listen {
            tls: Some(config),
            header_timeout: Duration::from_secs(30),
            max_connections: 64,
            grace: Duration::from_secs(30),
        };
        let server = tokio::spawn(crate::server::accept::serve(
            listener,
            app,
            listen,
            Default::default(),
            shutdown.clone(),
        ));

        let trusting = reqwest::Client::builder()
            .no_proxy()
            .tls_backend_preconfigured(client_config_trusting(&ca_pem(&paths).unwrap()).unwrap())
            .build()
            .unwrap();
        assert_eq!(
            get(&trusting, &format!("https://127.0.0.1:{port}/hello"))
                .await
                .unwrap(),
            "hi"
        );
        assert_eq!(
            get(&trusting, &format!("https://localhost:{port}/hello"))
                .await
                .unwrap(),
            "hi"
        );
        assert_eq!(
            get(&trusting, &format!("https://127.0.0.1:{port}/peer"))
                .await
                .unwrap(),
            "127.0.0.1"
        );

        // A client trusting some other hub's CA must refuse the connection. (Both
        // CAs share a name here, same host, so rustls reports BadSignature rather
        // than UnknownIssuer.)
        let other_dir = tempfile::tempdir().unwrap();
        let other = TlsPaths::in_dir(other_dir.path());
        ensure_certificates(&other, &[]).unwrap();
        let stranger = reqwest::Client::builder()
            .no_proxy()
            .tls_backend_preconfigured(client_config_trusting(&ca_pem(&other).unwrap()).unwrap())
            .build()
            .unwrap();
        let err = get(&stranger, &format!("https://127.0.0.1:{port}/hello"))
            .await
            .unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            chain.push_str(&format!(": {e}"));
            source = e.source();
        }
        assert!(chain.contains("invalid peer certificate"), "{chain}");

        // The failed handshake did not stop the server.
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .tls_backend_preconfigured(client_config_trusting(&ca_pem(&paths).unwrap()).unwrap())
            .build()
            .unwrap();
        assert_eq!(
            get(&fresh, &format!("https://127.0.0.1:{port}/hello"))
                .await
                .unwrap(),
            "hi"
        );

        // Shutdown returns promptly even with idle keep-alive connections open.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve did not stop")
            .unwrap()
            .unwrap();
        assert!(
            get(&fresh, &format!("https://127.0.0.1:{port}/hello"))
                .await
                .is_err()
        );
    }
}
