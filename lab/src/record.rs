//! The record of a running cluster in its state directory: `cluster.json`
//! (where the control plane listens, where the control plane and the
//! edge serve `/metrics`, the process of every role) and
//! `supervisor.pid` (held while a supervisor runs, so a second `up` in the
//! same directory is refused). The launcher writes it; the client, the
//! runner, the benchmarks and the tests read it through [`ClusterRecord`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `cluster.json` records of a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub controlplane: String,
    /// Where the control plane serves Prometheus `/metrics`.
    #[serde(default)]
    pub controlplane_metrics: Option<String>,
    /// Where the edge serves Prometheus `/metrics`.
    #[serde(default)]
    pub edge_metrics: Option<String>,
    pub supervisor_pid: u32,
    pub controlplane_pid: u32,
    /// The edge load balancer's process (0: none).
    #[serde(default)]
    pub edge_pid: u32,
    /// The LoadBalancer pool this cluster holds on the machine
    /// (`crate::lbpool`).
    #[serde(default)]
    pub lb_pool: Option<ipnet::Ipv4Net>,
    pub nodes: Vec<NodeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub pid: u32,
}

impl ClusterRecord {
    pub fn path(state: &Path) -> PathBuf {
        state.join("cluster.json")
    }

    /// The record of the cluster running in `state`.
    pub fn read(state: &Path) -> anyhow::Result<ClusterRecord> {
        let path = ClusterRecord::path(state);
        let text =
            std::fs::read_to_string(&path).map_err(|_| {
                match crate::failure::Failure::read(state) {
                    Some(failure) => anyhow::anyhow!("{}", failure.describe(state)),
                    None => anyhow::anyhow!(
                        "no cluster is running in {} (start one with `podnet up`)",
                        state.display()
                    ),
                }
            })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster record", path.display()))
    }

    pub fn write(&self, state: &Path) -> anyhow::Result<()> {
        write_atomic(
            &ClusterRecord::path(state),
            &serde_json::to_string_pretty(self)?,
        )
    }

    /// The processes of the cluster's roles (control plane, edge, nodes),
    /// without the supervisor; none is 0.
    pub fn role_pids(&self) -> impl Iterator<Item = u32> + '_ {
        [self.controlplane_pid, self.edge_pid]
            .into_iter()
            .chain(self.nodes.iter().map(|n| n.pid))
            .filter(|p| *p != 0)
    }
}

/// `supervisor.pid` of `state`.
pub fn supervisor_pid_path(state: &Path) -> PathBuf {
    state.join("supervisor.pid")
}

/// The supervisor recorded in `state`, if its file holds a pid.
pub fn supervisor_pid(state: &Path) -> Option<u32> {
    std::fs::read_to_string(supervisor_pid_path(state))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// True if `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|s| s != 'Z')
}

/// The state letter of `pid` in `/proc/PID/stat` (`R`, `S`, `T` for
/// stopped, `Z`...), or `None` when there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_state(&stat)
}

/// The state in a `/proc/PID/stat` line: the field after the command
/// name, which is in parentheses and may itself hold `)` and spaces.
pub fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.chars().next())
}

/// The file that asks the supervisor of `state` to start node `name`
/// again when its process exits (a restart, not a lost machine): written
/// by whoever stops the node, removed by the supervisor as it restarts it.
pub fn restart_request_path(state: &Path, name: &str) -> PathBuf {
    state.join("restart").join(name)
}

/// Sends `sig` to `pid`; a process that is gone already is no error.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

pub use crate::atomic_file::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_lists_its_roles() {
        let dir = tempfile::tempdir().unwrap();
        let record = ClusterRecord {
            controlplane: "127.0.0.1:1".into(),
            controlplane_metrics: Some("127.0.0.1:2".into()),
            edge_metrics: None,
            supervisor_pid: 10,
            controlplane_pid: 11,
            edge_pid: 0,
            lb_pool: Some("127.0.1.0/24".parse().unwrap()),
            nodes: vec![NodeRecord {
                name: "node-1".into(),
                pid: 12,
            }],
        };
        record.write(dir.path()).unwrap();
        assert_eq!(ClusterRecord::read(dir.path()).unwrap(), record);
        assert_eq!(record.role_pids().collect::<Vec<_>>(), [11, 12]);
        let err = ClusterRecord::read(&dir.path().join("none")).unwrap_err();
        assert!(err.to_string().contains("no cluster is running"), "{err}");
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn the_state_follows_the_command_name() {
        assert_eq!(stat_state("12 (podnet) T 1 12 12 0"), Some('T'));
        assert_eq!(stat_state("12 (a) b) (c) S 1 12"), Some('S'));
        assert_eq!(stat_state("12 (podnet)"), None);
        assert_eq!(stat_state(""), None);
        // A stopped process is T, and continued it is not.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        signal(pid, nix::sys::signal::Signal::SIGSTOP);
        let stopped = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            process_state(pid) == Some('T')
        });
        signal(pid, nix::sys::signal::Signal::SIGCONT);
        let continued = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            process_state(pid) != Some('T')
        });
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(stopped && continued);
        assert_eq!(process_state(u32::MAX), None);
    }
}
