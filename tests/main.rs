//! The integration test binary (one binary keeps link time down).
//!
//! Contents:
//! - `harness`: a real hub on 127.0.0.1, HTTP client, wire body builders, CLI captures.
//! - `web_ui`: the HTML pages (handler level; Chromium runs in `tests/e2e`).
//! - `web_repo`: the repository pages: files, README, history, commits, blobs, releases, privacy.
//! - `web_session`: sign-in links, session cookies, CSRF refusals and the settings forms.
//! - `web_media`: raw bytes with HTTP Range across leaves, ETags, privacy, the MIDI piano roll.
//! - `wire_endpoints`: every endpoint, auth, privacy, bad input, releases, tags.
//! - `wire_replay`: the real Muse CLI's captured sessions replayed against the hub.
//! - `gateway`: the trustless HTTP gateway `/ipfs/{cid}`: raw, CAR vectors, Range, privacy.
//! - `unixfs_interop`: our UnixFS CIDs against the JS reference importer.
//! - `cli`: the `musehub` binary as operators use it: init, users, tokens, repos, serve, doctor.
//! - `ipfs`: musehub IPFS nodes on loopback: Bitswap, the DHT, privacy, a rogue peer.
//! - `helia_interop`: Helia (js) against the hub: Bitswap both ways, same CIDs, IPNS, `musehub get`.
//! - `dag`: the history DAG: CAR export/import, clone (hub, CAR, Helia), pull, verify, bad CARs.
//! - `chain`: the key registry on a real anvil from Rust; a hub checking keys against it.
//! - `identity`: `musehub key generate|show|import`: key files, no secrets printed, bundles.
//! - `federation`: hubs on loopback replicating by signed notices; forged notices and bad bytes refused.
//! - `lan`: two hubs in network namespaces pair by mDNS, replicate, and heal after a partition.
//! - `appliance`: the OS image under qemu: first-boot setup, replication, reboots (`scripts/test-image`).
//! - `setup`: `musehub setup` from a boot-partition folder: first run, idempotent reruns, refusals, the link to `/setup`.
//! - `crash`: SIGKILL during concurrent pushes loses nothing the hub acknowledged.
//! - `limits`: headers trickled a byte at a time are cut off; connections past the cap are closed.
//! - `layers`: no two source files use each other (the layer graph has no cycles), and the web
//!   layer never reaches the database or block store past the hub's typed repo access.

#![allow(unreachable_pub)]

mod appliance;
mod chain;
mod cli;
mod crash;
mod dag;
mod federation;
mod gateway;
mod harness;
mod helia_interop;
mod identity;
mod ipfs;
mod lan;
mod layers;
mod limits;
mod setup;
mod unixfs_interop;
mod web_media;
mod web_repo;
mod web_session;
mod web_ui;
mod wire_endpoints;
mod wire_replay;
