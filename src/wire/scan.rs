//! Reading a msgpack body where it lies: lengths, strings and byte ranges, without building a
//! value tree. A push body carries every snapshot's manifest (tens of thousands of entries per
//! commit); decoded into [`rmpv::Value`]s it took several times its own size in memory. Here a
//! record is a range of the body, and its fields are read from that range when they are used.

use std::ops::Range;

use super::{Error, Result};

/// A cursor over msgpack bytes.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated() -> Error {
    Error::Msgpack("the body ends inside a value".into())
}

impl<'a> Scan<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scan { buf, pos: 0 }
    }

    /// A cursor at `pos` of `buf` (a value found by an earlier pass).
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Scan {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn peek(&self) -> Result<u8> {
        self.buf.get(self.pos).copied().ok_or_else(truncated)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    /// A big-endian unsigned integer of `n` (1, 2, 4 or 8) bytes.
    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// The next value is nil.
    pub fn is_nil(&self) -> bool {
        self.buf.get(self.pos) == Some(&0xc0)
    }

    /// A map header's entry count; `None`, reading nothing, when the next value is no map.
    pub fn map_len(&mut self) -> Result<Option<usize>> {
        self.container(0x80, 0xde, 2)
    }

    /// An array header's item count; `None`, reading nothing, when the next value is no array.
    pub fn array_len(&mut self) -> Result<Option<usize>> {
        self.container(0x90, 0xdc, 1)
    }

    /// A container header: `fix` is its fix form's high nibble, `wide` its 16-bit marker
    /// (the 32-bit one follows it), `per` the values each entry holds.
    fn container(&mut self, fix: u8, wide: u8, per: u64) -> Result<Option<usize>> {
        let m = self.peek()?;
        let n = if m & 0xf0 == fix {
            self.pos += 1;
            u64::from(m & 0x0f)
        } else if m == wide || m == wide + 1 {
            self.pos += 1;
            self.uint(if m == wide { 2 } else { 4 })?
        } else {
            return Ok(None);
        };
        Ok(Some(self.count(n, per)?))
    }

    /// A container's count, refused when the bytes left cannot hold that many values (each
    /// takes one byte at least), so no caller reserves room for a count the body lies about.
    fn count(&self, n: u64, per: u64) -> Result<usize> {
        if n.saturating_mul(per) > self.left() as u64 {
            return Err(truncated());
        }
        Ok(n as usize)
    }

    /// The payload of a str or bin, as a range, when the next marker is one `accept` takes;
    /// `None`, reading nothing, otherwise.
    fn payload(&mut self, accept: fn(u8) -> bool) -> Result<Option<Range<usize>>> {
        let m = self.peek()?;
        if !accept(m) {
            return Ok(None);
        }
        self.pos += 1;
        let len = match after(m) {
            After::Bytes(n) => n,
            After::Sized { width, .. } => self.uint(width)?,
            _ => return Err(Error::Msgpack(format!("marker {m:#04x} has no payload"))),
        };
        let start = self.pos;
        self.take(len as usize)?;
        Ok(Some(start..self.pos))
    }

    /// A UTF-8 str; `None` when the next value is not one (the value is then read past only if
    /// it was a str with bad UTF-8).
    pub fn str(&mut self) -> Result<Option<&'a str>> {
        let buf = self.buf;
        Ok(self
            .payload(|m| matches!(m, 0xa0..=0xbf | 0xd9..=0xdb))?
            .and_then(|r| std::str::from_utf8(&buf[r]).ok()))
    }

    /// A bin's bytes as a range of the buffer; `None`, reading nothing, when the next value is
    /// no bin.
    pub fn bin(&mut self) -> Result<Option<Range<usize>>> {
        self.payload(|m| matches!(m, 0xc4..=0xc6))
    }

    /// A map key: the str, or `None` for a key of another type (read past, as readers of
    /// string-keyed maps ignore such keys).
    pub fn key(&mut self) -> Result<Option<&'a str>> {
        let at = self.pos;
        if let Some(s) = self.str()? {
            return Ok(Some(s));
        }
        self.pos = at;
        self.skip()?;
        Ok(None)
    }

    /// Reads past one whole value, however deeply nested (without recursion), and returns its
    /// range.
    pub fn value(&mut self) -> Result<Range<usize>> {
        let start = self.pos;
        self.skip()?;
        Ok(start..self.pos)
    }

    fn skip(&mut self) -> Result<()> {
        // Values still to read past: containers add their items.
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match after(self.take(1)?[0]) {
                After::Bytes(n) => {
                    self.take(n as usize)?;
                }
                After::Values(n) => pending += n,
                After::Sized { width, extra } => {
                    let n = self.uint(width)? + extra;
                    self.take(n as usize)?;
                }
                After::Counted { width, per } => pending += per * self.uint(width)?,
                After::Reserved => return Err(Error::Msgpack("reserved byte 0xc1".into())),
            }
            if pending > self.left() as u64 {
                return Err(truncated());
            }
        }
        Ok(())
    }
}

/// What follows a msgpack marker byte: the one table both readers (this in-place one and the
/// streaming [`super::objects`] one) read past values with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// This many payload bytes.
    Bytes(u64),
    /// This many more values (a fixarray's items; a fixmap's keys and values).
    Values(u64),
    /// A big-endian length of `width` bytes, then that many payload bytes plus `extra` (an
    /// ext's type byte).
    Sized { width: usize, extra: u64 },
    /// A big-endian count of `width` bytes, then that many values times `per` (2 for a map).
    Counted { width: usize, per: u64 },
    /// 0xc1, which msgpack never uses.
    Reserved,
}

/// See [`After`].
pub fn after(m: u8) -> After {
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => After::Bytes(0),
        0x80..=0x8f => After::Values(2 * u64::from(m & 0x0f)),
        0x90..=0x9f => After::Values(u64::from(m & 0x0f)),
        0xa0..=0xbf => After::Bytes(u64::from(m & 0x1f)),
        0xc1 => After::Reserved,
        0xcc | 0xd0 => After::Bytes(1),
        0xcd | 0xd1 => After::Bytes(2),
        0xce | 0xd2 | 0xca => After::Bytes(4),
        0xcf | 0xd3 | 0xcb => After::Bytes(8),
        0xd4 => After::Bytes(2),
        0xd5 => After::Bytes(3),
        0xd6 => After::Bytes(5),
        0xd7 => After::Bytes(9),
        0xd8 => After::Bytes(17),
        0xc4 | 0xd9 => After::Sized { width: 1, extra: 0 },
        0xc5 | 0xda => After::Sized { width: 2, extra: 0 },
        0xc6 | 0xdb => After::Sized { width: 4, extra: 0 },
        0xc7 => After::Sized { width: 1, extra: 1 },
        0xc8 => After::Sized { width: 2, extra: 1 },
        0xc9 => After::Sized { width: 4, extra: 1 },
        0xdc => After::Counted { width: 2, per: 1 },
        0xdd => After::Counted { width: 4, per: 1 },
        0xde => After::Counted { width: 2, per: 2 },
        0xdf => After::Counted { width: 4, per: 2 },
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::wire::encode;

    fn samples() -> Vec<Value> {
        let long = "x".repeat(70_000);
        vec![
            Value::Nil,
            Value::from(true),
            Value::from(7),
            Value::from(-3),
            Value::from(200u8),
            Value::from(-200),
            Value::from(70_000),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::F32(1.5),
            Value::F64(2.5),
            Value::from("short"),
            Value::from("y".repeat(40)),
            Value::from("z".repeat(300)),
            Value::from(long.as_str()),
            Value::Binary(vec![1; 10]),
            Value::Binary(vec![2; 300]),
            Value::Binary(vec![3; 70_000]),
            Value::Ext(1, vec![9]),
            Value::Ext(2, vec![9; 2]),
            Value::Ext(3, vec![9; 4]),
            Value::Ext(4, vec![9; 8]),
            Value::Ext(5, vec![9; 16]),
            Value::Ext(6, vec![9; 3]),
            Value::Ext(7, vec![9; 300]),
            Value::Array((0..20).map(Value::from).collect()),
            Value::Map(
                (0..20)
                    .map(|i| (Value::from(i), Value::Array(vec![Value::Nil])))
                    .collect(),
            ),
        ]
    }

    #[test]
    fn every_kind_of_value_is_read_past_exactly() {
        let all = Value::Array(samples());
        let mut bytes = encode(&all);
        bytes.push(0xc3);
        let mut s = Scan::new(&bytes);
        assert_eq!(s.value().unwrap(), 0..bytes.len() - 1);
        assert_eq!(s.left(), 1);
        for v in samples() {
            let one = encode(&v);
            let mut s = Scan::new(&one);
            assert_eq!(s.value().unwrap(), 0..one.len(), "{v:?}");
            assert_eq!(s.left(), 0);
        }
    }

    #[test]
    fn truncated_and_reserved_bytes_are_refused() {
        let whole = encode(&Value::Array(samples()));
        for cut in [1, 2, 10, whole.len() / 2, whole.len() - 1] {
            assert!(Scan::new(&whole[..cut]).value().is_err(), "cut at {cut}");
        }
        assert!(Scan::new(&[0xc1]).value().is_err());
        // An array32 header that claims four billion items in a 5-byte body.
        assert!(Scan::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).value().is_err());
        assert!(
            Scan::new(&[0xdf, 0xff, 0xff, 0xff, 0xff])
                .map_len()
                .is_err()
        );
    }

    #[test]
    fn fields_are_read_in_place() {
        let v = crate::wire::map([
            ("name", Value::from("verse")),
            ("data", Value::Binary(b"MThd".to_vec())),
            ("n", Value::from(3)),
        ]);
        let bytes = encode(&v);
        let mut s = Scan::new(&bytes);
        assert_eq!(s.map_len().unwrap(), Some(3));
        assert_eq!(s.key().unwrap(), Some("name"));
        assert_eq!(s.array_len().unwrap(), None, "a str is no array");
        assert_eq!(s.str().unwrap(), Some("verse"));
        assert_eq!(s.key().unwrap(), Some("data"));
        let r = s.bin().unwrap().unwrap();
        assert_eq!(&bytes[r], b"MThd");
        assert_eq!(s.key().unwrap(), Some("n"));
        assert_eq!(s.str().unwrap(), None);
        s.value().unwrap();
        assert_eq!(s.left(), 0);
    }
}
