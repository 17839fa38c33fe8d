//! The control plane's Prometheus metrics: API requests by method and
//! gRPC code, Watch streams open, and the store's commit latency.
//!
//! Requests are counted by a tower layer around the gRPC server, from the
//! `grpc-status` of the response: in its headers (an error answered at
//! once) or in its trailers (after the last message). A response body
//! dropped before its status, a client gone mid-stream, counts as
//! `Canceled`, as the server sees it. Methods are the closed set of
//! `service Api`; any other path counts as `unknown`, so no caller can
//! grow the label set.
//!
//! Deliberately not here: objects per kind (it would list the store on
//! every scrape) and per-user labels.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use podnet_proto::v1::{API_METHODS, API_PATH_PREFIX};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub code: &'static str,
}

/// What the control plane counts.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    watches: Gauge,
    commits: Histogram,
}

/// The store commit buckets, in seconds: 50 µs to about 1.6 s, doubling.
pub fn commit_buckets() -> Vec<f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 16).collect()
}

impl ApiMetrics {
    /// Counting calls, and showing the store's commit histogram.
    pub fn new(commits: Histogram) -> ApiMetrics {
        ApiMetrics {
            requests: Family::default(),
            watches: Gauge::default(),
            commits,
        }
    }

    /// The registry, every name prefixed `podnet_controlplane_`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("podnet_controlplane");
        r.register(
            "api_requests",
            "API calls answered, by method and gRPC status code",
            self.requests.clone(),
        );
        r.register("api_watches", "Watch streams open", self.watches.clone());
        r.register_with_unit(
            "store_commit_duration",
            "Time a store write transaction takes in the backend (redb, or memory)",
            Unit::Seconds,
            self.commits.clone(),
        );
        r
    }

    fn count(&self, method: &'static str, code: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { method, code })
            .inc();
    }
}

/// The method label of a request path: one of `service Api`'s methods,
/// else `unknown`.
pub fn method_of(path: &str) -> &'static str {
    path.strip_prefix(API_PATH_PREFIX)
        .and_then(|m| API_METHODS.iter().find(|known| **known == m))
        .copied()
        .unwrap_or("unknown")
}

/// The name of a gRPC status code as gRPC's own libraries print it
/// (`OK`, `NotFound`, ...), from a `grpc-status` value.
pub fn code_name(status: &[u8]) -> &'static str {
    match status {
        b"0" => "OK",
        b"1" => "Canceled",
        b"2" => "Unknown",
        b"3" => "InvalidArgument",
        b"4" => "DeadlineExceeded",
        b"5" => "NotFound",
        b"6" => "AlreadyExists",
        b"7" => "PermissionDenied",
        b"8" => "ResourceExhausted",
        b"9" => "FailedPrecondition",
        b"10" => "Aborted",
        b"11" => "OutOfRange",
        b"12" => "Unimplemented",
        b"13" => "Internal",
        b"14" => "Unavailable",
        b"15" => "DataLoss",
        b"16" => "Unauthenticated",
        // Not a code gRPC defines: clients read it as Unknown.
        _ => "Unknown",
    }
}

/// The tower layer counting every call of the server it wraps.
#[derive(Debug, Clone)]
pub struct MetricsLayer(pub Arc<ApiMetrics>);

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<ApiMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = method_of(req.uri().path());
        let metrics = self.metrics.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            let (parts, body) = response.into_parts();
            let mut counted = CountedBody {
                inner: body,
                method,
                metrics: Some(metrics.clone()),
                watch: None,
            };
            match parts.headers.get("grpc-status") {
                // Trailers-only: the call is over.
                Some(status) => counted.finish(code_name(status.as_bytes())),
                None if method == "Watch" => {
                    metrics.watches.inc();
                    counted.watch = Some(metrics);
                }
                None => {}
            }
            Ok(http::Response::from_parts(parts, counted))
        })
    }
}

/// A response body that counts its call when its status goes by (or it is
/// dropped first).
pub struct CountedBody<B> {
    inner: B,
    method: &'static str,
    /// Until the call is counted.
    metrics: Option<Arc<ApiMetrics>>,
    /// An open Watch stream's gauge, until the stream ends.
    watch: Option<Arc<ApiMetrics>>,
}

impl<B> CountedBody<B> {
    fn finish(&mut self, code: &'static str) {
        if let Some(m) = self.metrics.take() {
            m.count(self.method, code);
        }
        if let Some(m) = self.watch.take() {
            m.watches.dec();
        }
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        self.finish("Canceled");
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    this.finish(code_name(status.as_bytes()));
                }
            }
            // The body failed: the client sees the stream reset.
            Poll::Ready(Some(Err(_))) => this.finish("Unknown"),
            // Ended without a status: gRPC clients read that as Unknown.
            Poll::Ready(None) => this.finish("Unknown"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_a_closed_set() {
        fn check(path: &str, expected: &str) {
            assert_eq!(method_of(path), expected, "{path}");
        }
        check("/podnet.v1.Api/Get", "Get");
        check("/podnet.v1.Api/Watch", "Watch");
        check("/podnet.v1.Api/Join", "Join");
        check("/podnet.v1.Api/NoSuchMethod", "unknown");
        check("/podnet.v1.NodeAgent/Exec", "unknown");
        check("/", "unknown");
        assert!(API_METHODS.len() > 10, "{API_METHODS:?}");
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        fn check(status: &str, expected: &str) {
            assert_eq!(code_name(status.as_bytes()), expected, "{status}");
        }
        check("0", "OK");
        check("5", "NotFound");
        check("7", "PermissionDenied");
        check("16", "Unauthenticated");
        check("17", "Unknown");
        check("", "Unknown");
        check("-1", "Unknown");
    }

    #[test]
    fn commit_buckets_double_from_50_microseconds() {
        let b = commit_buckets();
        assert_eq!(b.len(), 16);
        assert!((b[0] - 0.00005).abs() < 1e-12);
        assert!(b.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 1e-9));
    }

    #[tokio::test]
    async fn calls_are_counted_by_their_status() {
        use http_body_util::BodyExt;
        use tower_service::Service;
        let metrics = Arc::new(ApiMetrics::new(Histogram::new(commit_buckets())));
        // A server that answers every call with a trailers-only NOT_FOUND,
        // except Watch, which streams one message and ends OK in trailers.
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            let streaming = req.uri().path().ends_with("/Watch");
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let body = http_body_util::StreamBody::new(futures::stream::iter(
                [
                    Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(b"x"))),
                    Ok(Frame::trailers(trailers)),
                ]
                .into_iter()
                .take(if streaming { 2 } else { 0 }),
            ));
            let mut response = http::Response::new(body);
            if !streaming {
                response
                    .headers_mut()
                    .insert("grpc-status", "5".parse().unwrap());
            }
            Ok::<_, std::convert::Infallible>(response)
        });
        let mut service = tower_layer::Layer::layer(&MetricsLayer(metrics.clone()), inner);
        let call = |path: &str| http::Request::builder().uri(path).body(()).unwrap();
        let get = service.call(call("/podnet.v1.Api/Get")).await.unwrap();
        drop(get);
        let count = |method, code| {
            metrics
                .requests
                .get_or_create(&RequestLabels { method, code })
                .get()
        };
        assert_eq!(count("Get", "NotFound"), 1);
        let watch = service.call(call("/podnet.v1.Api/Watch")).await.unwrap();
        assert_eq!(metrics.watches.get(), 1);
        let collected = watch.into_body().collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(count("Watch", "OK"), 1);
        assert_eq!(metrics.watches.get(), 0);
        // A stream dropped before its status: the client went away.
        let watch = service.call(call("/podnet.v1.Api/Watch")).await.unwrap();
        assert_eq!(metrics.watches.get(), 1);
        drop(watch);
        assert_eq!(count("Watch", "Canceled"), 1);
        assert_eq!(metrics.watches.get(), 0);
        drop(service.call(call("/x/y")).await.unwrap());
        assert_eq!(count("unknown", "NotFound"), 1);
    }
}
