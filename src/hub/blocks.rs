//! Blocks by CID for IPFS peers (Bitswap, the trustless gateway, provider announcements):
//! only blocks the hub holds *and* that belong to something public (see
//! [`crate::db::blocks`]). Everything else looks absent, so private content cannot be probed.

use bytes::Bytes;
use cid::Cid;

use super::{Hub, Result};
use crate::cids::{self, DAG_CBOR, DAG_PB, Id, RAW, SHA2_256};
use crate::db::blocks;
use crate::db::content;
use crate::storage;

/// Multihash code of the identity "hash" (the digest is the block itself).
pub const IDENTITY: u64 = 0x00;

/// Largest identity digest accepted (IPIP-512).
pub const IDENTITY_MAX: usize = 128;

/// Objects listed per read transaction by [`Hub::public_roots`].
const ROOTS_PAGE: usize = 1000;

/// Where a CID's block comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKey {
    /// An identity CID: the block is the digest, nothing is looked up.
    Identity(Bytes),
    /// A sha2-256 CID: the block store key.
    Sha256(Id),
}

/// What the hub can say about a CID without looking anything up: its block store key, or why
/// no block of this hub can ever have it (codec other than raw, dag-pb or dag-cbor; hash other
/// than sha2-256 or identity; identity digest over [`IDENTITY_MAX`] bytes).
pub fn block_key(cid: &Cid) -> std::result::Result<BlockKey, cids::Error> {
    if !matches!(cid.codec(), RAW | DAG_PB | DAG_CBOR) {
        return Err(cids::Error::Unsupported(
            "codec must be raw (0x55), dag-pb (0x70) or dag-cbor (0x71)",
        ));
    }
    let mh = cid.hash();
    match mh.code() {
        IDENTITY if mh.size() as usize <= IDENTITY_MAX => {
            Ok(BlockKey::Identity(Bytes::copy_from_slice(mh.digest())))
        }
        IDENTITY => Err(cids::Error::Unsupported(
            "identity CIDs may carry at most 128 bytes",
        )),
        SHA2_256 => cids::digest_of(cid).map(BlockKey::Sha256),
        _ => Err(cids::Error::Unsupported(
            "hash function must be sha2-256 (or identity)",
        )),
    }
}

impl Hub {
    /// The bytes of the block `cid` names, when this hub holds it and it is public; `None`
    /// otherwise (absent, private, or a CID no block here can have). Identity CIDs (digest of
    /// at most 128 bytes) give their digest.
    ///
    /// Blocks were verified when written, so nothing is hashed here. One read transaction
    /// (visibility and the inline row together), plus a file read for large blocks.
    pub async fn public_block(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let digest = match block_key(cid) {
            Ok(BlockKey::Identity(b)) => return Ok(Some(b)),
            Ok(BlockKey::Sha256(d)) => d,
            Err(_) => return Ok(None),
        };
        let row = self
            .db
            .read(move |c| {
                if !blocks::public_block(c, &digest)? {
                    return Ok(None);
                }
                content::block(c, &digest)
            })
            .await?;
        match row {
            None => Ok(None),
            Some(content::BlockRow {
                inline: Some(data), ..
            }) => Ok(Some(Bytes::from(data))),
            Some(_) => {
                let store = self.store.clone();
                let data =
                    tokio::task::spawn_blocking(move || store.read_block_file_blocking(&digest))
                        .await
                        .map_err(|e| storage::Error::Io(std::io::Error::other(e.to_string())))??;
                Ok(data.map(Bytes::from))
            }
        }
    }

    /// Whether [`Hub::public_block`] would give bytes, without reading them (one indexed
    /// read).
    pub async fn has_public_block(&self, cid: &Cid) -> Result<bool> {
        let digest = match block_key(cid) {
            Ok(BlockKey::Identity(_)) => return Ok(true),
            Ok(BlockKey::Sha256(d)) => d,
            Err(_) => return Ok(false),
        };
        Ok(self
            .db
            .read(move |c| {
                Ok::<_, crate::db::Error>(
                    blocks::public_block(c, &digest)? && content::has_block(c, &digest)?,
                )
            })
            .await?)
    }

    /// The CIDs of every public object, for provider announcements: the raw CID of a
    /// single-block object's id, the UnixFS root of a larger one. Read a page at a time, so
    /// no read transaction stays open long.
    pub async fn public_roots(&self) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        let mut after: Option<Id> = None;
        loop {
            let page = self
                .db
                .read(move |c| blocks::public_roots(c, after.as_ref(), ROOTS_PAGE))
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(*last);
            let full = page.len() == ROOTS_PAGE;
            for (oid, root) in page {
                match root {
                    None => out.push(oid.raw_cid()),
                    Some(bytes) => match Cid::try_from(bytes.as_slice()) {
                        Ok(c) => out.push(c),
                        Err(e) => {
                            tracing::warn!(target: "musehub::hub", object = %oid, error = %e, "object root is not a CID; not announced");
                        }
                    },
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::multihash::Multihash;

    #[test]
    fn block_keys() {
        let probe = Cid::try_from("bafkqaaa").unwrap();
        assert_eq!(block_key(&probe), Ok(BlockKey::Identity(Bytes::new())));
        let hello = Id::of(b"hello world");
        assert_eq!(block_key(&hello.raw_cid()), Ok(BlockKey::Sha256(hello)));
        let v0 = Cid::try_from("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn").unwrap();
        assert!(matches!(block_key(&v0), Ok(BlockKey::Sha256(_))));
        // libp2p-key codec, sha2-512, identity over 128 bytes.
        let key = Cid::new_v1(0x72, Multihash::<64>::wrap(SHA2_256, &[0; 32]).unwrap());
        assert!(block_key(&key).is_err());
        let sha512 = Cid::new_v1(RAW, Multihash::<64>::wrap(0x13, &[0; 64]).unwrap());
        assert!(block_key(&sha512).is_err());
        // `cid::Cid` holds digests of up to 64 bytes, inside the 128-byte identity limit.
        let inline = Cid::new_v1(DAG_CBOR, Multihash::<64>::wrap(IDENTITY, &[7; 64]).unwrap());
        assert_eq!(
            block_key(&inline),
            Ok(BlockKey::Identity(Bytes::from(vec![7; 64])))
        );
    }
}
