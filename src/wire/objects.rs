//! Streaming decoder for `push/objects` bodies: `{objects: [{object_id: str, content: bin}]}`.
//!
//! The Muse CLI batches objects by count (400 per request), not by size, so one body can carry
//! hundreds of MiB of stems. This reader pulls the body chunk by chunk and hands each
//! object's content out as it arrives, so the hub hashes and writes it without ever holding
//! the body, or even one whole object, in memory. Keys may come in any order except that
//! `object_id` must precede `content` (the CLI always sends it first); unknown keys (the
//! reference hub's `path`) are skipped.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::Error;
use crate::cids::Id;

/// Longest map key we accept; real keys are a few bytes.
const MAX_KEY: usize = 256;

/// Pull decoder over a body stream. See the module docs.
#[derive(Debug)]
pub struct ObjectsReader<S> {
    body: S,
    /// Bytes received and not consumed yet: the body's own chunk (no copy) unless a value
    /// straddled two chunks.
    buf: Bytes,
    /// Body bytes pulled so far, checked against `limit`.
    pulled: u64,
    limit: u64,
    /// Key/value pairs of the top-level map still to read after the objects array.
    top_left: u64,
    /// Objects of the array not yet started.
    objects_left: u64,
    /// Index of the current object, for messages.
    index: u64,
    /// Key/value pairs of the current object still to read after its content.
    elem_left: u64,
    /// Content bytes of the current object not yet handed out.
    content_left: u64,
    done: bool,
}

impl<S, E> ObjectsReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads up to the start of the `objects` array. `limit` caps the whole body.
    pub async fn start(body: S, limit: u64) -> Result<Self, Error> {
        let mut r = ObjectsReader {
            body,
            buf: Bytes::new(),
            pulled: 0,
            limit,
            top_left: 0,
            objects_left: 0,
            index: 0,
            elem_left: 0,
            content_left: 0,
            done: false,
        };
        let pairs = r.map_len().await.map_err(|e| match e {
            Error::Type { .. } => Error::NotMap,
            other => other,
        })?;
        let mut left = pairs;
        while left > 0 {
            left -= 1;
            let key = r.key().await?;
            if key == "objects" {
                r.objects_left = r.array_len("objects").await?;
                r.top_left = left;
                return Ok(r);
            }
            r.skip_value().await?;
        }
        Err(Error::Missing("objects".into()))
    }

    /// Starts the next object: returns its id and content length, or `None` at the end.
    /// Any content of the previous object not yet read is skipped.
    pub async fn next_object(&mut self) -> Result<Option<(Id, u64)>, Error> {
        if self.done {
            return Ok(None);
        }
        while self.content_chunk().await?.is_some() {}
        for _ in 0..std::mem::take(&mut self.elem_left) {
            self.key().await?;
            self.skip_value().await?;
        }
        if self.objects_left == 0 {
            for _ in 0..std::mem::take(&mut self.top_left) {
                self.key().await?;
                self.skip_value().await?;
            }
            self.expect_end().await?;
            self.done = true;
            return Ok(None);
        }
        self.objects_left -= 1;
        let i = self.index;
        self.index += 1;
        let field = |k: &str| format!("objects[{i}].{k}");
        let mut pairs = self.map_len().await.map_err(|_| Error::Type {
            field: format!("objects[{i}]"),
            expected: "a map",
        })?;
        let mut id = None;
        while pairs > 0 {
            pairs -= 1;
            match self.key().await?.as_str() {
                "object_id" => {
                    let len = self.str_len().await.map_err(|_| Error::Type {
                        field: field("object_id"),
                        expected: "a string",
                    })?;
                    if len != 64 {
                        self.skip_bytes(len).await?;
                        return Err(Error::Invalid {
                            field: field("object_id"),
                            why: "id must be 64 lowercase hex characters".into(),
                        });
                    }
                    let raw = self.take(64).await?;
                    let s = std::str::from_utf8(&raw).map_err(|_| Error::Invalid {
                        field: field("object_id"),
                        why: "not UTF-8".into(),
                    })?;
                    id = Some(Id::parse(s).map_err(|e| Error::Invalid {
                        field: field("object_id"),
                        why: e.to_string(),
                    })?);
                }
                "content" => {
                    let Some(id) = id else {
                        return Err(Error::Invalid {
                            field: field("content"),
                            why: "object_id must come before content".into(),
                        });
                    };
                    let len = self.bin_len().await.map_err(|_| Error::Type {
                        field: field("content"),
                        expected: "msgpack bin",
                    })?;
                    self.elem_left = pairs;
                    self.content_left = len;
                    return Ok(Some((id, len)));
                }
                _ => self.skip_value().await?,
            }
        }
        Err(Error::Missing(field(if id.is_some() {
            "content"
        } else {
            "object_id"
        })))
    }

    /// The next piece of the current object's content, `None` once it is all handed out.
    pub async fn content_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.content_left == 0 {
            return Ok(None);
        }
        if self.buf.is_empty() {
            self.pull().await?;
        }
        let n = (self.buf.len() as u64).min(self.content_left) as usize;
        self.content_left -= n as u64;
        Ok(Some(self.buf.split_to(n)))
    }

    /// Body bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.pulled
    }

    async fn pull(&mut self) -> Result<(), Error> {
        loop {
            match self.body.next().await {
                None => return Err(Error::Truncated),
                Some(Err(e)) => return Err(Error::Body(e.to_string())),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    self.pulled += chunk.len() as u64;
                    if self.pulled > self.limit {
                        return Err(Error::TooLarge { limit: self.limit });
                    }
                    if self.buf.is_empty() {
                        self.buf = chunk;
                    } else {
                        // A header split across chunks: join the rest of one with the next.
                        let mut joined = BytesMut::with_capacity(self.buf.len() + chunk.len());
                        joined.extend_from_slice(&self.buf);
                        joined.extend_from_slice(&chunk);
                        self.buf = joined.freeze();
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn need(&mut self, n: usize) -> Result<(), Error> {
        while self.buf.len() < n {
            self.pull().await?;
        }
        Ok(())
    }

    async fn take(&mut self, n: usize) -> Result<Bytes, Error> {
        self.need(n).await?;
        Ok(self.buf.split_to(n))
    }

    async fn u8(&mut self) -> Result<u8, Error> {
        self.need(1).await?;
        Ok(self.buf.get_u8())
    }

    async fn be(&mut self, width: usize) -> Result<u64, Error> {
        self.need(width).await?;
        Ok(self.buf.get_uint(width))
    }

    async fn skip_bytes(&mut self, mut n: u64) -> Result<(), Error> {
        while n > 0 {
            if self.buf.is_empty() {
                self.pull().await?;
            }
            let k = (self.buf.len() as u64).min(n) as usize;
            self.buf.advance(k);
            n -= k as u64;
        }
        Ok(())
    }

    async fn expect_end(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            return Err(Error::Msgpack("bytes after the body's map".into()));
        }
        loop {
            match self.body.next().await {
                None => return Ok(()),
                Some(Err(e)) => return Err(Error::Body(e.to_string())),
                Some(Ok(c)) if c.is_empty() => continue,
                Some(Ok(_)) => return Err(Error::Msgpack("bytes after the body's map".into())),
            }
        }
    }

    async fn map_len(&mut self) -> Result<u64, Error> {
        match self.u8().await? {
            m @ 0x80..=0x8f => Ok(u64::from(m & 0x0f)),
            0xde => self.be(2).await,
            0xdf => self.be(4).await,
            _ => Err(Error::Type {
                field: String::new(),
                expected: "a map",
            }),
        }
    }

    async fn array_len(&mut self, field: &str) -> Result<u64, Error> {
        match self.u8().await? {
            m @ 0x90..=0x9f => Ok(u64::from(m & 0x0f)),
            0xdc => self.be(2).await,
            0xdd => self.be(4).await,
            _ => Err(Error::Type {
                field: field.to_owned(),
                expected: "an array",
            }),
        }
    }

    async fn str_len(&mut self) -> Result<u64, Error> {
        match self.u8().await? {
            m @ 0xa0..=0xbf => Ok(u64::from(m & 0x1f)),
            0xd9 => self.be(1).await,
            0xda => self.be(2).await,
            0xdb => self.be(4).await,
            _ => Err(Error::Type {
                field: String::new(),
                expected: "a string",
            }),
        }
    }

    async fn bin_len(&mut self) -> Result<u64, Error> {
        match self.u8().await? {
            0xc4 => self.be(1).await,
            0xc5 => self.be(2).await,
            0xc6 => self.be(4).await,
            _ => Err(Error::Type {
                field: String::new(),
                expected: "msgpack bin",
            }),
        }
    }

    async fn key(&mut self) -> Result<String, Error> {
        let len = self
            .str_len()
            .await
            .map_err(|_| Error::Msgpack("map keys must be strings".into()))?;
        if len as usize > MAX_KEY {
            return Err(Error::Msgpack(format!("map key of {len} bytes")));
        }
        let raw = self.take(len as usize).await?;
        String::from_utf8(raw.to_vec()).map_err(|_| Error::Msgpack("map key is not UTF-8".into()))
    }

    /// Skips one complete value of any type without buffering its payload.
    async fn skip_value(&mut self) -> Result<(), Error> {
        use super::scan::{After, after};
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match after(self.u8().await?) {
                After::Bytes(n) => self.skip_bytes(n).await?,
                After::Values(n) => pending += n,
                After::Sized { width, extra } => {
                    let n = self.be(width).await? + extra;
                    self.skip_bytes(n).await?;
                }
                After::Counted { width, per } => pending += per * self.be(width).await?,
                After::Reserved => return Err(Error::Msgpack("reserved byte 0xc1".into())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode, map};
    use rmpv::Value;

    fn stream(
        bytes: Vec<u8>,
        piece: usize,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let chunks: Vec<_> = bytes
            .chunks(piece.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(chunks)
    }

    async fn collect(bytes: Vec<u8>, piece: usize) -> Result<Vec<(Id, Vec<u8>)>, Error> {
        let mut r = ObjectsReader::start(stream(bytes, piece), 1 << 30).await?;
        let mut out = Vec::new();
        while let Some((id, len)) = r.next_object().await? {
            let mut content = Vec::new();
            while let Some(c) = r.content_chunk().await? {
                content.extend_from_slice(&c);
            }
            assert_eq!(content.len() as u64, len);
            out.push((id, content));
        }
        Ok(out)
    }

    fn body(objects: Vec<Value>) -> Vec<u8> {
        encode(&map([("objects", Value::Array(objects))]))
    }

    fn obj(content: &[u8]) -> Value {
        map([
            ("object_id", Value::from(Id::of(content).to_hex())),
            ("content", Value::Binary(content.to_vec())),
        ])
    }

    #[tokio::test]
    async fn decodes_objects_across_any_chunking() {
        let big = vec![7u8; 70_000];
        let b = body(vec![obj(b"hello world\n"), obj(b""), obj(&big)]);
        for piece in [1, 3, 64, 1000, b.len()] {
            let got = collect(b.clone(), piece).await.unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0].1, b"hello world\n");
            assert_eq!(got[1].1, b"");
            assert_eq!(got[2].1, big);
        }
    }

    #[tokio::test]
    async fn hello_world_payload_matches_the_protocol_sample() {
        let b = body(vec![obj(b"hello world\n")]);
        let expected = format!(
            "81a76f626a656374739182a96f626a6563745f6964d940{}a7636f6e74656e74c40c68656c6c6f20776f726c640a",
            hex::encode(Id::of(b"hello world\n").to_hex())
        );
        assert_eq!(hex::encode(&b), expected);
    }

    #[tokio::test]
    async fn skips_unknown_keys_anywhere() {
        let o = map([
            ("path", Value::from("a/b.mid")),
            ("object_id", Value::from(Id::of(b"x").to_hex())),
            (
                "meta",
                map([(
                    "deep",
                    Value::Array(vec![Value::from(1.5), Value::Binary(vec![1, 2])]),
                )]),
            ),
            ("content", Value::Binary(b"x".to_vec())),
            ("after", Value::from(-3)),
        ]);
        let b = encode(&map([
            ("first", Value::from("x")),
            ("objects", Value::Array(vec![o])),
            ("last", Value::Nil),
        ]));
        let got = collect(b, 5).await.unwrap();
        assert_eq!(got, vec![(Id::of(b"x"), b"x".to_vec())]);
    }

    #[tokio::test]
    async fn refuses_malformed_bodies() {
        let id = Id::of(b"x").to_hex();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (encode(&Value::from(1)), "body must be"),
            (
                encode(&map([("nope", Value::Nil)])),
                "missing field 'objects'",
            ),
            (
                encode(&map([("objects", Value::from(1))])),
                "must be an array",
            ),
            (body(vec![Value::from(1)]), "'objects[0]' must be a map"),
            (
                body(vec![map([
                    ("object_id", Value::from(id.clone())),
                    ("content", Value::from("x")),
                ])]),
                "msgpack bin",
            ),
            (
                body(vec![map([
                    ("content", Value::Binary(vec![1])),
                    ("object_id", Value::from(id.clone())),
                ])]),
                "must come before",
            ),
            (
                body(vec![map([
                    ("object_id", Value::from("sha256:abc")),
                    ("content", Value::Binary(vec![])),
                ])]),
                "64 lowercase",
            ),
            (
                body(vec![map([
                    ("object_id", Value::from(id.to_uppercase())),
                    ("content", Value::Binary(vec![])),
                ])]),
                "lowercase hex",
            ),
            (
                body(vec![map([("object_id", Value::from(id.clone()))])]),
                "missing field 'objects[0].content'",
            ),
            (body(vec![obj(b"abc")])[..20].to_vec(), "ended early"),
            (
                [body(vec![obj(b"abc")]), vec![0xc0]].concat(),
                "bytes after",
            ),
        ];
        for (bytes, want) in cases {
            let err = collect(bytes, 7).await.unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[tokio::test]
    async fn enforces_the_body_limit_while_streaming() {
        let b = body(vec![obj(&vec![1u8; 10_000])]);
        let mut r = ObjectsReader::start(stream(b, 100), 5_000).await.unwrap();
        let res = async {
            while r.next_object().await?.is_some() {
                while r.content_chunk().await?.is_some() {}
            }
            Ok::<_, Error>(())
        }
        .await;
        assert_eq!(res, Err(Error::TooLarge { limit: 5_000 }));
    }
}
