//! DAG-CBOR: the canonical CBOR subset IPLD signs and hashes.
//!
//! One encoder for everything the hub writes in this format (IPNS record data, the IPNS index
//! node, CAR headers, commit and snapshot nodes, signed ref states), so equal values always give
//! equal bytes:
//!
//! - integers and lengths in their shortest form, no indefinite lengths;
//! - map keys are text, written length-first and then bytewise (RFC 7049 canonical order);
//! - floats are always 64-bit, and never NaN or ±Infinity;
//! - the only tag is 42, a CID link: byte string `0x00 ‖ CID bytes`.
//!
//! [`decode`] is strict and accepts exactly the bytes [`encode`] can produce, so
//! `encode(&decode(b)?) == b` for every accepted input. [`Int`] and [`Float`] only hold values
//! DAG-CBOR can represent, which is why encoding cannot fail.
//!
//! ```
//! use musehub::dagcbor::{self, Value};
//! let v = Value::map([("version", Value::from(1u64)), ("roots", Value::list([]))]);
//! let bytes = dagcbor::encode(&v);
//! assert_eq!(dagcbor::decode(&bytes).unwrap(), v);
//! assert_eq!(v.get("version").and_then(Value::as_u64), Some(1));
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use cid::Cid;

/// Deepest nesting of lists and maps [`decode`] accepts.
pub const MAX_DEPTH: usize = 128;

/// The CBOR tag of a CID link.
pub const TAG_CID: u64 = 42;

/// A DAG-CBOR value (the IPLD data model).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Bool(bool),
    Int(Int),
    Float(Float),
    Bytes(Vec<u8>),
    Text(String),
    List(Vec<Value>),
    /// Kept sorted bytewise for lookups; [`encode`] writes the canonical (length-first) order.
    Map(BTreeMap<String, Value>),
    Link(Cid),
}

/// An integer in CBOR's range, -2⁶⁴ ..= 2⁶⁴-1 (major types 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int(i128);

impl Int {
    pub const MIN: Int = Int(-(1i128 << 64));
    pub const MAX: Int = Int((1i128 << 64) - 1);

    /// `None` outside -2⁶⁴ ..= 2⁶⁴-1.
    pub fn new(v: i128) -> Option<Int> {
        (Self::MIN.0..=Self::MAX.0).contains(&v).then_some(Int(v))
    }

    pub fn get(self) -> i128 {
        self.0
    }

    pub fn to_u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    pub fn to_i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Int {
            fn from(v: $t) -> Int {
                Int(v as i128)
            }
        }
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(Int::from(v))
            }
        }
    )*};
}
int_from!(u8, u16, u32, u64, usize, i8, i16, i32, i64);

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A finite 64-bit float. Equality is bitwise, so `0.0` and `-0.0` differ (as their encodings do).
#[derive(Debug, Clone, Copy)]
pub struct Float(f64);

impl Float {
    /// `None` for NaN and ±Infinity, which DAG-CBOR forbids.
    pub fn new(v: f64) -> Option<Float> {
        v.is_finite().then_some(Float(v))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<Int> for Value {
    fn from(v: Int) -> Value {
        Value::Int(v)
    }
}

impl From<Float> for Value {
    fn from(v: Float) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

/// Bytes become a byte string (use [`Value::list`] for a list).
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl From<Cid> for Value {
    fn from(v: Cid) -> Value {
        Value::Link(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::List(v)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Value {
        Value::Map(v)
    }
}

impl Value {
    /// A map from `(key, value)` pairs; a repeated key keeps its last value.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn link(cid: Cid) -> Value {
        Value::Link(cid)
    }

    /// `None` for NaN and ±Infinity.
    pub fn float(v: f64) -> Option<Value> {
        Float::new(v).map(Value::Float)
    }

    /// The value under `key` if this is a map holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?.get(key)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<Int> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A non-negative integer that fits in `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_int()?.to_u64()
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_int()?.to_i64()
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(f.get()),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_link(&self) -> Option<&Cid> {
        match self {
            Value::Link(c) => Some(c),
            _ => None,
        }
    }

    /// Every link inside this value, in the order [`encode`] writes them (depth-first, maps in
    /// canonical key order), which is the order a DAG walk visits children.
    pub fn links(&self) -> Vec<Cid> {
        let mut out = Vec::new();
        self.collect_links(&mut out);
        out
    }

    fn collect_links(&self, out: &mut Vec<Cid>) {
        match self {
            Value::Link(c) => out.push(*c),
            Value::List(items) => items.iter().for_each(|v| v.collect_links(out)),
            Value::Map(m) => canonical_entries(m)
                .into_iter()
                .for_each(|(_, v)| v.collect_links(out)),
            _ => {}
        }
    }
}

/// DAG-CBOR's map key order: shorter keys first, then bytewise.
pub fn cmp_keys(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A map's entries in canonical (encoding) order.
pub fn canonical_entries(map: &BTreeMap<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| cmp_keys(a.0, b.0));
    entries
}

// ---------------------------------------------------------------------------------------------
// Encoding

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_LIST: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

/// Canonical DAG-CBOR bytes of `v`.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(v, &mut out);
    out
}

/// Appends the canonical DAG-CBOR bytes of `v` to `out`.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Int(i) => {
            let i = i.get();
            if i >= 0 {
                head(MAJOR_UINT, i as u64, out);
            } else {
                head(MAJOR_NINT, (-1 - i) as u64, out);
            }
        }
        Value::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.get().to_be_bytes());
        }
        Value::Bytes(b) => {
            head(MAJOR_BYTES, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Text(s) => {
            head(MAJOR_TEXT, s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            head(MAJOR_LIST, items.len() as u64, out);
            for item in items {
                encode_into(item, out);
            }
        }
        Value::Map(m) => {
            head(MAJOR_MAP, m.len() as u64, out);
            for (k, v) in canonical_entries(m) {
                head(MAJOR_TEXT, k.len() as u64, out);
                out.extend_from_slice(k.as_bytes());
                encode_into(v, out);
            }
        }
        Value::Link(cid) => {
            let bytes = cid.to_bytes();
            head(MAJOR_TAG, TAG_CID, out);
            head(MAJOR_BYTES, bytes.len() as u64 + 1, out);
            out.push(0x00);
            out.extend_from_slice(&bytes);
        }
    }
}

/// Appends `s` as a text string.
pub fn encode_text(s: &str, out: &mut Vec<u8>) {
    head(MAJOR_TEXT, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Appends the lowercase hex of `bytes` as a text string, without an intermediate `String`.
pub fn encode_hex_text(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    head(MAJOR_TEXT, bytes.len() as u64 * 2, out);
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

/// Appends `cid` as a link (tag 42).
pub fn encode_link(cid: &Cid, out: &mut Vec<u8>) {
    encode_into(&Value::Link(*cid), out);
}

/// Appends the head of a map of `len` entries; the caller appends the entries, in canonical
/// key order ([`cmp_keys`]).
pub fn encode_map_head(len: usize, out: &mut Vec<u8>) {
    head(MAJOR_MAP, len as u64, out);
}

/// A map with text keys whose values are already encoded, each pair appended in canonical key
/// order. Lets a caller splice in a large encoded value without building it as a [`Value`].
pub fn encode_map_of_encoded(mut entries: Vec<(&str, &[u8])>) -> Vec<u8> {
    entries.sort_by(|a, b| cmp_keys(a.0, b.0));
    let mut out = Vec::with_capacity(entries.iter().map(|(k, v)| k.len() + v.len() + 9).sum());
    encode_map_head(entries.len(), &mut out);
    for (k, v) in entries {
        encode_text(k, &mut out);
        out.extend_from_slice(v);
    }
    out
}

fn head(major: u8, v: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if v < 24 {
        out.push(m | v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[m | 24, v as u8]);
    } else if v <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Why bytes are not canonical DAG-CBOR, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DAG-CBOR at byte {offset}: {kind}")]
pub struct Error {
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("unexpected end of input")]
    Eof,
    #[error("a length runs past the end of the input")]
    LengthBeyondInput,
    #[error("integer or length not in its shortest form")]
    NonCanonicalInteger,
    #[error("indefinite-length items are not allowed")]
    Indefinite,
    #[error("reserved additional information {0}")]
    Reserved(u8),
    #[error("map key is not a text string")]
    MapKeyNotText,
    #[error("map keys out of canonical order")]
    MapKeyOrder,
    #[error("duplicate map key")]
    DuplicateKey,
    #[error("tag {0} is not allowed (only 42)")]
    Tag(u64),
    #[error("tag 42 must hold a byte string 0x00 followed by a CID: {0}")]
    Link(String),
    #[error("invalid UTF-8 in a text string")]
    Utf8,
    #[error("floats must be 64-bit")]
    ShortFloat,
    #[error("NaN and Infinity are not allowed")]
    NonFinite,
    #[error("simple value {0} is not allowed")]
    Simple(u8),
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("trailing bytes after the value")]
    Trailing,
}

/// Decodes exactly one canonical DAG-CBOR value filling all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, Error> {
    let mut d = Decoder { buf: bytes, pos: 0 };
    let v = d.value(0)?;
    if d.pos != bytes.len() {
        return Err(d.err_at(d.pos, ErrorKind::Trailing));
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn err_at(&self, offset: usize, kind: ErrorKind) -> Error {
        Error { offset, kind }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err_at(self.pos, ErrorKind::Eof))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads an initial byte and its argument: `(major, info, argument)`. For major 7 the
    /// argument is returned raw (`info` tells what it is); elsewhere it is checked to be in its
    /// shortest form and never indefinite.
    fn head(&mut self) -> Result<(u8, u8, u64), Error> {
        let start = self.pos;
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]])),
            26 => {
                let s = self.take(4)?;
                u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            }
            27 => {
                let s = self.take(8)?;
                u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
            }
            28..=30 => return Err(self.err_at(start, ErrorKind::Reserved(info))),
            _ => return Err(self.err_at(start, ErrorKind::Indefinite)),
        };
        if major != MAJOR_SIMPLE {
            let min = match info {
                24 => 24,
                25 => 0x100,
                26 => 0x1_0000,
                27 => 0x1_0000_0000,
                _ => 0,
            };
            if arg < min {
                return Err(self.err_at(start, ErrorKind::NonCanonicalInteger));
            }
        }
        Ok((major, info, arg))
    }

    /// A length that must fit in what is left of the input (each unit at least one byte).
    fn length(&self, start: usize, len: u64) -> Result<usize, Error> {
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or_else(|| self.err_at(start, ErrorKind::LengthBeyondInput))
    }

    fn text(&mut self, start: usize, len: u64) -> Result<String, Error> {
        let len = self.length(start, len)?;
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| self.err_at(start, ErrorKind::Utf8))
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        let start = self.pos;
        let (major, info, arg) = self.head()?;
        match major {
            MAJOR_UINT => Ok(Value::Int(Int(i128::from(arg)))),
            MAJOR_NINT => Ok(Value::Int(Int(-1 - i128::from(arg)))),
            MAJOR_BYTES => {
                let len = self.length(start, arg)?;
                Ok(Value::Bytes(self.take(len)?.to_vec()))
            }
            MAJOR_TEXT => Ok(Value::Text(self.text(start, arg)?)),
            MAJOR_LIST => {
                if depth >= MAX_DEPTH {
                    return Err(self.err_at(start, ErrorKind::TooDeep));
                }
                let n = self.length(start, arg)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::List(items))
            }
            MAJOR_MAP => {
                if depth >= MAX_DEPTH {
                    return Err(self.err_at(start, ErrorKind::TooDeep));
                }
                let n = self.length(start, arg)?;
                let mut map = BTreeMap::new();
                let mut prev: Option<String> = None;
                for _ in 0..n {
                    let key_start = self.pos;
                    let (kmajor, _, klen) = self.head()?;
                    if kmajor != MAJOR_TEXT {
                        return Err(self.err_at(key_start, ErrorKind::MapKeyNotText));
                    }
                    let key = self.text(key_start, klen)?;
                    if let Some(p) = &prev {
                        match cmp_keys(p, &key) {
                            Ordering::Less => {}
                            Ordering::Equal => {
                                return Err(self.err_at(key_start, ErrorKind::DuplicateKey));
                            }
                            Ordering::Greater => {
                                return Err(self.err_at(key_start, ErrorKind::MapKeyOrder));
                            }
                        }
                    }
                    let v = self.value(depth + 1)?;
                    map.insert(key.clone(), v);
                    prev = Some(key);
                }
                Ok(Value::Map(map))
            }
            MAJOR_TAG => {
                if arg != TAG_CID {
                    return Err(self.err_at(start, ErrorKind::Tag(arg)));
                }
                let inner = self.pos;
                let (imajor, _, ilen) = self.head()?;
                if imajor != MAJOR_BYTES {
                    return Err(self.err_at(inner, ErrorKind::Link("not a byte string".into())));
                }
                let len = self.length(inner, ilen)?;
                let raw = self.take(len)?;
                let Some((&0, cid_bytes)) = raw.split_first() else {
                    return Err(self.err_at(inner, ErrorKind::Link("missing 0x00 prefix".into())));
                };
                let cid = Cid::read_bytes(cid_bytes)
                    .map_err(|e| self.err_at(inner, ErrorKind::Link(e.to_string())))?;
                if cid.to_bytes() != cid_bytes {
                    return Err(self.err_at(
                        inner,
                        ErrorKind::Link("trailing or non-canonical CID bytes".into()),
                    ));
                }
                Ok(Value::Link(cid))
            }
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                25 | 26 => Err(self.err_at(start, ErrorKind::ShortFloat)),
                27 => Float::new(f64::from_bits(arg))
                    .map(Value::Float)
                    .ok_or_else(|| self.err_at(start, ErrorKind::NonFinite)),
                24 => Err(self.err_at(start, ErrorKind::Simple(arg as u8))),
                _ => Err(self.err_at(start, ErrorKind::Simple(info))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn kind(bytes: &[u8]) -> ErrorKind {
        decode(bytes).unwrap_err().kind
    }

    const IPNS_VALUE: &str = "2f697066732f6261666b726569667a6a7574337465326e6879656b6b6c737332376e68336b37327973636f377933326b6f616f356565693636776f6633366e3565";

    #[test]
    fn ipns_data_round_trips() {
        let a = hx(&format!(
            "a56354544c1b00000045d964b8006556616c75655841{IPNS_VALUE}6853657175656e6365016856616c6964697479581e323033302d30312d30315430303a30303a30302e3030303030303030305a6c56616c69646974795479706500"
        ));
        assert_eq!(a.len(), 152);
        let v = decode(&a).unwrap();
        assert_eq!(v.get("TTL").and_then(Value::as_u64), Some(300_000_000_000));
        assert_eq!(v.get("Sequence").and_then(Value::as_u64), Some(1));
        assert_eq!(v.get("ValidityType").and_then(Value::as_u64), Some(0));
        assert_eq!(
            v.get("Validity").and_then(Value::as_bytes),
            Some(&b"2030-01-01T00:00:00.000000000Z"[..])
        );
        assert_eq!(
            v.get("Value").and_then(Value::as_bytes),
            Some(&hx(IPNS_VALUE)[..])
        );
        assert_eq!(encode(&v), a);

        // Built by hand, in any order, it encodes to the same bytes.
        let built = Value::map([
            ("ValidityType", Value::from(0u64)),
            (
                "Validity",
                Value::bytes(&b"2030-01-01T00:00:00.000000000Z"[..]),
            ),
            ("Sequence", Value::from(1u64)),
            ("Value", Value::bytes(hx(IPNS_VALUE))),
            ("TTL", Value::from(300_000_000_000u64)),
        ]);
        assert_eq!(encode(&built), a);

        let b = hx(&format!(
            "a56354544c1b00000045d964b8006556616c75655841{IPNS_VALUE}6853657175656e6365016856616c696469747954323033302d30312d30315430303a30303a30305a6c56616c69646974795479706500"
        ));
        assert_eq!(encode(&decode(&b).unwrap()), b);
    }

    #[test]
    fn car_header_vectors() {
        let probe = hx("19a265726f6f747381d82a4500015500006776657273696f6e01");
        assert_eq!(probe[0] as usize, probe.len() - 1);
        let body = &probe[1..];
        let bafkqaaa = Cid::try_from("bafkqaaa").unwrap();
        let header = Value::map([
            ("version", Value::from(1u64)),
            ("roots", Value::list([Value::link(bafkqaaa)])),
        ]);
        assert_eq!(encode(&header), body);
        let decoded = decode(body).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(
            decoded
                .get("roots")
                .and_then(Value::as_list)
                .map(|r| r[0].as_link()),
            Some(Some(&bafkqaaa))
        );
        assert_eq!(decoded.links(), vec![bafkqaaa]);

        let hello = hx(
            "3aa265726f6f747381d82a58250001551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde96776657273696f6e01",
        );
        let h =
            Cid::try_from("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e").unwrap();
        let header = Value::map([
            ("roots", Value::list([Value::link(h)])),
            ("version", Value::from(1u64)),
        ]);
        assert_eq!(encode(&header), &hello[1..]);
        assert_eq!(decode(&hello[1..]).unwrap(), header);
    }

    #[test]
    fn scalars_round_trip_in_shortest_form() {
        let cases: Vec<(Value, &str)> = vec![
            (Value::Null, "f6"),
            (Value::Bool(false), "f4"),
            (Value::Bool(true), "f5"),
            (Value::from(0u64), "00"),
            (Value::from(23u64), "17"),
            (Value::from(24u64), "1818"),
            (Value::from(255u64), "18ff"),
            (Value::from(256u64), "190100"),
            (Value::from(65_535u64), "19ffff"),
            (Value::from(65_536u64), "1a00010000"),
            (Value::from(u32::MAX), "1affffffff"),
            (Value::from(1u64 << 32), "1b0000000100000000"),
            (Value::from(u64::MAX), "1bffffffffffffffff"),
            (Value::from(-1i64), "20"),
            (Value::from(-24i64), "37"),
            (Value::from(-25i64), "3818"),
            (Value::from(-500i64), "3901f3"),
            (Value::from(i64::MIN), "3b7fffffffffffffff"),
            (Value::Int(Int::MIN), "3bffffffffffffffff"),
            (Value::float(1.5).unwrap(), "fb3ff8000000000000"),
            (Value::float(1.0).unwrap(), "fb3ff0000000000000"),
            (Value::float(-0.0).unwrap(), "fb8000000000000000"),
            (Value::bytes(vec![]), "40"),
            (Value::bytes(vec![1, 2, 3]), "43010203"),
            (Value::text(""), "60"),
            (Value::text("a"), "6161"),
            (Value::text("ü"), "62c3bc"),
            (Value::list([]), "80"),
            (Value::list([Value::from(1u64), Value::list([])]), "820180"),
            (Value::map(Vec::<(String, Value)>::new()), "a0"),
        ];
        for (v, h) in cases {
            assert_eq!(hex::encode(encode(&v)), h, "{v:?}");
            assert_eq!(decode(&hx(h)).unwrap(), v, "{h}");
        }
        let long = Value::text("x".repeat(300));
        let enc = encode(&long);
        assert_eq!(&enc[..3], &[0x79, 0x01, 0x2c]);
        assert_eq!(decode(&enc).unwrap(), long);
        assert_eq!(Value::from(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(Value::from(u64::MAX).as_i64(), None);
        assert_eq!(Value::from(-3i32).as_i64(), Some(-3));
        assert_eq!(Value::from(-3i32).as_u64(), None);
        assert_eq!(Int::new(Int::MAX.get() + 1), None);
        assert_eq!(Int::new(Int::MIN.get() - 1), None);
        assert!(Value::float(f64::NAN).is_none());
        assert!(Value::float(f64::INFINITY).is_none());
        assert_eq!(Value::float(2.5).and_then(|v| v.as_f64()), Some(2.5));
    }

    #[test]
    fn maps_encode_length_first() {
        let v = Value::map([
            ("bb", Value::Null),
            ("a", Value::Null),
            ("aaa", Value::Null),
            ("b", Value::Null),
            ("ab", Value::Null),
        ]);
        // a, b, ab, bb, aaa
        assert_eq!(
            hex::encode(encode(&v)),
            "a56161f66162f6626162f6626262f663616161f6"
        );
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        let keys: Vec<_> = canonical_entries(v.as_map().unwrap())
            .into_iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["a", "b", "ab", "bb", "aaa"]);
    }

    #[test]
    fn links_follow_encoding_order() {
        let a = Cid::try_from("bafkqaaa").unwrap();
        let b = Cid::try_from("QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4").unwrap();
        let v = Value::map([
            ("zz", Value::link(a)),
            (
                "b",
                Value::list([Value::link(b), Value::map([("x", Value::link(a))])]),
            ),
        ]);
        assert_eq!(v.links(), vec![b, a, a]);
        let enc = encode(&v);
        // A CIDv0 link is 0x00 ‖ the bare multihash.
        assert!(hex::encode(&enc).contains("d82a582300122"));
        assert_eq!(decode(&enc).unwrap(), v);
    }

    #[test]
    fn rejects_non_canonical_integers_and_lengths() {
        for h in [
            "1800",               // 0 in one extra byte
            "1817",               // 23 in one extra byte
            "190010",             // 16 in two bytes
            "1a0000ffff",         // 65535 in four bytes
            "1b00000000ffffffff", // u32::MAX in eight bytes
            "3800",               // -1 in one extra byte
            "5801ff",             // byte string length 1 in one extra byte
            "780161",             // text length 1 in one extra byte
            "980100",             // list length 1 in one extra byte
            "b8016161f6",         // map length 1 in one extra byte
            "d9002a4100",         // tag 42 in two bytes
        ] {
            assert_eq!(kind(&hx(h)), ErrorKind::NonCanonicalInteger, "{h}");
        }
    }

    #[test]
    fn rejects_indefinite_and_reserved() {
        for h in [
            "5f41ff",
            "7f6161ff",
            "9f01ff",
            "bf6161f6ff",
            "ff",
            "1f",
            "3f",
            "df",
        ] {
            assert_eq!(kind(&hx(h)), ErrorKind::Indefinite, "{h}");
        }
        for (h, info) in [("1c", 28u8), ("5d", 29), ("fe", 30)] {
            assert_eq!(kind(&hx(h)), ErrorKind::Reserved(info), "{h}");
        }
    }

    #[test]
    fn rejects_bad_map_keys() {
        // Integer key.
        assert_eq!(kind(&hx("a101f6")), ErrorKind::MapKeyNotText);
        // Byte-string key.
        assert_eq!(kind(&hx("a14161f6")), ErrorKind::MapKeyNotText);
        // "b" before "a".
        assert_eq!(kind(&hx("a26162f66161f6")), ErrorKind::MapKeyOrder);
        // Bytewise order instead of length-first: "aa" before "b".
        assert_eq!(kind(&hx("a2626161f66162f6")), ErrorKind::MapKeyOrder);
        // Duplicate "a".
        assert_eq!(kind(&hx("a26161f66161f6")), ErrorKind::DuplicateKey);
        // Invalid UTF-8 key and value.
        assert_eq!(kind(&hx("a162c328f6")), ErrorKind::Utf8);
        assert_eq!(kind(&hx("62c328")), ErrorKind::Utf8);
    }

    #[test]
    fn rejects_bad_tags_and_links() {
        assert_eq!(
            kind(&hx("c074323031332d30332d32315432303a30343a30305a")),
            ErrorKind::Tag(0)
        );
        assert_eq!(kind(&hx("d82b4100")), ErrorKind::Tag(43));
        assert_eq!(kind(&hx("d9d9f7f6")), ErrorKind::Tag(55_799));
        // Tag 42 around text, around bytes without the 0x00 prefix, empty, bad CID, trailing.
        for h in [
            "d82a6500015500 00",
            "d82a4401550000",
            "d82a40",
            "d82a4100",
            "d82a4500015500 05",
            "d82a460001550000ff",
            "d82a4502015500 00",
        ] {
            let h = h.replace(' ', "");
            assert!(matches!(kind(&hx(&h)), ErrorKind::Link(_)), "{h}");
        }
        // The good one.
        assert!(decode(&hx("d82a4500015500 00".replace(' ', "").as_str())).is_ok());
    }

    #[test]
    fn rejects_floats_and_simple_values() {
        assert_eq!(kind(&hx("f93c00")), ErrorKind::ShortFloat);
        assert_eq!(kind(&hx("fa3fc00000")), ErrorKind::ShortFloat);
        assert_eq!(kind(&hx("fb7ff8000000000000")), ErrorKind::NonFinite);
        assert_eq!(kind(&hx("fb7ff0000000000000")), ErrorKind::NonFinite);
        assert_eq!(kind(&hx("fbfff0000000000000")), ErrorKind::NonFinite);
        assert_eq!(kind(&hx("f7")), ErrorKind::Simple(23)); // undefined
        assert_eq!(kind(&hx("e0")), ErrorKind::Simple(0));
        assert_eq!(kind(&hx("f820")), ErrorKind::Simple(32));
    }

    #[test]
    fn rejects_truncation_trailing_and_depth() {
        assert_eq!(kind(&[]), ErrorKind::Eof);
        assert_eq!(kind(&hx("19")), ErrorKind::Eof);
        assert_eq!(kind(&hx("1b0000")), ErrorKind::Eof);
        assert_eq!(kind(&hx("810102")), ErrorKind::Trailing);
        assert_eq!(kind(&hx("0000")), ErrorKind::Trailing);
        assert_eq!(decode(&hx("0000")).unwrap_err().offset, 1);
        // Lengths beyond the input fail before allocating.
        assert_eq!(kind(&hx("4201")), ErrorKind::LengthBeyondInput);
        assert_eq!(
            kind(&hx("7b7fffffffffffffff")),
            ErrorKind::LengthBeyondInput
        );
        assert_eq!(
            kind(&hx("9bffffffffffffffff")),
            ErrorKind::LengthBeyondInput
        );
        assert_eq!(
            kind(&hx("bb0000000100000000")),
            ErrorKind::LengthBeyondInput
        );
        assert_eq!(kind(&hx("8118")), ErrorKind::Eof);
        assert_eq!(kind(&hx("8301")), ErrorKind::LengthBeyondInput);
        // Nesting.
        let mut ok = vec![0x81; MAX_DEPTH - 1];
        ok.push(0x80);
        assert!(decode(&ok).is_ok());
        let mut deep = vec![0x81; MAX_DEPTH];
        deep.push(0x80);
        assert_eq!(kind(&deep), ErrorKind::TooDeep);
        let mut deep_maps = Vec::new();
        for _ in 0..MAX_DEPTH {
            deep_maps.extend([0xa1, 0x61, 0x61]);
        }
        deep_maps.push(0xa0);
        assert_eq!(kind(&deep_maps), ErrorKind::TooDeep);
    }

    #[test]
    fn error_messages_say_where() {
        let e = decode(&hx("a26162f66161f6")).unwrap_err();
        assert_eq!(e.offset, 4);
        assert_eq!(
            e.to_string(),
            "invalid DAG-CBOR at byte 4: map keys out of canonical order"
        );
    }
}
