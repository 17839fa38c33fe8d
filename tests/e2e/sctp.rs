//! SCTP through the real binary: `podnet/tcp-echo` serving SCTP and TCP on
//! one port behind a NodePort Service with an SCTP and a TCP port of the
//! same number, reached from a toolbox pod with `nc --sctp` at the
//! ClusterIP, the Service name and every node's NodePort; an association
//! nothing accepts is refused; a NetworkPolicy admitting only SCTP/5000
//! keeps SCTP flowing while TCP to the same port is dropped.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually, text};

/// Two echo pods (one per node, the scheduler spreads them) serving TCP
/// and SCTP on 5000, and Service `assoc` with both protocols on 5000.
const ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: sctp-echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: sctp-echo}}
  template:
    metadata: {labels: {app: sctp-echo}}
    spec:
      containers:
        - name: echo
          image: podnet/tcp-echo
          args: ["--sctp", "--port", "5000"]
          ports:
            - {name: echo, containerPort: 5000}
            - {name: echo-sctp, containerPort: 5000, protocol: SCTP}
          readinessProbe: {tcpSocket: {port: 5000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: assoc}
spec:
  type: NodePort
  selector: {app: sctp-echo}
  ports:
    - {name: sctp, port: 5000, protocol: SCTP, targetPort: echo-sctp}
    - {name: tcp, port: 5000, protocol: TCP, targetPort: echo}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {containers: [{name: toolbox, image: podnet/toolbox}]}
"#;

/// Ingress to the echo pods on SCTP/5000 only.
const SCTP_ONLY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp-only}
spec:
  podSelector: {matchLabels: {app: sctp-echo}}
  ingress:
    - ports:
        - {port: 5000, protocol: SCTP}
"#;

/// `nc -zv -w 2 [flags] HOST PORT` from the client: exit code and stderr.
fn nc_check(c: &Cluster, flags: &[&str], host: &str, port: &str) -> (Option<i32>, String) {
    let out = c.exec(
        "client",
        &[&["nc", "-zv", "-w", "2"], flags, &[host, port]].concat(),
    );
    (out.status.code(), text(&out.stderr))
}

fn node_port(svc: &Value, protocol: &str) -> String {
    svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["protocol"] == protocol)
        .and_then(|p| p["nodePort"].as_u64())
        .expect("a nodePort")
        .to_string()
}

#[test]
fn sctp_services_are_reached_with_nc_sctp_and_an_sctp_policy_admits_only_sctp() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(ECHO);
    let echoes = c.ready_pods("sctp-echo", 2);
    c.ready_pods("client", 1);
    let svc = c.json(&["get", "svc", "assoc"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().expect("a ClusterIP");
    let (sctp_np, tcp_np) = (node_port(&svc, "SCTP"), node_port(&svc, "TCP"));
    assert_eq!(
        sctp_np, tcp_np,
        "one port number on two protocols shares a NodePort"
    );
    let listed = c.ok(&["get", "svc", "assoc"]);
    assert!(listed.contains(&format!("5000:{sctp_np}/SCTP")), "{listed}");

    // The ClusterIP, by address and by name, over SCTP.
    let (code, stderr) = nc_check(&c, &["--sctp"], cluster_ip, "5000");
    assert_eq!(
        (code, stderr.as_str()),
        (
            Some(0),
            format!("Connection to {cluster_ip} 5000 port [sctp/*] succeeded!\n").as_str()
        )
    );
    assert_eq!(nc_check(&c, &["--sctp"], "assoc", "5000").0, Some(0));
    // A conversation: the echo comes back over the association.
    let out = c.run_stdin(
        &[
            "exec", "-i", "client", "--", "nc", "--sctp", "-w", "2", "assoc", "5000",
        ],
        "hello over sctp\n",
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "hello over sctp\n".to_string()),
        "{}",
        text(&out.stderr)
    );
    // Each echo pod directly (one of them on the other node), and each
    // node's NodePort.
    for pod in &echoes {
        let ip = pod["status"]["podIP"].as_str().expect("podIP");
        assert_eq!(nc_check(&c, &["--sctp"], ip, "5000").0, Some(0), "{ip}");
    }
    for ip in c.node_ips() {
        let ip = ip.to_string();
        assert_eq!(
            nc_check(&c, &["--sctp"], &ip, &sctp_np).0,
            Some(0),
            "NodePort on {ip}"
        );
    }
    // Nothing listens on SCTP 5001 of a pod: ABORT, refused at once.
    let ip = echoes[0]["status"]["podIP"].as_str().expect("podIP");
    let (code, stderr) = nc_check(&c, &["--sctp"], ip, "5001");
    assert_eq!(code, Some(1));
    assert!(
        stderr.ends_with("(sctp) failed: Connection refused\n"),
        "{stderr}"
    );
    // Before any policy, TCP on the same port answers too.
    assert_eq!(nc_check(&c, &[], cluster_ip, "5000").0, Some(0));

    assert!(
        c.apply(SCTP_ONLY)
            .contains("networkpolicy/sctp-only created")
    );
    // Once the nodes enforce it, TCP to 5000 is dropped (no answer: nc
    // times out, curl 28) while SCTP to 5000 still gets through.
    eventually(
        "the SCTP-only policy enforced",
        Duration::from_secs(20),
        || {
            let (code, stderr) = nc_check(&c, &[], cluster_ip, "5000");
            (code == Some(1) && stderr.contains("timed out")).then_some(())
        },
    );
    for host in [cluster_ip, ip] {
        let (code, stderr) = nc_check(&c, &[], host, "5000");
        assert_eq!(code, Some(1), "tcp to {host}: {stderr}");
        assert!(
            stderr.contains("(tcp) timed out"),
            "tcp to {host}: {stderr}"
        );
        assert_eq!(
            nc_check(&c, &["--sctp"], host, "5000").0,
            Some(0),
            "sctp to {host}"
        );
    }
    let curl = c.exec(
        "client",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            &format!("http://{cluster_ip}:5000/"),
        ],
    );
    assert_eq!(curl.status.code(), Some(28), "{}", text(&curl.stderr));

    // The flow log tells the two protocols' verdicts apart.
    let flows = c.json(&["flows", "--pod", "client"]);
    let judged: Vec<(String, String)> = flows["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|f| {
            (
                f["protocol"].as_str().unwrap_or("").to_string(),
                f["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [("SCTP", "FORWARDED"), ("TCP", "DROPPED")] {
        assert!(
            judged.iter().any(|(p, v)| (p.as_str(), v.as_str()) == want),
            "{want:?} in {judged:?}"
        );
    }
}
