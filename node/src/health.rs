//! The node's health endpoints, served from the node's own address as
//! kube-proxy serves them:
//!
//! - `:10256/healthz` answers 200 once the service proxy is programmed: the
//!   check a cloud load balancer uses for Services with
//!   `externalTrafficPolicy: Cluster`.
//! - each LoadBalancer Service with `externalTrafficPolicy: Local` has a
//!   `healthCheckNodePort`; there every node answers 200 when it runs a
//!   ready endpoint of the Service and 503 when it does not, with
//!   kube-proxy's JSON body, so the load balancer sends traffic only to
//!   nodes that can serve it locally.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use podnet_proto::model::network::PROXY_HEALTHZ_PORT;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::datapath::Datapath;
use crate::proxy::ServiceTable;
use podnet_pod::netns::{NetNs, PodListener};

/// A health check that has not sent its request by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What one health port reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Check {
    /// kube-proxy's own `/healthz`.
    Proxy,
    /// `healthCheckNodePort` of Service `namespace/name`.
    Service { namespace: String, name: String },
}

/// The health ports of one node.
pub struct Health {
    ns: Arc<NetNs>,
    node: String,
    datapath: Weak<Datapath>,
    running: Mutex<HashMap<u16, (Check, CancellationToken)>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Health {
    /// Serves `/healthz` on the node's address; Service health ports come
    /// and go with [`Health::sync`].
    pub fn start(
        ns: Arc<NetNs>,
        datapath: &Arc<Datapath>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Health> {
        let health = Arc::new(Health {
            node: datapath.node_name().to_string(),
            ns,
            datapath: Arc::downgrade(datapath),
            running: Mutex::new(HashMap::new()),
            tasks,
            shutdown,
        });
        health.ensure(PROXY_HEALTHZ_PORT, Check::Proxy);
        health
    }

    /// Serves exactly the health ports `table` asks for (and `/healthz`).
    pub fn sync(self: &Arc<Self>, table: &ServiceTable) {
        let wanted: HashMap<u16, Check> = table
            .health_checks()
            .iter()
            .map(|h| {
                let check = Check::Service {
                    namespace: h.namespace.clone(),
                    name: h.name.clone(),
                };
                (h.port, check)
            })
            .chain([(PROXY_HEALTHZ_PORT, Check::Proxy)])
            .collect();
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            running.retain(|port, (check, cancel)| {
                let keep = wanted.get(port) == Some(check);
                if !keep {
                    cancel.cancel();
                }
                keep
            });
        }
        for (port, check) in wanted {
            self.ensure(port, check);
        }
    }

    fn ensure(self: &Arc<Self>, port: u16, check: Check) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.contains_key(&port) {
            return;
        }
        let listener = match self.ns.listen_tcp(port) {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(port, %error, "cannot serve a health check port");
                return;
            }
        };
        let cancel = self.shutdown.child_token();
        running.insert(port, (check.clone(), cancel.clone()));
        let health = self.clone();
        self.tasks
            .spawn(async move { health.serve(listener, check, cancel).await });
    }

    async fn serve(
        self: Arc<Self>,
        mut listener: PodListener,
        check: Check,
        cancel: CancellationToken,
    ) {
        let check = Arc::new(check);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = cancel.cancelled() => return,
            };
            let Ok((stream, _peer)) = accepted else {
                return;
            };
            let (health, check, cancel) = (self.clone(), check.clone(), cancel.clone());
            self.tasks.spawn(async move {
                let service = service_fn(move |_request| {
                    let response = health.answer(&check);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    () = cancel.cancelled() => {}
                }
            });
        }
    }

    fn answer(&self, check: &Check) -> Response<Full<Bytes>> {
        let Some(datapath) = self.datapath.upgrade() else {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"nodeEligible": false}),
            );
        };
        match check {
            Check::Proxy => {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                reply(
                    StatusCode::OK,
                    json!({"lastUpdated": now, "currentTime": now, "nodeEligible": true}),
                )
            }
            Check::Service { namespace, name } => {
                let local = datapath
                    .services()
                    .local_ready_endpoints(namespace, name, &self.node);
                let status = if local > 0 {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(
                    status,
                    json!({
                        "service": {"namespace": namespace, "name": name},
                        "localEndpoints": local,
                        "serviceProxyHealthy": true,
                    }),
                )
            }
        }
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
