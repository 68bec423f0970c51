//! Repository pages: home (files, README, clone instructions), branches, commits, one commit,
//! tree and blob views, releases.
//!
//! Every page opens its repo through [`crate::hub::Hub::repo_for_read`], so a private repo is
//! a 404 for everyone but its owner, on every page. A page reads what it shows in one read
//! transaction; object bytes are read only for previews (a README, a text file), and never
//! more than [`PREVIEW_MAX`] of them. Walking history costs one primary-key lookup per commit
//! shown, so a page of commits is as quick on the 10,000th commit as on the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::StreamExt;

use super::{Chrome, PageError, html, session, size};
use crate::cids::Id;
use crate::db::content::CommitRow;
use crate::db::repos::{self, Repo, Visibility};
use crate::db::users::User;
use crate::hub::{Object, Readable, RepoView};
use crate::web::AppState;

/// Commits on one page of history.
const PAGE: usize = 50;
/// Largest object read for a preview (a README or a text file).
const PREVIEW_MAX: u64 = 512 * 1024;
/// Files listed per kind of change on a commit page (a song rarely changes more).
const CHANGES_MAX: usize = 500;
/// Longest branch name tried when splitting `{rev}/{path}` (the CLI allows 255 characters).
const BRANCH_MAX: usize = 1024;
/// Extensions the browser can play in an `<audio>` element.
const AUDIO: &[&str] = &["wav", "flac", "mp3", "ogg", "oga", "opus"];
/// Extensions shown as a piano roll.
const MIDI: &[&str] = &["mid", "midi"];
/// README names, in the order they are looked for.
const READMES: &[&str] = &["README.md", "readme.md", "README"];

// ---------------------------------------------------------------------------------------------
// Addresses

/// Percent-encodes text for a link path, keeping `/` (branch names and paths contain it).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `/{owner}/{slug}`, encoded.
fn repo_base(repo: &Repo) -> String {
    format!("/{}/{}", enc(&repo.owner), enc(&repo.slug))
}

fn commit_href(base: &str, id: &Id) -> String {
    format!("{base}/commit/{id}")
}

fn commits_href(base: &str, rev: &str) -> String {
    format!("{base}/commits/{}", enc(rev))
}

/// Links into one repo at one revision (a branch name or a commit id).
#[derive(Debug, Clone)]
struct At {
    base: String,
    rev: String,
}

impl At {
    fn new(base: &str, rev: &str) -> Self {
        At {
            base: base.to_owned(),
            rev: enc(rev),
        }
    }

    fn link(&self, kind: &str, path: &str) -> String {
        if path.is_empty() {
            format!("{}/{kind}/{}", self.base, self.rev)
        } else {
            format!("{}/{kind}/{}/{}", self.base, self.rev, enc(path))
        }
    }

    fn tree(&self, path: &str) -> String {
        self.link("tree", path)
    }

    fn blob(&self, path: &str) -> String {
        self.link("blob", path)
    }

    fn raw(&self, path: &str) -> String {
        self.link("raw", path)
    }

    fn pianoroll(&self, path: &str) -> String {
        self.link("pianoroll", path)
    }
}

// ---------------------------------------------------------------------------------------------
// What every repo page shares

/// The repo header: name, visibility and the tabs.
#[derive(Debug)]
struct RepoHead {
    owner: String,
    slug: String,
    private: bool,
    owner_href: String,
    home: String,
    commits: String,
    branches: String,
    releases: String,
    /// The active tab: `files`, `commits`, `branches` or `releases`.
    tab: &'static str,
}

/// A repo opened for a request, with who is asking.
struct Ctx {
    viewer: Option<User>,
    csrf: String,
    repo: Readable<Repo>,
    base: String,
}

async fn open(
    st: &AppState,
    headers: &HeaderMap,
    owner: &str,
    slug: &str,
) -> Result<Ctx, PageError> {
    let (viewer, csrf) = session::viewer(st, headers).await;
    let repo = st.hub.repo_for_read(owner, slug, &viewer).await?;
    let base = repo_base(&repo);
    Ok(Ctx {
        viewer,
        csrf,
        repo,
        base,
    })
}

impl Ctx {
    fn chrome(&self, page: &str) -> Chrome {
        let name = format!("{}/{}", self.repo.owner, self.repo.slug);
        let title = if page.is_empty() {
            name
        } else {
            format!("{page} · {name}")
        };
        Chrome::new(title, self.viewer.clone(), self.csrf.clone())
    }

    fn head(&self, tab: &'static str) -> RepoHead {
        RepoHead {
            owner: self.repo.owner.clone(),
            slug: self.repo.slug.clone(),
            private: self.repo.visibility == Visibility::Private,
            owner_href: format!("/{}", enc(&self.repo.owner)),
            home: self.base.clone(),
            commits: commits_href(&self.base, &self.repo.default_branch),
            branches: format!("{}/branches", self.base),
            releases: format!("{}/releases", self.base),
            tab,
        }
    }

    fn is_owner(&self) -> bool {
        self.viewer
            .as_ref()
            .is_some_and(|v| v.id == self.repo.owner_id)
    }
}

/// A 500 page; the log gets the cause.
fn internal(what: impl std::fmt::Display) -> PageError {
    tracing::error!(target: "musehub::web", error = %what, "repository page failed");
    PageError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: String::new(),
    }
}

/// A commit as a line in a list.
#[derive(Debug)]
struct CommitItem {
    id: String,
    short: String,
    href: String,
    /// The message's first line.
    title: String,
    author: String,
    when: String,
    /// `committed_at` verbatim, for `<time datetime>`.
    at: String,
}

impl CommitItem {
    fn new(base: &str, row: &CommitRow) -> Self {
        let id = row.commit_id.to_hex();
        CommitItem {
            short: id[..12].to_owned(),
            href: commit_href(base, &row.commit_id),
            id,
            title: first_line(&row.message),
            author: author(&row.author),
            when: when(&row.committed_at),
            at: row.committed_at.clone(),
        }
    }
}

fn first_line(message: &str) -> String {
    match message.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) => l.to_owned(),
        None => "(no message)".to_owned(),
    }
}

fn author(a: &str) -> String {
    if a.trim().is_empty() {
        "unknown".to_owned()
    } else {
        a.to_owned()
    }
}

/// `2026-03-16T12:00:00.123+00:00` → `2026-03-16 12:00 UTC` (other offsets are kept).
fn when(t: &str) -> String {
    let b = t.as_bytes();
    let (Some(date), Some(hm)) = (t.get(..10), t.get(11..16)) else {
        return t.to_owned();
    };
    if b.get(10) != Some(&b'T') && b.get(10) != Some(&b' ') {
        return t.to_owned();
    }
    let zone = if t.ends_with('Z') || t.ends_with("+00:00") {
        " UTC"
    } else {
        match t.get(t.len().saturating_sub(6)..) {
            Some(z) if t.len() > 19 && z.starts_with(['+', '-']) && z.as_bytes()[3] == b':' => z,
            _ => "",
        }
    };
    let space = if zone.starts_with(['+', '-']) {
        " "
    } else {
        ""
    };
    format!("{date} {hm}{space}{zone}")
}

/// `32044` → `32,044`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn short(id: &Id) -> String {
    id.to_hex()[..12].to_owned()
}

/// The IPFS CID of an object: its raw-block CID when it is one chunk, else its UnixFS root.
fn object_cid(id: &Id, object: &Object) -> String {
    match object.root() {
        None => id.raw_cid().to_string(),
        Some(root) => cid::Cid::try_from(root)
            .map_or_else(|_| "(unreadable root CID)".to_owned(), |c| c.to_string()),
    }
}

/// A snapshot's manifest, sorted by path.
fn manifest(v: &RepoView<'_>, sid: &Id) -> Result<Vec<(String, Id)>, PageError> {
    v.manifest(sid)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("snapshot {sid} is missing")))
}

/// A revision as written in an address, resolved to its commit.
#[derive(Debug)]
struct Rev {
    name: String,
    branch: bool,
    commit: CommitRow,
}

/// A whole `{rev}`: a branch name, else a commit id of the repo.
fn resolve_rev(v: &RepoView<'_>, rev: &str) -> Result<Option<Rev>, PageError> {
    let rev = rev.trim_matches('/');
    if rev.len() <= BRANCH_MAX
        && let Some(head) = v.branch_head(rev)?
    {
        return Ok(v.commit(&head)?.map(|commit| Rev {
            name: rev.to_owned(),
            branch: true,
            commit,
        }));
    }
    let Ok(id) = Id::parse(rev) else {
        return Ok(None);
    };
    Ok(v.commit(&id)?.map(|commit| Rev {
        name: rev.to_owned(),
        branch: false,
        commit,
    }))
}

/// Splits `{rev}/{path}`: the longest leading run of segments that names a branch, else a
/// commit id as the first segment.
fn split_rev(v: &RepoView<'_>, rest: &str) -> Result<Option<(Rev, String)>, PageError> {
    let rest = rest.trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    for n in (1..=segs.len()).rev() {
        let name = segs[..n].join("/");
        if name.len() > BRANCH_MAX {
            continue;
        }
        if let Some(head) = v.branch_head(&name)? {
            let Some(commit) = v.commit(&head)? else {
                return Ok(None);
            };
            let path = segs[n..].join("/");
            return Ok(Some((
                Rev {
                    name,
                    branch: true,
                    commit,
                },
                path,
            )));
        }
    }
    let Ok(id) = Id::parse(segs[0]) else {
        return Ok(None);
    };
    Ok(v.commit(&id)?.map(|commit| {
        (
            Rev {
                name: segs[0].to_owned(),
                branch: false,
                commit,
            },
            segs[1..].join("/"),
        )
    }))
}

/// One row of a directory listing.
#[derive(Debug)]
struct Entry {
    name: String,
    href: String,
    folder: bool,
    /// "3.2 MB", or "4 files" for a folder.
    size: String,
    /// The exact byte count ("" for folders).
    bytes: String,
}

/// The entries directly inside `dir` ("" is the top level): folders first, then files.
/// `None` when no file lives under `dir`.
fn list_dir(
    v: &RepoView<'_>,
    files: &[(String, Id)],
    dir: &str,
    at: &At,
) -> Result<Option<Vec<Entry>>, PageError> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut folders: BTreeMap<&str, usize> = BTreeMap::new();
    let mut here: Vec<(&str, &str, Id)> = Vec::new();
    for (path, id) in files {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((folder, _)) => *folders.entry(folder).or_default() += 1,
            None => here.push((rest, path, *id)),
        }
    }
    if !dir.is_empty() && folders.is_empty() && here.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(folders.len() + here.len());
    for (name, n) in folders {
        out.push(Entry {
            name: name.to_owned(),
            href: at.tree(&format!("{prefix}{name}")),
            folder: true,
            size: if n == 1 {
                "1 file".to_owned()
            } else {
                format!("{n} files")
            },
            bytes: String::new(),
        });
    }
    let mut file_rows = Vec::with_capacity(here.len());
    for (name, path, id) in here {
        let row = v.object(&id)?;
        file_rows.push(Entry {
            name: name.to_owned(),
            href: at.blob(path),
            folder: false,
            size: row
                .as_ref()
                .map_or_else(|| "—".to_owned(), |r| size(r.size())),
            bytes: row.map_or_else(String::new, |r| format!("{} bytes", thousands(r.size()))),
        });
    }
    let key = |e: &Entry| (e.name.to_lowercase(), e.name.clone());
    out.sort_by_key(key);
    file_rows.sort_by_key(key);
    out.extend(file_rows);
    Ok(Some(out))
}

/// One link of a breadcrumb trail; the last one is the current page.
#[derive(Debug)]
struct Crumb {
    name: String,
    href: String,
}

fn crumbs(slug: &str, path: &str, at: &At) -> Vec<Crumb> {
    let mut out = vec![Crumb {
        name: slug.to_owned(),
        href: at.tree(""),
    }];
    if path.is_empty() {
        return out;
    }
    let mut so_far = String::new();
    for seg in path.split('/') {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(seg);
        out.push(Crumb {
            name: seg.to_owned(),
            href: at.tree(&so_far),
        });
    }
    out
}

/// Reads a whole object of at most [`PREVIEW_MAX`] bytes; `None` when it is larger.
async fn read_small(st: &AppState, object: &Object) -> Result<Option<Vec<u8>>, PageError> {
    if object.size() > PREVIEW_MAX {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(object.size() as usize);
    let mut stream = st.hub.object_stream(object);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(internal)?;
        if (out.len() + chunk.len()) as u64 > PREVIEW_MAX {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// Text worth showing: valid UTF-8 without NUL bytes.
fn as_text(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// Where relative links in a Markdown file point: the repo at a revision, and the file's folder.
#[derive(Debug, Clone, Copy)]
struct Links<'a> {
    at: &'a At,
    dir: &'a str,
}

/// Markdown → HTML that is safe inside a page. Raw HTML is shown as text (HTML blocks as code,
/// comments dropped), links and images keep only http, https, mailto, ipfs and ipns schemes
/// (others lose their link and keep their text), headings move `shift` levels down (so `#`
/// sits under the page's own headings), and relative links point into the repo.
fn markdown(src: &str, links: Option<Links<'_>>, shift: usize) -> String {
    use pulldown_cmark::{
        CodeBlockKind, CowStr, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd,
    };

    let deeper = |level: HeadingLevel| {
        const LEVELS: [HeadingLevel; 6] = [
            HeadingLevel::H1,
            HeadingLevel::H2,
            HeadingLevel::H3,
            HeadingLevel::H4,
            HeadingLevel::H5,
            HeadingLevel::H6,
        ];
        LEVELS[(level as usize - 1 + shift).min(5)]
    };

    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut out: Vec<Event<'_>> = Vec::new();
    // For each open link or image: whether its start tag was dropped (so its end is too).
    let mut dropped: Vec<bool> = Vec::new();
    // The text of an HTML block being collected.
    let mut block: Option<String> = None;
    for ev in Parser::new_ext(src, opts) {
        match ev {
            Event::Start(Tag::HtmlBlock) => block = Some(String::new()),
            Event::End(TagEnd::HtmlBlock) => {
                let text = block.take().unwrap_or_default();
                let t = text.trim();
                if !(t.is_empty() || (t.starts_with("<!--") && t.ends_with("-->"))) {
                    out.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(
                        CowStr::Borrowed("html"),
                    ))));
                    out.push(Event::Text(text.into()));
                    out.push(Event::End(TagEnd::CodeBlock));
                }
            }
            Event::Html(h) | Event::InlineHtml(h) => match block.as_mut() {
                Some(b) => b.push_str(&h),
                None => out.push(Event::Text(h)),
            },
            Event::Start(Tag::Heading { level, .. }) => out.push(Event::Start(Tag::Heading {
                level: deeper(level),
                id: None,
                classes: Vec::new(),
                attrs: Vec::new(),
            })),
            Event::End(TagEnd::Heading(level)) => {
                out.push(Event::End(TagEnd::Heading(deeper(level))));
            }
            // An email autolink: the writer adds `mailto:` to the bare address itself.
            Event::Start(Tag::Link {
                link_type: LinkType::Email,
                ..
            }) => {
                dropped.push(false);
                out.push(ev);
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match safe_url(&dest_url, links, false) {
                Some(url) => {
                    dropped.push(false);
                    out.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url: url.into(),
                        title,
                        id,
                    }));
                }
                None => dropped.push(true),
            },
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => match safe_url(&dest_url, links, true) {
                Some(url) => {
                    dropped.push(false);
                    out.push(Event::Start(Tag::Image {
                        link_type,
                        dest_url: url.into(),
                        title,
                        id,
                    }));
                }
                None => dropped.push(true),
            },
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if !dropped.pop().unwrap_or(false) {
                    out.push(ev);
                }
            }
            other => out.push(other),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    html
}

/// A link target that is safe to put in a page, or `None` to drop the link.
fn safe_url(url: &str, links: Option<Links<'_>>, image: bool) -> Option<String> {
    // Browsers ignore whitespace and control characters inside a scheme ("java\tscript:").
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    if let Some((scheme, _)) = squeezed.split_once(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return matches!(scheme, "http" | "https" | "mailto" | "ipfs" | "ipns")
            .then(|| url.to_owned());
    }
    if url.is_empty() || url.starts_with(['#', '/', '?']) {
        return Some(url.to_owned());
    }
    let Some(Links { at, dir }) = links else {
        return Some(url.to_owned());
    };
    // A path in the repo, relative to the Markdown file's folder.
    let cut = url.find(['#', '?']).unwrap_or(url.len());
    let (path, suffix) = url.split_at(cut);
    let mut parts: Vec<&str> = Vec::new();
    let dir = enc(dir);
    for seg in dir.split('/').chain(path.split('/')) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let path = parts.join("/");
    let kind = if image { "raw" } else { "blob" };
    Some(if path.is_empty() {
        format!("{}/tree/{}{suffix}", at.base, at.rev)
    } else {
        // Already written as a URL path: not encoded again.
        format!("{}/{kind}/{}/{path}{suffix}", at.base, at.rev)
    })
}

// ---------------------------------------------------------------------------------------------
// Repo home

#[derive(Debug)]
struct Readme {
    name: String,
    href: String,
    /// Rendered Markdown (already made safe), or empty with `note` saying why.
    html: String,
    note: String,
}

#[derive(Template)]
#[template(path = "ui/repo/home.html")]
struct HomePage {
    chrome: Chrome,
    head: RepoHead,
    clone_cmd: String,
    remote_cmd: String,
    shallow: bool,
    /// Empty when nothing was pushed yet.
    branch: String,
    branch_count: usize,
    branch_href: String,
    latest: Option<CommitItem>,
    entries: Vec<Entry>,
    readme: Option<Readme>,
}

struct HomeData {
    branch: String,
    branch_count: usize,
    latest: Option<CommitItem>,
    entries: Vec<Entry>,
    readme: Option<(String, String, Option<Object>)>,
    shallow: bool,
}

/// `GET /{owner}/{slug}`: the default branch's files, its latest commit, README, how to clone.
pub async fn home(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let base = cx.base.clone();
    let data = st
        .hub
        .view(&cx.repo, move |v| {
            let shallow = v.is_shallow()?;
            let branches = v.branches()?;
            let chosen = branches
                .iter()
                .find(|(n, _)| *n == v.repo().default_branch)
                .or_else(|| branches.first());
            let Some((branch, head)) = chosen else {
                return Ok::<_, PageError>(HomeData {
                    branch: String::new(),
                    branch_count: 0,
                    latest: None,
                    entries: Vec::new(),
                    readme: None,
                    shallow,
                });
            };
            let at = At::new(&base, branch);
            let Some(commit) = v.commit(head)? else {
                return Err(internal(format!("branch head {head} is missing")));
            };
            let files = manifest(v, &commit.snapshot_id)?;
            let entries = list_dir(v, &files, "", &at)?.unwrap_or_default();
            let mut readme = None;
            for name in READMES {
                if let Some((path, id)) = files.iter().find(|(p, _)| p == name) {
                    readme = Some((path.clone(), at.blob(path), v.object(id)?));
                    break;
                }
            }
            Ok(HomeData {
                branch: branch.clone(),
                branch_count: branches.len(),
                latest: Some(CommitItem::new(&base, &commit)),
                entries,
                readme,
                shallow,
            })
        })
        .await?;
    let readme = match data.readme {
        None => None,
        Some((name, href, row)) => {
            let at = At::new(&cx.base, &data.branch);
            let text = match row {
                Some(row) => read_small(&st, &row).await?.map(as_text),
                None => None,
            };
            Some(match text {
                Some(Some(t)) => Readme {
                    name,
                    href,
                    html: markdown(&t, Some(Links { at: &at, dir: "" }), 2),
                    note: String::new(),
                },
                Some(None) => Readme {
                    name,
                    href,
                    html: String::new(),
                    note: "This README is not text, so it is not shown here.".to_owned(),
                },
                None => Readme {
                    name,
                    href,
                    html: String::new(),
                    note: "This README is too large to show here.".to_owned(),
                },
            })
        }
    };
    let url = format!(
        "{}/{}/{}",
        st.public_url.trim_end_matches('/'),
        cx.repo.owner,
        cx.repo.slug
    );
    let branch_href = if data.branch.is_empty() {
        String::new()
    } else {
        At::new(&cx.base, &data.branch).tree("")
    };
    Ok(html(HomePage {
        chrome: cx.chrome(""),
        head: cx.head("files"),
        clone_cmd: format!("muse clone {url}"),
        remote_cmd: format!("muse remote add origin {url}"),
        shallow: data.shallow,
        branch: data.branch,
        branch_count: data.branch_count,
        branch_href,
        latest: data.latest,
        entries: data.entries,
        readme,
    }))
}

// ---------------------------------------------------------------------------------------------
// Branches

#[derive(Debug)]
struct BranchRow {
    name: String,
    default: bool,
    tree: String,
    commits: String,
    latest: Option<CommitItem>,
}

#[derive(Template)]
#[template(path = "ui/repo/branches.html")]
struct BranchesPage {
    chrome: Chrome,
    head: RepoHead,
    branches: Vec<BranchRow>,
}

/// `GET /{owner}/{slug}/branches`: every branch and its head commit, the default first.
pub async fn branches(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let base = cx.base.clone();
    let mut rows = st
        .hub
        .view(&cx.repo, move |v| {
            let mut rows = Vec::new();
            for (name, head) in v.branches()? {
                let latest = v.commit(&head)?;
                let at = At::new(&base, &name);
                rows.push(BranchRow {
                    default: name == v.repo().default_branch,
                    tree: at.tree(""),
                    commits: commits_href(&base, &name),
                    latest: latest.map(|r| CommitItem::new(&base, &r)),
                    name,
                });
            }
            Ok::<_, PageError>(rows)
        })
        .await?;
    rows.sort_by_key(|r| !r.default);
    Ok(html(BranchesPage {
        chrome: cx.chrome("Branches"),
        head: cx.head("branches"),
        branches: rows,
    }))
}

// ---------------------------------------------------------------------------------------------
// History

#[derive(Debug, serde::Deserialize)]
pub struct Pager {
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/repo/commits.html")]
struct CommitsPage {
    chrome: Chrome,
    head: RepoHead,
    rev: String,
    branch: bool,
    tree: String,
    commits: Vec<CommitItem>,
    /// The next page, when there is one.
    older: String,
    /// The first page, when this is not it.
    newest: String,
    /// History goes on, but this hub never received the older commits.
    shallow: bool,
}

/// `GET /{owner}/{slug}/commits/{rev}?after={commit}`: first-parent history, 50 a page.
pub async fn commits(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, rev)): Path<(String, String, String)>,
    Query(pager): Query<Pager>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, PageError> {
    if let Some(r) = rev.strip_suffix("/car") {
        // `commits/{ref}/car`: the commit's DAG as a CAR file (src/web/car.rs).
        let car = crate::web::car::export(st, headers, owner, slug, r.to_owned(), query).await;
        return Ok(car.into_response());
    }
    let cx = open(&st, &headers, &owner, &slug).await?;
    let after = match pager.after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(Id::parse(a).map_err(|_| {
            PageError::bad_request("The “after” cursor must be a 64-character commit id.")
        })?),
    };
    let (base, r) = (cx.base.clone(), rev.clone());
    let page = st
        .hub
        .view(&cx.repo, move |v| {
            let Some(start) = resolve_rev(v, &r)? else {
                return Ok::<_, PageError>(None);
            };
            let mut next = match after {
                None => Some(start.commit.commit_id),
                Some(a) => match v.commit(&a)? {
                    Some(row) => row.parents.first().copied(),
                    None => {
                        return Err(PageError::not_found(format!(
                            "The commit {a} to continue from is not in this repository."
                        )));
                    }
                },
            };
            let mut items = Vec::with_capacity(PAGE);
            let mut shallow = false;
            while let Some(id) = next {
                if items.len() == PAGE {
                    break;
                }
                let Some(row) = v.commit(&id)? else {
                    shallow = true;
                    next = None;
                    break;
                };
                items.push(CommitItem::new(&base, &row));
                next = row.parents.first().copied();
            }
            let older = match (next, items.last()) {
                (Some(n), Some(last)) if v.has_commit(&n)? => {
                    format!("{}?after={}", commits_href(&base, &start.name), last.id)
                }
                (Some(_), Some(_)) => {
                    shallow = true;
                    String::new()
                }
                _ => String::new(),
            };
            Ok(Some((start.name, start.branch, items, older, shallow)))
        })
        .await?;
    let Some((name, branch, items, older, shallow)) = page else {
        return Err(PageError::not_found(format!(
            "{owner}/{slug} has no branch or commit called “{rev}”."
        )));
    };
    let newest = if after.is_some() {
        commits_href(&cx.base, &name)
    } else {
        String::new()
    };
    Ok(html(CommitsPage {
        chrome: cx.chrome(&format!("Commits on {name}")),
        head: cx.head("commits"),
        tree: At::new(&cx.base, &name).tree(""),
        rev: name,
        branch,
        commits: items,
        older,
        newest,
        shallow,
    }))
}

#[derive(Debug)]
struct Parent {
    short: String,
    href: String,
}

#[derive(Debug)]
struct Change {
    path: String,
    href: String,
    size: String,
    /// The size before, for changed files.
    was: String,
    cid: String,
}

#[derive(Template)]
#[template(path = "ui/repo/commit.html")]
struct CommitPage {
    chrome: Chrome,
    head: RepoHead,
    id: String,
    short: String,
    title: String,
    /// The message after its first line.
    body: String,
    author: String,
    committed_at: String,
    snapshot_id: String,
    tree: String,
    parents: Vec<Parent>,
    /// Short id of the first parent the changes are measured against ("" for a first commit).
    against: String,
    /// The first parent is not on this hub, so no changes can be listed.
    parent_missing: bool,
    added: Vec<Change>,
    removed: Vec<Change>,
    changed: Vec<Change>,
    /// Files left out of the lists above (more than [`CHANGES_MAX`] of a kind).
    more: usize,
}

struct CommitData {
    row: CommitRow,
    parent_missing: bool,
    added: Vec<Change>,
    removed: Vec<Change>,
    changed: Vec<Change>,
    more: usize,
}

fn change(
    v: &RepoView<'_>,
    path: &str,
    id: &Id,
    was: Option<&Id>,
    at: &At,
) -> Result<Change, PageError> {
    let row = v.object(id)?;
    let was = match was {
        Some(w) => v.object(w)?.map_or_else(String::new, |r| size(r.size())),
        None => String::new(),
    };
    Ok(Change {
        path: path.to_owned(),
        href: at.blob(path),
        size: row
            .as_ref()
            .map_or_else(|| "—".to_owned(), |r| size(r.size())),
        was,
        cid: row.map_or_else(|| id.raw_cid().to_string(), |r| object_cid(id, &r)),
    })
}

/// `GET /{owner}/{slug}/commit/{id}`: a commit and what it changed against its first parent.
pub async fn commit(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, id)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let missing = || PageError::not_found(format!("{owner}/{slug} has no commit called “{id}”."));
    let Ok(cid) = Id::parse(&id) else {
        return Err(missing());
    };
    let base = cx.base.clone();
    let data = st
        .hub
        .view(&cx.repo, move |v| {
            let Some(row) = v.commit(&cid)? else {
                return Ok::<_, PageError>(None);
            };
            let new = manifest(v, &row.snapshot_id)?;
            let old = match row.parents.first() {
                None => Some(Vec::new()),
                Some(p) => match v.commit(p)? {
                    Some(prow) => Some(manifest(v, &prow.snapshot_id)?),
                    None => None,
                },
            };
            let mut data = CommitData {
                parent_missing: old.is_none(),
                row,
                added: Vec::new(),
                removed: Vec::new(),
                changed: Vec::new(),
                more: 0,
            };
            let Some(old) = old else {
                return Ok(Some(data));
            };
            let here = At::new(&base, &cid.to_hex());
            let parent_at = data
                .row
                .parents
                .first()
                .map_or_else(|| here.clone(), |p| At::new(&base, &p.to_hex()));
            let before: HashMap<&str, &Id> = old.iter().map(|(p, i)| (p.as_str(), i)).collect();
            let after: HashMap<&str, &Id> = new.iter().map(|(p, i)| (p.as_str(), i)).collect();
            for (path, oid) in &new {
                let (list, was) = match before.get(path.as_str()) {
                    None => (&mut data.added, None),
                    Some(w) if *w != oid => (&mut data.changed, Some(*w)),
                    Some(_) => continue,
                };
                if list.len() == CHANGES_MAX {
                    data.more += 1;
                    continue;
                }
                list.push(change(v, path, oid, was, &here)?);
            }
            for (path, oid) in &old {
                if after.contains_key(path.as_str()) {
                    continue;
                }
                if data.removed.len() == CHANGES_MAX {
                    data.more += 1;
                    continue;
                }
                data.removed.push(change(v, path, oid, None, &parent_at)?);
            }
            Ok(Some(data))
        })
        .await?;
    let Some(d) = data else {
        return Err(missing());
    };
    let hex = d.row.commit_id.to_hex();
    let body = d
        .row
        .message
        .trim()
        .split_once('\n')
        .map_or_else(String::new, |(_, rest)| rest.trim().to_owned());
    Ok(html(CommitPage {
        chrome: cx.chrome(&format!("Commit {}", &hex[..12])),
        head: cx.head("commits"),
        short: hex[..12].to_owned(),
        tree: At::new(&cx.base, &hex).tree(""),
        id: hex,
        title: first_line(&d.row.message),
        body,
        author: author(&d.row.author),
        committed_at: d.row.committed_at.clone(),
        snapshot_id: d.row.snapshot_id.to_hex(),
        parents: d
            .row
            .parents
            .iter()
            .map(|p| Parent {
                short: short(p),
                href: commit_href(&cx.base, p),
            })
            .collect(),
        against: d.row.parents.first().map(short).unwrap_or_default(),
        parent_missing: d.parent_missing,
        added: d.added,
        removed: d.removed,
        changed: d.changed,
        more: d.more,
    }))
}

// ---------------------------------------------------------------------------------------------
// Tree and blob

#[derive(Template)]
#[template(path = "ui/repo/tree.html")]
struct TreePage {
    chrome: Chrome,
    head: RepoHead,
    rev: String,
    branch: bool,
    /// The folder shown ("" for the top level).
    path: String,
    crumbs: Vec<Crumb>,
    latest: CommitItem,
    entries: Vec<Entry>,
}

/// Where `{rev}/{path}` points.
enum Found {
    Dir(Rev, String, Vec<Entry>),
    File(Rev, String, Id, Option<Object>),
}

/// Resolves `{rev}/{path}` to a folder or a file; `None` when neither exists.
async fn find(st: &AppState, cx: &Ctx, rest: String) -> Result<Option<Found>, PageError> {
    let base = cx.base.clone();
    st.hub
        .view(&cx.repo, move |v| {
            let Some((rev, path)) = split_rev(v, &rest)? else {
                return Ok::<_, PageError>(None);
            };
            let files = manifest(v, &rev.commit.snapshot_id)?;
            if !path.is_empty()
                && let Ok(i) = files.binary_search_by(|(p, _)| p.as_str().cmp(&path))
            {
                let id = files[i].1;
                let row = v.object(&id)?;
                return Ok(Some(Found::File(rev, path, id, row)));
            }
            let at = At::new(&base, &rev.name);
            Ok(list_dir(v, &files, &path, &at)?.map(|entries| Found::Dir(rev, path, entries)))
        })
        .await
}

fn no_path(cx: &Ctx, rest: &str) -> PageError {
    PageError::not_found(format!(
        "{}/{} has nothing at “{rest}”: no such branch, commit, folder or file.",
        cx.repo.owner, cx.repo.slug
    ))
}

/// `GET /{owner}/{slug}/tree/{rev}/{path…}`: a folder at any branch or commit.
pub async fn tree(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, rest)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    match find(&st, &cx, rest.clone()).await? {
        None => Err(no_path(&cx, &rest)),
        Some(Found::File(rev, path, _, _)) => {
            Ok(Redirect::to(&At::new(&cx.base, &rev.name).blob(&path)).into_response())
        }
        Some(Found::Dir(rev, path, entries)) => {
            let at = At::new(&cx.base, &rev.name);
            let title = if path.is_empty() {
                format!("Files at {}", rev.name)
            } else {
                format!("{path} at {}", rev.name)
            };
            Ok(html(TreePage {
                chrome: cx.chrome(&title),
                head: cx.head("files"),
                crumbs: crumbs(&cx.repo.slug, &path, &at),
                latest: CommitItem::new(&cx.base, &rev.commit),
                rev: rev.name,
                branch: rev.branch,
                path,
                entries,
            }))
        }
    }
}

#[derive(Template)]
#[template(path = "ui/repo/blob.html")]
struct BlobPage {
    chrome: Chrome,
    head: RepoHead,
    rev: String,
    branch: bool,
    path: String,
    name: String,
    crumbs: Vec<Crumb>,
    latest: CommitItem,
    size: String,
    /// The exact size, with thousands separators.
    bytes: String,
    object_id: String,
    cid: String,
    raw: String,
    pianoroll: String,
    audio: bool,
    midi: bool,
    /// The file's text when it is a small text file.
    text: Option<String>,
    /// A Markdown file rendered (already made safe); empty for other files.
    rendered: String,
    lines: usize,
    /// Why there is no preview, when there is none.
    note: String,
}

/// `GET /{owner}/{slug}/blob/{rev}/{path}`: one file, with a player, piano roll or preview.
pub async fn blob(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, rest)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let (rev, path, id, row) = match find(&st, &cx, rest.clone()).await? {
        None => return Err(no_path(&cx, &rest)),
        Some(Found::Dir(rev, path, _)) => {
            return Ok(Redirect::to(&At::new(&cx.base, &rev.name).tree(&path)).into_response());
        }
        Some(Found::File(rev, path, id, row)) => (rev, path, id, row),
    };
    let Some(row) = row else {
        return Err(internal(format!("object {id} of {path} is missing")));
    };
    let at = At::new(&cx.base, &rev.name);
    let ext = extension(&path);
    let audio = AUDIO.contains(&ext.as_str());
    let midi = MIDI.contains(&ext.as_str());
    let (mut text, mut note) = (None, String::new());
    if !audio && !midi {
        if row.size() > PREVIEW_MAX {
            note = "This file is too large to preview here; download it instead.".to_owned();
        } else {
            match read_small(&st, &row).await?.and_then(as_text) {
                Some(t) => text = Some(t),
                None => note = "This file is not text, so there is no preview.".to_owned(),
            }
        }
    }
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let rendered = match &text {
        Some(t) if matches!(ext.as_str(), "md" | "markdown") => {
            markdown(t, Some(Links { at: &at, dir }), 1)
        }
        _ => String::new(),
    };
    let mut trail = crumbs(&cx.repo.slug, dir, &at);
    trail.push(Crumb {
        name: name.clone(),
        href: at.blob(&path),
    });
    Ok(html(BlobPage {
        chrome: cx.chrome(&format!("{path} at {}", rev.name)),
        head: cx.head("files"),
        crumbs: trail,
        latest: CommitItem::new(&cx.base, &rev.commit),
        size: size(row.size()),
        bytes: thousands(row.size()),
        object_id: id.to_hex(),
        cid: object_cid(&id, &row),
        raw: at.raw(&path),
        pianoroll: at.pianoroll(&path),
        audio,
        midi,
        lines: text.as_deref().map_or(0, |t| t.lines().count()),
        text,
        rendered,
        note,
        rev: rev.name,
        branch: rev.branch,
        name,
        path,
    }))
}

// ---------------------------------------------------------------------------------------------
// Releases

fn json_str(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned()
}

#[derive(Debug)]
struct ReleaseRow {
    tag: String,
    href: String,
    title: String,
    channel: String,
    draft: bool,
    commit_short: String,
    commit_href: String,
    when: String,
    at: String,
}

fn release_row(base: &str, rel: &repos::Release) -> (ReleaseRow, serde_json::Value) {
    let rec: serde_json::Value = serde_json::from_str(&rel.record).unwrap_or_default();
    let commit = json_str(&rec, "commit_id");
    let (commit_short, commit_href) = match Id::parse(&commit) {
        Ok(id) => (short(&id), commit_href(base, &id)),
        Err(_) => (String::new(), String::new()),
    };
    let at = json_str(&rec, "created_at");
    let row = ReleaseRow {
        href: format!("{base}/release/{}", enc(&rel.tag)),
        tag: rel.tag.clone(),
        title: json_str(&rec, "title"),
        channel: rel.channel.clone(),
        draft: rel.is_draft,
        commit_short,
        commit_href,
        when: when(&at),
        at,
    };
    (row, rec)
}

#[derive(Template)]
#[template(path = "ui/repo/releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    head: RepoHead,
    releases: Vec<ReleaseRow>,
    owner_view: bool,
}

/// `GET /{owner}/{slug}/releases` from a browser (the CLI gets msgpack at the same URL):
/// newest first; drafts only for the owner.
pub async fn releases(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let drafts = cx.is_owner();
    let list = st.hub.view(&cx.repo, move |v| v.releases(drafts)).await?;
    let releases = list.iter().map(|r| release_row(&cx.base, r).0).collect();
    Ok(html(ReleasesPage {
        chrome: cx.chrome("Releases"),
        head: cx.head("releases"),
        releases,
        owner_view: drafts,
    }))
}

#[derive(Debug)]
struct LogEntry {
    message: String,
    short: String,
    href: String,
    author: String,
    bump: String,
}

#[derive(Template)]
#[template(path = "ui/repo/release.html")]
struct ReleasePage {
    chrome: Chrome,
    head: RepoHead,
    rel: ReleaseRow,
    body: String,
    changelog: Vec<LogEntry>,
}

/// `GET /{owner}/{slug}/release/{tag}`: a release's notes, changelog and commit.
pub async fn release(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((owner, slug, tag)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let cx = open(&st, &headers, &owner, &slug).await?;
    let t = tag.clone();
    let found = st
        .hub
        .view(&cx.repo, move |v| v.release(&t))
        .await?
        .filter(|r| !r.is_draft || cx.is_owner());
    let Some(rel) = found else {
        return Err(PageError::not_found(format!(
            "{owner}/{slug} has no release called “{tag}”."
        )));
    };
    let (row, rec) = release_row(&cx.base, &rel);
    let at = Id::parse(&json_str(&rec, "commit_id"))
        .ok()
        .map(|id| At::new(&cx.base, &id.to_hex()));
    let body = markdown(
        &json_str(&rec, "body"),
        at.as_ref().map(|at| Links { at, dir: "" }),
        2,
    );
    let changelog = rec
        .get("changelog")
        .and_then(serde_json::Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let (short_id, href) = match Id::parse(&json_str(e, "commit_id")) {
                        Ok(id) => (short(&id), commit_href(&cx.base, &id)),
                        Err(_) => (String::new(), String::new()),
                    };
                    let bump = json_str(e, "sem_ver_bump");
                    LogEntry {
                        message: first_line(&json_str(e, "message")),
                        short: short_id,
                        href,
                        author: json_str(e, "author"),
                        bump: if bump == "none" { String::new() } else { bump },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(html(ReleasePage {
        chrome: cx.chrome(&format!("Release {}", rel.tag)),
        head: cx.head("releases"),
        rel: row,
        body,
        changelog,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_but_keep_slashes() {
        assert_eq!(enc("feature/chorus"), "feature/chorus");
        assert_eq!(enc("my song.wav"), "my%20song.wav");
        assert_eq!(enc("é?#"), "%C3%A9%3F%23");
        let at = At::new("/alice/song", "feature/chorus");
        assert_eq!(at.tree(""), "/alice/song/tree/feature/chorus");
        assert_eq!(
            at.blob("tracks/drums.mid"),
            "/alice/song/blob/feature/chorus/tracks/drums.mid"
        );
    }

    #[test]
    fn byte_counts_have_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_300_012), "1,300,012");
    }

    #[test]
    fn times_read_naturally() {
        assert_eq!(when("2026-03-16T12:00:00+00:00"), "2026-03-16 12:00 UTC");
        assert_eq!(when("2026-03-16T12:00:00.5Z"), "2026-03-16 12:00 UTC");
        assert_eq!(when("2026-03-16T12:00:00+02:00"), "2026-03-16 12:00 +02:00");
        assert_eq!(when("yesterday"), "yesterday");
    }

    #[test]
    fn markdown_never_passes_html_through() {
        let html = markdown(
            "# Song\n\nA *verse* <script>alert(1)</script>\n\n<div onclick=\"x()\">hi</div>\n\n<!-- note -->\n",
            None,
            2,
        );
        assert!(html.contains("<h3>Song</h3>"), "{html}");
        assert!(html.contains("<em>verse</em>"));
        assert!(!html.contains("<script") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<div") && html.contains("&lt;div onclick"));
        assert!(!html.contains("note"));
    }

    #[test]
    fn markdown_drops_unsafe_links() {
        for bad in [
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x](&#106;avascript:alert(1))",
            "<javascript:alert(1)>",
            "[x](vbscript:msgbox)",
            "[x](data:text/html,hi)",
            "![x](javascript:alert(1))",
        ] {
            let html = markdown(bad, None, 2);
            assert!(
                !html.contains("href=") && !html.contains("src="),
                "{bad} → {html}"
            );
        }
        let html = markdown(
            "[site](https://example.org) [top](#top) [t](take:2.md)",
            None,
            1,
        );
        assert!(
            !html.contains("take:2.md\""),
            "an unknown scheme is dropped: {html}"
        );
        assert!(html.contains("href=\"https://example.org\"") && html.contains("href=\"#top\""));
    }

    #[test]
    fn markdown_relative_links_point_into_the_repo() {
        let at = At::new("/alice/song", "main");
        let top = Some(Links { at: &at, dir: "" });
        let html = markdown(
            "[drums](./tracks/drums.mid) ![cover](art/cover.png)",
            top,
            2,
        );
        assert!(
            html.contains("href=\"/alice/song/blob/main/tracks/drums.mid\""),
            "{html}"
        );
        assert!(
            html.contains("src=\"/alice/song/raw/main/art/cover.png\""),
            "{html}"
        );
        let nested = Some(Links {
            at: &at,
            dir: "notes/old mixes",
        });
        let html = markdown("[up](../../lyrics.txt) [v2](v2.md#end) # Top", nested, 1);
        assert!(
            html.contains("href=\"/alice/song/blob/main/lyrics.txt\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/alice/song/blob/main/notes/old%20mixes/v2.md#end\""),
            "{html}"
        );
        assert!(markdown("# Top", None, 1).contains("<h2>Top</h2>"));
        let html = markdown("[a](takes/2:30.md)", top, 2);
        assert!(
            html.contains("href=\"/alice/song/blob/main/takes/2:30.md\""),
            "{html}"
        );
        let html = markdown("Write to <alice@example.org>.", top, 2);
        assert!(html.contains("href=\"mailto:alice@example.org\""), "{html}");
        assert!(markdown("#### Deep", None, 2).contains("<h6>Deep</h6>"));
    }

    #[test]
    fn extensions_ignore_case_and_dotfiles() {
        assert_eq!(extension("tracks/drums.MID"), "mid");
        assert_eq!(extension(".hidden"), "");
        assert_eq!(extension("README"), "");
    }
}
