//! The resolv.conf a node forms for each `dnsPolicy`, with `dnsConfig`
//! merged in, as `cat /etc/resolv.conf` shows it in the pod, and the pod's
//! stub resolver following it: nameservers in order, the search list and
//! `ndots` it says.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, eventually, text};
use crate::pods::WEB;
use crate::services::WEB_SVC;

/// The node's own resolv.conf: a nameserver that leads nowhere (traffic to
/// it is dropped), then the cluster DNS; a search domain; options.
const NODE_RESOLV_CONF: &str = "# the emulated node's resolver\n\
    nameserver 10.255.0.1\n\
    nameserver 10.96.0.10\n\
    search corp.example.\n\
    options ndots:2 edns0\n";

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: cluster-first, labels: {app: dnspolicy}}
spec:
  containers: [{name: toolbox, image: podnet/toolbox}]
---
apiVersion: v1
kind: Pod
metadata: {name: merged, labels: {app: dnspolicy}}
spec:
  dnsConfig:
    nameservers: [10.0.0.53, 10.0.0.54, 10.0.0.55]
    searches: [extra.example, svc.cluster.local]
    options: [{name: ndots, value: "2"}, {name: attempts, value: "3"}, {name: edns0}]
  containers: [{name: toolbox, image: podnet/toolbox}]
---
apiVersion: v1
kind: Pod
metadata: {name: host-network, labels: {app: dnspolicy}}
spec:
  hostNetwork: true
  containers: [{name: toolbox, image: podnet/toolbox}]
---
apiVersion: v1
kind: Pod
metadata: {name: host-network-cluster, labels: {app: dnspolicy}}
spec:
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  containers: [{name: toolbox, image: podnet/toolbox}]
---
apiVersion: v1
kind: Pod
metadata: {name: default, labels: {app: dnspolicy}}
spec:
  dnsPolicy: Default
  dnsConfig:
    options: [{name: ndots, value: "1"}, {name: attempts, value: "1"}]
  containers: [{name: toolbox, image: podnet/toolbox}]
---
apiVersion: v1
kind: Pod
metadata: {name: none, labels: {app: dnspolicy}}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [svc.cluster.local]
  containers: [{name: toolbox, image: podnet/toolbox}]
"#;

fn exec_ok(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let out = c.exec(pod, cmd);
    assert!(
        out.status.success(),
        "{cmd:?} in {pod}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn every_dns_policy_gets_the_kubelet_resolv_conf_and_resolves_by_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&node_resolv_conf, NODE_RESOLV_CONF).expect("write resolv.conf");
    let c = Cluster::up(&[
        "--nodes",
        "1",
        "--resolv-conf",
        node_resolv_conf.to_str().expect("utf-8 path"),
    ]);
    c.apply(&format!("{WEB}---{WEB_SVC}"));
    c.apply(PODS);
    c.ready_pods("dnspolicy", 6);
    let resolv_conf = |pod: &str| exec_ok(&c, pod, &["cat", "/etc/resolv.conf"]);

    let cluster_first = "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
         nameserver 10.96.0.10\n\
         options ndots:5 timeout:2\n";
    // ClusterFirst: the cluster DNS, the cluster's search list then the
    // node's, ndots:5 (not the node's options).
    assert_eq!(resolv_conf("cluster-first"), cluster_first);
    // ClusterFirstWithHostNet on the host network: the same.
    assert_eq!(resolv_conf("host-network-cluster"), cluster_first);
    // dnsConfig appended: searches without duplicates, nameservers cut to
    // three (the cluster DNS first), options merged by name with
    // dnsConfig's value.
    assert_eq!(
        resolv_conf("merged"),
        "search default.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\n\
         nameserver 10.96.0.10\n\
         nameserver 10.0.0.53\n\
         nameserver 10.0.0.54\n\
         options ndots:2 attempts:3 edns0 timeout:2\n"
    );
    let node = "search corp.example\n\
         nameserver 10.255.0.1\n\
         nameserver 10.96.0.10\n\
         options ndots:2 edns0 timeout:2\n";
    // ClusterFirst on the host network falls back to Default: the node's.
    assert_eq!(resolv_conf("host-network"), node);
    // Default: the node's, dnsConfig's ndots in place of the node's and
    // its attempts added.
    assert_eq!(
        resolv_conf("default"),
        "search corp.example\n\
         nameserver 10.255.0.1\n\
         nameserver 10.96.0.10\n\
         options ndots:1 edns0 attempts:1 timeout:2\n"
    );
    // None: dnsConfig only.
    assert_eq!(
        resolv_conf("none"),
        "search svc.cluster.local\nnameserver 10.96.0.10\noptions timeout:2\n"
    );

    // The merge cut a nameserver: a Warning Event on the pod, as the kubelet's.
    eventually(
        "the DNSConfigForming event",
        Duration::from_secs(10),
        || {
            c.json(&["get", "events"])["items"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["reason"] == "DNSConfigForming" && e["involvedObject"]["name"] == "merged"
                })
                .map(|e| {
                    assert_eq!(e["type"], "Warning");
                    assert_eq!(
                        e["message"],
                        "Nameserver limits were exceeded, some nameservers have been omitted, \
                     the applied nameserver line is: 10.96.0.10 10.0.0.53 10.0.0.54"
                    );
                })
        },
    );

    // None with a custom search domain: `kubernetes.default` resolves
    // through svc.cluster.local...
    let found = exec_ok(&c, "none", &["nslookup", "kubernetes.default"]);
    assert!(
        found.contains("Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n"),
        "{found}"
    );
    // ...and nothing the pod's namespace would add is searched: the search
    // name does not exist, and `kubernetes.` as is goes to the DNS pods'
    // upstreams, this node resolv.conf's, whose first leads nowhere and
    // whose second is the cluster DNS itself (a loop, not asked): SERVFAIL.
    let missing = c.exec("none", &["nslookup", "kubernetes"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stdout));
    assert!(
        text(&missing.stdout).contains("** server can't find kubernetes: SERVFAIL"),
        "{}",
        text(&missing.stdout)
    );

    // The stub resolver follows the file's order: in the Default pod the
    // first nameserver never answers (one try of `timeout:2`), then the
    // second, the cluster DNS, does.
    let started = Instant::now();
    let echo = exec_ok(
        &c,
        "default",
        &[
            "curl",
            "-s",
            "-m",
            "20",
            "http://web.default.svc.cluster.local/",
        ],
    );
    assert!(echo.contains("\"pod\""), "{echo}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A short name goes through the Default pod's search list, the node's:
    // no cluster domain in it, so not found.
    let out = c.exec("default", &["curl", "-s", "-m", "20", "http://web/"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    // The ClusterFirst pod finds the Service by its short name.
    let echo = exec_ok(
        &c,
        "cluster-first",
        &["curl", "-s", "-m", "5", "http://web/"],
    );
    assert!(echo.contains("\"pod\""), "{echo}");
}
