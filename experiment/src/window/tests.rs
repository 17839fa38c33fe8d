use super::*;

fn timeline() -> Timeline {
    Timeline {
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
    }
}

fn anchor(s: &str) -> Anchor {
    Anchor::parse(s).unwrap()
}

fn ranges(w: &WindowSpec) -> Vec<Vec<(u64, u64)>> {
    w.resolve(&timeline(), 0.0)
        .unwrap()
        .into_iter()
        .map(|r| r.ranges)
        .collect()
}

#[test]
fn anchors_parse_with_edges_and_offsets() {
    assert_eq!(
        anchor("cut"),
        Anchor {
            event: "cut".into(),
            edge: None,
            offset: 0.0
        }
    );
    assert_eq!(
        anchor("cut.end + 5s"),
        Anchor {
            event: "cut".into(),
            edge: Some(Edge::End),
            offset: 5.0
        }
    );
    assert_eq!(
        anchor(" roll.start-500ms "),
        Anchor {
            event: "roll".into(),
            edge: Some(Edge::Start),
            offset: -0.5
        }
    );
    assert!(
        Anchor::parse("cut.middle")
            .unwrap_err()
            .contains(".start or .end")
    );
    assert!(Anchor::parse("cut + 5").unwrap_err().contains("no unit"));
    assert!(Anchor::parse(".start").is_err());
    assert_eq!(anchor("cut.end + 5s").to_string(), "cut.end + 5s");
}

#[test]
fn windows_resolve_to_the_whole_seconds_inside_them() {
    // The warmup is in no window.
    assert_eq!(ranges(&WindowSpec::Whole), vec![vec![(5, 90)]]);
    // 20.3 .. 35.3: seconds 21 to 34 lie wholly inside.
    assert_eq!(
        ranges(&WindowSpec::During("cut".into())),
        vec![vec![(21, 35)]]
    );
    assert_eq!(
        ranges(&WindowSpec::Before {
            event: "cut".into(),
            span: 10.0
        }),
        vec![vec![(11, 20)]]
    );
    // Clipped to the measured run.
    assert_eq!(
        ranges(&WindowSpec::Before {
            event: "cut".into(),
            span: 30.0
        }),
        vec![vec![(5, 20)]]
    );
    assert_eq!(
        ranges(&WindowSpec::After(anchor("cut + 5s"))),
        vec![vec![(41, 90)]]
    );
    assert_eq!(
        ranges(&WindowSpec::After(anchor("crash"))),
        vec![vec![(60, 90)]]
    );
    assert_eq!(
        ranges(&WindowSpec::Between(
            anchor("cut.start + 2s"),
            anchor("crash")
        )),
        vec![vec![(23, 60)]]
    );
    // Every second an event touches is left out.
    assert_eq!(
        ranges(&WindowSpec::Outside(vec!["cut".into(), "crash".into()])),
        vec![vec![(5, 20), (36, 60), (61, 90)]]
    );
    assert_eq!(
        ranges(&WindowSpec::Steady),
        vec![vec![(5, 20), (46, 60), (71, 90)]]
    );
}

/// A request scheduled up to its timeout before an event may fail because
/// of it: the windows that leave the event out leave that stretch out too,
/// and those that cover it do not grow.
#[test]
fn windows_that_leave_an_event_out_leave_out_the_requests_in_flight_at_it() {
    let within = |w: &WindowSpec, reach: f64| -> Vec<Vec<(u64, u64)>> {
        w.resolve(&timeline(), reach)
            .unwrap()
            .into_iter()
            .map(|r| r.ranges)
            .collect()
    };
    let before = WindowSpec::Before {
        event: "crash".into(),
        span: 3.0,
    };
    assert_eq!(within(&before, 0.0), vec![vec![(57, 60)]]);
    // 1 s timeout: 56.0 .. 59.0, three seconds of requests all over by 60.
    assert_eq!(within(&before, 1.0), vec![vec![(56, 59)]]);
    // 0.3 s: 56.7 .. 59.7, the whole seconds 57 and 58.
    assert_eq!(within(&before, 0.3), vec![vec![(57, 59)]]);
    assert_eq!(
        within(&WindowSpec::Steady, 1.0),
        vec![vec![(5, 19), (46, 59), (71, 90)]]
    );
    assert_eq!(
        within(&WindowSpec::Outside(vec!["crash".into()]), 1.0),
        vec![vec![(5, 59), (61, 90)]]
    );
    // During and after an event are as without a reach.
    assert_eq!(
        within(&WindowSpec::During("cut".into()), 1.0),
        within(&WindowSpec::During("cut".into()), 0.0)
    );
    assert_eq!(
        within(&WindowSpec::After(anchor("crash")), 1.0),
        vec![vec![(60, 90)]]
    );
}

#[test]
fn repeated_windows_skip_the_events_they_are_outside_of() {
    let each = ranges(&WindowSpec::Each {
        every: 10.0,
        outside: vec!["cut".into()],
    });
    assert_eq!(
        each,
        vec![
            vec![(5, 15)],
            vec![(45, 55)],
            vec![(55, 65)],
            vec![(65, 75)],
            vec![(75, 85)]
        ]
    );
    let sliding = WindowSpec::Sliding {
        span: 5.0,
        outside: vec![],
    }
    .resolve(&timeline(), 0.0)
    .unwrap();
    assert_eq!(sliding.len(), 81);
    assert_eq!(sliding[0].ranges, vec![(5, 10)]);
    assert_eq!(sliding[80].ranges, vec![(85, 90)]);
}

#[test]
fn a_window_on_an_event_that_did_not_happen_is_an_error() {
    assert_eq!(
        WindowSpec::During("nope".into()).resolve(&timeline(), 0.0),
        Err(WindowError::NoSuchEvent("nope".into()))
    );
    assert_eq!(
        WindowSpec::Between(anchor("a"), anchor("b.end")).events(),
        vec!["a", "b"]
    );
}

#[test]
fn a_window_shorter_than_a_second_judges_nothing() {
    let t = Timeline {
        begin: 0.0,
        end: 10.0,
        events: BTreeMap::from([(
            "blip".to_string(),
            Span {
                start: 3.2,
                end: 3.9,
            },
        )]),
    };
    let r = WindowSpec::During("blip".into()).resolve(&t, 0.0).unwrap();
    assert_eq!(r[0].seconds(), 0);
    assert!(r[0].to_string().contains("no whole second"), "{}", r[0]);
}
