//! `musehub-bench` (also run as `musehub bench`): push, fetch and lookup figures for this machine, measured end to end
//! against a real hub. It prints figures and never asserts timings: the command fails only
//! when something is functionally wrong (a non-200 answer, bytes that do not hash to their
//! id, a fetch that sends the wrong objects).
//!
//! # What is measured
//!
//! This is its own program beside `musehub`, so that the product library holds no bench code
//! and only programs print. It drives the `musehub` executable found beside it (or `--hub`)
//! and links the library only for the pure rules it checks answers against (ids, CIDs,
//! records).
//!
//! A hub is started as a child process (`musehub serve` on 127.0.0.1, a fresh data directory
//! under the system temp dir) with a user `bench` and a token. A song is generated
//! deterministically from `--seed`: commits each adding at most `--max-commit` bytes (an edit
//! of `song.txt`, 200-400 MIDI-sized files of 1-20 KB and 0-2 stems of 8-60 MiB) until the
//! history holds `--size` bytes of objects. Object bytes are regenerated on demand from
//! (seed, object index), so the bench itself holds only ids and sizes.
//!
//! - **SHA-256 MB/s**: the reference speed. Time spent purely inside SHA-256 (one thread) while
//!   computing the object ids of those same bytes, in this same run.
//! - **push MB/s**: object bytes / wall time of one whole `muse push` as the CLI makes it:
//!   after `filter-objects`, `push/objects` in batches of 400 objects with 4 in flight (each
//!   body streamed with an exact `Content-Length`), then one `push` of every commit and
//!   snapshot. Target: at least 0.5 × SHA-256 MB/s (each byte is hashed twice).
//! - **fetch MB/s**: object bytes / total time of fetching the history one commit at a time
//!   (`fetch {want: [k], have: [k-1]}`, as incremental pulls do), request sent to last byte
//!   read. Every answer is checked afterwards: `Content-Length` within the CLI's 64 MiB cap,
//!   exactly the objects new in commit k, each hashing to its id. Target: at least
//!   1.0 × SHA-256 MB/s (a read need not hash).
//! - **CAR export MB/s**: object bytes / time of `GET commits/main/car?history=full` (the
//!   whole history as one CARv1, every block once) read and dropped, over loopback HTTP
//!   (writing it to a file would time this machine's page cache, not the hub).
//!   **CAR import MB/s**: object bytes / wall time of `musehub car import` of a second, untimed
//!   export saved to a file, into a
//!   fresh data directory (one pass: nodes checked, objects re-chunked and stored as they
//!   come, ids recomputed, one transaction). Targets: export at least 1.0 ×, import at least
//!   0.5 × SHA-256 MB/s.
//! - **filter-objects ms**: one request of `--filter-ids` ids, half held by the repo and half
//!   absent, end to end; the median and worst of 5. Target: median at most 100 ms.
//! - **peak server RSS**: `VmHWM` of the hub process after all of the above. Target: at most
//!   100 MB.
//! - **N pushes + replica**: `--concurrent-pushes` histories (`--size` split between them,
//!   another owner) pushed at once to a fresh hub while a fresh replica following that owner
//!   syncs each as it lands; both hubs' peak RSS, and the time until the replica serves
//!   every pushed head. Target: both peaks at most 100 MB.
//! - **inline vs file writes**: 2,000 objects of 16 KiB imported through the block store's
//!   inline path in batches of 400 (as `push/objects` does), versus written as durable block
//!   files (the path of blocks over [`musehub::storage::INLINE_MAX`]). Objects per second;
//!   informational, it justifies the inline threshold.
//!
//! Beside push, fetch and filter-objects the table shows the CPU seconds the hub and the bench
//! used meanwhile (from `/proc/<pid>/stat`), which tells a CPU-bound hub from a waiting one,
//! and how much of the hub's went to the kernel: copying bytes into the page cache is a cost
//! every store pays, and on virtual machines whose host reclaims free guest memory it can cost
//! more than hashing (each page the guest touches again faults on the host).
//!
//! `musehub-bench --ui` measures the web UI's pages instead: see `src/bench/ui.rs`.
//!
//! MB is 10^6 bytes throughout. Targets are marked `ok` or `MISSED` for information only.
//! The bench never touches a real hub: every hub it starts has a fresh data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{StreamExt, TryStreamExt};
use rmpv::Value;

use musehub::cids::Id;
use musehub::config::{CLI_MAX_RESPONSE, parse_size};
use musehub::wire;

mod child;
mod disk;
mod ipfs;
mod synth;
mod ui;

use synth::{Object, Repo};

/// Objects per `push/objects` request and requests in flight (the Muse CLI's own numbers).
const CHUNK_OBJECTS: usize = 400;
const PUSH_WORKERS: usize = 4;
/// Times the filter-objects request is repeated.
const FILTER_RUNS: usize = 5;
/// The inline-vs-file comparison.
const DISK_OBJECTS: usize = 2_000;
const DISK_OBJECT_SIZE: usize = 16 * 1024;

// The goals of the block-store issue: ingest at half the speed of one SHA-256 core (each
// byte is hashed twice), reads at its full speed (a read need not hash).
const TARGET_PUSH_RATIO: f64 = 0.5;
const TARGET_FETCH_RATIO: f64 = 1.0;
const TARGET_EXPORT_RATIO: f64 = 1.0;
const TARGET_IMPORT_RATIO: f64 = 0.5;
const TARGET_RSS_MB: f64 = 100.0;
const TARGET_FILTER_MS: f64 = 100.0;
/// Hub CPU per GB pushed, as a multiple of the two-hash floor.
const TARGET_FLOOR_RATIO: f64 = 1.3;

const OWNER: &str = "bench";
const SLUG: &str = "song";

/// Measure push, fetch and lookup speed of a musehub on this machine and print the figures.
///
/// Every run starts its own hubs on 127.0.0.1 with fresh data directories under the system
/// temp dir and removes them afterwards. Targets are marked `ok` or `MISSED` for information;
/// the bench fails only when a hub answers wrongly.
#[derive(Debug, clap::Parser)]
#[command(name = "musehub-bench", version)]
struct Args {
    /// The `musehub` executable to measure [default: the one beside this program].
    #[arg(long, value_name = "PATH")]
    hub: Option<PathBuf>,
    /// Total size of the objects of the generated history, e.g. "1 GiB" or "64MiB".
    #[arg(long, default_value = "1 GiB", value_name = "SIZE")]
    size: String,
    /// Most bytes one commit may add (keep it under the CLI's 64 MiB fetch cap).
    #[arg(long, default_value = "60 MiB", value_name = "SIZE")]
    max_commit: String,
    /// Ids sent in the timed filter-objects request (half present, half absent).
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    filter_ids: usize,
    /// Commits in the second, sketchbook-shaped history (small edits to song.txt and a few
    /// MIDI takes), whose commit-by-commit fetch and replica catch-up are measured too; 0
    /// leaves it out.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    small_commits: usize,
    /// Pushes run at once (another owner's repos, `--size` split between them) while a
    /// replica that follows that owner syncs them; the peak RSS of both hubs over that phase
    /// is reported. 0 leaves it out.
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrent_pushes: usize,
    /// Seed of the generated history; the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Keep the temporary data directory (its path is printed).
    #[arg(long)]
    keep: bool,
    /// Measure the web UI instead: page latency on a long history under concurrent readers
    /// (see `bench/ui.rs`).
    #[arg(long)]
    ui: bool,
    /// With --ui: commits in the generated history, sent in one push.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    ui_commits: usize,
    /// With --ui: concurrent readers.
    #[arg(long, default_value_t = 100, value_name = "N")]
    ui_readers: usize,
    /// With --ui: how long each page is loaded, e.g. 10s.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    ui_duration: humantime::Duration,
    /// Measure the IPFS node instead: idle RSS with the swarm running, Bitswap to a Helia
    /// peer against Helia to Helia, gateway CAR speed (needs `npm ci --prefix tests/helia`).
    #[arg(long)]
    ipfs: bool,
    /// With --ipfs: size of the one object sent, e.g. 100MB.
    #[arg(long, default_value = "100MB", value_name = "SIZE")]
    ipfs_size: String,
}

/// The temporary directory of one run, removed when dropped unless kept.
#[derive(Debug)]
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(keep: bool) -> Result<WorkDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("musehub-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn rate(bytes: u64, d: Duration) -> f64 {
    mb(bytes) / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU seconds used by the hub and by the bench itself, to tell where a phase's time went.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// The hub's CPU seconds, user and system.
    hub: f64,
    /// Of which in the kernel (system time): page-cache copies, sockets, file system.
    hub_sys: f64,
    bench: f64,
}

impl Cpu {
    fn now(hub: &child::Hub) -> Cpu {
        let (user, sys) = hub.cpu_split().unwrap_or((0.0, 0.0));
        Cpu {
            hub: user + sys,
            hub_sys: sys,
            bench: child::cpu_seconds("self").unwrap_or(0.0),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            hub: self.hub - before.hub,
            hub_sys: self.hub_sys - before.hub_sys,
            bench: self.bench - before.bench,
        }
    }

    fn show(self, wall: Duration) -> String {
        format!(
            "hub {:.1} s ({:.1} s in the kernel), bench {:.1} s over {:.1} s",
            self.hub,
            self.hub_sys,
            self.bench,
            wall.as_secs_f64()
        )
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({ "hub_s": self.hub, "hub_sys_s": self.hub_sys, "bench_s": self.bench })
    }
}

/// Figures of the push phase.
#[derive(Debug)]
struct PushFigures {
    filter: Duration,
    objects: Duration,
    push: Duration,
    total: Duration,
    requests: usize,
    body_bytes: u64,
}

/// Figures of the CAR phases: the archive's size, the export over HTTP and the import.
#[derive(Debug)]
struct CarFigures {
    bytes: u64,
    object_bytes: u64,
    export: Duration,
    import: Duration,
    export_cpu: Cpu,
    /// CPU seconds of the `car import` process.
    import_cpu: f64,
    /// Of which in the kernel.
    import_sys: f64,
}

impl CarFigures {
    /// Object bytes per second, the unit every other figure uses.
    fn export_rate(&self) -> f64 {
        rate(self.object_bytes, self.export)
    }

    fn import_rate(&self) -> f64 {
        rate(self.object_bytes, self.import)
    }
}

/// Figures of the fetch phase.
#[derive(Debug)]
struct FetchFigures {
    total: Duration,
    slowest: Duration,
    object_bytes: u64,
    answer_bytes: u64,
    largest_answer: u64,
}

/// Figures of the filter-objects phase.
#[derive(Debug)]
struct FilterFigures {
    ids: usize,
    present_distinct: usize,
    runs: Vec<Duration>,
}

impl FilterFigures {
    fn median(&self) -> Duration {
        let mut r = self.runs.clone();
        r.sort();
        r[r.len() / 2]
    }

    fn max(&self) -> Duration {
        self.runs.iter().copied().max().unwrap_or_default()
    }
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("musehub-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The `musehub` executable the bench drives: `--hub`, or the one beside this program
/// (cargo builds both into one directory, and the package installs both together).
fn hub_exe(args: &Args) -> Result<PathBuf> {
    if let Some(path) = &args.hub {
        ensure!(path.is_file(), "--hub {}: no such file", path.display());
        return Ok(path.clone());
    }
    let me = std::env::current_exe().context("finding this program's path")?;
    let beside = me.with_file_name("musehub");
    ensure!(
        beside.is_file(),
        "no `musehub` executable beside {}: build both (`cargo build --release`) or name one with --hub PATH",
        me.display()
    );
    Ok(beside)
}

/// Runs the benchmark. See the module docs.
fn run(args: Args) -> Result<()> {
    if args.ui {
        return ui::run(&args);
    }
    if args.ipfs {
        return ipfs::run(&args);
    }
    let size = parse_size(&args.size)?;
    let max_commit = parse_size(&args.max_commit)?;
    ensure!(size > 0, "--size must be more than 0");
    ensure!(max_commit >= 1 << 20, "--max-commit must be at least 1 MiB");
    ensure!(args.filter_ids >= 2, "--filter-ids must be at least 2");
    let _ = rustls::crypto::ring::default_provider().install_default();

    let work = WorkDir::create(args.keep)?;
    let exe = hub_exe(&args)?;
    let hub_dir = work.path.join("hub");

    progress(format!("[1/9] starting a hub in {}", hub_dir.display()));
    let (mut hub, token) = child::hub_with_owner(&exe, &hub_dir, OWNER)?;
    progress(format!("      hub pid {} at {}", hub.pid(), hub.url));

    progress(format!(
        "[2/9] generating {} of history (commits up to {}, seed {})",
        args.size, args.max_commit, args.seed
    ));
    let t = Instant::now();
    let repo = synth::generate(args.seed, size, max_commit);
    let sha_rate = rate(repo.total_bytes, repo.hash_time);
    progress(format!(
        "      {} commits, {} objects, {:.1} MB in {:.1} s; SHA-256 alone {:.0} MB/s",
        repo.commits.len(),
        repo.objects.len(),
        mb(repo.total_bytes),
        t.elapsed().as_secs_f64(),
        sha_rate
    ));

    let (rt, client) = child::runtime_and_client()?;
    let api = Api {
        client,
        base: format!("{}/{OWNER}/{SLUG}", hub.url.trim_end_matches('/')),
        token,
    };

    progress(format!(
        "[3/9] pushing the whole history in one push ({} objects)",
        repo.objects.len()
    ));
    let before = Cpu::now(&hub);
    let push = rt.block_on(push(&api, &repo))?;
    let push_cpu = Cpu::now(&hub).since(before);
    hub.check_alive()?;
    progress(format!(
        "      {:.0} MB/s ({:.1} s: filter {:.0} ms, objects {:.1} s in {} requests, push {:.0} ms)",
        rate(repo.total_bytes, push.total),
        push.total.as_secs_f64(),
        ms(push.filter),
        push.objects.as_secs_f64(),
        push.requests,
        ms(push.push)
    ));

    progress(format!(
        "      hub peak RSS after the push {:.0} MB",
        hub.peak_rss_kib()? as f64 * 1024.0 / 1e6
    ));
    progress(format!(
        "[4/9] fetching commit by commit ({} fetches)",
        repo.commits.len()
    ));
    let before = Cpu::now(&hub);
    let fetch = rt.block_on(fetch(&api, &repo))?;
    let fetch_cpu = Cpu::now(&hub).since(before);
    hub.check_alive()?;
    progress(format!(
        "      hub peak RSS so far {:.0} MB",
        hub.peak_rss_kib()? as f64 * 1024.0 / 1e6
    ));
    progress(format!(
        "      {:.0} MB/s ({:.1} s; slowest fetch {:.0} ms, largest answer {:.1} MB)",
        rate(fetch.object_bytes, fetch.total),
        fetch.total.as_secs_f64(),
        ms(fetch.slowest),
        mb(fetch.largest_answer)
    ));

    progress("[4b/9] a second hub replicates the repo (federation catch-up)");
    let catchup = replica_catchup(
        &exe,
        &work.path.join("replica"),
        &hub.url,
        OWNER,
        &rt,
        &api.client,
    )?;
    hub.check_alive()?;
    progress(format!(
        "      {:.1} s ({:.0} MB/s); incremental fetch took {:.1} s: ratio {:.2} (target <= 1.2)",
        catchup.as_secs_f64(),
        rate(repo.total_bytes, catchup),
        fetch.total.as_secs_f64(),
        catchup.as_secs_f64() / fetch.total.as_secs_f64()
    ));

    let sketch = if args.small_commits > 0 {
        progress(format!(
            "[4c/9] a sketchbook of {} small commits: one push, fetched commit by commit, then replicated",
            args.small_commits
        ));
        let s = sketchbook(
            &exe,
            &hub_dir,
            &hub.url,
            &rt,
            &api.client,
            &work.path,
            &args,
        )?;
        hub.check_alive()?;
        progress(format!(
            "      push {:.1} s, fetch {:.1} s, replica catch-up {:.1} s: ratio {:.2} (target <= 1.2)",
            s.push.as_secs_f64(),
            s.fetch.as_secs_f64(),
            s.catchup.as_secs_f64(),
            s.ratio()
        ));
        Some(s)
    } else {
        None
    };

    let load = if args.concurrent_pushes > 0 {
        progress(format!(
            "[4d/9] {} pushes at once to a fresh hub while a replica syncs them",
            args.concurrent_pushes
        ));
        let l = concurrent_pushes(&exe, &work.path, &rt, &api.client, &args, size, max_commit)?;
        progress(format!(
            "      {:.1} MB in {:.1} s, replica caught up after {:.1} s; peak RSS: hub {:.0} MB, replica {:.0} MB",
            mb(l.bytes),
            l.pushes.as_secs_f64(),
            l.caught_up.as_secs_f64(),
            l.hub_mb,
            l.replica_mb
        ));
        Some(l)
    } else {
        None
    };

    progress("[5/9] CAR export of the whole history over HTTP (history=full)");
    // Timed with the bytes read and dropped: writing them to a file would time this
    // machine's page cache, not the hub. The file the import reads is a second, untimed export.
    let car_path = work.path.join("history.car");
    let before = Cpu::now(&hub);
    let export = rt.block_on(car_export(&api, None))?;
    let export_cpu = Cpu::now(&hub).since(before);
    hub.check_alive()?;
    progress(format!(
        "      {:.0} MB/s ({:.1} MB in {:.1} s); hub peak RSS so far {:.0} MB",
        rate(export.1, export.0),
        mb(export.1),
        export.0.as_secs_f64(),
        hub.peak_rss_kib()? as f64 * 1024.0 / 1e6
    ));
    let saved = rt.block_on(car_export(&api, Some(&car_path)))?;
    ensure!(
        saved.1 == export.1,
        "two exports of the same history differ in length ({} and {} bytes)",
        export.1,
        saved.1
    );
    progress("[6/9] CAR import into a fresh data directory (musehub car import)");
    let import_dir = work.path.join("import");
    admin_user(&exe, &import_dir)?;
    let t = Instant::now();
    let children_before = child::children_cpu_seconds().unwrap_or((0.0, 0.0));
    child::admin(
        &exe,
        &import_dir,
        &[
            "car",
            "import",
            &car_path.to_string_lossy(),
            "--repo",
            &format!("{OWNER}/{SLUG}"),
        ],
    )?;
    let import = t.elapsed();
    let children_after = child::children_cpu_seconds().unwrap_or((0.0, 0.0));
    let import_sys = children_after.1 - children_before.1;
    let import_cpu = children_after.0 - children_before.0 + import_sys;
    progress(format!(
        "      {:.0} MB/s ({:.1} s)",
        rate(export.1, import),
        import.as_secs_f64()
    ));
    let car = CarFigures {
        bytes: export.1,
        object_bytes: repo.total_bytes,
        export: export.0,
        import,
        export_cpu,
        import_cpu,
        import_sys,
    };
    if !args.keep {
        let _ = std::fs::remove_file(&car_path);
    }

    progress(format!(
        "[7/9] filter-objects with {} ids, {FILTER_RUNS} times",
        args.filter_ids
    ));
    let before = Cpu::now(&hub);
    let filter = rt.block_on(filter(&api, &repo, args.filter_ids))?;
    let filter_cpu = Cpu::now(&hub).since(before);
    hub.check_alive()?;
    progress(format!(
        "      median {:.1} ms, max {:.1} ms",
        ms(filter.median()),
        ms(filter.max())
    ));

    progress("[8/9] reading the hub's peak RSS and stopping it");
    let rss_kib = hub.peak_rss_kib()?;
    let rss_mb = rss_kib as f64 * 1024.0 / 1e6;
    let server_log = hub.stop();

    progress(format!(
        "[9/9] inline vs file block writes ({DISK_OBJECTS} objects of {} KiB)",
        DISK_OBJECT_SIZE / 1024
    ));
    let disk = rt.block_on(disk::measure(
        &work.path.join("disk"),
        args.seed,
        DISK_OBJECTS,
        DISK_OBJECT_SIZE,
        CHUNK_OBJECTS,
    ))?;

    let cpu = [push_cpu, fetch_cpu, filter_cpu];
    let report = Report {
        args: &args,
        repo: &repo,
        car: &car,
        sha_rate,
        push: &push,
        fetch: &fetch,
        filter: &filter,
        cpu,
        rss_mb,
        disk,
    };
    println!("{}", report.table());
    println!(
        "replica catch-up      {:>8.1} s  ({:.0} MB/s; the commit-by-commit fetch took {:.1} s: {:.2}x, target <= 1.2x, {})",
        catchup.as_secs_f64(),
        rate(repo.total_bytes, catchup),
        fetch.total.as_secs_f64(),
        catchup.as_secs_f64() / fetch.total.as_secs_f64(),
        verdict(catchup.as_secs_f64() <= 1.2 * fetch.total.as_secs_f64())
    );
    if let Some(s) = &sketch {
        println!(
            "sketchbook catch-up   {:>8.1} s  ({} commits, {:.1} MB; push {:.1} s; the commit-by-commit fetch took {:.1} s: {:.2}x, target <= 1.2x, {})",
            s.catchup.as_secs_f64(),
            s.commits,
            mb(s.bytes),
            s.push.as_secs_f64(),
            s.fetch.as_secs_f64(),
            s.ratio(),
            verdict(s.ratio() <= 1.2)
        );
    }
    if let Some(l) = &load {
        println!(
            "{} pushes + replica    peak RSS hub {:.0} MB, replica {:.0} MB (target <= {TARGET_RSS_MB:.0} MB each, {}); {:.1} MB pushed in {:.1} s, replica caught up after {:.1} s",
            args.concurrent_pushes,
            l.hub_mb,
            l.replica_mb,
            verdict(l.hub_mb.max(l.replica_mb) <= TARGET_RSS_MB),
            mb(l.bytes),
            l.pushes.as_secs_f64(),
            l.caught_up.as_secs_f64()
        );
    }
    if args.json {
        println!("{}", report.json());
        println!(
            "{}",
            serde_json::json!({
                "replica_catchup_s": catchup.as_secs_f64(),
                "incremental_fetch_s": fetch.total.as_secs_f64(),
                "catchup_ratio": catchup.as_secs_f64() / fetch.total.as_secs_f64(),
                "sketch_commits": sketch.as_ref().map(|s| s.commits),
                "sketch_push_s": sketch.as_ref().map(|s| s.push.as_secs_f64()),
                "sketch_fetch_s": sketch.as_ref().map(|s| s.fetch.as_secs_f64()),
                "sketch_catchup_s": sketch.as_ref().map(|s| s.catchup.as_secs_f64()),
                "sketch_catchup_ratio": sketch.as_ref().map(SketchFigures::ratio),
            })
        );
    }
    if !server_log.is_empty() {
        eprintln!(
            "bench: the hub logged {} line(s) at warn level or above:",
            server_log.len()
        );
        for l in &server_log {
            eprintln!("  {l}");
        }
    }
    drop(rt);
    drop(work);
    Ok(())
}

/// Starts a second hub that follows `owner` on `origin` and times it until it reports the
/// peer active with no lag (every commit replicated and verified).
fn replica_catchup(
    exe: &Path,
    dir: &Path,
    origin: &str,
    owner: &str,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
) -> Result<Duration> {
    child::admin(exe, dir, &["peer", "add", origin, "--owner", owner])?;
    let t = Instant::now();
    let replica = child::Hub::start(exe, dir)?;
    let done = wait_caught_up(&replica, origin, t, rt, client)?;
    let log = replica.stop();
    if !log.is_empty() {
        eprintln!("bench: the replica logged: {}", log.join("\n  "));
    }
    Ok(done)
}

/// Waits until `replica` reports `origin` active with no lag; returns the time since `t`.
fn wait_caught_up(
    replica: &child::Hub,
    origin: &str,
    t: Instant,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
) -> Result<Duration> {
    let origin = origin.trim_end_matches('/').to_owned();
    rt.block_on(async {
        loop {
            let text = client
                .get(format!("{}/metrics", replica.url.trim_end_matches('/')))
                .send()
                .await?
                .text()
                .await?;
            let up = text.contains(&format!(
                "musehub_peer_up{{peer=\"{origin}\",status=\"active\"}} 1"
            ));
            let caught_up =
                text.contains(&format!("musehub_peer_lag_commits{{peer=\"{origin}\"}} 0"));
            if up && caught_up {
                return Ok::<_, anyhow::Error>(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(3600) {
                bail!("the replica did not catch up within an hour");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Whether the repo at `base` answers `GET refs` with `main` at `tip`.
async fn serves_head(client: &reqwest::Client, base: &str, tip: &Id) -> bool {
    let Ok(res) = client.get(format!("{base}/refs")).send().await else {
        return false;
    };
    let Ok(v) = answer("refs", res).await else {
        return false;
    };
    let field = |v: &Value, k: &str| -> Option<Value> {
        v.as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v.clone())
    };
    field(&v, "branch_heads")
        .and_then(|h| field(&h, "main"))
        .and_then(|m| m.as_str().map(|s| s == tip.to_hex()))
        .unwrap_or(false)
}

/// The owner of the concurrent pushes' repos.
const LOAD_OWNER: &str = "band";

/// Figures of the concurrent phase.
#[derive(Debug)]
struct LoadFigures {
    bytes: u64,
    /// Until the last push finished.
    pushes: Duration,
    /// Until the replica reported no lag.
    caught_up: Duration,
    hub_mb: f64,
    replica_mb: f64,
}

/// `--concurrent-pushes` histories (`--size` split between them) pushed at once to a fresh
/// hub, while a replica that follows their owner syncs each as its push lands. Both hubs
/// start for this phase, so their peaks are this phase's own.
fn concurrent_pushes(
    exe: &Path,
    work: &Path,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    args: &Args,
    size: u64,
    max_commit: u64,
) -> Result<LoadFigures> {
    let n = args.concurrent_pushes;
    let (mut hub, token) = child::hub_with_owner(exe, &work.join("load-hub"), LOAD_OWNER)?;
    let each = (size / n as u64).max(1);
    let repos: Vec<Repo> = (0..n)
        .map(|i| synth::generate(args.seed + 1 + i as u64, each, max_commit))
        .collect();
    let bytes = repos.iter().map(|r| r.total_bytes).sum();
    let replica_dir = work.join("load-replica");
    child::admin(
        exe,
        &replica_dir,
        &["peer", "add", &hub.url, "--owner", LOAD_OWNER],
    )?;
    let replica = child::Hub::start(exe, &replica_dir)?;
    let t = Instant::now();
    rt.block_on(futures_util::future::try_join_all(
        repos.iter().enumerate().map(|(i, repo)| {
            let api = Api {
                client: client.clone(),
                base: format!("{}/{LOAD_OWNER}/take-{i}", hub.url.trim_end_matches('/')),
                token: token.clone(),
            };
            async move { push(&api, repo).await }
        }),
    ))?;
    let pushes = t.elapsed();
    // Caught up when the replica serves every repo at its pushed head.
    let caught_up = rt.block_on(async {
        for (i, repo) in repos.iter().enumerate() {
            let tip = repo.commits.last().map(|c| c.id).context("no commits")?;
            let base = format!(
                "{}/{LOAD_OWNER}/take-{i}",
                replica.url.trim_end_matches('/')
            );
            while !serves_head(client, &base, &tip).await {
                if t.elapsed() > Duration::from_secs(3600) {
                    bail!("the replica did not catch up within an hour");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok::<_, anyhow::Error>(t.elapsed())
    })?;
    let kib = |k: u64| k as f64 * 1024.0 / 1e6;
    let figures = LoadFigures {
        bytes,
        pushes,
        caught_up,
        hub_mb: kib(hub.peak_rss_kib()?),
        replica_mb: kib(replica.peak_rss_kib()?),
    };
    hub.check_alive()?;
    for (who, log) in [("hub", hub.stop()), ("replica", replica.stop())] {
        if !log.is_empty() {
            eprintln!(
                "bench: the {who} of the concurrent pushes logged: {}",
                log.join("\n  ")
            );
        }
    }
    Ok(figures)
}

/// The owner of the sketchbook history.
const SKETCH_OWNER: &str = "sketches";

/// Figures of the sketchbook history: many small commits.
#[derive(Debug)]
struct SketchFigures {
    commits: usize,
    bytes: u64,
    push: Duration,
    fetch: Duration,
    catchup: Duration,
}

impl SketchFigures {
    /// Replica catch-up over commit-by-commit fetch.
    fn ratio(&self) -> f64 {
        self.catchup.as_secs_f64() / self.fetch.as_secs_f64().max(1e-9)
    }
}

/// Pushes a history of `--small-commits` small commits to the running hub as another owner,
/// fetches it commit by commit, and times a replica that follows that owner.
fn sketchbook(
    exe: &Path,
    hub_dir: &Path,
    hub_url: &str,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    work: &Path,
    args: &Args,
) -> Result<SketchFigures> {
    let token = child::add_owner(exe, hub_dir, SKETCH_OWNER)?;
    let repo = synth::generate_small(args.seed, args.small_commits);
    let api = Api {
        client: client.clone(),
        base: format!("{}/{SKETCH_OWNER}/book", hub_url.trim_end_matches('/')),
        token,
    };
    let push = rt.block_on(push(&api, &repo))?;
    let fetch = rt.block_on(fetch(&api, &repo))?;
    let catchup = replica_catchup(
        exe,
        &work.join("sketch-replica"),
        hub_url,
        SKETCH_OWNER,
        rt,
        client,
    )?;
    Ok(SketchFigures {
        commits: repo.commits.len(),
        bytes: repo.total_bytes,
        push: push.total,
        fetch: fetch.total,
        catchup,
    })
}

/// Downloads the whole history's CAR, into `path` or dropping the bytes; returns the time and
/// the length.
async fn car_export(api: &Api, path: Option<&Path>) -> Result<(Duration, u64)> {
    use tokio::io::AsyncWriteExt;
    let t = Instant::now();
    let res = api
        .client
        .get(api.url("commits/main/car?history=full"))
        .bearer_auth(&api.token)
        .send()
        .await
        .context("GET commits/main/car")?;
    ensure!(res.status().is_success(), "CAR export: {}", res.status());
    let mut file = match path {
        Some(p) => Some(tokio::fs::File::create(p).await?),
        None => None,
    };
    let mut body = res.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("reading the CAR")?;
        n += chunk.len() as u64;
        if let Some(f) = file.as_mut() {
            f.write_all(&chunk).await?;
        }
    }
    if let Some(mut f) = file {
        f.flush().await?;
    }
    Ok((t.elapsed(), n))
}

/// A data directory with the bench's owner in it, for the import.
fn admin_user(exe: &Path, dir: &Path) -> Result<()> {
    child::admin(exe, dir, &["user", "add", OWNER]).map(|_| ())
}

/// The HTTP side: the repo's base URL and the bearer token.
#[derive(Debug)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/x-msgpack")
            .header(
                reqwest::header::ACCEPT,
                "application/x-msgpack, application/json",
            )
    }

    /// POSTs a small msgpack body and returns the decoded 200 answer.
    async fn call(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        let res = self
            .post(path)
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        answer(path, res).await
    }
}

/// The body of a 200 answer; any other status is an error naming the endpoint.
async fn answer_bytes(path: &str, res: reqwest::Response) -> Result<bytes::Bytes> {
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {path}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes);
        bail!(
            "{path} answered {status}: {}",
            text.chars().take(400).collect::<String>()
        );
    }
    Ok(bytes)
}

/// The decoded msgpack map of a 200 answer.
async fn answer(path: &str, res: reqwest::Response) -> Result<Value> {
    let bytes = answer_bytes(path, res).await?;
    wire::decode(&bytes)
        .with_context(|| format!("{path} answered something that is not a msgpack map"))
}

fn ids_value<'a>(ids: impl IntoIterator<Item = &'a Id>) -> Value {
    Value::Array(ids.into_iter().map(|i| Value::from(i.to_hex())).collect())
}

fn parse_ids(v: &Value, key: &str) -> Result<Vec<Id>> {
    Ok(wire::Fields::of(v, "answer")?.ids(key, true)?)
}

/// One whole push as `muse push` makes it.
async fn push(api: &Api, repo: &Repo) -> Result<PushFigures> {
    let t = Instant::now();
    let ask = wire::encode(&wire::map([(
        "object_ids",
        ids_value(repo.objects.iter().map(|o| &o.id)),
    )]));
    let missing = parse_ids(&api.call("filter-objects", ask).await?, "missing")?;
    let filter = t.elapsed();
    ensure!(
        missing.len() == repo.objects.len(),
        "filter-objects on a new repo named {} of {} ids missing",
        missing.len(),
        repo.objects.len()
    );
    let missing: std::collections::HashSet<Id> = missing.into_iter().collect();
    let upload: Arc<[Object]> = repo
        .objects
        .iter()
        .filter(|o| missing.contains(&o.id))
        .copied()
        .collect();

    let started = Instant::now();
    let ranges: Vec<std::ops::Range<usize>> = (0..upload.len())
        .step_by(CHUNK_OBJECTS)
        .map(|s| s..(s + CHUNK_OBJECTS).min(upload.len()))
        .collect();
    let requests = ranges.len();
    let results: Vec<(u64, u64, u64)> = futures_util::stream::iter(ranges)
        .map(|range| {
            let upload = upload.clone();
            async move {
                let len = synth::objects_body_len(&upload[range.clone()]);
                let pieces = synth::ObjectsBody::new(repo.seed, upload, range, synth::PIECE);
                let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
                    pieces.map(Ok::<_, std::io::Error>),
                ));
                let res = api
                    .post("push/objects")
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(body)
                    .send()
                    .await
                    .context("POST push/objects")?;
                let v = answer("push/objects", res).await?;
                let f = wire::Fields::of(&v, "answer")?;
                let count = |k: &str| {
                    f.get(k)
                        .and_then(Value::as_u64)
                        .with_context(|| format!("push/objects answer lacks {k}"))
                };
                Ok::<_, anyhow::Error>((count("stored")?, count("skipped")?, len))
            }
        })
        .buffer_unordered(PUSH_WORKERS)
        .try_collect()
        .await?;
    let objects = started.elapsed();
    let stored: u64 = results.iter().map(|r| r.0).sum();
    let skipped: u64 = results.iter().map(|r| r.1).sum();
    let body_bytes: u64 = results.iter().map(|r| r.2).sum();
    ensure!(
        stored == upload.len() as u64 && skipped == 0,
        "push/objects stored {stored} and skipped {skipped} of {} new objects",
        upload.len()
    );

    let t = Instant::now();
    let v = api.call("push", synth::push_body(repo, "main")).await?;
    let push = t.elapsed();
    let total = started.elapsed();
    let f = wire::Fields::of(&v, "answer")?;
    ensure!(f.bool_or("ok", false)?, "push answered ok=false: {v}");
    let tip = repo.commits.last().map(|c| c.id).context("no commits")?;
    ensure!(
        f.opt_id("remote_head")? == Some(tip),
        "push moved main to {:?}, not {tip}",
        f.opt_str("remote_head")?
    );
    Ok(PushFigures {
        filter,
        objects,
        push,
        total,
        requests,
        body_bytes,
    })
}

/// Fetches the history one commit at a time and checks every answer.
async fn fetch(api: &Api, repo: &Repo) -> Result<FetchFigures> {
    let mut figures = FetchFigures {
        total: Duration::ZERO,
        slowest: Duration::ZERO,
        object_bytes: 0,
        answer_bytes: 0,
        largest_answer: 0,
    };
    // One buffer for every answer: fresh 64 MiB allocations would time the bench's page faults.
    let mut raw: Vec<u8> = Vec::new();
    for (k, commit) in repo.commits.iter().enumerate() {
        let have: Vec<&Id> = k
            .checked_sub(1)
            .map(|p| &repo.commits[p].id)
            .into_iter()
            .collect();
        let body = wire::encode(&wire::map([
            ("want", ids_value([&commit.id])),
            ("have", ids_value(have)),
        ]));
        let t = Instant::now();
        let res = api
            .post("fetch")
            .body(body)
            .send()
            .await
            .context("POST fetch")?;
        let status = res.status();
        if status != reqwest::StatusCode::OK {
            answer("fetch", res).await?;
            bail!("fetch answered {status}");
        }
        let declared = res
            .content_length()
            .context("fetch answer has no Content-Length (the CLI needs it)")?;
        ensure!(
            declared <= CLI_MAX_RESPONSE,
            "fetch of commit {} declares {declared} bytes, over the CLI's {CLI_MAX_RESPONSE}-byte cap",
            k + 1
        );
        raw.clear();
        raw.reserve(declared as usize);
        let mut stream = res.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.context("reading a fetch answer")?;
            ensure!(
                raw.len() + piece.len() <= declared as usize,
                "fetch answer is longer than its Content-Length"
            );
            raw.extend_from_slice(&piece);
        }
        let took = t.elapsed();
        ensure!(
            raw.len() as u64 == declared,
            "fetch answer is {} bytes, Content-Length said {declared}",
            raw.len()
        );
        figures.total += took;
        figures.slowest = figures.slowest.max(took);
        figures.answer_bytes += declared;
        figures.largest_answer = figures.largest_answer.max(declared);
        figures.object_bytes +=
            check_fetch(&raw, repo, k).with_context(|| format!("fetch of commit {}", k + 1))?;
    }
    Ok(figures)
}

/// Checks a fetch answer for commit index `k`: that commit and its snapshot, exactly its new
/// objects, each hashing to its id. Returns the object bytes.
fn check_fetch(raw: &[u8], repo: &Repo, k: usize) -> Result<u64> {
    let v = wire::decode(raw)?;
    let f = wire::Fields::of(&v, "answer")?;
    let commit = &repo.commits[k];
    let commits = f.array("commits")?;
    ensure!(
        commits.len() == 1,
        "{} commits sent, expected 1",
        commits.len()
    );
    ensure!(
        wire::Fields::of(&commits[0], "commits[0]")?.id("commit_id")? == commit.id,
        "a different commit was sent"
    );
    let snapshots = f.array("snapshots")?;
    ensure!(
        snapshots.len() == 1,
        "{} snapshots sent, expected 1",
        snapshots.len()
    );
    ensure!(
        wire::Fields::of(&snapshots[0], "snapshots[0]")?.id("snapshot_id")? == commit.snapshot_id,
        "a different snapshot was sent"
    );
    let mut expected: HashMap<Id, u64> = repo.objects[commit.new.clone()]
        .iter()
        .map(|o| (o.id, o.size))
        .collect();
    let objects = f.array("objects")?;
    let mut bytes = 0;
    for (i, o) in objects.iter().enumerate() {
        let path = format!("objects[{i}]");
        let of = wire::Fields::of(o, &path)?;
        let id = of.id("object_id")?;
        let Some(Value::Binary(content)) = of.get("content") else {
            bail!("{path}.content is not msgpack bin")
        };
        let Some(size) = expected.remove(&id) else {
            bail!("object {id} was sent but is not new in this commit (or was sent twice)")
        };
        ensure!(
            content.len() as u64 == size,
            "object {id} is {} bytes, expected {size}",
            content.len()
        );
        let actual = Id::of(content);
        ensure!(
            actual == id,
            "object {id} was sent with bytes hashing to {actual}"
        );
        bytes += size;
    }
    ensure!(
        expected.is_empty(),
        "{} new object(s) of the commit were not sent",
        expected.len()
    );
    ensure!(
        bytes == commit.new_bytes,
        "{bytes} object bytes sent, the commit adds {}",
        commit.new_bytes
    );
    Ok(bytes)
}

/// Times filter-objects with `n` ids: half held by the repo (cycled when it holds fewer),
/// half random, interleaved.
async fn filter(api: &Api, repo: &Repo, n: usize) -> Result<FilterFigures> {
    let mut rng = synth::Rng::new(repo.seed ^ 0xf117_e600);
    let held = repo.objects.len();
    let mut ids = Vec::with_capacity(n);
    let mut absent = Vec::with_capacity(n / 2);
    for i in 0..n {
        if i % 2 == 0 {
            ids.push(repo.objects[(i / 2) % held].id);
        } else {
            let id = rng.id();
            absent.push(id);
            ids.push(id);
        }
    }
    let body = wire::encode(&wire::map([("object_ids", ids_value(&ids))]));
    let mut runs = Vec::with_capacity(FILTER_RUNS);
    for _ in 0..FILTER_RUNS {
        let t = Instant::now();
        let res = api
            .post("filter-objects")
            .body(body.clone())
            .send()
            .await
            .context("POST filter-objects")?;
        let bytes = answer_bytes("filter-objects", res).await?;
        runs.push(t.elapsed());
        let missing = parse_ids(&wire::decode(&bytes)?, "missing")?;
        ensure!(
            missing == absent,
            "filter-objects named {} ids missing, expected the {} absent ones in order",
            missing.len(),
            absent.len()
        );
    }
    Ok(FilterFigures {
        ids: n,
        present_distinct: held.min(n.div_ceil(2)),
        runs,
    })
}

/// Everything printed at the end.
#[derive(Debug)]
struct Report<'a> {
    args: &'a Args,
    repo: &'a Repo,
    car: &'a CarFigures,
    sha_rate: f64,
    push: &'a PushFigures,
    fetch: &'a FetchFigures,
    filter: &'a FilterFigures,
    /// CPU used during push, fetch and filter-objects.
    cpu: [Cpu; 3],
    rss_mb: f64,
    disk: disk::Rates,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

impl Report<'_> {
    fn push_rate(&self) -> f64 {
        rate(self.repo.total_bytes, self.push.total)
    }

    fn fetch_rate(&self) -> f64 {
        rate(self.fetch.object_bytes, self.fetch.total)
    }

    /// Hub CPU seconds per GB pushed.
    fn push_cpu_per_gb(&self) -> f64 {
        self.cpu[0].hub / (self.repo.total_bytes as f64 / 1e9)
    }

    /// CPU seconds per GB that hashing every byte twice (its object id, its leaf) costs at
    /// the SHA-256 speed measured in this run: the least an ingest can spend.
    fn floor_cpu_per_gb(&self) -> f64 {
        2.0 * 1e3 / self.sha_rate
    }

    fn table(&self) -> String {
        let r = self.repo;
        let push_ratio = self.push_rate() / self.sha_rate;
        let fetch_ratio = self.fetch_rate() / self.sha_rate;
        let export_ratio = self.car.export_rate() / self.sha_rate;
        let import_ratio = self.car.import_rate() / self.sha_rate;
        let median = ms(self.filter.median());
        let d = &self.disk;
        let rows: Vec<[String; 3]> = vec![
            [
                "total object bytes".into(),
                format!("{} ({:.1} MB)", r.total_bytes, mb(r.total_bytes)),
                String::new(),
            ],
            ["commits".into(), r.commits.len().to_string(), String::new()],
            [
                "objects".into(),
                format!(
                    "{} (tip snapshot: {} files)",
                    r.objects.len(),
                    r.commits.last().map_or(0, |c| c.files)
                ),
                String::new(),
            ],
            [
                "sha256, 1 thread, same bytes".into(),
                format!("{:.1} MB/s", self.sha_rate),
                String::new(),
            ],
            [
                "push".into(),
                format!("{:.1} MB/s = {push_ratio:.2} x sha256", self.push_rate()),
                format!(
                    ">= {TARGET_PUSH_RATIO:.2} x  {}",
                    verdict(push_ratio >= TARGET_PUSH_RATIO)
                ),
            ],
            [
                "  push/objects, push".into(),
                format!(
                    "{:.2} s in {} requests, {:.0} ms",
                    self.push.objects.as_secs_f64(),
                    self.push.requests,
                    ms(self.push.push)
                ),
                String::new(),
            ],
            [
                "  CPU during push".into(),
                self.cpu[0].show(self.push.total),
                String::new(),
            ],
            [
                "  hub CPU per GB ingested".into(),
                format!(
                    "{:.2} CPU-s/GB = {:.1} x the two-hash floor of {:.2}",
                    self.push_cpu_per_gb(),
                    self.push_cpu_per_gb() / self.floor_cpu_per_gb(),
                    self.floor_cpu_per_gb()
                ),
                format!(
                    "<= {TARGET_FLOOR_RATIO:.1} x  {}",
                    verdict(self.push_cpu_per_gb() <= TARGET_FLOOR_RATIO * self.floor_cpu_per_gb())
                ),
            ],
            [
                "fetch, one commit at a time".into(),
                format!("{:.1} MB/s = {fetch_ratio:.2} x sha256", self.fetch_rate()),
                format!(
                    ">= {TARGET_FETCH_RATIO:.2} x  {}",
                    verdict(fetch_ratio >= TARGET_FETCH_RATIO)
                ),
            ],
            [
                "  slowest fetch, largest answer".into(),
                format!(
                    "{:.0} ms, {:.1} MB",
                    ms(self.fetch.slowest),
                    mb(self.fetch.largest_answer)
                ),
                String::new(),
            ],
            [
                "  CPU during fetch (bench: + checks)".into(),
                self.cpu[1].show(self.fetch.total),
                String::new(),
            ],
            [
                "CAR export, whole history (HTTP)".into(),
                format!(
                    "{:.1} MB/s = {export_ratio:.2} x sha256 ({:.1} MB CAR)",
                    self.car.export_rate(),
                    mb(self.car.bytes)
                ),
                format!(
                    ">= {TARGET_EXPORT_RATIO:.2} x  {}",
                    verdict(export_ratio >= TARGET_EXPORT_RATIO)
                ),
            ],
            [
                "  CPU during export".into(),
                self.car.export_cpu.show(self.car.export),
                String::new(),
            ],
            [
                "CAR import (musehub car import)".into(),
                format!(
                    "{:.1} MB/s = {import_ratio:.2} x sha256",
                    self.car.import_rate()
                ),
                format!(
                    ">= {TARGET_IMPORT_RATIO:.2} x  {}",
                    verdict(import_ratio >= TARGET_IMPORT_RATIO)
                ),
            ],
            [
                "  CPU of the import".into(),
                format!(
                    "{:.1} s ({:.1} s in the kernel) = {:.2} CPU-s/GB ({:.1} x the floor)",
                    self.car.import_cpu,
                    self.car.import_sys,
                    self.car.import_cpu / (r.total_bytes as f64 / 1e9),
                    self.car.import_cpu / (r.total_bytes as f64 / 1e9) / self.floor_cpu_per_gb()
                ),
                String::new(),
            ],
            [
                "peak server RSS".into(),
                format!("{:.1} MB", self.rss_mb),
                format!(
                    "<= {TARGET_RSS_MB:.0} MB  {}",
                    verdict(self.rss_mb <= TARGET_RSS_MB)
                ),
            ],
            [
                format!("filter-objects, {} ids", self.filter.ids),
                format!("median {median:.1} ms, max {:.1} ms", ms(self.filter.max())),
                format!(
                    "<= {TARGET_FILTER_MS:.0} ms  {}",
                    verdict(median <= TARGET_FILTER_MS)
                ),
            ],
            [
                format!("  CPU during {FILTER_RUNS} filter-objects"),
                self.cpu[2].show(self.filter.runs.iter().sum()),
                String::new(),
            ],
            [
                format!(
                    "inline writes, {} KiB x {}",
                    d.object_size / 1024,
                    d.objects
                ),
                format!("{:.0} objects/s", d.inline_per_s()),
                format!("batches of {}", d.batch),
            ],
            [
                format!("file writes, {} KiB x {}", d.object_size / 1024, d.objects),
                format!("{:.0} objects/s", d.files_per_s()),
                format!("inline {:.1}x faster", d.inline_per_s() / d.files_per_s()),
            ],
        ];
        let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
        let mut out = format!(
            "musehub bench: {} of history, commits up to {}, seed {}\n",
            self.args.size, self.args.max_commit, self.args.seed
        );
        out.push_str(&format!("{:<w0$}  {:<w1$}  target\n", "figure", "value"));
        for [a, b, c] in &rows {
            out.push_str(format!("{a:<w0$}  {b:<w1$}  {c}").trim_end());
            out.push('\n');
        }
        if self.filter.present_distinct < self.filter.ids.div_ceil(2) {
            out.push_str(&format!(
                "(the repo holds {} objects, so the present half of the filter-objects ids repeats them)\n",
                self.filter.present_distinct
            ));
        }
        out.trim_end().to_owned()
    }

    fn json(&self) -> String {
        let push_ratio = self.push_rate() / self.sha_rate;
        let fetch_ratio = self.fetch_rate() / self.sha_rate;
        let median = ms(self.filter.median());
        let mut v = serde_json::json!({
            "seed": self.args.seed,
            "size": self.args.size,
            "max_commit": self.args.max_commit,
            "total_object_bytes": self.repo.total_bytes,
            "commits": self.repo.commits.len(),
            "objects": self.repo.objects.len(),
            "sha256_mb_s": self.sha_rate,
            "push_mb_s": self.push_rate(),
            "push_hub_cpu_s_per_gb": self.push_cpu_per_gb(),
            "floor_cpu_s_per_gb": self.floor_cpu_per_gb(),
            "car_import_cpu_s": self.car.import_cpu,
            "push_ratio": push_ratio,
            "push_ok": push_ratio >= TARGET_PUSH_RATIO,
            "push_seconds": self.push.total.as_secs_f64(),
            "push_objects_seconds": self.push.objects.as_secs_f64(),
            "push_request_ms": ms(self.push.push),
            "push_filter_ms": ms(self.push.filter),
            "push_cpu": self.cpu[0].json(),
            "push_objects_requests": self.push.requests,
            "push_objects_body_bytes": self.push.body_bytes,
            "fetch_mb_s": self.fetch_rate(),
            "fetch_ratio": fetch_ratio,
            "fetch_ok": fetch_ratio >= TARGET_FETCH_RATIO,
            "fetch_seconds": self.fetch.total.as_secs_f64(),
            "fetch_slowest_ms": ms(self.fetch.slowest),
            "fetch_answer_bytes": self.fetch.answer_bytes,
            "fetch_largest_answer_bytes": self.fetch.largest_answer,
            "fetch_cpu": self.cpu[1].json(),
            "peak_rss_mb": self.rss_mb,
            "rss_ok": self.rss_mb <= TARGET_RSS_MB,
            "filter_ids": self.filter.ids,
            "filter_median_ms": median,
            "filter_max_ms": ms(self.filter.max()),
            "filter_runs_ms": self.filter.runs.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "filter_ok": median <= TARGET_FILTER_MS,
            "filter_cpu": self.cpu[2].json(),
            "inline_objects_per_s": self.disk.inline_per_s(),
            "file_objects_per_s": self.disk.files_per_s(),
            "disk_object_bytes": self.disk.object_size,
            "disk_objects": self.disk.objects,
        });
        // A second object: one json! of every field passes the macro recursion limit.
        let car = serde_json::json!({
            "car_bytes": self.car.bytes,
            "car_export_mb_s": self.car.export_rate(),
            "car_export_ratio": self.car.export_rate() / self.sha_rate,
            "car_export_cpu": self.car.export_cpu.json(),
            "car_import_mb_s": self.car.import_rate(),
            "car_import_ratio": self.car.import_rate() / self.sha_rate,
            "car_import_sys_s": self.car.import_sys,
            "car_ok": self.car.export_rate() / self.sha_rate >= TARGET_EXPORT_RATIO
                && self.car.import_rate() / self.sha_rate >= TARGET_IMPORT_RATIO,
        });
        if let (Some(v), serde_json::Value::Object(car)) = (v.as_object_mut(), car) {
            v.extend(car);
        }
        v.to_string()
    }
}
