//! Which blocks are public: the block → object → repo mapping behind the IPFS gateway,
//! Bitswap and provider announcements.
//!
//! A block may be served to anyone when it belongs to an object held by at least one public
//! repo: either it *is* a single-block object (its digest is the `object_id`), or it is one of
//! the blocks of a multi-block object's UnixFS tree (`object_blocks`). Blocks the hub publishes
//! itself (`published_blocks`, its IPNS index) are public by construction. Private content is
//! then indistinguishable from absent content.
//!
//! Every visibility question goes through one query ([`block_visible`]) built around a
//! `holders(repo_id)` set: repos holding the block through an object, through a commit or
//! snapshot whose DAG-CBOR node it is (`dag_blocks`), or through their ref-state chain.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::cids::Id;

/// The name of the `pending_backfills` row for `object_blocks` (see migration 3).
pub const OBJECT_BLOCKS_BACKFILL: &str = "object_blocks";

/// Whether the block with this digest may be served to anyone: it is a single-block object,
/// or a block of a multi-block object, held by at least one public repo; or the hub
/// published it itself.
pub fn public_block(conn: &Connection, digest: &Id) -> Result<bool> {
    block_visible(conn, digest, None)
}

/// Whether the block is public or belongs to an object in one of `owner_id`'s repos (the
/// rule `/o/{id}` applies to whole objects, here per block).
pub fn owner_may_read(conn: &Connection, digest: &Id, owner_id: i64) -> Result<bool> {
    block_visible(conn, digest, Some(owner_id))
}

/// The one visibility query. `holders` lists every repo that holds the block through some
/// object; the block is visible when one of them is public (or owned by `owner_id`), or when
/// the hub published it.
/// Whether a block is published by the hub, or belongs to an object held by a public repo
/// (or by a repo of `?2`). Only index lookups (checked by a test of its query plan).
const BLOCK_VISIBLE: &str = "WITH holders(repo_id) AS (
                 SELECT ro.repo_id FROM repo_objects ro
                 WHERE ro.object_id IN (
                     SELECT object_id FROM objects WHERE object_id = ?1 AND root IS NULL
                     UNION ALL
                     SELECT object_id FROM object_blocks WHERE digest = ?1
                 )
                 UNION ALL
                 SELECT rc.repo_id FROM dag_blocks d JOIN repo_commits rc
                     ON rc.commit_id = d.muse_id
                 WHERE d.digest = ?1 AND d.kind = 'commit'
                 UNION ALL
                 SELECT rs.repo_id FROM dag_blocks d JOIN repo_snapshots rs
                     ON rs.snapshot_id = d.muse_id
                 WHERE d.digest = ?1 AND d.kind = 'snapshot'
                 UNION ALL
                 SELECT repo_id FROM ref_states WHERE digest = ?1
             )
             SELECT 1 FROM published_blocks WHERE digest = ?1
             UNION ALL
             SELECT 1 FROM holders h JOIN repos r ON r.id = h.repo_id
             WHERE r.visibility = 'public' OR r.owner_id = ?2
             LIMIT 1";

fn block_visible(conn: &Connection, digest: &Id, owner_id: Option<i64>) -> Result<bool> {
    Ok(conn
        .prepare_cached(BLOCK_VISIBLE)?
        .exists(params![&digest.0[..], owner_id])?)
}

/// Up to `limit` objects held by at least one public repo, in `object_id` order after
/// `after` (exclusive; `None` starts at the beginning). Each comes with its UnixFS root CID
/// bytes when it is a tree; a single-block object's CID is the raw CID of its id.
pub fn public_roots(
    conn: &Connection,
    after: Option<&Id>,
    limit: usize,
) -> Result<Vec<(Id, Option<Vec<u8>>)>> {
    let after: &[u8] = after.map(|a| &a.0[..]).unwrap_or(&[]);
    let mut stmt = conn.prepare_cached(
        "SELECT o.object_id, o.root FROM objects o
         WHERE o.object_id > ?1 AND EXISTS (
             SELECT 1 FROM repo_objects ro JOIN repos r ON r.id = ro.repo_id
             WHERE ro.object_id = o.object_id AND r.visibility = 'public'
         )
         ORDER BY o.object_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, root) = row?;
        if let Some(id) = Id::from_slice(&id) {
            out.push((id, root));
        }
    }
    Ok(out)
}

/// Records that these blocks make up `object_id`'s tree. Idempotent; duplicates are fine.
pub fn add_object_blocks<'a>(
    conn: &Connection,
    object_id: &Id,
    digests: impl IntoIterator<Item = &'a Id>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO object_blocks (digest, object_id) VALUES (?1, ?2)",
    )?;
    for d in digests {
        stmt.execute(params![&d.0[..], &object_id.0[..]])?;
    }
    Ok(())
}

/// Whether `(digest, object_id)` is recorded.
pub fn has_object_block(conn: &Connection, digest: &Id, object_id: &Id) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM object_blocks WHERE digest = ?1 AND object_id = ?2")?
        .exists(params![&digest.0[..], &object_id.0[..]])?)
}

/// Every multi-block object with its root CID bytes (for the backfill).
pub fn tree_objects(conn: &Connection) -> Result<Vec<(Id, Vec<u8>)>> {
    let mut stmt = conn.prepare("SELECT object_id, root FROM objects WHERE root IS NOT NULL")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, root) = row?;
        if let Some(id) = Id::from_slice(&id) {
            out.push((id, root));
        }
    }
    Ok(out)
}

/// Whether a one-time backfill still has to run.
pub fn backfill_pending(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM pending_backfills WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Marks a one-time backfill as done.
pub fn backfill_done(conn: &Connection, name: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM pending_backfills WHERE name = ?1")?
        .execute([name])?;
    Ok(())
}

/// Forgets every `object_blocks` row and asks for the backfill again, as a database written
/// before schema 3 would (tests of the backfill only).
#[cfg(test)]
pub(crate) fn forget_for_tests(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM object_blocks;
         INSERT OR IGNORE INTO pending_backfills (name) VALUES ('object_blocks');",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::content::{add_repo_object, put_object};
    use crate::db::{Db, repos, users};

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    /// alice (private repo "secret", public repo "song") and bob (private repo "b").
    fn fixture() -> (tempfile::TempDir, Db, i64, i64, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let ids = db
            .write_blocking(|tx| {
                let alice = users::create(tx, "alice")?;
                let bob = users::create(tx, "bob")?;
                let secret =
                    repos::create(tx, alice.id, "secret", repos::Visibility::Private, "u1")?;
                let song = repos::create(tx, alice.id, "song", repos::Visibility::Public, "u2")?;
                Ok::<_, crate::db::Error>((alice.id, bob.id, secret, song))
            })
            .unwrap();
        (dir, db, ids.0, ids.1, ids.2, ids.3)
    }

    #[test]
    fn single_block_objects_follow_their_repos() {
        let (_dir, db, alice, bob, secret, song) = fixture();
        let small = id(1);
        db.write_blocking(|tx| {
            put_object(tx, &small, 10, None, false)?;
            add_repo_object(tx, secret, &small)?;
            Ok::<_, crate::db::Error>(())
        })
        .unwrap();
        let check = |owner: Option<i64>| {
            db.read_blocking(|c| match owner {
                None => public_block(c, &small),
                Some(o) => owner_may_read(c, &small, o),
            })
            .unwrap()
        };
        assert!(!check(None), "only in a private repo");
        assert!(check(Some(alice)), "its owner may read it");
        assert!(!check(Some(bob)));
        db.write_blocking(|tx| add_repo_object(tx, song, &small).map(|_| ()))
            .unwrap();
        assert!(check(None), "now also in a public repo");
        let roots = db.read_blocking(|c| public_roots(c, None, 10)).unwrap();
        assert_eq!(roots, vec![(small, None)]);
    }

    #[test]
    fn tree_blocks_follow_their_object_and_paging_works() {
        let (_dir, db, _alice, _bob, secret, song) = fixture();
        let (big, leaf, node) = (id(2), id(3), id(4));
        let root = vec![1, 0x70, 0x12, 0x20];
        db.write_blocking(|tx| {
            put_object(tx, &big, 3 << 20, Some(&root), false)?;
            add_object_blocks(tx, &big, [&node, &leaf, &leaf])?;
            add_repo_object(tx, secret, &big)?;
            Ok::<_, crate::db::Error>(())
        })
        .unwrap();
        for d in [&leaf, &node] {
            assert!(!db.read_blocking(|c| public_block(c, d)).unwrap());
        }
        // The object id of a tree is not a block: never public by itself.
        db.write_blocking(|tx| add_repo_object(tx, song, &big).map(|_| ()))
            .unwrap();
        for d in [&leaf, &node] {
            assert!(db.read_blocking(|c| public_block(c, d)).unwrap());
        }
        assert!(!db.read_blocking(|c| public_block(c, &big)).unwrap());
        assert!(!db.read_blocking(|c| public_block(c, &id(9))).unwrap());

        // Paging: three public objects, two per page.
        db.write_blocking(|tx| {
            for n in [5, 6] {
                put_object(tx, &id(n), 1, None, false)?;
                add_repo_object(tx, song, &id(n))?;
            }
            Ok::<_, crate::db::Error>(())
        })
        .unwrap();
        let first = db.read_blocking(|c| public_roots(c, None, 2)).unwrap();
        assert_eq!(first, vec![(big, Some(root.clone())), (id(5), None)]);
        let next = db
            .read_blocking(|c| public_roots(c, Some(&id(5)), 2))
            .unwrap();
        assert_eq!(next, vec![(id(6), None)]);
    }

    #[test]
    fn blocks_the_hub_published_are_public() {
        let (_dir, db, ..) = fixture();
        let index = id(7);
        assert!(!db.read_blocking(|c| public_block(c, &index)).unwrap());
        db.write_blocking(|tx| crate::db::published::publish(tx, &index, "index"))
            .unwrap();
        assert!(db.read_blocking(|c| public_block(c, &index)).unwrap());
        assert!(
            db.read_blocking(|c| public_roots(c, None, 10))
                .unwrap()
                .is_empty(),
            "published blocks are not objects"
        );
    }

    #[test]
    fn the_visibility_query_uses_indexes() {
        let (_dir, db, ..) = fixture();
        let plan: Vec<String> = db
            .read_blocking(|c| {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {BLOCK_VISIBLE}"))?;
                let rows = st.query_map(params![&[0u8; 32][..], None::<i64>], |r| {
                    r.get::<_, String>(3)
                })?;
                Ok::<_, crate::db::Error>(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap();
        let text = plan.join("\n");
        assert!(!text.contains("SCAN ro"), "{text}");
        assert!(!text.contains("SCAN object_blocks"), "{text}");
        assert!(text.contains("repo_objects_by_object"), "{text}");
        for table in ["rc", "rs", "d", "ref_states"] {
            assert!(!text.contains(&format!("SCAN {table}")), "{text}");
        }
        assert!(text.contains("repo_commits_by_commit"), "{text}");
        assert!(text.contains("repo_snapshots_by_snapshot"), "{text}");
        assert!(text.contains("ref_states_by_digest"), "{text}");
    }

    #[test]
    fn backfill_marker_is_set_by_the_migration_and_cleared_once() {
        let (_dir, db, ..) = fixture();
        assert!(
            db.read_blocking(|c| backfill_pending(c, OBJECT_BLOCKS_BACKFILL))
                .unwrap()
        );
        db.write_blocking(|tx| backfill_done(tx, OBJECT_BLOCKS_BACKFILL))
            .unwrap();
        assert!(
            !db.read_blocking(|c| backfill_pending(c, OBJECT_BLOCKS_BACKFILL))
                .unwrap()
        );
    }
}
