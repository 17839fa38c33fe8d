//! The built-in container images: what a container of a podnet pod runs,
//! picked by its `image`.
//!
//! Each image is a small server written against the pod's socket API
//! (`crate::netns`), so it is reached exactly the way a real container is:
//! through the pod IP, `localhost`, Services and the overlay.
//!
//! - `podnet/http-echo`: answers every HTTP request with a JSON description
//!   of who answered (pod, namespace, IP, node) and what it received, so load
//!   balancing is visible from the client.
//! - `podnet/tcp-echo` and `podnet/udp-echo`: echo bytes and datagrams.
//!   tcp-echo also echoes SCTP associations ([`sctp_ports`]): on every
//!   port it serves with `--sctp` (or `SCTP=true`), and on the container
//!   ports declared `protocol: SCTP`.
//! - `podnet/toolbox`: where `podnet exec` commands are usually run (see
//!   `crate::toolbox`), although exec works in any pod. Without `command`
//!   and `args` it idles until stopped. With them (the container's
//!   `command` followed by its `args`, as a container runtime joins them
//!   for an image without an entrypoint) it runs that toolbox command as
//!   its main process and exits with the command's status when it ends:
//!   `["sh", "-c", "exit 3"]` exits 3, `["false"]` 1, `["true"]` 0,
//!   `["sleep", "5"]` 0 after 5 s, `["sleep", "infinity"]` never. SIGTERM
//!   ends the command: the container exits 143 (128 + SIGTERM).
//! - `podnet/dns`: cluster DNS (`crate::dns::server`) on UDP and TCP port
//!   53, answering from the node's view of Services and EndpointSlices,
//!   which it gets from the container's
//!   [`WorkloadEnv`](crate::container::WorkloadEnv).
//! - `podnet/ingress`: the ingress controller (`crate::ingress`) on ports 80
//!   and 443, following Ingresses through the API.
//!
//! [`start`] binds every listener before it returns, so a readiness probe
//! right after start already finds the ports open, and returns the running
//! container as a future that serves until its cancellation token fires
//! and resolves to the container's exit status (0 for a server that was
//! stopped).
//!
//! What a container is to the node (its spec, its environment, its errors)
//! is `crate::container`; this module is how each image serves it.
//!
//! [`start_signalled`] adds the termination signal: SIGTERM (`term`) makes
//! a server with a drain time (`podnet/http-echo` and `podnet/tcp-echo`:
//! `--drain=5s` or the environment variable `DRAIN_SECONDS`, default 0)
//! keep serving existing and new connections for that long and then exit,
//! as a real server's graceful shutdown does; every other image exits at
//! once. SIGKILL (`kill`) always ends the container at once. It also adds
//! a start-up time: the same two servers with `--startup-delay=3s` (or
//! `STARTUP_DELAY_SECONDS`, default 0) run that long before they bind
//! their ports, as an application that loads before it listens, so a
//! connection meanwhile is refused and only a readiness probe tells the
//! pod is not serving yet. A signal during the start-up ends it at once.
//!
//! Deliberately not here: process semantics (restarts, back-off, logs) and
//! probes belong to the pod runtime; the server images never exit on their
//! own unless their sockets fail or they are signalled (a toolbox command
//! is what exits on purpose). Images are matched by repository name only:
//! tags and digests are ignored, and no registry is ever contacted.

mod echo;
mod http_echo;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::container::{ContainerSpec, WorkloadError};
use crate::dns;
use crate::ingress;
use crate::netns::{NetNs, PodListener, PodStream, StreamProtocol};
use crate::toolbox;
use podnet_proto::model::view::Protocol;

/// The images [`start`] knows, in the order error messages list them.
pub const KNOWN_IMAGES: &[&str] = &[
    "podnet/http-echo",
    "podnet/tcp-echo",
    "podnet/udp-echo",
    "podnet/toolbox",
    "podnet/dns",
    "podnet/ingress",
];

/// The exit status of a process ended by SIGTERM (128 + 15).
pub const SIGTERM_EXIT: i32 = 143;

/// What a running container resolves to: its exit status, or how it
/// failed while serving (the runtime reports that as exit status 1).
pub type Exit = Result<i32, WorkloadError>;

/// The port `podnet/http-echo` listens on when the container declares none
/// (what most http-echo images default to).
const HTTP_ECHO_DEFAULT_PORT: u16 = 8080;
/// The port the echo images listen on when the container declares none.
const ECHO_DEFAULT_PORT: u16 = 9000;

/// The images, parsed from the `image` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    HttpEcho,
    TcpEcho,
    UdpEcho,
    Toolbox,
    Dns,
    Ingress,
}

impl Image {
    fn parse(image: &str) -> Result<Image, WorkloadError> {
        match repository(image) {
            "podnet/http-echo" => Ok(Image::HttpEcho),
            "podnet/tcp-echo" => Ok(Image::TcpEcho),
            "podnet/udp-echo" => Ok(Image::UdpEcho),
            "podnet/toolbox" => Ok(Image::Toolbox),
            "podnet/dns" => Ok(Image::Dns),
            "podnet/ingress" => Ok(Image::Ingress),
            _ => Err(WorkloadError::UnknownImage {
                image: image.to_owned(),
                known: KNOWN_IMAGES.join(", "),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Image::HttpEcho => "podnet/http-echo",
            Image::TcpEcho => "podnet/tcp-echo",
            Image::UdpEcho => "podnet/udp-echo",
            Image::Toolbox => "podnet/toolbox",
            Image::Dns => "podnet/dns",
            Image::Ingress => "podnet/ingress",
        }
    }
}

/// The image reference without its `@digest` and `:tag`. The tag is only
/// looked for in the last path segment, so a registry port
/// (`localhost:5000/x`) is not mistaken for one.
fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _digest)| name);
    let last_segment = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[last_segment..].find(':') {
        Some(colon) => &image[..last_segment + colon],
        None => image,
    }
}

/// Starts the container described by `spec` in `ns`.
///
/// Every listener is bound before this returns; the returned future serves
/// until `cancel` fires (then it stops accepting, ends every connection and
/// returns `Ok(0)`) or until a socket fails; a toolbox command resolves to
/// its exit status when it ends. Dropping the future also ends every
/// connection it spawned.
pub fn start(
    ns: Arc<NetNs>,
    spec: &ContainerSpec,
    cancel: CancellationToken,
) -> Result<impl Future<Output = Exit> + Send + 'static, WorkloadError> {
    let image = Image::parse(&spec.image)?;
    let exit_zero = |r: Result<(), WorkloadError>| r.map(|()| 0);
    let running: BoxFuture<'static, Exit> = match image {
        Image::HttpEcho => {
            let ports = listen_ports(image, spec, Protocol::Tcp, HTTP_ECHO_DEFAULT_PORT)?;
            let listeners = bind_tcp(&ns, &ports)?;
            let recorder = spec.workload_env.recorder.clone();
            http_echo::serve(ns, listeners, recorder, cancel)
                .map(exit_zero)
                .boxed()
        }
        Image::TcpEcho => {
            let ports = listen_ports(image, spec, Protocol::Tcp, ECHO_DEFAULT_PORT)?;
            let sctp = sctp_ports(image, spec, &ports)?;
            let mut listeners = bind_tcp(&ns, &ports)?;
            listeners.extend(bind(&ns, StreamProtocol::Sctp, &sctp)?);
            echo::serve_tcp(listeners, cancel).map(exit_zero).boxed()
        }
        Image::UdpEcho => {
            let ports = listen_ports(image, spec, Protocol::Udp, ECHO_DEFAULT_PORT)?;
            let sockets = ports
                .iter()
                .map(|&port| {
                    ns.bind_udp(port).map_err(|source| WorkloadError::Bind {
                        port,
                        protocol: Protocol::Udp,
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            echo::serve_udp(sockets, cancel).map(exit_zero).boxed()
        }
        Image::Toolbox if spec.args.is_empty() => async move {
            cancel.cancelled().await;
            Ok(0)
        }
        .boxed(),
        Image::Toolbox => {
            let (argv, env) = (spec.args.clone(), spec.env.clone());
            async move {
                tokio::select! {
                    out = toolbox::run_main(ns, &env, &argv) => {
                        tracing::info!(exit_code = out.exit_code, "toolbox command exited");
                        Ok(out.exit_code)
                    }
                    () = cancel.cancelled() => Ok(SIGTERM_EXIT),
                }
            }
            .boxed()
        }
        Image::Dns => start_dns(&ns, spec, cancel)?.map(exit_zero).boxed(),
        Image::Ingress => ingress::start(ns, spec, cancel)?.map(exit_zero).boxed(),
    };
    Ok(running)
}

/// Starts the container described by `spec` in `ns`, with the two signals
/// of a real process: `term` asks it to stop (the image's drain time, see
/// the module docs, then it exits), `kill` stops it at once.
pub fn start_signalled(
    ns: Arc<NetNs>,
    spec: &ContainerSpec,
    term: CancellationToken,
    kill: CancellationToken,
) -> Result<impl Future<Output = Exit> + Send + 'static, WorkloadError> {
    let image = Image::parse(&spec.image)?;
    let (drain, startup) = match image {
        Image::HttpEcho | Image::TcpEcho => (drain_time(image, spec)?, startup_delay(image, spec)?),
        _ => (Duration::ZERO, Duration::ZERO),
    };
    let stop = kill.child_token();
    let running = if startup.is_zero() {
        start(ns, spec, stop.clone())?.boxed()
    } else {
        // Nothing is bound yet: a wrong port shows when the delay is over,
        // as the container's exit.
        let (spec, stop, term) = (spec.clone(), stop.clone(), term.clone());
        async move {
            tokio::select! {
                () = tokio::time::sleep(startup) => {}
                () = term.cancelled() => return Ok(0),
                () = stop.cancelled() => return Ok(0),
            }
            start(ns, &spec, stop)?.await
        }
        .boxed()
    };
    Ok(async move {
        tokio::pin!(running);
        tokio::select! {
            result = &mut running => return result,
            () = term.cancelled() => {}
        }
        if !drain.is_zero() {
            tracing::info!(?drain, "terminating: serving for the drain time");
            tokio::select! {
                result = &mut running => return result,
                () = tokio::time::sleep(drain) => {}
            }
        }
        stop.cancel();
        running.await
    })
}

/// The longest drain or start-up time an image accepts: a pod's grace
/// period, or its probes, end it long before in any real setup.
const MAX_DRAIN: Duration = Duration::from_secs(3600);

/// A duration a server image reads from its `--FLAG`/`-FLAG` argument
/// (`5s`, `500ms`, `1m`, or bare seconds; the last one wins), else from an
/// environment variable (seconds), else 0.
struct DurationSetting {
    flag: &'static str,
    env: &'static str,
    /// The environment variable as errors name it.
    env_origin: &'static str,
}

/// How long a server image keeps serving after SIGTERM.
const DRAIN: DurationSetting = DurationSetting {
    flag: "drain",
    env: "DRAIN_SECONDS",
    env_origin: "environment variable DRAIN_SECONDS",
};

/// How long a server image runs before it binds its ports.
const STARTUP_DELAY: DurationSetting = DurationSetting {
    flag: "startup-delay",
    env: "STARTUP_DELAY_SECONDS",
    env_origin: "environment variable STARTUP_DELAY_SECONDS",
};

fn drain_time(image: Image, spec: &ContainerSpec) -> Result<Duration, WorkloadError> {
    duration_setting(image, spec, &DRAIN)
}

fn startup_delay(image: Image, spec: &ContainerSpec) -> Result<Duration, WorkloadError> {
    duration_setting(image, spec, &STARTUP_DELAY)
}

fn duration_setting(
    image: Image,
    spec: &ContainerSpec,
    setting: &DurationSetting,
) -> Result<Duration, WorkloadError> {
    let bad = |origin: &'static str, value: &str, reason: String| WorkloadError::BadArgs {
        image: image.name().to_owned(),
        origin,
        value: value.to_owned(),
        reason,
    };
    let mut found = None;
    let mut args = spec.args.iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if name != setting.flag {
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .map(String::as_str)
                .ok_or_else(|| bad("argument", arg, "the flag needs a value".to_owned()))?,
        };
        // The last occurrence wins, as with Go's flag package.
        found = Some(parse_duration_arg(value).map_err(|reason| bad("argument", value, reason))?);
    }
    if let Some(duration) = found {
        return Ok(duration);
    }
    match spec.env.iter().rev().find(|(name, _)| name == setting.env) {
        Some((_, value)) => {
            let origin = setting.env_origin;
            let seconds: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad(origin, value, "expected a number of seconds".to_owned()))?;
            bounded_duration(seconds).map_err(|reason| bad(origin, value, reason))
        }
        None => Ok(Duration::ZERO),
    }
}

/// `5s`, `500ms`, `1m`, `1.5s` or bare seconds (`5`).
fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let seconds: f64 = number
        .parse()
        .map_err(|_| "expected a duration like 5s, 500ms or 1m".to_owned())?;
    bounded_duration(seconds * unit)
}

fn bounded_duration(seconds: f64) -> Result<Duration, String> {
    let too_long = || format!("expected a duration from 0 to {}s", MAX_DRAIN.as_secs());
    let duration = Duration::try_from_secs_f64(seconds).map_err(|_| too_long())?;
    if duration > MAX_DRAIN {
        return Err(too_long());
    }
    Ok(duration)
}

/// Binds UDP and TCP on the DNS port (53 unless overridden like any image's
/// port; the containerPorts of a CoreDNS manifest, 53/UDP, 53/TCP and
/// 9153/TCP for metrics, leave it at 53) and serves cluster DNS, forwarding
/// what is outside the zones to the pod's resolv.conf nameservers, with
/// its counters on 9153/TCP `/metrics`.
fn start_dns(
    ns: &Arc<NetNs>,
    spec: &ContainerSpec,
    cancel: CancellationToken,
) -> Result<impl Future<Output = Result<(), WorkloadError>> + Send + 'static, WorkloadError> {
    let image = Image::Dns;
    let port = listen_ports(image, spec, Protocol::Udp, dns::server::DNS_PORT)?
        .first()
        .copied()
        .unwrap_or(dns::server::DNS_PORT);
    let domain = dns::ClusterDomain::cluster_local().map_err(|error| WorkloadError::BadArgs {
        image: image.name().to_owned(),
        origin: "cluster domain",
        value: podnet_proto::model::network::CLUSTER_DOMAIN.to_owned(),
        reason: error.to_string(),
    })?;
    let udp = ns.bind_udp(port).map_err(|source| WorkloadError::Bind {
        port,
        protocol: Protocol::Udp,
        source,
    })?;
    let tcp = ns.listen_tcp(port).map_err(|source| WorkloadError::Bind {
        port,
        protocol: Protocol::Tcp,
        source,
    })?;
    let metrics = ns
        .listen_tcp(dns::metrics::METRICS_PORT)
        .map_err(|source| WorkloadError::Bind {
            port: dns::metrics::METRICS_PORT,
            protocol: Protocol::Tcp,
            source,
        })?;
    let env = spec.workload_env.clone();
    // Each server counts its own queries: `/metrics` is per pod, as a
    // CoreDNS pod's.
    let stats = Arc::new(dns::DnsStats::default());
    let forwarder = dns::Forwarder::new(ns.clone(), stats.forward().clone());
    Ok(async move {
        let metrics_cancel = cancel.child_token();
        let metrics_loop = {
            let (stats, metrics_cancel) = (stats.clone(), metrics_cancel.clone());
            async move {
                if let Err(error) =
                    dns::metrics::serve_metrics(metrics, stats, metrics_cancel).await
                {
                    tracing::warn!(%error, "the DNS metrics listener failed");
                }
            }
        };
        let dns_loop = async move {
            let served = dns::server::serve(
                udp,
                tcp,
                domain,
                env.cluster,
                Some(forwarder),
                stats,
                cancel,
            )
            .await;
            metrics_cancel.cancel();
            served
        };
        let ((), served) = tokio::join!(metrics_loop, dns_loop);
        served.map_err(|error| match error {
            dns::server::ServeError::Udp { port, source } => WorkloadError::Serve {
                port,
                protocol: Protocol::Udp,
                source,
            },
            dns::server::ServeError::Tcp { port, source } => WorkloadError::Serve {
                port,
                protocol: Protocol::Tcp,
                source,
            },
        })
    }
    .instrument(tracing::info_span!("dns", port)))
}

/// Accepts on every listener and runs `handle` for each connection as a
/// tracked task, until `cancel` fires or a listener fails. Returns only
/// after every connection task has ended: they are handed a token that is
/// cancelled when accepting stops, however it stops (including this future
/// being dropped).
async fn accept_loops<H, F>(
    image: &'static str,
    listeners: Vec<PodListener>,
    cancel: CancellationToken,
    handle: H,
) -> Result<(), WorkloadError>
where
    H: Fn(PodStream, SocketAddr, CancellationToken) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let connections = cancel.child_token();
    let _end_connections = connections.clone().drop_guard();
    let tracker = TaskTracker::new();
    let loops = listeners.into_iter().map(|mut listener| {
        let (tracker, handle, connections) = (&tracker, &handle, &connections);
        async move {
            let port = listener.port();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = connections.cancelled() => return Ok(()),
                };
                let (stream, peer) = accepted.map_err(|source| WorkloadError::Serve {
                    port,
                    protocol: listener.protocol().protocol(),
                    source,
                })?;
                let span = tracing::debug_span!("conn", image, conn.port = port, conn.peer = %peer);
                tracker.spawn(handle(stream, peer, connections.clone()).instrument(span));
            }
        }
    });
    // Listeners are dropped (new connections refused) as soon as this ends.
    let result = futures::future::try_join_all(loops).await.map(|_| ());
    connections.cancel();
    tracker.close();
    tracker.wait().await;
    result
}

fn bind_tcp(ns: &Arc<NetNs>, ports: &[u16]) -> Result<Vec<PodListener>, WorkloadError> {
    bind(ns, StreamProtocol::Tcp, ports)
}

fn bind(
    ns: &Arc<NetNs>,
    protocol: StreamProtocol,
    ports: &[u16],
) -> Result<Vec<PodListener>, WorkloadError> {
    ports
        .iter()
        .map(|&port| {
            ns.listen(protocol, port)
                .map_err(|source| WorkloadError::Bind {
                    port,
                    protocol: protocol.protocol(),
                    source,
                })
        })
        .collect()
}

/// The SCTP ports of `podnet/tcp-echo`, beside its TCP `tcp_ports`: all of
/// those with `--sctp` (also `--sctp=true`; the last occurrence wins) or,
/// without the flag, the environment variable `SCTP=true` (`1`, `false`,
/// `0` too), and, unless `--port`/`PORT` overrides the declared ports,
/// the container ports declared `protocol: SCTP`. A port in both is
/// served once. An association is echoed as a TCP connection is.
fn sctp_ports(
    image: Image,
    spec: &ContainerSpec,
    tcp_ports: &[u16],
) -> Result<Vec<u16>, WorkloadError> {
    let bad = |origin: &'static str, value: &str| WorkloadError::BadArgs {
        image: image.name().to_owned(),
        origin,
        value: value.to_owned(),
        reason: "expected true or false".to_owned(),
    };
    let mut flag = None;
    for arg in &spec.args {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        match name.split_once('=') {
            None if name == "sctp" => flag = Some(true),
            Some(("sctp", value)) => {
                flag = Some(parse_bool(value).ok_or_else(|| bad("argument", arg))?);
            }
            _ => {}
        }
    }
    let flag = match flag {
        Some(flag) => flag,
        None => match spec.env.iter().rev().find(|(name, _)| name == "SCTP") {
            Some((_, value)) => {
                parse_bool(value).ok_or_else(|| bad("environment variable SCTP", value))?
            }
            None => false,
        },
    };
    let mut ports: Vec<u16> = if flag { tcp_ports.to_vec() } else { Vec::new() };
    let overridden = port_from_args(image, &spec.args)?.is_some()
        || spec.env.iter().any(|(name, _)| name == "PORT");
    if !overridden {
        ports.extend(
            spec.ports
                .iter()
                .filter(|(_, p)| *p == Protocol::Sctp)
                .map(|(port, _)| *port),
        );
    }
    let mut seen = std::collections::HashSet::new();
    ports.retain(|port| seen.insert(*port));
    Ok(ports)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The ports a server image listens on: a `--port`/`-listen` argument wins,
/// then the `PORT` environment variable, then the declared container ports
/// of `protocol`, then `default`.
///
/// An override replaces the declared ports rather than adding to them: in
/// Kubernetes `containerPorts` only document what the process does, and the
/// process listens where its flags say.
fn listen_ports(
    image: Image,
    spec: &ContainerSpec,
    protocol: Protocol,
    default: u16,
) -> Result<Vec<u16>, WorkloadError> {
    if let Some(port) = port_from_args(image, &spec.args)? {
        return Ok(vec![port]);
    }
    // The last definition wins, as it does for duplicated env entries in a pod spec.
    if let Some((_, value)) = spec.env.iter().rev().find(|(name, _)| name == "PORT") {
        let port = parse_port(value).map_err(|reason| WorkloadError::BadArgs {
            image: image.name().to_owned(),
            origin: "environment variable PORT",
            value: value.clone(),
            reason,
        })?;
        return Ok(vec![port]);
    }
    let mut declared: Vec<u16> = spec
        .ports
        .iter()
        .filter(|(_, p)| *p == protocol)
        .map(|(port, _)| *port)
        .collect();
    declared.dedup();
    if declared.is_empty() {
        declared.push(default);
    }
    Ok(declared)
}

/// Finds `--port=N`, `--port N`, `-port N`, `-listen=:N`, `--listen ADDR:N`
/// (Go's flag package accepts one or two dashes, which is what
/// hashicorp/http-echo users write). Other arguments, such as http-echo's
/// `-text=...`, are accepted and ignored so that real manifests start.
fn port_from_args(image: Image, args: &[String]) -> Result<Option<u16>, WorkloadError> {
    let bad = |value: &str, reason: String| WorkloadError::BadArgs {
        image: image.name().to_owned(),
        origin: "argument",
        value: value.to_owned(),
        reason,
    };
    let mut found = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if name != "port" && name != "listen" {
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .map(String::as_str)
                .ok_or_else(|| bad(arg, "the flag needs a value".to_owned()))?,
        };
        let port_text = if name == "listen" {
            // ":8080", "0.0.0.0:8080"; a pod has one address, so the host part does not matter.
            value.rsplit_once(':').map_or(value, |(_host, port)| port)
        } else {
            value
        };
        // The last occurrence wins, as with Go's flag package.
        found = Some(parse_port(port_text).map_err(|reason| bad(value, reason))?);
    }
    Ok(found)
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err("expected a port number between 1 and 65535".to_owned()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests;
