//! Graceful pod termination: a deleted pod keeps serving while it drains
//! (Terminating, `serving` and `terminating` in its EndpointSlice), the
//! service proxy prefers ready endpoints and falls back to the serving
//! terminating ones, preStop hooks run before the container is signalled,
//! and `--grace-period`/`--force` bound or skip the wait.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually, text};
use crate::services::CLIENT;

/// Two http-echo replicas that keep serving 20 s after SIGTERM, behind a
/// Service; and a lone pod that drains for 15 s behind another. The drain
/// times leave room for the checks made while they drain on a busy machine.
const DRAINING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: drain}
spec:
  replicas: 2
  selector: {matchLabels: {app: drain}}
  template:
    metadata: {labels: {app: drain}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          args: ["--drain=20s"]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: drain}
spec:
  selector: {app: drain}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      env: [{name: DRAIN_SECONDS, value: "15"}]
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: solo}
spec:
  selector: {app: solo}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// The pod that answered a GET of `url` from the client, or why not.
fn answered_by(c: &Cluster, url: &str) -> Result<String, String> {
    let out = c.exec("client", &["curl", "-s", "-m", "3", url]);
    if !out.status.success() {
        return Err(format!("curl {url}: {}", text(&out.stderr)));
    }
    let echo: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    echo["pod"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("no pod in {echo}"))
}

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.run(&["get", "pod", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("pod json"))
}

fn terminating(c: &Cluster, name: &str) -> bool {
    pod(c, name).is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
}

/// The conditions of `ip` in Service `svc`'s EndpointSlices.
fn endpoint_conditions(c: &Cluster, svc: &str, ip: &str) -> Option<Value> {
    let slices = c.json(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
    ]);
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["addresses"][0] == ip)
        .map(|e| e["conditions"].clone())
}

fn serving_terminating(conditions: &Value) -> bool {
    conditions["ready"] == false
        && conditions["serving"] == true
        && conditions["terminating"] == true
}

#[test]
fn a_draining_pod_serves_while_terminating_and_the_proxy_prefers_ready_endpoints() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{DRAINING}---{CLIENT}"));
    let pods = c.ready_pods("drain", 2);
    c.ready_pods("solo", 1);
    c.ready_pods("client", 1);
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let victim_ip = pods[0]["status"]["podIP"].as_str().unwrap().to_string();
    let victim_url = format!("http://{victim_ip}:8080/");

    c.ok(&["delete", "pod", &victim]);
    // Terminating: the object stays, its endpoint is serving and
    // terminating, and it still answers on its own address.
    eventually(
        "the victim serving and terminating in its slice",
        Duration::from_secs(10),
        || {
            endpoint_conditions(&c, "drain", &victim_ip)
                .filter(serving_terminating)
                .map(|_| ())
        },
    );
    let p = pod(&c, &victim).expect("the terminating pod is still there");
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30, "{p}");
    assert_eq!(answered_by(&c, &victim_url), Ok(victim.clone()));
    // Through the ClusterIP only ready pods answer (the other replica and
    // the replacement), never the terminating one.
    for _ in 0..10 {
        let who = answered_by(&c, "http://drain/").expect("the Service answers");
        assert_ne!(who, victim, "a terminating pod got a new flow");
    }
    assert!(
        terminating(&c, &victim),
        "the check above ran while the victim was terminating"
    );
    assert_eq!(answered_by(&c, &victim_url), Ok(victim.clone()));
    // It exits after its drain time, and the node finishes the deletion.
    eventually("the victim to be gone", Duration::from_secs(40), || {
        pod(&c, &victim).is_none().then_some(())
    });

    // The only pod of a Service: while it drains the ClusterIP falls back
    // to it (serving and terminating), until it exits.
    let solo_ip = c.json(&["get", "pod", "solo"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["delete", "pod", "solo"]);
    eventually(
        "solo serving and terminating in its slice",
        Duration::from_secs(10),
        || {
            endpoint_conditions(&c, "solo", &solo_ip)
                .filter(serving_terminating)
                .map(|_| ())
        },
    );
    for _ in 0..5 {
        assert_eq!(answered_by(&c, "http://solo/"), Ok("solo".to_string()));
    }
    assert!(
        terminating(&c, "solo"),
        "the fallback ran while terminating"
    );
    eventually("solo to be gone", Duration::from_secs(30), || {
        pod(&c, "solo").is_none().then_some(())
    });
    eventually(
        "the Service to refuse without endpoints",
        Duration::from_secs(10),
        || answered_by(&c, "http://solo/").is_err().then_some(()),
    );
}

/// A preStop hook that sleeps, one that fails, and two pods that would
/// drain for a minute.
const HOOKS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      ports: [{containerPort: 8080}]
      lifecycle: {preStop: {exec: {command: ["sleep", "10"]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      ports: [{containerPort: 8080}]
      lifecycle: {preStop: {exec: {command: ["false"]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      args: ["--drain=60s"]
      ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: forced}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      args: ["--drain=60s"]
      ports: [{containerPort: 8080}]
"#;

fn has_event(c: &Cluster, pod: &str, reason: &str, message: &str) -> bool {
    c.json(&["get", "events"])["items"]
        .as_array()
        .is_some_and(|events| {
            events.iter().any(|e| {
                e["involvedObject"]["name"] == pod
                    && e["reason"] == reason
                    && e["message"].as_str().is_some_and(|m| m.contains(message))
            })
        })
}

#[test]
fn pre_stop_hooks_delay_the_stop_and_grace_period_and_force_bound_it() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(&format!("{HOOKS}---{CLIENT}"));
    let running = |name: &str| {
        eventually(&format!("{name} running"), Duration::from_secs(30), || {
            let p = pod(&c, name)?;
            (crate::harness::is_ready(&p))
                .then(|| p["status"]["podIP"].as_str().map(String::from))?
        })
    };
    let hooked = format!("http://{}:8080/", running("hooked"));
    let slow = format!("http://{}:8080/", running("slow"));
    let forced = format!("http://{}:8080/", running("forced"));
    running("badhook");
    c.ready_pods("client", 1);

    // The hook runs first: the container is told to stop only after it,
    // so the pod is still Terminating and answering after the kubelet
    // said it is stopping the container.
    c.ok(&["delete", "pod", "hooked"]);
    eventually("hooked's Killing event", Duration::from_secs(10), || {
        has_event(&c, "hooked", "Killing", "Stopping container echo").then_some(())
    });
    assert_eq!(answered_by(&c, &hooked), Ok("hooked".to_string()));
    assert!(
        terminating(&c, "hooked"),
        "still terminating during its hook"
    );
    eventually("hooked to be gone", Duration::from_secs(30), || {
        pod(&c, "hooked").is_none().then_some(())
    });

    // A failing hook is reported, and the container is stopped anyway.
    c.ok(&["delete", "pod", "badhook"]);
    eventually("a FailedPreStopHook event", Duration::from_secs(10), || {
        has_event(
            &c,
            "badhook",
            "FailedPreStopHook",
            "Exec lifecycle hook ([\"false\"]) for Container \"echo\" in Pod \"badhook_default(",
        )
        .then_some(())
    });
    eventually("badhook to be gone", Duration::from_secs(30), || {
        pod(&c, "badhook").is_none().then_some(())
    });

    // A drain of a minute within the default 30 s grace period: still
    // serving; deleting it again with --grace-period 3 shortens the grace
    // period, on the object and on the node, which kills it long before.
    c.ok(&["delete", "pod", "slow"]);
    let p = pod(&c, "slow").expect("slow is terminating");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30, "{p}");
    assert_eq!(answered_by(&c, &slow), Ok("slow".to_string()));
    c.ok(&["delete", "pod", "slow", "--grace-period", "3"]);
    let p = pod(&c, "slow").expect("slow is still terminating");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 3, "{p}");
    assert_eq!(answered_by(&c, &slow), Ok("slow".to_string()));
    eventually("slow to be killed", Duration::from_secs(20), || {
        pod(&c, "slow").is_none().then_some(())
    });

    // --grace-period 0 --force: the object is gone at once and the node
    // kills the pod instead of letting it drain.
    let out = c.run(&["delete", "pod", "forced", "--grace-period", "0", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pod \"forced\" force deleted\n");
    assert!(
        text(&out.stderr).contains("Immediate deletion does not wait for confirmation"),
        "{}",
        text(&out.stderr)
    );
    assert!(pod(&c, "forced").is_none(), "removed at once");
    eventually("forced to stop answering", Duration::from_secs(10), || {
        answered_by(&c, &forced).is_err().then_some(())
    });
}
