//! The hub's local CA and its server certificate: created once, reissued for new names, read
//! back and checked (see the parent module).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tracing::{info, warn};

use super::{
    Error, TlsPaths, create_private_dir, parse_certs, provider, read_certs, read_file, write_new,
    write_replacing,
};

/// Lifetime of the CA: about ten years.
pub(super) const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a server certificate: 825 days, the longest most clients accept.
pub(super) const SERVER_VALIDITY: Duration = Duration::from_secs(825 * 24 * 3600);
/// Certificates start a day in the past to tolerate clients whose clocks lag.
pub(super) const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// The name every hub certificate covers, for mDNS setups.
pub(super) const HUB_NAME: &str = "musehub.local";

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

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum San {
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
pub(super) fn parse_name(raw: &str) -> Result<San, Error> {
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
pub(super) fn collect_names(host: Option<&str>, extra_names: &[String]) -> Result<Vec<San>, Error> {
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
pub(super) fn host_name() -> Option<String> {
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

pub(super) fn distinguished_name(common_name: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

// ---------------------------------------------------------------------------
// The CA

/// The hub's CA, ready to sign.
pub(super) struct Ca {
    /// What signs server certificates: the key, and the CA's subject and key usages.
    pub(super) issuer: Issuer<'static, KeyPair>,
    pub(super) der: CertificateDer<'static>,
}

pub(super) fn unusable_ca(paths: &TlsPaths, reason: String) -> Error {
    Error::UnusableCa {
        ca_cert: paths.ca_cert.clone(),
        ca_key: paths.ca_key.clone(),
        reason,
    }
}

/// The parameters a CA is created with (dates aside, which only matter when
/// the CA certificate itself is made).
pub(super) fn ca_params(common_name: String) -> CertificateParams {
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
pub(super) fn create_ca(paths: &TlsPaths, host: Option<&str>) -> Result<Ca, Error> {
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
pub(super) fn load_ca(paths: &TlsPaths) -> Result<Ca, Error> {
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
pub(super) fn check_chain(
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
