//! Cluster DNS: the Kubernetes DNS schema from a pod and from the host,
//! and DNS as a workload that can fail.

use std::time::Duration;

use crate::harness::{Cluster, eventually, text};
use crate::pods::WEB;
use crate::services::{CLIENT, WEB_SVC};

const MORE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
"#;

fn short(c: &Cluster, args: &[&str]) -> Vec<String> {
    let out = c.exec("client", &[&["dig", "+short"], args].concat());
    let mut v: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn pods_resolve_services_by_the_kubernetes_dns_schema() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{WEB_SVC}---{CLIENT}---{MORE}"));
    let pods = c.ready_pods("web", 3);
    c.ready_pods("client", 1);
    let svc_ip = c.json(&["get", "svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    let out = c.exec("client", &["nslookup", "web"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let ns = text(&out.stdout);
    assert!(
        ns.contains("web.default.svc.cluster.local") && ns.contains(&svc_ip),
        "{ns}"
    );
    assert!(ns.contains("10.96.0.10"), "the resolver is kube-dns: {ns}");

    assert_eq!(
        short(&c, &["web.default.svc.cluster.local"]),
        std::slice::from_ref(&svc_ip)
    );
    let srv = short(&c, &["_http._tcp.web.default.svc.cluster.local", "SRV"]);
    assert_eq!(srv, ["0 100 80 web.default.svc.cluster.local."], "{srv:?}");
    let mut pod_ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    pod_ips.sort();
    assert_eq!(
        short(&c, &["web-headless.default.svc.cluster.local"]),
        pod_ips,
        "headless: one A per ready pod"
    );
    let cname = short(&c, &["search.default.svc.cluster.local"]);
    assert_eq!(
        cname,
        [svc_ip.clone(), "web.default.svc.cluster.local.".to_string()],
        "CNAME and the in-cluster target's A"
    );
    let octets: Vec<&str> = svc_ip.split('.').rev().collect();
    assert_eq!(
        short(&c, &[&format!("{}.in-addr.arpa", octets.join(".")), "PTR"]),
        ["web.default.svc.cluster.local."]
    );
    let out = c.exec("client", &["dig", "nope.default.svc.cluster.local"]);
    assert!(
        text(&out.stdout).contains("status: NXDOMAIN"),
        "{}",
        text(&out.stdout)
    );

    // A name is all curl needs.
    let out = c.exec("client", &["curl", "-s", "-m", "5", "http://web/"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn the_host_reaches_cluster_dns_on_a_real_port() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{WEB_SVC}"));
    c.ready_pods("web", 3);
    let svc_ip = c.json(&["get", "svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let info = c.info();
    let addr = info["dns"]["address"]
        .as_str()
        .expect("cluster-info shows the DNS address")
        .to_string();
    assert!(c.ok(&["cluster-info"]).contains(&addr));
    let dig = |args: &[&str]| c.host_dig(2, args);
    let answer = eventually(
        "the DNS pods to answer the host",
        Duration::from_secs(20),
        || {
            let a = dig(&["+short", "web.default.svc.cluster.local"]);
            (a.trim() == svc_ip).then_some(a)
        },
    );
    assert_eq!(answer.trim(), svc_ip);
    assert!(
        dig(&["+tcp", "+short", "web.default.svc.cluster.local"]).contains(&svc_ip),
        "DNS over TCP too"
    );
    assert!(dig(&["kubernetes.default.svc.cluster.local"]).contains("10.96.0.1"));
    assert!(dig(&["nothing.default.svc.cluster.local"]).contains("status: NXDOMAIN"));
    // Outside the zone: forwarded to the outside resolver, which knows no
    // name here (none given with --external).
    assert!(
        dig(&["example.com"]).contains("status: NXDOMAIN"),
        "forwarded outside the zone"
    );
}

#[test]
fn dns_scaled_to_zero_fails_lookups_until_it_is_back() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{WEB_SVC}---{CLIENT}"));
    c.ready_pods("client", 1);
    eventually("a first lookup", Duration::from_secs(20), || {
        c.exec("client", &["nslookup", "web"])
            .status
            .success()
            .then_some(())
    });
    c.ok(&[
        "scale",
        "deployment",
        "coredns",
        "-n",
        "kube-system",
        "--replicas",
        "0",
    ]);
    let failed = eventually("lookups to fail", Duration::from_secs(20), || {
        let out = c.exec("client", &["nslookup", "web"]);
        (!out.status.success()).then(|| text(&out.stdout) + &text(&out.stderr))
    });
    assert!(
        failed.contains("no servers could be reached")
            || failed.contains("connection refused")
            || failed.contains("timed out"),
        "{failed}"
    );
    let out = c.exec("client", &["curl", "-sS", "-m", "5", "http://web/"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "curl cannot resolve: {}",
        text(&out.stderr)
    );
    c.ok(&[
        "scale",
        "deployment",
        "coredns",
        "-n",
        "kube-system",
        "--replicas",
        "2",
    ]);
    eventually("lookups to work again", Duration::from_secs(30), || {
        c.exec("client", &["nslookup", "web"])
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn headless_names_list_only_ready_pods_unless_not_ready_ones_are_published() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{WEB}---{CLIENT}---\n{}",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: never}
spec:
  replicas: 2
  selector: {matchLabels: {app: never}}
  template:
    metadata: {labels: {app: never}}
    spec:
      containers:
        - {name: c, image: podnet/http-echo, readinessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: never}
spec:
  clusterIP: None
  selector: {app: never}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: never-published}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: never}
  ports: [{name: http, port: 8080}]
"#
    ));
    c.ready_pods("web", 3);
    c.ready_pods("client", 1);
    let never: Vec<String> = eventually(
        "two running, never ready pods",
        Duration::from_secs(20),
        || {
            let pods = c.json(&["get", "pods", "-l", "app=never"])["items"]
                .as_array()
                .cloned()?;
            let running: Vec<String> = pods
                .iter()
                .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
                .collect();
            (running.len() == 2).then_some(running)
        },
    );
    let out = c.exec("client", &["dig", "never.default.svc.cluster.local"]);
    assert!(
        text(&out.stdout).contains("status: NXDOMAIN"),
        "no ready endpoint: NXDOMAIN\n{}",
        text(&out.stdout)
    );
    let mut want = never.clone();
    want.sort();
    let published = eventually(
        "published not-ready addresses",
        Duration::from_secs(10),
        || {
            let got = short(&c, &["never-published.default.svc.cluster.local"]);
            (got == want).then_some(got)
        },
    );
    assert_eq!(published, want);
}
