//! The cluster-scoped kinds: Namespace, Node and podnet's own Link.

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podnet_proto::model::{LinkSpec, parse_duration, parse_percent, parse_rate};
use serde::{Deserialize, Serialize};

use super::field::{Errors, FieldPath};
use super::names::dns1123_subdomain;

/// The label the API server puts on every namespace, so that a
/// NetworkPolicy's namespaceSelector can pick a namespace by name.
const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// `SetDefaults_Namespace` and the create strategy: the name label and an
/// `Active` phase. The `kubernetes` finalizer is deliberately not added:
/// podnet deletes a namespace's contents itself, with no namespace
/// controller to remove it.
pub(super) fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(LABEL_NAMESPACE_NAME.to_string(), name);
    }
    let status = ns.status.get_or_insert_with(Default::default);
    if status.phase.as_deref().is_none_or(str::is_empty) {
        status.phase = Some("Active".to_string());
    }
}

/// `spec.podCIDR` and `spec.podCIDRs` are one field in two versions: the
/// API server keeps `podCIDR` equal to `podCIDRs[0]`.
pub(super) fn admit_node(node: &mut Node, errs: &mut Errors) {
    let Some(spec) = &mut node.spec else { return };
    let path = FieldPath::new("spec");
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty())
        && cidr.parse::<IpNet>().is_err()
    {
        errs.invalid(
            &path.child("podCIDR"),
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        );
    }
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        if cidr.parse::<IpNet>().is_err() {
            errs.invalid(
                &path.child("podCIDRs").index(i),
                cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            );
        }
    }
    // Synced after the checks, so a bad CIDR is reported once, where given.
    match (&spec.pod_cidr, &spec.pod_cidrs) {
        (Some(single), None) if !single.is_empty() => spec.pod_cidrs = Some(vec![single.clone()]),
        (None, Some(list)) => spec.pod_cidr = list.first().cloned(),
        (Some(single), Some(list)) if list.first().is_some_and(|first| first != single) => {
            errs.invalid(
                &path.child("podCIDRs"),
                list,
                "must start with spec.podCIDR",
            );
        }
        _ => {}
    }
}

/// A Link object as stored. k8s-openapi has no type for it; its spec is
/// podnet's own schema, which rejects unknown fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Link {
    #[serde(rename = "apiVersion")]
    pub(super) api_version: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) metadata: ObjectMeta,
    pub(super) spec: LinkSpec,
}

/// Parses one Link setting, keeping only the reason it is wrong.
type SettingCheck = fn(&str) -> Result<(), String>;

/// Every setting checked on its own (so all bad ones are reported), then
/// `LinkSpec::params` as the authority on what the node will accept.
pub(super) fn validate_link(link: &Link, errs: &mut Errors) {
    let path = FieldPath::new("spec");
    let spec = &link.spec;
    for (field, node) in [("from", &spec.from), ("to", &spec.to)] {
        if node.is_empty() {
            errs.required(&path.child(field), "the name of a node");
        } else {
            errs.invalid_each(&path.child(field), node, dns1123_subdomain(node));
        }
    }
    let checks: [(&str, &Option<String>, SettingCheck); 6] = [
        ("delay", &spec.delay, |s| parse_duration(s).map(drop)),
        ("jitter", &spec.jitter, |s| parse_duration(s).map(drop)),
        ("loss", &spec.loss, |s| parse_percent(s).map(drop)),
        ("rate", &spec.rate, |s| parse_rate(s).map(drop)),
        ("duplicate", &spec.duplicate, |s| parse_percent(s).map(drop)),
        ("reorder", &spec.reorder, |s| parse_percent(s).map(drop)),
    ];
    let mut settings_ok = true;
    for (field, value, check) in checks {
        if let Some(v) = value
            && let Err(reason) = check(v)
        {
            errs.invalid(&path.child(field), v, &reason);
            settings_ok = false;
        }
    }
    if settings_ok
        && !spec.from.is_empty()
        && !spec.to.is_empty()
        && let Err(e) = spec.params()
    {
        let field = path.child(e.field);
        match e.field {
            // Rules between fields: the value is fine, its company is not.
            "partitionMode" => errs.forbidden(&field, &e.reason),
            "reorder" => errs.invalid(&field, spec.reorder.as_deref().unwrap_or(""), &e.reason),
            _ => errs.invalid(&field, "", &e.reason),
        }
    }

    // The name is the key nodes look their link up by.
    if let Some(name) = link.metadata.name.as_deref().filter(|n| !n.is_empty())
        && !spec.from.is_empty()
        && !spec.to.is_empty()
        && name != spec.name()
    {
        errs.invalid(
            &FieldPath::new("metadata").child("name"),
            name,
            &format!(
                "must be {:?}: spec.from and spec.to joined by '.'",
                spec.name()
            ),
        );
    }
}
