//! A flow: what each request is, its rate profile, and [`run`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use podnet_experiment::schedule::{Arrival, Profile, Schedule};
use podnet_experiment::series::{Outcome, Sample, Served};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::classify::classify;
use crate::http::HttpClient;
use crate::net::{Datagram, Net};
use crate::request::{HttpRequest, HttpVersion, Request};
use crate::world::World;

/// Requests of one flow outstanding at most; a request due beyond it is
/// shed.
pub const MAX_IN_FLIGHT: usize = 4096;
/// The most of an answer read.
const MAX_BODY: usize = 1 << 20;
/// What a TCP or UDP echo request sends (and expects back).
const ECHO_LEN: usize = 32;

/// One flow, ready to run (and to travel to a pod's generator as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub name: String,
    pub request: Request,
    pub profile: Profile,
    pub arrival: Arrival,
    pub timeout: Duration,
    /// Its stream of the run's seed.
    pub stream: u64,
    /// Closed loop instead of the profile's arrivals (whose length alone
    /// then counts).
    #[serde(default)]
    pub closed: Option<ClosedLoop>,
}

/// A closed loop: `concurrency` workers, each sending its next request
/// once its last one is done and `think` has passed, as wrk or ab do. Its
/// requests are scheduled when sent: a closed loop measures what the
/// target's own pace lets through, never a lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedLoop {
    pub concurrency: u32,
    pub think: Duration,
}

/// How the flow went, besides its series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub scheduled: u64,
    pub shed: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.scheduled += other.scheduled;
        self.shed += other.shed;
    }
}

/// What sends a flow's requests, made once per flow.
enum Sender<N: Net> {
    Http(Box<HttpSender<N>>),
    Other(N),
}

struct HttpSender<N: Net> {
    request: HttpRequest,
    method: http::Method,
    uri: http::Uri,
    /// The pool of a flow that reuses connections.
    client: HttpClient<N>,
    net: N,
}

impl<N: Net> Sender<N> {
    fn new(net: N, request: &Request) -> Result<Sender<N>, String> {
        match request {
            Request::Http(h) => {
                let method: http::Method = h
                    .method
                    .parse()
                    .map_err(|_| format!("{:?} is not an HTTP method", h.method))?;
                let uri: http::Uri = h.url.parse().map_err(|e| format!("{}: {e}", h.url))?;
                if uri.host().is_none() {
                    return Err(format!("{}: no host", h.url));
                }
                Ok(Sender::Http(Box::new(HttpSender {
                    request: h.clone(),
                    method,
                    uri,
                    client: crate::http::client(net.clone(), h)?,
                    net,
                })))
            }
            Request::Dns { rtype, .. } => {
                rtype
                    .parse::<hickory_proto::rr::RecordType>()
                    .map_err(|e| format!("{rtype:?}: {e}"))?;
                Ok(Sender::Other(net))
            }
            Request::Tcp { .. } | Request::Udp { .. } => Ok(Sender::Other(net)),
        }
    }
}

/// Runs `flow` from `t0` until its schedule is done, unless `stop` is set
/// first (then what is due later is not sent). Samples go to `out` tagged
/// with `index`; requests still in flight when this returns hold a sender
/// until they finish (within the flow's timeout), so a collector ends
/// after the last one. A flow that cannot be sent at all (a bad URL, a CA
/// that is no certificate) is refused before anything is scheduled.
#[allow(clippy::too_many_arguments)]
pub async fn run<N: Net>(
    index: usize,
    flow: Flow,
    seed: u64,
    t0: Instant,
    net: N,
    world: World,
    stop: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<(usize, Sample)>,
) -> Result<Tally, String> {
    // What cannot be sent at all is refused before any lookup.
    Sender::new(net.clone(), &flow.request).map_err(|e| format!("{}: {e}", flow.name))?;
    let flow = resolved(flow, &net).await?;
    let sender =
        Arc::new(Sender::new(net, &flow.request).map_err(|e| format!("{}: {e}", flow.name))?);
    if let Some(closed) = flow.closed {
        let flow = Arc::new(flow);
        return Ok(run_closed(index, flow, closed, t0, sender, world, stop, out).await);
    }
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
                    let (flow, sender, out, world, in_flight) = (
                        flow.clone(),
                        sender.clone(),
                        out.clone(),
                        world.clone(),
                        in_flight.clone(),
                    );
                    handle.spawn(async move {
                        let sent = Instant::now();
                        let (outcome, served) =
                            match tokio::time::timeout(flow.timeout, one(&flow, &sender, &world))
                                .await
                            {
                                Ok(done) => done,
                                Err(_) => (timed_out(&flow.request), None),
                            };
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        let _ = out.send((
                            index,
                            Sample {
                                scheduled: due,
                                lag: sent.saturating_duration_since(at),
                                latency: Instant::now().saturating_duration_since(at),
                                outcome,
                                served,
                            },
                        ));
                    });
                }
                let _ = done_tx.send(tally);
            })
    };
    drop(out);
    match scheduler {
        Ok(_) => Ok(done_rx.await.unwrap_or_default()),
        Err(e) => Err(format!(
            "{}: cannot start the flow's scheduler thread: {e}",
            flow.name
        )),
    }
}

/// Runs `flow` as a closed loop from `t0` until its profile's length has
/// passed (or `stop` is set), and returns once every worker's last
/// request is done.
#[allow(clippy::too_many_arguments)]
async fn run_closed<N: Net>(
    index: usize,
    flow: Arc<Flow>,
    closed: ClosedLoop,
    t0: Instant,
    sender: Arc<Sender<N>>,
    world: World,
    stop: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<(usize, Sample)>,
) -> Tally {
    let end = t0 + flow.profile.length();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..closed.concurrency {
        let (flow, sender, world, stop, out) = (
            flow.clone(),
            sender.clone(),
            world.clone(),
            stop.clone(),
            out.clone(),
        );
        workers.spawn(async move {
            tokio::time::sleep_until(t0.into()).await;
            let mut sent = 0u64;
            loop {
                let at = Instant::now();
                if at >= end || stop.load(Ordering::Relaxed) {
                    return sent;
                }
                sent += 1;
                let (outcome, served) =
                    match tokio::time::timeout(flow.timeout, one(&flow, &sender, &world)).await {
                        Ok(done) => done,
                        Err(_) => (timed_out(&flow.request), None),
                    };
                let _ = out.send((
                    index,
                    Sample {
                        scheduled: at.saturating_duration_since(t0),
                        lag: Duration::ZERO,
                        latency: at.elapsed(),
                        outcome,
                        served,
                    },
                ));
                if !closed.think.is_zero() {
                    tokio::time::sleep(closed.think).await;
                }
            }
        });
    }
    drop(out);
    let mut tally = Tally::default();
    while let Some(sent) = workers.join_next().await {
        tally.scheduled += sent.unwrap_or(0);
    }
    tally
}

/// One request of `flow` now, bounded by its timeout: how a runner sees
/// whether a target answers before the flow starts.
pub async fn probe<N: Net>(flow: &Flow, net: N) -> Result<Outcome, String> {
    let sender = Sender::new(net, &flow.request).map_err(|e| format!("{}: {e}", flow.name))?;
    Ok(
        match tokio::time::timeout(flow.timeout, one(flow, &sender, &World::empty())).await {
            Ok((outcome, _)) => outcome,
            Err(_) => timed_out(&flow.request),
        },
    )
}

/// `flow` with its target's name resolved once, as wrk and k6 resolve
/// theirs when they start: the requests measure the target, and lookups
/// are what `dns:` flows are for (a pod's per-connection lookups would
/// otherwise cross the cluster DNS, and a fault between the client and
/// the DNS pods would show as the target failing).
async fn resolved<N: Net>(mut flow: Flow, net: &N) -> Result<Flow, String> {
    let (host, port, connect_to) = match &mut flow.request {
        Request::Http(h) => {
            let uri: http::Uri = h
                .url
                .parse()
                .map_err(|e| format!("{}: {}: {e}", flow.name, h.url))?;
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            (
                uri.host().unwrap_or("").to_string(),
                port,
                &mut h.connect_to,
            )
        }
        Request::Tcp {
            host,
            port,
            connect_to,
            ..
        }
        | Request::Udp {
            host,
            port,
            connect_to,
        } => (host.clone(), *port, connect_to),
        Request::Dns { .. } => return Ok(flow),
    };
    if connect_to.is_none() {
        let ip = net
            .resolve(&host)
            .await
            .map_err(|o| format!("{}: cannot resolve {host:?} ({})", flow.name, o.as_str()))?;
        *connect_to = Some(SocketAddr::new(ip, port));
    }
    Ok(flow)
}

/// The class of a request that ran out of time.
fn timed_out(request: &Request) -> Outcome {
    match request {
        Request::Dns { .. } => Outcome::DnsTimeout,
        _ => Outcome::Timeout,
    }
}

/// One request (its caller bounds it by the flow's timeout).
async fn one<N: Net>(flow: &Flow, sender: &Sender<N>, world: &World) -> (Outcome, Option<Served>) {
    match (&flow.request, sender) {
        (Request::Http(_), Sender::Http(h)) => http(h, world).await,
        (
            Request::Tcp {
                host,
                port,
                connect_to,
                echo,
            },
            Sender::Other(net),
        ) => (tcp(net, host, *port, *connect_to, *echo).await, None),
        (
            Request::Udp {
                host,
                port,
                connect_to,
            },
            Sender::Other(net),
        ) => (udp(net, host, *port, *connect_to).await, None),
        (
            Request::Dns {
                name,
                rtype,
                server,
            },
            Sender::Other(net),
        ) => {
            let Ok(rtype) = rtype.parse() else {
                return (Outcome::Other, None);
            };
            (net.lookup(name, rtype, *server, flow.timeout).await, None)
        }
        _ => (Outcome::Other, None),
    }
}

async fn http<N: Net>(h: &HttpSender<N>, world: &World) -> (Outcome, Option<Served>) {
    let HttpSender {
        request,
        method,
        uri,
        client,
        net,
    } = h;
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .header(http::header::USER_AGENT, "podnet-traffic");
    if !request.reuse && request.version == HttpVersion::Http1 {
        builder = builder.header(http::header::CONNECTION, "close");
    }
    let Ok(req) = builder.body(Empty::<Bytes>::new()) else {
        return (Outcome::Other, None);
    };
    // One connection per request: a client of its own, whose pool dies
    // with it (HTTP/2 would otherwise multiplex on one).
    let own;
    let client = if request.reuse {
        client
    } else {
        match crate::http::client(net.clone(), request) {
            Ok(c) => {
                own = c;
                &own
            }
            Err(_) => return (Outcome::Other, None),
        }
    };
    let response = match client.request(req).await {
        Ok(r) => r,
        Err(e) => return (classify(&e), None),
    };
    let status = response.status();
    let upstream = response
        .headers()
        .get(crate::world::UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok()?.parse::<SocketAddr>().ok());
    let body = match Limited::new(response.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return (Outcome::Reset, None),
    };
    let outcome = match status.as_u16() {
        400..=499 => Outcome::Http4xx,
        500..=599 => Outcome::Http5xx,
        _ => Outcome::Ok,
    };
    // The answer names its pod; else the ingress controller names the
    // endpoint it forwarded to (an error it made when the pod failed).
    let served = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| world.served(&v))
        .or_else(|| world.served_at(upstream?.ip()));
    (outcome, served)
}

async fn address<N: Net>(
    net: &N,
    host: &str,
    port: u16,
    connect_to: Option<SocketAddr>,
) -> Result<SocketAddr, Outcome> {
    match connect_to {
        Some(a) => Ok(a),
        None => Ok(SocketAddr::new(net.resolve(host).await?, port)),
    }
}

/// A line of [`ECHO_LEN`] bytes unique to this request.
fn echo_line() -> [u8; ECHO_LEN] {
    let mut line = [b'.'; ECHO_LEN];
    let id = format!("podnet {:016x}", rand::random::<u64>());
    line[..id.len()].copy_from_slice(id.as_bytes());
    line[ECHO_LEN - 1] = b'\n';
    line
}

async fn tcp<N: Net>(
    net: &N,
    host: &str,
    port: u16,
    connect_to: Option<SocketAddr>,
    echo: bool,
) -> Outcome {
    let addr = match address(net, host, port, connect_to).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let mut stream = match net.connect(addr).await {
        Ok(s) => s,
        Err(e) => return classify(&e),
    };
    if echo {
        let line = echo_line();
        let mut back = [0u8; ECHO_LEN];
        let exchange = async {
            stream.write_all(&line).await?;
            stream.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(())
        };
        if let Err(e) = exchange.await {
            return classify(&e);
        }
        if back != line {
            return Outcome::Other;
        }
    }
    let _ = stream.shutdown().await;
    Outcome::Ok
}

async fn udp<N: Net>(net: &N, host: &str, port: u16, connect_to: Option<SocketAddr>) -> Outcome {
    let addr = match address(net, host, port, connect_to).await {
        Ok(a) => a,
        Err(o) => return o,
    };
    let line = echo_line();
    let exchange = async {
        let socket = net.udp(addr).await?;
        socket.send(&line).await?;
        let mut buf = [0u8; 2048];
        loop {
            let n = socket.recv(&mut buf).await?;
            // Another request's late echo is not this one's.
            if buf[..n] == line {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    match exchange.await {
        Ok(()) => Outcome::Ok,
        Err(e) => classify(&e),
    }
}

#[cfg(test)]
mod tests;
