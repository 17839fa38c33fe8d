//! The DNS server's counters on `GET /metrics` in Prometheus text format,
//! on port [`METRICS_PORT`] of the DNS pod, as CoreDNS's `prometheus :9153`
//! serves them. The metric names are CoreDNS's; the labels are the subset
//! podnet counts (one server block for the root zone, so `zone="."`).
//!
//! The counters stay in [`DnsStats`], counted by the server; a
//! `prometheus_client` collector reads them at each scrape, and
//! `podnet_metrics` serves the registry on the pod's own listener (bounded
//! scrapes, a bounded request head, 404 for any other path).
//!
//! Deliberately not here: histograms (request durations, sizes), the cache
//! and health plugins' metrics, and Go runtime metrics.

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use podnet_metrics::prometheus_client::collector::Collector;
use podnet_metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use podnet_metrics::prometheus_client::metrics::MetricType;
use podnet_metrics::prometheus_client::metrics::counter::ConstCounter;
use podnet_metrics::prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::rcode_mnemonic;
use super::server::DnsStats;
use crate::netns::{PodListener, PodStream};

/// CoreDNS's metrics port.
pub const METRICS_PORT: u16 = 9153;
const SERVER: &str = "dns://:53";

/// The registry of one DNS server's counters.
pub fn registry(stats: Arc<DnsStats>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(DnsCollector(stats)));
    r
}

/// The counters of `stats` as Prometheus text.
pub fn render(stats: &Arc<DnsStats>) -> String {
    podnet_metrics::render(&registry(stats.clone()), podnet_metrics::Format::Prometheus)
}

#[derive(Debug)]
struct DnsCollector(Arc<DnsStats>);

/// One counter family from values read at scrape time.
fn counters<const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = ([(&'static str, String); N], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, count) in series {
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for DnsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let tcp = stats.tcp_queries();
        let udp = stats.queries().saturating_sub(tcp);
        let server = || ("server", SERVER.to_owned());
        let zone = || ("zone", ".".to_owned());
        counters(
            &mut encoder,
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            [("udp", udp), ("tcp", tcp)]
                .map(|(proto, count)| ([server(), zone(), ("proto", proto.to_owned())], count)),
        )?;
        counters(
            &mut encoder,
            "coredns_dns_responses",
            "Counter of response status codes.",
            (0u16..16).filter_map(|code| {
                let rcode = <ResponseCode as From<u16>>::from(code);
                let count = stats.responses(rcode);
                (count > 0).then(|| {
                    (
                        [
                            server(),
                            zone(),
                            ("rcode", rcode_mnemonic(rcode).to_owned()),
                        ],
                        count,
                    )
                })
            }),
        )?;
        let forward = stats.forward();
        counters(
            &mut encoder,
            "coredns_forward_requests",
            "Counter of requests made per upstream.",
            forward
                .requests()
                .into_iter()
                .map(|(to, count)| ([("to", to.to_string())], count)),
        )?;
        let responses = forward.responses();
        counters(
            &mut encoder,
            "coredns_forward_responses",
            "Counter of responses received per upstream.",
            responses.iter().filter_map(|((to, rcode), count)| {
                let rcode = <ResponseCode as From<u16>>::from((*rcode)?);
                Some((
                    [
                        ("to", to.to_string()),
                        ("rcode", rcode_mnemonic(rcode).to_owned()),
                    ],
                    *count,
                ))
            }),
        )?;
        counters(
            &mut encoder,
            "podnet_dns_forward_timeouts",
            "Upstream tries that got no answer in time.",
            responses
                .iter()
                .filter(|((_, rcode), _)| rcode.is_none())
                .map(|((to, _), count)| ([("to", to.to_string())], *count)),
        )?;
        for (name, help, value) in [
            (
                "coredns_forward_max_concurrent_rejects",
                "Queries refused because the concurrent queries were at maximum.",
                forward.rejected(),
            ),
            (
                "podnet_dns_dropped",
                "Messages not answered (unreadable headers and responses).",
                stats.dropped(),
            ),
            (
                "podnet_dns_truncated",
                "UDP responses sent with TC set.",
                stats.truncated(),
            ),
            (
                "podnet_dns_tcp_rejected",
                "TCP connections closed on accept because too many were open.",
                stats.tcp_rejected(),
            ),
        ] {
            counters::<0>(&mut encoder, name, help, [([], value)])?;
        }
        Ok(())
    }
}

impl podnet_metrics::Listener for PodListener {
    type Io = PodStream;

    async fn accept(&mut self) -> std::io::Result<(PodStream, String)> {
        let (stream, peer) = PodListener::accept(self).await?;
        Ok((stream, peer.to_string()))
    }
}

/// Serves `/metrics` on `listener` until `cancel`; returns once every
/// scrape has ended.
pub async fn serve_metrics(
    listener: PodListener,
    stats: Arc<DnsStats>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    podnet_metrics::serve(listener, Arc::new(registry(stats)), cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_server_renders_zeroes() {
        let text = render(&Arc::new(DnsStats::default()));
        assert!(
            text.contains(
                "coredns_dns_requests_total{server=\"dns://:53\",zone=\".\",proto=\"udp\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("coredns_forward_max_concurrent_rejects_total 0\n"));
        assert!(!text.contains("coredns_dns_responses_total{"), "{text}");
        let parsed = sample_names(&text);
        assert!(
            parsed.iter().any(|m| m == "podnet_dns_tcp_rejected_total"),
            "{parsed:?}"
        );
    }

    /// The sample names of a Prometheus text body, each line checked to
    /// be a comment or `name{labels} value`.
    fn sample_names(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
                value.parse::<u64>().unwrap_or_else(|_| panic!("{l}"));
                series.split('{').next().unwrap().to_owned()
            })
            .collect()
    }
}
