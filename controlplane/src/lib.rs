//! podnet's control plane: the gRPC API server, the revisioned store, the
//! scheduler, the controllers, IP address management and the cluster CA.
//!
//! `run` takes its listener and a shutdown token, so tests bind
//! `127.0.0.1:0` and own the lifetime.

pub mod api;
pub mod authz;
pub mod ca;
pub mod cluster_id;
pub mod controllers;
pub mod metrics;
pub mod nodes;
pub mod registry;
pub mod scheduler;
pub mod store;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::{Ipv4Net, Ipv6Net};
use podnet_proto::model::network::ClusterFamilies;
use podnet_proto::v1::api_server::ApiServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::ApiService;
use crate::ca::ClusterCa;
use crate::nodes::{Nodes, NodesConfig};
use crate::registry::{Addons, Registry};
use crate::store::{MemBackend, Storage};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store and the cluster CA live; `None` keeps everything in
    /// memory (tests).
    pub state_dir: Option<PathBuf>,
    pub join_token: String,
    /// The cluster's IP families (`--ip-family`): where Services get
    /// ClusterIPs and nodes podCIDRs from.
    pub ip_families: ClusterFamilies,
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's podCIDR out of `cluster_cidr`.
    pub node_cidr_mask_size: u8,
    /// The IPv6 pod network and each node's share of it, for clusters
    /// with IPv6.
    pub cluster_cidr_v6: Ipv6Net,
    pub node_cidr_mask_size_v6: u8,
    pub node_cidr: Ipv4Net,
    pub node_grace_period: Duration,
    /// Replicas of the `coredns` Deployment created on first start.
    pub dns_replicas: u32,
    /// Replicas of the ingress controller created on first start (0: no
    /// ingress controller).
    pub ingress_replicas: u32,
    /// NAMESPACE/NAME of the ingress controller's default backend Service,
    /// given to it as `--default-backend-service` on first start.
    pub ingress_default_backend: Option<String>,
    /// What the controllers are told (`--mirroring-max-endpoints-per-subset`).
    pub controllers: controllers::Config,
}

/// The store and the CA, opened (and on first start created) before the
/// API listens, so that nodes and clients find the CA and the admin's
/// credentials as soon as the address is out.
pub struct State {
    storage: Storage,
    ca: ClusterCa,
}

/// Opens the cluster's state from `config.state_dir` (or memory).
pub fn open(config: &Config) -> anyhow::Result<State> {
    let (storage, ca) = match &config.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create state dir {}", dir.display()))?;
            // Before the CA: a CA on disk means the cluster was created.
            let (storage, cluster) = cluster_id::open_store(dir)?;
            tracing::info!(cluster.id = %cluster, "store opened");
            let ca = ClusterCa::load_or_create(dir)?;
            ca.ensure_admin(dir)?;
            (storage, ca)
        }
        None => (
            Storage::new(Box::new(MemBackend::new()))?,
            ClusterCa::generate()?,
        ),
    };
    Ok(State { storage, ca })
}

/// Serves the API on `listener` and runs the controllers until `shutdown`.
pub async fn run(
    config: Config,
    state: State,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_metrics(config, state, listener, None, shutdown).await
}

/// [`run`], serving Prometheus `/metrics` on `metrics` too.
pub async fn run_with_metrics(
    config: Config,
    state: State,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let State { storage, ca } = state;
    let api_metrics = Arc::new(metrics::ApiMetrics::new(storage.commit_histogram()));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = metrics {
        let registry = Arc::new(api_metrics.registry());
        let shutdown = shutdown.child_token();
        let addr = listener.local_addr().ok();
        tasks.spawn(
            async move {
                if let Err(e) = podnet_metrics::serve(listener, registry, shutdown).await {
                    tracing::error!(error = %e, "/metrics stopped");
                }
            }
            .instrument(tracing::info_span!("metrics", addr = ?addr)),
        );
    }
    // The serving and kubelet-client certificates are new each start; the
    // CA that clients trust stays.
    let listen_ip = listener
        .local_addr()
        .context("listener has no address")?
        .ip();
    let serving = ca.credentials(ca.issue_serving(listen_ip)?);
    let kubelet_client = ca.credentials(ca.issue_kubelet_client()?);
    let registry = Registry::with_service_ranges(
        storage,
        registry::ServiceRanges::for_families(config.ip_families),
    );
    registry
        .bootstrap(&Addons {
            dns_replicas: config.dns_replicas,
            ingress_replicas: config.ingress_replicas,
            ingress_default_backend: config.ingress_default_backend.clone(),
        })
        .context("cannot create the initial namespaces, Services and cluster DNS")?;
    let nodes = Arc::new(Nodes::new(
        NodesConfig {
            join_token: config.join_token.clone(),
            ip_families: config.ip_families,
            cluster_cidr: config.cluster_cidr,
            node_cidr_mask_size: config.node_cidr_mask_size,
            cluster_cidr_v6: config.cluster_cidr_v6,
            node_cidr_mask_size_v6: config.node_cidr_mask_size_v6,
            node_cidr: config.node_cidr,
            node_cidr_v6: podnet_proto::model::network::DEFAULT_NODE_CIDR_V6,
            service_cidrs: registry::ServiceRanges::for_families(config.ip_families).cluster_ips,
            grace_period: config.node_grace_period,
        },
        registry.clone(),
        Arc::new(ca),
    )?);

    let service = ApiService::new(
        registry.clone(),
        nodes.clone(),
        kubelet_client,
        shutdown.child_token(),
    );
    let streams = service.tasks();
    tasks.spawn(
        controllers::run(registry.clone(), config.controllers, shutdown.child_token())
            .instrument(tracing::info_span!("controllers")),
    );
    tasks.spawn(
        nodes
            .clone()
            .run_lifecycle(shutdown.child_token())
            .instrument(tracing::info_span!("node-lifecycle")),
    );

    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    // Client certificates are optional at the handshake so that Join and
    // JoinEdge can carry only the join token; every other call refuses a
    // caller without one.
    let serve = tonic::transport::Server::builder()
        .tls_config(serving.server_tls(true))
        .context("cannot set up the API's TLS")?
        .tcp_nodelay(true)
        .layer(metrics::MetricsLayer(api_metrics))
        .add_service(
            ApiServer::new(service)
                .max_decoding_message_size(podnet_proto::model::MAX_API_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    let result = serve.await.context("API server failed");
    shutdown.cancel();
    streams.close();
    // Bounded: every task selects on the shutdown token.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
        streams.wait().await;
    })
    .await;
    result
}
