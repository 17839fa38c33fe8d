use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sample(at_ms: u64, latency_ms: u64, outcome: Outcome) -> Sample {
    Sample {
        scheduled: ms(at_ms),
        lag: Duration::from_micros(50),
        latency: ms(latency_ms),
        outcome,
        served: None,
    }
}

#[test]
fn requests_are_filed_under_their_scheduled_second() {
    let mut f = FlowSeries::new("");
    f.record(&sample(999, 1500, Outcome::Ok));
    f.record(&sample(1000, 10, Outcome::Ok));
    f.record(&sample(2500, 10, Outcome::Timeout));
    assert_eq!(f.len(), 3);
    assert_eq!(f.second(0).total(), 1);
    assert_eq!(f.second(1).total(), 1);
    assert_eq!(f.second(2).count(Outcome::Timeout), 1);
    // The slow one counts where it was due, not where it finished.
    assert!((f.second(0).latency_quantile(1.0) - 1.5).abs() < 0.01);
    assert_eq!(f.second(7).total(), 0);
}

#[test]
fn windows_merge_seconds_exactly() {
    let mut f = FlowSeries::new("");
    for i in 0..1000 {
        f.record(&sample(i, 1 + i / 10, Outcome::Ok));
    }
    for i in 1000..2000 {
        f.record(&sample(i, 200, Outcome::Ok));
    }
    f.record(&sample(1500, 0, Outcome::Refused));
    let w = f.window(0, 2);
    assert_eq!(w.total(), 2001);
    assert_eq!(w.errors(), 1);
    assert!((w.error_rate() - 1.0 / 2001.0).abs() < 1e-12);
    // p50 of 1..=100 ms (first second) and 200 ms x 1000: the 1000th
    // value is 100 ms.
    assert!(
        (w.latency_quantile(0.5) - 0.1).abs() < 0.001,
        "{}",
        w.latency_quantile(0.5)
    );
    assert!((w.latency_max() - 0.2).abs() < 0.001);
    // A refused connect has no latency: 2000 answered.
    assert_eq!(w.latency.len(), 2000);
    assert_eq!(w.rate_achieved(), 1000.5);
    // An empty window has no values, not zeros.
    let empty = f.window(5, 8);
    assert!(empty.error_rate().is_nan());
    assert!(empty.latency_quantile(0.99).is_nan());
    assert_eq!(empty.rate_achieved(), 0.0);
}

#[test]
fn shed_requests_are_errors_but_not_sent() {
    let mut f = FlowSeries::new("");
    f.record(&sample(0, 0, Outcome::Ok));
    f.record(&sample(1, 0, Outcome::Shed));
    let w = f.window(0, 1);
    assert_eq!(w.error_rate(), 0.5);
    assert_eq!(w.rate_achieved(), 1.0);
    assert_eq!(w.lag.len(), 1);
}

#[test]
fn serving_pods_and_zones_are_attributed() {
    let mut f = FlowSeries::new("zone-a");
    let served = |pod: &str, zone: &str, terminating| Served {
        pod: pod.into(),
        node: "n".into(),
        zone: zone.into(),
        terminating,
    };
    let mut s = sample(0, 1, Outcome::Ok);
    s.served = Some(served("web-1", "zone-a", false));
    f.record(&s);
    s.served = Some(served("web-2", "zone-b", false));
    f.record(&s);
    let mut bad = sample(10, 1, Outcome::Http5xx);
    bad.served = Some(served("web-2", "zone-b", true));
    f.record(&bad);
    let w = f.window(0, 1);
    assert_eq!(w.by_pod["web-2"].requests, 2);
    assert_eq!(w.by_pod["web-2"].terminating_errors, 1);
    assert_eq!(w.errors_from_terminating(), 1);
    assert!((w.cross_zone_share() - 2.0 / 3.0).abs() < 1e-12);
    assert!(FlowSeries::new("").window(0, 1).cross_zone_share().is_nan());
    // Both pods answered one request without an error.
    assert_eq!(w.serving_pods(), 2);
    assert_eq!(f.window(10, 11).serving_pods(), 0);
}

#[test]
fn outcome_names_round_trip() {
    for o in Outcome::ALL {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            serde_json::Value::String(o.as_str().into())
        );
    }
    assert_eq!(Outcome::parse("nope"), None);
}

#[test]
fn absurd_times_are_bounded() {
    let mut f = FlowSeries::new("");
    f.record(&sample(u64::MAX / 2, 1, Outcome::Ok));
    assert!(f.is_empty());
    let mut s = sample(0, 0, Outcome::Ok);
    s.latency = Duration::from_secs(100_000);
    f.record(&s);
    // Clamped to 600 s, within the histogram's 1 %.
    assert!((f.window(0, 1).latency_max() - 600.0).abs() < 6.0);
}

#[test]
fn a_bucket_travels_and_merges_into_its_second_exactly() {
    let mut here = FlowSeries::new("a");
    let mut there = FlowSeries::new("b");
    for i in 0..200 {
        let mut s = sample(1000 + i * 4, 1 + i % 37, Outcome::Ok);
        s.served = Some(Served {
            pod: "default/web-1".into(),
            node: "node-2".into(),
            zone: "a".into(),
            terminating: i % 50 == 0,
        });
        there.record(&s);
        here.record(&sample(1000 + i * 4, 2 + i % 11, Outcome::Timeout));
    }
    let sent = there.second(1);
    let wire: WireBucket =
        serde_json::from_str(&serde_json::to_string(&sent.to_wire()).unwrap()).unwrap();
    let arrived = Bucket::from_wire(wire);
    for q in [0.5, 0.9, 0.99] {
        assert_eq!(arrived.latency_quantile(q), sent.latency_quantile(q));
    }
    assert_eq!(arrived.by_pod, sent.by_pod);
    assert_eq!(arrived.cross_zone, 200);
    let before = here.second(1).total();
    here.merge_second(1, &arrived);
    let merged = here.window(1, 2);
    assert_eq!(merged.total(), before + 200);
    assert_eq!(merged.count(Outcome::Ok), 200);
    assert_eq!(merged.rate_achieved(), 400.0);
    // A value beyond the histogram's range is clamped into it.
    let far = Bucket::from_wire(WireBucket {
        latency_us: vec![(0, 1), (u64::MAX, 1)],
        ..WireBucket::default()
    });
    assert_eq!(far.latency.len(), 2);
}
