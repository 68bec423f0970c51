//! Minimal protobuf wire encoding: unsigned varints, a [`Writer`] for the handful of field
//! kinds the IPFS messages use, and a zero-copy [`Reader`] over the fields of one message.
//!
//! This is deliberately not a general protobuf library. Callers know their schema: they write
//! fields in field-number order (omitting proto3 defaults themselves) and, when reading, match
//! on the field numbers they know and skip the rest. The reader is strict about what it cannot
//! skip safely: truncated input, varints longer than ten bytes or not minimally encoded,
//! lengths beyond the input, field number 0 and the deprecated group wire types are errors.

/// The longest varint a `u64` can need.
pub const MAX_VARINT_LEN: usize = 10;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("input ends inside a varint")]
    TruncatedVarint,
    #[error("varint does not fit in 64 bits")]
    VarintOverflow,
    #[error("varint is not minimally encoded")]
    NonMinimalVarint,
    #[error("input ends inside field {field}")]
    Truncated { field: u32 },
    #[error("field {field} has a length of {len} bytes but only {remaining} remain")]
    LengthOverflow {
        field: u32,
        len: u64,
        remaining: usize,
    },
    #[error("invalid field number in tag {tag:#x}")]
    FieldNumber { tag: u64 },
    #[error("unsupported wire type {wire_type} (field {field})")]
    UnsupportedWireType { field: u32, wire_type: u8 },
    #[error("field {field} has wire type {got:?}, expected {expected:?}")]
    WrongWireType {
        field: u32,
        expected: WireType,
        got: WireType,
    },
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn encode_uvarint(v: u64, out: &mut Vec<u8>) {
    let mut v = v;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `v` as an unsigned varint, in a new vector.
pub fn uvarint(v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(uvarint_len(v));
    encode_uvarint(v, &mut out);
    out
}

/// How many bytes [`encode_uvarint`] writes for `v` (1 to 10).
pub fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads one unsigned varint from the start of `buf`: the value and how many bytes it took.
///
/// Rejects input that ends mid-varint, values over 64 bits (more than ten bytes, or a tenth
/// byte above 1) and non-minimal encodings (a last byte of zero after the first).
pub fn decode_uvarint(buf: &[u8]) -> Result<(u64, usize), Error> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(Error::VarintOverflow);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(Error::NonMinimalVarint);
            }
            return Ok((value, i + 1));
        }
    }
    // Ten bytes always end the loop (the tenth has no room for a continuation bit).
    Err(Error::TruncatedVarint)
}

/// The wire types a protobuf field can have. Groups (3 and 4) are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: a varint (int32, int64, uint32, uint64, bool, enum).
    Varint,
    /// 1: eight little-endian bytes (fixed64, sfixed64, double).
    I64,
    /// 2: a varint length and that many bytes (bytes, string, message, packed).
    Len,
    /// 5: four little-endian bytes (fixed32, sfixed32, float).
    I32,
}

impl WireType {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::Varint),
            1 => Some(Self::I64),
            2 => Some(Self::Len),
            5 => Some(Self::I32),
            _ => None,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Self::Varint => 0,
            Self::I64 => 1,
            Self::Len => 2,
            Self::I32 => 5,
        }
    }
}

/// The value of one field as it appears on the wire, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
}

impl FieldValue<'_> {
    pub fn wire_type(&self) -> WireType {
        match self {
            Self::Varint(_) => WireType::Varint,
            Self::I64(_) => WireType::I64,
            Self::Len(_) => WireType::Len,
            Self::I32(_) => WireType::I32,
        }
    }
}

/// One field read by [`Reader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: FieldValue<'a>,
}

impl<'a> Field<'a> {
    pub fn wire_type(&self) -> WireType {
        self.value.wire_type()
    }

    fn wrong(&self, expected: WireType) -> Error {
        Error::WrongWireType {
            field: self.number,
            expected,
            got: self.wire_type(),
        }
    }

    /// The raw varint, or an error if the field has another wire type.
    pub fn varint(&self) -> Result<u64, Error> {
        match self.value {
            FieldValue::Varint(v) => Ok(v),
            _ => Err(self.wrong(WireType::Varint)),
        }
    }

    /// A `bool`: any non-zero varint is true, as in every protobuf runtime.
    pub fn bool(&self) -> Result<bool, Error> {
        Ok(self.varint()? != 0)
    }

    /// An `int32` (or enum): the low 32 bits of the varint, as protobuf runtimes read it.
    pub fn int32(&self) -> Result<i32, Error> {
        Ok(self.varint()? as u32 as i32)
    }

    /// A `bytes`, `string` or embedded message, borrowed from the input.
    pub fn bytes(&self) -> Result<&'a [u8], Error> {
        match self.value {
            FieldValue::Len(b) => Ok(b),
            _ => Err(self.wrong(WireType::Len)),
        }
    }
}

/// Iterates over the fields of one encoded message, borrowing from it.
///
/// Yields an error (and then stops) on the first malformed field.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }

    fn read_field(&mut self) -> Result<Field<'a>, Error> {
        let (tag, n) = decode_uvarint(self.buf)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(Error::FieldNumber { tag });
        }
        let number = number as u32;
        let bits = (tag & 7) as u8;
        let wire_type = WireType::from_bits(bits).ok_or(Error::UnsupportedWireType {
            field: number,
            wire_type: bits,
        })?;
        let rest = &self.buf[n..];
        let truncated = Error::Truncated { field: number };
        let (value, used) = match wire_type {
            WireType::Varint => {
                let (v, m) = decode_uvarint(rest).map_err(|e| match e {
                    Error::TruncatedVarint => truncated.clone(),
                    other => other,
                })?;
                (FieldValue::Varint(v), m)
            }
            WireType::I64 => {
                let b: [u8; 8] = rest
                    .get(..8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(truncated)?;
                (FieldValue::I64(u64::from_le_bytes(b)), 8)
            }
            WireType::I32 => {
                let b: [u8; 4] = rest
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(truncated)?;
                (FieldValue::I32(u32::from_le_bytes(b)), 4)
            }
            WireType::Len => {
                let (len, m) = decode_uvarint(rest).map_err(|e| match e {
                    Error::TruncatedVarint => truncated.clone(),
                    other => other,
                })?;
                let remaining = rest.len() - m;
                let body = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= remaining)
                    .ok_or(Error::LengthOverflow {
                        field: number,
                        len,
                        remaining,
                    })?;
                (FieldValue::Len(&rest[m..m + body]), m + body)
            }
        };
        self.buf = &rest[used..];
        Ok(Field { number, value })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Field<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let field = self.read_field();
        if field.is_err() {
            self.failed = true;
        }
        Some(field)
    }
}

/// Builds one message. Fields are written in the order the methods are called, so call them in
/// field-number order; nothing is omitted here, proto3 defaults are the caller's choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    fn tag(&mut self, field: u32, wire_type: WireType) {
        encode_uvarint((u64::from(field) << 3) | wire_type.bits(), &mut self.buf);
    }

    /// A varint field (`uint64`, `uint32`, enum with a non-negative value).
    pub fn field_varint(&mut self, field: u32, v: u64) -> &mut Self {
        self.tag(field, WireType::Varint);
        encode_uvarint(v, &mut self.buf);
        self
    }

    /// An `int32` or enum: negative values are sign-extended to ten bytes, as protobuf does.
    pub fn field_int32(&mut self, field: u32, v: i32) -> &mut Self {
        self.field_varint(field, i64::from(v) as u64)
    }

    /// An `int64`.
    pub fn field_int64(&mut self, field: u32, v: i64) -> &mut Self {
        self.field_varint(field, v as u64)
    }

    pub fn field_bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.field_varint(field, u64::from(v))
    }

    /// A `bytes`, `string` or already-encoded embedded message.
    pub fn field_bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.tag(field, WireType::Len);
        encode_uvarint(v.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(v);
        self
    }

    /// An embedded message (same bytes on the wire as [`Writer::field_bytes`]).
    pub fn field_message(&mut self, field: u32, msg: &Writer) -> &mut Self {
        self.field_bytes(field, &msg.buf)
    }

    pub fn field_fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        self.tag(field, WireType::I64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn field_fixed32(&mut self, field: u32, v: u32) -> &mut Self {
        self.tag(field, WireType::I32);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_and_lengths() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16_384, &[0x80, 0x80, 0x01]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for &(v, bytes) in cases {
            assert_eq!(uvarint(v), bytes, "{v}");
            assert_eq!(uvarint_len(v), bytes.len(), "{v}");
            assert_eq!(decode_uvarint(bytes), Ok((v, bytes.len())), "{v}");
            let mut with_tail = bytes.to_vec();
            with_tail.push(0xaa);
            assert_eq!(decode_uvarint(&with_tail), Ok((v, bytes.len())));
        }
        for shift in 0..64 {
            let v = 1u64 << shift;
            assert_eq!(decode_uvarint(&uvarint(v)), Ok((v, uvarint_len(v))));
            assert_eq!(uvarint(v).len(), uvarint_len(v));
        }
    }

    #[test]
    fn uvarint_rejects_bad_input() {
        assert_eq!(decode_uvarint(&[]), Err(Error::TruncatedVarint));
        assert_eq!(decode_uvarint(&[0x80]), Err(Error::TruncatedVarint));
        assert_eq!(decode_uvarint(&[0xff, 0xff]), Err(Error::TruncatedVarint));
        assert_eq!(decode_uvarint(&[0x80, 0x00]), Err(Error::NonMinimalVarint));
        assert_eq!(
            decode_uvarint(&[0xff, 0x80, 0x00]),
            Err(Error::NonMinimalVarint)
        );
        // A tenth byte above 1 overflows 64 bits.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(decode_uvarint(&over), Err(Error::VarintOverflow));
        // Eleven bytes never fit.
        let mut long = vec![0x80; 10];
        long.push(0x01);
        assert_eq!(decode_uvarint(&long), Err(Error::VarintOverflow));
    }

    #[test]
    fn writer_and_reader_round_trip() {
        let mut inner = Writer::new();
        inner.field_bytes(1, b"abc").field_bool(2, true);
        let mut w = Writer::new();
        w.field_varint(1, 150)
            .field_int32(2, -1)
            .field_message(3, &inner)
            .field_fixed64(4, 0x0102_0304_0506_0708)
            .field_fixed32(5, 0xdead_beef)
            .field_int64(6, -2);
        let bytes = w.into_vec();
        assert_eq!(&bytes[..3], &[0x08, 0x96, 0x01]);
        // int32 -1 is ten bytes on the wire.
        assert_eq!(
            &bytes[3..14],
            &[
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
        let fields: Vec<_> = Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[0].number, 1);
        assert_eq!(fields[0].varint(), Ok(150));
        assert_eq!(fields[1].int32(), Ok(-1));
        let inner_bytes = fields[2].bytes().unwrap();
        let inner_fields: Vec<_> = Reader::new(inner_bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(inner_fields[0].bytes(), Ok(&b"abc"[..]));
        assert_eq!(inner_fields[1].bool(), Ok(true));
        assert_eq!(fields[3].value, FieldValue::I64(0x0102_0304_0506_0708));
        assert_eq!(fields[4].value, FieldValue::I32(0xdead_beef));
        assert_eq!(fields[5].varint(), Ok(-2i64 as u64));
        assert_eq!(
            fields[0].bytes(),
            Err(Error::WrongWireType {
                field: 1,
                expected: WireType::Len,
                got: WireType::Varint
            })
        );
        assert_eq!(fields[2].wire_type(), WireType::Len);
    }

    #[test]
    fn reader_rejects_malformed_messages() {
        let first_err = |b: &[u8]| Reader::new(b).find_map(Result::err);
        // Truncated varint value.
        assert_eq!(
            first_err(&[0x08, 0x80]),
            Some(Error::Truncated { field: 1 })
        );
        assert_eq!(first_err(&[0x08]), Some(Error::Truncated { field: 1 }));
        // Length beyond the input.
        assert_eq!(
            first_err(&[0x0a, 0x05, 1, 2]),
            Some(Error::LengthOverflow {
                field: 1,
                len: 5,
                remaining: 2
            })
        );
        // A huge length.
        let mut huge = vec![0x0a];
        huge.extend(uvarint(u64::MAX));
        assert!(matches!(
            first_err(&huge),
            Some(Error::LengthOverflow { .. })
        ));
        // Truncated fixed-width fields.
        assert_eq!(
            first_err(&[0x09, 1, 2, 3]),
            Some(Error::Truncated { field: 1 })
        );
        assert_eq!(first_err(&[0x0d, 1]), Some(Error::Truncated { field: 1 }));
        // Groups (start 3, end 4) and the unassigned wire types 6 and 7.
        for wt in [3u8, 4, 6, 7] {
            assert_eq!(
                first_err(&[0x08 | wt, 0]),
                Some(Error::UnsupportedWireType {
                    field: 1,
                    wire_type: wt
                })
            );
        }
        // Field number 0.
        assert_eq!(
            first_err(&[0x00, 0x00]),
            Some(Error::FieldNumber { tag: 0 })
        );
        // Non-minimal tag.
        assert_eq!(
            first_err(&[0x88, 0x00, 0x01]),
            Some(Error::NonMinimalVarint)
        );
        // The reader stops after an error.
        let mut r = Reader::new(&[0x08, 0x01, 0x0a, 0x09]);
        assert!(r.next().unwrap().is_ok());
        assert!(r.next().unwrap().is_err());
        assert!(r.next().is_none());
    }

    #[test]
    fn unknown_fields_can_be_skipped() {
        let mut w = Writer::new();
        w.field_varint(99, 7)
            .field_bytes(1, b"x")
            .field_fixed32(1000, 5);
        let bytes = w.into_vec();
        let known: Vec<_> = Reader::new(&bytes)
            .filter_map(|f| f.ok())
            .filter(|f| f.number == 1)
            .collect();
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].bytes(), Ok(&b"x"[..]));
    }
}
