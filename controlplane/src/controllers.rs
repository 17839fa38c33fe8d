//! The controllers of the control plane, level-triggered: any change to a
//! Deployment, ReplicaSet, Pod, Node or Service wakes one reconcile pass
//! over the whole state, and a periodic resync heals whatever a lost event
//! missed. A pass may also name when it must run again with no event (a
//! pod becoming available after `minReadySeconds`, a Deployment's progress
//! deadline), as upstream's controllers `AddAfter` a key.
//!
//! Passes run in order Deployment → ReplicaSet → garbage collector →
//! scheduler, EndpointSlice (and Endpoints) in a loop of its own, and the
//! EndpointSlice mirroring controller (Endpoints of Services without a
//! selector into slices) in a third, each reading what the previous wrote. The ReplicaSet pass is bounded (see
//! `replicaset`): the loop stays responsive whatever `replicas` says. Each is written
//! to be idempotent: running it twice on the same state writes nothing the
//! second time.

mod deployment;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod garbagecollector;
mod replicaset;

use std::sync::Arc;
use std::time::Duration;

use podnet_proto::events::{self, EventType, Source};
use podnet_proto::model::{FieldSelector, Kind, LabelSelector, ObjectKey, condition_is_true};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::registry::{ApiError, Registry};
use crate::scheduler::{self, Decision};
use podnet_proto::model::str_at;

pub use deployment::template_hash;

const RESYNC: Duration = Duration::from_secs(2);

/// Characters Kubernetes uses for generated name suffixes (no vowels, no
/// look-alikes).
const SAFE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| SAFE_CHARS[rng.random_range(0..SAFE_CHARS.len())] as char)
        .collect()
}

pub fn owner_reference(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub fn owned_by<'a>(objects: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let uid = str_at(owner, "/metadata/uid");
    objects
        .iter()
        .filter(|o| {
            str_at(o, "/metadata/namespace") == str_at(owner, "/metadata/namespace")
                && o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/uid") == uid))
        })
        .collect()
}

pub fn pod_is_ready(pod: &Value) -> bool {
    condition_is_true(pod, "Ready")
}

pub fn key_of_value(kind: Kind, v: &Value) -> ObjectKey {
    ObjectKey::new(
        kind,
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name"),
    )
}

/// Writes `status` if it differs from the object's current status.
pub fn write_status(registry: &Registry, object: &Value, status: Value) -> Result<(), ApiError> {
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut updated = object.clone();
    updated["status"] = status;
    match registry.update_status(updated) {
        // Someone wrote in between; the next pass sees their write.
        Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn schedule(registry: &Registry) -> Result<(), ApiError> {
    let nodes = registry.list_all(Kind::Node, "")?;
    let pods = registry.list_all(Kind::Pod, "")?;
    let listed: std::collections::HashMap<(&str, &str), &Value> = pods
        .iter()
        .map(|p| {
            (
                (
                    str_at(p, "/metadata/namespace"),
                    str_at(p, "/metadata/name"),
                ),
                p,
            )
        })
        .collect();
    for decision in scheduler::plan(&nodes, &pods) {
        match decision {
            Decision::Bind {
                namespace,
                pod,
                node,
            } => {
                let key = ObjectKey::new(Kind::Pod, &namespace, &pod);
                let Some(mut p) = registry.get(&key)? else {
                    continue;
                };
                if !str_at(&p, "/spec/nodeName").is_empty() {
                    continue;
                }
                p["spec"]["nodeName"] = json!(node);
                let bound = match registry.update(p) {
                    Ok(b) => b,
                    Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                tracing::debug!(pod = %key, %node, "bound");
                record_event(
                    registry,
                    &bound,
                    EventType::Normal,
                    "Scheduled",
                    &format!("Successfully assigned {namespace}/{pod} to {node}"),
                    SCHEDULER,
                );
                let mut status = bound
                    .get("status")
                    .cloned()
                    .unwrap_or_else(|| json!({"phase": "Pending"}));
                set_condition(&mut status, "PodScheduled", "True", "", "");
                write_status(registry, &bound, status)?;
            }
            Decision::Unschedulable {
                namespace,
                pod,
                message,
            } => {
                // A pod still pending for the same reason as last pass
                // needs neither a read nor a write: thousands of pods beyond
                // the nodes' capacity cost the pass only this check.
                if let Some(p) = listed.get(&(namespace.as_str(), pod.as_str()))
                    && pending_for(p, &message)
                {
                    continue;
                }
                let key = ObjectKey::new(Kind::Pod, &namespace, &pod);
                let Some(p) = registry.get(&key)? else {
                    continue;
                };
                let mut status = p
                    .get("status")
                    .cloned()
                    .unwrap_or_else(|| json!({"phase": "Pending"}));
                set_condition(
                    &mut status,
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    &message,
                );
                // Every pass retries the pod; a new event only when the
                // reason it cannot be placed changes, so a pending pod does
                // not write on every wake-up.
                if p.get("status") != Some(&status) {
                    record_event(
                        registry,
                        &p,
                        EventType::Warning,
                        "FailedScheduling",
                        &message,
                        SCHEDULER,
                    );
                }
                write_status(registry, &p, status)?;
            }
        }
    }
    Ok(())
}

/// True when `pod`'s PodScheduled condition already says it cannot be
/// placed, for `message`.
fn pending_for(pod: &Value, message: &str) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| str_at(c, "/type") == "PodScheduled"))
        .is_some_and(|c| {
            str_at(c, "/status") == "False"
                && str_at(c, "/reason") == "Unschedulable"
                && str_at(c, "/message") == message
        })
}

/// What the scheduler's Events name as their source.
const SCHEDULER: Source<'static> = Source {
    component: "default-scheduler",
    host: None,
};

/// Records an Event in the registry, in the one format
/// `podnet_proto::events` defines (the control plane does not call its own
/// API). Failures are logged: an event never fails the pass.
pub fn record_event(
    registry: &Registry,
    object: &Value,
    ty: EventType,
    reason: &str,
    message: &str,
    source: Source<'_>,
) {
    let now = events::timestamp(std::time::SystemTime::now());
    let key = ObjectKey::new(
        Kind::Event,
        events::event_namespace(object),
        &events::event_name(object, ty, reason, message),
    );
    let written = match registry.get(&key) {
        Ok(Some(mut event)) => {
            events::repeated(&mut event, &now);
            registry.update(event).map(|_| ())
        }
        Ok(None) => registry
            .create(events::new_event(object, ty, reason, message, source, &now))
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match written {
        // Someone counted it in between: theirs counts.
        Ok(()) | Err(ApiError::Conflict { .. }) | Err(ApiError::AlreadyExists { .. }) => {}
        Err(e) => tracing::warn!(event = %key, error = %e, "event not recorded"),
    }
}

/// Sets one condition in a status object, keeping its transition time when
/// the status did not change.
pub fn set_condition(status: &mut Value, ty: &str, value: &str, reason: &str, message: &str) {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let existing = conditions.iter().position(|c| str_at(c, "/type") == ty);
    if let Some(i) = existing
        && str_at(&conditions[i], "/status") == value
        && str_at(&conditions[i], "/reason") == reason
        && str_at(&conditions[i], "/message") == message
    {
        return;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut c =
        json!({"type": ty, "status": value, "lastTransitionTime": now, "lastProbeTime": null});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    match existing {
        Some(i) => conditions[i] = c,
        None => conditions.push(c),
    }
    status["conditions"] = Value::Array(conditions);
}

/// A pass slower than this is worth a warning: it delays every change.
const SLOW_PASS: std::time::Duration = std::time::Duration::from_millis(100);

/// Deployments, ReplicaSets and scheduling: the workload controllers.
/// Returns when the next pass is due without an event (a pod becoming
/// available after `minReadySeconds`, a progress deadline), as upstream's
/// controllers `AddAfter` their keys.
fn reconcile_workloads(registry: &Registry) -> Result<Option<Duration>, ApiError> {
    let now = chrono::Utc::now();
    let deployments = deployment::reconcile(registry, now)?;
    let replicasets = replicaset::reconcile(registry, now)?;
    garbagecollector::collect(registry)?;
    schedule(registry)?;
    Ok(match (deployments, replicasets) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

async fn watch_kind(
    registry: Registry,
    kind: Kind,
    wakes: Vec<Arc<Notify>>,
    shutdown: CancellationToken,
) {
    let wake = || wakes.iter().for_each(|w| w.notify_one());
    loop {
        let from = match registry.revision() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the store revision");
                return;
            }
        };
        let mut watch = match registry.watch(
            kind,
            "",
            LabelSelector::everything(),
            FieldSelector::default(),
            from,
        ) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(%kind, error = %e, "cannot watch");
                return;
            }
        };
        // Anything between the old watch and the new one is covered by the
        // full pass this wake-up triggers.
        wake();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = watch.next() => match ev {
                    Some(Ok(_)) => wake(),
                    Some(Err(e)) => { tracing::warn!(%kind, error = %e, "watch ended, watching again"); break }
                    None => break,
                }
            }
        }
    }
}

/// What the controllers are told at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `--mirroring-max-endpoints-per-subset`: the addresses of one
    /// Endpoints subset the mirroring controller copies at most.
    pub mirroring_max_endpoints_per_subset: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mirroring_max_endpoints_per_subset:
                endpointslicemirroring::DEFAULT_MAX_ENDPOINTS_PER_SUBSET,
        }
    }
}

/// Runs the controllers and the scheduler until `shutdown`: the workload
/// controllers, the EndpointSlice controller and the mirroring controller
/// are separate loops, as they are separate controllers upstream, so a
/// slow pass of one never delays another (endpoint changes are what
/// network programming latency is made of). A mirrored slice a user edits
/// or deletes is put back by the mirroring loop's resync.
pub async fn run(registry: Registry, config: Config, shutdown: CancellationToken) {
    let workloads = Arc::new(Notify::new());
    let endpoints = Arc::new(Notify::new());
    let mirroring = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    for (kind, wakes) in [
        (Kind::Deployment, vec![workloads.clone()]),
        (Kind::ReplicaSet, vec![workloads.clone()]),
        (Kind::Pod, vec![workloads.clone(), endpoints.clone()]),
        (Kind::Node, vec![workloads.clone(), endpoints.clone()]),
        (Kind::Service, vec![endpoints.clone(), mirroring.clone()]),
        (Kind::Endpoints, vec![mirroring.clone()]),
    ] {
        tasks.spawn(
            watch_kind(registry.clone(), kind, wakes, shutdown.clone())
                .instrument(tracing::info_span!("watch", kind = %kind)),
        );
    }
    tasks.spawn(
        control_loop(
            registry.clone(),
            workloads,
            reconcile_workloads,
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("workloads")),
    );
    tasks.spawn(
        control_loop(
            registry.clone(),
            endpoints,
            |r: &Registry| endpointslice::reconcile(r).map(|()| None),
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("endpointslices")),
    );
    let max = config.mirroring_max_endpoints_per_subset;
    tasks.spawn(
        control_loop(
            registry.clone(),
            mirroring,
            move |r: &Registry| endpointslicemirroring::reconcile(r, max).map(|()| None),
            shutdown.clone(),
        )
        .instrument(tracing::info_span!("endpointslicemirroring")),
    );
    shutdown.cancelled().await;
    tasks.shutdown().await;
}

/// One level-triggered loop: a full pass on every wake-up, on resync, and
/// when the last pass asked to be run again by then.
async fn control_loop<F>(
    registry: Registry,
    wake: Arc<Notify>,
    pass: F,
    shutdown: CancellationToken,
) where
    F: Fn(&Registry) -> Result<Option<Duration>, ApiError> + Clone + Send + 'static,
{
    let mut resync = tokio::time::interval(RESYNC);
    let mut requeue: Option<tokio::time::Instant> = None;
    loop {
        let due = async {
            match requeue {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = resync.tick() => {}
            _ = due => {}
        }
        let r = registry.clone();
        let pass = pass.clone();
        let start = std::time::Instant::now();
        // The passes do blocking store I/O.
        requeue = match tokio::task::spawn_blocking(move || pass(&r)).await {
            Ok(Ok(after)) => after.map(|after| tokio::time::Instant::now() + after),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reconcile pass failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "reconcile pass panicked");
                None
            }
        };
        let took = start.elapsed();
        if took > SLOW_PASS {
            tracing::warn!(?took, "slow reconcile pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemBackend, Storage};

    fn registry() -> Registry {
        let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
        r.bootstrap(&crate::registry::Addons::dns(0)).unwrap();
        r
    }

    fn events_about(r: &Registry, name: &str) -> Vec<Value> {
        r.list_all(Kind::Event, "default")
            .unwrap()
            .into_iter()
            .filter(|e| str_at(e, "/involvedObject/name") == name)
            .collect()
    }

    #[test]
    fn an_unschedulable_pod_gets_one_failed_scheduling_event_per_reason() {
        let r = registry();
        r.create(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}}))
            .unwrap();
        schedule(&r).unwrap();
        schedule(&r).unwrap();
        let events = events_about(&r, "web");
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(str_at(e, "/type"), "Warning");
        assert_eq!(str_at(e, "/reason"), "FailedScheduling");
        // The message is the PodScheduled condition's, kube-scheduler's words.
        let pod = r
            .must_get(&ObjectKey::new(Kind::Pod, "default", "web"))
            .unwrap();
        let condition = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| str_at(c, "/type") == "PodScheduled"))
            .cloned()
            .unwrap();
        assert_eq!(str_at(e, "/message"), str_at(&condition, "/message"));
        assert!(str_at(e, "/message").contains("nodes are available"), "{e}");
        assert_eq!(str_at(e, "/source/component"), "default-scheduler");
        assert_eq!(e["count"], 1);
    }

    #[test]
    fn recording_the_same_event_again_counts_it() {
        let r = registry();
        let pod = r
            .create(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}}))
            .unwrap();
        for _ in 0..3 {
            record_event(&r, &pod, EventType::Normal, "Scheduled", "m", SCHEDULER);
        }
        let events = events_about(&r, "web");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["count"], 3);
        assert_eq!(
            str_at(&events[0], "/involvedObject/uid"),
            str_at(&pod, "/metadata/uid")
        );
    }
}
