//! v1 Service: the defaults of `SetDefaults_Service` and of the API
//! server's Service strategy (`clusterIPs` kept in step with `clusterIP`),
//! and the checks of `ValidateService`.
//!
//! Deliberately not here: anything that needs the other Services or the
//! cluster's configuration. Defaulting `ipFamilies` and `ipFamilyPolicy`
//! and refusing a family the cluster does not have, allocating a
//! ClusterIP or NodePort, and checking that an explicit one is inside its
//! range and free, are the registry's job (`registry::alloc`), inside the
//! write that stores the Service, as in the API server's REST storage.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::field::{Errors, FieldPath};
use super::ip::{IP_MSG, endpoint_ip};
use super::names::{dns1123_label, dns1123_subdomain, port_name, qualified_name, validate_labels};

/// Sorted, as `sets.List` prints them in Kubernetes' messages.
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const IP_FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// `clusterIP: None`: a headless Service.
pub(crate) const CLUSTER_IP_NONE: &str = "None";
/// `DefaultClientIPServiceAffinitySeconds`: three hours.
pub(crate) const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;
/// `MaxClientIPServiceAffinitySeconds`: one day.
const MAX_AFFINITY_TIMEOUT: i32 = 86400;

fn fill(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

fn type_of(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or_default()
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some(CLUSTER_IP_NONE)
}

/// `ExternallyAccessible`: reachable from outside the cluster, so
/// `externalTrafficPolicy` applies.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    matches!(type_of(spec), "NodePort" | "LoadBalancer")
        || (type_of(spec) == "ClusterIP"
            && spec
                .external_ips
                .as_ref()
                .is_some_and(|ips| !ips.is_empty()))
}

/// `NeedsHealthCheck`: a LoadBalancer that keeps traffic on the node it
/// arrives at, whose load balancer must know which nodes have endpoints.
fn needs_health_check(spec: &ServiceSpec) -> bool {
    type_of(spec) == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// `SetDefaults_Service` and the strategy's `clusterIP`/`clusterIPs`
/// normalization. IP families are filled in by the registry, which knows
/// the cluster's families (`registry::alloc::init_ip_families`).
pub(super) fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    fill(&mut spec.type_, "ClusterIP");
    fill(&mut spec.session_affinity, "None");
    // A Service switched to no affinity loses its old settings, so that
    // an edit that changes only `sessionAffinity` is valid.
    if spec.session_affinity.as_deref() == Some("None") {
        spec.session_affinity_config = None;
    }
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        spec.session_affinity_config
            .get_or_insert_with(Default::default)
            .client_ip
            .get_or_insert_with(Default::default)
            .timeout_seconds
            .get_or_insert(DEFAULT_AFFINITY_TIMEOUT);
    }
    for port in spec.ports.iter_mut().flatten() {
        fill(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        // A port that is itself out of range is reported once, as the port,
        // not again as the targetPort copied from it.
        if unset && (1..=65535).contains(&port.port) {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if externally_accessible(spec) {
        fill(&mut spec.external_traffic_policy, "Cluster");
    }
    if type_of(spec) != "ExternalName" {
        fill(&mut spec.internal_traffic_policy, "Cluster");
    }
    let load_balancer = type_of(spec) == "LoadBalancer";
    if load_balancer {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    // `clusterIP` and `clusterIPs` are one field in two API versions.
    let single = spec.cluster_ip.clone().filter(|ip| !ip.is_empty());
    let list_first = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .cloned();
    match (single, list_first) {
        (Some(ip), None) => spec.cluster_ips = Some(vec![ip]),
        (None, Some(first)) => spec.cluster_ip = Some(first),
        _ => {}
    }
    // A Go struct that is always there: every Service shows it.
    let status = svc
        .status
        .get_or_insert_with(Default::default)
        .load_balancer
        .get_or_insert_with(Default::default);
    // Traffic to a load balancer's IP is delivered to the node with that
    // IP as its destination, as kube-proxy expects by default.
    if load_balancer {
        for ingress in status.ingress.iter_mut().flatten() {
            if ingress.ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
                ingress.ip_mode.get_or_insert_with(|| "VIP".to_string());
            }
        }
    }
}

fn one_of(errs: &mut Errors, path: &FieldPath, value: Option<&str>, allowed: &[&str]) {
    if let Some(v) = value
        && !allowed.contains(&v)
    {
        errs.unsupported(path, v, allowed);
    }
}

/// `ValidateService`.
pub(super) fn validate_service(svc: &Service, errs: &mut Errors) {
    let path = FieldPath::new("spec");
    let Some(spec) = &svc.spec else {
        errs.required(&path, "");
        return;
    };
    let ty = type_of(spec);
    let ports = spec.ports.as_deref().unwrap_or_default();
    let ports_path = path.child("ports");
    let headless = is_headless(spec);

    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.required(&ports_path, "");
    }
    match ty {
        "NodePort" | "LoadBalancer" if headless => errs.invalid(
            &path.child("clusterIPs").index(0),
            CLUSTER_IP_NONE,
            &format!("may not be set to 'None' for {ty} services"),
        ),
        "ExternalName" => validate_external_name(spec, &path, errs),
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        validate_port(
            port,
            ports.len() > 1,
            &mut names,
            &ports_path.index(i),
            errs,
        );
    }

    if let Some(selector) = &spec.selector {
        validate_labels(Some(selector), &path.child("selector"), errs);
    }
    validate_affinity(spec, &path, errs);
    validate_cluster_ips(spec, &path, errs);

    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        endpoint_ip(ip, &path.child("externalIPs").index(i), errs);
    }

    let type_path = path.child("type");
    match ty {
        "" => errs.required(&type_path, ""),
        t if !SERVICE_TYPES.contains(&t) => errs.unsupported(&type_path, t, SERVICE_TYPES),
        _ => {}
    }
    validate_node_ports(ports, ty, &ports_path, errs);

    // (port, protocol) pairs are what a node's proxy listens on.
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or_default();
        if !seen.insert((port.port, protocol)) {
            errs.duplicate(
                &ports_path.index(i),
                json!({"port": port.port, "protocol": protocol}),
            );
        }
    }

    validate_load_balancer_fields(spec, &path, errs);
    validate_traffic_policies(spec, &path, errs);
}

/// An ExternalName Service is a DNS CNAME: a name and nothing allocated.
fn validate_external_name(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    if spec.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) {
        errs.forbidden(
            &path.child("clusterIPs"),
            "may not be set for ExternalName services",
        );
    }
    if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
        errs.forbidden(
            &path.child("ipFamilies"),
            "may not be set for ExternalName services",
        );
    }
    if spec.ip_family_policy.is_some() {
        errs.forbidden(
            &path.child("ipFamilyPolicy"),
            "may not be set for ExternalName services",
        );
    }
    // The CNAME may end with a dot to say it is fully qualified.
    let name = spec.external_name.as_deref().unwrap_or_default();
    let cname = name.strip_suffix('.').unwrap_or(name);
    let name_path = path.child("externalName");
    if cname.is_empty() {
        errs.required(&name_path, "");
    } else {
        errs.invalid_each(&name_path, cname, dns1123_subdomain(cname));
    }
}

/// `validateServicePort`.
fn validate_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let name = port.name.as_deref().unwrap_or_default();
    let name_path = path.child("name");
    if name.is_empty() {
        if require_name {
            errs.required(&name_path, "");
        }
    } else {
        errs.invalid_each(&name_path, name, dns1123_label(name));
        if !names.insert(name.to_string()) {
            errs.duplicate(&name_path, name);
        }
    }
    if !(1..=65535).contains(&port.port) {
        errs.invalid(&path.child("port"), port.port, PORT_RANGE);
    }
    let protocol_path = path.child("protocol");
    match port.protocol.as_deref().unwrap_or_default() {
        "" => errs.required(&protocol_path, ""),
        p if !PROTOCOLS.contains(&p) => errs.unsupported(&protocol_path, p, PROTOCOLS),
        _ => {}
    }
    let target_path = path.child("targetPort");
    match &port.target_port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
            errs.invalid(&target_path, n, PORT_RANGE);
        }
        // A container port's name, resolved per pod by the endpoint
        // controllers.
        Some(IntOrString::String(name)) => {
            errs.invalid_each(&target_path, name, port_name(name));
        }
        _ => {}
    }
    if let Some(app) = &port.app_protocol {
        errs.invalid_each(&path.child("appProtocol"), app, qualified_name(app));
    }
}

fn validate_affinity(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    let affinity_path = path.child("sessionAffinity");
    let config_path = path.child("sessionAffinityConfig");
    match spec.session_affinity.as_deref().unwrap_or_default() {
        "" => errs.required(&affinity_path, ""),
        "ClientIP" => {
            let detail = "when session affinity type is ClientIP";
            let Some(config) = &spec.session_affinity_config else {
                return errs.required(&config_path, detail);
            };
            let client_ip_path = config_path.child("clientIP");
            let Some(client_ip) = &config.client_ip else {
                return errs.required(&client_ip_path, detail);
            };
            let timeout_path = client_ip_path.child("timeoutSeconds");
            match client_ip.timeout_seconds {
                None => errs.required(&timeout_path, detail),
                Some(t) if t <= 0 || t > MAX_AFFINITY_TIMEOUT => errs.invalid(
                    &timeout_path,
                    t,
                    &format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"),
                ),
                Some(_) => {}
            }
        }
        // Its settings were dropped by the defaults.
        "None" => {}
        other => errs.unsupported(&affinity_path, other, AFFINITIES),
    }
}

/// `ValidateServiceClusterIPsRelatedFields`: the checks that need no
/// cluster configuration. What the cluster's families allow is
/// `initIPFamilyFields`' (`registry::alloc`).
fn validate_cluster_ips(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    if type_of(spec) == "ExternalName" {
        return;
    }
    let ips_path = path.child("clusterIPs");
    let families_path = path.child("ipFamilies");
    let policy_path = path.child("ipFamilyPolicy");
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    let families = spec.ip_families.as_deref().unwrap_or_default();

    if !cluster_ip.is_empty() && ips.first().map(String::as_str) != Some(cluster_ip) {
        errs.invalid(&ips_path, ips, "first value must match `clusterIP`");
    }
    let mut seen = HashSet::new();
    for (i, family) in families.iter().enumerate() {
        if !IP_FAMILIES.contains(&family.as_str()) {
            errs.unsupported(&families_path.index(i), family, IP_FAMILIES);
        }
        if !seen.insert(family) {
            errs.duplicate(&families_path.index(i), family);
        }
    }
    one_of(
        errs,
        &policy_path,
        spec.ip_family_policy.as_deref(),
        IP_FAMILY_POLICIES,
    );

    let mut parsed = Vec::new();
    let mut bad_ip = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == CLUSTER_IP_NONE {
            if ips.len() > 1 {
                bad_ip = true;
                errs.invalid(&ips_path, ips, "'None' must be the first and only value");
            }
            continue;
        }
        match ip.parse::<IpAddr>() {
            Ok(addr) => parsed.push(addr),
            Err(_) => {
                bad_ip = true;
                errs.invalid(&ips_path.index(i), ip, IP_MSG);
            }
        }
    }
    if ips.len() > 2 {
        errs.invalid(&ips_path, ips, "may only hold up to 2 values");
    }
    // Bad addresses would only skew the family checks below.
    if bad_ip {
        return;
    }
    if parsed.len() == 2 && parsed[0].is_ipv4() == parsed[1].is_ipv4() {
        errs.invalid(
            &ips_path,
            ips,
            "may specify no more than one IP for each IP family",
        );
    }
    for (i, ip) in parsed.iter().enumerate() {
        match families.get(i).map(String::as_str) {
            Some("IPv4") if ip.is_ipv6() => errs.invalid(
                &ips_path.index(i),
                &ips[i],
                &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
            ),
            Some("IPv6") if ip.is_ipv4() => errs.invalid(
                &ips_path.index(i),
                &ips[i],
                &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
            ),
            _ => {}
        }
    }

    let policy = spec.ip_family_policy.as_deref().unwrap_or_default();
    if policy == "SingleStack" {
        if ips.len() == 2 {
            errs.invalid(
                &policy_path,
                policy,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            );
        }
        if families.len() == 2 {
            errs.invalid(
                &policy_path,
                policy,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            );
        }
    }
}

/// A NodePort exists on NodePort and LoadBalancer Services only, and two
/// ports of one Service cannot share one (unless their protocols differ:
/// the same port number on TCP and UDP gets one NodePort).
fn validate_node_ports(ports: &[ServicePort], ty: &str, ports_path: &FieldPath, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(node_port) = port.node_port.filter(|n| *n != 0) else {
            continue;
        };
        let path = ports_path.index(i).child("nodePort");
        if matches!(ty, "ClusterIP" | "ExternalName") {
            errs.forbidden(&path, &format!("may not be used when `type` is '{ty}'"));
        }
        if !seen.insert((port.protocol.as_deref().unwrap_or_default(), node_port)) {
            errs.duplicate(&path, node_port);
        }
    }
}

fn validate_load_balancer_fields(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    let load_balancer = type_of(spec) == "LoadBalancer";
    let only_lb = "may only be used when `type` is 'LoadBalancer'";
    if let Some(ranges) = spec
        .load_balancer_source_ranges
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        let ranges_path = path.child("LoadBalancerSourceRanges");
        if !load_balancer {
            errs.forbidden(&ranges_path, only_lb);
        }
        for (i, range) in ranges.iter().enumerate() {
            // Space-padded values are a historical accident upstream keeps.
            let range = range.trim();
            if range.parse::<IpNet>().is_err() {
                errs.invalid(
                    &ranges_path.index(i),
                    range,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                );
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && !load_balancer {
        errs.forbidden(&path.child("allocateLoadBalancerNodePorts"), only_lb);
    }
    if let Some(class) = &spec.load_balancer_class {
        let class_path = path.child("loadBalancerClass");
        if load_balancer {
            errs.invalid_each(&class_path, class, qualified_name(class));
        } else {
            errs.forbidden(&class_path, only_lb);
        }
    }
}

/// `validateServiceExternalTrafficPolicy` and
/// `validateServiceInternalTrafficFieldsValue`.
fn validate_traffic_policies(spec: &ServiceSpec, path: &FieldPath, errs: &mut Errors) {
    let external_path = path.child("externalTrafficPolicy");
    let external = spec.external_traffic_policy.as_deref().unwrap_or_default();
    if !externally_accessible(spec) {
        if !external.is_empty() {
            errs.invalid(
                &external_path,
                external,
                "may only be set for externally-accessible services",
            );
        }
    } else if external.is_empty() {
        errs.required(&external_path, "");
    } else if !TRAFFIC_POLICIES.contains(&external) {
        errs.unsupported(&external_path, external, TRAFFIC_POLICIES);
    }

    // Allocated by the registry when needed and not given; here only the
    // given value is checked (its range too, against the cluster's
    // NodePort range, in the registry).
    let health_path = path.child("healthCheckNodePort");
    if let Some(port) = spec.health_check_node_port.filter(|p| *p != 0) {
        if !needs_health_check(spec) {
            errs.invalid(
                &health_path,
                port,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            );
        } else if !(1..=65535).contains(&port) {
            errs.invalid(&health_path, port, PORT_RANGE);
        }
    }

    let internal_path = path.child("internalTrafficPolicy");
    match spec.internal_traffic_policy.as_deref() {
        // Not forbidden on ExternalName, for historical reasons upstream.
        None if type_of(spec) != "ExternalName" => errs.required(&internal_path, ""),
        Some(p) if !TRAFFIC_POLICIES.contains(&p) => {
            errs.unsupported(&internal_path, p, TRAFFIC_POLICIES)
        }
        _ => {}
    }
}
