//! Judging one flow against an [`Index`]: the egress side (at the source
//! pod's node) and the ingress side (at the destination pod's node), each
//! with the reason for its verdict.

use std::fmt;
use std::sync::Arc;

use crate::index::Index;
use crate::model::{Direction, Endpoint, Flow, PodInfo, PolicyRef};
use crate::policy::{Peer, PortMatch, PortSpec, Rule};

/// One side's decision, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The pod is isolated for the direction and these policies' rules
    /// allow the flow (in name order; the names are the index's, shared).
    Allowed { by: Vec<Arc<PolicyRef>> },
    /// No policy selecting the pod has the direction in its policyTypes.
    NotIsolated { direction: Direction },
    /// This side is not a pod (an outside source has no egress side, an
    /// outside destination no ingress side).
    NotAPod { direction: Direction },
    /// A pod talking to itself, which no policy can block.
    SamePod,
    /// Traffic between a pod and its own node (kubelet probes), which no
    /// policy can block.
    LocalNode { direction: Direction },
    /// The pod is isolated for the direction by these policies and none of
    /// their rules allows the flow.
    Denied {
        direction: Direction,
        isolating: Vec<Arc<PolicyRef>>,
    },
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }
}

/// `a/x, b/y`.
struct Refs<'a>(&'a [Arc<PolicyRef>]);

impl fmt::Display for Refs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, policy) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{policy}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allowed { by } => write!(f, "allowed by {}", Refs(by)),
            Verdict::NotIsolated { direction } => {
                write!(f, "no policy selects the pod for {direction}")
            }
            Verdict::NotAPod {
                direction: Direction::Egress,
            } => f.write_str("the source is not a pod, so there is no egress side"),
            Verdict::NotAPod {
                direction: Direction::Ingress,
            } => f.write_str("the destination is not a pod, so there is no ingress side"),
            Verdict::SamePod => f.write_str("a pod can always reach itself"),
            Verdict::LocalNode {
                direction: Direction::Ingress,
            } => f.write_str("from the pod's own node, always allowed"),
            Verdict::LocalNode {
                direction: Direction::Egress,
            } => f.write_str("to the pod's own node, always allowed"),
            Verdict::Denied {
                direction,
                isolating,
            } => write!(
                f,
                "isolated for {direction} by {}, no rule allows",
                Refs(isolating)
            ),
        }
    }
}

/// Both sides of a flow: it connects iff both allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub egress: Verdict,
    pub ingress: Verdict,
}

impl Judgement {
    pub fn is_allowed(&self) -> bool {
        self.egress.is_allowed() && self.ingress.is_allowed()
    }

    /// The side that refused, egress first (it is judged first, at the
    /// source node).
    pub fn denied(&self) -> Option<&Verdict> {
        [&self.egress, &self.ingress]
            .into_iter()
            .find(|v| !v.is_allowed())
    }
}

impl fmt::Display for Judgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.denied() {
            Some(v) => write!(f, "denied: {v}"),
            None => write!(
                f,
                "allowed: egress {}; ingress {}",
                self.egress, self.ingress
            ),
        }
    }
}

impl Index {
    /// The egress side, judged at the source pod's node before the flow
    /// leaves it.
    pub fn judge_egress(&self, flow: &Flow) -> Verdict {
        let Some(src) = flow.src.pod() else {
            return Verdict::NotAPod {
                direction: Direction::Egress,
            };
        };
        if flow.dst.pod_key() == Some(&src.key) {
            return Verdict::SamePod;
        }
        if let Endpoint::External(ip) = &flow.dst
            && self.is_node_ip(&src.node, *ip)
        {
            return Verdict::LocalNode {
                direction: Direction::Egress,
            };
        }
        self.judge_side(src, Direction::Egress, &flow.dst, flow)
    }

    /// The ingress side, judged at the destination pod's node.
    pub fn judge_ingress(&self, flow: &Flow) -> Verdict {
        let Some(dst) = flow.dst.pod() else {
            return Verdict::NotAPod {
                direction: Direction::Ingress,
            };
        };
        if flow.src.pod_key() == Some(&dst.key) {
            return Verdict::SamePod;
        }
        if let Endpoint::External(ip) = &flow.src
            && self.is_node_ip(&dst.node, *ip)
        {
            return Verdict::LocalNode {
                direction: Direction::Ingress,
            };
        }
        self.judge_side(dst, Direction::Ingress, &flow.src, flow)
    }

    /// Both sides, as one process would judge a flow between two of its
    /// own pods.
    pub fn judge(&self, flow: &Flow) -> Judgement {
        Judgement {
            egress: self.judge_egress(flow),
            ingress: self.judge_ingress(flow),
        }
    }

    /// `subject` is the pod whose policies speak (the source for egress,
    /// the destination for ingress); `peer` the other end. The isolating
    /// policies are only listed for a denial, which names them.
    fn judge_side(
        &self,
        subject: &PodInfo,
        direction: Direction,
        peer: &Endpoint,
        flow: &Flow,
    ) -> Verdict {
        let mut isolated = false;
        let mut by = Vec::new();
        for policy in self.selecting(&subject.key) {
            let Some(rules) = policy.rules(direction) else {
                continue;
            };
            isolated = true;
            let ns = &policy.key().namespace;
            if rules.iter().any(|r| self.rule_allows(r, ns, peer, flow)) {
                by.push(policy.shared_key().clone());
            }
        }
        if !isolated {
            Verdict::NotIsolated { direction }
        } else if by.is_empty() {
            Verdict::Denied {
                direction,
                isolating: self
                    .selecting(&subject.key)
                    .filter(|p| p.isolates(direction))
                    .map(|p| p.shared_key().clone())
                    .collect(),
            }
        } else {
            Verdict::Allowed { by }
        }
    }

    fn rule_allows(&self, rule: &Rule, policy_ns: &str, peer: &Endpoint, flow: &Flow) -> bool {
        let peer_ok = rule.peers.is_empty()
            || rule
                .peers
                .iter()
                .any(|p| self.peer_matches(p, policy_ns, peer));
        let port_ok =
            rule.ports.is_empty() || rule.ports.iter().any(|p| self.port_matches(p, flow));
        peer_ok && port_ok
    }

    fn peer_matches(&self, peer: &Peer, policy_ns: &str, end: &Endpoint) -> bool {
        match peer {
            Peer::Block { cidr, except } => Peer::block_contains(cidr, except, end.ip()),
            Peer::Pods { pods, namespaces } => {
                let Some(pod) = end.pod() else {
                    return false;
                };
                let ns_ok = match namespaces {
                    None => pod.key.namespace == policy_ns,
                    Some(sel) => sel.matches(&self.namespace_labels(&pod.key.namespace)),
                };
                ns_ok && pods.as_ref().is_none_or(|sel| sel.matches(&pod.labels))
            }
        }
    }

    /// The flow's protocol and destination port against one `ports` entry.
    /// Named ports resolve against the destination pod's container ports,
    /// by name and protocol, for both directions.
    fn port_matches(&self, entry: &PortMatch, flow: &Flow) -> bool {
        if entry.protocol != flow.protocol {
            return false;
        }
        match &entry.port {
            PortSpec::Any => true,
            PortSpec::Range(first, last) => (*first..=*last).contains(&flow.dst_port),
            PortSpec::Named(name) => {
                flow.dst
                    .pod()
                    .and_then(|pod| pod.named_port(name, entry.protocol))
                    == Some(flow.dst_port)
            }
        }
    }
}

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod tests;
