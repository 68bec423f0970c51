//! IPNS records: names, creation, validation and selection, as Kubo (boxo) and js-ipns do them.
//!
//! A name is a peer ID (the multihash of a libp2p public key); its text form is a CIDv1 with
//! codec `libp2p-key` in base36 (`k51…`). A record ([`create`]) is an `IpnsEntry` protobuf whose
//! `data` field is a DAG-CBOR map (`TTL`, `Value`, `Sequence`, `Validity`, `ValidityType`, in
//! canonical order, written by [`crate::dagcbor`]) signed with the name's key:
//! `signatureV2 = sign("ipns-signature:" ‖ data)`. V1-compatible records also carry copies of
//! those fields in protobuf fields 1–6 plus the legacy `signatureV1`, which older DHT servers
//! still require.
//!
//! [`validate`] runs the spec's checks in order and never trusts `signatureV1`; [`better`] orders
//! two records like boxo's `Select`. [`check_dht_put`] is the gate for records other peers store
//! in our Kademlia store: only `/ipns/` keys are accepted.

use std::cmp::Ordering;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cid::Cid;
use cid::multibase::{self, Base};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

use crate::dagcbor::{self, Value};
use crate::ipfs::pb::{self, Reader, Writer};

/// Largest serialized record created or accepted (boxo `MaxRecordSize`, js `MAX_RECORD_SIZE`).
pub const MAX_RECORD_SIZE: usize = 10 * 1024;
/// The usual `TTL`: how long resolvers may cache the answer (5 minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// How long DHT servers keep a record after receiving it, and so the longest useful validity
/// for a record published to the DHT (48 hours).
pub const DHT_RECORD_LIFETIME: Duration = Duration::from_secs(48 * 60 * 60);
/// Multicodec `libp2p-key`, the codec of an IPNS name as a CID.
pub const LIBP2P_KEY: u64 = 0x72;
/// The DHT key prefix of IPNS records.
pub const KEY_PREFIX: &[u8] = b"/ipns/";

const SIGNATURE_V2_PREFIX: &[u8] = b"ipns-signature:";
const IDENTITY: u64 = 0x00;

/// Why a name or record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("IPNS record of {0} bytes exceeds the {MAX_RECORD_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("malformed IPNS record: {0}")]
    Protobuf(#[from] pb::Error),
    #[error("IPNS record has no signatureV2 (V1-only records are invalid)")]
    MissingSignatureV2,
    #[error("IPNS record has no data")]
    MissingData,
    #[error("IPNS record's public key cannot be decoded: {0}")]
    PublicKey(String),
    #[error("IPNS record's public key does not belong to the name")]
    KeyMismatch,
    #[error("IPNS name does not inline its key and the record carries none")]
    NoPublicKey,
    #[error("IPNS record data: {0}")]
    Data(#[from] dagcbor::Error),
    #[error("IPNS record data: {0}")]
    DataField(&'static str),
    #[error("IPNS record has a negative TTL")]
    NegativeTtl,
    #[error("IPNS signatureV2 does not verify")]
    SignatureV2,
    #[error("IPNS record's V1 field {0} differs from its data")]
    V1Mismatch(&'static str),
    #[error("IPNS record has unknown validity type {0}")]
    ValidityType(u64),
    #[error("IPNS record validity is not an RFC 3339 time: {0}")]
    Validity(String),
    #[error("IPNS record expired")]
    Expired,
    #[error("not an IPNS name: {0}")]
    Name(String),
    #[error("DHT key is not an /ipns/ key")]
    UnsupportedKey,
    #[error("signing failed: {0}")]
    Signing(String),
}

type Result<T> = std::result::Result<T, Error>;

/// What a valid record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The content path bytes, normally `/ipfs/<cid>` or `/ipns/<name>` (legacy records may
    /// hold a bare binary CID instead).
    pub value: Vec<u8>,
    pub sequence: u64,
    /// End of life: the record is valid strictly before this instant.
    pub validity: SystemTime,
    /// Cache hint.
    pub ttl: Duration,
}

// ---------------------------------------------------------------------------------------------
// Names and keys

/// The DHT record key of `peer`'s name: `/ipns/` ‖ peer ID bytes.
pub fn record_key(peer: &PeerId) -> Vec<u8> {
    let mut key = KEY_PREFIX.to_vec();
    key.extend_from_slice(&peer.to_bytes());
    key
}

/// The name as text: CIDv1, codec `libp2p-key`, base36 lower (`k51…` for Ed25519).
pub fn name_to_string(peer: &PeerId) -> String {
    let cid = Cid::new_v1(LIBP2P_KEY, *peer.as_ref());
    multibase::encode(Base::Base36Lower, cid.to_bytes())
}

/// Parses a name written as a `libp2p-key` CIDv1 in any multibase (`k51…`, `bafz…`) or as a bare
/// base58 peer ID (`12D3KooW…`, `Qm…`). CIDs of other codecs are refused, as boxo does.
pub fn parse_name(s: &str) -> Result<PeerId> {
    if s.starts_with('1') || s.starts_with("Qm") {
        return PeerId::from_str(s).map_err(|e| Error::Name(e.to_string()));
    }
    let cid = Cid::try_from(s).map_err(|e| Error::Name(e.to_string()))?;
    if cid.version() != cid::Version::V1 || cid.codec() != LIBP2P_KEY {
        return Err(Error::Name(format!(
            "CID codec {:#x} is not libp2p-key",
            cid.codec()
        )));
    }
    PeerId::from_multihash(*cid.hash())
        .map_err(|mh| Error::Name(format!("multihash {:#x} is not a peer ID", mh.code())))
}

/// The public key to verify `name`'s records with: the one the record embeds (which must hash
/// to the name) or else the one inlined in the name's identity multihash.
fn name_key(name: &PeerId, embedded: Option<&[u8]>) -> Result<PublicKey> {
    if let Some(bytes) = embedded {
        let key =
            PublicKey::try_decode_protobuf(bytes).map_err(|e| Error::PublicKey(e.to_string()))?;
        if key.to_peer_id() != *name {
            return Err(Error::KeyMismatch);
        }
        return Ok(key);
    }
    let mh: &cid::multihash::Multihash<64> = name.as_ref();
    if mh.code() != IDENTITY {
        return Err(Error::NoPublicKey);
    }
    PublicKey::try_decode_protobuf(mh.digest()).map_err(|e| Error::PublicKey(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Creating

/// Creates and signs a serialized record (§2.2–2.4) pointing `name = key` at `value`.
///
/// `validity` is written as RFC 3339 UTC with nine fractional digits, as js-ipns does, and
/// `ttl` in nanoseconds. With `v1_compatible` the V1 copies (fields 1–6, `validityType` written
/// explicitly) and `signatureV1` are included: publish that form to the DHT. The public key is
/// embedded (field 7) only when the peer ID does not inline it (RSA), never for Ed25519.
pub fn create(
    key: &Keypair,
    value: &[u8],
    sequence: u64,
    validity: SystemTime,
    ttl: Duration,
    v1_compatible: bool,
) -> Result<Vec<u8>> {
    let validity = format_rfc3339_nanos(validity)?;
    let ttl_ns = u64::try_from(ttl.as_nanos())
        .map_err(|_| Error::DataField("TTL does not fit in 64-bit nanoseconds"))?;
    let data = dagcbor::encode(&Value::map([
        ("TTL", Value::from(ttl_ns)),
        ("Value", Value::bytes(value)),
        ("Sequence", Value::from(sequence)),
        ("Validity", Value::bytes(validity.as_bytes())),
        ("ValidityType", Value::from(0u64)),
    ]));
    let sign = |msg: &[u8]| key.sign(msg).map_err(|e| Error::Signing(e.to_string()));
    let signature_v2 = sign(&[SIGNATURE_V2_PREFIX, &data].concat())?;

    let mut w = Writer::with_capacity(data.len() + 2 * value.len() + 256);
    if v1_compatible {
        let signature_v1 = sign(&[value, validity.as_bytes(), b"EOL"].concat())?;
        w.field_bytes(1, value)
            .field_bytes(2, &signature_v1)
            .field_varint(3, 0)
            .field_bytes(4, validity.as_bytes())
            .field_varint(5, sequence)
            .field_varint(6, ttl_ns);
    }
    let public = key.public();
    let peer = public.to_peer_id();
    let inlined: &cid::multihash::Multihash<64> = peer.as_ref();
    if inlined.code() != IDENTITY {
        w.field_bytes(7, &public.encode_protobuf());
    }
    w.field_bytes(8, &signature_v2).field_bytes(9, &data);
    let record = w.into_vec();
    if record.len() > MAX_RECORD_SIZE {
        return Err(Error::TooLarge(record.len()));
    }
    Ok(record)
}

// ---------------------------------------------------------------------------------------------
// Parsing and validating

/// The protobuf fields of an `IpnsEntry` (the last occurrence of a field wins).
#[derive(Debug, Default)]
struct Entry<'a> {
    value: Option<&'a [u8]>,
    signature_v1: Option<&'a [u8]>,
    validity_type: Option<u64>,
    validity: Option<&'a [u8]>,
    sequence: Option<u64>,
    ttl: Option<u64>,
    pub_key: Option<&'a [u8]>,
    signature_v2: Option<&'a [u8]>,
    data: Option<&'a [u8]>,
}

fn parse_entry(record: &[u8]) -> Result<Entry<'_>> {
    let mut e = Entry::default();
    for field in Reader::new(record) {
        let field = field?;
        match field.number {
            1 => e.value = Some(field.bytes()?),
            2 => e.signature_v1 = Some(field.bytes()?),
            3 => e.validity_type = Some(field.varint()?),
            4 => e.validity = Some(field.bytes()?),
            5 => e.sequence = Some(field.varint()?),
            6 => e.ttl = Some(field.varint()?),
            7 => e.pub_key = Some(field.bytes()?),
            8 => e.signature_v2 = Some(field.bytes()?),
            9 => e.data = Some(field.bytes()?),
            _ => {}
        }
    }
    Ok(e)
}

/// The five fields of the DAG-CBOR `data`.
#[derive(Debug)]
struct Data {
    value: Vec<u8>,
    validity: Vec<u8>,
    validity_type: u64,
    sequence: u64,
    ttl: u64,
}

fn parse_data(bytes: &[u8]) -> Result<Data> {
    let map = dagcbor::decode(bytes)?;
    if map.as_map().is_none() {
        return Err(Error::DataField("not a map"));
    }
    let bytes_field = |k: &'static str| -> Result<Vec<u8>> {
        map.get(k)
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec)
            .ok_or(Error::DataField(k))
    };
    let uint_field = |k: &'static str| -> Result<u64> {
        map.get(k)
            .and_then(Value::as_u64)
            .ok_or(Error::DataField(k))
    };
    let ttl = match map.get("TTL").and_then(Value::as_int) {
        Some(i) if i.get() < 0 => return Err(Error::NegativeTtl),
        Some(i) => i.to_u64().ok_or(Error::DataField("TTL"))?,
        None => return Err(Error::DataField("TTL")),
    };
    Ok(Data {
        value: bytes_field("Value")?,
        validity: bytes_field("Validity")?,
        validity_type: uint_field("ValidityType")?,
        sequence: uint_field("Sequence")?,
        ttl,
    })
}

/// Validates a serialized record for `name` at time `now`, following §2.5 in order, and
/// returns what it says. `signatureV1` is never used.
pub fn validate(name: &PeerId, record: &[u8], now: SystemTime) -> Result<Validated> {
    // 1. Size before anything else.
    if record.len() > MAX_RECORD_SIZE {
        return Err(Error::TooLarge(record.len()));
    }
    // 2. signatureV2 and data present.
    let entry = parse_entry(record)?;
    let signature_v2 = entry
        .signature_v2
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingSignatureV2)?;
    let data_bytes = entry
        .data
        .filter(|d| !d.is_empty())
        .ok_or(Error::MissingData)?;
    // 3. The key.
    let key = name_key(name, entry.pub_key.filter(|k| !k.is_empty()))?;
    // 4. The data.
    let data = parse_data(data_bytes)?;
    // 5. signatureV2.
    if !key.verify(&[SIGNATURE_V2_PREFIX, data_bytes].concat(), signature_v2) {
        return Err(Error::SignatureV2);
    }
    // 6. V1 copies, when there are any, must match (missing ones read as their defaults).
    if entry.signature_v1.is_some() || entry.value.is_some() {
        if entry.value.unwrap_or_default() != data.value {
            return Err(Error::V1Mismatch("value"));
        }
        if entry.validity.unwrap_or_default() != data.validity {
            return Err(Error::V1Mismatch("validity"));
        }
        if entry.validity_type.unwrap_or_default() != data.validity_type {
            return Err(Error::V1Mismatch("validityType"));
        }
        if entry.sequence.unwrap_or_default() != data.sequence {
            return Err(Error::V1Mismatch("sequence"));
        }
        if entry.ttl.unwrap_or_default() != data.ttl {
            return Err(Error::V1Mismatch("ttl"));
        }
    }
    // 7. EOL in the future.
    if data.validity_type != 0 {
        return Err(Error::ValidityType(data.validity_type));
    }
    let validity = parse_validity(&data.validity)?;
    if validity <= now {
        return Err(Error::Expired);
    }
    Ok(Validated {
        value: data.value,
        sequence: data.sequence,
        validity,
        ttl: Duration::from_nanos(data.ttl),
    })
}

fn parse_validity(bytes: &[u8]) -> Result<SystemTime> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::Validity("not UTF-8".into()))?;
    parse_rfc3339(text).ok_or_else(|| Error::Validity(text.chars().take(64).collect()))
}

// ---------------------------------------------------------------------------------------------
// Selecting

/// What boxo's `Select` compares, or `None` for a record it could not read.
fn selection_key(record: &[u8]) -> Option<(bool, u64, Option<SystemTime>)> {
    let entry = parse_entry(record).ok()?;
    let has_v2 = entry.signature_v2.is_some_and(|s| !s.is_empty());
    let (sequence, validity) = match entry.data.map(parse_data) {
        Some(Ok(d)) => (d.sequence, d.validity),
        _ => (entry.sequence?, entry.validity?.to_vec()),
    };
    Some((has_v2, sequence, parse_validity(&validity).ok()))
}

/// Orders two records of the same name, [`Ordering::Greater`] meaning `a` is the better one:
/// a record with `signatureV2` beats one without, then the higher `Sequence`, then the later
/// `Validity`, then the bytewise larger record (boxo's `Select`). Unreadable records lose.
///
/// Meant for records that already passed [`validate`]; it checks nothing itself.
pub fn better(a: &[u8], b: &[u8]) -> Ordering {
    match (selection_key(a), selection_key(b)) {
        (Some(ka), Some(kb)) => ka.cmp(&kb),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.cmp(b))
}

/// The index of the best record per [`better`], or `None` for an empty slice.
pub fn select(records: &[&[u8]]) -> Option<usize> {
    (0..records.len()).max_by(|&i, &j| better(records[i], records[j]))
}

// ---------------------------------------------------------------------------------------------
// DHT

/// The store filter for records other peers PUT into our Kademlia store: an `/ipns/<peer id>`
/// key whose value is a valid record for that peer at `now`. Every other key is refused.
///
/// Amino also carries `/pk/<peer id>` public-key records, but they only matter for names whose
/// peer ID does not inline the key (RSA); Ed25519 names, the ones we publish, never need them,
/// and a legacy record embeds its key (field 7) anyway, so we neither serve nor store them.
pub fn check_dht_put(key: &[u8], value: &[u8], now: SystemTime) -> Result<()> {
    let peer = key.strip_prefix(KEY_PREFIX).ok_or(Error::UnsupportedKey)?;
    let peer = PeerId::from_bytes(peer).map_err(|e| Error::Name(e.to_string()))?;
    validate(&peer, value, now).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// RFC 3339

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn month_days(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the start of `year` (1970 or later).
fn days_before_year(year: u64) -> u64 {
    let leaps_before = |y: u64| y / 4 - y / 100 + y / 400;
    365 * (year - 1970) + leaps_before(year - 1) - leaps_before(1969)
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, always nine fractional digits (js-ipns style).
fn format_rfc3339_nanos(t: SystemTime) -> Result<String> {
    let since = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Validity("before 1970".into()))?;
    let secs = since.as_secs();
    let mut days = secs / 86_400;
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
        if year > 9999 {
            return Err(Error::Validity("after year 9999".into()));
        }
    }
    let mut month = 1;
    while days >= month_days(year, month) {
        days -= month_days(year, month);
        month += 1;
    }
    let rem = secs % 86_400;
    Ok(format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        days + 1,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_nanos()
    ))
}

/// Parses RFC 3339 as Go's `time.RFC3339Nano` writes it (`…:00Z`, `…:00.5Z`) and js-ipns's
/// nine digits, with `Z` or a numeric offset. Times before 1970 are refused.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(range)?;
        part.iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let local =
        days_before_year(year) + (1..month).map(|m| month_days(year, m)).sum::<u64>() + (day - 1);
    let local = local * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => local,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = oh * 3600 + om * 60;
            if *sign == b'+' {
                local.checked_sub(offset)?
            } else {
                local + offset
            }
        }
        _ => return None,
    };
    UNIX_EPOCH.checked_add(Duration::new(utc, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    const PUBLIC_KEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    const VALUE: &str = "/ipfs/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    const DATA_A: &str = concat!(
        "a56354544c1b00000045d964b800",
        "6556616c75655841",
        "2f697066732f6261666b726569667a6a7574337465326e6879656b6b6c737332376e68336b37327973636f377933326b6f616f356565693636776f6633366e3565",
        "6853657175656e636501",
        "6856616c6964697479581e323033302d30312d30315430303a30303a30302e3030303030303030305a",
        "6c56616c69646974795479706500",
    );
    const SIG_V2_A: &str = "00f661f50ff95915c1564bc516e44d6ef5d31a7dc88e4e533619a4781d721588bed6a8f08a2224493da09de7c3551da4ac5c6183d7dff0d08e490f9e02a27500";
    const SIG_V1_A: &str = "02cc369092fb59e0dac9a626bf73cb36600f3d1deac7eb00a5919155c759337bc8fff03476b7ebb6521d26eefc316165e6ab12ef830400eb270a0649c977e90c";
    const DATA_B: &str = concat!(
        "a56354544c1b00000045d964b8006556616c75655841",
        "2f697066732f6261666b726569667a6a7574337465326e6879656b6b6c737332376e68336b37327973636f377933326b6f616f356565693636776f6633366e3565",
        "6853657175656e6365016856616c696469747954323033302d30312d30315430303a30303a30305a6c56616c69646974795479706500",
    );
    const SIG_V2_B: &str = "ceb42dcb15767259e11af13b79a60dc2fd3232af926f752670c5c4aba49bcdd999167aa8ef91647cf77f5b8a16bf3e668efa22846d2c23cbc132e76f07134005";
    /// A throwaway RSA-2048 key (PKCS#8 DER) for the embedded-`pubKey` path.
    const RSA_PKCS8: &str = concat!(
        "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100b17f27347017",
        "8e72f3a59e542e0fa72d1206bac1c01a575a8ebe99b6fe7c5f4c3a61921ce7af15b5fdf10577dd8cd39962a0",
        "4abd1e556dd17b2829a8ca7d4977e4fe5d1112842f30b49a1647a2fc24970ff18c05148690e3e53cd3840843",
        "8293176e3af63d65bc6db3f8d41e0ce638806564e10eb2b1ae84300b6e799a65a4bcaa89257ebd8a86a7fc03",
        "a8b0cee8fb53935eed87fab542df3dd2d5da8a6b6276da2a65593fcff154a64a175d85d5a041fdc8c124442a",
        "6e2d1c1df2368fbf14a0e330bae6be29991fcad1bd2dd0d57b4265cea590a050ffcb72faf9b4c4fddaa2c4cd",
        "9b75928cd2974ecb67f501c36f1a8c45f064323e19523ee874d06ffc11950203010001028201004c20a1a383",
        "7a0efe2d92f8a3d9379c779fb6242e8a62a1d9b4c479f03b1903d4916b9cbbea00b59a9f665af68c9ee47872",
        "8d165123abf75473f2875f9e2d7b2fc196f93aa3caeee480696029ec75218a6aebaa26d9a5578a6f1d160918",
        "7440122f67f740fa97626858daddbb5fc3f432d98a195ef0f47549bbc38368037919dc9c3b06f6e4ada6e4e7",
        "8c177613b8b6a524394468c2ff580f93570df497a913ba8aafdcb7352afb0d21c2840258719be748d03535eb",
        "f3182f271d8919fcf7568c4324d2e25fdcbc9cb8b63c394ace2210349040602b7a51d912f44d12feed1d1203",
        "05d913417431530c2961d9679a8f26015ff6acda6a4268805a80c41a1ac8f702818100e34d1f0ea0481afec6",
        "1606d3c6e42ade46c96c1e3fe9c36bd24f813ac08cb6a82bcf417702d81871dbf25e68e06683caeef051abfe",
        "579dac00417aaedad88e531c01899c7230d0400e24a6155b5120202d88f8460e88fbd0b0bc193762b4d415c9",
        "ef29a5ab54f40d144d2151a098dc113e9120d0aa8bb814d595e42473fa70b702818100c7e83d02de24c40226",
        "afd089c384a637f852572f7e003e68f0253256603f71cf2d9f17b4cf88d41ba311caca1e6ed934e8638a23e0",
        "43cf918cc0975b34dab0706612fb4a274219cdde9c7f2f873b5e8143e4d18a44e40a8637326e60de3e26b42d",
        "95ef0dc9f143d185cb95dcbfa031144f50664465edf1e6eec56592e86bec1302818052fd3d71a1a3b1f7836b",
        "5762cb2353638484d62cd5390c58b998bd9e2ddf3271844d4fa19c3039fc98498d9ecd0fa0dedf0e6f4354c1",
        "b897ac203c22cb5475e2723f3d77195a292eb9fb378864a6e20bdd943cd1974cfc63dda34fb1a12054aeffe3",
        "8a592a8d01ee249364aee0ebeead7d228fd09ff41369c7f1ca326505f3510281800b7687b9185fe755703e78",
        "a8cdab5794b20a96b1447a6319c55b7cad734b700d3f42762b8a130086ad2d2201c108fe2f887bdcb9fdec25",
        "84e51b4e128ecf537abe7fac252e671defae2a2f28dc8a4cfb0097a864535af8378606c04991b4e2a7464de8",
        "ad53bd1ff46dc5a4cc49b8b7d7c04c8df0b21f98d5732fa2897006703d028181009d7c999cec5b93cea82e58",
        "cfa3343649bd9687be073411cfc9d6cdc90010b8ec4a8e2ae978bb0cebd91f0d2b767b79e436e4c3a1766418",
        "a2d02c1e885f12df7d35a1a858ea3272d5e0a44bec6cc888307bdca9bfc408c68ee633dc71e1588e116ee0f1",
        "b4675108824a634b5eb81e5fdb927b2a39897bdd1c62390717365312a8",
    );

    fn key() -> Keypair {
        let seed: Vec<u8> = (0u8..32).collect();
        Keypair::ed25519_from_bytes(seed).unwrap()
    }

    fn peer() -> PeerId {
        key().public().to_peer_id()
    }

    fn hx(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    fn eol() -> SystemTime {
        at("2030-01-01T00:00:00Z")
    }

    fn now() -> SystemTime {
        at("2026-01-01T00:00:00Z")
    }

    fn record_a(v1: bool) -> Vec<u8> {
        create(&key(), VALUE.as_bytes(), 1, eol(), DEFAULT_TTL, v1).unwrap()
    }

    /// Re-encodes a record's fields, letting `edit` change or drop them.
    fn rewrite(record: &[u8], edit: impl Fn(u32, &[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut w = Writer::new();
        for f in Reader::new(record) {
            let f = f.unwrap();
            match f.value {
                pb::FieldValue::Varint(v) => {
                    let raw = pb::uvarint(v);
                    if let Some(new) = edit(f.number, &raw) {
                        let (v, _) = pb::decode_uvarint(&new).unwrap();
                        w.field_varint(f.number, v);
                    }
                }
                pb::FieldValue::Len(b) => {
                    if let Some(new) = edit(f.number, b) {
                        w.field_bytes(f.number, &new);
                    }
                }
                _ => unreachable!(),
            }
        }
        w.into_vec()
    }

    #[test]
    fn key_and_name_vectors() {
        let public = key().public();
        assert_eq!(
            hex::encode(public.clone().try_into_ed25519().unwrap().to_bytes()),
            PUBLIC_KEY
        );
        assert_eq!(
            hex::encode(public.encode_protobuf()),
            format!("08011220{PUBLIC_KEY}")
        );
        let peer = peer();
        assert_eq!(
            peer.to_string(),
            "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
        );
        assert_eq!(
            hex::encode(peer.to_bytes()),
            format!("002408011220{PUBLIC_KEY}")
        );
        assert_eq!(peer.to_bytes().len(), 38);
        assert_eq!(
            name_to_string(&peer),
            "k51qzi5uqu5dg9ufswxt229ntzdy7p4125xzv5rtyjso89ajdujg6csfxcj260"
        );
        let base32 = Cid::new_v1(LIBP2P_KEY, *peer.as_ref()).to_string();
        assert_eq!(
            base32,
            "bafzaajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmny"
        );
        let dht_key = record_key(&peer);
        assert_eq!(
            hex::encode(&dht_key),
            format!("2f69706e732f002408011220{PUBLIC_KEY}")
        );
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&dht_key)),
            "eb9faadef8bfb82526a60ef7014583f919b2b7ad3705dc597efda863c3599a98"
        );
    }

    #[test]
    fn parses_every_name_form() {
        let peer = peer();
        for s in [
            "k51qzi5uqu5dg9ufswxt229ntzdy7p4125xzv5rtyjso89ajdujg6csfxcj260",
            "bafzaajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmny",
            "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB",
        ] {
            assert_eq!(parse_name(s), Ok(peer), "{s}");
        }
        // A hashed (RSA-style) peer ID, both bare and as a CID.
        let mh = cid::multihash::Multihash::<64>::wrap(0x12, &[7; 32]).unwrap();
        let hashed = PeerId::from_multihash(mh).unwrap();
        assert!(hashed.to_string().starts_with("Qm"));
        assert_eq!(parse_name(&hashed.to_string()), Ok(hashed));
        assert_eq!(parse_name(&name_to_string(&hashed)), Ok(hashed));
        // Other codecs, CIDv0 content, garbage.
        for bad in [
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeS0",
            "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfe",
            "k51",
            "",
            "/ipns/k51qzi5uqu5dg9ufswxt229ntzdy7p4125xzv5rtyjso89ajdujg6csfxcj260",
        ] {
            assert!(matches!(parse_name(bad), Err(Error::Name(_))), "{bad}");
        }
    }

    #[test]
    fn record_a_vectors() {
        let v2 = record_a(false);
        let entry = parse_entry(&v2).unwrap();
        assert_eq!(hex::encode(entry.data.unwrap()), DATA_A);
        assert_eq!(entry.data.unwrap().len(), 152);
        assert_eq!(hex::encode(entry.signature_v2.unwrap()), SIG_V2_A);
        assert_eq!(hex::encode(&v2), format!("4240{SIG_V2_A}4a9801{DATA_A}"));
        assert_eq!(v2.len(), 221);

        let v1 = record_a(true);
        let value_hex = hex::encode(VALUE);
        let validity_hex = hex::encode("2030-01-01T00:00:00.000000000Z");
        assert_eq!(
            hex::encode(&v1),
            format!(
                "0a41{value_hex}1240{SIG_V1_A}1800221e{validity_hex}28013080f092cbdd084240{SIG_V2_A}4a9801{DATA_A}"
            )
        );
        assert_eq!(v1.len(), 397);
        // The V1 signature input.
        assert!(key().public().verify(
            &hx(&format!("{value_hex}{validity_hex}454f4c")),
            &hx(SIG_V1_A)
        ));

        let expected = Validated {
            value: VALUE.as_bytes().to_vec(),
            sequence: 1,
            validity: eol(),
            ttl: DEFAULT_TTL,
        };
        assert_eq!(validate(&peer(), &v2, now()), Ok(expected.clone()));
        assert_eq!(validate(&peer(), &v1, now()), Ok(expected));
    }

    #[test]
    fn record_b_validates() {
        let record = hx(&format!("4240{SIG_V2_B}4a8d01{DATA_B}"));
        assert_eq!(record.len(), 210);
        let v = validate(&peer(), &record, now()).unwrap();
        assert_eq!(v.validity, eol());
        assert_eq!(v.sequence, 1);
        assert_eq!(v.value, VALUE.as_bytes());
        assert_eq!(v.ttl, Duration::from_secs(300));
        assert!(check_dht_put(&record_key(&peer()), &record, now()).is_ok());
    }

    #[test]
    fn v1_only_is_invalid() {
        let v1_only = rewrite(&record_a(true), |n, b| (n < 7).then(|| b.to_vec()));
        assert_eq!(
            validate(&peer(), &v1_only, now()),
            Err(Error::MissingSignatureV2)
        );
        let no_data = rewrite(&record_a(true), |n, b| (n != 9).then(|| b.to_vec()));
        assert_eq!(validate(&peer(), &no_data, now()), Err(Error::MissingData));
    }

    #[test]
    fn v1_mismatch_is_invalid() {
        let other = b"/ipfs/bafkreih7uy2yhx5gobvypuuexbvq22j2cypeqqfk2lc46225e7b3syq7pu";
        let mismatched = rewrite(&record_a(true), |n, b| {
            Some(if n == 1 { other.to_vec() } else { b.to_vec() })
        });
        assert_eq!(
            validate(&peer(), &mismatched, now()),
            Err(Error::V1Mismatch("value"))
        );
        // A value field alone (no signatureV1) triggers the check too, as in boxo.
        let value_only = rewrite(&record_a(false), |_, b| Some(b.to_vec()));
        let mut w = Writer::new();
        w.field_bytes(1, other);
        let value_only = [w.into_vec(), value_only].concat();
        assert_eq!(
            validate(&peer(), &value_only, now()),
            Err(Error::V1Mismatch("value"))
        );
        for (field, name) in [
            (4u32, "validity"),
            (5, "sequence"),
            (6, "ttl"),
            (3, "validityType"),
        ] {
            let bad = rewrite(&record_a(true), |n, b| {
                Some(if n == field {
                    if n == 4 {
                        b"2031-01-01T00:00:00Z".to_vec()
                    } else {
                        pb::uvarint(7)
                    }
                } else {
                    b.to_vec()
                })
            });
            assert_eq!(
                validate(&peer(), &bad, now()),
                Err(Error::V1Mismatch(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn broken_signature_v2_is_invalid() {
        for v1 in [false, true] {
            let broken = rewrite(&record_a(v1), |n, b| {
                let mut b = b.to_vec();
                if n == 8 {
                    b[10] ^= 1;
                }
                Some(b)
            });
            assert_eq!(validate(&peer(), &broken, now()), Err(Error::SignatureV2));
        }
        // Data changed under the signature.
        let tampered = rewrite(&record_a(false), |n, b| {
            Some(if n == 9 { hx(DATA_B) } else { b.to_vec() })
        });
        assert_eq!(validate(&peer(), &tampered, now()), Err(Error::SignatureV2));
    }

    #[test]
    fn broken_signature_v1_is_still_valid() {
        let broken = rewrite(&record_a(true), |n, b| {
            let mut b = b.to_vec();
            if n == 2 {
                b[0] ^= 0xff;
            }
            Some(b)
        });
        assert_ne!(broken, record_a(true));
        assert!(validate(&peer(), &broken, now()).is_ok());
    }

    #[test]
    fn expired_is_invalid() {
        let r = record_a(true);
        assert_eq!(
            validate(&peer(), &r, at("2031-01-01T00:00:00Z")),
            Err(Error::Expired)
        );
        // Exactly at the validity instant it is already over.
        assert_eq!(validate(&peer(), &r, eol()), Err(Error::Expired));
        assert!(validate(&peer(), &r, eol() - Duration::from_nanos(1)).is_ok());
    }

    #[test]
    fn wrong_name_is_invalid() {
        let other = Keypair::ed25519_from_bytes([9u8; 32])
            .unwrap()
            .public()
            .to_peer_id();
        assert_eq!(
            validate(&other, &record_a(false), now()),
            Err(Error::SignatureV2)
        );
        let hashed =
            PeerId::from_multihash(cid::multihash::Multihash::<64>::wrap(0x12, &[1; 32]).unwrap())
                .unwrap();
        assert_eq!(
            validate(&hashed, &record_a(false), now()),
            Err(Error::NoPublicKey)
        );
        assert!(check_dht_put(&record_key(&other), &record_a(true), now()).is_err());
    }

    #[test]
    fn oversized_is_invalid() {
        let big = vec![b'x'; MAX_RECORD_SIZE];
        assert!(matches!(
            create(&key(), &big, 1, eol(), DEFAULT_TTL, false),
            Err(Error::TooLarge(_))
        ));
        // A record of exactly the limit is fine, one byte more is not.
        let base = record_a(false);
        let pad = MAX_RECORD_SIZE - base.len() - 3; // field 15 tag + two-byte length
        let mut w = Writer::new();
        w.field_bytes(15, &vec![0; pad]);
        let exact = [base.clone(), w.into_vec()].concat();
        assert_eq!(exact.len(), MAX_RECORD_SIZE);
        assert!(validate(&peer(), &exact, now()).is_ok());
        let mut over = exact.clone();
        over.push(0);
        assert_eq!(
            validate(&peer(), &over, now()),
            Err(Error::TooLarge(MAX_RECORD_SIZE + 1))
        );
    }

    #[test]
    fn other_data_problems() {
        let sign = |data: &[u8]| {
            let sig = key().sign(&[SIGNATURE_V2_PREFIX, data].concat()).unwrap();
            let mut w = Writer::new();
            w.field_bytes(8, &sig).field_bytes(9, data);
            w.into_vec()
        };
        let base = || {
            vec![
                ("TTL", Value::from(1u64)),
                ("Value", Value::bytes(&b"/ipfs/x"[..])),
                ("Sequence", Value::from(0u64)),
                ("Validity", Value::bytes(&b"2030-01-01T00:00:00Z"[..])),
                ("ValidityType", Value::from(0u64)),
            ]
        };
        let with = |k: &'static str, v: Option<Value>| {
            let mut m: Vec<_> = base().into_iter().filter(|(n, _)| *n != k).collect();
            if let Some(v) = v {
                m.push((k, v));
            }
            sign(&dagcbor::encode(&Value::map(m)))
        };
        assert!(validate(&peer(), &with("x", None), now()).is_ok());
        // Unknown keys are ignored.
        assert!(validate(&peer(), &with("_extra", Some(Value::Null)), now()).is_ok());
        assert_eq!(
            validate(
                &peer(),
                &with("ValidityType", Some(Value::from(1u64))),
                now()
            ),
            Err(Error::ValidityType(1))
        );
        assert_eq!(
            validate(&peer(), &with("TTL", Some(Value::from(-1i64))), now()),
            Err(Error::NegativeTtl)
        );
        assert_eq!(
            validate(&peer(), &with("Value", Some(Value::text("/ipfs/x"))), now()),
            Err(Error::DataField("Value"))
        );
        assert_eq!(
            validate(&peer(), &with("Sequence", None), now()),
            Err(Error::DataField("Sequence"))
        );
        assert!(matches!(
            validate(
                &peer(),
                &with("Validity", Some(Value::bytes(&b"tomorrow"[..]))),
                now()
            ),
            Err(Error::Validity(_))
        ));
        // Data that is not canonical DAG-CBOR, or not a map.
        assert!(matches!(
            validate(&peer(), &sign(&hx("a2616101616101")), now()),
            Err(Error::Data(_))
        ));
        assert_eq!(
            validate(&peer(), &sign(&hx("80")), now()),
            Err(Error::DataField("not a map"))
        );
        // Not a protobuf at all.
        assert!(matches!(
            validate(&peer(), &[0xff, 0xff], now()),
            Err(Error::Protobuf(_))
        ));
    }

    #[test]
    fn rsa_records_embed_the_key() {
        let mut der = hx(RSA_PKCS8.trim());
        let rsa = Keypair::rsa_from_pkcs8(&mut der).unwrap();
        let name = rsa.public().to_peer_id();
        assert!(name.to_string().starts_with("Qm"));
        let record = create(&rsa, VALUE.as_bytes(), 3, eol(), DEFAULT_TTL, true).unwrap();
        let entry = parse_entry(&record).unwrap();
        assert_eq!(entry.pub_key, Some(&rsa.public().encode_protobuf()[..]));
        assert_eq!(validate(&name, &record, now()).unwrap().sequence, 3);
        assert!(check_dht_put(&record_key(&name), &record, now()).is_ok());
        // The embedded key must belong to the name.
        assert_eq!(validate(&peer(), &record, now()), Err(Error::KeyMismatch));
        // Without it, a hashed name cannot be checked.
        let stripped = rewrite(&record, |n, b| (n != 7).then(|| b.to_vec()));
        assert_eq!(validate(&name, &stripped, now()), Err(Error::NoPublicKey));
        // And the Ed25519 record never embeds one.
        assert!(parse_entry(&record_a(true)).unwrap().pub_key.is_none());
    }

    #[test]
    fn selection_follows_boxo() {
        let rec = |seq: u64, eol: &str| {
            create(&key(), VALUE.as_bytes(), seq, at(eol), DEFAULT_TTL, true).unwrap()
        };
        let a = rec(1, "2030-01-01T00:00:00Z");
        let b = rec(2, "2029-01-01T00:00:00Z");
        let c = rec(2, "2030-01-01T00:00:00Z");
        assert_eq!(better(&b, &a), Ordering::Greater, "higher sequence wins");
        assert_eq!(better(&c, &b), Ordering::Greater, "later validity wins");
        assert_eq!(better(&a, &c), Ordering::Less);
        assert_eq!(better(&a, &a), Ordering::Equal);
        // V2 beats V1-only even with a lower sequence.
        let v1_only = rewrite(&rec(9, "2031-01-01T00:00:00Z"), |n, b| {
            (n < 7).then(|| b.to_vec())
        });
        assert_eq!(better(&a, &v1_only), Ordering::Greater);
        // Unreadable records lose.
        assert_eq!(better(&a, &[0xff]), Ordering::Greater);
        assert_eq!(better(&[0xff], &a), Ordering::Less);
        // A full tie goes to the bytewise larger record.
        let v2 = rec(2, "2030-01-01T00:00:00Z");
        let v2_only = create(
            &key(),
            VALUE.as_bytes(),
            2,
            at("2030-01-01T00:00:00Z"),
            DEFAULT_TTL,
            false,
        )
        .unwrap();
        assert_eq!(better(&v2, &v2_only), v2.cmp(&v2_only));
        assert_eq!(select(&[&a, &c, &b, &v1_only]), Some(1));
        assert_eq!(select(&[]), None);
    }

    #[test]
    fn dht_put_accepts_only_ipns() {
        let record = record_a(true);
        let dht_key = record_key(&peer());
        assert_eq!(check_dht_put(&dht_key, &record, now()), Ok(()));
        assert_eq!(
            check_dht_put(&dht_key, &record, at("2030-06-01T00:00:00Z")),
            Err(Error::Expired)
        );
        let mut pk = b"/pk/".to_vec();
        pk.extend(peer().to_bytes());
        assert_eq!(
            check_dht_put(&pk, &key().public().encode_protobuf(), now()),
            Err(Error::UnsupportedKey)
        );
        assert_eq!(
            check_dht_put(b"/v/anything", &record, now()),
            Err(Error::UnsupportedKey)
        );
        assert!(matches!(
            check_dht_put(b"/ipns/garbage", &record, now()),
            Err(Error::Name(_))
        ));
    }

    #[test]
    fn rfc3339_both_styles() {
        let t = UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        assert_eq!(at("2030-01-01T00:00:00Z"), t);
        assert_eq!(at("2030-01-01T00:00:00.000000000Z"), t);
        assert_eq!(at("2030-01-01T01:30:00+01:30"), t);
        assert_eq!(at("2029-12-31T23:00:00-01:00"), t);
        assert_eq!(at("2030-01-01t00:00:00z"), t);
        assert_eq!(at("2030-01-01T00:00:00.5Z"), t + Duration::from_millis(500));
        assert_eq!(
            at("2030-01-01T00:00:00.123456789123Z"),
            t + Duration::from_nanos(123_456_789)
        );
        assert_eq!(at("1970-01-01T00:00:00Z"), UNIX_EPOCH);
        assert_eq!(
            at("2024-02-29T12:34:56.000000001Z"),
            UNIX_EPOCH + Duration::new(1_709_210_096, 1)
        );
        for bad in [
            "",
            "2030-01-01",
            "2030-01-01T00:00:00",
            "2030-01-01 00:00:00Z",
            "2030-01-01T00:00:00.Z",
            "2030-01-01T00:00:00ZZ",
            "2030-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2030-01-01T24:00:00Z",
            "2030-01-01T00:00:60Z",
            "1969-12-31T23:59:59Z",
            "2030-01-01T00:00:00+0100",
            "2030-01-01T00:00:00+24:00",
            "+030-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(
            format_rfc3339_nanos(t).unwrap(),
            "2030-01-01T00:00:00.000000000Z"
        );
        let odd = UNIX_EPOCH + Duration::new(1_709_210_096, 7);
        assert_eq!(
            format_rfc3339_nanos(odd).unwrap(),
            "2024-02-29T12:34:56.000000007Z"
        );
        assert_eq!(
            parse_rfc3339(&format_rfc3339_nanos(odd).unwrap()),
            Some(odd)
        );
        for secs in (0..4_000_000_000u64).step_by(86_399 * 397) {
            let t = UNIX_EPOCH + Duration::new(secs, 123);
            assert_eq!(parse_rfc3339(&format_rfc3339_nanos(t).unwrap()), Some(t));
        }
        assert!(format_rfc3339_nanos(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }
}
