//! Runs a scenario's experiment once its cluster is Ready: the flows and
//! the fault timeline together from one start, the `on_fail: abort`
//! expectations checked every second while they run, then the windowed
//! verdicts, the run's validity and `report.json`.

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
use podnet_loadgen::{Flow, HttpRequest, Request, World};

use super::plan::{Source, Target, TrafficSpec, Windowed};
use super::schema::{Scenario, flow_target};
use super::traffic::{self, GeneratorPod, Placement};
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

/// Why the flows could not start (a target that never answered, a name
/// that does not resolve, no pod to run in): the run measured nothing, so
/// it is INVALID, not a failure of what it would have judged.
#[derive(Debug)]
pub struct Unmeasurable(pub String);

impl std::fmt::Display for Unmeasurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unmeasurable {}

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
    flows: Vec<(Flow, Placement)>,
    specs: Vec<TrafficSpec>,
}

fn input(e: impl std::fmt::Display) -> anyhow::Error {
    crate::manifest::InputError(e.to_string()).into()
}

/// The flows: host ones aimed at the edge's real listener for their
/// target (DNS ones at a Ready node's host DNS port), pod ones placed in
/// the running pods their `from` selects; each waits, up to [`SETTLE`],
/// until its target answers.
async fn prepare(
    api: &mut Api,
    scenario: &Scenario,
    base: &Path,
    admin: &podnet_proto::auth::Credentials,
) -> anyhow::Result<Prepared> {
    let mut flows = Vec::new();
    for (i, t) in scenario.traffic.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + SETTLE;
        let target = t.target().map_err(input)?;
        let cacert = match &t.cacert {
            Some(file) => Some(
                std::fs::read_to_string(base.join(file))
                    .map_err(|e| input(format!("traffic {}: cacert {file}: {e}", t.name)))?,
            ),
            None => None,
        };
        let placement = match t.source() {
            Source::Host => Placement::Host,
            Source::Pods(reference) => Placement::Pods(generator_pods(api, &reference).await?),
        };
        let on_host = matches!(placement, Placement::Host);
        let request = match target {
            Target::Http { method, url } => Request::Http(HttpRequest {
                connect_to: if on_host {
                    Some(edge(api, t, &url, deadline).await?)
                } else {
                    None
                },
                method,
                url,
                version: t.http_version().map_err(input)?,
                reuse: t.reuse(),
                cacert,
            }),
            Target::Tcp { host, port } => Request::Tcp {
                connect_to: if on_host {
                    Some(edge(api, t, &format!("tcp://{host}:{port}"), deadline).await?)
                } else {
                    None
                },
                host,
                port,
                echo: t.echo,
            },
            Target::Udp { host, port } => Request::Udp {
                connect_to: if on_host {
                    Some(edge(api, t, &format!("udp://{host}:{port}"), deadline).await?)
                } else {
                    None
                },
                host,
                port,
            },
            Target::Dns { name, rtype } => Request::Dns {
                server: if on_host {
                    Some(host_dns(api, deadline).await?)
                } else {
                    None
                },
                name,
                rtype,
            },
        };
        let flow = Flow {
            name: t.name.clone(),
            request,
            profile: t.profile().map_err(input)?,
            arrival: t
                .arrival
                .unwrap_or(podnet_experiment::schedule::Arrival::Uniform),
            timeout: t.timeout(),
            stream: i as u64,
            closed: t.closed(),
        };
        settle(&flow, &placement, admin, deadline).await?;
        flows.push((flow, placement));
    }
    Ok(Prepared {
        flows,
        specs: scenario.traffic.clone(),
    })
}

/// The running pods `reference` selects, each with its node's agent.
async fn generator_pods(api: &mut Api, reference: &str) -> anyhow::Result<Vec<GeneratorPod>> {
    let nodes = super::expect::list(api, "Node").await?;
    let agent_of = |node: &str| {
        nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .and_then(|n| {
                n.pointer("/metadata/annotations")?
                    .get(podnet_proto::model::ANNOTATION_AGENT)?
                    .as_str()
            })
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for p in super::expect::resolve_pods(api, reference).await? {
        let running = p["status"]["phase"] == "Running"
            && p["metadata"]["deletionTimestamp"].is_null()
            && p["status"]["podIP"].is_string();
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        if let (true, Some(agent)) = (running, agent_of(node)) {
            out.push(GeneratorPod {
                namespace: p["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string(),
                name: p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                node: node.to_string(),
                agent,
            });
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "traffic from {reference:?}: none of its pods is running"
    );
    Ok(out)
}

/// The edge's real address for a host flow's target.
async fn edge(
    api: &mut Api,
    t: &TrafficSpec,
    url: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<std::net::SocketAddr> {
    let target = flow_target(url, t.resolve.as_deref()).map_err(input)?;
    let Some((ip, port)) = super::host::edge_address(api, &target, deadline).await? else {
        anyhow::bail!(
            "traffic {}: no LoadBalancer listens for {url} (is the Service's EXTERNAL-IP still <pending>?)",
            t.name
        );
    };
    Ok(format!("{ip}:{port}").parse()?)
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

/// Waits until the flow's target answers (anything but a 5xx or a
/// failure), from where the flow runs: the edge's health checks, the
/// ingress controller's routes and the proxies' endpoints follow the
/// cluster a moment after pods are Ready, as in a real cluster. DNS flows
/// need no wait (their failures are what they measure).
async fn settle(
    flow: &Flow,
    placement: &Placement,
    admin: &podnet_proto::auth::Credentials,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    if matches!(flow.request, Request::Dns { .. }) {
        return Ok(());
    }
    loop {
        let answered = match placement {
            Placement::Host => {
                let outcome = podnet_loadgen::probe(flow, podnet_loadgen::HostNet)
                    .await
                    .map_err(input)?;
                matches!(
                    outcome,
                    podnet_experiment::series::Outcome::Ok
                        | podnet_experiment::series::Outcome::Http4xx
                )
            }
            Placement::Pods(pods) => {
                let mut all = true;
                for pod in pods {
                    all &= traffic::answers_from_pod(flow, pod, admin)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "traffic {}: pod {}/{}: {e}",
                                flow.name,
                                pod.namespace,
                                pod.name
                            )
                        })?;
                }
                all
            }
        };
        if answered {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "traffic {}: its target did not answer within {SETTLE:?}",
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
    let admin = crate::api::admin_credentials(state)?;
    let prepared = prepare(api, scenario, base, &admin).await.map_err(|e| {
        if e.downcast_ref::<crate::manifest::InputError>().is_some() {
            e
        } else {
            Unmeasurable(format!("{e:#}")).into()
        }
    })?;
    let seed = scenario.seed();

    let shutdown = CancellationToken::new();
    let mut caches = Vec::new();
    for kind in ["Pod", "Node"] {
        let (tx, rx) = watch::channel(podnet_proto::informer::Cache::new());
        tokio::spawn(podnet_proto::informer::informer(
            api.clone(),
            kind,
            String::new(),
            tx,
            shutdown.clone(),
        ));
        caches.push(rx);
    }
    let nodes = caches
        .pop()
        .unwrap_or_else(|| watch::channel(Default::default()).1);
    let pods = caches
        .pop()
        .unwrap_or_else(|| watch::channel(Default::default()).1);
    let world = World::new(nodes, pods);

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
    // request is due (and for every pod's generator to be asked).
    let ahead = if prepared
        .flows
        .iter()
        .any(|(_, p)| matches!(p, Placement::Pods(_)))
    {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(300)
    };
    let (t0, t0_wall) = (Instant::now() + ahead, std::time::SystemTime::now() + ahead);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_pods = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let shared: traffic::Shared = Arc::new(std::sync::Mutex::new(
        prepared
            .flows
            .iter()
            .map(|(flow, _)| FlowSeries::new("").with_reach(flow.timeout))
            .collect(),
    ));
    let collector = tokio::spawn(traffic::collect(rx, shared.clone()));
    let mut flows = tokio::task::JoinSet::new();
    for (i, (flow, placement)) in prepared.flows.iter().enumerate() {
        match placement {
            Placement::Host => flows.spawn(traffic::run_host(
                i,
                flow.clone(),
                seed,
                t0,
                world.clone(),
                stop.clone(),
                tx.clone(),
            )),
            Placement::Pods(pods) => flows.spawn(traffic::run_pods(
                i,
                flow.clone(),
                pods.clone(),
                seed,
                t0_wall,
                admin.clone(),
                stop_pods.clone(),
                shared.clone(),
            )),
        };
    }
    drop(tx);

    let stop_scrapes = CancellationToken::new();
    let scrapes = tokio::spawn(super::scrape::run(
        super::scrape::targets(api, state).await,
        t0,
        stop_scrapes.clone(),
    ));

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
    let mut generator_errors: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = flows.join_next() => match joined {
                Some(Ok(Ok(t))) => tallies.push(t),
                Some(Ok(Err(e))) => generator_errors.push(e),
                Some(Err(e)) => {
                    // Nothing the faults did stays behind (a paused process
                    // above all): heal before giving up.
                    stop.store(true, Ordering::Relaxed);
                    stop_pods.cancel();
                    stop_faults.cancel();
                    if let Ok(mut timeline) = fault_task.await {
                        timeline.heal_all(t0).await;
                    }
                    anyhow::bail!("a flow's task failed: {e}");
                }
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
                stop_pods.cancel();
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
                        stop_pods.cancel();
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
    stop_scrapes.cancel();
    let metrics = scrapes.await.unwrap_or_default();
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
    for e in &generator_errors {
        invalid.push(format!("traffic: {e}"));
    }
    for r in &timeline.records {
        if let Some(e) = &r.error {
            invalid.push(format!("fault {}: {e}", r.id));
        }
        if r.verified == Some(false) {
            let what = r.verify.as_deref().unwrap_or("not confirmed");
            invalid.push(format!("fault {}: verify: {what}", r.id));
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
        generators: &prepared
            .flows
            .iter()
            .map(|(_, p)| match p {
                Placement::Host => vec!["host".to_string()],
                Placement::Pods(pods) => pods
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect(),
            })
            .collect::<Vec<_>>(),
        metrics: &metrics,
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
    tallies: &'a [podnet_loadgen::Tally],
    /// Where each flow ran: `host`, or its pods (`NS/NAME`).
    generators: &'a [Vec<String>],
    /// Every process's `/metrics`, each second.
    metrics: &'a [super::scrape::Sampled],
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
        .enumerate()
        .map(|(i, (spec, s))| {
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
                "generators": r.generators.get(i).cloned().unwrap_or_default(),
                "closed_loop": spec.closed().map(|c| json!({"concurrency": c.concurrency, "think": c.think.as_secs_f64()})),
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
        "metrics": r.metrics,
    })
}
