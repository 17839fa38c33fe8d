//! A scenario's flows, run by `podnet_loadgen`: from the host (this
//! process's own sockets, through the edge's real listeners, like a
//! user's browser) or from pods (`podnet/loadgen` in each selected pod's
//! network namespace, started through its node's agent, which streams
//! back each finished second's histograms).
//!
//! Host flows' samples go to [`collect`]; pod flows' seconds are merged
//! into the same series as they arrive. A pod flow's rate is shared
//! evenly among its pods, each with a stream of the seed of its own, so
//! the superposition is the flow's profile.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use podnet_experiment::series::{Bucket, FlowSeries, Sample, WireBucket};
use podnet_loadgen::{Flow, HostNet, Tally, World};
use podnet_proto::auth::Credentials;
use podnet_proto::v1::LoadgenRequest;
use podnet_proto::v1::node_agent_client::NodeAgentClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use podnet_loadgen::MAX_IN_FLIGHT;

/// The series of every flow, shared with the live line and the abort
/// checks, which read it in place.
pub type Shared = Arc<std::sync::Mutex<Vec<FlowSeries>>>;

/// A pod a flow's generator runs in, and its node's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorPod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// The node agent's address (`podnet.io/agent-address`).
    pub agent: String,
}

/// Where a flow runs.
#[derive(Debug, Clone)]
pub enum Placement {
    Host,
    Pods(Vec<GeneratorPod>),
}

/// Runs `flow` from the host.
pub async fn run_host(
    index: usize,
    flow: Flow,
    seed: u64,
    t0: Instant,
    world: World,
    stop: Arc<AtomicBool>,
    out: mpsc::UnboundedSender<(usize, Sample)>,
) -> Result<Tally, String> {
    podnet_loadgen::run(index, flow, seed, t0, HostNet, world, stop, out).await
}

/// The seed stream of the `k`th pod of flow `index`: apart from every
/// host flow's (`index` itself, below 2^20) and every other pod's.
fn pod_stream(index: usize, k: usize) -> u64 {
    ((index as u64 + 1) << 20) | k as u64
}

/// The `k`th of `n` shares of `total`, the remainder going to the first.
fn share_of(total: u32, n: usize, k: usize) -> u32 {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    total / n + u32::from(k < total % n)
}

/// Runs `flow` in `pods`, each generator a share of its rate (or of a
/// closed loop's workers), merging
/// their seconds into `series[index]`; `t0` is the run's start on the
/// wall clock (the nodes' generators start from it on theirs). A
/// generator that cannot start or stops answering is an error of the
/// flow (the run is then INVALID), the others go on.
#[allow(clippy::too_many_arguments)]
pub async fn run_pods(
    index: usize,
    flow: Flow,
    pods: Vec<GeneratorPod>,
    seed: u64,
    t0: SystemTime,
    admin: Credentials,
    stop: CancellationToken,
    series: Shared,
) -> Result<Tally, String> {
    let share = 1.0 / pods.len().max(1) as f64;
    let workers = pods.len();
    let start_unix_nanos = t0
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let mut generators = tokio::task::JoinSet::new();
    for (k, pod) in pods.into_iter().enumerate() {
        let mut part = flow.clone();
        part.profile = flow.profile.scaled(share);
        part.stream = pod_stream(index, k);
        if let Some(closed) = &mut part.closed {
            // A closed loop's workers dealt out: the first pods get one
            // more when they do not divide evenly; a pod left none sends
            // nothing.
            closed.concurrency = share_of(closed.concurrency, workers, k);
            if closed.concurrency == 0 {
                continue;
            }
        }
        let (admin, stop, series) = (admin.clone(), stop.clone(), series.clone());
        generators.spawn(async move {
            let name = format!("{}/{}", pod.namespace, pod.name);
            in_pod(
                index,
                &part,
                &pod,
                seed,
                start_unix_nanos,
                &admin,
                stop,
                series,
            )
            .await
            .map_err(|e| format!("the generator in pod {name} (node {}): {e}", pod.node))
        });
    }
    let mut tally = Tally::default();
    let mut errors = Vec::new();
    while let Some(joined) = generators.join_next().await {
        match joined {
            Ok(Ok(t)) => tally.add(&t),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("a generator's task failed: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(tally)
    } else {
        Err(errors.join("; "))
    }
}

#[allow(clippy::too_many_arguments)]
async fn in_pod(
    index: usize,
    flow: &Flow,
    pod: &GeneratorPod,
    seed: u64,
    start_unix_nanos: i64,
    admin: &Credentials,
    stop: CancellationToken,
    series: Shared,
) -> Result<Tally, String> {
    let channel = admin
        .endpoint(&pod.agent, &pod.node)
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot reach the node agent at {}: {e}", pod.agent))?;
    let mut agent = NodeAgentClient::new(channel);
    let request = LoadgenRequest {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        flow: serde_json::to_vec(flow).map_err(|e| e.to_string())?,
        seed,
        start_unix_nanos,
    };
    let mut reports = agent
        .loadgen(request)
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    loop {
        let report = tokio::select! {
            r = reports.message() => r.map_err(|s| s.message().to_string())?,
            // Dropping the stream stops the generator.
            () = stop.cancelled() => return Ok(Tally::default()),
        };
        let Some(report) = report else {
            return Err("the node ended the stream before the generator finished".into());
        };
        if report.done {
            return Ok(Tally {
                scheduled: report.scheduled,
                shed: report.shed,
            });
        }
        let wire: WireBucket = serde_json::from_slice(&report.bucket)
            .map_err(|e| format!("second {}: {e}", report.second))?;
        let bucket = Bucket::from_wire(wire);
        let mut all = series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = all.get_mut(index) {
            s.merge_second(report.second, &bucket);
        }
    }
}

/// Whether one request of `flow` from `pod` now is answered (anything
/// but a 5xx or a failure): the pod's generator, asked for one request.
pub async fn answers_from_pod(
    flow: &Flow,
    pod: &GeneratorPod,
    admin: &Credentials,
) -> Result<bool, String> {
    let mut once = flow.clone();
    once.closed = None;
    once.profile = podnet_experiment::schedule::Profile {
        segments: vec![podnet_experiment::schedule::Segment::hold(
            10.0,
            std::time::Duration::from_millis(100),
        )],
    };
    let series: Shared = Arc::new(std::sync::Mutex::new(vec![FlowSeries::new("")]));
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    in_pod(
        0,
        &once,
        pod,
        0,
        start,
        admin,
        CancellationToken::new(),
        series.clone(),
    )
    .await?;
    let all = series
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let b = all
        .first()
        .map(|s| s.window(0, s.len() as u64))
        .unwrap_or_default();
    use podnet_experiment::series::Outcome;
    Ok(b.count(Outcome::Ok) + b.count(Outcome::Http4xx) > 0)
}

/// Collects `rx`'s samples into `series` until every sender is gone.
pub async fn collect(mut rx: mpsc::UnboundedReceiver<(usize, Sample)>, series: Shared) {
    while let Some((i, sample)) = rx.recv().await {
        let mut all = series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = all.get_mut(i) {
            s.record(&sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_loops_workers_are_dealt_out_whole() {
        let shares = |total, n| (0..n).map(|k| share_of(total, n, k)).collect::<Vec<_>>();
        assert_eq!(shares(32, 3), [11, 11, 10]);
        assert_eq!(shares(2, 3), [1, 1, 0]);
        assert_eq!(shares(4, 1), [4]);
        assert_eq!(shares(7, 0), Vec::<u32>::new());
    }

    #[test]
    fn every_generator_has_a_stream_of_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..4 {
            assert!(seen.insert(index as u64), "host flow {index}");
            for k in 0..300 {
                assert!(seen.insert(pod_stream(index, k)), "flow {index} pod {k}");
            }
        }
    }
}
