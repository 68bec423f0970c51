//! `musehub node` (the IPFS node's identity and state) and `musehub get` (fetch a file by
//! CID from IPFS).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DhtMode};
use crate::ipfs::{Node, ipns, node};
use crate::server::open_hub;

use super::progress::Progress;

pub(super) fn node(config: &Config, json: bool) -> Result<()> {
    let key = node::load_or_create_key(&config.paths.node_key())?;
    let peer_id = key.public().to_peer_id();
    let live = super::runtime()?.block_on(live_status(config));
    if json {
        let v = match live {
            Some(v) => v,
            None => serde_json::json!({
                "peer_id": peer_id.to_string(),
                "ipns_name": ipns::name_to_string(&peer_id),
                "running": false,
                "listen_addrs": config.ipfs.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("peer id:    {peer_id}");
    println!("IPNS name:  /ipns/{}", ipns::name_to_string(&peer_id));
    if !config.ipfs.enabled {
        println!("the IPFS node is turned off ([ipfs] enabled = false in musehub.toml)");
        return Ok(());
    }
    match live {
        Some(v) => {
            println!("listening on:");
            for a in v["listen_addrs"].as_array().into_iter().flatten() {
                println!("  {}", a.as_str().unwrap_or_default());
            }
            for a in v["external_addrs"].as_array().into_iter().flatten() {
                println!("  {} (confirmed reachable)", a.as_str().unwrap_or_default());
            }
            println!("connected peers: {}", v["peers"]);
            println!(
                "DHT: {} mode, {} peers in the routing table",
                if v["dht_server"].as_bool() == Some(true) {
                    "server"
                } else {
                    "client"
                },
                v["routing_table"]
            );
            println!(
                "announced CIDs: {} ({} waiting), last announcement: {}",
                v["provided"],
                v["provide_backlog"],
                v["last_provide"].as_str().unwrap_or("none yet")
            );
        }
        None => {
            println!("the hub is not running; it will listen on:");
            for a in &config.ipfs.listen {
                println!("  {a}");
            }
        }
    }
    Ok(())
}

/// The running hub's `/api/node`, if a hub serves this data directory's address.
async fn live_status(config: &Config) -> Option<serde_json::Value> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(3));
    let (client, url) = if config.tls {
        // The certificate names musehub.local; point that name at the listen address
        // without asking DNS.
        let pem = crate::tls::ca_pem(&config.paths.tls()).ok()?;
        let tls = crate::tls::client_config_trusting(&pem).ok()?;
        (
            builder
                .use_preconfigured_tls(tls)
                .resolve("musehub.local", addr)
                .build()
                .ok()?,
            format!("https://musehub.local:{}/api/node", addr.port()),
        )
    } else {
        (
            builder
                .use_preconfigured_tls(crate::tls::client_config_webpki())
                .build()
                .ok()?,
            format!("http://{addr}/api/node"),
        )
    };
    let res = client.get(url).send().await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_slice(&res.bytes().await.ok()?).ok()?;
    v["running"] = true.into();
    Some(v)
}

pub(super) struct GetArgs {
    pub cid: String,
    pub out: Option<PathBuf>,
    pub peers: Vec<String>,
    pub timeout: Duration,
}

pub(super) fn get(config: &Config, args: GetArgs) -> Result<()> {
    let cid = cid::Cid::try_from(args.cid.trim())
        .with_context(|| format!("{:?} is not a CID (they look like bafy… or Qm…)", args.cid))?;
    let ipfs = client_ipfs(config);
    let peers = parse_peers(&args.peers)?;
    let hub = open_hub(config)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let node = client_node(hub, ipfs, peers, shutdown.clone()).await?;
        // Peers still identifying are asked as they come: the fetch keeps asking new
        // Bitswap peers until it finds the block or nobody is left.
        let result = tokio::time::timeout(args.timeout, fetch_to(&node, &cid, args.out)).await;
        shutdown.cancel();
        match result {
            Ok(r) => r,
            Err(_) => bail!(
                "gave up on {cid} after {}: no peer sent it",
                humantime::format_duration(args.timeout)
            ),
        }
    })
}

/// The IPFS settings of a short-lived client: no listening, DHT client mode, no UPnP (it
/// runs with a fresh identity: the serving hub, if any, owns the data directory's key).
pub(super) fn client_ipfs(config: &Config) -> crate::config::IpfsConfig {
    let mut ipfs = config.ipfs.clone();
    ipfs.listen.clear();
    ipfs.dht_mode = DhtMode::Client;
    ipfs.upnp = false;
    ipfs
}

/// A short-lived client node over `hub`'s store with a fresh identity, dialling `peers`.
pub(super) async fn client_node(
    hub: crate::hub::Hub,
    ipfs: crate::config::IpfsConfig,
    peers: Vec<libp2p::Multiaddr>,
    shutdown: CancellationToken,
) -> Result<Node> {
    let node = Node::start(
        hub,
        ipfs,
        libp2p::identity::Keypair::generate_ed25519(),
        node::NodeOptions::default(),
        shutdown,
    )
    .await?;
    for p in peers {
        node.dial(p).await?;
    }
    Ok(node)
}

/// `--peer` values as multiaddrs.
pub(super) fn parse_peers(peers: &[String]) -> Result<Vec<libp2p::Multiaddr>> {
    peers
        .iter()
        .map(|p| {
            p.parse::<libp2p::Multiaddr>().with_context(|| {
                format!("--peer {p:?} is not a multiaddr like /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo…")
            })
        })
        .collect()
}

async fn fetch_to(node: &Node, cid: &cid::Cid, out: Option<PathBuf>) -> Result<()> {
    let bar = Progress::new("downloading");
    let progress = move |done: u64, total: u64| bar.show(done, Some(total), None, done >= total);
    match out {
        None => {
            let mut stdout = tokio::io::stdout();
            node.fetch_file(cid, &mut stdout, &progress).await?;
        }
        Some(path) if path.as_os_str() == "-" => {
            let mut stdout = tokio::io::stdout();
            node.fetch_file(cid, &mut stdout, &progress).await?;
        }
        Some(path) => {
            // Write beside the target and rename at the end: a failed fetch leaves nothing.
            let tmp = path.with_file_name(format!(
                ".{}.part",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "musehub-get".into())
            ));
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("creating {}", tmp.display()))?;
            let r = node.fetch_file(cid, &mut file, &progress).await;
            let size = match r {
                Ok(n) => n,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(e.into());
                }
            };
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, &path)
                .await
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("\nsaved {} ({size} bytes)", path.display());
        }
    }
    Ok(())
}
