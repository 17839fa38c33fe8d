//! `podnet describe`: the human view kubectl gives of one object, for the
//! troubleshooting steps users already know. Services, pods and Ingresses get the
//! kubectl layout; other kinds print their YAML.

use std::fmt::Write;

use podnet_proto::model::view::PodView;
use podnet_proto::model::{Kind, str_at, strs_at};
use serde_json::Value;

use super::table;

fn map_text(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join("\n                   ")
    }
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<19}{value}", format!("{key}:"));
}

/// A Service with the Endpoints object of the same name (if any).
pub fn service(svc: &Value, endpoints: Option<&Value>) -> String {
    let mut out = String::new();
    line(&mut out, "Name", str_at(svc, "/metadata/name"));
    line(&mut out, "Namespace", str_at(svc, "/metadata/namespace"));
    line(
        &mut out,
        "Labels",
        map_text(svc.pointer("/metadata/labels")),
    );
    line(
        &mut out,
        "Annotations",
        map_text(svc.pointer("/metadata/annotations")),
    );
    line(
        &mut out,
        "Selector",
        table::selector_of(svc.pointer("/spec/selector")),
    );
    let ty = str_at(svc, "/spec/type");
    line(
        &mut out,
        "Type",
        if ty.is_empty() { "ClusterIP" } else { ty },
    );
    if ty == "ExternalName" {
        line(&mut out, "External Name", str_at(svc, "/spec/externalName"));
    } else {
        let families = strs_at(svc, "/spec/ipFamilies");
        line(
            &mut out,
            "IP Family Policy",
            str_at(svc, "/spec/ipFamilyPolicy"),
        );
        line(&mut out, "IP Families", families.join(","));
        line(&mut out, "IP", table::service_cluster_ip(svc));
        let ips = strs_at(svc, "/spec/clusterIPs");
        line(
            &mut out,
            "IPs",
            if ips.is_empty() {
                table::service_cluster_ip(svc)
            } else {
                ips.join(",")
            },
        );
    }
    if ty == "LoadBalancer" {
        line(
            &mut out,
            "LoadBalancer Ingress",
            table::service_external_ip(svc),
        );
    }
    let endpoints_text = endpoints
        .map(table::endpoints_text)
        .unwrap_or_else(|| "<none>".into());
    for p in svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(p, "/name");
        let name = if name.is_empty() { "<unset>" } else { name };
        let proto = str_at(p, "/protocol");
        let proto = if proto.is_empty() { "TCP" } else { proto };
        let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
        line(&mut out, "Port", format!("{name}  {port}/{proto}"));
        let target = match p.get("targetPort") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => port.to_string(),
        };
        line(&mut out, "TargetPort", format!("{target}/{proto}"));
        if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
            line(&mut out, "NodePort", format!("{name}  {np}/{proto}"));
        }
        if ty != "ExternalName" {
            line(&mut out, "Endpoints", &endpoints_text);
        }
    }
    let affinity = str_at(svc, "/spec/sessionAffinity");
    line(
        &mut out,
        "Session Affinity",
        if affinity.is_empty() {
            "None"
        } else {
            affinity
        },
    );
    if matches!(ty, "NodePort" | "LoadBalancer") {
        line(
            &mut out,
            "External Traffic Policy",
            str_at(svc, "/spec/externalTrafficPolicy"),
        );
    }
    if ty != "ExternalName" {
        line(
            &mut out,
            "Internal Traffic Policy",
            str_at(svc, "/spec/internalTrafficPolicy"),
        );
    }
    out
}

/// A Pod: where it runs, its containers and conditions.
pub fn pod(p: &Value) -> String {
    let mut out = String::new();
    line(&mut out, "Name", str_at(p, "/metadata/name"));
    line(&mut out, "Namespace", str_at(p, "/metadata/namespace"));
    let node = str_at(p, "/spec/nodeName");
    let host_ip = str_at(p, "/status/hostIP");
    line(
        &mut out,
        "Node",
        if node.is_empty() {
            "<none>".to_string()
        } else {
            format!("{node}/{host_ip}")
        },
    );
    line(&mut out, "Start Time", str_at(p, "/status/startTime"));
    line(&mut out, "Labels", map_text(p.pointer("/metadata/labels")));
    line(&mut out, "Status", PodView(p).status());
    line(&mut out, "IP", str_at(p, "/status/podIP"));
    let statuses = PodView(p).container_statuses();
    let _ = writeln!(out, "Containers:");
    for c in p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = str_at(c, "/name");
        let st = statuses.iter().find(|s| str_at(s, "/name") == name);
        let _ = writeln!(out, "  {name}:");
        let _ = writeln!(out, "    Image:          {}", str_at(c, "/image"));
        for port in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let proto = str_at(port, "/protocol");
            let _ = writeln!(
                out,
                "    Port:           {}/{}",
                port.get("containerPort")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                if proto.is_empty() { "TCP" } else { proto }
            );
        }
        if let Some(st) = st {
            let state = st
                .get("state")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default();
            let reason = str_at(st, &format!("/state/{state}/reason"));
            let mut state =
                state[..1.min(state.len())].to_uppercase() + state.get(1..).unwrap_or("");
            if !reason.is_empty() {
                state = format!("{state} ({reason})");
            }
            let _ = writeln!(out, "    State:          {state}");
            let message = str_at(st, "/state/waiting/message");
            if !message.is_empty() {
                let _ = writeln!(out, "      Message:      {message}");
            }
            let _ = writeln!(
                out,
                "    Ready:          {}",
                st.get("ready").and_then(Value::as_bool).unwrap_or(false)
            );
            let _ = writeln!(
                out,
                "    Restart Count:  {}",
                st.get("restartCount").and_then(Value::as_u64).unwrap_or(0)
            );
        }
    }
    let _ = writeln!(out, "Conditions:\n  Type              Status");
    for c in p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "  {:<18}{}", str_at(c, "/type"), str_at(c, "/status"));
    }
    out
}

/// Any other kind: its YAML.
pub fn other(kind: Kind, v: &Value) -> anyhow::Result<String> {
    table::render_one(kind, v, table::Format::Yaml, false)
}

/// An Ingress as kubectl describes it, with each backend's endpoints (or
/// why it has none) from the Services and Endpoints of its namespace.
pub fn ingress(ing: &Value, services: &[Value], endpoints: &[Value]) -> String {
    let mut out = String::new();
    let ns = str_at(ing, "/metadata/namespace");
    line(&mut out, "Name", str_at(ing, "/metadata/name"));
    line(
        &mut out,
        "Labels",
        map_text(ing.pointer("/metadata/labels")),
    );
    line(&mut out, "Namespace", ns);
    line(
        &mut out,
        "Address",
        table::load_balancer_addresses(ing).unwrap_or_default(),
    );
    let class = str_at(ing, "/spec/ingressClassName");
    line(
        &mut out,
        "Ingress Class",
        if class.is_empty() { "<none>" } else { class },
    );
    let backend_text = |b: &Value| ingress_backend(ns, b, services, endpoints);
    line(
        &mut out,
        "Default backend",
        ing.pointer("/spec/defaultBackend")
            .map_or("<default>".to_string(), backend_text),
    );
    let tls: Vec<&Value> = ing
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !tls.is_empty() {
        out.push_str("TLS:\n");
        for t in tls {
            let secret = str_at(t, "/secretName");
            let _ = writeln!(
                out,
                "  {} terminates {}",
                if secret.is_empty() { "SNI" } else { secret },
                strs_at(t, "/hosts").join(",")
            );
        }
    }
    out.push_str("Rules:\n  Host        Path  Backends\n  ----        ----  --------\n");
    for rule in ing
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let host = str_at(rule, "/host");
        let _ = writeln!(out, "  {}", if host.is_empty() { "*" } else { host });
        for path in rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let p = str_at(path, "/path");
            let _ = writeln!(
                out,
                "              {} ({})  {}",
                if p.is_empty() { "/" } else { p },
                str_at(path, "/pathType"),
                backend_text(path.get("backend").unwrap_or(&Value::Null))
            );
        }
    }
    line(
        &mut out,
        "Annotations",
        map_text(ing.pointer("/metadata/annotations")),
    );
    out
}

/// `web:80 (10.244.1.2:8080,10.244.2.3:8080)`, or why there is nowhere to go.
fn ingress_backend(ns: &str, backend: &Value, services: &[Value], endpoints: &[Value]) -> String {
    let Some(svc_ref) = backend.get("service") else {
        let kind = str_at(backend, "/resource/kind");
        let name = str_at(backend, "/resource/name");
        return format!("{kind}/{name} (<error: resource backends are not supported by podnet>)");
    };
    let name = str_at(svc_ref, "/name");
    let number = svc_ref.pointer("/port/number").and_then(Value::as_u64);
    let port_name = str_at(svc_ref, "/port/name");
    let port_text = number.map_or(port_name.to_string(), |n| n.to_string());
    let head = format!("{name}:{port_text}");
    let by_name = |list: &[Value]| {
        list.iter()
            .find(|v| str_at(v, "/metadata/name") == name)
            .cloned()
    };
    let Some(svc) = by_name(services) else {
        return format!("{head} (<error: service \"{ns}/{name}\" not found>)");
    };
    let Some(port) = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| match number {
            Some(n) => p.get("port").and_then(Value::as_u64) == Some(n),
            None => str_at(p, "/name") == port_name,
        })
    else {
        return format!("{head} (<error: service \"{ns}/{name}\" has no port {port_text}>)");
    };
    let wanted = str_at(port, "/name");
    let addresses: Vec<String> = by_name(endpoints)
        .and_then(|e| e.get("subsets").cloned())
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|subset| {
            let port = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| str_at(p, "/name") == wanted)
                .and_then(|p| p.get("port").and_then(Value::as_u64));
            let ips = subset
                .get("addresses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            ips.iter()
                .filter_map(|a| port.map(|p| format!("{}:{p}", str_at(a, "/ip"))))
                .collect::<Vec<_>>()
        })
        .collect();
    if addresses.is_empty() {
        format!("{head} (<error: service \"{ns}/{name}\" has no ready endpoints>)")
    } else {
        format!("{head} ({})", addresses.join(","))
    }
}

/// kubectl's Events section: the events about one object, oldest first.
pub fn events(events: &[Value]) -> String {
    let mut out = String::new();
    if events.is_empty() {
        line(&mut out, "Events", "<none>");
        return out;
    }
    let now = chrono::Utc::now();
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_key(|e| str_at(e, "/lastTimestamp").to_string());
    out.push_str("Events:\n");
    let _ = writeln!(
        out,
        "  {:<8} {:<20} {:<12} {:<22} Message",
        "Type", "Reason", "Age", "From"
    );
    let _ = writeln!(
        out,
        "  {:<8} {:<20} {:<12} {:<22} -------",
        "----", "------", "---", "----"
    );
    for e in sorted {
        let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
        let mut age = table::age(str_at(e, "/lastTimestamp"), now);
        if count > 1 {
            age = format!("{age} (x{count})");
        }
        let _ = writeln!(
            out,
            "  {:<8} {:<20} {:<12} {:<22} {}",
            str_at(e, "/type"),
            str_at(e, "/reason"),
            age,
            str_at(e, "/source/component"),
            str_at(e, "/message")
        );
    }
    out
}
