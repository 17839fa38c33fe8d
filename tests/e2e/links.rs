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
