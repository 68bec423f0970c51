//! UnixFS file layout: turns a chunked object into the exact IPFS DAG that Kubo and Helia build.
//!
//! An object larger than one chunk is published over IPFS as a UnixFS file: raw leaves (one per
//! chunk, codec raw) under a balanced tree of dag-pb `File` nodes. Other IPFS nodes only find and
//! verify our objects if the root CID is byte-for-byte the one their importers compute, so this
//! module follows the IPIP-499 `unixfs-v1-2025` profile exactly (see [`UNIXFS_V1_2025`]) and
//! writes dag-pb in its canonical form by hand.
//!
//! This module is pure: no I/O. The block store in [`crate::storage`] cuts an object into chunks
//! while importing it, stores each chunk as a raw block and feeds its CID and length to a
//! [`TreeBuilder`]; it then stores the internal blocks the builder returns and keeps the root
//! CID beside the object id. [`decode_file_node`] reads such nodes back (ours and those other
//! tools write) so the hub can serve byte ranges of a file.
//!
//! Encoding, as §4 of the IPFS notes (`ipfs-specs.md`) describes it:
//! - `PBNode` writes its Links (field 2) before its Data (field 1).
//! - Every `PBLink` writes Hash (1), Name (2) and Tsize (3) in that order. The Name is always
//!   written, even when empty (`12 00`).
//! - Tsize is the child's length for a raw child, or its block length plus its own links' Tsize
//!   for a dag-pb child.
//! - The UnixFS `Data` is proto2: Type = File is always written, then `filesize`, then one
//!   unpacked `blocksizes` entry (tag `0x20`) per link. Internal nodes carry no inline data.

use cid::Cid;

use crate::cids::{DAG_PB, Id, RAW, cid_of};

/// Parameters of a UnixFS file import. Every parameter written out; never rely on library defaults.
///
/// The fixed parts of the profile (CIDv1, sha2-256, raw leaves, balanced layout, a single leaf is
/// its own root) are not parameters: this module always does them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Size of every leaf in bytes; only the last leaf of a file may be shorter.
    pub chunk_size: usize,
    /// Most links a dag-pb node may hold (the width of the balanced tree).
    pub max_links: usize,
}

/// IPIP-499 `unixfs-v1-2025`: CIDv1, sha2-256, raw leaves, fixed 1,048,576-byte chunks, balanced
/// layout, 1,024 links per node.
pub const UNIXFS_V1_2025: Profile = Profile {
    chunk_size: 1_048_576,
    max_links: 1024,
};

/// Largest block [`decode_file_node`] accepts (2 MiB; we create at most 1 MiB).
pub const MAX_DECODE_LEN: usize = 2 * 1024 * 1024;

/// A block produced by the builder: its CID and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// CIDv1 of `data` (raw for leaves, dag-pb for internal nodes), sha2-256.
    pub cid: Cid,
    /// The block's bytes, exactly as hashed.
    pub data: Vec<u8>,
}

/// A completed subtree waiting for its parent: a leaf (height 0) or a finished node.
#[derive(Debug, Clone)]
struct Entry {
    cid: Cid,
    /// File bytes under this entry: the parent's `blocksizes` value.
    file_bytes: u64,
    /// Cumulative DAG size: the parent's link Tsize.
    tsize: u64,
}

/// Incremental balanced-tree builder (leaves pushed in file order; memory O(depth × max_links)).
///
/// `pending[h]` holds the completed entries of height `h` that still wait for a parent. A level
/// that reaches `max_links` entries is wrapped at once into a node of height `h + 1`, so every
/// node except those on the rightmost spine is full and complete nodes leave the builder (to be
/// stored) as soon as they exist.
#[derive(Debug)]
pub struct TreeBuilder {
    profile: Profile,
    pending: Vec<Vec<Entry>>,
    total: u64,
}

impl TreeBuilder {
    /// Starts an empty tree.
    ///
    /// # Panics
    /// If `profile.chunk_size` is 0 or `profile.max_links` is below 2 (no tree could be built).
    pub fn new(profile: Profile) -> Self {
        assert!(
            profile.chunk_size >= 1,
            "UnixFS chunk size must be at least 1 byte"
        );
        assert!(
            profile.max_links >= 2,
            "UnixFS nodes need room for at least 2 links"
        );
        TreeBuilder {
            profile,
            pending: vec![Vec::new()],
            total: 0,
        }
    }

    /// Adds the next leaf (a raw block's CID and its length). Returns the internal dag-pb nodes
    /// that became complete (the caller stores them).
    ///
    /// Leaves must come in file order and, except for the last one, be `chunk_size` bytes long:
    /// the layout only depends on their number, but other importers cut files that way.
    /// The returned blocks are in dependency order (children before parents).
    pub fn push_leaf(&mut self, cid: Cid, len: u64) -> Vec<Block> {
        debug_assert!(
            len <= self.profile.chunk_size as u64,
            "leaf longer than a chunk"
        );
        self.total += len;
        self.pending[0].push(Entry {
            cid,
            file_bytes: len,
            tsize: len,
        });
        let mut out = Vec::new();
        let mut h = 0;
        while self.pending[h].len() >= self.profile.max_links {
            self.wrap_level(h, &mut out);
            h += 1;
        }
        out
    }

    /// Finishes the tree. Returns the root CID, the remaining blocks to store, and the total file
    /// size.
    ///
    /// - Zero leaves: the root is the empty raw block CID
    ///   (`bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku`), no blocks (the caller
    ///   stores the empty raw block itself).
    /// - One leaf: the root IS the leaf CID (no wrapper).
    ///
    /// Every level below the top is wrapped even when it holds a single entry, so that all
    /// leaves end up at the same depth (a lone trailing leaf gets its own one-link parent).
    pub fn finish(mut self) -> (Cid, Vec<Block>, u64) {
        let mut out = Vec::new();
        let mut h = 0;
        while h < self.pending.len() {
            let count = self.pending[h].len();
            let above = self.pending[h + 1..].iter().any(|level| !level.is_empty());
            if count == 1 && !above {
                let root = self.pending[h][0].cid;
                return (root, out, self.total);
            }
            if count > 0 {
                self.wrap_level(h, &mut out);
            }
            h += 1;
        }
        (empty_raw_cid(), out, 0)
    }

    /// Wraps all entries of level `h` into one node of height `h + 1`, emitting its block.
    fn wrap_level(&mut self, h: usize, out: &mut Vec<Block>) {
        let (block, entry) = encode_file_node(&self.pending[h]);
        self.pending[h].clear();
        if self.pending.len() == h + 1 {
            self.pending
                .push(Vec::with_capacity(self.profile.max_links));
        }
        self.pending[h + 1].push(entry);
        out.push(block);
    }
}

/// Convenience: import a whole in-memory byte slice with `profile`; returns root CID and ALL blocks
/// (leaves included, in file order, internal nodes after their children). Used by tests and small
/// callers.
///
/// An empty slice gives the empty raw block as its only block. Identical chunks appear once per
/// occurrence (same CID, same bytes).
pub fn import_bytes(profile: Profile, bytes: &[u8]) -> (Cid, Vec<Block>) {
    if bytes.is_empty() {
        let cid = empty_raw_cid();
        return (
            cid,
            vec![Block {
                cid,
                data: Vec::new(),
            }],
        );
    }
    let mut tree = TreeBuilder::new(profile);
    let mut blocks = Vec::new();
    for chunk in bytes.chunks(profile.chunk_size) {
        let cid = cid_of(RAW, &Id::of(chunk));
        blocks.push(Block {
            cid,
            data: chunk.to_vec(),
        });
        blocks.extend(tree.push_leaf(cid, chunk.len() as u64));
    }
    let (root, rest, _) = tree.finish();
    blocks.extend(rest);
    (root, blocks)
}

/// The CID of the empty raw block: the root of an empty file.
fn empty_raw_cid() -> Cid {
    cid_of(RAW, &Id::of(b""))
}

/// Canonical dag-pb bytes of an internal File node over `children`, and its entry for the parent.
fn encode_file_node(children: &[Entry]) -> (Block, Entry) {
    let filesize: u64 = children.iter().map(|c| c.file_bytes).sum();

    // UnixFS Data (proto2): Type = File, filesize, one unpacked blocksizes entry per child.
    let mut data = Vec::with_capacity(2 + 11 + children.len() * 11);
    data.extend_from_slice(&[0x08, 0x02]);
    data.push(0x18);
    put_varint(&mut data, filesize);
    for c in children {
        data.push(0x20);
        put_varint(&mut data, c.file_bytes);
    }

    // PBNode: Links (field 2) first, then Data (field 1).
    let mut block = Vec::with_capacity(children.len() * 48 + data.len() + 4);
    for c in children {
        let cid_len = c.cid.encoded_len();
        let link_len = 1 + varint_len(cid_len as u64) + cid_len // Hash
            + 2 // Name, empty
            + 1 + varint_len(c.tsize); // Tsize
        block.push(0x12);
        put_varint(&mut block, link_len as u64);
        block.push(0x0a);
        put_varint(&mut block, cid_len as u64);
        c.cid
            .write_bytes(&mut block)
            .expect("writing to a Vec cannot fail");
        block.extend_from_slice(&[0x12, 0x00]);
        block.push(0x18);
        put_varint(&mut block, c.tsize);
    }
    block.push(0x0a);
    put_varint(&mut block, data.len() as u64);
    block.extend_from_slice(&data);

    let cid = cid_of(DAG_PB, &Id::of(&block));
    let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    (
        Block { cid, data: block },
        Entry {
            cid,
            file_bytes: filesize,
            tsize,
        },
    )
}

/// Appends `v` as a protobuf varint (unsigned LEB128).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Length in bytes of `v` as a varint.
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// One link of a UnixFS file node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLink {
    /// The child block: a raw leaf, or another dag-pb node (CIDv0 or v1).
    pub cid: Cid,
    /// file bytes under this child (`blocksizes[i]`)
    pub file_bytes: u64,
}

/// Decoded dag-pb UnixFS File node (as this hub writes it and as other tools may: accept optional
/// inline Data.Data, Type=File or Raw).
///
/// The file bytes under the node are `inline` followed by each link's bytes in order, so the
/// offset of child `i` is `inline.len() + Σ_{j<i} links[j].file_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNode {
    /// The children, in file order.
    pub links: Vec<FileLink>,
    /// Inline file bytes (`Data.Data`); empty for nodes this hub writes.
    pub inline: Vec<u8>,
    /// Total file bytes under the node (checked against `inline` and the links).
    pub filesize: u64,
}

/// Why [`decode_file_node`] refused a block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("block is {len} bytes; blocks over {MAX_DECODE_LEN} bytes are refused")]
    TooLarge { len: usize },
    #[error("{context}: truncated varint")]
    TruncatedVarint { context: &'static str },
    #[error("{context}: varint does not fit in 64 bits")]
    VarintOverflow { context: &'static str },
    #[error("{context}: varint is not minimally encoded")]
    NonMinimalVarint { context: &'static str },
    #[error("{context}: field of {len} bytes runs past the end of its message")]
    Truncated { context: &'static str, len: u64 },
    #[error("{context}: unexpected field {field} with wire type {wire_type}")]
    UnexpectedField {
        context: &'static str,
        field: u64,
        wire_type: u8,
    },
    #[error("{context}: field {field} appears more than once")]
    DuplicateField { context: &'static str, field: u64 },
    #[error("dag-pb fields out of canonical order: {0}")]
    FieldOrder(&'static str),
    #[error("dag-pb link {index} has no Hash")]
    MissingHash { index: usize },
    #[error("dag-pb link {index} Hash is not a valid CID: {reason}")]
    InvalidCid { index: usize, reason: String },
    #[error("file link {index} has a non-empty Name; file links must be unnamed")]
    NamedLink { index: usize },
    #[error("dag-pb node has no Data, so it is not a UnixFS node")]
    MissingData,
    #[error("UnixFS Data has no Type")]
    MissingType,
    #[error("UnixFS Type {0} is not a file (expected File = 2 or Raw = 0)")]
    NotAFile(u64),
    #[error("file node has {links} links but {blocksizes} blocksizes")]
    CountMismatch { links: usize, blocksizes: usize },
    #[error("UnixFS filesize is {declared} but inline data and blocksizes add up to {computed}")]
    FilesizeMismatch { declared: u64, computed: u64 },
    #[error("UnixFS file sizes overflow 64 bits")]
    SizeOverflow,
}

/// Strict decoder: canonical dag-pb field order (Links then Data), PBLink fields in order 1,2,3,
/// links count == blocksizes count, no non-empty link Name, Type must be File(2) or Raw(0), blocks
/// over 2 MiB refused. Errors are a `thiserror` enum `Error` in this module with clear messages.
///
/// Also refused: truncated, over-long or non-minimal varints, duplicated singular fields,
/// unknown fields, a link without Hash or whose Hash is not exactly one CID, a missing Data or
/// Type, and a `filesize` that differs from `len(inline) + Σ blocksizes`. `blocksizes` may be
/// unpacked (as every UnixFS writer does) or packed (valid protobuf). The optional UnixFS fields
/// `hashType`, `fanout`, `mode` and `mtime` are skipped.
pub fn decode_file_node(block: &[u8]) -> Result<FileNode, Error> {
    if block.len() > MAX_DECODE_LEN {
        return Err(Error::TooLarge { len: block.len() });
    }
    let node = parse_pb_node(block)?;
    let data = node.data.ok_or(Error::MissingData)?;
    let unixfs = parse_unixfs_data(data)?;

    let typ = unixfs.typ.ok_or(Error::MissingType)?;
    if typ != TYPE_FILE && typ != TYPE_RAW {
        return Err(Error::NotAFile(typ));
    }
    if node.links.len() != unixfs.blocksizes.len() {
        return Err(Error::CountMismatch {
            links: node.links.len(),
            blocksizes: unixfs.blocksizes.len(),
        });
    }
    let mut computed = unixfs.inline.len() as u64;
    for &size in &unixfs.blocksizes {
        computed = computed.checked_add(size).ok_or(Error::SizeOverflow)?;
    }
    if let Some(declared) = unixfs.filesize
        && declared != computed
    {
        return Err(Error::FilesizeMismatch { declared, computed });
    }

    let mut links = Vec::with_capacity(node.links.len());
    for (index, (link, file_bytes)) in node.links.into_iter().zip(unixfs.blocksizes).enumerate() {
        if !link.name.is_empty() {
            return Err(Error::NamedLink { index });
        }
        links.push(FileLink {
            cid: link.cid,
            file_bytes,
        });
    }
    Ok(FileNode {
        links,
        inline: unixfs.inline.to_vec(),
        filesize: computed,
    })
}

const TYPE_RAW: u64 = 0;
const TYPE_FILE: u64 = 2;

const WIRE_VARINT: u8 = 0;
const WIRE_LEN: u8 = 2;

/// A decoded `PBLink`.
#[derive(Debug)]
struct PbLink<'a> {
    cid: Cid,
    name: &'a [u8],
    #[cfg_attr(not(test), allow(dead_code))]
    tsize: Option<u64>,
}

/// A decoded `PBNode`.
#[derive(Debug)]
struct PbNode<'a> {
    links: Vec<PbLink<'a>>,
    data: Option<&'a [u8]>,
}

/// Parses dag-pb in its strict canonical form (the rules of @ipld/dag-pb and go-codec-dagpb).
fn parse_pb_node(block: &[u8]) -> Result<PbNode<'_>, Error> {
    let mut r = Reader {
        buf: block,
        context: "dag-pb PBNode",
    };
    let mut links = Vec::new();
    let mut data = None;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        match (field, wire_type) {
            (2, WIRE_LEN) => {
                if data.is_some() {
                    return Err(Error::FieldOrder("PBNode Links after Data"));
                }
                let bytes = r.bytes()?;
                links.push(parse_pb_link(bytes, links.len())?);
            }
            (1, WIRE_LEN) => {
                if data.is_some() {
                    return Err(Error::DuplicateField {
                        context: r.context,
                        field,
                    });
                }
                data = Some(r.bytes()?);
            }
            _ => {
                return Err(Error::UnexpectedField {
                    context: r.context,
                    field,
                    wire_type,
                });
            }
        }
    }
    Ok(PbNode { links, data })
}

fn parse_pb_link(bytes: &[u8], index: usize) -> Result<PbLink<'_>, Error> {
    let mut r = Reader {
        buf: bytes,
        context: "dag-pb PBLink",
    };
    let mut last = 0;
    let mut cid = None;
    let mut name: &[u8] = &[];
    let mut tsize = None;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        match (field, wire_type) {
            (1, WIRE_LEN) | (2, WIRE_LEN) | (3, WIRE_VARINT) => {}
            _ => {
                return Err(Error::UnexpectedField {
                    context: r.context,
                    field,
                    wire_type,
                });
            }
        }
        if field == last {
            return Err(Error::DuplicateField {
                context: r.context,
                field,
            });
        }
        if field < last {
            return Err(Error::FieldOrder(
                "PBLink fields must be Hash, Name, Tsize in that order",
            ));
        }
        last = field;
        match field {
            1 => {
                let mut hash = r.bytes()?;
                let parsed = Cid::read_bytes(&mut hash).map_err(|e| Error::InvalidCid {
                    index,
                    reason: e.to_string(),
                })?;
                if !hash.is_empty() {
                    return Err(Error::InvalidCid {
                        index,
                        reason: format!("{} trailing bytes after the CID", hash.len()),
                    });
                }
                cid = Some(parsed);
            }
            2 => name = r.bytes()?,
            _ => tsize = Some(r.varint()?),
        }
    }
    let cid = cid.ok_or(Error::MissingHash { index })?;
    Ok(PbLink { cid, name, tsize })
}

/// The UnixFS `Data` message fields a file reader needs.
#[derive(Debug, Default)]
struct UnixfsData<'a> {
    typ: Option<u64>,
    inline: &'a [u8],
    filesize: Option<u64>,
    blocksizes: Vec<u64>,
}

/// Parses the proto2 UnixFS `Data` message (field order free, as protobuf allows).
fn parse_unixfs_data(bytes: &[u8]) -> Result<UnixfsData<'_>, Error> {
    let mut r = Reader {
        buf: bytes,
        context: "UnixFS Data",
    };
    let mut out = UnixfsData::default();
    let mut seen = 0u16; // bit per singular field number (1..=8)
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        if field != 4 && (1..=8).contains(&field) {
            if seen & (1 << field) != 0 {
                return Err(Error::DuplicateField {
                    context: r.context,
                    field,
                });
            }
            seen |= 1 << field;
        }
        match (field, wire_type) {
            (1, WIRE_VARINT) => out.typ = Some(r.varint()?),
            (2, WIRE_LEN) => out.inline = r.bytes()?,
            (3, WIRE_VARINT) => out.filesize = Some(r.varint()?),
            (4, WIRE_VARINT) => out.blocksizes.push(r.varint()?),
            (4, WIRE_LEN) => {
                let mut packed = Reader {
                    buf: r.bytes()?,
                    context: "UnixFS Data blocksizes",
                };
                while !packed.is_empty() {
                    out.blocksizes.push(packed.varint()?);
                }
            }
            // hashType, fanout, mode: meaningless or unused for serving file bytes.
            (5..=7, WIRE_VARINT) => {
                r.varint()?;
            }
            // mtime (a UnixTime message).
            (8, WIRE_LEN) => {
                r.bytes()?;
            }
            _ => {
                return Err(Error::UnexpectedField {
                    context: r.context,
                    field,
                    wire_type,
                });
            }
        }
    }
    Ok(out)
}

/// A cursor over one protobuf message.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    context: &'static str,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads a minimal varint of at most 64 bits.
    fn varint(&mut self) -> Result<u64, Error> {
        let context = self.context;
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            let group = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(Error::VarintOverflow { context });
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(Error::NonMinimalVarint { context });
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(Error::VarintOverflow { context })
        } else {
            Err(Error::TruncatedVarint { context })
        }
    }

    /// Reads a field key: (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), Error> {
        let key = self.varint()?;
        let (field, wire_type) = (key >> 3, (key & 7) as u8);
        if field == 0 {
            return Err(Error::UnexpectedField {
                context: self.context,
                field,
                wire_type,
            });
        }
        Ok((field, wire_type))
    }

    /// Reads a length-delimited field's bytes.
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(Error::Truncated {
                context: self.context,
                len,
            });
        }
        let (bytes, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::digest_of;
    use std::collections::HashMap;

    const MIB: usize = 1_048_576;

    /// IPIP-499 deterministic bytes: ChaCha20 (RFC 8439, 12-byte zero nonce, counter from 0)
    /// keystream under the key sha256(seed).
    fn deterministic_bytes(seed: &str, len: usize) -> Vec<u8> {
        use sha2::Digest;
        fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
            s[a] = s[a].wrapping_add(s[b]);
            s[d] = (s[d] ^ s[a]).rotate_left(16);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_left(12);
            s[a] = s[a].wrapping_add(s[b]);
            s[d] = (s[d] ^ s[a]).rotate_left(8);
            s[c] = s[c].wrapping_add(s[d]);
            s[b] = (s[b] ^ s[c]).rotate_left(7);
        }
        let key: [u8; 32] = sha2::Sha256::digest(seed.as_bytes()).into();
        let mut init = [0u32; 16];
        init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for (i, word) in key.chunks_exact(4).enumerate() {
            init[4 + i] = u32::from_le_bytes(word.try_into().unwrap());
        }
        let mut out = Vec::with_capacity(len + 64);
        let mut counter = 0u32;
        while out.len() < len {
            init[12] = counter;
            let mut s = init;
            for _ in 0..10 {
                quarter(&mut s, 0, 4, 8, 12);
                quarter(&mut s, 1, 5, 9, 13);
                quarter(&mut s, 2, 6, 10, 14);
                quarter(&mut s, 3, 7, 11, 15);
                quarter(&mut s, 0, 5, 10, 15);
                quarter(&mut s, 1, 6, 11, 12);
                quarter(&mut s, 2, 7, 8, 13);
                quarter(&mut s, 3, 4, 9, 14);
            }
            for (w, i) in s.iter().zip(init) {
                out.extend_from_slice(&w.wrapping_add(i).to_le_bytes());
            }
            counter += 1;
        }
        out.truncate(len);
        out
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn block_map(blocks: &[Block]) -> HashMap<Cid, Vec<u8>> {
        blocks.iter().map(|b| (b.cid, b.data.clone())).collect()
    }

    /// Checks every block's CID against its bytes and that parents come after their children.
    fn check_blocks(blocks: &[Block]) {
        let mut seen = std::collections::HashSet::new();
        for b in blocks {
            assert_eq!(digest_of(&b.cid).unwrap(), Id::of(&b.data));
            assert_eq!(b.cid.version(), cid::Version::V1);
            if b.cid.codec() == DAG_PB {
                for link in decode_file_node(&b.data).unwrap().links {
                    assert!(seen.contains(&link.cid), "parent stored before its child");
                }
            } else {
                assert_eq!(b.cid.codec(), RAW);
            }
            seen.insert(b.cid);
        }
    }

    /// Walks the tree under `root`: returns the file bytes and the depth of every leaf, and
    /// checks each link's Tsize and blocksize.
    fn walk(root: &Cid, blocks: &HashMap<Cid, Vec<u8>>) -> (Vec<u8>, Vec<usize>) {
        fn go(
            cid: &Cid,
            depth: usize,
            blocks: &HashMap<Cid, Vec<u8>>,
            bytes: &mut Vec<u8>,
            depths: &mut Vec<usize>,
        ) -> (u64, u64) {
            let data = &blocks[cid];
            if cid.codec() == RAW {
                bytes.extend_from_slice(data);
                depths.push(depth);
                return (data.len() as u64, data.len() as u64);
            }
            let node = decode_file_node(data).unwrap();
            let pb = parse_pb_node(data).unwrap();
            let mut tsize = data.len() as u64;
            for (link, pb_link) in node.links.iter().zip(&pb.links) {
                let (file_bytes, child_tsize) = go(&link.cid, depth + 1, blocks, bytes, depths);
                assert_eq!(link.file_bytes, file_bytes);
                assert_eq!(pb_link.tsize, Some(child_tsize));
                assert!(pb_link.name.is_empty());
                tsize += child_tsize;
            }
            (node.filesize, tsize)
        }
        let (mut bytes, mut depths) = (Vec::new(), Vec::new());
        go(root, 0, blocks, &mut bytes, &mut depths);
        (bytes, depths)
    }

    #[test]
    fn profile_constants() {
        assert_eq!(UNIXFS_V1_2025.chunk_size, 1_048_576);
        assert_eq!(UNIXFS_V1_2025.max_links, 1024);
    }

    #[test]
    fn hello_world_is_a_single_raw_block() {
        let (root, blocks) = import_bytes(UNIXFS_V1_2025, b"hello world");
        assert_eq!(
            root.to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        assert_eq!(
            blocks,
            vec![Block {
                cid: root,
                data: b"hello world".to_vec()
            }]
        );
    }

    #[test]
    fn empty_file_is_the_empty_raw_block() {
        let empty = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        let (root, blocks) = import_bytes(UNIXFS_V1_2025, b"");
        assert_eq!(root.to_string(), empty);
        assert_eq!(
            blocks,
            vec![Block {
                cid: root,
                data: Vec::new()
            }]
        );
        let (root, blocks, size) = TreeBuilder::new(UNIXFS_V1_2025).finish();
        assert_eq!(
            (root.to_string().as_str(), blocks, size),
            (empty, vec![], 0)
        );
    }

    #[test]
    fn chacha_vectors_one_chunk_and_one_chunk_plus_one() {
        let bytes = deterministic_bytes("chunk-v1-seed", MIB + 1);
        assert_eq!(
            hex::encode(&bytes[..16]),
            "d0e858d590ad0786d216007abe1a38d1"
        );

        let (root, blocks) = import_bytes(UNIXFS_V1_2025, &bytes[..MIB]);
        assert_eq!(
            root.to_string(),
            "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta"
        );
        assert_eq!(blocks.len(), 1);

        let (root, blocks) = import_bytes(UNIXFS_V1_2025, &bytes);
        assert_eq!(
            root.to_string(),
            "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"
        );
        check_blocks(&blocks);
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks[1].cid.to_string(),
            "bafkreicnpm7pomakz5ymrewygj63qjzpkrbuvw6gdjhbgcswhs2zudipi4"
        );
        let root_block = &blocks[2];
        assert_eq!(root_block.cid, root);
        assert_eq!(
            hex::encode(&root_block.data),
            concat!(
                "122c0a24015512200268cb8e7373247d08ea6c0846700eb7b9c8eb58bfecbd921e4252e9e266ec98120018808040",
                "122a0a24015512204d7b3ef7300acf70c892d8327db8272f54434adbc61a4e130a563cb59a0d0f4712001801",
                "0a0c080218818040208080402001",
            )
        );
        // DAG size as reported by IPFS: 104 + 1,048,576 + 1.
        assert_eq!(
            blocks.iter().map(|b| b.data.len()).sum::<usize>(),
            1_048_681
        );
        let (file, depths) = walk(&root, &block_map(&blocks));
        assert_eq!(file, bytes);
        assert_eq!(depths, vec![1, 1]);
    }

    #[test]
    fn three_mib_pattern_vector() {
        let bytes = pattern(3 * MIB);
        let (root, blocks) = import_bytes(UNIXFS_V1_2025, &bytes);
        assert_eq!(
            root.to_string(),
            "bafybeihzpjrbcpjpzcx4yxh3hasnjidsikmwmsrli7hhamhny5iueulu5a"
        );
        check_blocks(&blocks);
        let leaves: Vec<String> = blocks[..3].iter().map(|b| b.cid.to_string()).collect();
        assert_eq!(
            leaves,
            [
                "bafkreidddocae7lltzjlkooe5a3tmiwsgazn7logjvqk7bzttsidpzhxne",
                "bafkreidstoivl4acmgticaamzuh7edtvb3j5kjnvwhtpzfqyg6r3wztp2y",
                "bafkreigil34yxceumudofrkirqcls7mgwxwccsw5cbguqsndcrpv4sp5mu",
            ]
        );
        let root_block = &blocks[3];
        assert_eq!(root_block.data.len(), 159);
        let root_hex = hex::encode(&root_block.data);
        // Data is the last field: tag, 19-byte length, then the UnixFS message.
        assert!(root_hex.ends_with("0a130802188080c001208080402080804020808040"));
        for leaf in &blocks[..3] {
            let link = format!("122c0a24{}120018808040", hex::encode(leaf.cid.to_bytes()));
            assert!(root_hex.contains(&link));
        }
        let node = decode_file_node(&root_block.data).unwrap();
        assert_eq!(
            node,
            FileNode {
                links: blocks[..3]
                    .iter()
                    .map(|b| FileLink {
                        cid: b.cid,
                        file_bytes: MIB as u64
                    })
                    .collect(),
                inline: vec![],
                filesize: 3 * MIB as u64,
            }
        );
    }

    #[test]
    fn two_and_a_half_mib_plus_seven_pattern_vector() {
        let bytes = pattern(5 * MIB / 2 + 7);
        let (root, blocks) = import_bytes(UNIXFS_V1_2025, &bytes);
        assert_eq!(
            root.to_string(),
            "bafybeign62xbntnafqbd2elad7omfucbjlnfpa3d454fltteqjx4zwcugq"
        );
        check_blocks(&blocks);
        let (file, _) = walk(&root, &block_map(&blocks));
        assert_eq!(file, bytes);
    }

    #[test]
    fn small_profile_tree_is_balanced() {
        // 10 leaves of width 3: 3^2 < 10 <= 3^3, so every leaf sits at depth 3.
        let profile = Profile {
            chunk_size: 4,
            max_links: 3,
        };
        let bytes: Vec<u8> = (0..38u8).collect(); // last leaf is 2 bytes
        let (root, blocks) = import_bytes(profile, &bytes);
        check_blocks(&blocks);
        let map = block_map(&blocks);
        let (file, depths) = walk(&root, &map);
        assert_eq!(file, bytes);
        assert_eq!(depths, vec![3; 10]);

        // Root: a full 9-leaf subtree, then the 10th leaf wrapped in two one-link nodes.
        let top = decode_file_node(&map[&root]).unwrap();
        assert_eq!(top.filesize, 38);
        assert_eq!(
            top.links.iter().map(|l| l.file_bytes).collect::<Vec<_>>(),
            [36, 2]
        );
        let full = decode_file_node(&map[&top.links[0].cid]).unwrap();
        assert_eq!(full.links.len(), 3);
        for l in &full.links {
            assert_eq!(decode_file_node(&map[&l.cid]).unwrap().links.len(), 3);
        }
        let spine = decode_file_node(&map[&top.links[1].cid]).unwrap();
        assert_eq!(spine.links.len(), 1);
        let lone = decode_file_node(&map[&spine.links[0].cid]).unwrap();
        assert_eq!(
            lone.links,
            vec![FileLink {
                cid: blocks[blocks.len() - 4].cid,
                file_bytes: 2
            }]
        );

        // 9 leaves exactly: a full tree of depth 2, no extra level.
        let (root, blocks) = import_bytes(profile, &bytes[..36]);
        let (_, depths) = walk(&root, &block_map(&blocks));
        assert_eq!(depths, vec![2; 9]);
    }

    #[test]
    fn full_width_plus_one_leaf_wraps_the_lone_leaf() {
        // 1025 one-byte leaves with the real width: root with a full node and a one-link node.
        let profile = Profile {
            chunk_size: 1,
            max_links: 1024,
        };
        let bytes: Vec<u8> = (0..1025u32).map(|i| (i % 256) as u8).collect();
        let (root, blocks) = import_bytes(profile, &bytes);
        check_blocks(&blocks);
        let map = block_map(&blocks);
        let top = decode_file_node(&map[&root]).unwrap();
        assert_eq!(
            top.links.iter().map(|l| l.file_bytes).collect::<Vec<_>>(),
            [1024, 1]
        );
        assert_eq!(
            decode_file_node(&map[&top.links[0].cid])
                .unwrap()
                .links
                .len(),
            1024
        );
        let lone = decode_file_node(&map[&top.links[1].cid]).unwrap();
        assert_eq!(
            lone.links,
            vec![FileLink {
                cid: cid_of(RAW, &Id::of(&[0])),
                file_bytes: 1
            }]
        );
        let (file, depths) = walk(&root, &map);
        assert_eq!(file, bytes);
        assert!(depths.iter().all(|&d| d == 2));
    }

    #[test]
    fn builder_emits_nodes_as_soon_as_they_are_complete() {
        let profile = Profile {
            chunk_size: 1,
            max_links: 3,
        };
        let mut tree = TreeBuilder::new(profile);
        let leaf = |i: u8| cid_of(RAW, &Id::of(&[i]));
        let emitted: Vec<usize> = (0..9u8).map(|i| tree.push_leaf(leaf(i), 1).len()).collect();
        assert_eq!(emitted, [0, 0, 1, 0, 0, 1, 0, 0, 2]);
        let root_of_nine = {
            let mut t = TreeBuilder::new(profile);
            let mut last = Vec::new();
            for i in 0..9u8 {
                last = t.push_leaf(leaf(i), 1);
            }
            last[1].cid
        };
        let (root, rest, size) = tree.finish();
        assert_eq!((root, rest, size), (root_of_nine, vec![], 9));

        // One leaf: the leaf is the root.
        let mut tree = TreeBuilder::new(UNIXFS_V1_2025);
        assert!(tree.push_leaf(leaf(7), 1).is_empty());
        assert_eq!(tree.finish(), (leaf(7), vec![], 1));
    }

    // ---- decoder ----

    fn pb_link(cid: &Cid, name: &[u8], tsize: u64) -> Vec<u8> {
        let mut l = vec![0x0a];
        put_varint(&mut l, cid.encoded_len() as u64);
        l.extend(cid.to_bytes());
        l.push(0x12);
        put_varint(&mut l, name.len() as u64);
        l.extend_from_slice(name);
        l.push(0x18);
        put_varint(&mut l, tsize);
        l
    }

    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        put_varint(&mut f, body.len() as u64);
        f.extend_from_slice(body);
        f
    }

    fn pb_node(links: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
        let mut n: Vec<u8> = links.iter().flat_map(|l| field(0x12, l)).collect();
        n.extend(field(0x0a, data));
        n
    }

    fn leaf_cid() -> Cid {
        cid_of(RAW, &Id::of(b"abc"))
    }

    #[test]
    fn decodes_nodes_other_tools_write() {
        // Our own node round-trips.
        let (root, blocks) = import_bytes(
            Profile {
                chunk_size: 3,
                max_links: 4,
            },
            b"abcdefg",
        );
        let node = decode_file_node(&blocks.last().unwrap().data).unwrap();
        assert_eq!(blocks.last().unwrap().cid, root);
        assert_eq!(
            node.links.iter().map(|l| l.file_bytes).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(node.links[0].cid, leaf_cid());
        assert_eq!((node.inline.as_slice(), node.filesize), (&b""[..], 7));

        // A dag-pb leaf with inline data (js `rawLeaves: false`) and a legacy Raw leaf.
        let file_leaf = pb_node(
            &[],
            &[
                0x08, 0x02, 0x12, 0x05, b'h', b'e', b'l', b'l', b'o', 0x18, 0x05,
            ],
        );
        assert_eq!(
            decode_file_node(&file_leaf).unwrap(),
            FileNode {
                links: vec![],
                inline: b"hello".to_vec(),
                filesize: 5
            }
        );
        let raw_leaf = pb_node(&[], &[0x08, 0x00, 0x12, 0x03, b'a', b'b', b'c']);
        assert_eq!(
            decode_file_node(&raw_leaf).unwrap(),
            FileNode {
                links: vec![],
                inline: b"abc".to_vec(),
                filesize: 3
            }
        );

        // Inline data plus links, packed blocksizes, mode and mtime, CIDv0 child, no Tsize.
        let v0 = Cid::new_v0(*leaf_cid().hash()).unwrap();
        let mut link = vec![0x0a, 34];
        link.extend(v0.to_bytes());
        let data = [
            &[
                0x08, 0x02, 0x12, 0x02, b'x', b'y', 0x18, 0x05, 0x22, 0x01, 0x03,
            ][..],
            &[0x38, 0xa4, 0x03, 0x42, 0x02, 0x08, 0x01],
        ]
        .concat();
        let node = decode_file_node(&pb_node(&[link], &data)).unwrap();
        assert_eq!(
            node,
            FileNode {
                links: vec![FileLink {
                    cid: v0,
                    file_bytes: 3
                }],
                inline: b"xy".to_vec(),
                filesize: 5
            }
        );
    }

    #[test]
    fn decoder_rejections() {
        let c = leaf_cid();
        let good_link = pb_link(&c, b"", 3);
        let data = [0x08, 0x02, 0x18, 0x03, 0x20, 0x03];
        let good = pb_node(std::slice::from_ref(&good_link), &data);
        assert!(decode_file_node(&good).is_ok());

        // Data before Links.
        let mut swapped = field(0x0a, &data);
        swapped.extend(field(0x12, &good_link));
        assert_eq!(
            decode_file_node(&swapped),
            Err(Error::FieldOrder("PBNode Links after Data"))
        );

        // PBLink fields out of order (Name before Hash).
        let mut link = vec![0x12, 0x00];
        link.push(0x0a);
        put_varint(&mut link, c.encoded_len() as u64);
        link.extend(c.to_bytes());
        assert!(matches!(
            decode_file_node(&pb_node(&[link], &data)),
            Err(Error::FieldOrder(_))
        ));

        // Duplicate Data.
        let mut dup = good.clone();
        dup.extend(field(0x0a, &data));
        assert!(matches!(
            decode_file_node(&dup),
            Err(Error::DuplicateField { field: 1, .. })
        ));

        // Named link.
        let named = pb_node(&[pb_link(&c, b"a", 3)], &data);
        assert_eq!(decode_file_node(&named), Err(Error::NamedLink { index: 0 }));

        // blocksizes / links count mismatch.
        let two = pb_node(&[good_link.clone(), good_link.clone()], &data);
        assert_eq!(
            decode_file_node(&two),
            Err(Error::CountMismatch {
                links: 2,
                blocksizes: 1
            })
        );

        // filesize disagreeing with the blocksizes.
        let wrong_size = pb_node(
            std::slice::from_ref(&good_link),
            &[0x08, 0x02, 0x18, 0x04, 0x20, 0x03],
        );
        assert_eq!(
            decode_file_node(&wrong_size),
            Err(Error::FilesizeMismatch {
                declared: 4,
                computed: 3
            })
        );

        // Not a file.
        assert_eq!(
            decode_file_node(&pb_node(&[], &[0x08, 0x01])),
            Err(Error::NotAFile(1))
        );
        assert_eq!(
            decode_file_node(&pb_node(&[], &[0x18, 0x00])),
            Err(Error::MissingType)
        );
        assert_eq!(
            decode_file_node(&field(0x12, &good_link)),
            Err(Error::MissingData)
        );

        // Truncated varint, truncated field, non-minimal and overlong varints.
        assert_eq!(
            decode_file_node(&[0x0a, 0x80]),
            Err(Error::TruncatedVarint {
                context: "dag-pb PBNode"
            })
        );
        assert_eq!(
            decode_file_node(&[0x0a, 0x05, 0x08]),
            Err(Error::Truncated {
                context: "dag-pb PBNode",
                len: 5
            })
        );
        assert_eq!(
            decode_file_node(&[0x0a, 0x82, 0x00, 0x08, 0x02]),
            Err(Error::NonMinimalVarint {
                context: "dag-pb PBNode"
            })
        );
        let mut long = vec![0x0a];
        long.extend([0xff; 10]);
        long.push(0x01);
        assert_eq!(
            decode_file_node(&long),
            Err(Error::VarintOverflow {
                context: "dag-pb PBNode"
            })
        );

        // Unknown field, bad CID, link without Hash.
        assert!(matches!(
            decode_file_node(&[0x1a, 0x00]),
            Err(Error::UnexpectedField {
                field: 3,
                wire_type: 2,
                ..
            })
        ));
        let bad_cid = pb_node(&[vec![0x0a, 0x02, 0x01, 0x55, 0x12, 0x00]], &data);
        assert!(matches!(
            decode_file_node(&bad_cid),
            Err(Error::InvalidCid { index: 0, .. })
        ));
        let no_hash = pb_node(&[vec![0x12, 0x00, 0x18, 0x03]], &data);
        assert_eq!(
            decode_file_node(&no_hash),
            Err(Error::MissingHash { index: 0 })
        );

        // Oversize block.
        let huge = vec![0u8; MAX_DECODE_LEN + 1];
        assert_eq!(
            decode_file_node(&huge),
            Err(Error::TooLarge {
                len: MAX_DECODE_LEN + 1
            })
        );
        assert!(Error::TooLarge { len: 3 }.to_string().contains("2097152"));
    }

    #[test]
    fn varint_helpers_agree() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            let mut r = Reader {
                buf: &buf,
                context: "test",
            };
            assert_eq!(r.varint(), Ok(v));
            assert!(r.is_empty());
        }
    }
}
