//! The overlay flow header decoder never panics, and what it accepts
//! re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_overlay::wire::{FlowHeader, OpenStatus};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, len)) = FlowHeader::decode(data) {
        assert_eq!(&header.to_bytes()[..], &data[..len]);
    }
    let _ = OpenStatus::decode(data);
});
