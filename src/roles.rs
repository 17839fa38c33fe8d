//! The long-running roles: `podnet controlplane` and `podnet node`. Each
//! builds its typed config from flags, installs the shutdown signals
//! (SIGINT and SIGTERM mean the same) and calls the role's `run`.
//!
//! A role started by the launcher also dies with it: it asks the kernel for
//! SIGKILL when its parent exits, so a killed launcher leaves no orphans.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::Ipv4Net;

#[derive(Debug, Args)]
pub struct ControlplaneArgs {
    /// Keep everything in memory (nothing survives a restart) instead of
    /// in the state directory (`--state-dir`).
    #[arg(long)]
    pub in_memory: bool,
    /// API address; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address; port 0 picks a free one (printed on
    /// stdout after the API's).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics_listen: SocketAddr,
    #[arg(long, env = "PODNET_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: String,
    /// The cluster's IP families: ipv4, ipv6, or dual (IPv4 primary). The
    /// IPv6 ranges are kind's: pods from fd00:10:244::/56 (a /64 per
    /// node), Services from fd00:10:96::/112.
    #[arg(long, default_value = "ipv4")]
    pub ip_family: podnet_proto::model::network::ClusterFamilies,
    /// The network node podCIDRs are cut from.
    #[arg(long, default_value = podnet_lab::flags::DEFAULT_CLUSTER_CIDR, value_parser = podnet_lab::flags::cluster_cidr)]
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's podCIDR.
    #[arg(long, default_value_t = podnet_lab::flags::DEFAULT_NODE_CIDR_MASK_SIZE, value_parser = podnet_lab::flags::node_cidr_mask_size)]
    pub node_cidr_mask_size: u8,
    /// Emulated node addresses, handed out in join order from .2.
    #[arg(long, default_value = podnet_lab::flags::DEFAULT_NODE_CIDR)]
    pub node_cidr: Ipv4Net,
    /// Replicas of the cluster DNS Deployment (`coredns` in kube-system)
    /// created at first start.
    #[arg(long, default_value_t = 2)]
    pub dns_replicas: u32,
    /// Replicas of the ingress controller Deployment
    /// (`podnet-ingress-controller` in podnet-ingress) created at first
    /// start; 0 for none.
    #[arg(long, default_value_t = 2)]
    pub ingress_replicas: u32,
    /// NAMESPACE/NAME of the ingress controller's default backend Service
    /// (its --default-backend-service), set when the cluster is created.
    #[arg(long, value_parser = podnet_lab::flags::namespaced_name)]
    pub ingress_default_backend: Option<String>,
    /// How long a node may miss heartbeats before it is NotReady and its
    /// pods are evicted (at least 400ms).
    #[arg(long, default_value = "3s", value_parser = podnet_lab::flags::node_grace_period)]
    pub node_grace_period: Duration,
    /// The addresses of one Endpoints subset the EndpointSlice mirroring
    /// controller copies into slices at most (1 to 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub mirroring_max_endpoints_per_subset: u16,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[arg(long)]
    pub name: String,
    /// The control plane's API address.
    #[arg(long, env = "PODNET_CONTROLPLANE")]
    pub controlplane: String,
    /// The cluster CA certificate (PEM) the control plane's serving
    /// certificate must chain to (the state dir's controlplane/ca.crt).
    #[arg(long, env = "PODNET_CA_FILE")]
    pub ca_file: std::path::PathBuf,
    #[arg(long, env = "PODNET_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: String,
    /// topology.kubernetes.io/zone of this node.
    #[arg(long, default_value = "")]
    pub zone: String,
    /// Extra node labels, KEY=VALUE.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[arg(long, default_value = "4")]
    pub cpu: String,
    #[arg(long, default_value = "8Gi")]
    pub memory: String,
    /// Pods this node runs at most, as the kubelet's --max-pods: the Node's
    /// capacity and allocatable `pods`, which the scheduler keeps to.
    #[arg(long, default_value_t = podnet_proto::model::DEFAULT_MAX_PODS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: u32,
    /// Address of the overlay's UDP socket.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub underlay: SocketAddr,
    /// Address of the node agent's API (exec).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub agent: SocketAddr,
    /// Address of Prometheus `/metrics` (published on the Node as
    /// podnet.io/metrics-address).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics: SocketAddr,
    #[arg(long, default_value = podnet_proto::model::network::DEFAULT_SERVICE_CIDR)]
    pub service_cidr: Ipv4Net,
    /// How the service proxy picks among ready endpoints: random (kube-proxy's default) or round-robin.
    #[arg(long, env = "PODNET_PROXY_MODE", default_value = "random")]
    pub proxy_mode: podnet_node::proxy::Mode,
    /// Serve cluster DNS to the host on this real address (UDP and TCP).
    #[arg(long)]
    pub host_dns: Option<SocketAddr>,
    /// The node's own resolv.conf, as the kubelet's --resolv-conf: what
    /// `dnsPolicy: Default` pods get, and whose search domains ClusterFirst
    /// pods add. Without it the node's resolv.conf names the cluster DNS
    /// (10.96.0.10) only.
    #[arg(long, value_parser = podnet_lab::launcher::parse_resolv_conf)]
    pub resolv_conf: Option<Box<podnet_node::dnsconfig::NodeResolvConf>>,
    /// A host of the emulated outside world, NAME=IP or
    /// NAME=IP,serve=IMAGE (repeatable): the node's outside resolver, where
    /// its resolv.conf points, answers A for it, and NXDOMAIN for any name
    /// not given; with serve= the node runs that image at IP.
    #[arg(long = "external", value_parser = podnet_lab::flags::external_host)]
    pub external: Vec<podnet_lab::flags::ExternalHost>,
    /// A real resolver on the host, IP:PORT, that the outside resolver
    /// relays every name --external does not list to.
    #[arg(long, value_parser = podnet_lab::flags::dns_upstream)]
    pub dns_upstream: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct EdgeArgs {
    /// The control plane's API address.
    #[arg(long, env = "PODNET_CONTROLPLANE")]
    pub controlplane: String,
    /// The cluster CA certificate (PEM) the control plane's serving
    /// certificate must chain to (the state dir's controlplane/ca.crt).
    #[arg(long, env = "PODNET_CA_FILE")]
    pub ca_file: std::path::PathBuf,
    #[arg(long, env = "PODNET_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: String,
    /// Addresses handed to LoadBalancer Services (loopback addresses of
    /// this machine).
    #[arg(long, default_value = podnet_proto::model::network::DEFAULT_LB_POOL, value_parser = podnet_lab::launcher::parse_lb_pool)]
    pub lb_pool: Ipv4Net,
    /// How often nodes are health-checked.
    #[arg(long, default_value = "1s", value_parser = podnet_lab::flags::interval)]
    pub health_interval: Duration,
    /// Prometheus `/metrics` address; port 0 picks a free one (printed on
    /// stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics_listen: SocketAddr,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// When started by the launcher (PODNET_PARENT_PID set), die with it.
fn die_with_parent() {
    let Ok(parent) = std::env::var("PODNET_PARENT_PID") else {
        return;
    };
    let Ok(parent) = parent.parse::<u32>() else {
        return;
    };
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!(error = %e, "cannot ask to die with the launcher");
    }
    // The parent may have exited before the request took effect.
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(1);
    }
}

/// Runs the control plane with its store and CA in `state_dir`.
pub async fn controlplane(
    state_dir: &std::path::Path,
    args: ControlplaneArgs,
) -> anyhow::Result<ExitCode> {
    die_with_parent();
    // Before anything is bound or written: the two flags must agree.
    podnet_lab::flags::node_cidrs(args.cluster_cidr, args.node_cidr_mask_size)
        .map_err(podnet_lab::InputError)?;
    let shutdown = podnet_lab::signal::shutdown_on_signals()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("cannot listen for /metrics on {}", args.metrics_listen))?;
    let metrics_addr = metrics.local_addr()?;
    let config = podnet_controlplane::Config {
        state_dir: if args.in_memory {
            None
        } else {
            Some(state_dir.to_path_buf())
        },
        join_token: args.join_token,
        ip_families: args.ip_family,
        cluster_cidr: args.cluster_cidr,
        node_cidr_mask_size: args.node_cidr_mask_size,
        cluster_cidr_v6: podnet_proto::model::network::DEFAULT_CLUSTER_CIDR_V6
            .parse()
            .context("the default IPv6 cluster CIDR is a CIDR")?,
        node_cidr_mask_size_v6: podnet_proto::model::network::DEFAULT_NODE_CIDR_MASK_SIZE_V6,
        node_cidr: args.node_cidr,
        node_grace_period: args.node_grace_period,
        dns_replicas: args.dns_replicas,
        ingress_replicas: args.ingress_replicas,
        ingress_default_backend: args.ingress_default_backend,
        controllers: podnet_controlplane::controllers::Config {
            mirroring_max_endpoints_per_subset: usize::from(
                args.mirroring_max_endpoints_per_subset,
            ),
        },
    };
    // Nodes and clients read the CA and the admin's credentials as soon
    // as the address is out: the state is opened first.
    let state = podnet_controlplane::open(&config)?;
    // The launcher reads these lines to learn the addresses.
    println!("podnet controlplane listening on {addr}");
    println!("podnet controlplane metrics on {metrics_addr}");
    podnet_controlplane::run_with_metrics(config, state, listener, Some(metrics), shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    die_with_parent();
    let shutdown = podnet_lab::signal::shutdown_on_signals()?;
    let config = podnet_node::Config {
        name: args.name.clone(),
        controlplane: args.controlplane,
        ca_pem: podnet_proto::auth::read_ca(&args.ca_file)?,
        join_token: args.join_token,
        zone: args.zone,
        labels: args.labels,
        cpu: args.cpu,
        memory: args.memory,
        max_pods: args.max_pods,
        underlay_bind: args.underlay,
        agent_bind: args.agent,
        metrics_bind: args.metrics,
        service_cidr: args.service_cidr,
        proxy_mode: args.proxy_mode,
        host_dns: args.host_dns,
        resolv_conf: args
            .resolv_conf
            .map_or_else(podnet_node::dnsconfig::NodeResolvConf::builtin, |c| *c),
        external: podnet_node::Outside {
            zone: podnet_node::OutsideZone::new(
                args.external.iter().map(|h| (h.name.as_str(), h.address)),
            )?,
            host: args.dns_upstream,
        },
        served: podnet_lab::flags::served_addresses(&args.external)
            .map_err(|why| podnet_lab::InputError(format!("--external: {why}")))?
            .into_iter()
            .map(|(address, (name, image))| podnet_node::ServedHost {
                address,
                name,
                image,
            })
            .collect(),
    };
    let span = tracing::info_span!("node", name = %args.name);
    tracing::Instrument::instrument(podnet_node::run(config, shutdown), span).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn edge(args: EdgeArgs) -> anyhow::Result<ExitCode> {
    die_with_parent();
    let shutdown = podnet_lab::signal::shutdown_on_signals()?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("cannot listen for /metrics on {}", args.metrics_listen))?;
    // The launcher reads this line to learn the address.
    println!("podnet edge metrics on {}", metrics.local_addr()?);
    let config = podnet_edge::Config {
        controlplane: args.controlplane,
        ca_pem: podnet_proto::auth::read_ca(&args.ca_file)?,
        join_token: args.join_token,
        pool: args.lb_pool,
        health_interval: args.health_interval,
        metrics: Some(metrics),
    };
    tracing::Instrument::instrument(
        podnet_edge::run(config, shutdown),
        tracing::info_span!("edge"),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
