//! `musehub bench --ui`: how fast the web UI's busiest pages answer a crowd of readers on a
//! long history. It prints figures and never asserts timings: it fails only when a page does
//! not answer 200 (or a request fails outright), so a missing or broken page is never
//! mistaken for a fast one.
//!
//! # What is measured
//!
//! A hub is started as a child process (as for the main bench) with a user `alice`, and one
//! push sends `alice/song` a first-parent history of `--ui-commits` commits (10,000 by
//! default): a README plus 16 small part files, each commit rewriting one part. The push goes
//! as `muse push` sends it: `filter-objects`, `push/objects` in batches of 400, then one `push`
//! of every commit and snapshot.
//!
//! Then `--ui-readers` concurrent readers (100 by default; tokio tasks sharing one keep-alive
//! connection pool, each waiting for its answer before asking again) load one page at a time
//! for `--ui-duration` (10 s by default) with `Accept: text/html`:
//!
//! - the repo home `/alice/song` (file list, README, clone instructions),
//! - the commit list `/alice/song/commits/main` (the newest page),
//! - its second page, at the address of the "older" link on the first page.
//!
//! Latency is request sent to last byte read, over 200 answers only (a fast 404 would flatter
//! the figures); every other answer is counted as failed, with its status. Each page gets a
//! short warm-up (one request per reader, not counted) that also opens the connections.
//! Beside p50/p95/p99/max and requests per second, the table shows the CPU the hub and the
//! bench used meanwhile: both share this machine's cores, so with a closed loop of N readers
//! the latency is about N / throughput (Little's law).
//!
//! Target: p99 at most 20 ms for each page, marked `ok` or `MISSED` for information only.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use rmpv::Value;

use super::{Api, Args, Cpu, WorkDir, child, ids_value, ms, parse_ids, progress, verdict};
use musehub::cids::Id;
use musehub::wire::{self, records};

const OWNER: &str = "alice";
const SLUG: &str = "song";
/// Part files a commit picks from (each commit rewrites one).
const PARTS: usize = 16;
/// Objects per `push/objects` request (the Muse CLI's number).
const CHUNK_OBJECTS: usize = 400;
/// No single page request may take longer than this (it counts as failed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// 2026-03-16T12:00:00Z, the first commit's time; each next commit is a minute later.
const FIRST_COMMIT_UNIX: u64 = 1_773_662_400;
const TARGET_P99_MS: f64 = 20.0;

/// The generated history: every object and every record, oldest first.
#[derive(Debug)]
struct History {
    objects: Vec<(Id, Vec<u8>)>,
    records: Vec<records::Record>,
}

impl History {
    fn tip(&self) -> Option<Id> {
        self.records.last().map(|r| r.commit_id)
    }
}

/// A first-parent history of `n` commits, each rewriting one small part file.
fn generate(n: usize, seed: u64) -> History {
    let mut manifest: BTreeMap<String, Id> = BTreeMap::new();
    let mut objects = Vec::with_capacity(n + 1);
    let readme = format!(
        "# Song\n\nA long history for `musehub bench --ui`: {n} takes of {PARTS} parts (seed {seed}).\n\n\
         ## Parts\n\nEach commit rewrites one file under `parts/`.\n"
    )
    .into_bytes();
    let readme_id = Id::of(&readme);
    manifest.insert("README.md".to_owned(), readme_id);
    objects.push((readme_id, readme));
    let mut records = Vec::with_capacity(n);
    let mut parent: Option<Id> = None;
    for k in 0..n {
        let part = k % PARTS;
        let path = format!("parts/part-{part:02}.txt");
        let content = format!("take {k} of part {part} (seed {seed})\n").into_bytes();
        let id = Id::of(&content);
        manifest.insert(path.clone(), id);
        objects.push((id, content));
        let entries: Vec<(String, Id)> = manifest.iter().map(|(p, o)| (p.clone(), *o)).collect();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(FIRST_COMMIT_UNIX + 60 * k as u64);
        let committed_at = humantime::format_rfc3339_seconds(at)
            .to_string()
            .replace('Z', "+00:00");
        let parents: Vec<Id> = parent.into_iter().collect();
        let r = records::Commit {
            repo_id: "5e3d0c1a-7a11-4ce0-9d1e-00000000b0e1",
            branch: "main",
            parents: &parents,
            manifest: &entries,
            message: &format!("Take {k}: rewrite part {part}"),
            committed_at: &committed_at,
        }
        .record();
        parent = Some(r.commit_id);
        records.push(r);
    }
    History { objects, records }
}

/// The whole history in one push, as `muse push` sends it. Returns how long it took.
async fn push(api: &Api, h: &History) -> Result<Duration> {
    let t = Instant::now();
    let ask = wire::encode(&wire::map([(
        "object_ids",
        ids_value(h.objects.iter().map(|(id, _)| id)),
    )]));
    let missing: HashSet<Id> = parse_ids(&api.call("filter-objects", ask).await?, "missing")?
        .into_iter()
        .collect();
    ensure!(
        missing.len() == h.objects.len(),
        "filter-objects on a new repo named {} of {} ids missing",
        missing.len(),
        h.objects.len()
    );
    for chunk in h.objects.chunks(CHUNK_OBJECTS) {
        let items = chunk
            .iter()
            .map(|(id, bytes)| {
                wire::map([
                    ("object_id", Value::from(id.to_hex())),
                    ("content", Value::Binary(bytes.clone())),
                ])
            })
            .collect();
        let v = api
            .call(
                "push/objects",
                wire::encode(&wire::map([("objects", Value::Array(items))])),
            )
            .await?;
        let f = wire::Fields::of(&v, "answer")?;
        let stored = f.get("stored").and_then(Value::as_u64).unwrap_or(0);
        ensure!(
            stored == chunk.len() as u64,
            "push/objects stored {stored} of {} objects: {v}",
            chunk.len()
        );
    }
    let body = wire::encode(&wire::map([
        (
            "bundle",
            wire::map([
                (
                    "commits",
                    Value::Array(h.records.iter().map(|r| r.commit.clone()).collect()),
                ),
                (
                    "snapshots",
                    Value::Array(h.records.iter().map(|r| r.snapshot.clone()).collect()),
                ),
                ("objects", Value::Array(Vec::new())),
            ]),
        ),
        ("branch", Value::from("main")),
        ("force", Value::Boolean(false)),
    ]));
    let v = api.call("push", body).await?;
    let f = wire::Fields::of(&v, "answer")?;
    ensure!(f.bool_or("ok", false)?, "push answered ok=false: {v}");
    ensure!(
        f.opt_id("remote_head")? == h.tip(),
        "push moved main to {:?}, not the tip",
        f.opt_str("remote_head")?
    );
    Ok(t.elapsed())
}

/// One page under load.
#[derive(Debug)]
struct PageLoad {
    label: &'static str,
    path: String,
    /// Latencies of the 200 answers, sorted.
    ok: Vec<Duration>,
    /// Answers other than 200 (status → count; 0 for requests that got no answer).
    failed: BTreeMap<u16, u64>,
    /// The first failure, to show what went wrong.
    first_failure: Option<String>,
    bytes: u64,
    wall: Duration,
    cpu: Cpu,
}

impl PageLoad {
    fn requests(&self) -> u64 {
        self.ok.len() as u64 + self.failures()
    }

    fn failures(&self) -> u64 {
        self.failed.values().sum()
    }

    fn per_second(&self) -> f64 {
        self.requests() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank percentile of the 200 answers, in ms (`None` without any).
    fn pct(&self, q: f64) -> Option<f64> {
        if self.ok.is_empty() {
            return None;
        }
        let rank = ((q * self.ok.len() as f64).ceil() as usize).clamp(1, self.ok.len());
        Some(ms(self.ok[rank - 1]))
    }

    fn meets_target(&self) -> bool {
        self.pct(0.99).is_some_and(|p| p <= TARGET_P99_MS)
    }
}

/// What one reader saw.
#[derive(Debug, Default)]
struct ReaderLog {
    ok: Vec<Duration>,
    failed: BTreeMap<u16, u64>,
    first_failure: Option<String>,
    bytes: u64,
}

/// GETs a page as a browser does; `Ok((status, body))` or the transport error.
async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, bytes::Bytes)> {
    let res = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.bytes().await?))
}

/// Requests `url` back to back until `deadline`.
async fn reader(client: reqwest::Client, url: String, deadline: Instant) -> ReaderLog {
    let mut log = ReaderLog::default();
    while Instant::now() < deadline {
        let t = Instant::now();
        let outcome = get(&client, &url).await;
        let took = t.elapsed();
        match outcome {
            Ok((200, body)) => {
                log.ok.push(took);
                log.bytes += body.len() as u64;
            }
            Ok((status, body)) => {
                *log.failed.entry(status).or_default() += 1;
                log.first_failure.get_or_insert_with(|| {
                    format!(
                        "HTTP {status}: {}",
                        snippet(&String::from_utf8_lossy(&body))
                    )
                });
            }
            Err(e) => {
                *log.failed.entry(0).or_default() += 1;
                log.first_failure.get_or_insert_with(|| format!("{e:#}"));
                // A refused connection fails at once: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    log
}

/// The visible text of an HTML answer, shortened (enough to tell "not available yet").
fn snippet(html: &str) -> String {
    let body = html.split_once("<main").map_or(html, |(_, b)| b);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(160).collect()
}

/// Loads one page with `readers` concurrent readers for `duration`.
async fn load(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    readers: usize,
    duration: Duration,
) -> Result<(ReaderLog, Duration)> {
    let url = format!("{base}{path}");
    // Warm-up: one request per reader, which also opens every connection.
    let warm: Vec<_> = (0..readers)
        .map(|_| {
            let (c, u) = (client.clone(), url.clone());
            tokio::spawn(async move { get(&c, &u).await.map(|_| ()) })
        })
        .collect();
    for w in warm {
        let _ = w.await;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..readers)
        .map(|_| tokio::spawn(reader(client.clone(), url.clone(), deadline)))
        .collect();
    let mut all = ReaderLog::default();
    for t in tasks {
        let log = t.await.context("a reader task panicked")?;
        all.ok.extend(log.ok);
        for (s, n) in log.failed {
            *all.failed.entry(s).or_default() += n;
        }
        if all.first_failure.is_none() {
            all.first_failure = log.first_failure;
        }
        all.bytes += log.bytes;
    }
    Ok((all, started.elapsed()))
}

/// The address of the commit list's second page: the first page's `rel="next"` link, else its
/// link back into the same list with a query (`?after=…`).
async fn second_page(client: &reqwest::Client, base: &str, first: &str) -> Result<String> {
    let (status, body) = get(client, &format!("{base}{first}")).await?;
    let html = String::from_utf8_lossy(&body);
    if status != 200 {
        bail!(
            "the commit list answered {status}, so it has no second page to follow: {}",
            snippet(&html)
        );
    }
    next_link(&html, first).with_context(|| {
        format!("the commit list's first page has no link to an older page (no rel=\"next\", no href=\"{first}?…\")")
    })
}

/// Finds the "next page" link of `html` (see [`second_page`]).
fn next_link(html: &str, first: &str) -> Option<String> {
    let hrefs: Vec<(String, String)> = html
        .split("<a")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            let href = attr(tag, "href")?;
            Some((tag.to_owned(), href))
        })
        .collect();
    let unescape = |h: &str| {
        h.replace("&amp;", "&")
            .replace("&#x3D;", "=")
            .replace("&#61;", "=")
    };
    hrefs
        .iter()
        .find(|(tag, _)| {
            attr(tag, "rel").is_some_and(|r| r.split_whitespace().any(|w| w == "next"))
        })
        .or_else(|| {
            hrefs
                .iter()
                .find(|(_, h)| h.starts_with(&format!("{first}?")))
        })
        .map(|(_, h)| unescape(h))
}

/// The value of attribute `name` in the inside of a tag (double or single quotes).
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest[..i].ends_with(char::is_whitespace);
        let after = rest[i + name.len()..].trim_start();
        if before_ok && let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            let quote = v.chars().next()?;
            if quote == '"' || quote == '\'' {
                return v[1..].split(quote).next().map(str::to_owned);
            }
            return v.split(char::is_whitespace).next().map(str::to_owned);
        }
        rest = &rest[i + name.len()..];
    }
    None
}

/// Runs `musehub bench --ui`. See the module docs.
pub(super) fn run(args: &Args) -> Result<()> {
    let commits = args.ui_commits;
    let readers = args.ui_readers;
    let duration: Duration = args.ui_duration.into();
    ensure!(commits >= 2, "--ui-commits must be at least 2");
    ensure!(readers >= 1, "--ui-readers must be at least 1");
    ensure!(!duration.is_zero(), "--ui-duration must be more than 0");
    let _ = rustls::crypto::ring::default_provider().install_default();

    let work = WorkDir::create(args.keep)?;
    let exe = super::hub_exe(args)?;
    let hub_dir = work.path.join("hub");
    progress(format!("[1/4] starting a hub in {}", hub_dir.display()));
    let (mut hub, token) = child::hub_with_owner(&exe, &hub_dir, OWNER)?;
    let base = hub.url.trim_end_matches('/').to_owned();
    progress(format!("      hub pid {} at {base}", hub.pid()));

    progress(format!("[2/4] generating {commits} commits"));
    let history = generate(commits, args.seed);

    let (rt, client) = child::runtime_and_client()?;
    let api = Api {
        client,
        base: format!("{base}/{OWNER}/{SLUG}"),
        token,
    };
    progress(format!(
        "[3/4] pushing {commits} commits ({} objects) in one push",
        history.objects.len()
    ));
    let push_time = rt.block_on(push(&api, &history))?;
    hub.check_alive()?;
    progress(format!("      {:.1} s", push_time.as_secs_f64()));

    // One pool for every reader: keep-alive connections, as many as there are readers.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(readers)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let home = format!("/{OWNER}/{SLUG}");
    let list = format!("/{OWNER}/{SLUG}/commits/main");
    let mut pages: Vec<(&'static str, String)> =
        vec![("repo home", home), ("commit list", list.clone())];
    let mut missing: Vec<String> = Vec::new();
    match rt.block_on(second_page(&client, &base, &list)) {
        Ok(p) => pages.push(("commit list, page 2", p)),
        Err(e) => missing.push(format!("commit list, page 2: {e:#}")),
    }

    progress(format!(
        "[4/4] {readers} readers load each page for {:.1} s",
        duration.as_secs_f64()
    ));
    let mut loads = Vec::with_capacity(pages.len());
    for (label, path) in pages {
        let opened_before = rt.block_on(readers_opened(&client, &base))?;
        let before = Cpu::now(&hub);
        let (log, wall) = rt.block_on(load(&client, &base, &path, readers, duration))?;
        let cpu = Cpu::now(&hub).since(before);
        let opened = rt.block_on(readers_opened(&client, &base))? - opened_before;
        progress(format!(
            "      {label}: {opened} database read connections opened"
        ));
        hub.check_alive()?;
        let mut ok = log.ok;
        ok.sort_unstable();
        let page = PageLoad {
            label,
            path,
            ok,
            failed: log.failed,
            first_failure: log.first_failure,
            bytes: log.bytes,
            wall,
            cpu,
        };
        progress(format!(
            "      {label}: {} requests, {} failed, p99 {}",
            page.requests(),
            page.failures(),
            page.pct(0.99)
                .map_or_else(|| "-".to_owned(), |p| format!("{p:.1} ms"))
        ));
        loads.push(page);
    }
    let rss_mb = hub.peak_rss_kib()? as f64 * 1024.0 / 1e6;
    let server_log = hub.stop();

    let report = Report {
        commits,
        readers,
        duration,
        push_time,
        loads: &loads,
        missing: &missing,
        rss_mb,
    };
    println!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    if !server_log.is_empty() {
        eprintln!(
            "bench: the hub logged {} line(s) at warn level or above:",
            server_log.len()
        );
        for l in server_log.iter().take(50) {
            eprintln!("  {l}");
        }
    }
    drop(rt);
    drop(work);
    let failed: u64 = loads.iter().map(PageLoad::failures).sum();
    if failed > 0 || !missing.is_empty() {
        let mut why: Vec<String> = loads
            .iter()
            .filter(|l| l.failures() > 0)
            .map(|l| {
                format!(
                    "{} ({}): {} of {} requests failed, first: {}",
                    l.label,
                    l.path,
                    l.failures(),
                    l.requests(),
                    l.first_failure.as_deref().unwrap_or("?")
                )
            })
            .collect();
        why.extend(missing.iter().cloned());
        bail!("the UI bench saw failures:\n  {}", why.join("\n  "));
    }
    Ok(())
}

/// Everything printed at the end.
#[derive(Debug)]
struct Report<'a> {
    commits: usize,
    readers: usize,
    duration: Duration,
    push_time: Duration,
    loads: &'a [PageLoad],
    missing: &'a [String],
    rss_mb: f64,
}

impl Report<'_> {
    fn table(&self) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let mut rows: Vec<[String; 3]> = vec![
            [
                "history".into(),
                format!(
                    "{} commits in one push ({:.1} s)",
                    self.commits,
                    self.push_time.as_secs_f64()
                ),
                String::new(),
            ],
            [
                "readers".into(),
                format!(
                    "{}, {:.1} s per page, Accept: text/html",
                    self.readers,
                    self.duration.as_secs_f64()
                ),
                String::new(),
            ],
        ];
        for l in self.loads {
            rows.push([
                format!("{} {}", l.label, short_path(&l.path)),
                format!(
                    "p50 {} / p95 {} / p99 {} / max {} ms",
                    show(l.pct(0.50)),
                    show(l.pct(0.95)),
                    show(l.pct(0.99)),
                    show(l.pct(1.0))
                ),
                format!(
                    "p99 <= {TARGET_P99_MS:.0} ms  {}",
                    verdict(l.meets_target())
                ),
            ]);
            let failed = if l.failures() == 0 {
                "0 failed".to_owned()
            } else {
                let statuses: Vec<String> = l
                    .failed
                    .iter()
                    .map(|(s, n)| match s {
                        0 => format!("{n} without answer"),
                        s => format!("{n} x {s}"),
                    })
                    .collect();
                format!("FAILED: {}", statuses.join(", "))
            };
            rows.push([
                "  requests".into(),
                format!(
                    "{} = {:.0}/s, {:.0} KB/s, {failed}",
                    l.requests(),
                    l.per_second(),
                    l.bytes as f64 / 1e3 / l.wall.as_secs_f64().max(1e-9)
                ),
                String::new(),
            ]);
            rows.push(["  CPU".into(), l.cpu.show(l.wall), String::new()]);
        }
        for m in self.missing {
            rows.push(["not measured".into(), m.clone(), "FAILED".into()]);
        }
        rows.push([
            "peak server RSS".into(),
            format!("{:.1} MB", self.rss_mb),
            String::new(),
        ]);
        let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r[1].chars().count()).max().unwrap_or(0);
        let mut out = String::from("musehub bench --ui: page latency under concurrent readers\n");
        out.push_str(&format!("{:<w0$}  {:<w1$}  target\n", "figure", "value"));
        for [a, b, c] in &rows {
            out.push_str(format!("{a:<w0$}  {b:<w1$}  {c}").trim_end());
            out.push('\n');
        }
        out.trim_end().to_owned()
    }

    fn json(&self) -> String {
        let pages: Vec<serde_json::Value> = self
            .loads
            .iter()
            .map(|l| {
                serde_json::json!({
                    "page": l.label,
                    "path": l.path,
                    "requests": l.requests(),
                    "failed": l.failures(),
                    "failed_by_status": l.failed.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
                    "requests_per_s": l.per_second(),
                    "p50_ms": l.pct(0.50),
                    "p95_ms": l.pct(0.95),
                    "p99_ms": l.pct(0.99),
                    "max_ms": l.pct(1.0),
                    "p99_ok": l.meets_target(),
                    "seconds": l.wall.as_secs_f64(),
                    "cpu": l.cpu.json(),
                })
            })
            .collect();
        serde_json::json!({
            "commits": self.commits,
            "readers": self.readers,
            "seconds_per_page": self.duration.as_secs_f64(),
            "push_seconds": self.push_time.as_secs_f64(),
            "pages": pages,
            "not_measured": self.missing,
            "peak_rss_mb": self.rss_mb,
        })
        .to_string()
    }
}

/// `/alice/song/commits/main?after=<64 hex>` → `…?after=1a2b3c4d…`, to keep the table narrow.
fn short_path(p: &str) -> String {
    match p.split_once("?after=") {
        Some((a, id)) if id.len() > 8 => format!("{a}?after={}…", &id[..8]),
        _ => p.to_owned(),
    }
}

/// The hub's count of SQLite read connections opened (from `/metrics`).
async fn readers_opened(client: &reqwest::Client, base: &str) -> Result<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("musehub_db_read_connections_opened_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("/metrics has no musehub_db_read_connections_opened_total")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_chains_commits_with_valid_ids() {
        let h = generate(40, 1);
        assert_eq!(h.records.len(), 40);
        assert_eq!(
            h.objects.len(),
            41,
            "a README and one new object per commit"
        );
        let distinct: HashSet<Id> = h.objects.iter().map(|(id, _)| *id).collect();
        assert_eq!(distinct.len(), 41);
        for w in h.records.windows(2) {
            let f = wire::Fields::of(&w[1].commit, "commit").unwrap();
            assert_eq!(f.opt_id("parent_commit_id").unwrap(), Some(w[0].commit_id));
        }
        let f = wire::Fields::of(&h.records[1].commit, "commit").unwrap();
        assert_eq!(f.str("committed_at").unwrap(), "2026-03-16T12:01:00+00:00");
        let snap = wire::Fields::of(&h.records[39].snapshot, "snapshot").unwrap();
        assert_eq!(
            snap.get("manifest").and_then(Value::as_map).map(Vec::len),
            Some(PARTS + 1)
        );
    }

    #[test]
    fn finds_the_next_page_link() {
        let first = "/alice/song/commits/main";
        let id = "ab".repeat(32);
        let html = format!(
            r#"<nav><a href="/alice/song">song</a> <a class="x" href="{first}?after={id}&amp;n=50" rel="next">Older</a></nav>"#
        );
        assert_eq!(
            next_link(&html, first).as_deref(),
            Some(format!("{first}?after={id}&n=50").as_str())
        );
        let html = format!(r#"<a href='{first}?after={id}'>Older commits</a>"#);
        assert_eq!(next_link(&html, first), Some(format!("{first}?after={id}")));
        assert_eq!(next_link(r#"<a href="/alice/song">x</a>"#, first), None);
        assert_eq!(
            short_path(&format!("{first}?after={id}")),
            format!("{first}?after=abababab…")
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = PageLoad {
            label: "x",
            path: String::new(),
            ok: (1..=100).map(Duration::from_millis).collect(),
            failed: BTreeMap::new(),
            first_failure: None,
            bytes: 0,
            wall: Duration::from_secs(1),
            cpu: Cpu::default(),
        };
        assert_eq!(l.pct(0.50), Some(50.0));
        assert_eq!(l.pct(0.99), Some(99.0));
        assert_eq!(l.pct(1.0), Some(100.0));
        assert!(!l.meets_target());
        l.ok.truncate(20);
        assert!(l.meets_target());
        l.ok.clear();
        assert_eq!(l.pct(0.5), None);
        assert!(!l.meets_target());
        assert_eq!(
            snippet("<html><main><h1>Nothing  here</h1><p>gone</p></main>"),
            "Nothing here gone"
        );
    }
}
