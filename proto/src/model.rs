//! Model types shared by every role. Kubernetes objects themselves are
//! k8s-openapi types or their JSON; this module holds what sits around them.

mod kind;
mod link;
pub mod names;
pub mod network;
mod object;
mod quantity;
mod selector;
pub mod view;

pub use kind::{Kind, ObjectKey, UnknownKind};
pub use link::{
    InvalidLink, LINK_API_VERSION, LinkParams, LinkSpec, PartitionMode, parse_duration,
    parse_percent, parse_rate,
};
pub use object::{condition_is_true, str_at, strs_at};
pub use quantity::{InvalidQuantity, parse_cpu_millis, parse_memory_bytes};
pub use selector::{FieldSelector, InvalidSelector, LabelSelector};

/// Annotation on a Node: the real UDP address of its overlay endpoint.
pub const ANNOTATION_UNDERLAY: &str = "podnet.io/underlay-address";
/// Annotation on a Node: the real TCP address of its NodeAgent service.
pub const ANNOTATION_AGENT: &str = "podnet.io/agent-address";
/// Annotation on a Node: the real address where it serves cluster DNS to the host.
pub const ANNOTATION_HOST_DNS: &str = "podnet.io/host-dns-address";
/// Annotation on a Node: the real address where it serves Prometheus
/// `/metrics`.
pub const ANNOTATION_METRICS: &str = "podnet.io/metrics-address";
/// Annotation on a Node: the process id of the node.
pub const ANNOTATION_PID: &str = "podnet.io/pid";
/// Label Kubernetes puts on nodes for their zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Label Kubernetes puts on nodes for their name.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Label the Deployment controller puts on ReplicaSets and their pods.
pub const LABEL_POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Pods a node runs at most unless told otherwise: the kubelet's
/// `maxPods` default, a Node's capacity and allocatable `pods`.
pub const DEFAULT_MAX_PODS: u32 = 110;
/// The largest gRPC message the control plane's API takes or a client
/// reads: one Apply carries every object of its manifests (and its answer
/// every object back), so it is well above tonic's 4 MiB default. Lists
/// are paged instead (`ListRequest.limit`).
pub const MAX_API_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
