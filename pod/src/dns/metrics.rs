//! The DNS server's counters on `GET /metrics` in Prometheus text format,
//! on port [`METRICS_PORT`] of the DNS pod, as CoreDNS's `prometheus :9153`
//! serves them. The metric names are CoreDNS's; the labels are the subset
//! podnet counts (one server block for the root zone, so `zone="."`).
//!
//! [`render`] is pure. The listener speaks just enough HTTP/1.1 for a
//! scraper or `curl`: one request per connection, a bounded head, 404 for
//! any other path.
//!
//! Deliberately not here: histograms (request durations, sizes), the cache
//! and health plugins' metrics, and Go runtime metrics.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::rcode_mnemonic;
use super::server::DnsStats;
use crate::netns::{PodListener, PodStream};

/// CoreDNS's metrics port.
pub const METRICS_PORT: u16 = 9153;
/// The largest request head read.
const MAX_HEAD: usize = 8192;
/// How long a scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more are closed on accept.
const MAX_SCRAPES: usize = 16;
const SERVER: &str = "dns://:53";

/// The counters of `stats` as Prometheus text.
pub fn render(stats: &DnsStats) -> String {
    let mut out = String::new();
    let tcp = stats.tcp_queries();
    let udp = stats.queries().saturating_sub(tcp);
    let _ = writeln!(
        out,
        "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family."
    );
    let _ = writeln!(out, "# TYPE coredns_dns_requests_total counter");
    for (proto, count) in [("udp", udp), ("tcp", tcp)] {
        let _ = writeln!(
            out,
            "coredns_dns_requests_total{{server=\"{SERVER}\",zone=\".\",proto=\"{proto}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP coredns_dns_responses_total Counter of response status codes."
    );
    let _ = writeln!(out, "# TYPE coredns_dns_responses_total counter");
    for code in 0u16..16 {
        let rcode = <ResponseCode as From<u16>>::from(code);
        let count = stats.responses(rcode);
        if count > 0 {
            let _ = writeln!(
                out,
                "coredns_dns_responses_total{{server=\"{SERVER}\",zone=\".\",rcode=\"{}\"}} {count}",
                rcode_mnemonic(rcode)
            );
        }
    }
    let forward = stats.forward();
    let _ = writeln!(
        out,
        "# HELP coredns_forward_requests_total Counter of requests made per upstream."
    );
    let _ = writeln!(out, "# TYPE coredns_forward_requests_total counter");
    for (to, count) in forward.requests() {
        let _ = writeln!(out, "coredns_forward_requests_total{{to=\"{to}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP coredns_forward_responses_total Counter of responses received per upstream."
    );
    let _ = writeln!(out, "# TYPE coredns_forward_responses_total counter");
    for ((to, rcode), count) in forward.responses() {
        let Some(rcode) = rcode else { continue };
        let rcode = <ResponseCode as From<u16>>::from(rcode);
        let _ = writeln!(
            out,
            "coredns_forward_responses_total{{to=\"{to}\",rcode=\"{}\"}} {count}",
            rcode_mnemonic(rcode)
        );
    }
    let timeouts: Vec<_> = forward
        .responses()
        .into_iter()
        .filter(|((_, rcode), _)| rcode.is_none())
        .collect();
    let _ = writeln!(
        out,
        "# HELP podnet_dns_forward_timeouts_total Upstream tries that got no answer in time."
    );
    let _ = writeln!(out, "# TYPE podnet_dns_forward_timeouts_total counter");
    for ((to, _), count) in timeouts {
        let _ = writeln!(
            out,
            "podnet_dns_forward_timeouts_total{{to=\"{to}\"}} {count}"
        );
    }
    for (name, help, value) in [
        (
            "coredns_forward_max_concurrent_rejects_total",
            "Queries refused because the concurrent queries were at maximum.",
            forward.rejected(),
        ),
        (
            "podnet_dns_dropped_total",
            "Messages not answered (unreadable headers and responses).",
            stats.dropped(),
        ),
        (
            "podnet_dns_truncated_total",
            "UDP responses sent with TC set.",
            stats.truncated(),
        ),
        (
            "podnet_dns_tcp_rejected_total",
            "TCP connections closed on accept because too many were open.",
            stats.tcp_rejected(),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Serves `/metrics` on `listener` until `cancel`; returns once every
/// scrape has ended.
pub async fn serve_metrics(
    mut listener: PodListener,
    stats: Arc<DnsStats>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    let result = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => break Err(error),
            },
            () = cancel.cancelled() => break Ok(()),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let stats = stats.clone();
        tracker.spawn(
            async move {
                let _slot = slot;
                let _ = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(stream, &stats)).await;
            }
            .instrument(tracing::debug_span!("dns.metrics", conn.peer = %peer)),
        );
    };
    tracker.close();
    tracker.wait().await;
    result
}

async fn scrape(mut stream: PodStream, stats: &DnsStats) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match request_path(&head) {
        Some("/metrics") => ("200 OK", render(stats)),
        _ => ("404 Not Found", "404 page not found\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The path of a `GET` request head, without its query string.
fn request_path(head: &[u8]) -> Option<&str> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method != "GET" && method != "HEAD" {
        return None;
    }
    Some(target.split('?').next().unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths() {
        assert_eq!(
            request_path(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(
            request_path(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(request_path(b"POST /metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_path(b"\xff\xfe\r\n\r\n"), None);
        assert_eq!(request_path(b""), None);
    }

    #[test]
    fn an_idle_server_renders_zeroes() {
        let text = render(&DnsStats::default());
        assert!(
            text.contains(
                "coredns_dns_requests_total{server=\"dns://:53\",zone=\".\",proto=\"udp\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("coredns_forward_max_concurrent_rejects_total 0\n"));
        assert!(!text.contains("coredns_dns_responses_total{"), "{text}");
    }
}
