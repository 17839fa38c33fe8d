//! `podnet bench generator`: the experiments' open-loop generator against
//! oha (`-q RATE --latency-correction`, the open-loop reference here:
//! wrk2 is not packaged) on the same target, a small HTTP/1.1 server on
//! loopback with a runtime of its own, so what is measured is the
//! generator. At each rate of a rising ladder both run for `--duration`,
//! interleaved; a side holds a rate when it sent at least 99 % of it and
//! the 99th percentile of latency counted from the scheduled time (what
//! oha's latency correction and podnet's generator both measure, so the
//! generator's own lag is inside it) stays within 1 ms. The figure is the
//! highest rate each holds; podnet's lag p99 is printed beside it. The
//! ladder ends when both sides have missed two rates in a row.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use podnet_experiment::schedule::{Arrival, Profile, Segment};
use podnet_experiment::series::{FlowSeries, Outcome};
use podnet_loadgen::{Flow, HostNet, HttpRequest, HttpVersion, Request, World};
use serde_json::Value;
use tokio::sync::mpsc;

use super::BenchArgs;
use super::common::{find_tools, output};

/// The rates tried, per second, in order: steps of at most an eighth
/// where generators on small machines top out, so the ratio of two
/// highest rates is not an artefact of the ladder.
const LADDER: [f64; 17] = [
    1_000.0, 2_000.0, 3_000.0, 4_000.0, 5_000.0, 6_000.0, 7_000.0, 8_000.0, 9_000.0, 10_000.0,
    12_000.0, 14_000.0, 16_000.0, 20_000.0, 24_000.0, 32_000.0, 48_000.0,
];
/// The latency (from the scheduled time) a held rate stays within.
const HOLD_P99: Duration = Duration::from_millis(1);
/// The share of the rate a held rate sends.
const HOLD_SENT: f64 = 0.99;
/// oha's connections: enough that none waits for a free one at the top
/// of the ladder within `HOLD_P99`.
const OHA_CONNECTIONS: u32 = 64;

/// One side at one rate.
#[derive(Debug, Clone, Copy)]
struct Run {
    sent_per_second: f64,
    p99: Duration,
    /// podnet's own lag p99 (oha does not report its lag).
    lag_p99: Option<Duration>,
}

impl Run {
    fn holds(&self, rate: f64) -> bool {
        self.sent_per_second >= HOLD_SENT * rate && self.p99 <= HOLD_P99
    }
}

/// A server answering every request with a short body, on its own
/// runtime thread, until the process ends.
fn serve() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("bench target".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let service = service_fn(|_req| async {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{\"pod\":\"bench\"}\n"),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })?;
    Ok(addr)
}

async fn podnet(target: SocketAddr, rate: f64, length: Duration) -> anyhow::Result<Run> {
    let flow = Flow {
        name: "bench".into(),
        request: Request::Http(HttpRequest {
            method: "GET".into(),
            url: format!("http://{target}/"),
            connect_to: None,
            version: HttpVersion::Http1,
            reuse: true,
            cacert: None,
        }),
        profile: Profile {
            segments: vec![Segment::hold(rate, length)],
        },
        arrival: Arrival::Uniform,
        timeout: Duration::from_secs(2),
        stream: 0,
        closed: None,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = Instant::now() + Duration::from_millis(200);
    let generator = tokio::spawn(podnet_loadgen::run(
        0,
        flow,
        1,
        t0,
        HostNet,
        World::empty(),
        Arc::new(AtomicBool::new(false)),
        tx,
    ));
    let mut series = FlowSeries::new("");
    while let Some((_, sample)) = rx.recv().await {
        series.record(&sample);
    }
    generator
        .await?
        .map_err(anyhow::Error::msg)
        .context("podnet's generator")?;
    let whole = series.window(0, series.len() as u64);
    let sent = whole.count(Outcome::Ok) as f64 / length.as_secs_f64();
    Ok(Run {
        sent_per_second: sent,
        p99: Duration::from_secs_f64(whole.latency_quantile(0.99).max(0.0)),
        lag_p99: Some(Duration::from_secs_f64(whole.lag_quantile(0.99).max(0.0))),
    })
}

async fn oha(
    oha: &std::path::Path,
    target: SocketAddr,
    rate: f64,
    length: Duration,
) -> anyhow::Result<Run> {
    let mut cmd = tokio::process::Command::new(oha);
    cmd.args([
        "--no-tui",
        "--output-format",
        "json",
        "--latency-correction",
        "-c",
        &OHA_CONNECTIONS.to_string(),
        "-q",
        &format!("{rate}"),
        "-z",
        &format!("{}ms", length.as_millis()),
    ])
    .arg(format!("http://{target}/"));
    let what = format!("oha at {rate}/s");
    let out = output(&mut cmd, None, length + Duration::from_secs(30), &what).await?;
    parse_oha(&out, length).with_context(|| what)
}

/// What oha's JSON says: successful responses per second and the 99th
/// percentile (seconds, latency-corrected).
fn parse_oha(json: &str, length: Duration) -> anyhow::Result<Run> {
    let v: Value = serde_json::from_str(json).context("oha's output is not JSON")?;
    let p99 = v
        .pointer("/latencyPercentiles/p99")
        .and_then(Value::as_f64)
        .context("no latencyPercentiles.p99")?;
    let ok: u64 = v
        .get("statusCodeDistribution")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(code, _)| code.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Ok(Run {
        sent_per_second: ok as f64 / length.as_secs_f64(),
        p99: Duration::from_secs_f64(p99.max(0.0)),
        lag_p99: None,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let [oha_bin] = find_tools(["oha"], "none: `cargo install --locked oha`")?;
    let target = serve()?;
    let length = args.duration;
    println!(
        "generator: open-loop HTTP/1.1 GET to a loopback server, {} s per rate; a rate is held when >= 99% of it is answered with latency p99 (from the scheduled time) <= 1 ms",
        length.as_secs_f64()
    );
    println!(
        "{:>8}  {:>10} {:>10} {:>10}  {:>10} {:>10}",
        "rate/s", "podnet/s", "p99", "lag p99", "oha/s", "p99"
    );
    let (mut best_podnet, mut best_oha) = (0.0f64, 0.0f64);
    // Misses in a row: one can be a hiccup of the machine (both sides
    // miss the same rate at once), two in a row is where a side tops out.
    let (mut podnet_out, mut oha_out) = (0u32, 0u32);
    for rate in LADDER {
        let p = podnet(target, rate, length).await?;
        let o = oha(&oha_bin, target, rate, length).await?;
        println!(
            "{rate:>8.0}  {:>10.0} {:>10} {:>10}  {:>10.0} {:>10}{}{}",
            p.sent_per_second,
            ms(p.p99),
            p.lag_p99.map(ms).unwrap_or_default(),
            o.sent_per_second,
            ms(o.p99),
            if p.holds(rate) { "" } else { "  podnet misses" },
            if o.holds(rate) { "" } else { "  oha misses" },
        );
        if p.holds(rate) {
            best_podnet = best_podnet.max(rate);
            podnet_out = 0;
        } else {
            podnet_out += 1;
        }
        if o.holds(rate) {
            best_oha = best_oha.max(rate);
            oha_out = 0;
        } else {
            oha_out += 1;
        }
        if podnet_out >= 2 && oha_out >= 2 {
            break;
        }
    }
    println!(
        "highest rate held: podnet {best_podnet:.0}/s, oha {best_oha:.0}/s, ratio {}",
        super::ratio(best_podnet, best_oha)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oha_json_gives_answers_per_second_and_the_corrected_p99() {
        let json = r#"{"summary": {"successRate": 1.0}, "latencyPercentiles": {"p50": 0.0001, "p99": 0.0008},
            "statusCodeDistribution": {"200": 29700, "503": 12}}"#;
        let run = parse_oha(json, Duration::from_secs(3)).unwrap();
        assert_eq!(run.sent_per_second, 9900.0);
        assert_eq!(run.p99, Duration::from_micros(800));
        assert!(run.holds(10_000.0));
        assert!(!run.holds(10_100.0));
        assert!(parse_oha("{}", Duration::from_secs(1)).is_err());
    }
}
