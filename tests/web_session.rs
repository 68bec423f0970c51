//! Signing in to the web UI with one-time links, the session cookie, CSRF refusals, and the
//! owner's settings forms (repositories, visibility, tokens), as a browser without
//! JavaScript uses them. The client follows no redirects; the cookie is carried by hand.

use musehub::db::{repos, sessions, users};
use musehub::{auth, db};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::harness::{Commit, TestHub, detail, musehub, objects_body};
use crate::web_ui::T0;

/// What the hub answered a browser.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().expect("ASCII header"))
    }
}

/// A browser: the session cookie (if any) sent with every request, `Origin` on POSTs.
struct Browser<'a> {
    hub: &'a TestHub,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn anonymous(hub: &'a TestHub) -> Self {
        Browser { hub, cookie: None }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("theme=dark; musehub_session={c}")),
            None => req,
        };
        let res = req
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .expect("request");
        Page {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.hub.client.get(self.hub.url(path))).await
    }

    /// POSTs a form as a browser on this hub's page does (with its `Origin`).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(path, fields, Some(&self.hub.server.url()))
            .await
    }

    async fn post_from(&self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut req = self
            .hub
            .client
            .post(self.hub.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        self.send(req).await
    }

    /// The CSRF token the settings page's forms carry.
    async fn csrf(&self) -> String {
        let page = self.get("/settings").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        csrf_of(&page.body)
    }
}

/// `application/x-www-form-urlencoded`, as browsers write it.
fn form(fields: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The hidden `csrf` value of the first form on a page.
fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {body}"))
        + "name=\"csrf\" value=\"".len();
    let token = &body[at..at + 64];
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    token.to_owned()
}

/// A login link for `name` valid for `secs` seconds (negative: already expired), made the way
/// `musehub login-link` makes it. Returns the link's path.
async fn link(hub: &TestHub, name: &str, secs: i64) -> String {
    let token = hex::encode(auth::random_bytes::<32>());
    let hash = auth::hash_token(&token);
    let name = name.to_owned();
    hub.server
        .hub()
        .db()
        .write(move |tx| {
            let u = users::by_name(tx, &name)?.expect("user exists");
            sessions::add_login_link(tx, u.id, &hash, db::unix_now() + secs)
        })
        .await
        .expect("link");
    format!("/login/{token}")
}

/// The path of the link `musehub login-link` printed (its only stdout line).
fn printed_link(run: &crate::harness::Run) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be the URL alone: {run:?}");
    let url = lines[0];
    let token = url
        .strip_prefix("http://127.0.0.1:8080/login/")
        .unwrap_or_else(|| panic!("not a login URL on the hub's public address: {url:?}"));
    assert!(
        token.len() == 64
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{token:?}"
    );
    format!("/login/{token}")
}

/// Signs `name` in through a fresh link and returns the browser holding the session.
async fn sign_in<'a>(hub: &'a TestHub, name: &str) -> Browser<'a> {
    let path = link(hub, name, 600).await;
    let mut b = Browser::anonymous(hub);
    let res = b.post(&path, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    b.cookie = Some(session_cookie(&res));
    b
}

/// The session id a `Set-Cookie` answer carries.
fn session_cookie(res: &Page) -> String {
    let set = res.header("set-cookie");
    let value = set
        .strip_prefix("musehub_session=")
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie set: {set:?}"));
    assert_eq!(value.len(), 64, "{set}");
    value.to_owned()
}

/// `fields` plus the hidden `csrf` field.
fn with_csrf<'a>(fields: &[(&'a str, &'a str)], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut f = fields.to_vec();
    f.push(("csrf", csrf));
    f
}

/// The visibility of `owner/slug`, read from the database.
async fn visibility(hub: &TestHub, owner: &str, slug: &str) -> Option<&'static str> {
    let (o, s) = (owner.to_owned(), slug.to_owned());
    hub.server
        .hub()
        .db()
        .read(move |c| repos::get(c, &o, &s))
        .await
        .expect("read")
        .map(|r| r.visibility.as_str())
}

async fn token_count(hub: &TestHub) -> usize {
    hub.server
        .hub()
        .db()
        .read(|c| users::list_tokens(c, None))
        .await
        .expect("tokens")
        .len()
}

/// A hub with alice (public `song`, private `secret`) and bob, each with one token.
async fn seeded_with_tokens() -> (TestHub, String, String) {
    let hub = TestHub::spawn().await;
    let alice = hub.user("alice").await;
    let bob = hub.user("bob").await;
    hub.repo("alice", "song", false).await;
    hub.repo("alice", "secret", true).await;
    (hub, alice, bob)
}

async fn seeded() -> TestHub {
    seeded_with_tokens().await.0
}

fn one_commit(text: &[u8]) -> Commit {
    Commit::new(&[], &[("README.md", text)], "first", T0)
}

#[tokio::test]
async fn a_login_link_shows_a_button_and_signs_in_once() {
    let hub = seeded().await;
    // The operator's command, run beside the serving hub.
    let run = musehub(hub.data_dir(), &["login-link", "alice"]).ok();
    let path = printed_link(&run);
    let anon = Browser::anonymous(&hub);

    // Opening the link (or a chat app's preview fetching it) changes nothing.
    for _ in 0..2 {
        let page = anon.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Sign in as alice"), "{}", page.body);
        assert!(
            page.body
                .contains(&format!("<form method=\"post\" action=\"{path}\">")),
            "{}",
            page.body
        );
        assert_eq!(page.header("cache-control"), "no-store");
        assert!(page.header("set-cookie").is_empty());
    }

    // Pressing the button: a session, a strict cookie, and on to the settings page.
    let res = anon.post(&path, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/settings");
    let set = res.header("set-cookie").to_owned();
    for flag in [
        "; HttpOnly",
        "; SameSite=Strict",
        "; Path=/",
        "; Max-Age=2592000",
    ] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    assert!(!set.contains("Secure"), "no Secure flag over http: {set}");
    let alice = Browser {
        hub: &hub,
        cookie: Some(session_cookie(&res)),
    };

    let page = alice.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Signed in as"), "{}", page.body);
    assert!(page.body.contains("href=\"/alice/song\""), "{}", page.body);
    assert!(
        page.body.contains("href=\"/alice/secret\""),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<legend id=\"new-repo-legend\">Create a repository</legend>")
    );
    assert!(page.body.contains("<label for=\"repo-name\">Name</label>"));
    // Every page knows who is signed in and offers a sign-out form with the CSRF token.
    let home = alice.get("/").await;
    assert!(home.body.contains("href=\"/settings\""), "{}", home.body);
    assert!(home.body.contains("action=\"/logout\""));
    assert_eq!(csrf_of(&home.body), csrf_of(&page.body));
    // A signed-in owner sees their private repository on their own page.
    let mine = alice.get("/alice").await;
    assert!(mine.body.contains("/alice/secret"), "{}", mine.body);

    // The link is used up: both the page and the button now say so.
    for page in [anon.get(&path).await, anon.post(&path, &[]).await] {
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(
            page.body
                .contains("This sign-in link has expired or was already used."),
            "{}",
            page.body
        );
        assert!(page.body.contains("musehub login-link"));
        assert!(page.header("set-cookie").is_empty());
    }

    // Without the cookie, settings explain how to get signed in.
    let page = anon.get("/settings").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("musehub login-link"), "{}", page.body);
    assert!(!page.body.contains("/alice/secret"));
    // A forged cookie is nobody.
    let forged = Browser {
        hub: &hub,
        cookie: Some("ab".repeat(32)),
    };
    assert_eq!(forged.get("/settings").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn expired_unknown_and_foreign_links_fail() {
    let hub = seeded().await;
    let anon = Browser::anonymous(&hub);
    // An expired row, as if its 15 minutes had passed.
    let old = link(&hub, "alice", -1).await;
    for page in [anon.get(&old).await, anon.post(&old, &[]).await] {
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(
            page.body.contains("expired or was already used"),
            "{}",
            page.body
        );
        assert!(page.header("set-cookie").is_empty());
    }
    // The CLI's --ttl, for real.
    let run = musehub(hub.data_dir(), &["login-link", "alice", "--ttl", "1s"]).ok();
    let short = printed_link(&run);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let page = anon.post(&short, &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("set-cookie").is_empty());
    // Made-up tokens.
    for bad in ["/login/nope", &format!("/login/{}", "0".repeat(64))] {
        assert_eq!(anon.get(bad).await.status, StatusCode::NOT_FOUND);
        assert_eq!(anon.post(bad, &[]).await.status, StatusCode::NOT_FOUND);
    }
    // A page on another site cannot make a browser sign in (login CSRF), and does not use
    // the link up.
    let fresh = link(&hub, "alice", 600).await;
    let page = anon
        .post_from(&fresh, &[], Some("http://evil.example"))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.header("set-cookie").is_empty());
    assert_eq!(anon.post(&fresh, &[]).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn refused_forms_change_nothing() {
    let hub = seeded().await;
    let alice = sign_in(&hub, "alice").await;
    let csrf = alice.csrf().await;
    let wrong = "0".repeat(64);
    let tokens_before = token_count(&hub).await;
    let expired = "This form has expired; reload the page and try again.";

    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/alice/song/visibility", vec![("visibility", "private")]),
        ("/settings/repos", vec![("name", "intruder")]),
        ("/settings/tokens", vec![("label", "intruder")]),
    ];
    for (path, fields) in &attempts {
        let right = with_csrf(fields, &csrf);
        let refusals = [
            // No token at all.
            alice.post(path, fields).await,
            // Someone else's (or an old) token.
            alice.post(path, &with_csrf(fields, &wrong)).await,
            // The right token sent from another site's page.
            alice
                .post_from(path, &right, Some("http://evil.example"))
                .await,
            alice.post_from(path, &right, Some("null")).await,
            // The right token without the session cookie.
            Browser::anonymous(&hub).post(path, &right).await,
        ];
        for page in refusals {
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
            assert!(page.body.contains(expired), "{path}: {}", page.body);
            assert!(page.header("location").is_empty());
        }
        // A cross-site fetch is refused even when it sends no Origin.
        let page = alice
            .send(
                hub.client
                    .post(hub.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("sec-fetch-site", "cross-site")
                    .body(form(&right)),
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(visibility(&hub, "alice", "song").await, Some("public"));
    assert_eq!(visibility(&hub, "alice", "intruder").await, None);
    assert_eq!(token_count(&hub).await, tokens_before);
    // A refused sign-out leaves the session alive.
    let page = alice.post("/logout", &[("csrf", &wrong)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(alice.get("/settings").await.status, StatusCode::OK);
    // The real thing, for contrast, works (the Origin the browser reached the hub at).
    let page = alice
        .post(
            "/alice/song/visibility",
            &[("visibility", "private"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(visibility(&hub, "alice", "song").await, Some("private"));
}

#[tokio::test]
async fn owners_create_repos_and_change_who_sees_them() {
    let hub = seeded().await;
    let alice = sign_in(&hub, "alice").await;
    let anon = Browser::anonymous(&hub);
    let csrf = alice.csrf().await;

    let res = alice
        .post(
            "/settings/repos",
            &[
                ("csrf", &csrf),
                ("name", "chorus"),
                ("visibility", "public"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/settings?notice=repo-created");
    let page = alice.get(res.header("location")).await;
    assert!(
        page.body.contains("role=\"status\">Repository created."),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/alice/chorus\""));
    assert!(
        anon.get("/alice")
            .await
            .body
            .contains("href=\"/alice/chorus\"")
    );
    assert!(anon.get("/").await.body.contains("href=\"/alice/chorus\""));

    // Mistakes come back on the form, announced, with what was typed.
    let res = alice
        .post("/settings/repos", &[("csrf", &csrf), ("name", "My Song!")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("role=\"alert\""), "{}", res.body);
    assert!(
        res.body.contains("may only use letters, digits"),
        "{}",
        res.body
    );
    assert!(res.body.contains("value=\"My Song!\""), "{}", res.body);
    assert!(res.body.contains("aria-invalid=\"true\""));
    let res = alice
        .post("/settings/repos", &[("csrf", &csrf), ("name", "chorus")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        res.body
            .contains("You already have a repository called chorus.")
    );
    let res = alice
        .post("/settings/repos", &[("csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("Give the repository a name."));
    assert_eq!(visibility(&hub, "alice", "My Song!").await, None);

    // Private: gone for everyone else, everywhere; still there for alice.
    let res = alice
        .post(
            "/alice/chorus/visibility",
            &[("visibility", "private"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/settings?notice=visibility");
    assert_eq!(visibility(&hub, "alice", "chorus").await, Some("private"));
    assert_eq!(
        anon.get("/alice/chorus").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!anon.get("/").await.body.contains("/alice/chorus"));
    assert!(!anon.get("/?q=chorus").await.body.contains("/alice/chorus"));
    assert!(!anon.get("/alice").await.body.contains("chorus"));
    assert_eq!(
        hub.get("/alice/chorus/refs", None).await.0,
        StatusCode::NOT_FOUND
    );
    let bob = sign_in(&hub, "bob").await;
    assert!(!bob.get("/").await.body.contains("/alice/chorus"));
    assert!(!bob.get("/alice").await.body.contains("chorus"));
    assert!(!bob.get("/settings").await.body.contains("chorus"));
    let page = alice.get("/settings").await;
    assert!(page.body.contains("Make public: chorus"), "{}", page.body);

    // And back.
    let res = alice
        .post(
            "/alice/chorus/visibility",
            &[("visibility", "public"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(anon.get("/").await.body.contains("href=\"/alice/chorus\""));
    let res = alice
        .post(
            "/alice/chorus/visibility",
            &[("visibility", "secret"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_the_owner_changes_visibility() {
    let hub = seeded().await;
    let bob = sign_in(&hub, "bob").await;
    let csrf = bob.csrf().await;
    // A valid session and CSRF token of bob's own are not enough for alice's repositories.
    let page = bob
        .post(
            "/alice/song/visibility",
            &[("visibility", "private"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("Only alice can change"), "{}", page.body);
    // Her private one does not even exist for him.
    let page = bob
        .post(
            "/alice/secret/visibility",
            &[("visibility", "public"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("Only alice"));
    assert_eq!(
        bob.post(
            "/alice/nothing/visibility",
            &[("visibility", "public"), ("csrf", &csrf)],
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(visibility(&hub, "alice", "song").await, Some("public"));
    assert_eq!(visibility(&hub, "alice", "secret").await, Some("private"));
    // Bob's settings list only his own (none), never alice's.
    let page = bob.get("/settings").await;
    assert!(!page.body.contains("/alice/"), "{}", page.body);
}

#[tokio::test]
async fn tokens_are_shown_once_work_and_can_be_revoked() {
    let (hub, _, bobs) = seeded_with_tokens().await;
    let alice = sign_in(&hub, "alice").await;
    let csrf = alice.csrf().await;

    let page = alice
        .post(
            "/settings/tokens",
            &[("csrf", &csrf), ("label", "laptop"), ("expires", "90d")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("cache-control"), "no-store");
    // A hub told to listen on port 0 shows the port it got.
    let prefix = format!("muse auth login --hub {} --token ", hub.server.url());
    let at = page
        .body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no login command in {}", page.body))
        + prefix.len();
    let token = page.body[at..at + 67].to_owned();
    assert!(token.starts_with("mh_"), "{token}");
    assert_eq!(auth::hash_token(&token).len(), 32);

    // Shown once: the list has its label and expiry, never the secret.
    let list = alice.get("/settings").await;
    assert!(!list.body.contains(&token));
    assert!(!list.body.contains(&token[3..]));
    assert!(
        list.body.contains("laptop") && list.body.contains("expires 20"),
        "{}",
        list.body
    );

    // It pushes.
    let c = one_commit(b"from the web token\n");
    let first = c.id;
    let (s, b) = hub
        .push(
            "alice/webpush",
            &token,
            &[b"from the web token\n"],
            &[c],
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));

    // A lifetime the hub does not understand is explained on the form.
    let page = alice
        .post(
            "/settings/tokens",
            &[("csrf", &csrf), ("label", "x"), ("expires", "soon")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("role=\"alert\""));
    assert!(page.body.contains("90d, 12h or 1y"), "{}", page.body);
    assert!(!page.body.contains("muse auth login --hub"));

    let (laptop, bob_token) = hub
        .server
        .hub()
        .db()
        .read(|c| {
            let all = users::list_tokens(c, None)?;
            let find = |user: &str, label: &str| {
                all.iter()
                    .find(|t| t.user == user && t.label == label)
                    .map(|t| t.id)
                    .expect("token listed")
            };
            Ok::<_, db::Error>((find("alice", "laptop"), find("bob", "test")))
        })
        .await
        .unwrap();
    assert_eq!(
        token_count(&hub).await,
        3,
        "alice's, bob's and laptop; not the refused one"
    );

    // Bob's token is not alice's to revoke.
    let page = alice
        .post(
            &format!("/settings/tokens/{bob_token}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        hub.get("/alice/song/refs", Some(&bobs)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        alice
            .post("/settings/tokens/abc/revoke", &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let page = alice
        .post(
            &format!("/settings/tokens/{laptop}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), "/settings?notice=token-revoked");
    let list = alice.get(page.header("location")).await;
    assert!(list.body.contains("Token revoked."));
    assert!(list.body.contains("revoked"));
    let c2 = Commit::new(&[first], &[("README.md", b"again\n")], "second", T0);
    let (s, _) = hub
        .post(
            "/alice/webpush/push/objects",
            Some(&token),
            objects_body(&[b"again\n"]),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = hub
        .push("alice/webpush", &token, &[], &[c2], "main", false)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        detail(&b).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    // Revoking twice finds nothing live.
    let page = alice
        .post(
            &format!("/settings/tokens/{laptop}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let hub = seeded().await;
    let alice = sign_in(&hub, "alice").await;
    let other = sign_in(&hub, "alice").await;
    let csrf = alice.csrf().await;
    let res = alice.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), "/");
    let set = res.header("set-cookie");
    assert!(
        set.starts_with("musehub_session=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    // The old cookie is worth nothing now, even if a browser kept it.
    assert_eq!(alice.get("/settings").await.status, StatusCode::FORBIDDEN);
    assert!(!alice.get("/").await.body.contains("action=\"/logout\""));
    let page = alice
        .post("/settings/repos", &[("csrf", &csrf), ("name", "late")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(visibility(&hub, "alice", "late").await, None);
    // Other sessions (another browser) are untouched.
    assert_eq!(other.get("/settings").await.status, StatusCode::OK);
    // Signing out again just clears the cookie.
    let res = alice.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_cookie_is_secure_on_https_hubs() {
    let hub = TestHub::spawn_with(|c| c.public_url = "https://musehub.local:8443".into()).await;
    hub.user("alice").await;
    let path = link(&hub, "alice", 600).await;
    // A hub behind a proxy sees its public origin in Origin rather than its Host.
    let res = Browser::anonymous(&hub)
        .post_from(&path, &[], Some("https://musehub.local:8443"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let set = res.header("set-cookie");
    assert!(
        set.ends_with("; Secure") && set.contains("; HttpOnly"),
        "{set}"
    );
}

#[test]
fn login_link_prints_the_url_alone() {
    let dir = tempfile::tempdir().unwrap();
    musehub(dir.path(), &["user", "add", "alice"]).ok();
    let run = musehub(dir.path(), &["login-link", "alice"]).ok();
    let first = printed_link(&run);
    assert!(
        run.stderr.contains("alice") && run.stderr.contains("15m"),
        "{}",
        run.stderr
    );
    let run = musehub(dir.path(), &["login-link", "alice", "--ttl", "2h"]).ok();
    assert_ne!(printed_link(&run), first, "every link is new");
    assert!(run.stderr.contains("2h"), "{}", run.stderr);

    let run = musehub(dir.path(), &["login-link", "bob"]).fails();
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("musehub user add bob"),
        "{}",
        run.stderr
    );
    for ttl in ["0s", "30d", "soon"] {
        let run = musehub(dir.path(), &["login-link", "alice", "--ttl", ttl]);
        assert!(!run.status.success(), "--ttl {ttl}: {run:?}");
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test]
async fn a_hub_found_on_the_lan_is_followed_with_one_click() {
    let hub = seeded().await;
    let other = TestHub::spawn().await;
    let other_url = other.server.url();
    hub.server.hub().federation().lan.lock().unwrap().insert(
        "12D3KooWother".into(),
        musehub::federation::LanHub {
            url: other_url.clone(),
            peer_id: other
                .server
                .hub()
                .node_key()
                .public()
                .to_peer_id()
                .to_string(),
            owner: Some("bob".into()),
            version: "0.1.0".into(),
        },
    );
    let anon = Browser::anonymous(&hub);
    let page = anon.get("/peers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&other_url) && page.body.contains("Sign in to follow it."));

    let alice = sign_in(&hub, "alice").await;
    let page = alice.get("/peers").await;
    assert!(
        page.body.contains("action=\"/peers/follow\""),
        "{}",
        page.body
    );
    let csrf = alice.csrf().await;
    // Only hubs on the LAN list: never an address typed into the form.
    let res = alice
        .post(
            "/peers/follow",
            &[("csrf", &csrf), ("url", "http://10.9.9.9:1")],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // Without the CSRF token: refused.
    let res = alice.post("/peers/follow", &[("url", &other_url)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = alice
        .post("/peers/follow", &[("csrf", &csrf), ("url", &other_url)])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = anon.get("/peers").await;
        if page.body.contains("status-active") {
            assert!(page.body.contains("every public repo"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
