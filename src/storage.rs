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
//! `object_id`. Nothing keeps a second whole copy, and reads stream leaf by leaf.
//!
//! SQL stays in [`crate::db`]; HTTP and msgpack stay out of here.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cid::Cid;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use crate::cids::{self, DAG_PB, Id, RAW};
use crate::db::{self, Db, content};

mod block;
mod ingest;
mod put;
pub use block::{BlockKey, IDENTITY, IDENTITY_MAX, Scope, block_key};
pub use ingest::{Ingest, Ingested, Staged};
pub use put::record_staged;
pub mod unixfs;

/// Blocks up to this size are stored inline in SQLite rather than as files.
///
/// Many files of a music repo are small (MIDI, lyrics, project metadata). As files, each costs
/// a temp file, two fsyncs and a rename; inline, a whole push/objects batch shares one commit.
/// `musehub bench` prints both rates; 64 KiB is well inside the range where inline wins.
pub const INLINE_MAX: usize = 64 * 1024;

/// Largest object the hub accepts: the Muse CLI's own `MAX_FILE_BYTES`.
pub const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

/// Leaf writes of one object that may be in flight at once (hash + write on blocking threads
/// while more bytes arrive).
const LEAVES_IN_FLIGHT: usize = 2;

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
}

/// Idle leaf buffers kept for reuse.
const POOLED_BUFFERS: usize = 16;

/// A pool of chunk-sized buffers for leaf reads and writes.
///
/// Pushes and fetches move 1 MiB buffers between tokio's worker and blocking threads. Freshly
/// allocated each time, glibc kept the freed ones in per-thread arenas and peak RSS nearly
/// doubled (measured with `musehub bench`); reused, memory stays flat.
#[derive(Debug, Default)]
struct Buffers {
    /// A std mutex held only to push or pop.
    idle: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut buf = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
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
}

/// An object whose bytes are stored (or staged) and verified against its id.
#[derive(Debug)]
struct Imported {
    object_id: Id,
    size: u64,
    /// The dag-pb root for multi-chunk objects.
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
            let Some(data) = self.read_block_where(&digest, true)? else {
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

    fn block_path(&self, digest: &Id) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join(&hex[..2]).join(hex)
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
        std::fs::create_dir_all(&parent)?;
        let mut tmp = tempfile_in(&self.dir.join("tmp"))?;
        tmp.1.write_all(data)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &path)?;
        Ok(parent)
    }

    /// Reads a block, looking first where it most likely is: small blocks (dag-pb nodes,
    /// small objects) are inline rows, large ones (leaves) are files.
    fn read_block_where(&self, digest: &Id, likely_inline: bool) -> Result<Option<Vec<u8>>> {
        if likely_inline
            && let Some(row) = self.db.read_blocking(|c| content::block(c, digest))?
            && let Some(data) = row.inline
        {
            return Ok(Some(data));
        }
        if let Some(b) = self.read_block_file(digest)? {
            return Ok(Some(b));
        }
        if likely_inline {
            return Ok(None);
        }
        let row = self.db.read_blocking(|c| content::block(c, digest))?;
        Ok(row.and_then(|r| r.inline))
    }

    /// A block's file; `None` when there is none.
    fn read_block_file(&self, digest: &Id) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.block_path(digest)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts importing an object of `size` bytes that must hash to `expected`. When the hub
    /// already holds it, its bytes are only hashed (to check them), not stored again.
    pub async fn writer(&self, expected: Id, size: u64) -> Result<ObjectWriter> {
        let known = self
            .db
            .read(move |c| content::object(c, &expected))
            .await?
            .is_some();
        self.object_writer(expected, size, known)
    }

    fn object_writer(&self, expected: Id, size: u64, known: bool) -> Result<ObjectWriter> {
        if size > MAX_OBJECT_BYTES {
            return Err(Error::TooLarge {
                id: expected,
                size,
                max: MAX_OBJECT_BYTES,
            });
        }
        let large = size > self.profile.chunk_size as u64;
        Ok(ObjectWriter {
            store: self.clone(),
            expected,
            size,
            received: 0,
            hasher: Sha256::new(),
            buf: if known {
                Vec::new()
            } else if large {
                self.buffers.take(self.profile.chunk_size)
            } else {
                Vec::with_capacity(size as usize)
            },
            tree: (large && !known).then(|| unixfs::TreeBuilder::new(self.profile)),
            in_flight: VecDeque::new(),
            staged: Vec::new(),
            dirs: BTreeSet::new(),
            known,
        })
    }

    /// The bytes of an object as a stream of chunks (one block at a time): the whole-object
    /// case of [`Store::object_range_stream`].
    pub fn object_stream(&self, oid: Id, row: content::ObjectRow) -> ByteStream {
        self.object_range_stream(oid, row, 0, u64::MAX)
    }

    /// Reads a raw leaf of a tree (a file, normally) into a pooled buffer.
    fn read_leaf(&self, cid: &Cid) -> Result<Bytes> {
        let digest = cids::digest_of(cid).map_err(|e| Error::BadBlock {
            cid: cid.to_string(),
            why: e.to_string(),
        })?;
        match std::fs::File::open(self.block_path(&digest)) {
            Ok(mut f) => {
                use std::io::Read;
                let len = f.metadata()?.len() as usize;
                let mut buf = self.buffers.take(len);
                f.read_to_end(&mut buf)?;
                Ok(Bytes::from_owner(Lent {
                    buf,
                    pool: self.buffers.clone(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let data = self
                    .read_block_where(&digest, true)?
                    .ok_or(Error::MissingBlock(digest))?;
                Ok(Bytes::from(data))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a block of a file tree: raw leaves give bytes, dag-pb nodes give inline bytes
    /// and children. `small_object` says the whole object fits inline, so its raw block is a
    /// row rather than a file.
    fn expand(&self, cid: &Cid, small_object: bool) -> Result<(Vec<u8>, Vec<Cid>)> {
        let digest = cids::digest_of(cid).map_err(|e| Error::BadBlock {
            cid: cid.to_string(),
            why: e.to_string(),
        })?;
        let likely_inline = cid.codec() == DAG_PB || small_object;
        let data = self
            .read_block_where(&digest, likely_inline)?
            .ok_or(Error::MissingBlock(digest))?;
        match cid.codec() {
            RAW => Ok((data, Vec::new())),
            DAG_PB => {
                let node = unixfs::decode_file_node(&data).map_err(|e| Error::BadBlock {
                    cid: cid.to_string(),
                    why: e.to_string(),
                })?;
                Ok((node.inline, node.links.into_iter().map(|l| l.cid).collect()))
            }
            _ => Err(Error::BadBlock {
                cid: cid.to_string(),
                why: "not part of a file".into(),
            }),
        }
    }

    /// Re-reads an object through its blocks and checks size and hash (for `doctor`).
    pub fn verify_object_blocking(&self, oid: &Id, row: &content::ObjectRow) -> Result<()> {
        let mut stack = vec![match &row.root {
            None => oid.raw_cid(),
            Some(r) => Cid::try_from(r.as_slice()).map_err(|e| Error::BadBlock {
                cid: hex::encode(r),
                why: e.to_string(),
            })?,
        }];
        let mut h = Sha256::new();
        let mut total = 0u64;
        while let Some(cid) = stack.pop() {
            let (chunk, children) = self.expand(&cid, row.size as usize <= INLINE_MAX)?;
            h.update(&chunk);
            total += chunk.len() as u64;
            stack.extend(children.into_iter().rev());
        }
        let actual = Id(h.finalize().into());
        if actual != *oid || total != row.size {
            return Err(Error::HashMismatch {
                expected: *oid,
                actual,
            });
        }
        Ok(())
    }

    /// Checks one recorded block's bytes against its digest (for `doctor`).
    pub fn verify_block_blocking(
        &self,
        digest: &Id,
        size: u64,
        inline: Option<Vec<u8>>,
    ) -> Result<()> {
        let data = match inline {
            Some(d) => d,
            None => match std::fs::read(self.block_path(digest)) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MissingBlock(*digest));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let actual = Id::of(&data);
        if actual != *digest || data.len() as u64 != size {
            return Err(Error::HashMismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(())
    }
}

/// Blocks read ahead of the socket when streaming an object.
const READ_AHEAD: usize = 4;

/// One piece of an object's bytes, in file order.
#[derive(Debug)]
enum Piece {
    /// A raw leaf block still to read.
    Leaf(Cid),
    /// Bytes stored inside a dag-pb node (other tools' trees may have them).
    Bytes(Vec<u8>),
}

/// A boxed stream of object bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

type LeafResult = std::io::Result<(Id, u64, Option<PathBuf>)>;

/// Imports one object as its bytes arrive. See [`Store::writer`].
#[derive(Debug)]
pub struct ObjectWriter {
    store: Store,
    expected: Id,
    size: u64,
    received: u64,
    hasher: Sha256,
    buf: Vec<u8>,
    tree: Option<unixfs::TreeBuilder>,
    in_flight: VecDeque<tokio::task::JoinHandle<LeafResult>>,
    staged: Vec<StagedBlock>,
    dirs: BTreeSet<PathBuf>,
    known: bool,
}

impl ObjectWriter {
    /// Feeds the next bytes of the object.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.received += data.len() as u64;
        self.hasher.update(data);
        if self.known {
            return Ok(());
        }
        let chunk = self.store.profile.chunk_size;
        while !data.is_empty() {
            let take = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == chunk && self.tree.is_some() {
                self.flush_leaf().await?;
            }
        }
        Ok(())
    }

    async fn flush_leaf(&mut self) -> Result<()> {
        let next = self.store.buffers.take(self.store.profile.chunk_size);
        let leaf = std::mem::replace(&mut self.buf, next);
        let store = self.store.clone();
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                let digest = Id::of(&leaf);
                let written = store.write_file(&digest, &leaf);
                let len = leaf.len() as u64;
                store.buffers.give(leaf);
                Ok((digest, len, Some(written?)))
            }));
        if self.in_flight.len() >= LEAVES_IN_FLIGHT {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<()> {
        let Some(job) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (digest, len, dir) = job
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.dirs.extend(dir);
        self.staged.push(StagedBlock {
            digest,
            size: len,
            inline: None,
        });
        let tree = self
            .tree
            .as_mut()
            .expect("leaves are flushed only for trees");
        let nodes = tree.push_leaf(cids::cid_of(RAW, &digest), len);
        self.stage_nodes(nodes).await
    }

    async fn stage_nodes(&mut self, nodes: Vec<unixfs::Block>) -> Result<()> {
        for node in nodes {
            let digest = cids::digest_of(&node.cid).map_err(|e| Error::BadBlock {
                cid: node.cid.to_string(),
                why: e.to_string(),
            })?;
            self.stage(digest, node.data).await?;
        }
        Ok(())
    }

    async fn stage(&mut self, digest: Id, data: Vec<u8>) -> Result<()> {
        let size = data.len() as u64;
        if data.len() <= INLINE_MAX {
            self.staged.push(StagedBlock {
                digest,
                size,
                inline: Some(data),
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
            });
        }
        Ok(())
    }

    /// Checks length and hash and finishes the tree. Returns the object for an [`Ingest`]
    /// session to record.
    pub async fn finish(mut self) -> Result<Staged> {
        let actual = Id(self.hasher.clone().finalize().into());
        if self.received != self.size || actual != self.expected {
            // Wait for leaf writes so no task outlives the request; their files are orphans.
            for job in self.in_flight.drain(..) {
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
            return Ok(Staged {
                imported,
                dirs: BTreeSet::new(),
            });
        }
        let root = if self.tree.is_some() {
            if !self.buf.is_empty() {
                self.flush_leaf().await?;
            }
            while !self.in_flight.is_empty() {
                self.settle_one().await?;
            }
            self.store.buffers.give(std::mem::take(&mut self.buf));
            let tree = self.tree.take().expect("checked above");
            let (root, nodes, total) = tree.finish();
            debug_assert_eq!(total, self.size);
            self.stage_nodes(nodes).await?;
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
            blocks: self.staged,
            new: true,
        };
        Ok(Staged {
            imported,
            dirs: self.dirs,
        })
    }
}

/// Creates a uniquely named temp file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
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

/// Ranged reads (HTTP `Range` for the web UI's raw downloads and audio seeking).
impl Store {
    /// The bytes `start..=end_inclusive` of an object, reading only the blocks that overlap
    /// the range: a tree's `blocksizes` say where each child starts, so a seek into a long
    /// stem reads one or two 1 MiB leaves instead of everything before it.
    ///
    /// `end_inclusive` is clamped to the object's last byte; a range that starts past the end
    /// (or an empty object) gives an empty stream. The caller answers 416 before that.
    pub fn object_range_stream(
        &self,
        oid: Id,
        row: content::ObjectRow,
        start: u64,
        end_inclusive: u64,
    ) -> ByteStream {
        use futures_util::{StreamExt, TryStreamExt};
        let end = end_inclusive.min(row.size.saturating_sub(1));
        if row.size == 0 || start > end {
            return Box::pin(futures_util::stream::empty());
        }
        let store = self.clone();
        // A single-block object's block is a row when small, else a file; a tree's leaves are
        // files (or rows, which `read_leaf` falls back to).
        let single = row.root.is_none();
        let small = row.size as usize <= INLINE_MAX;
        let pieces = async move {
            let s = store.clone();
            // A single block needs no tree read to plan, so no blocking hop either.
            let plan = if single {
                s.range_pieces(&oid, &row, start, end)
            } else {
                tokio::task::spawn_blocking(move || s.range_pieces(&oid, &row, start, end))
                    .await
                    .map_err(std::io::Error::other)?
            }
            .map_err(std::io::Error::other)?;
            let reads = futures_util::stream::iter(plan).map(move |(piece, skip, take)| {
                let s = store.clone();
                async move {
                    let bytes = match piece {
                        Piece::Bytes(b) => Bytes::from(b),
                        Piece::Leaf(cid) => tokio::task::spawn_blocking(move || {
                            if single {
                                s.expand(&cid, small).map(|(b, _)| Bytes::from(b))
                            } else {
                                s.read_leaf(&cid)
                            }
                        })
                        .await
                        .map_err(std::io::Error::other)?
                        .map_err(std::io::Error::other)?,
                    };
                    match skip.checked_add(take) {
                        Some(stop) if stop <= bytes.len() => Ok(bytes.slice(skip..stop)),
                        _ => Err(std::io::Error::other(format!(
                            "object {oid}: a block is shorter than its tree says"
                        ))),
                    }
                }
            });
            Ok::<_, std::io::Error>(reads.buffered(READ_AHEAD))
        };
        Box::pin(futures_util::stream::once(pieces).try_flatten())
    }

    /// The pieces of an object overlapping `start..=end`, each with the bytes to skip at its
    /// front and the bytes to take. Only the dag-pb nodes on the way to the range are read.
    fn range_pieces(
        &self,
        oid: &Id,
        row: &content::ObjectRow,
        start: u64,
        end: u64,
    ) -> Result<Vec<(Piece, usize, usize)>> {
        let Some(root) = &row.root else {
            return Ok(vec![(
                Piece::Leaf(oid.raw_cid()),
                start as usize,
                (end - start + 1) as usize,
            )]);
        };
        let root = Cid::try_from(root.as_slice()).map_err(|e| Error::BadBlock {
            cid: hex::encode(root),
            why: e.to_string(),
        })?;
        let bad = |cid: &Cid, why: String| Error::BadBlock {
            cid: cid.to_string(),
            why,
        };
        let mut out = Vec::new();
        // (block, offset of its first file byte, file bytes under it), in file order on pop.
        let mut stack = vec![(root, 0u64, row.size)];
        while let Some((cid, off, len)) = stack.pop() {
            let Some(last) = off.checked_add(len).and_then(|x| x.checked_sub(1)) else {
                continue; // an empty child
            };
            if last < start || off > end {
                continue;
            }
            let (lo, hi) = (start.max(off) - off, end.min(last) - off);
            if cid.codec() == RAW {
                out.push((Piece::Leaf(cid), lo as usize, (hi - lo + 1) as usize));
                continue;
            }
            if cid.codec() != DAG_PB {
                return Err(bad(&cid, "not part of a file".into()));
            }
            let digest = cids::digest_of(&cid).map_err(|e| bad(&cid, e.to_string()))?;
            let data = self
                .read_block_where(&digest, true)?
                .ok_or(Error::MissingBlock(digest))?;
            let node = unixfs::decode_file_node(&data).map_err(|e| bad(&cid, e.to_string()))?;
            if node.filesize != len {
                return Err(bad(
                    &cid,
                    format!("holds {} file bytes, its parent says {len}", node.filesize),
                ));
            }
            let inline_len = node.inline.len() as u64;
            if lo < inline_len {
                let stop = hi.min(inline_len - 1) as usize + 1;
                let bytes = node.inline[lo as usize..stop].to_vec();
                let n = bytes.len();
                out.push((Piece::Bytes(bytes), 0, n));
            }
            let mut children = Vec::with_capacity(node.links.len());
            let mut child_off = off + inline_len;
            for link in node.links {
                children.push((link.cid, child_off, link.file_bytes));
                child_off += link.file_bytes;
            }
            stack.extend(children.into_iter().rev());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{blocks, repos, users};

    #[tokio::test]
    async fn tree_blocks_are_listed_when_recorded_and_by_the_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let repo = db
            .write_blocking(|tx| {
                let u = users::create(tx, "alice")?;
                repos::create(tx, u.id, "song", repos::Visibility::Public, "u")
            })
            .unwrap();
        let store = Store::open(db.clone(), &dir.path().join("blocks")).unwrap();
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
