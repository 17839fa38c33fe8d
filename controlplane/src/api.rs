//! The gRPC API service: protobuf at the edge, `Registry` and `Nodes`
//! inside. Object bodies are parsed from and written as Kubernetes JSON.
//!
//! Exec is forwarded to the NodeAgent service of the node that runs the pod,
//! the way the API server proxies to the kubelet.
//!
//! Every call but Join and JoinEdge is authenticated by the caller's client
//! certificate (`podnet_proto::auth`; UNAUTHENTICATED without one) and
//! authorized by `authz` (PERMISSION_DENIED) before anything is read or
//! written. Node agents and trace sources are called over TLS as the
//! control plane's `kube-apiserver-kubelet-client`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::Stream;
use podnet_proto::auth::{self, Credentials, User};
use podnet_proto::journeys::TraceStore;
use podnet_proto::model::network::EDGE_NAME;
use podnet_proto::model::{ANNOTATION_AGENT, FieldSelector, Kind, LabelSelector, ObjectKey};
use podnet_proto::v1::api_server::Api;
use podnet_proto::v1::node_agent_client::NodeAgentClient;
use podnet_proto::v1::trace_source_client::TraceSourceClient;
use podnet_proto::v1::{
    ApplyRequest, ApplyResponse, ApplyResult, DeleteRequest, EvictRequest, EvictResponse,
    ExecRequest, ExecResponse, GetRequest, HeartbeatRequest, HeartbeatResponse, JoinEdgeRequest,
    JoinRequest, JoinResponse, ListRequest, ListResponse, ObjectRequest, ObjectResponse,
    WatchEvent, WatchRequest,
};
use podnet_proto::v1::{
    Credentials as CredentialsMessage, FlowsRequest, FlowsResponse, Journey,
    ServiceAccountCredentialsRequest, SpansRequest, TracesRequest, TracesResponse,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::authz::{self, Action, Forbidden, Verb};
use crate::nodes::{JoinError, Nodes};
use crate::registry::{ApiError, Registry};
use crate::store::WatchError;
use podnet_proto::model::str_at;

/// Latest journeys one `Traces` call returns at most.
const MAX_TRACES: u32 = 100;
/// Latest journeys returned when a `Traces` call asks for 0.
const DEFAULT_TRACES: u32 = 5;
/// How long one process may take to hand over its spans.
const TRACE_SOURCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Rounds of asking for the flows a journey continues (parents of parents).
const TRACE_ROUNDS: usize = 8;

/// The longest error message sent. It travels in an HTTP/2 trailer, which
/// the client refuses past its header size limit (16 KiB by default) as a
/// protocol error; a message that long would say nothing more anyway.
const MAX_MESSAGE_LEN: usize = 4096;

/// `msg` cut at [`MAX_MESSAGE_LEN`] bytes (on a character boundary).
fn bounded(mut msg: String) -> String {
    if msg.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
        msg.push_str("... (cut short)");
    }
    msg
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let msg = bounded(e.to_string());
        match e {
            ApiError::NotFound { .. } | ApiError::NamespaceNotFound { .. } => {
                Status::not_found(msg)
            }
            ApiError::AlreadyExists { .. } => Status::already_exists(msg),
            ApiError::Conflict { .. } => Status::aborted(msg),
            ApiError::Invalid(_)
            | ApiError::Json(_)
            | ApiError::Kind(_)
            | ApiError::Selector(_)
            | ApiError::Continue(_) => Status::invalid_argument(msg),
            ApiError::Forbidden { .. } => Status::failed_precondition(msg),
            // What kubectl reports as `Error from server (Forbidden)`.
            ApiError::ImmortalNamespace { .. } => Status::permission_denied(msg),
            ApiError::Watch(WatchError::TooOld { .. }) => Status::out_of_range(msg),
            ApiError::Watch(_) => Status::resource_exhausted(msg),
            // The cause is what an operator needs (a full disk, a read-only file).
            // A write that lost a race with another one: a conflict, as when
            // the resourceVersion the client sent is stale (retry on it).
            ApiError::Store(crate::store::StoreError::Conflict { .. }) => Status::aborted(msg),
            ApiError::Store(_) => Status::internal(crate::store::ErrorChain(&e).to_string()),
        }
    }
}

impl From<Forbidden> for Status {
    fn from(e: Forbidden) -> Status {
        Status::permission_denied(e.0)
    }
}

impl From<JoinError> for Status {
    fn from(e: JoinError) -> Status {
        match e {
            JoinError::BadToken => Status::unauthenticated(e.to_string()),
            JoinError::BadName(_) | JoinError::BadUnderlay(_) => {
                Status::invalid_argument(e.to_string())
            }
            JoinError::NoPodCidr(..) | JoinError::NoNodeIp(_) | JoinError::NoNodeIpV6(_) => {
                Status::resource_exhausted(e.to_string())
            }
            JoinError::Api(api) => api.into(),
            JoinError::Ca(_) => Status::internal(e.to_string()),
        }
    }
}

pub struct ApiService {
    registry: Registry,
    nodes: Arc<Nodes>,
    /// Who the control plane is toward node agents and trace sources.
    kubelet_client: Credentials,
    /// Connections to node agents and trace sources, by address and the
    /// name their certificate must carry.
    channels: Mutex<HashMap<(String, String), Channel>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail: its keys are strings.
    serde_json::to_vec(v).unwrap_or_default()
}

fn key(kind: &str, namespace: &str, name: &str) -> Result<ObjectKey, ApiError> {
    let kind: Kind = kind.parse()?;
    let namespace = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    Ok(ObjectKey::new(kind, namespace, name))
}

/// The authenticated user of a call, UNAUTHENTICATED without one.
fn caller<T>(req: &Request<T>) -> Result<User, Status> {
    User::of(req).ok_or_else(auth::unauthenticated)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

impl ApiService {
    pub fn new(
        registry: Registry,
        nodes: Arc<Nodes>,
        kubelet_client: Credentials,
        shutdown: CancellationToken,
    ) -> ApiService {
        // Watch streams end on shutdown; the tracker lets `run` wait for them.
        ApiService {
            registry,
            nodes,
            kubelet_client,
            channels: Mutex::new(HashMap::new()),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// A stream fed by a tracked task through a bounded channel.
    fn stream<F, Fut>(&self, f: F) -> WatchStream
    where
        F: FnOnce(tokio::sync::mpsc::Sender<Result<WatchEvent, Status>>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        self.tasks
            .spawn(f(tx).instrument(tracing::debug_span!("watch.stream")));
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// The agent of node `node_name`, at the address its Node records.
    fn node_agent(&self, node_name: &str) -> Result<NodeAgentClient<Channel>, Status> {
        let node = self
            .registry
            .must_get(&ObjectKey::new(Kind::Node, "", node_name))?;
        let address = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_AGENT))
            .and_then(Value::as_str)
            .unwrap_or("");
        if address.is_empty() {
            return Err(Status::unavailable(format!(
                "node {node_name} has no agent address"
            )));
        }
        Ok(NodeAgentClient::new(self.channel(address, node_name)?))
    }

    /// A TLS channel to the agent or trace source at `address` whose
    /// certificate names `server_name` (a node's name, or the edge's).
    fn channel(&self, address: &str, server_name: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (address.to_string(), server_name.to_string());
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let channel = self
            .kubelet_client
            .endpoint(address, server_name)
            .map_err(|e| Status::internal(format!("agent address {address:?} is invalid: {e}")))?
            .connect_lazy();
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// Every process that keeps spans, with the name its certificate
    /// carries: the nodes' agents and the edge.
    fn trace_sources(&self) -> Result<Vec<(String, String)>, Status> {
        let mut sources: Vec<(String, String)> = self
            .registry
            .list_all(Kind::Node, "")?
            .iter()
            .filter_map(|n| {
                let address = n
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(ANNOTATION_AGENT))
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())?;
                Some((address.to_string(), str_at(n, "/metadata/name").to_string()))
            })
            .collect();
        sources.extend(self.nodes.edge_agent().map(|a| (a, EDGE_NAME.to_string())));
        Ok(sources)
    }

    /// The node a stored pod is bound to, when the caller is a node and
    /// NodeRestriction needs it.
    fn bound_node(&self, user: &User, kind: Kind, namespace: &str, name: &str) -> Option<String> {
        if user.node().is_none() || kind != Kind::Pod {
            return None;
        }
        let key = key("Pod", namespace, name).ok()?;
        let pod = self.registry.get(&key).ok()??;
        Some(str_at(&pod, "/spec/nodeName").to_string()).filter(|n| !n.is_empty())
    }

    /// Authorizes `verb` on the object `object` for `user`.
    fn allow_object(
        &self,
        user: &User,
        verb: Verb,
        subresource: Option<&'static str>,
        object: &Value,
    ) -> Result<(), Status> {
        if user.is_admin() {
            // Whatever the object: the registry's validation says what is
            // wrong with it.
            return Ok(());
        }
        let kind = Kind::from_type(str_at(object, "/apiVersion"), str_at(object, "/kind"))
            .map_err(ApiError::from)?;
        let namespace = str_at(object, "/metadata/namespace");
        let namespace = if namespace.is_empty() && kind.namespaced() {
            "default"
        } else {
            namespace
        };
        let name = str_at(object, "/metadata/name");
        let bound = self.bound_node(user, kind, namespace, name);
        let mut action = Action::new(verb, kind, namespace, name);
        if let Some(sub) = subresource {
            action = action.subresource(sub);
        }
        if let Some(node) = &bound {
            action = action.bound_to(node);
        }
        Ok(authz::authorize(user, &action)?)
    }

    /// Then the flows the gathered journeys continue, wherever they were
    /// recorded, up to [`TRACE_ROUNDS`] generations.
    async fn gather_parents(&self, sources: &[(String, String)], gathered: &TraceStore) {
        let mut asked = std::collections::HashSet::new();
        for _ in 0..TRACE_ROUNDS {
            let missing: Vec<u64> = gathered
                .missing_parents()
                .into_iter()
                .filter(|p| asked.insert(*p))
                .take(podnet_proto::trace::MAX_IDS)
                .collect();
            if missing.is_empty() {
                break;
            }
            let request = SpansRequest {
                trace_ids: missing,
                latest: 0,
            };
            self.gather(sources, request, gathered).await;
        }
    }

    /// Asks every source for `request`'s spans (concurrently, each bounded
    /// in time; a process that does not answer contributes nothing) into
    /// `into`.
    async fn gather(&self, sources: &[(String, String)], request: SpansRequest, into: &TraceStore) {
        let calls =
            sources.iter().filter_map(|address| {
                let (address, name) = address;
                let mut client = TraceSourceClient::new(self.channel(address, name).ok()?);
                let request = request.clone();
                Some(async move {
                    tokio::time::timeout(TRACE_SOURCE_TIMEOUT, client.spans(request)).await
                })
            });
        for answer in futures::future::join_all(calls).await {
            if let Ok(Ok(batch)) = answer {
                into.insert(batch.into_inner().spans);
            }
        }
    }
}

#[tonic::async_trait]
impl Api for ApiService {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let objects = req
            .objects
            .iter()
            .map(|b| parse_object(b))
            .collect::<Result<Vec<_>, _>>()?;
        for object in &objects {
            self.allow_object(&user, Verb::Patch, None, object)?;
        }
        let applied = self.registry.apply(objects, req.dry_run)?;
        let results = applied
            .into_iter()
            .map(|a| ApplyResult {
                object: to_bytes(&a.object),
                action: a.action.as_str().into(),
                warnings: a.warnings,
            })
            .collect();
        Ok(Response::new(ApplyResponse { results }))
    }

    async fn create(
        &self,
        req: Request<ObjectRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let user = caller(&req)?;
        let object = parse_object(&req.into_inner().object)?;
        self.allow_object(&user, Verb::Create, None, &object)?;
        let created = self.registry.create(object)?;
        Ok(Response::new(ObjectResponse {
            object: to_bytes(&created),
            warnings: vec![],
        }))
    }

    async fn update(
        &self,
        req: Request<ObjectRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let user = caller(&req)?;
        let object = parse_object(&req.into_inner().object)?;
        self.allow_object(&user, Verb::Update, None, &object)?;
        let updated = self.registry.update(object)?;
        Ok(Response::new(ObjectResponse {
            object: to_bytes(&updated),
            warnings: vec![],
        }))
    }

    async fn update_status(
        &self,
        req: Request<ObjectRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let user = caller(&req)?;
        let object = parse_object(&req.into_inner().object)?;
        self.allow_object(&user, Verb::Update, Some("status"), &object)?;
        let updated = self.registry.update_status(object)?;
        Ok(Response::new(ObjectResponse {
            object: to_bytes(&updated),
            warnings: vec![],
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<ObjectResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let key = key(&req.kind, &req.namespace, &req.name)?;
        authz::authorize(
            &user,
            &Action::new(Verb::Get, key.kind, &req.namespace, &req.name),
        )?;
        let object = self.registry.must_get(&key)?;
        Ok(Response::new(ObjectResponse {
            object: to_bytes(&object),
            warnings: vec![],
        }))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let kind: Kind = req.kind.parse().map_err(ApiError::from)?;
        authz::authorize(&user, &Action::new(Verb::List, kind, &req.namespace, ""))?;
        let labels = LabelSelector::parse(&req.label_selector).map_err(ApiError::from)?;
        let fields = FieldSelector::parse(&req.field_selector).map_err(ApiError::from)?;
        let page = self.registry.list_page(
            kind,
            &req.namespace,
            &labels,
            &fields,
            req.limit as usize,
            &req.r#continue,
        )?;
        Ok(Response::new(ListResponse {
            items: page.items.iter().map(to_bytes).collect(),
            revision: page.revision,
            r#continue: page.continue_token,
            remaining_item_count: page.remaining,
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<ObjectResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let key = key(&req.kind, &req.namespace, &req.name)?;
        let bound = self.bound_node(&user, key.kind, &req.namespace, &req.name);
        let mut action = Action::new(Verb::Delete, key.kind, &req.namespace, &req.name);
        if let Some(node) = &bound {
            action = action.bound_to(node);
        }
        authz::authorize(&user, &action)?;
        let object = self
            .registry
            .delete(&key, req.grace_period_seconds, &req.resource_version)?;
        Ok(Response::new(ObjectResponse {
            object: to_bytes(&object),
            warnings: vec![],
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let kind: Kind = req.kind.parse().map_err(ApiError::from)?;
        authz::authorize(&user, &Action::new(Verb::Watch, kind, &req.namespace, ""))?;
        let labels = LabelSelector::parse(&req.label_selector).map_err(ApiError::from)?;
        let fields = FieldSelector::parse(&req.field_selector).map_err(ApiError::from)?;
        let mut watch =
            self.registry
                .watch(kind, &req.namespace, labels, fields, req.from_revision)?;
        let shutdown = self.shutdown.clone();
        let stream = self.stream(move |tx| async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    next = watch.next() => next,
                };
                let item = match next {
                    None => return,
                    Some(Ok(ev)) => Ok(WatchEvent {
                        r#type: ev.ty.to_string(),
                        object: to_bytes(&ev.object),
                        revision: ev.revision,
                    }),
                    Some(Err(e)) => Err(Status::from(e)),
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let resp = self.nodes.join(&req.into_inner())?;
        Ok(Response::new(resp))
    }

    async fn join_edge(
        &self,
        req: Request<JoinEdgeRequest>,
    ) -> Result<Response<JoinResponse>, Status> {
        Ok(Response::new(self.nodes.join_edge(&req.into_inner())?))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        if user.node() != Some(req.node_name.as_str()) {
            return Err(Status::permission_denied(format!(
                "User {:?} cannot renew the lease of node {:?}: only that node may",
                user.name, req.node_name
            )));
        }
        self.nodes.heartbeat(&req.node_name)?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn service_account_credentials(
        &self,
        req: Request<ServiceAccountCredentialsRequest>,
    ) -> Result<Response<CredentialsMessage>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let pod_key = key("Pod", &req.namespace, &req.pod)?;
        let namespace = pod_key.namespace.clone();
        let bound = self.bound_node(&user, Kind::Pod, &namespace, &req.pod);
        let mut action = Action::new(Verb::Create, Kind::Pod, &namespace, &req.pod)
            .subresource("serviceaccount");
        if let Some(node) = &bound {
            action = action.bound_to(node);
        }
        authz::authorize(&user, &action)?;
        let pod = self.registry.must_get(&pod_key)?;
        let account = [
            str_at(&pod, "/spec/serviceAccountName"),
            str_at(&pod, "/spec/serviceAccount"),
        ]
        .into_iter()
        .find(|a| !a.is_empty())
        .unwrap_or("default");
        let ca = self.nodes.ca();
        let issued = ca
            .issue_service_account(&namespace, account)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(CredentialsMessage::from(
            ca.credentials(issued),
        )))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let pod_key = key("Pod", &req.namespace, &req.pod)?;
        authz::authorize(
            &user,
            &Action::new(Verb::Create, Kind::Pod, &pod_key.namespace, &req.pod).subresource("exec"),
        )?;
        let pod = self.registry.must_get(&pod_key)?;
        let phase = str_at(&pod, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed") {
            // The API server's words for a pod whose sandbox is gone.
            return Err(Status::failed_precondition(format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            )));
        }
        let node_name = str_at(&pod, "/spec/nodeName");
        if node_name.is_empty() || str_at(&pod, "/status/podIP").is_empty() {
            return Err(Status::failed_precondition(format!(
                "pod {:?} is not running yet (phase {})",
                req.pod,
                str_at(&pod, "/status/phase")
            )));
        }
        let mut client = self.node_agent(node_name)?;
        client.exec(req).await.map_err(not_answering(node_name))
    }

    async fn evict(&self, req: Request<EvictRequest>) -> Result<Response<EvictResponse>, Status> {
        let user = caller(&req)?;
        let req = req.into_inner();
        let pod_key = key("Pod", &req.namespace, &req.name)?;
        let bound = self.bound_node(&user, Kind::Pod, &pod_key.namespace, &req.name);
        let mut action = Action::new(Verb::Create, Kind::Pod, &pod_key.namespace, &req.name)
            .subresource("eviction");
        if let Some(node) = &bound {
            action = action.bound_to(node);
        }
        authz::authorize(&user, &action)?;
        let pod = self.registry.must_get(&pod_key)?;
        if req.node_pressure.is_empty() {
            // The Eviction API without PodDisruptionBudgets: every
            // eviction is allowed and is the pod's graceful deletion.
            let object = self
                .registry
                .delete(&pod_key, req.grace_period_seconds, "")?;
            return Ok(Response::new(EvictResponse {
                message: String::new(),
                object: to_bytes(&object),
            }));
        }
        if !matches!(
            req.node_pressure.as_str(),
            "memory" | "ephemeral-storage" | "pids"
        ) {
            return Err(Status::invalid_argument(format!(
                "node pressure {:?} is not a resource the kubelet evicts for: expected memory, ephemeral-storage or pids",
                req.node_pressure
            )));
        }
        let node_name = str_at(&pod, "/spec/nodeName");
        if node_name.is_empty() {
            return Err(Status::failed_precondition(format!(
                "pod {:?} is not bound to a node: no kubelet to evict it",
                req.name
            )));
        }
        let mut client = self.node_agent(node_name)?;
        let evicted = client
            .evict(EvictRequest {
                namespace: pod_key.namespace.clone(),
                ..req
            })
            .await
            .map_err(not_answering(node_name))?
            .into_inner();
        let object = self.registry.must_get(&pod_key)?;
        Ok(Response::new(EvictResponse {
            message: evicted.message,
            object: to_bytes(&object),
        }))
    }

    async fn flows(&self, req: Request<FlowsRequest>) -> Result<Response<FlowsResponse>, Status> {
        authz::authorize_traces(&caller(&req)?)?;
        let req = req.into_inner();
        // Every node's log; a node that does not answer in time is left out.
        let calls =
            self.trace_sources()?
                .into_iter()
                .filter(|(_, name)| name != EDGE_NAME)
                .filter_map(|(address, name)| {
                    let mut client = NodeAgentClient::new(self.channel(&address, &name).ok()?);
                    Some(async move {
                        tokio::time::timeout(TRACE_SOURCE_TIMEOUT, client.flows(req)).await
                    })
                })
                .collect::<Vec<_>>();
        let (mut flows, mut counters) = (Vec::new(), Vec::new());
        for answer in futures::future::join_all(calls).await {
            if let Ok(Ok(batch)) = answer {
                let batch = batch.into_inner();
                flows.extend(batch.flows);
                counters.extend(batch.counters);
            }
        }
        flows.sort_by_key(|f| f.time_unix_nanos);
        counters.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(Response::new(FlowsResponse { flows, counters }))
    }

    async fn traces(
        &self,
        req: Request<TracesRequest>,
    ) -> Result<Response<TracesResponse>, Status> {
        authz::authorize_traces(&caller(&req)?)?;
        let req = req.into_inner();
        let limit = match req.limit {
            0 => DEFAULT_TRACES,
            n => n.min(MAX_TRACES),
        };
        let sources = self.trace_sources()?;
        let mut gathered = TraceStore::new();
        let first = if req.trace_id != 0 {
            SpansRequest {
                trace_ids: vec![req.trace_id],
                latest: 0,
            }
        } else {
            SpansRequest {
                trace_ids: Vec::new(),
                latest: limit,
            }
        };
        self.gather(&sources, first, &gathered).await;
        self.gather_parents(&sources, &gathered).await;
        if req.trace_id == 0 {
            // Each process answered with its own latest flows, and a flow
            // one process lists may have spans in another whose latest are
            // newer ones: ask every process for every span of the flows to
            // be shown, into a new store (no span twice), so that no
            // journey is cut down to the hops of the processes that listed it.
            let mut ids: Vec<u64> = gathered
                .latest(limit as usize)
                .iter()
                .flat_map(|j| j.spans.iter().map(|s| s.trace_id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.truncate(podnet_proto::trace::MAX_IDS);
            gathered = TraceStore::new();
            let request = SpansRequest {
                trace_ids: ids,
                latest: 0,
            };
            self.gather(&sources, request, &gathered).await;
            self.gather_parents(&sources, &gathered).await;
        }
        let journeys = if req.trace_id != 0 {
            let spans = gathered.journey(req.trace_id);
            if spans.is_empty() {
                vec![]
            } else {
                vec![Journey {
                    trace_id: req.trace_id,
                    spans,
                }]
            }
        } else {
            gathered.latest(limit as usize)
        };
        Ok(Response::new(TracesResponse { journeys }))
    }
}

/// A node agent's UNAVAILABLE, said as the node not answering.
fn not_answering(node_name: &str) -> impl FnOnce(Status) -> Status + '_ {
    move |s| {
        if s.code() == tonic::Code::Unavailable {
            Status::unavailable(format!("node {node_name} does not answer: {}", s.message()))
        } else {
            s
        }
    }
}
