//! Joining two byte streams the way a TCP proxy in the kernel would.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Copies `a` to `b` and `b` to `a` until both directions have ended, each
/// on its own: when one direction ends (end of stream, or a write the far
/// side no longer reads), the other keeps going until it ends too. A
/// server that answers and closes without reading the rest of a request
/// (a 431, a 413) still gets its answer to the client, which
/// `tokio::io::copy_bidirectional` does not guarantee: it gives up on both
/// directions at the first error. Returns the bytes copied each way.
pub async fn splice<A, B>(a: A, b: B) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let a_to_b = async {
        let n = tokio::io::copy(&mut a_read, &mut b_write)
            .await
            .unwrap_or(0);
        let _ = b_write.shutdown().await;
        n
    };
    let b_to_a = async {
        let n = tokio::io::copy(&mut b_read, &mut a_write)
            .await
            .unwrap_or(0);
        let _ = a_write.shutdown().await;
        n
    };
    tokio::join!(a_to_b, b_to_a)
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
}
