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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after an accept error that is not about a single connection (e.g. EMFILE).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Lifetime of the CA: about ten years.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a server certificate: 825 days, the longest most clients accept.
const SERVER_VALIDITY: Duration = Duration::from_secs(825 * 24 * 3600);
/// Certificates start a day in the past to tolerate clients whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// The name every hub certificate covers, for mDNS setups.
const HUB_NAME: &str = "musehub.local";

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

/// Files of the hub's TLS material inside the data dir: `tls/ca.crt`,
/// `tls/ca.key` (0600), `tls/server.crt`, `tls/server.key` (0600).
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// The local CA certificate (PEM), handed out at `/ca.crt`.
    pub ca_cert: PathBuf,
    /// The local CA private key (PKCS#8 PEM, mode 0600).
    pub ca_key: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// The server private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

impl TlsPaths {
    /// The standard layout under `data_dir/tls/`.
    pub fn in_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }

    /// Whether all four files exist.
    pub fn exists(&self) -> bool {
        [&self.ca_cert, &self.ca_key, &self.cert, &self.key]
            .iter()
            .all(|p| p.is_file())
    }
}

/// Creates the CA if it is missing (an existing CA is never overwritten) and a
/// fresh server certificate signed by it.
///
/// The server certificate covers `musehub.local`, `localhost`, the machine's
/// host name (`<name>` and `<name>.local`), `127.0.0.1`, `::1`, every
/// non-loopback address of the machine's interfaces (IPv6 link-local excepted:
/// those need a zone id and cannot appear in URLs that verify), plus
/// `extra_names` (IP addresses become IP entries, anything else a DNS name;
/// wildcards are rejected). The CA is named `musehub local CA (<hostname>, <random tag>)`,
/// valid about ten years, and may only sign end-entity certificates; the server
/// certificate is valid 825 days for TLS server authentication. Keys are ECDSA
/// P-256.
///
/// Re-running keeps the CA and regenerates the server key and certificate, so
/// new addresses get covered without clients having to trust anything new.
/// Before anything is replaced, the new certificate is checked to verify
/// against the CA.
///
/// Returns the names and addresses the certificate covers, for the CLI to print.
pub fn ensure_certificates(paths: &TlsPaths, extra_names: &[String]) -> Result<Vec<String>, Error> {
    for dir in [paths.ca_cert.parent(), paths.cert.parent()]
        .into_iter()
        .flatten()
    {
        create_private_dir(dir)?;
    }

    let host = host_name();
    let ca = match (paths.ca_cert.is_file(), paths.ca_key.is_file()) {
        (true, true) => load_ca(paths)?,
        (false, false) => create_ca(paths, host.as_deref())?,
        (true, false) => {
            return Err(Error::IncompleteCa {
                present: paths.ca_cert.clone(),
                missing: paths.ca_key.clone(),
            });
        }
        (false, true) => {
            return Err(Error::IncompleteCa {
                present: paths.ca_key.clone(),
                missing: paths.ca_cert.clone(),
            });
        }
    };

    let sans = collect_names(host.as_deref(), extra_names)?;
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(match &host {
        Some(h) => format!("musehub ({h})"),
        None => "musehub".to_owned(),
    });
    params.subject_alt_names = sans
        .iter()
        .map(San::to_rcgen)
        .collect::<Result<Vec<_>, _>>()?;
    params.not_before = now.checked_sub(BACKDATE).ok_or(Error::Clock)?.into();
    params.not_after = now.checked_add(SERVER_VALIDITY).ok_or(Error::Clock)?.into();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    check_chain(paths, cert.der(), ca.der)?;

    write_replacing(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_replacing(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    info!(
        cert = %paths.cert.display(),
        names = sans.len(),
        "issued hub server certificate"
    );
    Ok(sans.iter().map(San::to_string).collect())
}

/// The CA certificate's SHA-256 fingerprint as browsers and OS certificate stores show it
/// (`AB:CD:…`), so a person can check the file they downloaded.
pub fn ca_fingerprint(paths: &TlsPaths) -> Result<String, Error> {
    use sha2::Digest;
    let certs = read_certs(&paths.ca_cert)?;
    let first = certs.first().ok_or_else(|| Error::InvalidFile {
        path: paths.ca_cert.clone(),
        reason: "holds no certificate".into(),
    })?;
    let digest = sha2::Sha256::digest(first.as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

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

/// Reads the CA certificate PEM (served at `/ca.crt`).
///
/// Checks that the file holds at least one certificate. This is a small
/// blocking read; callers serving it often should read it once at startup.
pub fn ca_pem(paths: &TlsPaths) -> Result<String, Error> {
    let bytes = read_file(&paths.ca_cert)?;
    parse_certs(&paths.ca_cert, &bytes)?;
    String::from_utf8(bytes).map_err(|_| Error::InvalidFile {
        path: paths.ca_cert.clone(),
        reason: "not UTF-8 text".into(),
    })
}

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

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled.
///
/// Each accepted connection gets its own task: a TLS handshake bounded by 10 s
/// (a failed or slow handshake is logged at debug level and dropped), then
/// HTTP/1.1 via hyper. Handlers can extract the peer address as
/// [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo). Errors accepting
/// connections are logged and never end the loop.
///
/// When `shutdown` fires the listener is closed, every open connection is asked
/// to finish gracefully (requests in flight complete, idle keep-alive
/// connections close), and this waits at most `grace` for them before dropping
/// the rest.
///
/// Returns an error only if the listener is unusable from the start (its local
/// address cannot be read).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    info!(%local, "serving https");
    let acceptor = TlsAcceptor::from(config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined {
                    warn!(error = %e, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(handle_connection(
                        acceptor.clone(),
                        stream,
                        peer,
                        app.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) if is_per_connection_error(&e) => {
                    debug!(error = %e, "accept failed for one connection");
                }
                Err(e) => {
                    warn!(error = %e, "accept failed; retrying shortly");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);

    if !connections.is_empty() {
        debug!(
            open = connections.len(),
            "waiting for open connections to finish"
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            grace = ?grace,
            "grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
    info!(%local, "https server stopped");
    Ok(())
}

/// One connection: handshake, then HTTP/1.1 until done or shut down.
async fn handle_connection(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let tls = tokio::select! {
        () = shutdown.cancelled() => return,
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => {
            match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };

    let svc = tower::util::MapRequest::new(app, move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Accept errors that concern one connection only and need no backoff.
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The crypto provider used everywhere in this module.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------
// Certificate names

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    fn to_rcgen(&self) -> Result<SanType, Error> {
        Ok(match self {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => SanType::DnsName(name.clone().try_into()?),
        })
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Parses a user-supplied name: an IP address (optionally in brackets) or a
/// DNS name (lower-cased, trailing dot removed).
fn parse_name(raw: &str) -> Result<San, Error> {
    let invalid = |reason| Error::InvalidName {
        name: raw.to_owned(),
        reason,
    };
    let trimmed = raw.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(San::Ip(ip));
    }
    let name = trimmed.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err(invalid("empty name"));
    }
    if name.contains('*') {
        return Err(invalid("wildcard names are not supported"));
    }
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) => Ok(San::Dns(name)),
        _ => Err(invalid("not a valid DNS name or IP address")),
    }
}

/// All names the server certificate should cover, deduplicated, in a stable
/// order: fixed names, host name, loopback, interface addresses, extras.
fn collect_names(host: Option<&str>, extra_names: &[String]) -> Result<Vec<San>, Error> {
    let mut names: Vec<San> = Vec::new();
    let mut add = |san: San| {
        if !names.contains(&san) {
            names.push(san);
        }
    };
    add(San::Dns(HUB_NAME.to_owned()));
    add(San::Dns("localhost".to_owned()));
    if let Some(host) = host {
        add(San::Dns(host.to_owned()));
        let short = host.split('.').next().unwrap_or(host);
        add(San::Dns(format!("{short}.local")));
    }
    add(San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    add(San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => {
            for iface in interfaces {
                let ip = iface.ip();
                if iface.is_loopback() || ip.is_loopback() || ip.is_unspecified() {
                    continue;
                }
                if let IpAddr::V6(v6) = ip
                    && v6.segments()[0] & 0xffc0 == 0xfe80
                {
                    continue;
                }
                add(San::Ip(ip));
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot list network interfaces; certificate covers fixed names only")
        }
    }
    for raw in extra_names {
        add(parse_name(raw)?);
    }
    Ok(names)
}

/// The machine's host name, if it can be read and used as a DNS name.
fn host_name() -> Option<String> {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())?;
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name == "localhost" {
        return None;
    }
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) if name.is_ascii() && !name.contains('*') => Some(name),
        _ => {
            warn!(host = %name, "host name is not a valid DNS name; leaving it out of the certificate");
            None
        }
    }
}

fn distinguished_name(common_name: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

// ---------------------------------------------------------------------------
// The CA

/// The hub's CA, ready to sign.
struct Ca {
    /// What signs server certificates: the key, and the CA's subject and key usages.
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn unusable_ca(paths: &TlsPaths, reason: String) -> Error {
    Error::UnusableCa {
        ca_cert: paths.ca_cert.clone(),
        ca_key: paths.ca_key.clone(),
        reason,
    }
}

/// The parameters a CA is created with (dates aside, which only matter when
/// the CA certificate itself is made).
fn ca_params(common_name: String) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Creates and writes a new CA, key first so that an existing `ca.crt` always
/// means a complete CA. Never overwrites an existing file.
fn create_ca(paths: &TlsPaths, host: Option<&str>) -> Result<Ca, Error> {
    // A short random tag tells apart the CAs of hubs that share a host name (every Pi is
    // `raspberrypi` until renamed), in a client's list of trusted CAs and in TLS errors.
    let tag = hex::encode(crate::auth::random_bytes::<3>());
    let common_name = match host {
        Some(h) => format!("musehub local CA ({h}, {tag})"),
        None => format!("musehub local CA ({tag})"),
    };
    let mut params = ca_params(common_name);
    let now = SystemTime::now();
    params.not_before = now.checked_sub(BACKDATE).ok_or(Error::Clock)?.into();
    params.not_after = now.checked_add(CA_VALIDITY).ok_or(Error::Clock)?.into();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    write_new(&paths.ca_key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&paths.ca_cert, cert.pem().as_bytes(), 0o644)?;
    info!(ca = %paths.ca_cert.display(), "created hub CA");
    Ok(Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    })
}

/// Loads an existing CA: its key, and its subject and key usages read from `ca.crt`
/// (`x509-parser`, through rcgen); [`check_chain`] catches a key that does not match.
fn load_ca(paths: &TlsPaths) -> Result<Ca, Error> {
    let unusable = |reason: String| unusable_ca(paths, reason);
    let key_pem = read_file(&paths.ca_key)?;
    let key_pem =
        std::str::from_utf8(&key_pem).map_err(|_| unusable("ca.key is not PEM text".into()))?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| unusable(format!("ca.key: {e}")))?;
    let cert = read_certs(&paths.ca_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| unusable("ca.crt holds no certificate".into()))?;
    let issuer = Issuer::from_ca_cert_der(&cert, key)
        .map_err(|e| unusable(format!("ca.crt cannot be read: {e}")))?;
    Ok(Ca { issuer, der: cert })
}

/// Verifies that `leaf` chains to `ca` for [`HUB_NAME`] right now.
fn check_chain(
    paths: &TlsPaths,
    leaf: &CertificateDer<'_>,
    ca: CertificateDer<'static>,
) -> Result<(), Error> {
    let unusable = |reason: String| unusable_ca(paths, reason);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| unusable(format!("ca.crt is not a usable CA certificate: {e}")))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| unusable(e.to_string()))?;
    let name = ServerName::try_from(HUB_NAME).map_err(|e| unusable(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
        .map_err(|e| {
            unusable(format!(
                "a certificate signed with ca.key does not verify against ca.crt ({e}); \
                 the two files do not belong together, the CA has expired, or it was not made by musehub"
            ))
        })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Files

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
        let server = tokio::spawn(serve(
            listener,
            config,
            app,
            shutdown.clone(),
            Duration::from_secs(30),
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
