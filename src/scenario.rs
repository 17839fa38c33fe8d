//! Scenario files: one YAML file describes one experiment (nodes, links,
//! manifests, expectations). `podnet run FILE` boots a cluster for it,
//! applies the manifests, waits until everything is Ready, checks the
//! expectations, tears the cluster down and exits non-zero if any failed.
//!
//! Parsing (`parse`) is separate from reading (`load`) and from running,
//! so `--check` validates a file without starting anything. Traffic and
//! faults sections come with later work; unknown fields are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use podnet_proto::model::{LabelSelector, LinkSpec};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{self, Api};
use crate::launcher::{self, UpArgs};
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
    /// How long to wait for everything to be Ready, e.g. `60s`.
    #[serde(default)]
    pub ready_timeout: Option<String>,
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
    Reachability { reachability: Reachability },
    Dns(DnsExpect),
    Http(HttpExpect),
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
    #[serde(default = "tcp")]
    pub protocol: String,
    pub allowed: bool,
    /// Seconds to wait for a connection before calling it blocked.
    #[serde(default = "default_probe_timeout")]
    pub timeout: u64,
}

fn tcp() -> String {
    "TCP".into()
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
        let nodes = self.node_specs();
        let resolve = |end: &str| -> Result<Vec<String>, String> {
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
                "cluster.links: {end:?} is neither a node nor zone-<zone> of a node"
            ))
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

/// Parses a scenario; `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Scenario, InputError> {
    let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| match e.location() {
        Some(loc) => InputError(format!(
            "{origin}:{}:{}: {}",
            loc.line(),
            loc.column(),
            e.to_string().lines().next().unwrap_or("")
        )),
        None => InputError(format!("{origin}: {e}")),
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
        let r = match e {
            Expectation::Reachability { reachability } => reachability,
            Expectation::Dns(d) => {
                if !matches!(
                    d.rtype.as_str(),
                    "A" | "AAAA" | "SRV" | "PTR" | "CNAME" | "TXT" | "SOA"
                ) {
                    return Err(InputError(format!(
                        "{origin}: expect[{i}].type: {:?} is not one of A, AAAA, SRV, PTR, CNAME, TXT, SOA",
                        d.rtype
                    )));
                }
                continue;
            }
            Expectation::Http(h) => {
                if h.from == "host" {
                    host_target(h)
                        .map_err(|e| InputError(format!("{origin}: expect[{i}]: {e}")))?;
                } else if !h.http.starts_with("http://") {
                    return Err(InputError(format!(
                        "{origin}: expect[{i}].http: {:?} must be an http:// URL",
                        h.http
                    )));
                } else if h.resolve.is_some() || h.cacert.is_some() {
                    return Err(InputError(format!(
                        "{origin}: expect[{i}]: resolve and cacert apply to `from: host` only"
                    )));
                }
                if let Some(s) = &h.spread
                    && (s.over == 0 || !(0.0..=1.0).contains(&s.min_share))
                {
                    return Err(InputError(format!(
                        "{origin}: expect[{i}].spread: over must be >= 1 and min_share within 0..1"
                    )));
                }
                continue;
            }
        };
        if !matches!(r.protocol.as_str(), "TCP" | "UDP") {
            return Err(InputError(format!(
                "{origin}: expect[{i}].reachability.protocol: must be TCP or UDP"
            )));
        }
        if r.port == 0 {
            return Err(InputError(format!(
                "{origin}: expect[{i}].reachability.port: must be between 1 and 65535"
            )));
        }
    }
    Ok(scenario)
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
    client::default_namespace(&mut objects, "default");
    for o in &objects {
        podnet_controlplane::validate::validate(o)
            .map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    }
    Ok(objects)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Validate the file and its manifests without running anything.
    #[arg(long)]
    pub check: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.file)?;
    let objects = manifests(&args.file, &scenario)?;
    if args.check {
        println!(
            "{}: ok ({} nodes, {} objects, {} expectations)",
            args.file.display(),
            scenario.cluster.node_specs().len(),
            objects.len(),
            scenario.expect.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let state = std::env::temp_dir().join(format!(
        "podnet-run-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let up = UpArgs {
        file: Some(args.file.clone()),
        nodes: 0,
        node_grace_period: "3s".into(),
        lb_pool: podnet_proto::model::network::DEFAULT_LB_POOL.into(),
        foreground: false,
    };
    let started = std::time::Instant::now();
    let (mut supervisor, record) = launcher::start_supervisor(&state, &up, false).await?;
    println!(
        "scenario {}: {} nodes Ready in {} ms",
        scenario.name,
        record.nodes.len(),
        started.elapsed().as_millis()
    );
    if let Some(d) = &scenario.description {
        println!("  {d}");
    }
    let base = args.file.parent().unwrap_or(Path::new("."));
    let result = run_in_cluster(&record.controlplane, &scenario, &objects, base).await;
    if let Some(pid) = supervisor.id()
        && let Ok(pid) = i32::try_from(pid)
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), supervisor.wait())
        .await
        .is_err()
    {
        let _ = supervisor.kill().await;
    }
    let passed = result?;
    if passed {
        let _ = std::fs::remove_dir_all(&state);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("logs kept in {}", state.join("logs").display());
        Ok(ExitCode::FAILURE)
    }
}

async fn run_in_cluster(
    cp: &str,
    scenario: &Scenario,
    objects: &[Value],
    base: &Path,
) -> anyhow::Result<bool> {
    let mut api = client::connect(cp).await?;
    let links: Vec<Value> = scenario
        .cluster
        .link_specs()
        .map_err(InputError)?
        .iter()
        .flat_map(|s| client::link_objects(s, true))
        .collect();
    let mut out = std::io::stdout();
    if !links.is_empty() {
        client::apply_objects(&mut api, &links, false, &mut std::io::sink()).await?;
        println!("{} link settings applied", links.len());
    }
    if !objects.is_empty() {
        client::apply_objects(&mut api, objects, false, &mut out).await?;
    }
    let timeout = match &scenario.ready_timeout {
        Some(t) => podnet_proto::model::parse_duration(t).map_err(InputError)?,
        None => Duration::from_secs(60),
    };
    let started = std::time::Instant::now();
    wait_ready(&mut api, timeout).await?;
    println!("all pods Ready in {} ms", started.elapsed().as_millis());

    let mut failed = 0;
    let mut total = 0;
    for e in &scenario.expect {
        let results = match e {
            Expectation::Reachability { reachability } => {
                check_reachability(&mut api, reachability).await?
            }
            Expectation::Dns(d) => vec![check_dns(&mut api, d).await?],
            Expectation::Http(h) if h.from == "host" => {
                vec![check_http_from_host(&mut api, h, base).await?]
            }
            Expectation::Http(h) => vec![check_http(&mut api, h).await?],
        };
        for (line, ok) in results {
            total += 1;
            if !ok {
                failed += 1;
            }
            println!("{} {line}", if ok { "PASS" } else { "FAIL" });
        }
    }
    println!(
        "{}: {} passed, {} failed",
        scenario.name,
        total - failed,
        failed
    );
    Ok(failed == 0)
}

async fn list(api: &mut Api, kind: &str) -> anyhow::Result<Vec<Value>> {
    client::list_objects(api, kind, "").await
}

fn ready(p: &Value) -> bool {
    podnet_proto::model::condition_is_true(p, "Ready")
}

/// Waits until every Deployment is available and every pod is Ready.
async fn wait_ready(api: &mut Api, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let deployments = list(api, "Deployment").await?;
        let pods = list(api, "Pod").await?;
        let waiting_deploy: Vec<String> = deployments
            .iter()
            .filter(|d| {
                d.pointer("/status/availableReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    < d.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
            })
            .map(|d| {
                format!(
                    "deployment/{}",
                    d["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        let waiting_pods: Vec<String> = pods
            .iter()
            .filter(|p| !ready(p))
            .map(|p| {
                format!(
                    "pod/{} ({})",
                    p["metadata"]["name"].as_str().unwrap_or(""),
                    crate::table::pod_status(p)
                )
            })
            .collect();
        if waiting_deploy.is_empty() && waiting_pods.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "not Ready after {timeout:?}: {}",
                [waiting_deploy, waiting_pods].concat().join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pods named by a scenario reference: `name`, `ns/name`, `sel`, `ns/sel`.
async fn resolve_pods(api: &mut Api, reference: &str) -> anyhow::Result<Vec<Value>> {
    let (ns, rest) = match reference.split_once('/') {
        Some((ns, rest)) => (ns.to_string(), rest.to_string()),
        None => ("default".to_string(), reference.to_string()),
    };
    let pods = list(api, "Pod").await?;
    let in_ns = pods
        .into_iter()
        .filter(|p| p["metadata"]["namespace"] == ns.as_str());
    let found: Vec<Value> = if rest.contains('=') || rest.contains('!') {
        let sel = LabelSelector::parse(&rest).map_err(|e| InputError(e.to_string()))?;
        in_ns
            .filter(|p| {
                let labels: BTreeMap<String, String> = p["metadata"]["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                sel.matches(&labels)
            })
            .collect()
    } else {
        in_ns
            .filter(|p| p["metadata"]["name"] == rest.as_str())
            .collect()
    };
    if found.is_empty() {
        anyhow::bail!("no pod matches {reference:?}");
    }
    Ok(found)
}

async fn check_reachability(
    api: &mut Api,
    r: &Reachability,
) -> anyhow::Result<Vec<(String, bool)>> {
    let from = resolve_pods(api, &r.from).await?;
    let targets: Vec<(String, String)> = if r.to.parse::<std::net::Ipv4Addr>().is_ok() {
        vec![(r.to.clone(), r.to.clone())]
    } else {
        resolve_pods(api, &r.to)
            .await?
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let mut results = Vec::new();
    for src in &from {
        let src_name = src["metadata"]["name"].as_str().unwrap_or("");
        let src_ns = src["metadata"]["namespace"].as_str().unwrap_or("default");
        for (dst_name, dst_ip) in &targets {
            let mut cmd = vec!["nc".to_string(), "-z".into()];
            if r.protocol == "UDP" {
                cmd.push("-u".into());
            }
            cmd.extend([
                "-w".into(),
                r.timeout.to_string(),
                dst_ip.clone(),
                r.port.to_string(),
            ]);
            let resp = client::exec_in(api, src_ns, src_name, &cmd, Vec::new()).await?;
            let reachable = resp.exit_code == 0;
            let verdict = if reachable { "reachable" } else { "blocked" };
            let want = if r.allowed { "allowed" } else { "denied" };
            results.push((
                format!("reachability {src_name} -> {dst_name} ({dst_ip}:{}/{}): {verdict}, expected {want}", r.port, r.protocol),
                reachable == r.allowed,
            ));
        }
    }
    Ok(results)
}

/// Expands `service:` and `pods:` references in expected DNS answers.
async fn expected_answers(api: &mut Api, answers: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in answers {
        if let Some(r) = a.strip_prefix("service:") {
            let (ns, name) = r.split_once('/').unwrap_or(("default", r));
            let svc = list(api, "Service")
                .await?
                .into_iter()
                .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == name);
            let ip = svc
                .as_ref()
                .and_then(|s| s["spec"]["clusterIP"].as_str())
                .unwrap_or("")
                .to_string();
            anyhow::ensure!(
                !ip.is_empty(),
                "expected answer {a:?}: no such Service with a ClusterIP"
            );
            out.push(ip);
        } else if let Some(r) = a.strip_prefix("pods:") {
            for p in resolve_pods(api, r).await? {
                if ready(&p) {
                    out.push(p["status"]["podIP"].as_str().unwrap_or("").to_string());
                }
            }
        } else {
            out.push(a.clone());
        }
    }
    out.sort();
    Ok(out)
}

async fn check_dns(api: &mut Api, d: &DnsExpect) -> anyhow::Result<(String, bool)> {
    let from = resolve_pods(api, &d.from).await?;
    let pod = &from[0];
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or(""),
    );
    let cmd: Vec<String> = ["dig", "+search", &d.dns, &d.rtype]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = client::exec_in(api, ns, name, &cmd, Vec::new()).await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|| "no answer".into());
    let short: Vec<String> = {
        let cmd: Vec<String> = ["dig", "+search", "+short", &d.dns, &d.rtype]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = client::exec_in(api, ns, name, &cmd, Vec::new()).await?;
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    };
    let mut ok = true;
    let mut want = Vec::new();
    if let Some(rcode) = &d.rcode {
        ok &= status.eq_ignore_ascii_case(rcode);
        want.push(format!("status {rcode}"));
    }
    if let Some(answers) = &d.answers {
        let expected = expected_answers(api, answers).await?;
        ok &= short == expected;
        want.push(format!("answers {expected:?}"));
    }
    Ok((
        format!(
            "dns {} {} from {name}: status {status}, answers {short:?}; expected {}",
            d.dns,
            d.rtype,
            want.join(", ")
        ),
        ok,
    ))
}

async fn check_http(api: &mut Api, h: &HttpExpect) -> anyhow::Result<(String, bool)> {
    let from = resolve_pods(api, &h.from).await?;
    let pod = &from[0];
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or(""),
    );
    let count = h.count.unwrap_or(if h.spread.is_some() { 100 } else { 1 });
    let cmd: Vec<String> = ["curl", "-s", "-m", "5", "-w", "\\n%{http_code}", &h.http]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut backends: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..count {
        let out = client::exec_in(api, ns, name, &cmd, Vec::new()).await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        *statuses.entry(code.trim().to_string()).or_default() += 1;
        if let Ok(v) = serde_json::from_str::<Value>(body)
            && let Some(pod) = v["pod"].as_str()
        {
            *backends.entry(pod.to_string()).or_default() += 1;
        }
    }
    let mut ok = statuses.get(&h.status.to_string()) == Some(&count);
    let mut line = format!(
        "http {} from {name}: {count} requests, statuses {statuses:?}",
        h.http
    );
    if let Some(spread) = &h.spread {
        let min = backends.values().min().copied().unwrap_or(0);
        let share = min as f64 / count as f64;
        ok &= backends.len() >= spread.over && share >= spread.min_share;
        line.push_str(&format!(
            ", backends {backends:?} (expected >= {} each >= {:.0}%)",
            spread.over,
            spread.min_share * 100.0
        ));
    }
    Ok((line, ok))
}

/// Where a `from: host` request goes: the URL's parts and the address
/// its host name resolves to (`None`: the host is an address itself).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostTarget {
    https: bool,
    host: String,
    port: u16,
    resolve_to: Option<String>,
}

fn host_target(h: &HttpExpect) -> Result<HostTarget, String> {
    let (https, rest) = if let Some(r) = h.http.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = h.http.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "http: {:?} must be an http:// or https:// URL",
            h.http
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("http: bad port in {:?}", h.http))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("http: no host in {:?}", h.http));
    }
    let resolve_to = match &h.resolve {
        None => {
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(format!(
                    "resolve: required for the host name {host:?} (HOST:ADDRESS, ADDRESS an IP or `ingress`)"
                ));
            }
            None
        }
        Some(r) => {
            let (name, to) = r
                .rsplit_once(':')
                .ok_or_else(|| format!("resolve: {r:?} is not HOST:ADDRESS"))?;
            if !name.eq_ignore_ascii_case(host) {
                return Err(format!(
                    "resolve: {r:?} names {name:?}, the URL's host is {host:?}"
                ));
            }
            if to != "ingress" && to.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(format!(
                    "resolve: {to:?} is neither an IPv4 address nor `ingress`"
                ));
            }
            Some(to.to_string())
        }
    };
    if https != h.cacert.is_some() {
        return Err(if https {
            "cacert: required for https (the CA that signed the Ingress's certificate)".into()
        } else {
            "cacert: only for https URLs".into()
        });
    }
    Ok(HostTarget {
        https,
        host: host.to_string(),
        port,
        resolve_to,
    })
}

/// The real host port the edge listens on for `port` of the LoadBalancer
/// Service that holds `ip` (its status lists real ports in the order of the
/// Service's ports).
fn edge_port(services: &[Value], ip: &str, port: u16) -> Option<u16> {
    services.iter().find_map(|svc| {
        let ingress = svc.pointer("/status/loadBalancer/ingress/0")?;
        if ingress.get("ip")?.as_str()? != ip {
            return None;
        }
        let index = svc
            .pointer("/spec/ports")?
            .as_array()?
            .iter()
            // The ports the edge listens for: forwardable to a NodePort.
            .filter(|p| {
                p.get("nodePort").is_some()
                    && matches!(
                        p.get("protocol").and_then(Value::as_str),
                        None | Some("TCP" | "UDP")
                    )
            })
            .position(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))?;
        let real = ingress.get("ports")?.as_array()?.get(index)?;
        u16::try_from(real.get("port")?.as_u64()?).ok()
    })
}

/// The address of the ingress controller's LoadBalancer Service.
fn ingress_address(services: &[Value]) -> Option<String> {
    services
        .iter()
        .find(|s| {
            s.pointer("/metadata/namespace").and_then(Value::as_str) == Some("podnet-ingress")
                && s.pointer("/metadata/name").and_then(Value::as_str)
                    == Some("podnet-ingress-controller")
        })?
        .pointer("/status/loadBalancer/ingress/0/ip")?
        .as_str()
        .map(String::from)
}

/// How long a `from: host` expectation may take to see its first expected
/// answer: the edge's health checks and the ingress controller's routes
/// follow the cluster a moment after pods are Ready, as in a real cluster.
const HOST_SETTLE: Duration = Duration::from_secs(15);

/// Real curl on this machine, through the edge.
async fn check_http_from_host(
    api: &mut Api,
    h: &HttpExpect,
    base: &Path,
) -> anyhow::Result<(String, bool)> {
    let target = host_target(h).map_err(InputError)?;
    let deadline = tokio::time::Instant::now() + HOST_SETTLE;
    // The address and real port appear in the Service's status once the
    // edge has opened the listener.
    let (ip, real_port) = loop {
        let services = list(api, "Service").await?;
        let ip = match &target.resolve_to {
            Some(to) if to == "ingress" => ingress_address(&services),
            Some(ip) => Some(ip.clone()),
            None => Some(target.host.clone()),
        };
        if let Some(ip) = ip
            && let Some(real) = edge_port(&services, &ip, target.port)
        {
            break (ip, real);
        }
        if tokio::time::Instant::now() > deadline {
            return Ok((
                format!(
                    "http {} from host: no LoadBalancer listens for it (is the Service's EXTERNAL-IP still <pending>?)",
                    h.http
                ),
                false,
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut args: Vec<String> = vec![
        "-s".into(),
        "-m".into(),
        "5".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--connect-to".into(),
        format!("{}:{}:{ip}:{real_port}", target.host, target.port),
    ];
    if let Some(ca) = &h.cacert {
        args.push("--cacert".into());
        args.push(base.join(ca).display().to_string());
    }
    args.push(h.http.clone());
    let backend_ips = match &h.backend {
        Some(b) => Some(service_endpoint_ips(api, b).await?),
        None => None,
    };
    let count = h.count.unwrap_or(1);
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args(&args)
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("cannot run curl (is it installed?): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        anyhow::Ok((code.trim().to_string(), body.to_string()))
    };
    // Settle: the first expected answer may take a moment.
    loop {
        let (code, _) = curl(args.clone()).await?;
        if code == h.status.to_string() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong_backend = 0;
    for _ in 0..count {
        let (code, body) = curl(args.clone()).await?;
        *statuses.entry(code).or_default() += 1;
        if let Some(ips) = &backend_ips {
            let pod_ip = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["podIP"].as_str().map(String::from));
            if !pod_ip.is_some_and(|ip| ips.contains(&ip)) {
                wrong_backend += 1;
            }
        }
    }
    let ok = statuses.get(&h.status.to_string()) == Some(&count) && wrong_backend == 0;
    let mut line = format!(
        "http {} from host (via {ip}:{real_port}): {count} requests, statuses {statuses:?}",
        h.http
    );
    if let Some(b) = &h.backend {
        line.push_str(&format!(", {wrong_backend} not served by {b}"));
    }
    Ok((line, ok))
}

/// The endpoint addresses of Service `[NS/]NAME`.
async fn service_endpoint_ips(api: &mut Api, reference: &str) -> anyhow::Result<Vec<String>> {
    let (ns, name) = reference.split_once('/').unwrap_or(("default", reference));
    let slices = list(api, "EndpointSlice").await?;
    Ok(slices
        .iter()
        .filter(|s| {
            s.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
                && s.pointer("/metadata/labels/kubernetes.io~1service-name")
                    .and_then(Value::as_str)
                    == Some(name)
        })
        .flat_map(crate::table::slice_addresses)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn edge_ports_follow_the_service_ports_in_order() {
        let svc = serde_json::json!({
            "spec": {"ports": [{"port": 80, "nodePort": 30000}, {"port": 443, "nodePort": 30001}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1", "ports": [{"port": 80}, {"port": 40443}]}]}},
        });
        let services = [svc];
        assert_eq!(edge_port(&services, "127.0.1.1", 443), Some(40443));
        assert_eq!(edge_port(&services, "127.0.1.1", 80), Some(80));
        assert_eq!(edge_port(&services, "127.0.1.1", 8080), None);
        assert_eq!(edge_port(&services, "127.0.1.2", 80), None);
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
}
