//! The garbage collector: deletes dependents whose owners are gone, as
//! upstream's (pkg/controller/garbagecollector) does with background
//! propagation.
//!
//! The registry already deletes an object's dependents when the object is
//! deleted (cascading deletion). That cannot see a dependent created while
//! the delete runs: a ReplicaSet controller pass that listed a ReplicaSet
//! before it was deleted may still create pods owned by it. Each workload
//! pass therefore also collects, among Pods, ReplicaSets and
//! EndpointSlices, those whose every ownerReference names an object that
//! does not exist (or exists with another uid: the owner was deleted and
//! another took its name). An ownerReference to a kind podnet does not
//! serve cannot be checked and keeps its dependent, as upstream keeps
//! dependents of owners it cannot resolve.
//!
//! Deliberately not here: foreground deletion (`foregroundDeletion`
//! finalizer, blockOwnerDeletion) and orphan propagation; every deletion is
//! background.

use std::collections::HashMap;

use podnet_proto::model::{Kind, ObjectKey, str_at};
use serde_json::Value;

use super::key_of_value;
use crate::registry::{ApiError, Registry};
use crate::store::StoreError;

/// The kinds whose objects have owners in podnet.
const DEPENDENT_KINDS: [Kind; 3] = [Kind::ReplicaSet, Kind::Pod, Kind::EndpointSlice];

/// Where the collector looks owners up. An owner being deleted still
/// exists: its dependents go when it is gone.
pub trait Owners {
    /// The uid of the object at `key`, `None` when there is none.
    fn uid(&mut self, key: &ObjectKey) -> Result<Option<String>, ApiError>;
}

/// True when `object` has owners and every one of them is gone.
pub fn is_garbage(object: &Value, owners: &mut impl Owners) -> Result<bool, ApiError> {
    let Some(refs) = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return Ok(false);
    };
    for r in refs {
        let Ok(kind) = Kind::from_type(str_at(r, "/apiVersion"), str_at(r, "/kind")) else {
            // Not a kind podnet serves: it cannot be shown to be gone.
            return Ok(false);
        };
        let namespace = if kind.namespaced() {
            str_at(object, "/metadata/namespace")
        } else {
            ""
        };
        let key = ObjectKey::new(kind, namespace, str_at(r, "/name"));
        if owners.uid(&key)?.as_deref() == Some(str_at(r, "/uid")) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Owners read from the registry, each at most once a pass.
struct Live<'a> {
    registry: &'a Registry,
    seen: HashMap<ObjectKey, Option<String>>,
}

impl Owners for Live<'_> {
    fn uid(&mut self, key: &ObjectKey) -> Result<Option<String>, ApiError> {
        if let Some(uid) = self.seen.get(key) {
            return Ok(uid.clone());
        }
        let uid = self
            .registry
            .get(key)?
            .map(|o| str_at(&o, "/metadata/uid").to_string());
        self.seen.insert(key.clone(), uid.clone());
        Ok(uid)
    }
}

/// One collection pass; returns how many objects it deleted.
pub fn collect(registry: &Registry) -> Result<usize, ApiError> {
    let mut owners = Live {
        registry,
        seen: HashMap::new(),
    };
    let mut deleted = 0;
    for kind in DEPENDENT_KINDS {
        for object in registry.list_all(kind, "")? {
            // A dependent being deleted is already on its way (a pod its
            // node is stopping).
            if object.pointer("/metadata/deletionTimestamp").is_some()
                || !is_garbage(&object, &mut owners)?
            {
                continue;
            }
            let key = key_of_value(kind, &object);
            // Only this very object: one of the same name made since is
            // not garbage of the owner this one had.
            match registry.delete(&key, None, str_at(&object, "/metadata/resourceVersion")) {
                Ok(_) => {
                    deleted += 1;
                    tracing::info!(object = %key, "deleted: every owner is gone");
                }
                // Changed or gone since the list: the next pass decides again.
                Err(ApiError::NotFound { .. })
                | Err(ApiError::Conflict { .. })
                | Err(ApiError::Store(StoreError::Conflict { .. })) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
