//! Users' Ed25519 keys as this hub knows them, and the cache of the on-chain key registry.

use rusqlite::{Connection, OptionalExtension, params};

use super::users::User;
use super::{Result, now};

/// Records that `user_id` signs in with `key` (and its bundle, when sent). Returns false when
/// the key already belongs to another user of this hub.
pub fn add_user_key(
    conn: &Connection,
    user_id: i64,
    key: &[u8; 32],
    bundle: Option<&[u8]>,
) -> Result<bool> {
    if let Some(owner) = owner_of_key(conn, key)? {
        if owner != user_id {
            return Ok(false);
        }
        if let Some(b) = bundle {
            conn.execute(
                "UPDATE user_keys SET bundle = ?2 WHERE key = ?1",
                params![&key[..], b],
            )?;
        }
        return Ok(true);
    }
    conn.execute(
        "INSERT INTO user_keys (key, user_id, bundle, added_at) VALUES (?1, ?2, ?3, ?4)",
        params![&key[..], user_id, bundle, now()],
    )?;
    Ok(true)
}

fn owner_of_key(conn: &Connection, key: &[u8; 32]) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT user_id FROM user_keys WHERE key = ?1")?
        .query_row([&key[..]], |r| r.get(0))
        .optional()?)
}

/// The user who signs in with `key`.
pub fn user_of_key(conn: &Connection, key: &[u8; 32]) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.created_at FROM user_keys k JOIN users u ON u.id = k.user_id
             WHERE k.key = ?1",
        )?
        .query_row([&key[..]], |r| {
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                key: Some(*key),
            })
        })
        .optional()?)
}

/// Every key `user_id` has signed in with, oldest first.
pub fn keys_of(conn: &Connection, user_id: i64) -> Result<Vec<[u8; 32]>> {
    let mut stmt =
        conn.prepare_cached("SELECT key FROM user_keys WHERE user_id = ?1 ORDER BY added_at, key")?;
    let rows = stmt.query_map([user_id], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for k in rows {
        if let Ok(k) = <[u8; 32]>::try_from(k?) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Users with at least one key: the handles the hub refreshes from the chain at start.
pub fn users_with_keys(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT u.name FROM user_keys k JOIN users u ON u.id = k.user_id ORDER BY u.name",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A handle's cached chain record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedHandle {
    pub handle: String,
    pub handle_hash: [u8; 32],
    pub registered: bool,
    pub owner: Option<String>,
    pub key: Option<[u8; 32]>,
    pub bundle_cid: Option<Vec<u8>>,
    pub nonce: Option<u64>,
    pub rotation: Option<String>,
    pub checked_block: u64,
    pub checked_at: i64,
}

/// What the chain said about one key of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedKey {
    /// The key was registered for this handle at some point.
    pub belongs: bool,
    /// Unix seconds; 0 when not revoked.
    pub revoked_at: u64,
}

pub fn handle(conn: &Connection, handle: &str) -> Result<Option<CachedHandle>> {
    Ok(conn
        .prepare_cached(
            "SELECT handle, handle_hash, registered, owner, key, bundle_cid, nonce, rotation,
                    checked_block, checked_at
             FROM chain_handles WHERE handle = ?1",
        )?
        .query_row([handle], |r| {
            let hash: Vec<u8> = r.get(1)?;
            let key: Option<Vec<u8>> = r.get(4)?;
            Ok(CachedHandle {
                handle: r.get(0)?,
                handle_hash: <[u8; 32]>::try_from(hash).unwrap_or_default(),
                registered: r.get(2)?,
                owner: r.get(3)?,
                key: key.and_then(|k| <[u8; 32]>::try_from(k).ok()),
                bundle_cid: r.get(5)?,
                nonce: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                rotation: r.get(7)?,
                checked_block: r.get::<_, i64>(8)? as u64,
                checked_at: r.get(9)?,
            })
        })
        .optional()?)
}

pub fn key(conn: &Connection, handle_hash: &[u8; 32], key: &[u8; 32]) -> Result<Option<CachedKey>> {
    Ok(conn
        .prepare_cached(
            "SELECT belongs, revoked_at FROM chain_keys WHERE handle_hash = ?1 AND key = ?2",
        )?
        .query_row(params![&handle_hash[..], &key[..]], |r| {
            Ok(CachedKey {
                belongs: r.get(0)?,
                revoked_at: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()?)
}

/// Replaces a handle's cached record and key verdicts.
pub fn put(conn: &Connection, h: &CachedHandle, keys: &[([u8; 32], CachedKey)]) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO chain_handles
           (handle, handle_hash, registered, owner, key, bundle_cid, nonce, rotation, checked_block, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            h.handle,
            &h.handle_hash[..],
            h.registered,
            h.owner,
            h.key.as_ref().map(|k| &k[..]),
            h.bundle_cid,
            h.nonce.map(|n| n as i64),
            h.rotation,
            h.checked_block as i64,
            h.checked_at,
        ],
    )?;
    for (k, v) in keys {
        conn.execute(
            "INSERT OR REPLACE INTO chain_keys (handle_hash, key, belongs, revoked_at) VALUES (?1, ?2, ?3, ?4)",
            params![&h.handle_hash[..], &k[..], v.belongs, v.revoked_at as i64],
        )?;
    }
    Ok(())
}

/// Marks the cached handles with these hashes stale (a registry event named them); returns
/// their handles.
pub fn invalidate(conn: &Connection, hashes: &[[u8; 32]]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for h in hashes {
        let name: Option<String> = conn
            .prepare_cached("SELECT handle FROM chain_handles WHERE handle_hash = ?1")?
            .query_row([&h[..]], |r| r.get(0))
            .optional()?;
        if let Some(name) = name {
            conn.execute(
                "UPDATE chain_handles SET checked_at = 0 WHERE handle_hash = ?1",
                [&h[..]],
            )?;
            out.push(name);
        }
    }
    Ok(out)
}

/// The last block whose events were followed.
pub fn followed_block(conn: &Connection) -> Result<Option<u64>> {
    Ok(conn
        .query_row("SELECT block FROM chain_follow WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|b| b as u64))
}

pub fn set_followed_block(conn: &Connection, block: u64) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO chain_follow (id, block) VALUES (1, ?1)",
        [block as i64],
    )?;
    Ok(())
}

/// Forgets everything learnt from the chain (it is refilled on demand and at start).
pub fn wipe_cache(conn: &Connection) -> Result<usize> {
    let n = conn.execute("DELETE FROM chain_handles", [])?;
    conn.execute("DELETE FROM chain_keys", [])?;
    conn.execute("DELETE FROM chain_follow", [])?;
    Ok(n)
}
