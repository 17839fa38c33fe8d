//! podnet's node: the agent, the pod runtime, the service proxy and the
//! datapath over the QUIC overlay with link emulation. What runs inside a
//! pod (its namespace, the images, DNS, the toolbox) is `podnet-pod`.

pub mod agent;
pub mod datapath;
pub mod health;
pub mod hostdns;
pub mod proxy;
pub mod runtime;

pub use agent::{Config, run};
/// The overlay lives in its own crate, shared with the edge.
pub use podnet_overlay as overlay;
