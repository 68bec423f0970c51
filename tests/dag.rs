//! The history as an IPLD DAG: CAR export read by `@ipld/car`, export → import round trips,
//! clones written from a hub's CAR, a CAR file and a Helia peer (hubs stopped), `verify`
//! catching every flipped byte and the wrong key, and bad CARs refused with nothing imported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use musehub::car::CarReader;
use musehub::cids::{DAG_CBOR, DAG_PB, Id, RAW};
use musehub::dag;
use reqwest::StatusCode;

use crate::harness::{Commit, TestHub, musehub, musehub_cmd, noise};
use crate::helia_interop::{HeliaServer, helia_node, helia_script};

const MIB: usize = 1024 * 1024;

/// A two-commit history: small MIDI and text files and a 2.5 MiB stem (a UnixFS tree).
struct Song {
    files_v1: Vec<(String, Vec<u8>)>,
    files_v2: Vec<(String, Vec<u8>)>,
    head: Id,
}

async fn push_song(hub: &TestHub, repo: &str) -> Song {
    let v1 = vec![
        (
            "song.mid".to_owned(),
            b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0".to_vec(),
        ),
        ("lyrics.txt".to_owned(), b"la la la\n".to_vec()),
        ("stems/bass.wav".to_owned(), noise(7, 5 * MIB / 2)),
    ];
    let mut v2 = v1.clone();
    v2[1].1 = b"la la la, louder\n".to_vec();
    v2.push((".museattributes".to_owned(), b"[attributes]\n".to_vec()));
    let as_refs = |f: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> { f.to_vec() };
    let files1: Vec<(&str, &[u8])> = v1.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let (c1, token) = push_one_commit(hub, repo, &files1, "first take").await;
    let files2: Vec<(&str, &[u8])> = v2.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    let c2 = Commit::new(
        &[c1.id],
        &files2,
        "louder chorus",
        "2026-11-24T10:05:30.123456+00:00",
    );
    let objs2: Vec<&[u8]> = vec![v2[1].1.as_slice(), v2[3].1.as_slice()];
    let (s, b) = hub
        .push(
            repo,
            &token,
            &objs2,
            std::slice::from_ref(&c2),
            "main",
            false,
        )
        .await;
    assert!(
        s.is_success(),
        "push 2: {s} {}",
        String::from_utf8_lossy(&b)
    );
    Song {
        files_v1: as_refs(&v1),
        files_v2: as_refs(&v2),
        head: c2.id,
    }
}

async fn get_car(hub: &TestHub, path: &str) -> Vec<u8> {
    let (s, b) = hub.get(path, None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&b));
    b.to_vec()
}

/// (CID, data offset, data length) of every section.
async fn sections(car: &[u8]) -> (cid::Cid, Vec<(cid::Cid, usize, usize)>) {
    let mut r = CarReader::new(car, 4 * MIB).await.expect("CAR header");
    let root = r.roots()[0];
    let mut out = Vec::new();
    while let Some((cid, data)) = r.next_block().await.expect("CAR section") {
        out.push((cid, r.data_offset() as usize, data.len()));
    }
    (root, out)
}

/// Makes user `owner` and the public repo `owner/slug`, and pushes one commit of `files` to
/// its `main`; returns the commit and the owner's token.
async fn push_one_commit(
    a: &TestHub,
    repo: &str,
    files: &[(&str, &[u8])],
    message: &str,
) -> (Commit, String) {
    let (owner, slug) = repo.split_once('/').expect("owner/slug");
    let token = a.user(owner).await;
    a.repo(owner, slug, false).await;
    let c = Commit::new(&[], files, message, "2026-11-24T10:00:00+00:00");
    let objects: Vec<&[u8]> = files.iter().map(|(_, b)| *b).collect();
    let (s, b) = a
        .push(
            repo,
            &token,
            &objects,
            std::slice::from_ref(&c),
            "main",
            false,
        )
        .await;
    assert!(s.is_success(), "{s} {}", String::from_utf8_lossy(&b));
    (c, token)
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn car_check(car: &Path, root: &str) -> serde_json::Value {
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(helia_node())
        .current_dir(root_dir)
        .arg(helia_script("car-check.mjs"))
        .arg(car)
        .args(["--root", root, "--no-dups"])
        .output()
        .expect("run the CAR checker");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "car-check: {line}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(line.trim()).expect("one JSON line")
}

/// Checks a cloned directory the way the protocol doc §5 says a reader should: HEAD →
/// commit JSON → snapshot JSON → objects, recomputing every id, and the working files.
fn check_clone(dir: &Path, head: &Id, files: &[(String, Vec<u8>)], commits: usize) {
    let muse = dir.join(".muse");
    assert_eq!(
        std::fs::read_to_string(muse.join("HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert_eq!(
        std::fs::read_to_string(muse.join("refs/heads/main")).unwrap(),
        head.to_hex()
    );
    let repo: serde_json::Value =
        serde_json::from_slice(&std::fs::read(muse.join("repo.json")).unwrap()).unwrap();
    assert_eq!(repo["schema_version"], "0.1.5");
    assert!(repo["repo_id"].as_str().is_some_and(|s| !s.is_empty()));
    let mut next = Some(*head);
    let mut seen = 0;
    while let Some(id) = next {
        let raw = std::fs::read(muse.join("commits").join(format!("{id}.json"))).unwrap();
        assert!(raw.ends_with(b"}\n"));
        let c: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let parents: Vec<Id> = ["parent_commit_id", "parent2_commit_id"]
            .iter()
            .filter_map(|k| c[*k].as_str().map(|s| Id::parse(s).unwrap()))
            .collect();
        let sid = Id::parse(c["snapshot_id"].as_str().unwrap()).unwrap();
        let computed = musehub::muse::commit_id(
            &parents,
            &sid,
            c["message"].as_str().unwrap(),
            c["committed_at"].as_str().unwrap(),
        );
        assert_eq!(computed, id, "commit id recomputes");
        let s: serde_json::Value = serde_json::from_slice(
            &std::fs::read(muse.join("snapshots").join(format!("{sid}.json"))).unwrap(),
        )
        .unwrap();
        let manifest: Vec<(String, Id)> = s["manifest"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, o)| (p.clone(), Id::parse(o.as_str().unwrap()).unwrap()))
            .collect();
        assert_eq!(
            musehub::muse::snapshot_id(manifest.iter().map(|(p, o)| (p.as_str(), o))),
            sid
        );
        for (_, oid) in &manifest {
            let hex = oid.to_hex();
            let bytes =
                std::fs::read(muse.join("objects").join(&hex[..2]).join(&hex[2..])).unwrap();
            assert_eq!(Id::of(&bytes), *oid, "object bytes match their id");
        }
        seen += 1;
        next = parents.first().copied();
    }
    assert_eq!(seen, commits, "the whole history is there");
    for (path, bytes) in files {
        assert_eq!(&std::fs::read(dir.join(path)).unwrap(), bytes, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_car_is_read_by_ipld_car_and_round_trips_into_a_fresh_hub() {
    let a = TestHub::spawn().await;
    let song = push_song(&a, "alice/song").await;
    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let (root, secs) = sections(&car).await;
    assert_eq!(root.codec(), DAG_CBOR);
    // The ref is resolvable three ways, to the same archive.
    assert_eq!(
        get_car(
            &a,
            &format!("/alice/song/commits/{}/car?history=full", song.head)
        )
        .await,
        car
    );
    assert_eq!(
        get_car(&a, &format!("/alice/song/commits/{root}/car?history=full")).await,
        car
    );
    // Deterministic: the same request gives the same bytes.
    assert_eq!(
        get_car(&a, "/alice/song/commits/main/car?history=full").await,
        car
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = write_temp(tmp.path(), "song.car", &car);
    let checked = car_check(&path, &root.to_string());
    assert_eq!(checked["ok"], true);
    let blocks = checked["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), secs.len());
    // 2 commits, 2 snapshots, 1 ref-state, 4 distinct small objects, a tree of 1 + 3 blocks.
    let codec = |c: u64| secs.iter().filter(|(cid, ..)| cid.codec() == c).count();
    assert_eq!(codec(DAG_CBOR), 5, "2 commits + 2 snapshots + 1 ref-state");
    assert_eq!(codec(DAG_PB), 1);
    assert_eq!(codec(RAW), 4 + 3);

    // Without history: one commit, its snapshot, its objects, and the covering ref-state.
    let one = get_car(&a, "/alice/song/commits/main/car").await;
    let (_, one_secs) = sections(&one).await;
    assert_eq!(
        one_secs
            .iter()
            .filter(|(c, ..)| c.codec() == DAG_CBOR)
            .count(),
        3
    );
    // `have` leaves out what the client holds.
    let parent = Commit::new(
        &[],
        &song
            .files_v1
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect::<Vec<_>>(),
        "first take",
        "2026-11-24T10:00:00+00:00",
    );
    let inc = get_car(
        &a,
        &format!(
            "/alice/song/commits/main/car?history=full&have={}",
            parent.id
        ),
    )
    .await;
    assert!(
        inc.len() < 64 * 1024,
        "an increment without the stem: {} bytes",
        inc.len()
    );

    // Import into a fresh hub: same refs, same commit and object CIDs.
    let b = TestHub::spawn().await;
    musehub(b.data_dir(), &["user", "add", "alice"]).ok();
    let out = musehub(b.data_dir(), &["car", "import", path.to_str().unwrap()]).ok();
    assert!(
        out.stdout.contains("imported into alice/song"),
        "{}",
        out.stdout
    );
    assert_eq!(
        a.heads("alice/song", None).await,
        b.heads("alice/song", None).await
    );
    let car_b = get_car(&b, "/alice/song/commits/main/car?history=full").await;
    let (root_b, secs_b) = sections(&car_b).await;
    assert_eq!(root_b, root);
    let content = |s: &[(cid::Cid, usize, usize)], car: &[u8]| -> Vec<cid::Cid> {
        s.iter()
            .filter(|(c, off, len)| {
                c.codec() != DAG_CBOR || dag::RefState::decode(&car[*off..off + len]).is_err()
            })
            .map(|(c, ..)| *c)
            .collect()
    };
    assert_eq!(
        content(&secs, &car),
        content(&secs_b, &car_b),
        "same DAG, same order"
    );
    // The importing hub signs its own ref-state for the branch it set.
    let b_key = b.server.hub().node_key().public().to_peer_id().to_string();
    let path_b = write_temp(tmp.path(), "b.car", &car_b);
    musehub(
        b.data_dir(),
        &[
            "verify",
            &root.to_string(),
            "--key",
            &b_key,
            "--car",
            path_b.to_str().unwrap(),
        ],
    )
    .ok();
    // Importing again changes nothing and is not an error.
    musehub(b.data_dir(), &["car", "import", path.to_str().unwrap()]).ok();
    assert_eq!(
        a.heads("alice/song", None).await,
        b.heads("alice/song", None).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_from_a_hub_url_and_from_a_car_file_with_the_hub_stopped() {
    let a = TestHub::spawn().await;
    let song = push_song(&a, "alice/song").await;
    let work = tempfile::tempdir().unwrap();
    let from_hub = work.path().join("from-hub");
    let url = a.url("/alice/song");
    let out = musehub(work.path(), &["clone", &url, from_hub.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("cloned into"), "{}", out.stdout);
    check_clone(&from_hub, &song.head, &song.files_v2, 2);
    let config = std::fs::read_to_string(from_hub.join(".muse/config.toml")).unwrap();
    assert!(config.contains(&format!("url = \"{url}\"")), "{config}");
    assert_eq!(
        std::fs::read_to_string(from_hub.join(".muse/remotes/origin/main")).unwrap(),
        song.head.to_hex()
    );
    assert!(
        !from_hub.join(".muse/download.car").exists(),
        "the download is removed"
    );
    // Cloning into a non-empty directory is refused and leaves it alone.
    musehub(work.path(), &["clone", &url, from_hub.to_str().unwrap()]).fails();
    assert!(from_hub.join(".muse/HEAD").exists());

    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let path = write_temp(work.path(), "song.car", &car);
    a.server.shutdown().await.unwrap();
    let from_car = work.path().join("from-car");
    musehub(
        work.path(),
        &["clone", path.to_str().unwrap(), from_car.to_str().unwrap()],
    )
    .ok();
    check_clone(&from_car, &song.head, &song.files_v2, 2);
    // A hub that is gone: a clear error and no directory left behind.
    let gone = work.path().join("gone");
    let out = musehub(work.path(), &["clone", &url, gone.to_str().unwrap()]).fails();
    assert!(out.stderr.contains("GET"), "{}", out.stderr);
    assert!(!gone.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_brings_a_clone_up_to_date_through_the_car_endpoint() {
    let a = TestHub::spawn().await;
    let token = a.user("alice").await;
    a.repo("alice", "song", false).await;
    let f1: Vec<(&str, &[u8])> = vec![("a.mid", b"one"), ("big.wav", &[1u8; 10])];
    let c1 = Commit::new(&[], &f1, "one", "2026-11-24T10:00:00+00:00");
    let (s, _) = a
        .push(
            "alice/song",
            &token,
            &[b"one", &[1u8; 10]],
            std::slice::from_ref(&c1),
            "main",
            false,
        )
        .await;
    assert!(s.is_success());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("song");
    musehub(
        work.path(),
        &["clone", &a.url("/alice/song"), dir.to_str().unwrap()],
    )
    .ok();
    let out = musehub(work.path(), &["pull", dir.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("already up to date"), "{}", out.stdout);
    let stem = noise(3, 3 * MIB / 2);
    let f2: Vec<(&str, &[u8])> = vec![("a.mid", b"two"), ("stem.wav", &stem)];
    let c2 = Commit::new(&[c1.id], &f2, "two", "2026-11-24T10:01:00+00:00");
    let (s, _) = a
        .push(
            "alice/song",
            &token,
            &[b"two", &stem],
            std::slice::from_ref(&c2),
            "main",
            false,
        )
        .await;
    assert!(s.is_success());
    let out = musehub(work.path(), &["pull", dir.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("fast-forwarded"), "{}", out.stdout);
    let files: Vec<(String, Vec<u8>)> = f2
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    check_clone(&dir, &c2.id, &files, 2);
    assert!(
        !dir.join("big.wav").exists(),
        "a file the new commit dropped is removed"
    );
}

/// The byte range of the first section whose block matches `pick`.
fn find(
    car: &[u8],
    secs: &[(cid::Cid, usize, usize)],
    pick: impl Fn(&cid::Cid, &[u8]) -> bool,
) -> usize {
    secs.iter()
        .find(|(c, off, len)| pick(c, &car[*off..off + len]))
        .map(|(_, off, len)| off + len / 2)
        .expect("a block to flip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_needs_only_the_cid_and_key_and_names_what_failed() {
    let a = TestHub::spawn().await;
    push_song(&a, "alice/song").await;
    let car = get_car(&a, "/alice/song/commits/main/car").await;
    let (root, secs) = sections(&car).await;
    let key = a.server.hub().node_key().public().to_peer_id();
    let work = tempfile::tempdir().unwrap();
    let good = write_temp(work.path(), "good.car", &car);
    let verify = |path: &Path, key: &str| {
        musehub(
            work.path(),
            &[
                "verify",
                &root.to_string(),
                "--key",
                key,
                "--car",
                path.to_str().unwrap(),
            ],
        )
    };
    let out = verify(&good, &key.to_string()).ok();
    assert!(out.stdout.starts_with("OK:"), "{}", out.stdout);
    // The raw Ed25519 key works as well as the peer id.
    let raw = hex::encode(
        a.server
            .hub()
            .node_key()
            .public()
            .try_into_ed25519()
            .unwrap()
            .to_bytes(),
    );
    verify(&good, &raw).ok();
    // The wrong key.
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let out = verify(&good, &other.to_string()).fails();
    assert!(
        out.stdout.contains("no ref-state signed by"),
        "{}",
        out.stdout
    );

    let is_type = |t: &'static str| {
        move |c: &cid::Cid, d: &[u8]| {
            c.codec() == DAG_CBOR
                && musehub::dagcbor::decode(d)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_text().map(str::to_owned)))
                    .as_deref()
                    == Some(t)
        }
    };
    let cases: Vec<(&str, usize)> = vec![
        (
            "object",
            find(&car, &secs, |c, d| c.codec() == RAW && d.len() > 1000),
        ),
        ("snapshot", find(&car, &secs, is_type(dag::SNAPSHOT))),
        ("commit", find(&car, &secs, is_type(dag::COMMIT))),
        ("ref-state", find(&car, &secs, is_type(dag::REF_STATE))),
        // The last bytes of the ref-state node are its signature.
        ("ref-state", {
            let (_, off, len) = secs
                .iter()
                .find(|(c, off, len)| is_type(dag::REF_STATE)(c, &car[*off..off + len]))
                .unwrap();
            off + len - 3
        }),
    ];
    for (what, at) in cases {
        let mut bad = car.clone();
        bad[at] ^= 0x01;
        let p = write_temp(work.path(), "flipped.car", &bad);
        let out = verify(&p, &key.to_string()).fails();
        assert!(out.stdout.starts_with("FAILED"), "{what}: {}", out.stdout);
        assert!(
            out.stdout.contains(what),
            "flipping the {what} is named: {}",
            out.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cars_are_refused_and_nothing_is_imported() {
    let a = TestHub::spawn().await;
    push_song(&a, "alice/song").await;
    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let (root, secs) = sections(&car).await;
    let work = tempfile::tempdir().unwrap();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    cases.push(("truncated", car[..car.len() - 100].to_vec(), "truncated"));
    let mut flipped = car.clone();
    let (_, off, len) = secs.iter().find(|(c, ..)| c.codec() == RAW).unwrap();
    flipped[off + len / 2] ^= 0xff;
    cases.push(("bad block", flipped, "do not hash"));
    // A root that is an object, not a commit.
    let obj = secs.iter().find(|(c, ..)| c.codec() == RAW).unwrap().0;
    let wrong_root = {
        let mut v = musehub::car::header(&[obj]);
        let body_start = musehub::car::header(&[root]).len();
        v.extend_from_slice(&car[body_start..]);
        v
    };
    cases.push(("wrong root", wrong_root, "not a commit"));
    // A section that declares 2 GiB.
    let mut huge = musehub::car::header(&[root]);
    huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    huge.extend_from_slice(&[0u8; 64]);
    cases.push(("2 GiB section", huge, "over the"));
    // Missing blocks: the CAR without its file tree's leaves.
    let mut missing = musehub::car::header(&[root]);
    for (c, off, len) in &secs {
        if c.codec() == RAW && *len == MIB {
            continue;
        }
        missing.extend_from_slice(&musehub::car::section_prefix(c, *len));
        missing.extend_from_slice(&car[*off..off + len]);
    }
    cases.push(("missing blocks", missing, "not in the CAR"));
    // A cycle cannot be hashed consistently: a commit whose parent link points to itself
    // would need its own CID inside its bytes, so the block fails its hash.
    let mut cyclic = car.clone();
    let (_, off, _) = secs.iter().find(|(c, ..)| *c == root).unwrap();
    cyclic[off + 10] ^= 0x20;
    cases.push(("cycle", cyclic, "do not hash"));

    for (what, bytes, expect) in cases {
        // A hub of its own per case: objects a refused import checked and stored stay (unseen,
        // in no repo), and a later import may rightly take them as held.
        let b = TestHub::spawn().await;
        musehub(b.data_dir(), &["user", "add", "alice"]).ok();
        let p = write_temp(work.path(), "bad.car", &bytes);
        let out = musehub(
            b.data_dir(),
            &["car", "import", p.to_str().unwrap(), "--repo", "alice/song"],
        )
        .fails();
        assert!(
            out.stderr.contains(expect),
            "{what}: expected {expect:?} in: {}",
            out.stderr
        );
        let (s, _) = b.get("/alice/song/refs", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{what}: nothing was imported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_from_a_helia_peer_that_is_the_only_holder() {
    let a = TestHub::spawn().await;
    let song = push_song(&a, "alice/song").await;
    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let (root, _) = sections(&car).await;
    let work = tempfile::tempdir().unwrap();
    let path = write_temp(work.path(), "song.car", &car);
    a.server.shutdown().await.unwrap();
    let helia = HeliaServer::serve_car(&[&path]).await;
    assert_eq!(helia.info["roots"][0], root.to_string());
    let dir = work.path().join("from-helia");
    let data = work.path().join("client-data");
    let out = musehub_cmd(&data)
        .args([
            "clone",
            &root.to_string(),
            dir.to_str().unwrap(),
            "--peer",
            &helia.multiaddr(),
            "--timeout",
            "2m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clone from Helia: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check_clone(&dir, &song.head, &song.files_v2, 2);
}

/// A repo far over the Muse CLI's 64 MiB answer cap: its wire fetch is refused with a pointer
/// to `musehub clone`, which gets all of it through the CAR endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_repo_is_cloned_through_the_car_endpoint() {
    const STEMS: u64 = 6;
    const STEM: usize = 50 * MIB;
    let a = TestHub::spawn().await;
    let token = a.user("band").await;
    a.repo("band", "album", false).await;
    let stem = |i: u64| noise(100 + i, STEM + i as usize * 4099);
    let mut manifest = vec![("notes.txt".to_owned(), Id::of(b"take 12 is the one\n"))];
    for i in 0..STEMS {
        let bytes = stem(i);
        manifest.push((format!("stems/track-{i}.wav"), Id::of(&bytes)));
        let (s, b) = a
            .post(
                "/band/album/push/objects",
                Some(&token),
                crate::harness::objects_body(&[&bytes]),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    }
    let commit = Commit::with_manifest(&[], &manifest, "album stems", "2026-11-24T11:00:00+00:00");
    let (s, b) = a
        .push(
            "band/album",
            &token,
            &[b"take 12 is the one\n"],
            std::slice::from_ref(&commit),
            "main",
            false,
        )
        .await;
    assert!(s.is_success(), "{}", String::from_utf8_lossy(&b));

    let body = musehub::wire::encode(&crate::harness::map([
        ("want", crate::harness::ids(&[commit.id])),
        ("have", crate::harness::ids(&[])),
    ]));
    let (s, b) = a.post("/band/album/fetch", None, body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(crate::harness::detail(&b).contains("musehub clone"));

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("album");
    musehub(
        work.path(),
        &["clone", &a.url("/band/album"), dir.to_str().unwrap()],
    )
    .ok();
    assert_eq!(
        std::fs::read_to_string(dir.join(".muse/refs/heads/main")).unwrap(),
        commit.id.to_hex()
    );
    for i in 0..STEMS {
        let got = std::fs::read(dir.join(format!("stems/track-{i}.wav"))).unwrap();
        assert_eq!(Id::of(&got), Id::of(&stem(i)), "stem {i} is byte-identical");
    }
    assert_eq!(
        std::fs::read(dir.join("notes.txt")).unwrap(),
        b"take 12 is the one\n"
    );
}

/// A manifest big enough to be split into parts larger than an inline block: the parts are
/// block files, written before the push transaction, and everything still round-trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_manifest_is_split_into_file_parts_that_export_and_clone() {
    let a = TestHub::spawn().await;
    let files: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| {
            (
                format!("takes/take-{i:04}.mid"),
                format!("take {i}").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let (c, _) = push_one_commit(&a, "alice/takes", &refs, "3000 takes").await;
    let car = get_car(&a, "/alice/takes/commits/main/car").await;
    let (root, secs) = sections(&car).await;
    let parts = secs
        .iter()
        .filter(|(cid, off, len)| {
            cid.codec() == DAG_CBOR
                && musehub::dagcbor::decode(&car[*off..off + len])
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_text().map(str::to_owned)))
                    .as_deref()
                    == Some(dag::SNAPSHOT_PART)
        })
        .count();
    assert!(parts >= 2, "{parts} parts");
    let work = tempfile::tempdir().unwrap();
    let path = write_temp(work.path(), "takes.car", &car);
    assert_eq!(car_check(&path, &root.to_string())["ok"], true);
    let dir = work.path().join("takes");
    musehub(
        work.path(),
        &["clone", path.to_str().unwrap(), dir.to_str().unwrap()],
    )
    .ok();
    check_clone(&dir, &c.id, &files, 1);
    musehub(a.data_dir(), &["doctor"]).ok();
}

/// With only the hub's IPNS name (and its node as a peer): `musehub clone /ipns/…` finds the
/// repo's head through the signed index, and `musehub verify` finds the ref-state chain the
/// same way, with no CAR file and no HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_and_verify_through_the_hubs_ipns_name() {
    let hub = crate::ipfs::ipfs_hub(&[]).await;
    let song = push_song(&hub, "alice/song").await;
    let n = crate::ipfs::node(&hub);
    let peer = n.peer_id();
    let name = musehub::ipfs::ipns::name_to_string(&peer);
    // The push after start triggers a republish; wait for an index with the head's CID.
    let start = std::time::Instant::now();
    let head_cid = loop {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no index with alice/song's head"
        );
        let (s, b) = hub.get(&format!("/ipns/{name}?format=raw"), None).await;
        if s.is_success() {
            let v = musehub::dagcbor::decode(&b).expect("the index is DAG-CBOR");
            let head = v
                .get("repos")
                .and_then(|r| r.as_list())
                .and_then(|r| r.first())
                .and_then(|r| r.get("heads"))
                .and_then(|h| h.get("main"))
                .and_then(|l| l.as_link())
                .copied();
            if let Some(h) = head {
                break h;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let ma = format!("{}/p2p/{peer}", crate::ipfs::addrs(&hub).await[0]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("song");
    let client = work.path().join("client");
    let out = musehub_cmd(&client)
        .args([
            "clone",
            &format!("/ipns/{name}/alice/song"),
            dir.to_str().unwrap(),
        ])
        .args(["--peer", &ma, "--timeout", "1m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clone /ipns: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check_clone(&dir, &song.head, &song.files_v2, 2);
    let out = musehub_cmd(&client)
        .args(["verify", &head_cid.to_string(), "--key", &peer.to_string()])
        .args(["--peer", &ma, "--timeout", "1m"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK:"),
        "verify: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `musehub car import` killed with SIGKILL at some point of a 40 MiB import leaves nothing
/// half-recorded: the data directory is whole (`doctor`), the repo is absent or complete,
/// and the same import run again finishes with the same branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn car_import_killed_midway_leaves_nothing_half_recorded() {
    let a = TestHub::spawn().await;
    let stems: Vec<Vec<u8>> = (0..8).map(|i| noise(100 + i, 5 * MIB)).collect();
    let files: Vec<(String, &[u8])> = stems
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("stems/{i}.wav"), s.as_slice()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    push_one_commit(&a, "alice/song", &refs, "eight stems").await;
    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let work = tempfile::tempdir().unwrap();
    let path = write_temp(work.path(), "song.car", &car);
    let path = path.to_str().unwrap();

    let b = tempfile::tempdir().unwrap();
    musehub(b.path(), &["user", "add", "alice"]).ok();
    let import = || {
        musehub_cmd(b.path())
            .args(["car", "import", path, "--repo", "alice/song"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("car import starts")
    };
    // Kill sooner each time until a kill lands while the import runs.
    let mut killed_midway = false;
    for delay_ms in [400u64, 200, 100, 50, 20, 5] {
        let mut child = import();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let status = child.wait().unwrap();
        let doctor = musehub(b.path(), &["doctor", "--json"]);
        assert!(
            doctor.status.success(),
            "after a kill at {delay_ms} ms the data directory is whole: {}",
            doctor.stdout
        );
        if running && !status.success() {
            killed_midway = true;
            // Killed during the import: nothing of it is visible (no branch to export), or
            // all of it, if the kill came after its last transaction.
            let partial = work.path().join("partial.car");
            let export = musehub(
                b.path(),
                &[
                    "car",
                    "export",
                    "alice/song",
                    "-o",
                    partial.to_str().unwrap(),
                    "--history",
                ],
            );
            if export.status.success() {
                assert_eq!(
                    same_blocks(&std::fs::read(&partial).unwrap()).await,
                    same_blocks(&car).await,
                    "a visible import is complete"
                );
            }
            break;
        }
    }
    assert!(killed_midway, "some kill landed while the import ran");
    let done = musehub(b.path(), &["car", "import", path, "--repo", "alice/song"]).ok();
    assert!(done.stdout.contains("alice/song"), "{done:?}");
    let export = work.path().join("again.car");
    musehub(
        b.path(),
        &[
            "car",
            "export",
            "alice/song",
            "-o",
            export.to_str().unwrap(),
            "--history",
        ],
    )
    .ok();
    assert_eq!(
        same_blocks(&std::fs::read(&export).unwrap()).await,
        same_blocks(&car).await,
        "the finished import gives back the same commit and objects"
    );
    let (ok, report) = {
        let run = musehub(b.path(), &["doctor", "--json"]);
        (run.status.success(), run.stdout)
    };
    assert!(ok, "{report}");
}

/// A CAR's root (the commit; its CID covers the commit DAG) and its object blocks (ref-states,
/// signed by each hub, differ).
async fn same_blocks(car: &[u8]) -> (cid::Cid, BTreeSet<cid::Cid>) {
    let (root, secs) = sections(car).await;
    let blocks = secs
        .into_iter()
        .map(|(c, ..)| c)
        .filter(|c| c.codec() == RAW || c.codec() == DAG_PB)
        .collect();
    (root, blocks)
}

/// `car import` reads a CAR in one pass when its blocks come depth-first (as this hub and
/// `ipfs dag export` write them), including files whose leaves repeat (silence): the CAR
/// carries such a leaf once, and the import takes it again from the object it wrote. A CAR
/// in any other order is read by index instead, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn car_import_streams_depth_first_cars_and_indexes_any_other_order() {
    let a = TestHub::spawn().await;
    let silence = vec![0u8; MIB];
    // Leaves: silence ×3, a take, silence: the CAR holds the silent leaf once.
    let mut bounce = silence.repeat(3);
    bounce.extend(noise(7, MIB));
    bounce.extend(&silence);
    // Starts with two silent leaves the first file wrote already.
    let mut intro = silence.repeat(2);
    intro.extend(noise(8, MIB / 2));
    let notes = b"verse, chorus, verse".to_vec();
    // Paths sort "a.wav" before "bb.wav" (DAG-CBOR orders map keys by length first).
    let files = [
        ("a.wav", bounce.as_slice()),
        ("bb.wav", intro.as_slice()),
        ("notes.txt", notes.as_slice()),
    ];
    push_one_commit(&a, "alice/song", &files, "bounce").await;
    let car = get_car(&a, "/alice/song/commits/main/car?history=full").await;
    let (root, secs) = sections(&car).await;
    let silent = Id::of(&silence).raw_cid();
    assert_eq!(
        secs.iter().filter(|(c, ..)| *c == silent).count(),
        1,
        "the CAR carries the silent leaf once"
    );
    let work = tempfile::tempdir().unwrap();

    let import = |car: &[u8], name: &str| {
        let dir = work.path().join(name);
        musehub(&dir, &["user", "add", "alice"]).ok();
        let path = write_temp(work.path(), &format!("{name}.car"), car);
        let out = musehub(
            &dir,
            &[
                "car",
                "import",
                path.to_str().unwrap(),
                "--repo",
                "alice/song",
            ],
        )
        .ok();
        let export = work.path().join(format!("{name}-again.car"));
        musehub(
            &dir,
            &[
                "car",
                "export",
                "alice/song",
                "-o",
                export.to_str().unwrap(),
                "--history",
            ],
        )
        .ok();
        let doctor = musehub(&dir, &["doctor", "--json"]);
        assert!(doctor.status.success(), "{name}: {}", doctor.stdout);
        (out, std::fs::read(export).unwrap())
    };

    let (out, again) = import(&car, "streamed");
    assert!(
        !out.stderr.contains("by index"),
        "read in one pass: {}",
        out.stderr
    );
    assert_eq!(same_blocks(&again).await, same_blocks(&car).await);

    // The same blocks, last first: no leaf follows its tree.
    let mut reversed = musehub::car::header(&[root]);
    for (c, off, len) in secs.iter().rev() {
        reversed.extend_from_slice(&musehub::car::section_prefix(c, *len));
        reversed.extend_from_slice(&car[*off..off + len]);
    }
    let (out, again) = import(&reversed, "reversed");
    assert!(
        out.stderr.contains("by index"),
        "read by index: {}",
        out.stderr
    );
    assert_eq!(same_blocks(&again).await, same_blocks(&car).await);
}
