//! What the Kubernetes API server does to a create or update body before it
//! is stored, as a pure function: decode it into its typed model (type
//! errors named by field path), fill in the defaults the API server fills
//! in, check every field and report all the problems at once (the 422
//! `Pod "web" is invalid: ...` answer), and warn about fields that are
//! accepted but do nothing in podnet (unknown to Kubernetes, or real but not
//! emulated).
//!
//! Deliberately not here: server-owned metadata (uid, resourceVersion,
//! generation, creationTimestamp are left as given, never generated),
//! anything that needs the store (does the namespace or the node exist, is
//! the name taken), admission plugins (quotas, limit ranges, pod security)
//! and the create-time reset of a pod's status. [`validate_update`] adds
//! the rules that compare an update with the stored object.
//!
//! Podnet runs httpGet and tcpSocket probes only: `exec` and `grpc` probes
//! are rejected (see `pod`). What a Service's IP families may be depends
//! on the cluster's, so the registry decides it (`registry::alloc`).

mod apps;
mod cluster;
mod decode;
mod discovery;
mod event;
mod field;
mod ip;
mod meta;
mod names;
mod network_policy;
mod networking;
mod pod;
mod schema;
mod secret;
pub(crate) mod service;
mod update;

#[cfg(test)]
mod tests;

use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Event, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use podnet_proto::model::{Kind, ObjectKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use discovery::LABEL_SERVICE_NAME;
pub use field::FieldError;
pub use meta::DEFAULT_NAMESPACE;

use field::{Errors, FieldPath};

/// An object that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub key: ObjectKey,
    /// The object as the typed model has it (fields unknown to Kubernetes
    /// dropped), with defaults filled in and the namespace set (namespaced
    /// kinds) or removed (cluster-scoped ones).
    pub object: Value,
    /// Accepted but without effect: unknown fields and fields podnet does
    /// not emulate, each naming its path.
    pub warnings: Vec<String>,
}

/// The API server's 422: every invalid field of one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?} is invalid: {}", Causes(.causes))]
pub struct InvalidObject {
    /// The kind as given (`Pod`), or `Object` when there is none.
    pub kind: String,
    /// `metadata.name` as given, possibly empty.
    pub name: String,
    pub causes: Vec<FieldError>,
}

/// One cause alone, several as `[a, b]`: `errors.NewInvalid`'s aggregate.
struct Causes<'a>(&'a [FieldError]);

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, cause) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{cause}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Decodes, defaults and validates one object body.
pub fn validate(object: &Value) -> Result<Validated, InvalidObject> {
    let kind = kind_of(object)?;
    match kind {
        Kind::Pod => admit(kind, object, |pod: &mut Pod, errs| {
            meta::admit(&mut pod.metadata, kind, errs);
            pod::default_pod(pod);
            if let Some(spec) = &pod.spec {
                pod::validate_pod_spec(spec, &FieldPath::new("spec"), errs);
            }
        }),
        Kind::Deployment => admit(kind, object, |d: &mut Deployment, errs| {
            meta::admit(&mut d.metadata, kind, errs);
            apps::default_deployment(d);
            apps::validate_deployment(d, has_selector(object), errs);
        }),
        Kind::ReplicaSet => admit(kind, object, |rs: &mut ReplicaSet, errs| {
            meta::admit(&mut rs.metadata, kind, errs);
            apps::default_replica_set(rs);
            apps::validate_replica_set(rs, has_selector(object), errs);
        }),
        Kind::Namespace => admit(kind, object, |ns: &mut Namespace, errs| {
            meta::admit(&mut ns.metadata, kind, errs);
            cluster::default_namespace(ns);
        }),
        Kind::Node => admit(kind, object, |node: &mut Node, errs| {
            meta::admit(&mut node.metadata, kind, errs);
            cluster::admit_node(node, errs);
        }),
        Kind::Service => admit(kind, object, |svc: &mut Service, errs| {
            meta::admit(&mut svc.metadata, kind, errs);
            service::default_service(svc);
            service::validate_service(svc, errs);
        }),
        Kind::EndpointSlice => admit(kind, object, |slice: &mut EndpointSlice, errs| {
            meta::admit(&mut slice.metadata, kind, errs);
            discovery::default_endpoint_slice(slice);
            discovery::validate_endpoint_slice(slice, errs);
        }),
        Kind::Endpoints => admit(kind, object, |endpoints: &mut Endpoints, errs| {
            meta::admit(&mut endpoints.metadata, kind, errs);
            discovery::default_endpoints(endpoints);
            discovery::validate_endpoints(endpoints, errs);
        }),
        Kind::Ingress => admit(kind, object, |ingress: &mut Ingress, errs| {
            meta::admit(&mut ingress.metadata, kind, errs);
            networking::default_ingress(ingress);
            networking::validate_ingress(ingress, errs);
        }),
        Kind::IngressClass => admit(kind, object, |class: &mut IngressClass, errs| {
            meta::admit(&mut class.metadata, kind, errs);
            networking::default_ingress_class(class);
            networking::validate_ingress_class(class, errs);
        }),
        Kind::NetworkPolicy => admit(kind, object, |policy: &mut NetworkPolicy, errs| {
            meta::admit(&mut policy.metadata, kind, errs);
            network_policy::default_network_policy(policy);
            network_policy::validate_network_policy(policy, errs);
        }),
        Kind::Secret => admit(kind, object, |secret: &mut Secret, errs| {
            meta::admit(&mut secret.metadata, kind, errs);
            secret::default_secret(secret);
            secret::validate_secret(secret, errs);
        }),
        Kind::Event => admit(kind, object, |event: &mut Event, errs| {
            meta::admit(&mut event.metadata, kind, errs);
            event::validate_event(event, errs);
        }),
        Kind::Link => admit(kind, object, |link: &mut cluster::Link, errs| {
            meta::admit(&mut link.metadata, kind, errs);
            cluster::validate_link(link, errs);
        }),
    }
}

/// Checks an update against the stored object `old` (as `validate` returned
/// it, plus what the registry added): the fields that may not change.
pub fn validate_update(old: &Value, new: &Validated) -> Result<(), InvalidObject> {
    update::validate_update(old, new)
}

/// k8s-openapi decodes a missing selector as an empty one; Kubernetes tells
/// the two apart (`Required value` against "empty selector is invalid").
fn has_selector(object: &Value) -> bool {
    object
        .pointer("/spec/selector")
        .is_some_and(|s| !s.is_null())
}

fn given_name(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn kind_of(object: &Value) -> Result<Kind, InvalidObject> {
    let given = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (api_version, kind) = (given("apiVersion"), given("kind"));
    let invalid = |path: &str, message: String| InvalidObject {
        kind: kind.unwrap_or("Object").to_string(),
        name: given_name(object),
        causes: vec![FieldError {
            path: path.to_string(),
            message,
        }],
    };
    if !object.is_object() {
        return Err(invalid(
            "",
            "Invalid value: an object body must be a JSON object".to_string(),
        ));
    }
    let known = || {
        let types: Vec<String> = Kind::ALL
            .iter()
            .map(|k| format!("{}/{}", k.api_version(), k.as_str()))
            .collect();
        format!("podnet serves {}", types.join(", "))
    };
    // Present but not a string (`apiVersion: 1`): say so, not "Required".
    for (field, like) in [("apiVersion", r#""v1" or "apps/v1""#), ("kind", r#""Pod""#)] {
        if let Some(v) = object.get(field).filter(|v| !v.is_string() && !v.is_null()) {
            return Err(invalid(
                field,
                format!("Invalid value: {v}: {field} must be a string like {like}"),
            ));
        }
    }
    match (api_version, kind) {
        (_, None) => Err(invalid("kind", format!("Required value: {}", known()))),
        (None, Some(_)) => Err(invalid(
            "apiVersion",
            format!("Required value: {}", known()),
        )),
        (Some(api_version), Some(kind)) => Kind::from_type(api_version, kind).map_err(|e| {
            // A kind podnet serves under another apiVersion: the apiVersion
            // is what is wrong.
            let path = if Kind::ALL.iter().any(|k| k.as_str() == kind) {
                "apiVersion"
            } else {
                "kind"
            };
            invalid(path, e.to_string())
        }),
    }
}

/// Decode, run `rules` (defaults, then checks), and on success serialize
/// the result and collect the warnings.
fn admit<T>(
    kind: Kind,
    object: &Value,
    rules: impl FnOnce(&mut T, &mut Errors),
) -> Result<Validated, InvalidObject>
where
    T: DeserializeOwned + Serialize,
{
    let invalid = |causes| InvalidObject {
        kind: kind.as_str().to_string(),
        name: given_name(object),
        causes,
    };

    let decoded = decode::decode::<T>(object);
    let Some(mut typed) = decoded.value else {
        return Err(invalid(decoded.errors));
    };
    // Before defaults: what the user wrote, as far as the model knows it.
    let mut as_decoded = to_json(&typed).map_err(|e| invalid(vec![e]))?;

    let mut errs = Errors::default();
    rules(&mut typed, &mut errs);
    let mut causes = decoded.errors;
    let (errors, rule_warnings) = errs.into_parts();
    for cause in errors {
        // Errors about podnet's own stand-ins for undecodable fields are
        // noise: the decode error already names the field.
        if !decoded.patched.iter().any(|p| p.contains(&cause.path)) && !causes.contains(&cause) {
            causes.push(cause);
        }
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }

    let normalized = to_json(&typed).map_err(|e| invalid(vec![e]))?;
    if kind == Kind::Link
        && let (Some(spec), Some(fields)) = (object.get("spec"), as_decoded.as_object_mut())
    {
        // LinkSpec decodes with deny_unknown_fields, so its input is known
        // as written; its serialization omits `partition: false`, which the
        // diff would otherwise call unknown.
        fields.insert("spec".into(), spec.clone());
    }
    let mut warnings = schema::warnings(kind, object, &as_decoded);
    warnings.extend(rule_warnings);
    let str_at = |pointer: &str| {
        normalized
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let key = ObjectKey::new(
        kind,
        str_at("/metadata/namespace"),
        str_at("/metadata/name"),
    );
    Ok(Validated {
        key,
        object: normalized,
        warnings,
    })
}

fn to_json(value: &impl Serialize) -> Result<Value, FieldError> {
    // Cannot fail for these models (string-keyed maps only); kept total
    // rather than panicking on a body.
    serde_json::to_value(value).map_err(|e| FieldError {
        path: String::new(),
        message: format!("Internal error: cannot encode the object: {e}"),
    })
}
