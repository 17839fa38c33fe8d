//! The scheduler: filter, score, bind, as kube-scheduler does it, for the
//! plugins podnet emulates (NodeReady, NodeUnschedulable, NodeSelector,
//! NodeResourcesFit, PodTopologySpread by owner over nodes and zones).
//!
//! `plan` is pure: pending pods and the cluster in, decisions out. The
//! caller writes the bindings. Taints, affinity and preemption are not
//! emulated.

use std::collections::{BTreeMap, HashMap};

use podnet_proto::model::{DEFAULT_MAX_PODS, LABEL_ZONE, parse_cpu_millis, parse_memory_bytes};
use serde_json::Value;

use crate::nodes::node_is_ready;
use crate::registry::labels_of;
use podnet_proto::model::str_at;

/// The `spec.schedulerName` of the pods this scheduler places; a pod
/// naming another scheduler waits for that one, as with kube-scheduler.
pub const SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind {
        namespace: String,
        pod: String,
        node: String,
    },
    Unschedulable {
        namespace: String,
        pod: String,
        message: String,
    },
}

#[derive(Debug, Default, Clone)]
struct Usage {
    cpu_millis: u64,
    memory: u64,
    pods: u64,
    by_owner: HashMap<String, u64>,
}

struct NodeInfo<'a> {
    name: &'a str,
    zone: &'a str,
    labels: BTreeMap<String, String>,
    cpu_millis: u64,
    memory: u64,
    max_pods: u64,
    schedulable: bool,
}

fn owner_uid(pod: &Value) -> &str {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|o| {
            o.iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
                .or(o.first())
        })
        .map(|o| str_at(o, "/uid"))
        .unwrap_or("")
}

/// (cpu millis, memory bytes) the pod requests, summed over its containers.
fn requests(pod: &Value) -> (u64, u64) {
    let mut cpu = 0;
    let mut mem = 0;
    for c in pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(q) = c.pointer("/resources/requests/cpu").and_then(Value::as_str) {
            cpu += parse_cpu_millis(q).unwrap_or(0);
        }
        if let Some(q) = c
            .pointer("/resources/requests/memory")
            .and_then(Value::as_str)
        {
            mem += parse_memory_bytes(q).unwrap_or(0);
        }
    }
    (cpu, mem)
}

fn is_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Decides where each pending pod goes, in creation order.
pub fn plan(nodes: &[Value], pods: &[Value]) -> Vec<Decision> {
    let infos: Vec<NodeInfo> = nodes
        .iter()
        .map(|n| {
            let alloc = |r: &str| str_at(n, &format!("/status/allocatable/{r}")).to_string();
            NodeInfo {
                name: str_at(n, "/metadata/name"),
                zone: n
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(LABEL_ZONE))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                labels: labels_of(n),
                cpu_millis: parse_cpu_millis(&alloc("cpu")).unwrap_or(u64::MAX),
                memory: parse_memory_bytes(&alloc("memory")).unwrap_or(u64::MAX),
                max_pods: alloc("pods").parse().unwrap_or(u64::from(DEFAULT_MAX_PODS)),
                schedulable: node_is_ready(n)
                    && n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true),
            }
        })
        .collect();
    let mut usage: HashMap<&str, Usage> = HashMap::new();
    for pod in pods {
        let node = str_at(pod, "/spec/nodeName");
        if node.is_empty() || is_terminal(pod) {
            continue;
        }
        let (cpu, mem) = requests(pod);
        let u = usage.entry(node).or_default();
        u.cpu_millis += cpu;
        u.memory += mem;
        u.pods += 1;
        *u.by_owner.entry(owner_uid(pod).to_string()).or_default() += 1;
    }

    let mut pending: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            str_at(p, "/spec/nodeName").is_empty()
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && matches!(str_at(p, "/spec/schedulerName"), "" | SCHEDULER_NAME)
        })
        .collect();
    pending.sort_by(|a, b| {
        (
            str_at(a, "/metadata/creationTimestamp"),
            str_at(a, "/metadata/name"),
        )
            .cmp(&(
                str_at(b, "/metadata/creationTimestamp"),
                str_at(b, "/metadata/name"),
            ))
    });

    let mut out = Vec::new();
    for pod in pending {
        let namespace = str_at(pod, "/metadata/namespace").to_string();
        let name = str_at(pod, "/metadata/name").to_string();
        let (cpu, mem) = requests(pod);
        let owner = owner_uid(pod).to_string();
        let selector: BTreeMap<String, String> = pod
            .pointer("/spec/nodeSelector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();

        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        let mut feasible = Vec::new();
        for n in &infos {
            let u = usage.get(n.name).cloned().unwrap_or_default();
            let reason = if !n.schedulable {
                Some("node(s) were not ready")
            } else if !selector.iter().all(|(k, v)| n.labels.get(k) == Some(v)) {
                Some("node(s) didn't match Pod's node affinity/selector")
            } else if u.cpu_millis.saturating_add(cpu) > n.cpu_millis {
                Some("Insufficient cpu")
            } else if u.memory.saturating_add(mem) > n.memory {
                Some("Insufficient memory")
            } else if u.pods + 1 > n.max_pods {
                Some("Too many pods")
            } else {
                None
            };
            match reason {
                Some(r) => *reasons.entry(r).or_default() += 1,
                None => feasible.push(n),
            }
        }
        if feasible.is_empty() {
            let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            let message = format!(
                "0/{} nodes are available: {}.",
                infos.len(),
                detail.join(", ")
            );
            out.push(Decision::Unschedulable {
                namespace,
                pod: name,
                message,
            });
            continue;
        }
        let zone_count = |zone: &str| -> u64 {
            infos
                .iter()
                .filter(|i| i.zone == zone)
                .map(|i| {
                    usage
                        .get(i.name)
                        .and_then(|u| u.by_owner.get(&owner))
                        .copied()
                        .unwrap_or(0)
                })
                .sum()
        };
        let best = feasible
            .iter()
            .min_by_key(|n| {
                let u = usage.get(n.name);
                let same_owner = if owner.is_empty() {
                    0
                } else {
                    u.and_then(|u| u.by_owner.get(&owner)).copied().unwrap_or(0)
                };
                let same_zone = if owner.is_empty() || n.zone.is_empty() {
                    0
                } else {
                    zone_count(n.zone)
                };
                (
                    same_owner,
                    same_zone,
                    u.map(|u| u.pods).unwrap_or(0),
                    n.name,
                )
            })
            .map(|n| n.name);
        let Some(node) = best else { continue };
        let u = usage.entry(node).or_default();
        u.cpu_millis += cpu;
        u.memory += mem;
        u.pods += 1;
        *u.by_owner.entry(owner).or_default() += 1;
        out.push(Decision::Bind {
            namespace,
            pod: name,
            node: node.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, zone: &str, cpu: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, "disk": if name == "n3" {"ssd"} else {"hdd"}}},
               "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "110"},
                          "conditions": [{"type": "Ready", "status": if ready {"True"} else {"Unknown"}}]}})
    }

    fn pod(name: &str, owner: &str, node: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": format!("t-{name}"),
                            "ownerReferences": [{"uid": owner, "controller": true}]},
               "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    fn check(nodes: &[Value], pods: &[Value], expected: &[&str]) {
        let got: Vec<String> = plan(nodes, pods)
            .into_iter()
            .map(|d| match d {
                Decision::Bind { pod, node, .. } => format!("{pod}->{node}"),
                Decision::Unschedulable { pod, message, .. } => format!("{pod}: {message}"),
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn spreads_replicas_of_one_owner() {
        let nodes = [
            node("n1", "a", "4", true),
            node("n2", "a", "4", true),
            node("n3", "b", "4", true),
        ];
        let pods = [
            pod("p1", "rs", "", "100m"),
            pod("p2", "rs", "", "100m"),
            pod("p3", "rs", "", "100m"),
        ];
        check(&nodes, &pods, &["p1->n1", "p2->n3", "p3->n2"]);
    }

    #[test]
    fn filters_not_ready_and_capacity() {
        let nodes = [node("n1", "a", "1", true), node("n2", "a", "4", false)];
        let pods = [pod("big", "x", "n1", "800m"), pod("p", "rs", "", "500m")];
        check(
            &nodes,
            &pods,
            &["p: 0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were not ready."],
        );
    }

    #[test]
    fn keeps_to_its_own_pods_and_the_nodes_max_pods() {
        let mut full = node("n1", "a", "4", true);
        full["status"]["allocatable"]["pods"] = json!("1");
        let nodes = [full.clone(), {
            let mut n = full;
            n["metadata"]["name"] = json!("n2");
            n
        }];
        let mut other = pod("other", "rs", "", "0");
        other["spec"]["schedulerName"] = json!("my-scheduler");
        let mut ours = pod("ours", "rs", "", "0");
        ours["spec"]["schedulerName"] = json!(SCHEDULER_NAME);
        let pods = [
            pod("a", "x", "n1", "0"),
            pod("b", "x", "n2", "0"),
            other,
            ours,
        ];
        check(
            &nodes,
            &pods,
            &["ours: 0/2 nodes are available: 2 Too many pods."],
        );
    }

    #[test]
    fn honors_node_selector() {
        let nodes = [node("n1", "a", "4", true), node("n3", "a", "4", true)];
        let mut p = pod("p", "rs", "", "0");
        p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        check(&nodes, &[p], &["p->n3"]);
    }
}
