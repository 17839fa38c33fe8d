//! A NetworkPolicy compiled for judging: selectors and CIDRs parsed once,
//! `policyTypes` and `protocol` defaulted as the API server defaults them,
//! rules of a direction the policy does not isolate dropped.
//!
//! [`compile`] and [`validate`] share one walk over the object, so what
//! one refuses the other reports, with the same field paths.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podnet_proto::model::LabelSelector;

use crate::invalid::{CidrProblem, FieldError, InvalidPolicy};
use crate::model::{Direction, PodInfo, PolicyRef, Protocol};
use podnet_proto::model::names;

/// The namespace of a policy whose metadata names none, as `kubectl`
/// without a context namespace would create it.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A compiled NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Shared with the verdicts that name the policy.
    key: Arc<PolicyRef>,
    pod_selector: LabelSelector,
    /// `Some` iff Ingress is among the effective policyTypes.
    ingress: Option<Vec<Rule>>,
    /// `Some` iff Egress is among the effective policyTypes.
    egress: Option<Vec<Rule>>,
}

impl Policy {
    pub fn key(&self) -> &PolicyRef {
        &self.key
    }

    /// The key as verdicts hold it: a count, not a copy.
    pub(crate) fn shared_key(&self) -> &Arc<PolicyRef> {
        &self.key
    }

    /// Whether this policy's podSelector picks `pod` (a pod of another
    /// namespace never).
    pub fn selects(&self, pod: &PodInfo) -> bool {
        pod.key.namespace == self.key.namespace && self.pod_selector.matches(&pod.labels)
    }

    /// Whether `direction` is among the effective policyTypes.
    pub fn isolates(&self, direction: Direction) -> bool {
        self.rules(direction).is_some()
    }

    /// The rules of `direction`, `None` when the policy does not isolate it.
    pub(crate) fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// One ingress or egress rule: traffic is allowed when some peer matches
/// the other end and some port entry matches the destination port. Empty
/// means all, for either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) peers: Vec<Peer>,
    pub(crate) ports: Vec<PortMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Pods: `pods` `None` is any pod; `namespaces` `None` is the policy's
    /// own namespace only.
    Pods {
        pods: Option<LabelSelector>,
        namespaces: Option<LabelSelector>,
    },
    /// Addresses in `cidr` and in none of `except`.
    Block { cidr: IpNet, except: Vec<IpNet> },
}

impl Peer {
    pub(crate) fn block_contains(cidr: &IpNet, except: &[IpNet], ip: IpAddr) -> bool {
        cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortMatch {
    pub(crate) protocol: Protocol,
    pub(crate) port: PortSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PortSpec {
    /// No `port`: every port of the protocol.
    Any,
    /// `port`, or `port`..=`endPort`.
    Range(u16, u16),
    /// A container port's name, resolved against the destination pod.
    Named(String),
}

/// Compiles `policy`, or names the first thing wrong with it (the first of
/// what [`validate`] would list).
pub fn compile(policy: &NetworkPolicy) -> Result<Policy, InvalidPolicy> {
    let mut problems = Vec::new();
    let compiled = walk(policy, &mut problems);
    match problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(compiled),
    }
}

/// Every problem with `policy`, as the API server would report them on
/// create (`ValidateNetworkPolicySpec`, plus a missing name). Empty means
/// [`compile`] succeeds.
pub fn validate(policy: &NetworkPolicy) -> Vec<FieldError> {
    let mut problems = Vec::new();
    walk(policy, &mut problems);
    problems.iter().map(InvalidPolicy::field_error).collect()
}

/// The walk both share: the compiled policy (meaningless when `problems`
/// grew) and every problem, in upstream's order.
fn walk(policy: &NetworkPolicy, problems: &mut Vec<InvalidPolicy>) -> Policy {
    let name = policy.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        problems.push(InvalidPolicy::MissingName {
            path: "metadata.name".into(),
        });
    }
    let namespace = policy
        .metadata
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    // A Go struct upstream: an absent spec is an empty one.
    let empty = NetworkPolicySpec::default();
    let spec = policy.spec.as_ref().unwrap_or(&empty);

    let pod_selector = match &spec.pod_selector {
        Some(sel) => selector(sel, "spec.podSelector", problems),
        None => LabelSelector::everything(),
    };

    let mut ingress = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let path = format!("spec.ingress[{i}]");
        ingress.push(Rule {
            ports: ports(rule.ports.as_deref(), &path, problems),
            peers: peers(rule.from.as_deref(), &format!("{path}.from"), problems),
        });
    }
    let mut egress = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let path = format!("spec.egress[{i}]");
        egress.push(Rule {
            ports: ports(rule.ports.as_deref(), &path, problems),
            peers: peers(rule.to.as_deref(), &format!("{path}.to"), problems),
        });
    }

    let (isolates_ingress, isolates_egress) = policy_types(spec, problems);
    Policy {
        key: Arc::new(PolicyRef::new(namespace, name)),
        pod_selector,
        ingress: isolates_ingress.then_some(ingress),
        egress: isolates_egress.then_some(egress),
    }
}

/// The effective policyTypes (`SetDefaults_NetworkPolicy`): as given, or
/// when none are given Ingress always and Egress when there are egress
/// rules.
fn policy_types(spec: &NetworkPolicySpec, problems: &mut Vec<InvalidPolicy>) -> (bool, bool) {
    let given = spec.policy_types.as_deref().unwrap_or_default();
    if given.is_empty() {
        let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        return (true, has_egress);
    }
    if given.len() > 2 {
        problems.push(InvalidPolicy::TooManyPolicyTypes {
            path: "spec.policyTypes".into(),
            value: given.to_vec(),
        });
        return (false, false);
    }
    let (mut ingress, mut egress) = (false, false);
    for (i, t) in given.iter().enumerate() {
        match t.as_str() {
            "Ingress" => ingress = true,
            "Egress" => egress = true,
            other => problems.push(InvalidPolicy::PolicyType {
                path: format!("spec.policyTypes[{i}]"),
                value: other.to_string(),
            }),
        }
    }
    (ingress, egress)
}

/// `ValidateNetworkPolicyPort` for each entry, and the compiled entries.
fn ports(
    entries: Option<&[NetworkPolicyPort]>,
    rule_path: &str,
    problems: &mut Vec<InvalidPolicy>,
) -> Vec<PortMatch> {
    let mut out = Vec::new();
    for (i, entry) in entries.unwrap_or_default().iter().enumerate() {
        let path = format!("{rule_path}.ports[{i}]");
        let protocol = match entry.protocol.as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                problems.push(InvalidPolicy::Protocol {
                    path: format!("{path}.protocol"),
                    value: other.to_string(),
                });
                Protocol::Tcp
            }
        };
        let end_path = format!("{path}.endPort");
        let port = match (&entry.port, entry.end_port) {
            (None, None) => PortSpec::Any,
            (None, Some(end)) => {
                problems.push(InvalidPolicy::EndPortWithoutPort {
                    path: end_path,
                    value: end,
                });
                PortSpec::Any
            }
            (Some(IntOrString::Int(p)), end) => {
                let start = port_number(i64::from(*p), &format!("{path}.port"), problems);
                let last = match end {
                    None => start,
                    Some(end) => {
                        if end < *p {
                            problems.push(InvalidPolicy::EndPortBelowPort {
                                path: end_path.clone(),
                                value: end,
                            });
                        }
                        port_number(i64::from(end), &end_path, problems)
                    }
                };
                PortSpec::Range(start, last)
            }
            (Some(IntOrString::String(name)), end) => {
                if let Some(end) = end {
                    problems.push(InvalidPolicy::EndPortWithNamedPort {
                        path: end_path,
                        value: end,
                    });
                }
                for reason in names::port_name(name) {
                    problems.push(InvalidPolicy::PortName {
                        path: format!("{path}.port"),
                        value: name.clone(),
                        reason,
                    });
                }
                PortSpec::Named(name.clone())
            }
        };
        out.push(PortMatch { protocol, port });
    }
    out
}

/// `IsValidPortNum`: the port, or 0 after recording the problem.
fn port_number(value: i64, path: &str, problems: &mut Vec<InvalidPolicy>) -> u16 {
    match u16::try_from(value) {
        Ok(p) if p != 0 => p,
        _ => {
            problems.push(InvalidPolicy::PortNumber {
                path: path.to_string(),
                value,
            });
            0
        }
    }
}

/// `ValidateNetworkPolicyPeer` for each peer, and the compiled peers.
fn peers(
    entries: Option<&[NetworkPolicyPeer]>,
    list_path: &str,
    problems: &mut Vec<InvalidPolicy>,
) -> Vec<Peer> {
    let mut out = Vec::new();
    for (i, peer) in entries.unwrap_or_default().iter().enumerate() {
        let path = format!("{list_path}[{i}]");
        let pods = peer
            .pod_selector
            .as_ref()
            .map(|s| selector(s, &format!("{path}.podSelector"), problems));
        let namespaces = peer
            .namespace_selector
            .as_ref()
            .map(|s| selector(s, &format!("{path}.namespaceSelector"), problems));
        let block = peer
            .ip_block
            .as_ref()
            .map(|b| ip_block(b, &format!("{path}.ipBlock"), problems));
        let count = usize::from(pods.is_some())
            + usize::from(namespaces.is_some())
            + usize::from(block.is_some());
        if count == 0 {
            problems.push(InvalidPolicy::NoPeer { path });
            continue;
        }
        if count > 1 && block.is_some() {
            problems.push(InvalidPolicy::IpBlockWithSelector { path });
            continue;
        }
        out.push(match block {
            // An unparsable block was recorded; the placeholder is never
            // judged with, since the policy does not compile.
            Some(block) => block.unwrap_or(Peer::Block {
                cidr: IpNet::default(),
                except: Vec::new(),
            }),
            None => Peer::Pods { pods, namespaces },
        });
    }
    out
}

/// `ValidateIPBlock`: a valid `cidr`, and each `except` a valid CIDR
/// strictly inside it.
fn ip_block(block: &IPBlock, path: &str, problems: &mut Vec<InvalidPolicy>) -> Option<Peer> {
    let cidr_path = format!("{path}.cidr");
    if block.cidr.is_empty() {
        problems.push(InvalidPolicy::CidrRequired { path: cidr_path });
        return None;
    }
    let cidr = cidr(&block.cidr, &cidr_path, problems)?;
    let mut except = Vec::new();
    for (i, e) in block.except.iter().flatten().enumerate() {
        let except_path = format!("{path}.except[{i}]");
        let Some(net) = self::cidr(e, &except_path, problems) else {
            continue;
        };
        if !cidr.contains(&net.network()) || cidr.prefix_len() >= net.prefix_len() {
            problems.push(InvalidPolicy::ExceptNotSubset {
                path: except_path,
                value: e.clone(),
            });
            continue;
        }
        except.push(net);
    }
    Some(Peer::Block { cidr, except })
}

/// A CIDR parsed strictly (upstream's `IsValidCIDRForLegacyField` with
/// strict validation). Records the problem and gives up only when the
/// value cannot be read at all; otherwise the network (its host bits
/// cleared, as Go's parser reads it).
fn cidr(value: &str, path: &str, problems: &mut Vec<InvalidPolicy>) -> Option<IpNet> {
    let mut refuse = |problem| {
        problems.push(InvalidPolicy::Cidr {
            path: path.to_string(),
            value: value.to_string(),
            problem,
        })
    };
    let leading_zeros = has_leading_zeros(value);
    // Go's sloppy parser reads "010.0.0.0/8" (as 10.0.0.0/8); such a value
    // is one with leading zeros, not an unreadable one, whatever ipnet
    // makes of it.
    let parsed = IpNet::from_str(value)
        .ok()
        .or_else(|| leading_zeros.then(|| IpNet::from_str(&strip_zeros(value)).ok())?);
    let Some(net) = parsed else {
        refuse(CidrProblem::Unparsable);
        return None;
    };
    if leading_zeros {
        refuse(CidrProblem::LeadingZeros);
    } else if let IpNet::V6(v6) = net
        && v6.addr().to_ipv4_mapped().is_some()
    {
        refuse(CidrProblem::Ipv4Mapped);
    } else if net.trunc() != net {
        refuse(CidrProblem::BitsBeyondPrefix);
    }
    Some(net.trunc())
}

/// Whether a decimal part of a CIDR (an IPv4 octet, the prefix length)
/// has a leading zero.
fn has_leading_zeros(value: &str) -> bool {
    let zero_led = |part: &str| part.len() > 1 && part.starts_with('0');
    let Some((addr, prefix)) = value.rsplit_once('/') else {
        return false;
    };
    let v4 = addr.rsplit(':').next().unwrap_or_default();
    zero_led(prefix) || (v4.contains('.') && v4.split('.').any(zero_led))
}

/// `value` with the leading zeros of its decimal parts removed.
fn strip_zeros(value: &str) -> String {
    let strip = |part: &str| match part.trim_start_matches('0') {
        "" if !part.is_empty() => "0".to_string(),
        t => t.to_string(),
    };
    let (addr, prefix) = value.rsplit_once('/').unwrap_or((value, ""));
    let (head, v4) = match addr.rsplit_once(':') {
        Some((h, t)) => (format!("{h}:"), t),
        None => (String::new(), addr),
    };
    let v4 = if v4.contains('.') {
        v4.split('.').map(strip).collect::<Vec<_>>().join(".")
    } else {
        v4.to_string()
    };
    format!("{head}{v4}/{}", strip(prefix))
}

/// `ValidateLabelSelector`, then the parsed selector. Values are checked
/// as label values (upstream's `AllowInvalidLabelValueInSelector` is off
/// for new objects).
fn selector(
    sel: &meta::LabelSelector,
    path: &str,
    problems: &mut Vec<InvalidPolicy>,
) -> LabelSelector {
    let before = problems.len();
    let labels_path = format!("{path}.matchLabels");
    for (k, v) in sel.match_labels.iter().flatten() {
        label_key(k, &labels_path, problems);
        for reason in names::label_value(v) {
            problems.push(InvalidPolicy::LabelValue {
                path: labels_path.clone(),
                value: v.clone(),
                reason,
            });
        }
    }
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let expr_path = format!("{path}.matchExpressions[{i}]");
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                problems.push(InvalidPolicy::SelectorValuesRequired {
                    path: format!("{expr_path}.values"),
                });
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                problems.push(InvalidPolicy::SelectorValuesForbidden {
                    path: format!("{expr_path}.values"),
                });
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => problems.push(InvalidPolicy::SelectorOperator {
                path: format!("{expr_path}.operator"),
                value: other.to_string(),
            }),
        }
        label_key(&expr.key, &format!("{expr_path}.key"), problems);
        for (j, v) in values.iter().enumerate() {
            for reason in names::label_value(v) {
                problems.push(InvalidPolicy::LabelValue {
                    path: format!("{expr_path}.values[{j}]"),
                    value: v.clone(),
                    reason,
                });
            }
        }
    }
    if problems.len() > before {
        return LabelSelector::everything();
    }
    LabelSelector::from_k8s(sel).unwrap_or_else(|source| {
        problems.push(InvalidPolicy::Selector {
            path: path.to_string(),
            source,
        });
        LabelSelector::everything()
    })
}

/// `ValidateLabelName`.
fn label_key(key: &str, path: &str, problems: &mut Vec<InvalidPolicy>) {
    for reason in names::qualified_name(key) {
        problems.push(InvalidPolicy::LabelKey {
            path: path.to_string(),
            value: key.to_string(),
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
