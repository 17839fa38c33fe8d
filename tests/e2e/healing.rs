//! The cluster notices dead processes and heals: a killed node's pods move,
//! a killed control plane comes back with every object.

use std::time::Duration;

use serde_json::Value;

use podnet_lab::record::alive;

use crate::harness::{Cluster, eventually, is_ready, text};
use crate::pods::WEB;

#[test]
fn killed_node_goes_not_ready_and_its_pods_move() {
    let c = Cluster::up(&["--nodes", "3"]);
    c.apply(WEB);
    let pods = c.ready_pods("web", 3);
    let victim = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let old_ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    let pid = c.node_pid(&victim);
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    eventually(
        "the killed node to be NotReady",
        Duration::from_secs(15),
        || {
            let n = c.json(&["get", "node", &victim]);
            (!is_ready(&n)).then_some(())
        },
    );
    let moved = eventually(
        "3 ready replicas on the surviving nodes",
        Duration::from_secs(30),
        || {
            let pods = c.json(&["get", "pods", "-l", "app=web"])["items"]
                .as_array()
                .cloned()?;
            let ok = pods.len() == 3
                && pods
                    .iter()
                    .all(|p| is_ready(p) && p["spec"]["nodeName"] != victim.as_str());
            ok.then_some(pods)
        },
    );
    let new_pod = moved
        .iter()
        .find(|p| !old_ips.contains(&p["status"]["podIP"].as_str().unwrap().to_string()))
        .expect("a recreated pod with a new IP");
    let new_ip = new_pod["status"]["podIP"].as_str().unwrap();
    let from = moved
        .iter()
        .find(|p| p["metadata"]["name"] != new_pod["metadata"]["name"])
        .unwrap();
    let out = c.exec(
        from["metadata"]["name"].as_str().unwrap(),
        &["curl", "-s", "-m", "5", &format!("http://{new_ip}:8080/")],
    );
    assert!(
        out.status.success(),
        "recreated pod must serve: {}",
        text(&out.stderr)
    );
    let wide = c.ok(&["get", "nodes"]);
    assert!(
        wide.lines()
            .any(|l| l.starts_with(&victim) && l.contains("NotReady")),
        "{wide}"
    );
}

#[test]
fn controlplane_restart_keeps_every_object_and_nodes_reconnect() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    c.ready_pods("web", 3);
    let before = c.json(&["get", "deployment", "web"]);
    let cp_pid = c.info()["controlplane"]["pid"].as_u64().unwrap() as u32;
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &cp_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    let new_pid = eventually("a restarted control plane", Duration::from_secs(15), || {
        let out = c.run(&["cluster-info", "-o", "json"]);
        let info: Value = serde_json::from_slice(&out.stdout).ok()?;
        let pid = info["controlplane"]["pid"].as_u64()? as u32;
        (out.status.success() && pid != cp_pid && alive(pid)).then_some(pid)
    });
    assert!(!alive(cp_pid));
    assert_ne!(new_pid, cp_pid);
    let after = c.json(&["get", "deployment", "web"]);
    assert_eq!(
        after["metadata"]["uid"], before["metadata"]["uid"],
        "the object must survive the restart"
    );
    assert_eq!(
        c.json(&["get", "pods", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The nodes reconnected: they stay Ready and run new work.
    c.apply(
        &WEB.replace("name: web", "name: web2")
            .replace("app: web", "app: web2"),
    );
    c.ready_pods("web2", 3);
    assert!(c.items("nodes").iter().all(is_ready));
}

#[test]
fn down_leaves_no_process_behind() {
    let c = Cluster::up(&["--nodes", "2"]);
    let info = c.info();
    let mut pids = vec![
        info["controlplane"]["pid"].as_u64().unwrap() as u32,
        info["supervisor"]["pid"].as_u64().unwrap() as u32,
        info["edge"]["pid"].as_u64().unwrap() as u32,
    ];
    pids.extend(
        info["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["pid"].as_u64().unwrap() as u32),
    );
    assert!(pids.iter().all(|p| alive(*p)));
    c.ok(&["down"]);
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "processes left after down: {pids:?}"
    );
    let out = c.run(&["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no cluster is running"),
        "{}",
        text(&out.stderr)
    );
}
