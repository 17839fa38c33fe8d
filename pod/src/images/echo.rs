//! `podnet/tcp-echo` and `podnet/udp-echo`: send back what arrives.
//!
//! TCP echoes each connection's bytes until the client closes its side,
//! then closes too. UDP echoes each datagram to its sender as one datagram.
//! Neither transforms, delays or logs the payload (per-packet logging would
//! cost more than the echo itself).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::container::WorkloadError;
use crate::netns::{PodListener, PodStream, PodUdpSocket};
use podnet_proto::model::view::Protocol;

/// Bytes read per `read` call of one TCP connection.
const TCP_BUF: usize = 16 * 1024;

pub(super) async fn serve_tcp(
    listeners: Vec<PodListener>,
    cancel: CancellationToken,
) -> Result<(), WorkloadError> {
    super::accept_loops(
        "tcp-echo",
        listeners,
        cancel,
        |stream, _peer, cancel| async move {
            tokio::select! {
                result = echo_stream(stream) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "tcp-echo connection ended with an error");
                    }
                }
                () = cancel.cancelled() => {}
            }
        },
    )
    .await
}

async fn echo_stream(mut stream: PodStream) -> io::Result<()> {
    let mut buf = vec![0; TCP_BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            // The client half-closed: everything it sent has been echoed.
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

pub(super) async fn serve_udp(
    sockets: Vec<PodUdpSocket>,
    cancel: CancellationToken,
) -> Result<(), WorkloadError> {
    // Sockets need no per-peer state, so they are served inside this future
    // instead of as spawned tasks.
    let served = futures::future::try_join_all(sockets.into_iter().map(|socket| {
        let port = socket.local_port();
        echo_datagrams(socket).instrument(tracing::debug_span!("udp-echo", port))
    }));
    tokio::select! {
        result = served => result.map(|_| ()),
        () = cancel.cancelled() => Ok(()),
    }
}

async fn echo_datagrams(socket: PodUdpSocket) -> Result<(), WorkloadError> {
    let port = socket.local_port();
    loop {
        match socket.recv_from().await {
            Ok((payload, from)) => {
                if let Err(error) = socket.send_to(&payload, from).await {
                    tracing::debug!(%error, %from, "udp-echo reply not sent");
                }
            }
            // An earlier reply came back port-unreachable: that client has
            // gone, which is no reason for the server to stop.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(source) => {
                return Err(WorkloadError::Serve {
                    port,
                    protocol: Protocol::Udp,
                    source,
                });
            }
        }
    }
}
