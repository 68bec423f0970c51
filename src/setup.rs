//! First-boot setup of the appliance (`musehub setup --from <boot partition>/musehub.toml`).
//!
//! The musician edits `musehub.toml` on the boot partition (FAT, readable from any laptop) and
//! switches the box on. Setup turns that file into a hub: the data directory's configuration,
//! the secrets moved off the boot partition, the database and IPFS node key, the https CA, the
//! owner's account and key, the key anchored on chain, the hubs to follow, and a one-time
//! sign-in link written back to the boot partition.
//!
//! It runs at every boot, before the hub starts, and is idempotent: each step first looks at
//! what already exists (a CA, an account, the chain's record of the handle) and only does
//! what is missing, so a power cut at any point is followed by a run that finishes the job
//! and nothing is done twice. What each step found or did is recorded in
//! `<data dir>/setup.json` (mode 0600: it holds the unused sign-in link), which the web UI's
//! `/setup` page shows to the owner.
//!
//! A step that fails (an unfunded EVM account, a chain out of reach) is recorded with the
//! reason and tried again at the next run; it never stops the steps that do not need it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::dag::Block;
use crate::db::{self, identities, peers, sessions, users};
use crate::hub::Hub;
use crate::identity;
use crate::{auth, fsutil, tls};
use libp2p::identity::ed25519;

pub mod datafs;

/// The state file in the data directory.
pub const STATE_FILE: &str = "setup.json";
/// An owner's own key, dropped on the boot partition (PKCS#8 PEM or 64 hex).
pub const OWNER_KEY_FILE: &str = "owner.key";
/// The host name the appliance answers to on the LAN (`musehub.local`).
pub const LAN_NAME: &str = "musehub";
/// How long the first-boot sign-in link stays valid. A headless box may be set up days
/// before anyone reads the card; an unused expired link is replaced at the next boot.
pub const LINK_TTL_SECS: i64 = 7 * 86_400;

/// What to set up from.
#[derive(Debug, Clone)]
pub struct Options {
    /// `musehub.toml` on the boot partition.
    pub from: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where to write the human-readable summary (normally beside `from`).
    pub report: Option<PathBuf>,
    /// Give the data directory to this system user when done (setup runs as root; the hub
    /// does not).
    pub chown: Option<String>,
    /// A cloud-init NoCloud seed directory (`user-data` inside). A `musehub.toml` among its
    /// `write_files` takes the place of `from`: that is how a VPS panel configures the box.
    pub nocloud: Option<PathBuf>,
    /// The device of a data file system setup did not make (see [`datafs`]), typed out by
    /// the owner to let setup use it.
    pub accept_data_filesystem: Option<String>,
}

/// How a step ended in the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One step's outcome, in words for the musician.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub title: String,
    pub status: Status,
    pub detail: String,
    /// RFC 3339, when this outcome was recorded.
    pub at: String,
    /// When the step first finished (kept across runs).
    #[serde(default)]
    pub first_done: Option<String>,
}

/// The sign-in link setup printed, until it is used or expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Everything setup recorded (`setup.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub owner: Option<String>,
    pub steps: Vec<Step>,
    pub link: Option<Link>,
    /// Addresses the hub could be reached at when setup last ran (for the report).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// SHA-256 fingerprint of the CA certificate, as browsers show it.
    #[serde(default)]
    pub ca_fingerprint: Option<String>,
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub updated_at: String,
}

impl State {
    /// Reads the state of a data directory; `None` when setup never ran there.
    pub fn load(data_dir: &Path) -> Result<Option<State>> {
        let path = data_dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self)?;
        fsutil::write_atomic(&path, &json, 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    fn record(&mut self, name: &'static str, status: Status, detail: String) {
        let at = now_rfc3339();
        let first_done = self
            .step(name)
            .and_then(|s| s.first_done.clone())
            .or_else(|| (status == Status::Done).then(|| at.clone()));
        let step = Step {
            name: name.to_owned(),
            title: title(name).to_owned(),
            status,
            detail,
            at,
            first_done,
        };
        match self.steps.iter_mut().find(|s| s.name == name) {
            Some(s) => *s = step,
            None => self.steps.push(step),
        }
    }

    /// Records a step's result: done with its detail, or failed with the reason.
    fn outcome<T>(&mut self, name: &'static str, result: Result<(T, String)>) -> Option<T> {
        match result {
            Ok((value, detail)) => {
                self.record(name, Status::Done, detail);
                Some(value)
            }
            Err(e) => {
                self.record(name, Status::Failed, format!("{e:#}"));
                None
            }
        }
    }

    /// Whether any step failed in the last run.
    pub fn failed(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Failed)
            .collect()
    }
}

/// Every step, in order, with the title the report and the `/setup` page show.
const STEPS: &[(&str, &str)] = &[
    ("config", "Settings"),
    ("secrets", "Keys moved off the boot partition"),
    ("storage", "Database, block store and IPFS identity"),
    ("tls", "HTTPS certificate authority"),
    ("owner", "Owner account and key"),
    ("anchor", "Owner's key anchored on chain"),
    ("join", "Hubs to follow"),
    ("link", "Sign-in link"),
];

fn title(name: &str) -> &'static str {
    STEPS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("Setup", |(_, t)| t)
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// What one run prints on the console and writes to the boot partition.
#[derive(Debug)]
pub struct Outcome {
    pub state: State,
    pub report: String,
}

/// Runs every step. Fails only when the data directory itself cannot be written; a failed
/// step is recorded and reported instead.
pub async fn run(opts: &Options) -> Result<Outcome> {
    // Before anything is written: the data directory must be on a file system this box made
    // (or one the owner named).
    let place = datafs::check(&opts.data_dir, opts.accept_data_filesystem.as_deref())
        .context("reading the mount table")?;
    if let datafs::Verdict::Foreign { .. } = place {
        let why = place.describe(&opts.data_dir);
        write_report(
            opts,
            &format!("musehub setup, {}\n\n{why}\n", now_rfc3339()),
        );
        bail!("{why}");
    }
    tracing::info!(target: "musehub::setup", "{}", place.describe(&opts.data_dir));
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let mut state = State::load(&opts.data_dir)?.unwrap_or_default();
    state.runs += 1;
    let boot_dir = opts
        .from
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));

    // 1. Settings. Without them there is nothing else to do: the hub keeps whatever
    //    configuration it had.
    let Some((config, owner)) = state.outcome("config", settings(opts, &boot_dir)) else {
        return finish(opts, state, None);
    };
    state.owner = Some(owner.clone());

    // 2. Secrets off the FAT partition (it has no permissions: anyone with the card reads it).
    let key_path = owner_key_path(&opts.data_dir, &owner);
    match move_secrets(&boot_dir, &opts.data_dir, &config, &owner, &key_path) {
        // Nothing new on the boot partition: keep what the run that moved them said.
        Ok(None)
            if state
                .step("secrets")
                .is_some_and(|s| s.status == Status::Done) => {}
        Ok(detail) => state.record(
            "secrets",
            Status::Done,
            detail.unwrap_or_else(|| "No keys on the boot partition.".into()),
        ),
        Err(e) => state.record("secrets", Status::Failed, format!("{e:#}")),
    }

    // 3. Database, block store and the IPFS node key.
    let opened = crate::server::open_hub(&config).map(|hub| {
        let peer = hub.node_key().public().to_peer_id();
        (hub, format!("IPFS peer id {peer}"))
    });
    let Some(hub) = state.outcome("storage", opened) else {
        return finish(opts, state, Some(&config));
    };

    // 4. The https CA (kept forever once made) and a server certificate for the names the
    //    hub answers to, `musehub.local` among them.
    let tls_paths = config.paths.tls();
    let had_ca = tls_paths.ca_cert.is_file();
    let tls = tls::ensure_certificates(&tls_paths, &config.certificate_names())
        .map_err(anyhow::Error::from)
        .and_then(|sans| Ok((tls::ca_fingerprint(&tls_paths)?, sans)));
    let tls = tls.map(|(fingerprint, sans)| {
        let detail = format!(
            "{} CA; the certificate covers {}",
            if had_ca { "kept the" } else { "made a new" },
            sans.join(", ")
        );
        ((fingerprint, sans), detail)
    });
    if let Some((fingerprint, sans)) = state.outcome("tls", tls) {
        state.ca_fingerprint = Some(fingerprint);
        state.addresses = sans
            .into_iter()
            .filter(|s| {
                s.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| !ip.is_loopback())
            })
            .collect();
    }

    // 5. The owner's account, key and key bundle.
    let owner_key = state.outcome("owner", owner_account(&hub, &owner, &key_path));

    // 6. The key on chain.
    match (&config.chain, &owner_key) {
        (None, _) => state.record(
            "anchor",
            Status::Skipped,
            "No [chain] in musehub.toml: the key is known to this hub only.".into(),
        ),
        (Some(_), None) => state.record(
            "anchor",
            Status::Failed,
            "The owner has no key yet (see the step above).".into(),
        ),
        (Some(chain), Some((key, bundle))) => match anchor(chain, &owner, key, bundle).await {
            Ok(detail) => state.record("anchor", Status::Done, detail),
            Err(e) => state.record(
                "anchor",
                Status::Failed,
                format!("{e:#} (tried again at the next start)"),
            ),
        },
    }

    // 7. Hubs to follow: recorded as peers, replicated by the hub once it runs.
    match follow(&hub, &config).await {
        Ok(detail) if config.federation.join.is_empty() => {
            state.record("join", Status::Skipped, detail)
        }
        result => {
            state.outcome("join", result.map(|d| ((), d)));
        }
    }

    // 8. A one-time sign-in link, until the owner has used one.
    let previous = state.link.take();
    state.link = state
        .outcome("link", sign_in_link(&hub, &config, &owner, previous))
        .flatten();
    drop(hub);
    finish(opts, state, Some(&config))
}

/// Writes `text` to the report file, when there is one. The boot partition may be missing
/// or read-only; the console and journal still have the report.
fn write_report(opts: &Options, text: &str) {
    if let Some(path) = &opts.report
        && let Err(e) = fsutil::write_atomic(path, text.as_bytes(), 0o600)
    {
        tracing::warn!(target: "musehub::setup", path = %path.display(), error = %e, "could not write the setup report");
    }
}

/// Saves the state, writes the report, hands the data directory to the hub's user.
fn finish(opts: &Options, mut state: State, config: Option<&Config>) -> Result<Outcome> {
    state.updated_at = now_rfc3339();
    state.save(&opts.data_dir)?;
    let report = report(&state, config);
    write_report(opts, &report);
    if let Some(user) = &opts.chown {
        fsutil::chown_tree(&opts.data_dir, user)?;
    }
    Ok(Outcome { state, report })
}

/// The appliance's defaults for what the boot file leaves out: https on every address,
/// `https://musehub.local`, announced on the LAN as `musehub.local`.
const APPLIANCE_DEFAULTS: &[(&str, &str)] = &[
    ("listen", "0.0.0.0:443"),
    ("public_url", "https://musehub.local"),
];

/// Turns the boot partition's file into the data directory's `musehub.toml` and loads it.
fn settings(opts: &Options, boot_dir: &Path) -> Result<((Config, String), String)> {
    let from_cloud = match &opts.nocloud {
        Some(dir) => nocloud_settings(dir)?,
        None => None,
    };
    let (text, source) = match from_cloud {
        Some(t) => (t, "cloud-init user-data"),
        None => (
            std::fs::read_to_string(&opts.from).with_context(|| {
                format!(
                    "no settings at {}: put a musehub.toml on the boot partition",
                    opts.from.display()
                )
            })?,
            "musehub.toml on the boot partition",
        ),
    };
    let composed = compose(&text, boot_dir, &opts.data_dir)?;
    // Check it loads before it replaces a working configuration.
    let config = Config::parse(
        opts.data_dir.clone(),
        &composed,
        &crate::config::Overrides::default(),
    )
    .with_context(|| format!("{} has a mistake", opts.from.display()))?;
    let owner = config.federation.owner.clone().ok_or_else(|| {
        anyhow!(
            "{} names no owner: set owner = \"your-handle\" under [federation]",
            opts.from.display()
        )
    })?;
    identity::check_handle(&owner)?;
    let target = config.paths.config_file();
    if std::fs::read_to_string(&target).ok().as_deref() != Some(composed.as_str()) {
        fsutil::write_atomic(&target, composed.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    let joins = config.federation.join.len();
    let detail = format!(
        "From {source}: owner {owner}; served at {}; following {joins} hub{}; chain {}.",
        config.public_url,
        if joins == 1 { "" } else { "s" },
        if config.chain.is_some() {
            "configured"
        } else {
            "not configured"
        }
    );
    Ok(((config, owner), detail))
}

/// The `musehub.toml` a cloud-init NoCloud seed carries in its `#cloud-config` user-data
/// (`write_files`, any path ending in `musehub.toml`, plain or base64), if any.
fn nocloud_settings(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("user-data");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    cloud_config_settings(&text).with_context(|| format!("{}", path.display()))
}

/// [`nocloud_settings`] on the text of a user-data file. Pure, so it is tested directly.
pub fn cloud_config_settings(text: &str) -> Result<Option<String>> {
    use yaml_rust2::YamlLoader;
    if !text.starts_with("#cloud-config") {
        return Ok(None);
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| anyhow!("not valid YAML: {e}"))?;
    let Some(files) = docs.first().and_then(|d| d["write_files"].as_vec()) else {
        return Ok(None);
    };
    for f in files {
        let Some(p) = f["path"].as_str() else {
            continue;
        };
        if !p.ends_with("musehub.toml") {
            continue;
        }
        let content = f["content"].as_str().unwrap_or_default();
        return match f["encoding"].as_str().unwrap_or("text/plain") {
            "text/plain" => Ok(Some(content.to_owned())),
            "b64" | "base64" => {
                let bytes = data_encoding::BASE64
                    .decode(content.split_whitespace().collect::<String>().as_bytes())
                    .map_err(|e| anyhow!("write_files {p}: bad base64: {e}"))?;
                Ok(Some(
                    String::from_utf8(bytes)
                        .map_err(|_| anyhow!("write_files {p}: not UTF-8 text"))?,
                ))
            }
            other => bail!(
                "write_files {p}: encoding {other:?} is not supported (use plain text or b64)"
            ),
        };
    }
    Ok(None)
}

/// The boot file with the appliance's defaults added and secret paths pointing into the
/// data directory. Pure, so it is tested directly.
pub fn compose(text: &str, boot_dir: &Path, data_dir: &Path) -> Result<String> {
    let mut t: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow!("musehub.toml is not valid: {e}"))?;
    for (k, v) in APPLIANCE_DEFAULTS {
        t.entry(*k)
            .or_insert_with(|| toml::Value::String((*v).to_owned()));
    }
    t.entry("tls").or_insert(toml::Value::Boolean(true));
    let fed = t
        .entry("federation")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let fed = fed
        .as_table_mut()
        .ok_or_else(|| anyhow!("federation must be a table: [federation]"))?;
    fed.entry("lan_name")
        .or_insert_with(|| toml::Value::String(LAN_NAME.to_owned()));
    if let Some(chain) = t.get_mut("chain").and_then(toml::Value::as_table_mut)
        && let Some(file) = chain.get("signer_key_file").and_then(toml::Value::as_str)
        && let Some(name) = on_boot_partition(file, boot_dir)
    {
        let moved = secrets_dir(data_dir).join(name);
        chain.insert(
            "signer_key_file".into(),
            toml::Value::String(moved.display().to_string()),
        );
    }
    let body = toml::to_string(&t).context("writing the settings")?;
    Ok(format!(
        "# Written by `musehub setup` from the boot partition's musehub.toml at every start.\n\
         # Edit that file (not this one) and restart the box.\n\n{body}"
    ))
}

/// The file name of a path that lies on the boot partition (relative, or under `boot_dir`).
fn on_boot_partition(file: &str, boot_dir: &Path) -> Option<String> {
    let p = Path::new(file);
    let rel = if p.is_absolute() {
        p.strip_prefix(boot_dir).ok()?
    } else {
        p
    };
    if rel.components().count() != 1 {
        return None;
    }
    rel.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn secrets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets")
}

/// Where the owner's identity key lives inside the data directory.
pub fn owner_key_path(data_dir: &Path, owner: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{owner}.key"))
}

/// Moves `owner.key` and the EVM key file from the boot partition into the data directory.
fn move_secrets(
    boot_dir: &Path,
    data_dir: &Path,
    config: &Config,
    owner: &str,
    owner_key: &Path,
) -> Result<Option<String>> {
    let mut moved = Vec::new();
    let src = boot_dir.join(OWNER_KEY_FILE);
    if src.exists() {
        let text =
            std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?;
        let key = identity::parse_private(&text).with_context(|| {
            format!("{OWNER_KEY_FILE} on the boot partition is not an Ed25519 private key")
        })?;
        match identity::read_key_file(owner_key) {
            Ok(have) if have.public().to_bytes() != key.public().to_bytes() => bail!(
                "{OWNER_KEY_FILE} on the boot partition is a different key from the one this box already uses for the owner; it was left there. Use `musehub key rotate` to change keys"
            ),
            Ok(_) => {}
            Err(_) => {
                identity::install_key(owner_key, &key, owner, false)?;
            }
        }
        remove_from_boot(&src)?;
        moved.push(OWNER_KEY_FILE.to_owned());
    }
    if let Some(chain) = &config.chain
        && let Some(dst) = &chain.signer_key_file
        && dst.starts_with(secrets_dir(data_dir))
        && let Some(name) = dst.file_name()
    {
        let src = boot_dir.join(name);
        if src.exists() {
            let data = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            std::fs::create_dir_all(secrets_dir(data_dir))?;
            fsutil::write_atomic(dst, &data, 0o600)?;
            remove_from_boot(&src)?;
            moved.push(name.to_string_lossy().into_owned());
        } else if !dst.exists() {
            bail!(
                "[chain] signer_key_file names {} but it is neither on the boot partition nor inside the box",
                name.to_string_lossy()
            );
        }
    }
    Ok((!moved.is_empty()).then(|| {
        format!(
            "Moved {} into the box's private storage and deleted {} from the boot partition.",
            moved.join(" and "),
            if moved.len() == 1 { "it" } else { "them" }
        )
    }))
}

/// Deletes a secret from the boot partition and makes the deletion durable.
fn remove_from_boot(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("deleting {}", path.display()))?;
    if let Some(dir) = path.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// Creates the owner's account and key (when missing) and ties the key to the account. The
/// key bundle is made once, kept beside the key (as `musehub key generate` keeps it), and is
/// the one both this hub and the registry record.
fn owner_account(
    hub: &Hub,
    owner: &str,
    key_path: &Path,
) -> Result<((ed25519::Keypair, Block), String)> {
    let mut made = Vec::new();
    let (key, bundle) = match identity::read_key_file(key_path) {
        Ok(key) => match identity::read_bundle(key_path, owner, &key) {
            Ok(bundle) => (key, bundle),
            // A power cut between the key and its bundle: make the bundle again.
            Err(_) => {
                let bundle = identity::install_key(key_path, &key, owner, true)?;
                (key, bundle)
            }
        },
        Err(_) if !key_path.exists() => {
            let key = ed25519::Keypair::generate();
            let bundle = identity::install_key(key_path, &key, owner, false)?;
            made.push("made a new key (kept inside the box)");
            (key, bundle)
        }
        Err(e) => return Err(e.into()),
    };
    let public = key.public().to_bytes();
    let (created, bound) = hub.db().write_blocking(|tx| {
        let (user, created) = match users::by_name(tx, owner)? {
            Some(u) => (u, false),
            None => (users::create(tx, owner)?, true),
        };
        let bound = identities::add_user_key(tx, user.id, &public, Some(&bundle.data))?;
        Ok::<_, db::Error>((created, bound))
    })?;
    if !bound {
        bail!("the owner's key already belongs to another account on this hub");
    }
    if created {
        made.insert(0, "created the account");
    }
    let detail = format!(
        "{owner}: {}; key {}.",
        if made.is_empty() {
            "account and key already in place".to_owned()
        } else {
            made.join(", ")
        },
        hex::encode(public)
    );
    Ok(((key, bundle), detail))
}

/// Registers the owner's key unless the chain already has it.
async fn anchor(
    chain: &crate::config::ChainConfig,
    owner: &str,
    key: &ed25519::Keypair,
    bundle: &Block,
) -> Result<String> {
    use crate::chain::Registry;
    let public = key.public().to_bytes();
    let reader = Registry::connect(chain.endpoint.clone())?;
    reader.check_endpoint().await?;
    let c = reader.check(owner, public).await?;
    if let Some(r) = &c.record {
        if r.key == public {
            return Ok(format!(
                "{owner} is anchored with this key (record version {}, owner account {}).",
                r.nonce, r.owner
            ));
        }
        bail!(
            "the handle {owner} is already registered on chain by {} with another key",
            r.owner
        );
    }
    let file = chain.signer_key_file.as_ref().ok_or_else(|| {
        anyhow!("no EVM key to pay with: put one on the boot partition as evm.key and set signer_key_file = \"evm.key\" under [chain]")
    })?;
    let signer = crate::chain::read_evm_key(file)?;
    let payer = signer.address();
    let balance = reader.balance(payer).await?;
    if balance.is_zero() {
        bail!(
            "the EVM account {payer} has no funds to pay for the registration: send it a little of the chain's coin (AVAX on Avalanche)"
        );
    }
    let registry = Registry::connect_signing(chain.endpoint.clone(), signer)?;
    let tx = registry
        .register(owner, public, &bundle.cid.to_bytes())
        .await?;
    Ok(format!(
        "Registered {owner} → {} on chain {} (transaction {tx}, paid by {payer}).",
        hex::encode(public),
        chain.endpoint.chain_id
    ))
}

/// Records every `[federation] join` hub as a peer (the owner's repos there).
async fn follow(hub: &Hub, config: &Config) -> Result<String> {
    let mut added = Vec::new();
    let mut known = Vec::new();
    for url in &config.federation.join {
        let u = url.clone();
        if hub
            .db()
            .read(move |c| peers::by_url(c, &u))
            .await?
            .is_some()
        {
            known.push(url.clone());
            continue;
        }
        let policy = match &config.federation.owner {
            Some(o) => peers::Policy::Owner(o.clone()),
            None => peers::Policy::All,
        };
        crate::federation::add_peer(hub, url, policy, "bootstrap").await?;
        added.push(url.clone());
    }
    Ok(match (added.is_empty(), known.is_empty()) {
        (true, true) => "No hubs listed under [federation] join.".into(),
        _ => format!(
            "Following {}: the owner's repos there are copied here (progress on the Peers page).",
            added
                .iter()
                .chain(&known)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Keeps the unused link of an earlier run, or makes a new one while the owner has never
/// signed in with one.
fn sign_in_link(
    hub: &Hub,
    config: &Config,
    owner: &str,
    previous: Option<Link>,
) -> Result<(Option<Link>, String)> {
    if let Some(link) = previous {
        let token = link.url.rsplit('/').next().unwrap_or_default();
        let hash = auth::hash_token(token);
        if hub
            .db()
            .read_blocking(move |c| sessions::login_link_user(c, &hash))?
            .is_some()
        {
            let detail = format!(
                "Waiting to be used, until {}.",
                unix_rfc3339(link.expires_at)
            );
            return Ok((Some(link), detail));
        }
    }
    let owner_name = owner.to_owned();
    let user = hub
        .db()
        .read_blocking(move |c| users::by_name(c, &owner_name))?
        .ok_or_else(|| anyhow!("no account {owner} yet"))?;
    if hub
        .db()
        .read_blocking(move |c| sessions::used_login_link(c, user.id))?
    {
        return Ok((
            None,
            format!(
                "{owner} has signed in. For another link run `musehub login-link {owner}` on the box."
            ),
        ));
    }
    let expires_at = db::unix_now() + LINK_TTL_SECS;
    let token = hub
        .db()
        .write_blocking(|tx| sessions::issue_login_link(tx, user.id, expires_at))?;
    let link = Link {
        url: format!("{}/login/{token}", config.public_url),
        expires_at,
    };
    Ok((
        Some(link),
        format!("A new link, valid until {}.", unix_rfc3339(expires_at)),
    ))
}

fn unix_rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The summary written to `musehub-setup.txt` on the boot partition and to the console.
pub fn report(state: &State, config: Option<&Config>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "musehub setup, {}", state.updated_at);
    let _ = writeln!(out);
    if let Some(link) = &state.link {
        let _ = writeln!(
            out,
            "Sign in to your hub (the link works once, until {}):",
            unix_rfc3339(link.expires_at)
        );
        let _ = writeln!(out, "  {}", link.url);
        if let Some(c) = config {
            let path = link.url.strip_prefix(&c.public_url).unwrap_or(&link.url);
            for a in &state.addresses {
                let host = if a.contains(':') {
                    format!("[{a}]")
                } else {
                    a.clone()
                };
                let _ = writeln!(
                    out,
                    "  or, if your computer does not find musehub.local: https://{host}{path}"
                );
            }
        }
        let _ = writeln!(out);
    }
    if let Some(fp) = &state.ca_fingerprint {
        let _ = writeln!(
            out,
            "Your browser warns about this box's certificate until you trust its own certificate\n\
             authority. Download it from /ca.crt on the hub (the Setup page explains how, for\n\
             each system) and check that its SHA-256 fingerprint is:\n  {fp}"
        );
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "What setup did:");
    for s in &state.steps {
        let _ = writeln!(
            out,
            "  [{:<7}] {}: {}",
            s.status.as_str(),
            s.title,
            s.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_adds_defaults_and_moves_secret_paths() {
        let text = "[federation]\nowner = \"alice\"\n[chain]\nrpc_url = \"http://10.0.2.2:8545\"\nchain_id = 31337\nregistry = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nsigner_key_file = \"evm.key\"\n";
        let out = compose(
            text,
            Path::new("/boot/firmware"),
            Path::new("/var/lib/musehub"),
        )
        .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["listen"].as_str(), Some("0.0.0.0:443"));
        assert_eq!(t["tls"].as_bool(), Some(true));
        assert_eq!(t["public_url"].as_str(), Some("https://musehub.local"));
        assert_eq!(t["federation"]["lan_name"].as_str(), Some("musehub"));
        assert_eq!(t["federation"]["owner"].as_str(), Some("alice"));
        assert_eq!(
            t["chain"]["signer_key_file"].as_str(),
            Some("/var/lib/musehub/secrets/evm.key")
        );
    }

    #[test]
    fn compose_keeps_what_the_owner_set() {
        let text = "listen = \"0.0.0.0:8443\"\ntls = false\npublic_url = \"http://studio:8443\"\n[federation]\nowner = \"bob\"\nlan_name = \"studio\"\n[chain]\nsigner_key_file = \"/etc/musehub/evm.key\"\n";
        let out = compose(text, Path::new("/boot/firmware"), Path::new("/d")).unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["listen"].as_str(), Some("0.0.0.0:8443"));
        assert_eq!(t["tls"].as_bool(), Some(false));
        assert_eq!(t["public_url"].as_str(), Some("http://studio:8443"));
        assert_eq!(t["federation"]["lan_name"].as_str(), Some("studio"));
        assert_eq!(
            t["chain"]["signer_key_file"].as_str(),
            Some("/etc/musehub/evm.key")
        );
    }

    #[test]
    fn compose_refuses_broken_toml_in_words() {
        let e = compose("[federation\nowner = 1", Path::new("/b"), Path::new("/d")).unwrap_err();
        assert!(
            format!("{e:#}").contains("musehub.toml is not valid"),
            "{e:#}"
        );
    }

    #[test]
    fn cloud_config_write_files() {
        let plain = "#cloud-config\nwrite_files:\n  - path: /boot/firmware/musehub.toml\n    content: |\n      [federation]\n      owner = \"bob\"\n";
        assert_eq!(
            cloud_config_settings(plain).unwrap().as_deref(),
            Some("[federation]\nowner = \"bob\"\n")
        );
        let b64 = format!(
            "#cloud-config\nwrite_files:\n- path: /etc/musehub.toml\n  encoding: b64\n  content: {}\n",
            data_encoding::BASE64.encode(b"[federation]\nowner = \"eve\"\n")
        );
        assert_eq!(
            cloud_config_settings(&b64).unwrap().as_deref(),
            Some("[federation]\nowner = \"eve\"\n")
        );
        assert_eq!(cloud_config_settings("#!/bin/sh\necho hi\n").unwrap(), None);
        assert_eq!(
            cloud_config_settings(
                "#cloud-config\nwrite_files:\n- path: /etc/motd\n  content: hi\n"
            )
            .unwrap(),
            None
        );
        assert!(cloud_config_settings("#cloud-config\nwrite_files:\n- path: /x/musehub.toml\n  encoding: gzip\n  content: x\n").is_err());
    }

    #[test]
    fn boot_partition_paths() {
        let b = Path::new("/boot/firmware");
        assert_eq!(on_boot_partition("evm.key", b).as_deref(), Some("evm.key"));
        assert_eq!(
            on_boot_partition("/boot/firmware/evm.key", b).as_deref(),
            Some("evm.key")
        );
        assert_eq!(on_boot_partition("/etc/evm.key", b), None);
        assert_eq!(on_boot_partition("keys/evm.key", b), None);
    }
}
