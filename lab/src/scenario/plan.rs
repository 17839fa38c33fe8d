//! A scenario's experiment sections as written: `traffic` (open-loop
//! flows), `faults` (one timeline of faults and actions) and the windowed
//! expectations (`{name, traffic, window, METRIC: CONDITION}`), checked
//! before anything boots and turned into `podnet_experiment`'s types.
//!
//! Every number carries its unit; a unit-less one is refused where it
//! stands in the file (line and column). What serde cannot see (a window
//! naming a fault that does not exist, a cycle of event-relative times, a
//! metric's limit in the wrong unit) is refused with its path
//! (`faults[2].at: ...`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use podnet_experiment::schedule::{Arrival, Profile, Segment};
use podnet_experiment::verdict::{Check, Condition, MIN_SAMPLES, Metric, Recovery, Severity};
use podnet_experiment::window::{Anchor, BEFORE, WindowSpec};
use serde::Deserialize;

/// The longest a flow or the whole timeline may run.
pub const MAX_LENGTH: Duration = Duration::from_secs(3600);

fn rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let text = String::deserialize(d)?;
    podnet_experiment::units::parse_rate(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    podnet_experiment::units::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn required_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d).map(Option::unwrap_or_default)
}

fn required_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    rate(d).map(Option::unwrap_or_default)
}

/// One `traffic` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    pub name: String,
    /// `host`: from this machine through the edge's real listeners;
    /// `{pods: SELECTOR}` (or a pod's name or selector, `[NS/]...`, as
    /// the expectations' `from`): a generator inside each of those pods'
    /// network namespaces, the flow's rate shared among them.
    pub from: SourceSpec,
    /// `GET http://shop.example.com/cart` (the method may be left out),
    /// `https://...`, `tcp://HOST:PORT`, `udp://HOST:PORT`, `dns:NAME
    /// [TYPE]`.
    pub request: String,
    /// `HOST:ADDRESS`, as curl's `--resolve`: `shop.example.com:ingress`
    /// or a LoadBalancer address.
    #[serde(default)]
    pub resolve: Option<String>,
    #[serde(default, deserialize_with = "rate")]
    pub rate: Option<f64>,
    #[serde(default)]
    pub ramp: Vec<RampStep>,
    #[serde(default)]
    pub arrival: Option<Arrival>,
    /// A closed loop instead of a rate: this many workers, each sending
    /// its next request when the last is done (and `think` has passed).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// With `concurrency`: each worker's pause between requests.
    #[serde(default, deserialize_with = "duration")]
    pub think: Option<Duration>,
    /// With `rate` or `concurrency`: how long it runs.
    #[serde(default, deserialize_with = "duration")]
    pub duration: Option<Duration>,
    /// At the start, in no window.
    #[serde(default, deserialize_with = "duration")]
    pub warmup: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub connections: Option<Connections>,
    /// `"1.1"` (the default) or `"2"`: HTTP/2 by ALPN over TLS, with prior
    /// knowledge (h2c) in the clear.
    #[serde(default)]
    pub http_version: Option<String>,
    /// For https: the CA (a PEM file, relative to the scenario) that
    /// signed the server's certificate.
    #[serde(default)]
    pub cacert: Option<String>,
    /// For tcp: after connecting, send a line and read it back (a
    /// tcp-echo server) instead of only connecting.
    #[serde(default)]
    pub echo: bool,
}

/// `from:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceSpec {
    Word(String),
    Pods { pods: String },
}

/// Where a flow's requests leave from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Host,
    /// `[NS/]NAME` or `[NS/]SELECTOR`.
    Pods(String),
}

impl SourceSpec {
    pub fn source(&self) -> Source {
        match self {
            SourceSpec::Word(w) if w == "host" => Source::Host,
            SourceSpec::Word(w) => Source::Pods(w.clone()),
            SourceSpec::Pods { pods } => Source::Pods(pods.clone()),
        }
    }
}

/// One step of a `ramp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RampStep {
    /// `{to: 400/s, over: 10s}` (from the rate before, or `from:`).
    Ramp {
        #[serde(default, deserialize_with = "rate")]
        from: Option<f64>,
        #[serde(deserialize_with = "required_rate")]
        to: f64,
        #[serde(deserialize_with = "required_duration")]
        over: Duration,
    },
    /// `{hold: 60s}` at the rate reached.
    Hold {
        #[serde(deserialize_with = "required_duration")]
        hold: Duration,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Keep-alive (true, the default) or one connection per request.
    #[serde(default = "yes")]
    pub reuse: bool,
}

fn yes() -> bool {
    true
}

impl TrafficSpec {
    /// The rate profile, from `rate` + `duration` or from `ramp`; a
    /// closed loop's is its duration at no intended rate.
    pub fn profile(&self) -> Result<Profile, String> {
        if let Some(n) = self.concurrency {
            if self.rate.is_some() || !self.ramp.is_empty() || self.arrival.is_some() {
                return Err(
                    "concurrency makes a closed loop: leave rate, ramp and arrival out".into(),
                );
            }
            if n == 0 || n as usize > podnet_loadgen::MAX_IN_FLIGHT {
                return Err(format!(
                    "concurrency: {n} workers: give 1 to {}",
                    podnet_loadgen::MAX_IN_FLIGHT
                ));
            }
            let d = self
                .duration
                .ok_or("concurrency needs a duration (like duration: 60s)")?;
            return Ok(Profile {
                segments: vec![Segment::hold(0.0, d)],
            });
        }
        if self.think.is_some() {
            return Err("think is a closed loop's pause: it needs concurrency".into());
        }
        match (self.rate, self.ramp.is_empty()) {
            (Some(r), true) => {
                let d = self
                    .duration
                    .ok_or("rate needs a duration (like duration: 60s)")?;
                Ok(Profile {
                    segments: vec![Segment::hold(r, d)],
                })
            }
            (None, false) => {
                if self.duration.is_some() {
                    return Err("a ramp's steps give its length: leave duration out".into());
                }
                let mut segments = Vec::new();
                let mut current = 0.0;
                for step in &self.ramp {
                    match step {
                        RampStep::Ramp { from, to, over } => {
                            let from = from.unwrap_or(current);
                            segments.push(Segment {
                                from,
                                to: *to,
                                length: *over,
                            });
                            current = *to;
                        }
                        RampStep::Hold { hold } => segments.push(Segment::hold(current, *hold)),
                    }
                }
                Ok(Profile { segments })
            }
            (Some(_), false) => Err("give either rate (with duration) or ramp, not both".into()),
            (None, true) => Err("a flow needs a rate (like rate: 100/s) or a ramp".into()),
        }
    }

    pub fn warmup(&self) -> Duration {
        self.warmup.unwrap_or_default()
    }

    /// The closed loop `concurrency` asks for, if any.
    pub fn closed(&self) -> Option<podnet_loadgen::ClosedLoop> {
        Some(podnet_loadgen::ClosedLoop {
            concurrency: self.concurrency?,
            think: self.think.unwrap_or_default(),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(2))
    }

    pub fn reuse(&self) -> bool {
        self.connections.as_ref().is_none_or(|c| c.reuse)
    }

    pub fn source(&self) -> Source {
        self.from.source()
    }

    pub fn http_version(&self) -> Result<podnet_loadgen::HttpVersion, String> {
        match self.http_version.as_deref() {
            None | Some("1.1") => Ok(podnet_loadgen::HttpVersion::Http1),
            Some("2") => Ok(podnet_loadgen::HttpVersion::Http2),
            Some(v) => Err(format!("http_version: {v:?} is \"1.1\" or \"2\"")),
        }
    }

    /// What `request` asks, checked with the fields that go with it.
    pub fn target(&self) -> Result<Target, String> {
        let target = self.parse_target()?;
        let from_host = self.source() == Source::Host;
        let https = matches!(&target, Target::Http { url, .. } if url.starts_with("https://"));
        if https != self.cacert.is_some() {
            return Err(if https {
                "cacert: required for https (the CA that signed the server's certificate)".into()
            } else {
                "cacert: only for https URLs".into()
            });
        }
        if self.http_version.is_some() && !matches!(target, Target::Http { .. }) {
            return Err("http_version: only for http:// and https:// requests".into());
        }
        self.http_version()?;
        if self.echo && !matches!(target, Target::Tcp { .. }) {
            return Err("echo: only for tcp:// requests (udp:// ones always echo)".into());
        }
        if self.resolve.is_some() && (!from_host || matches!(target, Target::Dns { .. })) {
            return Err(if from_host {
                "resolve: a DNS flow asks the cluster DNS, resolve names a target's host".into()
            } else {
                "resolve: a pod resolves names with its own resolv.conf; resolve is for `from: host`".into()
            });
        }
        Ok(target)
    }

    fn parse_target(&self) -> Result<Target, String> {
        let t = self.request.trim();
        if let Some(q) = t.strip_prefix("dns:") {
            let mut words = q.split_whitespace();
            let name = words.next().unwrap_or("").to_string();
            let rtype = words.next().unwrap_or("A").to_ascii_uppercase();
            if name.is_empty() || words.next().is_some() {
                return Err(format!(
                    "{:?}: a query is written dns:NAME [TYPE]",
                    self.request
                ));
            }
            if !matches!(
                rtype.as_str(),
                "A" | "AAAA" | "SRV" | "PTR" | "CNAME" | "TXT" | "SOA"
            ) {
                return Err(format!(
                    "{:?}: the type is one of A, AAAA, SRV, PTR, CNAME, TXT, SOA",
                    self.request
                ));
            }
            if name.len() > 254
                || name
                    .trim_end_matches('.')
                    .split('.')
                    .any(|l| l.len() > 63 || l.is_empty())
            {
                return Err(format!("{:?}: {name:?} is not a DNS name", self.request));
            }
            return Ok(Target::Dns { name, rtype });
        }
        for (scheme, udp) in [("tcp://", false), ("udp://", true)] {
            if let Some(rest) = t.strip_prefix(scheme) {
                let (host, port) = rest
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                    .filter(|(h, p)| !h.is_empty() && !h.contains('/') && *p != 0)
                    .ok_or_else(|| format!("{:?}: written {scheme}HOST:PORT", self.request))?;
                let host = host.to_string();
                return Ok(if udp {
                    Target::Udp { host, port }
                } else {
                    Target::Tcp { host, port }
                });
            }
        }
        let (method, url) = self.method_and_url()?;
        Ok(Target::Http { method, url })
    }

    /// The method and URL of an HTTP `request`.
    fn method_and_url(&self) -> Result<(String, String), String> {
        let t = self.request.trim();
        let (method, url) = match t.split_once(char::is_whitespace) {
            Some((m, u)) => (m.to_string(), u.trim().to_string()),
            None => ("GET".to_string(), t.to_string()),
        };
        if !matches!(method.as_str(), "GET" | "HEAD" | "POST" | "PUT" | "DELETE") {
            return Err(format!(
                "{:?}: the method is one of GET, HEAD, POST, PUT, DELETE",
                self.request
            ));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "{:?}: a request is an http:// or https:// URL, tcp://HOST:PORT, udp://HOST:PORT or dns:NAME",
                self.request
            ));
        }
        if url.parse::<http::Uri>().is_err() {
            return Err(format!("{:?}: {url:?} is not a URL", self.request));
        }
        Ok((method, url))
    }
}

/// What a flow sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Http {
        method: String,
        url: String,
    },
    /// A TCP connection (with `echo`, a line sent and read back).
    Tcp {
        host: String,
        port: u16,
    },
    /// A datagram and its echo.
    Udp {
        host: String,
        port: u16,
    },
    /// A lookup: from the host, one query to a node's host DNS port
    /// (which forwards through that node's service proxy to the DNS pods);
    /// from a pod, through its resolver (resolv.conf's search list and
    /// `ndots` included, as getaddrinfo).
    Dns {
        name: String,
        rtype: String,
    },
}

/// `at:` of a fault: an offset from the traffic's start, or a time
/// relative to another fault's start or end.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    Offset(f64),
    After(Anchor),
}

impl At {
    pub fn parse(s: &str) -> Result<At, String> {
        match podnet_experiment::units::parse_duration(s) {
            Ok(d) => Ok(At::Offset(d.as_secs_f64())),
            Err(offset_error) => {
                let starts_numeric = s.trim().starts_with(|c: char| c.is_ascii_digit());
                if starts_numeric {
                    return Err(offset_error);
                }
                Anchor::parse(s).map(At::After)
            }
        }
    }
}

/// One `faults` entry: when, for how long, and exactly one of the kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default)]
    pub id: Option<String>,
    pub at: String,
    /// Heals after this long; without it the fault stays until the end of
    /// the run (an action happens once).
    #[serde(default, rename = "for", deserialize_with = "duration")]
    pub for_: Option<Duration>,
    #[serde(default)]
    pub partition: Option<PartitionSpec>,
    #[serde(default)]
    pub link: Option<LinkFault>,
    #[serde(default)]
    pub kill: Option<KillSpec>,
    #[serde(default)]
    pub scale: Option<ScaleSpec>,
    /// A manifest file (relative to the scenario file) to apply.
    #[serde(default)]
    pub apply: Option<String>,
    /// A manifest file whose objects are deleted.
    #[serde(default)]
    pub delete: Option<String>,
    /// A new pod template for a Deployment, rolled out as its strategy says.
    #[serde(default)]
    pub rollout: Option<RolloutSpec>,
    /// SIGSTOP of a process, SIGCONT at its heal (the end of the run
    /// without `for`).
    #[serde(default)]
    pub pause: Option<ProcessSpec>,
    /// SIGTERM (SIGKILL after a bounded wait) of a process, started again
    /// as the same role; the fault ends when it is Ready again.
    #[serde(default)]
    pub restart: Option<ProcessSpec>,
    /// `spec.unschedulable` on a node, as `kubectl cordon`.
    #[serde(default)]
    pub cordon: Option<NodeRef>,
    /// Cordon, then evict every pod of the node but DaemonSet and mirror
    /// pods, as `kubectl drain`; the fault ends when none is left.
    #[serde(default)]
    pub drain: Option<NodeRef>,
    /// After applying, a probe confirms the fault took effect.
    #[serde(default)]
    pub verify: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// `[NS/]NAME` of a Deployment.
    pub deployment: String,
    pub set: TemplateChange,
}

/// What a rollout changes in every container of the template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateChange {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Two ends: node names or `zone-Z`.
    pub between: [String; 2],
    #[serde(default)]
    pub direction: Direction,
    /// `drop` (silence: the senders time out) or `reject` (refused:
    /// connects fail with ECONNREFUSED, flows on the link are reset).
    #[serde(default)]
    pub mode: PartitionModeSpec,
}

/// A partition's `mode`, as the scenario writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionModeSpec {
    #[default]
    Drop,
    Reject,
}

impl From<PartitionModeSpec> for podnet_proto::model::PartitionMode {
    fn from(m: PartitionModeSpec) -> Self {
        match m {
            PartitionModeSpec::Drop => podnet_proto::model::PartitionMode::Drop,
            PartitionModeSpec::Reject => podnet_proto::model::PartitionMode::Reject,
        }
    }
}

/// Which way a partition cuts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Both,
    AToB,
    BToA,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    pub between: [String; 2],
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub jitter: Option<String>,
    #[serde(default)]
    pub loss: Option<String>,
    #[serde(default)]
    pub rate: Option<String>,
    /// Share of datagrams sent twice (`1%`).
    #[serde(default)]
    pub duplicate: Option<String>,
    /// Share of datagrams sent ahead of the delayed ones (`25%`; needs
    /// `delay`).
    #[serde(default)]
    pub reorder: Option<String>,
}

/// `kill:`: one process (as [`ProcessSpec`]) or a pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSpec {
    #[serde(flatten)]
    pub process: ProcessSpec,
    /// `NS/NAME`, `NAME`, or a label selector (`app=web`) choosing one of
    /// the matching running pods by the seed; deleted with grace period 0,
    /// as Chaos Mesh's pod-kill.
    #[serde(default)]
    pub pod: Option<String>,
    /// The namespace of a selector's pods (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Which process a kill, pause or restart acts on: exactly one of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// A node's name, or `one-of-zone-Z` / `one-of-nodes` for a seeded
    /// choice.
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub edge: bool,
    #[serde(default)]
    pub controlplane: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRef {
    pub node: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    /// `[NS/]NAME` of a Deployment.
    pub deployment: String,
    pub replicas: u32,
}

/// What a fault does, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Partition {
        a: Vec<String>,
        b: Vec<String>,
        direction: Direction,
        mode: podnet_proto::model::PartitionMode,
    },
    Link {
        a: Vec<String>,
        b: Vec<String>,
        direction: Direction,
        settings: podnet_proto::model::LinkSpec,
    },
    /// SIGKILL of a process.
    Kill {
        target: Process,
    },
    /// A pod deleted with grace period 0.
    KillPod {
        namespace: String,
        pod: PodTarget,
    },
    /// SIGSTOP, healed by SIGCONT.
    Pause {
        target: Process,
    },
    /// Stopped and started again as the same role; ends when Ready.
    Restart {
        target: Process,
    },
    Cordon {
        node: String,
    },
    /// Cordon and evict; ends when the node holds no evictable pod, heals
    /// by uncordoning.
    Drain {
        node: String,
    },
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    Apply(String),
    Delete(String),
    /// A change of a Deployment's pod template, rolled out by its
    /// controller; the fault ends when the rollout completes.
    Rollout {
        namespace: String,
        name: String,
        image: Option<String>,
        env: BTreeMap<String, String>,
    },
}

/// A process of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// One of these nodes, chosen by the seed.
    Node {
        candidates: Vec<String>,
    },
    Edge,
    Controlplane,
}

/// Which pod a pod kill acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodTarget {
    Name(String),
    /// `key=value` terms, all of which a pod's labels must match; one of
    /// the matching running pods is chosen by the seed.
    Selector(Vec<(String, String)>),
}

impl PodTarget {
    /// `NAME` or a selector of `key=value` terms joined by commas (the
    /// equality-based selectors `kubectl -l` takes).
    pub fn parse(text: &str) -> Result<PodTarget, String> {
        let text = text.trim();
        if !text.contains('=') {
            return if valid_label_value(text) && !text.is_empty() {
                Ok(PodTarget::Name(text.to_string()))
            } else {
                Err(format!(
                    "{text:?} is neither a pod's name nor a selector like app=web"
                ))
            };
        }
        let mut terms = Vec::new();
        for term in text.split(',') {
            let (k, v) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| format!("{term:?} in {text:?} is not key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let key_ok = !k.is_empty()
                && k.rsplit('/').next().is_some_and(|name| {
                    !name.is_empty() && name.len() <= 63 && valid_label_value(name)
                })
                && k.split('/').count() <= 2;
            if !key_ok || k.starts_with('!') || k.ends_with('!') {
                return Err(format!("{k:?} in {text:?} is not a label key"));
            }
            if !valid_label_value(v) || v.contains('=') {
                return Err(format!("{v:?} in {text:?} is not a label value"));
            }
            terms.push((k.to_string(), v.to_string()));
        }
        Ok(PodTarget::Selector(terms))
    }

    /// Whether a pod with these labels is one the target names.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            PodTarget::Name(n) => n == name,
            PodTarget::Selector(terms) => terms.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

/// A label value (and the name part of a key): at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

impl FaultKind {
    /// What a `for` can undo.
    pub fn heals(&self) -> bool {
        matches!(
            self,
            FaultKind::Partition { .. }
                | FaultKind::Link { .. }
                | FaultKind::Scale { .. }
                | FaultKind::Pause { .. }
                | FaultKind::Cordon { .. }
                | FaultKind::Drain { .. }
        )
    }
}

/// The cluster's nodes, as faults name them.
pub trait Nodes {
    /// The nodes `end` names: a node's name, or `zone-Z` for every node
    /// of zone Z.
    fn resolve_end(&self, end: &str) -> Result<Vec<String>, String>;
    /// Every node, by name.
    fn all(&self) -> Vec<String>;
}

/// A checked fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub id: String,
    pub at: At,
    pub for_: Option<Duration>,
    pub kind: FaultKind,
    /// Probe, after applying, that it took effect.
    pub verify: bool,
}

/// A windowed expectation as written.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowedExpect {
    pub name: String,
    pub traffic: String,
    #[serde(default)]
    pub window: Option<WindowField>,
    #[serde(default)]
    pub min_samples: Option<u64>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub on_fail: Option<String>,
    #[serde(default)]
    pub allow: Option<usize>,
    #[serde(default)]
    pub recovery_time: Option<RecoverySpec>,
    /// As `recovery_time`, from the fault's start.
    #[serde(default)]
    pub failover_time: Option<RecoverySpec>,
    #[serde(default)]
    pub error_budget: Option<BudgetSpec>,
    /// The metric and its condition: `p99: "< 300ms"`.
    #[serde(flatten)]
    pub metric: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    pub after: String,
    pub tolerance: Tolerance,
    pub stable_for: String,
    pub max: String,
}

/// `error_budget: {slo: 99.5%, good: 300ms, max: 50%}`: the window's
/// bad requests (failed, or slower than `good`) use at most `max` (100 %
/// by default) of what the SLO allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    pub slo: String,
    #[serde(default)]
    pub good: Option<String>,
    #[serde(default)]
    pub max: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(default)]
    pub p99: Option<String>,
    #[serde(default)]
    pub error_rate: Option<String>,
}

/// `window:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WindowField {
    /// `whole` or `steady`.
    Named(String),
    Map(WindowMap),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowMap {
    #[serde(default)]
    pub during: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
    /// With `before`: its length (30s by default).
    #[serde(default, rename = "for", deserialize_with = "duration")]
    pub for_: Option<Duration>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub between: Option<[String; 2]>,
    #[serde(default)]
    pub outside: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub each: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub sliding: Option<Duration>,
}

impl WindowField {
    pub fn spec(&self) -> Result<WindowSpec, String> {
        let m = match self {
            WindowField::Named(n) => {
                return match n.as_str() {
                    "whole" => Ok(WindowSpec::Whole),
                    "steady" => Ok(WindowSpec::Steady),
                    other => Err(format!(
                        "{other:?} is not a window: whole, steady, or {{during|before|after|between|outside|each|sliding: ...}}"
                    )),
                };
            }
            WindowField::Map(m) => m,
        };
        let outside = m.outside.clone().unwrap_or_default();
        let kinds = [
            m.during.is_some(),
            m.before.is_some(),
            m.after.is_some(),
            m.between.is_some(),
            m.each.is_some(),
            m.sliding.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds > 1 {
            return Err(
                "a window is one of during, before, after, between, outside, each or sliding"
                    .into(),
            );
        }
        if m.for_.is_some() && m.before.is_none() {
            return Err("for: is the length of a before: window".into());
        }
        let plain_outside = m.each.is_none() && m.sliding.is_none();
        if kinds == 1 && plain_outside && m.outside.is_some() {
            return Err("outside: goes alone, or with each: or sliding:".into());
        }
        Ok(if let Some(e) = &m.during {
            WindowSpec::During(e.clone())
        } else if let Some(e) = &m.before {
            WindowSpec::Before {
                event: e.clone(),
                span: m.for_.map_or(BEFORE, |d| d.as_secs_f64()),
            }
        } else if let Some(a) = &m.after {
            WindowSpec::After(Anchor::parse(a)?)
        } else if let Some([a, b]) = &m.between {
            WindowSpec::Between(Anchor::parse(a)?, Anchor::parse(b)?)
        } else if let Some(every) = m.each {
            positive(every, "each")?;
            WindowSpec::Each {
                every: every.as_secs_f64(),
                outside,
            }
        } else if let Some(span) = m.sliding {
            positive(span, "sliding")?;
            WindowSpec::Sliding {
                span: span.as_secs_f64(),
                outside,
            }
        } else if m.outside.is_some() {
            WindowSpec::Outside(outside)
        } else {
            return Err("an empty window: write whole, or one of during, before, after, between, outside, each, sliding".into());
        })
    }
}

fn positive(d: Duration, what: &str) -> Result<(), String> {
    if d < Duration::from_secs(1) {
        Err(format!(
            "{what}: windows are judged in whole seconds: at least 1s"
        ))
    } else {
        Ok(())
    }
}

/// A windowed expectation, checked: the check, and whether failing it
/// aborts the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Windowed {
    pub check: Check,
    pub abort: bool,
}

impl WindowedExpect {
    pub fn checked(&self) -> Result<Windowed, String> {
        let recovery = match (&self.recovery_time, &self.failover_time) {
            (Some(r), None) => Some(("recovery_time", r)),
            (None, Some(r)) => Some(("failover_time", r)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(
                    ": recovery_time and failover_time are two metrics: one per expectation".into(),
                );
            }
        };
        let window = match (&self.window, recovery) {
            (Some(w), _) => w.spec().map_err(|e| format!(".window: {e}"))?,
            // Recovery is looked for after its anchor (failover from the
            // event's start).
            (None, Some((key, r))) => {
                let mut anchor =
                    Anchor::parse(&r.after).map_err(|e| format!(".{key}.after: {e}"))?;
                if key == "failover_time" && anchor.edge.is_none() {
                    anchor.edge = Some(podnet_experiment::window::Edge::Start);
                }
                WindowSpec::After(anchor)
            }
            (None, None) => WindowSpec::Whole,
        };
        let (metric, condition) = match (recovery, &self.error_budget, self.metric.len()) {
            (Some((key, r)), None, 0) => {
                let (p99, error_rate) = Recovery::tolerance(
                    r.tolerance.p99.as_deref(),
                    r.tolerance.error_rate.as_deref(),
                )
                .map_err(|e| format!(".{key}.tolerance: {e}"))?;
                let stable = podnet_experiment::units::parse_duration(&r.stable_for)
                    .map_err(|e| format!(".{key}.stable_for: {e}"))?;
                positive(stable, "stable_for").map_err(|e| format!(".{key}.{e}"))?;
                let recovery = Recovery {
                    after: Anchor::parse(&r.after).map_err(|e| format!(".{key}.after: {e}"))?,
                    p99,
                    error_rate,
                    stable_for: stable.as_secs(),
                };
                let metric = if key == "failover_time" {
                    Metric::FailoverTime(recovery)
                } else {
                    Metric::RecoveryTime(recovery)
                };
                let max = podnet_experiment::units::parse_duration(&r.max)
                    .map_err(|e| format!(".{key}.max: {e}"))?;
                let condition = Condition {
                    op: podnet_experiment::verdict::Op::Le,
                    limit: podnet_experiment::verdict::Limit::Literal(max.as_secs_f64()),
                };
                (metric, condition)
            }
            (None, Some(b), 0) => {
                let share = |text: &str, what: &str| {
                    podnet_experiment::units::Dimension::Share
                        .parse(text)
                        .map_err(|e| format!(".error_budget.{what}: {e}"))
                };
                let slo = share(&b.slo, "slo")?;
                if !(0.0..1.0).contains(&slo) {
                    return Err(".error_budget.slo: an SLO is below 100% (like 99.5%)".into());
                }
                let good = b
                    .good
                    .as_deref()
                    .map(podnet_experiment::units::parse_duration)
                    .transpose()
                    .map_err(|e| format!(".error_budget.good: {e}"))?
                    .map(|d| d.as_secs_f64());
                let max = b.max.as_deref().map_or(Ok(1.0), |m| share(m, "max"))?;
                (
                    Metric::ErrorBudget { slo, good },
                    Condition {
                        op: podnet_experiment::verdict::Op::Le,
                        limit: podnet_experiment::verdict::Limit::Literal(max),
                    },
                )
            }
            (None, None, 1) => {
                let (name, text) = self.metric.iter().next().ok_or(": no metric")?;
                let metric = Metric::parse(name).map_err(|e| format!(".{name}: {e}"))?;
                let condition = Condition::parse(text, metric.dimension())
                    .map_err(|e| format!(".{name}: {e}"))?;
                (metric, condition)
            }
            (None, None, 0) => {
                return Err(
                    ": no metric: add one like p99: \"< 300ms\" or error_rate: \"< 1%\"".into(),
                );
            }
            _ => {
                let mut names: Vec<&str> = self.metric.keys().map(String::as_str).collect();
                if let Some((key, _)) = recovery {
                    names.push(key);
                }
                if self.error_budget.is_some() {
                    names.push("error_budget");
                }
                return Err(format!(
                    ": one metric per expectation, not {}",
                    names.join(", ")
                ));
            }
        };
        let severity = match self.severity.as_deref() {
            None | Some("fail") => Severity::Fail,
            Some("warn") => Severity::Warn,
            Some(other) => return Err(format!(".severity: {other:?} is not fail or warn")),
        };
        let abort = match self.on_fail.as_deref() {
            None | Some("continue") => false,
            Some("abort") => true,
            Some(other) => return Err(format!(".on_fail: {other:?} is not abort or continue")),
        };
        if self.allow.is_some() && !window.is_repeated() {
            return Err(".allow: only each: and sliding: windows have windows to allow".into());
        }
        Ok(Windowed {
            check: Check {
                name: self.name.clone(),
                flow: self.traffic.clone(),
                window,
                metric,
                condition,
                min_samples: self.min_samples.unwrap_or(MIN_SAMPLES),
                severity,
                allow: self.allow.unwrap_or(0),
            },
            abort,
        })
    }
}

impl FaultSpec {
    /// The fault checked against the cluster; `index` names it when it
    /// has no id.
    pub fn checked(&self, index: usize, cluster: &impl Nodes) -> Result<Fault, String> {
        let id = self.id.clone().unwrap_or_else(|| format!("fault-{index}"));
        let valid = id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                ".id: {id:?} must start with a letter and hold only letters, digits, '-' or '_'"
            ));
        }
        let at = At::parse(&self.at).map_err(|e| format!(".at: {e}"))?;
        let ends = |between: &[String; 2]| -> Result<(Vec<String>, Vec<String>), String> {
            Ok((
                cluster
                    .resolve_end(&between[0])
                    .map_err(|e| format!(".between[0]: {e}"))?,
                cluster
                    .resolve_end(&between[1])
                    .map_err(|e| format!(".between[1]: {e}"))?,
            ))
        };
        let mut kinds = Vec::new();
        if let Some(p) = &self.partition {
            let (a, b) = ends(&p.between).map_err(|e| format!(".partition{e}"))?;
            kinds.push(FaultKind::Partition {
                a,
                b,
                direction: p.direction,
                mode: p.mode.into(),
            });
        }
        if let Some(l) = &self.link {
            let (a, b) = ends(&l.between).map_err(|e| format!(".link{e}"))?;
            let settings = podnet_proto::model::LinkSpec {
                from: a[0].clone(),
                to: b[0].clone(),
                delay: l.delay.clone(),
                jitter: l.jitter.clone(),
                loss: l.loss.clone(),
                rate: l.rate.clone(),
                duplicate: l.duplicate.clone(),
                reorder: l.reorder.clone(),
                ..Default::default()
            };
            settings.params().map_err(|e| format!(".link: {e}"))?;
            kinds.push(FaultKind::Link {
                a,
                b,
                direction: l.direction,
                settings,
            });
        }
        if let Some(k) = &self.kill {
            match (&k.pod, k.process.given()) {
                (Some(pod), 0) => {
                    let default_ns = || k.namespace.clone().unwrap_or_else(|| "default".into());
                    let (namespace, pod) = match pod.split_once('/') {
                        // A selector's keys may have a prefix of their own.
                        _ if pod.contains('=') => (default_ns(), pod.as_str()),
                        Some(_) if k.namespace.is_some() => {
                            return Err(
                                ".kill: give the namespace in pod: NS/NAME or in namespace:, not both"
                                    .into(),
                            );
                        }
                        Some((ns, name)) => (ns.to_string(), name),
                        None => (default_ns(), pod.as_str()),
                    };
                    let pod = PodTarget::parse(pod).map_err(|e| format!(".kill.pod: {e}"))?;
                    kinds.push(FaultKind::KillPod { namespace, pod });
                }
                (Some(_), _) => {
                    return Err(".kill: one of node, edge, controlplane or pod".into());
                }
                (None, _) => {
                    if k.namespace.is_some() {
                        return Err(".kill.namespace: goes with pod:".into());
                    }
                    let target = k
                        .process
                        .checked(cluster)
                        .map_err(|e| format!(".kill{e}"))?;
                    kinds.push(FaultKind::Kill { target });
                }
            }
        }
        if let Some(p) = &self.pause {
            let target = p.checked(cluster).map_err(|e| format!(".pause{e}"))?;
            kinds.push(FaultKind::Pause { target });
        }
        if let Some(p) = &self.restart {
            let target = p.checked(cluster).map_err(|e| format!(".restart{e}"))?;
            kinds.push(FaultKind::Restart { target });
        }
        for (field, spec) in [("cordon", &self.cordon), ("drain", &self.drain)] {
            let Some(n) = spec else { continue };
            let node = one_node(cluster, &n.node).map_err(|e| format!(".{field}.node: {e}"))?;
            kinds.push(if field == "cordon" {
                FaultKind::Cordon { node }
            } else {
                FaultKind::Drain { node }
            });
        }
        if let Some(s) = &self.scale {
            let (namespace, name) = namespaced(&s.deployment);
            kinds.push(FaultKind::Scale {
                namespace,
                name,
                replicas: s.replicas,
            });
        }
        if let Some(r) = &self.rollout {
            let (namespace, name) = namespaced(&r.deployment);
            if r.set.image.is_none() && r.set.env.is_empty() {
                return Err(".rollout.set: change the image or the env".into());
            }
            kinds.push(FaultKind::Rollout {
                namespace,
                name,
                image: r.set.image.clone(),
                env: r.set.env.clone(),
            });
        }
        if let Some(f) = &self.apply {
            kinds.push(FaultKind::Apply(f.clone()));
        }
        if let Some(f) = &self.delete {
            kinds.push(FaultKind::Delete(f.clone()));
        }
        let kind = match kinds.len() {
            1 => kinds.remove(0),
            0 => {
                return Err(format!(": a fault needs one of {KINDS}"));
            }
            _ => {
                return Err(format!(": one kind per fault ({KINDS})"));
            }
        };
        if let Some(d) = self.for_ {
            if !kind.heals() {
                return Err(".for: a kill, restart, rollout, apply or delete cannot be undone: leave for out (a rollout ends when it completes, a restart when the process is Ready again)".into());
            }
            if d > MAX_LENGTH {
                return Err(".for: at most 1h".into());
            }
        }
        Ok(Fault {
            id,
            at,
            for_: self.for_,
            kind,
            verify: self.verify,
        })
    }
}

/// Every kind a fault may be, as the errors list them.
const KINDS: &str =
    "partition, link, kill, pause, restart, scale, rollout, apply, delete, cordon or drain";

impl ProcessSpec {
    /// How many of node, edge and controlplane it names.
    fn given(&self) -> usize {
        usize::from(self.node.is_some()) + usize::from(self.edge) + usize::from(self.controlplane)
    }

    /// The process checked against the cluster; errors start with the
    /// field's path below the fault's kind.
    fn checked(&self, cluster: &impl Nodes) -> Result<Process, String> {
        if self.given() != 1 {
            return Err(": one of node, edge: true or controlplane: true".into());
        }
        if self.edge {
            return Ok(Process::Edge);
        }
        if self.controlplane {
            return Ok(Process::Controlplane);
        }
        let node = self.node.as_deref().unwrap_or_default();
        let candidates = match node {
            "one-of-nodes" => cluster.all(),
            n => match n.strip_prefix("one-of-") {
                Some(zone) => cluster
                    .resolve_end(zone)
                    .map_err(|e| format!(".node: {e}"))?,
                None => vec![one_node(cluster, n).map_err(|e| format!(".node: {e}"))?],
            },
        };
        Ok(Process::Node { candidates })
    }
}

/// A node of the cluster by its name (not a zone).
fn one_node(cluster: &impl Nodes, name: &str) -> Result<String, String> {
    match cluster.resolve_end(name)?.as_slice() {
        [one] if one == name => Ok(one.clone()),
        _ => Err(format!(
            "{name:?} is a zone: name one node, or one-of-{name} to pick one by the seed"
        )),
    }
}

/// `NS/NAME`, or `NAME` in the default namespace.
fn namespaced(reference: &str) -> (String, String) {
    match reference.split_once('/') {
        Some((ns, n)) => (ns.to_string(), n.to_string()),
        None => ("default".to_string(), reference.to_string()),
    }
}

/// Checks that faults' `at` anchors name faults and form no cycle, and
/// that windows and recovery anchors name faults and flows that exist.
pub fn check_references(
    faults: &[Fault],
    flows: &[String],
    expects: &[(usize, Windowed)],
) -> Result<(), String> {
    let ids: BTreeSet<&str> = faults.iter().map(|f| f.id.as_str()).collect();
    if ids.len() != faults.len() {
        let mut seen = BTreeSet::new();
        let dup = faults
            .iter()
            .find(|f| !seen.insert(f.id.as_str()))
            .map(|f| f.id.clone())
            .unwrap_or_default();
        return Err(format!("faults: two faults have the id {dup:?}"));
    }
    let by_id: BTreeMap<&str, &Fault> = faults.iter().map(|f| (f.id.as_str(), f)).collect();
    for (i, f) in faults.iter().enumerate() {
        if let At::After(a) = &f.at {
            if !ids.contains(a.event.as_str()) {
                return Err(format!("faults[{i}].at: no fault has the id {:?}", a.event));
            }
            // Follow the chain of anchors: it must end at an offset.
            let mut seen = BTreeSet::from([f.id.as_str()]);
            let mut next = a.event.as_str();
            while let Some(g) = by_id.get(next) {
                if !seen.insert(next) {
                    return Err(format!(
                        "faults[{i}].at: the times of {} depend on each other in a cycle",
                        seen.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
                match &g.at {
                    At::After(b) => next = b.event.as_str(),
                    At::Offset(_) => break,
                }
            }
        }
    }
    for (i, w) in expects {
        if !flows.contains(&w.check.flow) {
            return Err(format!(
                "expect[{i}].traffic: no traffic is named {:?}",
                w.check.flow
            ));
        }
        for e in w.check.window.events() {
            if !ids.contains(e) {
                return Err(format!("expect[{i}].window: no fault has the id {e:?}"));
            }
        }
        let recovery = match &w.check.metric {
            Metric::RecoveryTime(r) => Some(("recovery_time", r)),
            Metric::FailoverTime(r) => Some(("failover_time", r)),
            _ => None,
        };
        if let Some((key, r)) = recovery
            && !ids.contains(r.after.event.as_str())
        {
            return Err(format!(
                "expect[{i}].{key}.after: no fault has the id {:?}",
                r.after.event
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
