//! Deployment rollouts through the real binary: a RollingUpdate paced by
//! readiness under traffic (no failed request, never fewer than
//! `replicas` available with `maxUnavailable: 0`), `rollout undo` and
//! `history`, `rollout pause`/`resume`, `rollout restart` of a Recreate
//! Deployment (no old pod left when the first new one is made), and a rollout whose new pods never
//! get Ready running into its progress deadline.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually, is_ready, text};
use crate::services::CLIENT;

/// Three http-echo replicas behind a Service, Ready once they answer,
/// draining for 2 s in a preStop hook so that the proxies have moved
/// their new flows elsewhere before the server stops. `VERSION` is what a
/// rollout changes.
fn web(version: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  minReadySeconds: 1
  selector: {{matchLabels: {{app: web}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: echo
          image: podnet/http-echo
          env: [{{name: VERSION, value: "{version}"}}]
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /, port: http}}, periodSeconds: 1}}
          lifecycle: {{preStop: {{exec: {{command: ["sleep", "2"]}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"#
    )
}

fn deployment(c: &Cluster, name: &str) -> Value {
    c.json(&["get", "deployment", name])
}

fn condition<'a>(d: &'a Value, ty: &str) -> &'a Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .unwrap_or_else(|| panic!("no {ty} condition: {d}"))
}

fn revision(o: &Value) -> &str {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or("")
}

fn pods(c: &Cluster, app: &str) -> Vec<Value> {
    c.json(&["get", "pods", "-l", &format!("app={app}")])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn version(p: &Value) -> &str {
    p["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or("")
}

/// Runs `rollout status` and asserts it ends with success, returning
/// what it printed.
fn rolled_out(c: &Cluster, name: &str) -> String {
    let out = c.ok(&["rollout", "status", "deployment", name, "--timeout", "120s"]);
    assert!(
        out.trim_end()
            .ends_with(&format!("deployment {name:?} successfully rolled out")),
        "{out}"
    );
    out
}

#[test]
fn a_rolling_update_under_traffic_loses_no_request_and_keeps_every_replica_available() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{}---{CLIENT}", web("1")));
    c.ready_pods("client", 1);
    rolled_out(&c, "web");
    let first: BTreeSet<String> = pods(&c, "web").iter().map(name).collect();
    assert_eq!(first.len(), 3);
    let d = deployment(&c, "web");
    assert_eq!(revision(&d), "1", "{d}");

    let stop = AtomicBool::new(false);
    let (requests, failures, least_available, status_out) = std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            let (mut n, mut failed) = (0, Vec::new());
            // Bounded: the rollout takes seconds, not thousands of requests.
            while !stop.load(Ordering::Relaxed) && n < 3000 {
                let out = c.exec("client", &["curl", "-s", "-f", "-m", "3", "http://web/"]);
                n += 1;
                if !out.status.success() {
                    failed.push(format!("{:?} {}", out.status.code(), text(&out.stderr)));
                }
            }
            (n, failed)
        });
        let watcher = s.spawn(|| {
            let mut least = i64::MAX;
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let d = deployment(&c, "web");
                least = least.min(d["status"]["availableReplicas"].as_i64().unwrap_or(0));
                samples += 1;
            }
            (least, samples)
        });
        c.apply(&web("2"));
        let out = rolled_out(&c, "web");
        // Every old pod gone, not only scaled away.
        eventually("the old pods to be gone", Duration::from_secs(60), || {
            pods(&c, "web")
                .iter()
                .all(|p| !first.contains(&name(p)))
                .then_some(())
        });
        stop.store(true, Ordering::Relaxed);
        let (n, failed) = traffic.join().expect("traffic thread");
        let (least, samples) = watcher.join().expect("watcher thread");
        assert!(samples > 10, "the status was looked at {samples} times");
        (n, failed, least, out)
    });
    eprintln!(
        "{requests} requests, least available {least_available}, rollout status said:\n{status_out}"
    );
    assert!(
        requests >= 20,
        "only {requests} requests during the rollout"
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    assert!(
        least_available >= 3,
        "availableReplicas fell to {least_available}"
    );
    assert!(
        status_out.contains("rollout to finish"),
        "rollout status waited: {status_out}"
    );

    let now = pods(&c, "web");
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.iter().all(|p| version(p) == "2" && is_ready(p)));
    let d = deployment(&c, "web");
    assert_eq!(revision(&d), "2", "{d}");
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
    assert_eq!(d["status"]["availableReplicas"], 3, "{d}");
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["status"], "True");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["reason"], "MinimumReplicasAvailable");
    let sets = c.json(&["get", "replicasets", "-l", "app=web"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_revision = |r: &str| {
        sets.iter()
            .find(|rs| revision(rs) == r)
            .unwrap_or_else(|| panic!("no ReplicaSet of revision {r}: {sets:?}"))
    };
    assert_eq!(by_revision("1")["spec"]["replicas"], 0);
    assert_eq!(by_revision("2")["spec"]["replicas"], 3);
    assert_eq!(
        by_revision("2")["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    // The Ready time the availability was judged by is on the pods.
    assert!(
        now.iter()
            .all(|p| p["status"]["conditions"].as_array().is_some_and(|cs| cs
                .iter()
                .any(|c| c["type"] == "Ready" && c["lastTransitionTime"].is_string()))),
        "{now:?}"
    );

    // Each step was told as upstream's controller tells it.
    let scaled: Vec<String> = c.json(&["get", "events"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "ScalingReplicaSet" && e["involvedObject"]["name"] == "web")
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect();
    let new_rs = by_revision("2")["metadata"]["name"].as_str().unwrap_or("");
    let old_rs = by_revision("1")["metadata"]["name"].as_str().unwrap_or("");
    for said in [
        format!("Scaled up replica set {new_rs} from 0 to 1"),
        format!("Scaled down replica set {old_rs} from 3 to 2"),
        format!("Scaled down replica set {old_rs} from 1 to 0"),
    ] {
        assert!(scaled.contains(&said), "no {said:?} in {scaled:?}");
    }

    let history = c.ok(&["rollout", "history", "deployment/web"]);
    let lines: Vec<&str> = history.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "deployment.apps/web",
            "REVISION  CHANGE-CAUSE",
            "1         <none>",
            "2         <none>",
            ""
        ],
        "{history}"
    );

    let shown = c.ok(&["rollout", "history", "deployment/web", "--revision", "2"]);
    assert!(
        shown.starts_with("deployment.apps/web with revision #2\nPod Template:\n"),
        "{shown}"
    );
    assert!(shown.contains("VERSION:") && shown.contains("2"), "{shown}");

    // Back to the previous template: revision 1's ReplicaSet returns as 3.
    let out = c.ok(&["rollout", "undo", "deployment", "web"]);
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rolled_out(&c, "web");
    eventually("only version 1 pods", Duration::from_secs(60), || {
        let now = pods(&c, "web");
        (now.len() == 3 && now.iter().all(|p| version(p) == "1")).then_some(())
    });
    let d = deployment(&c, "web");
    assert_eq!(revision(&d), "3", "{d}");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "1"
    );
    let out = c.ok(&["rollout", "undo", "deployment", "web", "--to-revision", "3"]);
    assert_eq!(
        out.trim(),
        "deployment.apps/web skipped rollback (current template already matches revision 3)"
    );
    let bad = c.run(&["rollout", "undo", "deployment", "web", "--to-revision=-1"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad.stderr));
    let bad = c.run(&["rollout", "undo", "pod/web"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad.stderr));
    let bad = c.run(&["rollout", "undo", "deployment", "web", "--to-revision", "9"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("unable to find specified revision 9 in history"),
        "{}",
        text(&bad.stderr)
    );

    // A strategy that could never move is refused, with the field path.
    let stuck = web("3").replace("{maxUnavailable: 0}", "{maxUnavailable: 0, maxSurge: 0}");
    let out = c.run_stdin(&["apply", "-f", "-"], &stuck);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("spec.strategy.rollingUpdate.maxUnavailable"),
        "{}",
        text(&out.stderr)
    );
}

/// A Recreate Deployment, and one whose pods never become Ready after a
/// rollout, with a short progress deadline.
const RECREATE_AND_STUCK: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch}
spec:
  replicas: 2
  minReadySeconds: 3
  selector: {matchLabels: {app: batch}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: batch}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
          lifecycle: {preStop: {exec: {command: ["sleep", "1"]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 2
  progressDeadlineSeconds: 5
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: PROBE_PORT}, periodSeconds: 1}
"#;

#[test]
fn recreate_restart_replaces_every_pod_after_the_old_ones_are_gone_and_a_stuck_rollout_exceeds_its_deadline()
 {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&RECREATE_AND_STUCK.replace("PROBE_PORT", "http"));
    rolled_out(&c, "batch");
    rolled_out(&c, "stuck");
    let first: BTreeSet<String> = pods(&c, "batch").iter().map(name).collect();
    assert_eq!(first.len(), 2);

    // Paused, it may not be restarted; resumed, it may.
    let out = c.ok(&["rollout", "pause", "deployment/batch"]);
    assert_eq!(out.trim(), "deployment.apps/batch paused");
    let again = c.run(&["rollout", "pause", "deployment/batch"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr).trim(),
        r#"error: deployments.apps "batch" is already paused"#
    );
    let refused = c.run(&["rollout", "restart", "deployment/batch"]);
    assert!(
        text(&refused.stderr)
            .contains("can't restart paused deployment (run rollout resume first)"),
        "{}",
        text(&refused.stderr)
    );
    let out = c.ok(&["rollout", "resume", "deployment/batch"]);
    assert_eq!(out.trim(), "deployment.apps/batch resumed");

    let out = c.ok(&["rollout", "restart", "deployment/batch"]);
    assert_eq!(out.trim(), "deployment.apps/batch restarted");
    // Until the first new pod exists, watch that old ones are going; when
    // it does, none of the old ones may still be there.
    let old_left = eventually("the first new pod", Duration::from_secs(60), || {
        let now = pods(&c, "batch");
        now.iter().any(|p| !first.contains(&name(p))).then(|| {
            now.iter()
                .filter(|p| first.contains(&name(p)))
                .map(name)
                .collect::<Vec<_>>()
        })
    });
    assert!(old_left.is_empty(), "old pods still there: {old_left:?}");
    // Ready is not yet available: for minReadySeconds after its Ready
    // transition a pod is not counted.
    eventually(
        "Ready pods not yet available",
        Duration::from_secs(60),
        || {
            let d = deployment(&c, "batch");
            let ready = d["status"]["readyReplicas"].as_i64()?;
            let available = d["status"]["availableReplicas"].as_i64()?;
            (ready > available).then_some(())
        },
    );
    rolled_out(&c, "batch");
    let now = pods(&c, "batch");
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|p| !first.contains(&name(p))), "{now:?}");
    assert!(
        now.iter()
            .all(|p| p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string())
    );
    let d = deployment(&c, "batch");
    assert_eq!(revision(&d), "2", "{d}");

    // New pods whose probe hits a port nothing listens on: the rollout
    // keeps the old pods (25% surge, none unavailable) and stalls.
    c.apply(&RECREATE_AND_STUCK.replace("PROBE_PORT", "9999"));
    let out = c.run(&[
        "rollout",
        "status",
        "deployment",
        "stuck",
        "--timeout",
        "60s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(r#"error: deployment "stuck" exceeded its progress deadline"#),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(r#"Waiting for deployment "stuck" rollout to finish: 1 out of 2 new replicas have been updated..."#),
        "{}",
        text(&out.stdout)
    );
    let d = deployment(&c, "stuck");
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["status"], "False", "{d}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded", "{d}");
    assert_eq!(condition(&d, "Available")["status"], "True", "{d}");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
    assert_eq!(d["status"]["updatedReplicas"], 1, "{d}");
}
