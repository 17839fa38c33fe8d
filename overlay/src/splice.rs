//! Joining two byte streams the way a TCP proxy in the kernel would, with
//! the two ways out a stuck connection needs.
//!
//! podnet multiplexes many pod connections on one QUIC connection, where a
//! kernel gives each its own socket buffers; so a flow whose reader has
//! stopped must not stay forever, holding its stream's window and the
//! process at the other end. [`splice`] ends a flow *aborted* (the caller
//! resets both sides, as a TCP RST) when:
//!
//! - one side reset it: a read failed with an error rather than an end of
//!   stream, as a RST ends both directions of a TCP connection;
//! - its far side is gone: one direction failed to write (the peer will
//!   not read any more), and the other direction then makes no progress
//!   for [`GONE_STALL`] (its writer is a process blocked on the direction
//!   nobody reads now, the deadlock a half-dead proxied connection makes);
//! - a reader stopped reading: bytes have waited for their writer for
//!   [`STALL_TIMEOUT`] (nginx's `send_timeout`: "if the client does not
//!   receive anything within this time, the connection is closed").
//!
//! It does not decide what resetting means for a given stream type (a QUIC
//! stream is reset and stopped, a TCP socket closed with zero linger):
//! callers do, from [`Spliced::aborted`].

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes read ahead of the writer, per direction.
const BUFFER: usize = 16 * 1024;

/// How long bytes may wait for a writer that takes none before the flow is
/// aborted: nginx's `send_timeout` default.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the direction that is left may make no progress once the
/// other one found its peer gone (a write failed), before the flow is
/// aborted. Long enough for an answer already on its way (a 431 to a
/// request the server never read) to reach a client that reads it.
pub const GONE_STALL: Duration = Duration::from_secs(1);

/// Why a flow was aborted rather than closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// A read failed: one side reset the connection.
    Reset,
    /// One direction's writer was gone and the other made no progress
    /// for [`GONE_STALL`].
    PeerGone,
    /// Bytes waited [`STALL_TIMEOUT`] for a writer that took none.
    Stalled,
}

/// What a splice did: the bytes copied each way, and whether it was
/// aborted (then the caller resets both sides instead of closing them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spliced {
    pub a_to_b: u64,
    pub b_to_a: u64,
    pub aborted: Option<Abort>,
}

/// When a direction that has been stalled since `since` is given up on:
/// [`STALL_TIMEOUT`] after it stalled, or, once the other direction's
/// writer is gone, [`GONE_STALL`] after the later of the stall and the
/// moment that became known.
fn stall_deadline(since: Instant, other_gone: Option<Instant>) -> (Instant, Abort) {
    let stalled = (since + STALL_TIMEOUT, Abort::Stalled);
    match other_gone {
        Some(gone) => {
            let peer_gone = (since.max(gone) + GONE_STALL, Abort::PeerGone);
            if peer_gone.0 < stalled.0 {
                peer_gone
            } else {
                stalled
            }
        }
        None => stalled,
    }
}

/// Copies `a` to `b` and `b` to `a` until both directions have ended, each
/// on its own: when one direction ends (end of stream, or a write the far
/// side no longer reads), the other keeps going until it ends too. A
/// server that answers and closes without reading the rest of a request
/// (a 431, a 413) still gets its answer to the client, which
/// `tokio::io::copy_bidirectional` does not guarantee: it gives up on both
/// directions at the first error. Both directions are polled by one task,
/// with no lock between them. Ends early, aborted, as the module says.
///
/// Takes its streams by value; pass `&mut stream` to reset them after an
/// abort.
pub async fn splice<A, B>(mut a: A, mut b: B) -> Spliced
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_to_b, mut b_to_a) = (Direction::new(), Direction::new());
    let mut timer = Box::pin(tokio::time::sleep(STALL_TIMEOUT));
    let aborted = poll_fn(|cx| {
        let forward = a_to_b.poll(cx, &mut a, &mut b);
        let backward = b_to_a.poll(cx, &mut b, &mut a);
        if a_to_b.read_failed || b_to_a.read_failed {
            return Poll::Ready(Some(Abort::Reset));
        }
        if forward.is_ready() && backward.is_ready() {
            return Poll::Ready(None);
        }
        let deadlines = [
            a_to_b.deadline(b_to_a.write_failed),
            b_to_a.deadline(a_to_b.write_failed),
        ];
        let Some((deadline, why)) = deadlines.into_iter().flatten().min_by_key(|(at, _)| *at)
        else {
            return Poll::Pending;
        };
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(why)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    Spliced {
        a_to_b: a_to_b.copied,
        b_to_a: b_to_a.copied,
        aborted,
    }
}

/// One direction: read into the buffer, write it out, and at the end shut
/// the writer down (a FIN to the far side).
struct Direction {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    read_done: bool,
    /// Copying has ended; the writer is being shut down.
    closing: bool,
    done: bool,
    copied: u64,
    /// Since when buffered bytes have waited for a writer that takes none.
    stalled_since: Option<Instant>,
    /// A read failed (not an end of stream): the side was reset.
    read_failed: bool,
    /// When a write failed: the far side reads no more.
    write_failed: Option<Instant>,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            read_done: false,
            closing: false,
            done: false,
            copied: 0,
            stalled_since: None,
            read_failed: false,
            write_failed: None,
        }
    }

    /// When this direction is given up on, if it is stalled now.
    fn deadline(&self, other_gone: Option<Instant>) -> Option<(Instant, Abort)> {
        let since = self.stalled_since.filter(|_| !self.done)?;
        Some(stall_deadline(since, other_gone))
    }

    fn poll<R, W>(&mut self, cx: &mut Context<'_>, reader: &mut R, writer: &mut W) -> Poll<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(());
        }
        if !self.closing {
            // Ended, cleanly or not: then tell the far side.
            let _ = ready!(self.pump(cx, reader, writer));
            self.closing = true;
            self.stalled_since = None;
        }
        let _ = ready!(Pin::new(&mut *writer).poll_shutdown(cx));
        self.done = true;
        Poll::Ready(())
    }

    fn pump<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.start == self.end && !self.read_done {
                let mut read = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *reader).poll_read(cx, &mut read) {
                    Poll::Ready(Ok(())) => {
                        let n = read.filled().len();
                        if n == 0 {
                            self.read_done = true;
                        } else {
                            (self.start, self.end) = (0, n);
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        self.read_done = true;
                        self.read_failed = true;
                        return Poll::Ready(Err(e));
                    }
                    Poll::Pending => {
                        // Nothing new to write: push out what was written.
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        return Poll::Pending;
                    }
                }
            }
            if self.start < self.end {
                let written =
                    match Pin::new(&mut *writer).poll_write(cx, &self.buf[self.start..self.end]) {
                        Poll::Pending => {
                            // Only the first refusal reads the clock.
                            self.stalled_since.get_or_insert_with(Instant::now);
                            return Poll::Pending;
                        }
                        Poll::Ready(r) => r,
                    };
                let n = match written {
                    Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => Ok(n),
                    Err(e) => Err(e),
                }
                .inspect_err(|_| {
                    self.write_failed = Some(Instant::now());
                })?;
                self.stalled_since = None;
                self.start += n;
                self.copied += n as u64;
                continue;
            }
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, Join};

    use super::*;

    #[tokio::test]
    async fn an_answer_survives_a_request_the_server_never_read() {
        let (client, proxy_front) = tokio::io::duplex(64);
        let (proxy_back, server) = tokio::io::duplex(64);
        let proxy = tokio::spawn(splice(proxy_front, proxy_back));
        let (mut server_read, mut server_write) = tokio::io::split(server);
        let server = tokio::spawn(async move {
            let mut head = [0u8; 16];
            server_read.read_exact(&mut head).await.unwrap();
            server_write
                .write_all(b"HTTP/1.1 431\r\n\r\n")
                .await
                .unwrap();
            server_write.shutdown().await.unwrap();
            // Gone without reading the rest.
            drop((server_read, server_write));
        });
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            // Far more than the pipes hold: the writes start failing once
            // the server is gone.
            for _ in 0..1000 {
                if client_write.write_all(&[b'x'; 1024]).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
        });
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 431\r\n\r\n");
        server.await.unwrap();
        writer.await.unwrap();
        proxy.await.unwrap();
    }

    #[tokio::test]
    async fn both_directions_carry_everything_then_end() {
        let (mut client, proxy_front) = tokio::io::duplex(1024);
        let (proxy_back, mut server) = tokio::io::duplex(1024);
        let proxy = tokio::spawn(splice(proxy_front, proxy_back));
        let request = vec![7u8; 100_000];
        let sent = request.clone();
        let echo = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = server.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                server.write_all(&buf[..n]).await.unwrap();
            }
            server.shutdown().await.unwrap();
            got
        });
        let (mut read, mut write) = tokio::io::split(&mut client);
        let (_, back) = tokio::join!(
            async {
                write.write_all(&sent).await.unwrap();
                write.shutdown().await.unwrap();
            },
            async {
                let mut back = Vec::new();
                read.read_to_end(&mut back).await.unwrap();
                back
            }
        );
        assert_eq!(echo.await.unwrap(), request);
        assert_eq!(back, request);
        let spliced = proxy.await.unwrap();
        assert_eq!((spliced.a_to_b, spliced.b_to_a), (100_000, 100_000));
        assert_eq!(spliced.aborted, None);
    }

    #[test]
    fn stall_deadlines() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let check = |since: Instant, gone: Option<Instant>, expected: (Instant, Abort)| {
            assert_eq!(
                stall_deadline(since, gone),
                expected,
                "since {since:?}, gone {gone:?}"
            );
        };
        // Nobody gone: the long timeout from the stall.
        check(t, None, (t + STALL_TIMEOUT, Abort::Stalled));
        // Stalled, then the other side went: a short grace from then.
        check(t, Some(t + s(5)), (t + s(5) + GONE_STALL, Abort::PeerGone));
        // Gone first, stalled later: the grace runs from the stall.
        check(t + s(5), Some(t), (t + s(5) + GONE_STALL, Abort::PeerGone));
        // Stalled so long that the plain timeout comes first.
        check(
            t,
            Some(t + STALL_TIMEOUT),
            (t + STALL_TIMEOUT, Abort::Stalled),
        );
    }

    /// One end of a proxied connection made of two one-way pipes, so each
    /// direction can be closed on its own: what `splice` gets, the writer
    /// feeding it and the reader of what it sends.
    fn pipe_end() -> (Join<DuplexStream, DuplexStream>, DuplexStream, DuplexStream) {
        let (peer_writes, splice_reads) = tokio::io::duplex(1024);
        let (splice_writes, peer_reads) = tokio::io::duplex(1024);
        (
            tokio::io::join(splice_reads, splice_writes),
            peer_writes,
            peer_reads,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_never_reads_is_cut_off_after_the_stall_timeout() {
        let (a, mut a_in, _a_out) = pipe_end();
        let (b, _b_in, _b_out) = pipe_end();
        let started = Instant::now();
        let proxy = tokio::spawn(splice(a, b));
        // Far more than the pipes and the splice's buffer hold: `b`'s
        // reader never reads.
        let writer = tokio::spawn(async move {
            let _ = a_in.write_all(&vec![1u8; 1 << 20]).await;
            a_in
        });
        let spliced = proxy.await.unwrap();
        assert_eq!(spliced.aborted, Some(Abort::Stalled));
        let took = started.elapsed();
        assert!(
            took >= STALL_TIMEOUT && took < STALL_TIMEOUT + Duration::from_secs(1),
            "{took:?}"
        );
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (a, mut a_in, _a_out) = pipe_end();
        let (b, b_in, mut b_out) = pipe_end();
        let proxy = tokio::spawn(splice(a, b));
        let total = 64 * 1024;
        let writer = tokio::spawn(async move {
            a_in.write_all(&vec![1u8; total]).await.unwrap();
            a_in.shutdown().await.unwrap();
        });
        // 1 KiB every 10 s: minutes in all, never a minute without reading.
        let mut got = 0;
        let mut buf = [0u8; 1024];
        while got < total {
            tokio::time::sleep(Duration::from_secs(10)).await;
            got += b_out.read(&mut buf).await.unwrap();
        }
        writer.await.unwrap();
        drop(b_in);
        let spliced = proxy.await.unwrap();
        assert_eq!(spliced.aborted, None);
        assert_eq!(spliced.a_to_b, total as u64);
    }

    /// The proxied deadlock: a client sends requests and goes away without
    /// reading; the server is blocked writing answers nobody reads, so it
    /// reads no more requests either. The splice must not wait for it.
    #[tokio::test(start_paused = true)]
    async fn a_peer_gone_ends_the_flow_stuck_toward_the_other_side() {
        let (client, mut client_in, client_out) = pipe_end();
        let (server, mut server_in, _server_out) = pipe_end();
        let proxy = tokio::spawn(splice(client, server));
        let requests = tokio::spawn(async move {
            let _ = client_in.write_all(&vec![b'q'; 1 << 20]).await;
            client_in
        });
        let answers = tokio::spawn(async move {
            let _ = server_in.write_all(&vec![b'a'; 1 << 20]).await;
            server_in
        });
        // Both directions fill up; then the client stops reading for good.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let gone = Instant::now();
        drop(client_out);
        let spliced = proxy.await.unwrap();
        assert_eq!(spliced.aborted, Some(Abort::PeerGone));
        let took = gone.elapsed();
        assert!(took <= GONE_STALL + Duration::from_millis(100), "{took:?}");
        requests.abort();
        answers.abort();
    }

    /// A stream whose reads fail, as a reset QUIC stream or TCP socket.
    struct ResetStream;

    impl AsyncRead for ResetStream {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    impl AsyncWrite for ResetStream {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_side_aborts_both_directions_at_once() {
        let (b, _b_in, _b_out) = pipe_end();
        let started = Instant::now();
        let spliced = splice(ResetStream, b).await;
        assert_eq!(spliced.aborted, Some(Abort::Reset));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
