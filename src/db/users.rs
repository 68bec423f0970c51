//! Users and their bearer tokens. Tokens are stored as the SHA-256 of the secret.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, now, unix_now};

/// A hub user (a musician or a band account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// The Ed25519 key this request was authenticated with: a token minted by `musehub
    /// login`, or a signed request. `None` for admin-made tokens and web sessions.
    pub key: Option<[u8; 32]>,
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

pub fn create(conn: &Connection, name: &str) -> Result<User> {
    let created_at = now();
    conn.execute(
        "INSERT INTO users (name, created_at) VALUES (?1, ?2)",
        params![name, created_at],
    )?;
    Ok(User {
        id: conn.last_insert_rowid(),
        name: name.to_owned(),
        created_at,
        key: None,
    })
}

pub fn by_name(conn: &Connection, name: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached("SELECT id, name, created_at FROM users WHERE name = ?1")?
        .query_row([name], |r| {
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                key: None,
            })
        })
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare("SELECT id, name, created_at FROM users ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(User {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
            key: None,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn add_token(
    conn: &Connection,
    user_id: i64,
    hash: &[u8; 32],
    label: &str,
    expires_at: Option<i64>,
) -> Result<i64> {
    add_token_for_key(conn, user_id, hash, label, expires_at, None)
}

/// Adds a token that lives only as long as `key` is the user's valid key (`musehub login`).
pub fn add_token_for_key(
    conn: &Connection,
    user_id: i64,
    hash: &[u8; 32],
    label: &str,
    expires_at: Option<i64>,
    key: Option<&[u8; 32]>,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO tokens (user_id, hash, label, created_at, expires_at, key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, &hash[..], label, now(), expires_at, key.map(|k| &k[..])],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The user a live token belongs to: not revoked and not expired.
pub fn by_token(conn: &Connection, hash: &[u8; 32]) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.created_at, t.key FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)",
        )?
        .query_row(params![&hash[..], unix_now()], |r| {
            let key: Option<Vec<u8>> = r.get(3)?;
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                key: key.and_then(|k| <[u8; 32]>::try_from(k).ok()),
            })
        })
        .optional()?)
}

pub fn list_tokens(conn: &Connection, user: Option<&str>) -> Result<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, u.name, t.label, t.created_at, t.expires_at, t.revoked_at IS NOT NULL
         FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
    )?;
    let rows = stmt.query_map([user], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            user: r.get(1)?,
            label: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            revoked: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a token by id; false when there is no such live token.
pub fn revoke_token(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now()],
    )?;
    Ok(n == 1)
}

/// Whether the user has any live token (then a first key is not trusted on first use).
pub fn has_tokens(conn: &Connection, user_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM tokens WHERE user_id = ?1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?2) LIMIT 1",
        )?
        .query_row(params![user_id, unix_now()], |_| Ok(()))
        .optional()?
        .is_some())
}
