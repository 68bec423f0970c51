//! Storing single blocks that arrived from the network (Bitswap, a gateway, later a CAR),
//! already verified against their CIDs by the caller.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{INLINE_MAX, Result, Store, sync_dirs};
use crate::cids::Id;
use crate::db::content;

impl Store {
    /// Stores one block under the SHA-256 `digest` of `data` (the caller checked it). Small
    /// blocks go inline; larger ones become a durable file before their row commits.
    /// Idempotent. The block belongs to no repo, so it is not served onward.
    pub async fn put_block(&self, digest: Id, data: Bytes) -> Result<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.put_block_blocking(digest, &data))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    fn put_block_blocking(&self, digest: Id, data: &[u8]) -> Result<()> {
        let size = data.len() as u64;
        if data.len() <= INLINE_MAX {
            return self.db.write_blocking(|c| {
                Ok::<_, super::Error>(content::put_block(c, &digest, size, Some(data))?)
            });
        }
        let dir = self.write_file(&digest, data)?;
        sync_dirs(&BTreeSet::from([dir]))?;
        self.db
            .write_blocking(|c| Ok::<_, super::Error>(content::put_block(c, &digest, size, None)?))
    }
}

impl Store {
    /// Makes blocks durable as files ahead of the transaction that will record them (see
    /// [`record_staged`]); blocks up to [`INLINE_MAX`] are left for that transaction
    /// to write inline. Returns nothing to undo: an unrecorded file is an orphan.
    pub async fn stage_files(&self, blocks: Vec<(Id, Bytes)>) -> Result<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut dirs = BTreeSet::new();
            for (digest, data) in &blocks {
                if data.len() > INLINE_MAX {
                    dirs.insert(store.write_file(digest, data)?);
                }
            }
            sync_dirs(&dirs)?;
            Ok::<_, super::Error>(())
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Records a block staged by [`Store::stage_files`] (a file when over [`INLINE_MAX`], else
/// inline) in the caller's transaction.
pub fn record_staged(
    conn: &rusqlite::Connection,
    digest: &Id,
    data: &[u8],
) -> crate::db::Result<()> {
    let inline = (data.len() <= INLINE_MAX).then_some(data);
    content::put_block(conn, digest, data.len() as u64, inline)
}
