//! Conversions between Muse object ids and IPFS CIDs.
//!
//! A Muse `object_id` is the bare lowercase hex SHA-256 of an object's bytes. An object of at
//! most one chunk (1 MiB) is stored as a single raw block, so its CIDv1 is fully determined by
//! the id: `0x01 0x55 0x12 0x20 ‖ digest`, written in base32-lower (`bafkrei…`). Larger objects
//! get a dag-pb root CID that [`crate::storage`] computes while importing and keeps beside the
//! id. This module only parses and formats; it never touches storage.

use cid::Cid;
use cid::multihash::Multihash;

/// Multicodec of a raw binary block.
pub const RAW: u64 = 0x55;
/// Multicodec of a dag-pb (UnixFS) block.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of a DAG-CBOR block.
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// A Muse id: 32 bytes of SHA-256, shown as 64 lowercase hex characters.
///
/// Object, snapshot and commit ids share this form; which one a value is depends on where it
/// came from. Parsing is strict (exactly `^[0-9a-f]{64}$`), the same rule the Muse CLI applies,
/// so no `sha256:` prefix, uppercase or whitespace gets in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

/// Why a string or CID was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("id must be 64 lowercase hex characters, got {len} characters")]
    IdLength { len: usize },
    #[error("id must be lowercase hex (0-9, a-f) without prefix")]
    IdCharacters,
    #[error("not a valid CID: {0}")]
    Cid(String),
    #[error("unsupported CID: {0}")]
    Unsupported(&'static str),
}

impl Id {
    /// Parses the strict Muse form. See [`Id`].
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(Error::IdLength {
                len: s.chars().count(),
            });
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Id(out))
    }

    /// The SHA-256 of `bytes`, which is what an object id is.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Id(sha2::Sha256::digest(bytes).into())
    }

    /// Builds an id from a 32-byte slice (as stored in SQLite).
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        Some(Id(b.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        out
    }

    /// The CIDv1 of this id read as the sha2-256 digest of one raw block.
    ///
    /// This is the object's IPFS CID exactly when the object is at most one chunk long.
    pub fn raw_cid(&self) -> Cid {
        cid_of(RAW, self)
    }
}

fn nibble(c: u8) -> Result<u8, Error> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(Error::IdCharacters),
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

impl std::str::FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Id::parse(s)
    }
}

/// A CIDv1 with the given codec over a sha2-256 digest.
pub fn cid_of(codec: u64, digest: &Id) -> Cid {
    let mh =
        Multihash::<64>::wrap(SHA2_256, &digest.0).expect("32 bytes fit in a 64-byte multihash");
    Cid::new_v1(codec, mh)
}

/// The sha2-256 digest a CID names, after checking that this hub can hold such a block:
/// CIDv1 (or v0), codec raw, dag-pb or dag-cbor, and a sha2-256 multihash.
pub fn digest_of(cid: &Cid) -> Result<Id, Error> {
    if !matches!(cid.codec(), RAW | DAG_PB | DAG_CBOR) {
        return Err(Error::Unsupported("codec must be raw, dag-pb or dag-cbor"));
    }
    let mh = cid.hash();
    if mh.code() != SHA2_256 || mh.size() != 32 {
        return Err(Error::Unsupported("hash must be sha2-256"));
    }
    Ok(Id::from_slice(mh.digest()).expect("size checked above"))
}

/// Parses a CID from text (any multibase, or a bare CIDv0) and checks it with [`digest_of`].
pub fn parse_cid(s: &str) -> Result<(Cid, Id), Error> {
    let cid = Cid::try_from(s).map_err(|e| Error::Cid(e.to_string()))?;
    let digest = digest_of(&cid)?;
    Ok((cid, digest))
}

/// The object id behind a raw-block CID, the inverse of [`Id::raw_cid`].
pub fn object_id_of_raw(cid: &Cid) -> Result<Id, Error> {
    if cid.codec() != RAW {
        return Err(Error::Unsupported(
            "only a raw-block CID maps to an object id by itself",
        ));
    }
    digest_of(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cid_matches_protocol_vectors() {
        let hello = Id::of(b"hello world");
        assert_eq!(
            hello.raw_cid().to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        let readme =
            Id::parse("a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447").unwrap();
        assert_eq!(readme, Id::of(b"hello world\n"));
        assert_eq!(
            readme.raw_cid().to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
        let empty = Id::of(b"");
        assert_eq!(
            empty.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            empty.raw_cid().to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn round_trips_id_and_cid() {
        let id = Id::of(&[0x4d, 0x54, 0x68, 0x64]);
        let text = id.raw_cid().to_string();
        let (cid, digest) = parse_cid(&text).unwrap();
        assert_eq!(digest, id);
        assert_eq!(object_id_of_raw(&cid).unwrap(), id);
        assert_eq!(Id::parse(&id.to_hex()).unwrap(), id);
    }

    #[test]
    fn rejects_malformed_ids() {
        let good = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
        assert!(Id::parse(good).is_ok());
        assert_eq!(Id::parse(&good.to_uppercase()), Err(Error::IdCharacters));
        assert_eq!(
            Id::parse(&format!("sha256:{good}")),
            Err(Error::IdLength { len: 71 })
        );
        assert_eq!(Id::parse(&good[..63]), Err(Error::IdLength { len: 63 }));
        assert_eq!(
            Id::parse(&format!("{}g", &good[..63])),
            Err(Error::IdCharacters)
        );
        assert_eq!(
            Id::parse(&format!(" {}", &good[..63])),
            Err(Error::IdCharacters)
        );
        assert_eq!(Id::parse(""), Err(Error::IdLength { len: 0 }));
    }

    #[test]
    fn rejects_unsupported_cids() {
        assert!(matches!(parse_cid("not-a-cid"), Err(Error::Cid(_))));
        // Identity multihash (the empty raw block inline): not something we store.
        assert!(matches!(parse_cid("bafkqaaa"), Err(Error::Unsupported(_))));
        // dag-pb root CIDs are accepted as CIDs but do not map to an object id alone.
        let (cid, _) =
            parse_cid("bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64").unwrap();
        assert!(object_id_of_raw(&cid).is_err());
    }
}
