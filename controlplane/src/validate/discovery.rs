//! Where a Service's traffic goes: discovery.k8s.io/v1 EndpointSlice
//! (`ValidateEndpointSlice`) and the older v1 Endpoints
//! (`ValidateEndpoints`), with their defaults (a port's protocol, an
//! EndpointSlice port's empty name).
//!
//! Both are normally written by podnet's endpoint controllers; users write
//! them for Services without a selector. Slices of addressType IPv6 or
//! FQDN are accepted (they are valid Kubernetes) and warned about: no node
//! routes IPv6 yet (cluster DNS answers with it), and FQDN is deprecated.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::field::{Errors, FieldPath};
use super::ip::{endpoint_ip, endpoint_ipv4, endpoint_ipv6};
use super::names::{dns1123_label, dns1123_subdomain, qualified_name, validate_labels};

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;
const MAX_ENDPOINTS: usize = 1000;
const MAX_TOPOLOGY_LABELS: usize = 16;
/// The label that ties a slice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// `SetDefaults_EndpointPort` (discovery/v1): an unnamed port has the name
/// "", and TCP is the protocol.
pub(super) fn default_endpoint_slice(slice: &mut EndpointSlice) {
    for port in slice.ports.iter_mut().flatten() {
        port.name.get_or_insert_with(String::new);
        port.protocol.get_or_insert_with(|| "TCP".to_string());
    }
}

pub(super) fn validate_endpoint_slice(slice: &EndpointSlice, errs: &mut Errors) {
    let address_type = slice.address_type.as_str();
    let type_path = FieldPath::new("addressType");
    match address_type {
        "" => errs.required(&type_path, ""),
        "IPv4" | "IPv6" => {}
        "FQDN" => errs.warn(
            &type_path,
            "\"FQDN\" endpoints are deprecated: they are stored but never used",
        ),
        other => errs.unsupported(&type_path, other, ADDRESS_TYPES),
    }

    let endpoints_path = FieldPath::new("endpoints");
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.too_many(&endpoints_path, slice.endpoints.len(), MAX_ENDPOINTS);
    } else {
        for (i, endpoint) in slice.endpoints.iter().enumerate() {
            let path = endpoints_path.index(i);
            let addresses_path = path.child("addresses");
            match endpoint.addresses.len() {
                0 => errs.required(&addresses_path, "must contain at least 1 address"),
                n if n > MAX_ADDRESSES => errs.too_many(&addresses_path, n, MAX_ADDRESSES),
                _ => {}
            }
            for (j, address) in endpoint.addresses.iter().enumerate() {
                let p = addresses_path.index(j);
                // Unknown address types are reported above; their addresses
                // are not checked.
                match address_type {
                    "IPv4" => endpoint_ipv4(address, &p, errs),
                    "IPv6" => endpoint_ipv6(address, &p, errs),
                    "FQDN" => fully_qualified_name(address, &p, errs),
                    _ => {}
                }
            }
            if let Some(hostname) = &endpoint.hostname {
                errs.invalid_each(&path.child("hostname"), hostname, dns1123_label(hostname));
            }
            if let Some(node) = &endpoint.node_name {
                errs.invalid_each(&path.child("nodeName"), node, dns1123_subdomain(node));
            }
            if let Some(topology) = &endpoint.deprecated_topology {
                let topology_path = path.child("deprecatedTopology");
                if topology.len() > MAX_TOPOLOGY_LABELS {
                    errs.too_many(&topology_path, topology.len(), MAX_TOPOLOGY_LABELS);
                }
                validate_labels(Some(topology), &topology_path, errs);
            }
        }
    }

    let ports_path = FieldPath::new("ports");
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        errs.too_many(&ports_path, ports.len(), MAX_PORTS);
        return;
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = ports_path.index(i);
        let name = port.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            errs.invalid_each(&path.child("name"), name, dns1123_label(name));
        }
        if !names.insert(name) {
            errs.duplicate(&path.child("name"), name);
        }
        // No port number means "all ports"; a given one is a real port.
        if let Some(n) = port.port
            && !(1..=65535).contains(&n)
        {
            errs.invalid(&path.child("port"), n, PORT_RANGE);
        }
        protocol(port.protocol.as_deref(), &path.child("protocol"), errs);
        if let Some(app) = &port.app_protocol {
            errs.invalid_each(&path.child("appProtocol"), app, qualified_name(app));
        }
    }

    let labelled = slice
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(LABEL_SERVICE_NAME).is_some_and(|s| !s.is_empty()));
    if !labelled {
        errs.warn(
            &FieldPath::new("metadata")
                .child("labels")
                .key(LABEL_SERVICE_NAME),
            "not set, so no Service uses this EndpointSlice",
        );
    }
}

/// `SetDefaults_EndpointPort` (core/v1).
pub(super) fn default_endpoints(endpoints: &mut Endpoints) {
    for subset in endpoints.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            if port.protocol.as_deref().is_none_or(str::is_empty) {
                port.protocol = Some("TCP".to_string());
            }
        }
    }
}

/// `validateEndpointSubsets`.
pub(super) fn validate_endpoints(endpoints: &Endpoints, errs: &mut Errors) {
    let subsets_path = FieldPath::new("subsets");
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let path = subsets_path.index(i);
        let ready = subset.addresses.as_deref().unwrap_or_default();
        let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
        if ready.is_empty() && not_ready.is_empty() {
            errs.required(&path, "must specify `addresses` or `notReadyAddresses`");
        }
        for (field, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, address) in list.iter().enumerate() {
                endpoint_address(address, &path.child(field).index(j), errs);
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            endpoint_port(port, ports.len() > 1, &path.child("ports").index(j), errs);
        }
    }
}

fn endpoint_address(address: &EndpointAddress, path: &FieldPath, errs: &mut Errors) {
    endpoint_ip(&address.ip, &path.child("ip"), errs);
    if let Some(hostname) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
        errs.invalid_each(&path.child("hostname"), hostname, dns1123_label(hostname));
    }
    if let Some(node) = &address.node_name {
        errs.invalid_each(&path.child("nodeName"), node, dns1123_subdomain(node));
    }
}

fn endpoint_port(port: &EndpointPort, require_name: bool, path: &FieldPath, errs: &mut Errors) {
    let name = port.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        if require_name {
            errs.required(&path.child("name"), "");
        }
    } else {
        errs.invalid_each(&path.child("name"), name, dns1123_label(name));
    }
    if !(1..=65535).contains(&port.port) {
        errs.invalid(&path.child("port"), port.port, PORT_RANGE);
    }
    protocol(port.protocol.as_deref(), &path.child("protocol"), errs);
    if let Some(app) = &port.app_protocol {
        errs.invalid_each(&path.child("appProtocol"), app, qualified_name(app));
    }
}

fn protocol(value: Option<&str>, path: &FieldPath, errs: &mut Errors) {
    match value.unwrap_or_default() {
        "" => errs.required(path, ""),
        p if !PROTOCOLS.contains(&p) => errs.unsupported(path, p, PROTOCOLS),
        _ => {}
    }
}

/// `IsFullyQualifiedDomainName`: a subdomain of at least two labels, with
/// an optional final dot.
fn fully_qualified_name(value: &str, path: &FieldPath, errs: &mut Errors) {
    let name = value.strip_suffix('.').unwrap_or(value);
    if name.is_empty() {
        return errs.required(path, "");
    }
    let problems = dns1123_subdomain(name);
    if !problems.is_empty() {
        return errs.invalid(path, name, &problems.join(","));
    }
    if !name.contains('.') {
        errs.invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        );
    }
}
