//! Reading bytes back: one block by its row, a whole object or a range of it as a stream,
//! and the checks `doctor` runs.
//!
//! A block's row says where its bytes are: inline, a range of a whole object's file, or a
//! file of its own. An object stored whole is read straight from its file in large reads into
//! pooled buffers, without looking at its blocks; older objects are read through their tree.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures_util::Stream;
use sha2::{Digest, Sha256};

use super::{Error, Lent, Result, Store, digest_of, unixfs};
use crate::cids::{DAG_PB, Id, RAW};
use crate::db::content::{self, BlockRow};

/// Blocks (or whole-file reads) read ahead of the socket when streaming an object.
const READ_AHEAD: usize = 4;

/// A boxed stream of object bytes.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// One piece of an object's bytes, in file order.
#[derive(Debug)]
enum Piece {
    /// A raw leaf block still to read.
    Leaf(Cid),
    /// Bytes stored inside a dag-pb node (other tools' trees may have them).
    Bytes(Vec<u8>),
    /// A range of the object's own file (an object stored whole), opened once for all.
    Range {
        file: Arc<std::fs::File>,
        offset: u64,
        len: usize,
    },
}

impl Store {
    /// The bytes a block's row points at; `None` when its file is missing. A block whose
    /// own file went away meanwhile (converted to a range of a whole object, see
    /// [`super::whole`]) is looked up once more.
    pub(super) fn read_row(&self, digest: &Id, row: BlockRow) -> Result<Option<Bytes>> {
        let own_file = row.extent.is_none();
        match self.read_where(digest, row)? {
            None if own_file => match self.db.read_blocking(|c| content::block(c, digest))? {
                Some(moved) if moved.extent.is_some() => self.read_where(digest, moved),
                _ => Ok(None),
            },
            found => Ok(found),
        }
    }

    /// The bytes where a row says they are; `None` when that file is missing.
    fn read_where(&self, digest: &Id, row: BlockRow) -> Result<Option<Bytes>> {
        if let Some(data) = row.inline {
            return Ok(Some(Bytes::from(data)));
        }
        let (path, offset) = match &row.extent {
            Some((oid, offset)) => (self.object_path(oid), *offset),
            None => (self.block_path(digest), 0),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.read_at(&file, offset, row.size as usize).map(Some)
    }

    /// `len` bytes at `offset` of a whole object's file, recorded or only staged (an import
    /// reads back a leaf that an earlier object of the same CAR also has).
    pub fn read_object_range_blocking(&self, oid: &Id, offset: u64, len: usize) -> Result<Bytes> {
        let file = std::fs::File::open(self.object_path(oid))?;
        self.read_at(&file, offset, len)
    }

    /// Reads exactly `len` bytes at `offset` into a pooled buffer.
    fn read_at(&self, file: &std::fs::File, offset: u64, len: usize) -> Result<Bytes> {
        let mut buf = self.buffers.take(len);
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::other(format!("a file is shorter than its rows say ({e})"))
            } else {
                e
            }
        })?;
        Ok(Bytes::from_owner(Lent {
            buf,
            pool: self.buffers.clone(),
        }))
    }

    /// A block's bytes by digest, whatever its row says; `None` when it is not recorded or
    /// its file is missing.
    pub(super) fn read_block(&self, digest: &Id) -> Result<Option<Bytes>> {
        match self.db.read_blocking(|c| content::block(c, digest))? {
            Some(row) => self.read_row(digest, row),
            None => Ok(None),
        }
    }

    /// Reads a raw leaf of a tree.
    pub(super) fn read_leaf(&self, cid: &Cid) -> Result<Bytes> {
        let digest = digest_of(cid)?;
        self.read_block(&digest)?.ok_or(Error::MissingBlock(digest))
    }

    /// Reads a block of a file tree: raw leaves give bytes, dag-pb nodes give inline bytes
    /// and children.
    fn expand(&self, cid: &Cid) -> Result<(Bytes, Vec<Cid>)> {
        let data = self.read_leaf(cid)?;
        match cid.codec() {
            RAW => Ok((data, Vec::new())),
            DAG_PB => {
                let node = unixfs::decode_file_node(&data).map_err(|e| Error::BadBlock {
                    cid: cid.to_string(),
                    why: e.to_string(),
                })?;
                Ok((
                    Bytes::from(node.inline),
                    node.links.into_iter().map(|l| l.cid).collect(),
                ))
            }
            _ => Err(Error::BadBlock {
                cid: cid.to_string(),
                why: "not part of a file".into(),
            }),
        }
    }

    /// The bytes of an object as a stream of chunks: the whole-object case of
    /// [`Store::object_range_stream`].
    pub fn object_stream(&self, oid: Id, row: content::ObjectRow) -> ByteStream {
        self.object_range_stream(oid, row, 0, u64::MAX)
    }

    /// The bytes `start..=end_inclusive` of an object, reading only what overlaps the range:
    /// an object stored whole is read from its file at the range's offset; for an older one,
    /// a tree's `blocksizes` say where each child starts, so a seek into a long stem reads
    /// one or two 1 MiB leaves instead of everything before it.
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
        // A single block needs no file or tree read to plan, so no blocking hop either.
        let plan_inline = row.root.is_none();
        let pieces = async move {
            let s = store.clone();
            let plan = if plan_inline {
                s.plan(&oid, &row, start, end)
            } else {
                tokio::task::spawn_blocking(move || s.plan(&oid, &row, start, end))
                    .await
                    .map_err(std::io::Error::other)?
            }
            .map_err(std::io::Error::other)?;
            let reads = futures_util::stream::iter(plan).map(move |(piece, skip, take)| {
                let s = store.clone();
                async move {
                    let bytes = match piece {
                        Piece::Bytes(b) => Bytes::from(b),
                        Piece::Leaf(cid) => tokio::task::spawn_blocking(move || s.read_leaf(&cid))
                            .await
                            .map_err(std::io::Error::other)?
                            .map_err(std::io::Error::other)?,
                        Piece::Range { file, offset, len } => {
                            tokio::task::spawn_blocking(move || s.read_at(&file, offset, len))
                                .await
                                .map_err(std::io::Error::other)?
                                .map_err(std::io::Error::other)?
                        }
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

    /// What to read for `start..=end`: reads of the object's own file when it is stored
    /// whole (opened here, so a missing file fails before the first byte is sent), else the
    /// pieces of its tree.
    fn plan(
        &self,
        oid: &Id,
        row: &content::ObjectRow,
        start: u64,
        end: u64,
    ) -> Result<Vec<(Piece, usize, usize)>> {
        if !row.whole {
            return self.range_pieces(oid, row, start, end);
        }
        let file = match std::fs::File::open(self.object_path(oid)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingBlock(*oid));
            }
            Err(e) => return Err(e.into()),
        };
        let file = Arc::new(file);
        let step = self.profile.chunk_size as u64;
        let mut out = Vec::new();
        let mut at = start;
        while at <= end {
            let len = (end - at + 1).min(step);
            out.push((
                Piece::Range {
                    file: file.clone(),
                    offset: at,
                    len: len as usize,
                },
                0,
                len as usize,
            ));
            at += len;
        }
        Ok(out)
    }

    /// The pieces of an object's tree overlapping `start..=end`, each with the bytes to skip
    /// at its front and the bytes to take. Only the dag-pb nodes on the way to the range are
    /// read.
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
            let data = self.read_leaf(&cid)?;
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

    /// The raw leaves of an object's tree in file order, each with its offset (converting
    /// to whole objects). Only dag-pb nodes are read.
    pub(super) fn tree_leaves(
        &self,
        oid: &Id,
        row: &content::ObjectRow,
    ) -> Result<Vec<(Cid, u64)>> {
        if row.size == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut at = 0u64;
        for (piece, _, take) in self.range_pieces(oid, row, 0, row.size - 1)? {
            match piece {
                Piece::Leaf(cid) => out.push((cid, at)),
                Piece::Bytes(_) | Piece::Range { .. } => {}
            }
            at += take as u64;
        }
        Ok(out)
    }

    /// Re-reads an object and checks size and hash (for `doctor`): an object stored whole
    /// from its file, an older one through its tree.
    pub fn verify_object_blocking(&self, oid: &Id, row: &content::ObjectRow) -> Result<()> {
        let mut h = Sha256::new();
        let mut total = 0u64;
        if row.whole {
            let mut f = match std::fs::File::open(self.object_path(oid)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MissingBlock(*oid));
                }
                Err(e) => return Err(e.into()),
            };
            let mut buf = self.buffers.take(self.profile.chunk_size);
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                total += n as u64;
            }
            self.buffers.give(buf);
        } else {
            let mut stack = vec![match &row.root {
                None => oid.raw_cid(),
                Some(r) => Cid::try_from(r.as_slice()).map_err(|e| Error::BadBlock {
                    cid: hex::encode(r),
                    why: e.to_string(),
                })?,
            }];
            while let Some(cid) = stack.pop() {
                let (chunk, children) = self.expand(&cid)?;
                h.update(&chunk);
                total += chunk.len() as u64;
                stack.extend(children.into_iter().rev());
            }
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
    pub fn verify_block_blocking(&self, digest: &Id, row: BlockRow) -> Result<()> {
        let size = row.size;
        let data = self
            .read_row(digest, row)?
            .ok_or(Error::MissingBlock(*digest))?;
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
