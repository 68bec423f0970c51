//! Blocks by CID for IPFS peers (Bitswap, the trustless gateway, provider announcements):
//! only blocks the hub holds *and* that belong to something public (see
//! [`crate::db::blocks`]). Everything else looks absent, so private content cannot be probed.

use bytes::Bytes;
use cid::Cid;

use super::{Hub, Result};
use crate::cids::Id;
use crate::db::blocks;
use crate::db::content;
use crate::storage::{BlockKey, Scope, block_key};

/// Objects listed per read transaction by [`Hub::public_roots`].
const ROOTS_PAGE: usize = 1000;

impl Hub {
    /// The bytes of the block `cid` names, when this hub holds it and it is public; `None`
    /// otherwise (absent, private, or a CID no block here can have). Identity CIDs (digest of
    /// at most 128 bytes) give their digest.
    ///
    /// Blocks were verified when written, so nothing is hashed here. One read transaction
    /// (visibility and the inline row together), plus a file read for large blocks.
    pub async fn public_block(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.store.block(cid, Scope::Public).await?)
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
