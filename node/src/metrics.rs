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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use podnet_proto::model::view::Protocol;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use podnet_pod::netns::StreamMeter;

use crate::datapath::Datapath;

/// One Service port, as its series are labelled.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub namespace: String,
    pub service: String,
    pub port: String,
    pub protocol: String,
}

impl ServiceLabels {
    /// The labels of a proxy rule's id (`namespace/name:port-name`, the
    /// IPv6 rule of a dual-stack Service with ` (IPv6)` after it: both
    /// families count as the one Service port).
    pub fn of_rule(id: &str, protocol: Protocol) -> ServiceLabels {
        let id = id.strip_suffix(" (IPv6)").unwrap_or(id);
        let (namespace, rest) = id.split_once('/').unwrap_or(("", id));
        let (service, port) = rest.split_once(':').unwrap_or((rest, ""));
        ServiceLabels {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port: port.to_owned(),
            protocol: protocol.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceBytesLabels {
    pub namespace: String,
    pub service: String,
    pub port: String,
    pub protocol: String,
    /// `to_endpoint` (what the client sent) or `from_endpoint`.
    pub direction: &'static str,
}

#[derive(Debug)]
struct ServiceMeters {
    flows: Counter,
    /// Written: toward the endpoint; read: from it.
    meter: StreamMeter,
}

/// Why the proxy did not forward a new flow to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyDrop {
    /// A Service address with no rule for the port and protocol.
    NoRule,
    /// A rule with no usable endpoint: the client is refused.
    NoEndpoints,
    /// A Local traffic policy without a local endpoint: silence.
    NoLocalEndpoint,
}

/// What the service proxy counts per Service, and its own drops.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    flows: Family<ServiceLabels, Counter>,
    bytes: Family<ServiceBytesLabels, Counter>,
    /// Per rule id, so a new flow takes one read lock and no allocation.
    by_rule: RwLock<HashMap<(String, Protocol), Arc<ServiceMeters>>>,
    no_rule: AtomicU64,
    no_endpoints: AtomicU64,
    no_local_endpoint: AtomicU64,
    programming: ProgrammingLatency,
}

impl ProxyMetrics {
    fn meters(&self, rule: &str, protocol: Protocol) -> Arc<ServiceMeters> {
        let key = (rule.to_owned(), protocol);
        if let Some(m) = self
            .by_rule
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return m.clone();
        }
        let labels = ServiceLabels::of_rule(rule, protocol);
        let bytes = |direction| {
            self.bytes.get_or_create_owned(&ServiceBytesLabels {
                namespace: labels.namespace.clone(),
                service: labels.service.clone(),
                port: labels.port.clone(),
                protocol: labels.protocol.clone(),
                direction,
            })
        };
        let meters = Arc::new(ServiceMeters {
            meter: StreamMeter {
                written: bytes("to_endpoint"),
                read: bytes("from_endpoint"),
            },
            flows: self.flows.get_or_create_owned(&labels),
        });
        self.by_rule
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(meters)
            .clone()
    }

    /// A new flow the proxy sent to an endpoint of `rule`; the meter its
    /// bytes are counted on.
    pub fn new_flow(&self, rule: &str, protocol: Protocol) -> StreamMeter {
        let m = self.meters(rule, protocol);
        m.flows.inc();
        m.meter.clone()
    }

    /// The meter of a UDP flow the proxy pinned before.
    pub fn meter(&self, rule: &str, protocol: Protocol) -> StreamMeter {
        self.meters(rule, protocol).meter.clone()
    }

    pub fn dropped(&self, why: ProxyDrop) {
        let c = match why {
            ProxyDrop::NoRule => &self.no_rule,
            ProxyDrop::NoEndpoints => &self.no_endpoints,
            ProxyDrop::NoLocalEndpoint => &self.no_local_endpoint,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn programming(&self) -> &ProgrammingLatency {
        &self.programming
    }
}

/// Seconds from a Service or EndpointSlice change reaching the node's
/// informer cache to the proxy table holding it.
#[derive(Debug)]
pub struct ProgrammingLatency(Histogram);

/// The buckets, in seconds: 100 µs to about 3 s, doubling. Programming a
/// table takes well under a millisecond on an idle node and seconds only
/// when the node is starved; the bucket edges say which.
pub fn programming_buckets() -> Vec<f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16).collect()
}

impl Default for ProgrammingLatency {
    fn default() -> Self {
        ProgrammingLatency(Histogram::new(programming_buckets()))
    }
}

impl ProgrammingLatency {
    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }
}

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
    use super::*;

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
