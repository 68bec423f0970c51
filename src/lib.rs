//! musehub: a self-hostable hub for Muse, the version control system for music.
//!
//! # Layout
//!
//! Data flows from the Muse CLI through `web` (HTTP) into `hub` (the protocol's rules), which
//! keeps metadata in `db` (SQLite, the only SQL) and bytes in `storage` (the block store, the
//! only file I/O for content). `wire` is the msgpack encoding; `cids` and `muse` are pure
//! id arithmetic. `cli` is the only module that prints or exits.
//!
//! - [`config`]: layered configuration and data-directory paths.
//! - [`server`]: bind, serve (http or https), graceful shutdown.
//! - [`web`]: routes, error answers, metrics middleware.
//! - [`hub`]: access rules, push, negotiate, fetch, releases.
//! - [`wire`]: msgpack helpers and the streaming `push/objects` decoder.
//! - [`storage`]: content-addressed blocks; UnixFS import with `unixfs-v1-2025`.
//! - [`db`]: schema, migrations and queries.
//! - [`muse`]: snapshot and commit id rules, path and branch validation.
//! - [`cids`]: object id ↔ CID.
//! - [`events`]: typed hub events from the event log, for IPFS, IPNS, federation, metrics.
//! - [`auth`]: bearer tokens.  [`tls`]: local CA and https.  [`metrics`]: `/metrics`.
//! - [`cli`]: the `musehub` command.  [`doctor`]: integrity checks.  [`bench`]: figures.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod bench;
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
pub mod server;
pub mod setup;
pub mod storage;
pub mod tls;
pub mod web;
pub mod wire;

pub use config::Config;
pub use server::Server;
