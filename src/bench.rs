//! `podnet bench`: podnet measured against a reference in the same run.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: overlay.
    pub what: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("unknown benchmark {:?}", args.what)
}
