//! Runs a scenario's experiment once its cluster is Ready: the flows and
//! the fault timeline together from one start, the `on_fail: abort`
//! expectations checked every second while they run, then the windowed
//! verdicts, the run's validity and `report.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use podnet_experiment::series::FlowSeries;
use podnet_experiment::verdict::{Status, Verdict};
use podnet_experiment::window::Timeline;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::faults;
use super::plan::{Target, TrafficSpec, Windowed};
use super::schema::{Scenario, flow_target};
use super::traffic::{self, Flow, Request, World};
use crate::api::Api;

/// The report's schema version.
pub const REPORT_VERSION: u32 = 1;
/// How long the edge may take to answer a flow's target before the run
/// starts.
const SETTLE: Duration = Duration::from_secs(15);
/// The share of scheduled requests a valid run may shed.
const MAX_SHED: f64 = 0.01;

/// How the experiment came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Result {
    Pass,
    Fail,
    Invalid,
    Aborted,
}

impl Result {
    pub fn as_str(self) -> &'static str {
        match self {
            Result::Pass => "PASS",
            Result::Fail => "FAIL",
            Result::Invalid => "INVALID",
            Result::Aborted => "ABORTED",
        }
    }
}

/// What `run` leaves: the result, and where the report is.
pub struct Done {
    pub result: Result,
    pub report: PathBuf,
    pub verdicts: Vec<Verdict>,
    /// Why the run is not valid, if it is not.
    pub invalid: Vec<String>,
    /// The expectation (or `signal`) that stopped it.
    pub aborted: Option<String>,
}

struct Prepared {
    flows: Vec<Flow>,
    specs: Vec<TrafficSpec>,
}

/// The flows: HTTP ones aimed at the edge's real listener for their URL,
/// once the edge answers there; DNS ones at a Ready node's host DNS port.
async fn prepare(api: &mut Api, scenario: &Scenario) -> anyhow::Result<Prepared> {
    let mut flows = Vec::new();
    for (i, t) in scenario.traffic.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + SETTLE;
        let request = match t.target().map_err(crate::manifest::InputError)? {
            Target::Http { method, url } => http_request(api, t, &method, &url, deadline).await?,
            Target::Dns { name, rtype } => Request::Dns {
                server: host_dns(api, deadline).await?,
                name: hickory_proto::rr::Name::from_ascii(&name).map_err(|e| {
                    crate::manifest::InputError(format!("traffic {}: {name:?}: {e}", t.name))
                })?,
                rtype: rtype.parse().map_err(|e| {
                    crate::manifest::InputError(format!("traffic {}: {rtype:?}: {e}", t.name))
                })?,
            },
        };
        let flow = Flow {
            name: t.name.clone(),
            request,
            profile: t.profile().map_err(crate::manifest::InputError)?,
            arrival: t
                .arrival
                .unwrap_or(podnet_experiment::schedule::Arrival::Uniform),
            timeout: t.timeout(),
            stream: i as u64,
        };
        if let Request::Http { .. } = flow.request {
            settle(&flow, deadline).await?;
        }
        flows.push(flow);
    }
    Ok(Prepared {
        flows,
        specs: scenario.traffic.clone(),
    })
}

async fn http_request(
    api: &mut Api,
    t: &TrafficSpec,
    method: &str,
    url: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Request> {
    let target = flow_target(url, t.resolve.as_deref()).map_err(crate::manifest::InputError)?;
    let Some((ip, port)) = super::host::edge_address(api, &target, deadline).await? else {
        anyhow::bail!(
            "traffic {}: no LoadBalancer listens for {url} (is the Service's EXTERNAL-IP still <pending>?)",
            t.name
        );
    };
    let edge: std::net::SocketAddr = format!("{ip}:{port}").parse()?;
    let uri: http::Uri = url.parse()?;
    let host = if target.port == 80 {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    Ok(Request::Http {
        method: method.parse()?,
        uri: traffic::edge_uri(&uri, edge).map_err(anyhow::Error::msg)?,
        host,
        reuse: t.reuse(),
    })
}

/// The host DNS port of the first Ready node (by name) that has one: what
/// a host whose resolver points at the cluster asks.
async fn host_dns(
    api: &mut Api,
    deadline: tokio::time::Instant,
) -> anyhow::Result<std::net::SocketAddr> {
    loop {
        let mut nodes = super::expect::list(api, "Node").await?;
        nodes.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        let found = nodes.iter().find_map(|n| {
            let ready = podnet_proto::model::view::NodeView(n).ready();
            let addr = n
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(podnet_proto::model::ANNOTATION_HOST_DNS))
                .and_then(Value::as_str)?
                .parse::<std::net::SocketAddr>()
                .ok()?;
            ready.then_some(addr)
        });
        if let Some(addr) = found {
            return Ok(addr);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no Ready node has a host DNS port for the DNS flows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the flow's target answers with anything but a 5xx
/// through the edge (its health checks and the ingress controller's routes
/// follow the cluster a moment after pods are Ready).
async fn settle(flow: &Flow, deadline: tokio::time::Instant) -> anyhow::Result<()> {
    let Request::Http {
        method, uri, host, ..
    } = &flow.request
    else {
        return Ok(());
    };
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    loop {
        let req = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .header(http::header::HOST, host)
            .body(http_body_util::Empty::new())?;
        let answer = tokio::time::timeout(Duration::from_secs(1), client.request(req)).await;
        if let Ok(Ok(r)) = answer
            && !r.status().is_server_error()
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "traffic {}: {uri} did not answer through the edge within {SETTLE:?}",
            flow.name,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The timeline a flow's windows resolve against: its warmup to its end,
/// the faults at their actual times.
fn timeline_of(spec: &TrafficSpec, records: &[faults::Record], end: f64) -> Timeline {
    let length = spec
        .profile()
        .map(|p| p.length().as_secs_f64())
        .unwrap_or(0.0);
    let end = length.min(end);
    Timeline {
        begin: spec.warmup().as_secs_f64(),
        end,
        events: records
            .iter()
            .filter_map(|r| Some((r.id.clone(), r.span(end)?)))
            .collect(),
    }
}

/// Judges `checks` on `series`, `now` seconds into the run.
fn judge<'a>(
    checks: &[&'a Windowed],
    specs: &[TrafficSpec],
    series: &[FlowSeries],
    records: &[faults::Record],
    now: f64,
) -> Vec<(&'a Windowed, Verdict)> {
    checks
        .iter()
        .filter_map(|w| {
            let i = specs.iter().position(|s| s.name == w.check.flow)?;
            let t = timeline_of(&specs[i], records, now);
            Some((*w, w.check.judge(series.get(i)?, &t)))
        })
        .collect()
}

pub async fn run(
    api: &mut Api,
    state: &Path,
    base: &Path,
    scenario: &Scenario,
    report_dir: &Path,
    scenario_text: &str,
    interrupt: CancellationToken,
) -> anyhow::Result<Done> {
    let faults = scenario
        .checked_faults()
        .map_err(crate::manifest::InputError)?;
    let windowed = scenario.windowed().map_err(crate::manifest::InputError)?;
    let prepared = prepare(api, scenario).await?;
    let seed = scenario.seed();

    let shutdown = CancellationToken::new();
    let (pods_tx, pods_rx) = watch::channel(podnet_proto::informer::Cache::new());
    tokio::spawn(podnet_proto::informer::informer(
        api.clone(),
        "Pod",
        String::new(),
        pods_tx,
        shutdown.clone(),
    ));
    let zones: BTreeMap<String, String> = scenario
        .cluster
        .node_specs()
        .into_iter()
        .map(|n| (n.name, n.zone))
        .collect();
    let world = World {
        zones: Arc::new(zones),
        pods: pods_rx,
    };

    let length = prepared
        .specs
        .iter()
        .filter_map(|s| s.profile().ok())
        .map(|p| p.length().as_secs_f64())
        .fold(0.0, f64::max);
    println!(
        "experiment: {} flows for {length:.1} s, {} faults, seed {seed}",
        prepared.flows.len(),
        faults.len()
    );
    // A moment for every scheduler thread to start before the first
    // request is due.
    let t0 = Instant::now() + Duration::from_millis(50);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(std::sync::Mutex::new(Vec::new()));
    let series: Vec<FlowSeries> = prepared.flows.iter().map(|_| FlowSeries::new("")).collect();
    *shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = series;
    let collector = tokio::spawn(traffic::collect(rx, shared.clone()));
    let mut flows = tokio::task::JoinSet::new();
    for (i, flow) in prepared.flows.iter().enumerate() {
        flows.spawn(traffic::run(
            i,
            flow.clone(),
            seed,
            t0,
            world.clone(),
            stop.clone(),
            tx.clone(),
        ));
    }
    drop(tx);

    let mut timeline = faults::Timeline::new(
        api.clone(),
        state,
        base,
        scenario
            .cluster
            .link_specs()
            .map_err(crate::manifest::InputError)?,
        faults,
        seed,
    );
    let (records_tx, records_rx) = watch::channel(timeline.records.clone());
    let stop_faults = CancellationToken::new();
    let progress = super::progress::Progress::new(length);
    let fault_task = {
        let stop_faults = stop_faults.clone();
        let out = progress.clone();
        tokio::spawn(async move {
            timeline.run(t0, length, stop_faults, records_tx, out).await;
            timeline
        })
    };
    let names: Vec<String> = prepared.specs.iter().map(|s| s.name.clone()).collect();
    let mut redraw = tokio::time::interval(super::progress::EVERY);
    let abort_checks: Vec<&Windowed> = windowed
        .iter()
        .map(|(_, w)| w)
        .filter(|w| w.abort)
        .collect();
    let mut aborted: Option<String> = None;
    let mut tallies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = flows.join_next() => match joined {
                Some(Ok(t)) => tallies.push(t),
                Some(Err(e)) => anyhow::bail!("a flow's task failed: {e}"),
                None => break,
            },
            _ = redraw.tick() => {
                let records = records_rx.borrow().clone();
                let on: Vec<&str> = records.iter().filter(|r| r.is_on()).map(|r| r.id.as_str()).collect();
                let series = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                progress.update(t0.elapsed().as_secs_f64(), length, &names, &series, &on);
            }
            () = interrupt.cancelled(), if aborted.is_none() => {
                progress.line("ABORT interrupted (SIGINT or SIGTERM)");
                aborted = Some("signal".to_string());
                stop.store(true, Ordering::Relaxed);
                stop_faults.cancel();
            }
            _ = tick.tick(), if !abort_checks.is_empty() && aborted.is_none() => {
                // Seconds whose requests may still be in flight are left
                // for later.
                let now = (t0.elapsed().as_secs_f64() - 1.0).floor();
                let records = records_rx.borrow().clone();
                let judged = {
                    let series = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    judge(&abort_checks, &prepared.specs, &series, &records, now)
                };
                for (w, v) in judged {
                    // A window still short of samples is not judged live.
                    if v.status == Status::Fail && v.samples >= w.check.min_samples {
                        progress.line(&format!("ABORT {v}"));
                        aborted = Some(v.name.clone());
                        stop.store(true, Ordering::Relaxed);
                        stop_faults.cancel();
                    }
                }
            }
        }
    }
    let ended = t0.elapsed().as_secs_f64();
    progress.finish();
    stop_faults.cancel();
    let mut timeline = fault_task.await?;
    timeline.heal_all(t0).await;
    collector.await?;
    let series = std::mem::take(
        &mut *shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    shutdown.cancel();

    // Validity: the generator kept its schedule.
    let mut invalid = Vec::new();
    let max_lag = scenario.max_lag();
    for (i, s) in series.iter().enumerate() {
        let name = &prepared.specs[i].name;
        let whole = s.window(0, s.len() as u64);
        let lag = whole.lag_quantile(0.99);
        if lag > max_lag.as_secs_f64() {
            invalid.push(format!(
                "traffic {name}: the generator's lag p99 was {:.3} ms, more than max_lag {:.3} ms",
                lag * 1e3,
                max_lag.as_secs_f64() * 1e3
            ));
        }
        let shed = whole.count(podnet_experiment::series::Outcome::Shed);
        let total = whole.total();
        if total > 0 && shed as f64 > MAX_SHED * total as f64 {
            invalid.push(format!(
                "traffic {name}: the generator shed {shed} of {total} requests (more than 1 %): it could not keep the rate"
            ));
        }
    }
    for r in &timeline.records {
        if let Some(e) = &r.error {
            invalid.push(format!("fault {}: {e}", r.id));
        }
    }

    let all: Vec<&Windowed> = windowed.iter().map(|(_, w)| w).collect();
    let judged = judge(&all, &prepared.specs, &series, &timeline.records, ended);
    let verdicts: Vec<Verdict> = judged.iter().map(|(_, v)| v.clone()).collect();
    let flows_judged: Vec<String> = judged.iter().map(|(w, _)| w.check.flow.clone()).collect();
    // Why a run is not to be trusted comes before what it measured.
    for why in &invalid {
        println!("INVALID {why}");
    }
    for v in &verdicts {
        println!("{v}");
    }
    let result = if aborted.is_some() {
        Result::Aborted
    } else if !invalid.is_empty() {
        Result::Invalid
    } else if verdicts.iter().any(|v| v.status == Status::Fail) {
        Result::Fail
    } else {
        Result::Pass
    };
    let report = report(&Report {
        scenario,
        text: scenario_text,
        seed,
        result,
        specs: &prepared.specs,
        series: &series,
        records: &timeline.records,
        verdicts: &verdicts,
        flows_judged: &flows_judged,
        invalid: &invalid,
        aborted: aborted.as_deref(),
        tallies: &tallies,
    });
    std::fs::create_dir_all(report_dir)?;
    let path = report_dir.join("report.json");
    crate::atomic_file::write_atomic(&path, &serde_json::to_string_pretty(&report)?)?;
    crate::atomic_file::write_atomic(
        &report_dir.join("report.html"),
        &super::html::render(&report),
    )?;
    Ok(Done {
        result,
        report: path,
        verdicts,
        invalid,
        aborted,
    })
}

struct Report<'a> {
    scenario: &'a Scenario,
    text: &'a str,
    seed: u64,
    result: Result,
    specs: &'a [TrafficSpec],
    series: &'a [FlowSeries],
    records: &'a [faults::Record],
    verdicts: &'a [Verdict],
    /// The flow each verdict judged.
    flows_judged: &'a [String],
    invalid: &'a [String],
    aborted: Option<&'a str>,
    tallies: &'a [traffic::Tally],
}

/// FNV-1a of the scenario's text: runs of the same file compare.
pub fn scenario_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn number(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

fn report(r: &Report<'_>) -> Value {
    let flows: Vec<Value> = r
        .specs
        .iter()
        .zip(r.series)
        .map(|(spec, s)| {
            let seconds: Vec<Value> = (0..s.len() as u64)
                .map(|t| {
                    let b = s.second(t);
                    json!({
                        "t": t,
                        "intended": spec.profile().map(|p| p.intended(t as f64, t as f64 + 1.0)).unwrap_or(0.0),
                        "outcomes": b.outcomes.iter().map(|(o, n)| (o.as_str().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                        "latency_us": b.latency.iter_recorded().map(|v| json!([v.value_iterated_to(), v.count_at_value()])).collect::<Vec<_>>(),
                        "lag_us": b.lag.iter_recorded().map(|v| json!([v.value_iterated_to(), v.count_at_value()])).collect::<Vec<_>>(),
                        "p50": number(b.latency_quantile(0.5)),
                        "p90": number(b.latency_quantile(0.9)),
                        "p99": number(b.latency_quantile(0.99)),
                        "max": number(b.latency_max()),
                        "lag_p99": number(b.lag_quantile(0.99)),
                        "by_pod": b.by_pod,
                        "by_zone": b.by_zone,
                    })
                })
                .collect();
            json!({
                "name": spec.name,
                "request": spec.request,
                "warmup": spec.warmup().as_secs_f64(),
                "seconds": seconds,
            })
        })
        .collect();
    let verdicts: Vec<Value> = r
        .verdicts
        .iter()
        .zip(r.flows_judged)
        .map(|(v, flow)| {
            json!({
                "name": v.name,
                "traffic": flow,
                "status": v.status,
                "observed": number(v.observed),
                "limit": number(v.limit),
                "margin": number(v.margin),
                "samples": v.samples,
                "window": v.window.as_ref().map(|w| json!({"start": w.start, "end": w.end, "seconds": w.ranges})),
                "detail": v.detail,
            })
        })
        .collect();
    json!({
        "version": REPORT_VERSION,
        "podnet": env!("CARGO_PKG_VERSION"),
        "scenario": {"name": r.scenario.name, "hash": scenario_hash(r.text)},
        "seed": r.seed,
        "result": r.result.as_str(),
        "aborted_by": r.aborted,
        "invalid": r.invalid,
        "events": r.records,
        "flows": flows,
        "scheduled": r.tallies.iter().map(|t| t.scheduled).sum::<u64>(),
        "verdicts": verdicts,
    })
}
