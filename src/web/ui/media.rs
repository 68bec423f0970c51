//! Object bytes for the browser: raw downloads and audio with HTTP Range, and the MIDI piano
//! roll as server-rendered SVG.
//!
//! Both routes take `{rev}/{path}`, where `rev` is a branch (whose name may contain `/`) or a
//! 64-hex commit id; [`resolve_path`] finds the object. Raw answers stream the object's
//! blocks, and a Range request reads only the 1 MiB leaves it needs (see
//! [`crate::storage::Store::object_range_stream`]), so seeking in a long stem is cheap. Files
//! a browser would run (HTML, SVG) are sent as plain text to download, never rendered from
//! the hub's origin.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use super::{PageError, session};
use crate::cids::Id;
use crate::db::repos::{Repo, Visibility};
use crate::hub::{Object, Readable};
use crate::web::AppState;
use crate::web::range::{self, header_value, none_match};

/// Largest MIDI file drawn as a piano roll.
pub const MAX_PIANOROLL_BYTES: u64 = 16 * 1024 * 1024;

/// The policy of every raw answer: if a browser ever renders one as a document, it runs
/// nothing and loads nothing.
const RAW_CSP: &str =
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// The piano roll's policy: inline styles only.
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// Bumped when the piano roll's drawing changes, so cached drawings are not reused.
const PIANOROLL_VERSION: u32 = 1;

/// A resolved `{rev}/{path}`.
#[derive(Debug, Clone)]
struct Resolved {
    path: String,
    /// The rev was a commit id, so the answer never changes.
    pinned: bool,
}

/// Resolves `{rev}/{path}` in a repo the caller may read: `rev` is the longest leading run of
/// segments that names a branch, else the first segment as a commit id of this repo. Returns
/// the path and the object at that path: `None` when the path is empty or is not a file of the
/// commit.
///
/// An unknown branch or commit is a 404 page.
async fn resolve(
    st: &AppState,
    repo: &Readable<Repo>,
    rest: &str,
) -> Result<(Resolved, Option<Object>), PageError> {
    let rest = rest.trim_start_matches('/').to_owned();
    let first: String = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    let found = st
        .hub
        .view(repo, move |v| {
            let segments: Vec<&str> = rest.split('/').collect();
            let mut hit = None;
            // Longest branch name first (branch names are at most 255 characters).
            for k in (1..=segments.len()).rev() {
                let name = segments[..k].join("/");
                if name.len() > 255 {
                    continue;
                }
                if let Some(head) = v.branch_head(&name)? {
                    hit = Some((head, segments[k..].join("/"), false));
                    break;
                }
            }
            if hit.is_none()
                && let Ok(id) = Id::parse(segments[0])
                && v.has_commit(&id)?
            {
                hit = Some((id, segments[1..].join("/"), true));
            }
            let Some((commit, path, pinned)) = hit else {
                return Ok::<_, PageError>(None);
            };
            let Some(row) = v.commit(&commit)? else {
                return Ok(None);
            };
            let path = path.trim_end_matches('/').to_owned();
            let broken = |e: crate::hub::Error| {
                tracing::error!(target: "musehub::web", error = %e, "stored snapshot unreadable");
                PageError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: String::new(),
                }
            };
            let file = if path.is_empty() {
                None
            } else {
                v.file(&row.snapshot_id, &path).map_err(broken)?
            };
            let object = match file {
                Some(id) => Some(v.object(&id)?.ok_or(id)),
                None => None,
            };
            Ok(Some((Resolved { path, pinned }, object)))
        })
        .await?;
    let Some((resolved, object)) = found else {
        return Err(PageError::not_found(format!(
            "{}/{} has no branch or commit called {}.",
            repo.owner,
            repo.slug,
            if first.is_empty() {
                "(nothing)"
            } else {
                &first
            }
        )));
    };
    let object = match object {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(id)) => {
            tracing::error!(target: "musehub::web", object = %id, "object named by a snapshot is not stored");
            return Err(PageError::not_found(
                "This file's bytes are not on this hub.",
            ));
        }
    };
    Ok((resolved, object))
}

/// A readable repo and the object a `{rev}/{path}` names.
async fn object_at(
    st: &AppState,
    headers: &HeaderMap,
    owner: &str,
    slug: &str,
    rest: &str,
) -> Result<(Readable<Repo>, Resolved, Object), PageError> {
    let viewer = session::viewer(st, headers).await.0;
    let repo = st.hub.repo_for_read(owner, slug, &viewer).await?;
    let (r, object) = resolve(st, &repo, rest).await?;
    let Some(object) = object else {
        return Err(PageError::not_found(if r.path.is_empty() {
            "Name a file after the branch or commit.".to_owned()
        } else {
            format!("There is no file at {} in this commit.", r.path)
        }));
    };
    Ok((repo, r, object))
}

/// How a file is served: its media type and whether a browser may show it in place.
fn media_type(path: &str) -> (&'static str, bool) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "wav" => ("audio/wav", true),
        "flac" => ("audio/flac", true),
        "mp3" => ("audio/mpeg", true),
        "ogg" | "oga" | "opus" => ("audio/ogg", true),
        "m4a" | "aac" => ("audio/mp4", true),
        "aif" | "aiff" => ("audio/aiff", true),
        "mid" | "midi" => ("audio/midi", true),
        "txt" | "md" | "markdown" | "abc" | "ly" => ("text/plain; charset=utf-8", true),
        "json" => ("application/json", true),
        "png" => ("image/png", true),
        "jpg" | "jpeg" => ("image/jpeg", true),
        "gif" => ("image/gif", true),
        "webp" => ("image/webp", true),
        "pdf" => ("application/pdf", false),
        // A browser would run these from the hub's origin (stored XSS): plain text, to save.
        "svg" | "svgz" | "html" | "htm" | "xhtml" | "xht" | "xml" | "xsl" | "js" | "mjs" => {
            ("text/plain; charset=utf-8", false)
        }
        _ => ("application/octet-stream", false),
    }
}

/// `inline; filename="take 1.wav"; filename*=UTF-8''take%201.wav` (or `attachment`).
fn disposition(path: &str, inline: bool) -> HeaderValue {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Caching for an answer: forever for a commit of a public repo; revalidated with the ETag
/// for a branch (it moves); never shared for a private repo.
fn cache_control(repo: &Repo, pinned: bool) -> HeaderValue {
    HeaderValue::from_static(match (repo.visibility, pinned) {
        (Visibility::Private, _) => "private, max-age=0",
        (Visibility::Public, true) => "public, max-age=31536000, immutable",
        (Visibility::Public, false) => "public, max-age=0, must-revalidate",
    })
}

/// `GET /{owner}/{slug}/raw/{rev}/{path}`: the file's bytes, streamed, with Range.
pub async fn raw(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, rest)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let (repo, r, row) = object_at(&st, &headers, &owner, &slug, &rest).await?;
    let oid = row.id();
    let etag = format!("\"{oid}\"");
    let (mime, inline) = media_type(&r.path);
    let size = row.size();

    let mut res = if none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let want = range::requested(&headers, &etag, size);
        let res = range::answer(size, want, |start, end| {
            Body::from_stream(st.hub.object_range_stream(&row, start, end))
        });
        if res.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            let mut res = res;
            let h = res.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(res);
        }
        res
    };
    let modified = res.status() != StatusCode::NOT_MODIFIED;
    let h = res.headers_mut();
    if modified {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        h.insert(header::CONTENT_DISPOSITION, disposition(&r.path, inline));
        h.insert("content-security-policy", HeaderValue::from_static(RAW_CSP));
    }
    h.insert(header::ETAG, header_value(&etag));
    h.insert(header::CACHE_CONTROL, cache_control(&repo, r.pinned));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// A plain-text answer a person reads (the piano roll is an image, so no HTML page).
fn plain(status: StatusCode, text: String) -> Response {
    let mut res = (status, text).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `GET /{owner}/{slug}/pianoroll/{rev}/{path}`: a `.mid`/`.midi` file drawn as SVG.
pub async fn pianoroll(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, rest)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let (repo, r, row) = object_at(&st, &headers, &owner, &slug, &rest).await?;
    let oid = row.id();
    let name = r.path.rsplit('/').next().unwrap_or(&r.path).to_owned();
    let is_midi = name
        .rsplit_once('.')
        .is_some_and(|(_, e)| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"));
    if !is_midi {
        return Err(PageError::not_found(
            "Piano rolls are drawn for MIDI files (.mid, .midi) only.",
        ));
    }
    if row.size() > MAX_PIANOROLL_BYTES {
        return Ok(plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "this MIDI file is too large to draw: {} (the limit is 16 MiB)\n",
                super::size(row.size())
            ),
        ));
    }
    let etag = format!("\"{oid}-pianoroll-{PIANOROLL_VERSION}\"");
    let cache = cache_control(&repo, r.pinned);
    if none_match(&headers, &etag) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        let h = res.headers_mut();
        h.insert(header::ETAG, header_value(&etag));
        h.insert(header::CACHE_CONTROL, cache);
        return Ok(res);
    }
    let bytes: Vec<u8> = st
        .hub
        .object_stream(&row)
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .map_err(|e| {
            tracing::error!(target: "musehub::web", object = %oid, error = %e, "object read failed");
            PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: String::new(),
            }
        })?;
    let opts = crate::midi::Options {
        title: name,
        ..crate::midi::Options::default()
    };
    // Up to a million events: parse and draw off the async workers.
    let drawn = tokio::task::spawn_blocking(move || crate::midi::piano_roll_svg(&bytes, &opts))
        .await
        .map_err(|e| {
            tracing::error!(target: "musehub::web", error = %e, "piano roll task failed");
            PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: String::new(),
            }
        })?;
    let svg = match drawn {
        Ok(svg) => svg,
        Err(e) => {
            return Ok(plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("this MIDI file could not be read: {e}\n"),
            ));
        }
    };
    let mut res = svg.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert("content-security-policy", HeaderValue::from_static(SVG_CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::ETAG, header_value(&etag));
    h.insert(header::CACHE_CONTROL, cache);
    Ok(res)
}
