//! Commit and snapshot records shaped exactly as the Muse CLI 0.1.5 sends them (protocol doc
//! §1.5–1.6): every one of the 22 commit keys, in the CLI's order, with ids derived by
//! [`crate::muse`]. The bench and the tests push these; tools that write history for the CLI
//! (cloning into `.muse/`, replication) build on the same shape.

use rmpv::Value;

use crate::cids::Id;
use crate::muse;

/// A commit and its snapshot, with their ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub commit_id: Id,
    pub snapshot_id: Id,
    /// The CommitDict map.
    pub commit: Value,
    /// The SnapshotDict map.
    pub snapshot: Value,
}

/// What a new commit says; the rest of the CLI's fields get its defaults.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The pusher's local repo UUID (not hashed).
    pub repo_id: &'a str,
    /// The branch the commit was made on (not hashed).
    pub branch: &'a str,
    /// At most two parents travel on the wire.
    pub parents: &'a [Id],
    /// Path → object id.
    pub manifest: &'a [(String, Id)],
    pub message: &'a str,
    /// Hashed byte for byte; the CLI writes `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`.
    pub committed_at: &'a str,
}

impl Commit<'_> {
    /// Builds both records and derives their ids.
    pub fn record(&self) -> Record {
        let snapshot_id = muse::snapshot_id(self.manifest.iter().map(|(p, o)| (p.as_str(), o)));
        let commit_id =
            muse::commit_id(self.parents, &snapshot_id, self.message, self.committed_at);
        let manifest = self
            .manifest
            .iter()
            .map(|(p, o)| (Value::from(p.as_str()), Value::from(o.to_hex())))
            .collect();
        let snapshot = super::map([
            ("snapshot_id", Value::from(snapshot_id.to_hex())),
            ("manifest", Value::Map(manifest)),
            ("created_at", Value::from(self.committed_at)),
        ]);
        let parent = |i: usize| {
            self.parents
                .get(i)
                .map_or(Value::Nil, |p| Value::from(p.to_hex()))
        };
        let commit = super::map([
            ("commit_id", Value::from(commit_id.to_hex())),
            ("repo_id", Value::from(self.repo_id)),
            ("branch", Value::from(self.branch)),
            ("snapshot_id", Value::from(snapshot_id.to_hex())),
            ("message", Value::from(self.message)),
            ("committed_at", Value::from(self.committed_at)),
            ("parent_commit_id", parent(0)),
            ("parent2_commit_id", parent(1)),
            ("author", Value::from("")),
            ("metadata", Value::Map(Vec::new())),
            ("structured_delta", Value::Nil),
            ("sem_ver_bump", Value::from("none")),
            ("breaking_changes", Value::Array(Vec::new())),
            ("agent_id", Value::from("")),
            ("model_id", Value::from("")),
            ("toolchain_id", Value::from("")),
            ("prompt_hash", Value::from("")),
            ("signature", Value::from("")),
            ("signer_key_id", Value::from("")),
            ("format_version", Value::from(5)),
            ("reviewed_by", Value::Array(Vec::new())),
            ("test_runs", Value::from(0)),
        ]);
        Record {
            commit_id,
            snapshot_id,
            commit,
            snapshot,
        }
    }
}

/// Runs `f` over a stored snapshot record's manifest entries (none when it has no manifest).
fn with_manifest<T>(raw: &[u8], f: impl FnOnce(&[(Value, Value)]) -> T) -> super::Result<T> {
    let v = super::decode(raw)?;
    let fields = super::Fields::of(&v, "snapshot")?;
    Ok(match fields.get("manifest") {
        Some(Value::Map(m)) => f(m),
        _ => f(&[]),
    })
}

/// One manifest entry as (path, object id); `None` for an entry that is not a string path
/// and an id (the push checked them, so none is expected).
fn entry((k, v): &(Value, Value)) -> Option<(&str, Id)> {
    Some((k.as_str()?, Id::parse(v.as_str()?).ok()?))
}

/// A stored snapshot record's manifest as (path, object id), in record order.
pub fn snapshot_manifest(raw: &[u8]) -> super::Result<Vec<(String, Id)>> {
    with_manifest(raw, |m| {
        m.iter()
            .filter_map(entry)
            .map(|(p, id)| (p.to_owned(), id))
            .collect()
    })
}

/// The object ids a stored snapshot record names (its manifest's values).
pub fn snapshot_object_ids(raw: &[u8]) -> super::Result<Vec<Id>> {
    with_manifest(raw, |m| {
        m.iter().filter_map(entry).map(|(_, id)| id).collect()
    })
}

/// The object id at `path` in a stored snapshot record.
pub fn snapshot_file(raw: &[u8], path: &str) -> super::Result<Option<Id>> {
    with_manifest(raw, |m| {
        m.iter()
            .filter_map(entry)
            .find(|(p, _)| *p == path)
            .map(|(_, id)| id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_the_protocol_vector_ids() {
        let readme = Id::of(b"hello world\n");
        let drums = Id::of(&hex::decode("4d546864000000060001000201e0").unwrap());
        let manifest = vec![
            ("tracks/drums.mid".to_owned(), drums),
            ("README.md".to_owned(), readme),
        ];
        let r = Commit {
            repo_id: "r",
            branch: "main",
            parents: &[],
            manifest: &manifest,
            message: "Add verse melody",
            committed_at: "2026-03-16T12:00:00+00:00",
        }
        .record();
        assert_eq!(
            r.snapshot_id.to_hex(),
            "3246bc139d95a8e34b97c9d86589cfd426f135de27bb22f45ffef542f37ed93b"
        );
        assert_eq!(
            r.commit_id.to_hex(),
            "9e6f32dc0d9c2c5d4fdf5a88d9cf88ccf6351c62fc952131ac7bc4d94340d90e"
        );
        let keys: Vec<&str> = r
            .commit
            .as_map()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys.len(), 22);
        assert_eq!(
            r.commit.as_map().unwrap()[6].1,
            Value::Nil,
            "a root commit's parent is nil"
        );
    }
}
