//! `musehub car export|import`, `clone`, `pull` and `verify`: a repo's history as IPFS
//! blocks, without any hub's wire API.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cid::Cid;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::cids::{DAG_CBOR, Id};
use crate::clone::{self, CarIndex, RepoMeta, Source};
use crate::config::Config;
use crate::dag;
use crate::ipfs::{Node, ipns};
use crate::server::open_hub;

use super::progress::Progress;

// ---------------------------------------------------------------------------------------------
// car export / import

pub(super) fn car_export(
    config: &Config,
    repo: &str,
    rev: Option<&str>,
    out: &Path,
    history: bool,
) -> Result<()> {
    let (owner, slug) = super::split_repo(repo)?;
    let hub = open_hub(config)?;
    super::runtime()?.block_on(async move {
        let repo = hub
            .repo_for_operator(owner, slug)
            .await
            .map_err(|_| anyhow!("no repository {owner}/{slug} on this hub"))?
            .readable();
        let rev = rev.unwrap_or(&repo.default_branch).to_owned();
        let commit = hub.resolve_commit(&repo, &rev).await?;
        let plan = hub.plan_car(&repo, commit, history, Vec::new()).await?;
        let (root, total, blocks) = (plan.root(), plan.byte_len(), plan.block_count());
        let tmp = part_path(out);
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?;
        let bar = Progress::new("exporting");
        let mut stream = hub.car_stream(plan);
        let mut done = 0u64;
        let r: Result<()> = async {
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await?;
                done += chunk.len() as u64;
                bar.show(done, Some(total), None, false);
            }
            file.sync_all().await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        bar.show(done, Some(total), None, true);
        tokio::fs::rename(&tmp, out).await?;
        println!(
            "wrote {} ({blocks} blocks, {done} bytes)\nroot: {root} (commit {commit})",
            out.display()
        );
        Ok(())
    })
}

fn part_path(p: &Path) -> PathBuf {
    p.with_file_name(format!(
        ".{}.part",
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "musehub".into())
    ))
}

pub(super) fn car_import(config: &Config, file: &Path, repo: Option<&str>) -> Result<()> {
    let hub = open_hub(config)?;
    super::runtime()?.block_on(async move {
        let bar = Progress::new("importing");
        let report = hub
            .import_car(file, repo, &Default::default(), &|b, i, n| bar.show(b, None, Some((i, n)), false))
            .await
            .with_context(|| format!("refused {}; nothing was imported", file.display()))?;
        bar.show(report.bytes, None, Some((report.objects, report.objects)), true);
        println!(
            "imported into {}: {} commits, {} snapshots, {} objects ({} bytes)",
            report.repo, report.commits, report.snapshots, report.objects, report.bytes
        );
        for (b, head) in &report.branches {
            println!("  {b} -> {head}");
        }
        if report.missing_parents > 0 {
            println!(
                "note: {} parent commit(s) were not in the CAR (shallow history); export with --history to include them",
                report.missing_parents
            );
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// IPFS sources

pub(super) struct NetArgs {
    pub peers: Vec<String>,
    pub timeout: Duration,
}

/// A short-lived IPFS client node over a throwaway data directory (removed on drop).
struct Client {
    node: Node,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn ipfs_client(config: &Config, net: &NetArgs) -> Result<Client> {
    let peers = super::ipfs::parse_peers(&net.peers)?;
    let dir = std::env::temp_dir().join(format!("musehub-client-{}", crate::hub::new_uuid()));
    let guard = TempDir(dir.clone());
    let mut cfg = config.clone();
    cfg.paths.data_dir = dir;
    cfg.ipfs = super::ipfs::client_ipfs(config);
    let hub = open_hub(&cfg)?;
    let shutdown = CancellationToken::new();
    let node = super::ipfs::client_node(hub, cfg.ipfs.clone(), peers, shutdown.clone()).await?;
    Ok(Client {
        node,
        shutdown,
        _dir: guard,
    })
}

/// What `clone` was given.
enum Origin {
    Hub(String),
    Car(PathBuf),
    Cid(Cid),
    Ipns(libp2p::PeerId, Option<String>),
}

fn parse_origin(s: &str) -> Result<Origin> {
    if s.starts_with("https://") || s.starts_with("http://") {
        return Ok(Origin::Hub(s.trim_end_matches('/').to_owned()));
    }
    if let Some(rest) = s.strip_prefix("/ipns/") {
        let (name, repo) = match rest.split_once('/') {
            Some((n, r)) => (n, Some(r.trim_matches('/').to_owned())),
            None => (rest, None),
        };
        let peer = ipns::parse_name(name)
            .with_context(|| format!("{name:?} is not an IPNS name (k51… or 12D3Koo…)"))?;
        return Ok(Origin::Ipns(peer, repo));
    }
    let path = Path::new(s);
    if path.is_file() {
        return Ok(Origin::Car(path.to_owned()));
    }
    let cid_text = s.strip_prefix("/ipfs/").unwrap_or(s);
    match Cid::try_from(cid_text) {
        Ok(cid) if cid.codec() == DAG_CBOR => Ok(Origin::Cid(cid)),
        Ok(cid) => bail!("{cid} is not a commit CID (commit CIDs are DAG-CBOR: bafyrei…)"),
        Err(_) => bail!(
            "{s:?} is neither a hub URL, a CAR file, a commit CID nor /ipns/<name>[/owner/slug]"
        ),
    }
}

/// The hub index an IPNS name points to, and its CID.
async fn hub_index(node: &Node, name: &libp2p::PeerId) -> Result<(Cid, crate::dagcbor::Value)> {
    let (_, v) = node.resolve_ipns(name).await?;
    let path =
        String::from_utf8(v.value).map_err(|_| anyhow!("the IPNS record's value is not a path"))?;
    let cid = path
        .strip_prefix("/ipfs/")
        .and_then(|c| Cid::try_from(c).ok())
        .ok_or_else(|| anyhow!("the IPNS record points to {path:?}, not /ipfs/<cid>"))?;
    let (data, _) = node.fetch_block(&cid).await?;
    let index = crate::dagcbor::decode(&data).map_err(|e| anyhow!("the hub index {cid}: {e}"))?;
    Ok((cid, index))
}

/// The commit CID an IPNS name's hub index gives for `repo` (or its only repo).
async fn resolve_index(
    node: &Node,
    peer: &libp2p::PeerId,
    repo: Option<&str>,
) -> Result<(Cid, RepoMeta)> {
    let (cid, index) = hub_index(node, peer).await?;
    let repos = index
        .get("repos")
        .and_then(|r| r.as_list())
        .ok_or_else(|| anyhow!("{cid} is not a musehub index"))?;
    let name = |r: &crate::dagcbor::Value| {
        format!(
            "{}/{}",
            r.get("owner").and_then(|v| v.as_text()).unwrap_or(""),
            r.get("slug").and_then(|v| v.as_text()).unwrap_or("")
        )
    };
    let entry = match repo {
        Some(want) => repos.iter().find(|r| name(r) == want),
        None if repos.len() == 1 => repos.first(),
        None => bail!(
            "/ipns/{peer} lists {} repositories; add one to the name: {}",
            repos.len(),
            repos
                .iter()
                .map(|r| format!("/ipns/{peer}/{}", name(r)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    .ok_or_else(|| anyhow!("/ipns/{peer} lists no repository {}", repo.unwrap_or("")))?;
    let branch = entry
        .get("default_branch")
        .and_then(|v| v.as_text())
        .unwrap_or("main")
        .to_owned();
    let head = entry
        .get("heads")
        .and_then(|h| h.get(&branch))
        .and_then(|l| l.as_link())
        .copied()
        .ok_or_else(|| {
            anyhow!(
                "the index names no commit CID for {}'s {branch}",
                name(entry)
            )
        })?;
    Ok((
        head,
        RepoMeta {
            repo_id: crate::hub::new_uuid(),
            domain: "midi".into(),
            branch,
            remote: None,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// clone

pub(super) fn clone(config: &Config, from: &str, dir: &Path, net: NetArgs) -> Result<()> {
    let origin = parse_origin(from)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let created = !dir.exists();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let r = super::runtime()?.block_on(clone_into(config, origin, dir, &net));
    if r.is_err() {
        // Nothing half-written stays behind.
        if created {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            let _ = std::fs::remove_dir_all(dir.join(".muse"));
        }
    }
    r
}

async fn clone_into(config: &Config, origin: Origin, dir: &Path, net: &NetArgs) -> Result<()> {
    let bar = Progress::new("objects");
    let show = |b: u64, i: usize, n: usize| bar.show(b, None, Some((i, n)), false);
    let (hist, src, meta) = match origin {
        Origin::Hub(url) => {
            let (car_path, meta) = download_car(&url, dir, None, &[]).await?;
            let car = CarIndex::open(&car_path, true).await?;
            let head = car.roots[0];
            let src = Source::Car(car);
            let hist = clone::load(&src, head, true, &HashSet::new()).await?;
            let _ = std::fs::remove_file(&car_path);
            (hist, src, meta)
        }
        Origin::Car(path) => {
            let car = CarIndex::open(&path, true).await?;
            let head = car.roots[0];
            let states = clone::ref_states_in(&car).await?;
            let src = Source::Car(car);
            let hist = clone::load(&src, head, true, &HashSet::new()).await?;
            let meta = meta_from(&hist, states.first().map(|(_, s)| s));
            (hist, src, meta)
        }
        ipfs_origin => {
            let client = ipfs_client(config, net).await?;
            let (cid, named) = match ipfs_origin {
                Origin::Cid(cid) => (cid, None),
                Origin::Ipns(peer, repo) => {
                    let (cid, meta) = tokio::time::timeout(
                        net.timeout,
                        resolve_index(&client.node, &peer, repo.as_deref()),
                    )
                    .await
                    .map_err(|_| {
                        anyhow!("gave up resolving /ipns/{peer} after {:?}", net.timeout)
                    })??;
                    (cid, Some(meta))
                }
                Origin::Hub(_) | Origin::Car(_) => unreachable!("handled above"),
            };
            let src = Source::Ipfs(client.node.clone());
            let hist =
                tokio::time::timeout(net.timeout, clone::load(&src, cid, true, &HashSet::new()))
                    .await
                    .map_err(|_| {
                        anyhow!(
                            "gave up after {:?}: no peer sent the history of {cid}",
                            net.timeout
                        )
                    })??;
            let mut meta = meta_from(&hist, None);
            if let Some(named) = named {
                meta.branch = named.branch;
            }
            let r = write_repo(&src, &hist, dir, &meta, &show, net.timeout).await;
            drop(client);
            r?;
            return finish(dir, &hist, &meta, &bar);
        }
    };
    write_repo(
        &src,
        &hist,
        dir,
        &meta,
        &show,
        Duration::from_secs(24 * 3600),
    )
    .await?;
    finish(dir, &hist, &meta, &bar)
}

async fn write_repo(
    src: &Source,
    hist: &clone::History,
    dir: &Path,
    meta: &RepoMeta,
    show: &(dyn Fn(u64, usize, usize) + Sync),
    timeout: Duration,
) -> Result<()> {
    tokio::time::timeout(timeout, clone::write_new_repo(src, hist, dir, meta, show))
        .await
        .map_err(|_| anyhow!("gave up after {timeout:?} fetching the objects"))?
}

fn finish(dir: &Path, hist: &clone::History, meta: &RepoMeta, bar: &Progress) -> Result<()> {
    let head = hist.head();
    let bytes: u64 = hist
        .objects
        .keys()
        .filter_map(|o| std::fs::metadata(clone::object_path(&dir.join(".muse"), o)).ok())
        .map(|m| m.len())
        .sum();
    bar.show(
        bytes,
        None,
        Some((hist.objects.len(), hist.objects.len())),
        true,
    );
    println!(
        "cloned into {}: {} commits, {} files; HEAD is {} at {}",
        dir.display(),
        hist.commits.len(),
        hist.snapshots
            .get(&head.node.snapshot_id()?)
            .map_or(0, |s| s.entries.len()),
        meta.branch,
        head.id
    );
    if !hist.missing_parents.is_empty() {
        println!(
            "note: the history stops early: {} parent commit(s) were not available",
            hist.missing_parents.len()
        );
    }
    Ok(())
}

/// Repository facts from a ref-state when there is one, else from the head commit.
fn meta_from(hist: &clone::History, state: Option<&dag::RefState>) -> RepoMeta {
    match state {
        Some(s) => RepoMeta {
            repo_id: s.repo_id.clone(),
            domain: s.domain.clone(),
            branch: s.branch.clone(),
            remote: None,
        },
        None => RepoMeta {
            repo_id: crate::hub::new_uuid(),
            domain: "midi".into(),
            branch: hist.head().node.branch().unwrap_or("main").to_owned(),
            remote: None,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// talking to a hub over HTTP (its CAR endpoint only)

pub(super) fn http_client() -> Result<reqwest::Client> {
    Ok(crate::tls::http_client_builder()?
        .connect_timeout(Duration::from_secs(20))
        .build()?)
}

/// The Muse CLI's token for this hub, from `~/.muse/identity.toml` (keyed by host[:port]).
fn token_for(url: &reqwest::Url) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(Path::new(&home).join(".muse/identity.toml")).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let host = url.host_str()?;
    let key = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    table
        .get(&key)?
        .get("token")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let mut req = client.get(parsed.clone());
    if let Some(t) = token_for(&parsed) {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.with_context(|| format!("GET {url}"))?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("GET {url}: {status}: {detail}");
    }
    Ok(res)
}

/// The repo's refs (wire `GET refs`): repo id, domain, default branch and heads.
async fn hub_refs(client: &reqwest::Client, url: &str) -> Result<(RepoMeta, Vec<(String, Id)>)> {
    let bytes = get(client, &format!("{url}/refs")).await?.bytes().await?;
    let v = crate::wire::decode(&bytes)?;
    let f = crate::wire::Fields::of(&v, "refs")?;
    let mut heads = Vec::new();
    if let Some(rmpv::Value::Map(m)) = f.get("branch_heads") {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (k.as_str(), v.as_str().and_then(|s| Id::parse(s).ok())) {
                heads.push((k.to_owned(), v));
            }
        }
    }
    Ok((
        RepoMeta {
            repo_id: f.opt_str("repo_id")?.unwrap_or_default().to_owned(),
            domain: f.opt_str("domain")?.unwrap_or("midi").to_owned(),
            branch: f.opt_str("default_branch")?.unwrap_or("main").to_owned(),
            remote: Some(url.to_owned()),
        },
        heads,
    ))
}

/// Downloads the CAR of `branch` (default: the hub's default branch) with its history into
/// `<dir>/.muse/`, leaving out what `haves` covers.
async fn download_car(
    url: &str,
    dir: &Path,
    branch: Option<&str>,
    haves: &[Id],
) -> Result<(PathBuf, RepoMeta)> {
    let client = http_client()?;
    let (mut meta, heads) = hub_refs(&client, url).await?;
    if let Some(b) = branch {
        meta.branch = b.to_owned();
    }
    if !heads.iter().any(|(b, _)| *b == meta.branch) {
        bail!(
            "{url} has no branch {:?} (an empty repository?)",
            meta.branch
        );
    }
    let mut car_url = format!("{url}/commits/{}/car?history=full", meta.branch);
    for h in haves {
        car_url.push_str(&format!("&have={h}"));
    }
    let res = get(&client, &car_url).await?;
    let total = res.content_length();
    let muse = dir.join(".muse");
    std::fs::create_dir_all(&muse)?;
    let path = muse.join("download.car");
    let mut file = tokio::fs::File::create(&path).await?;
    let bar = Progress::new("downloading");
    let mut done = 0u64;
    let mut body = res.bytes_stream();
    {
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("downloading {car_url}"))?;
            file.write_all(&chunk).await?;
            done += chunk.len() as u64;
            bar.show(done, total, None, false);
        }
        file.flush().await?;
    }
    bar.show(done, total, None, true);
    if let Some(t) = total
        && t != done
    {
        bail!("the download stopped after {done} of {t} bytes");
    }
    Ok((path, meta))
}

// ---------------------------------------------------------------------------------------------
// pull

pub(super) fn pull(dir: &Path) -> Result<()> {
    super::runtime()?.block_on(pull_into(dir))
}

async fn pull_into(dir: &Path) -> Result<()> {
    let muse = dir.join(".muse");
    let config: toml::Table = std::fs::read_to_string(muse.join("config.toml"))
        .with_context(|| {
            format!(
                "{} is not a Muse repository (no .muse/config.toml)",
                dir.display()
            )
        })?
        .parse()
        .context("reading .muse/config.toml")?;
    let url = config
        .get("remotes")
        .and_then(|r| r.get("origin"))
        .and_then(|o| o.get("url"))
        .and_then(|u| u.as_str())
        .ok_or_else(|| anyhow!("this repository has no remote 'origin' (add one with: muse remote add origin <hub url>)"))?
        .trim_end_matches('/')
        .to_owned();
    let head = std::fs::read_to_string(muse.join("HEAD")).context("reading .muse/HEAD")?;
    let branch = head
        .trim()
        .strip_prefix("ref: refs/heads/")
        .ok_or_else(|| anyhow!("HEAD is detached; check out a branch first"))?
        .to_owned();
    let local = read_id(&muse.join("refs/heads").join(&branch));
    let tracking = read_id(&muse.join("remotes/origin").join(&branch));
    let haves: Vec<Id> = [local, tracking]
        .into_iter()
        .flatten()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let client = http_client()?;
    let (_, heads) = hub_refs(&client, &url).await?;
    let Some((_, remote_head)) = heads.iter().find(|(b, _)| *b == branch) else {
        bail!("{url} has no branch {branch:?}");
    };
    if Some(*remote_head) == local
        || muse
            .join("commits")
            .join(format!("{remote_head}.json"))
            .exists()
            && Some(*remote_head) == tracking
    {
        println!("already up to date ({branch} at {remote_head})");
        return Ok(());
    }
    let (car_path, _) = download_car(&url, dir, Some(&branch), &haves).await?;
    let car = CarIndex::open(&car_path, true).await?;
    let head_cid = car.roots[0];
    let src = Source::Car(car);
    let stop: HashSet<Id> = haves.iter().copied().collect();
    let hist = clone::load(&src, head_cid, true, &stop).await?;
    let bar = Progress::new("objects");
    clone::write_history(&src, &hist, &muse, &|b, i, n| {
        bar.show(b, None, Some((i, n)), false)
    })
    .await?;
    let _ = std::fs::remove_file(&car_path);
    let new_head = hist.head().id;
    clone::write_atomic(
        &muse.join("remotes/origin").join(&branch),
        new_head.to_hex().as_bytes(),
    )?;
    // Fast-forward the branch and the working tree when the local head is behind and the
    // tree is clean; otherwise leave the merge to the Muse CLI.
    let fast_forward = match local {
        None => true,
        Some(l) => hist
            .commits
            .iter()
            .any(|c| c.node.parent_ids().map(|p| p.contains(&l)).unwrap_or(false)),
    };
    if !fast_forward {
        println!(
            "fetched {branch} at {new_head} into remotes/origin/{branch}; your branch has diverged: merge it with `muse pull origin {branch}`"
        );
        return Ok(());
    }
    let old_snap = match local {
        Some(l) => Some(read_manifest(&muse, &l)?),
        None => None,
    };
    if let Some(old) = &old_snap
        && let Some(path) = dirty_path(dir, old)?
    {
        println!(
            "fetched {branch} at {new_head} into remotes/origin/{branch}; not updating your files because {path} has local changes"
        );
        return Ok(());
    }
    let snap = hist
        .snapshots
        .get(&hist.head().node.snapshot_id()?)
        .ok_or_else(|| anyhow!("the new head's snapshot was not loaded"))?;
    if let Some(old) = &old_snap {
        let keep: HashSet<&str> = snap.entries.iter().map(|e| e.path.as_str()).collect();
        for path in old.keys().filter(|p| !keep.contains(p.as_str())) {
            crate::muse::check_path(path)?;
            let _ = std::fs::remove_file(dir.join(path));
        }
    }
    clone::checkout(&muse, dir, snap)?;
    clone::write_atomic(
        &muse.join("refs/heads").join(&branch),
        new_head.to_hex().as_bytes(),
    )?;
    bar.show(0, None, None, true);
    println!(
        "{branch}: fast-forwarded to {new_head} ({} new commit(s), {} new object(s))",
        hist.commits.len(),
        hist.objects.len()
    );
    Ok(())
}

fn read_id(path: &Path) -> Option<Id> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| Id::parse(s.trim()).ok())
}

/// The manifest of a local commit's snapshot.
fn read_manifest(muse: &Path, commit: &Id) -> Result<std::collections::BTreeMap<String, Id>> {
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(
        muse.join("commits").join(format!("{commit}.json")),
    )?)?;
    let sid = c["snapshot_id"].as_str().unwrap_or_default();
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(
        muse.join("snapshots").join(format!("{sid}.json")),
    )?)?;
    let mut out = std::collections::BTreeMap::new();
    for (p, v) in s["manifest"].as_object().into_iter().flatten() {
        if let Some(id) = v.as_str().and_then(|s| Id::parse(s).ok()) {
            out.insert(p.clone(), id);
        }
    }
    Ok(out)
}

/// The first tracked file whose bytes differ from the manifest, if any.
fn dirty_path(
    dir: &Path,
    manifest: &std::collections::BTreeMap<String, Id>,
) -> Result<Option<String>> {
    for (p, id) in manifest {
        crate::muse::check_path(p)?;
        match std::fs::read(dir.join(p)) {
            Ok(b) if Id::of(&b) == *id => {}
            _ => return Ok(Some(p.clone())),
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// verify

pub(super) fn verify(
    config: &Config,
    commit: &str,
    key: &str,
    car: Option<&Path>,
    net: NetArgs,
) -> Result<bool> {
    let signer = dag::parse_key(key)?;
    let cid_text = commit.strip_prefix("/ipfs/").unwrap_or(commit);
    let head = Cid::try_from(cid_text)
        .ok()
        .filter(|c| c.codec() == DAG_CBOR)
        .ok_or_else(|| anyhow!("{commit:?} is not a commit CID (bafyrei…)"))?;
    super::runtime()?.block_on(async move {
        let result = match car {
            Some(path) => {
                let car = CarIndex::open(path, false).await?;
                if car.roots.first() != Some(&head) {
                    println!(
                        "FAILED: {} is the CAR of {}, not of {head}",
                        path.display(),
                        car.roots[0]
                    );
                    return Ok(false);
                }
                let states = clone::ref_states_in(&car).await?;
                let src = Source::Car(car);
                check(&src, head, &signer, states).await
            }
            None => {
                let client = ipfs_client(config, &net).await?;
                let src = Source::Ipfs(client.node.clone());
                let r = tokio::time::timeout(net.timeout, async {
                    let states = states_from_ipns(&client.node, &signer).await?;
                    check(&src, head, &signer, states).await
                })
                .await
                .map_err(|_| anyhow!("gave up after {:?}", net.timeout))?;
                drop(client);
                r
            }
        };
        match result {
            Ok(msg) => {
                println!("OK: {msg}");
                Ok(true)
            }
            Err(e) => {
                println!("FAILED: {e:#}");
                Ok(false)
            }
        }
    })
}

/// The ref-state chain the key's IPNS index points to, newest first (at most 1,000).
async fn states_from_ipns(
    node: &Node,
    signer: &libp2p::PeerId,
) -> Result<Vec<(Cid, dag::RefState)>> {
    let (_, index) = hub_index(node, signer).await?;
    let mut out = Vec::new();
    for r in index
        .get("repos")
        .and_then(|r| r.as_list())
        .unwrap_or_default()
    {
        let mut next = r.get("ref_state").and_then(|l| l.as_link()).copied();
        while let Some(c) = next {
            if out.len() >= 1000 {
                break;
            }
            let (data, _) = node.fetch_block(&c).await?;
            let s = dag::RefState::decode(&data).map_err(|e| anyhow!("ref-state {c}: {e}"))?;
            next = s.prev;
            out.push((c, s));
        }
    }
    Ok(out)
}

/// Checks the whole DAG of `head` and that a ref-state signed by `signer` covers it.
async fn check(
    src: &Source,
    head: Cid,
    signer: &libp2p::PeerId,
    states: Vec<(Cid, dag::RefState)>,
) -> Result<String> {
    if let Source::Car(car) = src
        && let Some((cid, why)) = car.bad.iter().next()
    {
        let role = car_role(car, cid, src).await;
        bail!("the {role} {cid} is corrupt: {why}");
    }
    let hist = clone::load(src, head, false, &HashSet::new()).await?;
    let c = hist.head();
    let mut bytes = 0u64;
    for (oid, cid) in &hist.objects {
        bytes += clone::copy_object(src, oid, cid, &mut std::io::sink(), &|_| {}).await?;
    }
    let mut refused = Vec::new();
    let name = signer.to_string();
    for (cid, state) in &states {
        if !state.signatures.iter().any(|s| s.signer == name) {
            continue;
        }
        if let Err(e) = state.verify(signer) {
            refused.push(format!("ref-state {cid}: {e}"));
            continue;
        }
        if clone::covers(src, state, &c.id).await?.is_some() {
            return Ok(format!(
                "commit {} ({head}): {} objects ({bytes} bytes), its snapshot and the commit hash correctly; ref-state #{} of {} ({} at {}, {}) signed by {signer} covers it",
                c.id,
                hist.objects.len(),
                state.seq,
                state.repo,
                state.branch,
                state.commit_id,
                state.time
            ));
        }
    }
    if refused.is_empty() {
        bail!(
            "the commit's blocks are intact, but no ref-state signed by {signer} covers commit {}",
            c.id
        );
    }
    bail!("{}", refused.join("; "))
}

/// What a corrupt CAR block was meant to be, from the links of the good blocks.
async fn car_role(car: &CarIndex, bad: &Cid, src: &Source) -> String {
    for cid in &car.order {
        let Ok(data) = src.block(cid, "block").await else {
            continue;
        };
        if let Ok(n) = dag::decode_commit(&data) {
            if n.snapshot == *bad {
                return "snapshot node".into();
            }
            if n.parents.contains(bad) {
                return "parent commit node".into();
            }
        }
        if let Ok(s) = dag::decode_snapshot(&data) {
            match &s.body {
                dag::SnapshotBody::Entries(es) if es.iter().any(|e| e.cid == *bad) => {
                    return "object block".into();
                }
                dag::SnapshotBody::Parts(ps) if ps.contains(bad) => return "snapshot part".into(),
                _ => {}
            }
        }
        if let Ok(s) = dag::RefState::decode(&data)
            && s.commit == *bad
        {
            return "commit node".into();
        }
        if cid.codec() == crate::cids::DAG_PB
            && let Ok(n) = crate::storage::unixfs::decode_file_node(&data)
            && n.links.iter().any(|l| l.cid == *bad)
        {
            return "object block".into();
        }
    }
    if car.roots.first() == Some(bad) {
        return "commit node".into();
    }
    if bad.codec() == DAG_CBOR {
        "ref-state or DAG node".into()
    } else {
        "object block".into()
    }
}
