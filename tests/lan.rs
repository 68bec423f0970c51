//! Two hubs on their own network namespaces (`ip netns`, a bridge and veth pairs) find each
//! other by mDNS, pair because they have the same owner, and replicate; a partition during
//! pushes is reported as lag and heals without losing anything. Each answers mDNS queries for
//! its own `<lan_name>.local` (the appliance's `musehub.local`), asked from the bridge by a
//! plain DNS query written here, not by the mDNS library the hub uses.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Commit, client, musehub, noise, objects_body, push_body};

/// Runs `ip …`, panicking with its error (the test needs root and iproute2; it never skips).
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("`ip` (iproute2) is needed for the LAN test: apt-get install iproute2 ({e})")
    });
    assert!(
        out.status.success(),
        "ip {}: {} (the LAN test needs root to create network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces, bridge and links of one test; removed when dropped.
struct Lan {
    tag: String,
    subnet: String,
}

impl Lan {
    fn new() -> Lan {
        let n = std::process::id() % 10_000;
        let tag = format!("mh{n}");
        let subnet = format!("10.{}.{}", 100 + n % 100, n / 100 % 250);
        let lan = Lan { tag, subnet };
        let br = lan.bridge();
        ip(&["link", "add", &br, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}.254/24", lan.subnet), "dev", &br]);
        ip(&["link", "set", &br, "up"]);
        for (i, host) in ["a", "b"].iter().enumerate() {
            let ns = lan.ns(host);
            let (outer, inner) = (lan.outer(host), format!("{}{host}i", lan.tag));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["link", "set", &outer, "master", &br, "up"]);
            let addr = format!("{}.{}/24", lan.subnet, i + 1);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn outer(&self, host: &str) -> String {
        format!("{}{host}o", self.tag)
    }

    /// The name the hub on `host` answers to, as `<name>.local`.
    fn lan_name(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn ip(&self, host: &str) -> std::net::Ipv4Addr {
        let i = if host == "a" { 1 } else { 2 };
        format!("{}.{i}", self.subnet).parse().expect("address")
    }

    /// The host side of the bridge.
    fn bridge_ip(&self) -> std::net::Ipv4Addr {
        format!("{}.254", self.subnet).parse().expect("address")
    }

    fn addr(&self, host: &str) -> String {
        let i = if host == "a" { 1 } else { 2 };
        format!("{}.{i}:8080", self.subnet)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(host)])
                .status();
            let _ = Command::new("ip")
                .args(["link", "del", &self.outer(host)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .status();
    }
}

/// A hub serving inside a namespace; killed when dropped.
struct NsHub {
    child: Child,
    log: Arc<Mutex<String>>,
    url: String,
}

impl NsHub {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NsHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_in(lan: &Lan, host: &str, data: &Path) -> NsHub {
    let addr = lan.addr(host);
    let url = format!("http://{addr}");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lan.ns(host),
        env!("CARGO_BIN_EXE_musehub"),
    ]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MUSEHUB_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", &addr])
        .env("MUSEHUB_PUBLIC_URL", &url)
        .env("MUSEHUB_IPFS_ENABLED", "false")
        .env("MUSEHUB_FEDERATION_OWNER", "alice")
        .env("MUSEHUB_FEDERATION_MDNS", "true")
        .env("MUSEHUB_FEDERATION_POLL", "1s")
        .env("MUSEHUB_FEDERATION_LAN_NAME", lan.lan_name(host))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("musehub starts in the namespace");
    let stderr = child.stderr.take().expect("piped");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            let mut l = l2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let hub = NsHub { child, log, url };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        panic!(
            "the hub in {} did not start:\n{}",
            lan.ns(host),
            hub.log.lock().unwrap()
        );
    }
    hub
}

/// Asks the LAN for `name`'s IPv4 addresses the way `dig -p 5353 @224.0.0.251` does: one
/// multicast DNS question for an A record, sent from `from` (the bridge: a multicast packet
/// leaves by the interface that owns its source address) and from a port other than 5353, so
/// responders answer by unicast (RFC 6762 §6.7). Asks again every second until `limit`.
fn mdns_lookup(from: std::net::Ipv4Addr, name: &str, limit: Duration) -> Vec<std::net::Ipv4Addr> {
    let socket = std::net::UdpSocket::bind((from, 0)).expect("udp socket on the bridge");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut query = vec![0x4d, 0x48, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).expect("short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // root; QTYPE A; QCLASS IN
    let deadline = Instant::now() + limit;
    let mut found = Vec::new();
    while found.is_empty() && Instant::now() < deadline {
        socket
            .send_to(&query, ("224.0.0.251", 5353))
            .expect("send the mDNS question");
        let sent = Instant::now();
        let mut buf = [0u8; 1500];
        while sent.elapsed() < Duration::from_secs(1) {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                found.extend(a_records(&buf[..n], name));
            }
        }
    }
    found
}

/// The A records for `name` among a DNS message's answers (RFC 1035 §4.1).
fn a_records(msg: &[u8], name: &str) -> Vec<std::net::Ipv4Addr> {
    /// Reads a possibly compressed name at `at`; returns it and where the record goes on.
    fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
        let (mut labels, mut next, mut jumps) = (Vec::new(), None, 0);
        loop {
            let len = *msg.get(at)? as usize;
            if len == 0 {
                return Some((labels.join("."), next.unwrap_or(at + 1)));
            }
            if len & 0xc0 == 0xc0 {
                next.get_or_insert(at + 2);
                at = (len & 0x3f) << 8 | *msg.get(at + 1)? as usize;
                jumps += 1;
                if jumps > 32 {
                    return None;
                }
                continue;
            }
            labels.push(String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?).into_owned());
            at += 1 + len;
        }
    }
    let count = |i: usize| usize::from(u16::from_be_bytes([msg[i], msg[i + 1]]));
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return Vec::new(); // not a response
    }
    let (questions, answers) = (count(4), count(6) + count(8) + count(10));
    let mut at = 12;
    for _ in 0..questions {
        let Some((_, next)) = read_name(msg, at) else {
            return Vec::new();
        };
        at = next + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let Some((owner, next)) = read_name(msg, at) else {
            break;
        };
        let Some(fixed) = msg.get(next..next + 10) else {
            break;
        };
        let (rtype, rdlen) = (
            u16::from_be_bytes([fixed[0], fixed[1]]),
            usize::from(u16::from_be_bytes([fixed[8], fixed[9]])),
        );
        let Some(rdata) = msg.get(next + 10..next + 10 + rdlen) else {
            break;
        };
        if rtype == 1 && rdlen == 4 && owner.eq_ignore_ascii_case(name.trim_end_matches('.')) {
            out.push(std::net::Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ));
        }
        at = next + 10 + rdlen;
    }
    out
}

fn peers_of(data: &Path) -> Vec<serde_json::Value> {
    let run = musehub(data, &["peer", "list", "--json"]).ok();
    serde_json::from_str::<serde_json::Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_for(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool, logs: &[&NsHub]) {
    let deadline = Instant::now() + limit;
    while !f().await {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|h| h.log.lock().unwrap().clone()).collect();
            panic!(
                "timed out waiting for: {what}\n--- logs ---\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn heads(url: &str) -> Option<String> {
    let res = client()
        .get(format!("{url}/alice/song/refs"))
        .send()
        .await
        .ok()?;
    if res.status() != StatusCode::OK {
        return None;
    }
    let v = crate::harness::decode(&res.bytes().await.ok()?);
    let h = crate::harness::field(&v, "branch_heads");
    Some(format!("{h}"))
}

async fn push(
    url: &str,
    token: &str,
    parents: &[musehub::cids::Id],
    seed: u64,
    at: &str,
) -> Commit {
    let data = noise(seed, 50_000 + seed as usize);
    let c = Commit::new(parents, &[("take.wav", &data)], &format!("take {seed}"), at);
    let http = client();
    let res = http
        .post(format!("{url}/alice/song/push/objects"))
        .bearer_auth(token)
        .body(objects_body(&[&data]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .post(format!("{url}/alice/song/push"))
        .bearer_auth(token)
        .body(push_body(std::slice::from_ref(&c), "main", false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    c
}

#[tokio::test]
async fn hubs_on_a_lan_pair_by_mdns_replicate_and_heal_after_a_partition() {
    crate::harness::crypto();
    let lan = Lan::new();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    musehub(da.path(), &["user", "add", "alice"]).ok();
    let token = musehub(da.path(), &["token", "create", "--user", "alice"])
        .ok()
        .stdout;
    let token = token
        .lines()
        .find(|l| l.starts_with("mh_"))
        .unwrap()
        .trim()
        .to_owned();
    let a = serve_in(&lan, "a", da.path());
    let b = serve_in(&lan, "b", db.path());

    // Same owner: each finds the other by mDNS and follows alice's repos there.
    let (pa, pb) = (da.path().to_owned(), db.path().to_owned());
    wait_for(
        "the hubs pair over mDNS",
        Duration::from_secs(30),
        async || {
            let (x, y) = (peers_of(&pa), peers_of(&pb));
            x.iter()
                .any(|p| p["url"] == b.url.as_str() && p["source"] == "lan")
                && y.iter()
                    .any(|p| p["url"] == a.url.as_str() && p["source"] == "lan")
        },
        &[&a, &b],
    )
    .await;

    // Each answers for its own name on the LAN, and only with its own address.
    for host in ["a", "b"] {
        let name = format!("{}.local", lan.lan_name(host));
        let found = mdns_lookup(lan.bridge_ip(), &name, Duration::from_secs(15));
        assert_eq!(
            found.first(),
            Some(&lan.ip(host)),
            "mDNS answer for {name}: {found:?}\n{}",
            if host == "a" { a.log() } else { b.log() }
        );
        assert!(found.iter().all(|ip| *ip == lan.ip(host)), "{found:?}");
    }

    let c1 = push(&a.url, &token, &[], 1, "2026-11-24T10:00:00+00:00").await;
    wait_for(
        "B replicates the first push",
        Duration::from_secs(30),
        async || heads(&b.url).await.is_some() && heads(&b.url).await == heads(&a.url).await,
        &[&a, &b],
    )
    .await;

    // Partition: B's link goes down while A takes two more pushes.
    ip(&["link", "set", &lan.outer("b"), "down"]);
    let c2 = push(&a.url, &token, &[c1.id], 2, "2026-11-24T11:00:00+00:00").await;
    let c3 = push(&a.url, &token, &[c2.id], 3, "2026-11-24T12:00:00+00:00").await;
    wait_for(
        "B reports A offline, with lag",
        Duration::from_secs(30),
        async || {
            peers_of(&pb).iter().any(|p| {
                p["url"] == a.url.as_str()
                    && p["status"] == "offline"
                    && p["lag_seconds"].as_u64().unwrap_or(0) >= 1
            })
        },
        &[&a, &b],
    )
    .await;

    // Heal: B catches up by itself, and nothing is lost.
    ip(&["link", "set", &lan.outer("b"), "up"]);
    wait_for(
        "B converges after the partition",
        Duration::from_secs(60),
        async || heads(&b.url).await.is_some() && heads(&b.url).await == heads(&a.url).await,
        &[&a, &b],
    )
    .await;
    wait_for(
        "B reports A active with no lag",
        Duration::from_secs(30),
        async || {
            peers_of(&pb).iter().any(|p| {
                p["url"] == a.url.as_str() && p["status"] == "active" && p["lag_commits"] == 0
            })
        },
        &[&a, &b],
    )
    .await;
    let pack = client()
        .post(format!("{}/alice/song/fetch", b.url))
        .body(musehub::wire::encode(&crate::harness::map([
            ("want", crate::harness::ids(&[c3.id])),
            ("have", crate::harness::ids(&[])),
        ])))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let pack = crate::harness::Pack::decode(&pack);
    pack.verify();
    assert_eq!(
        pack.commit_ids(),
        [c1.id, c2.id, c3.id].iter().map(|i| i.to_hex()).collect()
    );
    drop((a, b));
}
