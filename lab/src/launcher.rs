//! The launcher: `podnet up` starts a supervisor in the background that
//! runs the control plane and the nodes as child processes; `podnet down`
//! stops it. The supervisor records the cluster in the state directory
//! (`cluster.json`) and holds `supervisor.pid` so a second `up` in the same
//! directory is refused instead of starting a second cluster.
//!
//! The supervisor restarts the control plane if it dies (on the same
//! address and state, so nodes reconnect and nothing is lost) and the edge
//! (it holds no state), with a back-off and a limit ([`Restarts`]), but not
//! a node: a killed node is a lost machine, and the cluster heals around it.
//! A node is started again (same name, same arguments) only when its exit
//! was asked for as a restart, by the file
//! [`crate::record::restart_request_path`] written before it was stopped.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipnet::Ipv4Net;
use podnet_node::dnsconfig::NodeResolvConf;
use podnet_proto::model::view::NodeView;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::failure::{self, Failure};
use crate::flags;
use crate::lbpool::{self, PoolClaim};
use crate::record::{
    ClusterRecord, NodeRecord, alive, signal, supervisor_pid, supervisor_pid_path, write_atomic,
};
use crate::scenario::schema::{self, NodeSpec};

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// A scenario file whose `cluster` section describes the nodes.
    pub file: Option<PathBuf>,
    /// Number of nodes when no file says otherwise.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long a node may miss heartbeats before it is NotReady (at
    /// least 400ms).
    #[arg(long, default_value = "3s", value_parser = flags::node_grace_period)]
    pub node_grace_period: Duration,
    /// The network node podCIDRs are cut from (kube-controller-manager's
    /// --cluster-cidr).
    #[arg(long, default_value = flags::DEFAULT_CLUSTER_CIDR, value_parser = flags::cluster_cidr)]
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's podCIDR (kube-controller-manager's
    /// --node-cidr-mask-size); with --cluster-cidr it bounds the nodes.
    #[arg(long, default_value_t = flags::DEFAULT_NODE_CIDR_MASK_SIZE, value_parser = flags::node_cidr_mask_size)]
    pub node_cidr_mask_size: u8,
    /// Addresses the edge hands to LoadBalancer Services: a range of this
    /// machine's loopback addresses that no other cluster holds. Without
    /// it the cluster takes the first free /24 from 127.0.1.0/24 up.
    #[arg(long, value_parser = parse_lb_pool)]
    pub lb_pool: Option<Ipv4Net>,
    /// Pods each node runs at most (the kubelet's --max-pods).
    #[arg(long, default_value_t = podnet_proto::model::DEFAULT_MAX_PODS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: u32,
    /// The Service (NAMESPACE/NAME) the ingress controller sends requests
    /// that match no Ingress rule and no Ingress's default backend to
    /// (ingress-nginx's --default-backend-service); set when the cluster
    /// is created. Overrides the scenario's `ingress_default_backend`.
    #[arg(long, value_parser = flags::namespaced_name)]
    pub ingress_default_backend: Option<String>,
    /// The nodes' own resolv.conf (the kubelet's --resolv-conf): what
    /// `dnsPolicy: Default` pods get, and whose search domains ClusterFirst
    /// pods add. Without it a node's resolv.conf names the cluster DNS
    /// only.
    #[arg(long, value_parser = parse_resolv_conf_path)]
    pub resolv_conf: Option<PathBuf>,
    /// A host of the emulated outside world, NAME=IP or
    /// NAME=IP,serve=IMAGE (repeatable; added to the scenario's
    /// `external`): the nodes' resolv.conf points at an outside resolver
    /// that answers A for these names and NXDOMAIN for any other, and
    /// cluster DNS forwards there what is not in its zones. With serve=
    /// (podnet/http-echo, podnet/tcp-echo or podnet/udp-echo) every node
    /// runs that image at IP, which pods reach masqueraded as their node.
    #[arg(long = "external", value_parser = flags::external_host)]
    pub external: Vec<flags::ExternalHost>,
    /// A real resolver on this machine, IP:PORT: the nodes' outside
    /// resolver relays to it every query for a name --external does not
    /// list, instead of answering NXDOMAIN.
    #[arg(long, value_parser = flags::dns_upstream)]
    pub dns_upstream: Option<std::net::SocketAddr>,
    /// The cluster's IP families: ipv4, or dual (IPv4 primary, plus IPv6
    /// Service ClusterIPs, pod addresses, EndpointSlices and DNS records),
    /// as kind's networking.ipFamily. Overrides the scenario's
    /// `ip_family`; set when the cluster is created.
    #[arg(long, value_parser = flags::ip_family)]
    pub ip_family: Option<podnet_proto::model::network::ClusterFamilies>,
    /// Run the supervisor in the foreground (what `up` starts in the background).
    #[arg(long, hide = true)]
    pub foreground: bool,
}

/// What the supervisor prints on stdout when the cluster is up, or, before
/// that, why it could not bring it up.
const READY_LINE: &str = "podnet: cluster ready";
const FAILED_PREFIX: &str = "podnet: cluster failed: ";

/// `--lb-pool`: the edge listens on the host's loopback addresses only, so
/// the pool must be a loopback range; checked before anything starts.
pub fn parse_lb_pool(s: &str) -> Result<Ipv4Net, String> {
    let pool: Ipv4Net = s
        .parse()
        .map_err(|e| format!("{s:?} is not an IPv4 CIDR: {e}"))?;
    if !pool.network().is_loopback() {
        return Err(format!(
            "{pool} is not a loopback range (127.0.0.0/8): the edge listens on this machine's loopback addresses only"
        ));
    }
    Ok(pool)
}

/// Reads and checks a node resolv.conf (`--resolv-conf`); the message
/// names the file and the line.
pub fn read_resolv_conf(path: &Path) -> Result<NodeResolvConf, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    NodeResolvConf::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `--resolv-conf` of `podnet node`: the file read and checked at start
/// (boxed: the node's flags stay small beside the other commands').
pub fn parse_resolv_conf(s: &str) -> Result<Box<NodeResolvConf>, String> {
    read_resolv_conf(Path::new(s)).map(Box::new)
}

/// `--resolv-conf` of `podnet up`: checked before anything starts, and
/// made absolute for nodes that run elsewhere in the file system.
pub fn parse_resolv_conf_path(s: &str) -> Result<PathBuf, String> {
    let path = std::path::absolute(s).map_err(|e| format!("cannot resolve {s:?}: {e}"))?;
    read_resolv_conf(&path)?;
    Ok(path)
}

/// The outside hosts: the scenario's, then the flags', once every served
/// address serves one image and leads outside the cluster's ranges.
fn external_hosts(args: &UpArgs) -> anyhow::Result<Vec<flags::ExternalHost>> {
    let mut hosts: Vec<flags::ExternalHost> = match &args.file {
        Some(file) => schema::load(file)?.cluster.external,
        None => Vec::new(),
    };
    hosts.extend(args.external.iter().cloned());
    let served = flags::served_addresses(&hosts)
        .map_err(|why| crate::InputError(format!("--external: {why}")))?;
    let net = |cidr: &str| {
        cidr.parse::<Ipv4Net>()
            .with_context(|| format!("the default range {cidr} is a CIDR"))
    };
    flags::check_served_outside(
        &served,
        args.cluster_cidr,
        net(flags::DEFAULT_NODE_CIDR)?,
        net(podnet_proto::model::network::DEFAULT_SERVICE_CIDR)?,
    )
    .map_err(|why| crate::InputError(format!("--external: {why}")))?;
    Ok(hosts)
}

/// The nodes to start: the scenario's, or `count` default ones, once they
/// are known to fit the pod and node networks (and the outside hosts they
/// will serve are known to be valid).
fn node_plan(args: &UpArgs) -> anyhow::Result<Vec<NodeSpec>> {
    let plan: Vec<NodeSpec> = match &args.file {
        Some(file) => schema::load(file)?.cluster.node_specs(),
        None => (1..=args.nodes)
            .map(|i| NodeSpec {
                name: format!("node-{i}"),
                ..Default::default()
            })
            .collect(),
    };
    let node_net: Ipv4Net = flags::DEFAULT_NODE_CIDR
        .parse()
        .context("the default node network is a CIDR")?;
    flags::check_capacity(
        plan.len(),
        args.cluster_cidr,
        args.node_cidr_mask_size,
        node_net,
    )?;
    external_hosts(args)?;
    Ok(plan)
}

/// How long nodes may take to be Ready: a start on two cores takes tens of
/// milliseconds per node, so a big cluster gets longer.
fn ready_deadline(nodes: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(100).saturating_mul(nodes as u32)
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
        .arg(humantime::format_duration(args.node_grace_period).to_string())
        .arg("--cluster-cidr")
        .arg(args.cluster_cidr.to_string())
        .arg("--node-cidr-mask-size")
        .arg(args.node_cidr_mask_size.to_string())
        .arg("--max-pods")
        .arg(args.max_pods.to_string());
    if let Some(pool) = args.lb_pool {
        cmd.arg("--lb-pool").arg(pool.to_string());
    }
    if let Some(backend) = &args.ingress_default_backend {
        cmd.arg("--ingress-default-backend").arg(backend);
    }
    if let Some(resolv_conf) = &args.resolv_conf {
        cmd.arg("--resolv-conf").arg(resolv_conf);
    }
    for host in &args.external {
        cmd.arg("--external").arg(host.to_string());
    }
    if let Some(upstream) = args.dns_upstream {
        cmd.arg("--dns-upstream").arg(upstream.to_string());
    }
    if let Some(families) = args.ip_family {
        cmd.arg("--ip-family").arg(families.to_string());
    }
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
    let nodes = node_plan(args)?.len();
    let outcome = tokio::time::timeout(ready_deadline(nodes) + Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == READY_LINE {
                return Ok(());
            }
            if let Some(reason) = line.strip_prefix(FAILED_PREFIX) {
                return Err(Some(reason.to_string()));
            }
        }
        Err(None)
    })
    .await
    .unwrap_or(Err(None));
    if let Err(reason) = outcome {
        if let Some(reason) = reason {
            // It said why and is cleaning up: let it finish.
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            bail!("{reason} (logs in {})", state.join("logs").display());
        }
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
    Ok((child, ClusterRecord::read(state)?))
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
        "cluster up in {:.0} ms: control plane at {}, {} nodes Ready, LoadBalancer pool {} (state in {})",
        started.elapsed().as_secs_f64() * 1000.0,
        record.controlplane,
        record.nodes.len(),
        record
            .lb_pool
            .map_or_else(|| "none".to_string(), |p| p.to_string()),
        state.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check_not_running(state: &Path) -> anyhow::Result<()> {
    if let Some(pid) = supervisor_pid(state)
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
    let pid_path = supervisor_pid_path(state);
    let Some(pid) = supervisor_pid(state) else {
        if let Some(failure) = Failure::read(state) {
            // A cluster that stopped itself: clear what it left, as below.
            Failure::clear(state);
            let _ = std::fs::remove_dir_all(state.join("controlplane"));
            println!(
                "cluster in {} had stopped at {}; cleared",
                state.display(),
                failure.at
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("no cluster is running in {}", state.display());
        return Ok(ExitCode::SUCCESS);
    };
    let record = ClusterRecord::read(state).ok();
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
        for p in record.role_pids() {
            if alive(p) {
                signal(p, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    let _ = std::fs::remove_file(ClusterRecord::path(state));
    let _ = std::fs::remove_file(&pid_path);
    Failure::clear(state);
    let _ = std::fs::remove_dir_all(state.join("controlplane"));
    println!("cluster in {} stopped", state.display());
    Ok(ExitCode::SUCCESS)
}

/// A new cluster's roles log into new files; a role restarted within one
/// cluster's life appends to its file, so the earlier crash stays readable.
/// `supervisor.log` is this process's own stderr and stays.
fn clear_role_logs(logs: &Path) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(logs).with_context(|| format!("cannot read {}", logs.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") && !path.ends_with("supervisor.log") {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
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

/// Where a started control plane listens: its API and its `/metrics`.
struct ControlplaneAddrs {
    api: String,
    metrics: String,
}

async fn spawn_controlplane(
    state: &Path,
    listen: &str,
    metrics_listen: &str,
    token: &str,
    args: &UpArgs,
) -> anyhow::Result<(Child, ControlplaneAddrs)> {
    let mut cmd = role_command(state, "controlplane", token)?;
    cmd.arg("--state-dir")
        .arg(state.join("controlplane"))
        .arg("controlplane")
        .arg("--listen")
        .arg(listen)
        .arg("--metrics-listen")
        .arg(metrics_listen)
        .arg("--node-grace-period")
        .arg(humantime::format_duration(args.node_grace_period).to_string())
        .arg("--cluster-cidr")
        .arg(args.cluster_cidr.to_string())
        .arg("--node-cidr-mask-size")
        .arg(args.node_cidr_mask_size.to_string());
    let default_backend = match (&args.ingress_default_backend, &args.file) {
        (Some(backend), _) => Some(backend.clone()),
        (None, Some(file)) => schema::load(file)?.cluster.ingress_default_backend,
        (None, None) => None,
    };
    if let Some(backend) = default_backend {
        cmd.arg("--ingress-default-backend").arg(backend);
    }
    let families = match (args.ip_family, &args.file) {
        (Some(families), _) => families,
        (None, Some(file)) => schema::load(file)?.cluster.ip_family.unwrap_or_default(),
        (None, None) => Default::default(),
    };
    cmd.arg("--ip-family").arg(families.to_string());
    let mut child = cmd
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
    let api = line
        .strip_prefix("podnet controlplane listening on ")
        .with_context(|| format!("unexpected control plane output {line:?}"))?
        .to_string();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("control plane did not report its metrics address within 10s")??
        .context("control plane exited before serving /metrics (see logs/controlplane.log)")?;
    let metrics = line
        .strip_prefix("podnet controlplane metrics on ")
        .with_context(|| format!("unexpected control plane output {line:?}"))?
        .to_string();
    Ok((child, ControlplaneAddrs { api, metrics }))
}

/// The cluster CA nodes and the edge verify the control plane against.
fn ca_file(state: &Path) -> std::path::PathBuf {
    crate::api::controlplane_dir(state).join(podnet_proto::auth::CA_CERT_FILE)
}

fn spawn_node(
    state: &Path,
    spec: &NodeSpec,
    cp: &str,
    token: &str,
    args: &UpArgs,
) -> anyhow::Result<Child> {
    let mut cmd = role_command(state, &spec.name, token)?;
    // The state dir on its command line says whose node it is.
    cmd.arg("--state-dir").arg(state);
    // Every node forwards host DNS queries, so DNS from the host survives
    // the loss of any one node; cluster-info shows a Ready one.
    cmd.arg("node")
        .arg("--ca-file")
        .arg(ca_file(state))
        .arg("--host-dns")
        .arg("127.0.0.1:0")
        .arg("--name")
        .arg(&spec.name)
        .arg("--controlplane")
        .arg(cp)
        .arg("--max-pods")
        .arg(args.max_pods.to_string());
    if let Some(resolv_conf) = &args.resolv_conf {
        cmd.arg("--resolv-conf").arg(resolv_conf);
    }
    for host in external_hosts(args)? {
        cmd.arg("--external").arg(host.to_string());
    }
    if let Some(upstream) = args.dns_upstream {
        cmd.arg("--dns-upstream").arg(upstream.to_string());
    }
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

/// Starts the edge with `/metrics` on `metrics_listen`; the edge and the
/// address it serves `/metrics` on.
async fn spawn_edge(
    state: &Path,
    cp: &str,
    token: &str,
    pool: Ipv4Net,
    metrics_listen: &str,
) -> anyhow::Result<(Child, String)> {
    let mut child = role_command(state, "edge", token)?
        .arg("--state-dir")
        .arg(state)
        .arg("edge")
        .arg("--ca-file")
        .arg(ca_file(state))
        .arg("--controlplane")
        .arg(cp)
        .arg("--lb-pool")
        .arg(pool.to_string())
        .arg("--metrics-listen")
        .arg(metrics_listen)
        // The metrics address comes back on stdout.
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the edge")?;
    let stdout = child.stdout.take().context("edge has no stdout")?;
    let line = tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .context("edge did not report its metrics address within 10s")??
    .context("edge exited before serving /metrics (see logs/edge.log)")?;
    let metrics = line
        .strip_prefix("podnet edge metrics on ")
        .with_context(|| format!("unexpected edge output {line:?}"))?
        .to_string();
    Ok((child, metrics))
}

async fn wait_nodes_ready(state: &Path, cp: &str, names: &[String]) -> anyhow::Result<()> {
    let mut api = crate::api::connect(cp, &crate::api::admin_credentials(state)?).await?;
    let within = ready_deadline(names.len());
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ready: Vec<String> = crate::api::list_objects(&mut api, "Node", "")
            .await
            .context("cannot list nodes")?
            .into_iter()
            .filter(|n| NodeView(n).ready())
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
            bail!(
                "nodes not Ready after {within:?}: {:?} of {:?} are",
                ready,
                names
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The supervisor: runs the cluster until SIGTERM/SIGINT.
async fn supervise(state: &Path, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let result = supervise_in(state, args).await;
    if let Err(e) = &result {
        // Read by `start_supervisor` while the cluster is coming up; after
        // that nobody reads stdout, and a closed pipe is no error.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{FAILED_PREFIX}{e:#}");
    }
    result
}

async fn supervise_in(state: &Path, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let plan = node_plan(args)?;
    std::fs::create_dir_all(state.join("logs"))?;
    check_not_running(state)?;
    // Before anything of the state dir changes: a cluster that cannot have
    // its pool leaves no trace.
    let pool = lbpool::claim(&lbpool::claims_dir(), args.lb_pool, state)?;
    let pid_path = supervisor_pid_path(state);
    write_atomic(&pid_path, &std::process::id().to_string())?;
    Failure::clear(state);
    // A new cluster starts empty; the store persists across control plane
    // restarts within one cluster's life, not across clusters.
    let data = state.join("controlplane");
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot clear {}", data.display()))?;
    }
    clear_role_logs(&state.join("logs"))?;
    // A restart asked of an earlier cluster's node is not this one's.
    let restarts = state.join("restart");
    if restarts.exists() {
        std::fs::remove_dir_all(&restarts)
            .with_context(|| format!("cannot clear {}", restarts.display()))?;
    }
    let result = supervise_inner(state, args, &plan, &pool).await;
    if let Err(e) = &result {
        // Before the record goes, so a client never sees neither.
        if let Err(write) = Failure::write(state, &format!("{e:#}")) {
            tracing::warn!(error = %format!("{write:#}"), "cannot record why the cluster stopped");
        }
    }
    let _ = std::fs::remove_file(ClusterRecord::path(state));
    let _ = std::fs::remove_file(&pid_path);
    result
}

async fn supervise_inner(
    state: &Path,
    args: &UpArgs,
    plan: &[NodeSpec],
    pool: &PoolClaim,
) -> anyhow::Result<ExitCode> {
    let lb_pool = pool.pool();
    let shutdown = crate::signal::shutdown_on_signals()?;
    let token = format!("{:032x}", rand::random::<u128>());
    let (mut cp, cp_addrs) =
        spawn_controlplane(state, "127.0.0.1:0", "127.0.0.1:0", &token, args).await?;
    let cp_addr = cp_addrs.api.clone();
    // A restarted role serves /metrics where it did, as the API.
    let cp_metrics = cp_addrs.metrics;
    let (mut edge, edge_metrics) =
        spawn_edge(state, &cp_addr, &token, lb_pool, "127.0.0.1:0").await?;
    let mut nodes = Vec::new();
    for spec in plan {
        nodes.push(Supervised {
            name: spec.name.clone(),
            child: spawn_node(state, spec, &cp_addr, &token, args)?,
        });
    }
    let names: Vec<String> = plan.iter().map(|n| n.name.clone()).collect();
    tokio::select! {
        r = wait_nodes_ready(state, &cp_addr, &names) => r?,
        _ = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
    }
    let record = |cp: &Child, edge: &Child, nodes: &[Supervised]| ClusterRecord {
        controlplane: cp_addr.clone(),
        controlplane_metrics: Some(cp_metrics.clone()),
        edge_metrics: Some(edge_metrics.clone()),
        supervisor_pid: std::process::id(),
        controlplane_pid: cp.id().unwrap_or(0),
        edge_pid: edge.id().unwrap_or(0),
        lb_pool: Some(lb_pool),
        nodes: nodes
            .iter()
            .map(|n| NodeRecord {
                name: n.name.clone(),
                pid: n.child.id().unwrap_or(0),
            })
            .collect(),
    };
    record(&cp, &edge, &nodes).write(state)?;
    println!("{READY_LINE}");

    let mut node_waits = tokio::task::JoinSet::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        watch_node(&mut node_waits, i, n);
    }
    let now = std::time::Instant::now();
    let (mut cp_restarts, mut edge_restarts) = (Restarts::new(now), Restarts::new(now));
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(ExitCode::SUCCESS),
            status = cp.wait() => {
                tracing::error!(?status, "control plane exited; restarting it on {cp_addr}");
                match restart_controlplane(state, &cp_addr, &cp_metrics, &token, args, &mut cp_restarts).await {
                    Ok(c) => cp = c,
                    Err(e) => break Err(e),
                }
                record(&cp, &edge, &nodes).write(state)?;
            }
            status = edge.wait() => {
                // The edge holds no state: a new one takes the addresses back
                // from the Services' status.
                let Some(delay) = edge_restarts.exited(std::time::Instant::now()) else {
                    let message = edge_restarts.giving_up(state, "edge", "edge");
                    tracing::error!(?status, "{message}");
                    break Err(anyhow::anyhow!(message));
                };
                tracing::error!(?status, "edge exited; restarting it in {delay:?}");
                tokio::time::sleep(delay).await;
                edge = spawn_edge(state, &cp_addr, &token, lb_pool, &edge_metrics).await?.0;
                edge_restarts.started(std::time::Instant::now());
                record(&cp, &edge, &nodes).write(state)?;
            }
            Some(Ok((i, name))) = node_waits.join_next() => {
                // Asked for by a restart fault: the same node again, under
                // its name (it rejoins with its podCIDR and IP).
                let request = crate::record::restart_request_path(state, &name);
                if std::fs::remove_file(&request).is_ok() {
                    let (Some(spec), Some(node)) = (plan.get(i), nodes.get_mut(i)) else { continue };
                    tracing::info!(node = %name, "node process exited on request; starting it again");
                    // Reaped, so its pid is not reused while recorded.
                    let _ = node.child.wait().await;
                    match spawn_node(state, spec, &cp_addr, &token, args) {
                        Ok(child) => node.child = child,
                        Err(e) => break Err(e),
                    }
                    watch_node(&mut node_waits, i, node);
                    record(&cp, &edge, &nodes).write(state)?;
                } else {
                    tracing::warn!(node = %name, "node process exited; not restarting it (a lost machine)");
                }
            }
        }
    };
    node_waits.shutdown().await;
    stop_all(&mut cp, &mut edge, &mut nodes).await;
    result
}

/// Watches node `i`'s process in `waits`, which yields `(i, name)` when it
/// has exited.
fn watch_node(waits: &mut tokio::task::JoinSet<(usize, String)>, i: usize, node: &Supervised) {
    if let Some(pid) = node.child.id() {
        let name = node.name.clone();
        waits.spawn(async move {
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (i, name)
        });
    }
}

/// Starts the control plane again on `addr`, after the back-off
/// `restarts` asks for, until it starts or `restarts` gives up.
async fn restart_controlplane(
    state: &Path,
    addr: &str,
    metrics: &str,
    token: &str,
    args: &UpArgs,
    restarts: &mut Restarts,
) -> anyhow::Result<Child> {
    loop {
        let Some(delay) = restarts.exited(std::time::Instant::now()) else {
            let message = restarts.giving_up(state, "control plane", "controlplane");
            tracing::error!("{message}");
            bail!(message);
        };
        tokio::time::sleep(delay).await;
        match spawn_controlplane(state, addr, metrics, token, args).await {
            Ok((child, _)) => {
                restarts.started(std::time::Instant::now());
                return Ok(child);
            }
            Err(e) => tracing::warn!(error = %e, "restart failed"),
        }
    }
}

/// When to restart a supervised role, as the kubelet restarts a crashing
/// container: after a back-off that doubles from [`Restarts::FIRST`] up to
/// [`Restarts::MAX`] while the role keeps exiting soon after it started,
/// and not at all after [`Restarts::LIMIT`] such exits in a row. A role
/// that ran for [`Restarts::STABLE`] starts over with a short back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarts {
    started: std::time::Instant,
    quick_exits: u32,
}

impl Restarts {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    const STABLE: Duration = Duration::from_secs(10);
    const LIMIT: u32 = 5;

    pub fn new(started: std::time::Instant) -> Restarts {
        Restarts {
            started,
            quick_exits: 0,
        }
    }

    /// The role exited at `now`: how long to wait before restarting it, or
    /// `None` when it has exited too often too soon to go on.
    pub fn exited(&mut self, now: std::time::Instant) -> Option<Duration> {
        if now.saturating_duration_since(self.started) >= Restarts::STABLE {
            self.quick_exits = 0;
        }
        self.quick_exits += 1;
        if self.quick_exits > Restarts::LIMIT {
            return None;
        }
        let delay = Restarts::FIRST.saturating_mul(1 << (self.quick_exits - 1).min(16));
        Some(delay.min(Restarts::MAX))
    }

    /// The role was started again at `now`.
    pub fn started(&mut self, now: std::time::Instant) {
        self.started = now;
    }

    /// What the supervisor says when it stops restarting `role`: the count
    /// and the last lines of the role's log in `state`, which say why.
    pub fn giving_up(&self, state: &Path, role: &str, log: &str) -> String {
        format!(
            "the {role} exited {} times in a row within {:?} of starting; not restarting it again, stopping the cluster (see {}){}",
            self.quick_exits,
            Restarts::STABLE,
            failure::log_path(state, log).display(),
            failure::tail_text(state, log),
        )
    }
}

async fn stop_all(cp: &mut Child, edge: &mut Child, nodes: &mut [Supervised]) {
    use nix::sys::signal::Signal::{SIGCONT, SIGTERM};
    // SIGCONT after SIGTERM: a process a pause fault left stopped (its
    // runner killed before it could heal) handles the SIGTERM too.
    for pid in nodes.iter().filter_map(|n| n.child.id()).chain(edge.id()) {
        signal(pid, SIGTERM);
        signal(pid, SIGCONT);
    }
    if let Some(pid) = cp.id() {
        signal(pid, SIGTERM);
        signal(pid, SIGCONT);
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn restarts_back_off_and_give_up_on_a_role_that_keeps_crashing() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Restarts::new(t0);
        let mut at = t0;
        let mut delays = Vec::new();
        while let Some(d) = r.exited(at + ms(50)) {
            delays.push(d);
            at += ms(50) + d;
            r.started(at);
        }
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1600)]);
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir(state.path().join("logs")).unwrap();
        std::fs::write(state.path().join("logs/edge.log"), "one\nlast words\n").unwrap();
        let message = r.giving_up(state.path(), "edge", "edge");
        assert!(message.contains("6 times"), "{message}");
        assert!(
            message.ends_with("edge.log:\n  one\n  last words"),
            "{message}"
        );

        // A role that ran long enough starts over.
        let mut r = Restarts::new(t0);
        for _ in 0..4 {
            r.exited(t0);
        }
        assert_eq!(r.exited(t0 + Duration::from_secs(11)), Some(ms(100)));
        // The back-off is capped.
        let mut r = Restarts::new(t0);
        r.quick_exits = 4;
        assert!(r.exited(t0).unwrap() <= Restarts::MAX);
    }

    #[test]
    fn the_lb_pool_is_a_loopback_range() {
        assert_eq!(
            parse_lb_pool("127.0.1.0/24").unwrap().to_string(),
            "127.0.1.0/24"
        );
        let err = parse_lb_pool("10.0.0.0/24").unwrap_err();
        assert!(err.contains("not a loopback range"), "{err}");
        assert!(
            parse_lb_pool("nonsense")
                .unwrap_err()
                .contains("not an IPv4 CIDR")
        );
    }
}
