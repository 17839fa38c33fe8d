//! The resolv.conf of a pod, as the kubelet forms it (`GetPodDNS` in
//! pkg/kubelet/network/dns/dns.go): the pod's `dnsPolicy` picks the base,
//! its `dnsConfig` is merged in, and the result is cut to the limits.
//!
//! - `getPodDNSType`: `None` is none; `ClusterFirstWithHostNet` is the
//!   cluster's; `ClusterFirst` is the cluster's unless the pod has
//!   `hostNetwork: true`, where it falls back to `Default`; `Default` is
//!   the node's resolv.conf.
//! - Cluster: nameserver the cluster DNS Service, search
//!   `<ns>.svc.<zone> svc.<zone> <zone>` then the node's search domains
//!   (duplicates dropped), options `ndots:5` (the node's are not kept).
//! - Node (`Default`): the node's nameservers, search domains and options.
//! - `None`: empty.
//! - `appendDNSConfig`: `dnsConfig.nameservers` and `searches` appended
//!   (duplicates dropped, first one kept), `options` merged by name with
//!   `dnsConfig` winning (`mergeDNSOptions`). The kubelet rebuilds options
//!   from a Go map, so their order is unspecified there; here an option
//!   keeps the place of its first mention.
//! - `formDNSConfigFitsLimits`: at most 3 nameservers; search domains
//!   longer than 253 characters dropped, at most 32, and the line at most
//!   2048 characters (the last domains cut). Each cut is a warning the
//!   kubelet records as a `DNSConfigForming` Event on the pod.
//!
//! The node's resolv.conf ([`NodeResolvConf`]) is parsed as
//! `parseResolvConf` does: `nameserver` lines add up, the last `search`
//! and `options` lines win, `#` starts a comment; search domains lose a
//! trailing dot. Unlike the kubelet, a nameserver that is not an IP
//! address is refused when the node starts rather than written into every
//! pod's file.
//!
//! Pure: no file reads, the caller passes the text and the pod.

use std::net::IpAddr;

use podnet_proto::model::network::{CLUSTER_DOMAIN, OUTSIDE_DNS_IP};
use serde_json::Value;

/// `validation.MaxDNSNameservers` (and glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// `validation.MaxDNSSearchPaths`.
pub const MAX_SEARCH_PATHS: usize = 32;
/// `validation.MaxDNSSearchListChars`, spaces included.
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// `utilvalidation.DNS1123SubdomainMaxLength`: longer search domains make
/// some resolvers abort, so the kubelet drops them.
const MAX_SEARCH_DOMAIN_CHARS: usize = 253;
/// `defaultDNSOptions`.
const CLUSTER_OPTIONS: &[&str] = &["ndots:5"];

/// The node's own resolv.conf: what `dnsPolicy: Default` pods get and
/// whose search domains ClusterFirst pods inherit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolvConfError {
    #[error("line {line}: `nameserver` needs an address")]
    MissingNameserver { line: usize },
    #[error("line {line}: nameserver {value:?} is not an IP address")]
    BadNameserver { line: usize, value: String },
}

impl NodeResolvConf {
    /// The resolv.conf of an emulated node without `--resolv-conf`: the
    /// outside world's resolver (`OUTSIDE_DNS_IP`, which the node serves)
    /// as its only nameserver, no search domains, no options. The cluster
    /// DNS forwards there what is not in its zones.
    pub fn builtin() -> NodeResolvConf {
        NodeResolvConf {
            nameservers: vec![OUTSIDE_DNS_IP.to_string()],
            searches: Vec::new(),
            options: Vec::new(),
        }
    }

    /// Reads a resolv.conf as the kubelet's `parseResolvConf`.
    pub fn parse(text: &str) -> Result<NodeResolvConf, ResolvConfError> {
        let mut conf = NodeResolvConf {
            nameservers: Vec::new(),
            searches: Vec::new(),
            options: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            let mut fields = trimmed.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    let value = fields
                        .next()
                        .ok_or(ResolvConfError::MissingNameserver { line: line_no })?;
                    if value.parse::<IpAddr>().is_err() {
                        return Err(ResolvConfError::BadNameserver {
                            line: line_no,
                            value: value.to_owned(),
                        });
                    }
                    conf.nameservers.push(value.to_owned());
                }
                Some("search") => {
                    conf.searches = fields
                        .map(|s| s.strip_suffix('.').unwrap_or(s).to_owned())
                        .collect();
                }
                Some("options") => conf.options = fields.map(str::to_owned).collect(),
                _ => {}
            }
        }
        Ok(conf)
    }
}

/// What of a pod decides its DNS: its namespace and spec fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDnsSpec {
    pub namespace: String,
    /// `spec.dnsPolicy`; empty is the API's default, `ClusterFirst`.
    pub policy: String,
    pub host_network: bool,
    pub config: Option<PodDnsConfig>,
}

/// `spec.dnsConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `(name, value)`.
    pub options: Vec<(String, Option<String>)>,
}

impl PodDnsSpec {
    /// The DNS fields of a pod object (already validated by the API).
    pub fn from_pod(pod: &Value) -> PodDnsSpec {
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let config = pod
            .pointer("/spec/dnsConfig")
            .filter(|c| c.is_object())
            .map(|c| PodDnsConfig {
                nameservers: strings(c.get("nameservers")),
                searches: strings(c.get("searches")),
                options: c
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|options| {
                        options
                            .iter()
                            .filter_map(|o| {
                                let name = o.get("name")?.as_str()?.to_owned();
                                let value = o.get("value").and_then(Value::as_str);
                                Some((name, value.map(str::to_owned)))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        PodDnsSpec {
            namespace: pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            policy: pod
                .pointer("/spec/dnsPolicy")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            host_network: pod
                .pointer("/spec/hostNetwork")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            config,
        }
    }
}

/// Which base a pod's resolv.conf starts from (`podDNSType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    Cluster,
    Node,
    None,
}

/// `getPodDNSType`. An unknown policy (which the API rejects) is the
/// cluster's, as the kubelet falls back.
pub fn dns_type(policy: &str, host_network: bool) -> DnsType {
    match policy {
        "None" => DnsType::None,
        "ClusterFirstWithHostNet" => DnsType::Cluster,
        "Default" => DnsType::Node,
        // ClusterFirst on the host's network falls back to Default.
        "ClusterFirst" | "" if host_network => DnsType::Node,
        _ => DnsType::Cluster,
    }
}

/// A pod's resolv.conf lines, and why the kubelet would warn about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
    /// Messages of `DNSConfigForming` Warning Events.
    pub warnings: Vec<String>,
}

/// `GetPodDNS` for a node with `node` as its resolv.conf and the cluster
/// DNS at `cluster_dns` in zone `cluster_domain`.
pub fn pod_dns(
    pod: &PodDnsSpec,
    node: &NodeResolvConf,
    cluster_dns: &[IpAddr],
    cluster_domain: &str,
) -> PodDns {
    let mut dns = PodDns::default();
    match dns_type(&pod.policy, pod.host_network) {
        DnsType::None => {}
        DnsType::Cluster if !cluster_dns.is_empty() => {
            dns.nameservers = cluster_dns.iter().map(IpAddr::to_string).collect();
            dns.searches = cluster_searches(&pod.namespace, cluster_domain, &node.searches);
            dns.options = CLUSTER_OPTIONS.iter().map(|o| (*o).to_owned()).collect();
        }
        // Without a cluster DNS the kubelet falls back to Default.
        DnsType::Cluster | DnsType::Node => {
            dns.nameservers = node.nameservers.clone();
            dns.searches = node.searches.clone();
            dns.options = node.options.clone();
        }
    }
    if let Some(config) = &pod.config {
        dns.nameservers = omit_duplicates(dns.nameservers.iter().chain(&config.nameservers));
        dns.searches = omit_duplicates(dns.searches.iter().chain(&config.searches));
        dns.options = merge_options(&dns.options, &config.options);
    }
    fit_limits(&mut dns);
    dns
}

/// `pod_dns` for a pod object with the cluster DNS at `cluster_dns` and
/// podnet's zone.
pub fn for_pod(pod: &Value, node: &NodeResolvConf, cluster_dns: IpAddr) -> PodDns {
    pod_dns(
        &PodDnsSpec::from_pod(pod),
        node,
        &[cluster_dns],
        CLUSTER_DOMAIN,
    )
}

/// `generateSearchesForDNSClusterFirst`.
fn cluster_searches(namespace: &str, zone: &str, node: &[String]) -> Vec<String> {
    if zone.is_empty() {
        return node.to_vec();
    }
    let cluster = [
        format!("{namespace}.svc.{zone}"),
        format!("svc.{zone}"),
        zone.to_owned(),
    ];
    omit_duplicates(cluster.iter().chain(node))
}

/// `omitDuplicates`: the first of equal strings stays.
fn omit_duplicates<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|s| seen.insert(s.as_str())).cloned().collect()
}

/// `mergeDNSOptions`: by name (what precedes the first `:`), the pod's
/// `dnsConfig` winning; a name without a value is written bare.
fn merge_options(existing: &[String], config: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match merged.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_owned(),
        None => merged.push((name.to_owned(), value.to_owned())),
    };
    for option in existing {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        set(name, value);
    }
    for (name, value) in config {
        set(name, value.as_deref().unwrap_or_default());
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect()
}

/// `formDNSConfigFitsLimits`.
fn fit_limits(dns: &mut PodDns) {
    if dns.nameservers.len() > MAX_NAMESERVERS {
        dns.nameservers.truncate(MAX_NAMESERVERS);
        dns.warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            dns.nameservers.join(" ")
        ));
    }
    let mut exceeded = false;
    if dns.searches.len() > MAX_SEARCH_PATHS {
        dns.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = dns.searches.len();
    dns.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_CHARS);
    exceeded |= dns.searches.len() != before;
    let line = dns.searches.join(" ").len();
    if line > MAX_SEARCH_LIST_CHARS {
        // Cut domains from the end until the line fits.
        let mut cut = 0;
        while let Some(last) = dns.searches.pop() {
            cut += last.len() + 1;
            if line.saturating_sub(cut) <= MAX_SEARCH_LIST_CHARS {
                break;
            }
        }
        exceeded = true;
    }
    if exceeded {
        dns.warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            dns.searches.join(" ")
        ));
    }
}

#[cfg(test)]
mod tests;
