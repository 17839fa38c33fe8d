//! A small cluster for the DNS tests (answer, server, resolver, toolbox):
//! every kind of Service the schema distinguishes, in Kubernetes JSON as
//! the agent's informers deliver it.

use serde_json::{Value, json};

use crate::cluster::ClusterView;

fn service(namespace: &str, name: &str, spec: Value) -> (String, Value) {
    (
        format!("{namespace}/{name}"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"namespace": namespace, "name": name},
            "spec": spec,
        }),
    )
}

fn slice(namespace: &str, name: &str, service: &str, body: Value) -> (String, Value) {
    let mut object = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
    });
    if let (Some(object), Some(body)) = (object.as_object_mut(), body.as_object()) {
        object.extend(body.clone());
    }
    (format!("{namespace}/{name}"), object)
}

fn endpoint(ip: &str, hostname: Option<&str>, ready: bool) -> Value {
    let mut endpoint = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": false},
    });
    if let (Some(hostname), Some(object)) = (hostname, endpoint.as_object_mut()) {
        object.insert("hostname".into(), json!(hostname));
    }
    endpoint
}

/// - `default/web`: ClusterIP 10.96.0.12, ports http 80/TCP, an unnamed
///   9090, dns 53/UDP;
/// - `default/db`: headless, ready `db-0` (10.244.1.5) and 10.244.2.7
///   without hostname, not-ready-but-serving 10.244.3.9, terminating
///   10.244.3.10; port pg 5432;
/// - `default/empty`: headless with only a not-ready endpoint;
/// - `default/unready-ok`: headless, publishNotReadyAddresses, one
///   not-ready endpoint 10.244.4.4;
/// - `default/ext` → `www.example.com`, `default/alias` → `web`,
///   `default/loop-a` ↔ `default/loop-b` (ExternalName);
/// - `default/pending`: no ClusterIP allocated yet;
/// - `default/Bad_Name`: not a DNS label;
/// - `other/web`: ClusterIP 10.96.5.5;
/// - `kube-system/kube-dns`: ClusterIP 10.96.0.10, dns 53/UDP, dns-tcp
///   53/TCP.
pub(crate) fn cluster_view() -> ClusterView {
    let services = [
        service(
            "default",
            "web",
            json!({
                "type": "ClusterIP",
                "clusterIP": "10.96.0.12",
                "clusterIPs": ["10.96.0.12"],
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"port": 9090, "protocol": "TCP", "targetPort": 9090},
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                ],
            }),
        ),
        service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ),
        service("default", "empty", json!({"clusterIP": "None"})),
        service(
            "default",
            "unready-ok",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
        ),
        service(
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "www.example.com"}),
        ),
        service(
            "default",
            "alias",
            json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local."}),
        ),
        service(
            "default",
            "loop-a",
            json!({"type": "ExternalName", "externalName": "loop-b.default.svc.cluster.local"}),
        ),
        service(
            "default",
            "loop-b",
            json!({"type": "ExternalName", "externalName": "loop-a.default.svc.cluster.local"}),
        ),
        service("default", "pending", json!({"type": "ClusterIP"})),
        service("default", "Bad_Name", json!({"clusterIP": "10.96.9.9"})),
        service(
            "other",
            "web",
            json!({"clusterIP": "10.96.5.5", "ports": [{"name": "http", "port": 80}]}),
        ),
        service(
            "kube-system",
            "kube-dns",
            json!({
                "clusterIP": "10.96.0.10",
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            }),
        ),
    ];
    let slices = [
        slice(
            "default",
            "db-abcde",
            "db",
            json!({
                "endpoints": [
                    endpoint("10.244.1.5", Some("db-0"), true),
                    endpoint("10.244.2.7", None, true),
                    endpoint("10.244.3.9", Some("db-2"), false),
                    {
                        "addresses": ["10.244.3.10"],
                        "conditions": {"ready": false, "serving": false, "terminating": true},
                    },
                ],
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            }),
        ),
        slice(
            "default",
            "empty-xyz",
            "empty",
            json!({"endpoints": [endpoint("10.244.5.5", None, false)], "ports": []}),
        ),
        slice(
            "default",
            "unready-ok-1",
            "unready-ok",
            json!({"endpoints": [endpoint("10.244.4.4", None, false)]}),
        ),
        // A slice of web (not headless): it must not add records.
        slice(
            "default",
            "web-1",
            "web",
            json!({"endpoints": [endpoint("10.244.1.9", None, true)]}),
        ),
    ];
    ClusterView {
        services: services.into_iter().collect(),
        endpoint_slices: slices.into_iter().collect(),
    }
}

/// A headless Service `default/big` with `count` ready endpoints
/// 10.244.<i/250>.<i%250+1>, for answers that do not fit in 512 bytes.
pub(crate) fn big_headless(view: &mut ClusterView, count: usize) {
    let (key, value) = service("default", "big", json!({"clusterIP": "None"}));
    view.services.insert(key, value);
    let endpoints: Vec<Value> = (0..count)
        .map(|i| endpoint(&format!("10.244.{}.{}", i / 250, i % 250 + 1), None, true))
        .collect();
    let (key, value) = slice("default", "big-1", "big", json!({"endpoints": endpoints}));
    view.endpoint_slices.insert(key, value);
}

/// Dual-stack Services (`default/dual`, ClusterIPs 10.96.0.30 and
/// fd00:10:96::30) and a headless one (`default/dual-db`) with an IPv4 and
/// an IPv6 slice: `db-0` at 10.244.1.5 and fd00:10:244:1::5, and
/// fd00:10:244:2::7 without hostname.
pub(crate) fn dual_stack(view: &mut ClusterView) {
    for (key, value) in [
        service(
            "default",
            "dual",
            json!({
                "clusterIP": "10.96.0.30",
                "clusterIPs": ["10.96.0.30", "fd00:10:96::30"],
                "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack",
                "ports": [{"name": "http", "port": 80}],
            }),
        ),
        service(
            "default",
            "dual-db",
            json!({"clusterIP": "None", "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"}),
        ),
    ] {
        view.services.insert(key, value);
    }
    for (key, value) in [
        slice(
            "default",
            "dual-db-v4",
            "dual-db",
            json!({"endpoints": [endpoint("10.244.1.5", Some("db-0"), true)]}),
        ),
        slice(
            "default",
            "dual-db-v6",
            "dual-db",
            json!({
                "addressType": "IPv6",
                "endpoints": [
                    endpoint("fd00:10:244:1::5", Some("db-0"), true),
                    endpoint("fd00:10:244:2::7", None, true),
                ],
            }),
        ),
    ] {
        view.endpoint_slices.insert(key, value);
    }
}
