//! The pure part of the endpoint controllers, table-driven through `check`:
//! each case is a Service and its pods, and the slices and Endpoints they
//! must give, summarised one line per object.

use serde_json::{Value, json};

use super::*;
use crate::validate::validate;
use podnet_proto::model::strs_at;

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"tier": "front"}},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.20",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
        },
    })
}

/// A pod of the Service on node-1, serving `http` on 8080.
fn pod(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "podnet/http-echo",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn not_ready(mut pod: Value) -> Value {
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    pod
}

fn terminating(mut pod: Value) -> Value {
    pod["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    pod
}

/// `v` with `value` at `pointer` (whose parent exists).
fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(last.to_string(), value);
    v
}

fn nodes() -> Vec<Value> {
    vec![json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}})]
}

fn ports_line(ports: &[Value], name: &str) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}",
                str_at(p, &format!("/{name}")),
                p["port"],
                str_at(p, "/protocol")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per slice, then one for the Endpoints:
/// `slice [http:8080/TCP] a(ready,serving) b(terminating)`,
/// `endpoints [http:8080/TCP] a | b` (not-ready after the bar).
fn summary(d: &Desired) -> Vec<String> {
    let mut lines = Vec::new();
    for slice in &d.slices {
        let mut line = format!("slice [{}]", ports_line(list_at(slice, "ports"), "name"));
        for e in list_at(slice, "endpoints") {
            let flags: Vec<&str> = ["ready", "serving", "terminating"]
                .into_iter()
                .filter(|c| e["conditions"][c] == json!(true))
                .collect();
            line.push_str(&format!(
                " {}({})",
                str_at(e, "/targetRef/name"),
                flags.join(",")
            ));
        }
        lines.push(line);
    }
    for subset in list_at(&d.endpoints, "subsets") {
        let names = |field: &str| {
            list_at(subset, field)
                .iter()
                .map(|a| str_at(a, "/targetRef/name").to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut line = format!(
            "endpoints [{}] {}",
            ports_line(list_at(subset, "ports"), "name"),
            names("addresses")
        );
        let not_ready = names("notReadyAddresses");
        if !not_ready.is_empty() {
            line.push_str(&format!(" | {not_ready}"));
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

#[track_caller]
fn check(service: Value, pods: Vec<Value>, expected: &[&str]) -> Desired {
    let d = desired(&service, &pods, &nodes(), &[]).expect("a Service with a selector");
    assert_eq!(summary(&d), expected);
    d
}

#[test]
fn endpoints_follow_pod_readiness() {
    let pods = vec![
        pod("a", "10.244.1.2"),
        not_ready(pod("b", "10.244.1.3")),
        terminating(pod("c", "10.244.1.4")),
        terminating(not_ready(pod("d", "10.244.1.5"))),
    ];
    check(
        service(),
        pods.clone(),
        &[
            "slice [http:8080/TCP] a(ready,serving) b() c(serving,terminating) d(terminating)",
            // Endpoints drop terminating pods.
            "endpoints [http:8080/TCP] a | b",
        ],
    );
    // publishNotReadyAddresses: every endpoint is ready and serving.
    let publish = set(service(), "/spec", {
        let mut spec = service()["spec"].clone();
        spec["publishNotReadyAddresses"] = json!(true);
        spec
    });
    check(
        publish,
        pods,
        &[
            "slice [http:8080/TCP] a(ready,serving) b(ready,serving) c(ready,serving,terminating) d(ready,serving,terminating)",
            "endpoints [http:8080/TCP] a b c d",
        ],
    );
}

#[test]
fn who_is_an_endpoint() {
    let mut other_ns = pod("x", "10.244.1.9");
    other_ns["metadata"]["namespace"] = json!("other");
    let other_app = set(
        pod("y", "10.244.1.8"),
        "/metadata/labels",
        json!({"app": "db"}),
    );
    let no_ip = set(pod("z", ""), "/status/podIP", Value::Null);
    let done = set(pod("w", "10.244.1.7"), "/status/phase", json!("Succeeded"));
    // A pod known by podIPs only still counts.
    let listed = set(
        set(pod("v", "10.244.1.6"), "/status/podIP", Value::Null),
        "/status/podIPs",
        json!([{"ip": "10.244.1.6"}]),
    );
    check(
        service(),
        vec![
            pod("a", "10.244.1.2"),
            other_ns,
            other_app,
            no_ip,
            done,
            listed,
        ],
        &[
            "slice [http:8080/TCP] a(ready,serving) v(ready,serving)",
            "endpoints [http:8080/TCP] a v",
        ],
    );
}

#[test]
fn a_selector_matching_nothing_leaves_a_placeholder() {
    let d = check(service(), vec![], &["slice []"]);
    assert_eq!(d.slices[0]["endpoints"], json!([]));
    assert_eq!(d.slices[0].get("ports"), None);
    assert_eq!(d.endpoints.get("subsets"), None);
    assert_eq!(d.endpoints["metadata"]["name"], "web");
}

#[test]
fn named_ports_resolve_per_pod() {
    let other = set(
        pod("b", "10.244.2.2"),
        "/spec/containers/0/ports/0/containerPort",
        json!(9090),
    );
    // A UDP port of that name does not serve a TCP Service port.
    let wrong_protocol = set(
        pod("c", "10.244.2.3"),
        "/spec/containers/0/ports/0/protocol",
        json!("UDP"),
    );
    check(
        service(),
        vec![pod("a", "10.244.1.2"), other, wrong_protocol],
        &[
            // Upstream keeps a pod that resolves no port, without ports.
            "slice [] c(ready,serving)",
            "slice [http:8080/TCP] a(ready,serving)",
            "slice [http:9090/TCP] b(ready,serving)",
            // Endpoints have no place for it.
            "endpoints [http:8080/TCP] a",
            "endpoints [http:9090/TCP] b",
        ],
    );

    // With two ports, a pod missing one is listed with the other.
    let mut two = service();
    two["spec"]["ports"] = json!([
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
        {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100},
    ]);
    let renamed = set(
        pod("b", "10.244.2.2"),
        "/spec/containers/0/ports/0/name",
        json!("web"),
    );
    check(
        two,
        vec![pod("a", "10.244.1.2"), renamed],
        &[
            "slice [http:8080/TCP,metrics:9100/TCP] a(ready,serving)",
            "slice [metrics:9100/TCP] b(ready,serving)",
            "endpoints [http:8080/TCP,metrics:9100/TCP] a",
            "endpoints [metrics:9100/TCP] b",
        ],
    );
}

#[test]
fn slices_hold_at_most_a_hundred_endpoints() {
    let pods: Vec<Value> = (0..101)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.244.{}.{}", i / 200 + 1, i % 200 + 2),
            )
        })
        .collect();
    let d = desired(&service(), &pods, &nodes(), &[]).unwrap();
    let mut sizes: Vec<usize> = d
        .slices
        .iter()
        .map(|s| list_at(s, "endpoints").len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 100]);
    assert_ne!(
        d.slices[0]["metadata"]["name"],
        d.slices[1]["metadata"]["name"]
    );
    // The Endpoints object has them all.
    assert_eq!(
        list_at(&list_at(&d.endpoints, "subsets")[0], "addresses").len(),
        101
    );
}

#[test]
fn endpoints_carry_node_zone_hostname_and_target() {
    let mut named = pod("a", "10.244.1.2");
    named["spec"]["hostname"] = json!("web-0");
    named["spec"]["subdomain"] = json!("web");
    let mut elsewhere = pod("b", "10.244.2.2");
    elsewhere["spec"]["hostname"] = json!("b");
    elsewhere["spec"]["subdomain"] = json!("other");
    elsewhere["spec"]["nodeName"] = json!("node-2");
    let d = desired(&service(), &[named, elsewhere], &nodes(), &[]).unwrap();
    let endpoints = list_at(&d.slices[0], "endpoints");
    assert_eq!(
        endpoints[0],
        json!({
            "addresses": ["10.244.1.2"],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
            "zone": "zone-a",
            "hostname": "web-0",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
        })
    );
    // No zone label on node-2, and another Service's subdomain.
    assert_eq!(endpoints[1].get("zone"), None);
    assert_eq!(endpoints[1].get("hostname"), None);

    let slice = &d.slices[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({
            "tier": "front",
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        })
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert!(
        str_at(slice, "/metadata/name").starts_with("web-"),
        "{slice:#}"
    );
    let address = &list_at(&d.endpoints, "subsets")[0]["addresses"][0];
    assert_eq!(address["hostname"], "web-0");
    assert_eq!(address["nodeName"], "node-1");
    assert_eq!(
        d.endpoints["metadata"]["labels"],
        json!({"tier": "front", "endpoints.kubernetes.io/managed-by": "endpoint-controller"})
    );

    // A headless Service is marked so on both.
    let headless = set(service(), "/spec/clusterIP", json!("None"));
    let d = desired(&headless, &[pod("a", "10.244.1.2")], &nodes(), &[]).unwrap();
    assert_eq!(
        d.slices[0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    assert_eq!(
        d.endpoints["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
}

#[test]
fn services_without_selector_or_with_external_name_are_left_alone() {
    let mut selectorless = service();
    selectorless["spec"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    assert_eq!(
        desired(&selectorless, &[pod("a", "10.244.1.2")], &[], &[]),
        None
    );
    let external = set(
        service(),
        "/spec",
        json!({"type": "ExternalName", "externalName": "x.example.com", "selector": {"app": "web"}}),
    );
    assert_eq!(
        desired(&external, &[pod("a", "10.244.1.2")], &[], &[]),
        None
    );
    let deleting = set(service(), "/metadata/uid", json!("svc-uid"));
    let mut deleting = deleting;
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    assert_eq!(desired(&deleting, &[], &[], &[]), None);
    // An empty selector selects every pod of the namespace, as upstream.
    let everything = set(service(), "/spec/selector", json!({}));
    let other = set(
        pod("b", "10.244.1.3"),
        "/metadata/labels",
        json!({"app": "db"}),
    );
    check(
        everything,
        vec![pod("a", "10.244.1.2"), other],
        &[
            "slice [http:8080/TCP] a(ready,serving) b(ready,serving)",
            "endpoints [http:8080/TCP] a b",
        ],
    );
}

/// What the registry stores for `object`: validated (defaults in) and
/// given a namespace.
fn stored(object: &Value) -> Value {
    validate(object).unwrap().object
}

#[test]
fn same_state_same_objects_and_names_are_kept() {
    let pods: Vec<Value> = (0..150)
        .map(|i| pod(&format!("p{i:03}"), &format!("10.244.1.{}", i + 2)))
        .collect();
    let first = desired(&service(), &pods, &nodes(), &[]).unwrap();
    // What the controller writes is what the registry stores: comparing
    // them later finds no difference.
    for slice in &first.slices {
        let s = stored(slice);
        assert_eq!(updated(&s, slice, SLICE_FIELDS, true), None, "{s:#}");
    }
    let e = stored(&first.endpoints);
    assert_eq!(updated(&e, &first.endpoints, ENDPOINTS_FIELDS, false), None);

    let existing: Vec<Value> = first.slices.iter().map(stored).collect();
    let second = desired(&service(), &pods, &nodes(), &existing).unwrap();
    assert_eq!(second, first, "same input, same output: nothing to write");

    let size = |s: &Value| list_at(s, "endpoints").len();
    let (full, half) = match size(&first.slices[0]) {
        100 => (&first.slices[0], &first.slices[1]),
        _ => (&first.slices[1], &first.slices[0]),
    };
    assert_eq!((size(full), size(half)), (100, 50));

    // A new pod goes where there is room; the full slice is untouched.
    let mut more = pods.clone();
    more.push(pod("p999", "10.244.3.2"));
    let third = desired(&service(), &more, &nodes(), &existing).unwrap();
    assert_eq!(third.slices.len(), 2);
    assert!(third.slices.contains(full));
    let grown = third.slices.iter().find(|s| *s != full).unwrap();
    assert_eq!(grown["metadata"]["name"], half["metadata"]["name"]);
    assert_eq!(size(grown), 51);

    // Pods gone: the slice that kept its pods keeps its name, the emptied
    // one is dropped.
    let few: Vec<Value> = pods[120..].to_vec();
    let fourth = desired(&service(), &few, &nodes(), &existing).unwrap();
    assert_eq!(fourth.slices.len(), 1);
    assert_eq!(
        fourth.slices[0]["metadata"]["name"],
        half["metadata"]["name"]
    );

    // A slice of another Service, or not managed by this controller, is
    // never reused, and its name is never taken.
    let mut foreign = existing[0].clone();
    foreign["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = json!("someone-else");
    let fifth = desired(&service(), &pods, &nodes(), &[foreign.clone()]).unwrap();
    assert!(
        fifth
            .slices
            .iter()
            .all(|s| s["metadata"]["name"] != foreign["metadata"]["name"])
    );
}

#[test]
fn reconcile_writes_only_differences_and_cleans_up() {
    use crate::registry::Registry;
    use crate::store::{MemBackend, Storage};

    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    r.bootstrap(&crate::registry::Addons::dns(1)).unwrap();
    let mut svc = service();
    for field in ["uid", "namespace"] {
        svc["metadata"].as_object_mut().unwrap().remove(field);
    }
    svc["spec"].as_object_mut().unwrap().remove("clusterIP");
    r.create(svc).unwrap();
    for p in [pod("a", "10.244.1.2"), not_ready(pod("b", "10.244.1.3"))] {
        let mut p = p;
        p["metadata"].as_object_mut().unwrap().remove("uid");
        let status = p["status"].clone();
        let created = r.create(p).unwrap();
        crate::controllers::write_status(&r, &created, status).unwrap();
    }

    reconcile(&r).unwrap();
    let slices = r.list_all(Kind::EndpointSlice, "default").unwrap();
    assert_eq!(slices.len(), 1, "{slices:#?}");
    assert_eq!(list_at(&slices[0], "endpoints").len(), 2);
    let endpoints = r
        .must_get(&ObjectKey::new(Kind::Endpoints, "default", "web"))
        .unwrap();
    assert_eq!(
        list_at(&endpoints, "subsets")[0]["addresses"][0]["ip"],
        "10.244.1.2"
    );
    // kube-dns selects no pod yet: a placeholder and an empty Endpoints;
    // the selector-less `kubernetes` Service gets nothing.
    assert_eq!(
        r.list_all(Kind::EndpointSlice, "kube-system")
            .unwrap()
            .len(),
        1
    );
    assert!(
        r.get(&ObjectKey::new(Kind::Endpoints, "kube-system", "kube-dns"))
            .unwrap()
            .is_some()
    );
    assert!(
        r.get(&ObjectKey::new(Kind::Endpoints, "default", "kubernetes"))
            .unwrap()
            .is_none()
    );

    let before = r.revision().unwrap();
    reconcile(&r).unwrap();
    assert_eq!(
        r.revision().unwrap(),
        before,
        "a second pass writes nothing"
    );

    // A pod turning ready updates the slice in place.
    let b = r
        .must_get(&ObjectKey::new(Kind::Pod, "default", "b"))
        .unwrap();
    crate::controllers::write_status(&r, &b, pod("b", "10.244.1.3")["status"].clone()).unwrap();
    reconcile(&r).unwrap();
    let after = r.list_all(Kind::EndpointSlice, "default").unwrap();
    assert_eq!(after[0]["metadata"]["name"], slices[0]["metadata"]["name"]);
    assert_eq!(after[0]["endpoints"][1]["conditions"]["ready"], true);

    // The Service gone: its slices go with it, its Endpoints at the next pass.
    r.delete(&ObjectKey::new(Kind::Service, "default", "web"), None, "")
        .unwrap();
    assert!(
        r.list_all(Kind::EndpointSlice, "default")
            .unwrap()
            .is_empty()
    );
    reconcile(&r).unwrap();
    assert!(
        r.get(&ObjectKey::new(Kind::Endpoints, "default", "web"))
            .unwrap()
            .is_none()
    );
}

/// `addressType: addresses...` per slice, then the Endpoints' addresses.
fn families_summary(d: &Desired) -> Vec<String> {
    let mut lines: Vec<String> = d
        .slices
        .iter()
        .map(|slice| {
            let addresses: Vec<String> = list_at(slice, "endpoints")
                .iter()
                .flat_map(|e| strs_at(e, "/addresses"))
                .map(str::to_string)
                .collect();
            format!("{}: {}", str_at(slice, "/addressType"), addresses.join(" "))
        })
        .collect();
    let endpoints: Vec<&str> = list_at(&d.endpoints, "subsets")
        .iter()
        .flat_map(|s| list_at(s, "addresses"))
        .map(|a| str_at(a, "/ip"))
        .collect();
    lines.push(format!("endpoints: {}", endpoints.join(" ")));
    lines
}

#[test]
fn slices_are_per_address_type_of_the_service_and_endpoints_take_the_primary() {
    let dual_pod = |name: &str, v4: &str, v6: &str| {
        set(
            pod(name, v4),
            "/status/podIPs",
            json!([{"ip": v4}, {"ip": v6}]),
        )
    };
    let pods = vec![
        dual_pod("a", "10.244.1.2", "fd00:10:244:1::2"),
        dual_pod("b", "10.244.1.3", "fd00:10:244:1::3"),
        // An IPv4-only pod is no IPv6 endpoint.
        pod("c", "10.244.1.4"),
    ];
    let with_families = |families: Value| set(service(), "/spec/ipFamilies", families);
    for (service, expected) in [
        (
            with_families(json!(["IPv4"])),
            vec![
                "IPv4: 10.244.1.2 10.244.1.3 10.244.1.4",
                "endpoints: 10.244.1.2 10.244.1.3 10.244.1.4",
            ],
        ),
        (
            with_families(json!(["IPv4", "IPv6"])),
            vec![
                "IPv4: 10.244.1.2 10.244.1.3 10.244.1.4",
                "IPv6: fd00:10:244:1::2 fd00:10:244:1::3",
                "endpoints: 10.244.1.2 10.244.1.3 10.244.1.4",
            ],
        ),
        (
            with_families(json!(["IPv6", "IPv4"])),
            vec![
                "IPv6: fd00:10:244:1::2 fd00:10:244:1::3",
                "IPv4: 10.244.1.2 10.244.1.3 10.244.1.4",
                "endpoints: fd00:10:244:1::2 fd00:10:244:1::3",
            ],
        ),
        // A headless Service from before families: both address types.
        (
            set(service(), "/spec/clusterIP", json!("None")),
            vec![
                "IPv4: 10.244.1.2 10.244.1.3 10.244.1.4",
                "IPv6: fd00:10:244:1::2 fd00:10:244:1::3",
                "endpoints: 10.244.1.2 10.244.1.3 10.244.1.4",
            ],
        ),
    ] {
        let d = desired(&service, &pods, &nodes(), &[]).unwrap();
        assert_eq!(families_summary(&d), expected, "{}", service["spec"]);
    }

    // Without pods of a family, that family still has its placeholder.
    let d = desired(
        &with_families(json!(["IPv4", "IPv6"])),
        &[pod("c", "10.244.1.4")],
        &nodes(),
        &[],
    )
    .unwrap();
    assert_eq!(
        families_summary(&d),
        ["IPv4: 10.244.1.4", "IPv6: ", "endpoints: 10.244.1.4"]
    );

    // Back to IPv4 only: the IPv6 slice is no longer desired (reconcile
    // deletes it), the IPv4 one keeps its name.
    let dual = with_families(json!(["IPv4", "IPv6"]));
    let before = desired(&dual, &pods, &nodes(), &[]).unwrap();
    let stored: Vec<Value> = before.slices.iter().map(stored).collect();
    let after = desired(&with_families(json!(["IPv4"])), &pods, &nodes(), &stored).unwrap();
    assert_eq!(after.slices.len(), 1);
    assert_eq!(
        str_at(&after.slices[0], "/metadata/name"),
        str_at(&before.slices[0], "/metadata/name")
    );
    assert_ne!(
        str_at(&before.slices[0], "/metadata/name"),
        str_at(&before.slices[1], "/metadata/name")
    );
}
