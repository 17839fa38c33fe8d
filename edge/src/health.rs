//! Health checks, as a cloud load balancer runs them against a cluster's
//! nodes: `GET /healthz` on kube-proxy's port 10256 of every node (Services
//! with `externalTrafficPolicy: Cluster`), and `GET /` on the Service's
//! `healthCheckNodePort` (Local), where a node answers 200 only while it
//! runs a ready endpoint of the Service. Nodes that fail stop receiving new
//! connections; nodes that pass again get them again.
//!
//! Checks use the overlay's health connection to each node, never the one
//! client flows share. A check that got no answer at all (timed out, no
//! connection, the flow dropped) may have failed for the checker's own
//! connection rather than the node, so that connection is dropped and the
//! next check, a second later, runs on a fresh one: a node is only ever
//! unhealthy for as long as fresh checks keep failing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::nodes::NodeInfo;
use crate::overlay::{OpenError, Overlay};

/// A probe that has not answered by then failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One check: a port (and path) on one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub node: String,
    pub port: u16,
    pub path: &'static str,
}

/// Consecutive probes without any answer before a node that passed counts
/// as failing (a cloud load balancer's "unhealthy threshold", 2 on GCP and
/// AWS): one lost probe, or a probe lost with the connection it rode, is
/// not the node's fault. An answer that says no (503, refused) counts at
/// once; one pass makes a node healthy again.
const UNHEALTHY_THRESHOLD: u32 = 2;

/// The state of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    healthy: bool,
    /// Probes in a row that got no answer.
    unanswered: u32,
}

/// The verdict after `probe`, given the one before (`None`: first probe).
fn next_verdict(before: Option<Verdict>, probe: Probe) -> Verdict {
    if !probe.suspects_connection() {
        return Verdict {
            healthy: probe.healthy(),
            unanswered: 0,
        };
    }
    let unanswered = before.map_or(0, |b| b.unanswered) + 1;
    let healthy = match before {
        Some(b) if b.healthy => unanswered < UNHEALTHY_THRESHOLD,
        _ => false,
    };
    Verdict {
        healthy,
        unanswered,
    }
}

/// The latest verdict of every check in use.
#[derive(Default)]
pub struct HealthTable {
    results: Mutex<HashMap<(String, u16), Verdict>>,
    /// Wakes the checker when the set of checks changed.
    changed: Notify,
}

impl HealthTable {
    /// `None` while the check has not run yet.
    pub fn healthy(&self, node: &str, port: u16) -> Option<bool> {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(node.to_string(), port))
            .map(|v| v.healthy)
    }

    /// Asks for a round of checks now (new Services or nodes).
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Runs `checks` once, concurrently, and keeps only their results.
    pub async fn run(&self, overlay: &Arc<Overlay>, nodes: &[NodeInfo], checks: &[Check]) {
        let by_name: HashMap<&str, &NodeInfo> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let probes = checks.iter().filter_map(|c| {
            let node = by_name.get(c.node.as_str())?;
            Some(async move { (c, probe(overlay, node, c.port, c.path).await) })
        });
        let done = futures::future::join_all(probes).await;
        let wanted: HashSet<(String, u16)> =
            checks.iter().map(|c| (c.node.clone(), c.port)).collect();
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        results.retain(|k, _| wanted.contains(k));
        for (check, seen) in done {
            let key = (check.node.clone(), check.port);
            let before = results.get(&key).copied();
            let after = next_verdict(before, seen);
            results.insert(key, after);
            if before.map(|b| b.healthy) != Some(after.healthy) {
                tracing::info!(node = %check.node, port = check.port, healthy = after.healthy, probe = ?seen, "health check changed");
            }
        }
    }
}

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The node answered with this HTTP status.
    Status(StatusCode),
    /// The node refused the connection: nothing listens on the port.
    Refused,
    /// No answer: timed out, unreachable, or the flow ended early.
    NoAnswer,
}

impl Probe {
    /// Healthy on 200 only.
    fn healthy(self) -> bool {
        self == Probe::Status(StatusCode::OK)
    }

    /// Whether the checker's connection is suspect: only when the node did
    /// not answer at all (a refusal or any status is the node's answer).
    fn suspects_connection(self) -> bool {
        self == Probe::NoAnswer
    }
}

/// One HTTP GET through the overlay, on the health checks' connection,
/// which is dropped when the probe got no answer.
async fn probe(overlay: &Arc<Overlay>, node: &NodeInfo, port: u16, path: &str) -> Probe {
    let seen = tokio::time::timeout(PROBE_TIMEOUT, get(overlay, node, port, path))
        .await
        .unwrap_or(Probe::NoAnswer);
    if seen.suspects_connection() {
        tracing::debug!(node = %node.name, port, "health check got no answer: next one on a new connection");
        overlay.reset_health(node);
    }
    seen
}

async fn get(overlay: &Arc<Overlay>, node: &NodeInfo, port: u16, path: &str) -> Probe {
    let dst = std::net::SocketAddr::from((node.ip, port));
    let src_port = rand::random_range(20_000..30_000);
    let stream = match overlay.open_health_check(node, src_port, dst).await {
        Ok(stream) => stream,
        Err(OpenError::Refused) => return Probe::Refused,
        Err(OpenError::Unreachable(_)) => return Probe::NoAnswer,
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return Probe::NoAnswer;
    };
    let Ok(request) = Request::get(path)
        .header(http::header::HOST, dst.to_string())
        .header(http::header::USER_AGENT, "podnet-edge-health-check")
        .body(Empty::<Bytes>::new())
    else {
        return Probe::NoAnswer;
    };
    // The status is all a check reads; the connection is driven only
    // until it arrives, then dropped.
    tokio::select! {
        r = sender.send_request(request) => match r {
            Ok(response) => Probe::Status(response.status()),
            Err(_) => Probe::NoAnswer,
        },
        _ = conn => Probe::NoAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_probe_means() {
        let check = |p: Probe, healthy: bool, suspects_connection: bool| {
            assert_eq!(
                (p.healthy(), p.suspects_connection()),
                (healthy, suspects_connection),
                "{p:?}"
            );
        };
        check(Probe::Status(StatusCode::OK), true, false);
        // kube-proxy's "no local endpoint": the node's answer, not ours.
        check(Probe::Status(StatusCode::SERVICE_UNAVAILABLE), false, false);
        check(Probe::Status(StatusCode::NOT_FOUND), false, false);
        check(Probe::Refused, false, false);
        check(Probe::NoAnswer, false, true);
    }

    #[test]
    fn verdicts_over_probes() {
        let ok = Probe::Status(StatusCode::OK);
        let no = Probe::Status(StatusCode::SERVICE_UNAVAILABLE);
        let lost = Probe::NoAnswer;
        // Probes in order, and whether the node is healthy after each.
        let check = |probes: &[Probe], expected: &[bool]| {
            let mut verdict = None;
            let got: Vec<bool> = probes
                .iter()
                .map(|p| {
                    let v = next_verdict(verdict, *p);
                    verdict = Some(v);
                    v.healthy
                })
                .collect();
            assert_eq!(got, expected, "{probes:?}");
        };
        check(&[ok], &[true]);
        check(&[lost], &[false]);
        check(&[no], &[false]);
        // One lost probe is forgiven, two in a row are not.
        check(&[ok, lost, ok], &[true, true, true]);
        check(&[ok, lost, lost, lost], &[true, true, false, false]);
        // The node's own "no" counts at once.
        check(&[ok, no, ok], &[true, false, true]);
        check(&[ok, Probe::Refused], &[true, false]);
        // One pass and it is back; the count starts again.
        check(
            &[ok, lost, lost, ok, lost, ok],
            &[true, true, false, true, true, true],
        );
        // Failing, then lost probes: still failing.
        check(&[no, lost, lost], &[false, false, false]);
    }
}
