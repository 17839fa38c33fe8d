//! The EndpointSlice controller, and the v1 Endpoints controller beside it:
//! for every Service with a selector, the pods it selects as endpoints.
//!
//! [`desired`] is the pure part (a Service, the pods, nodes and slices in;
//! the slices and the Endpoints it should have out); [`reconcile`] writes
//! the difference. As upstream:
//! - a pod is an endpoint when it has an IP and has not finished
//!   (Succeeded/Failed); EndpointSlices keep terminating pods (flagged
//!   `terminating`, `ready: false`, `serving` as their readiness), Endpoints
//!   drop them unless `publishNotReadyAddresses`;
//! - `publishNotReadyAddresses` makes every endpoint ready and serving;
//! - a named targetPort is resolved per pod, from its containers' ports of
//!   that name and protocol; a pod that cannot resolve it is listed without
//!   that port, so pods that resolve ports differently land in different
//!   slices (one slice per port mapping, at most 100 endpoints each);
//! - a Service whose selector matches nothing has one placeholder slice
//!   without endpoints and an Endpoints object without subsets;
//! - Services without a selector, and ExternalName Services, are left
//!   alone: their slices and Endpoints are the user's.
//!
//! Slice names are stable: an existing slice with the same ports keeps its
//! endpoints and its name, and new slices are named `<service>-<hash>`.
//! Everything is sorted, so the same state gives the same objects and a
//! second pass writes nothing.
//!
//! Not emulated: topology hints, the Endpoints object's 1000-address
//! truncation and its last-change-trigger-time annotation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use podnet_proto::model::network::IpFamily;

use podnet_proto::model::{Kind, LABEL_ZONE, ObjectKey};
use serde_json::{Map, Value, json};

use super::{key_of_value, owner_reference, pod_is_ready, template_hash};
use crate::registry::{ApiError, Registry, labels_of};
use crate::validate::LABEL_SERVICE_NAME;
use podnet_proto::model::str_at;

/// Which controller manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`LABEL_MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Which controller manages an Endpoints object, and its value.
pub const ENDPOINTS_MANAGED_BY: (&str, &str) =
    ("endpoints.kubernetes.io/managed-by", "endpoint-controller");
/// Set (empty) on the slices and Endpoints of a Service without ClusterIP.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// `maxEndpointsPerSlice`, the controller's default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What one Service should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Its EndpointSlices, named.
    pub slices: Vec<Value>,
    /// Its v1 Endpoints object, named like the Service.
    pub endpoints: Value,
}

/// One selected pod, as both controllers see it.
struct Member<'a> {
    pod: &'a Value,
    /// Its address of the slice's family.
    ip: IpAddr,
    /// The Service ports this pod resolves, with the port number.
    ports: Vec<(&'a Value, i64)>,
}

/// The slices and Endpoints `service` should have, given every pod, node
/// and EndpointSlice (of any namespace); `None` when the controllers leave
/// the Service alone.
pub fn desired(
    service: &Value,
    pods: &[Value],
    nodes: &[Value],
    slices: &[Value],
) -> Option<Desired> {
    if service.pointer("/metadata/deletionTimestamp").is_some()
        || str_at(service, "/spec/type") == "ExternalName"
    {
        return None;
    }
    let selector: BTreeMap<String, String> = service
        .pointer("/spec/selector")?
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let namespace = str_at(service, "/metadata/namespace");
    let service_ports: &[Value] = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();

    let mut selected: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            str_at(p, "/metadata/namespace") == namespace
                && labels_of(p)
                    .iter()
                    .filter(|(k, v)| selector.get(*k) == Some(v))
                    .count()
                    == selector.len()
        })
        .collect();
    selected.sort_by_key(|p| str_at(p, "/metadata/name"));
    let active: Vec<&Value> = selected
        .into_iter()
        .filter(|p| !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed"))
        .collect();
    let members_of = |family: IpFamily| -> Vec<Member<'_>> {
        active
            .iter()
            .filter_map(|pod| {
                Some(Member {
                    pod,
                    ip: pod_ip(pod, family)?,
                    ports: resolve_ports(service_ports, pod),
                })
            })
            .collect()
    };
    let families = address_types(service);

    let zones: HashMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| {
            let zone = n.pointer(&format!(
                "/metadata/labels/{}",
                LABEL_ZONE.replace('/', "~1")
            ))?;
            Some((str_at(n, "/metadata/name"), zone.as_str()?))
        })
        .filter(|(_, zone)| !zone.is_empty())
        .collect();
    let uid = str_at(service, "/metadata/uid");
    let mut owned: Vec<&Value> = slices
        .iter()
        .filter(|s| {
            str_at(s, "/metadata/namespace") == namespace
                && managed_slice(s)
                && controller_uid(s) == Some(uid)
        })
        .collect();
    owned.sort_by_key(|s| str_at(s, "/metadata/name"));
    let mut names: BTreeSet<String> = slices
        .iter()
        .filter(|s| str_at(s, "/metadata/namespace") == namespace)
        .map(|s| str_at(s, "/metadata/name").to_string())
        .collect();

    // One set of slices per address type the Service has; owned slices of
    // another type are not desired, so they go.
    let mut desired = Vec::new();
    for family in &families {
        let own: Vec<&Value> = owned
            .iter()
            .copied()
            .filter(|s| address_type(s) == family.as_str())
            .collect();
        desired.extend(desired_slices(
            service,
            *family,
            &members_of(*family),
            &zones,
            &own,
            &mut names,
        ));
    }
    // The v1 Endpoints carry the primary family only.
    let primary = families.first().copied().unwrap_or(IpFamily::V4);
    Some(Desired {
        slices: desired,
        endpoints: desired_endpoints(service, &members_of(primary)),
    })
}

/// A slice's `addressType` (IPv4 when it has none).
fn address_type(slice: &Value) -> &str {
    match str_at(slice, "/addressType") {
        "" => "IPv4",
        t => t,
    }
}

/// `getAddressTypesForService`: the Service's `ipFamilies`, else the
/// family of its ClusterIP, else (headless, from before families) both.
fn address_types(service: &Value) -> Vec<IpFamily> {
    let mut families: Vec<IpFamily> = podnet_proto::model::strs_at(service, "/spec/ipFamilies")
        .into_iter()
        .filter_map(IpFamily::parse)
        .collect();
    families.dedup();
    if !families.is_empty() {
        return families;
    }
    match str_at(service, "/spec/clusterIP").parse::<IpAddr>() {
        Ok(ip) => vec![IpFamily::of(ip)],
        Err(_) => vec![IpFamily::V4, IpFamily::V6],
    }
}

fn managed_slice(slice: &Value) -> bool {
    labels_of(slice).get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

fn managed_endpoints(endpoints: &Value) -> bool {
    let (key, value) = ENDPOINTS_MANAGED_BY;
    labels_of(endpoints).get(key).map(String::as_str) == Some(value)
}

/// The uid of the object's controlling owner.
fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))
        .map(|r| str_at(r, "/uid"))
}

/// The pod's address of `family`, from `podIP` and `podIPs`
/// (`getEndpointAddresses`).
fn pod_ip(pod: &Value, family: IpFamily) -> Option<IpAddr> {
    let listed = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ip| str_at(ip, "/ip"));
    std::iter::once(str_at(pod, "/status/podIP"))
        .chain(listed)
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .find(|ip| IpFamily::of(*ip) == family)
}

/// `FindPort` for each Service port: a number is itself, a name is the
/// pod's container port of that name and protocol. Unresolved ports are
/// left out.
fn resolve_ports<'a>(service_ports: &'a [Value], pod: &Value) -> Vec<(&'a Value, i64)> {
    let container_ports: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("ports")?.as_array())
        .flatten()
        .collect();
    service_ports
        .iter()
        .filter_map(|sp| {
            let number = match sp.get("targetPort") {
                Some(Value::String(name)) => container_ports
                    .iter()
                    .find(|cp| str_at(cp, "/name") == name && protocol(cp) == protocol(sp))?
                    .get("containerPort")?
                    .as_i64()?,
                Some(n) => n.as_i64()?,
                None => sp.get("port")?.as_i64()?,
            };
            Some((sp, number))
        })
        .collect()
}

fn protocol(port: &Value) -> &str {
    match str_at(port, "/protocol") {
        "" => "TCP",
        p => p,
    }
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `ShouldSetHostname`: the pod asked to be `<hostname>.<service>`.
fn hostname<'a>(pod: &'a Value, service: &Value) -> Option<&'a str> {
    let hostname = str_at(pod, "/spec/hostname");
    (!hostname.is_empty() && str_at(pod, "/spec/subdomain") == str_at(service, "/metadata/name"))
        .then_some(hostname)
}

fn target_ref(pod: &Value) -> Value {
    let mut r = json!({
        "kind": "Pod",
        "namespace": str_at(pod, "/metadata/namespace"),
        "name": str_at(pod, "/metadata/name"),
    });
    let uid = str_at(pod, "/metadata/uid");
    if !uid.is_empty() {
        r["uid"] = json!(uid);
    }
    r
}

fn headless(service: &Value) -> bool {
    matches!(str_at(service, "/spec/clusterIP"), "" | "None")
}

/// The Service's own labels, minus the reserved ones, plus the headless
/// marker when it has no ClusterIP.
fn inherited_labels(service: &Value, reserved: &[&str]) -> Map<String, Value> {
    let mut labels: Map<String, Value> = labels_of(service)
        .into_iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()) && k != LABEL_HEADLESS)
        .map(|(k, v)| (k, json!(v)))
        .collect();
    if headless(service) {
        labels.insert(LABEL_HEADLESS.into(), json!(""));
    }
    labels
}

/// An EndpointSlice endpoint (`podToEndpoint`).
fn slice_endpoint(member: &Member<'_>, service: &Value, zones: &HashMap<&str, &str>) -> Value {
    let pod = member.pod;
    let publish = service.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let serving = publish || pod_is_ready(pod);
    let terminating = terminating(pod);
    let ready = publish || (serving && !terminating);
    let mut endpoint = json!({
        "addresses": [member.ip.to_string()],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": target_ref(pod),
    });
    let node = str_at(pod, "/spec/nodeName");
    if !node.is_empty() {
        endpoint["nodeName"] = json!(node);
        if let Some(zone) = zones.get(node) {
            endpoint["zone"] = json!(zone);
        }
    }
    if let Some(hostname) = hostname(pod, service) {
        endpoint["hostname"] = json!(hostname);
    }
    endpoint
}

/// A slice port: an unnamed Service port is named "" here.
fn slice_port(service_port: &Value, number: i64) -> Value {
    let mut port = json!({
        "name": str_at(service_port, "/name"),
        "port": number,
        "protocol": protocol(service_port),
    });
    if let Some(app) = service_port.get("appProtocol") {
        port["appProtocol"] = app.clone();
    }
    port
}

fn list_at<'a>(object: &'a Value, field: &str) -> &'a [Value] {
    object
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A name for a new slice: its owner's name (a Service's, or a mirrored
/// Endpoints') and a hash, unique among `taken` (which it joins).
pub(super) fn new_slice_name(owner: &Value, seed: &str, taken: &mut BTreeSet<String>) -> String {
    let name = str_at(owner, "/metadata/name");
    let uid = str_at(owner, "/metadata/uid");
    let mut n: u64 = 0;
    loop {
        // Past a thousand hash collisions a counter is unique sooner.
        let suffix = if n < 1000 {
            template_hash(&json!([uid, seed, n]))
        } else {
            n.to_string()
        };
        let candidate = format!("{name}-{suffix}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

fn slice_object(
    service: &Value,
    family: IpFamily,
    name: &str,
    ports: &[Value],
    mut endpoints: Vec<(&str, Value)>,
) -> Value {
    endpoints.sort_by(|a, b| a.0.cmp(b.0));
    let mut labels = inherited_labels(service, &[LABEL_SERVICE_NAME, LABEL_MANAGED_BY]);
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        json!(str_at(service, "/metadata/name")),
    );
    labels.insert(LABEL_MANAGED_BY.into(), json!(CONTROLLER_NAME));
    let mut slice = json!({
        "apiVersion": Kind::EndpointSlice.api_version(),
        "kind": Kind::EndpointSlice.as_str(),
        "metadata": {
            "name": name,
            "namespace": str_at(service, "/metadata/namespace"),
            "labels": labels,
            "ownerReferences": [owner_reference(service)],
        },
        "addressType": family.as_str(),
        "endpoints": endpoints.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    });
    if !ports.is_empty() {
        slice["ports"] = json!(ports);
    }
    slice
}

/// Groups endpoints by port mapping and fills slices, keeping each
/// endpoint in the existing slice that has it where possible.
fn desired_slices(
    service: &Value,
    family: IpFamily,
    members: &[Member<'_>],
    zones: &HashMap<&str, &str>,
    owned: &[&Value],
    names: &mut BTreeSet<String>,
) -> Vec<Value> {
    // IPv4 slices keep the names they had before families; IPv6 ones
    // hash their family too.
    let seed = |key: &str| match family {
        IpFamily::V4 => key.to_string(),
        IpFamily::V6 => format!("{family}{key}"),
    };
    // Port mapping (as JSON text, for a stable order) → ports, endpoints.
    type Group<'a> = (Vec<Value>, Vec<(&'a str, Value)>);
    let mut groups: BTreeMap<String, Group<'_>> = BTreeMap::new();
    for member in members {
        let ports: Vec<Value> = member
            .ports
            .iter()
            .map(|(sp, n)| slice_port(sp, *n))
            .collect();
        let key = Value::Array(ports.clone()).to_string();
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push((
                str_at(member.pod, "/metadata/name"),
                slice_endpoint(member, service, zones),
            ));
    }

    let mut out = Vec::new();
    if groups.is_empty() {
        // The placeholder: a Service with no endpoints still has a slice.
        let name = match owned.first() {
            Some(slice) => str_at(slice, "/metadata/name").to_string(),
            None => new_slice_name(service, &seed("[]"), names),
        };
        out.push(slice_object(service, family, &name, &[], Vec::new()));
        return out;
    }
    for (key, (ports, endpoints)) in groups {
        let mut pool: Vec<Option<(&str, Value)>> = endpoints.into_iter().map(Some).collect();
        let mut filled: Vec<(String, Vec<(&str, Value)>)> = Vec::new();
        for slice in owned
            .iter()
            .filter(|s| list_at(s, "ports") == ports.as_slice())
        {
            let members: HashSet<&str> = list_at(slice, "endpoints")
                .iter()
                .map(|e| str_at(e, "/targetRef/name"))
                .collect();
            let mut kept = Vec::new();
            for entry in pool.iter_mut() {
                if kept.len() < MAX_ENDPOINTS_PER_SLICE
                    && entry.as_ref().is_some_and(|(pod, _)| members.contains(pod))
                    && let Some(e) = entry.take()
                {
                    kept.push(e);
                }
            }
            filled.push((str_at(slice, "/metadata/name").to_string(), kept));
        }
        let mut rest = pool.into_iter().flatten().peekable();
        for (_, kept) in filled.iter_mut() {
            while kept.len() < MAX_ENDPOINTS_PER_SLICE
                && let Some(e) = rest.next()
            {
                kept.push(e);
            }
        }
        while rest.peek().is_some() {
            let chunk: Vec<(&str, Value)> = rest.by_ref().take(MAX_ENDPOINTS_PER_SLICE).collect();
            filled.push((new_slice_name(service, &seed(&key), names), chunk));
        }
        filled.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, endpoints) in filled {
            // An existing slice left empty is deleted, not kept.
            if !endpoints.is_empty() {
                out.push(slice_object(service, family, &name, &ports, endpoints));
            }
        }
    }
    out
}

/// The v1 Endpoints object: one subset per port mapping, ready and
/// not-ready addresses sorted by IP (`RepackSubsets`).
fn desired_endpoints(service: &Value, members: &[Member<'_>]) -> Value {
    let publish = service.pointer("/spec/publishNotReadyAddresses") == Some(&json!(true));
    let has_ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    type Subset = (Vec<Value>, Vec<(IpAddr, Value)>, Vec<(IpAddr, Value)>);
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    for member in members {
        let pod = member.pod;
        if terminating(pod) && !publish {
            continue;
        }
        // A pod that resolves none of the Service's ports is no endpoint
        // of it (a headless Service without ports takes every pod).
        if has_ports && member.ports.is_empty() {
            continue;
        }
        let ports: Vec<Value> = member
            .ports
            .iter()
            .map(|(sp, n)| {
                let mut port = json!({"port": n, "protocol": protocol(sp)});
                let name = str_at(sp, "/name");
                if !name.is_empty() {
                    port["name"] = json!(name);
                }
                if let Some(app) = sp.get("appProtocol") {
                    port["appProtocol"] = app.clone();
                }
                port
            })
            .collect();
        let mut address = json!({"ip": member.ip.to_string(), "targetRef": target_ref(pod)});
        let node = str_at(pod, "/spec/nodeName");
        if !node.is_empty() {
            address["nodeName"] = json!(node);
        }
        if let Some(hostname) = hostname(pod, service) {
            address["hostname"] = json!(hostname);
        }
        let key = Value::Array(ports.clone()).to_string();
        let subset = subsets
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || pod_is_ready(pod) {
            subset.1.push((member.ip, address));
        } else {
            subset.2.push((member.ip, address));
        }
    }
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let mut subset = Map::new();
            for (field, list) in [
                ("addresses", &mut ready),
                ("notReadyAddresses", &mut not_ready),
            ] {
                if !list.is_empty() {
                    list.sort_by_key(|(ip, _)| *ip);
                    let addresses: Vec<Value> = list.drain(..).map(|(_, a)| a).collect();
                    subset.insert(field.into(), json!(addresses));
                }
            }
            if !ports.is_empty() {
                subset.insert("ports".into(), json!(ports));
            }
            Value::Object(subset)
        })
        .collect();

    let (key, value) = ENDPOINTS_MANAGED_BY;
    let mut labels = inherited_labels(service, &[key]);
    labels.insert(key.into(), json!(value));
    let mut endpoints = json!({
        "apiVersion": Kind::Endpoints.api_version(),
        "kind": Kind::Endpoints.as_str(),
        "metadata": {
            "name": str_at(service, "/metadata/name"),
            "namespace": str_at(service, "/metadata/namespace"),
            "labels": labels,
        },
    });
    if !subsets.is_empty() {
        endpoints["subsets"] = json!(subsets);
    }
    endpoints
}

/// The fields the controllers own, for comparing and updating.
const SLICE_FIELDS: &[&str] = &["addressType", "endpoints", "ports"];
const ENDPOINTS_FIELDS: &[&str] = &["subsets"];

/// `current` with the owned fields of `want`, or `None` when they already
/// agree. A missing list and an empty one are the same.
fn updated(current: &Value, want: &Value, fields: &[&str], owners: bool) -> Option<Value> {
    let list = |v: &Value, field: &str| match v.get(field) {
        None | Some(Value::Null) => json!([]),
        Some(x) => x.clone(),
    };
    let mut meta = vec!["labels"];
    if owners {
        meta.push("ownerReferences");
    }
    let same = fields.iter().all(|f| list(current, f) == list(want, f))
        && meta.iter().all(|f| {
            current.pointer(&format!("/metadata/{f}")) == want.pointer(&format!("/metadata/{f}"))
        });
    if same {
        return None;
    }
    let mut next = current.clone();
    let object = next.as_object_mut()?;
    for field in fields {
        match want.get(*field) {
            Some(v) => object.insert((*field).into(), v.clone()),
            None => object.remove(*field),
        };
    }
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    for f in meta {
        if let Some(v) = want.pointer(&format!("/metadata/{f}")) {
            metadata.insert(f.into(), v.clone());
        }
    }
    Some(next)
}

/// Queues the creation or update of `want` (compared with `current`) into
/// the pass's batch; nothing is queued when nothing changed.
fn write(
    batch: &mut Vec<Value>,
    current: Option<&Value>,
    want: &Value,
    fields: &[&str],
    owners: bool,
) {
    match current {
        None => batch.push(want.clone()),
        Some(current) => {
            if let Some(next) = updated(current, want, fields, owners) {
                batch.push(next);
            }
        }
    }
}

fn delete(registry: &Registry, kind: Kind, object: &Value) -> Result<(), ApiError> {
    match registry.delete(&key_of_value(kind, object), None, "") {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One pass of both controllers over every Service.
pub fn reconcile(registry: &Registry) -> Result<(), ApiError> {
    let services = registry.list_all(Kind::Service, "")?;
    let pods = registry.list_all(Kind::Pod, "")?;
    let nodes = registry.list_all(Kind::Node, "")?;
    let slices = registry.list_all(Kind::EndpointSlice, "")?;
    let endpoints = registry.list_all(Kind::Endpoints, "")?;
    let slice_by_key: HashMap<ObjectKey, &Value> = slices
        .iter()
        .map(|s| (key_of_value(Kind::EndpointSlice, s), s))
        .collect();
    let endpoints_by_key: HashMap<ObjectKey, &Value> = endpoints
        .iter()
        .map(|e| (key_of_value(Kind::Endpoints, e), e))
        .collect();

    // Every change of the pass goes to the store in one transaction: one
    // pod change touches the slices of every Service that selects it, and
    // a commit per object would make programming latency grow with them.
    let mut batch = Vec::new();
    for service in &services {
        let Some(want) = desired(service, &pods, &nodes, &slices) else {
            continue;
        };
        let uid = str_at(service, "/metadata/uid");
        let mut wanted = HashSet::new();
        for slice in &want.slices {
            let key = key_of_value(Kind::EndpointSlice, slice);
            write(
                &mut batch,
                slice_by_key.get(&key).copied(),
                slice,
                SLICE_FIELDS,
                true,
            );
            wanted.insert(key);
        }
        for slice in &slices {
            if managed_slice(slice)
                && controller_uid(slice) == Some(uid)
                && !wanted.contains(&key_of_value(Kind::EndpointSlice, slice))
            {
                delete(registry, Kind::EndpointSlice, slice)?;
            }
        }
        let key = key_of_value(Kind::Endpoints, &want.endpoints);
        write(
            &mut batch,
            endpoints_by_key.get(&key).copied(),
            &want.endpoints,
            ENDPOINTS_FIELDS,
            false,
        );
    }
    if !batch.is_empty() {
        match registry.apply_derived(batch) {
            // A race with another writer: the next pass sees its write.
            Ok(_)
            | Err(ApiError::AlreadyExists { .. })
            | Err(ApiError::Conflict { .. })
            | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }

    // What a deleted Service left behind.
    let uids: HashSet<&str> = services
        .iter()
        .map(|s| str_at(s, "/metadata/uid"))
        .collect();
    for slice in &slices {
        if managed_slice(slice) && !controller_uid(slice).is_some_and(|uid| uids.contains(uid)) {
            delete(registry, Kind::EndpointSlice, slice)?;
        }
    }
    let service_keys: HashSet<ObjectKey> = services
        .iter()
        .map(|s| key_of_value(Kind::Endpoints, s))
        .collect();
    for e in &endpoints {
        if managed_endpoints(e) && !service_keys.contains(&key_of_value(Kind::Endpoints, e)) {
            delete(registry, Kind::Endpoints, e)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
