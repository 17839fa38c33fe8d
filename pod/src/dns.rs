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
//! - `resolver`: what a pod's libc does with the resolv.conf the node
//!   generated for it (nameservers in order, search list, `ndots`,
//!   `timeout`, `attempts`, UDP with retries, TCP on truncation), used by
//!   the toolbox commands.
//!
//! Deliberately not here: recursion or forwarding to an upstream (podnet has
//! no Internet; names outside the cluster zone and the reverse zones are
//! REFUSED), DNSSEC, zone transfers, dynamic update, and caching in the
//! resolver (glibc does not cache either). Wire format is hickory-proto's.

pub(crate) mod answer;
#[cfg(test)]
pub(crate) mod fixture;
pub(crate) mod resolver;
pub(crate) mod server;

use hickory_proto::op::ResponseCode;

pub use answer::{ClusterDomain, Index, answer};
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
