//! The in-pod troubleshooting commands through `podnet exec`: the files the
//! kubelet writes, the container environment with Service variables,
//! busybox wget, socket listings, `sh -c` and traceroute over the emulated
//! links.

use std::time::Duration;

use crate::harness::{Cluster, eventually, text};
use crate::links::pinned;
use crate::pods::WEB;
use crate::services::{CLIENT, WEB_SVC};

fn ok(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
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
fn troubleshooting_commands_read_as_on_a_real_cluster() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{WEB_SVC}"));
    let web_pods = c.ready_pods("web", 3);
    // The Service exists well before the client starts (the web pods took
    // their readiness probes to get here), so the kubelet's Service
    // variables of the client include it.
    c.apply(CLIENT);
    let client = c.ready_pods("client", 1).remove(0);
    let client_ip = client["status"]["podIP"].as_str().unwrap().to_string();
    let svc_ip = c.json(&["get", "svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    // The files the kubelet writes.
    assert_eq!(
        ok(&c, "client", &["cat", "/etc/resolv.conf"]),
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.96.0.10\n\
         options ndots:5 timeout:2\n"
    );
    let hosts = ok(&c, "client", &["cat", "/etc/hosts"]);
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
        "{hosts}"
    );
    assert!(
        hosts.ends_with(&format!("\n{client_ip}\tclient\n")),
        "{hosts}"
    );
    let missing = c.exec("client", &["cat", "/etc/passwd"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "cat: /etc/passwd: No such file or directory\n"
    );

    // The environment: the kubelet's Service variables.
    let env = ok(&c, "client", &["env"]);
    let lines: Vec<&str> = env.lines().collect();
    for expected in [
        "HOSTNAME=client".to_string(),
        format!("WEB_SERVICE_HOST={svc_ip}"),
        "WEB_SERVICE_PORT=80".to_string(),
        "WEB_SERVICE_PORT_HTTP=80".to_string(),
        format!("WEB_PORT=tcp://{svc_ip}:80"),
        format!("WEB_PORT_80_TCP_ADDR={svc_ip}"),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
    ] {
        assert!(lines.contains(&expected.as_str()), "{expected} in\n{env}");
    }
    assert_eq!(
        ok(&c, "client", &["printenv", "WEB_SERVICE_HOST"]),
        format!("{svc_ip}\n")
    );

    // wget through the Service, and busybox's refusal message.
    let body = ok(&c, "client", &["wget", "-qO-", "http://web/"]);
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo json");
    let web_names: Vec<&str> = web_pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        web_names.contains(&echo["pod"].as_str().unwrap_or_default()),
        "{body}"
    );
    let web_ip = web_pods[0]["status"]["podIP"].as_str().unwrap();
    let refused = c.exec(
        "client",
        &["wget", "-q", "-O", "-", &format!("http://{web_ip}:8081/")],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!("wget: can't connect to remote host ({web_ip}): Connection refused\n")
    );

    // The web pod's listener, from its namespace's socket table.
    let web_name = web_pods[0]["metadata"]["name"].as_str().unwrap();
    let listing = ok(&c, web_name, &["ss", "-tln"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("LISTEN ") && l.contains(" 0.0.0.0:8080 ")),
        "{listing}"
    );
    let netstat = ok(&c, web_name, &["netstat", "-tln"]);
    assert!(
        netstat.starts_with("Active Internet connections (only servers)\n")
            && netstat
                .lines()
                .any(|l| l.starts_with("tcp ") && l.contains(" 0.0.0.0:8080 ")),
        "{netstat}"
    );

    // sh -c joins toolbox commands.
    assert_eq!(ok(&c, "client", &["sh", "-c", "false || echo ok"]), "ok\n");
    let piped = c.exec("client", &["sh", "-c", "env | grep WEB"]);
    assert_eq!(piped.status.code(), Some(2));
    assert!(
        text(&piped.stderr).contains("not supported in podnet's toolbox"),
        "{}",
        text(&piped.stderr)
    );
}

/// `traceroute -n` output as (hop, address, RTTs in ms) per hop line,
/// checking the header and that every probe of a hop was answered by the
/// one address.
fn hops(out: &str, dst: &str) -> Vec<(u32, String, Vec<f64>)> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with(&format!("traceroute to {dst} ({dst}), "))
            && header.ends_with(" hops max, 60 byte packets"),
        "{out}"
    );
    lines
        .map(|line| {
            let mut words = line.split_whitespace();
            let hop = words.next().unwrap().parse().unwrap();
            let addr = words.next().unwrap().to_string();
            let rest: Vec<&str> = words.collect();
            let rtts: Vec<f64> = rest.chunks(2).map(|w| w[0].parse().unwrap()).collect();
            assert!(
                rest.chunks(2).all(|w| w.len() == 2 && w[1] == "ms"),
                "{line} in\n{out}"
            );
            (hop, addr, rtts)
        })
        .collect()
}

#[test]
fn traceroute_follows_the_emulated_links() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{}---{}---{}",
        pinned("a", "node-1"),
        pinned("b", "node-2"),
        pinned("near", "node-1")
    ));
    c.ready_pods("a", 1);
    let b_ip = c.ready_pods("b", 1)[0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let near_ip = c.ready_pods("near", 1)[0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let node = |name: &str| c.json(&["get", "node", name]);
    let cidr: ipnet::Ipv4Net = node("node-1")["spec"]["podCIDR"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let gateway = std::net::Ipv4Addr::from(u32::from(cidr.network()) + 1).to_string();
    let node_2_ip = node("node-2")["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let trace = |dst: &str, extra: &[&str]| {
        let out = ok(&c, "a", &[&["traceroute", "-n"], extra, &[dst]].concat());
        hops(&out, dst)
    };
    let path = |hops: &[(u32, String, Vec<f64>)]| -> Vec<(u32, String, usize)> {
        hops.iter()
            .map(|(n, addr, rtts)| (*n, addr.clone(), rtts.len()))
            .collect()
    };

    // Across nodes: the gateway, the other node, the pod, and no further.
    // One echo first sets up the node pair's overlay connection, whose
    // handshake every probe in flight would otherwise wait for (tens of
    // milliseconds on a loaded machine).
    ok(&c, "a", &["ping", "-c", "1", &b_ip]);
    let across = trace(&b_ip, &[]);
    assert_eq!(
        path(&across),
        [
            (1, gateway.clone(), 3),
            (2, node_2_ip.clone(), 3),
            (3, b_ip.clone(), 3)
        ],
        "{across:?}"
    );
    // Before any delay (the first probes may also wait for the overlay
    // connection's handshake, as ping's first does).
    let fastest = across[1..]
        .iter()
        .flat_map(|h| h.2.iter().copied())
        .fold(f64::INFINITY, f64::min);
    assert!(fastest < 40.0, "{across:?}");
    // On the same node: the gateway, then the pod.
    assert_eq!(
        path(&trace(&near_ip, &["-q", "1"])),
        [(1, gateway.clone(), 1), (2, near_ip.clone(), 1)]
    );

    // A ClusterIP is not a router and kube-proxy translates neither ICMP
    // nor UDP to a port the Service does not have: past the gateway,
    // nothing answers.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n\
         spec: {selector: {app: b}, ports: [{port: 80, targetPort: 8080}]}\n",
    );
    let svc_ip = c.json(&["get", "svc", "b"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    for mode in ["-I", "-U"] {
        let out = ok(
            &c,
            "a",
            &[
                "traceroute",
                mode,
                "-n",
                "-m",
                "3",
                "-q",
                "1",
                "-w",
                "0.5",
                &svc_ip,
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with(&format!(" 1  {gateway}  ")), "{out}");
        assert_eq!(lines[2..], [" 2  *", " 3  *"], "{out}");
    }

    // A 20 ms delay each way shows from the hop past the link on.
    c.ok(&["link", "set", "node-1", "node-2", "--delay", "20ms"]);
    let delayed = eventually("the 20ms delay to apply", Duration::from_secs(10), || {
        let hops = trace(&b_ip, &[]);
        hops[1..]
            .iter()
            .flat_map(|h| &h.2)
            .all(|&rtt| rtt >= 40.0)
            .then_some(hops)
    });
    assert_eq!(path(&delayed).len(), 3, "{delayed:?}");
    assert!(delayed[0].2.iter().all(|&rtt| rtt < 20.0), "{delayed:?}");
    assert!(
        delayed[1..]
            .iter()
            .flat_map(|h| &h.2)
            .all(|&rtt| rtt < 200.0),
        "{delayed:?}"
    );

    // Partitioned: only the gateway answers; the trace runs to -m.
    c.ok(&["link", "partition", "node-1", "node-2"]);
    let out = eventually(
        "the partition to cut the path",
        Duration::from_secs(10),
        || {
            let out = ok(
                &c,
                "a",
                &["traceroute", "-n", "-m", "3", "-w", "0.5", &b_ip],
            );
            out.lines()
                .nth(2)
                .is_some_and(|l| l == " 2  * * *")
                .then_some(out)
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].starts_with(&format!(" 1  {gateway}  ")), "{out}");
    assert_eq!(lines[3], " 3  * * *", "{out}");

    let unknown = c.exec("a", &["traceroute", "nosuchhost"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "traceroute: bad address 'nosuchhost'\n"
    );
    assert!(unknown.stdout.is_empty());
    let usage = c.exec("a", &["traceroute", "-q", "0", &b_ip]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
}
