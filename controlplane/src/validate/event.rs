//! v1 Event: what controllers report about an object (`ValidateEventCreate`
//! for the core/v1 API, which old and new clients still write).

use k8s_openapi::api::core::v1::Event;

use super::field::{Errors, FieldPath};

const TYPES: &[&str] = &["Normal", "Warning"];
/// The events.k8s.io limit on `note`, applied here to `message` so an
/// event stays small.
const MESSAGE_MAX: usize = 1024;
const REASON_MAX: usize = 128;

pub(super) fn validate_event(event: &Event, errs: &mut Errors) {
    let involved = FieldPath::new("involvedObject");
    if event
        .involved_object
        .name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        errs.required(&involved.child("name"), "");
    }
    if event
        .involved_object
        .kind
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        errs.required(&involved.child("kind"), "");
    }
    let namespace = event.metadata.namespace.as_deref().unwrap_or("");
    if let Some(ns) = event.involved_object.namespace.as_deref()
        && !ns.is_empty()
        && ns != namespace
    {
        errs.invalid(
            &involved.child("namespace"),
            ns,
            "does not match event.namespace",
        );
    }
    if let Some(ty) = event.type_.as_deref()
        && !ty.is_empty()
        && !TYPES.contains(&ty)
    {
        errs.unsupported(&FieldPath::new("type"), ty, TYPES);
    }
    if event.message.as_deref().unwrap_or("").len() > MESSAGE_MAX {
        errs.too_long(&FieldPath::new("message"), MESSAGE_MAX);
    }
    if event.reason.as_deref().unwrap_or("").len() > REASON_MAX {
        errs.too_long(&FieldPath::new("reason"), REASON_MAX);
    }
}
