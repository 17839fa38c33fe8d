//! What the benches that drive processes (`dns`, `ingress`) share: a
//! scratch directory that is kept when a run fails, the cluster guard
//! (`podnet up` in a state directory of its own, always `down` again),
//! finding the reference tools, running a command with a time limit, and
//! starting a reference server on a free port.
//!
//! Nothing here measures or knows a reference server; that stays in each
//! bench.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How long one podnet client command may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `podnet down` may take when a cluster guard is dropped.
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a cluster is asked again while waiting for it.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Runs `measure` in a fresh directory `podnet-bench-NAME-PID-NANOS` under
/// the temp dir: removed after a successful run, kept (and named in the
/// error) after a failed or interrupted one, for its logs.
pub(super) async fn in_scratch_dir(
    name: &str,
    measure: impl AsyncFnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let base = std::env::temp_dir().join(format!(
        "podnet-bench-{name}-{}-{nanos:08x}",
        std::process::id()
    ));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    // On Ctrl-C the measurement is dropped, and with it its guards: the
    // cluster goes down and the reference servers and load generators are
    // stopped.
    let result = tokio::select! {
        r = measure(&base) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&base);
            Ok(())
        }
        // The cluster and the servers are stopped already (guards); their
        // logs stay.
        Err(e) => Err(e.context(format!("logs kept in {}", base.display()))),
    }
}

/// Every one of `names` (see [`find_tool`]), or an error naming the missing
/// ones and the Debian packages (`install`) that bring them.
pub(super) fn find_tools<const N: usize>(
    names: [&str; N],
    install: &str,
) -> anyhow::Result<[PathBuf; N]> {
    let found = names.map(find_tool);
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} not found (looked in PATH, /usr/sbin and /sbin); install the Debian packages: {install}",
        missing.join(" and ")
    );
    // Nothing is missing (checked above): every entry is Some.
    Ok(found.map(Option::unwrap_or_default))
}

/// `name` in PATH, or in the sbin directories Debian puts servers such as
/// unbound and nginx in.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The podnet cluster of a run, in its own state directory; `down` when
/// dropped, also on error.
pub(super) struct Cluster {
    exe: PathBuf,
    state: PathBuf,
}

impl Cluster {
    /// The guard of the cluster with state directory `state`; starts
    /// nothing (that is [`Cluster::up`]).
    pub(super) fn new(state: PathBuf) -> anyhow::Result<Cluster> {
        let exe = std::env::current_exe().context("cannot find the podnet executable")?;
        Ok(Cluster { exe, state })
    }

    /// `podnet up --nodes NODES`.
    pub(super) async fn up(&self, nodes: usize) -> anyhow::Result<()> {
        self.podnet(&["up", "--nodes", &nodes.to_string()], None)
            .await?;
        Ok(())
    }

    /// `podnet apply -f -` of `manifests`.
    pub(super) async fn apply(&self, manifests: String) -> anyhow::Result<()> {
        self.podnet(&["apply", "-f", "-"], Some(manifests.into_bytes()))
            .await?;
        Ok(())
    }

    /// Runs `podnet --state-dir STATE ARGS...`, returns its standard output.
    pub(super) async fn podnet(
        &self,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("--state-dir").arg(&self.state).args(args);
        let what = format!("podnet {}", args.join(" "));
        output(&mut cmd, stdin, CMD_TIMEOUT, &what).await
    }

    /// Runs `podnet ARGS` (which prints JSON, `parsed` names it in errors)
    /// every 100 ms until `check` breaks with what it waits for, for at most
    /// `limit`. `check` continues with what it saw instead; on timeout the
    /// error is `NOT_YET after LIMIT (SAW)`.
    pub(super) async fn wait_json<T>(
        &self,
        args: &[&str],
        parsed: &str,
        limit: Duration,
        not_yet: &str,
        mut check: impl FnMut(&Value) -> anyhow::Result<ControlFlow<T, String>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        // Bounded by the deadline; at most limit / 100 ms rounds.
        for _ in 0..(limit.as_millis() / POLL_EVERY.as_millis()).max(1) {
            let out = self.podnet(args, None).await?;
            let v: Value = serde_json::from_str(&out).context(parsed.to_string())?;
            match check(&v)? {
                ControlFlow::Break(found) => return Ok(found),
                ControlFlow::Continue(saw) => last = saw,
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        bail!("{not_yet} after {limit:?} ({last})")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let child = std::process::Command::new(&self.exe)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("down")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child
            && !wait_exit(&mut child, DOWN_TIMEOUT)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A reference server that exited before it served.
#[derive(Debug, thiserror::Error)]
#[error("{what} exited ({status})")]
pub(super) struct Exited {
    what: String,
    status: ExitStatus,
}

/// Ok while `child` (the server `what`) runs, [`Exited`] once it has
/// exited: the `alive` check of a wait for a server to serve.
pub(super) fn running(child: &mut Child, what: &str) -> anyhow::Result<()> {
    match child.try_wait()? {
        None => Ok(()),
        Some(status) => Err(Exited {
            what: what.to_owned(),
            status,
        }
        .into()),
    }
}

/// Starts the server `what` with `start(port)` on a port from `free_port`,
/// up to `attempts` times: a port picked free may be taken again before the
/// server binds it, so a start that failed because the server exited
/// ([`Exited`] in its error chain) is tried again on another port. Any other
/// failure is final.
pub(super) async fn on_free_port<S>(
    attempts: usize,
    what: &str,
    free_port: impl Fn() -> anyhow::Result<u16>,
    mut start: impl AsyncFnMut(u16) -> anyhow::Result<S>,
) -> anyhow::Result<S> {
    let mut error = None;
    for _ in 0..attempts {
        let port = free_port()?;
        match start(port).await {
            Ok(server) => return Ok(server),
            // Perhaps the port was taken meanwhile: pick another.
            Err(e) if e.downcast_ref::<Exited>().is_some() => error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(error.unwrap_or_else(|| anyhow::anyhow!("{what} did not start")))
}

/// Waits for `child` at most `limit`; true if it exited.
pub(super) fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let step = Duration::from_millis(20);
    for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(step),
            Ok(Some(_)) | Err(_) => return true,
        }
    }
    false
}

/// Runs `cmd` (killed if it outlives `limit`), feeding `stdin`; returns its
/// standard output, or an error with its standard error if it failed.
pub(super) async fn output(
    cmd: &mut tokio::process::Command,
    stdin: Option<Vec<u8>>,
    limit: Duration,
    what: &str,
) -> anyhow::Result<String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let pipe = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (pipe, stdin) {
            pipe.write_all(&bytes).await?;
            pipe.shutdown().await?;
        }
        std::io::Result::Ok(())
    };
    let (fed, out) = tokio::time::timeout(limit, async {
        tokio::join!(feed, child.wait_with_output())
    })
    .await
    .with_context(|| format!("{what} did not finish within {limit:?}"))?;
    let out = out.with_context(|| what.to_string())?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    fed.with_context(|| format!("{what}: writing its standard input"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Exited` error as a start gives it: behind the start's context.
    fn exited() -> anyhow::Error {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        running(&mut child, "server")
            .unwrap_err()
            .context("server -c conf (log: bind: address in use)")
    }

    #[tokio::test]
    async fn a_server_that_exited_is_tried_on_another_port() {
        let ports = std::cell::Cell::new(40_000);
        let next = || {
            ports.set(ports.get() + 1);
            Ok(ports.get())
        };
        let mut tried = Vec::new();
        let got = on_free_port(5, "server", next, async |port| {
            tried.push(port);
            if tried.len() < 3 {
                Err(exited())
            } else {
                Ok(port)
            }
        })
        .await;
        assert_eq!(got.unwrap(), 40_003);
        assert_eq!(tried, [40_001, 40_002, 40_003]);

        let e = on_free_port(
            2,
            "server",
            || Ok(1),
            async |_| -> anyhow::Result<()> { Err(exited()) },
        )
        .await
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("server exited (exit status: 0)"),
            "{e:#}"
        );
        let e = on_free_port(0, "server", || Ok(1), async |_| Ok(()))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "server did not start");
    }

    #[tokio::test]
    async fn any_other_failure_is_final() {
        let mut starts = 0;
        let e = on_free_port(
            5,
            "server",
            || Ok(1),
            async |_| -> anyhow::Result<()> {
                starts += 1;
                Err(anyhow::anyhow!("no answer").context("server -c conf"))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(starts, 1);
        assert_eq!(format!("{e:#}"), "server -c conf: no answer");
    }

    #[test]
    fn a_running_child_is_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        assert!(running(&mut child, "sleep").is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        let e = running(&mut child, "sleep").unwrap_err();
        assert!(e.downcast_ref::<Exited>().is_some());
    }
}
