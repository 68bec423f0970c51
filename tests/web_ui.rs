//! The web UI's pages as a browser sees them (HTML, status codes, privacy). The wire
//! protocol keeps answering msgpack at the same URLs.

use reqwest::StatusCode;

use crate::harness::{Commit, TestHub};

pub const T0: &str = "2026-03-16T12:00:00+00:00";

/// GETs a page as a browser does.
pub async fn page(hub: &TestHub, path: &str) -> (StatusCode, String) {
    let res = hub
        .client
        .get(hub.url(path))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("page");
    let status = res.status();
    if status.is_success() {
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
    }
    (status, res.text().await.unwrap())
}

/// A hub with alice's public `song` (pushed) and private `secret`, and bob.
pub async fn seeded() -> (TestHub, String) {
    let hub = TestHub::spawn().await;
    let alice = hub.user("alice").await;
    hub.user("bob").await;
    hub.repo("alice", "secret", true).await;
    let c = Commit::new(
        &[],
        &[("README.md", b"# Song\n\nA *verse*.\n")],
        "first",
        T0,
    );
    let (s, _) = hub
        .push(
            "alice/song",
            &alice,
            &[b"# Song\n\nA *verse*.\n"],
            &[c],
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    (hub, alice)
}

#[tokio::test]
async fn explore_lists_public_repos_and_searches() {
    let (hub, _) = seeded().await;
    let (s, body) = page(&hub, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("href=\"/alice/song\""), "{body}");
    assert!(!body.contains("secret"), "private repos never listed");
    assert!(body.contains("<main id=\"main\">") && body.contains("<label for=\"q\">"));
    let (_, body) = page(&hub, "/?q=ali").await;
    assert!(body.contains("/alice/song"));
    let (_, body) = page(&hub, "/?q=nomatch").await;
    assert!(body.contains("Nothing matches") && !body.contains("/alice/song\""));
}

#[tokio::test]
async fn user_node_and_connect_pages() {
    let (hub, _) = seeded().await;
    let (s, body) = page(&hub, "/alice").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("/alice/song") && !body.contains("secret"));
    let (s, body) = page(&hub, "/node").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("Objects") && body.contains(env!("CARGO_PKG_VERSION")));
    let (s, body) = page(&hub, "/connect").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains(&format!("muse auth login --hub {}", hub.server.url())),
        "{body}"
    );
}

#[tokio::test]
async fn errors_are_pages_a_person_understands() {
    let (hub, _) = seeded().await;
    let (s, body) = page(&hub, "/nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no user called nobody") && body.contains("<html"));
    let (s, body) = page(&hub, "/no/such/page/here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("Nothing here"));
    // The CLI still gets JSON errors and msgpack answers at the same addresses.
    let (s, b) = hub.get("/no/such/page/here", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(crate::harness::detail(&b).contains("no such endpoint"));
    let (s, _) = hub.get("/alice/song/releases", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn assets_are_embedded() {
    let hub = TestHub::spawn().await;
    let res = hub
        .client
        .get(hub.url("/assets/css/site.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert!(res.text().await.unwrap().contains("--accent"));
    assert_eq!(
        hub.get("/assets/nope.css", None).await.0,
        StatusCode::NOT_FOUND
    );
}
