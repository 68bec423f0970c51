//! The Muse wire protocol's encoding: msgpack maps with string keys, `bin` object content,
//! real booleans, `nil` for None (see `shared/muse-wire-protocol.md` §2.1).
//!
//! Small request bodies are decoded whole into [`rmpv::Value`] and picked apart with the
//! accessors here, which turn every type error into a [`Error`] that names the field. The
//! `push` body, whose snapshots list every file of every commit, is read in place by [`scan`]
//! instead: its records stay ranges of the body.
//! `push/objects` bodies can carry hundreds of MiB, so [`objects`] decodes them as a stream.
//! Requests become typed values in [`requests`] and answers are typed values in [`answers`],
//! so the hub never handles msgpack; the fetch answer's framing is written by [`answers`] too.

use rmpv::Value;

use crate::cids::Id;

pub mod answers;
pub mod objects;
pub mod records;
pub mod requests;
pub mod scan;

/// Nesting limit for decoded bodies (a commit's `structured_delta` is the deepest real value).
const MAX_DEPTH: usize = 64;

/// A request body that does not follow the protocol. Answered with 4xx and the message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("malformed msgpack: {0}")]
    Msgpack(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("body must be a msgpack map with string keys")]
    NotMap,
    #[error("missing field '{0}'")]
    Missing(String),
    #[error("field '{field}' must be {expected}")]
    Type {
        field: String,
        expected: &'static str,
    },
    #[error("field '{field}': {why}")]
    Invalid { field: String, why: String },
    #[error("request body is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("request body ended early")]
    Truncated,
    #[error("reading request body: {0}")]
    Body(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decodes exactly one value from `bytes` (any type).
pub fn decode_value(bytes: &[u8]) -> Result<Value> {
    let mut cursor = bytes;
    let v = rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_DEPTH)
        .map_err(|e| Error::Msgpack(e.to_string()))?;
    if !cursor.is_empty() {
        return Err(Error::Msgpack(format!(
            "{} bytes after the value",
            cursor.len()
        )));
    }
    Ok(v)
}

/// Decodes a whole msgpack body into a map value.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let v = decode_value(bytes)?;
    if !v.is_map() {
        return Err(Error::NotMap);
    }
    Ok(v)
}

/// Encodes a value (always succeeds for values built in memory).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
    out
}

/// Builds a map value with string keys, in the given order.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// A string-keyed view of a decoded map, for reading fields with clear errors.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    entries: &'a [(Value, Value)],
    /// The path of this map in the body, for messages (`bundle.commits[3]`).
    path: &'a str,
}

impl<'a> Fields<'a> {
    pub fn of(v: &'a Value, path: &'a str) -> Result<Self> {
        match v {
            Value::Map(entries) => Ok(Fields { entries, path }),
            _ => Err(Error::Type {
                field: path.to_owned(),
                expected: "a map",
            }),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, if present (nil counts as present).
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn type_err(&self, key: &str, expected: &'static str) -> Error {
        Error::Type {
            field: self.name(key),
            expected,
        }
    }

    pub fn str(&self, key: &str) -> Result<&'a str> {
        match self.get(key) {
            None => Err(Error::Missing(self.name(key))),
            Some(v) => v.as_str().ok_or_else(|| self.type_err(key, "a string")),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.type_err(key, "a string or nil")),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None | Some(Value::Nil) => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(self.type_err(key, "a boolean")),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a [Value]> {
        match self.get(key) {
            None => Err(Error::Missing(self.name(key))),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.type_err(key, "an array")),
        }
    }

    pub fn opt_array(&self, key: &str) -> Result<&'a [Value]> {
        match self.get(key) {
            None | Some(Value::Nil) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.type_err(key, "an array")),
        }
    }

    pub fn id(&self, key: &str) -> Result<Id> {
        let s = self.str(key)?;
        Id::parse(s).map_err(|e| Error::Invalid {
            field: self.name(key),
            why: e.to_string(),
        })
    }

    pub fn opt_id(&self, key: &str) -> Result<Option<Id>> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => Id::parse(s).map(Some).map_err(|e| Error::Invalid {
                field: self.name(key),
                why: e.to_string(),
            }),
        }
    }

    /// An array of ids (`want`, `have`, `object_ids`).
    pub fn ids(&self, key: &str, required: bool) -> Result<Vec<Id>> {
        let items = if required {
            self.array(key)?
        } else {
            self.opt_array(key)?
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let field = format!("{}[{i}]", self.name(key));
                let s = v.as_str().ok_or_else(|| Error::Type {
                    field: field.clone(),
                    expected: "a string",
                })?;
                Id::parse(s).map_err(|e| Error::Invalid {
                    field,
                    why: e.to_string(),
                })
            })
            .collect()
    }
}

/// msgpack header length of a str of `len` bytes.
pub fn str_header_len(len: usize) -> u64 {
    match len {
        0..=31 => 1,
        32..=255 => 2,
        256..=65535 => 3,
        _ => 5,
    }
}

/// msgpack header length of a bin of `len` bytes.
pub fn bin_header_len(len: u64) -> u64 {
    match len {
        0..=255 => 2,
        256..=65535 => 3,
        _ => 5,
    }
}

/// msgpack header length of an array or map of `len` entries.
pub fn container_header_len(len: usize) -> u64 {
    match len {
        0..=15 => 1,
        16..=65535 => 3,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_encodings_are_byte_exact() {
        let v = map([
            ("ack", Value::Array(vec![])),
            ("common_base", Value::Nil),
            ("ready", Value::Boolean(true)),
        ]);
        assert_eq!(
            hex::encode(encode(&v)),
            "83a361636b90ab636f6d6d6f6e5f62617365c0a57265616479c3"
        );
        let v = map([("stored", Value::from(2)), ("skipped", Value::from(0))]);
        assert_eq!(
            hex::encode(encode(&v)),
            "82a673746f72656402a7736b697070656400"
        );
    }

    #[test]
    fn header_lengths_match_rmpv() {
        for n in [0usize, 1, 31, 32, 255, 256, 65535, 65536] {
            let s = "x".repeat(n);
            assert_eq!(
                encode(&Value::from(s.as_str())).len() as u64,
                str_header_len(n) + n as u64
            );
            let b = vec![0u8; n];
            assert_eq!(
                encode(&Value::Binary(b)).len() as u64,
                bin_header_len(n as u64) + n as u64
            );
            let a = Value::Array(vec![Value::Nil; n.min(70000)]);
            assert_eq!(encode(&a).len() as u64, container_header_len(n) + n as u64);
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let v = decode(&encode(&map([("want", Value::from(3))]))).unwrap();
        let f = Fields::of(&v, "").unwrap();
        assert_eq!(
            f.ids("want", true),
            Err(Error::Type {
                field: "want".into(),
                expected: "an array"
            })
        );
        assert_eq!(f.ids("have", true), Err(Error::Missing("have".into())));
        assert!(
            matches!(decode(b"\x81\xa1"), Err(Error::Msgpack(_))),
            "truncated"
        );
        assert!(decode(b"\xc1").is_err(), "reserved byte");
        assert_eq!(decode(&encode(&Value::from(1))), Err(Error::NotMap));
    }
}
