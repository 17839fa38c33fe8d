//! Prometheus `/metrics` of every process, scraped with real curl at the
//! addresses `cluster-info` lists and parsed as a scraper parses them:
//! the control plane counts a `podnet get`, the edge and the nodes count
//! connections and bytes per Service sent through a LoadBalancer from the
//! host, and a node counts the connection a deny policy drops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::Value;

use crate::harness::{Cluster, eventually, text};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {containers: [{name: toolbox, image: podnet/toolbox}]}
"#;

/// Denies every connection to the web pods.
const DENY_WEB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"#;

/// Every `/metrics` address `cluster-info -o json` lists, by process.
fn targets(info: &Value) -> Vec<(String, String)> {
    let mut t = Vec::new();
    for role in ["controlplane", "edge"] {
        let addr = info[role]["metrics"]
            .as_str()
            .unwrap_or_else(|| panic!("cluster-info lists no /metrics for {role}: {info}"));
        t.push((role.to_string(), addr.to_string()));
    }
    for n in info["nodes"].as_array().expect("nodes in cluster-info") {
        let name = n["name"].as_str().unwrap();
        let addr = n["metrics"]
            .as_str()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| panic!("cluster-info lists no /metrics for {name}: {n}"));
        t.push((name.to_string(), addr.to_string()));
    }
    t
}

/// `curl http://ADDR/PATH`: the status code and the body.
fn curl_get(addr: &str, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "5",
            "-w",
            "\n%{http_code} %{content_type}",
            &format!("http://{addr}{path}"),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {addr}{path}: {}",
        text(&out.stderr)
    );
    let out = text(&out.stdout);
    let (body, status) = out.rsplit_once('\n').expect("curl's -w line");
    (status.to_string(), body.to_string())
}

/// One scrape of `addr`, parsed; panics unless it is a 200 in the
/// Prometheus text format that parses.
fn scrape(addr: &str) -> Scrape {
    let (status, body) = curl_get(addr, "/metrics");
    assert!(
        status.starts_with("200 text/plain; version=0.0.4"),
        "{addr}: {status}\n{body}"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{addr}: /metrics does not parse ({e}):\n{body}"))
}

fn value(s: &Sample) -> f64 {
    match s {
        Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
        Sample::Histogram(_) | Sample::Summary(_) => 0.0,
    }
}

/// The sum of `metric`'s samples whose labels include `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| value(&s.value))
        .sum()
}

/// `sum` over every node's scrape.
fn nodes_sum(c: &Cluster, metric: &str, labels: &[(&str, &str)]) -> f64 {
    node_targets(c)
        .iter()
        .map(|addr| sum(&scrape(addr), metric, labels))
        .sum()
}

fn node_targets(c: &Cluster) -> Vec<String> {
    targets(&c.info())
        .into_iter()
        .filter(|(who, _)| who.starts_with("node-"))
        .map(|(_, addr)| addr)
        .collect()
}

fn edge_target(c: &Cluster) -> String {
    c.info()["edge"]["metrics"].as_str().unwrap().to_string()
}

fn cp_target(c: &Cluster) -> String {
    c.info()["controlplane"]["metrics"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The LoadBalancer address and real port of Service `name`.
fn front(c: &Cluster, name: &str) -> SocketAddr {
    eventually(
        &format!("a load balancer address for {name}"),
        Duration::from_secs(15),
        || {
            let svc = c.json(&["get", "svc", name]);
            let ing = svc.pointer("/status/loadBalancer/ingress/0")?;
            let ip: std::net::Ipv4Addr = ing["ip"].as_str()?.parse().ok()?;
            let port = u16::try_from(ing["ports"][0]["port"].as_u64()?).ok()?;
            Some(SocketAddr::from((ip, port)))
        },
    )
}

#[test]
fn every_process_serves_metrics_counting_api_calls_services_and_policy_drops() {
    let c = Cluster::up(&["--nodes", "2"]);

    // cluster-info lists one /metrics per process, in JSON and in text.
    let info = c.info();
    let all = targets(&info);
    assert_eq!(all.len(), 4, "{all:?}");
    let listed = c.ok(&["cluster-info"]);
    for (who, addr) in &all {
        let ip: SocketAddr = addr.parse().unwrap_or_else(|_| panic!("{who}: {addr}"));
        assert!(ip.ip().is_loopback(), "{who}: {addr}");
        assert!(
            listed.contains(&format!("metrics at http://{addr}/metrics")),
            "{who}'s {addr} not in:\n{listed}"
        );
        let parsed = scrape(addr);
        let prefix = if who.starts_with("node-") {
            "podnet_node_"
        } else {
            &format!("podnet_{who}_")
        };
        assert!(
            parsed.samples.iter().all(|s| s.metric.starts_with(prefix)),
            "{who}: a sample without {prefix}"
        );
        let (status, _) = curl_get(addr, "/");
        assert!(status.starts_with("404 "), "{who}: GET / is {status}");
    }
    for (who, addr) in all.iter().filter(|(w, _)| w.starts_with("node-")) {
        let parsed = scrape(addr);
        for metric in [
            "podnet_node_drops_total",
            "podnet_node_policy_verdicts_total",
            "podnet_node_overlay_connections",
        ] {
            assert!(
                parsed.samples.iter().any(|s| s.metric == metric),
                "{who}: no {metric}"
            );
        }
    }

    // The control plane counts the List a `podnet get` makes.
    let cp = cp_target(&c);
    let list_ok = [("method", "List"), ("code", "OK")];
    let before = sum(
        &scrape(&cp),
        "podnet_controlplane_api_requests_total",
        &list_ok,
    );
    c.ok(&["get", "pods"]);
    let after = sum(
        &scrape(&cp),
        "podnet_controlplane_api_requests_total",
        &list_ok,
    );
    assert!(after >= before + 1.0, "List OK {before} -> {after}");
    let watches = sum(&scrape(&cp), "podnet_controlplane_api_watches", &[]);
    assert!(watches >= 2.0, "every node and the edge watch: {watches}");
    let commits = sum(
        &scrape(&cp),
        "podnet_controlplane_store_commit_duration_seconds_count",
        &[],
    );
    assert!(commits > 0.0, "no store commits observed");

    // Traffic from the host through the edge: N requests, N connections
    // counted at the edge and at the nodes' proxies, and their bytes.
    c.apply(WEB);
    c.ready_pods("web", 2);
    c.ready_pods("client", 1);
    let addr = front(&c, "web");
    let web = [("namespace", "default"), ("service", "web")];
    let to_endpoint = [
        ("namespace", "default"),
        ("service", "web"),
        ("port", "http"),
        ("protocol", "TCP"),
        ("direction", "to_endpoint"),
    ];
    let from_endpoint = [
        ("namespace", "default"),
        ("service", "web"),
        ("port", "http"),
        ("protocol", "TCP"),
        ("direction", "from_endpoint"),
    ];
    // Endpoints are programmed by now (the pods are Ready, the address
    // is out): the first request may still race the node's proxy, so
    // one answered request comes first, then the counted ones.
    eventually("one answered request", Duration::from_secs(15), || {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "2", &format!("http://{addr}/")])
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    let edge = edge_target(&c);
    let edge_before = (
        sum(&scrape(&edge), "podnet_edge_connections_total", &web),
        sum(&scrape(&edge), "podnet_edge_frontend_bytes_total", &web),
    );
    let nodes_before = (
        nodes_sum(&c, "podnet_node_service_flows_total", &web),
        nodes_sum(&c, "podnet_node_service_bytes_total", &to_endpoint),
        nodes_sum(&c, "podnet_node_service_bytes_total", &from_endpoint),
    );
    const N: f64 = 5.0;
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n");
    for _ in 0..5 {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "5", &format!("http://{addr}/")])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl {addr}: {}", text(&out.stderr));
    }
    let flows = nodes_sum(&c, "podnet_node_service_flows_total", &web) - nodes_before.0;
    assert!(flows >= N, "node service flows moved by {flows}");
    let edge_conns = sum(&scrape(&edge), "podnet_edge_connections_total", &web) - edge_before.0;
    assert!(edge_conns >= N, "edge connections moved by {edge_conns}");
    // Bytes are counted as they pass (nodes) or when the connection ends
    // (edge), which is just after curl is done.
    eventually("bytes counted", Duration::from_secs(10), || {
        let sent = nodes_sum(&c, "podnet_node_service_bytes_total", &to_endpoint) - nodes_before.1;
        let back =
            nodes_sum(&c, "podnet_node_service_bytes_total", &from_endpoint) - nodes_before.2;
        let edge_bytes =
            sum(&scrape(&edge), "podnet_edge_frontend_bytes_total", &web) - edge_before.1;
        let want = N * request.len() as f64;
        (sent >= want && back >= N && edge_bytes >= want + N).then_some(())
    });

    // From a pod to the ClusterIP: the client's own node proxies and
    // counts.
    let before = (
        nodes_sum(&c, "podnet_node_service_flows_total", &web),
        nodes_sum(&c, "podnet_node_service_bytes_total", &to_endpoint),
        nodes_sum(&c, "podnet_node_service_bytes_total", &from_endpoint),
    );
    for _ in 0..5 {
        let out = c.exec("client", &["curl", "-s", "-f", "-m", "5", "http://web/"]);
        assert!(
            out.status.success(),
            "curl http://web/ from client: {}",
            text(&out.stderr)
        );
    }
    let flows = nodes_sum(&c, "podnet_node_service_flows_total", &web) - before.0;
    assert!(flows >= N, "pod to ClusterIP: flows moved by {flows}");
    eventually("pod bytes counted", Duration::from_secs(10), || {
        let sent = nodes_sum(&c, "podnet_node_service_bytes_total", &to_endpoint) - before.1;
        let back = nodes_sum(&c, "podnet_node_service_bytes_total", &from_endpoint) - before.2;
        (sent >= N * "GET / HTTP/1.1\r\n".len() as f64 && back >= N).then_some(())
    });

    // Each of those looked `web` up: UDP to the cluster DNS's ClusterIP,
    // proxied and counted both ways.
    let dns = |direction| {
        nodes_sum(
            &c,
            "podnet_node_service_bytes_total",
            &[
                ("namespace", "kube-system"),
                ("service", "kube-dns"),
                ("protocol", "UDP"),
                ("direction", direction),
            ],
        )
    };
    let dns_flows = nodes_sum(
        &c,
        "podnet_node_service_flows_total",
        &[
            ("namespace", "kube-system"),
            ("service", "kube-dns"),
            ("protocol", "UDP"),
        ],
    );
    assert!(dns_flows >= 1.0, "DNS flows {dns_flows}");
    // A DNS header alone is 12 bytes.
    assert!(
        dns("to_endpoint") >= 12.0,
        "DNS bytes sent {}",
        dns("to_endpoint")
    );
    assert!(
        dns("from_endpoint") >= 12.0,
        "DNS bytes back {}",
        dns("from_endpoint")
    );

    // A deny policy: the client pod's connection to a web pod is dropped,
    // and a node counts the drop.
    let web_ip = c.ready_pods("web", 2)[0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let dropped = [("verdict", "dropped_ingress")];
    let drops_before = nodes_sum(&c, "podnet_node_policy_verdicts_total", &dropped);
    let reason_before = nodes_sum(
        &c,
        "podnet_node_drops_total",
        &[("reason", "policy_ingress")],
    );
    c.apply(DENY_WEB);
    let mut refused = HashMap::new();
    eventually(
        "a dropped connection counted",
        Duration::from_secs(20),
        || {
            let out = c.exec(
                "client",
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-m",
                    "1",
                    &format!("http://{web_ip}:8080/"),
                ],
            );
            *refused.entry(out.status.code()).or_insert(0) += 1;
            let drops = nodes_sum(&c, "podnet_node_policy_verdicts_total", &dropped);
            (drops > drops_before).then_some(())
        },
    );
    let reason = nodes_sum(
        &c,
        "podnet_node_drops_total",
        &[("reason", "policy_ingress")],
    );
    assert!(
        reason > reason_before,
        "drops{{reason=policy_ingress}} {reason_before} -> {reason} ({refused:?})"
    );
    // The programming histogram has seen the Service's endpoints arrive.
    let programmed = nodes_sum(
        &c,
        "podnet_node_endpoint_programming_duration_seconds_count",
        &[],
    );
    assert!(programmed >= 1.0, "no programming observed: {programmed}");
}

fn kill9(pid: u64) {
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("run kill")
            .success(),
        "kill -9 {pid}"
    );
}

#[test]
fn a_restarted_control_plane_and_edge_serve_metrics_where_they_did() {
    let c = Cluster::up(&["--nodes", "1"]);
    let info = c.info();
    for role in ["controlplane", "edge"] {
        let addr = info[role]["metrics"].as_str().unwrap().to_string();
        let pid = info[role]["pid"].as_u64().unwrap();
        scrape(&addr);
        kill9(pid);
        eventually(
            &format!("a restarted {role} serving /metrics on {addr}"),
            Duration::from_secs(20),
            || {
                // While the control plane is away cluster-info fails.
                let out = c.run(&["cluster-info", "-o", "json"]);
                let now: Value = serde_json::from_slice(&out.stdout).ok()?;
                let new_pid = now[role]["pid"].as_u64()?;
                let out = Command::new("curl")
                    .args(["-sS", "-f", "-m", "2", &format!("http://{addr}/metrics")])
                    .output()
                    .ok()?;
                (new_pid != pid
                    && now[role]["metrics"] == addr.as_str()
                    && out.status.success()
                    && podnet_lab::record::alive(u32::try_from(new_pid).ok()?))
                .then_some(())
            },
        );
    }
    // The new control plane counts from zero, and counts.
    let cp = info["controlplane"]["metrics"].as_str().unwrap();
    c.ok(&["get", "nodes"]);
    let lists = sum(
        &scrape(cp),
        "podnet_controlplane_api_requests_total",
        &[("method", "List"), ("code", "OK")],
    );
    assert!(lists >= 1.0, "{lists}");
}
