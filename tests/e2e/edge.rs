//! The edge load balancer, from the host: LoadBalancer Services get an
//! address from the pool and real listeners, forward TCP and UDP, follow
//! the traffic policies, survive a lost node and a killed edge process.
//!
//! Every cluster on the machine holds a LoadBalancer pool of its own, so a
//! Service gets its own port on its address unless something else on the
//! machine holds it; tests still read the address and the real port from
//! the Service's status, as a client must.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use podnet_lab::record::alive;

use crate::harness::{Cluster, eventually, is_ready, text};

const TCP_ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: tcp-echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: tcp-echo}}
  template:
    metadata: {labels: {app: tcp-echo}}
    spec:
      containers: [{name: c, image: podnet/tcp-echo, ports: [{containerPort: 9000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: tcp-echo}
spec:
  type: LoadBalancer
  selector: {app: tcp-echo}
  ports: [{port: 7000, targetPort: 9000}]
"#;

const UDP_ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: udp-echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: udp-echo}}
  template:
    metadata: {labels: {app: udp-echo}}
    spec:
      containers: [{name: c, image: podnet/udp-echo, ports: [{containerPort: 9000, protocol: UDP}]}]
---
apiVersion: v1
kind: Service
metadata: {name: udp-echo}
spec:
  type: LoadBalancer
  selector: {app: udp-echo}
  ports: [{port: 7053, targetPort: 9000, protocol: UDP}]
"#;

/// The http-echo `web` Deployment of the pods tests, with `n` replicas.
fn web(n: usize) -> String {
    crate::pods::WEB.replace("replicas: 3", &format!("replicas: {n}"))
}

/// A LoadBalancer Service in front of the `web` pods.
fn web_lb(name: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy}\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: http}}]\n"
    )
}

/// The host's address on the node network, as the nodes see the edge.
const HOST_IP: &str = "172.18.0.1";

/// `status.loadBalancer.ingress[0]` of Service `name`, once it has one
/// with an address and as many ports as the Service has.
fn ingress(c: &Cluster, name: &str) -> Value {
    eventually(
        &format!("a load balancer address for {name}"),
        Duration::from_secs(15),
        || {
            let svc = c.json(&["get", "svc", name]);
            let want = svc["spec"]["ports"].as_array()?.len();
            let ing = svc.pointer("/status/loadBalancer/ingress/0")?.clone();
            ing["ip"].as_str()?;
            (ing["ports"].as_array()?.len() == want).then_some(ing)
        },
    )
}

/// The address and real port of the first port of Service `name`.
pub(crate) fn front(c: &Cluster, name: &str) -> SocketAddr {
    addr_of(&ingress(c, name))
}

fn addr_of(ingress: &Value) -> SocketAddr {
    let ip: Ipv4Addr = ingress["ip"].as_str().unwrap().parse().unwrap();
    let port = ingress["ports"][0]["port"].as_u64().unwrap();
    SocketAddr::from((ip, u16::try_from(port).unwrap()))
}

/// The LoadBalancer pool `cluster-info` shows for `c`.
fn pool(c: &Cluster) -> ipnet::Ipv4Net {
    c.info()["edge"]["lbPool"]
        .as_str()
        .expect("lbPool in cluster-info")
        .parse()
        .expect("a CIDR")
}

/// Sends `msg` on a new TCP connection and reads back as many bytes.
fn tcp_echo(addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(msg)?;
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back)?;
    Ok(back)
}

/// One `curl -m 5` from the host: exit code, body, how long it took.
struct Reply {
    code: Option<i32>,
    body: Vec<u8>,
    took: Duration,
}

impl Reply {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn echo(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("echo json ({e}): {}", text(&self.body)))
    }
}

fn curl(addr: SocketAddr) -> Reply {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-f", "-m", "5", &format!("http://{addr}/")])
        .output()
        .expect("run curl");
    Reply {
        code: out.status.code(),
        body: out.stdout,
        took: start.elapsed(),
    }
}

/// The address part of the echo's `client` (`ip:port`).
fn client_ip(echo: &Value) -> Ipv4Addr {
    let client = echo["client"].as_str().expect("client in echo");
    client
        .rsplit_once(':')
        .and_then(|(ip, _)| ip.parse().ok())
        .unwrap_or_else(|| panic!("client is not ip:port: {echo}"))
}

fn kill9(pid: u32) {
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success(),
        "kill -9 {pid}"
    );
}

/// The edge's process, as `cluster-info` shows it.
fn edge_pid(c: &Cluster) -> u32 {
    let pid = c.info()["edge"]["pid"].as_u64().expect("edge pid shown");
    u32::try_from(pid).unwrap()
}

#[test]
fn load_balancers_get_pool_addresses_forward_tcp_and_udp_and_release_them() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{TCP_ECHO}---{UDP_ECHO}"));
    c.ready_pods("tcp-echo", 2);
    c.ready_pods("udp-echo", 2);

    let tcp = ingress(&c, "tcp-echo");
    let tcp_ip: Ipv4Addr = tcp["ip"].as_str().unwrap().parse().unwrap();
    assert!(pool(&c).contains(&tcp_ip), "{tcp}");
    assert_eq!(tcp["ports"][0]["protocol"], "TCP", "{tcp}");
    assert_eq!(
        tcp["ports"][0]["port"], 7000,
        "the Service's own port: {tcp}"
    );
    let table = c.ok(&["get", "svc", "tcp-echo"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("tcp-echo "))
        .unwrap_or_else(|| panic!("no tcp-echo row:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "LoadBalancer", "{table}");
    assert_eq!(row[3], tcp_ip.to_string(), "EXTERNAL-IP:\n{table}");
    assert!(row[4].starts_with("7000:"), "PORT(S):\n{table}");

    // Bytes go through to a pod and back, on several connections.
    let tcp_addr = addr_of(&tcp);
    for i in 0..10 {
        let msg = format!("hello edge {i}\n");
        let back = eventually(
            "a TCP echo through the edge",
            Duration::from_secs(10),
            || tcp_echo(tcp_addr, msg.as_bytes()).ok(),
        );
        assert_eq!(text(&back), msg);
    }

    // The second LoadBalancer has an address of its own.
    let udp = ingress(&c, "udp-echo");
    let udp_addr = addr_of(&udp);
    assert!(pool(&c).contains(&match udp_addr.ip() {
        std::net::IpAddr::V4(ip) => ip,
        other => panic!("{other}"),
    }));
    assert_ne!(udp_addr.ip(), tcp_addr.ip(), "{udp} and {tcp}");
    assert_eq!(udp["ports"][0]["protocol"], "UDP", "{udp}");

    // Datagrams come back, from the address and port that were asked.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for i in 0..5 {
        let msg = format!("datagram {i}");
        let (back, from) = eventually(
            "a UDP echo through the edge",
            Duration::from_secs(10),
            || {
                sock.send_to(msg.as_bytes(), udp_addr).ok()?;
                let mut buf = [0u8; 1500];
                // Stale answers to earlier tries are skipped.
                for _ in 0..4 {
                    let (n, from) = sock.recv_from(&mut buf).ok()?;
                    if buf[..n] == *msg.as_bytes() {
                        return Some((buf[..n].to_vec(), from));
                    }
                }
                None
            },
        );
        assert_eq!(text(&back), msg);
        assert_eq!(from, udp_addr, "the reply must come from the address asked");
    }

    // Deleting the Service closes its listener and frees its address.
    c.ok(&["delete", "svc", "tcp-echo"]);
    eventually(
        "the deleted Service's listener to refuse",
        Duration::from_secs(10),
        || match TcpStream::connect_timeout(&tcp_addr, Duration::from_secs(2)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        },
    );
    // The lowest free address again: the one just freed.
    c.apply(
        &TCP_ECHO
            .replace("name: tcp-echo}", "name: tcp-echo-2}")
            .replace("port: 7000", "port: 7001"),
    );
    let again = ingress(&c, "tcp-echo-2");
    assert_eq!(
        again["ip"].as_str(),
        Some(tcp_ip.to_string().as_str()),
        "the freed address is handed out again: {again}"
    );
    let back = eventually(
        "a TCP echo on the reused address",
        Duration::from_secs(10),
        || tcp_echo(addr_of(&again), b"again\n").ok(),
    );
    assert_eq!(back, b"again\n");
}

#[test]
fn traffic_policies_masquerade_or_keep_the_client_and_local_follows_the_endpoint() {
    let c = Cluster::up(&["--nodes", "3"]);
    c.apply(&format!(
        "{}---\n{}---\n{}",
        web(1),
        web_lb("web-cluster", "Cluster"),
        web_lb("web-local", "Local")
    ));
    let pod = c.ready_pods("web", 1).remove(0);
    let pod_node = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let nodes = c.node_ips();
    let cluster = front(&c, "web-cluster");
    let local = front(&c, "web-local");
    assert_ne!(cluster.ip(), local.ip());

    // Cluster: any node takes the connection and masquerades it.
    eventually("web-cluster to answer", Duration::from_secs(15), || {
        curl(cluster).ok().then_some(())
    });
    let mut via = std::collections::BTreeSet::new();
    for i in 0..30 {
        let r = curl(cluster);
        assert!(r.ok(), "Cluster request {i} failed: curl exit {:?}", r.code);
        let echo = r.echo();
        let ip = client_ip(&echo);
        assert!(
            nodes.contains(&ip) && ip.octets()[3] >= 2,
            "Cluster policy: the client is a node IP ({nodes:?}): {echo}"
        );
        assert_eq!(echo["node"], pod_node.as_str(), "{echo}");
        via.insert(ip);
    }
    assert!(
        via.len() >= 2,
        "Cluster policy spreads over nodes, not only the endpoint's: {via:?}"
    );

    // Local: only the endpoint's node gets connections, the client is kept.
    let svc = c.json(&["get", "svc", "web-local"]);
    let hc = svc["spec"]["healthCheckNodePort"].as_u64();
    assert!(
        hc.is_some_and(|p| (30000..=32767).contains(&p)),
        "healthCheckNodePort: {}",
        svc["spec"]
    );
    eventually("web-local to answer", Duration::from_secs(15), || {
        curl(local).ok().then_some(())
    });
    for i in 0..30 {
        let r = curl(local);
        assert!(
            r.ok(),
            "Local request {i} failed (the edge must only pick the endpoint's node): curl exit {:?}",
            r.code
        );
        let echo = r.echo();
        assert_eq!(
            client_ip(&echo).to_string(),
            HOST_IP,
            "Local policy keeps the client address: {echo}"
        );
        assert_eq!(echo["node"], pod_node.as_str(), "{echo}");
    }

    // No endpoint anywhere: both fail at once instead of hanging.
    c.ok(&["scale", "deployment", "web", "--replicas", "0"]);
    eventually("web-local to fail", Duration::from_secs(15), || {
        let r = curl(local);
        assert_ne!(r.code, Some(28), "a request without endpoints hung");
        (!r.ok()).then_some(())
    });
    // Between the pod's removal and the nodes' proxies learning of it, a
    // flow may still be sent to the vanished pod and meet silence (as on a
    // real network); once the endpoints are empty, failing is immediate.
    eventually("the endpoints to be empty", Duration::from_secs(15), || {
        let ep = c.ok(&["get", "endpoints"]);
        let empty = |name: &str| {
            ep.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .is_some_and(|l| l.contains("<none>"))
        };
        (empty("web-local") && empty("web-cluster")).then_some(())
    });
    let fails_fast = |r: &Reply| !r.ok() && r.code != Some(28) && r.took < Duration::from_secs(3);
    for addr in [local, cluster] {
        eventually(
            &format!("{addr} to fail at once"),
            Duration::from_secs(15),
            || fails_fast(&curl(addr)).then_some(()),
        );
    }
    for addr in [local, cluster, local, cluster, local, cluster] {
        let r = curl(addr);
        assert!(
            fails_fast(&r),
            "{addr} without endpoints must fail at once, not hang: curl exit {:?} after {:?}",
            r.code,
            r.took
        );
    }

    // Back to one replica: Local serves again, wherever the pod landed.
    c.ok(&["scale", "deployment", "web", "--replicas", "1"]);
    let pod = c.ready_pods("web", 1).remove(0);
    let echo = eventually("web-local to answer again", Duration::from_secs(15), || {
        let r = curl(local);
        r.ok().then(|| r.echo())
    });
    assert_eq!(client_ip(&echo).to_string(), HOST_IP, "{echo}");
    assert_eq!(echo["pod"], pod["metadata"]["name"], "{echo}");
}

#[test]
fn a_killed_node_costs_a_bounded_burst_of_errors_then_every_request_succeeds() {
    const KILL_AT: usize = 40;
    const TAIL: usize = 30;
    let c = Cluster::up(&["--nodes", "3"]);
    c.apply(&format!("{}---\n{}", web(3), web_lb("web", "Cluster")));
    let pods = c.ready_pods("web", 3);
    let victim = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let victim_ips: Vec<String> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == victim.as_str())
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    let pid = c.node_pid(&victim);
    let addr = front(&c, "web");
    eventually(
        "the load balancer to answer",
        Duration::from_secs(15),
        || curl(addr).ok().then_some(()),
    );

    // (request number, when it ended, succeeded, how long it took)
    let mut results: Vec<(usize, Instant, bool, Duration)> = Vec::new();
    let mut killed_at = None;
    let mut updated_at: Option<usize> = None;
    let start = Instant::now();
    for i in 0..400 {
        if start.elapsed() > Duration::from_secs(40) {
            break;
        }
        if i == KILL_AT {
            kill9(pid);
            killed_at = Some(Instant::now());
        }
        let r = curl(addr);
        results.push((i, Instant::now(), r.ok(), r.took));
        if killed_at.is_some() && updated_at.is_none() && i % 5 == 0 {
            let ep = c.ok(&["get", "endpoints", "web"]);
            if !victim_ips.iter().any(|ip| ep.contains(ip.as_str())) {
                updated_at = Some(i);
            }
        }
        if updated_at.is_some_and(|u| i >= u + TAIL) {
            break;
        }
    }
    let killed_at = killed_at.expect("the loop reached the kill");
    let errors: Vec<_> = results.iter().filter(|r| !r.2).collect();
    let slowest = results.iter().map(|r| r.3).max();
    let window = errors
        .first()
        .zip(errors.last())
        .map(|(a, b)| b.1.duration_since(a.1));
    println!(
        "{} requests, {} errors (window {window:?}), slowest {slowest:?}, endpoints updated at request {updated_at:?}",
        results.len(),
        errors.len()
    );
    assert!(
        errors.iter().all(|e| e.0 >= KILL_AT),
        "errors before the kill: {:?}",
        errors.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    for e in &errors {
        assert!(
            e.1.duration_since(killed_at) < Duration::from_secs(20),
            "request {} failed {:?} after the kill",
            e.0,
            e.1.duration_since(killed_at)
        );
    }
    assert!(
        updated_at.is_some(),
        "the killed node's pods never left the endpoints"
    );
    let tail: Vec<bool> = results.iter().rev().take(TAIL).map(|r| r.2).collect();
    assert!(
        tail.len() == TAIL && tail.iter().all(|ok| *ok),
        "the last {TAIL} requests must all succeed: {tail:?}"
    );
    // A try on the dead node costs the edge its 3 s open timeout; once the
    // node fails its checks the edge stops trying it.
    let slow: Vec<usize> = results
        .iter()
        .rev()
        .take(TAIL)
        .filter(|r| r.3 >= Duration::from_millis(2500))
        .map(|r| r.0)
        .collect();
    assert!(
        slow.is_empty(),
        "the edge still tries the dead node in the last {TAIL} requests: {slow:?}"
    );
    let n = c.json(&["get", "node", &victim]);
    assert!(!is_ready(&n), "{victim} must be NotReady");
}

#[test]
fn a_killed_edge_is_restarted_keeps_the_addresses_and_down_stops_it() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(&TCP_ECHO.replace("port: 7000", "port: 7004"));
    c.ready_pods("tcp-echo", 2);
    let before = ingress(&c, "tcp-echo");
    let addr = addr_of(&before);
    eventually(
        "a TCP echo through the edge",
        Duration::from_secs(10),
        || tcp_echo(addr, b"before\n").ok(),
    );

    let old = edge_pid(&c);
    assert!(alive(old), "edge {old} must run");
    kill9(old);
    let new = eventually("a restarted edge", Duration::from_secs(15), || {
        let pid = edge_pid(&c);
        (pid != old && alive(pid)).then_some(pid)
    });
    assert!(!alive(old));

    // A new edge takes the address back from the status, and serves it.
    let addr = eventually(
        "traffic through the restarted edge",
        Duration::from_secs(15),
        || {
            let now = ingress(&c, "tcp-echo");
            let addr = addr_of(&now);
            (tcp_echo(addr, b"after\n").ok()? == b"after\n").then_some(addr)
        },
    );
    let after = ingress(&c, "tcp-echo");
    println!("status before the kill: {before}\nafter the restart: {after}");
    assert_eq!(
        after["ip"], before["ip"],
        "the Service keeps its address: {before} then {after}"
    );
    // The ports too: a restarted edge binds the ones the status recorded,
    // even when they were free ports chosen because the Service's own was
    // taken.
    assert_eq!(after, before, "the status is kept across the restart");

    c.ok(&["down"]);
    assert!(!alive(new), "edge {new} left running after down");
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "{addr} still accepts after down");
}

#[test]
fn clusters_on_one_machine_hold_their_own_lb_pools() {
    let a = Cluster::up(&["--nodes", "1"]);
    let b = Cluster::up(&["--nodes", "1"]);
    let (pa, pb) = (pool(&a), pool(&b));
    assert!(
        !pa.contains(&pb.network()) && !pb.contains(&pa.network()),
        "{pa} and {pb} overlap"
    );
    // Each cluster's ingress controller listens on its own pool, on the
    // Service's own ports, and cluster-info lists those listeners.
    for (c, p) in [(&a, pa), (&b, pb)] {
        let ing = eventually(
            "the ingress controller's address",
            Duration::from_secs(15),
            || {
                let svc = c.json(&[
                    "get",
                    "svc",
                    "podnet-ingress-controller",
                    "-n",
                    "podnet-ingress",
                ]);
                let ing = svc.pointer("/status/loadBalancer/ingress/0")?.clone();
                (ing["ports"].as_array()?.len() == 2).then_some(ing)
            },
        );
        let ip: Ipv4Addr = ing["ip"].as_str().unwrap().parse().unwrap();
        assert!(p.contains(&ip), "{ing} outside {p}");
        assert_eq!(ing["ports"][0]["port"], 80, "{ing}");
        let listeners = c.info()["edge"]["listeners"].clone();
        assert!(
            listeners
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["address"] == ip.to_string()
                    && l["port"] == 80
                    && l["service"] == "podnet-ingress/podnet-ingress-controller"),
            "{listeners:#}"
        );
    }
    // A third cluster asking for a pool that is held is refused, naming the
    // holder, before anything starts.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(crate::harness::BIN)
        .args(["up", "--nodes", "1", "--lb-pool", &pa.to_string()])
        .env("PODNET_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "LoadBalancer pool {pa} is in use by the cluster in {}",
            a.state.display()
        )),
        "{err}"
    );
    assert!(!state.join("supervisor.pid").exists() && !state.join("cluster.json").exists());
}
