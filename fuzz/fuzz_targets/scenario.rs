//! Any text parsed as a scenario file never panics: it is a scenario or an
//! error that says where.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(scenario) = podnet_lab::scenario::schema::parse("fuzz.yaml", text)
    {
        let _ = scenario.cluster.link_specs();
        let _ = scenario.ready_timeout();
    }
});
