//! The hub's IPNS name: a signed record (V2 with the V1 compatibility fields) under the node
//! key, pointing to a DAG-CBOR index of the hub's public repos and branch heads, its URLs and
//! listen addresses. Published at start, after any change to what it lists (hub events:
//! pushes, imports, replication, releases, visibility; at most every [`MIN_REPUBLISH_GAP`])
//! and every [`REPUBLISH`], valid for [`VALIDITY`].
//!
//! The index (one block, `musehub-index` version 1):
//!
//! ```text
//! { "type": "musehub-index", "version": 1, "peer_id": "12D3Koo…", "urls": ["https://…"],
//!   "addrs": ["/ip4/…/tcp/4001/p2p/12D3Koo…"], "updated": "2026-11-24T10:00:00Z",
//!   "repos": [ { "owner": "alice", "slug": "song", "default_branch": "main",
//!                "branches": { "main": "<64-hex Muse commit id>" },
//!                "heads": { "main": <commit CID link> }, "ref_state": <newest ref-state link> } ],
//!   "truncated": false }
//! ```

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use cid::Cid;
use libp2p::kad;
use sha2::{Digest, Sha256};

use crate::cids::{self, DAG_CBOR, Id};
use crate::dagcbor::{Int, Value};
use crate::db::{self, repos};
use crate::ipfs::{Node, ipns};

/// Kubo's republish interval.
pub const REPUBLISH: Duration = Duration::from_secs(4 * 3600);
/// Record lifetime: DHT servers drop records 48 h after receiving them anyway.
pub const VALIDITY: Duration = Duration::from_secs(48 * 3600);
/// The record's cache hint: short, because a push changes the index.
pub const TTL: Duration = Duration::from_secs(300);
/// Changes republish the index at most this often (each publish is one DHT put).
pub const MIN_REPUBLISH_GAP: Duration = Duration::from_secs(5);
/// The index must stay one block under the 1 MiB we create.
const MAX_INDEX: usize = 1024 * 1024;

/// Runs the publish schedule until the node stops. Only hubs with a data directory (for
/// the sequence number) publish.
pub(crate) async fn run(node: Node) {
    let Some(dir) = node.inner.data_dir.clone() else {
        return;
    };
    let shutdown = node.inner.shutdown.clone();
    let mut events = node.inner.hub.events().subscribe();
    // Let the swarm listen first so the index carries its addresses.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
    }
    let mut changed = true;
    // When the last publish was (none yet: publish now).
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        let since = last.map_or(Duration::MAX, |l| l.elapsed());
        if since >= REPUBLISH || (changed && since >= MIN_REPUBLISH_GAP) {
            changed = false;
            last = Some(tokio::time::Instant::now());
            match publish_once(&node, &dir).await {
                Ok(cid) => {
                    tracing::info!(target: "musehub::ipfs", name = %ipns::name_to_string(&node.peer_id()), index = %cid, "published the hub's IPNS record")
                }
                Err(e) => {
                    tracing::warn!(target: "musehub::ipfs", error = %e, "publishing the IPNS record failed")
                }
            }
        }
        // Sleep until the next publish is due, waking early for a change.
        let since = last.map_or(Duration::MAX, |l| l.elapsed());
        let wait = if changed {
            MIN_REPUBLISH_GAP.saturating_sub(since)
        } else {
            REPUBLISH.saturating_sub(since)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.next(), if !changed => match event {
                Some(e) => changed = e.changes_listing(),
                None => return,
            },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Builds and stores the index, signs a new record pointing to it and puts it in the DHT.
pub async fn publish_once(node: &Node, data_dir: &Path) -> Result<Cid> {
    let index = build_index(node).await?;
    let bytes = crate::dagcbor::encode(&index);
    let digest = Id(Sha256::digest(&bytes).into());
    let cid = cids::cid_of(DAG_CBOR, &digest);
    let hub = &node.inner.hub;
    hub.store()
        .put_block(digest, bytes.into())
        .await
        .context("storing the index block")?;
    hub.db()
        .write(move |c| db::published::publish(c, &digest, "index"))
        .await?;
    let sequence = next_sequence(data_dir)?;
    let value = format!("/ipfs/{cid}");
    let record = ipns::create(
        node.keypair(),
        value.as_bytes(),
        sequence,
        SystemTime::now() + VALIDITY,
        TTL,
        true,
    )
    .context("signing the IPNS record")?;
    *node
        .inner
        .ipns_record
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
    node.put_record(kad::Record::new(ipns::record_key(&node.peer_id()), record))
        .await?;
    node.inner.metrics.ipns_published.add(1);
    Ok(cid)
}

impl Node {
    /// The newest IPNS record this node published (serialized), if any.
    pub fn own_ipns_record(&self) -> Option<Vec<u8>> {
        self.inner
            .ipns_record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves an IPNS name to its best valid record: our own record for our name, else
    /// the DHT (every answer validated, the best kept).
    pub async fn resolve_ipns(&self, name: &libp2p::PeerId) -> Result<(Vec<u8>, ipns::Validated)> {
        let now = SystemTime::now();
        let candidates = if *name == self.peer_id() {
            self.own_ipns_record().into_iter().collect()
        } else {
            self.get_record(ipns::record_key(name)).await?
        };
        let mut best: Option<(Vec<u8>, ipns::Validated)> = None;
        for c in candidates {
            let Ok(v) = ipns::validate(name, &c, now) else {
                continue;
            };
            let replace = match &best {
                None => true,
                Some((b, _)) => ipns::better(&c, b) == std::cmp::Ordering::Greater,
            };
            if replace {
                best = Some((c, v));
            }
        }
        best.ok_or_else(|| anyhow::anyhow!("no valid IPNS record found for {name}"))
    }
}

fn uint(v: u64) -> Value {
    Value::Int(Int::new(i128::from(v)).expect("every u64 is a CBOR integer"))
}

async fn build_index(node: &Node) -> Result<Value> {
    let list = node
        .inner
        .hub
        .db()
        .read(|c| {
            let mut out = Vec::new();
            for r in repos::list(c, None)? {
                if r.visibility != repos::Visibility::Public {
                    continue;
                }
                let mut branches = Vec::new();
                for (name, head) in repos::branches(c, r.id)? {
                    let cid = db::dag::commit_cid(c, &head)?;
                    branches.push((name, head, cid));
                }
                let state = db::dag::last_ref_state(c, r.id)?.map(|s| s.cid);
                out.push((r, branches, state));
            }
            Ok::<_, db::Error>(out)
        })
        .await?;
    let addrs: Vec<Value> = node
        .dial_addrs()
        .iter()
        .map(|a| Value::text(a.to_string()))
        .collect();
    let mut repos_v = Vec::new();
    let mut size = 0usize;
    let mut truncated = false;
    for (r, branches, state) in list {
        let link = |b: &[u8]| Cid::try_from(b).ok().map(Value::link);
        let heads = branches
            .iter()
            .filter_map(|(name, _, cid)| Some((name.clone(), link(cid.as_deref()?)?)));
        let mut entry = Value::map([
            ("owner", Value::text(r.owner)),
            ("slug", Value::text(r.slug)),
            ("default_branch", Value::text(r.default_branch)),
            (
                "branches",
                Value::map(
                    branches
                        .iter()
                        .map(|(name, head, _)| (name.clone(), Value::text(head.to_hex()))),
                ),
            ),
            ("heads", Value::map(heads)),
        ]);
        if let (Value::Map(m), Some(s)) = (&mut entry, state.as_deref().and_then(link)) {
            m.insert("ref_state".into(), s);
        }
        size += crate::dagcbor::encode(&entry).len();
        if size > MAX_INDEX - 64 * 1024 {
            truncated = true;
            break;
        }
        repos_v.push(entry);
    }
    let urls: Vec<Value> = node
        .inner
        .public_urls
        .iter()
        .map(|u| Value::text(u.clone()))
        .collect();
    Ok(Value::map([
        ("type", Value::text("musehub-index")),
        ("version", uint(1)),
        ("peer_id", Value::text(node.peer_id().to_string())),
        ("urls", Value::list(urls)),
        ("addrs", Value::list(addrs)),
        (
            "updated",
            Value::text(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        ),
        ("repos", Value::list(repos_v)),
        ("truncated", Value::Bool(truncated)),
    ]))
}

/// The next IPNS sequence number, kept in `<data dir>/ipns.seq` so it keeps increasing
/// across restarts even if the clock does not (a Pi without a real-time clock).
fn next_sequence(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join("ipns.seq");
    let last = match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .with_context(|| format!("{} does not hold a number", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let next = last + 1;
    crate::fsutil::write_atomic(&path, next.to_string().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(next)
}
