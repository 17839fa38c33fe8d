//! podnet's traffic generator, the engine under every experiment's
//! `traffic`: open-loop flows (HTTP/1.1, HTTP/2, HTTPS, TCP connect or
//! echo, UDP echo, DNS) run over a [`Net`]: the host's own sockets
//! ([`HostNet`], through the edge's real listeners) or a pod's network
//! namespace (the node's `podnet/loadgen`, so load crosses the service
//! proxy, policy and overlay like any pod's).
//!
//! A flow's schedule is made before anything is sent ([`run`]): a
//! scheduler thread of its own sleeps until each request is due (the OS
//! timer, not tokio's millisecond wheel, so the generator's own lag stays
//! in microseconds) and hands the request to the runtime whatever became
//! of the ones before. Latency is measured from the scheduled time; a
//! request the generator could not send within `timeout` of it, or while
//! [`MAX_IN_FLIGHT`] are outstanding, is `shed`. Each finished request is
//! a [`Sample`](podnet_experiment::series::Sample) with what it says of
//! its server (http-echo's `pod` and `node`, the pod's zone and whether it
//! was Terminating, from a [`World`]).

mod classify;
mod flow;
mod http;
mod net;
mod request;
mod world;

pub use classify::{Unresolved, classify};
pub use flow::{ClosedLoop, Flow, MAX_IN_FLIGHT, Tally, probe, run};
pub use net::{Datagram, HostNet, Net, query_once};
pub use request::{HttpRequest, HttpVersion, Request};
pub use world::{UPSTREAM_HEADER, World};
