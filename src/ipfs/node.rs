//! The libp2p swarm and its event loop.
//!
//! One task owns the [`Swarm`]; everything else talks to it through [`Command`]s. The
//! behaviours: identify, ping (js kad-dht pings a peer before it enters the routing table),
//! Kademlia on the Amino DHT (`/ipfs/kad/1.0.0`), AutoNAT (v1, what Kubo speaks), the relay
//! client with DCUtR hole punching, UPnP and mDNS when configured, and `libp2p-stream`,
//! which carries our Bitswap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use cid::Cid;
use futures_util::StreamExt;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, dcutr, identify, identity, kad, mdns, noise, ping, relay,
    tcp, upnp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{DhtMode, IpfsConfig};
use crate::hub::Hub;
use crate::ipfs::bitswap::{self, Bitswap, NodeRequest};
use crate::ipfs::records::HubRecords;
use crate::ipfs::{IpfsMetrics, ipns};

/// How our identify describes us.
pub const AGENT: &str = concat!("musehub/", env!("CARGO_PKG_VERSION"));

/// Provider records live 48 h on Amino DHT servers; we republish every 22 h.
pub const PROVIDER_TTL: Duration = Duration::from_secs(48 * 3600);
pub const PROVIDER_REPUBLISH: Duration = Duration::from_secs(22 * 3600);

/// Kademlia messages can carry 20 peers with many addresses plus a 10 KiB record; rust-libp2p's
/// 16 KiB default is too small for Kubo's answers.
const KAD_MAX_PACKET: usize = 1024 * 1024;

/// `start_providing` queries run at once (each contacts ~20 peers).
const PROVIDES_IN_FLIGHT: usize = 4;

/// Keys this hub announces as a provider (a key each, about 100 bytes with its heap bytes).
const OWN_PROVIDED_KEYS: usize = 1 << 22;

/// Keys other peers' provider records may name in our DHT store (about 3.1 KB each in kad's
/// memory store, so at most about 13 MB; a peer flooding ADD_PROVIDER meets this cap).
const OTHERS_PROVIDED_KEYS: usize = 4096;

/// A provide that reached no peer (offline, empty routing table) is retried after this.
const PROVIDE_RETRY: Duration = Duration::from_secs(300);

/// How often the node acts on hub events (one scan for a burst of them), retries provides
/// and refreshes its status.
const CONTENT_POLL: Duration = Duration::from_secs(2);

/// Every so often the whole list of public roots is compared with what was announced even
/// without events: a safety net (events cover pushes, imports, replication, visibility).
const FULL_RESCAN: Duration = Duration::from_secs(600);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<HubRecords>,
    autonat: autonat::Behaviour,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    upnp: Toggle<upnp::tokio::Behaviour>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    stream: libp2p_stream::Behaviour,
}

/// What other tasks ask of the swarm.
#[derive(Debug)]
pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    /// Find providers of a CID in the DHT; each one found is dialled at once.
    FindProviders(Cid, oneshot::Sender<Vec<PeerId>>),
    PutRecord(kad::Record),
    GetRecord(Vec<u8>, oneshot::Sender<Vec<Vec<u8>>>),
    /// Announce these CIDs now (new public content).
    Provide(Vec<Cid>),
}

/// A snapshot of the node's state for `musehub node`, `/metrics` and the UI.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub listen_addrs: Vec<Multiaddr>,
    pub external_addrs: Vec<Multiaddr>,
    pub peers: usize,
    pub dht_server: bool,
    pub routing_table: usize,
    pub provided: usize,
    pub provide_backlog: usize,
    pub last_provide: Option<SystemTime>,
}

/// A running IPFS node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.inner.peer_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) peer_id: PeerId,
    pub(crate) keypair: identity::Keypair,
    pub(crate) hub: Hub,
    pub(crate) config: IpfsConfig,
    pub(crate) bitswap: Bitswap,
    pub(crate) metrics: Arc<IpfsMetrics>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) status: Mutex<NodeStatus>,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: CancellationToken,
    /// The newest IPNS record this node published (serialized), for `/ipns/{self}`.
    pub(crate) ipns_record: Mutex<Option<Vec<u8>>>,
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// The hub's web addresses, written into the IPNS index.
    pub(crate) public_urls: Vec<String>,
}

impl Inner {
    fn status_mut(&self) -> std::sync::MutexGuard<'_, NodeStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a node keeps state and how it is reached over HTTP.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// The hub's data directory: the server publishes the IPNS record of a node with one
    /// ([`crate::ipfs::publish::run`]; its sequence number lives there). `musehub get`'s
    /// short-lived node has none.
    pub data_dir: Option<std::path::PathBuf>,
    pub public_urls: Vec<String>,
}

/// Loads the node key from `path`, creating it (mode 0600) on first start.
pub fn load_or_create_key(path: &Path) -> Result<identity::Keypair> {
    match std::fs::read(path) {
        Ok(bytes) => identity::Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("{} is not a libp2p key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = identity::Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .context("encoding the new node key")?;
            crate::fsutil::write_atomic(path, &bytes, 0o600)
                .with_context(|| format!("writing the node key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the node key {}", path.display())),
    }
}

impl Node {
    /// Starts the node: builds the swarm, listens, dials the bootstrap peers and runs until
    /// `shutdown` is cancelled. A node with no network still starts; it just finds no peers.
    pub async fn start(
        hub: Hub,
        config: IpfsConfig,
        keypair: identity::Keypair,
        options: NodeOptions,
        shutdown: CancellationToken,
    ) -> Result<Node> {
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = build_swarm(&keypair, &config)?;
        for addr in &config.listen {
            if let Err(e) = swarm.listen_on(addr.clone()) {
                tracing::warn!(target: "musehub::ipfs", %addr, error = %e, "cannot listen for IPFS peers there");
            }
        }
        let metrics = Arc::new(IpfsMetrics::default());
        let (node_tx, node_rx) = mpsc::unbounded_channel();
        let bitswap = Bitswap::new(
            swarm.behaviour().stream.new_control(),
            hub.clone(),
            metrics.clone(),
            node_tx,
        );
        let (commands, command_rx) = mpsc::channel(256);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config_webpki())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client for trustless gateways")?;
        let node = Node {
            inner: Arc::new(Inner {
                peer_id,
                keypair,
                hub,
                config: config.clone(),
                bitswap,
                metrics,
                commands,
                status: Mutex::new(NodeStatus::default()),
                http,
                shutdown: shutdown.clone(),
                ipns_record: Mutex::new(None),
                data_dir: options.data_dir,
                public_urls: options.public_urls,
            }),
        };
        for addr in &config.bootstrap {
            dial_bootstrap(&mut swarm, addr);
        }
        if !config.bootstrap.is_empty()
            && let Err(e) = swarm.behaviour_mut().kad.bootstrap()
        {
            tracing::debug!(target: "musehub::ipfs", error = %e, "no DHT bootstrap yet");
        }
        let event_loop = EventLoop {
            node: node.clone(),
            swarm,
            commands: command_rx,
            node_requests: node_rx,
            provides: HashMap::new(),
            provided: HashSet::new(),
            backlog: VecDeque::new(),
            retry: Vec::new(),
            find_providers: HashMap::new(),
            get_records: HashMap::new(),
            events: node.inner.hub.events().subscribe(),
            content_changed: true,
            last_rescan: tokio::time::Instant::now(),
        };
        tokio::spawn(event_loop.run(shutdown));
        tracing::info!(target: "musehub::ipfs", %peer_id, "IPFS node started");
        Ok(node)
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    pub fn keypair(&self) -> &identity::Keypair {
        &self.inner.keypair
    }

    pub fn status(&self) -> NodeStatus {
        self.inner.status_mut().clone()
    }

    pub fn metrics(&self) -> &IpfsMetrics {
        &self.inner.metrics
    }

    pub fn bitswap(&self) -> &Bitswap {
        &self.inner.bitswap
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn config(&self) -> &IpfsConfig {
        &self.inner.config
    }

    /// Listen addresses with `/p2p/<peer id>` appended, as other nodes dial them.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        let status = self.status();
        status
            .listen_addrs
            .iter()
            .chain(status.external_addrs.iter())
            .map(|a| {
                a.clone()
                    .with(libp2p::multiaddr::Protocol::P2p(self.inner.peer_id))
            })
            .collect()
    }

    /// Waits until the node listens on at least one address (for tests and `musehub node`).
    pub async fn wait_listening(&self, timeout: Duration) -> Result<Vec<Multiaddr>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let addrs = self.dial_addrs();
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the IPFS node is not listening on any address");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn command(&self, c: Command) -> Result<()> {
        self.inner
            .commands
            .send(c)
            .await
            .map_err(|_| anyhow::anyhow!("the IPFS node has stopped"))
    }

    /// Dials a peer by multiaddr (ending in `/p2p/<id>` or not).
    pub async fn dial(&self, addr: Multiaddr) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Dial(addr.clone(), tx)).await?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the IPFS node has stopped"))?
            .map_err(|e| anyhow::anyhow!("cannot dial {addr}: {e}"))
    }

    /// Providers of `cid` found in the DHT (dialled as they are found).
    pub async fn find_providers(&self, cid: Cid) -> Result<Vec<PeerId>> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::FindProviders(cid, tx)).await?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the IPFS node has stopped"))
    }

    /// Announces CIDs now (in addition to the node's own scan of public content).
    pub async fn provide(&self, cids: Vec<Cid>) -> Result<()> {
        self.command(Command::Provide(cids)).await
    }

    pub(crate) async fn put_record(&self, record: kad::Record) -> Result<()> {
        self.command(Command::PutRecord(record)).await
    }

    /// Every value the DHT returns for `key` (unvalidated; the caller validates).
    pub(crate) async fn get_record(&self, key: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::GetRecord(key, tx)).await?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the IPFS node has stopped"))
    }

    /// Stops the node.
    pub fn stop(&self) {
        self.inner.shutdown.cancel();
    }
}

fn dial_bootstrap(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
    if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
        swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
    }
    if let Err(e) = swarm.dial(addr.clone()) {
        tracing::debug!(target: "musehub::ipfs", %addr, error = %e, "cannot dial a bootstrap peer");
    }
}

fn build_swarm(keypair: &identity::Keypair, config: &IpfsConfig) -> Result<Swarm<Behaviour>> {
    let upnp_on = config.upnp;
    let mdns_on = config.mdns;
    let dht_mode = config.dht_mode;
    let no_bootstrap = config.bootstrap.is_empty();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .context("setting up TCP")?
        .with_quic()
        .with_dns()
        .context("setting up DNS resolution")?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .context("setting up the relay client")?
        .with_behaviour(|key, relay| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(kad::PROTOCOL_NAME);
            kad_config
                .set_max_packet_size(KAD_MAX_PACKET)
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                .set_record_ttl(Some(ipns::DHT_RECORD_LIFETIME))
                .set_provider_record_ttl(Some(PROVIDER_TTL))
                .set_provider_publication_interval(Some(PROVIDER_REPUBLISH))
                .set_query_timeout(Duration::from_secs(60));
            if no_bootstrap {
                // Nothing to refresh the routing table from (a LAN-only hub, tests): kad's
                // periodic bootstrap would only warn every few minutes.
                kad_config.set_periodic_bootstrap_interval(None);
            }
            // Other peers' records: a bounded few, since each provided key costs kad's memory
            // store about 3.1 KB (see `records`). Our own provided keys are kept apart.
            let store_config = kad::store::MemoryStoreConfig {
                max_provided_keys: OTHERS_PROVIDED_KEYS,
                max_records: 4096,
                max_value_bytes: ipns::MAX_RECORD_SIZE,
                ..Default::default()
            };
            let store = HubRecords::new(
                peer_id,
                kad::store::MemoryStore::with_config(peer_id, store_config),
                OWN_PROVIDED_KEYS,
            );
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            kad.set_mode(match dht_mode {
                DhtMode::Auto => None,
                DhtMode::Server => Some(kad::Mode::Server),
                DhtMode::Client => Some(kad::Mode::Client),
            });
            let mdns = if mdns_on {
                match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(target: "musehub::ipfs", error = %e, "mDNS for IPFS peers is unavailable");
                        None
                    }
                }
            } else {
                None
            };
            Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("ipfs/0.1.0".into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::default(),
                kad,
                autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
                relay,
                dcutr: dcutr::Behaviour::new(peer_id),
                upnp: Toggle::from(upnp_on.then(upnp::tokio::Behaviour::default)),
                mdns: Toggle::from(mdns),
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .context("setting up the IPFS behaviours")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// A query's answer channel and what it collected so far.
type Pending<T> = (oneshot::Sender<Vec<T>>, Vec<T>);

struct EventLoop {
    node: Node,
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    node_requests: mpsc::UnboundedReceiver<NodeRequest>,
    /// Running `start_providing` queries.
    provides: HashMap<kad::QueryId, Cid>,
    /// CIDs announced (or being announced); kad republishes them on its own schedule.
    provided: HashSet<Cid>,
    backlog: VecDeque<Cid>,
    retry: Vec<(tokio::time::Instant, Cid)>,
    find_providers: HashMap<kad::QueryId, Pending<PeerId>>,
    get_records: HashMap<kad::QueryId, Pending<Vec<u8>>>,
    /// Hub events: new content to announce, wants that may now be answered.
    events: crate::events::Subscription,
    /// Content changed since the last scan of public roots (true at start).
    content_changed: bool,
    last_rescan: tokio::time::Instant,
}

impl EventLoop {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(CONTENT_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (roots_tx, mut roots_rx) = mpsc::channel::<Vec<Cid>>(1);
        let mut scanning = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_event(event),
                Some(c) = self.commands.recv() => self.on_command(c),
                Some(r) = self.node_requests.recv() => match r {
                    NodeRequest::Disconnect(peer) => {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                },
                Some(roots) = roots_rx.recv() => {
                    scanning = false;
                    self.enqueue(roots);
                }
                Some(_) = self.events.next() => {
                    // Any change to a repo (content, branches, visibility) may change what
                    // is public; the scan below runs at the next tick, so a burst of events
                    // costs one scan.
                    self.content_changed = true;
                }
                _ = tick.tick() => {
                    let rescan = self.last_rescan.elapsed() >= FULL_RESCAN;
                    if (self.content_changed || rescan) && !scanning {
                        self.content_changed = false;
                        self.last_rescan = tokio::time::Instant::now();
                        scanning = true;
                        let node = self.node.clone();
                        let tx = roots_tx.clone();
                        tokio::spawn(async move {
                            node.inner.bitswap.recheck_wants().await;
                            let roots = if node.inner.config.provide {
                                match node.inner.hub.public_roots().await {
                                    Ok(r) => r,
                                    Err(e) => {
                                        tracing::warn!(target: "musehub::ipfs", error = %e, "listing public content failed");
                                        Vec::new()
                                    }
                                }
                            } else {
                                Vec::new()
                            };
                            let _ = tx.send(roots).await;
                        });
                    }
                    let now = tokio::time::Instant::now();
                    let (due, later): (Vec<_>, Vec<_>) =
                        self.retry.drain(..).partition(|(at, _)| *at <= now);
                    self.retry = later;
                    for (_, cid) in due {
                        self.backlog.push_back(cid);
                    }
                    self.pump_provides();
                    self.update_status();
                }
            }
        }
        tracing::info!(target: "musehub::ipfs", "IPFS node stopped");
    }

    fn enqueue(&mut self, cids: Vec<Cid>) {
        for cid in cids {
            if self.provided.insert(cid) {
                self.backlog.push_back(cid);
            }
        }
        self.pump_provides();
        self.update_status();
    }

    fn pump_provides(&mut self) {
        // With no DHT peer a provide query can reach nobody, yet each one walks the whole
        // routing table (a push of 15,000 objects spent 0.6 CPU-s on it). The record is kept
        // locally instead (kad answers GET_PROVIDERS from it) and announced once peers come.
        let alone = self.swarm.behaviour_mut().kad.kbuckets().next().is_none();
        while self.provides.len() < PROVIDES_IN_FLIGHT {
            let Some(cid) = self.backlog.pop_front() else {
                break;
            };
            let key = kad::RecordKey::new(&cid.hash().to_bytes());
            if alone {
                let record = kad::ProviderRecord::new(key, self.node.inner.peer_id, Vec::new());
                let store = self.swarm.behaviour_mut().kad.store_mut();
                match kad::store::RecordStore::add_provider(store, record) {
                    Ok(()) => self
                        .retry
                        .push((tokio::time::Instant::now() + PROVIDE_RETRY, cid)),
                    Err(e) => {
                        tracing::warn!(target: "musehub::ipfs", %cid, error = %e, "cannot announce");
                        self.provided.remove(&cid);
                    }
                }
                continue;
            }
            match self.swarm.behaviour_mut().kad.start_providing(key) {
                Ok(q) => {
                    self.provides.insert(q, cid);
                }
                Err(e) => {
                    tracing::warn!(target: "musehub::ipfs", %cid, error = %e, "cannot announce");
                    self.provided.remove(&cid);
                }
            }
        }
    }

    fn update_status(&mut self) {
        let swarm = &mut self.swarm;
        let routing_table = swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum();
        let mut status = self.node.inner.status_mut();
        status.listen_addrs = swarm.listeners().cloned().collect();
        status.external_addrs = swarm.external_addresses().cloned().collect();
        status.peers = swarm.connected_peers().count();
        status.dht_server = swarm.behaviour().kad.mode() == kad::Mode::Server;
        status.routing_table = routing_table;
        status.provided = self.provided.len();
        status.provide_backlog = self.backlog.len() + self.provides.len() + self.retry.len();
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Dial(addr, tx) => {
                if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
                let _ = tx.send(self.swarm.dial(addr).map_err(|e| e.to_string()));
            }
            Command::FindProviders(cid, tx) => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                let q = self.swarm.behaviour_mut().kad.get_providers(key);
                self.find_providers.insert(q, (tx, Vec::new()));
            }
            Command::PutRecord(record) => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    tracing::warn!(target: "musehub::ipfs", error = %e, "cannot publish the IPNS record");
                }
            }
            Command::GetRecord(key, tx) => {
                let key = kad::RecordKey::new(&key);
                let mut local = Vec::new();
                if let Some(r) =
                    kad::store::RecordStore::get(self.swarm.behaviour_mut().kad.store_mut(), &key)
                {
                    local.push(r.value.clone());
                }
                let q = self.swarm.behaviour_mut().kad.get_record(key);
                self.get_records.insert(q, (tx, local));
            }
            Command::Provide(cids) => self.enqueue(cids),
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(target: "musehub::ipfs", %address, "listening for IPFS peers");
                self.update_status();
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if self.node.inner.bitswap.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
                self.update_status();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.node.inner.bitswap.peer_down(&peer_id);
                }
                self.update_status();
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(target: "musehub::ipfs", %address, "reachable from the internet at this address");
                self.update_status();
            }
            SwarmEvent::Behaviour(b) => self.on_behaviour(b),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let kad_server = info.protocols.contains(&kad::PROTOCOL_NAME);
                if kad_server {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                if info
                    .protocols
                    .iter()
                    .any(|p| bitswap::PROTOCOLS.contains(p))
                {
                    self.node.inner.bitswap.peer_up(peer_id);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    tracing::debug!(target: "musehub::ipfs", %peer, %addr, "found an IPFS peer on the LAN");
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            BehaviourEvent::Kad(e) => self.on_kad(e),
            _ => {}
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated {
                is_new_peer: true, ..
            } => {
                // The first DHT peer: what waited for one is announced now, not at its retry.
                let peers: usize = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .map(|b| b.num_entries())
                    .sum();
                if peers == 1 && !self.retry.is_empty() {
                    self.backlog
                        .extend(self.retry.drain(..).map(|(_, cid)| cid));
                    self.pump_provides();
                    self.update_status();
                }
            }
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(record),
                    ..
                } => {
                    let now = SystemTime::now();
                    match ipns::check_dht_put(record.key.as_ref(), &record.value, now) {
                        Ok(()) => {
                            let store = self.swarm.behaviour_mut().kad.store_mut();
                            let better = match kad::store::RecordStore::get(store, &record.key) {
                                Some(old) => {
                                    ipns::better(&record.value, &old.value)
                                        == std::cmp::Ordering::Greater
                                }
                                None => true,
                            };
                            if better && let Err(e) = kad::store::RecordStore::put(store, record) {
                                tracing::debug!(target: "musehub::ipfs", error = %e, "DHT record not stored");
                            }
                        }
                        Err(e) => {
                            tracing::info!(target: "musehub::ipfs", peer = %source, error = %e, "refused a DHT record");
                        }
                    }
                }
                kad::InboundRequest::AddProvider {
                    record: Some(record),
                } => {
                    if let Err(e) = kad::store::RecordStore::add_provider(
                        self.swarm.behaviour_mut().kad.store_mut(),
                        record,
                    ) {
                        tracing::debug!(target: "musehub::ipfs", error = %e, "provider record not stored");
                    }
                }
                _ => {}
            },
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => match result {
                kad::QueryResult::StartProviding(r) => {
                    let Some(cid) = self.provides.remove(&id) else {
                        return;
                    };
                    let reached = stats.num_successes();
                    match r {
                        Ok(_) if reached > 0 => {
                            self.node.inner.metrics.provides.add(1);
                            self.node.inner.status_mut().last_provide = Some(SystemTime::now());
                            self.node
                                .inner
                                .metrics
                                .last_provide_unix
                                .set(unix_secs(SystemTime::now()));
                            tracing::debug!(target: "musehub::ipfs", %cid, peers = reached, "announced");
                        }
                        _ => {
                            // Kept locally (kad answers GET_PROVIDERS for it) and retried once
                            // peers may be there.
                            self.retry
                                .push((tokio::time::Instant::now() + PROVIDE_RETRY, cid));
                        }
                    }
                    self.pump_provides();
                    self.update_status();
                }
                kad::QueryResult::GetProviders(r) => {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r
                        && let Some((_, found)) = self.find_providers.get_mut(&id)
                    {
                        for p in providers {
                            if p == self.node.inner.peer_id || found.contains(&p) {
                                continue;
                            }
                            // Dial now, while the query still holds the provider's
                            // addresses (kad forgets them when the query ends).
                            if let Err(e) = self.swarm.dial(p) {
                                tracing::debug!(target: "musehub::ipfs", peer = %p, error = %e, "cannot dial a provider");
                            }
                            found.push(p);
                        }
                    }
                    if step.last
                        && let Some((tx, found)) = self.find_providers.remove(&id)
                    {
                        let _ = tx.send(found);
                    }
                }
                kad::QueryResult::GetRecord(r) => {
                    if let Ok(kad::GetRecordOk::FoundRecord(peer_record)) = r
                        && let Some((_, values)) = self.get_records.get_mut(&id)
                    {
                        values.push(peer_record.record.value);
                    }
                    if step.last
                        && let Some((tx, values)) = self.get_records.remove(&id)
                    {
                        let _ = tx.send(values);
                    }
                }
                kad::QueryResult::PutRecord(Err(e)) => {
                    tracing::debug!(target: "musehub::ipfs", error = ?e, "IPNS record reached no DHT peer yet");
                }
                _ => {}
            },
            _ => {}
        }
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
