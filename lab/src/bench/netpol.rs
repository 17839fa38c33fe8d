//! `podnet bench netpol`: what NetworkPolicy enforcement costs a new
//! connection, and how fast a policy reaches every node.
//!
//! - **New connections** (in one process, as `overlay`): client pod `a` on
//!   node-a opens TCP connections to server pod `b` on node-b over the real
//!   overlay, [`WORKERS`] at a time: connect, a 64-byte exchange, close.
//!   Side A: neither node holds a NetworkPolicy, so nothing is judged.
//!   Side B: both nodes' indexes hold what an agent's informers would hand
//!   them in a cluster with `--policies` policies selecting other pods (one
//!   pod each, over four namespaces) and [`SERVER_POLICIES`] selecting the
//!   server, each allowing the client its own way (pod and namespace
//!   selectors, named port, port range, ipBlocks), all compiled from their
//!   JSON; every connection is judged at both nodes. The sides alternate on
//!   the same pair, A B A B, and only the index differs between them.
//! - **Programming latency** (node processes, `podnet up`): one client pod
//!   per node under a default-deny egress policy and one server pod. Each
//!   round applies a policy allowing the clients to reach the server and
//!   probes every client (the control plane's Exec of `nc -z`, so the probe
//!   is a real connection through the client's node datapath) every
//!   [`PROBE_EVERY`] until it connects; the round's figure is the time from
//!   the apply's answer until the last node's client connected. The
//!   reference is the same apply's watch event at a watcher of the bench's
//!   own: the control plane's fan-out floor every node's agent also waits
//!   for. The policy is then deleted and every client denied again before
//!   the next round.
//!
//! Not measured: UDP (judged once per exchange, not per connection), and
//! the agent's sync cost on its own (it is inside the programming latency).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use podnet_controlplane::ca::ClusterCa;
use podnet_netpol::{Direction, Index};
use podnet_node::testing::PodPair;
use podnet_proto::v1::{DeleteRequest, ListRequest, WatchRequest};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::BenchArgs;
use super::common::{Cluster, in_scratch_dir};
use crate::api::{self, Api};

/// Clients opening connections at the same time (new connections bench).
const WORKERS: usize = 4;
/// A round alternates the sides in slices of about this long.
const SLICE: Duration = Duration::from_millis(250);
/// The server pod's port, named `http` in its pod spec.
const SERVER_PORT: u16 = 8080;
/// Bytes each way on every connection.
const EXCHANGE: usize = 64;
/// How long one connect or one read may take before the round fails.
const IO_LIMIT: Duration = Duration::from_secs(5);
/// Policies selecting the server; see [`server_policies`].
pub(super) const SERVER_POLICIES: usize = 10;
/// Namespaces the other pods and their policies are spread over.
const NAMESPACES: [&str; 4] = ["default", "team-1", "team-2", "team-3"];
/// PodPair's node addresses, as the index learns them from Node objects.
const NODE_A_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const NODE_B_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);

/// How often each client is probed while a round waits for its node.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// `nc -w`: how long a probe waits for a connection a policy drops.
const PROBE_WAIT: &str = "0.1";
/// Probes of one client in flight at most.
const PROBES_IN_FLIGHT: usize = 16;
/// How long a node may take to enforce a change before the run fails.
const ENFORCE_LIMIT: Duration = Duration::from_secs(10);
/// How long the cluster may take to run every pod.
const READY_LIMIT: Duration = Duration::from_secs(120);
/// The allowing policy each round applies and deletes.
const ALLOW: &str = "allow-clients-to-server";

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    ensure_flag!(args.rounds >= 1, "--rounds must be at least 1");
    ensure_flag!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be in (0, 3600], not {}",
        args.seconds
    );
    ensure_flag!(
        args.policies <= 1_000_000,
        "--policies must be at most 1000000, not {}",
        args.policies
    );
    ensure_flag!(
        (1..=200).contains(&args.nodes()),
        "--nodes must be 1 to 200 for netpol, not {}",
        args.nodes()
    );
    connections(args).await?;
    println!();
    in_scratch_dir("netpol", async |dir| programming(args, dir).await).await
}

// ---- new connections ------------------------------------------------------

/// The pod objects the agent's informers would hold: `a` (the client, on
/// node-a), `b` (the server, on node-b, port `http`), and `others` pods
/// `other-N` with addresses from 10.128.0.1 up, over [`NAMESPACES`].
pub(super) fn pods(a: &[IpAddr], b: &[IpAddr], others: usize) -> Vec<Value> {
    let pod = |ns: &str, name: &str, app: &str, node: &str, ips: &[IpAddr], ports: Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": ns, "name": name, "labels": {"app": app}, "resourceVersion": "1"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "podnet/tcp-echo", "ports": ports}]},
            "status": {
                "phase": "Running",
                "podIP": ips.first().map(ToString::to_string),
                "podIPs": ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect::<Vec<_>>(),
            },
        })
    };
    let mut out = vec![
        pod("default", "a", "client", "node-a", a, json!([])),
        pod(
            "default",
            "b",
            "server",
            "node-b",
            b,
            json!([{"name": "http", "containerPort": SERVER_PORT}]),
        ),
    ];
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 1));
    for i in 0..others {
        // At most 1M others (a flag bound): inside 10.128.0.0/12, which
        // server-3 excepts and the client (10.244.0.2) is not in.
        let ip = IpAddr::V4(Ipv4Addr::from(base + i as u32));
        let name = format!("other-{i}");
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        out.push(pod(
            NAMESPACES[i % NAMESPACES.len()],
            &name,
            &name,
            node,
            &[ip],
            json!([{"name": "http", "containerPort": 80}]),
        ));
    }
    out
}

fn netpol(namespace: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": "1"},
        "spec": spec,
    })
}

/// `n` policies, `other-N` selecting pod `other-N` only, in three shapes
/// (ingress from a neighbour pod on a port, egress to an ipBlock, ingress
/// from a namespace).
pub(super) fn other_policies(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let ns = NAMESPACES[i % NAMESPACES.len()];
            let me = json!({"matchLabels": {"app": format!("other-{i}")}});
            let spec = match i % 3 {
                0 => json!({
                    "podSelector": me,
                    "ingress": [{
                        "from": [{"podSelector": {"matchLabels": {"app": format!("other-{}", (i + NAMESPACES.len()) % n.max(1))}}}],
                        "ports": [{"protocol": "TCP", "port": 80}],
                    }],
                }),
                1 => json!({
                    "podSelector": me,
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}],
                }),
                _ => json!({
                    "podSelector": me,
                    "ingress": [{
                        "from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}],
                        "ports": [{"port": "http"}],
                    }],
                }),
            };
            netpol(ns, &format!("other-{i}"), spec)
        })
        .collect()
}

/// The [`SERVER_POLICIES`] policies selecting the server (`app=server`),
/// each allowing the client (`app=client`, 10.244.0.2) to port 8080 in
/// its own way.
pub(super) fn server_policies() -> Vec<Value> {
    let server = json!({"matchLabels": {"app": "server"}});
    let client = json!({"matchLabels": {"app": "client"}});
    let tcp = json!([{"protocol": "TCP", "port": SERVER_PORT}]);
    let ingress = |from: Value, ports: Value| {
        let mut rule = json!({"from": from});
        if !ports.is_null() {
            rule["ports"] = ports;
        }
        json!({"podSelector": server, "ingress": [rule]})
    };
    let specs = [
        ingress(json!([{"podSelector": client}]), tcp.clone()),
        ingress(json!([{"podSelector": client}]), json!([{"port": "http"}])),
        ingress(json!([{"ipBlock": {"cidr": "10.244.0.0/24"}}]), tcp.clone()),
        ingress(
            json!([{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.128.0.0/12"]}}]),
            tcp.clone(),
        ),
        ingress(
            json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}, "podSelector": client}]),
            tcp.clone(),
        ),
        ingress(
            json!([{"podSelector": client}]),
            json!([{"protocol": "TCP", "port": 8000, "endPort": 8100}]),
        ),
        ingress(
            json!([{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["client", "other-1"]}]}}]),
            tcp.clone(),
        ),
        json!({
            "podSelector": server,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": client}], "ports": [{"port": "http"}]}],
            "egress": [{}],
        }),
        ingress(json!([{"podSelector": client}]), Value::Null),
        ingress(
            json!([{"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}]),
            tcp,
        ),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| netpol("default", &format!("server-{i}"), spec))
        .collect()
}

/// The index an agent builds from these objects: the same upserts its
/// sync makes, namespaces and nodes first, policies compiled from JSON.
pub(super) fn index_of(pods: &[Value], policies: &[Value]) -> anyhow::Result<Index> {
    let mut index = Index::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let team = if i == 0 { "ops" } else { "dev" };
        index.upsert_namespace(ns, BTreeMap::from([("team".into(), team.into())]));
    }
    index.upsert_node("node-a", vec![NODE_A_IP.into()]);
    index.upsert_node("node-b", vec![NODE_B_IP.into()]);
    for pod in pods {
        index.upsert_pod(podnet_node::policy::pod_info(pod));
    }
    for object in policies {
        let policy: NetworkPolicy =
            serde_json::from_value(object.clone()).context("a bench policy does not parse")?;
        let compiled = podnet_netpol::compile(&policy)
            .map_err(|e| anyhow::anyhow!("a bench policy does not compile: {e}"))?;
        index.upsert_policy(compiled);
    }
    Ok(index)
}

/// One side's round: connections made and their connect latency (ns).
struct Round {
    connections: u64,
    connect: Histogram<u64>,
    secs: f64,
}

impl Round {
    fn empty() -> anyhow::Result<Round> {
        Ok(Round {
            connections: 0,
            connect: histogram()?,
            secs: 0.0,
        })
    }

    fn rate(&self) -> f64 {
        self.connections as f64 / self.secs
    }

    fn add(&mut self, other: &Round) -> anyhow::Result<()> {
        self.connections += other.connections;
        self.secs += other.secs;
        self.connect.add(&other.connect)?;
        Ok(())
    }
}

/// The order of a round's slices: A B B A, repeated, so that a change in
/// the machine's load within a round falls on both sides alike.
pub(super) fn slice_is_b(slice: usize) -> bool {
    matches!(slice % 4, 1 | 2)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?)
}

/// Answers every connection to `b:SERVER_PORT`: reads the client's bytes,
/// writes them back, closes. Until `stop`.
fn serve(pair: &PodPair, stop: CancellationToken) -> anyhow::Result<JoinSet<()>> {
    let mut listener = pair.b.listen_tcp(SERVER_PORT)?;
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut s, _)) = accepted else { return };
            // Reap finished connections so the set stays small.
            while conns.try_join_next().is_some() {}
            conns.spawn(async move {
                let mut buf = [0u8; EXCHANGE];
                if let Ok(Ok(_)) = tokio::time::timeout(IO_LIMIT, s.read_exact(&mut buf)).await {
                    let _ = s.write_all(&buf).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    Ok(tasks)
}

/// One connection: connect (timed), exchange, close.
async fn one_connection(pair: &PodPair, dst: SocketAddr) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut s = tokio::time::timeout(IO_LIMIT, pair.a.connect_tcp(dst))
        .await
        .with_context(|| format!("connect to {dst} took more than {IO_LIMIT:?}"))?
        .with_context(|| format!("connect to {dst}"))?;
    let connect = start.elapsed().as_nanos() as u64;
    let msg = [7u8; EXCHANGE];
    let mut back = [0u8; EXCHANGE];
    tokio::time::timeout(IO_LIMIT, async {
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        s.shutdown().await
    })
    .await
    .with_context(|| format!("no answer from {dst} within {IO_LIMIT:?}"))?
    .with_context(|| format!("exchange with {dst}"))?;
    Ok(connect)
}

/// [`WORKERS`] clients opening connections for `secs`.
async fn connection_round(pair: &PodPair, dst: SocketAddr, secs: f64) -> anyhow::Result<Round> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        workers.push(async {
            let mut h = histogram()?;
            let mut n = 0u64;
            // Bounded by the deadline; every step by IO_LIMIT.
            while Instant::now() < deadline {
                h.record(one_connection(pair, dst).await?.max(1))?;
                n += 1;
            }
            anyhow::Ok((n, h))
        });
    }
    let mut round = Round {
        connections: 0,
        connect: histogram()?,
        secs: 0.0,
    };
    for r in futures::future::join_all(workers).await {
        let (n, h) = r?;
        round.connections += n;
        round.connect.add(&h)?;
    }
    round.secs = start.elapsed().as_secs_f64();
    Ok(round)
}

fn counters(pair: &PodPair) -> [u64; 3] {
    let a = &pair.dp_a.policy().stats;
    let b = &pair.dp_b.policy().stats;
    [
        a.allowed.load(Ordering::Relaxed) + b.allowed.load(Ordering::Relaxed),
        a.dropped_egress.load(Ordering::Relaxed) + b.dropped_egress.load(Ordering::Relaxed),
        a.dropped_ingress.load(Ordering::Relaxed) + b.dropped_ingress.load(Ordering::Relaxed),
    ]
}

/// One round of a side: `index` in both nodes, then connections; checks
/// that side B judged every connection at both nodes and side A none.
async fn side(
    pair: &PodPair,
    dst: SocketAddr,
    index: &Index,
    secs: f64,
    judged: bool,
) -> anyhow::Result<Round> {
    for dp in [&pair.dp_a, &pair.dp_b] {
        dp.policy().update(|i| *i = index.clone());
    }
    let before = counters(pair);
    let round = connection_round(pair, dst, secs).await?;
    let after = counters(pair);
    let allowed = after[0] - before[0];
    anyhow::ensure!(
        after[1] == before[1] && after[2] == before[2],
        "policies dropped {} connections of a bench round (the index does not allow the client)",
        after[1] + after[2] - before[1] - before[2]
    );
    if judged {
        anyhow::ensure!(
            allowed >= 2 * round.connections,
            "only {allowed} judgements for {} connections: the nodes did not judge each at both ends",
            round.connections
        );
    } else {
        anyhow::ensure!(allowed == 0, "{allowed} connections judged with no policy");
    }
    Ok(round)
}

/// What the nodes' enforcers spend judging one of the bench's
/// connections (both ends), with no index and with `with`: nanoseconds per
/// connection, timed over many calls outside any round; and of that the
/// index's verdicts alone with `with`.
fn judge_cost(pair: &PodPair, dst: SocketAddr, with: &Index) -> [f64; 3] {
    const CALLS: u32 = 20_000;
    let src = SocketAddr::new(pair.a.ip(), 40_000);
    let mut out = [0.0; 3];
    for (slot, index) in [Index::new(), with.clone()].iter().enumerate() {
        for dp in [&pair.dp_a, &pair.dp_b] {
            dp.policy().update(|i| *i = index.clone());
        }
        let start = Instant::now();
        for _ in 0..CALLS {
            let egress = pair.dp_a.policy().tcp(Direction::Egress, src, dst);
            let ingress = pair.dp_b.policy().tcp(Direction::Ingress, src, dst);
            std::hint::black_box((egress, ingress));
        }
        out[slot] = start.elapsed().as_nanos() as f64 / f64::from(CALLS);
    }
    // The index's part alone: endpoints and both verdicts, no lock, no
    // flow log.
    let start = Instant::now();
    for _ in 0..CALLS {
        let flow = podnet_netpol::Flow {
            src: with.endpoint(src.ip()),
            dst: with.endpoint(dst.ip()),
            protocol: podnet_netpol::Protocol::Tcp,
            dst_port: dst.port(),
        };
        std::hint::black_box(with.judge(&flow));
    }
    out[2] = start.elapsed().as_nanos() as f64 / f64::from(CALLS);
    out
}

async fn connections(args: &BenchArgs) -> anyhow::Result<()> {
    let ca = ClusterCa::generate()?;
    let pair = super::pod_pair(&ca)?;
    let stop = CancellationToken::new();
    let server = serve(&pair, stop.clone())?;
    let dst = SocketAddr::new(pair.b.ip(), SERVER_PORT);
    let a_ips: Vec<IpAddr> = pair.a.addresses().collect();
    let b_ips: Vec<IpAddr> = pair.b.addresses().collect();
    let mut policies = other_policies(args.policies);
    policies.extend(server_policies());
    let with = index_of(&pods(&a_ips, &b_ips, args.policies), &policies)?;
    let without = Index::new();
    let n_policies = policies.len();
    println!(
        "netpol new connections: {} rounds of {:.1}s per side in A B B A slices of {} ms, {WORKERS} clients, connect + {EXCHANGE} B each way + close; B: {n_policies} policies ({} selecting the server)",
        args.rounds,
        args.seconds,
        SLICE.as_millis(),
        SERVER_POLICIES
    );
    // Warm-up of both sides, not counted.
    let warm = args.seconds.min(0.5);
    side(&pair, dst, &without, warm, false).await?;
    side(&pair, dst, &with, warm, true).await?;
    let (mut rate_a, mut rate_b) = (Vec::new(), Vec::new());
    let (mut all_a, mut all_b) = (histogram()?, histogram()?);
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let slices = (args.seconds / SLICE.as_secs_f64()).ceil().max(1.0) as usize;
    let slice_secs = args.seconds / slices as f64;
    for round in 1..=args.rounds {
        let (mut a, mut b) = (Round::empty()?, Round::empty()?);
        // 2 × slices slices of slice_secs: each side gets --seconds.
        for slice in 0..2 * slices {
            if slice_is_b(slice) {
                b.add(&side(&pair, dst, &with, slice_secs, true).await?)?;
            } else {
                a.add(&side(&pair, dst, &without, slice_secs, false).await?)?;
            }
        }
        println!(
            "round {round}: no policy {:.0} conn/s (connect p50/p99 {:.1}/{:.1} us), {n_policies} policies {:.0} conn/s ({:.1}/{:.1} us), ratio {}",
            a.rate(),
            us(&a.connect, 0.5),
            us(&a.connect, 0.99),
            b.rate(),
            us(&b.connect, 0.5),
            us(&b.connect, 0.99),
            super::ratio(b.rate(), a.rate()),
        );
        rate_a.push(a.rate());
        rate_b.push(b.rate());
        all_a.add(&a.connect)?;
        all_b.add(&b.connect)?;
    }
    stop.cancel();
    server.join_all().await;
    let judge_ns = judge_cost(&pair, dst, &with);
    pair.shutdown.cancel();
    let (ra, rb) = (super::median(&mut rate_a), super::median(&mut rate_b));
    println!();
    println!("| figure | {n_policies} policies (B) | no policy (A) | ratio B/A | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| new connections/s, {WORKERS} clients (median of rounds) | {rb:.0} | {ra:.0} | {} | >= 0.9 |",
        super::ratio(rb, ra)
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "| connect latency {name} (all rounds) | {:.1} us | {:.1} us | {} | |",
            us(&all_b, q),
            us(&all_a, q),
            super::ratio(us(&all_b, q), us(&all_a, q))
        );
    }
    println!(
        "| judging one connection, egress at node-a + ingress at node-b (Enforcer::tcp, flow log included) | {:.2} us | {:.2} us | | |",
        judge_ns[1] / 1000.0,
        judge_ns[0] / 1000.0
    );
    println!(
        "| of which the index's verdicts (Index::endpoint + Index::judge, no lock, no flow log) | {:.2} us | | | |",
        judge_ns[2] / 1000.0
    );
    Ok(())
}

// ---- programming latency --------------------------------------------------

/// The `q` quantile of `v` (nearest rank: the smallest value with at
/// least `q` of the values at or below it); NaN for none.
pub(super) fn percentile(v: &[f64], q: f64) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `p50 X ms, p99 Y ms, max Z ms` of milliseconds.
fn summary(ms: &[f64]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(ms, 0.5),
        percentile(ms, 0.99),
        percentile(ms, 1.0)
    )
}

/// The server, one client per node (pinned by nodeName) and the
/// default-deny egress policy for the clients.
pub(super) fn cluster_objects(nodes: &[String]) -> Vec<Value> {
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "default", "name": "server", "labels": {"app": "server"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "echo", "image": "podnet/http-echo", "ports": [{"name": "http", "containerPort": SERVER_PORT}]}],
        },
    })];
    for node in nodes {
        out.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": client_name(node), "labels": {"app": "client"}},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "toolbox", "image": "podnet/toolbox"}],
            },
        }));
    }
    out.push(netpol(
        "default",
        "deny-client-egress",
        json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"]}),
    ));
    out
}

fn client_name(node: &str) -> String {
    format!("client-{node}")
}

/// What each round applies: egress from the clients to the server's port.
pub(super) fn allow_policy() -> Value {
    netpol(
        "default",
        ALLOW,
        json!({
            "podSelector": {"matchLabels": {"app": "client"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "server"}}}], "ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
        }),
    )
}

/// What one probe saw.
enum Probe {
    Connected(Duration),
    /// nc's exit code and standard error.
    Failed(i32, String),
}

/// `nc -z -w PROBE_WAIT SERVER 8080` in `pod`, through the control plane.
/// An Exec that fails (the pod is gone, the node does not answer) is an
/// error, not a failed probe.
async fn probe(mut api: Api, pod: String, target: IpAddr) -> anyhow::Result<Probe> {
    let command: Vec<String> = [
        "nc",
        "-z",
        "-w",
        PROBE_WAIT,
        &target.to_string(),
        &SERVER_PORT.to_string(),
    ]
    .map(String::from)
    .into();
    let start = Instant::now();
    let out = tokio::time::timeout(
        IO_LIMIT,
        api::exec_in(&mut api, "default", &pod, &command, Vec::new()),
    )
    .await
    .with_context(|| format!("exec in {pod} took more than {IO_LIMIT:?}"))?
    .with_context(|| format!("exec in {pod}"))?;
    Ok(match out.exit_code {
        0 => Probe::Connected(start.elapsed()),
        code => Probe::Failed(
            code,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ),
    })
}

/// Probes `pod` every [`PROBE_EVERY`] (overlapping, at most
/// [`PROBES_IN_FLIGHT`]) until one connects; the time from `start` until
/// that probe's answer, and the probe's own duration.
async fn until_connects(
    api: &Api,
    pod: &str,
    target: IpAddr,
    start: Instant,
) -> anyhow::Result<(Duration, Duration)> {
    let deadline = tokio::time::Instant::from_std(start + ENFORCE_LIMIT);
    let mut probes = JoinSet::new();
    let mut next = tokio::time::Instant::now();
    let mut last = String::from("no probe answered");
    // Bounded by the deadline: at most ENFORCE_LIMIT / PROBE_EVERY probes.
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next), if probes.len() < PROBES_IN_FLIGHT => {
                probes.spawn(probe(api.clone(), pod.to_string(), target));
                next = tokio::time::Instant::now() + PROBE_EVERY;
            }
            Some(done) = probes.join_next() => match done.context("a probe task failed")?? {
                Probe::Connected(took) => return Ok((start.elapsed(), took)),
                Probe::Failed(code, stderr) => last = format!("nc exit {code} {stderr}"),
            },
            () = tokio::time::sleep_until(deadline) => bail!(
                "{pod} did not reach {target}:{SERVER_PORT} within {ENFORCE_LIMIT:?} of the change ({last})"
            ),
        }
    }
}

/// Probes `pod` one probe at a time until one fails (the deny holds).
async fn until_denied(api: &Api, pod: &str, target: IpAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + ENFORCE_LIMIT;
    // Bounded by the deadline; each probe by IO_LIMIT.
    while Instant::now() < deadline {
        if let Probe::Failed(..) = probe(api.clone(), pod.to_string(), target).await? {
            return Ok(());
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    bail!(
        "{pod} still reaches {target}:{SERVER_PORT} {ENFORCE_LIMIT:?} after the allowing policy went"
    )
}

/// Every pod of the bench running and Ready, with the server's address.
async fn ready(api: &mut Api, pods: usize) -> anyhow::Result<IpAddr> {
    let deadline = Instant::now() + READY_LIMIT;
    let mut last = 0;
    while Instant::now() < deadline {
        let listed = api::list_objects(api, "Pod", "").await?;
        let ready: Vec<&Value> = listed
            .iter()
            .filter(|p| {
                p["metadata"]["namespace"] == "default"
                    && matches!(
                        p["metadata"]["labels"]["app"].as_str(),
                        Some("client" | "server")
                    )
                    && podnet_proto::model::condition_is_true(p, "Ready")
            })
            .collect();
        last = ready.len();
        if ready.len() == pods {
            let server = ready
                .iter()
                .find(|p| p["metadata"]["name"] == "server")
                .context("no server pod")?;
            let ip = server["status"]["podIP"].as_str().unwrap_or("");
            return ip
                .parse()
                .with_context(|| format!("the server pod has no address ({ip:?})"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("only {last} of {pods} pods Ready after {READY_LIMIT:?}")
}

/// The instant the bench's own watch sees `ALLOW` added.
async fn watch_added(
    mut api: Api,
    from: u64,
) -> anyhow::Result<impl Future<Output = anyhow::Result<Instant>>> {
    let req = WatchRequest {
        kind: "NetworkPolicy".into(),
        namespace: "default".into(),
        from_revision: from,
        ..Default::default()
    };
    let mut stream = api
        .watch(req)
        .await
        .map_err(api::status_error)?
        .into_inner();
    Ok(async move {
        let limit = tokio::time::Instant::now() + ENFORCE_LIMIT;
        loop {
            let event = tokio::time::timeout_at(limit, stream.message())
                .await
                .context("no watch event for the allowing policy")?
                .map_err(api::status_error)?
                .context("the watch ended")?;
            let at = Instant::now();
            let object: Value = serde_json::from_slice(&event.object).unwrap_or_default();
            if event.r#type == "ADDED" && object["metadata"]["name"] == ALLOW {
                return Ok(at);
            }
        }
    })
}

async fn programming(args: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let state = dir.join("state");
    let cluster = Cluster::new(state.clone())?;
    cluster.up(args.nodes()).await?;
    let mut api = api::from_state(&state).await?;
    let nodes: Vec<String> = api::list_objects(&mut api, "Node", "")
        .await?
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    anyhow::ensure!(
        nodes.len() == args.nodes(),
        "{} nodes joined, not {}",
        nodes.len(),
        args.nodes()
    );
    api::apply_objects(
        &mut api,
        &cluster_objects(&nodes),
        false,
        &mut std::io::sink(),
    )
    .await
    .context("cannot create the bench's pods and deny policy")?;
    let server = ready(&mut api, nodes.len() + 1).await?;
    let clients: Vec<String> = nodes.iter().map(|n| client_name(n)).collect();
    println!(
        "netpol programming latency: {} nodes, one client each under default-deny egress, {} rounds; probes: nc -z -w {PROBE_WAIT} every {} ms per client through Exec",
        nodes.len(),
        args.rounds,
        PROBE_EVERY.as_millis()
    );
    let mut f = Figures::default();
    let allow = [allow_policy()];
    for round in 1..=args.rounds {
        futures::future::try_join_all(clients.iter().map(|c| until_denied(&api, c, server)))
            .await?;
        let (_, revision) = api::list_all(
            &mut api,
            ListRequest {
                kind: "NetworkPolicy".into(),
                namespace: "default".into(),
                ..Default::default()
            },
        )
        .await?;
        let watched = tokio::spawn(watch_added(api.clone(), revision).await?);
        let sent = Instant::now();
        api::apply_objects(&mut api, &allow, false, &mut std::io::sink())
            .await
            .context("cannot apply the allowing policy")?;
        let start = Instant::now();
        let each = futures::future::try_join_all(
            clients
                .iter()
                .map(|c| until_connects(&api, c, server, start)),
        )
        .await?;
        let seen = watched.await.context("the watch task failed")??;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let answered: Vec<f64> = each.iter().map(|(d, _)| ms(*d)).collect();
        // The successful probe's connect was judged between its sending
        // and its answer.
        let probe_sent: Vec<f64> = each
            .iter()
            .map(|(d, took)| ms(d.saturating_sub(*took)))
            .collect();
        let slowest = percentile(&answered, 1.0);
        let watch = ms(seen.saturating_duration_since(sent));
        println!(
            "round {round}: apply answered in {:.1} ms; watch event {watch:.1} ms after the apply was sent; every node enforcing {slowest:.1} ms after the answer (successful probes sent by {:.1} ms; first node {:.1} ms)",
            ms(start - sent),
            percentile(&probe_sent, 1.0),
            percentile(&answered, 0.0),
        );
        f.last_node.push(slowest);
        f.last_node_sent.push(percentile(&probe_sent, 1.0));
        f.from_send.push(slowest + ms(start - sent));
        f.any_node.extend(answered);
        f.probe.extend(each.iter().map(|(_, p)| ms(*p)));
        f.watch.push(watch);
        f.apply.push(ms(start - sent));
        api.delete(DeleteRequest {
            kind: "NetworkPolicy".into(),
            namespace: "default".into(),
            name: ALLOW.into(),
            ..Default::default()
        })
        .await
        .map_err(api::status_error)
        .context("cannot delete the allowing policy")?;
    }
    println!();
    println!(
        "| figure ({} nodes, {} rounds) | podnet | target |",
        nodes.len(),
        args.rounds
    );
    println!("|---|---|---|");
    println!(
        "| apply answered -> every node enforcing (last node's successful probe answered) | {} | p99 <= 100 ms at 10 nodes |",
        summary(&f.last_node)
    );
    println!(
        "| the same, to when that probe was sent (lower edge) | {} | |",
        summary(&f.last_node_sent)
    );
    println!(
        "| apply answered -> one node enforcing (every node, every round) | {} | |",
        summary(&f.any_node)
    );
    println!(
        "| apply sent -> every node enforcing | {} | |",
        summary(&f.from_send)
    );
    println!(
        "| reference: apply sent -> its watch event at the bench | {} | |",
        summary(&f.watch)
    );
    println!(
        "| the apply call (sent -> answered) | {} | |",
        summary(&f.apply)
    );
    println!(
        "| one successful probe (Exec of nc -z): the resolution | p50 {:.1} ms, p99 {:.1} ms | |",
        percentile(&f.probe, 0.5),
        percentile(&f.probe, 0.99)
    );
    Ok(())
}

/// Milliseconds the programming rounds gathered.
#[derive(Default)]
struct Figures {
    last_node: Vec<f64>,
    last_node_sent: Vec<f64>,
    any_node: Vec<f64>,
    from_send: Vec<f64>,
    watch: Vec<f64>,
    apply: Vec<f64>,
    probe: Vec<f64>,
}

#[cfg(test)]
mod tests;
