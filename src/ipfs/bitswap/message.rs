//! The Bitswap message codec (`/ipfs/bitswap/1.2.0`, also 1.1.0 and 1.0.0 on the wire).
//!
//! [`encode`] writes proto3 the way boxo (Kubo) and Helia do: fields in field-number order and
//! default values (`false`, `0`, want type `Block`, presence `Have`) omitted, so the bytes match
//! theirs exactly. [`decode`] applies those defaults, skips unknown fields and keeps going when a
//! single want names a CID longer than [`MAX_CID_LEN`] (that entry is dropped, as Kubo does).
//!
//! On a stream every message is framed as `uvarint(len) ‖ message` ([`frame`], [`split_frame`]),
//! at most [`MAX_MESSAGE`] bytes. Blocks in `payload` travel as a CID prefix plus the data; the
//! receiver rebuilds (and so verifies) the CID with [`cid_from_prefix_and_data`].

use bytes::Bytes;
use cid::Cid;
use cid::multihash::Multihash;
use sha2::Digest;

use crate::ipfs::pb::{self, Reader, Writer};

/// Largest message accepted or sent, framing excluded (the spec's 4 MiB).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest block accepted from a peer (every implementation must handle 2 MiB).
pub const MAX_BLOCK: usize = 2 * 1024 * 1024;
/// Wants naming a CID longer than this are ignored (Kubo's `4 * MaxVarintLen64 + 128`).
pub const MAX_CID_LEN: usize = 168;

/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the digest is the data itself).
pub const IDENTITY: u64 = 0x00;
/// Multicodec of dag-pb, the codec a CIDv0 implies.
pub const DAG_PB: u64 = 0x70;

/// Why a message, frame or block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("bitswap message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(u64),
    #[error("malformed bitswap message: {0}")]
    Pb(#[from] pb::Error),
    #[error("invalid CID in bitswap message: {0}")]
    Cid(String),
    #[error("invalid block prefix: {0}")]
    Prefix(&'static str),
    #[error("unsupported hash {0:#x}")]
    UnsupportedHash(u64),
    #[error("block of {0} bytes exceeds the {MAX_BLOCK}-byte limit")]
    BlockTooLarge(usize),
}

/// One Bitswap message. An empty (default) message is valid but pointless.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Field 1. `Some` even when empty if the sender included it.
    pub wantlist: Option<Wantlist>,
    /// Field 2, Bitswap 1.0.0 only: block data whose CID is the CIDv0 of its sha2-256.
    pub blocks_v0: Vec<Bytes>,
    /// Field 3 (1.1.0+): blocks with their CID prefix.
    pub payload: Vec<Block>,
    /// Field 4 (1.2.0): HAVE / DONT_HAVE answers.
    pub presences: Vec<BlockPresence>,
    /// Field 5 (1.2.0): bytes still queued for the receiver. Informational.
    pub pending_bytes: i32,
}

impl Message {
    /// True when encoding it would write nothing at all.
    pub fn is_empty(&self) -> bool {
        self.wantlist.is_none()
            && self.blocks_v0.is_empty()
            && self.payload.is_empty()
            && self.presences.is_empty()
            && self.pending_bytes == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wantlist {
    pub entries: Vec<Entry>,
    /// True: these entries replace everything the sender wanted before. False: a delta.
    pub full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// On the wire as full CID bytes (a CIDv0 is its bare multihash).
    pub cid: Cid,
    /// Higher is served first.
    pub priority: i32,
    /// Remove this want (the other fields are then meaningless).
    pub cancel: bool,
    pub want_type: WantType,
    /// Answer DONT_HAVE when the block is absent.
    pub send_dont_have: bool,
}

impl Entry {
    /// The entry that cancels a want for `cid` (everything else at its default).
    pub fn cancel(cid: Cid) -> Self {
        Self {
            cid,
            priority: 0,
            cancel: true,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WantType {
    /// 0: send the block itself.
    #[default]
    Block,
    /// 1: say whether you have it (1.2.0).
    Have,
}

/// A block in `payload`: the CID prefix ([`prefix_of`]) and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub prefix: Vec<u8>,
    pub data: Bytes,
}

impl Block {
    /// The payload entry carrying `data` as the block `cid` (which is not re-checked).
    pub fn new(cid: &Cid, data: Bytes) -> Self {
        Self {
            prefix: prefix_of(cid),
            data,
        }
    }

    /// Hashes the data and returns the CID it proves; see [`cid_from_prefix_and_data`].
    pub fn cid(&self) -> Result<Cid, Error> {
        cid_from_prefix_and_data(&self.prefix, &self.data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPresence {
    pub cid: Cid,
    pub kind: PresenceType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PresenceType {
    /// 0 (omitted on the wire).
    #[default]
    Have,
    /// 1.
    DontHave,
}

/// Serializes `msg` (without the length prefix; see [`frame`]).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    if let Some(wl) = &msg.wantlist {
        let mut wlw = Writer::new();
        for e in &wl.entries {
            let mut ew = Writer::new();
            ew.field_bytes(1, &e.cid.to_bytes());
            if e.priority != 0 {
                ew.field_int32(2, e.priority);
            }
            if e.cancel {
                ew.field_bool(3, true);
            }
            if e.want_type == WantType::Have {
                ew.field_varint(4, 1);
            }
            if e.send_dont_have {
                ew.field_bool(5, true);
            }
            wlw.field_message(1, &ew);
        }
        if wl.full {
            wlw.field_bool(2, true);
        }
        w.field_message(1, &wlw);
    }
    for data in &msg.blocks_v0 {
        w.field_bytes(2, data);
    }
    for b in &msg.payload {
        let mut bw = Writer::with_capacity(b.data.len() + 16);
        if !b.prefix.is_empty() {
            bw.field_bytes(1, &b.prefix);
        }
        if !b.data.is_empty() {
            bw.field_bytes(2, &b.data);
        }
        w.field_message(3, &bw);
    }
    for p in &msg.presences {
        let mut pw = Writer::new();
        pw.field_bytes(1, &p.cid.to_bytes());
        if p.kind == PresenceType::DontHave {
            pw.field_varint(2, 1);
        }
        w.field_message(4, &pw);
    }
    if msg.pending_bytes != 0 {
        w.field_int32(5, msg.pending_bytes);
    }
    w.into_vec()
}

/// Parses one message (without its length prefix), copying block data out of `buf`.
///
/// Defaults are applied for omitted fields and unknown fields are skipped. Wants and presences
/// whose CID is longer than [`MAX_CID_LEN`] bytes, and those with a want or presence type this
/// codec does not know, are dropped; any other malformed CID fails the whole message (as in
/// boxo). Block prefixes are kept as sent: check them with [`Block::cid`].
pub fn decode(buf: &[u8]) -> Result<Message, Error> {
    decode_with(buf, Bytes::copy_from_slice)
}

/// Like [`decode`], but the blocks' data share `buf`'s allocation instead of being copied.
pub fn decode_bytes(buf: &Bytes) -> Result<Message, Error> {
    decode_with(buf, |part| buf.slice_ref(part))
}

fn decode_with(buf: &[u8], share: impl Fn(&[u8]) -> Bytes) -> Result<Message, Error> {
    if buf.len() > MAX_MESSAGE {
        return Err(Error::TooLarge(buf.len() as u64));
    }
    let mut msg = Message::default();
    for field in Reader::new(buf) {
        let field = field?;
        match field.number {
            1 => msg.wantlist = Some(decode_wantlist(field.bytes()?)?),
            2 => msg.blocks_v0.push(share(field.bytes()?)),
            3 => {
                let mut block = Block {
                    prefix: Vec::new(),
                    data: Bytes::new(),
                };
                for f in Reader::new(field.bytes()?) {
                    let f = f?;
                    match f.number {
                        1 => block.prefix = f.bytes()?.to_vec(),
                        2 => block.data = share(f.bytes()?),
                        _ => {}
                    }
                }
                msg.payload.push(block);
            }
            4 => {
                if let Some(p) = decode_presence(field.bytes()?)? {
                    msg.presences.push(p);
                }
            }
            5 => msg.pending_bytes = field.int32()?,
            _ => {}
        }
    }
    Ok(msg)
}

fn decode_wantlist(buf: &[u8]) -> Result<Wantlist, Error> {
    let mut wl = Wantlist::default();
    for field in Reader::new(buf) {
        let field = field?;
        match field.number {
            1 => {
                if let Some(e) = decode_entry(field.bytes()?)? {
                    wl.entries.push(e);
                }
            }
            2 => wl.full = field.bool()?,
            _ => {}
        }
    }
    Ok(wl)
}

fn decode_entry(buf: &[u8]) -> Result<Option<Entry>, Error> {
    let mut cid: &[u8] = &[];
    let mut priority = 0;
    let mut cancel = false;
    let mut want_type = 0;
    let mut send_dont_have = false;
    for field in Reader::new(buf) {
        let field = field?;
        match field.number {
            1 => cid = field.bytes()?,
            2 => priority = field.int32()?,
            3 => cancel = field.bool()?,
            4 => want_type = field.int32()?,
            5 => send_dont_have = field.bool()?,
            _ => {}
        }
    }
    let want_type = match want_type {
        0 => WantType::Block,
        1 => WantType::Have,
        _ => return Ok(None),
    };
    if cid.len() > MAX_CID_LEN {
        return Ok(None);
    }
    Ok(Some(Entry {
        cid: parse_cid(cid)?,
        priority,
        cancel,
        want_type,
        send_dont_have,
    }))
}

fn decode_presence(buf: &[u8]) -> Result<Option<BlockPresence>, Error> {
    let mut cid: &[u8] = &[];
    let mut kind = 0;
    for field in Reader::new(buf) {
        let field = field?;
        match field.number {
            1 => cid = field.bytes()?,
            2 => kind = field.int32()?,
            _ => {}
        }
    }
    let kind = match kind {
        0 => PresenceType::Have,
        1 => PresenceType::DontHave,
        _ => return Ok(None),
    };
    if cid.len() > MAX_CID_LEN {
        return Ok(None);
    }
    Ok(Some(BlockPresence {
        cid: parse_cid(cid)?,
        kind,
    }))
}

/// Parses binary CID bytes (CIDv0 = bare sha2-256 multihash), requiring that they are exactly
/// one canonically encoded CID.
fn parse_cid(bytes: &[u8]) -> Result<Cid, Error> {
    let cid = Cid::read_bytes(bytes).map_err(|e| Error::Cid(e.to_string()))?;
    if cid.to_bytes() != bytes {
        return Err(Error::Cid("trailing or non-canonical bytes".into()));
    }
    Ok(cid)
}

/// `uvarint(len) ‖ msg`, ready for a stream.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pb::uvarint_len(msg.len() as u64) + msg.len());
    pb::encode_uvarint(msg.len() as u64, &mut out);
    out.extend_from_slice(msg);
    out
}

/// Reads one frame from the start of `buf`: `Ok(Some((message, bytes consumed)))`, or
/// `Ok(None)` when `buf` holds only part of a frame so far. A declared length over
/// [`MAX_MESSAGE`] is an error before any of the body is needed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, Error> {
    let (len, n) = match pb::decode_uvarint(buf) {
        Ok(v) => v,
        Err(pb::Error::TruncatedVarint) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(Error::TooLarge(len));
    }
    let len = len as usize;
    Ok(buf.get(n..n + len).map(|msg| (msg, n + len)))
}

/// The Bitswap prefix of `cid`: `uvarint(version) ‖ uvarint(codec) ‖ uvarint(hash code) ‖
/// uvarint(digest length)`, four varints even for CIDv0 (`00 70 12 20`).
pub fn prefix_of(cid: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    let version: u64 = cid.version().into();
    for v in [
        version,
        cid.codec(),
        cid.hash().code(),
        u64::from(cid.hash().size()),
    ] {
        pb::encode_uvarint(v, &mut out);
    }
    out
}

/// Rebuilds the CID of a received block by hashing `data` as `prefix` says. Only sha2-256 and
/// identity are supported ([`Error::UnsupportedHash`] otherwise); data over [`MAX_BLOCK`] is
/// refused; version 0 must be dag-pb with a 32-byte sha2-256 and gives a CIDv0.
pub fn cid_from_prefix_and_data(prefix: &[u8], data: &[u8]) -> Result<Cid, Error> {
    let mut rest = prefix;
    let mut fields = [0u64; 4];
    for f in &mut fields {
        let (v, n) = pb::decode_uvarint(rest).map_err(|_| Error::Prefix("bad varint"))?;
        *f = v;
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        return Err(Error::Prefix("trailing bytes"));
    }
    let [version, codec, code, len] = fields;
    if data.len() > MAX_BLOCK {
        return Err(Error::BlockTooLarge(data.len()));
    }
    let mh = match code {
        SHA2_256 => {
            if len != 32 {
                return Err(Error::Prefix("sha2-256 digest length must be 32"));
            }
            Multihash::wrap(SHA2_256, &sha2::Sha256::digest(data))
        }
        IDENTITY => {
            if len != data.len() as u64 {
                return Err(Error::Prefix(
                    "identity digest length differs from the data",
                ));
            }
            Multihash::wrap(IDENTITY, data)
        }
        other => return Err(Error::UnsupportedHash(other)),
    }
    .map_err(|e| Error::Cid(e.to_string()))?;
    match version {
        0 => {
            if codec != DAG_PB || code != SHA2_256 {
                return Err(Error::Prefix("CIDv0 must be dag-pb with sha2-256"));
            }
            Cid::new_v0(mh).map_err(|e| Error::Cid(e.to_string()))
        }
        1 => Ok(Cid::new_v1(codec, mh)),
        _ => Err(Error::Prefix("unknown CID version")),
    }
}

/// The CIDv0 of a Bitswap 1.0.0 block (message field 2): the sha2-256 of `data`. Data over
/// [`MAX_BLOCK`] is refused.
pub fn cid_v0_of(data: &[u8]) -> Result<Cid, Error> {
    cid_from_prefix_and_data(&[0x00, 0x70, 0x12, 0x20], data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "01551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    const M: &str = "01551220ffa63583dfa6706b87d284b86b0d693a161e4840aad2c5cf6b5d27c3b9621f7d";

    fn h() -> Cid {
        Cid::try_from("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e").unwrap()
    }

    fn m() -> Cid {
        Cid::try_from("bafkreih7uy2yhx5gobvypuuexbvq22j2cypeqqfk2lc46225e7b3syq7pu").unwrap()
    }

    fn vector(template: &str) -> Vec<u8> {
        hex::decode(template.replace("<H>", H).replace("<M>", M)).unwrap()
    }

    /// Checks `msg` against a framed vector both ways.
    fn check(template: &str, msg: &Message) {
        let framed = vector(template);
        assert_eq!(hex::encode(frame(&encode(msg))), hex::encode(&framed));
        let (body, used) = split_frame(&framed).unwrap().unwrap();
        assert_eq!(used, framed.len());
        assert_eq!(&decode(body).unwrap(), msg);
        assert_eq!(&decode_bytes(&Bytes::copy_from_slice(body)).unwrap(), msg);
    }

    fn wants(entries: Vec<Entry>, full: bool) -> Message {
        Message {
            wantlist: Some(Wantlist { entries, full }),
            ..Message::default()
        }
    }

    #[test]
    fn cids_match_vectors() {
        assert_eq!(hex::encode(h().to_bytes()), H);
        assert_eq!(hex::encode(m().to_bytes()), M);
        assert_eq!(
            cid_from_prefix_and_data(&prefix_of(&h()), b"hello world"),
            Ok(h())
        );
        assert_eq!(
            cid_from_prefix_and_data(&prefix_of(&m()), b"missing"),
            Ok(m())
        );
    }

    #[test]
    fn vector_want_have_and_want_block() {
        let msg = wants(
            vec![
                Entry {
                    cid: h(),
                    priority: 1,
                    cancel: false,
                    want_type: WantType::Have,
                    send_dont_have: true,
                },
                Entry {
                    cid: m(),
                    priority: 1,
                    cancel: false,
                    want_type: WantType::Block,
                    send_dont_have: true,
                },
            ],
            false,
        );
        check("5c0a5a0a2c0a24<H>1001200128010a2a0a24<M>10012801", &msg);
    }

    #[test]
    fn vector_block_and_dont_have() {
        let msg = Message {
            payload: vec![Block::new(&h(), Bytes::from_static(b"hello world"))],
            presences: vec![BlockPresence {
                cid: m(),
                kind: PresenceType::DontHave,
            }],
            ..Message::default()
        };
        check(
            "3f1a130a0401551220120b68656c6c6f20776f726c6422280a24<M>1001",
            &msg,
        );
        assert_eq!(msg.payload[0].cid(), Ok(h()));
    }

    #[test]
    fn vector_have() {
        let msg = Message {
            presences: vec![BlockPresence {
                cid: h(),
                kind: PresenceType::Have,
            }],
            ..Message::default()
        };
        check("2822260a24<H>", &msg);
    }

    #[test]
    fn vector_cancel() {
        check(
            "2c0a2a0a280a24<H>1801",
            &wants(vec![Entry::cancel(h())], false),
        );
    }

    #[test]
    fn vector_full_wantlist_max_priority() {
        let msg = wants(
            vec![Entry {
                cid: h(),
                priority: i32::MAX,
                cancel: false,
                want_type: WantType::Have,
                send_dont_have: true,
            }],
            true,
        );
        check("360a340a300a24<H>10ffffffff07200128011001", &msg);
    }

    #[test]
    fn vector_prefixes() {
        let v0 = Cid::try_from("QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4").unwrap();
        assert_eq!(hex::encode(prefix_of(&v0)), "00701220");
        assert_eq!(hex::encode(prefix_of(&h())), "01551220");
        let pb = Cid::new_v1(0x70, *h().hash());
        assert_eq!(hex::encode(prefix_of(&pb)), "01701220");
    }

    #[test]
    fn prefix_rebuilds_v0_v1_and_identity() {
        let data = b"\x0a\x02\x08\x01"; // any bytes will do
        let v0 = cid_from_prefix_and_data(&hex::decode("00701220").unwrap(), data).unwrap();
        assert_eq!(v0.version(), cid::Version::V0);
        assert_eq!(v0.to_bytes().len(), 34);
        assert_eq!(cid_v0_of(data), Ok(v0));
        assert_eq!(hex::encode(prefix_of(&v0)), "00701220");
        let v1 = cid_from_prefix_and_data(&hex::decode("01701220").unwrap(), data).unwrap();
        assert_eq!(v1.hash(), v0.hash());
        assert_eq!(v1.codec(), 0x70);

        let id = cid_from_prefix_and_data(&[0x01, 0x55, 0x00, 0x02], b"hi").unwrap();
        assert_eq!(id.hash().code(), 0);
        assert_eq!(id.hash().digest(), b"hi");
        assert_eq!(prefix_of(&id), vec![0x01, 0x55, 0x00, 0x02]);
        let empty = cid_from_prefix_and_data(&[0x01, 0x55, 0x00, 0x00], b"").unwrap();
        assert_eq!(empty.to_string(), "bafkqaaa");
    }

    #[test]
    fn prefix_errors() {
        // sha2-512 and blake3 are not supported.
        let e = cid_from_prefix_and_data(&[0x01, 0x55, 0x13, 0x40], b"x").unwrap_err();
        assert_eq!(e, Error::UnsupportedHash(0x13));
        assert!(e.to_string().contains("unsupported hash"));
        assert_eq!(
            cid_from_prefix_and_data(&[0x01, 0x55, 0x1e, 0x20], b"x"),
            Err(Error::UnsupportedHash(0x1e))
        );
        let bad = |p: &[u8], d: &[u8]| {
            assert!(
                matches!(cid_from_prefix_and_data(p, d), Err(Error::Prefix(_))),
                "{p:?}"
            )
        };
        bad(&[0x01, 0x55, 0x12], b"x"); // three varints
        bad(&[0x01, 0x55, 0x12, 0x20, 0x00], b"x"); // five
        bad(&[0x01, 0x55, 0x12, 0x10], b"x"); // truncated sha2-256
        bad(&[0x00, 0x55, 0x12, 0x20], b"x"); // v0 must be dag-pb
        bad(&[0x02, 0x55, 0x12, 0x20], b"x"); // no CIDv2
        bad(&[0x01, 0x55, 0x00, 0x03], b"xx"); // identity length mismatch
        bad(&[0x01, 0xd5, 0x00, 0x12, 0x20], b"x"); // non-minimal varint
        let big = vec![0u8; MAX_BLOCK + 1];
        assert_eq!(
            cid_from_prefix_and_data(&[0x01, 0x55, 0x12, 0x20], &big),
            Err(Error::BlockTooLarge(MAX_BLOCK + 1))
        );
        let max = vec![0u8; MAX_BLOCK];
        assert!(cid_from_prefix_and_data(&[0x01, 0x55, 0x12, 0x20], &max).is_ok());
    }

    #[test]
    fn decodes_cidv0_wants_and_v0_blocks() {
        let v0 = Cid::try_from("QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4").unwrap();
        let msg = Message {
            wantlist: Some(Wantlist {
                entries: vec![Entry {
                    cid: v0,
                    priority: -5,
                    cancel: false,
                    want_type: WantType::Block,
                    send_dont_have: false,
                }],
                full: false,
            }),
            blocks_v0: vec![Bytes::from_static(b"legacy")],
            pending_bytes: 1234,
            ..Message::default()
        };
        let bytes = encode(&msg);
        // The entry's CID is the bare 34-byte multihash.
        assert_eq!(&bytes[4..6], &[0x0a, 0x22]);
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn empty_wantlist_is_kept_and_defaults_apply() {
        let msg = wants(vec![], false);
        assert_eq!(encode(&msg), vec![0x0a, 0x00]);
        assert_eq!(decode(&[0x0a, 0x00]).unwrap(), msg);
        assert_eq!(decode(&[]).unwrap(), Message::default());
        assert!(Message::default().is_empty());
        assert!(encode(&Message::default()).is_empty());
        // A payload block with neither field.
        let d = decode(&[0x1a, 0x00]).unwrap();
        assert_eq!(d.payload[0].prefix, Vec::<u8>::new());
        assert!(d.payload[0].data.is_empty());
    }

    #[test]
    fn skips_unknown_fields() {
        let mut body = vector("0a2c0a24<H>1001200128010a2a0a24<M>10012801");
        body.extend([0x18, 0x07]); // unknown field 3 in the wantlist
        let mut w = Writer::new();
        w.field_varint(9, 1)
            .field_bytes(1, &body)
            .field_bytes(77, b"future");
        let msg = decode(w.as_bytes()).unwrap();
        let entries = &msg.wantlist.unwrap().entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].cid, h());
        assert_eq!(entries[1].cid, m());
    }

    #[test]
    fn drops_long_cids_and_unknown_types_but_not_the_message() {
        let mut long_cid = vec![0x01, 0x55, 0x00];
        pb::encode_uvarint(200, &mut long_cid);
        long_cid.extend(std::iter::repeat_n(7u8, 200));
        let entry = |cid: &[u8], want_type: u64| {
            let mut e = Writer::new();
            e.field_bytes(1, cid).field_varint(4, want_type);
            e
        };
        let mut wl = Writer::new();
        wl.field_message(1, &entry(&long_cid, 0))
            .field_message(1, &entry(&h().to_bytes(), 2))
            .field_message(1, &entry(&m().to_bytes(), 1));
        let mut presence = Writer::new();
        presence.field_bytes(1, &long_cid);
        let mut odd_presence = Writer::new();
        odd_presence
            .field_bytes(1, &h().to_bytes())
            .field_varint(2, 5);
        let mut w = Writer::new();
        w.field_message(1, &wl)
            .field_message(4, &presence)
            .field_message(4, &odd_presence);
        let msg = decode(w.as_bytes()).unwrap();
        let entries = msg.wantlist.unwrap().entries;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].cid, m());
        assert_eq!(entries[0].want_type, WantType::Have);
        assert!(msg.presences.is_empty());
    }

    #[test]
    fn rejects_malformed_messages() {
        // Invalid CID bytes in a want.
        let mut e = Writer::new();
        e.field_bytes(1, &[0x01, 0x55, 0x12, 0x20, 0x00]);
        let mut wl = Writer::new();
        wl.field_message(1, &e);
        let mut w = Writer::new();
        w.field_message(1, &wl);
        assert!(matches!(decode(w.as_bytes()), Err(Error::Cid(_))));
        // Trailing bytes after a CID.
        let mut cid = h().to_bytes();
        cid.push(0);
        let mut p = Writer::new();
        p.field_bytes(1, &cid);
        let mut w = Writer::new();
        w.field_message(4, &p);
        assert!(matches!(decode(w.as_bytes()), Err(Error::Cid(_))));
        // Truncated protobuf.
        let good = vector("0a5a0a2c0a24<H>1001200128010a2a0a24<M>10012801");
        assert!(matches!(decode(&good[..good.len() - 1]), Err(Error::Pb(_))));
        // Wrong wire type for a known field.
        assert!(matches!(decode(&[0x08, 0x01]), Err(Error::Pb(_))));
        // Over 4 MiB.
        let huge = vec![0u8; MAX_MESSAGE + 1];
        assert_eq!(decode(&huge), Err(Error::TooLarge(MAX_MESSAGE as u64 + 1)));
    }

    #[test]
    fn framing() {
        assert_eq!(frame(b""), vec![0]);
        let body = vec![9u8; 300];
        let framed = frame(&body);
        assert_eq!(&framed[..2], &[0xac, 0x02]);
        assert_eq!(split_frame(&framed[..1]), Ok(None));
        assert_eq!(split_frame(&framed[..100]), Ok(None));
        assert_eq!(split_frame(&[]), Ok(None));
        let mut two = framed.clone();
        two.extend(frame(b"xy"));
        let (first, used) = split_frame(&two).unwrap().unwrap();
        assert_eq!((first, used), (&body[..], 302));
        assert_eq!(split_frame(&two[used..]), Ok(Some((&b"xy"[..], 3))));
        let too_big = pb::uvarint(MAX_MESSAGE as u64 + 1);
        assert_eq!(
            split_frame(&too_big),
            Err(Error::TooLarge(MAX_MESSAGE as u64 + 1))
        );
        assert!(
            split_frame(&pb::uvarint(MAX_MESSAGE as u64))
                .unwrap()
                .is_none()
        );
        assert!(matches!(split_frame(&[0x80, 0x00]), Err(Error::Pb(_))));
    }

    #[test]
    fn decode_bytes_shares_the_buffer() {
        let msg = Message {
            payload: vec![Block::new(&h(), Bytes::from_static(b"hello world"))],
            ..Message::default()
        };
        let buf = Bytes::from(encode(&msg));
        let decoded = decode_bytes(&buf).unwrap();
        let data = &decoded.payload[0].data;
        let start = buf.as_ptr() as usize;
        let at = data.as_ptr() as usize;
        assert!(at >= start && at + data.len() <= start + buf.len());
        assert_eq!(decoded, msg);
    }
}
