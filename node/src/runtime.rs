//! The pod runtime (the kubelet's part that runs pods): gives each pod an IP
//! from the node's podCIDR and a network namespace, starts its containers
//! as built-in workloads, runs their readiness and liveness probes from the
//! node's address, and publishes the pod status the kubelet would.
//!
//! A container whose workload exits (or is killed for its liveness probe)
//! is started again per the pod's restartPolicy after the kubelet's
//! crash-loop back-off (`crate::lifecycle`), reported as CrashLoopBackOff
//! meanwhile; one that is not started again stays terminated with its exit
//! code, and once none runs or will run the pod is Succeeded or Failed and
//! its sandbox (address, namespace) is given back. A pod the node evicts
//! under pressure ([`Runtime::evict`]) is Failed/Evicted at once and its
//! containers stopped. Startup probes, init containers, container-level
//! restart policies and exec probes are not emulated.
//!
//! A deleted pod is terminated as the kubelet's `killContainer` does, each
//! container at once: its `lifecycle.preStop` hook (`exec` in the toolbox,
//! `httpGet` from the node, `sleep`) runs within the grace period, then the
//! container gets SIGTERM and what is left of the grace period (at least
//! 2 s, `crate::termination`) to exit before it is killed. Until then it
//! keeps serving and its readiness probe keeps deciding `ready`. Nothing is
//! restarted while the pod terminates.
//!
//! It records the kubelet's Events about pods (Pulled, Created, Started,
//! Killing, Unhealthy, Failed, BackOff, Evicted) in the background: a slow or
//! unreachable API never delays a container, and a full queue drops the
//! event rather than waiting.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use podnet_pod::cluster::ClusterViewRx;
use podnet_pod::container::{ContainerSpec, WorkloadEnv, WorkloadError};
use podnet_pod::dns::ResolverConfig;
use podnet_pod::images;
use podnet_pod::netns::{NetNs, PodInfo, PodIps};
use podnet_pod::toolbox::EnvVar;
use podnet_proto::events::{self, EventType, Source};
use podnet_proto::model::view::Protocol;
use podnet_proto::model::{str_at, strs_at};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::datapath::Datapath;
use crate::dnsconfig::{self, NodeResolvConf};
use crate::envvars;
use crate::lifecycle::{self, ContainerPhase, CrashBackoff, RestartPolicy};
use crate::termination;
use podnet_pod::container::ApiAccess;
use podnet_proto::auth::{self, Credentials};
use podnet_proto::trace::Recorder;
use podnet_proto::v1::ServiceAccountCredentialsRequest;
use podnet_proto::v1::api_client::ApiClient;
use tonic::transport::Channel;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Host-local IPAM: addresses of one of the node's podCIDRs, the first
/// host address (.1, `::1`) kept for the node's bridge as on a real node.
/// Like the CNI host-local plugin it hands out the next free address after
/// the last one it gave, so a deleted pod's address is not reused at once
/// (a stale endpoint would then point at the wrong pod). Addresses are
/// offsets into the network, so an IPv6 /64 costs no more than an IPv4 /24.
struct Ipam {
    cidr: IpNet,
    used: BTreeSet<IpAddr>,
    /// The offset of the last address given.
    last: Option<u128>,
}

impl Ipam {
    fn new(cidr: impl Into<IpNet>) -> Ipam {
        Ipam {
            cidr: cidr.into(),
            used: BTreeSet::new(),
            last: None,
        }
    }

    /// The offsets pods may get: after the network address and the
    /// bridge, up to the last before the broadcast address (IPv4) or the
    /// network's end (IPv6).
    fn offsets(&self) -> Option<(u128, u128)> {
        let bits = u32::from(self.cidr.max_prefix_len() - self.cidr.prefix_len());
        let top = 1u128.checked_shl(bits).map_or(u128::MAX, |size| size - 1);
        let last = match self.cidr {
            IpNet::V4(_) => top.checked_sub(1)?,
            IpNet::V6(_) => top,
        };
        (last >= 2).then_some((2, last))
    }

    fn at(&self, offset: u128) -> IpAddr {
        match self.cidr {
            IpNet::V4(net) => IpAddr::V4(Ipv4Addr::from(
                u32::from(net.network()).wrapping_add(offset as u32),
            )),
            IpNet::V6(net) => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(net.network()).wrapping_add(offset),
            )),
        }
    }

    fn allocate(&mut self) -> Option<IpAddr> {
        let (first, last) = self.offsets()?;
        let count = last - first + 1;
        let start = match self.last {
            Some(l) if l < last => l + 1,
            _ => first,
        };
        // At most one more candidate than addresses in use is free.
        let tries = count.min(self.used.len() as u128 + 1);
        let (offset, ip) = (0..tries)
            .map(|k| first + (start - first + k) % count)
            .map(|offset| (offset, self.at(offset)))
            .find(|(_, ip)| !self.used.contains(ip))?;
        self.used.insert(ip);
        self.last = Some(offset);
        Some(ip)
    }

    fn release(&mut self, ip: IpAddr) {
        self.used.remove(&ip);
    }
}

fn allocate(pool: &Mutex<Ipam>) -> Result<IpAddr, RuntimeError> {
    let mut ipam = pool.lock().unwrap_or_else(PoisonError::into_inner);
    let cidr = ipam.cidr;
    ipam.allocate().ok_or(RuntimeError::NoIp(cidr))
}

fn release(pool: &Mutex<Ipam>, ip: IpAddr) {
    pool.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .release(ip);
}

/// How a container ended: `state.terminated` or `lastState.terminated`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Terminated {
    exit_code: i32,
    /// `Completed` for 0, `Error` otherwise (what a container runtime
    /// reports), `StartError` when it never started.
    reason: String,
    message: String,
    started_at: String,
    finished_at: String,
}

impl Terminated {
    /// How a workload ended on its own: its exit status, or a failure
    /// while serving (exit status 1, the failure as the message).
    fn of(exit: &images::Exit, started_at: &str) -> Terminated {
        let (exit_code, message) = match exit {
            Ok(code) => (*code, String::new()),
            Err(e) => (1, e.to_string()),
        };
        Terminated::new(exit_code, message, started_at)
    }

    fn new(exit_code: i32, message: String, started_at: &str) -> Terminated {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        Terminated {
            exit_code,
            reason: reason.to_string(),
            message,
            started_at: started_at.to_string(),
            finished_at: now_rfc3339(),
        }
    }

    fn to_json(&self, container_id: &str) -> Value {
        let mut t = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": container_id,
        });
        if !self.message.is_empty() {
            t["message"] = json!(self.message);
        }
        if self.started_at.is_empty() {
            // Never started: the API's zero time.
            t["startedAt"] = Value::Null;
        }
        t
    }
}

/// What the runtime knows of one container, turned into containerStatuses.
#[derive(Debug, Clone, Default)]
struct ContainerState {
    name: String,
    image: String,
    ready: bool,
    restart_count: u32,
    /// `running.startedAt`, or empty when not running.
    started_at: String,
    waiting: Option<(String, String)>,
    last_terminated: Option<Terminated>,
    /// Ended and not to be started again (its restart policy says so, or
    /// the pod is terminating or was evicted).
    terminated: Option<Terminated>,
}

impl ContainerState {
    fn phase(&self) -> ContainerPhase {
        match (&self.terminated, &self.waiting, self.started_at.is_empty()) {
            (Some(t), _, _) => ContainerPhase::Terminated(t.exit_code),
            (None, None, false) => ContainerPhase::Running,
            _ if self.last_terminated.is_some() => ContainerPhase::Restarting,
            _ => ContainerPhase::Waiting,
        }
    }
}

struct PodState {
    uid: String,
    ips: PodIps,
    /// The node's InternalIP of the pod's primary family (`hostIP`).
    node_ip: IpAddr,
    start_time: String,
    restart_policy: RestartPolicy,
    /// Set when the kubelet evicted the pod: the eviction message.
    evicted: Option<String>,
    containers: Vec<ContainerState>,
}

impl PodState {
    fn phase(&self) -> &'static str {
        if self.evicted.is_some() {
            return "Failed";
        }
        let phases: Vec<ContainerPhase> =
            self.containers.iter().map(ContainerState::phase).collect();
        lifecycle::pod_phase(self.restart_policy, &phases)
    }

    fn status(&self) -> Value {
        let phase = self.phase();
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let all_ready = !terminal && self.containers.iter().all(|c| c.ready);
        let cond = |b: bool| if b { "True" } else { "False" };
        let not_ready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let mut initialized = json!({"type": "Initialized", "status": "True"});
        if phase == "Succeeded" {
            initialized["reason"] = json!("PodCompleted");
        }
        let mut conditions = vec![
            json!({"type": "PodScheduled", "status": "True"}),
            initialized,
        ];
        if let Some(message) = &self.evicted {
            // The kubelet says why it ended the pod (DisruptionTarget).
            conditions.push(json!({
                "type": "DisruptionTarget", "status": "True",
                "reason": "TerminationByKubelet", "message": message,
            }));
        }
        for ty in ["ContainersReady", "Ready"] {
            let mut c = json!({"type": ty, "status": cond(all_ready)});
            if terminal {
                // The kubelet's words for a pod that has ended.
                c["reason"] = json!(if phase == "Succeeded" {
                    "PodCompleted"
                } else {
                    "PodFailed"
                });
            } else if !all_ready {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!(
                    "containers with unready status: [{}]",
                    not_ready.join(" ")
                ));
            }
            conditions.push(c);
        }
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let id = format!("podnet://{}/{}", self.uid, c.name);
                let state = match (&c.terminated, &c.waiting) {
                    (Some(t), _) => json!({"terminated": t.to_json(&id)}),
                    (None, Some((reason, message))) => {
                        json!({"waiting": {"reason": reason, "message": message}})
                    }
                    (None, None) if !c.started_at.is_empty() => {
                        json!({"running": {"startedAt": c.started_at}})
                    }
                    (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
                };
                let mut s = json!({
                    "name": c.name, "image": c.image, "imageID": format!("podnet://{}", c.image),
                    "containerID": id,
                    "ready": c.ready && !terminal, "started": !c.started_at.is_empty(), "restartCount": c.restart_count,
                    "state": state,
                    "lastState": {},
                });
                if let Some(t) = &c.last_terminated {
                    s["lastState"] = json!({"terminated": t.to_json(&id)});
                }
                s
            })
            .collect();
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.node_ip.to_string(),
            "hostIPs": [{"ip": self.node_ip.to_string()}],
            "podIP": self.ips.primary().to_string(),
            "podIPs": self
                .ips
                .all()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect::<Vec<_>>(),
            "startTime": self.start_time,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if let Some(message) = &self.evicted {
            status["reason"] = json!("Evicted");
            status["message"] = json!(message);
        }
        status
    }
}

/// Events waiting to be written at most; beyond that an event is dropped
/// (client-go's broadcaster drops too when it is full).
const EVENT_QUEUE: usize = 256;
/// How long one event write may take before it is given up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What an Event names as its object: the pod's reference.
fn pod_reference(pod: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": str_at(pod, "/metadata/name"),
            "namespace": str_at(pod, "/metadata/namespace"),
            "uid": str_at(pod, "/metadata/uid"),
        },
    })
}

/// The kubelet's event recorder: one tracked writer task takes events from
/// a bounded queue in the order they happened, so the store's revisions
/// order the Events of one second as they happened (`describe` sorts on
/// them), and no write ever waits on the pod's work.
struct EventRecorder {
    tasks: TaskTracker,
    queue: Mutex<Option<mpsc::Sender<EventJob>>>,
}

/// One Event to write.
struct EventJob {
    api: ApiClient<Channel>,
    reference: Value,
    ty: EventType,
    reason: &'static str,
    message: String,
}

impl EventRecorder {
    /// The queue, with its writer started on first use.
    fn sender(&self, node: &str) -> Option<mpsc::Sender<EventJob>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.is_none() && !self.tasks.is_closed() {
            let (tx, mut rx) = mpsc::channel::<EventJob>(EVENT_QUEUE);
            let node = node.to_string();
            self.tasks.spawn(
                async move {
                    while let Some(job) = rx.recv().await {
                        let source = Source::on_host("kubelet", &node);
                        let write = events::record(
                            &job.api,
                            &job.reference,
                            job.ty,
                            job.reason,
                            &job.message,
                            source,
                        );
                        match tokio::time::timeout(EVENT_TIMEOUT, write).await {
                            Ok(Ok(())) => {}
                            Ok(Err(s)) => tracing::debug!(reason = job.reason, error = %s.message(), "event not recorded"),
                            Err(_) => tracing::debug!(reason = job.reason, "event not recorded: timed out"),
                        }
                    }
                }
                .instrument(tracing::debug_span!("events")),
            );
            *queue = Some(tx);
        }
        queue.clone()
    }
}

/// A pod the runtime runs.
pub struct RunningPod {
    pub uid: String,
    /// The pod's reference, for the Events about it.
    reference: Value,
    pub ns: Arc<NetNs>,
    /// Container names, as the pod spec lists them.
    pub containers: Vec<String>,
    /// Each container's environment, as it last started (in `containers`
    /// order).
    environments: Vec<Arc<Mutex<Vec<EnvVar>>>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Set to the grace period when the pod starts terminating; its
    /// containers watch it.
    terminating: watch::Sender<Option<Duration>>,
    /// The pod's status as the kubelet would post it.
    pub status: watch::Receiver<Value>,
    /// What its containers' statuses are made from (eviction marks it).
    state: Arc<Mutex<PodState>>,
    status_tx: Arc<watch::Sender<Value>>,
    /// The pod's address and namespace were given back: once it ended
    /// (terminal pods keep their object, not their sandbox) or stopped.
    released: std::sync::atomic::AtomicBool,
}

impl RunningPod {
    /// The environment of container `name` as it last started (the first
    /// container's when `name` is empty, as `kubectl exec` picks it).
    pub fn env(&self, name: &str) -> Vec<EnvVar> {
        let index = if name.is_empty() {
            Some(0)
        } else {
            self.containers.iter().position(|c| c == name)
        };
        index
            .and_then(|i| self.environments.get(i))
            .map(|env| env.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }
}

pub struct Runtime {
    node_name: String,
    datapath: Arc<Datapath>,
    /// One pool per podCIDR of the node: its IPv4 one, its IPv6 one.
    ipam_v4: Option<Mutex<Ipam>>,
    ipam_v6: Option<Mutex<Ipam>>,
    /// The cluster DNS's address (the kubelet's `--cluster-dns`), the
    /// nameserver of ClusterFirst pods.
    cluster_dns: IpAddr,
    pods: Mutex<HashMap<String, Arc<RunningPod>>>,
    next_probe_port: AtomicU16,
    /// The node's view of Services and EndpointSlices, for workloads that
    /// serve from it (cluster DNS).
    cluster: Mutex<Option<ClusterViewRx>>,
    /// The node's API client (events, service account credentials) and
    /// the control plane's address, for the workloads' own clients.
    api: Mutex<Option<(ApiClient<Channel>, String)>>,
    recorder: Mutex<Recorder>,
    events: EventRecorder,
    /// One task per pod that tears its sandbox down once it has ended.
    watchers: TaskTracker,
    /// The node's own resolv.conf, the base of its pods' (kubelet's
    /// `--resolv-conf`).
    resolv_conf: NodeResolvConf,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no free pod IP left in {0}")]
    NoIp(IpNet),
    #[error("the node has no podCIDR to give pods addresses from")]
    NoPodCidr,
}

impl Runtime {
    /// A runtime handing out addresses of the datapath's podCIDRs.
    pub fn new(
        node_name: &str,
        datapath: Arc<Datapath>,
        cluster_dns: IpAddr,
        resolv_conf: NodeResolvConf,
    ) -> Runtime {
        let (v4, v6) = datapath.pod_cidrs();
        Runtime {
            node_name: node_name.to_string(),
            ipam_v4: v4.map(|cidr| Mutex::new(Ipam::new(cidr))),
            ipam_v6: v6.map(|cidr| Mutex::new(Ipam::new(cidr))),
            datapath,
            cluster_dns,
            pods: Mutex::new(HashMap::new()),
            next_probe_port: AtomicU16::new(40000),
            cluster: Mutex::new(None),
            api: Mutex::new(None),
            recorder: Mutex::new(Recorder::disabled()),
            events: EventRecorder {
                tasks: TaskTracker::new(),
                queue: Mutex::new(None),
            },
            watchers: TaskTracker::new(),
            resolv_conf,
        }
    }

    /// Records an Event about the pod `reference` in the background, as
    /// the kubelet on this node. Without an API yet, or with the queue
    /// full, the event is dropped.
    fn event(&self, reference: &Value, ty: EventType, reason: &'static str, message: String) {
        let Some((api, _)) = self
            .api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let Some(queue) = self.events.sender(&self.node_name) else {
            return;
        };
        let job = EventJob {
            api,
            reference: reference.clone(),
            ty,
            reason,
            message,
        };
        if let Err(mpsc::error::TrySendError::Full(job)) = queue.try_send(job) {
            tracing::warn!(reason = job.reason, message = %job.message, "event queue full, event dropped");
        }
    }

    /// Waits up to `grace` for the event writes in flight.
    pub async fn drain_events(&self, grace: Duration) {
        // Closing the queue ends the writer once it has written the rest.
        self.events
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.events.tasks.close();
        let _ = tokio::time::timeout(grace, self.events.tasks.wait()).await;
    }

    /// The node's API client, the control plane's address (controller
    /// workloads connect there as their pod's service account) and where
    /// workloads record their hops of request journeys.
    pub fn set_api(&self, api: ApiClient<Channel>, controlplane: String, recorder: Recorder) {
        *self.api.lock().unwrap_or_else(PoisonError::into_inner) = Some((api, controlplane));
        *self.recorder.lock().unwrap_or_else(PoisonError::into_inner) = recorder;
    }

    pub fn set_cluster_view(&self, view: ClusterViewRx) {
        *self.cluster.lock().unwrap_or_else(PoisonError::into_inner) = Some(view);
    }

    /// What the built-in workloads of the pod `namespace/pod` get from the
    /// node: the API as the pod's service account among them.
    fn workload_env(&self, namespace: &str, pod: &str) -> WorkloadEnv {
        let api = self
            .api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .map(|(api, controlplane)| service_account_api(api, controlplane, namespace, pod));
        WorkloadEnv {
            cluster: self.cluster_view(),
            api,
            recorder: self
                .recorder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The cluster view workloads read; empty until the agent sets it.
    pub fn cluster_view(&self) -> ClusterViewRx {
        self.cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| podnet_pod::cluster::fixed(Default::default()))
    }

    /// The environment a container of a pod in `namespace` starts with now,
    /// from the Services the node knows at this moment.
    fn container_env(
        &self,
        namespace: &str,
        hostname: &str,
        spec_env: &[EnvVar],
        enable_service_links: bool,
    ) -> Vec<EnvVar> {
        let view = self.cluster_view().borrow().clone();
        let services =
            envvars::service_env(view.services.values(), namespace, enable_service_links);
        envvars::container_env(hostname, spec_env, services)
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RunningPod>>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Running pods by uid.
    pub fn running(&self) -> Vec<Arc<RunningPod>> {
        self.pods().values().cloned().collect()
    }

    pub fn get(&self, uid: &str) -> Option<Arc<RunningPod>> {
        self.pods().get(uid).cloned()
    }

    /// The running pod with this namespace and name.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<RunningPod>> {
        self.pods()
            .values()
            .find(|p| p.ns.info().namespace == namespace && p.ns.info().name == name)
            .cloned()
    }

    /// The resolv.conf of `pod`, from its `dnsPolicy` and `dnsConfig` and
    /// the node's own resolv.conf, as the kubelet forms it; limits it had
    /// to cut are Warning Events on the pod, as the kubelet's.
    fn pod_resolver(&self, pod: &Value, reference: &Value) -> ResolverConfig {
        let dns = dnsconfig::for_pod(pod, &self.resolv_conf, self.cluster_dns);
        for warning in dns.warnings {
            self.event(reference, EventType::Warning, "DNSConfigForming", warning);
        }
        // Every address was validated (the API for dnsConfig, the node's
        // start for its resolv.conf); one that does not parse is skipped
        // rather than written where glibc would skip it too.
        let nameservers = dns
            .nameservers
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        ResolverConfig::new(nameservers, dns.searches, dns.options)
    }

    /// Starts a pod from its Kubernetes object.
    pub fn start(self: &Arc<Self>, pod: &Value) -> Result<Arc<RunningPod>, RuntimeError> {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let ips = self.allocate()?;
        let info = PodInfo {
            namespace: str_at(pod, "/metadata/namespace").to_string(),
            name: str_at(pod, "/metadata/name").to_string(),
            node: self.node_name.clone(),
        };
        let reference = pod_reference(pod);
        let resolver = self.pod_resolver(pod, &reference);
        let ns = NetNs::with_resolver(
            ips,
            info.clone(),
            resolver,
            Arc::<Datapath>::downgrade(&self.datapath),
        );
        self.datapath.add_pod(ns.clone());
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let state = Arc::new(Mutex::new(PodState {
            uid: uid.clone(),
            ips,
            node_ip: self.datapath.node_ip_for(ips.primary()),
            start_time: now_rfc3339(),
            restart_policy: RestartPolicy::of(str_at(pod, "/spec/restartPolicy")),
            evicted: None,
            containers: containers
                .iter()
                .map(|c| ContainerState {
                    name: str_at(c, "/name").to_string(),
                    image: str_at(c, "/image").to_string(),
                    ..Default::default()
                })
                .collect(),
        }));
        let initial = state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .status();
        let (status_tx, status_rx) = watch::channel(initial);
        let status_tx = Arc::new(status_tx);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (terminating, _) = watch::channel(None);
        let enable_service_links = envvars::enable_service_links(pod);
        let mut environments = Vec::with_capacity(containers.len());
        for (i, c) in containers.iter().enumerate() {
            let spec = container_spec(c, self.workload_env(&info.namespace, &info.name));
            let environment = Arc::new(Mutex::new(self.container_env(
                &info.namespace,
                &info.name,
                &spec.env,
                enable_service_links,
            )));
            environments.push(environment.clone());
            let ctx = ContainerCtx {
                index: i,
                spec,
                environment,
                enable_service_links,
                readiness: c.get("readinessProbe").cloned(),
                liveness: c.get("livenessProbe").cloned(),
                pre_stop: c.pointer("/lifecycle/preStop").cloned(),
                terminating: terminating.subscribe(),
                ports: named_ports(c),
                reference: reference.clone(),
                ns: ns.clone(),
                state: state.clone(),
                status: status_tx.clone(),
                runtime: self.clone(),
                cancel: cancel.clone(),
                tasks: tasks.clone(),
            };
            tasks.spawn(ctx.run().instrument(
                tracing::info_span!("container", pod = %info.name, container = %str_at(c, "/name")),
            ));
        }
        let names = containers
            .iter()
            .map(|c| str_at(c, "/name").to_string())
            .collect();
        let running = Arc::new(RunningPod {
            uid: uid.clone(),
            reference,
            ns,
            containers: names,
            environments,
            cancel,
            tasks,
            terminating,
            status: status_rx,
            state: state.clone(),
            status_tx: status_tx.clone(),
            released: std::sync::atomic::AtomicBool::new(false),
        });
        self.pods().insert(uid.clone(), running.clone());
        self.watchers.spawn(
            self.clone()
                .finish_terminal(uid)
                .instrument(tracing::debug_span!("ended", pod = %info.name)),
        );
        tracing::info!(pod = %info.name, namespace = %info.namespace, ips = ?ips, "pod started");
        Ok(running)
    }

    /// Terminates a pod gracefully (see the module docs): every container
    /// runs its preStop hook, gets SIGTERM and has the rest of `grace` to
    /// exit; then what is left is killed and the pod stopped.
    pub async fn terminate(&self, uid: &str, grace: Duration) {
        let Some(pod) = self.get(uid) else {
            return;
        };
        pod.terminating.send_replace(Some(grace));
        pod.tasks.close();
        // Each container bounds its own shutdown; this bounds one that
        // does not, with room for the kill window after a long hook.
        let bound = grace + termination::MIN_KILL_WINDOW + Duration::from_secs(1);
        if tokio::time::timeout(bound, pod.tasks.wait()).await.is_err() {
            tracing::warn!(pod = %pod.ns.info().name, "containers outlived the grace period, killing them");
        }
        self.stop(uid, Duration::from_millis(500)).await;
    }

    /// Shortens the grace period of a terminating pod (a second delete
    /// with a shorter one); a longer one changes nothing, as in the API.
    pub fn shorten(&self, uid: &str, grace: Duration) {
        if let Some(pod) = self.get(uid) {
            pod.terminating.send_if_modified(|current| match current {
                Some(g) if grace < *g => {
                    *current = Some(grace);
                    true
                }
                _ => false,
            });
        }
    }

    /// Kills a terminating pod's containers at once: its object was
    /// removed (a forced delete), so there is nothing left to wait for.
    pub fn kill(&self, uid: &str) {
        if let Some(pod) = self.get(uid) {
            pod.cancel.cancel();
        }
    }

    /// Stops a pod: cancels its containers, waits up to `grace` for them,
    /// and frees its address.
    pub async fn stop(&self, uid: &str, grace: Duration) {
        let Some(pod) = self.pods().remove(uid) else {
            return;
        };
        // A terminated pod's containers said Killing when they were asked
        // to stop.
        let terminated = pod.terminating.borrow().is_some();
        for name in pod.containers.iter().filter(|_| !terminated) {
            self.event(
                &pod.reference,
                EventType::Normal,
                "Killing",
                format!("Stopping container {name}"),
            );
        }
        pod.cancel.cancel();
        pod.tasks.close();
        let _ = tokio::time::timeout(grace, pod.tasks.wait()).await;
        self.release(&pod);
        tracing::info!(pod = %pod.ns.info().name, "pod stopped");
    }

    /// Gives the pod's address back and takes its namespace off the
    /// datapath, once.
    fn release(&self, pod: &RunningPod) {
        if pod.released.swap(true, Ordering::AcqRel) {
            return;
        }
        self.datapath.remove_pod(&pod.ns);
        self.release_ips(pod.ns.ips());
    }

    /// Tears down the sandbox of a pod whose every container has ended for
    /// good (phase Succeeded or Failed), as the kubelet does for a
    /// terminal pod: its address is free again, its object and status
    /// stay until the pod is deleted.
    async fn finish_terminal(self: Arc<Self>, uid: String) {
        let Some(pod) = self.get(&uid) else {
            return;
        };
        let mut status = pod.status.clone();
        let cancel = pod.cancel.clone();
        drop(pod);
        let ended = tokio::select! {
            // Stopped first (deleted, or the node shuts down).
            _ = cancel.cancelled() => return,
            ended = status.wait_for(|s| matches!(str_at(s, "/phase"), "Succeeded" | "Failed")) => ended.is_ok(),
        };
        let Some(pod) = self.get(&uid).filter(|_| ended) else {
            return;
        };
        // Containers still stopping (an eviction) get their kill window.
        pod.tasks.close();
        let bound = termination::MIN_KILL_WINDOW + Duration::from_secs(1);
        let _ = tokio::time::timeout(bound, pod.tasks.wait()).await;
        self.release(&pod);
        tracing::info!(pod = %pod.ns.info().name, phase = %str_at(&pod.status.borrow(), "/phase"), "pod ended");
    }

    /// Node-pressure eviction as the kubelet's eviction manager does it
    /// for a hard threshold on `resource` (`memory`, `ephemeral-storage`,
    /// `pids`): the pod is Failed at once with reason `Evicted` and the
    /// kubelet's message, an `Evicted` Warning Event says so, and its
    /// containers are killed with a grace period of 0 (each still gets the
    /// kubelet's 2 s minimum after SIGTERM). The pod object stays.
    /// Returns the message, or why the pod cannot be evicted.
    pub fn evict(&self, uid: &str, resource: &str) -> Result<String, String> {
        let pod = self
            .get(uid)
            .ok_or_else(|| "the pod is not running on this node".to_string())?;
        let message = format!("The node was low on resource: {resource}. ");
        let status = {
            let mut state = pod.state.lock().unwrap_or_else(PoisonError::into_inner);
            let phase = state.phase();
            if matches!(phase, "Succeeded" | "Failed") {
                return Err(format!("the pod has already ended (phase {phase})"));
            }
            if pod.terminating.borrow().is_some() {
                return Err("the pod is terminating".to_string());
            }
            state.evicted = Some(message.clone());
            state.status()
        };
        pod.status_tx.send_replace(status);
        tracing::warn!(pod = %pod.ns.info().name, %resource, "evicting pod: node pressure");
        self.event(
            &pod.reference,
            EventType::Warning,
            "Evicted",
            message.clone(),
        );
        // The containers stop as for a deletion with grace period 0.
        pod.terminating.send_replace(Some(Duration::ZERO));
        Ok(message)
    }

    /// An address of each of the node's podCIDRs, or none when one of
    /// them is full.
    fn allocate(&self) -> Result<PodIps, RuntimeError> {
        let v4 = self.ipam_v4.as_ref().map(allocate).transpose()?;
        let v6 = match self.ipam_v6.as_ref().map(allocate).transpose() {
            Ok(v6) => v6,
            Err(full) => {
                if let (Some(pool), Some(ip)) = (&self.ipam_v4, v4) {
                    release(pool, ip);
                }
                return Err(full);
            }
        };
        // Each pool hands out addresses of its own family.
        match (v4, v6) {
            (Some(IpAddr::V4(v4)), Some(IpAddr::V6(v6))) => Ok(PodIps::Dual(v4, v6)),
            (Some(IpAddr::V4(v4)), None) => Ok(PodIps::V4(v4)),
            (None, Some(IpAddr::V6(v6))) => Ok(PodIps::V6(v6)),
            _ => Err(RuntimeError::NoPodCidr),
        }
    }

    fn release_ips(&self, ips: PodIps) {
        if let (Some(pool), Some(ip)) = (&self.ipam_v4, ips.v4()) {
            release(pool, IpAddr::V4(ip));
        }
        if let (Some(pool), Some(ip)) = (&self.ipam_v6, ips.v6()) {
            release(pool, IpAddr::V6(ip));
        }
    }

    /// A source on the node for a probe of `dst`: its InternalIP of that
    /// family.
    fn probe_source(&self, dst: IpAddr) -> SocketAddr {
        let port = self.next_probe_port.fetch_add(1, Ordering::Relaxed);
        SocketAddr::new(self.datapath.node_ip_for(dst), 40000 + port % 20000)
    }
}

/// A dial error as Go's net package words it, which the kubelet's probe
/// messages carry.
fn go_dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".into(),
        _ => e.to_string(),
    }
}

/// The API as the service account of `namespace/pod`: credentials the
/// control plane issues to this node for a pod bound to it, asked for
/// each time the workload connects.
fn service_account_api(
    api: ApiClient<Channel>,
    controlplane: String,
    namespace: &str,
    pod: &str,
) -> ApiAccess {
    let request = ServiceAccountCredentialsRequest {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
    };
    ApiAccess::new(move || {
        let mut api = api.clone();
        let request = request.clone();
        let controlplane = controlplane.clone();
        Box::pin(async move {
            let credentials =
                Credentials::from(api.service_account_credentials(request).await?.into_inner());
            let channel = credentials
                .endpoint(&controlplane, auth::API_SERVER_NAME)
                .map_err(|e| tonic::Status::internal(format!("unusable credentials: {e}")))?
                .tcp_nodelay(true)
                .connect_lazy();
            Ok(ApiClient::new(channel))
        })
    })
}

fn container_spec(c: &Value, workload_env: WorkloadEnv) -> ContainerSpec {
    let mut args: Vec<String> = strs_at(c, "/command")
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(strs_at(c, "/args").into_iter().map(String::from));
    let env = c
        .pointer("/env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            (
                str_at(e, "/name").to_string(),
                str_at(e, "/value").to_string(),
            )
        })
        .collect();
    let ports = c
        .pointer("/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.get("containerPort")?.as_u64()?).ok()?;
            Some((port, Protocol::of(p)?))
        })
        .collect();
    ContainerSpec {
        name: str_at(c, "/name").to_string(),
        image: str_at(c, "/image").to_string(),
        args,
        env,
        ports,
        workload_env,
    }
}

fn named_ports(c: &Value) -> HashMap<String, u16> {
    c.pointer("/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                u16::try_from(p.get("containerPort")?.as_u64()?).ok()?,
            ))
        })
        .collect()
}

struct ContainerCtx {
    index: usize,
    /// As the pod spec says; `env` is the spec's own entries.
    spec: ContainerSpec,
    /// The whole environment of the running container, recomputed at each
    /// start as the kubelet does (Services created since are included).
    environment: Arc<Mutex<Vec<EnvVar>>>,
    enable_service_links: bool,
    readiness: Option<Value>,
    liveness: Option<Value>,
    /// `lifecycle.preStop`: run before the termination signal.
    pre_stop: Option<Value>,
    /// The pod's grace period once it is terminating.
    terminating: watch::Receiver<Option<Duration>>,
    ports: HashMap<String, u16>,
    /// The pod's reference, for Events.
    reference: Value,
    ns: Arc<NetNs>,
    state: Arc<Mutex<PodState>>,
    status: Arc<watch::Sender<Value>>,
    runtime: Arc<Runtime>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl ContainerCtx {
    fn event(&self, ty: EventType, reason: &'static str, message: String) {
        self.runtime.event(&self.reference, ty, reason, message);
    }

    /// kubelet's BackOff event, before a restart waits.
    fn back_off(&self) {
        self.event(
            EventType::Warning,
            "BackOff",
            format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                self.spec.name,
                str_at(&self.reference, "/metadata/name"),
                str_at(&self.reference, "/metadata/namespace"),
                str_at(&self.reference, "/metadata/uid"),
            ),
        );
    }

    fn update(&self, f: impl FnOnce(&mut ContainerState)) {
        let status = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = state.containers.get_mut(self.index) {
                f(c);
            }
            state.status()
        };
        self.status.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }

    /// The spec with the environment the container starts with now, which
    /// is also what `exec` sees.
    fn starting_spec(&self) -> ContainerSpec {
        let info = self.ns.info();
        let env = self.runtime.container_env(
            &info.namespace,
            &info.name,
            &self.spec.env,
            self.enable_service_links,
        );
        *self
            .environment
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = env.clone();
        ContainerSpec {
            env,
            ..self.spec.clone()
        }
    }

    /// The kubelet's pod reference in its messages: `name_namespace(uid)`.
    fn pod_ref(&self) -> String {
        format!(
            "{}_{}({})",
            str_at(&self.reference, "/metadata/name"),
            str_at(&self.reference, "/metadata/namespace"),
            str_at(&self.reference, "/metadata/uid"),
        )
    }

    /// Runs the container: starts it, and each time it exits starts it
    /// again as its pod's restartPolicy says, after the crash-loop
    /// back-off (`crate::lifecycle`); ends it when the pod terminates.
    async fn run(self) {
        let this = Arc::new(self);
        let policy = this
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .restart_policy;
        let mut backoff = CrashBackoff::default();
        loop {
            if this.terminating.borrow().is_some() {
                return;
            }
            let Some(exit) = this.clone().run_once().await else {
                // Stopped with its pod, or it cannot start at all.
                return;
            };
            let finished = tokio::time::Instant::now();
            let restart = policy.restarts(exit.exit_code);
            if !restart || this.terminating.borrow().is_some() {
                // Exited for good: its restart policy, or its pod is
                // terminating (nothing restarts then).
                this.update(|c| {
                    c.terminated = Some(exit);
                    c.waiting = None;
                    c.started_at.clear();
                    c.ready = false;
                });
                return;
            }
            this.update(|c| {
                c.last_terminated = Some(exit);
                c.started_at.clear();
                c.ready = false;
            });
            while let Some((period, left)) = backoff.waiting(finished, tokio::time::Instant::now())
            {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}",
                    lifecycle::go_duration(period),
                    this.spec.name,
                    this.pod_ref()
                );
                this.update(|c| c.waiting = Some(("CrashLoopBackOff".into(), message)));
                this.back_off();
                tokio::select! {
                    _ = this.cancel.cancelled() => return,
                    _ = this.terminating_grace() => {
                        // Never started again: it ended as it last exited.
                        this.update(|c| {
                            c.waiting = None;
                            c.terminated = c.last_terminated.clone();
                        });
                        return;
                    }
                    _ = tokio::time::sleep(left) => {}
                }
            }
            backoff.next(finished, tokio::time::Instant::now());
            this.update(|c| c.restart_count += 1);
        }
    }

    /// Starts the container once and runs it until it exits: how it
    /// ended, or `None` when it will not run again (its pod stopped or
    /// terminated it, or its image does not exist).
    async fn run_once(self: Arc<Self>) -> Option<Terminated> {
        let this = self;
        let token = this.cancel.child_token();
        let term = CancellationToken::new();
        let spec = this.starting_spec();
        let workload =
            match images::start_signalled(this.ns.clone(), &spec, term.clone(), token.clone()) {
                Ok(w) => w,
                Err(e @ WorkloadError::UnknownImage { .. }) => {
                    tracing::warn!(error = %e, "cannot start container");
                    this.event(
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image \"{}\": {e}", this.spec.image),
                    );
                    this.event(
                        EventType::Warning,
                        "Failed",
                        "Error: ErrImagePull".to_string(),
                    );
                    this.update(|c| c.waiting = Some(("ErrImagePull".into(), e.to_string())));
                    return None;
                }
                Err(e) => {
                    // The process could not start (a runtime's StartError,
                    // exit status 128): restarted like any failure.
                    tracing::warn!(error = %e, "container failed to start");
                    this.event(EventType::Warning, "Failed", format!("Error: {e}"));
                    let mut t = Terminated::new(128, e.to_string(), "");
                    t.reason = "StartError".into();
                    return Some(t);
                }
            };
        let mut workload = std::pin::pin!(workload);
        // Built-in images are always present: kubelet's words for an
        // image it did not need to pull.
        this.event(
            EventType::Normal,
            "Pulled",
            format!(
                "Container image \"{}\" already present on machine",
                this.spec.image
            ),
        );
        this.event(
            EventType::Normal,
            "Created",
            format!("Created container: {}", this.spec.name),
        );
        this.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", this.spec.name),
        );
        let has_readiness = this.readiness.is_some();
        let started_at = now_rfc3339();
        this.update(|c| {
            c.waiting = None;
            c.started_at = started_at.clone();
            c.ready = !has_readiness;
        });
        let (restart_tx, mut restart_rx) = tokio::sync::mpsc::channel::<String>(1);
        let probes = token.child_token();
        if let Some(p) = this.readiness.clone() {
            this.tasks.spawn(
                this.clone()
                    .probe_loop(p, false, probes.clone(), restart_tx.clone())
                    .in_current_span(),
            );
        }
        if let Some(p) = this.liveness.clone() {
            this.tasks.spawn(
                this.clone()
                    .probe_loop(p, true, probes.clone(), restart_tx)
                    .in_current_span(),
            );
        }
        let exit = tokio::select! {
            _ = this.cancel.cancelled() => { probes.cancel(); return None }
            grace = this.terminating_grace() => {
                let exited = this.shut_down(workload.as_mut(), &term, grace, &started_at).await;
                token.cancel();
                probes.cancel();
                this.update(|c| {
                    c.started_at.clear();
                    c.ready = false;
                    c.waiting = None;
                    c.terminated = exited;
                });
                return None;
            }
            r = workload.as_mut() => Terminated::of(&r, &started_at),
            // Killed for its failed liveness probe: SIGKILL's 128 + 9.
            Some(why) = restart_rx.recv() => Terminated::new(137, why, &started_at),
        };
        token.cancel();
        probes.cancel();
        Some(exit)
    }

    /// Resolves with the grace period once the pod is terminating.
    async fn terminating_grace(&self) -> Duration {
        let mut terminating = self.terminating.clone();
        let grace = terminating
            .wait_for(Option::is_some)
            .await
            .map(|grace| grace.unwrap_or_default());
        match grace {
            Ok(grace) => grace,
            // The pod is gone; its cancellation ends the container.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops the running container of a terminating pod as the kubelet's
    /// `killContainer`: the preStop hook (bounded by `grace`), then SIGTERM
    /// (`term`) and the kill window; the workload keeps running and being
    /// probed throughout. Returns how it exited, or `None` when the whole
    /// pod was killed meanwhile.
    async fn shut_down<F>(
        &self,
        mut workload: std::pin::Pin<&mut F>,
        term: &CancellationToken,
        grace: Duration,
        started_at: &str,
    ) -> Option<Terminated>
    where
        F: std::future::Future<Output = images::Exit>,
    {
        let exit = |r: images::Exit| Terminated::of(&r, started_at);
        self.event(
            EventType::Normal,
            "Killing",
            format!("Stopping container {}", self.spec.name),
        );
        // The grace period may shrink meanwhile (a second, shorter
        // delete); every deadline is recomputed from the current one.
        let mut terminating = self.terminating.clone();
        let current = |t: &watch::Receiver<Option<Duration>>| t.borrow().unwrap_or(grace);
        let started = tokio::time::Instant::now();
        if let Some(hook) = &self.pre_stop {
            let mut hook_run = std::pin::pin!(self.pre_stop_hook(hook));
            loop {
                let grace = current(&terminating);
                tokio::select! {
                    _ = self.cancel.cancelled() => return None,
                    r = workload.as_mut() => return Some(exit(r)),
                    r = hook_run.as_mut() => {
                        if let Err(why) = r {
                            tracing::warn!(%why, "preStop hook failed");
                            self.event(EventType::Warning, "FailedPreStopHook", why);
                        }
                        break;
                    }
                    _ = tokio::time::sleep_until(started + grace) => {
                        tracing::warn!("preStop hook did not complete in {}s", grace.as_secs());
                        break;
                    }
                    Ok(()) = terminating.changed() => {}
                }
            }
        }
        let signalled = tokio::time::Instant::now();
        term.cancel();
        loop {
            let window = termination::kill_window(current(&terminating), signalled - started);
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                r = workload.as_mut() => return Some(exit(r)),
                _ = tokio::time::sleep_until(signalled + window) => {
                    tracing::info!(?window, "container did not stop after SIGTERM, killing it");
                    // Killed by SIGKILL: 128 + 9.
                    return Some(Terminated::new(137, String::new(), started_at));
                }
                Ok(()) = terminating.changed() => {}
            }
        }
    }

    /// Runs a `lifecycle.preStop` handler: `exec` in the container (the
    /// toolbox), `httpGet` from the node, or `sleep`. Err is the message of
    /// the kubelet's FailedPreStopHook event.
    async fn pre_stop_hook(&self, hook: &Value) -> Result<(), String> {
        let info = self.ns.info();
        let pod = format!(
            "{}_{}({})",
            info.name,
            info.namespace,
            str_at(&self.reference, "/metadata/uid")
        );
        if let Some(exec) = hook.get("exec") {
            let command: Vec<String> = strs_at(exec, "/command")
                .into_iter()
                .map(String::from)
                .collect();
            let env = self
                .environment
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let out = podnet_pod::toolbox::run(self.ns.clone(), &env, &command, &[]).await;
            if out.exit_code == 0 {
                return Ok(());
            }
            return Err(format!(
                "Exec lifecycle hook ({command:?}) for Container {:?} in Pod {pod:?} failed - error: command '{}' exited with {}: {}",
                self.spec.name,
                command.join(" "),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim_end(),
            ));
        }
        if hook.get("httpGet").is_some() {
            // Bounded by the grace period around the hook, not by a
            // probe's timeout.
            return self
                .handler_once(hook, "httpGet", Duration::from_secs(3600))
                .await
                .map_err(|why| {
                    format!(
                        "HTTP lifecycle hook ({}) for Container {:?} in Pod {pod:?} failed - error: {why}",
                        str_at(hook, "/httpGet/path"),
                        self.spec.name
                    )
                });
        }
        if let Some(seconds) = hook.pointer("/sleep/seconds").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            return Ok(());
        }
        Err(format!(
            "preStop hook for Container {:?} in Pod {pod:?} has no exec, httpGet or sleep handler",
            self.spec.name
        ))
    }

    fn probe_port(&self, probe: &Value, handler: &str) -> Option<u16> {
        let port = probe.pointer(&format!("/{handler}/port"))?;
        match port {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(name) => self.ports.get(name).copied().or_else(|| name.parse().ok()),
            _ => None,
        }
    }

    /// One probe attempt; Err says why it failed.
    async fn probe_once(&self, probe: &Value) -> Result<(), String> {
        let timeout = Duration::from_secs(
            probe
                .pointer("/timeoutSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1),
        );
        let handler = if probe.get("httpGet").is_some() {
            "httpGet"
        } else {
            "tcpSocket"
        };
        self.handler_once(probe, handler, timeout).await
    }

    /// One `httpGet` or `tcpSocket` attempt from the node to the pod, as a
    /// probe or a lifecycle hook sends it.
    async fn handler_once(
        &self,
        probe: &Value,
        handler: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let port = self
            .probe_port(probe, handler)
            .ok_or_else(|| format!("{handler} probe has no usable port"))?;
        let dst = SocketAddr::new(self.ns.ip(), port);
        let src = self.runtime.probe_source(dst.ip());
        let datapath = self.runtime.datapath.clone();
        let attempt = async {
            let path = probe
                .pointer("/httpGet/path")
                .and_then(Value::as_str)
                .unwrap_or("/");
            let stream = datapath.connect_tcp(src, dst, 0).await.map_err(|e| {
                let dial = format!("dial tcp {dst}: {}", go_dial_error(&e));
                if handler == "tcpSocket" {
                    dial
                } else {
                    format!("Get \"http://{dst}{path}\": {dial}")
                }
            })?;
            if handler == "tcpSocket" {
                return Ok(());
            }
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("Get \"http://{dst}{path}\": {e}"))?;
            let conn = tokio::spawn(conn);
            let mut req = http::Request::get(path).header(http::header::HOST, dst.to_string());
            for h in probe
                .pointer("/httpGet/httpHeaders")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                req = req.header(str_at(h, "/name"), str_at(h, "/value"));
            }
            req = req.header(http::header::USER_AGENT, "kube-probe/1.33");
            let req = req
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("bad probe request: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("Get \"http://{dst}{path}\": {e}"));
            conn.abort();
            let resp = resp?;
            let code = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "probe to {dst} timed out after {}s",
                timeout.as_secs()
            )),
        }
    }

    async fn probe_loop(
        self: Arc<Self>,
        probe: Value,
        liveness: bool,
        cancel: CancellationToken,
        restart: tokio::sync::mpsc::Sender<String>,
    ) {
        let secs = |p: &str, d: u64| probe.pointer(p).and_then(Value::as_u64).unwrap_or(d);
        let initial = Duration::from_secs(secs("/initialDelaySeconds", 0));
        let period = Duration::from_secs(secs("/periodSeconds", 10).max(1));
        let success_threshold = secs("/successThreshold", 1).max(1);
        let failure_threshold = secs("/failureThreshold", 3).max(1);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(initial) => {}
        }
        let (mut successes, mut failures) = (0u64, 0u64);
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.probe_once(&probe).await {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                    if !liveness && successes >= success_threshold {
                        self.update(|c| c.ready = true);
                    }
                }
                Err(why) => {
                    failures += 1;
                    successes = 0;
                    tracing::debug!(liveness, %why, "probe failed");
                    let kind = if liveness { "Liveness" } else { "Readiness" };
                    self.event(
                        EventType::Warning,
                        "Unhealthy",
                        format!("{kind} probe failed: {why}"),
                    );
                    if failures >= failure_threshold {
                        if liveness {
                            self.event(
                                EventType::Normal,
                                "Killing",
                                format!(
                                    "Container {} failed liveness probe, will be restarted",
                                    self.spec.name
                                ),
                            );
                            let _ = restart.try_send(format!("Liveness probe failed: {why}"));
                            return;
                        }
                        self.update(|c| c.ready = false);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_does_not_reuse_a_released_address_at_once() {
        let mut ipam = Ipam::new("10.244.1.0/29".parse::<ipnet::Ipv4Net>().unwrap());
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(
            (a, b),
            ("10.244.1.2".parse().unwrap(), "10.244.1.3".parse().unwrap())
        );
        ipam.release(a);
        assert_eq!(ipam.allocate(), Some("10.244.1.4".parse().unwrap()));
        for _ in 0..3 {
            ipam.allocate();
        }
        // Wrapped around: .2 is free again and is the next after .6.
        assert_eq!(ipam.used.len(), 5);
        assert_eq!(ipam.allocate(), None, ".1 is the bridge, .7 the broadcast");
    }

    #[test]
    fn ipam_hands_out_ipv6_from_a_slash_64_without_walking_it() {
        let mut ipam = Ipam::new("fd00:10:244:1::/64".parse::<ipnet::Ipv6Net>().unwrap());
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            (
                "fd00:10:244:1::2".to_string(),
                "fd00:10:244:1::3".to_string()
            )
        );
        ipam.release(a);
        assert_eq!(ipam.allocate().unwrap().to_string(), "fd00:10:244:1::4");
        // The network's last address is a host address in IPv6.
        let mut tiny = Ipam::new("fd00::/126".parse::<ipnet::Ipv6Net>().unwrap());
        let got: Vec<String> = std::iter::from_fn(|| tiny.allocate())
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(got, ["fd00::2", "fd00::3"]);
    }
}
