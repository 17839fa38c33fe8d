//! Compiling and validating: every refusal with its path and the API
//! server's wording, and the defaults compile applies.

use crate::testkit::{np, policy_yaml};
use crate::{Direction, InvalidPolicy, PolicyRef};

use super::*;

/// `validate` of a policy with `spec` lists exactly `expected`, and
/// `compile` refuses it with the first (or accepts it when none).
fn check(spec: &str, expected: &[&str]) {
    let policy = np(&policy_yaml("default/p", spec));
    let got: Vec<String> = validate(&policy).iter().map(|e| e.to_string()).collect();
    assert_eq!(got, expected, "{spec}");
    match (compile(&policy), expected.first()) {
        (Ok(_), None) => {}
        (Err(e), Some(first)) => assert_eq!(e.to_string(), *first),
        (got, _) => panic!("compile of {spec}: {got:?}"),
    }
}

#[test]
fn valid_policies_have_no_errors() {
    check("podSelector: {}", &[]);
    check(
        "podSelector: {matchExpressions: [{key: app, operator: Exists}]}\npolicyTypes: [Ingress, Egress]\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 80, endPort: 90}, {port: http, protocol: SCTP}]}]\negress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {example.com/tier: web-1}}}]}]",
        &[],
    );
    check(
        "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 'fd00::/8', except: ['fd00:1::/32']}}]}]",
        &[],
    );
}

#[test]
fn an_invalid_cidr_is_refused_with_its_path() {
    check(
        "podSelector: {}\ningress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/33}}]}]",
        &[
            r#"spec.ingress[0].from[1].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#,
        ],
    );
    check(
        "podSelector: {}\negress: [{to: [{ipBlock: {cidr: 10.0.0.1/24}}]}]",
        &[
            r#"spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.0.0.1/24": must not have bits set beyond the prefix length"#,
        ],
    );
    check(
        "podSelector: {}\negress: [{to: [{ipBlock: {cidr: 010.0.0.0/8}}]}]",
        &[
            r#"spec.egress[0].to[0].ipBlock.cidr: Invalid value: "010.0.0.0/8": must not have leading 0s in IP or prefix length"#,
        ],
    );
    check(
        "podSelector: {}\negress: [{to: [{ipBlock: {cidr: '::ffff:10.0.0.0/104'}}]}]",
        &[
            r#"spec.egress[0].to[0].ipBlock.cidr: Invalid value: "::ffff:10.0.0.0/104": must not have an IPv4-mapped IPv6 address"#,
        ],
    );
    check(
        "podSelector: {}\negress: [{to: [{ipBlock: {cidr: ''}}]}]",
        &["spec.egress[0].to[0].ipBlock.cidr: Required value"],
    );
}

#[test]
fn an_except_must_be_a_strict_subset_of_its_cidr() {
    check(
        "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24, 172.17.0.0/16, 10.0.0.0/8, 172.16.0.0/12, bogus, 'fd00::/64']}}]}]",
        &[
            r#"spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "172.17.0.0/16": must be a strict subset of `cidr`"#,
            r#"spec.ingress[0].from[0].ipBlock.except[2]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`"#,
            r#"spec.ingress[0].from[0].ipBlock.except[3]: Invalid value: "172.16.0.0/12": must be a strict subset of `cidr`"#,
            r#"spec.ingress[0].from[0].ipBlock.except[4]: Invalid value: "bogus": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#,
            r#"spec.ingress[0].from[0].ipBlock.except[5]: Invalid value: "fd00::/64": must be a strict subset of `cidr`"#,
        ],
    );
}

#[test]
fn end_port_needs_a_numeric_port_at_or_below_it() {
    check(
        "podSelector: {}\ningress: [{ports: [{port: 90, endPort: 80}, {endPort: 80}, {port: http, endPort: 80}, {port: 80, endPort: 70000}, {port: 0}]}]",
        &[
            "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
            "spec.ingress[0].ports[1].endPort: Invalid value: 80: may not be specified when `port` is not specified",
            "spec.ingress[0].ports[2].endPort: Invalid value: 80: may not be specified when `port` is non-numeric",
            "spec.ingress[0].ports[3].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.ingress[0].ports[4].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ],
    );
}

#[test]
fn an_unknown_protocol_is_not_supported() {
    check(
        "podSelector: {}\negress: [{ports: [{protocol: ICMP}, {protocol: tcp, port: 80}]}]",
        &[
            r#"spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP""#,
            r#"spec.egress[0].ports[1].protocol: Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP""#,
        ],
    );
}

#[test]
fn a_named_port_must_be_an_iana_service_name() {
    check(
        "podSelector: {}\ningress: [{ports: [{port: '8080'}, {port: Http}, {port: a--b}, {port: very-long-port-name}]}]",
        &[
            r#"spec.ingress[0].ports[0].port: Invalid value: "8080": must contain at least one letter (a-z)"#,
            r#"spec.ingress[0].ports[1].port: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
            r#"spec.ingress[0].ports[2].port: Invalid value: "a--b": must not contain consecutive hyphens"#,
            r#"spec.ingress[0].ports[3].port: Invalid value: "very-long-port-name": must be no more than 15 characters"#,
        ],
    );
}

#[test]
fn label_selectors_are_validated_as_the_api_server_does() {
    check(
        "podSelector: {matchExpressions: [{key: app, operator: Equals, values: [web]}, {key: app, operator: In}, {key: app, operator: Exists, values: [x]}, {key: -bad, operator: NotIn, values: ['-bad']}]}",
        &[
            r#"spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator"#,
            "spec.podSelector.matchExpressions[1].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.podSelector.matchExpressions[2].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            r#"spec.podSelector.matchExpressions[3].key: Invalid value: "-bad": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
            r#"spec.podSelector.matchExpressions[3].values[0]: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
        ],
    );
}

#[test]
fn match_labels_keys_and_values_follow_the_label_rules() {
    let long = "v".repeat(64);
    check(
        &format!(
            "podSelector: {{}}\ningress: [{{from: [{{namespaceSelector: {{matchLabels: {{'Example.com/app': ok, team: '{long}', tier: 'web_', '': x}}}}}}]}}]"
        ),
        &[
            r#"spec.ingress[0].from[0].namespaceSelector.matchLabels: Invalid value: "": name part must be non-empty"#,
            r#"spec.ingress[0].from[0].namespaceSelector.matchLabels: Invalid value: "": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
            r#"spec.ingress[0].from[0].namespaceSelector.matchLabels: Invalid value: "Example.com/app": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            &format!(
                r#"spec.ingress[0].from[0].namespaceSelector.matchLabels: Invalid value: "{long}": must be no more than 63 characters"#
            ),
            r#"spec.ingress[0].from[0].namespaceSelector.matchLabels: Invalid value: "web_": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
        ],
    );
}

#[test]
fn a_peer_needs_exactly_one_kind_unless_both_selectors() {
    check(
        "podSelector: {}\ningress: [{from: [{}, {podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}, {namespaceSelector: {}, podSelector: {}}]}]",
        &[
            "spec.ingress[0].from[0]: Required value: must specify a peer",
            "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
        ],
    );
}

#[test]
fn policy_types_are_ingress_or_egress_and_at_most_two() {
    check(
        "podSelector: {}\npolicyTypes: [Ingress, ingress]",
        &[
            r#"spec.policyTypes[1]: Unsupported value: "ingress": supported values: "Ingress", "Egress""#,
        ],
    );
    check(
        "podSelector: {}\npolicyTypes: [Ingress, Egress, Ingress]",
        &[
            r#"spec.policyTypes: Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes"#,
        ],
    );
}

#[test]
fn a_policy_needs_a_name_and_defaults_its_namespace() {
    let unnamed = np(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {}\nspec: {podSelector: {}}",
    );
    assert!(matches!(
        compile(&unnamed),
        Err(InvalidPolicy::MissingName { .. })
    ));
    assert_eq!(
        validate(&unnamed)[0].to_string(),
        "metadata.name: Required value: name or generateName is required"
    );
    let p = compile(&np(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}",
    ))
    .unwrap();
    assert_eq!(p.key(), &PolicyRef::new("default", "p"));
}

#[test]
fn compile_errors_are_typed_and_carry_the_path() {
    let policy = np(&policy_yaml(
        "default/p",
        "podSelector: {}\ningress: [{from: [{podSelector: {}}, {ipBlock: {cidr: nope}}]}]",
    ));
    let err = compile(&policy).unwrap_err();
    assert_eq!(err.path(), "spec.ingress[0].from[1].ipBlock.cidr");
    assert!(
        matches!(&err, InvalidPolicy::Cidr { value, problem: crate::CidrProblem::Unparsable, .. } if value == "nope"),
        "{err:?}"
    );
    let fe = err.field_error();
    assert_eq!(
        (fe.kind, fe.value.as_str()),
        (crate::FieldErrorKind::Invalid, "\"nope\"")
    );
}

/// `(policyTypes, ingress, egress)` → isolates (ingress, egress).
#[test]
fn effective_policy_types() {
    let cases = [
        ("", "", "", (true, false)),
        ("", "ingress: [{}]", "", (true, false)),
        ("", "", "egress: [{}]", (true, true)),
        ("", "", "egress: []", (true, false)),
        ("policyTypes: []", "", "egress: [{}]", (true, true)),
        ("policyTypes: [Egress]", "ingress: [{}]", "", (false, true)),
        ("policyTypes: [Ingress]", "", "egress: [{}]", (true, false)),
        ("policyTypes: [Egress, Ingress]", "", "", (true, true)),
    ];
    for (types, ingress, egress, expected) in cases {
        let spec = ["podSelector: {}", types, ingress, egress]
            .iter()
            .filter(|l| !l.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let p = compile(&np(&policy_yaml("default/p", &spec))).unwrap();
        assert_eq!(
            (
                p.isolates(Direction::Ingress),
                p.isolates(Direction::Egress)
            ),
            expected,
            "{spec}"
        );
    }
}

#[test]
fn rules_compile_once_with_their_defaults() {
    let p = compile(&np(&policy_yaml(
        "x/p",
        "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 80}, {protocol: UDP}, {port: dns, protocol: UDP}, {port: 1000, endPort: 2000}]}]",
    )))
    .unwrap();
    let rules = p.rules(Direction::Ingress).unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].ports,
        vec![
            PortMatch {
                protocol: Protocol::Tcp,
                port: PortSpec::Range(80, 80)
            },
            PortMatch {
                protocol: Protocol::Udp,
                port: PortSpec::Any
            },
            PortMatch {
                protocol: Protocol::Udp,
                port: PortSpec::Named("dns".into())
            },
            PortMatch {
                protocol: Protocol::Tcp,
                port: PortSpec::Range(1000, 2000)
            },
        ]
    );
    assert_eq!(
        rules[0].peers,
        vec![Peer::Block {
            cidr: "10.0.0.0/8".parse().unwrap(),
            except: vec!["10.1.0.0/16".parse().unwrap()],
        }]
    );
    let pod = |ns: &str, labels: &str| PodInfo {
        key: crate::PodKey::new(ns, "p"),
        labels: crate::testkit::label_map(labels),
        ips: vec![],
        ports: vec![],
        node: "n".into(),
    };
    assert!(p.selects(&pod("x", "app=web")));
    assert!(!p.selects(&pod("y", "app=web")));
    assert!(!p.selects(&pod("x", "app=db")));
}
