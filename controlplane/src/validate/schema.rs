//! Warnings for fields that are accepted but do nothing in podnet.
//!
//! Two kinds, each naming the field's path:
//! - `unknown field "spec.containers[0].imagex"`: not part of the
//!   Kubernetes schema at all (a typo, or a field of another version),
//!   worded like the API server's strict field validation. Found by diffing
//!   the input against the typed value serialized back: whatever the typed
//!   model dropped, it does not know.
//! - `spec.volumes: not emulated by podnet, ignored`: a real Kubernetes
//!   field podnet stores but does not act on. Each kind has an allowlist of
//!   the field paths podnet emulates; anything else that is set is warned
//!   about once, at its topmost path.
//!
//! Null, `false`, `{}` and `[]` are never warned about as not emulated: they
//! ask for nothing (in Kubernetes `false` is the default of nearly every
//! boolean, and the rest disable features podnet does not have).

use podnet_proto::model::Kind;
use serde_json::Value;

/// Object metadata podnet keeps and acts on, for objects and templates.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
];

const POD_SPEC: &[&str] = &[
    "nodeName",
    "nodeSelector",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "dnsPolicy",
    "dnsConfig",
    // Its DNS part (the kubelet's policy rules); the pod-side network is
    // warned about by the pod rules.
    "hostNetwork",
    "schedulerName",
    "hostname",
    "subdomain",
    // The identity a workload that calls the API (the ingress controller)
    // gets its credentials for.
    "serviceAccountName",
    "serviceAccount",
];

const CONTAINER: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env[].name",
    "env[].value",
    "ports[].name",
    "ports[].containerPort",
    "ports[].protocol",
    "resources.requests[cpu]",
    "resources.requests[memory]",
    "resources.limits[cpu]",
    "resources.limits[memory]",
    "terminationMessagePath",
    "terminationMessagePolicy",
    // The kubelet runs preStop before SIGTERM (`exec` in the toolbox,
    // `httpGet` from the node, `sleep`); postStart is not emulated.
    "lifecycle.preStop.exec.command",
    "lifecycle.preStop.httpGet.path",
    "lifecycle.preStop.httpGet.port",
    "lifecycle.preStop.httpGet.scheme",
    "lifecycle.preStop.httpGet.httpHeaders",
    "lifecycle.preStop.sleep.seconds",
];

const PROBES: &[&str] = &["readinessProbe", "livenessProbe", "startupProbe"];

/// `httpGet.host` is left out on purpose: podnet probes the pod's own
/// address.
const PROBE: &[&str] = &[
    "httpGet.path",
    "httpGet.port",
    "httpGet.scheme",
    "httpGet.httpHeaders",
    "tcpSocket.port",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];

const DEPLOYMENT_SPEC: &[&str] = &[
    "replicas",
    "selector",
    "strategy",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "minReadySeconds",
    "paused",
];

const REPLICA_SET_SPEC: &[&str] = &["replicas", "selector", "minReadySeconds"];

/// `unschedulable`: the scheduler places no new pod on a cordoned node.
const NODE_SPEC: &[&str] = &["podCIDR", "podCIDRs", "unschedulable"];

/// What the service proxy, the DNS and the edge act on. Left out:
/// `loadBalancerSourceRanges` (the edge does not filter clients) and
/// `trafficDistribution`.
const SERVICE_SPEC: &[&str] = &[
    "type",
    "ports",
    "selector",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalName",
    "externalIPs",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "healthCheckNodePort",
    "publishNotReadyAddresses",
    "allocateLoadBalancerNodePorts",
    // The edge gives the requested address, and leaves a Service with a
    // class to that class's implementation.
    "loadBalancerIP",
    "loadBalancerClass",
];

/// Topology hints and the deprecated topology map are not used for routing.
const ENDPOINT_SLICE: &[&str] = &[
    "addressType",
    "ports",
    "endpoints[].addresses",
    "endpoints[].conditions",
    "endpoints[].hostname",
    "endpoints[].nodeName",
    "endpoints[].zone",
    "endpoints[].targetRef",
];

/// What the ingress proxy routes on. Left out: resource backends (podnet
/// routes to Services only); `rules[].http.paths[].backend` is listed per
/// field so that a resource backend is warned about where it is.
const INGRESS_SPEC: &[&str] = &[
    "ingressClassName",
    "defaultBackend.service",
    "rules[].host",
    "rules[].http.paths[].path",
    "rules[].http.paths[].pathType",
    "rules[].http.paths[].backend.service",
    "tls",
];

/// Everything of a NetworkPolicy is enforced; listed per field so that a
/// field of a later release is warned about where it is.
const NETWORK_POLICY_SPEC: &[&str] = &[
    "podSelector",
    "policyTypes",
    "ingress[].from[].podSelector",
    "ingress[].from[].namespaceSelector",
    "ingress[].from[].ipBlock.cidr",
    "ingress[].from[].ipBlock.except",
    "ingress[].ports[].protocol",
    "ingress[].ports[].port",
    "ingress[].ports[].endPort",
    "egress[].to[].podSelector",
    "egress[].to[].namespaceSelector",
    "egress[].to[].ipBlock.cidr",
    "egress[].to[].ipBlock.except",
    "egress[].ports[].protocol",
    "egress[].ports[].port",
    "egress[].ports[].endPort",
];

/// `parameters` point at a controller's own configuration object; podnet's
/// ingress controller has none.
const INGRESS_CLASS_SPEC: &[&str] = &["controller"];

/// `stringData` is merged into `data` before the Secret is stored.
const EVENT: &[&str] = &[
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
];
const SECRET: &[&str] = &["type", "data", "stringData", "immutable"];

/// One step of a pattern: `env[]` is the field `env` then any list item,
/// `requests[cpu]` the field `requests` then its map entry `cpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternStep {
    Field(String),
    Item,
    Key(String),
}

/// One step of a concrete path in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

impl PatternStep {
    fn matches(&self, step: &Step<'_>) -> bool {
        match (self, step) {
            (PatternStep::Field(a), Step::Field(b)) | (PatternStep::Key(a), Step::Key(b)) => a == b,
            (PatternStep::Item, Step::Index(_)) => true,
            _ => false,
        }
    }
}

fn parse_pattern(pattern: &str) -> Vec<PatternStep> {
    let mut steps = Vec::new();
    for segment in pattern.split('.') {
        let (name, rest) = segment.split_once('[').unwrap_or((segment, ""));
        steps.push(PatternStep::Field(name.to_string()));
        match rest.strip_suffix(']') {
            Some("") => steps.push(PatternStep::Item),
            Some(key) => steps.push(PatternStep::Key(key.to_string())),
            None => {}
        }
    }
    steps
}

fn prefixed(prefix: &str, fields: &[&str]) -> impl Iterator<Item = String> {
    fields.iter().map(move |f| format!("{prefix}.{f}"))
}

fn pod_spec_patterns(prefix: &str) -> Vec<String> {
    let containers = format!("{prefix}.containers[]");
    let mut out: Vec<String> = prefixed(prefix, POD_SPEC)
        .chain(prefixed(&containers, CONTAINER))
        .collect();
    for probe in PROBES {
        out.extend(prefixed(&format!("{containers}.{probe}"), PROBE));
    }
    out
}

fn template_patterns(prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = prefixed(&format!("{prefix}.metadata"), OBJECT_META).collect();
    out.extend(pod_spec_patterns(&format!("{prefix}.spec")));
    out
}

/// The fields podnet emulates for `kind`; a pattern covers its field and
/// everything under it.
struct Allowlist(Vec<Vec<PatternStep>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// The field and everything under it is emulated.
    Full,
    /// Some fields under it are emulated.
    Partial,
    None,
}

impl Allowlist {
    fn for_kind(kind: Kind) -> Allowlist {
        let mut patterns: Vec<String> = vec!["apiVersion".into(), "kind".into(), "status".into()];
        patterns.extend(prefixed("metadata", OBJECT_META));
        match kind {
            Kind::Pod => patterns.extend(pod_spec_patterns("spec")),
            Kind::Deployment => {
                patterns.extend(prefixed("spec", DEPLOYMENT_SPEC));
                patterns.extend(template_patterns("spec.template"));
            }
            Kind::ReplicaSet => {
                patterns.extend(prefixed("spec", REPLICA_SET_SPEC));
                patterns.extend(template_patterns("spec.template"));
            }
            Kind::Node => patterns.extend(prefixed("spec", NODE_SPEC)),
            Kind::Service => patterns.extend(prefixed("spec", SERVICE_SPEC)),
            Kind::EndpointSlice => patterns.extend(ENDPOINT_SLICE.iter().map(|p| p.to_string())),
            Kind::Endpoints => patterns.push("subsets".into()),
            // podnet's own schema: everything in it is emulated.
            Kind::Link => patterns.push("spec".into()),
            Kind::Namespace => {}
            Kind::Ingress => patterns.extend(prefixed("spec", INGRESS_SPEC)),
            Kind::IngressClass => patterns.extend(prefixed("spec", INGRESS_CLASS_SPEC)),
            Kind::NetworkPolicy => patterns.extend(prefixed("spec", NETWORK_POLICY_SPEC)),
            Kind::Secret => patterns.extend(SECRET.iter().map(|p| p.to_string())),
            // What a controller reports: every field is kept as written.
            Kind::Event => patterns.extend(EVENT.iter().map(|p| p.to_string())),
        }
        Allowlist(patterns.iter().map(|p| parse_pattern(p)).collect())
    }

    /// The patterns that agree with `path` as far as both go.
    fn along<'a>(&'a self, path: &'a [Step<'_>]) -> impl Iterator<Item = &'a Vec<PatternStep>> {
        self.0
            .iter()
            .filter(move |p| p.iter().zip(path).all(|(ps, s)| ps.matches(s)))
    }

    fn coverage(&self, path: &[Step<'_>]) -> Coverage {
        let mut coverage = Coverage::None;
        for pattern in self.along(path) {
            if pattern.len() <= path.len() {
                return Coverage::Full;
            }
            coverage = Coverage::Partial;
        }
        coverage
    }

    /// True when the object at `path` is a map (its keys are data, printed
    /// as `[key]`) rather than a struct.
    fn is_map(&self, path: &[Step<'_>]) -> bool {
        self.along(path)
            .any(|p| matches!(p.get(path.len()), Some(PatternStep::Key(_))))
    }
}

fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) => out.push_str(&format!("[{k}]")),
        }
    }
    out
}

fn asks_for_nothing(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Every warning for `input`, given `decoded`: the same object decoded into
/// its typed model and serialized back, before defaults.
pub(super) fn warnings(kind: Kind, input: &Value, decoded: &Value) -> Vec<String> {
    let mut walk = Walk {
        allow: Allowlist::for_kind(kind),
        out: Vec::new(),
    };
    walk.object(input, decoded, &mut Vec::new(), true);
    walk.out
}

struct Walk {
    allow: Allowlist,
    out: Vec<String>,
}

impl Walk {
    /// `look` is false once a field is fully emulated or already warned
    /// about: below it only unknown fields are reported.
    fn object<'a>(
        &mut self,
        input: &'a Value,
        decoded: &Value,
        path: &mut Vec<Step<'a>>,
        look: bool,
    ) {
        match (input, decoded) {
            (Value::Object(fields), Value::Object(known)) => {
                let map = self.allow.is_map(path);
                for (name, value) in fields {
                    if value.is_null() {
                        // Known or not, null is "unset" and dropped.
                        continue;
                    }
                    path.push(if map {
                        Step::Key(name)
                    } else {
                        Step::Field(name)
                    });
                    match known.get(name) {
                        None => self.out.push(format!("unknown field {:?}", render(path))),
                        Some(known) => {
                            let look = look
                                && match self.allow.coverage(path) {
                                    Coverage::Full => false,
                                    Coverage::Partial => true,
                                    Coverage::None => {
                                        if !asks_for_nothing(value) {
                                            self.out.push(format!(
                                                "{}: not emulated by podnet, ignored",
                                                render(path)
                                            ));
                                        }
                                        false
                                    }
                                };
                            self.object(value, known, path, look);
                        }
                    }
                    path.pop();
                }
            }
            (Value::Array(items), Value::Array(known)) => {
                for (i, (item, known)) in items.iter().zip(known).enumerate() {
                    path.push(Step::Index(i));
                    self.object(item, known, path, look);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}
