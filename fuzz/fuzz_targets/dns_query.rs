//! The cluster DNS server's handling of any datagram never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podnet_pod::dns::{ClusterDomain, Index, handle_datagram};

fuzz_target!(|data: &[u8]| {
    if let Ok(domain) = ClusterDomain::new("cluster.local") {
        let _ = handle_datagram(&Index::empty(&domain), data);
    }
});
