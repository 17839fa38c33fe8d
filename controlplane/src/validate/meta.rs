//! `metadata`: the object's name and namespace (defaulted and checked per
//! kind), labels, annotations and finalizers (`ValidateObjectMeta`), and the
//! smaller set of checks on a pod template's metadata.
//!
//! Server-owned fields (uid, resourceVersion, generation,
//! creationTimestamp, deletionTimestamp) are left as given: filling them in
//! is the registry's job.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podnet_proto::model::Kind;

use super::field::{Errors, FieldPath};
use super::names::{
    dns1035_label, dns1123_label, dns1123_subdomain, qualified_name, validate_annotations,
    validate_labels,
};

/// What `kubectl` and the API server assume for a namespaced object that
/// names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Defaults and validates an object's own metadata.
pub(super) fn admit(meta: &mut ObjectMeta, kind: Kind, errs: &mut Errors) {
    let path = FieldPath::new("metadata");
    if kind.namespaced() {
        let namespace = meta.namespace.get_or_insert_with(String::new);
        if namespace.is_empty() {
            *namespace = DEFAULT_NAMESPACE.to_string();
        }
        errs.invalid_each(
            &path.child("namespace"),
            namespace,
            dns1123_label(namespace),
        );
    } else {
        // The API server clears it on cluster-scoped kinds (`rest.BeforeCreate`)
        // rather than failing: kubectl sends the context's namespace anyway.
        meta.namespace = None;
    }

    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        None if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => errs.required(
            &path.child("name"),
            "name is required: podnet does not generate names from generateName",
        ),
        None => errs.required(&path.child("name"), "name is required"),
        Some(name) => {
            let rule = match kind {
                Kind::Namespace => dns1123_label(name),
                // A Service's name is a DNS label under its namespace's
                // domain, and must not look like an IP octet.
                Kind::Service => dns1035_label(name),
                _ => dns1123_subdomain(name),
            };
            errs.invalid_each(&path.child("name"), name, rule);
        }
    }

    errs.non_negative(&path.child("generation"), meta.generation);
    validate_labels(meta.labels.as_ref(), &path.child("labels"), errs);
    validate_annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
    for (i, finalizer) in meta.finalizers.iter().flatten().enumerate() {
        errs.invalid_each(
            &path.child("finalizers").index(i),
            finalizer,
            qualified_name(finalizer),
        );
    }
}

/// `ValidatePodTemplateSpec`'s metadata checks: a template has no name or
/// namespace of its own, only labels and annotations that matter.
pub(super) fn validate_template(meta: Option<&ObjectMeta>, path: &FieldPath, errs: &mut Errors) {
    let Some(meta) = meta else { return };
    validate_labels(meta.labels.as_ref(), &path.child("labels"), errs);
    validate_annotations(meta.annotations.as_ref(), &path.child("annotations"), errs);
}
