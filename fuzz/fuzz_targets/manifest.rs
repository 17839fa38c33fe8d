//! Validation of any JSON object as a manifest never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(valid) = podnet_controlplane::validate::validate(&object)
    {
        let _ = podnet_controlplane::validate::validate_update(&object, &valid);
    }
});
