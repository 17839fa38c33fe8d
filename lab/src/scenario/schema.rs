//! The scenario file's schema: serde types with `deny_unknown_fields`,
//! parsed and checked in one step ([`parse`]), so `podnet run --check`
//! rejects every bad value before anything boots. Reading the file
//! ([`load`]) is separate from parsing it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use podnet_proto::model::LinkSpec;
use podnet_proto::model::view::Protocol;
use serde::Deserialize;
use serde_json::Value;

use crate::api;
use crate::manifest::{self, InputError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Manifest files (relative to the scenario file) or inline objects.
    #[serde(default)]
    pub manifests: Vec<ManifestRef>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// How long to wait for everything to be Ready, e.g. `60s` (a unit is
    /// required).
    #[serde(default, deserialize_with = "duration")]
    pub ready_timeout: Option<Duration>,
    /// The run's seed: request schedules and fault targets follow from it
    /// (1 when not given).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Open-loop flows run once everything is Ready.
    #[serde(default)]
    pub traffic: Vec<super::plan::TrafficSpec>,
    /// One timeline of faults and actions, from the traffic's start.
    #[serde(default)]
    pub faults: Vec<super::plan::FaultSpec>,
    #[serde(default)]
    pub generator: Option<GeneratorSpec>,
}

/// The generator's own validity bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// The largest p99 of send − scheduled time a valid run may have
    /// (1ms by default).
    #[serde(default, deserialize_with = "duration")]
    pub max_lag: Option<Duration>,
}

impl Scenario {
    /// How long the runner waits for everything to be Ready.
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout.unwrap_or(Duration::from_secs(60))
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }

    /// The generator's lag bound for a valid run.
    pub fn max_lag(&self) -> Duration {
        self.generator
            .as_ref()
            .and_then(|g| g.max_lag)
            .unwrap_or(Duration::from_millis(1))
    }

    /// The checked faults (`parse` has checked them once already).
    pub fn checked_faults(&self) -> Result<Vec<super::plan::Fault>, String> {
        self.faults
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.checked(i, &self.cluster)
                    .map_err(|e| format!("faults[{i}]{e}"))
            })
            .collect()
    }

    /// The windowed expectations, checked, with their index in `expect`.
    pub fn windowed(&self) -> Result<Vec<(usize, super::plan::Windowed)>, String> {
        self.expect
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Expectation::Windowed(w) => Some((i, w)),
                _ => None,
            })
            .map(|(i, w)| {
                w.checked()
                    .map(|c| (i, c))
                    .map_err(|e| format!("expect[{i}]{e}"))
            })
            .collect()
    }
}

/// A duration with its unit (`500ms`, `60s`), read where it stands in the
/// file, so a bad one is reported with its line and column.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    podnet_proto::model::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    #[serde(default)]
    pub nodes: Option<NodesField>,
    /// `default`, `A<->B` or `A->B`, where A and B are node names or
    /// `zone-Z` for every node of zone Z.
    #[serde(default)]
    pub links: BTreeMap<String, LinkSettings>,
    /// `NAMESPACE/NAME` of the Service the ingress controller sends
    /// requests to that no Ingress routes (`podnet up
    /// --ingress-default-backend`).
    #[serde(default, deserialize_with = "namespaced_name")]
    pub ingress_default_backend: Option<String>,
    /// Hosts of the emulated outside world (`podnet up --external
    /// NAME=IP[,serve=IMAGE]`): the nodes' outside resolver answers A for
    /// them, and NXDOMAIN for any other name; a host with `serve:` runs
    /// that built-in image at its address on every node.
    #[serde(default, deserialize_with = "external_hosts")]
    pub external: Vec<ExternalHost>,
    /// `ipv4` or `dual` (`podnet up --ip-family`; kind's
    /// `networking.ipFamily`, whose spelling `ipFamily` is taken too).
    #[serde(default, alias = "ipFamily", deserialize_with = "ip_family")]
    pub ip_family: Option<podnet_proto::model::network::ClusterFamilies>,
}

/// One outside host: its name, its address and the built-in image it
/// serves there (`serve:`), as `podnet up --external NAME=IP,serve=IMAGE`.
pub use crate::flags::ExternalHost;

/// An entry of `cluster.external` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalEntry {
    name: String,
    address: std::net::Ipv4Addr,
    #[serde(default)]
    serve: Option<String>,
}

fn external_hosts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ExternalHost>, D::Error> {
    let entries = Vec::<ExternalEntry>::deserialize(d)?;
    let hosts = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            ExternalHost::new(&e.name, e.address, e.serve.as_deref())
                .map_err(|why| serde::de::Error::custom(format!("cluster.external[{i}]: {why}")))
        })
        .collect::<Result<Vec<_>, D::Error>>()?;
    crate::flags::served_addresses(&hosts)
        .map_err(|why| serde::de::Error::custom(format!("cluster.external: {why}")))?;
    Ok(hosts)
}

fn ip_family<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<podnet_proto::model::network::ClusterFamilies>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    value
        .map(|v| crate::flags::ip_family(&v).map_err(serde::de::Error::custom))
        .transpose()
}

fn namespaced_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    value
        .map(|v| crate::flags::namespaced_name(&v).map_err(serde::de::Error::custom))
        .transpose()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NodesField {
    Count(usize),
    List(Vec<NodeSpec>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub jitter: Option<String>,
    #[serde(default)]
    pub loss: Option<String>,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub partition: bool,
    /// `drop` (the default) or `reject`; only with `partition: true`.
    #[serde(default)]
    pub partition_mode: Option<super::plan::PartitionModeSpec>,
    #[serde(default)]
    pub duplicate: Option<String>,
    #[serde(default)]
    pub reorder: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ManifestRef {
    File(String),
    Inline(serde_json::Map<String, Value>),
}

/// One expectation; the key that names its kind comes first in the
/// examples: `reachability`, `dns` or `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expectation {
    Reachability {
        reachability: Reachability,
    },
    Matrix {
        matrix: MatrixExpect,
    },
    Dns(DnsExpect),
    Http(HttpExpect),
    /// A verdict over a window of a `traffic` flow.
    Windowed(Box<super::plan::WindowedExpect>),
}

impl Expectation {
    /// What the expectation checks, in a few words, for a FAIL line when it
    /// could not be checked at all.
    pub fn summary(&self) -> String {
        match self {
            Expectation::Reachability { reachability: r } => format!(
                "reachability {} -> {} port {}/{}",
                r.from, r.to, r.port, r.protocol
            ),
            Expectation::Matrix { matrix: m } => format!(
                "matrix {}/{} over {}",
                m.protocol.as_str().to_lowercase(),
                m.port,
                m.namespaces.join(", ")
            ),
            Expectation::Dns(d) => format!("dns {} {} from {}", d.dns, d.rtype, d.from),
            Expectation::Http(h) => format!("http {} from {}", h.http, h.from),
            Expectation::Windowed(w) => format!("{} over traffic {}", w.name, w.traffic),
        }
    }
}

/// `{dns: NAME, type: A, from: POD, answers: [...]}`: what a pod's resolver
/// gets for NAME (the pod's search path applies). Answers may be literal,
/// `service:[NS/]NAME` (that Service's ClusterIP) or `pods:[NS/]SELECTOR`
/// (the IPs of the matching ready pods).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExpect {
    pub dns: String,
    #[serde(default = "a_record", rename = "type")]
    pub rtype: String,
    pub from: String,
    #[serde(default)]
    pub answers: Option<Vec<String>>,
    /// NOERROR, NXDOMAIN, ...
    #[serde(default)]
    pub rcode: Option<String>,
}

/// `{http: URL, from: POD, status: 200, count: 300, spread: {over: 3, min_share: 0.2}}`,
/// or from the host through the edge: `{http: https://shop.example.com/,
/// from: host, resolve: shop.example.com:ingress, cacert: ca.pem, status:
/// 200, backend: shop}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    pub http: String,
    /// A pod (`[NS/]NAME` or `[NS/]SELECTOR`), or `host`: real curl on
    /// this machine through the edge, like a user's browser.
    pub from: String,
    /// `HOST:ADDRESS`, as curl's `--resolve`: where the URL's host name
    /// leads. ADDRESS is a LoadBalancer address, or `ingress` for the ingress
    /// controller's. The URL's port is the Service's port; the request goes
    /// to the real port the edge listens on for it.
    #[serde(default)]
    pub resolve: Option<String>,
    /// CA certificate (PEM, relative to the scenario file) that https URLs
    /// are verified with.
    #[serde(default)]
    pub cacert: Option<String>,
    /// `[NS/]SERVICE` that must have served every request: the podnet/http-echo
    /// answer's `podIP` is one of its endpoints.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Requests to send (default 1, or 100 with `spread`).
    #[serde(default)]
    pub count: Option<usize>,
    /// Load balancing check over the `pod` field of podnet/http-echo answers.
    #[serde(default)]
    pub spread: Option<Spread>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// How many distinct backends must answer.
    pub over: usize,
    /// Smallest share of the requests any of them may get.
    #[serde(default)]
    pub min_share: f64,
}

fn a_record() -> String {
    "A".into()
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reachability {
    /// A pod: `name`, `namespace/name`, or a label selector (`app=web`,
    /// `namespace/app=web`) meaning every matching pod.
    pub from: String,
    /// A pod (same forms as `from`) or an IPv4 address.
    pub to: String,
    pub port: u16,
    /// TCP (the default), UDP or SCTP: the probe is `nc -z`, with `-u`
    /// or `--sctp`.
    #[serde(default)]
    pub protocol: Protocol,
    pub allowed: bool,
    /// Seconds to wait for a connection before calling it dropped.
    #[serde(default = "default_probe_timeout")]
    pub timeout: u64,
}

/// Checks a pod reference (`name`, `ns/name`, `selector`, `ns/selector`):
/// a selector must parse.
fn check_pod_reference(reference: &str) -> Result<(), String> {
    let rest = reference.split_once('/').map_or(reference, |(_, r)| r);
    if rest.is_empty() {
        return Err(format!("{reference:?} names no pod"));
    }
    if is_selector(rest) {
        podnet_proto::model::LabelSelector::parse(rest)
            .map_err(|e| format!("{reference:?}: {e}"))?;
    }
    Ok(())
}

/// A pod reference that is a label selector rather than a name: anything
/// a pod name (a DNS-1123 subdomain) cannot be, such as `app=web`,
/// `!canary` or `tier in (web)`.
pub fn is_selector(reference: &str) -> bool {
    !reference
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// `{matrix: {namespaces: [x, y], port: 80, expect: |\n  x/a x/b ...}}`:
/// every running pod of the namespaces probes every one on the port
/// (`podnet netpol matrix`), and each cell must be as the grid says (`.`
/// reachable, `X` blocked; rows are clients, columns servers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixExpect {
    pub namespaces: Vec<String>,
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// The grid, as `podnet netpol matrix` prints it.
    pub expect: String,
    /// Seconds to wait for a connection before calling it blocked.
    #[serde(default = "default_matrix_timeout")]
    pub timeout: u64,
}

fn default_matrix_timeout() -> u64 {
    1
}

fn default_probe_timeout() -> u64 {
    2
}

impl ClusterSpec {
    pub fn node_specs(&self) -> Vec<NodeSpec> {
        match &self.nodes {
            None => (1..=3)
                .map(|i| NodeSpec {
                    name: format!("node-{i}"),
                    ..Default::default()
                })
                .collect(),
            Some(NodesField::Count(n)) => (1..=*n)
                .map(|i| NodeSpec {
                    name: format!("node-{i}"),
                    ..Default::default()
                })
                .collect(),
            Some(NodesField::List(l)) => l.clone(),
        }
    }

    /// Expands `links` into directed Link specs, later keys overriding
    /// `default`.
    pub fn link_specs(&self) -> Result<Vec<LinkSpec>, String> {
        use super::plan::Nodes as _;
        let nodes = self.node_specs();
        let resolve = |end: &str| {
            self.resolve_end(end)
                .map_err(|e| format!("cluster.links: {e}"))
        };
        let mut out: BTreeMap<(String, String), LinkSpec> = BTreeMap::new();
        let mut put = |from: &str, to: &str, s: &LinkSettings| {
            if from != to {
                out.insert(
                    (from.to_string(), to.to_string()),
                    LinkSpec {
                        from: from.into(),
                        to: to.into(),
                        delay: s.delay.clone(),
                        jitter: s.jitter.clone(),
                        loss: s.loss.clone(),
                        rate: s.rate.clone(),
                        partition: s.partition,
                        partition_mode: s.partition_mode.map(Into::into),
                        duplicate: s.duplicate.clone(),
                        reorder: s.reorder.clone(),
                    },
                );
            }
        };
        if let Some(d) = self.links.get("default") {
            for a in &nodes {
                for b in &nodes {
                    put(&a.name, &b.name, d);
                }
            }
        }
        for (key, settings) in self.links.iter().filter(|(k, _)| k.as_str() != "default") {
            let (a, b, both) = if let Some((a, b)) = key.split_once("<->") {
                (a, b, true)
            } else if let Some((a, b)) = key.split_once("->") {
                (a, b, false)
            } else {
                return Err(format!(
                    "cluster.links: key {key:?} must be default, A<->B or A->B"
                ));
            };
            for x in resolve(a.trim())? {
                for y in resolve(b.trim())? {
                    put(&x, &y, settings);
                    if both {
                        put(&y, &x, settings);
                    }
                }
            }
        }
        for spec in out.values() {
            spec.params()
                .map_err(|e| format!("cluster.links[{}->{}]: {e}", spec.from, spec.to))?;
        }
        Ok(out.into_values().collect())
    }
}

impl super::plan::Nodes for ClusterSpec {
    fn resolve_end(&self, end: &str) -> Result<Vec<String>, String> {
        let nodes = self.node_specs();
        if nodes.iter().any(|n| n.name == end) {
            return Ok(vec![end.to_string()]);
        }
        if let Some(zone) = end.strip_prefix("zone-") {
            let members: Vec<String> = nodes
                .iter()
                .filter(|n| n.zone == zone)
                .map(|n| n.name.clone())
                .collect();
            if !members.is_empty() {
                return Ok(members);
            }
        }
        Err(format!(
            "{end:?} is neither a node nor zone-<zone> of a node"
        ))
    }

    fn all(&self) -> Vec<String> {
        self.node_specs().into_iter().map(|n| n.name).collect()
    }
}

/// Parses a scenario; `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Scenario, InputError> {
    let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| {
        let mut error = manifest::yaml_error(origin, &e);
        // An untagged enum only says that no kind matched; say why the
        // kind the entry names did not.
        if let Some(why) = explain_expectations(text) {
            error.0.push_str(&format!(" ({why})"));
        }
        error
    })?;
    let nodes = scenario.cluster.node_specs();
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in nodes.iter().enumerate() {
        if !seen.insert(&n.name) {
            return Err(InputError(format!(
                "{origin}: cluster.nodes[{i}].name: duplicate node name {:?}",
                n.name
            )));
        }
        let valid = !n.name.is_empty()
            && n.name.len() <= 63
            && n.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(InputError(format!(
                "{origin}: cluster.nodes[{i}].name: {:?} must be a DNS-1123 label (lowercase letters, digits, '-')",
                n.name
            )));
        }
        // What the node would refuse at start, refused here.
        if let Some(cpu) = &n.cpu {
            podnet_proto::model::parse_cpu_millis(cpu)
                .map_err(|e| InputError(format!("{origin}: cluster.nodes[{i}].cpu: {e}")))?;
        }
        if let Some(memory) = &n.memory {
            podnet_proto::model::parse_memory_bytes(memory)
                .map_err(|e| InputError(format!("{origin}: cluster.nodes[{i}].memory: {e}")))?;
        }
    }
    if nodes.is_empty() {
        return Err(InputError(format!(
            "{origin}: cluster.nodes: a cluster needs at least one node"
        )));
    }
    scenario
        .cluster
        .link_specs()
        .map_err(|e| InputError(format!("{origin}: {e}")))?;
    for (i, e) in scenario.expect.iter().enumerate() {
        check_expectation(e).map_err(|e| InputError(format!("{origin}: expect[{i}]{e}")))?;
    }
    check_experiment(&scenario).map_err(|e| InputError(format!("{origin}: {e}")))?;
    Ok(scenario)
}

/// The experiment sections: flows, faults and windowed expectations, and
/// what they name.
fn check_experiment(scenario: &Scenario) -> Result<(), String> {
    let mut names = Vec::new();
    for (i, t) in scenario.traffic.iter().enumerate() {
        if names.contains(&t.name) {
            return Err(format!(
                "traffic[{i}].name: two flows are named {:?}",
                t.name
            ));
        }
        names.push(t.name.clone());
        let profile = t.profile().map_err(|e| format!("traffic[{i}]: {e}"))?;
        if profile.length() + t.warmup() > super::plan::MAX_LENGTH {
            return Err(format!("traffic[{i}]: a flow runs at most 1h"));
        }
        if t.warmup() >= profile.length() && !profile.segments.is_empty() {
            return Err(format!("traffic[{i}].warmup: longer than the flow itself"));
        }
        let target = t.target().map_err(|e| {
            if e.starts_with('"') {
                format!("traffic[{i}].request: {e}")
            } else {
                format!("traffic[{i}].{e}")
            }
        })?;
        if t.source() == super::plan::Source::Host {
            let url = match &target {
                super::plan::Target::Http { url, .. } => Some(url.clone()),
                super::plan::Target::Tcp { host, port } => Some(format!("tcp://{host}:{port}")),
                super::plan::Target::Udp { host, port } => Some(format!("udp://{host}:{port}")),
                super::plan::Target::Dns { .. } => None,
            };
            if let Some(url) = url {
                flow_target(&url, t.resolve.as_deref())
                    .map_err(|e| format!("traffic[{i}]: {e}"))?;
            }
        }
    }
    let faults = scenario.checked_faults()?;
    let windowed = scenario.windowed()?;
    if !windowed.is_empty() && scenario.traffic.is_empty() {
        return Err(
            "expect: windowed expectations judge traffic, and the scenario has none".into(),
        );
    }
    super::plan::check_references(&faults, &names, &windowed)
}

/// Why the first expectation that is none of the kinds fails to be the
/// kind its key names: `expect[1]: reachability: unknown variant ...`.
fn explain_expectations(text: &str) -> Option<String> {
    let doc: Value = serde_saphyr::from_str(text).ok()?;
    let expect = doc.get("expect")?.as_array()?;
    expect.iter().enumerate().find_map(|(i, e)| {
        serde_json::from_value::<Expectation>(e.clone()).err()?;
        let why = if let Some(r) = e.get("reachability") {
            serde_json::from_value::<Reachability>(r.clone())
                .err()
                .map(|x| format!("reachability: {x}"))
        } else if let Some(m) = e.get("matrix") {
            serde_json::from_value::<MatrixExpect>(m.clone())
                .err()
                .map(|x| format!("matrix: {x}"))
        } else if e.get("dns").is_some() {
            serde_json::from_value::<DnsExpect>(e.clone())
                .err()
                .map(|x| x.to_string())
        } else if e.get("http").is_some() {
            serde_json::from_value::<HttpExpect>(e.clone())
                .err()
                .map(|x| x.to_string())
        } else {
            Some("an expectation is one of reachability, matrix, dns or http".into())
        };
        Some(format!("expect[{i}]: {}", why?))
    })
}

/// What serde cannot check of one expectation; the error starts with the
/// field path below `expect[i]` (`.type: ...`, `: ...`).
fn check_expectation(e: &Expectation) -> Result<(), String> {
    match e {
        Expectation::Reachability { reachability: r } => {
            check_pod_reference(&r.from).map_err(|e| format!(".reachability.from: {e}"))?;
            if r.to.parse::<std::net::Ipv4Addr>().is_err() {
                check_pod_reference(&r.to).map_err(|e| format!(".reachability.to: {e}"))?;
            }
            if r.port == 0 {
                return Err(".reachability.port: must be between 1 and 65535".into());
            }
            if r.timeout == 0 {
                return Err(".reachability.timeout: must be at least 1 (seconds)".into());
            }
        }
        Expectation::Matrix { matrix: m } => {
            if m.namespaces.is_empty() {
                return Err(".matrix.namespaces: names no namespace".into());
            }
            if m.port == 0 {
                return Err(".matrix.port: must be between 1 and 65535".into());
            }
            if m.timeout == 0 {
                return Err(".matrix.timeout: must be at least 1 (seconds)".into());
            }
            crate::matrix::parse(&m.expect).map_err(|e| format!(".matrix.expect: {e}"))?;
        }
        Expectation::Dns(d) => {
            check_pod_reference(&d.from).map_err(|e| format!(".from: {e}"))?;
            if !matches!(
                d.rtype.as_str(),
                "A" | "AAAA" | "SRV" | "PTR" | "CNAME" | "TXT" | "SOA"
            ) {
                return Err(format!(
                    ".type: {:?} is not one of A, AAAA, SRV, PTR, CNAME, TXT, SOA",
                    d.rtype
                ));
            }
        }
        Expectation::Http(h) => {
            if h.from == "host" {
                host_target(h).map_err(|e| format!(": {e}"))?;
            } else {
                check_pod_reference(&h.from).map_err(|e| format!(".from: {e}"))?;
                if !h.http.starts_with("http://") {
                    return Err(format!(".http: {:?} must be an http:// URL", h.http));
                }
                if h.resolve.is_some() || h.cacert.is_some() || h.backend.is_some() {
                    return Err(": resolve, cacert and backend apply to `from: host` only".into());
                }
            }
            if h.count == Some(0) {
                return Err(".count: must be at least 1".into());
            }
            if let Some(s) = &h.spread
                && (s.over == 0 || !(0.0..=1.0).contains(&s.min_share))
            {
                return Err(".spread: over must be >= 1 and min_share within 0..1".into());
            }
        }
        // Checked with the traffic and faults it names.
        Expectation::Windowed(_) => {}
    }
    Ok(())
}

pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    Ok(parse(&path.display().to_string(), &text)?)
}

/// The scenario's manifests as Kubernetes objects, validated the way the
/// API server will validate them.
pub fn manifests(path: &Path, scenario: &Scenario) -> anyhow::Result<Vec<Value>> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut objects = Vec::new();
    for (i, m) in scenario.manifests.iter().enumerate() {
        match m {
            ManifestRef::File(f) => objects.extend(manifest::read(&base.join(f))?),
            ManifestRef::Inline(o) => {
                if o.is_empty() {
                    return Err(InputError(format!(
                        "{}: manifests[{i}]: empty object",
                        path.display()
                    ))
                    .into());
                }
                objects.push(Value::Object(o.clone()));
            }
        }
    }
    api::default_namespace(&mut objects, "default");
    for o in &objects {
        podnet_controlplane::validate::validate(o)
            .map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    }
    Ok(objects)
}

/// Where a `from: host` request goes: the URL's parts and the address
/// its host name resolves to (`None`: the host is an address itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub resolve_to: Option<String>,
}

/// Where a `from: host` flow's target leads (`scheme://host[:port]...`,
/// the port defaulted for http and https only), as for an `http`
/// expectation from the host.
pub fn flow_target(url: &str, resolve: Option<&str>) -> Result<HostTarget, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let default = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let (host, port) = authority(url, rest, default)?;
    Ok(HostTarget {
        https: scheme == "https",
        port,
        resolve_to: resolve_to(&host, resolve)?,
        host,
    })
}

/// The host and port of `rest` (what follows `scheme://` in `url`).
fn authority(url: &str, rest: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("bad port in {url:?}"))?,
        ),
        None => (
            authority,
            default.ok_or_else(|| format!("{url:?} needs a port (HOST:PORT)"))?,
        ),
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    Ok((host.to_string(), port))
}

/// Where `resolve` (curl's `HOST:ADDRESS`) sends `host`; required for a
/// name, since the host cannot resolve the cluster's names.
fn resolve_to(host: &str, resolve: Option<&str>) -> Result<Option<String>, String> {
    match resolve {
        None => {
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(format!(
                    "resolve: required for the host name {host:?} (HOST:ADDRESS, ADDRESS an IP, `ingress` or `service:[NS/]NAME`)"
                ));
            }
            Ok(None)
        }
        Some(r) => {
            let (name, to) = r
                .split_once(':')
                .ok_or_else(|| format!("resolve: {r:?} is not HOST:ADDRESS"))?;
            if !name.eq_ignore_ascii_case(host) {
                return Err(format!(
                    "resolve: {r:?} names {name:?}, the URL's host is {host:?}"
                ));
            }
            let service = to.strip_prefix("service:").map(|r| {
                let (ns, name) = r.split_once('/').unwrap_or(("default", r));
                podnet_proto::model::names::dns1123_label(ns).is_empty()
                    && podnet_proto::model::names::dns1035_label(name).is_empty()
            });
            if service == Some(false)
                || (service.is_none()
                    && to != "ingress"
                    && to.parse::<std::net::Ipv4Addr>().is_err())
            {
                return Err(format!(
                    "resolve: {to:?} is neither an IPv4 address, `ingress` nor `service:[NS/]NAME` (a LoadBalancer Service)"
                ));
            }
            Ok(Some(to.to_string()))
        }
    }
}

pub fn host_target(h: &HttpExpect) -> Result<HostTarget, String> {
    let https = if h.http.starts_with("https://") {
        true
    } else if h.http.starts_with("http://") {
        false
    } else {
        return Err(format!(
            "http: {:?} must be an http:// or https:// URL",
            h.http
        ));
    };
    let target = flow_target(&h.http, h.resolve.as_deref()).map_err(|e| {
        if e.starts_with("resolve:") {
            e
        } else {
            format!("http: {e}")
        }
    })?;
    if https != h.cacert.is_some() {
        return Err(if https {
            "cacert: required for https (the CA that signed the Ingress's certificate)".into()
        } else {
            "cacert: only for https URLs".into()
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_take_a_partition_mode_duplicate_and_reorder() {
        let text = "name: t
cluster:
  nodes: 2
  links:
    node-1->node-2: {partition: true, partition_mode: reject}
    node-2->node-1: {delay: 10ms, reorder: 25%, duplicate: 1%}
";
        let links = parse("t.yaml", text).unwrap().cluster.link_specs().unwrap();
        let params: Vec<_> = links.iter().map(|l| l.params().unwrap()).collect();
        assert!(params[0].rejects(), "{:?}", links[0]);
        assert!((params[1].reorder - 0.25).abs() < 1e-12);
        assert!((params[1].duplicate - 0.01).abs() < 1e-12);
        for (links, expected) in [
            (
                "{node-1->node-2: {partition_mode: reject}}",
                "spec.partitionMode: only with spec.partition: true",
            ),
            (
                "{node-1->node-2: {reorder: 25%}}",
                "reordering not possible without specifying some delay",
            ),
        ] {
            let text = format!("name: t\ncluster:\n  nodes: 2\n  links: {links}\n");
            let err = parse("t.yaml", &text)
                .map_err(|e| e.0)
                .and_then(|s| s.cluster.link_specs())
                .unwrap_err();
            assert!(err.contains(expected), "{links}: {err}");
        }
    }

    #[test]
    fn parses_nodes_links_and_expectations() {
        let text = r#"
name: t
cluster:
  nodes: [{name: node-1, zone: a}, {name: node-2, zone: a}, {name: node-3, zone: b}]
  links:
    default: {delay: 1ms}
    zone-a<->zone-b: {delay: 20ms, loss: 1%}
    node-1->node-2: {partition: true}
manifests:
  - {apiVersion: v1, kind: Namespace, metadata: {name: x}}
expect:
  - reachability: {from: "app=a", to: "app=b", port: 80, allowed: true}
"#;
        let s = parse("t.yaml", text).unwrap();
        let links = s.cluster.link_specs().unwrap();
        assert_eq!(links.len(), 6);
        let find = |f: &str, t: &str| {
            links
                .iter()
                .find(|l| l.from == f && l.to == t)
                .unwrap()
                .clone()
        };
        assert_eq!(find("node-1", "node-3").delay.as_deref(), Some("20ms"));
        assert_eq!(find("node-3", "node-2").loss.as_deref(), Some("1%"));
        assert!(find("node-1", "node-2").partition);
        assert!(!find("node-2", "node-1").partition);
        assert_eq!(find("node-2", "node-1").delay.as_deref(), Some("1ms"));
        assert_eq!(s.cluster.ingress_default_backend, None);
        let s = parse(
            "t.yaml",
            "name: t\ncluster: {ingress_default_backend: default/fallback}\n",
        )
        .unwrap();
        assert_eq!(
            s.cluster.ingress_default_backend.as_deref(),
            Some("default/fallback")
        );
        assert!(s.cluster.external.is_empty());
        let s = parse(
            "t.yaml",
            "name: t\ncluster:\n  external:\n    - {name: API.example.com., address: 203.0.113.10}\n",
        )
        .unwrap();
        assert_eq!(
            s.cluster.external,
            [ExternalHost {
                name: "api.example.com".into(),
                address: "203.0.113.10".parse().unwrap(),
                serve: None,
            }]
        );
        let s = parse(
            "t.yaml",
            "name: t\ncluster:\n  external:\n    - {name: api.example.com, address: 203.0.113.10, serve: podnet/http-echo}\n    - {name: www.example.com, address: 203.0.113.10}\n",
        )
        .unwrap();
        assert_eq!(
            s.cluster.external[0].serve.as_deref(),
            Some("podnet/http-echo")
        );
        assert_eq!(s.cluster.external[1].serve, None);
    }

    /// SCTP is a protocol a probe speaks (`nc --sctp -z`), in a
    /// reachability expectation and a matrix alike.
    #[test]
    fn reachability_and_matrix_take_sctp() {
        let text = "name: t\nexpect:\n  - reachability: {from: a, to: b, port: 5000, protocol: SCTP, allowed: true}\n  - matrix: {namespaces: [x], port: 5000, protocol: SCTP, expect: \"x/a\\nx/a .\"}\n";
        let scenario = parse("t.yaml", text).expect("SCTP probes parse");
        let protocols: Vec<Protocol> = scenario
            .expect
            .iter()
            .map(|e| match e {
                Expectation::Reachability { reachability } => reachability.protocol,
                Expectation::Matrix { matrix } => matrix.protocol,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(protocols, [Protocol::Sctp, Protocol::Sctp]);
        assert_eq!(
            crate::matrix::nc_protocol_flag(Protocol::Sctp),
            Some("--sctp")
        );
        assert_eq!(crate::matrix::nc_protocol_flag(Protocol::Udp), Some("-u"));
        assert_eq!(crate::matrix::nc_protocol_flag(Protocol::Tcp), None);
    }

    #[test]
    fn ip_family_is_ipv4_ipv6_or_dual_in_either_spelling() {
        use podnet_proto::model::network::ClusterFamilies;
        let family = |yaml: &str| parse("t.yaml", &format!("name: t\ncluster: {{{yaml}}}\n"));
        assert_eq!(family("").unwrap().cluster.ip_family, None);
        assert_eq!(
            family("ip_family: dual").unwrap().cluster.ip_family,
            Some(ClusterFamilies::Dual)
        );
        assert_eq!(
            family("ipFamily: ipv4").unwrap().cluster.ip_family,
            Some(ClusterFamilies::Ipv4)
        );
        assert_eq!(
            family("ip_family: ipv6").unwrap().cluster.ip_family,
            Some(ClusterFamilies::Ipv6)
        );
        let err = family("ip_family: IPv4").unwrap_err().to_string();
        assert!(
            err.contains("t.yaml:2") && err.contains("expected ipv4, ipv6 or dual"),
            "{err}"
        );
    }

    fn host_expect(http: &str, resolve: Option<&str>, cacert: Option<&str>) -> HttpExpect {
        HttpExpect {
            http: http.into(),
            from: "host".into(),
            resolve: resolve.map(String::from),
            cacert: cacert.map(String::from),
            backend: None,
            status: 200,
            count: None,
            spread: None,
        }
    }

    #[test]
    fn host_targets_need_a_resolvable_host_and_a_ca_for_https() {
        let t = host_target(&host_expect(
            "https://Shop.example.com:8443/a?b",
            Some("shop.example.com:ingress"),
            Some("ca.pem"),
        ))
        .unwrap();
        assert_eq!(
            t,
            HostTarget {
                https: true,
                host: "Shop.example.com".into(),
                port: 8443,
                resolve_to: Some("ingress".into())
            }
        );
        let t = host_target(&host_expect("http://127.0.1.4/", None, None)).unwrap();
        assert_eq!((t.port, t.resolve_to), (80, None));
        for (http, resolve, cacert, error) in [
            ("http://shop.example.com/", None, None, "resolve: required"),
            (
                "http://a.com/",
                Some("b.com:ingress"),
                None,
                "the URL's host is",
            ),
            (
                "http://a.com/",
                Some("a.com:somewhere"),
                None,
                "neither an IPv4",
            ),
            (
                "https://a.com/",
                Some("a.com:127.0.1.1"),
                None,
                "cacert: required",
            ),
            (
                "http://a.com/",
                Some("a.com:127.0.1.1"),
                Some("c"),
                "only for https",
            ),
            ("ftp://a.com/", None, None, "http:// or https://"),
            ("http://a.com:x/", None, None, "bad port"),
        ] {
            let err = host_target(&host_expect(http, resolve, cacert)).unwrap_err();
            assert!(err.contains(error), "{http}: {err}");
        }
    }

    #[test]
    fn errors_say_where() {
        let err = parse("s.yaml", "name: t\nclusterx: {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.yaml:2:"), "{err}");
        let err = parse("s.yaml", "name: t\ncluster:\n  nodes: [{name: A}]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.nodes[0].name"), "{err}");
        let err = parse(
            "s.yaml",
            "name: t\ncluster:\n  links: {node-1<->node-9: {delay: 1ms}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("node-9"), "{err}");
        let err = parse(
            "s.yaml",
            "name: t\ncluster:\n  links: {default: {loss: 200%}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("spec.loss"), "{err}");
    }

    #[test]
    fn every_bad_value_is_rejected_at_parse_time_with_where() {
        // (file text, what the error must contain)
        let check = |text: &str, expected: &str| {
            let err = parse("s.yaml", text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        };
        check("name: t\nready_timeout: 60\n", "s.yaml:2:");
        check("name: t\nready_timeout: 60\n", "has no unit");
        check("name: t\nready_timeout: soon\n", "not a duration");
        check("name: t\nready_timeout: 90m\n", "too large: at most 1h");
        check(
            "name: t\ncluster: {ingress_default_backend: Fallback}\n",
            "s.yaml:2:",
        );
        check(
            "name: t\ncluster: {ingress_default_backend: Fallback}\n",
            "expected NAMESPACE/NAME",
        );
        let external = |host: &str| format!("name: t\ncluster:\n  external: [{host}]\n");
        check(
            &external("{name: api.example.com, address: 127.0.0.1}"),
            "s.yaml:3:",
        );
        check(
            &external("{name: api.example.com, address: 127.0.0.1}"),
            "loopback",
        );
        check(
            &external("{name: localhost, address: 203.0.113.10}"),
            "at least two labels",
        );
        check(
            &external("{name: api.example.com, address: nowhere}"),
            "s.yaml:3:",
        );
        check(
            &external("{name: api.example.com, ip: 203.0.113.10}"),
            "unknown field",
        );
        check(
            &external(
                "{name: api.example.com, address: 203.0.113.10, serve: podnet/http-echo, port: 80}",
            ),
            "unknown field",
        );
        check(
            &external("{name: api.example.com, address: 203.0.113.10, serve: nginx}"),
            "s.yaml:3:",
        );
        check(
            &external("{name: api.example.com, address: 203.0.113.10, serve: nginx}"),
            "cluster.external[0]: outside host api.example.com cannot serve \"nginx\": an outside host serves one of podnet/http-echo, podnet/tcp-echo, podnet/udp-echo",
        );
        check(
            &external(
                "{name: a.example.com, address: 203.0.113.10, serve: podnet/http-echo}, {name: b.example.com, address: 203.0.113.10, serve: podnet/udp-echo}",
            ),
            "203.0.113.10 is served twice",
        );
        let probe = |fields: &str| {
            format!(
                "name: t\nexpect:\n  - reachability: {{from: a, to: b, port: 80, allowed: true, {fields}}}\n"
            )
        };
        check(&probe("protocol: ICMP"), "s.yaml:3:");
        check(&probe("protocol: ICMP"), "TCP");
        check(&probe("timeout: 0"), "expect[0].reachability.timeout");
        check(
            "name: t\nexpect:\n  - reachability: {from: \"app in (\", to: b, port: 80, allowed: true}\n",
            "expect[0].reachability.from",
        );
        check(
            "name: t\nexpect:\n  - reachability: {from: \"ns/\", to: b, port: 80, allowed: true}\n",
            "names no pod",
        );
        check(
            "name: t\nexpect:\n  - {dns: web, from: \"=web\"}\n",
            "expect[0].from",
        );
        check(
            "name: t\nexpect:\n  - {http: \"http://web/\", from: client, backend: web}\n",
            "apply to `from: host` only",
        );
        check(
            "name: t\nexpect:\n  - {http: \"http://web/\", from: client, count: 0}\n",
            "expect[0].count",
        );
        check(
            "name: t\ncluster:\n  nodes: [{name: a, cpu: lots}]\n",
            "cluster.nodes[0].cpu",
        );
        check(
            "name: t\ncluster:\n  nodes: [{name: a, memory: 8Gx}]\n",
            "cluster.nodes[0].memory",
        );
        let ok = parse("s.yaml", "name: t\nready_timeout: 90s\n").unwrap();
        assert_eq!(ok.ready_timeout(), Duration::from_secs(90));
        assert_eq!(
            parse("s.yaml", "name: t\n").unwrap().ready_timeout(),
            Duration::from_secs(60)
        );
    }
}
