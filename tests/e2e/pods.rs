//! Pods on emulated nodes reach each other across the overlay, without NAT.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::harness::{Cluster, text};

pub const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"#;

#[test]
fn pods_on_three_nodes_reach_each_other_without_nat() {
    let c = Cluster::up(&["--nodes", "3"]);
    assert!(c.apply(WEB).contains("deployment/web created"));
    let pods = c.ready_pods("web", 3);

    let nodes = c.items("nodes");
    let cidr_of = |node: &str| -> Ipv4Net {
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .expect("node of pod");
        n["spec"]["podCIDR"].as_str().unwrap().parse().unwrap()
    };
    let spread: BTreeSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(
        spread.len(),
        3,
        "replicas not spread over the nodes: {spread:?}"
    );
    let ips: BTreeSet<&str> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 3, "pod IPs not distinct: {ips:?}");
    for p in &pods {
        let ip: std::net::Ipv4Addr = p["status"]["podIP"].as_str().unwrap().parse().unwrap();
        let node = p["spec"]["nodeName"].as_str().unwrap();
        assert!(
            cidr_of(node).contains(&ip),
            "{ip} outside the podCIDR of {node}"
        );
    }

    for from in &pods {
        let from_name = from["metadata"]["name"].as_str().unwrap();
        let from_ip = from["status"]["podIP"].as_str().unwrap();
        for to in &pods {
            let to_ip = to["status"]["podIP"].as_str().unwrap();
            let out = c.exec(
                from_name,
                &[
                    "curl",
                    "-s",
                    "-m",
                    "5",
                    &format!("http://{to_ip}:8080/hello?x=1"),
                ],
            );
            assert!(
                out.status.success(),
                "curl {from_name} -> {to_ip}: {}",
                text(&out.stderr)
            );
            let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
            let client_ip = echo["client"]
                .as_str()
                .unwrap()
                .rsplit_once(':')
                .unwrap()
                .0
                .to_string();
            assert_eq!(
                client_ip, from_ip,
                "the server must see the caller's pod IP (no NAT)"
            );
            assert_eq!(echo["podIP"], to_ip);
            assert_eq!(echo["pod"], to["metadata"]["name"]);
            assert_eq!(echo["node"], to["spec"]["nodeName"]);
            assert_eq!(echo["path"], "/hello?x=1");
        }
    }

    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("IP")
            && wide.lines().next().unwrap().contains("NODE"),
        "{wide}"
    );
    for ip in &ips {
        assert!(wide.contains(ip), "{ip} missing from:\n{wide}");
    }
}

#[test]
fn containers_of_a_pod_share_one_ip_and_localhost() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: duo, labels: {app: duo}}
spec:
  containers:
    - {name: web, image: podnet/http-echo, ports: [{containerPort: 8080}]}
    - {name: sidecar, image: "podnet/toolbox:latest"}
"#,
    );
    let pod = &c.ready_pods("duo", 1)[0];
    let out = c.run(&[
        "exec",
        "duo",
        "-c",
        "sidecar",
        "--",
        "curl",
        "-s",
        "http://localhost:8080/",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let echo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(echo["pod"], "duo");
    assert!(
        echo["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{echo}"
    );
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(c.ok(&["exec", "duo", "--", "ip", "addr"]).contains(ip));
    // A second listener on the same port of the same pod is refused by the
    // shared port table.
    let out = c.run(&["exec", "duo", "-c", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("container nope is not valid for pod duo"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn refused_and_silent_destinations() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    let pods = c.ready_pods("web", 3);
    let from = pods[0]["metadata"]["name"].as_str().unwrap();
    let other = pods
        .iter()
        .find(|p| p["spec"]["nodeName"] != pods[0]["spec"]["nodeName"])
        .expect("a pod on another node");
    let other_ip = other["status"]["podIP"].as_str().unwrap();

    let out = c.exec(from, &["curl", "-sS", &format!("http://{other_ip}:9/")]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "closed port must refuse: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("Connection refused"),
        "{}",
        text(&out.stderr)
    );

    // An address inside the other node's podCIDR that no pod has, and one
    // outside every podCIDR: both are silent, so the client times out.
    let ghost = format!("{}.250", other_ip.rsplit_once('.').unwrap().0);
    for ip in [ghost.as_str(), "10.244.250.7"] {
        let out = c.exec(
            from,
            &["curl", "-sS", "-m", "1", &format!("http://{ip}:8080/")],
        );
        assert_eq!(
            out.status.code(),
            Some(28),
            "{ip} must time out: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn deployments_scale_up_and_down_and_unschedulable_pods_wait() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    c.ready_pods("web", 3);
    c.apply(&WEB.replace("replicas: 3", "replicas: 5"));
    c.ready_pods("web", 5);
    c.apply(&WEB.replace("replicas: 3", "replicas: 1"));
    crate::harness::eventually(
        "scale down to 1",
        std::time::Duration::from_secs(20),
        || {
            (c.json(&["get", "pods", "-l", "app=web"])["items"]
                .as_array()
                .map_or(0, Vec::len)
                == 1)
                .then_some(())
        },
    );
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["status"]["availableReplicas"], 1, "{d}");
    assert!(c.ok(&["get", "deployments"]).contains("1/1"));

    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: picky}\nspec:\n  nodeSelector: {disk: ssd}\n  containers: [{name: c, image: podnet/toolbox}]\n",
    );
    let message = crate::harness::eventually(
        "an Unschedulable condition",
        std::time::Duration::from_secs(10),
        || {
            let p = c.json(&["get", "pod", "picky"]);
            let cond = p["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "PodScheduled")?
                .clone();
            (cond["reason"] == "Unschedulable")
                .then(|| cond["message"].as_str().unwrap_or("").to_string())
        },
    );
    assert!(message.contains("0/2 nodes are available"), "{message}");
    assert!(
        message.contains("didn't match Pod's node affinity/selector"),
        "{message}"
    );
}
