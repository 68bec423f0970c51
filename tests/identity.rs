//! `musehub key generate|show|import`: private key files, never printed, signed bundles.

use std::os::unix::fs::PermissionsExt;

use crate::harness::musehub_cmd;

fn key_cmd(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    musehub_cmd(&home.join("data"))
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .args(args)
        .output()
        .expect("musehub runs")
}

#[test]
fn keys_are_generated_private_shown_without_secrets_and_imported() {
    let home = tempfile::tempdir().unwrap();
    let out = key_cmd(home.path(), &["key", "generate", "--handle", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("peer id:     12D3Koo"), "{stdout}");
    let path = home.path().join(".config/musehub/keys/alice.key");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The private key appears in no output.
    let seed_b64 = pem.lines().nth(1).unwrap();
    let show = key_cmd(home.path(), &["key", "show", "--handle", "alice", "--json"]);
    assert!(show.status.success());
    let all = format!(
        "{}{}{}",
        stdout,
        String::from_utf8_lossy(&show.stdout),
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        !all.contains(seed_b64) && !all.contains("PRIVATE KEY"),
        "{all}"
    );
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert!(
        v["bundle_cid"].as_str().unwrap().starts_with("bafyrei"),
        "{v}"
    );
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);

    // Never overwritten; a bad handle is refused.
    let again = key_cmd(home.path(), &["key", "generate", "--handle", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    let bad = key_cmd(home.path(), &["key", "generate", "--handle", "Alice"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid handle"));

    // Importing the same PEM under another handle gives the same public key.
    let imported = key_cmd(
        home.path(),
        &[
            "key",
            "import",
            "--handle",
            "alice-laptop",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let show2 = key_cmd(
        home.path(),
        &["key", "show", "--handle", "alice-laptop", "--json"],
    );
    let v2: serde_json::Value = serde_json::from_slice(&show2.stdout).unwrap();
    assert_eq!(v2["public_key"], v["public_key"]);
    // A key file others can read is refused with the fix.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = key_cmd(home.path(), &["key", "show", "--handle", "alice"]);
    assert!(String::from_utf8_lossy(&open.stderr).contains("chmod 600"));
}

// ---------------------------------------------------------------------------------------------
// `musehub login` and signed requests against a served hub (no chain: keys known to the hub)

use std::time::Duration;

use libp2p::identity::{Keypair, ed25519};
use musehub::httpsig::{self, Signing};
use reqwest::StatusCode;

use crate::harness::{Commit, client, musehub, push_body, spawn_serve};

/// Runs `musehub` with `HOME` set, so keys and ~/.muse live in a test directory.
fn as_user(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    key_cmd(home, args)
}

#[tokio::test]
async fn musehub_login_writes_the_cli_identity_file_and_its_token_pushes() {
    let data = tempfile::tempdir().unwrap();
    let (hub, url) = spawn_serve(data.path());
    let home = tempfile::tempdir().unwrap();
    let out = as_user(home.path(), &["key", "generate", "--handle", "alice"]);
    assert!(out.status.success());
    let out = as_user(home.path(), &["login", &url, "--user", "alice"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Signed in to"), "{stdout}");

    // The Muse CLI's layout: a quoted host:port table, private file in a private directory.
    let muse = home.path().join(".muse");
    let file = muse.join("identity.toml");
    let host = url.trim_start_matches("http://").to_owned();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&format!("[\"{host}\"]\n")), "{text}");
    let t: toml::Table = text.parse().unwrap();
    assert_eq!(t[&host]["type"].as_str(), Some("human"));
    assert_eq!(t[&host]["name"].as_str(), Some("alice"));
    let token = t[&host]["token"].as_str().unwrap().to_owned();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&muse), mode(&file)), (0o700, 0o600));
    assert!(!stdout.contains(&token), "the token is never printed");

    // A push with that token, as `muse push` sends it, creates the repo.
    let http = client();
    let c = Commit::new(
        &[],
        &[("a.mid", b"MThd")],
        "first",
        "2026-11-24T10:00:00+00:00",
    );
    let objects = crate::harness::objects_body(&[b"MThd"]);
    let res = http
        .post(format!("{url}/alice/song/push/objects"))
        .bearer_auth(&token)
        .body(objects)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .post(format!("{url}/alice/song/push"))
        .bearer_auth(&token)
        .body(push_body(&[c], "main", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = http
        .get(format!("{url}/alice"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("not anchored"), "{page}");

    // Another key for alice is refused; so is a login for a user who has admin-made
    // tokens, until one of those tokens vouches for the key.
    let other = tempfile::tempdir().unwrap();
    as_user(other.path(), &["key", "generate", "--handle", "alice"]);
    let out = as_user(other.path(), &["login", &url, "--user", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("knows another key for alice"));
    musehub(data.path(), &["user", "add", "bob"]).ok();
    let bob_token = musehub(data.path(), &["token", "create", "--user", "bob"])
        .ok()
        .stdout;
    let bob_token = bob_token
        .lines()
        .find(|l| l.starts_with("mh_"))
        .unwrap()
        .trim()
        .to_owned();
    as_user(other.path(), &["key", "generate", "--handle", "bob"]);
    let out = as_user(other.path(), &["login", &url, "--user", "bob"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
    let out = as_user(
        other.path(),
        &["login", &url, "--user", "bob", "--token", &bob_token],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(hub);
}

/// A signed request's headers, by `key`, valid from `created` for 60 s.
fn sign(
    method: &str,
    url: &str,
    body: &[u8],
    key: &ed25519::Keypair,
    keyid: &str,
    nonce: &str,
    created: i64,
) -> Vec<(&'static str, String)> {
    httpsig::signed_headers(
        method,
        url,
        body,
        &Signing {
            created,
            expires: created + 60,
            nonce,
            keyid,
            label: "sig1",
        },
        &Keypair::from(key.clone()),
    )
    .unwrap()
    .to_vec()
}

async fn send(
    method: &str,
    url: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> (StatusCode, String) {
    let mut req = client()
        .request(method.parse().unwrap(), url)
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    let text = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    (status, text)
}

#[tokio::test]
async fn signed_requests_are_verified_and_every_bad_one_is_refused_and_logged() {
    let data = tempfile::tempdir().unwrap();
    let (hub, url) = spawn_serve(data.path());
    let home = tempfile::tempdir().unwrap();
    as_user(home.path(), &["key", "generate", "--handle", "carol"]);
    let out = as_user(home.path(), &["login", &url, "--user", "carol"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    musehub(data.path(), &["repo", "create", "carol/demo", "--private"]).ok();
    let pem = std::fs::read_to_string(home.path().join(".config/musehub/keys/carol.key")).unwrap();
    let key = musehub::identity::parse_private(&pem).unwrap();
    let kid = hex::encode(key.public().to_bytes());
    let now = musehub::db::unix_now();
    let refs = format!("{url}/carol/demo/refs");

    // A good signature reads the private repo; without one it is invisible.
    let good = sign("GET", &refs, b"", &key, &kid, "n-1", now);
    assert_eq!(send("GET", &refs, b"", &good).await.0, StatusCode::OK);
    assert_eq!(send("GET", &refs, b"", &[]).await.0, StatusCode::NOT_FOUND);

    // The same nonce again: replayed.
    let (s, why) = send("GET", &refs, b"", &good).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("already used"), "{why}");

    // A signature by another key under carol's key id.
    let mallory = ed25519::Keypair::generate();
    let forged = sign("GET", &refs, b"", &mallory, &kid, "n-2", now);
    let (s, why) = send("GET", &refs, b"", &forged).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("does not verify"), "{why}");

    // A truncated signature.
    let mut cut = sign("GET", &refs, b"", &key, &kid, "n-3", now);
    let sig = cut[2].1.clone();
    cut[2].1 = format!("{}:", &sig[..sig.len() - 20]);
    let (s, why) = send("GET", &refs, b"", &cut).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        why.contains("does not verify") || why.contains("malformed"),
        "{why}"
    );

    // Expired (created 10 minutes ago, valid for 60 s).
    let old = sign("GET", &refs, b"", &key, &kid, "n-4", now - 600);
    let (s, why) = send("GET", &refs, b"", &old).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("expired") || why.contains("too old"), "{why}");

    // An unknown key id.
    let stranger_kid = hex::encode(mallory.public().to_bytes());
    let unknown = sign("GET", &refs, b"", &mallory, &stranger_kid, "n-5", now);
    let (s, why) = send("GET", &refs, b"", &unknown).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("unknown key id"), "{why}");

    // A body that does not match its digest (signed over one body, sent with another).
    let push = format!("{url}/carol/demo/push");
    let c = Commit::new(&[], &[], "empty", "2026-11-24T10:00:00+00:00");
    let body = push_body(&[c], "main", false);
    let mut tampered = body.clone();
    tampered.push(0);
    let h = sign("POST", &push, &body, &key, &kid, "n-6", now);
    let (s, why) = send("POST", &push, &tampered, &h).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("does not match its Content-Digest"), "{why}");
    // The same push, intact and signed: accepted (signed requests write too).
    let (s, why) = send("POST", &push, &body, &h).await;
    assert_eq!(s, StatusCode::OK, "{why}");

    // An oversized Signature header.
    let mut big = sign("GET", &refs, b"", &key, &kid, "n-7", now);
    big[2].1 = format!("sig1=:{}:", "A".repeat(5000));
    let (s, why) = send("GET", &refs, b"", &big).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(why.contains("over 4096 bytes"), "{why}");

    // Each refusal is in the hub's log with its reason.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = hub.log();
    for reason in [
        "was already used",
        "does not verify",
        "unknown key id",
        "does not match its Content-Digest",
        "over 4096 bytes",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("signed request refused") && l.contains(reason)),
            "no log line for {reason:?}:\n{log}"
        );
    }
}
