use std::net::IpAddr;

use podnet_netpol::{Flow, PodKey, PolicyRef, Protocol, Verdict};

use super::*;

#[test]
fn percentiles_are_nearest_rank() {
    let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
    let check = |v: &[f64], q: f64, want: f64| {
        let got = percentile(v, q);
        assert!(
            got == want || (got.is_nan() && want.is_nan()),
            "{q} of {v:?}: {got}, want {want}"
        );
    };
    check(&hundred, 0.5, 50.0);
    check(&hundred, 0.99, 99.0);
    check(&hundred, 1.0, 100.0);
    check(&hundred, 0.0, 1.0);
    check(&[3.0, -1.0, 2.0], 0.5, 2.0);
    check(&[3.0, -1.0, 2.0], 0.0, -1.0);
    check(&[7.0], 0.99, 7.0);
    check(&[], 0.5, f64::NAN);
    assert_eq!(
        summary(&[1.0, 2.0, 3.0]),
        "p50 2.0 ms, p99 3.0 ms, max 3.0 ms"
    );
}

fn ips(text: &[&str]) -> Vec<IpAddr> {
    text.iter().map(|t| t.parse().unwrap()).collect()
}

/// Side B's index as the bench builds it: every server policy allows the
/// client, the others select one other pod each and not the server.
#[test]
fn the_bench_index_allows_the_client_by_every_server_policy() {
    let a = ips(&["10.244.0.2", "fd00:10:244::2"]);
    let b = ips(&["10.244.1.2", "fd00:10:244:1::2"]);
    let mut policies = other_policies(40);
    policies.extend(server_policies());
    let index = index_of(&pods(&a, &b, 40), &policies).unwrap();
    let server = PodKey::new("default", "b");
    assert_eq!(index.selecting(&server).count(), SERVER_POLICIES);
    for i in [0, 1, 2, 39] {
        let other = PodKey::new(NAMESPACES[i % NAMESPACES.len()], format!("other-{i}"));
        let names: Vec<String> = index
            .selecting(&other)
            .map(|p| p.key().to_string())
            .collect();
        assert_eq!(names, [format!("{}/other-{i}", other.namespace)]);
    }
    let flow = Flow {
        src: index.endpoint(a[0]),
        dst: index.endpoint(b[0]),
        protocol: Protocol::Tcp,
        dst_port: SERVER_PORT,
    };
    let judged = index.judge(&flow);
    assert_eq!(
        judged.egress,
        Verdict::NotIsolated {
            direction: podnet_netpol::Direction::Egress
        }
    );
    let by: Vec<std::sync::Arc<PolicyRef>> = (0..SERVER_POLICIES)
        .map(|i| PolicyRef::new("default", format!("server-{i}")).into())
        .collect();
    assert_eq!(judged.ingress, Verdict::Allowed { by });
    // Another port of the server is allowed by the rule without ports only.
    let other_port = Flow {
        dst_port: 9999,
        ..flow
    };
    assert_eq!(
        index.judge_ingress(&other_port),
        Verdict::Allowed {
            by: vec![PolicyRef::new("default", "server-8").into()]
        }
    );
}

/// The programming bench's policies: the deny isolates the clients for
/// egress, the allowing policy lets them reach the server's port only.
#[test]
fn the_allowing_policy_opens_exactly_the_server_port() {
    let mut objects = cluster_objects(&["node-1".into(), "node-2".into()]);
    let policies: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] == "NetworkPolicy")
        .cloned()
        .collect();
    assert_eq!(policies.len(), 1);
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["spec"]["nodeName"] == "node-2")
            .count(),
        1
    );
    // Give the pods addresses, as they have once running.
    for (i, o) in objects
        .iter_mut()
        .filter(|o| o["kind"] == "Pod")
        .enumerate()
    {
        o["status"] = json!({"phase": "Running", "podIP": format!("10.244.{i}.2")});
    }
    let pods: Vec<Value> = objects.into_iter().filter(|o| o["kind"] == "Pod").collect();
    let client: IpAddr = "10.244.1.2".parse().unwrap();
    let server: IpAddr = "10.244.0.2".parse().unwrap();
    let flow = |index: &Index, port| Flow {
        src: index.endpoint(client),
        dst: index.endpoint(server),
        protocol: Protocol::Tcp,
        dst_port: port,
    };
    let denied = index_of(&pods, &policies).unwrap();
    assert!(
        !denied
            .judge_egress(&flow(&denied, SERVER_PORT))
            .is_allowed()
    );
    let mut both = policies.clone();
    both.push(allow_policy());
    let allowed = index_of(&pods, &both).unwrap();
    assert!(
        allowed
            .judge_egress(&flow(&allowed, SERVER_PORT))
            .is_allowed()
    );
    assert!(!allowed.judge_egress(&flow(&allowed, 9999)).is_allowed());
}

#[test]
fn slices_alternate_a_b_b_a() {
    let order: String = (0..8)
        .map(|i| if slice_is_b(i) { 'B' } else { 'A' })
        .collect();
    assert_eq!(order, "ABBAABBA");
}
