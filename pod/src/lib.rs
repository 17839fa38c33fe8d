//! podnet's pods: what runs inside one.
//!
//! - [`netns`]: a pod's emulated network namespace and its socket API (one
//!   IP, TCP and UDP port tables, `localhost`, ICMP echo).
//! - [`container`]: the contract between the node's pod runtime and the
//!   images: a container's spec, what the node hands it, how it fails.
//! - [`images`]: the built-in container images and [`images::start`], which
//!   the node's pod runtime calls with a validated container spec.
//! - [`ingress`]: the `podnet/ingress` image, an ingress controller.
//! - [`dns`]: the `podnet/dns` image (cluster DNS) and the pods' stub
//!   resolver.
//! - [`toolbox`]: the commands `podnet exec` runs in a pod.
//! - [`loadgen`]: `podnet/loadgen`, an experiment's traffic generator run
//!   in a pod's namespace.
//! - [`cluster`]: the node's view of Services and EndpointSlices, as the
//!   workloads read it.
//!
//! Deliberately not here: the node's internals. A pod never sees the agent,
//! the runtime, the service proxy or the datapath; whatever leaves its
//! namespace goes to the [`netns::Egress`] it was created with, and where it
//! goes from there is the node's decision. Process semantics (restarts,
//! probes, exit codes) belong to the node's pod runtime too.

pub mod cluster;
pub mod container;
pub mod dns;
pub mod images;
pub mod ingress;
pub mod loadgen;
pub mod netns;
pub mod toolbox;
