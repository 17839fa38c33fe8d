//! Joining two byte streams the way a TCP proxy in the kernel would.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read ahead of the writer, per direction.
const BUFFER: usize = 16 * 1024;

/// Copies `a` to `b` and `b` to `a` until both directions have ended, each
/// on its own: when one direction ends (end of stream, or a write the far
/// side no longer reads), the other keeps going until it ends too. A
/// server that answers and closes without reading the rest of a request
/// (a 431, a 413) still gets its answer to the client, which
/// `tokio::io::copy_bidirectional` does not guarantee: it gives up on both
/// directions at the first error. Both directions are polled by one task,
/// with no lock between them. Returns the bytes copied each way.
pub async fn splice<A, B>(mut a: A, mut b: B) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_to_b, mut b_to_a) = (Direction::new(), Direction::new());
    poll_fn(|cx| {
        let forward = a_to_b.poll(cx, &mut a, &mut b);
        let backward = b_to_a.poll(cx, &mut b, &mut a);
        if forward.is_ready() && backward.is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (a_to_b.copied, b_to_a.copied)
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
        }
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
                let n =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        assert_eq!(proxy.await.unwrap(), (100_000, 100_000));
    }
}
