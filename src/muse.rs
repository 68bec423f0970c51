//! The Muse data model as the hub checks it: how snapshot and commit ids are derived, and
//! which ids, paths and branch names are acceptable.
//!
//! Everything here is pure. The rules follow the Muse CLI 0.1.5 (see
//! `shared/muse-wire-protocol.md` §1): ids are bare lowercase hex SHA-256, a snapshot id hashes
//! its NUL-joined sorted `path\0object_id` entries, a commit id hashes its sorted parents, the
//! snapshot id, the message and `committed_at` byte for byte. The hub recomputes both for
//! every pushed record, so a replica or a CAR export can be trusted without trusting the pusher.

use sha2::{Digest, Sha256};

use crate::cids::Id;

/// Why a record, path or name was refused. The message is shown to the musician by the CLI.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("snapshot {claimed} does not match its manifest (computed {computed})")]
    SnapshotId { claimed: Id, computed: Id },
    #[error("commit {claimed} does not match its fields (computed {computed})")]
    CommitId { claimed: Id, computed: Id },
    #[error("invalid path {path:?}: {why}")]
    Path { path: String, why: &'static str },
    #[error("invalid branch name {name:?}: {why}")]
    Branch { name: String, why: &'static str },
}

/// The snapshot id of a manifest (path → object id). Sorting happens here, so any order works.
pub fn snapshot_id<'a, O: std::borrow::Borrow<Id>>(
    entries: impl IntoIterator<Item = (&'a str, O)>,
) -> Id {
    let mut lines: Vec<String> = entries
        .into_iter()
        .map(|(path, oid)| format!("{path}\0{}", oid.borrow()))
        .collect();
    // Python sorts str by code point; for UTF-8 that is the same as sorting bytes.
    lines.sort_unstable();
    Id(Sha256::digest(lines.join("\0").as_bytes()).into())
}

/// The commit id of its hashed fields. Parent order does not matter.
pub fn commit_id(parents: &[Id], snapshot: &Id, message: &str, committed_at: &str) -> Id {
    let mut ps: Vec<String> = parents.iter().map(Id::to_hex).collect();
    ps.sort_unstable();
    let mut h = Sha256::new();
    h.update(ps.join("\0").as_bytes());
    h.update(b"\0");
    h.update(snapshot.to_hex().as_bytes());
    h.update(b"\0");
    h.update(message.as_bytes());
    h.update(b"\0");
    h.update(committed_at.as_bytes());
    Id(h.finalize().into())
}

/// Checks a manifest path the way the hub must before it ever becomes a file on someone's disk:
/// relative, `/`-separated, no `..`, `.` or empty components, no NUL or backslash.
pub fn check_path(path: &str) -> Result<(), Error> {
    let fail = |why| {
        Err(Error::Path {
            path: path.to_owned(),
            why,
        })
    };
    if path.is_empty() {
        return fail("empty");
    }
    if path.contains('\0') {
        return fail("contains NUL");
    }
    if path.contains('\\') {
        return fail("contains a backslash");
    }
    if path.starts_with('/') {
        return fail("absolute");
    }
    if path.len() > 4096 {
        return fail("longer than 4096 bytes");
    }
    for part in path.split('/') {
        match part {
            "" => return fail("empty component"),
            "." | ".." => return fail("'.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

/// The Muse CLI's branch-name rule: at most 255 characters; no backslash, NUL, CR, LF or TAB;
/// no leading or trailing `.` or `/`; no `..` and no `//`.
pub fn check_branch(name: &str) -> Result<(), Error> {
    let fail = |why| {
        Err(Error::Branch {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return fail("empty");
    }
    if name.chars().count() > 255 {
        return fail("longer than 255 characters");
    }
    if name.contains(['\\', '\0', '\r', '\n', '\t']) {
        return fail("contains a backslash or control character");
    }
    if name.starts_with('.') || name.ends_with('.') {
        return fail("starts or ends with '.'");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return fail("starts or ends with '/'");
    }
    if name.contains("..") {
        return fail("contains '..'");
    }
    if name.contains("//") {
        return fail("contains '//'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s).unwrap()
    }

    const README: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
    const DRUMS: &str = "0a19d5f53b155cf01755c2681ec48091a782fc51bd8442d4c694c3fa71bac5be";
    const SNAP: &str = "3246bc139d95a8e34b97c9d86589cfd426f135de27bb22f45ffef542f37ed93b";

    #[test]
    fn object_ids_match_vector_1() {
        assert_eq!(Id::of(b"hello world\n"), id(README));
        assert_eq!(
            Id::of(&hex::decode("4d546864000000060001000201e0").unwrap()),
            id(DRUMS)
        );
    }

    #[test]
    fn snapshot_id_matches_vector_2() {
        let (r, d) = (id(README), id(DRUMS));
        assert_eq!(
            snapshot_id([("tracks/drums.mid", &d), ("README.md", &r)]),
            id(SNAP)
        );
        assert_eq!(snapshot_id::<&Id>([]), Id::of(b""));
    }

    #[test]
    fn commit_ids_match_vector_3() {
        let snap = id(SNAP);
        let root = commit_id(&[], &snap, "Add verse melody", "2026-03-16T12:00:00+00:00");
        assert_eq!(
            root,
            id("9e6f32dc0d9c2c5d4fdf5a88d9cf88ccf6351c62fc952131ac7bc4d94340d90e")
        );
        let t = "2026-03-16T12:05:30.123456+00:00";
        let child = commit_id(&[root], &snap, "second", t);
        assert_eq!(
            child,
            id("e2f0259641765da8044b101ed9d5b7c8a047a14881b5758468d49127f947f67b")
        );
        let merge = id("3abfa7bfabff436e249de15c32b89f0417a729b6d1a13e2be28f0771ed5e7820");
        let msg = "Merge origin/main into main";
        assert_eq!(commit_id(&[child, root], &snap, msg, t), merge);
        assert_eq!(commit_id(&[root, child], &snap, msg, t), merge);
    }

    #[test]
    fn paths_that_escape_are_refused() {
        for ok in [
            "a",
            "tracks/drums.mid",
            ".museignore",
            "a/.b/c",
            "ünïcode/ß.wav",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            ".",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branch_names_follow_the_cli_rule() {
        for ok in ["main", "feature/chorus", "v1.2", "a-b_c"] {
            assert_eq!(check_branch(ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(256);
        for bad in [
            "", ".hidden", "end.", "/lead", "trail/", "a..b", "a//b", "a\\b", "a\tb", "a\nb", &long,
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }
}
