//! The content-addressed block store.
//!
//! Every block is kept once, keyed by the SHA-256 of its bytes. Blocks up to [`INLINE_MAX`]
//! bytes live inline in SQLite (written in the same transaction as the rows that name them);
//! larger ones are files `blocks/<2 hex>/<64 hex>`, written to a temp file, fsynced, renamed
//! and their directory fsynced before any row that names them is committed. So a crash can
//! leave an orphan file, never a row pointing at missing bytes.
//!
//! Objects are imported with the `unixfs-v1-2025` profile ([`unixfs::UNIXFS_V1_2025`]): an
//! object of at most one chunk is a single raw block whose digest is its `object_id`; a larger
//! one becomes 1 MiB raw leaves plus a balanced dag-pb tree whose root CID is kept beside the
//! `object_id`. Such an object is stored whole, as the bytes the musician committed: one file
//! `blocks/objects/<2 hex>/<object_id>`, written once, and each leaf's row names its range of
//! that file (schema 9). So every byte is written once, a whole-object read is one
//! sequential file, and a leaf asked for by CID is one ranged read. Objects recorded before
//! schema 9 kept a file per leaf; [`Store::store_whole_objects`] converts them.
//!
//! - [`write`]: the object writer (two hashes per byte, one write).
//! - [`ingest`]: the session that records staged objects, durable before recorded.
//! - [`read`]: block and object reads, ranges, the `doctor` checks.
//! - [`block`]: blocks by CID within a [`Scope`].  [`put`]: single blocks from the network.
//! - [`whole`]: the one-time conversion of older objects.
//!
//! SQL stays in [`crate::db`]; HTTP and msgpack stay out of here.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cid::Cid;

use crate::cids::{self, DAG_PB, Id};
use crate::db::{self, Db};

mod block;
mod ingest;
mod put;
mod read;
pub mod unixfs;
mod whole;
mod write;
pub use block::{BlockKey, IDENTITY, IDENTITY_MAX, Scope, block_key};
pub use ingest::{Ingest, Ingested, Staged};
pub use put::record_staged;
pub use read::ByteStream;
pub use whole::Converted;
pub use write::ObjectWriter;

/// Blocks up to this size are stored inline in SQLite rather than as files.
///
/// Many files of a music repo are small (MIDI, lyrics, project metadata). As files, each costs
/// a temp file, two fsyncs and a rename; inline, a whole push/objects batch shares one commit.
/// `musehub bench` prints both rates; 64 KiB is well inside the range where inline wins.
pub const INLINE_MAX: usize = 64 * 1024;

/// Largest object the hub accepts: the Muse CLI's own `MAX_FILE_BYTES`.
pub const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object {expected} does not match its content (sha256 {actual})")]
    HashMismatch { expected: Id, actual: Id },
    #[error("object {id} is {size} bytes, over the {max}-byte limit")]
    TooLarge { id: Id, size: u64, max: u64 },
    #[error("block {0} is missing")]
    MissingBlock(Id),
    #[error("block {cid}: {why}")]
    BadBlock { cid: String, why: String },
    #[error("block store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] db::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A handle to the block store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    dir: PathBuf,
    profile: unixfs::Profile,
    buffers: Arc<Buffers>,
    /// Small objects' bytes staged in memory by every ingest session, awaiting their record
    /// ([`Ingest`]).
    staged: Arc<std::sync::atomic::AtomicU64>,
}

/// Idle leaf buffers kept for reuse.
const POOLED_BUFFERS: usize = 16;

/// A pool of chunk-sized buffers for reads (writes keep the network's own buffers).
///
/// Fetches and CAR exports move 1 MiB buffers between tokio's worker and blocking threads. Freshly
/// allocated each time, glibc kept the freed ones in per-thread arenas and peak RSS nearly
/// doubled (measured with `musehub bench`); reused, memory stays flat.
#[derive(Debug, Default)]
struct Buffers {
    /// A std mutex held only to push or pop.
    idle: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// A buffer of exactly `len` bytes to read into. Its old contents are left in place
    /// rather than zeroed again: every caller overwrites all of it before use.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        if buf.len() >= len {
            buf.truncate(len);
        } else {
            buf.resize(len, 0);
        }
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOLED_BUFFERS && buf.capacity() <= 2 * unixfs::UNIXFS_V1_2025.chunk_size {
            idle.push(buf);
        }
    }
}

/// A pooled buffer lent to a [`Bytes`]; it goes back to the pool when the bytes are dropped.
#[derive(Debug)]
struct Lent {
    buf: Vec<u8>,
    pool: Arc<Buffers>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// A block ready to be recorded: its file is durable already, or its bytes ride along to be
/// written inline in the recording transaction.
#[derive(Debug)]
pub struct StagedBlock {
    pub digest: Id,
    pub size: u64,
    pub inline: Option<Vec<u8>>,
    /// A leaf of an object stored whole: its offset in the object's file.
    pub offset: Option<u64>,
}

/// An object whose bytes are stored (or staged) and verified against its id.
#[derive(Debug)]
struct Imported {
    object_id: Id,
    size: u64,
    /// The dag-pb root for a new multi-chunk object, whose file (stored whole) is durable.
    root: Option<Cid>,
    /// Blocks to record; empty when the object was already stored.
    blocks: Vec<StagedBlock>,
    /// Whether the object was new to the hub.
    new: bool,
}

impl Store {
    /// Opens the store under `dir` (created if missing).
    ///
    /// Opening never deletes anything: admin commands open the store while the server runs,
    /// and the server's temp files are in use. See [`Store::clear_temp`].
    ///
    /// It does finish the one-time `object_blocks` backfill (see [`Store::backfill_object_blocks`]).
    pub fn open(db: Db, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let store = Store {
            db,
            dir: dir.to_owned(),
            profile: unixfs::UNIXFS_V1_2025,
            buffers: Arc::default(),
            staged: Arc::default(),
        };
        store.backfill_object_blocks()?;
        Ok(store)
    }

    /// Lists the blocks of every tree recorded before schema 3 in `object_blocks`, so block
    /// visibility (IPFS gateway, Bitswap) covers old data too. Runs once: a marker row says
    /// whether it is still to do, so this is one indexed read on every later open. Idempotent
    /// if interrupted. Trees are walked through their dag-pb nodes (small inline rows); leaf
    /// CIDs come from the links, so no leaf is read. A node that is missing or unreadable is
    /// logged and its subtree skipped (`doctor` reports it).
    pub fn backfill_object_blocks(&self) -> Result<()> {
        use crate::db::blocks::{self, OBJECT_BLOCKS_BACKFILL};
        if !self
            .db
            .read_blocking(|c| blocks::backfill_pending(c, OBJECT_BLOCKS_BACKFILL))?
        {
            return Ok(());
        }
        let trees = self.db.read_blocking(blocks::tree_objects)?;
        let mut filled = 0usize;
        for (oid, root) in trees {
            let root = match Cid::try_from(root.as_slice()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(target: "musehub::storage", object = %oid, error = %e, "object root is not a CID; not listing its blocks");
                    continue;
                }
            };
            let Ok(root_digest) = cids::digest_of(&root) else {
                continue;
            };
            if self
                .db
                .read_blocking(|c| blocks::has_object_block(c, &root_digest, &oid))?
            {
                continue;
            }
            let digests = self.tree_digests(&oid, &root)?;
            self.db
                .write_blocking(|tx| blocks::add_object_blocks(tx, &oid, &digests))?;
            filled += 1;
        }
        self.db
            .write_blocking(|tx| blocks::backfill_done(tx, OBJECT_BLOCKS_BACKFILL))?;
        if filled > 0 {
            tracing::info!(target: "musehub::storage", objects = filled, "listed the blocks of existing objects");
        }
        Ok(())
    }

    /// The digests of every block of the tree under `root` (root first), reading only its
    /// dag-pb nodes.
    fn tree_digests(&self, oid: &Id, root: &Cid) -> Result<Vec<Id>> {
        let mut out = Vec::new();
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            let Ok(digest) = cids::digest_of(&cid) else {
                continue;
            };
            out.push(digest);
            if cid.codec() != DAG_PB {
                continue;
            }
            let Some(data) = self.read_block(&digest)? else {
                tracing::warn!(target: "musehub::storage", object = %oid, block = %cid, "tree node missing; its blocks are not listed");
                continue;
            };
            match unixfs::decode_file_node(&data) {
                Ok(node) => stack.extend(node.links.into_iter().rev().map(|l| l.cid)),
                Err(e) => {
                    tracing::warn!(target: "musehub::storage", object = %oid, block = %cid, error = %e, "tree node unreadable; its blocks are not listed");
                }
            }
        }
        Ok(out)
    }

    /// Removes temp files left by a crash. Only the server calls this, at start, before it
    /// accepts a request: no other process writes blocks into a served data directory.
    pub fn clear_temp(&self) -> Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(self.dir.join("tmp"))? {
            std::fs::remove_file(entry?.path())?;
            n += 1;
        }
        Ok(n)
    }

    /// The same store importing with another profile (tests of the tree builder only).
    pub fn with_profile(mut self, profile: unixfs::Profile) -> Self {
        self.profile = profile;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A block's own file.
    fn block_path(&self, digest: &Id) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// A whole object's file.
    fn object_path(&self, object_id: &Id) -> PathBuf {
        let hex = object_id.to_hex();
        self.dir.join("objects").join(&hex[..2]).join(hex)
    }

    /// Writes a block file durably unless it exists. Returns the directory that must be
    /// fsynced before a row names the block.
    fn write_file(&self, digest: &Id, data: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.block_path(digest);
        let parent = path
            .parent()
            .expect("block paths have a shard directory")
            .to_owned();
        if path.exists() {
            return Ok(parent);
        }
        let (tmp, mut file) = tempfile_in(&self.dir.join("tmp"))?;
        file.write_all(data)?;
        keep_as(&tmp, &file, &path)
    }
}

/// Makes a finished temp file durable under `path`: fsyncs it and renames it there (creating
/// its directory). Returns that directory, which must be synced before a row names the file.
/// On failure the temp file is removed.
fn keep_as(tmp: &Path, file: &std::fs::File, path: &Path) -> std::io::Result<PathBuf> {
    let parent = path
        .parent()
        .expect("store paths have a shard directory")
        .to_owned();
    let kept = file
        .sync_all()
        .and_then(|()| std::fs::create_dir_all(&parent))
        .and_then(|()| std::fs::rename(tmp, path));
    if kept.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    kept.map(|()| parent)
}

/// The sha-256 digest a block's CID names, as the store's key.
fn digest_of(cid: &Cid) -> Result<Id> {
    cids::digest_of(cid).map_err(|e| Error::BadBlock {
        cid: cid.to_string(),
        why: e.to_string(),
    })
}

/// Creates a uniquely named temp file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        // Readable too: an import reads back a leaf a file repeats (ObjectWriter::reread).
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Fsyncs directories so renames into them survive a power cut.
fn sync_dirs(dirs: &BTreeSet<PathBuf>) -> std::io::Result<()> {
    for d in dirs {
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

/// A store over a fresh database with user `alice` and her public repos (unit tests).
#[cfg(test)]
pub(crate) fn test_store(repos: &[&str]) -> (tempfile::TempDir, Store, Vec<i64>) {
    use crate::db::{repos as r, users};
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("t.db")).unwrap();
    let names: Vec<String> = repos.iter().map(|n| n.to_string()).collect();
    let ids = db
        .write_blocking(move |tx| {
            let u = users::create(tx, "alice")?;
            names
                .iter()
                .map(|n| r::create(tx, u.id, n, r::Visibility::Public, &format!("u-{n}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    let store = Store::open(db, &dir.path().join("blocks")).unwrap();
    (dir, store, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::blocks;

    #[tokio::test]
    async fn tree_blocks_are_listed_when_recorded_and_by_the_backfill() {
        let (dir, store, repos) = test_store(&["song"]);
        let (repo, db) = (repos[0], store.db.clone());
        let bytes: Vec<u8> = (0..5 * (1 << 20) / 2 + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        let oid = store.import_bytes(repo, &bytes).await.unwrap();
        let small = store.import_bytes(repo, b"small").await.unwrap();
        let (root, nodes) = unixfs::import_bytes(unixfs::UNIXFS_V1_2025, &bytes);
        assert!(nodes.iter().any(|b| b.cid == root));
        let digests: Vec<Id> = nodes
            .iter()
            .map(|b| cids::digest_of(&b.cid).unwrap())
            .collect();
        assert_eq!(digests.len(), 4, "a root and three leaves");
        let listed = |db: &Db| {
            digests
                .iter()
                .map(|d| {
                    db.read_blocking(|c| blocks::has_object_block(c, d, &oid))
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(&db), vec![true; 4]);
        // A single-block object needs no rows.
        assert!(
            !db.read_blocking(|c| blocks::has_object_block(c, &small, &small))
                .unwrap()
        );

        // A database from before schema 3: no rows, backfill pending.
        db.write_blocking(|tx| blocks::forget_for_tests(tx))
            .unwrap();
        assert_eq!(listed(&db), vec![false; 4]);
        drop(store);
        let _store = Store::open(db.clone(), &dir.path().join("blocks")).unwrap();
        assert_eq!(listed(&db), vec![true; 4]);
        assert!(
            !db.read_blocking(|c| blocks::backfill_pending(c, blocks::OBJECT_BLOCKS_BACKFILL))
                .unwrap()
        );
        for d in &digests {
            assert!(db.read_blocking(|c| blocks::public_block(c, d)).unwrap());
        }
    }
}
