//! The web UI: server-rendered HTML pages (askama templates in `templates/ui/`, CSS and small
//! scripts in `assets/`, embedded with rust-embed). Every page works without JavaScript.
//!
//! The UI reads through the same [`crate::hub::Hub`] as the wire protocol, so visibility rules
//! are one set: a private repo is invisible (404) to everyone but its owner, in every list and
//! page. Pages are split by area: [`explore`] (home, user, node, connect pages), [`repo`]
//! (repo home, tree, blobs, branches, commits, releases), [`media`] (raw bytes with Range,
//! audio player, MIDI piano roll), [`session`] (sign-in links, cookies, CSRF, owner forms).

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::db::users::User;

pub mod assets;
pub mod explore;
pub mod media;
pub mod peers;
pub mod repo;
pub mod session;

/// The UI's routes. Wire routes win where paths overlap (they are more specific), and
/// `GET /{owner}/{slug}/releases` is shared: see [`wants_html`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(explore::home))
        .route("/assets/{*path}", get(assets::serve))
        .route("/node", get(explore::node))
        .route("/connect", get(explore::connect))
        .route("/peers", get(peers::page))
        .route("/peers/follow", post(peers::follow))
        .route(
            "/login/{token}",
            get(session::login_form).post(session::login),
        )
        .route("/logout", post(session::logout))
        .route("/settings", get(session::settings))
        .route("/setup", get(session::setup))
        .route("/settings/repos", post(session::create_repo))
        .route("/settings/tokens", post(session::create_token))
        .route("/settings/tokens/{id}/revoke", post(session::revoke_token))
        .route("/{owner}", get(explore::user))
        .route("/{owner}/{slug}", get(repo::home))
        .route("/{owner}/{slug}/visibility", post(session::set_visibility))
        .route("/{owner}/{slug}/branches", get(repo::branches))
        .route("/{owner}/{slug}/commits/{*rev}", get(repo::commits))
        .route("/{owner}/{slug}/commit/{id}", get(repo::commit))
        .route("/{owner}/{slug}/tree/{*rest}", get(repo::tree))
        .route("/{owner}/{slug}/blob/{*rest}", get(repo::blob))
        .route("/{owner}/{slug}/raw/{*rest}", get(media::raw))
        .route("/{owner}/{slug}/pianoroll/{*rest}", get(media::pianoroll))
        .route("/{owner}/{slug}/release/{*tag}", get(repo::release))
}

/// Whether a request comes from a browser rather than the Muse CLI (which always sends
/// `Accept: application/x-msgpack, application/json`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// What the layout needs on every page.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The page title (the site name is appended by the layout).
    pub title: String,
    /// The signed-in owner, if any.
    pub viewer: Option<User>,
    /// The CSRF token forms on this page must carry (empty when signed out).
    pub csrf: String,
}

impl Chrome {
    pub fn new(title: impl Into<String>, viewer: Option<User>, csrf: String) -> Self {
        Chrome {
            title: title.into(),
            viewer,
            csrf,
        }
    }

    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}

/// An error shown as a page a person understands.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn not_found(what: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: what.into(),
        }
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: what.into(),
        }
    }

    pub fn forbidden(what: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: what.into(),
        }
    }
}

impl From<crate::hub::Error> for PageError {
    fn from(e: crate::hub::Error) -> Self {
        let status = crate::web::status_of(&e);
        match status {
            StatusCode::NOT_FOUND => PageError::not_found(e.to_string()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PageError::forbidden(e.to_string()),
            s if s.is_client_error() => PageError::bad_request(e.to_string()),
            _ => {
                tracing::error!(target: "musehub::web", error = %e, "page failed");
                PageError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: String::new(),
                }
            }
        }
    }
}

impl From<crate::db::Error> for PageError {
    fn from(e: crate::db::Error) -> Self {
        crate::hub::Error::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Nothing here",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST => "That did not work",
            _ => "Something went wrong on this hub",
        };
        // 500s never show internals; the log has them.
        let message = if self.status.is_server_error() {
            "The hub could not show this page. Its log has the details; try again in a moment."
        } else {
            self.message.as_str()
        };
        let page = ErrorPage {
            chrome: Chrome::new(heading, None, String::new()),
            status: self.status.as_u16(),
            heading,
            message,
        };
        let mut res = html(page);
        *res.status_mut() = self.status;
        res
    }
}

/// Renders a template as an HTML answer (no caching: pages show live state).
pub fn html(t: impl Template) -> Response {
    match t.render() {
        Ok(body) => {
            let mut res = body.into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            res
        }
        Err(e) => {
            tracing::error!(target: "musehub::web", error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Human-readable byte sizes for pages ("3.2 MB").
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `2026-11-24T07:42:00.123456Z` → `2026-11-24 07:42 UTC`.
pub fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_500), "1.5 KB");
        assert_eq!(size(63_600_000), "63.6 MB");
    }
}
