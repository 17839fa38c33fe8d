//! The ingress controller's routing never panics on any objects it could be
//! handed (JSON from the API) nor on any Host and path a client sends.
//!
//! Input: a JSON array `[ingresses, classes, services, slices, host, path]`
//! (the seed corpus holds well-formed examples to mutate); anything that
//! does not parse as such is still routed with the raw bytes as host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_pod::ingress::route::{RouteInput, RouteTable};
use serde_json::Value;

fn list(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array).cloned().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let parsed: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    let parts = parsed.as_array().cloned().unwrap_or_default();
    let (ingresses, classes, services, slices) = (
        list(parts.first()),
        list(parts.get(1)),
        list(parts.get(2)),
        list(parts.get(3)),
    );
    let table = RouteTable::build(&RouteInput {
        ingresses: &ingresses,
        classes: &classes,
        services: &services,
        slices: &slices,
        default_service: Some(("default", "web")),
        family: Default::default(),
    });
    let raw = String::from_utf8_lossy(data);
    let host = parts.get(4).and_then(Value::as_str).unwrap_or(&raw);
    let path = parts.get(5).and_then(Value::as_str).unwrap_or("/");
    let _ = table.route(host, path);
    let _ = table.tls_secret(host);
    let _ = table.tls_hosts();
});
