//! The overlay wire format: the versioned header that starts every pod flow.
//!
//! A pod TCP connection is one bidirectional QUIC stream that starts with a
//! [`FlowHeader`] of kind [`FrameKind::TcpOpen`]; the receiving node answers
//! with one [`OpenStatus`] byte and then both directions carry the raw pod
//! bytes. If the receiving node drops the flow silently (network policy), it
//! closes the stream without writing a status byte. A pod UDP datagram or
//! ICMP message is one QUIC datagram: a [`FlowHeader`] followed by the
//! payload.
//!
//! An echo request carries a TTL (the hops it may still take, as IPv4's
//! field does): every node it passes through on its way is a router that
//! takes one off, and the one where it runs out answers with
//! [`FrameKind::IcmpTimeExceeded`] from its own address instead of
//! forwarding it. That is what `traceroute` measures.
//!
//! Layout, all integers big endian (IPv4 only):
//!
//! ```text
//! offset size field
//!      0    1 version        (WIRE_VERSION = 1)
//!      1    1 kind           1 TcpOpen, 2 Udp, 3 IcmpEchoRequest,
//!                            4 IcmpEchoReply, 5 IcmpPortUnreachable,
//!                            6 IcmpTimeExceeded
//!      2    1 flags          0 (no flags are defined in version 1)
//!      3    1 ttl            IcmpEchoRequest: hops left; 0 (reserved) for
//!                            every other kind
//!      4    4 src ip
//!      8    2 src port       0 for ICMP echo kinds
//!     10    4 dst ip
//!     14    2 dst port       0 for ICMP echo kinds
//!     16    8 trace id
//!     24    2 icmp id        only for the echo kinds and IcmpTimeExceeded
//!     26    2 icmp seq       only for the echo kinds and IcmpTimeExceeded
//! ```
//!
//! The decoder is total: any byte slice gives either a header or a
//! [`WireError`], never a panic, and it accepts only the canonical encoding
//! (non-zero flags, or a non-zero ttl byte on a kind without a TTL, are
//! errors), so an accepted header
//! re-encodes to exactly the bytes it was decoded from.
//!
//! This module deliberately knows nothing about QUIC, sockets or policy: it
//! only turns headers into bytes and back.

use std::net::{Ipv4Addr, SocketAddrV4};

use bytes::BufMut;

/// The version byte every header starts with. A receiver rejects any other.
pub const WIRE_VERSION: u8 = 1;

/// Length of the header common to all kinds.
pub const BASE_HEADER_LEN: usize = 24;

/// Extra bytes (ICMP id and sequence) that follow the base header for the
/// ICMP echo kinds.
pub const ICMP_ECHO_EXTRA_LEN: usize = 4;

/// The longest header of any kind; a buffer of this size always suffices.
pub const MAX_HEADER_LEN: usize = BASE_HEADER_LEN + ICMP_ECHO_EXTRA_LEN;

const KIND_TCP_OPEN: u8 = 1;
const KIND_UDP: u8 = 2;
const KIND_ICMP_ECHO_REQUEST: u8 = 3;
const KIND_ICMP_ECHO_REPLY: u8 = 4;
const KIND_ICMP_PORT_UNREACHABLE: u8 = 5;
const KIND_ICMP_TIME_EXCEEDED: u8 = 6;

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
        }
    }

    /// Encoded header length for this kind.
    pub fn header_len(&self) -> usize {
        header_len_for_code(self.code()).unwrap_or(BASE_HEADER_LEN)
    }
}

/// Header length for a kind byte, or `None` for an unknown kind.
fn header_len_for_code(code: u8) -> Option<usize> {
    match code {
        KIND_TCP_OPEN | KIND_UDP | KIND_ICMP_PORT_UNREACHABLE => Some(BASE_HEADER_LEN),
        KIND_ICMP_ECHO_REQUEST | KIND_ICMP_ECHO_REPLY | KIND_ICMP_TIME_EXCEEDED => {
            Some(MAX_HEADER_LEN)
        }
        _ => None,
    }
}

/// The header that starts every overlay flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowHeader {
    pub kind: FrameKind,
    /// Source pod address (for ICMP echo kinds the port is 0).
    pub src: SocketAddrV4,
    /// Destination pod address (for ICMP echo kinds the port is 0).
    pub dst: SocketAddrV4,
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
    #[error("unknown overlay frame kind {0} (valid kinds are 1 to 6)")]
    UnknownKind(u8),
    #[error("overlay header flags must be 0 in version {WIRE_VERSION}, got {0:#04x}")]
    NonZeroFlags(u8),
    #[error("overlay header ttl byte must be 0 on a frame kind without a TTL, got {0:#04x}")]
    NonZeroReserved(u8),
    #[error("unknown open status byte {0} (valid are 0 accepted, 1 refused)")]
    UnknownStatus(u8),
}

impl FlowHeader {
    /// Number of bytes [`FlowHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.kind.header_len()
    }

    /// Appends the encoded header to `out` (a `Vec<u8>` or `BytesMut`).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WIRE_VERSION);
        out.put_u8(self.kind.code());
        out.put_u8(0); // flags
        out.put_u8(match self.kind {
            FrameKind::IcmpEchoRequest { ttl, .. } => ttl,
            _ => 0,
        });
        out.put_slice(&self.src.ip().octets());
        out.put_u16(self.src.port());
        out.put_slice(&self.dst.ip().octets());
        out.put_u16(self.dst.port());
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
        let version = *buf.first().ok_or(truncated(BASE_HEADER_LEN))?;
        if version != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let code = *buf.get(1).ok_or(truncated(BASE_HEADER_LEN))?;
        let len = header_len_for_code(code).ok_or(WireError::UnknownKind(code))?;
        // From here on the fixed-size arrays make every index a compile-time
        // checked constant, so nothing below can panic.
        let base: &[u8; BASE_HEADER_LEN] = buf
            .get(..BASE_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(truncated(len))?;
        if buf.len() < len {
            return Err(truncated(len));
        }
        if base[2] != 0 {
            return Err(WireError::NonZeroFlags(base[2]));
        }
        if base[3] != 0 && code != KIND_ICMP_ECHO_REQUEST {
            return Err(WireError::NonZeroReserved(base[3]));
        }
        let src = SocketAddrV4::new(
            Ipv4Addr::new(base[4], base[5], base[6], base[7]),
            u16::from_be_bytes([base[8], base[9]]),
        );
        let dst = SocketAddrV4::new(
            Ipv4Addr::new(base[10], base[11], base[12], base[13]),
            u16::from_be_bytes([base[14], base[15]]),
        );
        let trace_id = u64::from_be_bytes([
            base[16], base[17], base[18], base[19], base[20], base[21], base[22], base[23],
        ]);
        let icmp = || -> Result<(u16, u16), WireError> {
            let extra: &[u8; ICMP_ECHO_EXTRA_LEN] = buf
                .get(BASE_HEADER_LEN..MAX_HEADER_LEN)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated(MAX_HEADER_LEN))?;
            Ok((
                u16::from_be_bytes([extra[0], extra[1]]),
                u16::from_be_bytes([extra[2], extra[3]]),
            ))
        };
        let kind = match code {
            KIND_TCP_OPEN => FrameKind::TcpOpen,
            KIND_UDP => FrameKind::Udp,
            KIND_ICMP_PORT_UNREACHABLE => FrameKind::IcmpPortUnreachable,
            KIND_ICMP_ECHO_REQUEST => {
                let (id, seq) = icmp()?;
                FrameKind::IcmpEchoRequest {
                    id,
                    seq,
                    ttl: base[3],
                }
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

/// The receiving node's answer to a [`FrameKind::TcpOpen`]: one byte written
/// on the stream right after the header arrived.
///
/// There is no "dropped" status on purpose: a flow denied by policy gets no
/// answer at all (the stream is closed), so the client times out as it would
/// on a real network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpenStatus {
    /// A pod socket listens on the destination port; pod bytes follow.
    Accepted = 0,
    /// Nothing listens on the destination port (TCP RST).
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

    fn header(kind: FrameKind) -> FlowHeader {
        let ports = !matches!(
            kind,
            FrameKind::IcmpEchoRequest { .. }
                | FrameKind::IcmpEchoReply { .. }
                | FrameKind::IcmpTimeExceeded { .. }
        );
        FlowHeader {
            kind,
            src: SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 7), if ports { 40_000 } else { 0 }),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 9), if ports { 8080 } else { 0 }),
            trace_id: 0x0102_0304_0506_0708,
        }
    }

    fn all_kinds() -> Vec<FrameKind> {
        vec![
            FrameKind::TcpOpen,
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
            1, 2, 0, 0,
            10, 244, 1, 7, 0x9c, 0x40,
            10, 244, 2, 9, 0x1f, 0x90,
            1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trip_of_every_kind_with_payload() {
        for kind in all_kinds() {
            let h = header(kind);
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
        for kind in all_kinds() {
            let bytes = header(kind).to_bytes();
            for cut in 0..bytes.len() {
                let needed = if cut < 2 {
                    BASE_HEADER_LEN
                } else {
                    kind.header_len()
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
        check(&with(0, 2), Err(WireError::UnsupportedVersion(2)));
        // A future version is reported as such even if it is one byte long.
        check(&[7], Err(WireError::UnsupportedVersion(7)));
        check(&with(1, 0), Err(WireError::UnknownKind(0)));
        check(&with(1, 7), Err(WireError::UnknownKind(7)));
        check(&with(1, 255), Err(WireError::UnknownKind(255)));
        check(&[1, 9], Err(WireError::UnknownKind(9)));
        check(&with(2, 0x80), Err(WireError::NonZeroFlags(0x80)));
        check(&with(3, 1), Err(WireError::NonZeroReserved(1)));
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
            WireError::UnsupportedVersion(2).to_string(),
            "unsupported overlay wire version 2 (this node speaks version 1)"
        );
    }

    fn any_kind() -> impl Strategy<Value = FrameKind> {
        prop_oneof![
            Just(FrameKind::TcpOpen),
            Just(FrameKind::Udp),
            Just(FrameKind::IcmpPortUnreachable),
            (any::<u16>(), any::<u16>(), any::<u8>())
                .prop_map(|(id, seq, ttl)| FrameKind::IcmpEchoRequest { id, seq, ttl }),
            (any::<u16>(), any::<u16>()).prop_map(|(id, seq)| FrameKind::IcmpEchoReply { id, seq }),
            (any::<u16>(), any::<u16>())
                .prop_map(|(id, seq)| FrameKind::IcmpTimeExceeded { id, seq }),
        ]
    }

    fn any_header() -> impl Strategy<Value = FlowHeader> {
        (
            any_kind(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u64>(),
        )
            .prop_map(|(kind, sip, sport, dip, dport, trace_id)| FlowHeader {
                kind,
                src: SocketAddrV4::new(sip.into(), sport),
                dst: SocketAddrV4::new(dip.into(), dport),
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

        #[test]
        fn encode_then_decode_is_identity(h in any_header(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut bytes = h.to_bytes();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(FlowHeader::decode(&bytes), Ok((h, h.encoded_len())));
        }
    }
}
