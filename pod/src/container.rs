//! The container contract between the node's pod runtime and the images:
//! what the runtime knows about a container ([`ContainerSpec`]), what the
//! node hands every container ([`WorkloadEnv`]), and how starting or
//! serving one fails ([`WorkloadError`]). [`crate::images::start`] runs a
//! spec.
//!
//! Deliberately not here: the images themselves, and anything of the
//! node's own (the runtime builds these values from the pod spec and its
//! own state; nothing here reads a pod object).

use std::io;
use std::sync::Arc;

use futures::future::BoxFuture;
use podnet_proto::trace::Recorder;
use podnet_proto::v1::api_client::ApiClient;
use tonic::transport::Channel;

use crate::cluster::{self, ClusterView, ClusterViewRx};
use podnet_proto::model::view::Protocol;

/// What the node hands its workloads besides their own spec: shared views
/// and counters. Cloning is cheap (channels and `Arc`s).
#[derive(Debug, Clone)]
pub struct WorkloadEnv {
    /// The node's view of Services and EndpointSlices (`podnet/dns`).
    pub cluster: ClusterViewRx,
    /// The control plane's API, for workloads that are controllers
    /// (`podnet/ingress`), as the pod's service account.
    pub api: Option<ApiAccess>,
    /// Where the workloads' hops of a request journey go.
    pub recorder: Recorder,
}

/// How a workload reaches the API as its pod's service account: the node
/// fetches credentials for it (the kubelet's service account token
/// request) when the workload asks, so a pod that never calls the API
/// costs nothing.
#[derive(Clone)]
pub struct ApiAccess(Arc<ConnectFn>);

type ConnectFn =
    dyn Fn() -> BoxFuture<'static, Result<ApiClient<Channel>, tonic::Status>> + Send + Sync;

impl ApiAccess {
    pub fn new<F>(connect: F) -> ApiAccess
    where
        F: Fn() -> BoxFuture<'static, Result<ApiClient<Channel>, tonic::Status>>
            + Send
            + Sync
            + 'static,
    {
        ApiAccess(Arc::new(connect))
    }

    /// A client authenticated as the pod's service account.
    pub async fn connect(&self) -> Result<ApiClient<Channel>, tonic::Status> {
        (self.0)().await
    }
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAccess").finish_non_exhaustive()
    }
}

impl Default for WorkloadEnv {
    /// An empty cluster that never changes and counters nobody reads: for
    /// tests and namespaces without a node.
    fn default() -> WorkloadEnv {
        WorkloadEnv {
            cluster: cluster::fixed(ClusterView::default()),
            api: None,
            recorder: Recorder::disabled(),
        }
    }
}

/// Specs are compared for what the pod asked; the node's environment is the
/// same for every container it runs, so it never makes two specs differ.
impl PartialEq for WorkloadEnv {
    fn eq(&self, _other: &WorkloadEnv) -> bool {
        true
    }
}

impl Eq for WorkloadEnv {}

/// What the pod runtime knows about one container, already validated
/// against the pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The declared `containerPorts` (`podnet_proto::model::view::Protocol`).
    pub ports: Vec<(u16, Protocol)>,
    /// The node's environment (not from the pod spec). Named apart from
    /// `env`, which is the container's environment variables.
    pub workload_env: WorkloadEnv,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("unknown image {image:?}: podnet runs the built-in images {known}")]
    UnknownImage { image: String, known: String },
    #[error("cannot listen on {protocol} port {port}")]
    Bind {
        port: u16,
        protocol: Protocol,
        #[source]
        source: io::Error,
    },
    #[error("invalid {origin} {value:?} for image {image}: {reason}")]
    BadArgs {
        image: String,
        /// Where the value came from: `argument`, or `environment variable PORT`.
        origin: &'static str,
        value: String,
        reason: String,
    },
    /// A listener or socket failed while serving; only happens when the
    /// node's network is shutting down under the container.
    #[error("{protocol} port {port} failed")]
    Serve {
        port: u16,
        protocol: Protocol,
        #[source]
        source: io::Error,
    },
}
