//! The ReplicaSet controller's batching and its stop conditions, over the
//! in-memory store.

use serde_json::json;

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
    reconcile(&r).unwrap();
    assert_eq!(pods(&r), BURST_REPLICAS);
    reconcile(&r).unwrap();
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
    reconcile(&r).unwrap();
    reconcile(&r).unwrap();
    assert_eq!(pods(&r), 700);
    scale(&r, 0);
    reconcile(&r).unwrap();
    assert_eq!(pods(&r), 700 - BURST_REPLICAS);
    reconcile(&r).unwrap();
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
