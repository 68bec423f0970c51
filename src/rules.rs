//! The hub's rules that need nothing else: who sees a repo, what a user or repo may be
//! called, how large requests and answers may be. Pure, and used by the configuration (which
//! validates settings against them), the database rows, the hub and the web forms alike.

/// A name that breaks the naming rules; the message says which rule, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

/// Who may see a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// Limits a hub applies to requests and answers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes (a push/objects batch of stems can be hundreds of MiB).
    pub max_body: u64,
    /// Largest fetch answer. The Muse CLI refuses answers over 64 MiB, so a larger answer is
    /// refused with an explanation instead of being sent and failing on the client.
    pub max_fetch_answer: u64,
}

/// Repo slugs are URL path segments: letters, digits, `-`, `_`, `.`; not starting with `.`.
pub fn check_slug(slug: &str) -> Result<(), NameError> {
    let ok = !slug.is_empty()
        && slug.len() <= 100
        && !slug.starts_with('.')
        && slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "repository name {slug:?} may only use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// Names the hub's own pages use as the first path segment; a user called `node` would
/// have a page nobody could reach.
const RESERVED_NAMES: &[&str] = &[
    "api", "assets", "ca.crt", "connect", "explore", "health", "ipfs", "ipns", "login", "logout",
    "metrics", "new", "node", "o", "peers", "settings",
];

/// User names follow the same rule as slugs (they are the first path segment), and may not
/// be one of the hub's own page names.
pub fn check_user_name(name: &str) -> Result<(), NameError> {
    check_slug(name).map_err(|_| {
        NameError(format!(
            "user name {name:?} may only use letters, digits, '-', '_' and '.'"
        ))
    })?;
    if RESERVED_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(NameError(format!(
            "{name:?} is the name of one of the hub's pages; pick another user name"
        )));
    }
    Ok(())
}
