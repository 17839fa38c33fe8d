//! The fault timeline: applies each fault when it is due (an offset from
//! the traffic's start, or a time relative to another fault's actual start
//! or end), heals the ones with `for` when their time is up, and heals
//! everything still applied on every way out (the end, an abort, an
//! error). The actual times and the targets chosen are recorded for the
//! windows and the report.
//!
//! Faults live only in podnet's own data path: a partition or a link change
//! is a `Link` object (the nodes' link emulator applies it to the underlay
//! datagrams); a kill, pause or restart is a signal to a role's process
//! (found in the cluster record) or, for a pod, its deletion with grace
//! period 0; actions (scale, rollout, apply, delete, cordon, drain) are
//! API writes. Healing restores each directed link to what the scenario's
//! `cluster.links` gave it, sends SIGCONT to a paused process and
//! uncordons a cordoned or drained node.
//!
//! A restart and a drain end by themselves (the process Ready again, the
//! node holding no evictable pod), as a rollout does: they are followed
//! in the loop, not awaited, so an abort is never held up by them.
//! `verify: true` runs a probe after applying ([`Probe`]), bounded by
//! [`VERIFY_WITHIN`].

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

use super::plan::{At, Direction, Fault, FaultKind, PodTarget, Process};
use crate::api::{self, Api};
use crate::drain;
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
    /// With `verify: true`: whether the probe confirmed the fault took
    /// effect within [`VERIFY_WITHIN`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// What the probe checked and found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
    /// A drain: when the node held no evictable pod any more (the end of
    /// its window; `healed` is its uncordon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<f64>,
}

impl Record {
    /// Its span for windows: applied until healed (or until the end of the
    /// run, for a fault left in place; instantaneous for actions).
    pub fn span(&self, end: f64) -> Option<Span> {
        let start = self.applied?;
        if self.kind == "drain" {
            let stop = self.drained.or(self.healed).unwrap_or(end);
            return Some(Span { start, end: stop });
        }
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
        if self.kind == "drain" {
            return self.applied.is_some() && self.drained.is_none() && self.healed.is_none();
        }
        self.applied.is_some()
            && self.healed.is_none()
            && (self.heal_scheduled.is_some() || self.lasts())
    }

    /// Partitions, link changes, pauses and cordons without `for` last
    /// until the end; rollouts, restarts and drains until they end.
    fn lasts(&self) -> bool {
        matches!(
            self.kind,
            "partition" | "link" | "rollout" | "pause" | "restart" | "cordon" | "drain"
        )
    }
}

fn kind_name(kind: &FaultKind) -> &'static str {
    match kind {
        FaultKind::Partition { .. } => "partition",
        FaultKind::Link { .. } => "link",
        FaultKind::Kill { .. } | FaultKind::KillPod { .. } => "kill",
        FaultKind::Pause { .. } => "pause",
        FaultKind::Restart { .. } => "restart",
        FaultKind::Cordon { .. } => "cordon",
        FaultKind::Drain { .. } => "drain",
        FaultKind::Scale { .. } => "scale",
        FaultKind::Apply(_) => "apply",
        FaultKind::Rollout { .. } => "rollout",
        FaultKind::Delete(_) => "delete",
    }
}

/// How to undo an applied fault.
#[derive(Clone)]
enum Undo {
    Links(Vec<Value>),
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
    /// SIGCONT to a paused process.
    Continue(u32),
    Uncordon(String),
}

/// A fault that ends by itself, followed until it does.
enum Ending {
    /// A process stopped for a restart: over when its role runs again
    /// under a new pid and is Ready.
    Restart {
        fault: usize,
        role: Role,
        old_pid: u32,
        deadline: Instant,
    },
    /// Over when the node holds no evictable pod.
    Drain {
        fault: usize,
        node: String,
        deadline: Instant,
    },
}

impl Ending {
    fn fault(&self) -> usize {
        match self {
            Ending::Restart { fault, .. } | Ending::Drain { fault, .. } => *fault,
        }
    }
}

/// A role's process, as the cluster record names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Node(String),
    Edge,
    Controlplane,
}

impl Role {
    fn name(&self) -> &str {
        match self {
            Role::Node(n) => n,
            Role::Edge => "edge",
            Role::Controlplane => "controlplane",
        }
    }

    /// Its process in `record` (0: none).
    fn pid(&self, record: &crate::record::ClusterRecord) -> u32 {
        match self {
            Role::Node(n) => record
                .nodes
                .iter()
                .find(|r| &r.name == n)
                .map_or(0, |r| r.pid),
            Role::Edge => record.edge_pid,
            Role::Controlplane => record.controlplane_pid,
        }
    }
}

/// What a `verify: true` probe looks for after a fault is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A killed process is gone; for the control plane, a new pid serves
    /// or the API no longer answers.
    Gone { pid: u32, controlplane: bool },
    /// A paused process is stopped (`T` in `/proc/PID/stat`).
    Stopped { pid: u32 },
    /// A pod killed: no pod of that name and uid any more.
    PodGone {
        namespace: String,
        name: String,
        uid: String,
    },
    /// `spec.unschedulable` on the node.
    Cordoned { node: String },
    /// Cordoned, and every evictable pod of the node terminating or gone
    /// (the evictions accepted).
    Evicting { node: String },
    /// The Deployment's `status.replicas` reached the target.
    Replicas {
        namespace: String,
        name: String,
        replicas: u32,
    },
    /// Every Link object stored with the spec the fault gave.
    Links { objects: Vec<Value> },
    /// The Deployment's controller observed the new template.
    Observed {
        namespace: String,
        name: String,
        generation: i64,
    },
    /// Every object of a manifest exists (apply) or is gone (delete).
    Objects { objects: Vec<Value>, exist: bool },
}

/// How long a probe may take to see its fault in effect.
pub const VERIFY_WITHIN: Duration = Duration::from_secs(5);
/// How often a probe looks again.
const VERIFY_POLL: Duration = Duration::from_millis(50);
/// How long a process stopped for a restart gets to exit after SIGTERM
/// before SIGKILL.
const RESTART_STOP: Duration = Duration::from_secs(3);
/// How long a restarted process may take to be Ready again, and a drain
/// to empty its node (evictions refused with 429 retried until then).
const ENDING_WITHIN: Duration = Duration::from_secs(60);
/// How long one API call of the timeline may take (a paused control
/// plane answers nothing).
const API_CALL: Duration = Duration::from_secs(2);
/// How long applying or healing one fault may take: a paused control plane
/// must not hold the timeline (and the heal of the pause) forever.
const STEP_WITHIN: Duration = Duration::from_secs(15);

/// What act() did: the targets, how to undo it, what verifies it, and
/// whether it is followed to its end.
struct Acted {
    targets: Vec<String>,
    undo: Option<Undo>,
    probe: Option<Probe>,
    ending: Option<Ending>,
}

impl Acted {
    fn new(targets: Vec<String>, undo: Option<Undo>, probe: Option<Probe>) -> Acted {
        Acted {
            targets,
            undo,
            probe,
            ending: None,
        }
    }
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
    /// Restarts and drains not over yet.
    endings: Vec<Ending>,
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
                verified: None,
                verify: None,
                drained: None,
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
            endings: Vec::new(),
        }
    }

    /// Whether something applied is still followed to its end.
    fn following(&self) -> bool {
        !self.rollouts.is_empty() || !self.endings.is_empty()
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
                    Edge::End if r.kind == "drain" => r.drained.or(r.healed)?,
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
            if step.is_none() && !self.following() {
                break;
            }
            // A rollout in progress is looked at every ROLLOUT_POLL.
            let wake = match step {
                Some((t, ..)) => t0 + Duration::from_secs_f64(t.max(0.0)),
                None => Instant::now() + ROLLOUT_POLL,
            };
            let wake = if self.following() {
                wake.min(Instant::now() + ROLLOUT_POLL)
            } else {
                wake
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            if secs(t0) > end + ROLLOUT_GRACE.as_secs_f64() {
                break;
            }
            let rolled = self.check_rollouts(t0, &out).await;
            if self.check_endings(t0, &out).await || rolled {
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
                        "  {:>7.2}s {} ({}) on {}{}",
                        secs(t0),
                        r.id,
                        r.kind,
                        r.targets.join(", "),
                        match (r.verified, &r.verify) {
                            (Some(true), Some(v)) => format!(", verified: {v}"),
                            (Some(false), Some(v)) => format!(", NOT verified: {v}"),
                            _ => String::new(),
                        }
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
        for (k, (i, namespace, name, generation)) in self.rollouts.clone().iter().enumerate() {
            // Bounded: a paused control plane must not hold the timeline.
            let Ok(d) = self.get("Deployment", namespace, name).await else {
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
        // Paused processes first: the heals through the API need a control
        // plane that is not stopped.
        let paused = |u: &Option<Undo>| matches!(u, Some(Undo::Continue(_)));
        for i in 0..self.faults.len() {
            if paused(&self.undo[i]) {
                self.heal(i, t0).await;
            }
        }
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
                    if fault.verify {
                        self.verify(
                            i,
                            &Probe::Observed {
                                namespace: namespace.clone(),
                                name: name.clone(),
                                generation,
                            },
                        )
                        .await;
                    }
                }
                Err(e) => self.records[i].error = Some(format!("{e:#}")),
            }
            return;
        }
        // A signal is sent at once: its time is the fault's.
        let started = secs(t0);
        let acted = tokio::time::timeout(STEP_WITHIN, self.act(i, &fault))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("not applied within {STEP_WITHIN:?}")));
        match acted {
            Ok(acted) => {
                let now = match fault.kind {
                    FaultKind::Kill { .. }
                    | FaultKind::Pause { .. }
                    | FaultKind::Restart { .. } => started,
                    _ => secs(t0),
                };
                let r = &mut self.records[i];
                r.applied = Some(now);
                r.targets = acted.targets;
                r.heal_scheduled = fault.for_.map(|d| now + d.as_secs_f64());
                self.undo[i] = acted.undo;
                if let Some(ending) = acted.ending {
                    self.endings.push(ending);
                }
                if let (true, Some(probe)) = (fault.verify, acted.probe) {
                    self.verify(i, &probe).await;
                }
            }
            Err(e) => self.records[i].error = Some(format!("{e:#}")),
        }
    }

    /// Runs the probe of fault `i` until it sees the fault in effect or
    /// [`VERIFY_WITHIN`] has passed; records what it found.
    async fn verify(&mut self, i: usize, probe: &Probe) {
        let deadline = Instant::now() + VERIFY_WITHIN;
        let (ok, found) = loop {
            let seen = self.look(probe).await;
            if seen.is_ok() || Instant::now() >= deadline {
                break match seen {
                    Ok(what) => (true, what),
                    Err(why) => (false, format!("{why} after {VERIFY_WITHIN:?}")),
                };
            }
            tokio::time::sleep(VERIFY_POLL).await;
        };
        let r = &mut self.records[i];
        r.verified = Some(ok);
        r.verify = Some(found);
    }

    /// One look of a probe: what it saw in effect, or why not yet.
    async fn look(&mut self, probe: &Probe) -> Result<String, String> {
        match probe {
            Probe::Gone { pid, controlplane } => {
                if crate::record::alive(*pid) {
                    return Err(format!("pid {pid} still runs"));
                }
                if !*controlplane {
                    return Ok(format!("pid {pid} gone"));
                }
                let now = crate::record::ClusterRecord::read(&self.state)
                    .map(|r| r.controlplane_pid)
                    .unwrap_or(0);
                if now != 0 && now != *pid {
                    return Ok(format!("pid {pid} gone, pid {now} serves"));
                }
                match self.get("Namespace", "", "default").await {
                    Err(_) => Ok(format!("pid {pid} gone, the API does not answer")),
                    Ok(_) => Err(format!("pid {pid} gone but the API still answers")),
                }
            }
            Probe::Stopped { pid } => match crate::record::process_state(*pid) {
                Some('T') => Ok(format!("pid {pid} stopped (state T)")),
                Some(s) => Err(format!("pid {pid} is in state {s}, not T (stopped)")),
                None => Err(format!("pid {pid} is gone")),
            },
            Probe::PodGone {
                namespace,
                name,
                uid,
            } => match self.get("Pod", namespace, name).await {
                Err(e) if e.code() == tonic::Code::NotFound => {
                    Ok(format!("pod {namespace}/{name} gone"))
                }
                Err(e) => Err(format!("pod {namespace}/{name}: {}", e.message())),
                Ok(p) if p.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) => Ok(
                    format!("pod {namespace}/{name} gone (a new pod has its name)"),
                ),
                Ok(_) => Err(format!("pod {namespace}/{name} ({uid}) is still there")),
            },
            Probe::Cordoned { node } => {
                let n = self
                    .get("Node", "", node)
                    .await
                    .map_err(|e| format!("node {node}: {}", e.message()))?;
                cordoned(&n, node)
            }
            Probe::Evicting { node } => {
                let n = self
                    .get("Node", "", node)
                    .await
                    .map_err(|e| format!("node {node}: {}", e.message()))?;
                cordoned(&n, node)?;
                let req = podnet_proto::v1::ListRequest {
                    kind: "Pod".into(),
                    field_selector: format!("spec.nodeName={node}"),
                    ..Default::default()
                };
                let pods = tokio::time::timeout(API_CALL, api::list_all(&mut self.api, req))
                    .await
                    .map_err(|_| format!("listing the pods of {node}: no answer"))?
                    .map_err(|e| format!("listing the pods of {node}: {e:#}"))?
                    .0;
                evicting(&pods, node)
            }
            Probe::Replicas {
                namespace,
                name,
                replicas,
            } => {
                let d = self
                    .get("Deployment", namespace, name)
                    .await
                    .map_err(|e| format!("deployment {namespace}/{name}: {}", e.message()))?;
                replicas_reached(&d, *replicas)
                    .map_err(|e| format!("deployment {namespace}/{name}: {e}"))
            }
            Probe::Links { objects } => {
                let mut stored = Vec::new();
                for o in objects {
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    match self.get("Link", "", name).await {
                        Ok(l) => stored.push(l),
                        Err(e) => return Err(format!("link {name}: {}", e.message())),
                    }
                }
                links_stored(objects, &stored)
            }
            Probe::Observed {
                namespace,
                name,
                generation,
            } => {
                let d = self
                    .get("Deployment", namespace, name)
                    .await
                    .map_err(|e| format!("deployment {namespace}/{name}: {}", e.message()))?;
                let seen = d
                    .pointer("/status/observedGeneration")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if seen >= *generation {
                    Ok(format!(
                        "deployment {namespace}/{name} observed generation {generation}"
                    ))
                } else {
                    Err(format!(
                        "deployment {namespace}/{name} observed generation {seen}, not {generation}"
                    ))
                }
            }
            Probe::Objects { objects, exist } => {
                for o in objects {
                    let (kind, namespace, name) = key_of(o);
                    let namespace = if cluster_scoped(&kind) {
                        String::new()
                    } else {
                        namespace
                    };
                    let got = self.get(&kind, &namespace, &name).await;
                    match (got, exist) {
                        (Ok(_), true) => {}
                        (Err(e), false) if e.code() == tonic::Code::NotFound => {}
                        (Ok(_), false) => return Err(format!("{} still exists", describe(o))),
                        (Err(e), _) => return Err(format!("{}: {}", describe(o), e.message())),
                    }
                }
                Ok(format!(
                    "{} object(s) {}",
                    objects.len(),
                    if *exist { "stored" } else { "gone" }
                ))
            }
        }
    }

    /// One object from the API, within [`API_CALL`].
    async fn get(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, tonic::Status> {
        let req = podnet_proto::v1::GetRequest {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let got = tokio::time::timeout(API_CALL, self.api.get(req))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("the API did not answer"))??;
        serde_json::from_slice(&got.into_inner().object)
            .map_err(|e| tonic::Status::internal(format!("a bad object: {e}")))
    }

    /// Follows the restarts and drains in progress: marks those that are
    /// over as ended now, and those past their deadline as failed; whether
    /// any record changed.
    async fn check_endings(&mut self, t0: Instant, out: &super::progress::Progress) -> bool {
        let mut changed = false;
        let mut k = 0;
        while k < self.endings.len() {
            let outcome = match &self.endings[k] {
                Ending::Restart {
                    role,
                    old_pid,
                    deadline,
                    ..
                } => {
                    let (role, old_pid, deadline) = (role.clone(), *old_pid, *deadline);
                    match self.restarted(&role, old_pid).await {
                        Ok(pid) => Some(Ok(format!("{} Ready again as pid {pid}", role.name()))),
                        Err(_) if Instant::now() < deadline => None,
                        Err(why) => Some(Err(format!(
                            "{} not Ready again within {ENDING_WITHIN:?}: {why}",
                            role.name()
                        ))),
                    }
                }
                Ending::Drain { node, deadline, .. } => {
                    let (node, deadline) = (node.clone(), *deadline);
                    let step =
                        tokio::time::timeout(API_CALL, drain::drain_step(&mut self.api, &node))
                            .await;
                    match step {
                        Ok(Ok(step)) if step.left.is_empty() => {
                            Some(Ok(format!("node {node} drained")))
                        }
                        Ok(Err(e)) => Some(Err(format!("drain: {e:#}"))),
                        _ if Instant::now() < deadline => None,
                        Ok(Ok(step)) => Some(Err(format!(
                            "drain: {} still on node {node} after {ENDING_WITHIN:?}{}",
                            step.left.join(", "),
                            if step.refused.is_empty() {
                                String::new()
                            } else {
                                format!(" (evictions refused: {})", step.refused.join(", "))
                            }
                        ))),
                        Err(_) => Some(Err(format!(
                            "drain: the API did not answer within {ENDING_WITHIN:?}"
                        ))),
                    }
                }
            };
            let Some(outcome) = outcome else {
                k += 1;
                continue;
            };
            let ending = self.endings.remove(k);
            let i = ending.fault();
            let now = secs(t0);
            let r = &mut self.records[i];
            match (&ending, outcome) {
                (_, Err(e)) => r.error = Some(e),
                (Ending::Drain { .. }, Ok(_)) => r.drained = Some(now),
                (Ending::Restart { .. }, Ok(_)) => r.healed = Some(now),
            }
            out.line(&format!(
                "  {now:>7.2}s {} {}",
                r.id,
                match &r.error {
                    Some(e) => format!("FAILED: {e}"),
                    None => "completed".to_string(),
                }
            ));
            changed = true;
        }
        changed
    }

    /// Whether `role`, stopped as `old_pid`, runs again and is Ready: its
    /// new pid, or what it waits for.
    async fn restarted(&mut self, role: &Role, old_pid: u32) -> Result<u32, String> {
        let record =
            crate::record::ClusterRecord::read(&self.state).map_err(|e| format!("{e:#}"))?;
        let pid = role.pid(&record);
        if pid == 0 || pid == old_pid || !crate::record::alive(pid) {
            return Err("not started again yet".into());
        }
        match role {
            Role::Node(name) => {
                let node = self
                    .get("Node", "", name)
                    .await
                    .map_err(|e| format!("node {name}: {}", e.message()))?;
                node_rejoined(&node, pid).map(|()| pid)
            }
            Role::Controlplane => self
                .get("Namespace", "", "default")
                .await
                .map(|_| pid)
                .map_err(|e| format!("the API does not answer yet: {}", e.message())),
            Role::Edge => {
                let addr = record.edge_metrics.unwrap_or_default();
                match tokio::time::timeout(API_CALL, tokio::net::TcpStream::connect(&addr)).await {
                    Ok(Ok(_)) => Ok(pid),
                    _ => Err(format!("the edge does not serve on {addr} yet")),
                }
            }
        }
    }

    async fn heal(&mut self, i: usize, t0: Instant) {
        // A drain healed before it emptied its node is no longer followed.
        self.endings.retain(|e| e.fault() != i);
        let Some(undo) = self.undo[i].take() else {
            self.records[i].healed = Some(secs(t0));
            return;
        };
        let result = match tokio::time::timeout(STEP_WITHIN, self.undo_now(undo.clone())).await {
            Ok(r) => r,
            Err(_) => {
                // Tried again by heal_all, once the pauses are healed.
                self.undo[i] = Some(undo);
                Err(anyhow::anyhow!("not healed within {STEP_WITHIN:?}"))
            }
        };
        let r = &mut self.records[i];
        r.healed = Some(secs(t0));
        match result {
            Err(e) => r.error = Some(format!("healing: {e:#}")),
            // A retry that worked clears the failure it follows.
            Ok(()) => {
                if r.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("healing: not healed"))
                {
                    r.error = None;
                }
            }
        }
    }

    /// Undoes one fault.
    async fn undo_now(&mut self, undo: Undo) -> anyhow::Result<()> {
        match undo {
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
            Undo::Continue(pid) => {
                crate::record::signal(pid, nix::sys::signal::Signal::SIGCONT);
                Ok(())
            }
            Undo::Uncordon(node) => {
                match tokio::time::timeout(API_CALL, drain::cordon(&mut self.api, &node, false))
                    .await
                {
                    Ok(r) => r.map(drop),
                    Err(_) => Err(anyhow::anyhow!(
                        "uncordoning node {node}: the API did not answer"
                    )),
                }
            }
        }
    }

    /// The process `target` names now (a node chosen by the seed among the
    /// running candidates).
    fn process(&mut self, target: &Process) -> anyhow::Result<(Role, u32)> {
        let record = crate::record::ClusterRecord::read(&self.state)?;
        let role = match target {
            Process::Node { candidates } => {
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
                Role::Node(alive[self.rng.random_range(0..alive.len())].name.clone())
            }
            Process::Edge => Role::Edge,
            Process::Controlplane => Role::Controlplane,
        };
        let pid = role.pid(&record);
        anyhow::ensure!(
            pid != 0 && crate::record::alive(pid),
            "the {} is not running",
            role.name()
        );
        Ok((role, pid))
    }

    /// Does what the fault says; gives its targets, how to undo it, what
    /// verifies it and whether it is followed to its end.
    async fn act(&mut self, i: usize, fault: &Fault) -> anyhow::Result<Acted> {
        use nix::sys::signal::Signal;
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
            FaultKind::Kill { target } => {
                let (role, pid) = self.process(target)?;
                crate::record::signal(pid, Signal::SIGKILL);
                let probe = Probe::Gone {
                    pid,
                    controlplane: role == Role::Controlplane,
                };
                Ok(Acted::new(vec![role.name().to_string()], None, Some(probe)))
            }
            FaultKind::Pause { target } => {
                let (role, pid) = self.process(target)?;
                crate::record::signal(pid, Signal::SIGSTOP);
                Ok(Acted::new(
                    vec![role.name().to_string()],
                    Some(Undo::Continue(pid)),
                    Some(Probe::Stopped { pid }),
                ))
            }
            FaultKind::Restart { target } => {
                let (role, pid) = self.process(target)?;
                if let Role::Node(name) = &role {
                    // The supervisor starts again only the nodes asked for.
                    let request = crate::record::restart_request_path(&self.state, name);
                    if let Some(dir) = request.parent() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("cannot create {}", dir.display()))?;
                    }
                    std::fs::write(&request, pid.to_string())
                        .with_context(|| format!("cannot write {}", request.display()))?;
                }
                let how = stop(pid).await;
                anyhow::ensure!(
                    !crate::record::alive(pid),
                    "the {} (pid {pid}) did not stop, even on SIGKILL",
                    role.name()
                );
                let mut acted = Acted::new(
                    vec![format!("{} ({how})", role.name())],
                    None,
                    Some(Probe::Gone {
                        pid,
                        controlplane: false,
                    }),
                );
                acted.ending = Some(Ending::Restart {
                    fault: i,
                    role,
                    old_pid: pid,
                    deadline: Instant::now() + ENDING_WITHIN,
                });
                Ok(acted)
            }
            FaultKind::KillPod { namespace, pod } => {
                let (name, uid) = self.pick_pod(namespace, pod).await?;
                let req = podnet_proto::v1::DeleteRequest {
                    kind: "Pod".into(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    grace_period_seconds: Some(0),
                    resource_version: String::new(),
                };
                self.api
                    .delete(req)
                    .await
                    .map_err(api::status_error)
                    .with_context(|| format!("deleting pod {namespace}/{name}"))?;
                Ok(Acted::new(
                    vec![format!("pod {namespace}/{name}")],
                    None,
                    Some(Probe::PodGone {
                        namespace: namespace.clone(),
                        name,
                        uid,
                    }),
                ))
            }
            FaultKind::Cordon { node } => {
                let was = drain::cordon(&mut self.api, node, true).await?;
                // A node cordoned before stays so.
                let undo = (!was).then(|| Undo::Uncordon(node.clone()));
                Ok(Acted::new(
                    vec![node.clone()],
                    undo,
                    Some(Probe::Cordoned { node: node.clone() }),
                ))
            }
            FaultKind::Drain { node } => {
                let was = drain::cordon(&mut self.api, node, true).await?;
                let step = drain::drain_step(&mut self.api, node).await?;
                let mut acted = Acted::new(
                    std::iter::once(node.clone())
                        .chain(step.left.iter().map(|p| format!("pod {p}")))
                        .collect(),
                    (!was).then(|| Undo::Uncordon(node.clone())),
                    Some(Probe::Evicting { node: node.clone() }),
                );
                acted.ending = Some(Ending::Drain {
                    fault: i,
                    node: node.clone(),
                    deadline: Instant::now() + ENDING_WITHIN,
                });
                Ok(acted)
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
                Ok(Acted::new(
                    vec![format!(
                        "deployment {namespace}/{name}: {before} -> {replicas} replicas"
                    )],
                    undo,
                    Some(Probe::Replicas {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        replicas: *replicas,
                    }),
                ))
            }
            // Started by `apply`, which follows it to its end.
            FaultKind::Rollout { .. } => Ok(Acted::new(Vec::new(), None, None)),
            FaultKind::Apply(file) => {
                let objects = crate::manifest::read(&self.base_dir.join(file))?;
                api::apply_objects(&mut self.api, &objects, false, &mut std::io::sink()).await?;
                Ok(Acted::new(
                    objects.iter().map(describe).collect(),
                    None,
                    Some(Probe::Objects {
                        objects,
                        exist: true,
                    }),
                ))
            }
            FaultKind::Delete(file) => {
                let objects = crate::manifest::read(&self.base_dir.join(file))?;
                for o in &objects {
                    let (kind, namespace, name) = key_of(o);
                    let req = podnet_proto::v1::DeleteRequest {
                        kind,
                        namespace,
                        name,
                        ..Default::default()
                    };
                    self.api
                        .delete(req)
                        .await
                        .map_err(api::status_error)
                        .with_context(|| format!("deleting {}", describe(o)))?;
                }
                Ok(Acted::new(
                    objects.iter().map(describe).collect(),
                    None,
                    Some(Probe::Objects {
                        objects,
                        exist: false,
                    }),
                ))
            }
        }
    }

    /// The pod a pod kill acts on: by name, or one of the running pods
    /// its selector matches, chosen by the seed; its name and uid.
    async fn pick_pod(
        &mut self,
        namespace: &str,
        target: &PodTarget,
    ) -> anyhow::Result<(String, String)> {
        let req = podnet_proto::v1::ListRequest {
            kind: "Pod".into(),
            namespace: namespace.into(),
            ..Default::default()
        };
        let (pods, _) = api::list_all(&mut self.api, req)
            .await
            .with_context(|| format!("listing the pods of namespace {namespace}"))?;
        let mut running: Vec<(String, String)> = pods
            .iter()
            .filter(|p| {
                let name = p
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let labels: BTreeMap<String, String> = p
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                target.matches(name, &labels)
                    && p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                    && p.pointer("/metadata/deletionTimestamp").is_none()
            })
            .map(|p| {
                let s = |ptr: &str| {
                    p.pointer(ptr)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                (s("/metadata/name"), s("/metadata/uid"))
            })
            .collect();
        anyhow::ensure!(
            !running.is_empty(),
            "no running pod in namespace {namespace} is {}",
            match target {
                PodTarget::Name(n) => format!("named {n:?}"),
                PodTarget::Selector(terms) => format!(
                    "selected by {}",
                    terms
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }
        );
        // The same seed picks the same pod whatever order the list has.
        running.sort();
        let k = self.rng.random_range(0..running.len());
        Ok(running.swap_remove(k))
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
    ) -> anyhow::Result<Acted> {
        api::apply_objects(&mut self.api, &objects, false, &mut std::io::sink()).await?;
        let undo: Vec<Value> = pairs
            .iter()
            .flat_map(|(x, y)| api::link_objects(&self.base(x, y), true))
            .collect();
        let targets = pairs.iter().map(|(x, y)| format!("{x}->{y}")).collect();
        Ok(Acted::new(
            targets,
            Some(Undo::Links(undo)),
            Some(Probe::Links { objects }),
        ))
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

/// Stops a process for a restart: SIGTERM, then SIGKILL when it has not
/// exited within [`RESTART_STOP`] (a stopped process is continued first so
/// it can handle the SIGTERM); says how it stopped.
async fn stop(pid: u32) -> &'static str {
    use nix::sys::signal::Signal;
    crate::record::signal(pid, Signal::SIGTERM);
    crate::record::signal(pid, Signal::SIGCONT);
    if exited_within(pid, RESTART_STOP).await {
        return "SIGTERM";
    }
    crate::record::signal(pid, Signal::SIGKILL);
    exited_within(pid, Duration::from_secs(2)).await;
    "SIGKILL after SIGTERM"
}

/// Whether `pid` has exited within `within`.
async fn exited_within(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while crate::record::alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(VERIFY_POLL).await;
    }
    true
}

/// A cordon's probe: `spec.unschedulable` set on the node.
fn cordoned(node: &Value, name: &str) -> Result<String, String> {
    if drain::is_unschedulable(node) {
        Ok(format!("node {name} spec.unschedulable"))
    } else {
        Err(format!("node {name} is not unschedulable"))
    }
}

/// A drain's probe: every evictable pod of the node terminating or gone.
fn evicting(pods: &[Value], node: &str) -> Result<String, String> {
    let running: Vec<String> = pods
        .iter()
        .filter(|p| drain::evictable(p, node) && p.pointer("/metadata/deletionTimestamp").is_none())
        .map(drain::pod_name)
        .collect();
    if running.is_empty() {
        Ok(format!(
            "node {node} cordoned, no evictable pod left running on it"
        ))
    } else {
        Err(format!(
            "not evicted from node {node}: {}",
            running.join(", ")
        ))
    }
}

/// A scale's probe: the Deployment's `status.replicas` at the target.
fn replicas_reached(deployment: &Value, want: u32) -> Result<String, String> {
    let have = deployment
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if have == i64::from(want) {
        Ok(format!("status.replicas {have}"))
    } else {
        Err(format!("status.replicas {have}, not {want}"))
    }
}

/// A partition's or link change's probe: every Link object stored with
/// the spec the fault wrote.
fn links_stored(wanted: &[Value], stored: &[Value]) -> Result<String, String> {
    for w in wanted {
        let name = w.pointer("/metadata/name").unwrap_or(&Value::Null);
        let Some(s) = stored
            .iter()
            .find(|s| s.pointer("/metadata/name") == Some(name))
        else {
            return Err(format!("link {name} is not stored"));
        };
        if s.get("spec") != w.get("spec") {
            return Err(format!(
                "link {name} is stored as {}, not {}",
                s.get("spec").unwrap_or(&Value::Null),
                w.get("spec").unwrap_or(&Value::Null)
            ));
        }
    }
    Ok(format!("{} link object(s) stored", wanted.len()))
}

/// A restarted node's readiness: Ready, registered by its new process
/// (the pid it joined with, `podnet.io/pid`).
fn node_rejoined(node: &Value, pid: u32) -> Result<(), String> {
    let joined = node
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(podnet_proto::model::ANNOTATION_PID))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if joined != pid.to_string() {
        return Err(format!("the node has not joined as pid {pid} yet"));
    }
    if !podnet_proto::model::view::NodeView(node).ready() {
        return Err("the node is not Ready yet".into());
    }
    Ok(())
}

/// Kind, namespace (default `default`) and name of a manifest's object.
fn key_of(o: &Value) -> (String, String, String) {
    let s = |ptr: &str| o.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    (
        s("/kind").unwrap_or_default(),
        s("/metadata/namespace").unwrap_or_else(|| "default".to_string()),
        s("/metadata/name").unwrap_or_default(),
    )
}

/// Kinds without a namespace, which are named without one.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "Node" | "Link" | "ClusterRole" | "ClusterRoleBinding" | "IngressClass"
    )
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
            verified: None,
            verify: None,
            drained: None,
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

    #[test]
    fn a_drain_lasts_until_its_node_is_empty() {
        let mut r = Record {
            id: "d".into(),
            kind: "drain",
            scheduled: 1.0,
            applied: Some(1.0),
            heal_scheduled: Some(20.0),
            healed: None,
            targets: vec![],
            error: None,
            verified: None,
            verify: None,
            drained: None,
        };
        assert!(r.is_on());
        assert_eq!(
            r.span(5.0),
            Some(Span {
                start: 1.0,
                end: 5.0
            })
        );
        r.drained = Some(3.5);
        assert!(!r.is_on());
        assert_eq!(
            r.span(30.0),
            Some(Span {
                start: 1.0,
                end: 3.5
            })
        );
        r.healed = Some(20.0);
        assert_eq!(
            r.span(30.0),
            Some(Span {
                start: 1.0,
                end: 3.5
            })
        );
    }

    #[test]
    fn probes_judge_what_they_see() {
        use serde_json::json;
        let node = |u: bool| json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": u}});
        assert!(cordoned(&node(true), "n1").is_ok());
        assert_eq!(
            cordoned(&node(false), "n1"),
            Err("node n1 is not unschedulable".into())
        );

        let pod = |name: &str, terminating: bool, owner: &str| {
            let mut p = json!({"metadata": {"name": name, "namespace": "default", "ownerReferences": [{"kind": owner}]}, "spec": {"nodeName": "n1"}});
            if terminating {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        assert!(
            evicting(
                &[pod("a", true, "ReplicaSet"), pod("d", false, "DaemonSet")],
                "n1"
            )
            .is_ok()
        );
        assert_eq!(
            evicting(
                &[pod("a", true, "ReplicaSet"), pod("b", false, "ReplicaSet")],
                "n1"
            ),
            Err("not evicted from node n1: default/b".into())
        );

        let d = json!({"status": {"replicas": 2}});
        assert!(replicas_reached(&d, 2).is_ok());
        assert_eq!(
            replicas_reached(&d, 0),
            Err("status.replicas 2, not 0".into())
        );
        assert!(replicas_reached(&json!({}), 0).is_ok());

        let link = |name: &str, partition: bool| json!({"kind": "Link", "metadata": {"name": name}, "spec": {"from": "a", "to": "b", "partition": partition}});
        let wanted = [link("a-b", true)];
        assert!(links_stored(&wanted, &[link("a-b", true)]).is_ok());
        assert!(
            links_stored(&wanted, &[link("a-b", false)])
                .unwrap_err()
                .contains("is stored as")
        );
        assert!(
            links_stored(&wanted, &[])
                .unwrap_err()
                .contains("not stored")
        );

        let joined = |pid: &str, ready: &str| {
            json!({"metadata": {"annotations": {podnet_proto::model::ANNOTATION_PID: pid}},
                   "status": {"conditions": [{"type": "Ready", "status": ready}]}})
        };
        assert_eq!(node_rejoined(&joined("42", "True"), 42), Ok(()));
        assert!(
            node_rejoined(&joined("41", "True"), 42)
                .unwrap_err()
                .contains("not joined")
        );
        assert!(
            node_rejoined(&joined("42", "False"), 42)
                .unwrap_err()
                .contains("not Ready")
        );
    }
}
