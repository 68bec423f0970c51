//! The hub under test, run as a child process of the same executable, so its memory is its
//! own and its peak RSS can be read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long the hub may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Server log lines kept for the report (warnings and errors, as MUSEHUB_LOG=warn).
const KEEP_LINES: usize = 200;

/// Runs `musehub --data-dir <dir> <args>` to completion and returns its stdout.
pub(super) fn admin(exe: &Path, data_dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("MUSEHUB_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {}", exe.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`musehub {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bench's own async runtime and an HTTP client for talking to the hub (no proxies, no
/// redirects: the Muse CLI follows none either).
pub(super) fn runtime_and_client() -> Result<(tokio::runtime::Runtime, reqwest::Client)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    Ok((rt, client))
}

/// Creates user `owner` with a token in `data_dir`, then starts a hub there.
/// Returns the running hub and the token.
pub(super) fn hub_with_owner(exe: &Path, data_dir: &Path, owner: &str) -> Result<(Hub, String)> {
    let token = add_owner(exe, data_dir, owner)?;
    Ok((Hub::start(exe, data_dir)?, token))
}

/// Creates user `owner` with a token in `data_dir` (a hub may be running there); returns
/// the token.
pub(super) fn add_owner(exe: &Path, data_dir: &Path, owner: &str) -> Result<String> {
    admin(exe, data_dir, &["user", "add", owner])?;
    admin(exe, data_dir, &["token", "create", "--user", owner])?
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|t| !t.is_empty())
        .context("`musehub token create` printed no token")
}

/// A running `musehub serve`, killed when dropped.
#[derive(Debug)]
pub(super) struct Hub {
    child: Child,
    pub(super) url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    /// Starts `musehub --data-dir <dir> serve --listen 127.0.0.1:0` and waits for its address.
    pub(super) fn start(exe: &Path, data_dir: &Path) -> Result<Hub> {
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MUSEHUB_LOG", "warn")
            // As the systemd unit runs it (see systemd/musehub.service).
            .env("MALLOC_ARENA_MAX", "2")
            // The IPFS node on loopback only, alone: no bootstrap peers, no mDNS.
            .env("MUSEHUB_IPFS_LISTEN", "/ip4/127.0.0.1/tcp/0")
            .env("MUSEHUB_IPFS_BOOTSTRAP", "")
            .env("MUSEHUB_IPFS_MDNS", "false")
            .env("MUSEHUB_FEDERATION_MDNS", "false")
            .env("MUSEHUB_IPFS_DHT_MODE", "server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Keep draining stderr for the whole run, or a chatty server would block on the pipe.
        std::thread::spawn(move || {
            let mut announced = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !announced && let Some((_, url)) = line.split_once(" listening on ") {
                    announced = true;
                    let _ = tx.send(url.trim().to_owned());
                    continue;
                }
                // `serve` also prints a reminder about plain http; it is not a finding.
                if line.starts_with("(plain http") {
                    continue;
                }
                let mut kept = lines.lock().unwrap_or_else(|p| p.into_inner());
                if kept.len() < KEEP_LINES {
                    kept.push(line);
                }
            }
        });
        let mut hub = Hub {
            child,
            url: String::new(),
            log,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => hub.url = url,
            Err(_) => {
                let _ = hub.child.kill();
                let _ = hub.child.wait();
                // Give the reader a moment to collect the last words.
                std::thread::sleep(Duration::from_millis(100));
                bail!("the hub did not start: {}", hub.log_lines().join("\n"));
            }
        }
        Ok(hub)
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far, in KiB (`VmHWM`).
    pub(super) fn peak_rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmHWM")
    }

    /// Resident set size now, in KiB (`VmRSS`).
    pub(super) fn rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmRSS")
    }

    fn proc_status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading the hub's /proc status")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc status"))
    }

    /// CPU time the hub has used so far (user + system, all threads), in seconds.
    /// The hub's user and system CPU seconds so far.
    pub(super) fn cpu_split(&self) -> Option<(f64, f64)> {
        cpu_split(&self.pid().to_string())
    }

    /// Whether the hub is still running (it must not crash during the run).
    pub(super) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the hub exited during the run ({status}): {}",
                self.log_lines().join("\n")
            );
        }
        Ok(())
    }

    /// What the hub logged besides its address line.
    pub(super) fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Kills the hub and waits for it.
    pub(super) fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.log_lines()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of a process (`self` or a pid) from `/proc/<pid>/stat`.
pub(super) fn cpu_seconds(pid: &str) -> Option<f64> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// User and system (kernel) CPU seconds of a process, from `/proc/<pid>/stat`.
pub(super) fn cpu_split(pid: &str) -> Option<(f64, f64)> {
    stat_seconds(&format!("/proc/{pid}/stat"), 11)
}

/// Two clock-tick fields of a `stat` file, from field `first` after the command name, in
/// seconds.
fn stat_seconds(path: &str, first: usize) -> Option<(f64, f64)> {
    // Linux reports these in clock ticks, USER_HZ, which is 100 on every mainstream platform.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name, starting at field 3 (state).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let a: f64 = fields.get(first)?.parse().ok()?;
    let b: f64 = fields.get(first + 1)?.parse().ok()?;
    Some((a / TICKS_PER_SECOND, b / TICKS_PER_SECOND))
}

/// User + system CPU seconds of this process's children that have ended (the admin commands
/// it ran to completion), from `/proc/self/stat`.
pub(super) fn children_cpu_seconds() -> Option<(f64, f64)> {
    stat_seconds("/proc/self/stat", 13)
}
