//! The edge's Prometheus metrics: client connections (TCP) and datagrams
//! (UDP) and their bytes per LoadBalancer frontend (address, port,
//! protocol) and Service, and failures to reach a backend node by reason.
//!
//! TCP bytes are counted when a connection ends (the splice's totals);
//! UDP bytes per datagram. Labels stay low-cardinality: a frontend is one
//! of the pool's addresses and a Service port, never a client.

use std::net::SocketAddr;

use podnet_proto::model::view::Protocol;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

/// One LoadBalancer frontend of one Service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrontendLabels {
    pub namespace: String,
    pub service: String,
    pub address: String,
    pub port: String,
    pub protocol: String,
}

impl FrontendLabels {
    /// The labels of Service `service` (`namespace/name`) on `frontend`.
    pub fn new(service: &str, frontend: SocketAddr, protocol: Protocol) -> FrontendLabels {
        let (namespace, name) = service.split_once('/').unwrap_or(("", service));
        FrontendLabels {
            namespace: namespace.to_owned(),
            service: name.to_owned(),
            address: frontend.ip().to_string(),
            port: frontend.port().to_string(),
            protocol: protocol.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub namespace: String,
    pub service: String,
    pub address: String,
    pub port: String,
    pub protocol: String,
    /// `to_backend` (what clients sent) or `from_backend`.
    pub direction: &'static str,
}

/// Why a backend node did not take a client's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The node answered that nothing listens (no endpoints).
    Refused,
    /// The node could not be reached over the overlay.
    Unreachable,
    /// No node was a candidate (none Ready and healthy).
    NoHealthyNode,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Unreachable => "unreachable",
            Failure::NoHealthyNode => "no_healthy_node",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub namespace: String,
    pub service: String,
    pub reason: &'static str,
}

/// What a UDP listener counts datagrams and bytes on.
#[derive(Debug, Clone)]
pub struct UdpMeters {
    pub datagrams: Counter,
    pub to_backend: Counter,
    pub from_backend: Counter,
}

#[derive(Debug, Default)]
pub struct EdgeMetrics {
    connections: Family<FrontendLabels, Counter>,
    datagrams: Family<FrontendLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
}

impl EdgeMetrics {
    /// The registry, every name prefixed `podnet_edge_`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("podnet_edge");
        r.register(
            "connections",
            "Client TCP connections accepted, per LoadBalancer frontend and Service",
            self.connections.clone(),
        );
        r.register(
            "datagrams",
            "Client UDP datagrams received, per LoadBalancer frontend and Service",
            self.datagrams.clone(),
        );
        r.register_with_unit(
            "frontend",
            "Bytes forwarded, per LoadBalancer frontend, Service and direction (TCP counted when a connection ends)",
            Unit::Bytes,
            self.bytes.clone(),
        );
        r.register(
            "backend_failures",
            "Tries to hand a client's flow to a node that failed, by reason",
            self.failures.clone(),
        );
        r
    }

    pub fn connection(&self, labels: &FrontendLabels) {
        self.connections.get_or_create(labels).inc();
    }

    /// The counters of one UDP frontend, kept by its listener.
    pub fn udp_meters(&self, labels: &FrontendLabels) -> UdpMeters {
        UdpMeters {
            datagrams: self.datagrams.get_or_create_owned(labels),
            to_backend: self.bytes_counter(labels, "to_backend"),
            from_backend: self.bytes_counter(labels, "from_backend"),
        }
    }

    /// Bytes moved by one connection, client to backend and back.
    pub fn moved(&self, labels: &FrontendLabels, to_backend: u64, from_backend: u64) {
        self.bytes_counter(labels, "to_backend").inc_by(to_backend);
        self.bytes_counter(labels, "from_backend")
            .inc_by(from_backend);
    }

    fn bytes_counter(&self, labels: &FrontendLabels, direction: &'static str) -> Counter {
        self.bytes.get_or_create_owned(&BytesLabels {
            namespace: labels.namespace.clone(),
            service: labels.service.clone(),
            address: labels.address.clone(),
            port: labels.port.clone(),
            protocol: labels.protocol.clone(),
            direction,
        })
    }

    pub fn failed(&self, labels: &FrontendLabels, why: Failure) {
        self.failures
            .get_or_create(&FailureLabels {
                namespace: labels.namespace.clone(),
                service: labels.service.clone(),
                reason: why.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontends_are_labelled_by_service_and_address() {
        let l = FrontendLabels::new("shop/web", "127.0.1.2:8080".parse().unwrap(), Protocol::Tcp);
        assert_eq!(
            [
                &*l.namespace,
                &*l.service,
                &*l.address,
                &*l.port,
                &*l.protocol
            ],
            ["shop", "web", "127.0.1.2", "8080", "TCP"]
        );
        let odd = FrontendLabels::new("web", "127.0.1.2:53".parse().unwrap(), Protocol::Udp);
        assert_eq!([&*odd.namespace, &*odd.service], ["", "web"]);
    }

    #[test]
    fn text_names_follow_prometheus_conventions() {
        let m = EdgeMetrics::default();
        let l = FrontendLabels::new("shop/web", "127.0.1.2:80".parse().unwrap(), Protocol::Tcp);
        m.connection(&l);
        m.moved(&l, 10, 20);
        m.failed(&l, Failure::Refused);
        let text = podnet_metrics::render(&m.registry(), podnet_metrics::Format::Prometheus);
        for line in [
            "podnet_edge_connections_total{namespace=\"shop\",service=\"web\",address=\"127.0.1.2\",port=\"80\",protocol=\"TCP\"} 1",
            "podnet_edge_frontend_bytes_total{namespace=\"shop\",service=\"web\",address=\"127.0.1.2\",port=\"80\",protocol=\"TCP\",direction=\"from_backend\"} 20",
            "podnet_edge_backend_failures_total{namespace=\"shop\",service=\"web\",reason=\"refused\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
