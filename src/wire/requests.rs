//! The small request bodies as typed values: parsed here, field by field with errors that
//! name the field, so [`crate::hub`] never sees a msgpack value. What the fields *mean*
//! (that ids hash right, paths and branch names are valid) is checked by the hub.

use std::ops::Range;

use bytes::Bytes;
use rmpv::Value;

use super::scan::Scan;
use super::{Error, Fields, Result, decode_value};
use crate::cids::Id;
use crate::db::content::CommitRow;

/// `POST filter-objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterObjects {
    pub object_ids: Vec<Id>,
}

impl FilterObjects {
    pub fn parse(body: &Value) -> Result<Self> {
        let f = Fields::of(body, "")?;
        Ok(FilterObjects {
            object_ids: f.ids("object_ids", true)?,
        })
    }
}

/// `POST presign`. `direction` is `put` or `get` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presign {
    pub object_ids: Vec<Id>,
}

impl Presign {
    pub fn parse(body: &Value) -> Result<Self> {
        let f = Fields::of(body, "")?;
        let object_ids = f.ids("object_ids", true)?;
        if let Some(d) = f.opt_str("direction")?
            && d != "put"
            && d != "get"
        {
            return Err(Error::Invalid {
                field: "direction".into(),
                why: format!("must be \"put\" or \"get\", got {d:?}"),
            });
        }
        Ok(Presign { object_ids })
    }
}

/// `POST negotiate` and `POST fetch`: what the client wants and what it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantHave {
    pub want: Vec<Id>,
    pub have: Vec<Id>,
}

impl WantHave {
    /// `negotiate` requires `want`; `fetch` does not.
    pub fn parse(body: &Value, want_required: bool) -> Result<Self> {
        let f = Fields::of(body, "")?;
        Ok(WantHave {
            want: f.ids("want", want_required)?,
            have: f.ids("have", false)?,
        })
    }
}

/// One entry of `POST tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub commit_id: Id,
    pub label: String,
    pub tag_id: Option<String>,
    pub created_at: Option<String>,
}

/// `POST tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    pub tags: Vec<Tag>,
}

impl Tags {
    pub fn parse(body: &Value) -> Result<Self> {
        let f = Fields::of(body, "")?;
        let mut tags = Vec::new();
        for (i, t) in f.array("tags")?.iter().enumerate() {
            let path = format!("tags[{i}]");
            let tf = Fields::of(t, &path)?;
            let commit_id = tf.id("commit_id")?;
            let label = tf.str("tag")?;
            if label.is_empty() || label.len() > 500 {
                return Err(Error::Invalid {
                    field: format!("{path}.tag"),
                    why: "must be 1 to 500 characters".into(),
                });
            }
            tags.push(Tag {
                commit_id,
                label: label.to_owned(),
                tag_id: tf.opt_str("tag_id")?.map(str::to_owned),
                created_at: tf.opt_str("created_at")?.map(str::to_owned),
            });
        }
        Ok(Tags { tags })
    }
}

/// A commit record of a push, with its verbatim msgpack bytes (stored and served as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedCommit {
    /// The fields the hub checks and indexes.
    pub row: CommitRow,
    /// The `branch` field some CLI versions put in the record (which branch it was made on).
    pub branch: Option<String>,
    pub raw: Bytes,
}

/// A snapshot record of a push: its verbatim bytes (a range of the body) and where its
/// manifest lies in them. Every entry was checked to be a string path and an id when the body
/// was read, so [`PushedSnapshot::manifest`] reads them again without a way to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedSnapshot {
    pub snapshot_id: Id,
    raw: Bytes,
    /// Where the manifest map starts in `raw`.
    manifest_at: usize,
}

impl PushedSnapshot {
    /// The record a client sends for `manifest` (tests; the hub reads them from bodies).
    #[cfg(test)]
    pub(crate) fn new(snapshot_id: Id, manifest: &[(String, Id)]) -> Self {
        let record = super::map([
            ("snapshot_id", Value::from(snapshot_id.to_hex())),
            (
                "manifest",
                Value::Map(
                    manifest
                        .iter()
                        .map(|(p, o)| (Value::from(p.as_str()), Value::from(o.to_hex())))
                        .collect(),
                ),
            ),
        ]);
        Self::read(Bytes::from(super::encode(&record)), "snapshot")
            .expect("a record built from typed values reads back")
    }

    /// Reads the snapshot record `raw`, checking its id and every manifest entry; `path` names
    /// it in errors (`bundle.snapshots[2]`).
    fn read(raw: Bytes, path: &str) -> Result<Self> {
        let ([id_at, manifest_at], _) = pick(&raw, 0, path, ["snapshot_id", "manifest"])?;
        let snapshot_id = read_id(&raw, id_at, &format!("{path}.snapshot_id"))?;
        let field = format!("{path}.manifest");
        let manifest_at = manifest_at
            .ok_or_else(|| Error::Missing(field.clone()))?
            .start;
        let mut m = Scan::at(&raw, manifest_at);
        let entries = m.map_len()?.ok_or_else(|| Error::Type {
            field: field.clone(),
            expected: "a map",
        })?;
        for _ in 0..entries {
            let p = m.str()?.ok_or_else(|| Error::Type {
                field: field.clone(),
                expected: "a map of string paths",
            })?;
            let entry = || format!("{field}[{p:?}]");
            let oid = m.str()?.ok_or_else(|| Error::Type {
                field: entry(),
                expected: "a string",
            })?;
            Id::parse(oid).map_err(|e| Error::Invalid {
                field: entry(),
                why: e.to_string(),
            })?;
        }
        Ok(PushedSnapshot {
            snapshot_id,
            raw,
            manifest_at,
        })
    }

    /// The verbatim record.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The manifest's (path, object id) entries in the order sent.
    pub fn manifest(&self) -> impl Iterator<Item = (&str, Id)> + '_ {
        let mut m = Scan::at(&self.raw, self.manifest_at);
        let n = m.map_len().ok().flatten().unwrap_or(0);
        (0..n).map_while(move |_| {
            let path = m.str().ok()??;
            let oid = Id::parse(m.str().ok()??).ok()?;
            Some((path, oid))
        })
    }
}

/// The values of `names` in the map at `at` of `buf` (the first of each, as [`Fields::get`]
/// finds it), as ranges of `buf`, and where the map ends. `field` names the map in errors.
fn pick<const N: usize>(
    buf: &[u8],
    at: usize,
    field: &str,
    names: [&str; N],
) -> Result<([Option<Range<usize>>; N], usize)> {
    let mut s = Scan::at(buf, at);
    let n = s.map_len()?.ok_or_else(|| Error::Type {
        field: field.to_owned(),
        expected: "a map",
    })?;
    let mut found: [Option<Range<usize>>; N] = std::array::from_fn(|_| None);
    for _ in 0..n {
        let key = s.key()?;
        let r = s.value()?;
        if let Some(i) = key.and_then(|k| names.iter().position(|n| *n == k)) {
            found[i].get_or_insert(r);
        }
    }
    Ok((found, s.pos()))
}

/// The id at `at` of `buf`, as [`Fields::id`] reads one.
fn read_id(buf: &[u8], at: Option<Range<usize>>, field: &str) -> Result<Id> {
    let at = at.ok_or_else(|| Error::Missing(field.to_owned()))?;
    let s = Scan::at(buf, at.start).str()?.ok_or_else(|| Error::Type {
        field: field.to_owned(),
        expected: "a string",
    })?;
    Id::parse(s).map_err(|e| Error::Invalid {
        field: field.to_owned(),
        why: e.to_string(),
    })
}

/// The items of the array at `at` (none when absent or nil), as ranges of `buf`.
fn items(buf: &[u8], at: Option<Range<usize>>, field: &str) -> Result<Vec<Range<usize>>> {
    let Some(at) = at else {
        return Ok(Vec::new());
    };
    let mut s = Scan::at(buf, at.start);
    if s.is_nil() {
        return Ok(Vec::new());
    }
    let n = s.array_len()?.ok_or_else(|| Error::Type {
        field: field.to_owned(),
        expected: "an array",
    })?;
    (0..n).map(|_| s.value()).collect()
}

/// `POST push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub branch: String,
    pub force: bool,
    /// The branch's head as the client names it in `branch_heads`, if it does.
    pub tip: Option<Id>,
    pub commits: Vec<PushedCommit>,
    pub snapshots: Vec<PushedSnapshot>,
    /// Objects sent inline in the bundle: id and bytes (ranges of the body).
    pub objects: Vec<(Id, Bytes)>,
}

impl Push {
    /// Reads a push body in place: its records stay ranges of `body` (see [`super::scan`]);
    /// only the small fields and each commit record are decoded into values.
    pub fn parse(body: Bytes) -> Result<Self> {
        if Scan::new(&body).map_len()?.is_none() {
            return Err(Error::NotMap);
        }
        let ([branch_at, force_at, heads_at, bundle_at], end) =
            pick(&body, 0, "", ["branch", "force", "branch_heads", "bundle"])?;
        if end != body.len() {
            return Err(Error::Msgpack(format!(
                "{} bytes after the value",
                body.len() - end
            )));
        }
        // The small fields, decoded to read them as every other request does.
        let mut top = Vec::new();
        for (name, at) in [
            ("branch", branch_at),
            ("force", force_at),
            ("branch_heads", heads_at),
        ] {
            if let Some(r) = at {
                top.push((Value::from(name), decode_value(&body[r])?));
            }
        }
        let top = Value::Map(top);
        let f = Fields::of(&top, "")?;
        let branch = f.str("branch")?.to_owned();
        let force = f.bool_or("force", false)?;

        let bundle_at = bundle_at.ok_or_else(|| Error::Missing("bundle".into()))?;
        let ([commits_at, snapshots_at, objects_at, bundle_heads_at], _) = pick(
            &body,
            bundle_at.start,
            "bundle",
            ["commits", "snapshots", "objects", "branch_heads"],
        )?;

        let mut snapshots = Vec::new();
        for (i, r) in items(&body, snapshots_at, "bundle.snapshots")?
            .into_iter()
            .enumerate()
        {
            let path = format!("bundle.snapshots[{i}]");
            snapshots.push(PushedSnapshot::read(body.slice(r), &path)?);
        }

        let mut commits = Vec::new();
        for (i, r) in items(&body, commits_at, "bundle.commits")?
            .into_iter()
            .enumerate()
        {
            let path = format!("bundle.commits[{i}]");
            let c = decode_value(&body[r.clone()])?;
            let cf = Fields::of(&c, &path)?;
            commits.push(PushedCommit {
                row: CommitRow {
                    commit_id: cf.id("commit_id")?,
                    snapshot_id: cf.id("snapshot_id")?,
                    parents: [
                        cf.opt_id("parent_commit_id")?,
                        cf.opt_id("parent2_commit_id")?,
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    message: cf.opt_str("message")?.unwrap_or("").to_owned(),
                    committed_at: cf.str("committed_at")?.to_owned(),
                    author: cf.opt_str("author")?.unwrap_or("").to_owned(),
                },
                branch: cf.opt_str("branch").ok().flatten().map(str::to_owned),
                raw: body.slice(r),
            });
        }

        let mut objects = Vec::new();
        for (i, r) in items(&body, objects_at, "bundle.objects")?
            .into_iter()
            .enumerate()
        {
            let path = format!("bundle.objects[{i}]");
            let ([id_at, content_at], _) = pick(&body, r.start, &path, ["object_id", "content"])?;
            let id = read_id(&body, id_at, &format!("{path}.object_id"))?;
            let content = match content_at {
                Some(c) => Scan::at(&body, c.start).bin()?,
                None => None,
            };
            let Some(content) = content else {
                return Err(Error::Type {
                    field: format!("{path}.content"),
                    expected: "msgpack bin",
                });
            };
            objects.push((id, body.slice(content)));
        }

        let heads = match (f.get("branch_heads"), bundle_heads_at) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(r)) => Some(decode_value(&body[r])?),
            (None, None) => None,
        };
        let tip = match heads {
            Some(Value::Map(m)) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(&branch))
                .and_then(|(_, v)| v.as_str())
                .map(|s| {
                    Id::parse(s).map_err(|e| Error::Invalid {
                        field: "branch_heads".into(),
                        why: e.to_string(),
                    })
                })
                .transpose()?,
            _ => None,
        };
        Ok(Push {
            branch,
            force,
            tip,
            commits,
            snapshots,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode, map};

    fn hex(b: u8) -> String {
        Id([b; 32]).to_hex()
    }

    #[test]
    fn push_bodies_parse_into_typed_records() {
        let commit = map([
            ("commit_id", Value::from(hex(1))),
            ("snapshot_id", Value::from(hex(2))),
            ("parent_commit_id", Value::Nil),
            ("message", Value::from("verse")),
            ("committed_at", Value::from("2026-01-01T00:00:00+00:00")),
            ("branch", Value::from("main")),
        ]);
        let snapshot = map([
            ("snapshot_id", Value::from(hex(2))),
            (
                "manifest",
                Value::Map(vec![(Value::from("a.mid"), Value::from(hex(3)))]),
            ),
        ]);
        let body = map([
            ("branch", Value::from("main")),
            (
                "bundle",
                map([
                    ("commits", Value::Array(vec![commit.clone()])),
                    ("snapshots", Value::Array(vec![snapshot])),
                    (
                        "objects",
                        Value::Array(vec![map([
                            ("object_id", Value::from(hex(3))),
                            ("content", Value::Binary(b"MThd".to_vec())),
                        ])]),
                    ),
                ]),
            ),
            (
                "branch_heads",
                Value::Map(vec![(Value::from("main"), Value::from(hex(1)))]),
            ),
        ]);
        let push = Push::parse(encode(&body).into()).unwrap();
        assert_eq!(push.branch, "main");
        assert!(!push.force);
        assert_eq!(push.tip, Some(Id([1; 32])));
        let c = &push.commits[0];
        assert_eq!(
            (c.row.commit_id, c.row.snapshot_id),
            (Id([1; 32]), Id([2; 32]))
        );
        assert!(c.row.parents.is_empty());
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.raw, encode(&commit), "the record is kept verbatim");
        assert_eq!(
            push.snapshots[0].manifest().collect::<Vec<_>>(),
            [("a.mid", Id([3; 32]))]
        );
        assert_eq!(push.snapshots[0].manifest().count(), 1);
        assert_eq!(push.objects, [(Id([3; 32]), Bytes::from_static(b"MThd"))]);
    }

    #[test]
    fn errors_name_the_field() {
        let body = map([
            ("branch", Value::from("main")),
            (
                "bundle",
                map([(
                    "objects",
                    Value::Array(vec![map([
                        ("object_id", Value::from(hex(3))),
                        ("content", Value::from("not bin")),
                    ])]),
                )]),
            ),
        ]);
        assert_eq!(
            Push::parse(encode(&body).into()).unwrap_err().to_string(),
            "field 'bundle.objects[0].content' must be msgpack bin"
        );
        assert_eq!(
            Push::parse(encode(&map([("branch", Value::from("main"))])).into()).unwrap_err(),
            Error::Missing("bundle".into())
        );
        let bad = map([
            ("direction", Value::from("sideways")),
            ("object_ids", Value::Array(vec![])),
        ]);
        assert!(
            Presign::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("direction")
        );
        let tags = map([(
            "tags",
            Value::Array(vec![map([
                ("commit_id", Value::from(hex(1))),
                ("tag", Value::from("")),
            ])]),
        )]);
        assert!(
            Tags::parse(&tags)
                .unwrap_err()
                .to_string()
                .contains("tags[0].tag")
        );
        assert!(WantHave::parse(&map([]), true).is_err());
        assert_eq!(
            WantHave::parse(&map([]), false).unwrap(),
            WantHave {
                want: vec![],
                have: vec![]
            }
        );
    }
}
