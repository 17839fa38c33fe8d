//! The rules an update must keep on top of being valid on its own: what may
//! not change once an object exists.
//!
//! A simplification of the API server's pod update rule (which freezes all
//! of the spec but images, tolerations and a few more): podnet freezes what
//! its nodes and controllers key on — the containers, their names and
//! ports, and the node a pod is bound to. Selectors of workloads are frozen
//! as in apps/v1, since changing one would orphan the pods it owns. A
//! Service keeps its ClusterIP (`ValidateServiceUpdate`) and an
//! EndpointSlice its addressType.
//!
//! The registry fills what an update of a Service leaves out (ClusterIP,
//! NodePorts) from the stored object before these checks, as the API
//! server does, so re-applying a manifest is not a change.

use podnet_proto::model::Kind;
use podnet_proto::model::str_at;
use serde_json::Value;

use super::field::{Errors, FieldPath};
use super::{InvalidObject, Validated};

pub(super) fn validate_update(old: &Value, new: &Validated) -> Result<(), InvalidObject> {
    let mut errs = Errors::default();
    let new_object = &new.object;
    let kind = new.key.kind;

    if old.get("kind").and_then(Value::as_str) != Some(kind.as_str()) {
        errs.invalid(&FieldPath::new("kind"), kind.as_str(), "field is immutable");
    }
    immutable(
        &mut errs,
        old,
        new_object,
        "/metadata/name",
        &FieldPath::new("metadata").child("name"),
    );
    if kind.namespaced() {
        immutable(
            &mut errs,
            old,
            new_object,
            "/metadata/namespace",
            &FieldPath::new("metadata").child("namespace"),
        );
    }

    match kind {
        Kind::Pod => pod(&mut errs, old, new_object),
        Kind::Deployment | Kind::ReplicaSet => {
            immutable(
                &mut errs,
                old,
                new_object,
                "/spec/selector",
                &FieldPath::new("spec").child("selector"),
            );
        }
        Kind::Node => {
            // `ValidateNodeUpdate`: a node's pod range is assigned once.
            let old_cidr = str_at(old, "/spec/podCIDR");
            if !old_cidr.is_empty() && str_at(new_object, "/spec/podCIDR") != old_cidr {
                errs.forbidden(
                    &FieldPath::new("spec").child("podCIDR"),
                    "node updates may not change podCIDR except from \"\" to valid",
                );
            }
        }
        Kind::Service => service(&mut errs, old, new_object),
        Kind::EndpointSlice => immutable(
            &mut errs,
            old,
            new_object,
            "/addressType",
            &FieldPath::new("addressType"),
        ),
        Kind::Namespace | Kind::Link | Kind::Endpoints => {}
        Kind::Ingress => {}
        // `ValidateNetworkPolicyUpdate` checks the new spec alone.
        Kind::NetworkPolicy => {}
        // `validateIngressClassSpecUpdate`: Ingresses are matched to their
        // controller through it.
        Kind::IngressClass => immutable(
            &mut errs,
            old,
            new_object,
            "/spec/controller",
            &FieldPath::new("spec").child("controller"),
        ),
        Kind::Event => {}
        // `ValidateSecretUpdate`. An absent `data` and an empty one are the
        // same stored map.
        Kind::Secret => {
            fn data(v: &Value) -> Option<&Value> {
                v.get("data")
                    .filter(|d| d.as_object().is_none_or(|m| !m.is_empty()))
            }
            immutable(&mut errs, old, new_object, "/type", &FieldPath::new("type"));
            let frozen = |v: &Value| v.get("immutable") == Some(&Value::Bool(true));
            if frozen(old) {
                let detail = "field is immutable when `immutable` is set";
                if !frozen(new_object) {
                    errs.forbidden(&FieldPath::new("immutable"), detail);
                }
                if data(old) != data(new_object) {
                    errs.forbidden(&FieldPath::new("data"), detail);
                }
            }
        }
    }

    if errs.is_empty() {
        Ok(())
    } else {
        Err(InvalidObject {
            kind: kind.as_str().to_string(),
            name: new.key.name.clone(),
            causes: errs.into_vec(),
        })
    }
}

fn pod(errs: &mut Errors, old: &Value, new: &Value) {
    let spec = FieldPath::new("spec");
    let containers = |v: &Value| {
        v.pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (old_containers, new_containers) = (containers(old), containers(new));
    if old_containers.len() != new_containers.len() {
        errs.forbidden(
            &spec.child("containers"),
            "pod updates may not add or remove containers",
        );
    } else {
        for (i, (o, n)) in old_containers.iter().zip(&new_containers).enumerate() {
            let path = spec.child("containers").index(i);
            immutable(errs, o, n, "/name", &path.child("name"));
            immutable(errs, o, n, "/ports", &path.child("ports"));
        }
    }
    // Binding sets nodeName once; after that the pod lives and dies there.
    let old_node = str_at(old, "/spec/nodeName");
    if !old_node.is_empty() && str_at(new, "/spec/nodeName") != old_node {
        errs.invalid(
            &spec.child("nodeName"),
            str_at(new, "/spec/nodeName"),
            "field is immutable",
        );
    }
}

/// The ClusterIP is fixed once allocated; switching to or from ExternalName
/// (which has none) releases or allocates one instead.
fn service(errs: &mut Errors, old: &Value, new: &Value) {
    let spec = FieldPath::new("spec");
    let external_name = |v: &Value| str_at(v, "/spec/type") == "ExternalName";
    let old_ip = str_at(old, "/spec/clusterIP");
    let new_ip = str_at(new, "/spec/clusterIP");
    if !external_name(old) && !external_name(new) && !old_ip.is_empty() && new_ip != old_ip {
        errs.invalid(&spec.child("clusterIP"), new_ip, "field is immutable");
    }
    let health_check = |v: &Value| {
        str_at(v, "/spec/type") == "LoadBalancer"
            && str_at(v, "/spec/externalTrafficPolicy") == "Local"
    };
    if health_check(old)
        && health_check(new)
        && old.pointer("/spec/healthCheckNodePort") != new.pointer("/spec/healthCheckNodePort")
    {
        errs.forbidden(&spec.child("healthCheckNodePort"), "field is immutable");
    }
}

fn immutable(errs: &mut Errors, old: &Value, new: &Value, pointer: &str, path: &FieldPath) {
    let new_value = new.pointer(pointer);
    if old.pointer(pointer) != new_value {
        errs.invalid(
            path,
            new_value.unwrap_or(&Value::Null),
            "field is immutable",
        );
    }
}
