//! Checking that a scenario's expectations name objects its manifests
//! create: a pod reference (`from`, `to`, `pods:` answers) must match a Pod
//! or the pod template of a workload, a Service reference (`backend`,
//! `service:` answers) a Service. Caught by `--check`, before a cluster is
//! booted for an expectation that cannot pass. Objects in the namespaces
//! the cluster fills itself (kube-system, podnet-ingress) are not checked.

use std::collections::BTreeMap;

use podnet_proto::model::LabelSelector;
use serde_json::Value;

use super::schema::{Expectation, Scenario, is_selector};

/// Namespaces whose objects the cluster creates at start.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "podnet-ingress"];

/// Kinds whose `spec.template` makes pods.
const WORKLOADS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
];

type Labels = BTreeMap<String, String>;

/// What the manifests create, as the expectations refer to it.
struct Created {
    /// Pods by namespace: (name, labels); workload templates have no name.
    pods: Vec<(String, Option<String>, Labels)>,
    services: Vec<(String, String)>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn labels(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Created {
    fn of(objects: &[Value]) -> Created {
        let mut created = Created {
            pods: Vec::new(),
            services: Vec::new(),
        };
        for o in objects {
            let ns = text(o, "/metadata/namespace").to_string();
            let name = text(o, "/metadata/name").to_string();
            match text(o, "/kind") {
                "Pod" => created
                    .pods
                    .push((ns, Some(name), labels(o.pointer("/metadata/labels")))),
                "Service" => created.services.push((ns, name)),
                kind if WORKLOADS.contains(&kind) => created.pods.push((
                    ns,
                    None,
                    labels(o.pointer("/spec/template/metadata/labels")),
                )),
                _ => {}
            }
        }
        created
    }

    /// Whether a pod reference (`name`, `ns/name`, `selector`,
    /// `ns/selector`) can match a pod the manifests make.
    fn pod(&self, reference: &str) -> Result<(), String> {
        let (ns, rest) = reference.split_once('/').unwrap_or(("default", reference));
        if SYSTEM_NAMESPACES.contains(&ns) {
            return Ok(());
        }
        let in_ns = self.pods.iter().filter(|(n, _, _)| n == ns);
        if is_selector(rest) {
            let selector = LabelSelector::parse(rest).map_err(|e| e.to_string())?;
            if in_ns.clone().any(|(_, _, l)| selector.matches(l)) {
                return Ok(());
            }
            return Err(format!(
                "no Pod or pod template in namespace {ns} has labels matching {rest:?}"
            ));
        }
        if in_ns
            .clone()
            .any(|(_, name, _)| name.as_deref() == Some(rest))
        {
            return Ok(());
        }
        Err(format!(
            "no Pod named {rest:?} in namespace {ns} (pods of a Deployment get generated names: name them by a label selector such as \"app=web\")"
        ))
    }

    fn service(&self, reference: &str) -> Result<(), String> {
        let (ns, name) = reference.split_once('/').unwrap_or(("default", reference));
        if SYSTEM_NAMESPACES.contains(&ns)
            || self.services.iter().any(|(n, s)| n == ns && s == name)
        {
            return Ok(());
        }
        Err(format!("no Service {name:?} in namespace {ns}"))
    }
}

/// Checks every expectation's references against `objects` (the
/// scenario's manifests, namespaces defaulted). The error names the
/// expectation's field: `expect[2].backend: no Service "shop" ...`.
pub fn check(scenario: &Scenario, objects: &[Value]) -> Result<(), String> {
    let created = Created::of(objects);
    for (i, e) in scenario.expect.iter().enumerate() {
        let at = |field: &str, result: Result<(), String>| {
            result.map_err(|reason| {
                format!("expect[{i}].{field}: {reason}, among the objects the scenario's manifests create")
            })
        };
        match e {
            Expectation::Reachability { reachability: r } => {
                at("reachability.from", created.pod(&r.from))?;
                if r.to.parse::<std::net::Ipv4Addr>().is_err() {
                    at("reachability.to", created.pod(&r.to))?;
                }
            }
            Expectation::Matrix { matrix: m } => {
                for (j, ns) in m.namespaces.iter().enumerate() {
                    if !created.pods.iter().any(|(n, _, _)| n == ns) {
                        at(
                            &format!("matrix.namespaces[{j}]"),
                            Err(format!("no Pod or pod template in namespace {ns}")),
                        )?;
                    }
                }
            }
            Expectation::Dns(d) => {
                at("from", created.pod(&d.from))?;
                for (j, answer) in d.answers.iter().flatten().enumerate() {
                    let field = format!("answers[{j}]");
                    if let Some(svc) = answer.strip_prefix("service:") {
                        at(&field, created.service(svc))?;
                    } else if let Some(pods) = answer.strip_prefix("pods:") {
                        at(&field, created.pod(pods))?;
                    }
                }
            }
            Expectation::Http(h) => {
                if h.from != "host" {
                    at("from", created.pod(&h.from))?;
                }
                if let Some(backend) = &h.backend {
                    at("backend", created.service(backend))?;
                }
            }
            // Judged over a flow, which names no object.
            Expectation::Windowed(_) => {}
        }
    }
    for (i, t) in scenario.traffic.iter().enumerate() {
        if let super::plan::Source::Pods(reference) = t.source() {
            created.pod(&reference).map_err(|reason| {
                format!(
                    "traffic[{i}].from: {reason}, among the objects the scenario's manifests create"
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scenario::schema::parse;

    fn objects() -> Vec<Value> {
        vec![
            json!({"kind": "Pod", "metadata": {"name": "client", "namespace": "default", "labels": {"app": "client"}}}),
            json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                   "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
            json!({"kind": "Service", "metadata": {"name": "web", "namespace": "default"}}),
        ]
    }

    fn check_expect(expect: &str, expected: Result<(), &str>) {
        let text = format!("name: t\ncluster: {{nodes: 1}}\nexpect:\n  - {expect}\n");
        let scenario = parse("t.yaml", &text).unwrap();
        let got = check(&scenario, &objects());
        match expected {
            Ok(()) => assert_eq!(got, Ok(()), "{expect}"),
            Err(part) => {
                let err = got.expect_err(expect);
                assert!(err.contains(part), "{expect}: {err}");
            }
        }
    }

    #[test]
    fn references_must_name_what_the_manifests_create() {
        check_expect(
            r#"reachability: {from: client, to: "app=web", port: 8080, allowed: true}"#,
            Ok(()),
        );
        check_expect(
            r#"reachability: {from: client, to: 10.0.0.1, port: 80, allowed: false}"#,
            Ok(()),
        );
        check_expect(
            r#"reachability: {from: web, to: client, port: 80, allowed: true}"#,
            Err(r#"expect[0].reachability.from: no Pod named "web" in namespace default"#),
        );
        check_expect(
            r#"{dns: web, from: client, answers: ["service:web", "pods:app=web"]}"#,
            Ok(()),
        );
        check_expect(
            r#"{dns: x, from: client, answers: ["1.2.3.4", "service:shop"]}"#,
            Err(r#"expect[0].answers[1]: no Service "shop" in namespace default"#),
        );
        check_expect(
            r#"{dns: x, from: "app=db", answers: []}"#,
            Err(
                r#"expect[0].from: no Pod or pod template in namespace default has labels matching "app=db""#,
            ),
        );
        check_expect(
            r#"{http: "http://a.example.com/", from: host, resolve: "a.example.com:ingress", backend: shop}"#,
            Err(r#"expect[0].backend: no Service "shop""#),
        );
        check_expect(r#"{http: "http://web/", from: client}"#, Ok(()));
        // What the cluster makes itself is not the manifests' business.
        check_expect(
            r#"{dns: kube-dns.kube-system, from: "kube-system/k8s-app=kube-dns", answers: ["service:kube-system/kube-dns"]}"#,
            Ok(()),
        );
    }
}
