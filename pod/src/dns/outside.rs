//! The emulated outside world's recursive resolver: what a node's
//! resolv.conf points at, so that cluster DNS has an upstream that does not
//! depend on the host.
//!
//! [`OutsideZone`] is the table of outside names (`podnet up --external
//! NAME=IP`, the scenario's `cluster.external`), and [`answer_outside`] the
//! pure answer to one query, as a recursive resolver in front of the
//! Internet would give it: `A` for a listed name, NODATA for another type
//! of a listed name, NXDOMAIN for any other name, both with a synthetic
//! SOA in the authority section (owned by the root, whose zone is where
//! the search for a name that exists nowhere ends). RA is set, AA is not:
//! the answers are recursive, not authoritative.
//!
//! [`serve_outside`] serves it on UDP and TCP port 53 of a namespace the
//! node gives it (its own address on the node network, outside every
//! cluster range); the node's datapath carries the queries there like any
//! other flow. Given a real resolver on the host (`podnet up
//! --dns-upstream HOST:PORT`), it relays every query for a name it does
//! not list there, over real sockets and the query's own transport, and
//! relays the answer back unchanged ([`relayed`] decides, purely).
//!
//! Deliberately not here: records other than `A`, reverse lookups of the
//! outside addresses, DNSSEC, and EDNS beyond echoing an OPT.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::answer::SERVER_UDP_PAYLOAD;
use super::server::DNS_PORT;
use crate::netns::{NetNs, PodStream};

/// TTL of the outside answers, in seconds.
pub const OUTSIDE_TTL: u32 = 300;
/// The negative-caching TTL of the synthetic SOA (the root zone's).
const NEGATIVE_TTL: u32 = 86400;
/// TCP connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// UDP queries relayed to the host's resolver at once; more are dropped,
/// as an overloaded resolver drops them.
const MAX_RELAYED: usize = 256;
/// How long the host's resolver gets to answer one relayed query.
const RELAY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connection may sit idle.
const IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutsideError {
    #[error("outside name {name:?} is not a DNS name: {reason}")]
    BadName { name: String, reason: String },
    #[error("outside name {name:?} is listed twice (with {first} and {second})")]
    Duplicate {
        name: String,
        first: Ipv4Addr,
        second: Ipv4Addr,
    },
}

/// The outside names and their addresses (one name may have several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutsideZone {
    hosts: BTreeMap<Name, Vec<Ipv4Addr>>,
}

impl OutsideZone {
    /// The zone of `(name, address)` pairs. A name listed again with
    /// another address gets both, as a name with two A records; the same
    /// pair twice is one record.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a str, Ipv4Addr)>,
    ) -> Result<OutsideZone, OutsideError> {
        let mut hosts: BTreeMap<Name, Vec<Ipv4Addr>> = BTreeMap::new();
        for (text, ip) in entries {
            let name = outside_name(text)?;
            let ips = hosts.entry(name).or_default();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Ok(OutsideZone { hosts })
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    fn lookup(&self, name: &Name) -> Option<&[Ipv4Addr]> {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        self.hosts.get(&name).map(Vec::as_slice)
    }
}

/// Parses an outside host name (`api.example.com`, a trailing dot
/// optional) as an absolute lowercase name of at least two labels: a bare
/// label would be a top-level domain, which no one can register.
pub fn outside_name(text: &str) -> Result<Name, OutsideError> {
    let bad = |reason: &str| OutsideError::BadName {
        name: text.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = text.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    if !trimmed.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    }) {
        return Err(bad(
            "each dot-separated label must be 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'",
        ));
    }
    if !trimmed.contains('.') {
        return Err(bad("expected at least two labels, such as api.example.com"));
    }
    let mut name = Name::from_ascii(trimmed)
        .map_err(|e| bad(&e.to_string()))?
        .to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}

/// The synthetic SOA of the root, sent with NXDOMAIN and NODATA.
fn root_soa() -> Record {
    let host = |text: &str| Name::from_ascii(text).unwrap_or_else(|_| Name::root());
    let soa = SOA::new(
        host("ns.outside.podnet."),
        host("hostmaster.outside.podnet."),
        1,
        1800,
        900,
        604_800,
        NEGATIVE_TTL,
    );
    Record::from_rdata(Name::root(), NEGATIVE_TTL, RData::SOA(soa))
}

/// The outside resolver's answer to `query`. Never fails: every problem is
/// a response code.
pub fn answer_outside(zone: &OutsideZone, query: &Message) -> Message {
    let mut response = Message::response(query.id, query.op_code);
    response.metadata.recursion_desired = query.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.checking_disabled = query.checking_disabled;
    response.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut ours = Edns::new();
        ours.set_max_payload(SERVER_UDP_PAYLOAD);
        response.set_edns(ours);
    }
    response.metadata.response_code = if query.op_code != OpCode::Query {
        ResponseCode::NotImp
    } else if let [question] = query.queries.as_slice() {
        if question.query_class() != DNSClass::IN {
            ResponseCode::Refused
        } else if let Some(ips) = zone.lookup(question.name()) {
            if matches!(question.query_type(), RecordType::A | RecordType::ANY) {
                for ip in ips {
                    response.add_answer(Record::from_rdata(
                        question.name().clone(),
                        OUTSIDE_TTL,
                        RData::A(A(*ip)),
                    ));
                }
            } else {
                response.add_authority(root_soa());
            }
            ResponseCode::NoError
        } else {
            response.add_authority(root_soa());
            ResponseCode::NXDomain
        }
    } else {
        ResponseCode::FormErr
    };
    response
}

/// The response bytes to one message, or `None` for what must not be
/// answered (responses, unreadable headers).
pub fn handle_outside(zone: &OutsideZone, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(bytes)).ok()?;
    if header.message_type != MessageType::Query {
        return None;
    }
    let Ok(query) = Message::from_vec(bytes) else {
        return Message::error_msg(header.id, header.op_code, ResponseCode::FormErr)
            .to_vec()
            .ok();
    };
    let response = answer_outside(zone, &query);
    let bytes = response.to_vec().ok()?;
    let limit = query.edns.as_ref().map_or(512, |e| {
        usize::from(e.max_payload().clamp(512, SERVER_UDP_PAYLOAD))
    });
    if udp && bytes.len() > limit {
        return response.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// Does a message go to the host's resolver? A query whose name the zone
/// does not list does; what does not decode (answered FORMERR here, or
/// dropped) and the listed names do not.
pub fn relayed(zone: &OutsideZone, bytes: &[u8]) -> bool {
    let Ok(query) = Message::from_vec(bytes) else {
        return false;
    };
    query.message_type == MessageType::Query
        && matches!(query.queries.as_slice(), [q] if zone.lookup(q.name()).is_none())
}

/// The outside world's resolver: the listed names, and, if given, the
/// host's real resolver for every other name.
#[derive(Debug, Clone, Default)]
pub struct Outside {
    pub zone: OutsideZone,
    pub host: Option<std::net::SocketAddr>,
}

/// Serves `outside` on UDP and TCP port 53 of `ns` until `cancel`. A
/// socket that cannot be bound is an error; after that nothing stops the
/// loops but `cancel`.
pub async fn serve_outside(
    ns: Arc<NetNs>,
    outside: Outside,
    cancel: CancellationToken,
) -> io::Result<()> {
    let udp = Arc::new(ns.bind_udp(DNS_PORT)?);
    let mut tcp = ns.listen_tcp(DNS_PORT)?;
    let host = outside.host;
    let zone = Arc::new(outside.zone);
    let tracker = TaskTracker::new();
    let relays = Arc::new(Semaphore::new(MAX_RELAYED));
    let udp_loop = async {
        loop {
            let (bytes, peer) = match udp.recv_from().await {
                Ok(datagram) => datagram,
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(error) => return error,
            };
            if let Some(host) = host.filter(|_| relayed(&zone, &bytes)) {
                let Ok(slot) = relays.clone().try_acquire_owned() else {
                    continue;
                };
                let (udp, cancel) = (udp.clone(), cancel.clone());
                tracker.spawn(
                    async move {
                        let _slot = slot;
                        let reply = tokio::select! {
                            reply = relay_udp(host, &bytes) => reply,
                            () = cancel.cancelled() => return,
                        };
                        match reply {
                            Ok(reply) => {
                                if let Err(error) = udp.send_to(&reply, peer).await {
                                    tracing::debug!(%error, %peer, "outside answer not sent");
                                }
                            }
                            Err(error) => {
                                tracing::debug!(%error, %host, "host resolver did not answer")
                            }
                        }
                    }
                    .instrument(tracing::debug_span!("outside.relay", conn.peer = %peer)),
                );
                continue;
            }
            if let Some(reply) = handle_outside(&zone, &bytes, true)
                && let Err(error) = udp.send_to(&reply, peer).await
            {
                tracing::debug!(%error, %peer, "outside answer not sent");
            }
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tcp_loop = async {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(accepted) => accepted,
                Err(error) => return error,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let (zone, cancel) = (zone.clone(), cancel.clone());
            tracker.spawn(
                async move {
                    let _slot = slot;
                    tokio::select! {
                        () = serve_stream(stream, &zone, host) => {}
                        () = cancel.cancelled() => {}
                    }
                }
                .instrument(tracing::debug_span!("outside.tcp", conn.peer = %peer)),
            );
        }
    };
    let result = tokio::select! {
        error = udp_loop => Err(error),
        error = tcp_loop => Err(error),
        () = cancel.cancelled() => Ok(()),
    };
    tracker.close();
    tracker.wait().await;
    result
}

/// One query to the host's resolver over UDP, from an ephemeral port;
/// the first datagram with the query's id is the answer.
async fn relay_udp(host: std::net::SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let bind: std::net::SocketAddr = if host.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.connect(host).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    tokio::time::timeout(RELAY_TIMEOUT, async {
        loop {
            let n = socket.recv(&mut buf).await?;
            if n >= 12 && buf.get(..2) == query.get(..2) {
                return Ok(buf[..n].to_vec());
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

/// One query to the host's resolver over TCP, on a connection of its own.
async fn relay_tcp(host: std::net::SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let length = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    tokio::time::timeout(RELAY_TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

async fn serve_stream(
    mut stream: PodStream,
    zone: &OutsideZone,
    host: Option<std::net::SocketAddr>,
) {
    loop {
        let mut prefix = [0u8; 2];
        let Ok(Ok(_)) = tokio::time::timeout(IDLE, stream.read_exact(&mut prefix)).await else {
            return;
        };
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        let Ok(Ok(_)) = tokio::time::timeout(IDLE, stream.read_exact(&mut message)).await else {
            return;
        };
        let reply = match host.filter(|_| relayed(zone, &message)) {
            Some(host) => match relay_tcp(host, &message).await {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::debug!(%error, %host, "host resolver did not answer");
                    continue;
                }
            },
            None => match handle_outside(zone, &message, false) {
                Some(reply) => reply,
                None => continue,
            },
        };
        let Ok(length) = u16::try_from(reply.len()) else {
            continue;
        };
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        let written = async {
            stream.write_all(&framed).await?;
            stream.flush().await
        };
        if !matches!(tokio::time::timeout(IDLE, written).await, Ok(Ok(()))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::resolver::new_query;

    fn zone() -> OutsideZone {
        OutsideZone::new([
            ("api.example.com", Ipv4Addr::new(203, 0, 113, 10)),
            ("API.example.com.", Ipv4Addr::new(203, 0, 113, 11)),
            ("api.example.com", Ipv4Addr::new(203, 0, 113, 10)),
        ])
        .unwrap()
    }

    fn check(name: &str, rtype: RecordType, rcode: ResponseCode, answers: &[&str], soa: bool) {
        let query = new_query(Name::from_ascii(name).unwrap(), rtype, false);
        let response = answer_outside(&zone(), &query);
        assert_eq!(response.response_code, rcode, "{name} {rtype}");
        assert_eq!(response.id, query.id);
        assert!(response.recursion_available && !response.authoritative);
        let got: Vec<String> = response
            .answers
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(got, answers, "{name} {rtype}");
        assert_eq!(
            response
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA),
            soa,
            "{name} {rtype}"
        );
    }

    #[test]
    fn listed_names_answer_a_and_others_do_not_exist() {
        check(
            "api.example.com.",
            RecordType::A,
            ResponseCode::NoError,
            &[
                "api.example.com. 203.0.113.10",
                "api.example.com. 203.0.113.11",
            ],
            false,
        );
        check(
            "Api.Example.Com.",
            RecordType::A,
            ResponseCode::NoError,
            &[
                "Api.Example.Com. 203.0.113.10",
                "Api.Example.Com. 203.0.113.11",
            ],
            false,
        );
        check(
            "api.example.com.",
            RecordType::AAAA,
            ResponseCode::NoError,
            &[],
            true,
        );
        check(
            "nosuch.example.com.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
            true,
        );
        check(
            "example.com.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
            true,
        );
    }

    #[test]
    fn only_unlisted_names_go_to_the_host() {
        let zone = zone();
        let bytes = |name: &str| {
            new_query(Name::from_ascii(name).unwrap(), RecordType::A, false)
                .to_vec()
                .unwrap()
        };
        assert!(!relayed(&zone, &bytes("api.example.com.")));
        assert!(!relayed(&zone, &bytes("API.example.com.")));
        assert!(relayed(&zone, &bytes("www.example.org.")));
        assert!(!relayed(&zone, &[0; 3]));
        let mut response = new_query(Name::from_ascii("a.b.").unwrap(), RecordType::A, false);
        response.metadata.message_type = MessageType::Response;
        assert!(!relayed(&zone, &response.to_vec().unwrap()));
    }

    #[tokio::test]
    async fn unlisted_names_are_relayed_to_a_real_resolver() {
        // A real UDP and TCP resolver on loopback, answering from its own
        // zone: what the host's resolver would be.
        let theirs =
            OutsideZone::new([("www.example.org", Ipv4Addr::new(198, 51, 100, 7))]).unwrap();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        let udp_zone = theirs.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
            let reply = handle_outside(&udp_zone, &buf[..n], true).unwrap();
            udp.send_to(&reply, peer).await.unwrap();
        });
        let tcp_task = tokio::spawn(async move {
            let (mut stream, _) = tcp.accept().await.unwrap();
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.unwrap();
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut message).await.unwrap();
            let reply = handle_outside(&theirs, &message, false).unwrap();
            let mut framed = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            stream.write_all(&framed).await.unwrap();
        });
        let query = new_query(
            Name::from_ascii("www.example.org.").unwrap(),
            RecordType::A,
            false,
        );
        let bytes = query.to_vec().unwrap();
        for reply in [relay_udp(addr, &bytes).await, relay_tcp(addr, &bytes).await] {
            let reply = Message::from_vec(&reply.unwrap()).unwrap();
            assert_eq!(reply.id, query.id);
            assert_eq!(reply.answers.len(), 1);
            assert_eq!(reply.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
        }
        udp_task.await.unwrap();
        tcp_task.await.unwrap();
    }

    #[test]
    fn outside_names_are_checked() {
        for bad in ["", ".", "localhost", "a..b", "-a.com", "a_b.com", "a b.com"] {
            assert!(outside_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            outside_name("API.Example.com.").unwrap().to_ascii(),
            "api.example.com."
        );
    }

    #[test]
    fn bytes_that_are_no_query_are_not_answered() {
        let zone = zone();
        assert_eq!(handle_outside(&zone, &[], true), None);
        assert_eq!(handle_outside(&zone, &[0; 5], true), None);
        let mut response = new_query(Name::from_ascii("a.b.").unwrap(), RecordType::A, false);
        response.metadata.message_type = MessageType::Response;
        assert_eq!(
            handle_outside(&zone, &response.to_vec().unwrap(), true),
            None
        );
        // A header and garbage after it: FORMERR.
        let mut bytes = new_query(Name::from_ascii("a.b.").unwrap(), RecordType::A, false)
            .to_vec()
            .unwrap();
        bytes.truncate(14);
        let reply = Message::from_vec(&handle_outside(&zone, &bytes, true).unwrap()).unwrap();
        assert_eq!(reply.response_code, ResponseCode::FormErr);
    }
}
