//! `podnet/loadgen`: an experiment's traffic generator inside a pod's
//! network namespace. Its requests leave from the pod's address through
//! the pod's own resolver (resolv.conf, search list, `ndots`) and its
//! node's `Egress`, so they cross the service proxy, NetworkPolicy and the
//! overlay as any of the pod's connections would.
//!
//! The node runs it for the runner (`NodeAgent.Loadgen`): [`run`] fills
//! one bucket per second of scenario time and hands each on once every
//! request scheduled in it has ended (its end plus the flow's timeout),
//! so the runner merges finished seconds only and memory here is the few
//! seconds in flight.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use podnet_experiment::series::{Bucket, Outcome, WireBucket};
use podnet_loadgen::{Datagram, Flow, Net, Tally, World};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dns::resolver::{self, ResolveError};
use crate::netns::{NetNs, PodStream, PodUdpSocket};

/// A pod's namespace as a generator's network.
#[derive(Clone)]
pub struct PodNet(pub Arc<NetNs>);

/// A pod UDP socket that hears one peer.
pub struct PodDatagram {
    socket: PodUdpSocket,
    peer: SocketAddr,
}

impl Datagram for PodDatagram {
    async fn send(&self, buf: &[u8]) -> io::Result<()> {
        self.socket.send_to(buf, self.peer).await
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (data, from) = self.socket.recv_from().await?;
            if from == self.peer {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                return Ok(n);
            }
        }
    }
}

/// The class of a lookup that failed: no such name (or no record of the
/// type) is `dns_nxdomain`, no answer `dns_timeout`, the rest `other`.
fn lookup_class(e: &ResolveError) -> Outcome {
    match e {
        ResolveError::NxDomain { .. } | ResolveError::NoData { .. } => Outcome::DnsNxdomain,
        ResolveError::Timeout { .. } => Outcome::DnsTimeout,
        _ => Outcome::Other,
    }
}

impl Net for PodNet {
    type Stream = PodStream;
    type Datagram = PodDatagram;

    async fn resolve(&self, host: &str) -> Result<IpAddr, Outcome> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse() {
            return Ok(ip);
        }
        match resolver::resolve_ipv4(&self.0, bare).await {
            Ok(ips) => ips
                .first()
                .map(|ip| IpAddr::V4(*ip))
                .ok_or(Outcome::DnsNxdomain),
            Err(e) => Err(lookup_class(&e)),
        }
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<PodStream> {
        self.0.connect_tcp(addr).await
    }

    async fn udp(&self, peer: SocketAddr) -> io::Result<PodDatagram> {
        Ok(PodDatagram {
            socket: self.0.bind_udp(0)?,
            peer,
        })
    }

    async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
        server: Option<SocketAddr>,
        timeout: Duration,
    ) -> Outcome {
        match server {
            Some(server) => podnet_loadgen::query_once(self, server, name, rtype, timeout).await,
            None => match resolver::lookup(&self.0, name, rtype).await {
                Ok(_) => Outcome::Ok,
                // NOERROR without a record of the type is an answer.
                Err(ResolveError::NoData { .. }) => Outcome::Ok,
                Err(e) => lookup_class(&e),
            },
        }
    }
}

/// One finished second of the flow's part run here.
pub type Second = (u64, WireBucket);

/// Runs this pod's part of `flow` from `t0`, sending each second to
/// `seconds` once it is complete, until the schedule is done or `stop`
/// (then what is due later is not sent and what was sent still reports).
/// `zone` is this pod's node's, for the cross-zone share.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ns: Arc<NetNs>,
    flow: Flow,
    seed: u64,
    t0: Instant,
    world: World,
    zone: String,
    stop: CancellationToken,
    seconds: mpsc::Sender<Second>,
) -> Result<Tally, String> {
    let timeout = flow.timeout;
    let flag = Arc::new(AtomicBool::new(false));
    let stopper = {
        let flag = flag.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            flag.store(true, Ordering::Relaxed);
        })
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let generator = tokio::spawn(podnet_loadgen::run(
        0,
        flow,
        seed,
        t0,
        PodNet(ns),
        world,
        flag,
        tx,
    ));
    let mut open: BTreeMap<u64, Bucket> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            sample = rx.recv() => match sample {
                Some((_, sample)) => {
                    open.entry(sample.scheduled.as_secs()).or_default().record(&sample, &zone);
                }
                None => break,
            },
            _ = tick.tick() => {
                // Second s is complete once its last request could have
                // ended: s + 1 + timeout, with a margin for the hand-over.
                let elapsed = t0.elapsed().saturating_sub(timeout + Duration::from_millis(200));
                let done_before = elapsed.as_secs().saturating_sub(1);
                let finished: Vec<u64> = open.range(..done_before).map(|(s, _)| *s).collect();
                for s in finished {
                    if let Some(b) = open.remove(&s)
                        && seconds.send((s, b.to_wire())).await.is_err()
                    {
                        // Nobody listens: stop sending.
                        stop.cancel();
                    }
                }
            }
        }
    }
    for (s, b) in std::mem::take(&mut open) {
        if seconds.send((s, b.to_wire())).await.is_err() {
            break;
        }
    }
    stopper.abort();
    generator
        .await
        .map_err(|e| format!("the generator's task failed: {e}"))?
}
