//! `podnet run FILE`: boot a cluster for the scenario, apply its links and
//! manifests, wait until everything is Ready, check the expectations, tear
//! the cluster down, and exit non-zero if any failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
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
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = load(&args.file)?;
    let objects = manifests(&args.file, &scenario)?;
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
    let state = std::env::temp_dir().join(format!(
        "podnet-run-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let up = UpArgs {
        file: Some(args.file.clone()),
        nodes: 0,
        node_grace_period: Duration::from_secs(3),
        lb_pool: launcher::parse_lb_pool(podnet_proto::model::network::DEFAULT_LB_POOL)
            .map_err(anyhow::Error::msg)?,
        foreground: false,
    };
    let started = std::time::Instant::now();
    let (mut supervisor, record) = launcher::start_supervisor(&state, &up, false).await?;
    println!(
        "scenario {}: {} nodes Ready in {} ms",
        scenario.name,
        record.nodes.len(),
        started.elapsed().as_millis()
    );
    if let Some(d) = &scenario.description {
        println!("  {d}");
    }
    let base = args.file.parent().unwrap_or(Path::new("."));
    let result = run_in_cluster(&record.controlplane, &scenario, &objects, base).await;
    if let Some(pid) = supervisor.id() {
        record::signal(pid, nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(10), supervisor.wait())
        .await
        .is_err()
    {
        let _ = supervisor.kill().await;
    }
    let passed = result?;
    if passed {
        let _ = std::fs::remove_dir_all(&state);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("logs kept in {}", state.join("logs").display());
        Ok(ExitCode::FAILURE)
    }
}

async fn run_in_cluster(
    cp: &str,
    scenario: &Scenario,
    objects: &[Value],
    base: &Path,
) -> anyhow::Result<bool> {
    let mut api = api::connect(cp).await?;
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
        let results = match e {
            Expectation::Reachability { reachability } => {
                expect::check_reachability(&mut api, reachability).await?
            }
            Expectation::Dns(d) => vec![expect::check_dns(&mut api, d).await?],
            Expectation::Http(h) if h.from == "host" => {
                vec![super::host::check_http_from_host(&mut api, h, base).await?]
            }
            Expectation::Http(h) => vec![expect::check_http(&mut api, h).await?],
        };
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
