//! Cluster DNS beyond the cluster zone: names outside it are forwarded to
//! the nodes' outside resolver (`--external NAME=IP`), from a pod and from
//! the host, ExternalName Services pointing outside resolve to the CNAME
//! and the target's address, and the ndots:5 search path costs a query per
//! search suffix, as the DNS pods' own `/metrics` counts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{Cluster, eventually, text};
use crate::services::CLIENT;

const EXT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: api.example.com
"#;

fn lines(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = text(out)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

/// The sum over every DNS pod of each counter line of its `/metrics`,
/// scraped from the client pod.
fn dns_metrics(c: &Cluster) -> BTreeMap<String, u64> {
    let pods = c.json(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"]);
    let ips: Vec<String> = pods["items"]
        .as_array()
        .expect("pod list")
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect();
    assert!(!ips.is_empty(), "DNS pods have IPs");
    let mut sums = BTreeMap::new();
    for ip in ips {
        let url = format!("http://{ip}:9153/metrics");
        let out = c.exec("client", &["curl", "-s", "-m", "5", &url]);
        assert!(out.status.success(), "{url}: {}", text(&out.stderr));
        for line in text(&out.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: u64 = value.parse().expect("a counter");
            *sums.entry(series.to_string()).or_default() += value;
        }
    }
    sums
}

fn counter(m: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    m.iter()
        .filter(|(series, _)| series.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn names_outside_the_cluster_are_forwarded_to_the_outside_world() {
    let c = Cluster::up(&["--nodes", "2", "--external", "api.example.com=203.0.113.10"]);
    c.apply(&format!("{CLIENT}---{EXT}"));
    c.ready_pods("client", 1);
    let dig = |args: &[&str]| c.exec("client", &[&["dig"], args].concat());

    // An outside name: its address, relayed from the outside resolver.
    let found = eventually(
        "api.example.com to resolve",
        Duration::from_secs(20),
        || {
            let out = dig(&["+short", "api.example.com"]);
            (lines(&out.stdout) == ["203.0.113.10"]).then_some(out)
        },
    );
    assert!(found.status.success());
    let out = c.exec("client", &["nslookup", "api.example.com"]);
    assert!(
        text(&out.stdout).contains("Name:\tapi.example.com\nAddress: 203.0.113.10\n"),
        "{}",
        text(&out.stdout)
    );
    // A name that exists nowhere: NXDOMAIN (not REFUSED), with the
    // upstream's SOA in the authority section.
    let out = dig(&["nosuch.example.com"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("status: NXDOMAIN"), "{stdout}");
    assert!(stdout.contains("AUTHORITY: 1"), "{stdout}");
    assert!(stdout.contains("SOA"), "{stdout}");
    // The ExternalName Service: its CNAME, then the target's A.
    assert_eq!(
        lines(&dig(&["+short", "ext.default.svc.cluster.local"]).stdout),
        ["203.0.113.10", "api.example.com."]
    );
    let out = dig(&["ext.default.svc.cluster.local"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("status: NOERROR") && stdout.contains("ANSWER: 2"),
        "{stdout}"
    );

    // From the host, through a node's host DNS port: the same.
    let info = c.info();
    let addr = info["dns"]["address"]
        .as_str()
        .expect("cluster-info shows the DNS address")
        .to_string();
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let host_dig = |args: &[&str]| {
        let out = std::process::Command::new("dig")
            .args([&format!("@{ip}"), "-p", port, "+time=3", "+tries=2"])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)");
        text(&out.stdout)
    };
    assert_eq!(
        host_dig(&["+short", "api.example.com"]).trim(),
        "203.0.113.10"
    );
    assert_eq!(
        host_dig(&["+tcp", "+short", "api.example.com"]).trim(),
        "203.0.113.10",
        "over TCP too"
    );
    let nx = host_dig(&["nosuch.example.com"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let mut ext: Vec<String> = host_dig(&["+short", "ext.default.svc.cluster.local"])
        .lines()
        .map(String::from)
        .collect();
    ext.sort();
    assert_eq!(ext, ["203.0.113.10", "api.example.com."]);

    // The search path: api.example.com has 2 dots, fewer than ndots:5, so
    // the pod's resolver tries it under each of its 3 search suffixes
    // first (each NXDOMAIN from the cluster zone) and only then as is
    // (forwarded once). The DNS pods saw every one of those queries.
    let before = dns_metrics(&c);
    let out = dig(&["+search", "+short", "api.example.com"]);
    assert_eq!(lines(&out.stdout), ["203.0.113.10"]);
    let after = dns_metrics(&c);
    let delta = |prefix: &str| counter(&after, prefix) - counter(&before, prefix);
    assert_eq!(delta("coredns_dns_requests_total{"), 4, "{after:#?}");
    assert_eq!(
        delta("coredns_dns_responses_total{server=\"dns://:53\",zone=\".\",rcode=\"NXDOMAIN\"}"),
        3,
        "one NXDOMAIN per search suffix: {after:#?}"
    );
    assert_eq!(
        delta("coredns_dns_responses_total{server=\"dns://:53\",zone=\".\",rcode=\"NOERROR\"}"),
        1
    );
    assert_eq!(
        delta("coredns_forward_requests_total{to=\"192.0.2.53:53\"}"),
        1,
        "only the name as is goes upstream: {after:#?}"
    );
    // An absolute name skips the search list: one query, forwarded.
    let before = after;
    let out = dig(&["+search", "+short", "api.example.com."]);
    assert_eq!(lines(&out.stdout), ["203.0.113.10"]);
    let after = dns_metrics(&c);
    let delta = |prefix: &str| counter(&after, prefix) - counter(&before, prefix);
    assert_eq!(delta("coredns_dns_requests_total{"), 1);
    assert_eq!(delta("coredns_forward_requests_total{"), 1);
}
