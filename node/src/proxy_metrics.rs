//! What the node's service proxy counts as it goes: flows and bytes per
//! Service port, drops by reason, and endpoint programming latency. The
//! datapath owns these; `crate::metrics` registers them for `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use podnet_proto::model::view::Protocol;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use podnet_pod::netns::StreamMeter;

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
    pub(crate) flows: Family<ServiceLabels, Counter>,
    pub(crate) bytes: Family<ServiceBytesLabels, Counter>,
    /// Per rule id, so a new flow takes one read lock and no allocation.
    by_rule: RwLock<HashMap<(String, Protocol), Arc<ServiceMeters>>>,
    pub(crate) no_rule: AtomicU64,
    pub(crate) no_endpoints: AtomicU64,
    pub(crate) no_local_endpoint: AtomicU64,
    pub(crate) programming: ProgrammingLatency,
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
pub struct ProgrammingLatency(pub(crate) Histogram);

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
