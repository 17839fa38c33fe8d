//! `GET /metrics`: one `prometheus_client` [`Registry`] served over
//! HTTP/1.1 (hyper), the way every podnet process exposes what an operator
//! would chart.
//!
//! The body is the OpenMetrics text format when the scraper's `Accept`
//! asks for `application/openmetrics-text` (as Prometheus does), else the
//! Prometheus text format 0.0.4 (what `curl` and older scrapers get).
//! `HEAD` answers the same headers; any other path is 404, any other
//! method on `/metrics` 405.
//!
//! Bounded: [`MAX_CONNECTIONS`] scrape connections at once (more are
//! closed on accept), a request head of at most [`MAX_HEAD`] bytes read
//! within [`HEAD_TIMEOUT`], and a connection lives at most
//! [`CONNECTION_LIFETIME`]. The server stops accepting when its shutdown
//! token is cancelled and gives open connections [`GRACE`] to finish.
//!
//! Deliberately not here: the metrics themselves (each role registers its
//! own), push gateways, protobuf exposition, TLS (loopback only).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use prometheus_client;

/// The path served.
pub const PATH: &str = "/metrics";
/// Scrape connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 16;
/// The largest request head read (hyper's read buffer).
pub const MAX_HEAD: usize = 8192;
/// How long a request head may take to arrive, also between requests on
/// a kept-alive connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection is kept at most (a scraper reconnects).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long open connections get to finish after shutdown.
pub const GRACE: Duration = Duration::from_secs(1);

/// OpenMetrics text 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus text 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The exposition formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// The format a request's `Accept` asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality, else
    /// Prometheus text.
    pub fn negotiate(headers: &HeaderMap) -> Format {
        let wants_openmetrics = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next().unwrap_or("");
                let quality_zero = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !quality_zero
            });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// The registry's metrics in `format`.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug
    // in a metric's own encoding, and the partial text is still served.
    let encoded = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
    };
    if let Err(e) = encoded {
        tracing::warn!(error = %e, "a metric failed to encode");
    }
    out
}

/// The answer to one request: pure, so the routing is tested without
/// sockets.
pub fn respond(
    registry: &Registry,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if path != PATH {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let format = Format::negotiate(headers);
    let body = render(registry, format);
    let mut r = Response::new(Full::new(if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static(format.content_type()),
    );
    r
}

/// Where scrape connections come from: a real TCP listener, or (in a pod)
/// the pod's own.
pub trait Listener: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, String)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(tokio::net::TcpStream, String)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        Ok((stream, peer.to_string()))
    }
}

/// Binds `addr` (a real address) for [`serve`].
pub async fn bind(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `registry` on `listener` until `shutdown`; returns once every
/// connection has ended (or the grace period is over). An accept error
/// that is the peer's (a connection reset before it was accepted) is
/// skipped; any other ends the server with that error.
pub async fn serve<L: Listener>(
    mut listener: L,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let result = loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if transient(&e) => continue,
                Err(e) => break Err(e),
            },
            () = shutdown.cancelled() => break Ok(()),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(conn.peer = %peer, "too many scrapes, connection closed");
            continue;
        };
        let (registry, shutdown) = (registry.clone(), shutdown.clone());
        tracker.spawn(
            async move {
                let _slot = slot;
                connection(io, registry, shutdown).await;
            }
            .instrument(tracing::debug_span!("metrics.conn", conn.peer = %peer)),
        );
    };
    tracker.close();
    let _ = tokio::time::timeout(GRACE, tracker.wait()).await;
    result
}

/// Errors of one connection that was never ours to serve.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

async fn connection<I>(io: I, registry: Arc<Registry>, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let registry = registry.clone();
        async move {
            Ok::<_, Infallible>(respond(
                &registry,
                req.method(),
                req.uri().path(),
                req.headers(),
            ))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "scrape connection ended");
            }
            return;
        }
        () = shutdown.cancelled() => {}
        () = &mut lifetime => {}
    }
    // Finish the request in flight, then close.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GRACE, conn).await;
}

#[cfg(test)]
mod tests;
