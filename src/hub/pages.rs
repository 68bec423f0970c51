//! What the web layer asks beyond one repo: lists of repos (only those the caller may read),
//! users, sign-in sessions and tokens, followed hubs, and the figures of the node page. The
//! web layer has no database handle; these are its questions, each one query or transaction.

use super::{Caller, Error, Hub, Readable, Result, is_owner, new_uuid};
use crate::cids::Id;
use crate::db::peers::{self, Peer, Subscriber};
use crate::db::repos::{self, Repo, Visibility};
use crate::db::sessions::{self, Session};
use crate::db::users::{self, TokenInfo, User};
use crate::db::{self, identities};
use crate::storage::ByteStream;

impl Hub {
    /// The repos the caller may read (public ones and the caller's own), of one owner or all.
    pub async fn repos_visible_to(
        &self,
        caller: &Caller,
        owner: Option<&str>,
    ) -> Result<Vec<Readable<Repo>>> {
        let owner = owner.map(str::to_owned);
        let list = self
            .db
            .read(move |c| repos::list(c, owner.as_deref()))
            .await?;
        Ok(list
            .into_iter()
            .filter(|r| r.visibility == Visibility::Public || is_owner(caller, r))
            .map(Readable::grant)
            .collect())
    }

    /// How many repos this hub holds, private ones included (the node page's figure).
    pub async fn repo_count(&self) -> Result<usize> {
        Ok(self.db.read(|c| repos::list(c, None)).await?.len())
    }

    /// Objects, blocks and block bytes stored.
    pub async fn counts(&self) -> Result<(u64, u64, u64)> {
        Ok(self.db.read(db::content::counts).await?)
    }

    /// Read connections the database has opened (a metric).
    pub fn db_readers_opened(&self) -> u64 {
        self.db.readers_opened()
    }

    pub async fn user_named(&self, name: &str) -> Result<Option<User>> {
        let n = name.to_owned();
        Ok(self.db.read(move |c| users::by_name(c, &n)).await?)
    }

    /// A user's Ed25519 keys.
    pub async fn keys_of(&self, user: &User) -> Result<Vec<[u8; 32]>> {
        let uid = user.id;
        Ok(self.db.read(move |c| identities::keys_of(c, uid)).await?)
    }

    /// Creates one of `user`'s repos from the UI; false when the name is taken.
    pub async fn create_repo(&self, user: &User, slug: &str, vis: Visibility) -> Result<bool> {
        super::check_slug(slug)?;
        let (uid, owner, s) = (user.id, user.name.clone(), slug.to_owned());
        Ok(self
            .db
            .write(move |tx| {
                if repos::get(tx, &owner, &s)?.is_some() {
                    return Ok::<_, db::Error>(false);
                }
                repos::create(tx, uid, &s, vis, &new_uuid())?;
                Ok(true)
            })
            .await?)
    }

    /// Changes who sees a repo. Only its owner may, replicas included (this changes what this
    /// hub shows, not the repo's content).
    pub async fn set_visibility(
        &self,
        repo: &Readable<Repo>,
        by: &User,
        vis: Visibility,
    ) -> Result<()> {
        if repo.owner_id != by.id {
            return Err(Error::NotPermitted(format!(
                "Only {} can change who sees {}/{}.",
                repo.owner, repo.owner, repo.slug
            )));
        }
        let id = repo.id;
        self.db
            .write(move |tx| repos::set_visibility(tx, id, vis))
            .await?;
        Ok(())
    }

    /// The hubs this hub follows.
    pub async fn peers(&self) -> Result<Vec<Peer>> {
        Ok(self.db.read(peers::list).await?)
    }

    /// The followed hubs that have this peer id.
    pub async fn peers_with_id(&self, peer_id: &str) -> Result<Vec<Peer>> {
        let p = peer_id.to_owned();
        Ok(self.db.read(move |c| peers::by_peer_id(c, &p)).await?)
    }

    /// Records a hub that asks for notices; false when there are too many subscribers.
    pub async fn add_subscriber(&self, sub: Subscriber) -> Result<bool> {
        Ok(self.db.write(move |tx| peers::subscribe(tx, &sub)).await?)
    }

    /// A sign-in session by the hash of its cookie.
    pub async fn session(&self, hash: [u8; 32]) -> Result<Option<Session>> {
        Ok(self.db.read(move |c| sessions::session(c, &hash)).await?)
    }

    /// Notes that a session was used (it expires later).
    pub async fn touch_session(&self, hash: [u8; 32]) -> Result<()> {
        Ok(self
            .db
            .write(move |tx| sessions::touch_session(tx, &hash))
            .await?)
    }

    /// The user a login link is for, while it is unused and unexpired.
    pub async fn login_link_user(&self, link: [u8; 32]) -> Result<Option<User>> {
        Ok(self
            .db
            .read(move |c| sessions::login_link_user(c, &link))
            .await?)
    }

    /// Uses up a login link and starts a session in its place (ending `previous`, the
    /// browser's old session). `None` when the link is gone.
    pub async fn start_session(
        &self,
        link: [u8; 32],
        previous: Option<[u8; 32]>,
        session: [u8; 32],
        csrf_secret: [u8; 32],
        expires_at: i64,
    ) -> Result<Option<User>> {
        Ok(self
            .db
            .write(move |tx| {
                let Some(user) = sessions::consume_login_link(tx, &link)? else {
                    return Ok::<_, db::Error>(None);
                };
                if let Some(old) = previous {
                    sessions::delete_session(tx, &old)?;
                }
                sessions::purge_expired(tx)?;
                sessions::create_session(tx, user.id, &session, &csrf_secret, expires_at)?;
                Ok(Some(user))
            })
            .await?)
    }

    pub async fn end_session(&self, hash: [u8; 32]) -> Result<()> {
        self.db
            .write(move |tx| sessions::delete_session(tx, &hash))
            .await?;
        Ok(())
    }

    /// A user's tokens.
    pub async fn tokens_of(&self, user: &User) -> Result<Vec<TokenInfo>> {
        let name = user.name.clone();
        Ok(self
            .db
            .read(move |c| users::list_tokens(c, Some(&name)))
            .await?)
    }

    /// Adds a token (its hash) for `user`.
    pub async fn add_token(
        &self,
        user: &User,
        hash: [u8; 32],
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let (uid, l) = (user.id, label.to_owned());
        self.db
            .write(move |tx| users::add_token(tx, uid, &hash, &l, expires_at))
            .await?;
        Ok(())
    }

    /// Revokes one of `user`'s tokens; false when it has no such active token.
    pub async fn revoke_token_of(&self, user: &User, token: i64) -> Result<bool> {
        let uid = user.id;
        Ok(self
            .db
            .write(move |tx| sessions::revoke_token_of(tx, uid, token))
            .await?)
    }

    /// Whether a block belongs to some object here, of any repo (the gateway never asks the
    /// network for those: a private object's block stays private).
    pub async fn is_object_block(&self, digest: Id) -> Result<bool> {
        Ok(self
            .db
            .read(move |c| db::published::in_any_object(c, &digest))
            .await?)
    }

    /// Bytes `start..=end` of the UnixFS file whose root node is the public dag-pb block
    /// `root` (sha-256 `digest`, `size` bytes of content). Every tree holding a node holds the
    /// node's whole subtree, so the blocks read are public with their root.
    pub fn public_file_range(
        &self,
        digest: Id,
        root: &cid::Cid,
        size: u64,
        start: u64,
        end: u64,
    ) -> ByteStream {
        let row = db::content::ObjectRow {
            size,
            root: Some(root.to_bytes()),
            whole: false,
        };
        self.store.object_range_stream(digest, row, start, end)
    }
}
