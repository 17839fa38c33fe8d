//! The launcher: `podnet up` starts a supervisor in the background that
//! runs the control plane and the nodes as child processes; `podnet down`
//! stops it. The supervisor records the cluster in the state directory
//! (`cluster.json`) and holds `supervisor.pid` so a second `up` in the same
//! directory is refused instead of starting a second cluster.
//!
//! The supervisor restarts the control plane if it dies (on the same
//! address and state, so nodes reconnect and nothing is lost) but not a
//! node: a killed node is a lost machine, and the cluster heals around it.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::scenario::{self, NodeSpec};

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// A scenario file whose `cluster` section describes the nodes.
    pub file: Option<PathBuf>,
    /// Number of nodes when no file says otherwise.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long a node may miss heartbeats before it is NotReady.
    #[arg(long, default_value = "3s")]
    pub node_grace_period: String,
    /// Addresses the edge hands to LoadBalancer Services.
    #[arg(long, default_value = podnet_proto::model::network::DEFAULT_LB_POOL)]
    pub lb_pool: String,
    /// Run the supervisor in the foreground (what `up` starts in the background).
    #[arg(long, hide = true)]
    pub foreground: bool,
}

/// What `cluster.json` records of a running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub controlplane: String,
    pub supervisor_pid: u32,
    pub controlplane_pid: u32,
    /// The edge load balancer's process (0: none).
    #[serde(default)]
    pub edge_pid: u32,
    pub nodes: Vec<NodeRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub pid: u32,
}

const READY_LINE: &str = "podnet: cluster ready";

pub fn record_path(state: &Path) -> PathBuf {
    state.join("cluster.json")
}

pub fn read_record(state: &Path) -> anyhow::Result<ClusterRecord> {
    let path = record_path(state);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        anyhow::anyhow!(
            "no cluster is running in {} (start one with `podnet up`)",
            state.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a cluster record", path.display()))
}

/// True if `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// The nodes to start: the scenario's, or `count` default ones.
fn node_plan(args: &UpArgs) -> anyhow::Result<Vec<NodeSpec>> {
    match &args.file {
        Some(file) => Ok(scenario::load(file)?.cluster.node_specs()),
        None => Ok((1..=args.nodes)
            .map(|i| NodeSpec {
                name: format!("node-{i}"),
                ..Default::default()
            })
            .collect()),
    }
}

/// Starts the supervisor for `state` as a child and waits for its ready
/// line. The child is left running (`podnet up`) or owned by the caller
/// (`podnet run`).
pub async fn start_supervisor(
    state: &Path,
    args: &UpArgs,
    detach: bool,
) -> anyhow::Result<(Child, ClusterRecord)> {
    std::fs::create_dir_all(state.join("logs"))
        .with_context(|| format!("cannot create {}", state.display()))?;
    let log_path = state.join("logs").join("supervisor.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the podnet binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--state-dir")
        .arg(state)
        .arg("up")
        .arg("--foreground");
    cmd.arg("--nodes")
        .arg(args.nodes.to_string())
        .arg("--node-grace-period")
        .arg(&args.node_grace_period)
        .arg("--lb-pool")
        .arg(&args.lb_pool);
    if let Some(f) = &args.file {
        cmd.arg(f);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    if detach {
        // Its own process group: a ^C in the terminal that ran `up` must
        // not reach the cluster.
        cmd.process_group(0);
    } else {
        cmd.env("PODNET_PARENT_PID", std::process::id().to_string());
        cmd.kill_on_drop(true);
    }
    let mut child = cmd.spawn().context("cannot start the supervisor")?;
    let stdout = child.stdout.take().context("supervisor has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == READY_LINE {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ready {
        let _ = child.start_kill();
        let _ = child.wait().await;
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "the cluster did not come up; supervisor log {}:\n{}",
            log_path.display(),
            tail.join("\n")
        );
    }
    Ok((child, read_record(state)?))
}

pub async fn up(state: &Path, args: UpArgs) -> anyhow::Result<ExitCode> {
    if args.foreground {
        return supervise(state, &args).await;
    }
    // Fail early, with the real reason, before spawning anything.
    node_plan(&args)?;
    check_not_running(state)?;
    let started = std::time::Instant::now();
    let (_child, record) = start_supervisor(state, &args, true).await?;
    println!(
        "cluster up in {:.0} ms: control plane at {}, {} nodes Ready (state in {})",
        started.elapsed().as_secs_f64() * 1000.0,
        record.controlplane,
        record.nodes.len(),
        state.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check_not_running(state: &Path) -> anyhow::Result<()> {
    if let Ok(text) = std::fs::read_to_string(state.join("supervisor.pid"))
        && let Ok(pid) = text.trim().parse::<u32>()
        && alive(pid)
    {
        bail!(
            "a cluster is already running in {} (supervisor pid {pid}); run `podnet down` first or use another --state-dir",
            state.display()
        );
    }
    Ok(())
}

pub async fn down(state: &Path, wait: Duration) -> anyhow::Result<ExitCode> {
    let pid_path = state.join("supervisor.pid");
    let Some(pid) = std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        println!("no cluster is running in {}", state.display());
        return Ok(ExitCode::SUCCESS);
    };
    let record = read_record(state).ok();
    if alive(pid) {
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + wait;
        while alive(pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if alive(pid) {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    // Whatever the supervisor could not stop.
    if let Some(record) = record {
        let roles = [record.controlplane_pid, record.edge_pid];
        for p in roles
            .into_iter()
            .filter(|p| *p != 0)
            .chain(record.nodes.iter().map(|n| n.pid))
        {
            if alive(p) {
                signal(p, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    let _ = std::fs::remove_file(record_path(state));
    let _ = std::fs::remove_file(&pid_path);
    let _ = std::fs::remove_dir_all(state.join("controlplane"));
    println!("cluster in {} stopped", state.display());
    Ok(ExitCode::SUCCESS)
}

struct Supervised {
    name: String,
    child: Child,
}

/// The command for one role process: this binary, logging to
/// `STATE/logs/LOG.log`, given the join token, dying with the launcher
/// (PODNET_PARENT_PID) and killed if its handle is dropped.
fn role_command(state: &Path, log: &str, token: &str) -> anyhow::Result<Command> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("logs").join(format!("{log}.log")))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env("PODNET_JOIN_TOKEN", token)
        .env("PODNET_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    Ok(cmd)
}

async fn spawn_controlplane(
    state: &Path,
    listen: &str,
    token: &str,
    grace: &str,
) -> anyhow::Result<(Child, String)> {
    let mut child = role_command(state, "controlplane", token)?
        .arg("--state-dir")
        .arg(state.join("controlplane"))
        .arg("controlplane")
        .arg("--listen")
        .arg(listen)
        .arg("--node-grace-period")
        .arg(grace)
        // The address comes back on stdout.
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the control plane")?;
    let stdout = child.stdout.take().context("control plane has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("control plane did not report its address within 10s")??
        .context("control plane exited before listening (see logs/controlplane.log)")?;
    let addr = line
        .strip_prefix("podnet controlplane listening on ")
        .with_context(|| format!("unexpected control plane output {line:?}"))?
        .to_string();
    Ok((child, addr))
}

fn spawn_node(state: &Path, spec: &NodeSpec, cp: &str, token: &str) -> anyhow::Result<Child> {
    let mut cmd = role_command(state, &spec.name, token)?;
    // Every node forwards host DNS queries, so DNS from the host survives
    // the loss of any one node; cluster-info shows a Ready one.
    cmd.arg("node")
        .arg("--host-dns")
        .arg("127.0.0.1:0")
        .arg("--name")
        .arg(&spec.name)
        .arg("--controlplane")
        .arg(cp);
    if !spec.zone.is_empty() {
        cmd.arg("--zone").arg(&spec.zone);
    }
    for (k, v) in &spec.labels {
        cmd.arg("--label").arg(format!("{k}={v}"));
    }
    if let Some(cpu) = &spec.cpu {
        cmd.arg("--cpu").arg(cpu);
    }
    if let Some(memory) = &spec.memory {
        cmd.arg("--memory").arg(memory);
    }
    cmd.spawn()
        .with_context(|| format!("cannot start node {}", spec.name))
}

fn spawn_edge(state: &Path, cp: &str, token: &str, pool: &str) -> anyhow::Result<Child> {
    role_command(state, "edge", token)?
        .arg("edge")
        .arg("--controlplane")
        .arg(cp)
        .arg("--lb-pool")
        .arg(pool)
        .spawn()
        .context("cannot start the edge")
}

async fn wait_nodes_ready(cp: &str, names: &[String]) -> anyhow::Result<()> {
    let mut api = crate::client::connect(cp).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready: Vec<String> = crate::client::list_objects(&mut api, "Node", "")
            .await
            .context("cannot list nodes")?
            .into_iter()
            .filter(crate::table::node_ready)
            .filter_map(|n| {
                n.pointer("/metadata/name")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .collect();
        if names.iter().all(|n| ready.contains(n)) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nodes not Ready after 30s: {:?} of {:?} are", ready, names);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The supervisor: runs the cluster until SIGTERM/SIGINT.
async fn supervise(state: &Path, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let plan = node_plan(args)?;
    std::fs::create_dir_all(state.join("logs"))?;
    check_not_running(state)?;
    let pid_path = state.join("supervisor.pid");
    write_atomic(&pid_path, &std::process::id().to_string())?;
    // A new cluster starts empty; the store persists across control plane
    // restarts within one cluster's life, not across clusters.
    let data = state.join("controlplane");
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot clear {}", data.display()))?;
    }
    let result = supervise_inner(state, args, &plan).await;
    let _ = std::fs::remove_file(record_path(state));
    let _ = std::fs::remove_file(&pid_path);
    result
}

async fn supervise_inner(
    state: &Path,
    args: &UpArgs,
    plan: &[NodeSpec],
) -> anyhow::Result<ExitCode> {
    let shutdown = crate::roles::shutdown_on_signals()?;
    let token = format!("{:032x}", rand::random::<u128>());
    let (mut cp, cp_addr) =
        spawn_controlplane(state, "127.0.0.1:0", &token, &args.node_grace_period).await?;
    let mut edge = spawn_edge(state, &cp_addr, &token, &args.lb_pool)?;
    let mut nodes = Vec::new();
    for spec in plan {
        nodes.push(Supervised {
            name: spec.name.clone(),
            child: spawn_node(state, spec, &cp_addr, &token)?,
        });
    }
    let names: Vec<String> = plan.iter().map(|n| n.name.clone()).collect();
    tokio::select! {
        r = wait_nodes_ready(&cp_addr, &names) => r?,
        _ = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
    }
    let record = |cp: &Child, edge: &Child, nodes: &[Supervised]| ClusterRecord {
        controlplane: cp_addr.clone(),
        supervisor_pid: std::process::id(),
        controlplane_pid: cp.id().unwrap_or(0),
        edge_pid: edge.id().unwrap_or(0),
        nodes: nodes
            .iter()
            .map(|n| NodeRecord {
                name: n.name.clone(),
                pid: n.child.id().unwrap_or(0),
            })
            .collect(),
    };
    write_atomic(
        &record_path(state),
        &serde_json::to_string_pretty(&record(&cp, &edge, &nodes))?,
    )?;
    println!("{READY_LINE}");

    let mut node_waits = tokio::task::JoinSet::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        if let Some(pid) = n.child.id() {
            let name = n.name.clone();
            node_waits.spawn(async move {
                while alive(pid) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (i, name)
            });
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            status = cp.wait() => {
                tracing::error!(?status, "control plane exited; restarting it on {cp_addr}");
                let mut attempt = 0;
                cp = loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    match spawn_controlplane(state, &cp_addr, &token, &args.node_grace_period).await {
                        Ok((c, _)) => break c,
                        Err(e) if attempt < 50 => { attempt += 1; tracing::warn!(error = %e, "restart failed, retrying") }
                        Err(e) => return Err(e.context("cannot restart the control plane")),
                    }
                };
                write_atomic(&record_path(state), &serde_json::to_string_pretty(&record(&cp, &edge, &nodes))?)?;
            }
            status = edge.wait() => {
                // The edge holds no state: a new one takes the addresses back
                // from the Services' status.
                tracing::error!(?status, "edge exited; restarting it");
                tokio::time::sleep(Duration::from_millis(100)).await;
                edge = spawn_edge(state, &cp_addr, &token, &args.lb_pool)?;
                write_atomic(&record_path(state), &serde_json::to_string_pretty(&record(&cp, &edge, &nodes))?)?;
            }
            Some(Ok((_, name))) = node_waits.join_next() => {
                tracing::warn!(node = %name, "node process exited; not restarting it (a lost machine)");
            }
        }
    }
    node_waits.shutdown().await;
    stop_all(&mut cp, &mut edge, &mut nodes).await;
    Ok(ExitCode::SUCCESS)
}

async fn stop_all(cp: &mut Child, edge: &mut Child, nodes: &mut [Supervised]) {
    let term = nix::sys::signal::Signal::SIGTERM;
    for pid in nodes.iter().filter_map(|n| n.child.id()).chain(edge.id()) {
        signal(pid, term);
    }
    if let Some(pid) = cp.id() {
        signal(pid, term);
    }
    for child in nodes.iter_mut().map(|n| &mut n.child).chain([edge, cp]) {
        if tokio::time::timeout(Duration::from_secs(3), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
