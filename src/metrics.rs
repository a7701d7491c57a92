//! The counters of `GET /metrics`: requests by route and status, latency
//! histograms, bytes in and out (each server's own [`Metrics`], held by its
//! services), and log events by level (process-wide: a tracing layer counts
//! them, so alarms can watch the error and warn counters).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

/// The counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    concat_bytes_copied: AtomicU64,
    downloads: AtomicU64,
    download_counts_dropped: AtomicU64,
    lifecycle_disabled: AtomicU64,
    lifecycle_deleted: AtomicU64,
    lifecycle_bytes_reclaimed: AtomicU64,
    list_cache_hits: AtomicU64,
    list_cache_misses: AtomicU64,
}

/// Log events by level, counted by [`CountingLayer`] for the process (the
/// logger is the process's).
static LOG_EVENTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// One log event at `level`.
fn log_event(level: &tracing::Level) {
    let i = match *level {
        tracing::Level::ERROR => 0,
        tracing::Level::WARN => 1,
        tracing::Level::INFO => 2,
        tracing::Level::DEBUG => 3,
        tracing::Level::TRACE => 4,
    };
    LOG_EVENTS[i].fetch_add(1, Ordering::Relaxed);
}

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// A computed metric: name, help, type, and samples of (labels, value).
pub type Gauge<'a> = (&'a str, &'a str, &'a str, Vec<(String, f64)>);

impl Metrics {
    /// One finished request.
    /// Labels come from closed sets: `route` is a route template (or
    /// `unmatched`), an unknown `method` is counted as `other`.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        let route = if route.len() > 200 {
            "unmatched"
        } else {
            route
        };
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let histogram = m.entry(route.to_string()).or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    histogram.counts[i] += 1;
                }
            }
            histogram.sum += seconds;
            histogram.total += 1;
        }
    }

    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes a final upload of a tus concatenation copied from its partials.
    pub fn add_concat_bytes_copied(&self, n: u64) {
        self.concat_bytes_copied.fetch_add(n, Ordering::Relaxed);
    }

    /// A download of an image file counted (`images::downloads`).
    pub fn add_download(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Download counts a node could not keep (its batch was full while the
    /// database was down).
    pub fn add_download_counts_dropped(&self, n: u64) {
        self.download_counts_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// A ListImages answered from the node's cache (`hit`) or read.
    pub fn list_cache(&self, hit: bool) {
        let n = if hit {
            &self.list_cache_hits
        } else {
            &self.list_cache_misses
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// The lifecycle policy disabled an image.
    pub fn add_lifecycle_disabled(&self) {
        self.lifecycle_disabled.fetch_add(1, Ordering::Relaxed);
    }

    /// The lifecycle policy deleted an image of `bytes`.
    pub fn add_lifecycle_deleted(&self, bytes: u64) {
        self.lifecycle_deleted.fetch_add(1, Ordering::Relaxed);
        self.lifecycle_bytes_reclaimed
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the counters, plus `extra` gauges
    /// computed by the caller (name, help, type, samples of (labels, value)).
    pub fn render(&self, extra: &[Gauge]) -> String {
        let mut out = String::new();
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.render_counters(&mut out);
        render_log_events(&mut out);
        render_gauges(&mut out, extra);
        out
    }

    /// `imgapi_http_requests_total`: requests by route, method and status.
    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP imgapi_http_requests_total HTTP requests by route, method and status."
        );
        let _ = writeln!(out, "# TYPE imgapi_http_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "imgapi_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
    }

    /// `imgapi_http_request_duration_seconds`: the latency histogram of each
    /// route.
    fn render_latency(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP imgapi_http_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(out, "# TYPE imgapi_http_request_duration_seconds histogram");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                let r = escape(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "imgapi_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "imgapi_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                    h.total
                );
                let _ = writeln!(
                    out,
                    "imgapi_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "imgapi_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                    h.total
                );
            }
        }
    }

    /// The plain counters (bytes, downloads, lifecycle), each its own family.
    fn render_counters(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "imgapi_http_request_bytes_total",
                "Request body bytes received.",
                &self.bytes_in,
            ),
            (
                "imgapi_http_response_bytes_total",
                "Response body bytes sent.",
                &self.bytes_out,
            ),
            (
                "imgapi_concat_bytes_copied_total",
                "Bytes copied from partial uploads into their final upload (written in place: none).",
                &self.concat_bytes_copied,
            ),
            (
                "imgapi_image_downloads_total",
                "Image file downloads counted (served to the file's last byte, or redirected).",
                &self.downloads,
            ),
            (
                "imgapi_download_counts_dropped_total",
                "Download counts lost: the node's batch was full while the database could not take it.",
                &self.download_counts_dropped,
            ),
            (
                "imgapi_list_cache_hits_total",
                "ListImages answered from this node's cache (no image changed since).",
                &self.list_cache_hits,
            ),
            (
                "imgapi_list_cache_misses_total",
                "ListImages that could use this node's cache and read the images.",
                &self.list_cache_misses,
            ),
            (
                "imgapi_lifecycle_images_disabled_total",
                "Images the lifecycle policy disabled (in this process).",
                &self.lifecycle_disabled,
            ),
            (
                "imgapi_lifecycle_images_deleted_total",
                "Images the lifecycle policy deleted (in this process).",
                &self.lifecycle_deleted,
            ),
            (
                "imgapi_lifecycle_bytes_reclaimed_total",
                "Stored bytes the lifecycle policy's deletions freed (in this process).",
                &self.lifecycle_bytes_reclaimed,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

/// The `extra` gauges of [`Metrics::render`]'s caller, each its own family.
fn render_gauges(out: &mut String, extra: &[Gauge]) {
    for (name, help, kind, samples) in extra {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `imgapi_log_events_total`: log events by level.
fn render_log_events(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP imgapi_log_events_total Log events by level (alarm on error and warn)."
    );
    let _ = writeln!(out, "# TYPE imgapi_log_events_total counter");
    for (i, l) in LEVELS.iter().enumerate() {
        let _ = writeln!(
            out,
            "imgapi_log_events_total{{level=\"{l}\"}} {}",
            LOG_EVENTS[i].load(Ordering::Relaxed)
        );
    }
}

/// A tracing layer counting events by level.
pub struct CountingLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountingLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        log_event(event.metadata().level());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("/images/{uuid}", "GET", 200, 0.003);
        m.request("/images/{uuid}", "GET", 404, 0.2);
        m.add_bytes_in(10);
        let t = m.render(&[(
            "imgapi_uploads",
            "Uploads by state.",
            "gauge",
            vec![("state=\"uploading\"".into(), 2.0)],
        )]);
        assert!(t.contains(
            "imgapi_http_requests_total{route=\"/images/{uuid}\",method=\"GET\",status=\"404\"} 1"
        ));
        assert!(t.contains(
            "imgapi_http_request_duration_seconds_bucket{route=\"/images/{uuid}\",le=\"0.005\"} 1"
        ));
        assert!(
            t.contains("imgapi_http_request_duration_seconds_count{route=\"/images/{uuid}\"} 2")
        );
        assert!(t.contains("imgapi_http_request_bytes_total 10"));
        assert!(t.contains("imgapi_uploads{state=\"uploading\"} 2"));
    }

    #[test]
    fn unknown_methods_are_other() {
        let m = Metrics::default();
        m.request("unmatched", &"X".repeat(5000), 405, 0.001);
        let t = m.render(&[]);
        assert!(t.contains("method=\"other\""));
        assert!(!t.contains("XXXX"));
    }
}
