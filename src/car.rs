//! CARv1 archives: the bytes the trustless gateway streams, and a small reader for imports.
//!
//! A CARv1 is `uvarint(len) ‖ header` followed by sections `uvarint(len(cid)+len(data)) ‖ cid ‖
//! data` (ipfs-specs.md §3.4). The header is the canonical DAG-CBOR map
//! `{"roots": [CID…], "version": 1}` ("roots" sorts first: keys sort by length, then bytes),
//! each CID as tag 42 over the byte string `0x00 ‖ CID bytes`, written and read with
//! [`crate::dagcbor`]. A CIDv0 is written as its bare 34-byte multihash, in sections and roots
//! alike.
//!
//! The writer is two pure functions: the gateway writes [`header`], then for each block
//! [`section_prefix`] followed by the block's bytes, so a block is never copied into a bigger
//! buffer. [`CarReader`] reads an archive section by section from any `AsyncRead`, with a cap
//! on the section size; it does not hash blocks (an importer checks them against their CIDs).

use cid::Cid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::dagcbor::{self, Value};

/// The CARv1 header for `roots`, with its length prefix.
pub fn header(roots: &[Cid]) -> Vec<u8> {
    let cbor = dagcbor::encode(&Value::map([
        ("roots", Value::list(roots.iter().copied().map(Value::Link))),
        ("version", Value::from(1u64)),
    ]));
    let mut out = Vec::with_capacity(cbor.len() + 2);
    uvarint(&mut out, cbor.len() as u64);
    out.extend_from_slice(&cbor);
    out
}

/// What precedes a block's `data_len` bytes in a section: the section length and the CID.
pub fn section_prefix(cid: &Cid, data_len: usize) -> Vec<u8> {
    let bytes = cid.to_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 10);
    uvarint(&mut out, (bytes.len() + data_len) as u64);
    out.extend_from_slice(&bytes);
    out
}

/// The length of `v` as a minimal unsigned varint.
fn uvarint_len(v: u64) -> u64 {
    let mut n = 1;
    let mut v = v >> 7;
    while v > 0 {
        n += 1;
        v >>= 7;
    }
    n
}

/// An unsigned LEB128 varint.
fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CAR is truncated inside its {0}")]
    Truncated(&'static str),
    #[error("CAR {0} length is not a valid varint (overlong or over 64 bits)")]
    BadVarint(&'static str),
    #[error("CAR header: {0}")]
    BadHeader(String),
    #[error("CAR version {0} is not supported; only CARv1 is")]
    Version(u64),
    #[error("CAR {what} of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: usize,
    },
    #[error("CAR section: {0}")]
    BadSection(String),
    #[error("reading CAR: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes read from the underlying reader at once.
const READ_BUFFER: usize = 1 << 20;

/// Most bytes a section's CID may take (a CIDv1 with a 128-byte identity digest fits).
const MAX_CID_BYTES: usize = 160;

/// Reads a CARv1 archive: the header on [`CarReader::new`], then one block per
/// [`CarReader::next_block`]. Blocks are returned as stored; check them against their CIDs.
#[derive(Debug)]
pub struct CarReader<R> {
    inner: BufReader<R>,
    roots: Vec<Cid>,
    max_section: usize,
    /// Bytes consumed so far (only minimal varints are accepted, so this is exact).
    offset: u64,
    /// Where the data of the block last returned starts in the archive.
    data_offset: u64,
}

impl<R: AsyncRead + Unpin> CarReader<R> {
    /// Reads and checks the header. `max_section` bounds the header and every section
    /// (CID plus data), so a hostile length cannot make the reader allocate more.
    pub async fn new(reader: R, max_section: usize) -> Result<Self, Error> {
        // Large reads: a `tokio::fs::File` hands every read to a blocking thread.
        let mut inner = BufReader::with_capacity(READ_BUFFER, reader);
        let len = read_uvarint(&mut inner, "header")
            .await?
            .ok_or(Error::Truncated("header"))?;
        if len > max_section as u64 {
            return Err(Error::TooLarge {
                what: "header",
                len,
                max: max_section,
            });
        }
        let mut buf = vec![0; len as usize];
        read_exact(&mut inner, &mut buf, "header").await?;
        let roots = parse_header(&buf)?;
        Ok(CarReader {
            inner,
            roots,
            max_section,
            offset: uvarint_len(len) + len,
            data_offset: 0,
        })
    }

    /// Where the data of the block last returned by [`CarReader::next_block`] starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The header's roots (informational: clients must not rely on them).
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, or `None` at a clean end of the archive (between sections).
    pub async fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, Error> {
        Ok(self
            .next_section(|_| true)
            .await?
            .map(|(cid, _, data)| (cid, data.unwrap_or_default())))
    }

    /// The next section's CID and data length; its data is read only when `want` says so
    /// for that CID, and otherwise skipped without being copied out of the read buffer.
    /// `None` at a clean end of the archive. The data's offset is [`CarReader::data_offset`].
    pub async fn next_section(
        &mut self,
        want: impl FnOnce(&Cid) -> bool,
    ) -> Result<Option<(Cid, usize, Option<Vec<u8>>)>, Error> {
        let Some(len) = read_uvarint(&mut self.inner, "section").await? else {
            return Ok(None);
        };
        if len == 0 {
            return Err(Error::BadSection("empty section (no CID)".into()));
        }
        if len > self.max_section as u64 {
            return Err(Error::TooLarge {
                what: "section",
                len,
                max: self.max_section,
            });
        }
        let len = len as usize;
        let mut head = vec![0; len.min(MAX_CID_BYTES)];
        read_exact(&mut self.inner, &mut head, "section").await?;
        let mut rest = &head[..];
        let cid =
            Cid::read_bytes(&mut rest).map_err(|e| Error::BadSection(format!("bad CID: {e}")))?;
        let cid_len = head.len() - rest.len();
        let data_len = len - cid_len;
        self.data_offset = self.offset + uvarint_len(len as u64) + cid_len as u64;
        self.offset += uvarint_len(len as u64) + len as u64;
        let mut left = len - head.len();
        if want(&cid) {
            let mut data = Vec::with_capacity(data_len);
            data.extend_from_slice(&head[cid_len..]);
            data.resize(data_len, 0);
            read_exact(&mut self.inner, &mut data[data_len - left..], "section").await?;
            return Ok(Some((cid, data_len, Some(data))));
        }
        while left > 0 {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Err(Error::Truncated("section"));
            }
            let n = buf.len().min(left);
            self.inner.consume(n);
            left -= n;
        }
        Ok(Some((cid, data_len, None)))
    }
}

async fn read_exact<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), Error> {
    match r.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::Truncated(what)),
        Err(e) => Err(e.into()),
    }
}

/// Reads a minimal unsigned varint; `None` on end of input before its first byte.
async fn read_uvarint<R: AsyncRead + Unpin>(
    r: &mut R,
    what: &'static str,
) -> Result<Option<u64>, Error> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        if r.read(&mut byte).await? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(Error::Truncated(what))
            };
        }
        let b = byte[0];
        if i == 9 && b > 1 {
            return Err(Error::BadVarint(what));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(Error::BadVarint(what));
            }
            return Ok(Some(value));
        }
    }
    Err(Error::BadVarint(what))
}

/// Parses the header: a canonical DAG-CBOR map of exactly `roots` (a list of CIDs) and
/// `version` (1).
fn parse_header(buf: &[u8]) -> Result<Vec<Cid>, Error> {
    let bad = |why: &str| Error::BadHeader(why.to_owned());
    let v = dagcbor::decode(buf).map_err(|e| Error::BadHeader(e.to_string()))?;
    let map = v.as_map().ok_or_else(|| bad("not a map"))?;
    if let Some(k) = map.keys().find(|k| *k != "roots" && *k != "version") {
        return Err(Error::BadHeader(format!("unexpected key {k:?}")));
    }
    match map.get("version") {
        None => return Err(bad("no version")),
        Some(v) => match v.as_u64() {
            Some(1) => {}
            Some(n) => return Err(Error::Version(n)),
            None => return Err(bad("version is not an unsigned integer")),
        },
    }
    let roots = map
        .get("roots")
        .ok_or_else(|| bad("no roots"))?
        .as_list()
        .ok_or_else(|| bad("roots is not a list"))?;
    roots
        .iter()
        .map(|r| {
            r.as_link()
                .copied()
                .ok_or_else(|| bad("a root is not a CID"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    const PROBE_HEADER: &str = "19a265726f6f747381d82a4500015500006776657273696f6e01";
    const HELLO_HEADER: &str = "3aa265726f6f747381d82a58250001551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde96776657273696f6e01";

    fn hello() -> (Cid, Vec<u8>) {
        let cid = crate::cids::Id::of(b"hello world").raw_cid();
        let mut car = header(&[cid]);
        car.extend(section_prefix(&cid, 11));
        car.extend_from_slice(b"hello world");
        (cid, car)
    }

    #[test]
    fn probe_header_matches_the_vector() {
        let probe = Cid::try_from("bafkqaaa").unwrap();
        assert_eq!(hex::encode(header(&[probe])), PROBE_HEADER);
    }

    #[test]
    fn hello_world_car_matches_the_vector() {
        let (_, car) = hello();
        let expected = format!(
            "{HELLO_HEADER}2f01551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde968656c6c6f20776f726c64"
        );
        assert_eq!(car.len(), 107);
        assert_eq!(hex::encode(&car), expected);
    }

    #[test]
    fn header_lengths_use_the_shortest_cbor_and_varint_forms() {
        // 300 roots: array head 0x99 0x01 0x2c; header over 127 bytes: two-byte varint.
        let cid = crate::cids::Id::of(b"x").raw_cid();
        let roots = vec![cid; 300];
        let h = header(&roots);
        let len = 1 + 1 + 5 + 3 + 300 * (2 + 2 + 37) + 1 + 7 + 1;
        assert_eq!(&h[..2], &[(len as u8) | 0x80, (len >> 7) as u8]);
        assert_eq!(&h[2 + 7..2 + 10], &[0x99, 0x01, 0x2c]);
        assert_eq!(h.len(), 2 + len);
        // And a CIDv0 root is its bare multihash.
        let v0 = Cid::try_from("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn").unwrap();
        let p = section_prefix(&v0, 4);
        assert_eq!(p[0], 38);
        assert_eq!(&p[1..3], &[0x12, 0x20]);
    }

    #[tokio::test]
    async fn reads_what_it_writes() {
        let (cid, car) = hello();
        let mut r = CarReader::new(&car[..], 1 << 20).await.unwrap();
        assert_eq!(r.roots(), &[cid]);
        let (c, data) = r.next_block().await.unwrap().unwrap();
        assert_eq!(c, cid);
        assert_eq!(data, b"hello world");
        assert!(r.next_block().await.unwrap().is_none());

        let probe = unhex(PROBE_HEADER);
        let mut r = CarReader::new(&probe[..], 1 << 20).await.unwrap();
        assert_eq!(r.roots(), &[Cid::try_from("bafkqaaa").unwrap()]);
        assert!(r.next_block().await.unwrap().is_none());

        // An empty block (the empty raw file) and a CIDv0 section.
        let empty = crate::cids::Id::of(b"").raw_cid();
        let v0 = Cid::try_from("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn").unwrap();
        let mut car = header(&[]);
        car.extend(section_prefix(&empty, 0));
        car.extend(section_prefix(&v0, 4));
        car.extend_from_slice(&[0x0a, 0x02, 0x08, 0x01]);
        let mut r = CarReader::new(&car[..], 1 << 20).await.unwrap();
        assert!(r.roots().is_empty());
        assert_eq!(r.next_block().await.unwrap().unwrap(), (empty, vec![]));
        assert_eq!(
            r.next_block().await.unwrap().unwrap(),
            (v0, vec![0x0a, 0x02, 0x08, 0x01])
        );
        assert!(r.next_block().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn every_truncation_is_an_error() {
        let (_, car) = hello();
        let header_len = unhex(HELLO_HEADER).len();
        for cut in 0..car.len() {
            let part = &car[..cut];
            let res = async {
                let mut r = CarReader::new(part, 1 << 20).await?;
                while r.next_block().await?.is_some() {}
                Ok::<_, Error>(())
            }
            .await;
            if cut == header_len {
                assert!(res.is_ok(), "a header alone is a valid (empty) CAR");
            } else {
                assert!(
                    matches!(res, Err(Error::Truncated(_))),
                    "cut at {cut}: {res:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn bad_varints_headers_and_sizes_are_refused() {
        async fn open(bytes: Vec<u8>, max: usize) -> Result<(), Error> {
            let mut r = CarReader::new(&bytes[..], max).await?;
            while r.next_block().await?.is_some() {}
            Ok(())
        }
        // Overlong varint (0x80 0x00 is a non-minimal zero), and 11 continuation bytes.
        assert!(matches!(
            open(vec![0x80, 0x00], 100).await,
            Err(Error::BadVarint(_))
        ));
        assert!(matches!(
            open(vec![0xff; 11], 100).await,
            Err(Error::BadVarint(_))
        ));
        // Header over the cap.
        assert!(matches!(
            open(unhex(PROBE_HEADER), 10).await,
            Err(Error::TooLarge { .. })
        ));
        // Section over the cap (the "hello world" section is 47 bytes).
        let (cid, _) = hello();
        let mut car = unhex(PROBE_HEADER);
        car.extend(section_prefix(&cid, 11));
        car.extend_from_slice(b"hello world");
        assert!(open(car.clone(), 47).await.is_ok());
        assert!(matches!(
            open(car, 46).await,
            Err(Error::TooLarge {
                what: "section",
                ..
            })
        ));
        // CARv2 pragma: {"version": 2}.
        assert!(matches!(
            open(unhex("0aa16776657273696f6e02"), 100).await,
            Err(Error::Version(2))
        ));
        // Not a map; no roots; an extra key; indefinite map; trailing bytes.
        for h in [
            "0182",
            "0aa16776657273696f6e01",
            "16a365726f6f7473806776657273696f6e0163666f6f01",
            "12bf65726f6f7473806776657273696f6e01ff",
            "12a265726f6f7473806776657273696f6e0100",
        ] {
            assert!(
                matches!(open(unhex(h), 100).await, Err(Error::BadHeader(_))),
                "{h}"
            );
        }
        // An empty section and a section whose CID is garbage.
        let mut car = unhex(PROBE_HEADER);
        car.push(0);
        assert!(matches!(open(car, 100).await, Err(Error::BadSection(_))));
        let mut car = unhex(PROBE_HEADER);
        car.extend_from_slice(&[3, 0xff, 0xff, 0xff]);
        assert!(matches!(open(car, 100).await, Err(Error::BadSection(_))));
    }
}
