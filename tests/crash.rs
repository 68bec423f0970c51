//! Crash safety of the `musehub` binary: a hub killed with SIGKILL in the middle of concurrent
//! pushes keeps every push it acknowledged, with complete history and intact bytes, and comes
//! back up with nothing left over in `blocks/tmp`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use musehub::cids::Id;
use reqwest::StatusCode;
use rmpv::Value;

use crate::harness::{
    Commit, Pack, decode, field, ids, map, musehub, noise, objects_body, push_body,
    spawn_serve_with,
};

/// Repositories pushed to at once, one pusher each.
const REPOS: usize = 4;

/// Push for at least this long before the kill…
const MIN_PUSHING: Duration = Duration::from_millis(1500);

/// …and until every repo has this many acknowledged pushes…
const MIN_ACKS: usize = 3;

/// …but kill by this time whatever happened.
const MAX_PUSHING: Duration = Duration::from_secs(20);

/// Every fetch below returns a repo's whole history, more than the CLI's 64 MiB cap when the
/// machine pushes fast, so the hub under test allows larger answers.
const SERVE_ENV: &[(&str, &str)] = &[("MUSEHUB_MAX_FETCH_ANSWER", "1 GiB")];

/// The files of commit `n` of repo `r`: a README shared by every commit of every repo (so
/// uploads of known objects happen too), two small files and one 1.5–3 MiB stem.
fn files_of(r: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let seed = (r as u64 + 1) * 1_000_003 + n as u64;
    let stem_len =
        3 * 1024 * 1024 / 2 + (seed.wrapping_mul(0x9e37_79b9) % (3 * 1024 * 1024 / 2)) as usize;
    vec![
        (
            "README.txt".to_owned(),
            b"a song pushed while its hub is killed\n".to_vec(),
        ),
        (
            "lyrics.txt".to_owned(),
            format!("r{r} take {n}: la la la\n").into_bytes(),
        ),
        (format!("midi/take-{n}.mid"), noise(seed ^ 0x5eed, 3000)),
        ("stems/bass.wav".to_owned(), noise(seed, stem_len)),
    ]
}

/// What one pusher did, for the checks after the restart.
#[derive(Debug, Default)]
struct Outcome {
    /// Every commit built, in order; each is the parent of the next.
    chain: Vec<Commit>,
    /// The object ids of each commit's snapshot.
    manifests: Vec<BTreeSet<String>>,
    /// The last commit whose push was answered 200 with `ok: true`.
    acked: Option<usize>,
    /// The last commit whose push was sent (its answer may have been lost to the kill).
    in_flight: Option<usize>,
    /// Why the pusher stopped, when that was not the kill.
    failure: Option<String>,
}

/// Shared state between the pushers and the test.
#[derive(Debug, Default)]
struct Flags {
    /// Set just before SIGKILL: from then on, transport errors are expected.
    killed: AtomicBool,
    /// Asks the pushers to stop after their current commit.
    stop: AtomicBool,
    /// Pushers that have returned.
    finished: AtomicUsize,
    acks: [AtomicUsize; REPOS],
}

/// POSTs a msgpack body; `Err` is a transport error (no answer).
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
    let res = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/x-msgpack")
        .body(body)
        .send()
        .await?;
    let status = res.status();
    Ok((status, res.bytes().await?.to_vec()))
}

/// Pushes commit after commit to `alice/r{r}`, each on top of the last, until the hub dies.
async fn pusher(
    http: reqwest::Client,
    url: String,
    token: String,
    r: usize,
    flags: Arc<Flags>,
) -> Outcome {
    let repo = format!("{url}/alice/r{r}");
    let mut out = Outcome::default();
    for n in 0.. {
        if flags.stop.load(Ordering::SeqCst) {
            break;
        }
        let files = files_of(r, n);
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        let parents: Vec<Id> = out.chain.last().map(|c| c.id).into_iter().collect();
        let commit = Commit::new(
            &parents,
            &refs,
            &format!("r{r} take {n}"),
            &format!("2026-01-01T00:{:02}:{:02}+00:00", n / 60, n % 60),
        );
        out.manifests
            .push(files.iter().map(|(_, c)| Id::of(c).to_hex()).collect());
        out.chain.push(commit.clone());
        let objects: Vec<&[u8]> = files.iter().map(|(_, c)| c.as_slice()).collect();

        let mut answer = post(
            &http,
            &format!("{repo}/push/objects"),
            &token,
            objects_body(&objects),
        )
        .await;
        if matches!(answer, Ok((StatusCode::OK, _))) {
            out.in_flight = Some(n);
            answer = post(
                &http,
                &format!("{repo}/push"),
                &token,
                push_body(&[commit], "main", false),
            )
            .await;
            if let Ok((StatusCode::OK, body)) = &answer
                && field(&decode(body), "ok").as_bool() == Some(true)
            {
                out.acked = Some(n);
                flags.acks[r].fetch_add(1, Ordering::SeqCst);
                continue;
            }
        }
        // A killed hub sends no answer at all; any HTTP answer but 200 is a real failure.
        out.failure = match answer {
            Err(_) if flags.killed.load(Ordering::SeqCst) => None,
            Err(e) => Some(format!("commit {n}: transport error before the kill: {e}")),
            Ok((status, body)) => Some(format!(
                "commit {n}: {status} {}",
                String::from_utf8_lossy(&body)
            )),
        };
        break;
    }
    flags.finished.fetch_add(1, Ordering::SeqCst);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_during_concurrent_pushes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    musehub(d, &["user", "add", "alice"]).ok();
    let created = musehub(d, &["token", "create", "--user", "alice"]).ok();
    let token = created
        .stdout
        .lines()
        .next()
        .expect("token printed")
        .to_owned();
    for r in 0..REPOS {
        musehub(d, &["repo", "create", &format!("alice/r{r}")]).ok();
    }

    let (mut hub, url) = spawn_serve_with(d, SERVE_ENV);
    crate::harness::crypto();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let flags = Arc::new(Flags::default());
    let pushers: Vec<_> = (0..REPOS)
        .map(|r| {
            tokio::spawn(pusher(
                http.clone(),
                url.clone(),
                token.clone(),
                r,
                flags.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    loop {
        let elapsed = started.elapsed();
        let enough = flags
            .acks
            .iter()
            .all(|a| a.load(Ordering::SeqCst) >= MIN_ACKS);
        if elapsed >= MAX_PUSHING
            || (elapsed >= MIN_PUSHING && enough)
            || pushers.iter().any(|p| p.is_finished())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let still_pushing = pushers.iter().filter(|p| !p.is_finished()).count();
    flags.killed.store(true, Ordering::SeqCst);
    hub.kill().expect("SIGKILL sent");
    let status = hub.wait().expect("reaped");
    let pushed_for = started.elapsed();
    let log = hub.log();
    drop(hub);
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the hub died of SIGKILL, not on its own ({status}):\n{log}"
        );
    }

    let mut outcomes = Vec::new();
    for p in pushers {
        let out = tokio::time::timeout(Duration::from_secs(60), p)
            .await
            .expect("pushers stop once the hub is gone")
            .expect("pusher task");
        outcomes.push(out);
    }
    for (r, o) in outcomes.iter().enumerate() {
        assert!(
            o.failure.is_none(),
            "alice/r{r}: {}\nhub log:\n{log}",
            o.failure.as_deref().unwrap_or_default()
        );
    }
    assert_eq!(
        still_pushing, REPOS,
        "every pusher was still pushing at the kill"
    );
    let acks: Vec<usize> = flags
        .acks
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert!(
        acks.iter().all(|&a| a >= 1),
        "every repo had an acknowledged push before the kill: {acks:?}"
    );
    eprintln!("killed after {pushed_for:?} with acknowledged pushes {acks:?}");

    // A crash can leave temp files; the restarted hub clears them. Plant one so the check
    // below cannot pass just because the kill happened to leave none.
    let tmp = d.join("blocks/tmp");
    let left = std::fs::read_dir(&tmp).unwrap().count();
    std::fs::write(tmp.join("999999-0"), b"half a block").unwrap();
    let (_hub, url) = spawn_serve_with(d, SERVE_ENV);
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "blocks/tmp is cleared on restart ({left} left by the kill), still there: {leftovers:?}"
    );

    let mut commits_kept = 0;
    let mut kept_unanswered = 0;
    for (r, o) in outcomes.iter().enumerate() {
        let repo = format!("{url}/alice/r{r}");
        let res = http
            .get(format!("{repo}/refs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let refs = decode(&res.bytes().await.unwrap());
        let head = field(field(&refs, "branch_heads"), "main")
            .as_str()
            .expect("main has a head")
            .to_owned();
        let at = o.chain.iter().position(|c| c.id.to_hex() == head);
        assert!(
            at.is_some() && (at == o.acked || at == o.in_flight),
            "alice/r{r}: main is at {head} (commit {at:?}); the last acknowledged push was commit {:?}, the one in flight {:?}",
            o.acked,
            o.in_flight
        );
        let at = at.expect("checked above");
        commits_kept += at + 1;
        kept_unanswered += usize::from(Some(at) != o.acked);

        let want = [o.chain[at].id];
        let body =
            musehub::wire::encode(&map([("want", ids(&want)), ("have", Value::Array(vec![]))]));
        let (status, bytes) = post(&http, &format!("{repo}/fetch"), &token, body)
            .await
            .expect("fetch answered");
        assert_eq!(
            status,
            StatusCode::OK,
            "alice/r{r} fetch: {}",
            String::from_utf8_lossy(&bytes)
        );
        let pack = Pack::decode(&bytes);
        pack.verify();
        let chain = &o.chain[..=at];
        let expect_commits: BTreeSet<String> = chain.iter().map(|c| c.id.to_hex()).collect();
        assert_eq!(
            pack.commit_ids(),
            expect_commits,
            "alice/r{r}: the whole chain back to the first commit"
        );
        let expect_snaps: BTreeSet<String> = chain.iter().map(|c| c.snapshot_id.to_hex()).collect();
        assert_eq!(
            pack.snapshot_ids(),
            expect_snaps,
            "alice/r{r}: every snapshot of the chain"
        );
        let got: BTreeSet<String> = pack.objects.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(
            got.len(),
            pack.objects.len(),
            "alice/r{r}: no object sent twice"
        );
        let expect_objects: BTreeSet<String> =
            o.manifests[..=at].iter().flatten().cloned().collect();
        assert_eq!(
            got, expect_objects,
            "alice/r{r}: every object of every snapshot, the head's included"
        );
    }

    // The restarted hub takes pushes on top of what survived.
    let o = &outcomes[0];
    let head_hex = head_of(&http, &url, &token).await;
    let head = o
        .chain
        .iter()
        .position(|c| c.id.to_hex() == head_hex)
        .expect("head is in the chain");
    let files = files_of(0, 10_000);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let next = Commit::new(
        &[o.chain[head].id],
        &refs,
        "after the crash",
        "2026-01-02T00:00:00+00:00",
    );
    let objects: Vec<&[u8]> = files.iter().map(|(_, c)| c.as_slice()).collect();
    let (s, b) = post(
        &http,
        &format!("{url}/alice/r0/push/objects"),
        &token,
        objects_body(&objects),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let (s, b) = post(
        &http,
        &format!("{url}/alice/r0/push"),
        &token,
        push_body(&[next], "main", false),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    commits_kept += 1;

    eprintln!(
        "{left} temp file(s) left by the kill; {kept_unanswered} repo(s) kept a push whose answer was lost"
    );

    let run = musehub(d, &["doctor", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("doctor --json: {e}: {run:?}"));
    assert!(
        run.status.success() && report["ok"] == true,
        "doctor after the crash: {report}"
    );
    assert_eq!(
        report["commits_checked"].as_u64(),
        Some(commits_kept as u64),
        "doctor walked every surviving commit: {report}"
    );
    assert_eq!(report["repos_checked"].as_u64(), Some(REPOS as u64));
}

/// The head of `alice/r0`'s main.
async fn head_of(http: &reqwest::Client, url: &str, token: &str) -> String {
    let res = http
        .get(format!("{url}/alice/r0/refs"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let refs = decode(&res.bytes().await.unwrap());
    field(field(&refs, "branch_heads"), "main")
        .as_str()
        .unwrap()
        .to_owned()
}

/// `musehub` admin commands open the same data directory as the running hub, which is how an
/// operator adds a band member's token while others push. They must not disturb those pushes
/// (opening the block store clears `blocks/tmp`, where the hub is writing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_commands_while_serving_leave_pushes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    musehub(d, &["user", "add", "alice"]).ok();
    let created = musehub(d, &["token", "create", "--user", "alice"]).ok();
    let token = created
        .stdout
        .lines()
        .next()
        .expect("token printed")
        .to_owned();
    let (hub, url) = spawn_serve_with(d, SERVE_ENV);
    crate::harness::crypto();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let flags = Arc::new(Flags::default());
    let pushing = tokio::spawn(pusher(http, url, token, 0, flags.clone()));

    // Commands that only read or add rows, run the way an operator would while the hub serves.
    let data = d.to_owned();
    let flags_admin = flags.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut runs = 0;
        let pushing =
            || flags_admin.finished.load(Ordering::SeqCst) == 0 && started.elapsed() < MAX_PUSHING;
        while pushing() && (runs < 30 || flags_admin.acks[0].load(Ordering::SeqCst) < MIN_ACKS) {
            let args: &[&str] = match runs % 3 {
                0 => &["token", "list"],
                1 => &["repo", "list"],
                _ => &["user", "list"],
            };
            musehub(&data, args).ok();
            runs += 1;
        }
        runs
    })
    .await
    .unwrap();
    flags.stop.store(true, Ordering::SeqCst);
    let o = tokio::time::timeout(Duration::from_secs(60), pushing)
        .await
        .expect("the pusher stops")
        .expect("pusher task");
    let acks = flags.acks[0].load(Ordering::SeqCst);
    assert!(
        o.failure.is_none(),
        "a push failed while {runs} admin commands ran ({acks} pushes acknowledged): {}\nhub log:\n{}",
        o.failure.as_deref().unwrap_or_default(),
        hub.log()
    );
    assert!(
        acks >= MIN_ACKS,
        "pushes went on during the admin commands: {acks}"
    );
    drop(hub);
    let run = musehub(d, &["doctor", "--json"]);
    assert!(run.status.success(), "{run:?}");
}
