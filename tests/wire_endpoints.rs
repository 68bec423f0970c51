//! Every wire endpoint against a real hub: the happy paths the captures do not reach, and
//! bad input, which must get a clear 4xx with a `{"detail": …}` body and store nothing.

use musehub::cids::Id;
use musehub::db::content;
use musehub::storage::unixfs::{UNIXFS_V1_2025, import_bytes};
use reqwest::StatusCode;
use rmpv::Value;

use crate::harness::{
    Commit, Pack, TestHub, decode, detail, field, ids, map, noise, objects_body, push_body,
};

const T0: &str = "2026-03-16T12:00:00+00:00";
const T1: &str = "2026-03-16T12:05:30.123456+00:00";
const T2: &str = "2026-03-16T12:07:00.5+00:00";

async fn objects_count(hub: &TestHub) -> u64 {
    hub.server.hub().db().read(content::counts).await.unwrap().0
}

/// A hub with alice (owner of public alice/song, private alice/secret) and bob.
async fn setup() -> (TestHub, String, String) {
    let hub = TestHub::spawn().await;
    let alice = hub.user("alice").await;
    let bob = hub.user("bob").await;
    hub.repo("alice", "song", false).await;
    hub.repo("alice", "secret", true).await;
    (hub, alice, bob)
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let hub = TestHub::spawn().await;
    let (s, b) = hub.get("/health", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(field(&decode(&b), "status").as_str(), Some("ok"));
    let (s, b) = hub.get("/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(b.to_vec()).unwrap();
    assert!(
        text.contains("musehub_http_requests_total{class=\"2xx\"} 1"),
        "{text}"
    );
    assert!(text.contains("musehub_push_duration_seconds_count 0"));
    // Unknown paths are JSON 404s, and no route redirects (the CLI refuses redirects).
    let (s, b) = hub.get("/alice/song/refs/", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!detail(&b).is_empty());
}

#[tokio::test]
async fn push_fetch_round_trip_keeps_every_object_including_empty_and_large() {
    let (hub, alice, _) = setup().await;
    let big = noise(7, 5 * 1024 * 1024 + 3);
    let files: Vec<(&str, &[u8])> = vec![
        ("README.md", b"hello world\n"),
        ("empty.txt", b""),
        ("stems/bass.wav", &big),
    ];
    let c1 = Commit::new(&[], &files, "Add verse melody", T0);
    let contents: Vec<&[u8]> = files.iter().map(|(_, c)| *c).collect();
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &contents,
            std::slice::from_ref(&c1),
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let ans = decode(&b);
    assert_eq!(field(&ans, "ok"), &Value::Boolean(true));
    assert_eq!(
        field(&ans, "remote_head").as_str(),
        Some(c1.id.to_hex().as_str())
    );

    // Clone: every object comes back byte-identical, the empty one too.
    let pack = hub
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[c1.id])), ("have", ids(&[]))]),
        )
        .await;
    let pack = Pack::decode(&musehub::wire::encode(&pack));
    pack.verify();
    assert_eq!(pack.objects.len(), 3);
    assert!(
        pack.objects
            .iter()
            .any(|(id, c)| id == &Id::of(b"").to_hex() && c.is_empty())
    );
    assert!(pack.objects.iter().any(|(_, c)| c == &big));

    // The large object is stored as UnixFS with the CID any IPFS tool computes.
    let big_id = Id::of(&big);
    let row = hub
        .server
        .hub()
        .db()
        .read(move |c| content::object(c, &big_id))
        .await
        .unwrap()
        .unwrap();
    let root = cid::Cid::try_from(row.root.unwrap().as_slice()).unwrap();
    assert_eq!(root, import_bytes(UNIXFS_V1_2025, &big).0);
    assert_eq!(root.to_string().get(..6), Some("bafybe"));

    // /o/{id} streams public objects with immutable caching.
    let (s, b) = hub.get(&format!("/o/{big_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b.as_ref(), big.as_slice());
    let res = hub
        .client
        .get(hub.url(&format!("/o/{}", Id::of(b"hello world\n"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello world\n");
}

#[tokio::test]
async fn objects_are_per_repo_even_when_stored_once() {
    // The reference hub's global keys made B's fetch lack objects first pushed to A (§7.2.2).
    let (hub, alice, _) = setup().await;
    hub.repo("alice", "other", false).await;
    let c1 = Commit::new(&[], &[("a.mid", b"MThd")], "one", T0);
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"MThd"],
            std::slice::from_ref(&c1),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let filter = map([("object_ids", ids(&[Id::of(b"MThd")]))]);
    let ans = hub
        .call("/alice/other/filter-objects", Some(&alice), &filter)
        .await;
    assert_eq!(
        field(&ans, "missing"),
        &ids(&[Id::of(b"MThd")]),
        "another repo does not hold it"
    );
    // Pushing a snapshot that names it without uploading it to this repo is refused.
    let (s, b) = hub
        .post(
            "/alice/other/push",
            Some(&alice),
            push_body(std::slice::from_ref(&c1), "main", false),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&b).contains("was not uploaded"), "{}", detail(&b));
    // After uploading (skipped as bytes, stored as membership) the push works; one copy.
    let (s, b) = hub
        .post(
            "/alice/other/push/objects",
            Some(&alice),
            objects_body(&[b"MThd"]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        decode(&b),
        map([("stored", Value::from(1)), ("skipped", Value::from(0))])
    );
    assert_eq!(
        hub.post(
            "/alice/other/push",
            Some(&alice),
            push_body(&[c1], "main", false)
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(objects_count(&hub).await, 1);
    let (s, b) = hub
        .post(
            "/alice/other/push/objects",
            Some(&alice),
            objects_body(&[b"MThd"]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        decode(&b),
        map([("stored", Value::from(0)), ("skipped", Value::from(1))])
    );
}

#[tokio::test]
async fn fast_forward_check_walks_pack_and_stored_history() {
    let (hub, alice, _) = setup().await;
    let c1 = Commit::new(&[], &[("a", b"1")], "c1", T0);
    let c2 = Commit::new(&[c1.id], &[("a", b"2")], "c2", T1);
    let c3 = Commit::new(&[c2.id], &[("a", b"3")], "c3", T2);
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"1"],
            std::slice::from_ref(&c1),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    // c2 lands on another branch; then main moves c1 → c3 with a pack holding only c3.
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"2"],
            std::slice::from_ref(&c2),
            "feature",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &[b"3"],
            std::slice::from_ref(&c3),
            "main",
            false,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the reference hub wrongly rejects this: {}",
        String::from_utf8_lossy(&b)
    );
    let heads = hub.heads("alice/song", None).await;
    assert!(heads.contains(&("main".into(), c3.id.to_hex())));
    assert!(heads.contains(&("feature".into(), c2.id.to_hex())));

    // A diverged push is 409 and moves nothing; --force overwrites.
    let d = Commit::new(&[c1.id], &[("a", b"d")], "diverged", T1);
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &[b"d"],
            std::slice::from_ref(&d),
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(detail(&b).contains("non-fast-forward"), "{}", detail(&b));
    assert!(
        hub.heads("alice/song", None)
            .await
            .contains(&("main".into(), c3.id.to_hex()))
    );
    assert_eq!(
        hub.post(
            "/alice/song/push",
            Some(&alice),
            push_body(std::slice::from_ref(&d), "main", true)
        )
        .await
        .0,
        StatusCode::OK
    );
    assert!(
        hub.heads("alice/song", None)
            .await
            .contains(&("main".into(), d.id.to_hex()))
    );
}

#[tokio::test]
async fn push_with_unknown_parent_is_recorded_as_shallow_history() {
    let (hub, alice, _) = setup().await;
    let ghost = Id::of(b"a commit only the other remote has");
    let c = Commit::new(&[ghost], &[("x", b"x")], "from a second remote", T0);
    let (s, b) = hub
        .push(
            "alice/song",
            &alice,
            &[b"x"],
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let report = musehub::doctor::run(hub.server.hub(), |_| {}).unwrap();
    assert!(report.ok, "{:?}", report.faults);
    assert_eq!(report.shallow.len(), 1);
    assert!(report.shallow[0].contains(&ghost.to_hex()));
    // Fetching stops at the boundary instead of failing.
    let pack = hub
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[c.id])), ("have", ids(&[]))]),
        )
        .await;
    assert_eq!(field(&pack, "commits").as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn negotiate_reaches_ready_and_incremental_fetch_skips_held_objects() {
    let (hub, alice, _) = setup().await;
    let big = noise(3, 200_000);
    let c1 = Commit::new(&[], &[("song.mid", b"MThd1"), ("stem.wav", &big)], "c1", T0);
    let c2 = Commit::new(
        &[c1.id],
        &[("song.mid", b"MThd2"), ("stem.wav", &big)],
        "c2",
        T1,
    );
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"MThd1", &big],
            std::slice::from_ref(&c1),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"MThd2"],
            std::slice::from_ref(&c2),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );

    let unknown = Id::of(b"not here");
    let ans = hub
        .call(
            "/alice/song/negotiate",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[unknown, c1.id]))]),
        )
        .await;
    assert_eq!(field(&ans, "ack"), &ids(&[c1.id]));
    assert_eq!(
        field(&ans, "common_base").as_str(),
        Some(c1.id.to_hex().as_str())
    );
    assert_eq!(field(&ans, "ready"), &Value::Boolean(true));
    // Already up to date: the want itself is acked, so the first round is ready.
    let ans = hub
        .call(
            "/alice/song/negotiate",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[c2.id]))]),
        )
        .await;
    assert_eq!(field(&ans, "ready"), &Value::Boolean(true));
    let ans = hub
        .call(
            "/alice/song/negotiate",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[unknown]))]),
        )
        .await;
    assert_eq!(field(&ans, "ready"), &Value::Boolean(false));

    let pack = hub
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[c1.id]))]),
        )
        .await;
    let pack = Pack::decode(&musehub::wire::encode(&pack));
    assert_eq!(pack.commit_ids().len(), 1);
    assert_eq!(
        pack.objects
            .iter()
            .map(|(i, _)| i.clone())
            .collect::<Vec<_>>(),
        vec![Id::of(b"MThd2").to_hex()],
        "the stem is held through c1"
    );
    let pack = hub
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[c2.id])), ("have", ids(&[c2.id]))]),
        )
        .await;
    assert!(field(&pack, "commits").as_array().unwrap().is_empty());
    let pack = hub
        .call(
            "/alice/song/fetch",
            None,
            &map([("want", ids(&[])), ("have", ids(&[]))]),
        )
        .await;
    assert!(field(&pack, "objects").as_array().unwrap().is_empty());
}

#[tokio::test]
async fn fetch_over_the_cli_cap_is_refused_with_an_explanation() {
    let hub = TestHub::spawn_with(|c| c.limits.max_fetch_answer = 100_000).await;
    let alice = hub.user("alice").await;
    let big = noise(9, 150_000);
    let c1 = Commit::new(&[], &[("stem.wav", &big)], "c1", T0);
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[&big],
            std::slice::from_ref(&c1),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let body = musehub::wire::encode(&map([("want", ids(&[c1.id])), ("have", ids(&[]))]));
    let (s, b) = hub.post("/alice/song/fetch", None, body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let d = detail(&b);
    assert!(
        d.contains("over the 100000-byte limit") && d.contains("musehub clone"),
        "{d}"
    );
}

#[tokio::test]
async fn private_repos_are_invisible_to_everyone_but_the_owner() {
    let (hub, alice, bob) = setup().await;
    let secret: &[u8] = b"unreleased chorus";
    let c = Commit::new(&[], &[("chorus.mid", secret)], "secret", T0);
    assert_eq!(
        hub.push(
            "alice/secret",
            &alice,
            &[secret],
            std::slice::from_ref(&c),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let fetch = musehub::wire::encode(&map([("want", ids(&[c.id])), ("have", ids(&[]))]));
    let neg = musehub::wire::encode(&map([("want", ids(&[c.id])), ("have", ids(&[]))]));
    for token in [None, Some(bob.as_str())] {
        for (method, path, body) in [
            ("GET", "/alice/secret/refs", None),
            ("POST", "/alice/secret/fetch", Some(fetch.clone())),
            ("POST", "/alice/secret/negotiate", Some(neg.clone())),
            ("GET", "/alice/secret/releases", None),
            (
                "POST",
                "/alice/secret/filter-objects",
                Some(musehub::wire::encode(&map([("object_ids", ids(&[]))]))),
            ),
            (
                "POST",
                "/alice/secret/push/objects",
                Some(objects_body(&[b"x"])),
            ),
            ("GET", &format!("/o/{}", Id::of(secret)), None),
        ] {
            let (s, b) = hub
                .request(
                    method,
                    path,
                    token,
                    body.map(|b| (b, "application/x-msgpack")),
                )
                .await;
            let expected = if token.is_none() && path.ends_with("push/objects")
                || token.is_none() && path.ends_with("filter-objects")
            {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(
                s,
                expected,
                "{method} {path} as {token:?}: {}",
                String::from_utf8_lossy(&b)
            );
            assert!(!String::from_utf8_lossy(&b).contains("chorus"));
        }
    }
    assert_eq!(
        hub.get("/alice/secret/refs", Some(&alice)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        hub.get(&format!("/o/{}", Id::of(secret)), Some(&alice))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn auth_failures_are_401_or_403() {
    let (hub, _alice, bob) = setup().await;
    let body = || objects_body(&[b"x"]);
    let (s, b) = hub.post("/alice/song/push/objects", None, body()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(detail(&b).contains("token"));
    assert_eq!(
        hub.post("/alice/song/push/objects", Some("mh_wrong"), body())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let res = hub
        .client
        .get(hub.url("/alice/song/refs"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    // Not the owner: 403 (the reference's 409 reads as "diverged" in the CLI).
    let (s, b) = hub
        .post("/alice/song/push/objects", Some(&bob), body())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(detail(&b).contains("only alice"));
    let c = Commit::new(&[], &[("x", b"x")], "m", T0);
    assert_eq!(
        hub.post(
            "/alice/song/push",
            Some(&bob),
            push_body(&[c], "main", false)
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Nobody can create repos under someone else's name.
    assert_eq!(
        hub.post("/alice/new/push/objects", Some(&bob), body())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Unknown repo for reads.
    let (s, b) = hub.get("/alice/nope/refs", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(detail(&b).contains("alice/nope"));
    assert_eq!(objects_count(&hub).await, 0);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let hub = TestHub::spawn_with(|c| c.limits.max_body = 1 << 20).await;
    let alice = hub.user("alice").await;
    hub.repo("alice", "song", false).await;
    let good = Id::of(b"x").to_hex();
    let obj = |id: Value, content: Value| {
        musehub::wire::encode(&map([(
            "objects",
            Value::Array(vec![map([("object_id", id), ("content", content)])]),
        )]))
    };
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "push/objects",
            b"\xc1garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            "map",
        ),
        (
            "push/objects",
            obj(Value::from(good.clone()), Value::Binary(b"y".to_vec())),
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not match its content",
        ),
        (
            "push/objects",
            obj(
                Value::from(format!("sha256:{good}")),
                Value::Binary(b"x".to_vec()),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "64 lowercase hex",
        ),
        (
            "push/objects",
            obj(
                Value::from(good.to_uppercase()),
                Value::Binary(b"x".to_vec()),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lowercase hex",
        ),
        (
            "push/objects",
            obj(Value::from(good.clone()), Value::from("x")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "msgpack bin",
        ),
        (
            "push/objects",
            obj(
                Value::from(Id::of(&[0; 2 << 20]).to_hex()),
                Value::Binary(vec![0; 2 << 20]),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
        (
            "filter-objects",
            musehub::wire::encode(&map([("object_ids", Value::from(3))])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "'object_ids' must be an array",
        ),
        (
            "filter-objects",
            musehub::wire::encode(&map([(
                "object_ids",
                Value::Array(vec![Value::from("zz")]),
            )])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "'object_ids[0]'",
        ),
        (
            "negotiate",
            musehub::wire::encode(&map([("want", Value::Array(vec![Value::from(1)]))])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "'want[0]' must be a string",
        ),
        (
            "fetch",
            b"{\"want\": []}".to_vec(),
            StatusCode::BAD_REQUEST,
            "msgpack",
        ),
        (
            "push",
            musehub::wire::encode(&map([("branch", Value::from("main"))])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field 'bundle'",
        ),
    ];
    for (endpoint, body, status, needle) in cases {
        let (s, b) = hub
            .post(&format!("/alice/song/{endpoint}"), Some(&alice), body)
            .await;
        assert_eq!(s, status, "{endpoint}: {}", String::from_utf8_lossy(&b));
        let d = detail(&b);
        assert!(
            d.contains(needle),
            "{endpoint}: {d:?} should mention {needle:?}"
        );
    }
    assert_eq!(
        objects_count(&hub).await,
        0,
        "nothing stored from bad bodies"
    );

    // Pushes: forged ids, escaping paths, forbidden branch names, missing objects.
    let (s, _) = hub
        .post(
            "/alice/song/push/objects",
            Some(&alice),
            objects_body(&[b"x"]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let ok = Commit::new(&[], &[("x", b"x")], "m", T0);
    let mut forged = ok.clone();
    if let Value::Map(m) = &mut forged.commit {
        for (k, v) in m.iter_mut() {
            if k.as_str() == Some("message") {
                *v = Value::from("tampered");
            }
        }
    }
    let mut bad_snapshot = ok.clone();
    if let Value::Map(m) = &mut bad_snapshot.snapshot {
        for (k, v) in m.iter_mut() {
            if k.as_str() == Some("manifest") {
                *v = map([("y", Value::from(good.clone()))]);
            }
        }
    }
    let escaping: Vec<Commit> = ["../x", "/etc/passwd", "a\\b", "a\0b", "a/../../b"]
        .iter()
        .map(|p| Commit::new(&[], &[(p, b"x")], "m", T0))
        .collect();
    let mut pushes: Vec<(Vec<u8>, &str)> = vec![
        (
            push_body(&[forged], "main", false),
            "does not match its fields",
        ),
        (
            push_body(&[bad_snapshot], "main", false),
            "does not match its manifest",
        ),
        (
            push_body(std::slice::from_ref(&ok), "bad..name", false),
            "invalid branch name",
        ),
        (
            push_body(std::slice::from_ref(&ok), "/lead", false),
            "invalid branch name",
        ),
        (
            push_body(std::slice::from_ref(&ok), "tab\tname", false),
            "invalid branch name",
        ),
        (
            push_body(
                &[Commit::new(&[], &[("y", b"never uploaded")], "m", T0)],
                "main",
                false,
            ),
            "was not uploaded",
        ),
        (push_body(&[], "main", false), "no commits"),
    ];
    for c in &escaping {
        pushes.push((
            push_body(std::slice::from_ref(c), "main", false),
            "invalid path",
        ));
    }
    for (body, needle) in pushes {
        let (s, b) = hub.post("/alice/song/push", Some(&alice), body).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{needle}: {}",
            String::from_utf8_lossy(&b)
        );
        assert!(
            detail(&b).contains(needle),
            "{:?} should mention {needle:?}",
            detail(&b)
        );
    }
    assert!(
        hub.heads("alice/song", None).await.is_empty(),
        "no branch moved"
    );
    let report = musehub::doctor::run(hub.server.hub(), |_| {}).unwrap();
    assert_eq!(report.commits_checked, 0);
}

#[tokio::test]
async fn concurrent_push_objects_are_safe() {
    let (hub, alice, _) = setup().await;
    let blobs: Vec<Vec<u8>> = (0..16)
        .map(|i| noise(100 + i, 300_000 + i as usize))
        .collect();
    let shared = noise(5, 1_500_000);
    let bodies: Vec<Vec<u8>> = (0..4)
        .map(|k| {
            let mut list: Vec<&[u8]> = blobs[k * 4..k * 4 + 4].iter().map(Vec::as_slice).collect();
            list.push(&shared);
            objects_body(&list)
        })
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .into_iter()
            .map(|b| hub.post("/alice/song/push/objects", Some(&alice), b)),
    )
    .await;
    for (s, b) in &answers {
        assert_eq!(*s, StatusCode::OK, "{}", String::from_utf8_lossy(b));
    }
    assert_eq!(objects_count(&hub).await, 17);
    let report = musehub::doctor::run(hub.server.hub(), |_| {}).unwrap();
    assert!(report.ok, "{:?}", report.faults);
}

#[tokio::test]
async fn presign_answers_inline_for_every_id() {
    let (hub, alice, _) = setup().await;
    let want = [Id::of(b"a"), Id::of(b"b")];
    let ans = hub
        .call(
            "/alice/song/presign",
            Some(&alice),
            &map([
                ("object_ids", ids(&want)),
                ("direction", Value::from("put")),
            ]),
        )
        .await;
    assert_eq!(field(&ans, "inline"), &ids(&want));
    assert_eq!(field(&ans, "presigned"), &Value::Map(vec![]));
}

fn release_json(tag: &str, commit: &Id, pre: &str, draft: bool) -> Vec<u8> {
    serde_json::json!({
        "release_id": "11111111-2222-4333-8444-555555555555",
        "repo_id": "local", "tag": tag,
        "semver": {"major": 1, "minor": 0, "patch": 0, "pre": pre, "build": ""},
        "channel": "", "commit_id": commit.to_hex(), "snapshot_id": "", "title": "First cut",
        "body": "Caf\u{e9} mix", "changelog": [{"commit_id": commit.to_hex(), "message": "c1", "sem_ver_bump": "none",
        "breaking_changes": [], "author": "", "committed_at": T0, "agent_id": "", "model_id": ""}],
        "agent_id": "", "model_id": "", "is_draft": draft, "gpg_signature": "", "created_at": T0
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn releases_push_list_delete() {
    let (hub, alice, bob) = setup().await;
    let c = Commit::new(&[], &[("a", b"a")], "c1", T0);
    assert_eq!(
        hub.push(
            "alice/song",
            &alice,
            &[b"a"],
            std::slice::from_ref(&c),
            "main",
            false
        )
        .await
        .0,
        StatusCode::OK
    );
    let post = |token: &str, body: Vec<u8>| {
        let token = token.to_owned();
        let hub = &hub;
        async move {
            hub.request(
                "POST",
                "/alice/song/releases",
                Some(&token),
                Some((body, "application/json")),
            )
            .await
        }
    };
    let (s, b) = post(&alice, release_json("v1.0.0", &c.id, "", false)).await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    let id = field(&decode(&b), "release_id")
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        id, "11111111-2222-4333-8444-555555555555",
        "the server assigns its own id"
    );
    assert_eq!(
        post(&alice, release_json("v1.0.0", &c.id, "", false))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(
            &alice,
            release_json("v1.1.0-beta.1", &c.id, "beta.1", false)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&alice, release_json("v2.0.0+draft", &c.id, "", true))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&bob, release_json("v9.0.0", &c.id, "", false)).await.0,
        StatusCode::FORBIDDEN
    );
    let unknown = Id::of(b"nope");
    assert_eq!(
        post(&alice, release_json("v3.0.0", &unknown, "", false))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(&alice, b"not json".to_vec()).await.0,
        StatusCode::BAD_REQUEST
    );

    let tags = |v: &Value| -> Vec<String> {
        field(v, "releases")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| field(r, "tag").as_str().unwrap().to_owned())
            .collect()
    };
    let (s, b) = hub.get("/alice/song/releases", None).await;
    assert_eq!(s, StatusCode::OK);
    let list = decode(&b);
    assert_eq!(
        tags(&list),
        vec!["v1.1.0-beta.1", "v1.0.0"],
        "newest first, drafts hidden"
    );
    let first = &field(&list, "releases").as_array().unwrap()[1];
    assert_eq!(field(first, "channel").as_str(), Some("stable"));
    assert_eq!(field(first, "body").as_str(), Some("Café mix"));
    assert_eq!(field(field(first, "semver"), "major").as_u64(), Some(1));
    let (_, b) = hub.get("/alice/song/releases?channel=beta", None).await;
    assert_eq!(tags(&decode(&b)), vec!["v1.1.0-beta.1"]);
    let (_, b) = hub.get("/alice/song/releases?include_drafts=1", None).await;
    assert_eq!(tags(&decode(&b)).len(), 2, "drafts only for the owner");
    let (_, b) = hub
        .get("/alice/song/releases?include_drafts=1", Some(&alice))
        .await;
    assert_eq!(tags(&decode(&b)).len(), 3);

    // DELETE percent-decodes the tag (`+` arrives as %2B).
    assert_eq!(
        hub.request(
            "DELETE",
            "/alice/song/releases/v2.0.0%2Bdraft",
            Some(&bob),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (s, b) = hub
        .request(
            "DELETE",
            "/alice/song/releases/v2.0.0%2Bdraft",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        field(&decode(&b), "retracted").as_str(),
        Some("v2.0.0+draft")
    );
    assert_eq!(
        hub.request(
            "DELETE",
            "/alice/song/releases/v2.0.0%2Bdraft",
            Some(&alice),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(hub.heads("alice/song", None).await.len(), 1, "commits stay");
}

#[tokio::test]
async fn wire_tags_upsert_by_label() {
    let (hub, alice, bob) = setup().await;
    let c = Commit::new(&[], &[("a", b"a")], "c1", T0);
    let tag = |commit: &Id| {
        map([(
            "tags",
            Value::Array(vec![map([
                ("tag_id", Value::from("t1")),
                ("repo_id", Value::from("r")),
                ("commit_id", Value::from(commit.to_hex())),
                ("tag", Value::from("emotion:joyful")),
                ("created_at", Value::from(T0)),
            ])]),
        )])
    };
    let ans = hub
        .call("/alice/song/tags", Some(&alice), &tag(&c.id))
        .await;
    assert_eq!(field(&ans, "stored").as_u64(), Some(1));
    let ans = hub
        .call("/alice/song/tags", Some(&alice), &tag(&Id::of(b"2")))
        .await;
    assert_eq!(field(&ans, "stored").as_u64(), Some(1));
    let (s, _) = hub
        .post(
            "/alice/song/tags",
            Some(&bob),
            musehub::wire::encode(&tag(&c.id)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = hub
        .post(
            "/alice/song/tags",
            Some(&alice),
            musehub::wire::encode(&map([("tags", Value::from(1))])),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&b).contains("'tags' must be an array"));
}
