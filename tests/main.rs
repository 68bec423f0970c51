//! The integration test binary (one binary keeps link time down).
//!
//! Contents:
//! - `harness`: a real hub on 127.0.0.1, HTTP client, wire body builders, CLI captures.
//! - `web_ui`: the HTML pages (handler level; Chromium runs in `tests/e2e`).
//! - `wire_endpoints`: every endpoint, auth, privacy, bad input, releases, tags.
//! - `wire_replay`: the real Muse CLI's captured sessions replayed against the hub.
//! - `unixfs_interop`: our UnixFS CIDs against the JS reference importer.
//! - `cli`: the `musehub` binary as operators use it: init, users, tokens, repos, serve, doctor.
//! - `crash`: SIGKILL during concurrent pushes loses nothing the hub acknowledged.

#![allow(unreachable_pub)]

mod cli;
mod crash;
mod harness;
mod unixfs_interop;
mod web_ui;
mod wire_endpoints;
mod wire_replay;
