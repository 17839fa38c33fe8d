//! The objects every cluster starts with, as kubeadm and the API server
//! create them: the namespaces, the `kubernetes` Service (the API server's
//! ClusterIP, no selector: its endpoints are the control plane, not pods),
//! and cluster DNS: the `kube-dns` Service in front of the `coredns`
//! Deployment of `podnet/dns` pods.
//!
//! Only created when missing: a restarted control plane keeps whatever the
//! user changed (scaled coredns, edited Services).

use std::net::Ipv4Addr;

use podnet_proto::model::network::DNS_APP_LABEL;
use serde_json::{Value, json};

use super::alloc::{API_SERVICE, DNS_SERVICE};

/// The port the API server's Service forwards to.
const API_SERVER_PORT: u16 = 6443;

pub(super) fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub(super) fn kubernetes_service(ip: Ipv4Addr) -> Value {
    let (namespace, name) = API_SERVICE;
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": API_SERVER_PORT}],
            "sessionAffinity": "None",
        },
    })
}

pub(super) fn dns_service(ip: Ipv4Addr) -> Value {
    let (namespace, name) = DNS_SERVICE;
    let (key, value) = DNS_APP_LABEL;
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {key: value, "kubernetes.io/name": "CoreDNS"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip.to_string(),
            "selector": {key: value},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    })
}

/// `dnsPolicy: Default`, as upstream's coredns: the DNS server must not
/// resolve through itself.
pub(super) fn dns_deployment(replicas: u32) -> Value {
    let (namespace, _) = DNS_SERVICE;
    let (key, value) = DNS_APP_LABEL;
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": namespace, "labels": {key: value}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {key: value}},
            "template": {
                "metadata": {"labels": {key: value}},
                "spec": {
                    "dnsPolicy": "Default",
                    "containers": [{
                        "name": "coredns",
                        "image": "podnet/dns",
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                        ],
                        "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 1},
                        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
                    }],
                },
            },
        },
    })
}
