//! Flag values checked at parse time, so a bad one stops the command before
//! anything starts, with a message that names what is valid: durations in
//! a range, the pod network (`--cluster-cidr`, `--node-cidr-mask-size`, as
//! kube-controller-manager has them) and whether a cluster of N nodes fits
//! in it.
//!
//! The parsers are clap `value_parser`s (clap names the flag and the value
//! in front of the reason); `check_capacity` compares flags with each other
//! and returns an [`InputError`]. Pure: no I/O.

use std::time::Duration;

use ipnet::Ipv4Net;
use podnet_proto::model::network::ClusterFamilies;

use crate::InputError;

/// The default cluster CIDR pods get their addresses from.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The default size of each node's podCIDR, as kube-controller-manager's.
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u8 = 24;
/// The default emulated node network: nodes get .2, .3, …; .1 is the host.
pub const DEFAULT_NODE_CIDR: &str = "172.18.0.0/16";

/// kube-controller-manager refuses node CIDRs more than 16 bits longer than
/// the cluster CIDR (its CIDR set would be too big to track).
const MAX_MASK_DIFFERENCE: u8 = 16;
/// A node's podCIDR holds its gateway (.1) and at least one pod.
const LONGEST_NODE_MASK: u8 = 30;

/// `--ip-family` of a cluster `podnet up` starts: `ipv4`, `ipv6` or
/// `dual` (IPv4 primary, as kind's `dual`).
pub fn ip_family(s: &str) -> Result<ClusterFamilies, String> {
    s.parse::<ClusterFamilies>()
}

/// `NAMESPACE/NAME` of an object, both DNS-1123 labels (a Service's name
/// is one), as ingress-nginx's `--default-backend-service` takes it.
pub fn namespaced_name(s: &str) -> Result<String, String> {
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    match s.split_once('/') {
        Some((namespace, name)) if label(namespace) && label(name) => Ok(s.to_string()),
        _ => Err(format!(
            "expected NAMESPACE/NAME, each a lowercase RFC 1123 label (a-z, 0-9 and '-', at most 63 characters), got {s:?}"
        )),
    }
}

/// The built-in images an outside host may serve (`serve=IMAGE`): the
/// servers that need nothing from the cluster.
pub const SERVABLE_IMAGES: &[&str] = &["podnet/http-echo", "podnet/tcp-echo", "podnet/udp-echo"];

/// One host of the emulated outside world: its name, its address and the
/// built-in image it serves there, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHost {
    pub name: String,
    pub address: std::net::Ipv4Addr,
    /// One of [`SERVABLE_IMAGES`]; `None` for a name that only resolves.
    pub serve: Option<String>,
}

impl ExternalHost {
    /// Checks a name, an address and a served image, as `--external` and
    /// the scenario's `cluster.external` give them: a DNS name of at least
    /// two labels, an IPv4 address that is not in a range the cluster or
    /// the host uses (loopback, unspecified, multicast, broadcast), and one
    /// of [`SERVABLE_IMAGES`].
    pub fn new(
        name: &str,
        address: std::net::Ipv4Addr,
        serve: Option<&str>,
    ) -> Result<ExternalHost, String> {
        let name = podnet_pod::dns::outside::outside_name(name)
            .map_err(|e| e.to_string())?
            .to_ascii();
        let name = name.trim_end_matches('.').to_owned();
        if address.is_loopback()
            || address.is_unspecified()
            || address.is_multicast()
            || address.is_broadcast()
        {
            return Err(format!(
                "{address} of outside host {name} cannot be an outside host's address (loopback, unspecified, multicast and broadcast addresses are not)"
            ));
        }
        let serve = match serve {
            None => None,
            Some(image) if SERVABLE_IMAGES.contains(&image) => Some(image.to_owned()),
            Some(image) => {
                return Err(format!(
                    "outside host {name} cannot serve {image:?}: an outside host serves one of {}",
                    SERVABLE_IMAGES.join(", ")
                ));
            }
        };
        Ok(ExternalHost {
            name,
            address,
            serve,
        })
    }
}

/// As `--external` takes it: `NAME=IP` or `NAME=IP,serve=IMAGE`.
impl std::fmt::Display for ExternalHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.address)?;
        if let Some(image) = &self.serve {
            write!(f, ",serve={image}")?;
        }
        Ok(())
    }
}

/// `NAME=IP[,serve=IMAGE]` of an outside host (`podnet up --external`):
/// see [`ExternalHost::new`].
pub fn external_host(s: &str) -> Result<ExternalHost, String> {
    let expected = || {
        format!(
            "expected NAME=IP or NAME=IP,serve=IMAGE, such as api.example.com=203.0.113.10,serve=podnet/http-echo, got {s:?}"
        )
    };
    let mut parts = s.split(',');
    let Some((name, ip)) = parts.next().and_then(|p| p.split_once('=')) else {
        return Err(expected());
    };
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|e| format!("{ip:?} in {s:?} is not an IPv4 address: {e}"))?;
    let mut serve = None;
    for option in parts {
        match option.split_once('=') {
            Some(("serve", image)) if serve.is_none() => serve = Some(image),
            Some(("serve", _)) => return Err(format!("serve= is given twice in {s:?}")),
            _ => {
                return Err(format!(
                    "unknown option {option:?} in {s:?}: the only option is serve=IMAGE"
                ));
            }
        }
    }
    ExternalHost::new(name, ip, serve)
}

/// The served outside addresses and their images. Several names may share
/// an address (one host, several names), but an address serves one image:
/// two hosts that give it different ones are refused.
pub fn served_addresses(
    hosts: &[ExternalHost],
) -> Result<std::collections::BTreeMap<std::net::Ipv4Addr, (String, String)>, String> {
    let mut served: std::collections::BTreeMap<std::net::Ipv4Addr, (String, String)> =
        std::collections::BTreeMap::new();
    for host in hosts {
        let Some(image) = &host.serve else { continue };
        match served.get(&host.address) {
            Some((first, other)) if other != image => {
                return Err(format!(
                    "outside address {} is served twice: by {first} with {other} and by {} with {image}",
                    host.address, host.name
                ));
            }
            Some(_) => {}
            None => {
                served.insert(host.address, (host.name.clone(), image.clone()));
            }
        }
    }
    Ok(served)
}

/// A served outside address must lead outside: not into the pod network,
/// the node network, the Service range or onto the outside resolver, where
/// the cluster's own addresses (or the resolver) would answer instead.
pub fn check_served_outside(
    served: &std::collections::BTreeMap<std::net::Ipv4Addr, (String, String)>,
    cluster_cidr: Ipv4Net,
    node_net: Ipv4Net,
    service_cidr: Ipv4Net,
) -> Result<(), String> {
    for (address, (name, _)) in served {
        let taken = if cluster_cidr.contains(address) {
            format!("the pod network {cluster_cidr}")
        } else if node_net.contains(address) {
            format!("the node network {node_net}")
        } else if service_cidr.contains(address) {
            format!("the Service range {service_cidr}")
        } else if *address == podnet_proto::model::network::OUTSIDE_DNS_IP {
            "the outside resolver's address".to_owned()
        } else {
            continue;
        };
        return Err(format!(
            "outside host {name} serves at {address}, which is in {taken}: choose an address outside the cluster, such as one of 203.0.113.0/24"
        ));
    }
    Ok(())
}

/// `IP:PORT` of a real resolver on this machine (`podnet up
/// --dns-upstream`), which the nodes' outside resolver relays to. An
/// address, not a host name: nothing resolves it first.
pub fn dns_upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s.parse().map_err(|e| {
        format!("expected IP:PORT of a resolver, such as 127.0.0.53:53 or [::1]:53, got {s:?}: {e}")
    })?;
    if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(format!(
            "{addr} is no resolver's address (port 0, unspecified and multicast addresses are not)"
        ));
    }
    Ok(addr)
}

/// A duration flag between `min` and `max`, inclusive.
pub fn duration_in(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("not a duration ({e}): write a number and a unit, like 3s, 500ms or 2m")
    })?;
    if d < min {
        return Err(if min == Duration::from_nanos(1) {
            "must be greater than zero, like 3s".to_string()
        } else {
            format!("must be at least {}", show(min))
        });
    }
    if d > max {
        return Err(format!("too large: at most {}", show(max)));
    }
    Ok(d)
}

/// `d` as a flag would be written: whole hours as `24h`, else humantime's.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// `--node-grace-period`: nodes renew their lease every quarter of it and
/// at most every 100 ms, so anything under 400 ms would mark live nodes
/// NotReady.
pub fn node_grace_period(s: &str) -> Result<Duration, String> {
    duration_in(
        s,
        Duration::from_millis(400),
        Duration::from_secs(24 * 3600),
    )
}

/// A period something is done every (`--health-interval`): not zero.
pub fn interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_millis(10), Duration::from_secs(3600))
}

/// How long to wait for something (`--timeout`): zero checks once.
pub fn timeout(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, Duration::from_secs(24 * 3600))
}

/// A run length in whole seconds (`bench --duration`).
pub fn run_length(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(1), Duration::from_secs(24 * 3600))
}

/// `--cluster-cidr`: an IPv4 network to cut node podCIDRs from.
pub fn cluster_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| "not an IPv4 CIDR: write it like 10.244.0.0/16".to_string())?;
    if net.network() != net.addr() {
        return Err(format!("has host bits set: the network is {}", net.trunc()));
    }
    let outside = podnet_proto::model::network::OUTSIDE_DNS_IP;
    if net.contains(&outside) {
        return Err(format!(
            "holds {outside}, the outside world's resolver each node serves: choose a range without it"
        ));
    }
    Ok(net)
}

/// `--node-cidr-mask-size`: the prefix length of each node's podCIDR.
pub fn node_cidr_mask_size(s: &str) -> Result<u8, String> {
    let mask: u8 = s.trim().parse().map_err(|_| {
        format!("not a prefix length: write a number from 1 to {LONGEST_NODE_MASK}")
    })?;
    if !(1..=LONGEST_NODE_MASK).contains(&mask) {
        return Err(format!(
            "must be from 1 to {LONGEST_NODE_MASK} (a node's podCIDR holds its gateway and at least one pod)"
        ));
    }
    Ok(mask)
}

/// How many node podCIDRs of `/mask` `cluster` holds, or why none.
pub fn node_cidrs(cluster: Ipv4Net, mask: u8) -> Result<u64, String> {
    if mask < cluster.prefix_len() {
        return Err(format!(
            "--node-cidr-mask-size {mask} is shorter than --cluster-cidr {cluster}: a node's podCIDR must fit in the cluster CIDR (use {} or more)",
            cluster.prefix_len()
        ));
    }
    if mask - cluster.prefix_len() > MAX_MASK_DIFFERENCE {
        return Err(format!(
            "--node-cidr-mask-size {mask} is more than {MAX_MASK_DIFFERENCE} bits longer than --cluster-cidr {cluster} (use at most {})",
            cluster.prefix_len() + MAX_MASK_DIFFERENCE
        ));
    }
    Ok(1u64 << (mask - cluster.prefix_len()))
}

/// Whether `nodes` nodes fit the pod network and the node network, checked
/// before anything starts: each node needs a podCIDR and an address.
pub fn check_capacity(
    nodes: usize,
    cluster: Ipv4Net,
    mask: u8,
    node_net: Ipv4Net,
) -> Result<(), InputError> {
    let fit = node_cidrs(cluster, mask).map_err(InputError)?;
    let wanted = nodes as u64;
    if wanted > fit {
        // Bits needed to number `nodes` podCIDRs.
        let bits = (u64::BITS - (wanted - 1).leading_zeros()) as u8;
        let mut hints = Vec::new();
        if let Some(prefix) = mask.checked_sub(bits).filter(|p| *p >= 1)
            && let Ok(wider) = Ipv4Net::new(cluster.addr(), prefix)
        {
            hints.push(format!("--cluster-cidr {}", wider.trunc()));
        }
        let longer = cluster.prefix_len() + bits;
        if longer <= LONGEST_NODE_MASK && bits <= MAX_MASK_DIFFERENCE {
            hints.push(format!("--node-cidr-mask-size {longer}"));
        }
        let hint = if hints.is_empty() {
            "ask for fewer nodes".to_string()
        } else {
            format!("ask for fewer nodes or use {}", hints.join(" or "))
        };
        return Err(InputError(format!(
            "{nodes} nodes do not fit: --cluster-cidr {cluster} has room for {fit} node podCIDRs of /{mask} (--node-cidr-mask-size); {hint}"
        )));
    }
    // .0 is the network, .1 the host, the last the broadcast address.
    let addresses = (1u64 << (32 - node_net.prefix_len())).saturating_sub(3);
    if wanted > addresses {
        return Err(InputError(format!(
            "{nodes} nodes do not fit: the node network {node_net} has {addresses} node addresses"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn namespaced_names_are_two_dns_labels() {
        assert_eq!(
            namespaced_name("default/fallback").unwrap(),
            "default/fallback"
        );
        for bad in [
            "fallback",
            "/x",
            "x/",
            "a/b/c",
            "Default/x",
            "a/-x",
            "a/b_c",
            "",
        ] {
            let err = namespaced_name(bad).unwrap_err();
            assert!(err.contains("expected NAMESPACE/NAME"), "{bad}: {err}");
        }
        assert!(namespaced_name(&format!("a/{}", "x".repeat(64))).is_err());
    }

    #[test]
    fn external_hosts_are_a_name_an_address_and_what_they_serve() {
        let check = |flag: &str, expected: Result<ExternalHost, &str>| match (
            external_host(flag),
            expected,
        ) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got, want, "{flag}");
                assert_eq!(
                    external_host(&got.to_string()),
                    Ok(got),
                    "{flag} round trip"
                );
            }
            (Err(got), Err(why)) => assert!(got.contains(why), "{flag}: {got}"),
            (got, want) => panic!("{flag}: got {got:?}, expected {want:?}"),
        };
        let host = |name: &str, ip: &str, serve: Option<&str>| ExternalHost {
            name: name.to_owned(),
            address: ip.parse().unwrap(),
            serve: serve.map(String::from),
        };
        check(
            "API.example.com.=203.0.113.10",
            Ok(host("api.example.com", "203.0.113.10", None)),
        );
        check(
            "api.example.com=203.0.113.10,serve=podnet/http-echo",
            Ok(host(
                "api.example.com",
                "203.0.113.10",
                Some("podnet/http-echo"),
            )),
        );
        check(
            "dns.example.com=203.0.113.11,serve=podnet/udp-echo",
            Ok(host(
                "dns.example.com",
                "203.0.113.11",
                Some("podnet/udp-echo"),
            )),
        );
        for (bad, why) in [
            ("api.example.com", "expected NAME=IP"),
            ("api.example.com=", "not an IPv4 address"),
            ("api.example.com=::1", "not an IPv4 address"),
            ("api.example.com=127.0.0.1", "loopback"),
            ("api.example.com=0.0.0.0", "unspecified"),
            ("=203.0.113.10", "empty"),
            ("localhost=203.0.113.10", "at least two labels"),
            ("a_b.example=203.0.113.10", "label"),
            (
                "api.example.com=203.0.113.10,serve=podnet/toolbox",
                "podnet/http-echo, podnet/tcp-echo, podnet/udp-echo",
            ),
            (
                "api.example.com=203.0.113.10,serve=nginx",
                "outside host api.example.com cannot serve \"nginx\"",
            ),
            (
                "api.example.com=203.0.113.10,port=80",
                "only option is serve=IMAGE",
            ),
            (
                "api.example.com=203.0.113.10,serve=podnet/http-echo,serve=podnet/tcp-echo",
                "twice",
            ),
        ] {
            check(bad, Err(why));
        }
    }

    #[test]
    fn an_outside_address_serves_one_image() {
        let hosts = |flags: &[&str]| {
            flags
                .iter()
                .map(|f| external_host(f).unwrap())
                .collect::<Vec<_>>()
        };
        let served = served_addresses(&hosts(&[
            "api.example.com=203.0.113.10,serve=podnet/http-echo",
            "www.example.com=203.0.113.10",
            "alias.example.com=203.0.113.10,serve=podnet/http-echo",
            "echo.example.com=203.0.113.20,serve=podnet/tcp-echo",
            "dark.example.com=203.0.113.30",
        ]))
        .unwrap();
        let got: Vec<_> = served
            .iter()
            .map(|(ip, (name, image))| (ip.to_string(), name.as_str(), image.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "203.0.113.10".to_owned(),
                    "api.example.com",
                    "podnet/http-echo"
                ),
                (
                    "203.0.113.20".to_owned(),
                    "echo.example.com",
                    "podnet/tcp-echo"
                ),
            ]
        );
        let err = served_addresses(&hosts(&[
            "api.example.com=203.0.113.10,serve=podnet/http-echo",
            "echo.example.com=203.0.113.10,serve=podnet/tcp-echo",
        ]))
        .unwrap_err();
        assert!(
            err.contains("203.0.113.10 is served twice")
                && err.contains("api.example.com")
                && err.contains("echo.example.com"),
            "{err}"
        );
    }

    #[test]
    fn served_outside_addresses_lead_outside() {
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let check = |flag: &str, expected: Option<&str>| {
            let served = served_addresses(&[external_host(flag).unwrap()]).unwrap();
            let got = check_served_outside(
                &served,
                net("10.244.0.0/16"),
                net("172.18.0.0/16"),
                net("10.96.0.0/12"),
            );
            match (got, expected) {
                (Ok(()), None) => {}
                (Err(got), Some(why)) => assert!(got.contains(why), "{flag}: {got}"),
                (got, want) => panic!("{flag}: got {got:?}, expected {want:?}"),
            }
        };
        check("a.example.com=203.0.113.10,serve=podnet/http-echo", None);
        // Only served addresses need to lead outside.
        check("a.example.com=10.244.1.5", None);
        check(
            "a.example.com=10.244.1.5,serve=podnet/http-echo",
            Some("the pod network 10.244.0.0/16"),
        );
        check(
            "a.example.com=172.18.0.2,serve=podnet/http-echo",
            Some("the node network"),
        );
        check(
            "a.example.com=10.96.0.10,serve=podnet/udp-echo",
            Some("the Service range"),
        );
        check(
            "a.example.com=192.0.2.53,serve=podnet/tcp-echo",
            Some("the outside resolver's address"),
        );
    }

    #[test]
    fn dns_upstreams_are_an_address_and_a_port() {
        assert_eq!(
            dns_upstream("127.0.0.53:53"),
            Ok("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            dns_upstream("[::1]:5353"),
            Ok("[::1]:5353".parse().unwrap())
        );
        for (bad, why) in [
            ("localhost:53", "expected IP:PORT"),
            ("127.0.0.1", "expected IP:PORT"),
            ("127.0.0.1:0", "port 0"),
            ("0.0.0.0:53", "unspecified"),
        ] {
            let got = dns_upstream(bad).unwrap_err();
            assert!(got.contains(why), "{bad}: {got}");
        }
    }

    #[test]
    fn durations_are_parsed_and_kept_in_range() {
        fn check(
            parser: fn(&str) -> Result<Duration, String>,
            s: &str,
            want: Result<Duration, &str>,
        ) {
            match (parser(s), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{s}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{s}: {got}"),
                (got, want) => panic!("{s}: got {got:?}, want {want:?}"),
            }
        }
        check(node_grace_period, "3s", Ok(ms(3000)));
        check(node_grace_period, "1s", Ok(ms(1000)));
        check(node_grace_period, "0s", Err("must be at least 400ms"));
        check(node_grace_period, "banana", Err("not a duration"));
        check(node_grace_period, "banana", Err("like 3s, 500ms or 2m"));
        check(node_grace_period, "5", Err("not a duration"));
        check(node_grace_period, "99999h", Err("too large: at most 24h"));
        check(interval, "0s", Err("must be at least 10ms"));
        check(interval, "250ms", Ok(ms(250)));
        check(timeout, "0s", Ok(Duration::ZERO));
        check(timeout, "2m", Ok(ms(120_000)));
        check(run_length, "0s", Err("must be at least 1s"));
        check(
            |s| duration_in(s, Duration::from_nanos(1), Duration::MAX),
            "0s",
            Err("must be greater than zero"),
        );
    }

    #[test]
    fn pod_network_flags() {
        assert_eq!(
            cluster_cidr("10.0.0.0/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert!(
            cluster_cidr("garbage")
                .unwrap_err()
                .contains("not an IPv4 CIDR")
        );
        assert!(
            cluster_cidr("10.244.1.0/16")
                .unwrap_err()
                .contains("10.244.0.0/16")
        );
        assert!(
            cluster_cidr("192.0.0.0/16")
                .unwrap_err()
                .contains("192.0.2.53, the outside world's resolver")
        );
        assert_eq!(node_cidr_mask_size("26"), Ok(26));
        for bad in ["0", "31", "x", "-1"] {
            assert!(node_cidr_mask_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_counts_are_checked_against_the_pod_and_node_networks() {
        fn check(nodes: usize, cluster: &str, mask: u8, want: Result<(), &[&str]>) {
            let node_net: Ipv4Net = DEFAULT_NODE_CIDR.parse().unwrap();
            let got = check_capacity(nodes, cluster.parse().unwrap(), mask, node_net);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(parts)) => {
                    for part in parts {
                        assert!(e.0.contains(part), "{nodes} in {cluster}/{mask}: {e}");
                    }
                }
                (got, want) => panic!("{nodes} in {cluster} /{mask}: got {got:?}, want {want:?}"),
            }
        }
        check(3, "10.244.0.0/16", 24, Ok(()));
        check(256, "10.244.0.0/16", 24, Ok(()));
        check(
            300,
            "10.244.0.0/16",
            24,
            Err(&[
                "300 nodes do not fit",
                "room for 256 node podCIDRs of /24",
                "--cluster-cidr 10.244.0.0/15",
                "--node-cidr-mask-size 25",
            ]),
        );
        check(300, "10.244.0.0/15", 24, Ok(()));
        check(1000, "10.244.0.0/16", 26, Ok(()));
        check(1000, "10.0.0.0/8", 24, Ok(()));
        check(3, "10.244.0.0/23", 24, Err(&["room for 2 node podCIDRs"]));
        check(1, "10.244.0.0/24", 24, Ok(()));
        check(
            1,
            "10.244.0.0/24",
            16,
            Err(&["shorter than --cluster-cidr"]),
        );
        check(
            1,
            "10.0.0.0/8",
            25,
            Err(&["more than 16 bits longer", "at most 24"]),
        );
        // The node network holds 65533 nodes.
        check(
            65_534,
            "10.0.0.0/8",
            24,
            Err(&["node network 172.18.0.0/16 has 65533"]),
        );
    }
}
