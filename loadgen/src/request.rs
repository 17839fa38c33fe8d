//! What each request of a flow is: the part of a `Flow` that says what is
//! sent, shared by the flow's runner and the HTTP client it builds.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// What each request of a flow is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Request {
    Http(HttpRequest),
    /// A TCP connection (and, with `echo`, a line sent and read back).
    Tcp {
        host: String,
        port: u16,
        connect_to: Option<SocketAddr>,
        echo: bool,
    },
    /// One datagram sent and its echo awaited.
    Udp {
        host: String,
        port: u16,
        connect_to: Option<SocketAddr>,
    },
    /// One lookup: to `server` alone, or through the client's resolver.
    Dns {
        name: String,
        rtype: String,
        server: Option<SocketAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// As written: `http(s)://host[:port]/path`; the Host header (or
    /// `:authority`) and the TLS server name are its host.
    pub url: String,
    /// Where connections go instead of the URL's host (curl's
    /// `--resolve`).
    pub connect_to: Option<SocketAddr>,
    pub version: HttpVersion,
    /// Keep-alive (a pool of connections) or one connection per request.
    pub reuse: bool,
    /// The CA an https flow trusts, PEM.
    pub cacert: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    #[default]
    #[serde(rename = "1.1")]
    Http1,
    /// h2 by ALPN over TLS, with prior knowledge (h2c) in the clear.
    #[serde(rename = "2")]
    Http2,
}
