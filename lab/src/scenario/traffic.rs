//! Open-loop HTTP flows from the host, through the edge's real listeners,
//! like a user's browser.
//!
//! Each flow's schedule is made before anything is sent. A scheduler
//! thread of its own sleeps until each request is due (the OS timer, not
//! tokio's millisecond wheel, so the generator's own lag stays in
//! microseconds) and hands the request to the runtime, whatever became of
//! the ones before: latency is measured from the scheduled time, and a
//! request the generator could not send within `timeout` of it, or while
//! [`MAX_IN_FLIGHT`] are outstanding, is `shed`. Every finished request
//! goes to the flow's [`FlowSeries`] with what it says of its server
//! (http-echo's `pod` and `node`) and whether that pod was Terminating.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use podnet_experiment::schedule::{Arrival, Profile, Schedule};
use podnet_experiment::series::{FlowSeries, Outcome, Sample, Served};
use podnet_proto::informer::Cache;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// Requests of one flow outstanding at most; a request due beyond it is
/// shed.
pub const MAX_IN_FLIGHT: usize = 4096;
/// The most of an answer read.
const MAX_BODY: usize = 1 << 20;

/// One flow, ready to run.
#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub request: Request,
    pub profile: Profile,
    pub arrival: Arrival,
    pub timeout: Duration,
    /// Its stream of the run's seed.
    pub stream: u64,
}

/// What each request of a flow is.
#[derive(Debug, Clone)]
pub enum Request {
    Http {
        method: http::Method,
        /// The request's target on the edge: `http://IP:REALPORT/path`.
        uri: http::Uri,
        /// The Host header: the URL's host and port as the user wrote them.
        host: String,
        reuse: bool,
    },
    /// One query in one datagram from a new socket, as a stub resolver
    /// sends it.
    Dns {
        server: SocketAddr,
        name: hickory_proto::rr::Name,
        rtype: hickory_proto::rr::RecordType,
    },
}

/// What the cluster says of a serving pod: its zone (by node) and
/// whether it is Terminating, as the runner's informers see them.
#[derive(Clone)]
pub struct World {
    pub zones: Arc<BTreeMap<String, String>>,
    pub pods: watch::Receiver<Cache>,
}

impl World {
    fn served(&self, answer: &Value) -> Option<Served> {
        let pod = answer.get("pod")?.as_str()?.to_string();
        let namespace = answer
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let node = answer
            .get("node")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let terminating = self
            .pods
            .borrow()
            .get(&format!("{namespace}/{pod}"))
            .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some());
        Some(Served {
            zone: self.zones.get(&node).cloned().unwrap_or_default(),
            pod: format!("{namespace}/{pod}"),
            node,
            terminating,
        })
    }
}

/// How the flow went, besides its series.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub scheduled: u64,
    pub shed: u64,
}

/// Runs `flow` from `t0` until its schedule is done, unless `stop` is set
/// first (then what is due later is not sent). Samples go to `out` tagged
/// with `index`; requests still in flight when this returns hold a sender
/// until they finish (within the flow's timeout), so the collector ends
/// after the last one.
pub async fn run(
    index: usize,
    flow: Flow,
    seed: u64,
    t0: Instant,
    world: World,
    stop: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<(usize, Sample)>,
) -> Tally {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let reuse = matches!(flow.request, Request::Http { reuse: true, .. });
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(if reuse { usize::MAX } else { 0 })
        .build(connector);
    let handle = tokio::runtime::Handle::current();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let flow = Arc::new(flow);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let scheduler = {
        let flow = flow.clone();
        let in_flight = in_flight.clone();
        let out = out.clone();
        std::thread::Builder::new()
            .name(format!("flow {}", flow.name))
            .spawn(move || {
                let mut tally = Tally::default();
                let schedule = Schedule::new(&flow.profile, flow.arrival, seed, flow.stream);
                for due in schedule {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tally.scheduled += 1;
                    let at = t0 + due;
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    let late = Instant::now().saturating_duration_since(at);
                    if late > flow.timeout || in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                        tally.shed += 1;
                        let _ = out.send((
                            index,
                            Sample {
                                scheduled: due,
                                lag: late,
                                latency: late,
                                outcome: Outcome::Shed,
                                served: None,
                            },
                        ));
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (flow, client, out, world, in_flight) = (
                        flow.clone(),
                        client.clone(),
                        out.clone(),
                        world.clone(),
                        in_flight.clone(),
                    );
                    handle.spawn(async move {
                        let sample = one(&flow, &client, &world, due, at).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        let _ = out.send((index, sample));
                    });
                }
                let _ = done_tx.send(tally);
            })
    };
    drop(out);
    match scheduler {
        Ok(_) => done_rx.await.unwrap_or_default(),
        Err(e) => {
            tracing::error!(flow = %flow.name, error = %e, "cannot start the flow's scheduler thread");
            Tally::default()
        }
    }
}

/// One request, due at `at` (`due` into the run).
async fn one(
    flow: &Flow,
    client: &Client<HttpConnector, Empty<Bytes>>,
    world: &World,
    due: Duration,
    at: Instant,
) -> Sample {
    let sent = Instant::now();
    let lag = sent.saturating_duration_since(at);
    let (method, uri, host, reuse) = match &flow.request {
        Request::Http {
            method,
            uri,
            host,
            reuse,
        } => (method, uri, host, *reuse),
        Request::Dns {
            server,
            name,
            rtype,
        } => {
            let outcome = dns(*server, name, *rtype, flow.timeout).await;
            return Sample {
                scheduled: due,
                lag,
                latency: Instant::now().saturating_duration_since(at),
                outcome,
                served: None,
            };
        }
    };
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "podnet-traffic");
    if !reuse {
        builder = builder.header(http::header::CONNECTION, "close");
    }
    let (outcome, served) = match builder.body(Empty::<Bytes>::new()) {
        Err(_) => (Outcome::Other, None),
        Ok(request) => match tokio::time::timeout(flow.timeout, exchange(client, request)).await {
            Err(_) => (Outcome::Timeout, None),
            Ok(Err(outcome)) => (outcome, None),
            Ok(Ok((status, body))) => {
                let outcome = match status.as_u16() {
                    400..=499 => Outcome::Http4xx,
                    500..=599 => Outcome::Http5xx,
                    _ => Outcome::Ok,
                };
                let served = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| world.served(&v));
                (outcome, served)
            }
        },
    };
    Sample {
        scheduled: due,
        lag,
        latency: Instant::now().saturating_duration_since(at),
        outcome,
        served,
    }
}

/// One query: NOERROR is `ok` (an answer or none), NXDOMAIN
/// `dns_nxdomain`, no answer within `timeout` `dns_timeout`, anything else
/// (SERVFAIL, REFUSED, a garbled answer) `other`.
async fn dns(
    server: SocketAddr,
    name: &hickory_proto::rr::Name,
    rtype: hickory_proto::rr::RecordType,
    timeout: Duration,
) -> Outcome {
    use hickory_proto::op::{Message, Query, ResponseCode};
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap_or(server)
    } else {
        "[::1]:0".parse().unwrap_or(server)
    };
    let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
        return Outcome::Other;
    };
    let id: u16 = rand::random();
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), rtype));
    let Ok(bytes) = query.to_vec() else {
        return Outcome::Other;
    };
    let exchange = async {
        socket.send_to(&bytes, server).await?;
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await?;
            // Only the server's answer to this query counts.
            if from != server {
                continue;
            }
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => return Ok::<_, std::io::Error>(Some(m)),
                Ok(_) => continue,
                Err(_) => return Ok(None),
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::DnsTimeout,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
        Ok(Err(_)) | Ok(Ok(None)) => Outcome::Other,
        Ok(Ok(Some(m))) => match m.metadata.response_code {
            ResponseCode::NoError => Outcome::Ok,
            ResponseCode::NXDomain => Outcome::DnsNxdomain,
            _ => Outcome::Other,
        },
    }
}

async fn exchange(
    client: &Client<HttpConnector, Empty<Bytes>>,
    request: http::Request<Empty<Bytes>>,
) -> Result<(http::StatusCode, Bytes), Outcome> {
    let response = client.request(request).await.map_err(|e| classify(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| Outcome::Reset)?
        .to_bytes();
    Ok((status, body))
}

/// The error class of a failed request, from the I/O error beneath it.
fn classify(e: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => Outcome::Reset,
                std::io::ErrorKind::TimedOut => Outcome::Timeout,
                _ => Outcome::Other,
            };
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return Outcome::Reset;
        }
        source = err.source();
    }
    Outcome::Other
}

/// Collects `rx`'s samples into `series` (one per flow, shared with the
/// live line and the abort checks, which read it in place), until every
/// sender is gone.
pub async fn collect(
    mut rx: mpsc::UnboundedReceiver<(usize, Sample)>,
    series: Arc<std::sync::Mutex<Vec<FlowSeries>>>,
) {
    while let Some((i, sample)) = rx.recv().await {
        let mut all = series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = all.get_mut(i) {
            s.record(&sample);
        }
    }
}

/// The edge address a flow's URL reaches: `ip:real_port`.
pub fn edge_uri(url: &http::Uri, edge: SocketAddr) -> Result<http::Uri, String> {
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{edge}{path}")
        .parse()
        .map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_edge_with_their_path() {
        let url: http::Uri = "http://shop.example.com/cart?x=1".parse().unwrap();
        let edge: SocketAddr = "127.0.1.1:40080".parse().unwrap();
        assert_eq!(
            edge_uri(&url, edge).unwrap().to_string(),
            "http://127.0.1.1:40080/cart?x=1"
        );
        let bare: http::Uri = "http://shop.example.com".parse().unwrap();
        assert_eq!(
            edge_uri(&bare, edge).unwrap().to_string(),
            "http://127.0.1.1:40080/"
        );
    }

    #[test]
    fn failures_are_classed_by_their_io_error() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), Outcome::Refused);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&reset), Outcome::Reset);
        let other = std::io::Error::other("x");
        assert_eq!(classify(&other), Outcome::Other);
    }

    #[test]
    fn answers_name_their_pod_and_its_state() {
        let (tx, rx) = watch::channel(Cache::from([(
            "default/web-1".to_string(),
            serde_json::json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        )]));
        let world = World {
            zones: Arc::new(BTreeMap::from([("node-2".to_string(), "b".to_string())])),
            pods: rx,
        };
        let s = world
            .served(&serde_json::json!({"pod": "web-1", "namespace": "default", "node": "node-2"}))
            .unwrap();
        assert_eq!(s.pod, "default/web-1");
        assert_eq!(s.zone, "b");
        assert!(s.terminating);
        let s = world
            .served(&serde_json::json!({"pod": "web-2", "node": "node-1"}))
            .unwrap();
        assert!(!s.terminating);
        assert_eq!(s.zone, "");
        assert!(world.served(&serde_json::json!({"hello": 1})).is_none());
        drop(tx);
    }
}
