//! Events as kube-scheduler and the kubelet record them, and the kubectl
//! describe views that show them.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually};
use crate::pods::WEB;

const SETTLE: Duration = Duration::from_secs(30);

/// A Service whose describe has kubectl's longest labels.
const WEB_NODEPORT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// Pods that never become ready: the readiness probe asks a port nothing
/// listens on.
const UNREADY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: unready}
spec:
  replicas: 1
  selector: {matchLabels: {app: unready}}
  template:
    metadata: {labels: {app: unready}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: 9999}, periodSeconds: 1}
"#;

/// The rows of `describe`'s Events table, as (type, reason, from, message).
fn event_rows(out: &str) -> Vec<(String, String, String, String)> {
    let Some((_, table)) = out.split_once("\nEvents:\n") else {
        return vec![];
    };
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    let at = |col: &str| header.find(col).unwrap_or(0);
    let (reason, age, from, message) = (at("Reason"), at("Age"), at("From"), at("Message"));
    lines
        .skip(1)
        .filter(|l| l.len() > message)
        .map(|l| {
            let cell = |a: usize, b: usize| l.get(a..b).unwrap_or("").trim().to_string();
            (
                cell(0, reason),
                cell(reason, age),
                cell(from, message),
                l[message..].trim().to_string(),
            )
        })
        .collect()
}

fn pods_of(c: &Cluster, app: &str) -> Vec<Value> {
    c.json(&["get", "pods", "-l", &format!("app={app}")])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn describe_pod_lists_what_the_scheduler_and_kubelet_did() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    c.apply(UNREADY);
    let pod = c.ready_pods("web", 3).remove(0);
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let node = pod["spec"]["nodeName"].as_str().unwrap().to_string();

    let wanted = [
        (
            "Normal",
            "Scheduled",
            "default-scheduler",
            format!("Successfully assigned default/{name} to {node}"),
        ),
        (
            "Normal",
            "Pulled",
            "kubelet",
            "Container image \"podnet/http-echo\" already present on machine".to_string(),
        ),
        (
            "Normal",
            "Created",
            "kubelet",
            "Created container: echo".to_string(),
        ),
        (
            "Normal",
            "Started",
            "kubelet",
            "Started container echo".to_string(),
        ),
    ];
    let out = eventually("describe pod to list its events", SETTLE, || {
        let out = c.ok(&["describe", "pod", &name]);
        let rows = event_rows(&out);
        let has = |w: &(&str, &str, &str, String)| {
            rows.iter()
                .any(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), &r.3) == (w.0, w.1, w.2, &w.3))
        };
        wanted.iter().all(has).then_some(out)
    });
    // Oldest first: the scheduler's before the kubelet's.
    let reasons: Vec<String> = event_rows(&out).into_iter().map(|r| r.1).collect();
    let scheduled = reasons.iter().position(|r| r == "Scheduled").unwrap();
    let started = reasons.iter().position(|r| r == "Started").unwrap();
    assert!(scheduled < started, "{out}");
    assert!(
        out.contains("  Type    Reason     Age") && out.contains("  ----    ------     ----"),
        "{out}"
    );

    // A readiness probe that fails: Unhealthy, with the kubelet's words.
    let unready = eventually("the unready pod", SETTLE, || {
        let pods = pods_of(&c, "unready");
        pods.first()
            .and_then(|p| p["metadata"]["name"].as_str())
            .map(String::from)
    });
    eventually("an Unhealthy event", SETTLE, || {
        let out = c.ok(&["describe", "pod", &unready]);
        event_rows(&out)
            .iter()
            .any(|r| {
                r.0 == "Warning"
                    && r.1 == "Unhealthy"
                    && r.2 == "kubelet"
                    && r.3.starts_with("Readiness probe failed: Get \"http://")
                    && r.3.contains(":9999/healthz\": dial tcp ")
                    && r.3.ends_with(":9999: connect: connection refused")
            })
            .then_some(())
    });

    // Deleting a pod: the kubelet stops its container and says so.
    c.ok(&["delete", "pod", &name]);
    eventually("a Killing event", SETTLE, || {
        let events = c.json(&["get", "events"]);
        events["items"]
            .as_array()?
            .iter()
            .any(|e| {
                e["involvedObject"]["name"] == name.as_str()
                    && e["reason"] == "Killing"
                    && e["message"] == "Stopping container echo"
                    && e["source"]["component"] == "kubelet"
                    && e["source"]["host"] == node.as_str()
            })
            .then_some(())
    });
    let table = c.ok(&["get", "events"]);
    let header = table.lines().next().unwrap_or("");
    for col in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(table.contains(&format!("pod/{name}")), "{table}");
}

#[test]
fn an_unschedulable_pod_says_why() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  nodeSelector: {disk: ssd}\n  containers: [{name: c, image: podnet/http-echo}]\n",
    );
    eventually("a FailedScheduling event", SETTLE, || {
        let out = c.ok(&["describe", "pod", "nowhere"]);
        event_rows(&out)
            .iter()
            .any(|r| {
                r.0 == "Warning"
                    && r.1 == "FailedScheduling"
                    && r.2 == "default-scheduler"
                    && r.3
                        .starts_with("0/1 nodes are available: 1 node(s) didn't match")
            })
            .then_some(())
    });
}

#[test]
fn describe_deployment_and_service_read_like_kubectl() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(WEB);
    c.apply(WEB_NODEPORT);
    c.ready_pods("web", 3);
    let out = eventually("describe deploy web to count 3 available", SETTLE, || {
        let out = c.ok(&["describe", "deploy", "web"]);
        out.contains("3 desired | 3 updated | 3 total | 3 available | 0 unavailable")
            .then_some(out)
    });
    let rs = c.json(&["get", "rs", "-l", "app=web"])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "Replicas:  ".to_string(),
        "StrategyType:           RollingUpdate".to_string(),
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge".to_string(),
        "Pod Template:".to_string(),
        "    Image:         podnet/http-echo".to_string(),
        format!("NewReplicaSet:   {rs} (3/3 replicas created)"),
        "OldReplicaSets:  <none>".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} missing from\n{out}");
    }
    let out = c.ok(&["describe", "rs", &rs]);
    assert!(out.contains("Controlled By:  Deployment/web"), "{out}");
    assert!(
        out.contains("Pods Status:    3 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{out}"
    );

    // Every label of a block is followed by two spaces at least.
    let out = c.ok(&["describe", "svc", "web"]);
    assert!(out.contains("External Traffic Policy:  Cluster"), "{out}");
    for line in out.lines().take_while(|l| !l.starts_with("Events:")) {
        if line.starts_with(' ') {
            continue;
        }
        let Some((label, rest)) = line.split_once(':') else {
            continue;
        };
        assert!(
            rest.starts_with("  "),
            "{label}: runs into its value in\n{out}"
        );
    }
}
