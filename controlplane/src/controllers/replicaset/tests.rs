//! The ReplicaSet controller's batching and its stop conditions, over the
//! in-memory store.

use serde_json::json;

use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::time::Duration;

use super::*;
use crate::store::{MemBackend, Storage};

fn check(count: usize, initial: usize, expected: &[usize]) {
    let batches = slow_start_batches(count, initial);
    assert_eq!(batches, expected, "slow_start_batches({count}, {initial})");
    assert_eq!(batches.iter().sum::<usize>(), count);
}

#[test]
fn slow_start_doubles_from_the_initial_batch() {
    check(0, 1, &[]);
    check(1, 1, &[1]);
    check(2, 1, &[1, 1]);
    check(3, 1, &[1, 2]);
    check(5, 1, &[1, 2, 2]);
    check(7, 1, &[1, 2, 4]);
    check(10, 3, &[3, 6, 1]);
    check(4, 0, &[1, 2, 1]);
    check(
        BURST_REPLICAS,
        SLOW_START_INITIAL_BATCH,
        &[1, 2, 4, 8, 16, 32, 64, 128, 245],
    );
}

fn registry() -> Registry {
    Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap())
}

fn namespace(r: &Registry) {
    r.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))
        .unwrap();
}

fn replicaset(r: &Registry, replicas: i64, owner: Option<&Value>) -> Value {
    let mut rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]},
            },
        },
    });
    if let Some(owner) = owner {
        rs["metadata"]["ownerReferences"] = json!([owner_reference(owner)]);
    }
    r.create(rs).unwrap()
}

fn pods(r: &Registry) -> usize {
    r.list_all(Kind::Pod, "default").unwrap().len()
}

fn scale(r: &Registry, replicas: i64) {
    let key = ObjectKey::new(Kind::ReplicaSet, "default", "web");
    let mut rs = r.must_get(&key).unwrap();
    rs["spec"]["replicas"] = json!(replicas);
    r.update(rs).unwrap();
}

#[test]
fn one_pass_creates_at_most_the_burst() {
    let r = registry();
    namespace(&r);
    replicaset(&r, 100_000, None);
    reconcile(&r, chrono::Utc::now()).unwrap();
    assert_eq!(pods(&r), BURST_REPLICAS);
    reconcile(&r, chrono::Utc::now()).unwrap();
    assert_eq!(pods(&r), 2 * BURST_REPLICAS);
    let rs = r
        .must_get(&ObjectKey::new(Kind::ReplicaSet, "default", "web"))
        .unwrap();
    assert_eq!(rs["status"]["replicas"], 2 * BURST_REPLICAS);
}

#[test]
fn one_pass_deletes_at_most_the_burst() {
    let r = registry();
    namespace(&r);
    replicaset(&r, 700, None);
    reconcile(&r, chrono::Utc::now()).unwrap();
    reconcile(&r, chrono::Utc::now()).unwrap();
    assert_eq!(pods(&r), 700);
    scale(&r, 0);
    reconcile(&r, chrono::Utc::now()).unwrap();
    assert_eq!(pods(&r), 700 - BURST_REPLICAS);
    reconcile(&r, chrono::Utc::now()).unwrap();
    assert_eq!(pods(&r), 0);
}

#[test]
fn creations_follow_the_replicaset_as_it_is_now() {
    let r = registry();
    namespace(&r);
    // What a pass listed: 100000 wanted. What is stored when the batches
    // run: 3, then none.
    let listed = replicaset(&r, 100_000, None);
    scale(&r, 3);
    assert_eq!(create_pods(&r, &listed, 100_000, 0).unwrap(), 3);
    assert_eq!(pods(&r), 3);
    scale(&r, 0);
    assert_eq!(create_pods(&r, &listed, 100_000, 3).unwrap(), 0);
    r.delete(&key_of_value(Kind::ReplicaSet, &listed), None, "")
        .unwrap();
    assert_eq!(create_pods(&r, &listed, 100_000, 0).unwrap(), 0);
}

#[test]
fn a_replicaset_recreated_under_the_same_name_is_not_the_listed_one() {
    let r = registry();
    namespace(&r);
    let listed = replicaset(&r, 100, None);
    r.delete(&key_of_value(Kind::ReplicaSet, &listed), None, "")
        .unwrap();
    replicaset(&r, 100, None);
    assert_eq!(create_pods(&r, &listed, 100, 0).unwrap(), 0);
}

#[test]
fn creations_stop_when_the_controlling_deployment_is_gone() {
    let r = registry();
    namespace(&r);
    let d = r
        .create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 100000, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}}}}))
        .unwrap();
    let listed = replicaset(&r, 100_000, Some(&d));
    assert_eq!(create_pods(&r, &listed, 4, 0).unwrap(), 4);
    // A ReplicaSet whose Deployment is gone (deleted, or replaced by one
    // of the same name) while the ReplicaSet itself is still there: the
    // cascade has not reached it yet.
    let mut replaced = d.clone();
    replaced["metadata"]["uid"] = json!("a-deployment-that-was-deleted");
    r.delete(&key_of_value(Kind::ReplicaSet, &listed), None, "")
        .unwrap();
    let orphan = replicaset(&r, 100_000, Some(&replaced));
    assert_eq!(create_pods(&r, &orphan, 100, 0).unwrap(), 0);
    assert_eq!(pods(&r), 0, "the first ReplicaSet's pods went with it");
}

fn at(secs: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ready_pod(ready: bool, since: i64) -> Value {
    json!({"status": {"phase": "Running", "conditions": [{"type": "Ready",
        "status": if ready { "True" } else { "False" }, "lastTransitionTime": stamp(at(since))}]}})
}

#[test]
fn available_after_min_ready_seconds_of_readiness() {
    // IsPodAvailable: Ready for strictly longer than minReadySeconds.
    assert_eq!(availability(&ready_pod(true, 0), 0, at(0)), Ok(()));
    assert_eq!(availability(&ready_pod(false, 0), 0, at(100)), Err(None));
    assert_eq!(availability(&ready_pod(true, 0), 5, at(6)), Ok(()));
    assert_eq!(
        availability(&ready_pod(true, 0), 5, at(2)),
        Err(Some(Duration::from_millis(3001)))
    );
    assert_eq!(
        availability(&ready_pod(true, 0), 5, at(5)),
        Err(Some(Duration::from_millis(1)))
    );
    let no_time = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(availability(&no_time, 5, at(100)), Err(None));
}

#[test]
fn scale_down_deletes_the_least_valuable_pod_first() {
    // ActivePodsWithRanks: each pair is (deleted first, kept).
    let now = at(10_000);
    let pod = |node: &str, phase: &str, ready: Option<i64>, created: i64| {
        let mut p = json!({"metadata": {"creationTimestamp": stamp(at(created)), "uid": "u"},
            "spec": {"nodeName": node}, "status": {"phase": phase, "conditions": []}});
        if let Some(since) = ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                "lastTransitionTime": stamp(at(since))}]);
        }
        p
    };
    let check = |first: (&Value, usize), kept: (&Value, usize), why: &str| {
        assert_eq!(deletion_order(first, kept, now), Ordering::Less, "{why}");
        assert_eq!(deletion_order(kept, first, now), Ordering::Greater, "{why}");
    };
    let running = pod("n1", "Running", Some(0), 0);
    check(
        (&pod("", "Pending", None, 0), 1),
        (&running, 1),
        "unscheduled",
    );
    check(
        (&pod("n1", "Pending", None, 0), 1),
        (&running, 1),
        "pending",
    );
    check(
        (&pod("n1", "Running", None, 0), 1),
        (&running, 1),
        "not ready",
    );
    check((&running, 2), (&running, 1), "doubled up on a node");
    check(
        (&pod("n1", "Running", Some(9_000), 0), 1),
        (&running, 1),
        "ready for less time",
    );
    let mut restarted = running.clone();
    restarted["status"]["containerStatuses"] = json!([{"restartCount": 3}]);
    check((&restarted, 1), (&running, 1), "restarted more");
    check(
        (&pod("n1", "Running", Some(0), 5_000), 1),
        (&running, 1),
        "newer",
    );
    // Ages within the same power of two count as the same.
    assert_eq!(
        deletion_order((&pod("n1", "Running", Some(0), 1), 1), (&running, 1), now),
        Ordering::Equal
    );
    let mut cheap = running.clone();
    cheap["metadata"]["annotations"] = json!({"controller.kubernetes.io/pod-deletion-cost": "-5"});
    check(
        (&cheap, 1),
        (&pod("n1", "Running", Some(9_000), 5_000), 3),
        "lower deletion cost",
    );
}
