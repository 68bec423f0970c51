//! `musehub key generate|show|import`: a person's Ed25519 identity key and its signed key
//! bundle, kept in `~/.config/musehub/keys/` (or `$XDG_CONFIG_HOME`). The private key is
//! never printed or logged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use libp2p::identity::ed25519;

use crate::identity::{self, KeyBundle};

/// Where `handle`'s key lives unless `--key-file` says otherwise.
pub(super) fn default_key_path(handle: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; give --key-file"))?,
        )
        .join(".config"),
    };
    Ok(base.join("musehub/keys").join(format!("{handle}.key")))
}

pub(super) use crate::identity::check_handle;

pub(super) use crate::identity::bundle_path;

pub(super) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes the key and a fresh bundle signed by it, then shows them.
pub(super) fn install(
    handle: &str,
    key: &ed25519::Keypair,
    path: &Path,
    replace: bool,
) -> Result<()> {
    identity::install_key(path, key, handle, replace)?;
    show_key(handle, path, false)
}

pub(super) fn generate(handle: &str, key_file: Option<PathBuf>) -> Result<()> {
    check_handle(handle)?;
    let path = key_file.map_or_else(|| default_key_path(handle), Ok)?;
    install(handle, &ed25519::Keypair::generate(), &path, false)
}

pub(super) fn import(
    handle: &str,
    from: &Path,
    key_file: Option<PathBuf>,
    replace: bool,
) -> Result<()> {
    check_handle(handle)?;
    let text =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    let key = identity::parse_private(&text).with_context(|| format!("{}", from.display()))?;
    let path = key_file.map_or_else(|| default_key_path(handle), Ok)?;
    install(handle, &key, &path, replace)
}

pub(super) fn show(handle: &str, key_file: Option<PathBuf>, json: bool) -> Result<()> {
    check_handle(handle)?;
    let path = key_file.map_or_else(|| default_key_path(handle), Ok)?;
    show_key(handle, &path, json)
}

fn show_key(handle: &str, path: &Path, json: bool) -> Result<()> {
    let key = identity::read_key_file(path).with_context(|| {
        format!(
            "no usable key for {handle} (create one with: musehub key generate --handle {handle})"
        )
    })?;
    let public = hex::encode(key.public().to_bytes());
    let peer = identity::keypair(&key).public().to_peer_id();
    let bundle = match std::fs::read(bundle_path(path)) {
        Ok(data) => {
            let b = KeyBundle::decode(&data)
                .with_context(|| format!("{}", bundle_path(path).display()))?;
            if b.public_key != key.public().to_bytes() || b.handle != handle {
                bail!(
                    "{} is the bundle of another key or handle",
                    bundle_path(path).display()
                );
            }
            Some(crate::cids::cid_of(
                crate::cids::DAG_CBOR,
                &crate::cids::Id::of(&data),
            ))
        }
        Err(_) => None,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "handle": handle,
                "algorithm": "ed25519",
                "public_key": public,
                "peer_id": peer.to_string(),
                "key_file": path.display().to_string(),
                "bundle_cid": bundle.map(|c| c.to_string()),
            })
        );
    } else {
        println!("handle:      {handle}");
        println!("algorithm:   ed25519");
        println!("public key:  {public}");
        println!("peer id:     {peer}");
        println!("key file:    {}", path.display());
        match bundle {
            Some(c) => println!("key bundle:  {c}"),
            None => println!("key bundle:  none yet"),
        }
    }
    Ok(())
}
