//! `podnet bench programming`: network programming latency, the time from
//! a pod's deletion until no node's service proxy picks it for a new flow
//! any more (kube-proxy's "network programming latency" SLI).
//!
//! A cluster of real processes with S Services all selecting the pods of
//! one Deployment; each round deletes one ready pod and polls every node's
//! `NodeAgent.ProxyStatus` until the pod's address has left all of them,
//! then waits for the replacement to be programmed everywhere before the
//! next round, so every round starts from the same steady state.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use podnet_proto::model::ANNOTATION_AGENT;
use podnet_proto::v1::node_agent_client::NodeAgentClient;
use podnet_proto::v1::{DeleteRequest, ProxyStatusRequest};
use serde_json::Value;
use tonic::transport::Channel;

use super::BenchArgs;
use crate::api::{self, Api};

/// A cluster started for the benchmark and always stopped.
struct Cluster {
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(exe) = std::env::current_exe() {
            let _ = std::process::Command::new(exe)
                .arg("--state-dir")
                .arg(&self.dir)
                .arg("down")
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn manifests(services: usize, replicas: usize) -> String {
    let mut yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: echo, image: podnet/http-echo, ports: [{{containerPort: 8080}}], readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}}}]\n"
    );
    for i in 0..services {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
        ));
    }
    yaml
}

async fn list(api: &mut Api, kind: &str, selector: &str) -> anyhow::Result<Vec<Value>> {
    api::list_objects(api, kind, selector).await
}

/// Every node's agent, called as the cluster's admin.
async fn agents(
    api: &mut Api,
    admin: &podnet_proto::auth::Credentials,
) -> anyhow::Result<Vec<NodeAgentClient<Channel>>> {
    let mut out = Vec::new();
    for n in list(api, "Node", "").await? {
        let addr = n["metadata"]["annotations"][ANNOTATION_AGENT]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        let channel = admin
            .endpoint(&addr, name)?
            .tcp_nodelay(true)
            .connect()
            .await?;
        out.push(NodeAgentClient::new(channel));
    }
    Ok(out)
}

/// Ready web pods, once `n` are ready and every node programs all of them.
async fn steady(
    api: &mut Api,
    agents: &mut [NodeAgentClient<Channel>],
    n: usize,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods: Vec<Value> = list(api, "Pod", "app=web")
            .await?
            .into_iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && podnet_proto::model::condition_is_true(p, "Ready")
            })
            .collect();
        if pods.len() == n {
            let want: Vec<String> = pods
                .iter()
                .map(|p| format!("{}:8080", p["status"]["podIP"].as_str().unwrap_or("")))
                .collect();
            let mut everywhere = true;
            for a in agents.iter_mut() {
                let have = a
                    .proxy_status(ProxyStatusRequest {})
                    .await?
                    .into_inner()
                    .ready_endpoints;
                everywhere &= want.iter().all(|w| have.contains(w));
            }
            if everywhere {
                return Ok(pods);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not settle within 120s ({} of {n} pods ready)",
                pods.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls one node until `endpoint` is no longer ready there.
async fn gone_from(
    mut agent: NodeAgentClient<Channel>,
    endpoint: String,
    start: Instant,
) -> anyhow::Result<Duration> {
    let deadline = start + Duration::from_secs(30);
    loop {
        let have = agent
            .proxy_status(ProxyStatusRequest {})
            .await?
            .into_inner()
            .ready_endpoints;
        if !have.contains(&endpoint) {
            return Ok(start.elapsed());
        }
        if Instant::now() > deadline {
            bail!("{endpoint} still programmed after 30s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("podnet-bench-programming-{}", std::process::id()));
    let cluster = Cluster { dir };
    let up = tokio::process::Command::new(&exe)
        .arg("--state-dir")
        .arg(&cluster.dir)
        .args(["up", "--nodes", &args.nodes().to_string()])
        .output()
        .await?;
    anyhow::ensure!(
        up.status.success(),
        "podnet up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let mut api = api::from_state(&cluster.dir).await?;
    let replicas = args.nodes().max(2);
    let objects = crate::manifest::parse("bench", &manifests(args.services, replicas))?;
    api::apply_objects(&mut api, &objects, false, &mut std::io::sink())
        .await
        .context("cannot create the Services")?;
    let mut agents = agents(&mut api, &api::admin_credentials(&cluster.dir)?).await?;
    println!(
        "network programming latency: {} nodes, {} Services over {replicas} pods, {} deletions",
        args.nodes(),
        args.services,
        args.rounds
    );
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for round in 1..=args.rounds {
        let pods = steady(&mut api, &mut agents, replicas).await?;
        let victim = &pods[round % pods.len()];
        let endpoint = format!("{}:8080", victim["status"]["podIP"].as_str().unwrap_or(""));
        let start = Instant::now();
        let req = DeleteRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: victim["metadata"]["name"].as_str().unwrap_or("").into(),
            ..Default::default()
        };
        api.delete(req).await.map_err(api::status_error)?;
        let waits: Vec<_> = agents
            .iter()
            .map(|a| tokio::spawn(gone_from(a.clone(), endpoint.clone(), start)))
            .collect();
        let mut slowest = Duration::ZERO;
        for w in waits {
            slowest = slowest.max(w.await??);
        }
        hist.record(slowest.as_micros() as u64)?;
        println!(
            "round {round}: {endpoint} out of every proxy in {:.1} ms",
            slowest.as_secs_f64() * 1000.0
        );
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!();
    println!("| figure | podnet | target |");
    println!("|---|---|---|");
    println!(
        "| pod deleted -> every proxy stops using it ({} nodes, {} Services) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | p99 <= 50 ms at 50 nodes / 1000 Services |",
        args.nodes(),
        args.services,
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}
