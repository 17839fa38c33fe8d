//! Command-line interface: the roles (`controlplane`, `node`), the
//! launcher (`up`, `down`, `run`), and the kubectl-like client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use podnet_lab::{bench, launcher, scenario};

use crate::kubectl::{self, flows, matrix, rollout, trace, wait};
use crate::roles;

#[derive(Debug, Parser)]
#[command(
    name = "podnet",
    version,
    about = "A Kubernetes-networking testbed of real processes on one machine"
)]
pub struct Cli {
    /// Where the running cluster is recorded [default: .podnet; `run`
    /// uses a new temporary directory unless this is given].
    #[arg(long, global = true, env = "PODNET_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (API server, store, scheduler, controllers).
    Controlplane(roles::ControlplaneArgs),
    /// Run a node (agent, pod runtime, overlay).
    Node(Box<roles::NodeArgs>),
    /// Run the edge load balancer (LoadBalancer Services on the host).
    Edge(roles::EdgeArgs),
    /// Start a cluster in the background and wait until its nodes are Ready.
    Up(launcher::UpArgs),
    /// Stop the cluster of the state directory.
    Down,
    /// Run a scenario file: up, apply, wait, check expectations, down.
    Run(scenario::run::RunArgs),
    /// Create or update objects from a manifest file (`-` for stdin).
    Apply(kubectl::ApplyArgs),
    /// List or show objects.
    Get(kubectl::GetArgs),
    /// Show one object the way kubectl describe does.
    Describe(kubectl::DescribeArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(kubectl::ScaleArgs),
    /// Wait until objects have a condition, or are gone (kubectl wait).
    Wait(wait::WaitArgs),
    /// Follow a Deployment's rollout (kubectl rollout status).
    Rollout(rollout::RolloutArgs),
    /// Delete an object.
    Delete(kubectl::DeleteArgs),
    /// Evict pods: the Eviction API, or the node's own eviction under
    /// resource pressure (--node-pressure).
    Evict(kubectl::EvictArgs),
    /// Show where the cluster's parts listen and run.
    ClusterInfo(kubectl::ClusterInfoArgs),
    /// Run a toolbox command in a pod's network namespace.
    Exec(kubectl::ExecArgs),
    /// Show the journey of a flow or request hop by hop (the latest ones
    /// without a trace id).
    Trace(trace::TraceArgs),
    /// Show the flows NetworkPolicy judged, with the verdict and why.
    Flows(flows::FlowsArgs),
    /// NetworkPolicy tools: the live reachability matrix.
    Netpol(matrix::NetpolArgs),
    /// Change emulated link conditions between nodes at run time.
    Link(kubectl::LinkArgs),
    /// Measure podnet against a reference in the same run.
    Bench(bench::BenchArgs),
    /// Compare two experiment reports (report.json) of one scenario.
    Compare(CompareArgs),
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The first run's report.json.
    pub a: PathBuf,
    /// The second run's report.json.
    pub b: PathBuf,
}

impl Command {
    /// Long-running roles log at info by default; client commands stay quiet.
    pub fn is_role(&self) -> bool {
        matches!(
            self,
            Command::Controlplane(_)
                | Command::Node(_)
                | Command::Edge(_)
                | Command::Up(launcher::UpArgs {
                    foreground: true,
                    ..
                })
        )
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let state = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".podnet"));
    match cli.command {
        Command::Controlplane(args) => roles::controlplane(&state, args).await,
        Command::Node(args) => roles::node(*args).await,
        Command::Edge(args) => roles::edge(args).await,
        Command::Up(args) => launcher::up(&state, args).await,
        Command::Down => launcher::down(&state, Duration::from_secs(10)).await,
        Command::Run(args) => scenario::run::run(args, cli.state_dir).await,
        Command::Apply(args) => kubectl::apply(&state, args).await,
        Command::Get(args) => kubectl::get(&state, args).await,
        Command::Delete(args) => kubectl::delete(&state, args).await,
        Command::Evict(args) => kubectl::evict(&state, args).await,
        Command::Wait(args) => wait::run(&state, args).await,
        Command::Rollout(args) => rollout::run(&state, args).await,
        Command::Describe(args) => kubectl::describe(&state, args).await,
        Command::Scale(args) => kubectl::scale(&state, args).await,
        Command::ClusterInfo(args) => kubectl::cluster_info(&state, args).await,
        Command::Exec(args) => kubectl::exec(&state, args).await,
        Command::Trace(args) => trace::run(&state, args).await,
        Command::Flows(args) => flows::run(&state, args).await,
        Command::Netpol(args) => matrix::run(&state, args).await,
        Command::Link(args) => kubectl::link(&state, args.action).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Compare(args) => {
            podnet_lab::scenario::compare::run(&args.a, &args.b)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
