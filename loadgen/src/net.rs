//! Where a generator's requests leave from: the [`Net`] it runs over.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use podnet_experiment::series::Outcome;
use tokio::io::{AsyncRead, AsyncWrite};

/// A UDP socket connected to one peer.
pub trait Datagram: Send + Sync + 'static {
    fn send(&self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// The next datagram from the peer (a port unreachable from it is
    /// ConnectionRefused).
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

/// A network to send from, with its own resolver.
pub trait Net: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Datagram: Datagram;

    /// The address `host` has for this client (an IP literal is itself);
    /// a failure is its DNS class.
    fn resolve(&self, host: &str) -> impl Future<Output = Result<IpAddr, Outcome>> + Send;
    /// A TCP connection to `addr`.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// A UDP socket connected to `peer`.
    fn udp(&self, peer: SocketAddr) -> impl Future<Output = io::Result<Self::Datagram>> + Send;
    /// One lookup of `name`: with `server`, one query to it; without, as
    /// this client's resolver looks names up (a pod's resolv.conf: its
    /// nameservers, search list and `ndots`).
    fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
        server: Option<SocketAddr>,
        timeout: Duration,
    ) -> impl Future<Output = Outcome> + Send;
}

/// This machine's own sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNet;

/// A host UDP socket connected to its peer.
pub struct HostDatagram(tokio::net::UdpSocket);

impl Datagram for HostDatagram {
    async fn send(&self, buf: &[u8]) -> io::Result<()> {
        self.0.send(buf).await.map(drop)
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf).await
    }
}

impl Net for HostNet {
    type Stream = tokio::net::TcpStream;
    type Datagram = HostDatagram;

    async fn resolve(&self, host: &str) -> Result<IpAddr, Outcome> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse() {
            return Ok(ip);
        }
        match tokio::net::lookup_host((bare, 0)).await {
            Ok(mut addrs) => addrs.next().map(|a| a.ip()).ok_or(Outcome::DnsNxdomain),
            Err(_) => Err(Outcome::DnsNxdomain),
        }
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn udp(&self, peer: SocketAddr) -> io::Result<HostDatagram> {
        let bind: SocketAddr = if peer.is_ipv4() {
            (std::net::Ipv4Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(bind).await?;
        socket.connect(peer).await?;
        Ok(HostDatagram(socket))
    }

    async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
        server: Option<SocketAddr>,
        timeout: Duration,
    ) -> Outcome {
        match server {
            Some(server) => query_once(self, server, name, rtype, timeout).await,
            // The host has no cluster resolver: its flows name a server.
            None => Outcome::Other,
        }
    }
}

/// One query in one datagram from a new socket, as a stub resolver sends
/// it: NOERROR is `ok` (an answer or none), NXDOMAIN `dns_nxdomain`, no
/// answer within `timeout` `dns_timeout`, a port unreachable `refused`,
/// anything else (SERVFAIL, REFUSED, a garbled answer) `other`.
pub async fn query_once<N: Net>(
    net: &N,
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Outcome {
    let Ok(name) = Name::from_ascii(name) else {
        return Outcome::Other;
    };
    let id: u16 = rand::random();
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, rtype));
    let Ok(bytes) = query.to_vec() else {
        return Outcome::Other;
    };
    let exchange = async {
        let socket = net.udp(server).await?;
        socket.send(&bytes).await?;
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await?;
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => return Ok::<_, io::Error>(Some(m)),
                // Another query's late answer.
                Ok(_) => continue,
                Err(_) => return Ok(None),
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::DnsTimeout,
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Refused,
        Ok(Err(_)) | Ok(Ok(None)) => Outcome::Other,
        Ok(Ok(Some(m))) => match m.metadata.response_code {
            ResponseCode::NoError => Outcome::Ok,
            ResponseCode::NXDomain => Outcome::DnsNxdomain,
            _ => Outcome::Other,
        },
    }
}
