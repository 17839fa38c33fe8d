//! podnet's shared vocabulary: the generated gRPC API (`v1`) and the model
//! types every role agrees on (kinds, object keys, label selectors,
//! quantities, link settings).
//!
//! Object bodies are Kubernetes JSON; this crate does not define a second
//! object model beside k8s-openapi's, only what Kubernetes itself has no type
//! for.

pub mod auth;
pub mod events;
pub mod informer;
pub mod journeys;
pub mod model;
pub mod retry;
pub mod trace;

/// Generated from `proto/podnet.proto`.
#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("podnet.v1");

    /// The gRPC path prefix of `service Api`.
    pub const API_PATH_PREFIX: &str = "/podnet.v1.Api/";
    /// Every method of `service Api`, in the order the proto file declares
    /// them.
    pub const API_METHODS: &[&str] = include!(concat!(env!("OUT_DIR"), "/api_methods.rs"));
}
