//! Configuration, in layers each overriding the last: built-in defaults, `musehub.toml` in the
//! data directory (or `--config FILE`), `MUSEHUB_*` environment variables, command-line flags.
//!
//! The data directory is `--data-dir`, else `$MUSEHUB_DATA`, else `./musehub-data`. The raw
//! TOML shape ([`RawConfig`]) is kept apart from the validated [`Config`] of typed values, so
//! a typo in a file is an error that names the key instead of a silently ignored setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::rules::{Limits, Visibility, check_user_name};

/// Where `cargo run` and a fresh install listen: loopback only, so nothing is exposed until
/// the owner chooses an address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default request body cap. The CLI batches 400 objects whatever their size, so a batch of
/// stems is large; this is the sanity cap, not a per-object limit (that is 256 MiB).
pub const DEFAULT_MAX_BODY: u64 = 2 * 1024 * 1024 * 1024;

/// The Muse CLI's response cap (`MAX_RESPONSE_BYTES`).
pub const CLI_MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// The commented file `musehub init` writes. Every line is a default, so it changes nothing
/// until edited.
pub const TEMPLATE: &str = r#"# musehub configuration. Each setting can also be given as an environment variable
# (MUSEHUB_<NAME in capitals>) or a command-line flag, which win over this file.

# Address and port to serve on. 127.0.0.1 is this machine only; use 0.0.0.0:8443 (with
# tls = true) to let your band reach the hub over the LAN.
# listen = "127.0.0.1:8080"

# Serve https with the certificate `musehub init` made (needed for pushes over the LAN:
# the Muse CLI only sends tokens over https, except to 127.0.0.1 and localhost).
# tls = false

# Extra names or addresses to put in the https certificate (run `musehub init` again after
# changing this).
# tls_names = ["studio.example.org"]

# Visibility of a repository created by its owner's first push: "public" or "private".
# default_visibility = "public"

# Largest request body accepted (a push of stems sends many objects per request).
# max_body = "2 GiB"

# Largest fetch answer. The Muse CLI refuses anything over 64 MiB, so keep this unless
# only other tools fetch from this hub.
# max_fetch_answer = "64 MiB"

# How long a client may take to send a request's headers; then the hub closes the
# connection (so a client trickling them cannot hold it open forever).
# header_timeout = "30s"

# Most connections the web server serves at once; a connection past this is closed as soon
# as it arrives (counted in /metrics as musehub_http_connections_refused_total).
# max_connections = 1024

# Address shown in `musehub token create` instructions, e.g. "https://musehub.local:8443".
# public_url = "http://127.0.0.1:8080"

# The embedded IPFS node: public objects are served to any IPFS peer over Bitswap and
# announced in the IPFS DHT, so they stay reachable by CID even when this hub is not.
# To change a setting below, uncomment the [ipfs] line as well as the setting.
# [ipfs]
# enabled = true
# Where the node listens for IPFS peers (TCP and QUIC on port 4001, like Kubo).
# listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/4001"]
# Peers to join the DHT through; the default is the public IPFS bootstrap list. Set [] for
# a hub that should only talk to IPFS peers on its LAN (found with mDNS).
# bootstrap = ["/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"]
# DHT role: "auto" (serve the DHT once AutoNAT finds the hub reachable), "server" or "client".
# dht_mode = "auto"
# Find IPFS peers on the LAN with multicast DNS.
# mdns = true
# Ask the router to forward the IPFS port (UPnP).
# upnp = false
# Announce public objects in the DHT.
# provide = true
# Trustless HTTP gateways to fetch missing blocks from (every byte is verified).
# http_gateways = ["https://trustless-gateway.link"]
# Let /ipfs/ on this hub's web server fetch content it does not hold (from peers, the DHT and
# the gateways above). Off: the gateway serves only this hub's own public content.
# gateway_fetch = false

# Federation: other hubs replicate this hub's public repos, and this hub replicates theirs
# (`musehub peer add <url>`). To change a setting below, uncomment [federation] as well.
# [federation]
# enabled = true
# Your handle: announced on the LAN, where hubs of the same owner pair and replicate each
# other by themselves.
# owner = "alice"
# Announce this hub on the LAN and find others there (mDNS, _musehub._tcp.local.).
# mdns = true
# How often peers are checked for changes (a push notice makes it immediate).
# poll = "5m"
# Hubs to join at start: the owner's repos there (every public repo without an owner) are
# replicated here.
# join = ["https://studio.example.org:8443"]
# The name this hub answers to on the LAN, as <lan_name>.local (the appliance uses
# "musehub"). Unset: musehub-<last 8 characters of the peer id>.local.
# lan_name = "musehub"

# The on-chain key registry (MuseKeyRegistry). With it, every signed-in user's Ed25519 key
# is checked against the chain: this hub is only a cache, and a revoked or replaced key is
# refused. Without it, keys are known to this hub only (shown as "not anchored").
# Examples (uncomment [chain] and one block):
# [chain]
# A local anvil chain (`anvil --hardfork cancun`; `musehub key deploy-registry` prints the address):
# rpc_url = "http://127.0.0.1:8545"
# chain_id = 31337
# registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
# Avalanche Fuji testnet:
# rpc_url = "https://api.avax-test.network/ext/bc/C/rpc"
# chain_id = 43113
# registry = "0x…"            # the address your deployment printed
# from_block = 0              # the block it was deployed in (event replays start there)
# Avalanche C-Chain:
# rpc_url = "https://api.avax.network/ext/bc/C/rpc"
# chain_id = 43114
# registry = "0x…"
# How long a checked key is trusted before the chain is asked again.
# cache_ttl = "2m"
# How often the registry's events are read (they make the hub re-check a key at once).
# follow_every = "30s"
# Accept signed-in keys the chain does not know yet (shown as "pending").
# allow_unanchored = false
# The EVM key file (0x + 64 hex, mode 0600) `musehub key anchor|rotate|revoke` pay gas with.
# signer_key_file = "/home/me/.config/musehub/evm.key"
"#;

/// The file as written by people. Every field is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub tls: Option<bool>,
    pub tls_names: Option<Vec<String>>,
    pub default_visibility: Option<String>,
    pub max_body: Option<Size>,
    pub max_fetch_answer: Option<Size>,
    pub header_timeout: Option<String>,
    pub max_connections: Option<u64>,
    pub public_url: Option<String>,
    pub ipfs: Option<RawIpfs>,
    pub chain: Option<RawChain>,
    pub federation: Option<RawFederation>,
}

/// The `[federation]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFederation {
    pub enabled: Option<bool>,
    pub owner: Option<String>,
    pub poll: Option<String>,
    pub mdns: Option<bool>,
    pub join: Option<Vec<String>>,
    pub lan_name: Option<String>,
}

/// The validated `[federation]` settings.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    pub enabled: bool,
    /// The handle of the hub's owner: announced on the LAN; hubs of the same owner pair.
    pub owner: Option<String>,
    /// How often every peer is polled (notices make it sooner).
    pub poll: Duration,
    /// Announce and browse `_musehub._tcp.local.`.
    pub mdns: bool,
    /// Hubs to follow at start (the owner's repos, or everything public without an owner).
    pub join: Vec<String>,
    /// The host name the hub answers to on the LAN (`<lan_name>.local`, mDNS A/AAAA);
    /// `None`: `musehub-<end of peer id>.local`.
    pub lan_name: Option<String>,
}

impl FederationConfig {
    fn validate(raw: RawFederation) -> Result<FederationConfig> {
        let poll = match raw.poll {
            None => Duration::from_secs(300),
            Some(t) => humantime::parse_duration(&t)
                .with_context(|| format!("federation.poll {t:?} must be a duration like 5m"))?,
        };
        if let Some(o) = &raw.owner {
            check_user_name(o).map_err(|e| anyhow::anyhow!("federation.owner: {e}"))?;
        }
        let join = raw
            .join
            .unwrap_or_default()
            .iter()
            .map(|u| normalize_url(u).context("federation.join"))
            .collect::<Result<Vec<_>>>()?;
        if let Some(n) = &raw.lan_name {
            let ok = (1..=63).contains(&n.len())
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !n.starts_with('-')
                && !n.ends_with('-');
            if !ok {
                bail!(
                    "federation.lan_name {n:?} must be 1 to 63 lowercase letters, digits or '-' (the hub answers as <lan_name>.local)"
                );
            }
        }
        Ok(FederationConfig {
            lan_name: raw.lan_name,
            enabled: raw.enabled.unwrap_or(true),
            owner: raw.owner,
            poll,
            mdns: raw.mdns.unwrap_or(true),
            join,
        })
    }
}

/// The `[chain]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    pub rpc_url: Option<String>,
    pub chain_id: Option<u64>,
    pub registry: Option<String>,
    pub from_block: Option<u64>,
    pub cache_ttl: Option<String>,
    pub follow_every: Option<String>,
    pub allow_unanchored: Option<bool>,
    pub signer_key_file: Option<PathBuf>,
}

/// The validated `[chain]` settings.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub endpoint: ChainEndpoint,
    pub cache_ttl: Duration,
    /// How often the registry's events are polled.
    pub follow_every: Duration,
    pub allow_unanchored: bool,
    pub signer_key_file: Option<PathBuf>,
}

/// How long a key checked on chain is trusted by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(120);

impl ChainConfig {
    /// `None` when no `rpc_url` is set (the chain is optional); otherwise every field the
    /// registry needs must be there.
    pub fn validate(raw: RawChain) -> Result<Option<ChainConfig>> {
        let Some(url) = raw.rpc_url.filter(|u| !u.trim().is_empty()) else {
            if raw.registry.is_some() || raw.chain_id.is_some() {
                bail!("chain: registry and chain_id are set but rpc_url is not");
            }
            return Ok(None);
        };
        let rpc_url: reqwest::Url = url.trim().parse().with_context(|| {
            format!("chain.rpc_url {url:?} must be a URL like http://127.0.0.1:8545")
        })?;
        if !matches!(rpc_url.scheme(), "http" | "https") {
            bail!("chain.rpc_url must start with http:// or https:// (got {url:?})");
        }
        let chain_id = raw.chain_id.context(
            "chain.chain_id is missing (31337 for anvil, 43113 for Fuji, 43114 for the C-Chain)",
        )?;
        let registry_text = raw
            .registry
            .context("chain.registry is missing: the MuseKeyRegistry contract address (0x…)")?;
        let registry = registry_text.trim().parse().with_context(|| {
            format!("chain.registry {registry_text:?} is not an address like 0x5FbDB2315678afecb367f032d93F642f64180aa3")
        })?;
        let cache_ttl = match raw.cache_ttl {
            None => DEFAULT_CACHE_TTL,
            Some(t) => humantime::parse_duration(&t).with_context(|| {
                format!("chain.cache_ttl {t:?} must be a duration like 2m or 30s")
            })?,
        };
        // By default events are polled several times per TTL, so a rotation or revocation is
        // noticed well before a cached answer would expire anyway.
        let follow_every = match raw.follow_every {
            None => (cache_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            Some(t) => humantime::parse_duration(&t)
                .with_context(|| format!("chain.follow_every {t:?} must be a duration like 15s"))?,
        };
        Ok(Some(ChainConfig {
            endpoint: ChainEndpoint {
                rpc_url,
                chain_id,
                registry,
                from_block: raw.from_block.unwrap_or(0),
            },
            cache_ttl,
            follow_every,
            allow_unanchored: raw.allow_unanchored.unwrap_or(false),
            signer_key_file: raw.signer_key_file,
        }))
    }
}

/// The `[ipfs]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIpfs {
    pub enabled: Option<bool>,
    pub listen: Option<Vec<String>>,
    pub bootstrap: Option<Vec<String>>,
    pub dht_mode: Option<String>,
    pub mdns: Option<bool>,
    pub upnp: Option<bool>,
    pub provide: Option<bool>,
    pub http_gateways: Option<Vec<String>>,
    pub gateway_fetch: Option<bool>,
}

/// The public IPFS bootstrap peers (Kubo's and Helia's defaults).
pub const IPFS_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// Where the IPFS node listens by default.
pub const IPFS_LISTEN: &[&str] = &[
    "/ip4/0.0.0.0/tcp/4001",
    "/ip4/0.0.0.0/udp/4001/quic-v1",
    "/ip6/::/tcp/4001",
];

/// The node's DHT role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhtMode {
    /// Server once AutoNAT confirms an external address, client until then.
    Auto,
    Server,
    Client,
}

/// The validated `[ipfs]` settings.
#[derive(Debug, Clone)]
pub struct IpfsConfig {
    pub enabled: bool,
    pub listen: Vec<libp2p::Multiaddr>,
    pub bootstrap: Vec<libp2p::Multiaddr>,
    pub dht_mode: DhtMode,
    pub mdns: bool,
    pub upnp: bool,
    pub provide: bool,
    pub http_gateways: Vec<String>,
    pub gateway_fetch: bool,
}

impl IpfsConfig {
    fn validate(raw: RawIpfs) -> Result<IpfsConfig> {
        let addrs = |list: Option<Vec<String>>, default: &[&str], what: &str| -> Result<_> {
            list.unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
                .iter()
                .map(|a| {
                    a.parse::<libp2p::Multiaddr>().with_context(|| {
                        format!("ipfs.{what}: {a:?} is not a multiaddr like /ip4/0.0.0.0/tcp/4001")
                    })
                })
                .collect::<Result<Vec<_>>>()
        };
        let dht_mode = match raw.dht_mode.as_deref().unwrap_or("auto") {
            "auto" => DhtMode::Auto,
            "server" => DhtMode::Server,
            "client" => DhtMode::Client,
            other => {
                bail!("ipfs.dht_mode must be \"auto\", \"server\" or \"client\", not {other:?}")
            }
        };
        let http_gateways = raw.http_gateways.unwrap_or_default();
        for g in &http_gateways {
            if !(g.starts_with("http://") || g.starts_with("https://")) {
                bail!("ipfs.http_gateways: {g:?} must start with http:// or https://");
            }
        }
        Ok(IpfsConfig {
            enabled: raw.enabled.unwrap_or(true),
            listen: addrs(raw.listen, IPFS_LISTEN, "listen")?,
            bootstrap: addrs(raw.bootstrap, IPFS_BOOTSTRAP, "bootstrap")?,
            dht_mode,
            mdns: raw.mdns.unwrap_or(true),
            upnp: raw.upnp.unwrap_or(false),
            provide: raw.provide.unwrap_or(true),
            http_gateways: http_gateways
                .into_iter()
                .map(|g| g.trim_end_matches('/').to_owned())
                .collect(),
            gateway_fetch: raw.gateway_fetch.unwrap_or(false),
        })
    }

    /// A node for tests: loopback TCP on a free port, no bootstrap, no mDNS or UPnP, DHT
    /// server (tests have no AutoNAT peers).
    pub fn for_tests() -> IpfsConfig {
        IpfsConfig {
            enabled: true,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            bootstrap: Vec::new(),
            dht_mode: DhtMode::Server,
            mdns: false,
            upnp: false,
            provide: true,
            http_gateways: Vec::new(),
            gateway_fetch: false,
        }
    }
}

/// A byte size written as a number or a string like `"512 MiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(s) => parse_size(s),
        }
    }
}

/// Parses `"123"`, `"64 MiB"`, `"2GiB"`, `"500 MB"`.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("size {s:?} must start with a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => bail!("unknown size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, KB, MB or GB)"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}

/// Settings given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub tls: Option<bool>,
}

/// Paths inside the data directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
}

impl Paths {
    pub fn db(&self) -> PathBuf {
        Paths::db_in(&self.data_dir)
    }
    /// The SQLite file of the data directory `data_dir`.
    pub fn db_in(data_dir: &Path) -> PathBuf {
        data_dir.join("musehub.db")
    }
    pub fn blocks(&self) -> PathBuf {
        self.data_dir.join("blocks")
    }
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.join("musehub.toml")
    }
    /// The IPFS node's Ed25519 key (protobuf-encoded libp2p keypair, mode 0600).
    pub fn node_key(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }
    pub fn tls(&self) -> TlsPaths {
        TlsPaths::in_dir(&self.data_dir)
    }
}

/// What the web server allows a connection (see `server::accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Default `header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `max_connections`: a band's browsers and CLIs use a few dozen; each open
/// connection costs a socket and a few KiB of buffers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Paths,
    pub listen: SocketAddr,
    pub tls: bool,
    pub tls_names: Vec<String>,
    pub default_visibility: Visibility,
    pub limits: Limits,
    pub http: HttpConfig,
    /// Base URL shown to users; derived from `listen` and `tls` when not set.
    pub public_url: String,
    /// How long shutdown waits for open requests.
    pub shutdown_grace: Duration,
    pub ipfs: IpfsConfig,
    /// The key registry, when configured.
    pub chain: Option<ChainConfig>,
    pub federation: FederationConfig,
}

/// The data directory from the flag, `$MUSEHUB_DATA`, or `./musehub-data`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_owned();
    }
    match std::env::var_os("MUSEHUB_DATA") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("musehub-data"),
    }
}

impl Config {
    /// Loads every layer. `config_file` replaces `<data dir>/musehub.toml` when given (and
    /// must then exist).
    pub fn load(
        data_dir: PathBuf,
        config_file: Option<&Path>,
        flags: &Overrides,
    ) -> Result<Config> {
        let paths = Paths { data_dir };
        let file = config_file
            .map(Path::to_owned)
            .unwrap_or_else(|| paths.config_file());
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && config_file.is_none() => {
                String::new()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let raw = toml::from_str::<RawConfig>(&text)
            .with_context(|| format!("reading {}", file.display()))?;
        Config::from_layers(paths, raw, flags)
    }

    /// Every layer with `text` as the file's contents (for `musehub setup`, which checks
    /// the settings it composed before writing them).
    pub fn parse(data_dir: PathBuf, text: &str, flags: &Overrides) -> Result<Config> {
        Config::from_layers(Paths { data_dir }, toml::from_str(text)?, flags)
    }

    fn from_layers(paths: Paths, mut raw: RawConfig, flags: &Overrides) -> Result<Config> {
        apply_env(&mut raw, |k| std::env::var(k).ok())?;
        if let Some(l) = &flags.listen {
            raw.listen = Some(l.clone());
        }
        if let Some(t) = flags.tls {
            raw.tls = Some(t);
        }
        Config::validate(paths, raw)
    }

    fn validate(paths: Paths, raw: RawConfig) -> Result<Config> {
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen address {listen_text:?} must look like 127.0.0.1:8080 or [::]:8443")
        })?;
        let tls = raw.tls.unwrap_or(false);
        let default_visibility = match raw.default_visibility.as_deref() {
            None => Visibility::Public,
            Some(v) => Visibility::parse(v).with_context(|| {
                format!("default_visibility must be \"public\" or \"private\", not {v:?}")
            })?,
        };
        let max_body = raw
            .max_body
            .map(|s| s.bytes())
            .transpose()?
            .unwrap_or(DEFAULT_MAX_BODY);
        let max_fetch_answer = raw
            .max_fetch_answer
            .map(|s| s.bytes())
            .transpose()?
            .unwrap_or(CLI_MAX_RESPONSE);
        let header_timeout = match raw.header_timeout {
            None => DEFAULT_HEADER_TIMEOUT,
            Some(t) => {
                let d = humantime::parse_duration(&t)
                    .with_context(|| format!("header_timeout {t:?} must be a duration like 30s"))?;
                if d.is_zero() {
                    bail!("header_timeout must be more than 0s");
                }
                d
            }
        };
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(0) => bail!("max_connections must be at least 1"),
            Some(n) => usize::try_from(n).context("max_connections is too large")?,
        };
        let public_url = match raw.public_url.filter(|u| !u.trim().is_empty()) {
            Some(u) => {
                let u = u.trim().trim_end_matches('/');
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    bail!("public_url must start with http:// or https:// (got {u:?})");
                }
                u.to_owned()
            }
            None => {
                let scheme = if tls { "https" } else { "http" };
                let host = if listen.ip().is_unspecified() {
                    if tls {
                        "musehub.local".to_owned()
                    } else {
                        "127.0.0.1".to_owned()
                    }
                } else if listen.is_ipv6() {
                    format!("[{}]", listen.ip())
                } else {
                    listen.ip().to_string()
                };
                format!("{scheme}://{host}:{}", listen.port())
            }
        };
        Ok(Config {
            paths,
            listen,
            tls,
            tls_names: raw.tls_names.unwrap_or_default(),
            default_visibility,
            limits: Limits {
                max_body,
                max_fetch_answer,
            },
            http: HttpConfig {
                header_timeout,
                max_connections,
            },
            public_url,
            shutdown_grace: Duration::from_secs(10),
            ipfs: IpfsConfig::validate(raw.ipfs.unwrap_or_default())?,
            chain: ChainConfig::validate(raw.chain.unwrap_or_default())?,
            federation: FederationConfig::validate(raw.federation.unwrap_or_default())?,
        })
    }

    /// The names the https certificate covers besides the built-in ones (`musehub.local`,
    /// the host name, its addresses): `tls_names` and `<lan_name>.local`.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = self.tls_names.clone();
        if let Some(n) = &self.federation.lan_name {
            names.push(format!("{n}.local"));
        }
        names
    }

    /// A configuration for tests: loopback, port 0, everything under `dir`.
    pub fn for_tests(dir: &Path) -> Config {
        let raw = RawConfig {
            listen: Some("127.0.0.1:0".into()),
            ..RawConfig::default()
        };
        let mut c = Config::validate(
            Paths {
                data_dir: dir.to_owned(),
            },
            raw,
        )
        .expect("test defaults are valid");
        c.shutdown_grace = Duration::from_secs(2);
        // Most tests exercise HTTP only; IPFS tests turn the node on with
        // `IpfsConfig::for_tests()` so test hubs never find each other by accident.
        c.ipfs.enabled = false;
        // Likewise mDNS: tests that want LAN discovery turn it on in their own namespaces.
        c.federation.mdns = false;
        c
    }
}

fn apply_env(raw: &mut RawConfig, get: impl Fn(&str) -> Option<String>) -> Result<()> {
    if let Some(v) = get("MUSEHUB_LISTEN") {
        raw.listen = Some(v);
    }
    if let Some(v) = get("MUSEHUB_TLS") {
        raw.tls = Some(match v.as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" | "" => false,
            _ => bail!("MUSEHUB_TLS must be true or false, not {v:?}"),
        });
    }
    if let Some(v) = get("MUSEHUB_TLS_NAMES") {
        raw.tls_names = Some(
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    if let Some(v) = get("MUSEHUB_DEFAULT_VISIBILITY") {
        raw.default_visibility = Some(v);
    }
    if let Some(v) = get("MUSEHUB_MAX_BODY") {
        raw.max_body = Some(Size::Text(v));
    }
    if let Some(v) = get("MUSEHUB_MAX_FETCH_ANSWER") {
        raw.max_fetch_answer = Some(Size::Text(v));
    }
    if let Some(v) = get("MUSEHUB_HEADER_TIMEOUT") {
        raw.header_timeout = Some(v);
    }
    if let Some(v) = get("MUSEHUB_MAX_CONNECTIONS") {
        raw.max_connections = Some(
            v.trim()
                .parse()
                .with_context(|| format!("MUSEHUB_MAX_CONNECTIONS must be a number, not {v:?}"))?,
        );
    }
    if let Some(v) = get("MUSEHUB_PUBLIC_URL") {
        raw.public_url = Some(v);
    }
    let chain = raw.chain.get_or_insert_with(RawChain::default);
    if let Some(v) = get("MUSEHUB_CHAIN_RPC_URL") {
        chain.rpc_url = Some(v);
    }
    if let Some(v) = get("MUSEHUB_CHAIN_ID") {
        chain.chain_id = Some(
            v.trim()
                .parse()
                .with_context(|| format!("MUSEHUB_CHAIN_ID must be a number, not {v:?}"))?,
        );
    }
    if let Some(v) = get("MUSEHUB_CHAIN_REGISTRY") {
        chain.registry = Some(v);
    }
    if let Some(v) = get("MUSEHUB_CHAIN_SIGNER_KEY_FILE") {
        chain.signer_key_file = Some(PathBuf::from(v));
    }
    let fed = raw.federation.get_or_insert_with(RawFederation::default);
    if let Some(v) = get("MUSEHUB_FEDERATION_OWNER") {
        fed.owner = Some(v).filter(|v| !v.is_empty());
    }
    if let Some(v) = get("MUSEHUB_FEDERATION_MDNS") {
        fed.mdns = Some(parse_bool("MUSEHUB_FEDERATION_MDNS", &v)?);
    }
    if let Some(v) = get("MUSEHUB_FEDERATION_LAN_NAME") {
        fed.lan_name = Some(v).filter(|v| !v.is_empty());
    }
    if let Some(v) = get("MUSEHUB_FEDERATION_POLL") {
        fed.poll = Some(v);
    }
    if let Some(v) = get("MUSEHUB_FEDERATION_JOIN") {
        fed.join = Some(
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    let ipfs = raw.ipfs.get_or_insert_with(RawIpfs::default);
    let list = |v: String| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(v) = get("MUSEHUB_IPFS_ENABLED") {
        ipfs.enabled = Some(parse_bool("MUSEHUB_IPFS_ENABLED", &v)?);
    }
    if let Some(v) = get("MUSEHUB_IPFS_LISTEN") {
        ipfs.listen = Some(list(v));
    }
    if let Some(v) = get("MUSEHUB_IPFS_BOOTSTRAP") {
        ipfs.bootstrap = Some(list(v));
    }
    if let Some(v) = get("MUSEHUB_IPFS_DHT_MODE") {
        ipfs.dht_mode = Some(v);
    }
    if let Some(v) = get("MUSEHUB_IPFS_MDNS") {
        ipfs.mdns = Some(parse_bool("MUSEHUB_IPFS_MDNS", &v)?);
    }
    if let Some(v) = get("MUSEHUB_IPFS_HTTP_GATEWAYS") {
        ipfs.http_gateways = Some(list(v));
    }
    if let Some(v) = get("MUSEHUB_IPFS_GATEWAY_FETCH") {
        ipfs.gateway_fetch = Some(parse_bool("MUSEHUB_IPFS_GATEWAY_FETCH", &v)?);
    }
    Ok(())
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    Ok(match v {
        "1" | "true" | "yes" => true,
        "0" | "false" | "no" | "" => false,
        _ => bail!("{name} must be true or false, not {v:?}"),
    })
}

/// Normalises a hub's URL (a peer, a `join` entry): http(s), no trailing slash, no path.
/// Here, with the settings that use it, so `config` needs nothing of `federation`.
pub fn normalize_url(url: &str) -> Result<String> {
    let u = reqwest::Url::parse(url.trim())
        .with_context(|| format!("{url:?} is not a hub address like https://hub.example:8443"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        bail!("{url:?} must be an http:// or https:// address of a hub");
    }
    if u.path() != "/" && !u.path().is_empty() {
        bail!("{url:?}: give the hub's address without a path (follow one repo with --repo)");
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

/// Where the registry is and how to reach it.
#[derive(Debug, Clone)]
pub struct ChainEndpoint {
    pub rpc_url: reqwest::Url,
    /// The chain id the RPC must report (31337 for anvil, 43113 Fuji, 43114 C-Chain).
    pub chain_id: u64,
    pub registry: alloy::primitives::Address,
    /// The block the registry was deployed in: event replays start there.
    pub from_block: u64,
}

/// Files of the hub's TLS material inside the data dir: `tls/ca.crt`,
/// `tls/ca.key` (0600), `tls/server.crt`, `tls/server.key` (0600).
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// The local CA certificate (PEM), handed out at `/ca.crt`.
    pub ca_cert: PathBuf,
    /// The local CA private key (PKCS#8 PEM, mode 0600).
    pub ca_key: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// The server private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

impl TlsPaths {
    /// The standard layout under `data_dir/tls/`.
    pub fn in_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }

    /// Whether all four files exist.
    pub fn exists(&self) -> bool {
        [&self.ca_cert, &self.ca_key, &self.cert, &self.key]
            .iter()
            .all(|p| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size("64 MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("5 mb").unwrap(), 5_000_000);
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("musehub.toml"),
            "listen = \"0.0.0.0:9000\"\ndefault_visibility = \"private\"\nmax_body = \"1 GiB\"\n",
        )
        .unwrap();
        let file: RawConfig =
            toml::from_str(&std::fs::read_to_string(dir.path().join("musehub.toml")).unwrap())
                .unwrap();
        let mut raw = file;
        apply_env(&mut raw, |k| {
            (k == "MUSEHUB_LISTEN").then(|| "127.0.0.1:9001".to_owned())
        })
        .unwrap();
        let c = Config::validate(
            Paths {
                data_dir: dir.path().into(),
            },
            raw,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.default_visibility, Visibility::Private);
        assert_eq!(c.limits.max_body, 1 << 30);
        assert_eq!(c.limits.max_fetch_answer, CLI_MAX_RESPONSE);
        assert_eq!(c.public_url, "http://127.0.0.1:9001");
        let flags = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            tls: Some(true),
        };
        let c = Config::load(dir.path().into(), None, &flags).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert!(c.tls);
        assert_eq!(c.public_url, "https://127.0.0.1:7000");
    }

    #[test]
    fn typos_are_errors() {
        assert!(toml::from_str::<RawConfig>("lisen = \"x\"").is_err());
        let raw = RawConfig {
            default_visibility: Some("secret".into()),
            ..Default::default()
        };
        assert!(
            Config::validate(
                Paths {
                    data_dir: ".".into()
                },
                raw
            )
            .is_err()
        );
    }

    #[test]
    fn connection_limits_parse_and_refuse_nonsense() {
        let validate = |text: &str| {
            Config::validate(
                Paths {
                    data_dir: ".".into(),
                },
                toml::from_str(text).unwrap(),
            )
        };
        let c = validate("").unwrap();
        assert_eq!(
            c.http,
            HttpConfig {
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS
            }
        );
        let c = validate("header_timeout = \"5s\"\nmax_connections = 10").unwrap();
        assert_eq!(c.http.header_timeout, Duration::from_secs(5));
        assert_eq!(c.http.max_connections, 10);
        for bad in [
            "header_timeout = \"soon\"",
            "header_timeout = \"0s\"",
            "max_connections = 0",
        ] {
            let e = validate(bad).unwrap_err().to_string();
            assert!(
                e.contains("header_timeout") || e.contains("max_connections"),
                "{bad}: {e}"
            );
        }
        let mut raw = RawConfig::default();
        apply_env(&mut raw, |k| {
            (k == "MUSEHUB_MAX_CONNECTIONS").then(|| "many".to_owned())
        })
        .unwrap_err();
    }

    #[test]
    fn the_template_is_valid_and_all_defaults() {
        let raw: RawConfig = toml::from_str(TEMPLATE).unwrap();
        assert!(raw.listen.is_none() && raw.tls.is_none() && raw.max_body.is_none());
    }
}
