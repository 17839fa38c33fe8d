//! What the cluster says of a serving pod, as the generator's informers
//! see it: its node's zone and whether it is Terminating. A pod is named
//! by the answer itself (http-echo's JSON) or, for an answer the ingress
//! controller made because the pod failed it, by the address in
//! [`UPSTREAM_HEADER`]; a pod already gone from the cluster when its
//! failure comes back is remembered for a while as having been
//! Terminating.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use podnet_experiment::series::Served;
use podnet_proto::informer::Cache;
use serde_json::Value;
use tokio::sync::watch;

/// The zone label upstream's topology uses.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The response header naming the endpoint (`IP:PORT`) the ingress
/// controller forwarded to.
pub const UPSTREAM_HEADER: &str = "x-podnet-upstream";
/// How long a deleted pod is remembered by its address.
const REMEMBERED: Duration = Duration::from_secs(120);

/// A deleted pod, by its address: who it was and when it went.
type Gone = HashMap<IpAddr, (Served, Instant)>;

/// Nodes and pods, cluster-wide (informer caches).
#[derive(Clone)]
pub struct World {
    pub nodes: watch::Receiver<Cache>,
    pub pods: watch::Receiver<Cache>,
    gone: Arc<Mutex<Gone>>,
}

impl World {
    /// A world over these caches. Pods that leave `pods` are remembered by
    /// their address for two minutes (a task of the current runtime).
    pub fn new(nodes: watch::Receiver<Cache>, pods: watch::Receiver<Cache>) -> World {
        let world = World {
            nodes,
            pods,
            gone: Arc::default(),
        };
        tokio::spawn(remember_gone(world.clone()));
        world
    }

    /// A world that knows nothing: answers name their pod, no zone, never
    /// Terminating.
    pub fn empty() -> World {
        World {
            nodes: watch::channel(Cache::new()).1,
            pods: watch::channel(Cache::new()).1,
            gone: Arc::default(),
        }
    }

    /// Who has address `ip`: a pod of the cluster (Terminating or not), or
    /// one deleted in the last two minutes (it was Terminating when it
    /// failed the request).
    pub fn served_at(&self, ip: IpAddr) -> Option<Served> {
        let live = self
            .pods
            .borrow()
            .values()
            .find(|p| pod_ip(p) == Some(ip))
            .map(|p| {
                let node = p
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Served {
                    zone: self.zone(node),
                    pod: podnet_proto::informer::cache_key(p),
                    node: node.to_string(),
                    terminating: p.pointer("/metadata/deletionTimestamp").is_some(),
                }
            });
        live.or_else(|| {
            let gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
            gone.get(&ip).map(|(s, _)| s.clone())
        })
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

/// The address in a pod's status.
fn pod_ip(pod: &Value) -> Option<IpAddr> {
    pod.pointer("/status/podIP")?.as_str()?.parse().ok()
}

/// Keeps `world.gone` up to date: each change of the pods' cache, the pods
/// with an address that are no longer there are added, and those
/// remembered for longer than [`REMEMBERED`] forgotten.
async fn remember_gone(world: World) {
    let mut pods = world.pods.clone();
    let mut last: BTreeMap<String, (IpAddr, String)> = BTreeMap::new();
    loop {
        let now: BTreeMap<String, (IpAddr, String)> = pods
            .borrow_and_update()
            .iter()
            .filter_map(|(key, p)| {
                let node = p.pointer("/spec/nodeName").and_then(Value::as_str);
                Some((key.clone(), (pod_ip(p)?, node.unwrap_or("").to_string())))
            })
            .collect();
        let left: Vec<_> = last
            .iter()
            .filter(|(key, _)| !now.contains_key(*key))
            .map(|(key, (ip, node))| {
                let served = Served {
                    zone: world.zone(node),
                    pod: key.clone(),
                    node: node.clone(),
                    terminating: true,
                };
                (*ip, served)
            })
            .collect();
        {
            let mut gone = world.gone.lock().unwrap_or_else(PoisonError::into_inner);
            let at = Instant::now();
            gone.retain(|_, (_, when)| at.duration_since(*when) < REMEMBERED);
            gone.extend(left.into_iter().map(|(ip, s)| (ip, (s, at))));
        }
        last = now;
        if pods.changed().await.is_err() {
            return;
        }
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
        let world = World {
            nodes,
            pods,
            gone: Arc::default(),
        };
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

    #[tokio::test]
    async fn a_failing_address_names_its_pod_live_or_deleted() {
        let pod = |name: &str, ip: &str, deleting: bool| {
            let mut p = serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "node-2"},
                "status": {"podIP": ip},
            });
            if deleting {
                p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
            }
            (format!("default/{name}"), p)
        };
        let (pods_tx, pods) = watch::channel(Cache::from([
            pod("web-1", "10.244.2.5", false),
            pod("web-2", "10.244.2.6", true),
        ]));
        let (_nodes_tx, nodes) = watch::channel(Cache::from([(
            "/node-2".to_string(),
            serde_json::json!({"metadata": {"name": "node-2", "labels": {ZONE_LABEL: "b"}}}),
        )]));
        let world = World::new(nodes, pods);
        let at = |ip: &str| world.served_at(ip.parse().unwrap());
        let live = at("10.244.2.5").unwrap();
        assert_eq!(
            (live.pod.as_str(), live.zone.as_str()),
            ("default/web-1", "b")
        );
        assert!(!live.terminating);
        assert!(at("10.244.2.6").unwrap().terminating);
        assert!(at("10.244.2.7").is_none());

        // web-2 goes: its address still names it, as Terminating.
        tokio::task::yield_now().await;
        pods_tx.send_modify(|c| {
            c.remove("default/web-2");
        });
        let mut gone = None;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            gone = at("10.244.2.6");
            if gone.is_some() {
                break;
            }
        }
        let gone = gone.expect("a deleted pod is remembered by its address");
        assert_eq!(
            (gone.pod.as_str(), gone.node.as_str()),
            ("default/web-2", "node-2")
        );
        assert!(gone.terminating);
    }
}
