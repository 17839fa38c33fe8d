//! The ReplicaSet controller: keeps `spec.replicas` live pods stamped from
//! the template, deleting the least valuable extras first (upstream's
//! `ActivePodsWithRanks`: unscheduled, pending, not ready, cheaper to
//! delete, doubled up on a node, ready for less time, restarted more,
//! newer), and reports counts in status. A pod is available once it has
//! been Ready for `minReadySeconds` (its Ready condition's
//! lastTransitionTime); the pass says when the next one will be, so that
//! is noticed without another event.
//!
//! Like upstream's (pkg/controller/replicaset), one pass creates or deletes
//! at most [`BURST_REPLICAS`] pods of a ReplicaSet, creations in slow-start
//! batches of 1, 2, 4, … ([`slow_start_batches`]). Before every batch the
//! ReplicaSet (and the Deployment that controls it) is read again: a
//! ReplicaSet scaled down, deleted or being deleted stops its creations
//! within one batch, so `replicas: 100000` can never run away from its
//! owner. The rest waits for the next pass.
//!
//! Orphan adoption by selector is not emulated: a ReplicaSet owns only the
//! pods it created.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use podnet_proto::model::{Kind, ObjectKey};
use serde_json::{Value, json};

use super::{key_of_value, owned_by, owner_reference, pod_is_ready, random_suffix, write_status};
use crate::registry::{ApiError, Registry};
use podnet_proto::model::str_at;

/// Pods one pass creates or deletes for one ReplicaSet at most: upstream's
/// `BurstReplicas`.
pub const BURST_REPLICAS: usize = 500;

/// The first batch of a slow start: upstream's `SlowStartInitialBatchSize`.
const SLOW_START_INITIAL_BATCH: usize = 1;

/// The batch sizes upstream's `slowStartBatch` makes `count` calls in:
/// `initial`, then each batch twice the last, the last one what is left.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = remaining.min(initial.max(1));
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = remaining.min(size.saturating_mul(2));
    }
    batches
}

fn is_active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

fn replicas(object: &Value) -> usize {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0) as usize
}

fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// The ReplicaSet's `spec.replicas` as stored now, or `None` when it (or
/// the Deployment controlling it) is gone, replaced or being deleted: what
/// a pass checks before each batch.
fn desired_now(registry: &Registry, rs: &Value) -> Result<Option<usize>, ApiError> {
    let uid = str_at(rs, "/metadata/uid");
    let Some(current) = registry.get(&key_of_value(Kind::ReplicaSet, rs))? else {
        return Ok(None);
    };
    if str_at(&current, "/metadata/uid") != uid || is_deleting(&current) {
        return Ok(None);
    }
    let controller = current
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter().find(|r| {
                r.get("controller").and_then(Value::as_bool) == Some(true)
                    && str_at(r, "/kind") == Kind::Deployment.as_str()
            })
        });
    if let Some(owner) = controller {
        let key = ObjectKey::new(
            Kind::Deployment,
            str_at(&current, "/metadata/namespace"),
            str_at(owner, "/name"),
        );
        match registry.get(&key)? {
            Some(d) if str_at(&d, "/metadata/uid") == str_at(owner, "/uid") && !is_deleting(&d) => {
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(replicas(&current)))
}

/// When the Ready condition of `pod` last changed, if it says.
fn ready_since(pod: &Value) -> Option<DateTime<Utc>> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")
        .and_then(|c| parse_time(str_at(c, "/lastTransitionTime")))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `IsPodAvailable`: Ready, and for `min_ready_seconds` before `now`.
/// Otherwise, when a Ready pod will be: how long from now.
pub fn availability(
    pod: &Value,
    min_ready_seconds: i64,
    now: DateTime<Utc>,
) -> Result<(), Option<Duration>> {
    if !pod_is_ready(pod) {
        return Err(None);
    }
    if min_ready_seconds <= 0 {
        return Ok(());
    }
    // A Ready condition without a transition time never becomes
    // available, as upstream's zero time.
    let since = ready_since(pod).ok_or(None)?;
    let at = since + chrono::Duration::seconds(min_ready_seconds);
    if at < now {
        Ok(())
    } else {
        // Strictly after `at`, and the times are in whole seconds.
        Err(Some(
            (at - now).to_std().unwrap_or_default() + Duration::from_millis(1),
        ))
    }
}

/// `podPhaseToOrdinal`.
fn phase_ordinal(pod: &Value) -> u8 {
    match str_at(pod, "/status/phase") {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    pod.pointer("/metadata/annotations/controller.kubernetes.io~1pod-deletion-cost")
        .and_then(Value::as_str)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .max()
        .unwrap_or(0)
}

/// `logarithmicRankDiff`: compares ages in powers of two, so pods
/// created close together count as the same age.
fn log_rank(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let nanos = (now - t).num_nanoseconds().unwrap_or(i64::MAX);
    if nanos > 0 { nanos.ilog2() as i64 } else { -1 }
}

/// Upstream's afterOrZero-or-logarithmic comparison of two times: the
/// missing or later one first.
fn newer_first(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) if a == b => Ordering::Equal,
        (Some(a), Some(b)) => log_rank(a, now).cmp(&log_rank(b, now)),
    }
}

/// `ActivePodsWithRanks.Less`: `Less` for the pod to delete first.
/// `rank` is how many of the pods of the same controller share a pod's
/// node.
pub fn deletion_order(a: (&Value, usize), b: (&Value, usize), now: DateTime<Utc>) -> Ordering {
    let (pa, ra) = a;
    let (pb, rb) = b;
    let assigned = |p: &Value| !str_at(p, "/spec/nodeName").is_empty();
    let created = |p: &Value| parse_time(str_at(p, "/metadata/creationTimestamp"));
    assigned(pa)
        .cmp(&assigned(pb))
        .then(phase_ordinal(pa).cmp(&phase_ordinal(pb)))
        .then(pod_is_ready(pa).cmp(&pod_is_ready(pb)))
        .then(deletion_cost(pa).cmp(&deletion_cost(pb)))
        .then(rb.cmp(&ra))
        .then_with(|| {
            if pod_is_ready(pa) && pod_is_ready(pb) {
                newer_first(ready_since(pa), ready_since(pb), now)
            } else {
                Ordering::Equal
            }
        })
        .then(restarts(pb).cmp(&restarts(pa)))
        .then_with(|| newer_first(created(pa), created(pb), now))
        .then_with(|| str_at(pa, "/metadata/uid").cmp(str_at(pb, "/metadata/uid")))
}

/// The uid of the object that controls `o`, if any.
fn controller_uid(o: &Value) -> Option<&str> {
    o.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// Runs the pass; the time until a Ready pod becomes available, when one
/// will.
pub fn reconcile(registry: &Registry, now: DateTime<Utc>) -> Result<Option<Duration>, ApiError> {
    let pods = registry.list_all(Kind::Pod, "")?;
    let replicasets = registry.list_all(Kind::ReplicaSet, "")?;
    // Pods of ReplicaSets with the same controller are related
    // (`getIndirectlyRelatedPods`): their nodes rank a pod for deletion.
    let rs_controller: HashMap<&str, &str> = replicasets
        .iter()
        .filter_map(|rs| Some((str_at(rs, "/metadata/uid"), controller_uid(rs)?)))
        .collect();
    let mut next: Option<Duration> = None;
    for rs in &replicasets {
        if is_deleting(rs) {
            continue;
        }
        let want = replicas(rs);
        let mut active: Vec<&Value> = owned_by(&pods, rs)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let mut count = active.len();
        if count < want {
            count += create_pods(registry, rs, want - count, count)?;
        } else if count > want {
            let family = controller_uid(rs).unwrap_or(str_at(rs, "/metadata/uid"));
            let mut on_node: HashMap<&str, usize> = HashMap::new();
            for p in pods.iter().filter(|p| is_active(p)) {
                let related = controller_uid(p).is_some_and(|owner| {
                    owner == str_at(rs, "/metadata/uid")
                        || rs_controller.get(owner).is_some_and(|c| *c == family)
                });
                let node = str_at(p, "/spec/nodeName");
                if related && !node.is_empty() {
                    *on_node.entry(node).or_default() += 1;
                }
            }
            let rank = |p: &Value| {
                on_node
                    .get(str_at(p, "/spec/nodeName"))
                    .copied()
                    .unwrap_or(0)
            };
            active.sort_by(|a, b| deletion_order((a, rank(a)), (b, rank(b)), now));
            let excess = (count - want).min(BURST_REPLICAS);
            let deleted = delete_pods(registry, rs, &active[..excess], count)?;
            active.drain(..deleted);
            count -= deleted;
        }
        let min_ready = rs
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let ready = active.iter().filter(|p| pod_is_ready(p)).count();
        let mut available = 0;
        for p in &active {
            match availability(p, min_ready, now) {
                Ok(()) => available += 1,
                Err(Some(after)) => next = Some(next.map_or(after, |n| n.min(after))),
                Err(None) => {}
            }
        }
        let status = json!({
            "replicas": count,
            "fullyLabeledReplicas": count,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        // A ReplicaSet deleted meanwhile is NotFound, which write_status
        // takes as done.
        write_status(registry, rs, status)?;
    }
    Ok(next)
}

/// Creates up to `missing` (at most [`BURST_REPLICAS`]) pods for `rs`,
/// which has `active` now, in slow-start batches, each only as far as the
/// ReplicaSet read again still wants. Returns how many were created.
fn create_pods(
    registry: &Registry,
    rs: &Value,
    missing: usize,
    active: usize,
) -> Result<usize, ApiError> {
    let mut created = 0;
    for batch in slow_start_batches(missing.min(BURST_REPLICAS), SLOW_START_INITIAL_BATCH) {
        let Some(want) = desired_now(registry, rs)? else {
            break;
        };
        let allowed = want.saturating_sub(active + created).min(batch);
        if allowed == 0 {
            break;
        }
        for _ in 0..allowed {
            // Upstream stops a slow start at the first failed batch; the
            // error ends the pass and the next one starts over at 1.
            if create_pod(registry, rs)? {
                created += 1;
            }
        }
        if allowed < batch {
            break;
        }
    }
    Ok(created)
}

/// Deletes `doomed` (already capped at [`BURST_REPLICAS`]) of `rs`'s
/// `active` pods, in batches of the same sizes, stopping when the
/// ReplicaSet read again wants more of them kept. Returns how many of the
/// first of `doomed` were deleted.
fn delete_pods(
    registry: &Registry,
    rs: &Value,
    doomed: &[&Value],
    active: usize,
) -> Result<usize, ApiError> {
    let mut deleted = 0;
    for batch in slow_start_batches(doomed.len(), SLOW_START_INITIAL_BATCH) {
        // A ReplicaSet that is gone needs no more pods deleted by it: its
        // pods go with it (cascading deletion, the garbage collector).
        let Some(want) = desired_now(registry, rs)? else {
            break;
        };
        let allowed = (active - deleted).saturating_sub(want).min(batch);
        for pod in &doomed[deleted..deleted + allowed] {
            match registry.delete(&key_of_value(Kind::Pod, pod), None, "") {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        deleted += allowed;
        if allowed < batch {
            break;
        }
    }
    Ok(deleted)
}

/// Names a generated name is tried with before the pod is left to the next
/// pass: the API server's `generateName` retries (RetryGenerateName).
const NAME_ATTEMPTS: usize = 8;

/// Creates one pod of `rs`; `false` when every generated name tried was
/// taken (the next pass tries others).
fn create_pod(registry: &Registry, rs: &Value) -> Result<bool, ApiError> {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
    metadata["namespace"] = json!(str_at(rs, "/metadata/namespace"));
    metadata["ownerReferences"] = json!([owner_reference(rs)]);
    for _ in 0..NAME_ATTEMPTS {
        let name = format!("{}-{}", str_at(rs, "/metadata/name"), random_suffix(5));
        metadata["name"] = json!(name);
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        match registry.create(pod) {
            Ok(_) => return Ok(true),
            Err(ApiError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
