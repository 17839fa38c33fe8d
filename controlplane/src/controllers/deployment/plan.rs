//! The decisions of the Deployment controller as plain functions of the
//! Deployment's parameters and its ReplicaSets' counts, after upstream's
//! `pkg/controller/deployment` (rolling.go, recreate.go, progress.go and
//! util/deployment_util.go): how far the new ReplicaSet may grow, how far
//! the old ones may shrink, which old ones are pruned, and the status and
//! conditions that result. No store, no clock: `now` is an argument.
//!
//! Deliberately absent: the `ReplicaFailure` condition.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A `maxSurge`/`maxUnavailable` value: a count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// Reads `25%` or `1` from a manifest value; `None` when it is neither
    /// (validation refuses those, so a stored object never has one).
    pub fn from_json(v: &Value) -> Option<IntOrPercent> {
        if let Some(n) = v.as_i64() {
            return Some(IntOrPercent::Int(n));
        }
        let digits = v.as_str()?.strip_suffix('%')?;
        digits.parse().ok().map(IntOrPercent::Percent)
    }

    /// `GetScaledValueFromIntOrPercent`: a percentage of `total`, rounded
    /// up or down.
    pub fn scaled(self, total: i64, round_up: bool) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let product = p * total;
                if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
    Recreate,
}

/// What a Deployment's spec says that the decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub replicas: i64,
    pub strategy: Strategy,
    pub min_ready_seconds: i64,
    /// `None`: no progress deadline (upstream's MaxInt32 sentinel).
    pub progress_deadline_seconds: Option<i64>,
    pub revision_history_limit: Option<i64>,
    pub generation: i64,
}

/// The counts of one ReplicaSet a decision reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    pub name: String,
    /// `deployment.kubernetes.io/revision`, 0 when absent.
    pub revision: i64,
    pub created: String,
    pub spec_replicas: i64,
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub generation: i64,
    pub observed_generation: i64,
    pub deleting: bool,
    /// `deployment.kubernetes.io/desired-replicas` and `max-replicas`:
    /// the Deployment's size (and with surge) when this one was last
    /// scaled.
    pub desired_annotation: Option<i64>,
    pub max_annotation: Option<i64>,
}

/// `ResolveFenceposts`: maxSurge rounded up, maxUnavailable rounded down,
/// and 1 unavailable when both come to 0 (a rollout must be able to move).
pub fn resolve_fenceposts(
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    desired: i64,
) -> (i64, i64) {
    let surge = max_surge.scaled(desired, true);
    let unavailable = max_unavailable.scaled(desired, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// `MaxUnavailable`: never more than `replicas`, 0 for Recreate.
pub fn max_unavailable(p: &Params) -> i64 {
    match p.strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } if p.replicas > 0 => resolve_fenceposts(max_surge, max_unavailable, p.replicas)
            .1
            .min(p.replicas),
        _ => 0,
    }
}

/// `MaxSurge`: 0 for Recreate.
pub fn max_surge(p: &Params) -> i64 {
    match p.strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => resolve_fenceposts(max_surge, max_unavailable, p.replicas).0,
        Strategy::Recreate => 0,
    }
}

/// `NewRSNewReplicas`: the size the new ReplicaSet may have now, given
/// every ReplicaSet's `spec.replicas` (`all` includes the new one when it
/// exists; `new` is its current size, 0 when it is yet to be created).
pub fn new_rs_new_replicas(p: &Params, all: &[Counts], new: i64) -> i64 {
    match p.strategy {
        Strategy::Recreate => p.replicas,
        Strategy::RollingUpdate { .. } => {
            let current: i64 = all.iter().map(|rs| rs.spec_replicas).sum();
            let max_total = p.replicas + max_surge(p);
            if current >= max_total {
                return new;
            }
            let up = (max_total - current).min(p.replicas - new).max(0);
            new + up
        }
    }
}

/// `reconcileOldReplicaSets`: the new `spec.replicas` of old ReplicaSets
/// (by index into `old`), unhealthy replicas first
/// (`cleanupUnhealthyReplicas`), then available ones only as far as
/// `replicas - maxUnavailable` stay available
/// (`scaleDownOldReplicaSetsForRollingUpdate`). `new` is the new
/// ReplicaSet's counts (zero when there is none).
pub fn scale_down_old(p: &Params, old: &[Counts], new: &Counts) -> Vec<(usize, i64)> {
    let old_pods: i64 = old.iter().map(|rs| rs.spec_replicas).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods + new.spec_replicas;
    let min_available = p.replicas - max_unavailable(p);
    let new_unavailable = new.spec_replicas - new.available;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|&a, &b| {
        (old[a].created.as_str(), old[a].name.as_str())
            .cmp(&(old[b].created.as_str(), old[b].name.as_str()))
    });
    let mut sizes: Vec<i64> = old.iter().map(|rs| rs.spec_replicas).collect();

    // cleanupUnhealthyReplicas.
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= max_scaled_down {
            break;
        }
        let rs = &old[i];
        if sizes[i] == 0 || sizes[i] == rs.available {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(sizes[i] - rs.available);
        sizes[i] -= down;
        cleaned += down;
    }

    // scaleDownOldReplicaSetsForRollingUpdate, over the cleaned-up sizes;
    // availability is what the ReplicaSets report.
    let available = old.iter().map(|rs| rs.available).sum::<i64>() + new.available;
    if available > min_available {
        let total = available - min_available;
        let mut scaled = 0;
        for &i in &order {
            if scaled >= total {
                break;
            }
            if sizes[i] == 0 {
                continue;
            }
            let down = sizes[i].min(total - scaled);
            sizes[i] -= down;
            scaled += down;
        }
    }
    sizes
        .into_iter()
        .enumerate()
        .filter(|&(i, size)| size != old[i].spec_replicas)
        .collect()
}

/// `isScalingEvent`: an active ReplicaSet was last scaled for another
/// `spec.replicas` than the Deployment's now.
pub fn is_scaling_event(p: &Params, all: &[Counts]) -> bool {
    all.iter()
        .filter(|rs| rs.spec_replicas > 0)
        .any(|rs| rs.desired_annotation.is_some_and(|d| d != p.replicas))
}

/// `sync`'s `scale`: on a scaling event, the sizes the ReplicaSets it
/// touches get (by index into `all`, old ReplicaSets then the new one at
/// `new`); a touched ReplicaSet of the same size still gets its replicas
/// annotations brought up to date, which ends the scaling event. One active (or,
/// with none, the newest) ReplicaSet takes the whole size; a saturated
/// new one leaves the old ones nothing; otherwise a RollingUpdate spreads
/// what is added or removed over the active ones in proportion to their
/// sizes (`GetReplicaSetProportion`), the leftover to the largest.
/// `status_replicas` is the Deployment's `status.replicas`, the fallback
/// for a ReplicaSet without `max-replicas`.
pub fn scale(
    p: &Params,
    all: &[Counts],
    new: Option<usize>,
    status_replicas: i64,
) -> Vec<(usize, i64)> {
    // FindActiveOrLatest.
    let active: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].spec_replicas > 0)
        .collect();
    let only = match active.as_slice() {
        [] => new.or_else(|| {
            (0..all.len()).max_by(|&a, &b| {
                (all[a].created.as_str(), all[a].name.as_str())
                    .cmp(&(all[b].created.as_str(), all[b].name.as_str()))
            })
        }),
        [one] => Some(*one),
        _ => None,
    };
    if let Some(i) = only {
        return vec![(i, p.replicas)];
    }
    // IsSaturated.
    if let Some(n) = new {
        let rs = &all[n];
        if rs.desired_annotation == Some(p.replicas)
            && rs.spec_replicas == p.replicas
            && rs.available == p.replicas
        {
            return active
                .into_iter()
                .filter(|&i| i != n)
                .map(|i| (i, 0))
                .collect();
        }
    }
    if !matches!(p.strategy, Strategy::RollingUpdate { .. }) {
        return Vec::new();
    }
    let current: i64 = active.iter().map(|&i| all[i].spec_replicas).sum();
    let allowed = if p.replicas > 0 {
        p.replicas + max_surge(p)
    } else {
        0
    };
    let to_add = allowed - current;
    let mut order = active;
    // ReplicaSetsBySizeNewer when growing, BySizeOlder when shrinking.
    order.sort_by(|&a, &b| {
        let by_age = (all[a].created.as_str(), all[a].name.as_str())
            .cmp(&(all[b].created.as_str(), all[b].name.as_str()));
        all[b]
            .spec_replicas
            .cmp(&all[a].spec_replicas)
            .then(if to_add > 0 { by_age.reverse() } else { by_age })
    });
    let mut added = 0;
    let mut sizes: Vec<(usize, i64)> = Vec::new();
    for &i in &order {
        let rs = &all[i];
        let proportion = if to_add == 0 || to_add == added || rs.spec_replicas == 0 {
            0
        } else {
            let fraction = if p.replicas == 0 {
                -rs.spec_replicas
            } else {
                let before = rs
                    .max_annotation
                    .filter(|m| *m != 0)
                    .unwrap_or(status_replicas);
                if before == 0 {
                    0
                } else {
                    // RoundToInt32 of size * max / max before.
                    let exact = rs.spec_replicas as f64 * allowed as f64 / before as f64;
                    exact.round() as i64 - rs.spec_replicas
                }
            };
            let rest = to_add - added;
            if to_add > 0 {
                fraction.min(rest)
            } else {
                fraction.max(rest)
            }
        };
        added += proportion;
        sizes.push((i, rs.spec_replicas + proportion));
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

/// `cleanupDeployment`: the old ReplicaSets (by index) beyond
/// `revisionHistoryLimit`, lowest revision first, that are fully scaled
/// down and observed so, and may be deleted.
pub fn prune(p: &Params, old: &[Counts]) -> Vec<usize> {
    let Some(limit) = p.revision_history_limit else {
        return Vec::new();
    };
    let mut cleanable: Vec<usize> = (0..old.len()).filter(|&i| !old[i].deleting).collect();
    let diff = cleanable.len() as i64 - limit.max(0);
    if diff <= 0 {
        return Vec::new();
    }
    // ReplicaSetsByRevision: by revision, then by creation.
    cleanable.sort_by(|&a, &b| {
        (
            old[a].revision,
            old[a].created.as_str(),
            old[a].name.as_str(),
        )
            .cmp(&(
                old[b].revision,
                old[b].created.as_str(),
                old[b].name.as_str(),
            ))
    });
    cleanable
        .into_iter()
        .take(diff as usize)
        .filter(|&i| {
            let rs = &old[i];
            rs.replicas == 0 && rs.spec_replicas == 0 && rs.generation <= rs.observed_generation
        })
        .collect()
}

/// The counts a Deployment's status reports (`calculateStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusCounts {
    pub observed_generation: i64,
    pub replicas: i64,
    pub updated_replicas: i64,
    pub ready_replicas: i64,
    pub available_replicas: i64,
    pub unavailable_replicas: i64,
}

impl StatusCounts {
    pub fn of(p: &Params, all: &[Counts], new: Option<&Counts>) -> StatusCounts {
        let available: i64 = all.iter().map(|rs| rs.available).sum();
        let total: i64 = all.iter().map(|rs| rs.spec_replicas).sum();
        StatusCounts {
            observed_generation: p.generation,
            replicas: all.iter().map(|rs| rs.replicas).sum(),
            updated_replicas: new.map_or(0, |rs| rs.replicas),
            ready_replicas: all.iter().map(|rs| rs.ready).sum(),
            available_replicas: available,
            unavailable_replicas: (total - available).max(0),
        }
    }

    /// Reads what a stored status says (absent fields are 0).
    pub fn from_status(status: &Value) -> StatusCounts {
        let int = |f: &str| status.get(f).and_then(Value::as_i64).unwrap_or(0);
        StatusCounts {
            observed_generation: int("observedGeneration"),
            replicas: int("replicas"),
            updated_replicas: int("updatedReplicas"),
            ready_replicas: int("readyReplicas"),
            available_replicas: int("availableReplicas"),
            unavailable_replicas: int("unavailableReplicas"),
        }
    }

    /// `DeploymentComplete`.
    pub fn complete(&self, p: &Params) -> bool {
        self.updated_replicas == p.replicas
            && self.replicas == p.replicas
            && self.available_replicas == p.replicas
            && self.observed_generation >= p.generation
    }

    /// `DeploymentProgressing`: more updated, ready or available replicas,
    /// or fewer old ones, than `before`.
    pub fn progressing(&self, before: &StatusCounts) -> bool {
        let old = |s: &StatusCounts| s.replicas - s.updated_replicas;
        self.updated_replicas > before.updated_replicas
            || old(self) < old(before)
            || self.ready_replicas > before.ready_replicas
            || self.available_replicas > before.available_replicas
    }
}

/// `MaxRevHistoryLengthInChars`: the `revision-history` annotation is
/// kept under this length by dropping its oldest revisions.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// The revision part of `SetNewReplicaSetAnnotations`: `(revision,
/// history)` annotations of a ReplicaSet that had `(current, history)`
/// and is the new one at `revision`. A revision is only raised; a
/// ReplicaSet that had one before (a rollback to it) keeps the old one in
/// its history. `None`: nothing changes (a revision that is not a number
/// is left alone, as upstream).
pub fn raise_revision(
    current: Option<&str>,
    history: Option<&str>,
    revision: i64,
) -> Option<(String, Option<String>)> {
    let old = match current {
        None => 0,
        Some(r) => r.parse::<i64>().ok()?,
    };
    if old >= revision {
        return None;
    }
    let Some(old_text) = current else {
        return Some((revision.to_string(), history.map(String::from)));
    };
    let history = history.unwrap_or("");
    if history.is_empty() {
        return Some((revision.to_string(), Some(old_text.to_string())));
    }
    let mut kept: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old_text.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < kept.len() {
        total -= kept[start].len() + 1;
        start += 1;
    }
    if total > MAX_REVISION_HISTORY_CHARS {
        return Some((revision.to_string(), Some(history.to_string())));
    }
    kept.drain(..start);
    kept.push(old_text);
    Some((revision.to_string(), Some(kept.join(","))))
}

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The condition of type `ty` in `status`.
pub fn condition<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

fn field<'a>(c: &'a Value, f: &str) -> &'a str {
    c.get(f).and_then(Value::as_str).unwrap_or("")
}

/// `NewDeploymentCondition`: both times now.
pub fn new_condition(ty: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": ty, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    })
}

/// `SetDeploymentCondition`: nothing changes when the status and reason
/// are the same; the transition time is kept when only the reason does.
pub fn set_condition(status: &mut Value, mut c: Value) {
    let ty = field(&c, "type").to_string();
    if let Some(current) = condition(status, &ty) {
        if field(current, "status") == field(&c, "status")
            && field(current, "reason") == field(&c, "reason")
        {
            return;
        }
        if field(current, "status") == field(&c, "status") {
            c["lastTransitionTime"] = current["lastTransitionTime"].clone();
        }
    }
    remove_condition(status, &ty);
    match status.get_mut("conditions").and_then(Value::as_array_mut) {
        Some(list) => list.push(c),
        None => status["conditions"] = json!([c]),
    }
}

pub fn remove_condition(status: &mut Value, ty: &str) {
    if let Some(list) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        list.retain(|c| field(c, "type") != ty);
    }
}

/// `DeploymentTimedOut`: the Progressing condition has not been updated
/// for `progressDeadlineSeconds`.
pub fn timed_out(p: &Params, status: &Value, now: DateTime<Utc>) -> bool {
    let Some(deadline) = p.progress_deadline_seconds else {
        return false;
    };
    let Some(c) = condition(status, PROGRESSING) else {
        return false;
    };
    match field(c, "reason") {
        NEW_RS_AVAILABLE => false,
        TIMED_OUT => true,
        _ => parse_time(field(c, "lastUpdateTime"))
            .is_some_and(|from| from + chrono::Duration::seconds(deadline) < now),
    }
}

/// `calculateStatus`: the counts, the stored conditions, and
/// `Available` by whether `replicas - maxUnavailable` are. All that a
/// paused Deployment or a scaling event updates.
pub fn calculate_status(
    p: &Params,
    before: &Value,
    counts: StatusCounts,
    now: DateTime<Utc>,
) -> Value {
    let stamp = timestamp(now);
    let mut status = json!({
        "observedGeneration": counts.observed_generation,
        "replicas": counts.replicas,
        "updatedReplicas": counts.updated_replicas,
        "readyReplicas": counts.ready_replicas,
        "availableReplicas": counts.available_replicas,
        "unavailableReplicas": counts.unavailable_replicas,
        "conditions": before.get("conditions").cloned().unwrap_or(json!([])),
    });
    if let Some(collisions) = before.get("collisionCount") {
        status["collisionCount"] = collisions.clone();
    }
    if counts.available_replicas >= p.replicas - max_unavailable(p) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE,
                "Deployment has minimum availability.",
                &stamp,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                &stamp,
            ),
        );
    }
    status
}

/// `syncRolloutStatus` (and `calculateStatus`'s Available condition):
/// the status to write, from the stored one (`before`), the counts now
/// and the new ReplicaSet's name. `deployment` names the Deployment in
/// messages when there is no new ReplicaSet.
pub fn rollout_status(
    p: &Params,
    before: &Value,
    counts: StatusCounts,
    new_rs: Option<&str>,
    deployment: &str,
    now: DateTime<Utc>,
) -> Value {
    let stamp = timestamp(now);
    let mut status = calculate_status(p, before, counts, now);
    if p.progress_deadline_seconds.is_none() {
        remove_condition(&mut status, PROGRESSING);
        return status;
    }
    let current = condition(before, PROGRESSING).cloned();
    let complete_before = counts.replicas == counts.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| field(c, "reason") == NEW_RS_AVAILABLE);
    if complete_before {
        return status;
    }
    let previous = StatusCounts::from_status(before);
    if counts.complete(p) {
        let message = match new_rs {
            Some(rs) => format!("ReplicaSet {rs:?} has successfully progressed."),
            None => format!("Deployment {deployment:?} has successfully progressed."),
        };
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &message, &stamp),
        );
    } else if counts.progressing(&previous) {
        let message = match new_rs {
            Some(rs) => format!("ReplicaSet {rs:?} is progressing."),
            None => format!("Deployment {deployment:?} is progressing."),
        };
        let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, &message, &stamp);
        // Progress moves lastUpdateTime even with the same reason, which
        // SetDeploymentCondition alone would not.
        if let Some(current) = &current {
            if field(current, "status") == "True" {
                c["lastTransitionTime"] = current["lastTransitionTime"].clone();
            }
            remove_condition(&mut status, PROGRESSING);
        }
        set_condition(&mut status, c);
    } else if timed_out(p, before, now) {
        let message = match new_rs {
            Some(rs) => format!("ReplicaSet {rs:?} has timed out progressing."),
            None => format!("Deployment {deployment:?} has timed out progressing."),
        };
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "False", TIMED_OUT, &message, &stamp),
        );
    }
    status
}

/// `requeueStuckDeployment`: when the progress deadline of a rollout that
/// is neither complete nor timed out falls, so that it is noticed without
/// another event.
pub fn deadline_check(
    p: &Params,
    status: &Value,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    let deadline = p.progress_deadline_seconds?;
    let c = condition(status, PROGRESSING)?;
    if matches!(field(c, "reason"), NEW_RS_AVAILABLE | TIMED_OUT) {
        return None;
    }
    if StatusCounts::from_status(status).complete(p) {
        return None;
    }
    let from = parse_time(field(c, "lastUpdateTime"))?;
    let after = (from + chrono::Duration::seconds(deadline) - now)
        .to_std()
        .unwrap_or_default();
    // The deadline is passed when it is strictly before now, and times
    // are kept to the second.
    Some(after + std::time::Duration::from_secs(1))
}
