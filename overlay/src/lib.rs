//! The node-to-node overlay: pod traffic carried over QUIC between nodes.
//!
//! Each node runs one quinn endpoint on one UDP socket and keeps one
//! mutually authenticated QUIC connection per peer node. A pod TCP
//! connection is one bidirectional QUIC stream that starts with a
//! [`FlowHeader`]; a pod UDP datagram or ICMP message is one QUIC datagram
//! made of a [`FlowHeader`] and the payload.
//!
//! - [`wire`]: the versioned flow header and the open status byte (pure
//!   encode/decode, never panics on input).
//! - [`tls`]: rustls/quinn configs with mutual TLS from the cluster CA, the
//!   shared transport settings, and the peer-node identity check.
//! - [`link`]: link emulation (netem in user space) as a wrapper of the UDP
//!   socket quinn uses.
//!
//! This module deliberately does not decide where a flow goes (service proxy)
//! nor whether it is allowed (network policy); it only carries flows between
//! nodes once those decisions are made. Same-node traffic never reaches it.

pub mod link;
pub mod peers;
pub mod splice;
pub mod tls;
pub mod wire;

pub use link::{EmulatedSocket, LinkStats, LinkTable, endpoint};
pub use peers::Peers;
pub use splice::splice;
pub use tls::{NodeIdentity, TlsError, peer_is_node, transport_config};
pub use wire::{FlowHeader, FrameKind, OpenStatus, WIRE_VERSION, WireError};
