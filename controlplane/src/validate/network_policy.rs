//! networking.k8s.io/v1 NetworkPolicy: the API server's defaults
//! (`SetDefaults_NetworkPolicy`, `SetDefaults_NetworkPolicyPort`) and
//! `ValidateNetworkPolicySpec`, whose checks and wording are
//! `podnet_netpol::validate`'s: the same walk the nodes compile policies
//! with, so a stored policy is one every node can enforce.
//!
//! Deliberately not here: the object's metadata (`meta::admit` checks it as
//! for every kind; podnet-netpol's own `metadata.name` check is dropped
//! rather than reported twice) and whether the namespace exists (the
//! registry's, as for every namespaced kind).

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPort};

use super::field::Errors;

const PROTOCOL_TCP: &str = "TCP";
const POLICY_TYPE_INGRESS: &str = "Ingress";
const POLICY_TYPE_EGRESS: &str = "Egress";

/// What the API server stores of what was written: a Go struct's zero
/// values made explicit (`spec` and its `podSelector` are never absent
/// there), every port's protocol TCP when unset, and `policyTypes`, when
/// empty, `[Ingress]` plus `Egress` for a policy with egress rules.
pub(super) fn default_network_policy(policy: &mut NetworkPolicy) {
    let spec = policy.spec.get_or_insert_default();
    spec.pod_selector.get_or_insert_default();
    if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut types = vec![POLICY_TYPE_INGRESS.to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push(POLICY_TYPE_EGRESS.to_string());
        }
        spec.policy_types = Some(types);
    }
    let ingress_ports = spec
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    let egress_ports = spec
        .egress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    ingress_ports.chain(egress_ports).for_each(default_port);
}

fn default_port(port: &mut NetworkPolicyPort) {
    port.protocol
        .get_or_insert_with(|| PROTOCOL_TCP.to_string());
}

/// `ValidateNetworkPolicySpec`, every problem with its field path.
pub(super) fn validate_network_policy(policy: &NetworkPolicy, errs: &mut Errors) {
    for error in podnet_netpol::validate(policy) {
        if error.path == "metadata" || error.path.starts_with("metadata.") {
            continue;
        }
        errs.worded(&error.path, error.body());
    }
}
