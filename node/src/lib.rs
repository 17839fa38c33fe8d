//! podnet's node: the agent, the pod runtime, the service proxy and the
//! datapath over the QUIC overlay with link emulation. What runs inside a
//! pod (its namespace, the images, DNS, the toolbox) is `podnet-pod`.

pub(crate) mod agent;
pub mod datapath;
pub mod dnsconfig;
pub(crate) mod envvars;
pub(crate) mod health;
pub(crate) mod hostdns;
pub(crate) mod lifecycle;
mod loadgen;
pub mod metrics;
pub(crate) mod outside;
pub mod policy;
pub mod proxy;
pub mod proxy_metrics;
pub(crate) mod registration;
pub(crate) mod runtime;
pub(crate) mod termination;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use agent::{Config, run};
pub use outside::ServedHost;
pub use podnet_pod::dns::{Outside, OutsideZone};
