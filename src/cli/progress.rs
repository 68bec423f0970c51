//! A one-line progress report on stderr for the long commands (clone, pull, car, get).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A one-line progress report on stderr, redrawn on a terminal, printed at the end otherwise.
pub(super) struct Progress {
    tty: bool,
    what: &'static str,
    last: std::sync::Mutex<Instant>,
}

impl Progress {
    pub(super) fn new(what: &'static str) -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            what,
            last: std::sync::Mutex::new(Instant::now() - Duration::from_secs(1)),
        }
    }

    /// `done` bytes, of `total` when known; `items` done of `of`.
    pub(super) fn show(
        &self,
        done: u64,
        total: Option<u64>,
        items: Option<(usize, usize)>,
        last: bool,
    ) {
        {
            let mut t = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if !last && t.elapsed() < Duration::from_millis(150) {
                return;
            }
            *t = Instant::now();
        }
        if !self.tty && !last {
            return;
        }
        let mib = |b: u64| b as f64 / 1048576.0;
        let mut line = format!("{}: {:.1} MiB", self.what, mib(done));
        if let Some(t) = total {
            let pct = (done * 100).checked_div(t).unwrap_or(100).min(100);
            line = format!(
                "{}: [{}{}] {pct:>3}%  {:.1} / {:.1} MiB",
                self.what,
                "#".repeat((pct / 4) as usize),
                " ".repeat(25 - (pct / 4) as usize),
                mib(done),
                mib(t)
            );
        }
        if let Some((i, n)) = items {
            line.push_str(&format!("  ({i}/{n} files)"));
        }
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
