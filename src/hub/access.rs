//! Proof of access, as types. A [`Readable`] or [`Writable`] wraps a value (a repo) the caller
//! was allowed to read or write; only [`super::Hub::repo_for_read`] and
//! [`super::Hub::repo_for_write`] make one, and every hub method that reads or changes a
//! repo's content takes one. So a handler that forgets the visibility check does not compile:
//!
//! ```compile_fail
//! # async fn handler(hub: &musehub::hub::Hub, repo: musehub::db::repos::Repo) {
//! // A bare row from the database is not proof that the caller may read it.
//! let refs = hub.refs(&repo).await;
//! # }
//! ```
//!
//! ```compile_fail
//! # fn forge(repo: musehub::db::repos::Repo) {
//! // Nor can code outside the hub make the proof itself.
//! let proof = musehub::hub::Readable(repo);
//! # }
//! ```
//!
//! ```
//! # async fn handler(hub: &musehub::hub::Hub, caller: musehub::hub::Caller) -> musehub::hub::Result<()> {
//! let repo = hub.repo_for_read("ada", "songs", &caller).await?;
//! let refs = hub.refs(&repo).await?;
//! # Ok(()) }
//! ```

use std::ops::Deref;

/// A value the caller may read. Made only by the hub's access checks.
#[derive(Debug, Clone)]
pub struct Readable<T>(T);

/// A value the caller may change (and so also read). Made only by the hub's access checks.
#[derive(Debug, Clone)]
pub struct Writable<T>(T);

impl<T> Readable<T> {
    /// Only the hub grants access: the field is private to this module's parent.
    pub(super) fn grant(value: T) -> Self {
        Readable(value)
    }
}

impl<T> Writable<T> {
    pub(super) fn grant(value: T) -> Self {
        Writable(value)
    }
}

impl<T: Clone> Writable<T> {
    /// Whoever may write a repo may read it.
    pub fn readable(&self) -> Readable<T> {
        Readable(self.0.clone())
    }
}

impl<T> Deref for Readable<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Deref for Writable<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
