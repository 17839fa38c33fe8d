//! Cluster DNS beyond the cluster zone: names outside it are forwarded to
//! the nodes' outside resolver (`--external NAME=IP`), from a pod and from
//! the host, ExternalName Services pointing outside resolve to the CNAME
//! and the target's address, and the ndots:5 search path costs a query per
//! search suffix, as the DNS pods' own `/metrics` counts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{Cluster, eventually, text};
use crate::services::CLIENT;

/// An ExternalName Service `ext` for the outside name api.example.com.
pub const EXT: &str = r#"
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
    let host_dig = |args: &[&str]| c.host_dig(3, args);
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

/// A real resolver on loopback, as the host's would be: it answers from
/// its own names and counts what it was asked.
struct HostResolver {
    addr: std::net::SocketAddr,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostResolver {
    fn start(names: &[(&str, std::net::Ipv4Addr)]) -> HostResolver {
        use podnet_pod::dns::outside::{OutsideZone, handle_outside};
        let zone = OutsideZone::new(names.iter().copied()).expect("valid names");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local addr");
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (asked2, stop2) = (asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                // The question's name, for the test to see.
                asked2.lock().unwrap().push(question_name(&buf[..n]));
                if let Some(reply) = handle_outside(&zone, &buf[..n], true) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        HostResolver {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for HostResolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The first question's name of a DNS message, lowercase with dots.
fn question_name(message: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut at = 12;
    while let Some(&len) = message.get(at) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let label = message
            .get(at + 1..at + 1 + usize::from(len))
            .unwrap_or_default();
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + usize::from(len);
    }
    labels.join(".")
}

#[test]
fn a_real_resolver_on_the_host_answers_what_external_does_not_list() {
    let host = HostResolver::start(&[("www.example.org", "198.51.100.7".parse().unwrap())]);
    let upstream = host.addr.to_string();
    let c = Cluster::up(&[
        "--nodes",
        "1",
        "--external",
        "api.example.com=203.0.113.10",
        "--dns-upstream",
        &upstream,
    ]);
    c.apply(CLIENT);
    c.ready_pods("client", 1);
    let dig = |args: &[&str]| c.exec("client", &[&["dig"], args].concat());
    // Not listed: relayed to the host's resolver, which knows it.
    eventually(
        "www.example.org to resolve",
        Duration::from_secs(20),
        || (lines(&dig(&["+short", "www.example.org"]).stdout) == ["198.51.100.7"]).then_some(()),
    );
    assert!(
        host.asked().contains(&"www.example.org".to_string()),
        "{:?}",
        host.asked()
    );
    // Listed: the emulated outside answers, the host is not asked.
    assert_eq!(
        lines(&dig(&["+short", "api.example.com"]).stdout),
        ["203.0.113.10"]
    );
    assert!(
        !host.asked().contains(&"api.example.com".to_string()),
        "{:?}",
        host.asked()
    );
    // The host's NXDOMAIN is relayed as it is.
    let out = dig(&["nosuch.example.org"]);
    assert!(
        text(&out.stdout).contains("status: NXDOMAIN"),
        "{}",
        text(&out.stdout)
    );
    assert!(host.asked().contains(&"nosuch.example.org".to_string()));
}
