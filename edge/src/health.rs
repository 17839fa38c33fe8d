//! Health checks, as a cloud load balancer runs them against a cluster's
//! nodes: `GET /healthz` on kube-proxy's port 10256 of every node (Services
//! with `externalTrafficPolicy: Cluster`), and `GET /` on the Service's
//! `healthCheckNodePort` (Local), where a node answers 200 only while it
//! runs a ready endpoint of the Service. Nodes that fail stop receiving new
//! connections; nodes that pass again get them again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::nodes::NodeInfo;
use crate::overlay::Overlay;

/// A probe that has not answered by then failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One check: a port (and path) on one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub node: String,
    pub port: u16,
    pub path: &'static str,
}

/// The latest result of every check in use.
#[derive(Default)]
pub struct HealthTable {
    results: Mutex<HashMap<(String, u16), bool>>,
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
            .copied()
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
        for (check, ok) in done {
            let key = (check.node.clone(), check.port);
            if results.insert(key, ok) != Some(ok) {
                tracing::info!(node = %check.node, port = check.port, healthy = ok, "health check changed");
            }
        }
    }
}

/// One HTTP GET through the overlay: healthy on 200 only.
async fn probe(overlay: &Arc<Overlay>, node: &NodeInfo, port: u16, path: &str) -> bool {
    let attempt = async {
        let dst = std::net::SocketAddrV4::new(node.ip, port);
        let src_port = rand::random_range(20_000..30_000);
        let stream = overlay.open_tcp(node, src_port, dst, 0).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        let request = Request::get(path)
            .header(http::header::HOST, dst.to_string())
            .header(http::header::USER_AGENT, "podnet-edge-health-check")
            .body(Empty::<Bytes>::new())
            .ok()?;
        // The status is all a check reads; the connection is driven only
        // until it arrives, then dropped.
        let response = tokio::select! {
            r = sender.send_request(request) => r.ok()?,
            _ = conn => return None,
        };
        Some(response.status() == StatusCode::OK)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}
