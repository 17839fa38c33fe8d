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
use podnet_proto::v1::ListRequest;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Expectation {
    Reachability(Reachability),
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
        let Expectation::Reachability(r) = e;
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
    let result = run_in_cluster(&record.controlplane, &scenario, &objects).await;
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

async fn run_in_cluster(cp: &str, scenario: &Scenario, objects: &[Value]) -> anyhow::Result<bool> {
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
        let Expectation::Reachability(r) = e;
        for (line, ok) in check_reachability(&mut api, r).await? {
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
    let resp = api
        .list(ListRequest {
            kind: kind.into(),
            ..Default::default()
        })
        .await
        .map_err(client::status_error)?
        .into_inner();
    Ok(resp
        .items
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect())
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
