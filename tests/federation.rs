//! Federation: hubs on 127.0.0.1 replicating each other through signed notices; refusals of
//! forged or unwanted notices and of a peer that serves bytes that do not hash to their ids.

use musehub::cids::Id;
use musehub::db::peers::{self, Policy};
use musehub::federation::{self, Notice};
use reqwest::StatusCode;

use crate::harness::{Commit, Pack, TestHub, client, eventually, ids, map, noise};

async fn follow(hub: &TestHub, other: &TestHub, policy: Policy) {
    federation::add_peer(hub.server.hub(), &other.server.url(), policy, "manual")
        .await
        .unwrap();
}

async fn heads_or_empty(hub: &TestHub, repo: &str) -> Vec<(String, String)> {
    let (s, _) = hub.get(&format!("/{repo}/refs"), None).await;
    if s != StatusCode::OK {
        return Vec::new();
    }
    hub.heads(repo, None).await
}

/// Pushes one commit holding one file to `repo` on `hub`.
async fn push_file(hub: &TestHub, repo: &str, token: &str, path: &str, content: &[u8]) {
    let c = Commit::new(&[], &[(path, content)], path, "2026-11-24T10:00:00+00:00");
    let (s, b) = hub.push(repo, token, &[content], &[c], "main", false).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
}

async fn peer_list(hub: &TestHub) -> Vec<peers::Peer> {
    hub.server.hub().db().read(peers::list).await.unwrap()
}

#[tokio::test]
async fn pushes_reach_replicas_by_notice_without_loops_and_survive_the_origin() {
    let (a, b, c) = (
        TestHub::spawn().await,
        TestHub::spawn().await,
        TestHub::spawn().await,
    );
    let token = a.user("alice").await;
    // B and C follow alice on A; B follows everything on C as well.
    follow(&b, &a, Policy::Owner("alice".into())).await;
    follow(&c, &a, Policy::Owner("alice".into())).await;
    follow(&b, &c, Policy::All).await;
    // Their first sync subscribes them to A's notices.
    eventually("B and C subscribe at A", async || {
        let subs = a
            .server
            .hub()
            .db()
            .read(|c| peers::subscribers_of(c, "alice", "song"))
            .await
            .unwrap();
        subs.len() == 2
    })
    .await;

    let verse = noise(1, 1_500_000);
    let c1 = Commit::new(
        &[],
        &[("verse.mid", &verse), ("notes.txt", b"in C")],
        "verse",
        "2026-11-24T10:00:00+00:00",
    );
    let (s, body) = a
        .push(
            "alice/song",
            &token,
            &[&verse, b"in C"],
            std::slice::from_ref(&c1),
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // The poll is 5 minutes: only notices can bring this within seconds.
    let want = a.heads("alice/song", None).await;
    eventually("B and C have the push", async || {
        heads_or_empty(&b, "alice/song").await == want
            && heads_or_empty(&c, "alice/song").await == want
    })
    .await;
    let chorus = noise(2, 300_000);
    let c2 = Commit::new(
        &[c1.id],
        &[("verse.mid", &verse), ("chorus.mid", &chorus)],
        "chorus",
        "2026-11-24T11:00:00+00:00",
    );
    let (s, _) = a
        .push(
            "alice/song",
            &token,
            &[&chorus],
            std::slice::from_ref(&c2),
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let want = a.heads("alice/song", None).await;
    eventually("B and C have the second push", async || {
        heads_or_empty(&b, "alice/song").await == want
            && heads_or_empty(&c, "alice/song").await == want
    })
    .await;

    // No loops, no duplicates: replicas never fan out or get replicated again, B holds one
    // alice/song (from A), and every object once.
    let fed = |h: &TestHub| {
        h.server
            .hub()
            .federation()
            .notices_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(fed(&a), 4, "two pushes, two subscribers");
    assert_eq!((fed(&b), fed(&c)), (0, 0));
    let repos = b
        .server
        .hub()
        .db()
        .read(|c| musehub::db::repos::list(c, None))
        .await
        .unwrap();
    assert_eq!(repos.len(), 1);
    assert_eq!(repos[0].origin.as_deref(), Some(a.server.url().as_str()));
    let (objects, _, _) = b
        .server
        .hub()
        .db()
        .read(musehub::db::content::counts)
        .await
        .unwrap();
    assert_eq!(objects, 3);
    eventually("every peer of B is active with no lag", async || {
        let l = peer_list(&b).await;
        l.len() == 2 && l.iter().all(|p| p.status == "active" && p.lag_commits == 0)
    })
    .await;
    let metrics = client()
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "musehub_peer_lag_commits{{peer=\"{}\"}} 0",
            a.server.url()
        )),
        "{metrics}"
    );

    // A replica is read-only: the push goes to the origin.
    let b_token = b.user("alice").await;
    let (s, body) = b
        .post(
            "/alice/song/push/objects",
            Some(&b_token),
            crate::harness::objects_body(&[b"x"]),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("read-only replica"));

    // A is gone: cloning from B gives the same history, byte for byte.
    let a_url = a.server.url();
    a.server.shutdown().await.unwrap();
    let pack = b
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[]))]),
        )
        .await;
    let pack = Pack::decode(&musehub::wire::encode(&pack));
    pack.verify();
    assert_eq!(
        pack.commit_ids(),
        [c1.id.to_hex(), c2.id.to_hex()].into_iter().collect()
    );
    for content in [&verse[..], b"in C", &chorus[..]] {
        let id = Id::of(content).to_hex();
        let got = pack
            .objects
            .iter()
            .find(|(i, _)| *i == id)
            .expect("object in the clone");
        assert_eq!(got.1, content);
    }
    // B notices A is offline on its next attempt, and says how long it has been.
    let pa = b
        .server
        .hub()
        .db()
        .read(move |c| peers::by_url(c, &a_url))
        .await
        .unwrap()
        .unwrap();
    b.server.hub().federation().due(pa.id);
    eventually("B reports A offline", async || {
        peer_list(&b)
            .await
            .iter()
            .any(|p| p.id == pa.id && p.status == "offline")
    })
    .await;
}

/// A signed notice body, as a hub with `key` would send it.
fn signed_notice(
    url: &str,
    body: &[u8],
    key: &libp2p::identity::Keypair,
) -> Vec<(&'static str, String)> {
    let now = musehub::db::unix_now();
    let nonce = hex::encode(musehub::auth::random_bytes::<8>());
    let kid = key.public().to_peer_id().to_string();
    musehub::httpsig::signed_headers(
        "POST",
        url,
        body,
        &musehub::httpsig::Signing {
            created: now,
            expires: now + 60,
            nonce: &nonce,
            keyid: &kid,
            label: "sig1",
        },
        key,
    )
    .unwrap()
    .to_vec()
}

async fn post_notice(
    hub: &TestHub,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, String) {
    let mut req = client()
        .post(hub.url(federation::NOTIFY_PATH))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    let s = res.status();
    (s, res.text().await.unwrap())
}

#[tokio::test]
async fn forged_and_unwanted_notices_and_bad_bytes_are_refused() {
    let (a, b) = (TestHub::spawn().await, TestHub::spawn().await);
    let token = a.user("alice").await;
    a.user("bob").await;
    follow(&b, &a, Policy::Repo("alice/song".into())).await;
    eventually("B knows A's key", async || {
        peer_list(&b).await.iter().any(|p| p.peer_id.is_some())
    })
    .await;
    let url = b.url(federation::NOTIFY_PATH);
    let body = serde_json::to_vec(&Notice {
        repo: "alice/song".into(),
        heads: Default::default(),
    })
    .unwrap();

    // Forged: signed by a key that is not A's (claiming A's key id changes nothing).
    let mallory = libp2p::identity::Keypair::generate_ed25519();
    let (s, why) = post_notice(&b, &signed_notice(&url, &body, &mallory), &body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{why}");
    assert!(why.contains("not a hub this hub follows"), "{why}");
    let mut forged = signed_notice(&url, &body, &mallory);
    let a_id = a.server.hub().node_key().public().to_peer_id().to_string();
    let m_id = mallory.public().to_peer_id().to_string();
    forged[1].1 = forged[1].1.replace(&m_id, &a_id);
    let (s, why) = post_notice(&b, &forged, &body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}");
    assert!(why.contains("does not verify"), "{why}");
    // Unsigned.
    let (s, _) = post_notice(&b, &[], &body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Signed by A, but for a repo B does not follow.
    let other = serde_json::to_vec(&Notice {
        repo: "bob/tune".into(),
        heads: Default::default(),
    })
    .unwrap();
    let (s, why) = post_notice(
        &b,
        &signed_notice(&url, &other, a.server.hub().node_key()),
        &other,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{why}");
    assert!(why.contains("not a repo this hub follows"), "{why}");
    // Signed by A for the followed repo: accepted.
    let (s, why) = post_notice(
        &b,
        &signed_notice(&url, &body, a.server.hub().node_key()),
        &body,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{why}");
    let refused = b
        .server
        .hub()
        .federation()
        .notices_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 4);

    // A push to a repo B does not follow never reaches B.
    let bob = a.user("bob").await;
    push_file(&a, "bob/tune", &bob, "t", b"tune").await;
    push_file(&a, "alice/song", &token, "s", b"song").await;
    eventually("B has alice/song", async || {
        !heads_or_empty(&b, "alice/song").await.is_empty()
    })
    .await;
    assert!(heads_or_empty(&b, "bob/tune").await.is_empty());
}

#[tokio::test]
async fn a_peer_serving_bytes_that_do_not_match_their_ids_is_refused() {
    // A real hub holds the repo; a rogue hub in front of it serves the same listing and CAR,
    // with one object's bytes changed.
    let a = TestHub::spawn().await;
    let token = a.user("alice").await;
    let stem = noise(7, 200_000);
    let c1 = Commit::new(
        &[],
        &[("stem.wav", &stem)],
        "stem",
        "2026-11-24T10:00:00+00:00",
    );
    assert_eq!(
        a.push(
            "alice/song",
            &token,
            &[&stem],
            std::slice::from_ref(&c1),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let listing = client()
        .get(a.url(federation::REPOS_PATH))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let car = client()
        .get(a.url(&format!("/alice/song/commits/{}/car?history=full", c1.id)))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let at = car
        .windows(64)
        .position(|w| w == &stem[..64])
        .expect("the stem's bytes are in the CAR");
    let mut bad = car.clone();
    bad[at + 10] ^= 0xff;
    let rogue = rogue_server(listing.to_vec(), bad).await;

    let b = TestHub::spawn().await;
    federation::add_peer(b.server.hub(), &rogue, Policy::All, "manual")
        .await
        .unwrap();
    eventually("the sync fails", async || {
        peer_list(&b).await.iter().any(|p| p.last_error.is_some())
    })
    .await;
    let p = &peer_list(&b).await[0];
    assert_eq!(p.status, "lagging");
    let err = p.last_error.clone().unwrap();
    assert!(
        err.contains("hash") || err.contains("does not match") || err.contains("CID"),
        "{err}"
    );
    // Nothing wrong is stored: no commits, no objects, no branch.
    let (objects, _, _) = b
        .server
        .hub()
        .db()
        .read(musehub::db::content::counts)
        .await
        .unwrap();
    assert_eq!(objects, 0);
    assert!(heads_or_empty(&b, "alice/song").await.is_empty());
}

/// A minimal HTTP server that answers the listing and any CAR request with fixed bodies.
async fn rogue_server(listing: Vec<u8>, car: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (listing, car) = (listing.clone(), car.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, ctype, body) = if path.starts_with(federation::REPOS_PATH) {
                    ("200 OK", "application/json", listing)
                } else if path.contains("/car") {
                    ("200 OK", "application/vnd.ipld.car", car)
                } else {
                    (
                        "404 Not Found",
                        "application/json",
                        b"{\"detail\":\"no\"}".to_vec(),
                    )
                };
                let _ = sock
                    .write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_hub_joins_the_hubs_of_its_config_and_replicates_its_owners_repos() {
    let a = TestHub::spawn().await;
    let (alice, bob) = (a.user("alice").await, a.user("bob").await);
    push_file(&a, "alice/song", &alice, "s", b"song").await;
    push_file(&a, "bob/tune", &bob, "t", b"tune").await;
    let url = a.server.url();
    let b = TestHub::spawn_with(|c| {
        c.federation.join = vec![url];
        c.federation.owner = Some("alice".into());
    })
    .await;
    let want = a.heads("alice/song", None).await;
    eventually("B has alice's repo", async || {
        heads_or_empty(&b, "alice/song").await == want
    })
    .await;
    assert!(
        heads_or_empty(&b, "bob/tune").await.is_empty(),
        "only the owner's repos"
    );
    let p = &peer_list(&b).await[0];
    assert_eq!(
        (p.source.as_str(), &p.policy),
        ("bootstrap", &Policy::Owner("alice".into()))
    );
}
