//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, scaled to `spec.replicas`; older
//! ReplicaSets are scaled to zero once the new one exists.
//!
//! Rollouts are therefore Recreate-like: maxSurge/maxUnavailable pacing of a
//! RollingUpdate is not emulated yet, and neither is revision history
//! pruning.

use podnet_proto::model::{Kind, LABEL_POD_TEMPLATE_HASH};
use serde_json::{Value, json};

use super::{owned_by, owner_reference, write_status};
use crate::registry::{ApiError, Registry};
use podnet_proto::model::str_at;

const SAFE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of a pod template, encoded the way Kubernetes encodes
/// `pod-template-hash` values (no vowels).
pub fn template_hash(template: &Value) -> String {
    // serde_json's maps are ordered, so the text is canonical.
    let text = template.to_string();
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

pub fn reconcile(registry: &Registry) -> Result<(), ApiError> {
    let replicasets = registry.list_all(Kind::ReplicaSet, "")?;
    for d in registry.list_all(Kind::Deployment, "")? {
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let want = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0);
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let owned = owned_by(&replicasets, &d);
        let current = owned.iter().find(|rs| {
            rs.pointer(&format!("/metadata/labels/{LABEL_POD_TEMPLATE_HASH}"))
                .and_then(Value::as_str)
                == Some(hash.as_str())
        });
        match current {
            None => create_replicaset(registry, &d, &template, &hash, want)?,
            Some(rs) if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(want) => {
                scale(registry, rs, want)?;
            }
            Some(_) => {}
        }
        for old in owned.iter().filter(|rs| current.is_none_or(|c| c != *rs)) {
            if old.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0) {
                scale(registry, old, 0)?;
            }
        }
        let sum = |field: &str| -> i64 {
            owned
                .iter()
                .map(|rs| {
                    rs.pointer(&format!("/status/{field}"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                })
                .sum()
        };
        let updated = current
            .and_then(|rs| rs.pointer("/status/replicas"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let available = sum("availableReplicas");
        let (cond, reason, message) = if available >= want {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        let mut status = json!({
            "observedGeneration": d.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "replicas": sum("replicas"),
            "updatedReplicas": updated,
            "readyReplicas": sum("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": (want - available).max(0),
        });
        let mut st = d.get("status").cloned().unwrap_or(json!({}));
        if let Some(c) = st.get("conditions") {
            status["conditions"] = c.clone();
        }
        super::set_condition(&mut status, "Available", cond, reason, message);
        st = status;
        write_status(registry, &d, st)?;
    }
    Ok(())
}

fn scale(registry: &Registry, rs: &Value, replicas: i64) -> Result<(), ApiError> {
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(replicas);
    match registry.update(rs) {
        Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn create_replicaset(
    registry: &Registry,
    d: &Value,
    template: &Value,
    hash: &str,
    replicas: i64,
) -> Result<(), ApiError> {
    let mut template = template.clone();
    template["metadata"]["labels"][LABEL_POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    selector["matchLabels"][LABEL_POD_TEMPLATE_HASH] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[LABEL_POD_TEMPLATE_HASH] = json!(hash);
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", str_at(d, "/metadata/name")),
            "namespace": str_at(d, "/metadata/namespace"),
            "labels": labels,
            "ownerReferences": [owner_reference(d)],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    });
    match registry.create(rs) {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let b = json!({"spec": {"containers": [{"image": "x", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        let mut c = a.clone();
        c["spec"]["containers"][0]["image"] = json!("y");
        assert_ne!(template_hash(&a), template_hash(&c));
        assert!(
            template_hash(&a)
                .chars()
                .all(|ch| SAFE_CHARS.contains(&(ch as u8)))
        );
    }
}
