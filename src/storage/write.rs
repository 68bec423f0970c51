//! Writing one object as its bytes arrive: the [`ObjectWriter`].
//!
//! Every byte is hashed exactly twice (once for the Muse `object_id`, once for its 1 MiB
//! leaf's CID) and written once:
//!
//! - an object of at most [`INLINE_MAX`] bytes stays in memory and is written inline by the
//!   recording transaction;
//! - an object of at most one chunk is one raw block, a file of its own;
//! - a larger object is written whole, in order, into one temp file, fsynced once and renamed
//!   to `objects/<2 hex>/<object_id>`; each leaf becomes a row naming its range of that file.
//!
//! The object hash runs on the task that receives the bytes, while a blocking thread hashes
//! the leaves and writes the file, a batch of pieces at a time, so on two cores the two hashes
//! and the write overlap. The pieces are the ones the network delivered
//! ([`ObjectWriter::write_bytes`]), written from where they lie: the only copy of a byte is the
//! kernel's, into the page cache. A writer holds at most two batches ([`BATCH_BYTES`] each),
//! whatever the leaf size, so memory stays small with many uploads at once.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use sha2::{Digest, Sha256};

use super::{
    Error, INLINE_MAX, Imported, MAX_OBJECT_BYTES, Result, StagedBlock, Store, digest_of, keep_as,
    tempfile_in, unixfs,
};
use crate::cids::{self, Id, RAW};
use crate::db::content;

/// Bytes of pieces handed to the blocking thread at a time. One batch is hashed and written
/// while the next arrives; the network's buffers are let go as each batch is written.
const BATCH_BYTES: usize = 256 * 1024;

/// A leaf hashed and written: its digest, length and offset in the object's file.
type Leaf = (Id, u64, u64);

/// The leaf hash in progress and where the file's next byte goes; it moves to the blocking
/// thread with each batch and comes back with the leaves the batch completed.
#[derive(Debug)]
struct Leaves {
    hasher: Sha256,
    /// Offset of the leaf being hashed.
    start: u64,
    /// Its bytes hashed so far.
    len: usize,
    chunk: usize,
    file: Arc<std::fs::File>,
}

impl Leaves {
    /// Writes `pieces` at the end of the file and hashes them into leaves.
    fn take(&mut self, pieces: &[Bytes]) -> std::io::Result<Vec<Leaf>> {
        let mut done = Vec::new();
        for piece in pieces {
            self.file
                .write_all_at(piece, self.start + self.len as u64)?;
            let mut rest = &piece[..];
            while !rest.is_empty() {
                let n = (self.chunk - self.len).min(rest.len());
                self.hasher.update(&rest[..n]);
                self.len += n;
                rest = &rest[n..];
                if self.len == self.chunk {
                    done.push(self.close());
                }
            }
        }
        Ok(done)
    }

    /// Ends the leaf being hashed (the last one may be short).
    fn close(&mut self) -> Leaf {
        let digest = Id(self.hasher.finalize_reset().into());
        let leaf = (digest, self.len as u64, self.start);
        self.start += self.len as u64;
        self.len = 0;
        leaf
    }

    /// Bytes written so far.
    fn written(&self) -> u64 {
        self.start + self.len as u64
    }
}

/// Where the [`Leaves`] are: here, or on the blocking thread with a batch.
#[derive(Debug)]
enum Lane {
    Idle(Leaves),
    Busy(tokio::task::JoinHandle<(Leaves, std::io::Result<Vec<Leaf>>)>),
    /// Lost with a failed job.
    Broken,
}

/// The temp file a large object is written into until it is complete and checked.
#[derive(Debug)]
struct WholeFile {
    path: PathBuf,
    file: Arc<std::fs::File>,
}

/// Imports one object as its bytes arrive. See [`Store::writer`].
#[derive(Debug)]
pub struct ObjectWriter {
    store: Store,
    expected: Id,
    size: u64,
    received: u64,
    hasher: Sha256,
    /// A small object's bytes (one chunk at most).
    buf: Vec<u8>,
    /// Pieces not yet handed to the lane, as they arrived (not copied together), and their
    /// length.
    batch: Vec<Bytes>,
    batch_len: usize,
    tree: Option<unixfs::TreeBuilder>,
    whole: Option<WholeFile>,
    lane: Option<Lane>,
    staged: Vec<StagedBlock>,
    dirs: BTreeSet<PathBuf>,
    /// The hub holds the object already: its bytes are only hashed.
    known: bool,
}

impl Store {
    /// Starts importing an object of `size` bytes that must hash to `expected`. When the hub
    /// already holds it, its bytes are only hashed (to check them), not stored again.
    pub async fn writer(&self, expected: Id, size: u64) -> Result<ObjectWriter> {
        let known = self
            .db
            .read(move |c| content::object(c, &expected))
            .await?
            .is_some();
        if size > MAX_OBJECT_BYTES {
            return Err(Error::TooLarge {
                id: expected,
                size,
                max: MAX_OBJECT_BYTES,
            });
        }
        let chunk = self.profile.chunk_size;
        let large = size > chunk as u64 && !known;
        let whole = if large {
            let tmp = self.dir.join("tmp");
            let (path, file) = tokio::task::spawn_blocking(move || tempfile_in(&tmp))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            Some(WholeFile {
                path,
                file: Arc::new(file),
            })
        } else {
            None
        };
        Ok(ObjectWriter {
            store: self.clone(),
            expected,
            size,
            received: 0,
            hasher: Sha256::new(),
            buf: if known || large {
                Vec::new()
            } else {
                Vec::with_capacity(size as usize)
            },
            batch: Vec::new(),
            batch_len: 0,
            tree: large.then(|| unixfs::TreeBuilder::new(self.profile)),
            lane: whole.as_ref().map(|w| {
                Lane::Idle(Leaves {
                    hasher: Sha256::new(),
                    start: 0,
                    len: 0,
                    chunk,
                    file: w.file.clone(),
                })
            }),
            whole,
            staged: Vec::new(),
            dirs: BTreeSet::new(),
            known,
        })
    }
}

impl ObjectWriter {
    /// Feeds the next bytes of the object.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.tree.is_some() {
            return self.write_bytes(Bytes::copy_from_slice(data)).await;
        }
        self.write_small(data);
        Ok(())
    }

    /// A small (or already held) object's bytes: hashed, and kept for the inline row or
    /// its one file.
    fn write_small(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        self.hasher.update(data);
        if !self.known {
            self.buf.extend_from_slice(data);
        }
    }

    /// Feeds the next bytes of the object without copying them: a large object's bytes are
    /// written from the pieces as they came.
    pub async fn write_bytes(&mut self, data: Bytes) -> Result<()> {
        if self.tree.is_none() {
            self.write_small(&data);
            return Ok(());
        }
        self.received += data.len() as u64;
        self.hasher.update(&data);
        self.batch_len += data.len();
        self.batch.push(data);
        if self.batch_len >= BATCH_BYTES {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Hands the pending pieces to the lane, once the batch before them is done.
    async fn hand_over(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut leaves = self.settle().await?;
        let pieces = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        self.lane = Some(Lane::Busy(tokio::task::spawn_blocking(move || {
            let done = leaves.take(&pieces);
            (leaves, done)
        })));
        Ok(())
    }

    /// Waits for the lane's batch, records the leaves it completed, and takes the leaf state
    /// back (the lane is empty until it is handed over again).
    async fn settle(&mut self) -> Result<Leaves> {
        let (leaves, done) = match self.lane.take() {
            Some(Lane::Idle(l)) => (l, Vec::new()),
            Some(Lane::Busy(job)) => {
                self.lane = Some(Lane::Broken);
                let (l, done) = job
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                (l, done?)
            }
            Some(Lane::Broken) | None => {
                return Err(std::io::Error::other("an earlier write of this object failed").into());
            }
        };
        for leaf in done {
            self.add_leaf(leaf).await?;
        }
        Ok(leaves)
    }

    /// Waits for every byte handed over so far to be written; the lane is idle after.
    async fn drain(&mut self) -> Result<u64> {
        self.hand_over().await?;
        let leaves = self.settle().await?;
        let written = leaves.written();
        self.lane = Some(Lane::Idle(leaves));
        Ok(written)
    }

    async fn add_leaf(&mut self, (digest, len, offset): Leaf) -> Result<()> {
        self.staged.push(StagedBlock {
            digest,
            size: len,
            inline: None,
            offset: Some(offset),
        });
        let tree = self
            .tree
            .as_mut()
            .expect("leaves are written only for trees");
        let nodes = tree.push_leaf(cids::cid_of(RAW, &digest), len);
        self.stage_nodes(nodes).await
    }

    async fn stage_nodes(&mut self, nodes: Vec<unixfs::Block>) -> Result<()> {
        for node in nodes {
            self.stage(digest_of(&node.cid)?, node.data).await?;
        }
        Ok(())
    }

    /// Stages a block of its own: inline when small, else a durable file.
    async fn stage(&mut self, digest: Id, data: Vec<u8>) -> Result<()> {
        let size = data.len() as u64;
        if data.len() <= INLINE_MAX {
            self.staged.push(StagedBlock {
                digest,
                size,
                inline: Some(data),
                offset: None,
            });
        } else {
            let store = self.store.clone();
            let dir = tokio::task::spawn_blocking(move || store.write_file(&digest, &data))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
            self.dirs.insert(dir);
            self.staged.push(StagedBlock {
                digest,
                size,
                inline: None,
                offset: None,
            });
        }
        Ok(())
    }

    /// Bytes this writer has taken already, read back from its file: a leaf that repeats
    /// within one object comes once in a CAR. `None` unless the range lies within the bytes
    /// taken so far (a large object only).
    pub async fn reread(&mut self, offset: u64, len: usize) -> Result<Option<Bytes>> {
        if self.whole.is_none() {
            return Ok(None);
        }
        if offset + len as u64 > self.drain().await? {
            return Ok(None);
        }
        let Some(whole) = &self.whole else {
            return Ok(None);
        };
        let file = whole.file.clone();
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset).map(|()| buf)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(Some(Bytes::from(data)))
    }

    /// Checks length and hash and finishes the tree; a large object's file is made durable
    /// under its id. Returns the object for an [`super::Ingest`] session to record.
    pub async fn finish(mut self) -> Result<super::Staged> {
        let actual = Id(self.hasher.clone().finalize().into());
        if self.received != self.size || actual != self.expected {
            // Wait for the lane so no task outlives the request; the temp file goes with
            // the writer.
            if let Some(Lane::Busy(job)) = self.lane.take() {
                let _ = job.await;
            }
            return Err(Error::HashMismatch {
                expected: self.expected,
                actual,
            });
        }
        let object_id = self.expected;
        if self.known {
            let imported = Imported {
                object_id,
                size: self.size,
                root: None,
                blocks: Vec::new(),
                new: false,
            };
            return Ok(super::Staged {
                imported,
                dirs: BTreeSet::new(),
            });
        }
        let root = if self.tree.is_some() {
            self.hand_over().await?;
            let mut leaves = self.settle().await?;
            if leaves.len > 0 {
                let last = leaves.close();
                self.add_leaf(last).await?;
            }
            let tree = self.tree.take().expect("checked above");
            let (root, nodes, total) = tree.finish();
            debug_assert_eq!(total, self.size);
            self.stage_nodes(nodes).await?;
            self.keep_whole_file(object_id).await?;
            Some(root)
        } else {
            let data = std::mem::take(&mut self.buf);
            self.stage(object_id, data).await?;
            None
        };
        let imported = Imported {
            object_id,
            size: self.size,
            root,
            blocks: std::mem::take(&mut self.staged),
            new: true,
        };
        Ok(super::Staged {
            imported,
            dirs: std::mem::take(&mut self.dirs),
        })
    }

    /// Fsyncs the complete object's temp file and renames it to its place; its directory is
    /// synced with the session's batch, before any row names it.
    async fn keep_whole_file(&mut self, object_id: Id) -> Result<()> {
        let Some(whole) = self.whole.take() else {
            return Ok(());
        };
        let path = self.store.object_path(&object_id);
        let dir = tokio::task::spawn_blocking(move || keep_as(&whole.path, &whole.file, &path))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.dirs.insert(dir);
        Ok(())
    }
}

impl Drop for ObjectWriter {
    /// A writer dropped before [`ObjectWriter::finish`] kept its object (a broken upload, a
    /// hash mismatch) removes its temp file; a crash leaves it for [`Store::clear_temp`].
    fn drop(&mut self) {
        if let Some(whole) = self.whole.take() {
            let _ = std::fs::remove_file(&whole.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, i64) {
        let (dir, store, repos) = crate::storage::test_store(&["song"]);
        (dir, store, repos[0])
    }

    fn temp_files(store: &Store) -> usize {
        std::fs::read_dir(store.dir.join("tmp")).unwrap().count()
    }

    /// Every file under the block directory except `tmp/`, as paths relative to it.
    fn files(store: &Store) -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&store.dir, &store.dir, &mut out);
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_large_object_is_one_file_and_its_leaves_are_ranges_of_it() {
        let (_dir, store, repo) = store();
        let data: Vec<u8> = (0..5 * (1 << 20) / 2 + 7)
            .map(|i| (i % 253) as u8)
            .collect();
        let oid = Id::of(&data);
        let mut ingest = store.ingest(repo);
        // Fed in odd pieces, as a network body arrives.
        let mut w = store.writer(oid, data.len() as u64).await.unwrap();
        for piece in data.chunks(300_001) {
            w.write(piece).await.unwrap();
        }
        ingest.add(w.finish().await.unwrap()).await.unwrap();
        ingest.commit().await.unwrap();

        let hex = oid.to_hex();
        assert_eq!(
            files(&store),
            vec![format!("objects/{}/{hex}", &hex[..2])],
            "one file, no leaf files (the dag-pb root is inline)"
        );
        assert_eq!(std::fs::read(store.object_path(&oid)).unwrap(), data);
        assert_eq!(temp_files(&store), 0);
        let row = store
            .db
            .read_blocking(|c| content::object(c, &oid))
            .unwrap()
            .unwrap();
        assert!(row.whole && row.root.is_some());
        let (_, blocks) = unixfs::import_bytes(unixfs::UNIXFS_V1_2025, &data);
        let mut at = 0u64;
        for b in blocks.iter().filter(|b| b.cid.codec() == RAW) {
            let d = cids::digest_of(&b.cid).unwrap();
            let r = store
                .db
                .read_blocking(|c| content::block(c, &d))
                .unwrap()
                .unwrap();
            assert_eq!((r.extent, r.size), (Some((oid, at)), b.data.len() as u64));
            at += r.size;
        }
        assert_eq!(at, data.len() as u64);
        store.verify_object_blocking(&oid, &row).unwrap();
    }

    #[tokio::test]
    async fn a_wrong_or_abandoned_upload_leaves_no_file() {
        let (_dir, store, _) = store();
        let data = vec![7u8; 3 << 20];
        let wrong = Id::of(b"not these bytes");
        let mut w = store.writer(wrong, data.len() as u64).await.unwrap();
        w.write(&data).await.unwrap();
        assert!(matches!(w.finish().await, Err(Error::HashMismatch { .. })));
        assert_eq!(temp_files(&store), 0);

        let mut w = store
            .writer(Id::of(&data), data.len() as u64)
            .await
            .unwrap();
        w.write(&data[..2 << 20]).await.unwrap();
        assert_eq!(temp_files(&store), 1, "written as it arrives");
        drop(w);
        assert_eq!(temp_files(&store), 0);
        assert!(files(&store).is_empty());
    }
}
