//! NetworkPolicy enforced through the real binary: the seeds'
//! `allow-frontend-only` policy (re-indented: the seed lost its
//! indentation, otherwise verbatim) admits only frontend pods to the
//! backend, judged on the real backend after DNAT (a ClusterIP gives the
//! pod IP's verdict), a label change is re-evaluated, `podnet flows` names
//! the dropping policy, the classic DNS outage of a default-deny egress
//! policy and its fix, and `podnet netpol matrix` on a grid of three
//! namespaces of three pods, checked cell by cell.

use std::time::Duration;

use crate::harness::{Cluster, eventually, text};
use crate::netpol::ALLOW_FRONTEND_ONLY;

const BACKEND: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: http}]
"#;

fn toolbox(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n\
         spec: {{containers: [{{name: toolbox, image: podnet/toolbox}}]}}\n"
    )
}

/// curl's exit code for `url` from `pod`, waiting at most `max_s`.
fn curl(c: &Cluster, pod: &str, url: &str, max_s: u32) -> Option<i32> {
    c.exec(
        pod,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            &max_s.to_string(),
            url,
        ],
    )
    .status
    .code()
}

#[test]
fn the_seeds_policy_admits_only_frontends_on_pod_ips_and_cluster_ips_alike() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{BACKEND}---\n{}---\n{}",
        toolbox("frontend", "frontend"),
        toolbox("other", "other")
    ));
    let backends = c.ready_pods("backend", 2);
    let pod_urls: Vec<String> = backends
        .iter()
        .map(|p| format!("http://{}:8080/", p["status"]["podIP"].as_str().unwrap()))
        .collect();
    c.ready_pods("frontend", 1);
    c.ready_pods("other", 1);
    // No policy: everyone reaches the backend.
    for url in &pod_urls {
        assert_eq!(curl(&c, "other", url, 5), Some(0), "{url}");
    }

    assert!(
        c.apply(ALLOW_FRONTEND_ONLY)
            .contains("networkpolicy/allow-frontend-only created")
    );
    // Once the nodes enforce it, other's connections get no answer (curl
    // 28, a drop), at both backends' pod IPs and at the ClusterIP.
    eventually("the policy enforced", Duration::from_secs(20), || {
        (curl(&c, "other", &pod_urls[0], 1) == Some(28)).then_some(())
    });
    for url in pod_urls
        .iter()
        .map(String::as_str)
        .chain(["http://backend/"])
    {
        assert_eq!(curl(&c, "other", url, 1), Some(28), "other -> {url}");
        assert_eq!(curl(&c, "frontend", url, 5), Some(0), "frontend -> {url}");
    }
    // Only port 8080 is opened, and only for ingress: the backend itself
    // still reaches out (its egress is not isolated).
    let refused_elsewhere = curl(&c, "frontend", &pod_urls[0].replace("8080", "9090"), 1);
    assert_eq!(refused_elsewhere, Some(28), "port 9090 is not allowed");

    // describe pod lists the policies that select it.
    let backend = backends[0]["metadata"]["name"].as_str().unwrap();
    let described = c.ok(&["describe", "pod", backend]);
    assert!(
        described.contains("Network Policies:  allow-frontend-only (Ingress)\n"),
        "{described}"
    );

    // The flow log names the policy that dropped other's flows.
    let flows = c.json(&["flows", "--verdict", "dropped", "--pod", "other"]);
    let dropped = flows["flows"].as_array().expect("flows");
    assert!(!dropped.is_empty(), "{flows}");
    for f in dropped {
        assert_eq!(f["verdict"], "DROPPED");
        assert_eq!(f["direction"], "ingress");
        assert_eq!(f["policies"][0], "default/allow-frontend-only", "{f}");
        assert_eq!(
            f["reason"],
            "isolated for ingress by default/allow-frontend-only, no rule allows"
        );
        assert_eq!(f["source"]["pod"], "default/other");
    }
    let lines = c.ok(&[
        "flows",
        "--verdict",
        "dropped",
        "--pod",
        "other",
        "--last",
        "1",
    ]);
    assert!(
        lines.contains("default/other (")
            && lines.contains(
                "TCP ingress DROPPED: isolated for ingress by default/allow-frontend-only"
            ),
        "{lines}"
    );

    // Every node counts what it decided, the log's evicted flows included.
    let counts = c.json(&["flows", "--counts"]);
    let nodes = counts["counters"].as_array().expect("counters");
    assert_eq!(nodes.len(), 2, "{counts}");
    let dropped: u64 = nodes
        .iter()
        .filter_map(|n| n["droppedIngress"].as_u64())
        .sum();
    assert!(dropped as usize >= 3, "other's drops, counted: {counts}");
    let table = c.ok(&["flows", "--counts"]);
    assert!(
        table.starts_with("NODE     FORWARDED   DROPPED-EGRESS   DROPPED-INGRESS\n"),
        "{table}"
    );

    // The dropped flow's journey has the node's verdict as a policy hop.
    let journeys = c.ok(&["trace", "--last", "100"]);
    assert!(
        journeys.lines().any(|l| l.contains(" policy ")
            && l.contains(
                "isolated for ingress by default/allow-frontend-only, no rule allows [dropped]"
            )),
        "{journeys}"
    );

    // A label change is re-evaluated: other becomes a frontend.
    c.apply(&toolbox("other", "frontend"));
    eventually("other relabelled admitted", Duration::from_secs(20), || {
        (curl(&c, "other", "http://backend/", 2) == Some(0)).then_some(())
    });
}

/// The classic outage: a default-deny egress policy also cuts the pod off
/// cluster DNS (which runs in pods behind kube-dns, so policy applies), and
/// curl cannot resolve the name (6) until an egress rule lets UDP and TCP
/// 53 through to kube-system's DNS pods.
#[test]
fn default_deny_egress_breaks_dns_until_port_53_is_allowed() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{BACKEND}---\n{}",
        toolbox("frontend", "frontend")
    ));
    let backends = c.ready_pods("backend", 2);
    let backend_ip = backends[0]["status"]["podIP"].as_str().unwrap().to_string();
    c.ready_pods("frontend", 1);
    assert_eq!(curl(&c, "frontend", "http://backend/", 5), Some(0));
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#,
    );
    // Fully qualified: one name to look up, not the search list's four.
    let fqdn = "http://backend.default.svc.cluster.local./";
    eventually("DNS cut off", Duration::from_secs(30), || {
        (curl(&c, "frontend", fqdn, 10) == Some(6)).then_some(())
    });
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns-and-backend}
spec:
  podSelector: {matchLabels: {app: frontend}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
  - to: [{podSelector: {matchLabels: {app: backend}}}]
    ports: [{port: http}]
"#,
    );
    eventually(
        "DNS and the backend allowed",
        Duration::from_secs(30),
        || (curl(&c, "frontend", "http://backend/", 5) == Some(0)).then_some(()),
    );
    // Anything else stays denied: another port of the backend.
    let other_port = format!("http://{backend_ip}:9090/");
    assert_eq!(curl(&c, "frontend", &other_port, 1), Some(28));
}

/// Three namespaces of pods a, b, c (the upstream e2e suite's grid), with
/// a default-deny ingress in y and a policy admitting x's pods to y/a:
/// `podnet netpol matrix` probes all 81 pairs and gets every cell right,
/// and `--expect` flags a wrong expectation.
#[test]
fn the_reachability_matrix_of_a_three_by_three_grid_is_right_cell_by_cell() {
    let c = Cluster::up(&["--nodes", "2"]);
    let mut yaml = String::new();
    for ns in ["x", "y", "z"] {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: \"{ns}\", labels: {{ns: \"{ns}\"}}}}\n---\n"
        ));
        for pod in ["a", "b", "c"] {
            yaml.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: \"{ns}\", labels: {{pod: {pod}}}}}\n\
                 spec: {{containers: [{{name: echo, image: podnet/http-echo, ports: [{{containerPort: 8080}}],\n\
                 readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}]}}\n---\n"
            ));
        }
    }
    c.apply(&yaml);
    eventually("nine pods running", Duration::from_secs(30), || {
        let running = ["x", "y", "z"]
            .iter()
            .map(|ns| {
                c.json(&["get", "pods", "-n", ns])["items"]
                    .as_array()
                    .map_or(0, |items| {
                        items
                            .iter()
                            .filter(|p| {
                                p["status"]["phase"] == "Running"
                                    && p["status"]["podIP"].is_string()
                            })
                            .count()
                    })
            })
            .sum::<usize>();
        (running == 9).then_some(())
    });
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "y"}
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-x, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "x"}}}]
"#,
    );
    let pods: Vec<String> = ["x", "y", "z"]
        .iter()
        .flat_map(|ns| ["a", "b", "c"].map(|p| format!("{ns}/{p}")))
        .collect();
    // Upstream's truth table: y's pods admit only themselves (a pod can
    // always reach itself) and, for y/a, x's pods.
    let allowed = |client: &str, server: &str| {
        client == server
            || !server.starts_with("y/")
            || (server == "y/a" && client.starts_with("x/"))
    };
    let matrix = eventually("the policies enforced", Duration::from_secs(30), || {
        let m = c.json(&["netpol", "matrix", "-n", "x,y,z", "--ports", "8080"]);
        let cell = |c: usize, s: usize| m["matrices"][0]["reachable"][c][s].as_bool();
        (cell(8, 3) == Some(false)).then_some(m)
    });
    let grid = &matrix["matrices"][0];
    assert_eq!(grid["pods"], serde_json::json!(pods));
    for (ci, client) in pods.iter().enumerate() {
        for (si, server) in pods.iter().enumerate() {
            assert_eq!(
                grid["reachable"][ci][si].as_bool(),
                Some(allowed(client, server)),
                "{client} -> {server}"
            );
        }
    }

    // The text form, saved and edited into a wrong expectation: z/a is
    // claimed to reach y/b. The comparison flags that cell and exits 1.
    let out = c.ok(&["netpol", "matrix", "-n", "x,y,z", "--ports", "8080"]);
    assert!(out.starts_with("tcp/8080\n"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expected.txt");
    let mut wrong: Vec<String> = out.lines().map(String::from).collect();
    let row = wrong
        .iter()
        .position(|l| l.starts_with("z/a "))
        .expect("row z/a");
    let mut cells: Vec<&str> = wrong[row].split_whitespace().collect();
    assert_eq!(cells[5], "X", "z/a -> y/b is blocked: {out}");
    cells[5] = ".";
    wrong[row] = cells.join(" ");
    std::fs::write(&expect, wrong.join("\n")).unwrap();
    let compared = c.run(&[
        "netpol",
        "matrix",
        "-n",
        "x,y,z",
        "--ports",
        "8080",
        "--expect",
        expect.to_str().unwrap(),
    ]);
    let shown = text(&compared.stdout);
    assert_eq!(compared.status.code(), Some(1), "{shown}");
    assert!(shown.contains("1 of 81 cells differ"), "{shown}");
    assert!(shown.contains("  z/a -> y/b: blocked"), "{shown}");

    // A namespace's labels are re-evaluated too: z labelled as x reaches y/a.
    let y_a = c.json(&["get", "pod", "a", "-n", "y"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let probe = || {
        c.run(&[
            "exec", "a", "-n", "z", "--", "nc", "-z", "-w", "1", &y_a, "8080",
        ])
        .status
        .code()
    };
    assert_eq!(probe(), Some(1), "z/a -> y/a is blocked before");
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: \"z\", labels: {ns: \"x\"}}\n");
    eventually("z admitted as x", Duration::from_secs(20), || {
        (probe() == Some(0)).then_some(())
    });
}

/// A LoadBalancer Service with `externalTrafficPolicy: Local` keeps the
/// client's address (the host's, 172.18.0.1), so an ipBlock rule decides
/// for traffic from outside the cluster: admitted while the block holds
/// the host, dropped (curl 28) once it holds only the pod network.
#[test]
fn local_traffic_policy_keeps_the_client_address_for_ip_block_rules() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{}---\n{}",
        BACKEND.replace(
            "  ports: [{port: 80, targetPort: http}]",
            "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: http}]"
        ),
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-the-host}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{ipBlock: {cidr: 172.18.0.0/16, except: [172.18.0.2/32, 172.18.0.3/32]}}]
"#
    ));
    c.ready_pods("backend", 2);
    let front = crate::edge::front(&c, "backend");
    let host_curl = |max_s: &str| {
        std::process::Command::new("curl")
            .args(["-sS", "-m", max_s, &format!("http://{front}/")])
            .output()
            .expect("run curl")
    };
    let answered = eventually("the host admitted", Duration::from_secs(20), || {
        let out = host_curl("2");
        out.status.success().then_some(out)
    });
    let echo: serde_json::Value = serde_json::from_slice(&answered.stdout).expect("echo json");
    assert!(
        echo["client"]
            .as_str()
            .unwrap_or_default()
            .starts_with("172.18.0.1:"),
        "Local keeps the client address: {echo}"
    );
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-the-host}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{ipBlock: {cidr: 10.244.0.0/16}}]
"#,
    );
    eventually("the host dropped", Duration::from_secs(20), || {
        (host_curl("1").status.code() == Some(28)).then_some(())
    });
}
