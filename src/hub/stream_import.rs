//! `car import` in one pass: a CAR whose blocks come in the order this hub's export (and
//! `ipfs dag export`) writes them, depth-first in link order, goes into the store as it is
//! read, from a file or straight from another hub's answer, with no copy of the archive on
//! disk and nothing read twice.
//!
//! Nodes (DAG-CBOR and dag-pb) are checked against their CIDs as they arrive and kept in
//! memory for the checks after the pass ([`clone::load`] recomputes every Muse id from
//! them). A snapshot's entries say which object each file tree is, so when a tree's root
//! arrives its object's bytes follow, leaf by leaf in file order. Leaves are not hashed on
//! arrival: an [`ObjectWriter`] hashes each byte twice (its Muse id, its leaf CID) and
//! rebuilds the tree, whose root must be the CID the snapshot links, so a forged leaf fails
//! there. An object the hub holds under the same CID is skipped without reading its leaves.
//!
//! A CAR in another order (a leaf before its tree, a block that went by and is needed again
//! from somewhere this pass cannot reread) gives [`StreamError::Order`]; the caller then reads
//! the archive by index instead.

use std::collections::{HashMap, HashSet};

use anyhow::anyhow;
use bytes::Bytes;
use cid::Cid;
use tokio::io::AsyncRead;

use super::{Hub, dag as hubdag};
use crate::car::CarReader;
use crate::cids::{self, DAG_CBOR, DAG_PB, Id, RAW};
use crate::clone::MAX_SECTION;
use crate::dag::{self, Entry, RefState};
use crate::storage::{Ingest, ObjectWriter, Staged, unixfs};

/// Small objects (one raw block each) stored at once while the pass reads on.
const SMALL_IN_FLIGHT: usize = 8;

/// Why a CAR could not be imported in one pass.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The blocks are not in an order one pass can follow; indexing the CAR may still work.
    Order(String),
    /// The CAR is bad (or the store failed): indexing it would not help.
    Bad(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for StreamError {
    fn from(e: E) -> Self {
        StreamError::Bad(e.into())
    }
}

/// What one pass gathered, nothing of it recorded yet.
#[derive(Debug)]
pub(super) struct Streamed {
    pub root: Cid,
    /// Every DAG-CBOR node, checked against its CID.
    pub nodes: HashMap<Cid, Bytes>,
    /// Ref-states among the nodes, newest first.
    pub states: Vec<(Cid, RefState)>,
    /// Objects written, checked and recorded (joining no repo yet), with their bytes.
    pub stored: HashMap<Id, u64>,
    /// Objects the hub held under the CID the CAR links (their leaves were skipped).
    pub held: HashSet<Id>,
}

/// The next piece of the object being written.
#[derive(Debug)]
enum Piece {
    Block(Cid),
    Inline(Bytes),
}

/// The object whose blocks are arriving.
#[derive(Debug)]
struct Current {
    oid: Id,
    cid: Cid,
    /// `None` when the hub holds the object: its leaves are skipped.
    writer: Option<ObjectWriter>,
    /// A stack: the next piece is last.
    expect: Vec<Piece>,
    /// Leaves taken so far: CID → (offset, length), to reread one the tree names again.
    taken: HashMap<Cid, (u64, usize)>,
    at: u64,
}

impl Current {
    fn push_children(&mut self, node: unixfs::FileNode) {
        self.expect
            .extend(node.links.iter().rev().map(|l| Piece::Block(l.cid)));
        if !node.inline.is_empty() {
            self.expect.push(Piece::Inline(Bytes::from(node.inline)));
        }
    }

    async fn take(&mut self, cid: Option<Cid>, data: Bytes) -> Result<(), StreamError> {
        let len = data.len();
        if let Some(w) = &mut self.writer {
            w.write_bytes(data).await?;
        }
        if let Some(cid) = cid {
            self.taken.entry(cid).or_insert((self.at, len));
        }
        self.at += len as u64;
        Ok(())
    }

    fn next_is(&self, cid: &Cid) -> bool {
        matches!(self.expect.last(), Some(Piece::Block(c)) if c == cid)
    }
}

struct Pass<'h, 'p> {
    hub: &'h Hub,
    progress: &'p (dyn Fn(u64, usize, usize) + Sync),
    nodes: HashMap<Cid, Bytes>,
    /// dag-pb nodes seen, for a subtree the file names twice.
    trees: HashMap<Cid, Bytes>,
    states: Vec<(Cid, RefState)>,
    /// Object CIDs named by the snapshot entries seen so far.
    named: HashMap<Cid, Id>,
    held: HashSet<Id>,
    /// Object CIDs whose blocks have come (or were skipped).
    done: HashSet<Cid>,
    current: Option<Current>,
    /// Leaves of this pass's earlier whole objects: digest → (object, offset, length).
    earlier: HashMap<Id, (Id, u64, u64)>,
    /// Records what is stored in batches, so the pass holds one batch at most.
    ingest: Ingest,
    stored: HashMap<Id, u64>,
    small: tokio::task::JoinSet<Result<Staged, StreamError>>,
    bytes: u64,
}

impl Hub {
    /// Reads a CAR in one pass, storing its objects (see the module docs).
    pub(super) async fn stream_car<R: AsyncRead + Unpin>(
        &self,
        reader: R,
        progress: &(dyn Fn(u64, usize, usize) + Sync),
    ) -> Result<Streamed, StreamError> {
        let mut car = CarReader::new(reader, MAX_SECTION)
            .await
            .map_err(|e| anyhow!("not a readable CARv1 archive: {e}"))?;
        let root = match car.roots() {
            [root] => *root,
            roots => {
                return Err(anyhow!(
                    "the CAR has {} roots; a Muse CAR has exactly one (the commit CID)",
                    roots.len()
                )
                .into());
            }
        };
        let mut pass = Pass {
            hub: self,
            progress,
            nodes: HashMap::new(),
            trees: HashMap::new(),
            states: Vec::new(),
            named: HashMap::new(),
            held: HashSet::new(),
            done: HashSet::new(),
            current: None,
            earlier: HashMap::new(),
            ingest: self.store.ingest_unattached(),
            stored: HashMap::new(),
            small: tokio::task::JoinSet::new(),
            bytes: 0,
        };
        let mut n = 0usize;
        loop {
            let section = car
                .next_section(|cid| pass.wants(cid))
                .await
                .map_err(|e| anyhow!("after {n} good blocks: {e}"))?;
            let Some((cid, len, data)) = section else {
                break;
            };
            n += 1;
            match (cid.codec(), data) {
                (RAW, None) => pass.skip_leaf(cid, len).await?,
                (RAW, Some(data)) => pass.on_raw(cid, Bytes::from(data)).await?,
                (DAG_PB, Some(data)) => {
                    dag::check_block(&cid, &data).map_err(|e| anyhow!("block #{n}: {e}"))?;
                    pass.on_tree_node(cid, Bytes::from(data)).await?;
                }
                (DAG_CBOR, Some(data)) => {
                    dag::check_block(&cid, &data).map_err(|e| anyhow!("block #{n}: {e}"))?;
                    pass.on_dag_node(cid, Bytes::from(data)).await?;
                }
                (codec, _) => {
                    return Err(anyhow!(
                        "block {cid} has codec {codec:#x}; a Muse CAR holds only raw, dag-pb and dag-cbor blocks"
                    )
                    .into());
                }
            }
        }
        if let Some(cur) = &pass.current {
            return Err(StreamError::Order(format!(
                "the CAR ends before every block of object {} ({}) came",
                cur.oid, cur.cid
            )));
        }
        while let Some(r) = pass.small.join_next().await {
            pass.add_staged(r.map_err(|e| anyhow!("storing an object: {e}"))??)
                .await?;
        }
        pass.ingest.commit().await?;
        pass.states.sort_by_key(|(_, s)| std::cmp::Reverse(s.seq));
        Ok(Streamed {
            root,
            nodes: pass.nodes,
            states: pass.states,
            stored: pass.stored,
            held: pass.held,
        })
    }
}

impl Pass<'_, '_> {
    /// Whether a section's data is read: not a leaf of an object the hub holds.
    fn wants(&self, cid: &Cid) -> bool {
        if cid.codec() != RAW {
            return true;
        }
        match &self.current {
            Some(cur) => !(cur.writer.is_none() && cur.next_is(cid)),
            None => !self
                .named
                .get(cid)
                .is_some_and(|oid| self.held.contains(oid)),
        }
    }

    fn out_of_order(&self, cid: &Cid, what: &str) -> StreamError {
        let now = match &self.current {
            Some(cur) => format!(" while object {} ({}) was being read", cur.oid, cur.cid),
            None => String::new(),
        };
        StreamError::Order(format!("{what} {cid} came out of depth-first order{now}"))
    }

    /// A commit, snapshot, snapshot part or ref-state: kept; a snapshot's entries learned.
    async fn on_dag_node(&mut self, cid: Cid, data: Bytes) -> Result<(), StreamError> {
        if self.current.is_some() {
            return Err(self.out_of_order(&cid, "DAG-CBOR node"));
        }
        match node_type(&data) {
            Some(dag::SNAPSHOT) => {
                let node =
                    dag::decode_snapshot(&data).map_err(|e| anyhow!("snapshot node {cid}: {e}"))?;
                if let dag::SnapshotBody::Entries(entries) = &node.body {
                    self.learn(entries).await?;
                }
            }
            Some(dag::SNAPSHOT_PART) => {
                let entries = dag::decode_snapshot_part(&data)
                    .map_err(|e| anyhow!("snapshot part {cid}: {e}"))?;
                self.learn(&entries).await?;
            }
            Some(_) => {}
            None => {
                if let Ok(state) = RefState::decode(&data) {
                    self.states.push((cid, state));
                }
            }
        }
        self.nodes.insert(cid, data);
        Ok(())
    }

    /// Remembers which object each entry's CID is, and which of them the hub holds.
    async fn learn(&mut self, entries: &[Entry]) -> Result<(), StreamError> {
        let fresh: Vec<(Id, Cid)> = entries
            .iter()
            .filter(|e| !self.named.contains_key(&e.cid))
            .map(|e| (e.object_id, e.cid))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for (oid, cid) in &fresh {
            self.named.insert(*cid, *oid);
        }
        let held = self
            .hub
            .db
            .read(move |c| Ok::<_, crate::db::Error>(hubdag::held_as(c, &fresh)))
            .await?;
        self.held.extend(held);
        Ok(())
    }

    /// A dag-pb node: the root of an object's tree, or the next node inside it.
    async fn on_tree_node(&mut self, cid: Cid, data: Bytes) -> Result<(), StreamError> {
        let node = unixfs::decode_file_node(&data).map_err(|e| anyhow!("file node {cid}: {e}"))?;
        match &mut self.current {
            Some(cur) if cur.next_is(&cid) => {
                cur.expect.pop();
                cur.push_children(node);
            }
            Some(_) => return Err(self.out_of_order(&cid, "file node")),
            None => {
                let Some(&oid) = self.named.get(&cid) else {
                    return Err(self.out_of_order(&cid, "file tree"));
                };
                if !self.done.insert(cid) {
                    return Err(self.out_of_order(&cid, "repeated file tree"));
                }
                let writer = if self.held.contains(&oid) {
                    None
                } else {
                    Some(self.hub.store.writer(oid, node.filesize).await?)
                };
                let mut cur = Current {
                    oid,
                    cid,
                    writer,
                    expect: Vec::new(),
                    taken: HashMap::new(),
                    at: 0,
                };
                cur.push_children(node);
                self.current = Some(cur);
            }
        }
        self.trees.insert(cid, data);
        self.advance().await
    }

    /// A raw block: the next leaf of the object being read, or a one-block object.
    async fn on_raw(&mut self, cid: Cid, data: Bytes) -> Result<(), StreamError> {
        if let Some(cur) = &mut self.current {
            if !cur.next_is(&cid) {
                return Err(self.out_of_order(&cid, "raw block"));
            }
            cur.expect.pop();
            cur.take(Some(cid), data).await?;
            return self.advance().await;
        }
        let Some(&oid) = self.named.get(&cid) else {
            return Err(self.out_of_order(&cid, "raw block"));
        };
        if !self.done.insert(cid) || self.held.contains(&oid) {
            return Ok(());
        }
        if cid != oid.raw_cid() {
            return Err(anyhow!("object {oid} is linked as {cid}, which names other bytes").into());
        }
        let store = self.hub.store.clone();
        self.small.spawn(async move {
            let mut w = store.writer(oid, data.len() as u64).await?;
            w.write_bytes(data).await?;
            Ok(w.finish().await.map_err(|e| object_error(&oid, e))?)
        });
        if self.small.len() >= SMALL_IN_FLIGHT
            && let Some(r) = self.small.join_next().await
        {
            self.add_staged(r.map_err(|e| anyhow!("storing an object: {e}"))??)
                .await?;
        }
        Ok(())
    }

    /// A leaf of an object the hub holds, left unread.
    async fn skip_leaf(&mut self, cid: Cid, len: usize) -> Result<(), StreamError> {
        match &mut self.current {
            Some(cur) if cur.next_is(&cid) => {
                cur.expect.pop();
                cur.taken.entry(cid).or_insert((cur.at, len));
                cur.at += len as u64;
            }
            // A one-block object the hub holds.
            None => {
                self.done.insert(cid);
                return Ok(());
            }
            Some(_) => return Err(self.out_of_order(&cid, "raw block")),
        }
        self.advance().await
    }

    /// Feeds what is already at hand (inline bytes, a leaf or subtree the tree names again),
    /// and finishes the object when nothing more is expected.
    async fn advance(&mut self) -> Result<(), StreamError> {
        loop {
            let Some(cur) = &mut self.current else {
                return Ok(());
            };
            match cur.expect.last() {
                None => return self.finish_current().await,
                Some(Piece::Inline(_)) => {
                    let Some(Piece::Inline(b)) = cur.expect.pop() else {
                        unreachable!("checked above")
                    };
                    cur.take(None, b).await?;
                }
                Some(Piece::Block(c)) if c.codec() == DAG_PB => {
                    // A subtree that went by already (a file that repeats a long stretch).
                    let c = *c;
                    let Some(data) = self.trees.get(&c) else {
                        return Ok(());
                    };
                    let node = unixfs::decode_file_node(data)
                        .map_err(|e| anyhow!("file node {c}: {e}"))?;
                    cur.expect.pop();
                    cur.push_children(node);
                }
                Some(Piece::Block(c)) => {
                    let c = *c;
                    let Some((data, len)) = self.leaf_again(&c).await? else {
                        return Ok(());
                    };
                    let Some(cur) = &mut self.current else {
                        unreachable!("the object is still open")
                    };
                    cur.expect.pop();
                    match data {
                        Some(b) => cur.take(Some(c), b).await?,
                        None => cur.at += len as u64,
                    }
                }
            }
        }
    }

    /// A leaf that went by already, in this object or an earlier one of the pass: its bytes
    /// (`None` when the object is held and needs none) and length. `None` when it has not
    /// come yet.
    async fn leaf_again(&mut self, c: &Cid) -> Result<Option<(Option<Bytes>, usize)>, StreamError> {
        let Some(cur) = &mut self.current else {
            return Ok(None);
        };
        if let Some(&(offset, len)) = cur.taken.get(c) {
            let Some(w) = &mut cur.writer else {
                return Ok(Some((None, len)));
            };
            return match w.reread(offset, len).await? {
                Some(b) => Ok(Some((Some(b), len))),
                None => Err(self.out_of_order(c, "repeated leaf")),
            };
        }
        let Some(&(oid, offset, len)) = cids::digest_of(c).ok().and_then(|d| self.earlier.get(&d))
        else {
            return Ok(None);
        };
        if cur.writer.is_none() {
            return Ok(Some((None, len as usize)));
        }
        let store = self.hub.store.clone();
        let b = tokio::task::spawn_blocking(move || {
            store.read_object_range_blocking(&oid, offset, len as usize)
        })
        .await
        .map_err(|e| anyhow!("rereading a leaf: {e}"))??;
        Ok(Some((Some(b), len as usize)))
    }

    /// Every piece of the object came: its tree must have the CID the snapshot links.
    async fn finish_current(&mut self) -> Result<(), StreamError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let Some(w) = cur.writer else {
            return Ok(());
        };
        let staged = w.finish().await.map_err(|e| object_error(&cur.oid, e))?;
        self.hub
            .check_object_cid(&staged, &cur.oid, &cur.cid)
            .await?;
        for (digest, offset, len) in staged.whole_leaves() {
            self.earlier.entry(digest).or_insert((cur.oid, offset, len));
        }
        self.add_staged(staged).await
    }

    async fn add_staged(&mut self, staged: Staged) -> Result<(), StreamError> {
        self.bytes += staged.size();
        self.stored.insert(staged.object_id(), staged.size());
        self.ingest.add(staged).await?;
        (self.progress)(self.bytes, self.stored.len(), self.named.len());
        Ok(())
    }
}

/// An object whose bytes do not hash to its id, in the words of an import.
pub(super) fn object_error(oid: &Id, e: crate::storage::Error) -> anyhow::Error {
    match e {
        crate::storage::Error::HashMismatch { .. } => anyhow!(
            "object {oid}: its blocks in the CAR do not hash to its id (a damaged or forged block)"
        ),
        e => e.into(),
    }
}

/// The `type` of a node this hub writes with `type` as its first key (commits, snapshots and
/// parts; a ref-state's shorter keys come first), without decoding the node.
fn node_type(data: &[u8]) -> Option<&str> {
    // A map head, the text "type", then a short text value.
    let rest = data.get(1..)?.strip_prefix(b"\x64type")?;
    let (&head, rest) = rest.split_first()?;
    let len = match head {
        0x60..=0x77 => usize::from(head - 0x60),
        0x78 => usize::from(*rest.first()?),
        _ => return None,
    };
    let rest = if head == 0x78 { &rest[1..] } else { rest };
    std::str::from_utf8(rest.get(..len)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dagcbor::Value;

    #[test]
    fn node_types_are_read_from_the_first_key() {
        let snap = crate::dagcbor::encode(&Value::map([
            ("type", Value::text(dag::SNAPSHOT)),
            ("record", Value::map::<&str>([])),
        ]));
        assert_eq!(node_type(&snap), Some(dag::SNAPSHOT));
        let long = crate::dagcbor::encode(&Value::map([("type", Value::text("x".repeat(30)))]));
        assert_eq!(node_type(&long), Some("x".repeat(30).as_str()));
        // A ref-state's "seq" sorts before "type".
        let state = crate::dagcbor::encode(&Value::map([
            ("seq", Value::from(1u64)),
            ("type", Value::text(dag::REF_STATE)),
        ]));
        assert_eq!(node_type(&state), None);
        assert_eq!(node_type(b""), None);
        assert_eq!(node_type(b"\xa1\x64typ"), None);
    }
}
