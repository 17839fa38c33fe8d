//! What the cluster says of a serving pod, as the generator's informers
//! see it: its node's zone and whether it is Terminating.

use podnet_experiment::series::Served;
use podnet_proto::informer::Cache;
use serde_json::Value;
use tokio::sync::watch;

/// The zone label upstream's topology uses.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Nodes and pods, cluster-wide (informer caches).
#[derive(Clone)]
pub struct World {
    pub nodes: watch::Receiver<Cache>,
    pub pods: watch::Receiver<Cache>,
}

impl World {
    /// A world that knows nothing: answers name their pod, no zone, never
    /// Terminating.
    pub fn empty() -> World {
        World {
            nodes: watch::channel(Cache::new()).1,
            pods: watch::channel(Cache::new()).1,
        }
    }

    /// The zone of node `name` (empty when it has none).
    pub fn zone(&self, node: &str) -> String {
        self.nodes
            .borrow()
            .get(&format!("/{node}"))
            .and_then(|n| n.pointer("/metadata/labels")?.get(ZONE_LABEL)?.as_str())
            .unwrap_or("")
            .to_string()
    }

    /// Who served `answer` (http-echo's JSON: `pod`, `namespace`, `node`).
    pub fn served(&self, answer: &Value) -> Option<Served> {
        let pod = answer.get("pod")?.as_str()?;
        let namespace = answer
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let node = answer.get("node").and_then(Value::as_str).unwrap_or("");
        let key = format!("{namespace}/{pod}");
        let terminating = self
            .pods
            .borrow()
            .get(&key)
            .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some());
        Some(Served {
            zone: self.zone(node),
            pod: key,
            node: node.to_string(),
            terminating,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_their_pod_its_zone_and_its_state() {
        let (_pods_tx, pods) = watch::channel(Cache::from([(
            "default/web-1".to_string(),
            serde_json::json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        )]));
        let (_nodes_tx, nodes) = watch::channel(Cache::from([(
            "/node-2".to_string(),
            serde_json::json!({"metadata": {"name": "node-2", "labels": {ZONE_LABEL: "b"}}}),
        )]));
        let world = World { nodes, pods };
        let s = world
            .served(&serde_json::json!({"pod": "web-1", "namespace": "default", "node": "node-2"}))
            .unwrap();
        assert_eq!(s.pod, "default/web-1");
        assert_eq!(s.zone, "b");
        assert!(s.terminating);
        let s = world
            .served(&serde_json::json!({"pod": "web-2", "node": "node-1"}))
            .unwrap();
        assert!(!s.terminating);
        assert_eq!(s.zone, "");
        assert!(world.served(&serde_json::json!({"hello": 1})).is_none());
    }
}
