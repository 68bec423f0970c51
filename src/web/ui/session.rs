//! Signing in without passwords (one-time links), sessions, CSRF and the owner's forms.
//!
//! The hub has no passwords. Its operator runs `musehub login-link NAME`, which prints a
//! one-time link valid for a few minutes. `GET /login/{token}` only shows a button (link
//! previews and prefetchers must not use the link up); pressing it (`POST`) consumes the link
//! in one statement and starts a session: a random 32-byte id in the `musehub_session`
//! cookie (`HttpOnly; SameSite=Strict`, `Secure` on https hubs), stored only as its SHA-256.
//!
//! Every form that changes something is a POST carrying a hidden `csrf` field, compared in
//! constant time with the session's token (`hex(sha256(csrf_secret))`); a present `Origin`
//! must be this hub's. A refused form changes nothing and answers a 403 page. No cookie or
//! form crate is used: [`cookie_value`] and [`Form`] are the few lines this needs.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::short_time;
use super::{Chrome, PageError, html};
use crate::db::repos::Visibility;
use crate::db::unix_now;
use crate::db::users::{self, User};
use crate::web::AppState;
use crate::{auth, hub};

/// The session cookie's name.
pub const COOKIE: &str = "musehub_session";

/// How long a session lasts (30 days), in seconds; also the cookie's `Max-Age`.
pub const SESSION_SECS: i64 = 30 * 86_400;

/// A session's `last_seen` is rewritten at most this often (seconds), not on every page.
const TOUCH_EVERY_SECS: i64 = 300;

/// The largest form body read (the hub's forms are a few short fields).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What a refused form (CSRF, foreign origin, ended session) says.
pub const FORM_EXPIRED: &str = "This form has expired; reload the page and try again.";

/// The longest token label accepted, in characters.
const MAX_LABEL_CHARS: usize = 100;

/// The longest token lifetime the form accepts (100 years: "never" is an empty field).
const MAX_TOKEN_SECS: u64 = 100 * 365 * 86_400;

// ---------------------------------------------------------------------------------------
// Sessions and the viewer
// ---------------------------------------------------------------------------------------

/// The live session of a request.
#[derive(Debug)]
pub(super) struct Current {
    /// SHA-256 of the cookie value (the session's key in the database).
    hash: [u8; 32],
    pub(super) user: User,
    csrf: String,
}

/// The signed-in user of a request and the CSRF token for its forms (empty when signed out).
pub async fn viewer(st: &AppState, headers: &HeaderMap) -> (Option<User>, String) {
    match current(st, headers).await {
        Some(c) => (Some(c.user), c.csrf),
        None => (None, String::new()),
    }
}

/// Looks up the session named by the request's cookie. Database trouble reads as signed out
/// (and is logged): a page is still better than an error.
async fn current(st: &AppState, headers: &HeaderMap) -> Option<Current> {
    let id = cookie_value(headers, COOKIE)?;
    let hash = auth::hash_token(&id);
    let found = st.hub.session(hash).await;
    let s = match found {
        Ok(s) => s?,
        Err(e) => {
            tracing::warn!(target: "musehub::web", error = %e, "session lookup failed");
            return None;
        }
    };
    if unix_now() - s.last_seen >= TOUCH_EVERY_SECS {
        let hub = st.hub.clone();
        tokio::spawn(async move {
            if let Err(e) = hub.touch_session(hash).await {
                tracing::warn!(target: "musehub::web", error = %e, "recording a session visit failed");
            }
        });
    }
    Some(Current {
        hash,
        csrf: csrf_token(&s.csrf_secret),
        user: s.user,
    })
}

/// The token forms of a session carry: `hex(sha256(csrf_secret))`.
fn csrf_token(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))
}

/// Whether two byte strings are equal, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether a 64-character lowercase hex string (the shape of session ids and link tokens).
fn is_secret_shape(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The value of cookie `name` from the request's `Cookie` headers, when it has the shape of
/// a session id (anything else is ignored, so junk never reaches the database).
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .find(|v| is_secret_shape(v))
        .map(str::to_owned)
}

/// A `Set-Cookie` value for the session cookie (`Max-Age=0` clears it).
fn session_cookie(st: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let v =
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("musehub_session=; Max-Age=0"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (!scheme.is_empty() && end > 0).then(|| &url[..scheme.len() + 3 + end])
}

/// Whether a state-changing request comes from this hub's own pages: a cross-site fetch is
/// refused, and a present `Origin` must name this hub (as the browser reached it, i.e. the
/// `Host`, or as `public_url` says, for hubs behind a proxy). `Origin: null` is refused.
fn same_origin(st: &AppState, headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim();
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    let host_matches = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.trim().eq_ignore_ascii_case(authority));
    host_matches || origin_of(&st.public_url).is_some_and(|o| o.eq_ignore_ascii_case(origin))
}

/// The 403 page of a refused form.
fn refused() -> PageError {
    PageError::forbidden(FORM_EXPIRED)
}

/// The session behind a state-changing form, after the origin and CSRF checks.
pub(super) async fn form_session(
    st: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Current, PageError> {
    if !same_origin(st, headers) {
        return Err(refused());
    }
    let cur = current(st, headers).await.ok_or_else(refused)?;
    let sent = form.get("csrf").unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), cur.csrf.as_bytes()) {
        return Err(refused());
    }
    Ok(cur)
}

/// A 303 to `location`, optionally setting a cookie.
pub(super) fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie {
        h.insert(header::SET_COOKIE, c);
    }
    res
}

fn with_status(mut res: Response, status: StatusCode) -> Response {
    *res.status_mut() = status;
    res
}

// ---------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------

/// An `application/x-www-form-urlencoded` body (or query string): name/value pairs in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses `a=1&b=x+y&c=%C3%A9`: `+` is a space, `%XX` a byte (a malformed escape is kept
    /// as written), the bytes are UTF-8 (invalid sequences become U+FFFD).
    pub fn parse(body: &[u8]) -> Form {
        Form(
            body.split(|&b| b == b'&')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    let (name, value) = match part.iter().position(|&b| b == b'=') {
                        Some(i) => (&part[..i], &part[i + 1..]),
                        None => (part, &b""[..]),
                    };
                    (percent_decode(name), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &[u8]) -> String {
    fn hex_val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = s
                    .get(i + 1)
                    .copied()
                    .and_then(hex_val)
                    .zip(s.get(i + 2).copied().and_then(hex_val));
                match pair {
                    Some((hi, lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a posted form (urlencoded, at most [`MAX_FORM_BYTES`]).
pub(super) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, PageError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(PageError::bad_request(
            "This form arrived in a shape the hub does not read; reload the page and try again.",
        ));
    }
    let bytes = http_body_util::Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| PageError::bad_request("This form is too large or was cut off; try again."))?
        .to_bytes();
    Ok(Form::parse(&bytes))
}

// ---------------------------------------------------------------------------------------
// Signing in and out
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/session/login.html")]
struct LoginPage {
    chrome: Chrome,
    name: String,
    action: String,
}

#[derive(Template)]
#[template(path = "ui/session/link_gone.html")]
struct LinkGone {
    chrome: Chrome,
}

/// The 404 page of an unknown, expired or used sign-in link.
fn link_gone(viewer: Option<User>, csrf: String) -> Response {
    with_status(
        html(LinkGone {
            chrome: Chrome::new("Sign-in link expired", viewer, csrf),
        }),
        StatusCode::NOT_FOUND,
    )
}

/// `GET /login/{token}`: a button that signs in (the link itself changes nothing).
pub async fn login_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let (viewer, csrf) = viewer(&st, &headers).await;
    if !is_secret_shape(&token) {
        return Ok(link_gone(viewer, csrf));
    }
    let hash = auth::hash_token(&token);
    let user = st.hub.login_link_user(hash).await?;
    let Some(user) = user else {
        return Ok(link_gone(viewer, csrf));
    };
    Ok(html(LoginPage {
        chrome: Chrome::new(format!("Sign in as {}", user.name), viewer, csrf),
        action: format!("/login/{token}"),
        name: user.name,
    }))
}

/// `POST /login/{token}`: uses the link up, starts a session, sets its cookie and goes to
/// `/settings`.
pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    if !same_origin(&st, &headers) {
        return Err(refused());
    }
    if !is_secret_shape(&token) {
        return Ok(link_gone(None, String::new()));
    }
    let link = auth::hash_token(&token);
    let id = hex::encode(auth::random_bytes::<32>());
    let id_hash = auth::hash_token(&id);
    let secret = auth::random_bytes::<32>();
    let previous = cookie_value(&headers, COOKIE).map(|c| auth::hash_token(&c));
    let user = st
        .hub
        .start_session(link, previous, id_hash, secret, unix_now() + SESSION_SECS)
        .await?;
    let Some(user) = user else {
        return Ok(link_gone(None, String::new()));
    };
    tracing::info!(target: "musehub::web", user = %user.name, "signed in with a login link");
    // The owner of a freshly set-up appliance lands on what setup did.
    let next = if setup_state_for(&st, &user).is_some() {
        "/setup"
    } else {
        "/settings"
    };
    Ok(see_other(
        next,
        Some(session_cookie(&st, &id, SESSION_SECS)),
    ))
}

#[derive(Template)]
#[template(path = "ui/session/setup.html")]
struct SetupPage {
    chrome: Chrome,
    steps: Vec<crate::setup::Step>,
    has_ca: bool,
    fingerprint: Option<String>,
    url: String,
    owner: String,
}

/// The appliance's setup record, when this hub was set up by `musehub setup` and `user`
/// is the owner it named.
fn setup_state_for(st: &AppState, user: &User) -> Option<crate::setup::State> {
    let dir = st.data_dir.as_deref()?;
    match crate::setup::State::load(dir) {
        Ok(Some(s)) if s.owner.as_deref() == Some(user.name.as_str()) => Some(s),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(target: "musehub::web", error = %format!("{e:#}"), "cannot read the setup record");
            None
        }
    }
}

/// `GET /setup`: what first-boot setup did, for the owner, with the CA to trust.
pub async fn setup(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let Some(cur) = current(&st, &headers).await else {
        return Ok(with_status(
            html(SignedOut {
                chrome: Chrome::new("Sign in to see the setup", None, String::new()),
            }),
            StatusCode::FORBIDDEN,
        ));
    };
    let Some(state) = setup_state_for(&st, &cur.user) else {
        return Err(PageError::not_found(
            "This hub was not set up by `musehub setup`, or you are not its owner.",
        ));
    };
    let owner = cur.user.name.clone();
    Ok(html(SetupPage {
        chrome: Chrome::new("Setup", Some(cur.user), cur.csrf),
        steps: state.steps,
        has_ca: st.ca_pem.is_some(),
        fingerprint: state.ca_fingerprint,
        url: st.public_url.to_string(),
        owner,
    }))
}

/// `POST /logout`: ends the session, clears the cookie and goes to the front page.
pub async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let clear = session_cookie(&st, "", 0);
    if current(&st, &headers).await.is_none() {
        // Nothing to end (expired, or already signed out elsewhere): just forget the cookie.
        return Ok(see_other("/", Some(clear)));
    }
    let cur = form_session(&st, &headers, &form).await?;
    let hash = cur.hash;
    st.hub.end_session(hash).await?;
    Ok(see_other("/", Some(clear)))
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "ui/session/signed_out.html")]
struct SignedOut {
    chrome: Chrome,
}

/// One of the viewer's repositories on the settings page.
#[derive(Debug)]
struct RepoRow {
    owner: String,
    slug: String,
    private: bool,
    pushed: String,
}

/// One of the viewer's tokens (never its secret).
#[derive(Debug)]
struct TokenRow {
    id: i64,
    label: String,
    created: String,
    state: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "ui/session/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    name: String,
    public_url: String,
    repos: Vec<RepoRow>,
    tokens: Vec<TokenRow>,
    /// A confirmation of the last change (`role="status"`).
    notice: Option<&'static str>,
    /// The create-repository form's error and what was typed.
    repo_error: Option<String>,
    repo_name: String,
    repo_private: bool,
    /// The create-token form's error and what was typed.
    token_error: Option<String>,
    token_label: String,
    token_expires: String,
    /// A token just created: shown on this page only.
    new_token: Option<String>,
}

/// What a settings page shows beside the lists.
#[derive(Debug, Default)]
struct Extras {
    notice: Option<&'static str>,
    repo_error: Option<String>,
    repo_name: String,
    repo_private: Option<bool>,
    token_error: Option<String>,
    token_label: String,
    token_expires: String,
    new_token: Option<String>,
}

/// The confirmation a `?notice=` after a change shows (a fixed set, so a link cannot make
/// the page say anything else).
fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "repo-created" => Some("Repository created. It is listed below."),
        "visibility" => Some("Visibility changed."),
        "token-revoked" => Some("Token revoked. The Muse CLI can no longer use it."),
        _ => None,
    }
}

fn token_state(t: &users::TokenInfo, now: i64) -> (String, bool) {
    if t.revoked {
        return ("revoked".to_owned(), false);
    }
    match t.expires_at {
        Some(e) if e <= now => ("expired".to_owned(), false),
        Some(e) => (
            format!(
                "expires {}",
                short_time(
                    &humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.max(0) as u64)
                    )
                    .to_string()
                )
            ),
            true,
        ),
        None => ("never expires".to_owned(), true),
    }
}

async fn render_settings(
    st: &AppState,
    cur: Current,
    extras: Extras,
    status: StatusCode,
) -> Result<Response, PageError> {
    let viewer = Some(cur.user.clone());
    let repo_list = st
        .hub
        .repos_visible_to(&viewer, Some(&cur.user.name))
        .await?;
    let token_list = st.hub.tokens_of(&cur.user).await?;
    let uid = cur.user.id;
    let repos = repo_list
        .into_iter()
        .filter(|r| r.owner_id == uid)
        .map(|r| RepoRow {
            private: r.visibility == Visibility::Private,
            pushed: r
                .pushed_at
                .as_deref()
                .map_or_else(|| "never pushed".to_owned(), short_time),
            owner: r.owner.clone(),
            slug: r.slug.clone(),
        })
        .collect();
    let now = unix_now();
    let tokens = token_list
        .iter()
        .map(|t| {
            let (state, live) = token_state(t, now);
            TokenRow {
                id: t.id,
                label: t.label.clone(),
                created: short_time(&t.created_at),
                state,
                live,
            }
        })
        .collect();
    let page = SettingsPage {
        name: cur.user.name.clone(),
        chrome: Chrome::new("Settings", Some(cur.user), cur.csrf),
        public_url: st.public_url.to_string(),
        repos,
        tokens,
        notice: extras.notice,
        repo_error: extras.repo_error,
        repo_name: extras.repo_name,
        repo_private: extras
            .repo_private
            .unwrap_or(st.hub.default_visibility() == Visibility::Private),
        token_error: extras.token_error,
        token_label: extras.token_label,
        token_expires: extras.token_expires,
        new_token: extras.new_token,
    };
    Ok(with_status(html(page), status))
}

/// `GET /settings`: the signed-in owner's repositories and tokens, with their forms.
pub async fn settings(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let Some(cur) = current(&st, &headers).await else {
        return Ok(with_status(
            html(SignedOut {
                chrome: Chrome::new("Sign in to change settings", None, String::new()),
            }),
            StatusCode::FORBIDDEN,
        ));
    };
    let query = Form::parse(query.unwrap_or_default().as_bytes());
    let extras = Extras {
        notice: query.get("notice").and_then(notice_text),
        ..Extras::default()
    };
    render_settings(&st, cur, extras, StatusCode::OK).await
}

/// Why a repository name is refused, in words for the form.
fn repo_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Give the repository a name.".to_owned());
    }
    if name.starts_with('.') {
        return Some("A repository name may not start with '.'.".to_owned());
    }
    if name.len() > 100 {
        return Some("A repository name may be at most 100 characters long.".to_owned());
    }
    hub::check_slug(name).err().map(|_| {
        format!(
            "A repository name may only use letters, digits, '-', '_' and '.' (no spaces). Try “{}”.",
            suggest_slug(name)
        )
    })
}

/// A usable slug close to what was typed ("My Song!" → "My-Song").
fn suggest_slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(['-', '.']).to_owned();
    if out.is_empty() {
        "song".to_owned()
    } else {
        out
    }
}

/// `POST /settings/repos`: creates one of the viewer's repositories.
pub async fn create_repo(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let cur = form_session(&st, &headers, &form).await?;
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let visibility = match form.get("visibility") {
        None | Some("") => st.hub.default_visibility(),
        Some(v) => Visibility::parse(v)
            .ok_or_else(|| PageError::bad_request("Visibility must be public or private."))?,
    };
    let mut problem = repo_name_problem(&name);
    if problem.is_none() {
        let made = st.hub.create_repo(&cur.user, &name, visibility).await?;
        if made {
            tracing::info!(target: "musehub::web", repo = %format!("{}/{name}", cur.user.name), "created repository from settings");
            return Ok(see_other("/settings?notice=repo-created", None));
        }
        problem = Some(format!("You already have a repository called {name}."));
    }
    let extras = Extras {
        repo_error: problem,
        repo_name: name,
        repo_private: Some(visibility == Visibility::Private),
        ..Extras::default()
    };
    render_settings(&st, cur, extras, StatusCode::BAD_REQUEST).await
}

/// `POST /{owner}/{slug}/visibility`: the owner makes a repository public or private.
pub async fn set_visibility(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug)): Path<(String, String)>,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let cur = form_session(&st, &headers, &form).await?;
    let visibility = form
        .get("visibility")
        .and_then(Visibility::parse)
        .ok_or_else(|| PageError::bad_request("Visibility must be public or private."))?;
    // Someone else's private repository stays invisible (404), as everywhere; someone else's
    // public one is refused by the hub (403).
    let repo = st
        .hub
        .repo_for_read(&owner, &slug, &Some(cur.user.clone()))
        .await?;
    st.hub.set_visibility(&repo, &cur.user, visibility).await?;
    tracing::info!(target: "musehub::web", repo = %format!("{owner}/{slug}"), visibility = visibility.as_str(), "visibility changed from settings");
    Ok(see_other("/settings?notice=visibility", None))
}

/// Parses the token form's lifetime (`90d`, `12h`, `1y`; empty = never) into an expiry.
fn token_expiry(text: &str, now: i64) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_TOKEN_SECS => {
            Ok(Some(now + d.as_secs() as i64))
        }
        _ => Err(format!(
            "“{text}” is not a lifetime the hub understands. Write it like 90d, 12h or 1y, or leave the field empty for a token that never expires."
        )),
    }
}

/// `POST /settings/tokens`: creates a token and shows it once, with the `muse auth login`
/// command.
pub async fn create_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let cur = form_session(&st, &headers, &form).await?;
    let label = form.get("label").unwrap_or_default().trim().to_owned();
    let expires = form.get("expires").unwrap_or_default().trim().to_owned();
    let expiry = if label.chars().count() > MAX_LABEL_CHARS {
        Err(format!(
            "A label may be at most {MAX_LABEL_CHARS} characters long."
        ))
    } else {
        token_expiry(&expires, unix_now())
    };
    let expires_at = match expiry {
        Ok(e) => e,
        Err(msg) => {
            let extras = Extras {
                token_error: Some(msg),
                token_label: label,
                token_expires: expires,
                ..Extras::default()
            };
            return render_settings(&st, cur, extras, StatusCode::BAD_REQUEST).await;
        }
    };
    let token = auth::new_token();
    let hash = auth::hash_token(&token);
    st.hub
        .add_token(&cur.user, hash, &label, expires_at)
        .await?;
    tracing::info!(target: "musehub::web", user = %cur.user.name, "created a token from settings");
    let extras = Extras {
        new_token: Some(token),
        ..Extras::default()
    };
    render_settings(&st, cur, extras, StatusCode::OK).await
}

/// `POST /settings/tokens/{id}/revoke`: revokes one of the viewer's own tokens.
pub async fn revoke_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, PageError> {
    let form = read_form(&headers, body).await?;
    let cur = form_session(&st, &headers, &form).await?;
    let gone = || PageError::not_found(format!("You have no active token number {id}."));
    let n: i64 = id.parse().map_err(|_| gone())?;
    let revoked = st.hub.revoke_token_of(&cur.user, n).await?;
    if !revoked {
        return Err(gone());
    }
    tracing::info!(target: "musehub::web", user = %cur.user.name, token = n, "revoked a token from settings");
    Ok(see_other("/settings?notice=token-revoked", None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let f = Form::parse(b"name=my+song&csrf=ab%2Fc&e=%C3%A9t%C3%A9&empty=&flag&x=1&x=2");
        assert_eq!(f.get("name"), Some("my song"));
        assert_eq!(f.get("csrf"), Some("ab/c"));
        assert_eq!(f.get("e"), Some("été"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.get("x"), Some("1"), "the first value wins");
        assert_eq!(f.get("missing"), None);
        // A literal '+' is sent as %2B; malformed escapes stay as written.
        let f = Form::parse(b"a=1%2B1&b=100%&c=%zz&d=%4&%6e%61me=v%3Dw");
        assert_eq!(f.get("a"), Some("1+1"));
        assert_eq!(f.get("b"), Some("100%"));
        assert_eq!(f.get("c"), Some("%zz"));
        assert_eq!(f.get("d"), Some("%4"));
        assert_eq!(f.get("name"), Some("v=w"));
        assert_eq!(Form::parse(b""), Form::default());
        assert_eq!(Form::parse(b"&&").get(""), None);
        // Invalid UTF-8 does not fail the form.
        assert_eq!(Form::parse(b"a=%FF").get("a"), Some("\u{FFFD}"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let id = "0123456789abcdef".repeat(4);
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; other=1"),
        );
        assert_eq!(cookie_value(&h, COOKIE), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b;musehub_session={id} ; c=d")).unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some(id.clone()));
        // Wrong shapes are ignored rather than looked up.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("musehub_session=nope; xmusehub_session=1"),
        );
        assert_eq!(cookie_value(&h, COOKIE), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("musehub_session={}", id.to_uppercase())).unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE), None);
    }

    #[test]
    fn csrf_comparison_and_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        let t = csrf_token(&[1u8; 32]);
        assert_eq!(t.len(), 64);
        assert_eq!(t, csrf_token(&[1u8; 32]));
        assert_ne!(t, csrf_token(&[2u8; 32]));
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://hub.local:8443"),
            Some("https://hub.local:8443")
        );
        assert_eq!(
            origin_of("https://hub.local/musehub"),
            Some("https://hub.local")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080?x"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("http://"), None);
    }

    #[test]
    fn repo_names_and_token_lifetimes_are_explained() {
        assert_eq!(repo_name_problem("song"), None);
        assert!(repo_name_problem("").unwrap().contains("name"));
        assert!(repo_name_problem(".git").unwrap().contains("'.'"));
        let p = repo_name_problem("My Song!").unwrap();
        assert!(p.contains("My-Song"), "{p}");
        assert_eq!(token_expiry("", 100), Ok(None));
        assert_eq!(token_expiry("90d", 100), Ok(Some(100 + 90 * 86_400)));
        assert_eq!(token_expiry("12h", 0), Ok(Some(12 * 3_600)));
        assert!(token_expiry("soon", 0).is_err());
        assert!(token_expiry("0s", 0).is_err());
        assert!(token_expiry("1000y", 0).is_err());
    }
}
