//! The ingress controller's routing core: a table built from Ingresses,
//! IngressClasses, Services and EndpointSlices (Kubernetes JSON, as stored),
//! and the choice of a backend for one request's host and path, or of a TLS
//! Secret for one ClientHello's SNI name.
//!
//! Semantics follow networking.k8s.io/v1 and, where the spec leaves room,
//! ingress-nginx:
//!
//! - Served Ingresses: `spec.ingressClassName` naming one of our
//!   IngressClasses (`spec.controller` == [`CONTROLLER_NAME`]); else the
//!   legacy `kubernetes.io/ingress.class` annotation naming one; else, with
//!   neither set, one of our classes marked as the default class. Ingresses
//!   being deleted are skipped.
//! - Hosts, like nginx `server_name`: an exact rule host wins, then the
//!   `*.suffix` wildcard matching exactly one extra label, then rules
//!   without a host. Only the chosen host's rules are considered; the same
//!   host in several Ingresses is merged.
//! - Paths: the longest rule path wins (a Prefix path's trailing `/` does
//!   not count), then Exact over Prefix over ImplementationSpecific (a plain
//!   string prefix, as nginx `location`), then the oldest Ingress.
//! - No matching path: the chosen host's oldest owning Ingress with a
//!   `defaultBackend`, else the oldest served Ingress with one, else the
//!   controller's own default backend Service (ingress-nginx's
//!   `--default-backend-service`, on the Service's first port), else
//!   [`Outcome::NotFound`].
//! - Backends are resolved once at build: the Service port (by number or
//!   name, TCP only) and its ready endpoints (pod IP : target port, from the
//!   EndpointSlices, as the service proxy does).
//!
//! No I/O, no clock, nothing async: [`RouteTable::build`] is rebuilt on every
//! change and [`RouteTable::route`] looks at the rules of one host only.
//! Deliberately not here: endpoint choice per request (load balancing),
//! percent-decoding or normalizing request paths (`/a/../b`), annotations
//! (rewrites, canaries, …), Secret contents, and Ingress status writes.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, FixedOffset};
use podnet_proto::model::network::IpFamily;
use podnet_proto::model::view::{EndpointSliceView, EndpointView, Protocol};
use podnet_proto::model::{str_at, strs_at};
use serde_json::Value;

/// The `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER_NAME: &str = "podnet.io/ingress-controller";

const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the table is built from: every object of each kind the controller
/// sees, in any order. Objects of other controllers are filtered out here.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteInput<'a> {
    pub ingresses: &'a [Value],
    pub classes: &'a [Value],
    pub services: &'a [Value],
    pub slices: &'a [Value],
    /// The controller's default backend Service, (namespace, name).
    pub default_service: Option<(&'a str, &'a str)>,
    /// The controller pod's primary family: the endpoints it sends to
    /// are the ones of that address type.
    pub family: IpFamily,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A rule (or default backend) matched and its Service has ready
    /// endpoints.
    Backend(Backend),
    /// No rule and no default backend: the caller answers 404.
    NotFound,
    /// A rule matched but its backend cannot take traffic: the caller
    /// answers 503 and says why.
    Unavailable(Unavailable),
}

/// A matched rule whose backend can take traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The Ingress the rule belongs to, (namespace, name); empty for the
    /// controller's default backend.
    pub ingress: (String, String),
    /// The rule, for logs and headers: `shop.example.com /api (Prefix)`,
    /// `/api (Prefix)` for a rule without host, `default backend` (an
    /// Ingress's) or [`CONTROLLER_DEFAULT`].
    pub rule: String,
    /// The Service, (namespace, name).
    pub service: (String, String),
    /// The Service port as the Ingress wrote it: `80` or `http`.
    pub port: String,
    /// Ready endpoints, pod IP : target port, sorted and distinct; never
    /// empty.
    pub endpoints: Vec<SocketAddr>,
}

/// The rule name of the controller's default backend.
pub const CONTROLLER_DEFAULT: &str = "controller default backend";

/// A matched rule whose backend cannot take traffic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// As [`Backend::ingress`].
    pub ingress: (String, String),
    pub rule: String,
    /// The Service, (namespace, name); the name is empty when the backend
    /// names no Service (a `resource` backend).
    pub service: (String, String),
    /// Lowercase, for a user: `service "default/web" not found`.
    pub reason: String,
}

/// The routing table of one controller; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Served Ingresses, oldest first; a rule's `rank` indexes here.
    served: Vec<Served>,
    /// Resolved backends; shared by the rules naming the same Service port.
    targets: Vec<Target>,
    exact: HashMap<String, HostRules>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, HostRules>,
    /// Rules without a host.
    any_host: HostRules,
    /// Oldest served Ingress with a default backend.
    default: Option<usize>,
    /// The controller's default backend, an index into `targets`.
    controller_default: Option<usize>,
    tls_exact: HashMap<String, TlsPick>,
    tls_wildcard: HashMap<String, TlsPick>,
    tls_all: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Served {
    namespace: String,
    name: String,
    /// Index into `targets`.
    default_backend: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct HostRules {
    /// In precedence order: the first that matches wins.
    paths: Vec<PathRule>,
    /// Ranks of the Ingresses with rules for this host, ascending.
    owners: Vec<usize>,
    /// The oldest owner with a default backend.
    default: Option<usize>,
}

#[derive(Debug, Clone)]
struct PathRule {
    kind: PathKind,
    /// Exact and ImplementationSpecific: the path as written; Prefix:
    /// without trailing slashes (empty matches everything).
    pattern: String,
    /// The length that decides precedence.
    len: usize,
    rank: usize,
    label: String,
    target: usize,
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == self.pattern,
            PathKind::Prefix => {
                self.pattern.is_empty()
                    || (path.starts_with(&self.pattern)
                        && matches!(path.as_bytes().get(self.pattern.len()), None | Some(b'/')))
            }
            PathKind::ImplementationSpecific => path.starts_with(&self.pattern),
        }
    }
}

/// The order is the precedence at equal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathKind {
    /// A missing `pathType` is ImplementationSpecific, as ingress-nginx
    /// reads it; an unknown one is an invalid rule.
    fn parse(s: &str) -> Option<PathKind> {
        match s {
            "Exact" => Some(PathKind::Exact),
            "Prefix" => Some(PathKind::Prefix),
            "ImplementationSpecific" | "" => Some(PathKind::ImplementationSpecific),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            PathKind::Exact => "Exact",
            PathKind::Prefix => "Prefix",
            PathKind::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

#[derive(Debug, Clone)]
enum Target {
    Ready {
        service: (String, String),
        port: String,
        endpoints: Vec<SocketAddr>,
    },
    Unavailable {
        service: (String, String),
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct TlsPick {
    /// 0: the host is listed in the entry; 1: the entry lists no hosts and
    /// covers its Ingress's rule hosts.
    tier: u8,
    rank: usize,
    namespace: String,
    secret: String,
}

/// A rule or TLS host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// The suffix after `*.`.
    Wildcard(String),
}

impl HostPattern {
    /// `None` for a host the API server would have rejected (`foo.*.com`,
    /// `*`): such a rule matches nothing rather than everything.
    fn parse(host: &str) -> Option<HostPattern> {
        if host.is_empty() {
            return Some(HostPattern::Any);
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return None;
            }
            return Some(HostPattern::Wildcard(suffix.to_string()));
        }
        if host.is_empty() || host.contains('*') {
            return None;
        }
        Some(HostPattern::Exact(host))
    }
}

/// The host part of a Host header or `:authority`, lowercased, without port
/// or trailing dot: `Shop.Example.COM.:8443` → `shop.example.com`,
/// `[::1]:80` → `::1`.
fn request_host(host: &str) -> String {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        match host.rsplit_once(':') {
            // More than one colon without brackets: a bare IPv6 literal.
            Some((name, _port)) if !name.contains(':') => name,
            _ => host,
        }
    };
    bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase()
}

/// The key of the wildcard rules that may match `host`: everything after
/// its first label. A wildcard matches exactly one label, so there is at
/// most one candidate suffix.
fn wildcard_key(host: &str) -> Option<&str> {
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && !rest.is_empty()).then_some(rest)
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn is_tcp(port: &Value) -> bool {
    matches!(str_at(port, "/protocol"), "" | "TCP")
}

/// Which of `classes` are ours, and whether one of them is the default.
struct Classes<'a> {
    ours: Vec<&'a str>,
    default: bool,
}

impl<'a> Classes<'a> {
    fn new(classes: &'a [Value]) -> Classes<'a> {
        let mut ours = Vec::new();
        let mut default = false;
        for class in classes {
            if str_at(class, "/spec/controller") != CONTROLLER_NAME {
                continue;
            }
            let name = str_at(class, "/metadata/name");
            if !name.is_empty() {
                ours.push(name);
            }
            default |= annotation(class, DEFAULT_CLASS_ANNOTATION) == Some("true");
        }
        Classes { ours, default }
    }

    fn serves(&self, ingress: &Value) -> bool {
        let class_name = str_at(ingress, "/spec/ingressClassName");
        if !class_name.is_empty() {
            return self.ours.contains(&class_name);
        }
        match annotation(ingress, LEGACY_CLASS_ANNOTATION) {
            Some(legacy) => self.ours.contains(&legacy),
            None => self.default,
        }
    }
}

/// Which Service port a backend names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PortRef {
    Number(i64),
    Name(String),
}

/// Resolves backends to Service ports and endpoints, once per distinct
/// (namespace, service, port).
struct Resolver<'a> {
    family: IpFamily,
    services: HashMap<(&'a str, &'a str), &'a Value>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a Value>>,
    cache: HashMap<(String, String, PortRef), usize>,
    targets: Vec<Target>,
}

impl<'a> Resolver<'a> {
    fn new(services: &'a [Value], slices: &'a [Value], family: IpFamily) -> Resolver<'a> {
        let mut by_name = HashMap::new();
        for svc in services {
            let key = (
                str_at(svc, "/metadata/namespace"),
                str_at(svc, "/metadata/name"),
            );
            by_name.entry(key).or_insert(svc);
        }
        let mut by_service: HashMap<_, Vec<_>> = HashMap::new();
        for slice in slices {
            let svc = label(slice, SERVICE_NAME_LABEL).unwrap_or("");
            // As the service proxy: a slice without addressType is IPv4.
            let address_type = match str_at(slice, "/addressType") {
                "" => Some(IpFamily::V4),
                other => IpFamily::parse(other),
            };
            if svc.is_empty() || address_type != Some(family) {
                continue;
            }
            by_service
                .entry((str_at(slice, "/metadata/namespace"), svc))
                .or_default()
                .push(slice);
        }
        Resolver {
            family,
            services: by_name,
            slices: by_service,
            cache: HashMap::new(),
            targets: Vec::new(),
        }
    }

    fn push(&mut self, target: Target) -> usize {
        self.targets.push(target);
        self.targets.len() - 1
    }

    /// The index in `targets` of an Ingress backend (`spec.defaultBackend`
    /// or a path's `backend`) of an Ingress in `namespace`.
    fn resolve(&mut self, namespace: &str, backend: &Value) -> usize {
        let unavailable = |service: &str, reason: String| Target::Unavailable {
            service: (namespace.to_string(), service.to_string()),
            reason,
        };
        if backend.get("resource").is_some_and(|r| !r.is_null()) {
            let reason = "resource backends are not supported by podnet".to_string();
            return self.push(unavailable("", reason));
        }
        let name = str_at(backend, "/service/name");
        if name.is_empty() {
            let reason = "the backend names no service".to_string();
            return self.push(unavailable("", reason));
        }
        let port_ref = match backend
            .pointer("/service/port/number")
            .and_then(Value::as_i64)
        {
            Some(n) => PortRef::Number(n),
            None => match str_at(backend, "/service/port/name") {
                "" => {
                    let reason =
                        format!("the backend for service \"{namespace}/{name}\" names no port");
                    return self.push(unavailable(name, reason));
                }
                port_name => PortRef::Name(port_name.to_string()),
            },
        };
        let key = (namespace.to_string(), name.to_string(), port_ref);
        if let Some(&i) = self.cache.get(&key) {
            return i;
        }
        let target = self.target(namespace, name, &key.2);
        let i = self.push(target);
        self.cache.insert(key, i);
        i
    }

    /// The index in `targets` of the Service `namespace/name` on its first
    /// port, as ingress-nginx resolves its default backend Service.
    fn resolve_first_port(&mut self, namespace: &str, name: &str) -> usize {
        let first_port = self
            .services
            .get(&(namespace, name))
            .and_then(|svc| svc.pointer("/spec/ports/0/port"))
            .and_then(Value::as_i64);
        let backend = match first_port {
            Some(port) => serde_json::json!({"service": {"name": name, "port": {"number": port}}}),
            // Not there (yet): the resolver says so.
            None => serde_json::json!({"service": {"name": name, "port": {"number": 0}}}),
        };
        self.resolve(namespace, &backend)
    }

    fn target(&self, namespace: &str, name: &str, port_ref: &PortRef) -> Target {
        let service = (namespace.to_string(), name.to_string());
        let id = format!("{namespace}/{name}");
        let unavailable = |reason: String| Target::Unavailable {
            service: service.clone(),
            reason,
        };
        let Some(svc) = self.services.get(&(namespace, name)) else {
            return unavailable(format!("service \"{id}\" not found"));
        };
        if str_at(svc, "/spec/type") == "ExternalName" {
            return unavailable(format!(
                "service \"{id}\" is of type ExternalName, which podnet's ingress does not route to"
            ));
        }
        let (written, named) = match port_ref {
            PortRef::Number(n) => (n.to_string(), format!("port {n}")),
            PortRef::Name(s) => (s.clone(), format!("port named \"{s}\"")),
        };
        let matching: Vec<&Value> = array(svc, "/spec/ports")
            .filter(|p| match port_ref {
                PortRef::Number(n) => p.get("port").and_then(Value::as_i64) == Some(*n),
                PortRef::Name(s) => str_at(p, "/name") == s,
            })
            .collect();
        let Some(port) = matching.iter().find(|p| is_tcp(p)) else {
            if let Some(p) = matching.first() {
                return unavailable(format!(
                    "service \"{id}\" {named} is {}, ingress needs TCP",
                    str_at(p, "/protocol")
                ));
            }
            return unavailable(format!("service \"{id}\" has no {named}"));
        };
        let endpoints = self.ready_endpoints(namespace, name, str_at(port, "/name"));
        if endpoints.is_empty() {
            return unavailable(format!("service \"{id}\" has no ready endpoints"));
        }
        Target::Ready {
            service,
            port: written,
            endpoints,
        }
    }

    /// Ready endpoints of one Service port across its slices: the slice
    /// port with the Service port's name ("" for an unnamed port) carries
    /// the target port; a missing `ready` condition means ready.
    fn ready_endpoints(&self, namespace: &str, name: &str, port_name: &str) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for slice in self.slices.get(&(namespace, name)).into_iter().flatten() {
            let slice = EndpointSliceView(slice);
            let Some(number) = slice.port(port_name, Protocol::Tcp) else {
                continue;
            };
            out.extend(
                slice
                    .endpoints()
                    .filter(|ep| ep.ready())
                    .flat_map(EndpointView::addresses)
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .filter(|ip| IpFamily::of(*ip) == self.family)
                    .map(|ip| SocketAddr::new(ip, number)),
            );
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Oldest first: creation time (unparseable last), then namespace, name.
type Age<'a> = (bool, Option<DateTime<FixedOffset>>, &'a str, &'a str);

fn age(ingress: &Value) -> Age<'_> {
    let created = DateTime::parse_from_rfc3339(str_at(ingress, "/metadata/creationTimestamp")).ok();
    (
        created.is_none(),
        created,
        str_at(ingress, "/metadata/namespace"),
        str_at(ingress, "/metadata/name"),
    )
}

fn insert_tls(map: &mut HashMap<String, TlsPick>, host: String, pick: TlsPick) {
    match map.entry(host) {
        Entry::Vacant(e) => {
            e.insert(pick);
        }
        Entry::Occupied(mut e) => {
            if (pick.tier, pick.rank) < (e.get().tier, e.get().rank) {
                e.insert(pick);
            }
        }
    }
}

impl RouteTable {
    /// Builds the table. Objects that make no sense (missing fields, bad
    /// ports, invalid hosts or path types) are skipped or become
    /// [`Outcome::Unavailable`]: they come from the network and must not
    /// break the controller.
    pub fn build(input: &RouteInput) -> RouteTable {
        let classes = Classes::new(input.classes);
        let mut ingresses: Vec<&Value> = input
            .ingresses
            .iter()
            .filter(|i| i.is_object())
            .filter(|i| {
                i.pointer("/metadata/deletionTimestamp")
                    .is_none_or(Value::is_null)
            })
            .filter(|i| classes.serves(i))
            .collect();
        ingresses.sort_by_cached_key(|i| age(i));

        let mut resolver = Resolver::new(input.services, input.slices, input.family);
        let mut table = RouteTable::default();
        for (rank, ing) in ingresses.iter().enumerate() {
            let namespace = str_at(ing, "/metadata/namespace");
            let default_backend = ing
                .pointer("/spec/defaultBackend")
                .filter(|b| b.is_object())
                .map(|b| resolver.resolve(namespace, b));
            if default_backend.is_some() && table.default.is_none() {
                table.default = Some(rank);
            }
            table.served.push(Served {
                namespace: namespace.to_string(),
                name: str_at(ing, "/metadata/name").to_string(),
                default_backend,
            });

            let mut rule_hosts = Vec::new();
            for rule in array(ing, "/spec/rules") {
                let written = str_at(rule, "/host");
                let Some(pattern) = HostPattern::parse(written) else {
                    continue;
                };
                let rules = match &pattern {
                    HostPattern::Any => &mut table.any_host,
                    HostPattern::Exact(h) => table.exact.entry(h.clone()).or_default(),
                    HostPattern::Wildcard(s) => table.wildcard.entry(s.clone()).or_default(),
                };
                if rules.owners.last() != Some(&rank) {
                    rules.owners.push(rank);
                }
                for path in array(rule, "/http/paths") {
                    let Some(kind) = PathKind::parse(str_at(path, "/pathType")) else {
                        continue;
                    };
                    let Some(backend) = path.get("backend").filter(|b| b.is_object()) else {
                        continue;
                    };
                    let written_path = match str_at(path, "/path") {
                        "" => "/",
                        p => p,
                    };
                    let (pattern, len) = match kind {
                        PathKind::Prefix => {
                            let trimmed = written_path.trim_end_matches('/');
                            (trimmed.to_string(), trimmed.len().max(1))
                        }
                        _ => (written_path.to_string(), written_path.len()),
                    };
                    let label = match written.to_ascii_lowercase().as_str() {
                        "" => format!("{written_path} ({})", kind.as_str()),
                        h => format!("{h} {written_path} ({})", kind.as_str()),
                    };
                    rules.paths.push(PathRule {
                        kind,
                        pattern,
                        len,
                        rank,
                        label,
                        target: resolver.resolve(namespace, backend),
                    });
                }
                if pattern != HostPattern::Any {
                    rule_hosts.push(pattern);
                }
            }

            for tls in array(ing, "/spec/tls") {
                let secret = str_at(tls, "/secretName");
                if secret.is_empty() {
                    continue;
                }
                table
                    .tls_all
                    .push((namespace.to_string(), secret.to_string()));
                let listed: Vec<HostPattern> = strs_at(tls, "/hosts")
                    .into_iter()
                    .filter(|h| !h.is_empty())
                    .filter_map(HostPattern::parse)
                    .collect();
                // ingress-nginx uses an entry without hosts for the
                // Ingress's rule hosts its certificate covers; without the
                // certificate at hand, for all of them, below listed ones.
                let (tier, hosts) = if listed.is_empty() {
                    (1, &rule_hosts)
                } else {
                    (0, &listed)
                };
                for host in hosts {
                    let pick = TlsPick {
                        tier,
                        rank,
                        namespace: namespace.to_string(),
                        secret: secret.to_string(),
                    };
                    match host {
                        HostPattern::Exact(h) => insert_tls(&mut table.tls_exact, h.clone(), pick),
                        HostPattern::Wildcard(s) => {
                            insert_tls(&mut table.tls_wildcard, s.clone(), pick)
                        }
                        HostPattern::Any => {}
                    }
                }
            }
        }
        table.tls_all.sort();
        table.tls_all.dedup();

        let served = &table.served;
        let finish = |rules: &mut HostRules| {
            // Stable: full ties keep the order of the rules in their Ingress.
            rules
                .paths
                .sort_by_key(|p| (Reverse(p.len), p.kind, p.rank));
            rules.default = rules
                .owners
                .iter()
                .copied()
                .find(|&r| served.get(r).is_some_and(|s| s.default_backend.is_some()));
        };
        table.exact.values_mut().for_each(finish);
        table.wildcard.values_mut().for_each(finish);
        finish(&mut table.any_host);
        table.controller_default = input
            .default_service
            .map(|(namespace, name)| resolver.resolve_first_port(namespace, name));
        table.targets = resolver.targets;
        table
    }

    /// Routes a request. `host` is the request's Host/`:authority` (may
    /// carry a port, any case); `path` the request path without query (an
    /// empty path is `/`).
    pub fn route(&self, host: &str, path: &str) -> Outcome {
        let host = request_host(host);
        let path = if path.is_empty() { "/" } else { path };
        let rules = self
            .exact
            .get(&host)
            .or_else(|| wildcard_key(&host).and_then(|k| self.wildcard.get(k)))
            .unwrap_or(&self.any_host);
        if let Some(rule) = rules.paths.iter().find(|r| r.matches(path)) {
            return self.outcome(rule.rank, &rule.label, Some(rule.target));
        }
        match rules.default.or(self.default) {
            Some(rank) => {
                let target = self.served.get(rank).and_then(|s| s.default_backend);
                self.outcome(rank, "default backend", target)
            }
            None => match self.controller_default.and_then(|t| self.targets.get(t)) {
                Some(target) => {
                    Self::target_outcome(Default::default(), CONTROLLER_DEFAULT, target)
                }
                None => Outcome::NotFound,
            },
        }
    }

    fn outcome(&self, rank: usize, rule: &str, target: Option<usize>) -> Outcome {
        // Ranks and targets are indices `build` made into these vectors;
        // were one ever stale, a 404 beats a panic.
        let (Some(ing), Some(target)) = (
            self.served.get(rank),
            target.and_then(|t| self.targets.get(t)),
        ) else {
            return Outcome::NotFound;
        };
        let ingress = (ing.namespace.clone(), ing.name.clone());
        Self::target_outcome(ingress, rule, target)
    }

    fn target_outcome(ingress: (String, String), rule: &str, target: &Target) -> Outcome {
        let rule = rule.to_string();
        match target {
            Target::Ready {
                service,
                port,
                endpoints,
            } => Outcome::Backend(Backend {
                ingress,
                rule,
                service: service.clone(),
                port: port.clone(),
                endpoints: endpoints.clone(),
            }),
            Target::Unavailable { service, reason } => Outcome::Unavailable(Unavailable {
                ingress,
                rule,
                service: service.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// The (namespace, secretName) for a TLS ClientHello's SNI name, per the
    /// served Ingresses' `spec.tls`: an exact host first, then a wildcard;
    /// hosts an entry lists before the rule hosts of an entry listing none;
    /// then the oldest Ingress. `None`: the caller's default certificate.
    pub fn tls_secret(&self, sni: &str) -> Option<(String, String)> {
        let host = request_host(sni);
        self.tls_exact
            .get(&host)
            .or_else(|| wildcard_key(&host).and_then(|k| self.tls_wildcard.get(k)))
            .map(|p| (p.namespace.clone(), p.secret.clone()))
    }

    /// Every TLS (namespace, secretName) the served Ingresses reference,
    /// sorted and distinct (to know which Secrets to load).
    pub fn tls_secrets(&self) -> Vec<(String, String)> {
        self.tls_all.clone()
    }

    /// Every TLS host pattern (`shop.example.com`, `*.example.com`) and the
    /// (namespace, secretName) that serves it, as [`RouteTable::tls_secret`]
    /// picks them: what the certificate store is loaded with.
    pub fn tls_hosts(&self) -> Vec<(String, (String, String))> {
        let exact = self.tls_exact.iter().map(|(h, p)| (h.clone(), p));
        let wildcard = self.tls_wildcard.iter().map(|(s, p)| (format!("*.{s}"), p));
        let mut out: Vec<(String, (String, String))> = exact
            .chain(wildcard)
            .map(|(h, p)| (h, (p.namespace.clone(), p.secret.clone())))
            .collect();
        out.sort();
        out
    }

    /// The Ingresses this controller serves, as (namespace, name), sorted.
    pub fn served(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .served
            .iter()
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
