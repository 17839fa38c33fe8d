use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn hold(rate: f64, s: f64) -> Profile {
    Profile {
        segments: vec![Segment::hold(rate, secs(s))],
    }
}

#[test]
fn a_uniform_hold_schedules_exactly_rate_times_duration() {
    let times: Vec<Duration> = Schedule::new(&hold(400.0, 90.0), Arrival::Uniform, 1, 0).collect();
    assert_eq!(times.len(), 36_000);
    assert_eq!(times[0], Duration::ZERO);
    assert_eq!(times[1], secs(0.0025));
    assert!(times.last().unwrap() < &secs(90.0));
}

#[test]
fn poisson_arrivals_average_the_rate_and_are_seeded() {
    let p = hold(1000.0, 20.0);
    let a: Vec<Duration> = Schedule::new(&p, Arrival::Poisson, 7, 0).collect();
    // Mean 20000, sd ~141: 5 sd either side.
    assert!((19_300..=20_700).contains(&a.len()), "{}", a.len());
    let again: Vec<Duration> = Schedule::new(&p, Arrival::Poisson, 7, 0).collect();
    assert_eq!(a, again, "same seed, same schedule");
    let other: Vec<Duration> = Schedule::new(&p, Arrival::Poisson, 7, 1).collect();
    assert_ne!(a, other, "another stream of the seed differs");
    let other_seed: Vec<Duration> = Schedule::new(&p, Arrival::Poisson, 8, 0).collect();
    assert_ne!(a, other_seed);
    // Gaps are exponential: about 63 % are shorter than the mean gap.
    let short =
        a.windows(2).filter(|w| w[1] - w[0] < secs(0.001)).count() as f64 / (a.len() - 1) as f64;
    assert!((0.60..0.66).contains(&short), "{short}");
}

#[test]
fn a_ramp_follows_its_rate() {
    // 0 -> 1000/s over 10 s: 5000 requests, a quarter of them in the
    // first half.
    let p = Profile {
        segments: vec![Segment {
            from: 0.0,
            to: 1000.0,
            length: secs(10.0),
        }],
    };
    let t: Vec<Duration> = Schedule::new(&p, Arrival::Uniform, 0, 0).collect();
    assert_eq!(t.len(), 5000);
    let first_half = t.iter().filter(|d| **d < secs(5.0)).count();
    assert!((1249..=1251).contains(&first_half), "{first_half}");
    assert_eq!(p.rate_at(2.5), 250.0);
    assert!((p.intended(0.0, 5.0) - 1250.0).abs() < 1e-9);
    // Down again, then a hold: arrivals stay ordered across segments.
    let p = Profile {
        segments: vec![
            Segment {
                from: 200.0,
                to: 0.0,
                length: secs(2.0),
            },
            Segment::hold(50.0, secs(2.0)),
        ],
    };
    let t: Vec<Duration> = Schedule::new(&p, Arrival::Uniform, 0, 0).collect();
    assert_eq!(t.len(), 200 + 100);
    assert!(t.windows(2).all(|w| w[0] <= w[1]));
    assert!(t[200] >= secs(2.0));
}

#[test]
fn a_zero_rate_schedules_nothing() {
    assert_eq!(
        Schedule::new(&hold(0.0, 10.0), Arrival::Uniform, 0, 0).count(),
        0
    );
    assert_eq!(
        Schedule::new(&hold(0.0, 10.0), Arrival::Poisson, 0, 0).count(),
        0
    );
    assert_eq!(
        Schedule::new(&Profile::default(), Arrival::Uniform, 0, 0).count(),
        0
    );
    assert_eq!(
        Schedule::new(&hold(100.0, 0.0), Arrival::Uniform, 0, 0).count(),
        0
    );
}

proptest! {
    #[test]
    fn schedules_are_ordered_inside_the_profile_and_count_its_work(
        rates in proptest::collection::vec((0.0..500.0f64, 0.0..500.0f64, 0.0..3.0f64), 1..4),
        seed in any::<u64>(),
    ) {
        let p = Profile {
            segments: rates.iter().map(|&(from, to, s)| Segment { from, to, length: secs(s) }).collect(),
        };
        let t: Vec<Duration> = Schedule::new(&p, Arrival::Uniform, seed, 0).collect();
        prop_assert!(t.windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(t.iter().all(|d| *d <= p.length()));
        let work = p.intended(0.0, p.length().as_secs_f64());
        prop_assert!((t.len() as f64 - work.ceil()).abs() <= 1.0, "{} vs {work}", t.len());
        let poisson = Schedule::new(&p, Arrival::Poisson, seed, 0);
        prop_assert!(poisson.take(100_000).all(|d| d <= p.length()));
    }
}
