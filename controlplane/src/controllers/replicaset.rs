//! The ReplicaSet controller: keeps `spec.replicas` live pods stamped from
//! the template, deleting the least valuable extras first (unscheduled,
//! then not ready, then newest), and reports counts in status.
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

pub fn reconcile(registry: &Registry) -> Result<(), ApiError> {
    let pods = registry.list_all(Kind::Pod, "")?;
    for rs in registry.list_all(Kind::ReplicaSet, "")? {
        if is_deleting(&rs) {
            continue;
        }
        let want = replicas(&rs);
        let mut active: Vec<&Value> = owned_by(&pods, &rs)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let mut count = active.len();
        if count < want {
            count += create_pods(registry, &rs, want - count, count)?;
        } else if count > want {
            // Least valuable first, as the upstream controller ranks them.
            active.sort_by_key(|p| {
                (
                    !str_at(p, "/spec/nodeName").is_empty(),
                    pod_is_ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            let excess = (count - want).min(BURST_REPLICAS);
            let deleted = delete_pods(registry, &rs, &active[..excess], count)?;
            active.drain(..deleted);
            count -= deleted;
        }
        let ready = active.iter().filter(|p| pod_is_ready(p)).count();
        let status = json!({
            "replicas": count,
            "fullyLabeledReplicas": count,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        // A ReplicaSet deleted meanwhile is NotFound, which write_status
        // takes as done.
        write_status(registry, &rs, status)?;
    }
    Ok(())
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
