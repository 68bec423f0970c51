//! The `musehub` binary as operators and scripts use it: `init`, `user`, `token`, `repo`,
//! `serve` (with real tokens over HTTP, and SIGTERM), `doctor` on healthy and damaged data
//! directories, and `--help`.
//!
//! Every test runs the built binary (`CARGO_BIN_EXE_musehub`) on its own temporary data
//! directory; served hubs are child processes killed by their guard if a test fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use musehub::cids::Id;
use reqwest::StatusCode;

use crate::harness::{
    Commit, client, decode, field, musehub, objects_body, push_body, spawn_serve,
};

const MIB: usize = 1024 * 1024;

/// The login line `token create` prints for a hub with default settings.
const LOGIN_HUB: &str = "http://127.0.0.1:8080";

/// Adds `alice` and returns a fresh token of hers.
fn alice_token(dir: &Path) -> String {
    musehub(dir, &["user", "add", "alice"]).ok();
    token_of(&musehub(dir, &["token", "create", "--user", "alice"]).ok())
}

/// The token `token create` printed: the first stdout line, alone.
fn token_of(run: &crate::harness::Run) -> String {
    let first = run
        .stdout
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no token printed: {run:?}"));
    assert!(
        first.starts_with("mh_") && first.len() == 67 && !first.contains(char::is_whitespace),
        "first line must be the token alone: {first:?}"
    );
    first.to_owned()
}

/// `token list` as (id, user, label, state) rows.
fn token_rows(dir: &Path) -> Vec<(i64, String, String, String)> {
    musehub(dir, &["token", "list"])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 5, "token list line {l:?}");
            (
                cols[0].parse().expect("id column is a number"),
                cols[1].to_owned(),
                cols[2].to_owned(),
                cols[4].to_owned(),
            )
        })
        .collect()
}

/// `repo list` as (OWNER/NAME, visibility) rows.
fn repo_rows(dir: &Path) -> Vec<(String, String)> {
    musehub(dir, &["repo", "list"])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "repo list line {l:?}");
            (cols[0].to_owned(), cols[1].to_owned())
        })
        .collect()
}

/// Files under `blocks/??/` (the block files; `blocks/tmp` has a longer name).
/// Files of the block store: blocks of their own (`blocks/<2 hex>/…`) and objects stored
/// whole (`blocks/objects/<2 hex>/…`).
fn block_files(dir: &Path) -> Vec<PathBuf> {
    fn shards(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for shard in entries {
            let shard = shard.expect("entry").path();
            if shard.file_name().is_some_and(|n| n.len() == 2) && shard.is_dir() {
                for f in std::fs::read_dir(&shard).expect("shard dir") {
                    out.push(f.expect("entry").path());
                }
            }
        }
    }
    let mut out = Vec::new();
    shards(&dir.join("blocks"), &mut out);
    shards(&dir.join("blocks").join("objects"), &mut out);
    out.sort();
    out
}

fn doctor_json(dir: &Path) -> (bool, serde_json::Value) {
    let run = musehub(dir, &["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {run:?}"));
    (run.status.success(), v)
}

/// Pushes one commit over `url` with `token`: its objects, then the commit. Returns the two
/// answers' statuses and bodies.
async fn push(
    url: &str,
    repo: &str,
    token: &str,
    files: &[(&str, &[u8])],
    parents: &[Id],
    n: u32,
) -> Vec<Answer> {
    let http = client();
    let commit = Commit::new(
        parents,
        files,
        &format!("take {n}"),
        &format!("2026-01-01T00:00:{n:02}+00:00"),
    );
    let objects: Vec<&[u8]> = files.iter().map(|(_, c)| *c).collect();
    let mut answers = Vec::new();
    for (path, body) in [
        ("push/objects", objects_body(&objects)),
        ("push", push_body(&[commit], "main", false)),
    ] {
        let res = http
            .post(format!("{url}/{repo}/{path}"))
            .bearer_auth(token)
            .header("content-type", "application/x-msgpack")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let (status, headers) = (res.status(), res.headers().clone());
        let body = res.bytes().await.expect("body").to_vec();
        answers.push(Answer {
            status,
            body,
            headers,
        });
    }
    answers
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Asserts both answers of [`push`] succeeded and the push said ok.
#[track_caller]
fn assert_pushed(answers: &[Answer]) {
    assert_eq!(answers.len(), 2);
    for a in answers {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    assert_eq!(
        field(&decode(&answers[1].body), "ok").as_bool(),
        Some(true),
        "push answers ok"
    );
}

/// Asserts both answers of [`push`] are 401 with a JSON detail and `WWW-Authenticate: Bearer`.
#[track_caller]
fn assert_unauthorized(answers: &[Answer], why: &str) {
    assert_eq!(answers.len(), 2);
    for a in answers {
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.text());
        let v: serde_json::Value = serde_json::from_slice(&a.body)
            .unwrap_or_else(|_| panic!("{why}: 401 body is not JSON: {:?}", a.text()));
        assert!(
            v["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{why}: 401 carries a detail: {v}"
        );
        assert_eq!(
            a.headers
                .get("www-authenticate")
                .and_then(|h| h.to_str().ok()),
            Some("Bearer"),
            "{why}"
        );
    }
}

#[test]
fn init_prepares_a_data_dir_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("hub");
    musehub(&d, &["init"]).ok();
    let tls = d.join("tls");
    for f in [
        d.join("musehub.db"),
        d.join("musehub.toml"),
        tls.join("ca.crt"),
        tls.join("ca.key"),
        tls.join("server.crt"),
        tls.join("server.key"),
    ] {
        assert!(
            f.is_file() && std::fs::metadata(&f).unwrap().len() > 0,
            "init must create {}",
            f.display()
        );
    }
    let toml = std::fs::read_to_string(d.join("musehub.toml")).unwrap();
    assert!(
        toml.contains("# listen = \"127.0.0.1:8080\""),
        "the config file shows the defaults:\n{toml}"
    );
    assert!(
        toml.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "every setting is commented out, so the file changes nothing until edited:\n{toml}"
    );

    // An operator edits the file; a second init keeps the edit and the CA byte for byte.
    let edited = format!("{toml}\n# edited by the operator\ndefault_visibility = \"private\"\n");
    std::fs::write(d.join("musehub.toml"), &edited).unwrap();
    let ca = std::fs::read(tls.join("ca.crt")).unwrap();
    let ca_key = std::fs::read(tls.join("ca.key")).unwrap();
    let again = musehub(&d, &["init"]).ok();
    assert!(
        again.stdout.contains("kept existing"),
        "init says it kept the file: {again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("musehub.toml")).unwrap(),
        edited,
        "init never overwrites musehub.toml"
    );
    assert_eq!(
        std::fs::read(tls.join("ca.crt")).unwrap(),
        ca,
        "init never replaces the CA clients trust"
    );
    assert_eq!(std::fs::read(tls.join("ca.key")).unwrap(), ca_key);
}

#[test]
fn users_are_added_listed_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    musehub(d, &["user", "add", "alice"]).ok();
    musehub(d, &["user", "add", "bob"]).ok();
    let names: Vec<String> = musehub(d, &["user", "list"])
        .ok()
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let twice = musehub(d, &["user", "add", "alice"]).fails();
    assert!(
        twice.stderr.contains("user alice already exists"),
        "{twice:?}"
    );
    let bad = musehub(d, &["user", "add", "bad/name"]).fails();
    assert!(
        bad.stderr.contains("bad/name") && bad.stderr.contains("may only use letters"),
        "{bad:?}"
    );
    let names = musehub(d, &["user", "list"]).ok().stdout;
    assert_eq!(
        names.lines().count(),
        2,
        "refused users are not added: {names}"
    );
}

#[test]
fn token_create_prints_the_token_alone_and_how_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    musehub(d, &["user", "add", "alice"]).ok();
    let run = musehub(
        d,
        &["token", "create", "--user", "alice", "--label", "laptop"],
    )
    .ok();
    let token = token_of(&run);
    let login = format!("muse auth login --hub {LOGIN_HUB} --token {token}");
    assert!(
        run.stderr.lines().any(|l| l.trim() == login),
        "stderr must carry `{login}`:\n{}",
        run.stderr
    );
    assert!(
        !run.stdout.lines().skip(1).any(|l| !l.trim().is_empty()),
        "only the token goes to stdout: {:?}",
        run.stdout
    );

    let list = musehub(d, &["token", "list"]).ok().stdout;
    assert!(
        !list.contains(&token) && !list.contains(&token[3..]),
        "token list never shows secrets:\n{list}"
    );
    let rows = token_rows(d);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3.as_str()),
        ("alice", "laptop", "active")
    );

    let nobody = musehub(d, &["token", "create", "--user", "nobody"]).fails();
    assert!(
        nobody.stdout.is_empty(),
        "no token for a missing user: {nobody:?}"
    );
    assert!(
        nobody.stderr.contains("musehub user add nobody"),
        "the error says how to add the user: {nobody:?}"
    );
    assert_eq!(token_rows(d).len(), 1);
}

#[test]
fn repos_are_created_listed_and_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    musehub(d, &["user", "add", "alice"]).ok();
    musehub(d, &["repo", "create", "alice/song"]).ok();
    let secret = musehub(d, &["repo", "create", "alice/secret", "--private"]).ok();
    assert!(
        secret
            .stdout
            .contains("created private repository alice/secret"),
        "{secret:?}"
    );
    let mut rows = repo_rows(d);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("alice/secret".to_owned(), "private".to_owned()),
            ("alice/song".to_owned(), "public".to_owned())
        ]
    );

    musehub(d, &["repo", "set-visibility", "alice/song", "private"]).ok();
    assert!(repo_rows(d).contains(&("alice/song".to_owned(), "private".to_owned())));
    let bad_vis = musehub(d, &["repo", "set-visibility", "alice/song", "hidden"]).fails();
    assert!(bad_vis.stderr.contains("public or private"), "{bad_vis:?}");

    let no_slash = musehub(d, &["repo", "create", "alice"]).fails();
    assert!(
        no_slash.stderr.contains("OWNER/NAME") && no_slash.stderr.contains("alice/song"),
        "the error shows the expected form: {no_slash:?}"
    );
    let twice = musehub(d, &["repo", "create", "alice/song"]).fails();
    assert!(twice.stderr.contains("already exists"), "{twice:?}");
    let no_owner = musehub(d, &["repo", "create", "carol/song"]).fails();
    assert!(
        no_owner.stderr.contains("musehub user add carol"),
        "{no_owner:?}"
    );
    assert_eq!(repo_rows(d).len(), 2);
}

#[tokio::test]
async fn served_hub_honours_revoked_and_expired_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = alice_token(d);
    // Made first, so its second of life runs out while the rest of the test goes on.
    let short = token_of(
        &musehub(
            d,
            &[
                "token",
                "create",
                "--user",
                "alice",
                "--expires",
                "1s",
                "--label",
                "short",
            ],
        )
        .ok(),
    );
    let expires_by = Instant::now() + Duration::from_secs(2);
    let hour = token_of(
        &musehub(
            d,
            &[
                "token",
                "create",
                "--user",
                "alice",
                "--expires",
                "1h",
                "--label",
                "hour",
            ],
        )
        .ok(),
    );
    let (_hub, url) = spawn_serve(d);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    assert_pushed(
        &push(
            &url,
            "alice/song",
            &token,
            &[("a.mid", b"first take")],
            &[],
            1,
        )
        .await,
    );
    let parent = Commit::new(
        &[],
        &[("a.mid", b"first take")],
        "take 1",
        "2026-01-01T00:00:01+00:00",
    )
    .id;

    // A token with an expiry in the future works like any other.
    assert_pushed(
        &push(
            &url,
            "alice/song",
            &hour,
            &[("a.mid", b"second take")],
            &[parent],
            2,
        )
        .await,
    );

    let rows = token_rows(d);
    let id = rows
        .iter()
        .find(|r| r.2.is_empty())
        .expect("the first token is listed")
        .0;
    let revoked = musehub(d, &["token", "revoke", &id.to_string()]).ok();
    assert!(
        revoked.stdout.contains(&format!("revoked token {id}")),
        "{revoked:?}"
    );
    assert_unauthorized(
        &push(
            &url,
            "alice/song",
            &token,
            &[("b.mid", b"after revoke")],
            &[],
            3,
        )
        .await,
        "revoked token",
    );
    assert!(token_rows(d).iter().any(|r| r.0 == id && r.3 == "revoked"));
    let again = musehub(d, &["token", "revoke", &id.to_string()]).fails();
    assert!(again.stderr.contains("token list"), "{again:?}");

    tokio::time::sleep_until(expires_by.into()).await;
    assert_unauthorized(
        &push(
            &url,
            "alice/song",
            &short,
            &[("c.mid", b"after expiry")],
            &[],
            4,
        )
        .await,
        "expired token",
    );
    assert!(
        token_rows(d)
            .iter()
            .any(|r| r.2 == "short" && r.3 == "expired"),
        "{:?}",
        token_rows(d)
    );

    // Reads of a public repo need no token, and show that nothing refused was stored.
    let res = client()
        .get(format!("{url}/alice/song/refs"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let refs = decode(&res.bytes().await.unwrap());
    let head = field(field(&refs, "branch_heads"), "main")
        .as_str()
        .unwrap()
        .to_owned();
    let second = Commit::new(
        &[parent],
        &[("a.mid", b"second take")],
        "take 2",
        "2026-01-01T00:00:02+00:00",
    )
    .id;
    assert_eq!(head, second.to_hex());
}

/// The bytes of request bodies the hub has read, from `/metrics`.
async fn request_bytes(url: &str) -> u64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("musehub_http_request_bytes_total "))
        .expect("metric present");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sigterm_lets_open_requests_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = alice_token(d);
    let (mut hub, url) = spawn_serve(d);
    let addr = url.trim_start_matches("http://").to_owned();

    // An idle keep-alive connection (what a CLI leaves open) must not hold shutdown up.
    let idle = client();
    assert_eq!(
        idle.get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A push/objects whose body is half sent when SIGTERM arrives.
    let stem = crate::harness::noise(3, 1024 * 1024 + 10);
    let body = objects_body(&[&stem]);
    let (first, rest) = body.split_at(body.len() / 2);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let request = client()
        .post(format!("{url}/alice/song/push/objects"))
        .bearer_auth(&token)
        .header("content-type", "application/x-msgpack")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let answer = tokio::spawn(request);
    tx.send(Ok(first.to_vec())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while request_bytes(&url).await < first.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the hub never read the first half:\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    hub.signal("TERM");
    while !hub.log().contains("shutting down") {
        assert!(
            Instant::now() < deadline,
            "the hub did not notice SIGTERM:\n{}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        hub.try_wait().unwrap().is_none(),
        "serve waits for the open request"
    );
    tx.send(Ok(rest.to_vec())).await.unwrap();
    drop(tx);
    let res = answer
        .await
        .unwrap()
        .expect("the open request gets its answer");
    assert_eq!(res.status(), StatusCode::OK);
    let stored = decode(&res.bytes().await.unwrap());
    assert_eq!(field(&stored, "stored").as_u64(), Some(1), "{stored}");

    let answered = Instant::now();
    let status = hub
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("serve still running 10 s after SIGTERM:\n{}", hub.log()));
    assert!(
        status.success(),
        "serve exits 0 on SIGTERM, got {status}:\n{}",
        hub.log()
    );
    assert!(
        answered.elapsed() < Duration::from_secs(3),
        "serve stops promptly once idle, took {:?}",
        answered.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "nothing listens after shutdown"
    );
    drop(idle);

    // What the request stored is on disk and whole.
    let (ok, report) = doctor_json(d);
    assert!(ok && report["objects_checked"] == 1, "{report}");
}

#[tokio::test]
async fn doctor_finds_corrupt_and_missing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = alice_token(d);
    // Over 64 KiB, so its 1 MiB leaves are block files rather than rows.
    let stem = crate::harness::noise(7, 2 * 1024 * 1024 + 1000);
    {
        let (mut hub, url) = spawn_serve(d);
        assert_pushed(
            &push(
                &url,
                "alice/song",
                &token,
                &[("stem.wav", &stem), ("lyrics.txt", b"la la")],
                &[],
                1,
            )
            .await,
        );
        hub.signal("TERM");
        assert!(
            hub.wait_timeout(Duration::from_secs(10))
                .is_some_and(|s| s.success()),
            "{}",
            hub.log()
        );
    }

    let healthy = musehub(d, &["doctor"]).ok();
    assert!(
        healthy.stdout.contains("all good") && !healthy.stdout.contains("FAULT"),
        "{healthy:?}"
    );
    let (ok, report) = doctor_json(d);
    assert!(ok, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["faults"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert!(
        report["blocks_checked"].as_u64().unwrap() >= 4,
        "three leaves and a root at least: {report}"
    );
    assert_eq!(report["commits_checked"], 1, "{report}");

    // The stem is stored whole: one file, its three 1 MiB leaves are ranges of it.
    let files = block_files(d);
    assert_eq!(
        files.len(),
        1,
        "2 MiB + 1000 bytes is one object file: {files:?}"
    );
    let victim = &files[0];
    let victim_name = Id::of(&stem[MIB..2 * MIB]).to_hex();
    let gone = victim;
    let gone_name = Id::of(&stem[..MIB]).to_hex();

    // One flipped byte in one leaf (the second).
    let original = std::fs::read(victim).unwrap();
    let mut bytes = original.clone();
    let middle = MIB + MIB / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(victim, &bytes).unwrap();
    let corrupt = musehub(d, &["doctor"]).fails();
    let faults: Vec<&str> = corrupt
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAULT"))
        .collect();
    assert!(
        faults
            .iter()
            .any(|l| l.contains(&format!("block {victim_name}"))),
        "doctor names the damaged block: {corrupt:?}"
    );
    assert!(!corrupt.stdout.contains("all good"), "{corrupt:?}");
    let (ok, report) = doctor_json(d);
    assert!(!ok, "doctor --json exits non-zero too: {report}");
    assert_eq!(report["ok"], false, "{report}");
    let named = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .any(|f| f.contains(&victim_name));
    assert!(named, "a fault names block {victim_name}: {report}");

    // Put the byte back: healthy again, so the faults above were about that byte.
    std::fs::write(victim, &original).unwrap();
    musehub(d, &["doctor"]).ok();

    // A file that disappeared: every leaf in it is missing.
    std::fs::remove_file(gone).unwrap();
    let missing = musehub(d, &["doctor"]).fails();
    assert!(
        missing
            .stdout
            .lines()
            .any(|l| l.starts_with("FAULT") && l.contains(&gone_name) && l.contains("missing")),
        "doctor reports block {gone_name} missing: {missing:?}"
    );
    let (ok, report) = doctor_json(d);
    assert!(!ok && report["ok"] == false, "{report}");
    assert!(
        report["faults"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .any(|f| f.contains(&gone_name) && f.contains("missing")),
        "{report}"
    );
}

#[test]
fn bench_is_a_program_of_its_own_that_musehub_bench_runs() {
    let dir = tempfile::tempdir().unwrap();
    let help = musehub(dir.path(), &["bench", "--help"]).ok().stdout;
    for phrase in ["musehub-bench", "--max-commit", "--hub", "--ui", "--ipfs"] {
        assert!(
            help.contains(phrase),
            "`musehub bench --help` should show the bench's help with {phrase:?}:\n{help}"
        );
    }
    let wrong = musehub(dir.path(), &["bench", "--no-such-option"]);
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "the bench's usage error and its exit code pass through: {}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains("--no-such-option"),
        "the bench names the option it refused: {}",
        wrong.stderr
    );
    assert!(
        !dir.path().join("musehub.db").exists(),
        "the bench touches no data directory"
    );
}

#[test]
fn help_explains_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = musehub(dir.path(), &["--help"]).ok().stdout;
    for phrase in [
        "--data-dir",
        "Where the hub keeps its database",
        "--config",
        "serve",
        "doctor",
        "Manage access tokens",
    ] {
        assert!(
            root.contains(phrase),
            "`musehub --help` should mention {phrase:?}:\n{root}"
        );
    }
    let create = musehub(dir.path(), &["token", "create", "--help"])
        .ok()
        .stdout;
    for phrase in [
        "--user",
        "--label",
        "A note to recognise the token by",
        "--expires",
        "expire after this long",
        "90d",
    ] {
        assert!(
            create.contains(phrase),
            "`musehub token create --help` should mention {phrase:?}:\n{create}"
        );
    }
    assert!(
        !dir.path().join("musehub.db").exists(),
        "--help touches no data directory"
    );
}

/// A data directory from before schema 9 (each 1 MiB leaf a file of its own) is converted
/// by the server at start: the object becomes one file, its leaf files go, and `doctor`
/// checks every byte on both sides of the conversion.
#[tokio::test]
async fn the_server_stores_older_objects_whole_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = alice_token(d);
    let stem = crate::harness::noise(9, 2 * MIB + 1000);
    {
        let (mut hub, url) = spawn_serve(d);
        assert_pushed(&push(&url, "alice/song", &token, &[("stem.wav", &stem)], &[], 1).await);
        hub.signal("TERM");
        assert!(hub.wait_timeout(Duration::from_secs(10)).is_some());
    }
    let oid = Id::of(&stem);
    let object_file = d
        .join("blocks/objects")
        .join(&oid.to_hex()[..2])
        .join(oid.to_hex());
    assert!(object_file.exists(), "pushed objects are stored whole");

    // Turn it back into the old layout, as a hub before schema 9 left it.
    let leaves: Vec<Id> = stem.chunks(MIB).map(Id::of).collect();
    for (leaf, bytes) in leaves.iter().zip(stem.chunks(MIB)) {
        let hex = leaf.to_hex();
        std::fs::create_dir_all(d.join("blocks").join(&hex[..2])).unwrap();
        std::fs::write(d.join("blocks").join(&hex[..2]).join(&hex), bytes).unwrap();
    }
    std::fs::remove_file(&object_file).unwrap();
    {
        let db = rusqlite::Connection::open(d.join("musehub.db")).unwrap();
        db.execute_batch(
            "UPDATE blocks SET object_id = NULL, offset = NULL;
             UPDATE objects SET whole = 0;
             INSERT INTO pending_backfills (name) VALUES ('whole_objects');",
        )
        .unwrap();
    }
    let (ok, report) = doctor_json(d);
    assert!(ok, "the old layout reads: {report}");
    assert_eq!(block_files(d).len(), 3, "three leaf files");

    let (mut hub, _url) = spawn_serve(d);
    let deadline = Instant::now() + Duration::from_secs(20);
    while block_files(d).len() != 1 || !object_file.exists() {
        assert!(
            Instant::now() < deadline,
            "converted within 20 s: {:?}\n{}",
            block_files(d),
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read(&object_file).unwrap(), stem);
    hub.signal("TERM");
    assert!(hub.wait_timeout(Duration::from_secs(10)).is_some());
    let (ok, report) = doctor_json(d);
    assert!(ok && report["objects_checked"] == 1, "{report}");
}
