//! Upstream's protections, through the real binary: bad flags stop a
//! command before anything starts, system namespaces cannot be deleted,
//! a deleted Node's pods are collected and its node registers again, a
//! Node with no process behind it goes NotReady and gets no pods, and bad
//! input anywhere is refused with what would be valid.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Cluster, eventually, is_ready, text};

/// Runs `podnet ARGS` with a state dir of its own, which must stay empty.
fn refused(args: &[&str], says: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = std::process::Command::new(harness::BIN)
        .args(args)
        .env("PODNET_STATE_DIR", &state)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
    for part in says {
        assert!(err.contains(part), "{args:?} must say {part:?}: {err}");
    }
    assert!(
        !state.exists(),
        "{args:?} started something: {:?}",
        std::fs::read_dir(&state).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
}

#[test]
fn every_bad_flag_is_refused_with_its_reason_before_anything_starts() {
    let huge = format!("app in ({})", vec!["x"; 50_000].join(","));
    let table: &[(&[&str], &[&str])] = &[
        (
            &["up", "--node-grace-period", "0s"],
            &["--node-grace-period", "must be at least 400ms"],
        ),
        (
            &["up", "--node-grace-period", "banana"],
            &["--node-grace-period", "not a duration", "like 3s"],
        ),
        (
            &["up", "--node-grace-period", "99999h"],
            &["--node-grace-period", "too large: at most 24h"],
        ),
        (
            &["up", "--lb-pool", "garbage"],
            &["--lb-pool", "not an IPv4 CIDR"],
        ),
        (
            &["up", "--lb-pool", "10.0.0.0/8"],
            &["--lb-pool", "not a loopback range"],
        ),
        (
            &["up", "--ingress-default-backend", "Fallback"],
            &["--ingress-default-backend", "expected NAMESPACE/NAME"],
        ),
        (
            &["up", "--ip-family", "ipv5"],
            &["--ip-family", "expected ipv4, ipv6 or dual"],
        ),
        (
            &["up", "--nodes", "300"],
            &[
                "300 nodes do not fit",
                "room for 256 node podCIDRs of /24",
                "--cluster-cidr 10.244.0.0/15",
                "--node-cidr-mask-size 25",
            ],
        ),
        (
            &["up", "--nodes", "3", "--cluster-cidr", "10.244.0.0/23"],
            &["3 nodes do not fit", "room for 2"],
        ),
        (
            &["up", "--cluster-cidr", "garbage"],
            &["--cluster-cidr", "not an IPv4 CIDR"],
        ),
        (
            &["up", "--node-cidr-mask-size", "31"],
            &["--node-cidr-mask-size", "must be from 1 to 30"],
        ),
        (
            &[
                "up",
                "--cluster-cidr",
                "10.0.0.0/8",
                "--node-cidr-mask-size",
                "25",
            ],
            &["more than 16 bits longer"],
        ),
        (
            &[
                "controlplane",
                "--join-token",
                "t",
                "--node-grace-period",
                "0s",
            ],
            &["--node-grace-period", "at least 400ms"],
        ),
        (
            &[
                "controlplane",
                "--join-token",
                "t",
                "--node-cidr-mask-size",
                "8",
            ],
            &["shorter than --cluster-cidr 10.244.0.0/16"],
        ),
        (
            &[
                "edge",
                "--controlplane",
                "127.0.0.1:1",
                "--join-token",
                "t",
                "--health-interval",
                "0s",
            ],
            &["--health-interval", "at least 10ms"],
        ),
        (
            &[
                "wait",
                "pods",
                "--all",
                "--for",
                "delete",
                "--timeout",
                "soon",
            ],
            &["--timeout", "not a duration"],
        ),
        (
            &["get", "pods", "-l", &huge],
            &["--selector", "at most 8192 bytes"],
        ),
        (
            &["get", "pods", "-l", "a in (b"],
            &["--selector", "invalid selector"],
        ),
    ];
    for (args, says) in table {
        refused(args, says);
    }
}

/// The first Event about `name` with `reason`, once there is one.
fn event(c: &Cluster, name: &str, reason: &str) -> Value {
    eventually(
        &format!("a {reason} Event on {name}"),
        Duration::from_secs(15),
        || {
            c.items("events")
                .into_iter()
                .find(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
        },
    )
}

#[test]
fn a_running_cluster_refuses_what_would_break_it_and_says_why() {
    let c = Cluster::up(&["--nodes", "2"]);

    // NamespaceLifecycle: the system namespaces survive a delete.
    for ns in ["default", "kube-system", "kube-public", "podnet-ingress"] {
        let out = c.run(&["delete", "namespace", ns]);
        assert!(!out.status.success(), "{ns} was deleted");
        let want = format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted");
        assert!(text(&out.stderr).contains(&want), "{}", text(&out.stderr));
    }
    let names: BTreeSet<String> = c
        .items("namespaces")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for ns in ["default", "kube-system", "kube-public", "podnet-ingress"] {
        assert!(names.contains(ns), "{ns} gone: {names:?}");
    }
    c.ok(&["get", "deployment", "coredns", "-n", "kube-system"]);
    // A namespace of one's own still goes.
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n");
    c.ok(&["delete", "namespace", "scratch"]);

    // Manifests: nothing to apply, and an apiVersion that is no string.
    let out = c.run_stdin(&["apply", "-f", "-"], "# nothing here\n---\n");
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("error: no objects passed to apply"),
        "{}",
        text(&out.stderr)
    );
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: 1\nkind: Namespace\nmetadata: {name: numbered}\n",
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(r#"apiVersion must be a string like "v1" or "apps/v1""#),
        "{}",
        text(&out.stderr)
    );

    // Links: only between nodes that exist, only durations that fit.
    let out = c.run(&["link", "set", "node-1", "nosuch", "--delay", "10ms"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains(r#"node "nosuch" not found: the cluster's nodes are node-1, node-2"#),
        "{}",
        text(&out.stderr)
    );
    let out = c.run(&["link", "set", "node-1", "node-2", "--delay", "99999h"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("too large: at most 1h"),
        "{}",
        text(&out.stderr)
    );
    assert!(c.items("links").is_empty(), "a refused link was created");

    // A LoadBalancer address outside the pool: a Warning Event that names it.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: pinned}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 8.8.8.8\n  selector: {app: none}\n  ports: [{port: 80}]\n",
    );
    let pool = c.info()["edge"]["lbPool"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let e = event(&c, "pinned", "LoadBalancerIPNotAllowed");
    assert_eq!(e["type"], "Warning");
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("8.8.8.8") && !pool.is_empty() && message.contains(&pool),
        "{message} (pool {pool})"
    );
    let describe = c.ok(&["describe", "service", "pinned"]);
    assert!(describe.contains("LoadBalancerIPNotAllowed"), "{describe}");

    // Every child process names the cluster's state dir on its command line.
    let record = podnet_lab::record::ClusterRecord::read(&c.state).unwrap();
    let state = c.state.to_str().unwrap();
    for pid in record.role_pids() {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv = text(&argv).replace('\0', " ");
        assert!(argv.contains(state), "pid {pid}: {argv}");
    }
}

fn node<'a>(nodes: &'a [Value], name: &str) -> Option<&'a Value> {
    nodes.iter().find(|n| n["metadata"]["name"] == name)
}

#[test]
fn a_deleted_node_loses_its_pods_and_registers_again() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(crate::pods::WEB);
    let pods = c.ready_pods("web", 3);
    let victim = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let before = c.items("nodes");
    let cidr = node(&before, &victim).unwrap()["spec"]["podCIDR"].clone();
    let victim_pods: BTreeSet<String> = c
        .items("pods")
        .iter()
        .filter(|p| p["spec"]["nodeName"] == victim.as_str())
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert!(!victim_pods.is_empty());

    c.ok(&["delete", "node", &victim]);

    // The pod garbage collector takes every pod the Node had.
    eventually(
        "the deleted Node's pods gone",
        Duration::from_secs(15),
        || {
            let uids: BTreeSet<String> = c
                .items("pods")
                .iter()
                .map(|p| {
                    p["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            victim_pods.is_disjoint(&uids).then_some(())
        },
    );
    // The node registers again, Ready, with the podCIDR it had.
    eventually("the node back and Ready", Duration::from_secs(15), || {
        let nodes = c.items("nodes");
        let n = node(&nodes, &victim)?;
        (is_ready(n) && n["spec"]["podCIDR"] == cidr).then_some(())
    });
    // Pods land on it again and are reachable there.
    c.ok(&["scale", "deployment", "web", "--replicas", "6"]);
    let pods = c.ready_pods("web", 6);
    let on_victim = pods
        .iter()
        .find(|p| p["spec"]["nodeName"] == victim.as_str())
        .expect("a pod scheduled to the node that came back");
    let from = pods
        .iter()
        .find(|p| p["spec"]["nodeName"] != victim.as_str())
        .expect("a pod on the other node");
    let ip = on_victim["status"]["podIP"].as_str().unwrap();
    let out = c.exec(
        from["metadata"]["name"].as_str().unwrap(),
        &["curl", "-s", "-m", "5", &format!("http://{ip}:8080/")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_node_without_a_process_goes_not_ready_and_gets_no_pods() {
    // In a pod network of its own, which the node's podCIDR comes from.
    let c = Cluster::up(&[
        "--nodes",
        "1",
        "--cluster-cidr",
        "10.250.0.0/24",
        "--node-cidr-mask-size",
        "25",
    ]);
    let nodes = c.items("nodes");
    assert_eq!(
        node(&nodes, "node-1").unwrap()["spec"]["podCIDR"],
        "10.250.0.0/25"
    );
    c.apply(
        r#"apiVersion: v1
kind: Node
metadata: {name: phantom}
status:
  conditions: [{type: Ready, status: "True", reason: KubeletReady}]
  capacity: {cpu: "64", memory: 256Gi, pods: "110"}
  allocatable: {cpu: "64", memory: 256Gi, pods: "110"}
"#,
    );
    // The harness's grace period is 1s.
    let condition = eventually("the phantom NotReady", Duration::from_secs(10), || {
        let nodes = c.items("nodes");
        let ready = node(&nodes, "phantom")?["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (ready["status"] != "True").then_some(ready)
    });
    assert_eq!(condition["reason"], "NodeStatusUnknown", "{condition}");
    c.apply(crate::pods::WEB);
    let pods = c.ready_pods("web", 3);
    let cidr: ipnet::Ipv4Net = "10.250.0.0/25".parse().unwrap();
    for p in &pods {
        assert_eq!(p["spec"]["nodeName"], "node-1", "{}", p["metadata"]["name"]);
        let ip: std::net::Ipv4Addr = p["status"]["podIP"].as_str().unwrap().parse().unwrap();
        assert!(cidr.contains(&ip), "{ip} outside {cidr}");
    }
    assert!(
        !c.items("pods")
            .iter()
            .any(|p| p["spec"]["nodeName"] == "phantom"),
        "a pod is bound to the phantom node"
    );
}
