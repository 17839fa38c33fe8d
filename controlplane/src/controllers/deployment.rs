//! The Deployment controller, as upstream's (pkg/controller/deployment):
//! one ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`
//! and found again by its template (ignoring the hash label, so `rollout
//! undo` brings an old ReplicaSet back). A `RollingUpdate` grows the new
//! ReplicaSet to at most `replicas + maxSurge` pods in all and shrinks the
//! old ones while `replicas - maxUnavailable` stay available; `Recreate`
//! scales the old ones to zero, waits for their pods to be gone, then
//! scales the new one up. Revisions (`deployment.kubernetes.io/revision`)
//! number the ReplicaSets, old ones beyond `revisionHistoryLimit` are
//! pruned once scaled down, and status carries the counts and the
//! `Available` and `Progressing` conditions with the progress deadline.
//!
//! The decisions are in [`plan`], pure; this module reads the store,
//! applies them and says when the next pass is needed
//! (`progressDeadlineSeconds`). A change of `spec.replicas` mid-rollout
//! is spread over the active ReplicaSets in proportion to their sizes.
//! A ReplicaSet brought back by a rollback keeps its earlier revisions in
//! `revision-history`. Not emulated: `ReplicaFailure`.

mod plan;

use std::time::Duration;

use chrono::{DateTime, Utc};
use podnet_proto::events::{EventType, Source};
use podnet_proto::model::{Kind, LABEL_POD_TEMPLATE_HASH};
use serde_json::{Value, json};

use super::{key_of_value, owner_reference, record_event, write_status};
use crate::registry::{ApiError, Registry};
use plan::{Counts, IntOrPercent, Params, StatusCounts, Strategy};
use podnet_proto::model::str_at;

use plan::timestamp;

pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";
pub const ANNOTATION_REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const ANNOTATION_DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const ANNOTATION_MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of a Deployment that are not copied to its ReplicaSets
/// (`annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_REVISION,
    ANNOTATION_REVISION_HISTORY,
    ANNOTATION_DESIRED_REPLICAS,
    ANNOTATION_MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

const CONTROLLER: Source<'static> = Source {
    component: "deployment-controller",
    host: None,
};

const SAFE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of a pod template, encoded the way Kubernetes encodes
/// `pod-template-hash` values (no vowels).
pub fn template_hash(template: &Value) -> String {
    // serde_json's maps are ordered, so the text is canonical.
    hash_text(&template.to_string())
}

/// The hash of a Deployment's template with its `collisionCount`, as
/// upstream's `ComputeHash`: a collision with another template's
/// ReplicaSet name is resolved by counting it and hashing again.
fn template_hash_with(template: &Value, collisions: i64) -> String {
    if collisions == 0 {
        return template_hash(template);
    }
    hash_text(&format!("{template}{collisions}"))
}

fn hash_text(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut v = h;
    loop {
        out.push(SAFE_CHARS[(v % SAFE_CHARS.len() as u32) as usize] as char);
        v /= SAFE_CHARS.len() as u32;
        if v == 0 {
            break;
        }
    }
    out
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// Upstream's "no limit" sentinel for revisionHistoryLimit and
/// progressDeadlineSeconds.
const MAX_INT32: i64 = i32::MAX as i64;

/// The parameters of a stored (so defaulted and valid) Deployment.
fn params_of(d: &Value) -> Params {
    let strategy = match str_at(d, "/spec/strategy/type") {
        "Recreate" => Strategy::Recreate,
        _ => {
            let read = |f: &str| {
                d.pointer(&format!("/spec/strategy/rollingUpdate/{f}"))
                    .and_then(IntOrPercent::from_json)
                    .unwrap_or(IntOrPercent::Percent(25))
            };
            Strategy::RollingUpdate {
                max_surge: read("maxSurge"),
                max_unavailable: read("maxUnavailable"),
            }
        }
    };
    let limited = |p: &str| int(d, p).filter(|n| *n != MAX_INT32);
    Params {
        replicas: int(d, "/spec/replicas").unwrap_or(1).max(0),
        strategy,
        min_ready_seconds: int(d, "/spec/minReadySeconds").unwrap_or(0),
        progress_deadline_seconds: limited("/spec/progressDeadlineSeconds"),
        revision_history_limit: limited("/spec/revisionHistoryLimit"),
        generation: int(d, "/metadata/generation").unwrap_or(1),
    }
}

fn revision_of(o: &Value) -> i64 {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn annotation_int(o: &Value, key: &str) -> Option<i64> {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

fn counts_of(rs: &Value) -> Counts {
    let status = |f: &str| int(rs, &format!("/status/{f}")).unwrap_or(0);
    Counts {
        name: str_at(rs, "/metadata/name").to_string(),
        revision: revision_of(rs),
        created: str_at(rs, "/metadata/creationTimestamp").to_string(),
        spec_replicas: int(rs, "/spec/replicas").unwrap_or(1).max(0),
        replicas: status("replicas"),
        ready: status("readyReplicas"),
        available: status("availableReplicas"),
        generation: int(rs, "/metadata/generation").unwrap_or(1),
        observed_generation: status("observedGeneration"),
        deleting: rs.pointer("/metadata/deletionTimestamp").is_some(),
        desired_annotation: annotation_int(rs, ANNOTATION_DESIRED_REPLICAS),
        max_annotation: annotation_int(rs, ANNOTATION_MAX_REPLICAS),
    }
}

/// `EqualIgnoreHash`: two pod templates that differ at most in their
/// `pod-template-hash` label.
fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(labels) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(LABEL_POD_TEMPLATE_HASH);
        }
        t
    };
    strip(a) == strip(b)
}

/// The ReplicaSets `d` controls, oldest first.
fn controlled_by(replicasets: &[Value], d: &Value) -> Vec<Value> {
    let uid = str_at(d, "/metadata/uid");
    let mut owned: Vec<Value> = replicasets
        .iter()
        .filter(|rs| {
            str_at(rs, "/metadata/namespace") == str_at(d, "/metadata/namespace")
                && rs
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter().any(|r| {
                            str_at(r, "/uid") == uid
                                && r.get("controller").and_then(Value::as_bool) == Some(true)
                        })
                    })
        })
        .cloned()
        .collect();
    owned.sort_by(|a, b| {
        (
            str_at(a, "/metadata/creationTimestamp"),
            str_at(a, "/metadata/name"),
        )
            .cmp(&(
                str_at(b, "/metadata/creationTimestamp"),
                str_at(b, "/metadata/name"),
            ))
    });
    owned
}

/// One Deployment's ReplicaSets: the new one (its template is the
/// Deployment's) and the others.
struct Family {
    new: Option<Value>,
    old: Vec<Value>,
}

impl Family {
    fn of(owned: Vec<Value>, template: &Value) -> Family {
        let mut new = None;
        let mut old = Vec::new();
        for rs in owned {
            let t = rs.pointer("/spec/template").unwrap_or(&Value::Null);
            // The oldest match is the new one (FindNewReplicaSet).
            if new.is_none() && equal_ignore_hash(t, template) {
                new = Some(rs);
            } else {
                old.push(rs);
            }
        }
        Family { new, old }
    }

    fn old_counts(&self) -> Vec<Counts> {
        self.old.iter().map(counts_of).collect()
    }

    fn all_counts(&self) -> Vec<Counts> {
        let mut all = self.old_counts();
        all.extend(self.new.iter().map(counts_of));
        all
    }

    fn max_old_revision(&self) -> i64 {
        self.old.iter().map(revision_of).max().unwrap_or(0)
    }
}

pub fn reconcile(registry: &Registry, now: DateTime<Utc>) -> Result<Option<Duration>, ApiError> {
    let replicasets = registry.list_all(Kind::ReplicaSet, "")?;
    let pods = registry.list_all(Kind::Pod, "")?;
    let mut next: Option<Duration> = None;
    for d in registry.list_all(Kind::Deployment, "")? {
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let owned = controlled_by(&replicasets, &d);
        if let Some(after) = sync_deployment(registry, d, owned, &pods, now)? {
            next = Some(next.map_or(after, |n| n.min(after)));
        }
    }
    Ok(next)
}

/// One pass over one Deployment; when it wants to be looked at again
/// without an event.
fn sync_deployment(
    registry: &Registry,
    mut d: Value,
    owned: Vec<Value>,
    pods: &[Value],
    now: DateTime<Utc>,
) -> Result<Option<Duration>, ApiError> {
    let p = params_of(&d);
    let stamp = timestamp(now);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut family = Family::of(owned, &template);
    let mut before = d.get("status").cloned().unwrap_or(json!({}));
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    // checkPausedConditions comes first, as upstream's syncDeployment.
    if p.progress_deadline_seconds.is_some() {
        paused_condition(&mut before, paused, &stamp);
    }

    // A scaling event (`spec.replicas` changed since the ReplicaSets were
    // last sized) is only scaled, as upstream's `sync`: the rollout goes on
    // in the next pass.
    let scaling = !paused && plan::is_scaling_event(&p, &family.all_counts());
    let create = !paused
        && !scaling
        && match p.strategy {
            Strategy::RollingUpdate { .. } => true,
            // Recreate makes the new ReplicaSet only once every old pod is
            // gone (below).
            Strategy::Recreate => false,
        };
    if !sync_revision(
        registry,
        &mut d,
        &p,
        &mut family,
        &template,
        &mut before,
        create,
        &stamp,
    )? {
        // A hash collision was counted: the next pass names the new
        // ReplicaSet differently.
        write_status(registry, &d, before)?;
        return Ok(None);
    }

    if paused || scaling {
        // `sync`: scale, prune when paused, and the counts and
        // availability; Progressing is left as it was.
        let all = family.all_counts();
        let new_at = family.new.as_ref().map(|_| family.old.len());
        let status_replicas = StatusCounts::from_status(&before).replicas;
        for (i, size) in plan::scale(&p, &all, new_at, status_replicas) {
            let rs = match family.new.as_mut() {
                Some(new) if Some(i) == new_at => new,
                _ => match family.old.get_mut(i) {
                    Some(rs) => rs,
                    None => continue,
                },
            };
            scale(registry, &d, &p, rs, size)?;
        }
        if paused {
            cleanup(registry, &p, &family)?;
        }
        let counts = StatusCounts::of(
            &p,
            &family.all_counts(),
            family.new.as_ref().map(counts_of).as_ref(),
        );
        write_status(
            registry,
            &d,
            plan::calculate_status(&p, &before, counts, now),
        )?;
        return Ok(None);
    }

    match p.strategy {
        Strategy::RollingUpdate { .. } => rolling(registry, &d, &p, &mut family)?,
        Strategy::Recreate => recreate(
            registry,
            &d,
            &p,
            &mut family,
            &template,
            &mut before,
            pods,
            &stamp,
        )?,
    }
    if StatusCounts::from_status(&before).complete(&p) {
        cleanup(registry, &p, &family)?;
    }

    let new_counts = family.new.as_ref().map(counts_of);
    let counts = StatusCounts::of(&p, &family.all_counts(), new_counts.as_ref());
    let new_name = new_counts.as_ref().map(|c| c.name.as_str());
    let status = plan::rollout_status(
        &p,
        &before,
        counts,
        new_name,
        str_at(&d, "/metadata/name"),
        now,
    );
    let requeue = plan::deadline_check(&p, &status, now);
    write_status(registry, &d, status)?;
    Ok(requeue)
}

/// `checkPausedConditions`: Progressing is Unknown while paused, and says
/// when the rollout was resumed (the deadline counts from then); a
/// rollout that has timed out keeps saying so.
fn paused_condition(status: &mut Value, paused: bool, stamp: &str) {
    let reason = plan::condition(status, plan::PROGRESSING)
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if reason == plan::TIMED_OUT {
        return;
    }
    if paused && reason != "DeploymentPaused" {
        plan::set_condition(
            status,
            plan::new_condition(
                plan::PROGRESSING,
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                stamp,
            ),
        );
    } else if !paused && reason == "DeploymentPaused" {
        plan::set_condition(
            status,
            plan::new_condition(
                plan::PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed",
                stamp,
            ),
        );
    }
}

/// `getAllReplicaSetsAndSyncRevision`: brings the new ReplicaSet's
/// revision, annotations and minReadySeconds up to date, or creates it
/// when `create`; then the Deployment's revision. `false` when the new
/// ReplicaSet's name was taken by another template (counted in
/// `status.collisionCount`).
#[allow(clippy::too_many_arguments)]
fn sync_revision(
    registry: &Registry,
    d: &mut Value,
    p: &Params,
    family: &mut Family,
    template: &Value,
    status: &mut Value,
    create: bool,
    stamp: &str,
) -> Result<bool, ApiError> {
    let revision = family.max_old_revision() + 1;
    if let Some(rs) = family.new.clone() {
        let mut updated = rs.clone();
        annotate(&mut updated, d, revision);
        updated["spec"]["minReadySeconds"] = json!(p.min_ready_seconds);
        if updated != rs {
            match registry.update(updated) {
                Ok(stored) => family.new = Some(stored),
                Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if p.progress_deadline_seconds.is_some()
            && plan::condition(status, plan::PROGRESSING).is_none()
        {
            let message = format!("Found new replica set {:?}", str_at(&rs, "/metadata/name"));
            plan::set_condition(
                status,
                plan::new_condition(
                    plan::PROGRESSING,
                    "True",
                    plan::FOUND_NEW_RS,
                    &message,
                    stamp,
                ),
            );
        }
    } else if create {
        let Some(rs) = create_new(registry, d, p, family, template, status, revision)? else {
            return Ok(false);
        };
        created(p, status, &rs, stamp);
        family.new = Some(rs);
    }
    // SetDeploymentRevision: the Deployment's revision is its new
    // ReplicaSet's (or the newest there was, before one exists).
    let wanted = family
        .new
        .as_ref()
        .map(revision_of)
        .unwrap_or_else(|| family.max_old_revision());
    if wanted > 0 && revision_of(d) != wanted {
        let mut updated = d.clone();
        updated["metadata"]["annotations"][ANNOTATION_REVISION] = json!(wanted.to_string());
        match registry.update(updated) {
            Ok(stored) => *d = stored,
            Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `SetNewReplicaSetAnnotations`: the Deployment's own annotations but
/// the controller's, and the revision, raised only.
fn annotate(rs: &mut Value, d: &Value, revision: i64) {
    if !rs["metadata"]["annotations"].is_object() {
        rs["metadata"]["annotations"] = json!({});
    }
    let annotations = &mut rs["metadata"]["annotations"];
    if let Some(own) = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in own {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations[k] = v.clone();
            }
        }
    }
    let current = annotations.get(ANNOTATION_REVISION).and_then(Value::as_str);
    let history = annotations
        .get(ANNOTATION_REVISION_HISTORY)
        .and_then(Value::as_str);
    if let Some((raised, history)) = plan::raise_revision(current, history, revision) {
        annotations[ANNOTATION_REVISION] = json!(raised);
        if let Some(history) = history {
            annotations[ANNOTATION_REVISION_HISTORY] = json!(history);
        }
    }
}

/// `SetReplicasAnnotations`: the Deployment's size, and with surge, the
/// ReplicaSet was last sized for.
fn annotate_replicas(rs: &mut Value, p: &Params) {
    if !rs["metadata"]["annotations"].is_object() {
        rs["metadata"]["annotations"] = json!({});
    }
    let annotations = &mut rs["metadata"]["annotations"];
    annotations[ANNOTATION_DESIRED_REPLICAS] = json!(p.replicas.to_string());
    annotations[ANNOTATION_MAX_REPLICAS] = json!((p.replicas + plan::max_surge(p)).to_string());
}

/// A new ReplicaSet is progress: Progressing NewReplicaSetCreated, when
/// the Deployment has a progress deadline (upstream's getNewReplicaSet).
fn created(p: &Params, status: &mut Value, rs: &Value, stamp: &str) {
    if p.progress_deadline_seconds.is_some() {
        let message = format!("Created new replica set {:?}", str_at(rs, "/metadata/name"));
        plan::set_condition(
            status,
            plan::new_condition(
                plan::PROGRESSING,
                "True",
                plan::NEW_RS_CREATED,
                &message,
                stamp,
            ),
        );
    }
}

/// Creates the new ReplicaSet, sized by `NewRSNewReplicas`; `None` when
/// its name is another template's (a hash collision, counted in
/// `status`).
fn create_new(
    registry: &Registry,
    d: &Value,
    p: &Params,
    family: &Family,
    template: &Value,
    status: &mut Value,
    revision: i64,
) -> Result<Option<Value>, ApiError> {
    let collisions = status
        .get("collisionCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let hash = template_hash_with(template, collisions);
    let replicas = plan::new_rs_new_replicas(p, &family.old_counts(), 0);
    let mut template = template.clone();
    template["metadata"]["labels"][LABEL_POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    selector["matchLabels"][LABEL_POD_TEMPLATE_HASH] = json!(hash);
    let labels = template["metadata"]["labels"].clone();
    let name = format!("{}-{hash}", str_at(d, "/metadata/name"));
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": str_at(d, "/metadata/namespace"),
            "labels": labels,
            "ownerReferences": [owner_reference(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": p.min_ready_seconds,
            "selector": selector,
            "template": template,
        },
    });
    annotate(&mut rs, d, revision);
    annotate_replicas(&mut rs, p);
    match registry.create(rs) {
        Ok(created) => {
            if replicas > 0 {
                record_event(
                    registry,
                    d,
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {name} from 0 to {replicas}"),
                    CONTROLLER,
                );
            }
            Ok(Some(created))
        }
        Err(ApiError::AlreadyExists { .. }) => {
            let key = podnet_proto::model::ObjectKey::new(
                Kind::ReplicaSet,
                str_at(d, "/metadata/namespace"),
                &name,
            );
            // Ours from a pass whose list did not show it yet: found.
            if let Some(existing) = registry.get(&key)?
                && controlled_by(std::slice::from_ref(&existing), d).len() == 1
                && equal_ignore_hash(
                    existing.pointer("/spec/template").unwrap_or(&Value::Null),
                    d.pointer("/spec/template").unwrap_or(&Value::Null),
                )
            {
                return Ok(Some(existing));
            }
            status["collisionCount"] = json!(collisions + 1);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `scaleReplicaSetAndRecordEvent`: sets `rs`'s size and its replicas
/// annotations, and says so in an Event. `rs` is replaced by what was
/// stored; `false` when someone wrote it first (the next pass decides
/// again).
fn scale(
    registry: &Registry,
    d: &Value,
    p: &Params,
    rs: &mut Value,
    replicas: i64,
) -> Result<bool, ApiError> {
    let from = int(rs, "/spec/replicas").unwrap_or(1);
    let mut updated = rs.clone();
    updated["spec"]["replicas"] = json!(replicas);
    annotate_replicas(&mut updated, p);
    if updated == *rs {
        return Ok(false);
    }
    match registry.update(updated) {
        Ok(stored) => *rs = stored,
        Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    if from != replicas {
        let direction = if replicas > from { "up" } else { "down" };
        record_event(
            registry,
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {direction} replica set {} from {from} to {replicas}",
                str_at(rs, "/metadata/name")
            ),
            CONTROLLER,
        );
    }
    Ok(from != replicas)
}

/// `rolloutRolling`: scale the new ReplicaSet up if it may grow, else the
/// old ones down if they may shrink.
fn rolling(
    registry: &Registry,
    d: &Value,
    p: &Params,
    family: &mut Family,
) -> Result<(), ApiError> {
    let all = family.all_counts();
    if let Some(new) = family.new.as_mut() {
        let size = counts_of(new).spec_replicas;
        let target = if size > p.replicas {
            p.replicas
        } else {
            plan::new_rs_new_replicas(p, &all, size)
        };
        if target != size && scale(registry, d, p, new, target)? {
            return Ok(());
        }
    }
    let new = family.new.as_ref().map(counts_of).unwrap_or_default();
    let old = family.old_counts();
    for (i, size) in plan::scale_down_old(p, &old, &new) {
        scale(registry, d, p, &mut family.old[i], size)?;
    }
    Ok(())
}

/// `rolloutRecreate`: old ReplicaSets to zero, then, once none of their
/// pods is left (terminating ones included), the new one to `replicas`.
#[allow(clippy::too_many_arguments)]
fn recreate(
    registry: &Registry,
    d: &Value,
    p: &Params,
    family: &mut Family,
    template: &Value,
    status: &mut Value,
    pods: &[Value],
    stamp: &str,
) -> Result<(), ApiError> {
    let mut scaled = false;
    for rs in family.old.iter_mut() {
        if counts_of(rs).spec_replicas > 0 {
            scaled |= scale(registry, d, p, rs, 0)?;
        }
    }
    if scaled || old_pods_running(family, pods) {
        return Ok(());
    }
    match family.new.as_mut() {
        Some(new) => {
            if counts_of(new).spec_replicas != p.replicas {
                scale(registry, d, p, new, p.replicas)?;
            }
        }
        None => {
            let revision = family.max_old_revision() + 1;
            if let Some(rs) = create_new(registry, d, p, family, template, status, revision)? {
                created(p, status, &rs, stamp);
                family.new = Some(rs);
            }
        }
    }
    Ok(())
}

/// `oldPodsRunning`: an old ReplicaSet still reports pods, or one of its
/// pods has not ended (a terminating pod still runs).
fn old_pods_running(family: &Family, pods: &[Value]) -> bool {
    if family.old_counts().iter().any(|rs| rs.replicas > 0) {
        return true;
    }
    family.old.iter().any(|rs| {
        super::owned_by(pods, rs)
            .iter()
            .any(|pod| !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed"))
    })
}

/// `cleanupDeployment`: deletes old ReplicaSets beyond the history limit.
fn cleanup(registry: &Registry, p: &Params, family: &Family) -> Result<(), ApiError> {
    for i in plan::prune(p, &family.old_counts()) {
        let rs = &family.old[i];
        match registry.delete(
            &key_of_value(Kind::ReplicaSet, rs),
            None,
            str_at(rs, "/metadata/resourceVersion"),
        ) {
            Ok(_) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
