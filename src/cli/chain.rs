//! `musehub key anchor|rotate|revoke|status|deploy-registry`: the owner's side of the on-chain
//! key registry. Transactions are paid by an EVM key (a file holding `0x` + 64 hex, mode
//! 0600) that becomes the handle's owner at `anchor`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use libp2p::identity::ed25519;

use super::key;
use crate::chain::{self, Endpoint, Registry};
use crate::cids;
use crate::config::Config;
use crate::identity::{self, KeyBundle};

/// Where the registry is and who pays, overriding `[chain]` in musehub.toml.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ChainArgs {
    /// The chain's JSON-RPC address, e.g. http://127.0.0.1:8545 [default: [chain] rpc_url]
    #[arg(long, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// The chain id: 31337 anvil, 43113 Avalanche Fuji, 43114 Avalanche C-Chain
    /// [default: [chain] chain_id]
    #[arg(long, value_name = "ID")]
    pub chain_id: Option<u64>,
    /// The MuseKeyRegistry contract address, 0x… [default: [chain] registry]
    #[arg(long, value_name = "ADDRESS")]
    pub registry: Option<String>,
    /// The EVM key that pays gas and owns the handle: a file with 0x + 64 hex, mode 0600
    /// [default: [chain] signer_key_file]
    #[arg(long, value_name = "FILE")]
    pub evm_key_file: Option<PathBuf>,
}

impl ChainArgs {
    fn endpoint(&self, config: &Config) -> Result<Endpoint> {
        let base = config.chain.as_ref().map(|c| &c.endpoint);
        let missing = |what: &str| {
            anyhow!(
                "no {what}: give --rpc-url, --chain-id and --registry, or set them under [chain] in musehub.toml"
            )
        };
        let rpc_url = match &self.rpc_url {
            Some(u) => u
                .parse()
                .with_context(|| format!("--rpc-url {u:?} is not a URL"))?,
            None => base
                .map(|b| b.rpc_url.clone())
                .ok_or_else(|| missing("RPC URL"))?,
        };
        let chain_id = self
            .chain_id
            .or(base.map(|b| b.chain_id))
            .ok_or_else(|| missing("chain id"))?;
        let registry = match &self.registry {
            Some(a) => a
                .parse()
                .with_context(|| format!("--registry {a:?} is not an address like 0x5FbD…"))?,
            None => base
                .map(|b| b.registry)
                .ok_or_else(|| missing("registry address"))?,
        };
        Ok(Endpoint {
            rpc_url,
            chain_id,
            registry,
            from_block: base.map_or(0, |b| b.from_block),
        })
    }

    fn signer(&self, config: &Config) -> Result<alloy::signers::local::PrivateKeySigner> {
        let file = self
            .evm_key_file
            .clone()
            .or_else(|| config.chain.as_ref().and_then(|c| c.signer_key_file.clone()))
            .ok_or_else(|| {
                anyhow!("give --evm-key-file FILE: the EVM key (0x + 64 hex, mode 0600) that pays gas and owns the handle")
            })?;
        chain::read_evm_key(&file)
    }

    async fn signing(&self, config: &Config) -> Result<Registry> {
        let r = Registry::connect_signing(self.endpoint(config)?, self.signer(config)?)?;
        r.check_endpoint().await?;
        Ok(r)
    }

    async fn reading(&self, config: &Config) -> Result<Registry> {
        let r = Registry::connect(self.endpoint(config)?)?;
        r.check_endpoint().await?;
        Ok(r)
    }
}

fn key_path(handle: &str, key_file: Option<PathBuf>) -> Result<PathBuf> {
    key::check_handle(handle)?;
    key_file.map_or_else(|| key::default_key_path(handle), Ok)
}

fn read_key(handle: &str, path: &Path) -> Result<ed25519::Keypair> {
    identity::read_key_file(path).with_context(|| {
        format!(
            "no usable key for {handle} (create one with: musehub key generate --handle {handle})"
        )
    })
}

/// The CID bytes of the bundle beside a key file, checking it belongs to that key.
fn bundle_cid(handle: &str, path: &Path, key: &ed25519::Keypair) -> Result<Vec<u8>> {
    let block = identity::read_bundle(path, handle, key)
        .with_context(|| format!("run `musehub key show --handle {handle}`"))?;
    Ok(block.cid.to_bytes())
}

pub(super) fn anchor(
    config: &Config,
    handle: &str,
    key_file: Option<PathBuf>,
    args: &ChainArgs,
) -> Result<()> {
    let path = key_path(handle, key_file)?;
    let key = read_key(handle, &path)?;
    let cid = bundle_cid(handle, &path, &key)?;
    let public = key.public().to_bytes();
    super::runtime()?.block_on(async {
        let registry = args.signing(config).await?;
        let c = registry.check(handle, public).await?;
        if let Some(r) = &c.record {
            if r.key == public {
                println!("{handle} is already anchored with this key (record version {}).", r.nonce);
                return Ok(());
            }
            bail!(
                "{handle} is already registered on chain by {} with another key; use `musehub key rotate` if it is yours",
                r.owner
            );
        }
        println!("Anchoring {handle} on chain {} …", registry.endpoint().chain_id);
        let tx = registry.register(handle, public, &cid).await?;
        println!("Anchored: {handle} → {} (transaction {tx}).", hex::encode(public));
        Ok(())
    })
}

pub(super) fn rotate(
    config: &Config,
    handle: &str,
    key_file: Option<PathBuf>,
    recovery: bool,
    args: &ChainArgs,
) -> Result<()> {
    let path = key_path(handle, key_file)?;
    let old = if recovery {
        identity::read_key_file(&path).ok()
    } else {
        Some(read_key(handle, &path)?)
    };
    // The next key waits beside the current one until the chain accepts it, so a failed
    // transaction is retried with the same (still unused) key.
    let next_path = path.with_extension("key.next");
    let next = match identity::read_key_file(&next_path) {
        Ok(k) => k,
        Err(_) => {
            let k = ed25519::Keypair::generate();
            identity::write_key_file(&next_path, &k, false)?;
            k
        }
    };
    let new_public = next.public().to_bytes();
    super::runtime()?.block_on(async {
        let registry = args.signing(config).await?;
        let probe = old.as_ref().map_or([0; 32], |k| k.public().to_bytes());
        let c = registry.check(handle, probe).await?;
        let Some(rec) = c.record else {
            bail!("{handle} is not anchored yet; run `musehub key anchor --handle {handle}` first");
        };
        let prev_cid = std::fs::read(key::bundle_path(&path))
            .ok()
            .map(|d| cids::cid_of(cids::DAG_CBOR, &cids::Id::of(&d)));
        let bundle = KeyBundle::new(&next, handle, Vec::new(), prev_cid, key::now());
        let block = bundle.to_block()?;
        let cid = cids::cid_of(cids::DAG_CBOR, &cids::Id::of(&block.data)).to_bytes();
        let sig = match (&old, recovery) {
            (Some(k), false) => {
                if rec.key != k.public().to_bytes() {
                    bail!("the key in {} is not {handle}'s current key on chain; use --recovery if it is lost", path.display());
                }
                let ep = registry.endpoint();
                let digest = chain::rotation_digest(ep.chain_id, ep.registry, chain::handle_hash(handle), rec.nonce, new_public, &cid);
                let theirs = registry.rotation_digest(handle, rec.nonce, new_public, &cid).await?;
                if digest != theirs {
                    bail!("the registry computes another rotation digest; check --chain-id and --registry");
                }
                Some(k.sign(&digest))
            }
            _ => None,
        };
        println!(
            "Rotating {handle} to key {} ({}) …",
            hex::encode(new_public),
            if sig.is_some() { "approved by the current key" } else { "recovery: without the old key's approval" }
        );
        let tx = registry.rotate(handle, rec.nonce, new_public, &cid, sig.as_deref()).await?;
        // Keep the old key (renamed) and put the new one in its place.
        if path.exists() {
            let kept = path.with_extension(format!("key.replaced-{}", rec.nonce));
            std::fs::rename(&path, &kept).with_context(|| format!("keeping the old key as {}", kept.display()))?;
            let _ = std::fs::rename(key::bundle_path(&path), kept.with_extension(format!("bundle.replaced-{}", rec.nonce)));
        }
        std::fs::rename(&next_path, &path).with_context(|| format!("installing the new key at {}", path.display()))?;
        crate::fsutil::write_atomic(&key::bundle_path(&path), &block.data, 0o644)?;
        println!("Rotated (transaction {tx}). The new key is in {}.", path.display());
        println!("Run `musehub login <hub> --user {handle}` again on every hub: tokens of the old key no longer work.");
        Ok(())
    })
}

pub(super) fn revoke(
    config: &Config,
    handle: &str,
    key_file: Option<PathBuf>,
    key_hex: Option<String>,
    reason: &str,
    args: &ChainArgs,
) -> Result<()> {
    let code = match reason {
        "unspecified" => 0,
        "compromised" => 1,
        "lost" => 2,
        "superseded" => 3,
        other => {
            bail!("--reason must be compromised, lost, superseded or unspecified, not {other:?}")
        }
    };
    let path = key_path(handle, key_file)?;
    let target: [u8; 32] = match key_hex {
        Some(h) => hex::decode(&h)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("--key must be 64 hex characters"))?,
        None => read_key(handle, &path)?.public().to_bytes(),
    };
    super::runtime()?.block_on(async {
        let registry = args.signing(config).await?;
        let c = registry.check(handle, target).await?;
        let Some(rec) = c.record else {
            bail!("{handle} is not registered on chain");
        };
        let tx = registry.revoke(handle, rec.nonce, target, code).await?;
        println!("Revoked key {} of {handle} ({reason}; transaction {tx}).", hex::encode(target));
        println!("Hubs refuse it from their next check. Rotate to a new key with `musehub key rotate --handle {handle} --recovery`.");
        Ok(())
    })
}

pub(super) fn status(
    config: &Config,
    handle: &str,
    key_file: Option<PathBuf>,
    json: bool,
    args: &ChainArgs,
) -> Result<()> {
    let path = key_path(handle, key_file)?;
    let mine = identity::read_key_file(&path)
        .ok()
        .map(|k| k.public().to_bytes());
    super::runtime()?.block_on(async {
        let registry = args.reading(config).await?;
        let c = registry.check(handle, mine.unwrap_or([0; 32])).await?;
        let hash = chain::handle_hash(handle);
        let last_rotation = match &c.record {
            Some(r) if r.nonce > 1 => {
                let ep = registry.endpoint();
                registry
                    .rotations(hash, ep.from_block, c.block)
                    .await?
                    .last()
                    .map(|rot| rot.kind(ep.chain_id, ep.registry, hash).as_str())
            }
            _ => None,
        };
        let yours = match (&mine, &c.record) {
            (None, _) => "no key file",
            (Some(_), _) if c.key_revoked_at > 0 => "revoked",
            (Some(k), Some(r)) if r.key == *k => "current",
            (Some(_), _) if c.key_handle == hash => "replaced",
            (Some(_), Some(_)) => "not this handle's key",
            (Some(_), None) => "not anchored",
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "handle": handle,
                    "registered": c.record.is_some(),
                    "owner": c.record.as_ref().map(|r| r.owner.to_string()),
                    "nonce": c.record.as_ref().map(|r| r.nonce),
                    "current_key": c.record.as_ref().filter(|r| r.key != [0; 32]).map(|r| hex::encode(r.key)),
                    "your_key": yours,
                    "your_key_revoked_at": (c.key_revoked_at > 0).then_some(c.key_revoked_at),
                    "last_rotation": last_rotation,
                    "block": c.block,
                })
            );
            return Ok(());
        }
        println!("handle:        {handle}");
        match &c.record {
            None => println!("on chain:      not registered (run `musehub key anchor --handle {handle}`)"),
            Some(r) => {
                println!("owner:         {}", r.owner);
                println!("version:       {}", r.nonce);
                if r.key == [0; 32] {
                    println!("current key:   none (revoked; rotate to a new key)");
                } else {
                    println!("current key:   {}", hex::encode(r.key));
                }
                if let Some(k) = last_rotation {
                    println!("last rotation: {k}");
                }
            }
        }
        println!("your key:      {yours}");
        println!("as of block:   {}", c.block);
        Ok(())
    })
}

pub(super) fn deploy(
    config: &Config,
    identity_registry: Option<String>,
    args: &ChainArgs,
) -> Result<()> {
    let rpc_url: reqwest::Url = match (&args.rpc_url, &config.chain) {
        (Some(u), _) => u
            .parse()
            .with_context(|| format!("--rpc-url {u:?} is not a URL"))?,
        (None, Some(c)) => c.endpoint.rpc_url.clone(),
        (None, None) => bail!("give --rpc-url (for a local anvil: http://127.0.0.1:8545)"),
    };
    let ident = match identity_registry {
        Some(a) => a
            .parse()
            .with_context(|| format!("{a:?} is not an address"))?,
        None => alloy::primitives::Address::ZERO,
    };
    let signer = args.signer(config)?;
    super::runtime()?.block_on(async {
        let (address, block, chain_id) = Registry::deploy(rpc_url.clone(), signer, ident).await?;
        println!("Deployed MuseKeyRegistry at {address} (block {block}).");
        println!("Add to musehub.toml:\n[chain]\nrpc_url = \"{rpc_url}\"\nchain_id = {chain_id}\nregistry = \"{address}\"\nfrom_block = {block}");
        Ok(())
    })
}
