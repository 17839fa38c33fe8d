//! `podnet describe`: the human view kubectl gives of one object, for the
//! troubleshooting steps users already know. Services, pods, Deployments,
//! ReplicaSets, Ingresses and NetworkPolicies get kubectl's layout (its
//! describers in `k8s.io/kubectl/pkg/describe`, written through the same
//! tab-aligned `PrefixWriter`); other kinds print their YAML. Only the fields podnet
//! emulates are shown: no volumes, tolerations or resource limits beyond
//! what the object carries.

use podnet_proto::model::view::PodView;
use podnet_proto::model::{Kind, str_at, strs_at};
use serde_json::Value;

use super::table;
use super::tabwriter::PrefixWriter;

/// `Labels:` and the like: `key=value` lines, sorted, the first beside the
/// title and the rest under it (kubectl's printLabelsMultiline).
fn labels(w: &mut PrefixWriter, title: &str, map: Option<&Value>) {
    w.write(0, &format!("{title}:\t"));
    let mut items: Vec<(String, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    items.sort();
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        w.write(0, &format!("{k}={v}\n"));
    }
}

/// kubectl's printAnnotationsMultiline: `key: value`, sorted, without
/// kubectl's own last-applied configuration.
fn annotations(w: &mut PrefixWriter, title: &str, map: Option<&Value>) {
    const MAX_LEN: usize = 140;
    w.write(0, &format!("{title}:\t"));
    let mut items: Vec<(String, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "kubectl.kubernetes.io/last-applied-configuration")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    items.sort();
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            w.write(0, "\t");
        }
        let v = v.strip_suffix('\n').unwrap_or(v);
        if v.len() + k.len() + 2 > MAX_LEN || v.contains('\n') {
            w.write(0, &format!("{k}:\n"));
            for l in v.split('\n') {
                let short = if l.len() > MAX_LEN - 2 {
                    let cut = (0..=MAX_LEN - 2)
                        .rev()
                        .find(|i| l.is_char_boundary(*i))
                        .unwrap_or(0);
                    format!("{}...", &l[..cut])
                } else {
                    l.to_string()
                };
                w.write(0, &format!("\t  {short}\n"));
            }
        } else {
            w.write(0, &format!("{k}: {v}\n"));
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// A timestamp as kubectl prints one (Go's RFC1123Z, local time).
fn rfc1123z(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

fn i64_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// `Kind/name` of the object's controller, if it has one.
fn controlled_by(v: &Value) -> Option<String> {
    array(v, "/metadata/ownerReferences")
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| format!("{}/{}", str_at(o, "/kind"), str_at(o, "/name")))
}

/// An int-or-string (ports, maxSurge) as Go's intstr prints it.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A Service with the Endpoints object of the same name (if any).
pub fn service(svc: &Value, endpoints: Option<&Value>, events: &[Value]) -> String {
    let mut w = PrefixWriter::new();
    w.write(0, &format!("Name:\t{}\n", str_at(svc, "/metadata/name")));
    w.write(
        0,
        &format!("Namespace:\t{}\n", str_at(svc, "/metadata/namespace")),
    );
    labels(&mut w, "Labels", svc.pointer("/metadata/labels"));
    annotations(&mut w, "Annotations", svc.pointer("/metadata/annotations"));
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            table::selector_of(svc.pointer("/spec/selector"))
        ),
    );
    let ty = match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        ty => ty,
    };
    w.write(0, &format!("Type:\t{ty}\n"));
    let policy = str_at(svc, "/spec/ipFamilyPolicy");
    if !policy.is_empty() {
        w.write(0, &format!("IP Family Policy:\t{policy}\n"));
    }
    let families = strs_at(svc, "/spec/ipFamilies");
    w.write(
        0,
        &format!("IP Families:\t{}\n", or_none(&families.join(","))),
    );
    w.write(0, &format!("IP:\t{}\n", str_at(svc, "/spec/clusterIP")));
    let ips = strs_at(svc, "/spec/clusterIPs");
    w.write(0, &format!("IPs:\t{}\n", or_none(&ips.join(","))));
    let lb_ip = str_at(svc, "/spec/loadBalancerIP");
    if !lb_ip.is_empty() {
        w.write(0, &format!("Desired LoadBalancer IP:\t{lb_ip}\n"));
    }
    let external_name = str_at(svc, "/spec/externalName");
    if !external_name.is_empty() {
        w.write(0, &format!("External Name:\t{external_name}\n"));
    }
    if let Some(lb) = table::load_balancer_addresses(svc) {
        w.write(0, &format!("LoadBalancer Ingress:\t{lb}\n"));
    }
    let endpoints_text = endpoints
        .map(table::endpoints_text)
        .unwrap_or_else(|| "<none>".into());
    for p in array(svc, "/spec/ports") {
        let name = match str_at(p, "/name") {
            "" => "<unset>",
            n => n,
        };
        let proto = match str_at(p, "/protocol") {
            "" => "TCP",
            p => p,
        };
        let port = i64_at(p, "/port");
        w.write(0, &format!("Port:\t{name}\t{port}/{proto}\n"));
        let target = match int_or_string(p.get("targetPort")) {
            t if t.is_empty() => port.to_string(),
            t => t,
        };
        w.write(0, &format!("TargetPort:\t{target}/{proto}\n"));
        let app_protocol = str_at(p, "/appProtocol");
        if !app_protocol.is_empty() {
            w.write(0, &format!("AppProtocol:\t{app_protocol}\n"));
        }
        if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
            w.write(0, &format!("NodePort:\t{name}\t{np}/{proto}\n"));
        }
        w.write(0, &format!("Endpoints:\t{endpoints_text}\n"));
    }
    let affinity = match str_at(svc, "/spec/sessionAffinity") {
        "" => "None",
        a => a,
    };
    w.write(0, &format!("Session Affinity:\t{affinity}\n"));
    let etp = str_at(svc, "/spec/externalTrafficPolicy");
    if !etp.is_empty() {
        w.write(0, &format!("External Traffic Policy:\t{etp}\n"));
    }
    let itp = str_at(svc, "/spec/internalTrafficPolicy");
    if !itp.is_empty() {
        w.write(0, &format!("Internal Traffic Policy:\t{itp}\n"));
    }
    let hc = i64_at(svc, "/spec/healthCheckNodePort");
    if hc != 0 {
        w.write(0, &format!("HealthCheck NodePort:\t{hc}\n"));
    }
    describe_events(&mut w, events, chrono::Utc::now());
    w.finish()
}

/// kubectl's DescribeProbe.
fn probe_text(probe: &Value) -> String {
    let n = |f: &str, d: i64| probe.get(f).and_then(Value::as_i64).unwrap_or(d);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds", 0),
        n("timeoutSeconds", 1),
        n("periodSeconds", 10),
        n("successThreshold", 1),
        n("failureThreshold", 3),
    );
    if let Some(h) = probe.get("httpGet") {
        let scheme = match str_at(h, "/scheme") {
            "" => "http".to_string(),
            s => s.to_lowercase(),
        };
        let port = int_or_string(h.get("port"));
        let host = str_at(h, "/host");
        let path = str_at(h, "/path");
        format!("http-get {scheme}://{host}:{port}{path} {attrs}")
    } else if let Some(t) = probe.get("tcpSocket") {
        format!(
            "tcp-socket {}:{} {attrs}",
            str_at(t, "/host"),
            int_or_string(t.get("port"))
        )
    } else if let Some(e) = probe.get("exec") {
        format!("exec [{}] {attrs}", strs_at(e, "/command").join(" "))
    } else {
        format!("unknown {attrs}")
    }
}

fn ports_text(c: &Value, field: &str) -> String {
    array(c, "/ports")
        .map(|p| {
            let proto = match str_at(p, "/protocol") {
                "" => "TCP",
                p => p,
            };
            let mut s = format!("{}/{proto}", i64_at(p, &format!("/{field}")));
            let name = str_at(p, "/name");
            if !name.is_empty() {
                s = format!("{s} ({name})");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One container state (`State:`/`Last State:`) as kubectl's describeStatus.
fn container_state(w: &mut PrefixWriter, title: &str, state: Option<&Value>) {
    let state = state.and_then(Value::as_object);
    if let Some(r) = state.and_then(|s| s.get("running")) {
        w.write(2, &format!("{title}:\tRunning\n"));
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(str_at(r, "/startedAt"))),
        );
    } else if let Some(t) = state.and_then(|s| s.get("terminated")) {
        w.write(2, &format!("{title}:\tTerminated\n"));
        for (label, field) in [("Reason", "/reason"), ("Message", "/message")] {
            let v = str_at(t, field);
            if !v.is_empty() {
                w.write(3, &format!("{label}:\t{v}\n"));
            }
        }
        w.write(3, &format!("Exit Code:\t{}\n", i64_at(t, "/exitCode")));
        for (label, field) in [("Started", "/startedAt"), ("Finished", "/finishedAt")] {
            w.write(3, &format!("{label}:\t{}\n", rfc1123z(str_at(t, field))));
        }
    } else {
        w.write(2, &format!("{title}:\tWaiting\n"));
        let reason = state
            .and_then(|s| s.get("waiting"))
            .map(|wt| str_at(wt, "/reason"))
            .unwrap_or("");
        if !reason.is_empty() {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
    }
}

/// kubectl's describeContainers, for a pod (with statuses) or a template.
fn containers(w: &mut PrefixWriter, spec: &Value, statuses: &[&Value], in_template: bool) {
    let list: Vec<&Value> = array(spec, "/containers").collect();
    let space = if in_template { "  " } else { "" };
    let none = if list.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("{space}Containers:{none}\n"));
    let name_indent = if in_template { " " } else { "" };
    for c in list {
        let name = str_at(c, "/name");
        let st = statuses.iter().find(|s| str_at(s, "/name") == name);
        w.write(1, &format!("{name_indent}{name}:\n"));
        if let Some(st) = st {
            w.write(
                2,
                &format!("Container ID:\t{}\n", str_at(st, "/containerID")),
            );
        }
        w.write(2, &format!("Image:\t{}\n", str_at(c, "/image")));
        if let Some(st) = st {
            w.write(2, &format!("Image ID:\t{}\n", str_at(st, "/imageID")));
        }
        let ports = ports_text(c, "containerPort");
        let plural = if ports.contains(',') { "s" } else { "" };
        w.write(2, &format!("Port{plural}:\t{}\n", or_none(&ports)));
        let host_ports = ports_text(c, "hostPort");
        let plural = if host_ports.contains(',') { "s" } else { "" };
        w.write(
            2,
            &format!("Host Port{plural}:\t{}\n", or_none(&host_ports)),
        );
        for (title, field) in [("Command", "/command"), ("Args", "/args")] {
            let items = strs_at(c, field);
            if !items.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for line in items.iter().flat_map(|a| a.split('\n')) {
                    w.write(3, &format!("{line}\n"));
                }
            }
        }
        if let Some(st) = st {
            container_state(w, "State", st.get("state"));
            if st.pointer("/lastState/terminated").is_some() {
                container_state(w, "Last State", st.get("lastState"));
            }
            let ready = st.get("ready").and_then(Value::as_bool).unwrap_or(false);
            w.write(
                2,
                &format!("Ready:\t{}\n", if ready { "True" } else { "False" }),
            );
            w.write(
                2,
                &format!("Restart Count:\t{}\n", i64_at(st, "/restartCount")),
            );
        }
        for (title, field) in [
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ] {
            if let Some(p) = c.get(field) {
                w.write(2, &format!("{title}:\t{}\n", probe_text(p)));
            }
        }
        let env: Vec<&Value> = array(c, "/env").collect();
        w.write(
            2,
            &format!(
                "Environment:{}\n",
                if env.is_empty() { "\t<none>" } else { "" }
            ),
        );
        for e in env {
            let name = str_at(e, "/name");
            if let Some(field) = e.pointer("/valueFrom/fieldRef") {
                w.write(
                    3,
                    &format!(
                        "{name}:\t ({}:{})\n",
                        str_at(field, "/apiVersion"),
                        str_at(field, "/fieldPath")
                    ),
                );
                continue;
            }
            for (i, line) in str_at(e, "/value").split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
        }
        let mounts: Vec<&Value> = array(c, "/volumeMounts").collect();
        w.write(
            2,
            &format!(
                "Mounts:{}\n",
                if mounts.is_empty() { "\t<none>" } else { "" }
            ),
        );
        for m in mounts {
            let ro = m.get("readOnly").and_then(Value::as_bool) == Some(true);
            w.write(
                3,
                &format!(
                    "{} from {} ({})\n",
                    str_at(m, "/mountPath"),
                    str_at(m, "/name"),
                    if ro { "ro" } else { "rw" }
                ),
            );
        }
    }
}

/// A Pod: where it runs, its containers, conditions and events.
/// `policies`: the NetworkPolicies selecting the pod, `name (Ingress,
/// Egress)` (podnet's addition to kubectl's layout).
pub fn pod(p: &Value, policies: &[String], events: &[Value]) -> String {
    let now = chrono::Utc::now();
    let mut w = PrefixWriter::new();
    w.write(0, &format!("Name:\t{}\n", str_at(p, "/metadata/name")));
    w.write(
        0,
        &format!("Namespace:\t{}\n", str_at(p, "/metadata/namespace")),
    );
    if let Some(priority) = p.pointer("/spec/priority").and_then(Value::as_i64) {
        w.write(0, &format!("Priority:\t{priority}\n"));
    }
    let sa = str_at(p, "/spec/serviceAccountName");
    if !sa.is_empty() {
        w.write(0, &format!("Service Account:\t{sa}\n"));
    }
    let node = str_at(p, "/spec/nodeName");
    if node.is_empty() {
        w.write(0, "Node:\t<none>\n");
    } else {
        w.write(
            0,
            &format!("Node:\t{node}/{}\n", str_at(p, "/status/hostIP")),
        );
    }
    let start = str_at(p, "/status/startTime");
    if !start.is_empty() {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    labels(&mut w, "Labels", p.pointer("/metadata/labels"));
    annotations(&mut w, "Annotations", p.pointer("/metadata/annotations"));
    let phase = str_at(p, "/status/phase");
    match str_at(p, "/metadata/deletionTimestamp") {
        deleted if !deleted.is_empty() && !matches!(phase, "Failed" | "Succeeded") => {
            w.write(
                0,
                &format!(
                    "Status:\tTerminating (lasts {})\n",
                    table::age(deleted, now)
                ),
            );
            w.write(
                0,
                &format!(
                    "Termination Grace Period:\t{}s\n",
                    i64_at(p, "/metadata/deletionGracePeriodSeconds")
                ),
            );
        }
        _ => w.write(0, &format!("Status:\t{phase}\n")),
    }
    for (label, field) in [("Reason", "/status/reason"), ("Message", "/status/message")] {
        let v = str_at(p, field);
        if !v.is_empty() {
            w.write(0, &format!("{label}:\t{v}\n"));
        }
    }
    w.write(0, &format!("IP:\t{}\n", str_at(p, "/status/podIP")));
    let ips: Vec<&str> = array(p, "/status/podIPs")
        .map(|i| str_at(i, "/ip"))
        .collect();
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, "IPs:\n");
        for ip in ips {
            w.write(1, &format!("IP:\t{ip}\n"));
        }
    }
    if let Some(owner) = controlled_by(p) {
        w.write(0, &format!("Controlled By:\t{owner}\n"));
    }
    let statuses = PodView(p).container_statuses();
    containers(
        &mut w,
        p.get("spec").unwrap_or(&Value::Null),
        &statuses,
        false,
    );
    let conditions: Vec<&Value> = array(p, "/status/conditions").collect();
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.write(
                1,
                &format!("{} \t{} \n", str_at(c, "/type"), str_at(c, "/status")),
            );
        }
    }
    let qos = str_at(p, "/status/qosClass");
    if !qos.is_empty() {
        w.write(0, &format!("QoS Class:\t{qos}\n"));
    }
    labels(&mut w, "Node-Selectors", p.pointer("/spec/nodeSelector"));
    describe_events(&mut w, events, now);
    let mut out = w.finish();
    // After kubectl's layout, so its alignment stays as kubectl's.
    let label = "Network Policies:  ";
    match policies.split_first() {
        None => out.push_str(&format!("{label}<none>\n")),
        Some((first, rest)) => {
            out.push_str(&format!("{label}{first}\n"));
            for policy in rest {
                out.push_str(&format!("{:width$}{policy}\n", "", width = label.len()));
            }
        }
    }
    out
}

/// kubectl's DescribePodTemplate.
/// A pod template as `kubectl describe` prints it (`DescribePodTemplate`),
/// what `rollout history --revision` shows.
pub fn pod_template_text(template: &Value) -> String {
    let mut w = PrefixWriter::new();
    pod_template(&mut w, Some(template));
    w.finish()
}

fn pod_template(w: &mut PrefixWriter, template: Option<&Value>) {
    w.write(0, "Pod Template:\n");
    let Some(t) = template else {
        w.write(1, "<unset>");
        return;
    };
    labels(w, "  Labels", t.pointer("/metadata/labels"));
    if t.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        annotations(w, "  Annotations", t.pointer("/metadata/annotations"));
    }
    let spec = t.get("spec").unwrap_or(&Value::Null);
    let sa = str_at(spec, "/serviceAccountName");
    if !sa.is_empty() {
        w.write(1, &format!("Service Account:\t{sa}\n"));
    }
    containers(w, spec, &[], true);
    w.write(1, "Volumes:\t<none>\n");
    labels(w, "  Node-Selectors", spec.get("nodeSelector"));
    w.write(0, "  Tolerations:\t<none>\n");
}

/// `Conditions:` of a workload: type, status and reason.
fn workload_conditions(w: &mut PrefixWriter, v: &Value) {
    let conditions: Vec<&Value> = array(v, "/status/conditions").collect();
    if conditions.is_empty() {
        return;
    }
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
    w.write(1, "----\t------\t------\n");
    for c in conditions {
        w.write(
            1,
            &format!(
                "{} \t{}\t{}\n",
                str_at(c, "/type"),
                str_at(c, "/status"),
                str_at(c, "/reason")
            ),
        );
    }
}

/// `name (2/3 replicas created), ...` as kubectl's printReplicaSetsByLabels.
fn replica_sets_text(sets: &[&Value]) -> String {
    let items: Vec<String> = sets
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                str_at(rs, "/metadata/name"),
                i64_at(rs, "/status/replicas"),
                rs.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
            )
        })
        .collect();
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join(", ")
    }
}

/// A pod template without the `pod-template-hash` label, for
/// deployment-util's EqualIgnoreHash.
fn without_hash(template: Option<&Value>) -> Value {
    let mut t = template.cloned().unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    t
}

/// A Deployment with the ReplicaSets of its namespace (the ones it owns
/// are its old and new ones).
pub fn deployment(d: &Value, replica_sets: &[Value], events: &[Value]) -> String {
    let mut w = PrefixWriter::new();
    w.write(0, &format!("Name:\t{}\n", str_at(d, "/metadata/name")));
    w.write(
        0,
        &format!("Namespace:\t{}\n", str_at(d, "/metadata/namespace")),
    );
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(d, "/metadata/creationTimestamp"))
        ),
    );
    labels(&mut w, "Labels", d.pointer("/metadata/labels"));
    annotations(&mut w, "Annotations", d.pointer("/metadata/annotations"));
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            table::selector_of(d.pointer("/spec/selector/matchLabels"))
        ),
    );
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    w.write(
        0,
        &format!(
            "Replicas:\t{desired} desired | {} updated | {} total | {} available | {} unavailable\n",
            i64_at(d, "/status/updatedReplicas"),
            i64_at(d, "/status/replicas"),
            i64_at(d, "/status/availableReplicas"),
            i64_at(d, "/status/unavailableReplicas"),
        ),
    );
    w.write(
        0,
        &format!("StrategyType:\t{}\n", str_at(d, "/spec/strategy/type")),
    );
    w.write(
        0,
        &format!("MinReadySeconds:\t{}\n", i64_at(d, "/spec/minReadySeconds")),
    );
    if let Some(ru) = d.pointer("/spec/strategy/rollingUpdate") {
        w.write(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                int_or_string(ru.get("maxUnavailable")),
                int_or_string(ru.get("maxSurge"))
            ),
        );
    }
    pod_template(&mut w, d.pointer("/spec/template"));
    workload_conditions(&mut w, d);
    let uid = str_at(d, "/metadata/uid");
    let owned: Vec<&Value> = replica_sets
        .iter()
        .filter(|rs| {
            array(rs, "/metadata/ownerReferences").any(|o| {
                str_at(o, "/uid") == uid
                    && o.get("controller").and_then(Value::as_bool) == Some(true)
            })
        })
        .collect();
    let template = without_hash(d.pointer("/spec/template"));
    let (new, old): (Vec<&Value>, Vec<&Value>) = owned
        .iter()
        .partition(|rs| without_hash(rs.pointer("/spec/template")) == template);
    if !owned.is_empty() {
        w.write(
            0,
            &format!("OldReplicaSets:\t{}\n", replica_sets_text(&old)),
        );
        w.write(
            0,
            &format!(
                "NewReplicaSet:\t{}\n",
                replica_sets_text(&new[..new.len().min(1)])
            ),
        );
    }
    describe_events(&mut w, events, chrono::Utc::now());
    w.finish()
}

/// A ReplicaSet with the pods of its namespace (it counts the ones it
/// controls).
pub fn replica_set(rs: &Value, pods: &[Value], events: &[Value]) -> String {
    let mut w = PrefixWriter::new();
    w.write(0, &format!("Name:\t{}\n", str_at(rs, "/metadata/name")));
    w.write(
        0,
        &format!("Namespace:\t{}\n", str_at(rs, "/metadata/namespace")),
    );
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            table::selector_of(rs.pointer("/spec/selector/matchLabels"))
        ),
    );
    labels(&mut w, "Labels", rs.pointer("/metadata/labels"));
    annotations(&mut w, "Annotations", rs.pointer("/metadata/annotations"));
    if let Some(owner) = controlled_by(rs) {
        w.write(0, &format!("Controlled By:\t{owner}\n"));
    }
    w.write(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            i64_at(rs, "/status/replicas"),
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        ),
    );
    let uid = str_at(rs, "/metadata/uid");
    let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
    for p in pods.iter().filter(|p| {
        array(p, "/metadata/ownerReferences").any(|o| {
            str_at(o, "/uid") == uid && o.get("controller").and_then(Value::as_bool) == Some(true)
        })
    }) {
        match str_at(p, "/status/phase") {
            "Running" => running += 1,
            "Succeeded" => succeeded += 1,
            "Failed" => failed += 1,
            _ => waiting += 1,
        }
    }
    w.write(
        0,
        &format!(
            "Pods Status:\t{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed\n"
        ),
    );
    pod_template(&mut w, rs.pointer("/spec/template"));
    workload_conditions(&mut w, rs);
    describe_events(&mut w, events, chrono::Utc::now());
    w.finish()
}

/// Any other kind: its YAML.
pub fn other(kind: Kind, v: &Value) -> anyhow::Result<String> {
    table::render_one(kind, v, table::Format::Yaml, false)
}

/// A timestamp as Go's `time.Time` prints itself (`String`), in local time:
/// kubectl's `Created on:`. The zone is named only when it is UTC (podnet
/// reads no time zone database); elsewhere Go's form for a zone without a
/// name, the offset twice.
fn go_time(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => {
            let local = t.with_timezone(&chrono::Local);
            let offset = local.format("%z").to_string();
            let zone = if offset == "+0000" { "UTC" } else { &offset };
            format!("{} {offset} {zone}", local.format("%Y-%m-%d %H:%M:%S"))
        }
        Err(_) => ts.to_string(),
    }
}

/// A NetworkPolicy as kubectl describes it (`describeNetworkPolicy`): each
/// direction's rules, ports then peers, the rules apart by `----------`.
/// kubectl shows no Events for a NetworkPolicy, and nor does podnet.
pub fn network_policy(np: &Value) -> String {
    let mut w = PrefixWriter::new();
    w.write(0, &format!("Name:\t{}\n", str_at(np, "/metadata/name")));
    w.write(
        0,
        &format!("Namespace:\t{}\n", str_at(np, "/metadata/namespace")),
    );
    w.write(
        0,
        &format!(
            "Created on:\t{}\n",
            go_time(str_at(np, "/metadata/creationTimestamp"))
        ),
    );
    labels(&mut w, "Labels", np.pointer("/metadata/labels"));
    annotations(&mut w, "Annotations", np.pointer("/metadata/annotations"));
    let spec = np.get("spec").unwrap_or(&Value::Null);
    w.write(0, "Spec:\n");
    w.write(1, "PodSelector: ");
    let selector = spec.get("podSelector");
    // Go's `len(...) == 0` of a map and a list.
    let has = |field: &str| {
        selector.and_then(|s| s.get(field)).is_some_and(|v| {
            v.as_object().is_some_and(|m| !m.is_empty())
                || v.as_array().is_some_and(|a| !a.is_empty())
        })
    };
    if has("matchLabels") || has("matchExpressions") {
        w.write(2, &format!("{}\n", table::format_label_selector(selector)));
    } else {
        w.write(
            2,
            "<none> (Allowing the specific traffic to all pods in this namespace)\n",
        );
    }
    let types = strs_at(spec, "/policyTypes");
    for direction in [Direction::Ingress, Direction::Egress] {
        if types.contains(&direction.policy_type()) {
            w.write(1, &format!("Allowing {} traffic:\n", direction.word()));
            policy_rules(&mut w, spec, direction, "    ");
        } else {
            w.write(1, &format!("Not affecting {} traffic\n", direction.word()));
        }
    }
    w.write(
        1,
        &format!("Policy Types: {}\n", or_none(&types.join(", "))),
    );
    w.finish()
}

#[derive(Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn policy_type(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// kubectl's `printNetworkPolicySpecIngressFrom` and `...EgressTo`, which
/// differ in their words alone.
fn policy_rules(w: &mut PrefixWriter, spec: &Value, direction: Direction, indent: &str) {
    let (rules, peers, peer_title, any_peer) = match direction {
        Direction::Ingress => (
            "/ingress",
            "from",
            "From",
            "From: <any> (traffic not restricted by source)",
        ),
        Direction::Egress => (
            "/egress",
            "to",
            "To",
            "To: <any> (traffic not restricted by destination)",
        ),
    };
    let rules: Vec<&Value> = array(spec, rules).collect();
    if rules.is_empty() {
        w.write(
            0,
            &format!(
                "{indent}<none> (Selected pods are isolated for {} connectivity)\n",
                direction.word()
            ),
        );
        return;
    }
    for (i, rule) in rules.iter().enumerate() {
        let ports: Vec<&Value> = array(rule, "/ports").collect();
        if ports.is_empty() {
            w.write(
                0,
                &format!("{indent}To Port: <any> (traffic allowed to all ports)\n"),
            );
        }
        for port in ports {
            let protocol = match str_at(port, "/protocol") {
                "" => "TCP",
                p => p,
            };
            // Go's `%s` of a nil `*IntOrString`.
            let number = match port.get("port").filter(|p| !p.is_null()) {
                Some(p) => int_or_string(Some(p)),
                None => "<nil>".to_string(),
            };
            match port.get("endPort").and_then(Value::as_i64) {
                None => w.write(0, &format!("{indent}To Port: {number}/{protocol}\n")),
                Some(end) => w.write(
                    0,
                    &format!("{indent}To Port Range: {number}-{end}/{protocol}\n"),
                ),
            }
        }
        let peers: Vec<&Value> = array(rule, &format!("/{peers}")).collect();
        if peers.is_empty() {
            w.write(0, &format!("{indent}{any_peer}\n"));
        }
        for peer in peers {
            w.write(0, &format!("{indent}{peer_title}:\n"));
            let field = |name: &str| peer.get(name).filter(|v| !v.is_null());
            let selector_line = |w: &mut PrefixWriter, title: &str, selector: Option<&Value>| {
                w.write(
                    1,
                    &format!(
                        "{indent}{title}: {}\n",
                        table::format_label_selector(selector)
                    ),
                );
            };
            match (
                field("podSelector"),
                field("namespaceSelector"),
                field("ipBlock"),
            ) {
                (Some(pods), Some(namespaces), _) => {
                    selector_line(w, "NamespaceSelector", Some(namespaces));
                    selector_line(w, "PodSelector", Some(pods));
                }
                (Some(pods), None, _) => selector_line(w, "PodSelector", Some(pods)),
                (None, Some(namespaces), _) => {
                    selector_line(w, "NamespaceSelector", Some(namespaces));
                }
                (None, None, Some(block)) => {
                    w.write(1, &format!("{indent}IPBlock:\n"));
                    w.write(2, &format!("{indent}CIDR: {}\n", str_at(block, "/cidr")));
                    w.write(
                        2,
                        &format!("{indent}Except: {}\n", strs_at(block, "/except").join(", ")),
                    );
                }
                (None, None, None) => {}
            }
        }
        if i + 1 != rules.len() {
            w.write(0, &format!("{indent}----------\n"));
        }
    }
}

/// An Ingress as kubectl describes it, with each backend's endpoints (or
/// why it has none) from the Services and Endpoints of its namespace.
pub fn ingress(ing: &Value, services: &[Value], endpoints: &[Value], events: &[Value]) -> String {
    let mut w = PrefixWriter::new();
    let ns = str_at(ing, "/metadata/namespace");
    w.write(0, &format!("Name:\t{}\n", str_at(ing, "/metadata/name")));
    labels(&mut w, "Labels", ing.pointer("/metadata/labels"));
    w.write(0, &format!("Namespace:\t{ns}\n"));
    w.write(
        0,
        &format!(
            "Address:\t{}\n",
            table::load_balancer_addresses(ing).unwrap_or_default()
        ),
    );
    w.write(
        0,
        &format!(
            "Ingress Class:\t{}\n",
            or_none(str_at(ing, "/spec/ingressClassName"))
        ),
    );
    let backend_text = |b: &Value| ingress_backend(ns, b, services, endpoints);
    let default_backend = ing
        .pointer("/spec/defaultBackend")
        .map_or("<default>".to_string(), backend_text);
    w.write(0, &format!("Default backend:\t{default_backend}\n"));
    let tls: Vec<&Value> = array(ing, "/spec/tls").collect();
    if !tls.is_empty() {
        w.write(0, "TLS:\n");
        for t in tls {
            let hosts = strs_at(t, "/hosts").join(",");
            match str_at(t, "/secretName") {
                "" => w.write(1, &format!("SNI routes {hosts}\n")),
                secret => w.write(1, &format!("{secret} terminates {hosts}\n")),
            }
        }
    }
    w.write(0, "Rules:\n  Host\tPath\tBackends\n");
    w.write(1, "----\t----\t--------\n");
    let mut count = 0;
    for rule in array(ing, "/spec/rules") {
        let Some(http) = rule.get("http") else {
            continue;
        };
        count += 1;
        w.write(
            1,
            &format!(
                "{}\t\n",
                match str_at(rule, "/host") {
                    "" => "*",
                    h => h,
                }
            ),
        );
        for path in array(http, "/paths") {
            w.write(
                2,
                &format!(
                    "\t{} \t{}\n",
                    str_at(path, "/path"),
                    backend_text(path.get("backend").unwrap_or(&Value::Null))
                ),
            );
        }
    }
    if count == 0 {
        w.write(1, &format!("*\t*\t{default_backend}\n"));
    }
    annotations(&mut w, "Annotations", ing.pointer("/metadata/annotations"));
    describe_events(&mut w, events, chrono::Utc::now());
    w.finish()
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

/// When an Event was last seen, for ordering: `lastTimestamp`, then
/// `eventTime`, then creation; the store's revision breaks ties within
/// the second the timestamps carry.
fn event_order(e: &Value) -> (String, u64) {
    let at = [
        "/lastTimestamp",
        "/eventTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| str_at(e, p))
    .find(|t| !t.is_empty())
    .unwrap_or("");
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        })
        .unwrap_or_default();
    let revision = str_at(e, "/metadata/resourceVersion").parse().unwrap_or(0);
    (at, revision)
}

/// The Age column of kubectl's Events table: since the first time, or
/// `LAST (xCOUNT over FIRST)` for an Event seen more than once.
pub fn event_age(e: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let first = match str_at(e, "/eventTime") {
        "" => table::age(str_at(e, "/firstTimestamp"), now),
        t => table::age(t, now),
    };
    let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
    if count > 1 {
        format!(
            "{} (x{count} over {first})",
            table::age(str_at(e, "/lastTimestamp"), now)
        )
    } else {
        first
    }
}

/// kubectl's DescribeEvents: `Events: <none>`, or the table, oldest first.
fn describe_events(w: &mut PrefixWriter, events: &[Value], now: chrono::DateTime<chrono::Utc>) {
    if events.is_empty() {
        w.write(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    let mut sorted: Vec<&Value> = events.iter().collect();
    sorted.sort_by_cached_key(|e| event_order(e));
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.write(1, "----\t------\t----\t----\t-------\n");
    for e in sorted {
        let source = match str_at(e, "/source/component") {
            "" => str_at(e, "/reportingComponent"),
            s => s,
        };
        w.write(
            1,
            &format!(
                "{}\t{}\t{}\t{}\t{}\n",
                str_at(e, "/type"),
                str_at(e, "/reason"),
                event_age(e, now),
                source,
                str_at(e, "/message").trim()
            ),
        );
    }
}

#[cfg(test)]
mod tests;
