//! Web sign-in: one-time login links and browser sessions, plus the token query the
//! settings page needs. Link tokens and session ids are stored as their SHA-256 only.

use rusqlite::{Connection, OptionalExtension, params};

use super::users::User;
use super::{Result, now, unix_now};

/// Records a login link for `user_id`, valid until `expires_at` (unix seconds).
pub fn add_login_link(
    conn: &Connection,
    user_id: i64,
    hash: &[u8; 32],
    expires_at: i64,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO login_links (user_id, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![user_id, &hash[..], now(), expires_at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Makes a one-time login link for `user_id`, valid until `expires_at` (unix seconds), and
/// returns its secret (shown once; only its hash is stored). Expired links are purged.
pub fn issue_login_link(conn: &Connection, user_id: i64, expires_at: i64) -> Result<String> {
    let token = hex::encode(crate::auth::random_bytes::<32>());
    purge_expired(conn)?;
    add_login_link(conn, user_id, &crate::auth::hash_token(&token), expires_at)?;
    Ok(token)
}

/// The user a live (unused, unexpired) login link signs in, without using it up.
pub fn login_link_user(conn: &Connection, hash: &[u8; 32]) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.created_at FROM login_links l JOIN users u ON u.id = l.user_id
             WHERE l.hash = ?1 AND l.used_at IS NULL AND l.expires_at > ?2",
        )?
        .query_row(params![&hash[..], unix_now()], user_row)
        .optional()?)
}

/// Whether `user_id` ever signed in with a login link.
pub fn used_login_link(conn: &Connection, user_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM login_links WHERE user_id = ?1 AND used_at IS NOT NULL)",
        )?
        .query_row([user_id], |r| r.get(0))?)
}

/// Uses up a live login link and returns its user; `None` when the link is unknown, expired
/// or already used. One statement, so two concurrent requests cannot both consume it.
pub fn consume_login_link(conn: &Connection, hash: &[u8; 32]) -> Result<Option<User>> {
    let user_id: Option<i64> = conn
        .prepare_cached(
            "UPDATE login_links SET used_at = ?3
             WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING user_id",
        )?
        .query_row(params![&hash[..], unix_now(), now()], |r| r.get(0))
        .optional()?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT id, name, created_at FROM users WHERE id = ?1")?
        .query_row([user_id], user_row)
        .optional()?)
}

/// Starts a session for `user_id`; `hash` is the SHA-256 of the cookie value.
pub fn create_session(
    conn: &Connection,
    user_id: i64,
    hash: &[u8; 32],
    csrf_secret: &[u8; 32],
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO sessions (user_id, hash, csrf_secret, created_at, expires_at, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user_id,
            &hash[..],
            &csrf_secret[..],
            now(),
            expires_at,
            unix_now()
        ],
    )?;
    Ok(())
}

/// A live session as the web layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf_secret: Vec<u8>,
    /// Unix seconds of the last recorded visit.
    pub last_seen: i64,
}

/// The unexpired session whose cookie hashes to `hash`.
pub fn session(conn: &Connection, hash: &[u8; 32]) -> Result<Option<Session>> {
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.created_at, s.csrf_secret, s.last_seen
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.hash = ?1 AND s.expires_at > ?2",
        )?
        .query_row(params![&hash[..], unix_now()], |r| {
            Ok(Session {
                user: user_row(r)?,
                csrf_secret: r.get(3)?,
                last_seen: r.get(4)?,
            })
        })
        .optional()?)
}

/// Records a visit of the session.
pub fn touch_session(conn: &Connection, hash: &[u8; 32]) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?2 WHERE hash = ?1",
        params![&hash[..], unix_now()],
    )?;
    Ok(())
}

/// Ends a session; false when there was none.
pub fn delete_session(conn: &Connection, hash: &[u8; 32]) -> Result<bool> {
    Ok(conn.execute("DELETE FROM sessions WHERE hash = ?1", [&hash[..]])? == 1)
}

/// Forgets expired sessions and login links that can no longer be used (expired, or used
/// more than a day ago). Returns how many rows went.
pub fn purge_expired(conn: &Connection) -> Result<usize> {
    let t = unix_now();
    let sessions = conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [t])?;
    let links = conn.execute(
        "DELETE FROM login_links WHERE expires_at <= ?1 - 86400",
        [t],
    )?;
    Ok(sessions + links)
}

/// Revokes one of `user_id`'s own live tokens; false when that user has no such live token
/// (someone else's token is never touched).
pub fn revoke_token_of(conn: &Connection, user_id: i64, token_id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![token_id, user_id, now()],
    )?;
    Ok(n == 1)
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Error, users};

    fn open() -> (tempfile::TempDir, Db, User, User) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).unwrap();
        let (a, b) = db
            .write_blocking(|tx| {
                Ok::<_, Error>((users::create(tx, "alice")?, users::create(tx, "bob")?))
            })
            .unwrap();
        (dir, db, a, b)
    }

    #[test]
    fn a_login_link_is_used_once_and_only_while_fresh() {
        let (_d, db, alice, _) = open();
        let (live, old) = ([1u8; 32], [2u8; 32]);
        db.write_blocking(|tx| {
            add_login_link(tx, alice.id, &live, unix_now() + 600)?;
            add_login_link(tx, alice.id, &old, unix_now() - 1)
        })
        .unwrap();
        let peek = db.read_blocking(|c| login_link_user(c, &live)).unwrap();
        assert_eq!(peek.as_ref(), Some(&alice), "looking does not use it up");
        assert!(
            db.read_blocking(|c| login_link_user(c, &old))
                .unwrap()
                .is_none()
        );
        let used = db
            .write_blocking(|tx| consume_login_link(tx, &live))
            .unwrap();
        assert_eq!(used, Some(alice));
        assert!(
            db.write_blocking(|tx| consume_login_link(tx, &live))
                .unwrap()
                .is_none()
        );
        assert!(
            db.write_blocking(|tx| consume_login_link(tx, &old))
                .unwrap()
                .is_none()
        );
        assert!(
            db.write_blocking(|tx| consume_login_link(tx, &[3u8; 32]))
                .unwrap()
                .is_none()
        );
        assert!(
            db.read_blocking(|c| login_link_user(c, &live))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sessions_expire_and_end() {
        let (_d, db, alice, _) = open();
        let (live, old) = ([4u8; 32], [5u8; 32]);
        db.write_blocking(|tx| {
            create_session(tx, alice.id, &live, &[9u8; 32], unix_now() + 60)?;
            create_session(tx, alice.id, &old, &[9u8; 32], unix_now() - 1)
        })
        .unwrap();
        let s = db.read_blocking(|c| session(c, &live)).unwrap().unwrap();
        assert_eq!(s.user, alice);
        assert_eq!(s.csrf_secret, vec![9u8; 32]);
        assert!(db.read_blocking(|c| session(c, &old)).unwrap().is_none());
        assert_eq!(db.write_blocking(|tx| purge_expired(tx)).unwrap(), 1);
        db.write_blocking(|tx| touch_session(tx, &live)).unwrap();
        assert!(db.write_blocking(|tx| delete_session(tx, &live)).unwrap());
        assert!(!db.write_blocking(|tx| delete_session(tx, &live)).unwrap());
        assert!(db.read_blocking(|c| session(c, &live)).unwrap().is_none());
    }

    #[test]
    fn only_the_owner_revokes_a_token() {
        let (_d, db, alice, bob) = open();
        let id = db
            .write_blocking(|tx| users::add_token(tx, alice.id, &[7u8; 32], "laptop", None))
            .unwrap();
        assert!(
            !db.write_blocking(|tx| revoke_token_of(tx, bob.id, id))
                .unwrap()
        );
        assert!(
            db.read_blocking(|c| users::by_token(c, &[7u8; 32]))
                .unwrap()
                .is_some()
        );
        assert!(
            db.write_blocking(|tx| revoke_token_of(tx, alice.id, id))
                .unwrap()
        );
        assert!(
            !db.write_blocking(|tx| revoke_token_of(tx, alice.id, id))
                .unwrap()
        );
        assert!(
            db.read_blocking(|c| users::by_token(c, &[7u8; 32]))
                .unwrap()
                .is_none()
        );
    }
}
