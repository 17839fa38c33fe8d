//! The EndpointSlice mirroring controller: for a Service without a
//! selector, the v1 Endpoints a user wrote for it, copied into
//! EndpointSlices (which is all the service proxy and cluster DNS read),
//! as upstream's (pkg/controller/endpointslicemirroring) does.
//!
//! [`skip`] and [`desired`] are the pure part (an Endpoints object, its
//! Service and its mirrored slices in; the slices it should have out);
//! [`reconcile`] writes the difference. As upstream:
//! - an Endpoints object is mirrored while a Service of its name exists
//!   without a selector, it has no `endpointslice.kubernetes.io/skip-mirror:
//!   "true"` label and no leader-election annotation; otherwise, and once it
//!   is deleted, its mirrored slices are deleted;
//! - the subsets are first repacked into their canonical form
//!   (`RepackSubsets`: one subset per set of addresses, an address listed
//!   twice kept once, not-ready winning over ready); then each subset gives
//!   one slice per address family, with at most
//!   `--mirroring-max-endpoints-per-subset` (1000) of its addresses, ready
//!   ones first; addresses that are not IPs are skipped;
//! - `addresses` become endpoints with `ready: true`, `notReadyAddresses`
//!   `ready: false`, and nothing else set in `conditions` (readers take
//!   `serving` from `ready`); hostname, nodeName and targetRef are copied;
//! - a slice carries the Endpoints' labels, `kubernetes.io/service-name`
//!   and `endpointslice.kubernetes.io/managed-by:
//!   endpointslicemirroring-controller.k8s.io`, the Endpoints' annotations
//!   but the last-applied and trigger-time ones, and a controller
//!   ownerReference to the Endpoints;
//! - the controller's slices are those with its managed-by label and the
//!   service-name label; slices of the EndpointSlice controller and slices
//!   users made are never touched. A slice whose ports and family are no
//!   longer wanted is reused (renamed content) for a new set before any is
//!   created, as upstream recycles slices;
//! - skipped addresses are reported as Warning Events on the Endpoints
//!   (`InvalidIPAddress`, `TooManyAddressesToMirror`, upstream's messages),
//!   each once: a pass that sees the same skip again records nothing.
//!
//! Beyond upstream: an Endpoints object labelled
//! `endpoints.kubernetes.io/managed-by: endpoint-controller` is never
//! mirrored. It is the Endpoints controller's own object, left behind when
//! its Service loses its selector, and mirroring it would keep sending
//! traffic to pods nobody selects any more.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use podnet_proto::events::{self, EventType, Source};
use podnet_proto::model::{Kind, ObjectKey, str_at};
use serde_json::{Map, Value, json};

use super::endpointslice::{ENDPOINTS_MANAGED_BY, LABEL_MANAGED_BY, new_slice_name};
use super::{key_of_value, owner_reference, record_event};
use crate::registry::{ApiError, Registry, labels_of};
use crate::store::StoreError;
use crate::validate::LABEL_SERVICE_NAME;

/// This controller's value of [`LABEL_MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Set to "true" on an Endpoints object that must not be mirrored.
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// `resourcelock.LeaderElectionRecordAnnotationKey`: an Endpoints object
/// used as a leader-election lock holds no endpoints.
pub const ANNOTATION_LEADER: &str = "control-plane.alpha.kubernetes.io/leader";
/// Annotations of the Endpoints that are not copied.
const NOT_MIRRORED_ANNOTATIONS: &[&str] = &[
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
];
/// `--mirroring-max-endpoints-per-subset`, the controller manager's default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

/// What the controller's Events name as their source.
const SOURCE: Source<'static> = Source {
    component: "endpoint-slice-mirroring-controller",
    host: None,
};

/// Why an Endpoints object is not mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No Service of its name.
    NoService,
    /// Its Service has a selector: the EndpointSlice controller serves it.
    Selector,
    /// `endpointslice.kubernetes.io/skip-mirror: "true"`.
    SkipMirrorLabel,
    /// A leader-election lock.
    LeaderElection,
    /// Written by the Endpoints controller.
    EndpointController,
}

/// Why `endpoints` (whose Service, by name, is `service`) is not mirrored;
/// `None` when it is.
pub fn skip(endpoints: &Value, service: Option<&Value>) -> Option<Skip> {
    let labels = labels_of(endpoints);
    let (managed_by, endpoint_controller) = ENDPOINTS_MANAGED_BY;
    if labels.get(LABEL_SKIP_MIRROR).map(String::as_str) == Some("true") {
        Some(Skip::SkipMirrorLabel)
    } else if endpoints
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(ANNOTATION_LEADER))
    {
        Some(Skip::LeaderElection)
    } else if labels.get(managed_by).map(String::as_str) == Some(endpoint_controller) {
        Some(Skip::EndpointController)
    } else {
        match service {
            None => Some(Skip::NoService),
            // Any selector, even `{}`: the EndpointSlice controller takes a
            // Service whose selector is an object, and one Service never
            // gets slices from both.
            Some(s) if s.pointer("/spec/selector").is_some_and(Value::is_object) => {
                Some(Skip::Selector)
            }
            Some(_) => None,
        }
    }
}

/// The slices one Endpoints object should have, and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirrored {
    /// Every slice, named (existing names kept where the ports and family
    /// are the same), sorted by name.
    pub slices: Vec<Value>,
    /// Addresses skipped for not being IPs.
    pub invalid: usize,
    /// Addresses skipped in all, the invalid ones included.
    pub skipped: usize,
}

/// One address of a repacked subset.
#[derive(Debug, Clone, Copy)]
struct Address<'a> {
    value: &'a Value,
    ready: bool,
}

/// A subset in canonical form: its ports (slice ports, sorted) and its
/// addresses, ready first, each list sorted by IP and targetRef uid.
struct Subset<'a> {
    ports: Vec<Value>,
    addresses: Vec<Address<'a>>,
}

/// An Endpoints port as an EndpointSlice port: the name is "" when unset
/// and the protocol TCP (their defaults).
fn slice_port(port: &Value) -> Value {
    let mut out = json!({
        "name": str_at(port, "/name"),
        "protocol": match str_at(port, "/protocol") { "" => "TCP", p => p },
    });
    if let Some(number) = port.get("port").filter(|n| !n.is_null()) {
        out["port"] = number.clone();
    }
    if let Some(app) = port.get("appProtocol").filter(|a| !a.is_null()) {
        out["appProtocol"] = app.clone();
    }
    out
}

fn sorted_ports(ports: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut ports: Vec<Value> = ports.collect();
    ports.sort_by(|a, b| {
        let key = |p: &Value| {
            (
                str_at(p, "/name").to_string(),
                p.get("port").and_then(Value::as_i64),
                str_at(p, "/protocol").to_string(),
                p.to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    ports.dedup();
    ports
}

fn list<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `RepackSubsets`: for each port, which addresses offer it (an address is
/// its IP and targetRef uid; the first listing of it is the one kept, and
/// not-ready in any listing makes it not ready for that port), then one
/// subset per set of addresses with every port they share. A subset
/// without ports keeps its addresses, without ports.
fn repack(subsets: &[Value]) -> Vec<Subset<'_>> {
    type Key<'a> = (&'a str, &'a str);
    let mut first: HashMap<Key<'_>, &Value> = HashMap::new();
    // Port (as text, "" for none) → the port, and its addresses.
    let mut by_port: BTreeMap<String, (Option<Value>, BTreeMap<Key<'_>, bool>)> = BTreeMap::new();
    for subset in subsets {
        let ports: Vec<Option<Value>> = match list(subset, "/ports") {
            [] => vec![None],
            ports => ports.iter().map(|p| Some(slice_port(p))).collect(),
        };
        let addresses = list(subset, "/addresses").iter().map(|a| (a, true)).chain(
            list(subset, "/notReadyAddresses")
                .iter()
                .map(|a| (a, false)),
        );
        for (address, ready) in addresses {
            let key = (str_at(address, "/ip"), str_at(address, "/targetRef/uid"));
            first.entry(key).or_insert(address);
            for port in &ports {
                let text = port.as_ref().map(Value::to_string).unwrap_or_default();
                let readiness = by_port
                    .entry(text)
                    .or_insert_with(|| (port.clone(), BTreeMap::new()))
                    .1
                    .entry(key)
                    .or_insert(ready);
                // Not ready trumps ready.
                *readiness &= ready;
            }
        }
    }
    // Set of addresses (as text) → its ports and addresses.
    type Group<'a, 'b> = (Vec<Value>, &'b BTreeMap<Key<'a>, bool>);
    let mut groups: BTreeMap<String, Group<'_, '_>> = BTreeMap::new();
    for (port, addresses) in by_port.values() {
        let text = format!("{addresses:?}");
        let group = groups
            .entry(text)
            .or_insert_with(|| (Vec::new(), addresses));
        if let Some(port) = port {
            group.0.push(port.clone());
        }
    }
    groups
        .into_values()
        .map(|(ports, addresses)| {
            let pick = |ready: bool| {
                addresses
                    .iter()
                    .filter(move |(_, r)| **r == ready)
                    .filter_map(|(key, _)| first.get(key).copied())
                    .map(move |value| Address { value, ready })
            };
            Subset {
                ports: sorted_ports(ports.into_iter()),
                addresses: pick(true).chain(pick(false)).collect(),
            }
        })
        .collect()
}

/// The address family of an Endpoints IP and its canonical text; `None`
/// when it is not an IP. An IPv4-mapped IPv6 address is IPv4, as Go's
/// `To4` has it.
fn family(ip: &str) -> Option<(&'static str, String)> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(("IPv4", v4.to_string())),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(("IPv4", v4.to_string())),
            None => Some(("IPv6", v6.to_string())),
        },
    }
}

/// `addressToEndpoint`.
fn slice_endpoint(address: &Value, ip: String, ready: bool) -> Value {
    let mut endpoint = json!({"addresses": [ip], "conditions": {"ready": ready}});
    if let Some(target) = address.get("targetRef").filter(|t| !t.is_null()) {
        endpoint["targetRef"] = target.clone();
    }
    let node = str_at(address, "/nodeName");
    if !node.is_empty() {
        endpoint["nodeName"] = json!(node);
    }
    let hostname = str_at(address, "/hostname");
    if !hostname.is_empty() {
        endpoint["hostname"] = json!(hostname);
    }
    endpoint
}

/// What identifies a slice of one Endpoints: its address family and
/// ports, as text.
fn slice_key(address_type: &str, ports: &[Value]) -> (String, String) {
    (
        address_type.to_string(),
        Value::Array(ports.to_vec()).to_string(),
    )
}

fn existing_key(slice: &Value) -> (String, String) {
    let ports = sorted_ports(list(slice, "/ports").iter().map(slice_port));
    slice_key(str_at(slice, "/addressType"), &ports)
}

/// The labels of a mirrored slice (`newEndpointSlice`).
fn slice_labels(endpoints: &Value) -> Map<String, Value> {
    let mut labels: Map<String, Value> = labels_of(endpoints)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        json!(str_at(endpoints, "/metadata/name")),
    );
    labels.insert(LABEL_MANAGED_BY.into(), json!(CONTROLLER_NAME));
    labels
}

fn slice_annotations(endpoints: &Value) -> Map<String, Value> {
    endpoints
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !NOT_MIRRORED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn slice_object(
    endpoints: &Value,
    name: &str,
    address_type: &str,
    ports: &[Value],
    slice_endpoints: Vec<Value>,
) -> Value {
    let mut slice = json!({
        "apiVersion": Kind::EndpointSlice.api_version(),
        "kind": Kind::EndpointSlice.as_str(),
        "metadata": {
            "name": name,
            "namespace": str_at(endpoints, "/metadata/namespace"),
            "labels": slice_labels(endpoints),
            "ownerReferences": [owner_reference(endpoints)],
        },
        "addressType": address_type,
        "endpoints": slice_endpoints,
    });
    let annotations = slice_annotations(endpoints);
    if !annotations.is_empty() {
        slice["metadata"]["annotations"] = Value::Object(annotations);
    }
    if !ports.is_empty() {
        slice["ports"] = json!(ports);
    }
    slice
}

/// The slices `endpoints` should have, given the slices already mirrored
/// from it (`existing`) and the names of every slice in its namespace
/// (`taken`, for new names). Whether it should be mirrored at all is
/// [`skip`]'s to say.
pub fn desired(
    endpoints: &Value,
    existing: &[&Value],
    taken: &BTreeSet<String>,
    max_per_subset: usize,
) -> Mirrored {
    // (family, ports) → ports, endpoints by (address, text): sorted, and
    // an endpoint listed twice is one.
    type Group = (Vec<Value>, BTreeMap<(String, String), Value>);
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    let (mut invalid, mut skipped) = (0, 0);
    for subset in repack(list(endpoints, "/subsets")) {
        let mut added = 0;
        for address in &subset.addresses {
            if added >= max_per_subset {
                break;
            }
            let Some((address_type, ip)) = family(str_at(address.value, "/ip")) else {
                invalid += 1;
                continue;
            };
            let endpoint = slice_endpoint(address.value, ip.clone(), address.ready);
            groups
                .entry(slice_key(address_type, &subset.ports))
                .or_insert_with(|| (subset.ports.clone(), BTreeMap::new()))
                .1
                .insert((ip, endpoint.to_string()), endpoint);
            added += 1;
        }
        skipped += subset.addresses.len() - added;
    }

    let mut by_key: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    let mut existing: Vec<&Value> = existing.to_vec();
    existing.sort_by_key(|s| str_at(s, "/metadata/name"));
    for slice in existing {
        by_key.entry(existing_key(slice)).or_default().push(slice);
    }
    // Each wanted key keeps the first of its slices; the others, and the
    // slices of keys no longer wanted, are reused before a name is made.
    let mut names: BTreeMap<&(String, String), String> = BTreeMap::new();
    let mut spare: Vec<&Value> = Vec::new();
    for key in groups.keys() {
        if let Some(slices) = by_key.remove(key) {
            names.insert(key, str_at(slices[0], "/metadata/name").to_string());
            spare.extend(&slices[1..]);
        }
    }
    spare.extend(by_key.into_values().flatten());
    spare.sort_by_key(|s| str_at(s, "/metadata/name"));
    let mut taken = taken.clone();
    for key in groups.keys() {
        if names.contains_key(key) {
            continue;
        }
        let name = match spare
            .iter()
            .position(|s| str_at(s, "/addressType") == key.0)
        {
            Some(i) => str_at(spare.remove(i), "/metadata/name").to_string(),
            None => new_slice_name(endpoints, &format!("{key:?}"), &mut taken),
        };
        names.insert(key, name);
    }

    let mut slices: Vec<Value> = groups
        .iter()
        .map(|(key, (ports, endpoints_by_address))| {
            let slice_endpoints: Vec<Value> = endpoints_by_address
                .values()
                .take(max_per_subset)
                .cloned()
                .collect();
            slice_object(endpoints, &names[key], &key.0, ports, slice_endpoints)
        })
        .collect();
    slices.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));
    Mirrored {
        slices,
        invalid,
        skipped,
    }
}

/// True when `slice` is one of this controller's.
pub fn mirrored(slice: &Value) -> bool {
    labels_of(slice).get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// `current` with the fields of `want` this controller owns, or `None`
/// when they already agree. A missing list or map and an empty one are
/// the same.
fn updated(current: &Value, want: &Value) -> Option<Value> {
    let or_empty = |v: Option<&Value>, empty: Value| match v {
        None | Some(Value::Null) => empty,
        Some(x) => x.clone(),
    };
    let fields = [
        ("/addressType", json!("")),
        ("/endpoints", json!([])),
        ("/ports", json!([])),
        ("/metadata/labels", json!({})),
        ("/metadata/annotations", json!({})),
        ("/metadata/ownerReferences", json!([])),
    ];
    if fields.iter().all(|(pointer, empty)| {
        or_empty(current.pointer(pointer), empty.clone())
            == or_empty(want.pointer(pointer), empty.clone())
    }) {
        return None;
    }
    let mut next = current.clone();
    for (pointer, _) in fields {
        let (parent, field) = pointer.rsplit_once('/')?;
        let object = if parent.is_empty() {
            next.as_object_mut()?
        } else {
            next.pointer_mut(parent)?.as_object_mut()?
        };
        match want.pointer(pointer) {
            Some(v) => object.insert(field.into(), v.clone()),
            None => object.remove(field),
        };
    }
    Some(next)
}

/// Records a Warning about `endpoints` unless the very same one exists.
fn warn_once(registry: &Registry, endpoints: &Value, reason: &str, message: &str) {
    let key = ObjectKey::new(
        Kind::Event,
        events::event_namespace(endpoints),
        &events::event_name(endpoints, EventType::Warning, reason, message),
    );
    if let Ok(None) = registry.get(&key) {
        record_event(
            registry,
            endpoints,
            EventType::Warning,
            reason,
            message,
            SOURCE,
        );
    }
}

fn report_skipped(registry: &Registry, endpoints: &Value, m: &Mirrored, max: usize) {
    if m.invalid > 0 {
        warn_once(
            registry,
            endpoints,
            "InvalidIPAddress",
            &format!(
                "Skipped {} invalid IP addresses when mirroring to EndpointSlices",
                m.invalid
            ),
        );
    }
    if m.skipped > m.invalid {
        warn_once(
            registry,
            endpoints,
            "TooManyAddressesToMirror",
            &format!(
                "A max of {max} addresses can be mirrored to EndpointSlices per Endpoints subset. {} addresses were skipped",
                m.skipped
            ),
        );
    }
}

/// Deletes this very slice; one changed or gone since the list is the
/// next pass's to decide.
fn delete(registry: &Registry, slice: &Value) -> Result<(), ApiError> {
    let key = key_of_value(Kind::EndpointSlice, slice);
    match registry.delete(&key, None, str_at(slice, "/metadata/resourceVersion")) {
        Ok(_) => {
            tracing::debug!(slice = %key, "mirrored slice deleted");
            Ok(())
        }
        Err(ApiError::NotFound { .. })
        | Err(ApiError::Conflict { .. })
        | Err(ApiError::Store(StoreError::Conflict { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One pass over every Endpoints object and every mirrored slice.
pub fn reconcile(registry: &Registry, max_per_subset: usize) -> Result<(), ApiError> {
    let endpoints = registry.list_all(Kind::Endpoints, "")?;
    let services = registry.list_all(Kind::Service, "")?;
    let slices = registry.list_all(Kind::EndpointSlice, "")?;
    let name_of = |v: &Value| {
        (
            str_at(v, "/metadata/namespace").to_string(),
            str_at(v, "/metadata/name").to_string(),
        )
    };
    let services: HashMap<(String, String), &Value> =
        services.iter().map(|s| (name_of(s), s)).collect();
    let mut taken: HashMap<&str, BTreeSet<String>> = HashMap::new();
    // (namespace, service-name label) → the slices mirrored for it.
    let mut mirrors: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for slice in &slices {
        let namespace = str_at(slice, "/metadata/namespace");
        taken
            .entry(namespace)
            .or_default()
            .insert(str_at(slice, "/metadata/name").to_string());
        let service = labels_of(slice)
            .remove(LABEL_SERVICE_NAME)
            .unwrap_or_default();
        if mirrored(slice) && !service.is_empty() {
            mirrors
                .entry((namespace.to_string(), service))
                .or_default()
                .push(slice);
        }
    }

    let mut stale: Vec<&Value> = Vec::new();
    let mut seen = HashSet::new();
    for e in &endpoints {
        let key = name_of(e);
        let existing = mirrors.get(&key).map(Vec::as_slice).unwrap_or_default();
        seen.insert(key.clone());
        if let Some(reason) = skip(e, services.get(&key).copied()) {
            if !existing.is_empty() {
                tracing::debug!(endpoints = ?key, ?reason, "not mirrored");
            }
            stale.extend(existing);
            continue;
        }
        let none = BTreeSet::new();
        let names = taken.get(key.0.as_str()).unwrap_or(&none);
        let want = desired(e, existing, names, max_per_subset);
        report_skipped(registry, e, &want, max_per_subset);
        let by_name: HashMap<&str, &Value> = existing
            .iter()
            .map(|s| (str_at(s, "/metadata/name"), *s))
            .collect();
        let mut batch = Vec::new();
        for slice in &want.slices {
            match by_name.get(str_at(slice, "/metadata/name")) {
                None => batch.push(slice.clone()),
                Some(current) => batch.extend(updated(current, slice)),
            }
        }
        let wanted: HashSet<&str> = want
            .slices
            .iter()
            .map(|s| str_at(s, "/metadata/name"))
            .collect();
        stale.extend(
            existing
                .iter()
                .filter(|s| !wanted.contains(str_at(s, "/metadata/name"))),
        );
        if batch.is_empty() {
            continue;
        }
        // Validated as a user's slice would be: the Endpoints may say what
        // no EndpointSlice may (two ports of one name), and then this
        // Endpoints is not mirrored, the others still are.
        match registry.apply(batch, false) {
            Ok(_)
            | Err(ApiError::AlreadyExists { .. })
            | Err(ApiError::Conflict { .. })
            | Err(ApiError::NotFound { .. })
            | Err(ApiError::Store(StoreError::Conflict { .. })) => {}
            Err(e @ ApiError::Invalid(_)) => {
                tracing::warn!(endpoints = ?key, error = %e, "cannot mirror Endpoints");
            }
            Err(e) => return Err(e),
        }
    }
    // Slices of Endpoints that are gone.
    for (key, slices) in &mirrors {
        if !seen.contains(key) {
            stale.extend(slices);
        }
    }
    for slice in stale {
        delete(registry, slice)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
