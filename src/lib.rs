//! musehub: a self-hostable hub for Muse, the version control system for music.
//!
//! # Layout
//!
//! Data flows from the Muse CLI through `web` (HTTP) into `hub` (the protocol's rules), which
//! keeps metadata in `db` (SQLite, the only SQL) and bytes in `storage` (the block store, the
//! only file I/O for content). `wire` is the msgpack encoding; `cids` and `muse` are pure
//! id arithmetic. `cli` is the only module that prints or exits.
//!
//! Serving:
//! - [`server`]: bind, serve (http or https), graceful shutdown, the background tasks.
//! - [`web`]: routes, error answers, metrics middleware; the UI, the gateway, CAR export,
//!   signed requests and federation endpoints. Reads repos only through [`hub`].
//! - [`tls`]: local CA, server certificate, https accept loop, HTTP client.
//! - [`metrics`]: counters and `/metrics`.
//!
//! The hub and its data:
//! - [`hub`]: access rules as types (`Readable`/`Writable`), push, negotiate, fetch, releases,
//!   CAR export and import, what the web layer may ask.
//! - [`events`]: typed hub events from the event log, for IPFS, IPNS, federation, metrics.
//! - [`storage`]: content-addressed blocks; UnixFS import with `unixfs-v1-2025`; the ingest
//!   session and the one block read path.
//! - [`db`]: schema, migrations and queries (the only SQL).
//! - [`wire`]: the msgpack protocol: typed requests and answers, the streaming
//!   `push/objects` decoder, CLI-shaped records.
//! - [`rules`]: visibility, naming rules and request limits (pure).
//! - [`config`]: layered configuration and data-directory paths (uses only [`rules`]).
//!
//! Content addressing and history (pure):
//! - [`cids`]: object id ↔ CID.  [`muse`]: snapshot and commit id rules, paths, branch names.
//! - [`dag`]: the history as an IPLD DAG.  [`dagcbor`]: canonical DAG-CBOR.
//! - [`car`]: CARv1 framing.  [`midi`]: MIDI files drawn as piano rolls.
//!
//! Peers and identity:
//! - [`ipfs`]: the embedded IPFS node (libp2p, Bitswap, fetcher, IPNS).
//! - [`federation`]: following other hubs, replication, notices.  [`discovery`]: mDNS.
//! - [`identity`]: identity keys and key bundles.  [`chain`]: the key registry on an EVM
//!   chain.  [`httpsig`]: RFC 9421 signed requests.  [`auth`]: bearer tokens.
//!
//! Tools:
//! - [`cli`]: the `musehub` command (the only code that prints or exits).  [`clone`]: writing
//!   `.muse/` repos from a commit DAG.  [`setup`]: the appliance's first boot.
//!   [`doctor`]: integrity checks.  [`fsutil`]: atomic file writes.
//!
//! The bench is a program of its own beside `musehub` (`src/bin/musehub-bench`), so this
//! library holds none of its code.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod car;
pub mod chain;
pub mod cids;
pub mod cli;
pub mod clone;
pub mod config;
pub mod dag;
pub mod dagcbor;
pub mod db;
pub mod discovery;
pub mod doctor;
pub mod events;
pub mod federation;
pub mod fsutil;
pub mod httpsig;
pub mod hub;
pub mod identity;
pub mod ipfs;
pub mod metrics;
pub mod midi;
pub mod muse;
pub mod rules;
pub mod server;
pub mod setup;
pub mod storage;
pub mod tls;
pub mod web;
pub mod wire;

pub use config::Config;
pub use server::Server;
