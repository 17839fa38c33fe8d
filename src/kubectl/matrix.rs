//! `podnet netpol matrix [-n NS,...] [--ports 80,81] [--protocols tcp,udp,sctp]
//! [--timeout S] [--expect FILE] [-o json]`: every pod of the namespaces
//! probes every pod through the real datapath, and the reachability grid
//! is printed the way cyclonus prints it (`podnet_lab::matrix`). With
//! `--expect`, a grid the user wrote is compared cell by cell: the
//! comparison marks the differing cells with `X`, and the exit code is 1
//! when any differs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use podnet_lab::InputError;
use podnet_lab::api;
use podnet_lab::matrix::{self, Matrix};
use podnet_proto::model::view::Protocol;
use serde_json::json;

/// Namespaces of the cluster's own components, left out unless named.
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "podnet-ingress",
];

#[derive(Debug, Args)]
pub struct NetpolArgs {
    #[command(subcommand)]
    pub command: NetpolCommand,
}

#[derive(Debug, Subcommand)]
pub enum NetpolCommand {
    /// Probe every pod pair and print the reachability matrix.
    Matrix(MatrixArgs),
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Namespaces whose pods take part [default: every namespace but the
    /// cluster's own].
    #[arg(short, long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Ports to probe, one matrix each.
    #[arg(long, value_delimiter = ',', default_value = "80")]
    pub ports: Vec<u16>,
    /// tcp, udp, sctp.
    #[arg(long, value_delimiter = ',', default_value = "tcp")]
    pub protocols: Vec<String>,
    /// Seconds a probe waits before calling the pair blocked.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub timeout: u64,
    /// A matrix as this command prints it, with the cells expected.
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// json for machines.
    #[arg(short, long)]
    pub output: Option<String>,
}

pub async fn run(state: &Path, args: NetpolArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NetpolCommand::Matrix(args) => run_matrix(state, args).await,
    }
}

async fn run_matrix(state: &Path, args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let json = match args.output.as_deref() {
        None => false,
        Some("json") => true,
        Some(other) => {
            return Err(InputError(format!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json"
            ))
            .into());
        }
    };
    let protocols = args
        .protocols
        .iter()
        .map(|p| match p.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            other => Err(InputError(format!(
                "--protocols: {other:?} is not a protocol the matrix probes: expected tcp, udp or sctp"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.ports.contains(&0) {
        return Err(InputError("--ports: 0 is not a port".into()).into());
    }
    let expected = match &args.expect {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| InputError(format!("--expect {}: {e}", file.display())))?;
            Some(
                matrix::parse(&text)
                    .map_err(|e| InputError(format!("--expect {}: {e}", file.display())))?,
            )
        }
    };
    let mut api = api::from_state(state).await?;
    let namespaces = if args.namespaces.is_empty() {
        api::list_objects(&mut api, "Namespace", "")
            .await?
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .filter(|n| !SYSTEM_NAMESPACES.contains(n))
            .map(String::from)
            .collect()
    } else {
        args.namespaces.clone()
    };
    let pods = matrix::pods_of(&mut api, &namespaces).await?;
    if pods.is_empty() {
        anyhow::bail!("no running pods in namespaces {}", namespaces.join(", "));
    }
    let mut matrices: Vec<Matrix> = Vec::new();
    for protocol in &protocols {
        for port in &args.ports {
            matrices.push(matrix::probe(&api, &pods, *port, *protocol, args.timeout).await?);
        }
    }
    let mut differs = false;
    let mut out = Vec::new();
    for m in &matrices {
        let comparison = expected.as_ref().map(|e| matrix::compare(m, e));
        if let Some((differences, _)) = &comparison {
            differs |= !differences.is_empty();
        }
        if json {
            out.push(json!({
                "protocol": m.protocol.as_str(),
                "port": m.port,
                "pods": m.pods,
                "reachable": m.reachable,
                "differences": comparison.as_ref().map(|(d, _)| d.iter().map(|d| json!({
                    "client": d.client, "server": d.server, "reachable": d.reachable,
                })).collect::<Vec<_>>()),
            }));
            continue;
        }
        print!("{}", matrix::render(m));
        if let Some((differences, unknown)) = comparison {
            println!();
            println!(
                "compared with {}: {} of {} cells differ",
                args.expect.as_deref().unwrap_or(Path::new("")).display(),
                differences.len(),
                m.pods.len() * m.pods.len()
            );
            print!("{}", matrix::render_comparison(m, &differences));
            for d in &differences {
                let got = if d.reachable { "reachable" } else { "blocked" };
                println!("  {} -> {}: {got}", d.client, d.server);
            }
            for label in unknown {
                println!("  {label}: no such running pod, not compared");
            }
        }
        println!();
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"matrices": out}))?
        );
    }
    Ok(if differs {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
