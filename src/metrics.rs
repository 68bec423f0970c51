//! Counters exported at `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Plain atomics: the hub is one process and the set of series is fixed, so a metrics
//! library would add dependencies without adding anything we use. Every series, here and in
//! the IPFS node and federation, is written through one [`Text`] writer, which owns the
//! format: `# HELP`/`# TYPE` lines once per family, label escaping, sample lines.

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
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: Counter,
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

    /// Writes the hub's series. `objects` and `blocks` come from the database.
    pub fn render(
        &self,
        objects: u64,
        blocks: u64,
        block_bytes: u64,
        readers_opened: u64,
        out: &mut Text,
    ) {
        out.family(
            "musehub_http_requests_total",
            "HTTP requests answered, by status class.",
            Kind::Counter,
        );
        for (i, class) in ["2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            out.sample(
                "musehub_http_requests_total",
                &[("class", class)],
                self.requests[i].get(),
            );
        }
        out.counter(
            "musehub_http_request_bytes_total",
            "Request body bytes received.",
            self.bytes_in.get(),
        );
        out.counter(
            "musehub_http_response_bytes_total",
            "Response body bytes sent.",
            self.bytes_out.get(),
        );
        out.counter(
            "musehub_http_connections_refused_total",
            "Connections closed as soon as accepted because max_connections were open.",
            self.connections_refused.get(),
        );
        out.counter(
            "musehub_objects_stored_total",
            "Objects added to repositories (pushes, imports, replication) since start.",
            self.objects_stored.get(),
        );
        out.counter(
            "musehub_db_read_connections_opened_total",
            "SQLite read connections opened since start.",
            readers_opened,
        );
        out.gauge("musehub_objects", "Objects stored on this hub.", objects);
        out.gauge("musehub_blocks", "Blocks in the block store.", blocks);
        out.gauge(
            "musehub_block_bytes",
            "Bytes in the block store.",
            block_bytes,
        );
        out.family(
            "musehub_push_duration_seconds",
            "Time to accept a push (the final POST push).",
            Kind::Histogram,
        );
        for (i, le) in PUSH_BUCKETS.iter().enumerate() {
            out.sample(
                "musehub_push_duration_seconds_bucket",
                &[("le", &le.to_string())],
                self.push_buckets[i].get(),
            );
        }
        out.sample(
            "musehub_push_duration_seconds_bucket",
            &[("le", "+Inf")],
            self.pushes.get(),
        );
        out.sample(
            "musehub_push_duration_seconds_sum",
            &[],
            self.push_micros.get() as f64 / 1e6,
        );
        out.sample(
            "musehub_push_duration_seconds_count",
            &[],
            self.pushes.get(),
        );
    }
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The one writer of the Prometheus text format (version 0.0.4).
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Counter);
        self.sample(name, &[], value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Gauge);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn families_and_samples_follow_the_text_format() {
        let mut t = Text::default();
        t.counter("a_total", "Things.", 3);
        t.family("b", "Per peer.", Kind::Gauge);
        t.sample("b", &[("peer", "http://x/\"q\"\\"), ("s", "up")], 1);
        t.sample("c_sum", &[], 0.5);
        assert_eq!(
            t.finish(),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Per peer.\n# TYPE b gauge\nb{peer=\"http://x/\\\"q\\\"\\\\\",s=\"up\"} 1\n\
             c_sum 0.5\n"
        );
    }
}
