//! Which objects are garbage, and a collection pass over the in-memory
//! store.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::controllers::owner_reference;
use crate::store::{MemBackend, Storage};

struct Map(HashMap<ObjectKey, String>);

impl Owners for Map {
    fn uid(&mut self, key: &ObjectKey) -> Result<Option<String>, ApiError> {
        Ok(self.0.get(key).cloned())
    }
}

fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true})
}

fn check(refs: Option<Vec<Value>>, expected: bool) {
    let live = Map(HashMap::from([
        (
            ObjectKey::new(Kind::ReplicaSet, "default", "web-1"),
            "rs-uid".to_string(),
        ),
        (
            ObjectKey::new(Kind::Node, "", "node-1"),
            "node-uid".to_string(),
        ),
    ]));
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"}});
    if let Some(refs) = &refs {
        pod["metadata"]["ownerReferences"] = json!(refs);
    }
    let mut owners = live;
    assert_eq!(
        is_garbage(&pod, &mut owners).unwrap(),
        expected,
        "ownerReferences {refs:?}"
    );
}

#[test]
fn garbage_is_a_dependent_whose_every_owner_is_gone() {
    let rs = |name: &str, uid: &str| owner_ref("apps/v1", "ReplicaSet", name, uid);
    // No owners: never garbage.
    check(None, false);
    check(Some(vec![]), false);
    // The owner exists with that uid.
    check(Some(vec![rs("web-1", "rs-uid")]), false);
    // Gone, or another object under its name.
    check(Some(vec![rs("web-2", "rs-uid")]), true);
    check(Some(vec![rs("web-1", "old-uid")]), true);
    // One owner left is enough to keep it.
    check(Some(vec![rs("web-2", "x"), rs("web-1", "rs-uid")]), false);
    check(Some(vec![rs("web-2", "x"), rs("web-3", "y")]), true);
    // A cluster-scoped owner is looked up without a namespace.
    check(
        Some(vec![owner_ref("v1", "Node", "node-1", "node-uid")]),
        false,
    );
    check(
        Some(vec![owner_ref("v1", "Node", "node-2", "node-uid")]),
        true,
    );
    // A kind podnet does not serve cannot be shown gone.
    check(
        Some(vec![owner_ref("batch/v1", "Job", "j", "job-uid")]),
        false,
    );
    check(
        Some(vec![owner_ref("apps/v1beta1", "ReplicaSet", "web-1", "x")]),
        false,
    );
}

#[test]
fn a_pass_deletes_orphans_and_keeps_owned_objects() {
    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    r.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))
        .unwrap();
    let rs = r
        .create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}}}}))
        .unwrap();
    let pod = |name: &str, owner: &Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                "ownerReferences": [owner_reference(owner)]},
            "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}})
    };
    r.create(pod("owned", &rs)).unwrap();
    let mut gone = rs.clone();
    gone["metadata"]["name"] = json!("deleted");
    gone["metadata"]["uid"] = json!("deleted-uid");
    r.create(pod("orphan", &gone)).unwrap();
    let mut replaced = rs.clone();
    replaced["metadata"]["uid"] = json!("an-earlier-web");
    r.create(pod("orphan-of-an-earlier-web", &replaced))
        .unwrap();
    r.create(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "standalone", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}}))
        .unwrap();

    assert_eq!(collect(&r).unwrap(), 2);
    let mut left: Vec<String> = r
        .list_all(Kind::Pod, "default")
        .unwrap()
        .iter()
        .map(|p| str_at(p, "/metadata/name").to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["owned", "standalone"]);
    assert_eq!(collect(&r).unwrap(), 0, "a second pass finds nothing");
}
