//! Bitswap 1.2.0 (and 1.1.0 / 1.0.0 for older peers) over libp2p streams, with the block
//! store behind it.
//!
//! The protocol is message based: every message travels on a stream the *sender* opened, so a
//! reply to a wantlist goes out on our own outbound stream. Each connected Bitswap peer gets
//! one sender task that batches queued blocks, presences and wants into messages and keeps
//! one outbound stream open while there is traffic. Inbound streams are read until EOF, any
//! number of messages each.
//!
//! Serving: a want is answered from [`Hub::public_block`] only, so blocks of private repos
//! are never sent (they answer `DONT_HAVE`, exactly like absent blocks). Wants stay in the
//! peer's ledger after a `DONT_HAVE`, and [`Bitswap::recheck_wants`] sends blocks that arrive
//! later (a push) to the peers still waiting.
//!
//! Fetching: [`Bitswap::register`] opens a want; [`Want::ask`] sends want-block (with
//! `sendDontHave`) to peers. A block that arrives is hashed with its prefix's multihash; a
//! block we did not want, one that does not hash to a wanted CID, or one over
//! [`message::MAX_BLOCK`] is dropped and counts against the peer, which is disconnected
//! and ignored for a while after [`BAD_BLOCKS_BEFORE_BAN`] of them. Verified blocks are
//! stored, waiters woken and the want cancelled at every peer that was asked.

pub mod message;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use futures_util::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use futures_util::{AsyncRead, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Notify, mpsc};

use self::message::{BlockPresence, Entry, Message, PresenceType, WantType, Wantlist};
use crate::hub::Hub;
use crate::ipfs::IpfsMetrics;

pub const PROTOCOL_1_2_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
pub const PROTOCOL_1_1_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.1.0");
pub const PROTOCOL_1_0_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.0.0");
pub const PROTOCOL_LEGACY: StreamProtocol = StreamProtocol::new("/ipfs/bitswap");

/// Every protocol we accept, newest first (the order we try when opening a stream).
pub const PROTOCOLS: [StreamProtocol; 4] = [
    PROTOCOL_1_2_0,
    PROTOCOL_1_1_0,
    PROTOCOL_1_0_0,
    PROTOCOL_LEGACY,
];

/// Wants kept per peer (Kubo's and Helia's limit).
pub const MAX_WANTS_PER_PEER: usize = 1024;

/// Blocks that were not asked for or did not verify before a peer is dropped.
pub const BAD_BLOCKS_BEFORE_BAN: u32 = 8;

/// How long a dropped peer is ignored.
const BAN: Duration = Duration::from_secs(600);

/// Wanted blocks read from the store at once for one peer's wantlist.
const PARALLEL_READS: usize = 8;

/// Block bytes batched into one outgoing message (a single larger block goes alone).
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// An outbound stream with nothing to send for this long is closed (Helia aborts inbound
/// streams idle for 10 s).
const OUTBOUND_IDLE: Duration = Duration::from_secs(5);

/// An inbound stream silent for this long is dropped.
const INBOUND_IDLE: Duration = Duration::from_secs(60);

/// Requests the node carries out for Bitswap.
#[derive(Debug)]
pub enum NodeRequest {
    /// Close every connection to a misbehaving peer.
    Disconnect(PeerId),
}

/// The Bitswap engine; cheap to clone.
#[derive(Clone)]
pub struct Bitswap {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bitswap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitswap").finish_non_exhaustive()
    }
}

struct Shared {
    control: libp2p_stream::Control,
    hub: Hub,
    metrics: Arc<IpfsMetrics>,
    node: mpsc::UnboundedSender<NodeRequest>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What each peer wants from us.
    ledgers: HashMap<PeerId, HashMap<Cid, LedgerEntry>>,
    /// Connected peers that speak Bitswap, with their sender queues.
    peers: HashMap<PeerId, mpsc::UnboundedSender<Out>>,
    /// Our open wants, keyed by multihash bytes (peers match blocks by multihash).
    wants: HashMap<Vec<u8>, WantState>,
    /// Bad blocks per peer, and peers being ignored.
    bad: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    /// Multihashes of wants recently satisfied or dropped: a late duplicate of one of these
    /// (two peers answering one want) is normal, not misbehaviour.
    recent: std::collections::VecDeque<Vec<u8>>,
}

/// Recently closed wants remembered for duplicate tolerance.
const RECENT_WANTS: usize = 4096;

impl State {
    fn remember(&mut self, key: Vec<u8>) {
        if self.recent.len() >= RECENT_WANTS {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
    }
}

#[derive(Debug, Clone, Copy)]
struct LedgerEntry {
    want_type: WantType,
    send_dont_have: bool,
}

struct WantState {
    cid: Cid,
    block: Option<Bytes>,
    asked: HashSet<PeerId>,
    dont_have: HashSet<PeerId>,
    notify: Arc<Notify>,
    handles: usize,
}

/// Something queued for one peer.
#[derive(Debug)]
enum Out {
    Block(Cid, Bytes),
    Presence(Cid, PresenceType),
    Want(Entry),
}

impl Bitswap {
    /// Starts accepting Bitswap streams on `control`.
    pub fn new(
        mut control: libp2p_stream::Control,
        hub: Hub,
        metrics: Arc<IpfsMetrics>,
        node: mpsc::UnboundedSender<NodeRequest>,
    ) -> Bitswap {
        let bitswap = Bitswap {
            shared: Arc::new(Shared {
                control: control.clone(),
                hub,
                metrics,
                node,
                state: Mutex::new(State::default()),
            }),
        };
        for protocol in PROTOCOLS {
            match control.accept(protocol.clone()) {
                Ok(mut incoming) => {
                    let bs = bitswap.clone();
                    tokio::spawn(async move {
                        while let Some((peer, stream)) = incoming.next().await {
                            let bs = bs.clone();
                            let protocol = protocol.clone();
                            tokio::spawn(
                                async move { bs.read_inbound(peer, protocol, stream).await },
                            );
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(target: "musehub::ipfs", %protocol, error = %e, "cannot accept bitswap streams")
                }
            }
        }
        bitswap
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A peer whose identify lists a Bitswap protocol connected: start its sender and send it
    /// our open wants.
    pub fn peer_up(&self, peer: PeerId) {
        let mut state = self.state();
        if state.peers.contains_key(&peer) || is_banned(&mut state, &peer) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for want in state.wants.values_mut() {
            if want.block.is_none() {
                want.asked.insert(peer);
                let _ = tx.send(Out::Want(want_block(want.cid)));
            }
        }
        state.peers.insert(peer, tx);
        drop(state);
        let bs = self.clone();
        tokio::spawn(async move { bs.send_loop(peer, rx).await });
    }

    /// The last connection to `peer` closed: forget its wants and stop its sender.
    pub fn peer_down(&self, peer: &PeerId) {
        let mut state = self.state();
        state.ledgers.remove(peer);
        state.peers.remove(peer);
        for want in state.wants.values_mut() {
            want.asked.remove(peer);
            want.dont_have.remove(peer);
            want.notify.notify_waiters();
        }
    }

    /// Connected Bitswap peers.
    pub fn peers(&self) -> Vec<PeerId> {
        self.state().peers.keys().copied().collect()
    }

    /// Wants peers hold open with us (for `/metrics`).
    pub fn peer_wants(&self) -> usize {
        self.state().ledgers.values().map(HashMap::len).sum()
    }

    /// Re-checks every open peer want against the store and sends what has become available
    /// (blocks that arrived by a push, an import or a fetch after we said `DONT_HAVE`).
    pub async fn recheck_wants(&self) {
        let pending: Vec<(PeerId, Cid, LedgerEntry)> = {
            let state = self.state();
            state
                .ledgers
                .iter()
                .flat_map(|(p, l)| l.iter().map(|(c, e)| (*p, *c, *e)))
                .collect()
        };
        for (peer, cid, entry) in pending {
            if let Ok(Some(block)) = self.shared.hub.public_block(&cid).await {
                self.answer(peer, cid, entry, Some(block), false);
            }
        }
    }

    /// Opens a want for `cid` (or joins one already open). The want is cancelled at every
    /// peer that was asked when the last handle is dropped without the block.
    pub fn register(&self, cid: Cid) -> Want {
        let key = cid.hash().to_bytes();
        let mut state = self.state();
        let entry = state.wants.entry(key.clone()).or_insert_with(|| WantState {
            cid,
            block: None,
            asked: HashSet::new(),
            dont_have: HashSet::new(),
            notify: Arc::new(Notify::new()),
            handles: 0,
        });
        entry.handles += 1;
        Want {
            bitswap: self.clone(),
            key,
            notify: entry.notify.clone(),
        }
    }

    /// Reads messages from one inbound stream until EOF, idle timeout or a bad frame.
    async fn read_inbound(&self, peer: PeerId, protocol: StreamProtocol, stream: libp2p::Stream) {
        let mut reader = BufReader::new(stream);
        loop {
            let frame = match tokio::time::timeout(INBOUND_IDLE, read_frame(&mut reader)).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    tracing::debug!(target: "musehub::ipfs", %peer, error = %e, "bad bitswap frame");
                    self.penalise(peer, "sent a malformed bitswap message");
                    return;
                }
            };
            if is_banned(&mut self.state(), &peer) {
                return;
            }
            let msg = match message::decode(&frame) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(target: "musehub::ipfs", %peer, error = %e, "undecodable bitswap message");
                    self.penalise(peer, "sent an undecodable bitswap message");
                    return;
                }
            };
            // A peer that talks to us speaks Bitswap even if identify has not said so yet.
            self.peer_up(peer);
            self.handle(peer, &protocol, msg).await;
        }
    }

    async fn handle(&self, peer: PeerId, protocol: &StreamProtocol, msg: Message) {
        for block in &msg.blocks_v0 {
            self.received(peer, None, block.clone());
        }
        for block in msg.payload {
            self.received(peer, Some(&block.prefix), block.data);
        }
        for presence in msg.presences {
            self.presence(peer, presence);
        }
        if let Some(wantlist) = msg.wantlist {
            self.wantlist(peer, protocol, wantlist).await;
        }
    }

    async fn wantlist(&self, peer: PeerId, protocol: &StreamProtocol, wantlist: Wantlist) {
        let legacy = *protocol != PROTOCOL_1_2_0;
        let mut fresh = Vec::new();
        {
            let mut state = self.state();
            let ledger = state.ledgers.entry(peer).or_default();
            if wantlist.full {
                ledger.clear();
            }
            for e in wantlist.entries {
                if e.cancel {
                    ledger.remove(&e.cid);
                    continue;
                }
                if e.cid.hash().code() == message::IDENTITY {
                    continue;
                }
                // A 1.0.0/1.1.0 peer has no presences: every want is a want-block.
                let entry = LedgerEntry {
                    want_type: if legacy { WantType::Block } else { e.want_type },
                    send_dont_have: e.send_dont_have && !legacy,
                };
                if ledger.len() >= MAX_WANTS_PER_PEER && !ledger.contains_key(&e.cid) {
                    continue;
                }
                let merged = match ledger.get(&e.cid) {
                    // want-block overrides want-have; sendDontHave only flips to true.
                    Some(old) => LedgerEntry {
                        want_type: if old.want_type == WantType::Block {
                            WantType::Block
                        } else {
                            entry.want_type
                        },
                        send_dont_have: old.send_dont_have || entry.send_dont_have,
                    },
                    None => entry,
                };
                ledger.insert(e.cid, merged);
                fresh.push((e.cid, merged));
            }
        }
        // Read several wanted blocks at once (a database row or a 1 MiB file each) and
        // answer in want order.
        let hub = &self.shared.hub;
        let mut reads = futures_util::stream::iter(fresh)
            .map(|(cid, entry)| async move { (cid, entry, hub.public_block(&cid).await) })
            .buffered(PARALLEL_READS);
        while let Some((cid, entry, read)) = reads.next().await {
            let block = match read {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(target: "musehub::ipfs", %cid, error = %e, "reading a wanted block failed");
                    None
                }
            };
            self.answer(peer, cid, entry, block, true);
        }
    }

    /// Answers one want: the block, HAVE, or DONT_HAVE. A satisfied want leaves the ledger.
    fn answer(
        &self,
        peer: PeerId,
        cid: Cid,
        entry: LedgerEntry,
        block: Option<Bytes>,
        first: bool,
    ) {
        let mut state = self.state();
        let Some(tx) = state.peers.get(&peer).cloned() else {
            return;
        };
        match block {
            Some(data) => {
                if let Some(l) = state.ledgers.get_mut(&peer) {
                    l.remove(&cid);
                }
                drop(state);
                match entry.want_type {
                    WantType::Block => {
                        self.shared.metrics.blocks_sent.add(1);
                        self.shared.metrics.block_bytes_sent.add(data.len() as u64);
                        let _ = tx.send(Out::Block(cid, data));
                    }
                    WantType::Have => {
                        let _ = tx.send(Out::Presence(cid, PresenceType::Have));
                    }
                }
            }
            None if first && entry.send_dont_have => {
                let _ = tx.send(Out::Presence(cid, PresenceType::DontHave));
            }
            None => {}
        }
    }

    /// A block arrived from `peer`: verify it against a want, store it, wake waiters.
    fn received(&self, peer: PeerId, prefix: Option<&[u8]>, data: Bytes) {
        if data.len() > message::MAX_BLOCK {
            self.penalise(peer, "sent a block over 2 MiB");
            return;
        }
        let cid = match prefix {
            Some(p) => message::cid_from_prefix_and_data(p, &data),
            None => message::cid_v0_of(&data),
        };
        let cid = match cid {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target: "musehub::ipfs", %peer, error = %e, "unusable block prefix");
                self.penalise(peer, "sent a block with an unusable prefix");
                return;
            }
        };
        let key = cid.hash().to_bytes();
        let (notify, asked, want_cid) = {
            let mut state = self.state();
            let Some(want) = state.wants.get_mut(&key) else {
                // Not wanted: a block that does not hash to anything we asked for, or a late
                // duplicate of one we already have. Either way it is dropped; only the first
                // counts against the peer.
                let duplicate = state.recent.contains(&key);
                drop(state);
                self.shared.metrics.blocks_unwanted.add(1);
                if !duplicate {
                    self.penalise(peer, "sent a block that matches no want");
                }
                return;
            };
            if want.block.is_some() {
                return;
            }
            want.block = Some(data.clone());
            (
                want.notify.clone(),
                std::mem::take(&mut want.asked),
                want.cid,
            )
        };
        self.shared.metrics.blocks_received.add(1);
        self.shared
            .metrics
            .block_bytes_received
            .add(data.len() as u64);
        // Cancel everywhere we asked, including the sender (harmless, and it clears boxo's
        // ledger).
        self.cancel_at(&want_cid, asked);
        notify.notify_waiters();
    }

    fn presence(&self, peer: PeerId, p: BlockPresence) {
        let key = p.cid.hash().to_bytes();
        let mut state = self.state();
        if let Some(want) = state.wants.get_mut(&key)
            && p.kind == PresenceType::DontHave
        {
            want.dont_have.insert(peer);
            want.notify.notify_waiters();
        }
    }

    fn cancel_at(&self, cid: &Cid, peers: HashSet<PeerId>) {
        let state = self.state();
        for p in peers {
            if let Some(tx) = state.peers.get(&p) {
                let _ = tx.send(Out::Want(Entry {
                    cid: *cid,
                    priority: 1,
                    cancel: true,
                    want_type: WantType::Block,
                    send_dont_have: false,
                }));
            }
        }
    }

    fn penalise(&self, peer: PeerId, why: &str) {
        self.shared.metrics.bad_blocks.add(1);
        let mut state = self.state();
        let n = state.bad.entry(peer).or_default();
        *n += 1;
        tracing::info!(target: "musehub::ipfs", %peer, strikes = *n, "bitswap peer {why}");
        if *n >= BAD_BLOCKS_BEFORE_BAN {
            state.bad.remove(&peer);
            state.banned.insert(peer, Instant::now() + BAN);
            state.peers.remove(&peer);
            state.ledgers.remove(&peer);
            drop(state);
            tracing::warn!(target: "musehub::ipfs", %peer, "disconnecting a misbehaving bitswap peer for 10 minutes");
            let _ = self.shared.node.send(NodeRequest::Disconnect(peer));
        }
    }

    /// Whether `peer` is being ignored after misbehaving.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        is_banned(&mut self.state(), peer)
    }

    /// The sender task of one peer: batches queued items into messages on one outbound
    /// stream, reopened as needed and closed when idle.
    async fn send_loop(&self, peer: PeerId, mut rx: mpsc::UnboundedReceiver<Out>) {
        let mut control = self.shared.control.clone();
        let mut stream: Option<(libp2p::Stream, StreamProtocol)> = None;
        let mut protocols_left: &[StreamProtocol] = &PROTOCOLS;
        loop {
            let first = if stream.is_some() {
                match tokio::time::timeout(OUTBOUND_IDLE, rx.recv()).await {
                    Ok(Some(o)) => o,
                    Ok(None) => break,
                    Err(_) => {
                        if let Some((mut s, _)) = stream.take() {
                            let _ = s.close().await;
                        }
                        continue;
                    }
                }
            } else {
                match rx.recv().await {
                    Some(o) => o,
                    None => break,
                }
            };
            let mut items = vec![first];
            let mut bytes = items_len(&items);
            while bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(o) => {
                        let len = item_len(&o);
                        if bytes + len > message::MAX_MESSAGE - 64 * 1024 {
                            // Keep it for the next message.
                            self.requeue(peer, o);
                            break;
                        }
                        bytes += len;
                        items.push(o);
                    }
                    Err(_) => break,
                }
            }
            // Open (or reuse) a stream, trying newer protocols first.
            let mut attempt = 0;
            loop {
                attempt += 1;
                if stream.is_none() {
                    let mut opened = None;
                    while let Some((proto, rest)) = protocols_left.split_first() {
                        match control.open_stream(peer, proto.clone()).await {
                            Ok(s) => {
                                opened = Some((s, proto.clone()));
                                break;
                            }
                            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
                                protocols_left = rest;
                            }
                            Err(e) => {
                                tracing::debug!(target: "musehub::ipfs", %peer, error = %e, "cannot open a bitswap stream");
                                break;
                            }
                        }
                    }
                    match opened {
                        Some(o) => stream = Some(o),
                        None => {
                            if protocols_left.is_empty() {
                                // The peer speaks no Bitswap we know: stop sending to it.
                                self.state().peers.remove(&peer);
                                return;
                            }
                            break;
                        }
                    }
                }
                let Some((s, proto)) = stream.as_mut() else {
                    break;
                };
                let frame = message::frame(&message::encode(&build(&items, proto)));
                match write_all(s, &frame).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::debug!(target: "musehub::ipfs", %peer, error = %e, "bitswap write failed; reopening");
                        stream = None;
                        if attempt >= 2 {
                            break;
                        }
                    }
                }
            }
        }
        if let Some((mut s, _)) = stream {
            let _ = s.close().await;
        }
    }

    fn requeue(&self, peer: PeerId, o: Out) {
        if let Some(tx) = self.state().peers.get(&peer) {
            let _ = tx.send(o);
        }
    }
}

async fn write_all(s: &mut libp2p::Stream, frame: &[u8]) -> std::io::Result<()> {
    s.write_all(frame).await?;
    s.flush().await
}

fn is_banned(state: &mut State, peer: &PeerId) -> bool {
    match state.banned.get(peer) {
        Some(until) if *until > Instant::now() => true,
        Some(_) => {
            state.banned.remove(peer);
            false
        }
        None => false,
    }
}

fn want_block(cid: Cid) -> Entry {
    Entry {
        cid,
        priority: 1,
        cancel: false,
        want_type: WantType::Block,
        send_dont_have: true,
    }
}

fn item_len(o: &Out) -> usize {
    match o {
        Out::Block(c, b) => b.len() + c.encoded_len() + 16,
        Out::Presence(c, _) | Out::Want(Entry { cid: c, .. }) => c.encoded_len() + 16,
    }
}

fn items_len(items: &[Out]) -> usize {
    items.iter().map(item_len).sum()
}

/// One message from queued items, shaped for the protocol version in use.
fn build(items: &[Out], protocol: &StreamProtocol) -> Message {
    let v12 = *protocol == PROTOCOL_1_2_0;
    let v10 = *protocol == PROTOCOL_1_0_0 || *protocol == PROTOCOL_LEGACY;
    let mut msg = Message::default();
    let mut entries = Vec::new();
    for item in items {
        match item {
            Out::Block(cid, data) => {
                if v10 {
                    msg.blocks_v0.push(data.clone());
                } else {
                    msg.payload.push(message::Block {
                        prefix: message::prefix_of(cid),
                        data: data.clone(),
                    });
                }
            }
            Out::Presence(cid, kind) if v12 => msg.presences.push(BlockPresence {
                cid: *cid,
                kind: *kind,
            }),
            Out::Presence(..) => {}
            Out::Want(e) => {
                let mut e = e.clone();
                if !v12 {
                    e.want_type = WantType::Block;
                    e.send_dont_have = false;
                }
                entries.push(e);
            }
        }
    }
    if !entries.is_empty() {
        msg.wantlist = Some(Wantlist {
            entries,
            full: false,
        });
    }
    msg
}

/// Reads one `uvarint len ‖ message` frame; `None` at a clean EOF before a frame.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut first = true;
    loop {
        let mut b = [0u8; 1];
        let n = r.read(&mut b).await?;
        if n == 0 {
            if first {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        first = false;
        len |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "frame length varint too long",
            ));
        }
    }
    if len as usize > message::MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bitswap message of {len} bytes is over the 4 MiB limit"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// A handle on an open want; see [`Bitswap::register`].
pub struct Want {
    bitswap: Bitswap,
    key: Vec<u8>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Want").finish_non_exhaustive()
    }
}

impl Want {
    /// Sends want-block (with `sendDontHave`) to `peer` unless it was asked already.
    pub fn ask(&self, peer: PeerId) {
        let mut state = self.bitswap.state();
        let Some(tx) = state.peers.get(&peer).cloned() else {
            return;
        };
        let Some(want) = state.wants.get_mut(&self.key) else {
            return;
        };
        if want.block.is_some() || !want.asked.insert(peer) {
            return;
        }
        let _ = tx.send(Out::Want(want_block(want.cid)));
    }

    /// Asks every connected Bitswap peer.
    pub fn ask_all(&self) {
        for p in self.bitswap.peers() {
            self.ask(p);
        }
    }

    /// The block, once it has arrived.
    pub fn block(&self) -> Option<Bytes> {
        self.bitswap
            .state()
            .wants
            .get(&self.key)
            .and_then(|w| w.block.clone())
    }

    /// True when at least one peer was asked and every asked peer answered `DONT_HAVE`
    /// (peers that left are no longer counted as asked).
    pub fn exhausted(&self) -> bool {
        let state = self.bitswap.state();
        state.wants.get(&self.key).is_none_or(|w| {
            w.block.is_none()
                && !w.asked.is_empty()
                && w.asked.iter().all(|p| w.dont_have.contains(p))
        })
    }

    /// How many peers have been asked and not yet answered `DONT_HAVE`.
    pub fn pending_peers(&self) -> usize {
        let state = self.bitswap.state();
        state.wants.get(&self.key).map_or(0, |w| {
            w.asked.iter().filter(|p| !w.dont_have.contains(p)).count()
        })
    }

    /// Waits up to `timeout` for the block, returning early when the want is exhausted.
    pub async fn wait(&self, timeout: Duration) -> Option<Bytes> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(b) = self.block() {
                return Some(b);
            }
            if self.exhausted() {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.block();
            }
        }
    }
}

impl Drop for Want {
    fn drop(&mut self) {
        let mut state = self.bitswap.state();
        let Some(want) = state.wants.get_mut(&self.key) else {
            return;
        };
        want.handles -= 1;
        if want.handles > 0 {
            return;
        }
        let Some(want) = state.wants.remove(&self.key) else {
            return;
        };
        state.remember(self.key.clone());
        drop(state);
        if want.block.is_none() {
            self.bitswap.cancel_at(&want.cid, want.asked);
        }
    }
}
