//! Runaway workloads stay bounded: a Deployment of 100000 replicas scales
//! back to nothing and leaves no orphans, lists page through tens of
//! thousands of pods, nodes keep to maxPods, and a pod of thousands of
//! containers is refused.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, eventually, is_ready, text};
use podnet_lab::record::ClusterRecord;

const RUNAWAY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: runaway}
spec:
  replicas: 100000
  selector: {matchLabels: {app: runaway}}
  template:
    metadata: {labels: {app: runaway}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: c, image: podnet/toolbox}]
"#;

/// Pods of app=runaway, as `get pods -o name` lists them.
fn runaway_pods(c: &Cluster) -> usize {
    c.ok(&["get", "pods", "-l", "app=runaway", "-o", "name"])
        .lines()
        .count()
}

/// The control plane's resident memory, from /proc.
fn controlplane_rss_kib(c: &Cluster) -> u64 {
    let pid = ClusterRecord::read(&c.state)
        .expect("cluster record")
        .controlplane_pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Polls `count` until `done` says so, asserting on every sample that it
/// never exceeds `ceiling`; returns the highest count seen.
fn watch_count(
    what: &str,
    timeout: Duration,
    ceiling: usize,
    mut count: impl FnMut() -> usize,
    done: impl Fn(usize) -> bool,
) -> usize {
    let mut highest = 0;
    eventually(what, timeout, || {
        let n = count();
        highest = highest.max(n);
        assert!(n <= ceiling, "{what}: {n} pods, more than {ceiling}");
        done(n).then_some(())
    });
    highest
}

/// How long a step of the runaway may take on a loaded machine: the test
/// is about bounds, not speed (hundreds of pods are created, then
/// deleted by the ReplicaSet controller and the garbage collector).
const SETTLE: Duration = Duration::from_secs(90);

/// The burst one ReplicaSet pass may create beyond any count it saw
/// (upstream's burstReplicas).
const BURST: usize = 500;

#[test]
fn runaway_replicas_stop_at_scale_down_and_leave_no_orphans_on_delete() {
    let c = Cluster::up(&["--nodes", "2", "--max-pods", "6"]);
    for node in c.items("nodes") {
        assert_eq!(node["status"]["capacity"]["pods"], "6", "{node}");
        assert_eq!(node["status"]["allocatable"]["pods"], "6", "{node}");
    }
    c.apply(RUNAWAY);
    let before = watch_count(
        "the runaway Deployment to make pods",
        SETTLE,
        100_000,
        || runaway_pods(&c),
        |n| n >= 200,
    );
    // Beyond the nodes' capacity pods stay Pending, with kube-scheduler's
    // reason.
    let pending = eventually(
        "a runaway pod marked unschedulable",
        Duration::from_secs(20),
        || {
            let pods = c.json(&["get", "pods", "-l", "app=runaway"]);
            pods["items"].as_array()?.iter().find_map(|p| {
                p["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                    .cloned()
            })
        },
    );
    assert_eq!(
        pending["message"], "0/2 nodes are available: 2 Too many pods.",
        "{pending}"
    );
    let bound: usize = c
        .items("pods")
        .iter()
        .filter(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        })
        .count();
    assert!(bound <= 12, "{bound} pods bound to 2 nodes of 6 pods each");

    c.ok(&["scale", "deployment", "runaway", "--replicas", "0"]);
    let seen_at_scale = runaway_pods(&c);
    let highest = watch_count(
        "the scaled-down Deployment's pods to be gone",
        SETTLE,
        before.max(seen_at_scale) + BURST,
        || runaway_pods(&c),
        |n| n == 0,
    );
    eprintln!("runaway: {before} pods before the scale-down, at most {highest} after");

    // Again, and this time the Deployment is deleted while it creates.
    c.ok(&["scale", "deployment", "runaway", "--replicas", "100000"]);
    let before = watch_count(
        "the runaway Deployment to make pods again",
        SETTLE,
        100_000,
        || runaway_pods(&c),
        |n| n >= 200,
    );
    c.ok(&["delete", "deployment", "runaway"]);
    // Passes that started before the delete was acknowledged may still
    // finish a batch; none may start after it.
    let seen_at_delete = runaway_pods(&c);
    watch_count(
        "the deleted Deployment's pods to be gone",
        SETTLE,
        before.max(seen_at_delete) + BURST,
        || runaway_pods(&c),
        |n| n == 0,
    );
    // No orphan appears afterwards: sampled over more than a resync period
    // of the controllers (2 s).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(runaway_pods(&c), 0, "orphaned pods appeared");
        let rs = c.ok(&["get", "replicasets", "-o", "name"]);
        assert!(!rs.contains("runaway"), "orphaned ReplicaSet: {rs}");
    }
    let rss = controlplane_rss_kib(&c);
    assert!(
        rss < 512 * 1024,
        "control plane resident memory {rss} KiB after the runaway"
    );
    for node in c.items("nodes") {
        assert!(is_ready(&node), "node went NotReady: {node}");
    }
}

fn pod_with_containers(name: &str, n: usize) -> String {
    let containers: Vec<String> = (0..n)
        .map(|i| format!("{{name: c{i}, image: podnet/toolbox}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{}]\n",
        containers.join(", ")
    )
}

#[test]
fn a_pod_of_ten_thousand_containers_is_refused() {
    let c = Cluster::up(&["--nodes", "1"]);
    let out = c.run_stdin(&["apply", "-f", "-"], &pod_with_containers("huge", 10_000));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("spec.containers: Too many: 10000: must have at most 100 items"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&c.run(&["get", "pod", "huge"]).stdout).is_empty());

    for node in c.items("nodes") {
        assert!(is_ready(&node), "node went NotReady: {node}");
    }
}

#[test]
fn get_pods_pages_through_twenty_thousand_pods() {
    // Many more than one 4 MiB gRPC message holds as one list (it broke
    // at about 5000).
    const PODS: usize = 20_000;
    let c = Cluster::up(&["--nodes", "1"]);
    // Applied 1000 at a time (a manifest may hold 1024 documents); the
    // first thousand carry 5 KiB annotations, so that apply is a message
    // of 5 MiB, beyond gRPC's 4 MiB default, and back. They stay Pending
    // and untouched: they name a scheduler the cluster does not run.
    let padding = "x".repeat(5 * 1024);
    for chunk in 0..PODS / 1000 {
        let manifest: String = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let note = if chunk == 0 { padding.as_str() } else { "" };
                format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i:05}, labels: {{app: many}}, annotations: {{note: \"{note}\"}}}}\nspec:\n  schedulerName: elsewhere\n  containers: [{{name: c, image: podnet/toolbox}}]\n"
                )
            })
            .collect();
        let out = c.run_stdin(&["apply", "-f", "-"], &manifest);
        assert!(out.status.success(), "apply failed: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).lines().count(), 1000);
    }

    let started = Instant::now();
    let names = c.ok(&["get", "pods", "-l", "app=many", "-o", "name"]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), PODS);
    assert_eq!(names[0], "pod/p00000");
    assert_eq!(names[PODS - 1], format!("pod/p{:05}", PODS - 1));
    let mut distinct = names.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), PODS, "a pod listed twice");

    let table = c.ok(&["get", "pods"]);
    assert!(
        table.starts_with("NAME"),
        "{}",
        &table[..200.min(table.len())]
    );
    assert_eq!(table.lines().filter(|l| l.starts_with('p')).count(), PODS);
    eprintln!("listing {PODS} pods twice took {:?}", started.elapsed());
}
