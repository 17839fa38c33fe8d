//! Cluster DNS: the `podnet/dns` server and the pods' stub resolver.
//!
//! - `answer`: the pure core. An [`Index`] of the Kubernetes
//!   DNS schema (kubernetes/dns `docs/specification.md`, schema 1.1.0) built
//!   from the node's [`ClusterView`](crate::cluster::ClusterView), and the
//!   answer to one query as a plain function: no sockets, no clock, no
//!   randomness.
//! - `server`: the serving loops of the `podnet/dns` image over the pod
//!   socket API (UDP and TCP on port 53), plus the byte-level entry points
//!   [`handle_datagram`] and [`handle_stream_message`] that the fuzzers and
//!   the loops share.
//! - `forward`: names outside the cluster zones go to the DNS pod's own
//!   resolv.conf nameservers, as CoreDNS's `forward . /etc/resolv.conf`.
//! - `outside`: the emulated outside world's recursive resolver, which a
//!   node's resolv.conf points at (it answers the `--external` names).
//! - `metrics`: the server's counters in Prometheus text on port 9153, as
//!   CoreDNS's `prometheus :9153`.
//! - `resolver`: what a pod's libc does with the resolv.conf the node
//!   generated for it (nameservers in order, search list, `ndots`,
//!   `timeout`, `attempts`, UDP with retries, TCP on truncation), used by
//!   the toolbox commands.
//!
//! Deliberately not here: recursion of its own (what is not in the zones is
//! the upstream's), DNSSEC, zone transfers, dynamic update, and caching in
//! the server or the resolver (glibc does not cache either). Wire format is
//! hickory-proto's.

pub(crate) mod answer;
#[cfg(test)]
pub(crate) mod fixture;
pub mod forward;
pub mod metrics;
pub mod outside;
pub(crate) mod resolver;
pub(crate) mod server;

use hickory_proto::op::ResponseCode;

pub use answer::{ClusterDomain, Index, Resolution, answer, resolve};
pub use forward::{ForwardStats, Forwarder};
pub use outside::{Outside, OutsideZone, serve_outside};
pub use resolver::{
    HostsFile, Lookup, MAX_NAMESERVERS, ResolveError, ResolverConfig, lookup, resolve_ipv4,
};
pub use server::{DnsStats, handle_datagram, handle_stream_message};

/// The mnemonic dig and nslookup print for a response code (`NOERROR`,
/// `NXDOMAIN`, ...), or the number for codes without one.
pub fn rcode_mnemonic(rcode: ResponseCode) -> String {
    let text = match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        // 16 is BADVERS in a response carrying EDNS (RFC 6891) and BADSIG
        // in TSIG; only the former can reach podnet's tools.
        ResponseCode::BADVERS | ResponseCode::BADSIG => "BADVERS",
        ResponseCode::BADCOOKIE => "BADCOOKIE",
        other => return format!("RESERVED{}", u16::from(other)),
    };
    text.to_owned()
}
