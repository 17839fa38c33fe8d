//! `podnet run FILE`: boot a cluster for the scenario, apply its links and
//! manifests, wait until everything is Ready, check the expectations, tear
//! the cluster down, and exit non-zero if any failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::Ipv4Net;
use serde_json::Value;

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
}

/// Runs the scenario in a cluster recorded in `state_dir` (so `podnet get`
/// and friends work against it while it runs), or in a new temporary
/// directory that is removed after a passing run.
pub async fn run(args: RunArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.file)?;
    let objects = manifests(&args.file, &scenario)?;
    super::refs::check(&scenario, &objects)
        .map_err(|e| InputError(format!("{}: {e}", args.file.display())))?;
    if args.check {
        println!(
            "{}: ok ({} nodes, {} objects, {} expectations)",
            args.file.display(),
            scenario.cluster.node_specs().len(),
            objects.len(),
            scenario.expect.len()
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
    let result = run_in_cluster(&state, &record.controlplane, &scenario, &objects, base).await;
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
    match result {
        Ok(true) => {
            println!("cluster torn down; scenario passed in {took:.1} s");
            if temporary {
                let _ = std::fs::remove_dir_all(&state);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!(
                "cluster torn down; scenario FAILED in {took:.1} s; logs kept in {}",
                state.join("logs").display()
            );
            Ok(ExitCode::FAILURE)
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

async fn run_in_cluster(
    state: &Path,
    cp: &str,
    scenario: &Scenario,
    objects: &[Value],
    base: &Path,
) -> anyhow::Result<bool> {
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
        }
    }
    println!(
        "{}: {} passed, {} failed",
        scenario.name,
        total - failed,
        failed
    );
    Ok(failed == 0)
}
