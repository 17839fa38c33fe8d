//! Cordon and drain of a node through the API, as `kubectl cordon` and
//! `kubectl drain` do them: `spec.unschedulable` on the Node, then an
//! Eviction for every pod bound to it but those a drain leaves (DaemonSet
//! pods, which the DaemonSet would put back at once, and mirror pods,
//! which the API cannot delete). An eviction refused with 429 (a
//! PodDisruptionBudget that allows no disruption now) is tried again on
//! the next step, as kubectl retries it, until the caller's deadline.
//!
//! Deliberately not here: the waiting. [`drain_step`] does one round and
//! says what is left, so the experiment's timeline (or a command) decides
//! how often and how long.

use anyhow::Context;
use podnet_proto::v1::{EvictRequest, GetRequest, ObjectRequest};
use serde_json::{Value, json};

use crate::api::{self, Api};

/// Sets a node's `spec.unschedulable` (true: cordon, false: uncordon);
/// gives what it was. Read, set, write with the version read, again on a
/// conflict (the node's own status writes race with it).
pub async fn cordon(api: &mut Api, node: &str, unschedulable: bool) -> anyhow::Result<bool> {
    for _ in 0..10 {
        let got = api
            .get(GetRequest {
                kind: "Node".into(),
                namespace: String::new(),
                name: node.into(),
            })
            .await
            .map_err(api::status_error)
            .with_context(|| format!("reading node {node}"))?;
        let mut object: Value = serde_json::from_slice(&got.into_inner().object)
            .with_context(|| format!("node {node}: the server sent a bad object"))?;
        let before = is_unschedulable(&object);
        if before == unschedulable {
            return Ok(before);
        }
        match object.get_mut("spec").and_then(Value::as_object_mut) {
            Some(spec) => {
                spec.insert("unschedulable".into(), json!(unschedulable));
            }
            None => object["spec"] = json!({"unschedulable": unschedulable}),
        }
        let body = ObjectRequest {
            object: serde_json::to_vec(&object)?,
        };
        match api.update(body).await {
            Ok(_) => return Ok(before),
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => {
                return Err(api::status_error(s)).with_context(|| format!("updating node {node}"));
            }
        }
    }
    anyhow::bail!("node {node} kept changing while being cordoned; try again")
}

/// `spec.unschedulable` of a Node object.
pub fn is_unschedulable(node: &Value) -> bool {
    node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true)
}

/// Whether a drain evicts this pod: bound to `node`, not owned by a
/// DaemonSet, not a mirror pod (kubectl drain's filters, with
/// `--ignore-daemonsets`).
pub fn evictable(pod: &Value, node: &str) -> bool {
    let on_node = pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node);
    let daemon = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        });
    let mirror = pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some();
    on_node && !daemon && !mirror
}

/// `NS/NAME` of a pod.
pub fn pod_name(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default"),
        pod.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// What one round of a drain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainStep {
    /// Pods still bound to the node that a drain evicts (terminating ones
    /// included): the drain is over when none is left.
    pub left: Vec<String>,
    /// Pods whose eviction was refused for now (429), to try again.
    pub refused: Vec<String>,
}

/// One round of a drain: evicts every evictable pod of `node` that is not
/// terminating yet; says which are left.
pub async fn drain_step(api: &mut Api, node: &str) -> anyhow::Result<DrainStep> {
    let req = podnet_proto::v1::ListRequest {
        kind: "Pod".into(),
        field_selector: format!("spec.nodeName={node}"),
        ..Default::default()
    };
    let (pods, _) = api::list_all(api, req)
        .await
        .with_context(|| format!("listing the pods of node {node}"))?;
    let mut step = DrainStep::default();
    for pod in pods.iter().filter(|p| evictable(p, node)) {
        let name = pod_name(pod);
        step.left.push(name.clone());
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let (namespace, pod_name) = name.split_once('/').unwrap_or(("default", &name));
        let req = EvictRequest {
            namespace: namespace.to_string(),
            name: pod_name.to_string(),
            grace_period_seconds: None,
            node_pressure: String::new(),
        };
        match api.evict(req).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::ResourceExhausted => step.refused.push(name),
            // Gone since the list: nothing left to evict.
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                return Err(api::status_error(s)).with_context(|| format!("evicting pod {name}"));
            }
        }
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_evicts_the_pods_of_its_node_but_daemonset_and_mirror_pods() {
        let check = |pod: Value, expected: bool| {
            assert_eq!(evictable(&pod, "node-1"), expected, "{pod}");
        };
        check(
            json!({"metadata": {"name": "web-1"}, "spec": {"nodeName": "node-1"}}),
            true,
        );
        check(
            json!({"metadata": {"name": "web-1", "ownerReferences": [{"kind": "ReplicaSet", "name": "web-x"}]}, "spec": {"nodeName": "node-1"}}),
            true,
        );
        check(
            json!({"metadata": {"name": "web-2"}, "spec": {"nodeName": "node-2"}}),
            false,
        );
        check(json!({"metadata": {"name": "pending"}, "spec": {}}), false);
        check(
            json!({"metadata": {"name": "agent", "ownerReferences": [{"kind": "DaemonSet", "name": "agent"}]}, "spec": {"nodeName": "node-1"}}),
            false,
        );
        check(
            json!({"metadata": {"name": "static", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"nodeName": "node-1"}}),
            false,
        );
    }

    #[test]
    fn cordoned_is_spec_unschedulable() {
        assert!(is_unschedulable(&json!({"spec": {"unschedulable": true}})));
        assert!(!is_unschedulable(
            &json!({"spec": {"unschedulable": false}})
        ));
        assert!(!is_unschedulable(&json!({"spec": {}})));
        assert_eq!(
            pod_name(&json!({"metadata": {"name": "a", "namespace": "shop"}})),
            "shop/a"
        );
        assert_eq!(pod_name(&json!({"metadata": {"name": "a"}})), "default/a");
    }
}
