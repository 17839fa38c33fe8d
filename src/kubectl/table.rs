//! kubectl-like output: tables (default and `-o wide`), `-o json` (a
//! Kubernetes `List` for many objects) and `-o yaml`.

use podnet_proto::model::Kind;
use podnet_proto::model::view::{EndpointSliceView, NodeView, PodView, ServiceView};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    /// `-o name`: `kind/name` per object.
    Name,
    /// `-o jsonpath=TEMPLATE`.
    JsonPath(super::jsonpath::Template),
}

impl Format {
    pub fn parse(s: Option<&str>) -> Result<Format, String> {
        match s {
            None => Ok(Format::Table),
            Some("wide") => Ok(Format::Wide),
            Some("json") => Ok(Format::Json),
            Some("yaml") => Ok(Format::Yaml),
            Some("name") => Ok(Format::Name),
            Some(other) => match other.strip_prefix("jsonpath=") {
                Some(template) => super::jsonpath::Template::parse(template).map(Format::JsonPath),
                None => Err(format!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: json, jsonpath, name, wide, yaml"
                )),
            },
        }
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's human-readable age of a timestamp (apimachinery's
/// `duration.HumanDuration` of the time since).
pub fn age(created: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    human_duration((now - t.with_timezone(&chrono::Utc)).num_seconds())
}

/// apimachinery's `HumanDuration`: two units while they say something,
/// one when the second would be noise; a clock up to 1s ahead is "0s".
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (m, h) = (secs / 60, secs / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let pair = |big: i64, a: &str, small: i64, b: &str| {
        if small == 0 {
            format!("{big}{a}")
        } else {
            format!("{big}{a}{small}{b}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        pair(m, "m", secs % 60, "s")
    } else if m < 3 * 60 {
        format!("{m}m")
    } else if h < 8 {
        pair(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        pair(d, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        pair(y, "y", d % 365, "d")
    } else {
        format!("{y}y")
    }
}

fn pod_row(p: &Value, wide: bool, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let statuses = PodView(p).container_statuses();
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
    let mut row = vec![
        s(p, "/metadata/name").to_string(),
        format!("{ready}/{total}"),
        PodView(p).status().to_string(),
        restarts.to_string(),
        age(s(p, "/metadata/creationTimestamp"), now),
    ];
    if wide {
        let or_none = |x: &str| {
            if x.is_empty() {
                "<none>".to_string()
            } else {
                x.to_string()
            }
        };
        row.extend([
            or_none(s(p, "/status/podIP")),
            or_none(s(p, "/spec/nodeName")),
            "<none>".into(),
            "<none>".into(),
        ]);
    }
    row
}

fn columns(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut c = match kind {
        Kind::Pod => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        Kind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::ReplicaSet => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        Kind::Node => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        Kind::Namespace => vec!["NAME", "STATUS", "AGE"],
        Kind::Service => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        Kind::Endpoints => vec!["NAME", "ENDPOINTS", "AGE"],
        Kind::Ingress => vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        Kind::IngressClass => vec!["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
        Kind::NetworkPolicy => vec!["NAME", "POD-SELECTOR", "AGE"],
        Kind::Secret => vec!["NAME", "TYPE", "DATA", "AGE"],
        Kind::Event => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        Kind::EndpointSlice => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        Kind::Link => vec![
            "NAME",
            "FROM",
            "TO",
            "DELAY",
            "JITTER",
            "LOSS",
            "RATE",
            "DUPLICATE",
            "REORDER",
            "PARTITION",
        ],
    };
    if wide {
        c.extend(match kind {
            Kind::Pod => vec!["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
            Kind::Deployment | Kind::ReplicaSet => vec!["CONTAINERS", "IMAGES", "SELECTOR"],
            Kind::Node => vec![
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "POD-CIDR",
                "ZONE",
                "CONTAINER-RUNTIME",
            ],
            Kind::Service => vec!["SELECTOR"],
            Kind::Namespace
            | Kind::Link
            | Kind::Endpoints
            | Kind::EndpointSlice
            | Kind::Ingress
            | Kind::IngressClass
            | Kind::NetworkPolicy
            | Kind::Secret
            | Kind::Event => vec![],
        });
    }
    c
}

fn containers_and_images(template_spec: &Value) -> (String, String) {
    let cs: Vec<&Value> = template_spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    (
        cs.iter()
            .map(|c| s(c, "/name"))
            .collect::<Vec<_>>()
            .join(","),
        cs.iter()
            .map(|c| s(c, "/image"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn row(kind: Kind, v: &Value, wide: bool, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let name = s(v, "/metadata/name").to_string();
    let created = age(s(v, "/metadata/creationTimestamp"), now);
    let opt = |p: &str| {
        let x = s(v, p);
        if x.is_empty() {
            "-".to_string()
        } else {
            x.to_string()
        }
    };
    match kind {
        Kind::Pod => pod_row(v, wide, now),
        Kind::Deployment => {
            let mut r = vec![
                name,
                format!(
                    "{}/{}",
                    i(v, "/status/readyReplicas"),
                    i(v, "/spec/replicas")
                ),
                i(v, "/status/updatedReplicas").to_string(),
                i(v, "/status/availableReplicas").to_string(),
                created,
            ];
            if wide {
                let (c, im) =
                    containers_and_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
                r.extend([c, im, selector_of(v.pointer("/spec/selector/matchLabels"))]);
            }
            r
        }
        Kind::ReplicaSet => {
            let mut r = vec![
                name,
                i(v, "/spec/replicas").to_string(),
                i(v, "/status/replicas").to_string(),
                i(v, "/status/readyReplicas").to_string(),
                created,
            ];
            if wide {
                let (c, im) =
                    containers_and_images(v.pointer("/spec/template/spec").unwrap_or(&Value::Null));
                r.extend([c, im, selector_of(v.pointer("/spec/selector/matchLabels"))]);
            }
            r
        }
        Kind::Node => {
            let mut status = if NodeView(v).ready() {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if v.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            let mut r = vec![
                name,
                status,
                "<none>".into(),
                created,
                s(v, "/status/nodeInfo/kubeletVersion").to_string(),
            ];
            if wide {
                let zone = v
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(podnet_proto::model::LABEL_ZONE))
                    .and_then(Value::as_str)
                    .unwrap_or("<none>");
                r.extend([
                    // kubectl's: the first InternalIP, of either family.
                    NodeView(v)
                        .internal_addresses()
                        .next()
                        .map(|ip| ip.to_string())
                        .unwrap_or_default(),
                    "<none>".into(),
                    s(v, "/spec/podCIDR").to_string(),
                    zone.to_string(),
                    s(v, "/status/nodeInfo/containerRuntimeVersion").to_string(),
                ]);
            }
            r
        }
        Kind::Namespace => {
            let phase = if v.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                "Active"
            };
            vec![name, phase.into(), created]
        }
        Kind::Service => {
            let mut r = vec![
                name,
                or(s(v, "/spec/type"), "ClusterIP"),
                service_cluster_ip(v),
                service_external_ip(v),
                service_ports(v),
                created,
            ];
            if wide {
                r.push(selector_of(v.pointer("/spec/selector")));
            }
            r
        }
        Kind::Endpoints => vec![name, endpoints_text(v), created],
        Kind::Ingress => vec![
            name,
            or(s(v, "/spec/ingressClassName"), "<none>"),
            ingress_hosts(v),
            load_balancer_addresses(v).unwrap_or_default(),
            ingress_ports(v),
            created,
        ],
        Kind::IngressClass => vec![
            name,
            s(v, "/spec/controller").to_string(),
            match v.pointer("/spec/parameters") {
                Some(p) => format!("{}/{}", s(p, "/kind"), s(p, "/name")),
                None => "<none>".into(),
            },
            created,
        ],
        Kind::NetworkPolicy => vec![
            name,
            format_label_selector(v.pointer("/spec/podSelector")),
            created,
        ],
        Kind::Event => vec![
            age(
                or(s(v, "/lastTimestamp"), s(v, "/metadata/creationTimestamp")).as_str(),
                now,
            ),
            or(s(v, "/type"), "Normal"),
            s(v, "/reason").to_string(),
            format!(
                "{}/{}",
                s(v, "/involvedObject/kind").to_lowercase(),
                s(v, "/involvedObject/name")
            ),
            s(v, "/message").to_string(),
        ],
        Kind::Secret => {
            let keys = |p: &str| {
                v.pointer(p)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            vec![
                name,
                or(s(v, "/type"), "Opaque"),
                (keys("/data") + keys("/stringData")).to_string(),
                created,
            ]
        }
        Kind::EndpointSlice => vec![
            name,
            s(v, "/addressType").to_string(),
            slice_ports(v),
            slice_endpoints(v),
            created,
        ],
        Kind::Link => vec![
            name,
            s(v, "/spec/from").into(),
            s(v, "/spec/to").into(),
            opt("/spec/delay"),
            opt("/spec/jitter"),
            opt("/spec/loss"),
            opt("/spec/rate"),
            opt("/spec/duplicate"),
            opt("/spec/reorder"),
            // What a partition does (Drop unless it says Reject), or none.
            if v.pointer("/spec/partition").and_then(Value::as_bool) == Some(true) {
                or(s(v, "/spec/partitionMode"), "Drop")
            } else {
                "-".into()
            },
        ],
    }
}

fn or(x: &str, default: &str) -> String {
    if x.is_empty() {
        default.to_string()
    } else {
        x.to_string()
    }
}

/// A `metav1.LabelSelector` as apimachinery's `FormatLabelSelector` prints
/// it: its requirements sorted by key, `k=v` for matchLabels, `k in (a,b)`,
/// `k notin (a,b)`, `k` and `!k` for matchExpressions (several values
/// sorted); `<none>` for an empty or absent selector, `<error>` for one
/// with an unknown operator.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|v| !v.is_null()) else {
        return "<none>".into();
    };
    let mut requirements: Vec<(&str, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key, format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(expr, "/key");
        let mut values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match s(expr, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        requirements.push((key, text));
    }
    // Stable, where Go's sort.Sort is not: one key's requirements keep
    // their written order.
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    let text: Vec<String> = requirements.into_iter().map(|(_, t)| t).collect();
    or(&text.join(","), "<none>")
}

/// `k=v,k2=v2` of a label map, or `<none>`.
pub fn selector_of(map: Option<&Value>) -> String {
    let text = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or(&text, "<none>")
}

pub fn service_cluster_ip(v: &Value) -> String {
    if s(v, "/spec/type") == "ExternalName" {
        return "<none>".into();
    }
    or(s(v, "/spec/clusterIP"), "<none>")
}

pub fn service_external_ip(v: &Value) -> String {
    match s(v, "/spec/type") {
        "ExternalName" => s(v, "/spec/externalName").to_string(),
        "LoadBalancer" => load_balancer_addresses(v).unwrap_or_else(|| "<pending>".into()),
        _ => "<none>".into(),
    }
}

/// The addresses in `status.loadBalancer.ingress` (Service or Ingress),
/// comma-separated; `None` when there are none yet.
pub fn load_balancer_addresses(v: &Value) -> Option<String> {
    let ips: Vec<&str> = v
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
        .collect();
    (!ips.is_empty()).then(|| ips.join(","))
}

/// An Ingress's rule hosts as kubectl prints them (`*` for a rule without
/// a host), at most three and a count of the rest.
fn ingress_hosts(v: &Value) -> String {
    let hosts: Vec<String> = v
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| or(s(r, "/host"), "*"))
        .collect();
    first_three(hosts, "*")
}

/// `80/TCP,53:30053/UDP` as kubectl prints a Service's ports. A
/// LoadBalancer port the edge had to open on another host port (the
/// Service's own was taken) shows it as docker does, `41234->80:30080/TCP`:
/// that is the port a client on the host must use.
pub fn service_ports(v: &Value) -> String {
    let svc = ServiceView(v);
    let host_ports = if s(v, "/spec/type") == "LoadBalancer" {
        svc.host_ports()
    } else {
        Vec::new()
    };
    let ports: Vec<String> = svc
        .ports()
        .enumerate()
        .map(|(index, p)| {
            let proto = or(s(p.0, "/protocol"), "TCP");
            let port = i(p.0, "/port");
            let shown = match host_ports.get(index).copied().flatten() {
                Some(real) if Some(real) != p.port() => format!("{real}->{port}"),
                _ => port.to_string(),
            };
            match p.node_port() {
                Some(np) => format!("{shown}:{np}/{proto}"),
                None => format!("{shown}/{proto}"),
            }
        })
        .collect();
    or(&ports.join(","), "<none>")
}

/// The PORTS column of `get ingress`: `80`, or `80, 443` with TLS. The
/// controller publishes its Service's real host ports (http, then https) in
/// the Ingress's status; one the edge opened elsewhere shows as
/// `41234->80`, the port a client on the host must use.
fn ingress_ports(v: &Value) -> String {
    let tls = v
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let real: Vec<i64> = v
        .pointer("/status/loadBalancer/ingress/0/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| i(p, "/port"))
        .collect();
    let ports: &[i64] = if tls { &[80, 443] } else { &[80] };
    ports
        .iter()
        .enumerate()
        .map(|(index, port)| match real.get(index) {
            Some(real) if real != port => format!("{real}->{port}"),
            _ => port.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// kubectl's list of at most three items and a count of the rest.
fn first_three(items: Vec<String>, empty: &str) -> String {
    match items.len() {
        0 => empty.to_string(),
        1..=3 => items.join(","),
        n => format!("{} + {} more...", items[..3].join(","), n - 3),
    }
}

/// Why an Endpoints row shows `<none>`, for each such row of `endpoints`,
/// from its Service and the pods (kubectl says nothing; a testbed should
/// say whether the pods are missing, not Ready yet, or the controller is a
/// moment behind).
pub fn endpoints_hints(endpoints: &[Value], services: &[Value], pods: &[Value]) -> Vec<String> {
    let key = |v: &Value| {
        (
            s(v, "/metadata/namespace").to_string(),
            s(v, "/metadata/name").to_string(),
        )
    };
    let mut hints = Vec::new();
    for ep in endpoints.iter().filter(|e| endpoints_text(e) == "<none>") {
        let (ns, name) = key(ep);
        let Some(svc) = services
            .iter()
            .find(|svc| key(svc) == (ns.clone(), name.clone()))
        else {
            continue;
        };
        let Some(selector) = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        else {
            hints.push(format!(
                "Service {name} has no selector: its endpoints are the EndpointSlices written for it"
            ));
            continue;
        };
        let shown = selector_of(svc.pointer("/spec/selector"));
        let matching: Vec<&Value> = pods
            .iter()
            .filter(|p| s(p, "/metadata/namespace") == ns)
            .filter(|p| {
                selector
                    .iter()
                    .all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            })
            .collect();
        let ready = matching
            .iter()
            .filter(|p| podnet_proto::model::condition_is_true(p, "Ready"))
            .count();
        hints.push(if matching.is_empty() {
            format!("no pod matches the selector {shown} of Service {name}")
        } else if ready == 0 {
            format!(
                "{} pods match the selector {shown} of Service {name}, none is Ready yet (podnet get pods -l {shown})",
                matching.len()
            )
        } else {
            format!(
                "{ready} Ready pods match Service {name}: the endpoints follow in a moment"
            )
        });
    }
    hints
}

/// The ENDPOINTS column of `kubectl get endpoints`: ready addresses with ports.
pub fn endpoints_text(v: &Value) -> String {
    let mut items = Vec::new();
    for subset in v
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| i(p, "/port"))
            .collect();
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if ports.is_empty() {
                items.push(s(a, "/ip").to_string());
            }
            for p in &ports {
                items.push(format!("{}:{p}", s(a, "/ip")));
            }
        }
    }
    first_three(items, "<none>")
}

fn slice_ports(v: &Value) -> String {
    let ports: Vec<String> = v
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| i(p, "/port").to_string())
        .collect();
    or(&ports.join(","), "<unset>")
}

/// Every address of every endpoint of an EndpointSlice.
fn slice_endpoints(v: &Value) -> String {
    first_three(
        EndpointSliceView(v).addresses().map(String::from).collect(),
        "<unset>",
    )
}

/// Aligns rows the way kubectl's tabwriter does (3 spaces between columns).
pub fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn to_yaml(v: &Value) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(v)?)
}

pub fn render_one(
    kind: Kind,
    v: &Value,
    format: Format,
    all_namespaces: bool,
) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(v)? + "\n"),
        Format::Yaml => to_yaml(v),
        Format::JsonPath(template) => Ok(template.render(v)),
        Format::Table | Format::Wide | Format::Name => {
            render_list(kind, std::slice::from_ref(v), format, all_namespaces, 0)
        }
    }
}

/// `pod/web-1`, `deployment.apps/web`: the object as `-o name` prints it.
pub fn object_name(kind: Kind, v: &Value) -> String {
    let resource = kind.as_str().to_lowercase();
    match s(v, "/apiVersion").split_once('/') {
        Some((group, _)) => format!("{resource}.{group}/{}", s(v, "/metadata/name")),
        None => format!("{resource}/{}", s(v, "/metadata/name")),
    }
}

pub fn render_list(
    kind: Kind,
    items: &[Value],
    format: Format,
    all_namespaces: bool,
    revision: u64,
) -> anyhow::Result<String> {
    let list = || json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": revision.to_string()}});
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(&list())? + "\n"),
        Format::Yaml => to_yaml(&list()),
        Format::JsonPath(template) => Ok(template.render(&list())),
        Format::Name => Ok(items.iter().map(|v| object_name(kind, v) + "\n").collect()),
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let now = chrono::Utc::now();
            let with_ns = all_namespaces && kind.namespaced();
            let mut header: Vec<String> =
                columns(kind, wide).into_iter().map(String::from).collect();
            if with_ns {
                header.insert(0, "NAMESPACE".into());
            }
            let mut rows = vec![header];
            for v in items {
                let mut r = row(kind, v, wide, now);
                if with_ns {
                    r.insert(0, s(v, "/metadata/namespace").to_string());
                }
                rows.push(r);
            }
            Ok(align(&rows))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_kubectl() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        for (created, expected) in [
            ("2026-01-01T09:59:55Z", "5s"),
            ("2026-01-01T09:55:30Z", "4m30s"),
            ("2026-01-01T09:00:00Z", "60m"),
            ("2026-01-01T05:30:00Z", "4h30m"),
            ("2025-12-31T10:00:00Z", "24h"),
            ("2025-12-20T10:00:00Z", "12d"),
            ("2026-01-01T09:58:00Z", "2m"),
            ("2026-01-01T09:57:57Z", "2m3s"),
            ("2026-01-01T06:00:00Z", "4h"),
            ("2025-12-29T06:00:00Z", "3d4h"),
            ("2023-01-01T10:00:00Z", "3y1d"),
            ("2010-01-01T10:00:00Z", "16y"),
            ("2026-01-01T10:00:01Z", "0s"),
            ("2026-01-01T10:00:05Z", "<invalid>"),
            ("garbage", "<unknown>"),
        ] {
            assert_eq!(age(created, now), expected, "{created}");
        }
    }

    #[test]
    fn pod_table_shows_status_and_wide_columns() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-2", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "podIP": "10.244.1.2", "containerStatuses": [
                {"ready": true, "restartCount": 1, "state": {"running": {}}},
                {"ready": false, "restartCount": 2, "state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        let out = render_list(Kind::Pod, &[pod], Format::Wide, true, 1).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME    READY   STATUS"),
            "{out}"
        );
        assert!(
            lines[1].contains("1/2")
                && lines[1].contains("ErrImagePull")
                && lines[1].contains("10.244.1.2")
                && lines[1].contains("node-2"),
            "{out}"
        );
    }

    #[test]
    fn load_balancer_ports_show_the_host_port_a_client_must_use() {
        let svc = |ty: &str, real: &[u16]| {
            let ports: Vec<Value> = real.iter().map(|p| json!({"port": p})).collect();
            json!({"spec": {"type": ty, "ports": [
                {"port": 80, "nodePort": 30080},
                {"port": 443, "nodePort": 30443},
                {"port": 9000, "protocol": "SCTP", "nodePort": 30900}]},
             "status": {"loadBalancer": {"ingress": [{"ip": "127.0.2.1", "ports": ports}]}}})
        };
        let check = |v: &Value, expected: &str| assert_eq!(service_ports(v), expected);
        check(
            &svc("LoadBalancer", &[80, 443]),
            "80:30080/TCP,443:30443/TCP,9000:30900/SCTP",
        );
        check(
            &svc("LoadBalancer", &[80, 41443]),
            "80:30080/TCP,41443->443:30443/TCP,9000:30900/SCTP",
        );
        // Not yet open, and not a LoadBalancer: kubectl's form.
        check(
            &svc("LoadBalancer", &[]),
            "80:30080/TCP,443:30443/TCP,9000:30900/SCTP",
        );
        check(
            &svc("NodePort", &[1, 2]),
            "80:30080/TCP,443:30443/TCP,9000:30900/SCTP",
        );

        let ing = |tls: bool, real: &[u16]| {
            let ports: Vec<Value> = real.iter().map(|p| json!({"port": p})).collect();
            let mut v = json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.2.1", "ports": ports}]}}});
            if tls {
                v["spec"] = json!({"tls": [{"hosts": ["a"]}]});
            }
            v
        };
        assert_eq!(ingress_ports(&ing(false, &[80, 443])), "80");
        assert_eq!(ingress_ports(&ing(true, &[80, 443])), "80, 443");
        assert_eq!(
            ingress_ports(&ing(true, &[40080, 40443])),
            "40080->80, 40443->443"
        );
        assert_eq!(ingress_ports(&ing(true, &[])), "80, 443");
    }

    #[test]
    fn label_selectors_print_as_apimachinery_formats_them() {
        let check = |selector: Value, expected: &str| {
            assert_eq!(
                format_label_selector(Some(&selector)),
                expected,
                "{selector}"
            );
        };
        check(json!({}), "<none>");
        check(json!(null), "<none>");
        check(json!({"matchLabels": {}, "matchExpressions": []}), "<none>");
        check(json!({"matchLabels": {"app": "web"}}), "app=web");
        check(
            json!({"matchLabels": {"tier": "front", "app": "web"}}),
            "app=web,tier=front",
        );
        check(
            json!({"matchLabels": {"app": "web"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "team", "operator": "Exists"}]}),
            "app=web,!canary,env notin (dev),team,tier in (a,b)",
        );
        check(
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            "<error>",
        );
        assert_eq!(format_label_selector(None), "<none>");
    }

    #[test]
    fn network_policy_table_shows_the_pod_selector() {
        let policy = |ns: &str, name: &str, selector: Value| {
            json!({"metadata": {"name": name, "namespace": ns, "creationTimestamp": "2020-01-01T00:00:00Z"},
                "spec": {"podSelector": selector}})
        };
        let items = [
            policy("default", "deny-all", json!({})),
            policy(
                "shop",
                "allow-frontend-only",
                json!({"matchLabels": {"app": "api"}}),
            ),
        ];
        let out = render_list(Kind::NetworkPolicy, &items, Format::Table, false, 1).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "NAME                  POD-SELECTOR   AGE");
        assert!(
            lines[1].starts_with("deny-all              <none>         "),
            "{out}"
        );
        assert!(
            lines[2].starts_with("allow-frontend-only   app=api        "),
            "{out}"
        );
        let out = render_list(Kind::NetworkPolicy, &items, Format::Wide, true, 1).unwrap();
        assert!(
            out.starts_with("NAMESPACE   NAME                  POD-SELECTOR   AGE\n"),
            "{out}"
        );
    }

    #[test]
    fn empty_endpoints_say_why() {
        let ep = |name: &str, ip: Option<&str>| {
            let mut v = json!({"metadata": {"name": name, "namespace": "default"}});
            if let Some(ip) = ip {
                v["subsets"] = json!([{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]);
            }
            v
        };
        let svc = |name: &str, selector: Value| json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"selector": selector}});
        let pod = |app: &str, ready: bool| {
            json!({"metadata": {"namespace": "default", "labels": {"app": app}},
                   "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
        };
        let hints = endpoints_hints(
            &[
                ep("full", Some("10.244.0.2")),
                ep("missing", None),
                ep("starting", None),
                ep("behind", None),
                ep("manual", None),
            ],
            &[
                svc("full", json!({"app": "a"})),
                svc("missing", json!({"app": "nothing"})),
                svc("starting", json!({"app": "s"})),
                svc("behind", json!({"app": "b"})),
                svc("manual", json!(null)),
            ],
            &[
                pod("a", true),
                pod("s", false),
                pod("s", false),
                pod("b", true),
            ],
        );
        assert_eq!(
            hints,
            [
                "no pod matches the selector app=nothing of Service missing",
                "2 pods match the selector app=s of Service starting, none is Ready yet (podnet get pods -l app=s)",
                "1 Ready pods match Service behind: the endpoints follow in a moment",
                "Service manual has no selector: its endpoints are the EndpointSlices written for it",
            ]
        );
    }
}
