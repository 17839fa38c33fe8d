//! Experiment flows of every kind, from the host through the edge and
//! from pods through `podnet/loadgen` in their network namespaces, and
//! the library's experiments whose traffic comes from pods.

use serde_json::Value;

use crate::experiments::{
    conforms_to_the_report_schema, library, library_passes_with_its_report, report, run, said,
};
use crate::harness::text;

/// Every request of `flow` in the report, by outcome class.
fn outcomes(flow: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for s in flow["seconds"].as_array().unwrap() {
        for (class, n) in s["outcomes"].as_object().unwrap() {
            *out.entry(class.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    out
}

fn flow<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no flow {name} in {r}"))
}

/// The pods that served `flow`, over all its seconds.
fn served_by(flow: &Value) -> std::collections::BTreeSet<String> {
    flow["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["by_pod"].as_object().unwrap().keys().cloned())
        .collect()
}

/// HTTPS (HTTP/1.1 and HTTP/2 by ALPN) through the edge and the ingress
/// controller, TCP echo and UDP echo through LoadBalancer listeners, and
/// HTTP, TCP, UDP and DNS from pods: every request is answered, the pod
/// flows ran in both client pods and their HTTP answers name the serving
/// pods.
#[test]
fn flows_of_every_kind_from_the_host_and_from_pods() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("echoes.yaml");
    std::fs::write(
        &manifests,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
        - {name: tcp, image: podnet/tcp-echo, ports: [{containerPort: 9000}]}
        - {name: udp, image: podnet/udp-echo, ports: [{containerPort: 9000, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: uecho}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 9000, protocol: UDP}]
"#,
    )
    .unwrap();
    let root = library().join("../..");
    let ca = root.join("scenarios/manifests/ingress-ca.pem");
    let file = dir.path().join("kinds.yaml");
    let flows = [
        (
            "https",
            format!(
                "from: host, request: GET https://shop.example.com/cart, resolve: shop.example.com:ingress, cacert: {}",
                ca.display()
            ),
        ),
        (
            "h2",
            format!(
                "from: host, request: GET https://shop.example.com/cart, resolve: shop.example.com:ingress, cacert: {}, http_version: \"2\"",
                ca.display()
            ),
        ),
        (
            "tcp-host",
            "from: host, request: \"tcp://echo.example.com:9000\", resolve: \"echo.example.com:service:echo\", echo: true".into(),
        ),
        (
            "udp-host",
            "from: host, request: \"udp://uecho.example.com:9000\", resolve: \"uecho.example.com:service:default/uecho\"".into(),
        ),
        (
            "http-pods",
            // A connection per request: each is balanced anew.
            "from: {pods: app=client}, request: GET http://shop/, connections: {reuse: false}"
                .into(),
        ),
        (
            "tcp-pods",
            "from: {pods: app=client}, request: \"tcp://echo:9000\", echo: true".into(),
        ),
        (
            "udp-pods",
            "from: {pods: app=client}, request: \"udp://uecho.default.svc.cluster.local:9000\""
                .into(),
        ),
        (
            "dns-pods",
            "from: {pods: app=client}, request: \"dns:shop A\"".into(),
        ),
    ];
    let mut traffic = String::new();
    let mut expect = String::new();
    for (name, spec) in &flows {
        traffic.push_str(&format!(
            "  - {{name: {name}, {spec}, rate: 40/s, duration: 4s, timeout: 2s}}\n"
        ));
        expect.push_str(&format!(
            "  - {{name: {name}-ok, traffic: {name}, window: whole, error_rate: \"== 0%\"}}\n"
        ));
    }
    // Closed loops: workers that wait for each answer and 20 ms more.
    let closed = [
        (
            "closed-host",
            "from: host, request: GET http://shop.example.com/cart, resolve: shop.example.com:ingress, concurrency: 2",
        ),
        (
            "closed-pods",
            "from: {pods: app=client}, request: GET http://shop/, concurrency: 3",
        ),
    ];
    for (name, spec) in closed {
        traffic.push_str(&format!(
            "  - {{name: {name}, {spec}, think: 20ms, duration: 4s, timeout: 2s}}\n"
        ));
        // How many a closed loop sends depends on how fast the answers
        // come (this machine may be busy): a few are enough to judge.
        expect.push_str(&format!(
            "  - {{name: {name}-ok, traffic: {name}, window: whole, error_rate: \"== 0%\", min_samples: 10}}\n"
        ));
    }
    std::fs::write(
        &file,
        format!(
            "name: kinds
cluster:
  nodes: [{{name: node-1, zone: a}}, {{name: node-2, zone: b}}]
manifests:
  - {}
  - {}
  - {}
traffic:
{traffic}expect:
{expect}",
            root.join("scenarios/manifests/ingress.yaml").display(),
            library().join("manifests/clients.yaml").display(),
            manifests.display(),
        ),
    )
    .unwrap();
    let out = run(&file, dir.path());
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        text(&out.stdout).contains("experiment PASS"),
        "{}",
        said(&out)
    );
    let r = report(dir.path());
    conforms_to_the_report_schema(&r);
    for (name, _) in &flows {
        let f = flow(&r, name);
        let o = outcomes(f);
        assert_eq!(o.keys().collect::<Vec<_>>(), ["ok"], "{name}: {o:?}");
        assert_eq!(o["ok"], 160, "{name}: {o:?}");
        let generators = f["generators"].as_array().unwrap();
        if name.ends_with("-pods") {
            assert_eq!(generators.len(), 2, "{name}: {generators:?}");
            assert!(
                generators
                    .iter()
                    .all(|g| g.as_str().unwrap().starts_with("default/client-"))
            );
        } else {
            assert_eq!(generators, &[Value::from("host")], "{name}");
        }
    }
    // A closed loop sends one request per worker at a time: at most
    // workers x (4 s / 20 ms + 1), never lagging its own schedule.
    for (name, workers, generators) in [("closed-host", 2, 1), ("closed-pods", 3, 2)] {
        let f = flow(&r, name);
        assert_eq!(f["closed_loop"]["concurrency"], workers, "{name}");
        assert_eq!(
            f["generators"].as_array().unwrap().len(),
            generators,
            "{name}"
        );
        let o = outcomes(f);
        assert_eq!(o.keys().collect::<Vec<_>>(), ["ok"], "{name}: {o:?}");
        assert!(
            (10..=workers * 201).contains(&o["ok"]),
            "{name}: {} requests",
            o["ok"]
        );
        let lagged = f["seconds"]
            .as_array()
            .unwrap()
            .iter()
            // Lag 0, recorded as the histograms' lowest value, 1 µs.
            .filter(|s| s["lag_p99"].as_f64().is_some_and(|l| l > 2e-6))
            .count();
        assert_eq!(lagged, 0, "{name}: a closed loop has no lag");
    }
    assert!(flow(&r, "https")["closed_loop"].is_null());
    // The pods' answers name who served them: both shop pods.
    let shop = served_by(flow(&r, "http-pods"));
    assert_eq!(shop.len(), 2, "{shop:?}");
    assert!(
        shop.iter().all(|p| p.starts_with("default/shop-")),
        "{shop:?}"
    );
}

/// A pod flow whose target does not resolve never starts: the run is
/// INVALID with the reason, not a PASS over no requests.
#[test]
fn a_pod_flow_to_a_name_that_does_not_resolve_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nxdomain.yaml");
    std::fs::write(
        &file,
        format!(
            "name: nxdomain
cluster:
  nodes: 1
manifests:
  - {}
traffic:
  - {{name: lost, from: {{pods: app=client}}, request: GET http://no-such-service/, rate: 10/s, duration: 2s}}
expect:
  - {{name: lost-ok, traffic: lost, window: whole, error_rate: \"== 0%\", min_samples: 1}}
",
            library().join("manifests/clients.yaml").display()
        ),
    )
    .unwrap();
    let out = run(&file, dir.path());
    let said = said(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("no-such-service"), "{said}");
}

#[test]
fn library_ndots() {
    let (_dir, r) = library_passes_with_its_report("ndots.yaml");
    // Three search-list misses before the answer cost a multiple of one
    // query.
    let median = |name: &str| {
        let mut all: Vec<f64> = flow(&r, name)["seconds"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["p50"].as_f64())
            .collect();
        all.sort_by(f64::total_cmp);
        all[all.len() / 2]
    };
    let (short, dotted) = (median("short"), median("dotted"));
    assert!(
        short > 1.5 * dotted,
        "short p50 {short} s, dotted p50 {dotted} s"
    );
}

#[test]
fn library_traffic_policy() {
    let (_dir, r) = library_passes_with_its_report("traffic-policy.yaml");
    // Local kept each client's requests on its own node's pod.
    for pod in served_by(flow(&r, "local")) {
        assert!(pod.starts_with("default/web-"), "{pod}");
    }
}
