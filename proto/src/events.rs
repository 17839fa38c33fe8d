//! Writing core/v1 Events the way client-go's event recorder does: one
//! Event per (object, type, reason, message), named after the object, whose
//! `count` and `lastTimestamp` grow when the same thing happens again, so a
//! controller that reports the same problem on every pass adds no objects.
//!
//! The object format is defined once here (`new_event`, `repeated`); the
//! control plane writes it into its own registry, everyone else through the
//! API with `record`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::model::str_at;
use crate::v1::api_client::ApiClient;
use crate::v1::{GetRequest, ObjectRequest};

/// `Normal` or `Warning`, as Kubernetes has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who reports: `source.component` (`default-scheduler`, `kubelet`, ...)
/// and, for a per-node component, `source.host` (the node's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    pub fn component(component: &'a str) -> Source<'a> {
        Source {
            component,
            host: None,
        }
    }

    pub fn on_host(component: &'a str, host: &'a str) -> Source<'a> {
        Source {
            component,
            host: Some(host),
        }
    }
}

/// The Event's name: the object's name and a hash of what happened.
pub fn event_name(object: &Value, ty: EventType, reason: &str, message: &str) -> String {
    let mut h = DefaultHasher::new();
    (
        str_at(object, "/kind"),
        str_at(object, "/metadata/uid"),
        ty.as_str(),
        reason,
        message,
    )
        .hash(&mut h);
    format!("{}.{:016x}", str_at(object, "/metadata/name"), h.finish())
}

/// Where the Event about `object` lives: the object's namespace, or
/// `default` for a cluster-scoped object.
pub fn event_namespace(object: &Value) -> &str {
    match str_at(object, "/metadata/namespace") {
        "" => "default",
        ns => ns,
    }
}

/// An Event timestamp (RFC 3339, seconds, as metav1.Time serializes).
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The first Event about `reason: message` happening to `object` at `now`.
pub fn new_event(
    object: &Value,
    ty: EventType,
    reason: &str,
    message: &str,
    source: Source<'_>,
    now: &str,
) -> Value {
    let mut src = json!({"component": source.component});
    if let Some(host) = source.host {
        src["host"] = json!(host);
    }
    let mut event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(object, ty, reason, message),
            "namespace": event_namespace(object),
        },
        "involvedObject": {
            "apiVersion": str_at(object, "/apiVersion"),
            "kind": str_at(object, "/kind"),
            "namespace": str_at(object, "/metadata/namespace"),
            "name": str_at(object, "/metadata/name"),
            "uid": str_at(object, "/metadata/uid"),
        },
        "type": ty.as_str(),
        "reason": reason,
        "message": message,
        "source": src,
        "reportingComponent": source.component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Some(host) = source.host {
        event["reportingInstance"] = json!(host);
    }
    event
}

/// The stored Event `event` happened again at `now`.
pub fn repeated(event: &mut Value, now: &str) {
    let count = event.get("count").and_then(Value::as_i64).unwrap_or(1);
    event["count"] = json!(count + 1);
    event["lastTimestamp"] = json!(now);
}

/// Records that `reason: message` happened to `object` (a stored
/// Kubernetes object), reported by `source`. Failures are returned for
/// the caller to log: an event is never worth failing the work over.
pub async fn record(
    api: &ApiClient<Channel>,
    object: &Value,
    ty: EventType,
    reason: &str,
    message: &str,
    source: Source<'_>,
) -> Result<(), tonic::Status> {
    let mut api = api.clone();
    let namespace = event_namespace(object);
    let name = event_name(object, ty, reason, message);
    let now = timestamp(std::time::SystemTime::now());
    let existing = api
        .get(GetRequest {
            kind: "Event".into(),
            namespace: namespace.into(),
            name: name.clone(),
        })
        .await;
    let event = match existing {
        Ok(found) => {
            let mut event: Value = serde_json::from_slice(&found.into_inner().object)
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            repeated(&mut event, &now);
            return api
                .update(ObjectRequest {
                    object: event.to_string().into_bytes(),
                })
                .await
                .map(|_| ());
        }
        Err(s) if s.code() == tonic::Code::NotFound => {
            new_event(object, ty, reason, message, source, &now)
        }
        Err(s) => return Err(s),
    };
    match api
        .create(ObjectRequest {
            object: event.to_string().into_bytes(),
        })
        .await
    {
        Ok(_) => Ok(()),
        // Another replica recorded it first: that one counts.
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_per_object_and_happening() {
        let ing = json!({"kind": "Ingress", "metadata": {"name": "shop", "uid": "u1"}});
        let a = event_name(&ing, EventType::Warning, "BadTLS", "x");
        assert_eq!(a, event_name(&ing, EventType::Warning, "BadTLS", "x"));
        assert!(a.starts_with("shop."), "{a}");
        assert_ne!(a, event_name(&ing, EventType::Warning, "BadTLS", "y"));
        assert_ne!(a, event_name(&ing, EventType::Normal, "BadTLS", "x"));
    }

    #[test]
    fn events_carry_the_object_the_source_and_a_count() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u2"}});
        let now = "2026-01-01T10:00:00Z";
        let mut e = new_event(
            &pod,
            EventType::Normal,
            "Started",
            "Started container web",
            Source::on_host("kubelet", "node-1"),
            now,
        );
        assert_eq!(str_at(&e, "/metadata/namespace"), "shop");
        assert_eq!(str_at(&e, "/involvedObject/uid"), "u2");
        assert_eq!(str_at(&e, "/source/component"), "kubelet");
        assert_eq!(str_at(&e, "/source/host"), "node-1");
        assert_eq!(str_at(&e, "/reportingInstance"), "node-1");
        assert_eq!(e["count"], 1);
        repeated(&mut e, "2026-01-01T10:00:05Z");
        assert_eq!(e["count"], 2);
        assert_eq!(str_at(&e, "/firstTimestamp"), now);
        assert_eq!(str_at(&e, "/lastTimestamp"), "2026-01-01T10:00:05Z");
        let node = json!({"kind": "Node", "metadata": {"name": "n"}});
        let e = new_event(
            &node,
            EventType::Warning,
            "R",
            "m",
            Source::component("c"),
            now,
        );
        assert_eq!(str_at(&e, "/metadata/namespace"), "default");
        assert!(e.pointer("/source/host").is_none());
    }
}
