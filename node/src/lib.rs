//! podnet's node: the agent, the pod runtime with its built-in workloads, and
//! the QUIC overlay with link emulation.

pub mod agent;
pub mod cluster;
pub mod datapath;
pub mod dns;
pub mod health;
pub mod hostdns;
pub mod netns;
pub mod proxy;
pub mod runtime;
pub mod toolbox;
pub mod workloads;

pub use agent::{Config, run};
/// The overlay lives in its own crate, shared with the edge.
pub use podnet_overlay as overlay;
