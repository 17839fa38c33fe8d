//! Every process's `/metrics` while an experiment runs: once a second the
//! runner scrapes the control plane, the edge and each node (HTTP GET,
//! 1 s each, all at once), parses the text with prometheus-parse and sums
//! each family over its labels (a histogram as its `_sum` and `_count`),
//! so the report holds one small time series per process and family
//! beside the flows' (`report.json`'s `metrics`). A process that does not
//! answer (killed, paused, partitioned from nobody: scrapes go over the
//! host's loopback) leaves a gap, not an error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::Api;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most of one process's exposition read.
const MAX_BODY: usize = 4 << 20;

/// A process that serves `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `controlplane`, `edge` or the node's name.
    pub process: String,
    /// `host:port`.
    pub addr: String,
}

/// One process's families at one second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sampled {
    pub t: u64,
    pub process: String,
    pub values: BTreeMap<String, f64>,
}

/// The control plane's and the edge's addresses from the cluster record,
/// each node's from its Node (`podnet.io/metrics-address`).
pub async fn targets(api: &mut Api, state: &std::path::Path) -> Vec<Target> {
    let mut out = Vec::new();
    if let Ok(record) = crate::record::ClusterRecord::read(state) {
        for (process, addr) in [
            ("controlplane", record.controlplane_metrics),
            ("edge", record.edge_metrics),
        ] {
            if let Some(addr) = addr {
                out.push(Target {
                    process: process.into(),
                    addr,
                });
            }
        }
    }
    if let Ok(nodes) = super::expect::list(api, "Node").await {
        for n in nodes {
            let addr = n
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(podnet_proto::model::ANNOTATION_METRICS))
                .and_then(Value::as_str);
            if let (Some(name), Some(addr)) =
                (n.pointer("/metadata/name").and_then(Value::as_str), addr)
            {
                out.push(Target {
                    process: name.to_string(),
                    addr: addr.to_string(),
                });
            }
        }
    }
    out
}

/// Each family of `text` summed over its labels; what is not a number
/// (histogram and summary buckets) is left out.
pub fn families(text: &str) -> BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let mut out = BTreeMap::new();
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else {
        return out;
    };
    for sample in scrape.samples {
        let v = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        if v.is_finite() {
            *out.entry(sample.metric).or_insert(0.0) += v;
        }
    }
    out
}

async fn scrape(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    >,
    addr: &str,
) -> Option<BTreeMap<String, f64>> {
    let uri: http::Uri = format!("http://{addr}/metrics").parse().ok()?;
    let get = async {
        let response = client.get(uri).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .ok()?
            .to_bytes();
        Some(families(&String::from_utf8_lossy(&body)))
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, get)
        .await
        .ok()
        .flatten()
}

/// Scrapes `targets` each second of the run from `t0` until `stop`.
pub async fn run(targets: Vec<Target>, t0: Instant, stop: CancellationToken) -> Vec<Sampled> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut out = Vec::new();
    let mut second = 0u64;
    loop {
        let at = tokio::time::Instant::from_std(t0 + Duration::from_secs(second));
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = stop.cancelled() => return out,
        }
        let scrapes = targets.iter().map(|t| {
            let client = client.clone();
            async move { (t.process.clone(), scrape(&client, &t.addr).await) }
        });
        for (process, values) in futures::future::join_all(scrapes).await {
            if let Some(values) = values {
                out.push(Sampled {
                    t: second,
                    process,
                    values,
                });
            }
        }
        // A second missed (a slow scrape) is skipped, not caught up.
        second = second.max(t0.elapsed().as_secs()) + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_summed_over_their_labels() {
        let text = "# HELP podnet_node_drops_total Drops.\n# TYPE podnet_node_drops_total counter\npodnet_node_drops_total{reason=\"a\"} 2\npodnet_node_drops_total{reason=\"b\"} 3\n# TYPE podnet_node_overlay_connections gauge\npodnet_node_overlay_connections 4\n# TYPE podnet_node_endpoint_programming_duration_seconds histogram\npodnet_node_endpoint_programming_duration_seconds_bucket{le=\"0.1\"} 1\npodnet_node_endpoint_programming_duration_seconds_bucket{le=\"+Inf\"} 2\npodnet_node_endpoint_programming_duration_seconds_sum 0.3\npodnet_node_endpoint_programming_duration_seconds_count 2\n";
        let f = families(text);
        assert_eq!(f["podnet_node_drops_total"], 5.0);
        assert_eq!(f["podnet_node_overlay_connections"], 4.0);
        assert!(!f.contains_key("podnet_node_endpoint_programming_duration_seconds_bucket"));
        assert_eq!(
            f["podnet_node_endpoint_programming_duration_seconds_count"],
            2.0
        );
        // Garbage is nothing, not a panic.
        let garbage = families("\u{0}{{{ 12 }\n# TYPE\nx{a=\"} 1\n");
        assert!(garbage.values().all(|v| v.is_finite()), "{garbage:?}");
    }
}
