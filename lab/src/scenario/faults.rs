//! The fault timeline: applies each fault when it is due (an offset from
//! the traffic's start, or a time relative to another fault's actual start
//! or end), heals the ones with `for` when their time is up, and heals
//! everything still applied on every way out (the end, an abort, an
//! error). The actual times and the targets chosen are recorded for the
//! windows and the report.
//!
//! Faults live only in podnet's own data path: a partition or a link change
//! is a `Link` object (the nodes' link emulator applies it to the underlay
//! datagrams), a kill is SIGKILL to a node's process, actions are API
//! writes. Healing restores each directed link to what the scenario's
//! `cluster.links` gave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use podnet_proto::model::LinkSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::plan::{At, Direction, Fault, FaultKind};
use crate::api::{self, Api};
use podnet_experiment::window::{Edge, Span};

/// What became of one fault, for the timeline and the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Record {
    pub id: String,
    pub kind: &'static str,
    /// Seconds from the traffic's start.
    pub scheduled: f64,
    pub applied: Option<f64>,
    pub heal_scheduled: Option<f64>,
    pub healed: Option<f64>,
    /// Nodes, links or objects it acted on.
    pub targets: Vec<String>,
    pub error: Option<String>,
}

impl Record {
    /// Its span for windows: applied until healed (or until the end of the
    /// run, for a fault left in place; instantaneous for actions).
    pub fn span(&self, end: f64) -> Option<Span> {
        let start = self.applied?;
        let stop = match (self.healed, self.heal_scheduled) {
            (Some(h), _) => h,
            (None, Some(_)) => end,
            (None, None) if self.lasts() => end,
            (None, None) => start,
        };
        Some(Span { start, end: stop })
    }

    /// Applied and not over yet.
    pub fn is_on(&self) -> bool {
        self.applied.is_some()
            && self.healed.is_none()
            && (self.heal_scheduled.is_some() || self.lasts())
    }

    /// Partitions and link changes without `for` last until the end.
    fn lasts(&self) -> bool {
        matches!(self.kind, "partition" | "link" | "rollout")
    }
}

fn kind_name(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::Partition { .. } => "partition",
        FaultKind::Link { .. } => "link",
        FaultKind::Kill { .. } => "kill",
        FaultKind::Scale { .. } => "scale",
        FaultKind::Apply(_) => "apply",
        FaultKind::Rollout { .. } => "rollout",
        FaultKind::Delete(_) => "delete",
    }
}

/// How to undo an applied fault.
enum Undo {
    Links(Vec<Value>),
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
}

/// Runs a scenario's faults against one cluster.
pub struct Timeline {
    api: Api,
    state: PathBuf,
    base_dir: PathBuf,
    /// The scenario's own link settings per directed pair.
    base_links: BTreeMap<(String, String), LinkSpec>,
    faults: Vec<Fault>,
    pub records: Vec<Record>,
    undo: Vec<Option<Undo>>,
    rng: ChaCha8Rng,
    /// Rollouts started and not complete yet: (fault, namespace, name,
    /// the Deployment's generation to see observed).
    rollouts: Vec<(usize, String, String, i64)>,
}

/// How often a rollout in progress is looked at.
const ROLLOUT_POLL: Duration = Duration::from_millis(100);
/// How long after the traffic's end a rollout may still complete.
const ROLLOUT_GRACE: Duration = Duration::from_secs(5);

impl Timeline {
    pub fn new(
        api: Api,
        state: &Path,
        base_dir: &Path,
        base_links: Vec<LinkSpec>,
        faults: Vec<Fault>,
        seed: u64,
    ) -> Timeline {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Streams below 2^32 are the flows'.
        rng.set_stream(1 << 32);
        let records = faults
            .iter()
            .map(|f| Record {
                id: f.id.clone(),
                kind: kind_name(&f.kind),
                scheduled: f64::NAN,
                applied: None,
                heal_scheduled: None,
                healed: None,
                targets: Vec::new(),
                error: None,
            })
            .collect();
        Timeline {
            api,
            state: state.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            base_links: base_links
                .into_iter()
                .map(|s| ((s.from.clone(), s.to.clone()), s))
                .collect(),
            undo: faults.iter().map(|_| None).collect(),
            faults,
            records,
            rng,
            rollouts: Vec::new(),
        }
    }

    /// When fault `i` is due, once what it is anchored on has happened.
    fn due(&self, i: usize) -> Option<f64> {
        match &self.faults[i].at {
            At::Offset(t) => Some(*t),
            At::After(a) => {
                let j = self.faults.iter().position(|f| f.id == a.event)?;
                let r = &self.records[j];
                let at = match a.edge.unwrap_or(Edge::Start) {
                    Edge::Start => r.applied?,
                    Edge::End => match (r.healed, r.heal_scheduled, r.applied) {
                        (Some(h), _, _) => h,
                        // An action without `for` ends as it starts.
                        (None, None, Some(s)) if !r.lasts() => s,
                        _ => return None,
                    },
                };
                Some(at + a.offset)
            }
        }
    }

    /// The next thing to do: (time, fault index, heal?).
    fn next(&self) -> Option<(f64, usize, bool)> {
        let mut best: Option<(f64, usize, bool)> = None;
        for i in 0..self.faults.len() {
            let r = &self.records[i];
            let step = if r.applied.is_none() && r.error.is_none() {
                self.due(i).map(|t| (t, i, false))
            } else if r.healed.is_none() && r.error.is_none() {
                r.heal_scheduled.map(|t| (t, i, true))
            } else {
                None
            };
            if let Some(s) = step
                && best.is_none_or(|b| s.0 < b.0)
            {
                best = Some(s);
            }
        }
        best
    }

    /// Applies and heals faults as they fall due, from `t0`, until `end`
    /// seconds in, until nothing is left to do or until `stop`; publishes
    /// the records after every step. Anything left applied is healed by
    /// [`Timeline::heal_all`].
    pub async fn run(
        &mut self,
        t0: Instant,
        end: f64,
        stop: CancellationToken,
        records: watch::Sender<Vec<Record>>,
        out: super::progress::Progress,
    ) {
        loop {
            let step = self.next().filter(|(t, ..)| *t <= end);
            if step.is_none() && self.rollouts.is_empty() {
                break;
            }
            // A rollout in progress is looked at every ROLLOUT_POLL.
            let wake = match step {
                Some((t, ..)) => t0 + Duration::from_secs_f64(t.max(0.0)),
                None => Instant::now() + ROLLOUT_POLL,
            };
            let wake = if self.rollouts.is_empty() {
                wake
            } else {
                wake.min(Instant::now() + ROLLOUT_POLL)
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            if secs(t0) > end + ROLLOUT_GRACE.as_secs_f64() {
                break;
            }
            if self.check_rollouts(t0, &out).await {
                records.send_replace(self.records.clone());
            }
            let Some((t, i, heal)) = step else { continue };
            if Instant::now() < t0 + Duration::from_secs_f64(t.max(0.0)) {
                continue;
            }
            if heal {
                self.heal(i, t0).await;
                out.line(&format!(
                    "  {:>7.2}s healed {}",
                    secs(t0),
                    self.faults[i].id
                ));
            } else {
                self.records[i].scheduled = t;
                self.apply(i, t0).await;
                let r = &self.records[i];
                out.line(&match &r.error {
                    Some(e) => format!("  {:>7.2}s {} ({}) FAILED: {e}", secs(t0), r.id, r.kind),
                    None => format!(
                        "  {:>7.2}s {} ({}) on {}",
                        secs(t0),
                        r.id,
                        r.kind,
                        r.targets.join(", ")
                    ),
                });
            }
            records.send_replace(self.records.clone());
        }
    }

    /// Marks the rollouts that have completed (every replica updated and
    /// available, no old one left, as `rollout status` waits for) as ended
    /// now; whether any did.
    async fn check_rollouts(&mut self, t0: Instant, out: &super::progress::Progress) -> bool {
        let mut done = Vec::new();
        for (k, (i, namespace, name, generation)) in self.rollouts.iter().enumerate() {
            let req = podnet_proto::v1::GetRequest {
                kind: "Deployment".into(),
                namespace: namespace.clone(),
                name: name.clone(),
            };
            let Ok(got) = self.api.get(req).await else {
                continue;
            };
            let Ok(d) = serde_json::from_slice::<Value>(&got.into_inner().object) else {
                continue;
            };
            let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let complete = n("/status/observedGeneration") >= *generation
                && n("/status/updatedReplicas") == want
                && n("/status/replicas") == want
                && n("/status/availableReplicas") == want;
            if complete {
                self.records[*i].healed = Some(secs(t0));
                out.line(&format!(
                    "  {:>7.2}s {} completed",
                    secs(t0),
                    self.records[*i].id
                ));
                done.push(k);
            }
        }
        for k in done.iter().rev() {
            self.rollouts.remove(*k);
        }
        !done.is_empty()
    }

    /// Heals every fault still applied (the end of the run, an abort, an
    /// error on the way).
    pub async fn heal_all(&mut self, t0: Instant) {
        for i in 0..self.faults.len() {
            if self.undo[i].is_some() {
                self.heal(i, t0).await;
            }
        }
    }

    async fn apply(&mut self, i: usize, t0: Instant) {
        let fault = self.faults[i].clone();
        if let FaultKind::Rollout {
            namespace,
            name,
            image,
            env,
        } = &fault.kind
        {
            match api::set_template(&mut self.api, namespace, name, image.as_deref(), env).await {
                Ok(generation) => {
                    let r = &mut self.records[i];
                    r.applied = Some(secs(t0));
                    r.targets = vec![format!(
                        "deployment {namespace}/{name} (generation {generation})"
                    )];
                    self.rollouts
                        .push((i, namespace.clone(), name.clone(), generation));
                }
                Err(e) => self.records[i].error = Some(format!("{e:#}")),
            }
            return;
        }
        match self.act(&fault).await {
            Ok((targets, undo)) => {
                let now = secs(t0);
                let r = &mut self.records[i];
                r.applied = Some(now);
                r.targets = targets;
                r.heal_scheduled = fault.for_.map(|d| now + d.as_secs_f64());
                self.undo[i] = undo;
            }
            Err(e) => self.records[i].error = Some(format!("{e:#}")),
        }
    }

    async fn heal(&mut self, i: usize, t0: Instant) {
        let Some(undo) = self.undo[i].take() else {
            self.records[i].healed = Some(secs(t0));
            return;
        };
        let result = match undo {
            Undo::Links(objects) => {
                api::apply_objects(&mut self.api, &objects, false, &mut std::io::sink()).await
            }
            Undo::Scale {
                namespace,
                name,
                replicas,
            } => api::scale(&mut self.api, "Deployment", &namespace, &name, replicas)
                .await
                .map(drop),
        };
        let r = &mut self.records[i];
        r.healed = Some(secs(t0));
        if let Err(e) = result {
            r.error = Some(format!("healing: {e:#}"));
        }
    }

    /// Does what the fault says; gives its targets and how to undo it.
    async fn act(&mut self, fault: &Fault) -> anyhow::Result<(Vec<String>, Option<Undo>)> {
        match &fault.kind {
            FaultKind::Partition {
                a,
                b,
                direction,
                mode,
            } => {
                let pairs = pairs(a, b, *direction);
                let objects: Vec<Value> = pairs
                    .iter()
                    .flat_map(|(x, y)| {
                        let mut s = self.base(x, y);
                        s.partition = true;
                        s.partition_mode = Some(*mode);
                        api::link_objects(&s, true)
                    })
                    .collect();
                self.links(pairs, objects).await
            }
            FaultKind::Link {
                a,
                b,
                direction,
                settings,
            } => {
                let pairs = pairs(a, b, *direction);
                let objects: Vec<Value> = pairs
                    .iter()
                    .flat_map(|(x, y)| {
                        let base = self.base(x, y);
                        let s = LinkSpec {
                            from: x.clone(),
                            to: y.clone(),
                            partition: base.partition,
                            partition_mode: base.partition_mode,
                            ..settings.clone()
                        };
                        api::link_objects(&s, true)
                    })
                    .collect();
                self.links(pairs, objects).await
            }
            FaultKind::Kill { candidates } => {
                let record = crate::record::ClusterRecord::read(&self.state)?;
                let alive: Vec<&crate::record::NodeRecord> = candidates
                    .iter()
                    .filter_map(|c| record.nodes.iter().find(|n| &n.name == c))
                    .filter(|n| crate::record::alive(n.pid))
                    .collect();
                anyhow::ensure!(
                    !alive.is_empty(),
                    "no node of {} is running",
                    candidates.join(", ")
                );
                let pick = alive[self.rng.random_range(0..alive.len())];
                crate::record::signal(pick.pid, nix::sys::signal::Signal::SIGKILL);
                Ok((vec![pick.name.clone()], None))
            }
            FaultKind::Scale {
                namespace,
                name,
                replicas,
            } => {
                let before =
                    api::scale(&mut self.api, "Deployment", namespace, name, *replicas).await?;
                let undo = fault.for_.map(|_| Undo::Scale {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    replicas: u32::try_from(before).unwrap_or(0),
                });
                Ok((
                    vec![format!(
                        "deployment {namespace}/{name}: {before} -> {replicas} replicas"
                    )],
                    undo,
                ))
            }
            // Started by `apply`, which follows it to its end.
            FaultKind::Rollout { .. } => Ok((Vec::new(), None)),
            FaultKind::Apply(file) => {
                let objects = crate::manifest::read(&self.base_dir.join(file))?;
                api::apply_objects(&mut self.api, &objects, false, &mut std::io::sink()).await?;
                Ok((objects.iter().map(describe).collect(), None))
            }
            FaultKind::Delete(file) => {
                let objects = crate::manifest::read(&self.base_dir.join(file))?;
                for o in &objects {
                    let req = podnet_proto::v1::DeleteRequest {
                        kind: o["kind"].as_str().unwrap_or_default().to_string(),
                        namespace: o
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("default")
                            .to_string(),
                        name: o
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        ..Default::default()
                    };
                    self.api
                        .delete(req)
                        .await
                        .map_err(api::status_error)
                        .with_context(|| format!("deleting {}", describe(o)))?;
                }
                Ok((objects.iter().map(describe).collect(), None))
            }
        }
    }

    /// The scenario's own settings of a directed link (clear when it gave
    /// none).
    fn base(&self, from: &str, to: &str) -> LinkSpec {
        self.base_links
            .get(&(from.to_string(), to.to_string()))
            .cloned()
            .unwrap_or_else(|| LinkSpec {
                from: from.to_string(),
                to: to.to_string(),
                ..Default::default()
            })
    }

    async fn links(
        &mut self,
        pairs: Vec<(String, String)>,
        objects: Vec<Value>,
    ) -> anyhow::Result<(Vec<String>, Option<Undo>)> {
        api::apply_objects(&mut self.api, &objects, false, &mut std::io::sink()).await?;
        let undo: Vec<Value> = pairs
            .iter()
            .flat_map(|(x, y)| api::link_objects(&self.base(x, y), true))
            .collect();
        let targets = pairs.iter().map(|(x, y)| format!("{x}->{y}")).collect();
        Ok((targets, Some(Undo::Links(undo))))
    }
}

/// The directed node pairs a fault between `a` and `b` acts on.
fn pairs(a: &[String], b: &[String], direction: Direction) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if x == y {
                continue;
            }
            if matches!(direction, Direction::Both | Direction::AToB) {
                out.push((x.clone(), y.clone()));
            }
            if matches!(direction, Direction::Both | Direction::BToA) {
                out.push((y.clone(), x.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn describe(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or_default().to_ascii_lowercase(),
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

fn secs(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn partitions_cut_the_pairs_of_their_direction() {
        let a = names(&["n1", "n2"]);
        let b = names(&["n3"]);
        let pair = |x: &str, y: &str| (x.to_string(), y.to_string());
        assert_eq!(
            pairs(&a, &b, Direction::AToB),
            vec![pair("n1", "n3"), pair("n2", "n3")]
        );
        assert_eq!(
            pairs(&a, &b, Direction::BToA),
            vec![pair("n3", "n1"), pair("n3", "n2")]
        );
        assert_eq!(pairs(&a, &b, Direction::Both).len(), 4);
        assert!(pairs(&b, &b, Direction::Both).is_empty());
    }

    #[test]
    fn spans_follow_what_happened() {
        let r = |kind, applied, heal_scheduled, healed| Record {
            id: "f".into(),
            kind,
            scheduled: 1.0,
            applied,
            heal_scheduled,
            healed,
            targets: vec![],
            error: None,
        };
        assert_eq!(
            r("partition", Some(1.2), Some(6.2), Some(6.3)).span(20.0),
            Some(Span {
                start: 1.2,
                end: 6.3
            })
        );
        // Not healed yet (an abort): until the end.
        assert_eq!(
            r("partition", Some(1.2), Some(6.2), None).span(3.0),
            Some(Span {
                start: 1.2,
                end: 3.0
            })
        );
        assert_eq!(
            r("partition", Some(1.2), None, None).span(20.0),
            Some(Span {
                start: 1.2,
                end: 20.0
            })
        );
        assert_eq!(
            r("kill", Some(4.0), None, None).span(20.0),
            Some(Span {
                start: 4.0,
                end: 4.0
            })
        );
        assert_eq!(r("kill", None, None, None).span(20.0), None);
    }
}
