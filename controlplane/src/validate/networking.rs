//! networking.k8s.io/v1 Ingress and IngressClass: the checks of
//! `ValidateIngressCreate` and `ValidateIngressClass`
//! (`pkg/apis/networking/validation`), worded as upstream words them, and
//! the API server's deprecation warning for the `kubernetes.io/ingress.class`
//! annotation.
//!
//! Deliberately not here: anything that needs other objects (does the
//! IngressClass, the backend Service or the TLS Secret exist, which class is
//! the default), and the leniency upstream keeps on update for invalid
//! values stored by older releases (`AllowInvalidSecretName`,
//! `AllowInvalidWildcardHostRule`): podnet never stored any.
//!
//! Resource backends and IngressClass `parameters` are valid Kubernetes that
//! podnet does not act on (it routes to Services and has no controller
//! configuration object); they are checked here and warned about by the
//! schema allowlist.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressClass, IngressClassParametersReference,
    IngressRule, IngressServiceBackend, IngressSpec,
};

use super::field::{Errors, FieldPath};
use super::names::{dns1035_label, dns1123_label, dns1123_subdomain, port_name};

/// `supportedPathTypes`, sorted as `sets.List` prints them.
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
/// `invalidPathSequences`: directory traversal and encoded slashes, which
/// proxies would otherwise match differently than they forward.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
/// `invalidPathSuffixes`.
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const PARAMETER_SCOPES: &[&str] = &["Cluster", "Namespace"];
/// `maxLenIngressClassController`.
const CONTROLLER_MAX: usize = 250;
const SUBDOMAIN_MAX: usize = 253;
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
/// The class annotation that predates `spec.ingressClassName`.
const ANNOTATION_INGRESS_CLASS: &str = "kubernetes.io/ingress.class";

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// `RegexError("Invalid path", httpPathFmt)`: RFC 3986 path characters.
const HTTP_PATH_MSG: &str =
    "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')";

/// networking/v1 has no Ingress defaults (`pathType` has had none since
/// v1beta1); kept so every kind's dispatch reads the same.
pub(super) fn default_ingress(_ingress: &mut Ingress) {}

/// `ValidateIngressCreate`: the spec, then the class annotation against
/// `spec.ingressClassName`.
pub(super) fn validate_ingress(ingress: &Ingress, errs: &mut Errors) {
    // A Go struct upstream: an absent spec is an empty one.
    let empty = IngressSpec::default();
    let spec = ingress.spec.as_ref().unwrap_or(&empty);
    validate_ingress_spec(spec, &FieldPath::new("spec"), errs);

    let annotation = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_INGRESS_CLASS));
    match (annotation, &spec.ingress_class_name) {
        (Some(value), Some(class)) if value != class => errs.invalid(
            // Upstream's path, without `metadata.`.
            &FieldPath::new("annotations").child(ANNOTATION_INGRESS_CLASS),
            value,
            "must match `ingressClassName` when both are specified",
        ),
        (Some(_), None) => errs.warn(
            &FieldPath::new("metadata")
                .child("annotations")
                .key(ANNOTATION_INGRESS_CLASS),
            &format!(
                "annotation {ANNOTATION_INGRESS_CLASS:?} is deprecated, please use 'spec.ingressClassName' instead"
            ),
        ),
        _ => {}
    }
}

/// `ValidateIngressSpec`.
fn validate_ingress_spec(spec: &IngressSpec, path: &FieldPath, errs: &mut Errors) {
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.invalid(
            path,
            &spec.rules,
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(backend) = &spec.default_backend {
        validate_backend(backend, &path.child("defaultBackend"), errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        validate_rule(rule, &path.child("rules").index(i), errs);
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        let tls_path = path.child("tls").index(i);
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            errs.invalid_each(&tls_path.child("hosts").index(j), host, host_name(host));
        }
        // `validateTLSSecretName`: empty means "whatever the controller
        // serves by default".
        if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            errs.invalid_each(
                &tls_path.child("secretName"),
                secret,
                dns1123_subdomain(secret),
            );
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.invalid_each(
            &path.child("ingressClassName"),
            class,
            dns1123_subdomain(class),
        );
    }
}

/// `validateIngressRules` for one rule: its host, then its paths.
fn validate_rule(rule: &IngressRule, path: &FieldPath, errs: &mut Errors) {
    if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
        let host_path = path.child("host");
        if is_ip_sloppy(host) {
            errs.invalid(&host_path, host, "must be a DNS name, not an IP address");
        }
        errs.invalid_each(&host_path, host, host_name(host));
    }
    let Some(http) = &rule.http else { return };
    let paths_path = path.child("http").child("paths");
    if http.paths.is_empty() {
        errs.required(&paths_path, "");
    }
    for (i, p) in http.paths.iter().enumerate() {
        validate_path(p, &paths_path.index(i), errs);
    }
}

/// A rule's or a TLS entry's host: a DNS subdomain, or a wildcard one when
/// it has a `*` anywhere (`IsWildcardDNS1123Subdomain`).
fn host_name(host: &str) -> Vec<String> {
    if !host.contains('*') {
        return dns1123_subdomain(host);
    }
    let mut problems = Vec::new();
    if host.len() > SUBDOMAIN_MAX {
        problems.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    let shaped = host
        .strip_prefix("*.")
        .is_some_and(|rest| rest.split('.').all(is_label_shape));
    if !shaped {
        problems.push(WILDCARD_MSG.to_string());
    }
    problems
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, one label of a subdomain.
fn is_label_shape(label: &str) -> bool {
    let b = label.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// `netutils.ParseIPSloppy`: an IP address, IPv4 octets with leading zeros
/// included (`010.1.1.1` is an address to Go, and also a valid subdomain).
fn is_ip_sloppy(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            let digits = o.trim_start_matches('0');
            !o.is_empty()
                && o.bytes().all(|c| c.is_ascii_digit())
                && digits.len() <= 3
                && digits.parse::<u16>().unwrap_or(0) <= 255
        })
}

/// `validateHTTPIngressPath`.
fn validate_path(p: &HTTPIngressPath, path: &FieldPath, errs: &mut Errors) {
    let type_path = path.child("pathType");
    let value = p.path.as_deref().unwrap_or_default();
    let value_path = path.child("path");
    match p.path_type.as_str() {
        // Upstream checks nothing else of a path without a type.
        "" => return errs.required(&type_path, "pathType must be specified"),
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.invalid(&value_path, value, "must be an absolute path");
            }
            for seq in INVALID_PATH_SEQUENCES {
                if value.contains(seq) {
                    errs.invalid(&value_path, value, &format!("must not contain '{seq}'"));
                }
            }
            for suffix in INVALID_PATH_SUFFIXES {
                if value.ends_with(suffix) {
                    errs.invalid(&value_path, value, &format!("cannot end with '{suffix}'"));
                }
            }
        }
        // The controller's own matching: anything absolute, or nothing.
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.invalid(&value_path, value, "must be an absolute path");
            }
        }
        other => errs.unsupported(&type_path, other, PATH_TYPES),
    }
    validate_backend(&p.backend, &path.child("backend"), errs);
}

/// `validateIngressBackend`: a Service (by name, with a port by name or
/// number) or some other object, not both.
fn validate_backend(backend: &IngressBackend, path: &FieldPath, errs: &mut Errors) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => {
            errs.invalid(path, "", "cannot set both resource and service backends");
        }
        (Some(service), None) => validate_service_backend(service, path, errs),
        (None, Some(resource)) => typed_reference(
            resource.api_group.as_deref(),
            &resource.kind,
            &resource.name,
            &path.child("resource"),
            errs,
        ),
        (None, None) => errs.invalid(path, "", "resource or service backend is required"),
    }
}

fn validate_service_backend(service: &IngressServiceBackend, path: &FieldPath, errs: &mut Errors) {
    let service_path = path.child("service");
    let name_path = service_path.child("name");
    if service.name.is_empty() {
        errs.required(&name_path, "");
    } else {
        // `ValidateServiceName`: a Service's name is a DNS-1035 label.
        errs.invalid_each(&name_path, &service.name, dns1035_label(&service.name));
    }
    // A Go struct upstream: unset is the zero value.
    let port = service.port.as_ref();
    let name = port.and_then(|p| p.name.as_deref()).unwrap_or_default();
    let number = port.and_then(|p| p.number).unwrap_or_default();
    let port_path = service_path.child("port");
    match (name.is_empty(), number == 0) {
        (false, false) => errs.invalid(path, "", "cannot set both port name & port number"),
        (false, true) => errs.invalid_each(&port_path.child("name"), name, port_name(name)),
        (true, false) if !(1..=65535).contains(&number) => {
            errs.invalid(&port_path.child("number"), number, PORT_RANGE);
        }
        (true, false) => {}
        (true, true) => errs.required(path, "port name or number is required"),
    }
}

/// `validateIngressTypedLocalObjectReference`, also the part of
/// `validateIngressClassParametersReference` that names the object.
fn typed_reference(
    api_group: Option<&str>,
    kind: &str,
    name: &str,
    path: &FieldPath,
    errs: &mut Errors,
) {
    if let Some(group) = api_group {
        errs.invalid_each(&path.child("apiGroup"), group, dns1123_subdomain(group));
    }
    for (field, value) in [("kind", kind), ("name", name)] {
        if value.is_empty() {
            errs.required(&path.child(field), "");
        } else {
            errs.invalid_each(&path.child(field), value, path_segment_name(value));
        }
    }
}

/// `IsPathSegmentName`: usable as one segment of a REST path.
fn path_segment_name(value: &str) -> Vec<String> {
    if matches!(value, "." | "..") {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .into_iter()
        .filter(|bad| value.contains(bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `ValidateIngressClass`: the controller that implements the class, and
/// the reference to its configuration.
/// `SetDefaults_IngressClass`: parameters without a scope are
/// cluster-scoped.
pub(super) fn default_ingress_class(class: &mut IngressClass) {
    if let Some(params) = class.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
        params.scope.get_or_insert_with(|| "Cluster".to_string());
    }
}

pub(super) fn validate_ingress_class(class: &IngressClass, errs: &mut Errors) {
    let path = FieldPath::new("spec");
    let spec = class.spec.as_ref();
    let controller_path = path.child("controller");
    match spec
        .and_then(|s| s.controller.as_deref())
        .unwrap_or_default()
    {
        "" => errs.required(&controller_path, ""),
        controller => {
            if controller.len() > CONTROLLER_MAX {
                errs.too_long(&controller_path, CONTROLLER_MAX);
            }
            domain_prefixed_path(controller, &controller_path, errs);
        }
    }
    if let Some(params) = spec.and_then(|s| s.parameters.as_ref()) {
        validate_parameters(params, &path.child("parameters"), errs);
    }
}

/// `IsDomainPrefixedPath`: `example.com/some/path`, a DNS subdomain, a
/// slash, then RFC 3986 path characters.
fn domain_prefixed_path(value: &str, path: &FieldPath, errs: &mut Errors) {
    let Some((host, rest)) = value
        .split_once('/')
        .filter(|(host, rest)| !host.is_empty() && !rest.is_empty())
    else {
        return errs.invalid(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        );
    };
    errs.invalid_each(path, host, dns1123_subdomain(host));
    let http_path_char = |c: u8| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c);
    if !rest.bytes().all(http_path_char) {
        errs.invalid(path, rest, HTTP_PATH_MSG);
    }
}

/// `validateIngressClassParametersReference`. An unset scope is `Cluster`:
/// the API server defaults it so (`SetDefaults_IngressClass`) before
/// validating.
fn validate_parameters(
    params: &IngressClassParametersReference,
    path: &FieldPath,
    errs: &mut Errors,
) {
    typed_reference(
        params.api_group.as_deref(),
        &params.kind,
        &params.name,
        path,
        errs,
    );
    let namespace_path = path.child("namespace");
    match params.scope.as_deref().unwrap_or("Cluster") {
        "Cluster" => {
            if params.namespace.is_some() {
                errs.forbidden(&namespace_path, "`parameters.scope` is set to 'Cluster'");
            }
        }
        "Namespace" => match &params.namespace {
            None => errs.required(&namespace_path, "`parameters.scope` is set to 'Namespace'"),
            Some(ns) => errs.invalid_each(&namespace_path, ns, dns1123_label(ns)),
        },
        other => errs.unsupported(&path.child("scope"), other, PARAMETER_SCOPES),
    }
}
