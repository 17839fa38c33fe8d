//! Writing core/v1 Events the way client-go's event recorder does: one
//! Event per (object, type, reason, message), named after the object, whose
//! `count` and `lastTimestamp` grow when the same thing happens again, so a
//! controller that reports the same problem on every pass adds no objects.

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
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
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

/// Records that `reason: message` happened to `object` (a stored
/// Kubernetes object), reported by `component`. Failures are returned for
/// the caller to log: an event is never worth failing the work over.
pub async fn record(
    api: &ApiClient<Channel>,
    object: &Value,
    ty: EventType,
    reason: &str,
    message: &str,
    component: &str,
) -> Result<(), tonic::Status> {
    let mut api = api.clone();
    let namespace = str_at(object, "/metadata/namespace");
    let namespace = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    let name = event_name(object, ty, reason, message);
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
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
            let count = event.get("count").and_then(Value::as_i64).unwrap_or(1);
            event["count"] = json!(count + 1);
            event["lastTimestamp"] = json!(now);
            return api
                .update(ObjectRequest {
                    object: event.to_string().into_bytes(),
                })
                .await
                .map(|_| ());
        }
        Err(s) if s.code() == tonic::Code::NotFound => json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
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
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }),
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
}
