//! Services: ClusterIP load balancing and affinity, NodePorts and traffic
//! policies, endpoints that follow pods, headless Services, and their
//! validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually, text};
use crate::pods::WEB;

pub const WEB_SVC: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

pub const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  containers: [{name: toolbox, image: podnet/toolbox}]
"#;

/// Which pod answered each of `n` requests from `from` to `url`.
fn spread(c: &Cluster, from: &str, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let out = c.exec(from, &["curl", "-s", "-m", "5", url]);
        assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
        let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
        *seen
            .entry(echo["pod"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

fn with_client(c: &Cluster) {
    c.apply(&format!("{WEB}---{WEB_SVC}---{CLIENT}"));
    c.ready_pods("web", 3);
    c.ready_pods("client", 1);
}

#[test]
fn cluster_ip_spreads_requests_and_client_ip_affinity_sticks() {
    let c = Cluster::up(&["--nodes", "3"]);
    with_client(&c);
    let seen = spread(&c, "client", "http://web/", 300);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.values().all(|n| *n >= 60),
        "each pod must get at least 20%: {seen:?}"
    );

    let svc = c.json(&["get", "svc", "web"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(
        ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11"),
        "{ip}"
    );
    c.apply(&WEB_SVC.replace("  selector:", "  sessionAffinity: ClientIP\n  selector:"));
    let seen = spread(&c, "client", &format!("http://{ip}/"), 50);
    assert_eq!(
        seen.len(),
        1,
        "ClientIP affinity keeps one backend: {seen:?}"
    );
    let svc = c.json(&["get", "svc", "web"]);
    assert_eq!(
        svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800,
        "{svc}"
    );

    // Switched off by an edit that leaves the old settings in
    // (`SetDefaults_Service` drops them): accepted, and spreading again.
    c.apply(&WEB_SVC.replace(
        "  selector:",
        "  sessionAffinity: None\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}\n  selector:",
    ));
    let svc = c.json(&["get", "svc", "web"]);
    assert_eq!(svc["spec"]["sessionAffinity"], "None", "{svc}");
    assert!(svc["spec"].get("sessionAffinityConfig").is_none(), "{svc}");
    let seen = spread(&c, "client", &format!("http://{ip}/"), 60);
    assert!(
        seen.len() > 1,
        "no affinity, more than one backend: {seen:?}"
    );
}

#[test]
fn a_deleted_pod_leaves_the_endpoints_and_gets_no_more_requests() {
    let c = Cluster::up(&["--nodes", "2"]);
    with_client(&c);
    let pods = c.ready_pods("web", 3);
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let victim_ip = pods[0]["status"]["podIP"].as_str().unwrap().to_string();
    c.ok(&["delete", "pod", &victim]);
    eventually("the endpoint to go", Duration::from_secs(10), || {
        let ep = c.ok(&["get", "endpoints", "web"]);
        (!ep.contains(&victim_ip)).then_some(())
    });
    let seen = spread(&c, "client", "http://web/", 60);
    assert!(
        !seen.contains_key(&victim),
        "requests still reach the deleted pod: {seen:?}"
    );
}

#[test]
fn node_ports_answer_on_every_node_and_local_policy_drops_elsewhere() {
    let c = Cluster::up(&["--nodes", "3"]);
    c.apply(&format!(
        "{WEB}---{CLIENT}---\n{}",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-np}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]\n"
    ));
    c.ready_pods("web", 3);
    c.ready_pods("client", 1);
    let nodes = c.items("nodes");
    let node_ips: Vec<String> = c.node_ips().iter().map(|ip| ip.to_string()).collect();
    for ip in &node_ips {
        let out = c.exec(
            "client",
            &["curl", "-s", "-m", "5", &format!("http://{ip}:30080/")],
        );
        assert!(
            out.status.success(),
            "NodePort on {ip}: {}",
            text(&out.stderr)
        );
    }
    assert!(c.ok(&["get", "svc", "web-np"]).contains("80:30080/TCP"));

    // One replica, Local policy: only its node answers; the others drop.
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: solo}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: node-1}\n  containers: [{name: c, image: podnet/http-echo}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: solo}\nspec:\n  type: NodePort\n  externalTrafficPolicy: Local\n  selector: {app: solo}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30081}]\n",
    );
    c.ready_pods("solo", 1);
    let node_ip = |name: &str| {
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .unwrap();
        n["status"]["addresses"][0]["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let client_ip = c.json(&["get", "pod", "client"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = c.exec(
        "client",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://{}:30081/", node_ip("node-1")),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let echo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        echo["client"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{client_ip}:")),
        "Local policy keeps the client address: {echo}"
    );
    let out = c.exec(
        "client",
        &[
            "curl",
            "-sS",
            "-m",
            "1",
            &format!("http://{}:30081/", node_ip("node-2")),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(28),
        "no local endpoint: dropped, not refused: {}",
        text(&out.stderr)
    );
}

#[test]
fn services_without_endpoints_refuse_and_show_empty_endpoints() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(&format!(
        "{CLIENT}---{}",
        WEB_SVC.replace("app: web", "app: nothing")
    ));
    c.ready_pods("client", 1);
    let ep = eventually("an Endpoints object", Duration::from_secs(10), || {
        let out = c.run(&["get", "endpoints", "web"]);
        out.status.success().then(|| text(&out.stdout))
    });
    assert!(ep.lines().nth(1).unwrap().contains("<none>"), "{ep}");
    // And says why, on stderr (stdout stays kubectl's table).
    let out = c.run(&["get", "endpoints", "web"]);
    assert!(
        text(&out.stderr).contains("hint: no pod matches the selector app=nothing of Service web"),
        "{}",
        text(&out.stderr)
    );
    let out = c.exec("client", &["curl", "-sS", "-m", "5", "http://web/"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "no endpoints: refused: {}",
        text(&out.stderr)
    );
    let both = c.ok(&["get", "svc,ep"]);
    assert!(
        both.contains("CLUSTER-IP") && both.contains("ENDPOINTS"),
        "{both}"
    );
    let described = c.ok(&["describe", "svc", "web"]);
    for want in [
        "Selector:",
        "app=nothing",
        "IP:",
        "Port:",
        "http  80/TCP",
        "Endpoints:",
        "<none>",
    ] {
        assert!(
            described.contains(want),
            "{want} missing from:\n{described}"
        );
    }
}

#[test]
fn invalid_services_are_rejected_with_the_field_path_and_allocate_nothing() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: taken}\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.50\n  ports: [{port: 80, nodePort: 30090}]\n");
    let before = c.items("services").len();
    for (spec, path) in [
        ("ports: [{port: 0}]", "spec.ports[0].port"),
        (
            "ports: [{port: 80, targetPort: a-very-long-port-name}]",
            "spec.ports[0].targetPort",
        ),
        ("type: Gateway\n  ports: [{port: 80}]", "spec.type"),
        (
            "type: NodePort\n  ports: [{port: 80, nodePort: 40000}]",
            "spec.ports[0].nodePort",
        ),
        (
            "type: NodePort\n  ports: [{port: 80, nodePort: 30090}]",
            "spec.ports[0].nodePort",
        ),
        (
            "clusterIP: 192.168.1.1\n  ports: [{port: 80}]",
            "spec.clusterIP",
        ),
        (
            "clusterIP: 10.96.0.50\n  ports: [{port: 80}]",
            "spec.clusterIP",
        ),
    ] {
        let manifest =
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: bad}}\nspec:\n  {spec}\n");
        let out = c.run_stdin(&["apply", "-f", "-"], &manifest);
        assert_eq!(out.status.code(), Some(64), "{spec}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(path),
            "{spec}: error must name {path}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(c.items("services").len(), before, "nothing may be created");
}

#[test]
fn udp_services_answer_from_the_address_that_was_asked() {
    let c = Cluster::up(&["--nodes", "3"]);
    c.apply(&format!(
        "{CLIENT}---\n{}",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: echo}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: echo}}\n  template:\n    metadata: {labels: {app: echo}}\n    spec:\n      containers: [{name: c, image: podnet/udp-echo, ports: [{containerPort: 9000, protocol: UDP}]}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  type: NodePort\n  selector: {app: echo}\n  ports: [{port: 53, targetPort: 9000, protocol: UDP, nodePort: 30053}]\n"
    ));
    c.ready_pods("echo", 2);
    c.ready_pods("client", 1);
    // Through the ClusterIP by name: the reply must come from the ClusterIP
    // (the UDP socket is connected to it, as a resolver's is).
    let out = c.exec("client", &["nc", "-zuv", "-w", "2", "echo", "53"]);
    assert!(out.status.success(), "ClusterIP UDP: {}", text(&out.stderr));
    for n in c.items("nodes") {
        let ip = n["status"]["addresses"][0]["address"]
            .as_str()
            .unwrap()
            .to_string();
        let out = c.exec("client", &["nc", "-zuv", "-w", "2", &ip, "30053"]);
        assert!(
            out.status.success(),
            "UDP NodePort on {ip}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn selectorless_services_use_user_managed_endpoint_slices() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{CLIENT}"));
    let pods = c.ready_pods("web", 3);
    c.ready_pods("client", 1);
    let ip = pods[0]["status"]["podIP"].as_str().unwrap();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: manual}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels: {{kubernetes.io/service-name: manual}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
"#
    ));
    let echo = eventually(
        "the manual endpoint to serve",
        Duration::from_secs(10),
        || {
            let out = c.exec("client", &["curl", "-s", "-m", "2", "http://manual/"]);
            out.status
                .success()
                .then(|| serde_json::from_slice::<Value>(&out.stdout).ok())
                .flatten()
        },
    );
    assert_eq!(echo["podIP"], ip);
    assert!(
        c.ok(&["get", "endpointslices"]).contains("manual-1"),
        "the controller must leave it alone"
    );
}
