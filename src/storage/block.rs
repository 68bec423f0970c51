//! Reading blocks by CID: the one read path for everything that serves blocks (Bitswap, the
//! gateway, CAR export, the fetcher). A [`Scope`] says which blocks the caller may have:
//! blocks of something public, or any block when the caller already holds proof of access
//! (a CAR planned from a readable repo).

use bytes::Bytes;
use cid::Cid;

use super::{Result, Store};
use crate::cids::{self, DAG_CBOR, DAG_PB, Id, RAW, SHA2_256};
use crate::db::{blocks, content};

/// Multihash code of the identity "hash" (the digest is the block itself).
pub const IDENTITY: u64 = 0x00;

/// Largest identity digest accepted (IPIP-512).
pub const IDENTITY_MAX: usize = 128;

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

/// Which blocks a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only blocks that belong to something public (see [`crate::db::blocks`]): everything
    /// else looks absent, so private content cannot be probed by CID.
    Public,
    /// Any block the hub holds. For callers that checked access already: a CAR or fetch
    /// planned from a readable repo, the hub's own fetcher and checks.
    Granted,
}

/// The digest to look up, or the answer when none is needed (an identity CID's bytes, or
/// `None` for a CID no block here can have).
fn digest_or_answer(cid: &Cid) -> std::result::Result<Id, Option<Bytes>> {
    match block_key(cid) {
        Ok(BlockKey::Sha256(d)) => Ok(d),
        Ok(BlockKey::Identity(b)) => Err(Some(b)),
        Err(_) => Err(None),
    }
}

/// The block's row, when the block is in `scope`.
fn row_in_scope(
    c: &rusqlite::Connection,
    digest: &Id,
    scope: Scope,
) -> crate::db::Result<Option<content::BlockRow>> {
    if scope == Scope::Public && !blocks::public_block(c, digest)? {
        return Ok(None);
    }
    content::block(c, digest)
}

impl Store {
    /// The bytes of the block `cid` names, when this hub holds it within `scope`; `None`
    /// otherwise (absent, out of scope, or a CID no block here can have). Identity CIDs give
    /// their digest. Blocks were verified when written, so nothing is hashed here.
    ///
    /// The block's row says where its bytes are (inline, a range of a whole object's file, or
    /// a file of its own), read in one transaction with the scope check; file bytes are read
    /// into a pooled buffer.
    pub async fn block(&self, cid: &Cid, scope: Scope) -> Result<Option<Bytes>> {
        let digest = match digest_or_answer(cid) {
            Ok(d) => d,
            Err(answer) => return Ok(answer),
        };
        if scope == Scope::Granted {
            // The caller checked access: row and bytes in one blocking hop. Public reads come
            // from the network and go through the database's read permits first.
            let store = self.clone();
            return tokio::task::spawn_blocking(move || store.read_block(&digest))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let row = self
            .db
            .read(move |c| row_in_scope(c, &digest, scope))
            .await?;
        match row {
            None => Ok(None),
            Some(content::BlockRow {
                inline: Some(data), ..
            }) => Ok(Some(Bytes::from(data))),
            Some(row) => {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.read_row(&digest, row))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
            }
        }
    }

    /// [`Store::block`] for a blocking thread.
    pub fn block_blocking(&self, cid: &Cid, scope: Scope) -> Result<Option<Bytes>> {
        let digest = match digest_or_answer(cid) {
            Ok(d) => d,
            Err(answer) => return Ok(answer),
        };
        match self.db.read_blocking(|c| row_in_scope(c, &digest, scope))? {
            None => Ok(None),
            Some(row) => self.read_row(&digest, row),
        }
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
