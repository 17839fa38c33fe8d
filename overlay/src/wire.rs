//! The overlay wire format: the versioned header that starts every pod flow.
//!
//! A pod TCP connection is one bidirectional QUIC stream that starts with a
//! [`FlowHeader`] of kind [`FrameKind::TcpOpen`]; the receiving node answers
//! with one [`OpenStatus`] byte and then both directions carry the raw pod
//! bytes. If the receiving node drops the flow silently (network policy), it
//! closes the stream without writing a status byte. A pod SCTP association
//! is carried the same way, its stream starting with a
//! [`FrameKind::SctpOpen`] header, so the receiving node looks for an SCTP
//! listener (and judges policy as SCTP): podnet emulates an association as
//! one ordered reliable stream, and a refused one (nothing listens, SCTP's
//! ABORT) is [`OpenStatus::Refused`] as for TCP. A pod UDP datagram or
//! ICMP message is one QUIC datagram: a [`FlowHeader`] followed by the
//! payload.
//!
//! An echo request carries a TTL (the hops it may still take, as IPv4's
//! field does): every node it passes through on its way is a router that
//! takes one off, and the one where it runs out answers with
//! [`FrameKind::IcmpTimeExceeded`] from its own address instead of
//! forwarding it. That is what `traceroute` measures.
//!
//! Layout, all integers big endian; `A` is the address length of the
//! family (4 for IPv4, 16 for IPv6):
//!
//! ```text
//! offset   size field
//!      0      1 version        (WIRE_VERSION = 2)
//!      1      1 kind           1 TcpOpen, 2 Udp, 3 IcmpEchoRequest,
//!                              4 IcmpEchoReply, 5 IcmpPortUnreachable,
//!                              6 IcmpTimeExceeded, 7 SctpOpen
//!      2      1 family         4 IPv4, 6 IPv6: both addresses are of it
//!      3      1 ttl            IcmpEchoRequest: hops left; 0 (reserved) for
//!                              every other kind
//!      4      A src ip
//!    4+A      2 src port       0 for ICMP echo kinds
//!    6+A      A dst ip
//!   6+2A      2 dst port       0 for ICMP echo kinds
//!   8+2A      8 trace id
//!  16+2A      2 icmp id        only for the echo kinds and IcmpTimeExceeded
//!  18+2A      2 icmp seq       only for the echo kinds and IcmpTimeExceeded
//! ```
//!
//! An IPv4 header is 24 bytes (28 for the echo kinds), an IPv6 one 48
//! (52). Version 1 had no family (byte 2 was flags, always 0, and both
//! addresses IPv4); it is refused as an unsupported version.
//!
//! Versioning: the version changes when the layout of a kind that exists
//! changes. A new kind laid out as an existing one (SctpOpen is TcpOpen's
//! layout) is added under the same version: a node that does not know it
//! refuses it as an unknown kind (it resets the stream without a status
//! byte, so the opener's connect fails), and every kind it knows it still
//! reads.
//!
//! The decoder is total: any byte slice gives either a header or a
//! [`WireError`], never a panic, and it accepts only the canonical encoding
//! (a family other than 4 or 6, or a non-zero ttl byte on a kind without a
//! TTL, are errors), so an accepted header re-encodes to exactly the bytes
//! it was decoded from. A header whose source and destination are of
//! different families (which no flow has) is encoded as IPv6, its IPv4
//! address mapped (`::ffff:a.b.c.d`).
//!
//! This module deliberately knows nothing about QUIC, sockets or policy: it
//! only turns headers into bytes and back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bytes::BufMut;

/// The version byte every header starts with. A receiver rejects any other.
pub const WIRE_VERSION: u8 = 2;

/// The bytes every header starts with (version, kind, family, ttl): enough
/// to know the header's length ([`header_len`]).
pub const PREFIX_LEN: usize = 4;

/// Length of the header common to all kinds, for IPv4.
pub const BASE_HEADER_LEN: usize = 24;

/// Length of the header common to all kinds, for IPv6.
pub const BASE_HEADER_LEN_V6: usize = BASE_HEADER_LEN + 2 * 12;

/// Extra bytes (ICMP id and sequence) that follow the base header for the
/// ICMP echo kinds.
pub const ICMP_ECHO_EXTRA_LEN: usize = 4;

/// The longest header of any kind and family; a buffer of this size always
/// suffices.
pub const MAX_HEADER_LEN: usize = BASE_HEADER_LEN_V6 + ICMP_ECHO_EXTRA_LEN;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

const KIND_TCP_OPEN: u8 = 1;
const KIND_UDP: u8 = 2;
const KIND_ICMP_ECHO_REQUEST: u8 = 3;
const KIND_ICMP_ECHO_REPLY: u8 = 4;
const KIND_ICMP_PORT_UNREACHABLE: u8 = 5;
const KIND_ICMP_TIME_EXCEEDED: u8 = 6;
const KIND_SCTP_OPEN: u8 = 7;

/// What a flow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Opens a pod TCP connection; sent once at the start of a QUIC stream.
    TcpOpen,
    /// One pod UDP datagram; the payload follows the header in the same QUIC
    /// datagram.
    Udp,
    /// ICMP echo request (ping); ports are 0, the payload is the echo data.
    /// `ttl` is the number of routers it may still pass (see the module
    /// doc).
    IcmpEchoRequest { id: u16, seq: u16, ttl: u8 },
    /// ICMP echo reply; ports are 0, the payload is the echo data.
    IcmpEchoReply { id: u16, seq: u16 },
    /// Sent back to the origin node when a UDP datagram reached a pod port
    /// with no socket. `src` and `dst` are those of the undelivered datagram,
    /// unchanged (not swapped), so the origin finds the sending socket by
    /// `src`.
    IcmpPortUnreachable,
    /// Sent back to the origin of an echo request whose TTL ran out at a
    /// node: `src` is the address of the node that dropped it (port 0),
    /// `dst` the request's source, `id` and `seq` the request's.
    IcmpTimeExceeded { id: u16, seq: u16 },
    /// Opens a pod SCTP association; sent once at the start of a QUIC
    /// stream, as [`FrameKind::TcpOpen`] is, and answered the same way.
    SctpOpen,
}

impl FrameKind {
    /// The kind byte on the wire.
    pub fn code(&self) -> u8 {
        match self {
            FrameKind::TcpOpen => KIND_TCP_OPEN,
            FrameKind::Udp => KIND_UDP,
            FrameKind::IcmpEchoRequest { .. } => KIND_ICMP_ECHO_REQUEST,
            FrameKind::IcmpEchoReply { .. } => KIND_ICMP_ECHO_REPLY,
            FrameKind::IcmpPortUnreachable => KIND_ICMP_PORT_UNREACHABLE,
            FrameKind::IcmpTimeExceeded { .. } => KIND_ICMP_TIME_EXCEEDED,
            FrameKind::SctpOpen => KIND_SCTP_OPEN,
        }
    }

    /// Does this kind open a stream flow (a QUIC stream answered with an
    /// [`OpenStatus`]), rather than travel as a datagram?
    pub fn opens_stream(&self) -> bool {
        matches!(self, FrameKind::TcpOpen | FrameKind::SctpOpen)
    }

    /// Encoded length of an IPv4 header of this kind.
    pub fn header_len(&self) -> usize {
        self.extra_len() + BASE_HEADER_LEN
    }

    /// Bytes this kind adds to the base header.
    fn extra_len(&self) -> usize {
        extra_len_for_code(self.code()).unwrap_or(0)
    }
}

/// Bytes a kind adds to the base header, or `None` for an unknown kind.
fn extra_len_for_code(code: u8) -> Option<usize> {
    match code {
        KIND_TCP_OPEN | KIND_UDP | KIND_ICMP_PORT_UNREACHABLE | KIND_SCTP_OPEN => Some(0),
        KIND_ICMP_ECHO_REQUEST | KIND_ICMP_ECHO_REPLY | KIND_ICMP_TIME_EXCEEDED => {
            Some(ICMP_ECHO_EXTRA_LEN)
        }
        _ => None,
    }
}

/// The base header length of a family byte, or `None` for an unknown one.
fn base_len_for_family(family: u8) -> Option<usize> {
    match family {
        FAMILY_V4 => Some(BASE_HEADER_LEN),
        FAMILY_V6 => Some(BASE_HEADER_LEN_V6),
        _ => None,
    }
}

/// The whole header's length from its first bytes (at least
/// [`PREFIX_LEN`]): what a reader of a stream reads next. Checks the
/// version, kind and family as [`FlowHeader::decode`] does.
pub fn header_len(prefix: &[u8]) -> Result<usize, WireError> {
    let truncated = WireError::Truncated {
        needed: PREFIX_LEN,
        got: prefix.len(),
    };
    let version = *prefix.first().ok_or(truncated.clone())?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let code = *prefix.get(1).ok_or(truncated.clone())?;
    let extra = extra_len_for_code(code).ok_or(WireError::UnknownKind(code))?;
    let family = *prefix.get(2).ok_or(truncated)?;
    let base = base_len_for_family(family).ok_or(WireError::UnknownFamily(family))?;
    Ok(base + extra)
}

/// The header that starts every overlay flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowHeader {
    pub kind: FrameKind,
    /// Source pod address (for ICMP echo kinds the port is 0).
    pub src: SocketAddr,
    /// Destination pod address (for ICMP echo kinds the port is 0), of the
    /// source's family.
    pub dst: SocketAddr,
    /// Trace id given to the flow at its first hop.
    pub trace_id: u64,
}

/// Why a byte slice is not a valid flow header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("overlay header truncated: needed {needed} bytes, got {got}")]
    Truncated { needed: usize, got: usize },
    #[error("unsupported overlay wire version {0} (this node speaks version {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown overlay frame kind {0} (valid kinds are 1 to 7)")]
    UnknownKind(u8),
    #[error("unknown overlay address family {0} (valid are 4 IPv4 and 6 IPv6)")]
    UnknownFamily(u8),
    #[error("overlay header ttl byte must be 0 on a frame kind without a TTL, got {0:#04x}")]
    NonZeroReserved(u8),
    #[error("unknown open status byte {0} (valid are 0 accepted, 1 refused)")]
    UnknownStatus(u8),
}

impl FlowHeader {
    /// A header between two addresses of the same family.
    pub fn new(kind: FrameKind, src: SocketAddr, dst: SocketAddr, trace_id: u64) -> FlowHeader {
        FlowHeader {
            kind,
            src,
            dst,
            trace_id,
        }
    }

    /// Whether the header is encoded as IPv4: both addresses are.
    fn is_v4(&self) -> bool {
        self.src.is_ipv4() && self.dst.is_ipv4()
    }

    /// Number of bytes [`FlowHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let base = if self.is_v4() {
            BASE_HEADER_LEN
        } else {
            BASE_HEADER_LEN_V6
        };
        base + self.kind.extra_len()
    }

    /// Appends the encoded header to `out` (a `Vec<u8>` or `BytesMut`).
    pub fn encode(&self, out: &mut impl BufMut) {
        let v4 = self.is_v4();
        out.put_u8(WIRE_VERSION);
        out.put_u8(self.kind.code());
        out.put_u8(if v4 { FAMILY_V4 } else { FAMILY_V6 });
        out.put_u8(match self.kind {
            FrameKind::IcmpEchoRequest { ttl, .. } => ttl,
            _ => 0,
        });
        let mut put = |addr: SocketAddr| {
            match (v4, addr.ip()) {
                (true, IpAddr::V4(ip)) => out.put_slice(&ip.octets()),
                (_, IpAddr::V4(ip)) => out.put_slice(&ip.to_ipv6_mapped().octets()),
                (_, IpAddr::V6(ip)) => out.put_slice(&ip.octets()),
            }
            out.put_u16(addr.port());
        };
        put(self.src);
        put(self.dst);
        out.put_u64(self.trace_id);
        if let FrameKind::IcmpEchoRequest { id, seq, .. }
        | FrameKind::IcmpEchoReply { id, seq }
        | FrameKind::IcmpTimeExceeded { id, seq } = self.kind
        {
            out.put_u16(id);
            out.put_u16(seq);
        }
    }

    /// The encoded header as a fresh vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Decodes a header from the start of `buf` and returns it with the
    /// number of bytes it took; the payload (if any) is `&buf[len..]`.
    ///
    /// The version and kind are checked before the length so that a header
    /// of another version is reported as such even when it is shorter.
    pub fn decode(buf: &[u8]) -> Result<(FlowHeader, usize), WireError> {
        let truncated = |needed| WireError::Truncated {
            needed,
            got: buf.len(),
        };
        let len = header_len(buf).map_err(|e| match e {
            WireError::Truncated { .. } => truncated(BASE_HEADER_LEN),
            other => other,
        })?;
        let &[_, code, family, ttl] = buf
            .get(..PREFIX_LEN)
            .and_then(|b| <&[u8; PREFIX_LEN]>::try_from(b).ok())
            .ok_or(truncated(len))?;
        if buf.len() < len {
            return Err(truncated(len));
        }
        if ttl != 0 && code != KIND_ICMP_ECHO_REQUEST {
            return Err(WireError::NonZeroReserved(ttl));
        }
        // From here on the fixed-size arrays make every index a compile-time
        // checked constant, so nothing below can panic.
        let (src, dst, rest) = if family == FAMILY_V4 {
            let base: &[u8; BASE_HEADER_LEN] = buf
                .get(..BASE_HEADER_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated(len))?;
            let src = SocketAddrV4::new(
                Ipv4Addr::new(base[4], base[5], base[6], base[7]),
                u16::from_be_bytes([base[8], base[9]]),
            );
            let dst = SocketAddrV4::new(
                Ipv4Addr::new(base[10], base[11], base[12], base[13]),
                u16::from_be_bytes([base[14], base[15]]),
            );
            (SocketAddr::V4(src), SocketAddr::V4(dst), BASE_HEADER_LEN)
        } else {
            let base: &[u8; BASE_HEADER_LEN_V6] = buf
                .get(..BASE_HEADER_LEN_V6)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated(len))?;
            let ip = |at: usize| -> Ipv6Addr {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(base.get(at..at + 16).unwrap_or(&[0; 16]));
                Ipv6Addr::from(octets)
            };
            let src = SocketAddrV6::new(ip(4), u16::from_be_bytes([base[20], base[21]]), 0, 0);
            let dst = SocketAddrV6::new(ip(22), u16::from_be_bytes([base[38], base[39]]), 0, 0);
            (SocketAddr::V6(src), SocketAddr::V6(dst), BASE_HEADER_LEN_V6)
        };
        let trace: &[u8; 8] = buf
            .get(rest - 8..rest)
            .and_then(|b| b.try_into().ok())
            .ok_or(truncated(len))?;
        let trace_id = u64::from_be_bytes(*trace);
        let icmp = || -> Result<(u16, u16), WireError> {
            let extra: &[u8; ICMP_ECHO_EXTRA_LEN] = buf
                .get(rest..rest + ICMP_ECHO_EXTRA_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated(len))?;
            Ok((
                u16::from_be_bytes([extra[0], extra[1]]),
                u16::from_be_bytes([extra[2], extra[3]]),
            ))
        };
        let kind = match code {
            KIND_TCP_OPEN => FrameKind::TcpOpen,
            KIND_SCTP_OPEN => FrameKind::SctpOpen,
            KIND_UDP => FrameKind::Udp,
            KIND_ICMP_PORT_UNREACHABLE => FrameKind::IcmpPortUnreachable,
            KIND_ICMP_ECHO_REQUEST => {
                let (id, seq) = icmp()?;
                FrameKind::IcmpEchoRequest { id, seq, ttl }
            }
            KIND_ICMP_ECHO_REPLY => {
                let (id, seq) = icmp()?;
                FrameKind::IcmpEchoReply { id, seq }
            }
            KIND_ICMP_TIME_EXCEEDED => {
                let (id, seq) = icmp()?;
                FrameKind::IcmpTimeExceeded { id, seq }
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        let header = FlowHeader {
            kind,
            src,
            dst,
            trace_id,
        };
        Ok((header, len))
    }
}

/// The receiving node's answer to a [`FrameKind::TcpOpen`] or
/// [`FrameKind::SctpOpen`]: one byte written on the stream right after the
/// header arrived.
///
/// There is no "dropped" status on purpose: a flow denied by policy gets no
/// answer at all (the stream is closed), so the client times out as it would
/// on a real network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpenStatus {
    /// A pod socket listens on the destination port; pod bytes follow.
    Accepted = 0,
    /// Nothing listens on the destination port (TCP RST, SCTP ABORT).
    Refused = 1,
}

impl OpenStatus {
    /// Encoded length of a status.
    pub const LEN: usize = 1;

    /// The status byte on the wire.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses a status byte.
    pub fn from_byte(byte: u8) -> Result<OpenStatus, WireError> {
        match byte {
            0 => Ok(OpenStatus::Accepted),
            1 => Ok(OpenStatus::Refused),
            other => Err(WireError::UnknownStatus(other)),
        }
    }

    /// Appends the status byte to `out`.
    pub fn encode(self, out: &mut impl BufMut) {
        out.put_u8(self.to_byte());
    }

    /// Decodes the status from the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<OpenStatus, WireError> {
        let byte = *buf.first().ok_or(WireError::Truncated {
            needed: OpenStatus::LEN,
            got: 0,
        })?;
        OpenStatus::from_byte(byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn has_ports(kind: FrameKind) -> bool {
        !matches!(
            kind,
            FrameKind::IcmpEchoRequest { .. }
                | FrameKind::IcmpEchoReply { .. }
                | FrameKind::IcmpTimeExceeded { .. }
        )
    }

    fn header(kind: FrameKind) -> FlowHeader {
        let ports = has_ports(kind);
        FlowHeader {
            kind,
            src: SocketAddr::from((Ipv4Addr::new(10, 244, 1, 7), if ports { 40_000 } else { 0 })),
            dst: SocketAddr::from((Ipv4Addr::new(10, 244, 2, 9), if ports { 8080 } else { 0 })),
            trace_id: 0x0102_0304_0506_0708,
        }
    }

    fn header_v6(kind: FrameKind) -> FlowHeader {
        let ports = has_ports(kind);
        let ip = |last| Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, last);
        FlowHeader {
            kind,
            src: SocketAddr::from((ip(7), if ports { 40_000 } else { 0 })),
            dst: SocketAddr::from((ip(0x109), if ports { 8080 } else { 0 })),
            trace_id: 0x0102_0304_0506_0708,
        }
    }

    fn all_kinds() -> Vec<FrameKind> {
        vec![
            FrameKind::TcpOpen,
            FrameKind::SctpOpen,
            FrameKind::Udp,
            FrameKind::IcmpEchoRequest {
                id: 0xbeef,
                seq: 1,
                ttl: 64,
            },
            FrameKind::IcmpEchoRequest {
                id: 1,
                seq: 2,
                ttl: 0,
            },
            FrameKind::IcmpEchoReply {
                id: 0xbeef,
                seq: 65_535,
            },
            FrameKind::IcmpPortUnreachable,
            FrameKind::IcmpTimeExceeded { id: 7, seq: 3 },
        ]
    }

    /// Decodes `input` and compares the outcome with `expected`.
    fn check(input: &[u8], expected: Result<(FlowHeader, usize), WireError>) {
        assert_eq!(FlowHeader::decode(input), expected, "input {input:02x?}");
    }

    #[test]
    fn exact_bytes_of_a_udp_header() {
        let bytes = header(FrameKind::Udp).to_bytes();
        #[rustfmt::skip]
        let expected = [
            2, 2, 4, 0,
            10, 244, 1, 7, 0x9c, 0x40,
            10, 244, 2, 9, 0x1f, 0x90,
            1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(bytes, expected);
    }

    /// An SCTP open is a TCP open with its own kind byte: same length,
    /// same fields, so the receiver tells them apart by byte 1 alone.
    #[test]
    fn exact_bytes_of_an_sctp_open() {
        let bytes = header(FrameKind::SctpOpen).to_bytes();
        #[rustfmt::skip]
        let expected = [
            2, 7, 4, 0,
            10, 244, 1, 7, 0x9c, 0x40,
            10, 244, 2, 9, 0x1f, 0x90,
            1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(header_len(&bytes[..PREFIX_LEN]), Ok(24));
        let mut tcp = header(FrameKind::TcpOpen).to_bytes();
        tcp[1] = 7;
        assert_eq!(tcp, bytes);
        let v6 = header_v6(FrameKind::SctpOpen).to_bytes();
        assert_eq!((v6[1], v6.len()), (7, 48));
    }

    #[test]
    fn stream_kinds_are_the_two_opens() {
        let streams: Vec<FrameKind> = all_kinds()
            .into_iter()
            .filter(FrameKind::opens_stream)
            .collect();
        assert_eq!(streams, [FrameKind::TcpOpen, FrameKind::SctpOpen]);
    }

    #[test]
    fn exact_bytes_of_an_ipv6_echo_request() {
        let bytes = header_v6(FrameKind::IcmpEchoRequest {
            id: 0xbeef,
            seq: 3,
            ttl: 64,
        })
        .to_bytes();
        #[rustfmt::skip]
        let expected = [
            2, 3, 6, 64,
            0xfd, 0, 0, 0x10, 0x02, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0,
            0xfd, 0, 0, 0x10, 0x02, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0x01, 0x09, 0, 0,
            1, 2, 3, 4, 5, 6, 7, 8,
            0xbe, 0xef, 0, 3,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 52);
        assert_eq!(header_len(&bytes[..PREFIX_LEN]), Ok(52));
    }

    #[test]
    fn mixed_families_are_encoded_as_ipv6_with_the_ipv4_address_mapped() {
        let mut h = header_v6(FrameKind::Udp);
        h.src = SocketAddr::from((Ipv4Addr::new(10, 244, 1, 7), 53));
        let (decoded, len) = FlowHeader::decode(&h.to_bytes()).expect("decodes");
        assert_eq!(len, BASE_HEADER_LEN_V6);
        assert_eq!(
            decoded.src,
            SocketAddr::from((Ipv4Addr::new(10, 244, 1, 7).to_ipv6_mapped(), 53))
        );
        assert_eq!(decoded.dst, h.dst);
    }

    #[test]
    fn round_trip_of_every_kind_with_payload() {
        for h in all_kinds()
            .into_iter()
            .flat_map(|kind| [header(kind), header_v6(kind)])
        {
            let mut buf = Vec::new();
            h.encode(&mut buf);
            assert_eq!(buf.len(), h.encoded_len());
            buf.extend_from_slice(b"payload");
            check(&buf, Ok((h, h.encoded_len())));
            assert_eq!(&buf[h.encoded_len()..], b"payload");
        }
    }

    #[test]
    fn header_lengths() {
        assert_eq!(FrameKind::TcpOpen.header_len(), 24);
        assert_eq!(FrameKind::SctpOpen.header_len(), 24);
        assert_eq!(FrameKind::Udp.header_len(), 24);
        assert_eq!(FrameKind::IcmpPortUnreachable.header_len(), 24);
        assert_eq!(
            FrameKind::IcmpEchoRequest {
                id: 1,
                seq: 2,
                ttl: 1
            }
            .header_len(),
            28
        );
        assert_eq!(FrameKind::IcmpEchoReply { id: 1, seq: 2 }.header_len(), 28);
        assert_eq!(
            FrameKind::IcmpTimeExceeded { id: 1, seq: 2 }.header_len(),
            28
        );
    }

    #[test]
    fn every_truncation_is_truncated() {
        for h in all_kinds()
            .into_iter()
            .flat_map(|kind| [header(kind), header_v6(kind)])
        {
            let bytes = h.to_bytes();
            for cut in 0..bytes.len() {
                // Until the family byte is read only the IPv4 length is known.
                let needed = if cut < 3 {
                    BASE_HEADER_LEN
                } else {
                    h.encoded_len()
                };
                check(
                    &bytes[..cut],
                    Err(WireError::Truncated { needed, got: cut }),
                );
            }
        }
    }

    #[test]
    fn malformed_headers() {
        let good = header(FrameKind::TcpOpen).to_bytes();
        let with = |at: usize, value: u8| {
            let mut b = good.clone();
            b[at] = value;
            b
        };
        check(&with(0, 0), Err(WireError::UnsupportedVersion(0)));
        check(&with(0, 1), Err(WireError::UnsupportedVersion(1)));
        check(&with(0, 3), Err(WireError::UnsupportedVersion(3)));
        // A future version is reported as such even if it is one byte long.
        check(&[7], Err(WireError::UnsupportedVersion(7)));
        check(&with(1, 0), Err(WireError::UnknownKind(0)));
        check(&with(1, 8), Err(WireError::UnknownKind(8)));
        check(&with(1, 255), Err(WireError::UnknownKind(255)));
        check(&[2, 9], Err(WireError::UnknownKind(9)));
        check(&with(2, 0), Err(WireError::UnknownFamily(0)));
        check(&with(2, 0x80), Err(WireError::UnknownFamily(0x80)));
        check(&[2, 1, 5], Err(WireError::UnknownFamily(5)));
        check(&with(3, 1), Err(WireError::NonZeroReserved(1)));
        let mut sctp = header(FrameKind::SctpOpen).to_bytes();
        sctp[3] = 64;
        check(&sctp, Err(WireError::NonZeroReserved(64)));
        // The ttl byte is meaningful only on an echo request.
        let mut reply = header(FrameKind::IcmpEchoReply { id: 1, seq: 1 }).to_bytes();
        reply[3] = 1;
        check(&reply, Err(WireError::NonZeroReserved(1)));
    }

    #[test]
    fn open_status() {
        for status in [OpenStatus::Accepted, OpenStatus::Refused] {
            let mut buf = Vec::new();
            status.encode(&mut buf);
            assert_eq!(buf.len(), OpenStatus::LEN);
            assert_eq!(OpenStatus::decode(&buf), Ok(status));
        }
        assert_eq!(OpenStatus::Accepted.to_byte(), 0);
        assert_eq!(OpenStatus::Refused.to_byte(), 1);
        assert_eq!(
            OpenStatus::decode(&[]),
            Err(WireError::Truncated { needed: 1, got: 0 })
        );
        assert_eq!(OpenStatus::decode(&[2]), Err(WireError::UnknownStatus(2)));
    }

    #[test]
    fn error_messages_say_what_was_wrong() {
        assert_eq!(
            WireError::Truncated { needed: 24, got: 3 }.to_string(),
            "overlay header truncated: needed 24 bytes, got 3"
        );
        assert_eq!(
            WireError::UnsupportedVersion(1).to_string(),
            "unsupported overlay wire version 1 (this node speaks version 2)"
        );
    }

    fn any_kind() -> impl Strategy<Value = FrameKind> {
        prop_oneof![
            Just(FrameKind::TcpOpen),
            Just(FrameKind::SctpOpen),
            Just(FrameKind::Udp),
            Just(FrameKind::IcmpPortUnreachable),
            (any::<u16>(), any::<u16>(), any::<u8>())
                .prop_map(|(id, seq, ttl)| FrameKind::IcmpEchoRequest { id, seq, ttl }),
            (any::<u16>(), any::<u16>()).prop_map(|(id, seq)| FrameKind::IcmpEchoReply { id, seq }),
            (any::<u16>(), any::<u16>())
                .prop_map(|(id, seq)| FrameKind::IcmpTimeExceeded { id, seq }),
        ]
    }

    /// A pair of addresses of one family.
    fn any_addrs() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (
                IpAddr::from(Ipv4Addr::from(s)),
                IpAddr::from(Ipv4Addr::from(d))
            )),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| (
                IpAddr::from(Ipv6Addr::from(s)),
                IpAddr::from(Ipv6Addr::from(d))
            )),
        ]
    }

    fn any_header() -> impl Strategy<Value = FlowHeader> {
        (
            any_kind(),
            any_addrs(),
            any::<u16>(),
            any::<u16>(),
            any::<u64>(),
        )
            .prop_map(|(kind, (sip, dip), sport, dport, trace_id)| FlowHeader {
                kind,
                src: SocketAddr::new(sip, sport),
                dst: SocketAddr::new(dip, dport),
                trace_id,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn decode_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((h, len)) = FlowHeader::decode(&bytes) {
                prop_assert_eq!(len, h.encoded_len());
                prop_assert_eq!(h.to_bytes(), &bytes[..len]);
            }
        }

        // Arbitrary bytes rarely start with a valid version and kind, so also
        // mutate one byte of valid headers to explore near-valid inputs.
        #[test]
        fn decode_of_mutated_headers_is_canonical(
            h in any_header(),
            at in 0..MAX_HEADER_LEN,
            value in any::<u8>(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = h.to_bytes();
            bytes.extend_from_slice(&tail);
            if let Some(b) = bytes.get_mut(at) {
                *b = value;
            }
            if let Ok((d, len)) = FlowHeader::decode(&bytes) {
                prop_assert_eq!(d.to_bytes(), &bytes[..len]);
            }
        }

        // The kind byte alone tells a stream's protocol: the same flow as
        // TCP and as SCTP decodes to each kind, everything else equal.
        #[test]
        fn tcp_and_sctp_opens_differ_only_in_the_kind(h in any_header()) {
            let tcp = FlowHeader { kind: FrameKind::TcpOpen, ..h };
            let sctp = FlowHeader { kind: FrameKind::SctpOpen, ..h };
            let (tcp_bytes, sctp_bytes) = (tcp.to_bytes(), sctp.to_bytes());
            prop_assert_eq!(tcp_bytes.len(), sctp_bytes.len());
            let differing: Vec<usize> = (0..tcp_bytes.len())
                .filter(|&i| tcp_bytes[i] != sctp_bytes[i])
                .collect();
            prop_assert_eq!(differing, vec![1]);
            prop_assert_eq!(FlowHeader::decode(&sctp_bytes), Ok((sctp, sctp_bytes.len())));
        }

        #[test]
        fn encode_then_decode_is_identity(h in any_header(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut bytes = h.to_bytes();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(FlowHeader::decode(&bytes), Ok((h, h.encoded_len())));
        }
    }
}
