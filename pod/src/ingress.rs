//! `podnet/ingress`: the ingress controller, doing ingress-nginx's job from
//! inside a pod. It follows Ingress, IngressClass and Secret objects through
//! the API (as a controller does with its service account) and Services and
//! EndpointSlices through the node's view, routes each HTTP request by host
//! and path ([`route`]) straight to a ready endpoint of the backend Service
//! (as ingress-nginx does, bypassing the ClusterIP), terminates TLS with the
//! certificate its SNI asks for (`certs`), and speaks HTTP/1.1 and HTTP/2
//! (ALPN) to clients and pooled keep-alive HTTP/1.1 to backends.
//!
//! Requests keep their path and Host; the backend also gets
//! `X-Forwarded-For/-Proto/-Host/-Port`, `X-Real-IP`, `X-Request-ID` and a
//! W3C `traceparent`. Nothing matching answers 404, a backend without ready
//! endpoints 503 (the body says why), an unreachable one 502, a silent one
//! 504. Every response carries `x-podnet-trace`, the id of the request's
//! journey (`podnet trace ID`), and one the controller forwarded
//! `x-podnet-upstream`, the endpoint it chose (ingress-nginx's
//! `$upstream_addr`): so a 502 made when a pod failed still names the pod.
//!
//! Each served Ingress gets `status.loadBalancer` from the controller's own
//! LoadBalancer Service (ingress-nginx's `--publish-service`).
//!
//! Arguments (all optional): `--http-port=80`, `--https-port=443`,
//! `--publish-service=NAMESPACE/NAME` (default: the pod's namespace and
//! `podnet-ingress-controller`), `--default-backend-service=NAMESPACE/NAME`
//! (where requests no Ingress routes go, instead of the 404).

pub(crate) mod certs;
pub mod route;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioIo, TokioTimer};
use podnet_proto::events::{self, EventType};
use podnet_proto::informer::{Cache, informer};
use podnet_proto::model::str_at;
use podnet_proto::trace::{Recorder, SpanTimer, format_trace_id, hop, new_trace_id};
use podnet_proto::v1::ObjectRequest;
use podnet_proto::v1::api_client::ApiClient;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::Instrument;

use self::certs::CertStore;
use self::route::{Outcome, RouteInput, RouteTable};
use crate::cluster::ClusterViewRx;
use crate::container::{ApiAccess, ContainerSpec, WorkloadError};
use crate::netns::{NetNs, PodListener, PodStream};
use podnet_proto::model::view::Protocol;

/// Header the response carries with the request's trace id.
pub const TRACE_HEADER: &str = "x-podnet-trace";
/// Header a forwarded request's response carries with its endpoint
/// (`IP:PORT`); the load generator reads it as [`podnet_loadgen::UPSTREAM_HEADER`].
pub const UPSTREAM_HEADER: &str = "x-podnet-upstream";
/// ingress-nginx's default: request heads above this get 431.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// A client that has not sent its request head (or TLS handshake) by then
/// is dropped, so slow clients cannot hold connections forever.
const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// ingress-nginx's proxy-connect-timeout and proxy-read-timeout defaults.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle keep-alive connections kept per backend endpoint.
const UPSTREAM_IDLE_PER_HOST: usize = 64;
/// Client connections served at once; more wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 4096;
const DEFAULT_PUBLISH_SERVICE: &str = "podnet-ingress-controller";
/// How long a TLS Secret problem must hold before it is reported.
const PROBLEM_SETTLE: Duration = Duration::from_secs(1);

type Body = BoxBody<Bytes, hyper::Error>;

/// The controller's settings, from the container's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    http_port: u16,
    https_port: u16,
    publish_service: (String, String),
    /// ingress-nginx's `--default-backend-service`, (namespace, name).
    default_backend: Option<(String, String)>,
}

fn settings(ns: &NetNs, spec: &ContainerSpec) -> Result<Settings, WorkloadError> {
    let mut s = Settings {
        http_port: 80,
        https_port: 443,
        publish_service: (
            ns.info().namespace.clone(),
            DEFAULT_PUBLISH_SERVICE.to_string(),
        ),
        default_backend: None,
    };
    let bad = |value: &str, reason: &str| WorkloadError::BadArgs {
        image: "podnet/ingress".into(),
        origin: "argument",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    for arg in &spec.args {
        let (flag, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
        match flag {
            "--http-port" | "--https-port" => {
                let port = value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(arg, "expected a port between 1 and 65535"))?;
                if flag == "--http-port" {
                    s.http_port = port;
                } else {
                    s.https_port = port;
                }
            }
            "--publish-service" | "--default-backend-service" => {
                let (namespace, name) = value
                    .split_once('/')
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .ok_or_else(|| bad(arg, "expected NAMESPACE/NAME"))?;
                let service = (namespace.to_string(), name.to_string());
                if flag == "--publish-service" {
                    s.publish_service = service;
                } else {
                    s.default_backend = Some(service);
                }
            }
            _ => {
                return Err(bad(
                    arg,
                    "podnet/ingress takes --http-port, --https-port, --publish-service and --default-backend-service",
                ));
            }
        }
    }
    Ok(s)
}

/// Binds both ports and returns the running controller.
pub(super) fn start(
    ns: Arc<NetNs>,
    spec: &ContainerSpec,
    cancel: CancellationToken,
) -> Result<impl Future<Output = Result<(), WorkloadError>> + Send + 'static, WorkloadError> {
    let settings = settings(&ns, spec)?;
    let bind = |port| {
        ns.listen_tcp(port).map_err(|source| WorkloadError::Bind {
            port,
            protocol: Protocol::Tcp,
            source,
        })
    };
    let http = bind(settings.http_port)?;
    let https = bind(settings.https_port)?;
    let certs = CertStore::new().map_err(|e| WorkloadError::BadArgs {
        image: "podnet/ingress".into(),
        origin: "default certificate",
        value: certs::DEFAULT_CERT_HOST.into(),
        reason: e.to_string(),
    })?;
    let env = spec.workload_env.clone();
    let tasks = TaskTracker::new();
    let stop = cancel.child_token();
    let executor = Tracked {
        tasks: tasks.clone(),
        stop: stop.clone(),
    };
    let family = podnet_proto::model::network::IpFamily::of(ns.ip());
    let controller = Arc::new(Controller {
        family,
        executor: executor.clone(),
        upstream: Client::builder(executor)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(UPSTREAM_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(PodConnector { ns }),
        routes: RwLock::new(Arc::new(RouteTable::default())),
        tls: certs.server_config(),
        certs,
        recorder: env.recorder.clone(),
        next_endpoint: AtomicUsize::new(0),
        settings,
    });
    Ok(async move {
        let _stop_guard = stop.clone().drop_guard();
        tasks.spawn(
            controller
                .clone()
                .follow(env.api.clone(), env.cluster.clone(), stop.clone())
                .in_current_span(),
        );
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let served = tokio::select! {
            r = controller.clone().accept(http, false, limit.clone(), tasks.clone(), stop.clone()) => r,
            r = controller.clone().accept(https, true, limit, tasks.clone(), stop.clone()) => r,
            () = stop.cancelled() => Ok(()),
        };
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        served
    }
    .instrument(tracing::info_span!("ingress")))
}

struct Controller {
    executor: Tracked,
    settings: Settings,
    routes: RwLock<Arc<RouteTable>>,
    certs: Arc<CertStore>,
    tls: Arc<rustls::ServerConfig>,
    upstream: Client<PodConnector, Body>,
    recorder: Recorder,
    next_endpoint: AtomicUsize,
    /// The pod's primary family, of the endpoints it proxies to.
    family: podnet_proto::model::network::IpFamily,
}

/// What a request knows of the connection it came on.
#[derive(Debug, Clone, Copy)]
struct ConnInfo {
    client: SocketAddr,
    tls: bool,
    port: u16,
    /// The journey of the connection (edge, node proxy, overlay).
    flow_trace: u64,
}

impl Controller {
    fn routes(&self) -> Arc<RouteTable> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps the routes, certificates and Ingress statuses in line with
    /// the cluster, level-triggered.
    async fn follow(
        self: Arc<Self>,
        access: Option<ApiAccess>,
        mut cluster: ClusterViewRx,
        stop: CancellationToken,
    ) {
        let api = match access {
            Some(access) => match connect_api(&access, &stop).await {
                Some(api) => Some(api),
                None => return,
            },
            None => None,
        };
        let tasks = TaskTracker::new();
        let mut watched = Vec::new();
        for kind in ["Ingress", "IngressClass", "Secret"] {
            let (tx, rx) = watch::channel(Cache::new());
            if let Some(api) = &api {
                tasks.spawn(
                    informer(api.clone(), kind, String::new(), tx, stop.clone())
                        .instrument(tracing::debug_span!("informer", kind)),
                );
            }
            watched.push(rx);
        }
        let default_backend = self.settings.default_backend.clone();
        let [mut ingresses, mut classes, mut secrets] =
            <[_; 3]>::try_from(watched).unwrap_or_else(|_| unreachable!("three kinds are watched"));
        // Problems are reported once they have held for a moment: an
        // Ingress and its Secret applied together reach this controller
        // through two watches, and the Secret may come second.
        let mut reported = String::new();
        let mut pending: Option<(String, tokio::time::Instant)> = None;
        loop {
            let view = cluster.borrow_and_update().clone();
            let ing: Vec<Value> = ingresses.borrow_and_update().values().cloned().collect();
            let cls: Vec<Value> = classes.borrow_and_update().values().cloned().collect();
            let services: Vec<Value> = view.services.values().cloned().collect();
            let slices: Vec<Value> = view.endpoint_slices.values().cloned().collect();
            let table = RouteTable::build(&RouteInput {
                ingresses: &ing,
                classes: &cls,
                services: &services,
                slices: &slices,
                default_service: default_backend
                    .as_ref()
                    .map(|(ns, name)| (ns.as_str(), name.as_str())),
                family: self.family,
            });
            let secret_map: HashMap<(String, String), Value> = secrets
                .borrow_and_update()
                .values()
                .map(|s| {
                    let key = (
                        str_at(s, "/metadata/namespace").to_string(),
                        str_at(s, "/metadata/name").to_string(),
                    );
                    (key, s.clone())
                })
                .collect();
            let problems = self.certs.update(&table.tls_hosts(), &secret_map);
            let text: String = problems.iter().map(|p| format!("{p}; ")).collect();
            let now = tokio::time::Instant::now();
            match &pending {
                _ if text == reported => pending = None,
                Some((t, since)) if *t == text && now >= *since + PROBLEM_SETTLE => {
                    for p in &problems {
                        tracing::warn!(problem = %p, "TLS secret not used: hosts fall back to the default certificate");
                        if let Some(api) = &api {
                            report_tls_problem(api, &ing, p).await;
                        }
                    }
                    reported = text;
                    pending = None;
                }
                Some((t, _)) if *t == text => {}
                _ => pending = Some((text, now)),
            }
            let recheck = pending.as_ref().map(|(_, since)| *since + PROBLEM_SETTLE);
            if let Some(api) = &api {
                self.publish_status(api, &ing, &table, &view.services).await;
            }
            *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
            tokio::select! {
                () = stop.cancelled() => break,
                r = cluster.changed() => if r.is_err() { break },
                r = ingresses.changed() => if r.is_err() { break },
                r = classes.changed() => if r.is_err() { break },
                r = secrets.changed() => if r.is_err() { break },
                () = async {
                    match recheck {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Sets each served Ingress's `status.loadBalancer` to the published
    /// Service's, as ingress-nginx does with `--publish-service`.
    async fn publish_status(
        &self,
        api: &ApiClient<Channel>,
        ingresses: &[Value],
        table: &RouteTable,
        services: &Cache,
    ) {
        let (ns, name) = &self.settings.publish_service;
        let addresses: Vec<Value> = services
            .get(&format!("{ns}/{name}"))
            .and_then(|s| s.pointer("/status/loadBalancer/ingress"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // The real host ports too, so `get ingress` can show the port a
            // client must use when the edge could not open 80 or 443.
            .filter_map(|i| {
                let ip = i.get("ip")?;
                Some(match i.get("ports") {
                    Some(ports) => json!({"ip": ip, "ports": ports}),
                    None => json!({"ip": ip}),
                })
            })
            .collect();
        let want = json!({"ingress": addresses});
        let served = table.served();
        for ing in ingresses {
            let key = (
                str_at(ing, "/metadata/namespace").to_string(),
                str_at(ing, "/metadata/name").to_string(),
            );
            if served.binary_search(&key).is_err()
                || ing.pointer("/status/loadBalancer").unwrap_or(&json!({})) == &want
                || addresses.is_empty()
            {
                continue;
            }
            let mut updated = ing.clone();
            updated["status"]["loadBalancer"] = want.clone();
            let Ok(body) = serde_json::to_vec(&updated) else {
                continue;
            };
            // Conflicts are settled by the next pass: the newer object is
            // on its way through the watch.
            if let Err(s) = api
                .clone()
                .update_status(ObjectRequest { object: body })
                .await
            {
                tracing::debug!(ingress = %format!("{}/{}", key.0, key.1), error = %s.message(), "Ingress status not written");
            }
        }
    }

    async fn accept(
        self: Arc<Self>,
        mut listener: PodListener,
        tls: bool,
        limit: Arc<tokio::sync::Semaphore>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Result<(), WorkloadError> {
        let port = listener.port();
        loop {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p.map_err(|_| WorkloadError::Serve {
                    port,
                    protocol: Protocol::Tcp,
                    source: std::io::Error::other("connection limit closed"),
                })?,
                () = stop.cancelled() => return Ok(()),
            };
            let (stream, client) = tokio::select! {
                a = listener.accept() => a.map_err(|source| WorkloadError::Serve {
                    port,
                    protocol: Protocol::Tcp,
                    source,
                })?,
                () = stop.cancelled() => return Ok(()),
            };
            let info = ConnInfo {
                client,
                tls,
                port,
                flow_trace: stream.trace_id(),
            };
            let (controller, stop) = (self.clone(), stop.clone());
            tasks.spawn(
                async move {
                    let _permit = permit;
                    tokio::select! {
                        () = controller.serve_connection(stream, info) => {}
                        () = stop.cancelled() => {}
                    }
                }
                .in_current_span(),
            );
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: PodStream, info: ConnInfo) {
        if info.tls {
            let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
            match tokio::time::timeout(CLIENT_HEADER_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => self.serve_http(tls, info).await,
                Ok(Err(e)) => {
                    tracing::debug!(client = %info.client, error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(client = %info.client, "TLS handshake timed out"),
            }
        } else {
            self.serve_http(stream, info).await;
        }
    }

    async fn serve_http<S>(self: Arc<Self>, io: S, info: ConnInfo)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let executor = self.executor.clone();
        let service = service_fn(move |request| {
            let controller = self.clone();
            async move { Ok::<_, Infallible>(controller.handle(request, info).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(executor);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_HEADER_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
        if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
            tracing::debug!(client = %info.client, error = %e, "client connection ended");
        }
    }

    /// One request: route, pick an endpoint, forward, answer.
    async fn handle(&self, request: Request<Incoming>, info: ConnInfo) -> Response<Body> {
        let trace_id = new_trace_id();
        let timer = SpanTimer::start(trace_id, hop::INGRESS).with_parent(info.flow_trace);
        let host = request_host(&request);
        let path = request.uri().path().to_string();
        let summary = format!("{} {host}{path}", request.method());
        let (mut response, decision) = match self.routes().route(&host, &path) {
            Outcome::NotFound => (
                text(
                    StatusCode::NOT_FOUND,
                    "404 Not Found: no Ingress rule matches this host and path\n",
                ),
                format!("{summary}: no rule matches"),
            ),
            Outcome::Unavailable(u) => (
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("503 Service Unavailable: {}\n", u.reason),
                ),
                format!("{summary}: {} → {}", rule_of(&u.rule, &u.ingress), u.reason),
            ),
            Outcome::Backend(b) => {
                let n = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
                let endpoint = b.endpoints[n % b.endpoints.len()];
                let decision = format!(
                    "{summary}: {} → service {}/{}:{}, endpoint {endpoint}",
                    rule_of(&b.rule, &b.ingress),
                    b.service.0,
                    b.service.1,
                    b.port
                );
                let mut response = self.forward(request, &host, endpoint, info, trace_id).await;
                if let Ok(v) = HeaderValue::from_str(&endpoint.to_string()) {
                    response.headers_mut().insert(UPSTREAM_HEADER, v);
                }
                (response, decision)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&format_trace_id(trace_id)) {
            response.headers_mut().insert(TRACE_HEADER, v);
        }
        let status = response.status().as_u16().to_string();
        timer.finish(&self.recorder, decision, status);
        response
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        host: &str,
        endpoint: SocketAddr,
        info: ConnInfo,
        trace_id: u64,
    ) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Ok(uri) = format!("http://{endpoint}{path}").parse::<Uri>() else {
            return text(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: bad request target\n",
            );
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        let client_ip = info.client.ip().to_string();
        let trace = format_trace_id(trace_id);
        let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        if !parts.headers.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(host)
        {
            // HTTP/2 carries the host as :authority; HTTP/1.1 needs Host.
            parts.headers.insert(header::HOST, v);
        }
        let original_host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(host)
            .to_string();
        let h = &mut parts.headers;
        set(h, "x-forwarded-for", &client_ip);
        set(h, "x-real-ip", &client_ip);
        set(
            h,
            "x-forwarded-proto",
            if info.tls { "https" } else { "http" },
        );
        set(h, "x-forwarded-host", &original_host);
        set(h, "x-forwarded-port", &info.port.to_string());
        set(h, "x-request-id", &trace);
        set(h, "traceparent", &format!("00-{trace:0>32}-{trace}-01"));
        let upstream = Request::from_parts(parts, body.boxed());
        let sent = TRACE
            .scope(
                trace_id,
                tokio::time::timeout(UPSTREAM_TIMEOUT, self.upstream.request(upstream)),
            )
            .await;
        match sent {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(e)) => {
                tracing::debug!(%endpoint, error = %e, "upstream request failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!("502 Bad Gateway: endpoint {endpoint} did not answer\n"),
                )
            }
            Err(_) => text(
                StatusCode::GATEWAY_TIMEOUT,
                &format!("504 Gateway Timeout: endpoint {endpoint} did not answer in time\n"),
            ),
        }
    }
}

/// A Warning event on each Ingress whose `tls` names the Secret.
async fn report_tls_problem(
    api: &ApiClient<Channel>,
    ingresses: &[Value],
    problem: &certs::CertProblem,
) {
    let message = format!("{problem}; serving the default certificate instead");
    for ing in ingresses {
        let names_it = str_at(ing, "/metadata/namespace") == problem.namespace
            && ing
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|t| str_at(t, "/secretName") == problem.name);
        if !names_it {
            continue;
        }
        let recorded = events::record(
            api,
            ing,
            EventType::Warning,
            "InvalidTLSSecret",
            &message,
            events::Source::component("podnet-ingress-controller"),
        )
        .await;
        if let Err(s) = recorded {
            tracing::debug!(error = %s.message(), "event not recorded");
        }
    }
}

/// Runs hyper's own tasks (HTTP/2 streams, pooled upstream connections)
/// with the controller's tasks, so they end when the container stops.
#[derive(Clone)]
struct Tracked {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let stop = self.stop.clone();
        self.tasks.spawn(
            async move {
                tokio::select! {
                    _ = future => {}
                    () = stop.cancelled() => {}
                }
            }
            .in_current_span(),
        );
    }
}

tokio::task_local! {
    /// The journey a new upstream connection belongs to.
    static TRACE: u64;
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or `Host`.
/// The rule a request took, for its journey: `rule R of ingress NS/NAME`,
/// or the controller's default backend, which belongs to no Ingress.
fn rule_of(rule: &str, ingress: &(String, String)) -> String {
    if ingress.1.is_empty() {
        rule.to_string()
    } else {
        format!("rule {rule} of ingress {}/{}", ingress.0, ingress.1)
    }
}

fn request_host(request: &Request<Incoming>) -> String {
    request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
        })
        .unwrap_or_default()
}

/// Removes the headers that describe one hop only (RFC 9110 §7.6.1),
/// including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Opens upstream connections from the ingress pod's own address, through
/// the node's datapath like any pod connection.
#[derive(Clone)]
struct PodConnector {
    ns: Arc<NetNs>,
}

/// An upstream connection, as hyper's pooled client wants it.
struct UpstreamIo(TokioIo<PodStream>);

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tower_service::Service<Uri> for PodConnector {
    type Response = UpstreamIo;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<UpstreamIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let ns = self.ns.clone();
        let trace_id = TRACE.try_with(|t| *t).unwrap_or(0);
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("upstream {uri} is not IP:port")))?;
            let stream = tokio::time::timeout(
                UPSTREAM_CONNECT_TIMEOUT,
                ns.connect_tcp_traced(addr, trace_id),
            )
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
            Ok(UpstreamIo(TokioIo::new(stream)))
        })
    }
}

/// The API as the controller's service account, retried (backing off to
/// 5 s) until it is granted or `stop`: the node may not have credentials
/// while the control plane restarts.
async fn connect_api(access: &ApiAccess, stop: &CancellationToken) -> Option<ApiClient<Channel>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match access.connect().await {
            Ok(api) => return Some(api),
            Err(s) => {
                tracing::warn!(code = ?s.code(), error = %s.message(), "no API credentials for the ingress controller yet")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests;
