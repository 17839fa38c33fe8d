//! The node agent (kubelet-like): joins the cluster, renews its lease (and
//! registers again if its Node is deleted, `registration`), and
//! reconciles level-triggered from list-then-watch informers: the pods bound
//! to it (run them, report their status, finish their graceful deletion),
//! the other nodes (overlay routes) and the links that start here (link
//! emulation). It also serves `NodeAgent.Exec` for the control plane.
//!
//! A lost watch or a restarted control plane is healed by listing again;
//! nothing the agent does depends on seeing every event.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use ipnet::Ipv4Net;
use podnet_overlay::NodeIdentity;
use podnet_pod::cluster::ClusterView;
use podnet_pod::netns::{NetNs, PodInfo, PodIps};
use podnet_proto::auth::{self, Credentials};
use podnet_proto::informer::{Cache, cache_key, informer};
use podnet_proto::model::view::NodeView;
use podnet_proto::model::{LinkSpec, str_at};
use podnet_proto::retry::while_unavailable;
use podnet_proto::trace::{Recorder, TraceSourceService};
use podnet_proto::v1::api_client::ApiClient;
use podnet_proto::v1::node_agent_server::{NodeAgent, NodeAgentServer};
use podnet_proto::v1::trace_source_server::TraceSourceServer;
use podnet_proto::v1::{
    DeleteRequest, EvictRequest, EvictResponse, ExecRequest, ExecResponse, FlowRecord,
    FlowsRequest, FlowsResponse, JoinRequest, LoadgenRequest, ObjectRequest, PolicyCounters,
    ProxyStatusRequest, ProxyStatusResponse,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::datapath::{Datapath, DatapathConfig, Route};
use crate::health::Health;
use crate::proxy::ServiceTable;
use crate::runtime::Runtime;
use crate::termination;

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    /// The control plane's API address, `host:port`.
    pub controlplane: String,
    /// The cluster CA, PEM: how the node knows it talks to its control
    /// plane before it has a certificate of its own.
    pub ca_pem: String,
    pub join_token: String,
    pub zone: String,
    pub labels: Vec<(String, String)>,
    pub cpu: String,
    pub memory: String,
    /// Pods this node runs at most (kubelet's `--max-pods`).
    pub max_pods: u32,
    /// Where the overlay's UDP socket binds.
    pub underlay_bind: SocketAddr,
    /// Where the NodeAgent service listens.
    pub agent_bind: SocketAddr,
    /// Where Prometheus `/metrics` is served.
    pub metrics_bind: SocketAddr,
    pub service_cidr: Ipv4Net,
    pub proxy_mode: crate::proxy::Mode,
    /// Where to serve cluster DNS to the host; `None` for nowhere.
    pub host_dns: Option<SocketAddr>,
    /// The node's own resolv.conf (kubelet's `--resolv-conf`): what
    /// `dnsPolicy: Default` pods get, and whose search domains
    /// ClusterFirst pods inherit.
    pub resolv_conf: crate::dnsconfig::NodeResolvConf,
    /// The outside world's names (`--external NAME=IP`), which the node's
    /// outside resolver at `OUTSIDE_DNS_IP` answers, and the host's real
    /// resolver it relays other names to (`--dns-upstream`), if any.
    pub external: podnet_pod::dns::Outside,
    /// The outside addresses that serve a built-in image
    /// (`--external NAME=IP,serve=IMAGE`), each run by this node.
    pub served: Vec<crate::outside::ServedHost>,
}

/// Runs a node until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let underlay = std::net::UdpSocket::bind(config.underlay_bind)
        .with_context(|| format!("cannot bind the overlay socket on {}", config.underlay_bind))?;
    let underlay_addr = underlay.local_addr()?;
    let agent_listener = TcpListener::bind(config.agent_bind)
        .await
        .with_context(|| format!("cannot bind the agent on {}", config.agent_bind))?;
    let agent_addr = agent_listener.local_addr()?;
    let metrics_listener = podnet_metrics::bind(config.metrics_bind)
        .await
        .with_context(|| format!("cannot bind /metrics on {}", config.metrics_bind))?;
    let metrics_addr = metrics_listener.local_addr()?;

    let host_dns = match config.host_dns {
        Some(addr) => Some(
            crate::hostdns::HostDns::bind(addr)
                .await
                .with_context(|| format!("cannot bind the host DNS port on {addr}"))?,
        ),
        None => None,
    };
    let host_dns_address = match &host_dns {
        Some(h) => h.local_addr()?.to_string(),
        None => String::new(),
    };

    // Join over TLS with only the token; every later call presents the
    // node's certificate, which the join hands out.
    let join_channel = auth::join_endpoint(&config.controlplane, &config.ca_pem)
        .with_context(|| format!("bad control plane address {:?}", config.controlplane))?
        .tcp_nodelay(true)
        .connect_lazy();
    let mut join_api = ApiClient::new(join_channel);

    let join = JoinRequest {
        token: config.join_token.clone(),
        node_name: config.name.clone(),
        zone: config.zone.clone(),
        underlay_address: underlay_addr.to_string(),
        agent_address: agent_addr.to_string(),
        cpu: config.cpu.clone(),
        memory: config.memory.clone(),
        labels: config.labels.iter().cloned().collect(),
        pid: std::process::id(),
        host_dns_address,
        max_pods: config.max_pods,
        metrics_address: metrics_addr.to_string(),
    };
    let joined = join_with_retry(&mut join_api, join.clone(), &shutdown).await?;
    let pod_cidrs = pod_cidrs(&joined)?;
    let node_ip: Ipv4Addr = joined
        .node_ip
        .parse()
        .context("control plane sent a bad node IP")?;
    // The IPv6 InternalIP, on a cluster with IPv6.
    let node_ip6 = joined
        .node_ips
        .iter()
        .find_map(|ip| ip.parse::<std::net::Ipv6Addr>().ok());
    let identity = NodeIdentity::from_pem(&joined.ca_pem, &joined.cert_pem, &joined.key_pem)
        .context("control plane sent an unusable node certificate")?;
    let credentials = Credentials::from(&joined);
    let channel = credentials
        .endpoint(&config.controlplane, auth::API_SERVER_NAME)
        .context("control plane sent an unusable node certificate")?
        .tcp_nodelay(true)
        .connect_lazy();
    let api = ApiClient::new(channel.clone());
    tracing::info!(pod_cidrs = ?joined.pod_cidrs, %node_ip, underlay = %underlay_addr, agent = %agent_addr, "joined the cluster");

    let services = service_cidrs(&joined, config.service_cidr)?;
    let cluster_dns = podnet_proto::model::network::cluster_dns_ip(services.primary)
        .context("the cluster's primary Service range holds no cluster DNS address")?;
    let host_ip6 = joined
        .host_ips
        .iter()
        .find_map(|ip| ip.parse::<std::net::Ipv6Addr>().ok());
    let datapath_config = DatapathConfig {
        node_name: config.name.clone(),
        node_ip,
        node_ip6,
        pod_cidr: pod_cidrs.v4,
        pod_cidr_v6: pod_cidrs.v6,
        service_cidr: services.v4,
        service_cidr_v6: services.v6,
        proxy_mode: config.proxy_mode,
        host_ip: joined.host_ip.parse().ok(),
        host_ip6,
    };
    let datapath = Datapath::start(datapath_config, &identity, underlay, shutdown.child_token())
        .context("cannot start the overlay")?;
    let runtime = Arc::new(Runtime::new(
        &config.name,
        datapath.clone(),
        cluster_dns,
        config.resolv_conf.clone(),
    ));
    let tasks = TaskTracker::new();
    tasks.spawn({
        let registry = Arc::new(crate::metrics::registry(&datapath));
        let shutdown = shutdown.clone();
        async move {
            if let Err(e) = podnet_metrics::serve(metrics_listener, registry, shutdown).await {
                tracing::error!(error = %e, "/metrics stopped");
            }
        }
        .instrument(tracing::info_span!("metrics", addr = %metrics_addr))
    });
    let recorder = Recorder::new(config.name.clone());
    datapath.set_recorder(recorder.clone());
    runtime.set_api(api.clone(), config.controlplane.clone(), recorder.clone());
    // The node's own address is a namespace too: NodePort masquerading and
    // host DNS speak from it.
    let host_info = PodInfo {
        namespace: String::new(),
        name: config.name.clone(),
        node: config.name.clone(),
    };
    let host_ns = NetNs::with_resolver(
        PodIps::new(Some(node_ip), node_ip6).unwrap_or(PodIps::V4(node_ip)),
        host_info.clone(),
        podnet_pod::dns::ResolverConfig::cluster_first(&host_info.namespace),
        Arc::<Datapath>::downgrade(&datapath),
    );
    datapath.add_pod(host_ns.clone());
    // The outside world: its resolver and the served outside hosts, each
    // a namespace of its own reached through the datapath like any address.
    crate::outside::start(
        &datapath,
        config.external.clone(),
        &config.served,
        recorder.clone(),
        &tasks,
        &shutdown,
    )?;
    if let Some(h) = host_dns {
        let dns = SocketAddr::new(cluster_dns, 53);
        tasks.spawn(
            h.run(host_ns.clone(), dns, shutdown.clone())
                .instrument(tracing::info_span!("hostdns")),
        );
    }
    let lease = Duration::from_millis(joined.lease_duration_ms.max(400));

    let (pods_tx, pods_rx) = watch::channel(Cache::new());
    let registration = crate::registration::Registration {
        api: api.clone(),
        join,
        pod_cidr: pod_cidrs.primary,
        node_ip,
        every: lease / 4,
        pods: pods_rx.clone(),
    };
    tasks.spawn(
        crate::registration::run(registration, shutdown.clone())
            .instrument(tracing::info_span!("heartbeat")),
    );
    let (nodes_tx, nodes_rx) = watch::channel(Cache::new());
    let (links_tx, links_rx) = watch::channel(Cache::new());
    let selector = format!("spec.nodeName={}", config.name);
    tasks.spawn(
        informer(api.clone(), "Pod", selector, pods_tx, shutdown.clone())
            .instrument(tracing::info_span!("informer", kind = "Pod")),
    );
    tasks.spawn(
        informer(
            api.clone(),
            "Node",
            String::new(),
            nodes_tx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("informer", kind = "Node")),
    );
    tasks.spawn(
        informer(
            api.clone(),
            "Link",
            String::new(),
            links_tx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("informer", kind = "Link")),
    );
    let (services_tx, services_rx) = watch::channel(Cache::new());
    let (slices_tx, slices_rx) = watch::channel(Cache::new());
    tasks.spawn(
        informer(
            api.clone(),
            "Service",
            String::new(),
            services_tx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("informer", kind = "Service")),
    );
    tasks.spawn(
        informer(
            api.clone(),
            "EndpointSlice",
            String::new(),
            slices_tx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("informer", kind = "EndpointSlice")),
    );
    let (view_tx, view_rx) = watch::channel(Arc::new(ClusterView::default()));
    let health = Health::start(host_ns.clone(), &datapath, tasks.clone(), shutdown.clone());
    tasks.spawn(
        sync_services(
            datapath.clone(),
            health,
            services_rx,
            slices_rx,
            view_tx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("proxy")),
    );
    runtime.set_cluster_view(view_rx);
    // NetworkPolicy: the policies and every pod, namespace and node they
    // speak of, cluster-wide.
    let (policies_tx, policies_rx) = watch::channel(Cache::new());
    let (all_pods_tx, all_pods_rx) = watch::channel(Cache::new());
    let (namespaces_tx, namespaces_rx) = watch::channel(Cache::new());
    for (kind, tx) in [
        ("NetworkPolicy", policies_tx),
        ("Pod", all_pods_tx),
        ("Namespace", namespaces_tx),
    ] {
        tasks.spawn(
            informer(api.clone(), kind, String::new(), tx, shutdown.clone())
                .instrument(tracing::info_span!("informer", kind, scope = "policy")),
        );
    }
    let all_pods_world = all_pods_rx.clone();
    let nodes_world = nodes_rx.clone();
    let sources = crate::policy::Sources {
        policies: policies_rx,
        pods: all_pods_rx,
        namespaces: namespaces_rx,
        nodes: nodes_rx.clone(),
    };
    tasks.spawn({
        let (datapath, shutdown) = (datapath.clone(), shutdown.clone());
        async move { crate::policy::sync(datapath.policy(), sources, shutdown).await }
            .instrument(tracing::info_span!("policy"))
    });
    tasks.spawn(
        sync_pods(
            api.clone(),
            runtime.clone(),
            pods_rx,
            tasks.clone(),
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("pods")),
    );
    tasks.spawn(
        sync_network(
            config.name.clone(),
            datapath.clone(),
            nodes_rx,
            links_rx,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("network")),
    );

    let agent = AgentService {
        datapath: datapath.clone(),
        runtime: runtime.clone(),
        world: podnet_loadgen::World::new(nodes_world, all_pods_world),
        zone: config.zone.clone(),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(agent_listener);
    // Only the control plane may exec or read spans; the handshake takes
    // certificates from the cluster CA only.
    let served = tonic::transport::Server::builder()
        .tls_config(credentials.server_tls(false))
        .context("cannot set up the node agent's TLS")?
        .add_service(NodeAgentServer::new(agent))
        .add_service(TraceSourceServer::with_interceptor(
            TraceSourceService { recorder },
            auth::only_control_plane,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned())
        .await;

    // Shutdown: stop the pods (bounded), then the overlay.
    shutdown.cancel();
    for pod in runtime.running() {
        runtime.stop(&pod.uid, Duration::from_millis(500)).await;
    }
    runtime.drain_events(Duration::from_secs(1)).await;
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
    datapath.close().await;
    served.context("node agent server failed")
}

async fn join_with_retry(
    api: &mut ApiClient<Channel>,
    req: JoinRequest,
    shutdown: &CancellationToken,
) -> anyhow::Result<podnet_proto::v1::JoinResponse> {
    let joined = while_unavailable(Duration::from_secs(30), shutdown, || {
        let mut api = api.clone();
        let req = req.clone();
        async move { api.join(req).await }
    })
    .await
    .context("joining the cluster failed")?;
    Ok(joined.into_inner())
}

/// Runs the pods bound to this node and finishes their deletion.
async fn sync_pods(
    api: ApiClient<Channel>,
    runtime: Arc<Runtime>,
    mut pods: watch::Receiver<Cache>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let stopping: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    loop {
        let desired = pods.borrow_and_update().clone();
        let mut wanted = std::collections::HashSet::new();
        let mut present = std::collections::HashSet::new();
        for pod in desired.values() {
            let uid = str_at(pod, "/metadata/uid").to_string();
            present.insert(uid.clone());
            let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
            if !terminating {
                wanted.insert(uid.clone());
                // A pod that has ended (Succeeded, Failed: evicted, or
                // every container done) is never started again.
                let ended = matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed");
                if runtime.get(&uid).is_none() && !ended {
                    match runtime.start(pod) {
                        Ok(running) => {
                            tasks.spawn(
                                report_status(
                                    api.clone(),
                                    pod.clone(),
                                    running.status.clone(),
                                    shutdown.clone(),
                                )
                                .in_current_span(),
                            );
                        }
                        Err(e) => {
                            tracing::error!(pod = %cache_key(pod), error = %e, "cannot start pod")
                        }
                    }
                }
                continue;
            }
            let grace = termination::grace_period(pod);
            if !stopping
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uid.clone())
            {
                runtime.shorten(&uid, grace);
                continue;
            }
            let (runtime, mut api, pod, stopping) =
                (runtime.clone(), api.clone(), pod.clone(), stopping.clone());
            tasks.spawn(
                async move {
                    runtime.terminate(&uid, grace).await;
                    let req = DeleteRequest {
                        kind: "Pod".into(),
                        namespace: str_at(&pod, "/metadata/namespace").into(),
                        name: str_at(&pod, "/metadata/name").into(),
                        grace_period_seconds: Some(0),
                        resource_version: String::new(),
                    };
                    // Retried with back-off: no later event is sure to
                    // come and wake the reconciler for this pod again.
                    let mut backoff = Duration::from_millis(50);
                    for _ in 0..10 {
                        match api.delete(req.clone()).await {
                            Ok(_) => break,
                            Err(s) if s.code() == tonic::Code::NotFound => break,
                            Err(s) => {
                                tracing::warn!(error = %s.message(), "cannot finish pod deletion, retrying");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(2));
                            }
                        }
                    }
                    stopping.lock().unwrap_or_else(PoisonError::into_inner).remove(&uid);
                }
                .in_current_span(),
            );
        }
        for running in runtime.running() {
            if wanted.contains(&running.uid) {
                continue;
            }
            let terminating = stopping
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&running.uid);
            if !terminating {
                runtime.stop(&running.uid, Duration::from_millis(500)).await;
            } else if !present.contains(&running.uid) {
                // Removed while terminating (a forced delete): no one waits
                // for the grace period any more.
                runtime.kill(&running.uid);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = pods.changed() => if r.is_err() { return },
        }
    }
}

/// Posts a pod's status whenever the runtime changes it.
async fn report_status(
    mut api: ApiClient<Channel>,
    pod: Value,
    mut status: watch::Receiver<Value>,
    shutdown: CancellationToken,
) {
    // What was last sent: the conditions' transition times carry over
    // from it.
    let mut reported: Option<Value> = None;
    loop {
        let mut current = status.borrow_and_update().clone();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        crate::lifecycle::stamp_transitions(reported.as_ref(), &mut current, &now);
        reported = Some(current.clone());
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": str_at(&pod, "/metadata/name"), "namespace": str_at(&pod, "/metadata/namespace")},
            "status": current,
        });
        let body = serde_json::to_vec(&object).unwrap_or_default();
        let mut backoff = Duration::from_millis(50);
        loop {
            match api
                .update_status(ObjectRequest {
                    object: body.clone(),
                })
                .await
            {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::NotFound => return,
                Err(s) => {
                    tracing::debug!(error = %s.message(), "status update failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = status.changed() => if r.is_err() { return },
        }
    }
}

/// Programs the service proxy from Services and EndpointSlices, and
/// publishes the same view to the workloads that need it (cluster DNS).
async fn sync_services(
    datapath: Arc<Datapath>,
    health: Arc<Health>,
    mut services: watch::Receiver<Cache>,
    mut slices: watch::Receiver<Cache>,
    view: watch::Sender<Arc<ClusterView>>,
    shutdown: CancellationToken,
) {
    // When the change being programmed reached the informer's cache: the
    // watch channel wakes this loop at once, so the wake-up is that time
    // (a change arriving while a table is built is seen at the next pass
    // and measured from then, so a busy node's figures are a floor).
    let mut changed: Option<std::time::Instant> = None;
    loop {
        let current = ClusterView {
            services: services.borrow_and_update().clone(),
            endpoint_slices: slices.borrow_and_update().clone(),
        };
        let table = ServiceTable::build(&current);
        tracing::debug!(ports = table.ports().len(), "service proxy programmed");
        health.sync(&table);
        datapath.set_services(table);
        if let Some(at) = changed.take() {
            datapath.proxy_metrics().programming().observe(at.elapsed());
        }
        view.send_replace(Arc::new(current));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = services.changed() => if r.is_err() { return },
            r = slices.changed() => if r.is_err() { return },
        }
        changed = Some(std::time::Instant::now());
    }
}

/// Keeps the overlay routes and the link emulation table in line with the
/// Node and Link objects.
async fn sync_network(
    me: String,
    datapath: Arc<Datapath>,
    mut nodes: watch::Receiver<Cache>,
    mut links: watch::Receiver<Cache>,
    shutdown: CancellationToken,
) {
    let mut applied: BTreeMap<SocketAddr, podnet_proto::model::LinkParams> = BTreeMap::new();
    loop {
        let node_list = nodes.borrow_and_update().clone();
        let link_list = links.borrow_and_update().clone();
        let mut routes = Vec::new();
        let mut underlay_of = BTreeMap::new();
        for n in node_list.values().map(NodeView) {
            let name = n.meta().name().to_string();
            let Some(underlay) = n.underlay() else {
                continue;
            };
            underlay_of.insert(name.clone(), underlay);
            // Every podCIDR of the node, of either family.
            for cidr in n.pod_cidrs() {
                routes.push(Route {
                    cidr,
                    node: name.clone(),
                    underlay,
                });
            }
            for ip in n.internal_addresses() {
                routes.push(Route {
                    cidr: ipnet::IpNet::from(ip),
                    node: name.clone(),
                    underlay,
                });
            }
        }
        datapath.set_routes(routes);

        let mut wanted = BTreeMap::new();
        for l in link_list.values() {
            let Ok(spec) =
                serde_json::from_value::<LinkSpec>(l.get("spec").cloned().unwrap_or_default())
            else {
                continue;
            };
            if spec.from != me {
                continue;
            }
            let (Some(addr), Ok(params)) = (underlay_of.get(&spec.to), spec.params()) else {
                continue;
            };
            wanted.insert(*addr, params);
        }
        for addr in applied.keys() {
            if !wanted.contains_key(addr) {
                datapath.clear_link(*addr);
            }
        }
        for (addr, params) in &wanted {
            if applied.get(addr) != Some(params) {
                tracing::info!(peer = %addr, ?params, "link settings changed");
                datapath.set_link(*addr, *params);
            }
        }
        applied = wanted;

        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = nodes.changed() => if r.is_err() { return },
            r = links.changed() => if r.is_err() { return },
        }
    }
}

struct AgentService {
    datapath: Arc<Datapath>,
    runtime: Arc<Runtime>,
    /// Nodes and pods cluster-wide, for the generators' attribution.
    world: podnet_loadgen::World,
    zone: String,
}

/// Longest an exec may run; toolbox commands bound themselves well below.
const EXEC_LIMIT: Duration = Duration::from_secs(120);

#[tonic::async_trait]
impl NodeAgent for AgentService {
    type LoadgenStream = crate::loadgen::Reports;

    async fn loadgen(
        &self,
        req: tonic::Request<LoadgenRequest>,
    ) -> Result<tonic::Response<Self::LoadgenStream>, tonic::Status> {
        auth::only_masters(&req)?;
        let req = req.into_inner();
        let namespace = if req.namespace.is_empty() {
            "default"
        } else {
            &req.namespace
        };
        let pod = self.runtime.find(namespace, &req.pod).ok_or_else(|| {
            tonic::Status::not_found(format!("pod {:?} is not running on this node", req.pod))
        })?;
        let reports =
            crate::loadgen::start(pod.ns.clone(), req, self.world.clone(), self.zone.clone())?;
        Ok(tonic::Response::new(reports))
    }

    async fn proxy_status(
        &self,
        req: tonic::Request<ProxyStatusRequest>,
    ) -> Result<tonic::Response<ProxyStatusResponse>, tonic::Status> {
        auth::only_masters(&req)?;
        let table = self.datapath.services();
        let ready = table
            .ready_endpoints()
            .iter()
            .map(ToString::to_string)
            .collect();
        Ok(tonic::Response::new(ProxyStatusResponse {
            service_ports: u32::try_from(table.ports().len()).unwrap_or(u32::MAX),
            ready_endpoints: ready,
        }))
    }

    async fn evict(
        &self,
        req: tonic::Request<EvictRequest>,
    ) -> Result<tonic::Response<EvictResponse>, tonic::Status> {
        let req = auth::only_control_plane(req)?.into_inner();
        let namespace = if req.namespace.is_empty() {
            "default"
        } else {
            &req.namespace
        };
        let pod = self.runtime.find(namespace, &req.name).ok_or_else(|| {
            tonic::Status::not_found(format!("pod {:?} is not running on this node", req.name))
        })?;
        let message = self
            .runtime
            .evict(&pod.uid, &req.node_pressure)
            .map_err(|why| {
                tonic::Status::failed_precondition(format!(
                    "pod {:?} cannot be evicted: {why}",
                    req.name
                ))
            })?;
        Ok(tonic::Response::new(EvictResponse {
            message,
            object: Vec::new(),
        }))
    }

    async fn flows(
        &self,
        req: tonic::Request<FlowsRequest>,
    ) -> Result<tonic::Response<FlowsResponse>, tonic::Status> {
        let req = auth::only_control_plane(req)?.into_inner();
        let last = usize::try_from(req.last).unwrap_or(usize::MAX);
        let node = self.datapath.node_name().to_string();
        let flows = self
            .datapath
            .policy()
            .flows(last)
            .into_iter()
            .map(|f| FlowRecord {
                time_unix_nanos: f
                    .time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                node: node.clone(),
                direction: f.direction.as_str().to_lowercase(),
                protocol: f.protocol.as_str().to_string(),
                src: f.src.to_string(),
                dst: f.dst.to_string(),
                src_pod: f.src_pod().unwrap_or_default(),
                dst_pod: f.dst_pod().unwrap_or_default(),
                allowed: f.allowed(),
                reason: f.reason(),
                policies: f.policies(),
            })
            .collect();
        let stats = &self.datapath.policy().stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let counters = vec![PolicyCounters {
            node,
            forwarded: load(&stats.allowed),
            dropped_egress: load(&stats.dropped_egress),
            dropped_ingress: load(&stats.dropped_ingress),
        }];
        Ok(tonic::Response::new(FlowsResponse { flows, counters }))
    }

    async fn exec(
        &self,
        req: tonic::Request<ExecRequest>,
    ) -> Result<tonic::Response<ExecResponse>, tonic::Status> {
        let req = auth::only_control_plane(req)?.into_inner();
        let namespace = if req.namespace.is_empty() {
            "default"
        } else {
            &req.namespace
        };
        let pod = self.runtime.find(namespace, &req.pod).ok_or_else(|| {
            tonic::Status::not_found(format!("pod {:?} is not running on this node", req.pod))
        })?;
        if !req.container.is_empty() && !pod.containers.contains(&req.container) {
            return Err(tonic::Status::invalid_argument(format!(
                "container {} is not valid for pod {}",
                req.container, req.pod
            )));
        }
        if req.command.is_empty() {
            return Err(tonic::Status::invalid_argument(
                "you must specify at least one command for the container",
            ));
        }
        let env = pod.env(&req.container);
        let out = tokio::time::timeout(
            EXEC_LIMIT,
            podnet_pod::toolbox::run(pod.ns.clone(), &env, &req.command, &req.stdin),
        )
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("command ran longer than 120s"))?;
        Ok(tonic::Response::new(ExecResponse {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        }))
    }
}

/// The cluster's Service ranges, as the node's service proxy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServiceCidrs {
    v4: Option<Ipv4Net>,
    v6: Option<ipnet::Ipv6Net>,
    /// The primary family's, where the well-known ClusterIPs are.
    primary: ipnet::IpNet,
}

/// The Service ranges the control plane told the node (one per family,
/// the primary first), else `flag`'s IPv4 one (a control plane that says
/// nothing).
fn service_cidrs(
    joined: &podnet_proto::v1::JoinResponse,
    flag: Ipv4Net,
) -> anyhow::Result<ServiceCidrs> {
    let mut ranges = ServiceCidrs {
        v4: None,
        v6: None,
        primary: flag.into(),
    };
    for (i, cidr) in joined.service_cidrs.iter().enumerate() {
        let net = cidr
            .parse::<ipnet::IpNet>()
            .with_context(|| format!("control plane sent a bad Service range {cidr:?}"))?;
        if i == 0 {
            ranges.primary = net;
        }
        match net {
            ipnet::IpNet::V4(net) => ranges.v4 = ranges.v4.or(Some(net)),
            ipnet::IpNet::V6(net) => ranges.v6 = ranges.v6.or(Some(net)),
        }
    }
    if joined.service_cidrs.is_empty() {
        ranges.v4 = Some(flag);
    }
    Ok(ranges)
}

/// The node's podCIDRs, one per family of the cluster, and the primary
/// family's (`JoinResponse.pod_cidrs`; an older control plane sends
/// `pod_cidr` alone).
fn pod_cidrs(joined: &podnet_proto::v1::JoinResponse) -> anyhow::Result<PodCidrs> {
    let given: Vec<&str> = if joined.pod_cidrs.is_empty() {
        vec![joined.pod_cidr.as_str()]
    } else {
        joined.pod_cidrs.iter().map(String::as_str).collect()
    };
    let nets = given
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|cidr| {
            cidr.parse::<ipnet::IpNet>()
                .with_context(|| format!("control plane sent a bad podCIDR {cidr:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let primary = *nets
        .first()
        .context("the control plane gave this node no podCIDR")?;
    Ok(PodCidrs {
        v4: nets.iter().find_map(|n| match n {
            ipnet::IpNet::V4(net) => Some(*net),
            ipnet::IpNet::V6(_) => None,
        }),
        v6: nets.iter().find_map(|n| match n {
            ipnet::IpNet::V6(net) => Some(*net),
            ipnet::IpNet::V4(_) => None,
        }),
        primary,
    })
}

/// A node's podCIDRs: one of each family of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PodCidrs {
    v4: Option<Ipv4Net>,
    v6: Option<ipnet::Ipv6Net>,
    /// The primary family's (`spec.podCIDR`).
    primary: ipnet::IpNet,
}
