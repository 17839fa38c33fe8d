//! Why a cluster is down, for whoever asks next: the supervisor's last
//! word (`STATE/cluster-failed.json`, written when it gives up) and the
//! tail of a role's log, which clients add to "cannot reach the control
//! plane" so a user sees the control plane's own error instead of a bare
//! "connection refused".
//!
//! Deliberately not here: deciding anything. The supervisor decides when to
//! give up (`launcher::Restarts`); this only records and reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;

/// How many log lines a failure shows.
pub const TAIL_LINES: usize = 12;
/// Longer lines are cut (a JSON log line can be long).
const MAX_LINE: usize = 2000;

/// What `cluster-failed.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// RFC 3339, when the supervisor gave up.
    pub at: String,
    /// The supervisor's reason, the log tail included.
    pub reason: String,
}

impl Failure {
    pub fn path(state: &Path) -> PathBuf {
        state.join("cluster-failed.json")
    }

    pub fn write(state: &Path, reason: &str) -> anyhow::Result<()> {
        let failure = Failure {
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            reason: reason.to_owned(),
        };
        write_atomic(
            &Failure::path(state),
            &serde_json::to_string_pretty(&failure)?,
        )
    }

    /// The failure recorded in `state`, if any (an unreadable file is none:
    /// it only ever adds to an error message).
    pub fn read(state: &Path) -> Option<Failure> {
        let text = std::fs::read_to_string(Failure::path(state)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn clear(state: &Path) {
        let _ = std::fs::remove_file(Failure::path(state));
    }

    /// What a client says about a cluster that stopped.
    pub fn describe(&self, state: &Path) -> String {
        format!(
            "the cluster in {} stopped at {}: {}\nrun `podnet down` to clear it, then `podnet up` for a new cluster",
            state.display(),
            self.at,
            self.reason
        )
    }
}

/// `STATE/logs/ROLE.log`.
pub fn log_path(state: &Path, role: &str) -> PathBuf {
    state.join("logs").join(format!("{role}.log"))
}

/// The last `n` non-empty lines of `path` (none if it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| match l.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l.to_owned(),
        })
        .collect();
    lines.reverse();
    lines
}

/// "last lines of PATH:" and the tail, indented; empty when there is none.
pub fn tail_text(state: &Path, role: &str) -> String {
    let path = log_path(state, role);
    let tail = log_tail(&path, TAIL_LINES);
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "\nlast lines of {}:\n  {}",
        path.display(),
        tail.join("\n  ")
    )
}

/// A failed connection to the control plane of the cluster in `state`,
/// with the control plane's own last words.
pub fn unreachable(state: &Path, err: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{err:#}\n(the supervisor restarts a control plane that exits, and stops the cluster if it keeps exiting){}",
        tail_text(state, "controlplane")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_the_last_non_empty_lines_cut_to_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert!(log_tail(&path, 3).is_empty());
        let long = "y".repeat(MAX_LINE + 10);
        std::fs::write(&path, format!("a\nb\n\nc\n{long}\n\n")).unwrap();
        let tail = log_tail(&path, 3);
        assert_eq!(tail[..2], ["b", "c"]);
        assert_eq!(tail[2].chars().count(), MAX_LINE + 1);
    }

    #[test]
    fn a_failure_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Failure::read(dir.path()), None);
        Failure::write(dir.path(), "the control plane exited").unwrap();
        let f = Failure::read(dir.path()).unwrap();
        assert!(f.describe(dir.path()).contains("the control plane exited"));
        assert!(f.describe(dir.path()).contains("podnet down"));
        Failure::clear(dir.path());
        assert_eq!(Failure::read(dir.path()), None);
    }
}
