use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::series::Sample;
use crate::window::Span;

/// 100 requests a second for 90 s at 10 ms; during the cut (20.3-35.3 s)
/// 200 ms and one in ten timing out, and for 3 s after it 50 ms; seconds
/// 60-62 all refused (the crash).
fn run() -> (FlowSeries, Timeline) {
    let mut f = FlowSeries::new("");
    for i in 0..9000u64 {
        let t = i as f64 / 100.0;
        let (latency, outcome) = if (20.3..35.3).contains(&t) {
            (
                200,
                if i % 10 == 0 {
                    Outcome::Timeout
                } else {
                    Outcome::Ok
                },
            )
        } else if (35.3..38.3).contains(&t) {
            (50, Outcome::Ok)
        } else if (60.0..63.0).contains(&t) {
            (1, Outcome::Refused)
        } else {
            (10, Outcome::Ok)
        };
        f.record(&Sample {
            scheduled: Duration::from_millis(i * 10),
            lag: Duration::from_micros(20),
            latency: Duration::from_millis(latency),
            outcome,
            served: None,
        });
    }
    let timeline = Timeline {
        begin: 5.0,
        end: 90.0,
        events: BTreeMap::from([
            (
                "cut".to_string(),
                Span {
                    start: 20.3,
                    end: 35.3,
                },
            ),
            (
                "crash".to_string(),
                Span {
                    start: 60.0,
                    end: 60.0,
                },
            ),
        ]),
    };
    (f, timeline)
}

fn check(window: WindowSpec, metric: &str, condition: &str) -> Check {
    let metric = Metric::parse(metric).unwrap();
    Check {
        name: "t".into(),
        flow: "f".into(),
        window,
        condition: Condition::parse(condition, metric.dimension()).unwrap(),
        metric,
        min_samples: MIN_SAMPLES,
        severity: Severity::Fail,
        allow: 0,
    }
}

fn during(e: &str) -> WindowSpec {
    WindowSpec::During(e.into())
}

#[test]
fn a_fault_shows_in_its_window_and_not_in_the_whole_run() {
    let (f, t) = run();
    // 450 errors in 8500 requests: 5.3 %, while the cut alone has 10 %.
    let whole = check(WindowSpec::Whole, "error_rate", "< 6%").judge(&f, &t);
    assert_eq!(whole.status, Status::Pass, "{whole}");
    let cut = check(during("cut"), "error_rate", "< 6%").judge(&f, &t);
    assert_eq!(cut.status, Status::Fail, "{cut}");
    assert!((cut.observed - 0.1).abs() < 0.005, "{cut}");
    assert!(cut.margin < 0.0);
    assert!(
        cut.detail.contains("20.3s-35.3s = seconds 21-34"),
        "{}",
        cut.detail
    );
    assert!(cut.detail.contains("10.000%"), "{}", cut.detail);
    // A failed error verdict names the classes that failed; a passing one
    // does not list them.
    assert!(
        cut.detail.ends_with("; errors: 140 timeout"),
        "{}",
        cut.detail
    );
    assert!(!whole.detail.contains("errors:"), "{}", whole.detail);
    let p99 = check(during("cut"), "p99", "< 300ms").judge(&f, &t);
    assert_eq!(p99.status, Status::Pass, "{p99}");
    assert!((p99.observed - 0.2).abs() < 0.001);
    assert!((p99.margin - 0.1).abs() < 0.001);
    let steady = check(WindowSpec::Steady, "p99", "< 20ms").judge(&f, &t);
    assert_eq!(steady.status, Status::Pass, "{steady}");
}

#[test]
fn limits_relative_to_before_the_fault() {
    let (f, t) = run();
    let v = check(during("cut"), "p99", "< 2x before").judge(&f, &t);
    assert_eq!(v.status, Status::Fail, "{v}");
    assert!((v.limit - 0.02).abs() < 0.0005, "{v}");
    let v = check(during("cut"), "p99", "< 30x before").judge(&f, &t);
    assert_eq!(v.status, Status::Pass, "{v}");
    let v = check(WindowSpec::Whole, "p99", "< 2x before").judge(&f, &t);
    assert_eq!(v.status, Status::Fail);
    assert!(
        v.detail.contains("needs a window on an event"),
        "{}",
        v.detail
    );
}

#[test]
fn recovery_is_measured_from_the_heal() {
    let (f, t) = run();
    let (p99, error_rate) = Recovery::tolerance(Some("1.25x"), Some("+0.1pp")).unwrap();
    let metric = Metric::RecoveryTime(Recovery {
        after: Anchor::parse("cut").unwrap(),
        p99,
        error_rate,
        stable_for: 5,
    });
    let c = Check {
        condition: Condition::parse("<= 10s", metric.dimension()).unwrap(),
        metric,
        ..check(
            WindowSpec::After(Anchor::parse("cut").unwrap()),
            "p99",
            "< 1s",
        )
    };
    let v = c.judge(&f, &t);
    assert_eq!(v.status, Status::Pass, "{v}");
    // Second 38 still holds 50 ms answers (until 38.3): 39 - 35.3.
    assert!((v.observed - 3.7).abs() < 1e-9, "{v}");
    let strict = Check {
        condition: Condition::parse("<= 2s", Dimension::Time).unwrap(),
        ..c.clone()
    };
    assert_eq!(strict.judge(&f, &t).status, Status::Fail);
    assert!(Recovery::tolerance(None, None).is_err());
}

#[test]
fn no_data_never_passes() {
    let (f, mut t) = run();
    t.events.insert(
        "late".into(),
        Span {
            start: 95.0,
            end: 99.0,
        },
    );
    let v = check(during("late"), "error_rate", "< 100%").judge(&f, &t);
    assert_eq!(v.status, Status::Fail, "{v}");
    assert!(v.detail.contains("no data never passes"), "{}", v.detail);
    let v = check(during("missing"), "error_rate", "< 100%").judge(&f, &t);
    assert_eq!(v.status, Status::Fail);
    assert!(v.detail.contains("no event \"missing\""), "{}", v.detail);
    let mut warn = check(during("late"), "error_rate", "< 100%");
    warn.severity = Severity::Warn;
    assert_eq!(warn.judge(&f, &t).status, Status::Warn);
}

#[test]
fn repeated_windows_must_each_pass() {
    let (f, t) = run();
    let mut each = check(
        WindowSpec::Each {
            every: 10.0,
            outside: vec![],
        },
        "error_rate",
        "< 1%",
    );
    let v = each.judge(&f, &t);
    assert_eq!(v.status, Status::Fail, "{v}");
    // 5-15 .. 75-85: 8 windows fit; 15-25 and 25-35 (the cut) and 55-65
    // (the crash) fail; 35-45 holds the cut's last 0.3 s, 0.3 % errors.
    assert!(
        v.detail.starts_with("3 of 8 windows failed"),
        "{}",
        v.detail
    );
    assert!(v.detail.contains("30.000%"), "{}", v.detail);
    each.allow = 2;
    assert_eq!(each.judge(&f, &t).status, Status::Fail);
    each.allow = 3;
    assert_eq!(each.judge(&f, &t).status, Status::Pass);
    let outside = check(
        WindowSpec::Each {
            every: 10.0,
            outside: vec!["cut".into(), "crash".into()],
        },
        "error_rate",
        "< 1%",
    );
    assert_eq!(outside.judge(&f, &t).status, Status::Pass);
}

#[test]
fn outages_and_error_classes() {
    let (f, t) = run();
    let v = check(WindowSpec::Whole, "longest_outage", "< 2s").judge(&f, &t);
    assert_eq!(v.status, Status::Fail, "{v}");
    assert_eq!(v.observed, 3.0);
    let v = check(during("cut"), "errors{timeout}", "== 0").judge(&f, &t);
    assert_eq!(v.status, Status::Fail);
    assert_eq!(v.observed, 140.0);
    let v = check(WindowSpec::Whole, "errors{refused}", "== 300").judge(&f, &t);
    assert_eq!(v.status, Status::Pass, "{v}");
    let v = check(WindowSpec::Whole, "rate_achieved", ">= 99/s").judge(&f, &t);
    assert_eq!(v.status, Status::Pass, "{v}");
}

#[test]
fn metrics_and_conditions_say_what_is_wrong() {
    let Ok(Metric::Quantile(q)) = Metric::parse("p99.9") else {
        panic!("p99.9 is a quantile")
    };
    assert!((q - 0.999).abs() < 1e-12);
    assert_eq!(Metric::parse("p99.9").unwrap().name(), "p99.9");
    assert!(Metric::parse("p101").is_err());
    assert!(
        Metric::parse("errors{ok}")
            .unwrap_err()
            .contains("no error class")
    );
    assert!(
        Metric::parse("latency")
            .unwrap_err()
            .contains("not a metric")
    );
    assert!(
        Condition::parse("300ms", Dimension::Time)
            .unwrap_err()
            .contains("not a condition")
    );
    assert!(
        Condition::parse("< 300", Dimension::Time)
            .unwrap_err()
            .contains("no unit")
    );
    assert!(
        Condition::parse("< 0.5", Dimension::Share)
            .unwrap_err()
            .contains("no unit")
    );
    assert_eq!(
        Condition::parse("<= 2x before", Dimension::Time),
        Ok(Condition {
            op: Op::Le,
            limit: Limit::TimesBefore(2.0)
        })
    );
    assert_eq!(
        Condition::parse("== 0", Dimension::Count),
        Ok(Condition {
            op: Op::Eq,
            limit: Limit::Literal(0.0)
        })
    );
}

#[test]
fn failover_is_measured_from_the_fault_start() {
    let (f, t) = run();
    let (p99, error_rate) = Recovery::tolerance(None, Some("+1pp")).unwrap();
    let metric = Metric::FailoverTime(Recovery {
        after: Anchor::parse("crash").unwrap(),
        p99,
        error_rate,
        stable_for: 3,
    });
    let c = Check {
        condition: Condition::parse("<= 5s", metric.dimension()).unwrap(),
        metric,
        ..check(
            WindowSpec::After(Anchor::parse("crash.start").unwrap()),
            "p99",
            "< 1s",
        )
    };
    let v = c.judge(&f, &t);
    assert_eq!(v.status, Status::Pass, "{v}");
    // Seconds 60-62 refused: served again from 63.
    assert!((v.observed - 3.0).abs() < 1e-9, "{v}");
    // From the cut's start the flow is good again only once its timeouts end.
    let (p99, error_rate) = Recovery::tolerance(None, Some("+1pp")).unwrap();
    let cut = Metric::FailoverTime(Recovery {
        after: Anchor::parse("cut").unwrap(),
        p99,
        error_rate,
        stable_for: 3,
    });
    let whole = WindowSpec::Whole.resolve(&t, 0.0).unwrap();
    assert!((cut.compute(&f, &whole[0], &t).unwrap() - (36.0 - 20.3)).abs() < 1e-9);
}

#[test]
fn the_error_budget_counts_failed_and_slow_requests() {
    let (f, t) = run();
    let budget = |slo: f64, good: Option<f64>| Check {
        metric: Metric::ErrorBudget { slo, good },
        condition: Condition::parse("<= 100%", Dimension::Share).unwrap(),
        ..check(during("cut"), "p99", "< 1s")
    };
    // During the cut one in ten times out: 10 % bad, ten times a 1 % budget.
    let v = budget(0.99, None).judge(&f, &t);
    assert_eq!(v.status, Status::Fail, "{v}");
    assert!((v.observed - 10.0).abs() < 0.05, "{v}");
    assert!(budget(0.8, None).judge(&f, &t).status == Status::Pass);
    // Answers of 200 ms are bad when good is 100 ms: all of them.
    let v = budget(0.8, Some(0.1)).judge(&f, &t);
    assert!((v.observed - 5.0).abs() < 0.05, "{v}");
    assert!(v.detail.contains("error_budget"), "{}", v.detail);
}
