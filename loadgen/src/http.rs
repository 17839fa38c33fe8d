//! HTTP clients over a [`Net`]: hyper's pooled client with a connector
//! that resolves through the flow's network (or goes where `--resolve`
//! says), then speaks TLS when the URL is https.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::classify::Unresolved;
use crate::net::Net;
use crate::request::{HttpRequest, HttpVersion};

pub(crate) type HttpClient<N> = Client<Connector<N>, Empty<Bytes>>;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection, plain or TLS.
pub(crate) struct Conn {
    io: TokioIo<Box<dyn Io>>,
    h2: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.h2 { c.negotiated_h2() } else { c }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Connects to a URL's authority through `net`.
#[derive(Clone)]
pub(crate) struct Connector<N> {
    net: N,
    /// Where every connection goes instead of the URL's host (curl's
    /// `--resolve`).
    connect_to: Option<SocketAddr>,
    tls: Option<tokio_rustls::TlsConnector>,
    h2: bool,
}

impl<N: Net> tower_service::Service<http::Uri> for Connector<N> {
    type Response = Conn;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Conn>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or("").to_string();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let addr = match this.connect_to {
                Some(a) => a,
                None => SocketAddr::new(
                    this.net
                        .resolve(&host)
                        .await
                        .map_err(|o| Unresolved(o).into_io())?,
                    port,
                ),
            };
            let stream = this.net.connect(addr).await?;
            match &this.tls {
                None => Ok(Conn {
                    io: TokioIo::new(Box::new(stream)),
                    h2: this.h2,
                }),
                Some(tls) => {
                    let name = rustls_pki_types::ServerName::try_from(
                        host.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string(),
                    )
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    let stream = tls.connect(name, stream).await?;
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    Ok(Conn {
                        io: TokioIo::new(Box::new(stream)),
                        h2,
                    })
                }
            }
        })
    }
}

/// The TLS settings of an https flow: the CA it trusts and the protocol
/// it offers by ALPN.
pub(crate) fn tls_config(
    cacert: &str,
    version: HttpVersion,
) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut any = false;
    for cert in CertificateDer::pem_slice_iter(cacert.as_bytes()) {
        let cert = cert.map_err(|e| format!("cacert: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("cacert: not a CA certificate: {e}"))?;
        any = true;
    }
    if !any {
        return Err("cacert: no PEM certificate in it".into());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A client for `request`'s connections: kept alive and pooled when it
/// reuses them, else one connection per request.
pub(crate) fn client<N: Net>(net: N, request: &HttpRequest) -> Result<HttpClient<N>, String> {
    let https = request.url.starts_with("https://");
    let tls = match (&request.cacert, https) {
        (Some(ca), true) => Some(tls_config(ca, request.version)?),
        (None, true) => return Err("an https flow needs the CA it trusts (cacert)".into()),
        (_, false) => None,
    };
    let connector = Connector {
        net,
        connect_to: request.connect_to,
        tls,
        h2: request.version == HttpVersion::Http2,
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_max_idle_per_host(if request.reuse { usize::MAX } else { 0 });
    if request.version == HttpVersion::Http2 {
        builder.http2_only(true);
    }
    Ok(builder.build(connector))
}
