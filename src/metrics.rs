//! Counters exported at `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Plain atomics: the hub is one process and the set of series is fixed, so a metrics
//! library would add dependencies without adding anything we use.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the push latency histogram, in seconds.
const PUSH_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the hub exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by status class: 2xx, 3xx, 4xx, 5xx.
    pub requests: [Counter; 4],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub objects_stored: Counter,
    pub pushes: Counter,
    push_buckets: [Counter; PUSH_BUCKETS.len()],
    push_micros: Counter,
}

impl Metrics {
    /// Counts what hub events report (objects stored by pushes, imports and replication)
    /// until `stop`.
    pub async fn count_events(
        self: std::sync::Arc<Self>,
        mut events: crate::events::Subscription,
        stop: tokio_util::sync::CancellationToken,
    ) {
        while let Some(event) = events.next_until(&stop).await {
            if let crate::events::Event::ObjectsStored { count, .. } = event {
                self.objects_stored.add(count);
            }
        }
    }

    pub fn request(&self, status: u16) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.requests[class].add(1);
    }

    /// Records one accepted push (the `POST push` request) and how long it took.
    pub fn push(&self, took: Duration) {
        self.pushes.add(1);
        self.push_micros.add(took.as_micros() as u64);
        let secs = took.as_secs_f64();
        for (i, le) in PUSH_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.push_buckets[i].add(1);
            }
        }
    }

    /// Renders the text format. `objects` and `blocks` come from the database.
    pub fn render(
        &self,
        objects: u64,
        blocks: u64,
        block_bytes: u64,
        readers_opened: u64,
    ) -> String {
        let mut s = String::new();
        s.push_str("# HELP musehub_http_requests_total HTTP requests answered, by status class.\n");
        s.push_str("# TYPE musehub_http_requests_total counter\n");
        for (i, class) in ["2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let _ = writeln!(
                s,
                "musehub_http_requests_total{{class=\"{class}\"}} {}",
                self.requests[i].get()
            );
        }
        let counters = [
            (
                "musehub_http_request_bytes_total",
                "Request body bytes received.",
                self.bytes_in.get(),
            ),
            (
                "musehub_http_response_bytes_total",
                "Response body bytes sent.",
                self.bytes_out.get(),
            ),
            (
                "musehub_objects_stored_total",
                "Objects added to repositories (pushes, imports, replication) since start.",
                self.objects_stored.get(),
            ),
            (
                "musehub_db_read_connections_opened_total",
                "SQLite read connections opened since start.",
                readers_opened,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let gauges = [
            ("musehub_objects", "Objects stored on this hub.", objects),
            ("musehub_blocks", "Blocks in the block store.", blocks),
            (
                "musehub_block_bytes",
                "Bytes in the block store.",
                block_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        s.push_str(
            "# HELP musehub_push_duration_seconds Time to accept a push (the final POST push).\n",
        );
        s.push_str("# TYPE musehub_push_duration_seconds histogram\n");
        for (i, le) in PUSH_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "musehub_push_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.push_buckets[i].get()
            );
        }
        let _ = writeln!(
            s,
            "musehub_push_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            self.pushes.get()
        );
        let _ = writeln!(
            s,
            "musehub_push_duration_seconds_sum {}",
            self.push_micros.get() as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "musehub_push_duration_seconds_count {}",
            self.pushes.get()
        );
        s
    }
}
