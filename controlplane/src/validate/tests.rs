//! Table-driven: every case goes through `check(object, expected)`.

use serde_json::{Value, json};

use super::*;

mod network_policy;
mod networking;
mod service;

/// What validating an object must give.
enum Expect<'a> {
    /// Accepted; each JSON pointer holds the value (`Value::Null`: absent),
    /// and the warnings are exactly these.
    Valid {
        at: &'a [(&'a str, Value)],
        warnings: &'a [&'a str],
    },
    /// Rejected with exactly these causes, each a path and the start of its
    /// message (the name-format messages are long).
    Invalid(&'a [(&'a str, &'a str)]),
}

#[track_caller]
fn check(object: Value, expected: Expect<'_>) {
    let result = validate(&object);
    match (expected, result) {
        (Expect::Valid { at, warnings }, Ok(v)) => {
            for (pointer, want) in at {
                let got = v.object.pointer(pointer).unwrap_or(&Value::Null);
                assert_eq!(got, want, "at {pointer} in {:#}", v.object);
            }
            let mut got = v.warnings.clone();
            got.sort();
            let mut want: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "warnings");
        }
        (Expect::Invalid(causes), Err(e)) => {
            // Order-insensitive: decode order follows the JSON map's.
            let mut got: Vec<(&str, &str)> = e
                .causes
                .iter()
                .map(|c| (c.path.as_str(), c.message.as_str()))
                .collect();
            let mut causes = causes.to_vec();
            got.sort();
            causes.sort();
            let matches = got.len() == causes.len()
                && got
                    .iter()
                    .zip(&causes)
                    .all(|((gp, gm), (wp, wm))| gp == wp && gm.starts_with(wm));
            assert!(matches, "causes\n  got:  {got:#?}\n  want: {causes:#?}");
        }
        (Expect::Valid { .. }, Err(e)) => panic!("expected valid, got: {e}"),
        (Expect::Invalid(_), Ok(v)) => panic!("expected invalid, got: {:#}", v.object),
    }
}

fn ok<'a>(at: &'a [(&'a str, Value)]) -> Expect<'a> {
    Expect::Valid { at, warnings: &[] }
}

/// `object` with `value` at `pointer`, creating objects on the way.
fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let mut node = &mut object;
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Array(items) => {
                let i: usize = part.parse().unwrap();
                if i == items.len() {
                    items.push(Value::Null);
                }
                &mut items[i]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .unwrap()
                    .entry(part)
                    .or_insert(Value::Null)
            }
        };
    }
    *node = value;
    object
}

fn without(mut object: Value, pointer: &str) -> Value {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(last);
    object
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "app",
            "image": "nginx:1.27",
            "ports": [{"name": "http", "containerPort": 80}],
        }]},
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}, "creationTimestamp": null},
                "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            },
        },
    })
}

fn replica_set() -> Value {
    let mut rs = deployment();
    rs["kind"] = json!("ReplicaSet");
    rs
}

fn link() -> Value {
    json!({
        "apiVersion": "podnet.io/v1alpha1",
        "kind": "Link",
        "metadata": {"name": "node-1.node-2"},
        "spec": {"from": "node-1", "to": "node-2", "delay": "20ms", "loss": "1%", "partition": false},
    })
}

const C0: &str = "/spec/containers/0";
const KNOWN: &str = "podnet serves v1/Namespace, v1/Node, v1/Pod, apps/v1/Deployment, apps/v1/ReplicaSet, v1/Service, discovery.k8s.io/v1/EndpointSlice, v1/Endpoints, networking.k8s.io/v1/Ingress, networking.k8s.io/v1/IngressClass, networking.k8s.io/v1/NetworkPolicy, v1/Secret, v1/Event, podnet.io/v1alpha1/Link";
const PORT_RANGE: &str = "Invalid value: 70000: must be between 1 and 65535, inclusive";

#[test]
fn pod_is_accepted_with_api_server_defaults() {
    check(
        pod(),
        ok(&[
            ("/metadata/namespace", json!("default")),
            ("/spec/restartPolicy", json!("Always")),
            ("/spec/dnsPolicy", json!("ClusterFirst")),
            ("/spec/terminationGracePeriodSeconds", json!(30)),
            ("/spec/schedulerName", json!("default-scheduler")),
            ("/spec/securityContext", json!({})),
            ("/spec/enableServiceLinks", json!(true)),
            ("/spec/containers/0/ports/0/protocol", json!("TCP")),
            // Not host networking: the port is the pod's only.
            ("/spec/containers/0/ports/0/hostPort", Value::Null),
            ("/spec/containers/0/imagePullPolicy", json!("IfNotPresent")),
            (
                "/spec/containers/0/terminationMessagePath",
                json!("/dev/termination-log"),
            ),
            ("/spec/containers/0/terminationMessagePolicy", json!("File")),
            ("/status/phase", json!("Pending")),
            ("/status/qosClass", json!("BestEffort")),
            // Never generated here: the registry owns them.
            ("/metadata/uid", Value::Null),
            ("/metadata/resourceVersion", Value::Null),
            ("/metadata/creationTimestamp", Value::Null),
        ]),
    );
    // Given server fields and status stay; an explicit choice is not overridden.
    let given = with(
        with(pod(), "/metadata/uid", json!("u-1")),
        "/status",
        json!({"phase": "Running"}),
    );
    let given = with(given, "/spec/containers/0/ports/0/protocol", json!("UDP"));
    check(
        given,
        ok(&[
            ("/metadata/uid", json!("u-1")),
            ("/status/phase", json!("Running")),
            ("/spec/containers/0/ports/0/protocol", json!("UDP")),
        ]),
    );
    let v = validate(&pod()).unwrap();
    assert_eq!(v.key, ObjectKey::new(Kind::Pod, "default", "web"));
}

#[test]
fn pod_defaults_that_templates_do_not_get() {
    // `SetDefaults_Pod`: a host-network pod's container ports are host
    // ports, and service links are on; `SetDefaults_PodSpec` (templates
    // too) gives an empty security context.
    let host = with(pod(), "/spec/hostNetwork", json!(true));
    let host = with(host, "/spec/enableServiceLinks", json!(false));
    let v = validate(&host).unwrap().object;
    assert_eq!(
        v.pointer("/spec/containers/0/ports/0/hostPort"),
        Some(&json!(80))
    );
    assert_eq!(v.pointer("/spec/enableServiceLinks"), Some(&json!(false)));
    let deployment = validate(&deployment()).unwrap().object;
    let template = deployment.pointer("/spec/template/spec").unwrap();
    assert_eq!(template.get("securityContext"), Some(&json!({})));
    assert_eq!(template.get("enableServiceLinks"), None);
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, policy) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1.2", "IfNotPresent"),
        ("nginx@sha256:0123abcd", "IfNotPresent"),
        ("nginx:1.27", "IfNotPresent"),
    ] {
        check(
            with(pod(), "/spec/containers/0/image", json!(image)),
            ok(&[("/spec/containers/0/imagePullPolicy", json!(policy))]),
        );
    }
    let explicit = with(pod(), "/spec/containers/0/imagePullPolicy", json!("Never"));
    check(
        explicit,
        ok(&[("/spec/containers/0/imagePullPolicy", json!("Never"))]),
    );
}

#[test]
fn probes_and_resources_get_defaults() {
    let p = with(
        pod(),
        "/spec/containers/0/readinessProbe",
        json!({"httpGet": {"port": "http"}}),
    );
    let p = with(
        p,
        "/spec/containers/0/livenessProbe",
        json!({"tcpSocket": {"port": 80}, "periodSeconds": 0}),
    );
    let p = with(
        p,
        "/spec/containers/0/resources",
        json!({"limits": {"cpu": "500m", "memory": "128Mi"}}),
    );
    check(
        p,
        ok(&[
            ("/spec/containers/0/readinessProbe/httpGet/path", json!("/")),
            (
                "/spec/containers/0/readinessProbe/httpGet/scheme",
                json!("HTTP"),
            ),
            ("/spec/containers/0/readinessProbe/timeoutSeconds", json!(1)),
            ("/spec/containers/0/readinessProbe/periodSeconds", json!(10)),
            (
                "/spec/containers/0/readinessProbe/successThreshold",
                json!(1),
            ),
            (
                "/spec/containers/0/readinessProbe/failureThreshold",
                json!(3),
            ),
            // Zero means unset, as in Kubernetes' Go types.
            ("/spec/containers/0/livenessProbe/periodSeconds", json!(10)),
            // Requests default to limits on a Pod, which makes it Guaranteed.
            (
                "/spec/containers/0/resources/requests",
                json!({"cpu": "500m", "memory": "128Mi"}),
            ),
            ("/status/qosClass", json!("Guaranteed")),
        ]),
    );
    let burstable = with(
        pod(),
        "/spec/containers/0/resources",
        json!({"requests": {"cpu": 1}}),
    );
    check(
        burstable,
        ok(&[
            ("/status/qosClass", json!("Burstable")),
            ("/spec/containers/0/resources/requests/cpu", json!("1")),
        ]),
    );
}

#[test]
fn workloads_are_accepted_with_defaults() {
    let template_defaults = [
        ("/spec/template/spec/restartPolicy", json!("Always")),
        ("/spec/template/spec/dnsPolicy", json!("ClusterFirst")),
        (
            "/spec/template/spec/terminationGracePeriodSeconds",
            json!(30),
        ),
        (
            "/spec/template/spec/schedulerName",
            json!("default-scheduler"),
        ),
        (
            "/spec/template/spec/containers/0/ports/0/protocol",
            json!("TCP"),
        ),
        (
            "/spec/template/spec/containers/0/imagePullPolicy",
            json!("Always"),
        ),
        (
            "/spec/template/spec/containers/0/terminationMessagePolicy",
            json!("File"),
        ),
        // A template is not a pod: no status.
        ("/status", Value::Null),
    ];
    let mut at = vec![
        ("/metadata/namespace", json!("shop")),
        ("/spec/replicas", json!(1)),
        (
            "/spec/strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        ),
        ("/spec/revisionHistoryLimit", json!(10)),
        ("/spec/progressDeadlineSeconds", json!(600)),
    ];
    at.extend(template_defaults.iter().cloned());
    check(deployment(), ok(&at));

    let mut at = vec![
        ("/spec/replicas", json!(1)),
        ("/spec/strategy", Value::Null),
    ];
    at.extend(template_defaults.iter().cloned());
    check(replica_set(), ok(&at));

    // A given strategy keeps what it says; a half-given one is completed.
    let d = with(
        deployment(),
        "/spec/strategy",
        json!({"rollingUpdate": {"maxSurge": 1}}),
    );
    check(
        d,
        ok(&[(
            "/spec/strategy/rollingUpdate",
            json!({"maxSurge": 1, "maxUnavailable": "25%"}),
        )]),
    );
    let d = with(deployment(), "/spec/strategy", json!({"type": "Recreate"}));
    check(d, ok(&[("/spec/strategy", json!({"type": "Recreate"}))]));
    let d = with(deployment(), "/spec/replicas", json!(0));
    check(d, ok(&[("/spec/replicas", json!(0))]));
    // matchExpressions select too.
    let d = with(
        deployment(),
        "/spec/selector",
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
    );
    check(d, ok(&[]));
}

#[test]
fn cluster_scoped_kinds_are_accepted() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "namespace": "x"}});
    check(
        ns,
        ok(&[
            ("/metadata/namespace", Value::Null),
            (
                "/metadata/labels",
                json!({"kubernetes.io/metadata.name": "shop"}),
            ),
            ("/status/phase", json!("Active")),
        ]),
    );
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1.zone-a", "namespace": "default", "labels": {"topology.kubernetes.io/zone": "a"}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    check(
        node.clone(),
        ok(&[
            ("/metadata/namespace", Value::Null),
            ("/spec/podCIDRs", json!(["10.244.1.0/24"])),
            ("/status/conditions/0/type", json!("Ready")),
        ]),
    );
    assert_eq!(
        validate(&node).unwrap().key,
        ObjectKey::new(Kind::Node, "", "node-1.zone-a")
    );
    check(
        link(),
        ok(&[
            ("/spec/delay", json!("20ms")),
            ("/metadata/namespace", Value::Null),
        ]),
    );
}

#[test]
fn unknown_kinds_list_what_podnet_serves() {
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"}});
    let err = validate(&budget).unwrap_err();
    assert_eq!(err.causes[0].path, "kind");
    assert!(err.causes[0].message.contains(KNOWN), "{err}");
    assert_eq!(err.kind, "PodDisruptionBudget");

    check(
        with(pod(), "/apiVersion", json!("v2")),
        Expect::Invalid(&[("apiVersion", "unknown kind \"v2/Pod\": podnet serves")]),
    );
    check(
        without(pod(), "/kind"),
        Expect::Invalid(&[("kind", &format!("Required value: {KNOWN}"))]),
    );
    check(
        without(pod(), "/apiVersion"),
        Expect::Invalid(&[("apiVersion", "Required value: podnet serves")]),
    );
    check(
        with(pod(), "/apiVersion", json!(1)),
        Expect::Invalid(&[(
            "apiVersion",
            r#"Invalid value: 1: apiVersion must be a string like "v1" or "apps/v1""#,
        )]),
    );
    check(
        with(pod(), "/kind", json!(["Pod"])),
        Expect::Invalid(&[(
            "kind",
            r#"Invalid value: ["Pod"]: kind must be a string like "Pod""#,
        )]),
    );
    check(
        json!(["not", "an", "object"]),
        Expect::Invalid(&[("", "Invalid value: an object body must be a JSON object")]),
    );
}

#[test]
fn metadata_rules() {
    let subdomain = "Invalid value: \"Web\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is";
    let label = "Invalid value: \"my_ns\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex";
    let long = "x".repeat(64);
    let cases: Vec<(Value, Vec<(&str, String)>)> = vec![
        (
            without(pod(), "/metadata/name"),
            vec![("metadata.name", "Required value: name is required".into())],
        ),
        (
            with(
                without(pod(), "/metadata/name"),
                "/metadata/generateName",
                json!("web-"),
            ),
            vec![(
                "metadata.name",
                "Required value: name is required: podnet does not generate names".into(),
            )],
        ),
        (
            with(pod(), "/metadata/name", json!("Web")),
            vec![("metadata.name", subdomain.into())],
        ),
        (
            with(pod(), "/metadata/namespace", json!("my_ns")),
            vec![("metadata.namespace", label.into())],
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}),
            vec![(
                "metadata.name",
                "Invalid value: \"a.b\": must not contain dots".into(),
            )],
        ),
        (
            with(pod(), "/metadata/labels/app", json!(long)),
            vec![(
                "metadata.labels",
                format!("Invalid value: \"{long}\": must be no more than 63 characters"),
            )],
        ),
        (
            with(pod(), "/metadata/labels/Example.com~1app", json!("x")),
            vec![(
                "metadata.labels",
                "Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain"
                    .into(),
            )],
        ),
        (
            with(pod(), "/metadata/labels/a~1b~1c", json!("x")),
            vec![(
                "metadata.labels",
                "Invalid value: \"a/b/c\": a qualified name must consist of".into(),
            )],
        ),
        (
            with(pod(), "/metadata/labels/app", json!("-web")),
            vec![(
                "metadata.labels",
                "Invalid value: \"-web\": a valid label must be an empty string or consist of"
                    .into(),
            )],
        ),
        (
            with(
                pod(),
                "/metadata/annotations",
                json!({"bad key": "x", "example.com/ok": "y"}),
            ),
            vec![(
                "metadata.annotations",
                "Invalid value: \"bad key\": name part must consist of".into(),
            )],
        ),
    ];
    for (object, causes) in cases {
        let causes: Vec<(&str, &str)> = causes.iter().map(|(p, m)| (*p, m.as_str())).collect();
        check(object, Expect::Invalid(&causes));
    }
    // Escaped `/` in the pointer above is JSON-pointer syntax; make sure `with`
    // put the key where intended.
    let ok_prefixed = with(
        pod(),
        "/metadata/labels/app.kubernetes.io~1name",
        json!("web"),
    );
    check(
        ok_prefixed,
        ok(&[("/metadata/labels/app.kubernetes.io~1name", json!("web"))]),
    );
}

#[test]
fn pod_spec_rules() {
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            with(
                pod(),
                "/spec/containers/0/ports/0/containerPort",
                json!(70000),
            ),
            vec![(
                "spec.containers[0].ports[0].containerPort",
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/containerPort", json!(0)),
            vec![(
                "spec.containers[0].ports[0].containerPort",
                "Required value",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/protocol", json!("ICMP")),
            vec![(
                "spec.containers[0].ports[0].protocol",
                "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/name", json!("http--alt")),
            vec![(
                "spec.containers[0].ports[0].name",
                "Invalid value: \"http--alt\": must not contain consecutive hyphens",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/name", json!("8080")),
            vec![(
                "spec.containers[0].ports[0].name",
                "Invalid value: \"8080\": must contain at least one letter (a-z)",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/name", json!("-http")),
            vec![(
                "spec.containers[0].ports[0].name",
                "Invalid value: \"-http\": must not begin or end with a hyphen",
            )],
        ),
        (
            with(
                pod(),
                "/spec/containers/0/ports/0/name",
                json!("a-very-long-port-name"),
            ),
            vec![(
                "spec.containers[0].ports[0].name",
                "Invalid value: \"a-very-long-port-name\": must be no more than 15 characters",
            )],
        ),
        (
            with(pod(), "/spec/containers/0/ports/0/name", json!("Http")),
            vec![(
                "spec.containers[0].ports[0].name",
                "Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            )],
        ),
        (
            with(
                pod(),
                "/spec/containers/0/ports/1",
                json!({"name": "http", "containerPort": 81}),
            ),
            vec![(
                "spec.containers[0].ports[1].name",
                "Duplicate value: \"http\"",
            )],
        ),
        (
            with(pod(), "/spec/containers", json!([])),
            vec![("spec.containers", "Required value")],
        ),
        (
            with(pod(), "/spec/containers/0/name", json!("App")),
            vec![(
                "spec.containers[0].name",
                "Invalid value: \"App\": a lowercase RFC 1123 label",
            )],
        ),
        (
            with(
                pod(),
                "/spec/containers/1",
                json!({"name": "app", "image": "busybox"}),
            ),
            vec![("spec.containers[1].name", "Duplicate value: \"app\"")],
        ),
        (
            without(pod(), "/spec/containers/0/image"),
            vec![("spec.containers[0].image", "Required value")],
        ),
        (
            with(pod(), "/spec/containers/0/image", json!(" nginx")),
            vec![(
                "spec.containers[0].image",
                "Invalid value: \" nginx\": must not have leading or trailing whitespace",
            )],
        ),
        (
            with(
                pod(),
                "/spec/containers/0/imagePullPolicy",
                json!("Sometimes"),
            ),
            vec![(
                "spec.containers[0].imagePullPolicy",
                "Unsupported value: \"Sometimes\"",
            )],
        ),
        (
            with(pod(), "/spec/restartPolicy", json!("Sometimes")),
            vec![(
                "spec.restartPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            )],
        ),
        (
            with(pod(), "/spec/dnsPolicy", json!("None")),
            vec![(
                "spec.dnsConfig",
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            )],
        ),
        (
            with(
                with(pod(), "/spec/dnsPolicy", json!("None")),
                "/spec/dnsConfig",
                json!({"searches": ["svc.cluster.local"]}),
            ),
            vec![(
                "spec.dnsConfig.nameservers",
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            )],
        ),
        (
            with(
                pod(),
                "/spec/dnsConfig",
                json!({
                    "nameservers": ["10.0.0.1", "dns.example", "10.0.0.3", "10.0.0.4"],
                    "searches": ["Bad_Domain", "ok.example."],
                    "options": [{"name": "ndots", "value": "2"}, {"value": "1"}],
                }),
            ),
            vec![
                (
                    "spec.dnsConfig.nameservers",
                    "Invalid value: [\"10.0.0.1\",\"dns.example\",\"10.0.0.3\",\"10.0.0.4\"]: must not have more than 3 nameservers",
                ),
                (
                    "spec.dnsConfig.nameservers[1]",
                    "Invalid value: \"dns.example\": must be a valid IP address",
                ),
                (
                    "spec.dnsConfig.searches[0]",
                    "Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain",
                ),
                (
                    "spec.dnsConfig.options[1]",
                    "Required value: must not be empty",
                ),
            ],
        ),
        (
            with(pod(), "/spec/nodeSelector", json!({"bad key": "x"})),
            vec![(
                "spec.nodeSelector",
                "Invalid value: \"bad key\": name part must consist of alphanumeric characters",
            )],
        ),
        (
            with(pod(), "/spec/nodeSelector", json!({"disk": "fast ssd"})),
            vec![(
                "spec.nodeSelector",
                "Invalid value: \"fast ssd\": a valid label must be",
            )],
        ),
        (
            with(pod(), "/spec/nodeName", json!("Node_1")),
            vec![(
                "spec.nodeName",
                "Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain",
            )],
        ),
        (
            with(pod(), "/spec/terminationGracePeriodSeconds", json!(-5)),
            vec![(
                "spec.terminationGracePeriodSeconds",
                "Invalid value: -5: must be greater than or equal to 0",
            )],
        ),
        (
            with(
                pod(),
                "/spec/containers/0/env",
                json!([{"name": "A=B", "value": "x"}, {"name": "", "value": "y"}]),
            ),
            vec![
                (
                    "spec.containers[0].env[0].name",
                    "Invalid value: \"A=B\": a valid environment variable name",
                ),
                ("spec.containers[0].env[1].name", "Required value"),
            ],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(&causes));
    }
    // Port names are unique per container, not per pod.
    let two = with(
        pod(),
        "/spec/containers/1",
        json!({"name": "sidecar", "image": "envoy", "ports": [{"name": "http", "containerPort": 81}]}),
    );
    check(two, ok(&[]));
}

#[test]
fn probe_rules() {
    let probe = |field: &str, probe: Value| with(pod(), &format!("{C0}/{field}"), probe);
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            probe("readinessProbe", json!({"periodSeconds": 5})),
            vec![(
                "spec.containers[0].readinessProbe",
                "Required value: must specify a handler type",
            )],
        ),
        (
            probe(
                "readinessProbe",
                json!({"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}),
            ),
            vec![(
                "spec.containers[0].readinessProbe.tcpSocket",
                "Forbidden: may not specify more than 1 handler type",
            )],
        ),
        (
            probe("livenessProbe", json!({"exec": {"command": ["true"]}})),
            vec![(
                "spec.containers[0].livenessProbe.exec",
                "Forbidden: podnet runs httpGet and tcpSocket probes only",
            )],
        ),
        (
            probe("startupProbe", json!({"grpc": {"port": 9000}})),
            vec![(
                "spec.containers[0].startupProbe.grpc",
                "Forbidden: podnet runs httpGet and tcpSocket probes only",
            )],
        ),
        (
            probe("readinessProbe", json!({"httpGet": {"port": "metrics"}})),
            vec![(
                "spec.containers[0].readinessProbe.httpGet.port",
                "Invalid value: \"metrics\": must be the name of one of this container's ports (named ports: http)",
            )],
        ),
        (
            probe("readinessProbe", json!({"tcpSocket": {"port": 0}})),
            vec![(
                "spec.containers[0].readinessProbe.tcpSocket.port",
                "Invalid value: 0: must be between 1 and 65535",
            )],
        ),
        (
            probe(
                "readinessProbe",
                json!({"httpGet": {"port": 80, "scheme": "FTP"}}),
            ),
            vec![(
                "spec.containers[0].readinessProbe.httpGet.scheme",
                "Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
            )],
        ),
        (
            probe(
                "readinessProbe",
                json!({"tcpSocket": {"port": 80}, "periodSeconds": -1, "initialDelaySeconds": -2}),
            ),
            vec![
                (
                    "spec.containers[0].readinessProbe.initialDelaySeconds",
                    "Invalid value: -2: must be greater than or equal to 0",
                ),
                (
                    "spec.containers[0].readinessProbe.periodSeconds",
                    "Invalid value: -1: must be greater than or equal to 0",
                ),
            ],
        ),
        (
            probe(
                "livenessProbe",
                json!({"tcpSocket": {"port": "http"}, "successThreshold": 2}),
            ),
            vec![(
                "spec.containers[0].livenessProbe.successThreshold",
                "Invalid value: 2: must be 1",
            )],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(&causes));
    }
    // Readiness may need several successes.
    check(
        probe(
            "readinessProbe",
            json!({"tcpSocket": {"port": "http"}, "successThreshold": 2}),
        ),
        ok(&[]),
    );
}

#[test]
fn resource_rules() {
    let resources = |r: Value| with(pod(), &format!("{C0}/resources"), r);
    check(
        resources(json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
        Expect::Invalid(&[(
            "spec.containers[0].resources.requests",
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        )]),
    );
    check(
        resources(json!({"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}})),
        Expect::Invalid(&[(
            "spec.containers[0].resources.requests",
            "Invalid value: \"1Gi\": must be less than or equal to memory limit of 512Mi",
        )]),
    );
    check(
        resources(json!({"limits": {"memory": "lots", "cpu": "-1"}})),
        Expect::Invalid(&[
            (
                "spec.containers[0].resources.limits[cpu]",
                "Invalid value: \"-1\": must be greater than or equal to 0",
            ),
            (
                "spec.containers[0].resources.limits[memory]",
                "Invalid value: \"lots\": must be a quantity",
            ),
        ]),
    );
    check(
        resources(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "0.5"}})),
        ok(&[]),
    );
}

#[test]
fn workload_rules() {
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            with(
                deployment(),
                "/spec/template/metadata/labels",
                json!({"app": "db"}),
            ),
            vec![(
                "spec.template.metadata.labels",
                "Invalid value: {\"app\":\"db\"}: `selector` does not match template `labels`",
            )],
        ),
        (
            with(replica_set(), "/spec/template/metadata", json!({})),
            vec![(
                "spec.template.metadata.labels",
                "Invalid value: {}: `selector` does not match template `labels`",
            )],
        ),
        (
            without(deployment(), "/spec/selector"),
            vec![("spec.selector", "Required value")],
        ),
        (
            with(deployment(), "/spec/selector", json!({})),
            vec![(
                "spec.selector",
                "Invalid value: {}: empty selector is invalid for deployment",
            )],
        ),
        (
            without(deployment(), "/spec"),
            vec![
                ("spec.selector", "Required value"),
                ("spec.template.spec.containers", "Required value"),
            ],
        ),
        (
            with(
                deployment(),
                "/spec/selector",
                json!({"matchExpressions": [{"key": "app", "operator": "Has"}]}),
            ),
            vec![(
                "spec.selector.matchExpressions[0].operator",
                "Invalid value: \"Has\": not a valid selector operator",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/selector",
                json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            ),
            vec![(
                "spec.selector.matchExpressions[0].values",
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            )],
        ),
        (
            with(deployment(), "/spec/replicas", json!(-1)),
            vec![(
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            )],
        ),
        (
            with(replica_set(), "/spec/replicas", json!(-1)),
            vec![(
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/template/spec/restartPolicy",
                json!("Never"),
            ),
            vec![(
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/template/spec/containers/0/ports/0/containerPort",
                json!(70000),
            ),
            vec![(
                "spec.template.spec.containers[0].ports[0].containerPort",
                PORT_RANGE,
            )],
        ),
        (
            with(
                deployment(),
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": 0, "maxUnavailable": "0%"}),
            ),
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/strategy/rollingUpdate",
                json!({"maxUnavailable": "150%"}),
            ),
            vec![(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: \"150%\": must not be greater than 100%",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/strategy/rollingUpdate",
                json!({"maxSurge": "lots"}),
            ),
            vec![(
                "spec.strategy.rollingUpdate.maxSurge",
                "Invalid value: \"lots\": must be an integer or percentage (e.g '5%')",
            )],
        ),
        (
            with(
                deployment(),
                "/spec/strategy",
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            ),
            vec![(
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )],
        ),
        (
            with(deployment(), "/spec/strategy/type", json!("BlueGreen")),
            vec![(
                "spec.strategy.type",
                "Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"",
            )],
        ),
        (
            with(deployment(), "/spec/progressDeadlineSeconds", json!(10)),
            vec![],
        ),
        (
            with(
                with(deployment(), "/spec/progressDeadlineSeconds", json!(10)),
                "/spec/minReadySeconds",
                json!(10),
            ),
            vec![(
                "spec.progressDeadlineSeconds",
                "Invalid value: 10: must be greater than minReadySeconds",
            )],
        ),
    ];
    for (object, causes) in cases {
        if causes.is_empty() {
            check(object, ok(&[]));
        } else {
            check(object, Expect::Invalid(&causes));
        }
    }
}

#[test]
fn link_rules() {
    check(
        with(link(), "/metadata/name", json!("node-1.node-3")),
        Expect::Invalid(&[(
            "metadata.name",
            "Invalid value: \"node-1.node-3\": must be \"node-1.node-2\"",
        )]),
    );
    check(
        with(
            with(link(), "/spec/loss", json!("150%")),
            "/spec/delay",
            json!("20"),
        ),
        Expect::Invalid(&[
            ("spec.delay", "Invalid value: \"20\": \"20\" has no unit"),
            (
                "spec.loss",
                "Invalid value: \"150%\": \"150%\" is outside 0%..100%",
            ),
        ]),
    );
    check(
        with(link(), "/spec/bandwidth", json!("1Gbit")),
        Expect::Invalid(&[(
            "spec.bandwidth",
            "unknown field `bandwidth`, expected one of",
        )]),
    );
    check(
        with(
            with(link(), "/spec/duplicate", json!("2")),
            "/spec/reorder",
            json!("x%"),
        ),
        Expect::Invalid(&[
            ("spec.duplicate", "Invalid value: \"2\": \"2\" is outside"),
            (
                "spec.reorder",
                "Invalid value: \"x%\": \"x%\" is not a percentage like 1%",
            ),
        ]),
    );
    check(
        with(
            without(link(), "/spec/delay"),
            "/spec/reorder",
            json!("25%"),
        ),
        Expect::Invalid(&[(
            "spec.reorder",
            "Invalid value: \"25%\": reordering not possible without specifying some delay",
        )]),
    );
    check(
        with(link(), "/spec/partitionMode", json!("Reject")),
        Expect::Invalid(&[(
            "spec.partitionMode",
            "Forbidden: only with spec.partition: true",
        )]),
    );
    check(
        with(
            with(link(), "/spec/partitionMode", json!("Refuse")),
            "/spec/partition",
            json!(true),
        ),
        Expect::Invalid(&[("spec.partitionMode", "unknown variant `Refuse`")]),
    );
    check(
        without(link(), "/spec"),
        Expect::Invalid(&[("spec", "Required value")]),
    );
    check(
        without(link(), "/spec/to"),
        Expect::Invalid(&[("spec.to", "Required value")]),
    );
}

#[test]
fn node_rules() {
    let node = |spec: Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec});
    check(
        node(json!({"podCIDR": "10.244.1.0/33"})),
        Expect::Invalid(&[(
            "spec.podCIDR",
            "Invalid value: \"10.244.1.0/33\": must be a valid CIDR value",
        )]),
    );
    check(
        node(json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.2.0/24"]})),
        Expect::Invalid(&[(
            "spec.podCIDRs",
            "Invalid value: [\"10.244.2.0/24\"]: must start with spec.podCIDR",
        )]),
    );
    check(
        node(json!({"podCIDRs": ["10.244.2.0/24"]})),
        ok(&[("/spec/podCIDR", json!("10.244.2.0/24"))]),
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let p = with(
        pod(),
        "/spec/containers/0/ports/0/containerPort",
        json!(70000),
    );
    let p = with(p, "/spec/containers/0/ports/0/protocol", json!("ICMP"));
    let p = with(p, "/spec/restartPolicy", json!("Sometimes"));
    let p = without(p, "/spec/containers/0/image");
    let err = validate(&p).unwrap_err();
    assert_eq!(err.causes.len(), 4, "{err}");
    assert!(
        err.to_string()
            .starts_with("Pod \"web\" is invalid: [spec.containers[0].image: Required value, "),
        "{err}"
    );

    // A single cause prints like kubectl's 422, without brackets.
    let err = validate(&with(
        pod(),
        "/spec/containers/0/ports/0/containerPort",
        json!(70000),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Pod \"web\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
}

#[test]
fn type_errors_name_their_path() {
    check(
        with(deployment(), "/spec/replicas", json!("x")),
        Expect::Invalid(&[("spec.replicas", "invalid type: string \"x\", expected i32")]),
    );
    check(
        with(
            pod(),
            "/spec/containers/0/ports/0/containerPort",
            json!("80"),
        ),
        Expect::Invalid(&[(
            "spec.containers[0].ports[0].containerPort",
            "invalid type: string \"80\", expected i32",
        )]),
    );
    check(
        with(pod(), "/metadata/labels", json!({"app": 1})),
        Expect::Invalid(&[(
            "metadata.labels.app",
            "invalid type: integer `1`, expected a string",
        )]),
    );
    // Several type errors and a validation error, all at once; nothing is
    // reported about podnet's stand-ins for the undecodable fields.
    let d = with(deployment(), "/spec/replicas", json!("x"));
    let d = without(d, "/spec/template/spec/containers/0/name");
    let d = with(
        d,
        "/spec/template/spec/containers/0/args",
        json!(["--port", 8080]),
    );
    let d = with(
        d,
        "/spec/template/spec/containers/0/ports/0/containerPort",
        json!(70000),
    );
    check(
        d,
        Expect::Invalid(&[
            ("spec.replicas", "invalid type: string \"x\", expected i32"),
            (
                "spec.template.spec.containers[0].args[1]",
                "invalid type: integer `8080`, expected a string",
            ),
            ("spec.template.spec.containers[0].name", "Required value"),
            (
                "spec.template.spec.containers[0].ports[0].containerPort",
                PORT_RANGE,
            ),
        ]),
    );
    check(
        with(pod(), "/spec/containers", json!("app")),
        Expect::Invalid(&[(
            "spec.containers",
            "invalid type: string \"app\", expected a sequence",
        )]),
    );
}

#[test]
fn unknown_fields_are_warned_with_their_path() {
    let p = with(pod(), "/spec/containers/0/imagex", json!("nginx"));
    let p = with(p, "/specs", json!({}));
    let p = with(p, "/metadata/labelz", json!({"a": "b"}));
    check(
        p,
        Expect::Valid {
            at: &[
                ("/spec/containers/0/imagex", Value::Null),
                ("/specs", Value::Null),
            ],
            warnings: &[
                "unknown field \"metadata.labelz\"",
                "unknown field \"spec.containers[0].imagex\"",
                "unknown field \"specs\"",
            ],
        },
    );
    // Also inside fully emulated parts: a typo in a selector or a status.
    let d = with(
        deployment(),
        "/spec/selector/matchLabel",
        json!({"app": "web"}),
    );
    check(
        d,
        Expect::Valid {
            at: &[],
            warnings: &["unknown field \"spec.selector.matchLabel\""],
        },
    );
}

#[test]
fn fields_podnet_does_not_emulate_are_warned_with_their_path() {
    let p = with(
        pod(),
        "/spec/volumes",
        json!([{"name": "data", "emptyDir": {}}]),
    );
    let p = with(
        p,
        "/spec/containers/0/volumeMounts",
        json!([{"name": "data", "mountPath": "/data"}]),
    );
    let p = with(p, "/spec/hostNetwork", json!(true));
    let p = with(
        p,
        "/spec/containers/0/resources",
        json!({"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}}),
    );
    let p = with(
        p,
        "/spec/containers/0/env",
        json!([{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]),
    );
    let p = with(
        p,
        "/spec/containers/0/readinessProbe",
        json!({"httpGet": {"port": 80, "host": "example.com"}}),
    );
    // preStop is emulated, postStart is not.
    let p = with(
        p,
        "/spec/containers/0/lifecycle",
        json!({"preStop": {"exec": {"command": ["sleep", "2"]}}, "postStart": {"exec": {"command": ["true"]}}}),
    );
    // Asking for nothing: no warning.
    let p = with(p, "/spec/hostPID", json!(false));
    let p = with(p, "/spec/securityContext", json!({}));
    let p = with(p, "/spec/tolerations", json!([]));
    check(
        p,
        Expect::Valid {
            // Not emulated is still kept, as Kubernetes would.
            at: &[
                ("/spec/volumes/0/name", json!("data")),
                ("/spec/hostNetwork", json!(true)),
            ],
            warnings: &[
                "spec.containers[0].env[0].valueFrom: not emulated by podnet, ignored",
                "spec.containers[0].lifecycle.postStart: not emulated by podnet, ignored",
                "spec.containers[0].readinessProbe.httpGet.host: not emulated by podnet, ignored",
                "spec.containers[0].resources.requests[ephemeral-storage]: not emulated by podnet, ignored",
                "spec.containers[0].volumeMounts: not emulated by podnet, ignored",
                "spec.hostNetwork: the pod keeps its own pod IP (podnet does not emulate the node's network namespace); only its DNS follows hostNetwork",
                "spec.volumes: not emulated by podnet, ignored",
            ],
        },
    );
    let d = with(
        deployment(),
        "/spec/template/spec/volumes",
        json!([{"name": "data", "emptyDir": {"sizeLimitx": 1}}]),
    );
    let d = with(
        d,
        "/metadata/managedFields",
        json!([{"manager": "kubectl"}]),
    );
    check(
        d,
        Expect::Valid {
            at: &[],
            warnings: &[
                "metadata.managedFields: not emulated by podnet, ignored",
                "spec.template.spec.volumes: not emulated by podnet, ignored",
                "unknown field \"spec.template.spec.volumes[0].emptyDir.sizeLimitx\"",
            ],
        },
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
    // Nothing of a Namespace's spec is emulated: warned at the top.
    check(
        ns,
        Expect::Valid {
            at: &[],
            warnings: &["spec: not emulated by podnet, ignored"],
        },
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}});
    // A cordon is emulated (the scheduler keeps off the node); taints are not.
    check(
        node,
        Expect::Valid {
            at: &[],
            warnings: &["spec.taints: not emulated by podnet, ignored"],
        },
    );
}

#[test]
fn updates_keep_immutable_fields() {
    let stored = |object: Value| validate(&object).unwrap().object;
    let update = |old: &Value, new: Value| validate_update(old, &validate(&new).unwrap());

    let old = stored(pod());
    assert!(
        update(
            &old,
            with(pod(), "/spec/containers/0/image", json!("nginx:1.28"))
        )
        .is_ok()
    );
    let err = update(
        &old,
        with(
            pod(),
            "/spec/containers/0/ports/0/containerPort",
            json!(8080),
        ),
    )
    .unwrap_err();
    assert_eq!(err.causes.len(), 1, "{err}");
    assert_eq!(err.causes[0].path, "spec.containers[0].ports");
    assert!(
        err.causes[0].message.ends_with("field is immutable"),
        "{err}"
    );
    let err = update(&old, with(pod(), "/spec/containers/0/name", json!("main"))).unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "spec.containers[0].name: Invalid value: \"main\": field is immutable"
    );
    let err = update(
        &old,
        with(
            pod(),
            "/spec/containers/1",
            json!({"name": "b", "image": "b"}),
        ),
    )
    .unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    );

    // Binding sets nodeName once.
    let bound = with(pod(), "/spec/nodeName", json!("node-1"));
    assert!(update(&old, bound.clone()).is_ok());
    let old = stored(bound);
    let err = update(&old, with(pod(), "/spec/nodeName", json!("node-2"))).unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "spec.nodeName: Invalid value: \"node-2\": field is immutable"
    );
    assert_eq!(
        update(&old, pod()).unwrap_err().causes[0].path,
        "spec.nodeName"
    );

    let old = stored(deployment());
    assert!(update(&old, with(deployment(), "/spec/replicas", json!(3))).is_ok());
    let moved = with(
        with(
            deployment(),
            "/spec/selector/matchLabels",
            json!({"tier": "front"}),
        ),
        "/spec/template/metadata/labels/tier",
        json!("front"),
    );
    let err = update(&old, moved).unwrap_err();
    assert_eq!(
        err.causes[0].to_string(),
        "spec.selector: Invalid value: {\"matchLabels\":{\"tier\":\"front\"}}: field is immutable"
    );

    let err = update(
        &stored(pod()),
        with(pod(), "/metadata/namespace", json!("other")),
    )
    .unwrap_err();
    assert_eq!(err.causes[0].path, "metadata.namespace");
}

fn containers(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"name": format!("c{i}"), "image": "podnet/http-echo"}))
            .collect(),
    )
}

#[test]
fn a_pod_has_at_most_max_containers() {
    check(
        with(pod(), "/spec/containers", containers(pod::MAX_CONTAINERS)),
        ok(&[]),
    );
    check(
        with(pod(), "/spec/containers", containers(10_000)),
        Expect::Invalid(&[(
            "spec.containers",
            "Too many: 10000: must have at most 100 items",
        )]),
    );
    check(
        with(
            deployment(),
            "/spec/template/spec/containers",
            containers(pod::MAX_CONTAINERS + 1),
        ),
        Expect::Invalid(&[(
            "spec.template.spec.containers",
            "Too many: 101: must have at most 100 items",
        )]),
    );
}

/// `validatePodDNSConfig`'s search-list limits: 32 domains, 2048
/// characters with the spaces; exactly at the limits is valid.
#[test]
fn dns_search_list_limits() {
    // `width` characters: the index, then labels of at most 62 characters.
    let domain = |i: usize, width: usize| -> String {
        format!("{i:02}{}", "x".repeat(width - 2))
            .char_indices()
            .map(|(k, c)| if (k + 1) % 63 == 0 { '.' } else { c })
            .collect()
    };
    let domains = |widths: &[usize]| -> Value {
        json!(
            widths
                .iter()
                .enumerate()
                .map(|(i, w)| domain(i, *w))
                .collect::<Vec<_>>()
        )
    };
    let message = |searches: Value| -> Option<String> {
        let p = with(pod(), "/spec/dnsConfig/searches", searches);
        validate(&p).err().map(|e| {
            assert_eq!(e.causes.len(), 1, "{e}");
            assert_eq!(e.causes[0].path, "spec.dnsConfig.searches");
            e.causes[0].message.clone()
        })
    };
    assert_eq!(message(domains(&[10; 32])), None);
    let too_many = message(domains(&[10; 33])).unwrap();
    assert!(
        too_many.ends_with(": must not have more than 32 search paths"),
        "{too_many}"
    );
    // Eight of 226 characters, one of 232 and eight spaces: 2048.
    let mut widths = vec![226; 8];
    widths.push(232);
    assert_eq!(message(domains(&widths)), None);
    widths[8] = 233;
    let too_long = message(domains(&widths)).unwrap();
    assert!(
        too_long.ends_with(
            ": must not have more than 2048 characters (including spaces) in the search list"
        ),
        "{too_long}"
    );
}
