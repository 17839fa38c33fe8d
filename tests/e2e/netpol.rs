//! NetworkPolicy as a kind: applied, defaulted and validated as the API
//! server does, listed and described as kubectl shows them. What nodes
//! enforce is `policy.rs`'s.

use serde_json::json;

use crate::harness::{Cluster, text};

/// The policy of the seeds' NetworkPolicy section, re-indented (the seed
/// lost its indentation), otherwise as written there.
pub const ALLOW_FRONTEND_ONLY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend-only
spec:
  podSelector:
    matchLabels:
      app: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
    ports:
    - port: 8080
"#;

/// Ingress from pods, a namespace and an address block, on a port by
/// number and one by name; egress to DNS. No `policyTypes`: the API
/// server's defaults give it both.
const API_ALLOW: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-allow, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - namespaceSelector: {matchLabels: {team: ops}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - port: 80
    - port: http
  egress:
  - ports:
    - {port: 53, protocol: UDP}
"#;

/// The whitespace-separated cells of each line of a table.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Go's `time.Time.String()` of a stored timestamp in the local zone, as
/// kubectl's `Created on:` prints it (the zone named only for UTC, as
/// podnet does).
fn created_on(ts: &str) -> String {
    let local = chrono::DateTime::parse_from_rfc3339(ts)
        .expect("creationTimestamp")
        .with_timezone(&chrono::Local);
    let offset = local.format("%z").to_string();
    let zone = if offset == "+0000" { "UTC" } else { &offset };
    format!("{} {offset} {zone}", local.format("%Y-%m-%d %H:%M:%S"))
}

#[test]
fn network_policies_are_listed_and_described_as_kubectl_shows_them() {
    let c = Cluster::up(&["--nodes", "2"]);
    let out = c.apply(ALLOW_FRONTEND_ONLY);
    assert!(out.contains("networkpolicy/allow-frontend-only"), "{out}");
    let out = c.apply(API_ALLOW);
    assert!(out.contains("networkpolicy/api-allow"), "{out}");

    // Every name kubectl takes for the kind.
    for name in ["networkpolicy", "networkpolicies", "netpol"] {
        let rows = cells(&c.ok(&["get", name]));
        assert_eq!(rows[0], ["NAME", "POD-SELECTOR", "AGE"], "get {name}");
        assert_eq!(rows.len(), 2, "get {name}: only the default namespace's");
        assert_eq!(rows[1][..2], ["allow-frontend-only", "app=backend"]);
    }
    let rows = cells(&c.ok(&["get", "netpol", "-A"]));
    assert_eq!(rows[0], ["NAMESPACE", "NAME", "POD-SELECTOR", "AGE"]);
    assert_eq!(
        rows[1..]
            .iter()
            .map(|r| r[..3].join(" "))
            .collect::<Vec<_>>(),
        [
            "default allow-frontend-only app=backend",
            "shop api-allow app=api"
        ]
    );
    // kubectl's `-o wide` has no more columns for the kind.
    assert_eq!(
        cells(&c.ok(&["get", "netpol", "-n", "shop", "-o", "wide"]))[0],
        ["NAME", "POD-SELECTOR", "AGE"]
    );
    assert_eq!(
        c.ok(&["get", "netpol", "-A", "-o", "name"]),
        "networkpolicy.networking.k8s.io/allow-frontend-only\nnetworkpolicy.networking.k8s.io/api-allow\n"
    );
    let yaml = c.ok(&["get", "netpol", "api-allow", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains("kind: NetworkPolicy"), "{yaml}");

    // Stored as the API server stores it: policyTypes from the rules,
    // protocols TCP where none was written.
    let stored = c.json(&["get", "netpol", "api-allow", "-n", "shop"]);
    assert_eq!(stored["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        stored["spec"]["ingress"][0]["ports"],
        json!([{"port": 80, "protocol": "TCP"}, {"port": "http", "protocol": "TCP"}])
    );
    let seed = c.json(&["get", "netpol", "allow-frontend-only"]);
    assert_eq!(seed["spec"]["policyTypes"], json!(["Ingress"]));

    let created = created_on(stored["metadata"]["creationTimestamp"].as_str().unwrap());
    let want = format!(
        "Name:         api-allow
Namespace:    shop
Created on:   {created}
Labels:       <none>
Annotations:  <none>
Spec:
  PodSelector:     app=api
  Allowing ingress traffic:
    To Port: 80/TCP
    To Port: http/TCP
    From:
      PodSelector: app=web
    From:
      NamespaceSelector: team=ops
    From:
      IPBlock:
        CIDR: 10.0.0.0/8
        Except: 10.1.0.0/16
  Allowing egress traffic:
    To Port: 53/UDP
    To: <any> (traffic not restricted by destination)
  Policy Types: Ingress, Egress
"
    );
    let got = c.ok(&["describe", "networkpolicy", "api-allow", "-n", "shop"]);
    for (i, (got, want)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "line {} of describe:\n{got}", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "{got}");

    let got = c.ok(&["describe", "netpol", "allow-frontend-only"]);
    for line in [
        "  PodSelector:     app=backend",
        "    To Port: 8080/TCP",
        "      PodSelector: app=frontend",
        "  Not affecting egress traffic",
        "  Policy Types: Ingress",
    ] {
        assert!(got.lines().any(|l| l == line), "{line:?} missing:\n{got}");
    }
}

#[test]
fn invalid_network_policies_are_refused_whole_with_their_field_path() {
    let c = Cluster::up(&["--nodes", "2"]);
    let policy = |spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bad}}\nspec: {spec}\n"
        )
    };
    let from = |peer: &str| {
        policy(&format!(
            "{{podSelector: {{}}, ingress: [{{from: [{peer}]}}]}}"
        ))
    };
    let port = |port: &str| {
        policy(&format!(
            "{{podSelector: {{}}, ingress: [{{ports: [{port}]}}]}}"
        ))
    };
    for (manifest, path, detail) in [
        (
            from("{ipBlock: {cidr: 10.0.0.0/33}}"),
            "spec.ingress[0].from[0].ipBlock.cidr",
            "must be a valid CIDR value",
        ),
        (
            from("{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}"),
            "spec.ingress[0].from[0].ipBlock.except[0]",
            "must be a strict subset of `cidr`",
        ),
        (
            port("{port: 8080, endPort: 8000}"),
            "spec.ingress[0].ports[0].endPort",
            "must be greater than or equal to `port`",
        ),
        (
            port("{port: 80, protocol: ICMP}"),
            "spec.ingress[0].ports[0].protocol",
            r#"Unsupported value: "ICMP""#,
        ),
    ] {
        // With a namespace in the same file: all or nothing.
        let file =
            format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: second}}\n---\n{manifest}");
        let out = c.run_stdin(&["apply", "-f", "-"], &file);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{manifest}: {err}");
        assert!(
            err.contains(&format!("NetworkPolicy \"bad\" is invalid: {path}:"))
                && err.contains(detail),
            "must name {path} and say {detail:?}: {err}"
        );
        assert!(
            !c.ok(&["get", "namespaces"]).contains("second"),
            "half-applied: {manifest}"
        );
    }

    // A namespace that does not exist, as for every namespaced kind.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: nowhere}\nspec: {podSelector: {}}\n",
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(r#"namespace "nowhere" not found"#), "{err}");

    let stored = c.json(&["get", "netpol", "-A"]);
    assert_eq!(stored["items"], json!([]), "nothing may be stored");
    assert!(
        !c.ok(&["get", "namespaces"]).contains("nowhere"),
        "no namespace is made for a policy"
    );

    // Unknown fields are accepted with a warning naming where they are.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        &policy("{podSelector: {}, ingress: [{form: [{podSelector: {}}]}]}"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(r#"unknown field "spec.ingress[0].form""#),
        "{}",
        text(&out.stderr)
    );
    let items = c.json(&["get", "netpol"])["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["spec"]["ingress"], json!([{}]));
}
