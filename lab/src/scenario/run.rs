//! `podnet run FILE`: boot a cluster for the scenario, apply its links and
//! manifests, wait until everything is Ready, check the expectations, run
//! the experiment (traffic and faults) when there is one, tear the cluster
//! down, and exit with the verdict: 0 PASS, 1 FAIL, 2 scenario error, 3
//! INVALID, 4 ABORTED.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::Ipv4Net;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::expect::{self, wait_ready};
use super::schema::{Expectation, Scenario, load, manifests};
use crate::api;
use crate::launcher::{self, UpArgs};
use crate::manifest::InputError;
use crate::record;

#[derive(Debug, Args)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Validate the file and its manifests without running anything.
    #[arg(long)]
    pub check: bool,
    /// The cluster's LoadBalancer pool, as `podnet up --lb-pool` (default:
    /// the first free /24 from 127.0.1.0/24 up).
    #[arg(long, value_parser = launcher::parse_lb_pool)]
    pub lb_pool: Option<Ipv4Net>,
    /// Where an experiment's report goes (default
    /// `.podnet/reports/<name>-<time>/`).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Also write the expectations' results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The generator's lag bound for a valid run, over the scenario's
    /// `generator.max_lag` (e.g. `50ms` on a machine that runs other
    /// clusters at the same time, as a CI job's tests do).
    #[arg(long, value_name = "DURATION", value_parser = parse_lag)]
    pub max_lag: Option<Duration>,
}

fn parse_lag(s: &str) -> Result<Duration, String> {
    podnet_proto::model::parse_duration(s)
}

/// Exit codes of `podnet run`.
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_SCENARIO_ERROR: u8 = 2;
pub const EXIT_INVALID: u8 = 3;
pub const EXIT_ABORTED: u8 = 4;

/// Runs the scenario; a scenario that is wrong (unreadable, invalid, naming
/// what does not exist) exits 2 with what and where.
pub async fn run(args: RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match run_scenario(args, state_dir).await {
        Err(e) if e.downcast_ref::<InputError>().is_some() => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_SCENARIO_ERROR))
        }
        other => other,
    }
}

/// Runs the scenario in a cluster recorded in `state_dir` (so `podnet get`
/// and friends work against it while it runs), or in a new temporary
/// directory that is removed after a passing run.
async fn run_scenario(args: RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.file)?;
    let text = std::fs::read_to_string(&args.file).unwrap_or_default();
    let objects = manifests(&args.file, &scenario)?;
    super::refs::check(&scenario, &objects)
        .map_err(|e| InputError(format!("{}: {e}", args.file.display())))?;
    if args.check {
        println!(
            "{}: ok ({} nodes, {} objects, {} expectations, {} flows, {} faults)",
            args.file.display(),
            scenario.cluster.node_specs().len(),
            objects.len(),
            scenario.expect.len(),
            scenario.traffic.len(),
            scenario.faults.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let temporary = state_dir.is_none();
    let state = state_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "podnet-run-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ))
    });
    let up = UpArgs {
        file: Some(args.file.clone()),
        nodes: 0,
        node_grace_period: Duration::from_secs(3),
        cluster_cidr: crate::flags::DEFAULT_CLUSTER_CIDR
            .parse()
            .context("the default cluster CIDR is a CIDR")?,
        node_cidr_mask_size: crate::flags::DEFAULT_NODE_CIDR_MASK_SIZE,
        lb_pool: args.lb_pool,
        max_pods: podnet_proto::model::DEFAULT_MAX_PODS,
        // The scenario's own, read with its nodes.
        ingress_default_backend: None,
        resolv_conf: None,
        // The scenario's own, read with its nodes.
        external: Vec::new(),
        dns_upstream: None,
        // The scenario's own.
        ip_family: None,
        foreground: false,
    };
    let started = std::time::Instant::now();
    let (mut supervisor, record) = match launcher::start_supervisor(&state, &up, false).await {
        Ok(up) => up,
        Err(e) => {
            if temporary {
                let _ = std::fs::remove_dir_all(&state);
            }
            return Err(e);
        }
    };
    println!(
        "scenario {}: {} nodes Ready in {} ms, LoadBalancer pool {} (state in {})",
        scenario.name,
        record.nodes.len(),
        started.elapsed().as_millis(),
        record
            .lb_pool
            .map_or_else(|| "none".to_string(), |p| p.to_string()),
        state.display()
    );
    if let Some(d) = &scenario.description {
        println!("  {d}");
    }
    let base = args.file.parent().unwrap_or(Path::new("."));
    let report_dir = args.report.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        PathBuf::from(".podnet/reports").join(format!("{}-{stamp}", scenario.name))
    });
    // SIGINT or SIGTERM: the experiment stops, heals its faults and
    // writes its report (ABORTED); the cluster is torn down below.
    let interrupt = crate::signal::shutdown_on_signals()?;
    let mut scenario = scenario;
    if let Some(lag) = args.max_lag {
        scenario.generator = Some(super::schema::GeneratorSpec { max_lag: Some(lag) });
    }
    let mut cases = Vec::new();
    let result = run_in_cluster(
        &mut cases,
        &InCluster {
            state: &state,
            cp: &record.controlplane,
            scenario: &scenario,
            objects: &objects,
            base,
        },
        &report_dir,
        &text,
        &interrupt,
    )
    .await;
    // Whatever way the run ended (an error before a pause fault could
    // heal), no role process is left stopped.
    if let Ok(now) = record::ClusterRecord::read(&state) {
        for pid in now.role_pids() {
            if record::process_state(pid) == Some('T') {
                record::signal(pid, nix::sys::signal::Signal::SIGCONT);
            }
        }
    }
    if let Some(pid) = supervisor.id() {
        record::signal(pid, nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(10), supervisor.wait())
        .await
        .is_err()
    {
        let _ = supervisor.kill().await;
    }
    let took = started.elapsed().as_secs_f64();
    if let Err(e) = &result
        && let Some(why) = e.downcast_ref::<super::experiment::Unmeasurable>()
    {
        cases.push(super::junit::Case {
            name: "validity".into(),
            outcome: super::junit::Outcome::Error(why.to_string()),
        });
    }
    if let Some(path) = &args.junit {
        super::junit::write(path, &scenario.name, &cases)?;
    }
    match result {
        Ok(Verdict::Pass) => {
            println!("cluster torn down; scenario passed in {took:.1} s");
            if temporary {
                let _ = std::fs::remove_dir_all(&state);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(verdict) => {
            println!(
                "cluster torn down; scenario {} in {took:.1} s; logs kept in {}",
                verdict.as_str(),
                state.join("logs").display()
            );
            Ok(ExitCode::from(verdict.exit_code()))
        }
        Err(e)
            if e.downcast_ref::<super::experiment::Unmeasurable>()
                .is_some() =>
        {
            println!("INVALID {e}");
            println!(
                "cluster torn down; scenario INVALID in {took:.1} s; logs kept in {}",
                state.join("logs").display()
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(e) => {
            println!(
                "cluster torn down after {took:.1} s; logs kept in {}",
                state.join("logs").display()
            );
            Err(e)
        }
    }
}

/// A run's verdict, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Fail,
    Invalid,
    Aborted,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASSED",
            Verdict::Fail => "FAILED",
            Verdict::Invalid => "INVALID",
            Verdict::Aborted => "ABORTED",
        }
    }

    fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => EXIT_FAIL,
            Verdict::Invalid => EXIT_INVALID,
            Verdict::Aborted => EXIT_ABORTED,
        }
    }
}

/// What a run in its cluster works with.
struct InCluster<'a> {
    state: &'a Path,
    cp: &'a str,
    scenario: &'a Scenario,
    objects: &'a [Value],
    /// The scenario file's directory.
    base: &'a Path,
}

async fn run_in_cluster(
    cases: &mut Vec<super::junit::Case>,
    run: &InCluster<'_>,
    report_dir: &Path,
    text: &str,
    interrupt: &CancellationToken,
) -> anyhow::Result<Verdict> {
    let InCluster {
        state,
        cp,
        scenario,
        objects,
        base,
    } = *run;
    // Until the experiment starts, an interrupt ends the run at once; the
    // experiment itself stops on it in order (faults healed, report
    // written).
    let setup = set_up(state, cp, scenario, objects, base);
    use super::junit::{Case, Outcome};
    let (mut api, checked) = tokio::select! {
        r = setup => r?,
        () = interrupt.cancelled() => {
            println!("interrupted");
            cases.push(Case { name: "run".into(), outcome: Outcome::Error("interrupted (SIGINT or SIGTERM)".into()) });
            return Ok(Verdict::Aborted);
        }
    };
    let mut verdict = Verdict::Pass;
    for (line, ok) in checked {
        if !ok {
            verdict = Verdict::Fail;
        }
        cases.push(Case {
            outcome: if ok {
                Outcome::Pass
            } else {
                Outcome::Fail(line.clone())
            },
            name: line,
        });
    }
    if !scenario.traffic.is_empty() {
        let done = super::experiment::run(
            &mut api,
            state,
            base,
            scenario,
            report_dir,
            text,
            interrupt.clone(),
        )
        .await?;
        println!(
            "experiment {}: report in {}",
            done.result.as_str(),
            done.report.display()
        );
        for v in &done.verdicts {
            cases.push(Case {
                name: v.name.clone(),
                outcome: match v.status {
                    podnet_experiment::verdict::Status::Fail => Outcome::Fail(v.detail.clone()),
                    _ => Outcome::Pass,
                },
            });
        }
        if !done.invalid.is_empty() {
            cases.push(Case {
                name: "validity".into(),
                outcome: Outcome::Error(done.invalid.join("; ")),
            });
        }
        if let Some(by) = &done.aborted {
            cases.push(Case {
                name: "run".into(),
                outcome: Outcome::Error(format!("aborted by {by}")),
            });
        }
        verdict = verdict.max(match done.result {
            super::experiment::Result::Pass => Verdict::Pass,
            super::experiment::Result::Fail => Verdict::Fail,
            super::experiment::Result::Invalid => Verdict::Invalid,
            super::experiment::Result::Aborted => Verdict::Aborted,
        });
    }
    Ok(verdict)
}

/// Links, manifests, readiness and the static expectations: the API
/// client and each expectation's line and whether it passed.
async fn set_up(
    state: &Path,
    cp: &str,
    scenario: &Scenario,
    objects: &[Value],
    base: &Path,
) -> anyhow::Result<(crate::api::Api, Vec<(String, bool)>)> {
    let mut api = api::connect(cp, &api::admin_credentials(state)?).await?;
    let links: Vec<Value> = scenario
        .cluster
        .link_specs()
        .map_err(InputError)?
        .iter()
        .flat_map(|s| api::link_objects(s, true))
        .collect();
    let mut out = std::io::stdout();
    if !links.is_empty() {
        api::apply_objects(&mut api, &links, false, &mut std::io::sink()).await?;
        println!("{} link settings applied", links.len());
    }
    if !objects.is_empty() {
        api::apply_objects(&mut api, objects, false, &mut out).await?;
    }
    let timeout = scenario.ready_timeout();
    let started = std::time::Instant::now();
    wait_ready(&mut api, timeout).await?;
    println!("all pods Ready in {} ms", started.elapsed().as_millis());

    let mut failed = 0;
    let mut total = 0;
    let mut lines = Vec::new();
    for e in &scenario.expect {
        let checked = match e {
            Expectation::Reachability { reachability } => {
                expect::check_reachability(&mut api, reachability).await
            }
            Expectation::Matrix { matrix } => expect::check_matrix(&mut api, matrix).await,
            Expectation::Dns(d) => expect::check_dns(&mut api, d).await.map(|r| vec![r]),
            Expectation::Http(h) if h.from == "host" => {
                super::host::check_http_from_host(&mut api, h, base)
                    .await
                    .map(|r| vec![r])
            }
            Expectation::Http(h) => expect::check_http(&mut api, h).await.map(|r| vec![r]),
            // Judged over the experiment's traffic, below.
            Expectation::Windowed(_) => continue,
        };
        // An expectation that cannot be checked (it names a pod or Service
        // the cluster does not have) fails; the others are still checked.
        let results =
            checked.unwrap_or_else(|error| vec![(format!("{}: {error:#}", e.summary()), false)]);
        for (line, ok) in results {
            total += 1;
            if !ok {
                failed += 1;
            }
            println!("{} {line}", if ok { "PASS" } else { "FAIL" });
            lines.push((line, ok));
        }
    }
    println!(
        "{}: {} passed, {} failed",
        scenario.name,
        total - failed,
        failed
    );
    Ok((api, lines))
}
