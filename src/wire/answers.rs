//! The hub's answers as typed values, and their msgpack form (protocol doc §3). The hub
//! builds these; [`crate::web`] encodes them. The fetch answer is streamed, so its framing
//! (everything but the object bytes) is written here piece by piece with exact lengths.

use rmpv::Value;

use super::{bin_header_len, map};
use crate::cids::Id;

/// An answer with a msgpack form.
pub trait Answer {
    fn to_value(&self) -> Value;
}

fn ids(ids: &[Id]) -> Value {
    Value::Array(ids.iter().map(|i| Value::from(i.to_hex())).collect())
}

fn heads(heads: &[(String, Id)]) -> Value {
    Value::Map(
        heads
            .iter()
            .map(|(b, h)| (Value::from(b.as_str()), Value::from(h.to_hex())))
            .collect(),
    )
}

/// `GET refs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub repo_id: String,
    pub domain: String,
    pub default_branch: String,
    pub branch_heads: Vec<(String, Id)>,
}

impl Answer for Refs {
    fn to_value(&self) -> Value {
        map([
            ("repo_id", Value::from(self.repo_id.as_str())),
            ("domain", Value::from(self.domain.as_str())),
            ("default_branch", Value::from(self.default_branch.as_str())),
            ("branch_heads", heads(&self.branch_heads)),
        ])
    }
}

/// `POST filter-objects`: the ids the repo lacks, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Vec<Id>);

impl Answer for Missing {
    fn to_value(&self) -> Value {
        map([("missing", ids(&self.0))])
    }
}

/// `POST presign`: nothing presigned, every object inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inline(pub Vec<Id>);

impl Answer for Inline {
    fn to_value(&self) -> Value {
        map([
            ("presigned", Value::Map(Vec::new())),
            ("inline", ids(&self.0)),
        ])
    }
}

/// `POST push/objects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectsStored {
    pub stored: u64,
    pub skipped: u64,
}

impl Answer for ObjectsStored {
    fn to_value(&self) -> Value {
        map([
            ("stored", Value::from(self.stored)),
            ("skipped", Value::from(self.skipped)),
        ])
    }
}

/// `POST push`, accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub message: String,
    pub branch_heads: Vec<(String, Id)>,
    pub remote_head: Id,
}

impl Answer for Pushed {
    fn to_value(&self) -> Value {
        map([
            ("ok", Value::Boolean(true)),
            ("message", Value::from(self.message.as_str())),
            ("branch_heads", heads(&self.branch_heads)),
            ("remote_head", Value::from(self.remote_head.to_hex())),
        ])
    }
}

/// `POST negotiate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub ack: Vec<Id>,
    pub common_base: Option<Id>,
    pub ready: bool,
}

impl Answer for Negotiated {
    fn to_value(&self) -> Value {
        map([
            ("ack", ids(&self.ack)),
            (
                "common_base",
                self.common_base
                    .map_or(Value::Nil, |b| Value::from(b.to_hex())),
            ),
            ("ready", Value::Boolean(self.ready)),
        ])
    }
}

/// `GET releases`: the stored JSON records (the CLI sends JSON, reads msgpack).
#[derive(Debug, Clone, PartialEq)]
pub struct Releases(pub Vec<serde_json::Value>);

impl Answer for Releases {
    fn to_value(&self) -> Value {
        map([(
            "releases",
            Value::Array(self.0.iter().map(json_to_msgpack).collect()),
        )])
    }
}

/// `POST releases`: the id the hub gave the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCreated(pub String);

impl Answer for ReleaseCreated {
    fn to_value(&self) -> Value {
        map([("release_id", Value::from(self.0.as_str()))])
    }
}

/// `DELETE releases/{tag}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retracted(pub String);

impl Answer for Retracted {
    fn to_value(&self) -> Value {
        map([("retracted", Value::from(self.0.as_str()))])
    }
}

/// `POST tags`: how many were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagsStored(pub u64);

impl Answer for TagsStored {
    fn to_value(&self) -> Value {
        map([("stored", Value::from(self.0))])
    }
}

/// JSON → msgpack, value by value.
pub fn json_to_msgpack(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::Array(a.iter().map(json_to_msgpack).collect()),
        J::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_to_msgpack(v)))
                .collect(),
        ),
    }
}

/// The fetch answer, `{commits, snapshots, objects, branch_heads}`, framed around object bytes
/// the caller streams: [`fetch_head`], then per object [`fetch_object_prefix`] and its bytes,
/// then [`fetch_tail`].
///
/// The map header, the verbatim commit and snapshot records, and the objects array header.
pub fn fetch_head(commits: &[Vec<u8>], snapshots: &[Vec<u8>], objects: usize) -> Vec<u8> {
    let mut head = Vec::new();
    head.push(0x84);
    rmp::encode::write_str(&mut head, "commits").expect("Vec write");
    rmp::encode::write_array_len(&mut head, commits.len() as u32).expect("Vec write");
    for raw in commits {
        head.extend_from_slice(raw);
    }
    rmp::encode::write_str(&mut head, "snapshots").expect("Vec write");
    rmp::encode::write_array_len(&mut head, snapshots.len() as u32).expect("Vec write");
    for raw in snapshots {
        head.extend_from_slice(raw);
    }
    rmp::encode::write_str(&mut head, "objects").expect("Vec write");
    rmp::encode::write_array_len(&mut head, objects as u32).expect("Vec write");
    head
}

/// One object's map up to its bytes: `{object_id: <hex>, content: <bin header>`.
pub fn fetch_object_prefix(id: &Id, size: u64) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(96);
    prefix.push(0x82);
    rmp::encode::write_str(&mut prefix, "object_id").expect("Vec write");
    rmp::encode::write_str(&mut prefix, &id.to_hex()).expect("Vec write");
    rmp::encode::write_str(&mut prefix, "content").expect("Vec write");
    rmp::encode::write_bin_len(&mut prefix, size as u32).expect("Vec write");
    prefix
}

/// The encoded length of one object of `size` bytes in a fetch answer: fixmap(2),
/// "object_id" (10), str8 id (66), "content" (8), bin header, bytes.
pub fn fetch_object_len(size: u64) -> u64 {
    85 + bin_header_len(size) + size
}

/// The `branch_heads` entry that ends the answer.
pub fn fetch_tail(branch_heads: &[(String, Id)]) -> Vec<u8> {
    let mut tail = Vec::new();
    rmp::encode::write_str(&mut tail, "branch_heads").expect("Vec write");
    rmpv::encode::write_value(&mut tail, &heads(branch_heads)).expect("Vec write");
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode};

    #[test]
    fn a_framed_fetch_answer_decodes_as_one_map_of_the_computed_length() {
        let commit = encode(&map([("commit_id", Value::from(Id([1; 32]).to_hex()))]));
        let body = vec![7u8; 300];
        let id = Id::of(&body);
        let heads = vec![("main".to_owned(), Id([1; 32]))];
        let mut answer = fetch_head(&[commit], &[], 1);
        let prefix = fetch_object_prefix(&id, body.len() as u64);
        assert_eq!(
            (prefix.len() + body.len()) as u64,
            fetch_object_len(body.len() as u64)
        );
        answer.extend(prefix);
        answer.extend(&body);
        answer.extend(fetch_tail(&heads));
        let v = decode(&answer).unwrap();
        let f = crate::wire::Fields::of(&v, "").unwrap();
        assert_eq!(f.array("commits").unwrap().len(), 1);
        let objects = f.array("objects").unwrap();
        let o = crate::wire::Fields::of(&objects[0], "o").unwrap();
        assert_eq!(o.id("object_id").unwrap(), id);
        assert_eq!(o.get("content"), Some(&Value::Binary(body)));
        assert_eq!(
            f.get("branch_heads"),
            Some(&Value::Map(vec![(
                Value::from("main"),
                Value::from(Id([1; 32]).to_hex())
            )]))
        );
    }

    #[test]
    fn answers_have_the_protocol_field_names() {
        let n = Negotiated {
            ack: vec![Id([2; 32])],
            common_base: None,
            ready: true,
        }
        .to_value();
        let f = crate::wire::Fields::of(&n, "").unwrap();
        assert_eq!(f.get("common_base"), Some(&Value::Nil));
        assert_eq!(f.get("ready"), Some(&Value::Boolean(true)));
        let r = Releases(vec![
            serde_json::json!({"tag": "v1", "n": 3, "draft": false}),
        ])
        .to_value();
        let rel = &crate::wire::Fields::of(&r, "")
            .unwrap()
            .array("releases")
            .unwrap()[0];
        let rf = crate::wire::Fields::of(rel, "").unwrap();
        assert_eq!(rf.str("tag").unwrap(), "v1");
        assert_eq!(rf.get("n"), Some(&Value::from(3)));
    }
}
