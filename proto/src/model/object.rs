//! Reading fields of Kubernetes JSON objects, for the code that handles
//! them as `serde_json::Value` (the registry, controllers, agent, client).

use serde_json::Value;

/// The string at a JSON pointer (`/metadata/name`), or "" when absent.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The strings of the array at a JSON pointer (`/spec/clusterIPs`); an
/// absent array or a non-string item contributes nothing.
pub fn strs_at<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// True when `status.conditions` has condition `ty` with status "True"
/// (`Ready` of a Pod or a Node, `Available` of a Deployment).
pub fn condition_is_true(object: &Value, ty: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_fields_and_conditions() {
        let pod = json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "False"}]}});
        assert_eq!(str_at(&pod, "/metadata/name"), "p");
        assert_eq!(str_at(&pod, "/metadata/namespace"), "");
        assert!(condition_is_true(&pod, "Ready"));
        assert!(!condition_is_true(&pod, "PodScheduled"));
        assert!(!condition_is_true(&json!({}), "Ready"));
        let svc = json!({"spec": {"clusterIPs": ["10.96.0.5", 7, "10.96.0.6"]}});
        assert_eq!(
            strs_at(&svc, "/spec/clusterIPs"),
            ["10.96.0.5", "10.96.0.6"]
        );
        assert!(strs_at(&svc, "/spec/ports").is_empty());
    }
}
