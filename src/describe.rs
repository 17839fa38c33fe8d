//! `podnet describe`: the human view kubectl gives of one object, for the
//! troubleshooting steps users already know. Services and pods get the
//! kubectl layout; other kinds print their YAML.

use std::fmt::Write;

use podnet_proto::model::{Kind, str_at, strs_at};
use serde_json::Value;

use crate::table;

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
    line(&mut out, "Events", "<none>");
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
    line(&mut out, "Status", table::pod_status(p));
    line(&mut out, "IP", str_at(p, "/status/podIP"));
    let statuses: Vec<&Value> = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
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
    line(&mut out, "Events", "<none>");
    out
}

/// Any other kind: its YAML.
pub fn other(kind: Kind, v: &Value) -> anyhow::Result<String> {
    table::render_one(kind, v, table::Format::Yaml, false)
}
