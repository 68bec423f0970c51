//! The repository pages as a browser sees them: home, branches, commits (paginated), one
//! commit's changes, tree and blob views, releases; their 404s and privacy. The Muse CLI keeps
//! getting msgpack at the shared `/{owner}/{slug}/releases` address.

use musehub::cids::Id;
use reqwest::StatusCode;

use crate::harness::{Commit, TestHub, decode, field, noise};
use crate::web_ui::page;

const T1: &str = "2026-03-16T12:00:00+00:00";
const T2: &str = "2026-03-17T09:30:00.250000+00:00";
const T3: &str = "2026-03-18T21:15:00+00:00";
const T4: &str = "2026-03-19T08:00:00+00:00";

const README: &[u8] = b"# Late Train\n\nA song about *late trains* and early mornings.\n\n\
<script>alert('readme')</script>\n\n## Parts\n\n- [drums](tracks/drums.mid)\n- [bad](javascript:alert(1))\n";
const README2: &[u8] = b"# Late Train\n\nNow with a chorus.\n";
const LYRICS1: &[u8] = b"the platform lights are counting me\n";
const LYRICS2: &[u8] = b"the platform lights are counting me\nthe station sleeps\n";
const LYRICS3: &[u8] =
    b"the platform lights are counting me\nthe station sleeps\n<b>and so do I</b>\n";
const DRUMS: &[u8] =
    b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00";
const KEYS: &[u8] =
    b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x01";
const CHORUS: &[u8] =
    b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x02";
const GUIDE: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt guide";
const IDEA: &[u8] = b"hum it slower\n";

/// A WAV stem larger than one 1 MiB chunk, so its CID is a UnixFS root, not a raw block.
fn bass() -> Vec<u8> {
    let mut b = b"RIFF\x00\x00\x00\x00WAVEfmt ".to_vec();
    b.extend(noise(7, 1_300_000));
    b
}

/// What [`song`] pushed.
struct Song {
    hub: TestHub,
    alice: String,
    c1: Commit,
    c2: Commit,
    c3: Commit,
    c4: Commit,
}

/// alice/song: three commits on main (added, changed and removed files, a MIDI track, WAV
/// stems, a README with HTML in it), one on feature/chorus, and a release of main's tip.
async fn song() -> Song {
    let hub = TestHub::spawn().await;
    let alice = hub.user("alice").await;
    hub.user("bob").await;
    let bass = bass();
    let c1 = Commit::new(
        &[],
        &[("README.md", README), ("lyrics.txt", LYRICS1)],
        "First verse",
        T1,
    );
    let c2 = Commit::new(
        &[c1.id],
        &[
            ("README.md", README),
            ("lyrics.txt", LYRICS2),
            ("notes/first idea.txt", IDEA),
            ("stems/bass.wav", bass.as_slice()),
            ("stems/guide.wav", GUIDE),
            ("tracks/drums.mid", DRUMS),
        ],
        "Add drums and the bass stem",
        T2,
    );
    let c3 = Commit::new(
        &[c2.id],
        &[
            ("README.md", README),
            ("lyrics.txt", LYRICS3),
            ("notes/first idea.txt", IDEA),
            ("stems/bass.wav", bass.as_slice()),
            ("tracks/drums.mid", DRUMS),
            ("tracks/keys.mid", KEYS),
        ],
        "Keys in the bridge\n\nThe guide stem is gone: the drums carry the time now.",
        T3,
    );
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &[
                README,
                LYRICS1,
                LYRICS2,
                LYRICS3,
                IDEA,
                bass.as_slice(),
                GUIDE,
                DRUMS,
                KEYS,
            ],
            &[c1.clone(), c2.clone(), c3.clone()],
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let c4 = Commit::new(
        &[c3.id],
        &[
            ("README.md", README2),
            ("lyrics.txt", LYRICS3),
            ("notes/first idea.txt", IDEA),
            ("stems/bass.wav", bass.as_slice()),
            ("tracks/chorus.mid", CHORUS),
            ("tracks/drums.mid", DRUMS),
            ("tracks/keys.mid", KEYS),
        ],
        "Sketch the chorus",
        T4,
    );
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &[README2, CHORUS],
            std::slice::from_ref(&c4),
            "feature/chorus",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let (s, b) = release(&hub, &alice, "alice/song", "v1.0.0", &c3.id, false).await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    let (s, _) = release(&hub, &alice, "alice/song", "v1.1.0-beta.1", &c3.id, true).await;
    assert_eq!(s, StatusCode::CREATED);
    Song {
        hub,
        alice,
        c1,
        c2,
        c3,
        c4,
    }
}

/// Publishes a release the way `muse release push` does (JSON body).
async fn release(
    hub: &TestHub,
    token: &str,
    repo: &str,
    tag: &str,
    commit: &Id,
    draft: bool,
) -> (StatusCode, bytes::Bytes) {
    let body = serde_json::json!({
        "release_id": "11111111-2222-4333-8444-555555555555",
        "repo_id": "local", "tag": tag,
        "semver": {"major": 1, "minor": 0, "patch": 0, "pre": "", "build": ""},
        "channel": "", "commit_id": commit.to_hex(), "snapshot_id": "", "title": "First cut",
        "body": "## Notes\n\nMixed on the *night bus*. <img src=x onerror=alert(2)>\n\n[site](javascript:alert(3))",
        "changelog": [{"commit_id": commit.to_hex(), "message": "Keys in the bridge\n\nmore", "sem_ver_bump": "minor",
            "breaking_changes": [], "author": "alice", "committed_at": T3, "agent_id": "", "model_id": ""}],
        "agent_id": "", "model_id": "", "is_draft": draft, "gpg_signature": "", "created_at": T4
    });
    hub.request(
        "POST",
        &format!("/{repo}/releases"),
        Some(token),
        Some((body.to_string().into_bytes(), "application/json")),
    )
    .await
}

/// A page that must answer 200; returns its HTML.
async fn ok(hub: &TestHub, path: &str) -> String {
    let (s, body) = page(hub, path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {body}");
    body
}

/// GETs `path` as a browser and returns the status and `Location` of a redirect.
async fn redirect(hub: &TestHub, path: &str) -> (StatusCode, String) {
    let res = hub
        .client
        .get(hub.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let loc = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status(), loc)
}

fn count(body: &str, needle: &str) -> usize {
    body.matches(needle).count()
}

#[tokio::test]
async fn repo_home_shows_files_readme_and_clone_commands() {
    let s = song().await;
    let body = ok(&s.hub, "/alice/song").await;
    // Header: name, visibility, tabs with the current one marked.
    assert!(
        body.contains("<h1>") && body.contains(">song</a>"),
        "{body}"
    );
    assert!(body.contains("<span class=\"badge\">public</span>"));
    assert!(body.contains("href=\"/alice/song\" aria-current=\"page\">Files</a>"));
    assert!(body.contains("href=\"/alice/song/commits/main\">Commits</a>"));
    // Latest commit on the default branch.
    assert!(body.contains("Keys in the bridge") && body.contains(&s.c3.id.to_hex()[..12]));
    assert!(body.contains(&format!("href=\"/alice/song/commit/{}\"", s.c3.id)));
    assert!(body.contains("unknown"), "no author: shown as unknown");
    // Top-level listing: folders first, then files with sizes.
    let notes = body.find(">notes/</a>").expect("notes folder");
    let stems = body.find(">stems/</a>").expect("stems folder");
    let tracks = body.find(">tracks/</a>").expect("tracks folder");
    let readme = body.find(">README.md</a>").expect("README file");
    let lyrics = body.find(">lyrics.txt</a>").expect("lyrics file");
    assert!(notes < stems && stems < tracks && tracks < lyrics && lyrics < readme);
    assert!(body.contains("href=\"/alice/song/tree/main/tracks\""));
    assert!(body.contains("href=\"/alice/song/blob/main/lyrics.txt\""));
    assert!(body.contains(&format!("{} bytes", LYRICS3.len())));
    assert!(body.contains("2 files"), "tracks holds two files");
    assert!(
        !body.contains("chorus.mid"),
        "feature/chorus is not the default branch"
    );
    // README as safe Markdown.
    assert!(body.contains("<em>late trains</em>"));
    assert!(body.contains("<h3>Late Train</h3>") && body.contains("<h4>Parts</h4>"));
    assert!(
        !body.contains("<script>alert"),
        "raw HTML never passes through"
    );
    assert!(body.contains("&lt;script&gt;alert("));
    assert!(
        !body.contains("javascript:"),
        "javascript: links are dropped"
    );
    assert!(body.contains("href=\"/alice/song/blob/main/tracks/drums.mid\""));
    // Clone instructions with copy buttons (the script is optional).
    assert!(body.contains("<pre><code id=\"cmd-clone\">muse clone http://127.0.0.1:"));
    assert!(body.contains("/alice/song</code></pre>"));
    assert!(body.contains("data-copy=\"muse clone http://127.0.0.1:"));
    assert!(body.contains("data-copy=\"muse remote add origin http://127.0.0.1:"));
    assert!(body.contains("<script src=\"/assets/js/copy.js\" defer></script>"));
    assert!(!body.contains("Shallow history"));
    let res = s
        .hub
        .client
        .get(s.hub.url("/assets/js/copy.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("data-copy"));
}

#[tokio::test]
async fn empty_and_shallow_repos_say_so() {
    let s = song().await;
    s.hub.repo("alice", "empty", false).await;
    let body = ok(&s.hub, "/alice/empty").await;
    assert!(body.contains("Nothing pushed yet"), "{body}");
    assert!(body.contains("muse remote add origin http://127.0.0.1:"));
    assert!(body.contains("muse push origin main"));
    let body = ok(&s.hub, "/alice/empty/branches").await;
    assert!(body.contains("no branches"));
    assert_eq!(
        page(&s.hub, "/alice/empty/commits/main").await.0,
        StatusCode::NOT_FOUND
    );

    // A commit whose parent never reached this hub.
    let ghost = Id::of(b"a parent pushed elsewhere");
    let c = Commit::new(
        &[ghost],
        &[("lyrics.txt", LYRICS1)],
        "From a partial copy",
        T1,
    );
    let (st, b) = s
        .hub
        .push(
            "alice/partial",
            &s.alice,
            &[LYRICS1],
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    assert!(
        ok(&s.hub, "/alice/partial")
            .await
            .contains("Shallow history")
    );
    assert!(
        ok(&s.hub, "/alice/partial/commits/main")
            .await
            .contains("never received")
    );
    let body = ok(&s.hub, &format!("/alice/partial/commit/{}", c.id)).await;
    assert!(body.contains("never pushed to this hub"), "{body}");
}

#[tokio::test]
async fn branches_page_lists_every_branch() {
    let s = song().await;
    let body = ok(&s.hub, "/alice/song/branches").await;
    assert!(body.contains("aria-current=\"page\">Branches</a>"));
    let main = body.find(">main</a>").expect("main");
    let feature = body.find(">feature/chorus</a>").expect("feature/chorus");
    assert!(main < feature, "the default branch comes first");
    assert!(body.contains("<span class=\"badge\">default</span>"));
    assert_eq!(count(&body, ">default</span>"), 1);
    assert!(body.contains("href=\"/alice/song/tree/feature/chorus\""));
    assert!(body.contains("href=\"/alice/song/commits/feature/chorus\""));
    assert!(body.contains("Sketch the chorus") && body.contains(&s.c4.id.to_hex()[..12]));
    assert!(body.contains("Keys in the bridge"));
    assert!(body.contains("<th scope=\"col\">Branch</th>"));
}

#[tokio::test]
async fn commits_follow_first_parents_from_a_branch_or_commit() {
    let s = song().await;
    let body = ok(&s.hub, "/alice/song/commits/main").await;
    assert_eq!(count(&body, "class=\"repo-commit-title\""), 3);
    let (a, b, c) = (
        body.find("Keys in the bridge").unwrap(),
        body.find("Add drums and the bass stem").unwrap(),
        body.find("First verse").unwrap(),
    );
    assert!(a < b && b < c, "newest first");
    assert!(!body.contains("Older commits"));
    assert!(body.contains("2026-03-17 09:30 UTC"));
    assert!(body.contains(&format!("datetime=\"{T2}\"")));

    // A branch name with a slash, and a commit id.
    let body = ok(&s.hub, "/alice/song/commits/feature/chorus").await;
    assert_eq!(count(&body, "class=\"repo-commit-title\""), 4);
    assert!(body.contains("Sketch the chorus"));
    let body = ok(&s.hub, &format!("/alice/song/commits/{}", s.c2.id)).await;
    assert_eq!(count(&body, "class=\"repo-commit-title\""), 2);
    assert!(!body.contains("Keys in the bridge"));
    let body = ok(
        &s.hub,
        &format!("/alice/song/commits/main?after={}", s.c2.id),
    )
    .await;
    assert_eq!(count(&body, "class=\"repo-commit-title\""), 1);
    assert!(body.contains("First verse") && body.contains("Newest commits"));
}

#[tokio::test]
async fn commits_paginate_fifty_at_a_time() {
    let hub = TestHub::spawn().await;
    let alice = hub.user("alice").await;
    let contents: Vec<Vec<u8>> = (0..120)
        .map(|i| format!("take {i}\n").into_bytes())
        .collect();
    let mut commits: Vec<Commit> = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let parents: Vec<Id> = commits.last().map(|c| c.id).into_iter().collect();
        let at = format!("2026-04-01T10:{:02}:{:02}+00:00", i / 60, i % 60);
        commits.push(Commit::new(
            &parents,
            &[("take.txt", content)],
            &format!("Take number {i:03}"),
            &at,
        ));
    }
    let objects: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    let (s, b) = hub
        .push("alice/long", &alice, &objects, &commits, "main", false)
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));

    let older = |body: &str| -> Option<String> {
        let end = body.find("\" rel=\"next\"")?;
        let start = body[..end].rfind("href=\"")? + 6;
        Some(body[start..end].replace("&amp;", "&"))
    };
    let p1 = ok(&hub, "/alice/long/commits/main").await;
    assert_eq!(count(&p1, "class=\"repo-commit-title\""), 50);
    assert!(p1.contains("Take number 119") && p1.contains("Take number 070"));
    assert!(!p1.contains("Take number 069"));
    let next = older(&p1).expect("an Older link");
    assert_eq!(
        next,
        format!("/alice/long/commits/main?after={}", commits[70].id)
    );
    let p2 = ok(&hub, &next).await;
    assert_eq!(count(&p2, "class=\"repo-commit-title\""), 50);
    assert!(p2.contains("Take number 069") && p2.contains("Take number 020"));
    assert!(!p2.contains("Take number 070") && !p2.contains("Take number 019"));
    let p3 = ok(&hub, &older(&p2).expect("a second Older link")).await;
    assert_eq!(count(&p3, "class=\"repo-commit-title\""), 20);
    assert!(p3.contains("Take number 019") && p3.contains("Take number 000"));
    assert!(older(&p3).is_none(), "the first commit ends the history");
    assert!(p3.contains("href=\"/alice/long/commits/main\">Newest commits</a>"));

    // Bad cursors.
    assert_eq!(
        page(&hub, "/alice/long/commits/main?after=nothex").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        page(
            &hub,
            &format!("/alice/long/commits/main?after={}", Id::of(b"nope"))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn commit_page_lists_added_removed_and_changed_files() {
    let s = song().await;
    let body = ok(&s.hub, &format!("/alice/song/commit/{}", s.c3.id)).await;
    assert!(body.contains("<h2 id=\"commit-title\">Keys in the bridge</h2>"));
    assert!(body.contains("The guide stem is gone: the drums carry the time now."));
    assert!(
        body.contains(&format!("<time datetime=\"{T3}\">{T3}</time>")),
        "verbatim time"
    );
    assert!(body.contains(&s.c3.id.to_hex()) && body.contains(&s.c3.snapshot_id.to_hex()));
    assert!(body.contains(&format!(
        "<a class=\"mono\" href=\"/alice/song/commit/{}\">{}</a>",
        s.c2.id,
        &s.c2.id.to_hex()[..12]
    )));
    assert!(body.contains("1 added, 1 removed, 1 changed"), "{body}");
    let section = |name: &str| -> String {
        let start = body.find(&format!("<h3>{name}</h3>")).expect(name);
        let rest = &body[start..];
        rest[..rest.find("</table>").unwrap()].to_owned()
    };
    let added = section("Added");
    assert!(added.contains(&format!(
        "href=\"/alice/song/blob/{}/tracks/keys.mid\"",
        s.c3.id
    )));
    assert!(added.contains(&Id::of(KEYS).raw_cid().to_string()));
    let removed = section("Removed");
    assert!(removed.contains(&format!(
        "href=\"/alice/song/blob/{}/stems/guide.wav\"",
        s.c2.id
    )));
    assert!(removed.contains(&Id::of(GUIDE).raw_cid().to_string()));
    let changed = section("Changed");
    assert!(changed.contains(">lyrics.txt</a>"));
    assert!(changed.contains(&Id::of(LYRICS3).raw_cid().to_string()));
    assert!(
        !changed.contains("README.md"),
        "unchanged files are not listed"
    );

    // The first commit: everything is new; its big stem has a UnixFS root CID.
    let body = ok(&s.hub, &format!("/alice/song/commit/{}", s.c1.id)).await;
    assert!(body.contains("Everything in the first commit is new"));
    assert!(body.contains("2 added, 0 removed, 0 changed"));
    let body = ok(&s.hub, &format!("/alice/song/commit/{}", s.c2.id)).await;
    let raw = Id::of(&bass()).raw_cid().to_string();
    assert!(
        !body.contains(&raw),
        "a multi-chunk object's CID is its root, not a raw block"
    );
    assert!(body.contains(">stems/bass.wav</a>") && body.contains("bafybei"));
}

#[tokio::test]
async fn tree_pages_browse_folders_at_any_revision() {
    let s = song().await;
    let body = ok(&s.hub, "/alice/song/tree/main").await;
    assert!(body.contains("All files") && body.contains(">tracks/</a>"));
    assert!(body.contains("aria-label=\"Breadcrumb\""));
    let body = ok(&s.hub, "/alice/song/tree/main/tracks").await;
    assert!(body.contains(">drums.mid</a>") && body.contains(">keys.mid</a>"));
    assert!(!body.contains("chorus.mid") && !body.contains(">lyrics.txt</a>"));
    assert!(body.contains("<a href=\"/alice/song/tree/main\">song</a>"));
    assert!(
        body.contains("<a href=\"/alice/song/tree/main/tracks\" aria-current=\"page\">tracks</a>")
    );
    assert!(body.contains("href=\"/alice/song/blob/main/tracks/drums.mid\""));
    // A branch with a slash in its name, and a commit id.
    let body = ok(&s.hub, "/alice/song/tree/feature/chorus/tracks").await;
    assert!(body.contains(">chorus.mid</a>") && body.contains(">drums.mid</a>"));
    assert!(body.contains("href=\"/alice/song/blob/feature/chorus/tracks/chorus.mid\""));
    let body = ok(&s.hub, &format!("/alice/song/tree/{}", s.c1.id)).await;
    assert!(body.contains(">lyrics.txt</a>") && !body.contains(">tracks/</a>"));
    let body = ok(&s.hub, &format!("/alice/song/tree/{}/stems", s.c2.id)).await;
    assert!(body.contains(">guide.wav</a>"));
    // Names with spaces are encoded in links and decoded in addresses.
    let body = ok(&s.hub, "/alice/song/tree/main/notes").await;
    assert!(body.contains("href=\"/alice/song/blob/main/notes/first%20idea.txt\""));
    assert!(
        ok(&s.hub, "/alice/song/blob/main/notes/first%20idea.txt")
            .await
            .contains("hum it slower")
    );
    // A file under /tree and a folder under /blob go where they belong.
    assert_eq!(
        redirect(&s.hub, "/alice/song/tree/main/lyrics.txt").await,
        (
            StatusCode::SEE_OTHER,
            "/alice/song/blob/main/lyrics.txt".to_owned()
        )
    );
    assert_eq!(
        redirect(&s.hub, "/alice/song/blob/feature/chorus/tracks").await,
        (
            StatusCode::SEE_OTHER,
            "/alice/song/tree/feature/chorus/tracks".to_owned()
        )
    );
}

#[tokio::test]
async fn blob_pages_preview_play_and_draw() {
    let s = song().await;
    // Text: escaped preview, ids, download link.
    let body = ok(&s.hub, "/alice/song/blob/main/lyrics.txt").await;
    assert!(body.contains("the platform lights are counting me"));
    assert!(
        body.contains("&#60;b&#62;and so do I&#60;/b&#62;") && !body.contains("<b>and so do I")
    );
    assert!(body.contains(&Id::of(LYRICS3).to_hex()));
    assert!(body.contains(&Id::of(LYRICS3).raw_cid().to_string()));
    assert!(body.contains("href=\"/alice/song/raw/main/lyrics.txt\""));
    assert!(body.contains(&format!("({} bytes)", LYRICS3.len())));
    assert!(body.contains("3 lines"));
    // Markdown: rendered safely, source beside it.
    let body = ok(&s.hub, "/alice/song/blob/main/README.md").await;
    assert!(body.contains("<h2>Late Train</h2>"), "{body}");
    assert!(!body.contains("<script>alert"));
    assert!(body.contains("Markdown source"));
    // MIDI: the piano roll.
    let body = ok(&s.hub, "/alice/song/blob/main/tracks/drums.mid").await;
    assert!(body.contains(
        "<img src=\"/alice/song/pianoroll/main/tracks/drums.mid\" alt=\"Piano roll of tracks/drums.mid\">"
    ));
    assert!(body.contains("href=\"/alice/song/raw/main/tracks/drums.mid\""));
    assert!(body.contains("<script src=\"/assets/js/pianoroll.js\" defer></script>"));
    // Audio: a player with a download fallback; a multi-chunk object's root CID.
    let body = ok(&s.hub, "/alice/song/blob/main/stems/bass.wav").await;
    assert!(body.contains(
        "<audio controls preload=\"metadata\" src=\"/alice/song/raw/main/stems/bass.wav\">"
    ));
    assert!(body.contains("Download bass.wav"));
    let bass = bass();
    assert!(body.contains(&Id::of(&bass).to_hex()));
    assert_eq!(bass.len(), 1_300_016);
    assert!(body.contains("(1,300,016 bytes)"));
    assert!(body.contains("bafybei") && !body.contains(&Id::of(&bass).raw_cid().to_string()));
    // At a commit id, on another branch.
    let body = ok(
        &s.hub,
        &format!("/alice/song/blob/{}/stems/guide.wav", s.c2.id),
    )
    .await;
    assert!(body.contains(&format!(
        "src=\"/alice/song/raw/{}/stems/guide.wav\"",
        s.c2.id
    )));
    let body = ok(&s.hub, "/alice/song/blob/feature/chorus/README.md").await;
    assert!(body.contains("Now with a chorus."));
}

#[tokio::test]
async fn releases_list_and_page() {
    let s = song().await;
    let body = ok(&s.hub, "/alice/song/releases").await;
    assert!(body.contains("aria-current=\"page\">Releases</a>"));
    assert!(body.contains("href=\"/alice/song/release/v1.0.0\">v1.0.0</a>"));
    assert!(body.contains("First cut") && body.contains(">stable</span>"));
    assert!(body.contains(&format!("href=\"/alice/song/commit/{}\"", s.c3.id)));
    assert!(body.contains("2026-03-19 08:00 UTC"));
    assert!(
        !body.contains("v1.1.0-beta.1"),
        "drafts are only for the owner"
    );

    let body = ok(&s.hub, "/alice/song/release/v1.0.0").await;
    assert!(body.contains("v1.0.0") && body.contains("First cut"));
    assert!(body.contains("<h4>Notes</h4>") && body.contains("<em>night bus</em>"));
    assert!(!body.contains("<img src=x") && body.contains("&lt;img src=x"));
    assert!(!body.contains("javascript:"));
    assert!(body.contains("Keys in the bridge") && body.contains(">minor</span>"));
    assert!(body.contains(&format!("href=\"/alice/song/commit/{}\"", s.c3.id)));
    assert!(body.contains("Not pinned beyond this hub yet."));
    assert_eq!(
        page(&s.hub, "/alice/song/release/v1.1.0-beta.1").await.0,
        StatusCode::NOT_FOUND
    );

    // The Muse CLI still gets msgpack at the same address.
    let (st, b) = s.hub.get("/alice/song/releases", None).await;
    assert_eq!(st, StatusCode::OK);
    let v = decode(&b);
    let list = field(&v, "releases").as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(field(&list[0], "tag").as_str(), Some("v1.0.0"));
    let (st, b) = s
        .hub
        .get("/alice/song/releases?include_drafts=true", Some(&s.alice))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(field(&decode(&b), "releases").as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_things_are_404_pages() {
    let s = song().await;
    let zeros = "0".repeat(64);
    for path in [
        "/alice/nope".to_owned(),
        "/nobody/song".to_owned(),
        "/alice/nope/branches".to_owned(),
        "/alice/song/commits/nope".to_owned(),
        format!("/alice/song/commits/{zeros}"),
        format!("/alice/song/commit/{zeros}"),
        "/alice/song/commit/not-an-id".to_owned(),
        "/alice/song/tree/nope".to_owned(),
        "/alice/song/tree/main/nope".to_owned(),
        "/alice/song/tree/feature/nope".to_owned(),
        format!("/alice/song/tree/{zeros}"),
        "/alice/song/blob/main/nope.txt".to_owned(),
        "/alice/song/blob/main/tracks/drums.mid/more".to_owned(),
        "/alice/song/blob/nope/lyrics.txt".to_owned(),
        "/alice/song/release/v9.9.9".to_owned(),
        "/alice/nope/releases".to_owned(),
    ] {
        let (st, body) = page(&s.hub, &path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(
            body.contains("Nothing here") && body.contains("<html"),
            "{path}: {body}"
        );
    }
    let (_, body) = page(&s.hub, "/alice/song/tree/main/nope").await;
    assert!(
        body.contains("alice/song has nothing at “main/nope”"),
        "{body}"
    );
    // The commit exists on the hub, but only in another repo.
    let bob = s.hub.user("bob").await;
    let c = Commit::new(&[], &[("x.txt", b"bob's")], "bob's", T1);
    let (st, _) = s
        .hub
        .push(
            "bob/other",
            &bob,
            &[b"bob's"],
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        page(&s.hub, &format!("/alice/song/commit/{}", c.id))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        page(&s.hub, &format!("/alice/song/tree/{}", c.id)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn private_repos_are_404_on_every_page() {
    let s = song().await;
    s.hub.repo("alice", "secret", true).await;
    let c = Commit::new(
        &[],
        &[("README.md", README), ("tracks/drums.mid", DRUMS)],
        "hidden",
        T1,
    );
    let (st, b) = s
        .hub
        .push(
            "alice/secret",
            &s.alice,
            &[README, DRUMS],
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let (st, _) = release(&s.hub, &s.alice, "alice/secret", "v1", &c.id, false).await;
    assert_eq!(st, StatusCode::CREATED);
    for path in [
        "/alice/secret".to_owned(),
        "/alice/secret/branches".to_owned(),
        "/alice/secret/commits/main".to_owned(),
        format!("/alice/secret/commit/{}", c.id),
        "/alice/secret/tree/main".to_owned(),
        "/alice/secret/tree/main/tracks".to_owned(),
        "/alice/secret/blob/main/README.md".to_owned(),
        "/alice/secret/releases".to_owned(),
        "/alice/secret/release/v1".to_owned(),
    ] {
        let (st, body) = page(&s.hub, &path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !body.contains("hidden") && !body.contains("Late Train"),
            "{path}"
        );
    }
    // The wire keeps its own rule: a 404 for anyone but the owner, msgpack for her.
    assert_eq!(
        s.hub.get("/alice/secret/releases", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.hub.get("/alice/secret/releases", Some(&s.alice)).await.0,
        StatusCode::OK
    );
}

/// A session cookie for `name`, made directly in the database (signing in is tested in
/// `web_session`).
async fn session_for(hub: &TestHub, name: &str) -> String {
    let value = Id::of(name.as_bytes()).to_hex();
    let hash = musehub::auth::hash_token(&value);
    let name = name.to_owned();
    hub.server
        .hub()
        .db()
        .write(move |tx| {
            let u = musehub::db::users::by_name(tx, &name)?.expect("user exists");
            let expires = musehub::db::unix_now() + 3_600;
            musehub::db::sessions::create_session(tx, u.id, &hash, &[7; 32], expires)
        })
        .await
        .expect("session");
    format!("musehub_session={value}")
}

/// GETs a page as a browser holding `cookie`.
async fn page_as(hub: &TestHub, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = hub
        .client
        .get(hub.url(path))
        .header("accept", "text/html")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn owners_see_their_private_repos_and_drafts() {
    let s = song().await;
    s.hub.repo("alice", "secret", true).await;
    let c = Commit::new(&[], &[("lyrics.txt", LYRICS1)], "hidden verse", T1);
    let (st, _) = s
        .hub
        .push(
            "alice/secret",
            &s.alice,
            &[LYRICS1],
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let alice = session_for(&s.hub, "alice").await;
    let bob = session_for(&s.hub, "bob").await;
    let (st, body) = page_as(&s.hub, &alice, "/alice/secret").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("hidden verse") && body.contains(">private</span>"));
    assert!(
        body.contains("sends no token"),
        "private repos cannot be cloned"
    );
    let (st, _) = page_as(&s.hub, &alice, "/alice/secret/blob/main/lyrics.txt").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        page_as(&s.hub, &bob, "/alice/secret").await.0,
        StatusCode::NOT_FOUND,
        "another signed-in user sees nothing"
    );
    // Drafts: listed and readable for the owner only.
    let (_, body) = page_as(&s.hub, &alice, "/alice/song/releases").await;
    assert!(body.contains(">v1.1.0-beta.1</a>") && body.contains(">draft</span>"));
    let (st, _) = page_as(&s.hub, &alice, "/alice/song/release/v1.1.0-beta.1").await;
    assert_eq!(st, StatusCode::OK);
    let (_, body) = page_as(&s.hub, &bob, "/alice/song/releases").await;
    assert!(!body.contains("v1.1.0-beta.1"));
}
