//! The node's Prometheus metrics: per-Service flows and bytes through the
//! service proxy, drops by reason, NetworkPolicy verdicts, endpoint
//! programming latency and the overlay's connections, registered in one
//! `prometheus_client` registry that `podnet_metrics::serve` exposes.
//!
//! The datapath's and the enforcer's own counters ([`crate::datapath::Stats`],
//! [`crate::policy::PolicyStats`]) stay where they are counted; a
//! collector reads them at scrape time, so nothing is counted twice.
//!
//! Labels stay low-cardinality: a Service is `namespace`, `service`,
//! `port` (its port name) and `protocol`; never a pod, address or flow.
//! A Service's series outlive the Service until the node restarts, as
//! client libraries' families do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::datapath::Datapath;

/// The node's registry (every name prefixed `podnet_node_`): the proxy's
/// families, and a collector reading the
/// datapath's and the enforcer's counters at scrape time.
pub fn registry(datapath: &Arc<Datapath>) -> Registry {
    let mut r = Registry::with_prefix("podnet_node");
    let proxy = datapath.proxy_metrics();
    r.register(
        "service_flows",
        "New flows (TCP connections, SCTP associations, UDP flows) the service proxy sent to an endpoint, per Service port",
        proxy.flows.clone(),
    );
    r.register_with_unit(
        "service",
        "Bytes of proxied flows (TCP and SCTP payload, UDP datagram payload), per Service port and direction",
        Unit::Bytes,
        proxy.bytes.clone(),
    );
    r.register_with_unit(
        "endpoint_programming_duration",
        "Time from a Service or EndpointSlice change reaching the node's informer cache to the service proxy being programmed with it",
        Unit::Seconds,
        proxy.programming.0.clone(),
    );
    r.register_collector(Box::new(DatapathCollector(datapath.clone())));
    r
}

/// Reads the datapath's and the enforcer's counters at each scrape.
struct DatapathCollector(Arc<Datapath>);

impl std::fmt::Debug for DatapathCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatapathCollector")
            .field(&self.0.node_name())
            .finish()
    }
}

impl Collector for DatapathCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dp = &self.0;
        let stats = dp.stats.snapshot();
        let policy = &dp.policy().stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let proxy = dp.proxy_metrics();
        counter_family(
            &mut encoder,
            "drops",
            "Flows and datagrams the node dropped or refused, by reason.",
            "reason",
            &[
                ("unroutable", stats.unroutable),
                ("bad_header", stats.bad_headers),
                ("forged_source", stats.forged_sources),
                ("datagram_queue_full", stats.datagrams_dropped),
                ("link_rejected", stats.link_rejected),
                ("service_no_rule", load(&proxy.no_rule)),
                ("service_no_endpoints", load(&proxy.no_endpoints)),
                ("service_no_local_endpoint", load(&proxy.no_local_endpoint)),
                ("policy_egress", load(&policy.dropped_egress)),
                ("policy_ingress", load(&policy.dropped_ingress)),
            ],
        )?;
        counter_family(
            &mut encoder,
            "policy_verdicts",
            "New flows the NetworkPolicy enforcer judged, by verdict (dropped per side).",
            "verdict",
            &[
                ("allowed", load(&policy.allowed)),
                ("dropped_egress", load(&policy.dropped_egress)),
                ("dropped_ingress", load(&policy.dropped_ingress)),
            ],
        )?;
        counter_family(
            &mut encoder,
            "flows",
            "Stream flows (TCP, SCTP) opened by this node's pods (out) and reaching it over the overlay (in).",
            "direction",
            &[("out", stats.flows_out), ("in", stats.flows_in)],
        )?;
        counter_family(
            &mut encoder,
            "datagrams",
            "UDP datagrams sent by this node's pods (out) and arriving over the overlay (in).",
            "direction",
            &[("out", stats.datagrams_out), ("in", stats.datagrams_in)],
        )?;
        let conns = ConstGauge::new(i64::try_from(dp.overlay_connections()).unwrap_or(i64::MAX));
        conns.encode(encoder.encode_descriptor(
            "overlay_connections",
            "QUIC connections open on the node's overlay endpoint (to and from other nodes and the edge).",
            None,
            conns.metric_type(),
        )?)?;
        Ok(())
    }
}

/// One counter family with one label, from values read elsewhere.
fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (value, count) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use podnet_proto::model::view::Protocol;

    use crate::proxy_metrics::{
        ProxyMetrics, ServiceBytesLabels, ServiceLabels, programming_buckets,
    };

    #[test]
    fn rule_ids_become_labels() {
        fn check(id: &str, protocol: Protocol, expected: [&str; 4]) {
            let l = ServiceLabels::of_rule(id, protocol);
            assert_eq!(
                [&*l.namespace, &*l.service, &*l.port, &*l.protocol],
                expected,
                "{id}"
            );
        }
        check(
            "default/web:http",
            Protocol::Tcp,
            ["default", "web", "http", "TCP"],
        );
        check("default/web:", Protocol::Udp, ["default", "web", "", "UDP"]);
        check(
            "kube-system/kube-dns:dns (IPv6)",
            Protocol::Udp,
            ["kube-system", "kube-dns", "dns", "UDP"],
        );
        check("odd", Protocol::Sctp, ["", "odd", "", "SCTP"]);
    }

    #[test]
    fn programming_buckets_span_sub_millisecond_to_seconds() {
        let b = programming_buckets();
        assert_eq!(b.len(), 16);
        assert!((b[0] - 0.0001).abs() < 1e-12);
        assert!(b.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 1e-9));
        assert!(b[15] > 3.0 && b[15] < 3.5, "{}", b[15]);
    }

    #[test]
    fn flows_of_one_service_share_series() {
        let m = ProxyMetrics::default();
        let a = m.new_flow("default/web:http", Protocol::Tcp);
        let b = m.new_flow("default/web:http (IPv6)", Protocol::Tcp);
        a.written.inc_by(10);
        b.written.inc_by(5);
        m.meter("default/web:http", Protocol::Tcp).read.inc_by(7);
        let labels = ServiceLabels::of_rule("default/web:http", Protocol::Tcp);
        assert_eq!(m.flows.get_or_create(&labels).get(), 2);
        let bytes = |direction| {
            m.bytes
                .get_or_create(&ServiceBytesLabels {
                    namespace: "default".into(),
                    service: "web".into(),
                    port: "http".into(),
                    protocol: "TCP".into(),
                    direction,
                })
                .get()
        };
        assert_eq!(bytes("to_endpoint"), 15);
        assert_eq!(bytes("from_endpoint"), 7);
        // Another protocol on the same port name is another series.
        m.new_flow("default/web:http", Protocol::Udp);
        assert_eq!(m.flows.get_or_create(&labels).get(), 2);
    }
}
