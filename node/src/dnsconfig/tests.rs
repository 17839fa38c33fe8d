//! Every policy and merge rule of the kubelet's `GetPodDNS`, one table.

use super::*;
use serde_json::json;

const CLUSTER_DNS: &str = "10.96.0.10";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A node whose resolv.conf has a nameserver, a search domain and options.
fn node() -> NodeResolvConf {
    NodeResolvConf {
        nameservers: strings(&["192.168.0.2"]),
        searches: strings(&["corp.example"]),
        options: strings(&["ndots:2", "edns0"]),
    }
}

fn spec(policy: &str, host_network: bool, config: Option<PodDnsConfig>) -> PodDnsSpec {
    PodDnsSpec {
        namespace: "shop".into(),
        policy: policy.into(),
        host_network,
        config,
    }
}

fn config(
    nameservers: &[&str],
    searches: &[&str],
    options: &[(&str, Option<&str>)],
) -> PodDnsConfig {
    PodDnsConfig {
        nameservers: strings(nameservers),
        searches: strings(searches),
        options: options
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
            .collect(),
    }
}

/// `(nameservers, searches, options)` of the pod's resolv.conf.
type Lines<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str]);

fn check(rule: &str, pod: PodDnsSpec, node: &NodeResolvConf, expected: Lines<'_>) {
    let dns = pod_dns(&pod, node, &[CLUSTER_DNS.parse().unwrap()], "cluster.local");
    assert_eq!(
        (dns.nameservers, dns.searches, dns.options),
        (
            strings(expected.0),
            strings(expected.1),
            strings(expected.2)
        ),
        "{rule}"
    );
    assert!(dns.warnings.is_empty(), "{rule}: {:?}", dns.warnings);
}

const CLUSTER_SEARCH: &[&str] = &[
    "shop.svc.cluster.local",
    "svc.cluster.local",
    "cluster.local",
];

#[test]
fn every_policy_and_merge_rule() {
    let node = node();
    check(
        "ClusterFirst: cluster DNS, cluster search then the node's, ndots:5 (the node's options dropped)",
        spec("ClusterFirst", false, None),
        &node,
        (
            &[CLUSTER_DNS],
            &[
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
            ],
            &["ndots:5"],
        ),
    );
    check(
        "an empty dnsPolicy is the API's default, ClusterFirst",
        spec("", false, None),
        &NodeResolvConf::builtin(),
        (&[CLUSTER_DNS], CLUSTER_SEARCH, &["ndots:5"]),
    );
    check(
        "ClusterFirst with hostNetwork falls back to Default",
        spec("ClusterFirst", true, None),
        &node,
        (&["192.168.0.2"], &["corp.example"], &["ndots:2", "edns0"]),
    );
    check(
        "ClusterFirstWithHostNet with hostNetwork: the cluster's",
        spec("ClusterFirstWithHostNet", true, None),
        &node,
        (
            &[CLUSTER_DNS],
            &[
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
            ],
            &["ndots:5"],
        ),
    );
    check(
        "ClusterFirstWithHostNet without hostNetwork: the same as ClusterFirst",
        spec("ClusterFirstWithHostNet", false, None),
        &NodeResolvConf::builtin(),
        (&[CLUSTER_DNS], CLUSTER_SEARCH, &["ndots:5"]),
    );
    check(
        "Default: the node's resolv.conf",
        spec("Default", false, None),
        &node,
        (&["192.168.0.2"], &["corp.example"], &["ndots:2", "edns0"]),
    );
    check(
        "Default on podnet's built-in node resolv.conf: the outside resolver",
        spec("Default", false, None),
        &NodeResolvConf::builtin(),
        (&["192.0.2.53"], &[], &[]),
    );
    check(
        "None: only dnsConfig",
        spec(
            "None",
            false,
            Some(config(
                &["1.1.1.1"],
                &["svc.cluster.local"],
                &[("ndots", Some("1"))],
            )),
        ),
        &node,
        (&["1.1.1.1"], &["svc.cluster.local"], &["ndots:1"]),
    );
    check(
        "appendDNSConfig on ClusterFirst: nameservers and searches appended, duplicates omitted",
        spec(
            "ClusterFirst",
            false,
            Some(config(
                &["10.0.0.53", CLUSTER_DNS],
                &["svc.cluster.local", "extra.example", "extra.example"],
                &[],
            )),
        ),
        &NodeResolvConf::builtin(),
        (
            &[CLUSTER_DNS, "10.0.0.53"],
            &[
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "extra.example",
            ],
            &["ndots:5"],
        ),
    );
    check(
        "mergeDNSOptions: by name, dnsConfig wins; a value-less option is bare",
        spec(
            "ClusterFirst",
            false,
            Some(config(
                &[],
                &[],
                &[
                    ("ndots", Some("2")),
                    ("single-request-reopen", None),
                    ("timeout", Some("3")),
                ],
            )),
        ),
        &NodeResolvConf::builtin(),
        (
            &[CLUSTER_DNS],
            CLUSTER_SEARCH,
            &["ndots:2", "single-request-reopen", "timeout:3"],
        ),
    );
    check(
        "mergeDNSOptions on Default: the node's options overridden in place",
        spec(
            "Default",
            false,
            Some(config(&[], &[], &[("edns0", None), ("ndots", Some("3"))])),
        ),
        &node,
        (&["192.168.0.2"], &["corp.example"], &["ndots:3", "edns0"]),
    );
    check(
        "a node search domain equal to a cluster one is listed once",
        spec("ClusterFirst", false, None),
        &NodeResolvConf {
            searches: strings(&["cluster.local", "corp.example"]),
            ..node.clone()
        },
        (
            &[CLUSTER_DNS],
            &[
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
            ],
            &["ndots:5"],
        ),
    );
}

#[test]
fn without_a_cluster_dns_cluster_first_falls_back_to_default() {
    let dns = pod_dns(
        &spec("ClusterFirst", false, None),
        &node(),
        &[],
        "cluster.local",
    );
    assert_eq!(dns.nameservers, ["192.168.0.2"]);
    assert_eq!(dns.searches, ["corp.example"]);
}

#[test]
fn dns_type_is_get_pod_dns_type() {
    for (policy, host_network, expected) in [
        ("ClusterFirst", false, DnsType::Cluster),
        ("ClusterFirst", true, DnsType::Node),
        ("ClusterFirstWithHostNet", false, DnsType::Cluster),
        ("ClusterFirstWithHostNet", true, DnsType::Cluster),
        ("Default", false, DnsType::Node),
        ("Default", true, DnsType::Node),
        ("None", false, DnsType::None),
        ("None", true, DnsType::None),
        ("Bogus", false, DnsType::Cluster),
    ] {
        assert_eq!(
            dns_type(policy, host_network),
            expected,
            "{policy} {host_network}"
        );
    }
}

#[test]
fn limits_cut_and_warn() {
    // formDNSNameserversFitsLimits: the first three stay.
    let dns = pod_dns(
        &spec(
            "ClusterFirst",
            false,
            Some(config(&["10.0.0.1", "10.0.0.2", "10.0.0.3"], &[], &[])),
        ),
        &NodeResolvConf::builtin(),
        &[CLUSTER_DNS.parse().unwrap()],
        "cluster.local",
    );
    assert_eq!(dns.nameservers, [CLUSTER_DNS, "10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        dns.warnings,
        [
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 10.0.0.1 10.0.0.2"
        ]
    );

    // More than 32 search domains: the first 32 stay.
    let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let dns = pod_dns(
        &spec("None", false, Some(config(&["10.0.0.1"], &refs, &[]))),
        &NodeResolvConf::builtin(),
        &[],
        "cluster.local",
    );
    assert_eq!(dns.searches, many[..32]);
    assert_eq!(dns.warnings.len(), 1);
    assert!(
        dns.warnings[0].starts_with("Search Line limits were exceeded"),
        "{:?}",
        dns.warnings
    );

    // A domain over 253 characters is dropped; the rest stay.
    let long = format!("{}.example", "a".repeat(250));
    let dns = pod_dns(
        &spec(
            "None",
            false,
            Some(config(
                &["10.0.0.1"],
                &["a.example", &long, "b.example"],
                &[],
            )),
        ),
        &NodeResolvConf::builtin(),
        &[],
        "cluster.local",
    );
    assert_eq!(dns.searches, ["a.example", "b.example"]);
    assert_eq!(dns.warnings.len(), 1);

    // Over 2048 characters: domains cut from the end until the line fits.
    let wide: Vec<String> = (0..12)
        .map(|i| format!("{i:02}{}", "x".repeat(198)))
        .collect();
    let refs: Vec<&str> = wide.iter().map(String::as_str).collect();
    let dns = pod_dns(
        &spec("None", false, Some(config(&["10.0.0.1"], &refs, &[]))),
        &NodeResolvConf::builtin(),
        &[],
        "cluster.local",
    );
    // 200 characters each and a space: ten make 2009, eleven 2210.
    assert_eq!(dns.searches, wide[..10]);
    assert!(dns.searches.join(" ").len() <= MAX_SEARCH_LIST_CHARS);
    assert_eq!(dns.warnings.len(), 1);
}

#[test]
fn node_resolv_conf_is_parsed_as_parse_resolv_conf() {
    let check = |text: &str, expected: Result<Lines<'_>, ResolvConfError>| {
        let parsed = NodeResolvConf::parse(text).map(|c| (c.nameservers, c.searches, c.options));
        let expected = expected.map(|(n, s, o)| (strings(n), strings(s), strings(o)));
        assert_eq!(parsed, expected, "{text:?}");
    };
    check(
        "# generated\nnameserver 10.0.0.1\nnameserver 2001:db8::1\nsearch a.example. b.example\noptions ndots:2 rotate\n",
        Ok((
            &["10.0.0.1", "2001:db8::1"],
            &["a.example", "b.example"],
            &["ndots:2", "rotate"],
        )),
    );
    // The last search and options lines win; nameservers add up; other
    // keywords (domain, sortlist) are ignored.
    check(
        "search one.example\nnameserver 10.0.0.1\ndomain x.example\nsearch two.example\n  nameserver 10.0.0.2  \noptions a\noptions b\n",
        Ok((&["10.0.0.1", "10.0.0.2"], &["two.example"], &["b"])),
    );
    check("", Ok((&[], &[], &[])));
    check(
        "nameserver\n",
        Err(ResolvConfError::MissingNameserver { line: 1 }),
    );
    check(
        "search a\nnameserver dns.example\n",
        Err(ResolvConfError::BadNameserver {
            line: 2,
            value: "dns.example".into(),
        }),
    );
}

#[test]
fn pod_fields_are_read_from_the_object() {
    let pod = json!({
        "metadata": {"namespace": "shop", "name": "p"},
        "spec": {
            "dnsPolicy": "None",
            "hostNetwork": true,
            "dnsConfig": {
                "nameservers": ["10.0.0.1"],
                "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]
            }
        }
    });
    assert_eq!(
        PodDnsSpec::from_pod(&pod),
        PodDnsSpec {
            namespace: "shop".into(),
            policy: "None".into(),
            host_network: true,
            config: Some(config(
                &["10.0.0.1"],
                &["a.example"],
                &[("ndots", Some("1")), ("edns0", None)]
            )),
        }
    );
    let dns = for_pod(
        &pod,
        &NodeResolvConf::builtin(),
        CLUSTER_DNS.parse().unwrap(),
    );
    assert_eq!(dns.options, ["ndots:1", "edns0"]);
    // Nothing set: ClusterFirst of the namespace.
    let dns = for_pod(
        &json!({"metadata": {"namespace": "shop"}, "spec": {}}),
        &NodeResolvConf::builtin(),
        CLUSTER_DNS.parse().unwrap(),
    );
    assert_eq!(dns.searches, CLUSTER_SEARCH);
    assert_eq!(dns.nameservers, [CLUSTER_DNS]);
    // An IPv6 cluster's DNS is its nameserver.
    let dns = for_pod(
        &json!({"metadata": {"namespace": "shop"}, "spec": {}}),
        &NodeResolvConf::builtin(),
        "fd00:10:96::a".parse().unwrap(),
    );
    assert_eq!(dns.nameservers, ["fd00:10:96::a"]);
}
