//! Services, EndpointSlices and Endpoints, through the same `check`.

use serde_json::{Value, json};

use super::{Expect, check, ok, with, without};
use crate::validate::{validate, validate_update};

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    })
}

fn slice() -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "node-1"}],
        "ports": [{"port": 8080}],
    })
}

fn endpoints() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}],
    })
}

const S0: &str = "/spec/ports/0";

#[test]
fn service_gets_api_server_defaults() {
    check(
        service(),
        ok(&[
            ("/spec/type", json!("ClusterIP")),
            ("/spec/sessionAffinity", json!("None")),
            ("/spec/ports/0/protocol", json!("TCP")),
            ("/spec/ports/0/targetPort", json!(80)),
            ("/spec/internalTrafficPolicy", json!("Cluster")),
            // The registry defaults them from the cluster's families.
            ("/spec/ipFamilies", Value::Null),
            ("/spec/ipFamilyPolicy", Value::Null),
            ("/status/loadBalancer", json!({})),
            // Only for externally reachable Services.
            ("/spec/externalTrafficPolicy", Value::Null),
            // The registry allocates it.
            ("/spec/clusterIP", Value::Null),
        ]),
    );
    let node_port = with(service(), "/spec/type", json!("NodePort"));
    check(
        node_port,
        ok(&[
            ("/spec/externalTrafficPolicy", json!("Cluster")),
            ("/spec/allocateLoadBalancerNodePorts", Value::Null),
        ]),
    );
    let lb = with(service(), "/spec/type", json!("LoadBalancer"));
    check(
        lb,
        ok(&[
            ("/spec/externalTrafficPolicy", json!("Cluster")),
            ("/spec/allocateLoadBalancerNodePorts", json!(true)),
            ("/status/loadBalancer", json!({})),
        ]),
    );
    let sticky = with(service(), "/spec/sessionAffinity", json!("ClientIP"));
    check(
        sticky,
        ok(&[(
            "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
            json!(10800),
        )]),
    );
    // No affinity, no affinity settings: `SetDefaults_Service` drops them,
    // so a Service switched from ClientIP to None by an edit is valid.
    let switched_off = with(
        with(service(), "/spec/sessionAffinity", json!("None")),
        "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
        json!(60),
    );
    check(
        switched_off,
        ok(&[("/spec/sessionAffinityConfig", Value::Null)]),
    );
    check(
        with(
            service(),
            "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
            json!(60),
        ),
        ok(&[
            ("/spec/sessionAffinity", json!("None")),
            ("/spec/sessionAffinityConfig", Value::Null),
        ]),
    );
    // ClientIP keeps a timeout that is given.
    check(
        with(
            with(service(), "/spec/sessionAffinity", json!("ClientIP")),
            "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
            json!(60),
        ),
        ok(&[(
            "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
            json!(60),
        )]),
    );
    // A load balancer's address is a VIP unless it says otherwise.
    let lb_status = with(
        with(service(), "/spec/type", json!("LoadBalancer")),
        "/status/loadBalancer/ingress",
        json!([{"ip": "127.0.100.1"}, {"ip": "127.0.100.2", "ipMode": "Proxy"}, {"hostname": "lb.example"}]),
    );
    check(
        lb_status,
        ok(&[
            ("/status/loadBalancer/ingress/0/ipMode", json!("VIP")),
            ("/status/loadBalancer/ingress/1/ipMode", json!("Proxy")),
            ("/status/loadBalancer/ingress/2/ipMode", Value::Null),
        ]),
    );
    // clusterIP and clusterIPs are kept in step, either way.
    check(
        with(service(), "/spec/clusterIP", json!("10.96.0.50")),
        ok(&[("/spec/clusterIPs", json!(["10.96.0.50"]))]),
    );
    check(
        with(service(), "/spec/clusterIPs", json!(["10.96.0.50"])),
        ok(&[("/spec/clusterIP", json!("10.96.0.50"))]),
    );
    // A named targetPort stays a name: it is resolved per pod.
    check(
        with(service(), "/spec/ports/0/targetPort", json!("http")),
        ok(&[("/spec/ports/0/targetPort", json!("http"))]),
    );
    let udp = with(service(), "/spec/ports/0/protocol", json!("UDP"));
    check(udp, ok(&[("/spec/ports/0/protocol", json!("UDP"))]));
}

#[test]
fn headless_and_external_name_services_get_their_own_defaults() {
    // Headless: no ports needed, no ClusterIP to allocate.
    let headless = without(
        with(service(), "/spec/clusterIP", json!("None")),
        "/spec/ports",
    );
    check(
        headless.clone(),
        ok(&[("/spec/clusterIPs", json!(["None"]))]),
    );
    let external = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com."},
    });
    check(
        external,
        ok(&[
            ("/spec/ipFamilies", Value::Null),
            ("/spec/ipFamilyPolicy", Value::Null),
            ("/spec/internalTrafficPolicy", Value::Null),
            ("/spec/clusterIPs", Value::Null),
            ("/spec/sessionAffinity", json!("None")),
        ]),
    );
}

#[test]
fn service_rules() {
    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (
            with(service(), "/metadata/name", json!("1web")),
            &[(
                "metadata.name",
                "Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character",
            )],
        ),
        (
            with(service(), &format!("{S0}/port"), json!(0)),
            &[(
                "spec.ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            without(service(), "/spec/ports"),
            &[("spec.ports", "Required value")],
        ),
        (
            with(service(), "/spec/type", json!("Internal")),
            &[(
                "spec.type",
                "Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            )],
        ),
        (
            with(service(), &format!("{S0}/protocol"), json!("ICMP")),
            &[(
                "spec.ports[0].protocol",
                "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            )],
        ),
        (
            with(service(), "/spec/ports/1", json!({"port": 443})),
            &[
                ("spec.ports[0].name", "Required value"),
                ("spec.ports[1].name", "Required value"),
            ],
        ),
        (
            with(
                with(service(), &format!("{S0}/name"), json!("http")),
                "/spec/ports/1",
                json!({"name": "http", "port": 443}),
            ),
            &[("spec.ports[1].name", "Duplicate value: \"http\"")],
        ),
        (
            with(
                with(service(), &format!("{S0}/name"), json!("a")),
                "/spec/ports/1",
                json!({"name": "b", "port": 80, "targetPort": 8080}),
            ),
            &[(
                "spec.ports[1]",
                "Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}",
            )],
        ),
        (
            with(
                service(),
                &format!("{S0}/targetPort"),
                json!("a-too-long-port-name"),
            ),
            &[(
                "spec.ports[0].targetPort",
                "Invalid value: \"a-too-long-port-name\": must be no more than 15 characters",
            )],
        ),
        (
            with(service(), &format!("{S0}/targetPort"), json!(70000)),
            &[(
                "spec.ports[0].targetPort",
                "Invalid value: 70000: must be between 1 and 65535",
            )],
        ),
        (
            with(service(), &format!("{S0}/appProtocol"), json!("-http")),
            &[(
                "spec.ports[0].appProtocol",
                "Invalid value: \"-http\": name part must consist",
            )],
        ),
        (
            with(service(), &format!("{S0}/nodePort"), json!(30080)),
            &[(
                "spec.ports[0].nodePort",
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            )],
        ),
        (
            with(
                with(service(), "/spec/type", json!("NodePort")),
                "/spec/clusterIP",
                json!("None"),
            ),
            &[(
                "spec.clusterIPs[0]",
                "Invalid value: \"None\": may not be set to 'None' for NodePort services",
            )],
        ),
        (
            with(service(), "/spec/clusterIP", json!("10.96.0.300")),
            &[(
                "spec.clusterIPs[0]",
                "Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )],
        ),
        (
            with(
                with(service(), "/spec/clusterIP", json!("10.96.0.5")),
                "/spec/clusterIPs",
                json!(["10.96.0.6"]),
            ),
            &[(
                "spec.clusterIPs",
                "Invalid value: [\"10.96.0.6\"]: first value must match `clusterIP`",
            )],
        ),
        (
            with(service(), "/spec/selector", json!({"app": "-web"})),
            &[(
                "spec.selector",
                "Invalid value: \"-web\": a valid label must be",
            )],
        ),
        (
            with(service(), "/spec/sessionAffinity", json!("Sticky")),
            &[(
                "spec.sessionAffinity",
                "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            )],
        ),
        (
            with(
                with(service(), "/spec/sessionAffinity", json!("ClientIP")),
                "/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
                json!(86401),
            ),
            &[(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                "Invalid value: 86401: must be greater than 0 and less than 86400",
            )],
        ),
        (
            with(service(), "/spec/externalTrafficPolicy", json!("Local")),
            &[(
                "spec.externalTrafficPolicy",
                "Invalid value: \"Local\": may only be set for externally-accessible services",
            )],
        ),
        (
            with(
                with(service(), "/spec/type", json!("NodePort")),
                "/spec/externalTrafficPolicy",
                json!("Nearby"),
            ),
            &[(
                "spec.externalTrafficPolicy",
                "Unsupported value: \"Nearby\": supported values: \"Cluster\", \"Local\"",
            )],
        ),
        (
            with(
                with(service(), "/spec/type", json!("NodePort")),
                "/spec/healthCheckNodePort",
                json!(30500),
            ),
            &[(
                "spec.healthCheckNodePort",
                "Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )],
        ),
        (
            with(service(), "/spec/internalTrafficPolicy", json!("Node")),
            &[(
                "spec.internalTrafficPolicy",
                "Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\"",
            )],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(causes));
    }

    // The same port number on TCP and UDP is two ports, and may share a
    // NodePort.
    let dns = with(
        with(service(), "/spec/type", json!("NodePort")),
        "/spec/ports",
        json!([
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
        ]),
    );
    check(dns.clone(), ok(&[]));
    let clash = with(dns, "/spec/ports/1/protocol", json!("UDP"));
    check(
        clash,
        Expect::Invalid(&[
            (
                "spec.ports[1]",
                "Duplicate value: {\"port\":53,\"protocol\":\"UDP\"}",
            ),
            ("spec.ports[1].nodePort", "Duplicate value: 30053"),
        ]),
    );
    // A LoadBalancer that keeps traffic local may name its health check port.
    let local = with(
        with(service(), "/spec/type", json!("LoadBalancer")),
        "/spec/externalTrafficPolicy",
        json!("Local"),
    );
    check(
        with(local, "/spec/healthCheckNodePort", json!(30500)),
        ok(&[("/spec/healthCheckNodePort", json!(30500))]),
    );
}

#[test]
fn external_name_rules() {
    let external = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    });
    check(
        without(external.clone(), "/spec/externalName"),
        Expect::Invalid(&[("spec.externalName", "Required value")]),
    );
    check(
        with(external.clone(), "/spec/externalName", json!("DB_host")),
        Expect::Invalid(&[(
            "spec.externalName",
            "Invalid value: \"DB_host\": a lowercase RFC 1123 subdomain",
        )]),
    );
    check(
        with(external.clone(), "/spec/clusterIP", json!("10.96.0.5")),
        Expect::Invalid(&[(
            "spec.clusterIPs",
            "Forbidden: may not be set for ExternalName services",
        )]),
    );
    check(
        with(
            external,
            "/spec/ports",
            json!([{"port": 80, "nodePort": 30080}]),
        ),
        Expect::Invalid(&[(
            "spec.ports[0].nodePort",
            "Forbidden: may not be used when `type` is 'ExternalName'",
        )]),
    );
}

#[test]
fn service_fields_podnet_does_not_emulate_are_warned() {
    let lb = with(service(), "/spec/type", json!("LoadBalancer"));
    let lb = with(lb, "/spec/loadBalancerIP", json!("1.2.3.4"));
    let lb = with(lb, "/spec/loadBalancerSourceRanges", json!(["10.0.0.0/8"]));
    let lb = with(lb, "/spec/trafficDistribution", json!("PreferClose"));
    let lb = with(lb, "/spec/publishNotReadyAddresses", json!(true));
    check(
        lb,
        Expect::Valid {
            at: &[("/spec/loadBalancerIP", json!("1.2.3.4"))],
            warnings: &[
                "spec.loadBalancerSourceRanges: not emulated by podnet, ignored",
                "spec.trafficDistribution: not emulated by podnet, ignored",
            ],
        },
    );
}

#[test]
fn service_updates_keep_the_cluster_ip() {
    let stored = |object: Value| validate(&object).unwrap().object;
    let update = |old: &Value, new: Value| validate_update(old, &validate(&new).unwrap());
    let old = stored(with(service(), "/spec/clusterIP", json!("10.96.0.5")));

    assert!(update(&old, with(service(), "/spec/clusterIP", json!("10.96.0.5"))).is_ok());
    let err = update(&old, with(service(), "/spec/clusterIP", json!("10.96.0.6"))).unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "spec.clusterIP: Invalid value: \"10.96.0.6\": field is immutable"
    );
    let err = update(&old, with(service(), "/spec/clusterIP", json!("None"))).unwrap_err();
    assert_eq!(err.causes[0].path, "spec.clusterIP");
    // To and from ExternalName, the address is released or allocated.
    let external = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "web.example.com"},
    });
    assert!(update(&old, external.clone()).is_ok());
    assert!(
        update(
            &stored(external),
            with(service(), "/spec/clusterIP", json!("10.96.0.7"))
        )
        .is_ok()
    );
}

#[test]
fn endpoint_slice_rules() {
    check(
        slice(),
        ok(&[
            ("/ports/0/name", json!("")),
            ("/ports/0/protocol", json!("TCP")),
            ("/metadata/namespace", json!("default")),
        ]),
    );
    check(
        with(slice(), "/endpoints/0/addresses/0", json!("fd00::5")),
        Expect::Invalid(&[(
            "endpoints[0].addresses[0]",
            "Invalid value: \"fd00::5\": must be a valid IPv4 address",
        )]),
    );
    check(
        with(slice(), "/endpoints/0/addresses/0", json!("127.0.0.1")),
        Expect::Invalid(&[(
            "endpoints[0].addresses[0]",
            "Invalid value: \"127.0.0.1\": may not be in the loopback range",
        )]),
    );
    check(
        with(slice(), "/endpoints/0/addresses", json!([])),
        Expect::Invalid(&[(
            "endpoints[0].addresses",
            "Required value: must contain at least 1 address",
        )]),
    );
    let many: Vec<String> = (0..101).map(|i| format!("10.244.0.{}", i + 1)).collect();
    check(
        with(slice(), "/endpoints/0/addresses", json!(many)),
        Expect::Invalid(&[(
            "endpoints[0].addresses",
            "Too many: 101: must have at most 100 items",
        )]),
    );
    check(
        with(slice(), "/addressType", json!("IP")),
        Expect::Invalid(&[(
            "addressType",
            "Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
        )]),
    );
    check(
        without(slice(), "/addressType"),
        Expect::Invalid(&[("addressType", "Required value")]),
    );
    check(
        with(slice(), "/endpoints/0/hostname", json!("web.0")),
        Expect::Invalid(&[(
            "endpoints[0].hostname",
            "Invalid value: \"web.0\": must not contain dots",
        )]),
    );
    check(
        with(
            slice(),
            "/ports/1",
            json!({"port": 9090, "protocol": "ICMP"}),
        ),
        Expect::Invalid(&[
            ("ports[1].name", "Duplicate value: \"\""),
            ("ports[1].protocol", "Unsupported value: \"ICMP\""),
        ]),
    );
    check(
        with(slice(), "/ports/0/port", json!(0)),
        Expect::Invalid(&[(
            "ports[0].port",
            "Invalid value: 0: must be between 1 and 65535",
        )]),
    );

    // Valid Kubernetes that podnet does not route.
    let v6 = with(
        with(slice(), "/addressType", json!("IPv6")),
        "/endpoints/0/addresses/0",
        json!("fd00::5"),
    );
    check(
        v6,
        Expect::Valid {
            at: &[],
            warnings: &[],
        },
    );
    let unlabelled = without(slice(), "/metadata/labels");
    let unlabelled = with(
        unlabelled,
        "/endpoints/0/hints",
        json!({"forZones": [{"name": "a"}]}),
    );
    check(
        unlabelled,
        Expect::Valid {
            at: &[],
            warnings: &[
                "endpoints[0].hints: not emulated by podnet, ignored",
                "metadata.labels[kubernetes.io/service-name]: not set, so no Service uses this EndpointSlice",
            ],
        },
    );
    let fqdn = with(
        with(slice(), "/addressType", json!("FQDN")),
        "/endpoints/0/addresses/0",
        json!("localhost"),
    );
    check(
        fqdn,
        Expect::Invalid(&[(
            "endpoints[0].addresses[0]",
            "Invalid value: \"localhost\": should be a domain with at least two segments",
        )]),
    );

    let old = validate(&slice()).unwrap().object;
    let v6 = validate(&with(slice(), "/addressType", json!("IPv6"))).unwrap_err();
    assert_eq!(v6.causes[0].path, "endpoints[0].addresses[0]");
    let fqdn = with(
        with(slice(), "/addressType", json!("FQDN")),
        "/endpoints/0/addresses/0",
        json!("web.example.com"),
    );
    let err = validate_update(&old, &validate(&fqdn).unwrap()).unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "addressType: Invalid value: \"FQDN\": field is immutable"
    );
}

#[test]
fn endpoints_rules() {
    check(
        endpoints(),
        ok(&[("/subsets/0/ports/0/protocol", json!("TCP"))]),
    );
    check(
        with(endpoints(), "/subsets/0/addresses", json!([])),
        Expect::Invalid(&[(
            "subsets[0]",
            "Required value: must specify `addresses` or `notReadyAddresses`",
        )]),
    );
    check(
        with(
            endpoints(),
            "/subsets/0/notReadyAddresses",
            json!([{"ip": "0.0.0.0"}]),
        ),
        Expect::Invalid(&[(
            "subsets[0].notReadyAddresses[0].ip",
            "Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
        )]),
    );
    check(
        with(endpoints(), "/subsets/0/addresses/0/ip", json!("web")),
        Expect::Invalid(&[(
            "subsets[0].addresses[0].ip",
            "Invalid value: \"web\": must be a valid IP address",
        )]),
    );
    check(
        with(endpoints(), "/subsets/0/ports/1", json!({"port": 9090})),
        Expect::Invalid(&[
            ("subsets[0].ports[0].name", "Required value"),
            ("subsets[0].ports[1].name", "Required value"),
        ]),
    );
}
