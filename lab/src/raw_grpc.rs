//! gRPC calls whose request body is any bytes, not a message: what a
//! broken or hostile client sends. The e2e suite and the fuzzers drive
//! every method of the API with them; the answer must be a status, never a
//! dropped connection.

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Every method of `podnet.v1.Api`, by path, and whether it streams its
/// answer.
pub const API_METHODS: &[(&str, bool)] = &[
    ("/podnet.v1.Api/Apply", false),
    ("/podnet.v1.Api/Create", false),
    ("/podnet.v1.Api/Update", false),
    ("/podnet.v1.Api/UpdateStatus", false),
    ("/podnet.v1.Api/Get", false),
    ("/podnet.v1.Api/List", false),
    ("/podnet.v1.Api/Delete", false),
    ("/podnet.v1.Api/Watch", true),
    ("/podnet.v1.Api/Join", false),
    ("/podnet.v1.Api/Heartbeat", false),
    ("/podnet.v1.Api/ServiceAccountCredentials", false),
    ("/podnet.v1.Api/JoinEdge", false),
    ("/podnet.v1.Api/Exec", false),
    ("/podnet.v1.Api/Evict", false),
    ("/podnet.v1.Api/Traces", false),
];

/// Bytes in, bytes out: the message encoding left to the caller.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut body = vec![0; src.remaining()];
        src.copy_to_slice(&mut body);
        Ok(Some(body))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Calls `path` with `body` as the request message. A streaming method's
/// answer is its first message (or none); the stream is dropped then.
pub async fn call(
    channel: Channel,
    path: &'static str,
    streaming: bool,
    body: Vec<u8>,
) -> Result<Option<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_static(path);
    if streaming {
        let mut stream = grpc
            .server_streaming(Request::new(body), path, RawCodec)
            .await?
            .into_inner();
        stream.message().await
    } else {
        let answer = grpc.unary(Request::new(body), path, RawCodec).await?;
        Ok(Some(answer.into_inner()))
    }
}

/// Whether `status` came from the server's handling of the call, rather
/// than being the transport's word for a call that ended without an answer
/// (a panicking handler, a dropped connection).
pub fn is_an_answer(status: &Status) -> bool {
    !matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// Request bodies no client should send, for any method: empty, random,
/// truncated, lengths beyond the body, invalid UTF-8 where a string goes,
/// nesting past any decoder's limit, every wire type on every low field
/// number, and well-formed messages whose `bytes` fields hold broken JSON.
/// The same `seed` gives the same bodies.
pub fn garbage_bodies(seed: u64) -> Vec<Vec<u8>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        // Field 1, length-delimited, claiming 2^62 bytes.
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f],
        // A length that runs past the end.
        vec![0x0a, 0x10, b'x'],
        // A varint that never ends.
        [&[0x08][..], &[0xff; 16]].concat(),
        // Invalid UTF-8 where strings go.
        vec![0x0a, 0x02, 0xff, 0xfe, 0x12, 0x02, 0xc3, 0x28],
        // 10 000 nested groups, and as many nested messages.
        [0x0b].repeat(10_000),
        std::iter::repeat_n([0x0a, 0x7f], 10_000)
            .flatten()
            .collect(),
        // Field numbers at and past the largest.
        vec![0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01],
        vec![0xfa, 0xff, 0xff, 0xff, 0x1f, 0x00],
    ];
    // Every wire type on fields 1 to 8, with a little payload.
    for field in 1u8..=8 {
        for wire in 0u8..=7 {
            bodies.push(vec![(field << 3) | wire, 0x01, 0x02, 0x03]);
        }
    }
    // Well-formed messages whose field 1 (and 2) carry JSON that is not an
    // object, not JSON, or nested deeper than any parser allows.
    let json: [&[u8]; 7] = [
        b"{",
        b"[]",
        b"null",
        b"{\"apiVersion\": 1, \"kind\": [], \"metadata\": \"x\"}",
        b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"\\ud800\"}}",
        &[0xff, 0xfe, 0xfd],
        &[b'['; 100_000],
    ];
    for doc in json {
        for field in [1u8, 2] {
            let mut body = vec![(field << 3) | 2];
            put_varint(&mut body, doc.len() as u64);
            body.extend_from_slice(doc);
            bodies.push(body);
        }
    }
    // Random bytes of every size up to 1 KiB.
    for _ in 0..64 {
        let len = rng.random_range(1..1024);
        bodies.push((0..len).map(|_| rng.random()).collect());
    }
    bodies
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
