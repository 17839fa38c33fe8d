//! Link emulation between nodes, changed at run time.

use std::time::Duration;

use crate::harness::{Cluster, eventually, text};

/// A http-echo pod named and labelled `name`, on `node`.
pub fn pinned(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers: [{{name: echo, image: podnet/http-echo, ports: [{{containerPort: 8080}}]}}]
"#
    )
}

fn min_rtt_ms(ping_output: &str) -> f64 {
    let line = ping_output
        .lines()
        .find(|l| l.starts_with("rtt "))
        .unwrap_or_else(|| panic!("no rtt line in:\n{ping_output}"));
    let values = line.split('=').nth(1).unwrap().trim();
    values.split('/').next().unwrap().trim().parse().unwrap()
}

#[test]
fn delay_partition_and_heal_between_two_nodes() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{}---{}",
        pinned("a", "node-1"),
        pinned("b", "node-2")
    ));
    c.ready_pods("a", 1);
    let b = &c.ready_pods("b", 1)[0];
    let b_ip = b["status"]["podIP"].as_str().unwrap();

    let out = c.ok(&["exec", "a", "--", "ping", "-c", "3", "-i", "0.05", b_ip]);
    assert!(min_rtt_ms(&out) < 40.0, "no delay configured yet:\n{out}");

    c.ok(&["link", "set", "node-1", "node-2", "--delay", "20ms"]);
    assert!(c.ok(&["get", "links"]).contains("20ms"));
    let rtt = eventually("the 20ms delay to apply", Duration::from_secs(10), || {
        let out = c.ok(&["exec", "a", "--", "ping", "-c", "3", "-i", "0.05", b_ip]);
        let rtt = min_rtt_ms(&out);
        (rtt >= 40.0).then_some(rtt)
    });
    assert!(
        rtt < 200.0,
        "rtt {rtt} ms is far above the configured 40 ms"
    );

    c.ok(&["link", "partition", "node-1", "node-2"]);
    eventually(
        "the partition to cut the flow",
        Duration::from_secs(10),
        || {
            let out = c.exec("a", &["nc", "-zv", "-w", "1", b_ip, "8080"]);
            (out.status.code() == Some(1) && text(&out.stderr).contains("timed out")).then_some(())
        },
    );

    c.ok(&["link", "heal", "node-1", "node-2"]);
    eventually("heal to restore the flow", Duration::from_secs(10), || {
        c.exec("a", &["nc", "-z", "-w", "1", b_ip, "8080"])
            .status
            .success()
            .then_some(())
    });
    let out = c.ok(&["exec", "a", "--", "ping", "-c", "3", "-i", "0.05", b_ip]);
    assert!(
        min_rtt_ms(&out) < 40.0,
        "delay must be gone after heal:\n{out}"
    );
}

/// A pod named and labelled `name` on `node`, running `image` on its
/// default port (8080 for http-echo, 9000 for the echoes).
fn pod_on(name: &str, node: &str, image: &str, port: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers: [{{name: c, image: {image}, ports: [{port}]}}]
"#
    )
}

/// `curl` from pod `a` to `url`: its exit code and how long it took.
fn curl(c: &Cluster, url: &str, max_time: &str) -> (Option<i32>, Duration, String) {
    let start = std::time::Instant::now();
    let out = c.exec(
        "a",
        &["curl", "-sS", "-m", max_time, "-o", "/dev/null", url],
    );
    (out.status.code(), start.elapsed(), text(&out.stderr))
}

/// A partition in Reject mode refuses at once what a Drop partition lets
/// time out, for TCP (curl exit 7 against 28) and UDP (the socket's next
/// read fails with connection refused); `podnet get link` shows the mode,
/// and healing restores the flow.
#[test]
fn a_reject_partition_refuses_fast_where_a_drop_partition_times_out() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{}---{}---{}",
        pinned("a", "node-1"),
        pinned("b", "node-2"),
        pod_on(
            "u",
            "node-2",
            "podnet/udp-echo",
            "{containerPort: 9000, protocol: UDP}"
        )
    ));
    c.ready_pods("a", 1);
    let b = &c.ready_pods("b", 1)[0];
    let u = &c.ready_pods("u", 1)[0];
    let url = format!("http://{}:8080/", b["status"]["podIP"].as_str().unwrap());
    let u_ip = u["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(curl(&c, &url, "5").0, Some(0));

    // Refusing and not dropping: only the partition's mode says which.
    let out = c.run(&["link", "set", "node-1", "node-2", "--reorder", "25%"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("reordering not possible without specifying some delay"),
        "{}",
        text(&out.stderr)
    );
    c.ok(&[
        "link",
        "partition",
        "node-1",
        "node-2",
        "--reject",
        "--one-way",
    ]);
    let table = c.ok(&["get", "link", "node-1.node-2"]);
    assert!(
        table.contains("PARTITION") && table.contains("Reject"),
        "{table}"
    );
    let link = c.json(&["get", "link", "node-1.node-2"]);
    assert_eq!(link["spec"]["partitionMode"], "Reject", "{link}");
    let (code, took, stderr) = eventually(
        "the reject partition to refuse",
        Duration::from_secs(10),
        || {
            let r = curl(&c, &url, "3");
            (r.0 != Some(0)).then_some(r)
        },
    );
    assert_eq!(code, Some(7), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    // UDP: port unreachable comes back to the sending socket.
    let out = c.run_stdin(
        &[
            "exec", "-i", "a", "--", "nc", "-u", "-w", "2", &u_ip, "9000",
        ],
        "ping\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("Connection refused"),
        "{}",
        text(&out.stderr)
    );

    // Drop: the same curl times out.
    c.ok(&["link", "partition", "node-1", "node-2", "--one-way"]);
    assert_eq!(
        c.json(&["get", "link", "node-1.node-2"])["spec"]["partitionMode"],
        "Drop"
    );
    let (code, took, stderr) = curl(&c, &url, "1");
    assert_eq!(code, Some(28), "{stderr}");
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");

    c.ok(&["link", "heal", "node-1", "node-2"]);
    eventually("heal to restore the flow", Duration::from_secs(15), || {
        (curl(&c, &url, "2").0 == Some(0)).then_some(())
    });
}

/// Links that duplicate and reorder still carry TCP byte for byte, and a
/// pod's UDP datagram crossing a link that duplicates every packet arrives
/// twice.
#[test]
fn duplicating_and_reordering_links_carry_tcp_and_duplicate_udp() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!(
        "{}---{}---{}---{}",
        pinned("a", "node-1"),
        pinned("b", "node-2"),
        pod_on("t", "node-2", "podnet/tcp-echo", "{containerPort: 9000}"),
        pod_on(
            "u",
            "node-2",
            "podnet/udp-echo",
            "{containerPort: 9000, protocol: UDP}"
        )
    ));
    c.ready_pods("a", 1);
    let ip = |app: &str| {
        c.ready_pods(app, 1)[0]["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (b_ip, t_ip, u_ip) = (ip("b"), ip("t"), ip("u"));

    c.ok(&[
        "link",
        "set",
        "node-1",
        "node-2",
        "--delay",
        "5ms",
        "--reorder",
        "50%",
        "--duplicate",
        "30%",
    ]);
    let table = c.ok(&["get", "links"]);
    assert!(table.contains("30%") && table.contains("50%"), "{table}");
    // 512 KiB through a tcp-echo and back, in order.
    let sent: String = (0..65_536u32)
        .map(|i| format!("{:07}\n", i % 10_000_000))
        .collect();
    let out = c.run_stdin(
        &["exec", "-i", "a", "--", "nc", "-w", "5", &t_ip, "9000"],
        &sent,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout) == sent,
        "the echo differs from what was sent"
    );
    // A 2 MB upload over curl.
    let body = "x".repeat(2 << 20);
    let out = c.run_stdin(
        &[
            "exec",
            "-i",
            "a",
            "--",
            "curl",
            "-sS",
            "-m",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-d",
            "@-",
            &format!("http://{b_ip}:8080/"),
        ],
        &body,
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "200".to_string()),
        "{}",
        text(&out.stderr)
    );

    // Every datagram from node-1 to node-2 twice: one echo request, two
    // echoes.
    c.ok(&["link", "heal", "node-1", "node-2"]);
    c.ok(&[
        "link",
        "set",
        "node-1",
        "node-2",
        "--duplicate",
        "100%",
        "--one-way",
    ]);
    let out = eventually(
        "the echo to come back twice",
        Duration::from_secs(10),
        || {
            let out = c.run_stdin(
                &[
                    "exec", "-i", "a", "--", "nc", "-u", "-w", "1", &u_ip, "9000",
                ],
                "ping\n",
            );
            (text(&out.stdout) == "ping\nping\n").then_some(out)
        },
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
