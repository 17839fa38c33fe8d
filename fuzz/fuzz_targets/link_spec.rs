//! Link settings from any JSON never panic the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_proto::model::LinkSpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<LinkSpec>(data) {
        let _ = spec.params();
    }
});
