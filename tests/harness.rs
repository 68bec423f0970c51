//! Test harness: a real hub on 127.0.0.1, an HTTP client, builders for Muse wire bodies, and
//! the captured requests of the real Muse CLI in `shared/fixtures/muse-wire/`.

use std::path::PathBuf;

use bytes::Bytes;
use musehub::cids::Id;
use musehub::db::{repos, users};
use musehub::{Config, Server, auth};
use reqwest::StatusCode;
use rmpv::Value;
use tempfile::TempDir;

/// Installs the ring crypto provider for reqwest/rustls once per test process.
pub fn crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> reqwest::Client {
    crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A hub serving from a temporary data directory.
pub struct TestHub {
    pub server: Server,
    /// Keeps the data directory alive as long as the hub.
    _dir: TempDir,
    pub client: reqwest::Client,
}

impl TestHub {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path());
        adjust(&mut config);
        let server = Server::bind(config).await.expect("hub starts");
        TestHub {
            server,
            _dir: dir,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Adds a user and returns a fresh token for them.
    pub async fn user(&self, name: &str) -> String {
        let token = auth::new_token();
        let hash = auth::hash_token(&token);
        let name = name.to_owned();
        self.server
            .hub()
            .db()
            .write(move |tx| {
                let u = match users::by_name(tx, &name)? {
                    Some(u) => u,
                    None => users::create(tx, &name)?,
                };
                users::add_token(tx, u.id, &hash, "test", None)?;
                Ok::<_, musehub::db::Error>(())
            })
            .await
            .expect("user");
        token
    }

    /// Creates a repo directly (as `musehub repo create` does).
    pub async fn repo(&self, owner: &str, slug: &str, private: bool) {
        let (o, s) = (owner.to_owned(), slug.to_owned());
        self.server
            .hub()
            .db()
            .write(move |tx| {
                let u = users::by_name(tx, &o)?.expect("owner exists");
                let vis = if private {
                    repos::Visibility::Private
                } else {
                    repos::Visibility::Public
                };
                repos::create(tx, u.id, &s, vis, &musehub::hub::new_uuid())?;
                Ok::<_, musehub::db::Error>(())
            })
            .await
            .expect("repo");
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(Vec<u8>, &str)>,
    ) -> (StatusCode, Bytes) {
        let mut req = self
            .client
            .request(method.parse().expect("method"), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((b, ct)) = body {
            req = req.header("content-type", ct).body(b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        (status, res.bytes().await.expect("body"))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Bytes) {
        self.request("GET", path, token, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        self.request("POST", path, token, Some((body, "application/x-msgpack")))
            .await
    }

    /// POSTs a msgpack value and decodes a 2xx answer (panics with the detail otherwise).
    pub async fn call(&self, path: &str, token: Option<&str>, body: &Value) -> Value {
        let (status, bytes) = self.post(path, token, musehub::wire::encode(body)).await;
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        decode(&bytes)
    }

    /// Uploads objects and pushes commits to `branch`, as `muse push` does.
    pub async fn push(
        &self,
        repo: &str,
        token: &str,
        objects: &[&[u8]],
        commits: &[Commit],
        branch: &str,
        force: bool,
    ) -> (StatusCode, Bytes) {
        if !objects.is_empty() {
            let (s, b) = self
                .post(
                    &format!("/{repo}/push/objects"),
                    Some(token),
                    objects_body(objects),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::OK,
                "push/objects: {}",
                String::from_utf8_lossy(&b)
            );
        }
        self.post(
            &format!("/{repo}/push"),
            Some(token),
            push_body(commits, branch, force),
        )
        .await
    }

    /// The repo's branch heads from `GET refs`.
    pub async fn heads(&self, repo: &str, token: Option<&str>) -> Vec<(String, String)> {
        let (s, b) = self.get(&format!("/{repo}/refs"), token).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        let v = decode(&b);
        field(&v, "branch_heads")
            .as_map()
            .expect("map")
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The hub's data directory (for running `musehub` commands beside it).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

pub fn decode(bytes: &[u8]) -> Value {
    rmpv::decode::read_value(&mut &bytes[..])
        .unwrap_or_else(|e| panic!("not msgpack ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_map()
        .expect("a map")
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {key} in {v}"))
}

/// The `detail` of a JSON error answer.
pub fn detail(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(bytes)));
    v["detail"].as_str().expect("detail").to_owned()
}

pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    musehub::wire::map(entries)
}

pub fn ids(list: &[Id]) -> Value {
    Value::Array(list.iter().map(|i| Value::from(i.to_hex())).collect())
}

pub fn objects_body(objects: &[&[u8]]) -> Vec<u8> {
    let items = objects
        .iter()
        .map(|o| {
            map([
                ("object_id", Value::from(Id::of(o).to_hex())),
                ("content", Value::Binary(o.to_vec())),
            ])
        })
        .collect();
    musehub::wire::encode(&map([("objects", Value::Array(items))]))
}

/// A commit and its snapshot as the CLI sends them.
#[derive(Clone, Debug)]
pub struct Commit {
    pub id: Id,
    pub snapshot_id: Id,
    pub commit: Value,
    pub snapshot: Value,
}

impl Commit {
    /// Builds a commit over `files` (path, content) with the given parents.
    pub fn new(
        parents: &[Id],
        files: &[(&str, &[u8])],
        message: &str,
        committed_at: &str,
    ) -> Commit {
        let manifest: Vec<(String, Id)> = files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), Id::of(c)))
            .collect();
        Self::with_manifest(parents, &manifest, message, committed_at)
    }

    pub fn with_manifest(
        parents: &[Id],
        manifest: &[(String, Id)],
        message: &str,
        committed_at: &str,
    ) -> Commit {
        let r = musehub::wire::records::Commit {
            repo_id: "0b7c1f7e-0000-4000-8000-000000000000",
            branch: "main",
            parents,
            manifest,
            message,
            committed_at,
        }
        .record();
        Commit {
            id: r.commit_id,
            snapshot_id: r.snapshot_id,
            commit: r.commit,
            snapshot: r.snapshot,
        }
    }
}

pub fn push_body(commits: &[Commit], branch: &str, force: bool) -> Vec<u8> {
    musehub::wire::encode(&map([
        (
            "bundle",
            map([
                (
                    "commits",
                    Value::Array(commits.iter().map(|c| c.commit.clone()).collect()),
                ),
                (
                    "snapshots",
                    Value::Array(commits.iter().map(|c| c.snapshot.clone()).collect()),
                ),
                ("objects", Value::Array(vec![])),
            ]),
        ),
        ("branch", Value::from(branch)),
        ("force", Value::Boolean(force)),
    ]))
}

/// Decoded fetch answer: commit ids, snapshot ids, objects (id, content).
pub struct Pack {
    pub commits: Vec<Value>,
    pub snapshots: Vec<Value>,
    pub objects: Vec<(String, Vec<u8>)>,
}

impl Pack {
    pub fn decode(bytes: &[u8]) -> Pack {
        let v = decode(bytes);
        let arr = |k: &str| field(&v, k).as_array().expect("array").clone();
        let objects = arr("objects")
            .iter()
            .map(|o| {
                let id = field(o, "object_id").as_str().expect("id").to_owned();
                let Value::Binary(b) = field(o, "content") else {
                    panic!("content must be bin")
                };
                (id, b.clone())
            })
            .collect();
        Pack {
            commits: arr("commits"),
            snapshots: arr("snapshots"),
            objects,
        }
    }

    pub fn commit_ids(&self) -> std::collections::BTreeSet<String> {
        self.commits
            .iter()
            .map(|c| field(c, "commit_id").as_str().unwrap().to_owned())
            .collect()
    }

    pub fn snapshot_ids(&self) -> std::collections::BTreeSet<String> {
        self.snapshots
            .iter()
            .map(|c| field(c, "snapshot_id").as_str().unwrap().to_owned())
            .collect()
    }

    /// Asserts every object's bytes hash to its id.
    pub fn verify(&self) {
        for (id, content) in &self.objects {
            assert_eq!(
                &Id::of(content).to_hex(),
                id,
                "object bytes must hash to their id"
            );
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `shared/` (beside the repository, or `$MUSEHUB_SHARED`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("MUSEHUB_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// One captured request of the real Muse CLI.
#[derive(Debug, Clone)]
pub struct Capture {
    pub seq: u32,
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub had_token: bool,
    pub status: u16,
    /// The stub's answer, when it was small enough to be kept.
    pub answer: Option<Vec<u8>>,
}

/// The captures of one scenario directory, in sequence order.
pub fn captures(scenario: &str) -> Vec<Capture> {
    let dir = shared_dir().join("fixtures/muse-wire").join(scenario);
    assert!(
        dir.is_dir(),
        "fixtures missing at {} (set MUSEHUB_SHARED)",
        dir.display()
    );
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".req.json") else {
            continue;
        };
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let resp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.resp.json"))).unwrap())
                .unwrap();
        let headers = meta["headers"].as_array().unwrap();
        let header = |n: &str| {
            headers
                .iter()
                .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(n))
                .map(|h| h[1].as_str().unwrap().to_owned())
        };
        out.push(Capture {
            seq: meta["seq"].as_u64().unwrap() as u32,
            method: meta["method"].as_str().unwrap().to_owned(),
            path: meta["path"].as_str().unwrap().to_owned(),
            body: std::fs::read(dir.join(format!("{stem}.req.bin"))).unwrap_or_default(),
            content_type: header("content-type"),
            had_token: header("authorization").is_some(),
            status: resp["status"].as_u64().unwrap() as u16,
            answer: std::fs::read(dir.join(format!("{stem}.resp.bin"))).ok(),
        });
    }
    out.sort_by_key(|c| c.seq);
    out
}

/// A `musehub` command on the data directory `dir`, blind to `MUSEHUB_*` variables of the
/// environment the tests run in (they would change ports, URLs and limits).
pub fn musehub_cmd(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_musehub"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MUSEHUB_") {
            cmd.env_remove(key);
        }
    }
    // The IPFS node stays on (served hubs exercise it) but on loopback, with no bootstrap
    // peers and no mDNS, so test hubs never reach out or find each other.
    cmd.arg("--data-dir")
        .arg(dir)
        .env("MUSEHUB_IPFS_LISTEN", "/ip4/127.0.0.1/tcp/0")
        .env("MUSEHUB_IPFS_BOOTSTRAP", "")
        .env("MUSEHUB_IPFS_MDNS", "false")
        // Nor do they look for other hubs on the LAN (the `lan` test turns it on in its
        // own network namespaces).
        .env("MUSEHUB_FEDERATION_MDNS", "false")
        .stdin(std::process::Stdio::null());
    cmd
}

/// What a finished `musehub` command did.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "`musehub {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the command failed with exit code 1 (what `main` returns for an error).
    #[track_caller]
    pub fn fails(self) -> Run {
        assert_eq!(
            self.status.code(),
            Some(1),
            "`musehub {}` should fail:\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `musehub --data-dir DIR ARGS…` to completion.
pub fn musehub(dir: &std::path::Path, args: &[&str]) -> Run {
    let out = musehub_cmd(dir).args(args).output().expect("musehub runs");
    Run {
        args: args.join(" "),
        status: out.status,
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failing test never
/// leaves a hub running. Derefs to the [`std::process::Child`].
#[derive(Debug)]
pub struct ChildGuard {
    child: std::process::Child,
    /// Everything the child wrote to stderr so far (a thread keeps draining the pipe, so a
    /// chatty hub never blocks on a full pipe).
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ChildGuard {
    /// The child's stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the child to exit.
    pub fn wait_timeout(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `musehub --data-dir DIR serve --listen 127.0.0.1:0` and returns it with the URL it
/// reports on stderr (`… listening on http://127.0.0.1:PORT`).
pub fn spawn_serve(dir: &std::path::Path) -> (ChildGuard, String) {
    spawn_serve_with(dir, &[])
}

/// [`spawn_serve`] with extra environment variables (e.g. `MUSEHUB_MAX_FETCH_ANSWER`).
pub fn spawn_serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (ChildGuard, String) {
    use std::io::BufRead;
    let mut cmd = musehub_cmd(dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("musehub serve starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let guard = ChildGuard {
        child,
        log: log.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("listening on http://") {
                let url = line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
            let mut log = log.lock().expect("log lock");
            log.push_str(&line);
            log.push('\n');
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "musehub serve did not report its address ({e}); its stderr:\n{}",
                guard.log()
            )
        });
    (guard, url)
}

/// Polls `f` until it returns true, failing the test after 30 s with `what`.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
