//! The ReplicaSet controller: keeps `spec.replicas` live pods stamped from
//! the template, deleting the least valuable extras first (unscheduled,
//! then not ready, then newest), and reports counts in status.
//!
//! Orphan adoption by selector is not emulated: a ReplicaSet owns only the
//! pods it created.

use podnet_proto::model::Kind;
use serde_json::{Value, json};

use super::{key_of_value, owned_by, owner_reference, pod_is_ready, random_suffix, write_status};
use crate::registry::{ApiError, Registry};
use podnet_proto::model::str_at;

fn is_active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

pub fn reconcile(registry: &Registry) -> Result<(), ApiError> {
    let pods = registry.list_all(Kind::Pod, "")?;
    for rs in registry.list_all(Kind::ReplicaSet, "")? {
        if rs.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let want = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let mut active: Vec<&Value> = owned_by(&pods, &rs)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        if active.len() < want {
            for _ in active.len()..want {
                create_pod(registry, &rs)?;
            }
        } else if active.len() > want {
            // Least valuable first, as the upstream controller ranks them.
            active.sort_by_key(|p| {
                (
                    !str_at(p, "/spec/nodeName").is_empty(),
                    pod_is_ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            for pod in &active[..active.len() - want] {
                match registry.delete(&key_of_value(Kind::Pod, pod), None, "") {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            active.drain(..active.len() - want);
        }
        let ready = active.iter().filter(|p| pod_is_ready(p)).count();
        let status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": active.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        write_status(registry, &rs, status)?;
    }
    Ok(())
}

fn create_pod(registry: &Registry, rs: &Value) -> Result<(), ApiError> {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
    let name = format!("{}-{}", str_at(rs, "/metadata/name"), random_suffix(5));
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(str_at(rs, "/metadata/namespace"));
    metadata["ownerReferences"] = json!([owner_reference(rs)]);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    match registry.create(pod) {
        Ok(_) => Ok(()),
        // A name collision; the next pass tries another suffix.
        Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
