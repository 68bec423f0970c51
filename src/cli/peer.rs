//! `musehub peer add|list|remove`: the hubs this hub replicates from. A running hub picks
//! changes up within a second.

use anyhow::{Result, bail};

use crate::config::Config;
use crate::db::peers::{self, Policy};
use crate::db::unix_now;
use crate::server::open_hub;

pub(super) fn add(
    config: &Config,
    url: &str,
    repo: Option<String>,
    owner: Option<String>,
    all: bool,
) -> Result<()> {
    let policy = match (repo, owner, all) {
        (Some(r), None, false) => Policy::Repo(r),
        (None, Some(o), false) => Policy::Owner(o),
        (None, None, _) => Policy::All,
        _ => bail!("choose one of --repo OWNER/NAME, --owner HANDLE or --all"),
    };
    let hub = open_hub(config)?;
    let peer =
        super::runtime()?.block_on(crate::federation::add_peer(&hub, url, policy, "manual"))?;
    println!(
        "Following {} on {}. A running hub starts replicating within a second; `musehub peer list` shows how it goes.",
        peer.policy.describe(),
        peer.url
    );
    Ok(())
}

pub(super) fn remove(config: &Config, url: &str) -> Result<()> {
    let url = crate::federation::normalize_url(url)?;
    let hub = open_hub(config)?;
    let u = url.clone();
    if !hub.db().write_blocking(move |tx| peers::remove(tx, &u))? {
        bail!("{url} is not a peer of this hub (see `musehub peer list`)");
    }
    println!("No longer following {url}. Its replicas stay here, read-only.");
    Ok(())
}

pub(super) fn list(config: &Config, json: bool) -> Result<()> {
    let hub = open_hub(config)?;
    let list = hub.db().read_blocking(peers::list)?;
    let now = unix_now();
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|p| {
                serde_json::json!({
                    "url": p.url,
                    "peer_id": p.peer_id,
                    "policy": p.policy.kind(),
                    "scope": p.policy.scope(),
                    "source": p.source,
                    "status": p.status,
                    "lag_commits": p.lag_commits,
                    "lag_seconds": p.lag_seconds(now),
                    "last_sync": p.last_sync,
                    "last_error": p.last_error,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "No peers yet. Follow a hub with: musehub peer add https://hub.example:8443 [--owner HANDLE | --repo OWNER/NAME]"
        );
        return Ok(());
    }
    for p in &list {
        let since = p
            .last_sync
            .map_or("never".to_owned(), |t| format!("{}s ago", (now - t).max(0)));
        println!(
            "{}\t{}\t{}\tlag {} commits, {}s\tlast sync {}{}",
            p.url,
            p.policy.describe(),
            p.status,
            p.lag_commits,
            p.lag_seconds(now),
            since,
            p.last_error
                .as_deref()
                .map(|e| format!("\terror: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
