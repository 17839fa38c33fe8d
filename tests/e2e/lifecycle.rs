//! Container lifecycle and eviction: containers exit, restartPolicy decides
//! whether they start again (after the kubelet's crash-loop back-off), the
//! pod phase follows (Succeeded, Failed), and pods are evicted through the
//! Eviction API (a graceful delete) or by their node under pressure (the
//! pod stays Failed/Evicted, leaves its Service and is replaced).

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually, text};

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.run(&["get", "pod", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("pod json"))
}

/// The STATUS column of `podnet get pods` for `name`.
fn status_column(c: &Cluster, name: &str) -> String {
    let table = c.ok(&["get", "pods"]);
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_string()
}

const CRASHING: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
    - name: main
      image: podnet/toolbox
      command: ["sh", "-c", "exit 3"]
"#;

/// restartPolicy Always (the default): the first exit is restarted at
/// once, the second waits the kubelet's 10 s back-off in CrashLoopBackOff
/// with its message, and then it starts again (restartCount 2).
#[test]
fn a_failing_container_reaches_crash_loop_back_off_with_a_growing_restart_count() {
    let c = Cluster::up(&[]);
    c.apply(CRASHING);
    let p = eventually(
        "crasher in CrashLoopBackOff",
        Duration::from_secs(20),
        || {
            let p = pod(&c, "crasher")?;
            let s = &p["status"]["containerStatuses"][0];
            (s["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(p)
        },
    );
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let s = &p["status"]["containerStatuses"][0];
    assert_eq!(
        s["state"]["waiting"]["message"],
        format!("back-off 10s restarting failed container=main pod=crasher_default({uid})"),
        "{s}"
    );
    assert_eq!(s["restartCount"], 1, "{s}");
    let last = &s["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3, "{s}");
    assert_eq!(last["reason"], "Error", "{s}");
    assert!(
        last["startedAt"].is_string() && last["finishedAt"].is_string(),
        "{s}"
    );
    // Restarting, not ended: the pod is Running but not Ready.
    assert_eq!(p["status"]["phase"], "Running");
    let ready = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(status_column(&c, "crasher"), "CrashLoopBackOff");
    let events = c.ok(&["describe", "pod", "crasher"]);
    assert!(events.contains("BackOff"), "{events}");

    // After the back-off it starts again and fails again.
    eventually("a second restart", Duration::from_secs(25), || {
        let p = pod(&c, "crasher")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_u64()? >= 2).then_some(())
    });
}

const ENDING: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: podnet/toolbox
      command: ["sh", "-c"]
      args: ["exit 7"]
---
apiVersion: v1
kind: Pod
metadata: {name: onfailure}
spec:
  restartPolicy: OnFailure
  containers:
    - name: main
      image: podnet/toolbox
      command: ["sleep", "1"]
"#;

/// restartPolicy Never: a failed container stays terminated with its exit
/// code and the pod is Failed (STATUS Error); OnFailure: a container that
/// exits 0 is not restarted and the pod is Succeeded (STATUS Completed).
#[test]
fn never_ends_failed_with_the_exit_code_and_on_failure_exiting_zero_ends_succeeded() {
    let c = Cluster::up(&[]);
    c.apply(ENDING);
    let ended = |name: &str, phase: &str| {
        eventually(&format!("{name} {phase}"), Duration::from_secs(20), || {
            pod(&c, name).filter(|p| p["status"]["phase"] == phase)
        })
    };
    let never = ended("never", "Failed");
    let s = &never["status"]["containerStatuses"][0];
    assert_eq!(s["state"]["terminated"]["exitCode"], 7, "{s}");
    assert_eq!(s["state"]["terminated"]["reason"], "Error", "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert_eq!(s["ready"], false, "{s}");
    let ok = ended("onfailure", "Succeeded");
    let s = &ok["status"]["containerStatuses"][0];
    assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
    assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    let ready = ok["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "PodCompleted", "{ready}");
    assert_eq!(status_column(&c, "never"), "Error");
    assert_eq!(status_column(&c, "onfailure"), "Completed");
    // Nothing runs any more: exec is refused as the API server does.
    let out = c.exec("onfailure", &["true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot exec into a container in a completed pod"),
        "{}",
        text(&out.stderr)
    );
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// Every endpoint address of Service `svc`.
fn endpoint_ips(c: &Cluster, svc: &str) -> Vec<String> {
    let slices = c.json(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
    ]);
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["addresses"][0].as_str().map(String::from))
        .collect()
}

/// Node-pressure eviction: the kubelet fails the pod with reason Evicted
/// and its message, the object stays, its endpoint leaves the Service's
/// EndpointSlices, and the ReplicaSet makes a replacement (it counts only
/// active pods) while leaving the Failed one in place.
#[test]
fn a_node_pressure_evicted_pod_leaves_the_endpoints_and_is_replaced() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    let pods = c.ready_pods("web", 2);
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let victim_ip = pods[0]["status"]["podIP"].as_str().unwrap().to_string();
    eventually("both endpoints", Duration::from_secs(20), || {
        (endpoint_ips(&c, "web").len() == 2).then_some(())
    });

    let out = c.ok(&["evict", &victim, "--node-pressure"]);
    assert_eq!(
        out.trim(),
        format!("pod/{victim} evicted by its node: The node was low on resource: memory."),
    );
    let evicted = eventually("the pod Failed/Evicted", Duration::from_secs(20), || {
        pod(&c, &victim).filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(evicted["status"]["reason"], "Evicted", "{evicted}");
    assert_eq!(
        evicted["status"]["message"],
        "The node was low on resource: memory. "
    );
    assert!(evicted["metadata"]["deletionTimestamp"].is_null());
    let disruption = evicted["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(disruption["reason"], "TerminationByKubelet", "{evicted}");

    // Out of the endpoints, and replaced: two ready pods besides it.
    eventually("the evicted endpoint gone", Duration::from_secs(20), || {
        let ips = endpoint_ips(&c, "web");
        (!ips.contains(&victim_ip)).then_some(())
    });
    let ready = c.ready_pods("web", 2);
    assert!(
        ready
            .iter()
            .all(|p| p["metadata"]["name"] != victim.as_str())
    );
    eventually(
        "the replacement's endpoint",
        Duration::from_secs(20),
        || (endpoint_ips(&c, "web").len() == 2).then_some(()),
    );
    // The Failed pod stays, as upstream's ReplicaSet leaves it.
    let all = c.json(&["get", "pods", "-l", "app=web"]);
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let events = c.ok(&["describe", "pod", &victim]);
    assert!(events.contains("Evicted"), "{events}");

    // An ended pod cannot be evicted by its node again; an unknown pod
    // is NotFound as for every command.
    let again = c.run(&["evict", &victim, "--node-pressure"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("has already ended"),
        "{}",
        text(&again.stderr)
    );
    let unknown = c.run(&["evict", "no-such-pod"]);
    let deleted = c.run(&["delete", "pod", "no-such-pod"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(unknown.status.code(), deleted.status.code());
    assert_eq!(text(&unknown.stderr), text(&deleted.stderr));
    assert!(
        text(&unknown.stderr).contains("no-such-pod in namespace default not found"),
        "{}",
        text(&unknown.stderr)
    );
    // A resource the kubelet does not evict for: a bad flag value (64).
    let bad = c.run(&["evict", &victim, "--node-pressure=cpu"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("possible values: memory, ephemeral-storage, pids"),
        "{}",
        text(&bad.stderr)
    );
}

const SLOW: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 20
  containers:
    - name: echo
      image: podnet/http-echo
      args: ["--drain=20s"]
"#;

/// `podnet evict` is the Eviction API: without PodDisruptionBudgets it is
/// the pod's graceful deletion with its own grace period (Terminating,
/// then gone), not a kill.
#[test]
fn evict_deletes_the_pod_gracefully() {
    let c = Cluster::up(&[]);
    c.apply(SLOW);
    eventually("slow Running", Duration::from_secs(20), || {
        pod(&c, "slow").filter(|p| p["status"]["phase"] == "Running")
    });
    assert_eq!(c.ok(&["evict", "slow"]).trim(), "pod/slow evicted");
    let p = pod(&c, "slow").expect("still there while it drains");
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 20, "{p}");
    assert_eq!(status_column(&c, "slow"), "Terminating");
    // A shorter grace period on a second eviction shortens the wait.
    assert_eq!(
        c.ok(&["evict", "slow", "--grace-period", "1"]).trim(),
        "pod/slow evicted"
    );
    eventually("slow gone", Duration::from_secs(15), || {
        pod(&c, "slow").is_none().then_some(())
    });
}
