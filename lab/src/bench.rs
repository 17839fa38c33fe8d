//! `podnet bench`: podnet measured against a reference in the same run,
//! interleaved (A B A B ...), medians and ratios. Never a timed test.
//!
//! - `overlay`: pod-to-pod bulk throughput and 64-byte request RTT across two
//!   nodes (two datapaths with the real overlay, in one process) against a
//!   bare quinn connection on loopback with the same TLS and transport
//!   settings.
//! - `up`: `podnet up` of N nodes to all Ready, as processes.
//! - `dns`: DNS queries/s from the host port against unbound (dnsperf).
//! - `ingress`: HTTP(S) requests/s from the host through the edge and the
//!   ingress controller against nginx as one reverse-proxy hop (wrk).
//! - `netpol`: new TCP connections per second with 1000+ NetworkPolicies
//!   in both nodes' indexes against none (in process, as `overlay`), and
//!   the latency from a policy's apply until every node enforces it, with
//!   the apply's watch event as the reference.
//! - `generator`: the experiments' open-loop generator against oha
//!   (`-q RATE --latency-correction`) on one loopback server: the highest
//!   rate each holds.

/// `anyhow::ensure!` for a bad flag: the error is bad input (exit 64).
macro_rules! ensure_flag {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(crate::manifest::InputError(format!($($fmt)+)).into());
        }
    };
}

mod common;
mod dns;
mod generator;
mod ingress;
mod netpol;
mod programming;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use podnet_controlplane::ca::ClusterCa;
use podnet_node::testing::PodPair;
use podnet_overlay::NodeIdentity;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    Overlay,
    Up,
    Dns,
    Programming,
    Ingress,
    Netpol,
    Generator,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    pub what: What,
    /// Interleaved rounds of each side.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of bulk transfer per round.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Ping-pong rounds per RTT measurement.
    #[arg(long, default_value_t = 20_000)]
    pub pings: usize,
    /// Nodes of the cluster a bench starts [default: 10 for `netpol`, 3
    /// for the others].
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Services for `programming`, all selecting the same pods.
    #[arg(long, default_value_t = 100)]
    pub services: usize,
    /// NetworkPolicies for `netpol` selecting other pods (besides the ten
    /// selecting the server).
    #[arg(long, default_value_t = 1000)]
    pub policies: usize,
    /// Seed of the query mix for `dns`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of each wrk run for `ingress` (whole seconds), of each rate
    /// for `generator`.
    #[arg(long, default_value = "10s", value_parser = crate::flags::run_length)]
    pub duration: Duration,
    /// wrk connections (-c) for `ingress`.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// `ingress` over HTTPS (TLS 1.3, P-256 certificate) on both sides.
    #[arg(long)]
    pub tls: bool,
}

impl BenchArgs {
    /// `--nodes`, or the bench's default.
    pub fn nodes(&self) -> usize {
        self.nodes.unwrap_or(match self.what {
            What::Netpol => 10,
            _ => 3,
        })
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Overlay => overlay(&args).await?,
        What::Up => up(&args).await?,
        What::Dns => dns::run(&args).await?,
        What::Programming => programming::run(&args).await?,
        What::Ingress => ingress::run(&args).await?,
        What::Netpol => netpol::run(&args).await?,
        What::Generator => generator::run(&args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// `a / b` to two places, or `-` where that means nothing.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

const CHUNK: usize = 64 * 1024;

/// Writes for `secs`, then finishes; returns bytes written.
async fn bulk_send(w: &mut (impl AsyncWrite + Unpin), secs: f64) -> anyhow::Result<u64> {
    let buf = vec![0xabu8; CHUNK];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        w.write_all(&buf).await?;
        sent += CHUNK as u64;
    }
    w.shutdown().await?;
    Ok(sent)
}

async fn drain(mut r: impl tokio::io::AsyncRead + Unpin) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

async fn ping_pong<S: tokio::io::AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    n: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    Ok(h)
}

fn identity(ca: &ClusterCa, name: &str) -> anyhow::Result<NodeIdentity> {
    let issued = ca.issue_node(name)?;
    Ok(NodeIdentity::from_pem(
        ca.cert_pem(),
        &issued.cert_pem,
        &issued.key_pem,
    )?)
}

/// Two nodes with real datapaths and one pod each.
fn pod_pair(ca: &ClusterCa) -> anyhow::Result<PodPair> {
    Ok(PodPair::start(
        &identity(ca, "node-a")?,
        &identity(ca, "node-b")?,
    )?)
}

async fn podnet_bulk(pair: &PodPair, secs: f64) -> anyhow::Result<f64> {
    let mut listener = pair.b.listen_tcp(0)?;
    let dst = std::net::SocketAddr::new(pair.b.ip(), listener.port());
    let sink = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        drain(stream).await
    });
    let start = Instant::now();
    let mut s = pair.a.connect_tcp(dst).await?;
    bulk_send(&mut s, secs).await?;
    let got = sink.await??;
    Ok(got as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9)
}

async fn podnet_rtt(pair: &PodPair, n: usize) -> anyhow::Result<Histogram<u64>> {
    let mut listener = pair.b.listen_tcp(0)?;
    let dst = std::net::SocketAddr::new(pair.b.ip(), listener.port());
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = [0u8; 64];
        loop {
            if stream.read_exact(&mut buf).await.is_err() {
                return anyhow::Ok(());
            }
            stream.write_all(&buf).await?;
        }
    });
    let mut s = pair.a.connect_tcp(dst).await?;
    let h = ping_pong(&mut s, n).await?;
    s.shutdown().await?;
    drop(s);
    echo.await??;
    Ok(h)
}

/// Bare quinn: one client and one server endpoint on plain loopback UDP
/// sockets (4 MB buffers), same certificates and transport settings.
struct Bare {
    client: quinn::Endpoint,
    server: quinn::Endpoint,
    conn: quinn::Connection,
    server_conn: quinn::Connection,
}

fn bare_endpoint(server: Option<quinn::ServerConfig>) -> anyhow::Result<quinn::Endpoint> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let state = quinn::udp::UdpSocketState::new((&sock).into())?;
    state.set_send_buffer_size((&sock).into(), 4 << 20)?;
    state.set_recv_buffer_size((&sock).into(), 4 << 20)?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        sock,
        Arc::new(quinn::TokioRuntime),
    )?)
}

async fn bare(ca: &ClusterCa) -> anyhow::Result<Bare> {
    let server_id = identity(ca, "node-b")?;
    let client_id = identity(ca, "node-a")?;
    let server = bare_endpoint(Some(server_id.server_config()))?;
    let client = bare_endpoint(None)?;
    let addr = server.local_addr()?;
    let accept = tokio::spawn(async move {
        let incoming = server.accept().await.context("no connection")?;
        let conn = incoming.await?;
        anyhow::Ok((server, conn))
    });
    let conn = client
        .connect_with(client_id.client_config(), addr, "node-b")?
        .await?;
    let (server, server_conn) = accept.await??;
    Ok(Bare {
        client,
        server,
        conn,
        server_conn,
    })
}

async fn bare_bulk(b: &Bare, secs: f64) -> anyhow::Result<f64> {
    let server = b.server_conn.clone();
    let sink = tokio::spawn(async move {
        let (_send, recv) = server.accept_bi().await?;
        drain(recv).await
    });
    let start = Instant::now();
    let (mut send, _recv) = b.conn.open_bi().await?;
    bulk_send(&mut send, secs).await?;
    let got = sink.await??;
    Ok(got as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9)
}

async fn bare_rtt(b: &Bare, n: usize) -> anyhow::Result<Histogram<u64>> {
    let server = b.server_conn.clone();
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = server.accept_bi().await?;
        let mut buf = [0u8; 64];
        while recv.read_exact(&mut buf).await.is_ok() {
            send.write_all(&buf).await?;
        }
        anyhow::Ok(())
    });
    let (send, recv) = b.conn.open_bi().await?;
    let mut s = tokio::io::join(recv, send);
    let h = ping_pong(&mut s, n).await?;
    s.shutdown().await?;
    echo.await??;
    Ok(h)
}

async fn overlay(args: &BenchArgs) -> anyhow::Result<()> {
    let ca = ClusterCa::generate()?;
    let pair = pod_pair(&ca)?;
    let bare = bare(&ca).await?;
    let (mut p_gbps, mut b_gbps) = (Vec::new(), Vec::new());
    let (mut p50, mut p99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!(
        "overlay benchmark: {} interleaved rounds, {:.1}s bulk, {} pings of 64 B",
        args.rounds, args.seconds, args.pings
    );
    for round in 1..=args.rounds {
        let pg = podnet_bulk(&pair, args.seconds).await?;
        let bg = bare_bulk(&bare, args.seconds).await?;
        let ph = podnet_rtt(&pair, args.pings).await?;
        let bh = bare_rtt(&bare, args.pings).await?;
        let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "round {round}: bulk podnet {pg:.2} Gbit/s, quinn {bg:.2} Gbit/s; rtt p50/p99 podnet {:.1}/{:.1} us, quinn {:.1}/{:.1} us",
            us(&ph, 0.5),
            us(&ph, 0.99),
            us(&bh, 0.5),
            us(&bh, 0.99)
        );
        p_gbps.push(pg);
        b_gbps.push(bg);
        p50.push(us(&ph, 0.5));
        p99.push(us(&ph, 0.99));
        b50.push(us(&bh, 0.5));
        b99.push(us(&bh, 0.99));
    }
    let (pg, bg) = (median(&mut p_gbps), median(&mut b_gbps));
    let (pp50, pp99, bp50, bp99) = (
        median(&mut p50),
        median(&mut p99),
        median(&mut b50),
        median(&mut b99),
    );
    println!();
    println!("| figure | podnet | bare quinn | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| pod-to-pod bulk, one flow | {pg:.2} Gbit/s | {bg:.2} Gbit/s | {:.2} | >= 0.6 |",
        pg / bg
    );
    println!(
        "| 64 B RTT p50 | {pp50:.1} us | {bp50:.1} us | {:.2} | <= 2.0 |",
        pp50 / bp50
    );
    println!(
        "| 64 B RTT p99 | {pp99:.1} us | {bp99:.1} us | {:.2} | |",
        pp99 / bp99
    );
    pair.shutdown.cancel();
    bare.client.close(0u32.into(), b"done");
    bare.server.close(0u32.into(), b"done");
    Ok(())
}

async fn up(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    for round in 1..=args.rounds {
        let dir =
            std::env::temp_dir().join(format!("podnet-bench-up-{}-{round}", std::process::id()));
        let start = Instant::now();
        let out = tokio::process::Command::new(&exe)
            .arg("--state-dir")
            .arg(&dir)
            .args(["up", "--nodes", &args.nodes().to_string()])
            .output()
            .await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            out.status.success(),
            "podnet up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = tokio::process::Command::new(&exe)
            .arg("--state-dir")
            .arg(&dir)
            .arg("down")
            .output()
            .await?;
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "round {round}: podnet up of {} nodes to Ready in {ms:.0} ms",
            args.nodes()
        );
        times.push(ms);
    }
    println!(
        "median: {:.0} ms (target < 500 ms for 3 nodes)",
        median(&mut times)
    );
    Ok(())
}
