//! Replays the real Muse CLI's captured requests (`shared/fixtures/muse-wire/`) against a
//! real hub and checks every answer: statuses, fetch packs (commits, snapshots, objects whose
//! bytes hash to their ids and equal what was pushed), final refs and a clean `doctor`.
//!
//! The captures were answered by a logging stub, so where this hub answers better than the
//! stub did (it has real auth, real repos, a presign that never fails) the expected status is
//! overridden per sequence number, with the reason beside it.

use std::collections::{BTreeSet, HashMap};

use futures_util::future::join_all;
use reqwest::StatusCode;
use rmpv::Value;

use crate::harness::{Capture, Pack, TestHub, captures, decode, field};

/// Paths whose requests change the repo and need the owner's token.
fn is_write(c: &Capture) -> bool {
    c.method != "GET"
        && [
            "/filter-objects",
            "/presign",
            "/push/objects",
            "/push",
            "/releases",
            "/tags",
        ]
        .iter()
        .any(|s| c.path.ends_with(s))
}

struct Replay<'a> {
    hub: &'a TestHub,
    tokens: HashMap<String, String>,
    /// Object bytes uploaded so far, by id.
    uploaded: HashMap<String, Vec<u8>>,
    overrides: HashMap<u32, u16>,
    /// Sequence numbers sent without a token even if writes (the CLI had no identity).
    anonymous: BTreeSet<u32>,
}

impl Replay<'_> {
    fn token_for(&self, c: &Capture) -> Option<String> {
        if self.anonymous.contains(&c.seq) || !(c.had_token || is_write(c)) {
            return None;
        }
        let owner = c
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        self.tokens.get(owner).cloned()
    }

    async fn send(&self, c: &Capture) -> (StatusCode, bytes::Bytes) {
        let token = self.token_for(c);
        let body = (!c.body.is_empty() || c.method == "POST").then(|| {
            (
                c.body.clone(),
                c.content_type.as_deref().unwrap_or("application/x-msgpack"),
            )
        });
        self.hub
            .request(&c.method, &c.path, token.as_deref(), body)
            .await
    }

    async fn run(&mut self, list: &[Capture]) {
        let mut i = 0;
        while i < list.len() {
            // The CLI sends up to four push/objects batches at once; so do we.
            let mut group = vec![&list[i]];
            while list[i].path.ends_with("/push/objects")
                && i + group.len() < list.len()
                && list[i + group.len()].path.ends_with("/push/objects")
            {
                group.push(&list[i + group.len()]);
            }
            i += group.len();
            let answers = join_all(group.iter().map(|c| self.send(c))).await;
            for (c, (status, body)) in group.into_iter().zip(answers) {
                self.check(c, status, &body);
            }
        }
    }

    fn check(&mut self, c: &Capture, status: StatusCode, body: &[u8]) {
        let expected = self.overrides.get(&c.seq).copied().unwrap_or(c.status);
        assert_eq!(
            status.as_u16(),
            expected,
            "seq {} {} {}: {}",
            c.seq,
            c.method,
            c.path,
            String::from_utf8_lossy(body)
        );
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(body).expect("errors are JSON");
            assert!(v["detail"].is_string(), "error answers carry a detail");
            return;
        }
        if c.path == "/health" {
            decode(body);
            return;
        }
        if c.path.ends_with("/push/objects") {
            let req = decode(&c.body);
            for o in field(&req, "objects").as_array().unwrap() {
                let Value::Binary(b) = field(o, "content") else {
                    panic!()
                };
                self.uploaded.insert(
                    field(o, "object_id").as_str().unwrap().to_owned(),
                    b.clone(),
                );
            }
            let ans = decode(body);
            let n = field(&req, "objects").as_array().unwrap().len() as u64;
            let stored = field(&ans, "stored").as_u64().unwrap();
            let skipped = field(&ans, "skipped").as_u64().unwrap();
            assert_eq!(
                stored + skipped,
                n,
                "seq {}: every object is stored or skipped",
                c.seq
            );
        }
        if c.path.ends_with("/push") {
            let ans = decode(body);
            assert_eq!(field(&ans, "ok"), &Value::Boolean(true), "seq {}", c.seq);
        }
        if c.path.ends_with("/fetch") {
            self.check_fetch(c, body);
        }
        if c.path.ends_with("/negotiate") {
            let ans = decode(body);
            assert!(
                field(&ans, "ready").as_bool().is_some(),
                "ready is a real boolean"
            );
        }
    }

    fn check_fetch(&self, c: &Capture, body: &[u8]) {
        let ours = Pack::decode(body);
        ours.verify();
        for (id, bytes) in &ours.objects {
            if let Some(pushed) = self.uploaded.get(id) {
                assert_eq!(
                    bytes, pushed,
                    "seq {}: object {id} comes back byte-identical",
                    c.seq
                );
            }
        }
        let req = decode(&c.body);
        let have_empty = field(&req, "have").as_array().unwrap().is_empty();
        if have_empty {
            // A clone gets every object of every snapshot it receives, the empty one included.
            let needed: BTreeSet<String> = ours
                .snapshots
                .iter()
                .flat_map(|s| {
                    field(s, "manifest")
                        .as_map()
                        .unwrap()
                        .iter()
                        .map(|(_, v)| v.as_str().unwrap().to_owned())
                })
                .collect();
            let got: BTreeSet<String> = ours.objects.iter().map(|(id, _)| id.clone()).collect();
            assert_eq!(
                got, needed,
                "seq {}: a clone carries exactly the objects its snapshots name",
                c.seq
            );
        }
        if let Some(stub) = &c.answer {
            let stub = Pack::decode(stub);
            assert_eq!(
                ours.commit_ids(),
                stub.commit_ids(),
                "seq {}: same commits as the reference answer",
                c.seq
            );
            assert_eq!(
                ours.snapshot_ids(),
                stub.snapshot_ids(),
                "seq {}: same snapshots",
                c.seq
            );
            let stub_ids: BTreeSet<_> = stub.objects.iter().map(|(i, _)| i.clone()).collect();
            for (id, _) in &ours.objects {
                assert!(
                    stub_ids.contains(id),
                    "seq {}: object {id} was not in the reference answer",
                    c.seq
                );
            }
        }
        // Commit records come back verbatim: every wire field, committed_at byte for byte.
        for commit in &ours.commits {
            let id = field(commit, "commit_id").as_str().unwrap();
            let pushed = self
                .pushed_commit(id)
                .unwrap_or_else(|| panic!("commit {id} was pushed"));
            assert_eq!(
                commit, &pushed,
                "seq {}: commit {id} is returned exactly as pushed",
                c.seq
            );
        }
    }

    fn pushed_commit(&self, id: &str) -> Option<Value> {
        PUSHED.with(|p| p.borrow().get(id).cloned())
    }
}

thread_local! {
    static PUSHED: std::cell::RefCell<HashMap<String, Value>> = std::cell::RefCell::new(HashMap::new());
}

/// Records every commit the captures push, for the verbatim check.
fn remember_pushed(list: &[Capture]) {
    for c in list
        .iter()
        .filter(|c| c.path.ends_with("/push") && c.method == "POST")
    {
        let v = decode(&c.body);
        for commit in field(field(&v, "bundle"), "commits").as_array().unwrap() {
            let id = field(commit, "commit_id").as_str().unwrap().to_owned();
            PUSHED.with(|p| p.borrow_mut().insert(id, commit.clone()));
        }
    }
}

async fn replay(
    hub: &TestHub,
    scenario: &str,
    users: &[&str],
    repos: &[(&str, &str)],
    overrides: &[(u32, u16)],
    anonymous: &[u32],
) {
    let mut tokens = HashMap::new();
    for u in users {
        tokens.insert((*u).to_owned(), hub.user(u).await);
    }
    for (owner, slug) in repos {
        hub.repo(owner, slug, false).await;
    }
    let list = captures(scenario);
    remember_pushed(&list);
    let mut r = Replay {
        hub,
        tokens,
        uploaded: HashMap::new(),
        overrides: overrides.iter().copied().collect(),
        anonymous: anonymous.iter().copied().collect(),
    };
    r.run(&list).await;

    // The last push of each repo is its head now.
    let mut last_tip: HashMap<String, String> = HashMap::new();
    for c in list
        .iter()
        .filter(|c| c.path.ends_with("/push") && c.status == 200)
    {
        let v = decode(&c.body);
        let branch = field(&v, "branch").as_str().unwrap().to_owned();
        let commits = field(field(&v, "bundle"), "commits").as_array().unwrap();
        let parents: BTreeSet<&str> = commits
            .iter()
            .flat_map(|k| {
                [
                    field(k, "parent_commit_id").as_str(),
                    field(k, "parent2_commit_id").as_str(),
                ]
            })
            .flatten()
            .collect();
        let tip = commits
            .iter()
            .map(|k| field(k, "commit_id").as_str().unwrap())
            .find(|id| !parents.contains(id))
            .unwrap();
        let repo = c
            .path
            .trim_end_matches("/push")
            .trim_start_matches('/')
            .to_owned();
        last_tip.insert(format!("{repo}#{branch}"), tip.to_owned());
    }
    for (key, tip) in &last_tip {
        let (repo, branch) = key.split_once('#').unwrap();
        let owner = repo.split('/').next().unwrap();
        let heads = hub.heads(repo, tokens_get(&r.tokens, owner)).await;
        assert!(
            heads.contains(&(branch.to_owned(), tip.clone())),
            "{repo}: {branch} should be at {tip}, heads {heads:?}"
        );
    }
    let report = musehub::doctor::run(hub.server.hub(), |_| {}).expect("doctor runs");
    assert!(report.ok, "doctor faults: {:?}", report.faults);
}

fn tokens_get<'a>(t: &'a HashMap<String, String>, owner: &str) -> Option<&'a str> {
    t.get(owner).map(String::as_str)
}

#[tokio::test]
async fn replays_http_main_session() {
    let hub = TestHub::spawn().await;
    replay(
        &hub,
        "http-main",
        &["alice"],
        &[("alice", "song"), ("alice", "min"), ("alice", "py313")],
        &[],
        &[],
    )
    .await;
}

#[tokio::test]
async fn replays_twelve_step_scenario() {
    let hub = TestHub::spawn().await;
    replay(&hub, "scenario", &["alice"], &[("alice", "scn")], &[], &[]).await;
}

#[tokio::test]
async fn replays_concurrent_chunked_push_of_850_files() {
    let hub = TestHub::spawn().await;
    replay(&hub, "chunks", &["alice"], &[("alice", "many")], &[], &[]).await;
    let (_, objects, _) = hub
        .server
        .hub()
        .db()
        .read(musehub::db::content::counts)
        .await
        .unwrap();
    assert!(objects >= 850, "all 850 files stored, got {objects}");
}

#[tokio::test]
async fn replays_push_fetch_clone_pull_of_https_self_session() {
    let hub = TestHub::spawn().await;
    replay(&hub, "https-self", &["bob"], &[("bob", "tls")], &[], &[]).await;
}

#[tokio::test]
async fn first_push_creates_the_repo_and_fallback_paths_work() {
    // No repo exists: refs answers 404 (the CLI goes on), filter-objects says everything is
    // missing, presign creates the repo for its owner. The stub answered 404 to presign and
    // negotiate; this hub answers them.
    let hub = TestHub::spawn().await;
    replay(
        &hub,
        "fallbacks",
        &["alice"],
        &[],
        &[(3, 200), (7, 200)],
        &[],
    )
    .await;
}

#[tokio::test]
async fn replays_token_session_with_real_auth() {
    // The stub demanded a token on every request; this hub lets anyone read a public repo, so
    // the token-less refs of a push (1, 13) and of a clone (8, 28) succeed, while the
    // token-less writes (2-3, 14-15: no identity stored) still get 401.
    let hub = TestHub::spawn().await;
    let overrides = [(1, 200), (8, 200), (13, 200), (28, 200)];
    replay(
        &hub,
        "token",
        &["alice"],
        &[("alice", "tok"), ("alice", "scn")],
        &overrides,
        &[1, 2, 3, 13, 14, 15],
    )
    .await;
}

#[tokio::test]
async fn replays_https_session_against_a_tls_hub() {
    let dir = tempfile::tempdir().unwrap();
    let paths = musehub::tls::TlsPaths::in_dir(dir.path());
    musehub::tls::ensure_certificates(&paths, &[]).unwrap();
    let ca = musehub::tls::ca_pem(&paths).unwrap();
    let data = dir.path().to_owned();
    let mut hub = TestHub::spawn_with(move |c| {
        c.paths.data_dir = data;
        c.tls = true;
    })
    .await;
    hub.client = reqwest::Client::builder()
        .tls_backend_preconfigured(musehub::tls::client_config_trusting(&ca).unwrap())
        .build()
        .unwrap();
    assert!(hub.url("/").starts_with("https://127.0.0.1:"));
    // /ca.crt hands out exactly the CA that signed the certificate being used.
    let (s, b) = hub.get("/ca.crt", None).await;
    assert_eq!(s, 200);
    assert_eq!(String::from_utf8(b.to_vec()).unwrap(), ca);
    let overrides = [(15, 200), (25, 200)];
    replay(
        &hub,
        "https",
        &["alice"],
        &[("alice", "tls"), ("alice", "scn")],
        &overrides,
        &[],
    )
    .await;
    // A client that does not trust the hub's CA cannot talk to it at all.
    let stranger = crate::harness::client();
    assert!(stranger.get(hub.url("/health")).send().await.is_err());
}
