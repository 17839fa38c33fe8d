//! The Deployment controller's decisions, table-driven after upstream's
//! tests (deployment_util_test.go, rolling_test.go, progress_test.go),
//! and a rollout driven over the in-memory store.

use chrono::TimeZone;
use serde_json::json;

use super::plan::*;
use super::*;
use crate::store::{MemBackend, Storage};

fn rolling(replicas: i64, surge: IntOrPercent, unavailable: IntOrPercent) -> Params {
    Params {
        replicas,
        strategy: Strategy::RollingUpdate {
            max_surge: surge,
            max_unavailable: unavailable,
        },
        min_ready_seconds: 0,
        progress_deadline_seconds: Some(600),
        revision_history_limit: Some(10),
        generation: 1,
    }
}

use IntOrPercent::{Int, Percent};

#[test]
fn template_hash_is_stable_and_sensitive() {
    let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    let b = json!({"spec": {"containers": [{"image": "x", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}});
    assert_eq!(template_hash(&a), template_hash(&b));
    let mut c = a.clone();
    c["spec"]["containers"][0]["image"] = json!("y");
    assert_ne!(template_hash(&a), template_hash(&c));
    assert_ne!(template_hash_with(&a, 0), template_hash_with(&a, 1));
    assert!(
        template_hash(&a)
            .chars()
            .all(|ch| SAFE_CHARS.contains(&(ch as u8)))
    );
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let check = |surge, unavailable, desired, expected: (i64, i64)| {
        assert_eq!(
            resolve_fenceposts(surge, unavailable, desired),
            expected,
            "{surge:?} {unavailable:?} of {desired}"
        );
    };
    // TestResolveFenceposts.
    check(Percent(0), Percent(0), 0, (0, 1));
    check(Percent(39), Percent(39), 10, (4, 3));
    // The defaults at common sizes.
    check(Percent(25), Percent(25), 1, (1, 0));
    check(Percent(25), Percent(25), 3, (1, 0));
    check(Percent(25), Percent(25), 4, (1, 1));
    check(Percent(25), Percent(25), 10, (3, 2));
    check(Int(0), Int(0), 3, (0, 1));
    check(Int(1), Int(0), 3, (1, 0));
    check(Int(2), Percent(50), 5, (2, 2));
    check(Percent(100), Percent(100), 3, (3, 3));
}

#[test]
fn max_unavailable_is_bounded_by_replicas_and_zero_for_recreate() {
    assert_eq!(max_unavailable(&rolling(2, Int(0), Int(5))), 2);
    assert_eq!(max_unavailable(&rolling(0, Int(0), Int(5))), 0);
    let mut p = rolling(3, Int(1), Int(1));
    p.strategy = Strategy::Recreate;
    assert_eq!(max_unavailable(&p), 0);
    assert_eq!(max_surge(&p), 0);
}

fn rs(name: &str, created: &str, spec: i64, available: i64) -> Counts {
    Counts {
        name: name.into(),
        created: created.into(),
        spec_replicas: spec,
        replicas: spec,
        ready: available,
        available,
        ..Counts::default()
    }
}

#[test]
fn new_replicaset_grows_up_to_replicas_plus_surge() {
    // (replicas, maxSurge, old sizes, new size, expected new size)
    let check = |replicas, surge: IntOrPercent, old: &[i64], new: i64, expected: i64| {
        let p = rolling(replicas, surge, Int(0));
        let mut all: Vec<Counts> = old.iter().map(|n| rs("old", "t", *n, *n)).collect();
        all.push(rs("new", "t", new, 0));
        assert_eq!(
            new_rs_new_replicas(&p, &all, new),
            expected,
            "replicas {replicas}, surge {surge:?}, old {old:?}, new {new}"
        );
    };
    // TestNewRSNewReplicas's cases.
    check(1, Int(1), &[5], 0, 0);
    check(6, Int(3), &[4], 2, 5);
    check(6, Int(3), &[0], 2, 6);
    // Surge resolved against replicas, rounded up.
    check(3, Percent(25), &[3], 0, 1);
    check(10, Percent(25), &[10], 0, 3);
    check(10, Percent(25), &[10], 3, 3);
    check(10, Percent(25), &[7], 3, 6);
    // Never beyond replicas.
    check(3, Int(5), &[0], 1, 3);
    let mut p = rolling(4, Int(1), Int(1));
    p.strategy = Strategy::Recreate;
    assert_eq!(new_rs_new_replicas(&p, &[rs("old", "t", 4, 4)], 0), 4);
}

#[test]
fn old_replicasets_shrink_while_enough_stay_available() {
    // TestDeploymentController_reconcileOldReplicaSets: 10 replicas,
    // maxSurge 0. (maxUnavailable, old size, new size, old ready, new
    // ready, expected old size when scaled)
    let check = |unavailable, old: i64, new: i64, old_ready, new_ready, expected: Option<i64>| {
        let p = rolling(10, Int(0), Int(unavailable));
        let got = scale_down_old(
            &p,
            &[rs("old", "t", old, old_ready)],
            &rs("new", "t", new, new_ready),
        );
        let want: Vec<(usize, i64)> = expected.into_iter().map(|n| (0, n)).collect();
        assert_eq!(
            got, want,
            "maxUnavailable {unavailable}, old {old}/{old_ready}, new {new}/{new_ready}"
        );
    };
    check(0, 10, 0, 10, 0, Some(9));
    check(2, 10, 0, 10, 0, Some(8));
    // Unhealthy old replicas are cleaned up first.
    check(2, 10, 0, 8, 0, Some(8));
    check(2, 10, 0, 9, 0, Some(8));
    // Unavailable new pods do not let old ones go.
    check(2, 8, 2, 8, 0, None);
    check(2, 8, 2, 8, 2, Some(6));
    check(0, 0, 10, 0, 10, None);
}

#[test]
fn scaling_down_takes_the_oldest_replicasets_first() {
    let p = rolling(4, Int(0), Int(2));
    let old = [
        rs("b", "2026-01-02T00:00:00Z", 2, 2),
        rs("a", "2026-01-01T00:00:00Z", 2, 2),
    ];
    let got = scale_down_old(&p, &old, &rs("new", "t", 0, 0));
    assert_eq!(got, vec![(1, 0)]);
}

#[test]
fn history_beyond_the_limit_is_pruned_lowest_revision_first() {
    let mut p = rolling(1, Int(1), Int(0));
    p.revision_history_limit = Some(1);
    let with = |revision, spec, replicas| Counts {
        revision,
        spec_replicas: spec,
        replicas,
        ..Counts::default()
    };
    assert_eq!(
        prune(&p, &[with(2, 0, 0), with(1, 0, 0), with(3, 0, 0)]),
        vec![1, 0]
    );
    // Not while it still has pods or is being scaled.
    assert_eq!(
        prune(&p, &[with(1, 0, 1), with(2, 0, 0)]),
        Vec::<usize>::new()
    );
    assert_eq!(
        prune(&p, &[with(1, 1, 0), with(2, 0, 0)]),
        Vec::<usize>::new()
    );
    p.revision_history_limit = None;
    assert_eq!(
        prune(&p, &[with(1, 0, 0), with(2, 0, 0)]),
        Vec::<usize>::new()
    );
    p.revision_history_limit = Some(0);
    assert_eq!(prune(&p, &[with(1, 0, 0)]), vec![0]);
}

fn status(updated: i64, replicas: i64, available: i64, generation: i64) -> StatusCounts {
    StatusCounts {
        observed_generation: generation,
        replicas,
        updated_replicas: updated,
        ready_replicas: available,
        available_replicas: available,
        unavailable_replicas: 0,
    }
}

#[test]
fn complete_and_progressing_as_upstream() {
    // TestDeploymentComplete.
    let p = rolling(5, Int(1), Int(0));
    assert!(!status(5, 5, 4, 1).complete(&p));
    assert!(status(5, 5, 5, 1).complete(&p));
    assert!(!status(5, 6, 5, 1).complete(&p));
    assert!(!status(4, 5, 5, 1).complete(&p));
    assert!(!status(5, 5, 5, 0).complete(&p));
    // TestDeploymentProgressing.
    let before = status(1, 6, 4, 1);
    assert!(status(2, 6, 4, 1).progressing(&before));
    assert!(status(2, 7, 4, 1).progressing(&before), "updated grew");
    assert!(
        status(1, 5, 4, 1).progressing(&before),
        "fewer old replicas"
    );
    assert!(status(1, 6, 5, 1).progressing(&before), "more available");
    assert!(!status(1, 6, 4, 1).progressing(&before));
    assert!(
        !status(1, 7, 4, 1).progressing(&before),
        "more old replicas"
    );
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
}

fn progressing(reason: &str, updated_at: i64) -> Value {
    json!({"conditions": [new_condition(PROGRESSING, "True", reason, "m", &timestamp(at(updated_at)))]})
}

#[test]
fn timed_out_after_the_deadline_since_the_last_update() {
    // TestDeploymentTimedOut: deadline 10 s.
    let mut p = rolling(1, Int(1), Int(0));
    p.progress_deadline_seconds = Some(10);
    let check = |p: &Params, status: &Value, now: i64, expected: bool| {
        assert_eq!(timed_out(p, status, at(now)), expected, "{status} at {now}");
    };
    check(&p, &progressing(RS_UPDATED, 0), 5, false);
    check(&p, &progressing(RS_UPDATED, 0), 10, false);
    check(&p, &progressing(RS_UPDATED, 0), 11, true);
    check(&p, &progressing(NEW_RS_AVAILABLE, 0), 100, false);
    check(&p, &progressing(TIMED_OUT, 0), 1, true);
    check(&p, &json!({}), 100, false);
    p.progress_deadline_seconds = None;
    check(&p, &progressing(RS_UPDATED, 0), 100, false);
}

fn reason<'a>(status: &'a Value, ty: &str) -> (&'a str, &'a str) {
    let c = condition(status, ty).unwrap_or_else(|| panic!("no {ty} in {status}"));
    (str_at(c, "/status"), str_at(c, "/reason"))
}

#[test]
fn rollout_conditions_follow_progress_and_the_deadline() {
    let mut p = rolling(3, Int(1), Int(0));
    p.progress_deadline_seconds = Some(10);
    let created = json!({"conditions": [new_condition(PROGRESSING, "True", NEW_RS_CREATED, "m", &timestamp(at(0)))],
        "replicas": 3, "updatedReplicas": 0, "availableReplicas": 3, "readyReplicas": 3});

    // A new pod appeared: progress, the update time moves, the transition
    // time stays.
    let s = rollout_status(
        &p,
        &created,
        status(1, 4, 3, 1),
        Some("web-1"),
        "web",
        at(5),
    );
    assert_eq!(reason(&s, PROGRESSING), ("True", RS_UPDATED));
    let c = condition(&s, PROGRESSING).unwrap();
    assert_eq!(str_at(c, "/lastUpdateTime"), timestamp(at(5)));
    assert_eq!(str_at(c, "/lastTransitionTime"), timestamp(at(0)));
    assert_eq!(
        str_at(c, "/message"),
        r#"ReplicaSet "web-1" is progressing."#
    );
    assert_eq!(reason(&s, AVAILABLE), ("True", MIN_AVAILABLE));

    // Nothing more happens: within the deadline nothing changes, past it
    // the rollout has timed out.
    let same = rollout_status(&p, &s, status(1, 4, 3, 1), Some("web-1"), "web", at(14));
    assert_eq!(same["conditions"], s["conditions"]);
    let late = rollout_status(&p, &s, status(1, 4, 3, 1), Some("web-1"), "web", at(16));
    assert_eq!(reason(&late, PROGRESSING), ("False", TIMED_OUT));
    assert_eq!(
        str_at(condition(&late, PROGRESSING).unwrap(), "/message"),
        r#"ReplicaSet "web-1" has timed out progressing."#
    );
    assert_eq!(deadline_check(&p, &late, at(16)), None);
    assert_eq!(
        deadline_check(&p, &s, at(6)),
        Some(std::time::Duration::from_secs(10))
    );

    // Complete: NewReplicaSetAvailable, and it stays so.
    let done = rollout_status(&p, &s, status(3, 3, 3, 1), Some("web-1"), "web", at(20));
    assert_eq!(reason(&done, PROGRESSING), ("True", NEW_RS_AVAILABLE));
    assert_eq!(
        str_at(condition(&done, PROGRESSING).unwrap(), "/message"),
        r#"ReplicaSet "web-1" has successfully progressed."#
    );
    let later = rollout_status(&p, &done, status(3, 3, 2, 1), Some("web-1"), "web", at(900));
    assert_eq!(reason(&later, PROGRESSING), ("True", NEW_RS_AVAILABLE));
    assert_eq!(reason(&later, AVAILABLE), ("False", MIN_UNAVAILABLE));
    assert_eq!(later["availableReplicas"], 2);

    // Without a deadline there is no Progressing condition.
    p.progress_deadline_seconds = None;
    let none = rollout_status(
        &p,
        &created,
        status(1, 4, 3, 1),
        Some("web-1"),
        "web",
        at(5),
    );
    assert!(condition(&none, PROGRESSING).is_none(), "{none}");
}

#[test]
fn status_counts_sum_the_replicasets() {
    let p = rolling(3, Int(1), Int(0));
    let mut old = rs("old", "t", 2, 2);
    old.replicas = 3;
    let new = rs("new", "t", 2, 1);
    let s = StatusCounts::of(&p, &[old, new.clone()], Some(&new));
    assert_eq!(
        s,
        StatusCounts {
            observed_generation: 1,
            replicas: 5,
            updated_replicas: 2,
            ready_replicas: 3,
            available_replicas: 3,
            unavailable_replicas: 1,
        }
    );
}

// A rollout over the in-memory store: the controllers run, and pods are
// made Ready by hand as a node would report them.

fn registry() -> Registry {
    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    r.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))
        .unwrap();
    r
}

fn deployment(strategy: Value, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    })
}

fn pass(r: &Registry, now: DateTime<Utc>) {
    reconcile(r, now).unwrap();
    super::super::replicaset::reconcile(r, now).unwrap();
}

/// Makes every pod that is not terminating Ready (and finishes the
/// deletion of terminating ones, as nodes do once they have drained).
fn nodes_report(r: &Registry, now: DateTime<Utc>, ready_image: &str) {
    for pod in r.list_all(Kind::Pod, "default").unwrap() {
        let key = key_of_value(Kind::Pod, &pod);
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            r.delete(&key, Some(0), "").unwrap();
            continue;
        }
        if str_at(&pod, "/status/phase") == "Running" {
            continue;
        }
        let mut pod = pod;
        pod["spec"]["nodeName"] = json!("node-1");
        let pod = r.update(pod).unwrap();
        let ready = str_at(&pod, "/spec/containers/0/image") == ready_image;
        let mut with = pod.clone();
        with["status"] = json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": timestamp(now)}]});
        if ready {
            r.update_status(with).unwrap();
        }
    }
}

fn get(r: &Registry) -> Value {
    r.must_get(&ObjectKey::new(Kind::Deployment, "default", "web"))
        .unwrap()
}

fn replicasets(r: &Registry) -> Vec<Value> {
    r.list_all(Kind::ReplicaSet, "default").unwrap()
}

use podnet_proto::model::ObjectKey;

#[test]
fn a_rolling_update_with_max_unavailable_zero_keeps_three_available() {
    let r = registry();
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    r.create(deployment(strategy, "v1")).unwrap();
    let mut now = at(0);
    for _ in 0..6 {
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    pass(&r, now);
    let d = get(&r);
    assert_eq!(d["status"]["availableReplicas"], 3, "{d}");
    assert_eq!(
        str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "1"
    );
    assert_eq!(
        reason(&d["status"], PROGRESSING),
        ("True", NEW_RS_AVAILABLE)
    );

    let mut d = get(&r);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
    d["metadata"]["annotations"]["team"] = json!("a");
    r.update(d).unwrap();
    let mut most = 0;
    for _ in 0..40 {
        now += chrono::Duration::seconds(1);
        pass(&r, now);
        let d = get(&r);
        let pods = r.list_all(Kind::Pod, "default").unwrap();
        most = most.max(pods.len());
        assert!(
            pods.len() <= 4,
            "never more than replicas + maxSurge: {}",
            pods.len()
        );
        let available = d["status"]["availableReplicas"].as_i64().unwrap();
        assert!(available >= 3, "fell to {available} available: {d}");
        nodes_report(&r, now, "v2");
    }
    assert_eq!(most, 4, "the surge was used");
    let d = get(&r);
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
    assert_eq!(d["status"]["replicas"], 3, "{d}");
    assert_eq!(
        str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "2"
    );
    assert_eq!(
        reason(&d["status"], PROGRESSING),
        ("True", NEW_RS_AVAILABLE)
    );
    let sets = replicasets(&r);
    assert_eq!(sets.len(), 2);
    for rs in &sets {
        let image = str_at(rs, "/spec/template/spec/containers/0/image");
        let (revision, size) = if image == "v2" { ("2", 3) } else { ("1", 0) };
        assert_eq!(
            str_at(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1revision"
            ),
            revision
        );
        assert_eq!(rs["spec"]["replicas"], size);
        // The Deployment's own annotations go to its new ReplicaSet only.
        let team = if image == "v2" { "a" } else { "" };
        assert_eq!(str_at(rs, "/metadata/annotations/team"), team);
        assert_eq!(
            str_at(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1desired-replicas"
            ),
            "3"
        );
        assert_eq!(
            str_at(
                rs,
                "/metadata/annotations/deployment.kubernetes.io~1max-replicas"
            ),
            "4"
        );
    }
    for pod in r.list_all(Kind::Pod, "default").unwrap() {
        assert_eq!(str_at(&pod, "/spec/containers/0/image"), "v2");
    }

    // Back to the first template: its ReplicaSet comes back as revision 3.
    let mut d = get(&r);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v1");
    r.update(d).unwrap();
    for _ in 0..40 {
        now += chrono::Duration::seconds(1);
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    assert_eq!(replicasets(&r).len(), 2, "no third ReplicaSet");
    let d = get(&r);
    assert_eq!(
        str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "3"
    );
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
}

#[test]
fn a_new_replicaset_that_never_gets_ready_stalls_and_times_out() {
    let r = registry();
    let mut d = deployment(json!({"type": "RollingUpdate"}), "v1");
    d["spec"]["progressDeadlineSeconds"] = json!(10);
    r.create(d).unwrap();
    let mut now = at(0);
    for _ in 0..6 {
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    let mut d = get(&r);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("broken");
    r.update(d).unwrap();
    for _ in 0..30 {
        now += chrono::Duration::seconds(1);
        pass(&r, now);
        // Only v1 pods ever get Ready.
        nodes_report(&r, now, "v1");
    }
    let d = get(&r);
    // 25% of 3: one surge pod, none unavailable: it stalls at one.
    assert_eq!(d["status"]["updatedReplicas"], 1, "{d}");
    assert_eq!(d["status"]["availableReplicas"], 3, "{d}");
    assert_eq!(reason(&d["status"], PROGRESSING), ("False", TIMED_OUT));
    assert_eq!(reason(&d["status"], AVAILABLE), ("True", MIN_AVAILABLE));
}

#[test]
fn recreate_waits_for_every_old_pod_to_be_gone() {
    let r = registry();
    r.create(deployment(json!({"type": "Recreate"}), "v1"))
        .unwrap();
    let now = at(0);
    for _ in 0..6 {
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    let mut d = get(&r);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
    r.update(d).unwrap();
    // Old pods terminating: no new ReplicaSet yet.
    pass(&r, now);
    pass(&r, now);
    assert_eq!(replicasets(&r).len(), 1);
    let pods = r.list_all(Kind::Pod, "default").unwrap();
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p.pointer("/metadata/deletionTimestamp").is_some())
    );
    for _ in 0..6 {
        nodes_report(&r, now, "v2");
        pass(&r, now);
    }
    let d = get(&r);
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
    assert_eq!(replicasets(&r).len(), 2);
}

#[test]
fn a_paused_deployment_does_not_roll_out_until_resumed() {
    let r = registry();
    r.create(deployment(json!({"type": "RollingUpdate"}), "v1"))
        .unwrap();
    let now = at(0);
    for _ in 0..6 {
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    let mut d = get(&r);
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
    r.update(d).unwrap();
    for _ in 0..3 {
        pass(&r, now);
    }
    assert_eq!(replicasets(&r).len(), 1);
    let d = get(&r);
    assert_eq!(
        reason(&d["status"], PROGRESSING),
        ("Unknown", "DeploymentPaused")
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );

    let mut d = get(&r);
    d["spec"]["paused"] = json!(false);
    r.update(d).unwrap();
    pass(&r, now);
    assert_eq!(replicasets(&r).len(), 2);
    let d = get(&r);
    // Resumed, then the new ReplicaSet was created and the rollout moves.
    assert_eq!(reason(&d["status"], PROGRESSING).0, "True", "{d}");
    assert_eq!(
        str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "2"
    );
}

#[test]
fn scaling_events_are_spread_over_the_active_replicasets_in_proportion() {
    // TestScale (sync_test.go): the Deployment goes from `before` to
    // `replicas` (with surges), the ReplicaSets are given oldest first,
    // the new one (if any) last.
    let check = |name: &str,
                 before: (i64, i64),
                 after: (i64, i64),
                 sizes: &[i64],
                 has_new: bool,
                 expected: &[i64]| {
        let mut p = rolling(after.0, Int(after.1), Int(0));
        p.generation = 2;
        let all: Vec<Counts> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| Counts {
                name: format!("foo-v{}", i + 1),
                created: format!("2026-01-0{}T00:00:00Z", i + 1),
                spec_replicas: *size,
                replicas: *size,
                available: *size,
                desired_annotation: Some(before.0),
                max_annotation: Some(before.0 + before.1),
                ..Counts::default()
            })
            .collect();
        let new = has_new.then(|| all.len() - 1);
        let mut got: Vec<i64> = all.iter().map(|rs| rs.spec_replicas).collect();
        for (i, size) in plan::scale(&p, &all, new, before.0) {
            got[i] = size;
        }
        assert_eq!(got, expected, "{name}");
    };
    check("10 -> 12", (10, 0), (12, 0), &[10], true, &[12]);
    check("10 -> 5", (10, 0), (5, 0), &[10], true, &[5]);
    check("5 -> 10", (5, 0), (10, 0), &[3, 2], true, &[6, 4]);
    check("5 -> 3", (5, 0), (3, 0), &[3, 2], true, &[2, 1]);
    check("9 -> 4", (9, 0), (4, 0), &[1, 8], true, &[0, 4]);
    check("7 -> 10", (7, 0), (10, 0), &[2, 3, 2], true, &[3, 4, 3]);
    check("13 -> 8", (13, 0), (8, 0), &[3, 8, 2], true, &[2, 5, 1]);
    check(
        "leftover 3 -> 4",
        (3, 0),
        (4, 0),
        &[1, 1, 1],
        true,
        &[1, 1, 2],
    );
    check(
        "leftover 3 -> 2",
        (3, 0),
        (2, 0),
        &[1, 1, 1],
        true,
        &[0, 1, 1],
    );
    check("no new rs 4 -> 5", (4, 0), (5, 0), &[2, 2], false, &[2, 3]);
    check("6 -> 0", (6, 0), (0, 0), &[1, 2, 3], true, &[0, 0, 0]);
    check("0 -> 6", (6, 0), (6, 0), &[0, 0, 0], true, &[0, 0, 6]);
    check("surge 10 -> 20", (10, 2), (20, 2), &[6, 6], true, &[11, 11]);
    check("surge and size", (10, 3), (50, 6), &[8, 5], true, &[34, 22]);
    check(
        "size and template",
        (10, 0),
        (14, 0),
        &[3, 7],
        false,
        &[4, 10],
    );
}

#[test]
fn a_saturated_new_replicaset_leaves_old_ones_nothing_and_a_broken_one_leaves_them_be() {
    let p = rolling(2, Int(1), Int(1));
    let with = |size: i64, available: i64| Counts {
        spec_replicas: size,
        available,
        desired_annotation: Some(2),
        ..Counts::default()
    };
    assert_eq!(
        plan::scale(&p, &[with(1, 1), with(2, 2)], Some(1), 3),
        vec![(0, 0)]
    );
    // Not available: proportional, and nothing to add.
    assert_eq!(
        plan::scale(&p, &[with(1, 1), with(2, 0)], Some(1), 3),
        vec![(1, 2), (0, 1)]
    );
    assert!(!is_scaling_event(&p, &[with(1, 1), with(2, 0)]));
    let mut p3 = p;
    p3.replicas = 3;
    assert!(is_scaling_event(&p3, &[with(1, 1), with(2, 0)]));
    // A ReplicaSet scaled to 0 does not count.
    assert!(!is_scaling_event(&p3, &[with(0, 0)]));
}

#[test]
fn scaling_mid_rollout_goes_on_with_the_new_size() {
    let r = registry();
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    r.create(deployment(strategy, "v1")).unwrap();
    let mut now = at(0);
    for _ in 0..6 {
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    let mut d = get(&r);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
    r.update(d).unwrap();
    // v2 pods never get Ready: the rollout stalls at 3 old + 1 new.
    for _ in 0..4 {
        now += chrono::Duration::seconds(1);
        pass(&r, now);
        nodes_report(&r, now, "v1");
    }
    let sizes = |r: &Registry| {
        let mut s: Vec<(String, i64)> = replicasets(r)
            .iter()
            .map(|rs| {
                (
                    str_at(rs, "/spec/template/spec/containers/0/image").to_string(),
                    rs["spec"]["replicas"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        s.sort();
        s
    };
    assert_eq!(sizes(&r), [("v1".into(), 3), ("v2".into(), 1)]);
    let mut d = get(&r);
    d["spec"]["replicas"] = json!(6);
    r.update(d).unwrap();
    now += chrono::Duration::seconds(1);
    pass(&r, now);
    // 3:1 of 7 allowed: 3*7/4 = 5.25 -> 5, 1*7/4 = 1.75 -> 2.
    assert_eq!(sizes(&r), [("v1".into(), 5), ("v2".into(), 2)]);
    for rs in replicasets(&r) {
        assert_eq!(
            str_at(
                &rs,
                "/metadata/annotations/deployment.kubernetes.io~1desired-replicas"
            ),
            "6"
        );
    }
    // No longer a scaling event: the rollout resumes and, once v2 pods
    // get Ready, completes at 6.
    for _ in 0..40 {
        now += chrono::Duration::seconds(1);
        pass(&r, now);
        nodes_report(&r, now, "v2");
    }
    assert_eq!(sizes(&r), [("v1".into(), 0), ("v2".into(), 6)]);
    let d = get(&r);
    assert_eq!(
        reason(&d["status"], PROGRESSING),
        ("True", NEW_RS_AVAILABLE)
    );
}

#[test]
fn a_revived_replicaset_keeps_its_old_revisions() {
    let check = |current: Option<&str>,
                 history: Option<&str>,
                 revision,
                 expected: Option<(&str, Option<&str>)>| {
        let got = raise_revision(current, history, revision);
        let got = got.as_ref().map(|(r, h)| (r.as_str(), h.as_deref()));
        assert_eq!(got, expected, "{current:?} {history:?} to {revision}");
    };
    check(None, None, 1, Some(("1", None)));
    check(Some("1"), None, 1, None);
    check(Some("3"), None, 2, None);
    check(Some("1"), None, 3, Some(("3", Some("1"))));
    check(Some("3"), Some("1"), 5, Some(("5", Some("1,3"))));
    check(Some("x"), None, 5, None);
    // The oldest go when the history would grow too long.
    let long = vec!["1234567890"; 181].join(",");
    assert_eq!(long.len(), 1990);
    let (_, history) = raise_revision(Some("12345678901"), Some(&long), 12_345_678_902).unwrap();
    let history = history.unwrap();
    assert!(
        history.len() <= MAX_REVISION_HISTORY_CHARS,
        "{}",
        history.len()
    );
    assert!(history.ends_with(",1234567890,12345678901"), "{history}");
    assert_eq!(history.split(',').count(), 181);
}
