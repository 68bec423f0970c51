//! A person's Ed25519 identity key: the key file (PKCS#8 PEM, mode 0600, written atomically,
//! never logged) and the signed key bundle whose CID the chain anchors.
//!
//! The key bundle is one DAG-CBOR block:
//!
//! ```text
//! { "type": "musehub/key-bundle/v1", "handle": "alice", "alg": "ed25519",
//!   "public_key": <32 bytes>, "hubs": [ { "peer_id": "12D3Koo…", "url": "https://…" } ],
//!   "prev": <link to the previous bundle> | null, "time": "2026-…Z", "sig": <64 bytes> }
//! ```
//!
//! `sig` is the key's Ed25519 signature over `musehub key-bundle v1\n` followed by the
//! DAG-CBOR of the node without `sig`. `alg` is a field so a post-quantum key (ML-DSA-65) can
//! follow without a new schema.

use std::collections::BTreeMap;
use std::path::Path;

use cid::Cid;
use data_encoding::BASE64;
use libp2p::identity::{Keypair, ed25519};

use crate::dag::Block;
use crate::dagcbor::Value;

pub const KEY_BUNDLE: &str = "musehub/key-bundle/v1";
const SIGNING_DOMAIN: &[u8] = b"musehub key-bundle v1\n";
/// DER of a PKCS#8 Ed25519 private key before its 32-byte seed (RFC 8410).
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(s: impl Into<String>) -> Error {
    Error::Invalid(s.into())
}

/// The PKCS#8 PEM text of a key (what `openssl genpkey -algorithm ed25519` writes).
pub fn to_pem(key: &ed25519::Keypair) -> String {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(key.secret().as_ref());
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        BASE64.encode(&der)
    )
}

/// A private key from PKCS#8 PEM, or 64 hex characters of its 32-byte seed.
pub fn parse_private(text: &str) -> Result<ed25519::Keypair> {
    let text = text.trim();
    let seed = if let Some(body) = text
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|r| r.strip_suffix("-----END PRIVATE KEY-----"))
    {
        let b64: String = body.split_whitespace().collect();
        let der = BASE64
            .decode(b64.as_bytes())
            .map_err(|_| invalid("the PEM body is not base64"))?;
        match der.strip_prefix(&PKCS8_PREFIX[..]) {
            Some(seed) if seed.len() == 32 => seed.to_vec(),
            _ => return Err(invalid("not a PKCS#8 Ed25519 private key")),
        }
    } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| invalid("bad hex"))?
    } else {
        return Err(invalid(
            "expected a PKCS#8 PEM Ed25519 private key (-----BEGIN PRIVATE KEY-----) or 64 hex characters",
        ));
    };
    let secret = ed25519::SecretKey::try_from_bytes(seed)
        .map_err(|e| invalid(format!("not an Ed25519 key: {e}")))?;
    Ok(ed25519::Keypair::from(secret))
}

/// Handles as the key registry accepts them: 1-32 of `[a-z0-9-]`, no `-` at either end.
pub fn check_handle(handle: &str) -> anyhow::Result<()> {
    let ok = (1..=32).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !handle.starts_with('-')
        && !handle.ends_with('-');
    if !ok {
        anyhow::bail!(
            "{handle:?} is not a valid handle: 1 to 32 lowercase letters, digits or '-', not starting or ending with '-'"
        );
    }
    Ok(())
}

/// Writes a key file: mode 0600, through a temp file and a rename, never over an existing
/// key unless `replace`.
pub fn write_key_file(path: &Path, key: &ed25519::Keypair, replace: bool) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if !replace && path.exists() {
        return Err(invalid(format!(
            "{} already holds a key; it is never overwritten (move it away first)",
            path.display()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    crate::fsutil::write_atomic(path, to_pem(key).as_bytes(), 0o600).map_err(io)
}

/// Where the signed key bundle of a key file is kept: beside it, as `<name>.bundle`.
pub fn bundle_path(key_path: &Path) -> std::path::PathBuf {
    key_path.with_extension("bundle")
}

/// Writes a key file (as [`write_key_file`]) and, beside it, a fresh bundle for `handle`
/// signed by the key. Returns the bundle's block: the CID the registry records.
pub fn install_key(
    path: &Path,
    key: &ed25519::Keypair,
    handle: &str,
    replace: bool,
) -> Result<Block> {
    write_key_file(path, key, replace)?;
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let block = KeyBundle::new(key, handle, Vec::new(), None, time).to_block()?;
    let bpath = bundle_path(path);
    crate::fsutil::write_atomic(&bpath, &block.data, 0o644).map_err(|source| Error::Io {
        path: bpath.display().to_string(),
        source,
    })?;
    Ok(block)
}

/// The bundle kept beside a key file, checked to be signed by `key` for `handle`.
pub fn read_bundle(key_path: &Path, handle: &str, key: &ed25519::Keypair) -> Result<Block> {
    let bpath = bundle_path(key_path);
    let data = std::fs::read(&bpath).map_err(|source| Error::Io {
        path: bpath.display().to_string(),
        source,
    })?;
    let b = KeyBundle::decode(&data)?;
    if b.public_key != key.public().to_bytes() || b.handle != handle {
        return Err(invalid(format!(
            "{} is the bundle of another key or handle",
            bpath.display()
        )));
    }
    Ok(Block {
        cid: crate::cids::cid_of(crate::cids::DAG_CBOR, &crate::cids::Id::of(&data)),
        data,
    })
}

/// Reads a key file, refusing one that others can read.
pub fn read_key_file(path: &Path) -> Result<ed25519::Keypair> {
    use std::os::unix::fs::MetadataExt;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.mode() & 0o077 != 0 {
        return Err(invalid(format!(
            "{} can be read by others (mode {:o}); run: chmod 600 {}",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        )));
    }
    parse_private(&std::fs::read_to_string(path).map_err(io)?)
}

/// A hub the key's owner authorises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    pub peer_id: String,
    pub url: String,
}

/// A signed key bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBundle {
    pub handle: String,
    pub alg: String,
    pub public_key: Vec<u8>,
    pub hubs: Vec<Hub>,
    pub prev: Option<Cid>,
    pub time: String,
    pub sig: Vec<u8>,
}

impl KeyBundle {
    /// A new bundle for `key`, signed by it.
    pub fn new(
        key: &ed25519::Keypair,
        handle: &str,
        hubs: Vec<Hub>,
        prev: Option<Cid>,
        time: String,
    ) -> KeyBundle {
        let mut b = KeyBundle {
            handle: handle.to_owned(),
            alg: "ed25519".into(),
            public_key: key.public().to_bytes().to_vec(),
            hubs,
            prev,
            time,
            sig: Vec::new(),
        };
        b.sig = key.sign(&b.signing_bytes());
        b
    }

    fn unsigned(&self) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("type".to_owned(), Value::text(KEY_BUNDLE)),
            ("handle".to_owned(), Value::text(self.handle.clone())),
            ("alg".to_owned(), Value::text(self.alg.clone())),
            (
                "public_key".to_owned(),
                Value::bytes(self.public_key.clone()),
            ),
            (
                "hubs".to_owned(),
                Value::list(self.hubs.iter().map(|h| {
                    Value::map([
                        ("peer_id", Value::text(h.peer_id.clone())),
                        ("url", Value::text(h.url.clone())),
                    ])
                })),
            ),
            (
                "prev".to_owned(),
                self.prev.map_or(Value::Null, Value::link),
            ),
            ("time".to_owned(), Value::text(self.time.clone())),
        ])
    }

    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = SIGNING_DOMAIN.to_vec();
        crate::dagcbor::encode_into(&Value::Map(self.unsigned()), &mut out);
        out
    }

    pub fn to_block(&self) -> Result<Block> {
        let mut m = self.unsigned();
        m.insert("sig".into(), Value::bytes(self.sig.clone()));
        Block::encode("key bundle", &Value::Map(m)).map_err(|e| invalid(e.to_string()))
    }

    /// Decodes a bundle and checks its signature by its own key.
    pub fn decode(data: &[u8]) -> Result<KeyBundle> {
        let v = crate::dagcbor::decode(data).map_err(|e| invalid(e.to_string()))?;
        let m = v.as_map().ok_or_else(|| invalid("a key bundle is a map"))?;
        if m.get("type").and_then(Value::as_text) != Some(KEY_BUNDLE) {
            return Err(invalid("not a musehub key bundle"));
        }
        let text = |k: &str| {
            m.get(k)
                .and_then(Value::as_text)
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("the key bundle has no {k}")))
        };
        let bytes = |k: &str| {
            m.get(k)
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| invalid(format!("the key bundle has no {k}")))
        };
        let hubs = m
            .get("hubs")
            .and_then(Value::as_list)
            .ok_or_else(|| invalid("the key bundle has no hubs list"))?
            .iter()
            .map(|h| {
                let f = |k: &str| h.get(k).and_then(Value::as_text).map(str::to_owned);
                match (f("peer_id"), f("url")) {
                    (Some(peer_id), Some(url)) => Ok(Hub { peer_id, url }),
                    _ => Err(invalid("a hub needs peer_id and url")),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let prev = match m.get("prev") {
            Some(Value::Null) => None,
            Some(Value::Link(c)) => Some(*c),
            _ => return Err(invalid("the key bundle's prev is neither a link nor null")),
        };
        let b = KeyBundle {
            handle: text("handle")?,
            alg: text("alg")?,
            public_key: bytes("public_key")?,
            hubs,
            prev,
            time: text("time")?,
            sig: bytes("sig")?,
        };
        if b.alg != "ed25519" {
            return Err(invalid(format!(
                "key algorithm {:?} is not supported yet",
                b.alg
            )));
        }
        let key = ed25519::PublicKey::try_from_bytes(&b.public_key)
            .map_err(|e| invalid(format!("the bundle's public key: {e}")))?;
        if !key.verify(&b.signing_bytes(), &b.sig) {
            return Err(invalid("the key bundle's signature does not verify"));
        }
        if b.to_block()?.data != data {
            return Err(invalid("the key bundle is not in canonical form"));
        }
        Ok(b)
    }
}

/// The libp2p form of a key (for peer ids).
pub fn keypair(key: &ed25519::Keypair) -> Keypair {
    Keypair::from(key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_matches_the_rfc_8410_layout() {
        let key = ed25519::Keypair::generate();
        let pem = to_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"));
        let back = parse_private(&pem).unwrap();
        assert_eq!(back.public().to_bytes(), key.public().to_bytes());
        let hex_seed = hex::encode(key.secret().as_ref());
        assert_eq!(parse_private(&hex_seed).unwrap().public(), key.public());
        assert!(parse_private("hello").is_err());
        assert!(
            parse_private("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err()
        );
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/alice.key");
        let key = ed25519::Keypair::generate();
        write_key_file(&path, &key, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public(), key.public());
        let other = ed25519::Keypair::generate();
        let e = write_key_file(&path, &other, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("never overwritten"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn bundles_sign_verify_and_refuse_tampering() {
        let key = ed25519::Keypair::generate();
        let hubs = vec![Hub {
            peer_id: keypair(&key).public().to_peer_id().to_string(),
            url: "https://musehub.local".into(),
        }];
        let b = KeyBundle::new(&key, "alice", hubs, None, "2026-11-24T12:00:00Z".into());
        let block = b.to_block().unwrap();
        assert_eq!(KeyBundle::decode(&block.data).unwrap(), b);
        let mut forged = b.clone();
        forged.handle = "mallory".into();
        let forged = forged.to_block().unwrap();
        assert!(
            KeyBundle::decode(&forged.data)
                .unwrap_err()
                .to_string()
                .contains("does not verify")
        );
    }
}
