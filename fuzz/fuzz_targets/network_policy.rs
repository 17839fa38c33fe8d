//! Any NetworkPolicy the API could be handed: `validate` and `compile`
//! never panic and agree (compile refuses exactly what validate reports),
//! and a compiled policy judges flows between any addresses and ports
//! without panicking.
//!
//! Input: a JSON NetworkPolicy, then (after a NUL byte) bytes read as
//! flows: 4-byte IPv4 source, 4-byte destination, 2-byte port, 1 byte
//! protocol.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use libfuzzer_sys::fuzz_target;
use podnet_netpol::{Flow, Index, PodInfo, PodKey, Protocol};

fuzz_target!(|data: &[u8]| {
    let (json, flows) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(policy) = serde_json::from_slice::<NetworkPolicy>(json) else {
        return;
    };
    let errors = podnet_netpol::validate(&policy);
    let compiled = podnet_netpol::compile(&policy);
    assert_eq!(
        compiled.is_ok(),
        errors.is_empty(),
        "compile {:?} vs validate {errors:?}",
        compiled.as_ref().err()
    );
    let Ok(compiled) = compiled else { return };
    let mut index = Index::new();
    index.upsert_namespace(&compiled.key().namespace.clone(), Default::default());
    for (i, ip) in [[10, 244, 0, 2], [10, 244, 1, 2]].into_iter().enumerate() {
        index.upsert_pod(PodInfo {
            key: PodKey::new(compiled.key().namespace.clone(), format!("p{i}")),
            labels: [("app".to_string(), format!("p{i}"))].into(),
            ips: vec![IpAddr::V4(Ipv4Addr::from(ip))],
            ports: Vec::new(),
            node: "node-1".into(),
        });
    }
    index.upsert_policy(compiled);
    for f in flows.chunks_exact(11) {
        let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        let flow = Flow {
            src: index.endpoint(ip(&f[0..4])),
            dst: index.endpoint(ip(&f[4..8])),
            protocol: match f[10] % 3 {
                0 => Protocol::Tcp,
                1 => Protocol::Udp,
                _ => Protocol::Sctp,
            },
            dst_port: u16::from_be_bytes([f[8], f[9]]),
        };
        let _ = index.judge(&flow);
    }
});
