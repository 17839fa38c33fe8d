//! [`Index`]: the compiled policies, pods, namespace labels and node
//! addresses one judge needs, with the pod → selecting-policies index kept
//! up to date incrementally.
//!
//! Each update touches only what it can change: a pod's upsert recomputes
//! that pod's selecting policies (the policies of its namespace); a
//! policy's upsert or removal recomputes which pods of its namespace it
//! selects. Namespace and node updates recompute nothing: peers are judged
//! against the labels and addresses held at judging time. Memory is
//! proportional to the objects held; nothing is kept of removed ones.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::model::{Endpoint, LABEL_NAMESPACE_NAME, PodInfo, PodKey, PolicyRef};
use crate::policy::Policy;

/// Everything a verdict is made from. See the crate docs for the rules.
///
/// Pods and policies are held shared: judging a flow copies no name, label
/// or rule, only counts references (the endpoints and the verdict's
/// policy names). Cloning an index is as cheap, and leaves both copies
/// independent.
#[derive(Debug, Clone, Default)]
pub struct Index {
    policies: BTreeMap<PolicyRef, Arc<Policy>>,
    pods: BTreeMap<PodKey, Arc<PodInfo>>,
    /// Pod IPs to the pods holding them (normally one; two while a pod
    /// that left and the pod that got its address overlap in the informer).
    by_ip: HashMap<IpAddr, BTreeMap<PodKey, Arc<PodInfo>>>,
    /// Namespace labels, `kubernetes.io/metadata.name` included.
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    nodes: BTreeMap<String, Vec<IpAddr>>,
    /// Pod → the policies whose podSelector selects it, by name. Pods no
    /// policy selects have no entry.
    selecting: BTreeMap<PodKey, BTreeMap<PolicyRef, Arc<Policy>>>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds or replaces a policy (by namespace/name).
    pub fn upsert_policy(&mut self, policy: Policy) {
        let policy = Arc::new(policy);
        let key = policy.key().clone();
        let selected: Vec<(PodKey, bool)> = pods_in(&self.pods, &key.namespace)
            .map(|(k, pod)| (k.clone(), policy.selects(pod)))
            .collect();
        for (pod, selects) in selected {
            self.set_selecting(&pod, &policy, selects);
        }
        self.policies.insert(key, policy);
    }

    pub fn remove_policy(&mut self, key: &PolicyRef) -> Option<Policy> {
        let removed = self.policies.remove(key)?;
        let pods: Vec<PodKey> = pods_in(&self.pods, &key.namespace)
            .map(|(k, _)| k.clone())
            .collect();
        for pod in pods {
            self.set_selecting(&pod, &removed, false);
        }
        Some(Arc::unwrap_or_clone(removed))
    }

    /// Adds or replaces a pod (by namespace/name): its labels, addresses,
    /// ports and node may all have changed.
    pub fn upsert_pod(&mut self, pod: PodInfo) {
        let pod = Arc::new(pod);
        let key = pod.key.clone();
        self.forget_ips(&key);
        for ip in &pod.ips {
            self.by_ip
                .entry(*ip)
                .or_default()
                .insert(key.clone(), pod.clone());
        }
        let selecting: BTreeMap<PolicyRef, Arc<Policy>> =
            policies_in(&self.policies, &key.namespace)
                .filter(|(_, p)| p.selects(&pod))
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
        if selecting.is_empty() {
            self.selecting.remove(&key);
        } else {
            self.selecting.insert(key.clone(), selecting);
        }
        self.pods.insert(key, pod);
    }

    pub fn remove_pod(&mut self, key: &PodKey) -> Option<PodInfo> {
        self.forget_ips(key);
        self.selecting.remove(key);
        self.pods.remove(key).map(Arc::unwrap_or_clone)
    }

    /// Sets a namespace's labels. `kubernetes.io/metadata.name` is added
    /// when missing, as the API server guarantees it.
    pub fn upsert_namespace(&mut self, name: &str, mut labels: BTreeMap<String, String>) {
        labels
            .entry(LABEL_NAMESPACE_NAME.to_string())
            .or_insert_with(|| name.to_string());
        self.namespaces.insert(name.to_string(), labels);
    }

    /// Forgets a namespace's labels (its pods and policies are removed by
    /// their own calls, as their deletions arrive).
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Sets a node's addresses (its InternalIPs): traffic between a pod and
    /// these is always allowed.
    pub fn upsert_node(&mut self, name: &str, ips: Vec<IpAddr>) {
        self.nodes.insert(name.to_string(), ips);
    }

    pub fn remove_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Does the index hold any policy? Without one every flow is allowed.
    pub fn has_policies(&self) -> bool {
        !self.policies.is_empty()
    }

    pub fn policy(&self, key: &PolicyRef) -> Option<&Policy> {
        self.policies.get(key).map(|p| &**p)
    }

    pub fn pod(&self, key: &PodKey) -> Option<&PodInfo> {
        self.pods.get(key).map(|p| &**p)
    }

    /// The policies whose podSelector selects the pod, in name order.
    pub fn selecting(&self, pod: &PodKey) -> impl Iterator<Item = &Policy> + '_ {
        self.selecting
            .get(pod)
            .into_iter()
            .flat_map(|policies| policies.values().map(|p| &**p))
    }

    /// The endpoint at `ip`: the pod holding it, else an outside address.
    /// What the datapath calls with a flow's addresses after DNAT.
    pub fn endpoint(&self, ip: IpAddr) -> Endpoint {
        match self.by_ip.get(&ip).and_then(|pods| pods.first_key_value()) {
            Some((_, pod)) => Endpoint::Pod {
                pod: pod.clone(),
                ip,
            },
            None => Endpoint::External(ip),
        }
    }

    /// A held pod as an endpoint at its first address.
    pub fn pod_endpoint(&self, key: &PodKey) -> Option<Endpoint> {
        let pod = self.pods.get(key)?;
        Some(Endpoint::Pod {
            pod: pod.clone(),
            ip: *pod.ips.first()?,
        })
    }

    /// A namespace's labels: as held, or for one not (yet) seen just its
    /// name label, which every namespace has.
    pub(crate) fn namespace_labels(&self, name: &str) -> Cow<'_, BTreeMap<String, String>> {
        match self.namespaces.get(name) {
            Some(labels) => Cow::Borrowed(labels),
            None => Cow::Owned(BTreeMap::from([(
                LABEL_NAMESPACE_NAME.to_string(),
                name.to_string(),
            )])),
        }
    }

    /// Whether `ip` is an address of `node`.
    pub(crate) fn is_node_ip(&self, node: &str, ip: IpAddr) -> bool {
        self.nodes.get(node).is_some_and(|ips| ips.contains(&ip))
    }

    fn set_selecting(&mut self, pod: &PodKey, policy: &Arc<Policy>, selects: bool) {
        if selects {
            self.selecting
                .entry(pod.clone())
                .or_default()
                .insert(policy.key().clone(), policy.clone());
        } else if let Some(set) = self.selecting.get_mut(pod) {
            set.remove(policy.key());
            if set.is_empty() {
                self.selecting.remove(pod);
            }
        }
    }

    fn forget_ips(&mut self, key: &PodKey) {
        let Some(old) = self.pods.get(key) else {
            return;
        };
        for ip in &old.ips {
            if let Some(set) = self.by_ip.get_mut(ip) {
                set.remove(key);
                if set.is_empty() {
                    self.by_ip.remove(ip);
                }
            }
        }
    }
}

/// The pods of one namespace: a range of the map, which sorts by namespace
/// first.
fn pods_in<'a>(
    pods: &'a BTreeMap<PodKey, Arc<PodInfo>>,
    namespace: &'a str,
) -> impl Iterator<Item = (&'a PodKey, &'a Arc<PodInfo>)> + 'a {
    pods.range(PodKey::new(namespace, "")..)
        .take_while(move |(k, _)| k.namespace == namespace)
}

fn policies_in<'a>(
    policies: &'a BTreeMap<PolicyRef, Arc<Policy>>,
    namespace: &'a str,
) -> impl Iterator<Item = (&'a PolicyRef, &'a Arc<Policy>)> + 'a {
    policies
        .range(PolicyRef::new(namespace, "")..)
        .take_while(move |(k, _)| k.namespace == namespace)
}

#[cfg(test)]
mod tests;
