//! The EndpointSlice mirroring controller: a Service without a selector
//! and an Endpoints object written by hand carry traffic, because the
//! Endpoints is mirrored into an EndpointSlice the service proxy reads.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, eventually};
use crate::services::CLIENT;

const BACKENDS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: backend-1, labels: {app: backend}}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: backend-2, labels: {app: backend}}
spec:
  containers:
    - name: echo
      image: podnet/http-echo
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// The hand-written Endpoints of `external`, listing `ip`, with `labels`.
fn endpoints(ip: &str, labels: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Endpoints
metadata: {{name: external, labels: {{{labels}}}}}
subsets:
  - addresses: [{{ip: {ip}}}]
    ports: [{{name: http, port: 8080}}]
"#
    )
}

fn pod_ip(c: &Cluster, name: &str) -> String {
    c.json(&["get", "pod", name])["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_string()
}

/// The slices labelled for Service `external`.
fn slices(c: &Cluster) -> Vec<Value> {
    c.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=external",
    ])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one mirrored slice, once it lists exactly `ip`.
fn mirrored_with(c: &Cluster, ip: &str) -> Value {
    eventually(
        &format!("a mirrored slice listing {ip}"),
        Duration::from_secs(15),
        || {
            let slices = slices(c);
            let [slice] = &slices[..] else { return None };
            let addresses: Vec<&str> = slice["endpoints"]
                .as_array()?
                .iter()
                .filter_map(|e| e["addresses"][0].as_str())
                .collect();
            (addresses == [ip]).then(|| slice.clone())
        },
    )
}

/// Which pod answers `url` from the client, once it is `pod`.
fn answered_by(c: &Cluster, url: &str, pod: &str) {
    eventually(
        &format!("{url} answered by {pod}"),
        Duration::from_secs(15),
        || {
            let out = c.exec("client", &["curl", "-s", "-m", "2", url]);
            if !out.status.success() {
                return None;
            }
            let echo: Value = serde_json::from_slice(&out.stdout).ok()?;
            (echo["pod"] == pod).then_some(())
        },
    );
}

#[test]
fn a_hand_written_endpoints_is_mirrored_and_carries_traffic() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{BACKENDS}---{CLIENT}"));
    c.ready_pods("backend", 2);
    c.ready_pods("client", 1);
    let (ip1, ip2) = (pod_ip(&c, "backend-1"), pod_ip(&c, "backend-2"));

    c.apply(&format!("{SERVICE}---{}", endpoints(&ip1, "team: data")));
    let slice = mirrored_with(&c, &ip1);
    let labels = &slice["metadata"]["labels"];
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io",
        "{slice:#}"
    );
    assert_eq!(labels["kubernetes.io/service-name"], "external");
    assert_eq!(labels["team"], "data", "the Endpoints' labels are copied");
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Endpoints");
    assert_eq!(owner["name"], "external");
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(slice["ports"][0]["port"], 8080);

    let cluster_ip = c.json(&["get", "svc", "external"])["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    answered_by(&c, "http://external/", "backend-1");
    answered_by(&c, &format!("http://{cluster_ip}/"), "backend-1");

    // The Endpoints changed: the slice follows under its name, and so
    // does the traffic.
    c.apply(&endpoints(&ip2, "team: data"));
    let moved = mirrored_with(&c, &ip2);
    assert_eq!(moved["metadata"]["name"], slice["metadata"]["name"]);
    answered_by(&c, "http://external/", "backend-2");

    // The Endpoints deleted: the slice goes, and the Service refuses.
    c.ok(&["delete", "endpoints", "external"]);
    eventually("the mirrored slice to go", Duration::from_secs(15), || {
        slices(&c).is_empty().then_some(())
    });
    eventually("the Service to refuse", Duration::from_secs(15), || {
        let out = c.exec("client", &["curl", "-s", "-m", "2", "http://external/"]);
        (!out.status.success()).then_some(())
    });

    // Written again it is mirrored again; labelled skip-mirror it is not.
    c.apply(&endpoints(&ip1, "team: data"));
    mirrored_with(&c, &ip1);
    c.apply(&endpoints(
        &ip1,
        r#"team: data, endpointslice.kubernetes.io/skip-mirror: "true""#,
    ));
    eventually(
        "the slice of a skip-mirror Endpoints to go",
        Duration::from_secs(15),
        || slices(&c).is_empty().then_some(()),
    );
    // The Endpoints itself stays, as written.
    let kept = c.ok(&["get", "endpoints", "external"]);
    assert!(kept.contains(&ip1), "{kept}");
}
