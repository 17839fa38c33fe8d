//! The pod garbage collector's orphan rule (kube-controller-manager's
//! `gcOrphaned`): a pod bound to a node that does not exist is deleted at
//! once (force, no grace period: no kubelet is left to stop it). Pure:
//! the stored pods and node names in, the pods to delete out.
//!
//! Upstream waits out a 40 s quarantine because it reads from an informer
//! cache that may lag; podnet reads the store itself, so the node's absence
//! is a fact at the time of the pass. Terminated pods past a threshold and
//! unscheduled terminating pods (upstream's other two rules) are not
//! collected.

use std::collections::BTreeSet;

use podnet_proto::model::{Kind, ObjectKey, str_at};
use serde_json::Value;

/// The pods of `pods` bound to a node not in `nodes`.
pub(super) fn orphaned(pods: &[Value], nodes: &BTreeSet<&str>) -> Vec<ObjectKey> {
    pods.iter()
        .filter(|p| {
            let node = str_at(p, "/spec/nodeName");
            !node.is_empty() && !nodes.contains(node)
        })
        .map(|p| {
            ObjectKey::new(
                Kind::Pod,
                str_at(p, "/metadata/namespace"),
                str_at(p, "/metadata/name"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(pods: &[(&str, &str)], nodes: &[&str], expected: &[&str]) {
        let pods: Vec<Value> = pods
            .iter()
            .map(|(name, node)| {
                let mut p = json!({"metadata": {"namespace": "default", "name": name}, "spec": {}});
                if !node.is_empty() {
                    p["spec"]["nodeName"] = json!(node);
                }
                p
            })
            .collect();
        let nodes: BTreeSet<&str> = nodes.iter().copied().collect();
        let got: Vec<String> = orphaned(&pods, &nodes)
            .iter()
            .map(|k| k.name.clone())
            .collect();
        assert_eq!(got, expected, "{pods:?} on {nodes:?}");
    }

    #[test]
    fn pods_of_missing_nodes_are_orphans() {
        check(
            &[("a", "node-1"), ("b", "node-2")],
            &["node-1", "node-2"],
            &[],
        );
        check(&[("a", "node-1"), ("b", "node-2")], &["node-1"], &["b"]);
        check(&[("a", "node-1"), ("b", "node-1")], &[], &["a", "b"]);
        // Not scheduled yet: the scheduler's, not the collector's.
        check(&[("pending", "")], &[], &[]);
        // Names are compared whole.
        check(&[("a", "node-1")], &["node-10"], &["a"]);
    }
}
