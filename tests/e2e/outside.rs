//! The emulated outside world serving traffic: `--external
//! NAME=IP,serve=IMAGE` runs a built-in image at that address on every
//! node, a pod reaches it by name (the outside resolver) and by address
//! through its node, masqueraded to the node's InternalIP as
//! ip-masq-agent does in a kind cluster, while pod-to-pod and ClusterIP
//! traffic keeps the pod's IP; an external address that serves nothing
//! is a blackhole; an ExternalName Service pointing at a served name
//! reaches it.

use std::time::Duration;

use serde_json::Value;

use crate::dnsforward::EXT;
use crate::harness::{Cluster, eventually, text};
use crate::pods::WEB;
use crate::services::{CLIENT, WEB_SVC};

/// The http-echo answer to `curl URL` from the client pod, once it comes.
fn echo(c: &Cluster, url: &str) -> Value {
    eventually(&format!("{url} to answer"), Duration::from_secs(20), || {
        let out = c.exec("client", &["curl", "-s", "-m", "5", url]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    })
}

/// The IP part of the client address http-echo saw.
fn client_ip(answer: &Value) -> String {
    let client = answer["client"].as_str().expect("client address");
    client
        .rsplit_once(':')
        .map(|(ip, _)| ip.to_owned())
        .expect("IP:PORT")
}

#[test]
fn pods_reach_served_outside_hosts_as_their_node() {
    let c = Cluster::up(&[
        "--nodes",
        "2",
        "--external",
        "api.example.com=203.0.113.10,serve=podnet/http-echo",
        "--external",
        "echo.example.com=203.0.113.20,serve=podnet/udp-echo",
        "--external",
        "dark.example.com=203.0.113.30",
    ]);
    c.apply(&format!("{CLIENT}---{WEB}---{WEB_SVC}---{EXT}"));
    let client = c.ready_pods("client", 1).remove(0);
    let web = c.ready_pods("web", 3);
    let pod_ip = client["status"]["podIP"].as_str().expect("pod IP");
    let node = client["spec"]["nodeName"].as_str().expect("node name");
    let node_ip = c.json(&["get", "node", node])["status"]["addresses"]
        .as_array()
        .expect("node addresses")
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .expect("InternalIP")
        .to_owned();
    assert_ne!(pod_ip, node_ip);

    // By name and by address: the outside host answers, and sees the
    // client pod's node, not the pod.
    for url in ["http://api.example.com:8080/", "http://203.0.113.10:8080/"] {
        let answer = echo(&c, url);
        assert_eq!(answer["podIP"], "203.0.113.10", "{url}: {answer}");
        assert_eq!(client_ip(&answer), node_ip, "{url}: masqueraded: {answer}");
    }
    // The ExternalName Service: the CNAME, the outside address, the host.
    let answer = echo(&c, "http://ext.default.svc.cluster.local:8080/");
    assert_eq!(answer["podIP"], "203.0.113.10", "{answer}");
    assert_eq!(answer["host"], "ext.default.svc.cluster.local:8080");
    assert_eq!(client_ip(&answer), node_ip);

    // Inside the cluster nothing is masqueraded: a pod and a ClusterIP
    // backend see the client pod's IP.
    let web_ip = web[0]["status"]["podIP"].as_str().expect("web pod IP");
    let answer = echo(&c, &format!("http://{web_ip}:8080/"));
    assert_eq!(client_ip(&answer), pod_ip, "pod to pod: {answer}");
    let answer = echo(&c, "http://web/");
    assert_eq!(client_ip(&answer), pod_ip, "pod to ClusterIP: {answer}");

    // UDP: the udp-echo's reply comes back to the pod, from the address
    // it asked (nc counts only a reply from there).
    let out = c.exec("client", &["nc", "-zuv", "-w", "2", "203.0.113.20", "9000"]);
    assert!(
        out.status.success(),
        "udp to the outside: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // An external address that serves nothing, by address and by name:
    // the flow goes nowhere, curl times out (28).
    for url in ["http://203.0.113.30:8080/", "http://dark.example.com:8080/"] {
        let out = c.exec("client", &["curl", "-s", "--max-time", "2", url]);
        assert_eq!(out.status.code(), Some(28), "{url}: {}", text(&out.stderr));
    }
}
