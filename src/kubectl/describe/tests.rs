use serde_json::json;

use super::*;

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Every `Label:` line of a block has its value two or more spaces after
/// the longest label, all starting in one column.
fn assert_aligned(out: &str, labels: &[&str]) {
    let mut column = None;
    for label in labels {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{label}:")))
            .unwrap_or_else(|| panic!("no {label}: in\n{out}"));
        let rest = &line[label.len() + 1..];
        assert!(
            rest.starts_with("  "),
            "{label}: runs into its value\n{out}"
        );
        let value_at = line.len() - rest.trim_start().len();
        assert_eq!(*column.get_or_insert(value_at), value_at, "{line}\n{out}");
    }
}

fn service() -> Value {
    json!({"metadata": {"name": "web", "namespace": "default", "labels": {"b": "2", "a": "1"}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}],
            "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster", "healthCheckNodePort": 0}})
}

#[test]
fn service_labels_are_padded_past_the_longest() {
    let out = service_text();
    assert_aligned(
        &out,
        &[
            "Name",
            "Namespace",
            "Labels",
            "Selector",
            "Type",
            "IP Family Policy",
            "IP",
            "Port",
            "NodePort",
            "Endpoints",
            "External Traffic Policy",
            "Internal Traffic Policy",
        ],
    );
    for want in [
        "Name:                     web\n",
        "Labels:                   a=1\n                          b=2\n",
        "Port:                     http  80/TCP\n",
        "TargetPort:               8080/TCP\n",
        "NodePort:                 http  30080/TCP\n",
        "External Traffic Policy:  Cluster\n",
        // No events: kubectl flushes only before a table, so this aligns too.
        "Events:                   <none>\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

fn service_text() -> String {
    super::service(&service(), None, &[])
}

fn event(reason: &str, first: &str, last: &str, count: i64, rv: &str, from: &str) -> Value {
    json!({"type": "Normal", "reason": reason, "message": format!("{reason} it"),
        "firstTimestamp": first, "lastTimestamp": last, "count": count,
        "metadata": {"resourceVersion": rv}, "source": {"component": from}})
}

#[test]
fn event_ages_say_how_often_and_since_when() {
    let now = at("2026-01-01T10:00:00Z");
    for (first, last, count, expected) in [
        ("2026-01-01T09:59:55Z", "2026-01-01T09:59:55Z", 1, "5s"),
        ("2026-01-01T09:57:57Z", "2026-01-01T09:57:57Z", 1, "2m3s"),
        (
            "2026-01-01T09:59:50Z",
            "2026-01-01T09:59:57Z",
            4,
            "3s (x4 over 10s)",
        ),
        ("", "", 1, "<unknown>"),
    ] {
        let e = event("X", first, last, count, "1", "kubelet");
        assert_eq!(event_age(&e, now), expected, "{e}");
    }
}

#[test]
fn events_are_a_table_oldest_first() {
    let now = at("2026-01-01T10:00:00Z");
    // Same second: the store's revision keeps the order they happened in.
    let events = [
        event(
            "Started",
            "2026-01-01T09:59:55Z",
            "2026-01-01T09:59:55Z",
            1,
            "12",
            "kubelet",
        ),
        event(
            "Scheduled",
            "2026-01-01T09:59:50Z",
            "2026-01-01T09:59:50Z",
            1,
            "10",
            "default-scheduler",
        ),
        event(
            "Pulled",
            "2026-01-01T09:59:55Z",
            "2026-01-01T09:59:55Z",
            1,
            "11",
            "kubelet",
        ),
    ];
    let mut w = PrefixWriter::new();
    w.write(0, "Name:\tweb-1\n");
    describe_events(&mut w, &events, now);
    assert_eq!(
        w.finish(),
        "Name:  web-1\n\
         Events:\n\
         \x20 Type    Reason     Age   From               Message\n\
         \x20 ----    ------     ----  ----               -------\n\
         \x20 Normal  Scheduled  10s   default-scheduler  Scheduled it\n\
         \x20 Normal  Pulled     5s    kubelet            Pulled it\n\
         \x20 Normal  Started    5s    kubelet            Started it\n"
    );
}

#[test]
fn pod_layout_follows_kubectl() {
    let p = json!({"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "podnet/http-echo",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "env": [{"name": "A", "value": "b"}]}]},
        "status": {"phase": "Running", "hostIP": "172.18.0.2", "podIP": "10.244.1.2",
            "podIPs": [{"ip": "10.244.1.2"}], "qosClass": "BestEffort",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "podnet/http-echo",
                "imageID": "podnet://podnet/http-echo", "containerID": "podnet://u/web",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let out = pod(&p, &[], &[]);
    assert!(out.ends_with("Network Policies:  <none>\n"), "{out}");
    let selected = pod(
        &p,
        &[
            "allow-frontend-only (Ingress)".into(),
            "lockdown (Ingress, Egress)".into(),
        ],
        &[],
    );
    assert!(
        selected.ends_with(
            "Network Policies:  allow-frontend-only (Ingress)\n                   lockdown (Ingress, Egress)\n"
        ),
        "{selected}"
    );
    assert_aligned(
        &out,
        &["Name", "Namespace", "Node", "Labels", "Status", "IP"],
    );
    for want in [
        "Node:         node-1/172.18.0.2\n",
        // As kubectl prints it: the IP under IPs shares the next block.
        "IPs:\n  IP:           10.244.1.2\nControlled By:  ReplicaSet/web-abc\n",
        "Containers:\n  web:\n    Container ID:   podnet://u/web\n",
        "    Image:          podnet/http-echo\n",
        "    Port:           8080/TCP\n",
        "    Host Port:      0/TCP\n",
        "    State:          Waiting\n      Reason:       CrashLoopBackOff\n",
        "    Readiness:      http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n",
        "    Environment:\n      A:     b\n    Mounts:  <none>\n",
        "Conditions:\n  Type           Status\n  Ready          True \n  PodScheduled   True \nQoS Class:       BestEffort\n",
        "Node-Selectors:  <none>\nEvents:          <none>\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

#[test]
fn deployment_layout_follows_kubectl() {
    let template = json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "podnet/http-echo"}]}});
    let mut rs_template = template.clone();
    rs_template["metadata"]["labels"]["pod-template-hash"] = json!("abc");
    let d = json!({"metadata": {"name": "web", "namespace": "default", "uid": "d1",
            "creationTimestamp": "2026-01-01T10:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": template},
        "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "unavailableReplicas": 1,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}});
    let owner = json!([{"uid": "d1", "controller": true, "kind": "Deployment", "name": "web"}]);
    let sets = [
        json!({"metadata": {"name": "web-abc", "ownerReferences": owner},
            "spec": {"replicas": 3, "template": rs_template}, "status": {"replicas": 3}}),
        json!({"metadata": {"name": "web-old", "ownerReferences": owner},
            "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "web", "v": "1"}}}},
            "status": {"replicas": 0}}),
        json!({"metadata": {"name": "other"}, "spec": {"replicas": 1}}),
    ];
    let out = deployment(&d, &sets, &[]);
    assert_aligned(
        &out,
        &[
            "Name",
            "Namespace",
            "CreationTimestamp",
            "Labels",
            "Annotations",
            "Selector",
            "Replicas",
            "StrategyType",
            "MinReadySeconds",
            "RollingUpdateStrategy",
        ],
    );
    for want in [
        "Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable\n",
        "StrategyType:           RollingUpdate\n",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n",
        "Pod Template:\n  Labels:  app=web\n  Containers:\n   web:\n    Image:         podnet/http-echo\n",
        "Conditions:\n  Type           Status  Reason\n  ----           ------  ------\n  Available      False   MinimumReplicasUnavailable\n",
        "OldReplicaSets:  web-old (0/0 replicas created)\n",
        "NewReplicaSet:   web-abc (3/3 replicas created)\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

fn network_policy_object(spec: Value) -> Value {
    json!({"metadata": {"name": "api-allow", "namespace": "shop",
            "creationTimestamp": "2026-01-01T10:00:00Z", "labels": {"app": "api"}},
        "spec": spec})
}

#[test]
fn network_policy_layout_follows_kubectl() {
    let np = network_policy_object(json!({
        "podSelector": {"matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
        "ingress": [
            {"from": [
                {"podSelector": {"matchLabels": {"app": "web"}}},
                {"namespaceSelector": {"matchLabels": {"team": "ops"}}, "podSelector": {}},
                {"namespaceSelector": {}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]}},
                {"ipBlock": {"cidr": "192.0.2.0/24"}}],
             "ports": [{"port": 80, "protocol": "TCP"}, {"port": "http", "protocol": "TCP"},
                {"port": 9000, "endPort": 9100, "protocol": "UDP"}, {"protocol": "SCTP"}]},
            {}],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
        "policyTypes": ["Ingress", "Egress"]}));
    let out = network_policy(&np);
    let created = go_time("2026-01-01T10:00:00Z");
    // An ipBlock without `except` still gets its line, with Go's `%v` of
    // an empty join: `Except: ` and the space.
    let want = format!(
        "Name:         api-allow
Namespace:    shop
Created on:   {created}
Labels:       app=api
Annotations:  <none>
Spec:
  PodSelector:     app=api,tier in (a,b)
  Allowing ingress traffic:
    To Port: 80/TCP
    To Port: http/TCP
    To Port Range: 9000-9100/UDP
    To Port: <nil>/SCTP
    From:
      PodSelector: app=web
    From:
      NamespaceSelector: team=ops
      PodSelector: <none>
    From:
      NamespaceSelector: <none>
    From:
      IPBlock:
        CIDR: 10.0.0.0/8
        Except: 10.1.0.0/16, 10.2.0.0/16
    From:
      IPBlock:
        CIDR: 192.0.2.0/24
        Except:\x20
    ----------
    To Port: <any> (traffic allowed to all ports)
    From: <any> (traffic not restricted by source)
  Allowing egress traffic:
    To Port: 53/UDP
    To: <any> (traffic not restricted by destination)
  Policy Types: Ingress, Egress
"
    );
    assert_eq!(out, want, "\n{out}");
}

#[test]
fn network_policy_says_what_it_does_not_affect() {
    // Deny all ingress to every pod of the namespace.
    let out = network_policy(&network_policy_object(
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    ));
    assert!(
        out.ends_with(
            "Spec:
  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)
  Allowing ingress traffic:
    <none> (Selected pods are isolated for ingress connectivity)
  Not affecting egress traffic
  Policy Types: Ingress
"
        ),
        "{out}"
    );
    let out = network_policy(&network_policy_object(
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "egress": [], "policyTypes": ["Egress"]}),
    ));
    assert!(
        out.ends_with(
            "  Not affecting ingress traffic
  Allowing egress traffic:
    <none> (Selected pods are isolated for egress connectivity)
  Policy Types: Egress
"
        ),
        "{out}"
    );
    // Stored before the API server defaulted it: kubectl prints <none>.
    let out = network_policy(&network_policy_object(json!({})));
    assert!(
        out.contains("  Not affecting ingress traffic\n  Not affecting egress traffic\n  Policy Types: <none>\n"),
        "{out}"
    );
}

#[test]
fn created_on_is_go_time_string() {
    // Go's `time.Time.String()` of the local time; the tests' zone is
    // whatever the host's is, so compare against chrono's local offset.
    let ts = "2017-06-05T04:45:56Z";
    let local = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .with_timezone(&chrono::Local);
    let got = go_time(ts);
    assert!(
        got.starts_with(&local.format("%Y-%m-%d %H:%M:%S %z ").to_string()),
        "{got}"
    );
    if local.offset().local_minus_utc() == 0 {
        assert_eq!(got, "2017-06-05 04:45:56 +0000 UTC");
    }
    assert_eq!(go_time("garbage"), "garbage");
}
