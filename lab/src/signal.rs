//! The shutdown signal of a process: one token, cancelled by SIGINT or
//! SIGTERM (they mean the same).

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// A token cancelled by SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let t = token.clone();
    // Ends with the process; nothing to join.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        t.cancel();
    });
    Ok(token)
}
