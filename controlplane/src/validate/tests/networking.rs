//! Ingresses, IngressClasses and Secrets, through the same `check`.

use serde_json::{Value, json};

use super::{Expect, check, ok, with, without};
use crate::validate::{validate, validate_update};

/// Two hosts (one a wildcard), every path type, ports by number and by
/// name, and TLS.
fn ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "ingressClassName": "podnet",
            "tls": [{"hosts": ["shop.example.com", "*.apps.example.com"], "secretName": "shop-tls"}],
            "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/api/v1/health", "pathType": "Exact",
                     "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                ]}},
                {"host": "*.apps.example.com", "http": {"paths": [
                    {"path": "/static", "pathType": "ImplementationSpecific",
                     "backend": {"service": {"name": "static", "port": {"number": 8080}}}},
                ]}},
            ],
        },
    })
}

fn ingress_class() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": "podnet",
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
        },
        "spec": {"controller": "podnet.io/ingress-controller"},
    })
}

/// `cert` and `key`, base64.
fn tls_secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    })
}

/// The first path of the first rule.
const P0: &str = "/spec/rules/0/http/paths/0";
const F0: &str = "spec.rules[0].http.paths[0]";

/// `Invalid value: "v": ` and the start of the subdomain message.
macro_rules! not_subdomain {
    ($value:literal) => {
        concat!(
            "Invalid value: \"",
            $value,
            "\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
        )
    };
}

macro_rules! not_wildcard {
    ($value:literal) => {
        concat!(
            "Invalid value: \"",
            $value,
            "\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain"
        )
    };
}
const CLASS_ANNOTATION: &str = "/metadata/annotations/kubernetes.io~1ingress.class";
const NOT_USED: &str = "Secrets (for Ingress TLS): this";

#[test]
fn ingress_is_accepted_as_written() {
    let object = ingress();
    check(
        object.clone(),
        ok(&[
            ("/metadata/namespace", json!("shop")),
            ("/spec", object["spec"].clone()),
        ]),
    );
    // ImplementationSpecific leaves the path to the controller, even none.
    check(
        without(ingress(), "/spec/rules/1/http/paths/0/path"),
        ok(&[("/spec/rules/1/http/paths/0/path", Value::Null)]),
    );
    // A default backend alone, in the default namespace; rules without
    // http (a host with nothing routed) are valid too.
    let default_only = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "catch-all"},
        "spec": {
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
            "rules": [{"host": "shop.example.com"}],
        },
    });
    check(
        default_only,
        ok(&[("/metadata/namespace", json!("default"))]),
    );
    // `#` is not among upstream's invalid path sequences.
    check(
        with(ingress(), &format!("{P0}/path"), json!("/a#b")),
        ok(&[]),
    );
}

#[test]
fn ingress_rules() {
    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (
            without(ingress(), "/spec/rules"),
            &[(
                "spec",
                "Invalid value: null: either `defaultBackend` or `rules` must be specified",
            )],
        ),
        (
            with(without(ingress(), "/spec/tls"), "/spec/rules", json!([])),
            &[(
                "spec",
                "Invalid value: []: either `defaultBackend` or `rules` must be specified",
            )],
        ),
        (
            with(ingress(), &format!("{P0}/pathType"), json!("Regex")),
            &[(
                "spec.rules[0].http.paths[0].pathType",
                "Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            )],
        ),
        // Nothing else of a path without a type is checked.
        (
            with(
                without(ingress(), &format!("{P0}/pathType")),
                &format!("{P0}/path"),
                json!("foo"),
            ),
            &[(
                "spec.rules[0].http.paths[0].pathType",
                "Required value: pathType must be specified",
            )],
        ),
        (
            with(ingress(), &format!("{P0}/path"), json!("foo")),
            &[(
                "spec.rules[0].http.paths[0].path",
                "Invalid value: \"foo\": must be an absolute path",
            )],
        ),
        (
            without(ingress(), "/spec/rules/0/http/paths/1/path"),
            &[(
                "spec.rules[0].http.paths[1].path",
                "Invalid value: \"\": must be an absolute path",
            )],
        ),
        (
            with(
                ingress(),
                "/spec/rules/1/http/paths/0/path",
                json!("static"),
            ),
            &[(
                "spec.rules[1].http.paths[0].path",
                "Invalid value: \"static\": must be an absolute path",
            )],
        ),
        (
            with(ingress(), "/spec/rules/0/http/paths", json!([])),
            &[("spec.rules[0].http.paths", "Required value")],
        ),
        (
            with(ingress(), "/spec/rules/0/host", json!("Bad_Host")),
            &[("spec.rules[0].host", not_subdomain!("Bad_Host"))],
        ),
        (
            with(ingress(), "/spec/rules/0/host", json!("10.0.0.1")),
            &[(
                "spec.rules[0].host",
                "Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            )],
        ),
        // Go parses leading zeros too.
        (
            with(ingress(), "/spec/rules/0/host", json!("010.0.0.1")),
            &[(
                "spec.rules[0].host",
                "Invalid value: \"010.0.0.1\": must be a DNS name, not an IP address",
            )],
        ),
        (
            with(ingress(), "/spec/rules/0/host", json!("*")),
            &[("spec.rules[0].host", not_wildcard!("*"))],
        ),
        (
            with(ingress(), "/spec/rules/0/host", json!("shop.*.example.com")),
            &[(
                "spec.rules[0].host",
                "Invalid value: \"shop.*.example.com\": a wildcard",
            )],
        ),
        (
            with(ingress(), "/spec/rules/0/host", json!("*.*.example.com")),
            &[(
                "spec.rules[0].host",
                "Invalid value: \"*.*.example.com\": a wildcard",
            )],
        ),
        (
            with(ingress(), "/spec/ingressClassName", json!("Podnet")),
            &[("spec.ingressClassName", not_subdomain!("Podnet"))],
        ),
        (
            with(ingress(), "/spec/tls/0/hosts/1", json!("Bad_Host")),
            &[("spec.tls[0].hosts[1]", not_subdomain!("Bad_Host"))],
        ),
        (
            with(ingress(), "/spec/tls/0/hosts/1", json!("*.")),
            &[("spec.tls[0].hosts[1]", not_wildcard!("*."))],
        ),
        (
            with(ingress(), "/spec/tls/0/secretName", json!("Shop_TLS")),
            &[("spec.tls[0].secretName", not_subdomain!("Shop_TLS"))],
        ),
        (
            with(ingress(), CLASS_ANNOTATION, json!("nginx")),
            &[(
                "annotations.kubernetes.io/ingress.class",
                "Invalid value: \"nginx\": must match `ingressClassName` when both are specified",
            )],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(causes));
    }
}

#[test]
fn ingress_paths_that_proxies_would_rewrite_are_rejected() {
    let cases: &[(&str, &str)] = &[
        ("/a//b", "must not contain '//'"),
        ("/a/./b", "must not contain '/./'"),
        ("/a/../b", "must not contain '/../'"),
        ("/a%2fb", "must not contain '%2f'"),
        ("/a%2Fb", "must not contain '%2F'"),
        ("/a/..", "cannot end with '/..'"),
        ("/a/.", "cannot end with '/.'"),
    ];
    for path_type in ["Exact", "Prefix"] {
        for (path, message) in cases {
            let object = with(
                with(ingress(), &format!("{P0}/path"), json!(path)),
                &format!("{P0}/pathType"),
                json!(path_type),
            );
            let message = format!("Invalid value: {path:?}: {message}");
            check(
                object,
                Expect::Invalid(&[(&format!("{F0}.path"), &message)]),
            );
        }
    }
    // The controller's own matching decides for ImplementationSpecific.
    let specific = with(ingress(), "/spec/rules/1/http/paths/0/path", json!("/a//b"));
    check(specific, ok(&[]));
}

#[test]
fn ingress_backend_rules() {
    let backend = format!("{P0}/backend");
    let field = format!("{F0}.backend");
    let resource = json!({"apiGroup": "storage.example.com", "kind": "Bucket", "name": "assets"});
    let cases: Vec<(Value, Vec<(String, &str)>)> = vec![
        (
            with(ingress(), &backend, json!({})),
            vec![(
                field.clone(),
                "Invalid value: \"\": resource or service backend is required",
            )],
        ),
        (
            with(ingress(), &format!("{backend}/resource"), resource.clone()),
            vec![(
                field.clone(),
                "Invalid value: \"\": cannot set both resource and service backends",
            )],
        ),
        (
            without(ingress(), &format!("{backend}/service/name")),
            vec![(format!("{field}.service.name"), "Required value")],
        ),
        (
            with(ingress(), &format!("{backend}/service/name"), json!("1web")),
            vec![(
                format!("{field}.service.name"),
                "Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character",
            )],
        ),
        (
            with(
                ingress(),
                &format!("{backend}/service/port/name"),
                json!("http"),
            ),
            vec![(
                field.clone(),
                "Invalid value: \"\": cannot set both port name & port number",
            )],
        ),
        (
            without(ingress(), &format!("{backend}/service/port")),
            vec![(
                field.clone(),
                "Required value: port name or number is required",
            )],
        ),
        (
            with(
                ingress(),
                &format!("{backend}/service/port/number"),
                json!(0),
            ),
            vec![(
                field.clone(),
                "Required value: port name or number is required",
            )],
        ),
        (
            with(
                ingress(),
                &format!("{backend}/service/port/number"),
                json!(70000),
            ),
            vec![(
                format!("{field}.service.port.number"),
                "Invalid value: 70000: must be between 1 and 65535, inclusive",
            )],
        ),
        (
            with(
                ingress(),
                "/spec/rules/0/http/paths/1/backend/service/port/name",
                json!("Http"),
            ),
            vec![(
                "spec.rules[0].http.paths[1].backend.service.port.name".to_string(),
                "Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            )],
        ),
        (
            with(
                ingress(),
                &backend,
                json!({"resource": {"apiGroup": "Bad_Group", "kind": "", "name": "a/b"}}),
            ),
            vec![
                (
                    format!("{field}.resource.apiGroup"),
                    "Invalid value: \"Bad_Group\": a lowercase RFC 1123 subdomain",
                ),
                (format!("{field}.resource.kind"), "Required value"),
                (
                    format!("{field}.resource.name"),
                    "Invalid value: \"a/b\": may not contain '/'",
                ),
            ],
        ),
        (
            with(
                ingress(),
                "/spec/defaultBackend",
                json!({"service": {"name": "web"}}),
            ),
            vec![(
                "spec.defaultBackend".to_string(),
                "Required value: port name or number is required",
            )],
        ),
    ];
    for (object, causes) in cases {
        let causes: Vec<(&str, &str)> = causes.iter().map(|(p, m)| (p.as_str(), *m)).collect();
        check(object, Expect::Invalid(&causes));
    }
}

#[test]
fn ingress_warnings() {
    // A resource backend is valid Kubernetes that podnet does not route.
    let resource = with(
        ingress(),
        "/spec/defaultBackend",
        json!({"resource": {"apiGroup": "storage.example.com", "kind": "Bucket", "name": "assets"}}),
    );
    check(
        resource,
        Expect::Valid {
            at: &[],
            warnings: &["spec.defaultBackend.resource: not emulated by podnet, ignored"],
        },
    );
    // The annotation alone: the API server's deprecation warning.
    let annotated = with(
        without(ingress(), "/spec/ingressClassName"),
        CLASS_ANNOTATION,
        json!("podnet"),
    );
    check(
        annotated,
        Expect::Valid {
            at: &[],
            warnings: &[
                "metadata.annotations[kubernetes.io/ingress.class]: annotation \"kubernetes.io/ingress.class\" is deprecated, please use 'spec.ingressClassName' instead",
            ],
        },
    );
    // Both, and they agree: nothing to say, as upstream.
    check(with(ingress(), CLASS_ANNOTATION, json!("podnet")), ok(&[]));
    let typo = with(
        ingress(),
        &format!("{P0}/backend/service/portNumber"),
        json!(80),
    );
    check(
        typo,
        Expect::Valid {
            at: &[],
            warnings: &["unknown field \"spec.rules[0].http.paths[0].backend.service.portNumber\""],
        },
    );
}

#[test]
fn ingress_class_rules() {
    check(
        ingress_class(),
        ok(&[
            ("/metadata/namespace", Value::Null),
            ("/spec/controller", json!("podnet.io/ingress-controller")),
        ]),
    );
    let controller = "/spec/controller";
    let long = format!("podnet.io/{}", "a".repeat(241));
    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (
            without(ingress_class(), controller),
            &[("spec.controller", "Required value")],
        ),
        (
            without(ingress_class(), "/spec"),
            &[("spec.controller", "Required value")],
        ),
        (
            with(ingress_class(), controller, json!("podnet")),
            &[(
                "spec.controller",
                "Invalid value: \"podnet\": must be a domain-prefixed path (such as \"acme.io/foo\")",
            )],
        ),
        (
            with(ingress_class(), controller, json!("/ingress")),
            &[(
                "spec.controller",
                "Invalid value: \"/ingress\": must be a domain-prefixed path",
            )],
        ),
        (
            with(ingress_class(), controller, json!("podnet.io/")),
            &[(
                "spec.controller",
                "Invalid value: \"podnet.io/\": must be a domain-prefixed path",
            )],
        ),
        (
            with(ingress_class(), controller, json!("Podnet.io/ingress")),
            &[("spec.controller", not_subdomain!("Podnet.io"))],
        ),
        (
            with(ingress_class(), controller, json!("podnet.io/in gress")),
            &[(
                "spec.controller",
                "Invalid value: \"in gress\": Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
            )],
        ),
        (
            with(ingress_class(), controller, json!(long)),
            &[("spec.controller", "Too long: must have at most 250 bytes")],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(causes));
    }
}

#[test]
fn ingress_class_parameters() {
    let params = "/spec/parameters";
    let cluster =
        json!({"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"});
    let ignored = "spec.parameters: not emulated by podnet, ignored";
    for valid in [
        cluster.clone(),
        with(cluster.clone(), "/scope", json!("Cluster")),
        with(
            with(cluster.clone(), "/scope", json!("Namespace")),
            "/namespace",
            json!("ingress"),
        ),
    ] {
        check(
            with(ingress_class(), params, valid),
            Expect::Valid {
                at: &[],
                warnings: &[ignored],
            },
        );
    }
    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (
            json!({}),
            &[
                ("spec.parameters.kind", "Required value"),
                ("spec.parameters.name", "Required value"),
            ],
        ),
        (
            with(cluster.clone(), "/apiGroup", json!("Bad_Group")),
            &[("spec.parameters.apiGroup", not_subdomain!("Bad_Group"))],
        ),
        (
            with(cluster.clone(), "/name", json!("..")),
            &[(
                "spec.parameters.name",
                "Invalid value: \"..\": may not be '..'",
            )],
        ),
        (
            with(cluster.clone(), "/kind", json!("a%2F")),
            &[(
                "spec.parameters.kind",
                "Invalid value: \"a%2F\": may not contain '%'",
            )],
        ),
        (
            with(cluster.clone(), "/scope", json!("Global")),
            &[(
                "spec.parameters.scope",
                "Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespace\"",
            )],
        ),
        (
            with(cluster.clone(), "/scope", json!("Namespace")),
            &[(
                "spec.parameters.namespace",
                "Required value: `parameters.scope` is set to 'Namespace'",
            )],
        ),
        (
            with(
                with(cluster.clone(), "/scope", json!("Namespace")),
                "/namespace",
                json!("Bad_NS"),
            ),
            &[(
                "spec.parameters.namespace",
                "Invalid value: \"Bad_NS\": a lowercase RFC 1123 label",
            )],
        ),
        // Unset scope is Cluster.
        (
            with(cluster.clone(), "/namespace", json!("ingress")),
            &[(
                "spec.parameters.namespace",
                "Forbidden: `parameters.scope` is set to 'Cluster'",
            )],
        ),
    ];
    for (given, causes) in cases {
        check(
            with(ingress_class(), params, given),
            Expect::Invalid(causes),
        );
    }
}

#[test]
fn secret_gets_api_server_defaults() {
    check(
        tls_secret(),
        ok(&[
            ("/type", json!("kubernetes.io/tls")),
            ("/data/tls.crt", json!("Y2VydA==")),
        ]),
    );
    // stringData overrides data key by key and is not stored.
    let merged = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "b2xk", "ca.crt": "Y2E="},
        "stringData": {"tls.crt": "cert", "tls.key": "key"},
    });
    check(
        merged,
        ok(&[
            ("/data/tls.crt", json!("Y2VydA==")),
            ("/data/tls.key", json!("a2V5")),
            ("/data/ca.crt", json!("Y2E=")),
            ("/stringData", Value::Null),
        ]),
    );
    // No type is Opaque: stored, and podnet says it does not use it.
    let opaque = without(tls_secret(), "/type");
    check(
        opaque,
        Expect::Valid {
            at: &[("/type", json!("Opaque"))],
            warnings: &[
                "type: podnet uses only \"kubernetes.io/tls\" Secrets (for Ingress TLS): this \"Opaque\" Secret is stored but not used",
            ],
        },
    );
}

#[test]
fn secret_rules() {
    let stringly = |data: Value| with(without(tls_secret(), "/data"), "/stringData", data);
    let typed = |ty: &str| with(without(tls_secret(), "/data"), "/type", json!(ty));
    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (
            without(tls_secret(), "/data"),
            &[
                ("data[tls.crt]", "Required value"),
                ("data[tls.key]", "Required value"),
            ],
        ),
        // The merge happens first: stringData counts as data.
        (
            stringly(json!({"tls.crt": "cert"})),
            &[("data[tls.key]", "Required value")],
        ),
        (
            with(tls_secret(), "/data/a b", json!("eA==")),
            &[(
                "data[a b]",
                "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            )],
        ),
        (
            with(tls_secret(), "/stringData/..", json!("x")),
            &[("data[..]", "Invalid value: \"..\": must not be '..'")],
        ),
        (
            with(tls_secret(), "/stringData/..data", json!("x")),
            &[(
                "data[..data]",
                "Invalid value: \"..data\": must not start with '..'",
            )],
        ),
        (
            with(tls_secret(), "/stringData/.", json!("x")),
            &[("data[.]", "Invalid value: \".\": must not be '.'")],
        ),
        (
            with(
                tls_secret(),
                "/stringData/big",
                json!("x".repeat(1024 * 1024)),
            ),
            &[("data", "Too long: must have at most 1048576 bytes")],
        ),
        (
            typed("kubernetes.io/basic-auth"),
            &[
                ("data[username]", "Required value"),
                ("data[password]", "Required value"),
            ],
        ),
        (
            typed("kubernetes.io/ssh-auth"),
            &[("data[ssh-privatekey]", "Required value")],
        ),
        (
            typed("kubernetes.io/dockerconfigjson"),
            &[("data[.dockerconfigjson]", "Required value")],
        ),
        (
            with(
                typed("kubernetes.io/dockercfg"),
                "/stringData/.dockercfg",
                json!("{not json"),
            ),
            &[(
                "data[.dockercfg]",
                "Invalid value: \"<secret contents redacted>\": ",
            )],
        ),
        (
            typed("kubernetes.io/service-account-token"),
            &[(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "Required value",
            )],
        ),
    ];
    for (object, causes) in cases {
        check(object, Expect::Invalid(causes));
    }

    // Exactly 1 MiB fits.
    let full = with(
        without(tls_secret(), "/data"),
        "/stringData",
        json!({"tls.crt": "x".repeat(1024 * 1024 - 3), "tls.key": "key"}),
    );
    check(full, ok(&[]));
    // Other types are valid Kubernetes, stored and warned about.
    let basic = with(
        typed("kubernetes.io/basic-auth"),
        "/stringData",
        json!({"username": "admin"}),
    );
    let warning = validate(&basic).unwrap().warnings;
    assert_eq!(warning.len(), 1, "{warning:?}");
    assert!(warning[0].starts_with("type: ") && warning[0].contains(NOT_USED));
}

#[test]
fn updates_keep_what_upstream_freezes() {
    let stored = |object: Value| validate(&object).unwrap().object;
    let update = |old: &Value, new: Value| validate_update(old, &validate(&new).unwrap());
    let first_cause = |old: &Value, new: Value| update(old, new).unwrap_err().causes[0].to_string();

    // An Ingress may change anything but its name.
    let old = stored(ingress());
    assert!(
        update(
            &old,
            with(ingress(), "/spec/rules/0/host", json!("www.example.com"))
        )
        .is_ok()
    );

    // An IngressClass keeps its controller; parameters may change.
    let old = stored(ingress_class());
    assert_eq!(
        first_cause(
            &old,
            with(
                ingress_class(),
                "/spec/controller",
                json!("other.io/ingress")
            )
        ),
        "spec.controller: Invalid value: \"other.io/ingress\": field is immutable"
    );
    let params = json!({"kind": "IngressParameters", "name": "lb"});
    assert!(update(&old, with(ingress_class(), "/spec/parameters", params)).is_ok());

    // A Secret keeps its type, and its data once immutable.
    let old = stored(tls_secret());
    assert!(update(&old, with(tls_secret(), "/data/tls.key", json!("a2V5Mg=="))).is_ok());
    let opaque = with(tls_secret(), "/type", json!("Opaque"));
    assert_eq!(
        first_cause(&old, opaque),
        "type: Invalid value: \"Opaque\": field is immutable"
    );

    let frozen = with(tls_secret(), "/immutable", json!(true));
    let old = stored(frozen.clone());
    // Re-applying the same values through stringData is no change.
    let same = with(
        without(frozen.clone(), "/data"),
        "/stringData",
        json!({"tls.crt": "cert", "tls.key": "key"}),
    );
    assert!(update(&old, same).is_ok());
    assert!(
        update(
            &old,
            with(frozen.clone(), "/metadata/labels", json!({"app": "shop"}))
        )
        .is_ok()
    );
    assert_eq!(
        first_cause(
            &old,
            with(frozen.clone(), "/data/tls.key", json!("a2V5Mg=="))
        ),
        "data: Forbidden: field is immutable when `immutable` is set"
    );
    assert_eq!(
        first_cause(&old, without(frozen.clone(), "/immutable")),
        "immutable: Forbidden: field is immutable when `immutable` is set"
    );
    assert_eq!(
        first_cause(&old, with(frozen, "/immutable", json!(false))),
        "immutable: Forbidden: field is immutable when `immutable` is set"
    );
}
