//! podnet's edge: the cloud load balancer in front of the cluster.
//!
//! For each Service of type LoadBalancer it takes an address from a pool
//! (127.0.1.0/24 by default, as MetalLB takes one from an IPAddressPool),
//! opens a real listener on the host on each Service port (the port itself
//! when it can be bound, else a free one), records both in the Service's
//! `status.loadBalancer`, health-checks the nodes, and forwards every
//! connection into the overlay to a node's NodePort. Clients on the host
//! reach the cluster only through here (and the DNS port).
//!
//! The edge joins the overlay like a node but as `podnet-edge`: its
//! certificate lets it speak for the host's address on the node network
//! (the network's gateway, .1, as for a kind cluster) and nothing else. It
//! runs no pods and has no Node object.
//!
//! - [`pool`]: address assignment (pure).
//! - [`balancer`]: listeners, forwarding, Service status.
//! - [`health`]: the checks a cloud load balancer runs against nodes.
//! - [`overlay`]: the edge's QUIC connections to the nodes.

pub mod balancer;
pub mod health;
pub mod metrics;
pub mod nodes;
pub mod overlay;
pub mod pool;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::Ipv4Net;
use podnet_overlay::{EmulatedSocket, LinkTable, NodeIdentity};
use podnet_proto::auth::{self, Credentials};
use podnet_proto::informer::{Cache, informer};
use podnet_proto::retry::while_unavailable;
use podnet_proto::trace::{Recorder, TraceSourceService};
use podnet_proto::v1::JoinEdgeRequest;
use podnet_proto::v1::api_client::ApiClient;
use podnet_proto::v1::trace_source_server::TraceSourceServer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::balancer::Balancer;
use crate::overlay::Overlay;

#[derive(Debug)]
pub struct Config {
    /// The control plane's API address (`host:port`).
    pub controlplane: String,
    /// The cluster CA, PEM: how the edge knows it talks to its control
    /// plane before it has a certificate.
    pub ca_pem: String,
    pub join_token: String,
    /// Where LoadBalancer addresses come from; must be loopback addresses
    /// of this machine (all of 127.0.0.0/8 is, on Linux).
    pub pool: Ipv4Net,
    /// How often nodes are health-checked.
    pub health_interval: Duration,
    /// Where Prometheus `/metrics` is served, if anywhere.
    pub metrics: Option<tokio::net::TcpListener>,
}

/// Runs the edge until `shutdown`.
pub async fn run(mut config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Join over TLS with only the token; every later call presents the
    // edge's certificate, which the join hands out.
    let join_channel = auth::join_endpoint(&config.controlplane, &config.ca_pem)
        .context("bad control plane address")?
        .connect_lazy();
    let mut join_api = ApiClient::new(join_channel);
    // The edge's journey spans are served to the control plane from here.
    let recorder = Recorder::new("edge".into());
    let agent = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .context("cannot listen for the trace source")?;
    let agent_address = agent.local_addr()?.to_string();
    let joined = join_with_retry(&mut join_api, &config, &agent_address, &shutdown).await?;
    let credentials = Credentials::from(&joined);
    let channel = credentials
        .endpoint(&config.controlplane, auth::API_SERVER_NAME)
        .context("control plane sent an unusable edge certificate")?
        .connect_lazy();
    let api = ApiClient::new(channel);
    let tasks = TaskTracker::new();
    // Only the control plane may read the spans.
    let source = TraceSourceServer::with_interceptor(
        TraceSourceService {
            recorder: recorder.clone(),
        },
        auth::only_control_plane,
    );
    let server = tonic::transport::Server::builder()
        .tls_config(credentials.server_tls(false))
        .context("cannot set up the trace source's TLS")?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(agent);
        let served = { server }
            .add_service(source)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "trace source stopped");
        }
    });
    let host_ip: Ipv4Addr = joined
        .host_ip
        .parse()
        .context("control plane sent a bad host address")?;
    let identity = NodeIdentity::from_pem(&joined.ca_pem, &joined.cert_pem, &joined.key_pem)
        .context("control plane sent an unusable edge certificate")?;
    let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot bind the overlay socket")?;
    let socket = EmulatedSocket::new(socket, LinkTable::new())?;
    let endpoint = podnet_overlay::endpoint(socket, None)?;
    let overlay = Overlay::new(
        endpoint,
        identity.client_config(),
        host_ip,
        joined
            .host_ips
            .iter()
            .find_map(|ip| ip.parse::<std::net::Ipv6Addr>().ok()),
        tasks.clone(),
        shutdown.clone(),
    );
    tracing::info!(%host_ip, pool = %config.pool, underlay = %overlay.local_addr()?, "edge joined the overlay");
    let balancer = Balancer::new(
        config.pool,
        overlay.clone(),
        api.clone(),
        recorder,
        tasks.clone(),
        shutdown.clone(),
    );
    {
        let registry = Arc::new(balancer.metrics.registry());
        let listener = config.metrics.take();
        let shutdown = shutdown.clone();
        tasks.spawn(
            async move {
                let Some(listener) = listener else { return };
                if let Err(e) = podnet_metrics::serve(listener, registry, shutdown).await {
                    tracing::error!(error = %e, "/metrics stopped");
                }
            }
            .instrument(tracing::info_span!("metrics")),
        );
    }

    let (services_tx, services_rx) = watch::channel(Cache::new());
    let (nodes_tx, nodes_rx) = watch::channel(Cache::new());
    for (kind, tx) in [("Service", services_tx), ("Node", nodes_tx)] {
        tasks.spawn(
            informer(api.clone(), kind, String::new(), tx, shutdown.clone())
                .instrument(tracing::info_span!("informer", kind)),
        );
    }
    tasks.spawn(
        check_health(
            balancer.clone(),
            overlay.clone(),
            config.health_interval,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("health")),
    );
    reconcile(balancer.clone(), services_rx, nodes_rx, shutdown.clone())
        .instrument(tracing::info_span!("balancer"))
        .await;

    balancer.close_all();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
    overlay.close().await;
    Ok(())
}

async fn join_with_retry(
    api: &mut ApiClient<Channel>,
    config: &Config,
    agent_address: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<podnet_proto::v1::JoinResponse> {
    let req = JoinEdgeRequest {
        token: config.join_token.clone(),
        pid: std::process::id(),
        agent_address: agent_address.to_string(),
    };
    let joined = while_unavailable(Duration::from_secs(30), shutdown, || {
        let mut api = api.clone();
        let req = req.clone();
        async move { api.join_edge(req).await }
    })
    .await
    .context("joining the cluster failed")?;
    Ok(joined.into_inner())
}

/// Level-triggered: every change of Services or Nodes brings one pass.
async fn reconcile(
    balancer: Arc<Balancer>,
    mut services: watch::Receiver<Cache>,
    mut nodes: watch::Receiver<Cache>,
    shutdown: CancellationToken,
) {
    loop {
        let current = services.borrow_and_update().clone();
        let node_list = nodes::nodes_of(&nodes.borrow_and_update());
        balancer.reconcile(&current, node_list).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = services.changed() => if r.is_err() { return },
            r = nodes.changed() => if r.is_err() { return },
        }
    }
}

/// Runs every check each `interval`, and at once when the set of checks
/// changes (a new Service or node).
async fn check_health(
    balancer: Arc<Balancer>,
    overlay: Arc<Overlay>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let checks = balancer.checks();
        balancer
            .health
            .run(&overlay, &balancer.nodes(), &checks)
            .await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = balancer.health.changed() => {}
        }
    }
}
