//! The `musehub` command line: parsing and the subcommands. The only module that prints to
//! stdout or decides the exit code (through [`run`]'s result).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{self, Config, Overrides};

mod admin;
mod chain;
mod dag;
mod ipfs;
mod key;
mod login;
mod peer;
mod progress;
mod serve;
mod setup;

/// A self-hostable hub for Muse, the version control system for music.
///
/// Run with no command to serve on http://127.0.0.1:8080 with data in ./musehub-data.
#[derive(Debug, Parser)]
#[command(name = "musehub", version, about, long_about = None)]
pub struct Cli {
    /// Where the hub keeps its database, blocks and certificates
    /// [default: $MUSEHUB_DATA, else ./musehub-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Read settings from this file instead of <data dir>/musehub.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the hub (the default command).
    Serve(ServeArgs),
    /// Prepare a data directory: database, config file and https certificates.
    Init {
        /// Extra host names or addresses for the https certificate (repeatable).
        #[arg(long = "tls-name", value_name = "NAME")]
        tls_names: Vec<String>,
    },
    /// Manage the people who can push.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access tokens for the Muse CLI.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage repositories.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Print a one-time link that signs a user in to the hub's web pages.
    LoginLink {
        /// The user the link signs in.
        user: String,
        /// How long the link stays valid, e.g. 15m or 2h (at most 7d).
        #[arg(long, default_value = "15m", value_name = "DURATION")]
        ttl: humantime::Duration,
    },
    /// Check that every branch reaches complete history and every stored byte is intact.
    Doctor {
        /// Print the report as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Show this hub's IPFS identity (peer id, IPNS name) and, when it is running, its
    /// addresses, peers and DHT announcements.
    Node {
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Download a file from IPFS by its CID (from this hub's store, IPFS peers, the DHT or
    /// the configured HTTP gateways), checking every block.
    Get {
        /// The CID, e.g. bafybei… or bafkrei…
        cid: String,
        /// Where to save it ("-" or nothing: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// An IPFS peer to ask directly, e.g. /ip4/192.168.1.20/tcp/4001/p2p/12D3Koo… (repeatable).
        #[arg(long = "peer", value_name = "MULTIADDR")]
        peers: Vec<String>,
        /// Give up after this long.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        timeout: humantime::Duration,
    },
    /// Your Ed25519 identity key: create, show or import it (kept in ~/.config/musehub/keys,
    /// readable only by you; the private key is never printed).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign in to a hub with your key (no password): the hub's token is saved where the
    /// Muse CLI finds it (~/.muse/identity.toml), so `muse push` works.
    Login {
        /// The hub's address, e.g. https://musehub.local:8443
        hub: String,
        /// Your handle (the key kept for it in ~/.config/musehub/keys is used).
        #[arg(long)]
        user: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// A token you already have on this hub: adds your key to that account.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// A note to recognise the token by in `musehub token list`.
        #[arg(long, default_value = "musehub login")]
        label: String,
    },
    /// Hubs this hub replicates from: every public repo there, an owner's, or one repo.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Export or import a repo's history as a CAR file (the IPFS archive format).
    #[command(subcommand)]
    Car(CarCommand),
    /// Make a working copy of a repo for the Muse CLI without using any hub's wire API:
    /// from a hub's CAR download (no 64 MiB limit), a CAR file, a commit CID or an IPNS name
    /// (fetched from IPFS peers).
    Clone {
        /// https://hub/owner/slug, a .car file, a commit CID (bafyrei…), or
        /// /ipns/<hub name>[/owner/slug]
        from: String,
        /// The new directory.
        dir: PathBuf,
        /// An IPFS peer to ask directly, e.g. /ip4/192.168.1.20/tcp/4001/p2p/12D3Koo… (repeatable).
        #[arg(long = "peer", value_name = "MULTIADDR")]
        peers: Vec<String>,
        /// Give up after this long (IPFS sources).
        #[arg(long, default_value = "10m", value_name = "DURATION")]
        timeout: humantime::Duration,
    },
    /// Bring a cloned repo up to date from its hub through the hub's CAR download (for
    /// updates too big for `muse pull`).
    Pull {
        /// The repository's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Check a commit with only its CID and a publisher's key: every block's hash, the Muse
    /// ids, and a ref-state signed by that key that covers the commit. Exits non-zero on any
    /// failure.
    Verify {
        /// The commit CID (bafyrei…).
        commit: String,
        /// The publisher's key: a peer id (12D3Koo…) or 64 hex characters of an Ed25519 key.
        #[arg(long, value_name = "KEY")]
        key: String,
        /// Read the blocks from this CAR file instead of IPFS.
        #[arg(long, value_name = "FILE")]
        car: Option<PathBuf>,
        /// An IPFS peer to ask directly (repeatable).
        #[arg(long = "peer", value_name = "MULTIADDR")]
        peers: Vec<String>,
        /// Give up after this long.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        timeout: humantime::Duration,
    },
    /// Set this hub up from a musehub.toml, as the appliance does at every start: settings,
    /// keys moved off the boot partition, the https CA, the owner's account and key, the key
    /// anchored on chain, hubs to follow, and a one-time sign-in link. Safe to run again:
    /// it only does what is missing.
    Setup {
        /// The musehub.toml to set up from (on the appliance: /boot/firmware/musehub.toml).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Also write the summary and sign-in link to this file (the appliance writes
        /// musehub-setup.txt next to musehub.toml).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Give the data directory to this system user afterwards (setup runs as root, the
        /// hub as its own user).
        #[arg(long, value_name = "USER")]
        chown: Option<String>,
        /// A cloud-init NoCloud seed (a directory with user-data): a musehub.toml in its
        /// write_files is used instead of --from (VPS providers' panels).
        #[arg(long, value_name = "DIR")]
        nocloud: Option<PathBuf>,
        /// Let setup put the hub's data on a file system it did not create (a disk you
        /// mounted on the data directory). Type that file system's device, e.g. /dev/sdb1:
        /// without it setup refuses and writes nothing there.
        #[arg(long, value_name = "DEVICE")]
        accept_data_filesystem: Option<String>,
    },
    /// Measure push, fetch and lookup speed on this machine and print the figures (runs the
    /// `musehub-bench` program installed beside musehub; `musehub bench --help` lists its
    /// options).
    #[command(disable_help_flag = true)]
    Bench {
        /// Options passed on to `musehub-bench`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "OPTIONS"
        )]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new key and its signed key bundle (refuses to replace an existing key).
    Generate {
        /// Your handle: 1 to 32 lowercase letters, digits or '-'.
        #[arg(long)]
        handle: String,
        /// Where to keep the key [default: ~/.config/musehub/keys/HANDLE.key].
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Show the public key, peer id and key bundle CID (never the private key).
    Show {
        #[arg(long)]
        handle: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Import a private key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes,
    /// or 64 hex characters).
    Import {
        #[arg(long)]
        handle: String,
        /// The file holding the private key.
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Replace a key already kept for this handle.
        #[arg(long)]
        replace: bool,
    },
    /// Register your handle and key on chain (the EVM key that pays becomes its owner).
    Anchor {
        #[arg(long)]
        handle: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Replace your key on chain with a new one (made now; the old key is kept renamed).
    /// Every hub refuses the old key's tokens from its next check.
    Rotate {
        #[arg(long)]
        handle: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The current key is lost: rotate with the owner address alone (hubs flag this).
        #[arg(long)]
        recovery: bool,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Mark a key compromised on chain: hubs refuse everything signed with it.
    Revoke {
        #[arg(long)]
        handle: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// The key to revoke, 64 hex [default: the key in the key file].
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
        /// compromised, lost, superseded or unspecified.
        #[arg(long, default_value = "compromised")]
        reason: String,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// What the chain says about your handle and key.
    Status {
        #[arg(long)]
        handle: String,
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
    /// Deploy a new key registry contract (for a local test chain or a new network).
    DeployRegistry {
        /// An ERC-8004 identity registry to allow linking agents [default: none].
        #[arg(long, value_name = "ADDRESS")]
        identity_registry: Option<String>,
        #[command(flatten)]
        chain: chain::ChainArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Follow a hub: its repos are replicated here and kept up to date (read-only here).
    Add {
        /// The hub's address, e.g. https://studio.example.org:8443
        url: String,
        /// Follow only this repo, OWNER/NAME.
        #[arg(long, value_name = "OWNER/NAME")]
        repo: Option<String>,
        /// Follow every public repo of this owner.
        #[arg(long, value_name = "HANDLE")]
        owner: Option<String>,
        /// Follow every public repo of the hub (the default).
        #[arg(long)]
        all: bool,
    },
    /// List peers with their status (active, lagging, offline) and lag.
    List {
        /// Print JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Stop following a hub (its replicas stay, read-only).
    Remove { url: String },
}

#[derive(Debug, Subcommand)]
pub enum CarCommand {
    /// Write a commit (and with --history, all its ancestors) to a CAR file.
    Export {
        /// The repository, OWNER/NAME.
        repo: String,
        /// A branch, commit id or commit CID [default: the default branch].
        rev: Option<String>,
        /// The file to write.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Include every ancestor commit.
        #[arg(long)]
        history: bool,
    },
    /// Check every block of a CAR file and import its history into a repo.
    Import {
        /// The CAR file.
        file: PathBuf,
        /// The repository, OWNER/NAME [default: the one its ref-states name].
        #[arg(long, value_name = "OWNER/NAME")]
        repo: Option<String>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 for the LAN [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Serve https with the certificate made by `musehub init`.
    #[arg(long)]
    pub tls: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (their name is the first part of their repositories' URLs).
    Add { name: String },
    /// List users.
    List,
    /// Forget everything cached from the key registry; the hub refills it from the chain
    /// when it next starts (the chain is the authority, nothing is lost).
    ClearKeyCache,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, on its own line.
    Create {
        #[arg(long)]
        user: String,
        /// A note to recognise the token by, e.g. "laptop".
        #[arg(long, default_value = "")]
        label: String,
        /// Make the token expire after this long, e.g. 90d or 12h.
        #[arg(long, value_name = "DURATION")]
        expires: Option<humantime::Duration>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its number from `token list`.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository, e.g. `musehub repo create alice/song`.
    Create {
        /// OWNER/NAME
        repo: String,
        /// Hide it from everyone but its owner.
        #[arg(long)]
        private: bool,
    },
    /// List repositories.
    List {
        #[arg(long)]
        owner: Option<String>,
    },
    /// Make a repository public or private.
    SetVisibility {
        /// OWNER/NAME
        repo: String,
        /// public or private
        visibility: String,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let data_dir = config::data_dir(cli.data_dir.as_deref());
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    let overrides = match &command {
        Command::Serve(a) => Overrides {
            listen: a.listen.clone(),
            tls: a.tls.then_some(true),
        },
        _ => Overrides::default(),
    };
    if let Command::Setup {
        from,
        report,
        chown,
        nocloud,
        accept_data_filesystem,
    } = command
    {
        return setup::run(crate::setup::Options {
            from,
            data_dir,
            report,
            chown,
            nocloud,
            accept_data_filesystem,
        });
    }
    let config = Config::load(data_dir, cli.config.as_deref(), &overrides)?;
    match command {
        Command::Serve(_) => serve::run(config),
        Command::Init { tls_names } => admin::init(&config, &tls_names),
        Command::User(c) => admin::user(&config, c),
        Command::Token(c) => admin::token(&config, c),
        Command::Repo(c) => admin::repo(&config, c),
        Command::LoginLink { user, ttl } => admin::login_link(&config, &user, ttl.into()),
        Command::Doctor { json } => admin::doctor(&config, json),
        Command::Node { json } => ipfs::node(&config, json),
        Command::Get {
            cid,
            output,
            peers,
            timeout,
        } => ipfs::get(
            &config,
            ipfs::GetArgs {
                cid,
                out: output,
                peers,
                timeout: timeout.into(),
            },
        ),
        Command::Key(KeyCommand::Generate { handle, key_file }) => key::generate(&handle, key_file),
        Command::Key(KeyCommand::Show {
            handle,
            key_file,
            json,
        }) => key::show(&handle, key_file, json),
        Command::Key(KeyCommand::Import {
            handle,
            file,
            key_file,
            replace,
        }) => key::import(&handle, &file, key_file, replace),
        Command::Key(KeyCommand::Anchor {
            handle,
            key_file,
            chain,
        }) => chain::anchor(&config, &handle, key_file, &chain),
        Command::Key(KeyCommand::Rotate {
            handle,
            key_file,
            recovery,
            chain,
        }) => chain::rotate(&config, &handle, key_file, recovery, &chain),
        Command::Key(KeyCommand::Revoke {
            handle,
            key_file,
            key,
            reason,
            chain,
        }) => chain::revoke(&config, &handle, key_file, key, &reason, &chain),
        Command::Key(KeyCommand::Status {
            handle,
            key_file,
            json,
            chain,
        }) => chain::status(&config, &handle, key_file, json, &chain),
        Command::Key(KeyCommand::DeployRegistry {
            identity_registry,
            chain,
        }) => chain::deploy(&config, identity_registry, &chain),
        Command::Peer(PeerCommand::Add {
            url,
            repo,
            owner,
            all,
        }) => peer::add(&config, &url, repo, owner, all),
        Command::Peer(PeerCommand::List { json }) => peer::list(&config, json),
        Command::Peer(PeerCommand::Remove { url }) => peer::remove(&config, &url),
        Command::Login {
            hub,
            user,
            key_file,
            token,
            label,
        } => login::run(login::LoginArgs {
            hub,
            user,
            key_file,
            token,
            label,
        }),
        Command::Car(CarCommand::Export {
            repo,
            rev,
            output,
            history,
        }) => dag::car_export(&config, &repo, rev.as_deref(), &output, history),
        Command::Car(CarCommand::Import { file, repo }) => {
            dag::car_import(&config, &file, repo.as_deref())
        }
        Command::Clone {
            from,
            dir,
            peers,
            timeout,
        } => dag::clone(
            &config,
            &from,
            &dir,
            dag::NetArgs {
                peers,
                timeout: timeout.into(),
            },
        ),
        Command::Pull { dir } => dag::pull(&dir),
        Command::Verify {
            commit,
            key,
            car,
            peers,
            timeout,
        } => {
            let ok = dag::verify(
                &config,
                &commit,
                &key,
                car.as_deref(),
                dag::NetArgs {
                    peers,
                    timeout: timeout.into(),
                },
            )?;
            if ok {
                Ok(())
            } else {
                bail!("the commit did not verify")
            }
        }
        Command::Bench { args } => bench(&args),
        Command::Setup { .. } => unreachable!("setup runs before any configuration is loaded"),
    }
}

/// `musehub bench`: runs `musehub-bench` from beside this executable with the same options,
/// so the bench's code stays out of the hub, and exits as it exits.
fn bench(args: &[std::ffi::OsString]) -> Result<()> {
    let me = std::env::current_exe().context("finding this program's path")?;
    let bench = me.with_file_name("musehub-bench");
    if !bench.is_file() {
        bail!(
            "the bench is a separate program, and there is no {} (build it with \
             `cargo build --release --bin musehub-bench`; appliance images do not ship it)",
            bench.display()
        );
    }
    let status = std::process::Command::new(&bench)
        .args(args)
        .status()
        .with_context(|| format!("running {}", bench.display()))?;
    if !status.success() {
        // The bench said what went wrong; leave with its code and add nothing.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Splits `owner/name`.
fn split_repo(s: &str) -> Result<(&str, &str)> {
    match s.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => Ok((o, n)),
        _ => bail!("repository must be written OWNER/NAME, e.g. alice/song (got {s:?})"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
