//! Identities on the hub: which Ed25519 key a user signs in with, whether the chain still
//! stands behind that key, passwordless login, and signed requests.
//!
//! The on-chain registry is the authority and this hub only a cache of it (chain-design
//! §4.4): a key is checked against the cached record while it is younger than the TTL, and
//! refreshed with one `eth_call` otherwise. A background task follows the registry's events
//! and invalidates the handles they name. When the chain cannot be reached and the cache is
//! stale, writes are refused (fail closed); reads go on with the stale answer, logged. Without
//! a configured chain, keys are this hub's own knowledge and shown as "not anchored".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use libp2p::identity::ed25519;

use super::{Error, Hub, Result};
use crate::chain::{self, Registry, RotationKind};
use crate::db::identities::{self as cache, CachedHandle, CachedKey};
use crate::db::unix_now;
use crate::db::users::{self, User};
use crate::httpsig;
use crate::identity::KeyBundle;

/// How long a login challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Outstanding challenges kept at most (the oldest are dropped first).
const MAX_CHALLENGES: usize = 10_000;

/// Identity state shared by every clone of the hub.
#[derive(Debug)]
pub struct Identities {
    registry: Option<Registry>,
    ttl: Duration,
    allow_unanchored: bool,
    challenges: Mutex<HashMap<String, (String, i64)>>,
    /// Nonces of signed requests already seen.
    pub replay: httpsig::ReplayCache,
}

impl Identities {
    pub fn new(registry: Option<Registry>, ttl: Duration, allow_unanchored: bool) -> Identities {
        Identities {
            registry,
            ttl,
            allow_unanchored,
            challenges: Mutex::new(HashMap::new()),
            replay: httpsig::ReplayCache::default(),
        }
    }

    /// No chain: keys are known to this hub only.
    pub fn local() -> Identities {
        Identities::new(None, crate::config::DEFAULT_CACHE_TTL, true)
    }

    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }
}

/// What an identity is used for: a write needs a fresh answer from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Read,
    Write,
}

/// What the chain (through the cache) says about a handle's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The handle's current key on chain.
    Anchored(Option<RotationKind>),
    /// The chain has no record of the handle (or this hub has no chain).
    Unanchored,
    /// Once the handle's key, replaced by a newer one.
    Superseded,
    /// Revoked on chain at this unix time.
    Revoked(u64),
    /// Never a key of this handle on chain.
    Foreign,
}

impl KeyState {
    fn of(h: &CachedHandle, k: Option<CachedKey>, key: &[u8; 32]) -> KeyState {
        if !h.registered {
            return KeyState::Unanchored;
        }
        match k {
            Some(k) if k.revoked_at > 0 => KeyState::Revoked(k.revoked_at),
            _ if h.key.as_ref() == Some(key) => {
                KeyState::Anchored(h.rotation.as_deref().and_then(RotationKind::parse))
            }
            Some(k) if k.belongs => KeyState::Superseded,
            _ => KeyState::Foreign,
        }
    }
}

/// A handle's anchoring state, for its user page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchoring {
    /// No chain configured on this hub.
    NoChain,
    /// The user's key is the handle's current key on chain.
    Anchored {
        key: [u8; 32],
        rotation: Option<RotationKind>,
        owner: String,
        nonce: u64,
    },
    /// The hub knows a key for the user, but the chain has no record of the handle yet.
    Pending,
    /// The handle's current key was revoked and not yet replaced.
    Revoked,
    /// The chain's key is not one this user signed in with here (yet).
    Elsewhere { key: [u8; 32] },
    /// The chain could not be asked and nothing is cached.
    Unknown(String),
}

impl Hub {
    /// The state of `key` for `handle`: from the cache while fresh, else from the chain.
    pub async fn key_state(&self, handle: &str, key: &[u8; 32], purpose: Use) -> Result<KeyState> {
        let Some(registry) = self.identity.registry.clone() else {
            return Ok(KeyState::Unanchored);
        };
        let (h, k) = (handle.to_owned(), *key);
        let cached = self
            .db
            .read(move |c| {
                let Some(row) = cache::handle(c, &h)? else {
                    return Ok(None);
                };
                let key = cache::key(c, &row.handle_hash, &k)?;
                Ok::<_, crate::db::Error>(Some((row, key)))
            })
            .await?;
        let fresh =
            |row: &CachedHandle| unix_now() - row.checked_at < self.identity.ttl.as_secs() as i64;
        if let Some((row, Some(k))) = &cached
            && fresh(row)
        {
            return Ok(KeyState::of(row, Some(*k), key));
        }
        match self.refresh_handle(&registry, handle, &[*key]).await {
            Ok((row, keys)) => {
                let k = keys.iter().find(|(x, _)| x == key).map(|(_, v)| *v);
                Ok(KeyState::of(&row, k, key))
            }
            Err(e @ chain::Error::Unreachable { .. }) => match (cached, purpose) {
                (Some((row, k)), Use::Read) => {
                    tracing::warn!(target: "musehub::identity", handle, error = %e, "chain unreachable: using the stale cached key state for a read");
                    Ok(KeyState::of(&row, k, key))
                }
                _ => {
                    tracing::warn!(target: "musehub::identity", handle, error = %e, "chain unreachable and no fresh key state: refused");
                    Err(Error::Unavailable(format!(
                        "the key registry cannot be reached to check {handle}'s key, so changes are refused until it answers ({e})"
                    )))
                }
            },
            Err(e) => Err(Error::Unavailable(format!(
                "checking {handle}'s key on chain failed: {e}"
            ))),
        }
    }

    /// Refuses a key the chain does not stand behind, saying why; returns its state
    /// otherwise.
    pub async fn require_key(
        &self,
        handle: &str,
        key: &[u8; 32],
        purpose: Use,
    ) -> Result<KeyState> {
        let state = self.key_state(handle, key, purpose).await?;
        let why = match state {
            KeyState::Anchored(_) => return Ok(state),
            KeyState::Unanchored
                if self.identity.registry.is_none() || self.identity.allow_unanchored =>
            {
                return Ok(state);
            }
            KeyState::Unanchored => format!(
                "{handle}'s key is not anchored on chain yet; run `musehub key anchor --handle {handle}` and try again"
            ),
            KeyState::Superseded => format!(
                "this key of {handle} was replaced by a newer one on chain; run `musehub login` with the new key"
            ),
            KeyState::Revoked(at) => format!(
                "this key of {handle} was revoked on chain at {}",
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(at))
            ),
            KeyState::Foreign => format!("this key does not belong to {handle} on chain"),
        };
        tracing::warn!(target: "musehub::identity", handle, key = %hex::encode(key), reason = %why, "key refused");
        Err(Error::NotSignedIn(why))
    }

    /// Asks the chain about `handle` and `keys` (plus every key the user signed in with),
    /// classifies the latest rotation when the record changed, and stores the answer.
    async fn refresh_handle(
        &self,
        registry: &Registry,
        handle: &str,
        keys: &[[u8; 32]],
    ) -> Result<(CachedHandle, Vec<([u8; 32], CachedKey)>), chain::Error> {
        let h = handle.to_owned();
        let (known, previous) = self
            .db
            .read(move |c| {
                let known = match users::by_name(c, &h)? {
                    Some(u) => cache::keys_of(c, u.id)?,
                    None => Vec::new(),
                };
                Ok::<_, crate::db::Error>((known, cache::handle(c, &h)?))
            })
            .await
            .map_err(|e| chain::Error::Invalid(e.to_string()))?;
        let mut all: Vec<[u8; 32]> = keys.to_vec();
        for k in known {
            if !all.contains(&k) {
                all.push(k);
            }
        }
        let hash = chain::handle_hash(handle);
        let mut verdicts = Vec::new();
        let mut record = None;
        let mut block = 0;
        // One call per key (each answer carries the whole record too). A handle with no
        // known key still gets its record read.
        let probe = if all.is_empty() {
            vec![[0u8; 32]]
        } else {
            all.clone()
        };
        for k in &probe {
            let c = registry.check(handle, *k).await?;
            block = block.max(c.block);
            record = c.record.clone();
            if all.contains(k) {
                verdicts.push((
                    *k,
                    CachedKey {
                        belongs: c.key_handle == hash,
                        revoked_at: c.key_revoked_at,
                    },
                ));
            }
        }
        let rotation = match &record {
            Some(r) if r.nonce > 1 => {
                let unchanged = previous.as_ref().is_some_and(|p| {
                    p.nonce == Some(r.nonce) && p.key == (r.key != [0; 32]).then_some(r.key)
                });
                if unchanged {
                    previous.as_ref().and_then(|p| p.rotation.clone())
                } else {
                    let ep = registry.endpoint();
                    registry
                        .rotations(hash, ep.from_block, block)
                        .await?
                        .last()
                        .map(|rot| {
                            let kind = rot.kind(ep.chain_id, ep.registry, hash);
                            if kind != RotationKind::Normal {
                                tracing::warn!(target: "musehub::identity", handle, kind = kind.as_str(), block = rot.block, "key rotated without a valid signature by the old key");
                            }
                            kind.as_str().to_owned()
                        })
                }
            }
            _ => None,
        };
        let row = CachedHandle {
            handle: handle.to_owned(),
            handle_hash: hash,
            registered: record.is_some(),
            owner: record.as_ref().map(|r| r.owner.to_string()),
            key: record.as_ref().map(|r| r.key).filter(|k| *k != [0; 32]),
            bundle_cid: record.as_ref().map(|r| r.bundle_cid.clone()),
            nonce: record.as_ref().map(|r| r.nonce),
            rotation,
            checked_block: block,
            checked_at: unix_now(),
        };
        let (r2, v2) = (row.clone(), verdicts.clone());
        self.db
            .write(move |tx| cache::put(tx, &r2, &v2))
            .await
            .map_err(|e| chain::Error::Invalid(e.to_string()))?;
        Ok((row, verdicts))
    }

    /// The anchoring state of a user's handle, for the user page.
    pub async fn anchoring(&self, user: &User) -> Result<Anchoring> {
        let Some(registry) = self.identity.registry.clone() else {
            return Ok(Anchoring::NoChain);
        };
        let (uid, name) = (user.id, user.name.clone());
        let (keys, cached) = self
            .db
            .read(move |c| {
                Ok::<_, crate::db::Error>((cache::keys_of(c, uid)?, cache::handle(c, &name)?))
            })
            .await?;
        let row = match cached {
            Some(r) if unix_now() - r.checked_at < self.identity.ttl.as_secs() as i64 => r,
            stale => match self.refresh_handle(&registry, &user.name, &keys).await {
                Ok((r, _)) => r,
                Err(e) => match stale {
                    Some(r) => r,
                    None => return Ok(Anchoring::Unknown(e.to_string())),
                },
            },
        };
        Ok(match (&row.key, row.registered) {
            (_, false) => Anchoring::Pending,
            (None, true) => Anchoring::Revoked,
            (Some(k), true) if keys.contains(k) => Anchoring::Anchored {
                key: *k,
                rotation: row.rotation.as_deref().and_then(RotationKind::parse),
                owner: row.owner.clone().unwrap_or_default(),
                nonce: row.nonce.unwrap_or_default(),
            },
            (Some(k), true) => Anchoring::Elsewhere { key: *k },
        })
    }

    /// Refreshes every handle with keys on this hub (at start, so a wiped cache is refilled
    /// from the chain before anyone asks). Returns how many were refreshed.
    pub async fn refresh_all_identities(&self) -> Result<usize> {
        let Some(registry) = self.identity.registry.clone() else {
            return Ok(0);
        };
        let handles = self.db.read(cache::users_with_keys).await?;
        let mut n = 0;
        for h in &handles {
            match self.refresh_handle(&registry, h, &[]).await {
                Ok(_) => n += 1,
                Err(e) => {
                    tracing::warn!(target: "musehub::identity", handle = %h, error = %e, "could not refresh a key from the chain");
                }
            }
        }
        Ok(n)
    }

    /// One round of following the registry's events: every handle an event names since the
    /// last followed block is refreshed. Returns the handles refreshed.
    pub async fn follow_registry_once(&self) -> Result<Vec<String>> {
        let Some(registry) = self.identity.registry.clone() else {
            return Ok(Vec::new());
        };
        let unavailable = |e: chain::Error| Error::Unavailable(e.to_string());
        let head = registry.block_number().await.map_err(unavailable)?;
        let Some(last) = self.db.read(cache::followed_block).await? else {
            // First run: everything cached so far was read at or before `head`.
            self.db
                .write(move |tx| cache::set_followed_block(tx, head))
                .await?;
            return Ok(Vec::new());
        };
        if head <= last {
            return Ok(Vec::new());
        }
        let hashes = registry
            .changed_handles(last + 1, head)
            .await
            .map_err(unavailable)?;
        let stale = self
            .db
            .write(move |tx| {
                let names = cache::invalidate(tx, &hashes)?;
                cache::set_followed_block(tx, head)?;
                Ok::<_, crate::db::Error>(names)
            })
            .await?;
        for h in &stale {
            tracing::info!(target: "musehub::identity", handle = %h, "registry event: refreshing the cached key state");
            if let Err(e) = self.refresh_handle(&registry, h, &[]).await {
                tracing::warn!(target: "musehub::identity", handle = %h, error = %e, "refresh after a registry event failed; the entry stays stale");
            }
        }
        Ok(stale)
    }

    /// Follows the registry until `stop`: at start every known handle is refreshed, then
    /// events are polled every `every`.
    pub async fn follow_registry(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        if self.identity.registry.is_none() {
            return;
        }
        match self.refresh_all_identities().await {
            Ok(n) => {
                tracing::info!(target: "musehub::identity", handles = n, "key states refreshed from the chain")
            }
            Err(e) => {
                tracing::warn!(target: "musehub::identity", error = %e, "refreshing key states failed")
            }
        }
        loop {
            if let Err(e) = self.follow_registry_once().await {
                tracing::warn!(target: "musehub::identity", error = %e, "following the key registry failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// A fresh login challenge for `handle`: the nonce its signed login request must carry.
    pub fn login_challenge(&self, handle: &str) -> (String, i64) {
        let challenge = hex::encode(crate::auth::random_bytes::<32>());
        let expires = unix_now() + CHALLENGE_TTL.as_secs() as i64;
        let mut map = self
            .identity
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = unix_now();
        map.retain(|_, (_, t)| *t > now);
        if map.len() >= MAX_CHALLENGES
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(challenge.clone(), (handle.to_owned(), expires));
        (challenge, expires)
    }

    /// Spends a challenge: true when it was issued for `handle` and has not expired.
    fn spend_challenge(&self, challenge: &str, handle: &str) -> bool {
        let mut map = self
            .identity
            .challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.remove(challenge) {
            Some((h, t)) => h == handle && t > unix_now(),
            None => false,
        }
    }

    /// Finishes a passwordless login whose signature over the challenge was verified by the
    /// caller ([`crate::web`]): checks the key against the chain, records it for the user
    /// (creating the user when the chain, or on a chain-less hub the first login, vouches for
    /// it) and mints a bearer token bound to the key.
    pub async fn login(&self, req: LoginRequest) -> Result<LoginAnswer> {
        super::check_user_name(&req.handle)?;
        if !self.spend_challenge(&req.challenge, &req.handle) {
            tracing::warn!(target: "musehub::identity", handle = %req.handle, "login with an unknown, used or expired challenge");
            return Err(Error::NotSignedIn(
                "the login challenge is unknown, used or expired; run `musehub login` again".into(),
            ));
        }
        if let Some(b) = &req.bundle {
            let bundle = KeyBundle::decode(b).map_err(|e| Error::Invalid(e.to_string()))?;
            if bundle.public_key != req.key || bundle.handle != req.handle {
                return Err(Error::Invalid(
                    "the key bundle is for another key or handle".into(),
                ));
            }
        }
        let anchored = matches!(
            self.require_key(&req.handle, &req.key, Use::Write).await?,
            KeyState::Anchored(_)
        );
        let token = crate::auth::new_token();
        let hash = crate::auth::hash_token(&token);
        let LoginRequest {
            handle,
            key,
            bundle,
            label,
            bearer_user,
            ..
        } = req;
        let (h, k) = (handle.clone(), key);
        let user = self
            .db
            .write(move |tx| -> Result<User> {
                let user = match users::by_name(tx, &h)? {
                    Some(u) => u,
                    None => {
                        tracing::info!(target: "musehub::identity", handle = %h, "created user at first login");
                        users::create(tx, &h)?
                    }
                };
                let known = cache::keys_of(tx, user.id)?;
                // A key the chain vouches for is always accepted. Without the chain, the
                // first key of a user is trusted on first use, but only for a user the hub
                // has no way to sign in yet (or one the caller proved with its token).
                let trusted = anchored
                    || known.contains(&k)
                    || bearer_user == Some(user.id)
                    || (known.is_empty() && !users::has_tokens(tx, user.id)?);
                if !trusted && !known.is_empty() {
                    return Err(Error::NotPermitted(format!(
                        "this hub knows another key for {h}; sign in with that key, or add this one with `musehub login --token <one of {h}'s tokens>`"
                    )));
                }
                if !trusted {
                    return Err(Error::NotPermitted(format!(
                        "{h} already signs in to this hub with a token; run `musehub login` with --token <one of {h}'s tokens> once to add this key"
                    )));
                }
                if !cache::add_user_key(tx, user.id, &k, bundle.as_deref())? {
                    return Err(Error::Conflict(
                        "this key already belongs to another user of this hub".into(),
                    ));
                }
                users::add_token_for_key(tx, user.id, &hash, &label, None, Some(&k))?;
                Ok(user)
            })
            .await?;
        tracing::info!(target: "musehub::identity", user = %user.name, key = %hex::encode(key), anchored, "signed in with a key");
        Ok(LoginAnswer {
            token,
            user: user.name,
            anchored,
        })
    }

    /// The user behind a signed request's key id (64 hex characters of the Ed25519 key),
    /// with the key checked against the chain.
    pub async fn signer(
        &self,
        keyid: &str,
        purpose: Use,
    ) -> Result<Option<(User, ed25519::PublicKey)>> {
        let Some(key) = hex::decode(keyid)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Ok(None);
        };
        let Ok(public) = ed25519::PublicKey::try_from_bytes(&key) else {
            return Ok(None);
        };
        let Some(user) = self.db.read(move |c| cache::user_of_key(c, &key)).await? else {
            return Ok(None);
        };
        self.require_key(&user.name, &key, purpose).await?;
        Ok(Some((user, public)))
    }
}

/// A login whose signature the web layer verified.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    pub handle: String,
    pub key: [u8; 32],
    pub challenge: String,
    /// The signed key bundle block, when the client sent it.
    pub bundle: Option<Vec<u8>>,
    pub label: String,
    /// The user of a valid bearer token sent with the login (to add a key to an account
    /// that already has tokens).
    pub bearer_user: Option<i64>,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct LoginAnswer {
    pub token: String,
    pub user: String,
    pub anchored: bool,
}
