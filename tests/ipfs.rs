//! The embedded IPFS node between musehub nodes on loopback: Bitswap fetches of raw and
//! multi-block objects, DHT provider discovery across three nodes, privacy, and a rogue peer.

use std::time::Duration;

use futures_util::{AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use musehub::cids::Id;
use musehub::config::IpfsConfig;
use musehub::ipfs::Node;
use musehub::ipfs::bitswap::message;
use musehub::storage::unixfs;

use crate::harness::{Commit, TestHub};

/// Bytes whose byte i is `i mod 251` (the IPIP-499 pattern), `len` long.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The CID the hub gives an object: a raw block up to 1 MiB, else the dag-pb root.
pub fn object_cid(bytes: &[u8]) -> cid::Cid {
    unixfs::import_bytes(unixfs::UNIXFS_V1_2025, bytes).0
}

/// A hub with its IPFS node on, optionally bootstrapping from `bootstrap`.
pub async fn ipfs_hub(bootstrap: &[Multiaddr]) -> TestHub {
    let bootstrap = bootstrap.to_vec();
    TestHub::spawn_with(move |c| {
        c.ipfs = IpfsConfig::for_tests();
        c.ipfs.bootstrap = bootstrap;
    })
    .await
}

pub fn node(hub: &TestHub) -> &Node {
    hub.server.node().expect("the IPFS node is on")
}

pub async fn addrs(hub: &TestHub) -> Vec<Multiaddr> {
    node(hub)
        .wait_listening(Duration::from_secs(5))
        .await
        .expect("listening")
}

/// Pushes `files` to `repo` (created private when asked) as one commit.
pub async fn push_files(hub: &TestHub, repo: &str, private: bool, files: &[(&str, &[u8])]) {
    let (owner, slug) = repo.split_once('/').expect("owner/slug");
    let token = hub.user(owner).await;
    hub.repo(owner, slug, private).await;
    let objects: Vec<&[u8]> = files.iter().map(|(_, b)| *b).collect();
    let commit = Commit::new(&[], files, "stems", "2026-11-24T10:00:00+00:00");
    let (s, b) = hub
        .push(repo, &token, &objects, &[commit], "main", false)
        .await;
    assert!(s.is_success(), "push: {s} {}", String::from_utf8_lossy(&b));
}

async fn wait_for<F: Fn() -> bool>(what: &str, max: Duration, f: F) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < max, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn fetch_all(node: &Node, cid: &cid::Cid) -> Vec<u8> {
    let mut out = Vec::new();
    node.fetch_file(cid, &mut out, &|_, _| {})
        .await
        .unwrap_or_else(|e| panic!("fetching {cid}: {e}"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_fetches_raw_and_multi_block_objects_from_another_over_bitswap() {
    let a = ipfs_hub(&[]).await;
    let small = b"a MIDI file, short".to_vec();
    let big = pattern(2 * 1024 * 1024 + 512 * 1024 + 7);
    push_files(
        &a,
        "alice/song",
        false,
        &[("a.mid", &small), ("stem.wav", &big)],
    )
    .await;
    let b = ipfs_hub(&[]).await;
    for addr in addrs(&a).await {
        node(&b).dial(addr).await.expect("dial");
    }
    wait_for("bitswap peer", Duration::from_secs(10), || {
        !node(&b).bitswap().peers().is_empty()
    })
    .await;
    let small_cid = Id::of(&small).raw_cid();
    assert_eq!(fetch_all(node(&b), &small_cid).await, small);
    let big_cid = object_cid(&big);
    assert_eq!(
        big_cid.to_string(),
        "bafybeign62xbntnafqbd2elad7omfucbjlnfpa3d454fltteqjx4zwcugq"
    );
    assert_eq!(fetch_all(node(&b), &big_cid).await, big);
    // Fetched blocks were stored: B now reads them locally.
    let (_, source) = node(&b).fetch_block(&small_cid).await.expect("local");
    assert_eq!(source, musehub::ipfs::fetch::Source::Local);
    assert!(node(&a).metrics().blocks_sent.get() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_objects_are_never_sent_over_bitswap() {
    let a = ipfs_hub(&[]).await;
    let secret = pattern(300_000);
    push_files(&a, "alice/secret", true, &[("demo.wav", &secret)]).await;
    let b = ipfs_hub(&[]).await;
    for addr in addrs(&a).await {
        node(&b).dial(addr).await.expect("dial");
    }
    wait_for("bitswap peer", Duration::from_secs(10), || {
        !node(&b).bitswap().peers().is_empty()
    })
    .await;
    let cid = Id::of(&secret).raw_cid();
    let err = node(&b)
        .fetch_block(&cid)
        .await
        .expect_err("a private block must not be served");
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(node(&a).metrics().blocks_sent.get(), 0);
    // The private object is not announced either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(node(&a).status().provided, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_finds_a_provider_through_the_dht_and_fetches_from_it() {
    // B is the only peer A and C know; A and C never dial each other themselves.
    let b = ipfs_hub(&[]).await;
    let b_addrs = addrs(&b).await;
    let a = ipfs_hub(&b_addrs).await;
    let song = pattern(1024 * 1024 + 1);
    push_files(&a, "alice/song", false, &[("take1.wav", &song)]).await;
    let cid = object_cid(&song);
    // A announces the object's root to the DHT (B).
    wait_for("A to announce", Duration::from_secs(20), || {
        node(&a).metrics().provides.get() >= 1
    })
    .await;
    let c = ipfs_hub(&b_addrs).await;
    let a_id = node(&a).peer_id();
    // C is told only about B. (Whether C's own DHT bootstrap has already walked to A is a
    // race, so the check is on what C was given, and on A coming back as a provider below.)
    assert!(
        node(&c)
            .config()
            .bootstrap
            .iter()
            .all(|m| !m.to_string().contains(&a_id.to_string())),
        "C must not be configured with A"
    );
    let providers = node(&c).find_providers(cid).await.expect("query");
    assert!(
        providers.contains(&a_id),
        "C finds A as a provider through B: {providers:?}"
    );
    assert_eq!(fetch_all(node(&c), &cid).await, song);
    assert!(node(&b).metrics().blocks_sent.get() == 0, "B holds nothing");
}

/// A bare libp2p peer that speaks Bitswap 1.2.0 and sends whatever the test says.
struct Rogue {
    control: libp2p_stream::Control,
    /// The hub it talks to.
    peer: PeerId,
    /// Its own id.
    id: PeerId,
}

async fn rogue(target: Multiaddr) -> Rogue {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let peer = match target.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(p)) => p,
        _ => panic!("address without /p2p"),
    };
    let control = swarm.behaviour().new_control();
    let id = *swarm.local_peer_id();
    swarm.dial(target).expect("dial");
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    Rogue { control, peer, id }
}

impl Rogue {
    async fn send(&mut self, msg: &message::Message) -> std::io::Result<()> {
        let mut s = self
            .control
            .open_stream(
                self.peer,
                libp2p::StreamProtocol::new("/ipfs/bitswap/1.2.0"),
            )
            .await
            .map_err(std::io::Error::other)?;
        s.write_all(&message::frame(&message::encode(msg))).await?;
        s.close().await
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self
            .control
            .open_stream(
                self.peer,
                libp2p::StreamProtocol::new("/ipfs/bitswap/1.2.0"),
            )
            .await
            .map_err(std::io::Error::other)?;
        s.write_all(bytes).await?;
        s.close().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_bad_blocks_is_penalised_and_dropped() {
    let hub = ipfs_hub(&[]).await;
    let addr = addrs(&hub).await.remove(0);
    let mut r = rogue(addr).await;
    // A block nobody asked for (its bytes hash to some CID no want names).
    let junk = message::Message {
        payload: vec![message::Block {
            prefix: message::prefix_of(&Id::of(b"x").raw_cid()),
            data: bytes::Bytes::from_static(b"not what the prefix's CID names"),
        }],
        ..Default::default()
    };
    r.send(&junk).await.expect("send");
    wait_for("a strike", Duration::from_secs(5), || {
        node(&hub).metrics().bad_blocks.get() >= 1
    })
    .await;
    // An oversized block (over 2 MiB) and a frame announcing more than 4 MiB.
    let big = message::Message {
        payload: vec![message::Block {
            prefix: message::prefix_of(&Id::of(b"x").raw_cid()),
            data: bytes::Bytes::from(vec![7u8; message::MAX_BLOCK + 1]),
        }],
        ..Default::default()
    };
    r.send(&big).await.expect("send");
    r.send_raw(&[0x80, 0x80, 0x80, 0x04]).await.expect("send");
    wait_for("three strikes", Duration::from_secs(5), || {
        node(&hub).metrics().bad_blocks.get() >= 3
    })
    .await;
    // Enough strikes get the peer dropped and ignored.
    for _ in 0..8 {
        if node(&hub).bitswap().is_banned(&r.id) {
            break;
        }
        let _ = r.send(&junk).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node(&hub).bitswap().is_banned(&r.id));
    // Nothing it sent was stored.
    let stored = hub
        .server
        .hub()
        .store()
        .block_blocking(
            &Id::of(b"not what the prefix's CID names").raw_cid(),
            musehub::storage::Scope::Granted,
        )
        .expect("read");
    assert!(stored.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_resolves_the_hubs_ipns_name_to_its_index() {
    let hub = ipfs_hub(&[]).await;
    push_files(&hub, "alice/song", false, &[("a.mid", b"MThd public")]).await;
    push_files(&hub, "bob/secret", true, &[("b.mid", b"MThd private")]).await;
    let n = node(&hub);
    // The push after start triggers a republish; wait for an index that lists the song.
    let name = musehub::ipfs::ipns::name_to_string(&n.peer_id());
    let start = std::time::Instant::now();
    let index = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no index with alice/song"
        );
        let (s, b) = hub.get(&format!("/ipns/{name}?format=raw"), None).await;
        if s.is_success() {
            let v = musehub::dagcbor::decode(&b).expect("the index is DAG-CBOR");
            let repos = v
                .get("repos")
                .and_then(|r| r.as_list())
                .expect("repos")
                .to_vec();
            if !repos.is_empty() {
                break v;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        index.get("type").and_then(|t| t.as_text()),
        Some("musehub-index")
    );
    let repos = index.get("repos").and_then(|r| r.as_list()).expect("repos");
    let names: Vec<_> = repos
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.get("owner").and_then(|v| v.as_text()).unwrap_or_default(),
                r.get("slug").and_then(|v| v.as_text()).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(names, ["alice/song"], "private repos stay out of the index");
    // The signed record itself, valid under the hub's key.
    let res = hub
        .client
        .get(hub.url(&format!("/ipns/{name}")))
        .header("accept", "application/vnd.ipfs.ipns-record")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/vnd.ipfs.ipns-record"
    );
    let record = res.bytes().await.expect("body");
    let v = musehub::ipfs::ipns::validate(&n.peer_id(), &record, std::time::SystemTime::now())
        .expect("a valid record");
    assert!(String::from_utf8_lossy(&v.value).starts_with("/ipfs/bafyrei"));
    // Bad names are refused clearly.
    let (s, _) = hub.get("/ipns/not-a-name", None).await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_configured_to_fetch_gets_missing_blocks_from_peers_but_never_private_ones() {
    let a = ipfs_hub(&[]).await;
    let stem = pattern(1024 * 1024 + 4096);
    let secret = b"a private demo".to_vec();
    push_files(
        &a,
        "alice/song",
        false,
        &[("stem.wav", &stem), ("s.txt", &secret)],
    )
    .await;
    let a_addrs = addrs(&a).await;
    let b = TestHub::spawn_with(move |c| {
        c.ipfs = IpfsConfig::for_tests();
        c.ipfs.gateway_fetch = true;
        c.ipfs.bootstrap = a_addrs;
    })
    .await;
    // B holds the same secret bytes in a private repo: they must stay a 404 on B.
    push_files(&b, "bob/private", true, &[("s.txt", &secret)]).await;
    wait_for("B to see A", Duration::from_secs(10), || {
        !node(&b).bitswap().peers().is_empty()
    })
    .await;
    let cid = object_cid(&stem);
    let (s, car) = b.get(&format!("/ipfs/{cid}?format=car"), None).await;
    assert_eq!(s, 200);
    // Root + two leaves, each section prefixed by its CID.
    assert!(car.len() > stem.len());
    let (s, raw) = b
        .get(
            &format!(
                "/ipfs/{}?format=raw",
                Id::of(&stem[..1024 * 1024]).raw_cid()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(&raw[..], &stem[..1024 * 1024]);
    let (s, _) = b
        .get(
            &format!("/ipfs/{}?format=raw", Id::of(&secret).raw_cid()),
            None,
        )
        .await;
    assert_eq!(
        s, 404,
        "a private object of B is never fetched around its privacy"
    );
    // A hub not configured to fetch answers 404 for what it lacks.
    let c = ipfs_hub(&[]).await;
    let (s, _) = c.get(&format!("/ipfs/{cid}?format=raw"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_reachable_peer_the_hub_still_starts_and_serves() {
    // Bootstrap peers that refuse connections (nothing listens on port 1), as on a Pi
    // whose internet is down.
    let unreachable: Multiaddr = format!(
        "/ip4/127.0.0.1/tcp/1/p2p/{}",
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    )
    .parse()
    .expect("multiaddr");
    let hub = ipfs_hub(&[unreachable]).await;
    push_files(&hub, "alice/song", false, &[("a.mid", b"MThd offline")]).await;
    let (s, _) = hub.get("/health", None).await;
    assert_eq!(s, 200);
    let cid = Id::of(b"MThd offline").raw_cid();
    let (s, body) = hub.get(&format!("/ipfs/{cid}?format=raw"), None).await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"MThd offline"[..]));
    // The announcement waits in the backlog for a peer; /metrics says so.
    wait_for("the root to be queued", Duration::from_secs(10), || {
        node(&hub).status().provided >= 1
    })
    .await;
    let (s, metrics) = hub.get("/metrics", None).await;
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&metrics);
    assert!(text.contains("musehub_ipfs_peers 0"), "{text}");
    assert!(text.contains("musehub_dht_provide_backlog"), "{text}");
    assert!(
        text.contains("musehub_dht_last_provide_timestamp_seconds 0"),
        "{text}"
    );
}
