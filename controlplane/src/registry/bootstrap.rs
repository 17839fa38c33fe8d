//! The objects every cluster starts with, as kubeadm and the API server
//! create them: the namespaces, the `kubernetes` Service (the API server's
//! ClusterIP, no selector: its endpoints are the control plane, not pods),
//! and cluster DNS: the `kube-dns` Service in front of the `coredns`
//! Deployment of `podnet/dns` pods.
//!
//! Only created when missing: a restarted control plane keeps whatever the
//! user changed (scaled coredns, edited Services).

use std::net::IpAddr;

use podnet_proto::model::network::DNS_APP_LABEL;
use serde_json::{Value, json};

use super::alloc::{API_SERVICE, DNS_SERVICE};

/// The port the API server's Service forwards to.
const API_SERVER_PORT: u16 = 6443;

pub(super) fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub(super) fn kubernetes_service(ip: IpAddr) -> Value {
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

pub(super) fn dns_service(ip: IpAddr) -> Value {
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

/// Where the ingress controller lives, as ingress-nginx lives in
/// `ingress-nginx`.
pub const INGRESS_NAMESPACE: &str = "podnet-ingress";
/// Its Deployment and LoadBalancer Service.
pub const INGRESS_CONTROLLER: &str = "podnet-ingress-controller";
/// The IngressClass it serves, marked the cluster's default.
pub const INGRESS_CLASS: &str = "podnet";
const INGRESS_CONTROLLER_NAME: &str = "podnet.io/ingress-controller";

fn ingress_labels() -> Value {
    json!({
        "app.kubernetes.io/name": "podnet-ingress",
        "app.kubernetes.io/component": "controller",
    })
}

/// The ingress controller, deployed as ingress-nginx's cloud manifest
/// deploys it: a Deployment behind a LoadBalancer Service with
/// `externalTrafficPolicy: Local` (so backends see the client's address in
/// `X-Forwarded-For`), and the default IngressClass.
pub(super) fn ingress_objects(replicas: u32, default_backend: Option<&str>) -> Vec<Value> {
    let labels = ingress_labels();
    let mut args = vec![format!(
        "--publish-service={INGRESS_NAMESPACE}/{INGRESS_CONTROLLER}"
    )];
    if let Some(backend) = default_backend {
        args.push(format!("--default-backend-service={backend}"));
    }
    vec![
        namespace(INGRESS_NAMESPACE),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": INGRESS_CLASS,
                "labels": labels,
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": INGRESS_CONTROLLER_NAME},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": INGRESS_CONTROLLER, "namespace": INGRESS_NAMESPACE, "labels": labels},
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "selector": labels,
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"},
                ],
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": INGRESS_CONTROLLER, "namespace": INGRESS_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        // The identity the controller calls the API as
                        // (what `authz` grants it).
                        "serviceAccountName": INGRESS_CONTROLLER,
                        "containers": [{
                            "name": "controller",
                            "image": "podnet/ingress",
                            "args": args,
                            "ports": [
                                {"name": "http", "containerPort": 80, "protocol": "TCP"},
                                {"name": "https", "containerPort": 443, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                            "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
                        }],
                    },
                },
            },
        }),
    ]
}
