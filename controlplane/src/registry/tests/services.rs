//! Service address allocation and the objects a cluster starts with.

use std::collections::BTreeSet;

use podnet_proto::model::strs_at;
use serde_json::{Value, json};

use super::registry;
use crate::registry::*;
use crate::store::{MemBackend, Storage};

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}})
}

/// As `kubectl` sends it on update: with its namespace.
fn namespaced(mut v: Value) -> Value {
    v["metadata"]["namespace"] = json!("default");
    v
}

fn node_port(name: &str) -> Value {
    let mut s = service(name);
    s["spec"]["type"] = json!("NodePort");
    s
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, "default", name)
}

fn ip_of(v: &Value) -> &str {
    str_at(v, "/spec/clusterIP")
}

fn node_ports_of(v: &Value) -> Vec<i64> {
    v["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap_or(0))
        .collect()
}

/// The one cause of an invalid Service, as the API prints it.
#[track_caller]
fn invalid(result: Result<impl std::fmt::Debug, ApiError>) -> String {
    match result {
        Err(ApiError::Invalid(e)) => {
            assert_eq!(e.causes.len(), 1, "{e}");
            e.causes[0].to_string()
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn default_ranges_are_the_address_plan() {
    use podnet_proto::model::network::{
        API_SERVICE_IP, ClusterFamilies, DEFAULT_SERVICE_CIDR, DEFAULT_SERVICE_CIDR_V6, KUBE_DNS_IP,
    };
    let ranges = ServiceRanges::default();
    assert_eq!(ranges, ServiceRanges::for_families(ClusterFamilies::Ipv4));
    assert_eq!(ranges.cluster_ips, [DEFAULT_SERVICE_CIDR.parse().unwrap()]);
    assert_eq!(ranges.api_service_ip(), API_SERVICE_IP);
    assert_eq!(ranges.dns_service_ip(), KUBE_DNS_IP);
    assert_eq!(ranges.node_ports, 30000..=32767);
    // kind's: IPv6 from fd00:10:96::/112, its DNS at the tenth address.
    let v6 = ServiceRanges::for_families(ClusterFamilies::Ipv6);
    assert_eq!(v6.cluster_ips, [DEFAULT_SERVICE_CIDR_V6.parse().unwrap()]);
    assert_eq!(v6.api_service_ip().to_string(), "fd00:10:96::1");
    assert_eq!(v6.dns_service_ip().to_string(), "fd00:10:96::a");
    // Dual-stack: IPv4 primary, so the well-known addresses stay.
    let dual = ServiceRanges::for_families(ClusterFamilies::Dual);
    assert_eq!(dual.cluster_ips.len(), 2);
    assert_eq!(dual.dns_service_ip(), KUBE_DNS_IP);
}

#[test]
fn cluster_ips_are_the_lowest_free_skipping_reserved_ones() {
    let r = registry();
    let ips: Vec<String> = (0..9)
        .map(|i| ip_of(&r.create(service(&format!("s{i}"))).unwrap()).to_string())
        .collect();
    // .1 is the kubernetes Service's, .10 kube-dns's.
    assert_eq!(
        ips,
        [
            "10.96.0.2",
            "10.96.0.3",
            "10.96.0.4",
            "10.96.0.5",
            "10.96.0.6",
            "10.96.0.7",
            "10.96.0.8",
            "10.96.0.9",
            "10.96.0.11"
        ]
    );
    let stored = r.must_get(&key("s0")).unwrap();
    assert_eq!(stored["spec"]["clusterIPs"], json!(["10.96.0.2"]));

    // Deleting a Service frees its address for the next one.
    r.delete(&key("s3"), None, "").unwrap();
    assert_eq!(ip_of(&r.create(service("again")).unwrap()), "10.96.0.5");

    // Headless and ExternalName Services take none.
    let mut headless = service("headless");
    headless["spec"]["clusterIP"] = json!("None");
    assert_eq!(ip_of(&r.create(headless).unwrap()), "None");
    let external = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(ip_of(&r.create(external).unwrap()), "");
    assert_eq!(ip_of(&r.create(service("next")).unwrap()), "10.96.0.12");
}

#[test]
fn explicit_cluster_ips_are_honoured_or_rejected_writing_nothing() {
    let r = registry();
    let mut a = service("a");
    a["spec"]["clusterIP"] = json!("10.96.0.50");
    assert_eq!(ip_of(&r.create(a).unwrap()), "10.96.0.50");

    let before = r.revision().unwrap();
    let cases = [
        (
            "10.96.0.50",
            "spec.clusterIP: Invalid value: \"10.96.0.50\": provided IP is already allocated",
        ),
        (
            "1.2.3.4",
            "spec.clusterIP: Invalid value: \"1.2.3.4\": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "10.96.0.0",
            "spec.clusterIP: Invalid value: \"10.96.0.0\": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "10.111.255.255",
            "spec.clusterIP: Invalid value: \"10.111.255.255\": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
        // Set aside for kube-dns.
        (
            "10.96.0.10",
            "spec.clusterIP: Invalid value: \"10.96.0.10\": provided IP is already allocated",
        ),
    ];
    for (ip, want) in cases {
        let mut b = service("b");
        b["spec"]["clusterIP"] = json!(ip);
        assert_eq!(invalid(r.create(b)), want);
    }
    assert!(r.get(&key("b")).unwrap().is_none());
    assert_eq!(r.revision().unwrap(), before, "nothing written");
    // The last address of the range is usable.
    let mut c = service("c");
    c["spec"]["clusterIP"] = json!("10.111.255.254");
    assert_eq!(ip_of(&r.create(c).unwrap()), "10.111.255.254");
}

#[test]
fn node_ports_are_allocated_honoured_and_checked() {
    let r = registry();
    let a = r.create(node_port("a")).unwrap();
    assert_eq!(node_ports_of(&a), [30000]);
    assert_eq!(a["spec"]["externalTrafficPolicy"], "Cluster");

    let mut b = node_port("b");
    b["spec"]["ports"][0]["nodePort"] = json!(30080);
    assert_eq!(node_ports_of(&r.create(b).unwrap()), [30080]);

    let before = r.revision().unwrap();
    for (port, want) in [
        (
            30080,
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            30000,
            "spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated",
        ),
        (
            29999,
            "spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            32768,
            "spec.ports[0].nodePort: Invalid value: 32768: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
    ] {
        let mut c = node_port("c");
        c["spec"]["ports"][0]["nodePort"] = json!(port);
        assert_eq!(invalid(r.create(c)), want);
    }
    assert_eq!(r.revision().unwrap(), before, "nothing written");

    // The same port on TCP and UDP shares one NodePort; another port number
    // gets its own.
    let mut dns = node_port("dns");
    dns["spec"]["ports"] = json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153},
    ]);
    assert_eq!(
        node_ports_of(&r.create(dns).unwrap()),
        [30001, 30001, 30002]
    );
    // An explicit one on either protocol is shared with the other.
    let mut dns2 = node_port("dns2");
    dns2["spec"]["ports"] = json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
    ]);
    assert_eq!(node_ports_of(&r.create(dns2).unwrap()), [30053, 30053]);

    // A LoadBalancer keeping traffic local gets a health check port too;
    // one that opts out of NodePorts gets none.
    let mut lb = service("lb");
    lb["spec"]["type"] = json!("LoadBalancer");
    lb["spec"]["externalTrafficPolicy"] = json!("Local");
    let lb = r.create(lb).unwrap();
    assert_eq!(node_ports_of(&lb), [30003]);
    assert_eq!(lb["spec"]["healthCheckNodePort"], 30004);
    let mut bare = service("bare");
    bare["spec"]["type"] = json!("LoadBalancer");
    bare["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
    assert_eq!(node_ports_of(&r.create(bare).unwrap()), [0]);
}

#[test]
fn updates_keep_allocations_and_release_them_with_the_type() {
    let r = registry();
    let created = r.apply(vec![node_port("web")], false).unwrap();
    let ip = ip_of(&created[0].object).to_string();
    let ports = node_ports_of(&created[0].object);
    assert_eq!(ports, [30000]);

    // The manifest names neither: applying it again changes nothing.
    let again = r.apply(vec![node_port("web")], false).unwrap();
    assert_eq!(again[0].action, ApplyAction::Unchanged);
    // A port renumbered keeps its NodePort by name; a new port gets one.
    let mut more = namespaced(node_port("web"));
    more["spec"]["ports"] = json!([
        {"name": "http", "port": 8080},
        {"name": "https", "port": 443},
    ]);
    let updated = r.update(more).unwrap();
    assert_eq!(ip_of(&updated), ip);
    assert_eq!(node_ports_of(&updated), [30000, 30001]);

    let mut moved = namespaced(node_port("web"));
    moved["spec"]["clusterIP"] = json!("10.96.0.99");
    assert_eq!(
        invalid(r.update(moved)),
        "spec.clusterIP: Invalid value: \"10.96.0.99\": field is immutable"
    );

    // `kubectl edit` to ClusterIP: the NodePorts it still carries go.
    let mut edited = r.must_get(&key("web")).unwrap();
    edited["spec"]["type"] = json!("ClusterIP");
    let edited = r.update(edited).unwrap();
    assert_eq!(node_ports_of(&edited), [0, 0]);
    assert_eq!(edited["spec"]["externalTrafficPolicy"], Value::Null);
    assert_eq!(ip_of(&edited), ip);
    // ...and are free again.
    assert_eq!(
        node_ports_of(&r.create(node_port("other")).unwrap()),
        [30000]
    );

    // To ExternalName releases the address; back allocates a new one.
    let mut external = r.must_get(&key("web")).unwrap();
    external["spec"]["type"] = json!("ExternalName");
    external["spec"]["externalName"] = json!("web.example.com");
    let external = r.update(external).unwrap();
    assert_eq!(ip_of(&external), "");
    assert_eq!(external["spec"]["ipFamilies"], Value::Null);
    assert_eq!(ip_of(&r.create(service("taker")).unwrap()), ip);
    let back = r.apply(vec![service("web")], false).unwrap();
    assert_eq!(back[0].action, ApplyAction::Configured);
    assert_ne!(ip_of(&back[0].object), ip);
    assert!(!ip_of(&back[0].object).is_empty());
}

#[test]
fn apply_allocates_the_whole_batch_or_nothing() {
    let r = registry();
    let mut taken = service("taken");
    taken["spec"]["clusterIP"] = json!("10.96.0.50");
    r.create(taken).unwrap();

    let before = r.revision().unwrap();
    let mut clash = node_port("b");
    clash["spec"]["clusterIP"] = json!("10.96.0.50");
    let err = r.apply(vec![node_port("a"), clash], false).unwrap_err();
    assert_eq!(
        invalid(Err::<(), _>(err)),
        "spec.clusterIP: Invalid value: \"10.96.0.50\": provided IP is already allocated"
    );
    assert!(r.get(&key("a")).unwrap().is_none());
    assert_eq!(r.revision().unwrap(), before);

    // Within one batch, Services are allocated in order and never share an
    // address.
    let mut explicit = service("c");
    explicit["spec"]["clusterIP"] = json!("10.96.0.2");
    let err = r
        .apply(vec![node_port("a"), explicit.clone()], false)
        .unwrap_err();
    assert!(err.to_string().contains("already allocated"), "{err}");
    let applied = r
        .apply(vec![explicit, node_port("a"), node_port("b")], false)
        .unwrap();
    let ips: BTreeSet<&str> = applied.iter().map(|a| ip_of(&a.object)).collect();
    assert_eq!(ips.len(), 3);
    assert_eq!(node_ports_of(&applied[1].object), [30000]);
    assert_eq!(node_ports_of(&applied[2].object), [30001]);

    // A dry run allocates (to show the result) and writes nothing.
    let before = r.revision().unwrap();
    let dry = r.apply(vec![service("dry")], true).unwrap();
    assert!(!ip_of(&dry[0].object).is_empty());
    assert!(r.get(&key("dry")).unwrap().is_none());
    assert_eq!(r.revision().unwrap(), before);
}

#[test]
fn concurrent_creates_never_share_an_address() {
    let r = registry();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let s = r.create(node_port(&format!("s{t}-{i}"))).unwrap();
                        (ip_of(&s).to_string(), node_ports_of(&s)[0])
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<(String, i64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let ips: BTreeSet<&String> = all.iter().map(|(ip, _)| ip).collect();
    let ports: BTreeSet<i64> = all.iter().map(|(_, p)| *p).collect();
    assert_eq!(ips.len(), 40);
    assert_eq!(ports.len(), 40);
}

#[test]
fn a_full_range_is_an_error() {
    let ranges = ServiceRanges {
        cluster_ips: vec!["10.0.0.0/28".parse().unwrap()],
        node_ports: 30000..=30001,
    };
    let r =
        Registry::with_service_ranges(Storage::new(Box::new(MemBackend::new())).unwrap(), ranges);
    r.bootstrap(&crate::registry::Addons::dns(1)).unwrap();
    let dns = r
        .must_get(&ObjectKey::new(Kind::Service, "kube-system", "kube-dns"))
        .unwrap();
    assert_eq!(ip_of(&dns), "10.0.0.10");
    // .1 and .10 are taken: .2 to .9 and .11 to .14 are left.
    for i in 0..12 {
        r.create(service(&format!("s{i}"))).unwrap();
    }
    let err = r.create(service("one-too-many")).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to allocate a serviceIP: range is full"),
        "{err}"
    );
    r.delete(&key("s0"), None, "").unwrap();
    let mut three = node_port("np");
    three["spec"]["ports"] = json!([
        {"name": "a", "port": 1},
        {"name": "b", "port": 2},
        {"name": "c", "port": 3},
    ]);
    let err = r.create(three).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to allocate a nodePort: range is full"),
        "{err}"
    );
    assert!(r.get(&key("np")).unwrap().is_none());
}

#[test]
fn bootstrap_creates_the_api_and_dns_services_once() {
    let r = registry();
    let api = r
        .must_get(&ObjectKey::new(Kind::Service, "default", "kubernetes"))
        .unwrap();
    assert_eq!(ip_of(&api), "10.96.0.1");
    assert_eq!(
        api["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert_eq!(api["spec"]["selector"], Value::Null);

    let dns = r
        .must_get(&ObjectKey::new(Kind::Service, "kube-system", "kube-dns"))
        .unwrap();
    assert_eq!(ip_of(&dns), "10.96.0.10");
    assert_eq!(dns["spec"]["selector"], json!({"k8s-app": "kube-dns"}));
    assert_eq!(
        dns["spec"]["ports"],
        json!([
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ])
    );

    let coredns_key = ObjectKey::new(Kind::Deployment, "kube-system", "coredns");
    let coredns = r.must_get(&coredns_key).unwrap();
    assert_eq!(coredns["spec"]["replicas"], 2);
    let container = &coredns["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "podnet/dns");
    assert_eq!(
        container["readinessProbe"]["tcpSocket"]["port"], 53,
        "{container:#}"
    );
    assert_eq!(container["readinessProbe"]["periodSeconds"], 1);
    assert_eq!(
        container["resources"]["requests"],
        json!({"cpu": "100m", "memory": "70Mi"})
    );
    assert_eq!(
        coredns["spec"]["template"]["metadata"]["labels"],
        json!({"k8s-app": "kube-dns"})
    );

    // A restart leaves what is there alone, even changed.
    let mut scaled = coredns;
    scaled["spec"]["replicas"] = json!(5);
    r.update(scaled).unwrap();
    let before = r.revision().unwrap();
    r.bootstrap(&crate::registry::Addons::dns(2)).unwrap();
    assert_eq!(r.revision().unwrap(), before);
    assert_eq!(r.must_get(&coredns_key).unwrap()["spec"]["replicas"], 5);

    // Nobody else gets the reserved addresses, even asking for them.
    let mut squatter = service("squatter");
    squatter["spec"]["clusterIP"] = json!("10.96.0.1");
    assert!(invalid(r.create(squatter)).contains("already allocated"));
}

#[test]
fn deleting_a_service_deletes_its_endpoint_slices() {
    let r = registry();
    let svc = r.create(service("web")).unwrap();
    let owned = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"},
                     "ownerReferences": [crate::controllers::owner_reference(&svc)]},
        "addressType": "IPv4", "endpoints": []});
    r.create(owned).unwrap();
    r.delete(&key("web"), None, "").unwrap();
    assert!(
        r.list_all(Kind::EndpointSlice, "default")
            .unwrap()
            .is_empty()
    );
}

/// A bootstrapped registry allocating from the default ranges of
/// `families`.
fn cluster(families: &str) -> Registry {
    let families = families.parse().unwrap();
    let r = Registry::with_service_ranges(
        Storage::new(Box::new(MemBackend::new())).unwrap(),
        ServiceRanges::for_families(families),
    );
    r.bootstrap(&crate::registry::Addons::dns(1)).unwrap();
    r
}

/// What a Service created with `fields` set is stored with: its policy,
/// families and addresses, or the one cause of its refusal.
#[track_caller]
fn families_check(cluster_families: &str, fields: &[(&str, Value)], expected: &str) {
    let r = cluster(cluster_families);
    let mut svc = service("web");
    for (pointer, value) in fields {
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = svc.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if value.is_null() {
            parent.remove(field);
        } else {
            parent.insert(field.to_string(), value.clone());
        }
    }
    let got = match r.create(svc) {
        Ok(stored) => format!(
            "{} {} {}",
            str_at(&stored, "/spec/ipFamilyPolicy"),
            strs_at(&stored, "/spec/ipFamilies").join(","),
            strs_at(&stored, "/spec/clusterIPs").join(","),
        ),
        Err(e) => invalid(Err::<(), _>(e)),
    };
    assert_eq!(got, expected, "{cluster_families} {fields:?}");
}

#[test]
fn ip_families_are_defaulted_and_allocated_as_init_ip_family_fields_does() {
    let none = || Value::Null;
    let policy = |p: &str| ("/spec/ipFamilyPolicy", json!(p));
    let families = |f: &[&str]| ("/spec/ipFamilies", json!(f));
    let ip = |ip: &str| ("/spec/clusterIP", json!(ip));
    let ips = |ips: &[&str]| ("/spec/clusterIPs", json!(ips));
    let headless = ("/spec/clusterIP", json!("None"));
    let selectorless = ("/spec/selector", none());
    for (cluster, fields, expected) in [
        // Single-stack IPv4: SingleStack of the one family.
        ("ipv4", vec![], "SingleStack IPv4 10.96.0.2"),
        (
            "ipv4",
            vec![policy("PreferDualStack")],
            "PreferDualStack IPv4 10.96.0.2",
        ),
        ("ipv4", vec![headless.clone()], "SingleStack IPv4 None"),
        // Headless without selector allocates nothing: both families, even
        // on a single-stack cluster.
        (
            "ipv4",
            vec![headless.clone(), selectorless.clone()],
            "RequireDualStack IPv4,IPv6 None",
        ),
        (
            "ipv4",
            vec![ip("fd00::10")],
            "spec.clusterIPs[0]: Invalid value: [\"fd00::10\"]: IPv6 is not configured on this cluster",
        ),
        (
            "ipv4",
            vec![families(&["IPv6"])],
            "spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster",
        ),
        (
            "ipv4",
            vec![policy("RequireDualStack")],
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        ),
        // Single-stack IPv6: kind's range, the tenth address is kube-dns'.
        ("ipv6", vec![], "SingleStack IPv6 fd00:10:96::2"),
        (
            "ipv6",
            vec![families(&["IPv4"])],
            "spec.ipFamilies[0]: Invalid value: \"IPv4\": not configured on this cluster",
        ),
        (
            "ipv6",
            vec![ip("fd00:10:96::a")],
            "spec.clusterIP: Invalid value: \"fd00:10:96::a\": provided IP is already allocated",
        ),
        // Dual-stack: IPv4 primary unless the Service names its families.
        ("dual", vec![], "SingleStack IPv4 10.96.0.2"),
        (
            "dual",
            vec![policy("PreferDualStack")],
            "PreferDualStack IPv4,IPv6 10.96.0.2,fd00:10:96::1",
        ),
        (
            "dual",
            vec![policy("RequireDualStack"), families(&["IPv6"])],
            "RequireDualStack IPv6,IPv4 fd00:10:96::1,10.96.0.2",
        ),
        (
            "dual",
            vec![families(&["IPv6"])],
            "SingleStack IPv6 fd00:10:96::1",
        ),
        // The families of given addresses are inferred.
        (
            "dual",
            vec![
                policy("RequireDualStack"),
                ip("fd00:10:96::50"),
                ips(&["fd00:10:96::50", "10.96.0.50"]),
            ],
            "RequireDualStack IPv6,IPv4 fd00:10:96::50,10.96.0.50",
        ),
        (
            "dual",
            vec![ip("10.96.0.50"), ips(&["10.96.0.50", "fd00:10:96::50"])],
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
        ),
        (
            "dual",
            vec![families(&["IPv4", "IPv6"])],
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
        ),
        (
            "dual",
            vec![
                policy("PreferDualStack"),
                ip("10.96.0.50"),
                ips(&["10.96.0.50", "fd00::50"]),
            ],
            "spec.clusterIPs[1]: Invalid value: \"fd00::50\": provided IP is not in the valid range. The range of valid IPs is fd00:10:96::/112",
        ),
        (
            "dual",
            vec![headless.clone(), policy("PreferDualStack")],
            "PreferDualStack IPv4,IPv6 None",
        ),
    ] {
        families_check(cluster, &fields, expected);
    }
}

#[test]
fn dual_stack_upgrades_and_downgrades_follow_the_policy() {
    let r = cluster("dual");
    let created = r.create(service("web")).unwrap();
    assert_eq!(strs_at(&created, "/spec/clusterIPs"), ["10.96.0.2"]);

    // Asking for dual-stack adds the secondary address, keeping the first.
    let mut upgrade = namespaced(service("web"));
    upgrade["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
    let upgraded = r.update(upgrade).unwrap();
    assert_eq!(
        strs_at(&upgraded, "/spec/clusterIPs"),
        ["10.96.0.2", "fd00:10:96::1"]
    );
    assert_eq!(strs_at(&upgraded, "/spec/ipFamilies"), ["IPv4", "IPv6"]);
    // The same manifest again (no policy): the stored policy is kept.
    let again = r.apply(vec![service("web")], false).unwrap();
    assert_eq!(again[0].action, ApplyAction::Unchanged);

    // Dropping the secondary address needs SingleStack.
    let mut reduced = r.must_get(&key("web")).unwrap();
    reduced["spec"]["clusterIPs"] = json!(["10.96.0.2"]);
    assert_eq!(
        invalid(r.update(reduced.clone())),
        "spec.ipFamilyPolicy: Invalid value: \"PreferDualStack\": must be 'SingleStack' to release the secondary cluster IP"
    );
    // The primary family is fixed.
    let mut flipped = r.must_get(&key("web")).unwrap();
    flipped["spec"]["ipFamilies"] = json!(["IPv6", "IPv4"]);
    let err = r.update(flipped).unwrap_err().to_string();
    assert!(err.contains("expected an IPv6 value"), "{err}");

    // SingleStack with everything else as stored releases the secondary.
    let mut single = r.must_get(&key("web")).unwrap();
    single["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    let downgraded = r.update(single).unwrap();
    assert_eq!(strs_at(&downgraded, "/spec/clusterIPs"), ["10.96.0.2"]);
    assert_eq!(strs_at(&downgraded, "/spec/ipFamilies"), ["IPv4"]);
    // ...and the address is free again.
    let mut other = service("other");
    other["spec"]["ipFamilies"] = json!(["IPv6"]);
    assert_eq!(ip_of(&r.create(other).unwrap()), "fd00:10:96::1");
}

#[test]
fn a_dual_stack_cluster_boots_single_stack_well_known_services() {
    let r = cluster("dual");
    r.bootstrap(&crate::registry::Addons::dns(1)).unwrap();
    let dns = r
        .must_get(&ObjectKey::new(Kind::Service, "kube-system", "kube-dns"))
        .unwrap();
    assert_eq!(strs_at(&dns, "/spec/clusterIPs"), ["10.96.0.10"]);
    assert_eq!(str_at(&dns, "/spec/ipFamilyPolicy"), "SingleStack");
    let r = cluster("ipv6");
    r.bootstrap(&crate::registry::Addons::dns(1)).unwrap();
    let api = r
        .must_get(&ObjectKey::new(Kind::Service, "default", "kubernetes"))
        .unwrap();
    assert_eq!(strs_at(&api, "/spec/clusterIPs"), ["fd00:10:96::1"]);
    assert_eq!(strs_at(&api, "/spec/ipFamilies"), ["IPv6"]);
}
