//! Registry semantics over the in-memory store.

use serde_json::json;

use super::*;
use crate::store::MemBackend;

mod services;

fn registry() -> Registry {
    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    r.bootstrap(&crate::registry::Addons::dns(2)).unwrap();
    r
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
           "spec": {"containers": [{"name": "c", "image": "podnet/toolbox"}]}})
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, "default", name)
}

#[test]
fn create_fills_server_metadata_and_resource_version_is_the_revision() {
    let r = registry();
    let created = r.create(pod("a")).unwrap();
    assert!(!str_at(&created, "/metadata/uid").is_empty());
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(str_at(&created, "/metadata/namespace"), "default");
    assert_eq!(
        str_at(&created, "/metadata/resourceVersion"),
        r.revision().unwrap().to_string()
    );
    assert!(matches!(
        r.create(pod("a")),
        Err(ApiError::AlreadyExists { .. })
    ));
}

#[test]
fn stale_resource_version_is_a_conflict() {
    let r = registry();
    let created = r.create(pod("a")).unwrap();
    let mut first = created.clone();
    first["metadata"]["labels"]["v"] = json!("1");
    r.update(first).unwrap();
    let mut stale = created;
    stale["metadata"]["labels"]["v"] = json!("2");
    let err = r.update(stale).unwrap_err();
    assert!(matches!(err, ApiError::Conflict { .. }), "{err}");
    assert_eq!(
        labels_of(&r.must_get(&key(Kind::Pod, "a")).unwrap())
            .get("v")
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn apply_is_all_or_nothing() {
    let r = registry();
    let before = r.revision().unwrap();
    let mut bad = pod("b");
    bad["spec"]["containers"][0]["ports"] = json!([{"containerPort": 0}]);
    let err = r.apply(vec![pod("a"), bad], false).unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.containers[0].ports[0].containerPort"),
        "{err}"
    );
    assert!(r.get(&key(Kind::Pod, "a")).unwrap().is_none());
    assert_eq!(r.revision().unwrap(), before);

    let results = r.apply(vec![pod("a"), pod("b")], false).unwrap();
    assert!(results.iter().all(|a| a.action == ApplyAction::Created));
    let again = r.apply(vec![pod("a")], false).unwrap();
    assert_eq!(again[0].action, ApplyAction::Unchanged);
}

#[test]
fn objects_need_their_namespace_unless_it_comes_in_the_same_apply() {
    let r = registry();
    let mut p = pod("a");
    p["metadata"]["namespace"] = json!("shop");
    assert!(matches!(
        r.apply(vec![p.clone()], false),
        Err(ApiError::NamespaceNotFound { .. })
    ));
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    r.apply(vec![ns, p], false).unwrap();
    r.delete(&ObjectKey::new(Kind::Namespace, "", "shop"), None, "")
        .unwrap();
    assert!(
        r.list_all(Kind::Pod, "shop").unwrap().is_empty(),
        "a namespace takes its objects with it"
    );
}

#[test]
fn bound_pods_are_deleted_gracefully_and_reapply_keeps_the_binding() {
    let r = registry();
    r.create(pod("a")).unwrap();
    let mut bound = r.must_get(&key(Kind::Pod, "a")).unwrap();
    bound["spec"]["nodeName"] = json!("node-1");
    r.update(bound).unwrap();
    // The manifest never names the node: applying it again keeps it.
    assert_eq!(
        r.apply(vec![pod("a")], false).unwrap()[0].action,
        ApplyAction::Unchanged
    );

    let marked = r.delete(&key(Kind::Pod, "a"), None, "").unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(
        r.get(&key(Kind::Pod, "a")).unwrap().is_some(),
        "the node finishes the deletion"
    );
    r.delete(&key(Kind::Pod, "a"), Some(0), "").unwrap();
    assert!(r.get(&key(Kind::Pod, "a")).unwrap().is_none());
}

#[test]
fn deleting_a_terminating_pod_again_only_shortens_its_grace_period() {
    let r = registry();
    r.create(pod("a")).unwrap();
    let mut bound = r.must_get(&key(Kind::Pod, "a")).unwrap();
    bound["spec"]["nodeName"] = json!("node-1");
    r.update(bound).unwrap();
    let at = |p: &Value| {
        chrono::DateTime::parse_from_rfc3339(str_at(p, "/metadata/deletionTimestamp")).unwrap()
    };

    let first = r.delete(&key(Kind::Pod, "a"), Some(60), "").unwrap();
    assert_eq!(first["metadata"]["deletionGracePeriodSeconds"], 60);
    // A longer or equal period changes nothing.
    for longer in [None, Some(60), Some(120)] {
        let again = r.delete(&key(Kind::Pod, "a"), longer, "").unwrap();
        assert_eq!(again["metadata"]["deletionGracePeriodSeconds"], 60);
        assert_eq!(at(&again), at(&first));
    }
    // A shorter one moves the deletionTimestamp earlier by the difference.
    let shorter = r.delete(&key(Kind::Pod, "a"), Some(10), "").unwrap();
    assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 10);
    assert_eq!(at(&first) - at(&shorter), chrono::Duration::seconds(50));
    let stored = r.must_get(&key(Kind::Pod, "a")).unwrap();
    assert_eq!(stored["metadata"]["deletionGracePeriodSeconds"], 10);
    // Zero (a forced delete) removes it.
    r.delete(&key(Kind::Pod, "a"), Some(0), "").unwrap();
    assert!(r.get(&key(Kind::Pod, "a")).unwrap().is_none());
}

#[test]
fn deleting_an_owner_deletes_its_dependents() {
    let r = registry();
    let owner = r.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "podnet/toolbox"}]}}}})).unwrap();
    let mut child = pod("rs-abcde");
    child["metadata"]["ownerReferences"] = json!([crate::controllers::owner_reference(&owner)]);
    r.create(child).unwrap();
    r.create(pod("unrelated")).unwrap();
    r.delete(&key(Kind::ReplicaSet, "rs"), None, "").unwrap();
    let left: Vec<String> = r
        .list_all(Kind::Pod, "default")
        .unwrap()
        .iter()
        .map(|p| str_at(p, "/metadata/name").to_string())
        .collect();
    assert_eq!(left, ["unrelated"]);
}

#[tokio::test]
async fn watch_sees_added_modified_deleted_with_selectors() {
    let r = registry();
    let from = r.revision().unwrap();
    let mut w = r
        .watch(
            Kind::Pod,
            "",
            LabelSelector::parse("app=x").unwrap(),
            FieldSelector::default(),
            from,
        )
        .unwrap();
    r.create(pod("a")).unwrap();
    let mut other = pod("b");
    other["metadata"]["labels"] = json!({"app": "y"});
    r.create(other).unwrap();
    let mut a = r.must_get(&key(Kind::Pod, "a")).unwrap();
    a["metadata"]["annotations"] = json!({"k": "v"});
    r.update(a).unwrap();
    r.delete(&key(Kind::Pod, "a"), None, "").unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = w.next().await.unwrap().unwrap();
        assert_eq!(
            str_at(&ev.object, "/metadata/resourceVersion"),
            ev.revision.to_string()
        );
        seen.push((ev.ty, str_at(&ev.object, "/metadata/name").to_string()));
    }
    let names: Vec<(&str, &str)> = seen.iter().map(|(t, n)| (*t, n.as_str())).collect();
    assert_eq!(names, [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]);
}
