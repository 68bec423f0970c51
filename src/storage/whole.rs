//! Converting objects recorded before schema 9 (a file per 1 MiB leaf) to objects stored
//! whole (one file per object, leaves as ranges of it).
//!
//! One object at a time: its bytes are read through its tree and checked against its id,
//! written to a temp file, fsynced and renamed to the object's place, its directory synced;
//! then one transaction marks the object whole and points its leaves' rows at their ranges;
//! then the leaves' own files are removed. A crash at any point leaves either the old layout
//! (a temp file or an unrecorded object file, both harmless) or the new one with some leaf
//! files left over, which the final sweep removes. So the conversion can stop anywhere and
//! start again, and the disk never holds more than one object twice.
//!
//! Reads keep working throughout: every read goes by the block's row, and a read that loses
//! a leaf file to the conversion looks the row up again ([`Store::read_block`]).

use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Error, Result, Store, digest_of, keep_as, sync_dirs, tempfile_in};
use crate::cids::Id;
use crate::db::{blocks, content};

/// The name of the `pending_backfills` row for this conversion (see migration 9).
const WHOLE_OBJECTS: &str = "whole_objects";

/// Objects listed per database read.
const PAGE: usize = 64;

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What a conversion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Converted {
    /// Objects now stored whole.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Leaf files removed.
    pub leaf_files_removed: u64,
    /// Objects that could not be converted (a missing or damaged leaf; `doctor` names them).
    /// They stay readable as they were, and the next start tries again.
    pub failed: u64,
}

impl Store {
    /// Converts every object recorded before schema 9 to an object stored whole, then
    /// removes the leaf files that are no longer used. Does nothing once done. Only the
    /// server runs it, at start, beside the requests it serves (blocking: run it on a
    /// blocking thread). It stops between two objects once `stop` is cancelled, to go on at
    /// the next start. See the module docs.
    pub fn store_whole_objects(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Converted> {
        let mut done = Converted::default();
        if !self
            .db
            .read_blocking(|c| blocks::backfill_pending(c, WHOLE_OBJECTS))?
        {
            return Ok(done);
        }
        let (count, total) = self.db.read_blocking(content::objects_in_blocks)?;
        if count > 0 {
            tracing::info!(target: "musehub::storage", objects = count, bytes = total, "storing older objects whole (one file each instead of one per MiB); the hub serves meanwhile");
        }
        let started = Instant::now();
        let mut last_report = started;
        let mut after = Id([0; 32]);
        loop {
            let page = self
                .db
                .read_blocking(|c| content::objects_in_blocks_after(c, &after, PAGE))?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (oid, row) in page {
                if stop.is_cancelled() {
                    tracing::info!(target: "musehub::storage", done = done.objects, of = count, "stopped storing older objects whole; the next start goes on");
                    return Ok(done);
                }
                match self.convert_one(&oid, &row) {
                    Ok(removed) => {
                        done.objects += 1;
                        done.bytes += row.size;
                        done.leaf_files_removed += removed;
                    }
                    Err(e) => {
                        done.failed += 1;
                        tracing::warn!(target: "musehub::storage", object = %oid, error = %e, "could not store this object whole; it stays as it was (musehub doctor checks it)");
                    }
                }
                if last_report.elapsed() >= PROGRESS_EVERY {
                    last_report = Instant::now();
                    tracing::info!(target: "musehub::storage", done = done.objects, of = count, bytes = done.bytes, "storing older objects whole");
                }
            }
        }
        done.leaf_files_removed += self.sweep_leaf_files()?;
        if done.failed == 0 {
            self.db
                .write_blocking(|tx| blocks::backfill_done(tx, WHOLE_OBJECTS))?;
        }
        if count > 0 {
            tracing::info!(target: "musehub::storage", objects = done.objects, bytes = done.bytes, leaf_files_removed = done.leaf_files_removed, failed = done.failed, seconds = started.elapsed().as_secs(), "stored older objects whole");
        }
        Ok(done)
    }

    /// Converts one object; returns how many leaf files it removed.
    fn convert_one(&self, oid: &Id, row: &content::ObjectRow) -> Result<u64> {
        let leaves = self.tree_leaves(oid, row)?;
        let (tmp, mut file) = tempfile_in(&self.dir.join("tmp"))?;
        let written = (|| {
            let mut h = Sha256::new();
            let mut at = 0u64;
            for (cid, offset) in &leaves {
                if *offset != at {
                    return Err(Error::BadBlock {
                        cid: cid.to_string(),
                        why: format!("the tree puts it at byte {offset}, after {at} bytes"),
                    });
                }
                let bytes = self.read_leaf(cid)?;
                h.update(&bytes);
                file.write_all(&bytes)?;
                at += bytes.len() as u64;
            }
            let actual = Id(h.finalize().into());
            if actual != *oid || at != row.size {
                return Err(Error::HashMismatch {
                    expected: *oid,
                    actual,
                });
            }
            let parent = keep_as(&tmp, &file, &self.object_path(oid))?;
            sync_dirs(&std::collections::BTreeSet::from([parent]))?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let moved = leaves
            .iter()
            .map(|(cid, offset)| Ok((digest_of(cid)?, *offset)))
            .collect::<Result<Vec<_>>>()?;
        let oid = *oid;
        let freed = self.db.write_blocking(move |tx| {
            content::set_whole(tx, &oid)?;
            let mut freed = Vec::new();
            for (digest, offset) in &moved {
                if content::move_to_extent(tx, digest, &oid, *offset)? {
                    freed.push(*digest);
                }
            }
            Ok::<_, Error>(freed)
        })?;
        let mut removed = 0;
        for digest in freed {
            removed += u64::from(self.remove_block_file(&digest)?);
        }
        Ok(removed)
    }

    /// Removes the own files of blocks whose rows name a range of a whole object (left by a
    /// conversion that stopped between its transaction and its clean-up).
    fn sweep_leaf_files(&self) -> Result<u64> {
        let mut removed = 0;
        let mut after = Id([0; 32]);
        loop {
            let page = self
                .db
                .read_blocking(|c| content::extent_blocks_after(c, &after, 1024))?;
            let Some(last) = page.last() else {
                return Ok(removed);
            };
            after = *last;
            for digest in page {
                removed += u64::from(self.remove_block_file(&digest)?);
            }
        }
    }

    /// Removes a block's own file; true when there was one.
    fn remove_block_file(&self, digest: &Id) -> Result<bool> {
        match std::fs::remove_file(self.block_path(digest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids;
    use crate::storage::{Scope, unixfs};
    use futures_util::TryStreamExt;
    use tokio_util::sync::CancellationToken;

    fn store() -> (tempfile::TempDir, Store, i64) {
        let (dir, store, repos) = crate::storage::test_store(&["song"]);
        (dir, store, repos[0])
    }

    fn bytes(n: usize, salt: u8) -> Vec<u8> {
        (0..n).map(|i| ((i * 31 + i / 4099) as u8) ^ salt).collect()
    }

    /// Records an object the way hubs before schema 9 did: a file per leaf, dag-pb nodes
    /// inline, the object not whole.
    fn record_old_layout(store: &Store, repo: i64, data: &[u8]) -> (Id, Vec<Id>) {
        let oid = Id::of(data);
        let (root, blocks) = unixfs::import_bytes(unixfs::UNIXFS_V1_2025, data);
        let mut leaves = Vec::new();
        let mut rows = Vec::new();
        for b in &blocks {
            let digest = cids::digest_of(&b.cid).unwrap();
            if b.cid.codec() == cids::RAW {
                store.write_file(&digest, &b.data).unwrap();
                leaves.push(digest);
                rows.push((digest, b.data.len() as u64, None));
            } else {
                rows.push((digest, b.data.len() as u64, Some(b.data.clone())));
            }
        }
        let size = data.len() as u64;
        store
            .db
            .write_blocking(move |tx| {
                for (d, n, inline) in &rows {
                    content::put_block(tx, d, *n, inline.as_deref())?;
                }
                content::put_object(tx, &oid, size, Some(&root.to_bytes()), false)?;
                blocks::add_object_blocks(tx, &oid, rows.iter().map(|r| &r.0))?;
                content::add_repo_object(tx, repo, &oid)?;
                Ok::<_, crate::db::Error>(())
            })
            .unwrap();
        (oid, leaves)
    }

    async fn read_all(store: &Store, oid: Id) -> Vec<u8> {
        let row = store
            .db
            .read(move |c| content::object(c, &oid))
            .await
            .unwrap()
            .unwrap();
        let chunks: Vec<bytes::Bytes> = store.object_stream(oid, row).try_collect().await.unwrap();
        chunks.concat()
    }

    fn row(store: &Store, oid: Id) -> content::ObjectRow {
        store
            .db
            .read_blocking(|c| content::object(c, &oid))
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn older_objects_are_stored_whole_and_read_the_same() {
        let (_dir, store, repo) = store();
        let a = bytes(3 * (1 << 20) + 12_345, 1);
        let b = bytes(2 * (1 << 20), 2);
        let (oa, leaves_a) = record_old_layout(&store, repo, &a);
        let (ob, leaves_b) = record_old_layout(&store, repo, &b);
        assert_eq!(read_all(&store, oa).await, a, "the old layout reads");
        assert!(!row(&store, oa).whole);
        for d in leaves_a.iter().chain(&leaves_b) {
            assert!(store.block_path(d).exists());
        }

        let done = store
            .store_whole_objects(&CancellationToken::new())
            .unwrap();
        assert_eq!(
            done,
            Converted {
                objects: 2,
                bytes: (a.len() + b.len()) as u64,
                leaf_files_removed: (leaves_a.len() + leaves_b.len()) as u64,
                failed: 0,
            }
        );
        for (oid, data, leaves) in [(oa, &a, &leaves_a), (ob, &b, &leaves_b)] {
            assert!(row(&store, oid).whole);
            assert!(store.object_path(&oid).exists());
            assert_eq!(&read_all(&store, oid).await, data);
            store
                .verify_object_blocking(&oid, &row(&store, oid))
                .unwrap();
            let mut at = 0usize;
            for d in leaves {
                assert!(!store.block_path(d).exists(), "the leaf file is gone");
                let r = store
                    .db
                    .read_blocking(|c| content::block(c, d))
                    .unwrap()
                    .unwrap();
                assert_eq!(r.extent, Some((oid, at as u64)));
                store.verify_block_blocking(d, r.clone()).unwrap();
                // Leaves by CID, public and granted, are the same bytes as before.
                let want = &data[at..at + r.size as usize];
                for scope in [Scope::Public, Scope::Granted] {
                    let got = store
                        .block(&cids::cid_of(cids::RAW, d), scope)
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(&got[..], want);
                }
                at += r.size as usize;
            }
        }
        // A range across a leaf boundary.
        let r = row(&store, oa);
        let start = (1 << 20) - 10;
        let got: Vec<bytes::Bytes> = store
            .object_range_stream(oa, r, start, start + 99)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), a[start as usize..start as usize + 100]);

        // Done once: the marker is gone, a second run finds nothing.
        assert_eq!(
            store
                .store_whole_objects(&CancellationToken::new())
                .unwrap(),
            Converted::default()
        );
        assert!(
            !store
                .db
                .read_blocking(|c| blocks::backfill_pending(c, WHOLE_OBJECTS))
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_stopped_or_interrupted_conversion_goes_on_at_the_next_start() {
        let (_dir, store, repo) = store();
        let a = bytes(2 * (1 << 20) + 1, 3);
        let b = bytes(2 * (1 << 20) + 2, 4);
        let (oa, leaves_a) = record_old_layout(&store, repo, &a);
        let (ob, _) = record_old_layout(&store, repo, &b);

        // Asked to stop before the first object: nothing changes, the work stays pending.
        let stop = CancellationToken::new();
        stop.cancel();
        assert_eq!(store.store_whole_objects(&stop).unwrap().objects, 0);
        assert!(!row(&store, oa).whole && !row(&store, ob).whole);

        // A crash after the transaction but before the leaf files were removed: put one
        // back by hand, as a crash would leave it.
        store.convert_one(&oa, &row(&store, oa)).unwrap();
        store.write_file(&leaves_a[0], &a[..1 << 20]).unwrap();
        // A crash while writing a temp file leaves only the temp file.
        std::fs::write(store.dir.join("tmp").join("999-0"), b"half an object").unwrap();
        assert_eq!(store.clear_temp().unwrap(), 1);

        let done = store
            .store_whole_objects(&CancellationToken::new())
            .unwrap();
        assert_eq!(done.objects, 1, "only the object still in blocks");
        assert!(
            !store.block_path(&leaves_a[0]).exists(),
            "the sweep removed it"
        );
        assert_eq!(read_all(&store, oa).await, a);
        assert_eq!(read_all(&store, ob).await, b);
    }

    #[tokio::test]
    async fn an_object_with_a_lost_leaf_stays_as_it_was_and_is_tried_again() {
        let (_dir, store, repo) = store();
        let a = bytes(2 * (1 << 20) + 5, 5);
        let (oa, leaves) = record_old_layout(&store, repo, &a);
        std::fs::remove_file(store.block_path(&leaves[1])).unwrap();
        let done = store
            .store_whole_objects(&CancellationToken::new())
            .unwrap();
        assert_eq!(done.failed, 1);
        assert!(!row(&store, oa).whole);
        assert!(!store.object_path(&oa).exists());
        assert_eq!(std::fs::read_dir(store.dir.join("tmp")).unwrap().count(), 0);
        assert!(
            store
                .db
                .read_blocking(|c| blocks::backfill_pending(c, WHOLE_OBJECTS))
                .unwrap(),
            "the next start tries again"
        );
        // The leaf comes back (say, from a peer): the next run converts it.
        store.write_file(&leaves[1], &a[1 << 20..2 << 20]).unwrap();
        assert_eq!(
            store
                .store_whole_objects(&CancellationToken::new())
                .unwrap()
                .objects,
            1
        );
        assert_eq!(read_all(&store, oa).await, a);
    }
}
