//! The small request bodies as typed values: parsed here, field by field with errors that
//! name the field, so [`crate::hub`] never sees a msgpack value. What the fields *mean*
//! (that ids hash right, paths and branch names are valid) is checked by the hub.

use rmpv::Value;

use super::{Error, Fields, Result, encode};
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
    pub raw: Vec<u8>,
}

/// A snapshot record of a push: its manifest in the order sent, and its verbatim bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedSnapshot {
    pub snapshot_id: Id,
    /// (path, object id).
    pub manifest: Vec<(String, Id)>,
    pub raw: Vec<u8>,
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
    /// Objects sent inline in the bundle: id and bytes.
    pub objects: Vec<(Id, Vec<u8>)>,
}

impl Push {
    pub fn parse(body: &Value) -> Result<Self> {
        let f = Fields::of(body, "")?;
        let branch = f.str("branch")?.to_owned();
        let force = f.bool_or("force", false)?;
        let bundle = Fields::of(
            f.get("bundle")
                .ok_or_else(|| Error::Missing("bundle".into()))?,
            "bundle",
        )?;

        let mut snapshots = Vec::new();
        for (i, s) in bundle.opt_array("snapshots")?.iter().enumerate() {
            let path = format!("bundle.snapshots[{i}]");
            let sf = Fields::of(s, &path)?;
            let snapshot_id = sf.id("snapshot_id")?;
            let entries = match sf.get("manifest") {
                Some(Value::Map(m)) => m,
                None => return Err(Error::Missing(format!("{path}.manifest"))),
                Some(_) => {
                    return Err(Error::Type {
                        field: format!("{path}.manifest"),
                        expected: "a map",
                    });
                }
            };
            let mut manifest = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let p = k.as_str().ok_or_else(|| Error::Type {
                    field: format!("{path}.manifest"),
                    expected: "a map of string paths",
                })?;
                let field = format!("{path}.manifest[{p:?}]");
                let oid = v
                    .as_str()
                    .ok_or_else(|| Error::Type {
                        field: field.clone(),
                        expected: "a string",
                    })
                    .and_then(|s| {
                        Id::parse(s).map_err(|e| Error::Invalid {
                            field,
                            why: e.to_string(),
                        })
                    })?;
                manifest.push((p.to_owned(), oid));
            }
            snapshots.push(PushedSnapshot {
                snapshot_id,
                manifest,
                raw: encode(s),
            });
        }

        let mut commits = Vec::new();
        for (i, c) in bundle.opt_array("commits")?.iter().enumerate() {
            let path = format!("bundle.commits[{i}]");
            let cf = Fields::of(c, &path)?;
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
                raw: encode(c),
            });
        }

        let mut objects = Vec::new();
        for (i, o) in bundle.opt_array("objects")?.iter().enumerate() {
            let path = format!("bundle.objects[{i}]");
            let of = Fields::of(o, &path)?;
            let id = of.id("object_id")?;
            let Some(Value::Binary(content)) = of.get("content") else {
                return Err(Error::Type {
                    field: format!("{path}.content"),
                    expected: "msgpack bin",
                });
            };
            objects.push((id, content.clone()));
        }

        let heads = f.get("branch_heads").or_else(|| bundle.get("branch_heads"));
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
    use crate::wire::{decode, map};

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
        let push = Push::parse(&decode(&encode(&body)).unwrap()).unwrap();
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
            push.snapshots[0].manifest,
            [("a.mid".to_owned(), Id([3; 32]))]
        );
        assert_eq!(push.objects, [(Id([3; 32]), b"MThd".to_vec())]);
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
            Push::parse(&body).unwrap_err().to_string(),
            "field 'bundle.objects[0].content' must be msgpack bin"
        );
        assert_eq!(
            Push::parse(&map([("branch", Value::from("main"))])).unwrap_err(),
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
