//! The key registry on a real local chain (anvil from `chain/node_modules`), driven from Rust:
//! register, rotate with and without the old key's signature, revoke; a hub that checks
//! every signed-in key against the chain, follows its events, refills a wiped cache from it,
//! and fails closed for writes when the chain is gone.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use libp2p::identity::ed25519;
use musehub::chain::{self, Endpoint, Registry, RotationKind};
use musehub::config::ChainConfig;
use musehub::{Config, Server};
use reqwest::StatusCode;

use crate::harness::{Commit, client, crypto, eventually};

/// An error's `detail`, or the body as text.
fn detail(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

/// anvil's first well-known dev account (funded on every fresh anvil).
pub const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The second one: a different EVM owner.
pub const DEV_KEY_2: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a7412f4603b6b78690d";

/// A local anvil chain, killed when dropped.
pub struct Anvil {
    child: std::process::Child,
    pub url: reqwest::Url,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn anvil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("chain/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

impl Anvil {
    /// Starts anvil on 127.0.0.1 and a free port, with the Cancun rules of Avalanche.
    pub fn start() -> Anvil {
        let bin = anvil_bin();
        assert!(
            bin.exists(),
            "anvil is missing at {}: install the pinned test tools with `npm ci --prefix chain --engine-strict=false` (scripts/test does this)",
            bin.display()
        );
        let mut child = std::process::Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0", "--hardfork", "cancun"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("anvil starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("anvil reports its address");
        Anvil {
            child,
            url: format!("http://{addr}").parse().expect("url"),
        }
    }

    /// Deploys a fresh registry and returns its endpoint.
    pub async fn deploy(&self) -> Endpoint {
        let (registry, block, chain_id) =
            Registry::deploy(self.url.clone(), signer(DEV_KEY), Address::ZERO)
                .await
                .expect("deploys");
        assert_eq!(chain_id, 31337);
        Endpoint {
            rpc_url: self.url.clone(),
            chain_id,
            registry,
            from_block: block,
        }
    }
}

pub fn signer(key: &str) -> PrivateKeySigner {
    key.parse().expect("dev key")
}

fn bundle_cid(key: &ed25519::Keypair, handle: &str) -> Vec<u8> {
    let b = musehub::identity::KeyBundle::new(
        key,
        handle,
        Vec::new(),
        None,
        "2026-11-24T00:00:00Z".into(),
    );
    let block = b.to_block().unwrap();
    musehub::cids::cid_of(musehub::cids::DAG_CBOR, &musehub::cids::Id::of(&block.data)).to_bytes()
}

#[tokio::test]
async fn registry_register_rotate_and_revoke_from_rust() {
    crypto();
    let anvil = Anvil::start();
    let ep = anvil.deploy().await;
    let owner = Registry::connect_signing(ep.clone(), signer(DEV_KEY)).unwrap();
    let reader = Registry::connect(ep.clone()).unwrap();
    reader.check_endpoint().await.unwrap();

    let k1 = ed25519::Keypair::generate();
    let (p1, cid1) = (k1.public().to_bytes(), bundle_cid(&k1, "alice"));
    let c = reader.check("alice", p1).await.unwrap();
    assert_eq!(c.record, None);

    owner.register("alice", p1, &cid1).await.unwrap();
    let c = reader.check("alice", p1).await.unwrap();
    let rec = c.record.clone().unwrap();
    assert_eq!((rec.key, rec.nonce, rec.bundle_cid.clone()), (p1, 1, cid1));
    assert_eq!(rec.owner, signer(DEV_KEY).address());
    assert_eq!(c.key_handle, chain::handle_hash("alice"));

    // Refusals come back as words.
    let e = owner
        .register("alice", [9; 32], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already registered"), "{e}");
    let e = owner
        .register("Alice", [8; 32], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("lowercase"), "{e}");
    let stranger = Registry::connect_signing(ep.clone(), signer(DEV_KEY_2)).unwrap();
    let e = stranger
        .rotate("alice", 1, [7; 32], &[], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("only the EVM address"), "{e}");

    // A rotation approved by the old key: our digest is the contract's.
    let k2 = ed25519::Keypair::generate();
    let (p2, cid2) = (k2.public().to_bytes(), bundle_cid(&k2, "alice"));
    let digest = chain::rotation_digest(
        ep.chain_id,
        ep.registry,
        chain::handle_hash("alice"),
        1,
        p2,
        &cid2,
    );
    assert_eq!(
        reader.rotation_digest("alice", 1, p2, &cid2).await.unwrap(),
        digest
    );
    owner
        .rotate("alice", 1, p2, &cid2, Some(&k1.sign(&digest)))
        .await
        .unwrap();
    let e = owner
        .rotate("alice", 1, [6; 32], &[], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected nonce 1, it is 2"), "{e}");

    // A recovery rotation (no old-key signature), then one with a forged signature.
    let k3 = ed25519::Keypair::generate();
    let p3 = k3.public().to_bytes();
    owner.rotate("alice", 2, p3, &[], None).await.unwrap();
    let k4 = ed25519::Keypair::generate();
    let p4 = k4.public().to_bytes();
    owner
        .rotate("alice", 3, p4, &[], Some(&[0x55; 64]))
        .await
        .unwrap();

    let head = reader.block_number().await.unwrap();
    let h = chain::handle_hash("alice");
    let rots = reader.rotations(h, ep.from_block, head).await.unwrap();
    let kinds: Vec<_> = rots
        .iter()
        .map(|r| r.kind(ep.chain_id, ep.registry, h))
        .collect();
    assert_eq!(
        kinds,
        [
            RotationKind::Normal,
            RotationKind::Recovery,
            RotationKind::Suspicious
        ]
    );
    assert_eq!(
        (rots[0].old_key, rots[0].new_key, rots[0].nonce),
        (p1, p2, 2)
    );

    // The first key is superseded, not revoked; then the current key is revoked.
    let c = reader.check("alice", p1).await.unwrap();
    assert_eq!((c.key_revoked_at, c.record.unwrap().key), (0, p4));
    owner.revoke("alice", 4, p4, 1).await.unwrap();
    let c = reader.check("alice", p4).await.unwrap();
    assert!(c.key_revoked_at > 0);
    assert_eq!(
        c.record.unwrap().key,
        [0; 32],
        "no current key after revoking it"
    );
    let e = owner
        .revoke("alice", 5, p4, 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already revoked"), "{e}");
    let changed = reader
        .changed_handles(ep.from_block, head + 10)
        .await
        .unwrap();
    assert_eq!(changed, vec![h]);

    // A dead RPC is "unreachable", quickly.
    drop(anvil);
    let e = reader.check("alice", p1).await.unwrap_err();
    assert!(matches!(e, chain::Error::Unreachable { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// a hub in front of the chain

/// Logs in over HTTP as `musehub login` does and returns the token (or the refusal).
pub async fn login(
    base: &str,
    handle: &str,
    key: &ed25519::Keypair,
) -> Result<String, (StatusCode, String)> {
    login_via(&client(), base, handle, key).await
}

/// [`login`] with a given client (the appliance test's trusts only the VM's CA).
pub async fn login_via(
    c: &reqwest::Client,
    base: &str,
    handle: &str,
    key: &ed25519::Keypair,
) -> Result<String, (StatusCode, String)> {
    let res = c
        .post(format!("{base}/api/v1/login/challenge"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "handle": handle }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let challenge = v["challenge"].as_str().unwrap().to_owned();
    let public = hex::encode(key.public().to_bytes());
    let body = serde_json::to_vec(&serde_json::json!({ "handle": handle, "key": public })).unwrap();
    let url = format!("{base}/api/v1/login");
    let headers = musehub::httpsig::signed_headers(
        "POST",
        &url,
        &body,
        &musehub::httpsig::Signing {
            created: musehub::db::unix_now(),
            expires: musehub::db::unix_now() + 60,
            nonce: &challenge,
            keyid: &public,
            label: "sig1",
        },
        &libp2p::identity::Keypair::from(key.clone()),
    )
    .unwrap();
    let mut req = c.post(&url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    if status != StatusCode::OK {
        return Err((status, detail(&bytes)));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    Ok(v["token"].as_str().unwrap().to_owned())
}

fn chain_config(ep: &Endpoint, ttl: Duration) -> ChainConfig {
    ChainConfig {
        endpoint: ep.clone(),
        cache_ttl: ttl,
        follow_every: Duration::from_millis(500),
        allow_unanchored: false,
        signer_key_file: None,
    }
}

async fn start_hub(dir: &std::path::Path, ep: &Endpoint, ttl: Duration) -> Server {
    let mut config = Config::for_tests(dir);
    config.chain = Some(chain_config(ep, ttl));
    Server::bind(config).await.expect("hub starts")
}

async fn get(url: String, token: &str) -> (StatusCode, String) {
    let res = client().get(url).bearer_auth(token).send().await.unwrap();
    let s = res.status();
    (s, detail(&res.bytes().await.unwrap()))
}

async fn push(
    base: &str,
    token: &str,
    repo: &str,
    c: &Commit,
    files: &[&[u8]],
) -> (StatusCode, String) {
    let http = client();
    if !files.is_empty() {
        let res = http
            .post(format!("{base}/{repo}/push/objects"))
            .bearer_auth(token)
            .body(crate::harness::objects_body(files))
            .send()
            .await
            .unwrap();
        if res.status() != StatusCode::OK {
            let s = res.status();
            return (s, detail(&res.bytes().await.unwrap()));
        }
    }
    let res = http
        .post(format!("{base}/{repo}/push"))
        .bearer_auth(token)
        .body(crate::harness::push_body(
            std::slice::from_ref(c),
            "main",
            false,
        ))
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, detail(&res.bytes().await.unwrap()))
}

async fn page(base: &str, user: &str) -> String {
    client()
        .get(format!("{base}/{user}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hub_checks_keys_against_the_chain_and_follows_its_events() {
    crypto();
    let anvil = Anvil::start();
    let ep = anvil.deploy().await;
    let owner = Registry::connect_signing(ep.clone(), signer(DEV_KEY)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A long TTL: only the event follower can make the hub notice changes in time.
    let hub = start_hub(dir.path(), &ep, Duration::from_secs(3600)).await;
    let base = hub.url();

    let k1 = ed25519::Keypair::generate();
    let p1 = k1.public().to_bytes();
    // Not on chain yet: refused, and the message says what to do.
    let (s, why) = login(&base, "alice", &k1).await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("musehub key anchor"), "{why}");

    owner
        .register("alice", p1, &bundle_cid(&k1, "alice"))
        .await
        .unwrap();
    // The cache said "not registered"; the registration event refreshes it.
    eventually("the registration is noticed", async || {
        login(&base, "alice", &k1).await.is_ok()
    })
    .await;
    let token = login(&base, "alice", &k1).await.unwrap();
    let c1 = Commit::new(
        &[],
        &[("verse.mid", b"MThd one")],
        "first",
        "2026-11-24T10:00:00+00:00",
    );
    let (s, why) = push(&base, &token, "alice/song", &c1, &[b"MThd one"]).await;
    assert_eq!(s, StatusCode::OK, "{why}");
    assert!(page(&base, "alice").await.contains(">anchored<"));

    // Someone else's key for alice is refused.
    let mallory = ed25519::Keypair::generate();
    let (s, why) = login(&base, "alice", &mallory).await.unwrap_err();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}");
    assert!(why.contains("does not belong to alice"), "{why}");

    // A recovery rotation: the old key's token dies, the page flags the rotation.
    let k2 = ed25519::Keypair::generate();
    let p2 = k2.public().to_bytes();
    owner.rotate("alice", 1, p2, &[], None).await.unwrap();
    eventually("the old key's token is refused", async || {
        get(format!("{base}/alice/song/refs"), &token).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (_, why) = get(format!("{base}/alice/song/refs"), &token).await;
    assert!(why.contains("replaced by a newer one"), "{why}");
    let token2 = login(&base, "alice", &k2).await.unwrap();
    assert_eq!(
        get(format!("{base}/alice/song/refs"), &token2).await.0,
        StatusCode::OK
    );
    let html = page(&base, "alice").await;
    assert!(html.contains("recovery rotation"), "{html}");

    // Revoking the current key: refused after the hub's refresh, and shown.
    owner.revoke("alice", 2, p2, 1).await.unwrap();
    eventually("the revoked key is refused", async || {
        get(format!("{base}/alice/song/refs"), &token2).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (_, why) = get(format!("{base}/alice/song/refs"), &token2).await;
    assert!(why.contains("revoked"), "{why}");
    assert!(page(&base, "alice").await.contains(">revoked<"));

    // Wiping the cache and restarting restores every key state from the chain.
    hub.shutdown().await.unwrap();
    let db = musehub::db::Db::open(&dir.path().join("musehub.db")).unwrap();
    let n = db
        .write_blocking(|tx| musehub::db::identities::wipe_cache(tx))
        .unwrap();
    assert!(n >= 1);
    drop(db);
    let hub = start_hub(dir.path(), &ep, Duration::from_secs(3600)).await;
    let base = hub.url();
    eventually("the cache is refilled at start", async || {
        hub.hub()
            .db()
            .read(|c| musehub::db::identities::handle(c, "alice"))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let row = hub
        .hub()
        .db()
        .read(|c| musehub::db::identities::handle(c, "alice"))
        .await
        .unwrap()
        .unwrap();
    assert!(row.registered && row.key.is_none(), "{row:?}");
    assert_eq!(row.rotation.as_deref(), Some("recovery"));
    assert!(page(&base, "alice").await.contains(">revoked<"));
    for t in [&token, &token2] {
        assert_eq!(
            get(format!("{base}/alice/song/refs"), t).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    // A normal rotation to a third key: anchored again, without the recovery flag.
    let k3 = ed25519::Keypair::generate();
    let p3 = k3.public().to_bytes();
    let digest = chain::rotation_digest(
        ep.chain_id,
        ep.registry,
        chain::handle_hash("alice"),
        3,
        p3,
        &[],
    );
    // The current key is zero (revoked), so any signature is "suspicious"; sign with k2
    // anyway to show the hub checks it against the event's old key (zero here).
    owner
        .rotate("alice", 3, p3, &[], Some(&k2.sign(&digest)))
        .await
        .unwrap();
    let token3 = {
        let mut t = None;
        eventually("the new key signs in", async || {
            t = login(&base, "alice", &k3).await.ok();
            t.is_some()
        })
        .await;
        t.unwrap()
    };
    let c2 = Commit::new(
        &[c1.id],
        &[("verse.mid", b"MThd two")],
        "second",
        "2026-11-24T11:00:00+00:00",
    );
    let (s, why) = push(&base, &token3, "alice/song", &c2, &[b"MThd two"]).await;
    assert_eq!(s, StatusCode::OK, "{why}");
    assert!(page(&base, "alice").await.contains("bad old-key signature"));

    // The chain goes away: once the cache is stale, writes are refused (fail closed) and
    // reads go on with the stale answer.
    hub.shutdown().await.unwrap();
    let hub = start_hub(dir.path(), &ep, Duration::from_secs(1)).await;
    let base = hub.url();
    assert_eq!(
        get(format!("{base}/alice/song/refs"), &token3).await.0,
        StatusCode::OK
    );
    drop(anvil);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c3 = Commit::new(
        &[c2.id],
        &[("verse.mid", b"MThd two")],
        "third",
        "2026-11-24T12:00:00+00:00",
    );
    let (s, why) = push(&base, &token3, "alice/song", &c3, &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    assert!(why.contains("cannot be reached"), "{why}");
    assert_eq!(
        get(format!("{base}/alice/song/refs"), &token3).await.0,
        StatusCode::OK
    );
    hub.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// the owner's commands, end to end: the `musehub` binary against anvil and a served hub

fn run(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = crate::harness::musehub_cmd(&home.join("data"))
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .args(args)
        .output()
        .expect("musehub runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn key_anchor_rotate_revoke_and_status_through_the_cli_with_a_served_hub() {
    crypto();
    let anvil = Anvil::start();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let evm = h.join("evm.key");
    std::fs::write(&evm, DEV_KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&evm, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rpc = anvil.url.to_string();
    let (ok, _, err) = run(
        h,
        &[
            "key",
            "deploy-registry",
            "--rpc-url",
            &rpc,
            "--evm-key-file",
            evm.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains("chmod 600"),
        "an EVM key others can read is refused: {err}"
    );
    std::fs::set_permissions(&evm, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out, err) = run(
        h,
        &[
            "key",
            "deploy-registry",
            "--rpc-url",
            &rpc,
            "--evm-key-file",
            evm.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let registry = out
        .split_whitespace()
        .find(|w| w.starts_with("0x"))
        .unwrap()
        .to_owned();
    let chain = [
        "--rpc-url",
        &rpc,
        "--chain-id",
        "31337",
        "--registry",
        &registry,
        "--evm-key-file",
        evm.to_str().unwrap(),
    ];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(chain.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let runv = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run(h, &a)
    };
    let status = || {
        let (ok, out, err) = runv(with(&["key", "status", "--handle", "alice", "--json"]));
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };

    assert!(run(h, &["key", "generate", "--handle", "alice"]).0);
    assert_eq!(status()["registered"], false);
    let (ok, out, err) = runv(with(&["key", "anchor", "--handle", "alice"]));
    assert!(ok && out.contains("Anchored"), "{out}{err}");
    let s = status();
    assert_eq!(
        (s["registered"].as_bool(), s["your_key"].as_str()),
        (Some(true), Some("current"))
    );
    // A chain id that does not match the RPC is caught before anything is sent.
    let (ok, _, err) = run(
        h,
        &[
            "key",
            "status",
            "--handle",
            "alice",
            "--rpc-url",
            &rpc,
            "--chain-id",
            "43114",
            "--registry",
            &registry,
        ],
    );
    assert!(!ok && err.contains("is chain 31337"), "{err}");

    // A hub whose musehub.toml names the registry.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("musehub.toml"),
        format!("[chain]\nrpc_url = \"{rpc}\"\nchain_id = 31337\nregistry = \"{registry}\"\ncache_ttl = \"1h\"\nfollow_every = \"300ms\"\n"),
    )
    .unwrap();
    let (hub, url) = crate::harness::spawn_serve(data.path());
    let (ok, out, err) = run(h, &["login", &url, "--user", "alice"]);
    assert!(ok && out.contains("anchored on chain"), "{out}{err}");
    let token = || {
        let text = std::fs::read_to_string(h.join(".muse/identity.toml")).unwrap();
        let t: toml::Table = text.parse().unwrap();
        let host = url.trim_start_matches("http://");
        t[host]["token"].as_str().unwrap().to_owned()
    };
    let t1 = token();
    let c1 = Commit::new(
        &[],
        &[("a.mid", b"MThd 1")],
        "one",
        "2026-11-24T10:00:00+00:00",
    );
    let (s, why) = push(&url, &t1, "alice/song", &c1, &[b"MThd 1"]).await;
    assert_eq!(s, StatusCode::OK, "{why}");

    // Rotation approved by the old key: the new key replaces the old file, the old token dies.
    let old_key = std::fs::read_to_string(h.join(".config/musehub/keys/alice.key")).unwrap();
    let (ok, out, err) = runv(with(&["key", "rotate", "--handle", "alice"]));
    assert!(
        ok && out.contains("approved by the current key"),
        "{out}{err}"
    );
    assert_ne!(
        std::fs::read_to_string(h.join(".config/musehub/keys/alice.key")).unwrap(),
        old_key
    );
    assert_eq!(
        std::fs::read_to_string(h.join(".config/musehub/keys/alice.key.replaced-1")).unwrap(),
        old_key
    );
    let s = status();
    assert_eq!(
        (s["your_key"].as_str(), s["last_rotation"].as_str()),
        (Some("current"), Some("normal"))
    );
    eventually("the rotated key's token is refused", async || {
        get(format!("{url}/alice/song/refs"), &t1).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (_, why) = get(format!("{url}/alice/song/refs"), &t1).await;
    assert!(why.contains("replaced"), "{why}");
    let (ok, _, err) = run(h, &["login", &url, "--user", "alice"]);
    assert!(ok, "{err}");
    let t2 = token();
    let c2 = Commit::new(
        &[c1.id],
        &[("a.mid", b"MThd 2")],
        "two",
        "2026-11-24T11:00:00+00:00",
    );
    let (s, why) = push(&url, &t2, "alice/song", &c2, &[b"MThd 2"]).await;
    assert_eq!(s, StatusCode::OK, "{why}");

    // Revoked: refused at the hub's next look; then a recovery rotation brings alice back.
    let (ok, out, err) = runv(with(&[
        "key",
        "revoke",
        "--handle",
        "alice",
        "--reason",
        "compromised",
    ]));
    assert!(ok && out.contains("Revoked"), "{out}{err}");
    assert_eq!(status()["your_key"], "revoked");
    eventually("the revoked key's token is refused", async || {
        get(format!("{url}/alice/song/refs"), &t2).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (ok, out, err) = runv(with(&["key", "rotate", "--handle", "alice", "--recovery"]));
    assert!(ok && out.contains("recovery"), "{out}{err}");
    assert_eq!(status()["last_rotation"], "recovery");
    let mut logged_in = false;
    eventually("the recovered key signs in", async || {
        logged_in = run(h, &["login", &url, "--user", "alice"]).0;
        logged_in
    })
    .await;
    assert_eq!(
        get(format!("{url}/alice/song/refs"), &token()).await.0,
        StatusCode::OK
    );
    let page = client()
        .get(format!("{url}/alice"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("recovery rotation"), "{page}");
    assert!(hub.log().contains("key refused"), "refusals are logged");
}
