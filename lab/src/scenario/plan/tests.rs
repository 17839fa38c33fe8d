use super::*;
use crate::scenario::schema::parse;

const BASE: &str = "name: x
cluster:
  nodes:
    - {name: node-1, zone: a}
    - {name: node-2, zone: b}
    - {name: node-3, zone: b}
";

fn scenario(rest: &str) -> Result<crate::scenario::schema::Scenario, String> {
    parse("s.yaml", &format!("{BASE}{rest}")).map_err(|e| e.0)
}

const FLOW: &str = "traffic:
  - {name: shoppers, from: host, request: GET http://web.example.com/, resolve: web.example.com:ingress, rate: 50/s, duration: 20s, warmup: 2s}
";

#[test]
fn an_experiment_parses_into_flows_faults_and_checks() {
    let s = scenario(&format!(
        "{FLOW}faults:
  - {{id: cut, at: 5s, for: 5s, partition: {{between: [zone-a, zone-b]}}}}
  - {{id: slow, at: cut.end + 2s, for: 3s, link: {{between: [node-1, node-2], delay: 50ms, loss: 2%}}}}
  - {{id: crash, at: 15s, kill: {{node: one-of-zone-b}}}}
  - {{id: dns, at: 16s, for: 2s, scale: {{deployment: kube-system/coredns, replicas: 0}}}}
expect:
  - {{name: availability, traffic: shoppers, window: whole, error_rate: \"< 50%\"}}
  - {{name: tail, traffic: shoppers, window: {{during: cut}}, p99: \"< 2x before\"}}
  - {{name: tens, traffic: shoppers, window: {{each: 5s, outside: [cut]}}, error_rate: \"< 1%\", allow: 1}}
  - {{name: guard, traffic: shoppers, window: {{sliding: 5s}}, error_rate: \"< 90%\", on_fail: abort, severity: warn}}
  - {{name: back, traffic: shoppers, recovery_time: {{after: cut, tolerance: {{p99: 1.5x, error_rate: +1pp}}, stable_for: 2s, max: 5s}}}}
"
    ))
    .unwrap();
    let faults = s.checked_faults().unwrap();
    assert_eq!(faults.len(), 4);
    assert_eq!(faults[0].at, At::Offset(5.0));
    assert!(
        matches!(&faults[0].kind, FaultKind::Partition { a, b, direction: Direction::Both, mode: podnet_proto::model::PartitionMode::Drop } if a == &["node-1"] && b == &["node-2", "node-3"])
    );
    assert!(matches!(&faults[1].at, At::After(a) if a.event == "cut" && a.offset == 2.0));
    assert!(
        matches!(&faults[2].kind, FaultKind::Kill { target: Process::Node { candidates } } if candidates == &["node-2", "node-3"])
    );
    let checks = s.windowed().unwrap();
    assert_eq!(checks.len(), 5);
    assert!(checks[3].1.abort);
    assert_eq!(checks[3].1.check.severity, Severity::Warn);
    assert_eq!(checks[2].1.check.allow, 1);
    let profile = s.traffic[0].profile().unwrap();
    assert_eq!(profile.length(), Duration::from_secs(20));
}

#[test]
fn ramps_make_profiles() {
    let s = scenario(
        "traffic:
  - name: r
    from: host
    request: http://10.0.0.1/
    ramp: [{to: 100/s, over: 10s}, {hold: 5s}, {from: 50/s, to: 0/s, over: 2s}]
",
    )
    .unwrap();
    let p = s.traffic[0].profile().unwrap();
    assert_eq!(p.segments.len(), 3);
    assert_eq!(p.segments[1].from, 100.0);
    assert_eq!(p.segments[2].from, 50.0);
    assert_eq!(p.length(), Duration::from_secs(17));
}

#[test]
fn a_closed_loop_runs_its_workers_for_its_duration() {
    let s = scenario(
        "traffic:
  - {name: c, from: host, request: http://10.0.0.1/, concurrency: 8, think: 5ms, duration: 3s}
  - {name: o, from: host, request: http://10.0.0.1/, rate: 10/s, duration: 3s}
",
    )
    .unwrap();
    let closed = s.traffic[0].closed().unwrap();
    assert_eq!(
        (closed.concurrency, closed.think),
        (8, Duration::from_millis(5))
    );
    let p = s.traffic[0].profile().unwrap();
    assert_eq!(p.length(), Duration::from_secs(3));
    assert_eq!(p.intended(0.0, 3.0), 0.0);
    assert!(s.traffic[1].closed().is_none());
    for (flow, expected) in [
        (
            "concurrency: 8, rate: 10/s, duration: 3s",
            "leave rate, ramp and arrival out",
        ),
        ("concurrency: 8", "concurrency needs a duration"),
        ("concurrency: 0, duration: 3s", "give 1 to 4096"),
        (
            "rate: 10/s, think: 5ms, duration: 3s",
            "think is a closed loop's pause",
        ),
    ] {
        let e = scenario(&format!(
            "traffic:\n  - {{name: c, from: host, request: http://10.0.0.1/, {flow}}}\n"
        ))
        .unwrap_err();
        assert!(e.contains(expected), "{flow}: {e}");
    }
}

#[test]
fn bad_experiments_say_what_and_where() {
    for (rest, expected) in [
        // A unit-less rate, where it stands.
        (
            "traffic:\n  - {name: f, from: host, request: http://10.0.0.1/, rate: 50, duration: 5s}\n",
            "s.yaml:8:60:",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: http://10.0.0.1/, rate: 50, duration: 5s}\n",
            "no unit",
        ),
        // An unknown fault kind.
        (
            &format!("{FLOW}faults:\n  - {{id: x, at: 1s, explode: {{node: node-1}}}}\n"),
            "explode",
        ),
        (
            &format!("{FLOW}faults:\n  - {{id: x, at: 1s}}\n"),
            "faults[0]: a fault needs one of",
        ),
        // An event reference that does not exist.
        (
            &format!("{FLOW}faults:\n  - {{id: x, at: y.end, kill: {{node: node-1}}}}\n"),
            "faults[0].at: no fault has the id \"y\"",
        ),
        (
            &format!(
                "{FLOW}expect:\n  - {{name: e, traffic: shoppers, window: {{during: cut}}, p99: \"< 1s\"}}\n"
            ),
            "expect[0].window: no fault has the id \"cut\"",
        ),
        // A window on an unknown flow.
        (
            &format!("{FLOW}expect:\n  - {{name: e, traffic: buyers, error_rate: \"< 1%\"}}\n"),
            "expect[0].traffic: no traffic is named \"buyers\"",
        ),
        // A cycle of event-relative times.
        (
            &format!(
                "{FLOW}faults:\n  - {{id: a, at: b.end, kill: {{node: node-1}}}}\n  - {{id: b, at: a.start + 1s, kill: {{node: node-2}}}}\n"
            ),
            "cycle",
        ),
        // Limits in the metric's unit.
        (
            &format!("{FLOW}expect:\n  - {{name: e, traffic: shoppers, p99: \"< 300\"}}\n"),
            "expect[0].p99: \"300\" has no unit",
        ),
        (
            &format!("{FLOW}expect:\n  - {{name: e, traffic: shoppers, latency: \"< 3s\"}}\n"),
            "is not a metric",
        ),
        (
            &format!(
                "{FLOW}expect:\n  - {{name: e, traffic: shoppers, p99: \"< 3s\", error_rate: \"< 1%\"}}\n"
            ),
            "one metric per expectation",
        ),
        (
            &format!("{FLOW}faults:\n  - {{id: k, at: 1s, for: 2s, kill: {{node: node-1}}}}\n"),
            "cannot be undone",
        ),
        (
            &format!("{FLOW}faults:\n  - {{id: k, at: 1s, kill: {{node: node-9}}}}\n"),
            "node-9",
        ),
        (
            &format!(
                "{FLOW}faults:\n  - {{id: k, at: 1s, partition: {{between: [zone-a, zone-q]}}}}\n"
            ),
            "zone-q",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: http://10.0.0.1/, rate: 5/s}\n",
            "rate needs a duration",
        ),
        (
            "traffic:\n  - {name: f, from: {pods: app=x}, request: http://web/, resolve: \"web:1.2.3.4\", rate: 5/s, duration: 1s}\n",
            "resolve is for `from: host`",
        ),
        (
            "traffic:\n  - {name: f, from: {pods: app=x}, request: tcp://db, rate: 5/s, duration: 1s}\n",
            "written tcp://HOST:PORT",
        ),
        (
            "traffic:\n  - {name: f, from: {pods: app=x}, request: http://web/, echo: true, rate: 5/s, duration: 1s}\n",
            "echo: only for tcp://",
        ),
        (
            "traffic:\n  - {name: f, from: {pods: app=x}, request: http://web/, http_version: \"3\", rate: 5/s, duration: 1s}\n",
            "http_version",
        ),
        (
            "traffic:\n  - {name: f, from: {pods: app=x}, request: \"udp://web:9000\", http_version: \"2\", rate: 5/s, duration: 1s}\n",
            "http_version: only for",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: FETCH http://10.0.0.1/, rate: 5/s, duration: 1s}\n",
            "the method is one of",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: http://shop/, rate: 5/s, duration: 1s}\n",
            "resolve: required",
        ),
        (
            "expect:\n  - {name: e, traffic: shoppers, error_rate: \"< 1%\"}\n",
            "has none",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: \"dns:web MX\", rate: 5/s, duration: 1s}\n",
            "the type is one of",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: \"dns:web A\", resolve: \"web:1.2.3.4\", rate: 5/s, duration: 1s}\n",
            "resolve names a target's host",
        ),
        (
            "traffic:\n  - {name: f, from: host, request: https://10.0.0.1/, rate: 5/s, duration: 1s}\n",
            "cacert: required for https",
        ),
    ] {
        let err = scenario(rest).expect_err(rest);
        assert!(err.contains(expected), "{rest}\n{err}\nwanted {expected:?}");
    }
}

#[test]
fn flows_run_from_the_host_or_from_pods_with_every_kind_of_request() {
    let s = scenario(concat!(
        "traffic:\n",
        "  - {name: a, from: host, request: \"tcp://db.example.com:5432\", resolve: \"db.example.com:10.0.0.9\", echo: true, rate: 5/s, duration: 1s}\n",
        "  - {name: b, from: {pods: \"app=client\"}, request: \"udp://echo:9000\", rate: 5/s, duration: 1s}\n",
        "  - {name: c, from: \"kube-system/k8s-app=x\", request: \"GET https://web/\", cacert: ca.pem, http_version: \"2\", rate: 5/s, duration: 1s}\n",
    ))
    .unwrap();
    assert_eq!(s.traffic[0].source(), Source::Host);
    assert_eq!(
        s.traffic[0].target(),
        Ok(Target::Tcp {
            host: "db.example.com".into(),
            port: 5432
        })
    );
    assert_eq!(s.traffic[1].source(), Source::Pods("app=client".into()));
    assert_eq!(
        s.traffic[1].target(),
        Ok(Target::Udp {
            host: "echo".into(),
            port: 9000
        })
    );
    assert_eq!(
        s.traffic[2].source(),
        Source::Pods("kube-system/k8s-app=x".into())
    );
    assert_eq!(
        s.traffic[2].http_version(),
        Ok(podnet_loadgen::HttpVersion::Http2)
    );
}

#[test]
fn fault_times_are_offsets_or_anchors() {
    assert_eq!(At::parse("20s"), Ok(At::Offset(20.0)));
    assert!(matches!(At::parse("cut.end + 5s"), Ok(At::After(_))));
    assert!(At::parse("20").unwrap_err().contains("no unit"));
}

#[test]
fn dns_flows_name_their_query() {
    let s = scenario("traffic:\n  - {name: q, from: host, request: \"dns:web.default.svc.cluster.local\", rate: 5/s, duration: 1s}\n").unwrap();
    assert_eq!(
        s.traffic[0].target(),
        Ok(Target::Dns {
            name: "web.default.svc.cluster.local".into(),
            rtype: "A".into()
        })
    );
}

#[test]
fn rollouts_change_a_template_and_last_until_done() {
    let s = scenario(&format!("{FLOW}faults:\n  - {{id: roll, at: 2s, rollout: {{deployment: web, set: {{env: {{VERSION: \"2\"}}}}}}}}\n")).unwrap();
    let f = s.checked_faults().unwrap();
    assert!(
        matches!(&f[0].kind, FaultKind::Rollout { namespace, name, image: None, env } if namespace == "default" && name == "web" && env["VERSION"] == "2")
    );
    let err = scenario(&format!("{FLOW}faults:\n  - {{id: roll, at: 2s, for: 5s, rollout: {{deployment: web, set: {{image: x}}}}}}\n")).unwrap_err();
    assert!(err.contains("cannot be undone"), "{err}");
    let err = scenario(&format!(
        "{FLOW}faults:\n  - {{id: roll, at: 2s, rollout: {{deployment: web, set: {{}}}}}}\n"
    ))
    .unwrap_err();
    assert!(err.contains("change the image or the env"), "{err}");
}

#[test]
fn failover_time_and_error_budget_are_metrics_of_their_own() {
    let s = scenario(&format!(
        "{FLOW}faults:
  - {{id: crash, at: 5s, kill: {{node: node-1}}}}
expect:
  - {{name: f, traffic: shoppers, failover_time: {{after: crash, tolerance: {{error_rate: +1pp}}, stable_for: 2s, max: 5s}}}}
  - {{name: b, traffic: shoppers, window: whole, error_budget: {{slo: 99.5%, good: 300ms, max: 50%}}}}
"
    ))
    .unwrap();
    let checks = s.windowed().unwrap();
    let f = &checks[0].1.check;
    assert!(matches!(f.metric, Metric::FailoverTime(_)));
    // From the fault's start unless the anchor says otherwise.
    assert_eq!(f.window.to_string(), "after crash.start");
    let b = &checks[1].1.check;
    assert_eq!(
        b.metric,
        Metric::ErrorBudget {
            slo: 0.995,
            good: Some(0.3)
        }
    );
    for (bad, wanted) in [
        (
            "{name: b, traffic: shoppers, error_budget: {slo: 100%}}",
            "below 100%",
        ),
        (
            "{name: b, traffic: shoppers, error_budget: {slo: \"99\"}}",
            "error_budget.slo",
        ),
        (
            "{name: b, traffic: shoppers, error_budget: {slo: 99%}, p99: \"< 1s\"}",
            "one metric per expectation",
        ),
        (
            "{name: f, traffic: shoppers, failover_time: {after: nope, tolerance: {error_rate: +1pp}, stable_for: 2s, max: 5s}}",
            "no fault has the id \"nope\"",
        ),
    ] {
        let err = scenario(&format!(
            "{FLOW}faults:\n  - {{id: crash, at: 5s, kill: {{node: node-1}}}}\nexpect:\n  - {bad}\n"
        ))
        .expect_err(bad);
        assert!(err.contains(wanted), "{bad}\n{err}\nwanted {wanted:?}");
    }
}

#[test]
fn partition_modes_and_link_duplicate_and_reorder() {
    let s = scenario(&format!(
        "{FLOW}faults:
  - {{id: cut, at: 1s, for: 2s, partition: {{between: [node-1, node-2], direction: a-to-b, mode: reject}}}}
  - {{id: messy, at: 4s, for: 2s, link: {{between: [zone-a, zone-b], delay: 10ms, reorder: 25%, duplicate: 1%}}}}
"
    ))
    .unwrap();
    let faults = s.checked_faults().unwrap();
    assert!(
        matches!(
            &faults[0].kind,
            FaultKind::Partition {
                direction: Direction::AToB,
                mode: podnet_proto::model::PartitionMode::Reject,
                ..
            }
        ),
        "{:?}",
        faults[0].kind
    );
    let FaultKind::Link { settings, .. } = &faults[1].kind else {
        panic!("{:?}", faults[1].kind);
    };
    let params = settings.params().unwrap();
    assert!((params.reorder - 0.25).abs() < 1e-12 && (params.duplicate - 0.01).abs() < 1e-12);

    for (rest, expected) in [
        (
            "partition: {between: [node-1, node-2], mode: refuse}",
            "unknown variant `refuse`, expected one of drop, reject",
        ),
        (
            "link: {between: [node-1, node-2], reorder: 25%}",
            "faults[0].link: invalid link setting spec.reorder: reordering not possible without specifying some delay",
        ),
        (
            "link: {between: [node-1, node-2], duplicate: 120%}",
            "spec.duplicate: \"120%\" is outside 0%..100%",
        ),
    ] {
        let err = scenario(&format!("{FLOW}faults:\n  - {{id: x, at: 1s, {rest}}}\n"))
            .and_then(|s| s.checked_faults().map(drop))
            .unwrap_err();
        assert!(err.contains(expected), "{rest}: {err}");
    }
}

#[test]
fn process_faults_name_one_process_and_actions_one_node() {
    let s = scenario(&format!(
        "{FLOW}faults:
  - {{id: cp, at: 1s, kill: {{controlplane: true}}, verify: true}}
  - {{id: lb, at: 2s, kill: {{edge: true}}}}
  - {{id: pk, at: 3s, kill: {{pod: \"app=web,tier=front\", namespace: shop}}}}
  - {{id: pn, at: 4s, kill: {{pod: shop/web-1}}}}
  - {{id: nap, at: 5s, for: 2s, pause: {{node: one-of-zone-b}}}}
  - {{id: nap2, at: 5s, pause: {{controlplane: true}}}}
  - {{id: again, at: 6s, restart: {{node: node-1}}}}
  - {{id: off, at: 7s, for: 3s, cordon: {{node: node-2}}}}
  - {{id: empty, at: 8s, drain: {{node: node-3}}}}
  - {{id: pk2, at: 9s, kill: {{pod: \"example.com/app=web\"}}}}
"
    ))
    .unwrap();
    let f = s.checked_faults().unwrap();
    assert_eq!(
        f[0].kind,
        FaultKind::Kill {
            target: Process::Controlplane
        }
    );
    assert!(f[0].verify && !f[1].verify);
    assert_eq!(
        f[1].kind,
        FaultKind::Kill {
            target: Process::Edge
        }
    );
    assert_eq!(
        f[2].kind,
        FaultKind::KillPod {
            namespace: "shop".into(),
            pod: PodTarget::Selector(vec![
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ]),
        }
    );
    assert_eq!(
        f[3].kind,
        FaultKind::KillPod {
            namespace: "shop".into(),
            pod: PodTarget::Name("web-1".into())
        }
    );
    assert!(
        matches!(&f[4].kind, FaultKind::Pause { target: Process::Node { candidates } } if candidates == &["node-2", "node-3"])
    );
    assert_eq!(f[4].for_, Some(Duration::from_secs(2)));
    // A pause without for lasts to the end of the run.
    assert_eq!(f[5].for_, None);
    assert!(
        matches!(&f[6].kind, FaultKind::Restart { target: Process::Node { candidates } } if candidates == &["node-1"])
    );
    assert_eq!(
        f[7].kind,
        FaultKind::Cordon {
            node: "node-2".into()
        }
    );
    assert_eq!(
        f[8].kind,
        FaultKind::Drain {
            node: "node-3".into()
        }
    );
    assert_eq!(
        f[9].kind,
        FaultKind::KillPod {
            namespace: "default".into(),
            pod: PodTarget::Selector(vec![("example.com/app".into(), "web".into())]),
        }
    );
}

#[test]
fn bad_process_faults_say_what_and_where() {
    for (fault, expected) in [
        (
            "kill: {node: node-1, edge: true}",
            "faults[0].kill: one of node, edge: true or controlplane: true",
        ),
        ("kill: {}", "faults[0].kill: one of node"),
        (
            "kill: {pod: app=web, controlplane: true}",
            "faults[0].kill: one of node, edge, controlplane or pod",
        ),
        (
            "kill: {pod: \"app=web=x\"}",
            "faults[0].kill.pod: \"web=x\" in",
        ),
        ("kill: {pod: \"app=web,=x\"}", "faults[0].kill.pod: \"\" in"),
        ("kill: {pod: \"app=w b\"}", "is not a label value"),
        (
            "kill: {pod: \"-bad-\"}",
            "neither a pod's name nor a selector",
        ),
        ("kill: {pod: shop/web-1, namespace: shop}", "not both"),
        (
            "kill: {node: node-1, namespace: shop}",
            "faults[0].kill.namespace: goes with pod",
        ),
        ("pause: {node: node-9}", "faults[0].pause.node: \"node-9\""),
        (
            "pause: {node: zone-b}",
            "faults[0].pause.node: \"zone-b\" is a zone",
        ),
        (
            "restart: {edge: true, controlplane: true}",
            "faults[0].restart: one of",
        ),
        (
            "restart: {edge: true}, for: 2s",
            "faults[0].for: a kill, restart",
        ),
        (
            "cordon: {node: node-7}",
            "faults[0].cordon.node: \"node-7\"",
        ),
        (
            "drain: {node: zone-a}",
            "faults[0].drain.node: \"zone-a\" is a zone",
        ),
        (
            "cordon: {node: node-1}, drain: {node: node-1}",
            "faults[0]: one kind per fault",
        ),
        (
            "pause: {edge: true}, kill: {edge: true}",
            "one kind per fault",
        ),
        (
            "pause: {edge: true}, verify: yes please",
            "s.yaml:10:50: invalid boolean",
        ),
    ] {
        let rest = format!("{FLOW}faults:\n  - {{id: x, at: 1s, {fault}}}\n");
        let err = scenario(&rest)
            .err()
            .unwrap_or_else(|| panic!("accepted: {fault}"));
        assert!(
            err.contains(expected),
            "{fault}\n{err}\nwanted {expected:?}"
        );
    }
}

#[test]
fn pod_targets_match_by_name_or_every_term() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let check = |target: &str, name: &str, expected: bool| {
        let t = PodTarget::parse(target).unwrap();
        assert_eq!(t.matches(name, &labels), expected, "{target} on {name}");
    };
    check("app=web", "x", true);
    check("app==web", "x", true);
    check("app=web,tier=front", "x", true);
    check("app=web,tier=back", "x", false);
    check("app=db", "x", false);
    check("web-1", "web-1", true);
    check("web-1", "web-2", false);
}
