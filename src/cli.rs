//! The `musehub` command line: parsing and the subcommands. The only module that prints to
//! stdout or decides the exit code (through [`run`]'s result).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{self, Config, Overrides};

mod admin;
mod ipfs;
mod serve;

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
    /// Measure push, fetch and lookup speed on this machine and print the figures.
    Bench(crate::bench::Args),
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
        Command::Bench(args) => crate::bench::run(&config, args),
    }
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
