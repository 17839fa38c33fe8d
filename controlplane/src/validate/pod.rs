//! Pods and pod templates: the defaults `SetDefaults_Pod`/`SetDefaults_PodSpec`
//! fill in and the checks of `ValidatePodSpec` that matter to what podnet
//! runs (containers, ports, probes, resources, placement, restart policy).
//!
//! Like the API server, defaults go in before validation, so a check sees
//! `protocol: TCP` rather than nothing and a probe's `periodSeconds: 0`
//! becomes 10 instead of an error.
//!
//! Podnet runs httpGet and tcpSocket probes only: `exec` and `grpc` probes
//! are rejected rather than accepted and silently never run, since a probe
//! that never runs would make a pod ready (or never restart it) for the
//! wrong reason.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podnet_proto::model::{parse_cpu_millis, parse_memory_bytes};

use super::field::{Errors, FieldPath};
use super::names::{dns1123_label, dns1123_subdomain, port_name, validate_labels};

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
/// Containers one pod may have at most. Upstream has no such cap (etcd's
/// object size limit bounds it); podnet runs every container as tasks of
/// its node process and rebuilds the pod's status on each container's
/// change, so a pod of thousands of containers would stall its node. Real
/// pods have a handful.
pub const MAX_CONTAINERS: usize = 100;
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// `MaxDNSNameservers`, `MaxDNSSearchPaths`, `MaxDNSSearchListChars`.
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// Sets `field` to `value` when it is unset or empty, which Kubernetes' Go
/// types cannot tell apart.
fn fill(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Same for the probe timings, whose zero means "unset" in Kubernetes.
fn fill_int(field: &mut Option<i32>, value: i32) {
    if field.is_none_or(|v| v == 0) {
        *field = Some(value);
    }
}

/// Defaults of a Pod object: those of its spec, requests taken from limits,
/// and a `Pending` status with its QoS class.
pub(super) fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    default_pod_spec(spec);
    // `SetDefaults_Pod` (not `_PodSpec`): templates keep their requests unset.
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(resources) = &mut container.resources {
            requests_from_limits(resources);
        }
    }
    spec.enable_service_links.get_or_insert(true);
    // Host networking: every container port is a port of the node.
    if spec.host_network == Some(true) {
        for port in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
            .flat_map(|c| c.ports.iter_mut().flatten())
        {
            if port.host_port.is_none_or(|p| p == 0) {
                port.host_port = Some(port.container_port);
            }
        }
    }
    let qos = qos_class(spec);
    let status = pod.status.get_or_insert_with(Default::default);
    fill(&mut status.phase, "Pending");
    fill(&mut status.qos_class, qos);
}

/// `SetDefaults_PodSpec` and `SetDefaults_Container`, for pods and templates.
pub(super) fn default_pod_spec(spec: &mut PodSpec) {
    fill(&mut spec.restart_policy, "Always");
    fill(&mut spec.dns_policy, "ClusterFirst");
    spec.termination_grace_period_seconds.get_or_insert(30);
    fill(&mut spec.scheduler_name, "default-scheduler");
    spec.security_context.get_or_insert_with(Default::default);
    for container in &mut spec.containers {
        default_container(container);
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(pull_policy_for(c.image.as_deref().unwrap_or_default()).to_string());
    }
    fill(&mut c.termination_message_path, "/dev/termination-log");
    fill(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        fill(&mut port.protocol, "TCP");
    }
    for probe in [
        &mut c.readiness_probe,
        &mut c.liveness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        fill_int(&mut probe.timeout_seconds, 1);
        fill_int(&mut probe.period_seconds, 10);
        fill_int(&mut probe.success_threshold, 1);
        fill_int(&mut probe.failure_threshold, 3);
        if let Some(get) = &mut probe.http_get {
            fill(&mut get.path, "/");
            fill(&mut get.scheme, "HTTP");
        }
    }
}

/// `Always` for `:latest` or no tag at all (which means latest), otherwise
/// `IfNotPresent`. An image pinned by digest alone has no tag and is not
/// "latest".
fn pull_policy_for(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    // Only the last path component carries a tag: in `registry:5000/app`
    // the colon belongs to the registry's host.
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':').map(|(_, tag)| tag) {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

fn requests_from_limits(resources: &mut ResourceRequirements) {
    let Some(limits) = &resources.limits else {
        return;
    };
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    for (name, limit) in limits {
        // A limit that does not parse is reported once, as a limit, not
        // again as the request copied from it.
        if matches!(name.as_str(), "cpu" | "memory") && amount(name, limit).is_none() {
            continue;
        }
        requests
            .entry(name.clone())
            .or_insert_with(|| limit.clone());
    }
}

/// A quantity of a resource podnet accounts for, in its base unit
/// (millicores, bytes); `None` for other resources or a quantity that does
/// not parse (validation reports those).
fn amount(resource: &str, q: &Quantity) -> Option<u64> {
    match resource {
        "cpu" => parse_cpu_millis(&q.0).ok(),
        "memory" => parse_memory_bytes(&q.0).ok(),
        _ => None,
    }
}

/// `GetPodQOS` over cpu and memory: BestEffort without any request or
/// limit, Guaranteed when every container limits both and requests equal
/// limits, Burstable otherwise.
fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, u64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, u64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in &spec.containers {
        let r = c.resources.as_ref();
        for (name, q) in r.and_then(|r| r.requests.as_ref()).into_iter().flatten() {
            if let Some(v) = amount(name, q).filter(|v| *v > 0) {
                *requests.entry(name.as_str()).or_default() += v;
            }
        }
        let mut limited = HashSet::new();
        for (name, q) in r.and_then(|r| r.limits.as_ref()).into_iter().flatten() {
            if let Some(v) = amount(name, q).filter(|v| *v > 0) {
                limited.insert(name.as_str());
                *limits.entry(name.as_str()).or_default() += v;
            }
        }
        guaranteed &= limited.contains("cpu") && limited.contains("memory");
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn one_of(errs: &mut Errors, path: &FieldPath, value: Option<&str>, allowed: &[&str]) {
    if let Some(v) = value
        && !allowed.contains(&v)
    {
        errs.unsupported(path, v, allowed);
    }
}

/// `ValidatePodSpec`, for a pod at `spec` and a template at
/// `spec.template.spec`.
pub(super) fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Errors) {
    let containers = path.child("containers");
    if spec.containers.is_empty() {
        errs.required(&containers, "");
    }
    if spec.containers.len() > MAX_CONTAINERS {
        // One error, not one per container beyond reason.
        errs.too_many(&containers, spec.containers.len(), MAX_CONTAINERS);
    } else {
        let mut names = HashSet::new();
        for (i, c) in spec.containers.iter().enumerate() {
            validate_container(c, &containers.index(i), &mut names, errs);
        }
    }

    one_of(
        errs,
        &path.child("restartPolicy"),
        spec.restart_policy.as_deref(),
        RESTART_POLICIES,
    );
    one_of(
        errs,
        &path.child("dnsPolicy"),
        spec.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    validate_dns_config(spec, &path.child("dnsConfig"), errs);
    if spec.host_network == Some(true) {
        errs.warn(
            &path.child("hostNetwork"),
            "the pod keeps its own pod IP (podnet does not emulate the node's network namespace); only its DNS follows hostNetwork",
        );
    }
    errs.non_negative(
        &path.child("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    validate_labels(
        spec.node_selector.as_ref(),
        &path.child("nodeSelector"),
        errs,
    );
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.invalid_each(&path.child("nodeName"), node, dns1123_subdomain(node));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.invalid_each(&path.child(field), v, dns1123_label(v));
        }
    }
}

fn validate_container(
    c: &Container,
    path: &FieldPath,
    names: &mut HashSet<String>,
    errs: &mut Errors,
) {
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.required(&name_path, "");
    } else {
        errs.invalid_each(&name_path, &c.name, dns1123_label(&c.name));
        if !names.insert(c.name.clone()) {
            errs.duplicate(&name_path, &c.name);
        }
    }

    match c.image.as_deref() {
        None | Some("") => errs.required(&path.child("image"), ""),
        Some(image) if image.trim() != image => errs.invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ),
        Some(_) => {}
    }
    one_of(
        errs,
        &path.child("imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        PULL_POLICIES,
    );
    one_of(
        errs,
        &path.child("terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        TERMINATION_MESSAGE_POLICIES,
    );

    // Port names are unique per container (`validateContainerPorts`), and
    // they are what a probe's named port refers to.
    let mut port_names: Vec<&str> = Vec::new();
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let p = path.child("ports").index(j);
        match port.container_port {
            0 => errs.required(&p.child("containerPort"), ""),
            n if !(1..=65535).contains(&n) => {
                errs.invalid(&p.child("containerPort"), n, PORT_RANGE)
            }
            _ => {}
        }
        if let Some(host_port) = port.host_port
            && host_port != 0
            && !(1..=65535).contains(&host_port)
        {
            errs.invalid(&p.child("hostPort"), host_port, PORT_RANGE);
        }
        one_of(
            errs,
            &p.child("protocol"),
            port.protocol.as_deref(),
            PROTOCOLS,
        );
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let problems = port_name(name);
            if !problems.is_empty() {
                errs.invalid_each(&p.child("name"), name, problems);
            } else if port_names.contains(&name) {
                errs.duplicate(&p.child("name"), name);
            } else {
                port_names.push(name);
            }
        }
    }

    for (j, env) in c.env.iter().flatten().enumerate() {
        let p = path.child("env").index(j).child("name");
        if env.name.is_empty() {
            errs.required(&p, "");
        } else if !env
            .name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
        {
            // RelaxedEnvironmentVariableValidation, on by default since 1.32.
            errs.invalid(
                &p,
                &env.name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            );
        }
    }

    if let Some(resources) = &c.resources {
        validate_resources(resources, &path.child("resources"), errs);
    }

    for (field, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let p = path.child(field);
        validate_probe(probe, &p, &port_names, errs);
        // Only readiness can need several successes: a liveness or startup
        // probe that succeeded once has answered its question.
        if field != "readinessProbe"
            && let Some(n) = probe.success_threshold
            && n != 1
        {
            errs.invalid(&p.child("successThreshold"), n, "must be 1");
        }
    }
}

fn validate_probe(probe: &Probe, path: &FieldPath, port_names: &[&str], errs: &mut Errors) {
    let mut handled = false;
    // Kubernetes' order: the second handler present is the one reported.
    for (name, present) in [
        ("exec", probe.exec.is_some()),
        ("httpGet", probe.http_get.is_some()),
        ("tcpSocket", probe.tcp_socket.is_some()),
        ("grpc", probe.grpc.is_some()),
    ] {
        if !present {
            continue;
        }
        let p = path.child(name);
        if handled {
            errs.forbidden(&p, "may not specify more than 1 handler type");
            continue;
        }
        handled = true;
        match name {
            "httpGet" => {
                if let Some(get) = &probe.http_get {
                    validate_port_ref(&get.port, &p.child("port"), port_names, errs);
                    one_of(
                        errs,
                        &p.child("scheme"),
                        get.scheme.as_deref(),
                        HTTP_SCHEMES,
                    );
                    if get.path.as_deref().is_none_or(str::is_empty) {
                        errs.required(&p.child("path"), "");
                    }
                    for (k, header) in get.http_headers.iter().flatten().enumerate() {
                        if header.name.is_empty()
                            || !header
                                .name
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        {
                            errs.invalid(
                                &p.child("httpHeaders").index(k).child("name"),
                                &header.name,
                                "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
                            );
                        }
                    }
                }
            }
            "tcpSocket" => {
                if let Some(tcp) = &probe.tcp_socket {
                    validate_port_ref(&tcp.port, &p.child("port"), port_names, errs);
                }
            }
            _ => errs.forbidden(&p, "podnet runs httpGet and tcpSocket probes only"),
        }
    }
    if !handled {
        errs.required(path, "must specify a handler type");
    }
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        errs.non_negative(&path.child(field), value.map(i64::from));
    }
}

/// A probe's port: a number, or the name of one of this container's ports
/// (the kubelet resolves it there; a name nothing declares never connects).
fn validate_port_ref(port: &IntOrString, path: &FieldPath, port_names: &[&str], errs: &mut Errors) {
    match port {
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                errs.invalid(path, n, PORT_RANGE);
            }
        }
        IntOrString::String(name) => {
            let problems = port_name(name);
            if !problems.is_empty() {
                errs.invalid_each(path, name, problems);
            } else if !port_names.contains(&name.as_str()) {
                let known = if port_names.is_empty() {
                    "this container has no named ports".to_string()
                } else {
                    format!("named ports: {}", port_names.join(", "))
                };
                errs.invalid(
                    path,
                    name,
                    &format!("must be the name of one of this container's ports ({known})"),
                );
            }
        }
    }
}

/// `validatePodDNSConfig`: a `None` policy needs a `dnsConfig` with a
/// nameserver; at most 3 nameservers, each an IP address; at most 32
/// search domains in at most 2048 characters, each a DNS subdomain (a
/// trailing dot allowed); options named.
fn validate_dns_config(spec: &PodSpec, path: &FieldPath, errs: &mut Errors) {
    let config = spec.dns_config.as_ref();
    if spec.dns_policy.as_deref() == Some("None") {
        let Some(config) = config else {
            errs.required(path, "must provide `dnsConfig` when `dnsPolicy` is None");
            return;
        };
        if config.nameservers.as_ref().is_none_or(Vec::is_empty) {
            errs.required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            );
            return;
        }
    }
    let Some(config) = config else {
        return;
    };
    let nameservers = config.nameservers.as_deref().unwrap_or_default();
    let nameservers_path = path.child("nameservers");
    if nameservers.len() > MAX_DNS_NAMESERVERS {
        errs.invalid(
            &nameservers_path,
            nameservers,
            &format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        );
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            errs.invalid(&nameservers_path.index(i), ns, super::ip::IP_MSG);
        }
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    let searches_path = path.child("searches");
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.invalid(
            &searches_path,
            searches,
            &format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        );
    }
    if searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errs.invalid(
            &searches_path,
            searches,
            &format!(
                "must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list"
            ),
        );
    }
    for (i, search) in searches.iter().enumerate() {
        // It is fine to have a trailing dot.
        let name = search.strip_suffix('.').unwrap_or(search);
        errs.invalid_each(&searches_path.index(i), name, dns1123_subdomain(name));
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            errs.required(&path.child("options").index(i), "must not be empty");
        }
    }
}

/// Quantities of cpu and memory must parse, and a request may not exceed
/// its limit. Other resources are not accounted by podnet (and warned about
/// as not emulated).
fn validate_resources(r: &ResourceRequirements, path: &FieldPath, errs: &mut Errors) {
    let mut parse = |list: &str, name: &str, q: &Quantity| -> Option<u64> {
        if !matches!(name, "cpu" | "memory") {
            return None;
        }
        let v = amount(name, q);
        if v.is_none() {
            let detail = if q.0.trim_start().starts_with('-') {
                "must be greater than or equal to 0"
            } else {
                "must be a quantity: a number with an optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti)"
            };
            errs.invalid(&path.child(list).key(name), &q.0, detail);
        }
        v
    };
    let limits: BTreeMap<&str, (u64, &Quantity)> = r
        .limits
        .iter()
        .flatten()
        .filter_map(|(name, q)| parse("limits", name, q).map(|v| (name.as_str(), (v, q))))
        .collect();
    let requests: Vec<(&str, u64, &Quantity)> = r
        .requests
        .iter()
        .flatten()
        .filter_map(|(name, q)| parse("requests", name, q).map(|v| (name.as_str(), v, q)))
        .collect();
    for (name, request, q) in requests {
        if let Some((limit, limit_q)) = limits.get(name)
            && request > *limit
        {
            errs.invalid(
                &path.child("requests"),
                &q.0,
                &format!(
                    "must be less than or equal to {name} limit of {}",
                    limit_q.0
                ),
            );
        }
    }
}
